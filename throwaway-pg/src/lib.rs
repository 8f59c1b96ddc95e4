//! A throwaway PostgreSQL on loopback, for the tests (`sealdesk_tests::pg`) and the load
//! generator's cluster and `pgbench` scenarios: `initdb` in a temporary directory, the server
//! on a free `127.0.0.1` port, as the `postgres` user when we run as root (which PostgreSQL
//! refuses).
//!
//! Cleanup does not depend on this process ending well: a shell owns the server and waits on
//! a pipe this process holds; when the pipe closes — the [`Server`] dropped, the process
//! ending, ctrl-c, a panic — the shell stops the server (fast shutdown). Dropping the
//! [`Server`] waits (bounded) for that, then removes the directory.
//!
//! The server runs with `fsync=on` and `synchronous_commit=on` (PostgreSQL's defaults): a
//! commit is durable when acknowledged, which is what the durability tests and the benchmark
//! measure.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

/// How long the server gets to accept connections after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long dropping a [`Server`] waits for it to stop before killing its keeper.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What can go wrong starting or driving the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `initdb` found (`pg_config --bindir`, `/usr/lib/postgresql/*/bin`).
    #[error(
        "no PostgreSQL binaries (initdb) found: install PostgreSQL (Debian: `apt-get install \
         postgresql`)"
    )]
    NoBinaries,
    /// A program could not be run, or a file or port could not be had.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A PostgreSQL program ran and failed.
    #[error("{what} failed: {stderr}")]
    Failed {
        /// The program (and what it was asked).
        what: String,
        /// Its standard error.
        stderr: String,
    },
    /// The server exited, or did not accept connections within a minute.
    #[error("PostgreSQL did not start:\n{log}")]
    NotStarted {
        /// The server's log.
        log: String,
    },
}

/// This crate's results.
pub type Result<T> = std::result::Result<T, Error>;

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// The directory of the PostgreSQL binaries (`pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin` holding `initdb`), if any are installed.
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

/// Whether we run as root (PostgreSQL then runs as the `postgres` user).
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `program`, run as the `postgres` user when we are root.
fn as_pg_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// `out`, or [`Error::Failed`] naming `what` if the program failed.
fn succeeded(out: Output, what: impl FnOnce() -> String) -> Result<Output> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::Failed {
            what: what(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// How to make the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// The directory to make the temporary directory in (the system's by default): the disk
    /// the database writes to.
    pub parent: Option<PathBuf>,
    /// The temporary directory's name prefix.
    pub prefix: &'static str,
    /// PostgreSQL's `max_connections`.
    pub max_connections: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            parent: None,
            prefix: "sealdesk-pg-",
            max_connections: 400,
        }
    }
}

/// A throwaway PostgreSQL cluster: its directory, its port and, while it runs, the shell that
/// owns it. Users connect as `sealdesk` without a password (`--auth=trust`, loopback only).
pub struct Server {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    max_connections: u32,
    /// The shell that owns the running server: closing its standard input stops the server.
    keeper: Mutex<Option<Child>>,
    // Declared last: removed after the server has stopped.
    tmp: tempfile::TempDir,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Makes a cluster with the binaries in `bin` (`initdb`) and starts it.
    ///
    /// # Errors
    ///
    /// The directory, `initdb` or the server fails, or the server does not accept connections
    /// within a minute.
    pub fn start(bin: PathBuf, options: &Options) -> Result<Self> {
        let mut builder = tempfile::Builder::new();
        builder.prefix(options.prefix);
        let tmp = match &options.parent {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .map_err(io("making the PostgreSQL directory"))?;
        if is_root() {
            let out = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(tmp.path())
                .output()
                .map_err(io("running chown"))?;
            succeeded(out, || {
                "chown of the PostgreSQL directory to postgres".into()
            })?;
        }
        let dir = tmp.path().join("data");
        let out = as_pg_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&dir)
            .args(["-U", "sealdesk", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .map_err(io("running initdb"))?;
        succeeded(out, || "initdb".into())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io("finding a free loopback port"))?
            .port();
        let server = Self {
            bin,
            dir,
            port,
            max_connections: options.max_connections,
            keeper: Mutex::new(None),
            tmp,
        };
        server.start_again()?;
        Ok(server)
    }

    /// Starts the server (again, after [`Self::stop_immediate`]) on the same port and waits
    /// until it accepts connections.
    ///
    /// # Errors
    ///
    /// The server cannot be spawned, exits, or does not accept connections within a minute.
    pub fn start_again(&self) -> Result<()> {
        // The shell starts the server, then waits for its standard input to close (the
        // server dropped, or this process ending) and stops it (fast shutdown). Then, unless
        // another server runs in the directory (a keeper replaced by `start_again`: the new
        // server is up before this pipe closes), it removes the directory: a server kept in a
        // `static` is never dropped, so its `TempDir` never removes it.
        let script = r#"
            "$0" "$@" </dev/null >>"$PGLOG" 2>&1 &
            pid=$!
            read -r _ || true
            kill -INT "$pid" 2>/dev/null
            wait "$pid"
            [ -e "$PGDATA_DIR/postmaster.pid" ] || rm -rf "$PGTMP_DIR"
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
            .arg("-c")
            .arg(format!("max_connections={}", self.max_connections))
            .args(["-c", "fsync=on", "-c", "synchronous_commit=on"])
            .env("PGLOG", self.log_path())
            .env("PGDATA_DIR", &self.dir)
            .env("PGTMP_DIR", self.tmp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("starting PostgreSQL"))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            if Instant::now() > deadline || keeper.try_wait().ok().flatten().is_some() {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                return Err(Error::NotStarted { log });
            }
            // Polling the server's readiness: it offers no event to wait on.
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(stdin) = keeper.stdin.as_mut() {
            let _ = stdin.flush();
        }
        // A previous keeper (its server stopped) exits when its pipe closes here.
        *self.keeper.lock().unwrap_or_else(|e| e.into_inner()) = Some(keeper);
        Ok(())
    }

    /// Stops the server as a power cut would: `pg_ctl stop -m immediate` (no checkpoint; the
    /// next start replays the WAL).
    ///
    /// # Errors
    ///
    /// `pg_ctl` cannot be run or fails.
    pub fn stop_immediate(&self) -> Result<()> {
        let out = as_pg_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.dir)
            .args(["stop", "-m", "immediate", "-w"])
            .output()
            .map_err(io("running pg_ctl"))?;
        succeeded(out, || "pg_ctl stop".into()).map(drop)
    }

