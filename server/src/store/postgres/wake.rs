//! Wake-ups between the relay nodes of a cluster: PostgreSQL `LISTEN/NOTIFY` on one channel.
//!
//! The database is the truth; a wake-up only says where to look. A node that commits a batch
//! of log appends sends ONE notification in that transaction (delivered on COMMIT, never for a
//! batch that rolled back), whose payload names the sending node and the conversations the
//! batch appended to — several notifications if the names do not fit one payload (PostgreSQL
//! refuses 8000 bytes). Every node listens on a dedicated connection ([`listen`]) and reads the
//! named conversations from its cursor. A wake-up that is lost (a node's listener reconnecting,
//! the database restarting) only delays: the listener reports [`Wake::Reconnected`] on every
//! (re)connection and the relay also catches up periodically.
//!
//! Payload: `<node, 16 hex digits>:<conversation id, hex>@<first seq>[,…]`, the first sequence
//! number the batch appended to that conversation, in decimal.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;
use tracing::{debug, warn};

/// The one channel every node of a cluster notifies and listens on.
pub const WAKE_CHANNEL: &str = "sealdesk_wake";

/// The channel pushes other than conversation items go through to the members connected to
/// other nodes (an assignment, a delivery mark, a release request or update, a ticket, a
/// typing signal). Payload: `<node>:f:<account key, hex>:<encoded frame, hex>`, or for a
/// release request, which with its epoch records may not fit, `<node>:r:<trustee key,
/// hex>:<request id, hex>` (each node reads the request from the database), or to close an
/// account's sessions, `<node>:c:<account key, hex>:<close code, 4 hex digits>`.
pub const PUSH_CHANNEL: &str = "sealdesk_push";

/// Most bytes of one payload (PostgreSQL's limit is 8000).
pub const MAX_PAYLOAD: usize = 7900;

/// Conversations (their id bytes) with the first sequence number a batch appended to each.
pub type Touched = Vec<(Vec<u8>, u64)>;

/// What the listener reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// Another node committed items in these conversations (their id bytes), from these
    /// sequence numbers on.
    Conversations(Touched),
    /// The listener (re)connected: wake-ups may have been missed, read every cursor.
    Reconnected,
    /// Another node pushed this encoded frame to this account (its signing key bytes): push it
    /// to the account's connections here too.
    Push {
        /// The account's signing key bytes.
        to: Vec<u8>,
        /// The encoded push frame.
        frame: Vec<u8>,
    },
    /// Another node queued release request `id` for trustee `to`: push it to the trustee's
    /// connections here, read from the database.
    Release {
        /// The trustee's signing key bytes.
        to: Vec<u8>,
        /// The request id's bytes.
        id: Vec<u8>,
    },
    /// Another node asks every node to close account `to`'s sessions with close `code` (a
    /// re-certified agent's old key).
    Close {
        /// The account's signing key bytes.
        to: Vec<u8>,
        /// The WebSocket close code.
        code: u16,
    },
}

/// The payload forwarding a push frame to `to`, or `None` if it does not fit a notification.
pub fn push_payload(node: u64, to: &[u8], frame: &[u8]) -> Option<String> {
    let mut out = format!("{node:016x}:f:");
    if out.len() + 2 * (to.len() + frame.len()) + 1 > MAX_PAYLOAD {
        return None;
    }
    hex(to, &mut out);
    out.push(':');
    hex(frame, &mut out);
    Some(out)
}

/// The payload forwarding release request `id` to trustee `to`.
pub fn release_payload(node: u64, to: &[u8], id: &[u8]) -> String {
    let mut out = format!("{node:016x}:r:");
    hex(to, &mut out);
    out.push(':');
    hex(id, &mut out);
    out
}

/// The payload asking the other nodes to close account `to`'s sessions with close `code`.
pub fn close_payload(node: u64, to: &[u8], code: u16) -> String {
    let mut out = format!("{node:016x}:c:");
    hex(to, &mut out);
    out.push(':');
    hex(&code.to_be_bytes(), &mut out);
    out
}

