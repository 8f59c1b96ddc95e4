//! The audit log's entries, signed tree heads and proof checks (RFC 9162 hashing in
//! [`crate::merkle`]). The relay stores the leaves; clients keep the last tree head they saw and
//! check inclusion and consistency, so a log that is rewritten, truncated or forked is caught.

use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    codec::Writer,
    ids::{ConversationId, EpochRange, TokenId},
    keys::{IdentityKeys, Signature, SigningPublicKey},
    labels, merkle,
    release::{ClosedBecause, Scope},
};

/// Why a party refused what the relay told it about the audit log. Each is evidence that the
/// relay lied (or that a party signed something it may not), never a transient fault.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The relay answered an append with a tree head too small to hold the entry (an older
    /// head, the entry never appended).
    #[error(
        "the relay said the entry was appended at #{index}, but the tree head it returned holds \
         only {size} entries: the entry was not logged"
    )]
    NotAppended {
        /// The index the relay claimed.
        index: u64,
        /// The size of the head it returned.
        size: u64,
    },
    /// An entry the relay served does not decode (PROTOCOL.md §12.3): an event name this
    /// version does not know (a later kind comes in the extension form, §12.1), a kind it
    /// knows in the extension form, or a bad field. The whole listing is refused.
    #[error("the relay served a malformed audit log entry at #{index}: {reason}")]
    MalformedEntry {
        /// The entry's index in the log.
        index: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The relay could not prove that an entry it said it appended is in the log.
    #[error("the relay could not prove that the entry is at #{index} of the log: {reason}")]
    NotIncluded {
        /// The index the relay claimed.
        index: u64,
        /// Why the proof failed.
        reason: String,
    },
    /// A witness was asked to cosign a head that is not an append-only extension of the last
    /// head it cosigned (a rolled-back, truncated or forked log).
    #[error(
        "refusing to cosign: the tree head offered is not an extension of the head of {old} \
         entries cosigned before ({reason})"
    )]
    NotAnExtension {
        /// Size of the head cosigned before (0 if none).
        old: u64,
        /// What failed.
        reason: String,
    },
    /// A trustee cosigned a head that the head served to this client does not extend: the
    /// relay shows different parties different logs.
    #[error(
        "split view: a trustee cosigned a log of {cosigned} entries that the log of {served} \
         entries served to you does not extend; the relay shows different histories to \
         different parties"
    )]
    SplitView {
        /// Size of the cosigned head.
        cosigned: u64,
        /// Size of the head served.
        served: u64,
    },
    /// Too few of the org's trustees cosigned the head recently enough.
    #[error(
        "the audit log head is witnessed by {have} of {org}'s trustees within the last \
         {bound_secs} s ({stale} more cosigned longer ago); {need} are needed: the relay may be \
         hiding entries, or too few of the trustees are running `sealdesk trustee serve`"
    )]
    TooFewCosignatures {
        /// The org whose trustees witness.
        org: String,
        /// Valid, fresh cosignatures on a head the served head extends.
        have: usize,
        /// Cosignatures valid but older than the freshness bound.
        stale: usize,
        /// How many are needed (`n_e − t_e + 1`).
        need: usize,
        /// The freshness bound.
        bound_secs: u64,
    },
    /// An entry is signed by a key that may not make entries of its kind.
    #[error("{kind} entry signed by a key that may not make it (allowed: {allowed})")]
    WrongSigner {
        /// The entry's kind.
        kind: &'static str,
        /// Who may sign it.
        allowed: &'static str,
    },
    /// The relay erased a conversation "for retention" that, as far as this reader knows,
    /// had not been idle for the policy's retention period.
    #[error(
        "erasure for retention is implausible: the conversation had been idle for {idle_secs} s \
         when it was erased, less than the policy's retention of {retention_secs} s"
    )]
    ImplausibleRetention {
        /// How long the conversation had been idle when the entry was made.
        idle_secs: u64,
        /// The policy's retention period.
        retention_secs: u64,
    },
    /// A customer's erasure statement shown again (the same entry twice in the log, or a
    /// statement older than its conversation).
    #[error("replayed erasure entry: {why}")]
    ReplayedErasure {
        /// Why it is taken for a replay.
        why: &'static str,
    },
}

