//! Who may say a conversation was erased (`sealdesk_protocol::erasure`): an erasure at the
//! customer's request is signed by the customer, and only a retention erasure by the relay's
//! log key. The relay logs the customer's own entry; readers (`audit`, history notices) refuse
//! a relay-signed entry claiming the customer's reason, a customer entry signed by another key
//! or for another conversation, a replayed entry, and a retention erasure of a conversation
//! that was not idle for the retention period. The relay refuses an erasure request without the
//! customer's entry, or with one that is not the customer's, not this conversation's, or old.
//!
//! Hermetic: loopback only, temporary directories, the fast test KDF.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use sealdesk_client::{
    Client, ClientError, account::LogEntry, client::HistoryLine, escrow::AuditReport,
};
use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent},
    card::Role,
    erasure::customer_erasure,
    ids::ConversationId,
    keys::IdentityKeys,
    release::{CLOCK_SKEW_SECS, ErasureRequest},
    wire::{ErrorCode, Item, Request, Response},
};
use sealdesk_tests::{
    Identity,
    audit_log::{erasure_entry, served_entries},
    now,
    proxy::{Dir, LogForger, edit_items},
    world::{Via, World, open_chat},
};

fn line(report: &AuditReport, index: u64) -> &sealdesk_client::escrow::AuditLine {
    report
        .entries
        .iter()
        .find(|e| e.index == index)
        .unwrap_or_else(|| panic!("no line {index} in {report:?}"))
}

