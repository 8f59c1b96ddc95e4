//! Justifications (consent tokens, dispute tickets with arbiter decisions), release requests,
//! and the trustee's pure decision function.
//!
//! ```text
//!   customer ──ConsentToken──▶ master ──ReleaseRequest──▶ trustee_i ──decide()──▶ ReleasedShare
//!   master ──DisputeTicket──▶ arbiters ──ArbiterDecision(approve)──▶ (t_a of them) ─┘
//! ```
//! [`decide`] keeps no state: whether a token was already used or revoked is passed in, so the
//! trustee daemon owns persistence and this function stays testable and deterministic.

use std::collections::HashSet;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{
    Error, Result,
    codec::Writer,
    epoch::VerifiedEpoch,
    ids::{ConversationId, EpochRange, TokenId},
    keys::{IdentityKeys, Signature, SigningPublicKey},
    labels,
    policy::VerifiedPolicy,
    seal::{Purpose, SealContext, Sealed, open, seal},
    shamir,
};

/// Clock skew tolerated between parties, in seconds.
pub const CLOCK_SKEW_SECS: u64 = 300;

/// How much of a transcript a consent releases.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The whole text.
    Full,
    /// Only with personal data (e-mail, phone, card numbers, IBANs) masked on export.
    Redacted,
}

impl Scope {
    fn code(self) -> u8 {
        match self {
            Scope::Full => 1,
            Scope::Redacted => 2,
        }
    }
}

/// A customer's signed consent to open some epochs of one conversation, once.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ConsentToken {
    /// Unique id (single use).
    pub id: TokenId,
    /// The org.
    pub org: String,
    /// The conversation.
    pub conversation: ConversationId,
    /// The epochs it releases.
    pub epochs: EpochRange,
    /// Who may use it: the org master's signing key.
    pub grantee: SigningPublicKey,
    /// Full or redacted.
    pub scope: Scope,
    /// Why, in the customer's words.
    pub purpose: String,
    /// Issue time.
    pub issued_at: u64,
    /// Expiry time.
    pub expires_at: u64,
    /// The customer's signing key (must be the customer of every epoch released).
    pub customer: SigningPublicKey,
    /// The customer's signature.
    pub signature: Signature,
}

/// What a customer fills in to grant consent.
#[derive(Clone, Debug)]
pub struct ConsentParams {
    /// The conversation.
    pub conversation: ConversationId,
    /// The epochs.
    pub epochs: EpochRange,
    /// The scope.
    pub scope: Scope,
    /// Purpose text.
    pub purpose: String,
    /// Validity from now, seconds.
    pub valid_secs: u64,
}

impl ConsentToken {
    /// Issues a consent token to `policy`'s master.
    ///
    /// # Errors
    /// [`Error::InvalidValidity`] for a zero or over-long validity.
    pub fn issue(
        rng: &mut impl CryptoRng,
        customer: &IdentityKeys,
        policy: &VerifiedPolicy,
        p: ConsentParams,
        now: u64,
    ) -> Result<Self> {
        p.epochs.check()?;
        if p.valid_secs == 0 || p.valid_secs > policy.max_release_validity_secs {
            return Err(Error::InvalidValidity("consent token"));
        }
        let mut t = ConsentToken {
            id: TokenId::random(rng),
            org: policy.org.clone(),
            conversation: p.conversation,
            epochs: p.epochs,
            grantee: policy.master_key(),
            scope: p.scope,
            purpose: p.purpose,
            issued_at: now,
            expires_at: now.saturating_add(p.valid_secs),
            customer: customer.signing_public(),
            signature: Signature::placeholder(),
        };
        t.signature = customer.sign(&t.signed_bytes());
        Ok(t)
    }

    /// The canonical bytes the customer's signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::CONSENT);
        w.fixed(self.id.as_bytes())
            .str(&self.org)
            .fixed(self.conversation.as_bytes());
        self.epochs.write(&mut w);
        w.fixed(self.grantee.as_bytes())
            .u8(self.scope.code())
            .str(&self.purpose)
            .u64(self.issued_at)
            .u64(self.expires_at)
            .fixed(self.customer.as_bytes());
        w.into_bytes()
    }
}

/// A customer's signed revocation of an unused consent token.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ConsentRevocation {
    /// The consent revoked.
    pub consent: TokenId,
    /// Its conversation.
    pub conversation: ConversationId,
    /// When.
    pub revoked_at: u64,
    /// The customer.
    pub customer: SigningPublicKey,
    /// The customer's signature.
    pub signature: Signature,
}

