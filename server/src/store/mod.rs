//! Storage: the [`Store`] trait over named collections and the [`ConversationLog`] over it
//! (the relay's hot path, in `log`), with a sled engine
//! ([`SledStore`], in `sled_engine`), an in-memory one ([`MemoryStore`], in `memory`) and a
//! timing wrapper ([`MeteredStore`], in `metered`); and a PostgreSQL engine that a cluster of
//! relays shares ([`PgStore`], in `postgres`).
//!
//! The relay stores opaque bytes. Collections are sorted maps from byte keys to byte values; keys
//! that are sequence numbers are big-endian `u64` ([`seq_key`]) so that byte order is numeric
//! order and `range_from`/`last` walk them in sequence.
//!
//! **Architecture Invariant:** no sled type appears outside this module. Another engine only has
//! to implement [`Store`] and [`ConversationLog`] (whose default methods keep the log in the
//! key-value collections).
//!
//! Durability: writes become visible at once but are durable only after [`Store::flush`]; the
//! relay batches flushes through [`GroupCommit`](crate::commit::GroupCommit).

mod import;
mod log;
mod memory;
mod metered;
mod postgres;
mod rate_bucket;
mod sled_engine;

use crate::error::Result;

pub use import::{LastSeqs, LogRow, PgImport};
pub use log::{ConversationLog, MessageAppend, Refused};
pub use memory::MemoryStore;
pub use metered::MeteredStore;
pub use postgres::wake::listen as listen_for_wakeups;
pub use postgres::{Counts as WakeCounts, PgStore, SCHEMA_VERSION, WAKE_CHANNEL, Wake};
pub use rate_bucket::{BucketAnswer, BucketOp, BucketRate};
pub use sled_engine::SledStore;

/// A list of key/value pairs, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The relay's named collections, one sorted key space each.
///
/// The list will grow; match on it with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Collection {
    /// Published identity cards, by identity key.
    Cards,
    /// Human-readable names mapped to identity keys.
    Names,
    /// Signed org policies and their versions.
    Policies,
    /// Agent certificates, by org and agent name.
    Certificates,
    /// Conversation records: parties, readers of each epoch, and settings.
    Conversations,
    /// Epoch records of each conversation (membership and key changes).
    Epochs,
    /// Message ciphertexts, keyed by conversation and relay-assigned sequence number.
    Messages,
    /// Duplicate keys that make a write happen once (one record per epoch; the per-message
    /// counters of earlier builds).
    MessageKeys,
    /// Delivery receipts: the highest sequence number each member has received.
    Deliveries,
    /// Escrow release requests and their state.
    Releases,
    /// Dispute tickets and their arbiters' decisions.
    Tickets,
    /// Leaves of the append-only audit log.
    AuditLeaves,
    /// Relay metadata: the relay's identity, the consent index, release markers, witnesses'
    /// cosignatures (see the service's `keys` module).
    Meta,
    /// Attachments: each upload's record and its ciphertext chunks (the service's `keys`
    /// module gives the layout).
    Attachments,
    /// An index of [`Collection::Certificates`] by agent name: agent ‖ 0 ‖ org for every
    /// certificate stored, value empty. A hint, written with (never after) the certificate.
    AgentOrgs,
    /// An index of [`Collection::Policies`] by master key: key ‖ org for every policy stored,
    /// value empty. A hint, written with (never after) the policy.
    MasterOrgs,
}

impl Collection {
    /// Every collection, in a fixed order.
    pub const ALL: [Collection; 16] = [
        Collection::Cards,
        Collection::Names,
        Collection::Policies,
        Collection::Certificates,
        Collection::Conversations,
        Collection::Epochs,
        Collection::Messages,
        Collection::MessageKeys,
        Collection::Deliveries,
        Collection::Releases,
        Collection::Tickets,
        Collection::AuditLeaves,
        Collection::Meta,
        Collection::Attachments,
        Collection::AgentOrgs,
        Collection::MasterOrgs,
    ];

