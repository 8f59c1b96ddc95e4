//! The conversation table: what the relay knows about every conversation it has touched since
//! it started (cached [`ConvState`]s), loaded from the store on first use and kept up to date
//! by every append. Its lock serialises sequence-number assignment within the relay.
//!
//! A conversation's record (in `conversations`) is rewritten with every item that changes who
//! may read (epochs, hand-offs, consents, notices), but not with plain messages: those are
//! appended alone, and [`ConvTable::restore`] brings the record up to date from the items after
//! it. The items are the truth.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use sealdesk_protocol::{
    epoch::EpochRecord,
    ids::ConversationId,
    keys::SigningPublicKey,
    message::{Envelope, MAX_BODY, MAX_CIPHERTEXT},
    policy::VerifiedPolicy,
    wire::{ErrorCode, Item, Sequenced},
};
use tracing::warn;

use super::{
    COUNTER_REUSED, Reject, dec,
    directory::Policies,
    enc,
    keys::{epoch_key, legacy_counter_prefix},
    lock, reject,
};
use crate::{
    clock::ClockHandle,
    relay::state::{ConvState, StoredItem},
    store::{Batch, Collection, ConversationLog, MessageAppend, Refused, seq_from_key},
};

/// Longest run of items read from the store at once (a history page, a replay step).
pub(super) const MAX_PAGE: usize = 200;

/// A message append rewrites the conversation record once per this many items, which bounds
/// the tail [`ConvTable::restore`] replays.
pub(super) const CHECKPOINT_EVERY: u64 = 256;

/// An appended item and the members to push it to.
pub(super) type Appended = (Sequenced, Vec<SigningPublicKey>);

/// The cached conversation states over the store (see the module docs).
pub(super) struct ConvTable {
    /// The engine: its conversation log for items, its key-value collections for the rest.
    store: Arc<dyn ConversationLog>,
    clock: ClockHandle,
    /// Read for the rotation limit of conversations stored without one.
    policies: Arc<Policies>,
    /// A std Mutex: held for in-memory updates and synchronous store writes only, never
    /// across an await. The lock also serialises sequence-number assignment.
    states: Mutex<HashMap<ConversationId, ConvState>>,
}

impl ConvTable {
    /// An empty table over `store`.
    pub(super) fn new(
        store: Arc<dyn ConversationLog>,
        clock: ClockHandle,
        policies: Arc<Policies>,
    ) -> Self {
        Self {
            store,
            clock,
            policies,
            states: Mutex::new(HashMap::new()),
        }
    }

    /// Stores a new conversation `c`, made by `make` from the number of cached conversations
    /// each agent holds, unless the id is taken.
    pub(super) fn create(
        &self,
        c: ConversationId,
        make: impl FnOnce(&HashMap<SigningPublicKey, usize>) -> Result<ConvState, Reject>,
    ) -> Result<ConvState, Reject> {
        let mut convs = lock(&self.states)?;
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
        let mut load: HashMap<SigningPublicKey, usize> = HashMap::new();
        for s in convs.values() {
            *load.entry(s.agent).or_default() += 1;
        }
        let s = make(&load)?;
        self.store
            .put(Collection::Conversations, c.as_bytes(), &enc(&s)?)?;
        convs.insert(c, s.clone());
        Ok(s)
    }

    /// `pick` of every cached conversation (those opened or used since the relay started)
    /// it gives something for.
    pub(super) fn select<T>(
        &self,
        pick: impl Fn(&ConvState) -> Option<T>,
    ) -> Result<Vec<T>, Reject> {
        Ok(lock(&self.states)?.values().filter_map(pick).collect())
    }

    /// Runs `delete` (which deletes the conversation from the store) under the table's lock,
    /// then forgets the cached state.
    pub(super) fn erase(
        &self,
        c: &ConversationId,
        delete: impl FnOnce() -> Result<(), Reject>,
    ) -> Result<(), Reject> {
        let mut convs = lock(&self.states)?;
        delete()?;
        convs.remove(c);
        Ok(())
    }

