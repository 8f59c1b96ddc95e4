//! The protocol layer of the relay: authentication, directory, conversations, escrow plumbing
//! and the audit log, plugged into the transport as a [`SessionHandler`].

mod cluster;
mod hub;
pub mod inspect;
mod service;
mod session;
mod state;

use std::{net::SocketAddr, sync::Arc};

use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tracing::{info, warn};

use crate::{
    commit::GroupCommit,
    config::{RelayConfig, StoreKind},
    connection::Connection,
    metrics::Metrics,
    net::{SessionFuture, SessionHandler},
    store::{ConversationLog, MeteredStore, PgStore, SledStore, Store},
};

pub use session_codes::*;

/// Close codes the protocol layer uses (4100–4199).
pub mod session_codes {
    /// Authentication failed or was not attempted first.
    pub const CLOSE_AUTH_FAILED: u16 = 4101;
    /// A frame did not decode or was not a request (a request whose envelope decodes but one
    /// of whose fields does not is answered with the error code `bad_field` instead).
    pub const CLOSE_BAD_FRAME: u16 = 4102;
    /// A frame's version byte is not the wire version this relay speaks (1), before or after
    /// authentication.
    pub const CLOSE_UNKNOWN_VERSION: u16 = 4103;
    /// The connection's source address used up its failed authentications: refused before
    /// the challenge, after a `rate_limited` error response (id 0) saying when to retry.
    pub const CLOSE_RATE_LIMITED: u16 = 4104;
    /// The session's key no longer acts for its name: the org's master re-certified the
    /// agent name for another key (`rebind_agent`).
    pub const CLOSE_KEY_REPLACED: u16 = 4105;
    /// Most requests with a bad field answered (`bad_field`) on one connection: the next one
    /// closes it with [`CLOSE_BAD_FRAME`].
    pub const MAX_BAD_FIELDS: usize = 8;
}

pub use service::CATCH_UP_GATE_ENV;
pub use service::RECHECK_GATE_ENV;
pub use service::keys::{CONSENT_INDEX_FILLED, ORG_INDEX_FILLED};
pub use service::{
    DROP_AUDIT_WAKEUPS_ENV, DROP_CLOSES_ENV, DROP_CONSENTS_ENV, EXTENSION_ENTRY_ENV,
    FAIL_PRESENCE_READS_ENV, FAILPOINT_ENV, FAILPOINT_EXIT_CODE,
};
pub use session::FAIL_CARD_REREADS_ENV;
pub use session::SIGN_IN_GATE_ENV;

pub use service::FORWARDED_CLOSE_GATE_ENV;

/// The relay's protocol service as a session handler.
pub struct Relay {
    svc: Arc<service::Service>,
}

impl SessionHandler for Relay {
    fn run(self: Arc<Self>, conn: Connection, peer: SocketAddr) -> SessionFuture {
        Box::pin(session::run(self.svc.clone(), conn, peer))
    }
}

/// A relay running in the background (for tests, the demo and the benchmark).
pub struct RunningRelay {
    addr: SocketAddr,
    tls: bool,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<crate::Result<()>>,
    sweeps: mpsc::Sender<SweepRequest>,
}

/// A request for a retention sweep now, answered with how many conversations it erased.
type SweepRequest = oneshot::Sender<crate::Result<usize>>;

impl RunningRelay {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The WebSocket URL clients connect to.
    pub fn ws_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.addr, crate::net::WS_PATH)
    }

    /// Runs a retention sweep now, as the periodic sweeper does, and returns how many
    /// conversations it erased. With a [`TestClock`](crate::clock::TestClock) in the
    /// configuration, a test sets the time and sweeps instead of waiting for either.
    ///
    /// # Errors
    /// [`crate::Error::Internal`] if the sweep failed or the relay is not running.
    pub async fn sweep_retention(&self) -> crate::Result<usize> {
        let (tx, rx) = oneshot::channel();
        let stopped = || crate::Error::Internal("the relay is not running".into());
        self.sweeps.send(tx).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Stops accepting, lets sessions finish, flushes the store and waits.
    ///
    /// # Errors
    /// Whatever the serving task returned.
    pub async fn shutdown(mut self) -> crate::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(_) => Err(crate::Error::Internal("the relay task panicked".into())),
        }
    }
}

/// Opens the data directory, binds `config.listen` and serves in the background.
///
/// # Errors
/// Storage, bind or configuration errors.
pub async fn spawn(config: RelayConfig) -> crate::Result<RunningRelay> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| crate::Error::Bind {
            addr: config.listen,
            detail: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| crate::Error::Bind {
        addr: config.listen,
        detail: e.to_string(),
    })?;
    let (stop, rx) = oneshot::channel::<()>();
    // One sweep asked for at a time is plenty: the caller waits for its answer.
    let (sweeps, sweep_requests) = mpsc::channel(1);
    let tls = config.tls_cert.is_some();
    let task = tokio::spawn(serve_with(
        listener,
        config,
        async move {
            let _ = rx.await;
        },
        Some(sweep_requests),
    ));
    Ok(RunningRelay {
        addr,
        tls,
        stop: Some(stop),
        task,
        sweeps,
    })
}

