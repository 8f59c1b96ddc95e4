//! The baseline: a minimal plaintext WebSocket broadcast relay, what an operator would run
//! instead of Sealdesk — tokio-tungstenite with its default configuration, no TLS, no
//! authentication, no storage, no acknowledgements.
//!
//! ```text
//!   client frame = JOIN    ‖ room (16 bytes)              join a room (any number per connection)
//!                | PUBLISH ‖ room (16 bytes) ‖ payload    payload to every *other* member of room
//!   relay frame  = payload
//! ```
//!
//! It is built the way a competent minimal relay would be, so the comparison is fair: one
//! reader task and one writer task per connection, a bounded outbound queue per connection
//! (a full queue drops the frame and counts it), queued frames batched into one flush, and
//! `TCP_NODELAY` like the Sealdesk relay.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};

/// Client frame tag: join the room that follows.
pub const JOIN: u8 = 1;
/// Client frame tag: publish the payload after the room to the room's other members.
pub const PUBLISH: u8 = 2;
/// Length of a room id.
pub const ROOM_LEN: usize = 16;
/// Frames queued per connection before further ones are dropped (the Sealdesk relay is run
/// with the same `outbound_queue` in the benchmark).
pub const OUTBOUND_QUEUE: usize = 4096;
/// Most queued frames written before one flush.
const MAX_WRITE_BURST: usize = 64;

/// A JOIN frame.
pub fn join_frame(room: &[u8; ROOM_LEN]) -> Vec<u8> {
    let mut f = Vec::with_capacity(1 + ROOM_LEN);
    f.push(JOIN);
    f.extend_from_slice(room);
    f
}

/// A PUBLISH frame.
pub fn publish_frame(room: &[u8; ROOM_LEN], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(1 + ROOM_LEN + payload.len());
    f.push(PUBLISH);
    f.extend_from_slice(room);
    f.extend_from_slice(payload);
    f
}

/// Counters of a running baseline relay.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections accepted (WebSocket upgrade completed).
    pub connections: AtomicU64,
    /// Payloads queued to a recipient.
    pub forwarded: AtomicU64,
    /// Payloads dropped because a recipient's queue was full.
    pub dropped: AtomicU64,
}

type Rooms = Mutex<HashMap<[u8; ROOM_LEN], Vec<(u64, mpsc::Sender<Bytes>)>>>;

/// Serves the baseline relay on `listener` with `config` until `shutdown` completes.
/// Pass `WebSocketConfig::default()` for the default-configured server.
pub async fn serve(
    listener: TcpListener,
    config: WebSocketConfig,
    counters: Arc<Counters>,
    shutdown: impl Future<Output = ()>,
) {
    let rooms: Arc<Rooms> = Arc::default();
    let next_id = AtomicU64::new(1);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => {
                    // Out of descriptors or similar: back off briefly instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let (rooms, counters) = (Arc::clone(&rooms), Arc::clone(&counters));
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
            else {
                return;
            };
            counters.connections.fetch_add(1, Ordering::Relaxed);
            connection(ws, id, &rooms, &counters).await;
        });
    }
}

async fn connection<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    id: u64,
    rooms: &Rooms,
    counters: &Counters,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(OUTBOUND_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(Message::Binary(first)).await.is_err() {
                return;
            }
            for _ in 1..MAX_WRITE_BURST {
                match rx.try_recv() {
                    Ok(next) => {
                        if sink.feed(Message::Binary(next)).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let mut joined: Vec<[u8; ROOM_LEN]> = Vec::new();
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Binary(frame) = msg else {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            continue;
        };
        let Some((&tag, rest)) = frame.split_first() else {
            continue;
        };
        let Some(room) = rest
            .get(..ROOM_LEN)
            .and_then(|r| <[u8; ROOM_LEN]>::try_from(r).ok())
        else {
            continue;
        };
        match tag {
            JOIN => {
                if let Ok(mut map) = rooms.lock() {
                    map.entry(room).or_default().push((id, tx.clone()));
                    joined.push(room);
                }
            }
            PUBLISH => {
                let payload = frame.slice(1 + ROOM_LEN..);
                let targets: Vec<mpsc::Sender<Bytes>> = match rooms.lock() {
                    Ok(map) => map
                        .get(&room)
                        .map(|m| {
                            m.iter()
                                .filter(|(who, _)| *who != id)
                                .map(|(_, t)| t.clone())
                                .collect()
                        })
                        .unwrap_or_default(),
                    Err(_) => Vec::new(),
                };
                for t in targets {
                    if t.try_send(payload.clone()).is_ok() {
                        counters.forwarded.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ => {}
        }
    }
    if let Ok(mut map) = rooms.lock() {
        for room in &joined {
            if let Some(members) = map.get_mut(room) {
                members.retain(|(who, _)| *who != id);
                if members.is_empty() {
                    map.remove(room);
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn publishes_to_the_other_members_only() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            WebSocketConfig::default(),
            counters.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        let url = format!("ws://{addr}/");
        let room = [7u8; ROOM_LEN];
        let (mut a, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let (mut b, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        for ws in [&mut a, &mut b] {
            ws.send(Message::Binary(join_frame(&room).into()))
                .await
                .unwrap();
        }
        // B's join may not be processed yet when A first publishes: retry a bounded number of
        // times until B hears one.
        let mut heard = false;
        for _ in 0..100 {
            a.send(Message::Binary(publish_frame(&room, b"hi").into()))
                .await
                .unwrap();
            let got = tokio::time::timeout(std::time::Duration::from_millis(200), b.next()).await;
            if let Ok(Some(Ok(Message::Binary(p)))) = got {
                assert_eq!(&p[..], b"hi");
                heard = true;
                break;
            }
        }
        assert!(heard, "B never received A's payload");
        // The publisher does not hear itself.
        let echo = tokio::time::timeout(std::time::Duration::from_millis(200), a.next()).await;
        assert!(echo.is_err(), "publisher received its own payload");
        stop.send(()).unwrap();
        server.await.unwrap();
    }
}