    /// What a listing shows of the conversation whose stored record is `record`, without
    /// restoring it: the cached state, or the record with its last stored item's number as
    /// `durable_seq` (everything on disk of a conversation not in the cache is durable). The
    /// record says who is involved (it is rewritten with every item that changes that).
    pub(super) fn summary(&self, c: &ConversationId, record: &[u8]) -> Result<ConvState, Reject> {
        let cached = lock(&self.states)?.get(c).cloned();
        if let Some(s) = cached {
            return Ok(s);
        }
        let mut s: ConvState = dec(record, "conversation")?;
        let last = self.store.last_seq(c.as_bytes())?.unwrap_or(0);
        s.last_seq = s.last_seq.max(last);
        s.durable_seq = s.last_seq;
        Ok(s)
    }

    /// A copy of the conversation's state, loaded into the cache if needed.
    pub(super) fn get(&self, c: &ConversationId) -> Result<Option<ConvState>, Reject> {
        if !self.load(c)? {
            return Ok(None);
        }
        Ok(lock(&self.states)?.get(c).cloned())
    }

    /// Makes sure the conversation's state is in the cache (restoring it from the store if
    /// needed); returns whether the conversation exists. The disk is read outside the lock.
    pub(super) fn load(&self, c: &ConversationId) -> Result<bool, Reject> {
        if lock(&self.states)?.contains_key(c) {
            return Ok(true);
        }
        let Some(b) = self.store.get(Collection::Conversations, c.as_bytes())? else {
            return Ok(false);
        };
        let s = self.restore(&b)?;
        // Another task may have loaded it meanwhile; the first one in wins (same content).
        lock(&self.states)?.entry(*c).or_insert(s);
        Ok(true)
    }

