//! The scenarios, their order (ABBA: Sealdesk, baseline, baseline, Sealdesk) and the figures
//! they produce.

use std::{
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};
use clap::ValueEnum;
use hdrhistogram::Histogram;
use rand::{SeedableRng as _, rngs::ChaCha20Rng};
use sealdesk_bench::{durable, procstat};
use sealdesk_protocol::{
    card::Role,
    epoch::{EpochRecord, NewEpoch},
    ids::ConversationId,
    message::{ContentKind, EpochKeys, ReplayWindows},
};
use tokio::sync::Semaphore;

use crate::{
    child::{Kind, ServerChild, effective_relay_config},
    client,
    clock::unix_now,
    load::{BODY, Measured, Pace, histogram},
    party::Party,
    pg::Postgres,
    report::{
        CryptoFigures, DurableFigures, FanoutFigures, GroupCommitFigures, IdleFigures,
        LatencyFigures, Machine, Percentiles, RelayAloneFigures, Report, RunFigures,
        StagePercentiles, StormRun, Summary, goals,
    },
    world::{Fleet, Org, setup_baseline, setup_sealdesk},
};

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Deliveries/s and server CPU per delivery, closed loop.
    Fanout,
    /// Ack latency and throughput against fsync-per-message writers.
    Durable,
    /// Open-loop latency at half the maximum rate.
    Latency,
    /// RSS per idle authenticated connection and the connect storm.
    Idle,
    /// Client-side crypto goals: epoch creation, a 10,000-message transcript.
    Crypto,
    /// A flood from one source while well-behaved clients chat (only when named: a run that
    /// names no scenario leaves it out).
    Abuse,
    /// Relay nodes on one PostgreSQL against one sled relay and the baseline (only when named;
    /// needs the PostgreSQL binaries).
    Cluster,
    /// The database-side limit: `pgbench` appending rows of the relay's shape (only when
    /// named; needs the PostgreSQL binaries).
    Pgbench,
}

/// ABBA: each system runs first once and last once, so drift in the machine's load (other
/// builds on a shared machine) falls on both alike.
const ABBA: [Kind; 4] = [
    Kind::Sealdesk,
    Kind::Baseline,
    Kind::Baseline,
    Kind::Sealdesk,
];

/// The relay-alone durable run seals ahead this many times the end-to-end maximum rate for
/// its whole length; if that is not enough the report says its figure is a lower bound.
const PRESEAL_HEADROOM: f64 = 3.0;

/// What to run and how big.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--quick`.
    pub quick: bool,
    /// Conversations in fan-out and latency runs.
    pub conversations: usize,
    /// Agents serving them.
    pub agents: usize,
    /// Closed-loop window per conversation (messages sent and not yet delivered).
    pub window: u32,
    /// Unmeasured lead-in of each run.
    pub warmup: Duration,
    /// Measured part of each run.
    pub measure: Duration,
    /// Senders keep going this long after the measured part, so that the last measured
    /// deliveries are not the tail of a winding-down load.
    pub tail: Duration,
    /// Connections in the idle-memory / connect-storm scenario.
    pub connections: usize,
    /// Handshakes in flight at once during the storm.
    pub storm_concurrency: usize,
    /// Each fsync-per-message writer runs this long.
    pub fsync_time: Duration,
    /// Where data directories go.
    pub data_root: PathBuf,
    /// Scenarios asked for (empty: all).
    pub only: Vec<Scenario>,
    /// The latency scenario's rate, if set (`--latency-rate`); else half of Sealdesk's
    /// fan-out maximum.
    pub latency_rate: Option<f64>,
    /// Relay nodes of the cluster scenario (`--nodes`, default 3).
    pub nodes: usize,
}

