//! Cluster nodes for the tests: relay processes (`sealdesk-relay --store postgres`) on one
//! throwaway PostgreSQL ([`crate::pg`]), each on `127.0.0.1:0`, sharing one log key file.

use std::{path::Path, time::Duration};

use tempfile::TempDir;

use crate::{
    child::{RelayProcess, relay_binary},
    pg,
};

/// A relay node: its process, its URL and its (unused by PostgreSQL, but required) data
/// directory.
pub struct Node {
    /// The relay process.
    pub process: RelayProcess,
    /// Its WebSocket URL.
    pub url: String,
    _dir: TempDir,
}

/// Starts a node on database `db` with the shared log key file `key`; `wakeups` off leaves the
/// periodic catch-up (every 150 ms here) alone to deliver across nodes.
pub fn node(db: &str, key: &Path, wakeups: bool) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let key = key.to_string_lossy().into_owned();
    let wakeups = if wakeups { "true" } else { "false" };
    let mut process = RelayProcess::spawn(
        relay_binary(),
        dir.path(),
        &[
            ("STORE", "postgres"),
            ("DATABASE_URL", db),
            ("MIGRATE", "true"),
            ("LOG_KEY_FILE", &key),
            ("CLUSTER_WAKEUPS", wakeups),
            ("CLUSTER_CATCH_UP_MS", "150"),
        ],
    )
    .unwrap();
    process.wait_ready(Duration::from_secs(60)).unwrap();
    let url = process.ws_url();
    Node {
        process,
        url,
        _dir: dir,
    }
}

/// A fresh database named after `test` and a directory holding its log key file `log.key`, or
/// `None` without PostgreSQL binaries (the caller skips).
pub fn database(test: &str) -> Option<(String, TempDir)> {
    let server = pg::server()?;
    let db = pg::database(server, &format!("cluster_{test}_{}", std::process::id()));
    let keys = tempfile::tempdir().unwrap();
    std::fs::write(keys.path().join("log.key"), [0x5au8; 64]).unwrap();
    Some((db, keys))
}