/// What a release was justified by, as recorded in the log.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseBasis {
    /// A consent token.
    Consent {
        /// Its id.
        id: TokenId,
        /// Its scope.
        scope: Scope,
        /// When the customer signed it.
        issued_at: u64,
    },
    /// A dispute ticket.
    Dispute {
        /// Its id.
        id: TokenId,
        /// The arbiters whose approvals counted.
        approvers: Vec<SigningPublicKey>,
    },
}

/// What happened.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEvent {
    /// A trustee released its share for a request.
    Release {
        /// The org.
        org: String,
        /// The request hash.
        #[serde(with = "serde_bytes")]
        request_hash: [u8; 32],
        /// The conversation.
        conversation: ConversationId,
        /// The epochs released.
        epochs: EpochRange,
        /// The justification.
        basis: ReleaseBasis,
        /// The master who asked.
        master: SigningPublicKey,
    },
    /// A conversation's ciphertext and escrow were deleted.
    Erasure {
        /// The conversation.
        conversation: ConversationId,
        /// "retention" or "customer request".
        reason: String,
    },
    /// A customer revoked a consent.
    ConsentRevocation {
        /// The conversation.
        conversation: ConversationId,
        /// The consent.
        consent: TokenId,
    },
    /// An org published a new policy version.
    PolicyChange {
        /// The org.
        org: String,
        /// The version.
        version: u32,
        /// The policy hash.
        #[serde(with = "serde_bytes")]
        policy_hash: [u8; 32],
    },
    /// A dispute ticket was closed: no release follows under it and the legal hold on its
    /// conversation ended. Signed by the relay's log key: the relay closes a ticket on the
    /// master's signed [`crate::release::DisputeClose`], or on its own when the ticket was
    /// released and collected or rejected by enough arbiters.
    DisputeClosed {
        /// The org.
        org: String,
        /// The ticket's conversation.
        conversation: ConversationId,
        /// The ticket.
        ticket: TokenId,
        /// Why.
        because: ClosedBecause,
    },
    /// An event of a kind this version does not define (PROTOCOL.md §12.1 "Kinds a later
    /// version adds"): a later writer's, served as its code and the rest of its canonical
    /// layout, so that this reader still computes the entry's signed bytes and leaf from the
    /// bytes as served. A reader passes over it, counts it and says so; it never reads it as
    /// one of the kinds above.
    Extension(ExtensionEvent),
}

/// The lowest event code a later version may add (codes `1..=5` are §12.1's kinds).
pub const FIRST_EXTENSION_CODE: u8 = 6;

/// An event of a kind this version does not define: `u8(code) ‖ body` is its canonical layout
/// (§12.1), `body` taken as served. Decoding refuses a code this version defines (or 0): an
/// entry of a known kind served in this form could otherwise be passed over unread with the
/// same leaf, a release hidden as "a kind this version cannot read".
///
/// CBOR: `{ "extension": { code: uint, body: bstr } }`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(try_from = "RawExtension")]
pub struct ExtensionEvent {
    code: u8,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
}

impl ExtensionEvent {
    /// An event of code `code` (at least [`FIRST_EXTENSION_CODE`]) whose canonical layout
    /// after the code is `body`.
    ///
    /// # Errors
    /// [`Error::Decode`] for a code this version defines or 0.
    pub fn new(code: u8, body: Vec<u8>) -> Result<Self> {
        if code < FIRST_EXTENSION_CODE {
            return Err(Error::Decode {
                what: "audit event",
                reason: format!(
                    "an event of code {code} served as a kind this version cannot read: codes \
                     1 to 5 are kinds it reads, and 0 is none"
                ),
            });
        }
        Ok(Self { code, body })
    }

    /// The event's code.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The rest of its canonical layout, as served.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// [`ExtensionEvent`] as it comes off the wire, before its code is checked.
#[derive(Deserialize)]
struct RawExtension {
    code: u8,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
}

impl TryFrom<RawExtension> for ExtensionEvent {
    type Error = Error;

