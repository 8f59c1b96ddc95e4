//! The sled engine: [`SledStore`], one sled tree per [`Collection`], behind the data
//! directory's lock file.

use std::path::Path;

use super::{Batch, Collection, ConversationLog, Entries, Op, Store, prefix_end};
use crate::error::{Error, Result};

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
        let db = retry_while_locked(|| config.open(), sled_lock_held)
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

    /// The non-empty sled trees of the directory that are no [`Collection`] (a retired
    /// collection's, or a later build's), with their entry counts: what a copy of the
    /// collections alone would leave behind. sled's own default tree is not listed.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if sled cannot open or read a tree.
    pub fn foreign_trees(&self) -> Result<Vec<(String, usize)>> {
        let known: Vec<&[u8]> = Collection::ALL
            .iter()
            .map(|c| c.name().as_bytes())
            .collect();
        let mut out = Vec::new();
        for name in self.db.tree_names() {
            if known.contains(&name.as_ref()) || name.as_ref() == b"__sled__default" {
                continue;
            }
            let tree = self.db.open_tree(&name).map_err(|e| sled_err("open", &e))?;
            if !tree.is_empty() {
                out.push((String::from_utf8_lossy(&name).into_owned(), tree.len()));
            }
        }
        // The default tree holds nothing of the relay's: anything there would be lost too.
        if !self.db.is_empty() {
            out.push(("(default tree)".to_owned(), self.db.len()));
        }
        Ok(out)
    }

    /// [`Batch::ordered`] without a transaction: conditional inserts first (compare-and-swap,
    /// undone if a later one conflicts), then the other writes in order. sled recovers a
    /// prefix of its log after a crash, so a prefix of these writes survives, as promised.
    fn apply_ordered(&self, batch: &Batch) -> Result<bool> {
        // Each conditional write swapped in, with the value to put back if a later one fails.
        let mut swapped_in: Vec<Undo<'_>> = Vec::new();
        for op in &batch.ops {
            let (collection, key, old, value) = match op {
                Op::InsertIfAbsent {
                    collection,
                    key,
                    value,
                } => (collection, key, None, value),
                Op::ReplaceIf {
                    collection,
                    key,
                    old,
                    value,
                } => (collection, key, Some(old.as_slice()), value),
                Op::Put { .. } | Op::Delete { .. } => continue,
            };
            let tree = self.tree(*collection)?;
            let swapped = tree
                .compare_and_swap(key, old, Some(value.as_slice()))
                .map_err(|e| sled_err("apply", &e))?;
            if swapped.is_err() {
                for (t, k, before) in swapped_in {
                    match before {
                        Some(v) => t.insert(k, v).map(|_| ()),
                        None => t.remove(k).map(|_| ()),
                    }
                    .map_err(|e| sled_err("apply", &e))?;
                }
                return Ok(false);
            }
            swapped_in.push((tree, key, old));
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
                Op::InsertIfAbsent { .. } | Op::ReplaceIf { .. } => {}
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
                    Op::ReplaceIf {
                        collection,
                        key,
                        old,
                        ..
                    } => {
                        if views[slot(*collection)].get(key)?.as_deref() != Some(old.as_slice()) {
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
                    }
                    | Op::ReplaceIf {
                        collection,
                        key,
                        value,
                        ..
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

/// A conditional write of an ordered batch swapped in: its tree, its key and the value to put
/// back (`None`: remove) if a later one fails.
type Undo<'a> = (&'a sled::Tree, &'a [u8], Option<&'a [u8]>);

fn op_collection(op: &Op) -> Collection {
    match op {
        Op::Put { collection, .. }
        | Op::Delete { collection, .. }
        | Op::InsertIfAbsent { collection, .. }
        | Op::ReplaceIf { collection, .. } => *collection,
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

/// Whether `e` is sled finding its own lock file held. sled 0.34 reports that as an
/// `ErrorKind::Other` error whose text starts "could not acquire lock", wrapping the
/// `WouldBlock` it got; a kind check alone never matches it.
fn sled_lock_held(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::WouldBlock
                || (io.kind() == std::io::ErrorKind::Other
                    && io.to_string().starts_with("could not acquire lock"))
        }
        _ => false,
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

/// The key-value layout of the log (the trait's default methods): the on-disk format of every
/// earlier build.
impl ConversationLog for SledStore {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// The retry on sled's own lock must recognise the error sled really returns for it.
    #[test]
    fn sleds_own_held_lock_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let _db = sled::Config::new().path(dir.path()).open().unwrap();
        let held = sled::Config::new().path(dir.path()).open().unwrap_err();
        assert!(sled_lock_held(&held), "{held:?}");
        let other = sled::Error::Io(std::io::Error::other("disk on fire"));
        assert!(!sled_lock_held(&other));
        assert!(!sled_lock_held(&sled::Error::Unsupported("no".into())));
    }
}
