//! The warning ahead of the stored-bytes quota as `sealdesk` shows it with a plain message
//! (issue 25 §2, PROTOCOL.md §13.12): `send` prints it in words on stderr (and as `quota` and
//! among `warnings` with `--json`) once the account's stored bytes reach 80% of the relay's
//! most; `chat --json` gives a `quota_warning` event; past the quota the send is refused
//! `quota_exceeded`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{json, json_chat::JsonChat, sealdesk};
use sealdesk_protocol::card::Role;
use sealdesk_tests::world::{World, open_chat};
use serde_json::Value;

/// A message's text: its ciphertext is 1,000 bytes (the text and the 16-byte AEAD tag).
fn body(n: usize) -> String {
    format!("{n:03}{}", "x".repeat(981))
}

/// The account's quota: 10.5 messages, so the 9th reaches 80% whatever small read receipts
/// the account sent besides, and the 11th passes it.
const QUOTA: u64 = 10_500;

/// The words every quota warning has.
const WORDS: &str = "this account's stored messages and attachments now take";

#[tokio::test]
async fn send_and_chat_warn_from_eighty_percent_of_the_account_quota() {
    let w = World::with_config(|c| {
        c.limits.stored_bytes_per_account = QUOTA;
        c.limits.stored_bytes_per_org = 100 * QUOTA;
    })
    .await;
    let org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await.to_string();
    carol.close().await;
    let mut dave = w.user("dave", Role::Customer).await;
    let dave_conv = open_chat(&mut dave).await.to_string();
    dave.close().await;
    for a in org.agents {
        a.close().await;
    }
    org.master.close().await;

    // `send`: 8 messages (76%) say nothing of the quota, the 9th (86%) warns, in words.
    for n in 0..9 {
        let r = sealdesk(&w, "carol", &["send", "--conversation", &conv, &body(n)]).await;
        assert!(r.ok, "message {n}: {}{}", r.stdout, r.stderr);
        assert_eq!(
            r.stderr.contains(WORDS),
            n == 8,
            "message {n}: {}",
            r.stderr
        );
    }
    // With --json: the warning as data and in words; the 10th is 95%.
    let out = json(&w, "carol", &["send", "--conversation", &conv, &body(9)]).await;
    assert_eq!(out["quota"]["scope"], "account", "{out}");
    assert_eq!(out["quota"]["most"], QUOTA, "{out}");
    let used = out["quota"]["used"].as_u64().unwrap();
    assert!((10_000..=QUOTA).contains(&used), "{out}");
    let warning = out["warnings"][0].as_str().unwrap();
    assert!(warning.starts_with(WORDS), "{warning}");
    assert!(warning.contains("(quota_exceeded)"), "{warning}");
    assert!(
        warning.contains("erasing conversations you no longer need"),
        "{warning}"
    );
    // The 11th passes the quota: refused, typed.
    let r = sealdesk(&w, "carol", &["send", "--conversation", &conv, &body(10)]).await;
    assert!(!r.ok, "a message past the quota was stored: {}", r.stdout);
    assert!(r.stderr.contains("(quota_exceeded)"), "{}", r.stderr);
    assert!(
        r.stderr.contains("stored_bytes_per_account"),
        "{}",
        r.stderr
    );

    // `chat --json`: the same, as a `quota_warning` event after the 9th message's line.
    let mut chat = JsonChat::start(&w, "dave", &dave_conv);
    for n in 0..11 {
        chat.type_line(&body(n)).await;
    }
    chat.quit_within(Duration::from_secs(60)).await;
    let events = &chat.seen;
    let warnings: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "quota_warning")
        .collect();
    // The 9th message's (86%) and the 10th's (95%): each shown once, not again from the push
    // the relay sends as well (a `notice` of kind `warning` with the same words).
    assert_eq!(warnings.len(), 2, "{events:#?}");
    assert!(
        !events.iter().any(
            |e| e["event"] == "notice" && e["text"].as_str().is_some_and(|t| t.contains(WORDS))
        ),
        "a quota warning shown twice: {events:#?}"
    );
    // The 11th is refused, and handed back as not sent (the terminal UI's input line).
    let refused = events
        .iter()
        .position(|e| e["event"] == "error" && e.to_string().contains("quota_exceeded"))
        .unwrap_or_else(|| panic!("the 11th message is refused: {events:#?}"));
    let handed_back = &events[refused + 1];
    assert_eq!(handed_back["event"], "notice", "{handed_back}");
    assert_eq!(handed_back["kind"], "not_sent", "{handed_back}");
    assert_eq!(handed_back["message"], body(10).as_str(), "{handed_back}");
    let q = warnings[0];
    assert_eq!(q["conversation"], dave_conv.as_str(), "{q}");
    assert_eq!(q["scope"], "account", "{q}");
    assert_eq!(q["most"], QUOTA, "{q}");
    assert!(q["percent"].as_u64().unwrap() >= 80, "{q}");
    assert!(q["text"].as_str().unwrap().starts_with(WORDS), "{q}");
    // It follows the line of the message that crossed 80%.
    let at = events
        .iter()
        .position(|e| e["event"] == "quota_warning")
        .unwrap();
    let before = events[..at]
        .iter()
        .rev()
        .find(|e| e["event"] == "message")
        .unwrap();
    assert!(
        before.to_string().contains(&body(8)),
        "the warning follows the 9th message: {before}"
    );
}
