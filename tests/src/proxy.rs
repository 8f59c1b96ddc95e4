//! An intercepting WebSocket proxy that plays a hostile relay, under the test's control.
//!
//! ```text
//!   real client ──ws──▶ Proxy (127.0.0.1:0) ──ws──▶ real relay (sealdesk_server::spawn)
//!                         │ each binary message: wire::decode
//!                         │ hook(&Ctx, frame) → the frames to send on, in order
//!                         │   (none = drop, two = duplicate, stash now + emit later = delay or
//!                         │    reorder, a stashed copy emitted again = replay, edited = tamper)
//!                         │ wire::encode, then on to the other side
//! ```
//!
//! The proxy is a relay that the attacker fully controls: it sees every frame in both
//! directions, knows which account authenticated on each connection (from its `Auth` frame) and
//! which request each response answers, and can push frames of its own to a live connection
//! with [`Proxy::inject`]. Undecodable messages are passed through untouched.
//!
//! [`LogForger`] adds what a relay operator holds and a network attacker does not: the audit-log
//! key. It replaces the log key announced in `Welcome` with its own (the client pins it on first
//! contact, as it would pin a real relay's), re-signs every tree head, and can serve a rewritten
//! log (rolled back, truncated, forked or extended) with matching proofs.
//!
//! Everything is loopback-only and ends when the [`Proxy`] is dropped.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use futures_util::{SinkExt as _, StreamExt as _};
use sealdesk_protocol::{
    audit::{AuditEntry, ConsistencyProof, InclusionProof, SignedTreeHead, to_wire_path},
    keys::{IdentityKeys, SigningPublicKey},
    merkle,
    wire::{self, ErrorCode, Frame, Push, Request, Response, Sequenced},
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::JoinHandle,
};
use tokio_tungstenite::tungstenite::Message;

/// Numbers the proxied connections, from 1, in accept order.
pub type ConnId = u64;

/// Which way a frame travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// From the client to the relay.
    ToRelay,
    /// From the relay to the client.
    ToClient,
}

/// What the hook knows about a frame besides the frame itself.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The connection.
    pub conn: ConnId,
    /// The direction.
    pub dir: Dir,
    /// The account that authenticated on this connection (its card's name), once it has.
    pub account: Option<&'a str>,
    /// For a [`Frame::Response`]: the request it answers, as the client sent it.
    pub request: Option<&'a Request>,
}

/// The test's control over the traffic: called for every decoded frame, returns the frames to
/// send on in the same direction.
pub type Hook = Box<dyn FnMut(&Ctx<'_>, Frame) -> Vec<Frame> + Send>;

/// A frame as the proxy passed it on (after the hook), for assertions.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The connection.
    pub conn: ConnId,
    /// The direction.
    pub dir: Dir,
    /// The authenticated account, if known.
    pub account: Option<String>,
    /// The frame sent on.
    pub frame: Frame,
}

struct Live {
    account: Option<String>,
    inject: mpsc::UnboundedSender<(Dir, Frame)>,
}

/// Rewrites the encoded bytes of a frame going to a client (after the hook), for what no
/// [`Frame`] can hold: a malformed entry in a listing.
type RawHook = Box<dyn FnMut(&Frame, Vec<u8>) -> Vec<u8> + Send>;

