//! What the customer signs: a [`ConsentToken`] that lets the org's master open some epochs of
//! one conversation once, its [`ConsentRevocation`], and an [`ErasureRequest`].

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    codec::Writer,
    ids::{ConversationId, EpochRange, TokenId},
    keys::{IdentityKeys, Signature, SigningPublicKey},
    labels,
    policy::VerifiedPolicy,
};

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
