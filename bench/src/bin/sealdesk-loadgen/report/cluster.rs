//! The cluster scenario's figures (see the loadgen's `cluster` module) and the database-side
//! limit measured with `pgbench`, and their section of the table.

use std::fmt::Write as _;

use serde::Serialize;

use super::{GroupCommitFigures, Percentiles, RunFigures, Summary, table::num};
use crate::pg::PgbenchRun;

/// Issue 24's goal: a cluster's deliveries/s at least this fraction of one sled relay's.
pub const GOAL_DELIVERIES_VS_SLED: f64 = 0.6;
/// Issue 24's goal: cross-node p99 at most this multiple of same-node p99.
pub const GOAL_CROSS_VS_SAME_P99: f64 = 2.0;

/// One measured run of the cluster scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterRun {
    /// `sled` (one relay), `baseline` or `cluster`.
    pub system: &'static str,
    /// The run's figures (server CPU: every node and PostgreSQL for the cluster).
    pub run: RunFigures,
    /// Delivery latency of the cluster's same-node conversations (cluster runs).
    pub same_node: Option<Percentiles>,
    /// Delivery latency of its cross-node conversations.
    pub cross_node: Option<Percentiles>,
}

/// The cluster's own counters over the whole scenario, added up over its nodes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterCounters {
    /// Wake-ups sent (one per committed batch that appended).
    pub wakeups_sent: f64,
    /// Wake-ups received.
    pub wakeups_received: f64,
    /// Appends the database refused and the node appended again.
    pub appends_refused: f64,
    /// Conversations the periodic catch-up found behind their head (0 from a build before
    /// the catch-up ran beside the rounds, which did not count them).
    pub catch_up_found: f64,
    /// Conversations read because the periodic catch-up found them behind (since the
    /// catch-up runs beside the rounds: those no wake-up of the same round named).
    pub catch_up_reads: f64,
    /// Pushes the cluster's clients received twice and dropped (by sequence number).
    pub duplicate_pushes: u64,
    /// Messages the cluster's clients sent over the scenario (warm-ups included), the
    /// denominator of [`Self::duplicate_pushes`].
    pub messages_sent: u64,
}

/// The cluster scenario.
#[derive(Debug, Serialize)]
pub struct ClusterFigures {
    /// Relay nodes.
    pub nodes: usize,
    /// Conversations (on each system).
    pub conversations: usize,
    /// Of which both members are on one node of the cluster.
    pub same_node_conversations: usize,
    /// Agents.
    pub agents: usize,
    /// Closed loop: one sled relay.
    pub sled: Summary,
    /// Closed loop: the plaintext baseline.
    pub baseline: Summary,
    /// Closed loop: the cluster (server CPU: nodes + PostgreSQL).
    pub cluster: Summary,
    /// Closed loop: the cluster's PostgreSQL alone, CPU µs per delivery.
    pub cluster_db_cpu_us_per_delivery: f64,
    /// Closed loop, cluster: same-node conversations' delivery latency.
    pub closed_same_node: Percentiles,
    /// Closed loop, cluster: cross-node conversations' delivery latency.
    pub closed_cross_node: Percentiles,
    /// Cluster deliveries/s over sled's.
    pub deliveries_vs_sled: f64,
    /// Cluster deliveries/s over the baseline's.
    pub deliveries_vs_baseline: f64,
    /// Cluster server CPU per delivery over sled's.
    pub cpu_vs_sled: f64,
    /// Cluster server CPU per delivery over the baseline's.
    pub cpu_vs_baseline: f64,
    /// The open-loop rate (half the cluster's closed-loop maximum), messages/s.
    pub open_rate_per_s: f64,
    /// Open loop: one sled relay.
    pub open_sled: Percentiles,
    /// Open loop: the baseline.
    pub open_baseline: Percentiles,
    /// Open loop: the cluster, all conversations.
    pub open_cluster: Percentiles,
    /// Open loop: the cluster's same-node conversations.
    pub open_same_node: Percentiles,
    /// Open loop: the cluster's cross-node conversations.
    pub open_cross_node: Percentiles,
    /// Open loop, cluster: where the time went, from the nodes' own histograms (commit, the
    /// wake-up's wait for its round, the round's reads and pushes).
    pub open_split: crate::stages::Split,
    /// Open loop: cross-node p99 over same-node p99 (the goal's figure).
    pub cross_vs_same_p99: f64,
    /// Closed loop: the same ratio.
    pub cross_vs_same_p99_closed: f64,
    /// The cluster's group commit over its closed-loop runs (nodes added up).
    pub cluster_group_commit: Option<GroupCommitFigures>,
    /// The cluster's wake-ups, refusals and catch-up reads over the scenario.
    pub counters: ClusterCounters,
    /// Setups of the cluster that failed before the one measured (a node failed a batch and
    /// stopped answering), with their errors.
    pub failed_setups: Vec<String>,
    /// Every run, in order.
    pub runs: Vec<ClusterRun>,
}

