//! A rolling upgrade: a node of the previous version of the relay and a node of this version on
//! one throwaway PostgreSQL (issue 24; ARCHITECTURE.md, cluster, "Mixed versions"). The previous
//! version is commit 92931ed, the last before a forwarded close named the agent name
//! re-certified away; `.ci/build-previous-relay` builds its `sealdesk-relay` and prints the
//! path, which these tests take from `SEALDESK_PREVIOUS_RELAY`.
//!
//! The database is set up as an operator upgrading one node at a time would have it: the
//! cluster of the previous version made it (its node starts first, with `--migrate`), and the
//! node of this version joins without `--migrate`, which it needs only when the schema changed
//! (README, "Running a cluster"): both versions are at schema version 4 (asserted).
//!
//! - A customer on the previous node and an agent on this one chat, a message each way.
//! - The master re-certifies through the previous node: it forwards a close naming no name,
//!   which this node reads as naming none and closes every session of the old key acting for
//!   any name (a session the key registered under a fresh name too), and no unregistered one.
//! - The master re-certifies through this node: the previous node cannot read the close, which
//!   names the name; it logs "a wake-up that does not parse; ignored", closes nothing for it,
//!   and closes the old key's session at its next re-check of agent keys — when its listener
//!   reconnects, and every catch-up period.
//!
//! Ignored in `cargo test` (it needs the previous binary); `.ci/run` builds it and runs these
//! with `--ignored`. Without `SEALDESK_PREVIOUS_RELAY` each test panics, saying so. Skipped,
//! loudly, only when the machine has no PostgreSQL binaries, as the other cluster tests are.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use sealdesk_protocol::{
    card::Role,
    wire::{ErrorCode, Item, Request, Sequenced},
};
use sealdesk_server::store::SCHEMA_VERSION;
use sealdesk_tests::{
    Chat, Identity, Org, RawClient,
    cluster::{self, CLOSE_HELD, CLOSE_RELEASED, CommitGate, Node, TwoNodes, TwoNodesSetup},
    eventually, pg,
    recertify::unregistered_session,
};

/// The variable naming the previous version's relay binary.
const PREVIOUS_RELAY_ENV: &str = "SEALDESK_PREVIOUS_RELAY";

/// What a node of the previous version logs for a wake-up payload it cannot read.
const UNPARSED: &str = "a wake-up that does not parse; ignored";

/// The previous version's relay binary, from [`PREVIOUS_RELAY_ENV`].
///
/// # Panics
///
/// Without the variable, or if it names no file: these tests never pass without running it.
fn previous_relay() -> PathBuf {
    let Some(path) = std::env::var_os(PREVIOUS_RELAY_ENV) else {
        panic!(
            "{PREVIOUS_RELAY_ENV} is not set: these tests run a node of the previous version of \
             the relay; build it with .ci/build-previous-relay and set {PREVIOUS_RELAY_ENV} to the \
             path it prints"
        );
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{PREVIOUS_RELAY_ENV}={} is not a file",
        path.display()
    );
    path
}

/// Which node runs the previous version.
#[derive(Clone, Copy)]
enum Previous {
    A,
    B,
}

/// Two nodes on a fresh database named after `test`, one of them (`previous`) of the previous
/// version, set up further by `setup`. The previous node starts first and migrates (it made
/// the database); this version's node starts without `--migrate`. `None` without PostgreSQL
/// binaries.
fn mixed(
    test: &str,
    previous: Previous,
    setup: impl FnOnce(TwoNodesSetup) -> TwoNodesSetup,
) -> Option<TwoNodes> {
    let bin = previous_relay();
    let no_migrate = [("MIGRATE", "false")];
    let nodes = cluster::two_nodes(&format!("mixed_{test}"));
    let nodes = match previous {
        Previous::A => nodes.a_binary(&bin).b_settings(&no_migrate),
        Previous::B => nodes.b_binary(&bin).b_first().a_settings(&no_migrate),
    };
    let nodes = setup(nodes).start()?;
    // The previous version migrated the database to its schema, and this version serves it as
    // it is: the two are at the same version (had this one moved on, its node would have
    // refused to start without --migrate).
    assert_eq!(
        pg::query(&nodes.db, "SELECT max(version) FROM schema_version"),
        SCHEMA_VERSION.to_string(),
        "the previous version's schema is not this version's"
    );
    Some(nodes)
}

