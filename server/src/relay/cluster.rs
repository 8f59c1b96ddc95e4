//! Cluster mode's background work on each node: the wake-up listener, the wake-up rounds and
//! the periodic catch-up, feeding the service's cross-node pushes (`service::cluster`).
//!
//! ```text
//!  listener ──(wake-ups, ≤ WAKE_QUEUE)──┐
//!                                       ├─► round task: one round at a time, each conversation
//!  catch-up ──(behind, one list at most)┘   read once per round, all in one statement
//!  chores, presence: tasks of their own (no round waits behind them)
//! ```
//!
//! A wake-up names conversations another node appended to; the node reads each from its push
//! cursor, brings what it caches of it up to date and pushes what is new to the members
//! connected to it. The wake-ups queued while a round runs are merged into the next round, so
//! a conversation is read once per round however many batches named it (a node behind never
//! falls further behind), and a round reads all its conversations in one statement.
//!
//! **Architecture Invariant:** only the round task reads conversations for pushes, one round
//! at a time: two reads of one conversation at once could push an item twice.
//!
//! The periodic catch-up (every `cluster_catch_up_ms`, and whenever the listener
//! (re)connects) is a task of its own ([`catch_up`]): it asks the database which watched
//! conversations moved past their cursor (one query for all, `Service::behind`) and hands the
//! list to the round task, which reads those conversations in its next round, merged with the
//! wake-ups queued (a conversation both named and found behind is read once), so a lost wake-up
//! only delays a push. It also reads the consent pushes for the org masters stored since its
//! previous read and pushes those this node missed (`service::consent_makeup`), so a lost
//! forward to a master only delays that push too. It used to run inside a round, holding the node's single round slot
//! while it queried and read every conversation found behind — on a loaded node most of them
//! only behind because their wake-up was queued behind the catch-up itself — and a minority of
//! wake-ups waited 0.5–2.5 s for their round (BENCHMARKS.md, "Catch-up off the round slot").
//! Now the slot holds only reads: a slow heads query delays the catch-up alone.
//!
//! The node's other periodic work — folding its stored-bytes counts into the database and
//! reloading blocks — runs in a task of its own ([`chores`]), so no wake-up waits behind it
//! either. When the listener (re)connects, the node also
//! reloads the blocks (one another node stored meanwhile is enforced at once, not a chores
//! period later) and re-checks the registered agent keys connected to it against their names'
//! current keys and closes an old key's sessions (a re-certification's close, forwarded once,
//! may have been missed meanwhile); the periodic chores re-check a bounded share of them in turn
//! ([`RECHECK_PER_ROUND`]), for a close never heard or lost while the listener stayed up.
//! Another node's audit appends arrive as the log's new size: once per round, the node reads
//! the log again and tells the sessions here that watch it (`audit_grew`); the catch-up, while
//! a session here watches, reads the log's new leaves too and tells the watchers of growth
//! they were not told (`service::audit_watch`), so a lost audit wake-up only delays the hint.
//! With `cluster_wakeups = 0` the node does not listen
//! at all and the catch-up alone delivers (a configuration for tests and for databases that
//! have no `LISTEN`).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use sealdesk_protocol::{ids::ConversationId, keys::SigningPublicKey};
use tokio::{
    sync::{Notify, mpsc},
    task::JoinHandle,
};
use tracing::warn;

use super::service::Service;
use crate::{
    metrics::RoundTimes,
    store::{Wake, WakeCounts},
};

/// Wake-ups queued between the listener and the node (beyond that the listener waits; the
/// database keeps the notifications meanwhile).
const WAKE_QUEUE: usize = 256;

/// How long the listener waits before connecting again after losing the database.
const RECONNECT: Duration = Duration::from_millis(500);

/// What the cluster task needs to know.
pub(super) struct ClusterConfig {
    /// The shared database.
    pub url: String,
    /// This node's name in its own wake-ups.
    pub node: u64,
    /// The engine's counts (the listener adds the wake-ups it receives).
    pub counts: Arc<WakeCounts>,
    /// Listen for wake-ups (else catch up only).
    pub wakeups: bool,
    /// The periodic catch-up's interval (and the presence refresh's).
    pub catch_up: Duration,
    /// How long this node's published agents count online unless refreshed.
    pub presence_ttl: Duration,
}

