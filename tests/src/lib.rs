//! The shared test support of Sealdesk: everything a test needs to run a real relay
//! (`sealdesk_server::spawn`) on `127.0.0.1:0` with a temporary data directory and talk to it,
//! at the wire level or through the client library. The end-to-end tests of the workspace live
//! in this crate's `tests/` directory and use it; so can any crate that does not itself sit
//! below the client (a dev-dependency on this crate from `sealdesk-client` or
//! `sealdesk-server` would compile a second copy of that crate).
//!
//! By concern:
//!
//! - [`wait`]: how a test waits — [`STEP`], [`QUIET`], [`eventually`], [`stays_for`],
//!   [`within_step`]. No sleeps to synchronise, no timing assertions.
//! - [`relay`]: a relay's life cycle in process ([`spawn_relay`], [`spawn_relay_in`],
//!   [`stop_relay`]) and its HTTP side ([`http_get`], [`metric`], [`relay::metric_of`]).
//! - [`identity`]: [`Identity`] (keys from a seeded ChaCha20 generator plus a signed card),
//!   [`now`], [`rng`], [`copy_keys`], [`identity::visitor`].
//! - [`raw`]: [`RawClient`], one WebSocket speaking frames directly.
//! - [`org`]: [`Org`] (master, 3 trustees 2-of-3, 3 arbiters 2-of-3, agents, customers, policy
//!   and certificates) and [`Chat`] (an opened conversation with its first epoch stored).
//! - [`world`]: the client-level [`World`]: a relay, accounts of the client library in
//!   temporary homes, the test org "acme", optionally behind the hostile [`proxy`]; trustees
//!   serving while a master unlocks ([`World::serving`]); [`world::OpenedChat`], a
//!   conversation whose clients close to leave the homes to `sealdesk` processes.
//! - [`proxy`]: the hostile-relay proxy that drops, replays and tampers frames;
//!   [`withhold`]: its hook that withholds items from one account, and the `Withheld` lines
//!   the account's history then shows; [`withhold::made_up_pages`], pages of skipped runs
//!   it makes up for one account; [`withhold::pages_for`], history pages the test edits.
//! - [`hostile`]: what the hostile relay does through the proxy in the `hostile_*` tests: hooks
//!   that edit one account's items ([`hostile::replace_for`]) or answers
//!   ([`hostile::answer_for`]), made-up identities ([`hostile::impostor`]), its own audit log
//!   ([`hostile::forge_log`]).
//! - [`timeline`]: what a client shows of a conversation (rejected messages, gaps, notices)
//!   and the items the relay really stores.
//! - [`release`]: a release step by step at the client level: a consenting customer, the
//!   master's request submitted, the trustees answering what is pending.
//! - [`audit_log`]: the audit entries the relay serves a client
//!   ([`audit_log::served_entries`]), and the trustees cosigning its head
//!   ([`audit_log::witnesses_cosign`]).
//! - [`burst`]: requests of many connections at the same instant, for the quota tests.
//! - [`child`]: the relay and CLI binaries as child processes (for tests that kill them).
//! - [`crash`]: the crash harness (writers and a reader against a relay killed at random).
//! - [`tls`]: a private CA ([`tls::Ca`]) and a relay serving TLS with its certificate
//!   ([`tls::TlsRelay`]).
//! - [`transcript`]: the genuine transcript export of a real release ([`transcript::genuine`]),
//!   which the verifier tests forge.
//! - [`consent`]: a customer's full consent ([`consent::full_consent`]) and a consent's
//!   revocation entry ([`consent::revocation`]), signed at the wire level.
//! - [`web_key`]: a web key the master certifies and publishes ([`web_key::certified`]), the
//!   open tokens it signs and the request that opens with one.
//! - [`recertify`]: an agent re-certified for a new key: carol in a conversation with alice,
//!   alice's new machine.
//! - [`wsraw`]: raw WebSocket bytes for the abuse tests.
//! - [`forwarded`]: WebSockets as a trusted reverse proxy opens them (`X-Forwarded-For`), with
//!   frames by hand, for the limit tests: register, fail an authentication, read a refusal
//!   before the challenge and the close's code and reason.
//! - [`pg`]: a throwaway PostgreSQL, and the store matrix (`SEALDESK_TEST_STORE=postgres` puts
//!   every in-process relay on it), and a fresh database per store-level test
//!   ([`pg::fresh_database`]); [`appends`]: the conversation-log appends those tests make
//!   ([`appends::message`]) and the refusals their writers ask about ([`appends::sent`]).

// Test support: a failed step must panic loudly with what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod appends;
pub mod audit_log;
pub mod burst;
pub mod child;
pub mod cluster;
pub mod consent;
pub mod crash;
pub mod forwarded;
pub mod hostile;
pub mod identity;
pub mod org;
pub mod pg;
pub mod proxy;
pub mod raw;
pub mod recertify;
pub mod relay;
pub mod release;
pub mod timeline;
pub mod tls;
pub mod transcript;
pub mod wait;
pub mod web_key;
pub mod withhold;
pub mod world;
pub mod wsraw;

pub use identity::{Identity, copy_keys, now, rng};
pub use org::{Chat, EpochSpec, Org};
pub use raw::RawClient;
pub use relay::{
    contains_bytes, files_under, http_get, metric, spawn_relay, spawn_relay_in, spawn_relay_with,
    stop_relay,
};
pub use wait::{QUIET, STEP, eventually, eventually_within, stays_for, within_step};
pub use world::World;
