//! An account's local state, all of it inside the encrypted [`Vault`].
//!
//! ```text
//!   identity                     IdentityKeys::to_secret_bytes (64 bytes)
//!   profile                      name, role, own card
//!   pins                         peers' cards, org master cards, relay and audit-log keys
//!   policy/<org hex>/<version>   org policies seen (verified again whenever used)
//!   conv/<id>/meta               cursor, members, delivery and read state
//!   conv/<id>/epoch/<n>          epoch record, verification status, next counter, windows
//!   conv/<id>/key/<n>            the epoch secret K (32 bytes)
//!   log conv/<id>/log            the decrypted timeline, one sealed frame per item
//! ```
//!
//! User-chosen names (orgs) are hex-encoded in record names, so the vault's file names carry no
//! names and satisfy the vault's naming rules whatever the name is.

use std::collections::BTreeMap;
use std::path::Path;

use sealdesk_protocol::{
    audit::AuditEntry,
    card::{IdentityCard, Role, VerifiedCard},
    epoch::EpochRecord,
    ids::ConversationId,
    keys::{Fingerprint, IdentityKeys, SigningPublicKey},
    message::{ContentKind, ReplayWindows},
    policy::OrgPolicy,
    secret::EpochSecret,
    wire::{from_cbor, to_cbor},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use zeroize::Zeroizing;

use crate::error::{ClientError, Result};
use crate::rng;
use crate::store::{self, Store, name};
use crate::vault::{KdfParams, Vault};

/// The public part of the account, kept next to the secret keys.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Profile {
    card: IdentityCard,
}

/// Keys this account has pinned.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Pins {
    /// Peers by name.
    pub peers: BTreeMap<String, PeerPin>,
    /// Org master cards by org name.
    pub orgs: BTreeMap<String, OrgPin>,
    /// Relay keys by relay URL.
    pub relays: BTreeMap<String, RelayPin>,
}

/// A pinned peer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerPin {
    /// The card trusted for this name.
    pub card: IdentityCard,
    /// A different card seen for the same name and not yet accepted: sending to this peer is
    /// blocked while it is set.
    pub pending: Option<IdentityCard>,
}

/// How an org's master key came to be pinned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinSource {
    /// Trust on first use.
    Tofu,
    /// Matched a fingerprint given out of band.
    Fingerprint,
    /// This account is the master.
    Own,
    /// Accepted explicitly with `keys trust`.
    Trusted,
}

/// A pinned org master.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrgPin {
    /// The master's card.
    pub master: IdentityCard,
    /// How it was pinned.
    pub source: PinSource,
}

/// A pinned relay.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct RelayPin {
    /// The relay's challenge key.
    pub relay_key: SigningPublicKey,
    /// The relay's audit-log key.
    pub log_key: SigningPublicKey,
}

/// What observing a peer's card found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinStatus {
    /// First time this name was seen: pinned now.
    New,
    /// Same keys as pinned.
    Same,
    /// Different keys than pinned: recorded as pending, sending blocked.
    Changed,
}

/// A conversation's local bookkeeping.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConvMeta {
    /// The conversation.
    pub id: ConversationId,
    /// The org.
    pub org: String,
    /// The customer's name.
    pub customer: String,
    /// The agent currently assigned, as last known.
    pub agent: String,
    /// When it was opened (relay time, or local time if unknown).
    pub created_at: u64,
    /// Highest relay sequence number processed.
    pub cursor: u64,
    /// Highest sequence number reported to the relay as delivered.
    pub delivered_sent: u64,
    /// Highest sequence number this account has shown to its user (for unread counts).
    pub read_local: u64,
    /// Highest sequence number covered by a read receipt this account sent.
    pub read_sent: u64,
    /// Other members' delivered state (from the relay).
    pub delivered_by: BTreeMap<String, u64>,
    /// Other members' read state (from end-to-end read receipts).
    pub read_by: BTreeMap<String, u64>,
    /// The newest epoch number seen, if any.
    pub last_epoch: Option<u32>,
    /// Whether this account was transferred out of the conversation.
    pub transferred_out: bool,
    /// Whether the relay no longer holds it (erased): the local copy stays readable; it is
    /// neither synced nor sent in.
    #[serde(default)]
    pub erased: bool,
}

