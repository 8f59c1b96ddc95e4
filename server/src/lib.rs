//! The Sealdesk relay's transport and storage foundation.
//!
//! The relay forwards and stores ciphertext; it never sees plaintext or keys. This crate has
//! the parts that do I/O — sockets, TLS, HTTP, WebSocket, disk — and none of the protocol:
//! the protocol layer plugs in as a [`SessionHandler`](net::SessionHandler) and uses the
//! [`Store`](store::Store) and [`GroupCommit`](commit::GroupCommit) handles.
//!
//! ```text
//!                 ┌──────────────────────── net::run ───────────────────────────┐
//!   TCP ─accept─► │ limit ─► [TLS] ─► hyper http1 ─┬─ /healthz, /metrics          │
//!                 │ (503)                          └─ /v1/ws ─101─► Connection ───┼─► SessionHandler
//!                 └───────────────────────────────────────────────────┬──────────┘   (protocol layer)
//!                                        connection::Outbox ◄─────────┘                │
//!                                                                                      ▼
//!        metrics::Metrics ◄── counters from everywhere            store::Store ◄── get/put/apply
//!                                                                  ▲   (SledStore: one tree
//!                                     commit::GroupCommit ─flush───┘    per Collection)
//! ```
//!
//! - [`config`]: [`RelayConfig`](config::RelayConfig) and its [`Limits`](config::Limits);
//!   defaults < TOML file < `SEALDESK_RELAY_*` env < flags.
//! - [`net`]: the listener, HTTP endpoints, TLS, connection limit, graceful shutdown.
//! - [`connection`]: one WebSocket — bounded outbound queue, close codes, rate limit,
//!   idle timeout and keepalive.
//! - [`close`]: [`CloseReason`](close::CloseReason), why a WebSocket closes (a leaf module).
//! - [`clock`]: the [`Clock`](clock::Clock) the protocol layer reads the time from (the
//!   system's, or a test's).
//! - [`store`]: the storage seam; sled and in-memory engines.
//! - [`commit`]: group commit — many writers, one flush.
//! - [`metrics`]: counters and histograms in the Prometheus text format.
//! - [`migrate`]: `sealdesk-relay migrate`, a sled data directory copied into PostgreSQL.
//! - [`web`]: the browser pages (`--web-root`), loaded at start and served with a strict CSP.
//! - [`limits`]: abuse limits — token buckets by source address and by account, the source
//!   behind a trusted proxy.
//! - [`test_hooks`]: the test-only variables (commit and sign-in gates, dropped wake-ups,
//!   failed reads), read only in a build with the `test-hooks` feature.
//!
//! - [`relay`]: the protocol layer — authentication, directory, conversations, escrow
//!   plumbing, the audit log — over the pieces above. It is the only module that knows the
//!   protocol crate.
//!
//! **Architecture Invariant:** only `relay` depends on the protocol crate; no sled type outside
//! `store`; every queue and buffer has a bound set in [`Limits`](config::Limits) or a
//! documented constant; logs carry ids, sizes and reasons, never payload bytes.

pub mod clock;
pub mod close;
pub mod commit;
pub mod config;
pub mod connection;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod migrate;
pub mod net;
pub mod relay;
pub mod store;
pub mod test_hooks;
pub mod web;

pub use relay::{RunningRelay, serve, spawn};

pub use error::{Error, Result};
