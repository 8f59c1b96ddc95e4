//! The relay's protocol logic: one method per request, over the [`Store`] seam.
//!
//! The relay checks what it can without any key that opens content — card and policy signatures,
//! epoch-record chains, audit-entry signatures, membership — as defence in depth. Clients check
//! everything again: the relay is an untrusted directory.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use sealdesk_protocol::{
    audit::{
        AuditEntry, AuditEvent, ConsistencyProof, Cosignature, InclusionProof, SignedTreeHead,
        WitnessedHead, to_wire_path,
    },
    card::{IdentityCard, Role},
    epoch::EpochRecord,
    ids::{ConversationId, TokenId},
    keys::{IdentityKeys, SigningPublicKey},
    merkle,
    message::{Envelope, MAX_BODY, MAX_CIPHERTEXT},
    policy::{AgentCertificate, OrgPolicy, VerifiedPolicy},
    release::{ArbiterDecision, DisputeTicket, ErasureRequest, ReleaseRequest, ReleasedShare},
    wire::{
        self, ConversationInfo, ErrorCode, Frame, Item, PendingRelease, Push, ReleaseProgress,
        Request, Response, Sequenced, TicketState,
    },
};
use tracing::{debug, info, warn};

use super::{
    hub::Hub,
    state::{ConvState, ReleaseState, StoredItem},
};
use crate::{
    commit::GroupCommit,
    metrics::Metrics,
    store::{Batch, Collection, Store, seq_from_key},
};

/// Longest history page, in items (the frame limit bounds it by bytes as well).
const MAX_PAGE: usize = 200;
/// Bytes of items per history page, leaving room for the frame envelope.
const PAGE_BYTES: usize = 48 * 1024;
/// Agent certificates are issued for this long by default (clients choose; the relay only
/// checks expiry).
const MAX_AUDIT_PAGE: usize = 256;

/// A refusal: an error code and a message for the client.
#[derive(Debug)]
pub(crate) struct Reject(pub ErrorCode, pub String);

type Reply = Result<Response, Reject>;

impl From<crate::Error> for Reject {
    fn from(e: crate::Error) -> Self {
        warn!(error = %e, "storage error while serving a request");
        Reject(
            ErrorCode::Internal,
            "the relay could not complete the request; try again".into(),
        )
    }
}

impl From<sealdesk_protocol::Error> for Reject {
    fn from(e: sealdesk_protocol::Error) -> Self {
        Reject(ErrorCode::BadRequest, e.to_string())
    }
}

fn reject<T>(code: ErrorCode, msg: impl Into<String>) -> Result<T, Reject> {
    Err(Reject(code, msg.into()))
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The authenticated account behind a session.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub card: IdentityCard,
    pub registered: bool,
}

impl Caller {
    fn key(&self) -> SigningPublicKey {
        self.card.signing_key
    }
}

/// A message stored and waiting for its group commit (see [`Service::stage_send`]).
pub(crate) struct Staged {
    /// When the relay started on the message (for the ack-latency histogram).
    started: std::time::Instant,
    durable: std::pin::Pin<Box<dyn Future<Output = crate::Result<()>> + Send>>,
    item: Sequenced,
    audience: Vec<SigningPublicKey>,
    sender: SigningPublicKey,
}

/// The relay's state shared by all sessions.
pub(crate) struct Service {
    pub store: Arc<dyn Store>,
    pub commit: GroupCommit,
    pub metrics: Arc<Metrics>,
    /// The relay's own identity: signs challenges' context, tree heads and erasure entries.
    pub keys: IdentityKeys,
    pub hub: Hub,
    // std Mutexes: held for in-memory updates and synchronous sled writes only, never across
    // an await, so a tokio Mutex would only add overhead.
    /// Conversation states; the lock also serialises sequence-number assignment.
    convs: Mutex<HashMap<ConversationId, ConvState>>,
    /// The audit log's leaf hashes; the lock is the log's single-writer rule.
    log: Mutex<Vec<merkle::Hash>>,
    /// Every other write that must be atomic with a read (names, policies, releases, tickets).
    writes: Mutex<()>,
}

fn enc<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, Reject> {
    wire::to_cbor(v).map_err(|_| Reject(ErrorCode::Internal, "encoding failed".into()))
}

fn dec<T: serde::de::DeserializeOwned>(b: &[u8], what: &'static str) -> Result<T, Reject> {
    wire::from_cbor(b, what).map_err(|e| {
        warn!(what, error = %e, "stored object does not decode");
        Reject(ErrorCode::Internal, "stored data is damaged".into())
    })
}

