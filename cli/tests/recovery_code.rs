//! `sealdesk recovery-code` through the binary (issue 22): a customer's new code recovers the
//! same account and the `init` code stops working (`not_recovered`); other roles are told why
//! not and what to do (`wrong_role`); a run cut off because the relay is gone says which code
//! works, and the next run finishes with the same new code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{json, ok, sealdesk};
use sealdesk_tests::world::World;
use serde_json::Value;

fn error_code(r: &common::Run) -> String {
    let e: Value = serde_json::from_str(&r.stderr).unwrap();
    e["error"]["code"].as_str().unwrap().to_owned()
}

/// Carol, made by `init` and registered: `init`'s JSON and the code it showed.
async fn carol_registered(w: &World) -> (Value, String) {
    let made = json(
        w,
        "carol",
        &["init", "--name", "carol", "--role", "customer"],
    )
    .await;
    let first = made["recovery_code"].as_str().unwrap().to_owned();
    ok(w, "carol", &["register"]).await;
    (made, first)
}

#[tokio::test]
async fn a_new_code_replaces_the_init_code_and_other_roles_are_told_why_not() {
    let w = World::new().await;
    let (made, first) = carol_registered(&w).await;
    let text = ok(&w, "carol", &["recovery-code"]).await;
    assert!(text.contains("shown only now"), "{text}");
    assert!(text.contains("no longer works"), "{text}");
    let new = json(&w, "carol", &["recovery-code"]).await;
    let second = new["recovery_code"].as_str().unwrap().to_owned();
    assert!(text.contains("new recovery code for carol: "), "{text}");
    assert!(!text.contains(&second));

    let r = sealdesk(
        &w,
        "carol-old",
        &["recover", "--name", "carol", "--code", &first, "--json"],
    )
    .await;
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(error_code(&r), "not_recovered");
    assert!(!w.home("carol-old").exists());
    let back = json(
        &w,
        "carol-new",
        &["recover", "--name", "carol", "--code", &second],
    )
    .await;
    assert_eq!(back["fingerprint"], made["fingerprint"], "{back}");

    ok(&w, "bob", &["init", "--name", "bob", "--role", "agent"]).await;
    let r = sealdesk(&w, "bob", &["recovery-code", "--json"]).await;
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(error_code(&r), "wrong_role");
    assert!(r.stderr.contains("org recertify"), "{}", r.stderr);
}

#[tokio::test]
async fn a_run_without_the_relay_keeps_the_old_code_and_the_next_run_finishes() {
    let w = World::new().await;
    let (_, first) = carol_registered(&w).await;
    // No relay listens at this address (a port just freed).
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("ws://{}", l.local_addr().unwrap())
    };
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sealdesk"))
        .arg("--home")
        .arg(w.home("carol"))
        .args(["--relay", &gone, "recovery-code", "--json"])
        .env("SEALDESK_PASSPHRASE", sealdesk_tests::world::PASS)
        .env("SEALDESK_INSECURE_FAST_KDF", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("nothing was sent: the code before still works"),
        "{stderr}"
    );
    // The old code still recovers.
    json(
        &w,
        "carol-old",
        &["recover", "--name", "carol", "--code", &first],
    )
    .await;
    // The next run (relay back) installs the kept code and says it resumed.
    let done = json(&w, "carol", &["recovery-code"]).await;
    assert_eq!(done["resumed"], true, "{done}");
    let second = done["recovery_code"].as_str().unwrap();
    json(
        &w,
        "carol-new",
        &["recover", "--name", "carol", "--code", second],
    )
    .await;
}
