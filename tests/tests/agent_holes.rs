//! Sequence holes seen by an agent (PROTOCOL.md §13.10). The relay names, in each history
//! page, the runs of sequence numbers it skips for the caller (epochs it is no reader of,
//! consents and notices) and the conversation's head, so an agent can tell an item withheld
//! from one it may not read:
//!
//! - an item of the agent's own epoch dropped from its pages is a hole, asked for again;
//! - a skipped run that claims the agent's own epoch is a lie, shown as withheld;
//! - a page that stops short of the head (the newest item withheld) shows a hole;
//! - an honest relay, with a conversation transferred to the agent after consents and
//!   release notices, shows none.
//!
//! Hermetic: loopback only, temporary directories, the fast test KDF.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use sealdesk_client::{
    Client,
    account::{EpochStatus, LogEntry},
    client::holes::Claim,
};
use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    release::Scope,
    wire::{Frame, Item, Response, Sequenced, SkippedRange},
};
use sealdesk_tests::{
    proxy::Dir,
    transcript::{hand_over, release_by_consent},
    withhold::{self, withhold, withhold_with},
    world::{Via, World, open_chat, texts},
};

/// The `Withheld` lines of a history: (from, to, claim).
fn withheld(c: &Client, conv: &ConversationId) -> Vec<(u64, u64, Option<Claim>)> {
    let lines = withhold::withheld(c, conv).into_iter();
    lines.map(|l| (l.from, l.to, l.claimed)).collect()
}

/// carol opens a chat with alice (epoch 0) and writes; she consents and the master's release
/// logs its notices; alice answers and hands the chat to dave (epoch 1); carol thanks him
/// twice. dave has read nothing of it: his client is closed. Returns the world, the
/// conversation and carol's messages in epoch 1 as (seq, text), in order.
async fn transferred() -> (World, ConversationId, Vec<(u64, String)>) {
    let w = World::with_proxy().await;
    let mut org = w.org(&["alice", "dave"], None).await;
    org.agents.remove(1).close().await;
    let mut alice = org.agents.remove(0);
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();
    let mut master = org.master;
    release_by_consent(&w, &mut carol, &mut master, conv, Scope::Full).await;
    hand_over(&mut alice, &conv, "dave").await;
    alice.close().await;
    carol.sync_all().await.unwrap();
    let mut sent = Vec::new();
    for text in ["thanks", "anything else?"] {
        let seq = carol.send_text(&conv, text).await.unwrap();
        sent.push((seq, text.to_owned()));
    }
    carol.close().await;
    (w, conv, sent)
}

/// The skipped runs of the relay's answers to dave's `History` requests.
fn skipped_seen(w: &World) -> Vec<SkippedRange> {
    w.proxy()
        .seen()
        .into_iter()
        .filter(|s| s.dir == Dir::ToClient && s.account.as_deref() == Some("dave"))
        .filter_map(|s| match s.frame {
            Frame::Response {
                body: Response::Items { skipped, .. },
                ..
            } => Some(skipped),
            _ => None,
        })
        .flatten()
        .collect()
}

fn is_epoch1(conv: &ConversationId, s: &Sequenced) -> bool {
    s.conversation == *conv && matches!(&s.item, Item::Epoch(r) if r.epoch == 1)
}

/// An honest relay: dave skips the consent and the notices, named by the relay, and sees no
/// hole; carol's messages are shown.
#[tokio::test]
async fn an_honest_relay_shows_no_false_hole_after_a_transfer() {
    let (w, conv, sent) = transferred().await;
    let mut dave = w.reopen_via("dave", Via::Proxy).await;
    dave.sync_all().await.unwrap();
    let runs = skipped_seen(&w);
    assert!(
        runs.iter().any(|r| r.epoch.is_none()),
        "the consent and the notices skipped: {runs:?}"
    );
    assert_eq!(withheld(&dave, &conv), Vec::new());
    let shown = texts(&dave, &conv);
    for (_, text) in &sent {
        assert!(shown.contains(&format!("carol: {text}")), "{shown:?}");
    }
    dave.sync_all().await.unwrap();
    assert_eq!(withheld(&dave, &conv), Vec::new());
}

