//! Disputes: the master's [`DisputeTicket`], which releases nothing on its own, and the
//! arbiters' signed [`ArbiterDecision`]s on its hash; [`approvers`] counts the distinct arbiters
//! of the policy whose valid decisions approve it, and [`approval_impossible`] says when enough
//! of them rejected it that it can never be approved. A ticket ends with the master's signed
//! [`DisputeClose`], or on its own ([`ClosedBecause`]) once released and collected or rejected.

use std::collections::HashSet;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use super::Refusal;
use crate::{
    Error, Result,
    codec::Writer,
    ids::{ConversationId, EpochRange, TokenId},
    keys::{IdentityKeys, Signature, SigningPublicKey},
    labels,
    policy::VerifiedPolicy,
    signed::{Signed, impl_signed},
};

/// A dispute ticket opened by the master; valid once enough arbiters approve its hash.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct DisputeTicket {
    /// Unique id (single use).
    pub id: TokenId,
    /// The org.
    pub org: String,
    /// The conversation.
    pub conversation: ConversationId,
    /// The epochs to open.
    pub epochs: EpochRange,
    /// Why.
    pub reason: String,
    /// Open time.
    pub opened_at: u64,
    /// Expiry.
    pub expires_at: u64,
    /// The master.
    pub master: SigningPublicKey,
    /// The master's signature.
    pub signature: Signature,
    /// The epoch records the ticket releases, each by its hash (`VerifiedEpoch::hash`), in
    /// epoch order. Empty on tickets opened before records were bound (CBOR: absent); when
    /// present, the master's signature (and so the arbiters' approvals of the ticket's hash)
    /// covers them, trustees release only from records with these hashes, and the offline
    /// verifier checks an export's records against them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<BoundRecord>,
}

/// An epoch record a dispute ticket names: its epoch and its record hash.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BoundRecord {
    /// The epoch.
    pub epoch: u32,
    /// The record's hash (`VerifiedEpoch::hash`).
    #[serde(with = "serde_bytes")]
    pub hash: [u8; 32],
}

/// What the master fills in to open a dispute ticket.
#[derive(Clone, Debug)]
pub struct DisputeParams {
    /// The conversation.
    pub conversation: ConversationId,
    /// The epochs to open.
    pub epochs: EpochRange,
    /// Why, in the master's words.
    pub reason: String,
    /// Validity from now, seconds.
    pub valid_secs: u64,
}

impl DisputeTicket {
    /// Opens a ticket.
    ///
    /// # Errors
    /// [`Error::InvalidValidity`] for a zero or over-long validity, [`Error::Decode`] for an
    /// empty epoch range.
    pub fn issue(
        rng: &mut impl CryptoRng,
        master: &IdentityKeys,
        policy: &VerifiedPolicy,
        p: DisputeParams,
        now: u64,
    ) -> Result<Self> {
        Self::issue_bound(rng, master, policy, p, Vec::new(), now)
    }

    /// Opens a ticket bound to `records`: the hash of each epoch record it releases, which
    /// must be exactly one per epoch of the range (any order; kept in epoch order).
    ///
    /// # Errors
    /// As [`Self::issue`]; [`Error::Decode`] when `records` is not one per epoch of the range.
    pub fn issue_bound(
        rng: &mut impl CryptoRng,
        master: &IdentityKeys,
        policy: &VerifiedPolicy,
        p: DisputeParams,
        mut records: Vec<BoundRecord>,
        now: u64,
    ) -> Result<Self> {
        p.epochs.check()?;
        records.sort_by_key(|r| r.epoch);
        if !records.is_empty() && !records.iter().map(|r| r.epoch).eq(p.epochs.iter()) {
            return Err(Error::Decode {
                what: "dispute ticket",
                reason: "it binds exactly one record per epoch of its range".into(),
            });
        }
        if p.valid_secs == 0 || p.valid_secs > policy.max_release_validity_secs {
            return Err(Error::InvalidValidity("dispute ticket"));
        }
        let mut t = DisputeTicket {
            id: TokenId::random(rng),
            org: policy.org.clone(),
            conversation: p.conversation,
            epochs: p.epochs,
            reason: p.reason,
            opened_at: now,
            expires_at: now.saturating_add(p.valid_secs),
            master: master.signing_public(),
            signature: Signature::placeholder(),
            records,
        };
        t.signature = master.sign(&t.signed_bytes());
        Ok(t)
    }

