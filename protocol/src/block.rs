//! Blocking a customer for an org: the signed org actions an agent (or the master) takes against
//! spam, and the master's unblock.
//!
//! ```text
//!   block   = label "sealdesk/v1/block"   ‖ str org ‖ [16] conversation ‖ [32] customer
//!             ‖ u8 reason ‖ u64 issued_at ‖ [32] signer
//!   unblock = label "sealdesk/v1/unblock" ‖ str org ‖ [32] customer ‖ u64 issued_at ‖ [32] signer
//! ```
//!
//! A block names the conversation it was taken in, so a block signed for one customer cannot be
//! replayed against another (the customer is signed, and the relay checks it is that
//! conversation's customer). It is made by an agent the org's policy certifies or by the master
//! ([`Block::verify`]); an unblock only by the master ([`Unblock::verify`]). Both are fresh:
//! issued within [`MAX_ACTION_AGE_SECS`] before the verifier's time (and at most
//! [`CLOCK_SKEW_SECS`] after it), so an old statement cannot be replayed later.

use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    codec::Writer,
    ids::ConversationId,
    keys::{IdentityKeys, Signature, SigningPublicKey},
    labels,
    policy::{AgentCertificate, VerifiedPolicy},
    release::CLOCK_SKEW_SECS,
    signed::{Signed as _, impl_signed, verified_type},
};

/// Longest a block or unblock may have been issued before it is checked, in seconds.
pub const MAX_ACTION_AGE_SECS: u64 = 600;

/// Why a customer was blocked.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockReason {
    /// Unsolicited or automated messages.
    Spam,
    /// Abusive messages.
    Abuse,
}

impl BlockReason {
    /// The reason's byte in the signed bytes (1 spam, 2 abuse).
    pub fn code(self) -> u8 {
        match self {
            BlockReason::Spam => 1,
            BlockReason::Abuse => 2,
        }
    }

    /// The reason's name (`spam`, `abuse`).
    pub fn name(self) -> &'static str {
        match self {
            BlockReason::Spam => "spam",
            BlockReason::Abuse => "abuse",
        }
    }

    /// Reads a reason's name.
    ///
    /// # Errors
    /// [`Error::Decode`] for any other word.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "spam" => Ok(BlockReason::Spam),
            "abuse" => Ok(BlockReason::Abuse),
            other => Err(Error::Decode {
                what: "block reason",
                reason: format!("{other:?} is not spam or abuse"),
            }),
        }
    }
}

/// An agent's (or the master's) statement: close this conversation and block its customer's key
/// for the org.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Block {
    /// The org.
    pub org: String,
    /// The conversation the block was taken in.
    pub conversation: ConversationId,
    /// The customer's signing key.
    pub customer: SigningPublicKey,
    /// Why.
    pub reason: BlockReason,
    /// When the signer issued it (its clock).
    pub issued_at: u64,
    /// The agent or master who signs.
    pub signer: SigningPublicKey,
    /// Signature over [`Block::signed_bytes`].
    pub signature: Signature,
}

impl_signed!(Block, "block", signer);

verified_type!(
    /// A block whose signature, signer and freshness have been checked ([`Block::verify`]).
    VerifiedBlock(Block),
    block,
    into_block
);

impl Block {
    /// Signs a block with `keys`.
    pub fn issue(
        keys: &IdentityKeys,
        org: &str,
        conversation: ConversationId,
        customer: SigningPublicKey,
        reason: BlockReason,
        now: u64,
    ) -> Self {
        let mut b = Block {
            org: org.to_owned(),
            conversation,
            customer,
            reason,
            issued_at: now,
            signer: keys.signing_public(),
            signature: Signature::placeholder(),
        };
        b.signature = keys.sign(&b.signed_bytes());
        b
    }

