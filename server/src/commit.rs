//! Group commit: many writers share one durable flush.
//!
//! ```text
//!  writer ─┐ durable()                       ┌─► Ok / Err to every waiter of the batch
//!  writer ─┼─► bounded queue ─► committer ───┤
//!  writer ─┘   (oneshot each)   collect ≤ max_batch or until max_delay,
//!                               then Store::flush on a blocking thread
//! ```
//!
//! **Invariant:** [`GroupCommit::durable`] resolves only after a flush that *started after* the
//! call began. The committer takes a request off the queue before it starts the flush that
//! answers it, and requests that arrive during a flush wait for the next one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::store::Store;

/// One waiter: the committer answers on this channel after the flush.
type Waiter = oneshot::Sender<Result<()>>;

/// Handle to the group-commit task. Cheap to clone; the task stops when every handle is gone.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    requests: mpsc::Sender<Waiter>,
}

impl GroupCommit {
    /// Starts the committer task on the current tokio runtime.
    ///
    /// The request queue holds `2 × max_batch` waiters: one batch being flushed plus one
    /// filling up. Beyond that, [`durable`](Self::durable) waits for room, which pushes back
    /// on writers instead of growing memory.
    ///
    /// `max_batch` of 0 is treated as 1.
    pub fn spawn(
        store: Arc<dyn Store>,
        max_batch: usize,
        max_delay: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        let max_batch = max_batch.max(1);
        let (requests, rx) = mpsc::channel(max_batch.saturating_mul(2));
        tokio::spawn(committer(store, rx, max_batch, max_delay, metrics));
        Self { requests }
    }

    /// Waits until everything written to the store before this call is durable.
    ///
    /// The waiter is queued when `durable` is *called*, not when the future is first polled,
    /// so a session can stage several writes, take a future for each and await them later in
    /// order: they share flushes instead of waiting for one each. (If the queue is full the
    /// waiter is queued on first poll instead, which only delays it.)
    ///
    /// # Errors
    ///
    /// The flush's [`Error::Storage`] (every waiter of a failed batch gets it), or
    /// [`Error::CommitStopped`] if the committer is gone.
    pub fn durable(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let (late, stopped) = match self.requests.try_send(tx) {
            Ok(()) => (None, false),
            Err(mpsc::error::TrySendError::Full(tx)) => (Some(tx), false),
            Err(mpsc::error::TrySendError::Closed(_)) => (None, true),
        };
        let requests = self.requests.clone();
        async move {
            if stopped {
                return Err(Error::CommitStopped);
            }
            if let Some(tx) = late {
                requests.send(tx).await.map_err(|_| Error::CommitStopped)?;
            }
            rx.await.map_err(|_| Error::CommitStopped)?
        }
    }
}

