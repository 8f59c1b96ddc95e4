//! The trustee daemon: pending release requests, each decided once against the policy, the
//! justification, revocations and the rate limit; the decision persisted, the release entry
//! logged and proven, a head holding it cosigned, and only then the shares sent.

use std::collections::BTreeMap;

use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent, ReleaseBasis},
    card::Role,
    ids::TokenId,
    release::{self, Justification, TrusteeView},
    wire::{ErrorCode, PendingRelease, Push, Request, Response},
};
use serde::Serialize;

use super::log::{LogSlot, is_log_fault};
use super::{RELEASES_PER_HOUR, WITNESS_INTERVAL, fail_point};
use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::reply::{is_transient, unexpected};
use crate::store::{Revocation, TrusteeRecord, TrusteeStage};
use crate::{now, rng};

/// What a trustee did with one request.
#[derive(Clone, Debug, Serialize)]
pub struct TrusteeOutcome {
    /// The request id.
    pub request: String,
    /// The conversation.
    pub conversation: String,
    /// "released", "refused: …", or "already handled".
    pub outcome: String,
}

impl Client {
    /// Trustee: processes every pending release request once.
    ///
    /// # Errors
    /// Relay and storage errors (a refused request is an outcome, not an error).
    pub async fn trustee_pending(&mut self) -> Result<Vec<TrusteeOutcome>> {
        self.account.require(Role::Trustee, "trustee serve")?;
        self.witness_cosign().await?;
        let pending = match self.session.request(Request::PendingReleases).await? {
            Response::Releases(p) => p,
            other => return Err(unexpected("PendingReleases", &other)),
        };
        let mut out = Vec::new();
        for p in pending {
            out.push(self.trustee_handle(p).await?);
        }
        Ok(out)
    }

