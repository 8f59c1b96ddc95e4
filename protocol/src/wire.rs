//! Client ↔ relay frames.
//!
//! A frame on the WebSocket is one binary message: a version byte, then one CBOR item (RFC 8949,
//! through serde) encoding [`Frame`]. CBOR has independent implementations in every language the
//! browser widget or an auditor's tool might use. Nothing is ever *signed* as CBOR: signed objects
//! carry their own canonical layouts ([`crate::codec`]), re-derived from the decoded fields.
//!
//! ```text
//!   frame = version:u8 (= 1) ‖ CBOR(Frame)        at most MAX_FRAME bytes, no trailing bytes
//! ```
//!
//! The flow: relay sends `Challenge`; client answers `Auth`; relay answers `Welcome`, or a
//! `Response { id: 0, body: Error }` and closes with 4101. Then the client sends `Request { id, .. }`s, each answered by exactly one
//! `Response { id, .. }`, and the relay sends `Push`es at any time.

use serde::{Deserialize, Serialize};

mod unknown;

pub use unknown::{Received, decode_received, push_kinds};

use crate::{
    Error, Result,
    audit::{
        AuditEntry, ConsistencyProof, Cosignature, InclusionProof, SignedTreeHead, WithheldEntry,
        WitnessedHead,
    },
    block::{Block, Unblock},
    card::IdentityCard,
    codec::Writer,
    epoch::{EpochRecord, HandOff},
    ids::{AttachmentId, ConversationId},
    keys::{IdentityKeys, Signature, SigningPublicKey},
    labels,
    message::Envelope,
    open_token::{OpenToken, OpenTokenRefusal, WebKeyCertificate, WebKeyRevocation},
    policy::{AgentCertificate, OrgPolicy},
    recovery_record::RecoveryRecord,
    release::{
        ArbiterDecision, ClosedBecause, ConsentToken, DisputeClose, DisputeTicket, ErasureRequest,
        ReleaseRequest, ReleasedShare,
    },
    signal::SignalEnvelope,
};

/// The wire format version this code speaks.
pub const WIRE_VERSION: u8 = 1;
/// Largest frame either side accepts, in bytes.
pub const MAX_FRAME: usize = 64 * 1024;

/// One frame.
// Frames live for one encode or decode; boxing the large variants would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frame {
    /// Relay → client, first frame: prove you hold an identity key.
    Challenge(Challenge),
    /// Client → relay: the signed answer to the challenge.
    Auth(AuthResponse),
    /// Relay → client: authenticated.
    Welcome(Welcome),
    /// Client → relay: a request; answered by one [`Frame::Response`] with the same id.
    Request {
        /// Chosen by the client, echoed in the response.
        id: u64,
        /// The request.
        body: Request,
    },
    /// Relay → client: the answer to request `id`.
    Response {
        /// The request id.
        id: u64,
        /// The answer.
        body: Response,
    },
    /// Relay → client: something new for this account.
    Push(Push),
}

/// The relay's authentication challenge.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Challenge {
    /// The relay's log/identity key (clients pin it like any other key).
    pub relay_key: SigningPublicKey,
    /// 32 random bytes, fresh per connection.
    #[serde(with = "serde_bytes")]
    pub nonce: [u8; 32],
}

/// The client's answer: its card and a signature over the challenge.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AuthResponse {
    /// The account's card (the relay registers it if `register` is set, else looks it up).
    pub card: IdentityCard,
    /// Signature over [`AuthResponse::signed_bytes`].
    pub signature: Signature,
}

impl AuthResponse {
    /// The canonical bytes signed: label, relay key, nonce, the account's signing key.
    pub fn signed_bytes(challenge: &Challenge, account: &SigningPublicKey) -> Vec<u8> {
        let mut w = Writer::with_label(labels::AUTH);
        w.fixed(challenge.relay_key.as_bytes())
            .fixed(&challenge.nonce)
            .fixed(account.as_bytes());
        w.into_bytes()
    }

    /// Answers `challenge` with `keys`.
    pub fn answer(keys: &IdentityKeys, card: IdentityCard, challenge: &Challenge) -> Self {
        let signature = keys.sign(&Self::signed_bytes(challenge, &keys.signing_public()));
        Self { card, signature }
    }

    /// Checks the answer (card self-signature and challenge signature).
    ///
    /// # Errors
    /// [`Error::BadSignature`] or a card error.
    pub fn verify(&self, challenge: &Challenge) -> Result<crate::card::VerifiedCard> {
        let card = self.card.clone().verify()?;
        card.signing_key.verify(
            &Self::signed_bytes(challenge, &card.signing_key),
            &self.signature,
            "authentication",
        )?;
        Ok(card)
    }
}

/// The relay's welcome after authentication.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Welcome {
    /// Whether the account's card is registered on this relay.
    pub registered: bool,
    /// The relay's audit-log key.
    pub log_key: SigningPublicKey,
}

