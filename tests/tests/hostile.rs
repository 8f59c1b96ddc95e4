//! The hostile relay: real clients (the client library) talk to a real relay through an
//! intercepting proxy that the test controls ([`sealdesk_tests::proxy`]). The proxy drops,
//! withholds, reorders, duplicates, replays and tampers frames; substitutes cards, policies and
//! agent certificates; adds members to epoch records; swaps or strips escrow blobs; replays old
//! epoch records; serves rolled-back, truncated and forked audit logs; forges and re-delivers
//! release notices; confuses frame types; and alters what trustees are asked to release.
//!
//! Every test checks that the client (or trustee) detects the attack and refuses it with a named
//! error or a recorded verdict, and that forged content never appears in the timeline as
//! genuine. `SECURITY.md` maps each attack to its test and the observed result.
//!
//! Hermetic: loopback only, temporary directories, the fast test KDF. No timing assertions: the
//! only waits are generous bounds ([`STEP`]) that keep a broken test from hanging.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{sync::Arc, time::Duration};

use sealdesk_client::handoff::HandOffOutcome;
use sealdesk_client::{
    Account, Client, ClientError,
    account::{EpochStatus, LogEntry},
    client::HistoryLine,
    escrow::consent::RevokeOutcome,
};
use sealdesk_protocol::{
    audit::{
        AuditEntry, AuditEvent, Cosignature, LogError, ReleaseBasis, SignedTreeHead,
        WITNESS_FRESHNESS_SECS,
    },
    card::Role,
    epoch::HandOff,
    ids::{ConversationId, EpochRange, TokenId},
    keys::{IdentityKeys, Signature},
    policy::{AgentCertificate, OrgPolicy, PolicyParams, VerifiedPolicy},
    release::{ConsentParams, ConsentToken, Justification, ReleaseRequest, Scope},
    secret::EpochSecret,
    wire::{Frame, Item, Push, ReleaseProgress, Request, Response, Sequenced},
};
use sealdesk_tests::{
    Identity, STEP,
    audit_log::{erasure_entry, served_entries},
    consent::revocation,
    copy_keys, eventually, now,
    proxy::{Ctx, Dir, Injector, LogForger, edit_items, is_item_push},
    transcript::release,
    withhold::withhold_with,
    world::{
        MASTER, ORG, PASS, Via, World, assert_nothing_released, carol_caught_up, open_chat,
        released_once, spec, texts,
    },
};

// ---- hooks ---------------------------------------------------------------------------------

/// A hook that applies `edit` to every conversation item delivered to `victim` (pages of
/// `History` and pushed items alike) and passes everything else through.
fn edit_for(
    victim: &'static str,
    mut edit: impl FnMut(&mut Sequenced) + Send + 'static,
) -> impl FnMut(&Ctx<'_>, Frame) -> Vec<Frame> + Send + 'static {
    move |ctx, frame| {
        if ctx.dir == Dir::ToClient && ctx.account == Some(victim) {
            vec![edit_items(frame, &mut edit)]
        } else {
            vec![frame]
        }
    }
}

/// A hook that delivers `item` to `victim` in place of item `seq` of `conv`: the relay reuses a
/// sequence number it owns to slip in something of its choosing.
fn replace_for(
    victim: &'static str,
    conv: ConversationId,
    seq: u64,
    item: Item,
) -> impl FnMut(&Ctx<'_>, Frame) -> Vec<Frame> + Send + 'static {
    edit_for(victim, move |s| {
        if s.conversation == conv && s.seq == seq {
            s.item = item.clone();
        }
    })
}

/// A hook that rewrites the relay's answers to `victim` with `answer(request, response)`.
fn answer_for(
    victim: &'static str,
    mut answer: impl FnMut(&Request, Response) -> Response + Send + 'static,
) -> impl FnMut(&Ctx<'_>, Frame) -> Vec<Frame> + Send + 'static {
    move |ctx, frame| match (ctx.account, ctx.request, frame) {
        (Some(a), Some(req), Frame::Response { id, body }) if a == victim => {
            vec![Frame::Response {
                id,
                body: answer(req, body),
            }]
        }
        (_, _, frame) => vec![frame],
    }
}

// ---- reading the timeline ------------------------------------------------------------------

fn lines(c: &Client, conv: &ConversationId) -> Vec<HistoryLine> {
    c.history(conv).unwrap().lines
}

/// The reasons of the rejected (never shown) messages.
fn rejected(c: &Client, conv: &ConversationId) -> Vec<String> {
    lines(c, conv)
        .into_iter()
        .filter_map(|l| match l {
            HistoryLine::Item {
                entry: LogEntry::Rejected { reason, .. },
                ..
            } => Some(reason),
            _ => None,
        })
        .collect()
}

/// The gaps shown: (sender, missing counters).
fn gaps(c: &Client, conv: &ConversationId) -> Vec<(String, Vec<u64>)> {
    lines(c, conv)
        .into_iter()
        .filter_map(|l| match l {
            HistoryLine::Gap {
                sender, counters, ..
            } => Some((
                sender,
                counters.into_iter().flat_map(|(a, b)| a..=b).collect(),
            )),
            _ => None,
        })
        .collect()
}

/// The notices shown: (audit index, text, verified).
fn notices(c: &Client, conv: &ConversationId) -> Vec<(u64, String, bool)> {
    lines(c, conv)
        .into_iter()
        .filter_map(|l| match l {
            HistoryLine::Item {
                entry:
                    LogEntry::Notice {
                        index,
                        text,
                        verified,
                        ..
                    },
                ..
            } => Some((index, text, verified)),
            _ => None,
        })
        .collect()
}

/// The epoch entries of the timeline: (epoch, verdict).
fn epoch_entries(c: &Client, conv: &ConversationId) -> Vec<(u32, EpochStatus)> {
    lines(c, conv)
        .into_iter()
        .filter_map(|l| match l {
            HistoryLine::Item {
                entry: LogEntry::Epoch { epoch, status, .. },
                ..
            } => Some((epoch, status)),
            _ => None,
        })
        .collect()
}

fn status(c: &Client, conv: &ConversationId, epoch: u32) -> EpochStatus {
    c.account().epoch(conv, epoch).unwrap().unwrap().status
}

fn refused_because(st: &EpochStatus, why: &str) {
    match st {
        EpochStatus::Refused(reason) => assert!(reason.contains(why), "{reason}"),
        other => panic!("epoch accepted ({other:?}); expected a refusal for {why:?}"),
    }
}

/// Every item of a conversation, fetched by `c` (a member connected directly).
async fn items(c: &Client, conv: &ConversationId) -> Vec<Sequenced> {
    match c
        .session()
        .request(Request::History {
            conversation: *conv,
            after: 0,
            limit: 200,
        })
        .await
        .unwrap()
    {
        Response::Items { items, more, .. } => {
            assert!(!more);
            items
        }
        other => panic!("{other:?}"),
    }
}

fn item_at(items: &[Sequenced], seq: u64) -> Item {
    items
        .iter()
        .find(|s| s.seq == seq)
        .map(|s| s.item.clone())
        .expect("item at seq")
}

/// Handles `c`'s pushes (as its event loop would) until one `stop` accepts has been handled.
async fn handle_pushes_until(c: &mut Client, mut stop: impl FnMut(&Push) -> bool) {
    loop {
        let push = tokio::time::timeout(STEP, c.session().next_push())
            .await
            .expect("timed out waiting for a push")
            .expect("the connection closed");
        let last = stop(&push);
        // A push about no conversation comes back to the caller's loop to route; these tests
        // only wait for it.
        if let Err(other) = c.handle_push(push).await.unwrap() {
            assert!(last, "an unexpected push: {other:?}");
        }
        if last {
            return;
        }
    }
}

/// An identity the hostile relay made up (cards are self-signed: anyone can make one).
fn impostor(seed: u64, name: &str, role: Role) -> Identity {
    Identity::new(seed, name, role)
}

/// A policy for the same org (same trustees, arbiters and version) signed by `master`.
fn policy_signed_by(real: &VerifiedPolicy, master: &Identity) -> VerifiedPolicy {
    let mut params = PolicyParams::new(
        &real.org,
        real.trustees.clone(),
        real.trustee_threshold,
        real.arbiters.clone(),
        real.arbiter_threshold,
    );
    params.version = real.version;
    OrgPolicy::issue(&master.keys, &master.card, params, now()).unwrap()
}

fn flip(sig: &Signature) -> Signature {
    let mut b = sig.to_bytes();
    b[0] ^= 1;
    Signature::from_bytes(&b).unwrap()
}

/// Customer carol (connected `via`) in a new chat where she said `said`, and the full consent
/// (an hour, "review") she granted for it.
async fn consenting_carol(
    w: &World,
    via: Via,
    said: &str,
) -> (Client, ConversationId, ConsentToken) {
    let mut carol = w.user_via("carol", Role::Customer, via).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, said).await.unwrap();
    let token = carol
        .grant_consent(&conv, None, Scope::Full, 3600, "review")
        .await
        .unwrap();
    (carol, conv, token)
}

/// Has the proxy serve `forger`'s audit log (and its proofs and heads) to every account.
fn forge_log(w: &World, forger: &Arc<LogForger>) {
    let f = Arc::clone(forger);
    w.proxy()
        .set_hook(move |ctx, frame| vec![f.rewrite(ctx, frame)]);
}

/// As [`forge_log`], and carol is delivered `entry` (at index `index` of the forged log) as a
/// notice in `conv` in place of item `seq`.
fn forge_log_with_notice(
    w: &World,
    forger: &Arc<LogForger>,
    conv: ConversationId,
    seq: u64,
    entry: AuditEntry,
    index: u64,
) {
    let f = Arc::clone(forger);
    let mut replace = replace_for("carol", conv, seq, Item::Notice { entry, index });
    w.proxy().set_hook(move |ctx, frame| {
        let frame = f.rewrite(ctx, frame);
        replace(ctx, frame)
    });
}

// ---- drop, reorder, duplicate, replay, tamper ---------------------------------------------

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

// ---- substituted keys, cards, policies, certificates ---------------------------------------

/// The relay answers a card lookup with a card of its own under a pinned name: the master's
/// renewal of alice's certificate and its new policy version are refused with `KeyChanged`,
/// and nothing is certified or published for the relay's keys.
#[tokio::test]
async fn substituted_card_in_a_lookup_is_refused_against_the_pin() {
    let w = World::with_proxy().await;
    drop(w.org_master(&["alice"], None).await.close().await);
    let fake_alice = impostor(9_002, "alice", Role::Agent);
    let fake_trustee = impostor(9_003, "trustee-1", Role::Trustee);
    let (a, t) = (fake_alice.card(), fake_trustee.card());
    w.proxy()
        .set_hook(answer_for(MASTER, move |req, body| match req {
            Request::GetCard { name } if name == "alice" => Response::Card(a.clone()),
            Request::GetCard { name } if name == "trustee-1" => Response::Card(t.clone()),
            _ => body,
        }));
    let mut master = w.reopen_via(MASTER, Via::Proxy).await;
    let err = master.add_agent(ORG, "alice").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::KeyChanged { name } if name == "alice"),
        "{err}"
    );
    let err = master.create_org(&spec(None, Some(30))).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::KeyChanged { name } if name == "trustee-1"),
        "{err}"
    );
    assert_eq!(
        w.proxy().requests_sent(MASTER, |r| matches!(
            r,
            Request::PublishCertificate(_) | Request::PublishPolicy(_)
        )),
        0
    );
    assert!(master.account().peer_blocked("alice").unwrap());
}

/// The relay substitutes a new agent's card on the master's *first* lookup, before anything is
/// pinned. The master has no fingerprint to check it against and is not warned, so it would
/// certify the relay's key as an agent of its org (and the relay, which assigns conversations,
/// could then be handed customers' epoch keys). The master must not certify a key it could not
/// check: it must refuse, or check a fingerprint given out of band.
#[tokio::test]
async fn card_substituted_on_the_masters_first_lookup_is_not_certified() {
    let w = World::with_proxy().await;
    drop(w.org_master(&[], None).await.close().await);
    let dave = w.user_via("dave", Role::Agent, Via::Relay).await;
    let real_key = dave.account().keys().signing_public();
    // What dave reads from `sealdesk whoami` and tells the master out of band.
    let real_fp = sealdesk_protocol::keys::Fingerprint::of(
        &real_key,
        &dave.account().keys().agreement_public(),
    )
    .to_string();
    dave.close().await;
    let fake = impostor(9_014, "dave", Role::Agent).card();
    w.proxy()
        .set_hook(answer_for(MASTER, move |req, body| match req {
            Request::GetCard { name } if name == "dave" => Response::Card(fake.clone()),
            _ => body,
        }));
    let mut master = w.reopen_via(MASTER, Via::Proxy).await;
    match master.add_agent_checked(ORG, "dave", Some(&real_fp)).await {
        Err(ClientError::CardFingerprintMismatch { name, .. }) => assert_eq!(name, "dave"),
        Ok(cert) => assert_eq!(
            cert.agent.signing_key, real_key,
            "the master certified the relay's key as agent dave"
        ),
        Err(e) => panic!("expected CardFingerprintMismatch, got {e}"),
    }
}