/// A customer on the previous node (A) and an agent on this version's node (B) chat: each
/// message is pushed to the other across the versions. The nodes' periodic catch-ups are an
/// hour apart (each runs once at its start), so each node reads the other's wake-ups: a
/// catch-up would deliver the messages even if the two versions could not read each other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the previous version's relay: .ci/build-previous-relay, SEALDESK_PREVIOUS_RELAY"]
async fn a_customer_on_the_previous_node_and_an_agent_on_this_one_chat() {
    let Some(nodes) = mixed("chat", Previous::A, |n| {
        n.settings(&[("CLUSTER_CATCH_UP_MS", "3600000")])
    }) else {
        return;
    };
    let (org, mut customer_on_a, mut agent_on_b) = nodes.customer_on_a_agent_on_b(31).await;
    let (customer, agent) = (&org.customers[0], &org.agents[0]);
    let chat = org.start_chat(&mut customer_on_a, 0, 37).await;
    // Both listen (a wake-up sent before a node listens would wait for its catch-up).
    listening(&nodes.a).await;
    listening(&nodes.b).await;

    let seq = customer_on_a
        .stored(Request::Send(chat.seal(customer, 1, "from 92931ed")))
        .await;
    let got = agent_on_b
        .expect_item_push("the customer's message on B", chat.id, seq)
        .await;
    assert_eq!(opened(&chat, &got), "from 92931ed");

    let reply = agent_on_b
        .stored(Request::Send(chat.seal(agent, 1, "from this version")))
        .await;
    let got = customer_on_a
        .expect_item_push("the agent's reply on the previous node", chat.id, reply)
        .await;
    assert_eq!(opened(&chat, &got), "from this version");
    customer_on_a.close().await;
    agent_on_b.close().await;
}

/// The text of message item `s` of `chat`.
fn opened(chat: &Chat, s: &Sequenced) -> String {
    let Item::Message(env) = &s.item else {
        panic!("not a message: {s:?}");
    };
    String::from_utf8(chat.open(env).body.to_vec()).unwrap()
}

/// The master re-certifies agent alice through the previous node (A), whose forwarded close
/// names no name; this version's node (B) holds it at its forwarded-close gate (its periodic
/// re-check an hour away, so the close is what cuts the old key off). Meanwhile the old key
/// registers a fresh name on B, and signs in with its own card (unregistered). Released, the
/// close closes every session of the key acting for any name — alice's and the fresh name's,
/// with 4105, as the previous version did — and not the unregistered one. (A close naming
/// alice closes one session here: `cluster_rebind.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the previous version's relay: .ci/build-previous-relay, SEALDESK_PREVIOUS_RELAY"]
async fn a_close_from_the_previous_node_names_none_and_closes_every_acting_session() {
    let gate = CommitGate::forwarded_close();
    gate.close();
    let (name, path) = gate.env();
    let Some(TwoNodes { a, b, .. }) = mixed("close_from_previous", Previous::A, |n| {
        n.b_env(&[(name, path.as_str())])
            .b_settings(&[("CLUSTER_CATCH_UP_MS", "3600000")])
    }) else {
        return;
    };
    let org = Org::setup(&a.url, 41, "acme", 1, 1).await;
    let old = &org.agents[0];
    let mut lost = RawClient::login(&b.url, old).await;

    let new = Identity::new(9_041, old.name(), Role::Agent);
    org.recertify(&a.url, &new).await;
    cluster::logged(&b, CLOSE_HELD).await;
    lost.ok(Request::WatchAgentKeys).await;
    // The old key's sessions opened while the close is held: one registered under a fresh
    // name (served), one with the key's own card (unregistered).
    let mut renamed = unregistered_session(&b.url, old).await;
    renamed.ok(Request::Register).await;
    renamed.ok(Request::WatchAudit).await;
    let mut plain = RawClient::connect(&b.url).await;
    assert!(!plain.auth(&old.keys, old.card()).await.registered);

    gate.open();
    assert_eq!(
        released(&b).await,
        2,
        "the sessions a close naming no name closed"
    );
    assert_eq!(lost.expect_close().await, Some(4105));
    assert_eq!(renamed.expect_close().await, Some(4105));
    assert_eq!(
        plain.refused(Request::ListConversations).await,
        ErrorCode::NotRegistered
    );
    plain.close().await;
}

