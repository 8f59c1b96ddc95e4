//! The client-level world: a real relay, accounts of the client library (`sealdesk_client`)
//! in temporary homes, the test org [`ORG`] and, for the hostile tests, the intercepting
//! [`Proxy`] in front of the relay. [`World::serving`] runs a master's unlock (or anything else)
//! while trustees serve release requests as they arrive — waiting for the request's push, not
//! for time — and returns what each trustee did.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use futures_util::future::join_all;
use sealdesk_client::{
    Account, Client, ClientError,
    account::LogEntry,
    client::{Event, HistoryLine, OrgSpec},
    vault::KdfParams,
};
use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    keys::IdentityKeys,
    wire::{Frame, Request},
};
use sealdesk_server::{
    RunningRelay,
    config::RelayConfig,
    store::{Collection, SledStore, Store},
};
use tempfile::TempDir;

use crate::{proxy::Proxy, wait::STEP};

/// Argon2 parameters cheap enough for tests (1 MiB, one pass), spelled out here so that this
/// support library needs none of the client's test hooks (the tests themselves enable them).
pub const FAST_KDF: KdfParams = KdfParams {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

/// The passphrase of every test account.
pub const PASS: &str = "correct horse battery staple";
/// The org of [`World::org`].
pub const ORG: &str = "acme";
/// Its master account.
pub const MASTER: &str = "acme-owner";

/// How a client reaches the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// Directly.
    Relay,
    /// Through the hostile proxy (a world made with [`World::with_proxy`]).
    Proxy,
}

/// A real relay, optionally the proxy in front of it, and a directory for the relay's data
/// (`relay/`) and the accounts' homes (`homes/NAME`).
pub struct World {
    /// The relay.
    pub relay: RunningRelay,
    /// Its WebSocket URL.
    pub url: String,
    /// Everything lives here.
    pub dir: TempDir,
    proxy: Option<Proxy>,
}

impl World {
    /// A relay with the default configuration, no proxy.
    pub async fn new() -> Self {
        Self::start(None, false, |_| {}).await
    }

    /// A relay whose configuration `tweak` changes (its limits, say), no proxy.
    pub async fn with_config(tweak: impl FnOnce(&mut RelayConfig)) -> Self {
        Self::start(None, false, tweak).await
    }

    /// A relay with the hostile proxy in front of it.
    pub async fn with_proxy() -> Self {
        Self::start(None, true, |_| {}).await
    }

    /// [`World::with_proxy`] whose relay's identity (its log key) is `keys`, written into its
    /// data directory before it starts, as the operator who holds that directory can.
    pub async fn with_relay_keys(keys: &IdentityKeys) -> Self {
        Self::start(Some(keys), true, |_| {}).await
    }