    fn try_from(r: RawExtension) -> Result<Self> {
        Self::new(r.code, r.body)
    }
}

impl AuditEvent {
    fn write(&self, w: &mut Writer) {
        match self {
            AuditEvent::Release {
                org,
                request_hash,
                conversation,
                epochs,
                basis,
                master,
            } => {
                w.u8(1)
                    .str(org)
                    .fixed(request_hash)
                    .fixed(conversation.as_bytes());
                epochs.write(w);
                match basis {
                    ReleaseBasis::Consent {
                        id,
                        scope,
                        issued_at,
                    } => {
                        w.u8(1).fixed(id.as_bytes()).u8(match scope {
                            Scope::Full => 1,
                            Scope::Redacted => 2,
                        });
                        w.u64(*issued_at);
                    }
                    ReleaseBasis::Dispute { id, approvers } => {
                        w.u8(2).fixed(id.as_bytes()).count(approvers.len());
                        for a in approvers {
                            w.fixed(a.as_bytes());
                        }
                    }
                }
                w.fixed(master.as_bytes());
            }
            AuditEvent::Erasure {
                conversation,
                reason,
            } => {
                w.u8(2).fixed(conversation.as_bytes()).str(reason);
            }
            AuditEvent::ConsentRevocation {
                conversation,
                consent,
            } => {
                w.u8(3)
                    .fixed(conversation.as_bytes())
                    .fixed(consent.as_bytes());
            }
            AuditEvent::PolicyChange {
                org,
                version,
                policy_hash,
            } => {
                w.u8(4).str(org).u32(*version).fixed(policy_hash);
            }
            AuditEvent::DisputeClosed {
                org,
                conversation,
                ticket,
                because,
            } => {
                w.u8(5)
                    .str(org)
                    .fixed(conversation.as_bytes())
                    .fixed(ticket.as_bytes());
                because.write(w);
            }
            AuditEvent::Extension(x) => {
                w.u8(x.code).fixed(&x.body);
            }
        }
    }

    /// The conversation the event concerns, if any.
    pub fn conversation(&self) -> Option<ConversationId> {
        match self {
            AuditEvent::Release { conversation, .. }
            | AuditEvent::Erasure { conversation, .. }
            | AuditEvent::ConsentRevocation { conversation, .. }
            | AuditEvent::DisputeClosed { conversation, .. } => Some(*conversation),
            AuditEvent::PolicyChange { .. } | AuditEvent::Extension(_) => None,
        }
    }

    /// The code of an event of a kind this version cannot read, if it is one.
    pub fn unreadable_code(&self) -> Option<u8> {
        match self {
            AuditEvent::Extension(x) => Some(x.code),
            _ => None,
        }
    }
}

/// A signed log entry.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AuditEntry {
    /// What happened.
    pub event: AuditEvent,
    /// When (signer's clock).
    pub at: u64,
    /// Who signs: a trustee for releases, the customer for revocations and its own erasures,
    /// the relay's log key for retention erasures and dispute closes, the master for policy
    /// changes.
    pub signer: SigningPublicKey,
    /// The signature.
    pub signature: Signature,
}

impl AuditEntry {
    /// Signs an event.
    pub fn sign(keys: &IdentityKeys, event: AuditEvent, at: u64) -> Self {
        let mut e = AuditEntry {
            event,
            at,
            signer: keys.signing_public(),
            signature: Signature::placeholder(),
        };
        e.signature = keys.sign(&e.signed_bytes());
        e
    }

    /// The canonical bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::AUDIT_ENTRY);
        self.event.write(&mut w);
        w.u64(self.at).fixed(self.signer.as_bytes());
        w.into_bytes()
    }

    /// The Merkle leaf: signed bytes then signature.
    pub fn leaf(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(&self.signed_bytes())
            .fixed(&self.signature.to_bytes());
        w.into_bytes()
    }

    /// The RFC 9162 leaf hash.
    pub fn leaf_hash(&self) -> merkle::Hash {
        merkle::leaf_hash(&self.leaf())
    }

    /// Checks the signer's signature.
    ///
    /// # Errors
    /// [`Error::BadSignature`].
    pub fn verify(&self) -> Result<()> {
        self.signer
            .verify(&self.signed_bytes(), &self.signature, "audit entry")
    }
}

/// Who may sign which kind of entry, as far as one reader knows them (DESIGN.md §4): a release
/// a trustee of the org's policy, a consent revocation the consent's signer (the
/// conversation's customer), an erasure at the customer's request the customer and one for
/// retention the relay's log key ([`crate::erasure`]), a policy change
/// the org's master, a dispute close the relay's log key. A party the reader does not know allows nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedSigners {
    /// The trustees of the org's policy.
    pub trustees: Vec<SigningPublicKey>,
    /// The org's master.
    pub master: Option<SigningPublicKey>,
    /// The conversation's customer.
    pub customer: Option<SigningPublicKey>,
    /// The relay's log key (the erasures of its retention sweep; dispute closes).
    pub log_key: Option<SigningPublicKey>,
}

