//! The relay serving the browser pages (`--web-root`, `sealdesk_server::web`): the headers of
//! every answer (a strict Content-Security-Policy with no inline script and connections only
//! back to the relay, nosniff, no referrer, content types), and that no request reaches a file
//! outside the directory (traversal, percent-encoding, a symlink, a dot-file).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_tests::relay::{http_get, spawn_relay, spawn_relay_with, stop_relay};

/// The status code and the headers (lower-cased names) and body of a raw HTTP response.
fn parse(response: &str) -> (u16, Vec<(String, String)>, String) {
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

/// A web root with a page and an asset, a dot-file, and a symlink to a secret outside it.
fn pages() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret.txt"), "TOP-SECRET-OUTSIDE").unwrap();
    let root = dir.path().join("dist");
    std::fs::create_dir_all(root.join("assets")).unwrap();
    std::fs::write(root.join("index.html"), "<!doctype html><title>w</title>").unwrap();
    std::fs::write(root.join("assets/app-1a2b.js"), "console.log(1)").unwrap();
    std::fs::write(root.join("embed.js"), "void 0").unwrap();
    std::fs::write(root.join(".env"), "TOP-SECRET-DOTFILE").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.txt")).unwrap();
    dir
}

#[tokio::test]
async fn pages_carry_a_strict_csp_and_their_content_types() {
    let dir = pages();
    let root = dir.path().join("dist");
    let (relay, _data) = spawn_relay_with(|c| c.web_root = Some(root)).await;

    let (status, headers, body) = parse(&http_get(&relay, "/?org=acme&fp=1").await);
    assert_eq!(status, 200);
    assert!(body.contains("<title>w</title>"));
    assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
    let csp = header(&headers, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self';",
        "style-src 'self';",
        "connect-src 'self' ws://relay.test wss://relay.test;",
        "base-uri 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval") && !csp.contains('*'));
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(&headers, "referrer-policy"), "no-referrer");
    assert_eq!(header(&headers, "cache-control"), "no-cache");

    let (status, headers, _) = parse(&http_get(&relay, "/assets/app-1a2b.js").await);
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert!(header(&headers, "cache-control").contains("immutable"));
    assert!(header(&headers, "content-security-policy").contains("script-src 'self'"));

    assert_eq!(
        header(&headers, "cross-origin-resource-policy"),
        "same-origin"
    );
    // The one script other sites load.
    let (status, headers, _) = parse(&http_get(&relay, "/embed.js").await);
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "cross-origin-resource-policy"),
        "cross-origin"
    );

    // The relay's own endpoints are untouched.
    assert_eq!(parse(&http_get(&relay, "/healthz").await).0, 200);
    stop_relay(relay).await;
}

#[tokio::test]
async fn nothing_outside_the_web_root_is_served() {
    let dir = pages();
    let root = dir.path().join("dist");
    let (relay, _data) = spawn_relay_with(|c| c.web_root = Some(root)).await;
    for path in [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/link.txt",
        "/.env",
        "/assets/",
        "/index.html/",
        "/Index.html",
    ] {
        let response = http_get(&relay, path).await;
        let (status, _, body) = parse(&response);
        assert_eq!(status, 404, "{path}: {response}");
        assert!(!body.contains("TOP-SECRET"), "{path}");
    }
    stop_relay(relay).await;
}

#[tokio::test]
async fn without_a_web_root_pages_are_not_found() {
    let (relay, _data) = spawn_relay().await;
    assert_eq!(parse(&http_get(&relay, "/").await).0, 404);
    assert_eq!(parse(&http_get(&relay, "/index.html").await).0, 404);
    stop_relay(relay).await;
}

#[tokio::test]
async fn a_web_root_that_is_not_a_directory_stops_the_start() {
    let dir = pages();
    let config = sealdesk_server::config::RelayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        web_root: Some(dir.path().join("secret.txt")),
        ..Default::default()
    };
    // `spawn` binds, then serves in a task: the refusal is what that task ends with.
    let relay = sealdesk_server::spawn(config)
        .await
        .expect("the port is bound");
    let err = relay
        .shutdown()
        .await
        .expect_err("a file as web root is refused");
    assert!(
        matches!(err, sealdesk_server::Error::File { .. }),
        "{err:?}"
    );
}