struct Shared {
    upstream: String,
    hook: Mutex<Hook>,
    raw_to_client: Mutex<Option<RawHook>>,
    seen: Mutex<Vec<Seen>>,
    live: Mutex<HashMap<ConnId, Live>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    next: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running intercepting proxy in front of one relay.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `upstream` (a `ws://` URL),
    /// passing frames through unchanged until [`Proxy::set_hook`] is called.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy binds a loopback port");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream: upstream.to_owned(),
            hook: Mutex::new(Box::new(|_: &Ctx<'_>, f: Frame| vec![f])),
            raw_to_client: Mutex::new(None),
            seen: Mutex::new(Vec::new()),
            live: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            next: AtomicU64::new(1),
        });
        let s = Arc::clone(&shared);
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let id = s.next.fetch_add(1, Ordering::Relaxed);
                let task = tokio::spawn(serve(Arc::clone(&s), id, tcp));
                let mut tasks = lock(&s.tasks);
                tasks.retain(|t| !t.is_finished());
                tasks.push(task);
            }
        });
        Self {
            addr,
            shared,
            accept,
        }
    }

    /// The URL clients connect to instead of the relay's.
    pub fn url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// Replaces the hook (for every connection, from the next frame on).
    pub fn set_hook(&self, hook: impl FnMut(&Ctx<'_>, Frame) -> Vec<Frame> + Send + 'static) {
        *lock(&self.shared.hook) = Box::new(hook);
    }

    /// Has every frame going to a client, once the hook made it and it is encoded, rewritten
    /// as bytes by `raw` (the frame, its encoding → what is sent): for frames no [`Frame`]
    /// can hold, such as a listing with a malformed audit entry. [`Self::seen`] records the
    /// frame before this.
    pub fn set_raw_to_client(&self, raw: impl FnMut(&Frame, Vec<u8>) -> Vec<u8> + Send + 'static) {
        *lock(&self.shared.raw_to_client) = Some(Box::new(raw));
    }

    /// Goes back to passing every frame through unchanged.
    pub fn passthrough(&self) {
        self.set_hook(|_, f| vec![f]);
    }

    /// Every frame passed on so far (after the hook), in order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    /// Frames `account` sent towards the relay (after the hook), in order.
    pub fn sent_by(&self, account: &str) -> Vec<Frame> {
        lock(&self.shared.seen)
            .iter()
            .filter(|s| s.dir == Dir::ToRelay && s.account.as_deref() == Some(account))
            .map(|s| s.frame.clone())
            .collect()
    }

    /// How many requests `account` sent towards the relay (after the hook) that `pick` holds
    /// for: what the hostile tests count to show a client sent (or never sent) something.
    pub fn requests_sent(&self, account: &str, mut pick: impl FnMut(&Request) -> bool) -> usize {
        self.sent_by(account)
            .iter()
            .filter(|f| matches!(f, Frame::Request { body, .. } if pick(body)))
            .count()
    }

    /// The `after` of every `History` request `account` sent, in order.
    pub fn history_afters(&self, account: &str) -> Vec<u64> {
        self.sent_by(account)
            .iter()
            .filter_map(|f| match f {
                Frame::Request {
                    body: Request::History { after, .. },
                    ..
                } => Some(*after),
                _ => None,
            })
            .collect()
    }

    /// The live connections on which `account` authenticated.
    pub fn connections(&self, account: &str) -> Vec<ConnId> {
        let mut ids: Vec<ConnId> = lock(&self.shared.live)
            .iter()
            .filter(|(_, l)| l.account.as_deref() == Some(account))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Sends `frame` on connection `conn` in direction `dir`, as if the other side had sent it
    /// (the hook is not applied). Returns whether the connection was still live.
    pub fn inject(&self, conn: ConnId, dir: Dir, frame: Frame) -> bool {
        lock(&self.shared.live)
            .get(&conn)
            .is_some_and(|l| l.inject.send((dir, frame)).is_ok())
    }

    /// A handle that injects frames like [`Proxy::inject`], usable from inside a hook (for
    /// example to answer a request the hook dropped, as the relay would).
    pub fn injector(&self) -> Injector {
        Injector(Arc::clone(&self.shared))
    }

    /// Sends `frame` to every live connection of `account`, as if from the relay. Returns how
    /// many connections it went to.
    pub fn inject_to_client(&self, account: &str, frame: &Frame) -> usize {
        self.connections(account)
            .into_iter()
            .filter(|c| self.inject(*c, Dir::ToClient, frame.clone()))
            .count()
    }
}

/// Injects frames into live connections of a [`Proxy`] (see [`Proxy::injector`]).
#[derive(Clone)]
pub struct Injector(Arc<Shared>);

impl std::fmt::Debug for Injector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injector").finish_non_exhaustive()
    }
}

