//! Abuse limits for a relay open to the public: token buckets by source address and by
//! account, and the refusals they give.
//!
//! - [`bucket`]: [`Bucket`], [`KeyedBuckets`] (one per key, bounded in memory) and
//!   [`SharedBucket`] (one overall), with the wait until the next token ([`Limited`]);
//! - [`open`]: [`OpenConnections`], the WebSocket connections each source holds open at once
//!   (a count, beside the rate of upgrades);
//! - [`quota`]: [`OpenRecord`], the conversations a customer (with one org) or a visitor
//!   opened, one stored value per subject, so that the open-conversations quota's check and
//!   record are one conditional write, also across the nodes of a cluster;
//! - [`sender`]: [`SenderBuckets`], the message buckets a conversation keeps in its own state
//!   (one per sender), so the send path's limit takes no relay-wide lock;
//! - [`shared`]: [`SharedBuckets`], the registration, failed-authentication and open buckets
//!   kept by the engine a cluster shares, so N nodes allow what one does;
//! - [`source`]: where a connection comes from (the peer, or `X-Forwarded-For` from a
//!   trusted proxy) and the key it is counted under (IPv4 address, IPv6 /64).
//!
//! [`Guard`] holds every bucket the relay keeps, built from the [`Limits`] of the
//! configuration; a refusal is counted in `sealdesk_limited_total{reason=…}` (one label per
//! limit, [`LIMIT_LABELS`]), and one by a keyed limit's cap on keys also in
//! `sealdesk_limited_at_cap_total{reason=…}`; `sealdesk_limit_keys{reason=…}` is the keys each
//! keyed limit tracks ([`KEYED_LIMIT_LABELS`]), beside its cap, `sealdesk_limit_keys_max`.
//! Nothing here knows the protocol: accounts and conversations are keyed by their bytes.
//!
//! # Failed authentications at the cap
//!
//! A failed authentication is charged after it failed, so refusing its take at the cap would
//! leave it uncounted, and a source with a new address each time would fail without limit.
//! While that limit's table is at its cap, the sources without a bucket of their own share one
//! overflow bucket of the same rate instead: each failure of theirs is charged to it, and once
//! it is empty every new source is refused before the challenge (`rate_limited`) until it
//! refills. The sources with a bucket are answered by their own, and once buckets refill and
//! are forgotten, new sources get their own again. In a cluster the overflow bucket is one more
//! shared row ([`shared`]).

pub mod bucket;
pub mod bytes;
pub mod open;
pub mod quota;
pub mod sender;
pub mod shared;
pub mod source;

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use bucket::{Bucket, KeyedBuckets, Limited, Rate, SharedBucket};
pub use open::{OpenConnections, OpenSlot};
pub use quota::{OpenRecord, RecordLocks};
pub use sender::SenderBuckets;
pub use shared::{Keys, SharedBuckets};
pub use source::{source_key, source_of};

use crate::config::Limits;
use crate::metrics::Metrics;
use crate::store::{BucketOp, ConversationLog};

/// Connection attempts (WebSocket upgrades) per source address.
pub const SOURCE_CONNECTIONS: &str = "source_connections";
/// WebSocket connections one source address holds open at once.
pub const SOURCE_OPEN_CONNECTIONS: &str = "source_open_connections";
/// Registrations per source address.
pub const SOURCE_REGISTRATIONS: &str = "source_registrations";
/// Registrations overall.
pub const REGISTRATIONS: &str = "registrations";
/// Failed authentications per source address.
pub const SOURCE_AUTH_FAILURES: &str = "source_auth_failures";
/// Conversations a customer has open with one org.
pub const OPEN_CONVERSATIONS: &str = "open_conversations";
/// Conversation opens per customer.
pub const CONVERSATION_OPENS: &str = "conversation_opens";
/// Messages per member per conversation.
pub const CONVERSATION_MESSAGES: &str = "conversation_messages";
/// Attachment bytes stored by one account.
pub const STORED_BYTES_ACCOUNT: &str = "stored_bytes_account";
/// Attachment bytes stored in one org's conversations.
pub const STORED_BYTES_ORG: &str = "stored_bytes_org";

/// The limits kept per key (source address, customer), each capped at `max_tracked_sources`
/// keys: the labels of `sealdesk_limited_at_cap_total` and `sealdesk_limit_keys`.
pub const KEYED_LIMIT_LABELS: &[&str] = &[
    SOURCE_CONNECTIONS,
    SOURCE_REGISTRATIONS,
    SOURCE_AUTH_FAILURES,
    CONVERSATION_OPENS,
];