    /// Whether the ticket names the records it releases (tickets opened before that did not).
    #[must_use]
    pub fn binds_records(&self) -> bool {
        !self.records.is_empty()
    }

    /// The record hash the ticket names for `epoch`, if any.
    #[must_use]
    pub fn record_hash(&self, epoch: u32) -> Option<[u8; 32]> {
        self.records
            .iter()
            .find(|r| r.epoch == epoch)
            .map(|r| r.hash)
    }

    /// Opens a ticket: [`Self::issue`] with the parameters spelled out, kept for the callers
    /// that pass them one by one.
    ///
    /// # Errors
    /// As [`Self::issue`].
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        rng: &mut impl CryptoRng,
        master: &IdentityKeys,
        policy: &VerifiedPolicy,
        conversation: ConversationId,
        epochs: EpochRange,
        reason: &str,
        valid_secs: u64,
        now: u64,
    ) -> Result<Self> {
        let p = DisputeParams {
            conversation,
            epochs,
            reason: reason.to_owned(),
            valid_secs,
        };
        Self::issue(rng, master, policy, p, now)
    }

    /// The canonical bytes the master's signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::DISPUTE_TICKET);
        w.fixed(self.id.as_bytes())
            .str(&self.org)
            .fixed(self.conversation.as_bytes());
        self.epochs.write(&mut w);
        w.str(&self.reason)
            .u64(self.opened_at)
            .u64(self.expires_at)
            .fixed(self.master.as_bytes());
        // Bound records follow only when there are any: an unbound ticket's bytes are those of
        // every ticket before records were bound.
        if !self.records.is_empty() {
            w.count(self.records.len());
            for r in &self.records {
                w.u32(r.epoch).fixed(&r.hash);
            }
        }
        w.into_bytes()
    }

    /// The hash arbiters sign: over the signed bytes and the master's signature.
    pub fn hash(&self) -> [u8; 32] {
        let mut w = Writer::with_label(labels::DISPUTE_TICKET_HASH);
        w.bytes(&self.signed_bytes())
            .fixed(&self.signature.to_bytes());
        w.sha256()
    }

    /// Checks the master's signature against the policy.
    ///
    /// # Errors
    /// [`Error::WrongOrg`] or [`Error::BadSignature`].
    pub fn verify(&self, policy: &VerifiedPolicy) -> Result<()> {
        if self.org != policy.org {
            return Err(Error::WrongOrg {
                expected: policy.org.clone(),
                found: self.org.clone(),
            });
        }
        if self.master != policy.master_key() {
            return Err(Error::BadSignature("dispute ticket"));
        }
        self.check_signature()
    }
}

impl_signed!(DisputeTicket, "dispute ticket", master);

/// An arbiter's verdict.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Approve the release.
    Approve,
    /// Reject it, with a reason.
    Reject(String),
}

/// An arbiter's signed decision on a ticket's hash.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ArbiterDecision {
    /// The ticket id.
    pub ticket: TokenId,
    /// The ticket hash ([`DisputeTicket::hash`]).
    #[serde(with = "serde_bytes")]
    pub ticket_hash: [u8; 32],
    /// The verdict.
    pub verdict: Verdict,
    /// When.
    pub decided_at: u64,
    /// The arbiter.
    pub arbiter: SigningPublicKey,
    /// The arbiter's signature.
    pub signature: Signature,
}

