//! A relay that pages a conversation's history without end (issue 20; PROTOCOL.md §13.10
//! "How far a walk goes"): pages whose `head` grows with every page, a head claimed far beyond
//! anything served, a page ending beyond its own head, a head that goes back or stops being
//! named, an empty page with `more`. Catching up (`Client::sync`) and the master's walk over
//! the whole history (`dispute open`) stop — at the head the first page named, at the page
//! budget (`MAX_SYNC_PAGES`), or with `ClientError::ImpossibleNumber` — and keep what they
//! read; honest paging works again afterwards.
//!
//! The proxy makes up every page itself: runs of one sequence number each ("items you may not
//! read"), which cost a hostile relay nothing and move the cursor on by one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use sealdesk_client::{
    ClientError,
    client::{Event, EventKind, paging::MAX_SYNC_PAGES},
};
use sealdesk_protocol::wire::{Request, SkippedRange};
use sealdesk_tests::{
    STEP,
    withhold::made_up_pages,
    world::{MASTER, Via, World, carol_caught_up, texts},
};

/// Long enough for `MAX_SYNC_PAGES` pages through the proxy on a slow, shared machine; a walk
/// that does not stop runs into it.
const BUDGET_WAIT: Duration = Duration::from_secs(120);

fn run(at: u64) -> Vec<SkippedRange> {
    vec![SkippedRange {
        from: at,
        to: at,
        epoch: None,
    }]
}

fn history_requests(w: &World, who: &str) -> usize {
    w.proxy()
        .requests_sent(who, |r| matches!(r, Request::History { .. }))
}

fn impossible(r: Result<Vec<Event>, ClientError>) -> String {
    match r {
        Err(ClientError::ImpossibleNumber { what, detail }) => {
            assert_eq!(what, "history page");
            detail
        }
        other => panic!("expected ImpossibleNumber, got {other:?}"),
    }
}

/// Every page names a head one further than the page before, so the walk never reaches the
/// head it is told of. The sync ends at the head the first page named.
#[tokio::test]
async fn a_head_that_grows_on_every_page_is_not_chased() {
    let w = World::with_proxy().await;
    let (mut carol, conv, start) = carol_caught_up(&w, &["one", "two"]).await;
    w.proxy().set_hook(made_up_pages("carol", |after| {
        (run(after + 1), true, Some(after + 2))
    }));
    let before = history_requests(&w, "carol");
    tokio::time::timeout(STEP, carol.sync(&conv))
        .await
        .expect("the sync chased a growing head")
        .unwrap();
    // The first page named `start + 2`: two pages, then the refetch of the holes they left
    // (a customer reads every item, so the runs are lies, asked for again).
    assert_eq!(carol.meta(&conv).unwrap().cursor, start + 2);
    let asked = history_requests(&w, "carol") - before;
    assert!(asked <= 2 + 4, "{asked} pages asked for");
    // Nothing read before is lost; honest paging goes on.
    w.proxy().passthrough();
    carol.sync(&conv).await.unwrap();
    assert_eq!(texts(&carol, &conv), vec!["carol: one", "carol: two"]);
}

