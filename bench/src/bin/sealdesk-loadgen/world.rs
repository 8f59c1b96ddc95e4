//! The people and conversations of a run, and setting them up on each system.
//!
//! One org ("acme") with a master, 3 escrow trustees (2-of-3), 3 arbiters (2-of-3), `A` agents
//! and `C` customers; customer `i` has conversation `i`. On Sealdesk the full flow runs:
//! register, publish the policy and the agent certificates, open each conversation (the relay
//! assigns an agent), store epoch 0. On the baseline, each agent joins the rooms of its
//! conversations and each customer publishes epoch 0 to its room. Either way the agent's
//! client verifies and opens epoch 0 (HPKE, commitment, escrow recomputed) before any load.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, RwLock, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::{SinkExt as _, StreamExt as _, stream::SplitSink};
use rand::{SeedableRng as _, rngs::ChaCha20Rng};
use sealdesk_bench::baseline::join_frame;
use sealdesk_protocol::{
    card::{IdentityCard, Role, VerifiedCard},
    epoch::{EpochRecord, NewEpoch, VerifiedEpoch},
    ids::ConversationId,
    message::EpochKeys,
    policy::{AgentCertificate, OrgPolicy, PolicyParams, VerifiedPolicy},
    secret::EpochSecret,
    wire::{Request, Response},
};
use tokio::{sync::Semaphore, task::JoinHandle};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    child::Kind,
    client::{self, Ws},
    clock::unix_now,
    load::{Codec, ConvShared, Placement, Receiver, Registry, Sender, Stats},
    party::Party,
};

/// Read buffer of load connections (messages are ~1.3 KiB; pushes may come in bursts).
const LOAD_READ_BUFFER: usize = 64 * 1024;
/// Customers set up at once.
const SETUP_CONCURRENCY: usize = 32;
/// Agent certificates are issued for this long.
const CERT_VALIDITY: u64 = 30 * 86_400;

/// The org and its people.
pub struct Org {
    /// The master account.
    pub master: Party,
    /// The master-signed policy (default parameters: rotation every 1,000 messages).
    pub policy: Arc<VerifiedPolicy>,
    /// Agents.
    pub agents: Vec<Arc<Party>>,
    /// Customers; customer `i` owns conversation `i`.
    pub customers: Vec<Arc<Party>>,
    /// Conversation ids.
    pub conversations: Vec<ConversationId>,
}

impl Org {
    /// Builds an org with `agents` agents and `customers` customers from `seed`.
    ///
    /// # Errors
    /// A protocol error building cards or the policy (should not happen).
    pub fn new(seed: u64, agents: usize, customers: usize) -> Result<Self> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let master = Party::new(&mut rng, "acme-master", Role::Master)?;
        let mut cards = |prefix: &str, role: Role| -> Result<Vec<IdentityCard>> {
            (1..=3)
                .map(|i| {
                    Ok(Party::new(&mut rng, &format!("{prefix}-{i}"), role)?
                        .card
                        .into_card())
                })
                .collect()
        };
        let trustees = cards("trustee", Role::Trustee)?;
        let arbiters = cards("arbiter", Role::Arbiter)?;
        let params = PolicyParams::new("acme", trustees, 2, arbiters, 2);
        let policy = OrgPolicy::issue(
            &master.keys,
            &master.card,
            params,
            unix_now().saturating_sub(60),
        )?;
        let agents = (0..agents)
            .map(|i| {
                Ok(Arc::new(Party::new(
                    &mut rng,
                    &format!("agent-{i}"),
                    Role::Agent,
                )?))
            })
            .collect::<Result<Vec<_>>>()?;
        let customers = (0..customers)
            .map(|i| {
                Ok(Arc::new(Party::new(
                    &mut rng,
                    &format!("customer-{i}"),
                    Role::Customer,
                )?))
            })
            .collect::<Result<Vec<_>>>()?;
        let conversations = (0..customers.len())
            .map(|_| ConversationId::random(&mut rng))
            .collect();
        Ok(Self {
            master,
            policy: Arc::new(policy),
            agents,
            customers,
            conversations,
        })
    }
}

/// One system's clients, connected and ready to load.
pub struct Fleet {
    /// Which system.
    pub kind: Kind,
    /// One sender per conversation (moved into tasks during a run, then back).
    pub senders: Vec<Sender>,
    /// Per-conversation shared state.
    pub convs: Vec<Arc<ConvShared>>,
    /// The clients' statistics.
    pub stats: Arc<Stats>,
    /// The window each conversation gets in closed-loop runs.
    pub window: u32,
    /// Agents' sending halves, kept so their connections stay open.
    agent_sinks: Vec<SplitSink<Ws, Message>>,
    readers: Vec<JoinHandle<()>>,
}

