//! The chat loop and the demo, in-process: the chat driven with in-memory streams against a real
//! relay on 127.0.0.1:0, the demo with its own in-process relay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_cli::chat;
use sealdesk_protocol::card::Role;
use sealdesk_tests::world::{World, open_chat, texts};

#[tokio::test]
async fn chat_loop_sends_and_shows_messages() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "anyone there?").await.unwrap();
    let alice = &mut org.agents[0];
    let input: &[u8] = b"/list\n/history\nyes, alice here via chat\n/quit\n";
    let mut out = Vec::new();
    chat::run(alice, input, &mut out, Some(conv)).await.unwrap();
    let shown = String::from_utf8(out).unwrap();
    assert!(shown.contains("carol: anyone there?"), "{shown}");
    assert!(shown.contains("alice: yes, alice here via chat"), "{shown}");
    assert!(shown.contains("end-to-end encrypted"), "{shown}");
    carol.sync_all().await.unwrap();
    assert_eq!(
        texts(&carol, &conv).last().unwrap(),
        "alice: yes, alice here via chat"
    );
}

#[tokio::test]
async fn the_demo_tells_the_whole_story() {
    let mut out = Vec::new();
    sealdesk_cli::demo::run(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    for needle in [
        "dave here",
        "is refused: nothing of conversation",
        "under your consent",
        "already used",
        "1 of the 2 required arbiter approvals",
        "approved by 2 arbiters",
        "Verdict: the transcript verifies",
        "finds 0 occurrences",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}
