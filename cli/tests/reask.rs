//! `sealdesk chat` when a reconnection's re-ask for agent-key pushes (`watch_agent_keys`, asked
//! again on every new session) fails (issue 22), driven through the binary: `chat --json` with
//! its relay behind a hostile proxy, every output line parsed as JSON.
//!
//! - The proxy answers the re-ask itself, oddly: the chat shows the warning the user reads,
//!   asks again at its catch-up, and keeps going (the line typed when the connection was cut is
//!   sent, and the next one too).
//! - The proxy cuts the connection at every re-ask: each reconnection is lost again before it
//!   catches up, and the chat waits twice as long before each next attempt (counted in the
//!   `lost` events it shows, one per attempt, not timed); once the relay lets the re-ask
//!   through, the chat is back, sends what was typed, and once the relay has answered a line
//!   sent after that catch-up, the next loss starts from the shortest wait again.
//! - The proxy lets every reconnection catch up and then cuts it at once: each costs the relay
//!   a full catch-up, so each is one more failed attempt and the waits grow as well (counted
//!   in the `lost` events); a line answered after a catch-up proves the connection, and the
//!   next loss starts from the shortest wait.
//!
//! - An upload's chunk sent after a catch-up and cancelled before its answer came (a local
//!   command typed meanwhile, `/help`) does not prove the connection: the loss that follows is
//!   one more failed attempt, not a new loss retried after the shortest wait.
//!
//! The first loss is made by cutting the connection at the chat's first `send` (the line is
//! kept and sent after the reconnection).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::json_chat::{JsonChat, is};

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    keys::SigningPublicKey,
    wire::{Frame, Request, Response, Welcome},
};
use sealdesk_tests::{
    proxy::{Ctx, Dir},
    world::{Via, World, open_chat, texts},
};
use serde_json::Value;

/// The words of the warning the chat shows when the relay did not take the re-ask.
const WARNING: &str =
    "the relay did not take the request to tell this chat at once of an agent's new key";

fn lost(v: &Value) -> bool {
    v["event"] == "connection" && v["state"] == "lost"
}

fn message(text: &str) -> impl Fn(&Value) -> bool + '_ {
    move |v| v["event"] == "message" && v["text"].as_str().is_some_and(|t| t.contains(text))
}

fn is_watch(body: &Request) -> bool {
    matches!(body, Request::WatchAgentKeys)
}

/// A frame after the welcome that is not a request: the relay closes the connection on it.
fn cut(log_key: SigningPublicKey) -> Vec<Frame> {
    vec![Frame::Welcome(Welcome {
        registered: true,
        log_key,
    })]
}

/// Org acme with alice; carol's conversation; carol's relay log key. Every client closed.
async fn carol_and_alice(w: &World) -> (ConversationId, SigningPublicKey) {
    let org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    let log_key = carol.session().welcome().log_key;
    carol.close().await;
    for a in org.agents {
        a.close().await;
    }
    org.master.close().await;
    (conv, log_key)
}

/// What the proxy does to carol's traffic, switched by the test.
#[derive(Default)]
struct Switches {
    /// Cut the connection at carol's next `send`.
    cut_next_send: AtomicBool,
    /// Answer carol's next re-ask with a list (an answer the client does not expect).
    odd_next_reask: AtomicBool,
    /// Cut the connection at every re-ask.
    cut_reasks: AtomicBool,
    /// carol's `watch_agent_keys` requests seen (the first is the chat's own ask).
    watches: AtomicUsize,
    /// Swallow carol's upload chunks (`attachment_put`): the relay never answers them.
    hold_uploads: AtomicBool,
    /// carol's upload chunks swallowed.
    uploads_held: AtomicUsize,
}

