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
//!
//! Pushes other than conversation items go on [`PUSH_CHANNEL`]; a frame that does not fit a
//! payload is stored in table `forwarded_pushes` and travels by reference ([`store_push`]),
//! as a release request does. A batch that stored audit leaves also sends, in its
//! transaction, ONE notification of the log's new size on that channel ([`audit_payload`]),
//! so that every node tells the sessions watching the log (`audit_grew`).

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
/// agent key's sessions acting for an agent name, `<node>:c:<account key, hex>:<close code,
/// 4 hex digits><agent name, UTF-8, hex>` (a node of the previous version sent no name, and
/// reads a payload with one as one that does not parse). A frame too
/// large for a payload ([`push_payload`] answers `None`) is stored in table
/// `forwarded_pushes` and forwarded by reference: `<node>:p:<account key, hex>:<row id, 16 hex
/// digits>` ([`store_push`]); each node reads it there ([`stored_push`]). The audit log's
/// growth, to no account in particular: `<node>:a:<log size, 16 hex digits>`
/// ([`audit_payload`]).
pub const PUSH_CHANNEL: &str = "sealdesk_push";

/// How long a push forwarded by reference stays readable (seconds, the database's clock):
/// every node reads it in the wake-up round after its notification arrives, well within this;
/// a node further behind, or whose listener was away, has missed it as it would miss a lost
/// notification (its member sees the change at its next listing). Rows past it are pruned by
/// each node's periodic chores ([`prune_pushes`]), so the table holds at most this long's
/// large pushes.
pub const STORED_PUSH_TTL_SECS: f64 = 120.0;

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
    /// Another node pushed a frame to account `to` too large for a notification: it is row
    /// `id` of `forwarded_pushes`; read it there and push it to the account's connections
    /// here.
    StoredPush {
        /// The account's signing key bytes.
        to: Vec<u8>,
        /// The row holding the encoded push frame.
        id: i64,
    },
    /// Another node queued release request `id` for trustee `to`: push it to the trustee's
    /// connections here, read from the database.
    Release {
        /// The trustee's signing key bytes.
        to: Vec<u8>,
        /// The request id's bytes.
        id: Vec<u8>,
    },
    /// Another node asks every node to close account `to`'s sessions acting for agent name
    /// `name` with close `code` (a re-certified agent's old key, and the name re-certified).
    Close {
        /// The account's signing key bytes.
        to: Vec<u8>,
        /// The WebSocket close code.
        code: u16,
        /// The agent name the key was replaced for; `None` from a node of the previous
        /// version, whose payload names none.
        name: Option<String>,
    },
    /// Another node committed audit leaves: the log holds `size` entries at least. Read it
    /// again, then tell the sessions here that watch it.
    AuditGrew {
        /// The log's size once the batch committed (its highest leaf index, plus one).
        size: u64,
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

/// The start of the payload forwarding a stored push to `to`: the database appends the row's
/// id, as 16 hex digits, in the statement that stores the frame ([`store_push`]).
pub fn stored_push_prefix(node: u64, to: &[u8]) -> String {
    let mut out = format!("{node:016x}:p:");
    hex(to, &mut out);
    out.push(':');
    out
}

/// The payload forwarding release request `id` to trustee `to`.
pub fn release_payload(node: u64, to: &[u8], id: &[u8]) -> String {
    let mut out = format!("{node:016x}:r:");
    hex(to, &mut out);
    out.push(':');
    hex(id, &mut out);
    out
}

/// The payload asking the other nodes to close account `to`'s sessions acting for agent name
/// `name` with close `code`. An agent name is 64 bytes at most (`ids::check_name`): it always
/// fits.
pub fn close_payload(node: u64, to: &[u8], code: u16, name: &str) -> String {
    let mut out = format!("{node:016x}:c:");
    hex(to, &mut out);
    out.push(':');
    hex(&code.to_be_bytes(), &mut out);
    hex(name.as_bytes(), &mut out);
    out
}

/// The payload telling the other nodes that a batch of `node` stored audit leaves up to
/// `size` entries: sent in that batch's transaction (`sql::commit`), so it is delivered only
/// once they are committed, never for a batch that rolled back.
pub fn audit_payload(node: u64, size: u64) -> String {
    format!("{node:016x}:a:{size:016x}")
}

/// The sending node and the forwarded push of a [`PUSH_CHANNEL`] payload, if it is one.
pub fn parse_push(payload: &str) -> Option<(u64, Wake)> {
    let mut parts = payload.splitn(4, ':');
    let node = u64::from_str_radix(parts.next()?, 16).ok()?;
    let kind = parts.next()?;
    if kind == "a" {
        // Exactly 16 hex digits and nothing after them (`from_str_radix` takes a sign).
        let size = parts.next()?;
        if parts.next().is_some()
            || size.len() != 16
            || !size.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return None;
        }
        let size = u64::from_str_radix(size, 16).ok()?;
        return Some((node, Wake::AuditGrew { size }));
    }
    let to = unhex(parts.next()?)?;
    let rest = unhex(parts.next()?)?;
    let wake = match kind {
        "f" => Wake::Push { to, frame: rest },
        "p" => Wake::StoredPush {
            to,
            id: i64::from_be_bytes(<[u8; 8]>::try_from(rest.as_slice()).ok()?),
        },
        "r" => Wake::Release { to, id: rest },
        "c" => {
            let (code, name) = rest.split_first_chunk::<2>()?;
            Wake::Close {
                to,
                code: u16::from_be_bytes(*code),
                name: match name {
                    [] => None,
                    name => Some(String::from_utf8(name.to_vec()).ok()?),
                },
            }
        }
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
    pushes_stored: AtomicU64,
    stored_pushes_read: AtomicU64,
    stored_pushes_lost: AtomicU64,
    /// Times the wake-up listener issued `LISTEN` on a fresh connection.
    listens: AtomicU64,
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

    pub(super) fn note_push_stored(&self) {
        self.pushes_stored.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn note_stored_push_read(&self, found: bool) {
        if found {
            self.stored_pushes_read.fetch_add(1, Ordering::Relaxed);
        } else {
            self.note_stored_push_lost();
        }
    }

    pub(super) fn note_stored_push_lost(&self) {
        self.stored_pushes_lost.fetch_add(1, Ordering::Relaxed);
    }

    /// Pushes this node forwarded to the other nodes by reference (too large for a
    /// notification: stored in `forwarded_pushes`, the notification naming the row).
    pub fn pushes_stored(&self) -> u64 {
        self.pushes_stored.load(Ordering::Relaxed)
    }

    /// Pushes other nodes forwarded by reference that this node read (for an account
    /// connected here).
    pub fn stored_pushes_read(&self) -> u64 {
        self.stored_pushes_read.load(Ordering::Relaxed)
    }

    /// Pushes forwarded by reference that were lost: this node could not store one it
    /// forwarded, or found one it was told of no longer there (lapsed) or unreadable.
    pub fn stored_pushes_lost(&self) -> u64 {
        self.stored_pushes_lost.load(Ordering::Relaxed)
    }

    fn note_listening(&self) {
        self.listens.fetch_add(1, Ordering::Relaxed);
    }

    /// Times this node's wake-up listener (re)connected and issued `LISTEN`: at least 1 once a
    /// node with `cluster_wakeups` on is listening, one more per reconnect, and 0 for ever on a
    /// node with `cluster_wakeups = 0` (no listener), which is how a test or an operator tells
    /// the two apart.
    pub fn listens(&self) -> u64 {
        self.listens.load(Ordering::Relaxed)
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

/// Now, in Unix seconds, on the database's clock.
macro_rules! now {
    () => {
        "extract(epoch FROM clock_timestamp())::float8"
    };
}

/// Stores frame `$1` until `$2` seconds from now and, in the same statement (so the
/// notification is delivered only once the row is committed, and readable), notifies channel
/// `$3` with payload `$4` followed by the new row's id in 16 hex digits.
const STORE_PUSH: &str = concat!(
    "WITH stored AS (INSERT INTO forwarded_pushes (frame, expires_at) VALUES ($1, ",
    now!(),
    " + $2) RETURNING id) \
     SELECT pg_notify($3, $4 || lpad(to_hex(id), 16, '0')) FROM stored"
);

/// The frame of row `$1`, unless it lapsed.
const STORED_PUSH: &str = concat!(
    "SELECT frame FROM forwarded_pushes WHERE id = $1 AND expires_at > ",
    now!()
);

/// Drops the lapsed rows.
const PRUNE_PUSHES: &str = concat!("DELETE FROM forwarded_pushes WHERE expires_at <= ", now!());

/// Stores push `frame` for account `to` in `forwarded_pushes` for [`STORED_PUSH_TTL_SECS`] and
/// notifies the other nodes of it on [`PUSH_CHANNEL`] by reference (`<node>:p:<to>:<row id>`),
/// in one statement (one round trip; the notification goes out with the row's COMMIT).
///
/// # Errors
///
/// [`crate::Error::Storage`] if the database fails: then nothing was stored or sent.
pub(super) async fn store_push(
    pool: &deadpool_postgres::Pool,
    node: u64,
    to: &[u8],
    frame: &[u8],
) -> crate::error::Result<()> {
    let client = super::sql::client(pool, "store_push").await?;
    let prefix = stored_push_prefix(node, to);
    client
        .execute(
            STORE_PUSH,
            &[&frame, &STORED_PUSH_TTL_SECS, &PUSH_CHANNEL, &prefix],
        )
        .await
        .map(|_| ())
        .map_err(|e| super::db_err("store_push", &e))
}

/// The push frame stored in row `id` of `forwarded_pushes`; `None` if it lapsed (or never
/// was).
///
/// # Errors
///
/// [`crate::Error::Storage`] if the database fails.
pub(super) async fn stored_push(
    pool: &deadpool_postgres::Pool,
    id: i64,
) -> crate::error::Result<Option<Vec<u8>>> {
    let client = super::sql::client(pool, "stored_push").await?;
    let err = |e: tokio_postgres::Error| super::db_err("stored_push", &e);
    let stmt = client.prepare_cached(STORED_PUSH).await.map_err(err)?;
    let row = client.query_opt(&stmt, &[&id]).await.map_err(err)?;
    row.map(|r| r.try_get(0)).transpose().map_err(err)
}

/// Drops the stored pushes that lapsed; how many.
///
/// # Errors
///
/// [`crate::Error::Storage`] if the database fails.
pub(super) async fn prune_pushes(pool: &deadpool_postgres::Pool) -> crate::error::Result<u64> {
    let client = super::sql::client(pool, "prune_pushes").await?;
    client
        .execute(PRUNE_PUSHES, &[])
        .await
        .map_err(|e| super::db_err("prune_pushes", &e))
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
                        counts.note_listening();
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
    fn forwarded_pushes_round_trip_and_a_frame_too_large_is_not_inlined() {
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
        let s = format!("{}{:016x}", stored_push_prefix(10, &[8, 9]), 0x1234_i64);
        assert_eq!(
            parse_push(&s),
            Some((
                10,
                Wake::StoredPush {
                    to: vec![8, 9],
                    id: 0x1234
                }
            ))
        );
        let c = close_payload(9, &[6, 7], 4105, "alice");
        assert_eq!(
            parse_push(&c),
            Some((
                9,
                Wake::Close {
                    to: vec![6, 7],
                    code: 4105,
                    name: Some("alice".to_owned())
                }
            ))
        );
        // A previous version's close names no name.
        assert_eq!(
            parse_push("09:c:0607:1009"),
            Some((
                9,
                Wake::Close {
                    to: vec![6, 7],
                    code: 4105,
                    name: None
                }
            ))
        );
        // A name that is not UTF-8; a code cut short.
        assert_eq!(parse_push("09:c:0607:1009ff"), None);
        assert_eq!(parse_push("09:c:0607:10"), None);
        assert_eq!(
            parse_push(&audit_payload(11, 0x1_0000_0001)),
            Some((
                11,
                Wake::AuditGrew {
                    size: 0x1_0000_0001
                }
            ))
        );
        assert_eq!(parse_push("0b:a:+000000000000001"), None);
        assert_eq!(parse_push("0b:a:01"), None);
        assert_eq!(parse_push("0b:a:0000000000000001:00"), None);
        assert_eq!(parse_push("07:x:01:02"), None);
        assert_eq!(parse_push("07:f:0:02"), None);
        // A stored push's id is 8 bytes, no more, no less.
        assert_eq!(parse_push("07:p:01:1234"), None);
        assert_eq!(parse_push("07:p:01:000000000000001234"), None);
    }

    /// A frame as large as an `agent_key_changed` push naming its most conversations (256 ids
    /// of 17 CBOR bytes, a card): too large for a payload inline, forwarded by reference in a
    /// payload of fixed size whatever the frame's.
    #[test]
    fn a_frame_too_large_for_a_payload_goes_by_reference_under_the_limit() {
        let to = [0xabu8; 32];
        let frame = vec![0x5au8; 256 * 17 + 300];
        assert_eq!(push_payload(1, &to, &frame), None);
        let largest = vec![0x5au8; (MAX_PAYLOAD - 16 - 3 - 2 * 32 - 1) / 2];
        assert!(push_payload(1, &to, &largest).is_some_and(|p| p.len() <= MAX_PAYLOAD));
        assert_eq!(push_payload(1, &to, &[largest, vec![0]].concat()), None);
        // The database appends the row id (16 hex digits) to the prefix.
        let by_ref = format!("{}{:016x}", stored_push_prefix(u64::MAX, &to), i64::MAX);
        assert!(by_ref.len() <= MAX_PAYLOAD);
        assert_eq!(
            parse_push(&by_ref),
            Some((
                u64::MAX,
                Wake::StoredPush {
                    to: to.to_vec(),
                    id: i64::MAX
                }
            ))
        );
    }
}
