//! A throwaway PostgreSQL for the tests, and the store matrix.
//!
//! [`server`] is one PostgreSQL per test process: the one `SEALDESK_TEST_PG` names (a base URL
//! such as `postgres://sealdesk@127.0.0.1:5432`, whose user may create databases), or else a
//! cluster of its own, made with `initdb` in a temporary directory and started on a free
//! loopback port (as the `postgres` user when the tests run as root, which PostgreSQL refuses).
//! It stops when the test process ends (`sealdesk_throwaway_pg`'s keeper shell). [`database`] makes a database per
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
    path::{Path, PathBuf},
    sync::OnceLock,
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

/// A PostgreSQL cluster of the test process's own (`sealdesk_throwaway_pg`): `initdb` in a temporary
/// directory, the server on a free loopback port. Stopped when dropped (or when the process
/// ends). Its methods panic on failure: they are test support.
pub struct Cluster(sealdesk_throwaway_pg::Server);

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
    sealdesk_throwaway_pg::bin_dir()
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
        let server =
            sealdesk_throwaway_pg::Server::start(bin, &sealdesk_throwaway_pg::Options::default())
                .unwrap_or_else(|e| panic!("the test PostgreSQL: {e}"));
        Self(server)
    }

    /// `postgres://sealdesk@127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        self.0.base()
    }

    /// Creates database `name` unless it exists; returns its URL.
    pub fn database(&self, name: &str) -> String {
        self.0
            .create_database(name)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Stops the server as a power cut would: `pg_ctl stop -m immediate` (no checkpoint; the
    /// next start replays the WAL).
    pub fn stop_immediate(&self) {
        self.0.stop_immediate().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts the server (again) on the same port and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// If it does not start within a minute.
    pub fn start_again(&self) {
        self.0.start_again().unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Creates database `name` on `server` unless it exists; returns its URL.
pub fn database(server: &PgServer, name: &str) -> String {
    sealdesk_throwaway_pg::create_database(&server.bin, &server.base, name)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A fresh database for store-level test `test` (named after it and the test process), or
/// `None` without PostgreSQL binaries (the support said why; the caller skips).
pub fn fresh_database(test: &str) -> Option<String> {
    let server = server()?;
    Some(database(
        server,
        &format!("t_{test}_{}", std::process::id()),
    ))
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

/// `psql URL -Atc SQL`'s output, trimmed (the machine's PostgreSQL client; panics without one
/// or when the statement fails, with psql's words).
pub fn query(url: &str, sql: &str) -> String {
    let server = server().expect("PostgreSQL binaries");
    let out = std::process::Command::new(server.bin_dir().join("psql"))
        .args([url, "-Atc", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