/// The relay pushes a made-up card for the conversation's customer to the agent: the pinned
/// key's change is recorded and blocks sending with `KeyChanged` until the agent accepts it.
#[tokio::test]
async fn substituted_customer_card_blocks_the_agent_from_sending() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap(); // pins carol from epoch 0
    let fake = impostor(9_004, "carol", Role::Customer);
    let push = Frame::Push(Push::Assigned {
        conversation: conv,
        customer: fake.card(),
    });
    assert_eq!(w.proxy().inject_to_client("alice", &push), 1);
    handle_pushes_until(&mut alice, |p| matches!(p, Push::Assigned { .. })).await;
    let err = alice.send_text(&conv, "reply").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::KeyChanged { name } if name == "carol"),
        "{err}"
    );
    assert_eq!(texts(&alice, &conv), ["carol: hello"]);
}

/// The relay serves an org policy signed by a master key of its own: refused with
/// `OrgKeyChanged` against the pin, and with `FingerprintMismatch` on a first contact made with
/// the fingerprint the business published. No epoch is opened under it.
#[tokio::test]
async fn substituted_policy_with_another_master_is_refused() {
    let w = World::with_proxy().await;
    let master = w.org_master(&["alice"], None).await;
    let fingerprint = master.account().fingerprint().to_string();
    let mut carol = w.user_via("carol", Role::Customer, Via::Proxy).await;
    carol.open_conversation(ORG, None).await.unwrap(); // pins the real master
    let real = carol.latest_policy(ORG).await.unwrap();
    let fake_master = impostor(9_005, MASTER, Role::Master);
    let fake = policy_signed_by(&real, &fake_master).policy().clone();
    let substitute = move |_: &Request, body| match body {
        Response::Opened {
            agent, certificate, ..
        } => Response::Opened {
            agent,
            certificate,
            policy: fake.clone(),
            quota: None,
        },
        Response::Policy(_) => Response::Policy(fake.clone()),
        other => other,
    };
    w.proxy().set_hook({
        let mut c = answer_for("carol", substitute.clone());
        let mut d = answer_for("dan", substitute);
        move |ctx, f| match ctx.account {
            Some("dan") => d(ctx, f),
            _ => c(ctx, f),
        }
    });
    let err = carol.open_conversation(ORG, None).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::OrgKeyChanged { org, .. } if org == ORG),
        "{err}"
    );
    let err = carol.latest_policy(ORG).await.unwrap_err();
    assert!(matches!(err, ClientError::OrgKeyChanged { .. }), "{err}");
    let pin = carol.account().org_pin(ORG).unwrap().unwrap();
    assert_eq!(pin.master.signing_key, real.master_key());
    let epochs_put = w
        .proxy()
        .requests_sent("carol", |r| matches!(r, Request::PutEpoch(_)));
    assert_eq!(epochs_put, 1, "only the genuine first conversation");

    let mut dan = w.user_via("dan", Role::Customer, Via::Proxy).await;
    let err = dan
        .open_conversation(ORG, Some(&fingerprint))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::FingerprintMismatch { .. }),
        "{err}"
    );
    assert!(dan.account().org_pin(ORG).unwrap().is_none());
}

/// The relay serves an older policy version (genuinely signed by the master) as the latest,
/// after the customer has already used a newer one: a rollback to the old trustee set must be
/// refused, not used for the next epoch.
#[tokio::test]
async fn policy_rollback_to_an_older_version_is_refused() {
    let w = World::with_proxy().await;
    let mut master = w.org_master(&["alice"], Some(2)).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Proxy).await;
    let conv = open_chat(&mut carol).await;
    let v1 = master.policy(ORG, 1).await.unwrap().policy().clone();
    let v2 = master.create_org(&spec(Some(2), Some(30))).await.unwrap();
    assert_eq!(v2.version, 2);
    for t in ["m0", "m1", "m2"] {
        carol.send_text(&conv, t).await.unwrap();
    }
    let e1 = carol.account().epoch(&conv, 1).unwrap().unwrap();
    assert_eq!(
        e1.record.policy_version, 2,
        "rotation used the newest policy"
    );

    w.proxy()
        .set_hook(answer_for("carol", move |req, body| match req {
            Request::GetPolicy { version: None, .. } => Response::Policy(v1.clone()),
            _ => body,
        }));
    carol.send_text(&conv, "m3").await.unwrap();
    let rotated = carol.send_text(&conv, "m4").await;
    let rolled_back = w.proxy().requests_sent(
        "carol",
        |r| matches!(r, Request::PutEpoch(r) if r.epoch > 0 && r.policy_version < 2),
    ) > 0;
    assert!(
        !rolled_back,
        "carol opened an epoch under policy v1 after using v2 (send: {rotated:?})"
    );
    let err = rotated.unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::PolicyRollback { org, served: 1, seen: 2 } if org == ORG
        ),
        "{err}"
    );
}

/// The relay assigns an agent of its own with a certificate it signed itself, and answers an
/// agent's certificate lookup during a transfer the same way: refused (`bad signature on agent
/// certificate`, or the card not matching the certificate) before anything is sealed to it.
#[tokio::test]
async fn forged_agent_certificate_is_refused() {
    let w = World::with_proxy().await;
    let mut master = w.org_master(&["alice"], None).await;
    let real = master.latest_policy(ORG).await.unwrap();
    let fake_master = impostor(9_006, MASTER, Role::Master);
    let fake_policy = policy_signed_by(&real, &fake_master);
    let fake_alice = impostor(9_007, "alice", Role::Agent);
    let fake_dave = impostor(9_008, "dave", Role::Agent);
    let cert_of = |who: &Identity| {
        AgentCertificate::issue(
            &fake_master.keys,
            &fake_policy,
            &who.card,
            now() - 60,
            86_400,
        )
        .unwrap()
    };
    let (alice_cert, dave_cert) = (cert_of(&fake_alice), cert_of(&fake_dave));
    let alice_card = fake_alice.card();

    // A relay-made agent with a relay-signed certificate.
    let mut carol = w.user_via("carol", Role::Customer, Via::Proxy).await;
    let (card, cert) = (alice_card.clone(), alice_cert.clone());
    w.proxy()
        .set_hook(answer_for("carol", move |_, body| match body {
            Response::Opened { policy, .. } => Response::Opened {
                agent: card.clone(),
                certificate: cert.clone(),
                policy,
                quota: None,
            },
            other => other,
        }));
    let err = carol.open_conversation(ORG, None).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("bad signature on agent certificate"),
        "{err}"
    );
    // The genuine certificate, with the relay's card for the agent.
    let card = alice_card.clone();
    w.proxy()
        .set_hook(answer_for("carol", move |_, body| match body {
            Response::Opened {
                certificate,
                policy,
                ..
            } => Response::Opened {
                agent: card.clone(),
                certificate,
                policy,
                quota: None,
            },
            other => other,
        }));
    let err = carol.open_conversation(ORG, None).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::UnexpectedResponse(m) if m.contains("does not match its certificate")),
        "{err}"
    );
    assert_eq!(
        w.proxy()
            .requests_sent("carol", |r| matches!(r, Request::PutEpoch(_))),
        0
    );

    // A transfer to dave, whose certificate lookup the relay answers with its own.
    w.proxy().passthrough();
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();
    w.user_via("dave", Role::Agent, Via::Relay)
        .await
        .close()
        .await;
    master.add_agent(ORG, "dave").await.unwrap();
    w.proxy()
        .set_hook(answer_for("alice", move |req, body| match req {
            Request::GetCertificate { agent, .. } if agent == "dave" => {
                Response::Certificate(dave_cert.clone())
            }
            _ => body,
        }));
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    let err = alice.transfer(&conv, "dave").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("bad signature on agent certificate"),
        "{err}"
    );
    assert_eq!(
        w.proxy().requests_sent("alice", |r| matches!(
            r,
            Request::Transfer { .. } | Request::PutEpoch(_) | Request::PutHandOff(_)
        )),
        0
    );
}

// ---- epoch records and escrow --------------------------------------------------------------

/// The relay adds a member of its own to epoch records: as delivered (signature broken), and
/// re-signed with its own key as the creator. The agent refuses both epochs and every message
/// in them and cannot send; the customer refuses its own epoch read back modified.
#[tokio::test]
async fn member_added_to_an_epoch_record_is_refused() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let a = open_chat(&mut carol).await;
    let b = open_chat(&mut carol).await;
    carol.send_text(&a, "hello a").await.unwrap();
    carol.send_text(&b, "hello b").await.unwrap();
    let spy = impostor(9_009, "mallory", Role::Agent);
    let spy_card = spy.card();
    let spy_keys = spy.keys;
    w.proxy().set_hook(move |ctx, frame| {
        if ctx.dir != Dir::ToClient {
            return vec![frame];
        }
        vec![edit_items(frame, |s| {
            if let Item::Epoch(r) = &mut s.item {
                r.members.push(spy_card.clone());
                r.sealed_secrets.push(r.sealed_secrets[0].clone());
                if s.conversation == b {
                    r.creator = spy_keys.signing_public();
                    r.signature = spy_keys.sign(&r.signed_bytes());
                }
            }
        })]
    });
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    refused_because(&status(&alice, &a, 0), "bad signature on epoch record");
    refused_because(&status(&alice, &b, 0), "created by the customer");
    for (conv, text) in [(a, "hello a"), (b, "hello b")] {
        assert!(texts(&alice, &conv).is_empty(), "{text} shown");
        let r = rejected(&alice, &conv);
        assert!(r.len() == 1 && r[0].contains("was refused"), "{r:?}");
        let err = alice.send_text(&conv, "reply").await.unwrap_err();
        assert!(
            matches!(&err, ClientError::CannotSend { reason, .. } if reason.contains("refused")),
            "{err}"
        );
    }
    assert!(!alice.account().peer_blocked("mallory").unwrap());

    let mut erin = w.user_via("erin", Role::Customer, Via::Proxy).await;
    let err = erin.open_conversation(ORG, None).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::EpochRefused { epoch: 0, reason, .. } if reason.contains("bad signature")),
        "{err}"
    );
}

/// The relay swaps two trustees' escrow blobs, strips one, or (with a cheating customer who
/// re-signs) swaps blobs and replaces the master's: refused by the signature, by the structure
/// check, and by the byte-for-byte escrow recomputation (`EscrowMismatch`).
#[tokio::test]
async fn swapped_or_stripped_escrow_blobs_are_refused() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let mut convs = Vec::new();
    for i in 0..4 {
        let c = open_chat(&mut carol).await;
        carol.send_text(&c, &format!("secret {i}")).await.unwrap();
        convs.push(c);
    }
    let carol_keys = copy_keys(carol.account().keys());
    let targets = convs.clone();
    w.proxy().set_hook(edit_for("alice", move |s| {
        let Item::Epoch(r) = &mut s.item else { return };
        match targets.iter().position(|c| *c == s.conversation) {
            Some(0) => r.escrow.trustees.swap(0, 1),
            Some(1) => {
                r.escrow.trustees.pop();
            }
            Some(2) => {
                r.escrow.trustees.swap(0, 1);
                r.signature = carol_keys.sign(&r.signed_bytes());
            }
            Some(3) => {
                r.escrow.master = r.escrow.trustees[0].clone();
                r.signature = carol_keys.sign(&r.signed_bytes());
            }
            _ => {}
        }
    }));
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    refused_because(
        &status(&alice, &convs[0], 0),
        "bad signature on epoch record",
    );
    refused_because(
        &status(&alice, &convs[1], 0),
        "one escrow share per trustee",
    );
    refused_because(
        &status(&alice, &convs[2], 0),
        "does not match the recomputation",
    );
    refused_because(
        &status(&alice, &convs[3], 0),
        "does not match the recomputation",
    );
    for c in &convs {
        assert!(texts(&alice, c).is_empty());
        assert!(alice.account().secret(c, 0).unwrap().is_none());
        // Refused for the refused epoch, not for any failure.
        let err = alice.send_text(c, "reply").await.unwrap_err();
        assert!(
            matches!(&err, ClientError::CannotSend { conversation, reason }
                if *conversation == c.to_string() && reason.contains("epoch 0 was refused")),
            "{err}"
        );
    }
}

