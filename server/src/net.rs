//! The listener: accepts TCP connections, applies the connection limit and TLS, serves HTTP,
//! and hands each upgraded WebSocket to the [`SessionHandler`].
//!
//! ```text
//!  TcpListener ─► accept loop ─► limit (Semaphore) ──full──► HTTP 503, counted
//!                                   │
//!                                   ▼ one task per connection
//!                        [TLS handshake] ─► hyper http1
//!                                             ├─ GET|HEAD /healthz → 200 "ok\n" (503 if the
//!                                             │   cluster's database is out of reach; else 405)
//!                                             ├─ GET /metrics  → Prometheus text
//!                                             ├─ GET /v1/ws    → 101 (429 over the source's
//!                                             │                  connection rate), then a session task:
//!                                             │                  SessionHandler::run(Connection)
//!                                             ├─ a file of --web-root → the page (crate::web)
//!                                             └─ anything else → 404
//! ```
//!
//! The caller binds the listener, so tests pass port 0. Shutdown: when the `shutdown` future
//! completes the listener is dropped, sessions see their [`CancellationToken`] fire (their
//! `recv` returns `None` after sending 1001), and `run` waits up to `limits.shutdown_grace_ms`
//! for every task before returning.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::{Limits, RelayConfig};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::limits::{self, ConnectionLimit, Limited, OpenConnections};
use crate::metrics::Metrics;
use crate::web::WebRoot;

/// The future a [`SessionHandler`] returns.
pub type SessionFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The protocol layer's entry point: one call per WebSocket session.
pub trait SessionHandler: Send + Sync + 'static {
    /// Runs one WebSocket session until it ends. `peer` is the client's address: the TCP
    /// peer, or the one a trusted proxy named (see [`crate::limits::source_of`]).
    ///
    /// The session ends when the returned future completes; dropping `conn` closes the
    /// WebSocket (1000 unless a close reason was already set).
    fn run(self: Arc<Self>, conn: Connection, peer: SocketAddr) -> SessionFuture;
}

/// Path of the WebSocket endpoint.
pub const WS_PATH: &str = "/v1/ws";

/// Connections refused at the limit get their 503 from at most this many tasks at once;
/// beyond that they are simply dropped, so a flood cannot turn refusals into unbounded work.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// How long a refused connection is given to read its 503.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// How long a finished session's writer may take to send its last queued frames.
const SESSION_DRAIN: Duration = Duration::from_secs(2);

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves the relay on `listener` until `shutdown` completes, then drains sessions.
///
/// # Errors
///
/// [`Error::Config`] if the configuration does not validate, [`Error::File`] or
/// [`Error::Tls`] if TLS is configured and the certificate or key cannot be loaded. Errors on
/// individual connections are logged and counted, never returned.
pub async fn run(
    listener: TcpListener,
    config: Arc<RelayConfig>,
    metrics: Arc<Metrics>,
    handler: Arc<dyn SessionHandler>,
    shutdown: impl Future,
) -> Result<()> {
    config.validate()?;
    let tls = tls_config(&config)?.map(TlsAcceptor::from);
    let web = match &config.web_root {
        Some(dir) => {
            let web = WebRoot::load(dir)?;
            info!(dir = %dir.display(), files = web.len(), "serving web pages");
            Some(web)
        }
        None => None,
    };
    let limits = &config.limits;
    let sources = ConnectionLimit::new(limits, Arc::clone(&metrics));
    let open_per_source =
        OpenConnections::new(limits.max_connections_per_source, Arc::clone(&metrics));
    let state = Arc::new(State {
        ws_config: websocket_config(limits),
        limits: limits.clone(),
        metrics,
        handler,
        tls,
        web,
        tracker: TaskTracker::new(),
        token: CancellationToken::new(),
        next_id: AtomicU64::new(1),
        trusted_proxies: config.trusted_proxies.clone(),
        sources,
        open_per_source,
    });
    let limit = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    match listener.local_addr() {
        Ok(addr) => info!(%addr, tls = state.tls.is_some(), "relay listening"),
        Err(e) => warn!(error = %e, "listener has no local address"),
    }

    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        state.metrics.connections_total.inc();
        // Small frames matter more than throughput here.
        let _ = stream.set_nodelay(true);
        match Arc::clone(&limit).try_acquire_owned() {
            Ok(permit) => {
                let slot = Arc::new(Slot::new(permit, Arc::clone(&state.metrics)));
                state
                    .tracker
                    .spawn(serve_connection(Arc::clone(&state), stream, peer, slot));
            }
            Err(_) => {
                state.metrics.connections_rejected.inc("limit");
                debug!(%peer, "connection limit reached");
                // TLS clients cannot read a plaintext 503, and a handshake costs exactly
                // what we are short of, so they are just dropped.
                if state.tls.is_none()
                    && let Ok(refusal) = Arc::clone(&refusals).try_acquire_owned()
                {
                    state.tracker.spawn(async move {
                        refuse_busy(stream).await;
                        drop(refusal);
                    });
                }
            }
        }
    }

    drop(listener);
    let open = state.tracker.len();
    info!(open, "shutting down: no longer accepting");
    state.token.cancel();
    state.tracker.close();
    if tokio::time::timeout(state.limits.shutdown_grace(), state.tracker.wait())
        .await
        .is_err()
    {
        warn!(
            remaining = state.tracker.len(),
            "shutdown grace period over; abandoning tasks"
        );
    }
    info!("relay stopped");
    Ok(())
}

