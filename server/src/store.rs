//! Storage: the [`Store`] trait over named collections, with a sled engine and an in-memory one.
//!
//! The relay stores opaque bytes. Collections are sorted maps from byte keys to byte values; keys
//! that are sequence numbers are big-endian `u64` ([`seq_key`]) so that byte order is numeric
//! order and `range_from`/`last` walk them in sequence.
//!
//! **Architecture Invariant:** no sled type appears outside this module. Another engine only has
//! to implement [`Store`].
//!
//! Durability: writes become visible at once but are durable only after [`Store::flush`]; the
//! relay batches flushes through [`GroupCommit`](crate::commit::GroupCommit).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::metrics::Metrics;

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
}

impl Collection {
    /// Every collection, in a fixed order.
    pub const ALL: [Collection; 13] = [
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
    /// [`Error::Storage`] if the engine fails.
    fn get(&self, collection: Collection, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Sets `key` to `value`, replacing any previous value.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the engine fails.
    fn put(&self, collection: Collection, key: &[u8], value: &[u8]) -> Result<()>;

    /// Removes `key`; returns whether it was present.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the engine fails.
    fn delete(&self, collection: Collection, key: &[u8]) -> Result<bool>;

    /// All entries whose key starts with `prefix`, in key order. Use
    /// [`range_from`](Self::range_from) or [`scan_prefix_from`](Self::scan_prefix_from) for
    /// key spaces that can grow without bound.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the engine fails.
    fn scan_prefix(&self, collection: Collection, prefix: &[u8]) -> Result<Entries>;

    /// Up to `limit` entries with key `>= start`, in key order.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the engine fails.
    fn range_from(&self, collection: Collection, start: &[u8], limit: usize) -> Result<Entries>;

    /// Up to `limit` entries whose key starts with `prefix` and is `>= start`, in key order —
    /// e.g. the messages of one conversation from a cursor on.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the engine fails.
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
    /// [`Error::Storage`] if the engine fails.
    fn last(&self, collection: Collection, prefix: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>>;

    /// Applies every op of `batch` atomically, across collections. Returns `false`, writing
    /// nothing, if an [`Op::InsertIfAbsent`] found its key present; `true` otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the engine fails; nothing is written then either.
    fn apply(&self, batch: Batch) -> Result<bool>;

    /// Sets `key` to `value` only if `key` is absent, atomically (compare-and-swap from
    /// nothing). Returns whether it was inserted; e.g. refuses a duplicate message counter.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the engine fails.
    fn insert_if_absent(&self, collection: Collection, key: &[u8], value: &[u8]) -> Result<bool>;

    /// Blocks until every write made before the call is durable.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the engine cannot write to disk.
    fn flush(&self) -> Result<()>;
}

/// The sled engine: one tree per [`Collection`].
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    /// Indexed by `Collection::index`; opened once so lookups never allocate.
    trees: Vec<sled::Tree>,
    /// `LOCK_FILE`, locked for as long as the store is open.
    _lock: std::fs::File,
}

/// The relay's own lock on its data directory, taken before anything in it is touched.
const LOCK_FILE: &str = "relay.lock";
/// Attempts, `LOCK_RETRY` apart, to take a data directory's lock that is still held.
const LOCK_ATTEMPTS: u32 = 250;
/// Time between two attempts to take the lock (so up to five seconds in all).
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

impl SledStore {
    /// Opens (creating if needed) the database in `dir`.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the directory cannot be used (permissions, another relay is
    /// using it, corruption).
    pub fn open(dir: &Path) -> Result<Self> {
        // Ours first: only the one process that may use this directory cleans it up.
        let lock = lock_dir(dir)?;
        discard_unfinished_snapshots(dir)?;
        // Durability comes from explicit flushes (group commit), not a timer.
        let config = sled::Config::new().path(dir).flush_every_ms(None);
        // sled can hold its own lock after the previous `Db` in this process is dropped: its
        // file is freed by epoch-based reclamation, which needs later sled activity (such as
        // these attempts) to run. Wait that out.
        let db = retry_while_locked(
            || config.open(),
            |e| matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock),
        )
        .map_err(|e| sled_err("open", &e))?;
        let trees = Collection::ALL
            .iter()
            .map(|c| db.open_tree(c.name()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| sled_err("open", &e))?;
        Ok(Self {
            db,
            trees,
            _lock: lock,
        })
    }

    /// [`Batch::ordered`] without a transaction: conditional inserts first (compare-and-swap,
    /// undone if a later one conflicts), then the other writes in order. sled recovers a
    /// prefix of its log after a crash, so a prefix of these writes survives, as promised.
    fn apply_ordered(&self, batch: &Batch) -> Result<bool> {
        let mut inserted: Vec<(&sled::Tree, &[u8])> = Vec::new();
        for op in &batch.ops {
            if let Op::InsertIfAbsent {
                collection,
                key,
                value,
            } = op
            {
                let tree = self.tree(*collection)?;
                let swapped = tree
                    .compare_and_swap(key, None::<&[u8]>, Some(value.as_slice()))
                    .map_err(|e| sled_err("apply", &e))?;
                if swapped.is_err() {
                    for (t, k) in inserted {
                        t.remove(k).map_err(|e| sled_err("apply", &e))?;
                    }
                    return Ok(false);
                }
                inserted.push((tree, key));
            }
        }
        for op in &batch.ops {
            match op {
                Op::Put {
                    collection,
                    key,
                    value,
                } => {
                    self.tree(*collection)?
                        .insert(key.as_slice(), value.as_slice())
                        .map_err(|e| sled_err("apply", &e))?;
                }
                Op::Delete { collection, key } => {
                    self.tree(*collection)?
                        .remove(key.as_slice())
                        .map_err(|e| sled_err("apply", &e))?;
                }
                Op::InsertIfAbsent { .. } => {}
            }
        }
        Ok(true)
    }

    fn tree(&self, collection: Collection) -> Result<&sled::Tree> {
        self.trees
            .get(collection.index())
            .ok_or_else(|| Error::Storage {
                op: "open",
                detail: format!("collection {} is not open", collection.name()),
            })
    }
}

impl Store for SledStore {
    fn get(&self, collection: Collection, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let value = self
            .tree(collection)?
            .get(key)
            .map_err(|e| sled_err("get", &e))?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn put(&self, collection: Collection, key: &[u8], value: &[u8]) -> Result<()> {
        self.tree(collection)?
            .insert(key, value)
            .map_err(|e| sled_err("put", &e))?;
        Ok(())
    }

    fn delete(&self, collection: Collection, key: &[u8]) -> Result<bool> {
        let old = self
            .tree(collection)?
            .remove(key)
            .map_err(|e| sled_err("delete", &e))?;
        Ok(old.is_some())
    }

    fn scan_prefix(&self, collection: Collection, prefix: &[u8]) -> Result<Entries> {
        collect(
            self.tree(collection)?.scan_prefix(prefix),
            usize::MAX,
            "scan_prefix",
        )
    }

    fn range_from(&self, collection: Collection, start: &[u8], limit: usize) -> Result<Entries> {
        collect(self.tree(collection)?.range(start..), limit, "range_from")
    }

    fn scan_prefix_from(
        &self,
        collection: Collection,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Entries> {
        let tree = self.tree(collection)?;
        let lower = if start < prefix { prefix } else { start };
        let iter = match prefix_end(prefix) {
            Some(end) => tree.range(lower.to_vec()..end),
            None => tree.range(lower.to_vec()..),
        };
        let mut out = collect(iter, limit, "scan_prefix_from")?;
        out.retain(|(k, _)| k.starts_with(prefix));
        Ok(out)
    }

    fn last(&self, collection: Collection, prefix: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let entry = self.tree(collection)?.scan_prefix(prefix).next_back();
        match entry {
            None => Ok(None),
            Some(Ok((k, v))) => Ok(Some((k.to_vec(), v.to_vec()))),
            Some(Err(e)) => Err(sled_err("last", &e)),
        }
    }

    fn apply(&self, batch: Batch) -> Result<bool> {
        use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

        if batch.is_empty() {
            return Ok(true);
        }
        if batch.ordered {
            return self.apply_ordered(&batch);
        }
        // Only the trees the batch touches take part in the transaction; `slot` maps a
        // collection to its position among them.
        let mut involved: Vec<Collection> = batch.ops.iter().map(op_collection).collect();
        involved.sort();
        involved.dedup();
        let trees: Vec<sled::Tree> = involved
            .iter()
            .map(|c| self.tree(*c).cloned())
            .collect::<Result<_>>()?;
        let slot = |c: Collection| involved.binary_search(&c).unwrap_or(0);

        let result = trees.as_slice().transaction(|views| {
            for op in &batch.ops {
                match op {
                    Op::InsertIfAbsent {
                        collection, key, ..
                    } => {
                        if views[slot(*collection)].get(key)?.is_some() {
                            return Err(ConflictableTransactionError::Abort(()));
                        }
                    }
                    Op::Put { .. } | Op::Delete { .. } => {}
                }
            }
            for op in &batch.ops {
                match op {
                    Op::Put {
                        collection,
                        key,
                        value,
                    }
                    | Op::InsertIfAbsent {
                        collection,
                        key,
                        value,
                    } => {
                        views[slot(*collection)].insert(key.as_slice(), value.as_slice())?;
                    }
                    Op::Delete { collection, key } => {
                        views[slot(*collection)].remove(key.as_slice())?;
                    }
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => Ok(true),
            Err(TransactionError::Abort(())) => Ok(false),
            Err(TransactionError::Storage(e)) => Err(sled_err("apply", &e)),
        }
    }

    fn insert_if_absent(&self, collection: Collection, key: &[u8], value: &[u8]) -> Result<bool> {
        let swapped = self
            .tree(collection)?
            .compare_and_swap(key, None::<&[u8]>, Some(value))
            .map_err(|e| sled_err("insert_if_absent", &e))?;
        Ok(swapped.is_ok())
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(|e| sled_err("flush", &e))?;
        Ok(())
    }
}

fn op_collection(op: &Op) -> Collection {
    match op {
        Op::Put { collection, .. }
        | Op::Delete { collection, .. }
        | Op::InsertIfAbsent { collection, .. } => *collection,
    }
}

/// Collects at most `limit` entries from a sled iterator.
fn collect(iter: sled::Iter, limit: usize, op: &'static str) -> Result<Entries> {
    iter.take(limit)
        .map(|r| {
            r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(|e| sled_err(op, &e))
        })
        .collect()
}

/// Describes a sled error without any stored bytes (a missing collection's name is ours, and
/// the other variants carry only I/O or engine messages).
/// Removes the snapshot files sled 0.34 left unfinished when it was killed while writing one.
///
/// sled writes a snapshot to `snap.<lsn>.generating`, syncs it, then renames it to
/// `snap.<lsn>`, and only then deletes older snapshots. But when it opens, it picks the name
/// that sorts last among `snap.*` files, and `snap.<lsn>.generating` sorts after `snap.<lsn>`
/// and every older one: after a SIGKILL in the middle of a snapshot it reads the partial
/// file, finds its checksum wrong and refuses to open ("corruption detected"; found by the
/// crash harness, the same symptom as sled issue #1533). An unfinished snapshot is never
/// needed: the snapshot before it and the log are still there, and sled recovers from them.
/// Creates `dir` if needed and locks its `LOCK_FILE`, waiting up to five seconds for a relay
/// that is just stopping.
fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir).map_err(open_io_err)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(open_io_err)?;
    match retry_while_locked(
        || file.try_lock(),
        |e| matches!(e, std::fs::TryLockError::WouldBlock),
    ) {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Storage {
            op: "open",
            detail: format!(
                "another relay is using {} (it holds {LOCK_FILE}); stop it first",
                dir.display()
            ),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(open_io_err(e)),
    }
}

/// Calls `attempt` until it succeeds or fails otherwise than `locked`, retrying a held lock
/// `LOCK_ATTEMPTS` times, `LOCK_RETRY` apart; returns the last outcome.
fn retry_while_locked<T, E>(
    mut attempt: impl FnMut() -> std::result::Result<T, E>,
    locked: impl Fn(&E) -> bool,
) -> std::result::Result<T, E> {
    let mut retries = 0;
    loop {
        match attempt() {
            Err(e) if locked(&e) && retries < LOCK_ATTEMPTS => {
                retries += 1;
                std::thread::sleep(LOCK_RETRY);
            }
            done => return done,
        }
    }
}

/// An I/O error while opening the data directory.
fn open_io_err(e: std::io::Error) -> Error {
    Error::Storage {
        op: "open",
        detail: format!("i/o: {e}"),
    }
}

/// Deletes the snapshot files sled leaves half-written when killed while writing one. Call
/// only with the directory locked (`lock_dir`): a running relay's snapshot in progress has
/// the same name.
fn discard_unfinished_snapshots(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // A new data directory: sled creates it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(open_io_err(e)),
    };
    for entry in entries {
        let entry = entry.map_err(open_io_err)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %name, "removing an unfinished storage snapshot left by a crash");
            std::fs::remove_file(entry.path()).map_err(open_io_err)?;
        }
    }
    Ok(())
}

fn sled_err(op: &'static str, err: &sled::Error) -> Error {
    let detail = match err {
        sled::Error::CollectionNotFound(_) => "collection not found".to_owned(),
        sled::Error::Unsupported(msg) => format!("unsupported: {msg}"),
        sled::Error::ReportableBug(msg) => format!("engine bug: {msg}"),
        sled::Error::Io(io) => format!("i/o: {io}"),
        sled::Error::Corruption { .. } => "corruption detected".to_owned(),
    };
    Error::Storage { op, detail }
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

/// The in-memory engine's state: a sorted map per collection.
type Maps = BTreeMap<Collection, BTreeMap<Vec<u8>, Vec<u8>>>;

/// An in-memory engine for tests: one `BTreeMap` per collection behind one mutex.
///
/// A std `Mutex`, not a tokio one: it is never held across an `.await`, and every critical
/// section is a map operation. `flush` only counts calls.
#[derive(Debug, Default)]
pub struct MemoryStore {
    maps: Mutex<Maps>,
    flushes: std::sync::atomic::AtomicU64,
    /// Woken by every flush (see [`MemoryStore::wait_for_flushes`]).
    flushed: tokio::sync::Notify,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times [`Store::flush`] has been called.
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until [`Store::flush`] has been called at least `n` times (for tests that wait
    /// for a flush another thread makes).
    pub async fn wait_for_flushes(&self, n: u64) {
        loop {
            let flushed = self.flushed.notified();
            let mut flushed = std::pin::pin!(flushed);
            flushed.as_mut().enable();
            if self.flush_count() >= n {
                return;
            }
            flushed.await;
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Maps) -> T) -> Result<T> {
        let mut maps = self.maps.lock().map_err(|_| Error::Storage {
            op: "lock",
            detail: "memory store poisoned".into(),
        })?;
        Ok(f(&mut maps))
    }
}

impl Store for MemoryStore {
    fn get(&self, collection: Collection, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with(|m| m.get(&collection).and_then(|t| t.get(key)).cloned())
    }

    fn put(&self, collection: Collection, key: &[u8], value: &[u8]) -> Result<()> {
        self.with(|m| {
            m.entry(collection)
                .or_default()
                .insert(key.to_vec(), value.to_vec());
        })
    }

    fn delete(&self, collection: Collection, key: &[u8]) -> Result<bool> {
        self.with(|m| m.get_mut(&collection).and_then(|t| t.remove(key)).is_some())
    }

    fn scan_prefix(&self, collection: Collection, prefix: &[u8]) -> Result<Entries> {
        self.scan_prefix_from(collection, prefix, prefix, usize::MAX)
    }

    fn range_from(&self, collection: Collection, start: &[u8], limit: usize) -> Result<Entries> {
        self.with(|m| {
            m.get(&collection)
                .map(|t| {
                    t.range::<[u8], _>((Bound::Included(start), Bound::Unbounded))
                        .take(limit)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    fn scan_prefix_from(
        &self,
        collection: Collection,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Entries> {
        let lower = if start < prefix { prefix } else { start };
        self.with(|m| {
            m.get(&collection)
                .map(|t| {
                    t.range::<[u8], _>((Bound::Included(lower), Bound::Unbounded))
                        .take_while(|(k, _)| k.starts_with(prefix))
                        .take(limit)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    fn last(&self, collection: Collection, prefix: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.with(|m| {
            let tree = m.get(&collection)?;
            let upper = match prefix_end(prefix) {
                Some(end) => tree
                    .range::<[u8], _>((Bound::Included(prefix), Bound::Excluded(&end[..])))
                    .next_back(),
                None => tree
                    .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
                    .next_back(),
            };
            upper.map(|(k, v)| (k.clone(), v.clone()))
        })
    }

    fn apply(&self, batch: Batch) -> Result<bool> {
        self.with(|m| {
            let conflict = batch.ops.iter().any(|op| match op {
                Op::InsertIfAbsent {
                    collection, key, ..
                } => m.get(collection).is_some_and(|t| t.contains_key(key)),
                Op::Put { .. } | Op::Delete { .. } => false,
            });
            if conflict {
                return false;
            }
            for op in batch.ops {
                match op {
                    Op::Put {
                        collection,
                        key,
                        value,
                    }
                    | Op::InsertIfAbsent {
                        collection,
                        key,
                        value,
                    } => {
                        m.entry(collection).or_default().insert(key, value);
                    }
                    Op::Delete { collection, key } => {
                        if let Some(t) = m.get_mut(&collection) {
                            t.remove(&key);
                        }
                    }
                }
            }
            true
        })
    }

    fn insert_if_absent(&self, collection: Collection, key: &[u8], value: &[u8]) -> Result<bool> {
        self.with(|m| {
            let tree = m.entry(collection).or_default();
            if tree.contains_key(key) {
                false
            } else {
                tree.insert(key.to_vec(), value.to_vec());
                true
            }
        })
    }

    fn flush(&self) -> Result<()> {
        self.flushes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.flushed.notify_waiters();
        Ok(())
    }
}

/// Wraps a store and records the latency of every operation in
/// [`Metrics::store_latency`](crate::metrics::Metrics::store_latency).
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    fn timed<T>(&self, f: impl FnOnce(&dyn Store) -> T) -> T {
        let start = Instant::now();
        let out = f(self.inner.as_ref());
        self.metrics
            .store_latency
            .observe(start.elapsed().as_secs_f64());
        out
    }
}

impl Store for MeteredStore {
    fn get(&self, collection: Collection, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.timed(|s| s.get(collection, key))
    }

    fn put(&self, collection: Collection, key: &[u8], value: &[u8]) -> Result<()> {
        self.timed(|s| s.put(collection, key, value))
    }

    fn delete(&self, collection: Collection, key: &[u8]) -> Result<bool> {
        self.timed(|s| s.delete(collection, key))
    }

    fn scan_prefix(&self, collection: Collection, prefix: &[u8]) -> Result<Entries> {
        self.timed(|s| s.scan_prefix(collection, prefix))
    }

    fn range_from(&self, collection: Collection, start: &[u8], limit: usize) -> Result<Entries> {
        self.timed(|s| s.range_from(collection, start, limit))
    }

    fn scan_prefix_from(
        &self,
        collection: Collection,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Entries> {
        self.timed(|s| s.scan_prefix_from(collection, prefix, start, limit))
    }

    fn last(&self, collection: Collection, prefix: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.timed(|s| s.last(collection, prefix))
    }

    fn apply(&self, batch: Batch) -> Result<bool> {
        self.timed(|s| s.apply(batch))
    }

    fn insert_if_absent(&self, collection: Collection, key: &[u8], value: &[u8]) -> Result<bool> {
        self.timed(|s| s.insert_if_absent(collection, key, value))
    }

    /// Not timed here: flush latency has its own histogram, recorded by group commit.
    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

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
