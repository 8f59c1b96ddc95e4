//! What PROTOCOL.md promises a second implementation, provoked over the wire: a request with a
//! bad field is answered (not closed), an unknown wire version has its own close code, the
//! relay enforces the policy's rotation limit, and the conflict codes a client acts on.

// Test helpers outside #[test] fns: a failed step must panic loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    card::Role,
    message::EpochKeys,
    policy::{OrgPolicy, PolicyParams},
    wire::{self, ErrorCode, Frame, Request, Response},
};
use sealdesk_server::relay::session_codes::{
    CLOSE_AUTH_FAILED, CLOSE_BAD_FRAME, CLOSE_UNKNOWN_VERSION, MAX_BAD_FIELDS,
};
use sealdesk_server::store::{Collection, SledStore, Store as _};
use sealdesk_tests::{
    Chat, EpochSpec, Identity, Org, RawClient, now, rng, spawn_relay, spawn_relay_in, stop_relay,
};

/// The error code and message of the response to the request with `id`, read off the wire.
async fn error_for(c: &mut RawClient, id: u64) -> (ErrorCode, String) {
    loop {
        match c.recv_frame().await {
            Some(Frame::Response {
                id: got,
                body: Response::Error { code, message, .. },
            }) => {
                assert_eq!(got, id, "the error answers the request it is about");
                return (code, message);
            }
            Some(Frame::Push(_)) => {}
            other => panic!("expected an error response, got {other:?}"),
        }
    }
}

/// `frame` (encoded) with its last `cut` bytes replaced by `tail`: the tests below put the
/// field to break last, so this swaps its value for one of another type.
fn with_tail(frame: &Frame, cut: usize, tail: &[u8]) -> Vec<u8> {
    let mut b = wire::encode(frame).unwrap();
    b.truncate(b.len() - cut);
    b.extend_from_slice(tail);
    b
}

#[tokio::test]
async fn a_request_with_a_bad_field_is_answered_naming_the_field() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let alice = Identity::new(31, "alice", Role::Customer);
    let mut c = RawClient::login(&url, &alice).await;

    // `get_certificate.agent` is a name (a text string), not a number: `"bobby"` → 5.
    let frame = Frame::Request {
        id: 41,
        body: Request::GetCertificate {
            org: "acme".into(),
            agent: "bobby".into(),
        },
    };
    assert!(wire::encode(&frame).unwrap().ends_with(b"\x65bobby"));
    c.send_raw(with_tail(&frame, 6, &[0x05])).await;
    let (code, message) = error_for(&mut c, 41).await;
    assert_eq!(code, ErrorCode::BadField);
    assert!(
        message.starts_with("body.get_certificate.agent: "),
        "{message}"
    );

    // `history.limit` is a u32, not a text string: 5 → "x".
    let frame = Frame::Request {
        id: 42,
        body: Request::History {
            conversation: sealdesk_protocol::ids::ConversationId::random(&mut rng(32)),
            after: 0,
            limit: 5,
        },
    };
    c.send_raw(with_tail(&frame, 1, &[0x61, b'x'])).await;
    let (code, message) = error_for(&mut c, 42).await;
    assert_eq!(code, ErrorCode::BadField);
    assert!(message.starts_with("body.history.limit: "), "{message}");

    // An unknown request name: the field is the body itself.
    let frame = Frame::Request {
        id: 43,
        body: Request::Register,
    };
    c.send_raw(with_tail(&frame, 9, b"\x6afrobnicate")).await;
    let (code, message) = error_for(&mut c, 43).await;
    assert_eq!(code, ErrorCode::BadField);
    assert!(message.starts_with("body: unknown variant"), "{message}");

    // The session goes on: nothing was closed.
    match c
        .request(Request::GetCard {
            name: "alice".into(),
        })
        .await
    {
        Response::Card(card) => assert_eq!(card, alice.card()),
        other => panic!("expected the card, got {other:?}"),
    }
    c.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn a_connection_gets_a_few_bad_field_answers_then_is_closed() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let alice = Identity::new(34, "alice", Role::Customer);
    let mut c = RawClient::login(&url, &alice).await;
    let bad = |id: u64| {
        let frame = Frame::Request {
            id,
            body: Request::GetCertificate {
                org: "acme".into(),
                agent: "bobby".into(),
            },
        };
        with_tail(&frame, 6, &[0x05])
    };
    for id in 1..=MAX_BAD_FIELDS as u64 {
        c.send_raw(bad(id)).await;
        let (code, message) = error_for(&mut c, id).await;
        assert_eq!(code, ErrorCode::BadField);
        assert!(
            message.starts_with("body.get_certificate.agent: "),
            "{message}"
        );
    }
    // One more: closed, unanswered.
    c.send_raw(bad(100)).await;
    let (frames, code) = c.frames_until_close().await;
    assert_eq!(code, Some(CLOSE_BAD_FRAME));
    assert!(
        !frames
            .iter()
            .any(|f| matches!(f, Frame::Response { id: 100, .. })),
        "{frames:?}"
    );
    stop_relay(relay).await;
}

