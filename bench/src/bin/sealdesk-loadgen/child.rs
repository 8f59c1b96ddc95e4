//! Server child processes: `sealdesk-loadgen serve --kind …` runs one server and prints the
//! address it listens on; it stops (gracefully, flushing the store) when its standard input
//! closes, so a dying parent never leaves it behind.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;
use sealdesk_bench::baseline;
use sealdesk_server::config::{Limits, RelayConfig};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Which server a child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The Sealdesk relay (`sealdesk_server::spawn`), with load-test limits.
    Sealdesk,
    /// The plaintext broadcast relay with tokio-tungstenite's default configuration.
    Baseline,
}

impl Kind {
    /// The path of the WebSocket endpoint.
    pub fn ws_path(self) -> &'static str {
        match self {
            Kind::Sealdesk => sealdesk_server::net::WS_PATH,
            Kind::Baseline => "/",
        }
    }

    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sealdesk => "sealdesk",
            Kind::Baseline => "baseline",
        }
    }
}

/// How long a child gets to start or to stop before it is given up on (stop: killed).
const CHILD_STEP: Duration = Duration::from_secs(30);

/// The relay configuration the benchmark runs: defaults, except the per-client abuse limits
/// that a load generator multiplexing many users would trip (frame rate, connection count, the
/// per-source limits on connections and registrations, messages per conversation) and
/// an outbound queue deep enough for an agent serving many conversations at once.
pub fn bench_relay_config(data_dir: PathBuf) -> RelayConfig {
    RelayConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir,
        limits: Limits {
            max_frames_per_second: 1_000_000,
            frame_burst: 1_000_000,
            max_connections: 60_000,
            outbound_queue: baseline::OUTBOUND_QUEUE,
            // One process stands for every user, from one address: the per-source limits
            // would count all of them as one abuser.
            source_connections_per_minute: 1_000_000,
            source_connection_burst: 1_000_000,
            max_connections_per_source: 1_000_000,
            source_registrations_per_minute: 1_000_000,
            source_registration_burst: 1_000_000,
            registrations_per_minute: 1_000_000,
            registration_burst: 1_000_000,
            // Closed-loop throughput runs send as fast as each conversation is answered.
            conversation_messages_per_minute: 1_000_000,
            conversation_message_burst: 1_000_000,
            ..Limits::default()
        },
        ..RelayConfig::default()
    }
}

/// [`bench_relay_config`] with the `SEALDESK_RELAY_<LIMIT>` environment variables applied, as
/// the relay binary applies them, so that an operator can measure their own limits; the
/// address and data directory stay the benchmark's. Server children inherit the environment,
/// so the orchestrator computes the same configuration for its report.
///
/// # Errors
/// A variable that does not parse.
pub fn effective_relay_config(data_dir: PathBuf) -> Result<RelayConfig> {
    let mut config = bench_relay_config(data_dir);
    let (listen, data_dir) = (config.listen, config.data_dir.clone());
    config
        .apply_env(|k| std::env::var(k).ok())
        .context("a SEALDESK_RELAY_* variable")?;
    config.listen = listen;
    config.data_dir = data_dir;
    config.validate().context("the relay configuration")?;
    Ok(config)
}

/// A running server child.
pub struct ServerChild {
    child: Child,
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
    // Removed when the child is gone.
    _data: Option<tempfile::TempDir>,
}

impl ServerChild {
    /// Starts a child running `kind`, with a fresh data directory under `data_root`.
    ///
    /// # Errors
    /// The binary cannot be started or does not report its address in time.
    pub fn spawn(kind: Kind, data_root: &Path) -> Result<Self> {
        Self::spawn_with_env(kind, data_root, &[])
    }

    /// [`Self::spawn`] with extra environment variables for the child (`SEALDESK_RELAY_*`
    /// limits, which it applies over the benchmark's configuration).
    ///
    /// # Errors
    /// The binary cannot be started or does not report its address in time.
    pub fn spawn_with_env(kind: Kind, data_root: &Path, env: &[(String, String)]) -> Result<Self> {
        let exe = std::env::current_exe().context("locating this executable")?;
        let data = match kind {
            Kind::Sealdesk => Some(
                tempfile::Builder::new()
                    .prefix("sealdesk-bench-relay-")
                    .tempdir_in(data_root)
                    .with_context(|| {
                        format!("creating a data directory in {}", data_root.display())
                    })?,
            ),
            Kind::Baseline => None,
        };
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .arg("--kind")
            .arg(kind.name())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .envs(env.iter().map(|(k, v)| (k, v)));
        if let Some(d) = &data {
            cmd.arg("--data").arg(d.path());
        }
        let mut child = cmd.spawn().context("starting a server child process")?;
        let stdin = child.stdin.take();
        let Some(stdout) = child.stdout.take() else {
            bail!("the server child has no standard output");
        };
        // The child prints one line; read it on a thread so a hung child cannot hang us.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let r = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(r);
        });
        let line = match rx.recv_timeout(CHILD_STEP) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => {
                let _ = child.kill();
                return Err(e).context("reading the server child's address");
            }
            Err(_) => {
                let _ = child.kill();
                bail!("the {} server child did not start in time", kind.name());
            }
        };
        let addr: SocketAddr = line
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("unexpected line from the server child: {line:?}"))?;
        if !addr.ip().is_loopback() {
            let _ = child.kill();
            bail!("the server child listens on {addr}, not on loopback");
        }
        Ok(Self {
            child,
            stdin,
            addr,
            _data: data,
        })
    }

    /// The child's process id (for `/proc/<pid>`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the child's standard input (it then shuts down gracefully) and waits for it;
    /// kills it if it has not exited in time.
    pub fn stop(mut self) {
        drop(self.stdin.take());
        let start = Instant::now();
        while start.elapsed() < CHILD_STEP {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            drop(self.stdin.take());
            // Last resort on an error path: do not leave a server running.
            if !matches!(self.child.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(200));
                if !matches!(self.child.try_wait(), Ok(Some(_))) {
                    let _ = self.child.kill();
                }
                let _ = self.child.wait();
            }
        }
    }
}

/// Body of `sealdesk-loadgen serve`: runs one server until standard input closes.
///
/// # Errors
/// The server cannot start.
pub fn serve(kind: Kind, data: Option<PathBuf>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let stdin_closed = async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut sink = Vec::new();
                let _ = std::io::stdin().read_to_end(&mut sink);
            })
            .await;
        };
        match kind {
            Kind::Sealdesk => {
                let data = data.context("--data is required for the Sealdesk relay")?;
                let config = effective_relay_config(data)?;
                let relay = sealdesk_server::spawn(config)
                    .await
                    .context("starting the Sealdesk relay")?;
                announce(relay.local_addr())?;
                stdin_closed.await;
                relay.shutdown().await.context("stopping the relay")?;
            }
            Kind::Baseline => {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                    .await
                    .context("binding the baseline relay")?;
                announce(listener.local_addr()?)?;
                let counters = Arc::new(baseline::Counters::default());
                baseline::serve(
                    listener,
                    WebSocketConfig::default(),
                    counters.clone(),
                    stdin_closed,
                )
                .await;
                let dropped = counters.dropped.load(std::sync::atomic::Ordering::Relaxed);
                if dropped > 0 {
                    eprintln!("baseline relay: {dropped} payloads dropped at full queues");
                }
            }
        }
        Ok(())
    })
}

fn announce(addr: SocketAddr) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "LISTENING {addr}")?;
    out.flush()?;
    Ok(())
}
