//! Authentication, registration and malformed input: what the relay accepts before and after
//! the handshake, and the close codes it answers bad input with.

// Test helpers outside #[test] fns: a failed step must panic loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    card::{IdentityCard, Role},
    keys::IdentityKeys,
    wire::{self, AuthResponse, Challenge, ErrorCode, Frame, Request, Response},
};
use sealdesk_server::relay::session_codes::{
    CLOSE_AUTH_FAILED, CLOSE_BAD_FRAME, CLOSE_UNKNOWN_VERSION,
};
use sealdesk_tests::{Identity, Org, RawClient, rng, spawn_relay, spawn_relay_with, stop_relay};

#[tokio::test]
async fn handshake_welcomes_and_reports_registration() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let alice = Identity::new(1, "alice", Role::Customer);

    let mut c = RawClient::connect(&url).await;
    let relay_key = c.challenge().relay_key;
    let first_nonce = c.challenge().nonce;
    let welcome = c.auth(&alice.keys, alice.card()).await;
    assert!(!welcome.registered, "a new card is not registered");
    assert_eq!(
        welcome.log_key, relay_key,
        "the log key is the challenge's relay key"
    );
    c.ok(Request::Register).await;
    // The session now serves requests.
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

    let mut c = RawClient::connect(&url).await;
    assert_eq!(c.challenge().relay_key, relay_key, "one relay key");
    assert_ne!(
        c.challenge().nonce,
        first_nonce,
        "a fresh nonce per connection"
    );
    assert!(c.auth(&alice.keys, alice.card()).await.registered);
    c.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn bad_signature_closes_with_4101() {
    let (relay, _dir) = spawn_relay().await;
    let alice = Identity::new(2, "alice", Role::Customer);
    let mallory = IdentityKeys::generate(&mut rng(3));

    // Alice's card, signed with someone else's key.
    let mut c = RawClient::connect(&relay.ws_url()).await;
    let answer = AuthResponse::answer(&mallory, alice.card(), c.challenge());
    c.send_frame(&Frame::Auth(answer)).await;
    assert_eq!(c.expect_close().await, Some(CLOSE_AUTH_FAILED));

    // A correct answer whose signature bytes were flipped.
    let mut c = RawClient::connect(&relay.ws_url()).await;
    let mut answer = AuthResponse::answer(&alice.keys, alice.card(), c.challenge());
    let mut sig = answer.signature.to_bytes();
    sig[10] ^= 0x40;
    answer.signature = sealdesk_protocol::keys::Signature::from_bytes(&sig).unwrap();
    c.send_frame(&Frame::Auth(answer)).await;
    assert_eq!(c.expect_close().await, Some(CLOSE_AUTH_FAILED));

    // A card whose self-signature does not hold (name changed after signing).
    let mut c = RawClient::connect(&relay.ws_url()).await;
    let mut card = alice.card();
    card.name = "alice2".into();
    let answer = AuthResponse::answer(&alice.keys, card, c.challenge());
    c.send_frame(&Frame::Auth(answer)).await;
    assert_eq!(c.expect_close().await, Some(CLOSE_AUTH_FAILED));

    // The relay still serves honest clients.
    RawClient::login(&relay.ws_url(), &alice)
        .await
        .close()
        .await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn answer_to_another_challenge_closes_with_4101() {
    let (relay, _dir) = spawn_relay().await;
    let alice = Identity::new(4, "alice", Role::Customer);

    // Replaying an answer made for an earlier connection's nonce.
    let first = RawClient::connect(&relay.ws_url()).await;
    let old = first.challenge().clone();
    let mut c = RawClient::connect(&relay.ws_url()).await;
    assert_ne!(old.nonce, c.challenge().nonce);
    let answer = AuthResponse::answer(&alice.keys, alice.card(), &old);
    c.send_frame(&Frame::Auth(answer)).await;
    assert_eq!(c.expect_close().await, Some(CLOSE_AUTH_FAILED));

    // The right nonce, but signed for another relay key.
    let mut c = RawClient::connect(&relay.ws_url()).await;
    let forged = Challenge {
        relay_key: IdentityKeys::generate(&mut rng(5)).signing_public(),
        nonce: c.challenge().nonce,
    };
    let answer = AuthResponse::answer(&alice.keys, alice.card(), &forged);
    c.send_frame(&Frame::Auth(answer)).await;
    assert_eq!(c.expect_close().await, Some(CLOSE_AUTH_FAILED));
    first.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn request_before_auth_closes_with_4101() {
    let (relay, _dir) = spawn_relay().await;
    for body in [
        Request::GetTreeHead,
        Request::Register,
        Request::ListConversations,
    ] {
        let mut c = RawClient::connect(&relay.ws_url()).await;
        c.send_frame(&Frame::Request { id: 1, body }).await;
        let (frames, code) = c.frames_until_close().await;
        assert_eq!(code, Some(CLOSE_AUTH_FAILED));
        // The relay may explain itself with an error, but never serves the request.
        for f in frames {
            assert!(
                matches!(
                    f,
                    Frame::Response {
                        body: Response::Error { .. },
                        ..
                    }
                ),
                "a request before Auth got {f:?}"
            );
        }
    }
    stop_relay(relay).await;
}

#[tokio::test]
async fn garbage_before_auth_closes_with_4101() {
    let (relay, _dir) = spawn_relay().await;
    let alice = Identity::new(6, "alice", Role::Customer);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "random bytes",
            vec![0x01, 0xde, 0xad, 0xbe, 0xef, 0x00, 0xff],
        ),
        ("empty message", vec![]),
        ("unknown version", {
            let mut b = wire::encode(&Frame::Auth(AuthResponse::answer(
                &alice.keys,
                alice.card(),
                &Challenge {
                    relay_key: alice.key(),
                    nonce: [1; 32],
                },
            )))
            .unwrap();
            b[0] = 9;
            b
        }),
        ("truncated CBOR", {
            let b = wire::encode(&Frame::Auth(AuthResponse::answer(
                &alice.keys,
                alice.card(),
                &Challenge {
                    relay_key: alice.key(),
                    nonce: [1; 32],
                },
            )))
            .unwrap();
            b[..b.len() / 2].to_vec()
        }),
    ];
    for (what, bytes) in cases {
        let mut c = RawClient::connect(&relay.ws_url()).await;
        c.send_raw(bytes).await;
        // An unknown version has a close code of its own (a client of another version could
        // not read a version-1 error); everything else is a failed authentication.
        let expected = if what == "unknown version" {
            CLOSE_UNKNOWN_VERSION
        } else {
            CLOSE_AUTH_FAILED
        };
        assert_eq!(c.expect_close().await, Some(expected), "{what}");
    }
    // A well-formed answer with trailing bytes is refused as well.
    let mut c = RawClient::connect(&relay.ws_url()).await;
    let mut b = wire::encode(&Frame::Auth(AuthResponse::answer(
        &alice.keys,
        alice.card(),
        c.challenge(),
    )))
    .unwrap();
    b.push(0);
    c.send_raw(b).await;
    assert_eq!(c.expect_close().await, Some(CLOSE_AUTH_FAILED));
    stop_relay(relay).await;
}

