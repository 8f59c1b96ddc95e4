//! Group commit: many writers share one durable flush.
//!
//! ```text
//!  writer ─┐ durable()                         ┌─► Ok / Err to every waiter of the batch
//!  writer ─┼─► queue (≤ 2 × max_batch) ─► committer thread
//!  writer ─┘   (oneshot each)              collect ≤ max_batch or until max_delay,
//!                                          then Store::flush, then answer
//! ```
//!
//! The committer is a thread of its own, not a task: it sleeps on the queue with a precise
//! timeout (tokio's timer rounds `max_delay` up to whole milliseconds), flushes without a hop
//! through the blocking pool, and is not queued behind the sessions' tasks when its flush ends.
//! Every acknowledgement and push waits for it, so its cycle is the floor of the relay's
//! latency.
//!
//! **Invariant:** [`GroupCommit::durable`] resolves only after a flush that *started after* the
//! call began. The committer takes a request off the queue before it starts the flush that
//! answers it, and requests that arrive during a flush wait for the next one.
//!
//! Tests that need a node's commit held while other nodes act (cluster races) close a
//! [commit gate](COMMIT_GATE_ENV) rather than give the node a long commit delay: the race then
//! happens by construction, whatever the machine's load.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tracing::{debug, warn};

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::store::Store;

/// **Test-only**: when this variable names a file, the committer holds every flush that would
/// start while that file exists, until it is removed: a commit gate that a test closes
/// (creates the file) before the request whose commit it wants held, and opens (removes it)
/// once it has done what must happen before that commit (another cluster node taking the same
/// index or number). Only the group commit's flushes are held; a write committed at once
/// (`Store::flush` called by the engine's own conditional writes) is not. Read once when the
/// committer starts. Never set it in production: a gate left closed stops every
/// acknowledgement; a build without the test hooks ignores it ([`crate::test_hooks`]).
pub const COMMIT_GATE_ENV: &str = "SEALDESK_TEST_COMMIT_GATE";

/// One writer waiting for a flush.
struct Waiter {
    /// The committer answers here after the flush.
    answer: oneshot::Sender<Result<()>>,
    /// Its place in the bounded queue, given back when it is answered.
    _room: OwnedSemaphorePermit,
}

/// What the committer thread is asked.
enum Request {
    /// Answer this writer after a flush.
    Wait(Waiter),
    /// Flush for everyone queued before, then stop.
    Stop,
}

/// Handle to the group-commit thread. Cheap to clone; the thread stops when
/// [`Committer::stop`] is called, or when every handle and the [`Committer`] are gone.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    requests: mpsc::Sender<Request>,
    /// Places in the queue: `2 × max_batch`, one batch being flushed plus one filling up.
    /// Closed when the thread ends, so writers waiting for room learn at once.
    room: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl GroupCommit {
    /// Starts the committer thread.
    ///
    /// The queue holds `2 × max_batch` waiters: one batch being flushed plus one filling up.
    /// Beyond that, [`durable`](Self::durable) waits for room, which pushes back on writers
    /// instead of growing memory.
    ///
    /// `max_batch` of 0 is treated as 1.
    ///
    /// Also returns the [`Committer`], which stops the thread and waits for it (so the store
    /// is released when the relay stops).
    ///
    /// # Errors
    ///
    /// [`Error::Internal`] if the operating system refuses a thread.
    pub fn spawn(
        store: Arc<dyn Store>,
        max_batch: usize,
        max_delay: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, Committer)> {
        let gate = crate::test_hooks::var_os(COMMIT_GATE_ENV).map(PathBuf::from);
        if let Some(path) = &gate {
            warn!(path = %path.display(),
                "commit gate set (test only): flushes wait while this file exists");
        }
        Self::spawn_gated(store, max_batch, max_delay, gate, metrics)
    }

    /// [`Self::spawn`] with the [commit gate](COMMIT_GATE_ENV) `gate` (a file path), or none.
    fn spawn_gated(
        store: Arc<dyn Store>,
        max_batch: usize,
        max_delay: Duration,
        gate: Option<PathBuf>,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, Committer)> {
        let max_batch = max_batch.max(1);
        let (requests, rx) = mpsc::channel();
        let room = Arc::new(Semaphore::new(max_batch.saturating_mul(2)));
        let thread = {
            let (room, metrics) = (Arc::clone(&room), Arc::clone(&metrics));
            std::thread::Builder::new()
                .name("sealdesk-commit".into())
                .spawn(move || {
                    committer(
                        &*store,
                        &rx,
                        max_batch,
                        max_delay,
                        gate.as_deref(),
                        &metrics,
                    );
                    room.close();
                })
                .map_err(|e| {
                    Error::Internal(format!("cannot start the group-commit thread: {e}"))
                })?
        };
        let commit = Self {
            requests: requests.clone(),
            room,
            metrics,
        };
        Ok((commit, Committer { requests, thread }))
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
        let asked = Instant::now();
        let (answer, answered) = oneshot::channel();
        // Queued now if there is room; otherwise the future queues it when polled.
        let later = match Arc::clone(&self.room).try_acquire_owned() {
            Ok(room) => {
                // A send that fails drops the answer channel, and the future reports the stop.
                let _ = self.requests.send(Request::Wait(Waiter {
                    answer,
                    _room: room,
                }));
                None
            }
            Err(_) => Some(answer),
        };
        let (requests, room) = (self.requests.clone(), Arc::clone(&self.room));
        let metrics = Arc::clone(&self.metrics);
        async move {
            if let Some(answer) = later {
                let room = room
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::CommitStopped)?;
                requests
                    .send(Request::Wait(Waiter {
                        answer,
                        _room: room,
                    }))
                    .map_err(|_| Error::CommitStopped)?;
            }
            let flushed = answered.await.map_err(|_| Error::CommitStopped)?;
            // What the writer waited, up to being polled again: the wake-up after the answer
            // is part of it, and under load a large part.
            if flushed.is_ok() {
                metrics.commit_wait.observe(asked.elapsed().as_secs_f64());
            }
            flushed
        }
    }
}