fn hook(
    w: &World,
    log_key: SigningPublicKey,
    sw: Arc<Switches>,
) -> impl FnMut(&Ctx<'_>, Frame) -> Vec<Frame> + Send + 'static {
    let injector = w.proxy().injector();
    move |ctx, frame| {
        if ctx.dir != Dir::ToRelay || ctx.account != Some("carol") {
            return vec![frame];
        }
        let Frame::Request { id, body } = &frame else {
            return vec![frame];
        };
        if matches!(body, Request::Send(_)) && sw.cut_next_send.swap(false, Ordering::SeqCst) {
            return cut(log_key);
        }
        if matches!(body, Request::AttachmentPut { .. }) && sw.hold_uploads.load(Ordering::SeqCst) {
            sw.uploads_held.fetch_add(1, Ordering::SeqCst);
            return Vec::new();
        }
        if !is_watch(body) {
            return vec![frame];
        }
        // The chat's first ask goes through; the re-asks are the proxy's to spoil.
        if sw.watches.fetch_add(1, Ordering::SeqCst) == 0 {
            return vec![frame];
        }
        if sw.cut_reasks.load(Ordering::SeqCst) {
            return cut(log_key);
        }
        if sw.odd_next_reask.swap(false, Ordering::SeqCst) {
            injector.inject(
                ctx.conn,
                Dir::ToClient,
                Frame::Response {
                    id: *id,
                    body: Response::Conversations(Vec::new()),
                },
            );
            return Vec::new();
        }
        vec![frame]
    }
}

/// Carol's chat in her conversation with alice, through the proxy with the re-ask hook (`hook`)
/// set, started and its conversation selected; with the conversation, the log key the hook
/// cuts by and its switches.
async fn carol_chatting(w: &World) -> (ConversationId, SigningPublicKey, Arc<Switches>, JsonChat) {
    let (conv, log_key) = carol_and_alice(w).await;
    let sw = Arc::new(Switches::default());
    w.proxy().set_hook(hook(w, log_key, Arc::clone(&sw)));
    let mut c = JsonChat::start_at(
        w,
        "carol",
        &w.url_via(Via::Proxy),
        Some(&conv.to_string()),
        &[],
    );
    c.until("selected", is("selected")).await;
    (conv, log_key, sw, c)
}

/// The chat's next `lost` event, as (attempts, retry_in_ms).
async fn next_loss(c: &mut JsonChat, what: &str) -> (u64, u64) {
    let l = c.until(what, lost).await;
    (
        l["attempts"].as_u64().expect("attempts"),
        l["retry_in_ms"].as_u64().expect("retry_in_ms"),
    )
}

/// The relay's answer to the re-ask is replaced by one the chat does not expect: the user is
/// told, in words, and the chat goes on — the line typed when the connection was cut is sent
/// after the reconnection, and the next line too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_warns_of_a_reask_not_taken_and_keeps_going() {
    let w = World::with_proxy().await;
    let (conv, _, sw, mut c) = carol_chatting(&w).await;
    assert_eq!(sw.watches.load(Ordering::SeqCst), 1, "the chat asked once");
    sw.odd_next_reask.store(true, Ordering::SeqCst);
    sw.cut_next_send.store(true, Ordering::SeqCst);
    c.type_line("hello").await;
    c.until("the connection lost", lost).await;
    let warning = c
        .until("the warning", |v| {
            v["event"] == "notice" && v["kind"] == "warning"
        })
        .await;
    let text = warning["text"].as_str().unwrap();
    assert!(text.starts_with(WARNING), "{text}");
    assert!(
        text.contains("asking again")
            && text.contains("the agent's key is still checked every minute"),
        "{text}"
    );
    c.until("the kept line sent", message("hello")).await;
    // The catch-up asked again, and the relay took it this time.
    assert_eq!(sw.watches.load(Ordering::SeqCst), 3);
    c.type_line("still here").await;
    c.until("the next line", message("still here")).await;
    c.type_line("/quit").await;
    c.until("bye", is("bye")).await;
    // Shown once, and nothing else went wrong.
    assert_eq!(
        c.seen
            .iter()
            .filter(|v| v["text"].as_str().is_some_and(|t| t.starts_with(WARNING)))
            .count(),
        1,
        "{:#?}",
        c.seen
    );
    assert!(
        !c.seen.iter().any(|v| v["event"] == "error"),
        "{:#?}",
        c.seen
    );
    let mut alice = w.reopen("alice").await;
    alice.sync_all().await.unwrap();
    assert_eq!(texts(&alice, &conv), ["carol: hello", "carol: still here"]);
    alice.close().await;
}

