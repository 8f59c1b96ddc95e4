//! Crash durability harness: SIGKILL the real relay binary at random moments while clients
//! send, restart it on the same data directory, and check what survived.
//!
//! ```text
//!  setup: relay child ─ Org::setup + one chat per customer (epoch 0 stored) ─ SIGKILL
//!  cycle: [sometimes: start, SIGKILL during startup/recovery]
//!         start ─► verify every chat's history against the model ─► resend unanswered sends
//!               ─► load: customer + agent of every chat send sequentially, the master reads
//!                  History in a loop ─► SIGKILL after a random delay ─► collect outcomes
//!  end:   start ─► full verification ─► SIGKILL
//! ```
//!
//! On PostgreSQL ([`CrashConfig::store`]) with several nodes ([`CrashConfig::nodes`]): every
//! node is started at a cycle's start (the one killed in the last cycle again), each chat's
//! members send through one node, which changes every cycle (so the chats of a killed node move
//! to another one, which resends what was unanswered), the master reads through another, and
//! one node chosen at random is SIGKILLed; the writers and reader on the other nodes stop then.
//! The invariants are the same.
//!
//! The model keeps, per writer (one sender in one chat), every acknowledged send
//! (`Stored { seq }`) and every send still unanswered when the relay died. Verification checks:
//!
//! - **acknowledged**: present at exactly its acknowledged `seq`, with the same sender, counter
//!   and ciphertext — otherwise *lost* (nowhere) or *misplaced* (elsewhere);
//! - **exactly once**: no (sender, counter) stored twice (*duplicated*);
//! - **in order**: per writer, acknowledged seqs increase and stored counters increase along
//!   the history (*out of order*); the history's seqs are `1..=n` with no gap (*gaps*);
//! - **unacknowledged**: stored at most once. Each is resent unchanged after the restart: the
//!   relay must answer `CounterReused` exactly when it is already stored (else a *dedupe anomaly*),
//!   and `Stored` otherwise;
//! - **phantom reads** (reported, a separate property): an item the master read during a cycle
//!   must still be at that seq after the crash. An item read before it was durable and then
//!   lost is a phantom: a client that advanced its cursor past it misses the item that later
//!   takes its seq.
//!
//! Histories are checked incrementally each cycle (everything after the last checked seq) and
//! in full every `full_check_every` cycles and at the end. Every step is bounded by [`STEP`];
//! every cycle by `max_kill_delay` and `per_writer_per_cycle`.

