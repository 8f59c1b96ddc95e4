//! The master exports a transcript it unlocked, and the relay no longer has the conversation
//! (issue 20). Erasure is of a whole conversation, so an export never holds an erased item;
//! what the master meets is the relay's `not_found`. `export_transcript` then reads the audit
//! log and says the conversation was erased — why, when, under which entry — only for an
//! erasure entry that holds: signed by the conversation's customer at its request (the key in
//! the released epoch records), about this conversation, not older than it, in a log that
//! makes up its signed tree head. A relay-signed entry claiming the customer's request, one
//! signed by a stranger, a replayed old statement are named as not genuine; an erasure of
//! another conversation explains nothing (`not_found` stands).
//!
//! The relay's operator holds its log key here ([`World::with_relay_keys`]): the forged log it
//! serves is an append-only extension of the one the master pinned, so only the entry's own
//! checks can catch it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{sync::Arc, time::Duration};

use sealdesk_client::{Client, ClientError};
use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent},
    card::Role,
    erasure::customer_erasure,
    ids::ConversationId,
    keys::IdentityKeys,
    release::{ConsentToken, Justification, Scope},
    wire::{ErrorCode, Frame, Request, Response},
};
use sealdesk_tests::{
    Identity,
    audit_log::{erasure_entry, served_log},
    now,
    proxy::LogForger,
    rng,
    transcript::release_by_consent,
    world::{MASTER, Via, World, open_chat},
};

/// A released conversation: the master (through the proxy, whose log forger holds the relay's
/// own log key and mirrors its log) unlocked carol's conversation under her consent.
async fn released(seed: u64) -> (World, Arc<LogForger>, Client, Client, ConversationId) {
    let keys = IdentityKeys::generate(&mut rng(seed));
    let w = World::with_relay_keys(&keys).await;
    let forger = LogForger::with_keys(keys);
    let f = Arc::clone(&forger);
    w.proxy()
        .set_hook(move |ctx, frame| vec![f.rewrite(ctx, frame)]);
    let org = w.org(&["alice"], None).await;
    for a in org.agents {
        a.close().await;
    }
    org.master.close().await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "my order never came").await.unwrap();
    let mut master = w.reopen_via(MASTER, Via::Proxy).await;
    let t = release_by_consent(&w, &mut carol, &mut master, conv, Scope::Full).await;
    assert_eq!(t.messages.len(), 1);
    (w, forger, master, carol, conv)
}

/// Every entry of the relay's log (none withheld from `c`: the test's log is one org's).
async fn log_of(c: &Client) -> Vec<AuditEntry> {
    let (entries, withheld) = served_log(c, 200).await;
    assert!(withheld.is_empty(), "{withheld:?}");
    entries
}

/// The index of `conv`'s erasure in `log`.
fn erasure_index(log: &[AuditEntry], conv: ConversationId) -> u64 {
    log.iter()
        .position(
            |e| matches!(e.event, AuditEvent::Erasure { conversation, .. } if conversation == conv),
        )
        .unwrap() as u64
}

/// The relay pretends it no longer has `conv` (to the master), and serves `log` with `entry`
/// appended (kept in `log`); the entry's index.
fn gone_with_entry(
    w: &World,
    forger: &Arc<LogForger>,
    conv: ConversationId,
    log: &mut Vec<AuditEntry>,
    entry: AuditEntry,
) -> u64 {
    log.push(entry);
    forger.serve(log.clone());
    let f = Arc::clone(forger);
    w.proxy().set_hook(move |ctx, frame| {
        let asks = matches!(ctx.request,
            Some(Request::History { conversation, .. }) if *conversation == conv);
        match frame {
            Frame::Response { id, .. } if asks && ctx.account == Some(MASTER) => {
                vec![Frame::Response {
                    id,
                    body: Response::error(
                        ErrorCode::NotFound,
                        "no such conversation for this account",
                    ),
                }]
            }
            frame => vec![f.rewrite(ctx, frame)],
        }
    });
    log.len() as u64 - 1
}

