//! Reading the relay's answers: a response that is not the one a request expects, and which
//! errors are transient (retry) rather than a verdict on the data.

use sealdesk_protocol::wire::{ErrorCode, Response};

use crate::error::{ClientError, Result};

/// `Ok(())` for the relay's `Ok`; any other answer is [`ClientError::UnexpectedResponse`].
pub(crate) fn expect_ok(r: Response) -> Result<()> {
    match r {
        Response::Ok => Ok(()),
        other => Err(unexpected("the request", &other)),
    }
}

/// The error for an answer `r` the relay should not have given to request `what`.
pub(crate) fn unexpected(what: &str, r: &Response) -> ClientError {
    let name = match r {
        Response::Ok => "Ok",
        Response::Error { .. } => "Error",
        Response::Card(_) => "Card",
        Response::Policy(_) => "Policy",
        Response::Certificate(_) => "Certificate",
        Response::Opened { .. } => "Opened",
        Response::Conversations(_) => "Conversations",
        Response::OrgConversations(_) => "OrgConversations",
        Response::Stored { .. } => "Stored",
        Response::Items { .. } => "Items",
        Response::Releases(_) => "Releases",
        Response::Progress(_) => "Progress",
        Response::Tickets(_) => "Tickets",
        Response::Appended { .. } => "Appended",
        Response::TreeHead(_) => "TreeHead",
        Response::Entries { .. } => "Entries",
        Response::Inclusion(_) => "Inclusion",
        Response::Consistency(_) => "Consistency",
        Response::WitnessedHead(_) => "WitnessedHead",
        Response::Blocks(_) => "Blocks",
        Response::Recovery(_) => "Recovery",
        Response::AttachmentProgress { .. } => "AttachmentProgress",
        Response::AttachmentChunk { .. } => "AttachmentChunk",
    };
    ClientError::UnexpectedResponse(format!("{what} was answered with {name}"))
}

/// Errors that say nothing about the data (the network, the disk): retry rather than refuse.
pub(crate) fn is_transient(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Transport(_)
            | ClientError::Closed(_)
            | ClientError::Timeout { .. }
            | ClientError::Vault(_)
            | ClientError::Io { .. }
            | ClientError::Random
            | ClientError::Relay {
                code: ErrorCode::Internal | ErrorCode::RateLimited,
                ..
            }
    )
}
