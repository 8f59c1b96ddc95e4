//! A relay older than `watch_agent_keys` closes the connection on it as a malformed frame
//! (4102, PROTOCOL.md §13.5 and §13.6). `sealdesk chat` asks for it when it starts, so against
//! such a relay the chat lost its first connection. The client now connects again at once,
//! without the request, and never asks that relay again: one lost connection, told apart by
//! its close code, never a failed start and never a loop.
//!
//! The old relay is a hand-made stand-in: it authenticates anyone, answers every request with
//! `ok` (a list for `list_conversations`), and closes with 4102 on `watch_agent_keys`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use futures_util::{SinkExt as _, StreamExt as _};
use sealdesk_client::{Account, Client, client::key_push::CLOSE_BAD_FRAME};
use sealdesk_protocol::{
    card::Role,
    keys::IdentityKeys,
    wire::{self, Challenge, Frame, Request, Response, Welcome},
};
use sealdesk_tests::{
    STEP, rng,
    world::{FAST_KDF, PASS},
};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::{CloseFrame, frame::coding::CloseCode},
};

/// What the stand-in saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    watches: AtomicUsize,
}

/// Starts the old relay on 127.0.0.1:0; returns its URL.
async fn old_relay(seen: Arc<Seen>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/v1/ws", listener.local_addr().unwrap());
    let relay_keys = IdentityKeys::generate(&mut rng(41));
    let relay_key = relay_keys.signing_public();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                seen.connections.fetch_add(1, Ordering::SeqCst);
                let send = |f: &Frame| Message::binary(wire::encode(f).unwrap());
                ws.send(send(&Frame::Challenge(Challenge {
                    relay_key,
                    nonce: [5; 32],
                })))
                .await
                .unwrap();
                let _auth = ws.next().await;
                ws.send(send(&Frame::Welcome(Welcome {
                    registered: true,
                    log_key: relay_key,
                })))
                .await
                .unwrap();
                while let Some(Ok(m)) = ws.next().await {
                    let Message::Binary(b) = m else { continue };
                    let Ok(Frame::Request { id, body }) = wire::decode(&b) else {
                        continue;
                    };
                    let answer = match body {
                        Request::WatchAgentKeys => {
                            // As a relay that does not know the request: not a frame it reads.
                            seen.watches.fetch_add(1, Ordering::SeqCst);
                            let _ = ws
                                .close(Some(CloseFrame {
                                    code: CloseCode::from(CLOSE_BAD_FRAME),
                                    reason: "malformed frame".into(),
                                }))
                                .await;
                            while ws.next().await.is_some() {}
                            return;
                        }
                        Request::ListConversations => Response::Conversations(Vec::new()),
                        _ => Response::Ok,
                    };
                    if ws
                        .send(send(&Frame::Response { id, body: answer }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_closes_on_watch_agent_keys_is_reconnected_to_once_and_not_asked_again() {
    let seen = Arc::new(Seen::default());
    let url = old_relay(Arc::clone(&seen)).await;
    let home = tempfile::tempdir().unwrap();
    let account = Account::create(home.path(), PASS, FAST_KDF, "carol", Role::Customer).unwrap();
    let mut carol = tokio::time::timeout(STEP, Client::connect(account, &url))
        .await
        .unwrap()
        .unwrap();

    // What `sealdesk chat` does first.
    tokio::time::timeout(STEP, carol.watch_agent_keys())
        .await
        .unwrap()
        .expect("the lost connection is replaced, not an error");
    assert!(carol.is_connected(), "connected again");
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    assert_eq!(seen.watches.load(Ordering::SeqCst), 1);
    // The chat's next step works on the new connection.
    tokio::time::timeout(STEP, carol.sync_all())
        .await
        .unwrap()
        .unwrap();

    // Not asked again: neither by another call nor by a reconnection.
    carol.watch_agent_keys().await.unwrap();
    carol.reconnect().await.unwrap();
    carol.sync_all().await.unwrap();
    assert!(carol.is_connected());
    assert_eq!(seen.watches.load(Ordering::SeqCst), 1);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 3);
    carol.close().await;
}