impl AuditEntry {
    /// Checks the signature and that its signer may make an entry of this kind.
    ///
    /// # Errors
    /// [`Error::BadSignature`]; [`LogError::WrongSigner`] for a signer the kind does not allow.
    pub fn check_signer(&self, allowed: &AllowedSigners) -> Result<()> {
        self.verify()?;
        let who = Some(self.signer);
        let (ok, kind, rule) = match &self.event {
            AuditEvent::Release { .. } => (
                allowed.trustees.contains(&self.signer),
                "release",
                "a trustee of the org's policy",
            ),
            AuditEvent::ConsentRevocation { .. } => (
                who == allowed.customer,
                "consent revocation",
                "the customer who signed the consent",
            ),
            // The reason decides the one signer (see [`crate::erasure`]): the relay may not
            // say "the customer erased it" under its own key.
            AuditEvent::Erasure { .. } => match crate::erasure::ErasureReason::of(self) {
                Some(crate::erasure::ErasureReason::CustomerRequest) => (
                    who == allowed.customer,
                    "erasure at the customer's request",
                    "the conversation's customer",
                ),
                Some(crate::erasure::ErasureReason::Retention) => (
                    who == allowed.log_key,
                    "erasure for retention",
                    "the relay's log key",
                ),
                None => (false, "erasure", "none: the reason is unknown"),
            },
            AuditEvent::PolicyChange { .. } => {
                (who == allowed.master, "policy change", "the org's master")
            }
            AuditEvent::DisputeClosed { .. } => (
                who == allowed.log_key,
                "dispute close",
                "the relay's log key",
            ),
            // This version does not know who may make it: nobody, as far as it can tell.
            AuditEvent::Extension(_) => (
                false,
                "unreadable",
                "none this version knows: update sealdesk",
            ),
        };
        if ok {
            Ok(())
        } else {
            Err(LogError::WrongSigner {
                kind,
                allowed: rule,
            }
            .into())
        }
    }
}

/// The relay's signed statement of the log's size and root.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SignedTreeHead {
    /// Number of entries.
    pub size: u64,
    /// Merkle root.
    #[serde(with = "serde_bytes")]
    pub root: [u8; 32],
    /// When.
    pub timestamp: u64,
    /// The relay's log key.
    pub log_key: SigningPublicKey,
    /// Signature by the log key.
    pub signature: Signature,
}

impl SignedTreeHead {
    /// Signs a tree head.
    pub fn sign(log: &IdentityKeys, size: u64, root: [u8; 32], timestamp: u64) -> Self {
        let mut h = SignedTreeHead {
            size,
            root,
            timestamp,
            log_key: log.signing_public(),
            signature: Signature::placeholder(),
        };
        h.signature = log.sign(&h.signed_bytes());
        h
    }

    /// The canonical bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::TREE_HEAD);
        w.u64(self.size)
            .fixed(&self.root)
            .u64(self.timestamp)
            .fixed(self.log_key.as_bytes());
        w.into_bytes()
    }

    /// Checks the signature against the pinned log key.
    ///
    /// # Errors
    /// [`Error::BadSignature`] if not signed by `log_key`.
    pub fn verify(&self, log_key: &SigningPublicKey) -> Result<()> {
        if &self.log_key != log_key {
            return Err(Error::BadSignature("tree head (unexpected log key)"));
        }
        log_key.verify(&self.signed_bytes(), &self.signature, "tree head")
    }
}

/// How old, in seconds, a witness cosignature may be for a client to accept the head it covers
/// (see [`WitnessedHead::fresh_cosignatures`]). A relay can keep a party on an old view of the
/// log for at most this long; trustees running `sealdesk trustee serve` cosign far more often.
pub const WITNESS_FRESHNESS_SECS: u64 = 15 * 60;

/// How far ahead of the reader's clock a cosignature's timestamp may be (clock skew).
pub const WITNESS_MAX_SKEW_SECS: u64 = 5 * 60;

/// How many of `n` trustees with release threshold `t` must cosign a head: `n − t + 1`, so that
/// every set of `t` trustees that can release shares at least one trustee with every set of
/// cosigners.
pub fn witnesses_needed(n: usize, t: usize) -> usize {
    n.saturating_sub(t).saturating_add(1)
}