fn policy_key(org: &str, version: u32) -> Vec<u8> {
    let mut k = org.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

fn org_prefix(org: &str) -> Vec<u8> {
    let mut k = org.as_bytes().to_vec();
    k.push(0);
    k
}

/// The index entry of a consent shared in `c` (in [`Collection::Meta`]; the value is the
/// consent's signing key). Keyed by conversation first, so erasure finds them by prefix.
fn consent_key(c: &ConversationId, id: &TokenId) -> Vec<u8> {
    let mut k = consent_prefix(c);
    k.extend_from_slice(id.as_bytes());
    k
}

fn consent_prefix(c: &ConversationId) -> Vec<u8> {
    let mut k = b"consent".to_vec();
    k.extend_from_slice(c.as_bytes());
    k
}

fn item_key(c: &ConversationId, seq: u64) -> Vec<u8> {
    let mut k = c.as_bytes().to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The prefix under which earlier relay builds kept one duplicate key per message of a
/// (conversation, epoch, sender), ending in the big-endian counter. Nothing writes these any
/// more; they are read for conversations stored by such a build (see `ConvState::counters`)
/// and deleted with the conversation.
fn legacy_counter_prefix(c: &ConversationId, (epoch, sender): (u32, SigningPublicKey)) -> Vec<u8> {
    let mut k = b"msg".to_vec();
    k.extend_from_slice(c.as_bytes());
    k.extend_from_slice(&epoch.to_be_bytes());
    k.extend_from_slice(sender.as_bytes());
    k
}

/// The answer to an epoch record whose epoch number another record took first.
const EPOCH_TAKEN: &str = "a record of this epoch is stored already: read the history and follow \
     the newest epoch";

/// The answer to a duplicate message.
const COUNTER_REUSED: &str = "this (epoch, sender) has stored a message with this counter or a \
     higher one: counters only go up, and one may not be reused; open a new epoch instead of \
     resending with an old counter";

/// A message append rewrites the conversation record once per this many items, which bounds
/// the tail [`Service::restore`] replays.
const CHECKPOINT_EVERY: u64 = 256;

/// The key of the relay's identity (its 64 secret bytes) in [`Collection::Meta`].
const RELAY_IDENTITY: &[u8] = b"relay-identity";
/// [`RELAY_IDENTITY`]'s place in the store, for errors.
const RELAY_IDENTITY_LOCATION: &str = "key `relay-identity` of the `meta` tree";

/// Indexes the consents shared before the relay kept an index of them (see [`consent_key`]),
/// once: a walk over every stored item, after which [`super::CONSENT_INDEX_FILLED`] is set and
/// later starts skip it. So a revocation reads the index only, never a conversation.
fn fill_consent_index(store: &dyn Store) -> crate::Result<()> {
    if store
        .get(Collection::Meta, super::CONSENT_INDEX_FILLED)?
        .is_some()
    {
        return Ok(());
    }
    let mut start = Vec::new();
    let mut filled = 0usize;
    loop {
        let page = store.scan_prefix_from(Collection::Messages, &[], &start, MAX_PAGE)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        let mut next = last.clone();
        next.push(0);
        for (_, v) in page {
            let Ok(stored) = wire::from_cbor::<StoredItem>(&v, "item") else {
                warn!("an undecodable item skipped while indexing consents");
                continue;
            };
            if let Item::Consent(t) = &stored.sequenced.item {
                let k = consent_key(&stored.sequenced.conversation, &t.id);
                if store.get(Collection::Meta, &k)?.is_none() {
                    store.put(Collection::Meta, &k, t.customer.as_bytes())?;
                    filled += 1;
                }
            }
        }
        start = next;
    }
    store.put(Collection::Meta, super::CONSENT_INDEX_FILLED, b"1")?;
    store.flush()?;
    info!(filled, "consent index filled");
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, Reject> {
    m.lock()
        .map_err(|_| Reject(ErrorCode::Internal, "internal lock poisoned".into()))
}

impl Service {
    /// Builds the service, loading (or creating) the relay's key and the audit log.
    ///
    /// # Errors
    /// [`crate::Error::CorruptIdentity`] if the relay's key is stored but malformed (it is
    /// never replaced: only a missing key is generated); [`crate::Error::Corrupt`] for an
    /// undecodable audit entry; storage errors.
    pub fn open(
        store: Arc<dyn Store>,
        commit: GroupCommit,
        metrics: Arc<Metrics>,
        rng: &mut impl rand_core::CryptoRng,
    ) -> crate::Result<Self> {
        let keys = match store.get(Collection::Meta, RELAY_IDENTITY)? {
            Some(b) => {
                // Any 64 bytes are a key pair (an Ed25519 seed and an X25519 scalar), so the
                // length is all there is to check. Only a missing key is ever generated: a
                // replaced one would look to every client like a relay that changed its key.
                let arr = <[u8; 64]>::try_from(b.as_slice()).map_err(|_| {
                    crate::Error::CorruptIdentity {
                        location: RELAY_IDENTITY_LOCATION.into(),
                        detail: format!("{} bytes stored, 64 expected", b.len()),
                    }
                })?;
                IdentityKeys::from_secret_bytes(&arr)
            }
            None => {
                let k = IdentityKeys::generate(rng);
                store.put(
                    Collection::Meta,
                    RELAY_IDENTITY,
                    k.to_secret_bytes().as_slice(),
                )?;
                store.flush()?;
                k
            }
        };
        let mut leaves = Vec::new();
        for (k, v) in store.scan_prefix(Collection::AuditLeaves, &[])? {
            let entry: AuditEntry = wire::from_cbor(&v, "audit entry").map_err(|_| {
                // Name the entry, so the operator knows which one (and that the log is at stake).
                let at = seq_from_key(&k).map_or_else(|| "?".to_owned(), |i| i.to_string());
                crate::Error::Corrupt(format!("audit entry {at} (in the `audit_leaves` tree)"))
            })?;
            leaves.push(entry.leaf_hash());
        }
        fill_consent_index(store.as_ref())?;
        info!(entries = leaves.len(), log_key = %keys.signing_public(), "relay state loaded");
        Ok(Self {
            store,
            commit,
            metrics,
            keys,
            hub: Hub::default(),
            convs: Mutex::new(HashMap::new()),
            log: Mutex::new(leaves),
            writes: Mutex::new(()),
        })
    }

    /// Whether the card is registered (same keys under its name).
    pub fn is_registered(&self, card: &IdentityCard) -> Result<bool, Reject> {
        Ok(self
            .card_by_key(&card.signing_key)?
            .is_some_and(|c| c == *card))
    }

    /// Serves one request.
    pub async fn handle(&self, caller: &mut Caller, req: Request) -> Response {
        let result = match req {
            Request::Register => self.register(caller).await,
            _ if !caller.registered => reject(
                ErrorCode::NotRegistered,
                "register this account first (`sealdesk register`)",
            ),
            Request::GetCard { name } => self.get_card(&name),
            Request::PublishPolicy(p) => self.publish_policy(caller, p).await,
            Request::GetPolicy { org, version } => self.get_policy(&org, version),
            Request::PublishCertificate(c) => self.publish_certificate(caller, c).await,
            Request::GetCertificate { org, agent } => self.get_certificate(&org, &agent),
            Request::OpenConversation { org, conversation } => {
                self.open_conversation(caller, &org, conversation).await
            }
            Request::Transfer {
                conversation,
                agent,
            } => self.transfer(caller, conversation, &agent).await,
            Request::ListConversations => self.list_conversations(caller),
            Request::PutEpoch(r) => self.put_epoch(caller, r).await,
            Request::PutHandOff(h) => self.put_handoff(caller, h).await,
            Request::Send(env) => self.send(caller, env).await,
            Request::History {
                conversation,
                after,
                limit,
            } => self.history(caller, conversation, after, limit),
            Request::Delivered { conversation, seq } => self.delivered(caller, conversation, seq),
            Request::SubmitRelease(r) => self.submit_release(caller, r).await,
            Request::SubmitShares { request, shares } => {
                self.submit_shares(caller, request, shares).await
            }
            Request::RefuseRelease { request, reason } => {
                self.refuse_release(caller, request, reason).await
            }
            Request::PendingReleases => self.pending_releases(caller),
            Request::ReleaseStatus { request } => self.release_status(caller, request),
            Request::OpenTicket(t) => self.open_ticket(caller, t).await,
            Request::Decide(d) => self.decide(caller, d).await,
            Request::ListTickets => self.list_tickets(caller),
            Request::ShareConsent(t) => self.share_consent(caller, t).await,
            Request::AppendAudit(e) => self.append_audit(caller, e).await,
            Request::GetTreeHead => self.tree_head().map(Response::TreeHead),
            Request::GetEntries { from, limit } => self.entries(from, limit),
            Request::GetInclusion { index, size } => self.inclusion(index, size),
            Request::GetConsistency { old, new } => self.consistency(old, new),
            Request::Erase(r) => self.erase(caller, r).await,
            Request::Cosign(c) => self.cosign(caller, c).await,
            Request::GetWitnessedHead { org } => self.witnessed_head(&org),
        };
        match result {
            Ok(r) => r,
            Err(Reject(code, message)) => {
                debug!(?code, %message, "request refused");
                Response::Error { code, message }
            }
        }
    }

    // ---- directory -------------------------------------------------------------------------

    async fn register(&self, caller: &mut Caller) -> Reply {
        let card = caller.card.clone().verify()?;
        {
            let _w = lock(&self.writes)?;
            if let Some(owner) = self.store.get(Collection::Names, card.name.as_bytes())?
                && owner.as_slice() != card.signing_key.as_bytes()
            {
                return reject(
                    ErrorCode::NameTaken,
                    format!(
                        "the name {:?} is taken on this relay; pick another",
                        card.name
                    ),
                );
            }
            if let Some(existing) = self.card_by_key(&card.signing_key)?
                && existing != *card.card()
            {
                return reject(
                    ErrorCode::KeyRegistered,
                    "this key is registered with another card",
                );
            }
            let mut b = Batch::new();
            b.put(
                Collection::Names,
                card.name.as_bytes(),
                card.signing_key.as_bytes(),
            );
            b.put(
                Collection::Cards,
                card.signing_key.as_bytes(),
                &enc(card.card())?,
            );
            self.store.apply(b)?;
        }
        self.commit.durable().await?;
        caller.registered = true;
        info!(role = %card.role, "account registered");
        Ok(Response::Ok)
    }

    fn card_by_key(&self, key: &SigningPublicKey) -> Result<Option<IdentityCard>, Reject> {
        self.store
            .get(Collection::Cards, key.as_bytes())?
            .map(|b| dec(&b, "card"))
            .transpose()
    }

    fn card_by_name(&self, name: &str) -> Result<Option<IdentityCard>, Reject> {
        match self.store.get(Collection::Names, name.as_bytes())? {
            None => Ok(None),
            Some(k) => {
                let key = SigningPublicKey::try_from(k.as_slice())?;
                self.card_by_key(&key)
            }
        }
    }

    fn get_card(&self, name: &str) -> Reply {
        match self.card_by_name(name)? {
            Some(c) => Ok(Response::Card(c)),
            None => reject(ErrorCode::NotFound, format!("no account named {name:?}")),
        }
    }

    fn policy(&self, org: &str, version: Option<u32>) -> Result<Option<VerifiedPolicy>, Reject> {
        let bytes = match version {
            Some(v) => self.store.get(Collection::Policies, &policy_key(org, v))?,
            None => self
                .store
                .last(Collection::Policies, &org_prefix(org))?
                .map(|(_, v)| v),
        };
        match bytes {
            None => Ok(None),
            Some(b) => {
                let p: OrgPolicy = dec(&b, "policy")?;
                Ok(Some(p.verify()?))
            }
        }
    }

    fn current_policy(&self, org: &str) -> Result<VerifiedPolicy, Reject> {
        self.policy(org, None)?
            .ok_or_else(|| Reject(ErrorCode::NotFound, format!("no org named {org:?}")))
    }

    async fn publish_policy(&self, caller: &Caller, p: OrgPolicy) -> Reply {
        let p = p.verify()?;
        // The policy's master card must be the caller's own registered master card: a key
        // registered as an agent cannot mint itself a master card for a new org.
        if p.master_key() != caller.key()
            || caller.card.role != Role::Master
            || p.master != caller.card
        {
            return reject(
                ErrorCode::Forbidden,
                "only a registered master account may publish a policy, and only one that names \
                 its own card as master",
            );
        }
        {
            let _w = lock(&self.writes)?;
            if let Some(cur) = self.policy(&p.org, None)? {
                if cur.master_key() != p.master_key() {
                    return reject(
                        ErrorCode::Forbidden,
                        "this org belongs to another master key",
                    );
                }
                if p.version <= cur.version {
                    return reject(
                        ErrorCode::StalePolicy,
                        format!("policy version must be above {}", cur.version),
                    );
                }
            }
            self.store.put(
                Collection::Policies,
                &policy_key(&p.org, p.version),
                &enc(p.policy())?,
            )?;
        }
        self.commit.durable().await?;
        info!(org = %p.org, version = p.version, "policy published");
        Ok(Response::Ok)
    }

    fn get_policy(&self, org: &str, version: Option<u32>) -> Reply {
        match self.policy(org, version)? {
            Some(p) => Ok(Response::Policy(p.policy().clone())),
            None => reject(ErrorCode::NotFound, format!("no policy for org {org:?}")),
        }
    }

    async fn publish_certificate(&self, caller: &Caller, c: AgentCertificate) -> Reply {
        let policy = self.current_policy(&c.org)?;
        if policy.master_key() != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "only the org's master may certify agents",
            );
        }
        let agent = c.verify(&policy, now())?;
        let mut key = org_prefix(&c.org);
        key.extend_from_slice(agent.name.as_bytes());
        self.store.put(Collection::Certificates, &key, &enc(&c)?)?;
        self.commit.durable().await?;
        Ok(Response::Ok)
    }

    fn certificate(&self, org: &str, agent: &str) -> Result<Option<AgentCertificate>, Reject> {
        let mut key = org_prefix(org);
        key.extend_from_slice(agent.as_bytes());
        self.store
            .get(Collection::Certificates, &key)?
            .map(|b| dec(&b, "certificate"))
            .transpose()
    }

    fn get_certificate(&self, org: &str, agent: &str) -> Reply {
        match self.certificate(org, agent)? {
            Some(c) => Ok(Response::Certificate(c)),
            None => reject(
                ErrorCode::NotFound,
                format!("no certificate for {agent:?} in {org:?}"),
            ),
        }
    }

    // ---- conversations ---------------------------------------------------------------------

    /// A copy of the conversation's state, loaded into the cache if needed.
    fn conv(&self, c: &ConversationId) -> Result<Option<ConvState>, Reject> {
        if !self.load(c)? {
            return Ok(None);
        }
        Ok(lock(&self.convs)?.get(c).cloned())
    }

    /// Makes sure the conversation's state is in the cache (restoring it from the store if
    /// needed); returns whether the conversation exists. The disk is read outside the lock.
    fn load(&self, c: &ConversationId) -> Result<bool, Reject> {
        if lock(&self.convs)?.contains_key(c) {
            return Ok(true);
        }
        let Some(b) = self.store.get(Collection::Conversations, c.as_bytes())? else {
            return Ok(false);
        };
        let s = self.restore(&b)?;
        // Another task may have loaded it meanwhile; the first one in wins (same content).
        lock(&self.convs)?.entry(*c).or_insert(s);
        Ok(true)
    }

    /// The live state of the conversation whose stored record is `record`: the cached one, or
    /// the record brought up to date from the items, without caching it (for scans over every
    /// conversation).
    fn live_state(&self, c: &ConversationId, record: &[u8]) -> Result<ConvState, Reject> {
        let cached = lock(&self.convs)?.get(c).cloned();
        match cached {
            Some(s) => Ok(s),
            None => self.restore(record),
        }
    }

    /// A conversation's state as stored: its record, then the message items appended after
    /// the record was last written. Message appends do not rewrite the record (see
    /// [`Self::append_message`]), so this replays them: the sequence number and activity time
    /// come from the last item, and each sender's highest counter in the current epoch from
    /// its items. Everything loaded from disk is durable.
    fn restore(&self, record: &[u8]) -> Result<ConvState, Reject> {
        let mut s: ConvState = dec(record, "conversation")?;
        let c = s.conversation;
        let mut replayed: HashMap<(u32, SigningPublicKey), u64> = HashMap::new();
        loop {
            let tail = self.items_after(&c, s.last_seq)?;
            if tail.is_empty() {
                break;
            }
            for (stored, _) in tail {
                let item = &stored.sequenced;
                if item.seq != s.last_seq.saturating_add(1) {
                    warn!(conversation = %c, after = s.last_seq, found = item.seq,
                        "sequence gap in stored items");
                }
                match &item.item {
                    Item::Message(env) => {
                        let h = &env.header;
                        let top = replayed.entry((h.epoch, h.sender)).or_insert(h.counter);
                        *top = (*top).max(h.counter);
                        if s.current_epoch == Some(h.epoch) {
                            s.epoch_messages = s.epoch_messages.saturating_add(1);
                        }
                    }
                    // Every other item is written in one transaction with the record.
                    _ => warn!(conversation = %c, seq = item.seq,
                        "a non-message item newer than the conversation record"),
                }
                s.last_seq = item.seq;
                s.last_activity = item.stored_at;
            }
        }
        for (key, counter) in replayed {
            let known = match s.counters.get(&key) {
                Some(known) => Some(*known),
                // First seen in the replay: its earlier messages may predate the record's
                // counters.
                None => self.legacy_highest_counter(&legacy_counter_prefix(&c, key))?,
            };
            s.counters
                .insert(key, known.map_or(counter, |k| k.max(counter)));
        }
        if let Some(epoch) = s.current_epoch {
            s.counters.retain(|(e, _), _| *e == epoch);
        }
        if s.rotate_after.is_none() {
            // Stored before the relay kept the limit: the epoch's record names its policy.
            s.rotate_after = self.stored_epoch_limit(&s)?;
        }
        s.durable_seq = s.last_seq;
        Ok(s)
    }

    /// Up to `MAX_PAGE` stored items of `c` after `seq`, in order, each with its stored size.
    fn items_after(
        &self,
        c: &ConversationId,
        seq: u64,
    ) -> Result<Vec<(StoredItem, usize)>, Reject> {
        let start = item_key(c, seq.saturating_add(1));
        self.store
            .scan_prefix_from(Collection::Messages, c.as_bytes(), &start, MAX_PAGE)?
            .into_iter()
            .map(|(_, v)| Ok((dec(&v, "item")?, v.len())))
            .collect()
    }

    /// Records that everything up to `seq` in `c` is on disk (after a `durable()` that covered
    /// the write of `seq`; group commit flushes in order, so all lower numbers are too).
    fn mark_durable(&self, c: &ConversationId, seq: u64) -> Result<(), Reject> {
        if let Some(s) = lock(&self.convs)?.get_mut(c) {
            s.durable_seq = s.durable_seq.max(seq);
        }
        Ok(())
    }

    fn conv_for(&self, caller: &Caller, c: &ConversationId) -> Result<ConvState, Reject> {
        match self.conv(c)? {
            Some(s) if s.involves(&caller.key()) => Ok(s),
            // Same answer whether it exists or not: ids are not an oracle.
            _ => reject(ErrorCode::NotFound, "no such conversation for this account"),
        }
    }

    /// Certified agents of an org with their current load.
    fn agents(
        &self,
        policy: &VerifiedPolicy,
    ) -> Result<Vec<(IdentityCard, AgentCertificate)>, Reject> {
        let mut out = Vec::new();
        let t = now();
        for (_, v) in self
            .store
            .scan_prefix(Collection::Certificates, &org_prefix(&policy.org))?
        {
            let cert: AgentCertificate = dec(&v, "certificate")?;
            if let Ok(card) = cert.verify(policy, t) {
                // The agent must still be registered with the same card.
                if self.card_by_key(&card.signing_key)?.as_ref() == Some(card.card()) {
                    out.push((card.into_card(), cert));
                }
            }
        }
        Ok(out)
    }

    async fn open_conversation(&self, caller: &Caller, org: &str, c: ConversationId) -> Reply {
        if caller.card.role != Role::Customer {
            return reject(ErrorCode::Forbidden, "only customers open conversations");
        }
        let policy = self.current_policy(org)?;
        let agents = self.agents(&policy)?;
        if agents.is_empty() {
            return reject(
                ErrorCode::NotFound,
                format!("{org} has no certified agents yet"),
            );
        }
        let state = {
            let mut convs = lock(&self.convs)?;
            if convs.contains_key(&c)
                || self
                    .store
                    .get(Collection::Conversations, c.as_bytes())?
                    .is_some()
            {
                return reject(
                    ErrorCode::IdTaken,
                    "that conversation id is taken; pick another",
                );
            }
            // Least-loaded online agent, else least-loaded of all.
            let mut load: HashMap<SigningPublicKey, usize> = HashMap::new();
            for s in convs.values() {
                *load.entry(s.agent).or_default() += 1;
            }
            let pick = agents
                .iter()
                .min_by_key(|(card, _)| {
                    (
                        !self.hub.is_online(&card.signing_key),
                        load.get(&card.signing_key).copied().unwrap_or(0),
                    )
                })
                .cloned();
            let Some((agent, _)) = pick else {
                return reject(ErrorCode::NotFound, "no agent available");
            };
            let t = now();
            let s = ConvState {
                conversation: c,
                org: org.to_owned(),
                customer: caller.key(),
                customer_name: caller.card.name.clone(),
                agent: agent.signing_key,
                agent_name: agent.name.clone(),
                created_at: t,
                last_activity: t,
                last_seq: 0,
                current_epoch: None,
                readers: Default::default(),
                durable_seq: 0,
                counters: Default::default(),
                epoch_messages: 0,
                rotate_after: None,
            };
            self.store
                .put(Collection::Conversations, c.as_bytes(), &enc(&s)?)?;
            convs.insert(c, s.clone());
            s
        };
        self.commit.durable().await?;
        let (agent, certificate) = agents
            .into_iter()
            .find(|(a, _)| a.signing_key == state.agent)
            .ok_or_else(|| Reject(ErrorCode::Internal, "agent vanished".into()))?;
        self.push(
            &state.agent,
            Push::Assigned {
                conversation: c,
                customer: caller.card.clone(),
            },
        );
        info!(conversation = %c, org, "conversation opened");
        Ok(Response::Opened {
            agent,
            certificate,
            policy: policy.policy().clone(),
        })
    }

    async fn transfer(&self, caller: &Caller, c: ConversationId, to: &str) -> Reply {
        let s = self.conv_for(caller, &c)?;
        if caller.key() != s.agent {
            return reject(ErrorCode::Forbidden, "only the assigned agent can transfer");
        }
        let policy = self.current_policy(&s.org)?;
        let Some((agent, _)) = self
            .agents(&policy)?
            .into_iter()
            .find(|(a, _)| a.name == to)
        else {
            return reject(
                ErrorCode::NotFound,
                format!("{to:?} is not a certified agent of {}", s.org),
            );
        };
        if agent.signing_key == s.agent {
            return reject(
                ErrorCode::BadRequest,
                "the conversation is already assigned to that agent",
            );
        }
        self.update_conv(&c, |st| {
            st.agent = agent.signing_key;
            st.agent_name = agent.name.clone();
        })?;
        self.commit.durable().await?;
        let customer = self.card_by_key(&s.customer)?;
        if let Some(customer) = customer {
            self.push(
                &agent.signing_key,
                Push::Assigned {
                    conversation: c,
                    customer,
                },
            );
        }
        Ok(Response::Ok)
    }

    fn update_conv(
        &self,
        c: &ConversationId,
        f: impl FnOnce(&mut ConvState),
    ) -> Result<(), Reject> {
        let mut convs = lock(&self.convs)?;
        let s = convs
            .get_mut(c)
            .ok_or_else(|| Reject(ErrorCode::NotFound, "no such conversation".into()))?;
        f(s);
        self.store
            .put(Collection::Conversations, c.as_bytes(), &enc(&*s)?)?;
        Ok(())
    }

    fn list_conversations(&self, caller: &Caller) -> Reply {
        let me = caller.key();
        let mut out = Vec::new();
        for (k, v) in self.store.scan_prefix(Collection::Conversations, &[])? {
            let c = ConversationId::try_from(k.as_slice())?;
            let s = self.live_state(&c, &v)?;
            if !s.involves(&me) && !self.is_master_of(&me, &s.org)? {
                continue;
            }
            let delivered = self.delivered_seq(&c, &me)?;
            out.push(ConversationInfo {
                conversation: c,
                org: s.org.clone(),
                customer: s.customer_name.clone(),
                agent: s.agent_name.clone(),
                last_seq: s.durable_seq,
                delivered,
                created_at: s.created_at,
            });
        }
        Ok(Response::Conversations(out))
    }

    /// Appends an item that is not a message (those go through [`Self::append_message`]) to a
    /// conversation under the conversation lock. Returns the item and the push audience.
    fn append_item(
        &self,
        c: &ConversationId,
        epoch: Option<u32>,
        item: Item,
        update: impl FnOnce(&mut ConvState),
    ) -> Result<(Sequenced, Vec<SigningPublicKey>), Reject> {
        self.append_item_with(c, epoch, item, None, Vec::new(), update)
    }

    /// [`Self::append_item`] with a duplicate key that must not exist yet (`dedupe`, with the
    /// refusal to answer if it does) and more writes (`also`) in the same transaction (the epoch
    /// index of `PutEpoch`; the audit leaf of a release notice).
    fn append_item_with(
        &self,
        c: &ConversationId,
        epoch: Option<u32>,
        item: Item,
        dedupe: Option<(Vec<u8>, Reject)>,
        also: Vec<(Collection, Vec<u8>, Vec<u8>)>,
        update: impl FnOnce(&mut ConvState),
    ) -> Result<(Sequenced, Vec<SigningPublicKey>), Reject> {
        let mut convs = lock(&self.convs)?;
        let s = convs
            .get_mut(c)
            .ok_or_else(|| Reject(ErrorCode::NotFound, "no such conversation".into()))?;
        let mut next = s.clone();
        next.last_seq += 1;
        next.last_activity = now();
        update(&mut next);
        let sequenced = Sequenced {
            conversation: *c,
            seq: next.last_seq,
            stored_at: next.last_activity,
            item,
        };
        let stored = StoredItem { epoch, sequenced };
        // One transaction: the duplicate key, the epoch index, the conversation state and the
        // item are stored together or not at all, so a crash never leaves a reserved counter
        // or a sequence gap. These items change who may read, so the record must say so at
        // once; plain messages take the cheaper path of `append_message`.
        let mut b = Batch::new();
        let (dedupe, taken) = match dedupe {
            Some((k, taken)) => (Some(k), Some(taken)),
            None => (None, None),
        };
        if let Some(k) = &dedupe {
            b.insert_if_absent(Collection::MessageKeys, k, &next.last_seq.to_be_bytes());
        }
        for (coll, k, v) in &also {
            b.put(*coll, k, v);
        }
        b.put(Collection::Conversations, c.as_bytes(), &enc(&next)?);
        b.put(
            Collection::Messages,
            &item_key(c, next.last_seq),
            &enc(&stored)?,
        );
        if !self.store.apply(b)? {
            return Err(taken.unwrap_or_else(|| {
                Reject(
                    ErrorCode::Internal,
                    "a conditional write failed without a duplicate key".into(),
                )
            }));
        }
        let audience = match epoch {
            Some(e) => next
                .readers
                .get(&e)
                .map(|r| r.iter().copied().collect())
                .unwrap_or_default(),
            None => vec![next.customer],
        };
        *s = next;
        Ok((stored.sequenced, audience))
    }

    /// Checks and appends a message from `sender`: the hot path, so it works on the cached
    /// state in place, and stores not one transaction like [`Self::append_item_with`] but one
    /// write, the item. The conversation record is not rewritten (only every
    /// [`CHECKPOINT_EVERY`] messages, after the item, in order: sled recovers a prefix of its
    /// writes after a crash, so never a record ahead of its items): [`Self::restore`] rebuilds
    /// the sequence number and the senders' highest counters from the items. A crash leaves
    /// the item or nothing; never a reserved counter without its item, never a sequence gap.
    fn append_message(
        &self,
        sender: &SigningPublicKey,
        env: Envelope,
    ) -> Result<(Sequenced, Vec<SigningPublicKey>), Reject> {
        if env.ciphertext.len() > MAX_CIPHERTEXT {
            // No member would open it (`open_message` refuses it as too large): storing and
            // acknowledging it would promise a delivery that cannot happen.
            return reject(
                ErrorCode::TooLarge,
                format!(
                    "a message ciphertext of {} bytes is over the {MAX_CIPHERTEXT}-byte limit (a \
                     body of at most {MAX_BODY} bytes); nothing was stored",
                    env.ciphertext.len()
                ),
            );
        }
        let h = &env.header;
        let (c, epoch, counter) = (h.conversation, h.epoch, h.counter);
        if h.sender != *sender {
            return reject(ErrorCode::Forbidden, "the sender in the header must be you");
        }
        if !self.load(&c)? {
            return reject(ErrorCode::NotFound, "no such conversation for this account");
        }
        let mut convs = lock(&self.convs)?;
        let Some(s) = convs.get_mut(&c).filter(|s| s.involves(sender)) else {
            // Same answer whether it exists or not: ids are not an oracle.
            return reject(ErrorCode::NotFound, "no such conversation for this account");
        };
        if s.current_epoch != Some(epoch) {
            return reject(
                ErrorCode::StaleEpoch,
                format!(
                    "messages go to the current epoch ({:?}), not epoch {epoch}",
                    s.current_epoch
                ),
            );
        }
        if !s.may_read(sender, Some(epoch)) {
            return reject(
                ErrorCode::Forbidden,
                format!("you are not a member of the current epoch {epoch}"),
            );
        }
        // Appends to a conversation are serialised by the lock, so this check and the store
        // below cannot race. A counter at or below the sender's highest is refused whether
        // or not it was used: that needs no per-message index, and honest clients count up.
        let highest = match s.counters.get(&(epoch, *sender)) {
            Some(highest) => Some(*highest),
            None => self.legacy_highest_counter(&legacy_counter_prefix(&c, (epoch, *sender)))?,
        };
        if highest.is_some_and(|m| counter <= m) {
            return reject(ErrorCode::CounterReused, COUNTER_REUSED);
        }
        // The policy's rotation limit counts every member's messages in the epoch.
        if s.epoch_full() {
            return reject(
                ErrorCode::EpochFull,
                format!(
                    "epoch {epoch} holds the policy's {} messages: open epoch {} and send there",
                    s.epoch_messages,
                    epoch.saturating_add(1)
                ),
            );
        }
        let seq = s.last_seq + 1;
        let at = now();
        let stored = StoredItem {
            epoch: Some(epoch),
            sequenced: Sequenced {
                conversation: c,
                seq,
                stored_at: at,
                item: Item::Message(env),
            },
        };
        let mut b = Batch::ordered();
        b.put(Collection::Messages, &item_key(&c, seq), &enc(&stored)?);
        if seq % CHECKPOINT_EVERY == 0 {
            let mut record = s.clone();
            record.note_message(seq, at, (epoch, *sender), counter);
            b.put(Collection::Conversations, c.as_bytes(), &enc(&record)?);
        }
        if let Err(e) = self.store.apply(b) {
            // Part of the batch may be stored: forget the cached state so that the next use
            // restores it from what is on disk.
            convs.remove(&c);
            return Err(e.into());
        }
        s.note_message(seq, at, (epoch, *sender), counter);
        let audience = s
            .readers
            .get(&epoch)
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default();
        Ok((stored.sequenced, audience))
    }

    /// The highest counter an earlier relay build stored a duplicate key for under `prefix`
    /// (see [`legacy_counter_prefix`]), from the keys themselves.
    fn legacy_highest_counter(&self, prefix: &[u8]) -> Result<Option<u64>, Reject> {
        Ok(self
            .store
            .last(Collection::MessageKeys, prefix)?
            .and_then(|(k, _)| seq_from_key(&k)))
    }

    async fn put_epoch(&self, caller: &Caller, record: EpochRecord) -> Reply {
        let s = self.conv_for(caller, &record.conversation)?;
        if record.creator != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "an epoch record must be created by its sender",
            );
        }
        if record.org != s.org {
            return reject(ErrorCode::BadRequest, "the record names another org");
        }
        if s.current_epoch.is_some_and(|cur| record.epoch <= cur) {
            // Another member rotated first (or the record is old): the client follows theirs.
            return reject(ErrorCode::StaleEpoch, EPOCH_TAKEN);
        }
        let policy = self
            .policy(&s.org, Some(record.policy_version))?
            .ok_or_else(|| {
                Reject(
                    ErrorCode::BadRequest,
                    "the record's policy version is unknown".into(),
                )
            })?;
        let verified = record.verify(&policy)?;
        let previous = match s.current_epoch {
            None => None,
            Some(e) => Some(
                self.epoch_record(&verified.conversation, e)?
                    .verify(&policy_for(self, &s.org, e, &verified)?)?,
            ),
        };
        verified.check_follows(previous.as_ref())?;
        if verified.customer().map(|c| c.signing_key) != Some(s.customer) {
            return reject(
                ErrorCode::BadRequest,
                "the record's customer is not the conversation's",
            );
        }
        let epoch = verified.epoch;
        let rotate_after = self.epoch_limit(&s.org, &policy)?;
        let members: BTreeSet<SigningPublicKey> =
            verified.members.iter().map(|m| m.signing_key).collect();
        let record = verified.into_record();
        let mut ekey = record.conversation.as_bytes().to_vec();
        ekey.extend_from_slice(&epoch.to_be_bytes());
        // The epoch number is the duplicate key: two racing records for the same epoch cannot
        // both be stored.
        let rec_bytes = enc(&record)?;
        let (seq_item, audience) = self.append_item_with(
            &record.conversation,
            Some(epoch),
            Item::Epoch(record.clone()),
            Some((
                {
                    let mut k = b"epoch".to_vec();
                    k.extend_from_slice(&ekey);
                    k
                },
                Reject(ErrorCode::StaleEpoch, EPOCH_TAKEN.into()),
            )),
            vec![(Collection::Epochs, ekey.clone(), rec_bytes)],
            |st| {
                st.current_epoch = Some(epoch);
                st.readers.insert(epoch, members.clone());
                st.epoch_messages = 0;
                st.rotate_after = Some(rotate_after);
            },
        )?;
        self.commit.durable().await?;
        self.push_item(&seq_item, &audience, &caller.key());
        Ok(Response::Stored { seq: seq_item.seq })
    }

    /// The message limit of an epoch whose record names `policy`: the smaller of its
    /// `rotate_after_messages` and the org's latest policy's, so that a record naming an
    /// older, looser policy does not lift the limit the org has now (PROTOCOL.md §7.7).
    fn epoch_limit(&self, org: &str, policy: &VerifiedPolicy) -> Result<u32, Reject> {
        let latest = self.current_policy(org)?;
        Ok(policy
            .rotate_after_messages
            .min(latest.rotate_after_messages))
    }

    /// The limit of the current epoch of a conversation stored by a relay build that did not
    /// keep it (`rotate_after: None`), from the epoch's stored record.
    fn stored_epoch_limit(&self, s: &ConvState) -> Result<Option<u32>, Reject> {
        let Some(epoch) = s.current_epoch else {
            return Ok(None);
        };
        let record = match self.epoch_record(&s.conversation, epoch) {
            Ok(r) => r,
            Err(Reject(ErrorCode::NotFound, _)) => {
                warn!(conversation = %s.conversation, epoch, "the current epoch's record is missing");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        match self.policy(&s.org, Some(record.policy_version))? {
            Some(policy) => Ok(Some(self.epoch_limit(&s.org, &policy)?)),
            None => Ok(None),
        }
    }

    fn epoch_record(&self, c: &ConversationId, epoch: u32) -> Result<EpochRecord, Reject> {
        let mut k = c.as_bytes().to_vec();
        k.extend_from_slice(&epoch.to_be_bytes());
        match self.store.get(Collection::Epochs, &k)? {
            Some(b) => dec(&b, "epoch record"),
            None => reject(ErrorCode::NotFound, format!("no epoch {epoch}")),
        }
    }

    async fn put_handoff(&self, caller: &Caller, h: sealdesk_protocol::epoch::HandOff) -> Reply {
        let s = self.conv_for(caller, &h.conversation)?;
        if h.from != caller.key() {
            return reject(ErrorCode::Forbidden, "a hand-off must come from its signer");
        }
        h.from.verify(&h.signed_bytes(), &h.signature, "hand-off")?;
        for (e, _) in &h.epochs {
            if !s.may_read(&caller.key(), Some(*e)) {
                return reject(
                    ErrorCode::Forbidden,
                    format!("you were not a member of epoch {e}"),
                );
            }
        }
        let to = h.to;
        let epochs: Vec<u32> = h.epochs.iter().map(|(e, _)| *e).collect();
        let target = s.current_epoch;
        let conv = h.conversation;
        let (seq_item, _) = self.append_item(&conv, target, Item::HandOff(h), |st| {
            for e in &epochs {
                st.readers.entry(*e).or_default().insert(to);
            }
        })?;
        self.commit.durable().await?;
        self.push_item(&seq_item, &[to], &caller.key());
        Ok(Response::Stored { seq: seq_item.seq })
    }

    async fn send(&self, caller: &Caller, env: Envelope) -> Reply {
        let staged = self.stage_send(caller, env)?;
        Ok(self.acknowledge(staged).await)
    }

    /// The first half of a `Send`: checks and stores the message, and queues the wait for its
    /// group commit, without waiting. [`Self::acknowledge`] finishes it. A session may stage
    /// its next messages before the earlier ones are acknowledged (pipelining); they then
    /// share flushes.
    pub fn stage_send(&self, caller: &Caller, env: Envelope) -> Result<Staged, Reject> {
        let started = std::time::Instant::now();
        let size = env.ciphertext.len();
        let (item, audience) = self.append_message(&caller.key(), env)?;
        debug!(conversation = %item.conversation, seq = item.seq, size, "message stored");
        Ok(Staged {
            started,
            durable: Box::pin(self.commit.durable()),
            item,
            audience,
            sender: caller.key(),
        })
    }

    /// The second half of a `Send`: once the message is durable, pushes it to the other
    /// members and answers `Stored`. Staged messages must be acknowledged in the order they
    /// were staged (pushes and the durable watermark follow that order).
    pub async fn acknowledge(&self, staged: Staged) -> Response {
        let Staged {
            started,
            durable,
            item,
            audience,
            sender,
        } = staged;
        if let Err(e) = durable.await {
            let Reject(code, message) = Reject::from(e);
            return Response::Error { code, message };
        }
        self.metrics.messages_stored.inc();
        self.push_item(&item, &audience, &sender);
        self.metrics
            .ack_latency
            .observe(started.elapsed().as_secs_f64());
        Response::Stored { seq: item.seq }
    }

    /// Whether `who` is the master of `org` under its current policy. The master may read its
    /// org's ciphertext (useless to it without a release), never write to a conversation.
    fn is_master_of(&self, who: &SigningPublicKey, org: &str) -> Result<bool, Reject> {
        Ok(self
            .policy(org, None)?
            .is_some_and(|p| p.master_key() == *who))
    }

    fn history(&self, caller: &Caller, c: ConversationId, after: u64, limit: u32) -> Reply {
        let me = caller.key();
        let s = match self.conv(&c)? {
            Some(s) if s.involves(&me) || self.is_master_of(&me, &s.org)? => s,
            _ => return reject(ErrorCode::NotFound, "no such conversation for this account"),
        };
        let master = self.is_master_of(&me, &s.org)?;
        let limit = (limit as usize).clamp(1, MAX_PAGE);
        let mut items = Vec::new();
        let mut bytes = 0usize;
        let mut cursor = after;
        // Items the caller may not read (epochs before it joined, without a hand-off) are
        // skipped, so keep scanning in chunks until the page is full or the conversation ends.
        // Serve only what is on disk (see `ConvState::durable_seq`).
        let end = s.durable_seq;
        'scan: while cursor < end {
            let chunk = self.items_after(&c, cursor)?;
            if chunk.is_empty() {
                break;
            }
            for (stored, size) in chunk {
                if stored.sequenced.seq > end {
                    break 'scan;
                }
                if !master && !s.may_read(&me, stored.epoch) {
                    cursor = stored.sequenced.seq;
                    continue;
                }
                // The first item always fits (the frame limit is sized for one largest
                // message); later ones only while the page stays under PAGE_BYTES.
                if items.len() >= limit || (!items.is_empty() && bytes + size > PAGE_BYTES) {
                    return Ok(Response::Items { items, more: true });
                }
                bytes += size;
                cursor = stored.sequenced.seq;
                items.push(stored.sequenced);
                if cursor >= end {
                    break 'scan;
                }
            }
        }
        Ok(Response::Items { items, more: false })
    }

    fn delivered_seq(&self, c: &ConversationId, who: &SigningPublicKey) -> Result<u64, Reject> {
        let mut k = c.as_bytes().to_vec();
        k.extend_from_slice(who.as_bytes());
        Ok(self
            .store
            .get(Collection::Deliveries, &k)?
            .and_then(|b| b.try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    fn delivered(&self, caller: &Caller, c: ConversationId, seq: u64) -> Reply {
        let s = self.conv_for(caller, &c)?;
        let seq = seq.min(s.durable_seq);
        let mut k = c.as_bytes().to_vec();
        k.extend_from_slice(caller.key().as_bytes());
        if seq > self.delivered_seq(&c, &caller.key())? {
            // Delivery state is advisory: it is not worth a flush of its own; the next durable
            // write carries it.
            self.store
                .put(Collection::Deliveries, &k, &seq.to_be_bytes())?;
            self.metrics.messages_delivered.inc();
            for m in s.current_members() {
                if m != caller.key() {
                    self.push(
                        &m,
                        Push::Delivered {
                            conversation: c,
                            member: caller.card.name.clone(),
                            seq,
                        },
                    );
                }
            }
        }
        Ok(Response::Ok)
    }

    // ---- escrow plumbing -------------------------------------------------------------------

    async fn share_consent(
        &self,
        caller: &Caller,
        token: sealdesk_protocol::release::ConsentToken,
    ) -> Reply {
        let s = self.conv_for(caller, &token.conversation)?;
        if s.customer != caller.key() || token.customer != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "only the conversation's customer shares consent",
            );
        }
        if token.org != s.org {
            return reject(ErrorCode::BadRequest, "the consent names another org");
        }
        token
            .customer
            .verify(&token.signed_bytes(), &token.signature, "consent token")?;
        let policy = self.current_policy(&s.org)?;
        let master = policy.master_key();
        let conversation = token.conversation;
        let index = consent_key(&conversation, &token.id);
        let signer = token.customer;
        // Conversation-level item: readable by the customer, and by the master like all of its
        // org's items. Stored with the consent's index entry (its signer, who alone may revoke
        // it), in one transaction; the write lock makes "not shared yet" and the store atomic.
        let (item, audience) = {
            let _w = lock(&self.writes)?;
            // The index (filled at start-up for consents shared before it existed) says
            // whether this id was shared in this conversation.
            if self.store.get(Collection::Meta, &index)?.is_some() {
                return reject(
                    ErrorCode::IdTaken,
                    "a consent with this id was already shared in this conversation",
                );
            }
            self.append_item_with(
                &conversation,
                None,
                Item::Consent(token),
                None,
                vec![(Collection::Meta, index, signer.as_bytes().to_vec())],
                |_| {},
            )?
        };
        self.commit.durable().await?;
        self.push_item(&item, &audience, &caller.key());
        self.push_item(&item, &[master], &caller.key());
        Ok(Response::Stored { seq: item.seq })
    }

    /// The signer of consent `id` shared in conversation `c` (through `ShareConsent`), if the
    /// relay has seen it.
    fn consent_signer(
        &self,
        c: &ConversationId,
        id: &TokenId,
    ) -> Result<Option<SigningPublicKey>, Reject> {
        // Consents shared by a relay build that kept no index were indexed at start-up
        // (`fill_consent_index`): the index is the whole answer.
        match self.store.get(Collection::Meta, &consent_key(c, id))? {
            Some(k) => Ok(Some(SigningPublicKey::try_from(k.as_slice())?)),
            None => Ok(None),
        }
    }

    /// A consent revocation may be logged only by the consent's signer (the conversation's
    /// customer, who shared it), for a consent the relay has seen in that conversation.
    fn check_revocation(
        &self,
        caller: &Caller,
        c: &ConversationId,
        consent: &TokenId,
    ) -> Result<(), Reject> {
        let s = self.conv_for(caller, c)?;
        if s.customer != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "only the conversation's customer revokes consent",
            );
        }
        match self.consent_signer(c, consent)? {
            None => reject(
                ErrorCode::NotFound,
                "no consent with this id was shared in this conversation; only a consent the \
                 relay has seen (`sealdesk consent grant` shares it) can be revoked",
            ),
            Some(signer) if signer != caller.key() => reject(
                ErrorCode::Forbidden,
                "only the consent's signer may revoke it",
            ),
            Some(_) => Ok(()),
        }
    }

    fn pending_for(&self, r: &ReleaseRequest) -> Result<PendingRelease, Reject> {
        let mut epochs = Vec::new();
        for e in r.epochs.iter().take(1024) {
            if let Ok(rec) = self.epoch_record(&r.conversation, e) {
                epochs.push(rec);
            }
        }
        Ok(PendingRelease {
            request: r.clone(),
            epochs,
        })
    }

    async fn submit_release(&self, caller: &Caller, r: ReleaseRequest) -> Reply {
        let policy = self.current_policy(&r.org)?;
        if policy.master_key() != caller.key() || r.master != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "only the org's master may request a release",
            );
        }
        r.master
            .verify(&r.signed_bytes(), &r.signature, "release request")?;
        // A justification for another conversation or other epochs would have the trustees
        // refuse it (or, signed as the master wrote it, release and spend what the justification
        // names instead): refuse it before any trustee sees it.
        if let Err(refusal) = r.check_scope() {
            return reject(
                ErrorCode::BadRequest,
                format!("the release request does not match its justification: {refusal}"),
            );
        }
        let key = r.id.to_bytes();
        let state = ReleaseState {
            request: r.clone(),
            shares: vec![],
            refusals: vec![],
            answered: Default::default(),
        };
        if !self
            .store
            .insert_if_absent(Collection::Releases, &key, &enc(&state)?)?
        {
            return reject(ErrorCode::IdTaken, "a release request with this id exists");
        }
        self.commit.durable().await?;
        let pending = self.pending_for(&r)?;
        for t in &policy.trustees {
            self.push(&t.signing_key, Push::Release(pending.clone()));
        }
        info!(request = %r.id, conversation = %r.conversation, "release request queued for trustees");
        Ok(Response::Ok)
    }

    fn release_state(&self, id: &TokenId) -> Result<ReleaseState, Reject> {
        match self.store.get(Collection::Releases, id.as_bytes())? {
            Some(b) => dec(&b, "release"),
            None => reject(ErrorCode::NotFound, "no such release request"),
        }
    }

    fn trustee_of(&self, caller: &Caller, org: &str) -> Result<VerifiedPolicy, Reject> {
        let policy = self.current_policy(org)?;
        if policy.trustee_index(&caller.key()).is_none() {
            return reject(ErrorCode::Forbidden, "you are not a trustee of this org");
        }
        Ok(policy)
    }

    async fn answer_release(
        &self,
        caller: &Caller,
        id: TokenId,
        f: impl FnOnce(&mut ReleaseState) -> Result<(), Reject>,
    ) -> Reply {
        let master = {
            let _w = lock(&self.writes)?;
            let mut st = self.release_state(&id)?;
            self.trustee_of(caller, &st.request.org)?;
            if !st.answered.insert(caller.key()) {
                return reject(
                    ErrorCode::AlreadyAnswered,
                    "you already answered this request",
                );
            }
            f(&mut st)?;
            self.store
                .put(Collection::Releases, id.as_bytes(), &enc(&st)?)?;
            st.request.master
        };
        self.commit.durable().await?;
        self.push(&master, Push::ReleaseUpdate { request: id });
        Ok(Response::Ok)
    }

    async fn submit_shares(
        &self,
        caller: &Caller,
        id: TokenId,
        shares: Vec<ReleasedShare>,
    ) -> Reply {
        let me = caller.key();
        // A share is accepted only once its release entry is in the log: the trustee must log
        // before it releases, and the relay holds it to that.
        let logged = {
            let st = self.release_state(&id)?;
            let hash = st.request.hash();
            self.has_release_entry(&hash, &me)?
        };
        if !logged {
            return reject(
                ErrorCode::BadRequest,
                "append the release entry to the audit log first",
            );
        }
        for s in &shares {
            if s.trustee != me {
                return reject(ErrorCode::Forbidden, "shares must be your own");
            }
            s.trustee
                .verify(&s.signed_bytes(), &s.signature, "released share")?;
        }
        self.answer_release(caller, id, |st| {
            st.shares.extend(shares);
            Ok(())
        })
        .await
    }

    async fn refuse_release(&self, caller: &Caller, id: TokenId, reason: String) -> Reply {
        let name = caller.card.name.clone();
        let reason: String = reason.chars().take(500).collect();
        self.answer_release(caller, id, |st| {
            st.refusals.push((name, reason));
            Ok(())
        })
        .await
    }

    fn pending_releases(&self, caller: &Caller) -> Reply {
        let mut out = Vec::new();
        for (_, v) in self.store.scan_prefix(Collection::Releases, &[])? {
            let st: ReleaseState = dec(&v, "release")?;
            if st.answered.contains(&caller.key()) {
                continue;
            }
            if let Ok(Some(p)) = self.policy(&st.request.org, None)
                && p.trustee_index(&caller.key()).is_some()
            {
                out.push(self.pending_for(&st.request)?);
            }
            if out.len() >= 64 {
                break;
            }
        }
        Ok(Response::Releases(out))
    }

    fn release_status(&self, caller: &Caller, id: TokenId) -> Reply {
        let st = self.release_state(&id)?;
        if st.request.master != caller.key() {
            return reject(ErrorCode::NotFound, "no such release request");
        }
        Ok(Response::Progress(ReleaseProgress {
            shares: st.shares,
            refusals: st.refusals,
        }))
    }

    fn ticket_state(&self, id: &TokenId) -> Result<TicketState, Reject> {
        match self.store.get(Collection::Tickets, id.as_bytes())? {
            Some(b) => dec(&b, "ticket"),
            None => reject(ErrorCode::NotFound, "no such ticket"),
        }
    }

    fn notify_ticket(&self, policy: &VerifiedPolicy, st: &TicketState) {
        for a in &policy.arbiters {
            self.push(&a.signing_key, Push::Ticket(st.clone()));
        }
        self.push(&policy.master_key(), Push::Ticket(st.clone()));
    }

    async fn open_ticket(&self, caller: &Caller, t: DisputeTicket) -> Reply {
        let policy = self.current_policy(&t.org)?;
        if policy.master_key() != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "only the org's master opens dispute tickets",
            );
        }
        t.verify(&policy)?;
        if self.conv(&t.conversation)?.is_none_or(|s| s.org != t.org) {
            return reject(ErrorCode::NotFound, "no such conversation in this org");
        }
        let st = TicketState {
            ticket: t,
            decisions: vec![],
        };
        if !self
            .store
            .insert_if_absent(Collection::Tickets, st.ticket.id.as_bytes(), &enc(&st)?)?
        {
            return reject(ErrorCode::IdTaken, "a ticket with this id exists");
        }
        self.commit.durable().await?;
        self.notify_ticket(&policy, &st);
        Ok(Response::Ok)
    }

    async fn decide(&self, caller: &Caller, d: ArbiterDecision) -> Reply {
        let (policy, st) = {
            let _w = lock(&self.writes)?;
            let mut st = self.ticket_state(&d.ticket)?;
            let policy = self.current_policy(&st.ticket.org)?;
            if d.arbiter != caller.key() {
                return reject(ErrorCode::Forbidden, "decisions must be your own");
            }
            d.verify(&policy, &st.ticket)?;
            if st.decisions.iter().any(|x| x.arbiter == d.arbiter) {
                return reject(
                    ErrorCode::AlreadyAnswered,
                    "you already decided on this ticket",
                );
            }
            st.decisions.push(d);
            self.store
                .put(Collection::Tickets, st.ticket.id.as_bytes(), &enc(&st)?)?;
            (policy, st)
        };
        self.commit.durable().await?;
        self.notify_ticket(&policy, &st);
        Ok(Response::Ok)
    }

    fn list_tickets(&self, caller: &Caller) -> Reply {
        let mut out = Vec::new();
        for (_, v) in self.store.scan_prefix(Collection::Tickets, &[])? {
            let st: TicketState = dec(&v, "ticket")?;
            let Ok(Some(p)) = self.policy(&st.ticket.org, None) else {
                continue;
            };
            if p.master_key() == caller.key() || p.arbiter(&caller.key()).is_some() {
                out.push(st);
            }
        }
        Ok(Response::Tickets(out))
    }

    // ---- audit log -------------------------------------------------------------------------

    fn has_release_entry(
        &self,
        request_hash: &[u8; 32],
        signer: &SigningPublicKey,
    ) -> Result<bool, Reject> {
        let mut k = b"release".to_vec();
        k.extend_from_slice(request_hash);
        k.extend_from_slice(signer.as_bytes());
        Ok(self.store.get(Collection::Meta, &k)?.is_some())
    }

    async fn append_audit(&self, caller: &Caller, entry: AuditEntry) -> Reply {
        entry.verify()?;
        if entry.signer != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "entries must be signed by the account sending them",
            );
        }
        let mut marker = None;
        let notice_conv = match &entry.event {
            AuditEvent::Release {
                org,
                request_hash,
                conversation,
                ..
            } => {
                self.trustee_of(caller, org)?;
                if let Some(state) = self.conv(conversation)?
                    && state.org != *org
                {
                    return reject(
                        ErrorCode::Forbidden,
                        "the conversation is not in the org whose trustee you are",
                    );
                }
                let mut k = b"release".to_vec();
                k.extend_from_slice(request_hash);
                k.extend_from_slice(caller.key().as_bytes());
                marker = Some(k);
                Some(*conversation)
            }
            AuditEvent::ConsentRevocation {
                conversation,
                consent,
            } => {
                self.check_revocation(caller, conversation, consent)?;
                None
            }
            AuditEvent::PolicyChange { org, .. } => {
                if self.current_policy(org)?.master_key() != caller.key() {
                    return reject(
                        ErrorCode::Forbidden,
                        "only the org's master logs policy changes",
                    );
                }
                None
            }
            AuditEvent::Erasure { .. } => {
                return reject(ErrorCode::Forbidden, "only the relay logs erasures");
            }
        };
        // The notice goes to the conversation in the same transaction as the leaf: a crash
        // can lose both, never the notice alone (a resuming trustee finds its entry and does
        // not append again, so a lost notice would be lost for good).
        let notice_conv = match notice_conv {
            Some(c) => self
                .conv(&c)?
                .filter(|state| Some(&state.org) == entry_org(&entry))
                .map(|_| c),
            None => None,
        };
        let (index, head, notice) = self.log_append(&entry, marker, notice_conv)?;
        self.commit.durable().await?;
        relay_fail_point("relay-after-audit-append");
        if let Some((item, audience)) = notice {
            self.push_item(&item, &audience, &caller.key());
        }
        Ok(Response::Appended { index, head })
    }

    /// Appends under the single-writer lock, with the entry's notice in conversation `notice`
    /// in the same transaction; returns the index, a fresh tree head and the stored notice
    /// with its audience.
    #[allow(clippy::type_complexity)]
    fn log_append(
        &self,
        entry: &AuditEntry,
        marker: Option<Vec<u8>>,
        notice: Option<ConversationId>,
    ) -> Result<
        (
            u64,
            SignedTreeHead,
            Option<(Sequenced, Vec<SigningPublicKey>)>,
        ),
        Reject,
    > {
        let mut leaves = lock(&self.log)?;
        let index = leaves.len() as u64;
        let mut writes = vec![(
            Collection::AuditLeaves,
            index.to_be_bytes().to_vec(),
            enc(entry)?,
        )];
        if let Some(k) = marker {
            writes.push((Collection::Meta, k, index.to_be_bytes().to_vec()));
        }
        let stored = match notice {
            Some(c) => Some(self.append_item_with(
                &c,
                None,
                Item::Notice {
                    entry: entry.clone(),
                    index,
                },
                None,
                writes,
                |_| {},
            )?),
            None => {
                let mut b = Batch::new();
                for (coll, k, v) in &writes {
                    b.put(*coll, k, v);
                }
                self.store.apply(b)?;
                None
            }
        };
        leaves.push(entry.leaf_hash());
        let head = SignedTreeHead::sign(
            &self.keys,
            leaves.len() as u64,
            merkle::root(&leaves),
            now(),
        );
        Ok((index, head, stored))
    }

    fn tree_head(&self) -> Result<SignedTreeHead, Reject> {
        let leaves = lock(&self.log)?;
        Ok(SignedTreeHead::sign(
            &self.keys,
            leaves.len() as u64,
            merkle::root(&leaves),
            now(),
        ))
    }

    fn entries(&self, from: u64, limit: u32) -> Reply {
        let limit = (limit as usize).clamp(1, MAX_AUDIT_PAGE);
        let mut entries = Vec::new();
        for (_, v) in self
            .store
            .range_from(Collection::AuditLeaves, &from.to_be_bytes(), limit)?
        {
            entries.push(dec(&v, "audit entry")?);
        }
        Ok(Response::Entries { from, entries })
    }

    fn inclusion(&self, index: u64, size: u64) -> Reply {
        let leaves = lock(&self.log)?;
        if size > leaves.len() as u64 || index >= size {
            return reject(ErrorCode::BadRequest, "index or size beyond the log");
        }
        let path = merkle::inclusion_proof(&leaves[..size as usize], index)
            .map_err(|e| Reject(ErrorCode::BadRequest, e.to_string()))?;
        Ok(Response::Inclusion(InclusionProof {
            index,
            size,
            path: to_wire_path(path),
        }))
    }

    fn consistency(&self, old: u64, new: u64) -> Reply {
        let leaves = lock(&self.log)?;
        if new > leaves.len() as u64 || old > new {
            return reject(ErrorCode::BadRequest, "sizes beyond the log");
        }
        let path = merkle::consistency_proof(&leaves[..new as usize], old)
            .map_err(|e| Reject(ErrorCode::BadRequest, e.to_string()))?;
        Ok(Response::Consistency(ConsistencyProof {
            old,
            new,
            path: to_wire_path(path),
        }))
    }

    /// Keeps a witness's cosignature, the latest per witness. The clients check everything
    /// that matters (the witness is a trustee of their org's policy, the head extends theirs);
    /// the relay checks, as defence in depth, that the caller signed it, is a trustee, and
    /// cosigned a head this log really had.
    async fn cosign(&self, caller: &Caller, c: Cosignature) -> Reply {
        c.verify()?;
        if c.witness != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "cosignatures must be signed by the account sending them",
            );
        }
        if caller.card.role != Role::Trustee {
            return reject(ErrorCode::Forbidden, "only trustees witness the audit log");
        }
        if c.log_key != self.keys.signing_public() {
            return reject(ErrorCode::BadRequest, "the cosignature is for another log");
        }
        {
            let leaves = lock(&self.log)?;
            let size = usize::try_from(c.size).unwrap_or(usize::MAX);
            if size > leaves.len() || merkle::root(&leaves[..size]) != c.root {
                return reject(
                    ErrorCode::Conflict,
                    "the cosigned tree head is not one this log had",
                );
            }
        }
        let key = cosignature_key(&c.witness);
        {
            let _w = lock(&self.writes)?;
            if let Some(b) = self.store.get(Collection::Meta, &key)? {
                // Only a smaller head is refused: witnesses never go back (a trustee whose
                // clock went back only makes its own cosignature less fresh).
                let old: Cosignature = dec(&b, "cosignature")?;
                if old.size > c.size {
                    return reject(
                        ErrorCode::Conflict,
                        "this witness already cosigned a larger head",
                    );
                }
            }
            self.store.put(Collection::Meta, &key, &enc(&c)?)?;
        }
        self.commit.durable().await?;
        Ok(Response::Ok)
    }

    /// The current head with the latest cosignature of each trustee of `org`'s current policy
    /// (those on this head or an earlier one).
    fn witnessed_head(&self, org: &str) -> Reply {
        let policy = self.current_policy(org)?;
        let head = self.tree_head()?;
        let mut cosignatures = Vec::new();
        for t in &policy.trustees {
            if let Some(b) = self
                .store
                .get(Collection::Meta, &cosignature_key(&t.signing_key))?
            {
                let c: Cosignature = dec(&b, "cosignature")?;
                if c.size <= head.size {
                    cosignatures.push(c);
                }
            }
        }
        Ok(Response::WitnessedHead(WitnessedHead {
            head,
            cosignatures,
        }))
    }

    // ---- erasure ---------------------------------------------------------------------------

    async fn erase(&self, caller: &Caller, r: ErasureRequest) -> Reply {
        r.verify()?;
        let s = self.conv_for(caller, &r.conversation)?;
        if s.customer != caller.key() || r.customer != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "only the conversation's customer can ask for erasure",
            );
        }
        if self.open_dispute(&r.conversation)? {
            return reject(
                ErrorCode::LegalHold,
                "a dispute ticket on this conversation is open (legal hold); erasure is refused \
                 until it expires",
            );
        }
        self.erase_conversation(&r.conversation, "customer request")
            .await?;
        Ok(Response::Ok)
    }

    fn open_dispute(&self, c: &ConversationId) -> Result<bool, Reject> {
        let t = now();
        for (_, v) in self.store.scan_prefix(Collection::Tickets, &[])? {
            let st: TicketState = dec(&v, "ticket")?;
            if st.ticket.conversation == *c && st.ticket.expires_at > t {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Deletes a conversation's ciphertext, epoch records (with their escrow) and indexes, and
    /// logs an erasure entry signed by the relay.
    pub async fn erase_conversation(&self, c: &ConversationId, reason: &str) -> Result<(), Reject> {
        {
            let mut convs = lock(&self.convs)?;
            let mut b = Batch::new();
            for coll in [
                Collection::Messages,
                Collection::Epochs,
                Collection::Deliveries,
            ] {
                for (k, _) in self.store.scan_prefix(coll, c.as_bytes())? {
                    b.delete(coll, &k);
                }
            }
            for prefix in [&b"msg"[..], &b"epoch"[..]] {
                let mut p = prefix.to_vec();
                p.extend_from_slice(c.as_bytes());
                for (k, _) in self.store.scan_prefix(Collection::MessageKeys, &p)? {
                    b.delete(Collection::MessageKeys, &k);
                }
            }
            for (k, _) in self
                .store
                .scan_prefix(Collection::Meta, &consent_prefix(c))?
            {
                b.delete(Collection::Meta, &k);
            }
            b.delete(Collection::Conversations, c.as_bytes());
            self.store.apply(b)?;
            convs.remove(c);
        }
        let entry = AuditEntry::sign(
            &self.keys,
            AuditEvent::Erasure {
                conversation: *c,
                reason: reason.to_owned(),
            },
            now(),
        );
        self.log_append(&entry, None, None)?;
        self.commit.durable().await?;
        info!(conversation = %c, reason, "conversation erased");
        Ok(())
    }

    /// Erases conversations idle for longer than their org's retention period.
    pub async fn sweep_retention(&self) -> Result<usize, Reject> {
        let t = now();
        let mut expired = Vec::new();
        let idle_too_long = |s: &ConvState| match self.policy(&s.org, None) {
            Ok(Some(p)) => t.saturating_sub(s.last_activity) > p.retention_secs,
            _ => false,
        };
        for (k, v) in self.store.scan_prefix(Collection::Conversations, &[])? {
            // The record's activity time lags behind message appends, never ahead: a record
            // recent enough is enough to keep a conversation, and only the others need the
            // live state (cached, or rebuilt from the items).
            if !idle_too_long(&dec::<ConvState>(&v, "conversation")?) {
                continue;
            }
            let s = self.live_state(&ConversationId::try_from(k.as_slice())?, &v)?;
            if idle_too_long(&s) && !self.open_dispute(&s.conversation)? {
                expired.push(s.conversation);
            }
        }
        for c in &expired {
            self.erase_conversation(c, "retention").await?;
        }
        Ok(expired.len())
    }

    // ---- pushes ----------------------------------------------------------------------------

    fn push(&self, who: &SigningPublicKey, push: Push) {
        match wire::encode(&Frame::Push(push)) {
            Ok(bytes) => {
                self.hub.push(who, &Bytes::from(bytes));
            }
            Err(e) => warn!(error = %e, "push too large to send; the client will fetch it"),
        }
    }

    fn push_item(
        &self,
        item: &Sequenced,
        audience: &[SigningPublicKey],
        sender: &SigningPublicKey,
    ) {
        // Only ever called once the item's write is durable: from here on it may be served.
        let _ = self.mark_durable(&item.conversation, item.seq);
        let Ok(bytes) = wire::encode(&Frame::Push(Push::Item(item.clone()))) else {
            warn!("item too large to push; recipients will page it");
            return;
        };
        let bytes = Bytes::from(bytes);
        for who in audience {
            if who != sender {
                self.hub.push(who, &bytes);
            }
        }
    }
}

/// The policy a stored epoch was made under.
fn policy_for(
    svc: &Service,
    org: &str,
    epoch: u32,
    next: &sealdesk_protocol::epoch::VerifiedEpoch,
) -> Result<VerifiedPolicy, Reject> {
    let rec = svc.epoch_record(&next.conversation, epoch)?;
    svc.policy(org, Some(rec.policy_version))?.ok_or_else(|| {
        Reject(
            ErrorCode::Internal,
            "the policy of a stored epoch is missing".into(),
        )
    })
}

/// **Test-only fault injection**, like the client's `SEALDESK_FAILPOINT`: when this variable
/// names `point`, the relay exits there with status [`FAILPOINT_EXIT_CODE`], as if killed, so a
/// test can restart it over the same data directory. Never set it in production. The one
/// point, `relay-after-audit-append`, is after an audit entry (and its notice) became durable
/// and before the relay answers `appended`.
pub const FAILPOINT_ENV: &str = "SEALDESK_FAILPOINT";

/// Exit status of a relay stopped at a fail point (see [`FAILPOINT_ENV`]).
pub const FAILPOINT_EXIT_CODE: i32 = 86;

fn relay_fail_point(point: &str) {
    if std::env::var_os(FAILPOINT_ENV).is_some_and(|v| v == point) {
        warn!(
            point,
            "fail point reached; exiting as if killed (test only)"
        );
        std::process::exit(FAILPOINT_EXIT_CODE);
    }
}

/// Where a witness's latest cosignature is kept (in `Meta`).
fn cosignature_key(witness: &SigningPublicKey) -> Vec<u8> {
    let mut k = b"cosig/".to_vec();
    k.extend_from_slice(witness.as_bytes());
    k
}

fn entry_org(entry: &AuditEntry) -> Option<&String> {
    match &entry.event {
        AuditEvent::Release { org, .. } | AuditEvent::PolicyChange { org, .. } => Some(org),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::path::Path;

    use super::*;
    use crate::{config::RelayConfig, store::SledStore};

    /// Starts a relay over `dir` and stops it at once; returns what starting returned.
    async fn start_and_stop(dir: &Path) -> crate::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = RelayConfig {
            listen: listener.local_addr().unwrap(),
            data_dir: dir.to_owned(),
            ..RelayConfig::default()
        };
        crate::serve(listener, config, async {}).await
    }

    fn stored_identity(dir: &Path) -> Option<Vec<u8>> {
        SledStore::open(dir)
            .unwrap()
            .get(Collection::Meta, RELAY_IDENTITY)
            .unwrap()
    }

    fn store_identity(dir: &Path, bytes: &[u8]) {
        let store = SledStore::open(dir).unwrap();
        store.put(Collection::Meta, RELAY_IDENTITY, bytes).unwrap();
        store.flush().unwrap();
    }

    #[tokio::test]
    async fn a_missing_identity_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        start_and_stop(dir.path()).await.unwrap();
        let first = stored_identity(dir.path()).expect("the key was generated");
        assert_eq!(first.len(), 64);
        start_and_stop(dir.path()).await.unwrap();
        assert_eq!(
            stored_identity(dir.path()),
            Some(first),
            "the key was replaced"
        );
    }

    #[tokio::test]
    async fn a_malformed_identity_stops_the_start_and_is_not_overwritten() {
        for bad in [&[][..], &[7u8; 12][..], &[7u8; 63][..], &[7u8; 65][..]] {
            let dir = tempfile::tempdir().unwrap();
            store_identity(dir.path(), bad);
            match start_and_stop(dir.path()).await {
                Err(crate::Error::CorruptIdentity { location, detail }) => {
                    assert!(location.contains("relay-identity"), "{location}");
                    assert!(location.contains("meta"), "{location}");
                    assert!(
                        location.contains(&dir.path().display().to_string()),
                        "{location}"
                    );
                    assert_eq!(detail, format!("{} bytes stored, 64 expected", bad.len()));
                }
                other => panic!(
                    "a relay started over a damaged key ({} bytes): {other:?}",
                    bad.len()
                ),
            }
            assert_eq!(
                stored_identity(dir.path()).as_deref(),
                Some(bad),
                "the damaged key was overwritten"
            );
        }
    }
    #[tokio::test]
    async fn an_undecodable_audit_entry_stops_the_start_and_is_named() {
        let dir = tempfile::tempdir().unwrap();
        start_and_stop(dir.path()).await.unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            store
                .put(Collection::AuditLeaves, &3u64.to_be_bytes(), b"not cbor")
                .unwrap();
            store.flush().unwrap();
        }
        match start_and_stop(dir.path()).await {
            Err(crate::Error::Corrupt(what)) => {
                assert_eq!(what, "audit entry 3 (in the `audit_leaves` tree)");
            }
            other => panic!("a relay started over a damaged audit log: {other:?}"),
        }
    }
}
