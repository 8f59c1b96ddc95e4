//! Escrow release end to end: real relay, real trustee loops.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use sealdesk_client::{
    Client, ClientError, account::LogEntry, client::HistoryLine, escrow::TrusteeStage,
};
use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    release::{Justification, ReleaseRequest, Scope, Verdict},
    wire::{ErrorCode, Request, Response},
};
use sealdesk_tests::{
    audit_log::served_entries,
    eventually, release,
    world::{Via, World, assert_nothing_released, open_chat, released_once},
};

/// Trustees that answer whatever is pending now (a request already submitted), then witness
/// the log; returns each one's outcomes.
async fn trustees_answer(w: &World, names: &[&str]) -> Vec<Vec<String>> {
    let outcomes = release::trustees_answer(w, names, Via::Relay).await;
    // What the trustees' serve loops do within a minute: every trustee cosigns the log as it
    // now stands, so the last releasers' entries are witnessed too and their notices genuine
    // (one whose vault the test holds open, as a trustee it is about to kill, does not).
    let _ = w.witness(&["trustee-1", "trustee-2", "trustee-3"]).await;
    outcomes
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

/// Runs the master's unlock while `trustees` serve; a transcript the master obtained must come
/// from each of them releasing once.
async fn unlock_with(
    s: &mut Setup,
    j: Justification,
    trustees: &[&str],
) -> sealdesk_client::Result<sealdesk_client::escrow::Transcript> {
    let (r, outcomes) = unlock_outcomes(s, j, trustees).await;
    if r.is_ok() {
        released_once(&outcomes);
    }
    r
}

/// Runs the master's unlock while trustee-1 and trustee-2 serve: both refuse it with `reason`,
/// nothing is released, and the master's error says the release was refused by too many
/// trustees and mentions `says`.
async fn refused_by_both_trustees(s: &mut Setup, j: Justification, reason: &str, says: &str) {
    let (r, outcomes) = unlock_outcomes(s, j, &["trustee-1", "trustee-2"]).await;
    let refused = format!("refused: {reason}");
    for o in &outcomes {
        assert!(
            !o.is_empty() && o.iter().all(|x| *x == refused),
            "{outcomes:?}"
        );
    }
    let err = match r {
        Ok(t) => panic!("released {} messages", t.messages.len()),
        Err(e) => e,
    };
    assert!(
        err.to_string().contains("refused by too many trustees") && err.to_string().contains(says),
        "{err}"
    );
}

/// [`unlock_with`], also returning what each trustee did.
async fn unlock_outcomes(
    s: &mut Setup,
    j: Justification,
    trustees: &[&str],
) -> (
    sealdesk_client::Result<sealdesk_client::escrow::Transcript>,
    Vec<Vec<String>>,
) {
    let conv = s.conv;
    let unlock = s
        .master
        .unlock(&conv, j, None, Duration::from_secs(20), |_| {});
    s.w.serving(trustees, Via::Relay, unlock).await
}

#[tokio::test]
async fn consent_release_gives_the_exact_transcript_and_the_customer_is_told() {
    let mut s = setup().await;
    // Before any release the master has nothing, as a typed error.
    let err = s.master.transcript(&s.conv).unwrap_err();
    assert_eq!(
        err,
        ClientError::NotReleased {
            conversation: s.conv.to_string()
        }
    );

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
    assert_eq!(notices.len(), 1, "one release, one notice: {notices:?}");
    assert!(
        notices
            .iter()
            .all(|(t, v)| *v && t.contains("under your consent"))
    );
    let report = s.carol.audit(Some(s.conv), true).await.unwrap();
    assert_eq!(report.entries.len(), 2);
    assert!(!report.entries.is_empty());
    assert!(
        report
            .entries
            .iter()
            .all(|e| e.included == Some(true) && e.signed)
    );

    // The export and its offline verification: tests/tests/client_transcript.rs.

    // Unlocking again under the same consent makes no second request: the released one is
    // collected again, and the trustees that answered it have nothing pending.
    let again = s
        .master
        .unlock(
            &s.conv,
            Justification::Consent(token.clone()),
            None,
            Duration::from_secs(20),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(again.messages.len(), 2);
    let outcomes = trustees_answer(&s.w, &["trustee-1", "trustee-2"]).await;
    assert!(outcomes.iter().all(Vec::is_empty), "{outcomes:?}");

    // The same consent cannot be used twice: a second request under it is refused.
    let policy = s.master.latest_policy("acme").await.unwrap();
    let second = ReleaseRequest::sign(
        &mut sealdesk_client::rng().unwrap(),
        s.master.account().keys(),
        &policy,
        token.epochs,
        Justification::Consent(token),
        sealdesk_client::now(),
    )
    .unwrap();
    let answer = s
        .master
        .session()
        .request(Request::SubmitRelease(second))
        .await
        .unwrap();
    assert_eq!(answer, Response::Ok);
    let outcomes = trustees_answer(&s.w, &["trustee-1", "trustee-2"]).await;
    for o in &outcomes {
        assert_eq!(
            o,
            &vec!["refused: the justification was already used".to_owned()],
            "{outcomes:?}"
        );
    }
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
    refused_by_both_trustees(
        &mut s,
        Justification::Consent(token),
        "the consent was revoked",
        "revoked",
    )
    .await;
    assert_nothing_released(&s.master, &s.conv);
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
    refused_by_both_trustees(
        &mut s,
        Justification::Consent(forged),
        "the consent is not signed by the conversation's customer",
        "customer",
    )
    .await;
    // A consent granted to another key.
    let mut other = s
        .carol
        .grant_consent(&s.conv, None, Scope::Full, 3600, "y")
        .await
        .unwrap();
    other.grantee = policy.trustees[0].signing_key;
    other.signature = s.carol.account().keys().sign(&other.signed_bytes());
    refused_by_both_trustees(
        &mut s,
        Justification::Consent(other),
        "the consent is granted to another key",
        "another key",
    )
    .await;
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
    let (r, outcomes) = unlock_outcomes(&mut s, j, &["trustee-1", "trustee-3"]).await;
    let err = r.unwrap_err();
    // Both trustees asked refuse, for the missing approval: one of the two arbiters approved.
    const TOO_FEW: &str = "refused: 1 of the 2 required arbiter approvals";
    match &err {
        ClientError::ReleaseRefused { refusals } => {
            let mut names: Vec<&str> = refusals.iter().map(|(t, _)| t.as_str()).collect();
            names.sort_unstable();
            assert_eq!(names, ["trustee-1", "trustee-3"], "{err:?}");
            assert!(
                refusals.iter().all(|(_, r)| r.contains("1 of the 2")),
                "{err:?}"
            );
        }
        other => panic!("expected ReleaseRefused, got {other:?}"),
    }
    for o in &outcomes {
        assert!(
            !o.is_empty() && o.iter().all(|x| x == TOO_FEW),
            "{outcomes:?}"
        );
    }
    let mut a2 = s.w.reopen("arbiter-2").await;
    a2.decide_ticket(&ticket.id, Verdict::Approve)
        .await
        .unwrap();
    let j = s
        .master
        .justification(&s.conv, None, Some(&ticket.id))
        .await
        .unwrap();
    let (r, mut outcomes) = unlock_outcomes(&mut s, j, &["trustee-2", "trustee-3"]).await;
    let t = r.unwrap();
    // Each released the new request once; the first one (still pending for trustee-2, answered
    // again by trustee-3) stays refused.
    // (The old request, refused for too few approvals or, once the ticket is spent, as
    // already used, is the only one a trustee refuses here.)
    for o in &mut outcomes {
        o.retain(|x| !x.starts_with("refused: "));
    }
    released_once(&outcomes);
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
        // trustee-2 waits for the master's request, then trustee-1 releases.
        let mut t2 = w.reopen("trustee-2").await;
        let pending = eventually("the master's release request", async || {
            match t2
                .session()
                .request(Request::PendingReleases)
                .await
                .unwrap()
            {
                Response::Releases(p) if p.is_empty() => None,
                Response::Releases(p) => Some(p),
                other => panic!("{other:?}"),
            }
        })
        .await;
        assert_eq!(pending.len(), 1);
        assert_eq!(trustees_answer(w, &["trustee-1"]).await, [["released"]]);
        // trustee-2 decides, persists its stage, appends its release entry, and is killed
        // before sending its share: the steps of `trustee_decide` up to the crash, by hand.
        let size_before = t2.audit(None, false).await.unwrap().size;
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
    let master = &mut s.master;
    // Each unlock takes one look at the request's shares (no wait) and gives up; the next
    // resumes the same request. Once trustee-3's share is in, however long a loaded machine
    // takes to bring it, the unlock still fails: one share is not enough. (With one fixed
    // wait, a share later than the wait made it `arrived: 0`.)
    let unlock = eventually(
        "trustee-3's share to reach the master's request",
        async || {
            let r = master
                .unlock(
                    &conv,
                    Justification::Consent(token.clone()),
                    None,
                    Duration::ZERO,
                    |_| {},
                )
                .await;
            match r {
                Err(ClientError::SharesMissing { arrived: 0, .. }) => None,
                other => Some(other),
            }
        },
    );
    let (r, outcomes) = s.w.serving(&["trustee-3"], Via::Relay, unlock).await;
    // trustee-3 did release; one share is not enough.
    released_once(&outcomes);
    let err = r.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::SharesMissing {
                arrived: 1,
                needed: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_nothing_released(&s.master, &s.conv);
}

/// The master signs a release request for `token` and submits it, without waiting for shares
/// (the test decides which trustees answer, one after the other: nothing to wait for).
async fn submit_consent_release(s: &mut Setup, token: &sealdesk_protocol::release::ConsentToken) {
    use sealdesk_protocol::{
        release::ReleaseRequest,
        wire::{Request, Response},
    };
    let policy = s.master.latest_policy("acme").await.unwrap();
    let req = ReleaseRequest::sign(
        &mut sealdesk_client::rng().unwrap(),
        s.master.account().keys(),
        &policy,
        token.epochs,
        Justification::Consent(token.clone()),
        sealdesk_client::now(),
    )
    .unwrap();
    match s
        .master
        .session()
        .request(Request::SubmitRelease(req))
        .await
        .unwrap()
    {
        Response::Ok => {}
        other => panic!("{other:?}"),
    }
}

/// The notices of a history: (text, verified, the release group if any).
fn release_notices(
    c: &Client,
    conv: &ConversationId,
) -> Vec<(String, bool, Option<sealdesk_client::notice::ReleaseNotice>)> {
    c.history(conv)
        .unwrap()
        .lines
        .into_iter()
        .filter_map(|l| match l {
            HistoryLine::Item {
                entry:
                    LogEntry::Notice {
                        text,
                        verified,
                        release,
                        ..
                    },
                ..
            } => Some((text, verified, release.map(|r| *r))),
            _ => None,
        })
        .collect()
}

/// All three trustees of a 2-of-3 org release for one request: three signed, proven entries
/// in the log, one notice in the customer's history and one group in `audit`, worded with the
/// org, the epochs, the consent's date, the trustees and the threshold.
#[tokio::test]
async fn a_two_of_three_release_is_one_notice_and_one_audit_group() {
    let mut s = setup().await;
    let token = s
        .carol
        .grant_consent(&s.conv, None, Scope::Full, 3600, "quality review")
        .await
        .unwrap();
    submit_consent_release(&mut s, &token).await;
    assert_eq!(
        trustees_answer(&s.w, &["trustee-1", "trustee-2", "trustee-3"]).await,
        [["released"], ["released"], ["released"]]
    );

    s.carol.sync_all().await.unwrap();
    let n = release_notices(&s.carol, &s.conv);
    assert_eq!(n.len(), 1, "one release, one notice: {n:?}");
    let (text, verified, group) = &n[0];
    assert!(*verified, "{text}");
    let expected = format!(
        "acme opened {} of this chat under your consent of {}, released by trustees trustee-1, \
         trustee-2 and trustee-3 (threshold 2 of 3)",
        token.epochs,
        sealdesk_client::notice::day_month(token.issued_at)
    );
    assert_eq!(text, &expected);
    let group = group.as_ref().unwrap();
    assert!(group.opened());
    assert_eq!(group.indexes.len(), 3);
    assert!(group.failed.is_empty());

    // `audit`: each trustee's entry still signed and proven on its own, grouped once.
    let report = s.carol.audit(Some(s.conv), true).await.unwrap();
    assert_eq!(report.entries.len(), 3);
    assert!(
        report
            .entries
            .iter()
            .all(|e| e.signed && e.included == Some(true))
    );
    assert_eq!(report.releases.len(), 1, "{:?}", report.releases);
    let g = &report.releases[0];
    let mut indexes = g.notice.indexes.clone();
    indexes.sort_unstable();
    let mut logged: Vec<u64> = report.entries.iter().map(|e| e.index).collect();
    logged.sort_unstable();
    assert_eq!(indexes, logged);
    assert_eq!(g.notice.trustees, ["trustee-1", "trustee-2", "trustee-3"]);
    assert_eq!((g.notice.threshold, g.notice.of), (2, 3));
    for part in [
        "acme opened",
        &token.epochs.to_string(),
        "under your consent of",
        "trustee-1, trustee-2 and trustee-3",
        "(threshold 2 of 3)",
    ] {
        assert!(g.text.contains(part), "{part:?} missing from {:?}", g.text);
    }

    // The master's wording is its own.
    let report = s.master.audit(Some(s.conv), false).await.unwrap();
    assert_eq!(report.releases.len(), 1);
    let text = &report.releases[0].text;
    assert!(
        text.contains("acme (you) opened") && text.contains("under the customer's consent of"),
        "{text}"
    );
    assert!(!text.contains("your consent"), "{text}");
}

/// Only one trustee of a 2-of-3 org answers: the customer is told the request was made and
/// not opened — never that the chat was opened — in history and in `audit`. When a second
/// trustee answers, the same notice becomes the opening.
#[tokio::test]
async fn a_release_one_trustee_answered_reads_not_opened_as_far_as_received() {
    let mut s = setup().await;
    let token = s
        .carol
        .grant_consent(&s.conv, None, Scope::Full, 3600, "one trustee")
        .await
        .unwrap();
    submit_consent_release(&mut s, &token).await;
    assert_eq!(trustees_answer(&s.w, &["trustee-2"]).await, [["released"]]);

    let events = s.carol.sync_all().await.unwrap();
    let n = release_notices(&s.carol, &s.conv);
    assert_eq!(n.len(), 1, "{n:?}");
    let (text, verified, group) = &n[0];
    assert!(*verified, "the one trustee's entry is genuine: {text}");
    assert!(
        text.contains("not opened as far as the entries received show (1 of 2 trustees"),
        "{text}"
    );
    assert!(!text.contains("acme opened"), "{text}");
    assert!(!group.as_ref().unwrap().opened());
    // The live view heard of it once, in the same words.
    let live: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.kind {
            sealdesk_client::client::EventKind::Entry {
                entry: LogEntry::Notice { text, .. },
            } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(live, [text.as_str()]);

    // `audit --verify` needs n_e - t_e + 1 = 2 witnesses: trustee-1 witnesses the log without
    // releasing anything.
    let mut witness = s.w.reopen("trustee-1").await;
    witness.witness_cosign().await.unwrap();
    witness.close().await;
    let report = s.carol.audit(Some(s.conv), true).await.unwrap();
    assert_eq!(report.releases.len(), 1);
    assert!(
        report.releases[0]
            .text
            .contains("not opened as far as the entries received show (1 of 2 trustees"),
        "{}",
        report.releases[0].text
    );

    // A second trustee answers: still one notice, now the opening; the live view hears it as
    // an update of the line it showed.
    assert_eq!(trustees_answer(&s.w, &["trustee-3"]).await, [["released"]]);
    let events = s.carol.sync_all().await.unwrap();
    let n = release_notices(&s.carol, &s.conv);
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(
        n[0].0
            .contains("released by trustees trustee-2 and trustee-3 (threshold 2 of 3)"),
        "{}",
        n[0].0
    );
    assert!(events.iter().any(|e| matches!(
        &e.kind,
        sealdesk_client::client::EventKind::Updated { entry: LogEntry::Notice { text, .. } }
            if text.contains("acme opened")
    )));
}

/// The master's transcript header: the two trustees' entries of the release that opened it are
/// one line, in the master's own words (not the customer's "your consent").
#[tokio::test]
async fn the_masters_transcript_header_is_one_line_per_release_in_its_own_words() {
    let mut s = setup().await;
    let token = s
        .carol
        .grant_consent(&s.conv, None, Scope::Full, 3600, "quality review")
        .await
        .unwrap();
    let conv = s.conv;
    let w = &s.w;
    let unlock = s.master.unlock(
        &conv,
        Justification::Consent(token.clone()),
        None,
        Duration::from_secs(20),
        |_| {},
    );
    // Each trustee answers once the master's request is pending (it waits for the request,
    // not for a duration).
    let answer = async {
        for name in ["trustee-1", "trustee-2"] {
            let mut t = w.reopen(name).await;
            tokio::time::timeout(Duration::from_secs(20), async {
                while t.trustee_pending().await.unwrap().is_empty() {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("the master's request never became pending");
            t.close().await;
        }
    };
    let (t, ()) = tokio::join!(unlock, answer);
    let t = t.unwrap();
    assert_eq!(t.releases.len(), 2);
    let header = sealdesk_client::escrow::transcript_releases(&t);
    assert_eq!(header.len(), 1, "{header:?}");
    let expected = format!(
        "acme (you) opened {} of this conversation under the customer's consent of {}, released \
         by trustees trustee-1 and trustee-2 (threshold 2 of 3)",
        token.epochs,
        sealdesk_client::notice::day_month(token.issued_at)
    );
    assert!(header[0].starts_with(&expected), "{}", header[0]);
    assert!(!header[0].contains("your consent"), "{}", header[0]);
}

/// A release is judged under the policy it was made under — the policy of the epochs it opens,
/// the one the trustees released under — not the org's latest. Trustee-3 releases under v1,
/// then v2 drops it and adds trustee-4: trustee-3's entry still counts (history and `audit`).
/// Trustee-4, a trustee of v2 only, logs a release entry for the same v1 epochs (the relay
/// takes it: it is a trustee now): it is NOT GENUINE, in history and in `audit`.
#[tokio::test]
async fn release_signers_are_judged_under_the_policy_of_the_release_not_the_latest() {
    use sealdesk_protocol::audit::{AuditEntry, AuditEvent};

    let mut s = setup().await;
    let token = s
        .carol
        .grant_consent(&s.conv, None, Scope::Full, 3600, "policy change")
        .await
        .unwrap();
    submit_consent_release(&mut s, &token).await;
    assert_eq!(
        trustees_answer(&s.w, &["trustee-1", "trustee-3"]).await,
        [["released"], ["released"]]
    );
    s.w.user("trustee-4", Role::Trustee).await.close().await;
    let mut v2 = sealdesk_tests::world::spec(None, None);
    v2.trustees = ["trustee-1", "trustee-2", "trustee-4"]
        .map(String::from)
        .to_vec();
    assert_eq!(s.master.create_org(&v2).await.unwrap().version, 2);
    // The v2 trustees witness the log (the quorum is always the latest policy's).
    let _ = s.w.witness(&["trustee-1", "trustee-2", "trustee-4"]).await;

    s.carol.sync_all().await.unwrap();
    let n = release_notices(&s.carol, &s.conv);
    assert_eq!(n.len(), 1, "{n:?}");
    let (text, verified, group) = &n[0];
    assert!(*verified, "{text}");
    assert_eq!(group.as_ref().unwrap().trustees, ["trustee-1", "trustee-3"]);
    assert!(text.contains("acme opened"), "{text}");
    let report = s.carol.audit(Some(s.conv), false).await.unwrap();
    assert_eq!(report.entries.len(), 2, "{report:?}");
    assert!(
        report.entries.iter().all(|e| e.signer_allowed),
        "{report:?}"
    );
    assert!(report.verified(), "{report:?}");
    let release = report.releases[0].notice.clone();
    assert!(release.opened() && release.failed.is_empty(), "{release:?}");

    // Trustee-4 logs a release entry for the v1 epochs (the same event, its own signature).
    let mut t4 = s.w.reopen("trustee-4").await;
    let first = served_entries(&t4, 100)
        .await
        .into_iter()
        .find(|e| matches!(e.event, AuditEvent::Release { .. }))
        .unwrap();
    let forged = AuditEntry::sign(t4.account().keys(), first.event, sealdesk_client::now());
    let index = match t4
        .session()
        .request(Request::AppendAudit(forged))
        .await
        .unwrap()
    {
        Response::Appended { index, .. } => index,
        other => panic!("{other:?}"),
    };
    t4.witness_cosign().await.unwrap();
    t4.close().await;
    let _ = s.w.witness(&["trustee-1"]).await;

    s.carol.sync_all().await.unwrap();
    let n = release_notices(&s.carol, &s.conv);
    assert_eq!(n.len(), 1, "{n:?}");
    let (text, verified, group) = &n[0];
    assert!(!verified, "{text}");
    assert!(text.contains("NOT GENUINE"), "{text}");
    assert_eq!(group.as_ref().unwrap().failed, [index]);
    let report = s.carol.audit(Some(s.conv), false).await.unwrap();
    let line = report.entries.iter().find(|e| e.index == index).unwrap();
    assert!(line.signed && !line.signer_allowed, "{line:?}");
    assert!(!report.verified());
}
