//! Cluster nodes for the tests: relay processes (`sealdesk-relay --store postgres`) on one
//! throwaway PostgreSQL ([`crate::pg`]), each on `127.0.0.1:0`, sharing one log key file.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use sealdesk_server::store::PgStore;
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::{
    Org, RawClient,
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
    /// The directory of the log key file the node started with, when the node shares it with
    /// the other nodes of a [`TwoNodes`] or [`three_nodes`]: it lives as long as any of them.
    _keys: Option<Arc<TempDir>>,
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
    start_binary(relay_binary(), db, key, wakeups, settings, env)
}

/// As [`start_with_env`], with relay binary `bin` instead of this version's ([`relay_binary`]):
/// a node of another version, for the mixed-versions tests (`cluster_mixed_versions.rs`).
pub fn start_binary(
    bin: &Path,
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
    let process = RelayProcess::spawn_with_env(bin, dir.path(), &limits, env).unwrap();
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
        _keys: None,
    }
}

/// Starts a node and waits until it serves (see [`start`]).
pub fn node(db: &str, key: &Path, wakeups: bool) -> Node {
    ready(start(db, key, wakeups))
}

/// Two nodes on a fresh database of their own, sharing its log key file: the cluster most
/// tests need. Made by [`two_nodes`]; each node keeps the key file's directory for as long as
/// it runs.
pub struct TwoNodes {
    /// Node A.
    pub a: Node,
    /// Node B.
    pub b: Node,
    /// The database's URL (for [`terminate_listeners`] and [`pg::query`]).
    pub db: String,
}

impl TwoNodes {
    /// Node A and node B, for a test that goes through them in turn (`both()[i % 2]`).
    pub fn both(&self) -> [&Node; 2] {
        [&self.a, &self.b]
    }

    /// An org set up through node A (`seed`, org `acme`, one agent, one customer), its customer
    /// logged in on node A and its agent on node B: `(org, customer on A, agent on B)`.
    pub async fn customer_on_a_agent_on_b(&self, seed: u64) -> (Org, RawClient, RawClient) {
        let org = Org::setup(&self.a.url, seed, "acme", 1, 1).await;
        let on_a = RawClient::login(&self.a.url, &org.customers[0]).await;
        let on_b = RawClient::login(&self.b.url, &org.agents[0]).await;
        (org, on_a, on_b)
    }
}

/// How the two nodes of [`two_nodes`] start: wake-ups on and nothing more unless a method says
/// otherwise; node A ready first, then node B, unless [`TwoNodesSetup::b_first`].
#[must_use]
pub struct TwoNodesSetup {
    test: String,
    a: NodeSetup,
    b: NodeSetup,
    b_first: bool,
}

/// One node's part of a [`TwoNodesSetup`].
struct NodeSetup {
    wakeups: bool,
    settings: Vec<(String, String)>,
    env: Vec<(String, String)>,
    /// The relay binary, if not this version's ([`relay_binary`]).
    binary: Option<PathBuf>,
}

/// Two nodes on a fresh database named after `test` ([`database`]), set up with the methods of
/// [`TwoNodesSetup`] and started with [`TwoNodesSetup::start`].
pub fn two_nodes(test: &str) -> TwoNodesSetup {
    let node = || NodeSetup {
        wakeups: true,
        settings: Vec::new(),
        env: Vec::new(),
        binary: None,
    };
    TwoNodesSetup {
        test: test.to_owned(),
        a: node(),
        b: node(),
        b_first: false,
    }
}

impl TwoNodesSetup {
    /// Settings for both nodes (`SEALDESK_RELAY_` names without the prefix, as in
    /// [`start_with`]), after the ones already given.
    pub fn settings(self, settings: &[(&str, &str)]) -> Self {
        self.a_settings(settings).b_settings(settings)
    }

    /// Settings for node A only, after the ones already given.
    pub fn a_settings(mut self, settings: &[(&str, &str)]) -> Self {
        self.a.settings.extend(owned(settings));
        self
    }

    /// Settings for node B only, after the ones already given.
    pub fn b_settings(mut self, settings: &[(&str, &str)]) -> Self {
        self.b.settings.extend(owned(settings));
        self
    }

    /// Extra environment variables for node A only (a test-only hook, as in
    /// [`start_with_env`]).
    pub fn a_env(mut self, env: &[(&str, &str)]) -> Self {
        self.a.env.extend(owned(env));
        self
    }

    /// Extra environment variables for node B only.
    pub fn b_env(mut self, env: &[(&str, &str)]) -> Self {
        self.b.env.extend(owned(env));
        self
    }

    /// Node B also logs the info lines of module `target` (such as
    /// `sealdesk_server::relay::service::cluster`), which [`logged`] can then wait for.
    pub fn b_logs_info_of(self, target: &str) -> Self {
        let filter = format!("{},{target}=info", crate::child::LOG_FILTER);
        self.b_env(&[("RUST_LOG", filter.as_str())])
    }

    /// Node A runs relay binary `bin` (another version's, as in [`start_binary`]) instead of
    /// this version's.
    pub fn a_binary(mut self, bin: &Path) -> Self {
        self.a.binary = Some(bin.to_owned());
        self
    }

