//! The relay's abuse limits as `sealdesk` shows them (issue 25 §2): `open` past the open
//! conversations a customer may have with an org says what was refused and when to retry.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::card::Role;
use sealdesk_tests::world::{PASS, World};

async fn open(w: &World, fingerprint: &str) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sealdesk"))
        .arg("--home")
        .arg(w.home("carol"))
        .arg("--relay")
        .arg(&w.url)
        .args(["open", "--org", "acme", "--org-fingerprint", fingerprint])
        .env("SEALDESK_PASSPHRASE", PASS)
        .env("SEALDESK_INSECURE_FAST_KDF", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn open_past_the_open_conversations_quota_says_what_and_when() {
    let w = World::new().await;
    let org = w.org(&["alice"], None).await;
    w.user("carol", Role::Customer).await.close().await;
    let most = sealdesk_server::config::Limits::default().open_conversations_per_org;
    for n in 0..most {
        let (ok, out) = open(&w, &org.fingerprint).await;
        assert!(ok, "open {n}: {out}");
        // From 80% of the quota on, the open warns ahead of the refusal.
        let warned = out.contains(&format!(
            "you now have {} of the {most} conversations this relay lets you have open with acme",
            n + 1
        ));
        assert_eq!(warned, (n + 1) * 100 >= most * 80, "open {n}: {out}");
    }
    let (ok, out) = open(&w, &org.fingerprint).await;
    assert!(
        !ok,
        "one open conversation too many with acme was allowed: {out}"
    );
    assert!(
        out.contains("(quota_exceeded)")
            && out.contains(&format!("{most} open conversations with acme")),
        "{out}"
    );
    assert!(out.contains("retry after"), "{out}");
}
