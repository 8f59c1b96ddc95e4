//! The hostile relay forges release notices and audit entries: a notice not in the log, a
//! release entry signed by a non-trustee in its own log, an old notice re-delivered, a forged
//! second entry of a release, a contradicting trustee entry delivered first, and entries whose
//! kind their signer may not make. None is shown as a genuine opening or a genuine entry.
//!
//! Hermetic: loopback only, temporary directories, the fast test KDF. No timing assertions:
//! the only waits are generous bounds ([`sealdesk_tests::STEP`]) that keep a broken test from
//! hanging. `SECURITY.md` maps each attack to its test and the observed result; the other
//! `hostile_*.rs` files hold the rest of the hostile relay's attacks, and
//! [`sealdesk_tests::hostile`] its shared hooks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use sealdesk_client::Client;
use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent, ReleaseBasis},
    card::Role,
    ids::{ConversationId, EpochRange, TokenId},
    keys::IdentityKeys,
    release::{Justification, Scope},
    wire::Item,
};
use sealdesk_tests::{
    audit_log::{erasure_entry, served_entries},
    consent::revocation,
    hostile::{forge_log, forge_log_with_notice, impostor, replace_for},
    now,
    proxy::LogForger,
    release::{consenting_carol, submit_release, trustees_answer},
    timeline::{items, notices},
    transcript::release,
    withhold::pages_for,
    world::{ORG, Via, World, open_chat},
};

// ---- release notices -----------------------------------------------------------------------

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

// ---- signers per entry kind ----------------------------------------------------------------

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
