//! Shared support for the end-to-end tests of the Sealdesk relay.
//!
//! Everything here talks to a real relay (`sealdesk_server::spawn`) on `127.0.0.1:0` with a
//! temporary data directory, over a real WebSocket, speaking the wire frames of
//! `sealdesk_protocol::wire` directly: no client library in between, so the tests see exactly
//! what the relay sends and can send what a well-behaved client never would.
//!
//! - [`spawn_relay`] / [`spawn_relay_in`] / [`stop_relay`]: a relay's life cycle.
//! - [`Identity`]: keys from a seeded ChaCha20 generator plus a signed card.
//! - [`RawClient`]: one WebSocket; handshake, requests with ids, queued pushes, raw bytes.
//! - [`Org`]: an org (master, 3 trustees 2-of-3, 3 arbiters 2-of-3, agents, customers), its
//!   policy and agent certificates, registered and published on a relay.
//! - [`Chat`]: an opened conversation with its first epoch stored.
//!
//! No timing assertions anywhere: [`STEP`] only keeps a broken test from hanging.

// Test support: a failed step must panic loudly with what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod child;
pub mod crash;
pub mod proxy;
pub mod wsraw;

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures_util::{SinkExt as _, StreamExt as _};
use rand::{SeedableRng as _, rngs::ChaCha20Rng};
use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent, ReleaseBasis},
    card::{IdentityCard, Role, VerifiedCard},
    epoch::{EpochRecord, NewEpoch, VerifiedEpoch},
    ids::ConversationId,
    keys::{IdentityKeys, SigningPublicKey},
    message::{ContentKind, Envelope, EpochKeys, Opened, ReplayWindows},
    policy::{AgentCertificate, OrgPolicy, PolicyParams, VerifiedPolicy},
    release::{self, ApprovedRelease, Justification, ReleaseRequest, TrusteeView},
    secret::EpochSecret,
    wire::{
        self, AuthResponse, Challenge, ErrorCode, Frame, PendingRelease, Push, Request, Response,
        Welcome,
    },
};
use sealdesk_server::{RunningRelay, config::RelayConfig};
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, protocol::frame::coding::CloseCode},
};

/// Generous bound on any single step, so that a bug fails a test instead of hanging it.
pub const STEP: Duration = Duration::from_secs(20);

/// A short wait used only to check that *nothing* arrives (never to assert a duration).
pub const QUIET: Duration = Duration::from_millis(300);

/// Seconds since the Unix epoch (the relay checks certificate and ticket times on its clock).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A deterministic generator for keys, ids and epoch secrets.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

// ---- relay ---------------------------------------------------------------------------------

/// Starts a relay on `127.0.0.1:0` with a fresh temporary data directory (kept alive by the
/// returned [`TempDir`]).
pub async fn spawn_relay() -> (RunningRelay, TempDir) {
    spawn_relay_with(|_| {}).await
}

/// Like [`spawn_relay`], with `tweak` applied to the configuration (limits, timeouts).
pub async fn spawn_relay_with(tweak: impl FnOnce(&mut RelayConfig)) -> (RunningRelay, TempDir) {
    let dir = tempfile::tempdir().expect("temporary data directory");
    let relay = start(config_for(dir.path(), tweak)).await;
    (relay, dir)
}

/// Starts a relay on `127.0.0.1:0` over an existing data directory (for restart tests).
pub async fn spawn_relay_in(data_dir: &Path) -> RunningRelay {
    start(config_for(data_dir, |_| {})).await
}

fn config_for(data_dir: &Path, tweak: impl FnOnce(&mut RelayConfig)) -> RelayConfig {
    let mut config = RelayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_owned(),
        ..RelayConfig::default()
    };
    tweak(&mut config);
    config
}

async fn start(config: RelayConfig) -> RunningRelay {
    tokio::time::timeout(STEP, sealdesk_server::spawn(config))
        .await
        .expect("relay start timed out")
        .expect("relay starts")
}

/// Shuts a relay down gracefully and checks that it stopped cleanly.
pub async fn stop_relay(relay: RunningRelay) {
    tokio::time::timeout(STEP, relay.shutdown())
        .await
        .expect("relay shutdown timed out")
        .expect("relay shuts down cleanly");
}

/// `GET path` over a plain TCP stream; returns the whole HTTP response.
pub async fn http_get(relay: &RunningRelay, path: &str) -> String {
    let mut stream = TcpStream::connect(relay.local_addr()).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: relay.test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(STEP, stream.read_to_end(&mut response))
        .await
        .expect("HTTP response timed out")
        .unwrap();
    String::from_utf8(response).expect("HTTP response is UTF-8")
}