/// The database-side limit: `pgbench` appending rows of the relay's shape.
#[derive(Debug, Serialize)]
pub struct PgbenchFigures {
    /// The batch size used: the cluster's mean writers per flush when it ran before, else a
    /// default.
    pub batch: usize,
    /// Whether [`Self::batch`] came from the cluster run.
    pub batch_from_cluster: bool,
    /// The runs: one message per transaction, then `batch` with one session and with one
    /// session per node.
    pub runs: Vec<PgbenchRun>,
    /// The cluster's durable acks/s (closed loop) over the best rows/s here, if both ran.
    pub cluster_share_of_limit: Option<f64>,
}

fn p(x: &Percentiles) -> String {
    format!("{:.2} / {:.2}", x.p50_us / 1e3, x.p99_us / 1e3)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// The cluster section of the table.
pub fn cluster_table(out: &mut String, c: &ClusterFigures) {
    let _ = writeln!(
        out,
        "\ncluster — {} relay nodes on one PostgreSQL (fsync on, synchronous_commit on), {} \
         conversations ({} same-node, {} cross-node), {} agents; same workload as fan-out; \
         server CPU = all nodes + all PostgreSQL processes",
        c.nodes,
        c.conversations,
        c.same_node_conversations,
        c.conversations - c.same_node_conversations,
        c.agents
    );
    let _ = writeln!(
        out,
        "  closed loop                             {:>10} {:>10} {:>10}   cluster/sled cluster/baseline",
        "sled", "baseline", "cluster"
    );
    let row = |out: &mut String, name: &str, a: f64, b: f64, cl: f64| {
        let _ = writeln!(
            out,
            "  {name:<38} {:>10} {:>10} {:>10}   {:>12} {:>16}",
            num(a),
            num(b),
            num(cl),
            ratio(cl, a),
            ratio(cl, b)
        );
    };
    row(
        out,
        "deliveries/s",
        c.sled.deliveries_per_s,
        c.baseline.deliveries_per_s,
        c.cluster.deliveries_per_s,
    );
    row(
        out,
        "server CPU µs/delivery",
        c.sled.server_cpu_us_per_delivery,
        c.baseline.server_cpu_us_per_delivery,
        c.cluster.server_cpu_us_per_delivery,
    );
    row(
        out,
        "server cores busy",
        c.sled.server_cores,
        c.baseline.server_cores,
        c.cluster.server_cores,
    );
    row(
        out,
        "client CPU µs/delivery",
        c.sled.client_cpu_us_per_delivery,
        c.baseline.client_cpu_us_per_delivery,
        c.cluster.client_cpu_us_per_delivery,
    );
    row(
        out,
        "delivery p50 ms",
        c.sled.latency.p50_us / 1e3,
        c.baseline.latency.p50_us / 1e3,
        c.cluster.latency.p50_us / 1e3,
    );
    row(
        out,
        "delivery p99 ms",
        c.sled.latency.p99_us / 1e3,
        c.baseline.latency.p99_us / 1e3,
        c.cluster.latency.p99_us / 1e3,
    );
    let _ = writeln!(
        out,
        "  of the cluster's CPU, PostgreSQL: {} µs/delivery; same-node p50/p99 {} ms, \
         cross-node {} ms ({})",
        num(c.cluster_db_cpu_us_per_delivery),
        p(&c.closed_same_node),
        p(&c.closed_cross_node),
        ratio(c.closed_cross_node.p99_us, c.closed_same_node.p99_us)
    );
    let _ = writeln!(
        out,
        "  open loop at {} messages/s (half the cluster's maximum, the same for all), p50 / p99 \
         ms: sled {}, baseline {}, cluster {} (cluster/sled p99 {}, cluster/baseline p99 {})",
        num(c.open_rate_per_s),
        p(&c.open_sled),
        p(&c.open_baseline),
        p(&c.open_cluster),
        ratio(c.open_cluster.p99_us, c.open_sled.p99_us),
        ratio(c.open_cluster.p99_us, c.open_baseline.p99_us)
    );
    let _ = writeln!(
        out,
        "  open loop, cluster: same-node {} ms, cross-node {} ms",
        p(&c.open_same_node),
        p(&c.open_cross_node)
    );
    let _ = writeln!(
        out,
        "  open loop, cluster, where the time goes (mean / p50 / p99 ms, observations): {}; \
         {} wake-up rounds of {:.1} conversations",
        stage_list(&c.open_split.stages),
        num(c.open_split.rounds),
        c.open_split.conversations_per_round
    );
    let r = &c.open_split.round;
    let shares = |v: &[(&str, f64)]| -> String {
        v.iter()
            .map(|(p, s)| format!("{p} {:.0}%", s * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        out,
        "  open loop, cluster, the rounds whole and by part (mean / p50 / p99 ms, observations): \
         {}\n  share of all rounds' time (handoff and run): {}\n  {} slow rounds (≥25 ms), mean \
         {:.1} ms: {}",
        stage_list(&r.stages),
        shares(&r.all_share),
        num(r.slow),
        r.slow_mean_ms,
        shares(&r.slow_share)
    );
    if let Some(g) = &c.cluster_group_commit {
        let _ = writeln!(
            out,
            "  cluster group commit (nodes added up): {} flushes/s, {:.1} writers/flush, {:.2} \
             ms/flush",
            num(g.flushes_per_s),
            g.mean_batch,
            g.mean_flush_ms
        );
    }
    let k = &c.counters;
    let _ = writeln!(
        out,
        "  wake-ups sent {} / received {}, appends refused {}, catch-up found behind {} / \
         read {}, duplicate pushes dropped by the clients {} ({:.2} per message sent)",
        num(k.wakeups_sent),
        num(k.wakeups_received),
        num(k.appends_refused),
        num(k.catch_up_found),
        num(k.catch_up_reads),
        k.duplicate_pushes,
        k.duplicate_pushes as f64 / k.messages_sent.max(1) as f64
    );
    let runs: Vec<String> = c
        .runs
        .iter()
        .map(|r| {
            format!(
                "{} {} {}{}",
                r.system,
                r.run.pace,
                num(r.run.deliveries_per_s),
                if r.run.errors > 0 {
                    format!(" ({} errors: {:?})", r.run.errors, r.run.first_error)
                } else {
                    String::new()
                }
            )
        })
        .collect();
    let _ = writeln!(out, "  runs (deliveries/s): {}", runs.join(", "));
    if let Some(first) = c.failed_setups.first() {
        let _ = writeln!(
            out,
            "  setups failed before this one: {} (first: {first})",
            c.failed_setups.len()
        );
    }
    let _ = writeln!(
        out,
        "  goal: cluster ≥ {GOAL_DELIVERIES_VS_SLED}× sled deliveries/s: {:.2}x, {}",
        c.deliveries_vs_sled,
        verdict(c.deliveries_vs_sled >= GOAL_DELIVERIES_VS_SLED)
    );
    let _ = writeln!(
        out,
        "  goal: cross-node p99 ≤ {GOAL_CROSS_VS_SAME_P99}× same-node (open loop): {:.2}x, {}",
        c.cross_vs_same_p99,
        verdict(c.cross_vs_same_p99 <= GOAL_CROSS_VS_SAME_P99)
    );
}

/// The pgbench section of the table.
pub fn pgbench_table(out: &mut String, f: &PgbenchFigures) {
    let _ = writeln!(
        out,
        "\npgbench — the relay's append on the same disk: per message a conversation head moved \
         on and a 1,324-byte message row (UNIQUE conversation, epoch, sender, counter), one \
         pg_notify per transaction; batch {} ({})",
        f.batch,
        if f.batch_from_cluster {
            "the cluster's mean writers per flush"
        } else {
            "default; run with the cluster to use its batch"
        }
    );
    for r in &f.runs {
        let _ = writeln!(
            out,
            "  batch {:>4}, {} session(s): {:>8} transactions/s, {:>8} rows/s, {:.2} ms per \
             transaction, PostgreSQL CPU {} µs/row",
            r.batch,
            r.clients,
            num(r.transactions_per_s),
            num(r.rows_per_s),
            r.latency_ms,
            num(r.server_cpu_us_per_row)
        );
    }
    if let Some(share) = f.cluster_share_of_limit {
        let _ = writeln!(
            out,
            "  the cluster's durable acks/s are {share:.2}x the best rows/s above"
        );
    }
}

/// Stages as `name mean / p50 / p99 (observations)`, in ms.
fn stage_list(stages: &[crate::stages::Stage]) -> String {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("≤{v}"));
    stages
        .iter()
        .map(|st| {
            format!(
                "{} {:.2} / {} / {} ({})",
                st.stage,
                st.mean_ms,
                ms(st.p50_ms),
                ms(st.p99_ms),
                num(st.count)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
