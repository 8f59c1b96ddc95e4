//! Sealdesk's performance measurement: the pieces the `sealdesk-loadgen` binary and the
//! criterion benches share.
//!
//! - [`baseline`]: what a relay operator would run instead — a minimal plaintext
//!   tokio-tungstenite broadcast relay with no storage, no authentication and default settings.
//! - [`procstat`]: CPU time and resident memory of a process from `/proc`, the fd limit.
//! - [`durable`]: the fsync-per-message writers that group commit is compared against.
//!
//! The load generator itself (scenarios, clients, the table) lives in the binary; see
//! `BENCHMARKS.md` at the workspace root for what it measures and how.
//!
//! **Architecture Invariant:** every socket here binds or connects to 127.0.0.0/8 only, and
//! every load is bounded in count and time.

pub mod baseline;
pub mod durable;
pub mod procstat;