/// The relay replays the conversation's old epoch-0 record as a new item, and an epoch record
/// of another conversation: both refused ("a second record for epoch 0", wrong conversation),
/// the epochs in force are untouched and the conversation goes on.
#[tokio::test]
async fn old_epoch_record_replayed_as_new_is_refused() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], Some(3)).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    let other = open_chat(&mut carol).await;
    for i in 0..4 {
        carol.send_text(&conv, &format!("m{i}")).await.unwrap(); // m3 opens epoch 1
    }
    assert!(carol.account().epoch(&conv, 1).unwrap().is_some());
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    let all = items(&carol, &conv).await;
    let e0 = all
        .iter()
        .find(|s| matches!(&s.item, Item::Epoch(r) if r.epoch == 0))
        .unwrap()
        .item
        .clone();
    let foreign = items(&carol, &other)
        .await
        .into_iter()
        .find(|s| matches!(s.item, Item::Epoch(_)))
        .unwrap()
        .item;
    let next = carol.meta(&conv).unwrap().cursor + 1;
    w.proxy().set_hook({
        let mut first = replace_for("alice", conv, next, e0);
        let mut second = replace_for("alice", conv, next + 1, foreign);
        move |ctx, f| {
            let f = first(ctx, f).pop().unwrap();
            second(ctx, f)
        }
    });
    assert_eq!(carol.send_text(&conv, "carrier 1").await.unwrap(), next);
    assert_eq!(carol.send_text(&conv, "carrier 2").await.unwrap(), next + 1);
    alice.sync_all().await.unwrap();
    let log = epoch_entries(&alice, &conv);
    assert_eq!(log.len(), 4, "{log:?}");
    refused_because(&log[2].1, "a second record for epoch 0");
    refused_because(&log[3].1, "another conversation");
    assert_eq!(status(&alice, &conv, 0), EpochStatus::Member);
    assert_eq!(status(&alice, &conv, 1), EpochStatus::Member);

    w.proxy().passthrough();
    alice.send_text(&conv, "still here").await.unwrap();
    carol.send_text(&conv, "after").await.unwrap();
    alice.sync_all().await.unwrap();
    let t = texts(&alice, &conv);
    assert_eq!(
        t,
        [
            "carol: m0",
            "carol: m1",
            "carol: m2",
            "carol: m3",
            "alice: still here",
            "carol: after"
        ]
    );
}

// ---- the audit log --------------------------------------------------------------------------

/// Sets up carol behind a [`LogForger`] with `n` consent revocations in the log, her tree head
/// pinned. Returns the world, carol, the forger and the log's entries.
async fn audited_customer(n: usize) -> (World, Client, Arc<LogForger>, Vec<AuditEntry>) {
    let relay_keys = IdentityKeys::generate(&mut sealdesk_tests::rng(9_100));
    let w = World::with_relay_keys(&relay_keys).await;
    let _master = w.org_master(&["alice"], None).await;
    let forger = LogForger::with_keys(relay_keys);
    forge_log(&w, &forger);
    let mut carol = w.user_via("carol", Role::Customer, Via::Proxy).await;
    let conv = open_chat(&mut carol).await;
    for i in 0..n {
        let t = carol
            .grant_consent(&conv, None, Scope::Full, 3600, &format!("c{i}"))
            .await
            .unwrap();
        carol.revoke_consent(&t.id).await.unwrap();
    }
    witnesses_cosign(&w).await;
    let report = carol.audit(None, true).await.unwrap();
    let entries = served_entries(&carol, 100).await;
    assert_eq!(report.size, entries.len() as u64);
    assert!(report.size >= n as u64);
    assert!(!report.entries.is_empty());
    assert!(report.entries.iter().all(|e| e.included == Some(true)));
    (w, carol, forger, entries)
}

/// The relay serves an older state of the log (re-signed), then keeps the head but withholds
/// the tail of the entries: "the audit log shrank", and a short listing, both refused; the
/// pinned head is kept, and the honest log is accepted again afterwards.
#[tokio::test]
async fn rolled_back_or_truncated_audit_log_is_detected() {
    let (w, mut carol, forger, entries) = audited_customer(3).await;
    let n = entries.len();

    forger.serve(entries[..n - 2].to_vec());
    let err = carol.audit(None, false).await.unwrap_err();
    assert!(err.to_string().contains("shrank"), "{err}");

    forger.mirror();
    let f = Arc::clone(&forger);
    let cut = n as u64 - 1;
    w.proxy().set_hook(move |ctx, frame| {
        let mut frame = f.rewrite(ctx, frame);
        if let Frame::Response {
            body: Response::Entries { from, entries, .. },
            ..
        } = &mut frame
        {
            entries.truncate(cut.saturating_sub(*from) as usize);
        }
        vec![frame]
    });
    let err = carol.audit(None, false).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::UnexpectedResponse(m) if m.contains("audit entries")),
        "{err}"
    );

    forge_log(&w, &forger);
    let report = carol.audit(None, true).await.unwrap();
    assert_eq!(report.size, n as u64);
    assert_eq!(report.consistent_with_pinned, Some(true));
}

/// The relay rewrites an entry in the middle of the log: at the same size ("forked"), and
/// with an extra entry on top (the consistency proof fails: "not an extension").
#[tokio::test]
async fn forked_audit_log_is_detected() {
    let (_w, mut carol, forger, entries) = audited_customer(3).await;
    let conv = carol.account().conversations().unwrap()[0].id;
    let forged = erasure_entry(forger.keys(), conv, "customer request", now());
    let mut fork = entries.clone();
    fork[1] = forged.clone();
    forger.serve(fork.clone());
    let err = carol.audit(None, false).await.unwrap_err();
    assert!(err.to_string().contains("forked"), "{err}");

    fork.push(forged);
    forger.serve(fork);
    let err = carol.audit(None, false).await.unwrap_err();
    assert!(err.to_string().contains("not an extension"), "{err}");

    forger.mirror();
    assert_eq!(
        carol.audit(None, false).await.unwrap().size,
        entries.len() as u64
    );
}

// ---- release notices ------------------------------------------------------------------------

/// A release entry signed by someone who is not a trustee (the relay's own key).
fn forged_release(signer: &IdentityKeys, conv: ConversationId, master: &Client) -> AuditEntry {
    let mut r = sealdesk_client::rng().unwrap();
    AuditEntry::sign(
        signer,
        AuditEvent::Release {
            org: ORG.into(),
            request_hash: [7; 32],
            conversation: conv,
            epochs: EpochRange::new(0, 0).unwrap(),
            basis: ReleaseBasis::Consent {
                id: TokenId::random(&mut r),
                scope: Scope::Full,
                issued_at: now(),
            },
            master: master.account().keys().signing_public(),
        },
        now(),
    )
}

/// The relay slips a release notice it signed itself into the conversation: not in the log,
/// so its inclusion proof fails and it is shown marked "not genuine".
#[tokio::test]
async fn forged_release_notice_is_not_shown_as_genuine() {
    let w = World::with_proxy().await;
    let master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Proxy).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();
    let mut alice = w.reopen_via("alice", Via::Relay).await;
    alice.sync_all().await.unwrap();
    let relay_keys = impostor(9_010, "relay", Role::Agent).keys;
    let forged = forged_release(&relay_keys, conv, &master);
    let next = carol.meta(&conv).unwrap().cursor + 1;
    w.proxy().set_hook(replace_for(
        "carol",
        conv,
        next,
        Item::Notice {
            entry: forged,
            index: 0,
        },
    ));
    assert_eq!(alice.send_text(&conv, "carrier").await.unwrap(), next);
    carol.sync_all().await.unwrap();
    let n = notices(&carol, &conv);
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(
        !n[0].2 && n[0].1.to_lowercase().contains("not genuine"),
        "{n:?}"
    );
}

/// The relay appends a release entry signed by a non-trustee to its own log (it holds the log
/// key), with valid proofs, and delivers it as a notice: the entry must still not be shown as a
/// genuine opening, because no trustee of the org signed it.
#[tokio::test]
async fn forged_release_notice_in_a_relay_extended_log_is_not_shown_as_genuine() {
    let w = World::with_proxy().await;
    let master = w.org_master(&["alice"], None).await;
    let forger = LogForger::new(9_101);
    forge_log(&w, &forger);
    let mut carol = w.user_via("carol", Role::Customer, Via::Proxy).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();
    let size = carol.audit(None, false).await.unwrap().size;
    let real = served_entries(&carol, 100).await;
    assert_eq!(real.len() as u64, size);
    let forged = forged_release(forger.keys(), conv, &master);
    let probe = forged.clone();
    let mut log = real;
    log.push(forged.clone());
    forger.serve(log);
    let mut alice = w.reopen_via("alice", Via::Relay).await;
    alice.sync_all().await.unwrap();
    let next = carol.meta(&conv).unwrap().cursor + 1;
    forge_log_with_notice(&w, &forger, conv, next, forged, size);
    assert_eq!(alice.send_text(&conv, "carrier").await.unwrap(), next);
    carol.sync_all().await.unwrap();
    let n = notices(&carol, &conv);
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(
        !n[0].2,
        "a non-trustee's release entry shown as genuine: {n:?}"
    );
    // It failed for who signed it, not for want of a proof: the served log does include it.
    let (head, consistent) = carol.checked_tree_head().await.unwrap();
    assert_eq!((head.size, consistent), (size + 1, Some(true)));
    carol.check_inclusion(&probe, size, &head).await.unwrap();
}

/// Trustees that answer whatever is pending now (a request already submitted); returns each
/// one's outcomes.
async fn trustees_answer(w: &World, names: &[&str], via: Via) -> Vec<Vec<String>> {
    let mut outcomes = Vec::new();
    for n in names {
        let mut t = w.reopen_via(n, via).await;
        outcomes.push(
            t.trustee_pending()
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.outcome)
                .collect(),
        );
        t.close().await;
    }
    outcomes
}

/// After a genuine release, the relay delivers one of its notices again as a new item: the
/// customer must not be shown a second opening (it may show it marked as a duplicate).
#[tokio::test]
async fn redelivered_release_notice_is_not_shown_as_a_new_opening() {
    let w = World::with_proxy().await;
    let mut master = w.org_master(&["alice"], None).await;
    let (mut carol, conv, token) = consenting_carol(&w, Via::Proxy, "my card is 4111").await;
    release(&w, &mut master, conv, Justification::Consent(token)).await;
    carol.sync_all().await.unwrap();
    let before = notices(&carol, &conv);
    assert_eq!(before.len(), 1, "one release, one notice: {before:?}");
    assert!(before.iter().all(|(_, _, v)| *v));
    let old = items(&master, &conv)
        .await
        .into_iter()
        .find(|s| matches!(s.item, Item::Notice { .. }))
        .unwrap()
        .item;
    let mut alice = w.reopen_via("alice", Via::Relay).await;
    alice.sync_all().await.unwrap();
    let next = carol.meta(&conv).unwrap().cursor + 1;
    w.proxy().set_hook(replace_for("carol", conv, next, old));
    assert_eq!(alice.send_text(&conv, "carrier").await.unwrap(), next);
    carol.sync_all().await.unwrap();
    let after = notices(&carol, &conv);
    assert_eq!(
        after.len(),
        1,
        "the re-delivered notice was shown as a new opening: {after:?}"
    );
    assert_eq!(
        after[0].1,
        before[0].1.clone() + " — 1 repeat(s) of an entry already counted: not a new opening"
    );
}

/// After a genuine release, the relay tampers with the shares it hands the master: the two
/// trustees' sealed shares swapped (their signatures no longer match), then one share replaced
/// by a copy of the other under the other trustee's name. The master opens nothing it cannot
/// verify, reconstructs nothing, and has no transcript.
#[tokio::test]
async fn master_refuses_tampered_released_shares() {
    let w = World::with_proxy().await;
    drop(w.org_master(&["alice"], None).await.close().await);
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "my card is 4111").await.unwrap();
    let swap = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let s = Arc::clone(&swap);
    w.proxy()
        .set_hook(answer_for(MASTER, move |_, body| match body {
            Response::Progress(mut p) if p.shares.len() >= 2 => {
                if s.load(std::sync::atomic::Ordering::Relaxed) {
                    let sealed = p.shares[0].sealed.clone();
                    p.shares[0].sealed = p.shares[1].sealed.clone();
                    p.shares[1].sealed = sealed;
                } else {
                    p.shares[1].sealed = p.shares[0].sealed.clone();
                    p.shares[1].signature = p.shares[0].signature;
                }
                Response::Progress(p)
            }
            other => other,
        }));
    let mut master = w.reopen_via(MASTER, Via::Proxy).await;
    for swapped in [true, false] {
        swap.store(swapped, std::sync::atomic::Ordering::Relaxed);
        let token = carol
            .grant_consent(&conv, None, Scope::Full, 3600, "review")
            .await
            .unwrap();
        let unlock = master.unlock(
            &conv,
            Justification::Consent(token),
            None,
            Duration::from_secs(20),
            |_| {},
        );
        let (r, outcomes) = w
            .serving(&["trustee-1", "trustee-2"], Via::Relay, unlock)
            .await;
        // The trustees released; the master is the one who must notice the swap.
        released_once(&outcomes);
        let err = r.unwrap_err();
        assert!(err.to_string().contains("secret sharing"), "{err}");
        assert_nothing_released(&master, &conv);
    }
}

// ---- protocol confusion and relay keys ------------------------------------------------------

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

/// On a later connection the relay announces another audit-log key: refused with
/// `RelayKeyChanged` before anything else happens.
#[tokio::test]
async fn changed_relay_log_key_is_refused() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let carol = w.user_via("carol", Role::Customer, Via::Proxy).await;
    drop(carol.close().await);
    let other = impostor(9_012, "relay", Role::Agent).key();
    w.proxy().set_hook(move |_, frame| match frame {
        Frame::Welcome(mut wl) => {
            wl.log_key = other;
            vec![Frame::Welcome(wl)]
        }
        f => vec![f],
    });
    let account = Account::open(&w.home("carol"), PASS).unwrap();
    let err = Client::connect(account, &w.proxy().url())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::RelayKeyChanged {
                what: "audit log",
                ..
            }
        ),
        "{err}"
    );
}