    /// Node B runs relay binary `bin` instead of this version's.
    pub fn b_binary(mut self, bin: &Path) -> Self {
        self.b.binary = Some(bin.to_owned());
        self
    }

    /// Node B runs behind `gate` (its environment variable naming the gate's file), closed or
    /// open as the test left it: close it first to hold what it gates from B's start.
    pub fn b_behind(self, gate: &CommitGate) -> Self {
        let (name, path) = gate.env();
        self.b_env(&[(name, path.as_str())])
    }

    /// Wake-ups on or off for both nodes (see [`start`]).
    pub fn wakeups(self, on: bool) -> Self {
        self.b_wakeups(on).a_wakeups(on)
    }

    /// Wake-ups on or off for node A only.
    pub fn a_wakeups(mut self, on: bool) -> Self {
        self.a.wakeups = on;
        self
    }

    /// Wake-ups on or off for node B only.
    pub fn b_wakeups(mut self, on: bool) -> Self {
        self.b.wakeups = on;
        self
    }

    /// Node B starts, and is ready, before node A starts (it has loaded its state before A
    /// writes anything).
    pub fn b_first(mut self) -> Self {
        self.b_first = true;
        self
    }

    /// Makes the database and the key file and starts the nodes, one ready before the other
    /// starts; `None` without PostgreSQL binaries (the caller skips).
    pub fn start(self) -> Option<TwoNodes> {
        let (db, keys) = database(&self.test)?;
        let key = keys.path().join("log.key");
        let keys = Arc::new(keys);
        let start = |setup: &NodeSetup| {
            let started = start_binary(
                setup.binary.as_deref().unwrap_or_else(|| relay_binary()),
                &db,
                &key,
                setup.wakeups,
                &borrowed(&setup.settings),
                &borrowed(&setup.env),
            );
            keeping(ready(started), &keys)
        };
        let (a, b) = if self.b_first {
            let b = start(&self.b);
            (start(&self.a), b)
        } else {
            let a = start(&self.a);
            (a, start(&self.b))
        };
        Some(TwoNodes { a, b, db })
    }
}

/// Three nodes on a fresh database named after `test`, sharing its log key file, wake-ups on,
/// each ready before the next starts; `None` without PostgreSQL binaries. (Nodes that must
/// start at the same instant: [`start`] each, then [`ready`].)
pub fn three_nodes(test: &str) -> Option<[Node; 3]> {
    let (db, keys) = database(test)?;
    let key = keys.path().join("log.key");
    let keys = Arc::new(keys);
    Some([(); 3].map(|()| keeping(node(&db, &key, true), &keys)))
}

/// `node`, holding the directory of the key file it shares with other nodes.
fn keeping(mut node: Node, keys: &Arc<TempDir>) -> Node {
    node._keys = Some(Arc::clone(keys));
    node
}

fn owned(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
    pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned()))
}

