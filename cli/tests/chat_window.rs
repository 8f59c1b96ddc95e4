//! The chat window (issue 22 §1.7), in-process: the chat driven through a pipe against a real
//! relay on 127.0.0.1:0 that is stopped and started again mid-chat; `/switch` by id prefix,
//! `/list` marking transferred conversations, one banner per conversation worded for its
//! reader, the typing indicator, and a release notice that another trustee's entry completes
//! (issue 20/22: replaced in place in the window, printed again as an update in the text chat).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use sealdesk_cli::chat::{self, Shown, Sink, state::ChatState};
use sealdesk_client::account::LogEntry;
use sealdesk_client::client::HistoryLine;
use sealdesk_protocol::{card::Role, signal::SignalKind};
use sealdesk_tests::{
    eventually,
    proxy::{Dir, is_item_push},
    relay::{restart_world_relay, start_world_relay, stop_world_relay},
    release::{release_asked, trustees_answer},
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

/// The window's state as the chat leaves it: every [`Shown`] applied to a [`ChatState`], as
/// the terminal UI's sink does, readable while the chat runs.
#[derive(Clone, Default)]
struct Window(Arc<Mutex<ChatState>>);

impl Window {
    /// The message pane's lines, as drawn (with their delivery marks).
    fn pane(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .pane
            .iter()
            .map(|l| l.shown())
            .collect()
    }

    /// Waits until a line of the pane contains `what`; its position.
    async fn shows(&self, what: &str) -> usize {
        let awaited = format!("the window to show {what:?}");
        let wait = eventually(&awaited, async || {
            self.pane().iter().position(|l| l.contains(what))
        });
        match tokio::time::timeout(sealdesk_tests::STEP / 2, wait).await {
            Ok(at) => at,
            Err(_) => panic!("the window did not show {what:?}:\n{:#?}", self.pane()),
        }
    }
}

impl Sink for Window {
    fn show(&mut self, shown: Shown) -> std::io::Result<()> {
        self.0.lock().unwrap().apply(shown);
        Ok(())
    }
}

/// What a release notice of the request reads as long as only one of the two trustees needed
/// has released, and once the second has.
const ONE_OF_TWO: &str = "not opened as far as the entries received show (1 of 2 trustees";
const BOTH: &str = "released by trustees trustee-1 and trustee-2 (threshold 2 of 3)";

/// Issue 20/22: carol's window is open while the master's release under her consent gets its
/// trustees. The first trustee's entry shows "1 of 2 trustees"; the second's turns that same
/// line — in its place, not as a second line — into "released by trustees trustee-1 and
/// trustee-2", the words `history` gives, and a third trustee's adds its name there. Before
/// the fix the window dropped the updated line (its seq was already in the pane) and kept
/// "1 of 2" for good.
#[tokio::test]
async fn the_window_rewords_a_release_notice_in_place_when_the_second_trustee_releases() {
    let w = World::new().await;
    let (mut carol, conv) = release_asked(&w, Via::Relay, "my order never came").await;
    let (mut typing, keyboard) = tokio::io::duplex(4096);
    let window = Window::default();
    let mut sink = window.clone();
    let chat = chat::run_with(&mut carol, BufReader::new(keyboard), &mut sink, Some(conv));
    let world = &w;
    let driver = async {
        window.shows("my order never came").await;
        let first = trustees_answer(world, &["trustee-1"], Via::Relay).await;
        assert_eq!(first, [["released"]]);
        let at = window.shows(ONE_OF_TWO).await;
        let second = trustees_answer(world, &["trustee-2"], Via::Relay).await;
        assert_eq!(second, [["released"]]);
        assert_eq!(window.shows(BOTH).await, at, "{:#?}", window.pane());
        // A third trustee past the threshold changes no verdict, but the words: shown too.
        let third = trustees_answer(world, &["trustee-3"], Via::Relay).await;
        assert_eq!(third, [["released"]]);
        let all = "released by trustees trustee-1, trustee-2 and trustee-3";
        assert_eq!(window.shows(all).await, at, "{:#?}", window.pane());
        typing.write_all(b"/quit\n").await.unwrap();
    };
    let (ran, ()) = tokio::join!(chat, driver);
    ran.unwrap();
    let pane = window.pane();
    let notices: Vec<&String> = pane.iter().filter(|l| l.contains("!! NOTICE")).collect();
    assert_eq!(notices.len(), 1, "one line per release: {pane:#?}");
    assert!(notices[0].contains("acme opened epoch 0"), "{pane:#?}");
    assert!(!pane.iter().any(|l| l.contains("1 of 2")), "{pane:#?}");
    // The words history gives.
    let history = carol.history(&conv).unwrap().lines;
    assert!(
        history.iter().any(
            |l| matches!(l, HistoryLine::Item { entry: LogEntry::Notice { text, .. }, .. }
                if notices[0].contains(text.as_str()))
        ),
        "{history:#?}"
    );
}

/// The same in the text chat (a pipe, `--plain`): the second trustee's release prints the
/// notice again as an update, so the last word on screen is history's.
#[tokio::test]
async fn the_text_chat_prints_a_release_notice_again_when_the_second_trustee_releases() {
    let w = World::new().await;
    let (mut carol, conv) = release_asked(&w, Via::Relay, "my order never came").await;
    let (mut typing, keyboard) = tokio::io::duplex(4096);
    let screen = Screen::default();
    let mut out = screen.clone();
    let chat = chat::run(&mut carol, BufReader::new(keyboard), &mut out, Some(conv));
    let world = &w;
    let driver = async {
        screen.shows("my order never came").await;
        let first = trustees_answer(world, &["trustee-1"], Via::Relay).await;
        assert_eq!(first, [["released"]]);
        screen.shows(ONE_OF_TWO).await;
        let second = trustees_answer(world, &["trustee-2"], Via::Relay).await;
        assert_eq!(second, [["released"]]);
        screen.shows(BOTH).await;
        typing.write_all(b"/quit\n").await.unwrap();
    };
    let (ran, ()) = tokio::join!(chat, driver);
    ran.unwrap();
    let shown = screen.text();
    let notices: Vec<&str> = shown.lines().filter(|l| l.contains("!! NOTICE")).collect();
    assert_eq!(notices.len(), 2, "{shown}");
    assert!(notices[0].contains(ONE_OF_TWO), "{shown}");
    assert!(
        notices[1].starts_with("update: ") && notices[1].contains(BOTH),
        "{shown}"
    );
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
