//! [`Refusal`]: why a trustee (or, for the checks it can make, the relay or the master's client)
//! refuses a release — one variant per check.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a trustee refused a release. Each check of PROTOCOL.md §11 (docs/design.md §4.3) has its
/// own variant.
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
    /// The dispute ticket names another record for this epoch than the one the trustee holds.
    #[error("the dispute ticket names another record for epoch {0} than the one released")]
    RecordNotBound(u32),
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
