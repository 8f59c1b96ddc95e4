//! The PostgreSQL engine: [`PgStore`], the relay's [`Store`] and [`ConversationLog`] in one
//! database that several relay nodes can share.
//!
//! Writes keep the sled engine's contract — visible at once, durable after [`Store::flush`] —
//! so the relay above does not change: a write is staged in memory (an overlay every read of
//! this node sees), and a flush commits everything staged since the last one in ONE
//! transaction. Group commit calls the flush once per batch of writers, so a batch is one
//! transaction and every writer is answered after its COMMIT, never before. A flush that fails
//! for want of the database keeps its writes staged (still visible, committed by the next
//! flush) and fails its waiters, who acknowledge nothing; one the database refuses (a sequence
//! number or counter another node took) drops them.
//!
//! Layout (see `schema`): the conversation log in `messages`, keyed by (conversation, seq),
//! `UNIQUE (conversation, epoch, sender, counter)`; each log append also moves the
//! conversation's row in `conversation_heads` from `seq - 1` to `seq` under that row's lock, so
//! the database refuses a sequence number that is not the next one; every other collection in
//! `kv`.
//!
//! Several nodes on one database: each node's cache may be behind another node's appends, so
//! a batch may carry a log append whose sequence number another node took, or whose counter
//! another node stored. The database refuses such an append (it touches no row: the checks
//! are conditional statements, not errors, so the rest of the transaction stands); the commit
//! then rolls back, drops the refused units — each a group of writes staged together — and
//! every later unit of the same conversations, and commits the rest again. The refused
//! appends are remembered until their writer asks ([`ConversationLog::take_refused`]), reloads
//! the conversation and appends again; until then — from the refusal until the append made
//! again is staged, not only until the writer asks — new messages to those conversations are
//! held back too (reported refused: their writers append them again after), so that a
//! sender's messages are never stored out of the order it sent them, and none changes the
//! state a writer reloads before it appends again.
//! A conditional insert that appends nothing to a log (the relay's key, an audit leaf, a
//! release request, a ticket) is not staged: it is committed at once in a transaction of its
//! own, after what the node staged before it, and its writer gets the database's answer —
//! `false` if another node inserted the key first. Staged, it could only be refused at the
//! batch's commit, after its writer was told it had inserted, and the whole batch's writers
//! were then told the flush failed.
//! Every commit that stored log items also sends ONE wake-up (`NOTIFY` on [`WAKE_CHANNEL`],
//! see [`wake`]) naming the conversations it touched, for the other nodes' pushes.
//!
//! The client is async (`tokio-postgres` through a `deadpool-postgres` pool) and [`Store`] is
//! blocking: the engine runs its own small runtime and blocks the caller on each round trip
//! (as sled blocks on its disk).

mod buckets;
mod conditional;
mod presence;
mod schema;
mod sql;
pub mod wake;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use deadpool_postgres::Pool;

use super::{
    Batch, BucketAnswer, BucketOp, BucketRate, Collection, ConversationLog, Entries, MessageAppend,
    Op, Refused, Store, prefix_end, prefixed_seq_key,
};
use crate::error::{Error, Result};

pub use schema::SCHEMA_VERSION;
pub use wake::{Counts, PUSH_CHANNEL, WAKE_CHANNEL, Wake};

/// Connections the pool keeps at most (one commits, the others serve reads).
const POOL_SIZE: usize = 8;

/// How long a caller waits for a connection or a new connection to be made.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// One staged write, committed in order by the next flush.
#[derive(Debug, Clone)]
pub(super) enum PgOp {
    /// A key-value put (in `messages` for [`Collection::Messages`]).
    Put(Collection, Vec<u8>, Vec<u8>),
    /// A key-value delete.
    Delete(Collection, Vec<u8>),
    /// A conditional insert: the commit fails if the key was taken meanwhile (by another
    /// node; this node checked it when it staged it).
    InsertIfAbsent(Collection, Vec<u8>, Vec<u8>),
    /// A conditional replace (key, value read, new value): the commit refuses the unit if the
    /// key no longer holds the value read (another node changed it; this node checked it when
    /// it staged it). Never in [`Collection::Messages`].
    ReplaceIf(Collection, Vec<u8>, Vec<u8>, Vec<u8>),
    /// A log append: `seq` must be the conversation's next number; a message also carries
    /// (epoch, sender, counter), which must be unused.
    Append {
        conversation: Vec<u8>,
        seq: u64,
        message: Option<(u32, Vec<u8>, u64)>,
        item: Vec<u8>,
    },
}