/// A witness's statement: "at `timestamp` I had seen the log named by `log_key` at `size`
/// entries with `root`, and every head I cosigned before is a prefix of it". Trustees are the
/// witnesses (DESIGN.md §4 "Witnesses"); each cosigns only append-only extensions of the last
/// head it cosigned, so two parties shown different histories cannot both get a quorum.
///
/// Signed bytes (`codec::Writer`):
///
/// | field     | bytes                                   |
/// |-----------|-----------------------------------------|
/// | label     | `u16` length + `sealdesk/v1/cosignature` |
/// | log_key   | 32                                      |
/// | size      | `u64` big-endian                        |
/// | root      | 32                                      |
/// | timestamp | `u64` big-endian (witness's clock)      |
/// | witness   | 32 (the witness's signing key)          |
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Cosignature {
    /// The witness (a trustee's signing key).
    pub witness: SigningPublicKey,
    /// The log's key (the relay's).
    pub log_key: SigningPublicKey,
    /// The tree size cosigned.
    pub size: u64,
    /// The Merkle root at that size.
    #[serde(with = "serde_bytes")]
    pub root: [u8; 32],
    /// When the witness cosigned (its clock).
    pub timestamp: u64,
    /// The witness's signature.
    pub signature: Signature,
}

impl Cosignature {
    /// Cosigns `head` (whose signature and consistency the witness has checked).
    pub fn sign(witness: &IdentityKeys, head: &SignedTreeHead, timestamp: u64) -> Self {
        let mut c = Cosignature {
            witness: witness.signing_public(),
            log_key: head.log_key,
            size: head.size,
            root: head.root,
            timestamp,
            signature: Signature::placeholder(),
        };
        c.signature = witness.sign(&c.signed_bytes());
        c
    }

    /// The canonical bytes the signature covers (see the table above).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::COSIGNATURE);
        w.fixed(self.log_key.as_bytes())
            .u64(self.size)
            .fixed(&self.root)
            .u64(self.timestamp)
            .fixed(self.witness.as_bytes());
        w.into_bytes()
    }

    /// Checks the witness's signature.
    ///
    /// # Errors
    /// [`Error::BadSignature`].
    pub fn verify(&self) -> Result<()> {
        self.witness
            .verify(&self.signed_bytes(), &self.signature, "cosignature")
    }
}

/// A tree head as the relay serves it to readers: its own signed head and the latest
/// cosignature it holds from each witness (each on this head or an earlier one).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct WitnessedHead {
    /// The relay's signed head.
    pub head: SignedTreeHead,
    /// Witness cosignatures, at most one per witness.
    pub cosignatures: Vec<Cosignature>,
}

/// The outcome of [`WitnessedHead::fresh_cosignatures`].
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct CosignatureCount {
    /// Valid, fresh cosignatures of distinct witnesses on the head or an earlier size: the
    /// reader must still check that the head extends each (a consistency proof).
    pub fresh: Vec<Cosignature>,
    /// Valid cosignatures older than the freshness bound.
    pub stale: usize,
}

impl WitnessedHead {
    /// The cosignatures that count, before consistency: signed by a distinct key among
    /// `witnesses`, for the head's log key, for a size no larger than the head's, and dated
    /// within `bound` seconds before `now` (and not more than [`WITNESS_MAX_SKEW_SECS`] after).
    /// Anything else is ignored; the caller compares the count with [`witnesses_needed`].
    pub fn fresh_cosignatures(
        &self,
        witnesses: &[SigningPublicKey],
        now: u64,
        bound: u64,
    ) -> CosignatureCount {
        let mut seen = Vec::new();
        let mut out = CosignatureCount::default();
        for c in &self.cosignatures {
            if !witnesses.contains(&c.witness)
                || seen.contains(&c.witness)
                || c.log_key != self.head.log_key
                || c.size > self.head.size
                || c.verify().is_err()
            {
                continue;
            }
            seen.push(c.witness);
            if c.timestamp > now.saturating_add(WITNESS_MAX_SKEW_SECS) {
                continue;
            }
            if now.saturating_sub(c.timestamp) > bound {
                out.stale += 1;
            } else {
                out.fresh.push(c.clone());
            }
        }
        out
    }
}

/// An entry the relay keeps from a reader who may not read it (PROTOCOL.md §12 "Who reads
/// the log"): only its index and leaf hash, which reveal nothing of the entry but still count
/// toward the tree head, so the reader can tell it apart from a missing entry and prove that
/// the page it was served is the whole log.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct WithheldEntry {
    /// Leaf index.
    pub index: u64,
    /// The entry's leaf hash (RFC 9162, [`AuditEntry::leaf_hash`]).
    pub leaf: serde_bytes::ByteArray<32>,
}

