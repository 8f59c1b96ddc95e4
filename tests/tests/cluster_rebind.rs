//! A re-certified agent's old key is cut off on every node of a cluster (issue 22 §3, issue
//! 24): two relay processes on one throwaway PostgreSQL. The old key is connected to node B;
//! the master re-certifies the name for a new key through node A. Node B closes the old key's
//! session with 4105 (the close travels on the push channel), a new session of the old key on
//! node B is refused (it reads the card from the database, not from a node's cache), and the
//! new key, listening on node B, is told of the conversation it now holds. The customer's
//! session on node B that asked (`watch_agent_keys`) is told of the new key (the push is
//! forwarded); her session there that did not ask is not. A node B that missed the close makes
//! up for it when its wake-up listener reconnects, and leaves the new key's session open.
//! Neither close, forwarded or made up, closes an unregistered session of the old key (one
//! signed in with a card the relay does not hold for it, or opened after the re-certification):
//! they close only the sessions acting for the replaced name (`Hub::close_agent`). A forwarded
//! close held back on node B (the relay's test-only forwarded-close gate) and released late —
//! after B's re-check closed the old key's session and the key signed in again, or registered
//! under a new name nobody held — leaves those sessions open, and still closes the sessions
//! that act for the replaced name.
//!
//! Skipped, loudly, only when the machine has no PostgreSQL binaries (CI installs them:
//! `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    card::Role,
    wire::{ErrorCode, Push, Request},
};
use sealdesk_tests::{
    Identity, Org, RawClient,
    cluster::{
        self, CLOSE_DROPPED, CLOSE_HELD, CLOSE_RELEASED, CLUSTER_SERVICE, CommitGate,
        RECHECK_CLOSED, RECHECK_HELD, TwoNodes, log_field,
    },
    eventually,
    recertify::unregistered_session,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_key_is_closed_and_refused_on_another_node() {
    let Some(TwoNodes { a, b, .. }) = cluster::two_nodes("rebind").start() else {
        return;
    };
    let org = Org::setup(&a.url, 5, "acme", 1, 1).await;
    let (customer, old) = (&org.customers[0], &org.agents[0]);
    let mut customer_on_a = RawClient::login(&a.url, customer).await;
    let chat = org.start_chat(&mut customer_on_a, 0, 23).await;
    customer_on_a
        .stored(Request::Send(chat.seal(customer, 1, "hello")))
        .await;

    // The old key has an unregistered session on node B (a card the relay does not hold for
    // it), which the close must leave open; it joined node B first, so a close of every
    // session of the key would have closed it before the lost device's.
    let mut unregistered = unregistered_session(&b.url, old).await;
    // The lost device is online on node B; the new key listens on node B too.
    let mut lost = RawClient::login(&b.url, old).await;
    let new = Identity::new(9_999, old.name(), Role::Agent);
    let mut listening = RawClient::connect(&b.url).await;
    listening.auth(&new.keys, new.card()).await;
    // The customer on node B: one session asks for agent-key pushes, one does not.
    let mut watching = RawClient::login(&b.url, customer).await;
    watching.ok(Request::WatchAgentKeys).await;
    let mut not_asking = RawClient::login(&b.url, customer).await;

    // The master re-certifies the name for the new key through node A.
    org.recertify(&a.url, &new).await;

    // Node B closes the old key's session with its own code, and only the registered one.
    assert_eq!(lost.expect_close().await, Some(4105));
    assert_eq!(
        unregistered.refused(Request::ListConversations).await,
        ErrorCode::NotRegistered
    );
    unregistered.close().await;
    // A new session of the old key on node B is unregistered and refused everything, and
    // cannot take the name back.
    let mut again = RawClient::connect(&b.url).await;
    let welcome = again.auth(&old.keys, old.card()).await;
    assert!(!welcome.registered, "node B still knows the old key");
    assert_eq!(
        again.refused(Request::ListConversations).await,
        ErrorCode::NotRegistered
    );
    assert_eq!(again.refused(Request::Register).await, ErrorCode::NameTaken);
    // The close forgot the old key as a registered agent on node B: its periodic re-check of
    // agent keys, two full rounds of it, leaves this session opened after the close alone,
    // though the closed session may not have left yet (the relay waits for its close reply).
    chores_rounds(&b, 2).await;
    assert_eq!(
        again.refused(Request::ListConversations).await,
        ErrorCode::NotRegistered
    );
    again.close().await;
    // The new key, on node B, is told of the conversation it now holds.
    listening
        .expect_push("assigned on node B", |p| match p {
            Push::Assigned { conversation, .. } if *conversation == chat.id => Some(()),
            _ => None,
        })
        .await;
    listening.close().await;
    // The customer's session on node B that asked is told of the new key, forwarded from A.
    let (agent, card) = watching
        .expect_push("agent_key_changed on node B", |p| match p {
            Push::AgentKeyChanged {
                agent,
                card,
                conversations,
                ..
            } if *conversations == vec![chat.id] => Some((agent.clone(), card.clone())),
            _ => None,
        })
        .await;
    assert_eq!((agent.as_str(), card), (old.name(), new.card()));
    // The one that did not ask: node B pushed to both at once; it answers and got nothing.
    not_asking.ok(Request::WatchAudit).await;
    not_asking
        .expect_no_push("agent_key_changed without watch_agent_keys", |p| {
            matches!(p, Push::AgentKeyChanged { .. })
        })
        .await;
    watching.close().await;
    not_asking.close().await;
    customer_on_a.close().await;
}

/// Waits until node `node` has run `n` more rounds of its periodic chores (each re-checks
/// some connected agent keys, then folds the byte counts, which `/metrics` counts).
async fn chores_rounds(node: &cluster::Node, n: u64) {
    const ROUNDS: &str = "sealdesk_cluster_fold_seconds_count";
    let from = cluster::metric(node, ROUNDS).await;
    sealdesk_tests::eventually(&format!("{n} more chores rounds"), async || {
        (cluster::metric(node, ROUNDS).await >= from + n).then_some(())
    })
    .await;
}

/// Node B drops the closes other nodes forward (the server's test-only hook), as a node whose
/// wake-up listener is reconnecting at that instant misses them, and logs each
/// ([`CLOSE_DROPPED`]).
const DROP_FORWARDED_CLOSES: &str = "SEALDESK_TEST_DROP_FORWARDED_CLOSES";

/// Node A, and node B, which drops the closes other nodes forward ([`DROP_FORWARDED_CLOSES`])
/// and logs the closes its re-checks of agent keys make ([`RECHECK_CLOSED`]), on a fresh
/// database named after `test`, set up further by the caller before it starts them.
fn closes_lost_on_b(test: &str) -> cluster::TwoNodesSetup {
    cluster::two_nodes(test)
        .b_env(&[(DROP_FORWARDED_CLOSES, "1")])
        .b_logs_info_of(CLUSTER_SERVICE)
}

/// Waits until node `b` logged that it dropped the close node A forwarded (code 4105): the
/// close was lost there, whatever closes the old key's session afterwards.
async fn close_dropped(b: &cluster::Node) {
    let line = cluster::logged(b, CLOSE_DROPPED).await;
    assert_eq!(log_field(&line, "code"), 4105, "the close dropped");
}

/// Node B misses the close of the old key (it drops forwarded closes): the old key's session
/// there stays open after the master re-certified the name through node A. Once B's wake-up
/// listener reconnects (its database connection is terminated), B re-checks the agent keys
/// connected to it against the names' current keys and closes the old key's session with
/// 4105; the new key's session on B stays open.
///
/// Node B's periodic chores, which re-check agent keys too, are an hour apart (they run once
/// at its start, before any agent connects): otherwise a round could close the old key's
/// session before the test uses it (it did, once in six runs on a loaded machine), and the
/// close at the end would not show that the reconnect brought it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_close_is_made_up_when_the_listener_reconnects() {
    let Some(TwoNodes { a, b, db }) = closes_lost_on_b("reclose")
        .b_settings(&[("CLUSTER_CATCH_UP_MS", "3600000")])
        .start()
    else {
        return;
    };
    let org = Org::setup(&a.url, 5, "acme", 1, 1).await;
    let old = &org.agents[0];
    // Joined first: a re-check closing every session of the key would close it first.
    let mut unregistered = unregistered_session(&b.url, old).await;
    let mut lost = RawClient::login(&b.url, old).await;

    let new = Identity::new(9_999, old.name(), Role::Agent);
    org.recertify(&a.url, &new).await;
    // A session the old key opens, with its own card, after the re-certification is
    // unregistered.
    let mut after = RawClient::connect(&b.url).await;
    assert!(!after.auth(&old.keys, old.card()).await.registered);

    // The new key, registered now, has a session on node B; the old key's session there
    // missed its close and is still served.
    let mut current = RawClient::connect(&b.url).await;
    assert!(current.auth(&new.keys, new.card()).await.registered);
    current.ok(Request::WatchAudit).await;
    // Node B dropped the close (it logged so), and the old key's session there is served.
    close_dropped(&b).await;
    lost.ok(Request::WatchAgentKeys).await;

    // Both nodes' listeners lose their database connection and reconnect.
    cluster::terminate_listeners(&db, 2);
    assert_eq!(lost.expect_close().await, Some(4105));
    // The re-check closed the registered session only: the one opened before it, and the
    // one opened after the re-certification (which joined after the lost device's, so only
    // the first shows it on every run), are served as unregistered sessions.
    for session in [&mut unregistered, &mut after] {
        assert_eq!(
            session.refused(Request::ListConversations).await,
            ErrorCode::NotRegistered
        );
    }
    unregistered.close().await;
    after.close().await;
    // The current key's session is re-checked in the same pass, and stays open.
    current.ok(Request::WatchAgentKeys).await;
    current.close().await;
}

