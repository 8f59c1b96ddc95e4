//! Epoch records: who is in an epoch, `K` sealed to each member, the escrow section and the
//! commitment to `K`, signed by the member who opened the epoch.
//!
//! Three levels of checking, for three kinds of reader:
//! - [`EpochRecord::verify`] — structure, cards and signature: what the relay, trustees and the
//!   master can check without `K`. Gives a [`VerifiedEpoch`].
//! - [`VerifiedEpoch::open`] — for a member: opens `K`, checks the commitment, and recomputes the
//!   escrow section byte for byte. Refuses the epoch on any difference.
//! - [`crate::escrow::reconstruct`] — for the master after a release.
//!
//! A [`HandOff`] gives earlier epochs' secrets to a newly assigned agent; [`HandOff::verify`]
//! checks its signer and gives a [`VerifiedHandOff`], [`HandOff::open`] opens it for its
//! recipient.

use std::collections::HashSet;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    card::{IdentityCard, Role, VerifiedCard},
    codec::Writer,
    escrow::EscrowSection,
    ids::ConversationId,
    keys::{IdentityKeys, Signature, SigningPublicKey},
    labels,
    policy::VerifiedPolicy,
    seal::{Purpose, SealContext, Sealed, open, seal},
    secret::EpochSecret,
    signed::{Signed, impl_signed, verified_type},
};

/// The protocol version written into epoch records and message headers.
pub const PROTOCOL_VERSION: u8 = 1;

/// Most members an epoch may have (a customer and handed-over agents).
pub const MAX_MEMBERS: usize = 16;

/// A signed epoch record, as it travels.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Protocol version ([`PROTOCOL_VERSION`]).
    pub version: u8,
    /// The org whose policy governs the conversation.
    pub org: String,
    /// The conversation.
    pub conversation: ConversationId,
    /// Epoch number: 0 for the first, then +1.
    pub epoch: u32,
    /// Version of the policy the escrow was made under.
    pub policy_version: u32,
    /// Hash of that exact policy ([`crate::policy::OrgPolicy::hash`]).
    #[serde(with = "serde_bytes")]
    pub policy_hash: [u8; 32],
    /// Hash of the previous epoch's record (`None` for epoch 0): epochs form a chain.
    #[serde(with = "serde_bytes")]
    pub previous: Option<[u8; 32]>,
    /// Creation time.
    pub created_at: u64,
    /// The member who created and signed the record.
    pub creator: SigningPublicKey,
    /// The members: exactly one customer, and one or more agents.
    pub members: Vec<IdentityCard>,
    /// `K` sealed to each member, in member order.
    pub sealed_secrets: Vec<Sealed>,
    /// The escrow section.
    pub escrow: EscrowSection,
    /// Commitment to `K`.
    #[serde(with = "serde_bytes")]
    pub commitment: [u8; 32],
    /// The creator's signature over [`EpochRecord::signed_bytes`].
    pub signature: Signature,
}

/// What the creator of an epoch chooses.
#[derive(Debug)]
pub struct NewEpoch<'a> {
    /// The conversation.
    pub conversation: ConversationId,
    /// The epoch number.
    pub epoch: u32,
    /// The members (customer first by convention; order is kept).
    pub members: &'a [VerifiedCard],
    /// The previous epoch's record, for the chain (`None` for epoch 0).
    pub previous: Option<&'a EpochRecord>,
    /// Now.
    pub now: u64,
}

