//! # Sealdesk protocol core
//!
//! Everything cryptographic and everything on the wire, with no I/O: this crate does not open
//! sockets, read files, look at the clock or draw randomness by itself. Randomness comes in as
//! `&mut impl CryptoRng`, time as a `u64` of Unix seconds. That keeps it testable with fixed
//! vectors and lets the browser widget compile it to WebAssembly unchanged.
//!
//! ```text
//!            keys ── card ── policy (master-signed; separation of duties)
//!              │                │
//!   seal (HPKE, RFC 9180) ──────┤
//!              │                │
//!   secret K ──┼── epoch record ── escrow (s_M ⊕ Shamir(s_E), deterministic seals)
//!              │        │
//!           message   release (consent / dispute → trustee decide() → released share)
//!                                        │
//!                                  audit (RFC 9162 Merkle log, signed tree heads)
//!   wire: versioned CBOR frames carrying all of the above
//! ```
//!
//! PROTOCOL.md gives every byte layout; `protocol/vectors/` holds known-answer vectors that the
//! tests recompute byte for byte.

pub mod attachment;
pub mod audit;
pub mod block;
pub mod card;
pub mod codec;
pub mod disclosure;
pub mod epoch;
pub mod erasure;
mod error;
pub mod escrow;
pub mod export;
pub mod handoff_chain;
pub mod ids;
pub mod keys;
pub mod labels;
pub mod merkle;
pub mod message;
pub mod open_token;
pub mod policy;
pub mod recovery;
pub mod recovery_record;
pub mod release;
pub mod seal;
pub mod secret;
pub mod shamir;
pub mod signal;
pub mod signed;
pub mod status;
pub mod wire;

pub use error::{Error, Result};

/// A deterministic generator for tests and vectors (ChaCha20 seeded from `seed`).
#[cfg(test)]
pub(crate) fn test_rng(seed: u64) -> rand::rngs::ChaCha20Rng {
    use rand::SeedableRng as _;
    rand::rngs::ChaCha20Rng::seed_from_u64(seed)
}