/// The sending node and the forwarded push of a [`PUSH_CHANNEL`] payload, if it is one.
pub fn parse_push(payload: &str) -> Option<(u64, Wake)> {
    let mut parts = payload.splitn(4, ':');
    let node = u64::from_str_radix(parts.next()?, 16).ok()?;
    let kind = parts.next()?;
    let to = unhex(parts.next()?)?;
    let rest = unhex(parts.next()?)?;
    let wake = match kind {
        "f" => Wake::Push { to, frame: rest },
        "r" => Wake::Release { to, id: rest },
        "c" => Wake::Close {
            to,
            code: u16::from_be_bytes(<[u8; 2]>::try_from(rest.as_slice()).ok()?),
        },
        _ => return None,
    };
    Some((node, wake))
}

/// What the engine and the listener counted, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counts {
    sent: AtomicU64,
    received: AtomicU64,
    refused: AtomicU64,
    inserts_lost: AtomicU64,
    /// The last commit or wake-up connection found the database out of reach.
    unreachable: AtomicBool,
}

impl Counts {
    pub(super) fn note_sent(&self, n: usize) {
        self.sent
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(super) fn note_refused(&self, n: usize) {
        self.refused
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(super) fn note_insert_lost(&self) {
        self.inserts_lost.fetch_add(1, Ordering::Relaxed);
    }

    /// Conditional inserts another node made first: their writers were answered `false`
    /// (the rest of their batches unaffected).
    pub fn inserts_lost(&self) -> u64 {
        self.inserts_lost.load(Ordering::Relaxed)
    }

    /// Records whether the database answered (a commit, the wake-up connection).
    pub(super) fn note_reachable(&self, reachable: bool) {
        self.unreachable.store(!reachable, Ordering::Relaxed);
    }

    /// Whether the database answered the last commit or the wake-up connection's last try
    /// (`/healthz` reports the node unhealthy otherwise).
    pub fn reachable(&self) -> bool {
        !self.unreachable.load(Ordering::Relaxed)
    }

    fn note_received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// Wake-up notifications this node sent (one per committed batch with log appends, more
    /// if its conversations did not fit one payload).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Wake-up notifications from other nodes this node received (as they arrived; not the
    /// forwarded pushes of `PUSH_CHANNEL`).
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Log appends the database refused because another node took the number or counter
    /// (each one appended again by its writer).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// The distinct conversations of `appends`, sorted, each with its lowest sequence number.
pub(super) fn touched<'a>(appends: impl Iterator<Item = (&'a [u8], u64)>) -> Vec<(&'a [u8], u64)> {
    let mut v: Vec<(&[u8], u64)> = appends.collect();
    v.sort_unstable();
    v.dedup_by_key(|(c, _)| *c);
    v
}

fn hex(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The payloads naming `conversations` from `node`, each under [`MAX_PAYLOAD`] bytes; none for
/// none.
pub fn payloads(node: u64, conversations: &[(&[u8], u64)]) -> Vec<String> {
    let head = format!("{node:016x}:");
    let mut out = Vec::new();
    let mut cur = head.clone();
    for (c, seq) in conversations {
        let seq = seq.to_string();
        if cur.len() > head.len() && cur.len() + 2 + 2 * c.len() + seq.len() > MAX_PAYLOAD {
            out.push(std::mem::replace(&mut cur, head.clone()));
        }
        if cur.len() > head.len() {
            cur.push(',');
        }
        hex(c, &mut cur);
        cur.push('@');
        cur.push_str(&seq);
    }
    if cur.len() > head.len() {
        out.push(cur);
    }
    out
}

/// The sending node and the conversations of a payload, if it is one.
pub fn parse(payload: &str) -> Option<(u64, Touched)> {
    let (node, list) = payload.split_once(':')?;
    let node = u64::from_str_radix(node, 16).ok()?;
    let convs = list
        .split(',')
        .map(|e| {
            let (c, seq) = e.split_once('@')?;
            Some((unhex(c)?, seq.parse().ok()?))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((node, convs))
}

/// Listens for other nodes' wake-ups on a dedicated connection to `url` and reports them (and
/// every (re)connection) on `tx`, each with the instant it arrived (the node measures how long
/// a wake-up waits before it is handled), until `tx` is closed. Reconnects every `retry` while the
/// database is out of reach. Wake-ups from `node` itself are skipped.
pub async fn listen(
    url: String,
    node: u64,
    counts: std::sync::Arc<Counts>,
    tx: mpsc::Sender<(Instant, Wake)>,
    retry: Duration,
) {
    loop {
        match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Ok((client, mut connection)) => {
                // Notifications are parsed and counted as they arrive, and queued without a
                // bound: the connection is never left unread while the node catches up (a
                // backlog waits in this queue, not in the database's, and is counted).
                let (ntx, mut nrx) = mpsc::unbounded_channel::<(Instant, Wake)>();
                let arrived = std::sync::Arc::clone(&counts);
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(m) = messages.next().await {
                        match m {
                            Ok(AsyncMessage::Notification(n)) => {
                                let at = Instant::now();
                                let parsed = if n.channel() == PUSH_CHANNEL {
                                    parse_push(n.payload())
                                } else {
                                    parse(n.payload())
                                        .map(|(from, convs)| (from, Wake::Conversations(convs)))
                                };
                                let Some((from, wake)) = parsed else {
                                    warn!("a wake-up that does not parse; ignored");
                                    continue;
                                };
                                if from == node {
                                    continue;
                                }
                                // Wake-ups only: forwarded pushes are not counted as sent.
                                if matches!(wake, Wake::Conversations(_)) {
                                    arrived.note_received();
                                }
                                if ntx.send((at, wake)).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                warn!(error = %e, "the wake-up connection failed");
                                break;
                            }
                        }
                    }
                });
                match client
                    .batch_execute(&format!("LISTEN {WAKE_CHANNEL}; LISTEN {PUSH_CHANNEL}"))
                    .await
                {
                    Ok(()) => {
                        debug!("listening for wake-ups");
                        counts.note_reachable(true);
                        if tx.send((Instant::now(), Wake::Reconnected)).await.is_err() {
                            driver.abort();
                            return;
                        }
                        while let Some(wake) = nrx.recv().await {
                            if tx.send(wake).await.is_err() {
                                driver.abort();
                                return;
                            }
                        }
                    }
                    Err(e) => warn!(error = %e, "cannot listen for wake-ups"),
                }
                // The connection ended: the database is out of reach until it answers again.
                counts.note_reachable(false);
                driver.abort();
                drop(client);
            }
            Err(e) => {
                counts.note_reachable(false);
                warn!(error = %e, "cannot connect for wake-ups");
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(retry).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn payloads_round_trip_and_split_under_the_limit() {
        let ids: Vec<(Vec<u8>, u64)> = (0..600u16)
            .map(|i| {
                let mut id = vec![0u8; 16];
                id[..2].copy_from_slice(&i.to_be_bytes());
                (id, u64::from(i) * 1_000_003)
            })
            .collect();
        let refs: Vec<(&[u8], u64)> = ids.iter().map(|(c, s)| (c.as_slice(), *s)).collect();
        let out = payloads(0xabc, &refs);
        assert!(out.len() > 1, "600 ids do not fit one payload");
        let mut back = Vec::new();
        for p in &out {
            assert!(p.len() <= MAX_PAYLOAD);
            let (node, convs) = parse(p).unwrap();
            assert_eq!(node, 0xabc);
            back.extend(convs);
        }
        assert_eq!(back, ids);
        assert!(payloads(1, &[]).is_empty());
        assert_eq!(parse("zz:00@1"), None);
        assert_eq!(parse("01:0@1"), None);
        assert_eq!(parse("01:00"), None);
    }

    #[test]
    fn forwarded_pushes_round_trip_and_a_frame_too_large_is_not_sent() {
        let p = push_payload(7, &[1, 2], &[0xff, 0]).unwrap();
        assert_eq!(
            parse_push(&p),
            Some((
                7,
                Wake::Push {
                    to: vec![1, 2],
                    frame: vec![0xff, 0]
                }
            ))
        );
        let r = release_payload(8, &[3], &[4, 5]);
        assert_eq!(
            parse_push(&r),
            Some((
                8,
                Wake::Release {
                    to: vec![3],
                    id: vec![4, 5]
                }
            ))
        );
        assert_eq!(push_payload(7, &[1; 32], &[0; MAX_PAYLOAD / 2]), None);
        let c = close_payload(9, &[6, 7], 4105);
        assert_eq!(
            parse_push(&c),
            Some((
                9,
                Wake::Close {
                    to: vec![6, 7],
                    code: 4105
                }
            ))
        );
        assert_eq!(parse_push("07:c:01:0102ff"), None);
        assert_eq!(parse_push("07:x:01:02"), None);
        assert_eq!(parse_push("07:f:0:02"), None);
    }
}