impl EpochRecord {
    /// Opens a new epoch: draws `K`, seals it to each member, computes the escrow, signs.
    ///
    /// # Errors
    /// [`Error::InvalidEpochRecord`] if the creator is not a member or the member set is invalid.
    pub fn create(
        rng: &mut impl CryptoRng,
        creator: &IdentityKeys,
        policy: &VerifiedPolicy,
        new: NewEpoch<'_>,
    ) -> Result<(VerifiedEpoch, EpochSecret)> {
        let k = EpochSecret::random(rng);
        let NewEpoch {
            conversation,
            epoch,
            members,
            previous,
            now,
        } = new;
        let customer = members
            .iter()
            .find(|m| m.role == Role::Customer)
            .map(|m| m.signing_key)
            .ok_or_else(|| Error::InvalidEpochRecord("exactly one customer is required".into()))?;
        let mut sealed_secrets = Vec::with_capacity(members.len());
        let kb = k.to_bytes();
        for m in members {
            let ctx = SealContext {
                purpose: Purpose::EpochSecret,
                conversation: &conversation,
                epoch,
                recipient: &m.signing_key,
                extra: &[],
            };
            sealed_secrets.push(seal(rng, &m.agreement_key, &ctx, kb.as_slice())?);
        }
        let mut record = EpochRecord {
            version: PROTOCOL_VERSION,
            org: policy.org.clone(),
            conversation,
            epoch,
            policy_version: policy.version,
            policy_hash: policy.hash(),
            previous: previous.map(EpochRecord::hash),
            created_at: now,
            creator: creator.signing_public(),
            members: members.iter().map(|m| m.card().clone()).collect(),
            sealed_secrets,
            escrow: EscrowSection::compute(&k, &conversation, epoch, &customer, policy)?,
            commitment: k.commitment(&conversation, epoch),
            signature: Signature::placeholder(),
        };
        record.signature = creator.sign(&record.signed_bytes());
        // The same rules as `verify`, minus the signatures: the member cards are verified
        // already and the record's signature is our own (a unit test verifies the result).
        record.check_structure(policy)?;
        record.check_members(policy, members)?;
        Ok((VerifiedEpoch(record), k))
    }

