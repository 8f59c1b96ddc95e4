//! The buckets of the rare, expensive events — registrations (per source and overall),
//! failed authentications per source, conversation opens per customer or visitor — kept by
//! the engine the nodes of a cluster share ([`ConversationLog::rate_bucket`]), so that a
//! cluster of N nodes allows what one node does, not N times it. Each event is one statement
//! on the database.
//!
//! The per-frame and per-message buckets stay in each node's memory: they are taken on every
//! frame and every message (the hot path), where a database round trip each would cost more
//! than the whole append; a client reaches one node at a time, so a node's own count is
//! already the client's.
//!
//! If the database fails, the event is counted in this node's own bucket instead (as on an
//! engine only this node uses), and the failure is logged: a limit still holds, per node.
//! The buckets that are full again are dropped by the node's periodic chores
//! ([`SharedBuckets::prune`], every [`PRUNE_EVERY`]).
//!
//! # The cap on keys
//!
//! As a node's own [`KeyedBuckets`](super::KeyedBuckets), each keyed limit keeps at most
//! `max_keys` buckets (`max_tracked_sources`), here cluster-wide: a source with many
//! addresses cannot grow the table without bound between two prunes. Without a `count(*)`
//! on each take: the chores count each limit's rows once per round (a range count of the
//! primary key each, [`SharedBuckets::count`]), and the node adds the buckets its own takes
//! start. While a
//! limit stands at its cap, a take is an `UPDATE` only ([`BucketOp::TakeKnown`]): a key that
//! has a bucket is served as ever, a key without one is refused `rate_limited` (counted as
//! the limit's refusal, as in memory) after one prune of the buckets full again (and a fresh
//! count if it dropped any) — at most one such prune per limit per [`PRUNE_AT_CAP_EVERY`] on a
//! node, so a flood at the cap costs one `UPDATE` per attempt.
//!
//! The failed-authentication limit is charged after the failure, so a refusal at the cap
//! would leave the failure uncounted ([`Keys::Overflow`], `limits` module docs): at its cap,
//! a source without a row is checked against (a `SELECT`, [`BucketOp::CheckKnown`]) and
//! charged to the limit's overflow bucket, one more row of the limit ([`OVERFLOW_KEY`]),
//! which every node shares as it shares the others.
//!
//! The bound: each node stops starting buckets once its count reaches the cap, so a
//! limit's rows exceed the cap only by the keys the *other* nodes start within one chores
//! period (before the next count tells this node), and never reach more than `nodes × cap`.
//! The overall registration bucket is one row and is not capped.
//!
//! Each limit's rows as this node knows them are the gauge `sealdesk_limit_keys{reason=…}`,
//! and a refusal at the cap is [`Limited::at_cap`] (counted by the caller in
//! `sealdesk_limited_at_cap_total` as well as `sealdesk_limited_total`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::warn;

use super::{Limited, Rate};
use crate::metrics::Metrics;
use crate::store::{BucketAnswer, BucketOp, BucketRate, ConversationLog};

/// How often a node drops the shared buckets that are full again.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How often, at most, a node prunes for a limit standing at its cap of keys (a take for a
/// new key then may find room made by buckets full again since the chores' last prune).
pub const PRUNE_AT_CAP_EVERY: Duration = Duration::from_secs(1);

/// The keyed limits whose buckets the engine keeps (counted every round for their cap).
const SHARED_KEYED: &[&str] = &[
    super::SOURCE_REGISTRATIONS,
    super::SOURCE_AUTH_FAILURES,
    super::CONVERSATION_OPENS,
];

/// The key of a limit's overflow bucket ([`Keys::Overflow`]): empty, which no source's key is
/// (an address is 4 or 16 bytes).
pub const OVERFLOW_KEY: &[u8] = b"";

/// How a limit's keys are kept in the shared table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// One bucket for everyone (the overall registrations): one row, no cap.
    One,
    /// At most `max_keys` rows: at the cap, a key without one is refused.
    Capped,
    /// At most `max_keys` rows: at the cap, the keys without one are checked against and
    /// charged to the limit's overflow bucket ([`OVERFLOW_KEY`]), for a limit charged after
    /// its event (failed authentications).
    Overflow,
}

