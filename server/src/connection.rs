//! One WebSocket connection: a reading [`Connection`] and a writing [`Outbox`].
//!
//! ```text
//!             recv() ◄── SplitStream ◄──┐
//!  session                               WebSocket (TCP or TLS, via hyper upgrade)
//!   ├─ Outbox ─► bounded mpsc ─► writer task ─► SplitSink ─┘
//!   └─ Outbox clones held by routing (try_push: full queue ⇒ close 4008)
//!                    close signal (watch) ──► writer sends the close frame and stops
//! ```
//!
//! The reader lives in the session's task and is driven by [`Connection::recv`]: it answers
//! pings (tungstenite queues the pong), enforces the idle timeout and the per-connection rate
//! limit, and turns every violation into a close frame with a specific code (see
//! [`CloseReason`]) that ends only this connection. The writer task owns the sending half; it
//! batches queued frames into one flush, sends keepalive pings, and stops after a close.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::config::Limits;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// The WebSocket type every session runs on, whatever the transport underneath.
pub(crate) type WsStream = WebSocketStream<TokioIo<Upgraded>>;

/// How long a closing side waits for the close frame to go out and for the peer's reply.
/// Bounded so that a peer that stops reading cannot hold a connection open.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Most queued frames the writer hands to the socket before one flush.
const MAX_WRITE_BURST: usize = 64;

pub use crate::close::CloseReason;

/// What the writer task sends.
#[derive(Debug)]
enum Outbound {
    /// A binary message.
    Binary(Bytes),
    /// A close frame, sent after everything queued before it.
    Close(CloseReason),
}

/// State shared by the reader, the writer and every [`Outbox`] of one connection.
#[derive(Debug)]
struct Shared {
    id: u64,
    /// Set once, to the first close reason; the writer and the reader watch it. A watch
    /// channel holds one value, so it cannot grow.
    close: watch::Sender<Option<CloseReason>>,
    max_message_size: usize,
    /// Longest the relay waits on a peer that does not read (queue room, a socket write):
    /// the idle timeout. Past it the peer is closed as a slow consumer, so a connection that
    /// never reads cannot pin its queue's memory for ever.
    stall_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Shared {
    /// Records `reason` unless a reason is already set; returns whether this call set it.
    /// `count` adds it to `connections_closed` (relay-initiated closes only).
    fn signal(&self, reason: CloseReason, count: bool) -> bool {
        let set = self.close.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
        if set && count {
            self.metrics.connections_closed.inc(reason.label());
        }
        set
    }

    fn reason(&self) -> Option<CloseReason> {
        *self.close.borrow()
    }
}

/// The sending side of a connection. Cheap to clone; hand clones to whatever routes frames
/// to this connection.
///
/// Frames go through a queue of `limits.outbound_queue` frames to the connection's writer
/// task. [`try_push`](Self::try_push) never waits: a full queue means the peer does not read
/// fast enough, and the connection is closed with [`CloseReason::SlowConsumer`] rather than
/// buffering without bound.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Outbound>,
    shared: Arc<Shared>,
}

impl Outbox {
    /// The connection's id (as in logs).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// An outbox wired to no socket, for unit tests of what routes frames and closes: its
    /// connection's id is `id`; [`Self::closed_with`] tells whether it was closed.
    #[cfg(test)]
    pub(crate) fn detached(id: u64) -> Self {
        let (tx, rx) = mpsc::channel(1);
        // The receiving end is dropped: a push fails as if the connection had left.
        drop(rx);
        let (close, _) = watch::channel(None);
        Self {
            tx,
            shared: Arc::new(Shared {
                id,
                close,
                max_message_size: 1,
                stall_timeout: Duration::from_secs(1),
                metrics: Arc::new(Metrics::default()),
            }),
        }
    }

    /// The close reason set on this connection, if any (unit tests).
    #[cfg(test)]
    pub(crate) fn closed_with(&self) -> Option<CloseReason> {
        self.shared.reason()
    }