impl Injector {
    /// Sends `frame` on connection `conn` in direction `dir` (the hook is not applied).
    /// Returns whether the connection was still live.
    pub fn inject(&self, conn: ConnId, dir: Dir, frame: Frame) -> bool {
        lock(&self.0.live)
            .get(&conn)
            .is_some_and(|l| l.inject.send((dir, frame)).is_ok())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for t in lock(&self.shared.tasks).drain(..) {
            t.abort();
        }
    }
}

/// Per-connection state: who authenticated, and which requests wait for a response.
struct Conn {
    id: ConnId,
    account: Option<String>,
    pending: HashMap<u64, Request>,
}

impl Conn {
    /// Decodes, runs the hook, records, re-encodes.
    fn process(&mut self, shared: &Shared, dir: Dir, bytes: &[u8]) -> Vec<Message> {
        let frame = match wire::decode(bytes) {
            Ok(f) => f,
            Err(_) => return vec![Message::binary(bytes.to_vec())],
        };
        if let (Dir::ToRelay, Frame::Auth(a)) = (dir, &frame) {
            self.account = Some(a.card.name.clone());
            if let Some(l) = lock(&shared.live).get_mut(&self.id) {
                l.account = self.account.clone();
            }
        }
        let request = match (dir, &frame) {
            (Dir::ToRelay, Frame::Request { id, body }) => {
                self.pending.insert(*id, body.clone());
                None
            }
            (Dir::ToClient, Frame::Response { id, .. }) => self.pending.remove(id),
            _ => None,
        };
        let ctx = Ctx {
            conn: self.id,
            dir,
            account: self.account.as_deref(),
            request: request.as_ref(),
        };
        let out = {
            let mut hook = lock(&shared.hook);
            (*hook)(&ctx, frame)
        };
        self.emit(shared, dir, out)
    }

    fn emit(&self, shared: &Shared, dir: Dir, frames: Vec<Frame>) -> Vec<Message> {
        let mut seen = lock(&shared.seen);
        let mut raw = lock(&shared.raw_to_client);
        frames
            .into_iter()
            .filter_map(|frame| {
                let mut bytes = wire::encode(&frame).ok()?;
                if let (Dir::ToClient, Some(raw)) = (dir, raw.as_mut()) {
                    bytes = raw(&frame, bytes);
                }
                seen.push(Seen {
                    conn: self.id,
                    dir,
                    account: self.account.clone(),
                    frame,
                });
                Some(Message::binary(bytes))
            })
            .collect()
    }
}