    /// The canonical bytes the creator's signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::EPOCH_RECORD);
        w.u8(self.version)
            .str(&self.org)
            .fixed(self.conversation.as_bytes())
            .u32(self.epoch)
            .u32(self.policy_version)
            .fixed(&self.policy_hash);
        match &self.previous {
            None => w.u8(0),
            Some(h) => w.u8(1).fixed(h),
        };
        w.u64(self.created_at)
            .fixed(self.creator.as_bytes())
            .count(self.members.len());
        for m in &self.members {
            m.write(&mut w);
        }
        w.count(self.sealed_secrets.len());
        for s in &self.sealed_secrets {
            s.write(&mut w);
        }
        self.escrow.write(&mut w);
        w.fixed(&self.commitment);
        w.into_bytes()
    }

    /// The record's hash (over signed bytes and signature), used to chain epochs.
    pub fn hash(&self) -> [u8; 32] {
        let mut w = Writer::with_label(labels::EPOCH_RECORD_HASH);
        w.bytes(&self.signed_bytes())
            .fixed(&self.signature.to_bytes());
        w.sha256()
    }

    /// The epoch's customer's signing key (a verified record has exactly one).
    ///
    /// # Errors
    /// [`Error::InvalidEpochRecord`] if there is none (cannot happen after `verify`).
    pub fn customer_key(&self) -> Result<SigningPublicKey> {
        self.members
            .iter()
            .find(|m| m.role == Role::Customer)
            .map(|m| m.signing_key)
            .ok_or_else(|| Error::InvalidEpochRecord("no customer".into()))
    }

    /// Opens the master's escrow share `s_M` of this epoch (master only).
    ///
    /// # Errors
    /// [`Error::SealOpen`] for any other key, or a record whose escrow was not made for it.
    pub fn open_master_share(&self, master: &IdentityKeys) -> Result<zeroize::Zeroizing<[u8; 32]>> {
        self.escrow.open_master_share(
            master,
            &self.conversation,
            self.epoch,
            &self.customer_key()?,
        )
    }

    /// Opens trustee `index`'s Shamir share of this epoch (that trustee only).
    ///
    /// # Errors
    /// [`Error::SealOpen`] for the wrong trustee or a record whose escrow was not made for it.
    pub fn open_trustee_share(
        &self,
        trustee: &IdentityKeys,
        index: usize,
    ) -> Result<crate::shamir::Share> {
        self.escrow.open_trustee_share(
            trustee,
            index,
            &self.conversation,
            self.epoch,
            &self.customer_key()?,
        )
    }

    /// Checks everything that can be checked without `K`: version, org and policy binding, the
    /// member set (one customer, agents otherwise, no key twice, valid cards), the shape of the
    /// sealed parts, and the creator's signature. Whether the creator was entitled to open the
    /// epoch is checked by [`VerifiedEpoch::check_follows`], which every reader must also call.
    ///
    /// # Errors
    /// [`Error::UnknownVersion`], [`Error::WrongOrg`], [`Error::InvalidEpochRecord`],
    /// [`Error::BadSignature`] or a card error.
    pub fn verify(self, policy: &VerifiedPolicy) -> Result<VerifiedEpoch> {
        self.check_structure(policy)?;
        let cards = self
            .members
            .iter()
            .map(|m| m.clone().verify())
            .collect::<Result<Vec<_>>>()?;
        self.check_members(policy, &cards)?;
        // The creator is a member of this epoch or, for a transfer, of the previous one; which
        // of the two is checked by `check_follows`, since it needs the previous record.
        self.creator
            .verify(&self.signed_bytes(), &self.signature, "epoch record")?;
        Ok(VerifiedEpoch(self))
    }

    /// Version, org and policy binding, and the shape of the sealed parts.
    fn check_structure(&self, policy: &VerifiedPolicy) -> Result<()> {
        if self.version != PROTOCOL_VERSION {
            return Err(Error::UnknownVersion(self.version));
        }
        if self.org != policy.org {
            return Err(Error::WrongOrg {
                expected: policy.org.clone(),
                found: self.org.clone(),
            });
        }
        let bad = |m: String| Err(Error::InvalidEpochRecord(m));
        if self.policy_version != policy.version || self.policy_hash != policy.hash() {
            return bad(format!(
                "made under policy version {}, which is not the policy supplied (version {})",
                self.policy_version, policy.version
            ));
        }
        if self.members.is_empty() || self.members.len() > MAX_MEMBERS {
            return bad(format!(
                "{} members (1 to {MAX_MEMBERS} allowed)",
                self.members.len()
            ));
        }
        if self.sealed_secrets.len() != self.members.len() {
            return bad("one sealed secret per member is required".into());
        }
        if self.escrow.trustees.len() != policy.trustees.len() {
            return bad("one escrow share per trustee is required".into());
        }
        Ok(())
    }

    /// The membership rules, on cards already verified: roles, no duplicates, nobody who
    /// guards the escrow, exactly one customer.
    fn check_members(&self, policy: &VerifiedPolicy, cards: &[VerifiedCard]) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidEpochRecord(m));
        let mut signing = HashSet::new();
        let mut agreement = HashSet::new();
        let mut customers = 0;
        for card in cards {
            match card.role {
                Role::Customer => customers += 1,
                Role::Agent => {}
                other => return bad(format!("a {other} cannot be a conversation member")),
            }
            if !signing.insert(card.signing_key) || !agreement.insert(card.agreement_key) {
                return bad("a member appears twice".into());
            }
            if policy.master.signing_key == card.signing_key
                || policy.trustee_index(&card.signing_key).is_some()
                || policy.arbiter(&card.signing_key).is_some()
            {
                return bad("the master, a trustee or an arbiter cannot be a member".into());
            }
        }
        if customers != 1 {
            return bad(format!(
                "exactly one customer is required, found {customers}"
            ));
        }
        Ok(())
    }
}

/// An epoch record whose structure and signature have been checked (not yet its escrow).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VerifiedEpoch(EpochRecord);

impl core::ops::Deref for VerifiedEpoch {
    type Target = EpochRecord;
    fn deref(&self) -> &EpochRecord {
        &self.0
    }
}

impl VerifiedEpoch {
    /// The record as it travels.
    pub fn record(&self) -> &EpochRecord {
        &self.0
    }

    /// Gives back the wire form.
    pub fn into_record(self) -> EpochRecord {
        self.0
    }

    /// The epoch's customer (the key that must sign consent for it).
    pub fn customer(&self) -> Option<&IdentityCard> {
        self.0.members.iter().find(|m| m.role == Role::Customer)
    }

    /// The member card with this signing key, if any.
    pub fn member(&self, key: &SigningPublicKey) -> Option<&IdentityCard> {
        self.0.members.iter().find(|m| &m.signing_key == key)
    }

