//! A relay's life cycle in process, and looking at it from outside: start one on
//! `127.0.0.1:0` over a temporary (or given) data directory, stop it cleanly, read its HTTP
//! endpoints and metrics, and search its files.

use std::path::{Path, PathBuf};

use sealdesk_server::{RunningRelay, config::RelayConfig};
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::wait::STEP;

/// Starts a relay on `127.0.0.1:0` with a fresh temporary data directory (kept alive by the
/// returned [`TempDir`]).
pub async fn spawn_relay() -> (RunningRelay, TempDir) {
    spawn_relay_with(|_| {}).await
}

/// Like [`spawn_relay`], with `tweak` applied to the configuration (limits, timeouts).
pub async fn spawn_relay_with(tweak: impl FnOnce(&mut RelayConfig)) -> (RunningRelay, TempDir) {
    let dir = tempfile::tempdir().expect("temporary data directory");
    let relay = start(config_for(dir.path(), tweak)).await;
    (relay, dir)
}

/// Starts a relay on `127.0.0.1:0` over an existing data directory (for restart tests).
pub async fn spawn_relay_in(data_dir: &Path) -> RunningRelay {
    spawn_relay_in_with(data_dir, |_| {}).await
}

/// Like [`spawn_relay_in`], with `tweak` applied to the configuration.
pub async fn spawn_relay_in_with(
    data_dir: &Path,
    tweak: impl FnOnce(&mut RelayConfig),
) -> RunningRelay {
    start(config_for(data_dir, tweak)).await
}

fn config_for(data_dir: &Path, tweak: impl FnOnce(&mut RelayConfig)) -> RelayConfig {
    let mut config = RelayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_owned(),
        ..RelayConfig::default()
    };
    crate::pg::use_test_store(&mut config);
    tweak(&mut config);
    config
}

async fn start(config: RelayConfig) -> RunningRelay {
    tokio::time::timeout(STEP, sealdesk_server::spawn(config))
        .await
        .expect("relay start timed out")
        .expect("relay starts")
}

/// Shuts a relay down gracefully and checks that it stopped cleanly.
pub async fn stop_relay(relay: RunningRelay) {
    tokio::time::timeout(STEP, relay.shutdown())
        .await
        .expect("relay shutdown timed out")
        .expect("relay shuts down cleanly");
}

/// `GET path` over a plain TCP stream; returns the whole HTTP response.
pub async fn http_get(relay: &RunningRelay, path: &str) -> String {
    let mut stream = TcpStream::connect(relay.local_addr()).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: relay.test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(STEP, stream.read_to_end(&mut response))
        .await
        .expect("HTTP response timed out")
        .unwrap();
    String::from_utf8(response).expect("HTTP response is UTF-8")
}

/// The value of an unlabelled metric in a Prometheus text exposition.
pub fn metric(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next() == Some(name))
            .then(|| parts.next().and_then(|v| v.parse().ok()))
            .flatten()
    })
}

/// The value of metric `name` (labels included) the relay serves on `/metrics` now, 0 if it is
/// absent (a counter never incremented).
pub async fn metric_of(relay: &RunningRelay, name: &str) -> f64 {
    metric(&http_get(relay, "/metrics").await, name).unwrap_or(0.0)
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let ty = entry.file_type().unwrap();
            if ty.is_dir() {
                todo.push(entry.path());
            } else if ty.is_file() {
                out.push(entry.path());
            }
        }
    }
    out
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Stops `world`'s relay cleanly and starts it again on the same address over the same data
/// directory, as an operator restarting it: clients connected before see their connection
/// close, and can connect again at the same URL.
pub async fn restart_world_relay(world: &mut crate::World) {
    let down = stop_world_relay(world).await;
    start_world_relay(world, down).await;
}

/// The first half of [`restart_world_relay`]: `world`'s relay is stopped (its URL refuses
/// connections) until [`start_world_relay`] is given what this returns.
pub async fn stop_world_relay(world: &mut crate::World) -> StoppedRelay {
    let addr = world.relay.local_addr();
    let (placeholder, placeholder_dir) = spawn_relay().await;
    let old = std::mem::replace(&mut world.relay, placeholder);
    stop_relay(old).await;
    StoppedRelay {
        addr,
        _placeholder_dir: placeholder_dir,
    }
}

/// The second half of [`restart_world_relay`]: starts the relay again where it was.
pub async fn start_world_relay(world: &mut crate::World, down: StoppedRelay) {
    let config = RelayConfig {
        listen: down.addr,
        data_dir: world.dir.path().join("relay"),
        ..RelayConfig::default()
    };
    let restarted = start(config).await;
    stop_relay(std::mem::replace(&mut world.relay, restarted)).await;
}

/// A world's relay that [`stop_world_relay`] stopped (a placeholder relay on another port
/// stands in the world meanwhile, on this data directory).
pub struct StoppedRelay {
    addr: std::net::SocketAddr,
    _placeholder_dir: TempDir,
}