/// Every limit's metrics label.
pub const LIMIT_LABELS: &[&str] = &[
    SOURCE_CONNECTIONS,
    SOURCE_OPEN_CONNECTIONS,
    SOURCE_REGISTRATIONS,
    REGISTRATIONS,
    SOURCE_AUTH_FAILURES,
    OPEN_CONVERSATIONS,
    CONVERSATION_OPENS,
    CONVERSATION_MESSAGES,
    STORED_BYTES_ACCOUNT,
    STORED_BYTES_ORG,
];

/// What a refusal says to the client about `limit`: what was limited, in words.
pub fn describe(limit: &str) -> &'static str {
    match limit {
        SOURCE_CONNECTIONS => "too many connections from your address",
        SOURCE_OPEN_CONNECTIONS => "too many open connections from your address",
        SOURCE_REGISTRATIONS => "too many registrations from your address",
        REGISTRATIONS => "the relay is taking too many registrations right now",
        SOURCE_AUTH_FAILURES => "too many failed authentications from your address",
        OPEN_CONVERSATIONS => "too many open conversations with this org",
        CONVERSATION_OPENS => "too many conversations opened by this account",
        CONVERSATION_MESSAGES => "too many messages from you in this conversation",
        STORED_BYTES_ACCOUNT => "this account has stored too many attachment bytes",
        STORED_BYTES_ORG => "this org's conversations have stored too many attachment bytes",
        _ => "limit reached",
    }
}

/// What a refusal by the cap on `limit`'s keys says to the client: that the relay tracks too
/// many others right now (the client's own address or account did nothing wrong).
pub fn describe_at_cap(limit: &str) -> &'static str {
    match limit {
        SOURCE_CONNECTIONS => "too many addresses are connecting right now",
        SOURCE_REGISTRATIONS => "too many addresses are registering right now",
        SOURCE_AUTH_FAILURES => "too many failed authentications from new addresses right now",
        CONVERSATION_OPENS => "too many accounts are opening conversations right now",
        _ => describe(limit),
    }
}

/// Connection attempts per source: the listener's limit (see [`crate::net`]).
#[derive(Debug)]
pub struct ConnectionLimit {
    buckets: KeyedBuckets<IpAddr>,
    metrics: Arc<Metrics>,
}

impl ConnectionLimit {
    /// From the configured limits.
    pub fn new(limits: &Limits, metrics: Arc<Metrics>) -> Self {
        metrics
            .limit_keys_max
            .set(i64::try_from(limits.max_tracked_sources).unwrap_or(i64::MAX));
        Self {
            buckets: KeyedBuckets::new(
                SOURCE_CONNECTIONS,
                Rate {
                    per_minute: limits.source_connections_per_minute,
                    burst: limits.source_connection_burst,
                },
                limits.max_tracked_sources,
            ),
            metrics,
        }
    }

    /// Counts a connection attempt from `source`.
    ///
    /// # Errors
    /// [`Limited`] (and counted) if the source is over its rate.
    pub fn admit(&self, source: IpAddr) -> Result<(), Limited> {
        let r = self.buckets.take(&source_key(source), Instant::now());
        note_keys(&self.metrics, &self.buckets);
        r.inspect_err(|l| count_refusal(&self.metrics, l))
    }
}

/// The protocol layer's buckets: registrations, failed authentications, conversation opens
/// and messages.
#[derive(Debug)]
pub struct Guard {
    source_registrations: KeyedBuckets<IpAddr>,
    registrations: SharedBucket,
    auth_failures: KeyedBuckets<IpAddr>,
    opens: KeyedBuckets<[u8; 32]>,
    /// Messages per member per conversation: the buckets themselves are in each
    /// conversation's state ([`SenderBuckets`]), under the lock its append holds.
    message_rate: Rate,
    /// Most conversations a customer may have open with one org.
    pub open_conversations: usize,
    /// A conversation with no item for this long no longer counts as open.
    pub open_idle: Duration,
    /// The attachment size limit and the stored-bytes quotas.
    pub bytes: bytes::ByteQuotas,
    /// This node's locks over the open-conversation records ([`OpenRecord`]).
    pub open_records: RecordLocks,
    /// In a cluster, the engine's buckets for registrations, failed authentications and
    /// opens (the in-memory ones above then only stand in when the database fails).
    shared: Option<SharedBuckets>,
    /// Most buckets each keyed limit keeps, in memory and (cluster-wide) in the engine.
    max_shared_keys: usize,
    metrics: Arc<Metrics>,
}

/// Counts a refusal: under its limit, and under the cap's count too if the cap refused.
fn count_refusal(metrics: &Metrics, l: &Limited) {
    metrics.limited.inc(l.limit);
    if l.at_cap {
        metrics.limited_at_cap.inc(l.limit);
    }
}

/// Sets the gauge of the keys `buckets` tracks.
fn note_keys<K: Hash + Eq + Clone>(metrics: &Metrics, buckets: &KeyedBuckets<K>) {
    let (limit, _) = buckets.limit();
    metrics
        .limit_keys
        .set(limit, i64::try_from(buckets.len()).unwrap_or(i64::MAX));
}