    /// The live state of the conversation whose stored record is `record`: the cached one, or
    /// the record brought up to date from the items, without caching it (for scans over every
    /// conversation).
    pub(super) fn live_state(
        &self,
        c: &ConversationId,
        record: &[u8],
    ) -> Result<ConvState, Reject> {
        let cached = lock(&self.states)?.get(c).cloned();
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
    pub(super) fn restore(&self, record: &[u8]) -> Result<ConvState, Reject> {
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
        if self.store.shared() {
            // What this node reads includes its own writes not yet committed: serve only what
            // the database holds.
            let committed = self.store.committed_last_seq(c.as_bytes())?.unwrap_or(0);
            s.durable_seq = s.durable_seq.min(committed);
        }
        Ok(s)
    }

    /// Up to `MAX_PAGE` stored items of `c` after `seq`, in order, each with its stored size.
    pub(super) fn items_after(
        &self,
        c: &ConversationId,
        seq: u64,
    ) -> Result<Vec<(StoredItem, usize)>, Reject> {
        self.store
            .items_after(c.as_bytes(), seq, MAX_PAGE)?
            .into_iter()
            .map(|(_, v)| Ok((dec(&v, "item")?, v.len())))
            .collect()
    }

    /// Replaces the cached state of `c` (if cached) with the one restored from the store:
    /// after another relay node changed the conversation, or refused an append this node made.
    /// The cached state is replaced, not dropped, so a concurrent append still finds one.
    pub(crate) fn refresh(&self, c: &ConversationId) -> Result<(), Reject> {
        if !lock(&self.states)?.contains_key(c) {
            return Ok(());
        }
        match self.store.get(Collection::Conversations, c.as_bytes())? {
            Some(b) => {
                let s = self.restore(&b)?;
                lock(&self.states)?.insert(*c, s);
            }
            None => {
                lock(&self.states)?.remove(c);
            }
        }
        Ok(())
    }

    /// Cluster mode: brings the cached state of `c` (if cached) up to date with `items`,
    /// committed items read in order (another node's appends among them), without reading
    /// the store, counting messages as [`Self::restore`] does. Answers `false` if it cannot —
    /// an item that is not a message (its record changed with it), a gap after the cached
    /// last item, a sender not yet counted in the epoch — and the caller refreshes instead.
    pub(super) fn advance(&self, c: &ConversationId, items: &[StoredItem]) -> Result<bool, Reject> {
        let mut states = lock(&self.states)?;
        let Some(s) = states.get_mut(c) else {
            return Ok(true);
        };
        for stored in items {
            let item = &stored.sequenced;
            if item.seq <= s.last_seq {
                continue;
            }
            let Item::Message(env) = &item.item else {
                return Ok(false);
            };
            let key = (env.header.epoch, env.header.sender);
            if item.seq != s.last_seq.saturating_add(1) || s.current_epoch != Some(key.0) {
                return Ok(false);
            }
            let Some(top) = s.counters.get_mut(&key) else {
                return Ok(false);
            };
            *top = (*top).max(env.header.counter);
            s.epoch_messages = s.epoch_messages.saturating_add(1);
            s.last_seq = item.seq;
            s.last_activity = item.stored_at;
            s.durable_seq = s.durable_seq.max(item.seq);
        }
        Ok(true)
    }

    /// In a cluster, makes the cached state of `c` current before a write that rewrites the
    /// conversation record from it (another node may have changed who reads since).
    fn refresh_if_shared(&self, c: &ConversationId) -> Result<(), Reject> {
        if self.store.shared() {
            self.refresh(c)?;
        }
        Ok(())
    }

    /// Whether the store refused the append `what` to `c` when it committed it (see
    /// [`ConversationLog::take_refused`]: a refused message then holds the conversation until
    /// it is appended again or [given up](Self::give_up_refused)); if so, the cached state is
    /// refreshed (what [`Self::append_message_again`] appends from).
    pub(super) fn take_refused(&self, c: &ConversationId, what: &Refused) -> Result<bool, Reject> {
        let refused = self.store.take_refused(c.as_bytes(), what)?;
        if refused {
            self.refresh(c)?;
        }
        Ok(refused)
    }

    /// The refused message `what`, taken, will not be appended again: ends its hold on `c`
    /// (see [`ConversationLog::give_up_refused`]), and reloads `c`.
    pub(super) fn give_up_refused(&self, c: &ConversationId, what: &Refused) -> Result<(), Reject> {
        self.store.give_up_refused(c.as_bytes(), what)?;
        self.refresh(c)
    }

    /// The engine, for what the service forwards to other relay nodes
    /// ([`ConversationLog::forward_push`], [`ConversationLog::forward_release`]).
    pub(super) fn engine(&self) -> &dyn ConversationLog {
        self.store.as_ref()
    }

    /// The conversation's committed items after `seq` (what every node can read), up to
    /// `MAX_PAGE`.
    pub(super) fn committed_items_after(
        &self,
        c: &ConversationId,
        seq: u64,
    ) -> Result<Vec<StoredItem>, Reject> {
        self.store
            .committed_items_after(c.as_bytes(), seq, MAX_PAGE)?
            .into_iter()
            .map(|(_, v)| dec(&v, "item"))
            .collect()
    }

    /// Records that everything up to `seq` in `c` is on disk (after a `durable()` that covered
    /// the write of `seq`; group commit flushes in order, so all lower numbers are too).
    pub(super) fn mark_durable(&self, c: &ConversationId, seq: u64) -> Result<(), Reject> {
        if let Some(s) = lock(&self.states)?.get_mut(c) {
            s.durable_seq = s.durable_seq.max(seq);
        }
        Ok(())
    }

    /// Changes the cached state of `c` with `f` and rewrites its record (a transfer).
    pub(super) fn update(
        &self,
        c: &ConversationId,
        f: impl FnOnce(&mut ConvState),
    ) -> Result<(), Reject> {
        self.refresh_if_shared(c)?;
        let mut convs = lock(&self.states)?;
        let s = convs
            .get_mut(c)
            .ok_or_else(|| Reject::new(ErrorCode::NotFound, "no such conversation".into()))?;
        f(s);
        self.store
            .put(Collection::Conversations, c.as_bytes(), &enc(&*s)?)?;
        Ok(())
    }

    /// Appends an item that is not a message (those go through [`Self::append_message`]) to a
    /// conversation under the conversation lock. Returns the item and the push audience.
    pub(super) fn append_item(
        &self,
        c: &ConversationId,
        epoch: Option<u32>,
        item: Item,
        update: impl FnOnce(&mut ConvState),
    ) -> Result<(Sequenced, Vec<SigningPublicKey>), Reject> {
        self.append_item_with(c, epoch, item, None, Batch::new(), update)
    }

    /// [`Self::append_item`] with a duplicate key that must not exist yet (`dedupe`, with the
    /// refusal to answer if it does) and more writes (`also`) in the same transaction (the epoch
    /// index of `PutEpoch`; the audit leaf of a release notice).
    pub(super) fn append_item_with(
        &self,
        c: &ConversationId,
        epoch: Option<u32>,
        item: Item,
        dedupe: Option<(Vec<u8>, Reject)>,
        also: Batch,
        update: impl FnOnce(&mut ConvState),
    ) -> Result<(Sequenced, Vec<SigningPublicKey>), Reject> {
        let (dedupe, taken) = match dedupe {
            Some((k, taken)) => (Some(k), Some(taken)),
            None => (None, None),
        };
        self.try_append_item_with(c, epoch, item, dedupe.as_deref(), also, update)?
            .ok_or_else(|| {
                taken.unwrap_or_else(|| {
                    Reject::new(
                        ErrorCode::Internal,
                        "a conditional write failed without a duplicate key".into(),
                    )
                })
            })
    }

    /// [`Self::append_item_with`], answering `None`, with nothing written, if a conditional
    /// write of the transaction (`dedupe`, or one of `also`: an audit leaf's index another
    /// relay node took, a ticket another node changed) found its key taken or changed.
    pub(super) fn try_append_item_with(
        &self,
        c: &ConversationId,
        epoch: Option<u32>,
        item: Item,
        dedupe: Option<&[u8]>,
        also: Batch,
        update: impl FnOnce(&mut ConvState),
    ) -> Result<Option<(Sequenced, Vec<SigningPublicKey>)>, Reject> {
        self.refresh_if_shared(c)?;
        let mut convs = lock(&self.states)?;
        let s = convs
            .get_mut(c)
            .ok_or_else(|| Reject::new(ErrorCode::NotFound, "no such conversation".into()))?;
        let mut next = s.clone();
        next.last_seq += 1;
        next.last_activity = self.clock.now();
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
        if let Some(k) = dedupe {
            b.insert_if_absent(Collection::MessageKeys, k, &next.last_seq.to_be_bytes());
        }
        b.extend(also);
        b.put(Collection::Conversations, c.as_bytes(), &enc(&next)?);
        if !self
            .store
            .append_item(c.as_bytes(), next.last_seq, &enc(&stored)?, b)?
        {
            return Ok(None);
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
        Ok(Some((stored.sequenced, audience)))
    }

    /// How the store names item `item` of epoch `epoch` if it refuses it
    /// ([`Refused::item`]): by the bytes [`Self::try_append_item_with`] appended it as.
    pub(super) fn refusal_of(epoch: Option<u32>, item: &Sequenced) -> Result<Refused, Reject> {
        let stored = StoredItem {
            epoch,
            sequenced: item.clone(),
        };
        Ok(Refused::item(item.seq, &enc(&stored)?))
    }

    /// Checks and appends a message from `sender`: the hot path, so it works on the cached
    /// state in place, and stores not one transaction like [`Self::append_item_with`] but one
    /// write, the item. The conversation record is not rewritten (only every
    /// [`CHECKPOINT_EVERY`] messages, after the item, in order: sled recovers a prefix of its
    /// writes after a crash, so never a record ahead of its items): [`Self::restore`] rebuilds
    /// the sequence number and the senders' highest counters from the items. A crash leaves
    /// the item or nothing; never a reserved counter without its item, never a sequence gap.
    ///
    /// `admit` runs on the cached state, under the lock, once the sender is known to be
    /// involved in the conversation and before any other check: the sender's rate limit,
    /// which a refused attempt uses up as well.
    pub(super) fn append_message(
        &self,
        sender: &SigningPublicKey,
        env: Envelope,
        admit: impl FnOnce(&mut ConvState) -> Result<(), Reject>,
    ) -> Result<(Sequenced, Vec<SigningPublicKey>), Reject> {
        self.append_message_as(sender, env, false, admit)
    }

    /// [`Self::append_message`] again, after the store refused the first append (another
    /// relay node took its number): from the conversation's state [`Self::take_refused`]
    /// reloaded from the store (which, held, no other message of this node changed since).
    pub(super) fn append_message_again(
        &self,
        sender: &SigningPublicKey,
        env: Envelope,
    ) -> Result<(Sequenced, Vec<SigningPublicKey>), Reject> {
        // Admitted the first time: a retry takes nothing from the sender's rate.
        self.append_message_as(sender, env, true, |_| Ok(()))
    }

    fn append_message_as(
        &self,
        sender: &SigningPublicKey,
        env: Envelope,
        again: bool,
        admit: impl FnOnce(&mut ConvState) -> Result<(), Reject>,
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
        let mut convs = lock(&self.states)?;
        let Some(s) = convs.get_mut(&c).filter(|s| s.involves(sender)) else {
            // Same answer whether it exists or not: ids are not an oracle.
            return reject(ErrorCode::NotFound, "no such conversation for this account");
        };
        admit(s)?;
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
        let at = self.clock.now();
        let stored = StoredItem {
            epoch: Some(epoch),
            sequenced: Sequenced {
                conversation: c,
                seq,
                stored_at: at,
                item: Item::Message(env),
            },
        };
        let record = if seq % CHECKPOINT_EVERY == 0 {
            let mut record = s.clone();
            record.note_message(seq, at, (epoch, *sender), counter);
            Some(enc(&record)?)
        } else {
            None
        };
        let item = enc(&stored)?;
        let append = MessageAppend {
            conversation: c.as_bytes(),
            seq,
            epoch,
            sender: sender.as_bytes(),
            counter,
            item: &item,
            record: record.as_deref(),
        };
        let appended = if again {
            self.store.append_message_again(&append).map(|()| true)
        } else {
            self.store.append_message(&append)
        };
        let staged = match appended {
            Ok(staged) => staged,
            Err(e) => {
                // Part of the batch may be stored: forget the cached state so that the next
                // use restores it from what is on disk.
                convs.remove(&c);
                return Err(e.into());
            }
        };
        // A message the engine held back (behind a refused one, see `take_refused`) is not
        // counted: its writer appends it again, from the state reloaded then, and a counter
        // counted here would make that append `counter_reused`.
        if staged {
            s.note_message(seq, at, (epoch, *sender), counter);
        }
        let audience = s
            .readers
            .get(&epoch)
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default();
        Ok((stored.sequenced, audience))
    }

    /// The highest counter an earlier relay build stored a duplicate key for under `prefix`
    /// (see [`legacy_counter_prefix`]), from the keys themselves.
    pub(super) fn legacy_highest_counter(&self, prefix: &[u8]) -> Result<Option<u64>, Reject> {
        Ok(self
            .store
            .last(Collection::MessageKeys, prefix)?
            .and_then(|(k, _)| seq_from_key(&k)))
    }

    /// The message limit of an epoch whose record names `policy`: the smaller of its
    /// `rotate_after_messages` and the org's latest policy's, so that a record naming an
    /// older, looser policy does not lift the limit the org has now (PROTOCOL.md §7.7).
    pub(super) fn epoch_limit(&self, org: &str, policy: &VerifiedPolicy) -> Result<u32, Reject> {
        let latest = self.policies.current(org)?;
        Ok(policy
            .rotate_after_messages
            .min(latest.rotate_after_messages))
    }

    /// The limit of the current epoch of a conversation stored by a relay build that did not
    /// keep it (`rotate_after: None`), from the epoch's stored record.
    pub(super) fn stored_epoch_limit(&self, s: &ConvState) -> Result<Option<u32>, Reject> {
        let Some(epoch) = s.current_epoch else {
            return Ok(None);
        };
        let record = match self.epoch_record(&s.conversation, epoch) {
            Ok(r) => r,
            Err(Reject {
                code: ErrorCode::NotFound,
                ..
            }) => {
                warn!(conversation = %s.conversation, epoch, "the current epoch's record is missing");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        match self.policies.get(&s.org, Some(record.policy_version))? {
            Some(policy) => Ok(Some(self.epoch_limit(&s.org, &policy)?)),
            None => Ok(None),
        }
    }

    pub(super) fn epoch_record(
        &self,
        c: &ConversationId,
        epoch: u32,
    ) -> Result<EpochRecord, Reject> {
        match self.store.get(Collection::Epochs, &epoch_key(c, epoch))? {
            Some(b) => dec(&b, "epoch record"),
            None => reject(ErrorCode::NotFound, format!("no epoch {epoch}")),
        }
    }
}