    /// The canonical bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::BLOCK);
        w.str(&self.org)
            .fixed(self.conversation.as_bytes())
            .fixed(self.customer.as_bytes())
            .u8(self.reason.code())
            .u64(self.issued_at)
            .fixed(self.signer.as_bytes());
        w.into_bytes()
    }

    /// Checks the block against the org's current policy at time `now`: the org, freshness, the
    /// signature, and that the signer is the policy's master or the agent `certificate`
    /// certifies (a valid certificate of this org, for the signer's key).
    ///
    /// Whether the conversation is the org's and the customer its customer is for whoever
    /// knows the conversation (the relay) to check.
    ///
    /// # Errors
    /// [`Error::WrongOrg`], [`Error::Expired`] / [`Error::InvalidValidity`] (not fresh),
    /// [`Error::BadSignature`], [`Error::WrongSigner`] (neither the master nor a certified
    /// agent), or the certificate's error.
    pub fn verify(
        self,
        policy: &VerifiedPolicy,
        certificate: Option<&AgentCertificate>,
        now: u64,
    ) -> Result<VerifiedBlock> {
        check_org(&self.org, policy)?;
        check_fresh(self.issued_at, now, "block")?;
        self.check_signature()?;
        if self.signer != policy.master_key() {
            let Some(cert) = certificate else {
                return Err(Error::WrongSigner("block"));
            };
            let agent = cert.verify(policy, now)?;
            if agent.signing_key != self.signer {
                return Err(Error::WrongSigner("block"));
            }
        }
        Ok(VerifiedBlock(self))
    }
}

/// The master's statement: the customer's key is no longer blocked for the org.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Unblock {
    /// The org.
    pub org: String,
    /// The customer's signing key.
    pub customer: SigningPublicKey,
    /// When the master issued it (its clock).
    pub issued_at: u64,
    /// The master's key.
    pub signer: SigningPublicKey,
    /// Signature over [`Unblock::signed_bytes`].
    pub signature: Signature,
}

impl_signed!(Unblock, "unblock", signer);

verified_type!(
    /// An unblock whose signature, signer (the master) and freshness have been checked
    /// ([`Unblock::verify`]).
    VerifiedUnblock(Unblock),
    unblock,
    into_unblock
);

impl Unblock {
    /// Signs an unblock with the master's `keys`.
    pub fn issue(keys: &IdentityKeys, org: &str, customer: SigningPublicKey, now: u64) -> Self {
        let mut u = Unblock {
            org: org.to_owned(),
            customer,
            issued_at: now,
            signer: keys.signing_public(),
            signature: Signature::placeholder(),
        };
        u.signature = keys.sign(&u.signed_bytes());
        u
    }

    /// The canonical bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::UNBLOCK);
        w.str(&self.org)
            .fixed(self.customer.as_bytes())
            .u64(self.issued_at)
            .fixed(self.signer.as_bytes());
        w.into_bytes()
    }

    /// Checks the unblock against the org's current policy at time `now`: the org, freshness,
    /// and the master's signature.
    ///
    /// # Errors
    /// [`Error::WrongOrg`], [`Error::Expired`] / [`Error::InvalidValidity`],
    /// [`Error::WrongSigner`] (not the master), [`Error::BadSignature`].
    pub fn verify(self, policy: &VerifiedPolicy, now: u64) -> Result<VerifiedUnblock> {
        check_org(&self.org, policy)?;
        check_fresh(self.issued_at, now, "unblock")?;
        self.check_signed_by(&policy.master_key())?;
        Ok(VerifiedUnblock(self))
    }
}

fn check_org(org: &str, policy: &VerifiedPolicy) -> Result<()> {
    if org != policy.org {
        return Err(Error::WrongOrg {
            expected: policy.org.clone(),
            found: org.to_owned(),
        });
    }
    Ok(())
}

