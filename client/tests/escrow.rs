//! Escrow release end to end: real relay, real trustee loops.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use sealdesk_client::{
    Client, ClientError, account::LogEntry, client::HistoryLine, escrow::TrusteeStage,
};
use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    release::{Justification, Scope, Verdict},
    wire::ErrorCode,
};
use support::{World, open_chat};

/// Trustees that answer whatever is pending, a few times (no timing assertions: the master's
/// unlock polls until enough shares arrive).
async fn trustees_answer(w: &World, names: &[&str]) {
    for n in names {
        let mut t = w.reopen(n).await;
        t.trustee_pending().await.unwrap();
        t.close().await;
    }
}

struct Setup {
    w: World,
    master: Client,
    alice: Client,
    carol: Client,
    conv: ConversationId,
}

async fn setup() -> Setup {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol
        .send_text(&conv, "my card is 4111 1111 1111 1111")
        .await
        .unwrap();
    let mut alice = org.agents.remove(0);
    alice.sync_all().await.unwrap();
    alice
        .send_text(&conv, "thanks, refund issued")
        .await
        .unwrap();
    carol.sync_all().await.unwrap();
    Setup {
        w,
        master: org.master,
        alice,
        carol,
        conv,
    }
}

/// Runs the master's unlock while two trustees answer.
async fn unlock_with(
    s: &mut Setup,
    j: Justification,
    trustees: &[&str],
) -> sealdesk_client::Result<sealdesk_client::escrow::Transcript> {
    let conv = s.conv;
    let w = &s.w;
    let master = &mut s.master;
    let unlock = master.unlock(&conv, j, None, Duration::from_secs(20), |_| {});
    let answer = async {
        // Give the request a moment to reach the relay, then answer (repeatedly is harmless).
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            trustees_answer(w, trustees).await;
        }
    };
    let (r, ()) = tokio::join!(unlock, answer);
    r
}

#[tokio::test]
async fn consent_release_gives_the_exact_transcript_and_the_customer_is_told() {
    let mut s = setup().await;
    // Before any release the master has nothing, as a typed error.
    let err = s.master.transcript(&s.conv).unwrap_err();
    assert!(err.to_string().contains("nothing of conversation"), "{err}");

    let token = s
        .carol
        .grant_consent(&s.conv, None, Scope::Full, 3600, "quality review")
        .await
        .unwrap();
    let t = unlock_with(
        &mut s,
        Justification::Consent(token.clone()),
        &["trustee-1", "trustee-2"],
    )
    .await
    .unwrap();
    let said: Vec<String> = t
        .messages
        .iter()
        .map(|m| format!("{}: {}", m.sender, m.text))
        .collect();
    assert_eq!(
        said,
        vec![
            "carol: my card is 4111 1111 1111 1111",
            "alice: thanks, refund issued"
        ]
    );
    assert_eq!(t.releases.len(), 2);

    // The customer sees verified notices, and the audit log proves them.
    s.carol.sync_all().await.unwrap();
    let h = s.carol.history(&s.conv).unwrap();
    let notices: Vec<_> = h
        .lines
        .iter()
        .filter_map(|l| match l {
            HistoryLine::Item {
                entry: LogEntry::Notice { text, verified, .. },
                ..
            } => Some((text.clone(), *verified)),
            _ => None,
        })
        .collect();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(
        notices
            .iter()
            .all(|(t, v)| *v && t.contains("under your consent"))
    );
    let report = s.carol.audit(Some(s.conv), true).await.unwrap();
    assert_eq!(report.entries.len(), 2);
    assert!(
        report
            .entries
            .iter()
            .all(|e| e.included == Some(true) && e.signed)
    );

    // The export and its offline verification: tests/transcript.rs.

    // The same consent cannot be used twice.
    let err = unlock_with(
        &mut s,
        Justification::Consent(token),
        &["trustee-1", "trustee-2"],
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("already used"), "{err}");
    drop(s.alice);
}

