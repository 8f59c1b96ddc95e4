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

use sealdesk_protocol::wire::{Item, Push, Request};
use sealdesk_tests::{
    Org, RawClient,
    cluster::{self, Node, TwoNodes},
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
async fn consent_reaches_each_master_once(nodes: &TwoNodes, seed: u64) {
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
    for (master, node) in [(&mut master_a, "A"), (&mut master_b, "B")] {
        let item = master
            .expect_item_push(
                &format!("the consent to the master on node {node}"),
                chat.id,
                seq,
            )
            .await;
        match &item.item {
            Item::Consent(t) => assert_eq!(t.id, token.id, "the consent shared is the one pushed"),
            other => panic!("expected the consent item, got {other:?}"),
        }
    }
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
    consent_reaches_each_master_once(&nodes, 201).await;
    assert_eq!(cluster::metric(&nodes.b, MADE_UP).await, 1, "made up on B");
    assert_eq!(
        cluster::metric(&nodes.a, MADE_UP).await,
        0,
        "A pushed its own"
    );
}

/// Node B listens but drops the forwarded consent (as while its listener reconnects): its
/// periodic catch-up makes the push up, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_forward_is_made_up_once() {
    let Some(nodes) = cluster::two_nodes("consent_makeup_lost_forward")
        .b_env(&[("SEALDESK_TEST_DROP_FORWARDED_CONSENTS", "1")])
        .start()
    else {
        return;
    };
    consent_reaches_each_master_once(&nodes, 202).await;
    assert_eq!(cluster::metric(&nodes.b, MADE_UP).await, 1, "made up on B");
}

/// The forward arrives: the make-up's read of the same row pushes nothing more, on either node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_consent_is_not_made_up_again() {
    let Some(nodes) = cluster::two_nodes("consent_makeup_forwarded").start() else {
        return;
    };
    consent_reaches_each_master_once(&nodes, 203).await;
    for node in nodes.both() {
        assert_eq!(cluster::metric(node, MADE_UP).await, 0, "nothing made up");
    }
}