fn not_genuine(r: Result<sealdesk_client::transcript::ExportFile, ClientError>) -> String {
    match r {
        Err(ClientError::ErasureNotGenuine { detail, .. }) => detail,
        other => panic!("expected ErasureNotGenuine, got {other:?}"),
    }
}

/// carol erases the conversation: the master's export says so, naming the entry; the
/// transcript unlocked before is still there.
#[tokio::test]
async fn exporting_an_erased_conversation_names_its_erasure() {
    let (_w, _forger, mut master, mut carol, conv) = released(9_800).await;
    carol.erase(&conv).await.unwrap();
    let index = erasure_index(&log_of(&carol).await, conv);
    let err = master.export_transcript(&conv, false).await.unwrap_err();
    match &err {
        ClientError::ConversationErased {
            conversation,
            reason,
            index: at,
            ..
        } => {
            assert_eq!(conversation, &conv.to_string());
            assert_eq!(*reason, "at the customer's request");
            assert_eq!(*at, index);
        }
        other => panic!("expected ConversationErased, got {other:?}"),
    }
    let words = err.to_string();
    assert!(
        words.contains(&format!("audit entry #{index}")) && words.contains("transcript show"),
        "{words}"
    );
    assert_eq!(master.transcript(&conv).unwrap().messages.len(), 1);
}

/// The relay says the conversation is gone and logs "the customer erased it" under its own
/// key, under a stranger's key, a retention erasure under the customer's key, and an old
/// statement of the customer's replayed: none is an erasure that holds, each is named. (The
/// log only grows, as the master's pinned head requires.)
#[tokio::test]
async fn a_forged_erasure_does_not_explain_a_missing_conversation() {
    let (w, forger, mut master, carol, conv) = released(9_810).await;
    let mut log = log_of(&carol).await;
    let stranger = Identity::new(9_811, "carol", Role::Customer).keys;
    let forged = [
        (
            erasure_entry(forger.keys(), conv, "customer request", now()),
            "it claims the customer's request and is not signed by the customer",
        ),
        (
            customer_erasure(&stranger, conv, now()),
            "it claims the customer's request and is not signed by the customer",
        ),
        (
            erasure_entry(carol.account().keys(), conv, "retention", now()),
            "it claims the retention period and is not signed by the relay's log key",
        ),
        (
            customer_erasure(carol.account().keys(), conv, 1_000),
            "it was signed before the conversation was opened",
        ),
    ];
    for (entry, why) in forged {
        let index = gone_with_entry(&w, &forger, conv, &mut log, entry);
        let d = not_genuine(master.export_transcript(&conv, false).await);
        let said = format!("audit entry #{index} says it was erased, but {why}");
        assert!(d.contains(&said), "{said} in {d}");
    }
}

/// The relay says the conversation is gone, and the log holds a genuine erasure of another
/// conversation by the same customer: it explains nothing, the relay's `not_found` stands. A
/// genuine retention erasure under the relay's log key is named as one.
#[tokio::test]
async fn an_erasure_of_another_conversation_explains_nothing() {
    let (w, forger, mut master, carol, conv) = released(9_820).await;
    let real = log_of(&carol).await;
    let other = ConversationId::from_bytes(&[0x5a; 16]).unwrap();

    let mut log = real;
    let elsewhere = customer_erasure(carol.account().keys(), other, now());
    gone_with_entry(&w, &forger, conv, &mut log, elsewhere);
    match master.export_transcript(&conv, false).await {
        Err(ClientError::Relay {
            code: ErrorCode::NotFound,
            ..
        }) => {}
        other => panic!("expected the relay's not_found, got {other:?}"),
    }

    let retention = erasure_entry(forger.keys(), conv, "retention", now());
    let index = gone_with_entry(&w, &forger, conv, &mut log, retention);
    match master.export_transcript(&conv, false).await {
        Err(ClientError::ConversationErased {
            reason, index: at, ..
        }) => {
            assert_eq!(reason, "at the end of the retention period");
            assert_eq!(at, index);
        }
        other => panic!("expected ConversationErased, got {other:?}"),
    }
}

/// The master's error for `dispute open` of `conv`.
async fn dispute(master: &mut Client, conv: &ConversationId) -> ClientError {
    master
        .open_dispute(conv, None, "chargeback")
        .await
        .map(drop)
        .unwrap_err()
}