impl Settings {
    /// Settings for a quick or a full run, with overrides.
    pub fn new(
        quick: bool,
        conversations: Option<usize>,
        agents: Option<usize>,
        seconds: Option<f64>,
        connections: Option<usize>,
        data_root: Option<PathBuf>,
        only: Vec<Scenario>,
    ) -> Self {
        let measure = seconds
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|s| Duration::from_secs_f64(s.min(600.0)))
            .unwrap_or(if quick {
                Duration::from_millis(1500)
            } else {
                Duration::from_secs(8)
            });
        Self {
            quick,
            conversations: conversations
                .unwrap_or(if quick { 64 } else { 256 })
                .clamp(1, 5_000),
            agents: agents.unwrap_or(if quick { 8 } else { 16 }).clamp(1, 1_000),
            window: 8,
            warmup: if quick {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(2)
            },
            measure,
            tail: Duration::from_millis(300),
            connections: connections
                .unwrap_or(if quick { 2_000 } else { 10_000 })
                .clamp(1, 30_000),
            storm_concurrency: 256,
            fsync_time: if quick {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(3)
            },
            data_root: data_root.unwrap_or_else(std::env::temp_dir),
            only,
            latency_rate: None,
            nodes: 3,
        }
    }

    fn wants(&self, s: Scenario) -> bool {
        let named_only = matches!(s, Scenario::Abuse | Scenario::Cluster | Scenario::Pgbench);
        (self.only.is_empty() && !named_only) || self.only.contains(&s)
    }

    /// Whether the abuse scenario was asked for (`--only abuse`).
    pub fn wants_abuse(&self) -> bool {
        self.wants(Scenario::Abuse)
    }

    /// Whether the cluster scenario was asked for (`--only cluster`).
    pub fn wants_cluster(&self) -> bool {
        self.wants(Scenario::Cluster)
    }

    /// Whether `pgbench` was asked for (`--only pgbench`).
    pub fn wants_pgbench(&self) -> bool {
        self.wants(Scenario::Pgbench)
    }
}

/// Runs the scenarios asked for and gathers the report.
///
/// # Errors
/// A server that does not start, a setup that fails, or a run that loses messages.
pub async fn run_all(s: &Settings) -> Result<Report> {
    let mut report = Report {
        mode: if s.quick { "quick" } else { "full" },
        machine: Machine::now(&s.data_root),
        fanout: None,
        durable: None,
        latency: None,
        idle: None,
        crypto: None,
        abuse: None,
        cluster: None,
        pgbench: None,
        goals: Vec::new(),
    };
    eprintln!(
        "sealdesk-loadgen: {} run; servers are child processes of this binary; data under {}",
        report.mode,
        s.data_root.display()
    );
    if s.wants(Scenario::Fanout) || s.wants(Scenario::Latency) || s.wants(Scenario::Durable) {
        load_scenarios(s, &mut report).await?;
    }
    if s.wants(Scenario::Idle) {
        report.idle = Some(idle_scenario(s).await?);
    }
    if s.wants(Scenario::Crypto) {
        eprintln!("crypto: epoch creation and a 10,000-message transcript on one core");
        report.crypto = Some(
            tokio::task::spawn_blocking(crypto_scenario)
                .await
                .context("crypto scenario")??,
        );
    }
    report.machine.loadavg_end = procstat::loadavg();
    report.goals = goals(&report);
    Ok(report)
}

async fn spawn_child(kind: Kind, root: &std::path::Path) -> Result<ServerChild> {
    let root = root.to_owned();
    tokio::task::spawn_blocking(move || ServerChild::spawn(kind, &root)).await?
}

async fn stop_child(child: ServerChild) {
    let _ = tokio::task::spawn_blocking(move || child.stop()).await;
}

