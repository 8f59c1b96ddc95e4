//! The cap on the keys each abuse limit tracks (`max_tracked_sources`), on one relay, in its
//! memory (issue 25): a new source at the cap is refused and counted as the cap's refusal
//! (`sealdesk_limited_at_cap_total`), beside the keys tracked (`sealdesk_limit_keys`) and the
//! cap (`sealdesk_limit_keys_max`); and failed authentications from new sources at the cap are
//! charged to one overflow bucket, not left uncounted.
//!
//! Sources other than 127.0.0.1 are made with a trusted proxy: the relay trusts 127.0.0.1 as a
//! reverse proxy, and each connection names its client in `X-Forwarded-For`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures_util::{SinkExt as _, StreamExt as _};
use sealdesk_protocol::{
    card::Role,
    wire::{self, AuthResponse, ErrorCode, Frame, Request, Response},
};
use sealdesk_server::{RunningRelay, relay::CLOSE_RATE_LIMITED};
use sealdesk_tests::{
    identity::Identity,
    relay::{http_get, metric, spawn_relay_with},
    wait::STEP,
};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest as _, http::HeaderValue},
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn customer(seed: u64) -> Identity {
    Identity::new(seed, &format!("visitor{seed}"), Role::Customer)
}

/// `name` from the relay's `/metrics` (0 if absent).
async fn metric_of(relay: &RunningRelay, name: &str) -> f64 {
    metric(&http_get(relay, "/metrics").await, name).unwrap_or(0.0)
}

/// The cap holds for the connections' own per-source table too: with a bucket of one upgrade
/// refilled within nanoseconds, each source's is full again by its next connection, so that
/// table never stands at the cap and only the limit under test does.
fn instant_connection_refill(c: &mut sealdesk_server::config::RelayConfig) {
    c.limits.source_connection_burst = 1;
    c.limits.source_connections_per_minute = u32::MAX;
}

/// A WebSocket from `client`, through the trusted "proxy".
async fn connect(relay: &RunningRelay, client: &str) -> Ws {
    let mut request = relay.ws_url().into_client_request().expect("request");
    request.headers_mut().insert(
        "x-forwarded-for",
        HeaderValue::from_str(client).expect("header"),
    );
    tokio::time::timeout(STEP, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect timed out")
        .expect("upgrade")
        .0
}

async fn next_frame(ws: &mut Ws) -> Option<Frame> {
    loop {
        match tokio::time::timeout(STEP, ws.next())
            .await
            .expect("timed out waiting for a frame")
        {
            Some(Ok(Message::Binary(b))) => return Some(wire::decode(&b).expect("decodes")),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            _ => return None,
        }
    }
}

async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(STEP, ws.next())
            .await
            .expect("timed out waiting for the close")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            _ => return None,
        }
    }
}

async fn send(ws: &mut Ws, frame: &Frame) {
    ws.send(Message::binary(wire::encode(frame).expect("encodes")))
        .await
        .expect("send");
}

/// Answers the challenge from `client` with a signature of another key than the card's: the
/// relay closes with 4101.
async fn fail_authentication(relay: &RunningRelay, client: &str) {
    let (liar, other) = (customer(1), customer(2));
    let mut ws = connect(relay, client).await;
    let Some(Frame::Challenge(challenge)) = next_frame(&mut ws).await else {
        panic!("expected a challenge for {client}");
    };
    let mut bad = AuthResponse::answer(&other.keys, liar.card(), &challenge);
    bad.card = liar.card();
    send(&mut ws, &Frame::Auth(bad)).await;
    assert_eq!(close_code(&mut ws).await, Some(4101));
}

/// A refusal before the challenge: the `rate_limited` answer's message, and the 4104 close's
/// reason.
struct Refusal {
    message: String,
    close_reason: String,
}

impl Refusal {
    /// Whether the answer and the close both say the cap's words (new addresses, not this one).
    fn says_at_cap(&self) -> bool {
        self.message.contains("new addresses") && self.close_reason.contains("new addresses")
    }

    /// Whether the answer and the close both blame this address (its own bucket).
    fn says_own_address(&self) -> bool {
        self.message.contains("from your address")
            && self.close_reason.contains("from this address")
    }
}

