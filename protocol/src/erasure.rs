//! Who may state that a conversation was erased, and what a reader checks of such a statement.
//!
//! An erasure entry ([`AuditEvent::Erasure`]) says why a conversation's ciphertext and escrow
//! are gone. Its reason decides who may sign it:
//!
//! - [`ErasureReason::CustomerRequest`] (`"customer request"`): only the conversation's
//!   customer. The customer signs the entry itself ([`customer_erasure`]) and sends it with its
//!   [`crate::release::ErasureRequest`]; the relay logs that entry unchanged. A relay that
//!   claims "the customer erased it" under its own key is therefore caught: it cannot make the
//!   customer's signature.
//! - [`ErasureReason::Retention`] (`"retention"`): only the relay's log key (the retention
//!   sweep). A reader that holds the conversation's activity also checks that the claim is
//!   plausible ([`check_retention`]): the conversation was idle for at least the policy's
//!   retention period when the entry was made.
//!
//! Any other reason is refused, whoever signs it. A customer's statement is also refused when
//! it predates the conversation ([`check_not_stale`]: a statement replayed from an earlier
//! conversation under the same id) or when the same entry appears twice in the log (a replay;
//! readers check that themselves, as the leaf hash repeats).
//!
//! The entry's bytes are those of every erasure entry since the first version (event kind 2,
//! PROTOCOL.md §12): nothing changes in the log's format. Entries logged before by the relay
//! under its own key with the customer's reason are still read, and are shown as not genuine.

use crate::{
    audit::{AuditEntry, AuditEvent, LogError},
    ids::ConversationId,
    keys::IdentityKeys,
    release::CLOCK_SKEW_SECS,
};

/// Why a conversation was erased, as the entry's `reason` string says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErasureReason {
    /// The customer asked: the entry is signed by the customer.
    CustomerRequest,
    /// The retention sweep: the entry is signed by the relay's log key.
    Retention,
}

impl ErasureReason {
    /// The reason string carried in the entry.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CustomerRequest => "customer request",
            Self::Retention => "retention",
        }
    }

    /// The reason a string names, if it names one.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Self::CustomerRequest, Self::Retention]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// The reason of an erasure entry (`None` for other kinds and unknown reasons).
    #[must_use]
    pub fn of(entry: &AuditEntry) -> Option<Self> {
        match &entry.event {
            AuditEvent::Erasure { reason, .. } => Self::parse(reason),
            _ => None,
        }
    }
}

/// The customer's own erasure entry for `conversation`, signed at `at` (the customer's clock).
#[must_use]
pub fn customer_erasure(
    customer: &IdentityKeys,
    conversation: ConversationId,
    at: u64,
) -> AuditEntry {
    AuditEntry::sign(
        customer,
        AuditEvent::Erasure {
            conversation,
            reason: ErasureReason::CustomerRequest.as_str().to_owned(),
        },
        at,
    )
}

/// Checks that a retention erasure is plausible: the conversation, last active at
/// `last_activity` (as far as the reader knows), had been idle for at least `retention_secs`
/// when the entry was made. Entries of other reasons pass.
///
/// # Errors
/// [`LogError::ImplausibleRetention`].
pub fn check_retention(
    entry: &AuditEntry,
    last_activity: u64,
    retention_secs: u64,
) -> Result<(), LogError> {
    if ErasureReason::of(entry) != Some(ErasureReason::Retention) {
        return Ok(());
    }
    let idle = entry.at.saturating_sub(last_activity);
    if idle < retention_secs {
        return Err(LogError::ImplausibleRetention {
            idle_secs: idle,
            retention_secs,
        });
    }
    Ok(())
}