/// The value of an unlabelled metric in a Prometheus text exposition.
pub fn metric(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next() == Some(name))
            .then(|| parts.next().and_then(|v| v.parse().ok()))
            .flatten()
    })
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let ty = entry.file_type().unwrap();
            if ty.is_dir() {
                todo.push(entry.path());
            } else if ty.is_file() {
                out.push(entry.path());
            }
        }
    }
    out
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

// ---- identities ----------------------------------------------------------------------------

/// An account: its keys and its self-signed card.
pub struct Identity {
    /// The secret keys.
    pub keys: IdentityKeys,
    /// The verified card.
    pub card: VerifiedCard,
}

impl Identity {
    /// Keys from `ChaCha20(seed)`, card named `name` with `role`.
    pub fn new(seed: u64, name: &str, role: Role) -> Self {
        let keys = IdentityKeys::generate(&mut rng(seed));
        let card = IdentityCard::issue(&keys, name, role, 1_700_000_000).expect("valid card");
        Self { keys, card }
    }

    /// The account's signing key.
    pub fn key(&self) -> SigningPublicKey {
        self.keys.signing_public()
    }

    /// The card as it travels.
    pub fn card(&self) -> IdentityCard {
        self.card.card().clone()
    }

    /// The account name.
    pub fn name(&self) -> &str {
        &self.card.name
    }
}

// ---- raw client ----------------------------------------------------------------------------

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One WebSocket to the relay, speaking frames directly.
pub struct RawClient {
    ws: Ws,
    challenge: Challenge,
    next_id: u64,
    pushes: VecDeque<Push>,
}

