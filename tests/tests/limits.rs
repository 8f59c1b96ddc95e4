//! The relay's abuse limits (issue 25): each limit hit, refused with its typed error and a
//! retry-after, counted in `/metrics`; other sources and accounts unaffected.
//!
//! Sources other than 127.0.0.1 are made with a trusted proxy: the relay is configured to
//! trust 127.0.0.1 as a reverse proxy, and each connection names its client in
//! `X-Forwarded-For`, as a proxy would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use futures_util::StreamExt as _;
use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    wire::{ErrorCode, Frame, Request, Response},
};
use sealdesk_server::{RunningRelay, relay::CLOSE_RATE_LIMITED};
use sealdesk_tests::{
    burst::{at_once, opened_or_over_quota, relay_with_open_quota},
    forwarded::{close_code, connect, fail_authentication, next_frame, register_from},
    identity::{Identity, now, rng, visitor},
    org::Org,
    raw::RawClient,
    relay::{metric_of, spawn_relay_with},
    web_key::open_request,
};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// How many times `limit` refused, from the relay's `/metrics`.
async fn limited(relay: &RunningRelay, limit: &str) -> f64 {
    metric_of(
        relay,
        &format!("sealdesk_limited_total{{reason=\"{limit}\"}}"),
    )
    .await
}

/// The code and retry-after of a refusal.
fn refusal(r: &Response) -> (ErrorCode, Option<Duration>) {
    match r {
        Response::Error { code, message, .. } => {
            // The wait is the `retry_after` field, never text to parse.
            assert!(!message.contains("retry after"), "{message}");
            (*code, r.retry_after())
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn registrations_from_one_source_are_limited_and_others_still_register() {
    let (relay, _dir) = spawn_relay_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.limits.source_registration_burst = 3;
        c.limits.source_registrations_per_minute = 1;
    })
    .await;
    for seed in 0..3 {
        let r = register_from(&relay.ws_url(), Some("203.0.113.7"), &visitor(seed)).await;
        assert_eq!(r, Response::Ok, "registration {seed}");
    }
    let r = register_from(&relay.ws_url(), Some("203.0.113.7"), &visitor(3)).await;
    let (code, retry) = refusal(&r);
    assert_eq!(code, ErrorCode::RateLimited);
    let retry = retry.expect("the refusal says when to retry");
    assert!(
        retry >= Duration::from_secs(1) && retry <= Duration::from_secs(60),
        "{retry:?}"
    );
    assert_eq!(limited(&relay, "source_registrations").await, 1.0);
    // Another address registers; so does the refused card, from there.
    for seed in [3, 4] {
        let r = register_from(&relay.ws_url(), Some("198.51.100.20"), &visitor(seed)).await;
        assert_eq!(r, Response::Ok);
    }
    // A registered account signing in again registers nothing and is not counted.
    let again = RawClient::login(&relay.ws_url(), &visitor(0)).await;
    again.close().await;
}

#[tokio::test]
async fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    // No trusted proxy: every connection here is 127.0.0.1, whatever the header says.
    let (relay, _dir) = spawn_relay_with(|c| {
        c.limits.source_registration_burst = 2;
        c.limits.source_registrations_per_minute = 1;
    })
    .await;
    for (seed, claimed) in ["192.0.2.1", "192.0.2.2"].iter().enumerate() {
        let r = register_from(&relay.ws_url(), Some(claimed), &visitor(seed as u64)).await;
        assert_eq!(r, Response::Ok);
    }
    let r = register_from(&relay.ws_url(), Some("192.0.2.3"), &visitor(9)).await;
    assert_eq!(
        refusal(&r).0,
        ErrorCode::RateLimited,
        "a client chose its own source with X-Forwarded-For"
    );
}