/// Node B's old-key session misses its close, B's listener stays up (or B has none), and B's
/// periodic re-check of the agent keys connected to it (every catch-up period) closes it with
/// 4105; the new key's session on B stays open. `b` is node B, started by the caller (logging
/// its re-checks' closes: [`closes_lost_on_b`], or `b_logs_info_of(CLUSTER_SERVICE)`) behind
/// `recheck`, closed before B started ([`held_rechecks`]): its periodic re-checks wait until
/// this function opens it. `b_listens` says whether B has a wake-up listener, which is
/// asserted before the re-certification and again after the close
/// (`sealdesk_cluster_listens_total`): the close came with no listener, or with the one
/// listener that stayed up (no reconnect brought it).
///
/// The order is the test's: with a listener, B drops the forwarded close first (it logs so);
/// then, the re-check still held, the old key's session is still served (the drop closed
/// nothing); only then is the gate opened, and B logs that its re-check closed that session:
/// the close the session got is the re-check's.
async fn a_missed_close_is_made_up_by_the_catch_up(
    a: &cluster::Node,
    b: &cluster::Node,
    recheck: &CommitGate,
    seed: u64,
    b_listens: bool,
) {
    let org = Org::setup(&a.url, seed, "acme", 1, 1).await;
    let old = &org.agents[0];
    let mut lost = RawClient::login(&b.url, old).await;
    let new = Identity::new(seed + 9_000, old.name(), Role::Agent);
    let mut current = RawClient::connect(&b.url).await;
    // Node A listens (the counter is live), and node B's listener is as the test says.
    eventually("node A listening", async || {
        (cluster::metric(a, LISTENS).await >= 1).then_some(())
    })
    .await;
    let listens = if b_listens {
        eventually("node B listening", async || {
            let n = cluster::metric(b, LISTENS).await;
            (n >= 1).then_some(n)
        })
        .await
    } else {
        0
    };
    assert_eq!(
        cluster::metric(b, LISTENS).await,
        listens,
        "node B's wake-up listener before the re-certification"
    );
    org.recertify(&a.url, &new).await;
    assert!(current.auth(&new.keys, new.card()).await.registered);
    if b_listens {
        close_dropped(b).await;
    }
    // B's re-check is held (it logged so): nothing has closed the old key's session yet.
    cluster::logged(b, RECHECK_HELD).await;
    lost.ok(Request::WatchAgentKeys).await;
    recheck.open();
    assert_eq!(lost.expect_close().await, Some(4105));
    let line = cluster::logged(b, RECHECK_CLOSED).await;
    assert_eq!(
        log_field(&line, "sessions"),
        1,
        "the sessions the re-check closed"
    );
    // A listener's LISTEN comes before any close it could have brought: unchanged, the close
    // came from the catch-up.
    assert_eq!(
        cluster::metric(b, LISTENS).await,
        listens,
        "node B's wake-up listener after the close"
    );
    current.ok(Request::WatchAgentKeys).await;
    current.close().await;
}