    /// Queues a binary frame without waiting.
    ///
    /// # Errors
    ///
    /// - [`Error::FrameTooLarge`] if the frame exceeds `max_message_size` (nothing happens to
    ///   the connection);
    /// - [`Error::Closed`]`(SlowConsumer)` if the queue is full: the frame is dropped, the drop
    ///   is counted, and the connection is closed with 4008;
    /// - [`Error::Closed`] with the earlier reason if the connection is already closing.
    pub fn try_push(&self, frame: impl Into<Bytes>) -> Result<()> {
        let frame = self.check(frame.into())?;
        match self.tx.try_send(Outbound::Binary(frame)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.metrics.queue_drops.inc();
                if self.shared.signal(CloseReason::SlowConsumer, true) {
                    info!(
                        conn = self.shared.id,
                        queued = self.tx.max_capacity(),
                        "slow consumer"
                    );
                }
                Err(Error::Closed(self.closed_reason()))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Error::Closed(self.closed_reason())),
        }
    }

    /// Queues a binary frame, waiting for room in the queue (for a session's own replies,
    /// where waiting is the right back-pressure).
    ///
    /// # Errors
    ///
    /// [`Error::FrameTooLarge`], or [`Error::Closed`] if the connection closes first.
    pub async fn send(&self, frame: impl Into<Bytes>) -> Result<()> {
        let frame = self.check(frame.into())?;
        match tokio::time::timeout(
            self.shared.stall_timeout,
            self.tx.send(Outbound::Binary(frame)),
        )
        .await
        {
            Ok(sent) => sent.map_err(|_| Error::Closed(self.closed_reason())),
            Err(_) => {
                // The peer has not made room for a whole idle timeout: it is not reading.
                self.shared.metrics.queue_drops.inc();
                if self.shared.signal(CloseReason::SlowConsumer, true) {
                    info!(conn = self.shared.id, "slow consumer: queue stalled");
                }
                Err(Error::Closed(self.closed_reason()))
            }
        }
    }

    /// Closes the connection now with `reason`; frames still queued are dropped. Later calls
    /// (and any later violation) keep the first reason.
    pub fn close(&self, reason: CloseReason) {
        if self.shared.signal(reason, true) {
            debug!(
                conn = self.shared.id,
                code = reason.code(),
                "close requested"
            );
        }
    }

    /// Queues a close frame after the frames already queued, waiting for room.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if the connection closed first.
    pub async fn finish(&self, reason: CloseReason) -> Result<()> {
        self.tx
            .send(Outbound::Close(reason))
            .await
            .map_err(|_| Error::Closed(self.closed_reason()))
    }

    /// Closes at once without counting it as a relay-initiated close (the session already
    /// ended; this only stops a writer stuck on a peer that does not read).
    pub(crate) fn abort(&self) {
        self.shared.signal(CloseReason::Normal, false);
    }

    /// Whether the connection is closing or closed.
    pub fn is_closed(&self) -> bool {
        self.shared.reason().is_some() || self.tx.is_closed()
    }

    fn closed_reason(&self) -> CloseReason {
        self.shared.reason().unwrap_or(CloseReason::ConnectionLost)
    }

    fn check(&self, frame: Bytes) -> Result<Bytes> {
        if let Some(reason) = self.shared.reason() {
            return Err(Error::Closed(reason));
        }
        if frame.len() > self.shared.max_message_size {
            return Err(Error::FrameTooLarge {
                size: frame.len(),
                max: self.shared.max_message_size,
            });
        }
        Ok(frame)
    }
}

/// A per-connection token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// How a connection ended, remembered so that later `recv` calls answer the same way.
#[derive(Debug, Clone, Copy)]
enum Ended {
    Clean,
    Closed(CloseReason),
}

/// The receiving side of a WebSocket session, owned by the session's task.
///
/// Dropping it closes the connection — code 1000 after the frames already queued, unless a
/// reason was already set — even if [`Outbox`] clones are still held elsewhere.
pub struct Connection {
    id: u64,
    stream: SplitStream<WsStream>,
    outbox: Outbox,
    close_rx: watch::Receiver<Option<CloseReason>>,
    shutdown: CancellationToken,
    limits: Limits,
    bucket: TokenBucket,
    last_seen: Instant,
    ended: Option<Ended>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("ended", &self.ended)
            .finish()
    }
}

