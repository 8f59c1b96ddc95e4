//! Cluster mode in the service: several relay nodes on one shared store (PostgreSQL).
//!
//! - **Refused appends.** A node's cached conversation state can be behind another node's
//!   appends; the database then refuses the append (its sequence number or counter is taken)
//!   and the engine reports it ([`ConversationLog::take_refused`](crate::store::ConversationLog::take_refused)).
//!   [`Service::settle_send`] asks once the write is durable, reloads the conversation and
//!   appends the message again (in the order its session sent it), so the sender is answered
//!   `stored` only for what the database holds, under the number it holds it.
//! - **Cross-node pushes.** A node learns of other nodes' items from wake-ups
//!   ([`Service::woken`]) and from a periodic catch-up ([`Service::behind`]); for the
//!   conversations with members connected to it, it reads the committed items after its cursor
//!   and pushes them, once per member connection: the cursor is per conversation and per node,
//!   every read starts at it (never earlier, whatever a wake-up names), and items this node
//!   pushed itself when it acknowledged them are skipped. The sender's own connections here
//!   (its other devices) get the item like everyone else's, as on the node that stored it.
//!   The org's master, no
//!   member, is not pushed a consent from a cursor: the node that stored it forwards it to the
//!   master's connections on the others ([`Service::forward_item`]), and a node that misses
//!   the forward makes it up at its next catch-up ([`consent_makeup`](super::consent_makeup)). The items read also bring what the node caches of the conversation up to date (messages
//!   are counted in; an item that changed the record reloads it). A wake-up round reads every conversation it names in one
//!   statement ([`committed_tails`](crate::store::ConversationLog::committed_tails)), not one
//!   round trip (or two) each. The periodic catch-up ([`Service::behind`]) asks the database
//!   for the heads of every watched conversation in one statement, outside the rounds, and
//!   hands those that moved past what this node pushed to the next round, which reads them
//!   with the conversations its wake-ups name (once each, in the same statement). A conversation gets a cursor when this node pushes one of its items,
//!   when a wake-up names it, or when a member reads its history here.

use std::{
    collections::{BTreeSet, HashMap},
    time::Instant,
};

use bytes::Bytes;
use sealdesk_protocol::{
    ids::{ConversationId, TokenId},
    keys::SigningPublicKey,
    wire::{self, ErrorCode, Frame, Item, Push, Sequenced},
};
use tracing::{debug, info, warn};

use super::{Reject, Service, dec, lock, table::MAX_PAGE};
use crate::{connection::CloseReason, metrics::RoundTimes, relay::state::StoredItem};

/// The close reasons one node may ask the others to close sessions with, by code
/// ([`Service::forward_close`]).
fn close_reason(code: u16) -> Option<CloseReason> {
    match super::recovery::CLOSE_KEY_REPLACED {
        r @ CloseReason::Application { code: known, .. } if known == code => Some(r),
        _ => None,
    }
}

/// **Test-only**: when this variable is set, the node drops the closes other nodes forward
/// (`Service::forwarded_close`), as a node whose wake-up listener was reconnecting at that
/// instant misses them. Never set it in production; a build without the test hooks ignores
/// it ([`crate::test_hooks`]).
pub const DROP_CLOSES_ENV: &str = "SEALDESK_TEST_DROP_FORWARDED_CLOSES";

/// **Test-only**: when this variable names a file, the periodic catch-up
/// (`Service::behind`) waits while that file exists, as a catch-up whose query is slow on a
/// loaded database does, and logs once that it is held. Tests close it (create the file) to
/// show that wake-up rounds go on meanwhile. Never set it in production: a gate left closed
/// stops the catch-up, and with it the delivery of lost wake-ups; a build without the test
/// hooks ignores it ([`crate::test_hooks`]).
pub const CATCH_UP_GATE_ENV: &str = "SEALDESK_TEST_CATCH_UP_GATE";

/// Blocks while the [catch-up gate](CATCH_UP_GATE_ENV) is closed (test only).
fn hold_at_catch_up_gate() {
    if let Some(gate) = crate::test_hooks::var_os(CATCH_UP_GATE_ENV) {
        crate::test_hooks::hold_while_exists(gate.as_ref(), "a catch-up held at its gate");
    }
}

