//! The client library's one error type.

use sealdesk_protocol::wire::ErrorCode;

use crate::io_failure::IoFailure;
use crate::vault::VaultError;

/// Everything that can go wrong in the client library.
///
/// Messages say what went wrong and, where there is something to do, what to do. Variants never
/// carry key bytes or message text: only names, ids, counters and reasons. Errors compare
/// (`PartialEq`), so tests match variants and their fields, not text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The local encrypted store failed (wrong passphrase, missing home, corruption, I/O).
    #[error(transparent)]
    Vault(#[from] VaultError),

    /// A protocol check failed (bad signature, invalid record, failed decryption, ...).
    #[error(transparent)]
    Protocol(#[from] sealdesk_protocol::Error),

    /// The relay's answer to request `id` was refused for a fault of its own, `error` (an
    /// audit entry that does not decode: `LogError::MalformedEntry`, naming its index), while
    /// the frame was otherwise well formed: [`crate::connection::Connection::recv`] returns it,
    /// and the session fails only that request, with `ClientError::Protocol(error)`.
    #[error("the relay's answer to request {id} is refused: {error}")]
    RefusedAnswer {
        /// The request the answer was for.
        id: u64,
        /// Why it is refused.
        error: sealdesk_protocol::Error,
    },

    /// The WebSocket transport failed.
    #[error("connection to the relay failed: {0}; check --relay and that the relay is running")]
    Transport(String),

    /// The relay's TLS certificate was refused, the TLS handshake failed, or the CA file given
    /// for it cannot be used (`wss://` relays).
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),

    /// The relay closed the connection (or it dropped) before the operation finished.
    #[error("the relay closed the connection{}", reason_suffix(.0))]
    Closed(Option<String>),

    /// The relay did not answer in time.
    #[error("the relay did not answer {what} within {secs} s; try again")]
    Timeout {
        /// What was waited for.
        what: &'static str,
        /// The timeout in seconds.
        secs: u64,
    },

    /// The relay refused a request.
    #[error(
        "the relay refused the request ({}): {message}{}",
        code_name(code),
        wait_text(retry_after)
    )]
    Relay {
        /// The relay's error code.
        code: ErrorCode,
        /// The relay's explanation.
        message: String,
        /// The wait the relay asked for before trying again (its error's `retry_after`).
        retry_after: Option<std::time::Duration>,
    },

    /// The relay answered with something the protocol does not allow here.
    #[error("the relay broke the protocol: {0}")]
    UnexpectedResponse(String),

    /// The account is not registered on this relay.
    #[error("this account is not registered on the relay; run `sealdesk register` first")]
    NotRegistered,

    /// A pinned relay or audit-log key changed.
    #[error(
        "the relay at {url} presented a different {what} key than the one pinned on first \
         contact; this may be an attack. If the operator really replaced it, use a new --home"
    )]
    RelayKeyChanged {
        /// The relay URL.
        url: String,
        /// "relay" or "audit log".
        what: &'static str,
    },

    /// A pinned peer's identity key changed; sending to it is blocked.
    #[error(
        "the identity key of {name} has changed since you pinned it; compare fingerprints out \
         of band (`sealdesk keys fingerprint {name}`), then accept it with `sealdesk keys trust \
         {name}`"
    )]
    KeyChanged {
        /// The peer's name.
        name: String,
    },

    /// The org's pinned master key changed.
    #[error(
        "the master key of org {org} differs from the one you pinned; refusing its policy. If \
         the business really changed it, verify the new fingerprint out of band and run \
         `sealdesk keys trust {master}`"
    )]
    OrgKeyChanged {
        /// The org.
        org: String,
        /// The name on the new master card.
        master: String,
    },

    /// The org's master key does not match the fingerprint given with `--org-fingerprint`.
    #[error(
        "the master key of org {org} does not match the fingerprint you gave: do not continue. \
         Compare out of band, with the org itself (you gave {given}; the relay presents \
         {actual}, which proves nothing on its own: never copy it from here)"
    )]
    FingerprintMismatch {
        /// The org.
        org: String,
        /// The fingerprint given.
        given: String,
        /// The fingerprint of the key the relay presents.
        actual: String,
    },

    /// A fingerprint given on the command line is not 30 digits (six groups of five).
    #[error(
        "{given:?} is not a fingerprint: a fingerprint is 30 digits in six groups of five, as \
         `sealdesk whoami` prints it"
    )]
    MalformedFingerprint {
        /// What was given.
        given: String,
    },

    /// The relay served an older policy version than one already seen for the org.
    #[error(
        "the relay served policy version {served} of org {org}, but version {seen} was seen \
         before: refusing a policy rollback (the relay may be hostile)"
    )]
    PolicyRollback {
        /// The org.
        org: String,
        /// The version served as latest.
        served: u32,
        /// The highest version seen before.
        seen: u32,
    },

    /// A card's fingerprint is not the one given on the command line.
    #[error(
        "the key of {name} does not match the fingerprint you gave: do not continue. Compare \
         out of band, with {name} (you gave {given}; the relay presents {actual}, which proves \
         nothing on its own: never copy it from here)"
    )]
    CardFingerprintMismatch {
        /// The account name.
        name: String,
        /// The fingerprint given.
        given: String,
        /// The fingerprint of the key the relay presents.
        actual: String,
    },

    /// This account's role cannot do the operation.
    #[error("{operation} needs a {needed} account, but this one is a {actual}")]
    WrongRole {
        /// What was attempted.
        operation: &'static str,
        /// The role required.
        needed: &'static str,
        /// This account's role.
        actual: &'static str,
    },

    /// A web server key file that is not the hex of 64 secret bytes.
    #[error(
        "the web key file is not a web server key (128 hex digits, as `sealdesk org web-key --new-key` writes)"
    )]
    BadWebKey,

    /// No block of the org's (or of this master's orgs) is of a customer with this fingerprint.
    #[error(
        "no customer with fingerprint {fingerprint} is blocked; `sealdesk blocks` lists the blocks"
    )]
    NotBlocked {
        /// The fingerprint given.
        fingerprint: String,
    },

    /// No such conversation in the local state.
    #[error("no conversation {0} here; run `sealdesk conversations` to list yours")]
    UnknownConversation(String),

    /// An epoch record failed verification and was refused.
    #[error("epoch {epoch} of conversation {conversation} was refused: {reason}")]
    EpochRefused {
        /// The conversation.
        conversation: String,
        /// The epoch.
        epoch: u32,
        /// Why.
        reason: String,
    },

    /// The conversation has no epoch this account can send in.
    #[error("cannot send in conversation {conversation}: {reason}")]
    CannotSend {
        /// The conversation.
        conversation: String,
        /// Why.
        reason: String,
    },

    /// The vault holds no identity: it is not an account's home.
    #[error("the vault holds no identity; run `sealdesk init`")]
    NoIdentity,

    /// The vault holds no profile (name and card).
    #[error("the vault holds no profile")]
    NoProfile,

    /// The stored identity keys are not the length they must be.
    #[error("the stored identity is damaged")]
    IdentityDamaged,

    /// The stored card is not the stored keys' card.
    #[error("the stored card does not match the stored keys; the home is damaged")]
    CardMismatch,

    /// A stored epoch secret is not the length it must be.
    #[error("the stored secret of epoch {epoch} of conversation {conversation} is damaged")]
    SecretDamaged {
        /// The conversation.
        conversation: String,
        /// The epoch.
        epoch: u32,
    },

    /// `keys trust NAME` with nothing to accept.
    #[error("no changed key is pending for {name}, and the relay has no card for it")]
    NothingPending {
        /// The peer's name.
        name: String,
    },

    /// The relay URL does not parse.
    #[error("{url:?} is not a relay URL; use ws://HOST:PORT/v1/ws or wss://HOST:PORT/v1/ws")]
    BadRelayUrl {
        /// The URL as given.
        url: String,
    },

    /// The operation needs an epoch, and the conversation has none yet.
    #[error("the conversation {conversation} has no epoch yet")]
    NoEpochYet {
        /// The conversation.
        conversation: String,
    },

    /// A dispute ticket names an epoch whose record this account has not seen.
    #[error("the conversation {conversation} has no epoch {epoch} (yet)")]
    NoSuchEpoch {
        /// The conversation.
        conversation: String,
        /// The epoch asked for.
        epoch: u32,
    },

    /// No consent with this id was granted from this account.
    #[error("no consent {consent}; `sealdesk consent list` shows yours")]
    UnknownConsent {
        /// The consent id.
        consent: String,
    },

    /// The master looked for a consent the customer did not share in the conversation.
    #[error(
        "no consent {consent} was shared in conversation {conversation}; ask the customer to \
         run `sealdesk consent grant`, or pass the token itself"
    )]
    ConsentNotShared {
        /// The consent id.
        consent: String,
        /// The conversation.
        conversation: String,
    },

    /// A consent token in its text form does not decode.
    #[error("--consent takes the token printed by `sealdesk consent grant` (or a file holding it)")]
    BadConsentToken,

    /// No dispute ticket with this id is visible to this account.
    #[error("no ticket {ticket}; `sealdesk dispute list` shows them")]
    UnknownTicket {
        /// The ticket id.
        ticket: String,
    },

    /// This account is not an arbiter of the ticket's org.
    #[error("this account is not an arbiter of {org}")]
    NotArbiter {
        /// The org.
        org: String,
    },

    /// This account is not the master of the org.
    #[error("this account is not the master of org {org}")]
    NotMaster {
        /// The org.
        org: String,
    },

    /// The master sees no epoch of the conversation.
    #[error("conversation {conversation} has no epochs the master can see")]
    NoVisibleEpochs {
        /// The conversation.
        conversation: String,
    },

    /// A release names an epoch the master has no verified record of.
    #[error("no verified record for epoch {epoch}")]
    NoVerifiedRecord {
        /// The epoch.
        epoch: u32,
    },

    /// A transcript kept by an earlier version cannot be rebuilt with its files: the keys of
    /// these released epochs are not in the master's vault.
    #[error(
        "the keys of epoch(s) {} of this transcript are not kept in this account, so it cannot be opened again; only a new release of those epochs (`transcript unlock`) brings them back",
        epochs.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
    )]
    EpochKeysNotKept {
        /// The released epochs whose key is missing.
        epochs: Vec<u32>,
    },

    /// Too many trustees refused the release for the threshold to be reached.
    #[error("the release was refused by too many trustees ({})", refusals_text(.refusals))]
    ReleaseRefused {
        /// Each refusing trustee and its reason.
        refusals: Vec<(String, String)>,
    },

    /// The trustees' shares did not all arrive in time.
    #[error(
        "only {arrived} of the {needed} trustee shares arrived within {secs} s; ask the \
         trustees to run `sealdesk trustee serve`, then unlock again"
    )]
    SharesMissing {
        /// Shares that arrived.
        arrived: usize,
        /// Shares needed.
        needed: usize,
        /// How long was waited.
        secs: u64,
    },

    /// An unlock was given both or neither of a consent and a ticket.
    #[error("give exactly one of --consent or --ticket")]
    JustificationChoice,

    /// Nothing of the conversation was released to this (master) account.
    #[error(
        "nothing of conversation {conversation} has been released to this account: the master \
         cannot decrypt without a customer consent or an approved dispute ticket (`sealdesk \
         transcript unlock`)"
    )]
    NotReleased {
        /// The conversation.
        conversation: String,
    },

    /// The export needs a release request this account did not keep.
    #[error(
        "the release request behind audit entry #{index} is not kept in this account (it was \
         unlocked by an older version): unlock the conversation again to export it"
    )]
    ReleaseRequestNotKept {
        /// The audit entry's index.
        index: u64,
    },

    /// The relay no longer holds the conversation: it was erased, as an audit-log entry that
    /// holds says (signed by the customer at its request, or by the pinned relay log key for
    /// retention, and in the checked log). Nothing of it can be exported, unlocked or disputed
    /// any more.
    #[error(
        "conversation {conversation} was erased {reason} (audit entry #{index}, signed at \
         {at}): the relay holds none of it any more, so {so}"
    )]
    ConversationErased {
        /// The conversation.
        conversation: String,
        /// Why, in words ("at the customer's request", "at the end of the retention period").
        reason: &'static str,
        /// When the entry was signed (Unix seconds, the signer's clock).
        at: u64,
        /// The erasure entry's leaf index.
        index: u64,
        /// What cannot be done any more, and what is still there ("it cannot be exported;
        /// the transcript unlocked before is still shown by …").
        so: &'static str,
    },

    /// The relay no longer serves the conversation, and the only erasure the audit log names
    /// for it does not hold (signed by a party that may not make it, older than the
    /// conversation, or a log that does not make up its tree head).
    #[error(
        "the relay no longer serves conversation {conversation}, and names no erasure of it \
         that holds: {detail}"
    )]
    ErasureNotGenuine {
        /// The conversation.
        conversation: String,
        /// What does not hold.
        detail: String,
    },

    /// An export file is not well formed enough to sign.
    #[error("{detail}")]
    ExportMalformed {
        /// What is wrong with it (names fields and sequence numbers, never message text).
        detail: String,
    },

    /// The interactive chat was asked to act on a conversation, and none is selected.
    #[error("no conversation selected; use /list and /switch")]
    NoConversationSelected,

    /// The in-process demo (`sealdesk demo`) did not go as its story says.
    #[error("{0}")]
    Demo(String),

    /// The operating system's random generator failed.
    #[error("the operating system's random number generator failed")]
    Random,

    /// A local file operation outside the vault failed.
    #[error("could not {op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The OS error.
        #[source]
        source: IoFailure,
    },

    /// Recovery refused: the relay knows no account of this name with the recovery code's
    /// keys (a wrong code, a wrong name, or another relay). Nothing was created.
    #[error(
        "the relay knows no account {name:?} with the keys of this recovery code: check the \
         name, the code and the relay; nothing was created"
    )]
    NotRecovered {
        /// The account name given.
        name: String,
    },

    /// Recovery refused: this is the account's `init` code, and the account has made a new
    /// recovery code since (`sealdesk recovery-code`), which retired it. Nothing was created.
    #[error(
        "this is {name:?}'s first recovery code, and a newer one replaced it: recover with the          newest code; nothing was created"
    )]
    RecoveryCodeReplaced {
        /// The account name given.
        name: String,
    },

    /// Recovery codes are offered to customer accounts only.
    #[error("recovery codes are not offered to {role} accounts: {advice}")]
    RecoveryCodeNotOffered {
        /// This account's role.
        role: &'static str,
        /// What to do instead.
        advice: &'static str,
    },

    /// The message asked for carries no attachment (or is no message of this conversation).
    #[error("message #{message} has no attachment (see `history` for the message numbers)")]
    NotAnAttachment {
        /// The reader's message number.
        message: u64,
    },

    /// A number the relay sent (a count, length, index, size, sequence number or epoch) is out
    /// of range: arithmetic on it would overflow or underflow, or a loop over it would never
    /// end. The relay is broken or hostile; nothing was done with it.
    #[error("the relay sent an impossible {what}: {detail}")]
    ImpossibleNumber {
        /// Which number.
        what: &'static str,
        /// Why it cannot be right.
        detail: String,
    },
}