/// Starts the node's cluster task; it runs until aborted.
pub(super) fn spawn(svc: Arc<Service>, cfg: ClusterConfig) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (tx, mut rx) = mpsc::channel::<(Instant, Wake)>(WAKE_QUEUE);
        // One list of conversations behind at most: the catch-up asks again only once the
        // round task took its previous answer.
        let (behind_tx, mut behind_rx) = mpsc::channel::<Vec<(ConversationId, u64)>>(1);
        let catch_up_now = Arc::new(Notify::new());
        // Aborted with this task (its future is dropped, and the guard with it).
        let _listener = cfg.wakeups.then(|| {
            AbortOnDrop(tokio::spawn(crate::store::listen_for_wakeups(
                cfg.url.clone(),
                cfg.node,
                Arc::clone(&cfg.counts),
                tx.clone(),
                RECONNECT,
            )))
        });
        let period = cfg
            .catch_up
            .max(Duration::from_millis(crate::config::MIN_CATCH_UP_MS));
        // The catch-up's query and the other periodic work run in tasks of their own: wake-up
        // rounds never wait behind them.
        let _catch_up = AbortOnDrop(tokio::spawn(catch_up(
            Arc::clone(&svc),
            period,
            behind_tx,
            Arc::clone(&catch_up_now),
        )));
        let _chores = AbortOnDrop(tokio::spawn(chores(Arc::clone(&svc), period)));
        let _presence = AbortOnDrop(tokio::spawn(presence(
            Arc::clone(&svc),
            period,
            cfg.presence_ttl,
        )));
        loop {
            // Everything queued meanwhile is handled in one round: each conversation is read
            // once however many wake-ups named it, and once if the catch-up found it too.
            let mut round = Round::default();
            tokio::select! {
                Some(behind) = behind_rx.recv() => round.behind = behind,
                Some((at, w)) = rx.recv() => round.add(at, w),
                else => return,
            };
            while round.len() < MAX_ROUND {
                match rx.try_recv() {
                    Ok((at, w)) => round.add(at, w),
                    Err(_) => break,
                }
            }
            if round.behind.is_empty()
                && let Ok(behind) = behind_rx.try_recv()
            {
                round.behind = behind;
            }
            if round.reconnected {
                // Wake-ups sent while the listener was away are lost: the catch-up asks the
                // database at once.
                catch_up_now.notify_one();
            }
            let svc = Arc::clone(&svc);
            let taken = Instant::now();
            // The service reads the database synchronously: off the runtime's workers.
            let metrics = Arc::clone(&svc.metrics);
            match tokio::task::spawn_blocking(move || round.run(&svc, taken)).await {
                // The round task goes on: how long after the run ended.
                Ok(ended) => metrics.round.back.observe(ended.elapsed().as_secs_f64()),
                Err(e) => warn!(error = %e, "a cluster round failed"),
            }
        }
    })
}

/// The periodic catch-up: every `period`, and at once when the round task says the listener
/// (re)connected (`now`), asks the database which watched conversations moved past their
/// cursor ([`Service::behind`], one query) and hands them to the round task (`behind`); and
/// makes up the master's consent pushes and the audit log's growth told to its watchers that
/// this node missed (`service::consent_makeup`, `service::audit_watch`). Beside
/// the rounds, not in one: a slow query holds up no wake-up, and what it finds is read in a
/// round, so the round task stays the only reader. Its answer waits while the round task has
/// not taken the previous one (a channel of one), so at most one list is ever pending.
async fn catch_up(
    svc: Arc<Service>,
    period: Duration,
    behind: mpsc::Sender<Vec<(ConversationId, u64)>>,
    now: Arc<Notify>,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = now.notified() => {}
        }
        let svc = Arc::clone(&svc);
        // The engine's calls block: off the runtime's workers.
        let found = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let found = svc.behind();
            svc.metrics
                .catch_up_round
                .observe(started.elapsed().as_secs_f64());
            // The master's consent pushes other nodes forwarded meanwhile, if missed
            // (`service::consent_makeup`).
            svc.make_up_master_pushes();
            // The audit log's growth, if its wake-up was missed and a session here watches
            // it (`service::audit_watch`).
            svc.make_up_audit_growth();
            found
        })
        .await;
        match found {
            Ok(found) if found.is_empty() => {}
            Ok(found) => {
                if behind.send(found).await.is_err() {
                    return;
                }
            }
            Err(e) => warn!(error = %e, "a cluster catch-up failed"),
        }
    }
}

