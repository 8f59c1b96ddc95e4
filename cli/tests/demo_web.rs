//! `sealdesk demo --web DIR`: the relay it starts serves the pages in DIR at the URL it prints
//! (with the relay's Content-Security-Policy), and a DIR that is not built is refused with the
//! command that builds it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Command, Stdio};

#[test]
fn demo_web_prints_a_url_that_serves_the_widget() {
    let pages = tempfile::tempdir().unwrap();
    std::fs::write(
        pages.path().join("index.html"),
        "<!doctype html><p>widget</p>",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealdesk"))
        .args(["demo", "--web"])
        .arg(pages.path())
        .env("SEALDESK_INSECURE_FAST_KDF", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Blocks until the demo prints the page's URL (or ends without one).
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("http://") && w.contains("?org=acme&fp="))
                .map(str::to_owned)
        })
        .expect("the demo prints the widget's URL");
    // Then the console's URL, on the same origin.
    let origin = &url[..url.find("/?").unwrap()];
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains(&format!("{origin}/console/"))),
        "the demo prints the console's URL"
    );
    let rest = url.trim_start_matches("http://");
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("<p>widget</p>"));
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-security-policy: default-src 'none'; script-src 'self'")
    );
}

#[test]
fn demo_web_refuses_pages_that_are_not_built() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sealdesk"))
        .args(["demo", "--web"])
        .arg(dir.path().join("dist"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("npm run build"), "{stderr}");
}