/// What a client can ask.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Register the authenticated card (names are unique per relay).
    Register,
    /// Look up a card by name.
    GetCard {
        /// The name.
        name: String,
    },
    /// Publish an org policy (only by the master key it names).
    PublishPolicy(OrgPolicy),
    /// Fetch an org's current policy.
    GetPolicy {
        /// The org.
        org: String,
        /// A specific version, or the latest.
        version: Option<u32>,
    },
    /// Publish an agent certificate (only by the org's master).
    PublishCertificate(AgentCertificate),
    /// Fetch an agent's certificate.
    GetCertificate {
        /// The org.
        org: String,
        /// The agent's name.
        agent: String,
    },
    /// Customer: open a conversation with an org; the relay assigns an agent.
    OpenConversation {
        /// The org.
        org: String,
        /// The client-chosen random id.
        conversation: ConversationId,
    },
    /// Transfer a conversation to another agent (agent; followed by a new epoch record).
    Transfer {
        /// The conversation.
        conversation: ConversationId,
        /// The new agent's name.
        agent: String,
    },
    /// List this account's conversations.
    ListConversations,
    /// Store an epoch record (from a member of the previous epoch; the customer for epoch 0).
    PutEpoch(EpochRecord),
    /// Store a history hand-off.
    PutHandOff(HandOff),
    /// Store and forward a message.
    Send(Envelope),
    /// Conversation items after `after` (relay sequence), up to `limit`.
    History {
        /// The conversation.
        conversation: ConversationId,
        /// Items with a sequence number greater than this.
        after: u64,
        /// Maximum number of items.
        limit: u32,
    },
    /// Mark items up to `seq` delivered to this account.
    Delivered {
        /// The conversation.
        conversation: ConversationId,
        /// Up to this sequence number.
        seq: u64,
    },
    /// Master: send a release request to the org's trustees.
    SubmitRelease(ReleaseRequest),
    /// Trustee: deliver released shares to the master.
    SubmitShares {
        /// The request id.
        request: crate::ids::TokenId,
        /// The shares.
        shares: Vec<ReleasedShare>,
    },
    /// Trustee: refuse a request (the master is told why).
    RefuseRelease {
        /// The request id.
        request: crate::ids::TokenId,
        /// Why.
        reason: String,
    },
    /// Trustee: release requests waiting for this trustee.
    PendingReleases,
    /// Master: shares and refusals received for a request.
    ReleaseStatus {
        /// The request id.
        request: crate::ids::TokenId,
    },
    /// Master: open a dispute ticket (sent to the arbiters).
    OpenTicket(DisputeTicket),
    /// Arbiter: approve or reject a ticket.
    Decide(ArbiterDecision),
    /// Arbiter or master: tickets of the org, with decisions so far.
    ListTickets,
    /// Master: close a dispute ticket (no release follows under it; the legal hold ends).
    CloseTicket(DisputeClose),
    /// Customer: hand a consent token to the org's master through the relay. It is stored in
    /// the conversation as [`Item::Consent`], readable by the customer and the master only.
    ShareConsent(ConsentToken),
    /// Append a signed entry to the audit log (the relay checks the signature).
    AppendAudit(AuditEntry),
    /// The latest signed tree head.
    GetTreeHead,
    /// Entries `from..from+limit`. Entries the caller may not read (PROTOCOL.md §12 "Who
    /// reads the log") come back as [`WithheldEntry`]s in [`Response::Entries`].
    GetEntries {
        /// First index.
        from: u64,
        /// How many.
        limit: u32,
    },
    /// Inclusion proof of entry `index` in the tree of `size`.
    GetInclusion {
        /// Leaf index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// Consistency proof between two sizes.
    GetConsistency {
        /// Old size.
        old: u64,
        /// New size.
        new: u64,
    },
    /// Customer: erase a conversation.
    Erase(ErasureRequest),
    /// Trustee: a witness cosignature on a tree head the relay served (DESIGN.md §4
    /// "Witnesses"). The relay checks it against its log and keeps the latest per witness.
    Cosign(Cosignature),
    /// The latest tree head with the latest cosignature of each trustee of `org`'s current
    /// policy ([`Response::WitnessedHead`]).
    GetWitnessedHead {
        /// The org whose trustees witness.
        org: String,
    },
    /// Master: the conversations of its org, metadata only ([`Response::OrgConversations`]);
    /// refused (`forbidden`) to anyone but the org's master.
    OrgConversations {
        /// The org.
        org: String,
    },
    /// A member: an ephemeral signal (typing) for the other members of the conversation who
    /// are online ([`Push::Signal`]). Never stored; answered `ok` once forwarded.
    Signal(SignalEnvelope),
    /// Agent or master: close the block's conversation as spam and block its customer's key
    /// for the org ([`Block`]); answered `ok` once durable.
    Block(Block),
    /// Master: lift a block ([`Unblock`]); answered `ok` once durable.
    Unblock(Unblock),
    /// Customer: open a conversation with an org whose policy requires an open token
    /// (`open_conversation` with the token the org's web site issued to this customer key).
    OpenConversationWithToken {
        /// The org.
        org: String,
        /// The client-chosen random id.
        conversation: ConversationId,
        /// The open token.
        token: OpenToken,
    },
    /// Master: publish a certificate of the org's web server key (open tokens it signs are
    /// accepted from then on; a certificate under the same name replaces it).
    PublishWebKey(WebKeyCertificate),
    /// Master: revoke a web server key of the org ([`WebKeyRevocation`]): its certificates
    /// issued at or before the revocation stop being accepted (tokens it signs are refused
    /// `open_token_uncertified`). Answered `ok` once durable; `not_found` for a key the org
    /// never certified.
    RevokeWebKey(WebKeyRevocation),
    /// Agent or master: the customers blocked for `org` ([`Response::Blocks`]).
    ListBlocks {
        /// The org.
        org: String,
    },
    /// The org's master: re-certifies an agent name for a new key (the agent lost the old
    /// one). The relay binds the name to the certificate's card only if the certificate is the
    /// master's under the org's current policy and the name's current key is this org's
    /// certified agent; the old key then no longer acts for the name. Answered `ok`.
    RebindAgent(AgentCertificate),
    /// A member: one ciphertext chunk of an attachment (PROTOCOL.md §9.8), stored under its
    /// id in the conversation. Chunks go in order from 0; a chunk the relay already holds is
    /// not stored again, so an interrupted upload resumes by sending chunk 0 again and going
    /// on from the [`Response::AttachmentProgress`] it answers. Refused `too_large` past the
    /// relay's size limit and `quota_exceeded` past a stored-bytes quota.
    AttachmentPut {
        /// The conversation the attachment belongs to.
        conversation: ConversationId,
        /// The attachment's id (random, chosen by the uploader).
        attachment: AttachmentId,
        /// The plaintext size of the whole attachment (fixes the chunk count and lengths).
        size: u64,
        /// The chunk's position.
        index: u64,
        /// The chunk's ciphertext.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// A member: one ciphertext chunk of an attachment ([`Response::AttachmentChunk`]).
    AttachmentGet {
        /// The conversation the attachment belongs to.
        conversation: ConversationId,
        /// The attachment's id.
        attachment: AttachmentId,
        /// The chunk's position.
        index: u64,
    },
    /// Any registered account: from now on, this session (this connection only, not the
    /// account's other ones) is told when the audit log grows ([`Push::AuditGrew`]), so a reader
    /// of the log (the agent console) reads the new entries at once instead of polling. Answered
    /// `ok`. A client that never asks never receives the push (PROTOCOL.md §13.5).
    WatchAudit,
    /// Any registered account: from now on, this session (this connection only) is told when
    /// the org's master re-certifies, for a new key, the agent of one of this account's
    /// conversations ([`Push::AgentKeyChanged`]), so a customer's chat re-checks the agent at
    /// once instead of at its next periodic check. Answered `ok`. A client that never asks never
    /// receives the push (PROTOCOL.md §13.5).
    WatchAgentKeys,
    /// A registered customer: stores the recovery record of its own account (PROTOCOL.md
    /// §3.6), replacing the one before, so that only the new code fetches it from now on.
    /// Refused `forbidden` for a record of another card and for any role but a customer,
    /// `bad_field` for a malformed record. Answered `ok` once the record is durable.
    PutRecovery(RecoveryRecord),
    /// Any session, registered or not (a recovering client has no registered keys yet): the
    /// recovery record of `name`, for the proof of its current code
    /// ([`Response::Recovery`]). Refused `not_found` when `name` has no record and
    /// `forbidden` when the proof is not the current code's (an empty proof asks only whether
    /// a record exists: a client holding an `init` code learns whether it was replaced).
    GetRecovery {
        /// The account's name.
        name: String,
        /// The code's proof ([`crate::recovery_record::RecoveryProof`]).
        #[serde(with = "serde_bytes")]
        proof: Vec<u8>,
    },
}

/// A run of sequence numbers a history page skips because the caller may not read them
/// (PROTOCOL.md §13.10): items of an epoch the caller is no reader of (`epoch`: its epoch
/// records, messages and the hand-offs made during it), or items of no epoch (`epoch` absent:
/// consents and release notices, which only the customer reads). Adjacent items of the same
/// kind share one run.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SkippedRange {
    /// First skipped sequence number.
    pub from: u64,
    /// Last skipped sequence number (inclusive).
    pub to: u64,
    /// The epoch the skipped items belong to; absent for conversation-level items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u32>,
}

