//! A relay that makes up thousands of holes in a customer's view of a conversation (issue 20;
//! PROTOCOL.md §13.10, `MAX_HOLES`): every page names runs of one number each ("items you may
//! not read"), alternating their claims (an epoch's, then conversation-level), so no two
//! neighbours merge into one hole. Without a bound the customer's stored list would grow by
//! one entry per run; with it, the list stays within `MAX_HOLES` and the history still says
//! that items are missing, and how many.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::client::{HistoryLine, holes::MAX_HOLES};
use sealdesk_protocol::wire::SkippedRange;
use sealdesk_tests::{
    STEP,
    withhold::made_up_pages,
    world::{World, carol_caught_up, texts},
};

/// Runs per made-up page.
const RUNS: u64 = 50;

/// The runs the proxy names after `after`, up to `head`: one number each, claims alternating.
fn runs(after: u64, head: u64) -> Vec<SkippedRange> {
    (after + 1..=head.min(after + RUNS))
        .map(|seq| SkippedRange {
            from: seq,
            to: seq,
            epoch: (seq % 2 == 0).then_some(1),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_alternating_claims_stay_within_the_bound_and_are_still_told() {
    let w = World::with_proxy().await;
    let (mut carol, conv, start) = carol_caught_up(&w, &["one"]).await;

    // Two syncs, each told of 600 more numbers: 1,200 one-number runs in all.
    let mut made_up = 0;
    for round in 1..=2u64 {
        let head = start + round * 600;
        w.proxy().set_hook(made_up_pages("carol", move |after| {
            let skipped = runs(after, head);
            let more = skipped.last().is_some_and(|r| r.to < head);
            (skipped, more, Some(head))
        }));
        tokio::time::timeout(STEP * 4, carol.sync(&conv))
            .await
            .expect("the sync ended")
            .unwrap();
        made_up += 600;
        assert_eq!(carol.meta(&conv).unwrap().cursor, head);

        let withheld: Vec<(u64, u64, Option<u64>)> = carol
            .history(&conv)
            .unwrap()
            .lines
            .into_iter()
            .filter_map(|l| match l {
                HistoryLine::Withheld {
                    from, to, missing, ..
                } => Some((from, to, missing)),
                _ => None,
            })
            .collect();
        assert!(
            withheld.len() <= MAX_HOLES,
            "{} holes kept after round {round}",
            withheld.len()
        );
        // Every made-up number is still counted as missing, none twice.
        let missing: u64 = withheld
            .iter()
            .map(|(from, to, m)| m.unwrap_or(to - from + 1))
            .sum();
        assert_eq!(missing, made_up);
        assert!(withheld.iter().any(|(_, _, m)| m.is_some()));
    }
    // What was read stays; honest paging goes on.
    w.proxy().passthrough();
    carol.sync(&conv).await.unwrap();
    assert_eq!(texts(&carol, &conv), vec!["carol: one"]);
}
