//! Conversations: open, transfer and list them; epoch records and hand-offs; messages
//! (staged, then acknowledged after their group commit); history pages; delivery receipts.
//! The state itself is in the conversation table ([`super::table::ConvTable`]).

use sealdesk_protocol::signed::Signed as _;
use std::collections::{BTreeSet, HashMap};

use sealdesk_protocol::{
    card::{IdentityCard, Role},
    epoch::{EpochRecord, HandOff, VerifiedEpoch},
    ids::ConversationId,
    keys::SigningPublicKey,
    message::Envelope,
    policy::{AgentCertificate, VerifiedPolicy},
    release::ConsentToken,
    wire::{
        ConversationInfo, ErrorCode, Item, OpenQuota, OrgConversation, Push, Response, Sequenced,
        TicketState,
    },
};
use tracing::{debug, info, warn};

use super::{
    Caller, Reject, Reply, Service,
    cluster::until_stored,
    dec, enc,
    keys::{consent_prefix, delivery_key, epoch_dedupe_key, epoch_key},
    open_quota::{Full, OpenSubject},
    reject,
    table::MAX_PAGE,
};
use crate::{
    limits::{OpenRecord, bytes::NearQuota},
    relay::state::{ConvState, StoredItem},
    store::{Batch, Collection},
};

/// What an open stored, for its answer.
struct Opening {
    state: ConvState,
    policy: VerifiedPolicy,
    agents: Vec<(IdentityCard, AgentCertificate)>,
    open_before: usize,
}

/// Bytes of items per history page, leaving room for the frame envelope.
const PAGE_BYTES: usize = 48 * 1024;

/// The answer to an epoch record whose epoch number another record took first.
const EPOCH_TAKEN: &str = "a record of this epoch is stored already: read the history and \
     follow the newest epoch";

/// A message stored and waiting for its group commit (see [`Service::stage_send`]).
pub(crate) struct Staged {
    /// When the relay started on the message (for the ack-latency histogram).
    started: std::time::Instant,
    durable: std::pin::Pin<Box<dyn Future<Output = crate::Result<()>> + Send>>,
    item: Sequenced,
    audience: Vec<SigningPublicKey>,
    sender: SigningPublicKey,
    /// The sending connection: the message's push skips it, not the sender's other ones.
    origin: super::Origin,
    /// The warning ahead of a stored-bytes quota this message brought near, if any.
    quota: Option<NearQuota>,
}

impl Service {
    pub(super) fn conv_for(
        &self,
        caller: &Caller,
        c: &ConversationId,
    ) -> Result<ConvState, Reject> {
        match self.convs.get(c)? {
            Some(s) if s.involves(&caller.key()) => Ok(s),
            // Same answer whether it exists or not: ids are not an oracle.
            _ => reject(ErrorCode::NotFound, "no such conversation for this account"),
        }
    }

