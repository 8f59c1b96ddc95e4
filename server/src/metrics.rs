//! A small metrics registry of atomics, rendered in the Prometheus text format (version 0.0.4).
//!
//! Fixed metric names and label sets keep it allocation-free on the hot path: counters are one
//! `fetch_add`, histograms two plus a compare-and-swap loop for the sum. A metrics crate would
//! bring a global registry and dynamic labels the relay does not need.
//!
//! Gauges and labelled counters (connections and closes: per-connection events, never per
//! frame) also wake whoever waits for a value ([`Gauge::wait_for`],
//! [`LabeledCounter::wait_for`]), so a test waits for the event instead of polling.

use std::fmt::Write as _;

mod kinds;
mod round;

pub use kinds::{Counter, Gauge, Histogram, LabeledCounter, LabeledGauge};
pub use round::{ROUND_PARTS, RoundMetrics, RoundTimes, SLOW_ROUND};

/// Latency buckets in seconds: 50 µs to 5 s, finer from 1 to 25 ms, where a relay's
/// durability wait and acknowledgements live. (Bounds are only ever added, so dashboards keep
/// their series.)
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.002_5, 0.003, 0.005, 0.007_5, 0.01,
    0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Batch-size buckets: 1 to 4096 writers per flush.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// Reasons a frame or connection was refused after the WebSocket opened
/// ([`CloseReason::label`](crate::connection::CloseReason::label)).
pub const FRAME_REJECT_REASONS: &[&str] =
    &["unsupported_data", "too_big", "protocol", "rate_limit"];

/// Reasons the relay closed a WebSocket.
pub const CLOSE_REASONS: &[&str] = &[
    "normal",
    "going_away",
    "protocol",
    "unsupported_data",
    "too_big",
    "internal",
    "idle_timeout",
    "auth_timeout",
    "slow_consumer",
    "rate_limit",
    "application",
    "connection_lost",
];

/// Reasons a TCP connection was refused before any WebSocket existed.
pub const CONNECTION_REJECT_REASONS: &[&str] =
    &["limit", "tls_handshake", "handshake_timeout", "bad_request"];