impl Fleet {
    /// Closes every connection and waits (bounded) for the readers to finish.
    pub async fn close(self) {
        for mut s in self
            .senders
            .into_iter()
            .map(|s| s.sink)
            .chain(self.agent_sinks)
        {
            let _ = tokio::time::timeout(Duration::from_secs(2), s.close()).await;
        }
        for r in self.readers {
            // A reader that did not see the close in time is abandoned with the runtime.
            let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
        }
    }
}

fn registry(org: &Org, window: u32) -> (Arc<Registry>, Vec<Arc<ConvShared>>) {
    let convs: Vec<Arc<ConvShared>> = org
        .conversations
        .iter()
        .map(|c| Arc::new(ConvShared::new(*c, window)))
        .collect();
    let map: HashMap<_, _> = convs.iter().map(|c| (c.id, c.clone())).collect();
    (Arc::new(RwLock::new(map)), convs)
}

/// Waits until every conversation's receiver has opened epoch 0.
async fn wait_opened(convs: &[Arc<ConvShared>], stats: &Stats) -> Result<()> {
    let start = Instant::now();
    while convs.iter().any(|c| c.opened.load(Ordering::SeqCst) == 0) {
        if start.elapsed() > client::STEP {
            bail!(
                "receivers did not open every first epoch in time (first error: {:?})",
                stats.first_error()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Sets up the Sealdesk side: registrations, policy, certificates, conversations, epoch 0.
///
/// # Errors
/// Any refused request or failed connection.
pub async fn setup_sealdesk(org: &Arc<Org>, addr: SocketAddr, window: u32) -> Result<Fleet> {
    setup_sealdesk_on(org, &[addr], window).await
}

/// [`setup_sealdesk`] on the nodes of a cluster (one node: the same as a single relay).
///
/// Agent `j` connects to node `j mod N`. Conversation `i` is opened on node `i mod N`, whose
/// relay assigns one of its own online agents; its customer then sends from node
/// `(agent's node + i) mod N` (reconnecting there when that is another node), so one
/// conversation in `N` keeps both members on one node and the rest are cross-node, spread
/// evenly over the nodes. Each conversation's [`Placement`] is recorded.
///
/// # Errors
/// Any refused request or failed connection.
pub async fn setup_sealdesk_on(org: &Arc<Org>, nodes: &[SocketAddr], window: u32) -> Result<Fleet> {
    let Some(&addr) = nodes.first() else {
        bail!("no relay node to set up on");
    };
    let nodes: Arc<[SocketAddr]> = nodes.into();
    let kind = Kind::Sealdesk;
    let path = kind.ws_path();
    let stats = Arc::new(Stats::default());
    let (reg, convs) = registry(org, window);
    let mut conn_index = 0usize;
    let mut next = || {
        conn_index += 1;
        conn_index
    };

    let mut master = client::connect(addr, path, next(), LOAD_READ_BUFFER).await?;
    client::authenticate(&mut master, &org.master.keys, &org.master.card).await?;
    client::request(&mut master, 1, Request::Register).await?;
    client::request(
        &mut master,
        2,
        Request::PublishPolicy(org.policy.policy().clone()),
    )
    .await
    .context("publishing the policy")?;

    let mut agent_sinks = Vec::new();
    let mut readers = Vec::new();
    let mut agent_nodes = HashMap::new();
    for (i, agent) in org.agents.iter().enumerate() {
        let node = i % nodes.len();
        agent_nodes.insert(agent.card.signing_key, node);
        let mut ws = client::connect(nodes[node], path, next(), LOAD_READ_BUFFER).await?;
        client::authenticate(&mut ws, &agent.keys, &agent.card).await?;
        client::request(&mut ws, 1, Request::Register)
            .await
            .context("registering an agent")?;
        let cert = AgentCertificate::issue(
            &org.master.keys,
            &org.policy,
            &agent.card,
            unix_now().saturating_sub(60),
            CERT_VALIDITY,
        )?;
        client::request(
            &mut master,
            10 + i as u64,
            Request::PublishCertificate(cert),
        )
        .await
        .context("publishing an agent certificate")?;
        let (sink, stream) = ws.split();
        agent_sinks.push(sink);
        let rx = Receiver::new(
            kind,
            agent.clone(),
            org.policy.clone(),
            reg.clone(),
            stats.clone(),
        );
        readers.push(tokio::spawn(rx.run(stream)));
    }
    let _ = master.close(None).await;

    let agent_nodes = Arc::new(agent_nodes);
    // A cluster opens one conversation at a time: opens on several nodes at once have made a
    // node fail a batch ("another relay node took a key this batch inserted") and stop
    // answering, a relay defect reported with the figures, not the load this measures.
    let concurrency = if nodes.len() > 1 {
        1
    } else {
        SETUP_CONCURRENCY
    };
    let limit = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::new();
    for (i, conv) in convs.iter().enumerate() {
        let (org, reg, stats, conv, limit) = (
            org.clone(),
            reg.clone(),
            stats.clone(),
            conv.clone(),
            limit.clone(),
        );
        let (nodes, agent_nodes) = (nodes.clone(), agent_nodes.clone());
        let index = next();
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let place = Place {
                nodes: &nodes,
                agent_nodes: &agent_nodes,
            };
            open_sealdesk_conversation(&org, i, place, index, conv, reg, stats).await
        }));
    }
    let mut senders = Vec::new();
    for t in tasks {
        let (sender, reader) = t.await??;
        senders.push(sender);
        readers.push(reader);
    }
    wait_opened(&convs, &stats).await?;
    Ok(Fleet {
        kind,
        senders,
        convs,
        stats,
        window,
        agent_sinks,
        readers,
    })
}

/// The nodes of a setup, and which node each agent is connected to.
struct Place<'a> {
    nodes: &'a [SocketAddr],
    agent_nodes: &'a HashMap<sealdesk_protocol::keys::SigningPublicKey, usize>,
}

