//! The `sealdesk` binary over `wss://` against a real relay serving TLS on 127.0.0.1:0, with a
//! private CA made by rcgen: refused without the CA (and told what to do), a garbage CA file
//! named, trusted with `--ca-file` or `SEALDESK_CA_FILE`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use sealdesk_tests::{tls::TlsRelay, world::PASS};

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `sealdesk --home HOME ARGS` with `env` set, and none of the caller's SEALDESK_* settings.
async fn sealdesk(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sealdesk"));
    cmd.arg("--home")
        .arg(home)
        .args(args)
        .env_remove("SEALDESK_RELAY")
        .env_remove("SEALDESK_CA_FILE")
        .env("SEALDESK_PASSPHRASE", PASS)
        .env("SEALDESK_INSECURE_FAST_KDF", "1")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn the_cli_talks_wss_with_ca_file_or_sealdesk_ca_file() {
    let r = TlsRelay::new(&["localhost", "127.0.0.1"]).await;
    let url = r.url("localhost");
    let ca = r.ca.pem.to_str().unwrap().to_owned();
    let (alice, bob) = (r.home("alice"), r.home("bob"));
    for (home, name) in [(&alice, "alice"), (&bob, "bob")] {
        let run = sealdesk(home, &["init", "--name", name, "--role", "customer"], &[]).await;
        assert!(run.ok, "{}", run.stderr);
    }

    // Without the CA: refused, and told what to do.
    let run = sealdesk(&alice, &["--relay", &url, "register"], &[]).await;
    assert!(!run.ok, "{}", run.stdout);
    assert!(run.stderr.contains("not trusted"), "{}", run.stderr);
    assert!(run.stderr.contains("--ca-file"), "{}", run.stderr);

    // A garbage CA file is named.
    let garbage = r.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "garbage").unwrap();
    let run = sealdesk(
        &alice,
        &[
            "--relay",
            &url,
            "--ca-file",
            garbage.to_str().unwrap(),
            "register",
        ],
        &[],
    )
    .await;
    assert!(!run.ok, "{}", run.stdout);
    assert!(
        run.stderr.contains(&garbage.display().to_string()),
        "{}",
        run.stderr
    );

    // With --ca-file, and with SEALDESK_CA_FILE (and SEALDESK_RELAY) from the environment.
    let run = sealdesk(
        &alice,
        &["--relay", &url, "--ca-file", &ca, "register"],
        &[],
    )
    .await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!("registered alice on {url}")),
        "{}",
        run.stdout
    );
    let env = [
        ("SEALDESK_RELAY", url.as_str()),
        ("SEALDESK_CA_FILE", ca.as_str()),
    ];
    let run = sealdesk(&bob, &["register"], &env).await;
    assert!(run.ok, "{}", run.stderr);

    // A command that reads from the relay: bob's card, fetched over wss by alice.
    let run = sealdesk(&alice, &["keys", "fingerprint", "bob"], &env).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("bob (from the relay"), "{}", run.stdout);
    r.relay.shutdown().await.unwrap();
}