/// A stored conversation item with its relay-assigned sequence number.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Sequenced {
    /// The conversation.
    pub conversation: ConversationId,
    /// The relay's sequence number (from 1, per conversation).
    pub seq: u64,
    /// When the relay stored it.
    pub stored_at: u64,
    /// The item.
    pub item: Item,
}

/// What a conversation holds.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Item {
    /// An epoch record.
    Epoch(EpochRecord),
    /// A message.
    Message(Envelope),
    /// A history hand-off.
    HandOff(HandOff),
    /// A consent token the customer handed to the org's master.
    Consent(ConsentToken),
    /// A release notice: the audit entry and its index in the log.
    Notice {
        /// The entry.
        entry: AuditEntry,
        /// Its leaf index.
        index: u64,
    },
}

/// A conversation in a listing.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ConversationInfo {
    /// The id.
    pub conversation: ConversationId,
    /// The org.
    pub org: String,
    /// The customer's name.
    pub customer: String,
    /// The currently assigned agent's name.
    pub agent: String,
    /// The highest sequence number.
    pub last_seq: u64,
    /// The highest sequence number delivered to the asking account.
    pub delivered: u64,
    /// Created.
    pub created_at: u64,
}

/// One conversation of an org as its master sees it ([`Request::OrgConversations`]):
/// metadata only, never a message.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct OrgConversation {
    /// The id.
    pub conversation: ConversationId,
    /// The customer's name.
    pub customer: String,
    /// The currently assigned agent's name.
    pub agent: String,
    /// Created (relay time).
    pub created_at: u64,
    /// Last activity as the relay recorded it (it may lag behind the newest message).
    pub last_activity: u64,
    /// The highest durable sequence number.
    pub last_seq: u64,
    /// The consent tokens the customer shared with the org's master in this conversation
    /// (each signed by the customer; the client checks them).
    pub consents: Vec<ConsentToken>,
    /// The ids of the dispute tickets opened on this conversation.
    pub tickets: Vec<crate::ids::TokenId>,
    /// Whether one of them is still open (a legal hold: erasure is refused).
    pub legal_hold: bool,
}

/// A release request's progress, for the master.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ReleaseProgress {
    /// Shares received so far.
    pub shares: Vec<ReleasedShare>,
    /// Refusals `(trustee name, reason)`.
    pub refusals: Vec<(String, String)>,
}