async fn load_scenarios(s: &Settings, report: &mut Report) -> Result<()> {
    eprintln!(
        "setup: {} conversations, {} agents, 1 KiB messages, window {}",
        s.conversations, s.agents, s.window
    );
    let org = {
        let (a, c) = (s.agents, s.conversations);
        Arc::new(tokio::task::spawn_blocking(move || Org::new(7, a, c)).await??)
    };
    let sd_child = spawn_child(Kind::Sealdesk, &s.data_root).await?;
    let bl_child = spawn_child(Kind::Baseline, &s.data_root).await?;
    let mut sd = setup_sealdesk(&org, sd_child.addr(), s.window)
        .await
        .context("setting up the Sealdesk clients")?;
    let mut bl = setup_baseline(&org, bl_child.addr(), s.window)
        .await
        .context("setting up the baseline clients")?;

    // Fan-out: closed loop, ABBA.
    let mut runs = Vec::new();
    let (mut sd_lat, mut bl_lat, mut sd_ack) = (histogram(), histogram(), histogram());
    for kind in ABBA {
        let (fleet, child) = pick(kind, &mut sd, &mut bl, &sd_child, &bl_child);
        eprintln!(
            "fan-out: {} ({:.1} s)",
            kind.name(),
            s.measure.as_secs_f64()
        );
        let (
            fig,
            Measured {
                delivery: lat, ack, ..
            },
        ) = measure(fleet, child, Pace::Closed, s).await?;
        merge(
            if kind == Kind::Sealdesk {
                &mut sd_lat
            } else {
                &mut bl_lat
            },
            &lat,
        );
        if kind == Kind::Sealdesk {
            merge(&mut sd_ack, &ack);
        }
        runs.push(fig);
    }
    let sealdesk = Summary::of(&runs, Kind::Sealdesk, &sd_lat);
    let baseline = Summary::of(&runs, Kind::Baseline, &bl_lat);
    let max_rate = sealdesk.deliveries_per_s;
    report.fanout = Some(FanoutFigures {
        conversations: s.conversations,
        agents: s.agents,
        window: s.window,
        message_bytes: BODY,
        deliveries_ratio: sealdesk.deliveries_per_s / baseline.deliveries_per_s.max(1e-9),
        server_cpu_ratio: sealdesk.server_cpu_us_per_delivery
            / baseline.server_cpu_us_per_delivery.max(1e-9),
        sealdesk,
        baseline,
        runs,
    });

    // Durable: the fsync-per-message writers, on the relay data directory's disk, while both
    // servers are idle.
    let mut durable_figs = None;
    if s.wants(Scenario::Durable) || s.wants(Scenario::Fanout) {
        eprintln!(
            "durable: fsync-per-message writers ({:.0} s each)",
            s.fsync_time.as_secs_f64()
        );
        let (root, t) = (s.data_root.clone(), s.fsync_time);
        let (file, sled) = tokio::task::spawn_blocking(move || -> Result<_> {
            let dir = tempfile::Builder::new()
                .prefix("sealdesk-bench-fsync-")
                .tempdir_in(&root)?;
            // About the size of a stored 1 KiB message (envelope, header, signature).
            let payload = vec![0x61u8; BODY + 300];
            let file = durable::file_sync_per_write(dir.path(), &payload, t, 10_000_000)?;
            let sled = durable::sled_flush_per_insert(dir.path(), &payload, t, 10_000_000)?;
            Ok((file, sled))
        })
        .await??;
        let acks = report
            .fanout
            .as_ref()
            .map(|f| f.sealdesk.acks_per_s)
            .unwrap_or(0.0);
        durable_figs = Some(DurableFigures {
            commit_max_delay_us: effective_relay_config(PathBuf::from("."))?
                .limits
                .commit_max_delay_us,
            ack_latency_closed_loop: Percentiles::of(&sd_ack),
            ack_latency_half_load: None,
            durable_acks_per_s: acks,
            file_fsync_per_s: file.per_second(),
            sled_flush_per_s: sled.per_second(),
            ratio_vs_file: acks / file.per_second().max(1e-9),
            ratio_vs_sled: acks / sled.per_second().max(1e-9),
            relay_alone: None,
        });
    }

    // Latency: open loop at half Sealdesk's maximum (or the rate asked for), the same rate for
    // both, ABBA.
    if s.wants(Scenario::Latency) || s.wants(Scenario::Durable) {
        let rate = s.latency_rate.unwrap_or(max_rate / 2.0).max(1.0);
        if rate > max_rate {
            eprintln!(
                "latency: warning: {rate:.0} messages/s is above Sealdesk's measured maximum \
                 ({max_rate:.0}/s); its queues will grow for the whole run"
            );
        }
        let interval = Duration::from_secs_f64(s.conversations as f64 / rate);
        let (mut sd_lat, mut bl_lat, mut sd_ack) = (histogram(), histogram(), histogram());
        let mut runs = Vec::new();
        for kind in ABBA {
            let (fleet, child) = pick(kind, &mut sd, &mut bl, &sd_child, &bl_child);
            eprintln!("latency: {} at {rate:.0} messages/s", kind.name());
            let (
                fig,
                Measured {
                    delivery: lat, ack, ..
                },
            ) = measure(fleet, child, Pace::Open { interval }, s).await?;
            merge(
                if kind == Kind::Sealdesk {
                    &mut sd_lat
                } else {
                    &mut bl_lat
                },
                &lat,
            );
            if kind == Kind::Sealdesk {
                merge(&mut sd_ack, &ack);
            }
            runs.push(fig);
        }
        let (sp, bp) = (Percentiles::of(&sd_lat), Percentiles::of(&bl_lat));
        if let Some(d) = durable_figs.as_mut() {
            d.ack_latency_half_load = Some(Percentiles::of(&sd_ack));
        }
        report.latency = Some(LatencyFigures {
            rate_per_s: rate,
            half_load: s.latency_rate.is_none(),
            p99_ratio: sp.p99_us / bp.p99_us.max(1e-9),
            sealdesk: sp,
            baseline: bp,
            runs,
        });
    }
    // Durable, the relay alone: the same clients and relay, every message sealed before the
    // run and counted (not opened) on arrival, so that the relay's storage path has the
    // machine's cores to itself instead of sharing them with the clients' crypto.
    if s.wants(Scenario::Durable)
        && let Some(d) = durable_figs.as_mut()
    {
        let alone = relay_alone(&mut sd, &sd_child, max_rate, s).await?;
        d.relay_alone = Some(RelayAloneFigures {
            ratio_vs_file: alone.acks_per_s / d.file_fsync_per_s.max(1e-9),
            ratio_vs_sled: alone.acks_per_s / d.sled_flush_per_s.max(1e-9),
            ..alone
        });
    }
    report.durable = durable_figs;

    sd.close().await;
    bl.close().await;
    stop_child(sd_child).await;
    stop_child(bl_child).await;
    Ok(())
}

