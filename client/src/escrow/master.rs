//! The master's unlock: the release request (under a consent or a ticket), the trustees'
//! shares opened and combined, the released epochs' keys recovered.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sealdesk_protocol::{
    audit::AuditEvent,
    card::Role,
    epoch::VerifiedEpoch,
    escrow,
    ids::{ConversationId, EpochRange, TokenId},
    keys::SigningPublicKey,
    policy::VerifiedPolicy,
    release::{self, Justification, ReleaseRequest, Scope},
    wire::{ErrorCode, Item, ReleaseProgress, Request, Response},
};
use serde::Serialize;

use super::consent::decode_consent;
use super::transcript::merge;
use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::reply::unexpected;
use crate::store::Transcript;
use crate::transcript::erased::Gone;
use crate::{now, rng};

/// Progress of an unlock, for display.
#[derive(Clone, Debug, Serialize)]
pub struct UnlockProgress {
    /// Trustees that released.
    pub released: usize,
    /// Trustees needed.
    pub needed: usize,
    /// Refusals `(trustee, reason)`.
    pub refusals: Vec<(String, String)>,
}

impl Client {
    /// Master: the conversation's epoch records, verified (structure, signature, chain), read
    /// for `doing`. A conversation the relay no longer serves is explained by its erasure when
    /// the audit log holds one that holds (`transcript::erased`), as `transcript export` does.
    ///
    /// # Errors
    /// [`ClientError::ConversationErased`], [`ClientError::ErasureNotGenuine`], the relay's
    /// `not_found`; [`ClientError::NotMaster`], verification and relay errors.
    pub(super) async fn master_records(
        &mut self,
        id: &ConversationId,
        doing: Gone,
    ) -> Result<(String, Vec<VerifiedEpoch>)> {
        let mut org = None;
        let mut out: Vec<VerifiedEpoch> = Vec::new();
        let items = match self.history_items(id).await {
            Ok(items) => items,
            Err(
                e @ ClientError::Relay {
                    code: ErrorCode::NotFound,
                    ..
                },
            ) => {
                let (head, _) = self.checked_tree_head().await?;
                let t = self.account.store().transcript(id)?;
                return Err(self.why_gone(id, t.as_ref(), &head, doing, e).await?);
            }
            Err(e) => return Err(e),
        };
        for s in items {
            if let Item::Epoch(rec) = s.item {
                let policy = self.policy(&rec.org, rec.policy_version).await?;
                if policy.master_key() != self.account.keys().signing_public() {
                    return Err(ClientError::NotMaster {
                        org: rec.org.clone(),
                    });
                }
                let v = rec.verify(&policy)?;
                if v.check_follows(out.last()).is_ok() {
                    org = Some(v.org.clone());
                    out.push(v);
                }
            }
        }
        let org = org.ok_or_else(|| ClientError::NoVisibleEpochs {
            conversation: id.to_string(),
        })?;
        Ok((org, out))
    }

