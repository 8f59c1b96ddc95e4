//! What a failed command reports: a stable machine-readable code and the exit status for an
//! error ([`classify`]), printed as one JSON object on stderr with `--json`
//! ([`error_document`]). The codes are documented in README.md ("Exit statuses and errors").

use sealdesk_client::{ClientError, vault::VaultError};
use serde_json::json;

use crate::error::{CannotCheck, CliError};
use crate::print::{EXIT_CANNOT_CHECK, EXIT_FAILED, EXIT_UNREACHABLE};

/// An error's stable code and exit status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The code, `snake_case`; a relay's refusal carries the relay's own code.
    pub code: String,
    /// The exit status.
    pub status: u8,
}

impl Failure {
    fn new(code: &str, status: u8) -> Self {
        Self {
            code: code.to_owned(),
            status,
        }
    }
}

/// The code and exit status of `e`, from the first cause in its chain that says.
pub fn classify(e: &anyhow::Error) -> Failure {
    for cause in e.chain() {
        if cause.downcast_ref::<CannotCheck>().is_some() {
            return Failure::new("cannot_check", EXIT_CANNOT_CHECK);
        }
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            return client(c);
        }
        match cause.downcast_ref::<CliError>() {
            Some(CliError::Client(c)) => return client(c),
            Some(CliError::FileExists { .. }) => return Failure::new("file_exists", EXIT_FAILED),
            Some(CliError::WeakPassphrase { .. }) => {
                return Failure::new("weak_passphrase", EXIT_FAILED);
            }
            Some(e) => {
                if let Some(code) = e.chat_code() {
                    return Failure::new(code, EXIT_FAILED);
                }
            }
            _ => {}
        }
        if let Some(v) = cause.downcast_ref::<VaultError>() {
            return vault(v);
        }
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.clone();
        }
    }
    Failure::new("failed", EXIT_FAILED)
}

/// A vault error's code.
fn vault(v: &VaultError) -> Failure {
    let code = match v {
        VaultError::NotFound { .. } => "no_account",
        VaultError::WrongPassphrase { .. } => "wrong_passphrase",
        VaultError::Locked { .. } => "vault_locked",
        VaultError::EmptyPassphrase => "weak_passphrase",
        _ => "vault",
    };
    Failure::new(code, EXIT_FAILED)
}

/// A client error's code.
fn client(c: &ClientError) -> Failure {
    let code = match c {
        ClientError::Vault(v) => return vault(v),
        ClientError::Transport(_) | ClientError::Closed(_) | ClientError::Timeout { .. } => {
            return Failure::new("unreachable", EXIT_UNREACHABLE);
        }
        ClientError::Tls(_) => "tls",
        ClientError::Relay { code, .. } => {
            let name = serde_json::to_value(code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "relay".to_owned());
            return Failure::new(&name, EXIT_FAILED);
        }
        ClientError::RelayKeyChanged { .. }
        | ClientError::KeyChanged { .. }
        | ClientError::OrgKeyChanged { .. } => "key_changed",
        ClientError::FingerprintMismatch { .. } | ClientError::CardFingerprintMismatch { .. } => {
            "fingerprint_mismatch"
        }
        ClientError::MalformedFingerprint { .. } => "malformed_fingerprint",
        ClientError::WrongRole { .. } => "wrong_role",
        ClientError::UnknownConversation(_)
        | ClientError::UnknownConsent { .. }
        | ClientError::UnknownTicket { .. }
        | ClientError::NotBlocked { .. } => "not_found",
        ClientError::ConversationErased { .. } => "conversation_erased",
        ClientError::ErasureNotGenuine { .. } => "erasure_not_genuine",
        ClientError::NotRegistered => "not_registered",
        ClientError::NoIdentity | ClientError::NoProfile => "no_account",
        ClientError::BadRelayUrl { .. } => "usage",
        ClientError::NotRecovered { .. } | ClientError::RecoveryCodeReplaced { .. } => {
            "not_recovered"
        }
        ClientError::RecoveryCodeNotOffered { .. } => "wrong_role",
        ClientError::Protocol(sealdesk_protocol::Error::RecoveryCode(
            sealdesk_protocol::recovery::CodeError::Checksum,
        )) => "recovery_code_typo",
        ClientError::Protocol(sealdesk_protocol::Error::RecoveryCode(_)) => "recovery_code",
        ClientError::Protocol(_) => "protocol",
        _ => "failed",
    };
    Failure::new(code, EXIT_FAILED)
}

/// The `--json` error document, printed on stderr: `ok` false, `warnings`, and `error` with
/// its `code` and `message`.
pub fn error_document(e: &anyhow::Error) -> serde_json::Value {
    json!({
        "ok": false,
        "warnings": [],
        "error": { "code": classify(e).code, "message": format!("{e:#}") },
    })
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.code)
    }
}

impl std::error::Error for Failure {}