#[tokio::test]
async fn registrations_overall_are_limited_across_sources() {
    let (relay, _dir) = spawn_relay_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.limits.registration_burst = 2;
        c.limits.registrations_per_minute = 1;
    })
    .await;
    for seed in 0..2u64 {
        let ip = format!("198.51.100.{}", seed + 1);
        let r = register_from(&relay.ws_url(), Some(&ip), &visitor(seed)).await;
        assert_eq!(r, Response::Ok);
    }
    let r = register_from(&relay.ws_url(), Some("198.51.100.99"), &visitor(7)).await;
    let (code, retry) = refusal(&r);
    assert_eq!(code, ErrorCode::RateLimited);
    assert!(retry.is_some());
    assert_eq!(limited(&relay, "registrations").await, 1.0);
}

#[tokio::test]
async fn connections_from_one_source_get_429_with_retry_after() {
    let (relay, _dir) = spawn_relay_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.limits.source_connection_burst = 3;
        c.limits.source_connections_per_minute = 1;
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            connect(&relay.ws_url(), Some("203.0.113.50"))
                .await
                .expect("upgrade"),
        );
    }
    match connect(&relay.ws_url(), Some("203.0.113.50")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429);
            let secs: u64 = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .expect("a Retry-After header");
            assert!(secs >= 1, "{secs}");
        }
        Err(other) => panic!("expected HTTP 429, got {other}"),
        Ok(_) => panic!("a fourth connection from the source was accepted"),
    }
    connect(&relay.ws_url(), Some("203.0.113.51"))
        .await
        .expect("another source connects");
    connect(&relay.ws_url(), None)
        .await
        .expect("the proxy itself connects");
    assert_eq!(limited(&relay, "source_connections").await, 1.0);
}

#[tokio::test]
async fn the_client_library_reports_a_refused_connection_as_rate_limited() {
    let (relay, _dir) = spawn_relay_with(|c| {
        c.limits.source_connection_burst = 1;
        c.limits.source_connections_per_minute = 1;
    })
    .await;
    let _first = connect(&relay.ws_url(), None).await.expect("upgrade");
    let err = sealdesk_client::connection::Connection::connect(&relay.ws_url())
        .await
        .expect_err("the second connection is refused");
    match &err {
        sealdesk_client::ClientError::Relay { code, .. } => {
            assert_eq!(*code, ErrorCode::RateLimited)
        }
        other => panic!("expected a rate_limited refusal, got {other:?}"),
    }
    let wait = err.retry_after().expect("the wait is kept");
    assert!(wait >= Duration::from_secs(1), "{wait:?}");
    assert!(err.to_string().contains("retry after"), "{err}");
}

#[tokio::test]
async fn failed_authentications_from_one_source_close_its_next_connection_with_4104() {
    let (relay, _dir) = spawn_relay_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.limits.source_auth_failure_burst = 2;
        c.limits.source_auth_failures_per_minute = 1;
    })
    .await;
    let url = relay.ws_url();
    for _ in 0..2 {
        // Signed by another key than the card's: authentication fails (4101).
        assert_eq!(
            fail_authentication(&url, Some("203.0.113.9")).await,
            Some(4101)
        );
    }
    let mut ws = connect(&url, Some("203.0.113.9")).await.expect("upgrade");
    match next_frame(&mut ws).await {
        Some(Frame::Response {
            id: 0,
            body: body @ Response::Error { .. },
        }) => {
            assert_eq!(refusal(&body).0, ErrorCode::RateLimited);
            assert!(body.retry_after().is_some(), "{body:?}");
        }
        other => panic!("expected a rate_limited refusal before the challenge, got {other:?}"),
    }
    assert_eq!(close_code(&mut ws).await, Some(CLOSE_RATE_LIMITED));
    assert_eq!(CloseCode::from(CLOSE_RATE_LIMITED), CloseCode::from(4104));
    assert_eq!(limited(&relay, "source_auth_failures").await, 1.0);
    // Another address still signs in.
    let r = register_from(&url, Some("203.0.113.10"), &visitor(3)).await;
    assert_eq!(r, Response::Ok);
}

/// Opens conversations for customer 0 of `org` until one is refused; returns the refusal and
/// how many were opened.
async fn open_until_refused(client: &mut RawClient, org: &Org, seed: u64) -> (Response, usize) {
    let mut r = rng(seed);
    for n in 0..100 {
        let answer = client
            .request(Request::OpenConversation {
                org: org.name.clone(),
                conversation: ConversationId::random(&mut r),
            })
            .await;
        if !matches!(answer, Response::Opened { .. }) {
            return (answer, n);
        }
    }
    panic!("a hundred conversations opened");
}