/// A ticket with the decisions collected so far.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TicketState {
    /// The ticket.
    pub ticket: DisputeTicket,
    /// Decisions.
    pub decisions: Vec<ArbiterDecision>,
    /// Set once the ticket is closed (absent from relays that had no lifecycle: open until it
    /// expires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<TicketClosed>,
}

/// How and when a dispute ticket was closed.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TicketClosed {
    /// When (relay time).
    pub at: u64,
    /// Why.
    pub because: ClosedBecause,
    /// The master's signed closing, when the master closed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<DisputeClose>,
    /// The audit-log index of the close entry.
    pub index: u64,
}

/// The relay's answers.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Done.
    Ok,
    /// Refused or failed.
    Error {
        /// Machine-readable code.
        code: ErrorCode,
        /// Human-readable explanation (no secrets).
        message: String,
        /// For a refusal that frees up with time (`rate_limited`, `quota_exceeded`): the
        /// seconds to wait before trying again. Absent on the wire when the relay names no
        /// wait, so an error without one encodes as it always did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
    /// A card.
    Card(IdentityCard),
    /// A policy.
    Policy(OrgPolicy),
    /// A certificate.
    Certificate(AgentCertificate),
    /// A conversation was opened and assigned.
    Opened {
        /// The assigned agent's card.
        agent: IdentityCard,
        /// Its certificate.
        certificate: AgentCertificate,
        /// The org's policy.
        policy: OrgPolicy,
        /// A warning ahead of the open-conversations quota: sent once this open brings the
        /// customer's open conversations with the org to 80% of the relay's most or more.
        /// Absent on the wire otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quota: Option<OpenQuota>,
    },
    /// Conversations.
    Conversations(Vec<ConversationInfo>),
    /// The org's conversations, for its master.
    OrgConversations(Vec<OrgConversation>),
    /// The item was stored durably with this sequence number.
    Stored {
        /// The sequence number.
        seq: u64,
        /// A warning ahead of a stored-bytes quota: sent once a stored message brings its
        /// sender's (or its conversation's org's) stored bytes to 80% of the relay's most.
        /// Absent on the wire otherwise, and from relays older than this field; clients older
        /// than it ignore it (PROTOCOL.md §13.12).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quota: Option<ByteQuota>,
    },
    /// A page of items; `more` if the limit cut it. Together, `items` and `skipped` cover
    /// every sequence number from the request's `after + 1` to the page's last one without a
    /// gap (PROTOCOL.md §13.10).
    Items {
        /// The items.
        items: Vec<Sequenced>,
        /// Whether more follow.
        more: bool,
        /// The runs of sequence numbers inside the page that the caller may not read, in
        /// order. Absent on the wire when none (and from relays older than this field).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        skipped: Vec<SkippedRange>,
        /// The conversation's newest durable sequence number when the page was read: with
        /// `more = false` the page (items and skipped runs) reaches it. Absent from relays
        /// older than this field.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        head: Option<u64>,
    },
    /// Release requests pending for a trustee, with the epoch records they need.
    Releases(Vec<PendingRelease>),
    /// A release's progress.
    Progress(ReleaseProgress),
    /// Tickets.
    Tickets(Vec<TicketState>),
    /// An audit entry was appended at this index, with the new tree head.
    Appended {
        /// Leaf index.
        index: u64,
        /// Tree head including it.
        head: SignedTreeHead,
    },
    /// A tree head.
    TreeHead(SignedTreeHead),
    /// Entries from an index: the slots `from..from + entries.len() + withheld.len()`, each
    /// either an entry the caller may read (in `entries`, in index order) or withheld (its
    /// index and leaf hash in `withheld`). Absent on the wire when nothing is withheld.
    Entries {
        /// Index of the first.
        from: u64,
        /// The entries the caller may read, in index order.
        entries: Vec<AuditEntry>,
        /// The entries of the range the caller may not read, in index order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        withheld: Vec<WithheldEntry>,
    },
    /// An inclusion proof.
    Inclusion(InclusionProof),
    /// A consistency proof.
    Consistency(ConsistencyProof),
    /// A tree head with the witnesses' cosignatures.
    WitnessedHead(WitnessedHead),
    /// The blocks in force for an org ([`Request::ListBlocks`]).
    Blocks(Vec<BlockEntry>),
    /// A recovery record ([`Request::GetRecovery`]).
    Recovery(RecoveryRecord),
    /// How much of an attachment the relay holds (the answer to
    /// [`Request::AttachmentPut`]).
    AttachmentProgress {
        /// Chunks stored, from 0: the next chunk to send (all of them once complete).
        stored: u64,
        /// Chunks the attachment has.
        chunks: u64,
        /// A warning ahead of a stored-bytes quota: sent once the uploader's (or its
        /// conversation's org's) stored bytes reach 80% of the relay's most. Absent on the
        /// wire otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quota: Option<ByteQuota>,
    },
    /// One ciphertext chunk of an attachment (the answer to [`Request::AttachmentGet`]).
    AttachmentChunk {
        /// The plaintext size of the whole attachment, as its uploader declared it.
        size: u64,
        /// The chunk's position.
        index: u64,
        /// The chunk's ciphertext.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
}

/// How much of a stored-bytes quota is used (in [`Response::AttachmentProgress`] and
/// [`Response::Stored`], as a warning ahead of `quota_exceeded`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ByteQuota {
    /// Whose quota: the uploading (or sending) account's, or its conversation's org's.
    pub scope: QuotaScope,
    /// Bytes stored under the quota, this upload (or message) included.
    pub used: u64,
    /// The most the relay allows.
    pub most: u64,
}

