//! The chat window (issue 22 §1.7), in-process: the chat driven through a pipe against a real
//! relay on 127.0.0.1:0 that is stopped and started again mid-chat; `/switch` by id prefix,
//! `/list` marking transferred conversations, one banner per conversation worded for its
//! reader, and the typing indicator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use sealdesk_cli::chat;
use sealdesk_client::account::LogEntry;
use sealdesk_client::client::HistoryLine;
use sealdesk_protocol::{card::Role, signal::SignalKind};
use sealdesk_tests::{
    eventually,
    proxy::{Dir, is_item_push},
    relay::{restart_world_relay, start_world_relay, stop_world_relay},
    world::{Via, World, open_chat, texts},
};
use tokio::io::{AsyncWriteExt as _, BufReader};

/// The chat's output, readable while it runs.
#[derive(Clone, Default)]
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Screen {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    async fn shows(&self, what: &str) {
        let awaited = format!("the chat to show {what:?}");
        let wait = eventually(&awaited, async || self.text().contains(what).then_some(()));
        if tokio::time::timeout(sealdesk_tests::STEP / 2, wait)
            .await
            .is_err()
        {
            panic!("the chat did not show {what:?}:\n{}", self.text());
        }
    }
}

impl Write for Screen {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_line_typed_while_the_relay_restarts_is_sent_once_after_reconnecting() {
    let mut w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "is anyone there?").await.unwrap();
    carol.close().await;

    let (mut typing, keyboard) = tokio::io::duplex(4096);
    let screen = Screen::default();
    let mut out = screen.clone();
    let alice = &mut org.agents[0];
    let chat = chat::run(alice, BufReader::new(keyboard), &mut out, Some(conv));
    let world = &mut w;
    let driver = async {
        screen.shows("carol: is anyone there?").await;
        let down = stop_world_relay(world).await;
        screen.shows("connection lost").await;
        typing
            .write_all(b"typed during the outage\n")
            .await
            .unwrap();
        screen.shows("(offline: kept").await;
        start_world_relay(world, down).await;
        screen.shows("reconnected").await;
        screen.shows("alice: typed during the outage").await;
        typing.write_all(b"after it\n/quit\n").await.unwrap();
    };
    let (ran, ()) = tokio::join!(chat, driver);
    ran.unwrap();
    let shown = screen.text();
    assert!(shown.contains("alice: after it"), "{shown}");
    assert!(shown.ends_with("bye\n"), "{shown}");

    let mut carol = w.reopen("carol").await;
    carol.sync_all().await.unwrap();
    assert_eq!(
        texts(&carol, &conv),
        vec![
            "carol: is anyone there?".to_owned(),
            "alice: typed during the outage".to_owned(),
            "alice: after it".to_owned(),
        ],
        "each line arrived once, in order"
    );
}

#[tokio::test]
async fn lines_kept_offline_are_sent_when_the_input_ends_before_the_relay_is_back() {
    let mut w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();
    carol.close().await;

    let (mut typing, keyboard) = tokio::io::duplex(4096);
    let screen = Screen::default();
    let mut out = screen.clone();
    let alice = &mut org.agents[0];
    let chat = chat::run(alice, BufReader::new(keyboard), &mut out, Some(conv));
    let world = &mut w;
    let driver = async {
        screen.shows("carol: hello").await;
        let down = stop_world_relay(world).await;
        screen.shows("connection lost").await;
        typing.write_all(b"one\ntwo\n").await.unwrap();
        // The input ends (a pipe closed) while the relay is still down.
        drop(typing);
        eventually("both lines kept", async || {
            (screen.text().matches("(offline: kept").count() == 2).then_some(())
        })
        .await;
        start_world_relay(world, down).await;
    };
    let (ran, ()) = tokio::join!(chat, driver);
    ran.unwrap();
    let mut carol = w.reopen("carol").await;
    carol.sync_all().await.unwrap();
    assert_eq!(
        texts(&carol, &conv),
        vec![
            "carol: hello".to_owned(),
            "alice: one".to_owned(),
            "alice: two".to_owned()
        ]
    );
}

#[tokio::test]
async fn switch_takes_the_id_prefix_shown_and_the_banner_is_shown_once_per_conversation() {
    let w = World::new().await;
    let _org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let first = open_chat(&mut carol).await;
    let second = open_chat(&mut carol).await;
    let p1 = &first.to_string()[..8];
    let p2 = &second.to_string()[..8];
    let input = format!("/switch {p1}\n/switch {p2}\n/switch {p1}\n/switch 0000\n/quit\n");
    let mut out = Vec::new();
    chat::run(&mut carol, input.as_bytes(), &mut out, Some(first))
        .await
        .unwrap();
    let shown = String::from_utf8(out).unwrap();
    assert_eq!(
        shown.matches(&format!("── conversation {first}")).count(),
        3,
        "{shown}"
    );
    assert_eq!(
        shown.matches(&format!("── conversation {second}")).count(),
        1,
        "{shown}"
    );
    assert_eq!(
        shown.matches("🔒 Your chat with").count(),
        2,
        "one banner per conversation:\n{shown}"
    );
    assert!(shown.contains("no conversation \"0000\""), "{shown}");
}

