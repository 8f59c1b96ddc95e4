//! What a new user reads, step by step, where the README walkthrough depends on it: the command
//! `open` suggests names the home it was run with, `send` reports the number `history` shows
//! (and `attachment save --message` takes), `audit` shows the log's root (which
//! `sealdesk-relay migrate` prints for comparison), counts read as words, and a ticket says
//! how many approvals it needs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{json, ok, org_and_conversation};
use sealdesk_tests::world::World;

#[tokio::test]
async fn what_the_commands_print_is_what_the_next_step_needs() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;

    // `open` suggests the next command with the home it was given, so that it can be pasted.
    let opened = ok(&w, "carol", &["open", "--org", "acme"]).await;
    let home = w.home("carol").display().to_string();
    assert!(
        opened.contains(&format!(
            "Send with: sealdesk --home {home} send --conversation "
        )),
        "{opened}"
    );

    // `send` says the message's number in history (carol's second message: #2), not the
    // relay's sequence number (which also counts the epoch record and read receipts).
    let sent = ok(&w, "carol", &["send", "--conversation", &conv, "any news?"]).await;
    assert_eq!(sent.trim(), "sent (#2 in history)");
    let sent = json(&w, "carol", &["send", "--conversation", &conv, "hello?"]).await;
    let h = json(&w, "carol", &["history", "--conversation", &conv]).await;
    let line = h["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["entry"]["seq"] == sent["seq"])
        .expect("the message sent is in history");
    assert_eq!(sent["number"], line["number"], "{sent:#} {line:#}");
    assert_eq!(sent["number"], 3);
    assert_ne!(sent["number"], sent["seq"]);

    // `audit` shows the tree head's root, in text and in `--json`.
    let audit = json(&w, "carol", &["audit"]).await;
    let root = audit["root"].as_str().unwrap().to_owned();
    assert_eq!(root.len(), 64, "{audit:#}");
    let text = ok(&w, "carol", &["audit"]).await;
    assert!(text.contains(&format!("(root {root})")), "{text}");

    // Counts read as words: "1 epoch", not "1 epoch(s)".
    let list = ok(&w, "carol", &["conversations"]).await;
    assert!(list.contains("  1 epoch  "), "{list}");
    assert!(!list.contains("(s)"), "{list}");

    // A ticket says how many approvals it has of how many the policy needs.
    let open = [
        "dispute",
        "open",
        "--conversation",
        &conv,
        "--reason",
        "refund",
    ];
    ok(&w, "acme-owner", &open).await;
    let list = ok(&w, "arbiter-1", &["dispute", "list"]).await;
    assert!(list.contains("approvals: 0 of 1 needed"), "{list}");
}