/// How an epoch record was judged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpochStatus {
    /// Verified, and this account is a member: its secret is stored.
    Member,
    /// Verified; this account is not a member.
    NotMember,
    /// Verified; its secret arrived in a hand-off.
    HandedOver,
    /// Refused: never show its messages as genuine.
    Refused(String),
}

/// One epoch as this account knows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochState {
    /// The record as received.
    pub record: EpochRecord,
    /// The relay sequence number of the record.
    pub seq: u64,
    /// The verdict.
    pub status: EpochStatus,
    /// This account's next sending counter in the epoch (persisted before each send).
    pub next_counter: u64,
    /// Replay windows of the epoch's senders.
    pub windows: ReplayWindows,
    /// Messages accepted in the epoch (for rotation).
    pub messages: u64,
}

impl EpochState {
    /// Whether this account holds the epoch's secret.
    pub fn readable(&self) -> bool {
        matches!(self.status, EpochStatus::Member | EpochStatus::HandedOver)
    }
}

/// One item of a conversation's decrypted timeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum LogEntry {
    /// A verified, decrypted message.
    Message {
        /// Relay sequence number.
        seq: u64,
        /// When the relay stored it.
        stored_at: u64,
        /// The sender's clock.
        sent_at: u64,
        /// Epoch.
        epoch: u32,
        /// Sender's counter.
        counter: u64,
        /// Sender's name (from the epoch record).
        sender: String,
        /// Whether this account sent it.
        mine: bool,
        /// Kind.
        kind: ContentKind,
        /// The text.
        text: String,
    },
    /// A message that could not be shown as genuine.
    Rejected {
        /// Relay sequence number.
        seq: u64,
        /// Epoch named.
        epoch: u32,
        /// Sender name or key.
        sender: String,
        /// Why.
        reason: String,
    },
    /// An epoch began (or was refused).
    Epoch {
        /// Relay sequence number.
        seq: u64,
        /// When the relay stored it.
        stored_at: u64,
        /// Epoch number.
        epoch: u32,
        /// Members' names.
        members: Vec<String>,
        /// Creator's name.
        creator: String,
        /// Verdict.
        status: EpochStatus,
    },
    /// A history hand-off.
    HandOff {
        /// Relay sequence number.
        seq: u64,
        /// From.
        from: String,
        /// To.
        to: String,
        /// Epochs.
        epochs: Vec<u32>,
        /// Whether it was for this account, and if so whether it opened.
        outcome: crate::handoff::HandOffOutcome,
    },
    /// An end-to-end read receipt (kept so the item counts as processed; not shown).
    Receipt {
        /// Relay sequence number.
        seq: u64,
        /// Who read.
        sender: String,
        /// Up to which sequence number.
        upto: u64,
    },
    /// A release or other audit notice.
    Notice {
        /// Relay sequence number.
        seq: u64,
        /// When the relay stored it.
        stored_at: u64,
        /// What it says, in plain words.
        text: String,
        /// Whether its signature (and, where checked, its log inclusion) verified.
        verified: bool,
        /// The audit-log index.
        index: u64,
        /// For a trustee's release entry: the release it belongs to, with this entry's
        /// verdict. Stored per entry; history shows one notice per release request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        release: Option<Box<crate::notice::ReleaseNotice>>,
        /// `Some` while the entry passed every check but the witnesses' (SECURITY.md,
        /// "Witnesses"): "not yet witnessed", shown but never as genuine (`verified` is
        /// false), and checked again at each sync until a later line for the same item
        /// replaces it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unwitnessed: Option<Box<Unwitnessed>>,
    },
}

