//! Issue 24: a lost audit log wake-up is made up (PROTOCOL.md §13.5). A node tells the
//! sessions watching the audit log (`watch_audit`) that it grew when another node's wake-up
//! says so; a node that misses the wake-up (its listener reconnecting, here the relay's
//! test-only `SEALDESK_TEST_DROP_AUDIT_WAKEUPS`) reads the log's new leaves at its next
//! periodic catch-up, and at once when its listener reconnects, while a session there
//! watches, and tells its watchers of growth they were not told. Nothing is read for it while no session on the node watches.
//!
//! Before, the watcher learnt of the entry only at its own next look. Skipped, loudly, only
//! without PostgreSQL binaries (CI installs them: `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    audit::SignedTreeHead,
    wire::{Push, Request, Response},
};
use sealdesk_tests::{
    Org, RawClient,
    audit_log::policy_entry,
    cluster::{self, CommitGate, Node, TwoNodes, two_nodes},
    consent::release_entry,
};

/// The relay's test-only hook: the node drops the audit log wake-ups other nodes send.
const DROP: &str = "SEALDESK_TEST_DROP_AUDIT_WAKEUPS";

/// Reads of the audit log's new leaves at a node's periodic catch-ups (while a session there
/// watches the log).
const READS: &str = "sealdesk_cluster_audit_size_reads_total";
/// Times those reads told the watchers the log grew.
const MADE_UP: &str = "sealdesk_cluster_audit_grew_made_up_total";
/// Moves once per periodic catch-up, watched or not (`service::consent_makeup`).
const CATCH_UPS: &str = "sealdesk_cluster_master_push_reads_total";

/// The size `audit_grew` tells `watcher` first, of at least `at_least` (an earlier push, of the
/// org's set-up, may come first, smaller).
async fn told(watcher: &mut RawClient, what: &str, at_least: u64) -> u64 {
    watcher
        .expect_push(what, |p| match p {
            Push::AuditGrew { size } if *size >= at_least => Some(*size),
            _ => None,
        })
        .await
}

/// Node B drops the audit wake-ups. A customer on B starts a chat and watches the audit log;
/// a trustee on node A appends a release entry for the chat. Returns the customer's session
/// and the head A answered the entry with.
async fn release_through_a_watched_on_b(
    nodes: &TwoNodes,
    seed: u64,
) -> (RawClient, SignedTreeHead) {
    let org = Org::setup(&nodes.a.url, seed, "wakeco", 1, 1).await;
    let mut customer = RawClient::login(&nodes.b.url, &org.customers[0]).await;
    let chat = org.start_chat(&mut customer, 0, seed + 1).await;
    customer.ok(Request::WatchAudit).await;
    let mut trustee = RawClient::login(&nodes.a.url, &org.trustees[0]).await;
    let release = release_entry(&org, chat.id, [27; 32], seed + 2);
    match trustee.request(Request::AppendAudit(release)).await {
        Response::Appended { head, .. } => (customer, head),
        other => panic!("the release entry through node A: {other:?}"),
    }
}

/// `customer` on node B is told `audit_grew` with the size of `appended` (its wake-up dropped),
/// by B's make-up, and B's head is `appended`.
async fn told_by_the_make_up(b: &Node, customer: &mut RawClient, appended: &SignedTreeHead) {
    let size = told(
        customer,
        "audit_grew on node B for the release, its wake-up dropped",
        appended.size,
    )
    .await;
    assert_eq!(size, appended.size, "the size the release entry made");
    assert!(
        cluster::metric(b, MADE_UP).await >= 1,
        "told by B's catch-up"
    );
    match customer.request(Request::GetTreeHead).await {
        Response::TreeHead(h) => assert_eq!(
            (h.size, h.root),
            (appended.size, appended.root),
            "node B serves the log it told of"
        ),
        other => panic!("expected a tree head, got {other:?}"),
    }
}

