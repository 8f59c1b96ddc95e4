//! Issue 20: the org master's consent push survives a lost cluster notification (PROTOCOL.md
//! §13.11). The node that stores a consent forwards it to the master's connections on the other
//! nodes through the cluster's notification; a node that misses it (no listener,
//! `cluster_wakeups = 0`, or a forward lost while its listener reconnected) makes it up from the
//! stored master-push row at its next periodic catch-up. Each master connection is pushed the
//! consent once, on every node; the agent and another customer connected there nothing.
//!
//! Before, a master on a node that missed the forward was never pushed the consent: only its
//! next listing (`org_conversations`) showed it. Skipped, loudly, only without PostgreSQL
//! binaries (CI installs them: `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::wire::{Item, Push, Request, Sequenced};
use sealdesk_tests::{
    Org, RawClient,
    cluster::{self, CommitGate, Node, TwoNodes},
    consent::full_consent,
};

/// Reads of the stored master pushes on a node (one per periodic catch-up).
const READS: &str = "sealdesk_cluster_master_push_reads_total";
/// Consents pushed to a master from their stored row on a node.
const MADE_UP: &str = "sealdesk_cluster_master_pushes_made_up_total";

/// Waits until `node` has read the stored master pushes twice more than it had: the second of
/// those reads started after this call, so it saw every row committed before it.
async fn two_more_reads(node: &Node) {
    cluster::two_more(node, READS).await;
}

/// A customer on node A shares a consent; the org's master is connected to both nodes, its agent
/// and another customer to node B. Each master connection is pushed the consent exactly once
/// (checked after both nodes read the stored master pushes again); the agent and the other
/// customer are pushed nothing of it.
///
/// How node B's master comes by the consent is `on_b`'s to say; with a [`HeldCatchUp`] B's
/// catch-up (the make-up) cannot run before the test opens its gate.
async fn consent_reaches_each_master_once(nodes: &TwoNodes, seed: u64, on_b: OnB<'_>) {
    let (a, b) = (&nodes.a, &nodes.b);
    let org = Org::setup(&a.url, seed, "acme", 1, 2).await;
    let customer = &org.customers[0];
    let mut sharing = RawClient::login(&a.url, customer).await;
    let mut master_a = RawClient::login(&a.url, &org.master).await;
    let mut master_b = RawClient::login(&b.url, &org.master).await;
    let mut agent = RawClient::login(&b.url, &org.agents[0]).await;
    let mut outsider = RawClient::login(&b.url, &org.customers[1]).await;

    let chat = org.start_chat(&mut sharing, 0, seed * 10).await;
    let token = full_consent(&org, customer, chat.id, seed * 10 + 1);
    let seq = sharing.stored(Request::ShareConsent(token.clone())).await;
    let is_shared = |item: &Sequenced, node: &str| match &item.item {
        Item::Consent(t) => assert_eq!(t.id, token.id, "the consent pushed on node {node}"),
        other => panic!("expected the consent item on node {node}, got {other:?}"),
    };
    let item = master_a
        .expect_item_push("the consent to the master on node A", chat.id, seq)
        .await;
    is_shared(&item, "A");
    let to_b = "the consent to the master on node B";
    let item = match on_b {
        OnB::MadeUp => master_b.expect_item_push(to_b, chat.id, seq).await,
        OnB::Forwarded(catch_up) => {
            let item = master_b.expect_item_push(to_b, chat.id, seq).await;
            catch_up.open();
            item
        }
        OnB::Lost(catch_up) => {
            let line = cluster::logged(b, cluster::CONSENT_DROPPED).await;
            assert_eq!(cluster::log_field(&line, "seq"), seq, "the consent dropped");
            master_b
                .expect_no_item_push("the consent on node B before its catch-up", chat.id, seq)
                .await;
            catch_up.open();
            master_b.expect_item_push(to_b, chat.id, seq).await
        }
    };
    is_shared(&item, "B");
    two_more_reads(a).await;
    two_more_reads(b).await;
    for (master, node) in [(&mut master_a, "A"), (&mut master_b, "B")] {
        master
            .expect_no_item_push(
                &format!("the consent a second time on node {node}"),
                chat.id,
                seq,
            )
            .await;
    }
    agent
        .expect_no_item_push("the consent to the agent", chat.id, seq)
        .await;
    outsider
        .expect_no_push(
            "an item of another customer's conversation",
            |p| matches!(p, Push::Item(s) if s.conversation == chat.id),
        )
        .await;
}

