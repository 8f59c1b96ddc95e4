//! `watch_agent_keys` and `agent_key_changed` (PROTOCOL.md §13.5, issue 22): a customer's
//! session that asked is told at once that the org's master re-certified its agent for a new
//! key, re-verifies it through the org's certificate and sees the key change; a session of the
//! same customer that did not ask (an older client, whose decoder fails an unknown push) gets
//! nothing and stays connected. A push the org's certificate does not confirm — forged by a
//! hostile relay — changes no pin and is reported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::{
    Client, ClientError,
    client::{Event, EventKind},
};
use sealdesk_protocol::{
    card::{IdentityCard, Role},
    ids::ConversationId,
    keys::IdentityKeys,
    wire::{Frame, Push, Request, Response},
};
use sealdesk_tests::{
    RawClient, STEP, copy_keys,
    proxy::Dir,
    recertify::{NewAlice, carol_with_alice, new_alice},
    rng,
    world::{Org, Via, World},
};

/// The next push of `client`'s session, within the test's wait.
async fn next_push(client: &Client) -> Push {
    tokio::time::timeout(STEP, client.session().next_push())
        .await
        .expect("a push within the test's wait")
        .expect("the session is open")
}

/// [`carol_with_alice`], carol's session asking for agent-key pushes.
async fn carol_watching_alice(w: &World, via: Via) -> (Org, Client, ConversationId) {
    let (org, mut carol, conv) = carol_with_alice(w, via).await;
    carol.watch_agent_keys().await.unwrap();
    (org, carol, conv)
}

fn key_changes(events: &[Event]) -> Vec<(ConversationId, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::KeyChanged { name } => Some((e.conversation, name.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_that_asked_is_told_at_once_and_one_that_did_not_gets_nothing() {
    let w = World::new().await;
    let (mut org, mut carol, conv) = carol_watching_alice(&w, Via::Relay).await;
    // The same customer on another connection that never asks (as an older client).
    let mut older = RawClient::connect(&w.url).await;
    older
        .auth(
            &copy_keys(carol.account().keys()),
            carol.account().card().card().clone(),
        )
        .await;

    let NewAlice {
        card, fingerprint, ..
    } = new_alice(&w);
    org.master
        .recertify_agent("acme", card.clone(), Some(&fingerprint))
        .await
        .unwrap();

    match next_push(&carol).await {
        Push::AgentKeyChanged {
            org: o,
            agent,
            card: pushed,
            conversations,
        } => {
            assert_eq!((o.as_str(), agent.as_str()), ("acme", "alice"));
            assert_eq!(pushed, card);
            assert_eq!(conversations, vec![conv]);
            // Handled like any push: re-verified, shown as the key change.
            let events = carol
                .handle_push(Push::AgentKeyChanged {
                    org: o,
                    agent,
                    card: pushed,
                    conversations,
                })
                .await
                .unwrap()
                .unwrap();
            assert_eq!(key_changes(&events), vec![(conv, "alice".to_owned())]);
        }
        other => panic!("expected agent_key_changed, got {other:?}"),
    }
    // The change is pending: sending is blocked until carol trusts the new key.
    let pin = carol.account().pins().unwrap().peers["alice"].clone();
    assert_eq!(pin.pending.as_ref(), Some(&card));
    assert!(matches!(
        carol.send_text(&conv, "still there?").await,
        Err(ClientError::KeyChanged { .. })
    ));

    // The session that did not ask: the push went out before the master's `ok`, so anything
    // for it is queued before this answer; it answers (still connected) and nothing came.
    match older.request(Request::ListConversations).await {
        Response::Conversations(list) => assert!(list.iter().any(|i| i.conversation == conv)),
        other => panic!("{other:?}"),
    }
    older
        .expect_no_push("agent_key_changed without watch_agent_keys", |p| {
            matches!(p, Push::AgentKeyChanged { .. })
        })
        .await;
    older.close().await;
    carol.close().await;
    org.master.close().await;
}

/// The push is asked for per session: after a reconnection the client asks again, and the new
/// session is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnected_client_asks_again() {
    let w = World::new().await;
    let (mut org, mut carol, conv) = carol_watching_alice(&w, Via::Relay).await;
    carol.reconnect().await.unwrap();
    let alice = new_alice(&w);
    org.master
        .recertify_agent("acme", alice.card, Some(&alice.fingerprint))
        .await
        .unwrap();
    let push = next_push(&carol).await;
    assert!(
        matches!(&push, Push::AgentKeyChanged { conversations, .. } if *conversations == vec![conv]),
        "{push:?}"
    );
    carol.close().await;
    org.master.close().await;
}

/// A hostile relay pushes a new "alice" key that the org never certified — first with the
/// real relay's certificate (the old key) behind it, then with that certificate edited to name
/// the forged card (its master signature no longer verifies). Neither changes the pin; each is
/// reported; carol goes on sending to the real alice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_key_push_changes_no_pin_and_is_reported() {
    let w = World::with_proxy().await;
    let (org, mut carol, conv) = carol_watching_alice(&w, Via::Proxy).await;
    let pinned = carol.account().pins().unwrap().peers["alice"].clone();

    let forged_keys = IdentityKeys::generate(&mut rng(4242));
    let forged = IdentityCard::issue(&forged_keys, "alice", Role::Agent, 1)
        .unwrap()
        .card()
        .clone();
    let push = Frame::Push(Push::AgentKeyChanged {
        org: "acme".into(),
        agent: "alice".into(),
        card: forged.clone(),
        conversations: vec![conv],
    });

    for tamper_certificate in [false, true] {
        if tamper_certificate {
            let forged = forged.clone();
            w.proxy().set_hook(move |ctx, frame| match frame {
                Frame::Response {
                    id,
                    body: Response::Certificate(mut cert),
                } if ctx.dir == Dir::ToClient && ctx.account == Some("carol") => {
                    cert.agent = forged.clone();
                    vec![Frame::Response {
                        id,
                        body: Response::Certificate(cert),
                    }]
                }
                other => vec![other],
            });
        }
        assert_eq!(w.proxy().inject_to_client("carol", &push), 1);
        let got = next_push(&carol).await;
        let events = carol.handle_push(got).await.unwrap().unwrap();
        assert!(key_changes(&events).is_empty(), "{events:?}");
        assert!(
            events.iter().any(|e| e.conversation == conv
                && matches!(&e.kind, EventKind::AgentKeyUnconfirmed { agent, .. } if agent == "alice")),
            "reported: {events:?}"
        );
        let now = carol.account().pins().unwrap().peers["alice"].clone();
        assert_eq!(now.card, pinned.card);
        assert_eq!(now.pending, None, "no pending change from a forged push");
    }
    w.proxy().passthrough();
    carol.send_text(&conv, "still you?").await.unwrap();
    carol.close().await;
    org.master.close().await;
}