/// A customer watching the audit log on node B, which drops the audit wake-ups, is told
/// `audit_grew` for a release entry appended through node A — by B's periodic catch-up — with
/// the size the entry made, and B's head is that size.
///
/// B's catch-up (which runs the make-up) is held at its gate from B's start, so the order is
/// the test's, not the timer's: B drops the release's wake-up (it logs so, with the size), its
/// watcher is told nothing meanwhile, and only once the gate opens is it told, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_audit_wakeup_is_made_up_at_the_catch_up() {
    let gate = CommitGate::catch_up();
    gate.close();
    let Some(nodes) = two_nodes("audit_makeup_lost")
        .b_behind(&gate)
        .b_env(&[(DROP, "1")])
        .start()
    else {
        return;
    };
    let b = &nodes.b;
    let (mut customer, appended) = release_through_a_watched_on_b(&nodes, 2470).await;
    cluster::logged_with(b, cluster::AUDIT_WAKEUP_DROPPED, "size", appended.size).await;
    customer
        .expect_no_push(
            "audit_grew on node B before its catch-up",
            |p| matches!(p, Push::AuditGrew { size } if *size >= appended.size),
        )
        .await;
    assert_eq!(cluster::metric(b, MADE_UP).await, 0, "no make-up yet");

    gate.open();
    told_by_the_make_up(b, &mut customer, &appended).await;
    cluster::two_more(b, READS).await;
    customer
        .expect_no_push("audit_grew again, the log unchanged", |p| {
            matches!(p, Push::AuditGrew { .. })
        })
        .await;
    assert_eq!(cluster::metric(b, MADE_UP).await, 1, "made up once");
}

/// As above, but B's catch-up period is ten minutes (its start-up catch-up long done): B's
/// watcher is told once B's listener loses its connection and reconnects, by the catch-up the
/// reconnect runs at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_audit_wakeup_is_made_up_when_the_listener_reconnects() {
    let Some(nodes) = two_nodes("audit_makeup_reconnect")
        .b_settings(&[("CLUSTER_CATCH_UP_MS", "600000")])
        .b_env(&[(DROP, "1")])
        .start()
    else {
        return;
    };
    let (mut customer, appended) = release_through_a_watched_on_b(&nodes, 2490).await;
    customer
        .expect_no_push(
            "audit_grew before the listener reconnects",
            |p| matches!(p, Push::AuditGrew { size } if *size >= appended.size),
        )
        .await;
    cluster::terminate_listeners(&nodes.db, 2);
    told_by_the_make_up(&nodes.b, &mut customer, &appended).await;
}

/// While no session on node B watches the log, B's catch-ups read nothing of it; once one
/// watches, each catch-up reads the new leaves (an empty read when nothing grew). The watcher
/// is told once of the growth B's watchers were not told (a policy change through node A),
/// and nothing more while the log does not grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_read_only_while_watched_and_a_growth_told_once() {
    let Some(TwoNodes { a, b, .. }) = two_nodes("audit_makeup_watched").start() else {
        return;
    };
    let org = Org::setup(&a.url, 2480, "quietco", 1, 1).await;
    let mut master = RawClient::login(&a.url, &org.master).await;
    match master
        .request(Request::AppendAudit(policy_entry(&org, 3)))
        .await
    {
        Response::Appended { .. } => {}
        other => panic!("a policy change through node A: {other:?}"),
    }
    let mut agent = RawClient::login(&b.url, &org.agents[0]).await;
    cluster::two_more(&b, CATCH_UPS).await;
    assert_eq!(
        cluster::metric(&b, READS).await,
        0,
        "B read the log for its watchers while none watched"
    );

    agent.ok(Request::WatchAudit).await;
    let size = match agent.request(Request::GetTreeHead).await {
        Response::TreeHead(h) => h.size,
        other => panic!("expected a tree head, got {other:?}"),
    };
    assert!(size > 0, "the policy change is in the log");
    assert_eq!(
        told(&mut agent, "audit_grew for the policy change", size).await,
        size
    );
    cluster::two_more(&b, READS).await;
    agent
        .expect_no_push("audit_grew again, the log unchanged", |p| {
            matches!(p, Push::AuditGrew { .. })
        })
        .await;
    assert_eq!(cluster::metric(&b, MADE_UP).await, 1, "told once");
}