#[tokio::test]
async fn an_unknown_wire_version_closes_with_4103_before_and_after_auth() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let alice = Identity::new(33, "alice", Role::Customer);
    let request = wire::encode(&Frame::Request {
        id: 1,
        body: Request::GetTreeHead,
    })
    .unwrap();

    // Before auth: a version-2 client's first frame.
    let mut c = RawClient::connect(&url).await;
    let mut b = request.clone();
    b[0] = 2;
    c.send_raw(b).await;
    let (frames, code) = c.frames_until_close().await;
    assert_eq!(code, Some(CLOSE_UNKNOWN_VERSION));
    assert!(frames.is_empty(), "no version-1 answer to another version");

    // A malformed version-1 frame before auth is still an authentication failure.
    let mut c = RawClient::connect(&url).await;
    c.send_raw(request[..request.len() - 2].to_vec()).await;
    assert_eq!(c.expect_close().await, Some(CLOSE_AUTH_FAILED));

    // After auth.
    for version in [0u8, 2, 0xff] {
        let mut c = RawClient::login(&url, &alice).await;
        let mut b = request.clone();
        b[0] = version;
        c.send_raw(b).await;
        assert_eq!(
            c.expect_close().await,
            Some(CLOSE_UNKNOWN_VERSION),
            "version {version}"
        );
    }
    stop_relay(relay).await;
}

/// An org whose policy rotates after `limit` messages, set up on the relay at `url`.
async fn org_rotating_after(url: &str, seed: u64, name: &str, limit: u32) -> Org {
    Org::new_with(seed, name, 1, 1, |p| p.rotate_after_messages = limit)
        .publish(url)
        .await
}