/// Builds the rustls server configuration if TLS is configured (ring provider, TLS 1.2/1.3,
/// ALPN `http/1.1`).
///
/// # Errors
///
/// [`Error::File`] if the certificate chain or key cannot be read or contains no usable
/// item, [`Error::Tls`] if rustls rejects them (e.g. the key does not match).
pub fn tls_config(config: &RelayConfig) -> Result<Option<Arc<rustls::ServerConfig>>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    let (Some(cert_path), Some(key_path)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| Error::file(cert_path, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::file(cert_path, e))?;
    if certs.is_empty() {
        return Err(Error::file(cert_path, "no certificate found"));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| Error::file(key_path, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(server)))
}

/// The tungstenite configuration derived from the limits.
pub fn websocket_config(limits: &Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(limits.read_buffer_size)
        .write_buffer_size(limits.write_buffer_size)
        .max_write_buffer_size(limits.max_write_buffer_size)
        .max_message_size(Some(limits.max_message_size))
        .max_frame_size(Some(limits.max_frame_size))
}

/// Everything the connection tasks share.
struct State {
    limits: Limits,
    ws_config: WebSocketConfig,
    metrics: Arc<Metrics>,
    handler: Arc<dyn SessionHandler>,
    tls: Option<TlsAcceptor>,
    /// The browser pages (`--web-root`), if any.
    web: Option<WebRoot>,
    /// Tracks connection, session and writer tasks so shutdown can wait for them.
    tracker: TaskTracker,
    /// Cancelled on shutdown; sessions get child tokens.
    token: CancellationToken,
    next_id: AtomicU64,
    /// Proxies whose `X-Forwarded-For` is believed.
    trusted_proxies: Vec<IpAddr>,
    /// WebSocket upgrades per source address.
    sources: ConnectionLimit,
    /// WebSocket connections open now per source address.
    open_per_source: Arc<OpenConnections>,
}

/// One admitted connection: holds its limit permit and the open-connections gauge until both
/// the HTTP connection and any WebSocket session on it are gone.
struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, metrics: Arc<Metrics>) -> Self {
        metrics.connections_open.inc();
        Self {
            _permit: permit,
            metrics,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.connections_open.dec();
    }
}

async fn serve_connection(state: Arc<State>, stream: TcpStream, peer: SocketAddr, slot: Arc<Slot>) {
    let Some(tls) = state.tls.clone() else {
        return serve_http(state, TokioIo::new(stream), peer, slot).await;
    };
    match tokio::time::timeout(state.limits.handshake_timeout(), tls.accept(stream)).await {
        Ok(Ok(stream)) => serve_http(state, TokioIo::new(stream), peer, slot).await,
        Ok(Err(e)) => {
            state.metrics.connections_rejected.inc("tls_handshake");
            debug!(%peer, error = %e, "tls handshake failed");
        }
        Err(_) => {
            state.metrics.connections_rejected.inc("handshake_timeout");
            debug!(%peer, "tls handshake timed out");
        }
    }
}

