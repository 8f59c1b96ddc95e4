//! Where a cluster's cross-node delivery time goes, from the nodes' own histograms
//! (`/metrics`): each node's group-commit wait and database commit (what a same-node delivery
//! waits for too), then, on the receiving node, the wake-up's wait for its round and the
//! round's reads and pushes (and, since session 13, the whole round part by part, with the
//! share of each part in all rounds and in the slow ones: [`Rounds`]), and the periodic catch-up (its heads query, beside the rounds since session 12; before, wake-ups waited while it ran its query and reads). Snapshots before and after a run, added up over the nodes, and
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

/// The parts of a round that add up to its time (handoff and run), as the relay labels them.
const PARTS: [&str; 9] = sealdesk_server::metrics::ROUND_PARTS;

/// A round's time, whole and by part, in the order they run, each with its histogram: the
/// whole, the oldest wake-up's wait for the round and the round task's going on after it, then
/// the relay's parts ([`PARTS`], named `sealdesk_cluster_round_<part>_seconds`).
fn round() -> impl Iterator<Item = (&'static str, String)> {
    ["round", "wait", "back"]
        .into_iter()
        .chain(PARTS)
        .map(|part| match part {
            "round" => (part, "sealdesk_cluster_round_seconds".to_owned()),
            _ => (part, format!("sealdesk_cluster_round_{part}_seconds")),
        })
}

/// Rounds of 25 ms or longer (handoff and run), and their time by part.
const SLOW_ROUNDS: &str = "sealdesk_cluster_slow_rounds_total";
const SLOW_PARTS: &str = "sealdesk_cluster_slow_round_seconds_total";

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

/// Every node's split histograms (by name), added up, and the slow rounds' counters.
#[derive(Debug, Clone, Default)]
pub struct Snapshot(BTreeMap<String, Hist>, BTreeMap<String, f64>);

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
        let hists = STAGES
            .iter()
            .map(|(_, n)| (*n).to_owned())
            .chain(round().map(|(_, n)| n));
        for name in hists.chain([ROUND_SIZE.to_owned()]) {
            let h = Hist::of(exposition, &name);
            let sum = self.0.get(&name).map_or_else(|| h.clone(), |s| s.add(&h));
            self.0.insert(name, sum);
        }
        let slow = PARTS
            .iter()
            .chain(&["whole"])
            .map(|p| format!("{SLOW_PARTS}{{part=\"{p}\"}}"))
            .chain([SLOW_ROUNDS.to_owned()]);
        for name in slow {
            let v = client::metric(exposition, &name).unwrap_or(0.0);
            *self.1.entry(name).or_default() += v;
        }
    }

    /// The rounds between `earlier` and this snapshot.
    fn rounds_since(&self, earlier: &Self, diff: impl Fn(&str) -> Hist) -> Rounds {
        let counter = |name: &str| {
            self.1.get(name).copied().unwrap_or(0.0) - earlier.1.get(name).copied().unwrap_or(0.0)
        };
        let stages = round()
            .map(|(stage, name)| (stage, diff(&name)))
            .collect::<Vec<_>>();
        // The rounds' time: their handoffs and runs.
        let total: f64 = stages
            .iter()
            .filter(|(st, _)| *st == "round" || *st == "handoff")
            .map(|(_, h)| h.sum)
            .sum();
        let slow_total = counter(&format!("{SLOW_PARTS}{{part=\"whole\"}}"))
            + counter(&format!("{SLOW_PARTS}{{part=\"handoff\"}}"));
        let share = |part: &str, sum: f64, of: f64| {
            (part_name(part), if of > 0.0 { sum / of } else { 0.0 })
        };
        Rounds {
            all_share: PARTS
                .iter()
                .map(|p| {
                    let sum = stages
                        .iter()
                        .find(|(st, _)| st == p)
                        .map_or(0.0, |(_, h)| h.sum);
                    share(p, sum, total)
                })
                .collect(),
            slow: counter(SLOW_ROUNDS),
            slow_mean_ms: slow_total / counter(SLOW_ROUNDS).max(1.0) * 1e3,
            slow_share: PARTS
                .iter()
                .map(|p| {
                    share(
                        p,
                        counter(&format!("{SLOW_PARTS}{{part=\"{p}\"}}")),
                        slow_total,
                    )
                })
                .collect(),
            stages: stages.iter().map(|(st, h)| Stage::of(st, h)).collect(),
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
            round: self.rounds_since(earlier, diff),
        }
    }
}

