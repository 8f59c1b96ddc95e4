//! The load itself: per-conversation senders, per-connection receivers, and the counters and
//! histograms they feed.
//!
//! A message body is 1 KiB; its first 8 bytes carry the time it was *meant* to be sent
//! (nanoseconds since the run's clock base), so latency is measured from the schedule, not
//! from when a late sender got round to it (no coordinated omission). Receivers take it out
//! after verifying and decrypting, so latency is what a user sees: sealed, relayed, opened.
//! Bytes 16..24 carry the time the sender actually began sealing it, and the receiver notes
//! when the frame arrived, so each delivery's latency splits into three stages (`Stages`):
//! how late the sender was, sealing + the wire + the server, and the receiver's open.
//!
//! Both systems get byte-for-byte the same client work: seal (AES-256-GCM + Ed25519 sign) per
//! message, open (Ed25519 verify + AES-256-GCM) per delivery, a new epoch (HPKE to each member
//! plus the 2-of-3 escrow) every `rotate_after_messages` messages, opened and checked by the
//! receiver. Only the framing differs: Sealdesk `Request::Send` / `Push::Item` frames, or the
//! baseline's PUBLISH frame around the CBOR of the same item.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow};
use futures_util::{SinkExt as _, StreamExt as _, stream::SplitSink, stream::SplitStream};
use hdrhistogram::Histogram;
use rand::rngs::ChaCha20Rng;
use sealdesk_bench::baseline::{ROOM_LEN, publish_frame};
use sealdesk_protocol::{
    card::VerifiedCard,
    epoch::{EpochRecord, NewEpoch, VerifiedEpoch},
    ids::ConversationId,
    message::{ContentKind, Envelope, EpochKeys, ReplayWindows},
    policy::VerifiedPolicy,
    wire::{self, Frame, Item, Push, Request, Response},
};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    child::Kind,
    client::Ws,
    clock::{now_ns, ns_at, unix_now},
    party::Party,
};

/// Message body size.
pub const BODY: usize = 1024;
/// Highest latency a histogram records, in microseconds (larger values are clamped).
const HIST_MAX_US: u64 = 60_000_000;

/// A fresh latency histogram (µs, 3 significant digits).
// The bounds are constants hdrhistogram accepts (low ≥ 1, high ≥ 2 × low, sigfig ≤ 5).
#[allow(clippy::expect_used)]
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("constant histogram bounds are valid")
}

/// Counters and histograms of one system's clients.
pub struct Stats {
    measuring: AtomicBool,
    /// Messages sent.
    pub sent: AtomicU64,
    /// Messages verified, decrypted and delivered.
    pub delivered: AtomicU64,
    /// Durable acknowledgements (Sealdesk `Response::Stored` for a message).
    pub acked: AtomicU64,
    /// Receivers count messages without opening them (the relay-alone durable run: the
    /// clients' crypto was done before it, so that the relay has the machine to itself).
    pub count_only: AtomicBool,
    /// Errors of any kind (refusals, failed checks, lost connections).
    pub errors: AtomicU64,
    /// Pushes of an item already pushed on that connection (a sequence number not above the
    /// highest seen), dropped as a client does: a cluster node may push an item again (its
    /// own push and its catch-up read from the cursor).
    pub duplicates: AtomicU64,
    delivery: Mutex<Histogram<u64>>,
    /// The delivery latency of conversations whose members are on one relay node
    /// ([`Placement::SameNode`]), and of those whose members are on two
    /// ([`Placement::CrossNode`]); the cluster scenario compares them.
    delivery_same: Mutex<Histogram<u64>>,
    delivery_cross: Mutex<Histogram<u64>>,
    ack: Mutex<Histogram<u64>>,
    stages: Mutex<Stages>,
    first_error: Mutex<Option<String>>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            measuring: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            count_only: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            delivery: Mutex::new(histogram()),
            delivery_same: Mutex::new(histogram()),
            delivery_cross: Mutex::new(histogram()),
            ack: Mutex::new(histogram()),
            stages: Mutex::new(Stages::new()),
            first_error: Mutex::new(None),
        }
    }
}

impl Stats {
    /// Clears the histograms and starts recording latencies.
    pub fn begin_measure(&self) {
        for h in [
            &self.delivery,
            &self.delivery_same,
            &self.delivery_cross,
            &self.ack,
        ] {
            if let Ok(mut h) = h.lock() {
                h.reset();
            }
        }
        if let Ok(mut stages) = self.stages.lock() {
            *stages = Stages::new();
        }
        self.measuring.store(true, Ordering::SeqCst);
    }

