//! A push of a kind this client does not know — a newer relay's — is skipped, not the end of
//! the session (PROTOCOL.md §13.5): a hand-made relay sends one between two known pushes, and
//! the client's session reads on, answers requests, and stays open.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures_util::{SinkExt as _, StreamExt as _};
use sealdesk_client::{connection::Connection, session::Session};
use sealdesk_protocol::{
    card::{IdentityCard, Role},
    keys::IdentityKeys,
    wire::{self, Challenge, Frame, Push, Request, Response, WIRE_VERSION, Welcome},
};
use sealdesk_tests::{STEP, rng};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// A frame no released relay sends, written out by hand: the version byte, then the CBOR of
/// `{ "push": { "queue_moved": { "position": 3 } } }`.
fn unknown_push() -> Vec<u8> {
    let mut out = vec![WIRE_VERSION, 0xa1, 0x64];
    out.extend_from_slice(b"push");
    out.extend_from_slice(&[0xa1, 0x6b]);
    out.extend_from_slice(b"queue_moved");
    out.extend_from_slice(&[0xa1, 0x68]);
    out.extend_from_slice(b"position");
    out.push(0x03);
    out
}

#[tokio::test]
async fn an_unknown_push_is_skipped_and_the_session_goes_on() {
    assert!(wire::decode(&unknown_push()).is_err(), "not a known frame");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let relay_keys = IdentityKeys::generate(&mut rng(7));
    let relay = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let send = |f: &Frame| Message::binary(wire::encode(f).unwrap());
        ws.send(send(&Frame::Challenge(Challenge {
            relay_key: relay_keys.signing_public(),
            nonce: [9; 32],
        })))
        .await
        .unwrap();
        let _auth = ws.next().await.unwrap().unwrap();
        ws.send(send(&Frame::Welcome(Welcome {
            registered: true,
            log_key: relay_keys.signing_public(),
        })))
        .await
        .unwrap();
        ws.send(send(&Frame::Push(Push::AuditGrew { size: 1 })))
            .await
            .unwrap();
        ws.send(Message::binary(unknown_push())).await.unwrap();
        ws.send(send(&Frame::Push(Push::AuditGrew { size: 2 })))
            .await
            .unwrap();
        // Then answer one request, as a relay does.
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Binary(b) = m
                && let Ok(Frame::Request { id, .. }) = wire::decode(&b)
            {
                ws.send(send(&Frame::Response {
                    id,
                    body: Response::Ok,
                }))
                .await
                .unwrap();
            }
        }
    });

    let keys = IdentityKeys::generate(&mut rng(8));
    let card = IdentityCard::issue(&keys, "carol", Role::Customer, 1).unwrap();
    let conn = Connection::connect(&url).await.unwrap();
    let session = Session::establish(conn, &keys, &card).await.unwrap();
    let mut sizes = Vec::new();
    for _ in 0..2 {
        match tokio::time::timeout(STEP, session.next_push()).await {
            Ok(Some(Push::AuditGrew { size })) => sizes.push(size),
            other => panic!("expected the known pushes, got {other:?}"),
        }
    }
    assert_eq!(
        sizes,
        vec![1, 2],
        "the unknown one between them was skipped"
    );
    assert!(matches!(
        session.request(Request::WatchAudit).await.unwrap(),
        Response::Ok
    ));
    assert_eq!(session.closed(), None, "the session stays open");
    assert_eq!(session.unknown_pushes(), 1, "the skipped push is counted");
    session.close().await;
    relay.abort();
}