impl Guard {
    /// From the configured limits.
    pub fn new(limits: &Limits, metrics: Arc<Metrics>) -> Self {
        let now = Instant::now();
        let keys = limits.max_tracked_sources;
        metrics
            .limit_keys_max
            .set(i64::try_from(keys).unwrap_or(i64::MAX));
        Self {
            source_registrations: KeyedBuckets::new(
                SOURCE_REGISTRATIONS,
                Rate {
                    per_minute: limits.source_registrations_per_minute,
                    burst: limits.source_registration_burst,
                },
                keys,
            ),
            registrations: SharedBucket::new(
                REGISTRATIONS,
                Rate {
                    per_minute: limits.registrations_per_minute,
                    burst: limits.registration_burst,
                },
                now,
            ),
            // Charged after the failure: at the cap, new sources share an overflow bucket
            // (the module docs).
            auth_failures: KeyedBuckets::new(
                SOURCE_AUTH_FAILURES,
                Rate {
                    per_minute: limits.source_auth_failures_per_minute,
                    burst: limits.source_auth_failure_burst,
                },
                keys,
            )
            .with_overflow(now),
            opens: KeyedBuckets::new(
                CONVERSATION_OPENS,
                Rate {
                    per_minute: limits.conversation_opens_per_hour.div_ceil(60).max(1),
                    burst: limits.conversation_opens_per_hour,
                },
                keys,
            ),
            message_rate: Rate {
                per_minute: limits.conversation_messages_per_minute,
                burst: limits.conversation_message_burst,
            },
            open_conversations: limits.open_conversations_per_org,
            open_idle: Duration::from_secs(limits.open_conversation_idle_secs),
            bytes: bytes::ByteQuotas::new(limits),
            open_records: RecordLocks::default(),
            shared: None,
            max_shared_keys: keys,
            metrics,
        }
    }

    /// Keeps the registration, failed-authentication and open buckets in `engine` if other
    /// relay nodes share it (see [`shared`]); on an engine only this node uses they stay in
    /// memory.
    pub fn share(&mut self, engine: Arc<dyn ConversationLog>) {
        if engine.shared() {
            self.shared = Some(SharedBuckets::new(
                engine,
                self.max_shared_keys,
                Arc::clone(&self.metrics),
            ));
        }
    }

    /// Drops the shared buckets that are full again and counts the rest, if the engine keeps
    /// them (a cluster node's periodic chores call it every [`shared::PRUNE_EVERY`]).
    pub fn prune_shared(&self) {
        if let Some(shared) = &self.shared {
            shared.prune();
        }
    }

    /// Counts each limit's shared buckets, if the engine keeps them (a cluster node's
    /// periodic chores call it every round, for the cap on keys, [`shared`]).
    pub fn count_shared(&self) {
        if let Some(shared) = &self.shared {
            shared.count();
        }
    }

    /// `op` on `key`'s bucket of `buckets`: the shared engine's (`key_bytes` there) if there
    /// is one, else this node's (whose keys then are the gauge's).
    fn keyed<K: Hash + Eq + Clone>(
        &self,
        buckets: &KeyedBuckets<K>,
        key: &K,
        key_bytes: &[u8],
        op: BucketOp,
        now: Instant,
    ) -> Result<(), Limited> {
        let (limit, rate) = buckets.limit();
        // The shared table keeps the same rule at the cap as this node's.
        let keys = if buckets.has_overflow() {
            Keys::Overflow
        } else {
            Keys::Capped
        };
        if let Some(r) = self
            .shared
            .as_ref()
            .and_then(|s| s.apply(limit, rate, key_bytes, op, keys))
        {
            return r;
        }
        let r = match op {
            BucketOp::Take | BucketOp::TakeKnown => buckets.take(key, now),
            BucketOp::Check | BucketOp::CheckKnown => buckets.check(key, now),
            BucketOp::Refund => {
                buckets.refund(key);
                Ok(())
            }
        };
        if self.shared.is_none() {
            note_keys(&self.metrics, buckets);
        }
        r
    }

    /// `op` on the overall `bucket`: the shared engine's if there is one, else this node's.
    fn overall(&self, bucket: &SharedBucket, op: BucketOp, now: Instant) -> Result<(), Limited> {
        let (limit, rate) = bucket.limit();
        if let Some(r) = self
            .shared
            .as_ref()
            .and_then(|s| s.apply(limit, rate, b"", op, Keys::One))
        {
            return r;
        }
        match op {
            BucketOp::Take | BucketOp::TakeKnown => bucket.take(now),
            BucketOp::Check | BucketOp::CheckKnown => bucket.check(now),
            BucketOp::Refund => {
                bucket.refund();
                Ok(())
            }
        }
    }

