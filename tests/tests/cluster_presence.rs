//! The agent pick sees agents online on any node of a cluster (issue 25): two relay nodes on
//! one throwaway PostgreSQL (`sealdesk_tests::pg`; skipped, loudly, without PostgreSQL
//! binaries). Each node publishes the agent keys connected to it in the database, with an
//! expiry; a customer opening through node A is given an agent connected to node B before a
//! less-loaded agent connected nowhere. An agent that disconnects, a node stopped cleanly and
//! a node killed stop counting as online: at once for the first two, once the killed node's
//! record lapses for the last. A connected agent's record is refreshed, so it keeps counting
//! online past its time-to-live; and a pick whose read of the presence fails falls back to the
//! node's own connections (counted).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use sealdesk_protocol::{keys::SigningPublicKey, wire::Response};
use sealdesk_tests::{
    Org, RawClient,
    cluster::{self, Node, ready, start_with_env},
    identity::Identity,
    web_key::open_request,
};

/// The presence time-to-live of the test with a killed node.
const PRESENCE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

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
/// open quota no test here reaches; an org with two agents, X (which holds one conversation
/// more than Y) and Y, neither connected, and a customer. Returns the nodes, the org, X's
/// index and the next conversation number; `None` without PostgreSQL.
async fn two_nodes_and_an_uneven_org(
    name: &str,
    settings: &[(&str, &str)],
) -> Option<([Node; 2], tempfile::TempDir, Org, usize)> {
    two_nodes_and_an_uneven_org_env(name, settings, &[]).await
}

/// As [`two_nodes_and_an_uneven_org`], with the environment variables `env_a` on node A only.
async fn two_nodes_and_an_uneven_org_env(
    name: &str,
    settings: &[(&str, &str)],
    env_a: &[(&str, &str)],
) -> Option<([Node; 2], tempfile::TempDir, Org, usize)> {
    let (db, keys) = cluster::database(name)?;
    let key = keys.path().join("log.key");
    let mut all = vec![
        ("OPEN_CONVERSATIONS_PER_ORG", "100000"),
        ("CONVERSATION_OPENS_PER_HOUR", "100000"),
    ];
    all.extend_from_slice(settings);
    let a = ready(start_with_env(&db, &key, true, &all, env_a));
    let b = ready(start_with_env(&db, &key, true, &all, &[]));
    let org = Org::setup(&a.url, 12, "acme", 2, 1).await;
    // Neither agent online: the first open goes to one of them, X, which now has more.
    let first = open(&a.url, &org.customers[0], 1).await;
    let x = org
        .agents
        .iter()
        .position(|a| a.card().signing_key == first)
        .unwrap();
    Some(([a, b], keys, org, x))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_online_on_another_node_is_picked_and_stops_counting_when_it_leaves() {
    // A time-to-live of a minute: a refresh delayed on a busy machine cannot lapse X while
    // it is connected, and only the withdrawal at its disconnection can make it offline.
    let Some(([a, b], _keys, org, x)) =
        two_nodes_and_an_uneven_org("presence_pick", &[("CLUSTER_PRESENCE_TTL_MS", "60000")]).await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_agents_stop_counting_online_once_its_record_lapses() {
    // A short time-to-live (about 67 catch-up periods of the cluster helpers' 150 ms), which
    // the wait below allows for, long enough that refreshes delayed on a loaded machine (node
    // B's presence task and PostgreSQL sharing two cores with builds) do not lapse X while
    // node B lives: with 3 s, a few seconds without a refresh would make node A pick Y
    // before the kill.
    let Some(([a, mut b], _keys, org, x)) = two_nodes_and_an_uneven_org(
        "presence_killed",
        &[(
            "CLUSTER_PRESENCE_TTL_MS",
            &PRESENCE_TTL.as_millis().to_string(),
        )],
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
    // Node A counts X online.
    assert_eq!(open(&a.url, customer, 2).await, x_key);

    // Node B dies holding X's connection: nothing withdraws X, its record lapses.
    b.process.kill().unwrap();
    let mut n = 3;
    let y_key = sealdesk_tests::eventually_within(
        PRESENCE_TTL + sealdesk_tests::STEP,
        "the killed node's agent to lapse",
        async || {
            n += 1;
            let got = open(&a.url, customer, n).await;
            (got != x_key).then_some(got)
        },
    )
    .await;
    assert_eq!(y_key, agent_y.card().signing_key);
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
    let Some(([a, mut b], _keys, org, x)) =
        two_nodes_and_an_uneven_org("presence_stopped", &settings).await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_agent_keeps_counting_online_past_its_time_to_live() {
    // A short time-to-live (20 of the cluster helpers' 150 ms periods: a refresh may come
    // late on a loaded machine by most of it): X's first publication lapses within the test,
    // so only the periodic refresh keeps X online — nothing else publishes for node B while
    // X stays connected (customers are not agents).
    const TTL: Duration = Duration::from_millis(3000);
    let Some(([a, b], _keys, org, x)) =
        two_nodes_and_an_uneven_org("presence_refreshed", &[("CLUSTER_PRESENCE_TTL_MS", "3000")])
            .await
    else {
        return;
    };
    let agent_x = &org.agents[x];
    let customer = &org.customers[0];
    let x_key = agent_x.card().signing_key;
    let _on_b = RawClient::login(&b.url, agent_x).await;
    published(&b, 1).await;
    // X stays connected for three time-to-lives; node A, with no connection of X's, counts
    // it online at every open meanwhile: at least six opens, and on until three TTLs have
    // passed since X was published (however long each open takes). The pause between opens
    // only spreads them over that time.
    let connected = Instant::now();
    let mut n = 1;
    while n < 7 || connected.elapsed() < 3 * TTL {
        n += 1;
        assert_eq!(
            open(&a.url, customer, n).await,
            x_key,
            "open {n}, {:?} after X was published: X's record was not refreshed",
            connected.elapsed()
        );
        tokio::time::sleep(TTL / 4).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_presence_read_falls_back_to_the_nodes_own_connections() {
    // Node A's reads of the cluster's presence fail (a test-only hook); its publications do
    // not. X, the more loaded agent, is connected to node A only.
    let Some(([a, _b], _keys, org, x)) = two_nodes_and_an_uneven_org_env(
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
