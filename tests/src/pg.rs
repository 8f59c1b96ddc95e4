//! A throwaway PostgreSQL for the tests, and the store matrix.
//!
//! [`server`] is one PostgreSQL per test process: the one `SEALDESK_TEST_PG` names (a base URL
//! such as `postgres://sealdesk@127.0.0.1:5432`, whose user may create databases), or else a
//! cluster of its own, made with `initdb` in a temporary directory and started on a free
//! loopback port (as the `postgres` user when the tests run as root, which PostgreSQL refuses).
//! It stops when the test process ends: a shell that owns the server waits on a pipe the
//! process holds and stops the server when the pipe closes. [`database`] makes a database per
//! name (per relay data directory, so a restarted relay finds its data again).
//!
//! The matrix: with `SEALDESK_TEST_STORE=postgres`, every relay the support starts in process
//! ([`crate::spawn_relay`] and friends, [`crate::World`]) keeps its state in PostgreSQL instead
//! of sled ([`use_test_store`]).
//!
//! Tests that need PostgreSQL call [`server`] and are skipped, loudly, only when no PostgreSQL
//! binaries exist on the machine (CI installs them: `.ci/run`).

use std::{
    hash::{Hash as _, Hasher as _},
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use sealdesk_server::config::{RelayConfig, StoreKind};

/// The environment variable that names a PostgreSQL for the tests.
pub const TEST_PG: &str = "SEALDESK_TEST_PG";

/// The environment variable that puts in-process test relays on PostgreSQL (`postgres`).
pub const TEST_STORE: &str = "SEALDESK_TEST_STORE";

/// A PostgreSQL the tests may create databases in.
pub struct PgServer {
    /// `postgres://user@host:port`, without a database.
    base: String,
    /// The directory of the PostgreSQL binaries (`createdb`, `pg_ctl`, …).
    bin: PathBuf,
    /// Our own cluster, if we started one.
    own: Option<Cluster>,
}

/// A PostgreSQL cluster of the test process's own: `initdb` in a temporary directory, the
/// server on a free loopback port. Stopped when dropped (or when the process ends).
pub struct Cluster {
    bin: PathBuf,
    tmp: tempfile::TempDir,
    dir: PathBuf,
    port: u16,
    /// The shell that owns the running server; dropping it (closing its pipe) stops it.
    keeper: Mutex<Option<Child>>,
}

impl PgServer {
    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// The directory of the PostgreSQL binaries.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The cluster the support started, if it did.
    pub fn own_cluster(&self) -> Option<&Cluster> {
        self.own.as_ref()
    }
}

/// The directory of the PostgreSQL binaries, if any are installed.
pub fn bin_dir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

/// The test PostgreSQL, started on first use; `None` (after a loud message) only if there is
/// no `SEALDESK_TEST_PG` and no PostgreSQL binaries. A server that fails to start panics.
pub fn server() -> Option<&'static PgServer> {
    static SERVER: OnceLock<Option<PgServer>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let bin = bin_dir();
            if let Ok(base) = std::env::var(TEST_PG)
                && !base.trim().is_empty()
            {
                let bin = bin.unwrap_or_else(|| PathBuf::from("/usr/bin"));
                return Some(PgServer {
                    base: base.trim().trim_end_matches('/').to_owned(),
                    bin,
                    own: None,
                });
            }
            let Some(bin) = bin else {
                eprintln!(
                    "\n*** SKIPPED: no PostgreSQL binaries (initdb) on this machine and {TEST_PG} \
                     is unset: the PostgreSQL tests did not run. Install `postgresql` (.ci/run \
                     does). ***\n"
                );
                return None;
            };
            let cluster = Cluster::start_with(bin.clone());
            Some(PgServer {
                base: cluster.base(),
                bin,
                own: Some(cluster),
            })
        })
        .as_ref()
}