/// The group-commit thread itself.
#[derive(Debug)]
pub struct Committer {
    requests: mpsc::Sender<Request>,
    thread: std::thread::JoinHandle<()>,
}

impl Committer {
    /// Answers every writer queued so far (after one last flush), stops the thread and waits
    /// for it. Later [`GroupCommit::durable`] calls fail with [`Error::CommitStopped`].
    /// Blocks, for as long as that last flush takes (a disk that hangs hangs this too, as it
    /// would the relay's own final flush): call it from a blocking context.
    pub fn stop(self) {
        // If the thread is already gone, there is nothing to stop.
        let _ = self.requests.send(Request::Stop);
        let _ = self.thread.join();
    }

    /// [`stop`](Self::stop) from async code: joins the thread on the blocking pool.
    pub async fn stop_async(self) {
        if let Err(e) = tokio::task::spawn_blocking(move || self.stop()).await {
            warn!(error = %e, "stopping group commit failed");
        }
    }
}

/// The committer thread: gathers a batch, flushes (once the [commit gate](COMMIT_GATE_ENV), if
/// any, is open), answers, until stopped or every handle is gone.
fn committer(
    store: &dyn Store,
    rx: &mpsc::Receiver<Request>,
    max_batch: usize,
    max_delay: Duration,
    gate: Option<&Path>,
    metrics: &Metrics,
) {
    let mut batch: Vec<Waiter> = Vec::with_capacity(max_batch);
    let mut stopping = false;
    while !stopping {
        match rx.recv() {
            Ok(Request::Wait(first)) => batch.push(first),
            Ok(Request::Stop) | Err(_) => break,
        }
        let deadline = Instant::now() + max_delay;
        while batch.len() < max_batch {
            // Take whatever is already queued without waiting, then wait for more until the
            // deadline.
            let next = match rx.try_recv() {
                Ok(r) => r,
                Err(mpsc::TryRecvError::Disconnected) => break,
                Err(mpsc::TryRecvError::Empty) => {
                    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                        Ok(r) => r,
                        Err(_) => break,
                    }
                }
            };
            match next {
                Request::Wait(w) => batch.push(w),
                Request::Stop => {
                    stopping = true;
                    break;
                }
            }
        }

        if let Some(gate) = gate {
            wait_for_gate(gate);
        }
        let size = batch.len();
        let started = Instant::now();
        // A panicking engine must not take the committer (and every later write) with it.
        let result = catch_unwind(AssertUnwindSafe(|| store.flush())).unwrap_or_else(|_| {
            Err(Error::Storage {
                op: "flush",
                detail: "the storage engine panicked".into(),
            })
        });
        let elapsed = started.elapsed();
        metrics.flush_latency.observe(elapsed.as_secs_f64());
        metrics.observe_db_commit(elapsed, result.is_ok());
        metrics.group_commit_batch_size.observe(size as f64);
        match &result {
            Ok(()) => debug!(
                batch = size,
                micros = elapsed.as_micros() as u64,
                "group commit"
            ),
            Err(e) => warn!(batch = size, error = %e, "group commit flush failed"),
        }
        for Waiter {
            answer,
            _room: room,
        } in batch.drain(..)
        {
            // Room first, so a writer that wakes to its answer finds it given back.
            drop(room);
            // A waiter that gave up (dropped its future) is no error.
            let _ = answer.send(result.clone());
        }
    }
}

