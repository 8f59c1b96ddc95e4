//! The agent pick sees agents online on any node of a cluster (issue 25): two relay nodes on
//! one throwaway PostgreSQL (`sealdesk_tests::pg`; skipped, loudly, without PostgreSQL
//! binaries). Each node publishes the agent keys connected to it in the database, with an
//! expiry; a customer opening through node A is given an agent connected to node B before a
//! less-loaded agent connected nowhere. An agent that disconnects, a node stopped cleanly and
//! a node killed stop counting as online: at once for the first two, once the killed node's
//! record lapses for the last. A connected agent's record is refreshed, so it keeps counting
//! online past its time-to-live; and a pick whose read of the presence fails falls back to the
//! node's own connections (counted).
//!
//! No test here waits for a time-to-live to pass: the time-to-lives are an hour, a record is
//! checked in the database to lapse one time-to-live ahead, its lapse is brought forward in
//! the database (as the clock passing it would), and a refresh is seen as its expiry moving
//! on. A loaded machine delaying a node's refresh by seconds cannot change an outcome.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{keys::SigningPublicKey, wire::Response};
use sealdesk_tests::{
    Org, RawClient,
    cluster::{self, Node, TwoNodes},
    identity::Identity,
    pg,
    web_key::open_request,
};

/// The presence time-to-live of the tests that look at a record's lapse (an hour: none lapses
/// by itself within a test), in milliseconds as the setting takes it.
const HOUR_TTL_MS: &str = "3600000";

/// Agent `agent`'s presence record (of any node) in the database: its expiry, Unix seconds on
/// the database's clock, and how far ahead of the database's clock now it is, in seconds; `None`
/// without a record.
fn presence_record(db: &str, agent: &SigningPublicKey) -> Option<(f64, f64)> {
    let out = pg::query(
        db,
        &format!(
            "SELECT expires_at, expires_at - extract(epoch FROM clock_timestamp())::float8 \
             FROM agent_presence WHERE agent = '\\x{}'::bytea",
            hex::encode(agent.as_bytes())
        ),
    );
    let (at, ahead) = out.split_once('|')?;
    Some((at.parse().unwrap(), ahead.parse().unwrap()))
}

/// The gauge of the agent keys a node last published as connected to it.
const PRESENT: &str = "sealdesk_cluster_presence_agents";

/// Opens conversation `n` with `acme` as `customer` through `url`; the agent assigned.
async fn open(url: &str, customer: &Identity, n: u64) -> SigningPublicKey {
    let mut c = RawClient::login(url, customer).await;
    let r = c.request(open_request("acme", n, None)).await;
    c.close().await;
    match r {
        Response::Opened { agent, .. } => agent.signing_key,
        other => panic!("expected opened, got {other:?}"),
    }
}

/// Waits until node `node` has published `n` agents as connected to it.
async fn published(node: &Node, n: u64) {
    sealdesk_tests::eventually(&format!("{n} agents published"), async || {
        (cluster::metric(node, PRESENT).await == n).then_some(())
    })
    .await;
}

/// The counter of the presence publications and reads that failed on a node.
const PRESENCE_ERRORS: &str = "sealdesk_cluster_presence_errors_total";

/// The test-only hook that makes a node's presence reads fail
/// (`service::presence::FAIL_PRESENCE_READS_ENV`).
const FAIL_PRESENCE_READS: &str = "SEALDESK_TEST_FAIL_PRESENCE_READS";