// ---- trustees -------------------------------------------------------------------------------

/// The master signs a release request for `token` and submits it to the trustees.
async fn submit_release(
    master: &Client,
    policy: &VerifiedPolicy,
    token: &ConsentToken,
) -> ReleaseRequest {
    let req = ReleaseRequest::sign(
        &mut sealdesk_client::rng().unwrap(),
        master.account().keys(),
        policy,
        token.epochs,
        Justification::Consent(token.clone()),
        now(),
    )
    .unwrap();
    match master
        .session()
        .request(Request::SubmitRelease(req.clone()))
        .await
        .unwrap()
    {
        Response::Ok => req,
        other => panic!("{other:?}"),
    }
}

/// The relay alters what trustees are asked to release: the master's request itself, an epoch
/// record's escrow, the record's customer (re-signed by the relay), or the records dropped.
/// Each trustee refuses with the named reason, never logs a release and never sends a share;
/// the master gets only refusals and the audit log does not grow.
#[tokio::test]
async fn trustee_refuses_altered_release_requests_and_epoch_records() {
    let w = World::with_proxy().await;
    let mut master = w.org_master(&["alice"], None).await;
    let (_carol, conv, token) = consenting_carol(&w, Via::Relay, "my card is 4111").await;
    let policy = master.latest_policy(ORG).await.unwrap();
    let log_before = master.checked_tree_head().await.unwrap().0.size;
    let fake = impostor(9_013, "carol", Role::Customer);
    let fake_card = fake.card();
    let fake_keys = fake.keys;
    let round = Arc::new(std::sync::atomic::AtomicU8::new(1));
    let r2 = Arc::clone(&round);
    w.proxy().set_hook(move |ctx, mut frame| {
        if ctx.dir != Dir::ToClient {
            return vec![frame];
        }
        let pending = match &mut frame {
            Frame::Response {
                body: Response::Releases(p),
                ..
            } => p.iter_mut().collect::<Vec<_>>(),
            Frame::Push(Push::Release(p)) => vec![p],
            _ => Vec::new(),
        };
        let second = r2.load(std::sync::atomic::Ordering::Relaxed) == 2;
        for p in pending {
            match (ctx.account, second) {
                (Some("trustee-1"), false) => {
                    p.request.epochs = EpochRange::new(0, 5).unwrap();
                }
                (Some("trustee-2"), _) => {
                    for r in &mut p.epochs {
                        r.escrow.trustees.swap(0, 1);
                    }
                }
                (Some("trustee-3"), _) => {
                    for r in &mut p.epochs {
                        r.members[0] = fake_card.clone();
                        r.creator = fake_keys.signing_public();
                        r.signature = fake_keys.sign(&r.signed_bytes());
                    }
                }
                (Some("trustee-1"), true) => p.epochs.clear(),
                _ => {}
            }
        }
        vec![frame]
    });

    let req = submit_release(&master, &policy, &token).await;
    let mut outcomes = Vec::new();
    for t in ["trustee-1", "trustee-2", "trustee-3"] {
        let mut c = w.reopen_via(t, Via::Proxy).await;
        let out = c.trustee_pending().await.unwrap();
        assert_eq!(out.len(), 1, "{t}: {out:?}");
        outcomes.push(out[0].outcome.clone());
        c.close().await;
    }
    round.store(2, std::sync::atomic::Ordering::Relaxed);
    let req2 = submit_release(&master, &policy, &token).await;
    let mut t1 = w.reopen_via("trustee-1", Via::Proxy).await;
    let out = t1.trustee_pending().await.unwrap();
    let o2 = out
        .iter()
        .find(|o| o.request == req2.id.to_string())
        .unwrap();
    outcomes.push(o2.outcome.clone());
    t1.close().await;

    let expected = [
        "the request is not signed by the org's master key",
        "bad signature on epoch record",
        "the consent is not signed by the conversation's customer",
        "no valid epoch record for epoch 0",
    ];
    for (got, want) in outcomes.iter().zip(expected) {
        assert!(got.starts_with("refused") && got.contains(want), "{got}");
    }
    for t in ["trustee-1", "trustee-2", "trustee-3"] {
        assert_eq!(
            w.proxy().requests_sent(t, |r| matches!(
                r,
                Request::SubmitShares { .. } | Request::AppendAudit(_)
            )),
            0,
            "{t} released or logged"
        );
    }
    for (r, refusals) in [(&req, 3), (&req2, 1)] {
        match master
            .session()
            .request(Request::ReleaseStatus { request: r.id })
            .await
            .unwrap()
        {
            Response::Progress(p) => {
                assert!(p.shares.is_empty());
                assert_eq!(p.refusals.len(), refusals, "{:?}", p.refusals);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(master.checked_tree_head().await.unwrap().0.size, log_before);
    assert_nothing_released(&master, &conv);
}

/// Beyond the relay alone: the master colludes with the relay. The relay serves the trustees an
/// epoch record whose customer is a key the master controls (re-signed by it, with the real
/// escrow blobs copied in), and the master presents a "consent" signed by that key. The trustees
/// must not release the real escrow shares without the real customer's consent.
#[tokio::test]
async fn consent_from_a_substituted_customer_does_not_open_the_chat() {
    let w = World::with_proxy().await;
    let mut master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "my card is 4111").await.unwrap();
    let policy = master.latest_policy(ORG).await.unwrap();
    let fake = impostor(9_015, "carol", Role::Customer);
    let token = ConsentToken::issue(
        &mut sealdesk_client::rng().unwrap(),
        &fake.keys,
        &policy,
        ConsentParams {
            conversation: conv,
            epochs: EpochRange::new(0, 0).unwrap(),
            scope: Scope::Full,
            purpose: "collusion".into(),
            valid_secs: 3600,
        },
        now(),
    )
    .unwrap();
    let fake_card = fake.card();
    let fake_keys = fake.keys;
    w.proxy().set_hook(move |ctx, mut frame| {
        let pending = match &mut frame {
            Frame::Response {
                body: Response::Releases(p),
                ..
            } => p.iter_mut().collect::<Vec<_>>(),
            Frame::Push(Push::Release(p)) => vec![p],
            _ => Vec::new(),
        };
        if ctx.dir == Dir::ToClient {
            for p in pending {
                for r in &mut p.epochs {
                    r.members[0] = fake_card.clone();
                    r.creator = fake_keys.signing_public();
                    r.signature = fake_keys.sign(&r.signed_bytes());
                }
            }
        }
        vec![frame]
    });
    let unlock = master.unlock(
        &conv,
        Justification::Consent(token),
        None,
        // A bound only: the unlock ends at the trustees' refusals (with 10 s, refusals later
        // than that on a loaded machine would read as `shares missing`).
        STEP,
        |_| {},
    );
    let (r, outcomes) = w
        .serving(&["trustee-1", "trustee-2"], Via::Proxy, unlock)
        .await;
    // Each trustee saw the altered request and refused it.
    for (name, o) in ["trustee-1", "trustee-2"].iter().zip(&outcomes) {
        assert!(
            !o.is_empty() && o.iter().all(|x| x.starts_with("refused")),
            "{name}: {o:?}"
        );
    }
    let err = match r {
        Ok(t) => panic!(
            "the master read the chat without the customer's consent: {:?}",
            t.messages.into_iter().map(|m| m.text).collect::<Vec<_>>()
        ),
        Err(e) => e,
    };
    assert!(
        err.to_string().contains("refused by too many trustees"),
        "{err}"
    );
    assert_nothing_released(&master, &conv);
}

// ---- history ordering: reordered pages, dropped items, refetch ------------------------------

/// Org `acme` (agent alice, `rotate` as [`World::org_master`]) and customer carol, connected
/// directly, in a new chat where she sent `n` messages "m0", "m1", …; with their sequence
/// numbers.
async fn carol_sends_numbered(
    w: &World,
    rotate: Option<u32>,
    n: usize,
) -> (Client, Client, ConversationId, Vec<u64>) {
    let master = w.org_master(&["alice"], rotate).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    let mut seqs = Vec::new();
    for i in 0..n {
        seqs.push(carol.send_text(&conv, &format!("m{i}")).await.unwrap());
    }
    (master, carol, conv, seqs)
}

/// A hook that rewrites the `History` pages served to `victim` with `page(items)` (sequence
/// numbers untouched), withholds its live item pushes (so only catch-up delivers), and passes
/// everything else through.
fn pages_for(
    victim: &'static str,
    mut page: impl FnMut(&mut Vec<Sequenced>) + Send + 'static,
) -> impl FnMut(&Ctx<'_>, Frame) -> Vec<Frame> + Send + 'static {
    withhold_with(victim, |_| true, move |items, _| page(items))
}

/// The relay lists two items of a history page the wrong way round (later sequence number
/// first): both are kept and shown in order, with no gap — neither is skipped as already seen.
#[tokio::test]
async fn swapped_items_in_a_history_page_are_both_shown_in_order() {
    let w = World::with_proxy().await;
    let (_master, _carol, conv, seqs) = carol_sends_numbered(&w, None, 4).await;
    let (s1, s2) = (seqs[1], seqs[2]);
    w.proxy().set_hook(pages_for("alice", move |items| {
        let a = items.iter().position(|s| s.seq == s1);
        let b = items.iter().position(|s| s.seq == s2);
        if let (Some(a), Some(b)) = (a, b) {
            items.swap(a, b);
        }
    }));
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    assert_eq!(
        texts(&alice, &conv),
        ["carol: m0", "carol: m1", "carol: m2", "carol: m3"]
    );
    assert!(gaps(&alice, &conv).is_empty(), "{:?}", gaps(&alice, &conv));
    assert!(rejected(&alice, &conv).is_empty());
    // The relay did swap them in what it sent.
    assert!(w.proxy().seen().iter().any(|seen| matches!(
        &seen.frame,
        Frame::Response { body: Response::Items { items, .. }, .. }
            if items.windows(2).any(|p| p[0].seq == s2 && p[1].seq == s1)
    )));
}

/// The relay leaves one item out of the history pages (and its push): the cursor moves past
/// it, the gap is shown, and every later sync asks for the gap's range again; once the relay
/// answers honestly the message is shown in its place and the gap closes.
#[tokio::test]
async fn dropped_item_is_a_gap_until_an_honest_refetch_closes_it() {
    let w = World::with_proxy().await;
    let (_master, mut carol, conv, seqs) = carol_sends_numbered(&w, None, 3).await;
    let s1 = seqs[1];
    let dropping = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let d = Arc::clone(&dropping);
    w.proxy().set_hook(pages_for("alice", move |items| {
        if d.load(std::sync::atomic::Ordering::SeqCst) {
            items.retain(|s| s.seq != s1);
        }
    }));
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    assert_eq!(texts(&alice, &conv), ["carol: m0", "carol: m2"]);
    assert_eq!(gaps(&alice, &conv), [("carol".to_owned(), vec![1])]);
    let cursor = alice.meta(&conv).unwrap().cursor;
    assert!(cursor > s1, "the cursor moved past the dropped item");

    // A sync that moves nothing does not ask again; one after a new message does, and the
    // gap stays while the relay still drops it.
    let below = |w: &World| {
        w.proxy()
            .history_afters("alice")
            .iter()
            .filter(|a| **a < s1)
            .count()
    };
    let asked = below(&w);
    alice.sync_all().await.unwrap();
    assert_eq!(
        below(&w),
        asked,
        "a refetch although the cursor did not move"
    );
    carol.send_text(&conv, "m3").await.unwrap();
    alice.sync_all().await.unwrap();
    assert!(below(&w) > asked, "no refetch of the gap's range");
    assert_eq!(gaps(&alice, &conv), [("carol".to_owned(), vec![1])]);

    // The relay answers honestly: the gap closes, the message is shown in order, once.
    dropping.store(false, std::sync::atomic::Ordering::SeqCst);
    carol.send_text(&conv, "m4").await.unwrap();
    alice.sync_all().await.unwrap();
    assert_eq!(
        texts(&alice, &conv),
        [
            "carol: m0",
            "carol: m1",
            "carol: m2",
            "carol: m3",
            "carol: m4"
        ]
    );
    assert!(gaps(&alice, &conv).is_empty());
    assert!(rejected(&alice, &conv).is_empty());
    alice.sync_all().await.unwrap();
    assert_eq!(texts(&alice, &conv).len(), 5);
}

/// A message of an epoch that has since rotated is dropped for good. However many syncs
/// follow (each after a new message, so the cursor moves), the gap's range is asked for at
/// most `REFETCH_LIMIT` times, never beyond the next epoch's record; then the gap stays shown
/// as not delivered after that many requests.
#[tokio::test]
async fn refetch_of_a_gap_in_a_rotated_epoch_is_bounded() {
    use sealdesk_client::client::REFETCH_LIMIT;
    let w = World::with_proxy().await;
    let (_master, mut carol, conv, seqs) = carol_sends_numbered(&w, Some(3), 3).await;
    let s1 = seqs[1];
    w.proxy().set_hook(pages_for("alice", move |items| {
        items.retain(|s| s.seq != s1)
    }));
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    assert_eq!(gaps(&alice, &conv), [("carol".to_owned(), vec![1])]);
    let first = alice.account().epochs(&conv).unwrap()[0].seq;
    // Requests from the gap's epoch record on; the initial catch-up may start there too.
    let refetches = |w: &World| {
        w.proxy()
            .history_afters("alice")
            .iter()
            .filter(|a| **a == first)
            .count()
    };
    let initial = refetches(&w) - 1;
    for i in 3..12 {
        carol.send_text(&conv, &format!("m{i}")).await.unwrap();
        alice.sync_all().await.unwrap();
    }
    let epochs = alice.account().epochs(&conv).unwrap();
    assert!(epochs.len() >= 3, "the conversation did not rotate");
    assert_eq!(
        refetches(&w) - initial,
        REFETCH_LIMIT as usize,
        "the gap was asked for more often than the limit"
    );
    assert_eq!(texts(&alice, &conv).len(), 11);
    let gap = lines(&alice, &conv)
        .into_iter()
        .find(|l| matches!(l, HistoryLine::Gap { .. }))
        .unwrap();
    assert!(
        matches!(&gap, HistoryLine::Gap { counters, requests, epoch, .. }
            if *counters == [(1, 1)] && *requests == Some(REFETCH_LIMIT) && *epoch == 0),
        "{gap:?}"
    );
    assert!(
        sealdesk_cli::print::render_line(&gap).contains("not delivered after 3 requests"),
        "{}",
        sealdesk_cli::print::render_line(&gap)
    );
    // Still so after reopening from disk, and no more requests.
    alice.close().await;
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    carol.send_text(&conv, "m12").await.unwrap();
    alice.sync_all().await.unwrap();
    assert_eq!(refetches(&w) - initial, REFETCH_LIMIT as usize);
    assert_eq!(gaps(&alice, &conv), [("carol".to_owned(), vec![1])]);
}

/// The relay drops an item for good: the gap stays shown through every sync, and still after
/// the sender's later messages have pushed its counter out of the reordering window (where it
/// could no longer be accepted) — it never silently disappears.
#[tokio::test]
async fn item_dropped_for_good_stays_a_loud_gap() {
    let w = World::with_proxy().await;
    let (_master, mut carol, conv, seqs) = carol_sends_numbered(&w, None, 3).await;
    let s1 = seqs[1];
    w.proxy().set_hook(pages_for("alice", move |items| {
        items.retain(|s| s.seq != s1)
    }));
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    for _ in 0..3 {
        alice.sync_all().await.unwrap();
        assert_eq!(gaps(&alice, &conv), [("carol".to_owned(), vec![1])]);
    }
    // carol writes on until counter 1 is more than a window behind her latest. Each send
    // costs a few frames (the catch-up around it), so she reconnects every hundred messages:
    // one connection's frame budget (`limits.frame_burst`) is not what this test is about, and
    // a fast machine would otherwise spend it and be closed.
    let window = sealdesk_protocol::message::REORDER_WINDOW;
    for i in 3..=window + 2 {
        if i % 100 == 0 {
            carol.close().await;
            carol = w.reopen_via("carol", Via::Relay).await;
        }
        carol.send_text(&conv, &format!("m{i}")).await.unwrap();
    }
    alice.sync_all().await.unwrap();
    assert_eq!(texts(&alice, &conv).len() as u64, window + 2);
    assert_eq!(
        gaps(&alice, &conv),
        [("carol".to_owned(), vec![1])],
        "the gap left the reordering window and disappeared"
    );
    assert!(rejected(&alice, &conv).is_empty());
    // Reopened from disk: still there.
    alice.close().await;
    let alice = w.reopen_via("alice", Via::Proxy).await;
    assert_eq!(gaps(&alice, &conv), [("carol".to_owned(), vec![1])]);
}

/// One trustee of a 2-of-3 org releases; the relay slips in a second release entry for the
/// same request, signed by a key of its own. The customer sees one notice that counts only the
/// genuine trustee — "not opened as far as the entries received show" — and names the
/// forged entry as not genuine; it is never shown as an opening.
#[tokio::test]
async fn forged_second_entry_of_a_release_does_not_open_it() {
    let w = World::with_proxy().await;
    let mut master = w.org_master(&["alice"], None).await;
    let (mut carol, conv, token) = consenting_carol(&w, Via::Proxy, "my card is 4111").await;
    let policy = master.latest_policy(ORG).await.unwrap();
    submit_release(&master, &policy, &token).await;
    assert_eq!(
        trustees_answer(&w, &["trustee-1"], Via::Relay).await,
        [["released"]]
    );
    let genuine = items(&master, &conv)
        .await
        .into_iter()
        .find_map(|s| match s.item {
            Item::Notice { entry, index } => Some((entry, index)),
            _ => None,
        })
        .unwrap();
    let relay_keys = impostor(9_020, "relay", Role::Trustee).keys;
    let forged = AuditEntry::sign(&relay_keys, genuine.0.event.clone(), now());

    let mut alice = w.reopen_via("alice", Via::Relay).await;
    alice.sync_all().await.unwrap();
    carol.sync_all().await.unwrap();
    assert_eq!(notices(&carol, &conv).len(), 1);
    let next = carol.meta(&conv).unwrap().cursor + 1;
    w.proxy().set_hook(replace_for(
        "carol",
        conv,
        next,
        Item::Notice {
            entry: forged,
            index: genuine.1 + 1,
        },
    ));
    assert_eq!(alice.send_text(&conv, "carrier").await.unwrap(), next);
    carol.sync_all().await.unwrap();
    let n = notices(&carol, &conv);
    assert_eq!(n.len(), 1, "one request, one notice: {n:?}");
    let (_, text, verified) = &n[0];
    assert!(
        !verified,
        "a notice with a forged entry shown as verified: {text}"
    );
    assert!(
        text.contains(
            "not opened as far as the entries received show (1 of 2 trustees; released so far \
             by trustee trustee-1)"
        ),
        "{text}"
    );
    assert!(text.contains("NOT GENUINE"), "{text}");
    assert!(!text.contains("acme opened"), "{text}");
}

/// A misbehaving trustee (trustee-3) signs an entry with a genuine release's request hash but
/// other epochs, the relay logs it (valid proofs) and delivers it before the two honest
/// entries. The customer sees one notice: opened as the honest entries say, by trustee-1 and
/// trustee-2, with trustee-3's entry named as contradicting them — not the honest entries
/// described by the odd one and counted as failed.
#[tokio::test]
async fn a_contradicting_trustee_entry_arriving_first_does_not_decide_the_release() {
    let w = World::with_proxy().await;
    let mut master = w.org_master(&["alice"], None).await;
    let forger = LogForger::new(9_102);
    forge_log(&w, &forger);
    let (mut carol, conv, token) = consenting_carol(&w, Via::Proxy, "my card is 4111").await;
    carol.sync_all().await.unwrap();
    let mut alice = w.reopen_via("alice", Via::Relay).await;
    alice.sync_all().await.unwrap();
    // An item carol has not seen yet, before the release's notices: until the odd entry is
    // ready, carol is shown nothing from it on.
    let next = carol.meta(&conv).unwrap().cursor + 1;
    let f = Arc::clone(&forger);
    let mut hold = pages_for("carol", move |items| items.retain(|s| s.seq < next));
    w.proxy().set_hook(move |ctx, frame| {
        let frame = f.rewrite(ctx, frame);
        hold(ctx, frame)
    });
    assert_eq!(alice.send_text(&conv, "carrier").await.unwrap(), next);
    release(&w, &mut master, conv, Justification::Consent(token)).await;

    let mut log = served_entries(&carol, 1000).await;
    let genuine = log
        .iter()
        .find(|e| matches!(&e.event, AuditEvent::Release { conversation, .. } if *conversation == conv))
        .unwrap()
        .clone();
    let mut event = genuine.event.clone();
    if let AuditEvent::Release { epochs, .. } = &mut event {
        *epochs = EpochRange {
            first: epochs.first,
            last: epochs.last + 5,
        };
    }
    let t3 = w.reopen_via("trustee-3", Via::Relay).await;
    let odd = AuditEntry::sign(t3.account().keys(), event, now());
    let index = log.len() as u64;
    log.push(odd.clone());
    forger.serve(log);
    forge_log_with_notice(&w, &forger, conv, next, odd, index);
    carol.sync_all().await.unwrap();
    let n = notices(&carol, &conv);
    assert_eq!(n.len(), 1, "one request, one notice: {n:?}");
    let (_, text, verified) = &n[0];
    assert!(
        text.starts_with("acme opened") && text.contains("trustees trustee-1 and trustee-2"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "audit #{index} by trustee trustee-3 contradicts other entries of this release"
        )),
        "{text}"
    );
    assert!(!text.contains("NOT GENUINE"), "{text}");
    assert!(
        !verified,
        "a release with a contradicting entry shown as verified"
    );
}

// ---- numbers, revocations and justifications the relay gets wrong ---------------------------

/// Has trustee `name` (connected `via`) serve release requests until it has released `n`.
/// Waits for the events (the pending list, then pushes), never for a duration.
async fn trustee_releases(w: &World, name: &str, via: Via, n: usize) {
    let mut t = w.reopen_via(name, via).await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut tx = Some(tx);
    let mut released = 0;
    let served = t.trustee_serve(
        async move {
            let _ = rx.await;
        },
        |o| {
            if o.outcome == "released" {
                released += 1;
                if released == n
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(());
                }
            }
        },
    );
    tokio::time::timeout(STEP, served)
        .await
        .unwrap_or_else(|_| panic!("{name} did not release {n} request(s)"))
        .unwrap();
    t.close().await;
}

/// The master unlocks `conv` under `j` while trustee-1 and trustee-2 (connected as given)
/// release it.
async fn unlock_released(
    w: &World,
    master: &mut Client,
    conv: ConversationId,
    j: Justification,
    (via1, via2): (Via, Via),
) -> Result<sealdesk_client::escrow::Transcript, ClientError> {
    let unlock = master.unlock(&conv, j, None, STEP, |_| {});
    let (r, (), ()) = tokio::join!(
        unlock,
        trustee_releases(w, "trustee-1", via1, 1),
        trustee_releases(w, "trustee-2", via2, 1),
    );
    r
}

fn released_texts(t: &sealdesk_client::escrow::Transcript) -> Vec<String> {
    t.messages.iter().map(|m| m.text.clone()).collect()
}

/// The relay reports more refusals of a release than the policy has trustees (and would make
/// `trustees − refusals` underflow: a panic in debug, a wrap in release). The master's unlock
/// stops with `ClientError::ImpossibleNumber`, builds no transcript, and unlocks normally once
/// the relay tells the truth.
#[tokio::test]
async fn release_status_with_more_refusals_than_trustees_is_refused_without_panic() {
    let w = World::with_proxy().await;
    drop(w.org_master(&["alice"], None).await.close().await);
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "my card is 4111").await.unwrap();
    let mut master = w.reopen_via(MASTER, Via::Proxy).await;
    w.proxy().set_hook(answer_for(MASTER, |_, body| match body {
        Response::Progress(mut p) => {
            p.refusals = (0..5)
                .map(|i| (format!("ghost-{i}"), "no".into()))
                .collect();
            Response::Progress(p)
        }
        other => other,
    }));
    let first = carol
        .grant_consent(&conv, None, Scope::Full, 3600, "review")
        .await
        .unwrap();
    let err = master
        .unlock(&conv, Justification::Consent(first), None, STEP, |_| {})
        .await
        .unwrap_err();
    match &err {
        ClientError::ImpossibleNumber { what, detail } => {
            assert_eq!(*what, "number of refusals");
            assert!(
                detail.contains("5 refusals") && detail.contains("3 trustees"),
                "{detail}"
            );
        }
        other => panic!("expected ImpossibleNumber, got {other:?}"),
    }
    assert_nothing_released(&master, &conv);
    // The honest relay again: the first request (still pending) and a second are released.
    w.proxy().passthrough();
    let second = carol
        .grant_consent(&conv, None, Scope::Full, 3600, "review again")
        .await
        .unwrap();
    let unlock = master.unlock(&conv, Justification::Consent(second), None, STEP, |_| {});
    let (r, (), ()) = tokio::join!(
        unlock,
        trustee_releases(&w, "trustee-1", Via::Relay, 2),
        trustee_releases(&w, "trustee-2", Via::Relay, 2),
    );
    assert_eq!(released_texts(&r.unwrap()), vec!["my card is 4111"]);
}

