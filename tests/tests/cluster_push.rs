//! Pushes between the nodes of a cluster that a notification cannot carry, and what a node
//! does when its wake-up listener reconnects (issue 24): two relay processes on one throwaway
//! PostgreSQL (`sealdesk_tests::pg`).
//!
//! - A push frame too large for a `NOTIFY` payload (8000 bytes, hex) is stored in the database
//!   and forwarded by reference: a customer on node B, watching agent keys, is told of her
//!   agent's re-certification through node A with an `agent_key_changed` push naming her many
//!   conversations (more than 4 kB encoded). Before, node A dropped that push.
//! - A block stored through node A while node B's listener was away is enforced by node B as
//!   soon as its listener reconnects, not a chores period later (node B's is ten minutes here,
//!   so only the reconnect can explain it).
//!
//! Skipped, loudly, only when the machine has no PostgreSQL binaries (CI installs them:
//! `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    wire::{self, ErrorCode, Frame, Push, Request, Response},
};
use sealdesk_tests::{
    Identity, Org, RawClient,
    cluster::{self, TwoNodes},
    eventually, pg, rng,
};

/// Conversations the customer holds with the agent: her `agent_key_changed` push names them all
/// (the push names at most 256), 17 CBOR bytes each, so it encodes to more than 4 kB.
const CONVERSATIONS: u64 = 250;

/// More than a push forwarded inline may encode to (3908 bytes: the payload is hex, under 8000
/// bytes with the node, the kind and the 32-byte account key, `wake::push_payload`).
const BEYOND_INLINE: usize = 4096;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_key_push_too_large_for_a_notification_reaches_another_node() {
    let quota = [
        ("OPEN_CONVERSATIONS_PER_ORG", "100000"),
        ("CONVERSATION_OPENS_PER_HOUR", "100000"),
    ];
    let Some(TwoNodes { a, b, db }) = cluster::two_nodes("push_by_reference")
        .settings(&quota)
        .start()
    else {
        return;
    };
    let org = Org::setup(&a.url, 31, "acme", 1, 1).await;
    let (customer, old) = (&org.customers[0], &org.agents[0]);

    // The customer opens her conversations through node A (the org's one agent holds them
    // all), then watches agent keys on node B.
    let mut opener = RawClient::login(&a.url, customer).await;
    let mut opened = Vec::new();
    let mut rng = rng(31);
    for _ in 0..CONVERSATIONS {
        let id = ConversationId::random(&mut rng);
        match opener
            .request(Request::OpenConversation {
                org: "acme".into(),
                conversation: id,
            })
            .await
        {
            Response::Opened { .. } => opened.push(id),
            other => panic!("expected Opened, got {other:?}"),
        }
    }
    opener.close().await;
    let mut watching = RawClient::login(&b.url, customer).await;
    watching.ok(Request::WatchAgentKeys).await;

    // The master re-certifies the agent's name for a new key through node A.
    let new = Identity::new(9_031, old.name(), Role::Agent);
    org.recertify(&a.url, &new).await;

    // Node B pushes it, read from the database: too large to have travelled inline.
    let push = watching
        .expect_push("agent_key_changed forwarded to node B", |p| match p {
            Push::AgentKeyChanged { .. } => Some(p.clone()),
            _ => None,
        })
        .await;
    let Push::AgentKeyChanged {
        org: pushed_org,
        agent,
        card,
        conversations,
    } = &push
    else {
        unreachable!()
    };
    assert_eq!((pushed_org.as_str(), agent.as_str()), ("acme", old.name()));
    assert_eq!(*card, new.card());
    let mut named = conversations.clone();
    named.sort_unstable();
    opened.sort_unstable();
    assert_eq!(named, opened, "every conversation of hers is named");
    let size = wire::encode(&Frame::Push(push.clone())).unwrap().len();
    assert!(
        size > BEYOND_INLINE,
        "the push ({size} bytes) would have fitted a notification"
    );
    watching.close().await;

    // Node A stored it by reference, node B read it there; nothing was lost.
    let by_reference = "sealdesk_cluster_pushes_by_reference";
    assert_eq!(
        cluster::metric(&a, &format!("{by_reference}_sent_total")).await,
        1
    );
    assert_eq!(
        cluster::metric(&b, &format!("{by_reference}_read_total")).await,
        1
    );
    for node in [&a, &b] {
        assert_eq!(
            cluster::metric(node, &format!("{by_reference}_lost_total")).await,
            0
        );
    }
    assert_eq!(pg::query(&db, "SELECT count(*) FROM forwarded_pushes"), "1");
}

/// Node B reads blocks only at start and every ten minutes (its chores period): a block stored
/// through node A is not enforced on B until B's listener loses its database connection and
/// reconnects, and then at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_is_enforced_as_soon_as_the_listener_reconnects() {
    let Some(TwoNodes { a, b, db }) = cluster::two_nodes("block_on_reconnect")
        .b_settings(&[("CLUSTER_CATCH_UP_MS", "600000")])
        .start()
    else {
        return;
    };
    let org = Org::setup(&a.url, 32, "acme", 1, 1).await;
    let customer = &org.customers[0];
    let mut on_b = RawClient::login(&b.url, customer).await;
    let chat = org.start_chat(&mut on_b, 0, 33).await;
    on_b.stored(Request::Send(chat.seal(customer, 1, "hello")))
        .await;

    org.block(&a.url, &chat).await;
    // Node B has not read the block (no chores period passed, its listener stayed up).
    on_b.stored(Request::Send(chat.seal(customer, 2, "still here")))
        .await;

    // Node B's listener (and node A's) loses its connection and reconnects. The round that
    // handles the reconnect reloads the blocks, then catches up (which `/metrics` counts; with
    // a ten-minute period, B's start-up rounds, long done, are the only others).
    let rounds = cluster::metric(&b, CATCH_UPS).await;
    cluster::terminate_listeners(&db, 2);
    eventually("node B's listener to reconnect", async || {
        (cluster::metric(&b, CATCH_UPS).await > rounds).then_some(())
    })
    .await;
    assert_eq!(
        on_b.refused(Request::Send(chat.seal(customer, 3, "more")))
            .await,
        ErrorCode::Blocked,
        "node B enforces node A's block once its listener reconnected"
    );
    on_b.close().await;
}

/// Node B's catch-up rounds: one at start, then one per period and per listener reconnect.
const CATCH_UPS: &str = "sealdesk_cluster_catch_up_seconds_count";