impl Connection {
    /// Wraps an accepted WebSocket. Returns the connection and the writer task's future, which
    /// the caller spawns (so it can track it for shutdown).
    pub(crate) fn new(
        id: u64,
        ws: WsStream,
        limits: &Limits,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (sink, stream) = ws.split();
        let (tx, rx) = mpsc::channel(limits.outbound_queue.max(1));
        let (close, close_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            id,
            close,
            max_message_size: limits.max_message_size,
            stall_timeout: limits.idle_timeout(),
            metrics,
        });
        let writer = write_loop(sink, rx, Arc::clone(&shared), limits.ping_interval());
        let now = Instant::now();
        let conn = Self {
            id,
            stream,
            outbox: Outbox { tx, shared },
            close_rx,
            shutdown,
            limits: limits.clone(),
            bucket: TokenBucket::new(limits.max_frames_per_second, limits.frame_burst, now),
            last_seen: now,
            ended: None,
        };
        (conn, writer)
    }

    /// The connection's id, unique within this relay process (use it in logs).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A sending handle for this connection.
    pub fn outbox(&self) -> Outbox {
        self.outbox.clone()
    }

    /// The limits this connection runs under (e.g. `auth_timeout()` for the handshake).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Queues a binary frame, waiting for room (see [`Outbox::send`]).
    ///
    /// # Errors
    ///
    /// As [`Outbox::send`].
    pub async fn send(&self, frame: impl Into<Bytes>) -> Result<()> {
        self.outbox.send(frame).await
    }

    /// Receives the next binary message.
    ///
    /// Returns `Ok(None)` when the session should end cleanly: the peer closed the
    /// WebSocket, or the relay is shutting down (the peer then gets 1001). Pings are answered
    /// and pongs consumed here, so keep calling `recv` for keepalive to work.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] with the reason when the relay closed the connection: a violation
    /// detected here (text message 1003, oversized 1009, protocol error 1002, rate limit 4029,
    /// idle timeout 4000), a close requested through an [`Outbox`] (e.g. slow consumer 4008),
    /// or `ConnectionLost` when the peer vanished. Later calls return the same result.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            match self.ended {
                Some(Ended::Clean) => return Ok(None),
                Some(Ended::Closed(reason)) => return Err(Error::Closed(reason)),
                None => {}
            }
            let idle_deadline = self.last_seen + self.limits.idle_timeout();
            let event = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => Event::Shutdown,
                reason = wait_closed(&mut self.close_rx) => Event::Closed(reason),
                () = tokio::time::sleep_until(idle_deadline) => Event::Idle,
                message = self.stream.next() => Event::Message(message),
            };
            match event {
                Event::Shutdown => {
                    self.outbox.shared.signal(CloseReason::GoingAway, true);
                    self.linger().await;
                    self.ended = Some(Ended::Clean);
                }
                Event::Closed(reason) => {
                    // Closed from elsewhere; a slow consumer is not reading, so don't wait
                    // for its reply.
                    if !matches!(
                        reason,
                        CloseReason::SlowConsumer | CloseReason::ConnectionLost
                    ) {
                        self.linger().await;
                    }
                    self.ended = Some(Ended::Closed(reason));
                }
                Event::Idle => self.violation(CloseReason::IdleTimeout).await,
                Event::Message(None) => self.lost(),
                Event::Message(Some(Err(err))) => match classify(&err) {
                    Some(reason) => self.violation(reason).await,
                    None => self.lost(),
                },
                Event::Message(Some(Ok(message))) => {
                    let now = Instant::now();
                    self.last_seen = now;
                    let metrics = &self.outbox.shared.metrics;
                    metrics.frames_in.inc();
                    if let Message::Close(_) = message {
                        // tungstenite has queued the echoing close frame; the writer flushes
                        // it when it stops.
                        self.outbox.shared.signal(CloseReason::Normal, false);
                        self.ended = Some(Ended::Clean);
                        continue;
                    }
                    if !self.bucket.take(now) {
                        self.violation(CloseReason::RateLimit).await;
                        continue;
                    }
                    match message {
                        Message::Binary(data) => {
                            metrics.bytes_in.add(data.len() as u64);
                            return Ok(Some(Vec::from(data)));
                        }
                        Message::Text(_) => self.violation(CloseReason::UnsupportedData).await,
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                        Message::Close(_) => {}
                    }
                }
            }
        }
    }

    /// Closes for a violation detected while reading: counts it, sends the close frame, waits
    /// briefly for the peer's reply, and remembers the reason.
    async fn violation(&mut self, reason: CloseReason) {
        let metrics = &self.outbox.shared.metrics;
        if reason.is_frame_rejection() {
            metrics.frames_rejected.inc(reason.label());
        }
        if self.outbox.shared.signal(reason, true) {
            info!(
                conn = self.id,
                code = reason.code(),
                reason = reason.label(),
                "closing"
            );
        }
        self.linger().await;
        self.ended = Some(Ended::Closed(self.outbox.shared.reason().unwrap_or(reason)));
    }

    /// The peer went away without a close handshake (or the stream ended after one).
    fn lost(&mut self) {
        let reason = match self.outbox.shared.reason() {
            // The stream ends normally after a completed close handshake.
            Some(CloseReason::Normal) => {
                self.ended = Some(Ended::Clean);
                return;
            }
            Some(reason) => reason,
            None => {
                self.outbox
                    .shared
                    .signal(CloseReason::ConnectionLost, false);
                debug!(conn = self.id, "connection lost");
                CloseReason::ConnectionLost
            }
        };
        self.ended = Some(Ended::Closed(reason));
    }

    /// After a close frame is on its way, reads (and drops) whatever the peer still sends
    /// until its close reply, an error, or [`CLOSE_LINGER`]. Closing the socket with unread
    /// data would make the kernel send a reset that can destroy the close frame in flight.
    async fn linger(&mut self) {
        let drain = async {
            while let Some(Ok(message)) = self.stream.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_LINGER, drain).await;
    }
}

