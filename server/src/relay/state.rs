//! What the relay keeps about each conversation, beside the ciphertext itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sealdesk_protocol::{ids::ConversationId, keys::SigningPublicKey};
use serde::{Deserialize, Serialize};

use crate::limits::SenderBuckets;

/// A conversation's routing and access-control state (never any content).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ConvState {
    pub conversation: ConversationId,
    pub org: String,
    pub customer: SigningPublicKey,
    pub customer_name: String,
    /// The agent currently assigned (changes on transfer, before the new epoch exists).
    pub agent: SigningPublicKey,
    pub agent_name: String,
    pub created_at: u64,
    pub last_activity: u64,
    /// Highest sequence number assigned.
    pub last_seq: u64,
    /// The newest epoch stored, if any.
    pub current_epoch: Option<u32>,
    /// Who may read each epoch's items: its members, plus hand-off recipients.
    pub readers: BTreeMap<u32, BTreeSet<SigningPublicKey>>,
    /// The highest sequence number known to be on disk. Items above it are stored but not yet
    /// flushed, so they are never served: a crash could still give their numbers to other
    /// items, and a reader that had seen them would skip those for good. Not persisted: what
    /// is loaded from disk is durable.
    #[serde(skip)]
    pub durable_seq: u64,
    /// The highest message counter stored per (epoch, sender), for the current epoch only: a
    /// message is stored only if its counter is above it, so no (epoch, sender, counter) is
    /// stored twice. Persisted with the record (so as of its last rewrite) and brought up to
    /// date from the items after it by `ConvTable::restore`; the items are the truth. A sender
    /// missing here has stored nothing in the epoch, unless an earlier relay build stored its
    /// messages, with a duplicate key per message instead: those keys are read when the
    /// sender is first seen.
    #[serde(default)]
    pub counters: HashMap<(u32, SigningPublicKey), u64>,
    /// Messages stored in the current epoch, from every sender. Persisted with the record (as
    /// of its last rewrite) and brought up to date from the items after it, like `counters`.
    #[serde(default)]
    pub epoch_messages: u64,
    /// The current epoch's message limit: `rotate_after_messages` of the policy its record
    /// names. `None` for an epoch stored by a relay build that did not keep it (no limit).
    #[serde(default)]
    pub rotate_after: Option<u32>,
    /// Each sender's message rate limit in this conversation, taken under the table's lock
    /// that the append holds anyway. In memory only (never stored): a restart starts them
    /// full, as it does every other limit.
    #[serde(skip)]
    pub message_buckets: SenderBuckets,
}

impl ConvState {
    /// Whether `who` may read items of `epoch` (`None`: conversation-level items such as
    /// release notices, readable by the customer only).
    pub fn may_read(&self, who: &SigningPublicKey, epoch: Option<u32>) -> bool {
        match epoch {
            None => *who == self.customer,
            Some(e) => self.readers.get(&e).is_some_and(|r| r.contains(who)),
        }
    }

    /// The first epoch `who` may read, if any: the epoch it joined the conversation in (or
    /// the first one it was handed).
    pub fn first_read_epoch(&self, who: &SigningPublicKey) -> Option<u32> {
        self.readers
            .iter()
            .find(|(_, r)| r.contains(who))
            .map(|(e, _)| *e)
    }

    /// Whether `who` is involved in the conversation at all (customer, assigned agent, or a
    /// reader of some epoch).
    pub fn involves(&self, who: &SigningPublicKey) -> bool {
        *who == self.customer
            || *who == self.agent
            || self.readers.values().any(|r| r.contains(who))
    }

    /// Records a message stored at `seq` at time `at` by `(epoch, sender)` under `counter`.
    /// Only the current epoch's senders are kept: no other epoch takes messages.
    pub fn note_message(
        &mut self,
        seq: u64,
        at: u64,
        (epoch, sender): (u32, SigningPublicKey),
        counter: u64,
    ) {
        self.last_seq = seq;
        self.last_activity = at;
        self.counters.retain(|(e, _), _| *e == epoch);
        self.counters.insert((epoch, sender), counter);
        self.epoch_messages = self.epoch_messages.saturating_add(1);
    }

    /// Whether the current epoch holds as many messages as its policy allows: the next
    /// message must go to a new epoch.
    pub fn epoch_full(&self) -> bool {
        self.rotate_after
            .is_some_and(|limit| self.epoch_messages >= u64::from(limit))
    }

    /// Members of the current epoch (the recipients of live pushes), or customer and agent
    /// before epoch 0 exists.
    pub fn current_members(&self) -> Vec<SigningPublicKey> {
        match self.current_epoch.and_then(|e| self.readers.get(&e)) {
            Some(r) => r.iter().copied().collect(),
            None => vec![self.customer, self.agent],
        }
    }
}

/// A stored conversation item.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredItem {
    /// The epoch it belongs to (`None` for release notices).
    pub epoch: Option<u32>,
    /// The item with its sequence number.
    pub sequenced: sealdesk_protocol::wire::Sequenced,
}

/// A release request's routing state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ReleaseState {
    pub request: sealdesk_protocol::release::ReleaseRequest,
    pub shares: Vec<sealdesk_protocol::release::ReleasedShare>,
    pub refusals: Vec<(String, String)>,
    /// Trustees that answered (shares or refusal).
    pub answered: BTreeSet<SigningPublicKey>,
}