/// Writes staged together: committed together or refused together.
#[derive(Debug, Clone, Default)]
pub(super) struct Unit {
    /// The writes, in order.
    pub(super) ops: Vec<PgOp>,
    /// Staged by a writer appending again after a refusal: not dropped for the refusals still
    /// outstanding in its conversation (it is the one that resolves them).
    pub(super) retry: bool,
}

impl Unit {
    /// Whether this unit appends a message (units of other items are never held back behind a
    /// refusal: only a sender's messages have an order to keep).
    fn appends_message(&self) -> bool {
        self.ops.iter().any(|op| {
            matches!(
                op,
                PgOp::Append {
                    message: Some(_),
                    ..
                }
            )
        })
    }

    /// The conversations this unit appends to, with the sequence numbers.
    pub(super) fn appends(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.ops.iter().filter_map(|op| match op {
            PgOp::Append {
                conversation, seq, ..
            } => Some((conversation.as_slice(), *seq)),
            _ => None,
        })
    }

    /// The unit's log appends as their writers ask about them if refused
    /// ([`ConversationLog::take_refused`]).
    pub(super) fn refusals(&self) -> impl Iterator<Item = (&[u8], Refused)> {
        self.ops.iter().filter_map(|op| match op {
            PgOp::Append {
                conversation,
                seq,
                message,
                item,
            } => Some((
                conversation.as_slice(),
                match message {
                    Some((epoch, sender, counter)) => Refused::Message {
                        epoch: *epoch,
                        sender: sender.clone(),
                        counter: *counter,
                    },
                    None => Refused::item(*seq, item),
                },
            )),
            _ => None,
        })
    }
}

/// Staged writes: the units in order, and the latest value of every key they touch (`None`:
/// deleted) for reads.
#[derive(Debug, Default)]
struct Overlay {
    units: Vec<Unit>,
    writes: BTreeMap<Collection, BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl Overlay {
    fn stage(&mut self, unit: Unit) {
        for op in &unit.ops {
            self.note(op);
        }
        self.units.push(unit);
    }

    fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// The overlay of `units` alone.
    fn of(units: Vec<Unit>) -> Self {
        let mut o = Overlay::default();
        for u in units {
            o.stage(u);
        }
        o
    }

    fn note(&mut self, op: &PgOp) {
        let (c, k, v) = match op {
            PgOp::Put(c, k, v) | PgOp::InsertIfAbsent(c, k, v) | PgOp::ReplaceIf(c, k, _, v) => {
                (*c, k.clone(), Some(v.clone()))
            }
            PgOp::Delete(c, k) => (*c, k.clone(), None),
            PgOp::Append {
                conversation,
                seq,
                item,
                ..
            } => (
                Collection::Messages,
                prefixed_seq_key(conversation, *seq),
                Some(item.clone()),
            ),
        };
        self.writes.entry(c).or_default().insert(k, v);
    }

    /// `later`'s writes over these.
    fn then(&mut self, later: Overlay) {
        self.units.extend(later.units);
        for (c, writes) in later.writes {
            self.writes.entry(c).or_default().extend(writes);
        }
    }
}

/// What is staged: writes not yet flushed, and those a flush is committing now (still read
/// from here until the COMMIT is answered).
#[derive(Debug, Default)]
struct Staged {
    pending: Overlay,
    committing: Option<Arc<Overlay>>,
    /// Log appends the database refused (or that were dropped behind a refused one), by
    /// conversation, until their writers take them ([`ConversationLog::take_refused`]).
    refused: HashMap<Vec<u8>, BTreeSet<Refused>>,
    /// Refused messages their writers took and are appending again, by conversation, until
    /// the append made again is staged ([`ConversationLog::append_message_again`]) or given up
    /// ([`ConversationLog::give_up_refused`]). They hold the conversation like the refused
    /// ones: a message staged meanwhile would be stored ahead of the one appended again, and
    /// the reload before that append would count its counter as used (`counter_reused`).
    settling: HashMap<Vec<u8>, BTreeSet<Refused>>,
}

impl Staged {
    /// Whether `unit` must be held back: it appends a message (units of other items have no
    /// order to keep) to a conversation with refused appends outstanding, and is not itself
    /// an append made again.
    fn held(&self, unit: &Unit) -> bool {
        !unit.retry
            && unit.appends_message()
            && unit
                .appends()
                .any(|(c, _)| self.refused.contains_key(c) || self.settling.contains_key(c))
    }

