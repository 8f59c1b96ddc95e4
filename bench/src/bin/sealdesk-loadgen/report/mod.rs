//! The report: the figures of a run, which `scenarios` fill in, and (through serde) the JSON.
//! The goals judged against them are in `goals`, the human-readable table in `table`.

use std::path::Path;

use hdrhistogram::Histogram;
use sealdesk_bench::procstat;
use serde::Serialize;

use crate::{child::Kind, load::Stages};

mod abuse;
mod cluster;
mod goals;
mod table;

pub use abuse::{AbuseFigures, FloodTally};
pub use cluster::{ClusterCounters, ClusterFigures, ClusterRun, PgbenchFigures};
pub use goals::{Goal, goals};
pub use table::table;

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `quick` or `full`.
    pub mode: &'static str,
    /// The machine.
    pub machine: Machine,
    /// Fan-out, closed loop.
    pub fanout: Option<FanoutFigures>,
    /// Durable acknowledgements.
    pub durable: Option<DurableFigures>,
    /// Open-loop latency.
    pub latency: Option<LatencyFigures>,
    /// Idle memory and connect storm.
    pub idle: Option<IdleFigures>,
    /// Client-side crypto goals.
    pub crypto: Option<CryptoFigures>,
    /// The abuse scenario (`--only abuse` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abuse: Option<AbuseFigures>,
    /// The cluster scenario (`--only cluster` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterFigures>,
    /// The database-side limit, `pgbench` (`--only pgbench` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgbench: Option<PgbenchFigures>,
    /// The goals, met or missed.
    pub goals: Vec<Goal>,
}

/// The machine the run was on.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// Load averages when the run started (other work on a shared machine shows here).
    pub loadavg_start: Option<[f64; 3]>,
    /// Load averages when it ended.
    pub loadavg_end: Option<[f64; 3]>,
    /// Kernel release.
    pub kernel: Option<String>,
    /// Where the data directories were.
    pub data_root: String,
}

impl Machine {
    /// The machine now.
    pub fn now(data_root: &Path) -> Self {
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            loadavg_start: procstat::loadavg(),
            loadavg_end: None,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_owned()),
            data_root: data_root.display().to_string(),
        }
    }
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
}

impl Percentiles {
    /// Percentiles of `h` (µs samples).
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5) as f64,
            p99_us: h.value_at_quantile(0.99) as f64,
            p999_us: h.value_at_quantile(0.999) as f64,
            max_us: h.max() as f64,
        }
    }
}

/// Where the delivery latency of a run goes (see `load::Stages`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StagePercentiles {
    /// Intended send time → the sender begins sealing.
    pub late: Percentiles,
    /// Sealing begins → the receiver has read the frame.
    pub transit: Percentiles,
    /// The frame read → verified and decrypted.
    pub open: Percentiles,
}

impl StagePercentiles {
    /// Percentiles of each stage.
    pub fn of(s: &Stages) -> Self {
        Self {
            late: Percentiles::of(&s.late),
            transit: Percentiles::of(&s.transit),
            open: Percentiles::of(&s.open),
        }
    }
}

/// One measured run of one system.
#[derive(Debug, Clone, Serialize)]
pub struct RunFigures {
    /// Which system.
    pub system: Kind,
    /// `closed` or `open` loop.
    pub pace: String,
    /// Measured seconds.
    pub seconds: f64,
    /// Messages delivered (verified and decrypted by the receiver) in the window.
    pub delivered: u64,
    /// Deliveries per second.
    pub deliveries_per_s: f64,
    /// Durable acks per second (Sealdesk).
    pub acks_per_s: f64,
    /// Server process CPU time per delivery, µs.
    pub server_cpu_us_per_delivery: f64,
    /// Load generator (client) CPU time per delivery, µs.
    pub client_cpu_us_per_delivery: f64,
    /// Server CPU time / wall time.
    pub server_cores: f64,
    /// Client CPU time / wall time.
    pub client_cores: f64,
    /// Errors during the run.
    pub errors: u64,
    /// The first error of the system so far.
    pub first_error: Option<String>,
    /// Delivery latency.
    pub latency: Percentiles,
    /// Ack latency (Sealdesk).
    pub ack_latency: Option<Percentiles>,
    /// The delivery latency, stage by stage.
    pub stages: StagePercentiles,
    /// The relay's group commit during the window (from its `/metrics`).
    pub group_commit: Option<GroupCommitFigures>,
}