/// The close frame's code and reason (`None` if the connection ended without one).
async fn close_frame(ws: &mut Ws) -> Option<(u16, String)> {
    loop {
        match tokio::time::timeout(STEP, ws.next())
            .await
            .expect("timed out waiting for the close")
        {
            Some(Ok(Message::Close(frame))) => {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
            Some(Ok(_)) => {}
            _ => return None,
        }
    }
}

/// How a connection from `client` is refused `rate_limited` before the challenge (and closed
/// with 4104), or `None` if it is challenged.
async fn refused_before_the_challenge(relay: &RunningRelay, client: &str) -> Option<Refusal> {
    let mut ws = connect(relay, client).await;
    match next_frame(&mut ws).await {
        Some(Frame::Challenge(_)) => None,
        Some(Frame::Response {
            id: 0,
            body:
                body @ Response::Error {
                    code: ErrorCode::RateLimited,
                    ..
                },
        }) => {
            assert!(body.retry_after().is_some(), "{body:?}");
            let Response::Error { message, .. } = body else {
                unreachable!()
            };
            let (code, close_reason) = close_frame(&mut ws).await.expect("a close frame");
            assert_eq!(code, CLOSE_RATE_LIMITED);
            Some(Refusal {
                message,
                close_reason,
            })
        }
        other => panic!("expected a challenge or a rate_limited refusal, got {other:?}"),
    }
}

/// With a cap of two sources and one failure a minute each: two sources fail once and fill
/// the table. A third, new source is still challenged (the overflow bucket is full), fails,
/// and that failure is charged to the overflow bucket; from then on every source without a
/// bucket of its own — the third again, a fourth — is refused before the challenge, counted
/// as the cap's refusal. Without the overflow bucket the third source's failures would go
/// uncounted, and it could try again and again.
#[tokio::test]
async fn failed_authentications_from_new_sources_at_the_cap_share_one_bucket() {
    let (relay, _dir) = spawn_relay_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.limits.max_tracked_sources = 2;
        instant_connection_refill(c);
        c.limits.source_auth_failure_burst = 1;
        c.limits.source_auth_failures_per_minute = 1;
    })
    .await;
    let keys = "sealdesk_limit_keys{reason=\"source_auth_failures\"}";
    fail_authentication(&relay, "203.0.113.1").await;
    fail_authentication(&relay, "203.0.113.2").await;
    assert_eq!(metric_of(&relay, keys).await, 2.0);
    assert_eq!(metric_of(&relay, "sealdesk_limit_keys_max").await, 2.0);

    // At the cap, a new source is challenged once: its failure goes to the overflow bucket.
    fail_authentication(&relay, "203.0.113.3").await;
    assert_eq!(metric_of(&relay, keys).await, 2.0, "no bucket of its own");
    for source in ["203.0.113.3", "203.0.113.4"] {
        let refusal = refused_before_the_challenge(&relay, source)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{source}, without a bucket at the cap, was challenged after the overflow \
                     bucket was used up"
                )
            });
        // The answer and the close both say why: new addresses, not this one.
        assert!(
            refusal.says_at_cap(),
            "{source}: {:?} / close {:?}",
            refusal.message,
            refusal.close_reason
        );
    }
    let at_cap = "sealdesk_limited_at_cap_total{reason=\"source_auth_failures\"}";
    assert_eq!(metric_of(&relay, at_cap).await, 2.0);
    let limited = "sealdesk_limited_total{reason=\"source_auth_failures\"}";
    assert_eq!(metric_of(&relay, limited).await, 2.0);
    // A source with a bucket is refused by its own (not the cap's refusal), and told so.
    let own = refused_before_the_challenge(&relay, "203.0.113.1")
        .await
        .expect("203.0.113.1 refused by its own bucket");
    assert!(
        own.says_own_address(),
        "{:?} / close {:?}",
        own.message,
        own.close_reason
    );
    assert_eq!(metric_of(&relay, at_cap).await, 2.0);
    assert_eq!(metric_of(&relay, limited).await, 3.0);
}

/// With a cap of two sources, two sources register (each bucket short of tokens since); a
/// third is refused `rate_limited`, counted both under its limit and as the cap's refusal,
/// and the table stays at two keys. A source's own empty bucket is not the cap's refusal.
#[tokio::test]
async fn a_new_source_at_the_cap_is_refused_and_counted_as_the_caps() {
    let (relay, _dir) = spawn_relay_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.limits.max_tracked_sources = 2;
        instant_connection_refill(c);
        c.limits.source_registration_burst = 1;
        c.limits.source_registrations_per_minute = 1;
    })
    .await;
    let register = async |client: &str, seed: u64| {
        let who = customer(seed);
        let mut ws = connect(&relay, client).await;
        let Some(Frame::Challenge(challenge)) = next_frame(&mut ws).await else {
            panic!("expected a challenge");
        };
        send(
            &mut ws,
            &Frame::Auth(AuthResponse::answer(&who.keys, who.card(), &challenge)),
        )
        .await;
        let Some(Frame::Welcome(_)) = next_frame(&mut ws).await else {
            panic!("expected a welcome");
        };
        send(
            &mut ws,
            &Frame::Request {
                id: 1,
                body: Request::Register,
            },
        )
        .await;
        let Some(Frame::Response { id: 1, body }) = next_frame(&mut ws).await else {
            panic!("expected the answer");
        };
        let _ = ws.close(None).await;
        body
    };
    assert_eq!(register("203.0.113.1", 10).await, Response::Ok);
    assert_eq!(register("203.0.113.2", 11).await, Response::Ok);
    let r = register("203.0.113.3", 12).await;
    assert!(
        matches!(
            r,
            Response::Error {
                code: ErrorCode::RateLimited,
                ..
            }
        ),
        "{r:?}"
    );
    assert!(r.retry_after().is_some(), "{r:?}");
    let Response::Error { message, .. } = &r else {
        unreachable!()
    };
    assert!(
        message.contains("too many addresses are registering right now"),
        "the words say it is the cap, not this address: {message}"
    );
    let name = |m: &str| format!("{m}{{reason=\"source_registrations\"}}");
    assert_eq!(
        metric_of(&relay, &name("sealdesk_limited_total")).await,
        1.0
    );
    assert_eq!(
        metric_of(&relay, &name("sealdesk_limited_at_cap_total")).await,
        1.0
    );
    assert_eq!(metric_of(&relay, &name("sealdesk_limit_keys")).await, 2.0);
    // The first source's own bucket is empty: refused, but not by the cap.
    let r = register("203.0.113.1", 13).await;
    assert!(
        matches!(
            r,
            Response::Error {
                code: ErrorCode::RateLimited,
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(
        metric_of(&relay, &name("sealdesk_limited_total")).await,
        2.0
    );
    assert_eq!(
        metric_of(&relay, &name("sealdesk_limited_at_cap_total")).await,
        1.0
    );
}