#[tokio::test]
async fn an_agent_sees_an_agents_banner_and_transferred_conversations_are_marked() {
    let w = World::new().await;
    let mut org = w.org(&["alice", "bob"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hi").await.unwrap();
    let mut alice = org.agents.remove(0);
    alice.sync_all().await.unwrap();
    let mut out = Vec::new();
    chat::run(&mut alice, &b"/quit\n"[..], &mut out, Some(conv))
        .await
        .unwrap();
    let shown = String::from_utf8(out).unwrap();
    assert!(!shown.contains("Your chat with"), "{shown}");
    assert!(shown.contains("carol was told when"), "{shown}");

    alice.transfer(&conv, "bob").await.unwrap();
    let mut out = Vec::new();
    chat::run(&mut alice, &b"/list\n/quit\n"[..], &mut out, Some(conv))
        .await
        .unwrap();
    let shown = String::from_utf8(out).unwrap();
    assert!(shown.contains("with carol [transferred to bob]"), "{shown}");
}

#[tokio::test]
async fn the_chat_shows_who_is_typing_and_sends_typing_with_a_command() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();

    let alice_key = org.agents[0].account().keys().signing_public();
    let (mut typing, keyboard) = tokio::io::duplex(4096);
    let screen = Screen::default();
    let mut out = screen.clone();
    let alice = &mut org.agents[0];
    let chat = chat::run(alice, BufReader::new(keyboard), &mut out, Some(conv));
    let driver = async {
        screen.shows("carol: hello").await;
        carol.send_signal(&conv, SignalKind::Typing).await.unwrap();
        screen.shows("… carol is typing").await;
        typing.write_all(b"/typing\n/quit\n").await.unwrap();
        // Alice's signal reaches carol.
        let push = tokio::time::timeout(sealdesk_tests::STEP, async {
            loop {
                match carol.session().next_push().await {
                    Some(sealdesk_protocol::wire::Push::Signal(env)) => return env,
                    Some(_) => {}
                    None => panic!("carol's connection closed"),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(push.header.sender, alice_key);
    };
    let (ran, ()) = tokio::join!(chat, driver);
    ran.unwrap();
}

/// Messages in the chat carry the reader's numbers, as `history` gives them: the ones shown
/// from the history, the one typed, and the one that arrives while the chat is open (although
/// the relay's sequence numbers skip for the epoch and the read receipts).
#[tokio::test]
async fn the_chat_numbers_messages_as_history_does() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();

    let (mut typing, keyboard) = tokio::io::duplex(4096);
    let screen = Screen::default();
    let mut out = screen.clone();
    let alice = &mut org.agents[0];
    let chat = chat::run(alice, BufReader::new(keyboard), &mut out, Some(conv));
    let driver = async {
        screen.shows("carol: hello").await;
        typing.write_all(b"on it\n").await.unwrap();
        screen.shows("alice: on it").await;
        carol.send_text(&conv, "thanks").await.unwrap();
        screen.shows("carol: thanks").await;
        typing.write_all(b"/quit\n").await.unwrap();
    };
    let (ran, ()) = tokio::join!(chat, driver);
    ran.unwrap();
    let shown = screen.text();
    for (n, said) in [
        (1, "carol: hello"),
        (2, "alice: on it"),
        (3, "carol: thanks"),
    ] {
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with(&format!("#{n} ")) && l.contains(said)),
            "{said:?} should be #{n}:\n{shown}"
        );
    }
}

/// A message that arrives while the agent's window is disconnected (the relay restarted) is
/// caught up on reconnecting, shown, and marked read as a live one is: the customer sees it
/// read. The proxy drops every item push to the agent, so the message reaches the chat only
/// by the catch-up.
#[tokio::test]
async fn a_message_caught_up_after_a_relay_restart_is_marked_read() {
    let mut w = World::with_proxy().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();
    for a in org.agents.drain(..) {
        a.close().await;
    }
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    w.proxy().set_hook(|ctx, f| {
        if ctx.dir == Dir::ToClient && ctx.account == Some("alice") && is_item_push(&f) {
            Vec::new()
        } else {
            vec![f]
        }
    });

    let (mut typing, keyboard) = tokio::io::duplex(4096);
    let screen = Screen::default();
    let mut out = screen.clone();
    let chat = chat::run(&mut alice, BufReader::new(keyboard), &mut out, Some(conv));
    let world = &mut w;
    let driver = async {
        screen.shows("carol: hello").await;
        carol.send_text(&conv, "while you were away").await.unwrap();
        drop(carol.close().await);
        restart_world_relay(world).await;
        screen.shows("reconnected").await;
        screen.shows("carol: while you were away").await;
        let mut carol = world.reopen("carol").await;
        eventually("carol to see her message read", async || {
            carol.sync_all().await.ok()?;
            let h = carol.history(&conv).ok()?;
            h.lines.iter().rev().find_map(|l| match l {
                HistoryLine::Item {
                    entry:
                        LogEntry::Message {
                            mine: true, text, ..
                        },
                    delivery: Some("read"),
                    ..
                } if text == "while you were away" => Some(()),
                _ => None,
            })
        })
        .await;
        typing.write_all(b"/quit\n").await.unwrap();
    };
    let (ran, ()) = tokio::join!(chat, driver);
    ran.unwrap();
}
