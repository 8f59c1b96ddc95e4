//! The hostile relay tampers with delivery: real clients (the client library) talk to a real
//! relay through the intercepting proxy ([`sealdesk_tests::proxy`]), which drops, reorders,
//! duplicates, replays and tampers messages in transit, and confuses frame and item types (a
//! hand-off where an epoch record belongs, a response of the wrong type, a handshake frame in a
//! session). Each is refused with a named reason, shown once or shown as a gap: forged or
//! replayed content never appears in the timeline as genuine.
//!
//! Hermetic: loopback only, temporary directories, the fast test KDF. No timing assertions:
//! the only waits are generous bounds ([`sealdesk_tests::STEP`]) that keep a broken test from
//! hanging. `SECURITY.md` maps each attack to its test and the observed result; the other
//! `hostile_*.rs` files hold the rest of the hostile relay's attacks, and
//! [`sealdesk_tests::hostile`] its shared hooks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::handoff::HandOffOutcome;
use sealdesk_client::{ClientError, account::LogEntry, client::HistoryLine};
use sealdesk_protocol::{
    card::Role,
    epoch::HandOff,
    keys::Signature,
    secret::EpochSecret,
    wire::{Frame, Item, Request, Response},
};
use sealdesk_tests::{
    eventually,
    hostile::{answer_for, carol_sends_numbered, edit_for, impostor, replace_for},
    now,
    proxy::{Ctx, Dir, edit_items, is_item_push},
    timeline::{gaps, item_at, items, lines, rejected},
    world::{ORG, Via, World, open_chat, texts},
};

// ---- drop, reorder, duplicate, replay, tamper ----------------------------------------------

fn flip(sig: &Signature) -> Signature {
    let mut b = sig.to_bytes();
    b[0] ^= 1;
    Signature::from_bytes(&b).unwrap()
}

/// The relay withholds carol's second message and delivers the third in its slot (pushes
/// withheld too). alice shows the gap, not a hole; the next catch-up delivers the withheld
/// message and the gap closes. Nothing is shown twice.
#[tokio::test]
async fn dropped_message_shows_a_gap_until_catch_up_delivers_it() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    let _s0 = carol.send_text(&conv, "m0").await.unwrap();
    let s1 = carol.send_text(&conv, "m1").await.unwrap();
    let s2 = carol.send_text(&conv, "m2").await.unwrap();
    let all = items(&carol, &conv).await;
    let (m1, m2) = (item_at(&all, s1), item_at(&all, s2));

    let hook = |hold: bool, m1: Item, m2: Item| {
        move |ctx: &Ctx<'_>, frame: Frame| {
            if ctx.dir != Dir::ToClient || ctx.account != Some("alice") {
                return vec![frame];
            }
            if is_item_push(&frame) {
                return Vec::new(); // live pushes withheld too: only catch-up delivers
            }
            let mut frame = edit_items(frame, |s| {
                if s.conversation == conv && s.seq == s1 {
                    s.item = m2.clone();
                } else if s.conversation == conv && s.seq == s2 {
                    s.item = m1.clone();
                }
            });
            if let Frame::Response {
                body: Response::Items { items, more, .. },
                ..
            } = &mut frame
                && hold
                && items.iter().any(|s| s.seq > s1)
            {
                items.retain(|s| s.seq <= s1);
                *more = false;
            }
            vec![frame]
        }
    };
    w.proxy().set_hook(hook(true, m1.clone(), m2.clone()));
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    assert_eq!(texts(&alice, &conv), ["carol: m0", "carol: m2"]);
    assert_eq!(gaps(&alice, &conv), [("carol".to_owned(), vec![1])]);
    assert!(rejected(&alice, &conv).is_empty());

    // The relay stops withholding: the next catch-up fills the gap, once.
    w.proxy().set_hook(hook(false, m1, m2));
    alice.sync_all().await.unwrap();
    assert_eq!(
        texts(&alice, &conv),
        ["carol: m0", "carol: m2", "carol: m1"]
    );
    assert!(gaps(&alice, &conv).is_empty());
    assert!(rejected(&alice, &conv).is_empty());
}