/// Every re-ask is cut: each reconnection is lost again before it catches up, and each next
/// attempt waits twice as long (100, 200, 400, 800 ms: the waits the chat announces, one
/// `lost` event per attempt). Once the re-ask goes through, the chat is back and sends the
/// line kept; a later loss starts from the shortest wait again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_cuts_every_reask_is_retried_with_backoff() {
    let w = World::with_proxy().await;
    let (_, _, sw, mut c) = carol_chatting(&w).await;
    sw.cut_reasks.store(true, Ordering::SeqCst);
    sw.cut_next_send.store(true, Ordering::SeqCst);
    c.type_line("hello").await;
    let mut losses = Vec::new();
    for n in 0..5 {
        losses.push(next_loss(&mut c, &format!("loss {n}")).await);
        if n == 4 {
            // Let the next re-ask through.
            sw.cut_reasks.store(false, Ordering::SeqCst);
        }
    }
    // The first loss (at the send), then one per reconnection cut at its re-ask.
    assert_eq!(
        losses,
        [(0, 100), (1, 200), (2, 400), (3, 800), (4, 1600)],
        "{:#?}",
        c.seen
    );
    // One connection per attempt: the first, four cut at the re-ask, then the one that stays
    // (its re-ask counted once it is through).
    c.until("the kept line sent", message("hello")).await;
    let connections: std::collections::BTreeSet<u64> = w
        .proxy()
        .seen()
        .iter()
        .filter(|s| s.account.as_deref() == Some("carol"))
        .map(|s| s.conn)
        .collect();
    assert_eq!(connections.len(), 1 + 4 + 1);
    assert_eq!(sw.watches.load(Ordering::SeqCst), 1 + 4 + 1);

    // Caught up, and then a line answered: the connection is proven, so the next loss starts
    // from the shortest wait.
    c.type_line("back").await;
    c.until("a line answered after the catch-up", message("back"))
        .await;
    sw.cut_next_send.store(true, Ordering::SeqCst);
    c.type_line("again").await;
    let l = c.until("the next loss", lost).await;
    assert_eq!(
        (l["attempts"].as_u64(), l["retry_in_ms"].as_u64()),
        (Some(0), Some(100))
    );
    c.until("the second line sent", message("again")).await;
    c.type_line("/quit").await;
    c.until("bye", is("bye")).await;
    assert!(
        !c.seen.iter().any(|v| v["event"] == "error"),
        "{:#?}",
        c.seen
    );
}

/// Cuts carol's newest connection (what the proxy does once the chat has caught up).
fn cut_newest(w: &World, log_key: SigningPublicKey) {
    let conn = *w
        .proxy()
        .connections("carol")
        .last()
        .expect("carol is connected");
    for frame in cut(log_key) {
        assert!(
            w.proxy().inject(conn, Dir::ToRelay, frame),
            "the connection is live"
        );
    }
}

/// Waits until the chat has reconnected and caught up (`reconnected`, then the conversation
/// list it shows at the end of its catch-up).
async fn caught_up(c: &mut JsonChat) {
    c.until("reconnected", |v| {
        v["event"] == "connection" && v["state"] == "reconnected"
    })
    .await;
    c.until("the catch-up's end", is("conversations")).await;
}

