//! The client's records in the vault: every record name in one place (`store::name`), and typed
//! reads and writes of the escrow side's records ([`Store`]: consents, the pinned audit and
//! witness heads, the trustee's decisions, revocations and rate, the master's released keys,
//! release requests and transcripts), with the shapes they are stored in.
//!
//! The vault is the one implementation underneath: a record is its name and its CBOR value,
//! exactly as before this module existed, so existing vaults open unchanged. Code outside this
//! module and [`crate::account`] never spells a record name.

use std::collections::BTreeMap;

use sealdesk_protocol::{
    audit::{AuditEntry, SignedTreeHead},
    epoch::EpochRecord,
    ids::{ConversationId, TokenId},
    keys::SigningPublicKey,
    message::Envelope,
    policy::OrgPolicy,
    release::{ConsentToken, ReleaseRequest},
    secret::EpochSecret,
    wire::{from_cbor, to_cbor},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use zeroize::Zeroizing;

use crate::error::Result;
use crate::vault::Vault;

/// Record and log names, one function or constant per record (the on-disk format: never
/// rename one without a migration).
pub(crate) mod name {
    use sealdesk_protocol::ids::{ConversationId, TokenId};

    /// The account's identity keys.
    pub(crate) const IDENTITY: &str = "identity";
    /// The account's profile (name, role).
    pub(crate) const PROFILE: &str = "profile";
    /// Pinned peers, orgs and relays.
    pub(crate) const PINS: &str = "pins";
    /// Every conversation's records start with this.
    pub(crate) const CONVERSATIONS: &str = "conv/";
    /// The consents this customer granted.
    pub(crate) const CONSENTS: &str = "consents";
    /// The audit tree head pinned last.
    pub(crate) const AUDIT_HEAD: &str = "audit/head";
    /// The justifications a trustee has spent, with the request that spent each.
    pub(crate) const TRUSTEE_SPENT: &str = "trustee/spent";
    /// Consent revocations read from the audit log, by consent id, each with its signer and
    /// conversation ([`super::Revocation`]). Earlier versions kept a plain set under
    /// `trustee/revoked`, which did not say who revoked; this name and its cursor are new, so
    /// an upgraded trustee reads the log again from the start.
    pub(crate) const TRUSTEE_REVOCATIONS: &str = "trustee/revocations";
    /// How far the trustee has read the audit log for [`TRUSTEE_REVOCATIONS`].
    pub(crate) const TRUSTEE_REVOCATIONS_CURSOR: &str = "trustee/revocations-cursor";
    /// The releases a trustee approved recently, by org (its rate limit).
    pub(crate) const TRUSTEE_RATE: &str = "trustee/rate";
    /// A recovered account's recovery record (`crate::recovery::RecoveryRecord`); absent on
    /// accounts never recovered.
    pub(crate) const RECOVERY: &str = "recovery";
    /// A replacement recovery code not yet confirmed by the relay (its text;
    /// `crate::recovery_code`).
    pub(crate) const RECOVERY_PENDING: &str = "recovery/pending";
    /// The last tree head this trustee cosigned as a witness.
    pub(crate) const WITNESS_HEAD: &str = "trustee/witness-head";

    /// A policy version of an org.
    pub(crate) fn policy(org: &str, version: u32) -> String {
        format!("{}{version}", policy_prefix(org))
    }

    /// Every policy version of an org starts with this.
    pub(crate) fn policy_prefix(org: &str) -> String {
        format!("policy/{}/", hex::encode(org.as_bytes()))
    }

    /// A conversation's metadata (cursor, delivery states).
    pub(crate) fn conv_meta(id: &ConversationId) -> String {
        format!("conv/{id}/meta")
    }

    /// A notice (by its audit leaf hash) already shown in a conversation.
    pub(crate) fn conv_notice(id: &ConversationId, leaf: &[u8; 32]) -> String {
        format!("conv/{id}/notice/{}", hex::encode(leaf))
    }

    /// The state of one epoch of a conversation.
    pub(crate) fn conv_epoch(id: &ConversationId, epoch: u32) -> String {
        format!("{}{epoch}", conv_epoch_prefix(id))
    }

    /// Every epoch state of a conversation starts with this.
    pub(crate) fn conv_epoch_prefix(id: &ConversationId) -> String {
        format!("conv/{id}/epoch/")
    }

    /// Marks an epoch that this home created itself (written before the record is stored):
    /// another device of the same account creates epochs under the same key, and this device
    /// seals only in epochs made here or by another member (SECURITY.md, "Two devices of one
    /// agent").
    pub(crate) fn conv_made_here(id: &ConversationId, epoch: u32) -> String {
        format!("conv/{id}/made/{epoch}")
    }

    /// The secret of one readable epoch.
    pub(crate) fn conv_key(id: &ConversationId, epoch: u32) -> String {
        format!("conv/{id}/key/{epoch}")
    }

    /// The reference (key included) of the attachment carried by the message at `seq`.
    pub(crate) fn attachment(id: &ConversationId, seq: u64) -> String {
        format!("conv/{id}/attachment/{seq}")
    }

    /// An attachment being uploaded (its reference, until the message carrying it is sent),
    /// by a tag of its file.
    pub(crate) fn attachment_upload(id: &ConversationId, tag: &str) -> String {
        format!("conv/{id}/upload/{tag}")
    }

    /// A verified attachment's plaintext, by its SHA-256 in hex: what a transcript export
    /// (`transcript show`) reads again instead of fetching it, its hash checked again on use.
    pub(crate) fn attachment_file(sha256: &str) -> String {
        format!("files/{sha256}")
    }

    /// Which cached file (`files/SHA256`) was used when, to remove the least recently used
    /// first (`crate::file_cache`).
    pub(crate) const FILE_CACHE: &str = "file-cache";

    /// A conversation's timeline (a log).
    pub(crate) fn conv_log(id: &ConversationId) -> String {
        format!("conv/{id}/log")
    }

    /// What the client has asked the relay again in a conversation.
    pub(crate) fn refetch(id: &ConversationId) -> String {
        format!("conv/{id}/refetch")
    }

    /// Sequence numbers a customer's cursor jumped over, and the requests made for them.
    pub(crate) fn holes(id: &ConversationId) -> String {
        format!("conv/{id}/holes")
    }

    /// The counters that left a reordering window without arriving.
    pub(crate) fn lost(id: &ConversationId) -> String {
        format!("conv/{id}/lost")
    }

    /// A trustee's record of one release request.
    pub(crate) fn trustee_request(request: &TokenId) -> String {
        format!("trustee/req/{request}")
    }

    /// A release request this master made, by its hash.
    pub(crate) fn release_request(hash: &[u8; 32]) -> String {
        format!("master/release-request/{}", hex::encode(hash))
    }

    /// An epoch secret released to this master.
    pub(crate) fn master_key(id: &ConversationId, epoch: u32) -> String {
        format!("master/key/{id}/{epoch}")
    }

    /// The master's decrypted transcript of a conversation.
    pub(crate) fn master_transcript(id: &ConversationId) -> String {
        format!("master/transcript/{id}")
    }

    /// The release request this master made under a justification (a consent or ticket id):
    /// an interrupted unlock resumes it instead of asking the trustees a second time.
    pub(crate) fn master_unlock(justification: &TokenId) -> String {
        format!("master/unlock/{justification}")
    }
}

/// A consent this customer granted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// The signed token.
    pub token: ConsentToken,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// A consent revocation as a trustee read it from the audit log. It counts only if `signer` is
/// the consent's own signer and `conversation` its conversation (checked when a request is
/// decided, when the consent is at hand).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Revocation {
    /// The conversation the entry names.
    pub(crate) conversation: ConversationId,
    /// Who signed the entry.
    pub(crate) signer: SigningPublicKey,
}