/// A notice not yet witnessed: its entry, kept to be checked again, and why it is not yet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Unwitnessed {
    /// The audit entry as delivered.
    pub entry: AuditEntry,
    /// Why it is not witnessed yet (too few fresh trustee cosignatures hold it, or a split
    /// view).
    pub reason: String,
}

impl LogEntry {
    /// The relay sequence number of the item.
    pub fn seq(&self) -> u64 {
        match self {
            LogEntry::Message { seq, .. }
            | LogEntry::Rejected { seq, .. }
            | LogEntry::Epoch { seq, .. }
            | LogEntry::HandOff { seq, .. }
            | LogEntry::Receipt { seq, .. }
            | LogEntry::Notice { seq, .. } => *seq,
        }
    }
}

/// An open account: the vault, the identity keys and the card.
#[derive(Debug)]
pub struct Account {
    vault: Vault,
    keys: IdentityKeys,
    card: VerifiedCard,
}

impl Account {
    /// Creates a new account in `home`: fresh identity keys and a self-signed card.
    ///
    /// # Errors
    /// [`ClientError::Vault`] (e.g. a vault already exists), [`ClientError::Protocol`] for a
    /// bad name, [`ClientError::Random`].
    pub fn create(
        home: &Path,
        passphrase: &str,
        params: KdfParams,
        name: &str,
        role: Role,
    ) -> Result<Self> {
        sealdesk_protocol::ids::check_name(name)?;
        let keys = IdentityKeys::generate(&mut rng()?);
        let card = IdentityCard::issue(&keys, name, role, crate::now())?;
        Self::create_from(home, passphrase, params, keys, card)
    }

    /// Creates a new account in `home` with the given identity keys and their card (a
    /// recovery code's, [`crate::recovery`]).
    ///
    /// # Errors
    /// [`ClientError::Vault`] (e.g. a vault already exists).
    pub(crate) fn create_from(
        home: &Path,
        passphrase: &str,
        params: KdfParams,
        keys: IdentityKeys,
        card: VerifiedCard,
    ) -> Result<Self> {
        let vault = Vault::create(home, passphrase, params)?;
        vault.put(name::IDENTITY, keys.to_secret_bytes().as_slice())?;
        let account = Self { vault, keys, card };
        account.put_cbor(
            name::PROFILE,
            &Profile {
                card: account.card.card().clone(),
            },
        )?;
        Ok(account)
    }

    /// Opens the account in `home`.
    ///
    /// # Errors
    /// [`ClientError::Vault`] (not found, wrong passphrase, locked, corrupt).
    pub fn open(home: &Path, passphrase: &str) -> Result<Self> {
        let vault = Vault::open(home, passphrase)?;
        let secret = vault.get(name::IDENTITY)?.ok_or(ClientError::NoIdentity)?;
        let arr: Zeroizing<[u8; 64]> = Zeroizing::new(
            secret
                .as_slice()
                .try_into()
                .map_err(|_| ClientError::IdentityDamaged)?,
        );
        let keys = IdentityKeys::from_secret_bytes(&arr);
        let profile: Profile =
            store::get_cbor(&vault, name::PROFILE)?.ok_or(ClientError::NoProfile)?;
        let card = profile.card.verify()?;
        if card.signing_key != keys.signing_public()
            || card.agreement_key != keys.agreement_public()
        {
            return Err(ClientError::CardMismatch);
        }
        Ok(Self { vault, keys, card })
    }

    /// The identity keys.
    pub fn keys(&self) -> &IdentityKeys {
        &self.keys
    }

    /// The account's own card.
    pub fn card(&self) -> &VerifiedCard {
        &self.card
    }

    /// The account name.
    pub fn name(&self) -> &str {
        &self.card.name
    }

    /// The account role.
    pub fn role(&self) -> Role {
        self.card.role
    }

    /// The fingerprint of this account's keys.
    pub fn fingerprint(&self) -> Fingerprint {
        self.card.fingerprint()
    }

