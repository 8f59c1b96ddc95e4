//! Ephemeral signals (typing): forwarded by the relay to the members online and opened by
//! them; never stored (not in the history, not after a restart); a forged, tampered, replayed
//! or moved signal is dropped by the receiver, and the relay refuses one from a non-member or
//! naming another sender.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::client::{Client, Event, EventKind};
use sealdesk_protocol::card::Role;
use sealdesk_protocol::{
    ids::ConversationId,
    keys::IdentityKeys,
    signal::{SignalEnvelope, SignalKind},
    wire::{ErrorCode, Push, Request},
};
use sealdesk_tests::{
    STEP,
    relay::restart_world_relay,
    world::{World, open_chat, texts},
};

/// The next signal pushed to `c` (other pushes are handled and skipped).
async fn next_signal(c: &mut Client) -> SignalEnvelope {
    loop {
        let push = tokio::time::timeout(STEP, c.session().next_push())
            .await
            .expect("a push within the step")
            .expect("the connection is open");
        match push {
            Push::Signal(env) => return env,
            other => {
                c.handle_push(other).await.unwrap().ok();
            }
        }
    }
}

async fn shown(c: &mut Client, env: &SignalEnvelope) -> Vec<Event> {
    c.handle_push(Push::Signal(env.clone()))
        .await
        .unwrap()
        .expect("a signal is handled by the conversation machinery")
}

fn typing(events: &[Event]) -> Vec<(String, bool)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Typing { member, typing } => Some((member.clone(), *typing)),
            _ => None,
        })
        .collect()
}

/// Items the relay holds for `conv`, read by `c` from the start.
async fn relay_items(c: &Client, conv: &ConversationId) -> usize {
    match c
        .session()
        .request(Request::History {
            conversation: *conv,
            after: 0,
            limit: 1000,
        })
        .await
        .unwrap()
    {
        sealdesk_protocol::wire::Response::Items { items, .. } => items.len(),
        other => panic!("unexpected answer {other:?}"),
    }
}

#[tokio::test]
async fn a_typing_signal_is_forwarded_opened_and_never_stored() {
    let mut w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();
    let alice = &mut org.agents[0];
    alice.sync_all().await.unwrap();
    let before = relay_items(alice, &conv).await;

    carol.send_signal(&conv, SignalKind::Typing).await.unwrap();
    let env = next_signal(alice).await;
    let events = shown(alice, &env).await;
    assert_eq!(typing(&events), vec![("carol".to_owned(), true)]);
    assert_eq!(events[0].conversation, conv);
    // The relay saw a ciphertext: the kind is not in the clear.
    assert_eq!(env.ciphertext.len(), 17);

    // The agent answers that it stopped; the customer sees it.
    alice.send_signal(&conv, SignalKind::Stopped).await.unwrap();
    let back = next_signal(&mut carol).await;
    assert_eq!(
        typing(&shown(&mut carol, &back).await),
        vec![("alice".to_owned(), false)]
    );

    // Nothing was stored: not in the relay's history, not in the timeline, not after a restart.
    assert_eq!(relay_items(alice, &conv).await, before);
    assert!(alice.sync(&conv).await.unwrap().is_empty());
    assert_eq!(texts(alice, &conv), vec!["carol: hello".to_owned()]);
    drop(org);
    carol.close().await;
    restart_world_relay(&mut w).await;
    let alice = w.reopen("alice").await;
    assert_eq!(relay_items(&alice, &conv).await, before);
    let mut carol = w.reopen("carol").await;
    carol.sync_all().await.unwrap();
    assert_eq!(texts(&carol, &conv), vec!["carol: hello".to_owned()]);
}

