//! An item reaches the account's other connections (PROTOCOL.md §13.11): a consent, a message or
//! an epoch record a customer stores on one device is pushed at once to her other devices and
//! tabs, on the same node and, in a cluster, on another node; the connection that stored it is
//! not pushed its own item (its response answered it). The clients take such an item as their
//! own (`own_device_items.rs`; the web client's tests for the browser).
//!
//! Before, the relay left out the whole sending account, so a consent granted in the CLI reached
//! an open widget of the same account only at its next read of the conversation.
//!
//! The cluster case is skipped, loudly, only when the machine has no PostgreSQL binaries (CI
//! installs them: `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    ids::ConversationId,
    wire::{Item, Request, Sequenced},
};
use sealdesk_tests::{
    Chat, Org, RawClient,
    cluster::{self, TwoNodes},
    consent::full_consent,
    spawn_relay,
};

/// The item pushed to `c` at sequence number `seq` of conversation `id`.
async fn pushed(c: &mut RawClient, what: &str, id: ConversationId, seq: u64) -> Sequenced {
    c.expect_item_push(what, id, seq).await
}

/// `c` is pushed no item at sequence number `seq` of conversation `id`.
async fn not_pushed(c: &mut RawClient, what: &str, id: ConversationId, seq: u64) {
    c.expect_no_item_push(what, id, seq).await;
}

/// The customer of `org` shares a consent for `chat` on `sharing`: `other` (the same account on
/// another connection) is pushed it, and the master too.
async fn consent_reaches_the_other_device(
    org: &Org,
    chat: &Chat,
    sharing: &mut RawClient,
    other: &mut RawClient,
    master: &mut RawClient,
    seed: u64,
) -> u64 {
    let customer = &org.customers[chat.customer];
    let token = full_consent(org, customer, chat.id, seed);
    let seq = sharing.stored(Request::ShareConsent(token.clone())).await;
    let item = pushed(
        other,
        "the consent on the account's other device",
        chat.id,
        seq,
    )
    .await;
    match &item.item {
        Item::Consent(t) => assert_eq!(t.id, token.id, "the consent shared is the one pushed"),
        other => panic!("expected the consent item, got {other:?}"),
    }
    let to_master = pushed(master, "the consent to the org's master", chat.id, seq).await;
    assert!(matches!(to_master.item, Item::Consent(_)));
    seq
}

#[tokio::test]
async fn her_consent_message_and_epoch_reach_her_other_devices_not_the_one_that_stored_them() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 71, "acme", 1, 2).await;
    let (customer, stranger) = (&org.customers[0], &org.customers[1]);
    let mut sharing = RawClient::login(&url, customer).await;
    let mut other = RawClient::login(&url, customer).await;
    let mut master = RawClient::login(&url, &org.master).await;
    let mut agent = RawClient::login(&url, &org.agents[0]).await;
    let mut outsider = RawClient::login(&url, stranger).await;

    // Epoch 0, stored on one device: the agent and the account's other device are pushed it.
    let chat = org.start_chat(&mut sharing, 0, 710).await;
    pushed(&mut agent, "epoch 0 to the agent", chat.id, chat.epoch_seq).await;
    pushed(
        &mut other,
        "epoch 0 to the other device",
        chat.id,
        chat.epoch_seq,
    )
    .await;

    // A consent: to the other device and the master at once, without a read.
    let consent =
        consent_reaches_the_other_device(&org, &chat, &mut sharing, &mut other, &mut master, 711)
            .await;
    // A message: to the agent and to the account's other device.
    let message = sharing
        .stored(Request::Send(chat.seal(customer, 1, "from my phone")))
        .await;
    pushed(&mut agent, "the message to the agent", chat.id, message).await;
    pushed(
        &mut other,
        "the message to the other device",
        chat.id,
        message,
    )
    .await;

    // The connection that made each request learnt it from its response: nothing pushed back.
    for seq in [chat.epoch_seq, consent, message] {
        not_pushed(
            &mut sharing,
            "an item back to the connection that made it",
            chat.id,
            seq,
        )
        .await;
    }
    // The agent is not pushed the consent (the master is), and another customer nothing.
    not_pushed(&mut agent, "the consent to the agent", chat.id, consent).await;
    for seq in [chat.epoch_seq, consent, message] {
        not_pushed(&mut outsider, "an item to another customer", chat.id, seq).await;
    }

    // A consent the other device shares reaches the first one, the same way.
    consent_reaches_the_other_device(&org, &chat, &mut other, &mut sharing, &mut master, 712).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn her_consent_epoch_and_message_reach_her_device_on_another_node() {
    let Some(TwoNodes { a, b, .. }) = cluster::two_nodes("own_devices_push").start() else {
        return;
    };
    let org = Org::setup(&a.url, 72, "acme", 1, 1).await;
    let customer = &org.customers[0];
    let mut on_a = RawClient::login(&a.url, customer).await;
    let mut on_b = RawClient::login(&b.url, customer).await;
    let mut master = RawClient::login(&a.url, &org.master).await;

    let chat = org.start_chat(&mut on_a, 0, 720).await;
    pushed(&mut on_b, "epoch 0 on node B", chat.id, chat.epoch_seq).await;
    consent_reaches_the_other_device(&org, &chat, &mut on_a, &mut on_b, &mut master, 721).await;
    // Her message reaches her own device on node B too, and not the connection that sent it.
    let message = on_a
        .stored(Request::Send(chat.seal(customer, 1, "sent through node A")))
        .await;
    pushed(&mut on_b, "her own message on node B", chat.id, message).await;
    not_pushed(
        &mut on_a,
        "her message back to the sending connection",
        chat.id,
        message,
    )
    .await;
}

/// Issue 20: the org's master, connected to another node than the one that stored a consent, is
/// pushed it too — before, only the master's connections on the storing node were (the other
/// nodes push a conversation's items from their cursors to its members, and the master is not
/// one). The master on node B makes no request here: the consent comes by push, not by a read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_reaches_the_master_on_another_node_and_no_one_else_there() {
    let Some(TwoNodes { a, b, .. }) = cluster::two_nodes("own_devices_push_master").start() else {
        return;
    };
    let org = Org::setup(&a.url, 73, "acme", 1, 2).await;
    let customer = &org.customers[0];
    let mut sharing = RawClient::login(&a.url, customer).await;
    let mut master = RawClient::login(&b.url, &org.master).await;
    let mut agent = RawClient::login(&b.url, &org.agents[0]).await;
    let mut outsider = RawClient::login(&b.url, &org.customers[1]).await;

    let chat = org.start_chat(&mut sharing, 0, 730).await;
    // Node B watches the conversation (its agent is connected there) before the consent.
    pushed(
        &mut agent,
        "epoch 0 to the agent on node B",
        chat.id,
        chat.epoch_seq,
    )
    .await;
    let token = full_consent(&org, customer, chat.id, 731);
    let seq = sharing.stored(Request::ShareConsent(token.clone())).await;
    let item = pushed(
        &mut master,
        "the consent to the master on node B",
        chat.id,
        seq,
    )
    .await;
    match &item.item {
        Item::Consent(t) => assert_eq!(t.id, token.id, "the consent shared is the one pushed"),
        other => panic!("expected the consent item, got {other:?}"),
    }
    // Once only, and to no other account connected to node B.
    not_pushed(&mut master, "the consent a second time", chat.id, seq).await;
    not_pushed(
        &mut agent,
        "the consent to the agent on node B",
        chat.id,
        seq,
    )
    .await;
    not_pushed(
        &mut outsider,
        "the consent to another customer on node B",
        chat.id,
        seq,
    )
    .await;
}
