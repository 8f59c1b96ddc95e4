//! The hostile relay alters releases: what trustees are asked to release (the master's
//! request, the epoch records, a customer substituted with the master's collusion, a
//! justification for another conversation, consent revocations the consent's signer did not
//! make), the shares handed to the master, and the refusals it reports. Trustees refuse with
//! the named reason and spend nothing; the master opens nothing it cannot verify and stops on
//! an impossible number.
//!
//! Hermetic: loopback only, temporary directories, the fast test KDF. No timing assertions:
//! the only waits are generous bounds ([`sealdesk_tests::STEP`]) that keep a broken test from
//! hanging. `SECURITY.md` maps each attack to its test and the observed result; the other
//! `hostile_*.rs` files hold the rest of the hostile relay's attacks, and
//! [`sealdesk_tests::hostile`] its shared hooks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{sync::Arc, time::Duration};

use sealdesk_client::{Client, ClientError};
use sealdesk_protocol::{
    card::Role,
    ids::{ConversationId, EpochRange, TokenId},
    keys::IdentityKeys,
    release::{ConsentParams, ConsentToken, Justification, ReleaseRequest, Scope},
    wire::{Frame, Push, Request, Response},
};
use sealdesk_tests::{
    STEP,
    audit_log::served_entries,
    consent::revocation,
    hostile::{answer_for, forge_log, impostor},
    now,
    proxy::{Dir, LogForger},
    release::{consenting_carol, submit_release},
    world::{MASTER, ORG, Via, World, assert_nothing_released, open_chat, released_once, spec},
};

// ---- shares and trustees -------------------------------------------------------------------

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

// ---- numbers, revocations and justifications the relay gets wrong --------------------------

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