    /// Checks that this record follows `previous` in the chain (same conversation, next number,
    /// previous hash) and that its creator was a member of the previous epoch.
    ///
    /// # Errors
    /// [`Error::InvalidEpochRecord`] or [`Error::WrongConversation`].
    pub fn check_follows(&self, previous: Option<&VerifiedEpoch>) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidEpochRecord(m.to_owned()));
        match previous {
            None => {
                if self.0.epoch != 0 || self.0.previous.is_some() {
                    return bad("the first epoch must be number 0 with no previous record");
                }
                if self.customer().map(|c| c.signing_key) != Some(self.0.creator) {
                    return bad("the first epoch must be created by the customer");
                }
            }
            Some(prev) => {
                if prev.conversation != self.0.conversation {
                    return Err(Error::WrongConversation);
                }
                if Some(self.0.epoch) != prev.epoch.checked_add(1) {
                    return bad("epoch numbers must increase by one");
                }
                if self.0.previous != Some(prev.0.hash()) {
                    return bad("the previous-record hash does not match");
                }
                if self.0.policy_version < prev.policy_version {
                    // A relay serving an older policy must not move escrow back to an old
                    // trustee set.
                    return bad("the policy version of an epoch cannot go down (policy rollback)");
                }
                if prev.member(&self.0.creator).is_none() {
                    return bad("the creator was not a member of the previous epoch");
                }
                if prev.customer().map(|c| c.signing_key) != self.customer().map(|c| c.signing_key)
                {
                    return bad("the customer of a conversation cannot change");
                }
            }
        }
        Ok(())
    }

    /// For a member: opens `K`, checks the commitment, and recomputes the escrow section byte
    /// for byte. This is the check that stops a client from escrowing garbage and that proves no
    /// extra copy of `K` went outside the policy.
    ///
    /// # Errors
    /// [`Error::NotAMember`], [`Error::SealOpen`], [`Error::CommitmentMismatch`] or
    /// [`Error::EscrowMismatch`].
    pub fn open(&self, me: &IdentityKeys, policy: &VerifiedPolicy) -> Result<EpochSecret> {
        let my_key = me.signing_public();
        let idx = self.0.members.iter().position(|m| m.signing_key == my_key);
        let idx = idx.ok_or(Error::NotAMember)?;
        let ctx = SealContext {
            purpose: Purpose::EpochSecret,
            conversation: &self.0.conversation,
            epoch: self.0.epoch,
            recipient: &my_key,
            extra: &[],
        };
        let bytes = open(me, &self.0.sealed_secrets[idx], &ctx, "epoch secret")?;
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| Error::BadLength {
            what: "epoch secret",
            expected: 32,
            got: bytes.len(),
        })?;
        let k = EpochSecret::from_bytes(&arr);
        if !k.matches(&self.0.conversation, self.0.epoch, &self.0.commitment) {
            return Err(Error::CommitmentMismatch(self.0.epoch));
        }
        self.0.escrow.check(
            &k,
            &self.0.conversation,
            self.0.epoch,
            &self.customer_key()?,
            policy,
        )?;
        Ok(k)
    }
}

/// A transferring member hands earlier epochs' secrets to a newly assigned agent, when the
/// policy allows history hand-off.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct HandOff {
    /// The conversation.
    pub conversation: ConversationId,
    /// Who hands over.
    pub from: SigningPublicKey,
    /// Who receives.
    pub to: SigningPublicKey,
    /// `(epoch, K sealed to `to`)` for each handed-over epoch.
    pub epochs: Vec<(u32, Sealed)>,
    /// Creation time.
    pub created_at: u64,
    /// Signature by `from`.
    pub signature: Signature,
}

impl HandOff {
    /// Seals each `(epoch, K)` to `to`.
    ///
    /// # Errors
    /// [`Error::Seal`] if sealing fails.
    pub fn create(
        rng: &mut impl CryptoRng,
        from: &IdentityKeys,
        to: &VerifiedCard,
        conversation: ConversationId,
        secrets: &[(u32, &EpochSecret)],
        now: u64,
    ) -> Result<Self> {
        let mut epochs = Vec::with_capacity(secrets.len());
        for (epoch, k) in secrets {
            let ctx = SealContext {
                purpose: Purpose::HandOff,
                conversation: &conversation,
                epoch: *epoch,
                recipient: &to.signing_key,
                extra: &[],
            };
            epochs.push((
                *epoch,
                seal(rng, &to.agreement_key, &ctx, k.to_bytes().as_slice())?,
            ));
        }
        let mut h = HandOff {
            conversation,
            from: from.signing_public(),
            to: to.signing_key,
            epochs,
            created_at: now,
            signature: Signature::placeholder(),
        };
        h.signature = from.sign(&h.signed_bytes());
        Ok(h)
    }