/// The relay drops epoch 1's record (dave's own epoch, an item with no counter) from dave's
/// first page and push, without naming it: the sequence number is a hole, asked for again in
/// the same sync, and epoch 1 and carol's messages are then shown.
#[tokio::test]
async fn an_item_of_the_agents_epoch_dropped_is_fetched_again() {
    let (w, conv, sent) = transferred().await;
    let dropped = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&dropped);
    w.proxy().set_hook(withhold_with(
        "dave",
        move |s| is_epoch1(&conv, s),
        move |items, _| {
            if !d.load(Ordering::SeqCst) && items.iter().any(|s| is_epoch1(&conv, s)) {
                items.retain(|s| !is_epoch1(&conv, s));
                d.store(true, Ordering::SeqCst);
            }
        },
    ));
    let mut dave = w.reopen_via("dave", Via::Proxy).await;
    dave.sync_all().await.unwrap();
    assert!(dropped.load(Ordering::SeqCst), "the record was dropped");
    let log = dave.account().log(&conv).unwrap();
    assert!(
        log.iter().any(|e| matches!(
            e,
            LogEntry::Epoch {
                epoch: 1,
                status: EpochStatus::Member,
                ..
            }
        )),
        "{log:#?}"
    );
    let shown = texts(&dave, &conv);
    for (_, text) in &sent {
        assert!(shown.contains(&format!("carol: {text}")), "{shown:?}");
    }
    assert_eq!(withheld(&dave, &conv), Vec::new());
    assert!(
        w.proxy().history_afters("dave").len() >= 2,
        "asked again: {:?}",
        w.proxy().history_afters("dave")
    );
}

/// The relay replaces carol's first message in epoch 1 with a skipped run claiming epoch 1,
/// which dave is a member of: a lie, shown as withheld with the claim.
#[tokio::test]
async fn a_placeholder_claiming_the_agents_own_epoch_is_reported() {
    let (w, conv, sent) = transferred().await;
    let target = sent[0].0;
    let hit = move |s: &Sequenced| s.conversation == conv && s.seq == target;
    w.proxy()
        .set_hook(withhold_with("dave", hit, move |items, skipped| {
            if items.iter().any(hit) {
                items.retain(|s| s.seq != target);
                skipped.push(SkippedRange {
                    from: target,
                    to: target,
                    epoch: Some(1),
                });
            }
        }));
    let mut dave = w.reopen_via("dave", Via::Proxy).await;
    dave.sync_all().await.unwrap();
    assert_eq!(
        withheld(&dave, &conv),
        vec![(target, target, Some(Claim::Epoch(1)))]
    );
    assert!(!texts(&dave, &conv).contains(&"carol: thanks".to_owned()));
}

/// The relay withholds only the newest item (carol's last message) and says `more = false`:
/// the head it names shows the hole. Served again, the item is shown and the hole closed.
#[tokio::test]
async fn the_newest_item_withheld_shows_a_hole_through_the_head() {
    let (w, conv, sent) = transferred().await;
    let (last, text) = sent.last().cloned().unwrap();
    w.proxy().set_hook(withhold("dave", move |s| s.seq == last));
    let mut dave = w.reopen_via("dave", Via::Proxy).await;
    dave.sync_all().await.unwrap();
    assert_eq!(withheld(&dave, &conv), vec![(last, last, None)]);
    assert!(!texts(&dave, &conv).contains(&format!("carol: {text}")));
    w.proxy().passthrough();
    dave.sync_all().await.unwrap();
    assert_eq!(withheld(&dave, &conv), Vec::new());
    assert!(texts(&dave, &conv).contains(&format!("carol: {text}")));
}
