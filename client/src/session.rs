//! An authenticated session with the relay: requests correlated with responses by id, and
//! pushes delivered on a bounded channel.
//!
//! ```text
//!   Session::request ──Frame::Request{id}──▶ outbound (bounded) ──▶ ┐
//!                     ◀── oneshot ◀── pending[id] ◀── Response{id} ─┤ I/O task ◀──▶ WebSocket
//!   Session::next_push ◀── pushes (bounded, lossy) ◀── Push ────────┘
//! ```
//!
//! Pushes are notifications, not the record: everything they carry can be fetched again with
//! `History` from the conversation's cursor. So when the push channel is full the I/O task drops
//! the push (and counts it) rather than stall the socket, which would also stall every response.
//! [`Session::take_dropped_pushes`] tells the caller to resynchronise.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sealdesk_protocol::{
    card::IdentityCard,
    keys::{IdentityKeys, SigningPublicKey},
    wire::{AuthResponse, ErrorCode, Frame, Push, Request, Response, Welcome},
};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::connection::Connection;
use crate::error::{ClientError, Result};

/// How long the handshake may take, from connection to `Welcome`.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time a request may wait for its response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Most requests in flight at once: bounds the map of pending responses.
pub const MAX_IN_FLIGHT: usize = 64;
/// Frames that may wait to be written to the socket.
pub const OUTBOUND_QUEUE: usize = 64;
/// Pushes that may wait to be read by the application before new ones are dropped.
pub const PUSH_QUEUE: usize = 1024;

/// An authenticated connection to the relay.
#[derive(Debug)]
pub struct Session {
    outbound: mpsc::Sender<Frame>,
    shared: Arc<Shared>,
    pushes: tokio::sync::Mutex<mpsc::Receiver<Push>>,
    next_id: AtomicU64,
    in_flight: Semaphore,
    timeout: Duration,
    relay_key: SigningPublicKey,
    welcome: Welcome,
    url: String,
    task: JoinHandle<()>,
}

/// State shared with the I/O task.
#[derive(Debug, Default)]
struct Shared {
    /// Waiting requests. A std `Mutex`, not a tokio one: it is held only for a map operation and
    /// never across an `.await`. Bounded by [`MAX_IN_FLIGHT`] through `Session::in_flight`.
    /// A refused answer ([`ClientError::RefusedAnswer`]) comes to its waiter as the error.
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Response>>>>,
    /// Why the connection ended, once it has.
    closed: Mutex<Option<String>>,
    /// Pushes dropped because the application did not keep up.
    dropped_pushes: AtomicU64,
    /// Responses the relay sent on this connection (`Session::answers_received`).
    answers: AtomicU64,
    /// Pushes of a kind this code does not know, skipped (`Connection::unknown_pushes`).
    unknown_pushes: AtomicU64,
    /// The code of the relay's close frame, once the connection ended with one.
    close_code: Mutex<Option<u16>>,
}

impl Shared {
    /// Counts an answer the relay sent to request `id` and hands `result` to its waiter, if one
    /// still waits — counted before the waiter wakes, so a caller that has its answer sees it
    /// counted.
    fn answer(&self, id: u64, result: Result<Response>) {
        self.answers.fetch_add(1, Ordering::Relaxed);
        let waiter = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        if let Some(waiter) = waiter {
            let _ = waiter.send(result);
        }
    }

