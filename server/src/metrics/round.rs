//! Cluster mode: where a wake-up round's time goes (`relay::cluster`, issue 24).
//!
//! A round is timed whole and by part, every part observed once per round (a part the round
//! had nothing for counts 0), so the parts' sums add up to about the whole's sum and each
//! part's share of the rounds' time is a ratio of two sums. The rounds slower than
//! [`SLOW_ROUND`] also add their parts to counters of their own: what the tail's rounds spent
//! their time on, which the histograms of all rounds, dominated by short ones, do not say.
//!
//! ```text
//!  oldest wake-up   round taken      run starts                                      run ends
//!  arrives          off the queue    (blocking pool)
//!     │── wait ────────────────────────┤
//!                     │── handoff ─────┤── prepare ─ read ─ cache ─ push ─ pages ─ reconnect ─ forwarded ─ audit ─┤
//!                                      │──────────────────────────────── whole ──────────────────────────────────┤
//!                                                                                                  round task goes on
//!                                                                                                        ├─ back ─┤
//! ```
//!
//! `cache`, `push` and `pages` interleave (per conversation: its cache update, its pushes, a
//! further page read if the page came full): each is the sum of its own stretches.
//!
//! A wake-up's wait is made of the earlier rounds' handoffs, runs and backs (and the round
//! task's own scheduling between them), so the three together account for it.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Counter, Histogram, LATENCY_BUCKETS, header};

/// A round at least this long counts as slow: its parts are added to the slow rounds' sums
/// ([`RoundMetrics::slow_seconds`]). A cross-node delivery's p99 at half load is 100–800 ms on
/// the loaded 2-core test machine and a round's reads p50 about 1 ms (BENCHMARKS.md), so a
/// round of 25 ms is one a queue of wake-ups waits behind.
pub const SLOW_ROUND: Duration = Duration::from_millis(25);

/// The parts of a round, in the order they run, as their metric labels.
pub const ROUND_PARTS: [&str; 9] = [
    "handoff",
    "prepare",
    "read",
    "cache",
    "push",
    "pages",
    "reconnect",
    "forwarded",
    "audit",
];

/// What one round spent, part by part (filled by the round as it goes, observed once at its
/// end: no atomics on the way).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RoundTimes {
    /// Its oldest wake-up's wait, from its arrival at the listener to the run's start (`None`:
    /// the round had only the catch-up's list, or only forwarded pushes and no conversation
    /// named). The previous rounds and the blocking pool: not part of [`Self::whole`].
    pub wait: Option<Duration>,
    /// From the round taken off the queue to its run starting on the blocking pool.
    pub handoff: Duration,
    /// Before the read: each conversation's start (its cached state, loaded from the database
    /// if this node does not cache it, and its connected members).
    pub prepare: Duration,
    /// The one statement that reads every conversation's new items.
    pub read: Duration,
    /// Bringing the cached conversations up to date from the items read: counting them in, or
    /// reloading a conversation's record from the database when an item changed it.
    pub cache: Duration,
    /// Pushing the items to the sockets here (each claimed against the cursor, encoded, and
    /// queued to every member connection that may read it).
    pub push: Duration,
    /// Reading the further pages of the conversations whose first page came full (one round
    /// trip each, between their pushes).
    pub pages: Duration,
    /// After the listener reconnected: reloading blocks and re-checking the agent keys.
    pub reconnect: Duration,
    /// The pushes other nodes forwarded (pushes by value, by reference, releases, closes).
    pub forwarded: Duration,
    /// Reading the audit log other nodes grew and telling its watchers here.
    pub audit: Duration,
    /// The run, start to end (every part but the wait and the handoff).
    pub whole: Duration,
}

impl RoundTimes {
    /// The parts, in the order of [`ROUND_PARTS`].
    fn parts(&self) -> [Duration; 9] {
        [
            self.handoff,
            self.prepare,
            self.read,
            self.cache,
            self.push,
            self.pages,
            self.reconnect,
            self.forwarded,
            self.audit,
        ]
    }
}

/// The rounds' histograms and the slow rounds' parts.
#[derive(Debug)]
pub struct RoundMetrics {
    /// Each round's run, seconds.
    pub whole: Histogram,
    /// Each round's oldest wake-up's wait for it, seconds.
    pub wait: Histogram,
    /// From each round's run ending on the blocking pool to the round task going on (the
    /// runtime scheduling it again; no next round is taken before), seconds.
    pub back: Histogram,
    /// Each part, per round, in the order of [`ROUND_PARTS`], seconds.
    pub parts: [Histogram; 9],
    /// Rounds whose run plus handoff took [`SLOW_ROUND`] or longer.
    pub slow: Counter,
    /// Of those, the time of each part added up (as `f64` bits), and last their runs' whole.
    slow_sums: [AtomicU64; 10],
}