    /// Stops recording latencies; returns copies of what was recorded.
    pub fn end_measure(&self) -> Measured {
        self.measuring.store(false, Ordering::SeqCst);
        let copy =
            |h: &Mutex<Histogram<u64>>| h.lock().map(|h| h.clone()).unwrap_or_else(|_| histogram());
        Measured {
            delivery: copy(&self.delivery),
            same_node: copy(&self.delivery_same),
            cross_node: copy(&self.delivery_cross),
            ack: copy(&self.ack),
            stages: self
                .stages
                .lock()
                .map(|s| s.clone())
                .unwrap_or_else(|_| Stages::new()),
        }
    }

    /// Counts an error, keeping the first message for the report.
    pub fn error(&self, what: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock()
            && first.is_none()
        {
            *first = Some(what.to_string());
        }
    }

    /// The first error seen, if any.
    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().ok().and_then(|e| e.clone())
    }

    fn record(&self, h: &Mutex<Histogram<u64>>, from_ns: u64) {
        if self.measuring.load(Ordering::Relaxed) {
            let us = now_ns().saturating_sub(from_ns) / 1_000;
            if let Ok(mut h) = h.lock() {
                h.saturating_record(us.clamp(1, HIST_MAX_US));
            }
        }
    }

    /// Records one delivery's stages from its time stamps (ns since the clock base).
    fn record_stages(&self, intended: u64, sealing: u64, received: u64, opened: u64) {
        if !self.measuring.load(Ordering::Relaxed) {
            return;
        }
        let us = |from: u64, to: u64| (to.saturating_sub(from) / 1_000).clamp(1, HIST_MAX_US);
        if let Ok(mut s) = self.stages.lock() {
            s.late.saturating_record(us(intended, sealing));
            s.transit.saturating_record(us(sealing, received));
            s.open.saturating_record(us(received, opened));
        }
    }
}

/// The histograms of one measured window (µs).
pub struct Measured {
    /// Intended send time → verified and decrypted at the receiver.
    pub delivery: Histogram<u64>,
    /// [`Self::delivery`] of the conversations placed on one node (cluster runs).
    pub same_node: Histogram<u64>,
    /// [`Self::delivery`] of the conversations whose members are on two nodes.
    pub cross_node: Histogram<u64>,
    /// Intended send time → the server's durable acknowledgement (Sealdesk).
    pub ack: Histogram<u64>,
    /// The delivery latency, stage by stage.
    pub stages: Stages,
}

/// Where a delivery's latency goes; the three stages add up to the delivery latency.
#[derive(Clone)]
pub struct Stages {
    /// Intended send time → the sender begins sealing (the sender's scheduling delay).
    pub late: Histogram<u64>,
    /// Sealing begins → the receiver has read the frame (seal, the sender's socket, the
    /// server, the receiver's socket and its reading task).
    pub transit: Histogram<u64>,
    /// The frame read → verified and decrypted.
    pub open: Histogram<u64>,
}

impl Stages {
    fn new() -> Self {
        Self {
            late: histogram(),
            transit: histogram(),
            open: histogram(),
        }
    }
}

/// What sender and receiver of one conversation share.
pub struct ConvShared {
    /// The conversation.
    pub id: ConversationId,
    /// Closed loop: messages sent but not yet delivered may not exceed the window.
    pub window: Semaphore,
    /// Epochs the receiver has opened (setup waits for the first).
    pub opened: AtomicU32,
    /// Where its members are connected (a [`Placement`] as `u8`), set at setup.
    placement: AtomicU8,
}

/// Where a conversation's two members are connected, in a cluster of relay nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Placement {
    /// One relay (or not recorded).
    Single = 0,
    /// Both on one node of a cluster: pushed by the node that stored the message.
    SameNode = 1,
    /// On two nodes: pushed after the storing node's wake-up reaches the other node.
    CrossNode = 2,
}

impl ConvShared {
    /// A conversation with a window of `window` messages.
    pub fn new(id: ConversationId, window: u32) -> Self {
        Self {
            id,
            window: Semaphore::new(window as usize),
            opened: AtomicU32::new(0),
            placement: AtomicU8::new(Placement::Single as u8),
        }
    }

    /// Records where the conversation's members are connected.
    pub fn set_placement(&self, p: Placement) {
        self.placement.store(p as u8, Ordering::SeqCst);
    }

    /// Where the conversation's members are connected.
    pub fn placement(&self) -> Placement {
        match self.placement.load(Ordering::Relaxed) {
            1 => Placement::SameNode,
            2 => Placement::CrossNode,
            _ => Placement::Single,
        }
    }

