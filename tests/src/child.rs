//! The workspace's binaries as child processes, for tests that kill them or drive the CLI.
//!
//! - [`relay_binary`] finds (and first builds, once per process) the binary that belongs to
//!   the running test executable's profile: a test in `target/debug/deps/` gets
//!   `target/debug/sealdesk-relay`, the release `crash-harness` gets
//!   `target/release/sealdesk-relay`. Cargo does not build another package's binaries for a
//!   test, so this runs `cargo build --bin NAME -p PACKAGE` with the same target directory and
//!   profile, and with the running test's own package and target selected too: cargo then
//!   resolves the dependencies' features as it did for the test (`cargo test -p
//!   sealdesk-tests` turns on features — of tokio, serde, futures-util, hyper and more —
//!   that `-p sealdesk-server` alone does not), so the relay links against the libraries the
//!   test build compiled, and only its `main` is compiled. Built alone, it resolved other
//!   features: a second copy of the server and of its dependency tree, compiled inside the
//!   test run after every change to the server. The build does not inherit what cargo set for
//!   the test (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`…): ring's build script tracks
//!   `CARGO_MANIFEST_DIR`, and inheriting it recompiled ring and everything above it, in this
//!   build and again in the next `cargo test`. Set `SEALDESK_RELAY_BIN` to use a given binary
//!   instead and skip the build (`.ci/run` passes the one `cargo test --workspace` built). Tests that drive the `sealdesk` CLI live in `cli/tests/`,
//!   where cargo builds it with the test hooks and names it in `CARGO_BIN_EXE_sealdesk`.
//! - [`RelayProcess`] starts the relay on `127.0.0.1:0` over a data directory, learns the port
//!   from its JSON log line `relay listening`, and kills it with SIGKILL.
//!
//! Loopback only; the child gets a clean `SEALDESK_RELAY_*` environment.

use std::{
    collections::VecDeque,
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, OnceLock, mpsc},
    time::Duration,
};

/// Environment variable naming a prebuilt relay binary (skips the build in [`relay_binary`]).
pub const RELAY_BIN_ENV: &str = "SEALDESK_RELAY_BIN";

/// The variables cargo sets for a test it runs (besides `CARGO_PKG_*`), which describe the
/// test's package and must not reach a cargo build started from the test.
const CARGO_RUNTIME_ENV: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
];

/// Log lines kept from a child for error messages.
const LOG_TAIL: usize = 40;

/// What a relay child logs (`RUST_LOG`): warnings, and the connections it serves. A test that
/// waits for another module's info line extends it (`TwoNodesSetup::b_logs_info_of` in
/// [`crate::cluster`]).
pub const LOG_FILTER: &str = "warn,sealdesk_server::net=info";

/// The `sealdesk-relay` binary of the current profile, built on first use.
///
/// # Panics
///
/// If the build fails or the binary is not where cargo puts it.
pub fn relay_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_binary("sealdesk-server", "sealdesk-relay", RELAY_BIN_ENV))
}

/// Binary `bin` of `package`, from `$env` if set, otherwise built with cargo into the running
/// test executable's target directory and profile.
fn workspace_binary(package: &str, bin: &str, env: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let mut dir = exe.parent().expect("executable directory").to_owned();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let profile = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_owned();
    let target_dir = dir.parent().expect("target directory");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(workspace)
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .args(running_target(&exe))
        .arg("--target-dir")
        .arg(target_dir);
    // What cargo sets for the running test (its package's manifest directory and metadata)
    // is not the build's: ring's build script tracks `CARGO_MANIFEST_DIR`, so inheriting it
    // made this build compile ring again — and the next `cargo test`, without it, compile it
    // back, with everything above it (rustls, tungstenite, the server, the client, the tests).
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if CARGO_RUNTIME_ENV.contains(&key_text.as_ref()) || key_text.starts_with("CARGO_PKG_") {
            build.env_remove(&key);
        }
    }
    match profile.as_str() {
        "debug" => {}
        "release" => {
            build.arg("--release");
        }
        other => {
            build.args(["--profile", other]);
        }
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building {bin} failed: {status}");
    let path = dir.join(bin);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// The cargo arguments that select the running executable's own package and target (`-p
/// PACKAGE --test NAME` for an integration test, `-p PACKAGE --bin NAME` for a binary), so a
/// build beside it resolves features as the build of this executable did; none if that
/// cannot be told (not run by cargo, which names the package in `CARGO_PKG_NAME`, or a
/// library's unit tests, which `cargo build` cannot select).
fn running_target(exe: &Path) -> Vec<String> {
    let Ok(package) = std::env::var("CARGO_PKG_NAME") else {
        return Vec::new();
    };
    let Some(stem) = exe.file_stem().and_then(|s| s.to_str()) else {
        return Vec::new();
    };
    let in_deps = exe
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "deps");
    let target = if in_deps {
        // A test harness: `NAME-HASH`, the library's own tests named after the crate.
        let Some((name, _hash)) = stem.rsplit_once('-') else {
            return Vec::new();
        };
        if name == package.replace('-', "_") {
            return Vec::new();
        }
        vec!["--test".to_owned(), name.to_owned()]
    } else {
        vec!["--bin".to_owned(), stem.to_owned()]
    };
    [vec!["-p".to_owned(), package], target].concat()
}