impl WithheldEntry {
    /// `entry`, at `index`, withheld: its index and leaf hash.
    pub fn of(index: u64, entry: &AuditEntry) -> Self {
        Self {
            index,
            leaf: serde_bytes::ByteArray::new(entry.leaf_hash()),
        }
    }
}

/// Proof that an entry is at `index` in the tree of `size`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct InclusionProof {
    /// Leaf index.
    pub index: u64,
    /// Tree size.
    pub size: u64,
    /// Audit path.
    pub path: Vec<serde_bytes::ByteArray<32>>,
}

impl InclusionProof {
    /// Checks that `entry` is in the tree `head` describes.
    ///
    /// # Errors
    /// [`Error::Merkle`] if it is not.
    pub fn verify(&self, entry: &AuditEntry, head: &SignedTreeHead) -> Result<()> {
        if self.size != head.size {
            return Err(Error::Merkle(
                "inclusion proof is for another tree size".into(),
            ));
        }
        let path: Vec<merkle::Hash> = self.path.iter().map(|h| **h).collect();
        merkle::verify_inclusion(&entry.leaf_hash(), self.index, self.size, &path, &head.root)
            .map_err(|e| Error::Merkle(e.to_string()))
    }
}

/// Proof that the tree of `old` entries is a prefix of the tree of `new` entries.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// Old size.
    pub old: u64,
    /// New size.
    pub new: u64,
    /// Proof hashes.
    pub path: Vec<serde_bytes::ByteArray<32>>,
}

impl ConsistencyProof {
    /// Checks that `new_head` extends `old_head` (both already signature-checked). This is what
    /// catches a relay that rewrote, truncated or forked the log since the client last looked.
    ///
    /// # Errors
    /// [`Error::Merkle`] if the log was not append-only between the two heads.
    pub fn verify(&self, old_head: &SignedTreeHead, new_head: &SignedTreeHead) -> Result<()> {
        if self.old != old_head.size || self.new != new_head.size {
            return Err(Error::Merkle(
                "consistency proof is for other tree sizes".into(),
            ));
        }
        if new_head.size < old_head.size {
            return Err(Error::Merkle(format!(
                "the log shrank from {} to {} entries",
                old_head.size, new_head.size
            )));
        }
        let path: Vec<merkle::Hash> = self.path.iter().map(|h| **h).collect();
        merkle::verify_consistency(self.old, self.new, &old_head.root, &new_head.root, &path)
            .map_err(|e| Error::Merkle(e.to_string()))
    }
}

