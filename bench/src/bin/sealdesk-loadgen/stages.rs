//! Where a cluster's cross-node delivery time goes, from the nodes' own histograms
//! (`/metrics`): each node's group-commit wait and database commit (what a same-node delivery
//! waits for too), then, on the receiving node, the wake-up's wait for its round and the
//! round's reads and pushes, and the periodic catch-up (its heads query, beside the rounds since session 12; before, wake-ups waited while it ran its query and reads). Snapshots before and after a run, added up over the nodes, and
//! their difference: the run's own observations.

use std::{collections::BTreeMap, net::SocketAddr};

use serde::Serialize;

use crate::client;

/// The histograms of the split, in the order of the path: commit → wake-up → read → push.
pub const STAGES: [(&str, &str); 6] = [
    ("commit_wait", "sealdesk_commit_wait_seconds"),
    ("db_commit", "sealdesk_db_commit_seconds"),
    ("wake_wait", "sealdesk_cluster_wake_wait_seconds"),
    ("wake_round", "sealdesk_cluster_wake_round_seconds"),
    ("catch_up", "sealdesk_cluster_catch_up_seconds"),
    ("fold", "sealdesk_cluster_fold_seconds"),
];

/// Conversations read per wake-up round.
const ROUND_SIZE: &str = "sealdesk_cluster_wake_round_conversations";

/// One histogram added up over the nodes: cumulative buckets, sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hist {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

impl Hist {
    fn of(exposition: &str, name: &str) -> Self {
        Self {
            buckets: client::buckets(exposition, name),
            sum: client::metric(exposition, &format!("{name}_sum")).unwrap_or(0.0),
            count: client::metric(exposition, &format!("{name}_count")).unwrap_or(0.0),
        }
    }

    /// `self + other`, bucket by bucket (the nodes share their bounds).
    fn add(&self, other: &Self) -> Self {
        self.zip(other, 1.0)
    }

    /// `self - earlier`, bucket by bucket.
    fn since(&self, earlier: &Self) -> Self {
        self.zip(earlier, -1.0)
    }

    fn zip(&self, other: &Self, sign: f64) -> Self {
        let buckets = if self.buckets.is_empty() {
            other
                .buckets
                .iter()
                .map(|(le, n)| (*le, sign * n))
                .collect()
        } else {
            self.buckets
                .iter()
                .map(|(le, n)| {
                    let o = other
                        .buckets
                        .iter()
                        .find(|(l, _)| l == le)
                        .map_or(0.0, |(_, m)| *m);
                    (*le, n + sign * o)
                })
                .collect()
        };
        Self {
            buckets,
            sum: self.sum + sign * other.sum,
            count: self.count + sign * other.count,
        }
    }
}

/// Every node's split histograms, added up.
#[derive(Debug, Clone, Default)]
pub struct Snapshot(BTreeMap<&'static str, Hist>);

impl Snapshot {
    /// The nodes' histograms now (a node that does not answer counts nothing).
    pub async fn take(addrs: &[SocketAddr]) -> Self {
        let mut out = Self::default();
        for a in addrs {
            let Ok(m) = client::metrics(*a).await else {
                continue;
            };
            out.add_exposition(&m);
        }
        out
    }

    fn add_exposition(&mut self, exposition: &str) {
        for name in STAGES.iter().map(|(_, n)| *n).chain([ROUND_SIZE]) {
            let h = Hist::of(exposition, name);
            let sum = self.0.get(name).map_or_else(|| h.clone(), |s| s.add(&h));
            self.0.insert(name, sum);
        }
    }

    /// The split of what was observed between `earlier` and this snapshot.
    pub fn since(&self, earlier: &Self) -> Split {
        let diff = |name: &str| {
            let empty = Hist::default();
            let now = self.0.get(name).unwrap_or(&empty);
            now.since(earlier.0.get(name).unwrap_or(&empty))
        };
        let stages = STAGES
            .iter()
            .map(|(stage, name)| Stage::of(stage, &diff(name)))
            .collect();
        let rounds = diff(ROUND_SIZE);
        Split {
            stages,
            rounds: rounds.count,
            conversations_per_round: rounds.sum / rounds.count.max(1.0),
        }
    }
}

/// One stage's observations over a run, in milliseconds; p50 and p99 are the upper bounds of
/// the buckets they fall in (the relay's buckets: 0.05, 0.1, 0.25, 0.5, 1, 2, 2.5, 3, 5, 7.5,
/// 10, 15, 25, 50, 100, 250, 500 ms, …), the mean is exact.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stage {
    /// The stage's name.
    pub stage: &'static str,
    /// Observations.
    pub count: f64,
    /// Mean, ms.
    pub mean_ms: f64,
    /// Median's bucket bound, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile's bucket bound, ms.
    pub p99_ms: Option<f64>,
}

impl Stage {
    fn of(stage: &'static str, h: &Hist) -> Self {
        Self {
            stage,
            count: h.count,
            mean_ms: h.sum / h.count.max(1.0) * 1e3,
            p50_ms: client::quantile_bound(&h.buckets, 0.5).map(|s| s * 1e3),
            p99_ms: client::quantile_bound(&h.buckets, 0.99).map(|s| s * 1e3),
        }
    }
}

/// The split of one run (or several taken together).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Split {
    /// The stages, in the order of [`STAGES`].
    pub stages: Vec<Stage>,
    /// Wake-up rounds.
    pub rounds: f64,
    /// Conversations read per round, mean.
    pub conversations_per_round: f64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn node(wait_fast: u64, wait_slow: u64, sum: f64) -> String {
        let n = wait_fast + wait_slow;
        format!(
            "sealdesk_cluster_wake_wait_seconds_bucket{{le=\"0.001\"}} {wait_fast}\n\
             sealdesk_cluster_wake_wait_seconds_bucket{{le=\"0.1\"}} {n}\n\
             sealdesk_cluster_wake_wait_seconds_bucket{{le=\"+Inf\"}} {n}\n\
             sealdesk_cluster_wake_wait_seconds_sum {sum}\n\
             sealdesk_cluster_wake_wait_seconds_count {n}\n\
             sealdesk_cluster_wake_round_conversations_sum 30\n\
             sealdesk_cluster_wake_round_conversations_count 3\n"
        )
    }

    #[test]
    fn the_split_adds_the_nodes_and_keeps_only_the_run() {
        let mut before = Snapshot::default();
        before.add_exposition(&node(10, 0, 0.005));
        let mut after = Snapshot::default();
        after.add_exposition(&node(10, 0, 0.005));
        after.add_exposition(&node(9, 1, 0.059));
        let split = after.since(&before);
        let wait = split
            .stages
            .iter()
            .find(|s| s.stage == "wake_wait")
            .unwrap();
        assert_eq!(wait.count, 10.0);
        assert!((wait.mean_ms - 5.9).abs() < 1e-9);
        assert_eq!(wait.p50_ms, Some(1.0));
        assert_eq!(wait.p99_ms, Some(100.0));
        assert_eq!(split.rounds, 3.0);
        assert!((split.conversations_per_round - 10.0).abs() < 1e-9);
        let commit = split.stages.first().unwrap();
        assert_eq!((commit.count, commit.p50_ms), (0.0, None));
    }
}
