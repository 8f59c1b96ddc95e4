//! Test accounts at the wire level: keys from a seeded generator and a signed card, plus the
//! clock and generator every fixture shares.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::{SeedableRng as _, rngs::ChaCha20Rng};
use sealdesk_protocol::{
    card::{IdentityCard, Role, VerifiedCard},
    keys::{IdentityKeys, SigningPublicKey},
};

/// Seconds since the Unix epoch (the relay checks certificate and ticket times on its clock).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A copy of an account's keys, for a raw session of the same identity (or a forger that
/// signs as it).
pub fn copy_keys(keys: &IdentityKeys) -> IdentityKeys {
    IdentityKeys::from_secret_bytes(&keys.to_secret_bytes())
}

/// A deterministic generator for keys, ids and epoch secrets.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// A customer named `visitor{seed}`, keys from `seed`: a fresh card for the limit tests, which
/// register (or fail to authenticate) many of them.
pub fn visitor(seed: u64) -> Identity {
    Identity::new(seed, &format!("visitor{seed}"), Role::Customer)
}

/// An account: its keys and its self-signed card.
pub struct Identity {
    /// The secret keys.
    pub keys: IdentityKeys,
    /// The verified card.
    pub card: VerifiedCard,
}

impl Identity {
    /// Keys from `ChaCha20(seed)`, card named `name` with `role`.
    pub fn new(seed: u64, name: &str, role: Role) -> Self {
        let keys = IdentityKeys::generate(&mut rng(seed));
        let card = IdentityCard::issue(&keys, name, role, 1_700_000_000).expect("valid card");
        Self { keys, card }
    }

    /// The account's signing key.
    pub fn key(&self) -> SigningPublicKey {
        self.keys.signing_public()
    }

    /// The card as it travels.
    pub fn card(&self) -> IdentityCard {
        self.card.card().clone()
    }

    /// The account name.
    pub fn name(&self) -> &str {
        &self.card.name
    }
}