    fn counted(&self, r: Result<(), Limited>) -> Result<(), Limited> {
        r.inspect_err(|l| count_refusal(&self.metrics, l))
    }

    /// A registration from `source`: one token from the source's bucket and one from the
    /// relay's overall bucket (the source's is given back if the overall one is empty).
    ///
    /// # Errors
    /// [`Limited`] naming the bucket that was empty.
    pub fn registration(&self, source: IpAddr) -> Result<(), Limited> {
        let now = Instant::now();
        let key = source_key(source);
        let bytes = shared::ip_bytes(key);
        let regs = &self.source_registrations;
        self.counted(self.keyed(regs, &key, &bytes, BucketOp::Take, now))?;
        if let Err(l) = self.overall(&self.registrations, BucketOp::Take, now) {
            let _ = self.keyed(regs, &key, &bytes, BucketOp::Refund, now);
            return self.counted(Err(l));
        }
        Ok(())
    }

    /// Gives back a registration's tokens when nothing was registered (the card was already
    /// registered, or the request was refused for another reason).
    pub fn registration_not_made(&self, source: IpAddr) {
        let now = Instant::now();
        let key = source_key(source);
        let bytes = shared::ip_bytes(key);
        let _ = self.keyed(
            &self.source_registrations,
            &key,
            &bytes,
            BucketOp::Refund,
            now,
        );
        let _ = self.overall(&self.registrations, BucketOp::Refund, now);
    }

    /// Whether `source` may try to authenticate: it has failures left.
    ///
    /// # Errors
    /// [`Limited`] if it has used them up.
    pub fn may_authenticate(&self, source: IpAddr) -> Result<(), Limited> {
        self.auth_failure_bucket(source, BucketOp::Check)
    }

    /// Records a failed authentication from `source`: in its own bucket, or at the cap, if
    /// it has none, in the overflow bucket the sources without one share (the module docs).
    pub fn auth_failed(&self, source: IpAddr) {
        let _ = self.auth_failure_bucket(source, BucketOp::Take);
    }

    fn auth_failure_bucket(&self, source: IpAddr, op: BucketOp) -> Result<(), Limited> {
        let key = source_key(source);
        let bytes = shared::ip_bytes(key);
        let r = self.keyed(&self.auth_failures, &key, &bytes, op, Instant::now());
        if op == BucketOp::Check {
            return self.counted(r);
        }
        r
    }

    /// A conversation open by the customer whose signing key is `customer`.
    ///
    /// # Errors
    /// [`Limited`] if the customer has opened too many this hour.
    pub fn conversation_open(&self, customer: [u8; 32]) -> Result<(), Limited> {
        let taken = self.keyed(
            &self.opens,
            &customer,
            &customer,
            BucketOp::Take,
            Instant::now(),
        );
        self.counted(taken)
    }

    /// A message from the member whose signing key is `sender` (the caller, so nobody can use
    /// up another member's messages), against `buckets`, the conversation's own (taken under
    /// the conversation's lock, after the caller was found to be involved in it).
    ///
    /// # Errors
    /// [`Limited`] if the sender is over its message rate in the conversation.
    pub fn message(&self, buckets: &mut SenderBuckets, sender: &[u8; 32]) -> Result<(), Limited> {
        let taken = buckets
            .take(self.message_rate, sender, Instant::now())
            .map_err(|retry_after| Limited::new(CONVERSATION_MESSAGES, retry_after));
        self.counted(taken)
    }

    /// Counts a refusal that was decided elsewhere (a quota rather than a bucket).
    pub fn refused(&self, limit: &'static str) {
        self.metrics.limited.inc(limit);
    }

    /// The warning ahead of the open-conversations quota: `Some((open, most))` once a
    /// customer's `open` conversations with one org (the new one included) reach
    /// [`OPEN_QUOTA_WARN_PERCENT`] of the most allowed.
    pub fn open_quota_warning(&self, open: usize) -> Option<(usize, usize)> {
        let most = self.open_conversations;
        (most > 0 && open.saturating_mul(100) >= most.saturating_mul(OPEN_QUOTA_WARN_PERCENT))
            .then_some((open, most))
    }
}

/// The share of the open-conversations quota (in percent) from which an open carries a
/// warning.
pub const OPEN_QUOTA_WARN_PERCENT: usize = 80;

#[cfg(test)]
mod warning_tests {
    use super::*;

    #[test]
    fn the_open_quota_warning_starts_at_eighty_percent() {
        let limits = Limits {
            open_conversations_per_org: 10,
            ..Limits::default()
        };
        let guard = Guard::new(&limits, Arc::new(Metrics::default()));
        assert_eq!(guard.open_quota_warning(7), None);
        assert_eq!(guard.open_quota_warning(8), Some((8, 10)));
        assert_eq!(guard.open_quota_warning(10), Some((10, 10)));
    }
}