/// How node B's master comes by the consent in [`consent_reaches_each_master_once`].
enum OnB<'g> {
    /// From B's periodic catch-up, whenever it runs (B has no listener).
    MadeUp,
    /// Forwarded, while B's catch-up is held at the gate (opened once B's master has it): the
    /// make-up cannot push it first.
    Forwarded(&'g CommitGate),
    /// B drops the forward (it logs so) while its catch-up is held at the gate: B's master has
    /// nothing of it until the gate opens, and the push it then gets is the make-up's.
    Lost(&'g CommitGate),
}

/// A catch-up gate for node B (`SEALDESK_TEST_CATCH_UP_GATE`), closed before B starts: B's
/// periodic catch-up, which makes up the master's pushes, waits until the test opens it.
struct HeldCatchUp {
    gate: CommitGate,
}

impl HeldCatchUp {
    fn new() -> Self {
        let gate = CommitGate::catch_up();
        gate.close();
        Self { gate }
    }

    /// Nodes A and B on a fresh database named after `test`, B behind the gate with `env`
    /// more; `None` without PostgreSQL.
    fn nodes(&self, test: &str, env: &[(&str, &str)]) -> Option<TwoNodes> {
        let (name, path) = self.gate.env();
        cluster::two_nodes(test)
            .b_env(&[(name, path.as_str())])
            .b_env(env)
            .start()
    }
}

/// Node B has no listener: the forward never reaches it, and its periodic catch-up makes the
/// push up, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_wakeups_pushes_the_consent_to_its_master_once() {
    let Some(nodes) = cluster::two_nodes("consent_makeup_no_wakeups")
        .b_wakeups(false)
        .start()
    else {
        return;
    };
    consent_reaches_each_master_once(&nodes, 201, OnB::MadeUp).await;
    assert_eq!(cluster::metric(&nodes.b, MADE_UP).await, 1, "made up on B");
    assert_eq!(
        cluster::metric(&nodes.a, MADE_UP).await,
        0,
        "A pushed its own"
    );
}

/// Node B listens but drops the forwarded consent (as while its listener reconnects; the
/// relay's test-only `SEALDESK_TEST_DROP_FORWARDED_CONSENTS`), which it logs, and its periodic
/// catch-up is held until then: its master is pushed nothing before the catch-up, which makes
/// the push up, once. A relay that does not drop the forward fails this test: its master has the
/// consent before the catch-up (and nothing is logged, nothing made up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_forward_is_made_up_once() {
    let held = HeldCatchUp::new();
    let Some(nodes) = held.nodes(
        "consent_makeup_lost_forward",
        &[("SEALDESK_TEST_DROP_FORWARDED_CONSENTS", "1")],
    ) else {
        return;
    };
    consent_reaches_each_master_once(&nodes, 202, OnB::Lost(&held.gate)).await;
    assert_eq!(cluster::metric(&nodes.b, MADE_UP).await, 1, "made up on B");
}

/// The forward arrives (B's catch-up is held until its master has it, so the make-up cannot
/// push it first): the make-up's read of the same row pushes nothing more, on either node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_consent_is_not_made_up_again() {
    let held = HeldCatchUp::new();
    let Some(nodes) = held.nodes("consent_makeup_forwarded", &[]) else {
        return;
    };
    consent_reaches_each_master_once(&nodes, 203, OnB::Forwarded(&held.gate)).await;
    for node in nodes.both() {
        assert_eq!(cluster::metric(node, MADE_UP).await, 0, "nothing made up");
    }
}