/// Group commit as the relay's metrics report it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct GroupCommitFigures {
    /// Flushes per second.
    pub flushes_per_s: f64,
    /// Writers served per flush.
    pub mean_batch: f64,
    /// Mean flush duration, ms.
    pub mean_flush_ms: f64,
    /// 99th percentile of the flush duration, as a bucket bound.
    pub flush_p99_ms: Option<f64>,
    /// Flushes that took longer than 25 ms during the window (the relay's histogram bucket).
    pub slow_flushes: u64,
    /// Store operations (reads and writes, not flushes) that took longer than 5 ms.
    pub slow_store_ops: u64,
    /// Median of the relay's own ack latency, from reading the `Send` to queueing `Stored` and
    /// the pushes (`sealdesk_ack_latency_seconds`), as the upper bound of its histogram bucket.
    pub ack_p50_ms: Option<f64>,
    /// 99th percentile of the same, as a bucket bound.
    pub ack_p99_ms: Option<f64>,
    /// 99th percentile of the wait for durability (`sealdesk_commit_wait_seconds`), as a
    /// bucket bound.
    pub commit_wait_p99_ms: Option<f64>,
}

/// One system's runs of a scenario taken together.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Mean deliveries/s over its runs.
    pub deliveries_per_s: f64,
    /// Mean acks/s.
    pub acks_per_s: f64,
    /// Server CPU per delivery over all its runs, µs.
    pub server_cpu_us_per_delivery: f64,
    /// Client CPU per delivery over all its runs, µs.
    pub client_cpu_us_per_delivery: f64,
    /// Mean server cores used.
    pub server_cores: f64,
    /// Mean client cores used.
    pub client_cores: f64,
    /// Delivery latency over all its runs.
    pub latency: Percentiles,
}

impl Summary {
    /// The summary of `kind`'s runs in `runs`, with latency from `lat`.
    pub fn of(runs: &[RunFigures], kind: Kind, lat: &Histogram<u64>) -> Self {
        let mine: Vec<&RunFigures> = runs.iter().filter(|r| r.system == kind).collect();
        let n = mine.len().max(1) as f64;
        let delivered: f64 = mine
            .iter()
            .map(|r| r.delivered as f64)
            .sum::<f64>()
            .max(1.0);
        let weighted = |f: fn(&RunFigures) -> f64| {
            mine.iter().map(|r| f(r) * r.delivered as f64).sum::<f64>() / delivered
        };
        Self {
            deliveries_per_s: mine.iter().map(|r| r.deliveries_per_s).sum::<f64>() / n,
            acks_per_s: mine.iter().map(|r| r.acks_per_s).sum::<f64>() / n,
            server_cpu_us_per_delivery: weighted(|r| r.server_cpu_us_per_delivery),
            client_cpu_us_per_delivery: weighted(|r| r.client_cpu_us_per_delivery),
            server_cores: mine.iter().map(|r| r.server_cores).sum::<f64>() / n,
            client_cores: mine.iter().map(|r| r.client_cores).sum::<f64>() / n,
            latency: Percentiles::of(lat),
        }
    }
}

/// Fan-out figures.
#[derive(Debug, Serialize)]
pub struct FanoutFigures {
    /// Conversations.
    pub conversations: usize,
    /// Agents.
    pub agents: usize,
    /// Closed-loop window per conversation.
    pub window: u32,
    /// Plaintext body bytes per message.
    pub message_bytes: usize,
    /// Sealdesk's runs together.
    pub sealdesk: Summary,
    /// The baseline's runs together.
    pub baseline: Summary,
    /// Sealdesk / baseline deliveries per second.
    pub deliveries_ratio: f64,
    /// Sealdesk / baseline server CPU per delivery.
    pub server_cpu_ratio: f64,
    /// Every run, in the order run (ABBA).
    pub runs: Vec<RunFigures>,
}

/// Durable-ack figures.
#[derive(Debug, Serialize)]
pub struct DurableFigures {
    /// The relay's group-commit delay setting.
    pub commit_max_delay_us: u64,
    /// Send → `Stored` at maximum (closed-loop) load.
    pub ack_latency_closed_loop: Percentiles,
    /// Intended send time → `Stored` at half load (open loop).
    pub ack_latency_half_load: Option<Percentiles>,
    /// Durable acks per second at maximum load.
    pub durable_acks_per_s: f64,
    /// Appends per second with `sync_data` after each, same disk.
    pub file_fsync_per_s: f64,
    /// sled inserts per second with a flush after each, same disk.
    pub sled_flush_per_s: f64,
    /// `durable_acks_per_s / file_fsync_per_s`.
    pub ratio_vs_file: f64,
    /// `durable_acks_per_s / sled_flush_per_s`.
    pub ratio_vs_sled: f64,
    /// The relay's storage path without the clients' crypto competing for the cores.
    pub relay_alone: Option<RelayAloneFigures>,
}