#[tokio::test]
async fn revoked_consent_is_refused() {
    let mut s = setup().await;
    let token = s
        .carol
        .grant_consent(&s.conv, None, Scope::Full, 3600, "review")
        .await
        .unwrap();
    s.carol.revoke_consent(&token.id).await.unwrap();
    let err = unlock_with(
        &mut s,
        Justification::Consent(token),
        &["trustee-1", "trustee-2"],
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    assert!(s.master.transcript(&s.conv).is_err());
}

#[tokio::test]
async fn consent_signed_by_someone_else_or_for_another_grantee_is_refused() {
    let mut s = setup().await;
    // alice (not the customer) signs a "consent".
    let policy = s.master.latest_policy("acme").await.unwrap();
    let mut forged = s
        .carol
        .grant_consent(&s.conv, None, Scope::Full, 3600, "x")
        .await
        .unwrap();
    forged.customer = s.alice.account().keys().signing_public();
    forged.signature = s.alice.account().keys().sign(&forged.signed_bytes());
    let err = unlock_with(
        &mut s,
        Justification::Consent(forged),
        &["trustee-1", "trustee-2"],
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("customer"), "{err}");
    // A consent granted to another key.
    let mut other = s
        .carol
        .grant_consent(&s.conv, None, Scope::Full, 3600, "y")
        .await
        .unwrap();
    other.grantee = policy.trustees[0].signing_key;
    other.signature = s.carol.account().keys().sign(&other.signed_bytes());
    let err = unlock_with(
        &mut s,
        Justification::Consent(other),
        &["trustee-1", "trustee-2"],
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("another key"), "{err}");
}

#[tokio::test]
async fn dispute_needs_enough_arbiters_and_erasure_is_held() {
    let mut s = setup().await;
    let ticket = s
        .master
        .open_dispute(&s.conv, None, "chargeback")
        .await
        .unwrap();
    // Under an open dispute the customer cannot erase (legal hold).
    let err = s.carol.erase(&s.conv).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Relay {
                code: ErrorCode::LegalHold,
                ..
            }
        ),
        "{err}"
    );
    let mut a1 = s.w.reopen("arbiter-1").await;
    a1.decide_ticket(&ticket.id, Verdict::Approve)
        .await
        .unwrap();
    let j = s
        .master
        .justification(&s.conv, None, Some(&ticket.id))
        .await
        .unwrap();
    let err = unlock_with(&mut s, j, &["trustee-1", "trustee-3"])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("1 of the 2"), "{err}");
    let mut a2 = s.w.reopen("arbiter-2").await;
    a2.decide_ticket(&ticket.id, Verdict::Approve)
        .await
        .unwrap();
    let j = s
        .master
        .justification(&s.conv, None, Some(&ticket.id))
        .await
        .unwrap();
    let t = unlock_with(&mut s, j, &["trustee-2", "trustee-3"])
        .await
        .unwrap();
    assert_eq!(t.messages.len(), 2);
    s.carol.sync_all().await.unwrap();
    let h = s.carol.history(&s.conv).unwrap();
    assert!(h.lines.iter().any(|l| matches!(
        l,
        HistoryLine::Item { entry: LogEntry::Notice { text, .. }, .. } if text.contains("dispute ticket")
    )));
}