/// The relay pages a conversation's history without moving on: every page says `more`, and
/// each is the same. Catching up (`sync`) and reading the whole history (the master's
/// `dispute open`) used to ask again forever; both stop with `ClientError::ImpossibleNumber`.
#[tokio::test]
async fn history_pages_that_never_advance_are_refused() {
    let w = World::with_proxy().await;
    let (mut carol, conv, _) = carol_caught_up(&w, &["one", "two"]).await;
    let mut master = w.reopen_via(MASTER, Via::Proxy).await;
    let page = items(&carol, &conv).await;
    assert!(page.len() >= 3, "{page:?}");
    w.proxy()
        .set_hook(move |ctx, frame| match (ctx.request, frame) {
            (Some(Request::History { .. }), Frame::Response { id, .. }) => vec![Frame::Response {
                id,
                body: Response::Items {
                    items: page.clone(),
                    more: true,
                    skipped: Vec::new(),
                    head: None,
                },
            }],
            (_, frame) => vec![frame],
        });
    let paging = |r: Result<(), ClientError>| match r {
        Err(ClientError::ImpossibleNumber { what, .. }) => assert_eq!(what, "history page"),
        other => panic!("expected ImpossibleNumber, got {other:?}"),
    };
    paging(
        tokio::time::timeout(STEP, carol.sync(&conv))
            .await
            .expect("sync kept paging")
            .map(drop),
    );
    paging(
        tokio::time::timeout(STEP, master.open_dispute(&conv, None, "chargeback"))
            .await
            .expect("the history walk kept paging")
            .map(drop),
    );
    // Honest paging again: both work.
    w.proxy().passthrough();
    carol.sync(&conv).await.unwrap();
    assert_eq!(texts(&carol, &conv), vec!["carol: one", "carol: two"]);
    master
        .open_dispute(&conv, None, "chargeback")
        .await
        .unwrap();
}