/// A re-check gate ([`CommitGate::recheck`]), closed: node B, started behind it, re-checks no
/// agent key until the test opens it.
fn held_rechecks() -> CommitGate {
    let gate = CommitGate::recheck();
    gate.close();
    gate
}

/// How many times a node's wake-up listener connected and issued `LISTEN`.
const LISTENS: &str = "sealdesk_cluster_listens_total";

/// Node B has no wake-up listener (`cluster_wakeups = 0`, asserted): no forwarded close ever
/// reaches it, and its periodic re-check of agent keys closes the old key's session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_listener_closes_the_old_key_at_its_catch_up() {
    let recheck = held_rechecks();
    let Some(TwoNodes { a, b, .. }) = cluster::two_nodes("reclose_nolisten")
        .b_wakeups(false)
        .b_logs_info_of(CLUSTER_SERVICE)
        .b_behind(&recheck)
        .start()
    else {
        return;
    };
    a_missed_close_is_made_up_by_the_catch_up(&a, &b, &recheck, 7, false).await;
}

/// Node B's listener stays up (asserted) but the close never reaches it (dropped, as when the
/// re-certifying node's `NOTIFY` failed; B logs the drop): its periodic re-check of agent keys
/// closes the old key's session (B logs that too), with no listener reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_lost_while_the_listener_stays_up_is_made_up_at_the_catch_up() {
    let recheck = held_rechecks();
    let Some(TwoNodes { a, b, .. }) = closes_lost_on_b("reclose_lost").b_behind(&recheck).start()
    else {
        return;
    };
    a_missed_close_is_made_up_by_the_catch_up(&a, &b, &recheck, 8, true).await;
}