impl ConsentRevocation {
    /// Revokes `token`.
    ///
    /// # Errors
    /// [`Error::NotAMember`] if `customer` did not sign the token.
    pub fn issue(customer: &IdentityKeys, token: &ConsentToken, now: u64) -> Result<Self> {
        if token.customer != customer.signing_public() {
            return Err(Error::NotAMember);
        }
        let mut r = ConsentRevocation {
            consent: token.id,
            conversation: token.conversation,
            revoked_at: now,
            customer: customer.signing_public(),
            signature: Signature::placeholder(),
        };
        r.signature = customer.sign(&r.signed_bytes());
        Ok(r)
    }

    /// The canonical bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::CONSENT_REVOCATION);
        w.fixed(self.consent.as_bytes())
            .fixed(self.conversation.as_bytes())
            .u64(self.revoked_at)
            .fixed(self.customer.as_bytes());
        w.into_bytes()
    }

    /// Checks the customer's signature.
    ///
    /// # Errors
    /// [`Error::BadSignature`].
    pub fn verify(&self) -> Result<()> {
        self.customer
            .verify(&self.signed_bytes(), &self.signature, "consent revocation")
    }
}

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
}

impl DisputeTicket {
    /// Opens a ticket.
    ///
    /// # Errors
    /// [`Error::InvalidValidity`] for a zero or over-long validity.
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
        epochs.check()?;
        if valid_secs == 0 || valid_secs > policy.max_release_validity_secs {
            return Err(Error::InvalidValidity("dispute ticket"));
        }
        let mut t = DisputeTicket {
            id: TokenId::random(rng),
            org: policy.org.clone(),
            conversation,
            epochs,
            reason: reason.to_owned(),
            opened_at: now,
            expires_at: now.saturating_add(valid_secs),
            master: master.signing_public(),
            signature: Signature::placeholder(),
        };
        t.signature = master.sign(&t.signed_bytes());
        Ok(t)
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
        self.master
            .verify(&self.signed_bytes(), &self.signature, "dispute ticket")
    }
}

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
        self.arbiter
            .verify(&self.signed_bytes(), &self.signature, "arbiter decision")
    }
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

/// Why a release may happen.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Justification {
    /// The customer's consent.
    Consent(ConsentToken),
    /// A dispute ticket and the arbiters' decisions.
    Dispute {
        /// The ticket.
        ticket: DisputeTicket,
        /// Decisions collected (approvals count toward the threshold).
        decisions: Vec<ArbiterDecision>,
    },
}

impl Justification {
    /// The consent or ticket id (single use).
    pub fn id(&self) -> TokenId {
        match self {
            Justification::Consent(c) => c.id,
            Justification::Dispute { ticket, .. } => ticket.id,
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            Justification::Consent(c) => {
                w.u8(1)
                    .bytes(&c.signed_bytes())
                    .fixed(&c.signature.to_bytes());
            }
            Justification::Dispute { ticket, decisions } => {
                w.u8(2)
                    .bytes(&ticket.signed_bytes())
                    .fixed(&ticket.signature.to_bytes());
                w.count(decisions.len());
                for d in decisions {
                    w.bytes(&d.signed_bytes()).fixed(&d.signature.to_bytes());
                }
            }
        }
    }
}

/// The master's signed request to the trustees.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ReleaseRequest {
    /// Unique request id.
    pub id: TokenId,
    /// The org.
    pub org: String,
    /// The policy version the master acts under.
    pub policy_version: u32,
    /// The conversation.
    pub conversation: ConversationId,
    /// The epochs requested (within the justification's epochs).
    pub epochs: EpochRange,
    /// The justification.
    pub justification: Justification,
    /// When.
    pub requested_at: u64,
    /// The master.
    pub master: SigningPublicKey,
    /// The master's signature.
    pub signature: Signature,
}

