//! The epoch secret `K` and the key schedule hanging off it.
//!
//! ```text
//!   K (32 random bytes, one per epoch)
//!   │
//!   └─ PRK = HKDF-Extract(salt = "sealdesk/v1/epoch-salt" ‖ conversation ‖ epoch, IKM = K)
//!        ├─ s_M       = Expand(PRK, "…/escrow/master-share")              master's escrow share
//!        ├─ c_i       = Expand(PRK, "…/escrow/coefficient" ‖ i)           Shamir coefficients
//!        ├─ ikm_r     = Expand(PRK, "…/escrow/ikm" ‖ recipient)           HPKE DeriveKeyPair input
//!        └─ chain_s   = Expand(PRK, "…/msg/chain" ‖ sender)               per-sender chain
//!             └─ keys = Expand(chain_s, "…/msg/keys" ‖ counter)           key ‖ nonce
//! ```
//!
//! Every derivation is bound to the conversation and epoch through the salt, and every `info`
//! starts with its own label, so no two derived values can coincide.

use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{codec::Writer, ids::ConversationId, labels};

/// An epoch's 32-byte secret `K`. Never printed, never cloned implicitly, zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct EpochSecret([u8; 32]);

impl EpochSecret {
    /// A fresh random secret.
    pub fn random(rng: &mut impl CryptoRng) -> Self {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        Self(k)
    }

    /// Wraps bytes (opened from a seal, or reconstructed from escrow).
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(*bytes)
    }

    /// Exports the secret, zeroized when dropped. Store it only encrypted.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0)
    }

    /// An explicit copy, for the places (sealing to several members) that need one.
    pub fn duplicate(&self) -> Self {
        Self(self.0)
    }

    /// The commitment to `K` recorded in the epoch record: SHA-256 over the label, the
    /// conversation, the epoch and `K`.
    pub fn commitment(&self, conversation: &ConversationId, epoch: u32) -> [u8; 32] {
        let mut w = Writer::with_label(labels::EPOCH_COMMITMENT);
        w.fixed(conversation.as_bytes()).u32(epoch).fixed(&self.0);
        w.sha256()
    }

    /// Whether this secret matches a recorded commitment (constant time).
    pub fn matches(
        &self,
        conversation: &ConversationId,
        epoch: u32,
        commitment: &[u8; 32],
    ) -> bool {
        self.commitment(conversation, epoch)
            .ct_eq(commitment)
            .into()
    }

    pub(crate) fn schedule(&self, conversation: &ConversationId, epoch: u32) -> KeySchedule {
        let mut salt = Writer::with_label(labels::EPOCH_SALT);
        salt.fixed(conversation.as_bytes()).u32(epoch);
        KeySchedule(Hkdf::<Sha256>::new(Some(salt.as_bytes()), &self.0))
    }
}

impl core::fmt::Debug for EpochSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("EpochSecret(<redacted>)")
    }
}

/// HKDF state for one (conversation, epoch); expands labelled values.
pub(crate) struct KeySchedule(Hkdf<Sha256>);

impl KeySchedule {
    /// Expands `N` bytes for `info` (which must start with a label).
    pub(crate) fn expand<const N: usize>(&self, info: &[u8]) -> Zeroizing<[u8; N]> {
        let mut out = Zeroizing::new([0u8; N]);
        // N is at most 44 everywhere in the protocol, far under HKDF's 255 * 32 limit.
        let _ = self.0.expand(info, out.as_mut_slice());
        out
    }

    pub(crate) fn labelled<const N: usize>(
        &self,
        label: &str,
        fill: impl FnOnce(&mut Writer),
    ) -> Zeroizing<[u8; N]> {
        let mut w = Writer::with_label(label);
        fill(&mut w);
        self.expand(w.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng;

    #[test]
    fn debug_is_redacted() {
        let k = EpochSecret::from_bytes(&[0xab; 32]);
        let d = format!("{k:?}");
        assert!(!d.contains("ab") && !d.contains("171"), "{d}");
    }

    #[test]
    fn commitment_binds_conversation_and_epoch() {
        let mut rng = test_rng(40);
        let k = EpochSecret::random(&mut rng);
        let c1 = ConversationId::random(&mut rng);
        let c2 = ConversationId::random(&mut rng);
        let com = k.commitment(&c1, 3);
        assert!(k.matches(&c1, 3, &com));
        assert!(!k.matches(&c1, 4, &com));
        assert!(!k.matches(&c2, 3, &com));
        assert!(!EpochSecret::random(&mut rng).matches(&c1, 3, &com));
    }
}