#[tokio::test]
async fn a_customer_has_a_few_open_conversations_with_an_org_by_default() {
    let most = sealdesk_server::config::Limits::default().open_conversations_per_org;
    let clock = sealdesk_server::clock::TestClock::at_system_time();
    let handle = clock.handle();
    let (relay, _dir) = spawn_relay_with(|c| c.clock = handle).await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 71, "acme", 1, 2).await;
    let mut alice = RawClient::login(&url, &org.customers[0]).await;
    let (answer, opened) = open_until_refused(&mut alice, &org, 1).await;
    assert_eq!(opened, most);
    let (code, retry) = refusal(&answer);
    assert_eq!(code, ErrorCode::QuotaExceeded);
    let retry = retry.expect("says when a slot frees up");
    assert!(retry <= Duration::from_secs(86_400), "{retry:?}");
    let Response::Error { message, .. } = &answer else {
        unreachable!()
    };
    assert!(
        message.contains(&format!("{most} open conversations with acme")),
        "{message}"
    );
    assert_eq!(limited(&relay, "open_conversations").await, 1.0);
    // Another customer of the same org is not affected.
    let mut bob = RawClient::login(&url, &org.customers[1]).await;
    let (_, bob_opened) = open_until_refused(&mut bob, &org, 2).await;
    assert_eq!(bob_opened, most);
    // A day later the quiet conversations no longer count as open.
    clock.advance(86_401);
    let (_, later) = open_until_refused(&mut alice, &org, 3).await;
    assert_eq!(later, most);
}

#[tokio::test]
async fn conversation_opens_per_hour_are_limited() {
    let (relay, _dir) = spawn_relay_with(|c| {
        c.limits.open_conversations_per_org = 50;
        c.limits.conversation_opens_per_hour = 4;
    })
    .await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 72, "acme", 1, 1).await;
    let mut alice = RawClient::login(&url, &org.customers[0]).await;
    let (answer, opened) = open_until_refused(&mut alice, &org, 1).await;
    assert_eq!(opened, 4);
    let (code, retry) = refusal(&answer);
    assert_eq!(code, ErrorCode::RateLimited);
    assert!(retry.expect("a wait") >= Duration::from_secs(1));
    assert_eq!(limited(&relay, "conversation_opens").await, 1.0);
}

#[tokio::test]
async fn messages_per_member_per_conversation_are_limited_and_nothing_refused_is_stored() {
    let (relay, _dir) = spawn_relay_with(|c| {
        c.limits.conversation_message_burst = 5;
        c.limits.conversation_messages_per_minute = 1;
    })
    .await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 73, "acme", 1, 1).await;
    let mut alice = RawClient::login(&url, &org.customers[0]).await;
    let chat = org.start_chat(&mut alice, 0, 5).await;
    let me = &org.customers[0];
    for counter in 0..5 {
        alice
            .stored(Request::Send(chat.seal(me, counter, "hello")))
            .await;
    }
    let answer = alice
        .request(Request::Send(chat.seal(me, 5, "one too many")))
        .await;
    let (code, retry) = refusal(&answer);
    assert_eq!(code, ErrorCode::RateLimited);
    assert!(retry.is_some());
    // The agent's own messages in the same conversation are counted apart.
    let agent = &org.agents[chat.agent];
    let mut bob = RawClient::login(&url, agent).await;
    bob.stored(Request::Send(chat.seal(agent, 0, "hi"))).await;
    // The refused message was not stored: epoch record, five messages, the agent's one.
    match alice
        .request(Request::History {
            conversation: chat.id,
            after: 0,
            limit: 100,
        })
        .await
    {
        Response::Items { items, .. } => assert_eq!(items.len(), 7),
        other => panic!("expected items, got {other:?}"),
    }
    assert_eq!(limited(&relay, "conversation_messages").await, 1.0);
}