    /// Records the appends of `unit`, held back, as refused: their writers append them again.
    fn refuse(&mut self, unit: &Unit) {
        for (c, what) in unit.refusals() {
            self.refused.entry(c.to_vec()).or_default().insert(what);
        }
    }

    /// Drops the pending units that append to a conversation with refusals outstanding
    /// (unless they are retries), remembering them as refused too.
    fn drop_behind_refusals(&mut self) {
        if self.refused.is_empty() && self.settling.is_empty() {
            return;
        }
        let mut kept = Vec::with_capacity(self.pending.units.len());
        let mut dropped = false;
        for unit in std::mem::take(&mut self.pending.units) {
            if self.held(&unit) {
                self.refuse(&unit);
                dropped = true;
            } else {
                kept.push(unit);
            }
        }
        if dropped {
            self.pending = Overlay::of(kept);
        } else {
            self.pending.units = kept;
        }
    }
}

/// The PostgreSQL engine (see the module docs).
pub struct PgStore {
    /// Runs the client; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    staged: Mutex<Staged>,
    /// Serialises conditional writes (their check and their staging).
    conditional: Mutex<()>,
    /// Serialises flushes: a flush starts after the previous one's COMMIT was answered.
    flushing: Mutex<()>,
    /// This node's name in the wake-ups it sends (random per start), so it skips its own.
    node: u64,
    /// Counts of what the engine did for the cluster (wake-ups sent, appends refused).
    counts: Arc<wake::Counts>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which async code may not; the pool's connections close
        // with their tasks.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A storage error from the database client.
pub(super) fn db_err(op: &'static str, e: &tokio_postgres::Error) -> Error {
    let detail = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    Error::Storage { op, detail }
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    m.lock().map_err(|_| Error::Storage {
        op: "lock",
        detail: "a PostgreSQL engine lock is poisoned".into(),
    })
}

impl PgStore {
    /// Connects to the database at `url` (a `postgres://` URL or `key=value` string) and checks
    /// its schema; with `migrate`, brings the schema up to [`SCHEMA_VERSION`] first.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the database cannot be reached; [`Error::SchemaTooNew`] or
    /// [`Error::SchemaBehind`] if its schema is not this build's.
    pub fn open(url: &str, migrate: bool) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sealdesk-pg")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the database runtime: {e}")))?;
        let pg: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| Error::Config(format!("database URL: {e}")))?;
        let manager = deadpool_postgres::Manager::from_config(
            pg,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _entered = runtime.enter();
            Pool::builder(manager)
                .max_size(POOL_SIZE)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(CONNECT_TIMEOUT))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .build()
                .map_err(|e| Error::Internal(format!("database pool: {e}")))?
        };
        let store = Self {
            runtime: Some(runtime),
            pool,
            staged: Mutex::new(Staged::default()),
            conditional: Mutex::new(()),
            flushing: Mutex::new(()),
            node: rand::random(),
            counts: Arc::default(),
        };
        let pool = store.pool.clone();
        store.run(async move {
            let mut client = sql::client(&pool, "open").await?;
            schema::prepare(&mut client, migrate).await
        })?;
        Ok(store)
    }

    /// Runs `f` on the engine's runtime and blocks until it is done.
    fn run<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let rt = self.runtime.as_ref().ok_or_else(|| Error::Storage {
            op: "run",
            detail: "the database runtime is gone".into(),
        })?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv().map_err(|_| Error::Storage {
            op: "run",
            detail: "the database task ended without an answer".into(),
        })?
    }

    /// Staged writes of `collection` in `[lo, hi)`, latest first-wins merged (pending over
    /// committing).
    fn staged_range(
        &self,
        collection: Collection,
        lo: &[u8],
        hi: Option<&[u8]>,
    ) -> Result<BTreeMap<Vec<u8>, Option<Vec<u8>>>> {
        let staged = lock(&self.staged)?;
        let mut out = BTreeMap::new();
        let layers = staged
            .committing
            .as_deref()
            .into_iter()
            .chain(std::iter::once(&staged.pending));
        for layer in layers {
            if let Some(writes) = layer.writes.get(&collection) {
                let range = writes.range::<[u8], _>((
                    std::ops::Bound::Included(lo),
                    hi.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
                ));
                out.extend(range.map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        Ok(out)
    }

    /// The staged value of one key: `Some(None)` if staged deleted, `None` if not staged.
    fn staged_get(&self, collection: Collection, key: &[u8]) -> Result<Option<Option<Vec<u8>>>> {
        let staged = lock(&self.staged)?;
        let found = |o: &Overlay| o.writes.get(&collection).and_then(|w| w.get(key)).cloned();
        Ok(found(&staged.pending).or_else(|| staged.committing.as_deref().and_then(found)))
    }

    /// Stages `ops` together (one flush commits all of them or none).
    fn stage(&self, ops: impl IntoIterator<Item = PgOp>) -> Result<()> {
        self.stage_unit(Unit {
            ops: ops.into_iter().collect(),
            retry: false,
        })
        .map(|_| ())
    }

    /// Stages `unit` and answers `true`; one appending a message to a conversation with
    /// refusals outstanding (and not a retry) is refused at once instead (`false`): its writer
    /// appends it again after the earlier ones, and a reload meanwhile must not see it. A
    /// retry ends the hold its writer's [`ConversationLog::take_refused`] put.
    fn stage_unit(&self, unit: Unit) -> Result<bool> {
        let mut staged = lock(&self.staged)?;
        let staged = &mut *staged;
        if staged.held(&unit) {
            staged.refuse(&unit);
            return Ok(false);
        }
        if unit.retry {
            for (c, what) in unit.refusals() {
                settled(&mut staged.settling, c, &what);
            }
        }
        staged.pending.stage(unit);
        Ok(true)
    }

    /// This node's name in its wake-ups.
    pub fn node(&self) -> u64 {
        self.node
    }

    /// Sends `payload` on [`PUSH_CHANNEL`] at once, outside any batch (what it forwards was
    /// answered after its own commit), without waiting for the database: a push lost on the
    /// way is what a lost wake-up is, a delay until the member reads again.
    fn notify_push(&self, payload: String) {
        let Some(rt) = self.runtime.as_ref() else {
            return;
        };
        let pool = self.pool.clone();
        rt.spawn(async move {
            let sent = match sql::client(&pool, "notify").await {
                Ok(client) => client
                    .execute("SELECT pg_notify($1, $2)", &[&PUSH_CHANNEL, &payload])
                    .await
                    .map(|_| ())
                    .map_err(|e| db_err("notify", &e)),
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                tracing::warn!(error = %e, "a push for other relay nodes was not sent");
            }
        });
    }

    /// Stores `frame` for account `to` and notifies the other nodes of it by reference
    /// ([`wake::store_push`]), at once and without waiting for the database, like
    /// [`Self::notify_push`].
    fn store_push(&self, to: &[u8], frame: &[u8]) {
        let Some(rt) = self.runtime.as_ref() else {
            return;
        };
        let (pool, node, counts) = (self.pool.clone(), self.node, Arc::clone(&self.counts));
        let (to, frame) = (to.to_vec(), frame.to_vec());
        rt.spawn(async move {
            match wake::store_push(&pool, node, &to, &frame).await {
                Ok(()) => counts.note_push_stored(),
                Err(e) => {
                    counts.note_stored_push_lost();
                    tracing::warn!(error = %e, size = frame.len(),
                        "a push for other relay nodes was not stored");
                }
            }
        });
    }

    /// What the engine counted for the cluster so far.
    pub fn counts(&self) -> Arc<wake::Counts> {
        Arc::clone(&self.counts)
    }

    /// Up to `limit` entries of `collection` in `[max(prefix, start), prefix_end(prefix))`,
    /// ascending, or descending from the top if `desc`: the database's, with the staged writes
    /// over them.
    fn scan(
        &self,
        collection: Collection,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
        desc: bool,
    ) -> Result<Entries> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let lo = prefix.max(start).to_vec();
        let hi = prefix_end(prefix);
        let staged = self.staged_range(collection, &lo, hi.as_deref())?;
        // Every staged write can hide at most one stored row: fetch that many more.
        let fetch = limit.saturating_add(staged.len());
        let pool = self.pool.clone();
        let prefix = prefix.to_vec();
        let rows = self.run(async move {
            sql::scan(&pool, collection, &prefix, &lo, hi.as_deref(), fetch, desc).await
        })?;
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = rows.into_iter().collect();
        for (k, v) in staged {
            match v {
                Some(v) => merged.insert(k, v),
                None => merged.remove(&k),
            };
        }
        Ok(if desc {
            merged.into_iter().rev().take(limit).collect()
        } else {
            merged.into_iter().take(limit).collect()
        })
    }

    /// Stages `ops` together unless one of their conditional inserts finds its key taken
    /// (checked against what this node sees; the commit checks again in the database).
    ///
    /// Conditional inserts without a log append (the relay's key, an audit leaf, a release
    /// request, a ticket) are not staged: they are committed at once in a transaction of
    /// their own ([`Self::commit_now`]), so that the answer is the database's. Staged, an
    /// insert another node won meanwhile could only be reported at the batch's commit, to
    /// every writer of the batch, long after its own writer was told `true`. A log append's
    /// unit stays staged: its refusal is asked for by its own writer
    /// ([`ConversationLog::take_refused`]).
    fn apply_ops(&self, ops: Vec<PgOp>) -> Result<bool> {
        let _conditional = lock(&self.conditional)?;
        let mut conditional = false;
        for op in &ops {
            match op {
                PgOp::InsertIfAbsent(collection, key, _) => {
                    if self.present(*collection, key)? {
                        return Ok(false);
                    }
                    conditional = true;
                }
                PgOp::ReplaceIf(collection, key, old, _) => {
                    if self.get(*collection, key)?.as_deref() != Some(old.as_slice()) {
                        return Ok(false);
                    }
                    conditional = true;
                }
                PgOp::Put(..) | PgOp::Delete(..) | PgOp::Append { .. } => {}
            }
        }
        let unit = Unit { ops, retry: false };
        if conditional && unit.appends().next().is_none() {
            return self.commit_now(unit);
        }
        self.stage_unit(unit)?;
        Ok(true)
    }

    /// Commits `unit` (conditional inserts, no log append) in a transaction of its own, after
    /// everything this node staged before it, and answers whether the database took it:
    /// `false` if another node inserted one of its keys first (nothing of the unit is
    /// written, and no other write is affected). Durable when it returns.
    fn commit_now(&self, unit: Unit) -> Result<bool> {
        self.flush()?;
        let pool = self.pool.clone();
        let node = self.node;
        let units = [unit];
        let result = self
            .run(async move { Ok(sql::commit(&pool, &units, node).await) })
            .unwrap_or_else(|e| Err(sql::CommitError::Unavailable(e)));
        self.counts
            .note_reachable(!matches!(result, Err(sql::CommitError::Unavailable(_))));
        match result {
            Ok(outcome) => {
                if outcome.refused_other {
                    self.counts.note_insert_lost();
                    tracing::debug!("another relay node inserted a key first");
                }
                Ok(!outcome.refused_other)
            }
            Err(sql::CommitError::Unavailable(e) | sql::CommitError::Refused(e)) => Err(e),
        }
    }

    /// Whether `key` holds a value (staged or stored).
    fn present(&self, collection: Collection, key: &[u8]) -> Result<bool> {
        Ok(self.get(collection, key)?.is_some())
    }
}

impl Store for PgStore {
    fn get(&self, collection: Collection, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(staged) = self.staged_get(collection, key)? {
            return Ok(staged);
        }
        let pool = self.pool.clone();
        let key = key.to_vec();
        self.run(async move { sql::get(&pool, collection, &key).await })
    }

    fn put(&self, collection: Collection, key: &[u8], value: &[u8]) -> Result<()> {
        self.stage([PgOp::Put(collection, key.to_vec(), value.to_vec())])
    }

    fn delete(&self, collection: Collection, key: &[u8]) -> Result<bool> {
        let was = self.present(collection, key)?;
        self.stage([PgOp::Delete(collection, key.to_vec())])?;
        Ok(was)
    }

    fn scan_prefix(&self, collection: Collection, prefix: &[u8]) -> Result<Entries> {
        self.scan(collection, prefix, prefix, usize::MAX, false)
    }

    fn range_from(&self, collection: Collection, start: &[u8], limit: usize) -> Result<Entries> {
        self.scan(collection, &[], start, limit, false)
    }

    fn scan_prefix_from(
        &self,
        collection: Collection,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Entries> {
        self.scan(collection, prefix, start, limit, false)
    }

    fn last(&self, collection: Collection, prefix: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        Ok(self
            .scan(collection, prefix, prefix, 1, true)?
            .into_iter()
            .next())
    }

    fn apply(&self, batch: Batch) -> Result<bool> {
        self.apply_ops(batch.ops().iter().map(to_pg).collect())
    }

    fn insert_if_absent(&self, collection: Collection, key: &[u8], value: &[u8]) -> Result<bool> {
        let mut b = Batch::new();
        b.insert_if_absent(collection, key, value);
        self.apply(b)
    }

    fn flush(&self) -> Result<()> {
        let _flushing = lock(&self.flushing)?;
        let overlay = {
            let mut staged = lock(&self.staged)?;
            staged.drop_behind_refusals();
            if staged.pending.is_empty() {
                return Ok(());
            }
            let overlay = Arc::new(std::mem::take(&mut staged.pending));
            staged.committing = Some(Arc::clone(&overlay));
            overlay
        };
        let pool = self.pool.clone();
        let committing = Arc::clone(&overlay);
        let node = self.node;
        let result = self
            .run(async move { Ok(sql::commit(&pool, &committing.units, node).await) })
            .unwrap_or_else(|e| Err(sql::CommitError::Unavailable(e)));
        let mut staged = lock(&self.staged)?;
        staged.committing = None;
        self.counts
            .note_reachable(!matches!(result, Err(sql::CommitError::Unavailable(_))));
        match result {
            Ok(outcome) => {
                self.counts.note_sent(outcome.wakeups);
                for (c, what) in &outcome.refused_appends {
                    staged
                        .refused
                        .entry(c.clone())
                        .or_default()
                        .insert(what.clone());
                }
                self.counts.note_refused(outcome.refused_appends.len());
                // Units staged meanwhile behind a refused append go too (at the next flush's
                // start at the latest; now, so that reads stop seeing them).
                staged.drop_behind_refusals();
                if outcome.refused_other {
                    // Cannot happen: a unit whose conditional insert can be refused either
                    // appends to the log (refused above, its writer asks) or was committed on
                    // its own (`apply_ops`). Were one refused here, its writer was told
                    // `true`: say so rather than acknowledge it.
                    return Err(Error::Storage {
                        op: "flush",
                        detail: "another relay node took a key this batch inserted".into(),
                    });
                }
                Ok(())
            }
            Err(sql::CommitError::Unavailable(e)) => {
                // Nothing was committed: keep the writes, ahead of the newer ones, for the
                // next flush (their writers are told this one failed).
                let mut back = Arc::try_unwrap(overlay)
                    .unwrap_or_else(|shared| Overlay::of(shared.units.clone()));
                back.then(std::mem::take(&mut staged.pending));
                staged.pending = back;
                Err(e)
            }
            // The batch cannot be stored at all (a number out of the database's range).
            Err(sql::CommitError::Refused(e)) => Err(e),
        }
    }
}

impl PgStore {
    /// The unit of a message append.
    fn message_unit(m: &MessageAppend<'_>, retry: bool) -> Unit {
        let mut ops = vec![PgOp::Append {
            conversation: m.conversation.to_vec(),
            seq: m.seq,
            message: Some((m.epoch, m.sender.to_vec(), m.counter)),
            item: m.item.to_vec(),
        }];
        if let Some(record) = m.record {
            ops.push(PgOp::Put(
                Collection::Conversations,
                m.conversation.to_vec(),
                record.to_vec(),
            ));
        }
        Unit { ops, retry }
    }
}

impl ConversationLog for PgStore {
    fn append_message(&self, m: &MessageAppend<'_>) -> Result<bool> {
        self.stage_unit(Self::message_unit(m, false))
    }

    fn append_message_again(&self, m: &MessageAppend<'_>) -> Result<()> {
        self.stage_unit(Self::message_unit(m, true)).map(|_| ())
    }

    fn shared(&self) -> bool {
        true
    }

    fn take_refused(&self, conversation: &[u8], what: &Refused) -> Result<bool> {
        let mut staged = lock(&self.staged)?;
        let staged = &mut *staged;
        if !settled(&mut staged.refused, conversation, what) {
            return Ok(false);
        }
        // A message is appended again: the conversation stays held until it is. Other items
        // are made again with their requests, from the reloaded state, checks and all (a
        // sender's messages are the only order to keep).
        if matches!(what, Refused::Message { .. }) {
            staged
                .settling
                .entry(conversation.to_vec())
                .or_default()
                .insert(what.clone());
        }
        Ok(true)
    }

    /// Commits what this node staged first (so the value compared is the database's, and
    /// this node's own earlier update of the key is in it), then updates the row in a
    /// statement of its own, conditional on its value, durable when it returns.
    fn replace_if(
        &self,
        collection: Collection,
        key: &[u8],
        old: &[u8],
        new: &[u8],
    ) -> Result<bool> {
        self.flush()?;
        let pool = self.pool.clone();
        let (key, old, new) = (key.to_vec(), old.to_vec(), new.to_vec());
        self.run(async move { sql::replace_if(&pool, collection, &key, &old, &new).await })
    }

    /// Like [`Self::replace_if`]: commits what this node staged, then inserts in a statement
    /// of its own.
    fn insert_if_absent_now(
        &self,
        collection: Collection,
        key: &[u8],
        value: &[u8],
    ) -> Result<bool> {
        self.flush()?;
        let pool = self.pool.clone();
        let (key, value) = (key.to_vec(), value.to_vec());
        self.run(
            async move { conditional::insert_if_absent(&pool, collection, &key, &value).await },
        )
    }

    /// One transaction of its own, outside group commit and without committing what this
    /// node staged first: the counts are written only this way in a cluster (a node gathers
    /// its changes in memory, `limits::bytes::ByteCounts`), so nothing staged can hold one.
    fn add_counts(
        &self,
        collection: Collection,
        changes: &[(Vec<u8>, i64)],
    ) -> Result<Vec<(Vec<u8>, u64)>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let pool = self.pool.clone();
        // In key order (the locking order), one change per key.
        let mut changes = changes.to_vec();
        changes.sort_unstable();
        changes.dedup_by(|later, first| {
            let same = later.0 == first.0;
            if same {
                first.1 = first.1.saturating_add(later.1);
            }
            same
        });
        self.run(async move { conditional::add_counts(&pool, collection, &changes).await })
    }

    /// One statement of its own, outside group commit: a bucket is not state a crash must
    /// keep, and the event it counts waits for nothing else.
    fn rate_bucket(
        &self,
        key: &[u8],
        rate: BucketRate,
        op: BucketOp,
    ) -> Result<Option<BucketAnswer>> {
        let pool = self.pool.clone();
        let key = key.to_vec();
        self.run(async move { buckets::rate_bucket(&pool, &key, rate, op).await })
            .map(Some)
    }

    fn prune_rate_buckets(&self) -> Result<u64> {
        let pool = self.pool.clone();
        self.run(async move { buckets::prune(&pool).await })
    }

    fn rate_bucket_counts(&self, limits: &'static [&'static str]) -> Result<Vec<(Vec<u8>, u64)>> {
        let pool = self.pool.clone();
        self.run(async move { buckets::counts(&pool, limits).await })
    }

    fn publish_presence(&self, agents: &[Vec<u8>], ttl: std::time::Duration) -> Result<()> {
        let (pool, node, agents) = (self.pool.clone(), self.node, agents.to_vec());
        let ttl = ttl.as_secs_f64();
        self.run(async move { presence::publish(&pool, node, &agents, ttl).await })
    }

    fn agents_present(&self, agents: &[Vec<u8>]) -> Result<Option<Vec<Vec<u8>>>> {
        let (pool, agents) = (self.pool.clone(), agents.to_vec());
        self.run(async move { presence::present(&pool, &agents).await })
            .map(Some)
    }

    /// Inline in the notification when it fits; else stored in `forwarded_pushes` and sent by
    /// reference (`wake::store_push`), so no push is dropped for its size.
    fn forward_push(&self, to: &[u8], frame: &[u8]) -> bool {
        match wake::push_payload(self.node, to, frame) {
            Some(payload) => self.notify_push(payload),
            None => self.store_push(to, frame),
        }
        true
    }

    fn stored_push(&self, id: i64) -> Result<Option<Vec<u8>>> {
        let pool = self.pool.clone();
        let read = self.run(async move { wake::stored_push(&pool, id).await });
        match &read {
            Ok(found) => self.counts.note_stored_push_read(found.is_some()),
            Err(_) => self.counts.note_stored_push_lost(),
        }
        read
    }

    fn prune_stored_pushes(&self) -> Result<u64> {
        let pool = self.pool.clone();
        self.run(async move { wake::prune_pushes(&pool).await })
    }

    fn forward_release(&self, to: &[u8], id: &[u8]) {
        self.notify_push(wake::release_payload(self.node, to, id));
    }

    fn forward_close(&self, to: &[u8], code: u16, name: &str) {
        self.notify_push(wake::close_payload(self.node, to, code, name));
    }

    fn give_up_refused(&self, conversation: &[u8], what: &Refused) -> Result<()> {
        settled(&mut lock(&self.staged)?.settling, conversation, what);
        Ok(())
    }

    fn committed_items_after(
        &self,
        conversation: &[u8],
        after: u64,
        limit: usize,
    ) -> Result<Entries> {
        let pool = self.pool.clone();
        let prefix = conversation.to_vec();
        let lo = prefixed_seq_key(conversation, after.saturating_add(1));
        let hi = prefix_end(conversation);
        self.run(async move {
            sql::scan(
                &pool,
                Collection::Messages,
                &prefix,
                &lo,
                hi.as_deref(),
                limit,
                false,
            )
            .await
        })
    }

    fn committed_last_seq(&self, conversation: &[u8]) -> Result<Option<u64>> {
        let pool = self.pool.clone();
        let conversation = conversation.to_vec();
        self.run(async move { sql::head(&pool, &conversation).await })
    }

    fn committed_tails(
        &self,
        from: &[(&[u8], u64)],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Entries)>> {
        if from.is_empty() {
            return Ok(Vec::new());
        }
        let pool = self.pool.clone();
        let from: Vec<(Vec<u8>, u64)> = from.iter().map(|(c, a)| (c.to_vec(), *a)).collect();
        self.run(async move { sql::tails(&pool, &from, limit).await })
    }

    fn committed_heads(&self, conversations: &[&[u8]]) -> Result<Vec<(Vec<u8>, u64)>> {
        if conversations.is_empty() {
            return Ok(Vec::new());
        }
        let pool = self.pool.clone();
        let conversations: Vec<Vec<u8>> = conversations.iter().map(|c| c.to_vec()).collect();
        self.run(async move { sql::heads(&pool, &conversations).await })
    }

    fn append_item(
        &self,
        conversation: &[u8],
        seq: u64,
        item: &[u8],
        mut with: Batch,
    ) -> Result<bool> {
        // The item is staged as a log append, which checks the sequence number at commit.
        with.put(
            Collection::Messages,
            &prefixed_seq_key(conversation, seq),
            item,
        );
        let item_key = prefixed_seq_key(conversation, seq);
        let ops = with
            .ops()
            .iter()
            .map(|op| match op {
                Op::Put {
                    collection: Collection::Messages,
                    key,
                    value,
                } if *key == item_key => PgOp::Append {
                    conversation: conversation.to_vec(),
                    seq,
                    message: None,
                    item: value.clone(),
                },
                other => to_pg(other),
            })
            .collect();
        self.apply_ops(ops)
    }
}

