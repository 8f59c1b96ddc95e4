//! The master's signed [`ReleaseRequest`] to the trustees, carrying its [`Justification`]
//! (a consent token, or a dispute ticket with the arbiters' decisions), and a trustee's
//! [`ReleasedShare`] answering it. Checked, they are a [`VerifiedRequest`] and a
//! [`VerifiedShare`].

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use super::{
    ConsentToken, Refusal,
    dispute::{ArbiterDecision, DisputeTicket},
};
use crate::{
    Error, Result,
    codec::Writer,
    ids::{ConversationId, EpochRange, TokenId},
    keys::{IdentityKeys, Signature, SigningPublicKey},
    labels,
    policy::VerifiedPolicy,
    seal::{Purpose, SealContext, Sealed, open},
    shamir,
    signed::{Signed, impl_signed, verified_type},
};

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
    /// scope checks of [`decide`](super::decide), without keys or state, so that the master's
    /// client (before submitting) and the relay (on submit) can make them before any trustee is
    /// asked. A consent naming another conversation must not release — and use up — that other
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

    /// Checks that `master` made the request: it names that key as its master and the
    /// signature is good. Which key is the master is the caller's to say (the policy's
    /// [`VerifiedPolicy::master_key`], the relay's authenticated master); the org, policy
    /// version, scope ([`Self::check_scope`]) and justification are checked apart.
    ///
    /// # Errors
    /// [`Error::WrongSigner`]`("release request")` if the request names another master,
    /// [`Error::BadSignature`]`("release request")`.
    pub fn verify(self, master: &SigningPublicKey) -> Result<VerifiedRequest> {
        self.check_signed_by(master)?;
        Ok(VerifiedRequest(self))
    }
}

impl_signed!(ReleaseRequest, "release request", master);

verified_type!(
    /// A release request the given master signed ([`ReleaseRequest::verify`]).
    VerifiedRequest(ReleaseRequest),
    request,
    into_request
);

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
        self.check_signature()?;
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

    /// Checks that `trustee` released the share: it names that key as its trustee and the
    /// signature is good. Opening it ([`Self::open`]) also checks the trustee against the
    /// policy and binds the share to its request.
    ///
    /// # Errors
    /// [`Error::WrongSigner`]`("released share")` if the share names another trustee,
    /// [`Error::BadSignature`]`("released share")`.
    pub fn verify(self, trustee: &SigningPublicKey) -> Result<VerifiedShare> {
        self.check_signed_by(trustee)?;
        Ok(VerifiedShare(self))
    }
}

impl_signed!(ReleasedShare, "released share", trustee);

verified_type!(
    /// A released share the given trustee signed ([`ReleasedShare::verify`]).
    VerifiedShare(ReleasedShare),
    share,
    into_share
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{
        epoch::tests::first_epoch,
        policy::tests::org,
        release::{
            DisputeParams, DisputeTicket,
            tests::{NOW, consent, request},
        },
        test_rng,
    };

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
        let ticket = DisputeTicket::issue(
            &mut test_rng(125),
            &o.master,
            &o.policy,
            DisputeParams {
                conversation: ConversationId::random(&mut test_rng(126)),
                epochs: EpochRange::single(0),
                reason: "chargeback".into(),
                valid_secs: 3600,
            },
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

    #[test]
    fn request_verifies_only_against_its_master() {
        let o = org(140);
        let (rec, _) = first_epoch(&o, 141);
        let good = request(
            &o,
            Justification::Consent(consent(&o, rec.conversation, 142)),
            143,
        );
        let master = o.policy.master_key();
        // The honest request passes against the policy's master and reads as itself.
        let v = good.clone().verify(&master).unwrap();
        assert_eq!(v.request(), &good);
        assert_eq!(v.check_scope(), Ok(()));
        assert_eq!(v.into_request(), good);
        let bad = Err(Error::BadSignature("release request"));
        let wrong = Err(Error::WrongSigner("release request"));
        // A field changed after signing (more epochs).
        let mut tampered = good.clone();
        tampered.epochs = EpochRange::new(0, 3).unwrap();
        assert_eq!(tampered.verify(&master), bad);
        // Checked against another key than the one it names.
        assert_eq!(good.clone().verify(&o.agent.signing_public()), wrong);
        // Another master named over the master's signature.
        let mut named = good.clone();
        named.master = o.agent.signing_public();
        assert_eq!(named.clone().verify(&master), wrong);
        assert_eq!(named.verify(&o.agent.signing_public()), bad);
        // A signature by another key over the honest bytes.
        let mut forged = good.clone();
        forged.signature = o.agent.sign(&forged.signed_bytes());
        assert_eq!(forged.verify(&master), bad);
        // Honestly signed by someone else: valid as theirs, refused as the master's.
        let mut other = good.clone();
        other.master = o.agent.signing_public();
        other.signature = o.agent.sign(&other.signed_bytes());
        assert!(other.clone().verify(&o.agent.signing_public()).is_ok());
        assert_eq!(other.verify(&master), wrong);
    }

    #[test]
    fn released_share_verifies_only_against_its_trustee() {
        let o = org(144);
        let (rec, _) = first_epoch(&o, 145);
        let req = request(
            &o,
            Justification::Consent(consent(&o, rec.conversation, 146)),
            147,
        );
        let epochs = [rec.clone()];
        let view = crate::release::TrusteeView {
            policy: &o.policy,
            me: &o.trustees[0],
            now: NOW + 10,
            epochs: &epochs,
            is_spent: &|_| false,
            is_revoked: &|_| false,
        };
        let approved = crate::release::decide(&mut test_rng(148), &view, &req).unwrap();
        let good = approved.shares[0].clone();
        let trustee = o.trustees[0].signing_public();
        // The honest share passes against its trustee and reads as itself.
        let v = good.clone().verify(&trustee).unwrap();
        assert_eq!(v.share(), &good);
        assert_eq!(v.request_hash, req.hash());
        assert_eq!(v.into_share(), good);
        let bad = Err(Error::BadSignature("released share"));
        let wrong = Err(Error::WrongSigner("released share"));
        // A field changed after signing (another epoch).
        let mut tampered = good.clone();
        tampered.epoch = 1;
        assert_eq!(tampered.verify(&trustee), bad);
        // Checked against another trustee than the one it names.
        assert_eq!(good.clone().verify(&o.trustees[1].signing_public()), wrong);
        // Another trustee named over the first one's signature.
        let mut named = good.clone();
        named.trustee = o.trustees[1].signing_public();
        assert_eq!(named.verify(&o.trustees[1].signing_public()), bad);
        // A signature by another key over the honest bytes.
        let mut forged = good.clone();
        forged.signature = o.trustees[1].sign(&forged.signed_bytes());
        assert_eq!(forged.clone().verify(&trustee), bad);
        // Opening checks the same signature.
        assert_eq!(
            forged.open(&o.master, &o.policy, &req).err(),
            Some(Error::BadSignature("released share"))
        );
    }
}