/// Node A, and node B holding the closes other nodes forward while `gate` is closed (it is
/// closed here, before the nodes start), with `b_settings`, on a fresh database named after
/// `test`; `None` without PostgreSQL. Needs a relay built with the `test-hooks` feature: one
/// without it never holds a close, and the test fails waiting for [`CLOSE_HELD`].
fn closes_held_on_b(
    test: &str,
    gate: &CommitGate,
    b_settings: &[(&str, &str)],
) -> Option<TwoNodes> {
    gate.close();
    let (name, path) = gate.env();
    cluster::two_nodes(test)
        .b_settings(b_settings)
        .b_env(&[(name, path.as_str())])
        .start()
}

/// The old key's sessions on node B that are not the lost device's, opened while the close is
/// held there: `plain` signed in with the key's own card (no longer registered), `renamed`
/// registered the key under a new name nobody held (`{name}-elsewhere`) and is served.
struct OpenedMeanwhile {
    plain: RawClient,
    renamed: RawClient,
}

impl OpenedMeanwhile {
    async fn open(b: &cluster::Node, old: &Identity) -> Self {
        let mut plain = RawClient::connect(&b.url).await;
        assert!(!plain.auth(&old.keys, old.card()).await.registered);
        let mut renamed = unregistered_session(&b.url, old).await;
        renamed.ok(Request::Register).await;
        renamed.ok(Request::WatchAgentKeys).await;
        Self { plain, renamed }
    }

    /// Once the held close ran: both still served, `plain` as an unregistered session and
    /// `renamed` as the agent it registered.
    async fn still_open(mut self) {
        assert_eq!(
            self.plain.refused(Request::ListConversations).await,
            ErrorCode::NotRegistered
        );
        self.renamed.ok(Request::WatchAudit).await;
        self.plain.close().await;
        self.renamed.close().await;
    }
}

/// Releases the close held on `b` and waits until it ran: how many sessions it closed.
async fn release(b: &cluster::Node, gate: &CommitGate) -> u64 {
    gate.open();
    let line = cluster::logged(b, CLOSE_RELEASED).await;
    log_field(&line, "closed")
}

/// The close of the old key, forwarded by node A, is held on node B. Meanwhile B's periodic
/// re-check of agent keys closes the lost device's session with 4105, and the old key signs
/// in again on B (unregistered) and registers under a new name nobody held. Released, the
/// late close closes nothing: both sessions are still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_close_leaves_what_the_old_key_opened_after_a_recheck() {
    let gate = CommitGate::forwarded_close();
    let Some(TwoNodes { a, b, .. }) = closes_held_on_b("lateclose", &gate, &[]) else {
        return;
    };
    let org = Org::setup(&a.url, 5, "acme", 1, 1).await;
    let old = &org.agents[0];
    let mut lost = RawClient::login(&b.url, old).await;

    let new = Identity::new(9_999, old.name(), Role::Agent);
    org.recertify(&a.url, &new).await;
    cluster::logged(&b, CLOSE_HELD).await;
    // B's re-check (every catch-up period) closes the lost device's session; the close from
    // A is still held.
    assert_eq!(lost.expect_close().await, Some(4105));
    let meanwhile = OpenedMeanwhile::open(&b, old).await;

    assert_eq!(
        release(&b, &gate).await,
        0,
        "the late close closed a session"
    );
    meanwhile.still_open().await;
}

/// B's periodic re-check is an hour away (it runs once at its start, before any agent
/// connects), so the held close is what cuts the lost device off. While it is held, the old
/// key signs in again on B and registers under a new name nobody held. Released, the close
/// closes the lost device's session, which acts for the replaced name, with 4105, and only
/// that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_close_closes_the_sessions_acting_for_the_replaced_name_only() {
    let gate = CommitGate::forwarded_close();
    let Some(TwoNodes { a, b, .. }) = closes_held_on_b(
        "lateclose_name",
        &gate,
        &[("CLUSTER_CATCH_UP_MS", "3600000")],
    ) else {
        return;
    };
    let org = Org::setup(&a.url, 6, "acme", 1, 1).await;
    let old = &org.agents[0];
    let mut lost = RawClient::login(&b.url, old).await;

    let new = Identity::new(9_999, old.name(), Role::Agent);
    org.recertify(&a.url, &new).await;
    cluster::logged(&b, CLOSE_HELD).await;
    // Nothing closed the lost device's session yet.
    lost.ok(Request::WatchAgentKeys).await;
    let meanwhile = OpenedMeanwhile::open(&b, old).await;

    assert_eq!(
        release(&b, &gate).await,
        1,
        "the sessions the late close closed"
    );
    assert_eq!(lost.expect_close().await, Some(4105));
    meanwhile.still_open().await;
}