/// Every metric the relay exports. Share one instance behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    /// TCP connections accepted (including ones refused afterwards).
    pub connections_total: Counter,
    /// Connections currently open.
    pub connections_open: Gauge,
    /// Connections refused, by reason (see [`CONNECTION_REJECT_REASONS`]).
    pub connections_rejected: LabeledCounter,
    /// WebSocket connections closed by the relay, by reason (see [`CLOSE_REASONS`]).
    pub connections_closed: LabeledCounter,
    /// WebSocket messages received (all kinds).
    pub frames_in: Counter,
    /// WebSocket binary messages sent.
    pub frames_out: Counter,
    /// Payload bytes received in binary messages.
    pub bytes_in: Counter,
    /// Payload bytes sent in binary messages.
    pub bytes_out: Counter,
    /// Incoming frames refused, by reason (see [`FRAME_REJECT_REASONS`]).
    pub frames_rejected: LabeledCounter,
    /// Outbound frames dropped because a connection's queue was full.
    pub queue_drops: Counter,
    /// Messages durably stored (recorded by the protocol layer).
    pub messages_stored: Counter,
    /// Messages delivered to recipients (recorded by the protocol layer).
    pub messages_delivered: Counter,
    /// Failed authentication attempts (recorded by the protocol layer).
    pub auth_failures: Counter,
    /// Requests and connections refused by an abuse limit, by limit
    /// (see [`LIMIT_LABELS`](crate::limits::LIMIT_LABELS)).
    pub limited: LabeledCounter,
    /// Of those, the refusals by a keyed limit's cap on the keys it tracks (a new key while
    /// the table is full of keys short of tokens, or the overflow bucket the new keys share
    /// empty), by limit (see [`KEYED_LIMIT_LABELS`](crate::limits::KEYED_LIMIT_LABELS)).
    pub limited_at_cap: LabeledCounter,
    /// The keys (sources, customers) each keyed limit tracks: a node's own table, or in a
    /// cluster the shared rows as this node knows them (its last count plus the rows it
    /// started since), by limit.
    pub limit_keys: LabeledGauge,
    /// The cap on each keyed limit's keys (`max_tracked_sources`).
    pub limit_keys_max: Gauge,
    /// Latency of store operations, seconds.
    pub store_latency: Histogram,
    /// Latency of durable flushes, seconds.
    pub flush_latency: Histogram,
    /// Writers served per group-commit flush.
    pub group_commit_batch_size: Histogram,
    /// Time a writer waits for durability, from asking the group commit until its task runs
    /// again with the answer (the batch gathering, the flush before it if one was running, its
    /// own flush, the wake-up), seconds. Successful waits only.
    pub commit_wait: Histogram,
    /// Time from reading a `Send` to queueing its `Stored` answer (store, group commit,
    /// pushes), seconds (recorded by the protocol layer).
    pub ack_latency: Histogram,
    /// Cluster mode: conversations the periodic catch-up found behind (their committed head
    /// past this node's cursor), handed to the wake-up rounds.
    pub catch_up_found: Counter,
    /// Cluster mode: of those, the conversations a round read because the catch-up found
    /// them (no wake-up of that round named them, and no earlier round had read them up to
    /// the head seen).
    pub catch_up_reads: Counter,
    /// Cluster mode: conversations read from their push cursor for a wake-up.
    pub wakeup_reads: Counter,
    /// Cluster mode: other nodes' items pushed to members connected to this node (one per
    /// item and member connection).
    pub cluster_pushes: Counter,
    /// Cluster mode: reads of the stored master pushes (`service::consent_makeup`), one per
    /// periodic catch-up.
    pub master_push_reads: Counter,
    /// Cluster mode: consents pushed to a master connected here from their stored row, the
    /// other node's forward having been missed.
    pub master_pushes_made_up: Counter,
    /// Cluster mode: reads of the audit log's new leaves for the make-up of a lost audit
    /// wake-up (`service::audit_watch`), one per periodic catch-up while a session here
    /// watches the log.
    pub audit_size_reads: Counter,
    /// Cluster mode: times those reads found the log grown past what the watchers here were
    /// told, and told them (the other node's wake-up having been missed).
    pub audit_grew_made_up: Counter,
    /// Cluster mode: the store engine's counts of wake-ups and refused appends (set once, by
    /// a relay on PostgreSQL).
    pub cluster: std::sync::OnceLock<std::sync::Arc<crate::store::WakeCounts>>,
    /// On PostgreSQL: the time of each group-commit batch's transaction, its COMMIT answered
    /// (successful ones), seconds. Rendered only on PostgreSQL ([`Self::cluster`] set).
    pub db_commit: Histogram,
    /// Cluster mode: how long each wake-up from another node waited, from its arrival at the
    /// listener to the start of the round that handles it, seconds.
    pub wake_wait: Histogram,
    /// Cluster mode: each wake-up round's reads and pushes of the conversations it names,
    /// seconds.
    pub wake_round: Histogram,
    /// Cluster mode: conversations read per wake-up round.
    pub wake_round_conversations: Histogram,
    /// Cluster mode: each round's time, whole and by part, and the slow rounds' parts.
    pub round: RoundMetrics,
    /// Cluster mode: each periodic catch-up's query (the heads of the watched conversations),
    /// seconds; it runs beside the wake-up rounds, which read what it finds.
    pub catch_up_round: Histogram,
    /// Cluster mode: the catch-up's fold of the stored-bytes counts into the database,
    /// seconds.
    pub byte_fold: Histogram,
    /// Cluster mode: the agent keys this node last published as connected to it (the agent
    /// pick's view of who is online, `service::presence`).
    pub presence_agents: Gauge,
    /// Cluster mode: publications of this node's agents, or reads of who is online at pick
    /// time, that the database failed (the pick then used this node's connections).
    pub presence_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The cluster's metrics (a relay on PostgreSQL only).
    fn render_cluster(&self, out: &mut String) {
        let Some(c) = self.cluster.get() else {
            return;
        };
        self.db_commit.render(
            out,
            "sealdesk_db_commit_seconds",
            "PostgreSQL: time of each group-commit batch's transaction, COMMIT answered.",
        );
        for (h, name, help) in [
            (
                &self.wake_wait,
                "sealdesk_cluster_wake_wait_seconds",
                "Time a wake-up waited from its arrival to the start of its round.",
            ),
            (
                &self.wake_round,
                "sealdesk_cluster_wake_round_seconds",
                "Time of a wake-up round: reading the named conversations and pushing.",
            ),
            (
                &self.catch_up_round,
                "sealdesk_cluster_catch_up_seconds",
                "Time of a periodic catch-up's query: the heads of the watched conversations (beside the rounds).",
            ),
            (
                &self.byte_fold,
                "sealdesk_cluster_fold_seconds",
                "Time of the catch-up's fold of the stored-bytes counts.",
            ),
            (
                &self.wake_round_conversations,
                "sealdesk_cluster_wake_round_conversations",
                "Conversations read per wake-up round.",
            ),
        ] {
            h.render(out, name, help);
        }
        self.round.render(out);
        for (name, help, v) in [
            (
                "sealdesk_cluster_wakeups_sent_total",
                "Wake-ups sent to the other relay nodes (one per committed batch of appends).",
                c.sent(),
            ),
            (
                "sealdesk_cluster_wakeups_received_total",
                "Wake-ups received from the other relay nodes.",
                c.received(),
            ),
            (
                "sealdesk_cluster_listens_total",
                "Times the wake-up listener (re)connected and issued LISTEN (0: no listener).",
                c.listens(),
            ),
            (
                "sealdesk_cluster_appends_refused_total",
                "Appends the database refused (another node took the number), appended again.",
                c.refused(),
            ),
            (
                "sealdesk_cluster_catch_up_found_total",
                "Conversations the periodic catch-up found behind their head, handed to the rounds.",
                self.catch_up_found.get(),
            ),
            (
                "sealdesk_cluster_catch_up_reads_total",
                "Conversations a round read because the catch-up found them behind (no wake-up named them).",
                self.catch_up_reads.get(),
            ),
            (
                "sealdesk_cluster_wakeup_reads_total",
                "Conversations read from their push cursor for a wake-up.",
                self.wakeup_reads.get(),
            ),
            (
                "sealdesk_cluster_item_pushes_total",
                "Other nodes' items pushed to member connections on this node.",
                self.cluster_pushes.get(),
            ),
            (
                "sealdesk_cluster_master_push_reads_total",
                "Reads of the stored master pushes (each periodic catch-up).",
                self.master_push_reads.get(),
            ),
            (
                "sealdesk_cluster_master_pushes_made_up_total",
                "Consents pushed to a master here from their stored row (a forward missed).",
                self.master_pushes_made_up.get(),
            ),
            (
                "sealdesk_cluster_audit_size_reads_total",
                "Reads of the audit log's new leaves at a periodic catch-up (only while a session here watches the log).",
                self.audit_size_reads.get(),
            ),
            (
                "sealdesk_cluster_audit_grew_made_up_total",
                "Times the audit log's watchers here were told it grew at a catch-up (a wake-up missed).",
                self.audit_grew_made_up.get(),
            ),
            (
                "sealdesk_cluster_inserts_lost_total",
                "Conditional inserts another node made first (their writers were refused).",
                c.inserts_lost(),
            ),
            (
                "sealdesk_cluster_pushes_by_reference_sent_total",
                "Pushes too large for a notification, stored and forwarded to the other nodes by reference.",
                c.pushes_stored(),
            ),
            (
                "sealdesk_cluster_pushes_by_reference_read_total",
                "Pushes other nodes forwarded by reference, read for connections on this node.",
                c.stored_pushes_read(),
            ),
            (
                "sealdesk_cluster_pushes_by_reference_lost_total",
                "Pushes forwarded by reference that this node could not store, or found lapsed or unreadable.",
                c.stored_pushes_lost(),
            ),
            (
                "sealdesk_cluster_presence_errors_total",
                "Publications of this node's agents, or reads of who is online, the database failed.",
                self.presence_errors.get(),
            ),
        ] {
            header(out, name, help, "counter");
            let _ = writeln!(out, "{name} {v}");
        }
        header(
            out,
            "sealdesk_cluster_presence_agents",
            "Agent keys this node last published as connected to it.",
            "gauge",
        );
        let _ = writeln!(
            out,
            "sealdesk_cluster_presence_agents {}",
            self.presence_agents.get()
        );
    }

    /// Records one group-commit flush of `elapsed`: on PostgreSQL, one batch's transaction,
    /// into [`Self::db_commit`] if it committed (`ok`). Nothing for an embedded engine.
    pub fn observe_db_commit(&self, elapsed: std::time::Duration, ok: bool) {
        if ok && self.cluster.get().is_some() {
            self.db_commit.observe(elapsed.as_secs_f64());
        }
    }

    /// A registry with everything at zero.
    pub fn new() -> Self {
        Self {
            connections_total: Counter::default(),
            connections_open: Gauge::default(),
            connections_rejected: LabeledCounter::new(CONNECTION_REJECT_REASONS),
            connections_closed: LabeledCounter::new(CLOSE_REASONS),
            frames_in: Counter::default(),
            frames_out: Counter::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            frames_rejected: LabeledCounter::new(FRAME_REJECT_REASONS),
            queue_drops: Counter::default(),
            messages_stored: Counter::default(),
            messages_delivered: Counter::default(),
            auth_failures: Counter::default(),
            limited: LabeledCounter::new(crate::limits::LIMIT_LABELS),
            limited_at_cap: LabeledCounter::new(crate::limits::KEYED_LIMIT_LABELS),
            limit_keys: LabeledGauge::new(crate::limits::KEYED_LIMIT_LABELS),
            limit_keys_max: Gauge::default(),
            store_latency: Histogram::new(LATENCY_BUCKETS),
            flush_latency: Histogram::new(LATENCY_BUCKETS),
            group_commit_batch_size: Histogram::new(BATCH_BUCKETS),
            commit_wait: Histogram::new(LATENCY_BUCKETS),
            ack_latency: Histogram::new(LATENCY_BUCKETS),
            catch_up_found: Counter::default(),
            catch_up_reads: Counter::default(),
            wakeup_reads: Counter::default(),
            cluster_pushes: Counter::default(),
            master_push_reads: Counter::default(),
            master_pushes_made_up: Counter::default(),
            audit_size_reads: Counter::default(),
            audit_grew_made_up: Counter::default(),
            cluster: std::sync::OnceLock::new(),
            db_commit: Histogram::new(LATENCY_BUCKETS),
            wake_wait: Histogram::new(LATENCY_BUCKETS),
            wake_round: Histogram::new(LATENCY_BUCKETS),
            wake_round_conversations: Histogram::new(BATCH_BUCKETS),
            round: RoundMetrics::default(),
            catch_up_round: Histogram::new(LATENCY_BUCKETS),
            byte_fold: Histogram::new(LATENCY_BUCKETS),
            presence_agents: Gauge::default(),
            presence_errors: Counter::default(),
        }
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        counter(
            &mut out,
            "sealdesk_connections_total",
            "TCP connections accepted.",
            &self.connections_total,
        );
        header(
            &mut out,
            "sealdesk_connections_open",
            "Connections currently open.",
            "gauge",
        );
        let _ = writeln!(
            out,
            "sealdesk_connections_open {}",
            self.connections_open.get()
        );
        labeled(
            &mut out,
            "sealdesk_connections_rejected_total",
            "Connections refused, by reason.",
            &self.connections_rejected,
        );
        labeled(
            &mut out,
            "sealdesk_connections_closed_total",
            "WebSocket connections closed by the relay, by reason.",
            &self.connections_closed,
        );
        counter(
            &mut out,
            "sealdesk_frames_in_total",
            "WebSocket messages received.",
            &self.frames_in,
        );
        counter(
            &mut out,
            "sealdesk_frames_out_total",
            "WebSocket binary messages sent.",
            &self.frames_out,
        );
        counter(
            &mut out,
            "sealdesk_bytes_in_total",
            "Binary payload bytes received.",
            &self.bytes_in,
        );
        counter(
            &mut out,
            "sealdesk_bytes_out_total",
            "Binary payload bytes sent.",
            &self.bytes_out,
        );
        labeled(
            &mut out,
            "sealdesk_frames_rejected_total",
            "Incoming frames refused, by reason.",
            &self.frames_rejected,
        );
        counter(
            &mut out,
            "sealdesk_queue_drops_total",
            "Outbound frames dropped on a full queue.",
            &self.queue_drops,
        );
        counter(
            &mut out,
            "sealdesk_messages_stored_total",
            "Messages durably stored.",
            &self.messages_stored,
        );
        self.render_cluster(&mut out);
        counter(
            &mut out,
            "sealdesk_messages_delivered_total",
            "Messages delivered to recipients.",
            &self.messages_delivered,
        );
        counter(
            &mut out,
            "sealdesk_auth_failures_total",
            "Failed authentication attempts.",
            &self.auth_failures,
        );
        labeled(
            &mut out,
            "sealdesk_limited_total",
            "Requests and connections refused by an abuse limit, by limit.",
            &self.limited,
        );
        labeled(
            &mut out,
            "sealdesk_limited_at_cap_total",
            "Of those, refusals by a limit's cap on the keys it tracks, by limit.",
            &self.limited_at_cap,
        );
        self.limit_keys.render(
            &mut out,
            "sealdesk_limit_keys",
            "Keys (sources, customers) each keyed limit tracks; in a cluster, the shared rows this node knows of.",
        );
        header(
            &mut out,
            "sealdesk_limit_keys_max",
            "The cap on each keyed limit's keys (max_tracked_sources).",
            "gauge",
        );
        let _ = writeln!(out, "sealdesk_limit_keys_max {}", self.limit_keys_max.get());
        self.store_latency.render(
            &mut out,
            "sealdesk_store_latency_seconds",
            "Store operation latency.",
        );
        self.flush_latency.render(
            &mut out,
            "sealdesk_flush_latency_seconds",
            "Durable flush latency.",
        );
        self.group_commit_batch_size.render(
            &mut out,
            "sealdesk_group_commit_batch_size",
            "Writers served per group-commit flush.",
        );
        self.commit_wait.render(
            &mut out,
            "sealdesk_commit_wait_seconds",
            "Time a writer waits for the group commit that makes its write durable.",
        );
        self.ack_latency.render(
            &mut out,
            "sealdesk_ack_latency_seconds",
            "Time from reading a message to queueing its durable acknowledgement.",
        );
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, c: &Counter) {
    header(out, name, help, "counter");
    let _ = writeln!(out, "{name} {}", c.get());
}