    pub(super) async fn open_conversation(
        &self,
        caller: &Caller,
        org: &str,
        c: ConversationId,
        token: Option<sealdesk_protocol::open_token::OpenToken>,
    ) -> Reply {
        if caller.card.role != Role::Customer {
            return reject(ErrorCode::Forbidden, "only customers open conversations");
        }
        self.refuse_blocked(&caller.key(), org)?;
        let visitor = self.check_open_token(caller, org, token)?;
        // The places this open reserves in the quota's records: given back if it fails.
        let mut reserved = Vec::new();
        let made = self.open_reserving(caller, org, c, visitor.as_ref(), &mut reserved);
        if made.is_err() {
            for subject in &reserved {
                self.release_open(subject, &c);
            }
        }
        let Opening {
            state,
            policy,
            agents,
            open_before,
        } = made?;
        self.commit.durable().await?;
        let (agent, certificate) = agents
            .into_iter()
            .find(|(a, _)| a.signing_key == state.agent)
            .ok_or_else(|| Reject::new(ErrorCode::Internal, "agent vanished".into()))?;
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
            quota: self
                .guard
                .open_quota_warning(open_before + 1)
                .map(|(open, most)| OpenQuota {
                    open: u32::try_from(open).unwrap_or(u32::MAX),
                    most: u32::try_from(most).unwrap_or(u32::MAX),
                }),
        })
    }

    /// An open's checks and its conversation, stored (not yet durable): the visitor's and the
    /// customer's places in the open-conversations quota, reserved atomically (pushed onto
    /// `reserved` as they are taken), their opens-per-hour buckets, then the agent pick and
    /// the conversation itself.
    fn open_reserving(
        &self,
        caller: &Caller,
        org: &str,
        c: ConversationId,
        visitor: Option<&[u8; 32]>,
        reserved: &mut Vec<OpenSubject>,
    ) -> Result<Opening, Reject> {
        if let Some(visitor) = visitor {
            self.visitor_open_limit(visitor, org, &c, reserved)?;
            self.guard
                .conversation_open(*visitor)
                .map_err(super::limited)?;
        }
        let open_before = self.open_limits(caller, org, &c, reserved)?;
        let policy = self.policies.current(org)?;
        let agents = self.agents(&policy)?;
        if agents.is_empty() {
            return reject(
                ErrorCode::NotFound,
                format!("{org} has no certified agents yet"),
            );
        }
        let cluster_load = self.cluster_agent_load()?;
        let keys: Vec<SigningPublicKey> = agents.iter().map(|(a, _)| a.signing_key).collect();
        // Online anywhere in the cluster (one query), read before the table's lock is taken.
        let online = self.agents_online(&keys);
        let state = self.convs.create(c, |cached| {
            let load = cluster_load.as_ref().unwrap_or(cached);
            // Least-loaded online agent, else least-loaded of all.
            let Some((agent, _)) =
                super::presence::pick(&keys, &online, load).and_then(|i| agents.get(i))
            else {
                return reject(ErrorCode::NotFound, "no agent available");
            };
            let t = self.clock.now();
            Ok(ConvState {
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
                message_buckets: Default::default(),
            })
        })?;
        Ok(Opening {
            state,
            policy,
            agents,
            open_before,
        })
    }

    /// In a cluster, the conversations assigned to each agent across every node, read from
    /// the store in one scan (this node's table holds only those it touched); `None` on an
    /// engine only this node writes, whose table is the whole picture.
    fn cluster_agent_load(&self) -> Result<Option<HashMap<SigningPublicKey, usize>>, Reject> {
        if !self.store_shared {
            return Ok(None);
        }
        let mut load: HashMap<SigningPublicKey, usize> = HashMap::new();
        for (_, v) in self.store.scan_prefix(Collection::Conversations, &[])? {
            let s: ConvState = dec(&v, "conversation")?;
            *load.entry(s.agent).or_default() += 1;
        }
        Ok(Some(load))
    }

    /// The abuse limits on opening: the customer's open conversations with `org` (those with
    /// an item within `open_conversation_idle_secs`), its place for `c` reserved atomically in
    /// its record (see [`super::open_quota`]), and its opens per hour. Returns how many are
    /// open before this one.
    fn open_limits(
        &self,
        caller: &Caller,
        org: &str,
        c: &ConversationId,
        reserved: &mut Vec<OpenSubject>,
    ) -> Result<usize, Reject> {
        let me = caller.key();
        let idle = self.guard.open_idle.as_secs();
        let subject = OpenSubject::Customer {
            org: org.to_owned(),
            key: me,
        };
        // Conversations opened before the relay kept records: this node's cached ones.
        let legacy = |record: &OpenRecord| {
            let since = self.clock.now().saturating_sub(idle);
            self.convs.select(|s| {
                (s.customer == me
                    && s.org == org
                    && s.last_activity >= since
                    && !record.holds(s.conversation.as_bytes()))
                .then_some(s.last_activity)
            })
        };
        let most = self.guard.open_conversations;
        let Full { open, quietest } = match self.reserve_open(&subject, c, legacy)? {
            Ok(r) => {
                if r.added {
                    reserved.push(subject);
                }
                self.guard
                    .conversation_open(me.to_bytes())
                    .map_err(super::limited)?;
                return Ok(r.open_before);
            }
            Err(full) => full,
        };
        // The first slot frees up when the quietest of them has been quiet for `idle`.
        let wait = (quietest + idle).saturating_sub(self.clock.now()).max(1);
        self.guard.refused(crate::limits::OPEN_CONVERSATIONS);
        Err(Reject::retry_after(
            ErrorCode::QuotaExceeded,
            format!(
                "you have {open} open conversations with {org}, the most this relay allows \
                 ({most}); continue one of them, or wait until one has been quiet for {} h",
                idle / 3600
            ),
            wait,
        ))
    }

    pub(super) async fn transfer(&self, caller: &Caller, c: ConversationId, to: &str) -> Reply {
        let s = self.conv_for(caller, &c)?;
        if caller.key() != s.agent {
            return reject(ErrorCode::Forbidden, "only the assigned agent can transfer");
        }
        let policy = self.policies.current(&s.org)?;
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
        self.convs.update(&c, |st| {
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

    /// The caller's conversations (or, for a master, its org's), from each one's record or
    /// cached state, without restoring any (see [`super::table::ConvTable::summary`]).
    pub(super) fn list_conversations(&self, caller: &Caller) -> Reply {
        let me = caller.key();
        let mut out = Vec::new();
        for (k, v) in self.store.scan_prefix(Collection::Conversations, &[])? {
            let c = ConversationId::try_from(k.as_slice())?;
            let s = self.convs.summary(&c, &v)?;
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

    /// The org's conversations for its master, metadata only: who, when, the consents the
    /// customer shared with the master and the dispute tickets on each. Refused to anyone
    /// but the org's master.
    pub(super) fn org_conversations(&self, caller: &Caller, org: &str) -> Reply {
        if !self.is_master_of(&caller.key(), org)? {
            return reject(
                ErrorCode::Forbidden,
                "only the org's master sees the org's conversations",
            );
        }
        let t = self.clock.now();
        let mut tickets: Vec<TicketState> = Vec::new();
        for (_, v) in self.store.scan_prefix(Collection::Tickets, &[])? {
            let st: TicketState = dec(&v, "ticket")?;
            if st.ticket.org == org {
                tickets.push(st);
            }
        }
        let mut out = Vec::new();
        for (k, v) in self.store.scan_prefix(Collection::Conversations, &[])? {
            let c = ConversationId::try_from(k.as_slice())?;
            let s = self.convs.summary(&c, &v)?;
            if s.org != org {
                continue;
            }
            let on_it: Vec<&TicketState> = tickets
                .iter()
                .filter(|st| st.ticket.conversation == c)
                .collect();
            out.push(OrgConversation {
                conversation: c,
                customer: s.customer_name.clone(),
                agent: s.agent_name.clone(),
                created_at: s.created_at,
                last_activity: s.last_activity,
                last_seq: s.durable_seq,
                consents: self.shared_consents(&c, s.durable_seq)?,
                tickets: on_it.iter().map(|st| st.ticket.id).collect(),
                legal_hold: on_it
                    .iter()
                    .any(|st| st.ticket.expires_at > t && st.closed.is_none()),
            });
        }
        Ok(Response::OrgConversations(out))
    }

    /// The consent tokens shared in conversation `c` (its durable items up to `end`); the
    /// consent index says whether there are any, so most conversations are not read.
    fn shared_consents(&self, c: &ConversationId, end: u64) -> Result<Vec<ConsentToken>, Reject> {
        let mut out = Vec::new();
        if self
            .store
            .scan_prefix(Collection::Meta, &consent_prefix(c))?
            .is_empty()
        {
            return Ok(out);
        }
        let mut cursor = 0;
        while cursor < end {
            let chunk = self.convs.items_after(c, cursor)?;
            if chunk.is_empty() {
                break;
            }
            for (stored, _) in chunk {
                cursor = stored.sequenced.seq;
                if cursor > end {
                    return Ok(out);
                }
                if let Item::Consent(t) = stored.sequenced.item {
                    out.push(t);
                }
            }
        }
        Ok(out)
    }

    pub(super) async fn put_epoch(&self, caller: &Caller, record: EpochRecord) -> Reply {
        // Refused by another node's append, the record was not stored: checked and appended
        // again from the reloaded conversation (a record for an epoch another node stored
        // meanwhile is then refused `stale_epoch`, as it would have been).
        until_stored(|| self.put_epoch_once(caller, record.clone())).await
    }

    /// One attempt of [`Self::put_epoch`]: `None` if the store refused its item.
    async fn put_epoch_once(
        &self,
        caller: &Caller,
        record: EpochRecord,
    ) -> Result<Option<Response>, Reject> {
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
            .policies
            .get(&s.org, Some(record.policy_version))?
            .ok_or_else(|| {
                Reject::new(
                    ErrorCode::BadRequest,
                    "the record's policy version is unknown".into(),
                )
            })?;
        let verified = record.verify(&policy)?;
        let previous = match s.current_epoch {
            None => None,
            Some(e) => Some(
                self.convs
                    .epoch_record(&verified.conversation, e)?
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
        let rotate_after = self.convs.epoch_limit(&s.org, &policy)?;
        let members: BTreeSet<SigningPublicKey> =
            verified.members.iter().map(|m| m.signing_key).collect();
        let record = verified.into_record();
        let ekey = epoch_key(&record.conversation, epoch);
        // The epoch number is the duplicate key: two racing records for the same epoch cannot
        // both be stored.
        let rec_bytes = enc(&record)?;
        let (seq_item, audience) = self.convs.append_item_with(
            &record.conversation,
            Some(epoch),
            Item::Epoch(record.clone()),
            Some((
                epoch_dedupe_key(&record.conversation, epoch),
                Reject::new(ErrorCode::StaleEpoch, EPOCH_TAKEN.into()),
            )),
            Batch::of_put(Collection::Epochs, &ekey, &rec_bytes),
            |st| {
                st.current_epoch = Some(epoch);
                st.readers.insert(epoch, members.clone());
                st.epoch_messages = 0;
                st.rotate_after = Some(rotate_after);
            },
        )?;
        self.commit.durable().await?;
        if self.item_refused(&seq_item, Some(epoch))? {
            return Ok(None);
        }
        self.push_item(&seq_item, &audience, caller.origin());
        Ok(Some(Response::stored(seq_item.seq)))
    }

    pub(super) async fn put_handoff(&self, caller: &Caller, h: HandOff) -> Reply {
        // Refused by another node's append, the hand-off was not stored: checked and
        // appended again from the reloaded conversation.
        until_stored(|| self.put_handoff_once(caller, h.clone())).await
    }

    /// One attempt of [`Self::put_handoff`]: `None` if the store refused its item.
    async fn put_handoff_once(
        &self,
        caller: &Caller,
        h: HandOff,
    ) -> Result<Option<Response>, Reject> {
        let s = self.conv_for(caller, &h.conversation)?;
        if h.from != caller.key() {
            return reject(ErrorCode::Forbidden, "a hand-off must come from its signer");
        }
        h.check_signature()?;
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
        let (seq_item, _) = self
            .convs
            .append_item(&conv, target, Item::HandOff(h), |st| {
                for e in &epochs {
                    st.readers.entry(*e).or_default().insert(to);
                }
            })?;
        self.commit.durable().await?;
        if self.item_refused(&seq_item, target)? {
            return Ok(None);
        }
        self.push_item(&seq_item, &[to], caller.origin());
        Ok(Some(Response::stored(seq_item.seq)))
    }

    /// The first half of a `Send`: checks and stores the message, and queues the wait for its
    /// group commit, without waiting. [`Self::acknowledge`] finishes it. A session may stage
    /// its next messages before the earlier ones are acknowledged (pipelining); they then
    /// share flushes.
    pub fn stage_send(&self, caller: &Caller, env: Envelope) -> Result<Staged, Reject> {
        let started = std::time::Instant::now();
        self.refuse_blocked_send(caller, &env.header.conversation)?;
        let size = env.ciphertext.len();
        let sender = caller.key();
        let sender_bytes = sender.to_bytes();
        // The sender's message bucket is the conversation's own, taken under the lock the
        // append holds: no relay-wide lock on the send path.
        // The stored-bytes quotas are checked under the conversation table's lock, which
        // names the org: the sender's count is read (if this node has not yet) before it.
        self.stored_bytes(&super::keys::account_bytes_key(&sender))?;
        let mut org = None;
        let mut quota = None;
        let (item, audience) = self.convs.append_message(&sender, env, |s| {
            self.guard
                .message(&mut s.message_buckets, &sender_bytes)
                .map_err(super::limited)?;
            quota = self.check_bytes(&sender, &s.org, size as u64, "this message")?;
            org = Some(s.org.clone());
            Ok(())
        })?;
        if let Some(org) = &org {
            // The message is stored: a count that could not be written is not worth refusing
            // it over (the client would send it again, with a counter already used).
            if let Err(e) = self.count_bytes(&sender, org, i64::try_from(size).unwrap_or(i64::MAX))
            {
                warn!(code = ?e.code, "a message's bytes not counted: {}", e.message);
            }
        }
        debug!(conversation = %item.conversation, seq = item.seq, size, "message stored");
        Ok(Staged {
            started,
            durable: Box::pin(self.commit.durable()),
            item,
            audience,
            sender: caller.key(),
            origin: caller.origin(),
            quota,
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
            origin,
            quota,
        } = staged;
        if let Err(e) = durable.await {
            return Reject::from(e).into_response();
        }
        // In a cluster, another node may have taken the number: the message is then stored
        // again, under the next free one.
        let (item, audience) = match self.settle_send(item, audience, &sender).await {
            Ok(settled) => settled,
            Err(refusal) => return refusal.into_response(),
        };
        self.metrics.messages_stored.inc();
        self.push_item(&item, &audience, origin);
        self.metrics
            .ack_latency
            .observe(started.elapsed().as_secs_f64());
        Response::Stored {
            seq: item.seq,
            quota: quota.map(super::stored_bytes::byte_quota),
        }
    }

    pub(super) fn history(
        &self,
        caller: &Caller,
        c: ConversationId,
        after: u64,
        limit: u32,
    ) -> Reply {
        let me = caller.key();
        if self.store_shared {
            // Other nodes append too: serve what the database holds now.
            self.convs.refresh(&c)?;
        }
        let s = match self.convs.get(&c)? {
            Some(s) if s.involves(&me) || self.is_master_of(&me, &s.org)? => s,
            _ => return reject(ErrorCode::NotFound, "no such conversation for this account"),
        };
        let master = self.is_master_of(&me, &s.org)?;
        if self.store_shared {
            // A member reading here: push what other nodes store from now on.
            self.cursors.watch(c, s.durable_seq)?;
        }
        /// Skipped runs per page at most (about 30 bytes each in the frame).
        const MAX_SKIPPED: usize = 256;
        let limit = (limit as usize).clamp(1, MAX_PAGE);
        let mut items = Vec::new();
        let mut skipped: Vec<sealdesk_protocol::wire::SkippedRange> = Vec::new();
        let mut bytes = 0usize;
        let mut cursor = after;
        // Serve only what is on disk (see `ConvState::durable_seq`); the page names it, so a
        // page that stops short of it shows a hole (PROTOCOL.md §13.10).
        let end = s.durable_seq;
        let page = |items, more, skipped| Response::Items {
            items,
            more,
            skipped,
            head: Some(end),
        };
        // Items the caller may not read (epochs before it joined, without a hand-off; for an
        // agent, consents and notices) are named as skipped runs, not served, so keep scanning
        // in chunks until the page is full or the conversation ends. The records of the epochs
        // before a transfer are served to the agent it brought in (`reads_earlier_record`).
        let mut joined = None;
        'scan: while cursor < end {
            let chunk = self.convs.items_after(&c, cursor)?;
            if chunk.is_empty() {
                break;
            }
            for (stored, size) in chunk {
                let seq = stored.sequenced.seq;
                if seq > end {
                    break 'scan;
                }
                if !master
                    && !s.may_read(&me, stored.epoch)
                    && !self.reads_earlier_record(&s, &me, &stored, &mut joined)?
                {
                    let full = skipped.len() >= MAX_SKIPPED;
                    match skipped.last_mut() {
                        Some(run) if run.to + 1 == seq && run.epoch == stored.epoch => {
                            run.to = seq;
                        }
                        _ if full => return Ok(page(items, true, skipped)),
                        _ => skipped.push(sealdesk_protocol::wire::SkippedRange {
                            from: seq,
                            to: seq,
                            epoch: stored.epoch,
                        }),
                    }
                    cursor = seq;
                    continue;
                }
                // The first item always fits (the frame limit is sized for one largest
                // message); later ones only while the page stays under PAGE_BYTES.
                if items.len() >= limit || (!items.is_empty() && bytes + size > PAGE_BYTES) {
                    return Ok(page(items, true, skipped));
                }
                bytes += size;
                cursor = seq;
                items.push(stored.sequenced);
                if cursor >= end {
                    break 'scan;
                }
            }
        }
        Ok(page(items, false, skipped))
    }

    /// Whether `who`, no reader of `stored`'s epoch, is served it all the same: it is the
    /// record of an epoch before the first one `who` reads, and a member of the previous epoch
    /// (an agent transferring the conversation, as `put_epoch` checked), not the customer,
    /// made that first one. So an agent brought in by a transfer reads the chain from the
    /// customer's epoch 0, whether or not it was handed the earlier epochs' secrets, and
    /// never their messages (PROTOCOL.md §7.6, §13.10). An agent that joins late (re-certified
    /// for a new key, §4.4: the customer made its first epoch) is served none. `joined` caches
    /// that first epoch for one page: `Some(None)` when `who` joined by no transfer.
    fn reads_earlier_record(
        &self,
        s: &ConvState,
        who: &SigningPublicKey,
        stored: &StoredItem,
        joined: &mut Option<Option<u32>>,
    ) -> Result<bool, Reject> {
        let (Some(epoch), Item::Epoch(_)) = (stored.epoch, &stored.sequenced.item) else {
            return Ok(false);
        };
        if joined.is_none() {
            let by_transfer = match s.first_read_epoch(who) {
                Some(first) if first > 0 => {
                    let record = self.convs.epoch_record(&s.conversation, first)?;
                    (record.creator != s.customer).then_some(first)
                }
                _ => None,
            };
            *joined = Some(by_transfer);
        }
        Ok(joined.flatten().is_some_and(|first| epoch < first))
    }

    pub(super) fn delivered_seq(
        &self,
        c: &ConversationId,
        who: &SigningPublicKey,
    ) -> Result<u64, Reject> {
        let k = delivery_key(c, who);
        Ok(self
            .store
            .get(Collection::Deliveries, &k)?
            .and_then(|b| b.try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    pub(super) fn delivered(&self, caller: &Caller, c: ConversationId, seq: u64) -> Reply {
        let s = self.conv_for(caller, &c)?;
        let seq = seq.min(s.durable_seq);
        let k = delivery_key(&c, &caller.key());
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
}

/// The policy a stored epoch was made under.
pub(super) fn policy_for(
    svc: &Service,
    org: &str,
    epoch: u32,
    next: &VerifiedEpoch,
) -> Result<VerifiedPolicy, Reject> {
    let rec = svc.convs.epoch_record(&next.conversation, epoch)?;
    svc.policies
        .get(org, Some(rec.policy_version))?
        .ok_or_else(|| {
            Reject::new(
                ErrorCode::Internal,
                "the policy of a stored epoch is missing".into(),
            )
        })
}