    async fn start(
        relay_keys: Option<&IdentityKeys>,
        proxy: bool,
        tweak: impl FnOnce(&mut RelayConfig),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let data = dir.path().join("relay");
        if let Some(k) = relay_keys {
            let store = SledStore::open(&data).unwrap();
            store
                .put(
                    Collection::Meta,
                    b"relay-identity",
                    k.to_secret_bytes().as_slice(),
                )
                .unwrap();
            store.flush().unwrap();
        }
        let mut cfg = RelayConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data,
            ..RelayConfig::default()
        };
        crate::pg::use_test_store(&mut cfg);
        tweak(&mut cfg);
        let relay = tokio::time::timeout(STEP, sealdesk_server::spawn(cfg))
            .await
            .expect("relay start timed out")
            .expect("relay starts");
        let url = relay.ws_url();
        let proxy = if proxy {
            Some(Proxy::start(&url).await)
        } else {
            None
        };
        Self {
            relay,
            url,
            dir,
            proxy,
        }
    }

    /// The proxy.
    ///
    /// # Panics
    ///
    /// If the world has none (use [`World::with_proxy`]).
    pub fn proxy(&self) -> &Proxy {
        self.proxy.as_ref().expect("a world with a proxy")
    }

    /// Asserts that `account` never sealed two messages under one (epoch, counter), refused by
    /// the relay or not: read from what it sent through the proxy, so a second ciphertext under
    /// one key and nonce is caught even when the relay refused it (`counter_reused`).
    ///
    /// # Panics
    ///
    /// On such a pair, naming it; if the world has no proxy.
    ///
    /// Returns the (epoch, counter) pairs `account` sealed under, each once.
    pub fn assert_no_counter_sealed_twice(&self, account: &str) -> HashSet<(u32, u64)> {
        let mut sealed = HashSet::new();
        for f in self.proxy().sent_by(account) {
            if let Frame::Request {
                body: Request::Send(env),
                ..
            } = f
            {
                assert!(
                    sealed.insert((env.header.epoch, env.header.counter)),
                    "epoch {} counter {} sealed twice",
                    env.header.epoch,
                    env.header.counter
                );
            }
        }
        sealed
    }

    /// The home directory of account `name`.
    pub fn home(&self, name: &str) -> PathBuf {
        self.dir.path().join("homes").join(name)
    }

    /// The URL a client uses to reach the relay `via`.
    pub fn url_via(&self, via: Via) -> String {
        match via {
            Via::Relay => self.url.clone(),
            Via::Proxy => self.proxy().url(),
        }
    }

    /// Copies the home of account `from` to `to`, as a second device of the same account
    /// (the same keys, a vault of its own from here on).
    pub fn copy_home(&self, from: &str, to: &str) {
        copy_dir(&self.home(from), &self.home(to));
    }

    /// Creates, connects (directly) and registers an account.
    pub async fn user(&self, name: &str, role: Role) -> Client {
        self.user_via(name, role, Via::Relay).await
    }

    /// Creates, connects `via` and registers an account.
    pub async fn user_via(&self, name: &str, role: Role, via: Via) -> Client {
        let account = Account::create(&self.home(name), PASS, FAST_KDF, name, role).unwrap();
        let mut c = Client::connect(account, &self.url_via(via)).await.unwrap();
        c.register().await.unwrap();
        c
    }

    /// Reconnects an account from its home, directly.
    pub async fn reopen(&self, name: &str) -> Client {
        self.reopen_via(name, Via::Relay).await
    }

    /// Reconnects an account from its home, `via`.
    pub async fn reopen_via(&self, name: &str, via: Via) -> Client {
        let account = Account::open(&self.home(name), PASS).unwrap();
        Client::connect(account, &self.url_via(via)).await.unwrap()
    }

    /// Org [`ORG`]: master [`MASTER`], trustees `trustee-1..3` (2 of 3), arbiters
    /// `arbiter-1..3` (2 of 3), and the named agents, certified and left connected (directly).
    pub async fn org(&self, agents: &[&str], rotate: Option<u32>) -> Org {
        let mut master = self.org_members(rotate).await;
        let mut agent_clients = Vec::new();
        for a in agents {
            agent_clients.push(self.user(a, Role::Agent).await);
            master.add_agent(ORG, a).await.unwrap();
        }
        let fingerprint = master.account().fingerprint().to_string();
        Org {
            master,
            agents: agent_clients,
            fingerprint,
        }
    }

    /// [`World::org`] with everyone but the master disconnected afterwards (reopen them with
    /// the path the test needs); returns the master's client.
    pub async fn org_master(&self, agents: &[&str], rotate: Option<u32>) -> Client {
        let mut master = self.org_members(rotate).await;
        for a in agents {
            self.user(a, Role::Agent).await.close().await;
            master.add_agent(ORG, a).await.unwrap();
        }
        master
    }

    /// The master, trustees and arbiters, and the org created with [`spec`].
    async fn org_members(&self, rotate: Option<u32>) -> Client {
        let mut master = self.user(MASTER, Role::Master).await;
        for i in 1..=3 {
            self.user(&format!("trustee-{i}"), Role::Trustee)
                .await
                .close()
                .await;
            self.user(&format!("arbiter-{i}"), Role::Arbiter)
                .await
                .close()
                .await;
        }
        master.create_org(&spec(rotate, None)).await.unwrap();
        master
    }

    /// Runs `work` (typically a master's `unlock`) while the trustees `trustees`, connected
    /// `via`, serve release requests: each answers what is pending when it connects and then
    /// every request pushed to it, until `work` ends. Returns `work`'s output and each
    /// trustee's outcomes in order (`"released"`, `"already released"`, `"refused: …"`).
    ///
    /// # Panics
    ///
    /// If a trustee's daemon fails (a relay or storage error), naming the trustee.
    pub async fn serving<T>(
        &self,
        trustees: &[&str],
        via: Via,
        work: impl Future<Output = T>,
    ) -> (T, Vec<Vec<String>>) {
        let mut clients = Vec::new();
        for name in trustees {
            clients.push(self.reopen_via(name, via).await);
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let serves = clients.iter_mut().zip(trustees).map(|(client, name)| {
            let mut stopped = stopped.clone();
            async move {
                let mut outcomes = Vec::new();
                client
                    .trustee_serve(
                        async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        },
                        |o| outcomes.push(o.outcome.clone()),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{name} could not serve: {e}"));
                outcomes
            }
        });
        let work = async {
            let out = work.await;
            let _ = stop.send(true);
            out
        };
        let (out, outcomes) = tokio::join!(work, join_all(serves));
        // What `trustee serve`'s witness tick does within a minute: each trustee cosigns the
        // log as it now stands, so the entries of the last releasers are witnessed too. A
        // trustee shown a log it must not cosign (a hostile test's fork) just does not.
        for mut c in clients {
            let _ = c.witness_cosign().await;
            c.close().await;
        }
        (out, outcomes)
    }

    /// The trustees `names` each cosign the log's head once, through the relay (what `trustee
    /// serve` does every minute), and return each one's result (an error, too, for a trustee
    /// whose vault another client of the test holds open).
    pub async fn witness(&self, names: &[&str]) -> Vec<Result<(), ClientError>> {
        let mut out = Vec::new();
        for name in names {
            let account = match Account::open(&self.home(name), PASS) {
                Ok(a) => a,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            match Client::connect(account, &self.url_via(Via::Relay)).await {
                Ok(mut t) => {
                    out.push(t.witness_cosign().await.map(|_| ()));
                    t.close().await;
                }
                Err(e) => out.push(Err(e)),
            }
        }
        out
    }
}

/// The org of [`World::org`], its master and agents connected.
pub struct Org {
    /// The master.
    pub master: Client,
    /// The agents, in the order named.
    pub agents: Vec<Client>,
    /// The master's fingerprint.
    pub fingerprint: String,
}

impl Org {
    /// Opens a conversation with [`ORG`] as `customer`, pinning the master's fingerprint as a
    /// customer who was given it does; returns its id.
    pub async fn open_pinned(&self, customer: &mut Client) -> ConversationId {
        customer
            .open_conversation(ORG, Some(&self.fingerprint))
            .await
            .unwrap()
            .conversation
    }

    /// Closes every client of the org: the agents, then the master.
    pub async fn close(self) {
        for a in self.agents {
            a.close().await;
        }
        self.master.close().await;
    }
}

/// A fresh [`World`] with the org [`ORG`] (its agent alice) and a conversation the customer
/// carol opened with it, every client still connected: the start of the tests that then drive
/// `sealdesk` processes on these homes ([`OpenedChat::close`]).
pub struct OpenedChat {
    /// The relay and the accounts' homes.
    pub w: World,
    /// The org, its master and alice connected.
    pub org: Org,
    /// The customer, connected.
    pub carol: Client,
    /// carol's conversation with the org.
    pub conv: ConversationId,
}

impl OpenedChat {
    /// Starts the world, the org and carol, and opens carol's conversation.
    pub async fn new() -> Self {
        let w = World::new().await;
        let org = w.org(&["alice"], None).await;
        let mut carol = w.user("carol", Role::Customer).await;
        let conv = open_chat(&mut carol).await;
        Self {
            w,
            org,
            carol,
            conv,
        }
    }

    /// Closes every client (carol's, then the org's), leaving the homes to other processes;
    /// returns the world and the conversation's id as the command line spells it.
    pub async fn close(self) -> (World, String) {
        self.carol.close().await;
        self.org.close().await;
        (self.w, self.conv.to_string())
    }
}

/// The [`OrgSpec`] of [`ORG`]: trustees `trustee-1..3` (2 of 3), arbiters `arbiter-1..3` (2 of
/// 3), with a rotation limit and retention if given.
pub fn spec(rotate: Option<u32>, retention_days: Option<u64>) -> OrgSpec {
    OrgSpec {
        name: ORG.into(),
        trustees: (1..=3).map(|i| format!("trustee-{i}")).collect(),
        trustee_threshold: 2,
        arbiters: (1..=3).map(|i| format!("arbiter-{i}")).collect(),
        arbiter_threshold: 2,
        retention_days,
        rotate_messages: rotate,
        no_history_handoff: false,
    }
}

/// Checks [`World::serving`]'s outcomes: each trustee released exactly once and refused
/// nothing (a request it had already answered may come back as "already released").
pub fn released_once(outcomes: &[Vec<String>]) {
    for o in outcomes {
        assert_eq!(
            o.iter().filter(|x| *x == "released").count(),
            1,
            "{outcomes:?}"
        );
        assert!(
            o.iter().all(|x| x == "released" || x == "already released"),
            "{outcomes:?}"
        );
    }
}

/// Checks that `master` holds no transcript of `conv`: the error is exactly
/// [`sealdesk_client::escrow::not_released`]'s, not any other failure.
pub fn assert_nothing_released(master: &Client, conv: &ConversationId) {
    match master.transcript(conv) {
        Ok(t) => panic!("a transcript of {} messages was released", t.messages.len()),
        Err(e) => assert_eq!(
            format!("{e:?}"),
            format!("{:?}", sealdesk_client::escrow::not_released(conv)),
        ),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Handles `c`'s pushes until one yields an event `pred` accepts, and returns it; panics if
/// none comes within [`STEP`] of the last push.
pub async fn events_until(c: &mut Client, pred: impl Fn(&Event) -> bool) -> Event {
    loop {
        let push = tokio::time::timeout(STEP, c.session().next_push())
            .await
            .expect("the awaited event never came")
            .expect("the session closed");
        if let Ok(events) = c.handle_push(push).await.unwrap()
            && let Some(e) = events.into_iter().find(|e| pred(e))
        {
            return e;
        }
    }
}

/// Opens a conversation with [`ORG`] as `customer`; returns its id.
pub async fn open_chat(customer: &mut Client) -> ConversationId {
    customer
        .open_conversation(ORG, None)
        .await
        .unwrap()
        .conversation
}

/// The org of [`World::org_master`] with agent alice (its clients closed), and carol, a
/// customer talking through the proxy, who opened a conversation, sent `lines` and caught up:
/// the set-up of the tests where a hostile relay pages her history. Her client, the
/// conversation and her cursor in it.
pub async fn carol_caught_up(w: &World, lines: &[&str]) -> (Client, ConversationId, u64) {
    drop(w.org_master(&["alice"], None).await.close().await);
    let mut carol = w.user_via("carol", Role::Customer, Via::Proxy).await;
    let conv = open_chat(&mut carol).await;
    for line in lines {
        carol.send_text(&conv, line).await.unwrap();
    }
    carol.sync_all().await.unwrap();
    let cursor = carol.meta(&conv).unwrap().cursor;
    (carol, conv, cursor)
}

/// The customer carol on two devices of [`carol_on_two_devices`].
pub struct TwoDevices {
    /// Her first device, `carol` (the laptop).
    pub laptop: Client,
    /// Her second, `carol-phone`: a copy of the laptop's home.
    pub phone: Client,
    /// The conversation the laptop opened.
    pub conv: ConversationId,
}

/// The org of [`World::org_master`] with agent alice (its clients closed, epochs of `rotate`
/// messages) and the customer carol on two devices, both through the proxy: her laptop opened
/// a conversation and sent "first"; her phone is a copy of the laptop's home taken then (epoch
/// 0 and that line: the same keys and counters), connected and synced. The set-up of the tests
/// of one account's two devices.
pub async fn carol_on_two_devices(w: &World, rotate: Option<u32>) -> TwoDevices {
    w.org_master(&["alice"], rotate).await.close().await;
    let mut laptop = w.user_via("carol", Role::Customer, Via::Proxy).await;
    let conv = open_chat(&mut laptop).await;
    laptop.send_text(&conv, "first").await.unwrap();
    w.copy_home("carol", "carol-phone");
    let mut phone = w.reopen_via("carol-phone", Via::Proxy).await;
    phone.sync_all().await.unwrap();
    TwoDevices {
        laptop,
        phone,
        conv,
    }
}

/// The verified messages of a conversation, as "sender: text", in timeline order.
pub fn texts(c: &Client, conv: &ConversationId) -> Vec<String> {
    c.history(conv)
        .unwrap()
        .lines
        .into_iter()
        .filter_map(|l| match l {
            HistoryLine::Item {
                entry: LogEntry::Message { sender, text, .. },
                ..
            } => Some(format!("{sender}: {text}")),
            _ => None,
        })
        .collect()
}