/// Whose stored bytes a [`ByteQuota`] counts.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaScope {
    /// The uploading account's.
    Account,
    /// The org of the conversation.
    Org,
}

/// A block in force, as listed to the org's agents and master.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BlockEntry {
    /// The signed block.
    pub block: Block,
    /// The blocked customer's account name.
    pub customer: String,
    /// When the relay stored it (relay time).
    pub at: u64,
}

/// How much of the open-conversations quota a customer uses with one org (in
/// [`Response::Opened`], as a warning ahead of `quota_exceeded`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct OpenQuota {
    /// The customer's open conversations with the org, this one included.
    pub open: u32,
    /// The most the relay allows; one more open is refused with `quota_exceeded`.
    pub most: u32,
}

/// A release request with what a trustee needs to decide it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PendingRelease {
    /// The request.
    pub request: ReleaseRequest,
    /// The conversation's epoch records for the requested epochs.
    pub epochs: Vec<EpochRecord>,
}

/// Error codes in [`Response::Error`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed or fails a check.
    BadRequest,
    /// Not allowed for this account.
    Forbidden,
    /// No such object.
    NotFound,
    /// Conflicts with something stored. Sent by earlier relays for every conflict; this relay
    /// sends one of the specific codes below instead, and a client treats an unknown conflict
    /// like this one.
    Conflict,
    /// The account must register first.
    NotRegistered,
    /// Refused while a dispute is open (legal hold).
    LegalHold,
    /// Too large.
    TooLarge,
    /// Slow down.
    RateLimited,
    /// The relay failed; try again.
    Internal,
    /// A message's counter is not above the sender's highest stored counter in its epoch:
    /// never resend it; seal the message again in a new epoch.
    CounterReused,
    /// The request names an epoch that is not the conversation's current one (a message), or
    /// not the next one (an epoch record): read the history and follow the newest epoch.
    StaleEpoch,
    /// The current epoch holds the policy's `rotate_after_messages` messages: open the next
    /// epoch, then send the message in it.
    EpochFull,
    /// The account name is registered on this relay with another key: pick another name.
    NameTaken,
    /// The signing key is registered with another card (another name, role or agreement key).
    KeyRegistered,
    /// A client-chosen id (conversation, release request, dispute ticket) is in use: pick a
    /// fresh random id.
    IdTaken,
    /// A policy's version is not above the org's current version.
    StalePolicy,
    /// This account already answered this release request, or decided on this ticket: the
    /// first answer stands (a resent answer can treat this as done).
    AlreadyAnswered,
    /// The frame decoded, but a field of the request has the wrong type or an invalid value.
    /// The message starts with the field's path (`body.<request>.<field>`), then `: ` and why.
    BadField,
    /// A quota of the relay is used up (open conversations with one org, stored bytes): the
    /// message says which; it frees up as conversations close or are erased.
    QuotaExceeded,
    /// The dispute ticket is closed: nothing more happens under it (no decision, no release).
    TicketClosed,
    /// The org blocked this customer's key (as spam or abuse): it may not open a conversation
    /// with the org or send in one. Nothing to retry; only the org's master lifts a block.
    Blocked,
    /// The org requires an open token from its web site to open a conversation, and none was
    /// given: get one from the business's page (the widget does) and open with it.
    OpenTokenRequired,
    /// The open token expired (or is not valid yet): get a fresh one.
    OpenTokenExpired,
    /// The open token's signature does not verify: it was altered or forged.
    OpenTokenForged,
    /// The open token is for another org.
    OpenTokenWrongOrg,
    /// The open token was issued to another customer key.
    OpenTokenWrongCustomer,
    /// The open token's web key is not certified by the org's master (or its certificate
    /// expired or was replaced).
    OpenTokenUncertified,
    /// The open token's visitor id is empty or longer than 64 bytes.
    OpenTokenBadVisitor,
    /// The open token's web key was revoked by the org's master (PROTOCOL.md §13.14): the
    /// business's web site must sign with its new key. Older clients decode it as
    /// [`ErrorCode::Unknown`].
    OpenTokenRevoked,
    /// A code this build does not know (sent by a newer relay): decoded from any unknown text,
    /// never sent. A client treats it as [`ErrorCode::BadRequest`].
    #[serde(other)]
    Unknown,
}

impl From<OpenTokenRefusal> for ErrorCode {
    fn from(r: OpenTokenRefusal) -> Self {
        match r {
            OpenTokenRefusal::Missing => ErrorCode::OpenTokenRequired,
            OpenTokenRefusal::Expired => ErrorCode::OpenTokenExpired,
            OpenTokenRefusal::Forged => ErrorCode::OpenTokenForged,
            OpenTokenRefusal::WrongOrg => ErrorCode::OpenTokenWrongOrg,
            OpenTokenRefusal::WrongCustomer => ErrorCode::OpenTokenWrongCustomer,
            OpenTokenRefusal::Uncertified => ErrorCode::OpenTokenUncertified,
            OpenTokenRefusal::BadVisitor => ErrorCode::OpenTokenBadVisitor,
        }
    }
}

impl Response {
    /// A [`Response::Stored`] with no quota warning.
    pub fn stored(seq: u64) -> Self {
        Self::Stored { seq, quota: None }
    }

    /// A [`Response::Error`] naming no wait.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A [`Response::Error`] asking the client to wait `secs` seconds before trying again.
    pub fn error_retry_after(code: ErrorCode, message: impl Into<String>, secs: u64) -> Self {
        Self::Error {
            code,
            message: message.into(),
            retry_after: Some(secs),
        }
    }