#[tokio::test]
async fn a_forged_tampered_replayed_or_moved_signal_is_dropped() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    let other = open_chat(&mut carol).await;
    carol.send_text(&conv, "one").await.unwrap();
    carol.send_text(&other, "two").await.unwrap();
    let alice = &mut org.agents[0];
    alice.sync_all().await.unwrap();

    carol.send_signal(&conv, SignalKind::Typing).await.unwrap();
    let env = next_signal(alice).await;

    // Tampered ciphertext, header or signature.
    let mut t = env.clone();
    t.ciphertext[0] ^= 1;
    assert!(shown(alice, &t).await.is_empty(), "tampered ciphertext");
    let mut t = env.clone();
    t.header.sent_at += 1;
    assert!(shown(alice, &t).await.is_empty(), "tampered header");
    // Moved to the customer's other conversation (the same members): by the relay, and
    // re-signed by the customer herself (the keys are per conversation).
    let mut t = env.clone();
    t.header.conversation = other;
    assert!(shown(alice, &t).await.is_empty(), "moved by the relay");
    t.signature = carol.account().keys().sign(&t.signed_bytes());
    assert!(shown(alice, &t).await.is_empty(), "moved and re-signed");
    // Forged by someone who is not a member, under their own key.
    let stranger = IdentityKeys::generate(&mut sealdesk_tests::rng(7));
    let mut t = env.clone();
    t.header.sender = stranger.signing_public();
    t.signature = stranger.sign(&t.signed_bytes());
    assert!(shown(alice, &t).await.is_empty(), "forged by a stranger");
    // Held back: an old signal re-signed by its sender with an old time.
    let mut t = env.clone();
    t.header.sent_at -= 3600;
    t.signature = carol.account().keys().sign(&t.signed_bytes());
    assert!(shown(alice, &t).await.is_empty(), "an hour old");

    // The genuine one is shown once; its replay is dropped.
    assert_eq!(
        typing(&shown(alice, &env).await),
        vec![("carol".to_owned(), true)]
    );
    assert!(shown(alice, &env).await.is_empty(), "replayed");
}

#[tokio::test]
async fn the_relay_refuses_a_signal_from_a_non_member_or_for_another_sender() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "one").await.unwrap();
    let alice = &mut org.agents[0];
    alice.sync_all().await.unwrap();
    carol.send_signal(&conv, SignalKind::Typing).await.unwrap();
    let env = next_signal(alice).await;

    let code = |r: sealdesk_client::Result<sealdesk_protocol::wire::Response>| match r {
        Err(sealdesk_client::ClientError::Relay { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    };
    // Another customer, not in the conversation: as if the conversation did not exist.
    let dave = w.user("dave", Role::Customer).await;
    let r = dave.session().request(Request::Signal(env.clone())).await;
    assert_eq!(code(r), ErrorCode::NotFound);
    // A member relaying another member's signal as its own.
    let r = alice.session().request(Request::Signal(env.clone())).await;
    assert_eq!(code(r), ErrorCode::Forbidden);
    // A signal whose signature does not verify.
    let mut t = env.clone();
    t.ciphertext[0] ^= 1;
    let r = carol.session().request(Request::Signal(t)).await;
    assert_eq!(code(r), ErrorCode::BadRequest);
    // A padded ciphertext.
    let mut t = env.clone();
    t.ciphertext.push(0);
    let r = carol.session().request(Request::Signal(t)).await;
    assert_eq!(code(r), ErrorCode::BadRequest);
    // Nothing of those reached the agent.
    sealdesk_tests::stays_for(
        sealdesk_tests::QUIET,
        "no signal reaches the agent",
        async || !matches!(alice.session().try_push(), Some(Push::Signal(_))),
    )
    .await;
}

#[tokio::test]
async fn an_agent_transferred_out_cannot_signal_and_the_new_one_can() {
    let w = World::new().await;
    let mut org = w.org(&["alice", "bob"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "one").await.unwrap();
    let mut bob = org.agents.remove(1);
    let mut alice = org.agents.remove(0);
    alice.sync_all().await.unwrap();
    alice.transfer(&conv, "bob").await.unwrap();
    match alice.send_signal(&conv, SignalKind::Typing).await {
        Err(sealdesk_client::ClientError::CannotSend { .. }) => {}
        other => panic!("expected CannotSend, got {other:?}"),
    }
    bob.sync_all().await.unwrap();
    carol.sync_all().await.unwrap();
    bob.send_signal(&conv, SignalKind::Typing).await.unwrap();
    let env = next_signal(&mut carol).await;
    assert_eq!(
        typing(&shown(&mut carol, &env).await),
        vec![("bob".to_owned(), true)]
    );
}