    /// Trustee: handles pushes until the connection closes or `stop` resolves; calls `report`
    /// for each request handled.
    ///
    /// # Errors
    /// Relay and storage errors.
    pub async fn trustee_serve(
        &mut self,
        stop: impl std::future::Future<Output = ()>,
        mut report: impl FnMut(&TrusteeOutcome),
    ) -> Result<()> {
        for o in self.trustee_pending().await? {
            report(&o);
        }
        tokio::pin!(stop);
        let mut witness = tokio::time::interval(WITNESS_INTERVAL);
        witness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut stop => return Ok(()),
                _ = witness.tick() => {
                    self.witness_cosign().await?;
                }
                push = self.session.next_push() => {
                    let Some(push) = push else {
                        return Err(ClientError::Closed(self.session.closed()));
                    };
                    if self.session.take_dropped_pushes() > 0 {
                        for o in self.trustee_pending().await? {
                            report(&o);
                        }
                    }
                    if let Push::Release(p) = push {
                        let o = self.trustee_handle(p).await?;
                        report(&o);
                    }
                }
            }
        }
    }

    pub(super) async fn trustee_handle(&mut self, p: PendingRelease) -> Result<TrusteeOutcome> {
        let r = &p.request;
        let outcome = |s: &str| TrusteeOutcome {
            request: r.id.to_string(),
            conversation: r.conversation.to_string(),
            outcome: s.to_owned(),
        };
        let existing: Option<TrusteeRecord> = self.account.store().trustee_record(&r.id)?;
        match existing.as_ref().map(|e| &e.stage) {
            Some(TrusteeStage::Released) => return Ok(outcome("already released")),
            Some(TrusteeStage::Refused(reason)) => {
                // Answer again in case the refusal never reached the relay.
                let _ = self
                    .session
                    .request(Request::RefuseRelease {
                        request: r.id,
                        reason: reason.clone(),
                    })
                    .await;
                return Ok(outcome(&format!("refused: {reason}")));
            }
            _ => {}
        }
        match self.trustee_decide(&p, existing.as_ref()).await {
            Ok(()) => Ok(outcome("released")),
            // A relay that lied about the log is not a reason to refuse the request: stop
            // loudly, keep the persisted stage, and resume (re-append) on the next run.
            Err(e) if is_transient(&e) || is_log_fault(&e) => Err(e),
            Err(e) => {
                let reason = match &e {
                    ClientError::Protocol(sealdesk_protocol::Error::Refused(r)) => r.to_string(),
                    other => other.to_string(),
                };
                self.account.store().put_trustee_record(
                    &r.id,
                    &TrusteeRecord {
                        justification: r.justification.id(),
                        stage: TrusteeStage::Refused(reason.clone()),
                    },
                )?;
                match self
                    .session
                    .request(Request::RefuseRelease {
                        request: r.id,
                        reason: reason.clone(),
                    })
                    .await
                {
                    Ok(_)
                    | Err(ClientError::Relay {
                        code: ErrorCode::AlreadyAnswered | ErrorCode::Conflict,
                        ..
                    }) => {}
                    Err(e) => return Err(e),
                }
                Ok(outcome(&format!("refused: {reason}")))
            }
        }
    }

    pub(super) async fn trustee_decide(
        &mut self,
        p: &PendingRelease,
        existing: Option<&TrusteeRecord>,
    ) -> Result<()> {
        let r = &p.request;
        let policy = self.policy(&r.org, r.policy_version).await?;
        let mut records = Vec::new();
        for rec in &p.epochs {
            let rp = self.policy(&rec.org, rec.policy_version).await?;
            records.push(rec.clone().verify(&rp)?);
        }
        self.refresh_revocations().await?;
        let spent: BTreeMap<String, String> = self.account.store().spent()?;
        let revocations: BTreeMap<String, Vec<Revocation>> = self.account.store().revocations()?;
        let this_request = r.id.to_string();
        let resuming = existing.is_some();
        // Rate limit per org: releases approved over the last hour. A request is counted only
        // once `decide` approved it (below), so a refused one spends nothing — one whose
        // justification names another conversation or other epochs included.
        let rate = if resuming {
            None
        } else {
            let mut rate: Vec<(String, u64)> = self.account.store().rate()?;
            let t = now();
            rate.retain(|(_, at)| t.saturating_sub(*at) < 3600);
            if rate.iter().filter(|(o, _)| *o == r.org).count() >= RELEASES_PER_HOUR {
                return Err(
                    sealdesk_protocol::Error::Refused(release::Refusal::RateLimited).into(),
                );
            }
            rate.push((r.org.clone(), t));
            Some(rate)
        };
        let is_spent = |id: &TokenId| {
            spent
                .get(&id.to_string())
                .is_some_and(|req| *req != this_request)
        };
        // Only the consent's signer may revoke it (docs/design.md §4.4): a revocation entry signed by
        // anyone else, or naming another conversation, is ignored.
        let is_revoked = |id: &TokenId| match &r.justification {
            Justification::Consent(c) if c.id == *id => {
                revocations.get(&id.to_string()).is_some_and(|all| {
                    all.iter()
                        .any(|x| x.signer == c.customer && x.conversation == c.conversation)
                })
            }
            _ => false,
        };
        let approved = release::decide(
            &mut rng()?,
            &TrusteeView {
                policy: &policy,
                me: self.account.keys(),
                now: now(),
                epochs: &records,
                is_spent: &is_spent,
                is_revoked: &is_revoked,
            },
            r,
        )?;
        if let Some(rate) = rate {
            self.account.store().put_rate(&rate)?;
        }
        let index = match existing.map(|e| &e.stage) {
            Some(TrusteeStage::Logged { index }) => *index,
            other => {
                let logged_before = match other {
                    Some(TrusteeStage::Logging { log_size }) => {
                        self.find_release_entry(&approved.request_hash, *log_size)
                            .await?
                    }
                    _ => None,
                };
                match logged_before {
                    Some(i) => i,
                    None => {
                        let (head, _) = self.checked_tree_head().await?;
                        // Persist the decision (spent justification, logging stage) first.
                        let mut spent = spent.clone();
                        spent.insert(approved.justification.to_string(), this_request.clone());
                        self.account.store().put_spent(&spent)?;
                        self.account.store().put_trustee_record(
                            &r.id,
                            &TrusteeRecord {
                                justification: approved.justification,
                                stage: TrusteeStage::Logging {
                                    log_size: head.size,
                                },
                            },
                        )?;
                        fail_point("before-append");
                        let basis = match &r.justification {
                            Justification::Consent(c) => ReleaseBasis::Consent {
                                id: c.id,
                                scope: c.scope,
                                issued_at: c.issued_at,
                            },
                            Justification::Dispute { ticket, .. } => ReleaseBasis::Dispute {
                                id: ticket.id,
                                approvers: approved.approvers.clone(),
                            },
                        };
                        let entry = AuditEntry::sign(
                            self.account.keys(),
                            AuditEvent::Release {
                                org: r.org.clone(),
                                request_hash: approved.request_hash,
                                conversation: r.conversation,
                                epochs: r.epochs,
                                basis,
                                master: r.master,
                            },
                            now(),
                        );
                        match self
                            .session
                            .request(Request::AppendAudit(entry.clone()))
                            .await?
                        {
                            Response::Appended { index, head } => {
                                fail_point("after-append");
                                // No share leaves before the entry is proven to be logged.
                                self.confirm_appended(&entry, index, &head).await?;
                                index
                            }
                            other => return Err(unexpected("AppendAudit", &other)),
                        }
                    }
                }
            }
        };
        self.account.store().put_trustee_record(
            &r.id,
            &TrusteeRecord {
                justification: approved.justification,
                stage: TrusteeStage::Logged { index },
            },
        )?;
        // Witness a head holding the entry before any share leaves: this trustee will never
        // cosign a log without it, so no reader can be shown one with a quorum.
        self.witness_cosign().await?;
        fail_point("before-shares");
        match self
            .session
            .request(Request::SubmitShares {
                request: r.id,
                shares: approved.shares,
            })
            .await
        {
            // `TicketClosed`: the dispute ticket closed meanwhile (the master collected enough
            // shares from other trustees): nothing more is released under it, and this
            // request is done.
            Ok(Response::Ok)
            | Err(ClientError::Relay {
                code: ErrorCode::AlreadyAnswered | ErrorCode::Conflict | ErrorCode::TicketClosed,
                ..
            }) => {}
            Ok(other) => return Err(unexpected("SubmitShares", &other)),
            Err(e) => return Err(e),
        }
        fail_point("after-shares");
        self.account.store().put_trustee_record(
            &r.id,
            &TrusteeRecord {
                justification: approved.justification,
                stage: TrusteeStage::Released,
            },
        )?;
        Ok(())
    }

    /// Looks for this trustee's release entry for `request_hash` at or after `from`.
    pub(super) async fn find_release_entry(
        &mut self,
        request_hash: &[u8; 32],
        from: u64,
    ) -> Result<Option<u64>> {
        let (head, _) = self.checked_tree_head().await?;
        let me = self.account.keys().signing_public();
        let slots = self.entries(from, head.size).await?;
        for (i, e) in slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.entry()?)))
        {
            if let AuditEvent::Release {
                request_hash: h, ..
            } = &e.event
                && h == request_hash
                && e.signer == me
            {
                // `entries` stops at `head.size`, so this stays below it.
                let index =
                    from.checked_add(i as u64)
                        .ok_or_else(|| ClientError::ImpossibleNumber {
                            what: "audit entry index",
                            detail: format!("entry {i} after {from} is past the largest index"),
                        })?;
                // The listing alone proves nothing: the entry must be in the pinned head.
                self.confirm_appended(e, index, &head).await?;
                return Ok(Some(index));
            }
        }
        Ok(None)
    }

    /// Reads new audit entries and records every validly signed consent revocation with its
    /// signer and conversation. Whether one counts is decided with the request, where the
    /// consent is at hand: only one signed by the consent's own signer, for its conversation
    /// (the relay refuses any other, but a hostile relay could still serve one). All are kept,
    /// so a flood of forged ones cannot push the genuine one out.
    pub(super) async fn refresh_revocations(&mut self) -> Result<()> {
        let (head, _) = self.checked_tree_head().await?;
        let cursor: u64 = self.account.store().revocations_cursor()?;
        if cursor >= head.size {
            return Ok(());
        }
        let mut all: BTreeMap<String, Vec<Revocation>> = self.account.store().revocations()?;
        for e in self
            .entries(cursor, head.size)
            .await?
            .iter()
            .filter_map(LogSlot::entry)
        {
            if let AuditEvent::ConsentRevocation {
                consent,
                conversation,
            } = &e.event
                && e.verify().is_ok()
            {
                let r = Revocation {
                    conversation: *conversation,
                    signer: e.signer,
                };
                let known = all.entry(consent.to_string()).or_default();
                if !known.contains(&r) {
                    known.push(r);
                }
            }
        }
        self.account.store().put_revocations(&all)?;
        self.account.store().put_revocations_cursor(head.size)?;
        Ok(())
    }
}
