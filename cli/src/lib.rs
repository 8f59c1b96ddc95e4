//! The `sealdesk` command-line client on top of the client library (`sealdesk_client`): it
//! parses arguments, calls the library and prints. The protocol, the local state and every check
//! live in the library; the CLI holds no protocol logic.
//!
//! ```text
//!   main.rs ──▶ args (clap) ──▶ commands::run ──▶ commands::{account, org, conversation,
//!   (exit codes)                     │             escrow, dispute, transcript, verify, audit}
//!                                    ├──▶ chat (engine → text/json/tui) ──▶ sealdesk_client
//!                                    └──▶ demo (in-process relay)      ──▶ sealdesk_server
//! ```
//!
//! - `args` — the clap tree: every subcommand and flag ([`Cli`]).
//! - `commands` — what each command does, one module per concern ([`run`]).
//! - [`print`](mod@print) — a command's [`Output`] and one history line for a terminal.
//! - [`chat`] — the interactive chat: one engine; text, JSON-line and full-screen displays.
//! - [`demo`] — `sealdesk demo`: the story in one process with an in-process relay. The CLI is
//!   the only non-test crate that depends on the server, and only for this.
//! - [`kdf`] — which passphrase hashing a new vault gets (the test setting only in test builds).
//! - [`error`] — the chat's and the demo's errors, and `transcript verify`'s "could not check".
//! - [`status`] — an error's stable code and exit status, and the `--json` error document.
//!
//! **Test hooks.** The `test-hooks` feature forwards to `sealdesk-client/test-hooks` (the cheap
//! test KDF, the trustee's fail points). Only the CLI's own tests enable it, through a
//! dev-dependency; a normal or release build has neither.

mod args;
pub mod chat;
mod commands;
pub mod demo;
pub mod error;
mod json_hex;
pub mod kdf;
pub mod print;
pub mod status;

pub use args::Cli;
pub use commands::run;
pub use print::Output;