    /// The wait a [`Response::Error`] asks for, if it names one.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Error {
                retry_after: Some(secs),
                ..
            } => Some(std::time::Duration::from_secs(*secs)),
            _ => None,
        }
    }
}

/// Something new, pushed by the relay.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Push {
    /// A new conversation item.
    Item(Sequenced),
    /// A conversation was assigned to this agent.
    Assigned {
        /// The conversation.
        conversation: ConversationId,
        /// The customer's card.
        customer: IdentityCard,
    },
    /// Another member received items up to `seq`.
    Delivered {
        /// The conversation.
        conversation: ConversationId,
        /// The member's name.
        member: String,
        /// Up to.
        seq: u64,
    },
    /// A release request for this trustee.
    Release(PendingRelease),
    /// Released shares or a refusal arrived for the master.
    ReleaseUpdate {
        /// The request id.
        request: crate::ids::TokenId,
    },
    /// A ticket or decision for arbiters/master.
    Ticket(TicketState),
    /// Another member's ephemeral signal (typing), forwarded as sent and never stored.
    Signal(SignalEnvelope),
    /// The audit log grew to `size` entries (sent only to sessions that asked with
    /// [`Request::WatchAudit`]). A hint, not a proof: the reader fetches the signed tree head and
    /// the new entries and checks them as always.
    AuditGrew {
        /// The log's size after the append.
        size: u64,
    },
    /// The org's master re-certified agent `agent` of `org` for a new key (sent only to the
    /// customers of its conversations, on sessions that asked with
    /// [`Request::WatchAgentKeys`]). A hint, not a proof: the client fetches the agent's
    /// certificate and verifies it under the org's policy, as its periodic check does, and
    /// never pins `card` from the push itself.
    AgentKeyChanged {
        /// The agent's org.
        org: String,
        /// The agent's name.
        agent: String,
        /// The card the name is bound to now, as the relay says.
        card: IdentityCard,
        /// This customer's conversations with the agent (at most
        /// [`MAX_KEY_PUSH_CONVERSATIONS`]).
        conversations: Vec<ConversationId>,
    },
    /// A stored-bytes quota this account is concerned by reached 80% of the relay's most
    /// (PROTOCOL.md §13.12): its own (`org` absent), or that of an org it is the master or an
    /// agent of. Sent to the account's sessions when a message or upload (anyone's, a read
    /// receipt included) first brings it there, and again at each sign-in while it stays
    /// there. A client that does not know the push skips it.
    QuotaWarning {
        /// The org whose conversations' quota it is; `None` for the account's own.
        org: Option<String>,
        /// Whose quota (account or org), bytes used and the most allowed.
        quota: ByteQuota,
    },
}

/// Most conversations one [`Push::AgentKeyChanged`] names (a customer with more re-checks the
/// agent once anyway: the key is the name's, not the conversation's).
pub const MAX_KEY_PUSH_CONVERSATIONS: usize = 256;

/// Encodes a frame: version byte then CBOR.
///
/// # Errors
/// [`Error::Encode`] (should not happen) or [`Error::TooLarge`] past [`MAX_FRAME`].
pub fn encode(frame: &Frame) -> Result<Vec<u8>> {
    let mut out = vec![WIRE_VERSION];
    ciborium::into_writer(frame, &mut out).map_err(|_| Error::Encode("frame"))?;
    if out.len() > MAX_FRAME {
        return Err(Error::TooLarge {
            what: "frame",
            size: out.len(),
            limit: MAX_FRAME,
        });
    }
    Ok(out)
}