/// Waits until `node` logged that a held forwarded close ran: how many sessions it closed.
async fn released(node: &Node) -> u64 {
    let line = cluster::logged(node, CLOSE_RELEASED).await;
    serde_json::from_str::<serde_json::Value>(&line)
        .ok()
        .and_then(|v| v["fields"]["closed"].as_u64())
        .unwrap_or_else(|| panic!("no fields.closed in {line:?}"))
}

/// The master re-certifies alice through this version's node (A), whose close names alice,
/// with the old key's session on the previous node (B): returns, once B logged that it could
/// not read the close, the new key and that session.
async fn recertified_on_this_node(a: &Node, b: &Node, seed: u64) -> (Identity, RawClient) {
    let org = Org::setup(&a.url, seed, "acme", 1, 1).await;
    let old = &org.agents[0];
    let lost = RawClient::login(&b.url, old).await;
    let new = Identity::new(seed + 9_000, old.name(), Role::Agent);
    org.recertify(&a.url, &new).await;
    cluster::logged(b, UNPARSED).await;
    (new, lost)
}

/// How many times a node's wake-up listener connected and issued `LISTEN`.
const LISTENS: &str = "sealdesk_cluster_listens_total";

/// Waits until `node`'s wake-up listener issued `LISTEN`: how many times it did.
async fn listening(node: &Node) -> u64 {
    eventually("the node listening", async || {
        let n = cluster::metric(node, LISTENS).await;
        (n >= 1).then_some(n)
    })
    .await
}

/// The previous node (B, its periodic re-check an hour away) cannot read the close this
/// version's node (A) forwards, and the old key's session there stays served; once B's
/// wake-up listener reconnects, its re-check of agent keys closes that session with 4105, and
/// leaves the new key's session open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the previous version's relay: .ci/build-previous-relay, SEALDESK_PREVIOUS_RELAY"]
async fn a_close_from_this_node_is_refused_by_the_previous_one_which_closes_on_reconnect() {
    let Some(TwoNodes { a, b, db }) = mixed("close_to_previous", Previous::B, |n| {
        n.b_settings(&[("CLUSTER_CATCH_UP_MS", "3600000")])
    }) else {
        return;
    };
    let (new, mut lost) = recertified_on_this_node(&a, &b, 43).await;
    // The close was refused, not misread: the old key's session is still served on B.
    lost.ok(Request::WatchAgentKeys).await;
    let mut current = RawClient::connect(&b.url).await;
    assert!(current.auth(&new.keys, new.card()).await.registered);
    current.ok(Request::WatchAudit).await;

    cluster::terminate_listeners(&db, 2);
    assert_eq!(lost.expect_close().await, Some(4105));
    // The new key's session was re-checked in the same pass, and stays open.
    current.ok(Request::WatchAgentKeys).await;
    current.close().await;
}

/// The same with B's periodic re-check every catch-up period (150 ms here): the close B could
/// not read is made up by that re-check, with B's wake-up listener up all along (its count of
/// connections unchanged: no reconnect brought the close).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the previous version's relay: .ci/build-previous-relay, SEALDESK_PREVIOUS_RELAY"]
async fn a_close_from_this_node_is_made_up_by_the_previous_nodes_catch_up() {
    let Some(TwoNodes { a, b, .. }) = mixed("close_to_previous_catch_up", Previous::B, |n| n)
    else {
        return;
    };
    let listens = listening(&b).await;
    let (new, mut lost) = recertified_on_this_node(&a, &b, 47).await;
    assert_eq!(lost.expect_close().await, Some(4105));
    assert_eq!(
        cluster::metric(&b, LISTENS).await,
        listens,
        "node B's wake-up listener after the close"
    );
    let mut current = RawClient::connect(&b.url).await;
    assert!(current.auth(&new.keys, new.card()).await.registered);
    current.ok(Request::WatchAudit).await;
    current.close().await;
}