/// A hostile relay serves the trustees an audit log with revocations of carol's consent that
/// carol did not sign: one by a made-up "carol" key, one by the relay's own log key, and one by
/// carol's real key naming another conversation. Only the consent's signer revokes it, for its
/// own conversation: the trustees ignore all three and release. (The relay itself refuses such
/// revocations; `escrow.rs` tests that side.)
#[tokio::test]
async fn trustees_ignore_consent_revocations_not_signed_by_the_consents_signer() {
    let w = World::with_proxy().await;
    let forger = LogForger::new(9_200);
    forge_log(&w, &forger);
    // As `World::org`, but the trustees first meet the relay through the proxy, so they pin
    // the forger's log key.
    let mut master = w.user_via(MASTER, Role::Master, Via::Relay).await;
    for i in 1..=3 {
        w.user_via(&format!("trustee-{i}"), Role::Trustee, Via::Proxy)
            .await
            .close()
            .await;
        w.user_via(&format!("arbiter-{i}"), Role::Arbiter, Via::Relay)
            .await
            .close()
            .await;
    }
    master.create_org(&spec(None, None)).await.unwrap();
    w.user_via("alice", Role::Agent, Via::Relay)
        .await
        .close()
        .await;
    master.add_agent(ORG, "alice").await.unwrap();
    let (carol, conv, token) = consenting_carol(&w, Via::Relay, "my card is 4111").await;
    let mut log = served_entries(&master, 100).await;
    let revoke = |keys: &IdentityKeys, conversation| revocation(keys, conversation, token.id);
    let fake = impostor(9_201, "carol", Role::Customer);
    let elsewhere = ConversationId::random(&mut sealdesk_client::rng().unwrap());
    log.push(revoke(&fake.keys, conv));
    log.push(revoke(forger.keys(), conv));
    log.push(revoke(carol.account().keys(), elsewhere));
    assert!(log.iter().all(|e| e.verify().is_ok()));
    forger.serve(log);
    let t = unlock_released(
        &w,
        &mut master,
        conv,
        Justification::Consent(token),
        (Via::Proxy, Via::Proxy),
    )
    .await
    .unwrap();
    assert_eq!(released_texts(&t), vec!["my card is 4111"]);
}

/// A justification that names another conversation than the request. The master's client
/// refuses to ask for conversation A with B's consent, and for epochs B's consent does not
/// cover, before submitting anything. A relay that hands trustee-1 as many master-signed
/// requests naming A with B's consent as its hourly rate limit allows (the relay itself
/// refuses them on submit) gets them all refused, with nothing spent — no log entry, no share,
/// no rate budget (only approved releases count): trustee-1 then releases B under that same
/// consent.
#[tokio::test]
async fn a_justification_for_another_conversation_is_refused_before_anything_is_spent() {
    use sealdesk_protocol::{
        Error,
        release::Refusal,
        wire::{ErrorCode, PendingRelease},
    };
    let w = World::with_proxy().await;
    drop(w.org_master(&["alice"], None).await.close().await);
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv_a = open_chat(&mut carol).await;
    carol.send_text(&conv_a, "about order A").await.unwrap();
    let conv_b = open_chat(&mut carol).await;
    carol.send_text(&conv_b, "about order B").await.unwrap();
    let token_b = carol
        .grant_consent(&conv_b, None, Scope::Full, 3600, "order B")
        .await
        .unwrap();
    let mut master = w.reopen_via(MASTER, Via::Proxy).await;

    // The master's client.
    let j = Justification::Consent(token_b.clone());
    let err = master
        .unlock(&conv_a, j.clone(), None, STEP, |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Protocol(Error::Refused(Refusal::WrongConversation))
        ),
        "{err:?}"
    );
    let err = master
        .unlock(
            &conv_b,
            j,
            Some(EpochRange::new(0, 3).unwrap()),
            STEP,
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Protocol(Error::Refused(Refusal::EpochsNotCovered))
        ),
        "{err:?}"
    );
    assert_eq!(
        w.proxy()
            .requests_sent(MASTER, |r| matches!(r, Request::SubmitRelease(_))),
        0,
        "the master submitted a mismatched request"
    );

    // The trustee.
    let policy = master.latest_policy(ORG).await.unwrap();
    let keys = master.account().keys();
    let fakes: Vec<PendingRelease> = (0..sealdesk_client::escrow::RELEASES_PER_HOUR)
        .map(|_| {
            let mut r = ReleaseRequest::sign(
                &mut sealdesk_client::rng().unwrap(),
                keys,
                &policy,
                token_b.epochs,
                Justification::Consent(token_b.clone()),
                now(),
            )
            .unwrap();
            r.conversation = conv_a;
            r.signature = keys.sign(&r.signed_bytes());
            PendingRelease {
                request: r,
                epochs: vec![],
            }
        })
        .collect();
    let fake_ids: Vec<TokenId> = fakes.iter().map(|p| p.request.id).collect();
    w.proxy()
        .set_hook(answer_for("trustee-1", move |req, body| {
            match (req, body) {
                (Request::PendingReleases, Response::Releases(list)) => {
                    let mut all = fakes.clone();
                    all.extend(list);
                    Response::Releases(all)
                }
                // The relay never stored them: it acknowledges the refusals itself.
                (
                    Request::RefuseRelease { request, .. },
                    Response::Error {
                        code: ErrorCode::NotFound,
                        ..
                    },
                ) if fake_ids.contains(request) => Response::Ok,
                (_, body) => body,
            }
        }));
    let mut t1 = w.reopen_via("trustee-1", Via::Proxy).await;
    let out = t1.trustee_pending().await.unwrap();
    assert_eq!(out.len(), sealdesk_client::escrow::RELEASES_PER_HOUR);
    for o in &out {
        assert_eq!(o.conversation, conv_a.to_string());
        assert_eq!(
            o.outcome,
            "refused: the justification is for another conversation"
        );
    }
    t1.close().await;
    assert_eq!(
        w.proxy().requests_sent("trustee-1", |r| matches!(
            r,
            Request::SubmitShares { .. } | Request::AppendAudit(_)
        )),
        0,
        "trustee-1 logged or released"
    );
    // Nothing spent: the consent releases B, with trustee-1 among the two.
    let t = unlock_released(
        &w,
        &mut master,
        conv_b,
        Justification::Consent(token_b),
        (Via::Proxy, Via::Relay),
    )
    .await
    .unwrap();
    assert_eq!(released_texts(&t), vec!["about order B"]);
}

/// The relay answers a page of audit entries with more entries than were asked for (each
/// twice): the client used to add them all to its position and read past the tree head's size.
/// `audit` stops with `ClientError::ImpossibleNumber`; the honest log is read again afterwards.
#[tokio::test]
async fn audit_pages_longer_than_asked_are_refused() {
    let w = World::with_proxy().await;
    drop(w.org_master(&["alice"], None).await.close().await);
    let mut carol = w.user_via("carol", Role::Customer, Via::Proxy).await;
    let conv = open_chat(&mut carol).await;
    let token = carol
        .grant_consent(&conv, None, Scope::Full, 3600, "review")
        .await
        .unwrap();
    carol.revoke_consent(&token.id).await.unwrap();
    let honest = carol.audit(None, false).await.unwrap();
    assert!(honest.size >= 1);
    w.proxy()
        .set_hook(answer_for("carol", |_, body| match body {
            Response::Entries {
                from,
                entries,
                withheld,
            } => Response::Entries {
                from,
                entries: entries.iter().chain(&entries).cloned().collect(),
                withheld,
            },
            other => other,
        }));
    match carol.audit(None, false).await {
        Err(ClientError::ImpossibleNumber { what, detail }) => {
            assert_eq!(what, "number of audit entries");
            assert!(detail.contains("asked for at most"), "{detail}");
        }
        other => panic!("expected ImpossibleNumber, got {other:?}"),
    }
    w.proxy().passthrough();
    assert_eq!(carol.audit(None, false).await.unwrap().size, honest.size);
}

// ---- appenders check that their entry is logged -------------------------------------------

/// A hook that answers `victim`'s audit appends as a relay can without any key: the append is
/// dropped and answered `Appended` with the last genuine tree head the victim was shown, which
/// is too old to hold the entry.
fn stale_append_for(
    victim: &'static str,
    inj: Injector,
) -> impl FnMut(&Ctx<'_>, Frame) -> Vec<Frame> + Send + 'static {
    let mut last: Option<SignedTreeHead> = None;
    move |ctx, frame| {
        if ctx.account != Some(victim) {
            return vec![frame];
        }
        match (ctx.dir, &frame) {
            (
                Dir::ToClient,
                Frame::Response {
                    body: Response::TreeHead(h),
                    ..
                },
            ) => {
                last = Some(h.clone());
                vec![frame]
            }
            (
                Dir::ToRelay,
                Frame::Request {
                    id,
                    body: Request::AppendAudit(_),
                },
            ) => {
                let head = last
                    .clone()
                    .expect("the victim read the head before appending");
                let answer = Frame::Response {
                    id: *id,
                    body: Response::Appended {
                        index: head.size,
                        head,
                    },
                };
                assert!(inj.inject(ctx.conn, Dir::ToClient, answer));
                Vec::new()
            }
            _ => vec![frame],
        }
    }
}

async fn release_status(master: &Client, req: &ReleaseRequest) -> ReleaseProgress {
    match master
        .session()
        .request(Request::ReleaseStatus { request: req.id })
        .await
        .unwrap()
    {
        Response::Progress(p) => p,
        other => panic!("{other:?}"),
    }
}

fn is_not_appended(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Protocol(sealdesk_protocol::Error::Audit(
            LogError::NotAppended { .. }
        ))
    )
}

/// Silent release: the relay drops a trustee's release entry and answers its append with an
/// older genuine head. The trustee refuses to believe it (`NotAppended`) and sends no share;
/// the master has nothing. Once the relay behaves, the trustee resumes: it logs the entry
/// (once) and only then releases.
#[tokio::test]
async fn append_answered_with_an_old_head_sends_no_share() {
    let w = World::with_proxy().await;
    let mut master = w.org_master(&["alice"], None).await;
    let (_carol, _conv, token) = consenting_carol(&w, Via::Relay, "my card is 4111").await;
    let policy = master.latest_policy(ORG).await.unwrap();
    let req = submit_release(&master, &policy, &token).await;
    w.proxy()
        .set_hook(stale_append_for("trustee-1", w.proxy().injector()));
    let mut t1 = w.reopen_via("trustee-1", Via::Proxy).await;
    let err = t1.trustee_pending().await.unwrap_err();
    assert!(is_not_appended(&err), "{err}");
    assert_eq!(
        w.proxy().requests_sent("trustee-1", |r| matches!(
            r,
            Request::SubmitShares { .. } | Request::RefuseRelease { .. }
        )),
        0,
        "the trustee released (or refused) on an unproven append"
    );
    let p = release_status(&master, &req).await;
    assert!(p.shares.is_empty() && p.refusals.is_empty(), "{p:?}");

    // The honest path: the trustee resumes from its persisted stage and logs once.
    w.proxy().passthrough();
    let log_before = t1.checked_tree_head().await.unwrap().0.size;
    let out = t1.trustee_pending().await.unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].outcome, "released");
    assert_eq!(release_status(&master, &req).await.shares.len(), 1);
    assert_eq!(t1.checked_tree_head().await.unwrap().0.size, log_before + 1);
}