/// One closed-loop Sealdesk run of presealed messages (see [`Sender::preseal`]), at most 1 s
/// of warm-up and 3 s measured.
///
/// [`Sender::preseal`]: crate::load::Sender::preseal
async fn relay_alone(
    fleet: &mut Fleet,
    child: &ServerChild,
    max_rate: f64,
    s: &Settings,
) -> Result<RelayAloneFigures> {
    let mut short = s.clone();
    short.warmup = s.warmup.min(Duration::from_secs(1));
    short.measure = s.measure.min(Duration::from_secs(3));
    let span = (short.warmup + short.measure + short.tail).as_secs_f64();
    let n = fleet.senders.len().max(1);
    let per_sender = (PRESEAL_HEADROOM * max_rate.max(1_000.0) * span / n as f64).ceil() as usize;
    eprintln!(
        "durable: sealing {} messages ahead, then sealdesk with the relay alone ({:.1} s)",
        per_sender * n,
        short.measure.as_secs_f64()
    );
    let sealing: Vec<_> = std::mem::take(&mut fleet.senders)
        .into_iter()
        .map(|mut snd| tokio::task::spawn_blocking(move || snd.preseal(per_sender).map(|()| snd)))
        .collect();
    for t in sealing {
        fleet
            .senders
            .push(t.await.context("a sealing task failed")??);
    }
    fleet.stats.count_only.store(true, Ordering::SeqCst);
    let run = measure(fleet, child, Pace::Closed, &short).await;
    fleet.stats.count_only.store(false, Ordering::SeqCst);
    let ran_out = fleet
        .senders
        .iter_mut()
        .filter_map(|snd| snd.presealed.take())
        .any(|left| left.is_empty());
    let (fig, _) = run?;
    Ok(RelayAloneFigures {
        presealed: per_sender * n,
        ran_out,
        acks_per_s: fig.acks_per_s,
        server_cpu_us_per_message: fig.server_cpu_us_per_delivery,
        server_cores: fig.server_cores,
        ratio_vs_file: 0.0,
        ratio_vs_sled: 0.0,
        group_commit: fig.group_commit,
    })
}

fn pick<'a>(
    kind: Kind,
    sd: &'a mut Fleet,
    bl: &'a mut Fleet,
    sd_child: &'a ServerChild,
    bl_child: &'a ServerChild,
) -> (&'a mut Fleet, &'a ServerChild) {
    match kind {
        Kind::Sealdesk => (sd, sd_child),
        Kind::Baseline => (bl, bl_child),
    }
}