/// Whether the tests run as root (PostgreSQL then runs as the `postgres` user).
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `program args…`, as the `postgres` user when we are root.
fn as_pg_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Cluster {
    /// A new cluster, or `None` (after a loud message) if there are no PostgreSQL binaries.
    pub fn start() -> Option<Self> {
        let Some(bin) = bin_dir() else {
            eprintln!("\n*** SKIPPED: no PostgreSQL binaries (initdb) on this machine ***\n");
            return None;
        };
        Some(Self::start_with(bin))
    }

    fn start_with(bin: PathBuf) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("sealdesk-pg-")
            .tempdir()
            .expect("a directory for the test cluster");
        let dir = tmp.path().join("data");
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(tmp.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown of the test cluster's directory to postgres");
        }
        let out = as_pg_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&dir)
            .args(["-U", "sealdesk", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self {
            bin,
            tmp,
            dir,
            port: free_port(),
            keeper: Mutex::new(None),
        };
        cluster.start_again();
        cluster
    }

    /// `postgres://sealdesk@127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("postgres://sealdesk@127.0.0.1:{}", self.port)
    }

    /// Creates database `name` unless it exists; returns its URL.
    pub fn database(&self, name: &str) -> String {
        create_database(&self.bin, &self.base(), name)
    }

    /// Stops the server as a power cut would: `pg_ctl stop -m immediate` (no checkpoint; the
    /// next start replays the WAL).
    pub fn stop_immediate(&self) {
        let out = as_pg_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.dir)
            .args(["stop", "-m", "immediate", "-w"])
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server (again) on the same port and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// If it does not start within a minute.
    pub fn start_again(&self) {
        // The shell starts the server, then waits for its standard input to close (the
        // cluster dropped, or this process ending) and stops it (fast shutdown).
        let script = r#"
            "$0" "$@" </dev/null >>"$PGLOG" 2>&1 &
            pid=$!
            read -r _ || true
            kill -INT "$pid" 2>/dev/null
            wait "$pid"
        "#;
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "sh", "-c", script]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", script]);
            c
        };
        let mut keeper = c
            .arg(self.bin.join("postgres"))
            .arg("-D")
            .arg(&self.dir)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-k"])
            .arg(self.tmp.path())
            .args(["-c", "max_connections=400", "-c", "fsync=on"])
            .env("PGLOG", self.tmp.path().join("server.log"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the test PostgreSQL starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            if Instant::now() > deadline || keeper.try_wait().ok().flatten().is_some() {
                let log =
                    std::fs::read_to_string(self.tmp.path().join("server.log")).unwrap_or_default();
                panic!("the test PostgreSQL did not start:\n{log}");
            }
            // Polling the server's readiness: it has no event to wait on.
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(stdin) = keeper.stdin.as_mut() {
            let _ = stdin.flush();
        }
        // A previous keeper (its server stopped) exits when its pipe closes here.
        *self.keeper.lock().unwrap_or_else(|e| e.into_inner()) = Some(keeper);
    }
}

/// Creates database `name` on `server` unless it exists; returns its URL.
pub fn database(server: &PgServer, name: &str) -> String {
    create_database(&server.bin, &server.base, name)
}

fn create_database(bin: &Path, base: &str, name: &str) -> String {
    let out = Command::new(bin.join("createdb"))
        .arg(format!("--maintenance-db={base}/postgres"))
        .arg(name)
        .output()
        .expect("createdb runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("already exists"),
        "createdb {name} failed: {stderr}"
    );
    format!("{base}/{name}")
}

/// A database name for a relay data directory: the same directory, the same database.
pub fn database_name_for(data_dir: &Path) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut h);
    std::process::id().hash(&mut h);
    format!("sealdesk_{:016x}", h.finish())
}

/// Whether the matrix asks for PostgreSQL (`SEALDESK_TEST_STORE=postgres`).
pub fn matrix_wants_postgres() -> bool {
    std::env::var(TEST_STORE).is_ok_and(|v| v.trim().eq_ignore_ascii_case("postgres"))
}

/// Points `config` at a PostgreSQL database of its own (one per data directory) when the
/// matrix asks for PostgreSQL; leaves it on sled otherwise.
///
/// # Panics
///
/// If the matrix asks for PostgreSQL and there is none: a matrix run must not quietly test
/// sled.
pub fn use_test_store(config: &mut RelayConfig) {
    if !matrix_wants_postgres() {
        return;
    }
    let server = server().expect("SEALDESK_TEST_STORE=postgres but no PostgreSQL to use");
    let name = database_name_for(&config.data_dir);
    config.store = StoreKind::Postgres;
    config.database_url = Some(database(server, &name));
    config.migrate = true;
}