#[tokio::test]
async fn opens_from_eighty_percent_of_the_quota_carry_a_warning() {
    let (relay, _dir) = spawn_relay_with(|c| c.limits.open_conversations_per_org = 5).await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 72, "acme", 1, 1).await;
    let mut alice = RawClient::login(&url, &org.customers[0]).await;
    let mut r = rng(3);
    let mut quotas = Vec::new();
    for _ in 0..5 {
        let answer = alice
            .request(Request::OpenConversation {
                org: org.name.clone(),
                conversation: ConversationId::random(&mut r),
            })
            .await;
        let Response::Opened { quota, .. } = answer else {
            panic!("expected Opened, got {answer:?}");
        };
        quotas.push(quota.map(|q| (q.open, q.most)));
    }
    assert_eq!(
        quotas,
        [None, None, None, Some((4, 5)), Some((5, 5))],
        "the warning starts at 80% of the quota"
    );
}

#[tokio::test]
async fn a_source_holds_at_most_its_open_connections_and_a_close_frees_a_place() {
    let (relay, _dir) = spawn_relay_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.limits.max_connections_per_source = 2;
    })
    .await;
    let busy = Some("203.0.113.40");
    let mut first = connect(&relay.ws_url(), busy).await.expect("first");
    let _second = connect(&relay.ws_url(), busy).await.expect("second");
    match connect(&relay.ws_url(), busy).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status().as_u16(), 429);
            assert_eq!(
                r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
                Some("1")
            );
        }
        Ok(_) => panic!("a third open connection from one source was admitted"),
        Err(e) => panic!("expected HTTP 429, got {e}"),
    }
    assert_eq!(limited(&relay, "source_open_connections").await, 1.0);
    // Another source is not held back.
    let _other = connect(&relay.ws_url(), Some("198.51.100.41"))
        .await
        .expect("another source");
    // Once one of the two closes, the source connects again.
    first.close(None).await.expect("close");
    while first.next().await.is_some() {}
    let again = sealdesk_tests::wait::eventually("a place freed by the close", async || {
        connect(&relay.ws_url(), busy).await.ok()
    })
    .await;
    drop(again);
}