/// Where a trustee is with one request (persisted before each step).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TrusteeStage {
    /// Decided to release; about to append the entry (the log had `log_size` entries before).
    Logging {
        /// Log size before the append.
        log_size: u64,
    },
    /// The entry is in the log at `index`; shares not yet acknowledged.
    Logged {
        /// Leaf index.
        index: u64,
    },
    /// Shares sent.
    Released,
    /// Refused.
    Refused(String),
}

/// A trustee's record of one request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrusteeRecord {
    /// The justification id (spent by this request).
    pub justification: TokenId,
    /// Where it is.
    pub stage: TrusteeStage,
}

/// One message of a released transcript.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TranscriptMessage {
    /// Relay sequence number.
    pub seq: u64,
    /// Epoch.
    pub epoch: u32,
    /// Sender counter.
    pub counter: u64,
    /// Sender name (from the epoch record).
    pub sender: String,
    /// Sender's clock.
    pub sent_at: u64,
    /// The text (masked if the release was redacted); for a file, its description as
    /// `history` shows it (name, size and caption), or that it is withheld if the release
    /// was redacted.
    pub text: String,
    /// The envelope as stored (for offline verification).
    pub envelope: Envelope,
}

/// A released transcript held by the master.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Transcript {
    /// The conversation.
    pub conversation: ConversationId,
    /// The org.
    pub org: String,
    /// Whether redaction is mandatory (a consent of scope `redacted`).
    pub redacted: bool,
    /// Released epoch records.
    pub records: Vec<EpochRecord>,
    /// Policies the records were made under.
    pub policies: Vec<OrgPolicy>,
    /// Messages of the released epochs, in relay order: texts and files (attachment
    /// messages), the items `history` numbers; not read receipts or status changes.
    pub messages: Vec<TranscriptMessage>,
    /// Whether `messages` holds the files as well as the texts. A transcript kept by an
    /// earlier version holds texts only (`false`): counting its messages skips the files, so
    /// its numbers are not `history`'s.
    #[serde(default)]
    pub with_files: bool,
    /// Gaps: (epoch, sender, missing counters).
    pub gaps: Vec<(u32, String, Vec<u64>)>,
    /// Release entries `(index, entry)` of the requests that opened it.
    pub releases: Vec<(u64, AuditEntry)>,
}