fn borrowed(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
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
/// (`SEALDESK_TEST_CATCH_UP_GATE`): while it is closed, the catch-up that starts waits;
/// [`CommitGate::sign_in`] one for an agent's sign-in (`SEALDESK_TEST_SIGN_IN_GATE`). All are
/// read only by a relay built with `sealdesk-server`'s `test-hooks` feature, as `cargo test`
/// builds it (the tests crate's dev-dependency); a normal build ignores them.
pub struct CommitGate {
    dir: TempDir,
    var: &'static str,
}

impl CommitGate {
    /// An open commit gate.
    pub fn new() -> Self {
        Self::of(sealdesk_server::commit::COMMIT_GATE_ENV)
    }

    /// An open forwarded-close gate ([`sealdesk_server::relay::FORWARDED_CLOSE_GATE_ENV`], in a
    /// relay built with the `test-hooks` feature): while it is closed, a close another node
    /// forwards waits on arriving (logging [`CLOSE_HELD`]), and runs once it is opened
    /// (logging [`CLOSE_RELEASED`] with how many sessions it closed).
    pub fn forwarded_close() -> Self {
        Self::of(sealdesk_server::relay::FORWARDED_CLOSE_GATE_ENV)
    }

    /// An open catch-up gate ([`sealdesk_server::relay::CATCH_UP_GATE_ENV`]): while it is closed,
    /// the node's periodic catch-up waits before asking the database which conversations are
    /// behind (and logs "a catch-up held at its gate").
    pub fn catch_up() -> Self {
        Self::of(sealdesk_server::relay::CATCH_UP_GATE_ENV)
    }

    /// An open sign-in gate ([`sealdesk_server::relay::SIGN_IN_GATE_ENV`]): while it is closed,
    /// a session that signed in registered as an agent waits, after its welcome, before it
    /// joins the relay's hub (logging "a sign-in held at its gate").
    pub fn sign_in() -> Self {
        Self::of(sealdesk_server::relay::SIGN_IN_GATE_ENV)
    }

    /// An open re-check gate ([`sealdesk_server::relay::RECHECK_GATE_ENV`]): while it is
    /// closed, the node's periodic re-check of the agent keys connected to it (run by its
    /// chores) waits before reading which keys are connected (logging "an agent key re-check
    /// held at its gate"), and with it the rest of that chores round.
    pub fn recheck() -> Self {
        Self::of(sealdesk_server::relay::RECHECK_GATE_ENV)
    }

    /// A switch ([`sealdesk_server::relay::FAIL_CARD_REREADS_ENV`]) rather than a gate: while
    /// it is closed, the re-read of an agent's card once its session joined the hub fails, as
    /// when the store cannot answer (and the relay closes that session `Internal`).
    pub fn card_rereads() -> Self {
        Self::of(sealdesk_server::relay::FAIL_CARD_REREADS_ENV)
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

/// What a node logs when a forwarded close waits at its gate ([`CommitGate::forwarded_close`]).
pub const CLOSE_HELD: &str = "a forwarded close held at its gate";

/// What a node logs when a held forwarded close ran, with how many sessions it closed
/// (field `closed`).
pub const CLOSE_RELEASED: &str = "a held forwarded close released";

/// What a node logs when it drops a consent another node forwarded to a master connected to
/// it (the relay's test-only `SEALDESK_TEST_DROP_FORWARDED_CONSENTS`), with the item's
/// `conversation` and `seq`: only that hook logs it, so a test that waits for it shows the
/// forward was lost.
pub const CONSENT_DROPPED: &str = "a forwarded consent dropped (test only)";

/// What a node logs when it drops a close another node forwarded (the relay's test-only
/// `SEALDESK_TEST_DROP_FORWARDED_CLOSES`), with its `code`.
pub const CLOSE_DROPPED: &str = "a forwarded close dropped (test only)";

/// What a node logs (at info level: see [`TwoNodesSetup::b_logs_info_of`] with
/// [`CLUSTER_SERVICE`]) when its re-check of agent keys closed the sessions of a key
/// re-certified away, with how many (`sessions`): the close was the re-check's, not a
/// forwarded one's.
pub const RECHECK_CLOSED: &str = "an agent key re-certified away closed on a re-check";

/// What a node logs when it drops an audit log wake-up another node sent (the relay's
/// test-only `SEALDESK_TEST_DROP_AUDIT_WAKEUPS`), with the log's `size` it told of.
pub const AUDIT_WAKEUP_DROPPED: &str = "an audit log wake-up dropped (test only)";

/// What a node logs when its periodic re-check of agent keys waits at its gate
/// ([`CommitGate::recheck`]).
pub const RECHECK_HELD: &str = "an agent key re-check held at its gate";

/// The relay module that logs [`RECHECK_CLOSED`].
pub const CLUSTER_SERVICE: &str = "sealdesk_server::relay::service::cluster";

/// Field `name` of a JSON log line the nodes write, as a number.
///
/// # Panics
///
/// If the line is not JSON or has no such numeric field.
pub fn log_field(line: &str, name: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v["fields"][name].as_u64())
        .unwrap_or_else(|| panic!("no fields.{name} in {line:?}"))
}

/// Waits until `node` has logged a line containing `text`; that line.
pub async fn logged(node: &Node, text: &str) -> String {
    eventually(&format!("{text:?} in the node's log"), async || {
        node.process
            .log_tail()
            .lines()
            .find(|l| l.contains(text))
            .map(str::to_owned)
    })
    .await
}

/// Waits until `node` has logged a line containing `text` whose numeric field `name` is
/// `value` (one of several such lines, such as a drop's for one size among others); that line.
pub async fn logged_with(node: &Node, text: &str, name: &str, value: u64) -> String {
    let what = format!("{text:?} with {name} = {value} in the node's log");
    eventually(&what, async || {
        node.process
            .log_tail()
            .lines()
            .filter(|l| l.contains(text))
            .find(|l| log_field(l, name) == value)
            .map(str::to_owned)
    })
    .await
}

/// [`two_nodes`] on a fresh database named after `test`: node A behind a [`CommitGate`] (open
/// until the test closes it), and node B (started first); the pair the tests that force a
/// cross-node race use. `None` without PostgreSQL binaries.
pub fn slow_and_quick(test: &str) -> Option<(TwoNodes, CommitGate)> {
    let gate = CommitGate::new();
    let (name, path) = gate.env();
    let nodes = two_nodes(test)
        .b_first()
        .a_env(&[(name, path.as_str())])
        .start()?;
    Some((nodes, gate))
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

/// Waits until counter `name` of `node` has moved twice more than it had: for a counter moved
/// once per periodic catch-up (`sealdesk_cluster_master_push_reads_total`), the second of
/// those catch-ups started after this call, so it saw every row committed before it.
pub async fn two_more(node: &Node, name: &str) {
    let before = metric(node, name).await;
    eventually(&format!("{name} to move twice"), async || {
        (metric(node, name).await >= before + 2).then_some(())
    })
    .await;
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

/// Two store engines on database `url`, as two nodes hold them (the first migrates): for the
/// store-level cluster cases, with no relay process.
pub fn two_stores(url: &str) -> (PgStore, PgStore) {
    (
        PgStore::open(url, true).unwrap(),
        PgStore::open(url, false).unwrap(),
    )
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
