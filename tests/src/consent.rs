//! Consents and their revocations at the wire level, signed as a customer's client signs them:
//! the fixtures of the tests that share, revoke or release under a consent without the client
//! library ([`crate::raw::RawClient`] and an [`Org`]).

use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent, ReleaseBasis},
    ids::{ConversationId, EpochRange, TokenId},
    keys::IdentityKeys,
    release::{ConsentParams, ConsentToken, Scope},
};

use crate::{
    identity::{Identity, now, rng},
    org::Org,
};

/// `customer`'s full consent to `org`'s master reading the first epoch (0) of `conversation`,
/// for "refund check", valid an hour from now; its id drawn from `seed`.
pub fn full_consent(
    org: &Org,
    customer: &Identity,
    conversation: ConversationId,
    seed: u64,
) -> ConsentToken {
    ConsentToken::issue(
        &mut rng(seed),
        &customer.keys,
        &org.policy,
        ConsentParams {
            conversation,
            epochs: EpochRange::single(0),
            scope: Scope::Full,
            purpose: "refund check".into(),
            valid_secs: 3_600,
        },
        now(),
    )
    .unwrap()
}

/// The audit entry revoking `consent` for `conversation`, signed now by `keys` (the
/// customer's, or anyone's a test wants refused).
pub fn revocation(
    keys: &IdentityKeys,
    conversation: ConversationId,
    consent: TokenId,
) -> AuditEntry {
    AuditEntry::sign(
        keys,
        AuditEvent::ConsentRevocation {
            conversation,
            consent,
        },
        now(),
    )
}

/// `org`'s first trustee's release entry for epoch 0 of `conversation` under a full consent
/// (its id drawn from `seed`) issued now, for the request hashed `request_hash`: an entry the
/// relay appends with a notice in the conversation, for the tests that race that append.
pub fn release_entry(
    org: &Org,
    conversation: ConversationId,
    request_hash: [u8; 32],
    seed: u64,
) -> AuditEntry {
    AuditEntry::sign(
        &org.trustees[0].keys,
        AuditEvent::Release {
            org: org.name.clone(),
            request_hash,
            conversation,
            epochs: EpochRange::single(0),
            basis: ReleaseBasis::Consent {
                id: TokenId::random(&mut rng(seed)),
                scope: Scope::Full,
                issued_at: now(),
            },
            master: org.master.key(),
        },
        now(),
    )
}
