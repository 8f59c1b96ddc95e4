//! Wire-level fixtures: an [`Org`] (master, trustees, arbiters, agents, customers, its policy
//! and certificates) registered and published on a relay, and a [`Chat`] — an opened
//! conversation with its first epoch stored — that seals and opens messages.

use rand::rngs::ChaCha20Rng;
use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent, ReleaseBasis},
    block::{Block, BlockReason},
    card::Role,
    epoch::{EpochRecord, NewEpoch, VerifiedEpoch},
    ids::ConversationId,
    keys::SigningPublicKey,
    message::{ContentKind, Envelope, EpochKeys, Opened, ReplayWindows},
    policy::{AgentCertificate, OrgPolicy, PolicyParams, VerifiedPolicy},
    release::{self, ApprovedRelease, Justification, ReleaseRequest, TrusteeView},
    secret::EpochSecret,
    wire::{PendingRelease, Request, Response},
};

use crate::{
    identity::{Identity, now, rng},
    raw::RawClient,
};

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
        org.publish_policy_and_certificates(url).await;
        org
    }

    /// The master (registered first if need be) publishes the policy and the agents'
    /// certificates through the relay at `url`; the other accounts are left as they are.
    pub async fn publish_policy_and_certificates(&self, url: &str) {
        let mut master = RawClient::login(url, &self.master).await;
        master
            .ok(Request::PublishPolicy(self.policy.policy().clone()))
            .await;
        for cert in &self.certificates {
            master.ok(Request::PublishCertificate(cert.clone())).await;
        }
        master.close().await;
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

    /// The master, through the relay at `url`, re-certifies the agent name of `new` for
    /// `new`'s key (`rebind_agent`).
    pub async fn recertify(&self, url: &str, new: &Identity) {
        let certificate = AgentCertificate::issue(
            &self.master.keys,
            &self.policy,
            &new.card,
            now().saturating_sub(60),
            30 * 86_400,
        )
        .expect("a certificate for the new key");
        let mut master = RawClient::login(url, &self.master).await;
        master.ok(Request::RebindAgent(certificate)).await;
        master.close().await;
    }

    /// The agent of `chat`, through the relay at `url`, blocks the chat's customer (a `Block`
    /// for spam, issued now); the agent's session is closed again.
    pub async fn block(&self, url: &str, chat: &Chat) {
        let agent = &self.agents[chat.agent];
        let block = Block::issue(
            &agent.keys,
            &self.name,
            chat.id,
            self.customers[chat.customer].key(),
            BlockReason::Spam,
            now(),
        );
        let mut session = RawClient::login(url, agent).await;
        session.ok(Request::Block(block)).await;
        session.close().await;
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
        let (record, secret) = self.epoch(
            &mut r,
            EpochSpec {
                conversation: id,
                creator: &self.customers[c],
                customer: c,
                agent,
                epoch: 0,
                previous: None,
            },
        );
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

    /// Creates (without sending) the epoch record `spec` describes, with members
    /// `[customer, agent]`.
    pub fn epoch(&self, r: &mut ChaCha20Rng, spec: EpochSpec<'_>) -> (VerifiedEpoch, EpochSecret) {
        let members = [
            self.customers[spec.customer].card.clone(),
            self.agents[spec.agent].card.clone(),
        ];
        EpochRecord::create(
            r,
            &spec.creator.keys,
            &self.policy,
            NewEpoch {
                conversation: spec.conversation,
                epoch: spec.epoch,
                members: &members,
                previous: spec.previous,
                now: now(),
            },
        )
        .expect("epoch record")
    }
}

/// What [`Org::epoch`] creates: epoch `epoch` of `conversation`, signed by `creator`, with
/// members `[customers[customer], agents[agent]]`.
#[derive(Clone, Copy)]
pub struct EpochSpec<'a> {
    /// The conversation.
    pub conversation: ConversationId,
    /// Who signs the record (normally a member).
    pub creator: &'a Identity,
    /// Index of the customer member in [`Org::customers`].
    pub customer: usize,
    /// Index of the agent member in [`Org::agents`].
    pub agent: usize,
    /// The epoch number.
    pub epoch: u32,
    /// The previous epoch's record (`None` for epoch 0).
    pub previous: Option<&'a EpochRecord>,
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