/// Every `period`, what a node of a cluster does besides delivering: folds the stored-bytes
/// counts it gathered into the database (one transaction, `service::stored_bytes`),
/// reloads the blocks other nodes stored (`service::blocks`), counts the shared rate buckets
/// of each limit (their cap, `limits::shared`) and drops those that are full again (every
/// [`crate::limits::shared::PRUNE_EVERY`]), and re-checks the next
/// [`RECHECK_PER_ROUND`] connected agent keys against their names' current keys (a close
/// lost while the listener stayed up, or never heard without a listener, is made up within a
/// few periods), and drops the pushes forwarded by reference that lapsed
/// (`service::cluster`). Apart from the wake-up rounds, which these database reads and writes
/// held up for as long as they took, and which share no state with them. A node stopping cleanly folds
/// its counts once more (`relay::serve_with`).
async fn chores(svc: Arc<Service>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Where the periodic re-check of agent keys goes on from.
    let mut recheck_from: Option<SigningPublicKey> = None;
    let mut pruned = Instant::now();
    loop {
        tick.tick().await;
        let svc = Arc::clone(&svc);
        let from = recheck_from;
        let prune = pruned.elapsed() >= crate::limits::shared::PRUNE_EVERY;
        if prune {
            pruned = Instant::now();
        }
        let done = tokio::task::spawn_blocking(move || {
            // The shared rate buckets: counted every round (the cap on keys), pruned (and
            // counted) every PRUNE_EVERY.
            if prune {
                svc.guard.prune_shared();
            } else {
                svc.guard.count_shared();
            }
            let next = svc.recheck_some_agent_keys(from, RECHECK_PER_ROUND).1;
            let started = Instant::now();
            svc.fold_byte_counts();
            svc.metrics
                .byte_fold
                .observe(started.elapsed().as_secs_f64());
            // Abuse controls: blocks stored by other nodes (service/blocks.rs).
            if let Err(e) = svc.reload_blocks() {
                warn!(code = ?e.code, "reloading blocks failed: {}", e.message);
            }
            svc.prune_stored_pushes();
            next
        })
        .await;
        match done {
            Ok(next) => recheck_from = next,
            Err(e) => warn!(error = %e, "a cluster node's periodic chores failed"),
        }
    }
}

/// Publishes the agents connected to this node (`service::presence`) every `period`, each
/// for `ttl`, and at once when an agent key's first connection arrives or its last one
/// leaves (the hub wakes it; changes during a publication coalesce into the next). A task of
/// its own, not one of the [`chores`]: an agent's arrival is published without waiting for a
/// stored-bytes fold, and the refresh keeps its period while the chores take long. A failed
/// publication is logged and tried again at the next change or period; the rows lapse after
/// `ttl` if none succeeds.
async fn presence(svc: Arc<Service>, period: Duration, ttl: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = svc.hub.agents_changed() => {}
        }
        let svc = Arc::clone(&svc);
        // The engine's calls block: off the runtime's workers.
        if let Err(e) = tokio::task::spawn_blocking(move || svc.publish_presence(ttl)).await {
            warn!(error = %e, "publishing this node's agents failed");
        }
    }
}

/// Wake-ups handled together at most (beyond that, the next round takes the rest).
const MAX_ROUND: usize = 4096;

/// Connected agent keys the periodic chores re-check at most per period (one read each;
/// [`Service::recheck_some_agent_keys`]): with the default 2 s interval, a node with N agents
/// connected re-checks each within `ceil(N / 64) × 2 s`, at most 32 reads a second.
const RECHECK_PER_ROUND: usize = 64;

/// The wake-ups of one round, merged.
#[derive(Default)]
struct Round {
    /// The conversations named, each with the lowest first sequence number named.
    conversations: std::collections::BTreeMap<ConversationId, u64>,
    /// The watched conversations the catch-up found behind, each with the head it saw, in
    /// conversation order (`Service::behind`).
    behind: Vec<(ConversationId, u64)>,
    /// The listener (re)connected: a close forwarded meanwhile may have been missed.
    reconnected: bool,
    /// Forwarded pushes, in the order received.
    pushes: Vec<Wake>,
    /// The largest audit log size other nodes told of (`Wake::AuditGrew`): the watchers here
    /// are told once per round, however many appends it merged.
    audit: Option<u64>,
    /// Wake-ups taken.
    taken: usize,
    /// When each wake-up naming conversations arrived at the listener.
    arrived: Vec<Instant>,
}

impl Round {
    fn len(&self) -> usize {
        self.taken
    }

    fn add(&mut self, at: Instant, wake: Wake) {
        self.taken += 1;
        match wake {
            Wake::Conversations(list) => {
                self.arrived.push(at);
                for (c, seq) in list {
                    if let Ok(c) = ConversationId::try_from(c.as_slice()) {
                        let first = self.conversations.entry(c).or_insert(seq);
                        *first = (*first).min(seq);
                    }
                }
            }
            Wake::Reconnected => self.reconnected = true,
            Wake::AuditGrew { size } => self.audit = self.audit.max(Some(size)),
            push @ (Wake::Push { .. }
            | Wake::StoredPush { .. }
            | Wake::Release { .. }
            | Wake::Close { .. }) => self.pushes.push(push),
        }
    }