/// Nodes A and B on a fresh database named after `name`, with `settings` on both besides an
/// open quota no test here reaches, and the environment variables `env_a` on node A only; an
/// org with two agents, X (which holds one conversation more than Y) and Y, neither
/// connected, and a customer. Returns the nodes, the org and X's index; `None` without
/// PostgreSQL.
async fn two_nodes_and_an_uneven_org(
    name: &str,
    settings: &[(&str, &str)],
    env_a: &[(&str, &str)],
) -> Option<(TwoNodes, Org, usize)> {
    let nodes = cluster::two_nodes(name)
        .settings(&[
            ("OPEN_CONVERSATIONS_PER_ORG", "100000"),
            ("CONVERSATION_OPENS_PER_HOUR", "100000"),
        ])
        .settings(settings)
        .a_env(env_a)
        .start()?;
    let org = Org::setup(&nodes.a.url, 12, "acme", 2, 1).await;
    // Neither agent online: the first open goes to one of them, X, which now has more.
    let first = open(&nodes.a.url, &org.customers[0], 1).await;
    let x = org
        .agents
        .iter()
        .position(|a| a.card().signing_key == first)
        .unwrap();
    Some((nodes, org, x))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_online_on_another_node_is_picked_and_stops_counting_when_it_leaves() {
    // A time-to-live of a minute: a refresh delayed on a busy machine cannot lapse X while
    // it is connected, and only the withdrawal at its disconnection can make it offline.
    let Some((TwoNodes { a, b, .. }, org, x)) = two_nodes_and_an_uneven_org(
        "presence_pick",
        &[("CLUSTER_PRESENCE_TTL_MS", "60000")],
        &[],
    )
    .await
    else {
        return;
    };
    let (agent_x, agent_y) = (&org.agents[x], &org.agents[1 - x]);
    let customer = &org.customers[0];
    let x_key = agent_x.card().signing_key;
    let y_key = agent_y.card().signing_key;

    // X connects to node B only; Y, with fewer conversations, stays offline. A customer on
    // node A is given X: node A has no connection of X's, the cluster's presence has.
    let on_b = RawClient::login(&b.url, agent_x).await;
    published(&b, 1).await;
    for n in 2..5 {
        assert_eq!(
            open(&a.url, customer, n).await,
            x_key,
            "open {n}: the agent online on node B, not the less-loaded offline one"
        );
    }
    // X disconnects: node B withdraws it at once, and the pick goes by load again.
    on_b.close().await;
    published(&b, 0).await;
    assert_eq!(open(&a.url, customer, 5).await, y_key);
}

/// A killed node's agents count online until their record lapses, then no longer: the record
/// lapses one time-to-live (an hour) after its last refresh, checked in the database; nothing
/// withdraws it before (node A still picks X after the kill); its lapse is brought forward in
/// the database to now, as the clock reaching it would, and node A picks Y at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_agents_stop_counting_online_once_its_record_lapses() {
    let Some((TwoNodes { a, mut b, db }, org, x)) = two_nodes_and_an_uneven_org(
        "presence_killed",
        &[("CLUSTER_PRESENCE_TTL_MS", HOUR_TTL_MS)],
        &[],
    )
    .await
    else {
        return;
    };
    let (agent_x, agent_y) = (&org.agents[x], &org.agents[1 - x]);
    let customer = &org.customers[0];
    let x_key = agent_x.card().signing_key;
    let _on_b = RawClient::login(&b.url, agent_x).await;
    published(&b, 1).await;
    // X's record lapses one time-to-live ahead on the database's clock (less what passed
    // since node B wrote it: a minute is far more than that, far less than the hour).
    let (_, ahead) = presence_record(&db, &x_key).expect("X's presence record");
    assert!(
        (3540.0..=3600.0).contains(&ahead),
        "X's record lapses {ahead} s ahead, not one time-to-live (3600 s)"
    );
    // Node A counts X online.
    assert_eq!(open(&a.url, customer, 2).await, x_key);

    // Node B dies holding X's connection: nothing withdraws X, which node A still counts
    // online until its record lapses.
    b.process.kill().unwrap();
    assert_eq!(
        open(&a.url, customer, 3).await,
        x_key,
        "the killed node's agent stopped counting before its record lapsed"
    );
    // The record's lapse, brought forward to now on the database's clock.
    pg::query(
        &db,
        "UPDATE agent_presence SET expires_at = extract(epoch FROM clock_timestamp())::float8",
    );
    assert_eq!(open(&a.url, customer, 4).await, agent_y.card().signing_key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_cleanly_withdraws_its_agents_at_once() {
    // A time-to-live of an hour: only a withdrawal can make X offline within the test. A
    // shutdown grace far shorter than a session's close handshake (2 s), and an agent client
    // that never answers the close: when node B stops, X's session is still there as its
    // transport gives up and its cluster task ends, so the departure of the session cannot
    // withdraw X — only the withdrawal at the stop itself can.
    let settings = [
        ("CLUSTER_PRESENCE_TTL_MS", "3600000"),
        ("SHUTDOWN_GRACE_MS", "100"),
    ];
    let Some((TwoNodes { a, mut b, .. }, org, x)) =
        two_nodes_and_an_uneven_org("presence_stopped", &settings, &[]).await
    else {
        return;
    };
    let (agent_x, agent_y) = (&org.agents[x], &org.agents[1 - x]);
    let customer = &org.customers[0];
    let on_b = RawClient::login(&b.url, agent_x).await;
    published(&b, 1).await;
    assert_eq!(open(&a.url, customer, 2).await, agent_x.card().signing_key);
    // Node B stops (SIGTERM, waited for) while X's connection is open and unread.
    b.process.terminate().unwrap();
    assert_eq!(open(&a.url, customer, 3).await, agent_y.card().signing_key);
    drop(on_b);
}

/// A connected agent's record is refreshed: its lapse moves on while the agent stays
/// connected, with nothing but the periodic refresh to move it (nothing else publishes for
/// node B while X stays connected: customers are not agents, and no agent comes or goes), so
/// it never reaches a lapse of the first publication. Three refreshes are seen, each moving
/// the lapse on; node A counts X online after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_agent_keeps_counting_online_past_its_time_to_live() {
    let Some((TwoNodes { a, b, db }, org, x)) = two_nodes_and_an_uneven_org(
        "presence_refreshed",
        &[("CLUSTER_PRESENCE_TTL_MS", HOUR_TTL_MS)],
        &[],
    )
    .await
    else {
        return;
    };
    let agent_x = &org.agents[x];
    let customer = &org.customers[0];
    let x_key = agent_x.card().signing_key;
    let _on_b = RawClient::login(&b.url, agent_x).await;
    published(&b, 1).await;
    let (mut lapse, _) = presence_record(&db, &x_key).expect("X's presence record");
    for refresh in 1..=3 {
        lapse = sealdesk_tests::eventually(
            &format!("refresh {refresh} of X's record to move its lapse on"),
            async || {
                let (now, _) = presence_record(&db, &x_key)?;
                (now > lapse).then_some(now)
            },
        )
        .await;
    }
    assert_eq!(open(&a.url, customer, 2).await, x_key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_presence_read_falls_back_to_the_nodes_own_connections() {
    // Node A's reads of the cluster's presence fail (a test-only hook); its publications do
    // not. X, the more loaded agent, is connected to node A only.
    let Some((TwoNodes { a, b: _b, .. }, org, x)) = two_nodes_and_an_uneven_org(
        "presence_read_fails",
        &[("CLUSTER_PRESENCE_TTL_MS", "60000")],
        &[(FAIL_PRESENCE_READS, "1")],
    )
    .await
    else {
        return;
    };
    let agent_x = &org.agents[x];
    let customer = &org.customers[0];
    let _on_a = RawClient::login(&a.url, agent_x).await;
    published(&a, 1).await;
    let failed_before = cluster::metric(&a, PRESENCE_ERRORS).await;
    // The open succeeds, and goes to X: node A's own connection counts it online although
    // the cluster's presence could not be read.
    assert_eq!(open(&a.url, customer, 2).await, agent_x.card().signing_key);
    let failed_after = cluster::metric(&a, PRESENCE_ERRORS).await;
    assert!(
        failed_after > failed_before,
        "the failed read is counted ({failed_before} → {failed_after})"
    );
}