/// Typed access to the escrow side's records of one vault.
#[derive(Clone, Copy, Debug)]
pub struct Store<'a> {
    vault: &'a Vault,
}

impl<'a> Store<'a> {
    /// The records of `vault`.
    pub fn new(vault: &'a Vault) -> Self {
        Self { vault }
    }

    fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        get_cbor(self.vault, name)
    }

    fn put<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<()> {
        put_cbor(self.vault, name, value)
    }

    /// The consents this customer granted, by consent id (none stored: empty).
    ///
    /// # Errors
    /// [`crate::ClientError::Vault`], [`crate::ClientError::Protocol`] for a damaged record.
    pub fn consents(&self) -> Result<BTreeMap<String, ConsentRecord>> {
        Ok(self.get(name::CONSENTS)?.unwrap_or_default())
    }

    /// Replaces the consents this customer granted.
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn put_consents(&self, all: &BTreeMap<String, ConsentRecord>) -> Result<()> {
        self.put(name::CONSENTS, all)
    }

    /// The audit tree head pinned last, if any.
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn audit_head(&self) -> Result<Option<SignedTreeHead>> {
        self.get(name::AUDIT_HEAD)
    }

    /// Pins `head` as the audit tree head seen last.
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn put_audit_head(&self, head: &SignedTreeHead) -> Result<()> {
        self.put(name::AUDIT_HEAD, head)
    }

    /// The last tree head this trustee cosigned as a witness, if any.
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn witness_head(&self) -> Result<Option<SignedTreeHead>> {
        self.get(name::WITNESS_HEAD)
    }

    /// Records `head` as the last tree head this trustee cosigned.
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn put_witness_head(&self, head: &SignedTreeHead) -> Result<()> {
        self.put(name::WITNESS_HEAD, head)
    }

    /// The trustee's record of `request`, if it has seen it.
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn trustee_record(&self, request: &TokenId) -> Result<Option<TrusteeRecord>> {
        self.get(&name::trustee_request(request))
    }

    /// Persists the trustee's record of `request`.
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn put_trustee_record(&self, request: &TokenId, record: &TrusteeRecord) -> Result<()> {
        self.put(&name::trustee_request(request), record)
    }

    /// The justifications this trustee has spent (by id), each with the request that spent it.
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn spent(&self) -> Result<BTreeMap<String, String>> {
        Ok(self.get(name::TRUSTEE_SPENT)?.unwrap_or_default())
    }

    /// Replaces the spent justifications.
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn put_spent(&self, spent: &BTreeMap<String, String>) -> Result<()> {
        self.put(name::TRUSTEE_SPENT, spent)
    }

    /// The consent revocations read from the audit log so far, by consent id.
    pub(crate) fn revocations(&self) -> Result<BTreeMap<String, Vec<Revocation>>> {
        Ok(self.get(name::TRUSTEE_REVOCATIONS)?.unwrap_or_default())
    }

    /// Replaces the revocations read so far.
    pub(crate) fn put_revocations(&self, all: &BTreeMap<String, Vec<Revocation>>) -> Result<()> {
        self.put(name::TRUSTEE_REVOCATIONS, all)
    }

    /// How far the trustee has read the audit log for revocations (0: not at all).
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn revocations_cursor(&self) -> Result<u64> {
        Ok(self
            .get(name::TRUSTEE_REVOCATIONS_CURSOR)?
            .unwrap_or_default())
    }

    /// Records how far the trustee has read the audit log for revocations.
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn put_revocations_cursor(&self, size: u64) -> Result<()> {
        self.put(name::TRUSTEE_REVOCATIONS_CURSOR, &size)
    }

    /// The releases this trustee approved recently: (org, Unix seconds).
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn rate(&self) -> Result<Vec<(String, u64)>> {
        Ok(self.get(name::TRUSTEE_RATE)?.unwrap_or_default())
    }

    /// Replaces the recent releases.
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn put_rate(&self, rate: &[(String, u64)]) -> Result<()> {
        self.put(name::TRUSTEE_RATE, rate)
    }

    /// A release request this master made, by its hash.
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn release_request(&self, hash: &[u8; 32]) -> Result<Option<ReleaseRequest>> {
        self.get(&name::release_request(hash))
    }

    /// Keeps a release request this master made.
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn put_release_request(&self, request: &ReleaseRequest) -> Result<()> {
        self.put(&name::release_request(&request.hash()), request)
    }

    /// The secret of epoch `epoch` of `id` released to this master, if it was (a record of the
    /// wrong length reads as missing: the export then leaves that epoch's key out).
    ///
    /// # Errors
    /// [`crate::ClientError::Vault`].
    pub fn master_key(&self, id: &ConversationId, epoch: u32) -> Result<Option<EpochSecret>> {
        let Some(bytes) = self.vault.get(&name::master_key(id, epoch))? else {
            return Ok(None);
        };
        Ok(<[u8; 32]>::try_from(bytes.as_slice())
            .ok()
            .map(|b| EpochSecret::from_bytes(&Zeroizing::new(b))))
    }

    /// Keeps the secret of epoch `epoch` of `id` released to this master.
    ///
    /// # Errors
    /// [`crate::ClientError::Vault`].
    pub fn put_master_key(&self, id: &ConversationId, epoch: u32, k: &EpochSecret) -> Result<()> {
        Ok(self
            .vault
            .put(&name::master_key(id, epoch), k.to_bytes().as_slice())?)
    }

    /// The master's decrypted transcript of `id`, if it unlocked any of it.
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn transcript(&self, id: &ConversationId) -> Result<Option<Transcript>> {
        self.get(&name::master_transcript(id))
    }

    /// Keeps the master's decrypted transcript of `id`.
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn put_transcript(&self, id: &ConversationId, transcript: &Transcript) -> Result<()> {
        self.put(&name::master_transcript(id), transcript)
    }

    /// The release request this master made under `justification`, if it made one.
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn unlock_request(&self, justification: &TokenId) -> Result<Option<ReleaseRequest>> {
        self.get(&name::master_unlock(justification))
    }

    /// Keeps `request` as the one this master made under its justification (before it is
    /// submitted, so an unlock interrupted at any point finds it).
    ///
    /// # Errors
    /// As [`Self::consents`].
    pub fn put_unlock_request(&self, request: &ReleaseRequest) -> Result<()> {
        self.put(&name::master_unlock(&request.justification.id()), request)
    }
}

/// Stores a CBOR value under `name`.
pub(crate) fn put_cbor<T: Serialize + ?Sized>(vault: &Vault, name: &str, value: &T) -> Result<()> {
    let bytes = Zeroizing::new(to_cbor(&value)?);
    Ok(vault.put(name, &bytes)?)
}

/// Loads the CBOR value under `name`.
pub(crate) fn get_cbor<T: DeserializeOwned>(vault: &Vault, name: &str) -> Result<Option<T>> {
    match vault.get(name)? {
        None => Ok(None),
        Some(bytes) => Ok(Some(from_cbor(&bytes, "stored record")?)),
    }
}