/// `part` as a `'static` name (one of [`PARTS`]).
fn part_name(part: &str) -> &'static str {
    PARTS
        .iter()
        .find(|p| **p == part)
        .copied()
        .unwrap_or("other")
}

/// Where the rounds' time went over a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rounds {
    /// The whole, the oldest wake-up's wait, the round task's going on, and each part (in the
    /// order of [`round`]).
    pub stages: Vec<Stage>,
    /// Each part's share of all rounds' time (handoff and run).
    pub all_share: Vec<(&'static str, f64)>,
    /// Rounds of 25 ms or longer.
    pub slow: f64,
    /// Their mean time (handoff and run), ms.
    pub slow_mean_ms: f64,
    /// Each part's share of the slow rounds' time.
    pub slow_share: Vec<(&'static str, f64)>,
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
    /// Where the rounds' time went.
    pub round: Rounds,
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

    /// A node that ran 4 rounds of 10 ms in all (read 6, push 2, handoff 2), one of them slow
    /// (20 ms handoff and run: read 15, handoff 5).
    fn rounds(read: f64) -> String {
        let hist = |name: &str, sum: f64| {
            format!(
                "sealdesk_cluster_round_{name}seconds_bucket{{le=\"+Inf\"}} 4\n\
                 sealdesk_cluster_round_{name}seconds_sum {sum}\n\
                 sealdesk_cluster_round_{name}seconds_count 4\n"
            )
        };
        let slow = "sealdesk_cluster_slow_round_seconds_total";
        [
            hist("", 0.008 + read),
            hist("read_", 0.006 + read),
            hist("push_", 0.002),
            hist("handoff_", 0.002),
            format!(
                "sealdesk_cluster_slow_rounds_total 1\n\
                 {slow}{{part=\"handoff\"}} 0.005\n\
                 {slow}{{part=\"read\"}} {}\n\
                 {slow}{{part=\"whole\"}} {}\n",
                0.015 + read,
                0.015 + read
            ),
        ]
        .concat()
    }

    #[test]
    fn the_rounds_split_gives_each_part_its_share_of_all_rounds_and_of_the_slow_ones() {
        let mut before = Snapshot::default();
        before.add_exposition(&rounds(0.0));
        let mut after = Snapshot::default();
        // The same node later, 40 ms more read in its slow round; and a second node.
        after.add_exposition(&rounds(0.040));
        after.add_exposition(&rounds(0.0));
        let r = after.since(&before).round;
        let share = |v: &[(&str, f64)], p: &str| v.iter().find(|(q, _)| *q == p).unwrap().1;
        // Run's rounds: the later snapshot's node 1 minus the earlier, plus node 2 — read
        // 40 + 6 of 40 + 8 + 2 ms.
        assert!((share(&r.all_share, "read") - 46.0 / 50.0).abs() < 1e-9);
        assert!((share(&r.all_share, "handoff") - 2.0 / 50.0).abs() < 1e-9);
        assert_eq!(share(&r.all_share, "forwarded"), 0.0);
        // Every part of the relay's list has its share, the cache's update among them.
        assert_eq!(r.all_share.len(), PARTS.len());
        assert_eq!(share(&r.all_share, "cache"), 0.0);
        assert_eq!(r.slow, 1.0);
        // Its slow round (one: two in the later snapshot, one in the earlier): 55 + 15 - 15 ms
        // of read in 60 + 20 - 20 ms.
        assert!((r.slow_mean_ms - 60.0).abs() < 1e-9);
        assert!((share(&r.slow_share, "read") - 55.0 / 60.0).abs() < 1e-9);
        let whole = r.stages.iter().find(|s| s.stage == "round").unwrap();
        assert_eq!(whole.count, 4.0);
    }
}