impl Drop for Connection {
    /// Closes with 1000 *after* the frames already queued, so a session's last reply is not
    /// lost; if the queue is full, closes at once. The caller of the session bounds how long
    /// the writer may take (see `net::run_session`).
    fn drop(&mut self) {
        if self.outbox.shared.reason().is_none()
            && self
                .outbox
                .tx
                .try_send(Outbound::Close(CloseReason::Normal))
                .is_err()
        {
            self.outbox.shared.signal(CloseReason::Normal, false);
        }
    }
}

enum Event {
    Shutdown,
    Closed(CloseReason),
    Idle,
    Message(Option<std::result::Result<Message, WsError>>),
}

/// Maps a read error to the close it calls for, or `None` if the transport is simply gone.
fn classify(err: &WsError) -> Option<CloseReason> {
    match err {
        WsError::Capacity(_) => Some(CloseReason::TooBig),
        WsError::Utf8(_) => Some(CloseReason::UnsupportedData),
        WsError::WriteBufferFull(_) => Some(CloseReason::SlowConsumer),
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Io(_)
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        _ => Some(CloseReason::Protocol),
    }
}

/// Resolves with the close reason once one is set (or `Normal` if every sender is gone).
async fn wait_closed(rx: &mut watch::Receiver<Option<CloseReason>>) -> CloseReason {
    match rx.wait_for(Option::is_some).await {
        Ok(reason) => reason.unwrap_or(CloseReason::Normal),
        Err(_) => CloseReason::Normal,
    }
}

