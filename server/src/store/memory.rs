//! The in-memory engine: [`MemoryStore`], for tests and benchmarks.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use super::{Batch, Collection, ConversationLog, Entries, Op, Store, prefix_end};
use crate::error::{Error, Result};

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
    /// Held by [`MemoryStore::hold_flushes`]: a flush waits for it, so a test can keep the
    /// committer from answering anyone while it sets a scene.
    flush_gate: Mutex<()>,
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

    /// Holds every [`Store::flush`] (on any thread) until the guard is dropped. Never hold it
    /// across an `.await`.
    ///
    /// # Errors
    /// [`Error::Storage`] if the gate's lock is poisoned.
    pub fn hold_flushes(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.flush_gate.lock().map_err(|_| Error::Storage {
            op: "lock",
            detail: "memory store flush gate poisoned".into(),
        })
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
                Op::ReplaceIf {
                    collection,
                    key,
                    old,
                    ..
                } => m.get(collection).and_then(|t| t.get(key)) != Some(old),
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
                    }
                    | Op::ReplaceIf {
                        collection,
                        key,
                        value,
                        ..
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
        drop(self.hold_flushes()?);
        self.flushes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.flushed.notify_waiters();
        Ok(())
    }
}

/// The key-value layout of the log (the trait's default methods).
impl ConversationLog for MemoryStore {}