    /// The canonical bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::HANDOFF);
        w.fixed(self.conversation.as_bytes())
            .fixed(self.from.as_bytes())
            .fixed(self.to.as_bytes())
            .count(self.epochs.len());
        for (e, s) in &self.epochs {
            w.u32(*e);
            s.write(&mut w);
        }
        w.u64(self.created_at);
        w.into_bytes()
    }

    /// Opens the hand-off for its recipient. Each secret is checked against the commitment of
    /// the matching record in `records`, and `from` must have been a member of that epoch.
    ///
    /// # Errors
    /// [`Error::BadSignature`], [`Error::NotAMember`], [`Error::SealOpen`],
    /// [`Error::CommitmentMismatch`], [`Error::InvalidEpochRecord`].
    pub fn open(
        &self,
        me: &IdentityKeys,
        records: &[VerifiedEpoch],
    ) -> Result<Vec<(u32, EpochSecret)>> {
        self.open_held(me, records, &crate::handoff_chain::Holders::default())
    }

    /// [`Self::open`], where `from` may also hold an epoch it was not a member of by an earlier
    /// hand-off in `holders` (a conversation transferred more than once, PROTOCOL.md §7.6).
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn open_held(
        &self,
        me: &IdentityKeys,
        records: &[VerifiedEpoch],
        holders: &crate::handoff_chain::Holders,
    ) -> Result<Vec<(u32, EpochSecret)>> {
        self.check_signature()?;
        if self.to != me.signing_public() {
            return Err(Error::NotAMember);
        }
        let mut out = Vec::with_capacity(self.epochs.len());
        for (epoch, sealed) in &self.epochs {
            let rec = records
                .iter()
                .find(|r| r.epoch == *epoch && r.conversation == self.conversation)
                .ok_or_else(|| Error::InvalidEpochRecord(format!("no record for epoch {epoch}")))?;
            if rec.member(&self.from).is_none() && !holders.holds(*epoch, &self.from) {
                return Err(Error::NotAMember);
            }
            let ctx = SealContext {
                purpose: Purpose::HandOff,
                conversation: &self.conversation,
                epoch: *epoch,
                recipient: &self.to,
                extra: &[],
            };
            let bytes = open(me, sealed, &ctx, "handed-off epoch secret")?;
            let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| Error::BadLength {
                what: "epoch secret",
                expected: 32,
                got: bytes.len(),
            })?;
            let k = EpochSecret::from_bytes(&arr);
            if !k.matches(&self.conversation, *epoch, &rec.commitment) {
                return Err(Error::CommitmentMismatch(*epoch));
            }
            out.push((*epoch, k));
        }
        Ok(out)
    }

    /// Checks the signature of the member the hand-off names as `from`. Whether that member
    /// was in each epoch handed over (and may still hand it over) is for the reader to check
    /// against the epoch records, as [`Self::open`] does for the recipient.
    ///
    /// # Errors
    /// [`Error::BadSignature`]`("hand-off")`.
    pub fn verify(self) -> Result<VerifiedHandOff> {
        self.check_signature()?;
        Ok(VerifiedHandOff(self))
    }
}

impl_signed!(HandOff, "hand-off", from);