use std::{
    collections::{HashMap, hash_map::DefaultHasher},
    fmt,
    hash::{Hash as _, Hasher as _},
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::{SinkExt as _, StreamExt as _};
use rand::{RngExt as _, SeedableRng as _, rngs::ChaCha20Rng};
use sealdesk_protocol::{
    keys::SigningPublicKey,
    message::Envelope,
    wire::{self, AuthResponse, ErrorCode, Frame, Item, Request, Response, Sequenced},
};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

use crate::{Chat, Identity, Org, RawClient, STEP, child::RelayProcess};

/// Failures described in the report (the counters keep counting past this).
const MAX_FAILURES: usize = 20;

/// History page size used by the harness.
const PAGE: u32 = 200;
/// History pages fetched on one connection, well inside the relay's default `frame_burst`.
const PAGES_PER_CONNECTION: u32 = 250;

/// What the harness does.
#[derive(Clone, Debug)]
pub struct CrashConfig {
    /// Kill–restart cycles.
    pub cycles: u32,
    /// Seeds the kill delays and the org's keys (timing still varies from run to run).
    pub seed: u64,
    /// Conversations; each has two writers (its customer and its agent).
    pub chats: usize,
    /// Longest delay between the start of the load and the kill.
    pub max_kill_delay: Duration,
    /// Most messages one writer sends in one cycle.
    pub per_writer_per_cycle: u64,
    /// Percentage of cycles that first kill a relay during startup (recovery), before it
    /// listens.
    pub startup_kill_percent: u32,
    /// Longest delay before a startup kill.
    pub max_startup_kill_delay: Duration,
    /// Verify whole histories (not just what is new) every this many cycles.
    pub full_check_every: u32,
    /// Relay limits set in the child's environment, as (`FIELD`, value).
    pub limits: Vec<(String, String)>,
    /// Print one line per cycle.
    pub progress: bool,
    /// The relays' store: `None` for sled (a data directory), or a PostgreSQL database URL
    /// (`postgres://…`, empty before the run) that every node shares.
    pub store: Option<String>,
    /// Relay processes (nodes); more than one needs a PostgreSQL `store`. Each cycle SIGKILLs
    /// one at random; the chats on it move to another node.
    pub nodes: usize,
}

impl Default for CrashConfig {
    fn default() -> Self {
        Self {
            cycles: 30,
            seed: 7,
            chats: 3,
            max_kill_delay: Duration::from_millis(250),
            per_writer_per_cycle: 60,
            startup_kill_percent: 10,
            max_startup_kill_delay: Duration::from_millis(40),
            full_check_every: 10,
            limits: Vec::new(),
            progress: false,
            store: None,
            nodes: 1,
        }
    }
}

/// What the harness found.
#[derive(Clone, Debug, Default)]
pub struct CrashReport {
    /// Cycles completed.
    pub cycles: u32,
    /// Relays killed during startup (in addition to one kill per cycle).
    pub startup_kills: u32,
    /// Sends acknowledged with `Stored` (including resends).
    pub acked: u64,
    /// Acknowledged messages found nowhere.
    pub lost: u64,
    /// (sender, counter) pairs stored more than once.
    pub duplicated: u64,
    /// Acknowledged messages found at another seq, or another item at their seq.
    pub misplaced: u64,
    /// Acknowledged seqs or stored counters of one writer out of order.
    pub out_of_order: u64,
    /// Breaks in the `1..=n` sequence of a history.
    pub gaps: u64,
    /// Sends unanswered when the relay died.
    pub unacked: u64,
    /// … of which were found stored after the restart (the resend answered `CounterReused`).
    pub unacked_found_stored: u64,
    /// … of which were not stored, and were stored by the resend.
    pub unacked_stored_by_resend: u64,
    /// Resends whose answer contradicts the history (`CounterReused` but absent, `Stored` but
    /// present).
    pub dedupe_anomalies: u64,
    /// Items read before a crash that were gone or different after it.
    pub phantom_reads: u64,
    /// Items the master read during load phases.
    pub reads: u64,
    /// Items in all histories at the final check.
    pub stored_items: u64,
    /// Wall time.
    pub wall: Duration,
    /// The first failures, described.
    pub failures: Vec<String>,
}

impl CrashReport {
    /// Whether every acknowledged message was present exactly once and in order, and every
    /// unacknowledged one at most once (phantom reads are reported, not included).
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.misplaced == 0
            && self.out_of_order == 0
            && self.gaps == 0
            && self.dedupe_anomalies == 0
            && self.failures.is_empty()
    }

    fn fail(&mut self, what: String) {
        if self.failures.len() < MAX_FAILURES {
            self.failures.push(what);
        }
    }
}

impl fmt::Display for CrashReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "crash harness: {} cycles ({} extra kills during startup) in {:.1} s",
            self.cycles,
            self.startup_kills,
            self.wall.as_secs_f64()
        )?;
        writeln!(
            f,
            "  acknowledged messages: {} | lost {} | duplicated {} | misplaced {} | out of order {} | seq gaps {}",
            self.acked, self.lost, self.duplicated, self.misplaced, self.out_of_order, self.gaps
        )?;
        writeln!(
            f,
            "  unacknowledged at a kill: {} | found stored after restart {} | stored by the resend {} | dedupe anomalies {}",
            self.unacked,
            self.unacked_found_stored,
            self.unacked_stored_by_resend,
            self.dedupe_anomalies
        )?;
        writeln!(
            f,
            "  concurrent reads: {} items | phantom reads (read before a crash, gone after) {}",
            self.reads, self.phantom_reads
        )?;
        write!(f, "  items in store at the end: {}", self.stored_items)?;
        for failure in &self.failures {
            write!(f, "\n  FAILURE: {failure}")?;
        }
        Ok(())
    }
}

