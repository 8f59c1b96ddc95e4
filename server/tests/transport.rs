//! End-to-end transport tests: a real relay on 127.0.0.1:0, real clients.
//!
//! No timing assertions: timeouts only keep a broken test from hanging.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sealdesk_server::config::RelayConfig;
use sealdesk_server::connection::Connection;
use sealdesk_server::metrics::Metrics;
use sealdesk_server::net::{self, SessionFuture, SessionHandler};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};

/// Generous bound on any single step, so a bug fails the test instead of hanging it.
const STEP: Duration = Duration::from_secs(20);

/// Echoes binary messages. `flood` instead makes the session push 16 KiB frames without
/// waiting until its outbox refuses one (a slow-consumer generator); `bye` makes it answer
/// `bye-ack` and end the session.
struct TestHandler;

impl SessionHandler for TestHandler {
    fn run(self: Arc<Self>, mut conn: Connection, _peer: SocketAddr) -> SessionFuture {
        Box::pin(async move {
            while let Ok(Some(frame)) = conn.recv().await {
                if frame == b"flood" {
                    let outbox = conn.outbox();
                    for _ in 0..100_000 {
                        if outbox.try_push(vec![7u8; 16 * 1024]).is_err() {
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                } else if frame == b"bye" {
                    let _ = conn.send(b"bye-ack".to_vec()).await;
                    return;
                } else if conn.send(frame).await.is_err() {
                    break;
                }
            }
        })
    }
}

struct Relay {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<sealdesk_server::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Relay {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(STEP, self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

async fn spawn_relay(tweak: impl FnOnce(&mut RelayConfig)) -> Relay {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RelayConfig {
        data_dir: dir.path().to_owned(),
        ..RelayConfig::default()
    };
    tweak(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Arc::new(Metrics::new());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(net::run(
        listener,
        Arc::new(config),
        metrics.clone(),
        Arc::new(TestHandler),
        async move {
            let _ = stopped.await;
        },
    ));
    Relay {
        addr,
        metrics,
        stop: Some(stop),
        task,
        _dir: dir,
    }
}

/// Sends a raw HTTP/1.1 request and returns the whole response.
async fn http<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    method: &str,
    path: &str,
) -> String {
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: relay.test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(STEP, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(response).unwrap()
}

async fn get(addr: SocketAddr, path: &str) -> String {
    http(TcpStream::connect(addr).await.unwrap(), "GET", path).await
}

type Client = WebSocketStream<TcpStream>;

async fn try_ws(addr: SocketAddr) -> Result<Client, tungstenite::Error> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let url = format!("ws://{addr}/v1/ws");
    tokio::time::timeout(STEP, tokio_tungstenite::client_async(url, tcp))
        .await
        .unwrap()
        .map(|(ws, _)| ws)
}

async fn ws(addr: SocketAddr) -> Client {
    try_ws(addr).await.unwrap()
}

/// Sends `payload` and expects it back.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, payload: &[u8]) {
    ws.send(Message::binary(payload.to_vec())).await.unwrap();
    loop {
        match tokio::time::timeout(STEP, ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(data))) => {
                assert_eq!(&data[..], payload);
                return;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected an echo, got {other:?}"),
        }
    }
}

/// Reads until the server's close frame and returns its code.
async fn close_code(ws: &mut Client) -> u16 {
    loop {
        match tokio::time::timeout(STEP, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
            Some(Ok(Message::Close(None))) => panic!("close frame without a code"),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("error before the close frame: {e}"),
            None => panic!("stream ended without a close frame"),
        }
    }
}

/// Waits for `event` (a metric reaching a value), bounded by [`STEP`].
async fn wait_for(what: &str, event: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(STEP, event)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// `/healthz` answers GET and HEAD (headers only); any other method is 405 with `Allow`.
#[tokio::test]
async fn healthz_answers_get_and_head_only() {
    let relay = spawn_relay(|_| {}).await;
    let conn = || async { TcpStream::connect(relay.addr).await.unwrap() };
    let head = http(conn().await, "HEAD", "/healthz").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "no body for HEAD: {head:?}");
    for method in ["POST", "PUT", "DELETE"] {
        let r = http(conn().await, method, "/healthz").await;
        assert!(r.starts_with("HTTP/1.1 405"), "{method}: {r}");
        assert!(r.contains("allow: GET, HEAD\r\n"), "{method}: {r}");
    }
    relay.stop().await;
}

#[tokio::test]
async fn healthz_metrics_and_404_over_http() {
    let relay = spawn_relay(|_| {}).await;
    let health = get(relay.addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    assert!(health.ends_with("\r\n\r\nok\n"), "{health}");

    let metrics = get(relay.addr, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    assert!(
        metrics.contains("content-type: text/plain; version=0.0.4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE sealdesk_connections_total counter\n"),
        "{metrics}"
    );
    assert!(metrics.contains("sealdesk_flush_latency_seconds_bucket{le=\"+Inf\"} 0\n"));

    let missing = get(relay.addr, "/nope").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let not_upgrade = get(relay.addr, "/v1/ws").await;
    assert!(not_upgrade.starts_with("HTTP/1.1 426"), "{not_upgrade}");
    relay.stop().await;
}

#[tokio::test]
async fn websocket_echo_round_trip() {
    let relay = spawn_relay(|_| {}).await;
    let mut client = ws(relay.addr).await;
    echo(&mut client, b"hello relay").await;
    echo(&mut client, &vec![1u8; 60 * 1024]).await;
    // A frame is counted before the flush that sends it, so both echoes received means both
    // counted (and their requests before them).
    assert_eq!(relay.metrics.frames_out.get(), 2);
    assert_eq!(relay.metrics.bytes_in.get(), 11 + 60 * 1024);
    client.close(None).await.unwrap();
    relay.stop().await;
}

#[tokio::test]
async fn oversized_frame_closes_with_1009() {
    let relay = spawn_relay(|_| {}).await;
    let mut client = ws(relay.addr).await;
    client
        .send(Message::binary(vec![0u8; 100 * 1024]))
        .await
        .unwrap();
    assert_eq!(close_code(&mut client).await, 1009);
    wait_for(
        "rejection counted",
        relay
            .metrics
            .frames_rejected
            .wait_for("too_big", |n| n == 1),
    )
    .await;

    // Only that connection is affected.
    let mut other = ws(relay.addr).await;
    echo(&mut other, b"still here").await;
    relay.stop().await;
}

#[tokio::test]
async fn text_frame_closes_with_1003() {
    let relay = spawn_relay(|_| {}).await;
    let mut client = ws(relay.addr).await;
    client.send(Message::text("hello")).await.unwrap();
    assert_eq!(close_code(&mut client).await, 1003);
    wait_for(
        "rejection counted",
        relay
            .metrics
            .frames_rejected
            .wait_for("unsupported_data", |n| n == 1),
    )
    .await;
    relay.stop().await;
}

#[tokio::test]
async fn connections_past_the_limit_get_503() {
    let relay = spawn_relay(|c| c.limits.max_connections = 1).await;
    let mut first = ws(relay.addr).await;
    echo(&mut first, b"one").await;

    match try_ws(relay.addr).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    let raw = get(relay.addr, "/healthz").await;
    assert!(raw.starts_with("HTTP/1.1 503"), "{raw}");
    assert_eq!(relay.metrics.connections_rejected.get("limit"), 2);

    // Closing the first connection frees its slot.
    first.close(None).await.unwrap();
    wait_for(
        "slot released",
        relay.metrics.connections_open.wait_for(|n| n == 0),
    )
    .await;
    let mut second = ws(relay.addr).await;
    echo(&mut second, b"two").await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_disconnected_while_others_keep_working() {
    let relay = spawn_relay(|c| c.limits.outbound_queue = 8).await;
    let mut healthy = ws(relay.addr).await;
    let mut slow = ws(relay.addr).await;
    // Ask the server to flood, then never read while it does.
    slow.send(Message::binary(b"flood".to_vec())).await.unwrap();
    // The drop is counted before the close it causes.
    wait_for(
        "a slow-consumer close",
        relay
            .metrics
            .connections_closed
            .wait_for("slow_consumer", |n| n == 1),
    )
    .await;
    assert!(relay.metrics.queue_drops.get() >= 1);
    echo(&mut healthy, b"unaffected").await;

    // The slow client's stream ends (with or without a close frame: its socket was full).
    let drained = tokio::time::timeout(STEP, async {
        let mut frames = 0u64;
        while let Some(Ok(message)) = slow.next().await {
            if message.is_close() {
                break;
            }
            frames += 1;
        }
        frames
    })
    .await
    .unwrap();
    assert!(
        drained > 0,
        "the flood reached the client before it was cut off"
    );
    echo(&mut healthy, b"still unaffected").await;
    relay.stop().await;
}

#[tokio::test]
async fn rate_limit_closes_with_4029() {
    let relay = spawn_relay(|c| {
        c.limits.max_frames_per_second = 5;
        c.limits.frame_burst = 5;
    })
    .await;
    let mut client = ws(relay.addr).await;
    for i in 0..50u8 {
        client.feed(Message::binary(vec![i])).await.unwrap();
    }
    client.flush().await.unwrap();
    assert_eq!(close_code(&mut client).await, 4029);
    assert_eq!(relay.metrics.frames_rejected.get("rate_limit"), 1);
    relay.stop().await;
}

#[tokio::test]
async fn idle_connection_is_closed_with_4000() {
    let relay = spawn_relay(|c| {
        c.limits.idle_timeout_ms = 300;
        c.limits.ping_interval_ms = 100;
    })
    .await;
    let mut client = ws(relay.addr).await;
    // Not reading means not answering pings either.
    wait_for(
        "idle close",
        relay
            .metrics
            .connections_closed
            .wait_for("idle_timeout", |n| n == 1),
    )
    .await;
    assert_eq!(close_code(&mut client).await, 4000);
    relay.stop().await;
}

#[tokio::test]
async fn answered_pings_keep_a_quiet_connection_open() {
    let relay = spawn_relay(|c| {
        c.limits.idle_timeout_ms = 400;
        c.limits.ping_interval_ms = 100;
    })
    .await;
    let mut client = ws(relay.addr).await;
    // Reading answers the relay's pings; several idle periods pass without a close.
    let mut pings = 0;
    while pings < 12 {
        match tokio::time::timeout(STEP, client.next()).await.unwrap() {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("expected pings only, got {other:?}"),
        }
    }
    echo(&mut client, b"alive").await;
    assert_eq!(relay.metrics.connections_closed.get("idle_timeout"), 0);
    relay.stop().await;
}

#[tokio::test]
async fn tls_websocket_echo() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let relay = spawn_relay(|c| {
        c.tls_cert = Some(cert_path);
        c.tls_key = Some(key_path);
    })
    .await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let tls = |addr| {
        let connector = connector.clone();
        async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            tokio::time::timeout(STEP, connector.connect(name, tcp))
                .await
                .unwrap()
                .unwrap()
        }
    };

    let health = http(tls(relay.addr).await, "GET", "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");

    let (mut client, _) =
        tokio_tungstenite::client_async("wss://localhost/v1/ws", tls(relay.addr).await)
            .await
            .unwrap();
    echo(&mut client, b"over tls").await;

    // A plaintext client cannot talk to the TLS listener.
    let plain = get(relay.addr, "/healthz").await;
    assert!(!plain.contains("ok\n"));
    wait_for(
        "failed handshake counted",
        relay
            .metrics
            .connections_rejected
            .wait_for("tls_handshake", |n| n == 1),
    )
    .await;
    relay.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_closes_sessions_and_returns() {
    let relay = spawn_relay(|_| {}).await;
    let mut client = ws(relay.addr).await;
    echo(&mut client, b"before shutdown").await;
    let addr = relay.addr;
    let metrics = relay.metrics.clone();
    let stopping = tokio::spawn(relay.stop());
    assert_eq!(close_code(&mut client).await, 1001);
    drop(client);
    tokio::time::timeout(STEP, stopping).await.unwrap().unwrap();
    assert_eq!(metrics.connections_open.get(), 0);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener is closed"
    );
}

#[tokio::test]
async fn a_session_ending_still_delivers_its_last_frame() {
    let relay = spawn_relay(|_| {}).await;
    let mut client = ws(relay.addr).await;
    client.send(Message::binary(b"bye".to_vec())).await.unwrap();
    match tokio::time::timeout(STEP, client.next()).await.unwrap() {
        Some(Ok(Message::Binary(data))) => assert_eq!(&data[..], b"bye-ack"),
        other => panic!("expected the last reply, got {other:?}"),
    }
    assert_eq!(close_code(&mut client).await, 1000);
    relay.stop().await;
}

#[tokio::test]
async fn protocol_violation_closes_with_1002() {
    let relay = spawn_relay(|_| {}).await;
    let mut tcp = TcpStream::connect(relay.addr).await.unwrap();
    let handshake = "GET /v1/ws HTTP/1.1\r\nHost: relay.test\r\nConnection: Upgrade\r\n\
        Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    tcp.write_all(handshake.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tokio::time::timeout(STEP, tcp.read_exact(&mut byte))
            .await
            .unwrap()
            .unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // RFC 6455 example key and accept value.
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");

    // A client frame without a mask is a protocol error.
    tcp.write_all(&[0x82, 0x01, b'A']).await.unwrap();
    let mut frame = [0u8; 4];
    tokio::time::timeout(STEP, tcp.read_exact(&mut frame))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame[0], 0x88, "a close frame");
    assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 1002);
    assert_eq!(relay.metrics.frames_rejected.get("protocol"), 1);
    relay.stop().await;
}
