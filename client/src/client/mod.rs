//! The client state machine: an [`Account`] talking to the relay through a [`Session`].
//!
//! [`Client`] is the façade; its methods live with their concern:
//!
//! - [`directory`] — cards, trust and pins, policies, agent certificates.
//! - [`org`] — the master's org: create, certify agents.
//! - [`conversation`] — open, send, the sending epoch, rotate, transfer.
//! - [`sync`] — the conversation list, history paging, pushes, delivery receipts.
//! - [`paging`] — how far one walk through a conversation's history pages may go.
//! - [`ingest`] — verifying and recording epochs, messages, notices and hand-offs.
//! - [`gaps`] — counters that never arrived: refetched, then shown as lost.
//! - [`timeline`] — offline views: history, unread counts, grouped notices.
//! - [`witnessing`] — notices not yet witnessed, judged again at each sync.
//! - [`reconnect`] — a new session to the same relay after the connection was lost.
//! - [`status`] — conversation status set by the agent; status and preview for lists.
//! - [`signals`] — ephemeral signals (typing): sent, and opened when pushed; never stored.
//!
//! Every item of a conversation — including this account's own epochs and messages — is
//! processed in relay order from the conversation's cursor by one path (`Client::ingest`,
//! reached from [`Client::sync`] and [`Client::handle_push`]). The relay's answer to a
//! `PutEpoch` only says "stored", and the epoch is then read back and verified like any other;
//! a message this account sent is ingested through the same path under the sequence number the
//! relay assigned it. That keeps one ordering and one set of checks. An item this account's key
//! signed on another device (a copied home, the browser console) is pushed here like any
//! member's (PROTOCOL.md §13.11) and takes the same path: shown as this account's own, its
//! counter never sealed again here, its epoch followed (`sending_epoch` opens one of this
//! device's own before sealing).
//!
//! **Architecture Invariant:** a message is shown as genuine only if its epoch record passed
//! every check (policy signature and pinned master, chain, agent certificates, byte-for-byte
//! escrow recomputation) and the message itself opened under that epoch's keys.

use std::collections::{HashMap, VecDeque};

use sealdesk_protocol::{
    ids::ConversationId, keys::SigningPublicKey, message::EpochKeys, policy::VerifiedPolicy,
    wire::Push,
};
use serde::Serialize;

use crate::account::{Account, LogEntry};
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::session::Session;
use crate::tls::TlsOptions;

pub mod conversation;
pub mod directory;
pub mod gaps;
mod held;
pub mod holes;
pub mod ingest;
pub mod key_push;
pub mod org;
pub mod paging;
pub mod reconnect;
pub mod signals;
mod skipped;
pub mod status;
pub mod sync;
pub mod timeline;
pub mod witnessing;

pub use conversation::OpenedConversation;
pub use org::OrgSpec;
pub use timeline::{
    History, HistoryLine, audience_of, counts_as_message, group_notices, history, message_numbers,
    read_up_to, unread,
};

/// Items fetched per `History` page.
pub const HISTORY_PAGE: u32 = 200;
/// How many times a missing message is asked for again before the client stops asking and
/// shows its gap as not delivered.
pub const REFETCH_LIMIT: u32 = 3;
/// At most this many `History` pages per sync are spent refetching gaps.
pub const REFETCH_PAGES: u32 = 4;
/// Pushes kept for the caller by [`Client::drain_pushes`].
pub const PUSH_BACKLOG: usize = 256;
/// Senders whose last accepted signal is remembered (to drop replays); past this many the
/// memory starts over (a replayed signal then shows "typing" once more, nothing worse).
pub const SIGNAL_SENDERS: usize = 1024;
/// How long agent certificates issued by `add_agent` are valid (one year).
pub const AGENT_CERT_VALIDITY_SECS: u64 = 365 * 86_400;

/// Something that happened while processing relay data, for a live view.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// The conversation concerned.
    pub conversation: ConversationId,
    /// What happened.
    pub kind: EventKind,
}