// ---- a fallible client ------------------------------------------------------------------------

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A minimal client whose every step returns an error instead of panicking: the relay may die
/// under it at any moment.
pub struct Conn {
    ws: Ws,
    next_id: u64,
}

impl Conn {
    /// Connects and authenticates as a registered account.
    ///
    /// # Errors
    ///
    /// Any failure, described.
    pub async fn login(url: &str, who: &Identity) -> Result<Self, String> {
        let (ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| format!("connect: {e}"))?;
        let mut c = Self { ws, next_id: 1 };
        let challenge = match c.recv().await? {
            Frame::Challenge(ch) => ch,
            other => return Err(format!("expected a challenge, got {other:?}")),
        };
        let answer = AuthResponse::answer(&who.keys, who.card(), &challenge);
        c.send(&Frame::Auth(answer)).await?;
        match c.recv().await? {
            Frame::Welcome(w) if w.registered => Ok(c),
            other => Err(format!("expected a registered welcome, got {other:?}")),
        }
    }

    async fn send(&mut self, frame: &Frame) -> Result<(), String> {
        let bytes = wire::encode(frame).map_err(|e| e.to_string())?;
        tokio::time::timeout(STEP, self.ws.send(Message::binary(bytes)))
            .await
            .map_err(|_| "send timed out".to_owned())?
            .map_err(|e| format!("send: {e}"))
    }

    async fn recv(&mut self) -> Result<Frame, String> {
        loop {
            let msg = tokio::time::timeout(STEP, self.ws.next())
                .await
                .map_err(|_| "receive timed out".to_owned())?;
            match msg {
                Some(Ok(Message::Binary(b))) => {
                    return wire::decode(&b).map_err(|e| format!("decode: {e}"));
                }
                Some(Ok(Message::Close(c))) => return Err(format!("closed: {c:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("receive: {e}")),
                None => return Err("connection ended".into()),
            }
        }
    }

    /// Sends a request and returns its response (pushes meanwhile are dropped).
    ///
    /// # Errors
    ///
    /// The connection failed before the response arrived.
    pub async fn request(&mut self, body: Request) -> Result<Response, String> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&Frame::Request { id, body }).await?;
        loop {
            match self.recv().await? {
                Frame::Response { id: got, body } if got == id => return Ok(body),
                Frame::Push(_) => {}
                other => return Err(format!("unexpected frame {other:?}")),
            }
        }
    }

    /// The whole history of a conversation after `after`, in pages.
    ///
    /// # Errors
    ///
    /// The connection failed or the relay refused.
    /// Up to `max_pages` pages of history after `after`; also says whether more remain.
    pub async fn history(
        &mut self,
        conversation: sealdesk_protocol::ids::ConversationId,
        mut after: u64,
        max_pages: u32,
    ) -> Result<(Vec<Sequenced>, bool), String> {
        let mut out = Vec::new();
        for _ in 0..max_pages {
            match self
                .request(Request::History {
                    conversation,
                    after,
                    limit: PAGE,
                })
                .await?
            {
                Response::Items { items, more, .. } => {
                    if let Some(last) = items.last() {
                        after = last.seq;
                    }
                    let empty = items.is_empty();
                    out.extend(items);
                    if !more || empty {
                        return Ok((out, false));
                    }
                }
                other => return Err(format!("History answered {other:?}")),
            }
        }
        Ok((out, true))
    }
}

// ---- the model --------------------------------------------------------------------------------

/// (sender, counter, ciphertext digest): what identifies a stored message.
type MsgId = (SigningPublicKey, u64, u64);