/// The relay delivers five messages in reverse order (sequence numbers kept): the reordering
/// window accepts each once, and no gap remains.
#[tokio::test]
async fn reordered_messages_are_each_shown_once_without_gaps() {
    let w = World::with_proxy().await;
    let (_master, carol, conv, seqs) = carol_sends_numbered(&w, None, 5).await;
    let all = items(&carol, &conv).await;
    let reversed: Vec<(u64, Item)> = seqs
        .iter()
        .zip(seqs.iter().rev())
        .map(|(at, from)| (*at, item_at(&all, *from)))
        .collect();
    w.proxy().set_hook(edit_for("alice", move |s| {
        if let Some((_, item)) = reversed
            .iter()
            .find(|(at, _)| s.conversation == conv && *at == s.seq)
        {
            s.item = item.clone();
        }
    }));
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    assert_eq!(
        texts(&alice, &conv),
        [
            "carol: m4",
            "carol: m3",
            "carol: m2",
            "carol: m1",
            "carol: m0"
        ]
    );
    assert!(gaps(&alice, &conv).is_empty());
    assert!(rejected(&alice, &conv).is_empty());
}

/// Every frame in both directions is sent twice, and every page lists each item twice: each
/// message is stored and shown once.
#[tokio::test]
async fn duplicated_frames_are_shown_once() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    w.proxy().set_hook(|ctx, mut frame| {
        let after_handshake = matches!(
            frame,
            Frame::Request { .. } | Frame::Response { .. } | Frame::Push(_)
        );
        if ctx.account != Some("alice") || !after_handshake {
            return vec![frame];
        }
        if let Frame::Response {
            body: Response::Items { items, .. },
            ..
        } = &mut frame
        {
            *items = items.iter().flat_map(|s| [s.clone(), s.clone()]).collect();
        }
        vec![frame.clone(), frame]
    });
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    for i in 0..3 {
        carol.send_text(&conv, &format!("m{i}")).await.unwrap();
    }
    alice.sync_all().await.unwrap();
    alice.send_text(&conv, "a0").await.unwrap();
    alice.sync_all().await.unwrap();
    let expected = ["carol: m0", "carol: m1", "carol: m2", "alice: a0"];
    assert_eq!(texts(&alice, &conv), expected);
    assert!(rejected(&alice, &conv).is_empty());
    carol.sync_all().await.unwrap();
    assert_eq!(texts(&carol, &conv), expected);
    // alice's duplicated Send was stored once.
    let stored = items(&carol, &conv)
        .await
        .iter()
        .filter(|s| matches!(s.item, Item::Message(_)))
        .count();
    assert_eq!(stored, 4);
}

/// The relay re-delivers an old message as a new item (a fresh sequence number), before and
/// after alice restarts, and slips in a message from another conversation: each is refused by
/// the replay window or the conversation binding, and the original is shown once.
#[tokio::test]
async fn replayed_message_is_refused_and_never_shown_twice() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    let other = open_chat(&mut carol).await;
    let x = carol.send_text(&other, "elsewhere").await.unwrap();
    let s0 = carol.send_text(&conv, "m0").await.unwrap();
    let s1 = carol.send_text(&conv, "m1").await.unwrap();
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    assert_eq!(texts(&alice, &conv), ["carol: m0", "carol: m1"]);
    let all = items(&carol, &conv).await;
    let foreign = item_at(&items(&carol, &other).await, x);

    // Replay of m0 in the slot of the next item.
    w.proxy()
        .set_hook(replace_for("alice", conv, s1 + 1, item_at(&all, s0)));
    assert_eq!(carol.send_text(&conv, "carrier 1").await.unwrap(), s1 + 1);
    alice.sync_all().await.unwrap();
    assert_eq!(texts(&alice, &conv), ["carol: m0", "carol: m1"]);
    let r = rejected(&alice, &conv);
    assert_eq!(r.len(), 1);
    assert!(r[0].contains("replay refused"), "{r:?}");

    // alice restarts (replay windows are persisted) and the relay replays m1.
    drop(alice.close().await);
    w.proxy()
        .set_hook(replace_for("alice", conv, s1 + 2, item_at(&all, s1)));
    assert_eq!(carol.send_text(&conv, "carrier 2").await.unwrap(), s1 + 2);
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    // A message of another conversation delivered in this one.
    w.proxy()
        .set_hook(replace_for("alice", conv, s1 + 3, foreign));
    assert_eq!(carol.send_text(&conv, "carrier 3").await.unwrap(), s1 + 3);
    alice.sync_all().await.unwrap();
    assert_eq!(texts(&alice, &conv), ["carol: m0", "carol: m1"]);
    let r = rejected(&alice, &conv);
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(r[1].contains("replay refused"), "{r:?}");
    assert!(r[2].contains("another conversation"), "{r:?}");
}

