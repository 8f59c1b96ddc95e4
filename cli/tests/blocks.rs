//! Acting on spam through `sealdesk` (issue 25 §4): the agent's `block`, the master's `blocks`
//! and `unblock`, and the blocked customer's refused `open`, worded and with its stable code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::card::Role;
use sealdesk_tests::world::{MASTER, World, open_chat};

mod common;

/// Runs `sealdesk` as `who` (the shared runner); whether it succeeded, stdout and stderr.
async fn run(w: &World, who: &str, args: &[&str]) -> (bool, String, String) {
    let r = common::sealdesk(w, who, args).await;
    (r.ok, r.stdout, r.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_blocks_a_spammer_and_the_master_unblocks_it() {
    let w = World::new().await;
    let org = w.org(&["alice"], None).await;
    org.close().await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "cheap watches").await.unwrap();
    let fingerprint = carol.account().fingerprint().to_string();
    carol.close().await;
    let id = conv.to_string();

    let (ok, out, err) = run(&w, "alice", &["block", "--conversation", &id]).await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("closed {id} as spam: carol is blocked for acme")),
        "{out}"
    );
    assert!(out.contains("the conversation is resolved"), "{out}");

    let (ok, out, err) = run(&w, MASTER, &["blocks"]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("carol") && out.contains(&fingerprint), "{out}");

    let (ok, out, err) = run(&w, "carol", &["open", "--org", "acme"]).await;
    assert!(!ok, "a blocked customer opened: {out}");
    assert!(err.contains("acme has blocked this account"), "{err}");
    let (ok, _, err) = run(
        &w,
        "carol",
        &["--json", "send", "--conversation", &id, "hi"],
    )
    .await;
    assert!(!ok);
    assert!(err.contains("\"code\":\"blocked\""), "{err}");

    let (ok, out, err) = run(&w, "alice", &["unblock", "--customer", &fingerprint]).await;
    assert!(!ok, "an agent unblocked: {out}");
    assert!(
        err.contains("wrong_role") || err.contains("master"),
        "{err}"
    );
    let (ok, out, err) = run(&w, MASTER, &["unblock", "--customer", &fingerprint]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("carol is no longer blocked for acme"), "{out}");
    let (ok, out, err) = run(&w, MASTER, &["blocks"]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("no customer is blocked"), "{out}");
    let (ok, out, err) = run(&w, "carol", &["open", "--org", "acme"]).await;
    assert!(ok, "{out}{err}");
}
