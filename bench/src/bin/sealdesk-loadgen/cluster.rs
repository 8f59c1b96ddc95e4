//! The cluster scenario (`--only cluster`) and the database-side limit (`--only pgbench`).
//!
//! **Cluster.** One throwaway PostgreSQL ([`Postgres`], on the run's data disk) and `N` relay
//! nodes on it (server children of this binary with `SEALDESK_RELAY_STORE=postgres`, one shared
//! log key file, wake-ups on), next to one sled relay and the plaintext baseline, all in this
//! run. The same org, conversations and client work as the fan-out scenario; on the cluster
//! agents are spread over the nodes and one conversation in `N` keeps both members on one node,
//! the others are cross-node (see [`setup_sealdesk_on`]). Closed loop, runs in the order sled,
//! baseline, cluster, cluster, baseline, sled (drift falls on all alike), then open loop at half
//! the cluster's maximum, the same rate for all three, in the same order. The cluster's server
//! CPU is every node's plus every PostgreSQL process's.
//!
//! **pgbench.** The relay's append as `pgbench` sees it (see [`crate::pg::append_script`]),
//! one message per transaction, then the cluster's mean batch (writers per flush) with one
//! session and with one session per node: the database's own limit on this disk.
//!
//! Everything stops by itself: every run is bounded, the children stop when their standard
//! input closes (or this process ends), PostgreSQL when [`Postgres`] is dropped or this process
//! ends, and every directory is temporary.

use std::{
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use hdrhistogram::Histogram;
use tokio::task::spawn_blocking;

use crate::{
    child::{Kind, ServerChild},
    client,
    load::{Measured, Pace, histogram},
    pg::{APPEND_TABLES, Postgres},
    report::{
        ClusterCounters, ClusterFigures, ClusterRun, GroupCommitFigures, Percentiles,
        PgbenchFigures, RunFigures, Summary,
    },
    scenarios::{Servers, Settings, measure_on, merge},
    world::{Fleet, Org, setup_baseline, setup_sealdesk, setup_sealdesk_on},
};

/// The batch `pgbench` uses when the cluster did not run first (about the relay's mean
/// writers per flush at full load in BENCHMARKS.md).
const DEFAULT_BATCH: usize = 32;

/// Attempts at setting up the cluster's clients before the scenario gives up.
const MAX_SETUPS: usize = 3;

/// The systems of the scenario, in the order their runs go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum System {
    Sled,
    Baseline,
    Cluster,
}

const ORDER: [System; 6] = [
    System::Sled,
    System::Baseline,
    System::Cluster,
    System::Cluster,
    System::Baseline,
    System::Sled,
];

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Sled => "sled",
            System::Baseline => "baseline",
            System::Cluster => "cluster",
        }
    }
}

/// Runs what was asked for: the cluster scenario, `pgbench`, or both (`pgbench` then on the
/// cluster's PostgreSQL, after the load, with the cluster's batch size).
///
/// # Errors
/// No PostgreSQL binaries, a server that does not start, a setup or run that fails.
pub async fn cluster_and_pgbench(
    s: &Settings,
) -> Result<(Option<ClusterFigures>, Option<PgbenchFigures>)> {
    let root = s.data_root.clone();
    eprintln!(
        "cluster: starting a throwaway PostgreSQL under {}",
        root.display()
    );
    let pg = Arc::new(spawn_blocking(move || Postgres::start(&root)).await??);
    let cluster = if s.wants_cluster() {
        Some(cluster_scenario(s, &pg).await?)
    } else {
        None
    };
    let pgbench = if s.wants_pgbench() {
        let (batch, from_cluster) = match cluster
            .as_ref()
            .and_then(|c| c.cluster_group_commit.as_ref())
        {
            Some(g) if g.mean_batch >= 1.0 => (g.mean_batch.round() as usize, true),
            _ => (DEFAULT_BATCH, false),
        };
        let mut f = pgbench(s, &pg, batch).await?;
        f.batch_from_cluster = from_cluster;
        if let Some(c) = &cluster {
            let best = f.runs.iter().map(|r| r.rows_per_s).fold(0.0, f64::max);
            f.cluster_share_of_limit = (best > 0.0).then(|| c.cluster.acks_per_s / best);
        }
        Some(f)
    } else {
        None
    };
    // Stop PostgreSQL off the runtime's threads (its drop waits for the server).
    let _ = spawn_blocking(move || drop(pg)).await;
    Ok((cluster, pgbench))
}