#[tokio::test]
async fn the_relay_refuses_a_message_beyond_the_rotation_limit() {
    let dir = tempfile::tempdir().unwrap();
    let relay = spawn_relay_in(dir.path()).await;
    let url = relay.ws_url();
    let org = org_rotating_after(&url, 34, "limited", 3).await;
    let customer = &org.customers[0];
    let mut c = RawClient::login(&url, customer).await;
    let chat = org.start_chat(&mut c, 0, 35).await;
    let agent = &org.agents[chat.agent];
    let mut a = RawClient::login(&url, agent).await;

    // Every member's messages count: two from the customer, one from the agent.
    c.stored(Request::Send(chat.seal(customer, 0, "one"))).await;
    a.stored(Request::Send(chat.seal(agent, 0, "two"))).await;
    let third = c
        .stored(Request::Send(chat.seal(customer, 1, "three")))
        .await;
    assert_eq!(
        c.refused(Request::Send(chat.seal(customer, 2, "four")))
            .await,
        ErrorCode::EpochFull
    );
    assert_eq!(
        a.refused(Request::Send(chat.seal(agent, 1, "four"))).await,
        ErrorCode::EpochFull
    );
    // A resent message is still a reused counter, full epoch or not.
    assert_eq!(
        c.refused(Request::Send(chat.seal(customer, 1, "three again")))
            .await,
        ErrorCode::CounterReused
    );
    c.close().await;
    a.close().await;

    // The count survives a restart (rebuilt from the stored items).
    stop_relay(relay).await;
    let relay = spawn_relay_in(dir.path()).await;
    let url = relay.ws_url();
    let mut c = RawClient::login(&url, customer).await;
    let mut a = RawClient::login(&url, agent).await;
    assert_eq!(
        c.refused(Request::Send(chat.seal(customer, 3, "four")))
            .await,
        ErrorCode::EpochFull
    );

    // The client rotates: epoch 1, then the message goes there, right after the record.
    let (record, secret) = org.epoch(
        &mut rng(36),
        EpochSpec {
            conversation: chat.id,
            creator: customer,
            customer: 0,
            agent: chat.agent,
            epoch: 1,
            previous: Some(chat.record.record()),
        },
    );
    let epoch_seq = c.stored(Request::PutEpoch(record.record().clone())).await;
    assert_eq!(
        epoch_seq,
        third + 1,
        "refused messages took no sequence number"
    );
    let next = Chat {
        id: chat.id,
        customer: 0,
        agent: chat.agent,
        keys: EpochKeys::new(&secret, &record),
        record,
        secret,
        epoch_seq,
    };
    assert_eq!(
        c.stored(Request::Send(next.seal(customer, 0, "four")))
            .await,
        epoch_seq + 1
    );
    // Epoch 0 takes nothing any more; epoch 1 has its own count.
    assert_eq!(
        a.refused(Request::Send(chat.seal(agent, 5, "late"))).await,
        ErrorCode::StaleEpoch
    );
    a.stored(Request::Send(next.seal(agent, 0, "five"))).await;
    // A second record of epoch 1 (the agent rotating at the same time) is stale, and so is
    // epoch 0 again.
    let (rival, _) = org.epoch(
        &mut rng(37),
        EpochSpec {
            conversation: chat.id,
            creator: agent,
            customer: 0,
            agent: chat.agent,
            epoch: 1,
            previous: Some(chat.record.record()),
        },
    );
    assert_eq!(
        a.refused(Request::PutEpoch(rival.record().clone())).await,
        ErrorCode::StaleEpoch
    );
    assert_eq!(
        c.refused(Request::PutEpoch(chat.record.record().clone()))
            .await,
        ErrorCode::StaleEpoch
    );
    c.close().await;
    a.close().await;
    stop_relay(relay).await;
}

/// Publishes version 2 of the org's policy, with `rotate_after_messages = limit`.
async fn tighten_rotation(url: &str, org: &Org, limit: u32) {
    let p = org.policy.policy();
    let mut params = PolicyParams::new(
        &p.org,
        p.trustees.clone(),
        p.trustee_threshold,
        p.arbiters.clone(),
        p.arbiter_threshold,
    );
    params.version = 2;
    params.rotate_after_messages = limit;
    let v2 = OrgPolicy::issue(&org.master.keys, &org.master.card, params, now()).unwrap();
    let mut m = RawClient::login(url, &org.master).await;
    m.ok(Request::PublishPolicy(v2.policy().clone())).await;
    m.close().await;
}