async fn open_sealdesk_conversation(
    org: &Org,
    i: usize,
    place: Place<'_>,
    index: usize,
    conv: Arc<ConvShared>,
    reg: Arc<Registry>,
    stats: Arc<Stats>,
) -> Result<(Sender, JoinHandle<()>)> {
    let customer = org.customers[i].clone();
    let n = place.nodes.len().max(1);
    let open_node = i % n;
    let addr = place.nodes[open_node];
    let mut ws = client::connect(addr, Kind::Sealdesk.ws_path(), index, LOAD_READ_BUFFER).await?;
    client::authenticate(&mut ws, &customer.keys, &customer.card).await?;
    client::request(&mut ws, 1, Request::Register)
        .await
        .context("registering a customer")?;
    let opened = client::request(
        &mut ws,
        2,
        Request::OpenConversation {
            org: org.policy.org.clone(),
            conversation: conv.id,
        },
    )
    .await
    .context("opening a conversation")?;
    let Response::Opened {
        agent, certificate, ..
    } = opened
    else {
        bail!("expected Opened, got {opened:?}");
    };
    // The client believes only what verifies against the pinned policy.
    let agent_card = certificate.verify(&org.policy, unix_now())?;
    if agent_card.card() != &agent {
        bail!("the relay's agent card does not match its certificate");
    }
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed_0000 + i as u64);
    let (epoch, k) = first_epoch(&mut rng, org, &customer, &agent_card, conv.id)?;
    let stored = client::request(&mut ws, 3, Request::PutEpoch(epoch.record().clone()))
        .await
        .context("storing epoch 0")?;
    if !matches!(stored, Response::Stored { .. }) {
        bail!("expected Stored, got {stored:?}");
    }
    if n > 1 {
        let agent_node = *place
            .agent_nodes
            .get(&agent.signing_key)
            .ok_or_else(|| anyhow!("the relay assigned an agent the load generator has not"))?;
        let customer_node = (agent_node + i) % n;
        if customer_node != open_node {
            let _ = ws.close(None).await;
            ws = client::connect(
                place.nodes[customer_node],
                Kind::Sealdesk.ws_path(),
                index,
                LOAD_READ_BUFFER,
            )
            .await?;
            client::authenticate(&mut ws, &customer.keys, &customer.card).await?;
        }
        conv.set_placement(if customer_node == agent_node {
            Placement::SameNode
        } else {
            Placement::CrossNode
        });
    }
    let (sink, stream) = ws.split();
    let rx = Receiver::new(
        Kind::Sealdesk,
        customer.clone(),
        org.policy.clone(),
        reg,
        stats.clone(),
    );
    let reader = tokio::spawn(rx.run(stream));
    let sender = new_sender(
        org,
        SenderParts {
            sink,
            codec: Codec::Sealdesk,
            customer,
            agent_card,
            conv,
            epoch,
            k: &k,
            rng,
            stats,
        },
    );
    Ok((sender, reader))
}

fn first_epoch(
    rng: &mut ChaCha20Rng,
    org: &Org,
    customer: &Party,
    agent: &VerifiedCard,
    conversation: ConversationId,
) -> Result<(VerifiedEpoch, EpochSecret)> {
    let members = [customer.card.clone(), agent.clone()];
    Ok(EpochRecord::create(
        rng,
        &customer.keys,
        &org.policy,
        NewEpoch {
            conversation,
            epoch: 0,
            members: &members,
            previous: None,
            now: unix_now(),
        },
    )?)
}