fn digest(ciphertext: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    ciphertext.hash(&mut h);
    h.finish()
}

fn msg_id(env: &Envelope) -> MsgId {
    (
        env.header.sender,
        env.header.counter,
        digest(&env.ciphertext),
    )
}

/// One sender in one chat.
struct Writer {
    chat: usize,
    /// `None`: the chat's customer; `Some(i)`: agent `i`.
    agent: Option<usize>,
    next_counter: u64,
    /// (seq, id) of every acknowledged send, in send order.
    acked: Vec<(u64, MsgId)>,
    /// Sends unanswered when the relay died (resent unchanged after the restart).
    unanswered: Vec<Envelope>,
}

impl Writer {
    fn who<'a>(&self, org: &'a Org, chats: &[Chat]) -> &'a Identity {
        match self.agent {
            None => &org.customers[chats[self.chat].customer],
            Some(a) => &org.agents[a],
        }
    }
}

/// Per-chat verification state.
#[derive(Default)]
struct ChatCheck {
    /// Every seq up to here has been verified.
    checked_upto: u64,
    /// (sender, counter) → seq of every message verified so far.
    seen: HashMap<(SigningPublicKey, u64), u64>,
    /// seq → id of every message the master read during the current cycle.
    reads: HashMap<u64, MsgId>,
}

struct Harness {
    cfg: CrashConfig,
    /// Each node's data directory (sled's store; unused but required on PostgreSQL).
    dirs: Vec<std::path::PathBuf>,
    /// The running nodes (`None`: killed, started again at the next cycle).
    nodes: Vec<Option<RelayProcess>>,
    bin: std::path::PathBuf,
    org: Arc<Org>,
    chats: Arc<Vec<Chat>>,
    writers: Vec<Writer>,
    checks: Vec<ChatCheck>,
    report: CrashReport,
    rng: ChaCha20Rng,
}