/// The release request a push carries, if it is one (forwarded by id, see
/// [`Service::forward`]).
pub(super) fn release_of(push: &Push) -> Option<TokenId> {
    match push {
        Push::Release(p) => Some(p.request.id),
        _ => None,
    }
}
use crate::store::{Collection, Refused};

/// Makes `attempt` — a request's checks, its append of an item other than a message, and the
/// wait for its commit — until the store keeps what it appended: `attempt` answers `None`
/// when the store refused its item ([`Service::item_refused`]), and is made again from the
/// reloaded conversation, every check with it (so an item another node made obsolete
/// meanwhile, a second epoch record for one epoch, is refused for its own reason). Nothing of
/// a refused attempt was stored, so its writer is answered for the attempt that was.
///
/// # Errors
///
/// `attempt`'s refusal; `conflict` if other nodes took the conversation's next number
/// [`MAX_AGAIN`] times in a row (nothing of this request is stored then, and the client
/// sends it again).
pub(super) async fn until_stored<T, F, Fut>(mut attempt: F) -> Result<T, Reject>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, Reject>>,
{
    for _ in 0..MAX_AGAIN {
        if let Some(out) = attempt().await? {
            return Ok(out);
        }
    }
    Err(Reject::new(
        ErrorCode::Conflict,
        "other relay nodes kept taking this conversation's next number; nothing was stored, \
         send it again"
            .into(),
    ))
}

/// How many times a message is appended again after the database refused it. Each refusal
/// means another node appended to the conversation meanwhile, so the cluster progresses; but
/// while another node's member bursts into the conversation, one message can lose several
/// times in a row (8 was seen to run out on the loaded 2-core test machine).
pub(super) const MAX_AGAIN: usize = 64;

/// A conversation's push cursor on this node.
#[derive(Debug, Default)]
struct Cursor {
    /// Every committed item up to here was pushed (or was before this node watched).
    pushed: u64,
    /// Items above `pushed` this node already pushed when it acknowledged them.
    local: BTreeSet<u64>,
}

impl Cursor {
    /// The last sequence number up to which every item was pushed (see [`Cursors::positions`]).
    fn upto(&self) -> u64 {
        let mut upto = self.pushed;
        while self.local.contains(&upto.saturating_add(1)) {
            upto += 1;
        }
        upto
    }
}

/// The push cursors of the conversations this node watches.
#[derive(Debug, Default)]
pub(crate) struct Cursors {
    inner: std::sync::Mutex<HashMap<ConversationId, Cursor>>,
}

impl Cursors {
    /// Watches `c` from `after` on, unless it is watched already.
    pub(super) fn watch(&self, c: ConversationId, after: u64) -> Result<(), Reject> {
        lock(&self.inner)?.entry(c).or_insert(Cursor {
            pushed: after,
            local: BTreeSet::new(),
        });
        Ok(())
    }

    /// Records that this node pushes item `seq` of `c` itself, on acknowledging it; `false`
    /// if a read from the cursor pushed it already (it read the item once committed, before
    /// the acknowledgement): then it is not pushed again.
    pub(super) fn pushed_locally(&self, c: ConversationId, seq: u64) -> Result<bool, Reject> {
        let mut m = lock(&self.inner)?;
        let cur = m.entry(c).or_insert(Cursor {
            pushed: seq.saturating_sub(1),
            local: BTreeSet::new(),
        });
        if seq <= cur.pushed {
            return Ok(false);
        }
        cur.local.insert(seq);
        Ok(true)
    }

    /// Moves the cursor of `c` (watched from `from` if it is not yet) to item `seq`, read from
    /// the database, and answers whether the read pushes it: not if this node pushed it
    /// itself. Taken item by item under the lock that [`Self::pushed_locally`] takes, so an
    /// item is pushed by the read or by its acknowledgement, never by both.
    fn claim(&self, c: ConversationId, seq: u64, from: u64) -> Result<bool, Reject> {
        let mut m = lock(&self.inner)?;
        let cur = m.entry(c).or_insert(Cursor {
            pushed: from,
            local: BTreeSet::new(),
        });
        let mine = cur.local.contains(&seq);
        cur.pushed = cur.pushed.max(seq);
        let pushed = cur.pushed;
        cur.local.retain(|s| *s > pushed);
        Ok(!mine)
    }

