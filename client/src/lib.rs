//! The Sealdesk client library: everything the `sealdesk` CLI (the `sealdesk-cli` crate), the
//! trustee daemon, the tests and the benchmark share on the client side (docs/design.md §6).
//! Among Sealdesk's crates it depends on the protocol crate only — not on the server, and not
//! on anything of a command line (CI checks it with `cargo tree`).
//!
//! ```text
//!   sealdesk-cli ──▶ Client ──┬──▶ Session ──▶ Connection ──▶ WebSocket ──▶ relay
//!                             │      (ids ⇄ responses, bounded pushes, timeouts)
//!                             └──▶ Account ──▶ Vault (everything on disk, sealed)
//!                                    (keys, pins, policies, epochs, counters, timeline)
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
//! - [`quota`] — the relay's warnings ahead of a stored-bytes quota ([`quota::SendReport`]).
//! - [`redact`] — masking personal data in released transcripts.
//! - [`vault`] — the encrypted local-state store (`crypto`, `format`, `fs`).
//! - [`error`] — [`ClientError`], typed: tests match its variants; [`io_failure`] — an I/O
//!   error as comparable data, the leaf every error type holds.
//!
//! **Test hooks.** The `test-hooks` feature adds the test-only switches: the cheap Argon2 setting
//! (`vault::KdfParams::TESTING`, `vault::INSECURE_FAST_KDF_ENV`) and the trustee's fail points
//! (`escrow::FAILPOINT_ENV`). Without it they do not exist, so no normal build can reach them.
//!
//! **Architecture Invariant:** nothing secret and no plaintext is written outside the vault;
//! errors and logs carry names, ids and counters, never key bytes or message text.

pub mod account;
pub mod attachment;
pub mod block;
pub mod client;
pub mod connection;
pub mod error;
pub mod escrow;
pub mod file_cache;
pub mod handoff;
pub mod io_failure;
pub mod notice;
pub mod open_token;
pub mod quota;
pub mod recovery;
pub mod recovery_code;
pub mod redact;
pub(crate) mod reply;
pub mod session;
pub mod store;
pub mod tls;
pub mod transcript;
pub mod vault;

pub use account::Account;
pub use client::Client;
pub use error::{ClientError, Result};
pub use io_failure::IoFailure;
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

/// Formats Unix seconds as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn fmt_time(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), for dates after 1970.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_as_utc() {
        assert_eq!(fmt_time(0), "1970-01-01 00:00:00");
        assert_eq!(fmt_time(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(fmt_time(951_782_400), "2000-02-29 00:00:00");
    }
}
