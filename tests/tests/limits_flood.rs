//! Bounded under attack (issue 25, item 5): one source floods registrations, connections and
//! conversation opens while a well-behaved customer keeps chatting. The flood is refused once
//! past its limits (default limits); the chat completes. Its latency is printed, not asserted.
//!
//! The flood comes through a "proxy": the relay trusts 127.0.0.1 as a reverse proxy and the
//! flooding connections name 203.0.113.66 in `X-Forwarded-For`; the customer's own
//! connections are 127.0.0.1 itself.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    wire::{self, AuthResponse, ErrorCode, Frame, Request, Response},
};
use sealdesk_tests::{
    identity::{Identity, rng},
    org::Org,
    raw::RawClient,
    relay::{http_get, metric, spawn_relay_with},
    wait::STEP,
};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};

const FLOODER: &str = "203.0.113.66";
const MESSAGES: u64 = 200;
const FLOOD_TASKS: u64 = 3;

#[derive(Default)]
struct Tally {
    registered: AtomicU64,
    refused: AtomicU64,
    http_429: AtomicU64,
    opened: AtomicU64,
    open_refused: AtomicU64,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_frame(ws: &mut Ws) -> Option<Frame> {
    loop {
        match tokio::time::timeout(STEP, ws.next()).await.expect("frame") {
            Some(Ok(Message::Binary(b))) => return wire::decode(&b).ok(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            _ => return None,
        }
    }
}

/// One request over a fresh connection from the flooding source; `None` if the upgrade was
/// refused.
async fn flood_once(url: &str, who: &Identity, body: Request) -> Option<Response> {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-forwarded-for", FLOODER.parse().unwrap());
    let (mut ws, _) = match tokio::time::timeout(STEP, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect timed out")
    {
        Ok(pair) => pair,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status().as_u16(), 429);
            return None;
        }
        Err(e) => panic!("flood connect: {e}"),
    };
    let Some(Frame::Challenge(ch)) = next_frame(&mut ws).await else {
        return Some(Response::error(
            ErrorCode::RateLimited,
            "refused before the challenge",
        ));
    };
    let auth = Frame::Auth(AuthResponse::answer(&who.keys, who.card(), &ch));
    ws.send(Message::binary(wire::encode(&auth).unwrap()))
        .await
        .unwrap();
    let Some(Frame::Welcome(_)) = next_frame(&mut ws).await else {
        panic!("no welcome")
    };
    let mut answers = Vec::new();
    for (id, body) in [(1, Request::Register), (2, body)] {
        ws.send(Message::binary(
            wire::encode(&Frame::Request { id, body }).unwrap(),
        ))
        .await
        .unwrap();
        loop {
            match tokio::time::timeout(STEP, ws.next()).await.expect("answer") {
                Some(Ok(Message::Binary(b))) => match wire::decode(&b).unwrap() {
                    Frame::Response { body, .. } => {
                        answers.push(body);
                        break;
                    }
                    _ => continue,
                },
                Some(Ok(_)) => continue,
                _ => return answers.pop(),
            }
        }
    }
    answers.pop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_source_is_refused_while_a_customer_keeps_chatting() {
    let (relay, _dir) = spawn_relay_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 91, "acme", 1, 1).await;
    let mut alice = RawClient::login(&url, &org.customers[0]).await;
    let chat = org.start_chat(&mut alice, 0, 1).await;

    let me = &org.customers[0];
    let mut counter = 0u64;
    // The same chat without a flood first, for the ratio.
    let mut quiet = Vec::new();
    for _ in 0..MESSAGES {
        let started = Instant::now();
        alice
            .stored(Request::Send(chat.seal(me, counter, "hello")))
            .await;
        counter += 1;
        quiet.push(started.elapsed());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut flood = Vec::new();
    for task in 0..FLOOD_TASKS {
        let (url, stop, tally, org_name) =
            (url.clone(), stop.clone(), tally.clone(), org.name.clone());
        flood.push(tokio::spawn(async move {
            let mut r = rng(1_000 + task);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let who = Identity::new(
                    task * 1_000_000 + n + 10_000,
                    &format!("spam{task}x{n}"),
                    Role::Customer,
                );
                let open = Request::OpenConversation {
                    org: org_name.clone(),
                    conversation: ConversationId::random(&mut r),
                };
                match flood_once(&url, &who, open).await {
                    None => {
                        tally.http_429.fetch_add(1, Ordering::Relaxed);
                        // Refused at the door. Paced, so that the flood does not just burn the
                        // test machine's two cores (not a wait for an event).
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Some(Response::Opened { .. }) => {
                        tally.registered.fetch_add(1, Ordering::Relaxed);
                        tally.opened.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Response::Error {
                        code: ErrorCode::NotRegistered,
                        ..
                    }) => {
                        tally.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Response::Error { .. }) => {
                        tally.registered.fetch_add(1, Ordering::Relaxed);
                        tally.open_refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(other) => panic!("flood got {other:?}"),
                }
            }
        }));
    }

    // The well-behaved customer: one message at a time, each acknowledged.
    let mut latencies = Vec::new();
    for _ in 0..MESSAGES {
        let started = Instant::now();
        alice
            .stored(Request::Send(chat.seal(me, counter, "still here")))
            .await;
        counter += 1;
        latencies.push(started.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        f.await.unwrap();
    }
    latencies.sort();
    quiet.sort();
    let pct = |v: &[Duration], p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
    let t = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "chat: {MESSAGES} messages without a flood p50 {:?} p99 {:?}; under the flood p50 {:?} \
         p99 {:?} (p99 ratio {:.2}); flood: {} registered, {} registrations refused, {} \
         upgrades refused (429), {} opens, {} opens refused",
        pct(&quiet, 50),
        pct(&quiet, 99),
        pct(&latencies, 50),
        pct(&latencies, 99),
        pct(&latencies, 99).as_secs_f64() / pct(&quiet, 99).as_secs_f64().max(1e-9),
        t(&tally.registered),
        t(&tally.refused),
        t(&tally.http_429),
        t(&tally.opened),
        t(&tally.open_refused),
    );
    // Bounded: at most the source's registration burst (and what refilled meanwhile) got
    // through, whatever the flood tried.
    let defaults = sealdesk_server::config::Limits::default();
    let bound = u64::from(defaults.source_registration_burst)
        + u64::from(defaults.source_registrations_per_minute);
    assert!(
        t(&tally.registered) <= bound,
        "{} registrations from one source",
        t(&tally.registered)
    );
    let text = http_get(&relay, "/metrics").await;
    let limited = metric(
        &text,
        "sealdesk_limited_total{reason=\"source_registrations\"}",
    )
    .unwrap_or(0.0)
        + metric(
            &text,
            "sealdesk_limited_total{reason=\"source_connections\"}",
        )
        .unwrap_or(0.0);
    assert!(limited > 0.0, "the flood was never refused");
}