/// Runs the harness over a fresh data directory under `dir` (which must exist), with the
/// relay binary `bin`. Builds its own tokio runtime; call it from a plain thread or `#[test]`.
///
/// # Panics
///
/// If the setup fails (the relay does not start, the org cannot be created) or a relay does
/// not come back after a kill: infrastructure failures, not findings.
pub fn run(cfg: &CrashConfig, dir: &Path, bin: &Path) -> CrashReport {
    let started = Instant::now();
    assert!(
        cfg.nodes <= 1 || cfg.store.is_some(),
        "several relay nodes need a shared PostgreSQL store"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dirs: Vec<_> = (0..cfg.nodes.max(1))
        .map(|i| {
            let d = if i == 0 {
                dir.join("relay-data")
            } else {
                dir.join(format!("relay-data-{i}"))
            };
            std::fs::create_dir_all(&d).expect("data directory");
            d
        })
        .collect();
    let data = dirs[0].clone();
    let limits = env_of(cfg);
    let limits: Vec<(&str, &str)> = limits
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // Setup on a first relay, then kill it (everything it acknowledged must survive too).
    let mut relay = start(bin, &data, &limits);
    let url = relay.ws_url();
    let (org, chats) = rt.block_on(async {
        // Every writer stays in epoch 0 for the whole run (rotation is not what this checks):
        // the relay refuses a message beyond the policy's rotation limit.
        let org = Org::new_with(cfg.seed, "crashco", cfg.chats, cfg.chats, |p| {
            p.rotate_after_messages = u32::MAX;
        })
        .publish(&url)
        .await;
        let mut chats = Vec::new();
        for c in 0..cfg.chats {
            let mut client = RawClient::login(&url, &org.customers[c]).await;
            chats.push(
                org.start_chat(&mut client, c, cfg.seed * 100 + c as u64)
                    .await,
            );
            client.close().await;
        }
        (org, chats)
    });
    relay.kill().expect("kill the setup relay");
    drop(relay);

    let mut writers = Vec::new();
    for (i, chat) in chats.iter().enumerate() {
        for agent in [None, Some(chat.agent)] {
            writers.push(Writer {
                chat: i,
                agent,
                next_counter: 0,
                acked: Vec::new(),
                unanswered: Vec::new(),
            });
        }
    }
    let mut h = Harness {
        cfg: cfg.clone(),
        nodes: dirs.iter().map(|_| None).collect(),
        dirs,
        bin: bin.to_owned(),
        org: Arc::new(org),
        chats: Arc::new(chats),
        writers,
        checks: (0..cfg.chats).map(|_| ChatCheck::default()).collect(),
        report: CrashReport::default(),
        rng: ChaCha20Rng::seed_from_u64(cfg.seed),
    };
    for cycle in 1..=cfg.cycles {
        h.cycle(&rt, cycle);
        h.report.cycles = cycle;
        if cfg.progress {
            println!(
                "cycle {cycle}: acked {} lost {} duplicated {} unacked {} phantom {}",
                h.report.acked,
                h.report.lost,
                h.report.duplicated,
                h.report.unacked,
                h.report.phantom_reads
            );
        }
    }
    // Final full check.
    let urls = h.start_all();
    h.report.stored_items = rt.block_on(h.verify(&urls[0], true));
    for node in h.nodes.iter_mut().flatten() {
        node.kill().expect("kill the last relays");
    }
    h.report.wall = started.elapsed();
    h.report
}

/// The relay settings of `cfg` (its limits, and its store), as (`FIELD`, value) pairs for
/// `SEALDESK_RELAY_<FIELD>`.
fn env_of(cfg: &CrashConfig) -> Vec<(String, String)> {
    let mut env = cfg.limits.clone();
    if let Some(url) = &cfg.store {
        for (k, v) in [
            ("STORE", "postgres"),
            ("DATABASE_URL", url.as_str()),
            ("MIGRATE", "true"),
            // Pushes are not what this checks; a short catch-up keeps nodes current.
            ("CLUSTER_CATCH_UP_MS", "200"),
        ] {
            env.push((k.to_owned(), v.to_owned()));
        }
    }
    env
}

fn start(bin: &Path, data: &Path, limits: &[(&str, &str)]) -> RelayProcess {
    let mut relay = RelayProcess::spawn(bin, data, limits).expect("start sealdesk-relay");
    if let Err(e) = relay.wait_ready(STEP) {
        panic!("the relay did not start over {}: {e}", data.display());
    }
    relay
}

impl Harness {
    fn env(&self) -> Vec<(String, String)> {
        env_of(&self.cfg)
    }

    /// Starts node `i`.
    fn start(&self, i: usize) -> RelayProcess {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        start(&self.bin, &self.dirs[i], &env)
    }

    /// Starts every node that is not running; returns every node's URL.
    fn start_all(&mut self) -> Vec<String> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_none() {
                self.nodes[i] = Some(self.start(i));
            }
        }
        self.nodes
            .iter()
            .map(|n| n.as_ref().map(RelayProcess::ws_url).unwrap_or_default())
            .collect()
    }

    fn cycle(&mut self, rt: &tokio::runtime::Runtime, cycle: u32) {
        let n = self.nodes.len();
        if self.rng.random_range(0..100) < self.cfg.startup_kill_percent {
            // Kill during startup: recovery, key loading, before or after listening — of a
            // node that is down (every node is, on one node).
            let i = (0..n).find(|i| self.nodes[*i].is_none()).unwrap_or(0);
            if self.nodes[i].is_none() {
                let env = self.env();
                let env: Vec<(&str, &str)> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let mut relay = RelayProcess::spawn(&self.bin, &self.dirs[i], &env)
                    .expect("start sealdesk-relay");
                let max = self.cfg.max_startup_kill_delay.as_micros().max(1) as u64;
                // A random kill point, not a wait for another party: the crash is the event.
                std::thread::sleep(Duration::from_micros(self.rng.random_range(0..max)));
                relay.kill().expect("kill during startup");
                self.report.startup_kills += 1;
            }
        }
        let urls = self.start_all();
        // The chats' node this cycle: they move on every cycle (and so off the node killed in
        // the last one). Both members of a chat use the same node.
        let shift = cycle as usize;
        let chat_urls: Vec<String> = (0..self.chats.len())
            .map(|c| urls[(c + shift) % n].clone())
            .collect();
        let full = self.cfg.full_check_every > 0 && cycle.is_multiple_of(self.cfg.full_check_every);
        rt.block_on(async {
            self.verify(&urls[shift % n], full).await;
            self.resend(&chat_urls).await;
        });
        let max = self.cfg.max_kill_delay.as_micros().max(1) as u64;
        let delay = Duration::from_micros(self.rng.random_range(0..max));
        let victim = self.rng.random_range(0..n);
        let reader_url = urls[(shift + 1) % n].clone();
        let Some(mut relay) = self.nodes[victim].take() else {
            panic!("node {victim} is not running");
        };
        rt.block_on(self.load(&chat_urls, &reader_url, &mut relay, delay));
    }

    /// Checks every chat's history (after the last checked seq, or all of it) against the
    /// model; returns the number of items fetched.
    async fn verify(&mut self, url: &str, full: bool) -> u64 {
        let mut fetched = 0u64;
        for c in 0..self.chats.len() {
            let customer = &self.org.customers[self.chats[c].customer];
            if full {
                self.checks[c].checked_upto = 0;
                self.checks[c].seen.clear();
            }
            let from = self.checks[c].checked_upto;
            let mut items = Vec::new();
            // A long history takes more requests than the relay's per-connection rate limit
            // allows in one burst; a fresh connection gets a fresh allowance.
            loop {
                let mut conn = match Conn::login(url, customer).await {
                    Ok(conn) => conn,
                    Err(e) => panic!("verification login failed: {e}"),
                };
                let after = items.last().map_or(from, |i: &Sequenced| i.seq);
                match conn
                    .history(self.chats[c].id, after, PAGES_PER_CONNECTION)
                    .await
                {
                    Ok((page, more)) => {
                        items.extend(page);
                        if !more {
                            break;
                        }
                    }
                    Err(e) => panic!("verification history failed: {e}"),
                }
            }
            fetched += items.len() as u64;
            self.check_chat(c, from, &items);
        }
        fetched
    }

    fn check_chat(&mut self, c: usize, from: u64, items: &[Sequenced]) {
        let chat_id = self.chats[c].id;
        let mut at: HashMap<u64, MsgId> = HashMap::new();
        let mut expected = from + 1;
        let mut last_counter: HashMap<SigningPublicKey, u64> = HashMap::new();
        for s in items {
            if s.seq != expected {
                self.report.gaps += 1;
                self.report.fail(format!(
                    "chat {c}: expected seq {expected}, found {}",
                    s.seq
                ));
            }
            expected = s.seq + 1;
            let Item::Message(env) = &s.item else {
                continue;
            };
            let id = msg_id(env);
            at.insert(s.seq, id);
            let key = (id.0, id.1);
            if let Some(prev) = self.checks[c].seen.insert(key, s.seq)
                && prev != s.seq
            {
                self.report.duplicated += 1;
                self.report.fail(format!(
                    "chat {c}: counter {} of one sender stored at seqs {prev} and {}",
                    id.1, s.seq
                ));
            }
            if let Some(prev) = last_counter.insert(id.0, id.1)
                && prev >= id.1
            {
                self.report.out_of_order += 1;
                self.report.fail(format!(
                    "chat {c}: counter {} stored after counter {prev} of the same sender (seq {})",
                    id.1, s.seq
                ));
            }
        }
        let last = items.last().map_or(from, |s| s.seq);
        // Acknowledged messages past `from` are at their seq.
        for w in self.writers.iter().filter(|w| w.chat == c) {
            for (seq, id) in w.acked.iter().filter(|(seq, _)| *seq > from) {
                match at.get(seq) {
                    Some(found) if found == id => {}
                    Some(_) => {
                        self.report.misplaced += 1;
                        self.report.fail(format!(
                            "chat {c}: acknowledged seq {seq} holds another message"
                        ));
                    }
                    None => match self.checks[c].seen.get(&(id.0, id.1)) {
                        Some(other) => {
                            self.report.misplaced += 1;
                            self.report.fail(format!(
                                "chat {c}: message acknowledged at seq {seq} is at seq {other}"
                            ));
                        }
                        None => {
                            self.report.lost += 1;
                            self.report.fail(format!(
                                "chat {c} ({chat_id}): acknowledged seq {seq} (counter {}) lost",
                                id.1
                            ));
                        }
                    },
                }
            }
        }
        // What the master read during the last load must still be there.
        for (seq, id) in std::mem::take(&mut self.checks[c].reads) {
            if seq > from && at.get(&seq) != Some(&id) {
                self.report.phantom_reads += 1;
            }
        }
        self.checks[c].checked_upto = last;
    }

    /// Resends every send that was unanswered at the last kill, unchanged, each through its
    /// chat's node (`urls`, by chat).
    async fn resend(&mut self, urls: &[String]) {
        for w in 0..self.writers.len() {
            let pending = std::mem::take(&mut self.writers[w].unanswered);
            if pending.is_empty() {
                continue;
            }
            let c = self.writers[w].chat;
            let who = self.writers[w].who(&self.org, &self.chats);
            let mut conn = match Conn::login(&urls[c], who).await {
                Ok(conn) => conn,
                Err(e) => panic!("resend login failed: {e}"),
            };
            for env in pending {
                let id = msg_id(&env);
                let found = self.checks[c].seen.contains_key(&(id.0, id.1));
                let answer = match conn.request(Request::Send(env)).await {
                    Ok(answer) => answer,
                    Err(e) => panic!("resend failed: {e}"),
                };
                match answer {
                    Response::Error {
                        code: ErrorCode::CounterReused,
                        ..
                    } if found => self.report.unacked_found_stored += 1,
                    Response::Stored { seq, .. } if !found => {
                        self.report.unacked_stored_by_resend += 1;
                        self.ack(w, seq, id);
                    }
                    other => {
                        self.report.dedupe_anomalies += 1;
                        self.report.fail(format!(
                            "chat {c}: resend of counter {} (found stored: {found}) answered {other:?}",
                            id.1
                        ));
                    }
                }
            }
        }
    }

    fn ack(&mut self, w: usize, seq: u64, id: MsgId) {
        self.report.acked += 1;
        let writer = &mut self.writers[w];
        if let Some((prev, _)) = writer.acked.last()
            && *prev >= seq
        {
            self.report.out_of_order += 1;
            let c = writer.chat;
            self.report
                .fail(format!("chat {c}: acknowledged seq {seq} after seq {prev}"));
        }
        self.writers[w].acked.push((seq, id));
    }

    /// Writers send (each through its chat's node in `urls`) and the master reads (through
    /// `reader_url`) until `relay` is killed after `delay`; writers and the reader on the other
    /// nodes stop then too.
    async fn load(
        &mut self,
        urls: &[String],
        reader_url: &str,
        relay: &mut RelayProcess,
        delay: Duration,
    ) {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (w, writer) in self.writers.iter().enumerate() {
            let (org, chats, url, stop) = (
                Arc::clone(&self.org),
                Arc::clone(&self.chats),
                urls[writer.chat].clone(),
                Arc::clone(&stop),
            );
            let (chat, agent, first) = (writer.chat, writer.agent, writer.next_counter);
            let limit = self.cfg.per_writer_per_cycle;
            tasks.push(tokio::spawn(async move {
                let sender = match agent {
                    None => &org.customers[chats[chat].customer],
                    Some(a) => &org.agents[a],
                };
                let outcome =
                    write_until_killed(&url, sender, &chats[chat], first, limit, &stop).await;
                (w, outcome)
            }));
        }
        let reader = {
            let (org, chats, url, stop) = (
                Arc::clone(&self.org),
                Arc::clone(&self.chats),
                reader_url.to_owned(),
                Arc::clone(&stop),
            );
            let cursors: Vec<u64> = self.checks.iter().map(|c| c.checked_upto).collect();
            tokio::spawn(async move {
                read_until_killed(&url, &org.master, &chats, cursors, &stop).await
            })
        };

        // A random kill point (see above), not a synchronisation.
        tokio::time::sleep(delay).await;
        if let Err(e) = relay.kill() {
            panic!("could not kill the relay (pid {}): {e}", relay.id());
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);

        for task in tasks {
            let Ok(Ok((w, outcome))) = tokio::time::timeout(STEP, task).await else {
                panic!("a writer did not stop after the kill");
            };
            self.writers[w].next_counter = outcome.next_counter;
            for (seq, id) in outcome.acked {
                self.ack(w, seq, id);
            }
            if let Some(err) = outcome.refused {
                self.report.fail(format!("writer {w}: {err}"));
            }
            if let Some(env) = outcome.unanswered {
                self.report.unacked += 1;
                self.writers[w].unanswered.push(env);
            }
        }
        let Ok(Ok(reads)) = tokio::time::timeout(STEP, reader).await else {
            panic!("the reader did not stop after the kill");
        };
        for (c, seq, id) in reads {
            self.report.reads += 1;
            self.checks[c].reads.insert(seq, id);
        }
    }
}