/// Decodes a frame. Never panics; names an unknown version; rejects trailing bytes.
///
/// # Errors
/// [`Error::TooLarge`], [`Error::UnknownVersion`] or [`Error::Decode`].
pub fn decode(bytes: &[u8]) -> Result<Frame> {
    if bytes.len() > MAX_FRAME {
        return Err(Error::TooLarge {
            what: "frame",
            size: bytes.len(),
            limit: MAX_FRAME,
        });
    }
    let (&version, mut rest) = bytes.split_first().ok_or_else(|| Error::Decode {
        what: "frame",
        reason: "empty".into(),
    })?;
    if version != WIRE_VERSION {
        return Err(Error::UnknownVersion(version));
    }
    let frame: Frame = ciborium::from_reader(&mut rest).map_err(|e| Error::Decode {
        what: "frame",
        reason: match e {
            ciborium::de::Error::Io(_) => "truncated".into(),
            ciborium::de::Error::Syntax(off) => format!("invalid CBOR at offset {off}"),
            ciborium::de::Error::Semantic(_, m) => m.chars().take(120).collect(),
            ciborium::de::Error::RecursionLimitExceeded => "nested too deeply".into(),
        },
    })?;
    if !rest.is_empty() {
        return Err(Error::Decode {
            what: "frame",
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(frame)
}

/// A frame as the relay reads it: either a whole frame, or a request envelope whose `id`
/// decodes but whose `body` does not (answered with [`ErrorCode::BadField`], not a close).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Inbound {
    /// A frame that decodes.
    Frame(Frame),
    /// A request whose body has a bad field.
    BadField(BadField),
}

/// A request envelope with a field that does not decode (see [`decode_inbound`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BadField {
    /// The request id, to answer.
    pub id: u64,
    /// The path of the field: `body`, `body.<request>` or `body.<request>.<field>`.
    pub field: String,
    /// Why it does not decode, in serde's words (at most 200 characters).
    pub reason: String,
}

impl BadField {
    /// The error message sent to the client: `<field>: <reason>`.
    pub fn message(&self) -> String {
        format!("{}: {}", self.field, self.reason)
    }
}

/// Most fields of one request body searched for the bad one (a body with more keys names only
/// the request): the search decodes one prefix per key, so it must stay small.
const MAX_FIELDS_SEARCHED: usize = 32;

/// Largest frame (in bytes) whose body is searched for the bad field. The search decodes (and
/// copies) one prefix of the body per key, so a larger frame is answered naming only its
/// request (`body.<request>`), at the cost of the one decode that already failed: a client
/// cannot make the relay spend more than a few small decodes per frame on bad fields.
pub const MAX_FRAME_SEARCHED: usize = 2048;

/// Decodes a frame like [`decode`], but tells a *request with a bad field* from a frame that
/// does not decode at all: a frame that is valid CBOR of the shape
/// `{ "request": { "id": u64, "body": any } }` whose body does not decode as a [`Request`]
/// comes back as [`Inbound::BadField`], naming the request id and the first bad field.
///
/// Well-formed frames take the same path as [`decode`]; only frames that fail it are looked at
/// again.
///
/// # Errors
/// As [`decode`], for everything that is not a request envelope with a readable id.
pub fn decode_inbound(bytes: &[u8]) -> Result<Inbound> {
    let err = match decode(bytes) {
        Ok(frame) => return Ok(Inbound::Frame(frame)),
        Err(e @ Error::Decode { .. }) => e,
        Err(e) => return Err(e),
    };
    // `decode` checked the size, the version byte and that the frame is not empty.
    let mut rest = bytes.get(1..).unwrap_or_default();
    let Ok(value) = ciborium::from_reader::<ciborium::Value, _>(&mut rest) else {
        return Err(err);
    };
    if !rest.is_empty() {
        return Err(err);
    }
    let Some((id, body)) = request_envelope(&value) else {
        return Err(err);
    };
    let (field, reason) = if bytes.len() <= MAX_FRAME_SEARCHED {
        find_bad_field(body)
    } else {
        let reason = match err {
            Error::Decode { reason, .. } => reason,
            _ => "does not decode".into(),
        };
        (request_path(body, &reason), reason)
    };
    Ok(Inbound::BadField(BadField { id, field, reason }))
}

/// The path naming a bad body's request (`body.<request>`), without searching its fields:
/// `body` if it is not a one-key map or names no known request.
fn request_path(body: &ciborium::Value, reason: &str) -> String {
    match body.as_map().map(Vec::as_slice) {
        Some([(variant, _)]) if !reason.starts_with("unknown variant") => match variant.as_text() {
            Some(name) => format!("body.{}", name.chars().take(64).collect::<String>()),
            None => "body".into(),
        },
        _ => "body".into(),
    }
}

/// The `id` and `body` of `{ "request": { "id": u64, "body": any } }`, if `value` is that.
fn request_envelope(value: &ciborium::Value) -> Option<(u64, &ciborium::Value)> {
    let [(key, inner)] = value.as_map()?.as_slice() else {
        return None;
    };
    if key.as_text()? != "request" {
        return None;
    }
    let fields = inner.as_map()?;
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k.as_text() == Some(name))
            .map(|(_, v)| v)
    };
    let id = u64::try_from(get("id")?.as_integer()?).ok()?;
    Some((id, get("body")?))
}

/// Names the first field of `body` (in the order sent) that does not decode, and why.
///
/// serde decodes a struct's fields in the order they arrive and stops at the first bad one,
/// reporting a missing field only at the end; so the bad field is the last key of the shortest
/// prefix of the body's map that fails with anything but "missing field".
fn find_bad_field(body: &ciborium::Value) -> (String, String) {
    use ciborium::Value;
    let why = |v: &Value| match v.deserialized::<Request>() {
        Ok(_) => None,
        Err(ciborium::value::Error::Custom(m)) => Some(m.chars().take(200).collect::<String>()),
    };
    let whole = why(body).unwrap_or_else(|| "does not decode".into());
    let Some([(variant, content)]) = body.as_map().map(Vec::as_slice) else {
        return ("body".into(), whole);
    };
    let Some(name) = variant.as_text() else {
        return ("body".into(), whole);
    };
    let path = format!("body.{}", name.chars().take(64).collect::<String>());
    let Some(entries) = content.as_map() else {
        return (path, whole);
    };
    let with = |entries: &[(Value, Value)]| {
        Value::Map(vec![(variant.clone(), Value::Map(entries.to_vec()))])
    };
    // An unknown request name fails whatever its content, even with no fields.
    if let Some(reason) = why(&with(&[])).filter(|r| !r.starts_with("missing field")) {
        let field = if reason.starts_with("unknown variant") {
            "body".into()
        } else {
            path
        };
        return (field, reason);
    }
    if entries.len() <= MAX_FIELDS_SEARCHED {
        for end in 1..=entries.len() {
            let prefix = entries.get(..end).unwrap_or_default();
            if let Some(reason) = why(&with(prefix)).filter(|r| !r.starts_with("missing field")) {
                let key: String = match prefix.last().map(|(k, _)| k.as_text()) {
                    Some(Some(k)) => k.chars().take(64).collect(),
                    _ => "?".into(),
                };
                return (format!("{path}.{key}"), reason);
            }
        }
    }
    (path, whole)
}

/// Encodes any serde value as CBOR (for stored objects), with no version byte.
///
/// # Errors
/// [`Error::Encode`].
pub fn to_cbor<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|_| Error::Encode("CBOR value"))?;
    Ok(out)
}