    /// The watched conversations, each with the last sequence number up to which every item
    /// was pushed: its cursor, or beyond it the items this node pushed itself (a head there
    /// has nothing new for this node).
    fn positions(&self) -> Result<Vec<(ConversationId, u64)>, Reject> {
        Ok(lock(&self.inner)?
            .iter()
            .map(|(c, cur)| (*c, cur.upto()))
            .collect())
    }

    /// [`Self::positions`] of those of `conversations` that are watched (none if the lock is
    /// poisoned: then nothing is read as behind, and the next catch-up asks again).
    fn positions_of<'a>(
        &self,
        conversations: impl Iterator<Item = &'a ConversationId>,
    ) -> HashMap<ConversationId, u64> {
        let Ok(m) = lock(&self.inner) else {
            return HashMap::new();
        };
        conversations
            .filter_map(|c| Some((*c, m.get(c)?.upto())))
            .collect()
    }
}

impl Service {
    /// Once a staged message is durable: if the store refused it (another node took its number
    /// or counter), appends it again from the reloaded conversation, until it is stored or
    /// refused for a reason of its own. Returns the stored item and its audience.
    ///
    /// A refusal taken holds the conversation on this node (the engine holds back later
    /// messages to it) until the message is appended again or given up here: a later message
    /// staged in between would be stored ahead of it, and counted in the reloaded state, which
    /// would then refuse this one `counter_reused`.
    pub(super) async fn settle_send(
        &self,
        item: Sequenced,
        audience: Vec<SigningPublicKey>,
        sender: &SigningPublicKey,
    ) -> Result<(Sequenced, Vec<SigningPublicKey>), Reject> {
        let (mut item, mut audience) = (item, audience);
        // Known by its (epoch, sender, counter), not its number: appended again it takes a new
        // number, which an earlier refused append of this node may have had.
        let what = match &item.item {
            Item::Message(env) => Refused::Message {
                epoch: env.header.epoch,
                sender: env.header.sender.to_bytes().to_vec(),
                counter: env.header.counter,
            },
            _ => {
                return Err(Reject::new(
                    ErrorCode::Internal,
                    "a sent item that is not a message".into(),
                ));
            }
        };
        let conversation = item.conversation;
        let mut again = 0;
        while self.convs.take_refused(&conversation, &what)? {
            let Item::Message(env) = item.item else {
                return Err(Reject::new(
                    ErrorCode::Internal,
                    "a refused append that is not a message".into(),
                ));
            };
            if again == MAX_AGAIN {
                self.convs.give_up_refused(&conversation, &what)?;
                return Err(Reject::new(
                    ErrorCode::Conflict,
                    "other relay nodes kept taking this conversation's next number; send again"
                        .into(),
                ));
            }
            again += 1;
            debug!(%conversation, seq = item.seq, "another node took this number; appending again");
            match self.convs.append_message_again(sender, env) {
                Ok(appended) => (item, audience) = appended,
                Err(refusal) => {
                    self.convs.give_up_refused(&conversation, &what)?;
                    return Err(refusal);
                }
            }
            self.commit.durable().await?;
        }
        Ok((item, audience))
    }

    /// In a cluster, sends a push for `who` (`frame`, encoded) to the other nodes, which push it
    /// to `who`'s connections there (a member may be connected to any node). A release request
    /// (`release`: its id) goes by id, each node reading it from the database: with its epoch
    /// records it may not fit a notification. Any other frame too large for a notification
    /// (an `agent_key_changed` naming many conversations) is stored by the engine and goes by
    /// reference ([`Self::forwarded_stored_push`]). Conversation items come here only for an
    /// account that is not a member ([`Self::forward_item`]); the members' go by wake-ups and
    /// cursors.
    pub(super) fn forward(&self, who: &SigningPublicKey, release: Option<&TokenId>, frame: &[u8]) {
        if !self.store_shared {
            return;
        }
        let engine = self.convs.engine();
        match release {
            Some(id) => engine.forward_release(who.as_bytes(), id.as_bytes()),
            None => {
                if !engine.forward_push(who.as_bytes(), frame) {
                    debug!(
                        size = frame.len(),
                        "a push this engine cannot forward to other nodes"
                    );
                }
            }
        }
    }