impl ReleaseRequest {
    /// Signs a request.
    ///
    /// # Errors
    /// [`Error::Decode`] for an empty epoch range.
    pub fn sign(
        rng: &mut impl CryptoRng,
        master: &IdentityKeys,
        policy: &VerifiedPolicy,
        epochs: EpochRange,
        justification: Justification,
        now: u64,
    ) -> Result<Self> {
        epochs.check()?;
        let conversation = match &justification {
            Justification::Consent(c) => c.conversation,
            Justification::Dispute { ticket, .. } => ticket.conversation,
        };
        let mut r = ReleaseRequest {
            id: TokenId::random(rng),
            org: policy.org.clone(),
            policy_version: policy.version,
            conversation,
            epochs,
            justification,
            requested_at: now,
            master: master.signing_public(),
            signature: Signature::placeholder(),
        };
        r.signature = master.sign(&r.signed_bytes());
        Ok(r)
    }

    /// The canonical bytes the master's signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::RELEASE_REQUEST);
        w.fixed(self.id.as_bytes())
            .str(&self.org)
            .u32(self.policy_version)
            .fixed(self.conversation.as_bytes());
        self.epochs.write(&mut w);
        self.justification.write(&mut w);
        w.u64(self.requested_at).fixed(self.master.as_bytes());
        w.into_bytes()
    }

    /// The request hash bound into each released share's HPKE `info`.
    pub fn hash(&self) -> [u8; 32] {
        let mut w = Writer::with_label(labels::RELEASE_REQUEST_HASH);
        w.bytes(&self.signed_bytes())
            .fixed(&self.signature.to_bytes());
        w.sha256()
    }

    /// Checks that the justification is for this request's org, conversation and epochs: the
    /// scope checks of [`decide`], without keys or state, so that the master's client (before
    /// submitting) and the relay (on submit) can make them before any trustee is asked. A
    /// consent naming another conversation must not release — and use up — that other
    /// conversation.
    ///
    /// # Errors
    /// [`Refusal::WrongPolicy`] for another org, [`Refusal::WrongConversation`], or
    /// [`Refusal::EpochsNotCovered`] (also for an empty requested range).
    pub fn check_scope(&self) -> core::result::Result<(), Refusal> {
        let (org, conversation, epochs) = match &self.justification {
            Justification::Consent(c) => (&c.org, c.conversation, c.epochs),
            Justification::Dispute { ticket, .. } => {
                (&ticket.org, ticket.conversation, ticket.epochs)
            }
        };
        if *org != self.org {
            return Err(Refusal::WrongPolicy);
        }
        if conversation != self.conversation {
            return Err(Refusal::WrongConversation);
        }
        if self.epochs.check().is_err() || !epochs.covers(&self.epochs) {
            return Err(Refusal::EpochsNotCovered);
        }
        Ok(())
    }
}

/// One trustee's share for one epoch, re-sealed to the policy's master for one request, and
/// signed by the trustee.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ReleasedShare {
    /// The request this answers.
    #[serde(with = "serde_bytes")]
    pub request_hash: [u8; 32],
    /// The conversation.
    pub conversation: ConversationId,
    /// The epoch.
    pub epoch: u32,
    /// The trustee.
    pub trustee: SigningPublicKey,
    /// The Shamir share, sealed to the master with the request hash in `info`.
    pub sealed: Sealed,
    /// The trustee's signature.
    pub signature: Signature,
}

impl ReleasedShare {
    /// The canonical bytes the trustee's signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::RELEASED_SHARE);
        w.fixed(&self.request_hash)
            .fixed(self.conversation.as_bytes())
            .u32(self.epoch)
            .fixed(self.trustee.as_bytes());
        self.sealed.write(&mut w);
        w.into_bytes()
    }

    /// For the master: checks the trustee's signature and membership in the policy, and opens the
    /// share for `request`.
    ///
    /// # Errors
    /// [`Error::BadSignature`], [`Error::SealOpen`] (wrong request, epoch or master), a
    /// [`Refusal`] for a non-trustee, or [`Error::Shamir`].
    pub fn open(
        &self,
        master: &IdentityKeys,
        policy: &VerifiedPolicy,
        request: &ReleaseRequest,
    ) -> Result<shamir::Share> {
        if policy.trustee_index(&self.trustee).is_none() {
            return Err(Refusal::NotATrustee.into());
        }
        self.trustee
            .verify(&self.signed_bytes(), &self.signature, "released share")?;
        let hash = request.hash();
        let me = master.signing_public();
        let ctx = SealContext {
            purpose: Purpose::ReleasedShare,
            conversation: &self.conversation,
            epoch: self.epoch,
            recipient: &me,
            extra: &hash,
        };
        let bytes = open(master, &self.sealed, &ctx, "released share")?;
        shamir::Share::from_bytes(&bytes).map_err(|e| Error::Shamir(e.to_string()))
    }
}