#[tokio::test]
async fn a_members_message_budget_is_per_conversation() {
    let (relay, _dir) = spawn_relay_with(|c| {
        c.limits.conversation_message_burst = 2;
        c.limits.conversation_messages_per_minute = 1;
    })
    .await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 74, "acme", 1, 1).await;
    let mut alice = RawClient::login(&url, &org.customers[0]).await;
    let me = &org.customers[0];
    let first = org.start_chat(&mut alice, 0, 8).await;
    for counter in 0..2 {
        alice
            .stored(Request::Send(first.seal(me, counter, "hello")))
            .await;
    }
    let answer = alice
        .request(Request::Send(first.seal(me, 2, "one too many")))
        .await;
    assert_eq!(refusal(&answer).0, ErrorCode::RateLimited);
    // The same sender's budget in another conversation is its own, full.
    let second = org.start_chat(&mut alice, 0, 9).await;
    for counter in 0..2 {
        alice
            .stored(Request::Send(second.seal(me, counter, "hello again")))
            .await;
    }
    let answer = alice
        .request(Request::Send(second.seal(me, 2, "one too many")))
        .await;
    assert_eq!(refusal(&answer).0, ErrorCode::RateLimited);
    assert_eq!(limited(&relay, "conversation_messages").await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opens_of_one_customer_at_the_same_instant_take_exactly_the_quota() {
    let most = 2;
    let (relay, _dir) = relay_with_open_quota(most).await;
    let url = relay.ws_url();
    let _org = Org::setup(&url, 73, "acme", 2, 1).await;
    // Several rounds: each a fresh customer key's burst of opens on as many connections.
    for round in 0..4u64 {
        let who = Identity::new(100 + round, &format!("burst{round}"), Role::Customer);
        let burst = (0..12)
            .map(|i| (&who, open_request("acme", 200 + 100 * round + i, None)))
            .collect();
        let answers = at_once(&[&url], burst).await;
        assert_eq!(
            opened_or_over_quota(&answers),
            most,
            "round {round}: {answers:?}"
        );
    }
}

/// The body of [`message_bytes_count_against_the_stored_bytes_quotas`]'s messages, and its
/// ciphertext's size (the body and the 16-byte AEAD tag): what one message counts.
const BODY: usize = 984;
const CIPHERTEXT: u64 = 1_000;

/// The ciphertext of message `counter` of `who` in `chat`, checked to be [`CIPHERTEXT`] bytes.
fn big_message(
    chat: &sealdesk_tests::Chat,
    who: &Identity,
    counter: u64,
) -> sealdesk_protocol::message::Envelope {
    let env = chat.seal(who, counter, &"x".repeat(BODY));
    assert_eq!(env.ciphertext.len() as u64, CIPHERTEXT);
    env
}

/// Messages alone reach the stored-bytes quotas (attachments are tested in `attachments.rs`):
/// each message's ciphertext counts against its sender's and its org's bytes, a message past
/// either is refused `quota_exceeded` naming the setting (nothing of it stored, counted in
/// `/metrics`), and erasing a conversation gives its messages' bytes back.
#[tokio::test]
async fn message_bytes_count_against_the_stored_bytes_quotas() {
    let (relay, _dir) = spawn_relay_with(|c| {
        c.limits.stored_bytes_per_account = 5 * CIPHERTEXT;
        c.limits.stored_bytes_per_org = 8 * CIPHERTEXT;
    })
    .await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 74, "bytesco", 1, 2).await;
    let (c0, c1) = (&org.customers[0], &org.customers[1]);
    let mut alice = RawClient::login(&url, c0).await;
    let chat = org.start_chat(&mut alice, 0, 740).await;
    for counter in 0..5 {
        alice
            .stored(Request::Send(big_message(&chat, c0, counter)))
            .await;
    }
    let answer = alice
        .request(Request::Send(big_message(&chat, c0, 5)))
        .await;
    let Response::Error { code, message, .. } = answer else {
        panic!("expected quota_exceeded, got {answer:?}");
    };
    assert_eq!(code, ErrorCode::QuotaExceeded);
    assert!(message.contains("stored_bytes_per_account"), "{message}");
    assert_eq!(limited(&relay, "stored_bytes_account").await, 1.0);
    // Nothing of the refused message was stored: the epoch record and five messages.
    match alice
        .request(Request::History {
            conversation: chat.id,
            after: 0,
            limit: 100,
        })
        .await
    {
        Response::Items { items, .. } => assert_eq!(items.len(), 6),
        other => panic!("expected items, got {other:?}"),
    }

    // The org's quota counts every member's messages: 5 of alice's and 3 of bob's fill it.
    let mut bob = RawClient::login(&url, c1).await;
    let chat1 = org.start_chat(&mut bob, 1, 741).await;
    for counter in 0..3 {
        bob.stored(Request::Send(big_message(&chat1, c1, counter)))
            .await;
    }
    let answer = bob.request(Request::Send(big_message(&chat1, c1, 3))).await;
    let Response::Error { code, message, .. } = answer else {
        panic!("expected quota_exceeded, got {answer:?}");
    };
    assert_eq!(code, ErrorCode::QuotaExceeded);
    assert!(message.contains("stored_bytes_per_org"), "{message}");

    // Erasure gives alice's five messages back, to her and to the org.
    alice
        .ok(Request::Erase(
            sealdesk_protocol::release::ErasureRequest::sign(&c0.keys, chat.id, now()),
        ))
        .await;
    bob.stored(Request::Send(big_message(&chat1, c1, 3))).await;
    let chat2 = org.start_chat(&mut alice, 0, 742).await;
    for counter in 0..4 {
        alice
            .stored(Request::Send(big_message(&chat2, c0, counter)))
            .await;
    }
    // The org is full again (4 + 4).
    assert_eq!(
        alice
            .refused(Request::Send(big_message(&chat2, c0, 4)))
            .await,
        ErrorCode::QuotaExceeded
    );
}