    /// Master: submits a release request and waits (up to `wait`) for enough trustees; then
    /// reconstructs the released epochs' keys and builds the transcript. `progress` is called
    /// whenever the count changes.
    ///
    /// An unlock under a justification this master already made a request for resumes that
    /// request (its shares are kept by the relay until collected, and for as long as the
    /// request is kept) instead of making a second one, unless trustees refused it beyond
    /// the threshold: so an unlock stopped early is finished by running it again.
    ///
    /// # Errors
    /// [`ClientError::SharesMissing`] if too few trustees released in time, [`ClientError::ReleaseRefused`] if too many refused;
    /// [`ClientError::ConversationErased`] or [`ClientError::ErasureNotGenuine`] when the relay
    /// no longer serves the conversation (see `master_records`); verification and relay errors.
    pub async fn unlock(
        &mut self,
        id: &ConversationId,
        justification: Justification,
        epochs: Option<EpochRange>,
        wait: Duration,
        mut progress: impl FnMut(&UnlockProgress),
    ) -> Result<Transcript> {
        self.account.require(Role::Master, "transcript unlock")?;
        let (org, records) = self.master_records(id, Gone::Unlock).await?;
        let policy = self.latest_policy(&org).await?;
        let epochs = match epochs {
            Some(r) => r,
            None => match &justification {
                Justification::Consent(c) => c.epochs,
                Justification::Dispute { ticket, .. } => ticket.epochs,
            },
        };
        let redacted =
            matches!(&justification, Justification::Consent(c) if c.scope == Scope::Redacted);
        // The request is for the justification's conversation: one naming another conversation
        // than `id` would have the trustees release (and spend) that other one. Refused here,
        // before anything is submitted; so is one that does not cover the epochs asked for.
        let named = match &justification {
            Justification::Consent(c) => c.conversation,
            Justification::Dispute { ticket, .. } => ticket.conversation,
        };
        if named != *id {
            return Err(
                sealdesk_protocol::Error::Refused(release::Refusal::WrongConversation).into(),
            );
        }
        let need = usize::from(policy.trustee_threshold);
        // One justification, one request: an unlock interrupted earlier (Ctrl-C, `--wait` ran
        // out) left its request with the trustees, who may have released to it since; resume
        // it rather than ask them again (they would refuse a second request as already used,
        // or release both, and the customer would be told twice).
        let request = match self
            .resumable_request(&justification, *id, epochs, &policy, need)
            .await?
        {
            Some(r) => r,
            None => {
                let r = ReleaseRequest::sign(
                    &mut rng()?,
                    self.account.keys(),
                    &policy,
                    epochs,
                    justification,
                    now(),
                )?;
                r.check_scope().map_err(sealdesk_protocol::Error::Refused)?;
                // Kept before it is submitted, so an interruption at any point finds it.
                self.account.store().put_unlock_request(&r)?;
                r
            }
        };
        match self
            .session
            .request(Request::SubmitRelease(request.clone()))
            .await
        {
            // Resumed: the relay holds it already (with whatever shares arrived since).
            Ok(Response::Ok)
            | Err(ClientError::Relay {
                code: ErrorCode::IdTaken,
                ..
            }) => {}
            Ok(other) => return Err(unexpected("SubmitRelease", &other)),
            Err(e) => return Err(e),
        }
        self.remember_release_request(&request)?;
        let deadline = tokio::time::Instant::now() + wait;
        let mut last_seen = usize::MAX;
        let progress_now = loop {
            let p = match self
                .session
                .request(Request::ReleaseStatus {
                    request: request.id,
                })
                .await?
            {
                Response::Progress(p) => p,
                other => return Err(unexpected("ReleaseStatus", &other)),
            };
            let trustees: BTreeSet<SigningPublicKey> = p.shares.iter().map(|s| s.trustee).collect();
            let up = UnlockProgress {
                released: trustees.len(),
                needed: need,
                refusals: p.refusals.clone(),
            };
            let answered = trustees.len().saturating_add(p.refusals.len());
            if answered != last_seen {
                last_seen = answered;
                progress(&up);
            }
            if trustees.len() >= need {
                break p;
            }
            // The refusals are the relay's word: more of them than the policy has trustees is
            // impossible, not a reason to wrap around (or panic) and keep waiting.
            let not_refused = policy
                .trustees
                .len()
                .checked_sub(p.refusals.len())
                .ok_or_else(|| ClientError::ImpossibleNumber {
                    what: "number of refusals",
                    detail: format!(
                        "{} refusals of a release, but the policy has {} trustees",
                        p.refusals.len(),
                        policy.trustees.len()
                    ),
                })?;
            if not_refused < need {
                return Err(ClientError::ReleaseRefused {
                    refusals: p.refusals.clone(),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::SharesMissing {
                    arrived: trustees.len(),
                    needed: need,
                    secs: wait.as_secs(),
                });
            }
            // Wake on a ReleaseUpdate push, or poll every second.
            let _ = tokio::time::timeout(Duration::from_secs(1), self.session.next_push()).await;
        };
        // Reconstruct each released epoch's K and check it against the commitment.
        let mut keys = BTreeMap::new();
        for epoch in epochs.iter() {
            let rec = records
                .iter()
                .find(|r| r.epoch == epoch)
                .ok_or(ClientError::NoVerifiedRecord { epoch })?;
            let s_m = rec.open_master_share(self.account.keys())?;
            let rec_policy = self.policy(&rec.org, rec.policy_version).await?;
            let mut shares = Vec::new();
            let mut used = BTreeSet::new();
            for s in progress_now
                .shares
                .iter()
                .filter(|s| s.epoch == epoch && s.conversation == *id)
            {
                if used.contains(&s.trustee) {
                    continue;
                }
                if let Ok(share) = s.open(self.account.keys(), &policy, &request) {
                    used.insert(s.trustee);
                    shares.push(share);
                }
            }
            let k = escrow::reconstruct(
                &s_m,
                &shares,
                rec_policy.trustee_threshold,
                id,
                epoch,
                &rec.commitment,
            )?;
            self.account.store().put_master_key(id, epoch, &k)?;
            keys.insert(epoch, k);
        }
        let mut transcript = self
            .build_transcript(id, &org, &records, &keys, redacted)
            .await?;
        // The release entries for this request, with their indexes.
        let (head, _) = self.checked_tree_head().await?;
        let hash = request.hash();
        for (i, e) in self.entries(0, head.size).await?.into_iter().enumerate() {
            let super::LogSlot::Entry(e) = e else {
                continue;
            };
            if matches!(&e.event, AuditEvent::Release { request_hash, .. } if *request_hash == hash)
            {
                transcript.releases.push((i as u64, e));
            }
        }
        // Merge with a transcript unlocked earlier.
        if let Some(old) = self.account.store().transcript(id)? {
            transcript = merge(old, transcript);
        }
        self.account.store().put_transcript(id, &transcript)?;
        Ok(transcript)
    }
    /// The release request an earlier unlock made under `justification`, if it is for this
    /// conversation and these epochs and can still succeed (not refused by so many trustees
    /// that the threshold is out of reach: a refused request is over, and a new one may be
    /// made). A request the relay no longer knows is submitted again as it is.
    async fn resumable_request(
        &mut self,
        justification: &Justification,
        id: ConversationId,
        epochs: EpochRange,
        policy: &VerifiedPolicy,
        need: usize,
    ) -> Result<Option<ReleaseRequest>> {
        let Some(r) = self.account.store().unlock_request(&justification.id())? else {
            return Ok(None);
        };
        if r.conversation != id
            || r.epochs != epochs
            || r.master != self.account.keys().signing_public()
        {
            return Ok(None);
        }
        let p = match self
            .session
            .request(Request::ReleaseStatus { request: r.id })
            .await
        {
            Ok(Response::Progress(p)) => p,
            Err(ClientError::Relay {
                code: ErrorCode::NotFound,
                ..
            }) => ReleaseProgress {
                shares: vec![],
                refusals: vec![],
            },
            Ok(other) => return Err(unexpected("ReleaseStatus", &other)),
            Err(e) => return Err(e),
        };
        let out_of_reach = policy
            .trustees
            .len()
            .checked_sub(p.refusals.len())
            .is_none_or(|left| left < need);
        Ok((!out_of_reach).then_some(r))
    }
    /// Master: builds a justification from a consent token (as handed over by the customer,
    /// hex CBOR) or a ticket id (with the arbiters' decisions collected by the relay).
    ///
    /// # Errors
    /// [`ClientError::BadConsentToken`] for a malformed token, [`ClientError::UnknownTicket`], [`ClientError::JustificationChoice`].
    pub async fn justification(
        &self,
        conversation: &ConversationId,
        consent: Option<&str>,
        ticket: Option<&TokenId>,
    ) -> Result<Justification> {
        match (consent, ticket) {
            (Some(c), None) => match TokenId::parse(c) {
                Ok(id) => Ok(Justification::Consent(
                    self.shared_consent(conversation, &id).await?,
                )),
                Err(_) => Ok(Justification::Consent(decode_consent(c)?)),
            },
            (None, Some(t)) => {
                let st = self
                    .tickets()
                    .await?
                    .into_iter()
                    .find(|s| s.ticket.id == *t)
                    .ok_or_else(|| ClientError::UnknownTicket {
                        ticket: t.to_string(),
                    })?;
                Ok(Justification::Dispute {
                    ticket: st.ticket,
                    decisions: st.decisions,
                })
            }
            _ => Err(ClientError::JustificationChoice),
        }
    }
}