    /// In a cluster, sends `item` as a push to `who`'s connections on the other nodes, for an
    /// account that is no member of the item's conversation and so is never pushed it from
    /// another node's cursor ([`Self::push_page`] pushes only to the members connected there):
    /// the org's master and a consent. Called once, by the node that stored the item.
    pub(super) fn forward_item(&self, who: &SigningPublicKey, item: &Sequenced) {
        if !self.store_shared {
            return;
        }
        match wire::encode(&Frame::Push(Push::Item(item.clone()))) {
            Ok(bytes) => self.forward(who, None, &bytes),
            Err(e) => warn!(error = %e, "item too large to push; the master will list it"),
        }
    }

    /// Another node forwarded a push frame for account `to`: to its connections here (an
    /// `agent_key_changed` push only to those that asked for it).
    pub(crate) fn forwarded_push(&self, to: &[u8], frame: Vec<u8>) {
        if let Ok(who) = SigningPublicKey::try_from(to)
            && self.hub.is_online(&who)
            && self.first_forward(&frame)
        {
            if super::key_push::is_key_push(&frame) {
                self.hub.push_key_watchers(&who, &Bytes::from(frame));
            } else {
                self.hub.push(&who, &Bytes::from(frame));
            }
        }
    }

    /// Another node forwarded a push frame for account `to` by reference (too large for a
    /// notification): if `to` is connected here, reads it (once: row `id` of the engine's
    /// stored pushes) and pushes it as [`Self::forwarded_push`] does. A push that lapsed before
    /// it was read is lost, as a lost notification is: the member sees the change at its next
    /// listing.
    pub(crate) fn forwarded_stored_push(&self, to: &[u8], id: i64) {
        let Ok(who) = SigningPublicKey::try_from(to) else {
            return;
        };
        if !self.hub.is_online(&who) {
            return;
        }
        match self.convs.engine().stored_push(id) {
            Ok(Some(frame)) => self.forwarded_push(to, frame),
            Ok(None) => warn!(
                id,
                "a push forwarded by reference lapsed before it was read"
            ),
            Err(e) => warn!(error = %e, id, "a push forwarded by reference cannot be read"),
        }
    }

    /// Drops the pushes stored for forwarding by reference that lapsed (the periodic chores,
    /// `relay::cluster`), so the table never grows without bound.
    pub(crate) fn prune_stored_pushes(&self) {
        if let Err(e) = self.convs.engine().prune_stored_pushes() {
            warn!(error = %e, "pruning the pushes forwarded by reference failed");
        }
    }

    /// Another node queued release request `id` for trustee `to`: read it here and push it to
    /// the trustee's connections here.
    pub(crate) fn forwarded_release(&self, to: &[u8], id: &[u8]) {
        let (Ok(who), Ok(id)) = (SigningPublicKey::try_from(to), TokenId::try_from(id)) else {
            return;
        };
        if !self.hub.is_online(&who) {
            return;
        }
        let pending = self
            .release_state(&id)
            .and_then(|st| self.pending_for(&st.request));
        match pending {
            Ok(p) => match wire::encode(&Frame::Push(Push::Release(p))) {
                Ok(bytes) => {
                    self.hub.push(&who, &Bytes::from(bytes));
                }
                Err(e) => warn!(error = %e, "a forwarded release request does not fit a push"),
            },
            Err(e) => warn!(code = ?e.code, "a forwarded release request cannot be read"),
        }
    }

    /// In a cluster, asks the other nodes to close `who`'s sessions there that act for agent
    /// name `name` with `reason` (a re-certified agent's old key and the name re-certified: a
    /// lost device must not keep a live session on any node, and a session the key registered
    /// since under another name is not the lost device's). Only reasons [`close_reason`] knows
    /// travel (the receiving node maps the code back).
    pub(super) fn forward_close(&self, who: &SigningPublicKey, name: &str, reason: CloseReason) {
        if !self.store_shared {
            return;
        }
        if let CloseReason::Application { code, .. } = reason
            && close_reason(code).is_some()
        {
            self.convs
                .engine()
                .forward_close(who.as_bytes(), code, name);
        }
    }