/// Revocation swallowed: the relay drops the customer's revocation and answers with an older
/// genuine head. The client does not say "revoked" (`NotAppended`; the consent stays
/// unrevoked locally), and a retry through an honest relay revokes it.
#[tokio::test]
async fn revocation_answered_with_an_old_head_is_not_reported_revoked() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let (mut carol, conv, token) = consenting_carol(&w, Via::Proxy, "hello").await;
    w.proxy()
        .set_hook(stale_append_for("carol", w.proxy().injector()));
    carol.checked_tree_head().await.unwrap();
    let err = carol.revoke_consent(&token.id).await.unwrap_err();
    assert!(is_not_appended(&err), "{err}");
    let consents = carol.consents().unwrap();
    assert!(!consents.is_empty());
    assert!(consents.iter().all(|c| !c.revoked));

    w.proxy().passthrough();
    let index = carol
        .revoke_consent(&token.id)
        .await
        .unwrap()
        .index()
        .unwrap();
    let consents = carol.consents().unwrap();
    assert!(!consents.is_empty());
    assert!(consents.iter().all(|c| c.revoked));
    witnesses_cosign(&w).await;
    let report = carol.audit(Some(conv), true).await.unwrap();
    assert!(
        report
            .entries
            .iter()
            .any(|e| e.index == index && e.included == Some(true)),
        "{report:?}"
    );
}

/// The relay answers the append with a head that does hold the claimed index, but the entry
/// there is another one (an older revocation): the inclusion proof fails (`NotIncluded`).
#[tokio::test]
async fn append_answered_with_another_entrys_index_is_not_included() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Proxy).await;
    let conv = open_chat(&mut carol).await;
    let first = carol
        .grant_consent(&conv, None, Scope::Full, 3600, "one")
        .await
        .unwrap();
    let index = carol
        .revoke_consent(&first.id)
        .await
        .unwrap()
        .index()
        .unwrap();
    let second = carol
        .grant_consent(&conv, None, Scope::Full, 3600, "two")
        .await
        .unwrap();
    let head = carol.checked_tree_head().await.unwrap().0;
    let inj = w.proxy().injector();
    w.proxy()
        .set_hook(move |ctx, frame| match (&ctx.dir, &frame) {
            (
                Dir::ToRelay,
                Frame::Request {
                    id,
                    body: Request::AppendAudit(_),
                },
            ) => {
                let answer = Frame::Response {
                    id: *id,
                    body: Response::Appended {
                        index,
                        head: head.clone(),
                    },
                };
                assert!(inj.inject(ctx.conn, Dir::ToClient, answer));
                Vec::new()
            }
            _ => vec![frame],
        });
    let err = carol.revoke_consent(&second.id).await.unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::Protocol(sealdesk_protocol::Error::Audit(
                LogError::NotIncluded { index: i, .. }
            )) if *i == index
        ),
        "{err}"
    );
    let revoked: Vec<bool> = carol
        .consents()
        .unwrap()
        .iter()
        .map(|c| c.token.id == first.id && c.revoked || c.token.id == second.id && !c.revoked)
        .collect();
    assert!(!revoked.is_empty());
    assert!(revoked.iter().all(|ok| *ok), "{revoked:?}");
}

// ---- witnesses ------------------------------------------------------------------------------

/// Every trustee of the test org cosigns the relay's current head (as `trustee serve` does on
/// each poll), connected directly.
async fn witnesses_cosign(w: &World) {
    for i in 1..=3 {
        let mut t = w.reopen_via(&format!("trustee-{i}"), Via::Relay).await;
        t.witness_cosign().await.unwrap();
        t.close().await;
    }
}

fn too_few(e: &ClientError) -> Option<(usize, usize, usize)> {
    match e {
        ClientError::Protocol(sealdesk_protocol::Error::Audit(LogError::TooFewCosignatures {
            have,
            stale,
            need,
            ..
        })) => Some((*have, *stale, *need)),
        _ => None,
    }
}

/// `audit --verify` accepts a head only with cosignatures of `n − t + 1 = 2` of the org's 3
/// trustees: none, or one, is refused by name; two are enough; cosignatures by a key that is
/// not a trustee of the org do not count.
#[tokio::test]
async fn audit_verify_needs_a_quorum_of_trustee_cosignatures() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();
    let err = carol.audit(None, true).await.unwrap_err();
    assert_eq!(too_few(&err), Some((0, 0, 2)), "{err}");

    let mut t1 = w.reopen_via("trustee-1", Via::Relay).await;
    t1.witness_cosign().await.unwrap();
    // An arbiter is no witness: the relay refuses its cosignature.
    let mut a1 = w.reopen_via("arbiter-1", Via::Relay).await;
    let head = a1.checked_tree_head().await.unwrap().0;
    let c = Cosignature::sign(a1.account().keys(), &head, now());
    let refused = a1.session().request(Request::Cosign(c)).await.unwrap_err();
    assert!(
        matches!(
            &refused,
            ClientError::Relay {
                code: sealdesk_protocol::wire::ErrorCode::Forbidden,
                ..
            }
        ),
        "{refused}"
    );
    let err = carol.audit(None, true).await.unwrap_err();
    assert_eq!(too_few(&err), Some((1, 0, 2)), "{err}");

    let mut t2 = w.reopen_via("trustee-2", Via::Relay).await;
    t2.witness_cosign().await.unwrap();
    let report = carol.audit(None, true).await.unwrap();
    assert_eq!(report.witnessed.get(ORG), Some(&2));
}

/// Frozen view: the only cosignatures the relay can show are older than the freshness bound
/// (the trustees vouched for the log long ago, and nothing since). The head is refused, named,
/// with the stale cosignatures counted; fresh cosignatures are accepted again.
#[tokio::test]
async fn head_with_cosignatures_past_the_freshness_bound_is_refused() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let _conv = open_chat(&mut carol).await;
    let long_ago = now() - WITNESS_FRESHNESS_SECS - 60;
    for i in 1..=3 {
        let t = w.reopen_via(&format!("trustee-{i}"), Via::Relay).await;
        let head = match t.session().request(Request::GetTreeHead).await.unwrap() {
            Response::TreeHead(h) => h,
            other => panic!("{other:?}"),
        };
        let c = Cosignature::sign(t.account().keys(), &head, long_ago);
        assert_eq!(
            t.session().request(Request::Cosign(c)).await.unwrap(),
            Response::Ok
        );
        t.close().await;
    }
    let err = carol.audit(None, true).await.unwrap_err();
    assert_eq!(too_few(&err), Some((0, 3, 2)), "{err}");
    witnesses_cosign(&w).await;
    assert_eq!(
        carol.audit(None, true).await.unwrap().witnessed.get(ORG),
        Some(&3)
    );
}

/// Split view, with the relay's own log key: after a genuine release (the releasing trustees
/// cosigned heads holding their entries), the relay serves the customer a log without the
/// release entries, signed with its real key. Served as it is (shorter than what the
/// trustees cosigned), no cosignature counts: `TooFewCosignatures`. Padded with entries of the
/// relay's own so that it is as long as the cosigned heads: the trustees' heads are not
/// prefixes of it: `SplitView`. The honest log is witnessed.
#[tokio::test]
async fn split_view_without_the_release_entries_is_detected() {
    let relay_keys = IdentityKeys::generate(&mut sealdesk_tests::rng(9_200));
    let w = World::with_relay_keys(&relay_keys).await;
    let mut master = w.org_master(&["alice"], None).await;
    let forger = LogForger::with_keys(copy_keys(&relay_keys));
    assert_eq!(forger.log_key(), relay_keys.signing_public());
    forge_log(&w, &forger);
    let (mut carol, conv, token) = consenting_carol(&w, Via::Proxy, "my card is 4111").await;
    carol.checked_tree_head().await.unwrap();
    release(&w, &mut master, conv, Justification::Consent(token)).await;
    let real = served_entries(&master, 100).await;
    let releases = real
        .iter()
        .filter(|e| matches!(e.event, AuditEvent::Release { .. }))
        .count();
    assert_eq!(releases, 2);
    // The honest view is witnessed (the releasing trustees cosigned it).
    let report = carol.audit(None, true).await.unwrap();
    assert_eq!(report.witnessed.get(ORG), Some(&2));
    assert_eq!(report.size, real.len() as u64);

    // A fresh customer device would be shown the log without the releases; carol has pinned
    // the honest head, so use a new customer that never saw it.
    let mut dave = w.user_via("dave", Role::Customer, Via::Proxy).await;
    let _dconv = open_chat(&mut dave).await;
    let hidden: Vec<AuditEntry> = real
        .iter()
        .filter(|e| !matches!(e.event, AuditEvent::Release { .. }))
        .cloned()
        .collect();
    forger.serve(hidden.clone());
    let err = dave.audit(None, true).await.unwrap_err();
    assert_eq!(too_few(&err).map(|(have, _, _)| have), Some(0), "{err}");

    let mut padded = hidden;
    while padded.len() < real.len() + 1 {
        padded.push(erasure_entry(&relay_keys, conv, "retention", now()));
    }
    forger.serve(padded);
    let err = dave.audit(None, true).await.unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::Protocol(sealdesk_protocol::Error::Audit(LogError::SplitView { .. }))
        ),
        "{err}"
    );
}

/// A trustee never cosigns a head that does not extend the last one it cosigned: the relay
/// (with its own key) serves it a forked log after it cosigned the honest one, and it refuses
/// (`NotAnExtension`) without sending a cosignature.
#[tokio::test]
async fn witness_refuses_to_cosign_a_forked_log() {
    let relay_keys = IdentityKeys::generate(&mut sealdesk_tests::rng(9_300));
    let w = World::with_relay_keys(&relay_keys).await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    let t = carol
        .grant_consent(&conv, None, Scope::Full, 3600, "one")
        .await
        .unwrap();
    carol.revoke_consent(&t.id).await.unwrap();
    let forger = LogForger::with_keys(copy_keys(&relay_keys));
    forge_log(&w, &forger);
    let mut t1 = w.reopen_via("trustee-1", Via::Proxy).await;
    t1.witness_cosign().await.unwrap();
    let real = served_entries(&t1, 100).await;
    let mut fork = real.clone();
    let last = fork.len() - 1;
    fork[last] = erasure_entry(&relay_keys, conv, "retention", now());
    forger.serve(fork);
    let cosigns_before = w
        .proxy()
        .requests_sent("trustee-1", |r| matches!(r, Request::Cosign(_)));
    let err = t1.witness_cosign().await.unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::Protocol(sealdesk_protocol::Error::Audit(
                LogError::NotAnExtension { .. }
            ))
        ),
        "{err}"
    );
    let cosigns_after = w
        .proxy()
        .requests_sent("trustee-1", |r| matches!(r, Request::Cosign(_)));
    assert_eq!(cosigns_before, cosigns_after);
    forger.mirror();
    t1.witness_cosign().await.unwrap();
}

// ---- signers per entry kind -----------------------------------------------------------------

/// The relay (holding the log key) adds entries signed by a key of its own making to the log,
/// with valid proofs: a release, a consent revocation and an erasure "by the customer". It
/// delivers the revocation and the erasure as notices too. None is shown as genuine: `audit`
/// marks each `signer_allowed: false` (so `audit --verify` fails), and history marks the
/// notices "NOT GENUINE". The customer's own revocation stays genuine.
#[tokio::test]
async fn entries_from_signers_their_kind_does_not_allow_are_flagged() {
    let w = World::with_proxy().await;
    let master = w.org_master(&["alice"], None).await;
    let forger = LogForger::new(9_400);
    forge_log(&w, &forger);
    let (mut carol, conv, token) = consenting_carol(&w, Via::Proxy, "hello").await;
    let genuine = carol
        .revoke_consent(&token.id)
        .await
        .unwrap()
        .index()
        .unwrap();
    let real = served_entries(&carol, 100).await;
    let size = real.len() as u64;
    let stranger = impostor(9_401, "carol", Role::Customer).keys;
    let revocation = revocation(&stranger, conv, token.id);
    let erasure = erasure_entry(&stranger, conv, "customer request", now());
    let release = forged_release(&stranger, conv, &master);
    let mut log = real;
    log.extend([revocation.clone(), erasure.clone(), release]);
    forger.serve(log);

    let report = carol.audit(Some(conv), false).await.unwrap();
    let by_index = |i: u64| report.entries.iter().find(|e| e.index == i).unwrap();
    assert!(by_index(genuine).signer_allowed, "{report:?}");
    for i in size..size + 3 {
        let line = by_index(i);
        assert!(line.signed && !line.signer_allowed, "{line:?}");
        assert!(line.text.contains("NOT GENUINE"), "{line:?}");
    }

    // The same entries delivered as notices in the conversation.
    let mut alice = w.reopen_via("alice", Via::Relay).await;
    alice.sync_all().await.unwrap();
    for (k, entry) in [(size, revocation), (size + 1, erasure)] {
        carol.sync_all().await.unwrap();
        let next = carol.meta(&conv).unwrap().cursor + 1;
        forge_log_with_notice(&w, &forger, conv, next, entry, k);
        assert_eq!(alice.send_text(&conv, "carrier").await.unwrap(), next);
        carol.sync_all().await.unwrap();
    }
    let n = notices(&carol, &conv);
    assert_eq!(n.len(), 2, "{n:?}");
    assert!(
        n.iter()
            .all(|(_, text, verified)| !verified && text.contains("NOT GENUINE"))
    );
}