/// Blocks while the [commit gate](COMMIT_GATE_ENV) file `gate` exists (test only).
fn wait_for_gate(gate: &Path) {
    if !gate.exists() {
        return;
    }
    debug!("a flush held at the commit gate (test only)");
    while gate.exists() {
        std::thread::sleep(crate::test_hooks::GATE_POLL);
    }
    debug!("the commit gate opened (test only)");
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
        let (commit, _committer) = GroupCommit::spawn(
            store.clone(),
            1024,
            Duration::from_millis(2),
            metrics.clone(),
        )
        .unwrap();
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
        assert_eq!(
            metrics.commit_wait.count(),
            writers,
            "every waiter's wait is recorded"
        );
    }

    /// More waiters than the queue has room for: the rest queue when polled, none is lost,
    /// and the room comes back as batches are answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_makes_writers_wait_not_fail() {
        let store = Arc::new(MemoryStore::new());
        let (commit, _committer) =
            GroupCommit::spawn(store.clone(), 1, Duration::ZERO, Arc::new(Metrics::new())).unwrap();
        // Room for 2; 50 futures taken at once, then awaited together.
        let pending: Vec<_> = (0..50).map(|_| commit.durable()).collect();
        tokio::time::timeout(
            Duration::from_secs(30),
            futures_util::future::join_all(pending),
        )
        .await
        .expect("every waiter is answered")
        .into_iter()
        .for_each(|r| r.unwrap());
        assert_eq!(commit.room.available_permits(), 2, "all room given back");
        assert!(store.flush_count() >= 2);
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
        let (commit, _committer) = GroupCommit::spawn(
            store.clone(),
            64,
            Duration::from_millis(50),
            metrics.clone(),
        )
        .unwrap();
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

    /// Panics in its first flush, then behaves.
    #[derive(Default)]
    struct PanicOnceStore {
        inner: MemoryStore,
        panicked: AtomicU64,
    }

    impl Store for PanicOnceStore {
        fn get(&self, c: Collection, k: &[u8]) -> Result<Option<Vec<u8>>> {
            self.inner.get(c, k)
        }
        fn put(&self, c: Collection, k: &[u8], v: &[u8]) -> Result<()> {
            self.inner.put(c, k, v)
        }
        fn delete(&self, c: Collection, k: &[u8]) -> Result<bool> {
            self.inner.delete(c, k)
        }
        fn scan_prefix(&self, c: Collection, p: &[u8]) -> Result<Entries> {
            self.inner.scan_prefix(c, p)
        }
        fn range_from(&self, c: Collection, k: &[u8], n: usize) -> Result<Entries> {
            self.inner.range_from(c, k, n)
        }
        fn scan_prefix_from(&self, c: Collection, p: &[u8], k: &[u8], n: usize) -> Result<Entries> {
            self.inner.scan_prefix_from(c, p, k, n)
        }
        fn last(&self, c: Collection, p: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
            self.inner.last(c, p)
        }
        fn apply(&self, b: Batch) -> Result<bool> {
            self.inner.apply(b)
        }
        fn insert_if_absent(&self, c: Collection, k: &[u8], v: &[u8]) -> Result<bool> {
            self.inner.insert_if_absent(c, k, v)
        }
        fn flush(&self) -> Result<()> {
            if self.panicked.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("engine bug");
            }
            self.inner.flush()
        }
    }

    #[tokio::test]
    async fn a_panicking_flush_fails_its_batch_and_the_committer_carries_on() {
        let store = Arc::new(PanicOnceStore::default());
        let (commit, _committer) =
            GroupCommit::spawn(store.clone(), 8, Duration::ZERO, Arc::new(Metrics::new())).unwrap();
        let err = commit.durable().await.unwrap_err();
        assert!(
            matches!(err, Error::Storage { op: "flush", .. }),
            "the waiter learns the flush failed: {err:?}"
        );
        commit.durable().await.unwrap();
        assert_eq!(store.inner.flush_count(), 1, "the next flush ran");
    }

    /// Stopping answers what was queued, releases the store, and refuses later writers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stop_answers_the_queue_then_releases_the_store() {
        let store = Arc::new(MemoryStore::new());
        let (commit, committer) = GroupCommit::spawn(
            store.clone(),
            64,
            Duration::from_millis(50),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        let queued: Vec<_> = (0..5).map(|_| commit.durable()).collect();
        committer.stop_async().await;
        for q in queued {
            q.await.unwrap();
        }
        assert_eq!(store.flush_count(), 1, "one last flush for the queue");
        assert_eq!(
            Arc::strong_count(&store),
            1,
            "the thread let go of the store"
        );
        assert_eq!(commit.durable().await, Err(Error::CommitStopped));
    }

    /// A writer that found the queue full and has not queued yet learns of a stop at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_waiting_for_room_learns_of_the_stop() {
        let store = Arc::new(MemoryStore::new());
        let (commit, committer) =
            GroupCommit::spawn(store.clone(), 1, Duration::ZERO, Arc::new(Metrics::new())).unwrap();
        // Room for 2: these two are queued, the third waits for room. The flush is held while
        // they are taken, so the committer cannot answer the first (and free its room for the
        // third) before the third has found the queue full.
        let gate = store.hold_flushes().unwrap();
        let (a, b, deferred) = (commit.durable(), commit.durable(), commit.durable());
        drop(gate);
        committer.stop_async().await;
        a.await.unwrap();
        b.await.unwrap();
        let late = tokio::time::timeout(Duration::from_secs(30), deferred)
            .await
            .expect("it does not wait for room that never comes");
        assert_eq!(late, Err(Error::CommitStopped));
    }

    /// A flush that would start while the gate file exists waits until it is removed; the
    /// writer is answered after that flush, and later flushes go through at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_commit_gate_holds_the_flush_until_it_opens() {
        let dir = tempfile::tempdir().unwrap();
        let gate = dir.path().join("gate");
        std::fs::write(&gate, b"closed").unwrap();
        let store = Arc::new(MemoryStore::new());
        let (commit, _committer) = GroupCommit::spawn_gated(
            store.clone(),
            8,
            Duration::ZERO,
            Some(gate.clone()),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        let mut held = Box::pin(commit.durable());
        // A quiet period: nothing may happen while the gate is closed.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut held)
                .await
                .is_err(),
            "the writer was answered while the gate was closed"
        );
        assert_eq!(store.flush_count(), 0, "no flush while the gate is closed");
        std::fs::remove_file(&gate).unwrap();
        tokio::time::timeout(Duration::from_secs(30), held)
            .await
            .expect("answered once the gate opened")
            .unwrap();
        assert_eq!(store.flush_count(), 1);
        commit.durable().await.unwrap();
        assert_eq!(store.flush_count(), 2);
    }

    #[tokio::test]
    async fn each_call_waits_for_a_later_flush() {
        let store = Arc::new(MemoryStore::new());
        let (commit, _committer) =
            GroupCommit::spawn(store.clone(), 8, Duration::ZERO, Arc::new(Metrics::new())).unwrap();
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
        let (commit, _committer) = GroupCommit::spawn(
            store.clone(),
            64,
            Duration::from_millis(1),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        let pending: Vec<_> = (0..10u64)
            .map(|i| {
                store
                    .put(Collection::Messages, &i.to_be_bytes(), b"m")
                    .unwrap();
                commit.durable()
            })
            .collect();
        tokio::time::timeout(Duration::from_secs(30), store.wait_for_flushes(1))
            .await
            .expect("the committer flushes for waiters nobody has polled yet");
        for p in pending {
            p.await.unwrap();
        }
        assert_eq!(store.flush_count(), 1, "ten staged writes, one flush");
    }
}