/// Removes `what` from `conversation`'s set in `map` (and the set once empty); whether it was
/// there.
fn settled(
    map: &mut HashMap<Vec<u8>, BTreeSet<Refused>>,
    conversation: &[u8],
    what: &Refused,
) -> bool {
    let Some(set) = map.get_mut(conversation) else {
        return false;
    };
    let was = set.remove(what);
    if set.is_empty() {
        map.remove(conversation);
    }
    was
}

/// The staged form of a batch's op. An audit leaf is never overwritten: its put is an insert
/// the database refuses if another node took the index.
fn to_pg(op: &Op) -> PgOp {
    match op {
        Op::Put {
            collection: Collection::AuditLeaves,
            key,
            value,
        } => PgOp::InsertIfAbsent(Collection::AuditLeaves, key.clone(), value.clone()),
        Op::Put {
            collection,
            key,
            value,
        } => PgOp::Put(*collection, key.clone(), value.clone()),
        Op::Delete { collection, key } => PgOp::Delete(*collection, key.clone()),
        Op::InsertIfAbsent {
            collection,
            key,
            value,
        } => PgOp::InsertIfAbsent(*collection, key.clone(), value.clone()),
        Op::ReplaceIf {
            collection,
            key,
            old,
            value,
        } => PgOp::ReplaceIf(*collection, key.clone(), old.clone(), value.clone()),
    }
}