impl ArbiterDecision {
    /// Signs a verdict on `ticket`.
    ///
    /// # Errors
    /// Never in practice; fallible for future checks.
    pub fn sign(
        arbiter: &IdentityKeys,
        ticket: &DisputeTicket,
        verdict: Verdict,
        now: u64,
    ) -> Result<Self> {
        let mut d = ArbiterDecision {
            ticket: ticket.id,
            ticket_hash: ticket.hash(),
            verdict,
            decided_at: now,
            arbiter: arbiter.signing_public(),
            signature: Signature::placeholder(),
        };
        d.signature = arbiter.sign(&d.signed_bytes());
        Ok(d)
    }

    /// The canonical bytes the arbiter's signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::ARBITER_DECISION);
        w.fixed(self.ticket.as_bytes()).fixed(&self.ticket_hash);
        match &self.verdict {
            Verdict::Approve => w.u8(1),
            Verdict::Reject(reason) => w.u8(2).str(reason),
        };
        w.u64(self.decided_at).fixed(self.arbiter.as_bytes());
        w.into_bytes()
    }

    /// Checks the signature, that the signer is an arbiter of the policy, and the ticket hash.
    ///
    /// # Errors
    /// [`Error::BadSignature`] or a [`Refusal`].
    pub fn verify(&self, policy: &VerifiedPolicy, ticket: &DisputeTicket) -> Result<()> {
        if policy.arbiter(&self.arbiter).is_none() || self.arbiter == policy.master_key() {
            return Err(Refusal::NotAnArbiter.into());
        }
        if self.ticket != ticket.id || self.ticket_hash != ticket.hash() {
            return Err(Refusal::WrongTicket.into());
        }
        self.check_signature()
    }
}

impl_signed!(ArbiterDecision, "arbiter decision", arbiter);

/// Why a dispute ticket was closed (the legal hold on its conversation ends with it).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedBecause {
    /// The org's master closed it ([`DisputeClose`]), with its reason.
    Master(String),
    /// The release it justified reached the trustee threshold and the master collected the
    /// shares.
    Released,
    /// Enough arbiters rejected it that approval is impossible.
    Rejected,
}

impl ClosedBecause {
    /// Writes the reason into signed bytes: `u8` 1 and the master's reason, 2, or 3.
    pub fn write(&self, w: &mut Writer) {
        match self {
            ClosedBecause::Master(reason) => w.u8(1).str(reason),
            ClosedBecause::Released => w.u8(2),
            ClosedBecause::Rejected => w.u8(3),
        };
    }
}

/// The master's signed closing of a dispute ticket: no release may follow under it, and the
/// legal hold on its conversation ends. The relay checks it before it closes the ticket;
/// trustees refuse a release under a ticket the relay reports closed.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct DisputeClose {
    /// The ticket id.
    pub ticket: TokenId,
    /// The ticket hash ([`DisputeTicket::hash`]).
    #[serde(with = "serde_bytes")]
    pub ticket_hash: [u8; 32],
    /// The org.
    pub org: String,
    /// The ticket's conversation.
    pub conversation: ConversationId,
    /// Why, in the master's words.
    pub reason: String,
    /// When.
    pub closed_at: u64,
    /// The master.
    pub master: SigningPublicKey,
    /// The master's signature.
    pub signature: Signature,
}

impl DisputeClose {
    /// The master closes `ticket`.
    pub fn sign(master: &IdentityKeys, ticket: &DisputeTicket, reason: &str, now: u64) -> Self {
        let mut c = DisputeClose {
            ticket: ticket.id,
            ticket_hash: ticket.hash(),
            org: ticket.org.clone(),
            conversation: ticket.conversation,
            reason: reason.to_owned(),
            closed_at: now,
            master: master.signing_public(),
            signature: Signature::placeholder(),
        };
        c.signature = master.sign(&c.signed_bytes());
        c
    }