/// What an [`Event`] is.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum EventKind {
    /// A new item in the timeline.
    Entry {
        /// The item.
        entry: LogEntry,
    },
    /// A line shown before reads differently now: a release notice that another trustee's
    /// entry joined (reaching the threshold, or naming one more trustee), or a notice the
    /// witnesses confirmed (or found not genuine) when it was checked again. `entry` has the
    /// sequence number of the line it replaces (for a release, its request's first entry);
    /// a live view replaces that line, or shows this one again as an update — never keeps
    /// the earlier wording alone.
    Updated {
        /// The line as it now reads.
        entry: LogEntry,
    },
    /// A conversation was assigned to this agent.
    Assigned {
        /// The customer's name.
        customer: String,
    },
    /// Another member received items up to `seq`.
    Delivered {
        /// The member.
        member: String,
        /// Up to.
        seq: u64,
    },
    /// Another member read items up to `seq` (end-to-end receipt).
    Read {
        /// The member.
        member: String,
        /// Up to.
        seq: u64,
    },
    /// Another member is typing, or stopped (an ephemeral signal: shown, never stored).
    Typing {
        /// The member.
        member: String,
        /// Typing (`true`) or stopped.
        typing: bool,
    },
    /// Something the user should know.
    Warning {
        /// The text.
        text: String,
    },
    /// The key of peer `name` (this conversation's agent) changed, as its org's certificate
    /// confirms: recorded as pending, sending is blocked until `keys trust` (the relay told of
    /// a re-certified agent, see `Client::watch_agent_keys`).
    KeyChanged {
        /// The peer's name.
        name: String,
    },
    /// The relay said agent `agent` has a new key, but its org's certificate does not confirm
    /// it (or could not be checked): the pinned key is kept, nothing changed.
    AgentKeyUnconfirmed {
        /// The agent's name.
        agent: String,
        /// Why the change is not confirmed.
        reason: String,
    },
}

/// A push the conversation machinery does not handle (releases, tickets), for the caller.
pub type OtherPush = Push;

/// An account connected to a relay.
#[derive(Debug)]
pub struct Client {
    pub(crate) account: Account,
    pub(crate) session: Session,
    /// Verified policies by (org, version): verification is cheap but not free.
    policies: HashMap<(String, u32), VerifiedPolicy>,
    /// Key material of readable epochs.
    keys: HashMap<(ConversationId, u32), EpochKeys>,
    /// Pushes for the caller, set aside while draining (bounded by [`PUSH_BACKLOG`]; they are
    /// hints, and the state they announce can be asked for again).
    other_pushes: VecDeque<Push>,
    /// The last signal accepted per (conversation, sender): its `sent_at` and nonce, so a
    /// replayed or older signal is dropped (bounded by [`SIGNAL_SENDERS`]).
    signals: HashMap<(ConversationId, SigningPublicKey), (u64, [u8; 12])>,
    /// What the relay's TLS certificate must chain to, kept for [`Client::reconnect`].
    tls: TlsOptions,
    /// The URLs of the relay's nodes (a cluster), in the order [`Client::reconnect`] tries
    /// them after the current one; just the one connected to unless
    /// [`Client::set_relays`] says more.
    relays: Vec<String>,
    /// When this session last checked, for a customer, the key its conversation's agent's
    /// name is bound to now (see `Client::check_agent_key`), by conversation.
    pub(crate) agent_checked: HashMap<ConversationId, std::time::Instant>,
    /// Events of items a send brought in by syncing (another member's items stored before this
    /// account's message), not yet given to the caller: handed out with the next push's events
    /// ([`Client::handle_push`]) or by [`Client::take_events_aside`]. Bounded by
    /// [`EVENTS_ASIDE`] (the oldest dropped; the history keeps every item).
    pub(crate) events_aside: VecDeque<Event>,
    /// Pages the counters' refetch read in the current sync, kept for the holes' refetch so
    /// a withheld item that is both a counter gap and a sequence hole costs one request
    /// (`holes::RefetchedPage`).
    pub(crate) refetched: Vec<holes::RefetchedPage>,
    /// Whether this account asked the relay for agent-key pushes
    /// ([`Client::watch_agent_keys`]), to ask again after a reconnection.
    pub(crate) watching_agent_keys: bool,
    /// Whether the current session has not been asked yet for the agent-key pushes an earlier
    /// one had asked for (asking again after a reconnection failed): asked at the next sync.
    pub(crate) agent_keys_unasked: bool,
    /// Whether the relay closed the connection on `watch_agent_keys` (4102: too old to know
    /// it): not asked again by this client.
    pub(crate) agent_keys_unknown: bool,
    /// The most bytes of verified files the vault keeps ([`crate::file_cache`]).
    pub(crate) file_cache_limit: u64,
}

/// At most this many events are kept aside for the caller (see `Client::events_aside`).
pub const EVENTS_ASIDE: usize = 1_000;