/// Ciphertext, header fields, the signature, the claimed sender and the epoch number are
/// tampered in transit: every message is rejected with a named reason, none is shown, and the
/// counters that never arrived intact are shown as a gap.
#[tokio::test]
async fn tampered_ciphertext_header_and_signature_are_rejected() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    let alice_key = alice.account().keys().signing_public();
    let relay_keys = impostor(9_001, "relay", Role::Agent).keys;
    let first = carol.meta(&conv).unwrap().cursor + 1;
    w.proxy().set_hook(edit_for("alice", move |s| {
        let Item::Message(env) = &mut s.item else {
            return;
        };
        if s.conversation != conv {
            return;
        }
        match s.seq.checked_sub(first) {
            Some(0) => env.ciphertext[0] ^= 1,
            Some(1) => env.header.sent_at += 1,
            Some(2) => env.signature = flip(&env.signature),
            Some(3) => env.signature = relay_keys.sign(&env.signed_bytes()),
            Some(4) => env.header.sender = alice_key,
            Some(5) => env.header.epoch = 7,
            _ => {}
        }
    }));
    for i in 0..7 {
        let seq = carol.send_text(&conv, &format!("t{i}")).await.unwrap();
        assert_eq!(seq, first + i);
    }
    alice.sync_all().await.unwrap();
    assert_eq!(texts(&alice, &conv), ["carol: t6"]);
    let r = rejected(&alice, &conv);
    assert_eq!(r.len(), 6, "{r:?}");
    for reason in &r[..5] {
        assert!(reason.contains("bad signature on message"), "{reason}");
    }
    assert!(r[5].contains("epoch 7"), "{}", r[5]);
    assert_eq!(
        gaps(&alice, &conv),
        [("carol".to_owned(), vec![0, 1, 2, 3, 4, 5])]
    );
}

// ---- protocol confusion --------------------------------------------------------------------

/// Frame and item types swapped: a hand-off delivered where the epoch record belongs (refused;
/// the messages of the missing epoch are not shown; sending is refused), a response of the
/// wrong type (`UnexpectedResponse`), and a handshake frame in the middle of a session (the
/// client closes the connection).
#[tokio::test]
async fn protocol_confusion_is_refused() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();
    let alice_card = {
        let a = w.reopen_via("alice", Via::Relay).await;
        let card = a.account().card().clone();
        drop(a.close().await);
        card
    };
    let relay = impostor(9_011, "mallory", Role::Agent);
    let mut r = sealdesk_client::rng().unwrap();
    let k = EpochSecret::random(&mut r);
    let handoff =
        HandOff::create(&mut r, &relay.keys, &alice_card, conv, &[(0, &k)], now()).unwrap();
    w.proxy().set_hook(edit_for("alice", move |s| {
        if matches!(s.item, Item::Epoch(_)) {
            s.item = Item::HandOff(handoff.clone());
        }
    }));
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    assert!(alice.account().epoch(&conv, 0).unwrap().is_none());
    let handoffs: Vec<HandOffOutcome> = lines(&alice, &conv)
        .into_iter()
        .filter_map(|l| match l {
            HistoryLine::Item {
                entry: LogEntry::HandOff { outcome, .. },
                ..
            } => Some(outcome),
            _ => None,
        })
        .collect();
    assert!(
        handoffs.len() == 1 && matches!(handoffs[0], HandOffOutcome::Refused { .. }),
        "{handoffs:?}"
    );
    assert!(texts(&alice, &conv).is_empty());
    let rej = rejected(&alice, &conv);
    assert!(rej.len() == 1 && rej[0].contains("no record"), "{rej:?}");
    let err = alice.send_text(&conv, "reply").await.unwrap_err();
    assert!(matches!(err, ClientError::CannotSend { .. }), "{err}");

    // A policy where the opened conversation belongs.
    let policy = alice.latest_policy(ORG).await.unwrap().policy().clone();
    w.proxy()
        .set_hook(answer_for("dan", move |req, body| match req {
            Request::OpenConversation { .. } => Response::Policy(policy.clone()),
            _ => body,
        }));
    let mut dan = w.user_via("dan", Role::Customer, Via::Proxy).await;
    let err = dan.open_conversation(ORG, None).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::UnexpectedResponse(m) if m.contains("answered with Policy")),
        "{err}"
    );

    // A challenge in the middle of a session.
    let conn = w.proxy().connections("dan")[0];
    let challenge = Frame::Challenge(sealdesk_protocol::wire::Challenge {
        relay_key: relay.key(),
        nonce: [1; 32],
    });
    assert!(w.proxy().inject(conn, Dir::ToClient, challenge));
    let closed = eventually("the client to close the connection", async || {
        dan.session().closed()
    })
    .await;
    assert!(
        closed.contains("not allowed after the handshake"),
        "{closed}"
    );
    let err = dan.latest_policy(ORG).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Closed(Some(r)) if *r == closed),
        "{err}"
    );
}
