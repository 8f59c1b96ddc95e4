//! The protocol layer of the relay: authentication, directory, conversations, escrow plumbing
//! and the audit log, plugged into the transport as a [`SessionHandler`].

mod hub;
mod service;
mod session;
mod state;

use std::{net::SocketAddr, sync::Arc};

use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tracing::{info, warn};

use crate::{
    commit::GroupCommit,
    config::RelayConfig,
    connection::Connection,
    metrics::Metrics,
    net::{SessionFuture, SessionHandler},
    store::{MeteredStore, SledStore, Store},
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
    /// Most requests with a bad field answered (`bad_field`) on one connection: the next one
    /// closes it with [`CLOSE_BAD_FRAME`].
    pub const MAX_BAD_FIELDS: usize = 8;
}

/// Key in the `meta` tree set once the consents shared before the relay indexed them have been
/// indexed (at the first start of a build that does it); a store without it is indexed at start.
pub const CONSENT_INDEX_FILLED: &[u8] = b"index/consents-filled";

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
}

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
    let tls = config.tls_cert.is_some();
    let task = tokio::spawn(serve(listener, config, async move {
        let _ = rx.await;
    }));
    Ok(RunningRelay {
        addr,
        tls,
        stop: Some(stop),
        task,
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
    config.validate()?;
    let metrics = Arc::new(Metrics::new());
    let sled: Arc<dyn Store> = Arc::new(SledStore::open(&config.data_dir)?);
    let store: Arc<dyn Store> = Arc::new(MeteredStore::new(sled.clone(), metrics.clone()));
    let (commit, committer) = GroupCommit::spawn(
        store.clone(),
        config.limits.commit_max_batch,
        config.limits.commit_max_delay(),
        metrics.clone(),
    )?;
    let opened = service::Service::open(store.clone(), commit, metrics.clone(), &mut rand::rng())
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
                tick.tick().await;
                match svc.sweep_retention().await {
                    Ok(0) => {}
                    Ok(n) => info!(erased = n, "retention sweep"),
                    Err(e) => warn!(code = ?e.0, "retention sweep failed: {}", e.1),
                }
            }
        })
    };
    let handler: Arc<dyn SessionHandler> = Arc::new(Relay { svc });
    let result = crate::net::run(listener, Arc::new(config), metrics, handler, shutdown).await;
    // Wait for the sweeper to be gone and for the committer thread to answer its last
    // writers and stop, so that neither holds the store when this returns (sessions the
    // transport gave up on after its grace period may still hold it until they end).
    sweeper.abort();
    let _ = sweeper.await;
    committer.stop_async().await;
    store.flush()?;
    info!("relay stopped; store flushed");
    result
}