/// A head claimed far beyond anything served, and pages that each move on by one: the sync
/// stops at the page budget with a warning and keeps what it read, the next sync goes on from
/// there; the master's walk over the whole history stops with an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_claimed_far_ahead_stops_at_the_page_budget() {
    let w = World::with_proxy().await;
    let (mut carol, conv, start) = carol_caught_up(&w, &["one", "two"]).await;
    let far = 1u64 << 40;
    w.proxy().set_hook(made_up_pages("carol", move |after| {
        (run(after + 1), true, Some(far))
    }));
    let events = tokio::time::timeout(BUDGET_WAIT, carol.sync(&conv))
        .await
        .expect("the sync kept paging towards a head it will never reach")
        .unwrap();
    let budget = u64::from(MAX_SYNC_PAGES);
    let reached = start + budget;
    assert_eq!(carol.meta(&conv).unwrap().cursor, reached);
    let warning = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Warning { text } if e.conversation == conv => Some(text.clone()),
            _ => None,
        })
        .expect("a warning says the sync stopped");
    assert!(
        warning.contains(&format!("after {budget} pages"))
            && warning.contains(&format!("of the head {far}"))
            && warning.contains(&format!("the next sync goes on from {reached}")),
        "{warning}"
    );
    // The next sync goes on from there, as far again.
    tokio::time::timeout(BUDGET_WAIT, carol.sync(&conv))
        .await
        .expect("the second sync kept paging")
        .unwrap();
    assert_eq!(carol.meta(&conv).unwrap().cursor, reached + budget);
    assert_eq!(texts(&carol, &conv), vec!["carol: one", "carol: two"]);

    // The master reads the whole history to open a dispute: a walk cut short is no history.
    let mut master = w.reopen_via(MASTER, Via::Proxy).await;
    w.proxy().set_hook(made_up_pages(MASTER, move |after| {
        (run(after + 1), true, Some(far))
    }));
    let err = tokio::time::timeout(BUDGET_WAIT, master.open_dispute(&conv, None, "chargeback"))
        .await
        .expect("the history walk kept paging")
        .map(drop)
        .unwrap_err();
    match err {
        ClientError::ImpossibleNumber { what, detail } => {
            assert_eq!(what, "history page");
            assert!(
                detail.contains(&format!("after {budget} pages")),
                "{detail}"
            );
        }
        other => panic!("expected ImpossibleNumber, got {other:?}"),
    }
    w.proxy().passthrough();
    master
        .open_dispute(&conv, None, "chargeback")
        .await
        .unwrap();
}

/// Answers that cannot be right: a page ending beyond the head it names, a head that goes
/// back between two pages, a head no longer named once named, an empty page with `more`.
/// Each stops the sync with `ImpossibleNumber`; what was read stays.
#[tokio::test]
async fn impossible_heads_stop_the_sync() {
    let w = World::with_proxy().await;
    let (mut carol, conv, start) = carol_caught_up(&w, &["one", "two"]).await;

    // A page ending beyond its own head.
    w.proxy().set_hook(made_up_pages("carol", |after| {
        (run(after + 1), true, Some(after))
    }));
    let d = impossible(carol.sync(&conv).await);
    assert!(d.contains("beyond the head"), "{d}");

    // The head goes back: the first page names start + 10, the next start + 5.
    let cursor = carol.meta(&conv).unwrap().cursor;
    let heads = Arc::new(Mutex::new(vec![cursor + 5, cursor + 10]));
    let h = Arc::clone(&heads);
    w.proxy().set_hook(made_up_pages("carol", move |after| {
        let head = h.lock().unwrap().pop();
        (run(after + 1), true, head)
    }));
    let d = impossible(carol.sync(&conv).await);
    assert!(
        d.contains(&format!("went back from {} to {}", cursor + 10, cursor + 5)),
        "{d}"
    );

    // The head is named, then not.
    let cursor = carol.meta(&conv).unwrap().cursor;
    let heads = Arc::new(Mutex::new(vec![None, Some(cursor + 10)]));
    let h = Arc::clone(&heads);
    w.proxy().set_hook(made_up_pages("carol", move |after| {
        let head = h.lock().unwrap().pop().flatten();
        (run(after + 1), true, head)
    }));
    let d = impossible(carol.sync(&conv).await);
    assert!(d.contains("names no head"), "{d}");

    // An empty page that says more follows.
    w.proxy().set_hook(made_up_pages("carol", |after| {
        (Vec::new(), true, Some(after + 9))
    }));
    let d = impossible(carol.sync(&conv).await);
    assert!(d.contains("with more to come"), "{d}");

    // What was read stays; honest paging works again.
    assert!(carol.meta(&conv).unwrap().cursor > start);
    w.proxy().passthrough();
    carol.sync(&conv).await.unwrap();
    assert_eq!(texts(&carol, &conv), vec!["carol: one", "carol: two"]);
}
