//! Wording a reader sees (issue 22 §2): `history` numbers messages 1, 2, 3 … in the order
//! shown, not by the relay's sequence numbers (which also count epochs and read receipts), and
//! keeps the relay's number in `--json` as `seq` beside the reader's `number`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{json, ok, org_and_conversation};
use sealdesk_tests::world::World;

#[tokio::test]
async fn history_numbers_messages_without_skips() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    // Each `history` sends a read receipt, and the conversation began with an epoch: both take
    // relay sequence numbers between the messages.
    ok(&w, "alice", &["history", "--conversation", &conv]).await;
    ok(
        &w,
        "alice",
        &["send", "--conversation", &conv, "sorry, looking into it"],
    )
    .await;
    ok(&w, "carol", &["history", "--conversation", &conv]).await;
    ok(&w, "carol", &["send", "--conversation", &conv, "thanks"]).await;

    let h = json(&w, "carol", &["history", "--conversation", &conv]).await;
    let messages: Vec<(u64, u64)> = h["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["entry"]["type"] == "message")
        .map(|l| {
            (
                l["number"].as_u64().expect("a message has a number"),
                l["entry"]["seq"].as_u64().expect("and keeps its seq"),
            )
        })
        .collect();
    let numbers: Vec<u64> = messages.iter().map(|(n, _)| *n).collect();
    let seqs: Vec<u64> = messages.iter().map(|(_, s)| *s).collect();
    assert_eq!(numbers, [1, 2, 3], "{h:#}");
    assert!(seqs.windows(2).all(|p| p[0] < p[1]), "{seqs:?}");
    assert_ne!(seqs, numbers, "the relay's numbers skip here: {seqs:?}");
    // Lines that are not messages carry no number.
    assert!(
        h["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["entry"]["type"] != "message")
            .all(|l| l.get("number").is_none()),
        "{h:#}"
    );

    let text = ok(&w, "carol", &["history", "--conversation", &conv]).await;
    let numbered: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(numbered, ["#1", "#2", "#3"], "{text}");
    for (n, said) in [
        (1, "my order 1234 never came"),
        (2, "sorry, looking into it"),
        (3, "thanks"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("#{n} ")) && l.contains(said)),
            "#{n} should be {said:?}:\n{text}"
        );
    }
}
