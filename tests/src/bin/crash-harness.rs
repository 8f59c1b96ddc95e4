//! `crash-harness`: the long crash-durability run (docs/design.md §5, issue 6 item 3).
//!
//! ```text
//! cargo run --release -p sealdesk-tests --bin crash-harness -- --cycles 1000
//! cargo run --release -p sealdesk-tests --bin crash-harness -- --cycles 200 \
//!     --store postgres://sealdesk@127.0.0.1:5432/crash --nodes 3
//! ```
//!
//! With `--store`, the relays keep their state in that PostgreSQL database (it must be empty:
//! the run makes its org there); with `--nodes N`, N relay processes share it, each cycle
//! SIGKILLs one at random and the chats on it move to another node.
//!
//! Starts the real `sealdesk-relay` (built for the same profile, see
//! `sealdesk_tests::child::relay_binary`) over a temporary data directory, SIGKILLs it at random
//! moments while clients send, restarts it, and checks that every acknowledged message is
//! present exactly once and in order (see `sealdesk_tests::crash`). Prints the report; exits 0
//! when it is clean, 1 otherwise.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sealdesk_tests::{
    child::relay_binary,
    crash::{CrashConfig, run},
};

/// Kill the relay with SIGKILL at random moments while clients send; verify what survived.
#[derive(Debug, Parser)]
#[command(name = "crash-harness")]
struct Cli {
    /// Kill–restart cycles.
    #[arg(long, default_value_t = 1000)]
    cycles: u32,
    /// Seed for kill delays and keys.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Conversations (two writers each).
    #[arg(long, default_value_t = 3)]
    chats: usize,
    /// Longest delay from the start of a load phase to the kill, in milliseconds.
    #[arg(long, default_value_t = 250)]
    max_kill_ms: u64,
    /// Most messages per writer per cycle.
    #[arg(long, default_value_t = 60)]
    per_writer: u64,
    /// Percentage of cycles that also kill a relay during startup.
    #[arg(long, default_value_t = 10)]
    startup_kill_percent: u32,
    /// Full history verification every N cycles (incremental in between).
    #[arg(long, default_value_t = 50)]
    full_check_every: u32,
    /// Print one line per cycle.
    #[arg(long)]
    progress: bool,
    /// The relays' store: an empty PostgreSQL database (postgres://user@host:port/dbname)
    /// instead of sled.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// Relay processes on the one database (needs --store); each cycle kills one.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.nodes > 1 && cli.store.is_none() {
        eprintln!("crash-harness: --nodes above 1 needs --store postgres://… (the nodes share it)");
        return ExitCode::from(2);
    }
    let cfg = CrashConfig {
        cycles: cli.cycles,
        seed: cli.seed,
        chats: cli.chats.max(1),
        max_kill_delay: Duration::from_millis(cli.max_kill_ms),
        per_writer_per_cycle: cli.per_writer,
        startup_kill_percent: cli.startup_kill_percent,
        full_check_every: cli.full_check_every,
        progress: cli.progress,
        store: cli.store,
        nodes: cli.nodes.max(1),
        ..CrashConfig::default()
    };
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("crash-harness: temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bin = relay_binary();
    println!("crash-harness: relay binary {}", bin.display());
    let report = run(&cfg, dir.path(), bin);
    println!("{report}");
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
