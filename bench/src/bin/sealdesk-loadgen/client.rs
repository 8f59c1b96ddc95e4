//! Client-side sockets and the Sealdesk handshake, speaking `sealdesk_protocol::wire` directly.
//!
//! Client sockets bind to one of several loopback source addresses (127.0.0.2 …) before
//! connecting, so that tens of thousands of connections (and the TIME_WAIT they leave behind)
//! do not exhaust one address's ephemeral ports.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use sealdesk_protocol::{
    card::VerifiedCard,
    keys::IdentityKeys,
    wire::{self, AuthResponse, Frame, Request, Response, Welcome},
};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, protocol::WebSocketConfig},
};

/// A client WebSocket.
pub type Ws = WebSocketStream<TcpStream>;

/// Source addresses used: 127.0.0.2 ..= 127.0.0.(1 + SOURCE_ADDRS).
const SOURCE_ADDRS: usize = 16;

/// Bound on one setup step (handshake, request), so a broken relay fails the run.
pub const STEP: Duration = Duration::from_secs(30);

/// The loopback source address for the `i`-th connection.
pub fn source_ip(i: usize) -> Ipv4Addr {
    // `i % 16 + 2` is at most 17: it fits the last octet.
    Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCE_ADDRS) as u8)
}

/// WebSocket settings for client connections: a small read buffer, since ten thousand idle
/// clients live in this process.
pub fn client_config(read_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Opens a WebSocket to `ws://{addr}{path}` from source address `source_ip(i)`.
///
/// # Errors
/// `addr` is not a loopback address, or the connection or upgrade fails.
pub async fn connect(addr: SocketAddr, path: &str, i: usize, read_buffer: usize) -> Result<Ws> {
    connect_from(addr, path, source_ip(i), read_buffer).await
}

/// Opens a WebSocket to `ws://{addr}{path}` from the loopback source address `source`.
///
/// # Errors
/// `addr` is not a loopback address, or the connection or upgrade fails (an upgrade the relay
/// refuses is a `tungstenite::Error::Http` in the chain).
pub async fn connect_from(
    addr: SocketAddr,
    path: &str,
    source: Ipv4Addr,
    read_buffer: usize,
) -> Result<Ws> {
    if !addr.ip().is_loopback() || !source.is_loopback() {
        bail!("refusing to load {addr} from {source}: only 127.0.0.0/8 is a target");
    }
    let socket = TcpSocket::new_v4()?;
    socket
        .bind(SocketAddr::from((source, 0)))
        .with_context(|| format!("binding a client socket to {source}"))?;
    let stream = socket
        .connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{addr}{path}");
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(client_config(read_buffer)))
            .await
            .with_context(|| format!("WebSocket upgrade at {addr}{path}"))?;
    Ok(ws)
}

/// Sends one frame.
///
/// # Errors
/// Encoding or the socket failed.
pub async fn send_frame(ws: &mut Ws, frame: &Frame) -> Result<()> {
    let bytes = wire::encode(frame)?;
    ws.send(Message::Binary(bytes.into())).await?;
    Ok(())
}

/// Reads the next Sealdesk frame (pings are answered by tungstenite and skipped).
///
/// # Errors
/// The connection closed, or a frame did not decode.
pub async fn recv_frame(ws: &mut Ws) -> Result<Frame> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return Ok(wire::decode(&b)?),
            Some(Ok(Message::Close(c))) => bail!("the relay closed the connection: {c:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("the relay closed the connection"),
        }
    }
}

/// Challenge → Auth → Welcome.
///
/// # Errors
/// The relay sent something else, or refused the answer.
pub async fn authenticate(
    ws: &mut Ws,
    keys: &IdentityKeys,
    card: &VerifiedCard,
) -> Result<Welcome> {
    let challenge = match tokio::time::timeout(STEP, recv_frame(ws)).await?? {
        Frame::Challenge(c) => c,
        other => bail!("expected a challenge, got {other:?}"),
    };
    let answer = AuthResponse::answer(keys, card.card().clone(), &challenge);
    send_frame(ws, &Frame::Auth(answer)).await?;
    match tokio::time::timeout(STEP, recv_frame(ws)).await?? {
        Frame::Welcome(w) => Ok(w),
        Frame::Response {
            body: Response::Error { message, .. },
            ..
        } => Err(anyhow!("authentication refused: {message}")),
        other => bail!("expected a welcome, got {other:?}"),
    }
}