/// The relay's own checks on a cosignature (defence in depth; readers check everything again):
/// signed by the caller, for its log key, on a root the log had at that size, and never
/// smaller than the witness's last. Each is refused by code; the witness's genuine one passes.
#[tokio::test]
async fn relay_refuses_cosignatures_it_cannot_stand_behind() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    let t = carol
        .grant_consent(&conv, None, Scope::Full, 3600, "one")
        .await
        .unwrap();
    carol.revoke_consent(&t.id).await.unwrap();
    let mut t1 = w.reopen_via("trustee-1", Via::Relay).await;
    let head = t1.checked_tree_head().await.unwrap().0;
    assert!(head.size >= 1);
    let keys = copy_keys(t1.account().keys());
    let other = impostor(9_500, "trustee-1", Role::Trustee).keys;
    let code = |r: Result<Response, ClientError>| match r {
        Err(ClientError::Relay { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    };
    use sealdesk_protocol::wire::ErrorCode;
    // Signed by a key that is not the caller's.
    let c = Cosignature::sign(&other, &head, now());
    assert_eq!(
        code(t1.session().request(Request::Cosign(c)).await),
        ErrorCode::Forbidden
    );
    // For another log key.
    let foreign = SignedTreeHead::sign(&other, head.size, head.root, head.timestamp);
    let c = Cosignature::sign(&keys, &foreign, now());
    assert_eq!(
        code(t1.session().request(Request::Cosign(c)).await),
        ErrorCode::BadRequest
    );
    // A root the log never had, and a size beyond the log.
    let mut wrong = head.clone();
    wrong.root = [9; 32];
    let c = Cosignature::sign(&keys, &wrong, now());
    assert_eq!(
        code(t1.session().request(Request::Cosign(c)).await),
        ErrorCode::Conflict
    );
    let mut beyond = head.clone();
    beyond.size += 5;
    let c = Cosignature::sign(&keys, &beyond, now());
    assert_eq!(
        code(t1.session().request(Request::Cosign(c)).await),
        ErrorCode::Conflict
    );
    // Tampered after signing.
    let mut c = Cosignature::sign(&keys, &head, now());
    c.timestamp += 1;
    assert_eq!(
        code(t1.session().request(Request::Cosign(c)).await),
        ErrorCode::BadRequest
    );
    // The genuine one; then a smaller head than the one stored.
    t1.witness_cosign().await.unwrap();
    let smaller = SignedTreeHead::sign(&other, 0, [0; 32], 0);
    let mut c = Cosignature::sign(&keys, &smaller, now());
    c.log_key = head.log_key;
    c.root = sealdesk_protocol::merkle::root(&[]);
    c.signature = keys.sign(&c.signed_bytes());
    assert_eq!(
        code(t1.session().request(Request::Cosign(c)).await),
        ErrorCode::Conflict
    );
}

/// Two members reach the rotation limit together: the agent's message is refused as
/// `epoch_full`, and by the time it reads the history the customer has opened the next epoch.
/// The agent sends in that epoch instead of opening one more, and is never told `stale_epoch`.
#[tokio::test]
async fn a_member_refused_in_a_full_epoch_follows_the_epoch_another_member_opened() {
    use sealdesk_protocol::wire::ErrorCode;

    let w = World::with_proxy().await;
    drop(w.org_master(&["alice"], Some(3)).await.close().await);
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    for i in 0..3 {
        carol.send_text(&conv, &format!("m{i}")).await.unwrap();
    }
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    // Alice's count says epoch 0 has room (as when carol's messages reached the relay after
    // alice's last read), so she sends there and the relay refuses it as full.
    let mut st = alice.account().epochs(&conv).unwrap().pop().unwrap();
    assert_eq!(st.record.epoch, 0);
    st.messages = 0;
    alice.account().save_epoch(&conv, &st).unwrap();

    // The refusal is held back until carol has opened epoch 1.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    w.proxy().set_hook(move |ctx: &Ctx<'_>, frame| {
        let full = matches!(
            &frame,
            Frame::Response {
                body: Response::Error {
                    code: ErrorCode::EpochFull,
                    ..
                },
                ..
            }
        );
        if ctx.dir == Dir::ToClient && ctx.account == Some("alice") && full {
            let _ = tx.send((ctx.conn, frame));
            return vec![];
        }
        vec![frame]
    });
    {
        let send = alice.send_text(&conv, "from alice");
        tokio::pin!(send);
        let (conn, held) = tokio::select! {
            held = rx.recv() => held.expect("the refusal was held"),
            done = &mut send => panic!("alice's send finished before its refusal: {done:?}"),
        };
        carol.send_text(&conv, "m3").await.unwrap();
        assert_eq!(
            carol
                .account()
                .epochs(&conv)
                .unwrap()
                .pop()
                .unwrap()
                .record
                .epoch,
            1,
            "carol opened epoch 1"
        );
        w.proxy().passthrough();
        assert!(w.proxy().inject(conn, Dir::ToClient, held));
        tokio::time::timeout(STEP, &mut send)
            .await
            .expect("alice's send finished")
            .unwrap();
    }
    assert_eq!(
        alice
            .account()
            .epochs(&conv)
            .unwrap()
            .pop()
            .unwrap()
            .record
            .epoch,
        1,
        "alice sent in carol's epoch, without opening another"
    );
    carol.sync_all().await.unwrap();
    let epochs: Vec<u32> = carol
        .account()
        .epochs(&conv)
        .unwrap()
        .iter()
        .map(|e| e.record.epoch)
        .collect();
    assert_eq!(epochs, vec![0, 1], "no extra epoch");
    assert_eq!(
        texts(&carol, &conv),
        vec![
            "carol: m0",
            "carol: m1",
            "carol: m2",
            "carol: m3",
            "alice: from alice"
        ]
    );
    let stale = w.proxy().seen().into_iter().any(|s| {
        matches!(
            s.frame,
            Frame::Response {
                body: Response::Error {
                    code: ErrorCode::StaleEpoch,
                    ..
                },
                ..
            }
        )
    });
    assert!(!stale, "no stale_epoch on the way");
}

// ---- witnesses behind every believed entry -------------------------------------------------

/// Whether the notice line at `index` is shown "not yet witnessed" (and so not as genuine), in
/// the customer's words ("NOT YET CONFIRMED").
fn not_yet_witnessed(c: &Client, conv: &ConversationId, index: u64) -> bool {
    lines(c, conv).into_iter().any(|l| {
        matches!(
            l,
            HistoryLine::Item {
                entry: LogEntry::Notice {
                    index: i,
                    verified: false,
                    unwitnessed: Some(_),
                    ref text,
                    ..
                },
                ..
            } if i == index && text.contains("NOT YET CONFIRMED")
        )
    })
}

/// Honest path, through a relay that tells the truth: the last releasing trustee's entry is
/// at first held only by its own cosignature (1 of the 2 needed), so the release notice is
/// shown "not yet witnessed" — shown, but not as genuine; once another trustee cosigns (as its
/// serve loop does every minute), the next sync shows the same release as genuine. A
/// revocation is "logged, not yet witnessed" until the trustees cosign a log holding it, then
/// witnessed; nothing is logged twice.
#[tokio::test]
async fn a_notice_and_a_revocation_are_believed_once_the_trustees_witness_them() {
    let w = World::with_proxy().await;
    let mut master = w.org_master(&["alice"], None).await;
    let (mut carol, conv, token) = consenting_carol(&w, Via::Proxy, "my card is 4111").await;
    let policy = master.latest_policy(ORG).await.unwrap();
    submit_release(&master, &policy, &token).await;
    assert_eq!(
        trustees_answer(&w, &["trustee-1", "trustee-2"], Via::Relay).await,
        [["released"], ["released"]]
    );
    carol.sync_all().await.unwrap();
    let n = notices(&carol, &conv);
    assert_eq!(n.len(), 1, "{n:?}");
    let (index, text, verified) = &n[0];
    assert!(!verified, "shown as genuine before it is witnessed: {text}");
    assert!(text.contains("acme opened"), "{text}");
    // Carol is the customer: told in her words, not the operator's.
    assert!(text.contains("NOT YET CONFIRMED by acme's"), "{text}");

    // Trustee-1 cosigns the log as it now stands: both entries are held by 2 cosignatures.
    assert!(w.witness(&["trustee-1"]).await.iter().all(Result::is_ok));
    let events = carol.sync_all().await.unwrap();
    let n = notices(&carol, &conv);
    assert_eq!(n.len(), 1, "{n:?}");
    let (again, text, verified) = &n[0];
    assert!(*verified, "{text}");
    assert_eq!(again, index);
    assert!(!text.contains("WITNESSED"), "{text}");
    assert!(
        events.iter().any(|e| matches!(
            &e.kind,
            sealdesk_client::client::EventKind::Entry {
                entry: LogEntry::Notice { verified: true, .. }
            }
        )),
        "the live view hears that the notice is now genuine: {events:?}"
    );

    // A revocation: logged and proven at once, witnessed only after the trustees cosign.
    let other = carol
        .grant_consent(&conv, None, Scope::Full, 3600, "second")
        .await
        .unwrap();
    let first = carol.revoke_consent(&other.id).await.unwrap();
    let RevokeOutcome::Revoked {
        index,
        witnessed: false,
    } = first
    else {
        panic!("a revocation no trustee cosigned was said witnessed: {first:?}");
    };
    assert!(
        w.witness(&["trustee-1", "trustee-3"])
            .await
            .iter()
            .all(Result::is_ok)
    );
    assert_eq!(
        carol.revoke_consent(&other.id).await.unwrap(),
        RevokeOutcome::AlreadyRevoked {
            index: Some(index),
            witnessed: true
        }
    );
}

/// Split view, with the relay's own log key: the trustees cosigned the honest log; the relay
/// then takes the customer's revocation into a log of its own (it never reaches the real one,
/// which the trustees go on reading) and proves it there, and delivers the revocation as a
/// notice. The append is proven (the relay's key signs the head), but no trustee cosigned a log
/// holding it: `consent revoke` says "not yet witnessed", never that it is confirmed, and the
/// notice is shown "not yet witnessed", never as genuine. With the witness check removed, both
/// would be believed.
#[tokio::test]
async fn a_revocation_and_notice_in_a_log_the_trustees_never_cosigned_are_not_believed() {
    let relay_keys = IdentityKeys::generate(&mut sealdesk_tests::rng(9_600));
    let w = World::with_relay_keys(&relay_keys).await;
    let _master = w.org_master(&["alice"], None).await;
    let forger = LogForger::with_keys(copy_keys(&relay_keys));
    forge_log(&w, &forger);
    let (mut carol, conv, token) = consenting_carol(&w, Via::Proxy, "hello").await;
    // Every trustee cosigns the honest log; carol's view of it is witnessed.
    witnesses_cosign(&w).await;
    assert_eq!(
        carol.audit(None, true).await.unwrap().witnessed.get(ORG),
        Some(&3)
    );
    let real = served_entries(&carol, 100).await;
    let size = real.len() as u64;

    // From now on carol is served the relay's own view: the honest log plus what she appends,
    // which never reaches the real log (her `AppendAudit` goes on as a `GetTreeHead`).
    forger.serve(real);
    let f = Arc::clone(&forger);
    w.proxy().set_hook(move |ctx, frame| {
        let frame = match frame {
            Frame::Request {
                id,
                body: Request::AppendAudit(_),
            } if ctx.dir == Dir::ToRelay && ctx.account == Some("carol") => Frame::Request {
                id,
                body: Request::GetTreeHead,
            },
            other => other,
        };
        vec![f.rewrite(ctx, frame)]
    });
    let out = carol.revoke_consent(&token.id).await.unwrap();
    assert_eq!(
        out,
        RevokeOutcome::Revoked {
            index: size,
            witnessed: false
        },
        "a revocation in a log no trustee cosigned was confirmed"
    );
    // The real log never saw it.
    let mut t1 = w.reopen_via("trustee-1", Via::Relay).await;
    assert_eq!(t1.checked_tree_head().await.unwrap().0.size, size);
    t1.close().await;
    // Asking again is not enough either: still not witnessed.
    assert!(matches!(
        carol.revoke_consent(&token.id).await.unwrap(),
        RevokeOutcome::AlreadyRevoked {
            witnessed: false,
            ..
        }
    ));

    // The same revocation delivered into the conversation as a notice.
    let view = served_entries(&carol, 100).await;
    let forged_index = size;
    let entry = view[forged_index as usize].clone();
    assert!(matches!(entry.event, AuditEvent::ConsentRevocation { .. }));
    let mut alice = w.reopen_via("alice", Via::Relay).await;
    alice.sync_all().await.unwrap();
    carol.sync_all().await.unwrap();
    let next = carol.meta(&conv).unwrap().cursor + 1;
    // (The append rewrite is no longer needed: carol appends nothing more.)
    forge_log_with_notice(&w, &forger, conv, next, entry, forged_index);
    assert_eq!(alice.send_text(&conv, "carrier").await.unwrap(), next);
    carol.sync_all().await.unwrap();
    let n = notices(&carol, &conv);
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(!n[0].2, "shown as genuine: {n:?}");
    assert!(
        not_yet_witnessed(&carol, &conv, forged_index),
        "not shown as not yet witnessed: {n:?}"
    );
    // Every later sync checks again, and it stays so while no trustee cosigns it.
    carol.sync_all().await.unwrap();
    assert!(not_yet_witnessed(&carol, &conv, forged_index));
}