async fn serve(shared: Arc<Shared>, id: ConnId, tcp: TcpStream) {
    let Ok(mut client) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    let mut relay = match tokio_tungstenite::connect_async(shared.upstream.as_str()).await {
        Ok((ws, _)) => ws,
        Err(_) => {
            let _ = client.close(None).await;
            return;
        }
    };
    let (tx, mut injected) = mpsc::unbounded_channel();
    lock(&shared.live).insert(
        id,
        Live {
            account: None,
            inject: tx,
        },
    );
    let mut conn = Conn {
        id,
        account: None,
        pending: HashMap::new(),
    };
    'conn: loop {
        tokio::select! {
            m = client.next() => match m {
                Some(Ok(Message::Binary(b))) => {
                    for out in conn.process(&shared, Dir::ToRelay, &b) {
                        if relay.send(out).await.is_err() {
                            break 'conn;
                        }
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    if relay.send(Message::Text(t)).await.is_err() {
                        break 'conn;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break 'conn,
            },
            m = relay.next() => match m {
                Some(Ok(Message::Binary(b))) => {
                    for out in conn.process(&shared, Dir::ToClient, &b) {
                        if client.send(out).await.is_err() {
                            break 'conn;
                        }
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    if client.send(Message::Text(t)).await.is_err() {
                        break 'conn;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break 'conn,
            },
            Some((dir, frame)) = injected.recv() => {
                for m in conn.emit(&shared, dir, vec![frame]) {
                    let sent = match dir {
                        Dir::ToClient => client.send(m).await,
                        Dir::ToRelay => relay.send(m).await,
                    };
                    if sent.is_err() {
                        break 'conn;
                    }
                }
            }
        }
    }
    lock(&shared.live).remove(&id);
    let _ = client.close(None).await;
    let _ = relay.close(None).await;
}

// ---- frame helpers ---------------------------------------------------------------------------

/// The conversation items a frame carries (a page of `History`, or a pushed item), mutably.
pub fn items_mut(frame: &mut Frame) -> Vec<&mut Sequenced> {
    match frame {
        Frame::Response {
            body: Response::Items { items, .. },
            ..
        } => items.iter_mut().collect(),
        Frame::Push(Push::Item(s)) => vec![s],
        _ => Vec::new(),
    }
}

/// Whether the frame is a pushed conversation item.
pub fn is_item_push(frame: &Frame) -> bool {
    matches!(frame, Frame::Push(Push::Item(_)))
}

/// Applies `edit` to every conversation item the frame carries, and returns the frame.
pub fn edit_items(mut frame: Frame, mut edit: impl FnMut(&mut Sequenced)) -> Frame {
    for s in items_mut(&mut frame) {
        edit(s);
    }
    frame
}

// ---- the audit log, as the relay operator can serve it --------------------------------------

/// What a [`LogForger`] serves.
#[derive(Clone, Debug)]
enum LogView {
    /// The relay's log, with every tree head re-signed by the forger's key.
    Mirror,
    /// These entries, whatever the relay holds.
    Entries(Vec<AuditEntry>),
}

/// The relay operator's power over the audit log: its own log key, and any log it likes.
///
/// Use [`LogForger::rewrite`] inside a proxy hook. From the first `Welcome` on, clients behind
/// the proxy see (and pin) [`LogForger::log_key`]; tree heads are re-signed with it, so the
/// honest log still verifies ([`LogForger::mirror`]). [`LogForger::serve`] then answers every
/// log request (`GetTreeHead`, `GetWitnessedHead` — the witnesses' real cosignatures with the
/// forged head —, `GetEntries`, `GetInclusion`, `GetConsistency`, `AppendAudit`)
/// from a list of entries the test chose, with correct proofs and a valid signature.
pub struct LogForger {
    keys: IdentityKeys,
    view: Mutex<LogView>,
}

impl std::fmt::Debug for LogForger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogForger")
            .field("log_key", &self.log_key())
            .finish_non_exhaustive()
    }
}

impl LogForger {
    /// A forger with a log key from `ChaCha20(seed)`, mirroring the relay's log.
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            keys: IdentityKeys::generate(&mut crate::rng(seed)),
            view: Mutex::new(LogView::Mirror),
        })
    }

    /// A forger holding the relay's own log key (read from its data directory, as its operator
    /// can), mirroring the relay's log: heads it signs are indistinguishable from the relay's.
    pub fn with_keys(keys: IdentityKeys) -> Arc<Self> {
        Arc::new(Self {
            keys,
            view: Mutex::new(LogView::Mirror),
        })
    }

    /// The log key clients behind the proxy see.
    pub fn log_key(&self) -> SigningPublicKey {
        self.keys.signing_public()
    }

    /// The forger's keys (to sign entries "as the relay").
    pub fn keys(&self) -> &IdentityKeys {
        &self.keys
    }

    /// Serves the relay's own log (heads re-signed).
    pub fn mirror(&self) {
        *lock(&self.view) = LogView::Mirror;
    }

    /// Serves exactly `entries` as the log.
    pub fn serve(&self, entries: Vec<AuditEntry>) {
        *lock(&self.view) = LogView::Entries(entries);
    }

    /// A tree head over `entries`, signed by the forger.
    pub fn head_of(&self, entries: &[AuditEntry]) -> SignedTreeHead {
        let leaves: Vec<merkle::Hash> = entries.iter().map(AuditEntry::leaf_hash).collect();
        SignedTreeHead::sign(
            &self.keys,
            entries.len() as u64,
            merkle::root(&leaves),
            crate::now(),
        )
    }

    fn resign(&self, h: &SignedTreeHead) -> SignedTreeHead {
        SignedTreeHead::sign(&self.keys, h.size, h.root, h.timestamp)
    }

    /// Rewrites a relay → client frame: the log key in `Welcome`, and every log answer.
    pub fn rewrite(&self, ctx: &Ctx<'_>, frame: Frame) -> Frame {
        if ctx.dir != Dir::ToClient {
            return frame;
        }
        match frame {
            Frame::Welcome(mut w) => {
                w.log_key = self.log_key();
                Frame::Welcome(w)
            }
            Frame::Response { id, body } => Frame::Response {
                id,
                body: self.answer(ctx.request, body),
            },
            other => other,
        }
    }

    fn answer(&self, request: Option<&Request>, body: Response) -> Response {
        let mut view = lock(&self.view);
        let entries = match &mut *view {
            LogView::Mirror => {
                return match body {
                    Response::TreeHead(h) => Response::TreeHead(self.resign(&h)),
                    Response::Appended { index, head } => Response::Appended {
                        index,
                        head: self.resign(&head),
                    },
                    Response::WitnessedHead(mut w) => {
                        w.head = self.resign(&w.head);
                        Response::WitnessedHead(w)
                    }
                    other => other,
                };
            }
            LogView::Entries(e) => e,
        };
        let leaves: Vec<merkle::Hash> = entries.iter().map(AuditEntry::leaf_hash).collect();
        let len = leaves.len() as u64;
        let refuse = |m: &str| Response::error(ErrorCode::BadRequest, m);
        match (request, body) {
            (Some(Request::GetTreeHead), _) => Response::TreeHead(self.head_of(entries)),
            // The witnesses' real cosignatures, with the forged head.
            (Some(Request::GetWitnessedHead { .. }), Response::WitnessedHead(mut w)) => {
                w.head = self.head_of(entries);
                Response::WitnessedHead(w)
            }
            (Some(Request::GetEntries { from, limit }), _) => {
                let start = (*from).min(len) as usize;
                let end = from.saturating_add(u64::from(*limit)).min(len) as usize;
                Response::Entries {
                    from: *from,
                    entries: entries[start..end].to_vec(),
                    withheld: Vec::new(),
                }
            }
            (Some(Request::GetInclusion { index, size }), _) => {
                if *size > len || index >= size {
                    return refuse("index or size beyond the log");
                }
                match merkle::inclusion_proof(&leaves[..*size as usize], *index) {
                    Ok(path) => Response::Inclusion(InclusionProof {
                        index: *index,
                        size: *size,
                        path: to_wire_path(path),
                    }),
                    Err(e) => refuse(&e.to_string()),
                }
            }
            (Some(Request::GetConsistency { old, new }), _) => {
                if *new > len || old > new {
                    return refuse("sizes beyond the log");
                }
                match merkle::consistency_proof(&leaves[..*new as usize], *old) {
                    Ok(path) => Response::Consistency(ConsistencyProof {
                        old: *old,
                        new: *new,
                        path: to_wire_path(path),
                    }),
                    Err(e) => refuse(&e.to_string()),
                }
            }
            // A witness cosigning the forged log: the real relay refuses a cosignature for a
            // log key it does not hold; the forger, playing the relay, takes it.
            (Some(Request::Cosign(_)), _) => Response::Ok,
            // Also when the test kept the append from the relay (sent it on as `GetTreeHead`):
            // the entry is then in this view only.
            (
                Some(Request::AppendAudit(entry)),
                Response::Appended { .. } | Response::TreeHead(_),
            ) => {
                entries.push(entry.clone());
                Response::Appended {
                    index: len,
                    head: self.head_of(entries),
                }
            }
            (_, other) => other,
        }
    }
}