/// The writer task: sends queued frames and keepalive pings until a close, then sends the
/// close frame (bounded by [`CLOSE_LINGER`]) and stops.
async fn write_loop(
    mut sink: SplitSink<WsStream, Message>,
    mut rx: mpsc::Receiver<Outbound>,
    shared: Arc<Shared>,
    ping_interval: Duration,
) {
    let mut close_rx = shared.close.subscribe();
    let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let metrics = Arc::clone(&shared.metrics);

    let reason = loop {
        let step = tokio::select! {
            biased;
            reason = wait_closed(&mut close_rx) => Err(reason),
            // Before the queue, so that steady outbound traffic cannot starve keepalive
            // (a peer that only receives still has to answer pings to stay "not idle").
            _ = ping.tick() => Ok(None),
            next = rx.recv() => match next {
                // Every Outbox is gone, including the Connection's: the session is over.
                None => Err(CloseReason::Normal),
                Some(first) => Ok(Some(first)),
            },
        };
        let work = match step {
            Err(reason) => break reason,
            Ok(first) => first,
        };
        // Every write races the close signal: a peer that stops reading blocks the socket,
        // and a close must still end the task.
        let written = tokio::select! {
            biased;
            reason = wait_closed(&mut close_rx) => Err(reason),
            result = tokio::time::timeout(shared.stall_timeout, async {
                match work {
                    Some(first) => write_burst(&mut sink, &mut rx, first, &metrics).await,
                    None => sink.send(Message::Ping(Bytes::new())).await.map(|()| None),
                }
            }) => match result {
                Ok(Ok(None)) => Ok(()),
                Ok(Ok(Some(in_band_close))) => Err(in_band_close),
                Ok(Err(err)) => {
                    debug!(conn = shared.id, error = %err, "write failed");
                    Err(CloseReason::ConnectionLost)
                }
                // A socket write that cannot finish within the idle timeout: the peer stopped
                // reading. Close it rather than hold its buffers.
                Err(_) => {
                    metrics.queue_drops.inc();
                    Err(CloseReason::SlowConsumer)
                }
            },
        };
        if let Err(reason) = written {
            break reason;
        }
    };

    // The first reason wins; make sure the reader and every Outbox see one. A close queued
    // in-band by a session (not the 1000 that ends every session) counts as relay-initiated.
    shared.signal(
        reason,
        reason != CloseReason::Normal && reason != CloseReason::ConnectionLost,
    );
    let reason = shared.reason().unwrap_or(reason);
    if reason != CloseReason::ConnectionLost {
        let frame = CloseFrame {
            code: CloseCode::from(reason.code()),
            reason: reason.text().into(),
        };
        let farewell = async {
            // After the peer's close this fails (nothing more may be sent), and `close` then
            // just flushes tungstenite's queued reply.
            let _ = sink.send(Message::Close(Some(frame))).await;
            let _ = sink.close().await;
        };
        let _ = tokio::time::timeout(CLOSE_LINGER, farewell).await;
    }
    debug!(conn = shared.id, code = reason.code(), "writer stopped");
}

/// Writes `first` and whatever else is already queued (up to [`MAX_WRITE_BURST`]), then
/// flushes once. Returns an in-band close reason if one was reached.
async fn write_burst(
    sink: &mut SplitSink<WsStream, Message>,
    rx: &mut mpsc::Receiver<Outbound>,
    first: Outbound,
    metrics: &Metrics,
) -> std::result::Result<Option<CloseReason>, WsError> {
    let mut next = Some(first);
    let mut written = 0;
    while let Some(item) = next.take() {
        match item {
            Outbound::Binary(data) => {
                let len = data.len() as u64;
                sink.feed(Message::Binary(data)).await?;
                metrics.frames_out.inc();
                metrics.bytes_out.add(len);
            }
            Outbound::Close(reason) => {
                sink.flush().await?;
                return Ok(Some(reason));
            }
        }
        written += 1;
        if written < MAX_WRITE_BURST {
            next = rx.try_recv().ok();
        }
    }
    sink.flush().await?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn token_bucket_allows_burst_then_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 20, start);
        assert_eq!((0..25).filter(|_| bucket.take(start)).count(), 20, "burst");
        assert!(!bucket.take(start));
        let later = start + Duration::from_millis(500);
        assert_eq!(
            (0..25).filter(|_| bucket.take(later)).count(),
            5,
            "refill at 10/s"
        );
        let much_later = later + Duration::from_secs(100);
        assert_eq!(
            (0..50).filter(|_| bucket.take(much_later)).count(),
            20,
            "capped at burst"
        );
    }

    #[test]
    fn read_errors_map_to_close_codes() {
        use tokio_tungstenite::tungstenite::error::CapacityError;
        let too_big = WsError::Capacity(CapacityError::MessageTooLong {
            size: 2,
            max_size: 1,
        });
        assert_eq!(classify(&too_big), Some(CloseReason::TooBig));
        assert_eq!(
            classify(&WsError::Protocol(ProtocolError::UnmaskedFrameFromClient)),
            Some(CloseReason::Protocol)
        );
        assert_eq!(classify(&WsError::ConnectionClosed), None);
    }
}
