//! Gap refetch, proven through the hostile relay: the relay withholds a range of sequence
//! numbers (three consecutive messages, from history pages and live pushes alike). The client
//! sees the senders' counters jump, asks the relay for the missing range again and closes the
//! gap as soon as an answer holds the items — each shown once, in order. A relay that never
//! delivers them leaves a loud gap, asked for a bounded number of times and then shown as not
//! delivered.
//!
//! Hermetic: loopback only, temporary directories, the fast test KDF.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use sealdesk_client::{Client, client::HistoryLine};
use sealdesk_protocol::{card::Role, ids::ConversationId};
use sealdesk_tests::{
    withhold::{withhold, withhold_with},
    world::{Via, World, open_chat, texts},
};

/// A gap shown: (sender, missing counters, requests made when given up).
type Gap = (String, Vec<(u64, u64)>, Option<u32>);

/// The gaps shown.
fn gaps(c: &Client, conv: &ConversationId) -> Vec<Gap> {
    c.history(conv)
        .unwrap()
        .lines
        .into_iter()
        .filter_map(|l| match l {
            HistoryLine::Gap {
                sender,
                counters,
                requests,
                ..
            } => Some((sender, counters, requests)),
            _ => None,
        })
        .collect()
}

/// carol (directly) sends m0..m5 in a fresh conversation; returns the world, carol, the
/// conversation and the sequence numbers.
async fn six_messages() -> (World, Client, ConversationId, Vec<u64>) {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    let mut seqs = Vec::new();
    for i in 0..6 {
        seqs.push(carol.send_text(&conv, &format!("m{i}")).await.unwrap());
    }
    (w, carol, conv, seqs)
}

/// The relay leaves m1..m3 out the first time each would reach alice (a page or a push);
/// the same sync that shows the counters jump asks for the range again, and the honest answer
/// closes the gap: all six shown once, in order, no gap; later syncs change nothing.
#[tokio::test]
async fn a_range_withheld_on_first_delivery_is_refetched_and_closed() {
    let (w, mut carol, conv, seqs) = six_messages().await;
    let range: HashSet<u64> = seqs[1..4].iter().copied().collect();
    let withheld_once: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let held = Arc::clone(&withheld_once);
    // Each the first time only: withheld while not yet in `withheld_once`.
    w.proxy().set_hook(withhold("alice", move |s| {
        s.conversation == conv && range.contains(&s.seq) && held.lock().unwrap().insert(s.seq)
    }));
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    let asked_before = w.proxy().history_afters("alice").len();
    alice.sync_all().await.unwrap();
    assert_eq!(
        withheld_once.lock().unwrap().len(),
        3,
        "the relay withheld the range once"
    );
    let asked: Vec<u64> = w.proxy().history_afters("alice")[asked_before..].to_vec();
    assert!(
        asked.iter().filter(|a| **a < seqs[1]).count() >= 2,
        "the range was asked for again after the first page: {asked:?}"
    );
    let all: Vec<String> = (0..6).map(|i| format!("carol: m{i}")).collect();
    assert_eq!(texts(&alice, &conv), all);
    assert!(gaps(&alice, &conv).is_empty(), "{:?}", gaps(&alice, &conv));

    // Nothing is shown twice, then or after more traffic.
    carol.send_text(&conv, "m6").await.unwrap();
    alice.sync_all().await.unwrap();
    alice.sync_all().await.unwrap();
    let mut all = all;
    all.push("carol: m6".into());
    assert_eq!(texts(&alice, &conv), all);
    assert!(gaps(&alice, &conv).is_empty());
}

/// The relay withholds the same range for good. The gap is shown from the first sync; each
/// sync after the cursor moved asks again, at most `REFETCH_LIMIT` times; then the gap is
/// shown as not delivered after that many requests, and no more are made.
#[tokio::test]
async fn a_range_withheld_for_good_is_reported_not_delivered_after_the_retries() {
    use sealdesk_client::client::REFETCH_LIMIT;
    let (w, mut carol, conv, seqs) = six_messages().await;
    let range: HashSet<u64> = seqs[1..4].iter().copied().collect();
    // Every push to alice is dropped; her pages lose the range.
    w.proxy().set_hook(withhold_with(
        "alice",
        |_| true,
        move |items, _| items.retain(|s| s.conversation != conv || !range.contains(&s.seq)),
    ));
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    assert_eq!(
        gaps(&alice, &conv),
        [("carol".to_owned(), vec![(1, 3)], None)]
    );
    let below = |w: &World| {
        w.proxy()
            .history_afters("alice")
            .iter()
            .filter(|a| **a < seqs[1])
            .count()
    };
    for i in 0..REFETCH_LIMIT + 2 {
        carol.send_text(&conv, &format!("later {i}")).await.unwrap();
        alice.sync_all().await.unwrap();
    }
    let asked = below(&w);
    assert!(
        asked <= REFETCH_LIMIT as usize + 1,
        "the range was asked for {asked} times"
    );
    assert_eq!(
        gaps(&alice, &conv),
        [("carol".to_owned(), vec![(1, 3)], Some(REFETCH_LIMIT))]
    );
    carol.send_text(&conv, "one more").await.unwrap();
    alice.sync_all().await.unwrap();
    assert_eq!(below(&w), asked, "asked again after giving up");
    let shown = texts(&alice, &conv);
    assert!(!shown.iter().any(|t| t == "carol: m1" || t == "carol: m3"));
}
