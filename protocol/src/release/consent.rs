//! What the customer signs: a [`ConsentToken`] that lets the org's master open some epochs of
//! one conversation once, its [`ConsentRevocation`], and an [`ErasureRequest`]. Each checked
//! token or revocation is a [`VerifiedConsent`] or [`VerifiedRevocation`].

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    codec::Writer,
    ids::{ConversationId, EpochRange, TokenId},
    keys::{IdentityKeys, Signature, SigningPublicKey},
    labels,
    policy::VerifiedPolicy,
    signed::{Signed, impl_signed, verified_type},
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

    /// Checks the signature of the customer the token names: the token then says what that key
    /// agreed to. Whether the key is the customer of the epochs released, and whether the token
    /// is in force (org, grantee, validity, not spent or revoked), are the trustee's checks in
    /// [`super::decide`], not this one's.
    ///
    /// # Errors
    /// [`Error::BadSignature`]`("consent token")`.
    pub fn verify(self) -> Result<VerifiedConsent> {
        self.check_signature()?;
        Ok(VerifiedConsent(self))
    }
}

impl_signed!(ConsentToken, "consent token", customer);

verified_type!(
    /// A consent token whose customer signature has been checked ([`ConsentToken::verify`]).
    VerifiedConsent(ConsentToken),
    token,
    into_token
);

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
        self.check_signature()
    }

    /// Checks the signature of the customer the revocation names, as [`Self::verify`], and keeps
    /// the result as a type. Whether that key signed the consent revoked is for the holder of
    /// the consent to compare ([`ConsentToken::customer`]).
    ///
    /// # Errors
    /// [`Error::BadSignature`]`("consent revocation")`.
    pub fn into_verified(self) -> Result<VerifiedRevocation> {
        self.check_signature()?;
        Ok(VerifiedRevocation(self))
    }
}

impl_signed!(ConsentRevocation, "consent revocation", customer);

verified_type!(
    /// A consent revocation whose customer signature has been checked
    /// ([`ConsentRevocation::into_verified`]).
    VerifiedRevocation(ConsentRevocation),
    revocation,
    into_revocation
);

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
    /// The customer's own erasure entry for the audit log
    /// ([`crate::erasure::customer_erasure`]), which the relay logs unchanged. Optional on the
    /// wire (absent from requests made before it existed); a relay refuses a request without it,
    /// since only the customer may sign an erasure at the customer's request. Not covered by
    /// [`Self::signed_bytes`]: the entry carries its own signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<crate::audit::AuditEntry>,
}

impl ErasureRequest {
    /// Signs an erasure request, with the customer's erasure entry signed at the same time.
    pub fn sign(customer: &IdentityKeys, conversation: ConversationId, now: u64) -> Self {
        let mut r = ErasureRequest {
            conversation,
            requested_at: now,
            customer: customer.signing_public(),
            signature: Signature::placeholder(),
            statement: Some(crate::erasure::customer_erasure(
                customer,
                conversation,
                now,
            )),
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
        self.check_signature()
    }
}

impl_signed!(ErasureRequest, "erasure request", customer);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{
        ids::ConversationId,
        policy::tests::org,
        release::tests::{NOW, consent},
        signed::Signed,
        test_rng,
    };

    #[test]
    fn consent_verifies_only_as_signed_by_its_customer() {
        let o = org(130);
        let conv = ConversationId::random(&mut test_rng(131));
        let good = consent(&o, conv, 132);
        // The honest token passes and reads as itself.
        let v = good.clone().verify().unwrap();
        assert_eq!(v.token(), &good);
        assert_eq!(v.customer, o.customer.signing_public());
        assert_eq!(v.into_token(), good);
        let bad = Err(Error::BadSignature("consent token"));
        // A field changed after signing (scope widened).
        let mut tampered = good.clone();
        tampered.scope = Scope::Redacted;
        tampered.purpose = "anything".into();
        assert_eq!(tampered.verify(), bad);
        // Another customer named over the customer's signature.
        let mut wrong_key = good.clone();
        wrong_key.customer = o.agent.signing_public();
        assert_eq!(wrong_key.verify(), bad);
        // A signature by another key (the agent forging consent) over the honest bytes.
        let mut forged = good.clone();
        forged.signature = o.agent.sign(&forged.signed_bytes());
        assert_eq!(forged.verify(), bad);
        // The trait's check is the same check.
        assert_eq!(good.check_signature(), Ok(()));
        assert_eq!(
            good.check_signed_by(&o.agent.signing_public()),
            Err(Error::WrongSigner("consent token"))
        );
    }

    #[test]
    fn revocation_verifies_only_as_signed_by_its_customer() {
        let o = org(133);
        let conv = ConversationId::random(&mut test_rng(134));
        let token = consent(&o, conv, 135);
        assert_eq!(
            ConsentRevocation::issue(&o.agent, &token, NOW + 1),
            Err(Error::NotAMember)
        );
        let good = ConsentRevocation::issue(&o.customer, &token, NOW + 1).unwrap();
        assert_eq!(good.verify(), Ok(()));
        let v = good.clone().into_verified().unwrap();
        assert_eq!(v.revocation(), &good);
        assert_eq!(v.consent, token.id);
        assert_eq!(v.into_revocation(), good);
        let bad = Err(Error::BadSignature("consent revocation"));
        let mut tampered = good.clone();
        tampered.revoked_at += 1;
        assert_eq!(
            tampered.verify(),
            Err(Error::BadSignature("consent revocation"))
        );
        assert_eq!(tampered.into_verified(), bad);
        let mut wrong_key = good.clone();
        wrong_key.customer = o.agent.signing_public();
        assert_eq!(wrong_key.into_verified(), bad);
        let mut forged = good.clone();
        forged.signature = o.agent.sign(&forged.signed_bytes());
        assert_eq!(forged.into_verified(), bad);
    }

    #[test]
    fn verified_consent_serializes_as_the_token() {
        let o = org(136);
        let token = consent(&o, ConversationId::random(&mut test_rng(137)), 138);
        let mut plain = Vec::new();
        ciborium::into_writer(&token, &mut plain).unwrap();
        let mut checked = Vec::new();
        ciborium::into_writer(&token.clone().verify().unwrap(), &mut checked).unwrap();
        assert_eq!(plain, checked);
    }
}
