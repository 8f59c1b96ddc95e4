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

use crate::{
    Error, Result,
    audit::{
        AuditEntry, ConsistencyProof, Cosignature, InclusionProof, SignedTreeHead, WitnessedHead,
    },
    card::IdentityCard,
    codec::Writer,
    epoch::{EpochRecord, HandOff},
    ids::ConversationId,
    keys::{IdentityKeys, Signature, SigningPublicKey},
    labels,
    message::Envelope,
    policy::{AgentCertificate, OrgPolicy},
    release::{
        ArbiterDecision, ConsentToken, DisputeTicket, ErasureRequest, ReleaseRequest, ReleasedShare,
    },
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
    /// Customer: hand a consent token to the org's master through the relay. It is stored in
    /// the conversation as [`Item::Consent`], readable by the customer and the master only.
    ShareConsent(ConsentToken),
    /// Append a signed entry to the audit log (the relay checks the signature).
    AppendAudit(AuditEntry),
    /// The latest signed tree head.
    GetTreeHead,
    /// Entries `from..from+limit`.
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
    },
    /// Conversations.
    Conversations(Vec<ConversationInfo>),
    /// The item was stored durably with this sequence number.
    Stored {
        /// The sequence number.
        seq: u64,
    },
    /// A page of items; `more` if the limit cut it.
    Items {
        /// The items.
        items: Vec<Sequenced>,
        /// Whether more follow.
        more: bool,
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
    /// Entries from an index.
    Entries {
        /// Index of the first.
        from: u64,
        /// The entries.
        entries: Vec<AuditEntry>,
    },
    /// An inclusion proof.
    Inclusion(InclusionProof),
    /// A consistency proof.
    Consistency(ConsistencyProof),
    /// A tree head with the witnesses' cosignatures.
    WitnessedHead(WitnessedHead),
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
    /// Conflicts with something stored (taken name, duplicate counter, stale epoch).
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
}

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
