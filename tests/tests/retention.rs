//! The retention sweeper: a conversation idle for longer than its org's retention period is
//! erased (ciphertext, epoch records and their escrow) and the erasure is logged, unless a
//! dispute ticket holds it.
//!
//! The relay runs on a [`TestClock`]: a test moves the time and asks for a sweep
//! ([`RunningRelay::sweep_retention`](sealdesk_server::RunningRelay::sweep_retention)), so
//! nothing waits for wall time or for the periodic sweeper.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    audit::AuditEvent,
    ids::EpochRange,
    policy::{OrgPolicy, PolicyParams},
    release::DisputeTicket,
    wire::{ErrorCode, Request, Response},
};
use sealdesk_server::clock::TestClock;
use sealdesk_tests::{Org, RawClient, now, spawn_relay_with, stop_relay};

/// Publishes version 2 of the org's policy with a one-second retention period.
async fn short_retention(url: &str, org: &Org) {
    let p = org.policy.policy();
    let mut params = PolicyParams::new(
        &p.org,
        p.trustees.clone(),
        p.trustee_threshold,
        p.arbiters.clone(),
        p.arbiter_threshold,
    );
    params.version = 2;
    params.retention_secs = 1;
    let v2 = OrgPolicy::issue(&org.master.keys, &org.master.card, params, now()).unwrap();
    let mut m = RawClient::login(url, &org.master).await;
    m.ok(Request::PublishPolicy(v2.policy().clone())).await;
    m.close().await;
}

#[tokio::test]
async fn idle_conversations_are_erased_and_logged_unless_under_dispute() {
    let clock = TestClock::at_system_time();
    let (relay, _dir) = spawn_relay_with(|c| c.clock = clock.handle()).await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 31, "keepco", 1, 2).await;
    let mut c0 = RawClient::login(&url, &org.customers[0]).await;
    let idle = org.start_chat(&mut c0, 0, 310).await;
    let mut c1 = RawClient::login(&url, &org.customers[1]).await;
    let held = org.start_chat(&mut c1, 1, 311).await;
    // A dispute on the second conversation is a legal hold.
    let mut rng = sealdesk_tests::rng(312);
    let ticket = DisputeTicket::open(
        &mut rng,
        &org.master.keys,
        &org.policy,
        held.id,
        EpochRange::single(0),
        "chargeback",
        3600,
        now(),
    )
    .unwrap();
    let mut m = RawClient::login(&url, &org.master).await;
    m.ok(Request::OpenTicket(ticket)).await;
    short_retention(&url, &org).await;

    // Idle for exactly the retention period is not idle for longer than it.
    clock.advance(1);
    assert_eq!(
        relay.sweep_retention().await.unwrap(),
        0,
        "erased too early"
    );
    clock.advance(1);
    assert_eq!(
        relay.sweep_retention().await.unwrap(),
        1,
        "the idle conversation, and only it, is erased"
    );
    let r = c0
        .request(Request::History {
            conversation: idle.id,
            after: 0,
            limit: 10,
        })
        .await;
    assert!(
        matches!(
            r,
            Response::Error {
                code: ErrorCode::NotFound,
                ..
            }
        ),
        "the idle conversation was not erased: {r:?}"
    );

    // The erasure is in the audit log, signed by the relay, with its reason.
    let Response::Entries { entries, .. } = c0
        .request(Request::GetEntries {
            from: 0,
            limit: 100,
        })
        .await
    else {
        panic!("no entries")
    };
    let erasure = entries
        .iter()
        .find(|e| matches!(&e.event, AuditEvent::Erasure { conversation, .. } if *conversation == idle.id))
        .expect("an erasure entry for the idle conversation");
    assert!(matches!(&erasure.event, AuditEvent::Erasure { reason, .. } if reason == "retention"));
    erasure.verify().unwrap();

    // The conversation under dispute is kept.
    let r = c1
        .request(Request::History {
            conversation: held.id,
            after: 0,
            limit: 10,
        })
        .await;
    assert!(matches!(r, Response::Items { .. }), "{r:?}");
    stop_relay(relay).await;
}

/// Retention counts from the last message, not from the conversation record (which message
/// appends do not rewrite): a conversation that keeps talking is never swept, while the
/// sweeper runs many times over a record older than the retention period; once it goes
/// quiet for longer than that, it is.
#[tokio::test]
async fn a_conversation_that_keeps_talking_is_kept() {
    let clock = TestClock::at_system_time();
    let (relay, _dir) = spawn_relay_with(|c| c.clock = clock.handle()).await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 32, "talkco", 1, 1).await;
    let me = &org.customers[0];
    let mut c = RawClient::login(&url, me).await;
    let chat = org.start_chat(&mut c, 0, 320).await;
    short_retention(&url, &org).await;
    // 16 messages, a second apart, with a sweep after each: the record's activity time is
    // 16 s old at the end, the last message's 1 s (not more than the retention period).
    for i in 0..16u64 {
        c.stored(Request::Send(chat.seal(me, i, "still here")))
            .await;
        clock.advance(1);
        assert_eq!(
            relay.sweep_retention().await.unwrap(),
            0,
            "swept after message {i}"
        );
    }
    match c
        .request(Request::History {
            conversation: chat.id,
            after: 0,
            limit: 100,
        })
        .await
    {
        Response::Items { items, .. } => assert_eq!(items.len(), 17, "epoch 0 and 16 messages"),
        other => panic!("the active conversation was swept: {other:?}"),
    }
    // Quiet for longer than the retention period: now it goes.
    clock.advance(1);
    assert_eq!(relay.sweep_retention().await.unwrap(), 1);
    stop_relay(relay).await;
}
