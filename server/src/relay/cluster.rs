//! Cluster mode's background work on each node: the wake-up listener and the periodic
//! catch-up, both feeding the service's cross-node pushes (`service::cluster`).
//!
//! A wake-up names conversations another node appended to; the node refreshes what it caches
//! of them and pushes what is new to the members connected to it. Every `cluster_catch_up_ms`,
//! and whenever the listener (re)connects, every watched conversation is read from its cursor,
//! so a lost wake-up only delays a push. With `cluster_wakeups = 0` the node does not listen
//! at all and the catch-up alone delivers (a configuration for tests and for databases that
//! have no `LISTEN`).

use std::{sync::Arc, time::Duration};

use sealdesk_protocol::ids::ConversationId;
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::warn;

use super::service::Service;
use crate::store::{Wake, WakeCounts};

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
    /// The periodic catch-up's interval.
    pub catch_up: Duration,
}

/// Starts the node's cluster task; it runs until aborted.
pub(super) fn spawn(svc: Arc<Service>, cfg: ClusterConfig) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (tx, mut rx) = mpsc::channel::<Wake>(WAKE_QUEUE);
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
        let mut tick = tokio::time::interval(cfg.catch_up.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wake = tokio::select! {
                _ = tick.tick() => Wake::Reconnected,
                Some(w) = rx.recv() => w,
            };
            let svc = Arc::clone(&svc);
            // The service reads the database synchronously: off the runtime's workers.
            let done = tokio::task::spawn_blocking(move || match wake {
                Wake::Conversations(list) => {
                    let convs: Vec<(ConversationId, u64)> = list
                        .into_iter()
                        .filter_map(|(c, seq)| {
                            ConversationId::try_from(c.as_slice())
                                .ok()
                                .map(|c| (c, seq))
                        })
                        .collect();
                    svc.woken(&convs);
                }
                Wake::Reconnected => {
                    svc.catch_up_all();
                    // Abuse controls: blocks stored by other nodes (service/blocks.rs).
                    if let Err(e) = svc.reload_blocks() {
                        warn!(code = ?e.code, "reloading blocks failed: {}", e.message);
                    }
                }
                Wake::Push { to, frame } => svc.forwarded_push(&to, frame),
                Wake::Release { to, id } => svc.forwarded_release(&to, &id),
                Wake::Close { to, code } => svc.forwarded_close(&to, code),
            })
            .await;
            if let Err(e) = done {
                warn!(error = %e, "a cluster catch-up failed");
            }
        }
    })
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