fn labeled(out: &mut String, name: &str, help: &str, c: &LabeledCounter) {
    header(out, name, help, "counter");
    for (label, value) in c.iter() {
        let _ = writeln!(out, "{name}{{reason=\"{label}\"}} {value}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn counters_and_labels() {
        let m = Metrics::new();
        m.frames_in.add(3);
        m.frames_rejected.inc("rate_limit");
        m.frames_rejected.inc("rate_limit");
        m.frames_rejected.inc("no such reason");
        m.connections_open.inc();
        m.connections_open.inc();
        m.connections_open.dec();
        let text = m.render();
        assert!(text.contains("# HELP sealdesk_frames_in_total WebSocket messages received.\n"));
        assert!(
            text.contains("# TYPE sealdesk_frames_in_total counter\nsealdesk_frames_in_total 3\n")
        );
        assert!(text.contains("sealdesk_frames_rejected_total{reason=\"rate_limit\"} 2\n"));
        assert!(text.contains("sealdesk_frames_rejected_total{reason=\"other\"} 1\n"));
        assert!(text.contains("sealdesk_frames_rejected_total{reason=\"too_big\"} 0\n"));
        assert!(
            text.contains("# TYPE sealdesk_connections_open gauge\nsealdesk_connections_open 1\n")
        );
        assert_eq!(m.frames_rejected.get("rate_limit"), 2);
    }

    #[test]
    fn the_database_commit_histogram_is_kept_and_shown_on_postgresql_only() {
        let m = Metrics::new();
        m.observe_db_commit(std::time::Duration::from_millis(3), true);
        assert_eq!(m.db_commit.count(), 0, "not on an embedded engine");
        assert!(!m.render().contains("sealdesk_db_commit_seconds"));
        let _ = m.cluster.set(std::sync::Arc::default());
        m.observe_db_commit(std::time::Duration::from_millis(3), true);
        m.observe_db_commit(std::time::Duration::from_millis(900), false);
        assert_eq!(m.db_commit.count(), 1, "failed commits are not counted");
        let text = m.render();
        assert!(text.contains("# TYPE sealdesk_db_commit_seconds histogram\n"));
        assert!(
            text.contains("sealdesk_db_commit_seconds_count 1\n"),
            "{text}"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::new();
        for v in [1.0, 3.0, 3.0, 5000.0] {
            m.group_commit_batch_size.observe(v);
        }
        let text = m.render();
        let name = "sealdesk_group_commit_batch_size";
        assert!(text.contains(&format!("# TYPE {name} histogram\n")));
        assert!(text.contains(&format!("{name}_bucket{{le=\"1\"}} 1\n")));
        assert!(text.contains(&format!("{name}_bucket{{le=\"2\"}} 1\n")));
        assert!(text.contains(&format!("{name}_bucket{{le=\"4\"}} 3\n")));
        assert!(text.contains(&format!("{name}_bucket{{le=\"4096\"}} 3\n")));
        assert!(text.contains(&format!("{name}_bucket{{le=\"+Inf\"}} 4\n")));
        assert!(text.contains(&format!("{name}_sum 5007\n")));
        assert!(text.contains(&format!("{name}_count 4\n")));
    }

    #[test]
    fn every_line_is_well_formed() {
        let m = Metrics::new();
        m.flush_latency.observe(0.003);
        let text = m.render();
        let mut typed = std::collections::BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split(' ');
                let name = parts.next().unwrap();
                assert!(["counter", "gauge", "histogram"].contains(&parts.next().unwrap()));
                assert!(typed.insert(name.to_owned()), "{name} typed twice");
            } else if !line.starts_with("# HELP ") {
                let (series, value) = line.rsplit_once(' ').unwrap();
                assert!(value.parse::<f64>().is_ok(), "bad value in `{line}`");
                let base = series.split('{').next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| base.strip_suffix(s).filter(|f| typed.contains(*f)))
                    .unwrap_or(base);
                assert!(
                    typed.contains(family),
                    "sample `{line}` before its TYPE line"
                );
            }
        }
        assert!(text.ends_with('\n'));
    }
}