/// Decodes a CBOR value written by [`to_cbor`], rejecting trailing bytes.
///
/// # Errors
/// [`Error::Decode`].
pub fn from_cbor<T: serde::de::DeserializeOwned>(
    mut bytes: &[u8],
    what: &'static str,
) -> Result<T> {
    let v = ciborium::from_reader(&mut bytes).map_err(|_| Error::Decode {
        what,
        reason: "invalid CBOR".into(),
    })?;
    if !bytes.is_empty() {
        return Err(Error::Decode {
            what,
            reason: "trailing bytes".into(),
        });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// A `get_certificate` request whose `agent` (the last field) is the integer 5, not a text
    /// string, with an `org` of `org_len` characters.
    fn bad_agent(org_len: usize) -> Vec<u8> {
        let frame = Frame::Request {
            id: 7,
            body: Request::GetCertificate {
                org: "a".repeat(org_len),
                agent: "bobby".into(),
            },
        };
        let mut b = encode(&frame).unwrap();
        assert!(b.ends_with(b"\x65bobby"));
        b.truncate(b.len() - 6);
        b.push(0x05);
        b
    }

    fn bad_field(bytes: &[u8]) -> BadField {
        match decode_inbound(bytes) {
            Ok(Inbound::BadField(bad)) => bad,
            other => panic!("expected a bad field, got {other:?}"),
        }
    }

    #[test]
    fn an_unknown_error_code_decodes_as_unknown_and_the_response_still_reads() {
        // A newer relay's code: the response decodes, the code is `Unknown`.
        let newer = Frame::Response {
            id: 9,
            body: Response::error(ErrorCode::BadRequest, "m"),
        };
        let mut b = encode(&newer).unwrap();
        let at = b
            .windows(11)
            .position(|w| w == b"bad_request")
            .expect("the code is in the frame");
        b[at..at + 11].copy_from_slice(b"quota_spent");
        match decode(&b).unwrap() {
            Frame::Response {
                id: 9,
                body: Response::Error { code, message, .. },
            } => {
                assert_eq!(code, ErrorCode::Unknown);
                assert_eq!(message, "m");
            }
            other => panic!("expected the error response, got {other:?}"),
        }
        // Known codes still decode as themselves.
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::BadField,
            ErrorCode::Conflict,
        ] {
            let b = to_cbor(&code).unwrap();
            assert_eq!(from_cbor::<ErrorCode>(&b, "code").unwrap(), code);
        }
    }

    #[test]
    fn retry_after_is_a_field_absent_when_unset() {
        // Without a wait the error encodes exactly as before the field existed.
        #[derive(Serialize)]
        #[serde(rename_all = "snake_case")]
        enum Before {
            Error { code: ErrorCode, message: String },
        }
        let plain = Response::error(ErrorCode::RateLimited, "slow down");
        let before = Before::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
        };
        assert_eq!(to_cbor(&plain).unwrap(), to_cbor(&before).unwrap());
        assert_eq!(plain.retry_after(), None);
        // With one it travels as `retry_after` and reads back; the message is left alone.
        let timed = Response::error_retry_after(ErrorCode::RateLimited, "slow down", 42);
        let b = encode(&Frame::Response { id: 3, body: timed }).unwrap();
        assert!(b.windows(11).any(|w| w == b"retry_after"));
        match decode(&b).unwrap() {
            Frame::Response { id: 3, body } => {
                assert_eq!(body.retry_after(), Some(std::time::Duration::from_secs(42)));
                assert!(
                    matches!(body, Response::Error { ref message, .. } if message == "slow down")
                );
            }
            other => panic!("expected the error response, got {other:?}"),
        }
        // A relay that sends no wait still decodes (the field defaults to none).
        let old = encode(&Frame::Response { id: 4, body: plain }).unwrap();
        match decode(&old).unwrap() {
            Frame::Response { body, .. } => assert_eq!(body.retry_after(), None),
            other => panic!("expected the error response, got {other:?}"),
        }
        let b = to_cbor(&ErrorCode::QuotaExceeded).unwrap();
        assert_eq!(
            from_cbor::<ErrorCode>(&b, "code").unwrap(),
            ErrorCode::QuotaExceeded
        );
    }

    #[test]
    fn a_small_bad_body_names_its_bad_field() {
        let b = bad_agent(10);
        assert!(b.len() <= MAX_FRAME_SEARCHED);
        let bad = bad_field(&b);
        assert_eq!(bad.id, 7);
        assert_eq!(bad.field, "body.get_certificate.agent");
        assert!(bad.reason.starts_with("invalid type"), "{bad:?}");
    }

    #[test]
    fn a_large_bad_body_names_only_its_request_without_the_field_search() {
        let b = bad_agent(MAX_FRAME_SEARCHED);
        assert!(b.len() > MAX_FRAME_SEARCHED);
        let bad = bad_field(&b);
        assert_eq!(bad.id, 7);
        assert_eq!(
            bad.field, "body.get_certificate",
            "the fields are not searched"
        );
        assert!(bad.reason.starts_with("invalid type"), "{bad:?}");
        assert!(
            bad.message()
                .starts_with("body.get_certificate: invalid type")
        );

        // An unknown request name in a large frame is still named as the body.
        let frame = Frame::Request {
            id: 8,
            body: Request::GetCard {
                name: "a".repeat(MAX_FRAME_SEARCHED),
            },
        };
        let mut b = encode(&frame).unwrap();
        let at = b
            .windows(8)
            .position(|w| w == b"get_card")
            .expect("the request name is in the frame");
        b[at..at + 8].copy_from_slice(b"got_card");
        let bad = bad_field(&b);
        assert_eq!(bad.id, 8);
        assert_eq!(bad.field, "body");
        assert!(bad.reason.starts_with("unknown variant"), "{bad:?}");
    }
}