impl RawClient {
    /// Connects and reads the relay's [`Challenge`].
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect timed out")
            .expect("WebSocket upgrade");
        let mut c = Self {
            ws,
            challenge: Challenge {
                relay_key: IdentityKeys::generate(&mut rng(0)).signing_public(),
                nonce: [0; 32],
            },
            next_id: 1,
            pushes: VecDeque::new(),
        };
        match c.recv_frame().await {
            Some(Frame::Challenge(ch)) => c.challenge = ch,
            other => panic!("expected a challenge first, got {other:?}"),
        }
        c
    }

    /// Connects, authenticates as `who` and registers if the relay does not know the card yet.
    pub async fn login(url: &str, who: &Identity) -> Self {
        let mut c = Self::connect(url).await;
        let welcome = c.auth(&who.keys, who.card()).await;
        if !welcome.registered {
            c.ok(Request::Register).await;
        }
        c
    }

    /// The challenge this connection received.
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }

    /// Answers the challenge with `keys` and `card`; expects a [`Welcome`].
    pub async fn auth(&mut self, keys: &IdentityKeys, card: IdentityCard) -> Welcome {
        let answer = AuthResponse::answer(keys, card, &self.challenge);
        self.send_frame(&Frame::Auth(answer)).await;
        match self.recv_frame().await {
            Some(Frame::Welcome(w)) => w,
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    /// Sends one frame.
    pub async fn send_frame(&mut self, frame: &Frame) {
        self.send_raw(wire::encode(frame).expect("frame encodes"))
            .await;
    }

    /// Sends raw bytes as one binary WebSocket message.
    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        tokio::time::timeout(STEP, self.ws.send(Message::binary(bytes)))
            .await
            .expect("send timed out")
            .expect("send");
    }

    /// The next decoded frame, or `None` once the connection closed.
    pub async fn recv_frame(&mut self) -> Option<Frame> {
        self.recv_frame_within(STEP)
            .await
            .expect("timed out waiting for a frame")
    }

    /// Like [`Self::recv_frame`], but `Err(())` if nothing arrives within `wait`.
    #[allow(clippy::result_unit_err)]
    pub async fn recv_frame_within(&mut self, wait: Duration) -> Result<Option<Frame>, ()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Err(()),
                Ok(None | Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return Ok(None),
                Ok(Some(Ok(m))) => m,
            };
            match msg {
                Message::Binary(b) => {
                    return Ok(Some(wire::decode(&b).expect("relay frame decodes")));
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                Message::Text(t) => panic!("the relay sent a text message: {t}"),
                Message::Close(_) => return Ok(None),
            }
        }
    }

    /// Sends a request and waits for its response; pushes that arrive meanwhile are queued.
    pub async fn request(&mut self, body: Request) -> Response {
        let id = self.next_id;
        self.next_id += 1;
        self.send_frame(&Frame::Request { id, body }).await;
        loop {
            match self.recv_frame().await {
                Some(Frame::Response { id: got, body }) => {
                    assert_eq!(got, id, "response to another request: {body:?}");
                    return body;
                }
                Some(Frame::Push(p)) => self.pushes.push_back(p),
                Some(other) => panic!("unexpected frame while waiting for a response: {other:?}"),
                None => panic!("the relay closed the connection instead of answering"),
            }
        }
    }

    /// Sends a request that must succeed with [`Response::Ok`].
    pub async fn ok(&mut self, body: Request) {
        let what = format!("{body:?}");
        match self.request(body).await {
            Response::Ok => {}
            other => panic!("expected Ok for {}, got {other:?}", short(&what)),
        }
    }

    /// Sends a request that must be stored; returns its sequence number.
    pub async fn stored(&mut self, body: Request) -> u64 {
        let what = format!("{body:?}");
        match self.request(body).await {
            Response::Stored { seq } => seq,
            other => panic!("expected Stored for {}, got {other:?}", short(&what)),
        }
    }

    /// Sends a request that must be refused; returns the error code.
    pub async fn refused(&mut self, body: Request) -> ErrorCode {
        let what = format!("{body:?}");
        match self.request(body).await {
            Response::Error { code, .. } => code,
            other => panic!("expected a refusal of {}, got {other:?}", short(&what)),
        }
    }

    /// The next push (queued first), or `None` if none arrives within `wait`.
    pub async fn next_push(&mut self, wait: Duration) -> Option<Push> {
        if let Some(p) = self.pushes.pop_front() {
            return Some(p);
        }
        match self.recv_frame_within(wait).await {
            Err(()) | Ok(None) => None,
            Ok(Some(Frame::Push(p))) => Some(p),
            Ok(Some(other)) => panic!("unexpected frame while waiting for a push: {other:?}"),
        }
    }

    /// Waits (up to [`STEP`]) for the first push `pick` accepts; other pushes stay queued.
    pub async fn expect_push<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&Push) -> Option<T>,
    ) -> T {
        if let Some(i) = self.pushes.iter().position(|p| pick(p).is_some()) {
            let p = self.pushes.remove(i).unwrap();
            return pick(&p).unwrap();
        }
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_frame_within(left).await {
                Err(()) => panic!("timed out waiting for a push: {what}"),
                Ok(None) => panic!("connection closed while waiting for a push: {what}"),
                Ok(Some(Frame::Push(p))) => match pick(&p) {
                    Some(t) => return t,
                    None => self.pushes.push_back(p),
                },
                Ok(Some(other)) => panic!("unexpected frame while waiting for {what}: {other:?}"),
            }
        }
    }

    /// Checks that no push `pick` accepts is queued or arrives within [`QUIET`]; other pushes
    /// stay queued.
    pub async fn expect_no_push(&mut self, what: &str, mut pick: impl FnMut(&Push) -> bool) {
        if let Some(p) = self.pushes.iter().find(|p| pick(p)) {
            panic!("unexpected push ({what}): {p:?}");
        }
        let deadline = tokio::time::Instant::now() + QUIET;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_frame_within(left).await {
                Err(()) | Ok(None) => return,
                Ok(Some(Frame::Push(p))) => {
                    assert!(!pick(&p), "unexpected push ({what}): {p:?}");
                    self.pushes.push_back(p);
                }
                Ok(Some(other)) => panic!("unexpected frame while waiting ({what}): {other:?}"),
            }
        }
    }

    /// Reads until the relay closes; returns the close code (`None` if the stream ended without
    /// a close frame). Frames before the close (such as an error response) are skipped.
    pub async fn expect_close(&mut self) -> Option<u16> {
        self.frames_until_close().await.1
    }

    /// Reads until the relay closes; returns the frames received before the close and the
    /// close code (`None` if the stream ended without a close frame).
    pub async fn frames_until_close(&mut self) -> (Vec<Frame>, Option<u16>) {
        let mut frames = Vec::new();
        loop {
            let msg = tokio::time::timeout(STEP, self.ws.next())
                .await
                .expect("timed out waiting for the relay to close");
            match msg {
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map_or(u16::from(CloseCode::Status), |f| u16::from(f.code));
                    return (frames, Some(code));
                }
                Some(Ok(Message::Binary(b))) => {
                    frames.push(wire::decode(&b).expect("relay frame decodes"));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return (frames, None),
            }
        }
    }

    /// Closes the WebSocket politely.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(STEP, self.ws.close(None)).await;
        // Drain until the relay's close reply so the session ends before a shutdown.
        let _ = tokio::time::timeout(STEP, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

fn short(s: &str) -> &str {
    let end = s.char_indices().nth(120).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

// ---- org fixture ---------------------------------------------------------------------------

/// An org: master, 3 trustees (2-of-3), 3 arbiters (2-of-3), agents and customers, with a
/// signed policy and one certificate per agent.
pub struct Org {
    /// The org name.
    pub name: String,
    /// The master account.
    pub master: Identity,
    /// Escrow trustees, in share order.
    pub trustees: Vec<Identity>,
    /// Dispute arbiters.
    pub arbiters: Vec<Identity>,
    /// Certified agents.
    pub agents: Vec<Identity>,
    /// Customers (not part of the org; they talk to it).
    pub customers: Vec<Identity>,
    /// The verified policy (version 1).
    pub policy: VerifiedPolicy,
    /// One certificate per agent, in agent order.
    pub certificates: Vec<AgentCertificate>,
}

impl Org {
    /// Builds the identities and documents (nothing is sent). Names are prefixed with `name`,
    /// so several orgs can share one relay; seeds derive from `seed`.
    pub fn new(seed: u64, name: &str, agents: usize, customers: usize) -> Self {
        Self::new_with(seed, name, agents, customers, |_| {})
    }

    /// [`Org::new`] with the policy's parameters changed by `tweak` before it is signed.
    pub fn new_with(
        seed: u64,
        name: &str,
        agents: usize,
        customers: usize,
        tweak: impl FnOnce(&mut PolicyParams),
    ) -> Self {
        let s = |i: u64| seed.wrapping_mul(1_000).wrapping_add(i);
        let master = Identity::new(s(0), &format!("{name}-master"), Role::Master);
        let trustees: Vec<Identity> = (0..3)
            .map(|i| Identity::new(s(10 + i), &format!("{name}-trustee{i}"), Role::Trustee))
            .collect();
        let arbiters: Vec<Identity> = (0..3)
            .map(|i| Identity::new(s(20 + i), &format!("{name}-arbiter{i}"), Role::Arbiter))
            .collect();
        let agents: Vec<Identity> = (0..agents as u64)
            .map(|i| Identity::new(s(100 + i), &format!("{name}-agent{i}"), Role::Agent))
            .collect();
        let customers: Vec<Identity> = (0..customers as u64)
            .map(|i| Identity::new(s(500 + i), &format!("{name}-customer{i}"), Role::Customer))
            .collect();
        let mut params = PolicyParams::new(
            name,
            trustees.iter().map(Identity::card).collect(),
            2,
            arbiters.iter().map(Identity::card).collect(),
            2,
        );
        tweak(&mut params);
        let policy =
            OrgPolicy::issue(&master.keys, &master.card, params, 1_700_000_000).expect("policy");
        let issued = now().saturating_sub(60);
        let certificates = agents
            .iter()
            .map(|a| {
                AgentCertificate::issue(&master.keys, &policy, &a.card, issued, 30 * 86_400)
                    .expect("certificate")
            })
            .collect();
        Self {
            name: name.to_owned(),
            master,
            trustees,
            arbiters,
            agents,
            customers,
            policy,
            certificates,
        }
    }

    /// [`Org::new`], then registers every account on the relay at `url`, publishes the policy
    /// and the agents' certificates.
    pub async fn setup(url: &str, seed: u64, name: &str, agents: usize, customers: usize) -> Self {
        Self::new(seed, name, agents, customers).publish(url).await
    }

    /// Registers every account on the relay at `url`, publishes the policy and the agents'
    /// certificates.
    pub async fn publish(self, url: &str) -> Self {
        let org = self;
        org.register_all(url).await;
        let mut master = RawClient::login(url, &org.master).await;
        master
            .ok(Request::PublishPolicy(org.policy.policy().clone()))
            .await;
        for cert in &org.certificates {
            master.ok(Request::PublishCertificate(cert.clone())).await;
        }
        master.close().await;
        org
    }

    /// Registers every account of the org (each over its own short connection).
    pub async fn register_all(&self, url: &str) {
        for who in self.everyone() {
            RawClient::login(url, who).await.close().await;
        }
    }

    /// Every identity of the fixture.
    pub fn everyone(&self) -> impl Iterator<Item = &Identity> {
        std::iter::once(&self.master)
            .chain(&self.trustees)
            .chain(&self.arbiters)
            .chain(&self.agents)
            .chain(&self.customers)
    }

    /// The agent with this signing key.
    pub fn agent_by_key(&self, key: &SigningPublicKey) -> &Identity {
        self.agents
            .iter()
            .find(|a| a.key() == *key)
            .expect("the relay assigned an agent of this org")
    }

    /// A trustee's decision on a pushed release request, with the epoch records it came with
    /// (`release::decide`, with nothing spent or revoked).
    pub fn trustee_decides(
        &self,
        trustee: &Identity,
        pending: &PendingRelease,
        seed: u64,
    ) -> ApprovedRelease {
        let epochs: Vec<VerifiedEpoch> = pending
            .epochs
            .iter()
            .map(|r| {
                r.clone()
                    .verify(&self.policy)
                    .expect("epoch record verifies")
            })
            .collect();
        let view = TrusteeView {
            policy: &self.policy,
            me: &trustee.keys,
            now: now(),
            epochs: &epochs,
            is_spent: &|_| false,
            is_revoked: &|_| false,
        };
        release::decide(&mut rng(seed), &view, &pending.request).expect("the trustee approves")
    }

    /// The release entry `trustee` logs before releasing its shares for `request`.
    pub fn release_entry(&self, trustee: &Identity, request: &ReleaseRequest) -> AuditEntry {
        let basis = match &request.justification {
            Justification::Consent(c) => ReleaseBasis::Consent {
                id: c.id,
                scope: c.scope,
                issued_at: c.issued_at,
            },
            Justification::Dispute { ticket, decisions } => ReleaseBasis::Dispute {
                id: ticket.id,
                approvers: release::approvers(&self.policy, ticket, decisions),
            },
        };
        AuditEntry::sign(
            &trustee.keys,
            AuditEvent::Release {
                org: self.name.clone(),
                request_hash: request.hash(),
                conversation: request.conversation,
                epochs: request.epochs,
                basis,
                master: request.master,
            },
            now(),
        )
    }

    /// Opens a conversation for customer `c` over `client` (logged in as that customer) and
    /// stores epoch 0 with members `[customer, assigned agent]`.
    pub async fn start_chat(&self, client: &mut RawClient, c: usize, seed: u64) -> Chat {
        let mut r = rng(seed);
        let id = ConversationId::random(&mut r);
        let agent = match client
            .request(Request::OpenConversation {
                org: self.name.clone(),
                conversation: id,
            })
            .await
        {
            Response::Opened { agent, .. } => agent,
            other => panic!("expected Opened, got {other:?}"),
        };
        let agent = self
            .agents
            .iter()
            .position(|a| a.key() == agent.signing_key)
            .expect("org agent");
        let (record, secret) = self.epoch(&mut r, id, &self.customers[c], c, agent, 0, None);
        let seq = client
            .stored(Request::PutEpoch(record.record().clone()))
            .await;
        Chat {
            id,
            customer: c,
            agent,
            keys: EpochKeys::new(&secret, &record),
            record,
            secret,
            epoch_seq: seq,
        }
    }

    /// Creates (without sending) epoch `epoch` of conversation `id`, signed by `creator`, with
    /// members `[customer c, agent a]`.
    #[allow(clippy::too_many_arguments)]
    pub fn epoch(
        &self,
        r: &mut ChaCha20Rng,
        id: ConversationId,
        creator: &Identity,
        c: usize,
        a: usize,
        epoch: u32,
        previous: Option<&EpochRecord>,
    ) -> (VerifiedEpoch, EpochSecret) {
        let members = [self.customers[c].card.clone(), self.agents[a].card.clone()];
        EpochRecord::create(
            r,
            &creator.keys,
            &self.policy,
            NewEpoch {
                conversation: id,
                epoch,
                members: &members,
                previous,
                now: now(),
            },
        )
        .expect("epoch record")
    }
}

/// An open conversation with its current epoch.
pub struct Chat {
    /// The conversation id.
    pub id: ConversationId,
    /// Index of the customer in [`Org::customers`].
    pub customer: usize,
    /// Index of the assigned agent in [`Org::agents`].
    pub agent: usize,
    /// The current epoch's record.
    pub record: VerifiedEpoch,
    /// The current epoch's secret `K`.
    pub secret: EpochSecret,
    /// Key material of the current epoch.
    pub keys: EpochKeys,
    /// The relay sequence number of the epoch record.
    pub epoch_seq: u64,
}

impl Chat {
    /// Encrypts and signs a text message from `sender` with `counter`.
    pub fn seal(&self, sender: &Identity, counter: u64, text: &str) -> Envelope {
        self.keys
            .seal_message(
                &sender.keys,
                counter,
                ContentKind::Text,
                now(),
                text.as_bytes(),
            )
            .expect("seal")
    }

    /// Opens a message of the current epoch (fresh replay window each call).
    pub fn open(&self, env: &Envelope) -> Opened {
        self.keys
            .open_message(env, &mut ReplayWindows::default())
            .expect("message opens")
    }
}