    fn closed_reason(&self) -> Option<String> {
        self.closed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Session {
    /// Runs the handshake on `conn` as the account `keys`/`card` and starts the session.
    ///
    /// # Errors
    /// [`ClientError::Timeout`], [`ClientError::Closed`], [`ClientError::Relay`] if the relay
    /// refused the authentication, or [`ClientError::UnexpectedResponse`].
    pub async fn establish(
        mut conn: Connection,
        keys: &IdentityKeys,
        card: &IdentityCard,
    ) -> Result<Self> {
        let timeout = |what| ClientError::Timeout {
            what,
            secs: HANDSHAKE_TIMEOUT.as_secs(),
        };
        let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.recv())
            .await
            .map_err(|_| timeout("the authentication challenge"))??;
        let challenge = match first {
            Some(Frame::Challenge(c)) => c,
            // Refused before the challenge (the address used up its failed authentications).
            Some(Frame::Response {
                body:
                    Response::Error {
                        code,
                        message,
                        retry_after,
                    },
                ..
            }) => return Err(relay_error(code, message, retry_after)),
            None => return Err(ClientError::Closed(Some("during the handshake".into()))),
            Some(_) => {
                return Err(ClientError::UnexpectedResponse(
                    "the first frame was not a challenge".into(),
                ));
            }
        };
        conn.send(&Frame::Auth(AuthResponse::answer(
            keys,
            card.clone(),
            &challenge,
        )))
        .await?;
        let answer = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.recv())
            .await
            .map_err(|_| timeout("the authentication"))??;
        let welcome = match answer {
            Some(Frame::Welcome(w)) => w,
            Some(Frame::Response {
                body:
                    Response::Error {
                        code,
                        message,
                        retry_after,
                    },
                ..
            }) => return Err(relay_error(code, message, retry_after)),
            None => return Err(ClientError::Closed(Some("during the handshake".into()))),
            Some(_) => {
                return Err(ClientError::UnexpectedResponse(
                    "the relay answered the authentication with neither Welcome nor an error"
                        .into(),
                ));
            }
        };
        let url = conn.url().to_owned();
        let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let (push_tx, push_rx) = mpsc::channel(PUSH_QUEUE);
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(io_task(conn, out_rx, push_tx, Arc::clone(&shared)));
        Ok(Self {
            outbound: out_tx,
            shared,
            pushes: tokio::sync::Mutex::new(push_rx),
            next_id: AtomicU64::new(1),
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
            timeout: REQUEST_TIMEOUT,
            relay_key: challenge.relay_key,
            welcome,
            url,
            task,
        })
    }

    /// The relay's identity key, from its challenge.
    pub fn relay_key(&self) -> SigningPublicKey {
        self.relay_key
    }

    /// The relay's welcome (registration state and audit-log key).
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The relay URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Changes the time each request may wait for its response.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends `body` and waits for its response. A [`Response::Error`] becomes
    /// [`ClientError::Relay`] (or [`ClientError::NotRegistered`]).
    ///
    /// # Errors
    /// [`ClientError::Timeout`], [`ClientError::Closed`], [`ClientError::Relay`].
    pub async fn request(&self, body: Request) -> Result<Response> {
        let secs = self.timeout.as_secs();
        let _permit = tokio::time::timeout(self.timeout, self.in_flight.acquire())
            .await
            .map_err(|_| ClientError::Timeout {
                what: "a free request slot",
                secs,
            })?
            .map_err(|_| ClientError::Closed(None))?;
        if let Some(reason) = self.shared.closed_reason() {
            return Err(ClientError::Closed(Some(reason)));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, tx);
        let sent = tokio::time::timeout(
            self.timeout,
            self.outbound.send(Frame::Request { id, body }),
        );
        let result = match sent.await {
            Err(_) => Err(ClientError::Timeout {
                what: "the request to be sent",
                secs,
            }),
            Ok(Err(_)) => Err(ClientError::Closed(self.shared.closed_reason())),
            Ok(Ok(())) => match tokio::time::timeout(self.timeout, rx).await {
                Err(_) => Err(ClientError::Timeout {
                    what: "a response",
                    secs,
                }),
                Ok(Err(_)) => Err(ClientError::Closed(self.shared.closed_reason())),
                Ok(Ok(Err(refused))) => Err(refused),
                Ok(Ok(Ok(Response::Error {
                    code,
                    message,
                    retry_after,
                }))) => Err(relay_error(code, message, retry_after)),
                Ok(Ok(Ok(response))) => Ok(response),
            },
        };
        if result.is_err() {
            // A late response for this id will find no waiter and be dropped.
            self.shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
        }
        result
    }