#[tokio::test]
async fn a_trustee_killed_after_logging_releases_exactly_once_after_restart() {
    use sealdesk_protocol::{
        audit::{AuditEntry, AuditEvent, ReleaseBasis},
        release::{self, TrusteeView},
        wire::{Request, Response},
    };
    let mut s = setup().await;
    let token = s
        .carol
        .grant_consent(&s.conv, None, Scope::Full, 3600, "restart")
        .await
        .unwrap();
    let conv = s.conv;
    let unlock = s.master.unlock(
        &conv,
        Justification::Consent(token),
        None,
        Duration::from_secs(20),
        |_| {},
    );
    let w = &s.w;
    let answer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trustees_answer(w, &["trustee-1"]).await;
        // trustee-2 decides, persists its stage, appends its release entry, and is killed
        // before sending its share: the steps of `trustee_decide` up to the crash, by hand.
        let mut t2 = w.reopen("trustee-2").await;
        let size_before = t2.audit(None, false).await.unwrap().size;
        let pending = match t2
            .session()
            .request(Request::PendingReleases)
            .await
            .unwrap()
        {
            Response::Releases(p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(pending.len(), 1);
        let p = &pending[0];
        let policy = t2.policy("acme", p.request.policy_version).await.unwrap();
        let records: Vec<_> = p
            .epochs
            .iter()
            .map(|r| r.clone().verify(&policy).unwrap())
            .collect();
        let approved = release::decide(
            &mut sealdesk_client::rng().unwrap(),
            &TrusteeView {
                policy: &policy,
                me: t2.account().keys(),
                now: sealdesk_client::now(),
                epochs: &records,
                is_spent: &|_| false,
                is_revoked: &|_| false,
            },
            &p.request,
        )
        .unwrap();
        let name = format!("trustee/req/{}", p.request.id);
        t2.account()
            .put_cbor(
                &name,
                &sealdesk_client::escrow::TrusteeRecord {
                    justification: approved.justification,
                    stage: TrusteeStage::Logging {
                        log_size: size_before,
                    },
                },
            )
            .unwrap();
        let Justification::Consent(c) = &p.request.justification else {
            panic!()
        };
        let entry = AuditEntry::sign(
            t2.account().keys(),
            AuditEvent::Release {
                org: p.request.org.clone(),
                request_hash: approved.request_hash,
                conversation: p.request.conversation,
                epochs: p.request.epochs,
                basis: ReleaseBasis::Consent {
                    id: c.id,
                    scope: c.scope,
                    issued_at: c.issued_at,
                },
                master: p.request.master,
            },
            sealdesk_client::now(),
        );
        t2.session()
            .request(Request::AppendAudit(entry))
            .await
            .unwrap();
        t2.close().await; // killed

        // Restarted: it finds its entry in the log, does not log again, and sends its share.
        let mut t2 = w.reopen("trustee-2").await;
        let out = t2.trustee_pending().await.unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].outcome, "released");
        let size_after = t2.audit(None, false).await.unwrap().size;
        assert_eq!(size_after, size_before + 1, "trustee-2 logged exactly once");
        let rec: sealdesk_client::escrow::TrusteeRecord =
            t2.account().get_cbor(&name).unwrap().unwrap();
        assert_eq!(rec.stage, TrusteeStage::Released);
        // Running again releases nothing more.
        assert!(t2.trustee_pending().await.unwrap().is_empty());
        t2.close().await;
    };
    let (r, ()) = tokio::join!(unlock, answer);
    let t = r.unwrap();
    assert_eq!(t.messages.len(), 2);
    assert_eq!(t.releases.len(), 2);
}

#[tokio::test]
async fn a_rolled_back_or_forked_log_is_detected() {
    let mut s = setup().await;
    let token = s
        .carol
        .grant_consent(&s.conv, None, Scope::Full, 3600, "audit")
        .await
        .unwrap();
    unlock_with(
        &mut s,
        Justification::Consent(token),
        &["trustee-1", "trustee-2"],
    )
    .await
    .unwrap();
    let report = s.carol.audit(None, true).await.unwrap();
    assert!(report.size >= 2);
    // Pretend carol had seen a longer log: the relay now serving a shorter one is a rollback.
    let mut seen: sealdesk_protocol::audit::SignedTreeHead =
        s.carol.account().get_cbor("audit/head").unwrap().unwrap();
    seen.size += 3;
    s.carol.account().put_cbor("audit/head", &seen).unwrap();
    let err = s.carol.audit(None, false).await.unwrap_err();
    assert!(err.to_string().contains("shrank"), "{err}");
    // Same size, other root: a fork.
    seen.size -= 3;
    seen.root[0] ^= 1;
    s.carol.account().put_cbor("audit/head", &seen).unwrap();
    let err = s.carol.audit(None, false).await.unwrap_err();
    assert!(err.to_string().contains("forked"), "{err}");
}

#[tokio::test]
async fn fewer_than_threshold_trustees_cannot_unlock() {
    let mut s = setup().await;
    let token = s
        .carol
        .grant_consent(&s.conv, None, Scope::Full, 3600, "one trustee")
        .await
        .unwrap();
    let conv = s.conv;
    let w = &s.w;
    let unlock = s.master.unlock(
        &conv,
        Justification::Consent(token),
        None,
        Duration::from_secs(3),
        |_| {},
    );
    let answer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trustees_answer(w, &["trustee-3"]).await;
    };
    let (r, ()) = tokio::join!(unlock, answer);
    let err = r.unwrap_err();
    assert!(err.to_string().contains("only 1 of the 2"), "{err}");
    assert!(s.master.transcript(&s.conv).is_err());
}