verified_type!(
    /// A hand-off whose signature by its `from` has been checked ([`HandOff::verify`]).
    VerifiedHandOff(HandOff),
    handoff,
    into_handoff
);

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{policy::tests::Org, policy::tests::org, test_rng};

    pub(crate) fn cards(o: &Org) -> (VerifiedCard, VerifiedCard, VerifiedCard) {
        (
            IdentityCard::issue(&o.customer, "carol", Role::Customer, 100).unwrap(),
            IdentityCard::issue(&o.agent, "bob", Role::Agent, 100).unwrap(),
            IdentityCard::issue(&o.agent2, "dave", Role::Agent, 100).unwrap(),
        )
    }

    /// Epoch 0 of a new conversation with `members`.
    fn epoch_zero<'a>(rng: &mut impl CryptoRng, members: &'a [VerifiedCard]) -> NewEpoch<'a> {
        NewEpoch {
            conversation: ConversationId::random(rng),
            epoch: 0,
            members,
            previous: None,
            now: 200,
        }
    }

    pub(crate) fn first_epoch(o: &Org, seed: u64) -> (VerifiedEpoch, EpochSecret) {
        let mut rng = test_rng(seed);
        let (c, a, _) = cards(o);
        let members = [c, a];
        let new = epoch_zero(&mut rng, &members);
        EpochRecord::create(&mut rng, &o.customer, &o.policy, new).unwrap()
    }

    #[test]
    fn members_open_and_recompute() {
        let o = org(60);
        let (rec, k) = first_epoch(&o, 61);
        rec.check_follows(None).unwrap();
        let ka = rec.open(&o.agent, &o.policy).unwrap();
        assert_eq!(*ka.to_bytes(), *k.to_bytes());
        assert_eq!(
            rec.open(&o.agent2, &o.policy).err(),
            Some(Error::NotAMember)
        );
        assert_eq!(
            rec.open(&o.master, &o.policy).err(),
            Some(Error::NotAMember)
        );
        let again = rec.record().clone().verify(&o.policy).unwrap();
        assert_eq!(again, rec);
    }

    /// `create` skips re-verifying signatures it just made, never the membership rules.
    #[test]
    fn create_refuses_what_verify_refuses() {
        let o = org(64);
        let mut rng = test_rng(65);
        let (c, a, d) = cards(&o);
        let twice = IdentityCard::issue(&o.customer, "carol2", Role::Customer, 100).unwrap();
        for (members, why) in [
            (vec![a.clone(), d.clone()], "no customer"),
            (vec![c.clone(), a.clone(), twice], "a key twice"),
        ] {
            let new = epoch_zero(&mut rng, &members);
            assert!(
                matches!(
                    EpochRecord::create(&mut rng, &o.customer, &o.policy, new),
                    Err(Error::InvalidEpochRecord(_))
                ),
                "{why}"
            );
        }
    }

    #[test]
    fn forged_and_tampered_records_are_refused() {
        let o = org(62);
        let (rec, _) = first_epoch(&o, 63);
        let r = rec.record();
        // Any field change breaks the signature.
        let mut t = r.clone();
        t.epoch = 5;
        assert_eq!(
            t.verify(&o.policy).err(),
            Some(Error::BadSignature("epoch record"))
        );
        // A member added by someone else (the relay) breaks the signature.
        let (_, _, dave) = cards(&o);
        let mut t = r.clone();
        t.members.push(dave.card().clone());
        t.sealed_secrets.push(t.sealed_secrets[0].clone());
        assert_eq!(
            t.verify(&o.policy).err(),
            Some(Error::BadSignature("epoch record"))
        );
        // Re-signed by a non-member: the signature holds, the chain check refuses it.
        let mut t = r.clone();
        t.creator = o.agent2.signing_public();
        t.signature = o.agent2.sign(&t.signed_bytes());
        let t = t.verify(&o.policy).unwrap();
        assert!(matches!(
            t.check_follows(None),
            Err(Error::InvalidEpochRecord(_))
        ));
        // Unknown version.
        let mut t = r.clone();
        t.version = 9;
        assert_eq!(t.verify(&o.policy).err(), Some(Error::UnknownVersion(9)));
        // Another org's policy.
        let other = org(64);
        assert!(r.clone().verify(&other.policy).is_err());
    }

    #[test]
    fn garbage_escrow_signed_by_a_member_is_refused_by_the_others() {
        let o = org(65);
        let (rec, _) = first_epoch(&o, 66);
        // The customer re-signs a record whose escrow was made for a different K.
        let mut t = rec.record().clone();
        let mut rng = test_rng(67);
        t.escrow = EscrowSection::compute(
            &EpochSecret::random(&mut rng),
            &t.conversation,
            t.epoch,
            &o.customer.signing_public(),
            &o.policy,
        )
        .unwrap();
        t.signature = o.customer.sign(&t.signed_bytes());
        let v = t.verify(&o.policy).unwrap();
        assert!(matches!(
            v.open(&o.agent, &o.policy),
            Err(Error::EscrowMismatch { .. })
        ));
        // A wrong commitment is refused before escrow is even compared.
        let mut t = rec.record().clone();
        t.commitment[0] ^= 1;
        t.signature = o.customer.sign(&t.signed_bytes());
        let v = t.verify(&o.policy).unwrap();
        assert_eq!(
            v.open(&o.agent, &o.policy).err(),
            Some(Error::CommitmentMismatch(0))
        );
    }

    #[test]
    fn chain_rules() {
        let o = org(68);
        let (e0, k0) = first_epoch(&o, 69);
        let (c, _, d) = cards(&o);
        let mut rng = test_rng(70);
        let members = [c, d.clone()];
        let new = NewEpoch {
            conversation: e0.conversation,
            epoch: 1,
            members: &members,
            previous: Some(e0.record()),
            now: 300,
        };
        let (e1, _) = EpochRecord::create(&mut rng, &o.agent, &o.policy, new).unwrap();
        e1.check_follows(Some(&e0)).unwrap();
        // The old agent is not in epoch 1.
        assert_eq!(e1.open(&o.agent, &o.policy).err(), Some(Error::NotAMember));
        assert!(e1.open(&o.agent2, &o.policy).is_ok());
        // An epoch opened by someone not in the previous one is refused in the chain.
        let new = NewEpoch {
            conversation: e0.conversation,
            epoch: 1,
            members: &members,
            previous: Some(e0.record()),
            now: 300,
        };
        let (bad, _) = EpochRecord::create(&mut rng, &o.agent2, &o.policy, new).unwrap();
        assert!(bad.check_follows(Some(&e0)).is_err());
        // Hand-off of epoch 0 from bob to dave.
        let h = HandOff::create(&mut rng, &o.agent, &d, e0.conversation, &[(0, &k0)], 300).unwrap();
        let got = h.open(&o.agent2, std::slice::from_ref(&e0)).unwrap();
        assert_eq!(*got[0].1.to_bytes(), *k0.to_bytes());
        assert!(h.open(&o.customer, std::slice::from_ref(&e0)).is_err());
        let mut forged = h.clone();
        forged.to = o.customer.signing_public();
        assert!(forged.open(&o.customer, &[e0]).is_err());
    }

    #[test]
    fn hand_off_verifies_only_as_signed_by_its_from() {
        let o = org(71);
        let (e0, k0) = first_epoch(&o, 72);
        let (_, _, d) = cards(&o);
        let mut rng = test_rng(73);
        let h = HandOff::create(&mut rng, &o.agent, &d, e0.conversation, &[(0, &k0)], 300).unwrap();
        // The honest hand-off passes and reads as itself.
        let v = h.clone().verify().unwrap();
        assert_eq!(v.handoff(), &h);
        assert_eq!(v.from, o.agent.signing_public());
        assert_eq!(v.into_handoff(), h);
        let bad = Err(Error::BadSignature("hand-off"));
        // A field changed after signing (another recipient).
        let mut tampered = h.clone();
        tampered.to = o.customer.signing_public();
        assert_eq!(tampered.verify(), bad);
        // Another `from` named over the agent's signature.
        let mut wrong_key = h.clone();
        wrong_key.from = o.agent2.signing_public();
        assert_eq!(wrong_key.clone().verify(), bad);
        // A signature by another key over the honest bytes.
        let mut forged = h.clone();
        forged.signature = o.agent2.sign(&forged.signed_bytes());
        assert_eq!(forged.verify(), bad);
        // Signed by whom it names, it passes: the statement is "`from` handed these over".
        let mut resigned = wrong_key;
        resigned.signature = o.agent2.sign(&resigned.signed_bytes());
        assert_eq!(resigned.clone().verify().unwrap().into_handoff(), resigned);
    }
}