    /// Handles the round (taken off the queue at `taken`): the conversations named and those
    /// the catch-up found behind (each read once), then the forwarded pushes, then the audit
    /// log's growth; and times it, whole and by part (`metrics::RoundMetrics`). Returns when
    /// it ended.
    fn run(self, svc: &Service, taken: Instant) -> Instant {
        let start = Instant::now();
        for at in &self.arrived {
            svc.metrics
                .wake_wait
                .observe(start.saturating_duration_since(*at).as_secs_f64());
        }
        let mut times = RoundTimes {
            wait: self
                .arrived
                .iter()
                .min()
                .map(|at| start.saturating_duration_since(*at)),
            handoff: start.saturating_duration_since(taken),
            ..RoundTimes::default()
        };
        let named: Vec<(ConversationId, u64)> = self.conversations.into_iter().collect();
        if !named.is_empty() || !self.behind.is_empty() {
            svc.woken(&named, &self.behind, &mut times);
        }
        let part = Instant::now();
        if self.reconnected {
            // Blocks other nodes stored while the listener was away are enforced from now on,
            // not from the next chores period (`service::blocks`).
            if let Err(e) = svc.reload_blocks() {
                warn!(code = ?e.code, "reloading blocks failed: {}", e.message);
            }
            // Every connected agent key at once: a close forwarded while the listener was away
            // was missed (`service::cluster`).
            svc.recheck_agent_keys();
        }
        times.reconnect = part.elapsed();
        let part = Instant::now();
        for push in self.pushes {
            match push {
                Wake::Push { to, frame } => svc.forwarded_push(&to, frame),
                Wake::StoredPush { to, id } => svc.forwarded_stored_push(&to, id),
                Wake::Release { to, id } => svc.forwarded_release(&to, &id),
                Wake::Close { to, code, name } => svc.forwarded_close(&to, code, name.as_deref()),
                Wake::Conversations(_) | Wake::Reconnected | Wake::AuditGrew { .. } => {}
            }
        }
        times.forwarded = part.elapsed();
        let part = Instant::now();
        if let Some(size) = self.audit {
            svc.audit_grew_elsewhere(size);
        }
        times.audit = part.elapsed();
        times.whole = start.elapsed();
        svc.metrics.round.observe(&times);
        Instant::now()
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Puts the log key of `path` (64 secret bytes, raw or as 128 hex digits) in `store` if it
/// holds none yet, before the service loads it; refuses a store that holds another one.
///
/// # Errors
///
/// [`crate::Error::File`] if the file cannot be read or is not a key;
/// [`crate::Error::LogKeyMismatch`] if the store holds another key; storage errors.
pub(super) fn provision_log_key(
    store: &dyn crate::store::Store,
    path: &std::path::Path,
) -> crate::Result<()> {
    use super::service::keys::RELAY_IDENTITY;
    use crate::store::Collection;
    let file_err = |detail: String| crate::Error::File {
        path: path.to_owned(),
        detail,
    };
    let raw = std::fs::read(path).map_err(|e| file_err(e.to_string()))?;
    let key = parse_key(&raw).ok_or_else(|| {
        file_err(format!(
            "{} bytes: a log key is 64 bytes, raw or as 128 hex digits",
            raw.len()
        ))
    })?;
    if !store.insert_if_absent(Collection::Meta, RELAY_IDENTITY, &key)? {
        let stored = store.get(Collection::Meta, RELAY_IDENTITY)?;
        if stored.as_deref() != Some(key.as_slice()) {
            return Err(crate::Error::LogKeyMismatch {
                path: path.to_owned(),
            });
        }
        return Ok(());
    }
    store.flush()
}

/// A log key file's 64 bytes: raw, or 128 hex digits (surrounding white space ignored).
fn parse_key(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() == 64 {
        return Some(raw.to_vec());
    }
    let text = std::str::from_utf8(raw).ok()?.trim();
    if text.len() != 128 {
        return None;
    }
    (0..128)
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::store::{Collection, MemoryStore, Store};

    #[test]
    fn a_log_key_file_is_stored_once_and_another_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::new();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, [7u8; 64]).unwrap();
        std::fs::write(&b, format!("{}\n", "08".repeat(64))).unwrap();
        provision_log_key(&store, &a).unwrap();
        assert_eq!(
            store
                .get(
                    Collection::Meta,
                    super::super::service::keys::RELAY_IDENTITY
                )
                .unwrap(),
            Some(vec![7u8; 64])
        );
        // The same file again (a second node): fine; another key: refused, nothing changed.
        provision_log_key(&store, &a).unwrap();
        assert_eq!(
            provision_log_key(&store, &b),
            Err(crate::Error::LogKeyMismatch { path: b.clone() })
        );
        let short = dir.path().join("short");
        std::fs::write(&short, [1u8; 10]).unwrap();
        assert!(matches!(
            provision_log_key(&store, &short),
            Err(crate::Error::File { .. })
        ));
        assert_eq!(parse_key("08".repeat(64).as_bytes()), Some(vec![8u8; 64]));
    }
}
