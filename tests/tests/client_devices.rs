//! Two devices of one agent account (SECURITY.md, "Two devices of one agent"): a device seals
//! only in an epoch it made itself or one another member made, so two devices of one sender,
//! each with its own counters, never seal two messages under one (epoch, counter). Here the
//! second device is a copy of the agent's home taken before the conversation existed (as the
//! browser console is an import of it); the hostile proxy records every frame the account sends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::card::Role;
use sealdesk_tests::world::{Via, World, open_chat, texts};

#[tokio::test]
async fn two_devices_of_one_agent_never_seal_under_one_counter() {
    let w = World::with_proxy().await;
    // Epochs of two messages, so that the customer's epoch 0 is full before the agent writes.
    let master = w.org_master(&["alice"], Some(2)).await;
    master.close().await;
    w.copy_home("alice", "alice-browser");
    let mut carol = w.user_via("carol", Role::Customer, Via::Proxy).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "c1").await.unwrap();
    carol.send_text(&conv, "c2").await.unwrap();

    // The second device rotates (epoch 0 is full) and sends in the epoch it made.
    let mut other = w.reopen_via("alice-browser", Via::Proxy).await;
    other.sync_all().await.unwrap();
    other
        .send_text(&conv, "from the second device")
        .await
        .unwrap();
    // The first device finds an epoch its key signed but its vault did not make: it opens one
    // of its own rather than sealing there with counters the other device also uses.
    let mut first = w.reopen_via("alice", Via::Proxy).await;
    first.sync_all().await.unwrap();
    first
        .send_text(&conv, "from the first device")
        .await
        .unwrap();
    other
        .send_text(&conv, "the second device again")
        .await
        .unwrap();
    first
        .send_text(&conv, "the first device again")
        .await
        .unwrap();

    let sealed = w.assert_no_counter_sealed_twice("alice");
    // Four texts, and the read receipts the devices sent while syncing.
    assert!(sealed.len() >= 4, "every message sealed once: {sealed:?}");
    carol.sync(&conv).await.unwrap();
    assert_eq!(
        texts(&carol, &conv),
        vec![
            "carol: c1",
            "carol: c2",
            "alice: from the second device",
            "alice: from the first device",
            "alice: the second device again",
            "alice: the first device again",
        ]
    );
}
