//! What a person or a script reads from the `sealdesk` binary (issue 22 §2): one `--json`
//! shape (`ok`, `warnings`, the command's fields) and a JSON error object with a stable
//! `code` on stderr; exit statuses (3 when the relay could not be reached, also when local
//! state was shown); fingerprints checked for their form, and a mismatch shown only as a
//! warning to compare out of band; new passphrases of at least ten characters; exports that
//! do not overwrite without `--force`; `keys trust` saying when nothing was blocked; `demo
//! --home` kept in an empty directory or refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{json, ok, org_and_conversation, sealdesk};
use sealdesk_tests::world::{PASS, World};
use serde_json::Value;

/// The JSON error object a failed `--json` command prints on stderr.
fn error_of(r: &common::Run) -> Value {
    assert!(!r.ok, "it succeeded: {}", r.stdout);
    serde_json::from_str(r.stderr.trim()).unwrap_or_else(|e| panic!("{e}: {:?}", r.stderr))
}

#[tokio::test]
async fn json_successes_and_errors_have_one_shape_and_stable_codes() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;

    let me = json(&w, "carol", &["whoami"]).await;
    assert_eq!(me["ok"], true, "{me}");
    assert!(me["warnings"].as_array().is_some(), "{me}");

    // A relay's refusal: its code.
    let r = sealdesk(
        &w,
        "carol",
        &[
            "erase",
            "--conversation",
            "00000000000000000000000000000000",
            "--json",
        ],
    )
    .await;
    let e = error_of(&r);
    assert_eq!(e["ok"], false, "{e}");
    assert!(
        e["error"]["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{e}"
    );
    assert!(e["error"]["message"].as_str().is_some(), "{e}");
    assert!(
        r.stdout.trim().is_empty(),
        "errors go to stderr: {}",
        r.stdout
    );

    // A wrong role: `wrong_role`, exit 1.
    let r = sealdesk(
        &w,
        "carol",
        &[
            "dispute",
            "close",
            "--ticket",
            "00000000000000000000000000000000",
            "--json",
        ],
    )
    .await;
    assert_eq!(error_of(&r)["error"]["code"], "wrong_role");
    assert_eq!(r.code, Some(1));

    // A malformed fingerprint is a format error, before anything is asked of the relay.
    let r = sealdesk(
        &w,
        "carol",
        &[
            "open",
            "--org",
            "acme",
            "--org-fingerprint",
            "12345",
            "--json",
        ],
    )
    .await;
    assert_eq!(
        error_of(&r)["error"]["code"],
        "malformed_fingerprint",
        "{}",
        r.stderr
    );

    // A mismatch: both fingerprints only as something to compare out of band.
    let wrong = "11111 22222 33333 44444 55555 66666";
    let r = sealdesk(
        &w,
        "carol",
        &["open", "--org", "acme", "--org-fingerprint", wrong],
    )
    .await;
    assert!(!r.ok);
    assert!(
        r.stderr.contains("Compare out of band") && r.stderr.contains("never copy it"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("(it is "), "{}", r.stderr);

    // `history --export` does not overwrite without --force.
    let file = w.home("carol").join("history.json");
    std::fs::write(&file, "keep me").unwrap();
    let export = file.to_str().unwrap();
    let r = sealdesk(
        &w,
        "carol",
        &[
            "history",
            "--conversation",
            &conv,
            "--export",
            export,
            "--json",
        ],
    )
    .await;
    assert_eq!(error_of(&r)["error"]["code"], "file_exists");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    ok(
        &w,
        "carol",
        &[
            "history",
            "--conversation",
            &conv,
            "--export",
            export,
            "--force",
        ],
    )
    .await;
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("my order 1234")
    );
}

#[tokio::test]
async fn an_unreachable_relay_is_exit_status_3_even_with_local_state_shown() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/v1/ws", closed.local_addr().unwrap());
    drop(closed);
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sealdesk"));
        cmd.arg("--home")
            .arg(w.home("carol"))
            .arg("--relay")
            .arg(&url)
            .args(args)
            .env("SEALDESK_PASSPHRASE", PASS)
            .env("SEALDESK_INSECURE_FAST_KDF", "1")
            .stdin(std::process::Stdio::null());
        cmd.output().unwrap()
    };
    // Local state shown, with the warning on stderr, and status 3.
    let out = run(&["history", "--conversation", &conv]);
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("my order 1234"), "{stdout}");
    assert!(stderr.contains("warning: offline"), "{stderr}");
    let out = run(&["history", "--conversation", &conv, "--json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(doc["ok"], false, "{doc}");
    assert!(
        doc["warnings"][0].as_str().unwrap().contains("offline"),
        "{doc}"
    );
    // A command that needs the relay: code `unreachable`, status 3.
    let out = run(&["send", "--conversation", &conv, "hello?", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error"]["code"], "unreachable", "{e}");
}

#[tokio::test]
async fn a_short_passphrase_is_refused_with_a_clear_message() {
    let w = World::new().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sealdesk"))
        .arg("--home")
        .arg(w.home("erin"))
        .args(["init", "--name", "erin", "--role", "customer", "--json"])
        .env("SEALDESK_PASSPHRASE", "short")
        .env("SEALDESK_INSECURE_FAST_KDF", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error"]["code"], "weak_passphrase", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at least 10 characters"),
        "{e}"
    );
    assert!(
        !w.home("erin").join("vault.json").exists(),
        "no vault was made"
    );
}

#[tokio::test]
async fn keys_trust_says_when_nothing_was_blocked() {
    let w = World::new().await;
    org_and_conversation(&w).await;
    let out = ok(&w, "carol", &["keys", "trust", "alice"]).await;
    assert!(out.contains("nothing was blocked"), "{out}");
    let v = json(&w, "carol", &["keys", "trust", "alice"]).await;
    assert_eq!(v["unblocked"], false, "{v}");
}

#[tokio::test]
async fn demo_home_must_be_empty() {
    let w = World::new().await;
    let dir = w.home("not-empty");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("something"), "x").unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sealdesk"))
        .arg("--home")
        .arg(&dir)
        .args(["demo", "--json"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is not empty"),
        "{e}"
    );
}