/// A customer's signed request to erase a conversation (refused while a dispute is open).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ErasureRequest {
    /// The conversation.
    pub conversation: ConversationId,
    /// When.
    pub requested_at: u64,
    /// The customer.
    pub customer: SigningPublicKey,
    /// The customer's signature.
    pub signature: Signature,
}

impl ErasureRequest {
    /// Signs an erasure request.
    pub fn sign(customer: &IdentityKeys, conversation: ConversationId, now: u64) -> Self {
        let mut r = ErasureRequest {
            conversation,
            requested_at: now,
            customer: customer.signing_public(),
            signature: Signature::placeholder(),
        };
        r.signature = customer.sign(&r.signed_bytes());
        r
    }

    /// The canonical bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::ERASURE_REQUEST);
        w.fixed(self.conversation.as_bytes())
            .u64(self.requested_at)
            .fixed(self.customer.as_bytes());
        w.into_bytes()
    }

    /// Checks the signature.
    ///
    /// # Errors
    /// [`Error::BadSignature`].
    pub fn verify(&self) -> Result<()> {
        self.customer
            .verify(&self.signed_bytes(), &self.signature, "erasure request")
    }
}

/// Why a trustee refused a release. Each check of docs/design.md §4 has its own variant.
#[derive(Clone, PartialEq, Eq, Debug, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Refusal {
    /// The request is not signed by the policy's master.
    #[error("the request is not signed by the org's master key")]
    NotFromMaster,
    /// The request names another org or policy version.
    #[error("the request names another org or policy version")]
    WrongPolicy,
    /// The justification is for another conversation.
    #[error("the justification is for another conversation")]
    WrongConversation,
    /// The request asks for epochs the justification does not cover.
    #[error("the justification does not cover the requested epochs")]
    EpochsNotCovered,
    /// The request names an epoch whose record the trustee does not have.
    #[error("no valid epoch record for epoch {0}")]
    UnknownEpoch(u32),
    /// The epoch was made under another policy version than the one in force.
    #[error("epoch {0} was made under another policy version; release it under that policy")]
    EpochUnderOtherPolicy(u32),
    /// The policy does not allow this kind of justification.
    #[error("the policy does not allow {0} releases")]
    NotAllowed(String),
    /// The consent is not signed by the epoch's customer.
    #[error("the consent is not signed by the conversation's customer")]
    NotTheCustomer,
    /// A signature on the justification failed.
    #[error("a signature on the justification is invalid")]
    BadJustification,
    /// The consent is granted to another key than the policy's master.
    #[error("the consent is granted to another key")]
    WrongGrantee,
    /// The justification has expired.
    #[error("the justification has expired")]
    Expired,
    /// The justification is not valid yet or its validity exceeds the policy's maximum.
    #[error("the justification's validity period is not acceptable")]
    BadValidity,
    /// The consent or ticket was already used for a release.
    #[error("the justification was already used")]
    AlreadyUsed,
    /// The customer revoked the consent.
    #[error("the consent was revoked")]
    Revoked,
    /// Not enough distinct arbiters approved the ticket.
    #[error("{have} of the {need} required arbiter approvals")]
    NotEnoughApprovals {
        /// Valid distinct approvals.
        have: usize,
        /// The policy's threshold.
        need: usize,
    },
    /// A decision was signed by someone who is not an arbiter (or by the master).
    #[error("the decision is not from an arbiter of the policy")]
    NotAnArbiter,
    /// A decision is about another ticket.
    #[error("the decision is about another ticket")]
    WrongTicket,
    /// This trustee is not in the policy.
    #[error("not a trustee of this policy")]
    NotATrustee,
    /// The trustee's rate limit for the org is exhausted.
    #[error("rate limited: try again later")]
    RateLimited,
}

/// What a trustee knows when it decides: the pinned policy, its keys, the time, the verified
/// epoch records of the conversation, and which tokens are spent or revoked.
pub struct TrusteeView<'a> {
    /// The org policy the trustee pinned.
    pub policy: &'a VerifiedPolicy,
    /// The trustee's keys.
    pub me: &'a IdentityKeys,
    /// Now.
    pub now: u64,
    /// Verified epoch records (at least those requested).
    pub epochs: &'a [VerifiedEpoch],
    /// Whether a consent/ticket id was already used.
    pub is_spent: &'a dyn Fn(&TokenId) -> bool,
    /// Whether a consent id was revoked.
    pub is_revoked: &'a dyn Fn(&TokenId) -> bool,
}