    /// Restores the window to `window` free slots (after a run has drained).
    pub fn reset_window(&self, window: u32) {
        let free = self.window.available_permits();
        self.window.forget_permits(free);
        self.window.add_permits(window as usize);
    }
}

/// Conversations by id, for receivers.
pub type Registry = RwLock<HashMap<ConversationId, Arc<ConvShared>>>;

/// How messages are framed for one system.
#[derive(Debug, Clone, Copy)]
pub enum Codec {
    /// Sealdesk wire frames.
    Sealdesk,
    /// Baseline PUBLISH frames to a room (the conversation id).
    Baseline {
        /// The room.
        room: [u8; ROOM_LEN],
    },
}

impl Codec {
    /// The codec of `kind` for conversation `c`.
    pub fn new(kind: Kind, c: &ConversationId) -> Self {
        match kind {
            Kind::Sealdesk => Codec::Sealdesk,
            Kind::Baseline => Codec::Baseline { room: c.to_bytes() },
        }
    }

    fn message(&self, id: u64, env: Envelope) -> Result<Vec<u8>> {
        Ok(match self {
            Codec::Sealdesk => wire::encode(&Frame::Request {
                id,
                body: Request::Send(env),
            })?,
            Codec::Baseline { room } => publish_frame(room, &wire::to_cbor(&Item::Message(env))?),
        })
    }

    /// The frame that delivers an epoch record.
    pub fn epoch(&self, id: u64, record: EpochRecord) -> Result<Vec<u8>> {
        Ok(match self {
            Codec::Sealdesk => wire::encode(&Frame::Request {
                id,
                body: Request::PutEpoch(record),
            })?,
            Codec::Baseline { room } => publish_frame(room, &wire::to_cbor(&Item::Epoch(record))?),
        })
    }
}

/// The sending side of one conversation: the customer's connection and epoch state.
pub struct Sender {
    /// The customer's connection.
    pub sink: SplitSink<Ws, Message>,
    /// Framing.
    pub codec: Codec,
    /// The customer.
    pub customer: Arc<Party>,
    /// The assigned agent's card (the other member).
    pub agent_card: VerifiedCard,
    /// The org's policy.
    pub policy: Arc<VerifiedPolicy>,
    /// Shared with the receiver.
    pub conv: Arc<ConvShared>,
    /// The current epoch's record.
    pub epoch: VerifiedEpoch,
    /// The current epoch's keys.
    pub keys: EpochKeys,
    /// The next counter in the current epoch.
    pub counter: u64,
    /// Last request id time stamp (ids are strictly increasing).
    pub last_id: u64,
    /// Randomness for new epochs.
    pub rng: ChaCha20Rng,
    /// This system's statistics.
    pub stats: Arc<Stats>,
    /// Frames sealed ahead of the run (see [`Sender::preseal`]): sent instead of sealing, and
    /// the sender stops when they run out.
    pub presealed: Option<VecDeque<Presealed>>,
}

/// A frame sealed ahead of its run.
pub struct Presealed {
    frame: Vec<u8>,
    /// A message (takes a window slot, counts as sent), not an epoch record.
    message: bool,
}

/// How a run paces its senders.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Send whenever the conversation's window has room.
    Closed,
    /// Send on a fixed schedule: one message per `interval` per conversation.
    Open {
        /// Time between two messages of one conversation.
        interval: Duration,
    },
}

