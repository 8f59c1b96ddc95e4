//! The periodic catch-up of a cluster node and its wake-up rounds (issue 24): two relay
//! processes on one throwaway PostgreSQL (`sealdesk_tests::pg`), node B with its catch-up held
//! at a gate (`SEALDESK_TEST_CATCH_UP_GATE`, as a catch-up whose query is slow on a loaded
//! database is held).
//!
//! - While B's catch-up is held, a wake-up still brings B's member the message sent through A:
//!   the catch-up runs beside the rounds, not in one. When it ran inside a round it held the
//!   node's single round slot, and this push waited for the gate. The round is timed, whole
//!   and by part, in B's `/metrics`.
//! - Without wake-ups (every one lost), the catch-up alone delivers: nothing reaches B's member
//!   while its catch-up is held, and the message does once it is let go, read by a round from
//!   what the catch-up found behind.
//!
//! Skipped, loudly, only when the machine has no PostgreSQL binaries (CI installs them:
//! `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::wire::{Push, Request, Response};
use sealdesk_tests::{
    Chat, Org, RawClient,
    cluster::{self, CommitGate, Node, TwoNodes, metric},
    eventually,
};

/// What node B logs when its catch-up waits at the gate.
const HELD: &str = "a catch-up held at its gate";

/// Catch-ups B finished (its histogram's count).
const CATCH_UPS: &str = "sealdesk_cluster_catch_up_seconds_count";

/// Node A, and node B started with its catch-up gate closed (`wakeups` for B), once B's
/// first catch-up is held there; a customer on A and the agent on B in a chat started through
/// A, which the agent has read on B.
struct HeldCatchUp {
    a: Node,
    b: Node,
    gate: CommitGate,
    org: Org,
    chat: Chat,
    on_a: RawClient,
    on_b: RawClient,
}

async fn held_catch_up(test: &str, wakeups: bool) -> Option<HeldCatchUp> {
    let gate = CommitGate::catch_up();
    gate.close();
    let (name, path) = gate.env();
    let nodes = cluster::two_nodes(test)
        .b_wakeups(wakeups)
        .b_env(&[(name, path.as_str())])
        .start()?;
    let b = &nodes.b;
    // The catch-up's first tick comes at once: B's catch-up is held from here on.
    eventually("node B's catch-up held at its gate", async || {
        b.process.log_tail().contains(HELD).then_some(())
    })
    .await;
    let (org, mut on_a, mut on_b) = nodes.customer_on_a_agent_on_b(11).await;
    let chat = org.start_chat(&mut on_a, 0, 5).await;
    // The agent reads the conversation on node B (as a client does on connecting): node B
    // watches it from there.
    match on_b
        .request(Request::History {
            conversation: chat.id,
            after: 0,
            limit: 200,
        })
        .await
    {
        Response::Items { items, .. } => assert_eq!(items.len(), 1, "the epoch record"),
        other => panic!("expected Items, got {other:?}"),
    }
    let TwoNodes { a, b, .. } = nodes;
    Some(HeldCatchUp {
        a,
        b,
        gate,
        org,
        chat,
        on_a,
        on_b,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_up_round_is_not_held_up_by_a_catch_up_in_progress() {
    let Some(mut t) = held_catch_up("catch_up_held_wakeups", true).await else {
        return;
    };
    let customer = &t.org.customers[0];
    let seq = t
        .on_a
        .stored(Request::Send(t.chat.seal(
            customer,
            1,
            "while B catches up",
        )))
        .await;
    t.on_b
        .expect_push(
            "the message, by a wake-up, while B's catch-up is held",
            |p| matches!(p, Push::Item(s) if s.seq == seq).then_some(()),
        )
        .await;
    // No catch-up of B finished meanwhile: the wake-up's round brought it.
    assert_eq!(metric(&t.b, CATCH_UPS).await, 0);
    assert!(metric(&t.b, "sealdesk_cluster_wakeup_reads_total").await >= 1);
    // That round is timed, whole and by part, once it ends (just after its pushes), its
    // wake-up's wait with it, and last the round task's going on (`metrics::RoundMetrics`).
    eventually("node B's round timed", async || {
        (metric(&t.b, "sealdesk_cluster_round_back_seconds_count").await >= 1).then_some(())
    })
    .await;
    assert!(metric(&t.b, "sealdesk_cluster_round_seconds_count").await >= 1);
    for part in ["wait", "read", "cache", "push", "pages", "forwarded"] {
        let name = format!("sealdesk_cluster_round_{part}_seconds_count");
        assert!(metric(&t.b, &name).await >= 1, "{name}");
    }
    // The round brought B's cached conversation up to date from the message: timed as its own
    // part (`cache`), apart from the pushes to the sockets.
    let text = cluster::http_get(&t.b, "/metrics").await;
    let cache: f64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("sealdesk_cluster_round_cache_seconds_sum ")?
                .parse()
                .ok()
        })
        .expect("the cache part's sum in /metrics");
    assert!(cache > 0.0, "the cache update was not timed");
    // Let go, the catch-up goes on (and the next ones).
    t.gate.open();
    eventually("node B's catch-ups to run again", async || {
        (metric(&t.b, CATCH_UPS).await >= 2).then_some(())
    })
    .await;
    assert!(metric(&t.a, "sealdesk_cluster_wakeups_sent_total").await >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_wake_ups_a_round_reads_what_the_catch_up_found_once_it_is_let_go() {
    let Some(mut t) = held_catch_up("catch_up_held_alone", false).await else {
        return;
    };
    let customer = &t.org.customers[0];
    let seq = t
        .on_a
        .stored(Request::Send(t.chat.seal(customer, 1, "only the catch-up")))
        .await;
    // The catch-up is the only way to B, and it is held.
    t.on_b
        .expect_no_push(
            "the message, before B's catch-up is let go",
            |p| matches!(p, Push::Item(s) if s.seq == seq),
        )
        .await;
    t.gate.open();
    t.on_b
        .expect_push("the message, by the catch-up", |p| {
            matches!(p, Push::Item(s) if s.seq == seq).then_some(())
        })
        .await;
    assert!(metric(&t.b, "sealdesk_cluster_catch_up_found_total").await >= 1);
    // The round counts its catch-up reads once it has pushed them: the push can reach the
    // member before the count moves.
    eventually("B's round to count its catch-up read", async || {
        (metric(&t.b, "sealdesk_cluster_catch_up_reads_total").await >= 1).then_some(())
    })
    .await;
    assert_eq!(metric(&t.b, "sealdesk_cluster_wakeup_reads_total").await, 0);
}
