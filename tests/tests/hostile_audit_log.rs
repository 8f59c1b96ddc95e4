//! The hostile relay lies about the audit log: a rolled-back, truncated or forked log (with
//! its own log key, through [`LogForger`]), pages of entries longer than asked for, and appends
//! answered with a head that does not hold the appended entry. The client detects each with a
//! named error, keeps its pinned head, and never reports an entry logged that was not.
//!
//! Hermetic: loopback only, temporary directories, the fast test KDF. No timing assertions:
//! the only waits are generous bounds ([`sealdesk_tests::STEP`]) that keep a broken test from
//! hanging. `SECURITY.md` maps each attack to its test and the observed result; the other
//! `hostile_*.rs` files hold the rest of the hostile relay's attacks, and
//! [`sealdesk_tests::hostile`] its shared hooks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use sealdesk_client::{Client, ClientError};
use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent, ExtensionEvent, LogError, SignedTreeHead},
    card::Role,
    keys::IdentityKeys,
    release::{ReleaseRequest, Scope},
    wire::{Frame, ReleaseProgress, Request, Response},
};
use sealdesk_tests::{
    audit_log::{erasure_entry, served_entries, witnesses_cosign},
    hostile::{answer_for, forge_log},
    now,
    proxy::{Ctx, Dir, Injector, LogForger},
    release::{consenting_carol, submit_release},
    world::{ORG, Via, World, open_chat},
};

// ---- the audit log -------------------------------------------------------------------------

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

// ---- appenders check that their entry is logged --------------------------------------------

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

/// A later relay logs an entry of a kind this version cannot read (§12.1 "Kinds a later
/// version adds"): carol's audit still proves the listing makes up the head (the entry's leaf
/// computed from its code and body as served), passes over the entry, counts it and names its
/// index, and does not fail on it. Without the pass-over it is judged as an entry no signer
/// may make, and the audit fails.
#[tokio::test]
async fn an_entry_of_a_later_kind_is_passed_over_counted_and_named() {
    let (_w, mut carol, forger, mut entries) = audited_customer(1).await;
    let later = AuditEvent::Extension(ExtensionEvent::new(6, b"a later kind".to_vec()).unwrap());
    entries.push(AuditEntry::sign(forger.keys(), later, now()));
    let index = entries.len() as u64 - 1;
    forger.serve(entries);
    let report = carol.audit(None, false).await.unwrap();
    assert!(report.leaves_make_head, "{report:?}");
    assert_eq!(report.unreadable, vec![index]);
    assert!(report.entries.iter().all(|l| l.index != index));
    assert!(report.verified(), "{report:?}");
    assert_eq!(
        sealdesk_client::notice::unreadable_summary(&report.unreadable),
        format!("1 entry of a kind this version cannot read at index {index} — update sealdesk")
    );
}

/// Carol's audit, with the first `from` in every `entries` listing the proxy passes her
/// changed to `to` — of the same length, so the CBOR stays well formed: no [`Frame`] can hold
/// what it makes. Returns the error the audit fails with.
async fn audit_with_listings_changed(
    w: &World,
    carol: &mut Client,
    from: &'static [u8],
    to: &'static [u8],
) -> ClientError {
    assert_eq!(from.len(), to.len());
    w.proxy().set_raw_to_client(move |frame, mut bytes| {
        let listing = matches!(
            frame,
            Frame::Response {
                body: Response::Entries { .. },
                ..
            }
        );
        if let Some(at) = bytes.windows(from.len()).position(|w| w == from)
            && listing
        {
            bytes[at..at + to.len()].copy_from_slice(to);
        }
        bytes
    });
    carol.audit(None, false).await.unwrap_err()
}

/// The index and reason of a [`LogError::MalformedEntry`]; panics on any other error.
fn malformed(err: &ClientError) -> (u64, &str) {
    match err {
        ClientError::Protocol(sealdesk_protocol::Error::Audit(LogError::MalformedEntry {
            index,
            reason,
        })) => (*index, reason),
        other => panic!("expected a malformed entry, got {other:?}"),
    }
}

/// The relay serves a listing whose revocation entry names an event no version defines (its
/// name changed in the frame's bytes). The audit fails with [`LogError::MalformedEntry`],
/// naming the entry's index and why in words — not the frame's decode message — and the
/// session goes on: carol's next request is answered.
#[tokio::test]
async fn a_malformed_entry_is_refused_with_its_index_and_reason() {
    let (w, mut carol, forger, entries) = audited_customer(1).await;
    let index = entries
        .iter()
        .position(|e| matches!(e.event, AuditEvent::ConsentRevocation { .. }))
        .unwrap() as u64;
    forger.serve(entries);
    let err =
        audit_with_listings_changed(&w, &mut carol, b"consent_revocation", b"consent_retraction")
            .await;
    assert_eq!(malformed(&err).0, index, "{err:?}");
    // What `sealdesk audit` prints after "error: ".
    assert_eq!(
        err.to_string(),
        format!(
            "the relay served a malformed audit log entry at #{index}: its event \
             `consent_retraction` is not a kind this version knows (a later kind is served as \
             `extension`, with its code)"
        )
    );
    assert!(carol.checked_tree_head().await.is_ok());
}

/// A known kind served in the extension form (`{ extension: { code: 1, … } }`, code 1 being a
/// kind this version reads by name): a later kind's entry whose code the relay changed to 1.
/// Not passed over as a later kind: the audit fails with [`LogError::MalformedEntry`] at its
/// index, saying so, and the session goes on.
#[tokio::test]
async fn a_known_kind_in_the_extension_form_is_refused_with_its_index() {
    let (w, mut carol, forger, mut entries) = audited_customer(1).await;
    let later = AuditEvent::Extension(ExtensionEvent::new(6, b"a later kind".to_vec()).unwrap());
    entries.push(AuditEntry::sign(forger.keys(), later, now()));
    let index = entries.len() as u64 - 1;
    forger.serve(entries);
    // CBOR: the text `code` (0x64 and its 4 bytes), then the unsigned integer 6 (one byte).
    let err = audit_with_listings_changed(&w, &mut carol, b"\x64code\x06", b"\x64code\x01").await;
    let (at, reason) = malformed(&err);
    assert_eq!(at, index, "{err:?}");
    assert!(
        reason.contains("an event of code 1 served as a kind this version cannot read"),
        "{reason}"
    );
    assert!(carol.checked_tree_head().await.is_ok());
}

/// An entry with a field of the wrong type (its time, `at`, a negative integer: a major type
/// changed in the frame's bytes): the audit fails with [`LogError::MalformedEntry`] at the
/// first entry's index, naming the field's fault, and the session goes on.
#[tokio::test]
async fn an_entry_with_a_bad_field_is_refused_with_its_index() {
    let (w, mut carol, forger, entries) = audited_customer(1).await;
    forger.serve(entries);
    // CBOR: the text `at` (0x62 and its 2 bytes), then a 4-byte unsigned integer (0x1a) — made
    // a 4-byte negative one (0x3a).
    let err = audit_with_listings_changed(&w, &mut carol, b"\x62at\x1a", b"\x62at\x3a").await;
    let (at, reason) = malformed(&err);
    assert_eq!(at, 0, "{err:?}");
    assert!(reason.starts_with("a field does not decode: "), "{reason}");
    assert!(carol.checked_tree_head().await.is_ok());
}