/// An approved release: the trustee's shares for each requested epoch, sealed to the policy's
/// master. Send them only after the release entry is in the audit log.
#[derive(Clone, Debug)]
pub struct ApprovedRelease {
    /// The request hash.
    pub request_hash: [u8; 32],
    /// The consent or ticket id, to mark spent.
    pub justification: TokenId,
    /// Approving arbiters (empty for consent).
    pub approvers: Vec<SigningPublicKey>,
    /// One share per epoch.
    pub shares: Vec<ReleasedShare>,
}

/// Checks a release request as a trustee and, if every check passes, re-seals this trustee's
/// shares to the master key *named in the policy* (never one from the request), with the request
/// hash in the HPKE `info`.
///
/// # Errors
/// A [`Refusal`] naming the first failed check, or another [`crate::Error`] if opening a share fails.
pub fn decide(
    rng: &mut impl CryptoRng,
    view: &TrusteeView<'_>,
    request: &ReleaseRequest,
) -> Result<ApprovedRelease> {
    let policy = view.policy;
    let refuse = |r: Refusal| Err(Error::Refused(r));
    let my_index = policy.trustee_index(&view.me.signing_public());
    let Some(my_index) = my_index else {
        return refuse(Refusal::NotATrustee);
    };
    if request.master != policy.master_key()
        || request
            .master
            .verify(&request.signed_bytes(), &request.signature, "request")
            .is_err()
    {
        return refuse(Refusal::NotFromMaster);
    }
    if request.org != policy.org || request.policy_version != policy.version {
        return refuse(Refusal::WrongPolicy);
    }
    if request.epochs.check().is_err() {
        return refuse(Refusal::EpochsNotCovered);
    }
    let approvers = check_justification(view, request)?;

    let hash = request.hash();
    let mut shares = Vec::new();
    for epoch in request.epochs.iter() {
        let rec = view
            .epochs
            .iter()
            .find(|r| r.epoch == epoch && r.conversation == request.conversation)
            .ok_or(Error::Refused(Refusal::UnknownEpoch(epoch)))?;
        if rec.policy_version != policy.version || rec.policy_hash != policy.hash() {
            // Share positions follow the trustee list of the policy the epoch was made under;
            // releasing under another one would hand out the wrong share.
            return refuse(Refusal::EpochUnderOtherPolicy(epoch));
        }
        if let Justification::Consent(c) = &request.justification {
            // The consenting key must be this epoch's customer, as recorded in the signed epoch
            // record — never a key looked up at release time.
            if rec.customer().map(|m| m.signing_key) != Some(c.customer) {
                return refuse(Refusal::NotTheCustomer);
            }
        }
        let share = rec.open_trustee_share(view.me, my_index)?;
        let master = &policy.master;
        let ctx = SealContext {
            purpose: Purpose::ReleasedShare,
            conversation: &request.conversation,
            epoch,
            recipient: &master.signing_key,
            extra: &hash,
        };
        let sealed = seal(
            rng,
            &master.agreement_key,
            &ctx,
            share.to_bytes().as_slice(),
        )?;
        let mut rs = ReleasedShare {
            request_hash: hash,
            conversation: request.conversation,
            epoch,
            trustee: view.me.signing_public(),
            sealed,
            signature: Signature::placeholder(),
        };
        rs.signature = view.me.sign(&rs.signed_bytes());
        shares.push(rs);
    }
    Ok(ApprovedRelease {
        request_hash: hash,
        justification: request.justification.id(),
        approvers,
        shares,
    })
}

fn check_validity(
    policy: &VerifiedPolicy,
    now: u64,
    issued: u64,
    expires: u64,
) -> core::result::Result<(), Refusal> {
    if issued > now.saturating_add(CLOCK_SKEW_SECS)
        || expires <= issued
        || expires - issued > policy.max_release_validity_secs
    {
        return Err(Refusal::BadValidity);
    }
    if now >= expires {
        return Err(Refusal::Expired);
    }
    Ok(())
}