    /// The vault (for callers that keep extra records).
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Fails unless the account has `role`.
    ///
    /// # Errors
    /// [`ClientError::WrongRole`].
    pub fn require(&self, role: Role, operation: &'static str) -> Result<()> {
        if self.role() == role {
            Ok(())
        } else {
            Err(ClientError::WrongRole {
                operation,
                needed: role.name(),
                actual: self.role().name(),
            })
        }
    }

    // --- pins ---------------------------------------------------------------------------

    /// All pins.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn pins(&self) -> Result<Pins> {
        Ok(self.get_cbor(name::PINS)?.unwrap_or_default())
    }

    /// Replaces all pins.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn save_pins(&self, pins: &Pins) -> Result<()> {
        self.put_cbor(name::PINS, pins)
    }

    /// Records a verified card seen for its name: pins it the first time, notes a change as
    /// pending (which blocks sending) when the keys differ. The account's own card is never
    /// pinned as a peer.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn observe_peer(&self, card: &VerifiedCard) -> Result<PinStatus> {
        if card.name == self.card.name && card.same_keys(self.card.card()) {
            return Ok(PinStatus::Same);
        }
        let mut pins = self.pins()?;
        let status = match pins.peers.get_mut(&card.name) {
            None => {
                pins.peers.insert(
                    card.name.clone(),
                    PeerPin {
                        card: card.card().clone(),
                        pending: None,
                    },
                );
                PinStatus::New
            }
            Some(pin) if card.same_keys(&pin.card) => return Ok(PinStatus::Same),
            Some(pin) => {
                if pin.pending.as_ref() == Some(card.card()) {
                    return Ok(PinStatus::Changed);
                }
                pin.pending = Some(card.card().clone());
                PinStatus::Changed
            }
        };
        self.save_pins(&pins)?;
        Ok(status)
    }

    /// Whether sending to `name` is blocked by an unaccepted key change.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn peer_blocked(&self, name: &str) -> Result<bool> {
        Ok(self
            .pins()?
            .peers
            .get(name)
            .is_some_and(|p| p.pending.is_some()))
    }

    /// Accepts a changed key for `name`: the pending card (or `fresh`, a card just fetched and
    /// verified) becomes the pinned one. Also re-pins an org whose master has this name.
    /// Returns the newly trusted card.
    ///
    /// # Errors
    /// [`ClientError::NothingPending`] if there is nothing to accept, [`ClientError::Vault`].
    pub fn trust_peer(&self, name: &str, fresh: Option<&VerifiedCard>) -> Result<IdentityCard> {
        let mut pins = self.pins()?;
        let new = match (pins.peers.get(name).and_then(|p| p.pending.clone()), fresh) {
            (Some(pending), _) => pending,
            (None, Some(card)) => card.card().clone(),
            (None, None) => {
                return Err(ClientError::NothingPending {
                    name: name.to_owned(),
                });
            }
        };
        pins.peers.insert(
            name.to_owned(),
            PeerPin {
                card: new.clone(),
                pending: None,
            },
        );
        for org in pins.orgs.values_mut() {
            if org.master.name == name {
                org.master = new.clone();
                org.source = PinSource::Trusted;
            }
        }
        self.save_pins(&pins)?;
        Ok(new)
    }

    /// The pinned master of `org`, if any.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn org_pin(&self, org: &str) -> Result<Option<OrgPin>> {
        Ok(self.pins()?.orgs.get(org).cloned())
    }

    /// Pins `org`'s master card.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn pin_org(&self, org: &str, master: &IdentityCard, source: PinSource) -> Result<()> {
        let mut pins = self.pins()?;
        pins.orgs.insert(
            org.to_owned(),
            OrgPin {
                master: master.clone(),
                source,
            },
        );
        self.save_pins(&pins)
    }

    /// Checks a relay's keys against the pin for `url`, pinning them on first contact.
    ///
    /// # Errors
    /// [`ClientError::RelayKeyChanged`], [`ClientError::Vault`].
    pub fn check_relay(
        &self,
        url: &str,
        relay_key: SigningPublicKey,
        log_key: SigningPublicKey,
    ) -> Result<RelayPin> {
        let mut pins = self.pins()?;
        if let Some(pin) = pins.relays.get(url) {
            if pin.relay_key != relay_key {
                return Err(ClientError::RelayKeyChanged {
                    url: url.to_owned(),
                    what: "relay",
                });
            }
            if pin.log_key != log_key {
                return Err(ClientError::RelayKeyChanged {
                    url: url.to_owned(),
                    what: "audit log",
                });
            }
            return Ok(*pin);
        }
        let pin = RelayPin { relay_key, log_key };
        pins.relays.insert(url.to_owned(), pin);
        self.save_pins(&pins)?;
        Ok(pin)
    }

    // --- policies -----------------------------------------------------------------------

    /// Stores a policy (verified by the caller).
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn save_policy(&self, policy: &OrgPolicy) -> Result<()> {
        self.put_cbor(&name::policy(&policy.org, policy.version), policy)
    }

    /// The highest policy version stored for `org`, if any.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn highest_policy_version(&self, org: &str) -> Result<Option<u32>> {
        let prefix = name::policy_prefix(org);
        Ok(self
            .vault
            .list(&prefix)?
            .iter()
            .filter_map(|n| n.strip_prefix(&prefix).and_then(|v| v.parse::<u32>().ok()))
            .max())
    }

    /// A stored policy version (not verified: verify before use).
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn stored_policy(&self, org: &str, version: u32) -> Result<Option<OrgPolicy>> {
        self.get_cbor(&name::policy(org, version))
    }

    // --- conversations ------------------------------------------------------------------

    /// Every conversation known locally.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn conversations(&self) -> Result<Vec<ConvMeta>> {
        let mut out = Vec::new();
        for name in self.vault.list(name::CONVERSATIONS)? {
            if name.ends_with("/meta")
                && let Some(meta) = self.get_cbor::<ConvMeta>(&name)?
            {
                out.push(meta);
            }
        }
        out.sort_by_key(|m| m.created_at);
        Ok(out)
    }

    /// A conversation's bookkeeping.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn conversation(&self, id: &ConversationId) -> Result<Option<ConvMeta>> {
        self.get_cbor(&name::conv_meta(id))
    }

    /// Stores a conversation's bookkeeping.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn save_conversation(&self, meta: &ConvMeta) -> Result<()> {
        self.put_cbor(&name::conv_meta(&meta.id), meta)
    }

    /// Whether a release notice with this audit leaf hash was already shown in the
    /// conversation.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn notice_seen(&self, id: &ConversationId, leaf: &[u8; 32]) -> Result<bool> {
        Ok(self.vault.get(&name::conv_notice(id, leaf))?.is_some())
    }

    /// Records that a release notice was shown.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn mark_notice_seen(&self, id: &ConversationId, leaf: &[u8; 32]) -> Result<()> {
        Ok(self.vault.put(&name::conv_notice(id, leaf), &[1])?)
    }

    /// An epoch's state.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn epoch(&self, id: &ConversationId, epoch: u32) -> Result<Option<EpochState>> {
        self.get_cbor(&name::conv_epoch(id, epoch))
    }

    /// Records that this home created `record` (before it is stored): its hash, so that a
    /// record of the same number another device stored first is not taken for it.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn mark_made_here(&self, id: &ConversationId, record: &EpochRecord) -> Result<()> {
        self.put_cbor(&name::conv_made_here(id, record.epoch), &record.hash())
    }

    /// Whether this home created `record` ([`Self::mark_made_here`]).
    ///
    /// # Errors
    /// [`ClientError::Vault`], [`ClientError::Protocol`].
    pub fn made_here(&self, id: &ConversationId, record: &EpochRecord) -> Result<bool> {
        Ok(self
            .get_cbor::<[u8; 32]>(&name::conv_made_here(id, record.epoch))?
            .is_some_and(|h| h == record.hash()))
    }

    /// Stores an epoch's state.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn save_epoch(&self, id: &ConversationId, state: &EpochState) -> Result<()> {
        // Another process of this account may have reserved counters since `state` was read:
        // the next counter never goes back.
        let name = name::conv_epoch(id, state.record.epoch);
        let lock = self.vault.lock()?;
        let mut state = state.clone();
        if let Some(stored) = self.get_cbor::<EpochState>(&name)? {
            state.next_counter = state.next_counter.max(stored.next_counter);
        }
        lock.put(
            &name,
            &Zeroizing::new(sealdesk_protocol::wire::to_cbor(&state)?),
        )?;
        Ok(())
    }

    /// Reserves this account's next sending counter in `epoch` of `id`: read, advanced and
    /// written back under the vault's lock before it is returned, so no other process of this
    /// account (a `chat` next to a `send`) is handed the same one, and a crash after this
    /// burns it rather than reusing it. Returns the counter and the epoch state as stored.
    ///
    /// # Errors
    /// [`ClientError::Vault`]; [`ClientError::Protocol`] for an undecodable record;
    /// [`ClientError::UnexpectedResponse`] if the epoch has no stored state.
    pub fn reserve_counter(&self, id: &ConversationId, epoch: u32) -> Result<(u64, EpochState)> {
        if !self.may_send_in(id, epoch)? {
            // A recovered account does not know its highest counter in an epoch opened before
            // its recovery (crate::recovery): it never sends there.
            return Err(ClientError::CannotSend {
                conversation: id.to_string(),
                reason: format!(
                    "this account was recovered and may have sent in epoch {epoch} before; a new \
                     epoch must be opened first"
                ),
            });
        }
        let name = name::conv_epoch(id, epoch);
        let lock = self.vault.lock()?;
        let mut state = self.get_cbor::<EpochState>(&name)?.ok_or_else(|| {
            ClientError::UnexpectedResponse(format!("no stored state for epoch {epoch}"))
        })?;
        let counter = state.next_counter;
        state.next_counter = counter.saturating_add(1);
        lock.put(
            &name,
            &Zeroizing::new(sealdesk_protocol::wire::to_cbor(&state)?),
        )?;
        Ok((counter, state))
    }

    /// Every epoch state of a conversation, in epoch order.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn epochs(&self, id: &ConversationId) -> Result<Vec<EpochState>> {
        let mut out = Vec::new();
        for name in self.vault.list(&name::conv_epoch_prefix(id))? {
            if let Some(state) = self.get_cbor::<EpochState>(&name)? {
                out.push(state);
            }
        }
        out.sort_by_key(|s| s.record.epoch);
        Ok(out)
    }

    /// Stores an epoch secret.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn save_secret(&self, id: &ConversationId, epoch: u32, k: &EpochSecret) -> Result<()> {
        Ok(self
            .vault
            .put(&name::conv_key(id, epoch), k.to_bytes().as_slice())?)
    }

    /// A stored epoch secret.
    ///
    /// # Errors
    /// [`ClientError::Vault`], [`ClientError::SecretDamaged`] if damaged.
    pub fn secret(&self, id: &ConversationId, epoch: u32) -> Result<Option<EpochSecret>> {
        let Some(bytes) = self.vault.get(&name::conv_key(id, epoch))? else {
            return Ok(None);
        };
        let arr: Zeroizing<[u8; 32]> =
            Zeroizing::new(bytes.as_slice().try_into().map_err(|_| {
                ClientError::SecretDamaged {
                    conversation: id.to_string(),
                    epoch,
                }
            })?);
        Ok(Some(EpochSecret::from_bytes(&arr)))
    }

    /// Appends an item to a conversation's timeline.
    ///
    /// # Errors
    /// [`ClientError::Vault`], [`ClientError::Protocol`].
    pub fn append_log(&self, id: &ConversationId, entry: &LogEntry) -> Result<()> {
        let bytes = Zeroizing::new(to_cbor(entry)?);
        self.vault.append(&name::conv_log(id), &bytes)?;
        Ok(())
    }

    /// A conversation's timeline, ordered by relay sequence number. When an item was logged
    /// twice (a message first unreadable, later opened through a hand-off), the readable one
    /// wins.
    ///
    /// # Errors
    /// [`ClientError::Vault`], [`ClientError::Protocol`].
    pub fn log(&self, id: &ConversationId) -> Result<Vec<LogEntry>> {
        let mut by_seq: BTreeMap<u64, LogEntry> = BTreeMap::new();
        let mut extra = Vec::new();
        for frame in self.vault.read_log(&name::conv_log(id))? {
            let entry: LogEntry = from_cbor(&frame, "log entry")?;
            let seq = entry.seq();
            if seq == 0 {
                extra.push(entry);
                continue;
            }
            // A later entry for the same item replaces a rejection (a message first unreadable,
            // then opened through a hand-off) or a notice not yet witnessed (then witnessed,
            // or found not genuine), never the other way round.
            match by_seq.get(&seq) {
                None
                | Some(LogEntry::Rejected { .. })
                | Some(LogEntry::Notice {
                    unwitnessed: Some(_),
                    ..
                }) => {
                    by_seq.insert(seq, entry);
                }
                Some(_) => {}
            }
        }
        let mut out: Vec<LogEntry> = by_seq.into_values().collect();
        out.extend(extra);
        out.sort_by_key(LogEntry::seq);
        Ok(out)
    }

    // --- helpers ------------------------------------------------------------------------

    /// Stores a CBOR value.
    ///
    /// # Errors
    /// [`ClientError::Vault`], [`ClientError::Protocol`].
    pub fn put_cbor<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        store::put_cbor(&self.vault, name, value)
    }

    /// Loads a CBOR value.
    ///
    /// # Errors
    /// [`ClientError::Vault`], [`ClientError::Protocol`].
    pub fn get_cbor<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        store::get_cbor(&self.vault, name)
    }

    /// Typed access to the escrow side's records ([`Store`]).
    pub fn store(&self) -> Store<'_> {
        Store::new(&self.vault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_open_and_wrong_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("h");
        let a = Account::create(&home, "pw", KdfParams::TESTING, "alice", Role::Customer).unwrap();
        let fp = a.fingerprint();
        drop(a);
        let a = Account::open(&home, "pw").unwrap();
        assert_eq!(a.name(), "alice");
        assert_eq!(a.fingerprint(), fp);
        drop(a);
        let err = Account::open(&home, "nope").unwrap_err();
        assert_eq!(
            err,
            ClientError::Vault(crate::vault::VaultError::WrongPassphrase { dir: home.clone() })
        );
        assert!(err.to_string().contains("wrong passphrase"), "{err}");
    }

    #[test]
    fn pins_detect_changes_and_trust_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let a = Account::create(
            dir.path(),
            "pw",
            KdfParams::TESTING,
            "alice",
            Role::Customer,
        )
        .unwrap();
        let k1 = IdentityKeys::generate(&mut rng().unwrap());
        let k2 = IdentityKeys::generate(&mut rng().unwrap());
        let c1 = IdentityCard::issue(&k1, "bob", Role::Agent, 1).unwrap();
        let c2 = IdentityCard::issue(&k2, "bob", Role::Agent, 2).unwrap();
        assert_eq!(a.observe_peer(&c1).unwrap(), PinStatus::New);
        assert_eq!(a.observe_peer(&c1).unwrap(), PinStatus::Same);
        assert!(!a.peer_blocked("bob").unwrap());
        assert_eq!(a.observe_peer(&c2).unwrap(), PinStatus::Changed);
        assert!(a.peer_blocked("bob").unwrap());
        a.trust_peer("bob", None).unwrap();
        assert!(!a.peer_blocked("bob").unwrap());
        assert_eq!(a.observe_peer(&c2).unwrap(), PinStatus::Same);
    }
}