fn check_fresh(issued_at: u64, now: u64, what: &'static str) -> Result<()> {
    if issued_at > now.saturating_add(CLOCK_SKEW_SECS) {
        return Err(Error::InvalidValidity(what));
    }
    if now.saturating_sub(issued_at) > MAX_ACTION_AGE_SECS {
        return Err(Error::Expired(what));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{
        card::{IdentityCard, Role},
        policy::tests::org,
    };

    const NOW: u64 = 10_000;

    fn cid(b: u8) -> ConversationId {
        ConversationId::try_from(&[b; 16][..]).unwrap()
    }

    fn cert(o: &crate::policy::tests::Org, keys: &IdentityKeys) -> AgentCertificate {
        let card = IdentityCard::issue(keys, "bob", Role::Agent, 100).unwrap();
        AgentCertificate::issue(&o.master, &o.policy, &card, 100, 100_000).unwrap()
    }

    #[test]
    fn a_certified_agent_or_the_master_blocks() {
        let o = org(40);
        let customer = o.customer.signing_public();
        let c = cert(&o, &o.agent);
        let b = Block::issue(&o.agent, "acme", cid(1), customer, BlockReason::Spam, NOW);
        assert!(b.clone().verify(&o.policy, Some(&c), NOW).is_ok());
        let m = Block::issue(&o.master, "acme", cid(1), customer, BlockReason::Abuse, NOW);
        assert!(m.verify(&o.policy, None, NOW).is_ok());
        // Without a certificate, or with another agent's, an agent is nobody.
        assert_eq!(
            b.clone().verify(&o.policy, None, NOW),
            Err(Error::WrongSigner("block"))
        );
        let other = cert(&o, &o.agent2);
        assert_eq!(
            b.clone().verify(&o.policy, Some(&other), NOW),
            Err(Error::WrongSigner("block"))
        );
        // A certificate from another org's master does not make the signer an agent here.
        let globex = org(41);
        let gc = cert(&globex, &o.agent);
        assert_eq!(
            b.clone().verify(&o.policy, Some(&gc), NOW),
            Err(Error::BadSignature("agent certificate"))
        );
        // A block naming another org.
        let named = Block::issue(&o.agent, "globex", cid(1), customer, BlockReason::Spam, NOW);
        assert!(matches!(
            named.verify(&o.policy, Some(&c), NOW),
            Err(Error::WrongOrg { .. })
        ));
        // Stale or from the future.
        assert_eq!(
            b.clone()
                .verify(&o.policy, Some(&c), NOW + MAX_ACTION_AGE_SECS + 1),
            Err(Error::Expired("block"))
        );
        assert_eq!(
            b.clone()
                .verify(&o.policy, Some(&c), NOW - CLOCK_SKEW_SECS - 1),
            Err(Error::InvalidValidity("block"))
        );
        // Replayed for another customer: the signature no longer holds.
        let mut moved = b;
        moved.customer = o.agent2.signing_public();
        assert_eq!(
            moved.verify(&o.policy, Some(&c), NOW),
            Err(Error::BadSignature("block"))
        );
    }

    #[test]
    fn only_the_master_unblocks() {
        let o = org(42);
        let customer = o.customer.signing_public();
        let u = Unblock::issue(&o.master, "acme", customer, NOW);
        assert!(u.verify(&o.policy, NOW).is_ok());
        let by_agent = Unblock::issue(&o.agent, "acme", customer, NOW);
        assert_eq!(
            by_agent.verify(&o.policy, NOW),
            Err(Error::WrongSigner("unblock"))
        );
        let mut forged = Unblock::issue(&o.agent, "acme", customer, NOW);
        forged.signer = o.master.signing_public();
        assert_eq!(
            forged.verify(&o.policy, NOW),
            Err(Error::BadSignature("unblock"))
        );
    }

    #[test]
    fn reasons_read_back() {
        for r in [BlockReason::Spam, BlockReason::Abuse] {
            assert_eq!(BlockReason::parse(r.name()).unwrap(), r);
        }
        assert!(BlockReason::parse("rude").is_err());
    }
}
