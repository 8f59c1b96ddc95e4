//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in the protocol core.
///
/// Variants never carry key bytes or plaintext: only names, ids, counters and sizes, so an error
/// can be logged or shown as it is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// A byte string had the wrong length for its type.
    #[error("{what}: expected {expected} bytes, got {got}")]
    BadLength {
        /// What was being decoded.
        what: &'static str,
        /// The required length.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// A public key did not decode, or is a low-order (non-contributory) X25519 point.
    #[error("invalid {0} public key")]
    InvalidPublicKey(&'static str),
    /// An Ed25519 signature failed strict verification.
    #[error("bad signature on {0}")]
    BadSignature(&'static str),
    /// A signed statement names another signer than the key it must come from.
    #[error("the {0} is not signed by the key it must come from")]
    WrongSigner(&'static str),
    /// A name is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    #[error("invalid name {0:?}: use 1-64 characters from A-Z a-z 0-9 . _ -")]
    InvalidName(String),
    /// A card, certificate or policy names a role other than the one required.
    #[error("wrong role: expected {expected}, found {found}")]
    WrongRole {
        /// The role required here.
        expected: &'static str,
        /// The role the card claims.
        found: &'static str,
    },
    /// An org policy breaks a rule of docs/design.md §1–2 (thresholds, separation of duties, limits).
    #[error("invalid org policy: {0}")]
    InvalidPolicy(String),
    /// A certificate, token or ticket is past its expiry.
    #[error("{0} expired")]
    Expired(&'static str),
    /// A certificate, token or ticket is not valid yet, or has an impossible validity window.
    #[error("{0} has an invalid validity period")]
    InvalidValidity(&'static str),
    /// Something names a different org than the policy in force.
    #[error("wrong org: expected {expected:?}, found {found:?}")]
    WrongOrg {
        /// The org of the policy in force.
        expected: String,
        /// The org named by the object.
        found: String,
    },
    /// An HPKE seal or open failed (wrong key, wrong `info`, tampered bytes).
    #[error("could not open sealed {0}: wrong key, wrong context, or tampered")]
    SealOpen(&'static str),
    /// HPKE refused to seal (for example to a low-order public key).
    #[error("could not seal {0}")]
    Seal(&'static str),
    /// An epoch record is malformed or fails a structural check.
    #[error("invalid epoch record: {0}")]
    InvalidEpochRecord(String),
    /// Another member's escrow section differs from the one recomputed from `K`.
    #[error("escrow section of epoch {epoch} does not match the recomputation ({part})")]
    EscrowMismatch {
        /// The epoch whose record was checked.
        epoch: u32,
        /// Which part differed.
        part: String,
    },
    /// A reconstructed or opened epoch secret does not match the record's commitment.
    #[error("epoch secret does not match the commitment of epoch {0}")]
    CommitmentMismatch(u32),
    /// The wire or signed data names a protocol version this code does not speak.
    #[error("unknown protocol version {0}")]
    UnknownVersion(u8),
    /// A message belongs to another conversation than the one it was delivered in.
    #[error("message belongs to another conversation")]
    WrongConversation,
    /// A message names an epoch other than the one it is being opened with.
    #[error("message is for epoch {got}, expected {expected}")]
    WrongEpoch {
        /// The epoch of the key material in use.
        expected: u32,
        /// The epoch named in the message header.
        got: u32,
    },
    /// The sender of a message is not a member of its epoch.
    #[error("sender is not a member of this epoch")]
    NotAMember,
    /// A message with this (sender, counter) was already accepted.
    #[error("duplicate message (counter {0}): replay refused")]
    Duplicate(u64),
    /// A message counter is further ahead than the reordering window allows.
    #[error("message counter {counter} is too far ahead (highest seen {highest})")]
    TooFarAhead {
        /// The counter received.
        counter: u64,
        /// The highest counter accepted so far from this sender.
        highest: u64,
    },
    /// A message counter is older than the reordering window still remembers.
    #[error("message counter {0} is older than the reordering window")]
    TooOld(u64),
    /// A message's key-commitment tag does not match its key.
    #[error("message key commitment mismatch")]
    KeyCommitmentMismatch,
    /// AES-GCM authentication failed.
    #[error("message authentication failed")]
    Decrypt,
    /// Shamir sharing or reconstruction failed.
    #[error("secret sharing: {0}")]
    Shamir(String),
    /// A justification (consent token, dispute ticket, release request) was refused.
    #[error("release refused: {0}")]
    Refused(#[from] crate::release::Refusal),
    /// The relay's account of the audit log was refused (an append it did not make, a head
    /// too few witnesses cosigned, an entry from a signer its kind does not allow).
    #[error(transparent)]
    Audit(#[from] crate::audit::LogError),
    /// A Merkle proof did not verify.
    #[error("audit proof: {0}")]
    Merkle(String),
    /// A wire frame or stored object could not be decoded.
    #[error("malformed {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed (no payload bytes).
        reason: String,
    },
    /// An object could not be encoded (should not happen for well-formed values).
    #[error("could not encode {0}")]
    Encode(&'static str),
    /// An attachment did not open as the message describing it says (a chunk tampered with,
    /// reordered or missing, the wrong key, or a hash or size that does not match).
    #[error(transparent)]
    Attachment(#[from] crate::attachment::AttachmentError),
    /// A size limit was exceeded.
    #[error("{what} too large: {size} > {limit}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A recovery code was refused (a typo, a bad character, a wrong length or version).
    #[error(transparent)]
    RecoveryCode(#[from] crate::recovery::CodeError),
    /// A recovery record was refused (another code's, another account's, tampered).
    #[error(transparent)]
    RecoveryRecord(#[from] crate::recovery_record::RecordError),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