/// Converts proof hashes for the wire.
pub fn to_wire_path(path: Vec<merkle::Hash>) -> Vec<serde_bytes::ByteArray<32>> {
    path.into_iter().map(serde_bytes::ByteArray::new).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::test_rng;

    fn entries(n: usize, who: &IdentityKeys) -> Vec<AuditEntry> {
        (0..n)
            .map(|i| {
                let ev = AuditEvent::Erasure {
                    conversation: ConversationId::from_bytes(&[i as u8; 16]).unwrap(),
                    reason: "retention".into(),
                };
                AuditEntry::sign(who, ev, i as u64)
            })
            .collect()
    }

    #[test]
    fn inclusion_and_consistency_against_signed_heads() {
        let mut rng = test_rng(120);
        let log = IdentityKeys::generate(&mut rng);
        let es = entries(7, &log);
        let leaves: Vec<_> = es.iter().map(AuditEntry::leaf_hash).collect();
        let h4 = SignedTreeHead::sign(&log, 4, merkle::root(&leaves[..4]), 1);
        let h7 = SignedTreeHead::sign(&log, 7, merkle::root(&leaves), 2);
        h7.verify(&log.signing_public()).unwrap();
        let p = InclusionProof {
            index: 2,
            size: 7,
            path: to_wire_path(merkle::inclusion_proof(&leaves, 2).unwrap()),
        };
        p.verify(&es[2], &h7).unwrap();
        assert!(p.verify(&es[3], &h7).is_err());
        let c = ConsistencyProof {
            old: 4,
            new: 7,
            path: to_wire_path(merkle::consistency_proof(&leaves, 4).unwrap()),
        };
        c.verify(&h4, &h7).unwrap();

        // A forked log: entry 1 rewritten, same size.
        let mut forked = leaves.clone();
        forked[1] = entries(1, &IdentityKeys::generate(&mut rng))[0].leaf_hash();
        let f7 = SignedTreeHead::sign(&log, 7, merkle::root(&forked), 3);
        let fc = ConsistencyProof {
            old: 4,
            new: 7,
            path: to_wire_path(merkle::consistency_proof(&forked, 4).unwrap()),
        };
        assert!(fc.verify(&h4, &f7).is_err());
        // A truncated log.
        let c = ConsistencyProof {
            old: 7,
            new: 4,
            path: vec![],
        };
        assert!(c.verify(&h7, &h4).is_err());
        // A head signed by another key.
        let other = IdentityKeys::generate(&mut rng);
        let fake = SignedTreeHead::sign(&other, 7, h7.root, 2);
        assert!(fake.verify(&log.signing_public()).is_err());
        // A tampered entry.
        let mut e = es[0].clone();
        e.at += 1;
        assert!(e.verify().is_err());
    }

    #[test]
    fn each_entry_kind_has_its_signers() {
        let mut rng = test_rng(121);
        let [trustee, customer, master, relay, stranger] =
            core::array::from_fn(|_| IdentityKeys::generate(&mut rng));
        let allowed = AllowedSigners {
            trustees: vec![trustee.signing_public()],
            master: Some(master.signing_public()),
            customer: Some(customer.signing_public()),
            log_key: Some(relay.signing_public()),
        };
        let conversation = ConversationId::from_bytes(&[3; 16]).unwrap();
        let token = TokenId::from_bytes(&[4; 16]).unwrap();
        let release = AuditEvent::Release {
            org: "acme".into(),
            request_hash: [1; 32],
            conversation,
            epochs: EpochRange::new(0, 1).unwrap(),
            basis: ReleaseBasis::Consent {
                id: token,
                scope: Scope::Full,
                issued_at: 5,
            },
            master: master.signing_public(),
        };
        let revocation = AuditEvent::ConsentRevocation {
            conversation,
            consent: token,
        };
        let erasure = AuditEvent::Erasure {
            conversation,
            reason: "retention".into(),
        };
        let customer_erasure = AuditEvent::Erasure {
            conversation,
            reason: "customer request".into(),
        };
        let policy = AuditEvent::PolicyChange {
            org: "acme".into(),
            version: 2,
            policy_hash: [2; 32],
        };
        let closed = AuditEvent::DisputeClosed {
            org: "acme".into(),
            conversation,
            ticket: token,
            because: crate::release::ClosedBecause::Master("settled".into()),
        };
        let cases = [
            (&release, vec![&trustee]),
            (&revocation, vec![&customer]),
            (&erasure, vec![&relay]),
            (&customer_erasure, vec![&customer]),
            (&policy, vec![&master]),
            (&closed, vec![&relay]),
        ];
        for (event, good) in cases {
            for k in [&trustee, &customer, &master, &relay, &stranger] {
                let e = AuditEntry::sign(k, event.clone(), 9);
                let r = e.check_signer(&allowed);
                if good
                    .iter()
                    .any(|g| g.signing_public() == k.signing_public())
                {
                    r.unwrap();
                } else {
                    assert!(
                        matches!(r, Err(Error::Audit(LogError::WrongSigner { .. }))),
                        "{event:?} by {}: {r:?}",
                        k.signing_public()
                    );
                }
            }
        }
        // Unknown parties allow nothing.
        let e = AuditEntry::sign(&customer, revocation, 9);
        assert!(e.check_signer(&AllowedSigners::default()).is_err());
    }

    /// A later version's kind decodes as [`AuditEvent::Extension`]: its signed bytes (so its
    /// leaf and signature) come from the code and body as served, and no signer is allowed.
    /// A kind this version reads (or code 0) in that form is refused by name: else a relay
    /// could serve a revocation or release as "unreadable" with its genuine leaf.
    #[test]
    fn a_later_kind_decodes_with_its_leaf_and_a_known_kind_in_its_form_is_refused() {
        let mut rng = test_rng(123);
        let relay = IdentityKeys::generate(&mut rng);
        let x = ExtensionEvent::new(9, vec![1, 2, 3]).unwrap();
        let e = AuditEntry::sign(&relay, AuditEvent::Extension(x), 7);
        let back: AuditEntry =
            crate::wire::from_cbor(&crate::wire::to_cbor(&e).unwrap(), "e").unwrap();
        assert_eq!(back, e);
        back.verify().unwrap();
        assert_eq!(back.event.unreadable_code(), Some(9));
        let mut layout = Writer::with_label(labels::AUDIT_ENTRY);
        layout
            .u8(9)
            .fixed(&[1, 2, 3])
            .u64(7)
            .fixed(relay.signing_public().as_bytes());
        assert_eq!(back.signed_bytes(), layout.into_bytes());
        let allowed = AllowedSigners {
            log_key: Some(relay.signing_public()),
            ..AllowedSigners::default()
        };
        assert!(matches!(
            back.check_signer(&allowed),
            Err(Error::Audit(LogError::WrongSigner { .. }))
        ));

        for code in [0u8, 1, 3, 5] {
            assert!(matches!(
                ExtensionEvent::new(code, vec![]),
                Err(Error::Decode { .. })
            ));
            let cbor = crate::wire::to_cbor(&e)
                .unwrap()
                .iter()
                .map(|b| if *b == 0x09 { code } else { *b })
                .collect::<Vec<_>>();
            let mut rest = cbor.as_slice();
            let err = ciborium::from_reader::<AuditEntry, _>(&mut rest).unwrap_err();
            assert!(
                err.to_string()
                    .contains("cannot read: codes 1 to 5 are kinds it reads"),
                "code {code}: {err}"
            );
        }

        // In an `entries` answer the whole frame is refused, the reason named (the Rust
        // client's reading fails with it), and so is an event name of no kind.
        let frame = crate::wire::encode(&crate::wire::Frame::Response {
            id: 1,
            body: crate::wire::Response::Entries {
                from: 0,
                entries: vec![e.clone()],
                withheld: Vec::new(),
            },
        })
        .unwrap();
        let known = frame
            .iter()
            .map(|b| if *b == 0x09 { 3 } else { *b })
            .collect::<Vec<_>>();
        let err = crate::wire::decode(&known).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
        let at = frame.windows(9).position(|w| w == b"extension").unwrap();
        let mut named = frame.clone();
        named[at..at + 9].copy_from_slice(b"frobnicat");
        let err = crate::wire::decode(&named).unwrap_err();
        assert!(err.to_string().contains("frobnicat"), "{err}");
    }

    #[test]
    fn cosignatures_count_only_fresh_distinct_witnesses_on_this_log() {
        let mut rng = test_rng(122);
        let log = IdentityKeys::generate(&mut rng);
        let [w1, w2, w3, stranger] = core::array::from_fn(|_| IdentityKeys::generate(&mut rng));
        let witnesses = [
            w1.signing_public(),
            w2.signing_public(),
            w3.signing_public(),
        ];
        let head = SignedTreeHead::sign(&log, 5, [9; 32], 1_000);
        let earlier = SignedTreeHead::sign(&log, 3, [8; 32], 900);
        let now = 10_000;
        let fresh = now - 10;
        let mut forged = Cosignature::sign(&w3, &head, fresh);
        forged.root = [7; 32];
        let other_log = SignedTreeHead::sign(&stranger, 5, [9; 32], 1_000);
        let too_big = SignedTreeHead::sign(&log, 6, [9; 32], 1_000);
        let wh = WitnessedHead {
            head: head.clone(),
            cosignatures: vec![
                Cosignature::sign(&w1, &head, fresh),
                // The same witness again counts once.
                Cosignature::sign(&w1, &earlier, fresh),
                Cosignature::sign(&w2, &earlier, now - WITNESS_FRESHNESS_SECS - 1),
                forged,
                Cosignature::sign(&stranger, &head, fresh),
                Cosignature::sign(&w3, &other_log, fresh),
                Cosignature::sign(&w3, &too_big, fresh),
                Cosignature::sign(&w3, &head, now + WITNESS_MAX_SKEW_SECS + 1),
            ],
        };
        let count = wh.fresh_cosignatures(&witnesses, now, WITNESS_FRESHNESS_SECS);
        assert_eq!(count.fresh.len(), 1);
        assert_eq!(count.fresh[0].witness, w1.signing_public());
        assert_eq!(count.stale, 1);
        assert_eq!(witnesses_needed(3, 2), 2);
        assert_eq!(witnesses_needed(5, 3), 3);
        assert_eq!(witnesses_needed(1, 1), 1);
    }
}
