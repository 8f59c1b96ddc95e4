//! The hostile relay pages a conversation's history wrongly: items listed out of order in a
//! page, an item left out (until an honest refetch, for a bounded number of refetches in a
//! rotated epoch, or for good), and pages that say `more` without ever advancing. The client
//! shows every message once and in order, keeps every missing one a loud gap, and stops an
//! endless paging with a named error.
//!
//! Hermetic: loopback only, temporary directories, the fast test KDF. No timing assertions:
//! the only waits are generous bounds ([`sealdesk_tests::STEP`]) that keep a broken test from
//! hanging. `SECURITY.md` maps each attack to its test and the observed result; the other
//! `hostile_*.rs` files hold the rest of the hostile relay's attacks, and
//! [`sealdesk_tests::hostile`] its shared hooks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use sealdesk_client::{ClientError, client::HistoryLine};
use sealdesk_protocol::wire::{Frame, Request, Response};
use sealdesk_tests::{
    STEP,
    hostile::carol_sends_numbered,
    timeline::{gaps, items, lines, rejected},
    withhold::pages_for,
    world::{MASTER, Via, World, carol_caught_up, texts},
};

// ---- history ordering: reordered pages, dropped items, refetch -----------------------------

/// The relay lists two items of a history page the wrong way round (later sequence number
/// first): both are kept and shown in order, with no gap — neither is skipped as already seen.
#[tokio::test]
async fn swapped_items_in_a_history_page_are_both_shown_in_order() {
    let w = World::with_proxy().await;
    let (_master, _carol, conv, seqs) = carol_sends_numbered(&w, None, 4).await;
    let (s1, s2) = (seqs[1], seqs[2]);
    w.proxy().set_hook(pages_for("alice", move |items| {
        let a = items.iter().position(|s| s.seq == s1);
        let b = items.iter().position(|s| s.seq == s2);
        if let (Some(a), Some(b)) = (a, b) {
            items.swap(a, b);
        }
    }));
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    assert_eq!(
        texts(&alice, &conv),
        ["carol: m0", "carol: m1", "carol: m2", "carol: m3"]
    );
    assert!(gaps(&alice, &conv).is_empty(), "{:?}", gaps(&alice, &conv));
    assert!(rejected(&alice, &conv).is_empty());
    // The relay did swap them in what it sent.
    assert!(w.proxy().seen().iter().any(|seen| matches!(
        &seen.frame,
        Frame::Response { body: Response::Items { items, .. }, .. }
            if items.windows(2).any(|p| p[0].seq == s2 && p[1].seq == s1)
    )));
}

/// The relay leaves one item out of the history pages (and its push): the cursor moves past
/// it, the gap is shown, and every later sync asks for the gap's range again; once the relay
/// answers honestly the message is shown in its place and the gap closes.
#[tokio::test]
async fn dropped_item_is_a_gap_until_an_honest_refetch_closes_it() {
    let w = World::with_proxy().await;
    let (_master, mut carol, conv, seqs) = carol_sends_numbered(&w, None, 3).await;
    let s1 = seqs[1];
    let dropping = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let d = Arc::clone(&dropping);
    w.proxy().set_hook(pages_for("alice", move |items| {
        if d.load(std::sync::atomic::Ordering::SeqCst) {
            items.retain(|s| s.seq != s1);
        }
    }));
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    assert_eq!(texts(&alice, &conv), ["carol: m0", "carol: m2"]);
    assert_eq!(gaps(&alice, &conv), [("carol".to_owned(), vec![1])]);
    let cursor = alice.meta(&conv).unwrap().cursor;
    assert!(cursor > s1, "the cursor moved past the dropped item");

    // A sync that moves nothing does not ask again; one after a new message does, and the
    // gap stays while the relay still drops it.
    let below = |w: &World| {
        w.proxy()
            .history_afters("alice")
            .iter()
            .filter(|a| **a < s1)
            .count()
    };
    let asked = below(&w);
    alice.sync_all().await.unwrap();
    assert_eq!(
        below(&w),
        asked,
        "a refetch although the cursor did not move"
    );
    carol.send_text(&conv, "m3").await.unwrap();
    alice.sync_all().await.unwrap();
    assert!(below(&w) > asked, "no refetch of the gap's range");
    assert_eq!(gaps(&alice, &conv), [("carol".to_owned(), vec![1])]);

    // The relay answers honestly: the gap closes, the message is shown in order, once.
    dropping.store(false, std::sync::atomic::Ordering::SeqCst);
    carol.send_text(&conv, "m4").await.unwrap();
    alice.sync_all().await.unwrap();
    assert_eq!(
        texts(&alice, &conv),
        [
            "carol: m0",
            "carol: m1",
            "carol: m2",
            "carol: m3",
            "carol: m4"
        ]
    );
    assert!(gaps(&alice, &conv).is_empty());
    assert!(rejected(&alice, &conv).is_empty());
    alice.sync_all().await.unwrap();
    assert_eq!(texts(&alice, &conv).len(), 5);
}