#[tokio::test]
async fn malformed_frames_after_auth_close_with_4102() {
    let (relay, _dir) = spawn_relay().await;
    let alice = Identity::new(7, "alice", Role::Customer);
    let valid = wire::encode(&Frame::Request {
        id: 1,
        body: Request::GetCard {
            name: "alice".into(),
        },
    })
    .unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", vec![0x01, 0xff, 0xfe, 0x13, 0x37]),
        ("truncated CBOR", valid[..valid.len() - 3].to_vec()),
        ("unknown version", {
            let mut b = valid.clone();
            b[0] = 2;
            b
        }),
        ("trailing bytes", {
            let mut b = valid.clone();
            b.extend_from_slice(&[0, 0]);
            b
        }),
        ("empty message", vec![]),
    ];
    for (what, bytes) in cases {
        let mut c = RawClient::login(&relay.ws_url(), &alice).await;
        // The connection works before the bad frame.
        c.ok(Request::Register).await;
        c.send_raw(bytes).await;
        let expected = if what == "unknown version" {
            CLOSE_UNKNOWN_VERSION
        } else {
            CLOSE_BAD_FRAME
        };
        assert_eq!(c.expect_close().await, Some(expected), "{what}");
    }
    // Frames a client may not send after the handshake: a second Auth, a Response, a Push.
    for what in ["auth", "response", "welcome"] {
        let mut c = RawClient::login(&relay.ws_url(), &alice).await;
        let frame = match what {
            "auth" => Frame::Auth(AuthResponse::answer(
                &alice.keys,
                alice.card(),
                c.challenge(),
            )),
            "response" => Frame::Response {
                id: 1,
                body: Response::Ok,
            },
            _ => Frame::Welcome(sealdesk_protocol::wire::Welcome {
                registered: true,
                log_key: alice.key(),
            }),
        };
        c.send_frame(&frame).await;
        assert_eq!(c.expect_close().await, Some(CLOSE_BAD_FRAME), "{what}");
    }
    // Other sessions are unaffected.
    let mut c = RawClient::login(&relay.ws_url(), &alice).await;
    c.ok(Request::Register).await;
    c.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn unregistered_accounts_may_only_register_and_read_public_policies() {
    let (relay, _dir) = spawn_relay().await;
    let org = Org::setup(&relay.ws_url(), 11, "acme", 1, 1).await;
    let bob = Identity::new(8, "bob", Role::Customer);
    let mut c = RawClient::connect(&relay.ws_url()).await;
    assert!(!c.auth(&bob.keys, bob.card()).await.registered);
    for body in [
        Request::GetCard { name: "bob".into() },
        Request::ListConversations,
        Request::GetTreeHead,
        Request::PendingReleases,
        Request::GetCertificate {
            org: "acme".into(),
            agent: org.agents[0].card().name.clone(),
        },
    ] {
        assert_eq!(c.refused(body).await, ErrorCode::NotRegistered);
    }
    // An org's signed policy is public: a visitor's widget shows it before it registers.
    match c
        .request(Request::GetPolicy {
            org: "acme".into(),
            version: None,
        })
        .await
    {
        Response::Policy(p) => assert_eq!(&p, org.policy.policy()),
        other => panic!("expected the policy, got {other:?}"),
    }
    let unknown = Request::GetPolicy {
        org: "globex".into(),
        version: None,
    };
    assert_eq!(c.refused(unknown).await, ErrorCode::NotFound);
    c.ok(Request::Register).await;
    assert!(matches!(
        c.request(Request::GetTreeHead).await,
        Response::TreeHead(_)
    ));
    c.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn registration_is_idempotent_and_names_are_unique() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let carol = Identity::new(9, "carol", Role::Customer);
    let mut c = RawClient::login(&url, &carol).await;
    // Registering the same card again is fine.
    c.ok(Request::Register).await;
    c.close().await;
    let mut c = RawClient::connect(&url).await;
    assert!(c.auth(&carol.keys, carol.card()).await.registered);
    c.ok(Request::Register).await;
    c.close().await;

    // Another key under a taken name.
    let impostor = Identity::new(10, "carol", Role::Customer);
    let mut c = RawClient::connect(&url).await;
    assert!(!c.auth(&impostor.keys, impostor.card()).await.registered);
    assert_eq!(c.refused(Request::Register).await, ErrorCode::NameTaken);
    assert_eq!(
        c.refused(Request::ListConversations).await,
        ErrorCode::NotRegistered,
        "a refused registration leaves the session unregistered"
    );
    c.close().await;

    // The same key under another card (another name).
    let renamed = IdentityCard::issue(&carol.keys, "carol-two", Role::Customer, 1)
        .unwrap()
        .into_card();
    let mut c = RawClient::connect(&url).await;
    assert!(!c.auth(&carol.keys, renamed).await.registered);
    assert_eq!(c.refused(Request::Register).await, ErrorCode::KeyRegistered);
    c.close().await;

    // The directory still maps the name to the first key.
    let mut c = RawClient::login(&url, &carol).await;
    match c
        .request(Request::GetCard {
            name: "carol".into(),
        })
        .await
    {
        Response::Card(card) => assert_eq!(card, carol.card()),
        other => panic!("expected carol's card, got {other:?}"),
    }
    assert_eq!(
        c.refused(Request::GetCard {
            name: "carol-two".into()
        })
        .await,
        ErrorCode::NotFound
    );
    c.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn a_client_that_never_answers_is_closed_with_4001() {
    let (relay, _dir) = spawn_relay_with(|c| c.limits.auth_timeout_ms = 200).await;
    let mut c = RawClient::connect(&relay.ws_url()).await;
    // Say nothing: the relay gives up on the handshake (the timeout is short; no timing is
    // asserted, only the close code).
    assert_eq!(c.expect_close().await, Some(4001));
    // A client that answers in time is not affected.
    let alice = Identity::new(11, "alice", Role::Customer);
    RawClient::login(&relay.ws_url(), &alice)
        .await
        .close()
        .await;
    stop_relay(relay).await;
}