fn refused(r: Result<Response, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Relay { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A world with the log forger in front of the relay (its own log key, mirroring the relay's
/// log), carol (customer, through the proxy) in one conversation with alice.
async fn setup(seed: u64) -> (World, Arc<LogForger>, Client, ConversationId) {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let forger = LogForger::new(seed);
    let f = Arc::clone(&forger);
    w.proxy()
        .set_hook(move |ctx, frame| vec![f.rewrite(ctx, frame)]);
    let mut carol = w.user_via("carol", Role::Customer, Via::Proxy).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();
    (w, forger, carol, conv)
}

/// The honest path: carol's erasure is logged as the entry she signed, and her `audit` (and
/// the agent's) reads it as genuine.
#[tokio::test]
async fn a_customer_erasure_is_logged_under_the_customer_signature() {
    let w = World::new().await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();
    let mut alice = w.reopen("alice").await;
    alice.sync_all().await.unwrap();

    carol.erase(&conv).await.unwrap();
    let log = served_entries(&carol, 200).await;
    let (index, entry) = log
        .iter()
        .enumerate()
        .find(|(_, e)| matches!(e.event, AuditEvent::Erasure { .. }))
        .unwrap();
    assert_eq!(entry.signer, carol.account().keys().signing_public());
    assert!(matches!(&entry.event,
        AuditEvent::Erasure { conversation, reason } if *conversation == conv && reason == "customer request"));

    let report = carol.audit(Some(conv), false).await.unwrap();
    let l = line(&report, index as u64);
    assert!(l.signer_allowed && l.fault.is_none(), "{l:?}");
    assert!(report.verified(), "{report:?}");
    let report = alice.audit(Some(conv), false).await.unwrap();
    assert!(line(&report, index as u64).signer_allowed, "{report:?}");
    assert!(report.verified(), "{report:?}");

    // Replayed to the relay: the conversation is gone, nothing is logged again.
    let again = ErasureRequest::sign(carol.account().keys(), conv, now());
    assert_eq!(
        refused(carol.session().request(Request::Erase(again)).await),
        ErrorCode::NotFound
    );
    assert_eq!(served_entries(&carol, 200).await.len(), log.len());
}

/// The relay (with the log key clients pinned) logs "the customer erased it" under its own
/// key: `audit` flags it (signer not allowed), and delivered as a notice it is NOT GENUINE.
/// A retention erasure under the same key is accepted as to its signer.
#[tokio::test]
async fn a_relay_signed_erasure_claiming_the_customer_reason_is_refused() {
    let (w, forger, mut carol, conv) = setup(9_700).await;
    let real = served_entries(&carol, 200).await;
    let size = real.len() as u64;
    let forged = erasure_entry(forger.keys(), conv, "customer request", now());
    let mut log = real.clone();
    log.push(forged.clone());
    forger.serve(log);

    let report = carol.audit(Some(conv), false).await.unwrap();
    let l = line(&report, size);
    assert!(l.signed && !l.signer_allowed, "{l:?}");
    assert!(l.text.contains("NOT GENUINE"), "{l:?}");
    assert!(!report.verified());

    // The same entry delivered as a notice in the conversation.
    let shown = delivered_as_notice(&w, &forger, &mut carol, conv, forged, size).await;
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(
        !shown[0].1 && shown[0].0.contains("NOT GENUINE"),
        "{shown:?}"
    );
}

/// An erasure "by the customer" signed by another key is refused by `audit`; one signed by
/// carol for another conversation is refused when delivered as a notice in hers.
#[tokio::test]
async fn a_customer_erasure_by_another_key_or_for_another_conversation_is_refused() {
    let (w, forger, mut carol, conv) = setup(9_710).await;
    let real = served_entries(&carol, 200).await;
    let size = real.len() as u64;
    let stranger = Identity::new(9_711, "carol", Role::Customer).keys;
    let other_conv = ConversationId::from_bytes(&[0x5a; 16]).unwrap();
    let elsewhere = customer_erasure(carol.account().keys(), other_conv, now());
    let mut log = real;
    log.push(customer_erasure(&stranger, conv, now()));
    log.push(elsewhere.clone());
    forger.serve(log);

    let report = carol.audit(Some(conv), false).await.unwrap();
    let l = line(&report, size);
    assert!(l.signed && !l.signer_allowed, "{l:?}");
    assert!(!report.verified());

    let shown = delivered_as_notice(&w, &forger, &mut carol, conv, elsewhere, size + 1).await;
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(!shown[0].1, "{shown:?}");
}

/// The customer's genuine erasure entry shown twice in the log: the repeat is a replay; and a
/// statement signed before the conversation was opened (an earlier conversation's, replayed
/// under the same id) too.
#[tokio::test]
async fn a_replayed_customer_erasure_is_refused() {
    let (_w, forger, mut carol, conv) = setup(9_720).await;
    let real = served_entries(&carol, 200).await;
    let size = real.len() as u64;
    let genuine = customer_erasure(carol.account().keys(), conv, now());
    let created = carol.meta(&conv).unwrap().created_at;
    let stale = customer_erasure(carol.account().keys(), conv, created - 2 * CLOCK_SKEW_SECS);
    let mut log = real;
    log.extend([genuine.clone(), genuine, stale]);
    forger.serve(log);

    let report = carol.audit(Some(conv), false).await.unwrap();
    let first = line(&report, size);
    assert!(first.signer_allowed && first.fault.is_none(), "{first:?}");
    for i in [size + 1, size + 2] {
        let l = line(&report, i);
        assert!(l.signer_allowed, "{l:?}");
        let fault = l.fault.as_deref().unwrap_or_default();
        assert!(fault.contains("replayed"), "{l:?}");
        assert!(l.text.contains("NOT GENUINE"), "{l:?}");
    }
    assert!(!report.verified());
}

/// A retention erasure (relay-signed, the one reason its key may give) of a conversation
/// active moments ago, under a policy keeping conversations for a year: implausible, refused.
#[tokio::test]
async fn an_implausible_retention_erasure_is_refused() {
    let (_w, forger, mut carol, conv) = setup(9_730).await;
    let real = served_entries(&carol, 200).await;
    let size = real.len() as u64;
    let mut log = real;
    log.push(erasure_entry(forger.keys(), conv, "retention", now()));
    forger.serve(log);

    let report = carol.audit(Some(conv), false).await.unwrap();
    let l = line(&report, size);
    assert!(l.signer_allowed, "{l:?}");
    let fault = l.fault.as_deref().unwrap_or_default();
    assert!(fault.contains("implausible"), "{l:?}");
    assert!(!report.verified());
}

/// The relay's own checks on an erasure request: the customer's entry must be there, signed by
/// the customer, about this conversation with the customer's reason, and fresh. Nothing is
/// erased or logged by a refused request; the genuine request then goes through.
#[tokio::test]
async fn the_relay_logs_only_the_customer_own_fresh_statement() {
    let w = World::new().await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    let keys = IdentityKeys::from_secret_bytes(&carol.account().keys().to_secret_bytes());
    let stranger = Identity::new(9_740, "carol", Role::Customer).keys;
    let before = served_entries(&carol, 200).await.len();
    let with = |statement: Option<AuditEntry>| {
        let mut r = ErasureRequest::sign(&keys, conv, now());
        r.statement = statement;
        r
    };
    let cases = [
        (with(None), ErrorCode::BadRequest),
        (
            with(Some(customer_erasure(&stranger, conv, now()))),
            ErrorCode::Forbidden,
        ),
        (
            with(Some(customer_erasure(
                &keys,
                ConversationId::from_bytes(&[7; 16]).unwrap(),
                now(),
            ))),
            ErrorCode::BadRequest,
        ),
        (
            with(Some(erasure_entry(&keys, conv, "retention", now()))),
            ErrorCode::BadRequest,
        ),
        (
            with(Some(customer_erasure(
                &keys,
                conv,
                now() - 2 * CLOCK_SKEW_SECS,
            ))),
            ErrorCode::BadRequest,
        ),
    ];
    for (i, (r, code)) in cases.into_iter().enumerate() {
        assert_eq!(
            refused(carol.session().request(Request::Erase(r)).await),
            code,
            "case {i}"
        );
    }
    assert_eq!(
        served_entries(&carol, 200).await.len(),
        before,
        "nothing logged"
    );
    carol.send_text(&conv, "still here").await.unwrap();
    carol.erase(&conv).await.unwrap();
    assert_eq!(served_entries(&carol, 200).await.len(), before + 1);
}

/// The notices shown: (text, verified).
/// alice writes in carol's conversation, and the relay delivers that item to carol as the
/// notice of `entry` at log index `index` instead; carol catches up. The notices she is shown.
async fn delivered_as_notice(
    w: &World,
    forger: &Arc<LogForger>,
    carol: &mut Client,
    conv: ConversationId,
    entry: AuditEntry,
    index: u64,
) -> Vec<(String, bool)> {
    let mut alice = w.reopen("alice").await;
    alice.sync_all().await.unwrap();
    carol.sync_all().await.unwrap();
    let next = carol.meta(&conv).unwrap().cursor + 1;
    let f = Arc::clone(forger);
    let notice = Item::Notice { entry, index };
    w.proxy().set_hook(move |ctx, frame| {
        let frame = f.rewrite(ctx, frame);
        if ctx.dir == Dir::ToClient && ctx.account == Some("carol") {
            vec![edit_items(frame, |s| {
                if s.conversation == conv && s.seq == next {
                    s.item = notice.clone();
                }
            })]
        } else {
            vec![frame]
        }
    });
    // The carrier is the item the relay replaces.
    assert_eq!(alice.send_text(&conv, "carrier").await.unwrap(), next);
    carol.sync_all().await.unwrap();
    notices(carol, &conv)
}

fn notices(c: &Client, conv: &ConversationId) -> Vec<(String, bool)> {
    c.history(conv)
        .unwrap()
        .lines
        .into_iter()
        .filter_map(|l| match l {
            HistoryLine::Item {
                entry: LogEntry::Notice { text, verified, .. },
                ..
            } => Some((text, verified)),
            _ => None,
        })
        .collect()
}