/// A message of an epoch that has since rotated is dropped for good. However many syncs
/// follow (each after a new message, so the cursor moves), the gap's range is asked for at
/// most `REFETCH_LIMIT` times, never beyond the next epoch's record; then the gap stays shown
/// as not delivered after that many requests.
#[tokio::test]
async fn refetch_of_a_gap_in_a_rotated_epoch_is_bounded() {
    use sealdesk_client::client::REFETCH_LIMIT;
    let w = World::with_proxy().await;
    let (_master, mut carol, conv, seqs) = carol_sends_numbered(&w, Some(3), 3).await;
    let s1 = seqs[1];
    w.proxy().set_hook(pages_for("alice", move |items| {
        items.retain(|s| s.seq != s1)
    }));
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    assert_eq!(gaps(&alice, &conv), [("carol".to_owned(), vec![1])]);
    let first = alice.account().epochs(&conv).unwrap()[0].seq;
    // Requests from the gap's epoch record on; the initial catch-up may start there too.
    let refetches = |w: &World| {
        w.proxy()
            .history_afters("alice")
            .iter()
            .filter(|a| **a == first)
            .count()
    };
    let initial = refetches(&w) - 1;
    for i in 3..12 {
        carol.send_text(&conv, &format!("m{i}")).await.unwrap();
        alice.sync_all().await.unwrap();
    }
    let epochs = alice.account().epochs(&conv).unwrap();
    assert!(epochs.len() >= 3, "the conversation did not rotate");
    assert_eq!(
        refetches(&w) - initial,
        REFETCH_LIMIT as usize,
        "the gap was asked for more often than the limit"
    );
    assert_eq!(texts(&alice, &conv).len(), 11);
    let gap = lines(&alice, &conv)
        .into_iter()
        .find(|l| matches!(l, HistoryLine::Gap { .. }))
        .unwrap();
    assert!(
        matches!(&gap, HistoryLine::Gap { counters, requests, epoch, .. }
            if *counters == [(1, 1)] && *requests == Some(REFETCH_LIMIT) && *epoch == 0),
        "{gap:?}"
    );
    assert!(
        sealdesk_cli::print::render_line(&gap).contains("not delivered after 3 requests"),
        "{}",
        sealdesk_cli::print::render_line(&gap)
    );
    // Still so after reopening from disk, and no more requests.
    alice.close().await;
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    carol.send_text(&conv, "m12").await.unwrap();
    alice.sync_all().await.unwrap();
    assert_eq!(refetches(&w) - initial, REFETCH_LIMIT as usize);
    assert_eq!(gaps(&alice, &conv), [("carol".to_owned(), vec![1])]);
}

/// The relay drops an item for good: the gap stays shown through every sync, and still after
/// the sender's later messages have pushed its counter out of the reordering window (where it
/// could no longer be accepted) — it never silently disappears.
#[tokio::test]
async fn item_dropped_for_good_stays_a_loud_gap() {
    let w = World::with_proxy().await;
    let (_master, mut carol, conv, seqs) = carol_sends_numbered(&w, None, 3).await;
    let s1 = seqs[1];
    w.proxy().set_hook(pages_for("alice", move |items| {
        items.retain(|s| s.seq != s1)
    }));
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    for _ in 0..3 {
        alice.sync_all().await.unwrap();
        assert_eq!(gaps(&alice, &conv), [("carol".to_owned(), vec![1])]);
    }
    // carol writes on until counter 1 is more than a window behind her latest. Each send
    // costs a few frames (the catch-up around it), so she reconnects every hundred messages:
    // one connection's frame budget (`limits.frame_burst`) is not what this test is about, and
    // a fast machine would otherwise spend it and be closed.
    let window = sealdesk_protocol::message::REORDER_WINDOW;
    for i in 3..=window + 2 {
        if i % 100 == 0 {
            carol.close().await;
            carol = w.reopen_via("carol", Via::Relay).await;
        }
        carol.send_text(&conv, &format!("m{i}")).await.unwrap();
    }
    alice.sync_all().await.unwrap();
    assert_eq!(texts(&alice, &conv).len() as u64, window + 2);
    assert_eq!(
        gaps(&alice, &conv),
        [("carol".to_owned(), vec![1])],
        "the gap left the reordering window and disappeared"
    );
    assert!(rejected(&alice, &conv).is_empty());
    // Reopened from disk: still there.
    alice.close().await;
    let alice = w.reopen_via("alice", Via::Proxy).await;
    assert_eq!(gaps(&alice, &conv), [("carol".to_owned(), vec![1])]);
}

// ---- paging that never advances ------------------------------------------------------------

/// The relay pages a conversation's history without moving on: every page says `more`, and
/// each is the same. Catching up (`sync`) and reading the whole history (the master's
/// `dispute open`) used to ask again forever; both stop with `ClientError::ImpossibleNumber`.
#[tokio::test]
async fn history_pages_that_never_advance_are_refused() {
    let w = World::with_proxy().await;
    let (mut carol, conv, _) = carol_caught_up(&w, &["one", "two"]).await;
    let mut master = w.reopen_via(MASTER, Via::Proxy).await;
    let page = items(&carol, &conv).await;
    assert!(page.len() >= 3, "{page:?}");
    w.proxy()
        .set_hook(move |ctx, frame| match (ctx.request, frame) {
            (Some(Request::History { .. }), Frame::Response { id, .. }) => vec![Frame::Response {
                id,
                body: Response::Items {
                    items: page.clone(),
                    more: true,
                    skipped: Vec::new(),
                    head: None,
                },
            }],
            (_, frame) => vec![frame],
        });
    let paging = |r: Result<(), ClientError>| match r {
        Err(ClientError::ImpossibleNumber { what, .. }) => assert_eq!(what, "history page"),
        other => panic!("expected ImpossibleNumber, got {other:?}"),
    };
    paging(
        tokio::time::timeout(STEP, carol.sync(&conv))
            .await
            .expect("sync kept paging")
            .map(drop),
    );
    paging(
        tokio::time::timeout(STEP, master.open_dispute(&conv, None, "chargeback"))
            .await
            .expect("the history walk kept paging")
            .map(drop),
    );
    // Honest paging again: both work.
    w.proxy().passthrough();
    carol.sync(&conv).await.unwrap();
    assert_eq!(texts(&carol, &conv), vec!["carol: one", "carol: two"]);
    master
        .open_dispute(&conv, None, "chargeback")
        .await
        .unwrap();
}
