//! `Client::reconnect` and what it asks the new session again (issue 22): once a new session is
//! authenticated against the pinned keys and in place, the reconnection has succeeded; asking
//! it again for the agent-key pushes the old session had asked for (`watch_agent_keys`) may
//! fail — an odd answer, or the connection cut at that very moment — and that is handed back
//! in `Reconnected::not_asked_again`, not as a failed reconnection. The client asks again at the
//! next sync (or the next reconnection), and the push then reaches it.
//!
//! A hostile proxy makes each failure certain: it holds the re-ask of the new connection and
//! answers it itself, or closes the connection on it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use sealdesk_client::{Client, ClientError};
use sealdesk_protocol::wire::{Frame, Push, Request, Response, Welcome};
use sealdesk_tests::{
    STEP,
    proxy::Dir,
    recertify::{NewAlice, carol_with_alice, new_alice},
    world::{Org, Via, World},
};

fn is_watch(body: &Request) -> bool {
    matches!(body, Request::WatchAgentKeys)
}

/// The org's master re-certifies alice for a new key; carol's session must be told at once.
async fn recertified_and_told(org: &mut Org, carol: &Client, w: &World) {
    let NewAlice {
        card, fingerprint, ..
    } = new_alice(w);
    org.master
        .recertify_agent("acme", card, Some(&fingerprint))
        .await
        .unwrap();
    loop {
        let push = tokio::time::timeout(STEP, carol.session().next_push())
            .await
            .expect("the agent_key_changed push within the test's wait")
            .expect("the session is open");
        if matches!(push, Push::AgentKeyChanged { .. }) {
            return;
        }
    }
}

/// The relay's answer to the re-ask is replaced by one the client does not expect: the session
/// is up all along. The reconnection succeeds, says what was not asked, and the next sync asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_odd_answer_to_the_reask_is_no_failed_reconnection() {
    let w = World::with_proxy().await;
    let (mut org, mut carol, _conv) = carol_with_alice(&w, Via::Proxy).await;
    carol.watch_agent_keys().await.unwrap();
    assert_eq!(w.proxy().requests_sent("carol", is_watch), 1);

    // The next re-ask is held from the relay and answered by the proxy with a list.
    let injector = w.proxy().injector();
    let armed = Arc::new(AtomicBool::new(true));
    let hook_armed = Arc::clone(&armed);
    w.proxy()
        .set_hook(move |ctx, frame| match (&frame, ctx.dir) {
            (Frame::Request { id, body }, Dir::ToRelay)
                if is_watch(body) && hook_armed.swap(false, Ordering::SeqCst) =>
            {
                injector.inject(
                    ctx.conn,
                    Dir::ToClient,
                    Frame::Response {
                        id: *id,
                        body: Response::Conversations(Vec::new()),
                    },
                );
                Vec::new()
            }
            _ => vec![frame],
        });

    let reconnected = carol.reconnect().await.expect("the session is up");
    assert!(!armed.load(Ordering::SeqCst), "the re-ask was held");
    assert!(
        matches!(
            reconnected.not_asked_again,
            Some(ClientError::UnexpectedResponse(_))
        ),
        "{:?}",
        reconnected.not_asked_again
    );
    assert!(carol.is_connected());
    // Not asked yet as far as the relay knows; the next sync asks.
    assert_eq!(w.proxy().requests_sent("carol", is_watch), 1);
    carol.sync_all().await.unwrap();
    assert_eq!(w.proxy().requests_sent("carol", is_watch), 2);
    recertified_and_told(&mut org, &carol, &w).await;
    carol.close().await;
    org.master.close().await;
}

/// The connection is cut the moment the re-ask is sent (the proxy hands the relay a frame it
/// closes the connection on). The reconnection has succeeded all the same; the lost connection
/// shows as such, and the next reconnection asks again and is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_at_the_reask_is_reported_and_asked_again() {
    let w = World::with_proxy().await;
    let (mut org, mut carol, _conv) = carol_with_alice(&w, Via::Proxy).await;
    carol.watch_agent_keys().await.unwrap();
    let log_key = carol.session().welcome().log_key;

    let armed = Arc::new(AtomicBool::new(true));
    let hook_armed = Arc::clone(&armed);
    w.proxy()
        .set_hook(move |ctx, frame| match (&frame, ctx.dir) {
            // A frame other than a request after the welcome: the relay closes the connection.
            (Frame::Request { body, .. }, Dir::ToRelay)
                if is_watch(body) && hook_armed.swap(false, Ordering::SeqCst) =>
            {
                vec![Frame::Welcome(Welcome {
                    registered: true,
                    log_key,
                })]
            }
            _ => vec![frame],
        });

    let reconnected = carol.reconnect().await.expect("the session was in place");
    assert!(!armed.load(Ordering::SeqCst), "the re-ask was cut");
    assert!(
        matches!(
            reconnected.not_asked_again,
            Some(ClientError::Closed(_) | ClientError::Transport(_))
        ),
        "{:?}",
        reconnected.not_asked_again
    );
    // The lost connection shows as the end of the pushes (waited for, not slept on).
    while tokio::time::timeout(STEP, carol.session().next_push())
        .await
        .expect("the cut connection ends within the test's wait")
        .is_some()
    {}
    assert!(!carol.is_connected());
    // A sync says the connection is lost, as any request would.
    assert!(matches!(
        carol.sync_all().await,
        Err(ClientError::Closed(_) | ClientError::Transport(_))
    ));

    let reconnected = carol.reconnect().await.unwrap();
    assert!(reconnected.not_asked_again.is_none());
    assert_eq!(w.proxy().requests_sent("carol", is_watch), 2);
    recertified_and_told(&mut org, &carol, &w).await;
    carol.close().await;
    org.master.close().await;
}