    /// The canonical bytes the master's signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::DISPUTE_CLOSE);
        w.fixed(self.ticket.as_bytes())
            .fixed(&self.ticket_hash)
            .str(&self.org)
            .fixed(self.conversation.as_bytes())
            .str(&self.reason)
            .u64(self.closed_at)
            .fixed(self.master.as_bytes());
        w.into_bytes()
    }

    /// Checks that the policy's master signed this closing of `ticket`.
    ///
    /// # Errors
    /// [`Error::WrongOrg`], [`Refusal::NotFromMaster`] for another signer,
    /// [`Refusal::WrongTicket`] for another ticket (id, hash or conversation), or
    /// [`Error::BadSignature`].
    pub fn verify(&self, policy: &VerifiedPolicy, ticket: &DisputeTicket) -> Result<()> {
        if self.org != policy.org || ticket.org != policy.org {
            return Err(Error::WrongOrg {
                expected: policy.org.clone(),
                found: self.org.clone(),
            });
        }
        if self.master != policy.master_key() {
            return Err(Refusal::NotFromMaster.into());
        }
        if self.ticket != ticket.id
            || self.ticket_hash != ticket.hash()
            || self.conversation != ticket.conversation
        {
            return Err(Refusal::WrongTicket.into());
        }
        self.check_signature()
    }
}

impl_signed!(DisputeClose, "dispute close", master);

/// Whether enough distinct policy arbiters validly rejected `ticket` that the approvals still
/// possible fall short of the policy's arbiter threshold.
pub fn approval_impossible(
    policy: &VerifiedPolicy,
    ticket: &DisputeTicket,
    decisions: &[ArbiterDecision],
) -> bool {
    let mut seen = HashSet::new();
    let rejected = decisions
        .iter()
        .filter(|d| matches!(d.verdict, Verdict::Reject(_)) && d.verify(policy, ticket).is_ok())
        .filter(|d| seen.insert(d.arbiter))
        .count();
    let possible = policy
        .arbiters
        .iter()
        .filter(|a| a.signing_key != policy.master_key())
        .count()
        .saturating_sub(rejected);
    possible < usize::from(policy.arbiter_threshold)
}

/// The distinct policy arbiters whose valid decisions approve `ticket`. Duplicates, rejections,
/// forgeries, non-arbiters and the master are not counted.
pub fn approvers(
    policy: &VerifiedPolicy,
    ticket: &DisputeTicket,
    decisions: &[ArbiterDecision],
) -> Vec<SigningPublicKey> {
    let mut seen = HashSet::new();
    decisions
        .iter()
        .filter(|d| d.verdict == Verdict::Approve && d.verify(policy, ticket).is_ok())
        .filter(|d| seen.insert(d.arbiter))
        .map(|d| d.arbiter)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{policy::tests::org, release::tests::NOW, test_rng};

    #[test]
    fn open_is_issue_with_the_parameters_spelled_out() {
        let o = org(150);
        let conversation = ConversationId::random(&mut test_rng(151));
        let p = DisputeParams {
            conversation,
            epochs: EpochRange::new(0, 2).unwrap(),
            reason: "chargeback".into(),
            valid_secs: 3600,
        };
        let issued =
            DisputeTicket::issue(&mut test_rng(152), &o.master, &o.policy, p.clone(), NOW).unwrap();
        let opened = DisputeTicket::open(
            &mut test_rng(152),
            &o.master,
            &o.policy,
            p.conversation,
            p.epochs,
            &p.reason,
            p.valid_secs,
            NOW,
        )
        .unwrap();
        assert_eq!(issued, opened);
        assert_eq!(issued.verify(&o.policy), Ok(()));
        // The same validity checks.
        for valid_secs in [0, o.policy.max_release_validity_secs + 1] {
            let p = DisputeParams {
                valid_secs,
                ..p.clone()
            };
            assert_eq!(
                DisputeTicket::issue(&mut test_rng(153), &o.master, &o.policy, p, NOW),
                Err(Error::InvalidValidity("dispute ticket"))
            );
        }
    }
}
