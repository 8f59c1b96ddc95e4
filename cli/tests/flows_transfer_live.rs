//! A conversation transferred to an agent whose `sealdesk chat` is running (ARCHITECTURE.md,
//! "a held-back epoch record is never used"): bob's chat hears the new epoch's record before
//! alice's hand-off makes him a reader of the earlier epochs (the proxy holds the hand-off
//! until bob's chat has taken the record, with the earlier records the relay serves him). The
//! record is not refused for good: bob reads carol's next message, answers from the running
//! chat, carol reads the answer, and a restarted chat goes on likewise. Under the
//! CLI's policy, with history hand-off; and under one without (`--no-history-handoff`), where
//! no hand-off comes (a blind transfer).
//!
//! Hermetic: a relay on 127.0.0.1:0, temporary homes, the fast test KDF; every wait is for an
//! event.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::json_chat::{JsonChat, is};
use std::sync::{Arc, Mutex};

use common::{add_agent, ok, org_and_conversation, org_and_conversation_with, sealdesk_via};
use sealdesk_protocol::wire::{Frame, Item, Push, Request};
use sealdesk_tests::{proxy::Dir, world::World};
use serde_json::Value;

/// `text` as a message event of `who`.
fn message_from<'a>(who: &'a str, text: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |v| v["event"] == "message" && v["entry"]["sender"] == who && v["entry"]["text"] == text
}

/// Types `text` in `chat` (bob's) and waits until it is sent: bob's own message, or the error
/// that says why not.
async fn answer(chat: &mut JsonChat, text: &str) {
    chat.type_line(text).await;
    let sent = chat
        .until("bob's own message or an error", |v| {
            v["event"] == "error" || (v["event"] == "message" && v["entry"]["text"] == text)
        })
        .await;
    assert_eq!(
        sent["event"], "message",
        "bob's answer was not sent: {sent}"
    );
    assert_eq!(sent["entry"]["mine"], true, "{sent}");
}

/// carol's `history` shows `text` as said by bob.
async fn carol_reads_bob(w: &World, conv: &str, text: &str) {
    let history = ok(w, "carol", &["history", "--conversation", conv]).await;
    assert!(
        history
            .lines()
            .any(|l| l.starts_with('#') && l.contains(&format!("bob: {text}"))),
        "carol should read bob's {text:?}:\n{history}"
    );
}

/// carol writes `text`; bob's running `chat` shows it, then answers `reply`, which carol reads.
async fn exchange(w: &World, conv: &str, chat: &mut JsonChat, text: &str, reply: &str) {
    ok(w, "carol", &["send", "--conversation", conv, text]).await;
    chat.until(&format!("carol's {text:?}"), message_from("carol", text))
        .await;
    answer(chat, reply).await;
    carol_reads_bob(w, conv, reply).await;
}

