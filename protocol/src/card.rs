//! Identity cards: an account's public keys, name and role, signed by its own signing key.
//!
//! [`IdentityCard`] is what travels (unverified). [`VerifiedCard`] can only be made by
//! [`IdentityCard::verify`], so code that takes a `VerifiedCard` cannot be handed a forgery.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    codec::Writer,
    ids::check_name,
    keys::{AgreementPublicKey, Fingerprint, IdentityKeys, Signature, SigningPublicKey},
    labels,
};

/// What an account is for. Separation of duties is checked against these in the org policy.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A customer who opens conversations.
    Customer,
    /// A support agent, certified by an org's master key.
    Agent,
    /// The business owner's master account.
    Master,
    /// An escrow trustee holding Shamir shares.
    Trustee,
    /// A dispute arbiter who approves tickets.
    Arbiter,
}

impl Role {
    /// The byte used in signed layouts.
    pub fn code(self) -> u8 {
        match self {
            Role::Customer => 1,
            Role::Agent => 2,
            Role::Master => 3,
            Role::Trustee => 4,
            Role::Arbiter => 5,
        }
    }

    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Agent => "agent",
            Role::Master => "master",
            Role::Trustee => "trustee",
            Role::Arbiter => "arbiter",
        }
    }

    /// Parses a lowercase role name.
    ///
    /// # Errors
    /// [`Error::Decode`] for an unknown role.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "customer" => Role::Customer,
            "agent" => Role::Agent,
            "master" => Role::Master,
            "trustee" => Role::Trustee,
            "arbiter" => Role::Arbiter,
            _ => {
                return Err(Error::Decode {
                    what: "role",
                    reason: "expected customer, agent, master, trustee or arbiter".into(),
                });
            }
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A signed identity card as received: not yet trusted.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct IdentityCard {
    /// The account name (unique on a relay).
    pub name: String,
    /// The account's role.
    pub role: Role,
    /// Ed25519 key that signs this card and everything the account says.
    pub signing_key: SigningPublicKey,
    /// X25519 key that sealed secrets are addressed to.
    pub agreement_key: AgreementPublicKey,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
    /// Signature by `signing_key` over [`IdentityCard::signed_bytes`].
    pub signature: Signature,
}

impl IdentityCard {
    /// Creates and signs a card for `keys`.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad name.
    pub fn issue(keys: &IdentityKeys, name: &str, role: Role, now: u64) -> Result<VerifiedCard> {
        check_name(name)?;
        let mut card = IdentityCard {
            name: name.to_owned(),
            role,
            signing_key: keys.signing_public(),
            agreement_key: keys.agreement_public(),
            created_at: now,
            signature: Signature::placeholder(),
        };
        card.signature = keys.sign(&card.signed_bytes());
        Ok(VerifiedCard(card))
    }

    /// The canonical bytes the card's signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::CARD);
        w.str(&self.name)
            .u8(self.role.code())
            .fixed(self.signing_key.as_bytes())
            .fixed(self.agreement_key.as_bytes())
            .u64(self.created_at);
        w.into_bytes()
    }

    /// Checks the name and the self-signature.
    ///
    /// # Errors
    /// [`Error::InvalidName`] or [`Error::BadSignature`].
    pub fn verify(self) -> Result<VerifiedCard> {
        check_name(&self.name)?;
        self.signing_key
            .verify(&self.signed_bytes(), &self.signature, "identity card")?;
        Ok(VerifiedCard(self))
    }

    /// Verifies and also requires a role.
    ///
    /// # Errors
    /// As [`Self::verify`], or [`Error::WrongRole`].
    pub fn verify_as(self, role: Role) -> Result<VerifiedCard> {
        let card = self.verify()?;
        if card.role != role {
            return Err(Error::WrongRole {
                expected: role.name(),
                found: card.role.name(),
            });
        }
        Ok(card)
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.bytes(&self.signed_bytes())
            .fixed(&self.signature.to_bytes());
    }
}

/// An identity card whose self-signature has been checked.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VerifiedCard(IdentityCard);

impl VerifiedCard {
    /// The fingerprint of the card's keys.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.0.signing_key, &self.0.agreement_key)
    }

    /// The card as it travels.
    pub fn card(&self) -> &IdentityCard {
        &self.0
    }

    /// Gives back the wire form.
    pub fn into_card(self) -> IdentityCard {
        self.0
    }

    /// Whether two cards hold the same keys.
    pub fn same_keys(&self, other: &IdentityCard) -> bool {
        self.0.signing_key == other.signing_key && self.0.agreement_key == other.agreement_key
    }
}

impl core::ops::Deref for VerifiedCard {
    type Target = IdentityCard;
    fn deref(&self) -> &IdentityCard {
        &self.0
    }
}

impl Serialize for VerifiedCard {
    fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::test_rng;

    #[test]
    fn issue_and_verify() {
        let keys = IdentityKeys::generate(&mut test_rng(10));
        let card = IdentityCard::issue(&keys, "alice", Role::Customer, 1000).unwrap();
        let again = card.card().clone().verify().unwrap();
        assert_eq!(again.name, "alice");
        assert!(card.card().clone().verify_as(Role::Agent).is_err());
    }

    #[test]
    fn tampered_card_is_refused() {
        let keys = IdentityKeys::generate(&mut test_rng(11));
        let card = IdentityCard::issue(&keys, "alice", Role::Customer, 1000)
            .unwrap()
            .into_card();
        let mut renamed = card.clone();
        renamed.name = "mallory".into();
        assert_eq!(renamed.verify(), Err(Error::BadSignature("identity card")));
        let mut promoted = card.clone();
        promoted.role = Role::Master;
        assert!(promoted.verify().is_err());
        let other = IdentityKeys::generate(&mut test_rng(12));
        let mut swapped = card;
        swapped.agreement_key = other.agreement_public();
        assert!(swapped.verify().is_err());
    }

    #[test]
    fn bad_names_are_refused() {
        let keys = IdentityKeys::generate(&mut test_rng(13));
        for bad in ["", "a b", "ü", &"x".repeat(65), "a/b"] {
            assert!(matches!(
                IdentityCard::issue(&keys, bad, Role::Agent, 0),
                Err(Error::InvalidName(_))
            ));
        }
    }
}