impl Default for RoundMetrics {
    fn default() -> Self {
        Self {
            whole: Histogram::new(LATENCY_BUCKETS),
            wait: Histogram::new(LATENCY_BUCKETS),
            back: Histogram::new(LATENCY_BUCKETS),
            parts: std::array::from_fn(|_| Histogram::new(LATENCY_BUCKETS)),
            slow: Counter::default(),
            slow_sums: std::array::from_fn(|_| AtomicU64::new(0f64.to_bits())),
        }
    }
}

impl RoundMetrics {
    /// Records one round.
    pub fn observe(&self, t: &RoundTimes) {
        self.whole.observe(t.whole.as_secs_f64());
        if let Some(w) = t.wait {
            self.wait.observe(w.as_secs_f64());
        }
        for (h, d) in self.parts.iter().zip(t.parts()) {
            h.observe(d.as_secs_f64());
        }
        if t.whole + t.handoff >= SLOW_ROUND {
            self.slow.inc();
            let all = t.parts().into_iter().chain([t.whole]);
            for (sum, d) in self.slow_sums.iter().zip(all) {
                // The closure always returns `Some`, so `fetch_update` cannot fail.
                let _ = sum.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                    Some((f64::from_bits(bits) + d.as_secs_f64()).to_bits())
                });
            }
        }
    }

    /// The slow rounds' time in `part` (one of [`ROUND_PARTS`], or `whole`), seconds.
    pub fn slow_seconds(&self, part: &str) -> f64 {
        ROUND_PARTS
            .iter()
            .chain(&["whole"])
            .position(|p| *p == part)
            .and_then(|i| self.slow_sums.get(i))
            .map_or(0.0, |s| f64::from_bits(s.load(Ordering::Relaxed)))
    }

    pub(super) fn render(&self, out: &mut String) {
        self.whole.render(
            out,
            "sealdesk_cluster_round_seconds",
            "Time of a round's run, start to end: every part but the wait and the handoff.",
        );
        self.wait.render(
            out,
            "sealdesk_cluster_round_wait_seconds",
            "Time a round's oldest wake-up waited from its arrival to the round's start.",
        );
        self.back.render(
            out,
            "sealdesk_cluster_round_back_seconds",
            "Time from a round's run ending to the round task going on (no round is taken meanwhile).",
        );
        for (h, part) in self.parts.iter().zip(ROUND_PARTS) {
            h.render(
                out,
                &format!("sealdesk_cluster_round_{part}_seconds"),
                &format!("Time of each round's {part} part (0 if it had none)."),
            );
        }
        let name = "sealdesk_cluster_slow_rounds_total";
        header(
            out,
            name,
            "Rounds whose handoff and run took 25 ms or longer.",
            "counter",
        );
        let _ = writeln!(out, "{name} {}", self.slow.get());
        let name = "sealdesk_cluster_slow_round_seconds_total";
        header(
            out,
            name,
            "The slow rounds' time, by part (whole: their runs).",
            "counter",
        );
        for part in ROUND_PARTS.iter().chain(&["whole"]) {
            let _ = writeln!(out, "{name}{{part=\"{part}\"}} {}", self.slow_seconds(part));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_slow_round_adds_its_parts_and_a_fast_one_only_its_histograms() {
        let m = RoundMetrics::default();
        let fast = RoundTimes {
            wait: Some(ms(1)),
            read: ms(2),
            push: ms(1),
            whole: ms(3),
            ..RoundTimes::default()
        };
        let slow = RoundTimes {
            wait: None,
            handoff: ms(5),
            read: ms(4),
            cache: ms(7),
            forwarded: ms(30),
            whole: ms(42),
            ..RoundTimes::default()
        };
        m.observe(&fast);
        m.observe(&slow);
        assert_eq!((m.whole.count(), m.wait.count(), m.slow.get()), (2, 1, 1));
        // Every part is observed in every round, so the parts' sums compare with the whole's.
        assert!(m.parts.iter().all(|h| h.count() == 2));
        assert!((m.parts[2].sum() - 0.006).abs() < 1e-9);
        assert!((m.slow_seconds("forwarded") - 0.030).abs() < 1e-9);
        assert!((m.slow_seconds("read") - 0.004).abs() < 1e-9);
        assert!((m.slow_seconds("whole") - 0.042).abs() < 1e-9);
        // The cache's update is its own part, not the push's.
        assert!((m.slow_seconds("cache") - 0.007).abs() < 1e-9);
        assert!((m.parts[3].sum() - 0.007).abs() < 1e-9);
        assert_eq!(m.slow_seconds("push"), 0.0);
        assert_eq!(m.slow_seconds("no such part"), 0.0);
        let mut text = String::new();
        m.render(&mut text);
        assert!(text.contains("sealdesk_cluster_round_forwarded_seconds_count 2\n"));
        assert!(text.contains("sealdesk_cluster_round_cache_seconds_count 2\n"));
        assert!(text.contains("sealdesk_cluster_slow_rounds_total 1\n"));
        assert!(
            text.contains("sealdesk_cluster_slow_round_seconds_total{part=\"forwarded\"} 0.03\n")
        );
    }
}