impl Sender {
    /// Sends until `stop_at`, paced by `pace`; `offset` staggers open-loop schedules.
    pub async fn run(
        mut self,
        pace: Pace,
        start: Instant,
        offset: Duration,
        stop_at: Instant,
    ) -> Self {
        match pace {
            Pace::Closed => loop {
                if Instant::now() >= stop_at {
                    break;
                }
                match tokio::time::timeout_at(stop_at.into(), self.conv.window.acquire()).await {
                    Ok(Ok(permit)) => permit.forget(),
                    _ => break,
                }
                let sent = match self.presealed.is_some() {
                    true => self.send_presealed().await,
                    false => self.send_message(now_ns()).await.map(|()| true),
                };
                match sent {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        self.stats.error(format!("send: {e:#}"));
                        break;
                    }
                }
            },
            Pace::Open { interval } => {
                let mut k: u32 = 0;
                loop {
                    let at = start + offset + interval * k;
                    if at >= stop_at {
                        break;
                    }
                    tokio::time::sleep_until(at.into()).await;
                    if let Err(e) = self.send_message(ns_at(at)).await {
                        self.stats.error(format!("send: {e:#}"));
                        break;
                    }
                    k = k.saturating_add(1);
                }
            }
        }
        self
    }

    fn next_id(&mut self, stamp: u64) -> u64 {
        self.last_id = stamp.max(self.last_id + 1);
        self.last_id
    }

    /// Seals and sends one 1 KiB message meant to leave at `intended_ns`, opening a new epoch
    /// first when the policy's rotation limit is reached.
    async fn send_message(&mut self, intended_ns: u64) -> Result<()> {
        if self.rotation_due() {
            let frame = self.epoch_frame()?;
            self.sink.send(Message::Binary(frame.into())).await?;
        }
        let frame = self.message_frame(intended_ns)?;
        self.sink.send(Message::Binary(frame.into())).await?;
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Seals `messages` messages (and the epochs they need) ahead of a run, exactly as
    /// [`send_message`](Self::send_message) would; the closed-loop run then sends them. Their
    /// time stamps are the sealing times, so their latencies mean nothing.
    pub fn preseal(&mut self, messages: usize) -> Result<()> {
        let mut frames = VecDeque::with_capacity(messages + messages / 64 + 1);
        for _ in 0..messages {
            if self.rotation_due() {
                let frame = self.epoch_frame()?;
                frames.push_back(Presealed {
                    frame,
                    message: false,
                });
            }
            let frame = self.message_frame(now_ns())?;
            frames.push_back(Presealed {
                frame,
                message: true,
            });
        }
        self.presealed = Some(frames);
        Ok(())
    }

    /// Sends presealed frames up to and including the next message; `false` when none is left.
    async fn send_presealed(&mut self) -> Result<bool> {
        while let Some(p) = self.presealed.as_mut().and_then(VecDeque::pop_front) {
            self.sink.send(Message::Binary(p.frame.into())).await?;
            if p.message {
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn rotation_due(&self) -> bool {
        self.counter >= u64::from(self.policy.rotate_after_messages)
    }

    /// Seals the next message, stamped as meant to leave at `intended_ns`.
    fn message_frame(&mut self, intended_ns: u64) -> Result<Vec<u8>> {
        let mut body = [0x61u8; BODY];
        body[..8].copy_from_slice(&intended_ns.to_be_bytes());
        body[8..16].copy_from_slice(&self.counter.to_be_bytes());
        body[16..24].copy_from_slice(&now_ns().to_be_bytes());
        let env = self.keys.seal_message(
            &self.customer.keys,
            self.counter,
            ContentKind::Text,
            unix_now(),
            &body,
        )?;
        self.counter += 1;
        // Even ids are messages, odd ids epochs; the id's upper bits are the intended send
        // time, so the ack's latency needs no lookup.
        let id = self.next_id(intended_ns) << 1;
        self.codec.message(id, env)
    }

    /// Creates the next epoch (HPKE to both members, the 2-of-3 escrow) and moves to it;
    /// returns the frame that publishes its record.
    fn epoch_frame(&mut self) -> Result<Vec<u8>> {
        let members = [self.customer.card.clone(), self.agent_card.clone()];
        let (next, k) = EpochRecord::create(
            &mut self.rng,
            &self.customer.keys,
            &self.policy,
            NewEpoch {
                conversation: self.conv.id,
                epoch: self.epoch.epoch + 1,
                members: &members,
                previous: Some(self.epoch.record()),
                now: unix_now(),
            },
        )?;
        let id = (self.next_id(now_ns()) << 1) | 1;
        let frame = self.codec.epoch(id, next.record().clone())?;
        self.keys = EpochKeys::new(&k, &next);
        self.epoch = next;
        self.counter = 0;
        Ok(frame)
    }
}

/// The receiving side of one connection: opens epochs and messages, acknowledges windows,
/// records latencies; for Sealdesk customers, also the acks of their own messages.
pub struct Receiver {
    /// Which system's framing arrives.
    pub kind: Kind,
    /// Whose connection this is.
    pub me: Arc<Party>,
    /// The org's policy (epoch records are checked against it).
    pub policy: Arc<VerifiedPolicy>,
    /// Conversations by id.
    pub registry: Arc<Registry>,
    /// This system's statistics.
    pub stats: Arc<Stats>,
    epochs: HashMap<(ConversationId, u32), (EpochKeys, ReplayWindows)>,
    convs: HashMap<ConversationId, Arc<ConvShared>>,
    /// Sealdesk: the highest sequence number pushed per conversation.
    seen: HashMap<ConversationId, u64>,
}

impl Receiver {
    /// A receiver for `me`'s connection to a `kind` server.
    pub fn new(
        kind: Kind,
        me: Arc<Party>,
        policy: Arc<VerifiedPolicy>,
        registry: Arc<Registry>,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            kind,
            me,
            policy,
            registry,
            stats,
            epochs: HashMap::new(),
            convs: HashMap::new(),
            seen: HashMap::new(),
        }
    }

    /// Reads until the connection ends.
    pub async fn run(mut self, mut stream: SplitStream<Ws>) {
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(Message::Binary(b)) => self.handle(&b, now_ns()),
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// Handles one frame, read at `received` (ns since the clock base).
    fn handle(&mut self, bytes: &[u8], received: u64) {
        let item = match self.kind {
            Kind::Sealdesk => match wire::decode(bytes) {
                Ok(Frame::Push(Push::Item(s))) => {
                    let last = self.seen.entry(s.conversation).or_insert(0);
                    if s.seq <= *last {
                        self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    *last = s.seq;
                    s.item
                }
                Ok(Frame::Response { id, body }) => return self.on_response(id, body),
                Ok(_) => return,
                Err(e) => return self.stats.error(format!("frame: {e}")),
            },
            Kind::Baseline => match wire::from_cbor::<Item>(bytes, "item") {
                Ok(item) => item,
                Err(e) => return self.stats.error(format!("item: {e}")),
            },
        };
        match item {
            Item::Epoch(record) => {
                if let Err(e) = self.on_epoch(record) {
                    self.stats.error(format!("epoch: {e:#}"));
                }
            }
            Item::Message(env) => {
                if let Err(e) = self.on_message(&env, received) {
                    self.stats.error(format!("message: {e:#}"));
                }
            }
            _ => {}
        }
    }

    fn on_response(&mut self, id: u64, body: Response) {
        match body {
            Response::Stored { .. } if id & 1 == 0 => {
                self.stats.acked.fetch_add(1, Ordering::Relaxed);
                self.stats.record(&self.stats.ack, id >> 1);
            }
            Response::Error { code, message, .. } => {
                self.stats.error(format!("refused ({code:?}): {message}"));
            }
            _ => {}
        }
    }

    fn conv(&mut self, id: &ConversationId) -> Result<Arc<ConvShared>> {
        if let Some(c) = self.convs.get(id) {
            return Ok(c.clone());
        }
        let c = self
            .registry
            .read()
            .map_err(|_| anyhow!("registry lock poisoned"))?
            .get(id)
            .cloned()
            .ok_or_else(|| anyhow!("unknown conversation {id}"))?;
        self.convs.insert(*id, c.clone());
        Ok(c)
    }

    fn on_epoch(&mut self, record: EpochRecord) -> Result<()> {
        let verified = record.verify(&self.policy)?;
        let key = (verified.conversation, verified.epoch);
        if self.epochs.contains_key(&key) {
            // A setup retry delivered it twice.
            return Ok(());
        }
        let k = verified.open(&self.me.keys, &self.policy)?;
        self.epochs.insert(
            key,
            (EpochKeys::new(&k, &verified), ReplayWindows::default()),
        );
        // Two epochs back can no longer receive messages: the sender moved on.
        if let Some(old) = key.1.checked_sub(2) {
            self.epochs.remove(&(key.0, old));
        }
        self.conv(&key.0)?.opened.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn on_message(&mut self, env: &Envelope, received: u64) -> Result<()> {
        let h = &env.header;
        let key = (h.conversation, h.epoch);
        if self.stats.count_only.load(Ordering::Relaxed) {
            self.stats.delivered.fetch_add(1, Ordering::Relaxed);
            self.conv(&key.0)?.window.add_permits(1);
            return Ok(());
        }
        let (keys, windows) = self
            .epochs
            .get_mut(&key)
            .ok_or_else(|| anyhow!("a message for an epoch not opened ({})", h.epoch))?;
        let opened = keys.open_message(env, windows)?;
        let stamp = |at: usize| -> Result<u64> {
            let bytes = opened
                .body
                .get(at..at + 8)
                .ok_or_else(|| anyhow!("short body"))?;
            Ok(u64::from_be_bytes(bytes.try_into()?))
        };
        let (intended, sealing) = (stamp(0)?, stamp(16)?);
        self.stats.record(&self.stats.delivery, intended);
        let conv = self.conv(&key.0)?;
        match conv.placement() {
            Placement::SameNode => self.stats.record(&self.stats.delivery_same, intended),
            Placement::CrossNode => self.stats.record(&self.stats.delivery_cross, intended),
            Placement::Single => {}
        }
        self.stats
            .record_stages(intended, sealing, received, now_ns());
        self.stats.delivered.fetch_add(1, Ordering::Relaxed);
        conv.window.add_permits(1);
        Ok(())
    }
}