    /// Another node asks to close account `to`'s sessions acting for agent name `name` with
    /// close `code`: closes those connected here ([`Hub::close_agent`]). A session the key
    /// opened here after its name was re-certified away is unregistered, or acts for the new
    /// name it registered, and stays open, whether this close arrives before or after a
    /// re-check of agent keys closed the key's session for `name`. A close naming no name
    /// (`None`: a node of the previous version sent it) closes the key's sessions acting for
    /// any name, as that version did. A code this node does not know closes nothing (a newer
    /// node's reason).
    ///
    /// [`Hub::close_agent`]: crate::relay::hub::Hub::close_agent
    pub(crate) fn forwarded_close(&self, to: &[u8], code: u16, name: Option<&str>) {
        let Ok(who) = SigningPublicKey::try_from(to) else {
            return;
        };
        if crate::test_hooks::var_os(DROP_CLOSES_ENV).is_some() {
            warn!(code, "a forwarded close dropped (test only)");
            return;
        }
        let held = super::close_gate::hold_forwarded_close();
        match close_reason(code) {
            Some(reason) => {
                let closed = self.hub.close_agent(&who, name, reason);
                if held {
                    warn!(code, closed, "a held forwarded close released (test only)");
                }
                if closed > 0 {
                    info!(code, closed, "sessions closed at another node's request");
                }
            }
            None => warn!(
                code,
                "another node asked for a close this node does not know"
            ),
        }
    }

    /// After the wake-up listener (re)connected (a close forwarded meanwhile may have been
    /// missed): closes, with [`CLOSE_KEY_REPLACED`](super::recovery::CLOSE_KEY_REPLACED), the
    /// sessions here acting for an agent name that the store now binds to another key (its
    /// org's master re-certified the name). One read per (key, name) connected; a session of
    /// the name's current key is never closed (the name must point elsewhere), nor one of the
    /// same key acting for another name. Returns how many (key, name) pairs' sessions were
    /// closed.
    pub(crate) fn recheck_agent_keys(&self) -> usize {
        self.recheck(self.hub.acting())
    }

    /// The periodic catch-up's share of [`Self::recheck_agent_keys`]: the connected agent keys
    /// after `after` in key order (from the first if `None`), at most `limit` of them (one read
    /// each), so a round costs at most `limit` reads however many agents are connected, and
    /// every connected key is re-checked once every `ceil(agents / limit)` rounds. Catches a
    /// close no listener could bring (a node with `cluster_wakeups = 0`) or that was lost while
    /// the listener stayed up (the re-certifying node's `NOTIFY` failed). A key acting for
    /// several names counts once against `limit` per name, and its names are never split
    /// between rounds. Returns how many (key, name) pairs' sessions were closed, and where the
    /// next round starts (`None`: at the first key again). Waits first while the test-only
    /// re-check gate is closed (`service::recheck_gate`).
    pub(crate) fn recheck_some_agent_keys(
        &self,
        after: Option<SigningPublicKey>,
        limit: usize,
    ) -> (usize, Option<SigningPublicKey>) {
        super::recheck_gate::hold_periodic_recheck();
        let (page, next) = self.hub.acting_after(after, limit);
        (self.recheck(page), next)
    }

    /// Closes the sessions of each of `agents` (key, name) acting for that name, if the store
    /// binds the name to another key now; how many (key, name) pairs' sessions were closed. A
    /// session of the same key acting for another name (one it registered since) is read
    /// under that name, and stays.
    fn recheck(&self, agents: Vec<(SigningPublicKey, String)>) -> usize {
        let reason = super::recovery::CLOSE_KEY_REPLACED;
        let mut closed = 0usize;
        for (key, name) in agents {
            match self.store.get(Collection::Names, name.as_bytes()) {
                Ok(Some(current)) if current.as_slice() != key.as_bytes().as_slice() => {
                    // Only its sessions still acting for this name: another close may have
                    // closed them since `agents` was read, and what the key opened since is
                    // not a registered agent, or acts for another name.
                    let sessions = self.hub.close_agent(&key, Some(&name), reason);
                    if sessions > 0 {
                        info!(
                            sessions,
                            "an agent key re-certified away closed on a re-check"
                        );
                        closed += 1;
                    }
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "re-checking an agent's key failed"),
            }
        }
        closed
    }