/// The master's error for `transcript unlock` of `conv` under `consent`.
async fn unlock(master: &mut Client, conv: &ConversationId, consent: &ConsentToken) -> ClientError {
    master
        .unlock(
            conv,
            Justification::Consent(consent.clone()),
            None,
            Duration::ZERO,
            |_| {},
        )
        .await
        .map(drop)
        .unwrap_err()
}

/// carol erases the conversation: `dispute open` and `transcript unlock` say so too, naming
/// the entry and what can no longer be done, as `export` does.
#[tokio::test]
async fn dispute_and_unlock_of_an_erased_conversation_name_its_erasure() {
    let (_w, _forger, mut master, mut carol, conv) = released(9_830).await;
    let consent = carol
        .grant_consent(&conv, None, Scope::Full, 3600, "quality review")
        .await
        .unwrap();
    carol.erase(&conv).await.unwrap();
    let index = erasure_index(&log_of(&carol).await, conv);
    for (err, what) in [
        (
            dispute(&mut master, &conv).await,
            "no dispute can be opened for it",
        ),
        (
            unlock(&mut master, &conv, &consent).await,
            "nothing more of it can be unlocked",
        ),
    ] {
        match &err {
            ClientError::ConversationErased {
                reason, index: at, ..
            } => {
                assert_eq!(*reason, "at the customer's request");
                assert_eq!(*at, index);
            }
            other => panic!("expected ConversationErased, got {other:?}"),
        }
        let words = err.to_string();
        assert!(
            words.contains(&format!("audit entry #{index}")) && words.contains(what),
            "{words}"
        );
    }
}

/// The relay says the conversation is gone and logs a customer's erasure under its own key:
/// `dispute open` and `transcript unlock` name it as not genuine, as `export` does.
#[tokio::test]
async fn a_forged_erasure_does_not_explain_a_missing_conversation_to_dispute_or_unlock() {
    let (w, forger, mut master, mut carol, conv) = released(9_840).await;
    let consent = carol
        .grant_consent(&conv, None, Scope::Full, 3600, "quality review")
        .await
        .unwrap();
    let mut log = log_of(&carol).await;
    let forged = erasure_entry(forger.keys(), conv, "customer request", now());
    let index = gone_with_entry(&w, &forger, conv, &mut log, forged);
    let said = format!(
        "audit entry #{index} says it was erased, but it claims the customer's request and is \
         not signed by the customer"
    );
    for err in [
        dispute(&mut master, &conv).await,
        unlock(&mut master, &conv, &consent).await,
    ] {
        match err {
            ClientError::ErasureNotGenuine { detail, .. } => {
                assert!(detail.contains(&said), "{said} in {detail}");
            }
            other => panic!("expected ErasureNotGenuine, got {other:?}"),
        }
    }
}

/// A conversation the master never unlocked, erased by its customer: the master has no
/// records to tell who the customer was, so the entry is neither confirmed nor refused — the
/// relay's `not_found` stands, saying what the entry claims and why it cannot be checked.
#[tokio::test]
async fn an_erasure_the_master_cannot_check_leaves_not_found_with_why() {
    let (_w, _forger, mut master, mut carol, _) = released(9_850).await;
    let other = open_chat(&mut carol).await;
    carol.send_text(&other, "another question").await.unwrap();
    let consent = carol
        .grant_consent(&other, None, Scope::Full, 3600, "quality review")
        .await
        .unwrap();
    carol.erase(&other).await.unwrap();
    let index = erasure_index(&log_of(&carol).await, other);
    for err in [
        dispute(&mut master, &other).await,
        unlock(&mut master, &other, &consent).await,
    ] {
        match err {
            ClientError::Relay {
                code: ErrorCode::NotFound,
                message,
                ..
            } => assert!(
                message.contains(&format!(
                    "audit entry #{index} says it was erased at the customer's request, but \
                     this master never unlocked it"
                )),
                "{message}"
            ),
            other => panic!("expected the relay's not_found, got {other:?}"),
        }
    }
}
