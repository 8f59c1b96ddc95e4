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
//! - [`account`] — local state over the [`vault`]: keys, pins, policies, conversations,
//!   epochs, timelines.
//! - [`store`] — every record name in the vault, and typed access to the escrow side's records.
//! - [`client`] — the protocol state machine, [`Client`], by concern: `directory` (cards, trust,
//!   pins, policies), `org` (create, agents), `conversation` (open, send, rotate, transfer),
//!   `sync` (history, pushes, receipts), `ingest` (verifying each item), `gaps` (refetch,
//!   lost counters), `timeline` (offline views).
//! - [`escrow`] — `consent`, `dispute`, `trustee` (the daemon), `master` (unlock),
//!   `transcript` (the decrypted transcript), `audit`, `log` (tree heads, inclusion, witnesses).
//! - [`notice`] — one notice per release request: trustees' release entries grouped and worded.
//! - [`transcript`] — the portable transcript export (`format`), and its offline verifier
//!   (`verify`, a pure function), anchored outside the file.
//! - [`chat`] — the interactive line-based chat loop.
//! - [`demo`] — `sealdesk demo`: the story in one process with an in-process relay.
//! - [`redact`] — masking personal data in released transcripts.
//! - [`vault`] — the encrypted local-state store (`crypto`, `format`, `fs`).
//! - [`error`] — [`ClientError`], typed: tests match its variants.
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
pub(crate) mod reply;
pub mod session;
pub mod store;
pub mod tls;
pub mod transcript;
pub mod vault;

pub use account::Account;
pub use client::Client;
pub use error::{ClientError, IoFailure, Result};
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
