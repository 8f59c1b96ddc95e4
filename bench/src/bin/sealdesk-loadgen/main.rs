//! `sealdesk-loadgen`: measures the Sealdesk relay against a plaintext baseline relay, in one
//! run on one machine, and prints a table (or JSON) of absolute figures and ratios.
//!
//! ```text
//!   sealdesk-loadgen [--quick] [--json] [--only SCENARIO,...]      run the scenarios
//!   sealdesk-loadgen --only cluster,pgbench [--nodes N]            relay nodes on PostgreSQL
//!   sealdesk-loadgen serve --kind sealdesk|baseline [--data DIR]   (internal) one server process
//! ```
//!
//! Process layout: this process runs the clients (real WebSocket clients doing the real
//! client-side crypto of the protocol crate); each server — the Sealdesk relay, the baseline —
//! runs in a child process of this same binary (`serve`), so that its CPU time and resident
//! memory can be read from `/proc/<pid>` without the clients' share in them.
//!
//! Every socket targets 127.0.0.0/8, and every load is bounded in count and time.
//!
//! Modules, leaves first; each imports only modules before it: `clock` (monotonic and wall
//! clocks), `party` (an account), `child` (server processes), `client` (WebSocket plumbing and
//! `/metrics`), `load` (senders, receivers, counters), `report` (figures, goals, the table),
//! `world` (the org, its people and conversations, set up on each system), `scenarios` (what is
//! run, in which order), `abuse` (the flood from one source beside a chat, `--only abuse`),
//! `pg` (a throwaway PostgreSQL and `pgbench`), `cluster` (relay nodes on PostgreSQL against
//! one sled relay, `--only cluster`, and the database's own limit, `--only pgbench`).

mod abuse;
mod child;
mod client;
mod clock;
mod cluster;
mod load;
mod party;
mod pg;
mod report;
mod scenarios;
mod stages;
mod world;

/// The relay binary's allocator, so the Sealdesk server child runs as `sealdesk-relay` does. The
/// baseline child and the clients use it too: the comparison stays like for like.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use scenarios::Scenario;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "sealdesk-loadgen",
    about = "Load generator: the Sealdesk relay against a plaintext tokio-tungstenite baseline"
)]
struct Cli {
    /// Scale every scenario down to finish in under a minute.
    #[arg(long)]
    quick: bool,
    /// Print machine-readable JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Run only these scenarios (comma-separated). `latency` and `durable` need `fanout`'s
    /// maximum rate and run it when asked for. `abuse` runs only when named here.
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Scenario>,
    /// Conversations in the fan-out and latency scenarios (default 64 quick, 256 full).
    #[arg(long)]
    conversations: Option<usize>,
    /// Agents serving those conversations (default 8 quick, 16 full).
    #[arg(long)]
    agents: Option<usize>,
    /// Measured seconds per run (default 1.5 quick, 8 full).
    #[arg(long)]
    seconds: Option<f64>,
    /// Connections in the idle-memory and connect-storm scenarios (default 2,000 quick,
    /// 10,000 full).
    #[arg(long)]
    connections: Option<usize>,
    /// Directory under which the relay's data and the fsync writers' files go (default: the
    /// system temporary directory). Pick a directory on the disk you want measured.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Messages/s of the latency scenario instead of half of Sealdesk's measured maximum, so
    /// that two builds are compared at the same load. The half-load goals get no verdict then.
    #[arg(long, value_parser = positive_rate)]
    latency_rate: Option<f64>,
    /// Relay nodes in the cluster scenario (`--only cluster`), all on one PostgreSQL.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
    nodes: u16,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Internal: run one server in this process until standard input closes.
    #[command(hide = true)]
    Serve {
        /// Which server.
        #[arg(long, value_enum)]
        kind: child::Kind,
        /// Data directory (Sealdesk only).
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Serve { kind, data }) = cli.command {
        return child::serve(kind, data);
    }
    let (soft, hard) = sealdesk_bench::procstat::raise_nofile_limit().context(
        "could not raise the open-file limit (RLIMIT_NOFILE); run `ulimit -n 20000` first",
    )?;
    let mut settings = scenarios::Settings::new(
        cli.quick,
        cli.conversations,
        cli.agents,
        cli.seconds,
        cli.connections,
        cli.data_dir,
        cli.only,
    );
    settings.latency_rate = cli.latency_rate;
    settings.nodes = usize::from(cli.nodes);
    // Each side of a connection holds one descriptor, in a different process; a little
    // headroom covers the relay's files and listeners.
    let needed = settings.connections as u64 + 512;
    if soft < needed {
        anyhow::bail!(
            "the open-file limit is {soft} (hard {hard}); {needed} are needed for {} \
             connections: raise it (`ulimit -n {needed}`) or pass --connections",
            settings.connections
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let report = runtime.block_on(async {
        let mut report = scenarios::run_all(&settings).await?;
        if settings.wants_abuse() {
            report.abuse = Some(abuse::abuse_scenario(&settings).await?);
            report.machine.loadavg_end = sealdesk_bench::procstat::loadavg();
        }
        if settings.wants_cluster() || settings.wants_pgbench() {
            // On ctrl-c the scenario is dropped: its relay children, its PostgreSQL and their
            // temporary directories go with it (the children stop by themselves too when this
            // process ends: their standard input closes).
            let (c, p) = tokio::select! {
                r = cluster::cluster_and_pgbench(&settings) => r?,
                _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; cleaned up"),
            };
            report.cluster = c;
            report.pgbench = p;
            report.machine.loadavg_end = sealdesk_bench::procstat::loadavg();
        }
        anyhow::Ok(report)
    })?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report::table(&report));
    }
    Ok(())
}

/// `--latency-rate`: a finite number of messages per second, at least 1.
fn positive_rate(arg: &str) -> Result<f64, String> {
    match arg.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 1.0 => Ok(r),
        Ok(_) => Err("the rate must be a finite number of messages per second, at least 1".into()),
        Err(e) => Err(format!("not a number: {e}")),
    }
}
