//! Cluster nodes for the tests: relay processes (`sealdesk-relay --store postgres`) on one
//! throwaway PostgreSQL ([`crate::pg`]), each on `127.0.0.1:0`, sharing one log key file.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::{
    child::{RelayProcess, relay_binary},
    pg,
    wait::{STEP, eventually},
};

/// A relay node: its process, its URL and address, and its (unused by PostgreSQL, but
/// required) data directory.
pub struct Node {
    /// The relay process.
    pub process: RelayProcess,
    /// Its WebSocket URL.
    pub url: String,
    /// Its listening address.
    pub addr: SocketAddr,
    _dir: TempDir,
}

/// A node's process started on database `db` with the shared log key file `key`, not yet
/// ready (several can then start at the same instant); `wakeups` off leaves the periodic
/// catch-up (every 150 ms here) alone to deliver across nodes.
pub fn start(db: &str, key: &Path, wakeups: bool) -> (RelayProcess, TempDir) {
    start_with(db, key, wakeups, &[])
}

/// As [`start`], with more settings (`SEALDESK_RELAY_` names without the prefix, e.g.
/// `("OPEN_CONVERSATIONS_PER_ORG", "2")`).
pub fn start_with(
    db: &str,
    key: &Path,
    wakeups: bool,
    settings: &[(&str, &str)],
) -> (RelayProcess, TempDir) {
    start_with_env(db, key, wakeups, settings, &[])
}

/// As [`start_with`], with extra environment variables `env` (`(NAME, value)`), such as a
/// test-only hook.
pub fn start_with_env(
    db: &str,
    key: &Path,
    wakeups: bool,
    settings: &[(&str, &str)],
    env: &[(&str, &str)],
) -> (RelayProcess, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let key = key.to_string_lossy().into_owned();
    let wakeups = if wakeups { "true" } else { "false" };
    let mut limits = vec![
        ("STORE", "postgres"),
        ("DATABASE_URL", db),
        ("MIGRATE", "true"),
        ("LOG_KEY_FILE", key.as_str()),
        ("CLUSTER_WAKEUPS", wakeups),
        ("CLUSTER_CATCH_UP_MS", "150"),
    ];
    limits.extend_from_slice(settings);
    let process = RelayProcess::spawn_with_env(relay_binary(), dir.path(), &limits, env).unwrap();
    (process, dir)
}

/// Waits until a started node serves.
pub fn ready((mut process, dir): (RelayProcess, TempDir)) -> Node {
    let addr = match process.wait_ready(Duration::from_secs(60)) {
        Ok(addr) => addr,
        Err(e) => panic!("a node did not start: {e}\n{}", process.log_tail()),
    };
    let url = process.ws_url();
    Node {
        process,
        url,
        addr,
        _dir: dir,
    }
}

/// Starts a node and waits until it serves (see [`start`]).
pub fn node(db: &str, key: &Path, wakeups: bool) -> Node {
    ready(start(db, key, wakeups))
}

/// A node's commit gate (the relay's test-only `SEALDESK_TEST_COMMIT_GATE`,
/// [`sealdesk_server::commit::COMMIT_GATE_ENV`]): while it is closed, the node's group commit
/// holds every flush that would start, so what the node staged is neither committed nor
/// acknowledged until the test opens it. A test closes it before the request whose commit it
/// wants held, makes the other node act, and opens it: the race happens by construction, not
/// within a time window. Open when made; the gate's file lives in a directory of its own,
/// removed with the gate.
///
/// [`CommitGate::catch_up`] makes the same kind of gate for the node's periodic catch-up
/// (`SEALDESK_TEST_CATCH_UP_GATE`): while it is closed, the catch-up that starts waits.
pub struct CommitGate {
    dir: TempDir,
    var: &'static str,
}

impl CommitGate {
    /// An open commit gate.
    pub fn new() -> Self {
        Self::of(sealdesk_server::commit::COMMIT_GATE_ENV)
    }

    /// An open catch-up gate ([`sealdesk_server::relay::CATCH_UP_GATE_ENV`]): while it is closed,
    /// the node's periodic catch-up waits before asking the database which conversations are
    /// behind (and logs "a catch-up held at its gate").
    pub fn catch_up() -> Self {
        Self::of(sealdesk_server::relay::CATCH_UP_GATE_ENV)
    }

    fn of(var: &'static str) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            var,
        }
    }

    /// The file whose existence closes the gate.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("closed")
    }

    /// The environment variable that puts a node behind this gate.
    pub fn env(&self) -> (&'static str, String) {
        (self.var, self.path().to_string_lossy().into_owned())
    }

    /// Closes the gate: every flush (or catch-up) the node starts from now on waits.
    pub fn close(&self) {
        std::fs::write(self.path(), b"closed").unwrap();
    }

    /// Opens the gate: the flush (or catch-up) held, if any, goes on, and so do later ones.
    pub fn open(&self) {
        std::fs::remove_file(self.path()).unwrap();
    }
}

impl Default for CommitGate {
    fn default() -> Self {
        Self::new()
    }
}

/// Node A, behind a [`CommitGate`] (open until the test closes it), and node B (started
/// first): the pair the tests that force a cross-node race use.
pub fn slow_and_quick(db: &str, key: &Path) -> (Node, Node, CommitGate) {
    let b = node(db, key, true);
    let gate = CommitGate::new();
    let (name, path) = gate.env();
    let a = ready(start_with_env(db, key, true, &[], &[(name, path.as_str())]));
    (a, b, gate)
}

/// `GET path` on a node's HTTP port: the body, once answered `200`.
pub async fn http_get(node: &Node, path: &str) -> String {
    eventually(&format!("{path} to answer"), async || {
        let mut tcp = TcpStream::connect(node.addr).await.ok()?;
        tcp.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
        // Read until the body is complete (the connection may stay open after it).
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let text = String::from_utf8_lossy(&out).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                });
                if length.is_some_and(|n| body.len() >= n) {
                    return text.starts_with("HTTP/1.1 200").then_some(text);
                }
            }
            match tokio::time::timeout(STEP, tcp.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
                _ => {
                    let text = String::from_utf8_lossy(&out).into_owned();
                    return text.starts_with("HTTP/1.1 200").then_some(text);
                }
            }
        }
    })
    .await
}

/// The value of counter `name` in a node's `/metrics`.
pub async fn metric(node: &Node, name: &str) -> u64 {
    let text = http_get(node, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
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

/// Terminates the wake-up listeners' database connections of the nodes on database `db` (one
/// per node, `nodes` of them: asserted); each node reconnects, and its round for the
/// reconnect catches up, re-checks agent keys and reloads blocks (`relay::cluster`).
pub fn terminate_listeners(db: &str, nodes: usize) {
    let terminated = pg::query(
        db,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%' \
         AND pid <> pg_backend_pid()",
    );
    assert_eq!(terminated, nodes.to_string(), "one listener per node");
}