    /// How many requests this session has sent (after the handshake): what a test counts to
    /// check how many round trips an operation takes.
    pub fn requests_sent(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed).saturating_sub(1)
    }

    /// How many responses the relay has sent on this session (after the handshake), whether
    /// or not their request still waited for them: what proves the connection live. Unlike
    /// [`Session::requests_sent`], a request whose caller gave up on it before its answer came
    /// (a future dropped mid-way) does not count until the relay answers it.
    pub fn answers_received(&self) -> u64 {
        self.shared.answers.load(Ordering::Relaxed)
    }

    /// The next push, waiting for one; `None` once the connection is closed and every queued
    /// push has been read.
    pub async fn next_push(&self) -> Option<Push> {
        self.pushes.lock().await.recv().await
    }

    /// A queued push, if one is waiting now.
    pub fn try_push(&self) -> Option<Push> {
        self.pushes.try_lock().ok()?.try_recv().ok()
    }

    /// How many pushes were dropped since the last call because the queue was full; if
    /// non-zero, resynchronise every conversation from its cursor.
    pub fn take_dropped_pushes(&self) -> u64 {
        self.shared.dropped_pushes.swap(0, Ordering::Relaxed)
    }

    /// How many pushes of a kind this code does not know (a newer relay's) this session
    /// skipped (PROTOCOL.md §13.5 "Unknown pushes").
    pub fn unknown_pushes(&self) -> u64 {
        self.shared.unknown_pushes.load(Ordering::Relaxed)
    }

    /// The code of the close frame the relay ended the connection with (PROTOCOL.md §13.6),
    /// if it has ended with one: 4102, say, for a request an older relay does not know.
    pub fn close_code(&self) -> Option<u16> {
        *self
            .shared
            .close_code
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Why the connection ended, if it has.
    pub fn closed(&self) -> Option<String> {
        self.shared.closed_reason()
    }

    /// Closes the connection and waits (briefly) for the I/O task to finish.
    pub async fn close(self) {
        let Self { outbound, task, .. } = self;
        drop(outbound);
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
}

/// The client error for a relay's error response. `not_registered` has its own variant (the
/// CLI tells the user what to run); every other code stays [`ClientError::Relay`] with its
/// code, which callers match on: `counter_reused` and `epoch_full` make a sender rotate,
/// `stale_epoch` makes it follow the newer epoch, `already_answered` makes a trustee's resent
/// answer count as done (PROTOCOL.md §13.8). An older relay's `conflict` is treated like the
/// specific code the request implies.
fn relay_error(code: ErrorCode, message: String, retry_after: Option<u64>) -> ClientError {
    if code == ErrorCode::NotRegistered {
        ClientError::NotRegistered
    } else {
        ClientError::Relay {
            code,
            message,
            retry_after: retry_after.map(std::time::Duration::from_secs),
        }
    }
}

/// Owns the socket: writes queued frames, routes responses to their waiters and pushes to the
/// push queue. Ends when the socket closes or the session drops its sender.
async fn io_task(
    mut conn: Connection,
    mut outbound: mpsc::Receiver<Frame>,
    pushes: mpsc::Sender<Push>,
    shared: Arc<Shared>,
) {
    let reason = loop {
        tokio::select! {
            out = outbound.recv() => match out {
                Some(frame) => {
                    if let Err(e) = conn.send(&frame).await {
                        break e.to_string();
                    }
                }
                None => {
                    conn.close().await;
                    break "closed by this client".to_owned();
                }
            },
            incoming = conn.recv() => {
                // Counted before the frame is handed on: a caller that sees a later push or
                // response sees the unknown ones before it counted.
                shared.unknown_pushes.store(conn.unknown_pushes(), Ordering::Relaxed);
                match incoming {
                    Ok(Some(Frame::Response { id, body })) => shared.answer(id, Ok(body)),
                    // An answer refused for a fault of its own (a malformed audit entry): that
                    // request fails with it, and the connection goes on.
                    Err(ClientError::RefusedAnswer { id, error }) => {
                        shared.answer(id, Err(ClientError::Protocol(error)));
                    }
                    Ok(Some(Frame::Push(push))) => {
                        if pushes.try_send(push).is_err() {
                            shared.dropped_pushes.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(Some(_)) => break "the relay sent a frame not allowed after the handshake".into(),
                    Ok(None) => match conn.close_code() {
                        Some(code) => {
                            *shared.close_code.lock().unwrap_or_else(PoisonError::into_inner) =
                                Some(code);
                            break format!("the relay closed the connection (code {code})");
                        }
                        None => break "the relay closed the connection".into(),
                    },
                    Err(e) => break e.to_string(),
                }
            }
        }
    };
    *shared.closed.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
    // Dropping the waiters wakes every pending request with "closed".
    shared
        .pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
}
