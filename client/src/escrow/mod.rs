//! Escrow release end to end, on the client side (docs/design.md §4): customer consent and its
//! revocation, dispute tickets and arbiter decisions, the trustee daemon's decision loop, the
//! master's unlock and transcript, the audit log checks, and erasure. The export and its offline
//! verification are in [`crate::transcript`].
//!
//! ```text
//!   customer: grant_consent ─(ShareConsent, via the relay)─▶ master: unlock ─SubmitRelease─▶ relay
//!   trustee:  serve ◀─Push::Release / PendingReleases── relay
//!             cosign head → decide() → AppendAudit(release entry) → prove inclusion
//!             → cosign a head holding it → SubmitShares
//!   master:   ReleaseStatus → open shares → reconstruct K (checked against the commitment)
//!             → decrypt exactly the released epochs → transcript (export: crate::transcript)
//!   customer: Item::Notice in the conversation, checked against the audit log
//! ```
//!
//! **Architecture Invariant:** a trustee persists its decision (the spent justification and the
//! logging stage) before it appends the release entry, and sends its shares only after it has
//! proven the entry is in a head consistent with the last it saw (`confirm_appended`) and has
//! cosigned a head holding it (`witness_cosign`); on restart it resumes from the persisted
//! stage, so a request is logged once and released once.
//!
//! By concern: [`consent`] (grant, revoke, erase), [`dispute`] (tickets and decisions),
//! [`trustee`] (the daemon's decision loop), [`master`] (unlock), [`transcript`] (the decrypted
//! transcript), [`audit`] (`sealdesk audit`), [`log`] (tree heads, inclusion, witnesses), [`witness`] (whether one entry is
//! witnessed: what notices and revocations rest on), [`release_policy`] (the policy a release
//! entry is judged under: its epochs', not the latest), [`erasure`] (what an erasure entry must
//! also be: not a replay, a plausible retention). The
//! records they keep are typed in [`crate::store`].

pub mod audit;
pub mod consent;
pub mod dispute;
pub mod erasure;
pub mod log;
pub mod master;
pub mod release_policy;
pub mod transcript;
pub mod trustee;
pub mod witness;

pub use crate::store::{ConsentRecord, Transcript, TranscriptMessage, TrusteeRecord, TrusteeStage};
pub use audit::{AuditLine, AuditReport};
pub use consent::{decode_consent, encode_consent};
pub use log::{LogSlot, is_log_fault};
pub use master::UnlockProgress;
pub use release_policy::ReleasePolicy;
pub use transcript::{not_released, transcript_policy, transcript_releases};
pub use trustee::TrusteeOutcome;
pub use witness::Witnessing;

use std::time::Duration;

/// Releases a trustee approves per org per hour before it refuses with "rate limited".
pub const RELEASES_PER_HOUR: usize = 30;
/// Audit entries fetched per `GetEntries` page.
pub const ENTRIES_PAGE: u32 = 100;
/// Default validity of a consent token or dispute ticket (7 days).
pub const DEFAULT_VALIDITY_SECS: u64 = 7 * 86_400;

/// How often `trustee serve` cosigns the log's head when nothing else makes it (well inside
/// [`WITNESS_FRESHNESS_SECS`](sealdesk_protocol::audit::WITNESS_FRESHNESS_SECS), so an online trustee's cosignature is always fresh).
pub const WITNESS_INTERVAL: Duration = Duration::from_secs(60);

/// **Test-only fault injection.** When this environment variable names a fail point of the
/// trustee's release path, the process exits at that point with [`FAILPOINT_EXIT_CODE`],
/// taking no further step — as if it had been killed there — so tests can restart it and check
/// that it resumes correctly. Read only on the trustee's release path; never set it in
/// production. Test hooks only (the `test-hooks` feature): without it, nothing reads the
/// variable and the points do nothing. The points, in order:
///
/// | value           | the trustee has …                                              |
/// |-----------------|----------------------------------------------------------------|
/// | `before-append` | persisted its decision (`Logging`), not yet appended the entry |
/// | `after-append`  | had its release entry appended, not yet persisted `Logged`     |
/// | `before-shares` | persisted `Logged`, not yet sent its shares                    |
/// | `after-shares`  | had its shares accepted, not yet persisted `Released`          |
#[cfg(feature = "test-hooks")]
pub const FAILPOINT_ENV: &str = "SEALDESK_FAILPOINT";

/// Exit status of a process stopped at a fail point (see [`FAILPOINT_ENV`]).
#[cfg(feature = "test-hooks")]
pub const FAILPOINT_EXIT_CODE: i32 = 86;

/// Every fail point [`FAILPOINT_ENV`] accepts, in the order the release path reaches them.
#[cfg(feature = "test-hooks")]
pub const FAILPOINTS: [&str; 4] = [
    "before-append",
    "after-append",
    "before-shares",
    "after-shares",
];

/// Test-only: exits the process here if [`FAILPOINT_ENV`] names `point` (see there).
#[cfg(feature = "test-hooks")]
fn fail_point(point: &str) {
    debug_assert!(FAILPOINTS.contains(&point), "unknown fail point {point}");
    if std::env::var_os(FAILPOINT_ENV).is_some_and(|v| v == point) {
        eprintln!("sealdesk: fail point `{point}` reached; exiting as if killed (test only)");
        std::process::exit(FAILPOINT_EXIT_CODE);
    }
}

/// Without test hooks a fail point is nothing: a release build cannot be made to stop there.
#[cfg(not(feature = "test-hooks"))]
fn fail_point(_point: &str) {}