async fn serve_http<I>(state: Arc<State>, io: TokioIo<I>, peer: SocketAddr, slot: Arc<Slot>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let state = Arc::clone(&state);
        service_fn(move |req| {
            let response = route(req, &state, peer, &slot);
            async move { Ok::<_, Infallible>(response) }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(state.limits.handshake_timeout())
        .max_buf_size(state.limits.max_http_header_size)
        .max_header_size(state.limits.max_http_header_size);
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => Some(result),
        () = state.token.cancelled() => None,
    };
    let result = match result {
        Some(result) => result,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        if e.is_timeout() {
            state.metrics.connections_rejected.inc("handshake_timeout");
        } else if e.is_parse() || e.is_parse_too_large() {
            state.metrics.connections_rejected.inc("bad_request");
        }
        debug!(%peer, error = %e, "http connection ended with an error");
    }
}

fn route(
    req: Request<Incoming>,
    state: &Arc<State>,
    peer: SocketAddr,
    slot: &Arc<Slot>,
) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        // HEAD gets the same answer; hyper sends its headers without the body.
        (&Method::GET | &Method::HEAD, "/healthz") => {
            // Cluster mode: a node whose database is out of reach acknowledges nothing; the
            // load balancer should send clients elsewhere.
            if state.metrics.cluster.get().is_some_and(|c| !c.reachable()) {
                text(StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n")
            } else {
                text(StatusCode::OK, "ok\n")
            }
        }
        (_, "/healthz") => {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "use GET or HEAD\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
        (&Method::GET, "/metrics") => {
            let mut response = Response::new(Full::new(Bytes::from(state.metrics.render())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        (_, WS_PATH) => upgrade(req, state, peer, slot),
        (method, path) => {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            state
                .web
                .as_ref()
                .and_then(|web| web.respond(method, path, host))
                .unwrap_or_else(|| text(StatusCode::NOT_FOUND, "not found\n"))
        }
    }
}

/// Validates a WebSocket upgrade request (RFC 6455 §4.2.1), answers 101, and starts the
/// session once hyper hands over the connection.
fn upgrade(
    mut req: Request<Incoming>,
    state: &Arc<State>,
    peer: SocketAddr,
    slot: &Arc<Slot>,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    let headers = req.headers();
    if !has_token(headers, &header::CONNECTION, "upgrade")
        || !has_token(headers, &header::UPGRADE, "websocket")
    {
        let mut response = text(StatusCode::UPGRADE_REQUIRED, "websocket upgrade required\n");
        response
            .headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return response;
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut response = text(
            StatusCode::UPGRADE_REQUIRED,
            "websocket version 13 required\n",
        );
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return response;
    }
    // The key is base64 of 16 bytes: 24 characters ending in "==".
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
        .filter(|k| k.len() == 24 && k.ends_with(b"=="))
    else {
        return text(StatusCode::BAD_REQUEST, "bad Sec-WebSocket-Key\n");
    };
    if state.token.is_cancelled() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key)) else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
    };
    let source = limits::source_of(peer, headers, &state.trusted_proxies);
    if let Err(limited) = state.sources.admit(source) {
        debug!(%peer, %source, "connection rate limit");
        return too_many(&limited);
    }
    // Held by the session for its whole life: the source's place among its open connections.
    let open_slot = match state.open_per_source.open(source) {
        Ok(s) => s,
        Err(limited) => {
            debug!(%peer, %source, "open connections per source");
            return too_many(&limited);
        }
    };
    let peer = SocketAddr::new(source, peer.port());

    let on_upgrade = hyper::upgrade::on(&mut req);
    let (session_state, slot) = (Arc::clone(state), Arc::clone(slot));
    state.tracker.spawn(async move {
        let _open_slot = open_slot;
        match on_upgrade.await {
            Ok(upgraded) => run_session(session_state, TokioIo::new(upgraded), peer, slot).await,
            Err(e) => debug!(%peer, error = %e, "websocket upgrade failed"),
        }
    });

    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

async fn run_session(
    state: Arc<State>,
    io: TokioIo<hyper::upgrade::Upgraded>,
    peer: SocketAddr,
    slot: Arc<Slot>,
) {
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(state.ws_config)).await;
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let (conn, writer) = Connection::new(
        id,
        ws,
        &state.limits,
        Arc::clone(&state.metrics),
        state.token.child_token(),
    );
    let closer = conn.outbox();
    let mut writer = state.tracker.spawn(writer);
    info!(conn = id, %peer, "session opened");
    Arc::clone(&state.handler).run(conn, peer).await;
    // Dropping the Connection queued a close behind the remaining frames. Give the writer a
    // bounded time to send them (a peer that stopped reading would block it forever), then
    // cut it short. Waiting here keeps the permit until the socket is really closed.
    if tokio::time::timeout(SESSION_DRAIN, &mut writer)
        .await
        .is_err()
    {
        closer.abort();
        let _ = writer.await;
    }
    drop(closer);
    info!(conn = id, "session closed");
    drop(slot);
}

/// Whether the comma-separated header `name` contains `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: &header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// HTTP 429 with `Retry-After` (whole seconds) for a source over its connection rate; the
/// body is the wire's error code, `rate_limited`, and what was limited.
fn too_many(limited: &Limited) -> Response<Full<Bytes>> {
    let secs = limited.retry_after_secs().max(1);
    let body = format!("rate_limited: {}\n", limited.describe());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// Answers a connection over the limit with a plain 503, then reads (and drops) what the
/// client sent for a moment so closing does not reset the connection before the client has
/// read the answer.
async fn refuse_busy(mut stream: TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
        content-length: 5\r\nretry-after: 1\r\nconnection: close\r\n\r\nbusy\n";
    let exchange = async {
        stream.write_all(BUSY).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, exchange).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn header_tokens() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(has_token(&headers, &header::CONNECTION, "upgrade"));
        assert!(!has_token(&headers, &header::UPGRADE, "websocket"));
    }

    #[test]
    fn websocket_config_follows_limits() {
        let limits = Limits::default();
        let ws = websocket_config(&limits);
        assert_eq!(ws.max_frame_size, Some(limits.max_frame_size));
        assert_eq!(ws.max_message_size, Some(limits.max_message_size));
        assert_eq!(ws.read_buffer_size, limits.read_buffer_size);
        assert_eq!(ws.write_buffer_size, limits.write_buffer_size);
        assert_eq!(ws.max_write_buffer_size, limits.max_write_buffer_size);
    }
}
