//! Open tokens through `sealdesk` (issue 25 §3): the master certifies a web server key and makes
//! the org require tokens; a customer without a token is refused with its code; the business's
//! script issues a token for the customer's key, and `open --token` opens with it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::card::Role;
use sealdesk_tests::world::{MASTER, World};

mod common;

/// Runs `sealdesk` as `who` (the shared runner); whether it succeeded, stdout and stderr.
async fn run(w: &World, who: &str, args: &[&str]) -> (bool, String, String) {
    let r = common::sealdesk(w, who, args).await;
    (r.ok, r.stdout, r.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_opens_with_the_token_the_business_issued() {
    let w = World::new().await;
    let org = w.org(&["alice"], None).await;
    for a in org.agents {
        a.close().await;
    }
    org.master.close().await;
    let carol = w.user("carol", Role::Customer).await;
    let carol_key = carol.account().keys().signing_public().to_string();
    carol.close().await;
    let key_file = w.dir.path().join("web.key");
    let key = key_file.to_str().unwrap();

    let (ok, out, err) = run(
        &w,
        MASTER,
        &[
            "org",
            "web-key",
            "--org",
            "acme",
            "--new-key",
            key,
            "--require",
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("certified web key www of acme"), "{out}");
    assert!(out.contains("acme now requires an open token"), "{out}");

    let (ok, out, err) = run(&w, "carol", &["--json", "open", "--org", "acme"]).await;
    assert!(!ok, "opened without a token: {out}");
    assert!(err.contains("\"code\":\"open_token_required\""), "{err}");

    let (ok, token, err) = run(
        &w,
        "carol",
        &[
            "token",
            "issue",
            "--key",
            key,
            "--org",
            "acme",
            "--visitor",
            "visitor-7",
            "--customer",
            &carol_key,
        ],
    )
    .await;
    assert!(ok, "{token}{err}");
    let token = token.trim().to_owned();
    // A token for another key is refused with its own code.
    let other = sealdesk_tests::identity::Identity::new(5, "dave", Role::Customer)
        .key()
        .to_string();
    let (ok, wrong, err) = run(
        &w,
        "carol",
        &[
            "token",
            "issue",
            "--key",
            key,
            "--org",
            "acme",
            "--visitor",
            "visitor-7",
            "--customer",
            &other,
        ],
    )
    .await;
    assert!(ok, "{wrong}{err}");
    let (ok, out, err) = run(
        &w,
        "carol",
        &["--json", "open", "--org", "acme", "--token", wrong.trim()],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        err.contains("\"code\":\"open_token_wrong_customer\""),
        "{err}"
    );

    let (ok, out, err) = run(&w, "carol", &["open", "--org", "acme", "--token", &token]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("Opened conversation"), "{out}");
}
