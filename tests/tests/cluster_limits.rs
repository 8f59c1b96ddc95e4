//! The open-conversations quota and the agent pick across a cluster (issue 25): two relay
//! nodes on one throwaway PostgreSQL (`sealdesk_tests::pg`; skipped, loudly, without
//! PostgreSQL binaries). A customer's (and a visitor's) open conversations are counted on
//! whichever node it opens through, and opens through both nodes at the same instant take
//! exactly the quota: the check and the record are one conditional write the database
//! decides. The least-loaded agent is picked by the conversations of the whole cluster.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    card::Role,
    wire::{ErrorCode, Request, Response},
};
use sealdesk_tests::{
    Chat, Org, RawClient,
    burst::{at_once, fresh_keys, opened_or_over_quota},
    cluster::{self, Node, TwoNodes},
    identity::{Identity, now},
    web_key::{self, open_request},
};

/// The quota both nodes run with.
const MOST: usize = 2;

/// Two nodes on a fresh database named after `name`, each allowing at most [`MOST`] open
/// conversations per customer and org, or `None` without PostgreSQL.
fn cluster(name: &str) -> Option<TwoNodes> {
    let most = MOST.to_string();
    cluster::two_nodes(name)
        .settings(&[
            ("OPEN_CONVERSATIONS_PER_ORG", most.as_str()),
            ("CONVERSATION_OPENS_PER_HOUR", "1000"),
        ])
        .start()
}

/// Sends each request of `burst` as its account, through node A and node B in turn, all in
/// flight together; how many opened. Every other answer must be `quota_exceeded`.
async fn opened_at_once(urls: [&str; 2], burst: Vec<(&Identity, Request)>) -> usize {
    opened_or_over_quota(&at_once(&urls, burst).await)
}