/// Checks that a customer's erasure statement was not made before its conversation was
/// opened at `created_at` (allowing [`CLOCK_SKEW_SECS`]): such a statement is a replay of an
/// earlier conversation's erasure under the same id. Entries of other reasons pass.
///
/// # Errors
/// [`LogError::ReplayedErasure`].
pub fn check_not_stale(entry: &AuditEntry, created_at: u64) -> Result<(), LogError> {
    if ErasureReason::of(entry) == Some(ErasureReason::CustomerRequest)
        && entry.at.saturating_add(CLOCK_SKEW_SECS) < created_at
    {
        return Err(LogError::ReplayedErasure {
            why: "it was signed before the conversation was opened",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{
        audit::AllowedSigners,
        keys::{IdentityKeys, SigningPublicKey},
        test_rng,
    };

    fn conv(b: u8) -> ConversationId {
        ConversationId::from_bytes(&[b; 16]).unwrap()
    }

    fn allowed(customer: SigningPublicKey, log: SigningPublicKey) -> AllowedSigners {
        AllowedSigners {
            customer: Some(customer),
            log_key: Some(log),
            ..AllowedSigners::default()
        }
    }

    fn relay_erasure(relay: &IdentityKeys, reason: &str, at: u64) -> AuditEntry {
        AuditEntry::sign(
            relay,
            AuditEvent::Erasure {
                conversation: conv(1),
                reason: reason.to_owned(),
            },
            at,
        )
    }

    #[test]
    fn each_reason_has_its_one_signer() {
        let customer = IdentityKeys::generate(&mut test_rng(1));
        let relay = IdentityKeys::generate(&mut test_rng(2));
        let other = IdentityKeys::generate(&mut test_rng(3));
        let a = allowed(customer.signing_public(), relay.signing_public());

        assert!(
            customer_erasure(&customer, conv(1), 10)
                .check_signer(&a)
                .is_ok()
        );
        assert!(
            relay_erasure(&relay, "retention", 10)
                .check_signer(&a)
                .is_ok()
        );
        // The relay claiming the customer's reason under its own key.
        let forged = relay_erasure(&relay, "customer request", 10);
        assert!(matches!(
            forged.check_signer(&a),
            Err(crate::Error::Audit(LogError::WrongSigner { .. }))
        ));
        // The customer cannot claim a retention sweep, nor anyone an unknown reason.
        let mut by_customer = relay_erasure(&customer, "retention", 10);
        assert!(by_customer.check_signer(&a).is_err());
        by_customer = relay_erasure(&customer, "customer asked nicely", 10);
        assert!(by_customer.check_signer(&a).is_err());
        assert!(
            relay_erasure(&relay, "because", 10)
                .check_signer(&a)
                .is_err()
        );
        // Another key under the customer's reason.
        assert!(
            customer_erasure(&other, conv(1), 10)
                .check_signer(&a)
                .is_err()
        );
    }

    #[test]
    fn reasons_round_trip_and_unknown_ones_are_none() {
        for r in [ErasureReason::CustomerRequest, ErasureReason::Retention] {
            assert_eq!(ErasureReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(ErasureReason::parse("Retention"), None);
    }

    #[test]
    fn a_retention_erasure_of_a_recent_conversation_is_implausible() {
        let relay = IdentityKeys::generate(&mut test_rng(2));
        let e = relay_erasure(&relay, "retention", 1_000);
        assert!(check_retention(&e, 500, 500).is_ok());
        assert_eq!(
            check_retention(&e, 600, 500),
            Err(LogError::ImplausibleRetention {
                idle_secs: 400,
                retention_secs: 500
            })
        );
        // A customer's erasure is not held to retention.
        let customer = IdentityKeys::generate(&mut test_rng(1));
        assert!(check_retention(&customer_erasure(&customer, conv(1), 1_000), 999, 500).is_ok());
    }

    #[test]
    fn a_customer_statement_older_than_its_conversation_is_a_replay() {
        let customer = IdentityKeys::generate(&mut test_rng(1));
        let e = customer_erasure(&customer, conv(1), 1_000);
        assert!(check_not_stale(&e, 1_000 + CLOCK_SKEW_SECS).is_ok());
        assert!(matches!(
            check_not_stale(&e, 1_001 + CLOCK_SKEW_SECS),
            Err(LogError::ReplayedErasure { .. })
        ));
    }
}