    /// Once an item other than a message (an epoch record, a hand-off, a consent, a notice) is
    /// durable: whether the store refused it — another node took its sequence number, or a
    /// key of its transaction (an audit leaf's index) — in which case nothing of that
    /// transaction was stored, and its writer appends it again from the reloaded state
    /// ([`until_stored`]) rather than refusing what it accepted.
    ///
    /// The item is known by its number and the digest of its stored bytes (of epoch `epoch`,
    /// as it was appended: [`ConvTable::refusal_of`](super::table::ConvTable::refusal_of)), so
    /// another refused item of this node, once at the same number, is never taken for it.
    pub(super) fn item_refused(
        &self,
        item: &Sequenced,
        epoch: Option<u32>,
    ) -> Result<bool, Reject> {
        let what = super::table::ConvTable::refusal_of(epoch, item)?;
        let refused = self.convs.take_refused(&item.conversation, &what)?;
        if refused {
            debug!(conversation = %item.conversation, seq = item.seq,
                "another node took this item's number; appending it again");
        } else if let Item::Notice { index, .. } = &item.item {
            // Its audit leaf was in the same transaction: stored (see `AuditLog`).
            self.log.confirm(*index)?;
        }
        Ok(refused)
    }

    /// One wake-up round's reads: the conversations other nodes' wake-ups named (`named`, each
    /// with the first sequence number named) and those the catch-up found behind
    /// (`behind`, each with the head it saw, [`Self::behind`]). Each is read once, from its
    /// cursor, all of them in one statement ([`Self::read_and_push`]), and what is new is pushed
    /// to the members connected here. A conversation the catch-up found behind is read only if
    /// no wake-up of the round names it and its cursor is still below the head seen (a round
    /// since then may have read it: most of what a loaded node's catch-up finds is only behind
    /// because its wake-up is queued). `named` is in conversation order. Only the round task
    /// calls this, one round at a time, so no conversation is read by two rounds at once.
    /// Its parts' times go in `times` (`prepare`, `read`, `cache`, `push`, `pages`).
    pub(crate) fn woken(
        &self,
        named: &[(ConversationId, u64)],
        behind: &[(ConversationId, u64)],
        times: &mut RoundTimes,
    ) {
        let started = Instant::now();
        let positions = self.cursors.positions_of(behind.iter().map(|(c, _)| c));
        let still_behind: Vec<ConversationId> = behind
            .iter()
            .filter(|(c, head)| {
                named.binary_search_by(|(n, _)| n.cmp(c)).is_err()
                    && positions.get(c).is_some_and(|at| at < head)
            })
            .map(|(c, _)| *c)
            .collect();
        self.metrics
            .wakeup_reads
            .add(u64::try_from(named.len()).unwrap_or(u64::MAX));
        let read = self.read_all(
            named
                .iter()
                .map(|(c, first)| (*c, Some(first.saturating_sub(1))))
                .chain(still_behind.iter().map(|c| (*c, None))),
            times,
        );
        self.metrics
            .catch_up_reads
            .add(u64::try_from(still_behind.len()).unwrap_or(u64::MAX));
        self.metrics
            .wake_round
            .observe(started.elapsed().as_secs_f64());
        self.metrics.wake_round_conversations.observe(read as f64);
    }