async fn committer(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Waiter>,
    max_batch: usize,
    max_delay: Duration,
    metrics: Arc<Metrics>,
) {
    let mut batch: Vec<Waiter> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + max_delay;
        while batch.len() < max_batch {
            // Take whatever is already queued without waiting, then wait for more until the
            // deadline.
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(w)) => batch.push(w),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }

        let size = batch.len();
        let started = Instant::now();
        let flusher = Arc::clone(&store);
        let result = match tokio::task::spawn_blocking(move || flusher.flush()).await {
            Ok(r) => r,
            Err(join) => Err(Error::Storage {
                op: "flush",
                detail: join.to_string(),
            }),
        };
        let elapsed = started.elapsed();
        metrics.flush_latency.observe(elapsed.as_secs_f64());
        metrics.group_commit_batch_size.observe(size as f64);
        match &result {
            Ok(()) => debug!(
                batch = size,
                micros = elapsed.as_micros() as u64,
                "group commit"
            ),
            Err(e) => warn!(batch = size, error = %e, "group commit flush failed"),
        }
        for waiter in batch.drain(..) {
            // A waiter that gave up (dropped its future) is no error.
            let _ = waiter.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::store::{Batch, Collection, Entries, MemoryStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_writers_share_few_flushes() {
        let store = Arc::new(MemoryStore::new());
        let metrics = Arc::new(Metrics::new());
        let commit = GroupCommit::spawn(
            store.clone(),
            1024,
            Duration::from_millis(2),
            metrics.clone(),
        );
        let writers = 1000u64;
        let tasks: Vec<_> = (0..writers)
            .map(|i| {
                let (store, commit) = (store.clone(), commit.clone());
                tokio::spawn(async move {
                    store
                        .put(Collection::Messages, &i.to_be_bytes(), b"m")
                        .unwrap();
                    commit.durable().await
                })
            })
            .collect();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        }
        let flushes = store.flush_count();
        assert!(
            flushes >= 1 && flushes < writers,
            "{flushes} flushes for {writers} writers"
        );
        assert_eq!(metrics.group_commit_batch_size.count(), flushes);
        assert_eq!(metrics.group_commit_batch_size.sum() as u64, writers);
        assert_eq!(metrics.flush_latency.count(), flushes);
    }

    /// Fails every flush after counting it; other operations are unused here.
    #[derive(Default)]
    struct FailingStore {
        flushes: AtomicU64,
    }

    impl Store for FailingStore {
        fn get(&self, _: Collection, _: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(None)
        }
        fn put(&self, _: Collection, _: &[u8], _: &[u8]) -> Result<()> {
            Ok(())
        }
        fn delete(&self, _: Collection, _: &[u8]) -> Result<bool> {
            Ok(false)
        }
        fn scan_prefix(&self, _: Collection, _: &[u8]) -> Result<Entries> {
            Ok(Vec::new())
        }
        fn range_from(&self, _: Collection, _: &[u8], _: usize) -> Result<Entries> {
            Ok(Vec::new())
        }
        fn scan_prefix_from(&self, _: Collection, _: &[u8], _: &[u8], _: usize) -> Result<Entries> {
            Ok(Vec::new())
        }
        fn last(&self, _: Collection, _: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
            Ok(None)
        }
        fn apply(&self, _: Batch) -> Result<bool> {
            Ok(true)
        }
        fn insert_if_absent(&self, _: Collection, _: &[u8], _: &[u8]) -> Result<bool> {
            Ok(true)
        }
        fn flush(&self) -> Result<()> {
            self.flushes.fetch_add(1, Ordering::SeqCst);
            Err(Error::Storage {
                op: "flush",
                detail: "disk full".into(),
            })
        }
    }

    #[tokio::test]
    async fn flush_error_reaches_every_waiter() {
        let store = Arc::new(FailingStore::default());
        let metrics = Arc::new(Metrics::new());
        let commit = GroupCommit::spawn(
            store.clone(),
            64,
            Duration::from_millis(50),
            metrics.clone(),
        );
        let waiters: Vec<_> = (0..20)
            .map(|_| {
                let commit = commit.clone();
                tokio::spawn(async move { commit.durable().await })
            })
            .collect();
        for w in waiters {
            let err = tokio::time::timeout(Duration::from_secs(30), w)
                .await
                .unwrap()
                .unwrap()
                .unwrap_err();
            assert_eq!(
                err,
                Error::Storage {
                    op: "flush",
                    detail: "disk full".into()
                }
            );
        }
        assert!(store.flushes.load(Ordering::SeqCst) < 20);
    }

    #[tokio::test]
    async fn each_call_waits_for_a_later_flush() {
        let store = Arc::new(MemoryStore::new());
        let commit = GroupCommit::spawn(store.clone(), 8, Duration::ZERO, Arc::new(Metrics::new()));
        for i in 1..=3 {
            commit.durable().await.unwrap();
            assert_eq!(
                store.flush_count(),
                i,
                "sequential callers never share a flush"
            );
        }
    }

    /// A session stages several writes and awaits their futures later, one after the other:
    /// the waiters are queued when taken, so they share a flush instead of one flush each.
    #[tokio::test]
    async fn futures_taken_in_a_row_share_a_flush_before_they_are_polled() {
        let store = Arc::new(MemoryStore::new());
        let commit = GroupCommit::spawn(
            store.clone(),
            64,
            Duration::from_millis(1),
            Arc::new(Metrics::new()),
        );
        let pending: Vec<_> = (0..10u64)
            .map(|i| {
                store
                    .put(Collection::Messages, &i.to_be_bytes(), b"m")
                    .unwrap();
                commit.durable()
            })
            .collect();
        tokio::time::timeout(Duration::from_secs(30), async {
            while store.flush_count() == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the committer flushes for waiters nobody has polled yet");
        for p in pending {
            p.await.unwrap();
        }
        assert_eq!(store.flush_count(), 1, "ten staged writes, one flush");
    }
}