fn check_justification(
    view: &TrusteeView<'_>,
    request: &ReleaseRequest,
) -> Result<Vec<SigningPublicKey>> {
    let policy = view.policy;
    let refuse = |r: Refusal| Err(Error::Refused(r));
    let id = request.justification.id();
    match &request.justification {
        Justification::Consent(c) => {
            if !policy.allow_consent {
                return refuse(Refusal::NotAllowed("consent".into()));
            }
            if c.org != policy.org {
                return refuse(Refusal::WrongPolicy);
            }
            if c.conversation != request.conversation {
                return refuse(Refusal::WrongConversation);
            }
            if !c.epochs.covers(&request.epochs) {
                return refuse(Refusal::EpochsNotCovered);
            }
            if c.grantee != policy.master_key() {
                return refuse(Refusal::WrongGrantee);
            }
            if c.customer
                .verify(&c.signed_bytes(), &c.signature, "consent")
                .is_err()
            {
                return refuse(Refusal::BadJustification);
            }
            check_validity(policy, view.now, c.issued_at, c.expires_at)?;
            if (view.is_revoked)(&id) {
                return refuse(Refusal::Revoked);
            }
            if (view.is_spent)(&id) {
                return refuse(Refusal::AlreadyUsed);
            }
            Ok(Vec::new())
        }
        Justification::Dispute { ticket, decisions } => {
            if !policy.allow_dispute {
                return refuse(Refusal::NotAllowed("dispute".into()));
            }
            if ticket.conversation != request.conversation {
                return refuse(Refusal::WrongConversation);
            }
            if !ticket.epochs.covers(&request.epochs) {
                return refuse(Refusal::EpochsNotCovered);
            }
            if ticket.verify(policy).is_err() {
                return refuse(Refusal::BadJustification);
            }
            check_validity(policy, view.now, ticket.opened_at, ticket.expires_at)?;
            if (view.is_spent)(&id) {
                return refuse(Refusal::AlreadyUsed);
            }
            let ok = approvers(policy, ticket, decisions);
            let need = usize::from(policy.arbiter_threshold);
            if ok.len() < need {
                return refuse(Refusal::NotEnoughApprovals {
                    have: ok.len(),
                    need,
                });
            }
            Ok(ok)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{
        epoch::tests::first_epoch, escrow::reconstruct, policy::tests::Org, policy::tests::org,
        test_rng,
    };

    const NOW: u64 = 1_000;

    fn consent(o: &Org, conv: ConversationId, seed: u64) -> ConsentToken {
        let p = ConsentParams {
            conversation: conv,
            epochs: EpochRange::single(0),
            scope: Scope::Full,
            purpose: "refund check".into(),
            valid_secs: 3600,
        };
        ConsentToken::issue(&mut test_rng(seed), &o.customer, &o.policy, p, NOW).unwrap()
    }

    fn view<'a>(
        o: &'a Org,
        t: usize,
        epochs: &'a [VerifiedEpoch],
        spent: &'a dyn Fn(&TokenId) -> bool,
        revoked: &'a dyn Fn(&TokenId) -> bool,
    ) -> TrusteeView<'a> {
        TrusteeView {
            policy: &o.policy,
            me: &o.trustees[t],
            now: NOW + 10,
            epochs,
            is_spent: spent,
            is_revoked: revoked,
        }
    }

    fn no(_: &TokenId) -> bool {
        false
    }
    fn yes(_: &TokenId) -> bool {
        true
    }

    fn request(o: &Org, j: Justification, seed: u64) -> ReleaseRequest {
        ReleaseRequest::sign(
            &mut test_rng(seed),
            &o.master,
            &o.policy,
            EpochRange::single(0),
            j,
            NOW,
        )
        .unwrap()
    }

    fn refusal(r: Result<ApprovedRelease>) -> Refusal {
        match r {
            Err(Error::Refused(r)) => r,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn consent_release_end_to_end() {
        let o = org(90);
        let (rec, k) = first_epoch(&o, 91);
        let epochs = [rec.clone()];
        let req = request(
            &o,
            Justification::Consent(consent(&o, rec.conversation, 92)),
            93,
        );
        let mut rng = test_rng(94);
        let mut shares = Vec::new();
        for t in [0, 1] {
            let a = decide(&mut rng, &view(&o, t, &epochs, &no, &no), &req).unwrap();
            assert_eq!(a.shares.len(), 1);
            shares.push(a.shares[0].open(&o.master, &o.policy, &req).unwrap());
        }
        let s_m = rec.open_master_share(&o.master).unwrap();
        let k2 = reconstruct(&s_m, &shares, 2, &rec.conversation, 0, &rec.commitment).unwrap();
        assert_eq!(*k2.to_bytes(), *k.to_bytes());
    }

    #[test]
    fn released_share_opens_only_for_its_request_and_master() {
        let o = org(95);
        let (rec, _) = first_epoch(&o, 96);
        let epochs = [rec.clone()];
        let req = request(
            &o,
            Justification::Consent(consent(&o, rec.conversation, 97)),
            98,
        );
        let a = decide(&mut test_rng(99), &view(&o, 0, &epochs, &no, &no), &req).unwrap();
        let other = request(
            &o,
            Justification::Consent(consent(&o, rec.conversation, 100)),
            101,
        );
        assert!(a.shares[0].open(&o.master, &o.policy, &other).is_err());
        assert!(a.shares[0].open(&o.customer, &o.policy, &req).is_err());
        let mut forged = a.shares[0].clone();
        forged.epoch = 1;
        assert!(forged.open(&o.master, &o.policy, &req).is_err());
    }

    #[test]
    fn consent_refusals() {
        let o = org(102);
        let (rec, _) = first_epoch(&o, 103);
        let epochs = [rec.clone()];
        let conv = rec.conversation;
        let mut rng = test_rng(104);
        let good = consent(&o, conv, 105);
        let v = view(&o, 0, &epochs, &no, &no);
        // Spent, revoked.
        let req = request(&o, Justification::Consent(good.clone()), 106);
        assert_eq!(
            refusal(decide(&mut rng, &view(&o, 0, &epochs, &yes, &no), &req)),
            Refusal::AlreadyUsed
        );
        assert_eq!(
            refusal(decide(&mut rng, &view(&o, 0, &epochs, &no, &yes), &req)),
            Refusal::Revoked
        );
        // Expired.
        let mut late = view(&o, 0, &epochs, &no, &no);
        late.now = NOW + 3600;
        assert_eq!(refusal(decide(&mut rng, &late, &req)), Refusal::Expired);
        // Another conversation.
        let other = consent(&o, ConversationId::random(&mut rng), 107);
        let req2 = request(&o, Justification::Consent(other), 108);
        assert_eq!(
            refusal(decide(&mut rng, &v, &req2)),
            Refusal::UnknownEpoch(0)
        );
        // Granted to another key.
        let mut c = good.clone();
        c.grantee = o.agent.signing_public();
        c.signature = o.customer.sign(&c.signed_bytes());
        let req3 = request(&o, Justification::Consent(c), 109);
        assert_eq!(refusal(decide(&mut rng, &v, &req3)), Refusal::WrongGrantee);
        // Signed by someone other than the epoch's customer (the agent forging consent).
        let mut c = good.clone();
        c.customer = o.agent.signing_public();
        c.signature = o.agent.sign(&c.signed_bytes());
        let req4 = request(&o, Justification::Consent(c), 110);
        assert_eq!(
            refusal(decide(&mut rng, &v, &req4)),
            Refusal::NotTheCustomer
        );
        // Tampered consent (scope widened after signing).
        let mut c = good.clone();
        c.epochs = EpochRange::new(0, 5).unwrap();
        let req5 = request(&o, Justification::Consent(c), 111);
        assert_eq!(
            refusal(decide(&mut rng, &v, &req5)),
            Refusal::BadJustification
        );
        // Request not from the master.
        let mut r = req.clone();
        r.signature = o.agent.sign(&r.signed_bytes());
        assert_eq!(refusal(decide(&mut rng, &v, &r)), Refusal::NotFromMaster);
        // Epochs outside the consent.
        let r = ReleaseRequest::sign(
            &mut rng,
            &o.master,
            &o.policy,
            EpochRange::new(0, 1).unwrap(),
            Justification::Consent(good),
            NOW,
        )
        .unwrap();
        assert_eq!(refusal(decide(&mut rng, &v, &r)), Refusal::EpochsNotCovered);
        // Not a trustee.
        let mut nt = view(&o, 0, &epochs, &no, &no);
        nt.me = &o.agent;
        assert_eq!(refusal(decide(&mut rng, &nt, &req)), Refusal::NotATrustee);
    }

    #[test]
    fn dispute_threshold_and_master_never_counts() {
        let o = org(112);
        let (rec, _) = first_epoch(&o, 113);
        let epochs = [rec.clone()];
        let mut rng = test_rng(114);
        let ticket = DisputeTicket::open(
            &mut rng,
            &o.master,
            &o.policy,
            rec.conversation,
            EpochRange::single(0),
            "chargeback",
            3600,
            NOW,
        )
        .unwrap();
        let approve =
            |k: &IdentityKeys| ArbiterDecision::sign(k, &ticket, Verdict::Approve, NOW).unwrap();
        let v = view(&o, 0, &epochs, &no, &no);
        let with = |decisions: Vec<ArbiterDecision>, seed| {
            request(
                &o,
                Justification::Dispute {
                    ticket: ticket.clone(),
                    decisions,
                },
                seed,
            )
        };
        // t_a - 1 approvals, duplicated: still one.
        let a0 = approve(&o.arbiters[0]);
        let r = with(vec![a0.clone(), a0.clone()], 115);
        assert_eq!(
            refusal(decide(&mut rng, &v, &r)),
            Refusal::NotEnoughApprovals { have: 1, need: 2 }
        );
        // The master's approval does not count; nor a rejection.
        let r = with(
            vec![
                a0.clone(),
                approve(&o.master),
                ArbiterDecision::sign(&o.arbiters[1], &ticket, Verdict::Reject("no".into()), NOW)
                    .unwrap(),
            ],
            116,
        );
        assert_eq!(
            refusal(decide(&mut rng, &v, &r)),
            Refusal::NotEnoughApprovals { have: 1, need: 2 }
        );
        // A forged approval (signature by another key) does not count.
        let mut forged = approve(&o.arbiters[1]);
        forged.signature = o.agent.sign(&forged.signed_bytes());
        let r = with(vec![a0.clone(), forged], 117);
        assert!(matches!(
            refusal(decide(&mut rng, &v, &r)),
            Refusal::NotEnoughApprovals { .. }
        ));
        // t_a approvals: released.
        let r = with(vec![a0, approve(&o.arbiters[2])], 118);
        let ok = decide(&mut rng, &v, &r).unwrap();
        assert_eq!(ok.approvers.len(), 2);
        // Approvals of another ticket do not count.
        let other = DisputeTicket::open(
            &mut rng,
            &o.master,
            &o.policy,
            rec.conversation,
            EpochRange::single(0),
            "other",
            3600,
            NOW,
        )
        .unwrap();
        let foreign = ArbiterDecision::sign(&o.arbiters[1], &other, Verdict::Approve, NOW).unwrap();
        let r = with(vec![approve(&o.arbiters[0]), foreign], 119);
        assert!(matches!(
            refusal(decide(&mut rng, &v, &r)),
            Refusal::NotEnoughApprovals { .. }
        ));
    }
    #[test]
    fn check_scope_refuses_a_justification_for_another_conversation_or_epochs() {
        let o = org(120);
        let (rec, _) = first_epoch(&o, 121);
        let good = consent(&o, rec.conversation, 122);
        let req = request(&o, Justification::Consent(good.clone()), 123);
        assert_eq!(req.check_scope(), Ok(()));
        // The master names another conversation than the consent's (and signs it).
        let mut other = req.clone();
        other.conversation = ConversationId::random(&mut test_rng(124));
        other.signature = o.master.sign(&other.signed_bytes());
        assert_eq!(other.check_scope(), Err(Refusal::WrongConversation));
        // Epochs beyond the consent's, and an empty range.
        for (first, last) in [(0, 1), (1, 1), (2, 1)] {
            let mut r = req.clone();
            r.epochs = EpochRange { first, last };
            assert_eq!(r.check_scope(), Err(Refusal::EpochsNotCovered), "{r:?}");
        }
        // Another org.
        let mut r = req.clone();
        r.org = "other".into();
        assert_eq!(r.check_scope(), Err(Refusal::WrongPolicy));
        // A dispute ticket for another conversation.
        let ticket = DisputeTicket::open(
            &mut test_rng(125),
            &o.master,
            &o.policy,
            ConversationId::random(&mut test_rng(126)),
            EpochRange::single(0),
            "chargeback",
            3600,
            NOW,
        )
        .unwrap();
        let mut r = request(
            &o,
            Justification::Dispute {
                ticket,
                decisions: vec![],
            },
            127,
        );
        assert_eq!(r.check_scope(), Ok(()));
        r.conversation = rec.conversation;
        assert_eq!(r.check_scope(), Err(Refusal::WrongConversation));
    }
}
