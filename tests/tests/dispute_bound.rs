//! Dispute releases bound to their epoch records: the master's ticket names the hash of each
//! record it releases, the arbiters approve that ticket, the trustees release only from records
//! with those hashes, and the offline verifier checks an export's records against them — so a
//! dispute release verifies as a consent release does. A ticket naming other records is
//! refused by every trustee, and nothing is released.
//!
//! Hermetic: loopback only, temporary directories, the fast test KDF.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use sealdesk_client::{
    Client, ClientError,
    transcript::{Anchors, Reason, verify_export},
};
use sealdesk_protocol::{
    card::Role,
    ids::{ConversationId, EpochRange},
    release::{BoundRecord, DisputeParams, DisputeTicket, Verdict},
    wire::{Item, Request, Response},
};
use sealdesk_tests::{
    transcript::release,
    world::{Via, World, open_chat},
};

/// A conversation of carol and alice with a message each; returns the world, the master,
/// the org's fingerprint and the conversation.
async fn chat() -> (World, Client, String, ConversationId) {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol
        .send_text(&conv, "the parcel never came")
        .await
        .unwrap();
    let mut alice = org.agents.remove(0);
    alice.sync_all().await.unwrap();
    alice.send_text(&conv, "let me check").await.unwrap();
    alice.close().await;
    carol.close().await;
    (w, org.master, org.fingerprint, conv)
}

async fn approve(w: &World, ticket: &DisputeTicket) {
    for a in ["arbiter-1", "arbiter-2"] {
        let mut c = w.reopen(a).await;
        c.decide_ticket(&ticket.id, Verdict::Approve).await.unwrap();
        c.close().await;
    }
}

/// The honest path: `dispute open` binds the records, two arbiters approve, two trustees
/// release; the master's export verifies offline against the org's fingerprint and the log
/// key, with no `dispute_not_bound_to_records`.
#[tokio::test]
async fn a_dispute_release_verifies_offline() {
    let (w, mut master, fingerprint, conv) = chat().await;
    let ticket = master
        .open_dispute(&conv, None, "chargeback")
        .await
        .unwrap();
    assert!(ticket.binds_records());
    approve(&w, &ticket).await;
    let j = master
        .justification(&conv, None, Some(&ticket.id))
        .await
        .unwrap();
    let t = release(&w, &mut master, conv, j).await;
    assert_eq!(t.messages.len(), 2);
    let file = master.export_transcript(&conv, false).await.unwrap();
    let anchors = Anchors {
        org_fingerprint: Some(fingerprint),
        log_keys: vec![master.session().welcome().log_key],
    };
    let v = verify_export(&file, &anchors);
    assert!(v.ok, "{:#?}", v.failures);
    assert!(!v.failed(Reason::DisputeNotBoundToRecords));
}

/// The master opens (and the arbiters approve) a ticket naming a record hash that is not the
/// conversation's: both trustees refuse it by name, nothing is released.
#[tokio::test]
async fn a_ticket_naming_other_records_is_refused_by_the_trustees() {
    let (w, mut master, _fingerprint, conv) = chat().await;
    let items = match master
        .session()
        .request(Request::History {
            conversation: conv,
            after: 0,
            limit: 100,
        })
        .await
        .unwrap()
    {
        Response::Items { items, .. } => items,
        other => panic!("{other:?}"),
    };
    let mut hash = None;
    for s in items {
        if let Item::Epoch(rec) = s.item {
            hash = Some(rec.hash());
        }
    }
    let mut hash = hash.unwrap();
    hash[0] ^= 1;
    let policy = master
        .latest_policy(sealdesk_tests::world::ORG)
        .await
        .unwrap();
    let ticket = DisputeTicket::issue_bound(
        &mut sealdesk_client::rng().unwrap(),
        master.account().keys(),
        &policy,
        DisputeParams {
            conversation: conv,
            epochs: EpochRange::single(0),
            reason: "chargeback".into(),
            valid_secs: 3600,
        },
        vec![BoundRecord { epoch: 0, hash }],
        sealdesk_tests::now(),
    )
    .unwrap();
    assert!(matches!(
        master
            .session()
            .request(Request::OpenTicket(ticket.clone()))
            .await
            .unwrap(),
        Response::Ok
    ));
    approve(&w, &ticket).await;
    let j = master
        .justification(&conv, None, Some(&ticket.id))
        .await
        .unwrap();
    let unlock = master.unlock(&conv, j, None, Duration::from_secs(30), |_| {});
    let (r, _) = w
        .serving(&["trustee-1", "trustee-2"], Via::Relay, unlock)
        .await;
    match r {
        Err(ClientError::ReleaseRefused { refusals }) => {
            assert_eq!(refusals.len(), 2, "{refusals:?}");
            assert!(
                refusals
                    .iter()
                    .all(|(_, why)| why.contains("another record")),
                "{refusals:?}"
            );
        }
        other => panic!("expected the trustees' refusal, got {other:?}"),
    }
}