/// What a conversation's sender is made of, once its connection is up and epoch 0 is open.
struct SenderParts<'a> {
    /// The write half of the customer's connection.
    sink: SplitSink<Ws, Message>,
    /// Sealdesk or baseline framing.
    codec: Codec,
    /// The customer who sends.
    customer: Arc<Party>,
    /// The agent's verified card (the other member of each epoch).
    agent_card: VerifiedCard,
    /// The conversation's shared state.
    conv: Arc<ConvShared>,
    /// Epoch 0, verified.
    epoch: VerifiedEpoch,
    /// Its secret.
    k: &'a EpochSecret,
    /// The sender's generator (seals, later epochs).
    rng: ChaCha20Rng,
    /// The run's counters.
    stats: Arc<Stats>,
}

/// A sender for `org`, at counter 0 of epoch 0.
fn new_sender(org: &Org, p: SenderParts<'_>) -> Sender {
    Sender {
        sink: p.sink,
        codec: p.codec,
        customer: p.customer,
        agent_card: p.agent_card,
        policy: org.policy.clone(),
        conv: p.conv,
        keys: EpochKeys::new(p.k, &p.epoch),
        epoch: p.epoch,
        counter: 0,
        last_id: 0,
        rng: p.rng,
        stats: p.stats,
        presealed: None,
    }
}

/// Sets up the baseline side: agents join their conversations' rooms, customers publish
/// epoch 0. Conversation `i` is served by agent `i mod A`, the same spread the relay's
/// least-loaded assignment gives.
///
/// # Errors
/// A failed connection, or a receiver that never opens epoch 0.
pub async fn setup_baseline(org: &Arc<Org>, addr: SocketAddr, window: u32) -> Result<Fleet> {
    let kind = Kind::Baseline;
    let path = kind.ws_path();
    let stats = Arc::new(Stats::default());
    let (reg, convs) = registry(org, window);
    let a = org.agents.len().max(1);
    let mut agent_sinks = Vec::new();
    let mut readers = Vec::new();
    for (j, agent) in org.agents.iter().enumerate() {
        let mut ws = client::connect(addr, path, 1 + j, LOAD_READ_BUFFER).await?;
        for c in convs.iter().skip(j).step_by(a) {
            ws.send(Message::Binary(join_frame(&c.id.to_bytes()).into()))
                .await?;
        }
        let (sink, stream) = ws.split();
        agent_sinks.push(sink);
        let rx = Receiver::new(
            kind,
            agent.clone(),
            org.policy.clone(),
            reg.clone(),
            stats.clone(),
        );
        readers.push(tokio::spawn(rx.run(stream)));
    }
    let mut senders = Vec::new();
    for (i, conv) in convs.iter().enumerate() {
        let customer = org.customers[i].clone();
        let agent = org
            .agents
            .get(i % a)
            .ok_or_else(|| anyhow!("the baseline needs at least one agent"))?;
        let mut ws = client::connect(addr, path, 1 + a + i, LOAD_READ_BUFFER).await?;
        ws.send(Message::Binary(join_frame(&conv.id.to_bytes()).into()))
            .await?;
        let mut rng = ChaCha20Rng::seed_from_u64(0xba5e_0000 + i as u64);
        let (epoch, k) = first_epoch(&mut rng, org, &customer, &agent.card, conv.id)?;
        let (sink, stream) = ws.split();
        let rx = Receiver::new(
            kind,
            customer.clone(),
            org.policy.clone(),
            reg.clone(),
            stats.clone(),
        );
        readers.push(tokio::spawn(rx.run(stream)));
        let codec = Codec::new(kind, &conv.id);
        senders.push(new_sender(
            org,
            SenderParts {
                sink,
                codec,
                customer,
                agent_card: agent.card.clone(),
                conv: conv.clone(),
                epoch,
                k: &k,
                rng,
                stats: stats.clone(),
            },
        ));
    }
    // The relay has no acks: an agent's JOIN may still be in flight when epoch 0 is published,
    // so publish it again until the agent has opened it (its receiver ignores duplicates).
    let start = Instant::now();
    loop {
        let mut pending = 0;
        for s in senders.iter_mut() {
            if s.conv.opened.load(Ordering::SeqCst) == 0 {
                pending += 1;
                let frame = s.codec.epoch(1, s.epoch.record().clone())?;
                s.sink.send(Message::Binary(frame.into())).await?;
            }
        }
        if pending == 0 {
            break;
        }
        if start.elapsed() > client::STEP {
            bail!(
                "baseline receivers did not open every first epoch (first error: {:?})",
                stats.first_error()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_opened(&convs, &stats).await?;
    Ok(Fleet {
        kind,
        senders,
        convs,
        stats,
        window,
        agent_sinks,
        readers,
    })
}