/// The shared engine's buckets (see the module docs).
pub struct SharedBuckets {
    engine: Arc<dyn ConversationLog>,
    /// Most buckets each keyed limit keeps, cluster-wide.
    max_keys: u64,
    /// The gauge of each limit's rows (`sealdesk_limit_keys`).
    metrics: Arc<Metrics>,
    /// What this node knows of each limit's rows. A std Mutex: held for a map update only,
    /// never across a statement.
    rows: Mutex<HashMap<&'static str, Rows>>,
}

/// A limit's rows as this node knows them.
#[derive(Debug, Default, Clone, Copy)]
struct Rows {
    /// The last count, plus the buckets this node started since.
    count: u64,
    /// When this node last pruned for the limit standing at its cap.
    pruned_at_cap: Option<Instant>,
}

impl std::fmt::Debug for SharedBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBuckets").finish_non_exhaustive()
    }
}

/// The shared bucket's key: the limit's label, then the key's bytes.
pub fn bucket_key(limit: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(limit.len() + 1 + key.len());
    out.extend_from_slice(limit.as_bytes());
    out.push(b'/');
    out.extend_from_slice(key);
    out
}

/// A source address's bytes (its counted key, see [`super::source_key`]).
pub fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

impl SharedBuckets {
    /// The buckets `engine` keeps, at most `max_keys` per keyed limit (see the module docs);
    /// each limit's rows go to `metrics`' gauge.
    pub fn new(engine: Arc<dyn ConversationLog>, max_keys: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            engine,
            max_keys: u64::try_from(max_keys.max(1)).unwrap_or(u64::MAX),
            metrics,
            rows: Mutex::new(HashMap::new()),
        }
    }

    /// `op` on `limit`'s bucket `key` of `rate`: `Some` with the engine's answer, `None` if
    /// the engine keeps no shared buckets or failed (the caller counts in its own). A
    /// [`Keys::Capped`] or [`Keys::Overflow`] limit keeps at most `max_keys` buckets (see the
    /// module docs); the overall bucket, [`Keys::One`], is not capped.
    pub fn apply(
        &self,
        limit: &'static str,
        rate: Rate,
        key: &[u8],
        op: BucketOp,
        keys: Keys,
    ) -> Option<Result<(), Limited>> {
        let rate = BucketRate::new(rate.per_minute, rate.burst);
        let key = bucket_key(limit, key);
        let at_cap = keys != Keys::One && self.at_cap(limit);
        let op = match op {
            BucketOp::Take if at_cap => BucketOp::TakeKnown,
            BucketOp::Check if at_cap && keys == Keys::Overflow => BucketOp::CheckKnown,
            op => op,
        };
        let first = self.engine_op(limit, &key, rate, op)?;
        if first != BucketAnswer::Unknown {
            // Not a key without a bucket at the cap: the answer is its own bucket's.
            return Some(self.settle(limit, first, false));
        }
        // The key has no bucket and the limit stands at its cap.
        let plain = if op == BucketOp::TakeKnown {
            BucketOp::Take
        } else {
            BucketOp::Check
        };
        if self.made_room(limit) {
            // Room was made: the plain op, which may start the key's bucket.
            return self.answer(limit, rate, &key, plain, false);
        }
        if keys == Keys::Overflow {
            let overflow = bucket_key(limit, OVERFLOW_KEY);
            return self.answer(limit, rate, &overflow, plain, true);
        }
        Some(Err(Limited::at_cap(limit, Duration::from_secs(1))))
    }

    /// Drops the buckets that are full again, then counts each limit's (the node's periodic
    /// chores call it every [`PRUNE_EVERY`]).
    pub fn prune(&self) {
        if let Err(e) = self.engine.prune_rate_buckets() {
            warn!(error = %e, "pruning the shared rate buckets failed");
        }
        self.count();
    }

    /// Counts each keyed limit's buckets (a range count of the primary key each; the chores
    /// call it every round).
    pub fn count(&self) {
        match self.engine.rate_bucket_counts(SHARED_KEYED) {
            Ok(counts) => {
                let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
                for r in rows.values_mut() {
                    r.count = 0;
                }
                for (label, n) in counts {
                    let Some(limit) = super::LIMIT_LABELS
                        .iter()
                        .find(|l| l.as_bytes() == label.as_slice())
                    else {
                        continue;
                    };
                    rows.entry(limit).or_default().count = n;
                }
                for (limit, r) in rows.iter() {
                    self.note_rows(limit, r.count);
                }
            }
            Err(e) => warn!(error = %e, "counting the shared rate buckets failed"),
        }
    }

    /// How many buckets this node knows `limit` keeps (the last count, plus those it
    /// started since).
    pub fn known_rows(&self, limit: &str) -> u64 {
        let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        rows.get(limit).map_or(0, |r| r.count)
    }

    fn at_cap(&self, limit: &'static str) -> bool {
        self.known_rows(limit) >= self.max_keys
    }

    fn started(&self, limit: &'static str) {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        let r = rows.entry(limit).or_default();
        r.count = r.count.saturating_add(1);
        self.note_rows(limit, r.count);
    }

    fn note_rows(&self, limit: &str, n: u64) {
        self.metrics
            .limit_keys
            .set(limit, i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// For a take refused at the cap: prunes the buckets full again and, if that dropped any,
    /// counts again (unless this node did so for `limit` within [`PRUNE_AT_CAP_EVERY`]);
    /// whether `limit` is now under its cap. A prune that dropped nothing leaves the count as
    /// it was: a flood at the cap, whose buckets are all still short of tokens, costs one
    /// prune a second (served by the index on `full_at`), not a count of the cap's rows
    /// (BENCHMARKS.md). Rows another node pruned show at the next round's count.
    fn made_room(&self, limit: &'static str) -> bool {
        {
            let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
            let r = rows.entry(limit).or_default();
            if r.pruned_at_cap
                .is_some_and(|at| at.elapsed() < PRUNE_AT_CAP_EVERY)
            {
                return false;
            }
            r.pruned_at_cap = Some(Instant::now());
        }
        match self.engine.prune_rate_buckets() {
            Ok(0) => {}
            Ok(_) => self.count(),
            Err(e) => warn!(error = %e, "pruning the shared rate buckets failed"),
        }
        !self.at_cap(limit)
    }

    /// `op` on the bucket `key` (already the full key): the engine's answer, or `None` if it
    /// keeps no shared buckets or failed (logged).
    fn engine_op(
        &self,
        limit: &'static str,
        key: &[u8],
        rate: BucketRate,
        op: BucketOp,
    ) -> Option<BucketAnswer> {
        match self.engine.rate_bucket(key, rate, op) {
            Ok(answer) => answer,
            Err(e) => {
                warn!(limit, error = %e, "shared rate bucket unavailable; counting on this node");
                None
            }
        }
    }

    /// `op` on the bucket `key` (already the full key) as a refusal or not; a refusal is the
    /// cap's if `at_cap` (the bucket is the limit's overflow bucket).
    fn answer(
        &self,
        limit: &'static str,
        rate: BucketRate,
        key: &[u8],
        op: BucketOp,
        at_cap: bool,
    ) -> Option<Result<(), Limited>> {
        let answer = self.engine_op(limit, key, rate, op)?;
        Some(self.settle(limit, answer, at_cap))
    }

    /// The engine's `answer` for `limit` as a refusal or not (a refusal is the cap's if
    /// `at_cap`); a started bucket is counted.
    fn settle(
        &self,
        limit: &'static str,
        answer: BucketAnswer,
        at_cap: bool,
    ) -> Result<(), Limited> {
        match answer {
            BucketAnswer::Started => {
                self.started(limit);
                Ok(())
            }
            // `Unknown` only answers an op on known keys, which the caller has handled.
            BucketAnswer::Allowed | BucketAnswer::Unknown => Ok(()),
            BucketAnswer::Empty { retry_after } if at_cap => {
                Err(Limited::at_cap(limit, retry_after))
            }
            BucketAnswer::Empty { retry_after } => Err(Limited::new(limit, retry_after)),
        }
    }
}
