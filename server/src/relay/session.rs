//! One authenticated session: challenge, answer, then requests in order.
//!
//! ```text
//!   ExpectAuth ──Auth ok──▶ Serving ──close / error──▶ (hub leave)
//!        └── anything else, bad signature, timeout ──▶ close 4101 / 4001
//! ```

use std::{net::SocketAddr, sync::Arc};

use rand_core::Rng as _;
use sealdesk_protocol::wire::{self, Challenge, ErrorCode, Frame, Response, Welcome};
use tracing::{Instrument as _, debug, info_span};

use super::service::{Caller, Service};
use crate::connection::{CloseReason, Connection};

/// Close code for a failed or missing authentication.
pub(crate) const AUTH_FAILED: CloseReason = CloseReason::Application {
    code: 4101,
    reason: "authentication failed",
};
/// Close code for a frame that does not decode, or a frame type a client may not send.
pub(crate) const BAD_FRAME: CloseReason = CloseReason::Application {
    code: 4102,
    reason: "malformed frame",
};

pub(crate) async fn run(svc: Arc<Service>, mut conn: Connection, peer: SocketAddr) {
    let span = info_span!("session", id = conn.id(), %peer);
    async move {
        let Some(caller) = authenticate(&svc, &mut conn).await else {
            return;
        };
        let me = caller.card.signing_key;
        svc.hub.join(me, conn.outbox());
        serve(&svc, &mut conn, caller).await;
        svc.hub.leave(&me, conn.id());
    }
    .instrument(span)
    .await;
}

async fn authenticate(svc: &Service, conn: &mut Connection) -> Option<Caller> {
    let mut nonce = [0u8; 32];
    rand::rng().fill_bytes(&mut nonce);
    let challenge = Challenge {
        relay_key: svc.keys.signing_public(),
        nonce,
    };
    let hello = wire::encode(&Frame::Challenge(challenge.clone())).ok()?;
    conn.send(hello).await.ok()?;
    let timeout = conn.limits().auth_timeout();
    let answer = match tokio::time::timeout(timeout, conn.recv()).await {
        Err(_) => {
            svc.metrics.auth_failures.inc();
            let _ = conn.outbox().finish(CloseReason::AuthTimeout).await;
            return None;
        }
        Ok(Ok(Some(bytes))) => bytes,
        Ok(_) => return None,
    };
    let card = match wire::decode(&answer) {
        Ok(Frame::Auth(a)) => a.verify(&challenge).ok().map(|c| c.into_card()),
        _ => None,
    };
    let Some(card) = card else {
        svc.metrics.auth_failures.inc();
        let msg = Frame::Response {
            id: 0,
            body: Response::Error {
                code: ErrorCode::Forbidden,
                message: "authentication failed: answer the challenge with a valid card and \
                          signature before anything else"
                    .into(),
            },
        };
        if let Ok(b) = wire::encode(&msg) {
            let _ = conn.send(b).await;
        }
        let _ = conn.outbox().finish(AUTH_FAILED).await;
        return None;
    };
    let registered = svc.is_registered(&card).unwrap_or(false);
    let welcome = Frame::Welcome(Welcome {
        registered,
        log_key: svc.keys.signing_public(),
    });
    conn.send(wire::encode(&welcome).ok()?).await.ok()?;
    debug!(role = %card.role, registered, "authenticated");
    Some(Caller { card, registered })
}

async fn serve(svc: &Service, conn: &mut Connection, mut caller: Caller) {
    loop {
        let bytes = match conn.recv().await {
            Ok(Some(b)) => b,
            Ok(None) | Err(_) => return,
        };
        let (id, body) = match wire::decode(&bytes) {
            Ok(Frame::Request { id, body }) => (id, body),
            Ok(_) | Err(_) => {
                debug!(size = bytes.len(), "unexpected or malformed frame; closing");
                let _ = conn.outbox().finish(BAD_FRAME).await;
                return;
            }
        };
        let body = svc.handle(&mut caller, body).await;
        let frame = Frame::Response { id, body };
        let encoded = match wire::encode(&frame) {
            Ok(b) => b,
            Err(_) => match wire::encode(&Frame::Response {
                id,
                body: Response::Error {
                    code: ErrorCode::TooLarge,
                    message: "the answer does not fit in one frame; ask for less".into(),
                },
            }) {
                Ok(b) => b,
                Err(_) => return,
            },
        };
        if conn.send(encoded).await.is_err() {
            return;
        }
    }
}