    /// The collection's stable on-disk name. Never rename one: it is the sled tree's name.
    /// Names once used and retired, never to be given to another collection (stores made by
    /// earlier builds may hold them, empty): `cursors`, `approvals`, `revocations`, `notices`,
    /// `queue`.
    pub fn name(self) -> &'static str {
        match self {
            Collection::Cards => "cards",
            Collection::Names => "names",
            Collection::Policies => "policies",
            Collection::Certificates => "certificates",
            Collection::Conversations => "conversations",
            Collection::Epochs => "epochs",
            Collection::Messages => "messages",
            Collection::MessageKeys => "message_keys",
            Collection::Deliveries => "deliveries",
            Collection::Releases => "releases",
            Collection::Tickets => "tickets",
            Collection::AuditLeaves => "audit_leaves",
            Collection::Meta => "meta",
            Collection::Attachments => "attachments",
            Collection::AgentOrgs => "agent_orgs",
            Collection::MasterOrgs => "master_orgs",
        }
    }

    /// Position in [`Collection::ALL`].
    fn index(self) -> usize {
        // `ALL` lists every variant, so the search always succeeds; 0 is never reached.
        Collection::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

/// The big-endian encoding of a sequence number: byte order equals numeric order.
pub fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// `prefix` followed by the big-endian `seq`, e.g. a conversation id then a message number.
pub fn prefixed_seq_key(prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Decodes the big-endian `u64` in the last 8 bytes of `key`, if it has that many.
pub fn seq_from_key(key: &[u8]) -> Option<u64> {
    let tail = key.len().checked_sub(8).map(|start| &key[start..])?;
    tail.try_into().ok().map(u64::from_be_bytes)
}

/// One write inside a [`Batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Set `key` to `value`.
    Put {
        /// Target collection.
        collection: Collection,
        /// Key.
        key: Vec<u8>,
        /// New value.
        value: Vec<u8>,
    },
    /// Remove `key` (no effect if absent).
    Delete {
        /// Target collection.
        collection: Collection,
        /// Key.
        key: Vec<u8>,
    },
    /// Set `key` to `value` only if it is absent; if it is present the whole batch is refused.
    InsertIfAbsent {
        /// Target collection.
        collection: Collection,
        /// Key.
        key: Vec<u8>,
        /// New value.
        value: Vec<u8>,
    },
    /// Set `key` to `value` only if it holds `old` (what the writer read); if it holds anything
    /// else (another writer changed it, on a shared engine another relay node) the whole batch
    /// is refused.
    ReplaceIf {
        /// Target collection (not [`Collection::Messages`]).
        collection: Collection,
        /// Key.
        key: Vec<u8>,
        /// The value the writer read.
        old: Vec<u8>,
        /// New value.
        value: Vec<u8>,
    },
}

/// Writes applied all together or not at all by [`Store::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<Op>,
    ordered: bool,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty *ordered* batch: its conditional inserts are still all-or-nothing and it is
    /// still invisible to other writers of the same keys only if the caller serialises them,
    /// but across a crash any *prefix* of its operations may survive. In exchange an engine may
    /// skip its cross-collection transaction (for sled 0.34 that saves a synchronous log write
    /// per batch, most of the cost of a message). Use it only where every prefix a crash can
    /// leave is acceptable. The relay's message append uses it with the item first and its
    /// duplicate key second, and rebuilds what a crash can take from the items at start-up.
    pub fn ordered() -> Self {
        Self {
            ops: Vec::new(),
            ordered: true,
        }
    }

    /// Whether this is an [ordered](Self::ordered) batch.
    pub fn is_ordered(&self) -> bool {
        self.ordered
    }

    /// Adds a put.
    pub fn put(&mut self, collection: Collection, key: &[u8], value: &[u8]) -> &mut Self {
        self.ops.push(Op::Put {
            collection,
            key: key.to_vec(),
            value: value.to_vec(),
        });
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, collection: Collection, key: &[u8]) -> &mut Self {
        self.ops.push(Op::Delete {
            collection,
            key: key.to_vec(),
        });
        self
    }

    /// Adds a conditional insert: the batch applies only if `key` is absent (checked against
    /// the state before the batch, so an earlier op in the same batch does not count).
    pub fn insert_if_absent(
        &mut self,
        collection: Collection,
        key: &[u8],
        value: &[u8],
    ) -> &mut Self {
        self.ops.push(Op::InsertIfAbsent {
            collection,
            key: key.to_vec(),
            value: value.to_vec(),
        });
        self
    }

    /// Adds a conditional replace: the batch applies only if `key` holds `old` (checked
    /// against the state before the batch, like [`Self::insert_if_absent`]).
    pub fn replace_if(
        &mut self,
        collection: Collection,
        key: &[u8],
        old: &[u8],
        value: &[u8],
    ) -> &mut Self {
        self.ops.push(Op::ReplaceIf {
            collection,
            key: key.to_vec(),
            old: old.to_vec(),
            value: value.to_vec(),
        });
        self
    }

    /// A batch of one put.
    pub fn of_put(collection: Collection, key: &[u8], value: &[u8]) -> Self {
        let mut b = Self::new();
        b.put(collection, key, value);
        b
    }

    /// Adds `other`'s operations after these.
    pub fn extend(&mut self, other: Batch) -> &mut Self {
        self.ops.extend(other.ops);
        self
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A storage engine: sorted byte maps per [`Collection`], atomic batches, explicit durability.
///
/// Implementations are blocking; call them from `spawn_blocking` or accept short blocking on
/// the runtime (sled reads and buffered writes are usually microseconds; `flush` is not — it
/// goes through [`GroupCommit`](crate::commit::GroupCommit)).
pub trait Store: Send + Sync {
    /// The value under `key`.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn get(&self, collection: Collection, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Sets `key` to `value`, replacing any previous value.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn put(&self, collection: Collection, key: &[u8], value: &[u8]) -> Result<()>;

    /// Removes `key`; returns whether it was present.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn delete(&self, collection: Collection, key: &[u8]) -> Result<bool>;

    /// All entries whose key starts with `prefix`, in key order. Use
    /// [`range_from`](Self::range_from) or [`scan_prefix_from`](Self::scan_prefix_from) for
    /// key spaces that can grow without bound.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn scan_prefix(&self, collection: Collection, prefix: &[u8]) -> Result<Entries>;

    /// Up to `limit` entries with key `>= start`, in key order.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn range_from(&self, collection: Collection, start: &[u8], limit: usize) -> Result<Entries>;

    /// Up to `limit` entries whose key starts with `prefix` and is `>= start`, in key order —
    /// e.g. the messages of one conversation from a cursor on.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn scan_prefix_from(
        &self,
        collection: Collection,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Entries>;

    /// The entry with the greatest key starting with `prefix` (e.g. a conversation's latest
    /// message), if any.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn last(&self, collection: Collection, prefix: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>>;

    /// Applies every op of `batch` atomically, across collections. Returns `false`, writing
    /// nothing, if an [`Op::InsertIfAbsent`] found its key present; `true` otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails; nothing is written then either.
    fn apply(&self, batch: Batch) -> Result<bool>;

    /// Sets `key` to `value` only if `key` is absent, atomically (compare-and-swap from
    /// nothing). Returns whether it was inserted; e.g. refuses a duplicate message counter.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn insert_if_absent(&self, collection: Collection, key: &[u8], value: &[u8]) -> Result<bool>;

    /// Blocks until every write made before the call is durable.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine cannot write to disk.
    fn flush(&self) -> Result<()>;
}

/// The smallest key greater than every key starting with `prefix`, or `None` if there is none
/// (empty prefix or all `0xff`).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Arc;

    use super::*;
    use crate::metrics::Metrics;

    use Collection::{Deliveries, Messages, Meta};

    /// A SIGKILL while sled writes a snapshot leaves `snap.<lsn>.generating`, which sled 0.34
    /// would then read first and refuse as corrupt. The store opens anyway, with its data.
    #[test]
    fn an_unfinished_snapshot_left_by_a_crash_does_not_stop_the_store() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            store.put(Messages, b"kept", b"value").unwrap();
            store.flush().unwrap();
        }
        // Partial: bytes with no valid checksum, under a name that sorts after every snapshot.
        let partial = dir.path().join("snap.7FFFFFFFFFFFFFFF.generating");
        std::fs::write(&partial, [0xA5u8; 64]).unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            store.get(Messages, b"kept").unwrap(),
            Some(b"value".to_vec())
        );
        assert!(!partial.exists(), "the unfinished snapshot is removed");
    }

    /// A second store on a directory in use fails with a clear error after a short wait, and
    /// leaves the running one's files alone (its snapshot in progress has the name a crash
    /// leaves behind).
    #[test]
    fn a_directory_in_use_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let running = SledStore::open(dir.path()).unwrap();
        running.put(Messages, b"kept", b"value").unwrap();
        let in_progress = dir.path().join("snap.7FFFFFFFFFFFFFFF.generating");
        std::fs::write(&in_progress, [0xA5u8; 64]).unwrap();
        let err = SledStore::open(dir.path()).expect_err("the directory is in use");
        assert!(err.to_string().contains("another relay is using"), "{err}");
        assert!(
            in_progress.exists(),
            "the running store's file was not touched"
        );
        assert_eq!(
            running.get(Messages, b"kept").unwrap(),
            Some(b"value".to_vec())
        );
    }

    /// Runs every operation against `store`; shared by all engines.
    fn exercise(store: &dyn Store) {
        // get / put / delete
        assert_eq!(store.get(Meta, b"k").unwrap(), None);
        store.put(Meta, b"k", b"v1").unwrap();
        assert_eq!(store.get(Meta, b"k").unwrap(), Some(b"v1".to_vec()));
        store.put(Meta, b"k", b"v2").unwrap();
        assert_eq!(store.get(Meta, b"k").unwrap(), Some(b"v2".to_vec()));
        assert_eq!(
            store.get(Deliveries, b"k").unwrap(),
            None,
            "collections are separate"
        );
        assert!(store.delete(Meta, b"k").unwrap());
        assert!(!store.delete(Meta, b"k").unwrap());
        assert_eq!(store.get(Meta, b"k").unwrap(), None);

        // sequence keys under two prefixes, inserted out of order
        for seq in [3u64, 1, 256, 2, 255] {
            store
                .put(
                    Messages,
                    &prefixed_seq_key(b"convA", seq),
                    &seq.to_le_bytes(),
                )
                .unwrap();
        }
        store
            .put(Messages, &prefixed_seq_key(b"convB", 1), b"b1")
            .unwrap();
        store.put(Messages, b"conv", b"shorter").unwrap();

        let a = store.scan_prefix(Messages, b"convA").unwrap();
        let seqs: Vec<u64> = a.iter().map(|(k, _)| seq_from_key(k).unwrap()).collect();
        assert_eq!(
            seqs,
            vec![1, 2, 3, 255, 256],
            "big-endian keys sort numerically"
        );
        assert_eq!(store.scan_prefix(Messages, b"convC").unwrap(), Vec::new());
        assert_eq!(store.scan_prefix(Messages, b"").unwrap().len(), 7);

        let from = store
            .range_from(Messages, &prefixed_seq_key(b"convA", 3), 3)
            .unwrap();
        let keys: Vec<Vec<u8>> = from.into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            vec![
                prefixed_seq_key(b"convA", 3),
                prefixed_seq_key(b"convA", 255),
                prefixed_seq_key(b"convA", 256)
            ]
        );
        let crossing = store
            .range_from(Messages, &prefixed_seq_key(b"convA", 256), 10)
            .unwrap();
        assert_eq!(crossing.len(), 2, "range_from does not stop at a prefix");
        assert_eq!(store.range_from(Messages, b"", 0).unwrap(), Vec::new());

        let within = store
            .scan_prefix_from(Messages, b"convA", &prefixed_seq_key(b"convA", 255), 10)
            .unwrap();
        assert_eq!(within.len(), 2, "scan_prefix_from stops at the prefix");
        let limited = store.scan_prefix_from(Messages, b"convA", b"", 2).unwrap();
        assert_eq!(
            seq_from_key(&limited[1].0),
            Some(2),
            "start below prefix clamps to prefix"
        );

        let (k, v) = store.last(Messages, b"convA").unwrap().unwrap();
        assert_eq!(seq_from_key(&k), Some(256));
        assert_eq!(v, 256u64.to_le_bytes().to_vec());
        assert_eq!(
            store.last(Messages, b"convB").unwrap().unwrap().1,
            b"b1".to_vec()
        );
        assert_eq!(store.last(Messages, b"convZ").unwrap(), None);
        assert_eq!(store.last(Deliveries, b"").unwrap(), None);
        store.put(Deliveries, &[0xff, 0xff], b"max").unwrap();
        assert_eq!(
            store.last(Deliveries, &[0xff]).unwrap().unwrap().1,
            b"max".to_vec()
        );

        // insert_if_absent
        assert!(store.insert_if_absent(Meta, b"counter", b"1").unwrap());
        assert!(!store.insert_if_absent(Meta, b"counter", b"2").unwrap());
        assert_eq!(store.get(Meta, b"counter").unwrap(), Some(b"1".to_vec()));

        // apply: atomic across collections
        let mut batch = Batch::new();
        batch
            .put(Meta, b"x", b"1")
            .put(Deliveries, b"alice", b"7")
            .delete(Meta, b"counter")
            .insert_if_absent(Messages, b"fresh", b"m");
        assert_eq!(batch.len(), 4);
        assert!(store.apply(batch).unwrap());
        assert_eq!(store.get(Meta, b"x").unwrap(), Some(b"1".to_vec()));
        assert_eq!(
            store.get(Deliveries, b"alice").unwrap(),
            Some(b"7".to_vec())
        );
        assert_eq!(store.get(Meta, b"counter").unwrap(), None);
        assert_eq!(store.get(Messages, b"fresh").unwrap(), Some(b"m".to_vec()));

        // a failed precondition writes nothing
        let mut batch = Batch::new();
        batch
            .put(Meta, b"y", b"1")
            .insert_if_absent(Messages, b"fresh", b"again");
        assert!(!store.apply(batch).unwrap());
        assert_eq!(store.get(Meta, b"y").unwrap(), None);
        assert_eq!(store.get(Messages, b"fresh").unwrap(), Some(b"m".to_vec()));
        assert!(store.apply(Batch::new()).unwrap());

        store.flush().unwrap();
    }

    /// A conditional replace applies only over the value read: a batch carrying one over a
    /// value another writer changed is refused whole (its other writes too), in a plain and
    /// in an ordered batch.
    fn replace_if_refuses_a_changed_value(store: &dyn Store) {
        store.put(Meta, b"ticket", b"open").unwrap();
        for ordered in [false, true] {
            let mut b = if ordered {
                Batch::ordered()
            } else {
                Batch::new()
            };
            b.insert_if_absent(Meta, b"leaf", b"close").replace_if(
                Meta,
                b"ticket",
                b"read-before-a-decision",
                b"closed",
            );
            assert!(!store.apply(b).unwrap(), "ordered: {ordered}");
            assert_eq!(store.get(Meta, b"ticket").unwrap(), Some(b"open".to_vec()));
            assert_eq!(
                store.get(Meta, b"leaf").unwrap(),
                None,
                "ordered: {ordered}"
            );
        }
        let mut b = Batch::new();
        b.replace_if(Meta, b"ticket", b"open", b"closed");
        assert!(store.apply(b).unwrap());
        assert_eq!(
            store.get(Meta, b"ticket").unwrap(),
            Some(b"closed".to_vec())
        );
        let mut b = Batch::new();
        b.replace_if(Meta, b"absent", b"anything", b"x");
        assert!(
            !store.apply(b).unwrap(),
            "nothing stored is not the value read"
        );
    }

    #[test]
    fn memory_and_sled_replace_if_refuses_a_changed_value() {
        replace_if_refuses_a_changed_value(&MemoryStore::new());
        let dir = tempfile::tempdir().unwrap();
        replace_if_refuses_a_changed_value(&SledStore::open(dir.path()).unwrap());
    }

    #[test]
    fn memory_store_operations() {
        exercise(&MemoryStore::new());
    }

    #[test]
    fn sled_store_operations() {
        let dir = tempfile::tempdir().unwrap();
        exercise(&SledStore::open(dir.path()).unwrap());
    }

    #[test]
    fn metered_store_operations_record_latency() {
        let metrics = Arc::new(Metrics::new());
        let store = MeteredStore::new(Arc::new(MemoryStore::new()), metrics.clone());
        exercise(&store);
        assert!(metrics.store_latency.count() > 20);
    }

    #[test]
    fn ordered_batches_refuse_conflicts_whole_and_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.put(Collection::Meta, b"taken", b"1").unwrap();
        let mut b = Batch::ordered();
        b.insert_if_absent(Collection::Meta, b"fresh", b"x")
            .insert_if_absent(Collection::Meta, b"taken", b"2")
            .put(Collection::Names, b"n", b"v");
        assert!(b.is_ordered());
        assert!(!store.apply(b).unwrap());
        // The conflict undid the earlier conditional insert and wrote nothing else.
        assert_eq!(store.get(Collection::Meta, b"fresh").unwrap(), None);
        assert_eq!(
            store.get(Collection::Meta, b"taken").unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(store.get(Collection::Names, b"n").unwrap(), None);

        let mut b = Batch::ordered();
        b.insert_if_absent(Collection::Meta, b"fresh", b"x")
            .put(Collection::Names, b"n", b"v1")
            .put(Collection::Names, b"n", b"v2")
            .delete(Collection::Meta, b"taken");
        assert!(store.apply(b).unwrap());
        assert_eq!(
            store.get(Collection::Meta, b"fresh").unwrap(),
            Some(b"x".to_vec())
        );
        assert_eq!(
            store.get(Collection::Names, b"n").unwrap(),
            Some(b"v2".to_vec())
        );
        assert_eq!(store.get(Collection::Meta, b"taken").unwrap(), None);
    }

    #[test]
    fn sled_reopen_keeps_flushed_data() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            store
                .put(Messages, &prefixed_seq_key(b"c", 1), b"hello")
                .unwrap();
            let mut batch = Batch::new();
            batch
                .put(Deliveries, b"bob", &seq_key(1))
                .put(Meta, b"schema", b"1");
            assert!(store.apply(batch).unwrap());
            store.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            store.get(Messages, &prefixed_seq_key(b"c", 1)).unwrap(),
            Some(b"hello".to_vec())
        );
        assert_eq!(
            store.get(Deliveries, b"bob").unwrap(),
            Some(seq_key(1).to_vec())
        );
        assert_eq!(store.get(Meta, b"schema").unwrap(), Some(b"1".to_vec()));
    }

    #[test]
    fn concurrent_insert_if_absent_has_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let sled: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
        let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
        for store in [sled, memory] {
            let winners: usize = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8u8)
                    .map(|i| {
                        let store = &store;
                        s.spawn(move || {
                            let mut batch = Batch::new();
                            batch
                                .insert_if_absent(Messages, b"seq-1", &[i])
                                .put(Meta, &[i], b"");
                            usize::from(store.apply(batch).unwrap())
                                + usize::from(
                                    store.insert_if_absent(Deliveries, b"k", &[i]).unwrap(),
                                )
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).sum()
            });
            assert_eq!(winners, 2, "one batch and one insert_if_absent win");
        }
    }

    #[test]
    fn seq_helpers() {
        assert_eq!(seq_key(1), [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            seq_from_key(&prefixed_seq_key(b"abc", u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(seq_from_key(b"short"), None);
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn collection_names_are_unique() {
        let names: std::collections::BTreeSet<_> =
            Collection::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), Collection::ALL.len());
        for (i, c) in Collection::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }
}
