//! Justifications (consent tokens, dispute tickets with arbiter decisions), release requests,
//! and the trustee's pure decision function.
//!
//! ```text
//!   customer ──ConsentToken──▶ master ──ReleaseRequest──▶ trustee_i ──decide()──▶ ReleasedShare
//!   master ──DisputeTicket──▶ arbiters ──ArbiterDecision(approve)──▶ (t_a of them) ─┘
//! ```
//!
//! One file per concern, every item re-exported here so that its path is `release::Item`:
//!
//! - `consent`: what the customer signs — [`ConsentToken`] (and [`VerifiedConsent`]), its
//!   [`ConsentRevocation`] (and [`VerifiedRevocation`]), and the [`ErasureRequest`];
//! - `dispute`: the master's [`DisputeTicket`], the arbiters' [`ArbiterDecision`]s and
//!   [`approvers`];
//! - `request`: the master's [`ReleaseRequest`] with its [`Justification`] (and
//!   [`VerifiedRequest`]), and the trustee's [`ReleasedShare`] (and [`VerifiedShare`]);
//! - `refusal`: [`Refusal`], one variant per check a trustee makes;
//! - `decide`: the trustee's [`decide`] over a [`TrusteeView`].
//!
//! [`decide`] keeps no state: whether a token was already used or revoked is passed in, so the
//! trustee daemon owns persistence and this function stays testable and deterministic.

mod consent;
mod decide;
mod dispute;
mod refusal;
mod request;

pub use consent::{
    ConsentParams, ConsentRevocation, ConsentToken, ErasureRequest, Scope, VerifiedConsent,
    VerifiedRevocation,
};
pub use decide::{ApprovedRelease, TrusteeView, decide};
pub use dispute::{
    ArbiterDecision, BoundRecord, ClosedBecause, DisputeClose, DisputeParams, DisputeTicket,
    Verdict, approval_impossible, approvers,
};
pub use refusal::Refusal;
pub use request::{Justification, ReleaseRequest, ReleasedShare, VerifiedRequest, VerifiedShare};

/// Clock skew tolerated between parties, in seconds.
pub const CLOCK_SKEW_SECS: u64 = 300;

/// Values the tests of the release modules share: an issue time and honest justifications.
#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{ids::ConversationId, ids::EpochRange, policy::tests::Org, test_rng};

    /// The time every test value is issued at.
    pub(crate) const NOW: u64 = 1_000;

    /// The org's customer's consent to open epoch 0 of `conv`, for an hour.
    pub(crate) fn consent(o: &Org, conv: ConversationId, seed: u64) -> ConsentToken {
        let p = ConsentParams {
            conversation: conv,
            epochs: EpochRange::single(0),
            scope: Scope::Full,
            purpose: "refund check".into(),
            valid_secs: 3600,
        };
        ConsentToken::issue(&mut test_rng(seed), &o.customer, &o.policy, p, NOW).unwrap()
    }

    /// The org's master's request for epoch 0 under `j`.
    pub(crate) fn request(o: &Org, j: Justification, seed: u64) -> ReleaseRequest {
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
}