/// Adds `from`'s samples to `into`.
pub fn merge(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    // Both have the same bounds, so adding cannot fail.
    let _ = into.add(from);
}

/// The processes whose CPU time is a run's server CPU: relay (or baseline) children, and a
/// cluster's PostgreSQL with all its processes.
pub struct Servers<'a> {
    /// Server children; the Sealdesk ones' `/metrics` are scraped and added up.
    pub children: Vec<&'a ServerChild>,
    /// The cluster's database, if any.
    pub postgres: Option<&'a Postgres>,
}

impl Servers<'_> {
    /// CPU time used so far by all of them.
    fn cpu_time(&self) -> Result<Duration> {
        let mut total = Duration::ZERO;
        for c in &self.children {
            total += procstat::cpu_time(c.pid()).context("reading a server's CPU time")?;
        }
        if let Some(pg) = self.postgres {
            total += pg.cpu_time().context("reading PostgreSQL's CPU time")?;
        }
        Ok(total)
    }
}

/// One run: warm up, measure, drain. Returns the figures and the histograms.
///
/// # Errors
/// A snapshot of the server fails, or the run lost messages.
pub async fn measure(
    fleet: &mut Fleet,
    child: &ServerChild,
    pace: Pace,
    s: &Settings,
) -> Result<(RunFigures, Measured)> {
    let servers = Servers {
        children: vec![child],
        postgres: None,
    };
    measure_on(fleet, &servers, pace, s).await
}