fn refused_as_quota(r: &Response) -> bool {
    matches!(
        r,
        Response::Error {
            code: ErrorCode::QuotaExceeded,
            ..
        }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_customers_open_conversations_are_counted_across_nodes_and_at_the_same_instant() {
    let Some(TwoNodes { a, b, .. }) = cluster("cluster_limits_customer") else {
        return;
    };
    let org = Org::setup(&a.url, 5, "acme", 2, 1).await;
    let alice = &org.customers[0];
    // One conversation through each node: the quota is used up on both.
    let mut on_a = RawClient::login(&a.url, alice).await;
    let mut on_b = RawClient::login(&b.url, alice).await;
    assert!(matches!(
        on_a.request(open_request("acme", 1, None)).await,
        Response::Opened { .. }
    ));
    assert!(matches!(
        on_b.request(open_request("acme", 2, None)).await,
        Response::Opened { .. }
    ));
    let r = on_b.request(open_request("acme", 3, None)).await;
    assert!(
        refused_as_quota(&r),
        "node B counts node A's conversation: {r:?}"
    );
    let r = on_a.request(open_request("acme", 4, None)).await;
    assert!(
        refused_as_quota(&r),
        "node A counts node B's conversation: {r:?}"
    );
    on_a.close().await;
    on_b.close().await;

    // Bursts of one fresh customer key through both nodes at once: exactly the quota opens.
    for round in 0..3u64 {
        let who = Identity::new(50 + round, &format!("burst{round}"), Role::Customer);
        let burst = (0..8)
            .map(|i| (&who, open_request("acme", 100 * (round + 1) + i, None)))
            .collect();
        assert_eq!(
            opened_at_once([&a.url, &b.url], burst).await,
            MOST,
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_visitors_open_conversations_are_counted_across_nodes_and_at_the_same_instant() {
    let Some(TwoNodes { a, b, .. }) = cluster("cluster_limits_visitor") else {
        return;
    };
    let acme = Org::new_with(6, "acme", 1, 1, |p| p.require_open_token = true)
        .publish(&a.url)
        .await;
    let web = web_key::certified(&a.url, &acme, 7).await;
    let t = now();
    let token = |who: &Identity, visitor: &str| {
        web_key::token(&web, "acme", visitor.as_bytes(), who, t, 600)
    };
    for round in 0..3u64 {
        let visitor = format!("visitor-{round}");
        let keys = fresh_keys(round, 8);
        let burst = keys
            .iter()
            .zip(0..)
            .map(|(who, i)| {
                let token = Some(token(who, &visitor));
                (who, open_request("acme", 500 * (round + 1) + i, token))
            })
            .collect();
        assert_eq!(
            opened_at_once([&a.url, &b.url], burst).await,
            MOST,
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_least_loaded_agent_is_picked_by_the_whole_clusters_conversations() {
    let Some(TwoNodes { a, b, .. }) = cluster("cluster_limits_pick") else {
        return;
    };
    // Two agents, neither online: the pick goes by load alone.
    let org = Org::setup(&a.url, 8, "acme", 2, 4).await;
    let mut agents = Vec::new();
    for (i, who) in org.customers.iter().enumerate() {
        let url = if i % 2 == 0 { &a.url } else { &b.url };
        let mut c = RawClient::login(url, who).await;
        match c.request(open_request("acme", 900 + i as u64, None)).await {
            Response::Opened { agent, .. } => agents.push(agent.signing_key),
            other => panic!("expected opened, got {other:?}"),
        }
        c.close().await;
    }
    // Alternating nodes, each open goes to the agent with fewer conversations cluster-wide.
    let first = agents.iter().filter(|a| **a == agents[0]).count();
    assert_eq!(first, 2, "{agents:?}");
    assert_ne!(agents[0], agents[1]);
}

/// Two nodes allowing an account [`BYTES_QUOTA`] stored bytes (node A with `a_settings` too),
/// an org, and its first customer signed in on both with a conversation opened through A.
struct BytesCluster {
    a: Node,
    _b: Node,
    org: Org,
    chat: Chat,
    on_a: RawClient,
    on_b: RawClient,
    /// The customer's last message counter.
    counter: u64,
}

/// The account quota of [`BytesCluster`].
const BYTES_QUOTA: &str = "100000";

impl BytesCluster {
    async fn start(name: &str, a_settings: &[(&str, &str)]) -> Option<Self> {
        let TwoNodes { a, b, .. } = cluster::two_nodes(name)
            .settings(&[("STORED_BYTES_PER_ACCOUNT", BYTES_QUOTA)])
            .a_settings(a_settings)
            .start()?;
        let org = Org::setup(&a.url, 8, "acme", 1, 1).await;
        let customer = &org.customers[0];
        let mut on_a = RawClient::login(&a.url, customer).await;
        let on_b = RawClient::login(&b.url, customer).await;
        let chat = org.start_chat(&mut on_a, 0, 9).await;
        Some(Self {
            a,
            _b: b,
            org,
            chat,
            on_a,
            on_b,
            counter: 0,
        })
    }

    /// Sends `text` through node A (`on_b`: B), with the customer's next counter.
    async fn send(&mut self, on_b: bool, text: &str) -> Response {
        self.counter += 1;
        let env = self.chat.seal(&self.org.customers[0], self.counter, text);
        let on = if on_b { &mut self.on_b } else { &mut self.on_a };
        on.request(Request::Send(env)).await
    }

    /// 41,064 bytes through a node (41% of the quota: four messages of 10,250 characters).
    async fn store_41_percent(&mut self, on_b: bool) {
        for _ in 0..4 {
            let r = self.send(on_b, &"k".repeat(10_250)).await;
            assert!(matches!(r, Response::Stored { .. }), "{r:?}");
        }
    }

    /// Sends small messages through a node until its answer warns of `at_least` bytes (a
    /// rate limit is waited out). Each is 17 bytes: in the 20 s this waits at most, they cannot
    /// bring 41% of the quota to 80% on their own.
    async fn until_warned(&mut self, on_b: bool, at_least: u64) {
        let name = if on_b { "B" } else { "A" };
        sealdesk_tests::eventually(
            &format!("node {name} warns of {at_least} bytes stored"),
            async || match self.send(on_b, ".").await {
                Response::Stored { quota: Some(q), .. } => (q.used >= at_least).then_some(()),
                Response::Stored { .. }
                | Response::Error {
                    code: ErrorCode::RateLimited,
                    ..
                } => None,
                other => panic!("a small message refused on node {name}: {other:?}"),
            },
        )
        .await;
    }
}

/// The stored-bytes counts of an account writing through two nodes: each node gathers its own
/// and folds them into the database once per catch-up period (one transaction,
/// `ConversationLog::add_counts`), so each node comes to see what the other stored: the 80%
/// warning, which neither node's bytes reach alone, comes on both, and past the quota both
/// refuse. Without the fold neither node ever learns the other's bytes, and this test times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_stored_bytes_are_counted_across_nodes() {
    let Some(mut c) = BytesCluster::start("cluster_limits_bytes", &[]).await else {
        return;
    };
    // 41% through each node: 82% in all. Node A's share alone warns of nothing (node B's
    // may already count A's, folded meanwhile).
    c.store_41_percent(false).await;
    let r = c.send(false, ".").await;
    assert!(
        matches!(r, Response::Stored { quota: None, .. }),
        "one node's share warns of nothing: {r:?}"
    );
    c.store_41_percent(true).await;
    // Each node comes to warn once it has the other's bytes; then a message the quota has no
    // room for is refused, typed, on each.
    for on_b in [false, true] {
        c.until_warned(on_b, 80_000).await;
        let r = c.send(on_b, &"b".repeat(20_000)).await;
        assert!(
            refused_as_quota(&r),
            "no room for 20,000 more bytes (node B: {on_b}): {r:?}"
        );
    }
}

/// A node stopped cleanly writes the stored-bytes counts it gathered since its last fold
/// (only a crash loses them): node A, whose periodic fold is an hour away, stores 82% of an
/// account's quota and is stopped with SIGTERM; node B then counts those bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_cleanly_writes_the_bytes_it_counted() {
    let hour = [("CLUSTER_CATCH_UP_MS", "3600000")];
    let Some(mut c) = BytesCluster::start("cluster_limits_stop", &hour).await else {
        return;
    };
    c.store_41_percent(false).await;
    c.store_41_percent(false).await;
    // Node A has not folded: node B knows none of it.
    let r = c.send(true, ".").await;
    assert!(
        matches!(r, Response::Stored { quota: None, .. }),
        "node B does not know node A's bytes before A folds: {r:?}"
    );
    c.a.process.terminate().unwrap();
    c.until_warned(true, 82_000).await;
}