    /// `postgres://sealdesk@127.0.0.1:PORT`, without a database.
    pub fn base(&self) -> String {
        format!("postgres://sealdesk@127.0.0.1:{}", self.port)
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base())
    }

    /// Creates database `name` unless it exists; returns its URL.
    ///
    /// # Errors
    ///
    /// `createdb` cannot be run or fails for another reason than the database existing.
    pub fn create_database(&self, name: &str) -> Result<String> {
        create_database(&self.bin, &self.base(), name)
    }

    /// The directory of the PostgreSQL binaries this server runs.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The cluster's data directory (`postmaster.pid` is in it).
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.tmp.path().join("server.log")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let keeper = self.keeper.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(mut keeper) = keeper.take() {
            // Closing the pipe tells the shell to stop the server; wait for it (bounded), so
            // the directory is removed after the server is gone.
            drop(keeper.stdin.take());
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if matches!(keeper.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = keeper.kill();
            let _ = keeper.wait();
        }
    }
}

/// Creates database `name` on the server at `base` (`postgres://user@host:port`) with the
/// `createdb` in `bin`, unless it exists; returns its URL.
///
/// # Errors
///
/// `createdb` cannot be run or fails for another reason than the database existing.
pub fn create_database(bin: &Path, base: &str, name: &str) -> Result<String> {
    let out = Command::new(bin.join("createdb"))
        .arg(format!("--maintenance-db={base}/postgres"))
        .arg(name)
        .output()
        .map_err(io("running createdb"))?;
    let exists = String::from_utf8_lossy(&out.stderr).contains("already exists");
    if !exists {
        succeeded(out, || format!("createdb {name}"))?;
    }
    Ok(format!("{base}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_starts_takes_a_database_and_stops_when_dropped() {
        let Some(bin) = bin_dir() else {
            eprintln!("*** SKIPPED: no PostgreSQL binaries on this machine ***");
            return;
        };
        let server = Server::start(bin, &Options::default()).expect("the server starts");
        let url = server.create_database("one").expect("createdb");
        assert_eq!(url, server.url("one"));
        // Asking again for the same database is not an error.
        assert_eq!(server.create_database("one").expect("exists"), url);
        let data = server.data_dir().to_owned();
        assert!(data.join("postmaster.pid").exists());
        drop(server);
        assert!(
            !data.exists(),
            "the directory is removed once the server stopped"
        );
    }

    /// The variable that makes the test below, run again in a child process, start a server
    /// and end the process without dropping it (as a server kept in a `static` ends).
    const CHILD_VAR: &str = "THROWAWAY_PG_TEST_CHILD";

    #[test]
    fn a_server_never_dropped_is_removed_when_its_process_ends() {
        let Some(bin) = bin_dir() else {
            eprintln!("*** SKIPPED: no PostgreSQL binaries on this machine ***");
            return;
        };
        if std::env::var_os(CHILD_VAR).is_some() {
            let server = Server::start(bin, &Options::default()).expect("the server starts");
            println!("DIR={}", server.tmp.path().display());
            // `exit` runs no destructors: the server is left as a `static` one is.
            std::process::exit(0);
        }
        let out = Command::new(std::env::current_exe().expect("this test binary"))
            .args([
                "--exact",
                "tests::a_server_never_dropped_is_removed_when_its_process_ends",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_VAR, "1")
            .output()
            .expect("the child runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // libtest may print the test's name on the same line first.
        let dir = stdout
            .split("DIR=")
            .nth(1)
            .and_then(|rest| rest.lines().next())
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("the child names its directory: {stdout}"));
        // The keeper stops the server, then removes the directory, after the child is gone:
        // wait for that (bounded by the server's stop timeout and a margin).
        let deadline = Instant::now() + STOP_TIMEOUT + Duration::from_secs(30);
        while dir.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!dir.exists(), "{} is left behind", dir.display());
    }

    #[test]
    fn a_restarted_server_keeps_its_directory_and_data() {
        let Some(bin) = bin_dir() else {
            eprintln!("*** SKIPPED: no PostgreSQL binaries on this machine ***");
            return;
        };
        let server = Server::start(bin, &Options::default()).expect("the server starts");
        server.create_database("kept").expect("createdb");
        server.stop_immediate().expect("stops");
        // The keeper `start_again` replaces, held here to see it finish: its pipe closes once
        // the new server is up, as in `start_again`, and it must leave the directory.
        let mut old = server
            .keeper
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("a keeper");
        server.start_again().expect("starts again");
        drop(old.stdin.take());
        old.wait().expect("the old keeper ends");
        assert!(server.data_dir().join("postmaster.pid").exists());
        assert_eq!(
            server.create_database("kept").expect("still there"),
            server.url("kept")
        );
    }
}