/// How a refusal's wait reads after its message: `; retry after N s`, or nothing.
/// The relay's error code as it is on the wire and in `--json` output (`legal_hold`), not the
/// Rust variant's name.
fn code_name(code: &ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{code:?}"))
}

fn wait_text(wait: &Option<std::time::Duration>) -> String {
    wait.map(|w| format!("; retry after {} s", w.as_secs()))
        .unwrap_or_default()
}

impl ClientError {
    /// How long the relay asked to wait before retrying: the `retry_after` field of its
    /// refusal (a `rate_limited` or `quota_exceeded` one, typically), or the `Retry-After`
    /// header of its HTTP 429.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Relay { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A local file operation outside the vault that failed with `source`.
    pub fn io(op: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            op: op.into(),
            source: source.into(),
        }
    }
}

fn refusals_text(refusals: &[(String, String)]) -> String {
    refusals
        .iter()
        .map(|(t, r)| format!("{t}: {r}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn reason_suffix(reason: &Option<String>) -> String {
    match reason {
        Some(r) if !r.is_empty() => format!(": {r}"),
        _ => String::new(),
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = ClientError> = core::result::Result<T, E>;

/// Checks that `given` has a fingerprint's form (30 digits, spaces and dashes ignored).
///
/// # Errors
/// [`ClientError::MalformedFingerprint`].
pub fn check_fingerprint_format(given: &str) -> Result<()> {
    let digits = given
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<Vec<_>>();
    if digits.len() == 30 && digits.iter().all(char::is_ascii_digit) {
        Ok(())
    } else {
        Err(ClientError::MalformedFingerprint {
            given: given.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{ClientError, ErrorCode};

    /// A relay's refusal names its code as the wire and `--json` do (`legal_hold`), the code
    /// README.md lists, not the Rust variant (`LegalHold`).
    #[test]
    fn a_refusal_names_the_wire_code() {
        let e = ClientError::Relay {
            code: ErrorCode::LegalHold,
            message: "a dispute ticket on this conversation is open".to_owned(),
            retry_after: None,
        };
        assert_eq!(
            e.to_string(),
            "the relay refused the request (legal_hold): a dispute ticket on this conversation \
             is open"
        );
    }
}
