//! The Sealdesk client library: everything the `sealdesk` CLI, the trustee daemon, the tests and
//! the benchmark share on the client side (docs/design.md §6).
//!
//! ```text
//!   main.rs (CLI) ──▶ Client ──┬──▶ Session ──▶ Connection ──▶ WebSocket ──▶ relay
//!        chat ────────┘        │      (ids ⇄ responses, bounded pushes, timeouts)
//!                              └──▶ Account ──▶ Vault (everything on disk, sealed)
//!                                     (keys, pins, policies, epochs, counters, timeline)
//! ```
//!
//! - [`connection`] — an unauthenticated WebSocket carrying [`sealdesk_protocol::wire::Frame`]s.
//! - [`tls`] — which certificates a `wss://` relay may present ([`tls::TlsOptions`]).
//! - [`session`] — the authenticated session: the handshake consumes a `Connection`.
//! - [`account`] — local state over the [`vault`].
//! - [`client`] — the protocol state machine: org setup, opening conversations, verifying epochs,
//!   sending and receiving messages, catch-up, transfer, receipts.
//! - [`escrow`] — consent, disputes, the trustee daemon, unlock, transcripts, audit, erasure.
//! - [`notice`] — one notice per release request: trustees' release entries grouped and worded.
//! - [`transcript`] — the portable transcript export and its offline verifier, anchored outside
//!   the file.
//! - [`chat`] — the interactive line-based chat loop.
//! - [`demo`] — `sealdesk demo`: the story in one process with an in-process relay.
//! - [`redact`] — masking personal data in released transcripts.
//! - [`vault`] — the encrypted local-state store.
//!
//! **Architecture Invariant:** nothing secret and no plaintext is written outside the vault;
//! errors and logs carry names, ids and counters, never key bytes or message text.

pub mod account;
pub mod chat;
pub mod client;
pub mod connection;
pub mod demo;
pub mod error;
pub mod escrow;
pub mod notice;
pub mod redact;
pub mod session;
pub mod tls;
pub mod transcript;
pub mod vault;

pub use account::Account;
pub use client::Client;
pub use error::{ClientError, Result};
pub use tls::TlsOptions;

use rand::SeedableRng as _;

/// A cryptographic generator seeded from the operating system, for one operation. The protocol
/// crate draws its randomness from a `&mut impl CryptoRng`; seeding ChaCha20 from `getrandom`
/// keeps the OS failure a typed error rather than a panic inside a generator.
///
/// # Errors
/// [`ClientError::Random`] if the OS generator fails.
pub fn rng() -> Result<rand::rngs::ChaCha20Rng> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut_slice()).map_err(|_| ClientError::Random)?;
    Ok(rand::rngs::ChaCha20Rng::from_seed(*seed))
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