/// [`measure`] with the server CPU of several processes (a cluster's nodes and database).
///
/// # Errors
/// A snapshot of a server fails, or the run lost messages.
pub async fn measure_on(
    fleet: &mut Fleet,
    servers: &Servers<'_>,
    pace: Pace,
    s: &Settings,
) -> Result<(RunFigures, Measured)> {
    let stats = fleet.stats.clone();
    let errors_before = stats.errors.load(Ordering::SeqCst);
    let n = fleet.senders.len().max(1) as u32;
    let start = Instant::now() + Duration::from_millis(20);
    let from = start + s.warmup;
    let to = from + s.measure;
    let stop_at = to + s.tail;
    let senders = std::mem::take(&mut fleet.senders);
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, snd)| {
            let offset = match pace {
                Pace::Open { interval } => interval * i as u32 / n,
                Pace::Closed => Duration::ZERO,
            };
            tokio::spawn(snd.run(pace, start, offset, stop_at))
        })
        .collect();

    tokio::time::sleep_until(from.into()).await;
    let a = Snapshot::take(&fleet.stats, servers, fleet.kind).await?;
    stats.begin_measure();
    tokio::time::sleep_until(to.into()).await;
    let measured = stats.end_measure();
    let b = Snapshot::take(&fleet.stats, servers, fleet.kind).await?;

    for t in tasks {
        fleet.senders.push(t.await.context("a sender task failed")?);
    }
    // Drain: every message sent is delivered (and, on Sealdesk, acknowledged) before the
    // next run, so no run inherits another's backlog.
    let drain_start = Instant::now();
    loop {
        let sent = stats.sent.load(Ordering::SeqCst);
        let done = stats.delivered.load(Ordering::SeqCst) >= sent
            && (fleet.kind == Kind::Baseline || stats.acked.load(Ordering::SeqCst) >= sent);
        if done {
            break;
        }
        if drain_start.elapsed() > Duration::from_secs(30) {
            return Err(anyhow!(
                "{}: {} messages sent, {} delivered, {} acked after 30 s of draining \
                 (first error: {:?})",
                fleet.kind.name(),
                sent,
                stats.delivered.load(Ordering::SeqCst),
                stats.acked.load(Ordering::SeqCst),
                stats.first_error()
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for c in &fleet.convs {
        c.reset_window(fleet.window);
    }

    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let delivered = b.delivered - a.delivered;
    let per = |cpu: Duration| cpu.as_secs_f64() * 1e6 / delivered.max(1) as f64;
    let server_cpu = b.server_cpu.saturating_sub(a.server_cpu);
    let client_cpu = b.client_cpu.saturating_sub(a.client_cpu);
    let fig = RunFigures {
        system: fleet.kind,
        pace: match pace {
            Pace::Closed => "closed".into(),
            Pace::Open { .. } => "open".into(),
        },
        seconds: secs,
        delivered,
        deliveries_per_s: delivered as f64 / secs,
        acks_per_s: (b.acked - a.acked) as f64 / secs,
        server_cpu_us_per_delivery: per(server_cpu),
        client_cpu_us_per_delivery: per(client_cpu),
        server_cores: server_cpu.as_secs_f64() / secs,
        client_cores: client_cpu.as_secs_f64() / secs,
        errors: stats.errors.load(Ordering::SeqCst) - errors_before,
        first_error: stats.first_error(),
        latency: Percentiles::of(&measured.delivery),
        ack_latency: (fleet.kind == Kind::Sealdesk).then(|| Percentiles::of(&measured.ack)),
        stages: StagePercentiles::of(&measured.stages),
        group_commit: match (&a.relay, &b.relay) {
            (Some(x), Some(y)) => y.since(x, secs),
            _ => None,
        },
    };
    Ok((fig, measured))
}

struct Snapshot {
    at: Instant,
    delivered: u64,
    acked: u64,
    server_cpu: Duration,
    client_cpu: Duration,
    /// The Sealdesk relay's own counters (none for the baseline).
    relay: Option<RelayCounters>,
}

/// Counters scraped from the relay's `/metrics`, cumulative since it started.
#[derive(Clone)]
struct RelayCounters {
    flushes: f64,
    writers_served: f64,
    flush_seconds: f64,
    flushes_within_25ms: f64,
    store_ops: f64,
    store_ops_within_5ms: f64,
    /// `sealdesk_ack_latency_seconds`, cumulative buckets.
    ack_buckets: Vec<(f64, f64)>,
    /// `sealdesk_commit_wait_seconds`, cumulative buckets.
    commit_wait_buckets: Vec<(f64, f64)>,
    /// `sealdesk_flush_latency_seconds`, cumulative buckets.
    flush_buckets: Vec<(f64, f64)>,
}

impl RelayCounters {
    fn scrape(exposition: &str) -> Option<Self> {
        let m = |name: &str| client::metric(exposition, name);
        Some(Self {
            flushes: m("sealdesk_group_commit_batch_size_count")?,
            writers_served: m("sealdesk_group_commit_batch_size_sum")?,
            flush_seconds: m("sealdesk_flush_latency_seconds_sum")?,
            flushes_within_25ms: m("sealdesk_flush_latency_seconds_bucket{le=\"0.025\"}")?,
            store_ops: m("sealdesk_store_latency_seconds_count")?,
            store_ops_within_5ms: m("sealdesk_store_latency_seconds_bucket{le=\"0.005\"}")?,
            ack_buckets: client::buckets(exposition, "sealdesk_ack_latency_seconds"),
            commit_wait_buckets: client::buckets(exposition, "sealdesk_commit_wait_seconds"),
            flush_buckets: client::buckets(exposition, "sealdesk_flush_latency_seconds"),
        })
    }

    /// The counters of two relays added up (buckets are the same on every relay).
    fn plus(mut self, other: &Self) -> Self {
        self.flushes += other.flushes;
        self.writers_served += other.writers_served;
        self.flush_seconds += other.flush_seconds;
        self.flushes_within_25ms += other.flushes_within_25ms;
        self.store_ops += other.store_ops;
        self.store_ops_within_5ms += other.store_ops_within_5ms;
        for (mine, theirs) in [
            (&mut self.ack_buckets, &other.ack_buckets),
            (&mut self.commit_wait_buckets, &other.commit_wait_buckets),
            (&mut self.flush_buckets, &other.flush_buckets),
        ] {
            for ((_, n), (_, m)) in mine.iter_mut().zip(theirs) {
                *n += m;
            }
        }
        self
    }

    /// The group commit over the `secs` between `before` and `self`; `None` if no flush.
    fn since(&self, before: &Self, secs: f64) -> Option<GroupCommitFigures> {
        let flushes = self.flushes - before.flushes;
        // A histogram over the window: its cumulative buckets now, less those at the start.
        let window = |now: &[(f64, f64)], then: &[(f64, f64)]| -> Vec<(f64, f64)> {
            now.iter()
                .zip(then)
                .map(|(&(le, n), &(_, n0))| (le, n - n0))
                .collect()
        };
        let acks = window(&self.ack_buckets, &before.ack_buckets);
        let waits = window(&self.commit_wait_buckets, &before.commit_wait_buckets);
        let flush_times = window(&self.flush_buckets, &before.flush_buckets);
        let over = |all: f64, within: f64, all0: f64, within0: f64| {
            ((all - all0) - (within - within0)).max(0.0) as u64
        };
        (flushes > 0.0).then(|| GroupCommitFigures {
            flushes_per_s: flushes / secs,
            mean_batch: (self.writers_served - before.writers_served) / flushes,
            mean_flush_ms: (self.flush_seconds - before.flush_seconds) * 1e3 / flushes,
            slow_flushes: over(
                self.flushes,
                self.flushes_within_25ms,
                before.flushes,
                before.flushes_within_25ms,
            ),
            slow_store_ops: over(
                self.store_ops,
                self.store_ops_within_5ms,
                before.store_ops,
                before.store_ops_within_5ms,
            ),
            ack_p50_ms: client::quantile_bound(&acks, 0.5).map(|s| s * 1e3),
            ack_p99_ms: client::quantile_bound(&acks, 0.99).map(|s| s * 1e3),
            commit_wait_p99_ms: client::quantile_bound(&waits, 0.99).map(|s| s * 1e3),
            flush_p99_ms: client::quantile_bound(&flush_times, 0.99).map(|s| s * 1e3),
        })
    }
}

impl Snapshot {
    async fn take(stats: &crate::load::Stats, servers: &Servers<'_>, kind: Kind) -> Result<Self> {
        // Read the relay's counters first: the scrape costs the relay a little CPU, which
        // then falls outside the window's CPU reading at the start and inside at the end,
        // a few hundred µs either way.
        let mut relay: Option<RelayCounters> = None;
        if kind == Kind::Sealdesk {
            for child in &servers.children {
                let Some(c) = client::metrics(child.addr())
                    .await
                    .ok()
                    .and_then(|m| RelayCounters::scrape(&m))
                else {
                    // One node unread: no group-commit figures rather than a part of them.
                    relay = None;
                    break;
                };
                relay = Some(match relay {
                    Some(r) => r.plus(&c),
                    None => c,
                });
            }
        }
        Ok(Self {
            at: Instant::now(),
            delivered: stats.delivered.load(Ordering::SeqCst),
            acked: stats.acked.load(Ordering::SeqCst),
            server_cpu: servers.cpu_time()?,
            client_cpu: procstat::cpu_time(std::process::id())
                .context("reading this process's CPU time")?,
            relay,
        })
    }
}

// ---- idle memory and connect storm -------------------------------------------------------------

async fn idle_scenario(s: &Settings) -> Result<IdleFigures> {
    let n = s.connections;
    eprintln!("idle/storm: generating {n} identities");
    let identities = Arc::new(
        tokio::task::spawn_blocking(move || -> Result<Vec<Party>> {
            let mut rng = ChaCha20Rng::seed_from_u64(11);
            (0..n)
                .map(|i| Party::new(&mut rng, &format!("idle-{i}"), Role::Customer))
                .collect()
        })
        .await??,
    );
    let mut runs = Vec::new();
    for kind in ABBA {
        eprintln!("idle/storm: {} with {n} connections", kind.name());
        runs.push(storm(kind, s, &identities).await?);
    }
    Ok(IdleFigures::new(n, s.storm_concurrency, runs))
}

/// One storm on a fresh server process: `n` connections (Sealdesk: authenticated), timed,
/// then held idle while the server's RSS is read.
async fn storm(kind: Kind, s: &Settings, ids: &Arc<Vec<Party>>) -> Result<StormRun> {
    let child = spawn_child(kind, &s.data_root).await?;
    let (addr, pid) = (child.addr(), child.pid());
    // Warm-up: first connections initialise lazily allocated state (runtime, buffers).
    for i in 0..8 {
        drop(open_one(kind, addr, i, &ids[i % ids.len()]).await?);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = procstat::rss_bytes(pid)?;
    let cpu_before = procstat::cpu_time(pid)?;
    let limit = Arc::new(Semaphore::new(s.storm_concurrency));
    let start = Instant::now();
    let tasks: Vec<_> = (0..ids.len().min(s.connections))
        .map(|i| {
            let (limit, ids) = (limit.clone(), ids.clone());
            tokio::spawn(async move {
                let _permit = limit.acquire_owned().await?;
                tokio::time::timeout(client::STEP, open_one(kind, addr, 100 + i, &ids[i])).await?
            })
        })
        .collect();
    let mut open = Vec::with_capacity(tasks.len());
    let mut failed = 0usize;
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok(ws)) => open.push(ws),
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let elapsed = start.elapsed();
    let cpu = procstat::cpu_time(pid)?.saturating_sub(cpu_before);
    // Let the server settle (writer tasks parked, buffers at rest) before reading RSS.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rss_after = procstat::rss_bytes(pid)?;
    let ok = open.len();
    drop(open);
    stop_child(child).await;
    Ok(StormRun {
        system: kind,
        connections: ok,
        failed,
        first_error,
        seconds: elapsed.as_secs_f64(),
        handshakes_per_s: ok as f64 / elapsed.as_secs_f64().max(1e-9),
        server_cpu_us_per_handshake: cpu.as_secs_f64() * 1e6 / ok.max(1) as f64,
        rss_before,
        rss_after,
        rss_per_connection: rss_after.saturating_sub(rss_before) as f64 / ok.max(1) as f64,
    })
}

/// Opens one connection; on Sealdesk, completes the authentication handshake.
async fn open_one(
    kind: Kind,
    addr: std::net::SocketAddr,
    i: usize,
    id: &Party,
) -> Result<client::Ws> {
    // 4 KiB client read buffers: ten thousand of them live in this process.
    let mut ws = client::connect(addr, kind.ws_path(), i, 4 * 1024).await?;
    if kind == Kind::Sealdesk {
        client::authenticate(&mut ws, &id.keys, &id.card).await?;
    }
    Ok(ws)
}

// ---- client-side crypto goals -----------------------------------------------------------------

/// Epoch creation with 2-of-3 escrow, and verifying + decrypting a 10,000-message
/// transcript, on this one thread. Criterion has the careful numbers
/// (`cargo bench -p sealdesk-protocol`); these put the goals in the same table.
fn crypto_scenario() -> Result<CryptoFigures> {
    let org = Org::new(13, 1, 1)?;
    let customer = &org.customers[0];
    let agent = &org.agents[0];
    let members = [customer.card.clone(), agent.card.clone()];
    let mut rng = ChaCha20Rng::seed_from_u64(14);
    let conversation = ConversationId::random(&mut rng);
    let new = |epoch| NewEpoch {
        conversation,
        epoch,
        members: &members,
        previous: None,
        now: unix_now(),
    };
    // Warm up, then time a batch.
    for _ in 0..20 {
        EpochRecord::create(&mut rng, &customer.keys, &org.policy, new(0))?;
    }
    const EPOCHS: u32 = 200;
    let t = Instant::now();
    for _ in 0..EPOCHS {
        EpochRecord::create(&mut rng, &customer.keys, &org.policy, new(0))?;
    }
    let epoch_ms = t.elapsed().as_secs_f64() * 1e3 / f64::from(EPOCHS);

    let (rec, k) = EpochRecord::create(&mut rng, &customer.keys, &org.policy, new(0))?;
    let keys = EpochKeys::new(&k, &rec);
    const N: u64 = 10_000;
    let body = [0x61u8; 200];
    let transcript = (0..N)
        .map(|i| {
            let who = if i % 2 == 0 { customer } else { agent };
            keys.seal_message(&who.keys, i / 2, ContentKind::Text, unix_now(), &body)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        let mut windows = ReplayWindows::default();
        for env in &transcript {
            keys.open_message(env, &mut windows)?;
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(CryptoFigures {
        epoch_create_ms: epoch_ms,
        transcript_10k_s: best,
        transcript_body_bytes: body.len(),
    })
}