/// What one writer did in one cycle.
struct WriteOutcome {
    next_counter: u64,
    acked: Vec<(u64, MsgId)>,
    unanswered: Option<Envelope>,
    refused: Option<String>,
}

async fn write_until_killed(
    url: &str,
    me: &Identity,
    chat: &Chat,
    first: u64,
    limit: u64,
    stop: &std::sync::atomic::AtomicBool,
) -> WriteOutcome {
    let mut out = WriteOutcome {
        next_counter: first,
        acked: Vec::new(),
        unanswered: None,
        refused: None,
    };
    let Ok(mut conn) = Conn::login(url, me).await else {
        return out;
    };
    for _ in 0..limit {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            // Another node was killed: this cycle is over.
            break;
        }
        let counter = out.next_counter;
        let env = chat.seal(me, counter, &format!("crash test message {counter}"));
        let id = msg_id(&env);
        out.next_counter += 1;
        match conn.request(Request::Send(env.clone())).await {
            Ok(Response::Stored { seq, .. }) => out.acked.push((seq, id)),
            Ok(other) => {
                out.refused = Some(format!("send of counter {counter} answered {other:?}"));
                return out;
            }
            Err(_) => {
                // The relay died with this send in flight: it may or may not be stored.
                out.unanswered = Some(env);
                return out;
            }
        }
    }
    out
}

async fn read_until_killed(
    url: &str,
    master: &Identity,
    chats: &[Chat],
    mut cursors: Vec<u64>,
    stop: &std::sync::atomic::AtomicBool,
) -> Vec<(usize, u64, MsgId)> {
    let mut reads = Vec::new();
    let Ok(mut conn) = Conn::login(url, master).await else {
        return reads;
    };
    // Bounded: the relay is killed within the cycle; this only guards against a bug.
    for _ in 0..100_000 {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return reads;
        }
        for (c, chat) in chats.iter().enumerate() {
            let answer = conn
                .request(Request::History {
                    conversation: chat.id,
                    after: cursors[c],
                    limit: PAGE,
                })
                .await;
            match answer {
                Ok(Response::Items { items, .. }) => {
                    for s in items {
                        cursors[c] = s.seq;
                        if let Item::Message(env) = &s.item {
                            reads.push((c, s.seq, msg_id(env)));
                        }
                    }
                }
                _ => return reads,
            }
        }
    }
    reads
}