    /// The periodic catch-up's question, asked outside the wake-up rounds: which watched
    /// conversations have a committed head past what this node pushed (one statement for all),
    /// each with that head. It reads no item and moves no cursor: the round task reads what it
    /// finds ([`Self::woken`]), so a lost wake-up only delays a push, and a slow answer holds up
    /// no wake-up. If the heads cannot be read, every watched conversation is answered (with
    /// an unknown head, `u64::MAX`), to be read from its cursor.
    pub(crate) fn behind(&self) -> Vec<(ConversationId, u64)> {
        hold_at_catch_up_gate();
        let watched = self.cursors.positions().unwrap_or_default();
        let keys: Vec<&[u8]> = watched
            .iter()
            .map(|(c, _)| c.as_bytes().as_slice())
            .collect();
        let heads: HashMap<Vec<u8>, u64> = match self.convs.engine().committed_heads(&keys) {
            Ok(h) => h.into_iter().collect(),
            Err(e) => {
                warn!(error = %e, "reading the conversations' heads failed; reading them all");
                return watched.into_iter().map(|(c, _)| (c, u64::MAX)).collect();
            }
        };
        let mut behind: Vec<(ConversationId, u64)> = watched
            .into_iter()
            .filter_map(|(c, pushed)| {
                let head = *heads.get(c.as_bytes().as_slice())?;
                (head > pushed).then_some((c, head))
            })
            .collect();
        behind.sort_unstable_by_key(|x| x.0);
        self.metrics
            .catch_up_found
            .add(u64::try_from(behind.len()).unwrap_or(u64::MAX));
        behind
    }

    /// Reads each conversation of `wanted` from where this node reads it
    /// ([`Self::read_start`]; a conversation not watched yet from where a wake-up named its
    /// items start), all in one statement, and pushes what is new. Returns how many were
    /// read.
    fn read_all(
        &self,
        wanted: impl Iterator<Item = (ConversationId, Option<u64>)>,
        times: &mut RoundTimes,
    ) -> usize {
        let started = Instant::now();
        let mut from = Vec::new();
        for (c, woken) in wanted {
            match self.read_start(&c, woken) {
                Ok(Some(after)) => from.push((c, after)),
                Ok(None) => {}
                Err(e) => {
                    warn!(conversation = %c, code = ?e.code, "catching up failed: {}", e.message)
                }
            }
        }
        times.prepare = started.elapsed();
        self.read_and_push(&from, times);
        from.len()
    }

    /// Where this node reads `c` from: its cursor, or, not watched yet, where a wake-up named
    /// its items start (`woken`). `None` when there is nothing to read here: no member of `c`
    /// is connected (then `c` is no longer watched), or `c` is not watched and no wake-up
    /// named it.
    fn read_start(&self, c: &ConversationId, woken: Option<u64>) -> Result<Option<u64>, Reject> {
        let connected = self
            .convs
            .get(c)?
            .is_some_and(|s| !self.online_members(&s).is_empty());
        let mut m = lock(&self.cursors.inner)?;
        if !connected {
            m.remove(c);
            return Ok(None);
        }
        Ok(m.get(c).map(|cur| cur.pushed).or(woken))
    }

    /// Reads the committed items of each conversation of `from` after its start, all in one
    /// statement (one round trip however many conversations a round names), and pushes them
    /// ([`Self::push_from`]). A failed read pushes nothing and moves no cursor: the next
    /// wake-up or catch-up reads the same items again. The statement's time and the pushes'
    /// go in `times` (`read`; `cache`, `push` and `pages`, [`Self::push_from`]).
    fn read_and_push(&self, from: &[(ConversationId, u64)], times: &mut RoundTimes) {
        if from.is_empty() {
            return;
        }
        let started = Instant::now();
        let keys: Vec<(&[u8], u64)> = from
            .iter()
            .map(|(c, after)| (c.as_bytes().as_slice(), *after))
            .collect();
        let mut tails: HashMap<Vec<u8>, crate::store::Entries> = match self
            .convs
            .engine()
            .committed_tails(&keys, MAX_PAGE)
        {
            Ok(t) => t.into_iter().collect(),
            Err(e) => {
                warn!(error = %e, conversations = from.len(), "reading the conversations' new items failed");
                times.read = started.elapsed();
                return;
            }
        };
        times.read = started.elapsed();
        let started = Instant::now();
        for (c, after) in from {
            let page = tails.remove(c.as_bytes().as_slice()).unwrap_or_default();
            let pushed = page
                .iter()
                .map(|(_, v)| dec(v, "item"))
                .collect::<Result<Vec<StoredItem>, Reject>>()
                .and_then(|page| self.push_from(c, *after, page, times));
            if let Err(e) = pushed {
                warn!(conversation = %c, code = ?e.code, "catching up failed: {}", e.message);
            }
        }
        times.push = started
            .elapsed()
            .saturating_sub(times.pages)
            .saturating_sub(times.cache);
    }

