//! [`Party`]: one account of a run, its secret keys and self-signed card. A leaf beside
//! [`crate::clock`]: the world that sets parties up and the load that drives them both import
//! it, and it imports neither.

use anyhow::Result;
use rand::rngs::ChaCha20Rng;
use sealdesk_protocol::{
    card::{IdentityCard, Role, VerifiedCard},
    keys::IdentityKeys,
};

use crate::clock::unix_now;

/// An account: secret keys and self-signed card.
pub struct Party {
    /// The secret keys.
    pub keys: IdentityKeys,
    /// The card.
    pub card: VerifiedCard,
}

impl Party {
    /// A new account from `rng`.
    ///
    /// # Errors
    /// An invalid name.
    pub fn new(rng: &mut ChaCha20Rng, name: &str, role: Role) -> Result<Self> {
        let keys = IdentityKeys::generate(rng);
        let card = IdentityCard::issue(&keys, name, role, unix_now().saturating_sub(60))?;
        Ok(Self { keys, card })
    }
}