/// Sends a request and waits for its response, skipping pushes that arrive meanwhile. For
/// setup only: the load path pipelines requests instead.
///
/// # Errors
/// The connection failed, or the response is an error.
pub async fn request(ws: &mut Ws, id: u64, body: Request) -> Result<Response> {
    send_frame(ws, &Frame::Request { id, body }).await?;
    let wait = async {
        loop {
            match recv_frame(ws).await? {
                Frame::Response { id: got, body } if got == id => return Ok(body),
                _ => continue,
            }
        }
    };
    match tokio::time::timeout(STEP, wait).await? {
        Ok(Response::Error { code, message, .. }) => {
            Err(anyhow!("request refused ({code:?}): {message}"))
        }
        other => other,
    }
}

/// The relay's `/metrics` exposition (plain HTTP/1.1 GET, `Connection: close`).
///
/// # Errors
/// The request fails or the answer is not UTF-8.
pub async fn metrics(addr: SocketAddr) -> Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    if !addr.ip().is_loopback() {
        bail!("refusing to query {addr}: only 127.0.0.0/8 is a target");
    }
    let fetch = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n")
            .await?;
        let mut body = Vec::new();
        stream.read_to_end(&mut body).await?;
        Ok::<_, anyhow::Error>(String::from_utf8(body)?)
    };
    tokio::time::timeout(STEP, fetch).await?
}

/// The value of an unlabelled metric line `name value`.
pub fn metric(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next() == Some(name))
            .then(|| parts.next().and_then(|v| v.parse().ok()))
            .flatten()
    })
}

/// The cumulative buckets of histogram `name` in a Prometheus text exposition, as
/// `(upper bound in its unit, count)`, ascending; `+Inf` is `f64::INFINITY`.
pub fn buckets(exposition: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut out: Vec<(f64, f64)> = exposition
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (le, rest) = rest.split_once("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, rest.trim().parse().ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The smallest bucket bound under which at least `q` of the samples in `buckets` (cumulative,
/// from [`buckets`]) fall; `None` if there are no samples.
pub fn quantile_bound(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    (total > 0.0)
        .then(|| {
            buckets
                .iter()
                .find(|(_, n)| *n >= q * total)
                .map(|(le, _)| *le)
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const EXPOSITION: &str = "\
# TYPE sealdesk_ack_latency_seconds histogram
sealdesk_ack_latency_seconds_bucket{le=\"0.001\"} 50
sealdesk_ack_latency_seconds_bucket{le=\"+Inf\"} 100
sealdesk_ack_latency_seconds_bucket{le=\"0.005\"} 98
sealdesk_ack_latency_seconds_sum 0.2
sealdesk_ack_latency_seconds_count 100
sealdesk_flush_latency_seconds_bucket{le=\"0.001\"} 7
";

    #[test]
    fn buckets_are_read_in_bound_order_and_only_for_the_named_histogram() {
        let b = buckets(EXPOSITION, "sealdesk_ack_latency_seconds");
        assert_eq!(
            b,
            vec![(0.001, 50.0), (0.005, 98.0), (f64::INFINITY, 100.0)]
        );
        assert_eq!(
            metric(EXPOSITION, "sealdesk_ack_latency_seconds_count"),
            Some(100.0)
        );
    }

    #[test]
    fn quantile_bound_is_the_first_bucket_holding_that_share() {
        let b = buckets(EXPOSITION, "sealdesk_ack_latency_seconds");
        assert_eq!(quantile_bound(&b, 0.5), Some(0.001));
        assert_eq!(quantile_bound(&b, 0.9), Some(0.005));
        assert_eq!(quantile_bound(&b, 0.99), Some(f64::INFINITY));
        assert_eq!(
            quantile_bound(&[(0.001, 0.0), (f64::INFINITY, 0.0)], 0.5),
            None
        );
        assert_eq!(quantile_bound(&[], 0.5), None);
    }
}