#[tokio::test]
async fn an_epoch_naming_an_older_looser_policy_gets_the_latest_limit() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = org_rotating_after(&url, 38, "loose", 100).await;
    let customer = &org.customers[0];
    let mut c = RawClient::login(&url, customer).await;
    let chat = org.start_chat(&mut c, 0, 39).await;
    tighten_rotation(&url, &org, 3).await;

    // Epoch 1 names version 1 (limit 100), not the latest (limit 3).
    let (record, secret) = org.epoch(
        &mut rng(40),
        EpochSpec {
            conversation: chat.id,
            creator: customer,
            customer: 0,
            agent: chat.agent,
            epoch: 1,
            previous: Some(chat.record.record()),
        },
    );
    assert_eq!(record.record().policy_version, 1);
    let epoch_seq = c.stored(Request::PutEpoch(record.record().clone())).await;
    let next = Chat {
        id: chat.id,
        customer: 0,
        agent: chat.agent,
        keys: EpochKeys::new(&secret, &record),
        record,
        secret,
        epoch_seq,
    };
    for counter in 0..3 {
        c.stored(Request::Send(next.seal(customer, counter, "in")))
            .await;
    }
    assert_eq!(
        c.refused(Request::Send(next.seal(customer, 3, "over")))
            .await,
        ErrorCode::EpochFull,
        "the latest policy's limit holds"
    );
    c.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn a_conversation_stored_without_its_limit_gets_it_from_the_epoch_record_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let relay = spawn_relay_in(dir.path()).await;
    let url = relay.ws_url();
    let org = org_rotating_after(&url, 41, "legacy", 3).await;
    let customer = &org.customers[0];
    let mut c = RawClient::login(&url, customer).await;
    let chat = org.start_chat(&mut c, 0, 42).await;
    c.stored(Request::Send(chat.seal(customer, 0, "one"))).await;
    c.stored(Request::Send(chat.seal(customer, 1, "two"))).await;
    c.close().await;
    stop_relay(relay).await;

    // As a relay build that kept no limit stored it: `rotate_after: null` (3 → null).
    {
        let store = SledStore::open(dir.path()).unwrap();
        let mut record = store
            .get(Collection::Conversations, chat.id.as_bytes())
            .unwrap()
            .expect("the conversation is stored");
        let key = b"\x6crotate_after\x03";
        let at = record
            .windows(key.len())
            .position(|w| w == key)
            .expect("the record carries its limit");
        record[at + key.len() - 1] = 0xf6;
        store
            .put(Collection::Conversations, chat.id.as_bytes(), &record)
            .unwrap();
        store.flush().unwrap();
    }

    let relay = spawn_relay_in(dir.path()).await;
    let url = relay.ws_url();
    let mut c = RawClient::login(&url, customer).await;
    c.stored(Request::Send(chat.seal(customer, 2, "three")))
        .await;
    assert_eq!(
        c.refused(Request::Send(chat.seal(customer, 3, "four")))
            .await,
        ErrorCode::EpochFull,
        "the limit was filled in from the epoch's record"
    );
    c.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn the_message_count_survives_a_restart_past_a_checkpoint() {
    // 260 messages: the conversation record is rewritten at sequence number 256 (every
    // `CHECKPOINT_EVERY`), and the restart replays the items after it.
    let dir = tempfile::tempdir().unwrap();
    let relay = spawn_relay_in(dir.path()).await;
    let url = relay.ws_url();
    let org = org_rotating_after(&url, 43, "checkpointed", 300).await;
    let customer = &org.customers[0];
    let mut c = RawClient::login(&url, customer).await;
    let chat = org.start_chat(&mut c, 0, 44).await;
    for counter in 0..260 {
        c.stored(Request::Send(chat.seal(customer, counter, "m")))
            .await;
    }
    c.close().await;
    stop_relay(relay).await;

    let relay = spawn_relay_in(dir.path()).await;
    let url = relay.ws_url();
    let mut c = RawClient::login(&url, customer).await;
    for counter in 260..300 {
        c.stored(Request::Send(chat.seal(customer, counter, "m")))
            .await;
    }
    assert_eq!(
        c.refused(Request::Send(chat.seal(customer, 300, "over")))
            .await,
        ErrorCode::EpochFull,
        "exactly 40 more after the restart"
    );
    c.close().await;
    stop_relay(relay).await;
}