async fn spawn(kind: Kind, root: &Path, env: Vec<(String, String)>) -> Result<ServerChild> {
    let root = root.to_owned();
    spawn_blocking(move || ServerChild::spawn_with_env(kind, &root, &env)).await?
}

async fn stop(child: ServerChild) {
    let _ = spawn_blocking(move || child.stop()).await;
}

/// The nodes' environment: the store, the database, the shared log key.
fn node_env(url: &str, key: &Path) -> Vec<(String, String)> {
    [
        ("SEALDESK_RELAY_STORE", "postgres"),
        ("SEALDESK_RELAY_DATABASE_URL", url),
        ("SEALDESK_RELAY_MIGRATE", "true"),
        ("SEALDESK_RELAY_LOG_KEY_FILE", &key.to_string_lossy()),
        ("SEALDESK_RELAY_CLUSTER_WAKEUPS", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

async fn cluster_scenario(s: &Settings, pg: &Arc<Postgres>) -> Result<ClusterFigures> {
    let n = s.nodes.max(1);
    if s.agents < n {
        bail!(
            "the cluster scenario needs at least one agent per node: --agents {} < --nodes {n}",
            s.agents
        );
    }
    let keys = tempfile::tempdir().context("a directory for the log key")?;
    let key = keys.path().join("log.key");
    let secret: [u8; 64] = std::array::from_fn(|_| rand::random::<u8>());
    std::fs::write(&key, secret).context("writing the log key file")?;

    eprintln!("cluster: starting one sled relay and the baseline");
    let sled_env = vec![("SEALDESK_RELAY_STORE".to_owned(), "sled".to_owned())];
    let sled = spawn(Kind::Sealdesk, &s.data_root, sled_env).await?;
    let base = spawn(Kind::Baseline, &s.data_root, Vec::new()).await?;

    eprintln!(
        "cluster: setup, {} conversations, {} agents on each system",
        s.conversations, s.agents
    );
    let org = {
        let (a, c) = (s.agents, s.conversations);
        Arc::new(spawn_blocking(move || Org::new(7, a, c)).await??)
    };
    let mut fl_sled = setup_sealdesk(&org, sled.addr(), s.window)
        .await
        .context("setting up the sled relay's clients")?;
    let mut fl_base = setup_baseline(&org, base.addr(), s.window)
        .await
        .context("setting up the baseline's clients")?;
    // A node may fail a batch during the setup and stop answering (a relay defect, see
    // BENCHMARKS.md); the cluster is then set up again on a fresh database, and the failed
    // attempts are reported.
    let mut failed_setups = Vec::new();
    let (nodes, mut fl_cluster) = loop {
        let attempt = failed_setups.len();
        let url = {
            let pg = pg.clone();
            spawn_blocking(move || pg.create_database(&format!("sealdesk_{attempt}"))).await??
        };
        eprintln!(
            "cluster: starting {n} relay nodes on PostgreSQL (attempt {})",
            attempt + 1
        );
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            // One at a time: the first applies the schema (the others find it applied).
            nodes.push(spawn(Kind::Sealdesk, &s.data_root, node_env(&url, &key)).await?);
        }
        let addrs: Vec<SocketAddr> = nodes.iter().map(ServerChild::addr).collect();
        match setup_sealdesk_on(&org, &addrs, s.window).await {
            Ok(fleet) => break (nodes, fleet),
            Err(e) => {
                eprintln!("cluster: the setup failed: {e:#}");
                failed_setups.push(format!("{e:#}"));
                for child in nodes {
                    stop(child).await;
                }
                if failed_setups.len() >= MAX_SETUPS {
                    bail!("the cluster's setup failed {MAX_SETUPS} times; last: {e:#}");
                }
            }
        }
    };
    let addrs: Vec<SocketAddr> = nodes.iter().map(ServerChild::addr).collect();
    let same = fl_cluster
        .convs
        .iter()
        .filter(|c| c.placement() == crate::load::Placement::SameNode)
        .count();

    let sled_servers = Servers {
        children: vec![&sled],
        postgres: None,
    };
    let base_servers = Servers {
        children: vec![&base],
        postgres: None,
    };
    let cluster_servers = Servers {
        children: nodes.iter().collect(),
        postgres: Some(pg),
    };
    let before = counters(&addrs).await;

    // Closed loop.
    let mut runs = Vec::new();
    let mut hists = Hists::new();
    let mut db_cpu = Duration::ZERO;
    for sys in ORDER {
        let (fleet, servers) = match sys {
            System::Sled => (&mut fl_sled, &sled_servers),
            System::Baseline => (&mut fl_base, &base_servers),
            System::Cluster => (&mut fl_cluster, &cluster_servers),
        };
        eprintln!(
            "cluster: closed loop, {} ({:.1} s)",
            sys.name(),
            s.measure.as_secs_f64()
        );
        let db_before = pg.cpu_time()?;
        let (fig, m) = measure_on(fleet, servers, Pace::Closed, s).await?;
        if sys == System::Cluster {
            db_cpu += pg.cpu_time()?.saturating_sub(db_before);
        }
        hists.add(sys, &m);
        runs.push(run_of(sys, fig, &m));
    }
    let closed = |sys: System| -> Vec<RunFigures> {
        runs.iter()
            .filter(|r| r.system == sys.name())
            .map(|r| r.run.clone())
            .collect()
    };
    let sum = |sys: System, h: &Histogram<u64>| Summary::of(&closed(sys), Kind::Sealdesk, h);
    let (c_sled, c_base, c_cluster) = (
        sum(System::Sled, &hists.sled),
        Summary::of(&closed(System::Baseline), Kind::Baseline, &hists.base),
        sum(System::Cluster, &hists.cluster),
    );
    let cluster_delivered: u64 = closed(System::Cluster).iter().map(|r| r.delivered).sum();
    let cluster_group_commit = mean_group_commit(&closed(System::Cluster));
    let (closed_same, closed_cross) = (Percentiles::of(&hists.same), Percentiles::of(&hists.cross));

    // Open loop at half the cluster's maximum, the same rate for all.
    let rate = (c_cluster.deliveries_per_s / 2.0).max(1.0);
    let interval = Duration::from_secs_f64(s.conversations as f64 / rate);
    let mut open = Hists::new();
    let split_before = crate::stages::Snapshot::take(&addrs).await;
    for sys in ORDER {
        let (fleet, servers) = match sys {
            System::Sled => (&mut fl_sled, &sled_servers),
            System::Baseline => (&mut fl_base, &base_servers),
            System::Cluster => (&mut fl_cluster, &cluster_servers),
        };
        eprintln!("cluster: open loop at {rate:.0} messages/s, {}", sys.name());
        let (fig, m) = measure_on(fleet, servers, Pace::Open { interval }, s).await?;
        open.add(sys, &m);
        runs.push(run_of(sys, fig, &m));
    }
    let after = counters(&addrs).await;
    let open_split = crate::stages::Snapshot::take(&addrs)
        .await
        .since(&split_before);
    let (open_same, open_cross) = (Percentiles::of(&open.same), Percentiles::of(&open.cross));
    let duplicate_pushes = fl_cluster
        .stats
        .duplicates
        .load(std::sync::atomic::Ordering::SeqCst);
    let messages_sent = fl_cluster
        .stats
        .sent
        .load(std::sync::atomic::Ordering::SeqCst);

    close(fl_sled).await;
    close(fl_base).await;
    close(fl_cluster).await;
    for child in nodes.into_iter().chain([sled, base]) {
        stop(child).await;
    }

    Ok(ClusterFigures {
        nodes: n,
        conversations: s.conversations,
        same_node_conversations: same,
        agents: s.agents,
        deliveries_vs_sled: c_cluster.deliveries_per_s / c_sled.deliveries_per_s.max(1e-9),
        deliveries_vs_baseline: c_cluster.deliveries_per_s / c_base.deliveries_per_s.max(1e-9),
        cpu_vs_sled: c_cluster.server_cpu_us_per_delivery
            / c_sled.server_cpu_us_per_delivery.max(1e-9),
        cpu_vs_baseline: c_cluster.server_cpu_us_per_delivery
            / c_base.server_cpu_us_per_delivery.max(1e-9),
        cluster_db_cpu_us_per_delivery: db_cpu.as_secs_f64() * 1e6
            / cluster_delivered.max(1) as f64,
        sled: c_sled,
        baseline: c_base,
        cluster: c_cluster,
        cross_vs_same_p99_closed: closed_cross.p99_us / closed_same.p99_us.max(1e-9),
        closed_same_node: closed_same,
        closed_cross_node: closed_cross,
        open_rate_per_s: rate,
        open_sled: Percentiles::of(&open.sled),
        open_baseline: Percentiles::of(&open.base),
        open_cluster: Percentiles::of(&open.cluster),
        cross_vs_same_p99: open_cross.p99_us / open_same.p99_us.max(1e-9),
        open_same_node: open_same,
        open_cross_node: open_cross,
        open_split,
        cluster_group_commit,
        counters: ClusterCounters {
            wakeups_sent: after.wakeups_sent - before.wakeups_sent,
            wakeups_received: after.wakeups_received - before.wakeups_received,
            appends_refused: after.appends_refused - before.appends_refused,
            catch_up_found: after.catch_up_found - before.catch_up_found,
            catch_up_reads: after.catch_up_reads - before.catch_up_reads,
            duplicate_pushes,
            messages_sent,
        },
        failed_setups,
        runs,
    })
}

async fn close(fleet: Fleet) {
    fleet.close().await;
}

/// Latency histograms of each system's runs, and of the cluster's two placements.
struct Hists {
    sled: Histogram<u64>,
    base: Histogram<u64>,
    cluster: Histogram<u64>,
    same: Histogram<u64>,
    cross: Histogram<u64>,
}

impl Hists {
    fn new() -> Self {
        Self {
            sled: histogram(),
            base: histogram(),
            cluster: histogram(),
            same: histogram(),
            cross: histogram(),
        }
    }

    fn add(&mut self, sys: System, m: &Measured) {
        match sys {
            System::Sled => merge(&mut self.sled, &m.delivery),
            System::Baseline => merge(&mut self.base, &m.delivery),
            System::Cluster => {
                merge(&mut self.cluster, &m.delivery);
                merge(&mut self.same, &m.same_node);
                merge(&mut self.cross, &m.cross_node);
            }
        }
    }
}

fn run_of(sys: System, run: RunFigures, m: &Measured) -> ClusterRun {
    let cluster = sys == System::Cluster;
    ClusterRun {
        system: sys.name(),
        run,
        same_node: cluster.then(|| Percentiles::of(&m.same_node)),
        cross_node: cluster.then(|| Percentiles::of(&m.cross_node)),
    }
}

/// The group commit of `runs` taken together (means of their figures).
fn mean_group_commit(runs: &[RunFigures]) -> Option<GroupCommitFigures> {
    let gs: Vec<&GroupCommitFigures> = runs
        .iter()
        .filter_map(|r| r.group_commit.as_ref())
        .collect();
    let first = **gs.first()?;
    let k = gs.len() as f64;
    let mean = |f: fn(&GroupCommitFigures) -> f64| gs.iter().map(|g| f(g)).sum::<f64>() / k;
    Some(GroupCommitFigures {
        flushes_per_s: mean(|g| g.flushes_per_s),
        mean_batch: mean(|g| g.mean_batch),
        mean_flush_ms: mean(|g| g.mean_flush_ms),
        slow_flushes: gs.iter().map(|g| g.slow_flushes).sum(),
        slow_store_ops: gs.iter().map(|g| g.slow_store_ops).sum(),
        ..first
    })
}

/// The cluster counters of every node, added up (a node that does not answer counts 0).
async fn counters(addrs: &[SocketAddr]) -> ClusterCounters {
    let mut c = ClusterCounters::default();
    for a in addrs {
        let Ok(m) = client::metrics(*a).await else {
            continue;
        };
        let get = |name: &str| client::metric(&m, name).unwrap_or(0.0);
        c.wakeups_sent += get("sealdesk_cluster_wakeups_sent_total");
        c.wakeups_received += get("sealdesk_cluster_wakeups_received_total");
        c.appends_refused += get("sealdesk_cluster_appends_refused_total");
        c.catch_up_found += get("sealdesk_cluster_catch_up_found_total");
        c.catch_up_reads += get("sealdesk_cluster_catch_up_reads_total");
    }
    c
}

/// `pgbench` on a database of its own holding the relay's message tables: one message per
/// transaction, then `batch` per transaction with one session and with one per node.
async fn pgbench(s: &Settings, pg: &Arc<Postgres>, batch: usize) -> Result<PgbenchFigures> {
    let seconds: u32 = if s.quick { 3 } else { 8 };
    let (conversations, nodes) = (s.conversations, s.nodes.max(1));
    let pg = pg.clone();
    let started = Instant::now();
    let runs = spawn_blocking(move || -> Result<_> {
        pg.create_database("pgbench")?;
        pg.psql("pgbench", APPEND_TABLES)?;
        let mut runs = Vec::new();
        for (b, clients) in [(1, 1), (batch, 1), (batch, nodes)] {
            eprintln!("pgbench: {b} message(s) per transaction, {clients} session(s), {seconds} s");
            let per_session = conversations / clients;
            runs.push(pg.pgbench_append("pgbench", b, clients, per_session, seconds)?);
        }
        Ok(runs)
    })
    .await??;
    eprintln!("pgbench: done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(PgbenchFigures {
        batch,
        batch_from_cluster: false,
        runs,
        cluster_share_of_limit: None,
    })
}