/// The relay lets every reconnection catch up, then cuts it at once: each is one more failed
/// attempt (it cost the relay a full catch-up), so the waits grow — 100, 200, 400, 800, 1600
/// ms, one `lost` event per attempt — rather than starting over at 100 ms after each catch-up.
/// A line the relay answers after a catch-up proves the connection: the next loss starts from
/// the shortest wait again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_cuts_right_after_each_catch_up_is_retried_with_growing_waits() {
    let w = World::with_proxy().await;
    let (conv, log_key, sw, mut c) = carol_chatting(&w).await;
    sw.cut_next_send.store(true, Ordering::SeqCst);
    c.type_line("hello").await;
    let mut losses = Vec::new();
    for n in 0..5 {
        losses.push(next_loss(&mut c, &format!("loss {n}")).await);
        if n < 4 {
            caught_up(&mut c).await;
            cut_newest(&w, log_key);
        }
    }
    // The first loss (at the send), then one per reconnection cut right after its catch-up.
    assert_eq!(
        losses,
        [(0, 100), (1, 200), (2, 400), (3, 800), (4, 1600)],
        "{:#?}",
        c.seen
    );
    // Every reconnection did catch up: the line kept at the first loss was sent in the first.
    assert!(c.seen.iter().any(message("hello")), "{:#?}", c.seen);

    // Caught up, and a line answered: the next loss is a new one, retried after 100 ms.
    caught_up(&mut c).await;
    c.type_line("proof").await;
    c.until("a line answered after the catch-up", message("proof"))
        .await;
    cut_newest(&w, log_key);
    assert_eq!(
        next_loss(&mut c, "the loss after the proof").await,
        (0, 100)
    );
    caught_up(&mut c).await;
    c.type_line("/quit").await;
    c.until("bye", is("bye")).await;
    assert!(
        !c.seen.iter().any(|v| v["event"] == "error"),
        "{:#?}",
        c.seen
    );
    let mut alice = w.reopen("alice").await;
    alice.sync_all().await.unwrap();
    assert_eq!(texts(&alice, &conv), ["carol: hello", "carol: proof"]);
    alice.close().await;
}

/// A chunk of an upload sent after a catch-up, its answer held back, and then a local command
/// (`/help`, which asks the relay nothing) typed while it waits: the command cancels the
/// chunk's request mid-way (the engine's `select!` drops it) and succeeds. Nothing was
/// answered after the catch-up, so the loss that follows is one more failed attempt (200 ms),
/// not a new one retried after 100 ms — counting requests sent, the cancelled chunk counted as
/// answered. Let through, the upload resumes and is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_chunk_cancelled_by_a_local_command_does_not_reset_the_backoff() {
    let w = World::with_proxy().await;
    let (_, log_key, sw, mut c) = carol_chatting(&w).await;
    sw.hold_uploads.store(true, Ordering::SeqCst);
    let file = w.home("carol").join("report.txt");
    std::fs::write(&file, b"the printer is on fire").unwrap();
    c.type_line(&format!("/attach {}", file.display())).await;
    c.until("the upload started", is("upload")).await;
    let held = async |n: usize| {
        let held = Arc::clone(&sw);
        sealdesk_tests::wait::eventually(&format!("chunk request {n} held"), async || {
            (held.uploads_held.load(Ordering::SeqCst) >= n).then_some(())
        })
        .await;
    };
    held(1).await;
    cut_newest(&w, log_key);
    assert_eq!(next_loss(&mut c, "the first loss").await, (0, 100));
    caught_up(&mut c).await;
    // The upload goes on after the catch-up: its chunk is sent, and held.
    held(2).await;
    c.type_line("/help").await;
    c.until("the help", |v| {
        v["event"] == "notice"
            && v["kind"] == "info"
            && v["text"].as_str().is_some_and(|t| t.contains("/attach"))
    })
    .await;
    cut_newest(&w, log_key);
    assert_eq!(
        next_loss(&mut c, "the loss after the cancelled chunk").await,
        (1, 200),
        "{:#?}",
        c.seen
    );
    sw.hold_uploads.store(false, Ordering::SeqCst);
    caught_up(&mut c).await;
    c.until("the file sent", |v| {
        v["event"] == "upload" && v["seq"].is_u64()
    })
    .await;
    c.type_line("/quit").await;
    c.until("bye", is("bye")).await;
    assert!(
        !c.seen.iter().any(|v| v["event"] == "error"),
        "{:#?}",
        c.seen
    );
}
