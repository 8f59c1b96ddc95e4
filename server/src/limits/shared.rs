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
//! ([`SharedBuckets::prune`], every [`PRUNE_EVERY`]), never on an event's path.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use super::{Limited, Rate};
use crate::store::{BucketAnswer, BucketOp, BucketRate, ConversationLog};

/// How often a node drops the shared buckets that are full again.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The shared engine's buckets (see the module docs).
pub struct SharedBuckets {
    engine: Arc<dyn ConversationLog>,
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
    /// The buckets `engine` keeps.
    pub fn new(engine: Arc<dyn ConversationLog>) -> Self {
        Self { engine }
    }

    /// `op` on `limit`'s bucket `key` of `rate`: `Some` with the engine's answer, `None` if
    /// the engine keeps no shared buckets or failed (the caller counts in its own).
    pub fn apply(
        &self,
        limit: &'static str,
        rate: Rate,
        key: &[u8],
        op: BucketOp,
    ) -> Option<Result<(), Limited>> {
        let rate = BucketRate::new(rate.per_minute, rate.burst);
        match self.engine.rate_bucket(&bucket_key(limit, key), rate, op) {
            Ok(answer) => answer.map(|a| match a {
                BucketAnswer::Allowed => Ok(()),
                BucketAnswer::Empty { retry_after } => Err(Limited { limit, retry_after }),
            }),
            Err(e) => {
                warn!(limit, error = %e, "shared rate bucket unavailable; counting on this node");
                None
            }
        }
    }

    /// Drops the buckets that are full again (the node's periodic chores call it).
    pub fn prune(&self) {
        if let Err(e) = self.engine.prune_rate_buckets() {
            warn!(error = %e, "pruning the shared rate buckets failed");
        }
    }
}