#[tokio::test]
async fn an_agent_chatting_during_a_transfer_to_it_answers_and_after_a_restart_too() {
    let w = World::with_proxy().await;
    let conv = org_and_conversation(&w).await;
    add_agent(&w, "bob").await;

    // bob's chat runs before the conversation is his.
    let mut bob = JsonChat::start_with(&w, "bob", None, &[]);
    bob.until("ready", is("ready")).await;
    // alice transfers through the proxy, which holds her hand-off until bob's chat has taken
    // the new epoch's record: the order a running chat meets them in, made certain.
    let held: Arc<Mutex<Vec<Frame>>> = Arc::default();
    let kept = held.clone();
    w.proxy().set_hook(move |ctx, frame| {
        if ctx.dir == Dir::ToRelay
            && ctx.account == Some("alice")
            && matches!(
                &frame,
                Frame::Request {
                    body: Request::PutHandOff(_),
                    ..
                }
            )
        {
            kept.lock().unwrap().push(frame);
            return Vec::new();
        }
        vec![frame]
    });
    let via = w.proxy().url();
    let args = ["transfer", "--conversation", &conv, "--to", "bob"];
    let transfer = sealdesk_via(&w, "alice", &via, &args);
    let record_first = async {
        bob.until("the assignment", |v| {
            v["event"] == "notice" && v["kind"] == "assigned" && v["conversation"] == conv.as_str()
        })
        .await;
        // This relay serves bob the earlier records at once (a transfer brought him in), so
        // his chat takes the record with its chain; a relay that does not (an older one) has
        // it held back until the hand-off: `tests/tests/live_transfer_held.rs`.
        bob.until("the record taken", |v| {
            v["event"] == "notice"
                && v["kind"] == "epoch"
                && v["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("epoch 1 opened by alice"))
        })
        .await;
        let alice = *w.proxy().connections("alice").last().unwrap();
        for f in held.lock().unwrap().drain(..) {
            assert!(w.proxy().inject(alice, Dir::ToRelay, f));
        }
    };
    let (transferred, ()) = tokio::join!(transfer, record_first);
    assert!(
        transferred.ok,
        "{}\n{}",
        transferred.stdout, transferred.stderr
    );
    bob.type_line(&format!("/switch {conv}")).await;
    bob.until("selected", is("selected")).await;

    exchange(
        &w,
        &conv,
        &mut bob,
        "hello? anyone",
        "bob here, it ships today",
    )
    .await;
    let status = bob.quit_within(common::json_chat::EVENT_WAIT).await;
    assert!(status.success());
    // No epoch was refused on the way; through alice's hand-off bob reads epoch 0 too.
    let history = ok(&w, "bob", &["history", "--conversation", &conv]).await;
    assert!(!history.contains("refused"), "{history}");
    assert!(
        history.contains("carol: my order 1234 never came"),
        "{history}"
    );

    // A restarted chat goes on in the same epoch.
    let mut bob = JsonChat::start(&w, "bob", &conv);
    bob.until("selected", is("selected")).await;
    exchange(&w, &conv, &mut bob, "still there?", "yes, still here").await;
    let status = bob.quit_within(common::json_chat::EVENT_WAIT).await;
    assert!(status.success());
}

/// Under a policy without history hand-off no hand-off follows the record: bob's running chat
/// takes it with the earlier records the relay serves him (a blind transfer, PROTOCOL.md §7.6),
/// reads carol's next message and answers it — without reading anything of epoch 0. The proxy
/// delivers bob the assignment only after the record, the order in which a record pushed
/// first would be held back for a hand-off that never comes: it is not (a conversation not yet
/// his is read whole at its assignment).
#[tokio::test]
async fn an_agent_chatting_during_a_blind_transfer_to_it_answers() {
    let w = World::with_proxy().await;
    let conv = org_and_conversation_with(&w, &["--no-history-handoff"]).await;
    add_agent(&w, "bob").await;

    let assignment: Arc<Mutex<Vec<Frame>>> = Arc::default();
    let kept = assignment.clone();
    w.proxy().set_hook(move |ctx, frame| {
        if ctx.dir != Dir::ToClient || ctx.account != Some("bob") {
            return vec![frame];
        }
        match &frame {
            Frame::Push(Push::Assigned { .. }) => {
                kept.lock().unwrap().push(frame);
                Vec::new()
            }
            Frame::Push(Push::Item(s)) if matches!(&s.item, Item::Epoch(r) if r.epoch == 1) => {
                let mut out = vec![frame];
                out.append(&mut kept.lock().unwrap());
                out
            }
            _ => vec![frame],
        }
    });
    let mut bob = JsonChat::start_at(&w, "bob", &w.proxy().url(), None, &[]);
    bob.until("ready", is("ready")).await;
    ok(
        &w,
        "alice",
        &["transfer", "--conversation", &conv, "--to", "bob"],
    )
    .await;
    bob.until("the assignment", |v| {
        v["event"] == "notice" && v["kind"] == "assigned" && v["conversation"] == conv.as_str()
    })
    .await;
    bob.type_line(&format!("/switch {conv}")).await;
    bob.until("selected", is("selected")).await;

    exchange(
        &w,
        &conv,
        &mut bob,
        "hello? anyone",
        "bob here, starting fresh",
    )
    .await;
    let status = bob.quit_within(common::json_chat::EVENT_WAIT).await;
    assert!(status.success());
    let history = ok(&w, "bob", &["history", "--conversation", &conv]).await;
    assert!(!history.contains("refused"), "{history}");
    assert!(
        !history.contains("my order 1234 never came"),
        "bob starts blind: {history}"
    );
}
