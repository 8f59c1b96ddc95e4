//! The hostile relay against the witnesses (the trustees cosigning the audit log's head): too
//! few, stale or foreign cosignatures, a split view of the log (with its own log key), a
//! forked log offered to a witness, cosignatures it should not store, and entries that no
//! trustee cosigned shown as notices. A head, an entry or a notice is believed only once a
//! quorum of the org's trustees has cosigned a log holding it.
//!
//! Hermetic: loopback only, temporary directories, the fast test KDF. No timing assertions:
//! the only waits are generous bounds ([`sealdesk_tests::STEP`]) that keep a broken test from
//! hanging. `SECURITY.md` maps each attack to its test and the observed result; the other
//! `hostile_*.rs` files hold the rest of the hostile relay's attacks, and
//! [`sealdesk_tests::hostile`] its shared hooks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use sealdesk_client::{
    Client, ClientError, account::LogEntry, client::HistoryLine, escrow::consent::RevokeOutcome,
};
use sealdesk_protocol::{
    audit::{
        AuditEntry, AuditEvent, Cosignature, LogError, SignedTreeHead, WITNESS_FRESHNESS_SECS,
    },
    card::Role,
    ids::ConversationId,
    keys::IdentityKeys,
    release::{Justification, Scope},
    wire::{Frame, Request, Response},
};
use sealdesk_tests::{
    audit_log::{erasure_entry, served_entries, witnesses_cosign},
    copy_keys,
    hostile::{forge_log, forge_log_with_notice, impostor},
    now,
    proxy::{Dir, LogForger},
    release::{consenting_carol, submit_release, trustees_answer},
    timeline::{lines, notices},
    transcript::release,
    world::{ORG, Via, World, open_chat},
};

// ---- witnesses -----------------------------------------------------------------------------

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

// ---- the relay's own checks on cosignatures ------------------------------------------------

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
            sealdesk_client::client::EventKind::Updated {
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