/// A `sealdesk-relay` child process.
pub struct RelayProcess {
    child: Child,
    ready: mpsc::Receiver<SocketAddr>,
    addr: Option<SocketAddr>,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl RelayProcess {
    /// Starts the relay binary on `127.0.0.1:0` over `data_dir`, with JSON logs. `limits` are
    /// extra `(FIELD, value)` pairs set as `SEALDESK_RELAY_<FIELD>`. Returns at once; see
    /// [`wait_ready`](Self::wait_ready).
    ///
    /// # Errors
    ///
    /// The process could not be started.
    pub fn spawn(bin: &Path, data_dir: &Path, limits: &[(&str, &str)]) -> std::io::Result<Self> {
        Self::spawn_with_env(bin, data_dir, limits, &[])
    }

    /// [`RelayProcess::spawn`] with extra environment variables `env` (`(NAME, value)`), such
    /// as a test-only fail point.
    ///
    /// # Errors
    ///
    /// The process could not be started.
    pub fn spawn_with_env(
        bin: &Path,
        data_dir: &Path,
        limits: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> std::io::Result<Self> {
        let mut cmd = Command::new(bin);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SEALDESK_RELAY_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("SEALDESK_RELAY_LISTEN", "127.0.0.1:0")
            .env("SEALDESK_RELAY_DATA", data_dir)
            .env("SEALDESK_RELAY_LOG_FORMAT", "json")
            .env("RUST_LOG", LOG_FILTER)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (field, value) in limits {
            cmd.env(format!("SEALDESK_RELAY_{field}"), value);
        }
        for (name, value) in env {
            cmd.env(name, value);
        }
        let mut child = cmd.spawn()?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, ready) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(addr) = listening_addr(&line) {
                        let _ = tx.send(addr);
                    }
                    remember(&log, line);
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    remember(&log, line);
                }
            });
        }
        Ok(Self {
            child,
            ready,
            addr: None,
            log,
        })
    }

    /// Waits (up to `wait`) until the relay listens; returns its address.
    ///
    /// # Errors
    ///
    /// The relay exited or did not listen in time; the message has its last log lines.
    pub fn wait_ready(&mut self, wait: Duration) -> Result<SocketAddr, String> {
        if let Some(addr) = self.addr {
            return Ok(addr);
        }
        match self.ready.recv_timeout(wait) {
            Ok(addr) => {
                self.addr = Some(addr);
                Ok(addr)
            }
            Err(e) => {
                let status = self.child.try_wait().ok().flatten();
                Err(format!(
                    "relay not ready ({e}; exit status {status:?}); last log lines:\n{}",
                    self.log_tail()
                ))
            }
        }
    }

    /// The WebSocket URL (after [`wait_ready`](Self::wait_ready)).
    ///
    /// # Panics
    ///
    /// If the relay is not ready yet.
    pub fn ws_url(&self) -> String {
        let addr = self.addr.expect("wait_ready first");
        format!("ws://{addr}/v1/ws")
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the relay with SIGKILL (no shutdown, no flush) and reaps it.
    ///
    /// # Errors
    ///
    /// The process could not be signalled or waited for.
    pub fn kill(&mut self) -> std::io::Result<ExitStatus> {
        // `Child::kill` is SIGKILL on Unix; it fails only if the child was already reaped.
        let _ = self.child.kill();
        self.child.wait()
    }

    /// Stops the relay with SIGTERM (a clean stop: sessions closed, the store flushed) and
    /// reaps it.
    ///
    /// # Errors
    ///
    /// The process could not be signalled or waited for.
    pub fn terminate(&mut self) -> std::io::Result<ExitStatus> {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !sent.success() {
            return Err(std::io::Error::other(format!("kill -TERM: {sent}")));
        }
        self.child.wait()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines the relay logged (stdout and stderr interleaved).
    pub fn log_tail(&self) -> String {
        self.log
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn remember(log: &Mutex<VecDeque<String>>, line: String) {
    if let Ok(mut l) = log.lock() {
        if l.len() == LOG_TAIL {
            l.pop_front();
        }
        l.push_back(line);
    }
}

/// The address in a JSON `relay listening` log line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("\"relay listening\"") {
        return None;
    }
    let start = line.find("\"addr\":\"")? + "\"addr\":\"".len();
    let rest = &line[start..];
    rest[..rest.find('"')?].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::listening_addr;

    #[test]
    fn parses_the_listening_line() {
        let line = r#"{"timestamp":"x","level":"INFO","fields":{"message":"relay listening","addr":"127.0.0.1:4321","tls":false},"target":"sealdesk_server::net"}"#;
        assert_eq!(
            listening_addr(line),
            Some("127.0.0.1:4321".parse().unwrap())
        );
        assert_eq!(listening_addr(r#"{"fields":{"message":"other"}}"#), None);
    }
}