impl Client {
    /// Connects `account` to the relay at `url`, authenticates, and checks the relay's keys
    /// against those pinned for `url` (pinning them on first contact). A `wss://` relay must
    /// present a certificate that the system's roots vouch for; see [`Self::connect_with`].
    ///
    /// # Errors
    /// Transport and handshake errors, [`ClientError::RelayKeyChanged`].
    pub async fn connect(account: Account, url: &str) -> Result<Self> {
        Self::connect_with(account, url, &TlsOptions::default()).await
    }

    /// As [`Self::connect`], trusting for a `wss://` relay the certificates `tls` names (for
    /// example a private CA's, from `--ca-file`).
    ///
    /// # Errors
    /// As [`Self::connect`], and [`ClientError::Tls`].
    pub async fn connect_with(account: Account, url: &str, tls: &TlsOptions) -> Result<Self> {
        Self::try_connect_with(account, url, tls)
            .await
            .map_err(|(_, e)| e)
    }

    /// As [`Self::connect`], but gives the account back on failure (to work offline).
    ///
    /// # Errors
    /// As [`Self::connect`], with the account.
    pub async fn try_connect(
        account: Account,
        url: &str,
    ) -> core::result::Result<Self, (Account, ClientError)> {
        Self::try_connect_with(account, url, &TlsOptions::default()).await
    }

    /// As [`Self::connect_with`], but gives the account back on failure (to work offline).
    ///
    /// # Errors
    /// As [`Self::connect_with`], with the account.
    pub async fn try_connect_with(
        account: Account,
        url: &str,
        tls: &TlsOptions,
    ) -> core::result::Result<Self, (Account, ClientError)> {
        let session = match Self::handshake(&account, url, tls).await {
            Ok(s) => s,
            Err(e) => return Err((account, e)),
        };
        if let Err(e) = account.check_relay(url, session.relay_key(), session.welcome().log_key) {
            session.close().await;
            return Err((account, e));
        }
        Ok(Self {
            relays: vec![url.to_owned()],
            account,
            session,
            policies: HashMap::new(),
            keys: HashMap::new(),
            other_pushes: VecDeque::new(),
            signals: HashMap::new(),
            tls: tls.clone(),
            agent_checked: HashMap::new(),
            events_aside: VecDeque::new(),
            refetched: Vec::new(),
            watching_agent_keys: false,
            agent_keys_unasked: false,
            agent_keys_unknown: false,
            file_cache_limit: crate::file_cache::FILE_CACHE_DEFAULT,
        })
    }

    async fn handshake(account: &Account, url: &str, tls: &TlsOptions) -> Result<Session> {
        let conn = Connection::connect_with(url, tls).await?;
        Session::establish(conn, account.keys(), account.card().card()).await
    }

    /// Bounds the vault's cache of verified attachment files to `bytes` (0 keeps none; the
    /// default is [`crate::file_cache::FILE_CACHE_DEFAULT`]); the least recently used files
    /// are removed first.
    pub fn set_file_cache_limit(&mut self, bytes: u64) {
        self.file_cache_limit = bytes;
    }

    /// The account.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Whether the relay knows this account's card.
    pub fn registered(&self) -> bool {
        self.session.welcome().registered
    }

    /// Closes the connection and gives the account back.
    pub async fn close(self) -> Account {
        self.session.close().await;
        self.account
    }
}

/// The epoch after `epoch` (a number from a record the relay delivered).
fn next_epoch(epoch: u32) -> Result<u32> {
    epoch
        .checked_add(1)
        .ok_or_else(|| ClientError::ImpossibleNumber {
            what: "epoch number",
            detail: format!("epoch {epoch} has no successor"),
        })
}

/// Checks that a page of a conversation's items the relay said had `more` after it ended
/// beyond `after` (at `last`), so that paging ends; returns where the next page starts.
fn page_advances(after: u64, last: u64) -> Result<u64> {
    if last <= after {
        return Err(ClientError::ImpossibleNumber {
            what: "history page",
            detail: format!(
                "asked for items after sequence {after}, got a page ending at {last} with more \
                 to come"
            ),
        });
    }
    Ok(last)
}

fn cannot_send(id: &ConversationId, reason: &str) -> ClientError {
    ClientError::CannotSend {
        conversation: id.to_string(),
        reason: reason.to_owned(),
    }
}

fn refusal(reason: String) -> ClientError {
    ClientError::Protocol(sealdesk_protocol::Error::InvalidEpochRecord(reason))
}