/// Durable acks with every message sealed before the run and counted, not opened, on
/// arrival: the relay's group-commit ceiling on this machine.
#[derive(Debug, Clone, Serialize)]
pub struct RelayAloneFigures {
    /// Messages sealed ahead.
    pub presealed: usize,
    /// Some sender used up its presealed messages before the run ended, so `acks_per_s` is
    /// a lower bound.
    pub ran_out: bool,
    /// Durable acks per second.
    pub acks_per_s: f64,
    /// The relay's CPU per stored and pushed message.
    pub server_cpu_us_per_message: f64,
    /// The relay's cores busy.
    pub server_cores: f64,
    /// `acks_per_s / file_fsync_per_s`.
    pub ratio_vs_file: f64,
    /// `acks_per_s / sled_flush_per_s`.
    pub ratio_vs_sled: f64,
    /// The relay's group commit during the run.
    pub group_commit: Option<GroupCommitFigures>,
}

/// Open-loop latency figures.
#[derive(Debug, Serialize)]
pub struct LatencyFigures {
    /// Offered messages per second, same for both.
    pub rate_per_s: f64,
    /// Whether that is half of Sealdesk's fan-out maximum (the goals' load), not a rate set
    /// by `--latency-rate`.
    pub half_load: bool,
    /// Sealdesk, intended send → verified and decrypted at the receiver.
    pub sealdesk: Percentiles,
    /// The baseline, same measure.
    pub baseline: Percentiles,
    /// Sealdesk p99 / baseline p99.
    pub p99_ratio: f64,
    /// Every run, ABBA.
    pub runs: Vec<RunFigures>,
}

/// One connect storm and the idle memory after it.
#[derive(Debug, Serialize)]
pub struct StormRun {
    /// Which system.
    pub system: Kind,
    /// Connections that completed the handshake.
    pub connections: usize,
    /// Connections that failed.
    pub failed: usize,
    /// The first failure.
    pub first_error: Option<String>,
    /// Wall time from the first connect to the last completed handshake.
    pub seconds: f64,
    /// Completed handshakes per second.
    pub handshakes_per_s: f64,
    /// Server CPU per handshake, µs.
    pub server_cpu_us_per_handshake: f64,
    /// Server RSS before the storm, bytes.
    pub rss_before: u64,
    /// Server RSS with every connection open and idle, bytes.
    pub rss_after: u64,
    /// `(rss_after - rss_before) / connections`, bytes.
    pub rss_per_connection: f64,
}

/// Idle-memory and connect-storm figures.
#[derive(Debug, Serialize)]
pub struct IdleFigures {
    /// Connections per storm.
    pub connections: usize,
    /// Handshakes in flight at once.
    pub concurrency: usize,
    /// Sealdesk mean storm seconds.
    pub sealdesk_seconds: f64,
    /// Baseline mean storm seconds (WebSocket upgrade only: it has no authentication).
    pub baseline_seconds: f64,
    /// Sealdesk mean RSS per idle authenticated connection, bytes.
    pub sealdesk_rss_per_connection: f64,
    /// Baseline mean RSS per idle connection, bytes.
    pub baseline_rss_per_connection: f64,
    /// Every storm, ABBA, each on a fresh server process.
    pub runs: Vec<StormRun>,
}

impl IdleFigures {
    /// Summarises the storms.
    pub fn new(connections: usize, concurrency: usize, runs: Vec<StormRun>) -> Self {
        let mean = |k: Kind, f: fn(&StormRun) -> f64| {
            let v: Vec<f64> = runs.iter().filter(|r| r.system == k).map(f).collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        Self {
            connections,
            concurrency,
            sealdesk_seconds: mean(Kind::Sealdesk, |r| r.seconds),
            baseline_seconds: mean(Kind::Baseline, |r| r.seconds),
            sealdesk_rss_per_connection: mean(Kind::Sealdesk, |r| r.rss_per_connection),
            baseline_rss_per_connection: mean(Kind::Baseline, |r| r.rss_per_connection),
            runs,
        }
    }
}

/// Client-side crypto figures (one thread).
#[derive(Debug, Serialize)]
pub struct CryptoFigures {
    /// `EpochRecord::create` with 2-of-3 escrow, mean ms.
    pub epoch_create_ms: f64,
    /// Verify + decrypt of 10,000 messages, best of 3, seconds.
    pub transcript_10k_s: f64,
    /// Body size of the transcript's messages.
    pub transcript_body_bytes: usize,
}
