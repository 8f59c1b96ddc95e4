//! Items without a sender counter, withheld by a hostile relay from the customer: an epoch
//! record and release notices. The relay numbers a conversation's items without gaps and the
//! customer may read every one, so the sequence number its cursor jumps over is asked for again
//! (as missing counters are) and the item processed as if it had come in order — the late epoch
//! opening the messages refused for want of it. Withheld for good, the hole is asked for at
//! most `REFETCH_LIMIT` times and then shown as not delivered.
//!
//! Hermetic: loopback only, temporary directories, the fast test KDF.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
};

use sealdesk_client::{
    Client,
    account::{EpochStatus, LogEntry},
    client::REFETCH_LIMIT,
};
use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    release::{Justification, Scope},
    wire::{Item, Sequenced},
};
use sealdesk_tests::{
    transcript::{hand_over, release},
    withhold::{self, withhold},
    world::{Via, World, open_chat},
};

/// The `Withheld` lines of a history: (from, to, requests when given up).
fn withheld(c: &Client, conv: &ConversationId) -> Vec<(u64, u64, Option<u32>)> {
    let lines = withhold::withheld(c, conv).into_iter();
    lines.map(|l| (l.from, l.to, l.requests)).collect()
}

/// Whether the relay would withhold `s`: epoch 1's record or a release notice.
fn target(conv: &ConversationId, s: &Sequenced) -> bool {
    s.conversation == *conv
        && match &s.item {
            Item::Epoch(r) => r.epoch == 1,
            Item::Notice { .. } => true,
            _ => false,
        }
}

/// carol opens a chat and writes; she consents and the master's release logs two notices in
/// the conversation; alice then hands the chat to dave (epoch 1), who answers. carol has seen
/// none of it: her client is closed. Returns the world, the conversation and dave.
async fn released_and_transferred() -> (World, ConversationId, Client) {
    let w = World::with_proxy().await;
    let mut org = w.org(&["alice", "dave"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();
    let token = carol
        .grant_consent(&conv, None, Scope::Full, 3600, "quality review")
        .await
        .unwrap();
    carol.close().await;
    let mut master = org.master;
    release(&w, &mut master, conv, Justification::Consent(token)).await;
    let mut dave = org.agents.remove(1);
    let mut alice = org.agents.remove(0);
    hand_over(&mut alice, &conv, "dave").await;
    dave.sync_all().await.unwrap();
    dave.send_text(&conv, "refund issued").await.unwrap();
    alice.close().await;
    (w, conv, dave)
}

/// The relay withholds epoch 1's record and the notices the first time each would reach
/// carol. The same sync asks for the skipped sequence numbers again: the notices are shown,
/// epoch 1 is opened, and dave's message — refused while its epoch was unknown — is shown.
#[tokio::test]
async fn a_withheld_epoch_record_and_notices_are_fetched_again() {
    let (w, conv, _dave) = released_and_transferred().await;
    let held: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let h = Arc::clone(&held);
    // Each the first time only: withheld while not yet in `held`.
    w.proxy().set_hook(withhold("carol", move |s| {
        target(&conv, s) && h.lock().unwrap().insert(s.seq)
    }));
    let mut carol = w.reopen_via("carol", Via::Proxy).await;
    carol.sync_all().await.unwrap();
    let held: Vec<u64> = held.lock().unwrap().iter().copied().collect();
    assert_eq!(held.len(), 3, "epoch 1's record and two notices: {held:?}");
    assert!(
        withheld(&carol, &conv).is_empty(),
        "{:?}",
        withheld(&carol, &conv)
    );
    let log = carol.account().log(&conv).unwrap();
    let notices: Vec<u64> = log
        .iter()
        .filter(|e| matches!(e, LogEntry::Notice { .. }))
        .map(LogEntry::seq)
        .collect();
    assert_eq!(notices.len(), 2, "{log:#?}");
    assert!(log.iter().any(|e| matches!(
        e,
        LogEntry::Epoch {
            epoch: 1,
            status: EpochStatus::Member,
            ..
        }
    )));
    assert!(
        log.iter().any(|e| matches!(
            e,
            LogEntry::Message { sender, text, .. } if sender == "dave" && text == "refund issued"
        )),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|e| matches!(e, LogEntry::Rejected { .. })),
        "{log:#?}"
    );
    // Later syncs ask nothing more and show nothing twice.
    let asked = w.proxy().history_afters("carol").len();
    carol.sync_all().await.unwrap();
    assert_eq!(w.proxy().history_afters("carol").len(), asked + 1);
    assert_eq!(carol.account().log(&conv).unwrap().len(), log.len());
}

/// The relay withholds them for good: the holes are shown from the first sync, asked for
/// again each time the cursor moved, at most `REFETCH_LIMIT` times, then shown as not
/// delivered; no request is made for them after that.
#[tokio::test]
async fn withheld_for_good_they_show_as_a_gap() {
    let (w, conv, mut dave) = released_and_transferred().await;
    w.proxy()
        .set_hook(withhold("carol", move |s| target(&conv, s)));
    let mut carol = w.reopen_via("carol", Via::Proxy).await;
    carol.sync_all().await.unwrap();
    let first = withheld(&carol, &conv);
    assert_eq!(
        first.len(),
        2,
        "the notices and epoch 1's record: {first:?}"
    );
    assert!(first.iter().all(|(_, _, r)| r.is_none()), "{first:?}");
    let low = first[0].0;
    let below = |w: &World| {
        w.proxy()
            .history_afters("carol")
            .iter()
            .filter(|a| **a < low)
            .count()
    };
    for i in 0..REFETCH_LIMIT + 2 {
        dave.send_text(&conv, &format!("later {i}")).await.unwrap();
        carol.sync_all().await.unwrap();
    }
    let asked = below(&w);
    let shown = withheld(&carol, &conv);
    assert_eq!(
        shown,
        first
            .iter()
            .map(|(a, b, _)| (*a, *b, Some(REFETCH_LIMIT)))
            .collect::<Vec<_>>()
    );
    dave.send_text(&conv, "one more").await.unwrap();
    carol.sync_all().await.unwrap();
    assert_eq!(below(&w), asked, "asked again after giving up");
}
