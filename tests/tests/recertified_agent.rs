//! An agent re-certified for a new key keeps its conversations (issue 22 §3): the relay assigns
//! the old key's conversations to the new key with the rebind, closes the old key's open
//! sessions (4105), and tells the new key of each conversation it now holds; the customer sees
//! a key change, and once she trusts the new key her next message opens an epoch for it. Her
//! earlier history stays readable to her; the new key reads from the new epoch on (the old
//! epochs were sealed to the lost key).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::{Account, Client, ClientError};
use sealdesk_protocol::{
    card::Role,
    wire::{ErrorCode, Frame, Push, Request, Response},
};
use sealdesk_tests::{
    Identity, Org, STEP,
    child::{RelayProcess, relay_binary},
    cluster::CommitGate,
    copy_keys,
    raw::RawClient,
    recertify::{NewAlice, carol_with_alice, new_alice, unregistered_session},
    wait::{eventually, within_step},
    world::{PASS, Via, World, texts},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recertified_agent_keeps_its_conversations_and_the_old_key_is_cut_off() {
    let w = World::new().await;
    let (mut org, carol, conv) = carol_with_alice(&w, Via::Relay).await;
    let mut old_alice = org.agents.remove(0);
    old_alice.sync_all().await.unwrap();
    old_alice.send_text(&conv, "hi carol").await.unwrap();
    let old_keys = copy_keys(old_alice.account().keys());
    let old_card = old_alice.account().card().card().clone();
    old_alice.close().await;
    // The lost device is still online when the master re-certifies.
    let mut lost = RawClient::connect(&w.url).await;
    lost.auth(&old_keys, old_card).await;

    // The new machine: same name, new keys, re-certified by the master.
    let NewAlice {
        home: new_home,
        card: new_card,
        fingerprint: new_fp,
        keys: new_keys,
    } = new_alice(&w);
    // The new key listens before the rebind, to see the conversation assigned to it.
    let mut listening = RawClient::connect(&w.url).await;
    listening.auth(&new_keys, new_card.clone()).await;
    org.master
        .recertify_agent("acme", new_card.clone(), Some(&new_fp))
        .await
        .unwrap();

    // The old key's session is closed with its own code.
    assert_eq!(lost.expect_close().await, Some(4105));
    // The new key is told of the conversation it now holds.
    listening
        .expect_push("assigned", |p| match p {
            Push::Assigned { conversation, .. } if *conversation == conv => Some(()),
            _ => None,
        })
        .await;
    listening.close().await;
    // And lists it, assigned to it, in a session of its own (the listening one began before
    // the key was registered).
    let mut listing = RawClient::connect(&w.url).await;
    listing.auth(&new_keys, new_card).await;
    match listing.request(Request::ListConversations).await {
        Response::Conversations(all) => {
            assert!(
                all.iter()
                    .any(|i| i.conversation == conv && i.agent == "alice"),
                "{all:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    listing.close().await;

    // The customer's next command (a new session) sees a key change: sending is blocked
    // until she trusts the new key.
    let mut carol = Client::connect(carol.close().await, &w.url).await.unwrap();
    carol.sync_all().await.unwrap();
    assert!(matches!(
        carol.send_text(&conv, "still there?").await,
        Err(ClientError::KeyChanged { .. })
    ));
    carol.trust("alice").await.unwrap();
    carol
        .send_text(&conv, "is this the new alice?")
        .await
        .unwrap();

    // The new key reads the conversation from the new epoch on and answers in it.
    let mut new_alice = Client::connect(Account::open(&new_home, PASS).unwrap(), &w.url)
        .await
        .unwrap();
    new_alice.sync_all().await.unwrap();
    assert_eq!(
        texts(&new_alice, &conv),
        vec!["carol: is this the new alice?"]
    );
    new_alice.send_text(&conv, "yes, new laptop").await.unwrap();
    eventually("carol reads the new key's answer", async || {
        carol.sync_all().await.ok()?;
        texts(&carol, &conv)
            .contains(&"alice: yes, new laptop".to_owned())
            .then_some(())
    })
    .await;
    // Carol's earlier history is still hers to read, in order.
    assert_eq!(
        texts(&carol, &conv),
        vec![
            "carol: hello",
            "alice: hi carol",
            "carol: is this the new alice?",
            "alice: yes, new laptop",
        ]
    );
    new_alice.close().await;
    carol.close().await;
}

/// The rebind closes the old key's sessions that act for the name, and no other session of
/// that key: one registered at sign-in and one that signed in unregistered and registered in
/// the session are closed with 4105; one that signed in unregistered (before either, with a
/// card the relay does not hold for the key) and one the key opens after the rebind are
/// unregistered, and stay open, refused everything but what any unregistered session may ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rebind_closes_only_the_old_keys_registered_sessions() {
    let w = World::new().await;
    let org = Org::new(31, "acme", 1, 0);
    let mut ghost = unregistered_session(&w.url, &org.agents[0]).await;
    // Registers its card in its own session (the relay notes it as acting for the name then).
    let mut registered_here = RawClient::login(&w.url, &org.agents[0]).await;
    let org = org.publish(&w.url).await;
    let old = &org.agents[0];
    let mut signed_in = RawClient::connect(&w.url).await;
    assert!(signed_in.auth(&old.keys, old.card()).await.registered);

    let new = Identity::new(9_031, old.name(), Role::Agent);
    org.recertify(&w.url, &new).await;
    // Bounded: an open session gets the relay's keepalive pings, and would wait for ever.
    let close = within_step("the close of the session that registered in it", async {
        registered_here.expect_close().await
    })
    .await;
    assert_eq!(close, Some(4105));
    assert_eq!(signed_in.expect_close().await, Some(4105));
    // The close was made before the master was answered: the unregistered session was not
    // closed, and is served as any unregistered session is.
    assert_eq!(
        ghost.refused(Request::ListConversations).await,
        ErrorCode::NotRegistered
    );
    let mut after = RawClient::connect(&w.url).await;
    assert!(!after.auth(&old.keys, old.card()).await.registered);
    assert_eq!(after.refused(Request::Register).await, ErrorCode::NameTaken);
    ghost.close().await;
    after.close().await;
}

/// A rebind in the gap between an agent's sign-in (its card read, the welcome sent) and its
/// session's join of the hub closes that session too (issue 24/20): the rebind's own close
/// finds nothing in the hub then, so the session, having joined, reads its card again and
/// closes with 4105 before serving anything. The real relay binary, whose test-only sign-in
/// gate holds the old key's session in that gap while the master re-certifies the name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebind_between_sign_in_and_the_hub_join_closes_the_old_session() {
    let dir = tempfile::tempdir().unwrap();
    let gate = CommitGate::sign_in();
    let relay = gated_relay(dir.path(), &gate);
    let url = relay.ws_url();
    let org = Org::setup(&url, 32, "acme", 1, 0).await;
    let old = &org.agents[0];

    gate.close();
    let mut held = RawClient::connect(&url).await;
    // Welcomed as registered: its card was read; the closed gate holds it before the join.
    assert!(held.auth(&old.keys, old.card()).await.registered);
    // Sent now, read (if ever) only once the session serves.
    held.send_frame(&Frame::Request {
        id: 1,
        body: Request::ListConversations,
    })
    .await;
    // Held there: the rebind below must come before the join, or the test shows nothing.
    held_at_the_gate(&relay).await;
    // The master is not held (not an agent): the rebind's close finds no session to close.
    org.recertify(&url, &Identity::new(9_032, old.name(), Role::Agent))
        .await;
    gate.open();

    // Bounded: a session left serving gets the relay's keepalive pings, and would wait for ever.
    let (frames, close) = within_step("the close of the session held at the gate", async {
        held.frames_until_close().await
    })
    .await;
    assert_eq!(close, Some(4105), "frames before: {frames:?}");
    assert!(frames.is_empty(), "served before the close: {frames:?}");
    drop(relay);
}

/// The same gap for a session that registers as an agent in the session: its card is stored
/// (and made durable) before the hub notes the connection as acting for the name, so a rebind
/// in between found nothing to close. Held there by the sign-in gate; closed with 4105 instead
/// of being answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebind_between_register_and_the_hub_note_closes_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let gate = CommitGate::sign_in();
    let relay = gated_relay(dir.path(), &gate);
    let url = relay.ws_url();
    let org = Org::new(33, "acme", 1, 0);
    // The certificate for the agent's key is published before the agent registers.
    org.publish_policy_and_certificates(&url).await;
    let old = &org.agents[0];

    gate.close();
    let mut registering = RawClient::connect(&url).await;
    assert!(!registering.auth(&old.keys, old.card()).await.registered);
    registering
        .send_frame(&Frame::Request {
            id: 1,
            body: Request::Register,
        })
        .await;
    held_at_the_gate(&relay).await;
    org.recertify(&url, &Identity::new(9_033, old.name(), Role::Agent))
        .await;
    gate.open();

    let (frames, close) = within_step("the close of the session held at the gate", async {
        registering.frames_until_close().await
    })
    .await;
    assert_eq!(close, Some(4105), "frames before: {frames:?}");
    assert!(frames.is_empty(), "answered before the close: {frames:?}");
    drop(relay);
}

/// The real relay binary over `data`, behind `gate` (the sign-in gate, or the card re-reads'
/// switch; a child process: an
/// in-process relay would read the gate variable for every test of this binary).
fn gated_relay(data: &std::path::Path, gate: &CommitGate) -> RelayProcess {
    let (gate_var, gate_path) = gate.env();
    tokio::task::block_in_place(|| {
        let env = [(gate_var, gate_path.as_str())];
        let mut relay = RelayProcess::spawn_with_env(relay_binary(), data, &[], &env)
            .expect("the relay starts");
        relay.wait_ready(STEP).unwrap();
        relay
    })
}

/// Waits until `relay` logs that a session is held at its sign-in gate.
async fn held_at_the_gate(relay: &RelayProcess) {
    eventually("a session held at the sign-in gate", async || {
        relay
            .log_tail()
            .contains("a sign-in held at its gate")
            .then_some(())
    })
    .await;
}

/// The re-read of an agent's card once its session joined the hub, when the store cannot
/// answer, closes the session `Internal` (1011) before serving anything: the relay cannot tell
/// whether the card was replaced in the gap, so it does not serve with it. The real relay
/// binary, whose test-only switch fails those re-reads (the agent registers before it is
/// on). Once the reads work again, the same key signs in and is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_re_read_that_fails_after_sign_in_closes_the_session_internal() {
    let dir = tempfile::tempdir().unwrap();
    let failing = CommitGate::card_rereads();
    let relay = gated_relay(dir.path(), &failing);
    let url = relay.ws_url();
    let org = Org::setup(&url, 34, "acme", 1, 0).await;
    let agent = &org.agents[0];

    failing.close();
    let mut session = RawClient::connect(&url).await;
    // Welcomed as registered: the card read at sign-in worked; only the re-read fails.
    assert!(session.auth(&agent.keys, agent.card()).await.registered);
    session
        .send_frame(&Frame::Request {
            id: 1,
            body: Request::ListConversations,
        })
        .await;
    // Bounded: a session left serving would answer, then wait for ever.
    let (frames, close) = within_step("the close of the session whose re-read failed", async {
        session.frames_until_close().await
    })
    .await;
    assert_eq!(close, Some(1011), "frames before: {frames:?}");
    assert!(frames.is_empty(), "served before the close: {frames:?}");

    failing.open();
    let mut again = RawClient::connect(&url).await;
    assert!(again.auth(&agent.keys, agent.card()).await.registered);
    match again.request(Request::ListConversations).await {
        Response::Conversations(_) => {}
        other => panic!("expected the conversations, got {other:?}"),
    }
    again.close().await;
    drop(relay);
}