    /// The members of `s` connected to this node.
    fn online_members(&self, s: &crate::relay::state::ConvState) -> Vec<SigningPublicKey> {
        let mut everyone: BTreeSet<SigningPublicKey> =
            s.readers.values().flatten().copied().collect();
        everyone.insert(s.customer);
        everyone.insert(s.agent);
        everyone
            .into_iter()
            .filter(|k| self.hub.is_online(k))
            .collect()
    }

    /// Pushes `page` — the first committed items of `c` after `from`, read — and reads on
    /// while pages come full, then moves the cursor past what was read.
    ///
    /// Each item is pushed once per member connection: the read starts at the cursor (every
    /// item up to it was pushed), never before it whatever the wake-up names, and items this
    /// node pushed itself when it acknowledged them are skipped. What this node caches of
    /// the conversation is brought up to date from the items read ([`ConvTable::advance`],
    /// or a refresh when an item changed the record).
    ///
    /// The further pages' reads add their time to `times.pages`, the cache's updates theirs to
    /// `times.cache` ([`Self::push_page`]).
    ///
    /// [`ConvTable::advance`]: super::table::ConvTable::advance
    fn push_from(
        &self,
        c: &ConversationId,
        from: u64,
        page: Vec<StoredItem>,
        times: &mut RoundTimes,
    ) -> Result<(), Reject> {
        let mut cursor = from;
        let mut page = page;
        while let Some(last) = page.last().map(|i| i.sequenced.seq) {
            let full = page.len() >= MAX_PAGE;
            self.push_page(c, from, &page, &mut times.cache)?;
            cursor = last;
            if !full {
                break;
            }
            let started = Instant::now();
            page = self.convs.committed_items_after(c, cursor)?;
            times.pages += started.elapsed();
        }
        let mut m = lock(&self.cursors.inner)?;
        let cur = m.entry(*c).or_default();
        cur.pushed = cur.pushed.max(cursor);
        let pushed = cur.pushed;
        cur.local.retain(|s| *s > pushed);
        Ok(())
    }

    /// Pushes the items of one page read from `c` (watched from `from` if it is not yet) to
    /// the members connected here who may read them, each item claimed first
    /// ([`Cursors::claim`]). Bringing the cached conversation up to date first (counting the
    /// items in, or reloading its record when an item changed it) adds its time to `cache`:
    /// a round's slow `push` part can then be told from a slow cache update.
    fn push_page(
        &self,
        c: &ConversationId,
        from: u64,
        items: &[StoredItem],
        cache: &mut std::time::Duration,
    ) -> Result<(), Reject> {
        let started = Instant::now();
        let cached = self.convs.advance(c, items).and_then(|advanced| {
            if !advanced {
                self.convs.refresh(c)?;
            }
            self.convs.get(c)
        });
        *cache += started.elapsed();
        let Some(s) = cached? else {
            return Ok(());
        };
        let online = self.online_members(&s);
        let mut pushed = 0usize;
        for stored in items {
            let seq = stored.sequenced.seq;
            let _ = self.convs.mark_durable(c, seq);
            if !self.cursors.claim(*c, seq, from)? {
                continue;
            }
            let Ok(bytes) = wire::encode(&Frame::Push(Push::Item(stored.sequenced.clone()))) else {
                continue;
            };
            let bytes = Bytes::from(bytes);
            // The sender's connections here are its other devices (the one that sent is on
            // the node that stored it, which answered it): they get the item too, as on that
            // node (`Service::push_item`).
            for who in &online {
                if s.may_read(who, stored.epoch) {
                    pushed += self.hub.push(who, &bytes);
                }
            }
        }
        self.metrics
            .cluster_pushes
            .add(u64::try_from(pushed).unwrap_or(u64::MAX));
        Ok(())
    }
}