/// Serves on an already-bound listener until `shutdown` completes: opens the store, starts group
/// commit and the retention sweeper, runs the transport, then flushes.
///
/// # Errors
/// Storage or configuration errors.
pub async fn serve(
    listener: TcpListener,
    config: RelayConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> crate::Result<()> {
    serve_with(listener, config, shutdown, None).await
}

/// [`serve`], also sweeping whenever `sweeps` asks (see [`RunningRelay::sweep_retention`]).
async fn serve_with(
    listener: TcpListener,
    config: RelayConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
    mut sweeps: Option<mpsc::Receiver<SweepRequest>>,
) -> crate::Result<()> {
    config.validate()?;
    crate::test_hooks::warn_ignored();
    let metrics = Arc::new(Metrics::new());
    let mut cluster_cfg = None;
    let base: Arc<dyn ConversationLog> = match config.store {
        StoreKind::Sled => Arc::new(SledStore::open(&config.data_dir)?),
        StoreKind::Postgres => {
            let url = config.database_url.clone().unwrap_or_default();
            let migrate = config.migrate;
            // Connecting and migrating block: keep them off the runtime's workers.
            let opening = url.clone();
            let pg = tokio::task::spawn_blocking(move || PgStore::open(&opening, migrate))
                .await
                .map_err(|e| crate::Error::Internal(format!("opening the database: {e}")))??;
            let counts = pg.counts();
            let _ = metrics.cluster.set(Arc::clone(&counts));
            cluster_cfg = Some(cluster::ClusterConfig {
                url,
                node: pg.node(),
                counts,
                wakeups: config.cluster_wakeups,
                catch_up: std::time::Duration::from_millis(config.cluster_catch_up_ms),
                presence_ttl: config.cluster_presence_ttl(),
            });
            Arc::new(pg)
        }
    };
    if let Some(path) = &config.log_key_file {
        let (store, path) = (Arc::clone(&base), path.clone());
        tokio::task::spawn_blocking(move || cluster::provision_log_key(store.as_ref(), &path))
            .await
            .map_err(|e| crate::Error::Internal(format!("provisioning the log key: {e}")))??;
    }
    let engine: Arc<dyn ConversationLog> = Arc::new(MeteredStore::new(base, metrics.clone()));
    let store: Arc<dyn Store> = engine.clone();
    let (commit, committer) = GroupCommit::spawn(
        store.clone(),
        config.limits.commit_max_batch,
        config.limits.commit_max_delay(),
        metrics.clone(),
    )?;
    let opened = service::Service::open(
        engine,
        commit,
        metrics.clone(),
        config.clock.clone(),
        crate::limits::Guard::new(&config.limits, metrics.clone()),
        &mut rand::rng(),
    )
    .map_err(|e| match e {
        // Name the data directory too: the operator has to find the damaged store.
        crate::Error::CorruptIdentity { location, detail } => crate::Error::CorruptIdentity {
            location: format!("{location} in {}", config.data_dir.display()),
            detail,
        },
        other => other,
    });
    let svc = match opened {
        Ok(svc) => Arc::new(svc),
        Err(e) => {
            committer.stop_async().await;
            return Err(e);
        }
    };
    let sweeper = {
        let svc = svc.clone();
        let every = config.limits.retention_sweep_interval();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                let asked = tokio::select! {
                    _ = tick.tick() => None,
                    asked = next_sweep_request(&mut sweeps) => asked,
                };
                let result = match svc.sweep_retention().await {
                    Ok(n) => {
                        if n > 0 {
                            info!(erased = n, "retention sweep");
                        }
                        Ok(n)
                    }
                    Err(e) => {
                        warn!(code = ?e.code, "retention sweep failed: {}", e.message);
                        Err(crate::Error::Internal(format!(
                            "retention sweep failed: {}",
                            e.message
                        )))
                    }
                };
                if let Some(reply) = asked {
                    let _ = reply.send(result);
                }
            }
        })
    };
    let cluster_task = cluster_cfg.map(|cfg| cluster::spawn(svc.clone(), cfg));
    let stopping = svc.clone();
    let handler: Arc<dyn SessionHandler> = Arc::new(Relay { svc });
    let result = crate::net::run(listener, Arc::new(config), metrics, handler, shutdown).await;
    // Wait for the sweeper to be gone and for the committer thread to answer its last
    // writers and stop, so that neither holds the store when this returns (sessions the
    // transport gave up on after its grace period may still hold it until they end).
    sweeper.abort();
    let _ = sweeper.await;
    if let Some(task) = cluster_task {
        task.abort();
        let _ = task.await;
        // The stored-bytes counts gathered since the last fold: a stopping node writes them
        // (only a crash loses them).
        let folded = tokio::task::spawn_blocking(move || {
            // Its agents are no longer online here: withdrawn at once rather than lapsing.
            stopping.withdraw_presence();
            stopping.fold_byte_counts()
        })
        .await;
        info!(
            counts = folded.unwrap_or(0),
            "stored-bytes counts folded at stop"
        );
    }
    committer.stop_async().await;
    store.flush()?;
    info!("relay stopped; store flushed");
    result
}

/// The next sweep asked for through `sweeps`; never, if there is no channel (any more).
async fn next_sweep_request(
    sweeps: &mut Option<mpsc::Receiver<SweepRequest>>,
) -> Option<SweepRequest> {
    let Some(rx) = sweeps else {
        return std::future::pending().await;
    };
    match rx.recv().await {
        Some(asked) => Some(asked),
        None => {
            // Every sender is gone: stop asking.
            *sweeps = None;
            std::future::pending().await
        }
    }
}
