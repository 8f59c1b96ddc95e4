//! Conversation status (open, waiting, resolved), set by the agent as a signed, encrypted
//! status message in the conversation (the relay sees a message like any other), and what a
//! conversation list shows: the status and a preview of the last message, read from the local
//! timeline (decrypted locally, works offline).

use sealdesk_protocol::{
    card::Role, ids::ConversationId, message::ContentKind, status::ConversationStatus,
};
use serde::Serialize;

use super::Client;
use crate::account::{Account, LogEntry};
use crate::error::{ClientError, Result};

/// Characters of the last message a preview keeps.
pub const PREVIEW_CHARS: usize = 60;

/// The last message of a conversation, shortened for a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Preview {
    /// Who sent it.
    pub sender: String,
    /// Its text, at most [`PREVIEW_CHARS`] characters (with `…` when cut), on one line.
    pub text: String,
}

impl Client {
    /// Agent: sets the status of conversation `id`; returns the status message's sequence
    /// number.
    ///
    /// # Errors
    /// [`ClientError::WrongRole`] for anyone but an agent; as [`Client::send_text`].
    pub async fn set_status(
        &mut self,
        id: &ConversationId,
        status: ConversationStatus,
    ) -> Result<u64> {
        if self.account.role() != Role::Agent {
            return Err(ClientError::WrongRole {
                operation: "set a conversation's status",
                needed: Role::Agent.name(),
                actual: self.account.role().name(),
            });
        }
        Ok(self
            .send_kind(id, ContentKind::Status, &status.body())
            .await?
            .seq)
    }
}

/// The status of conversation `id` as its agents last set it (`open` if none did), from the
/// local timeline: only status messages that passed every check are in it.
///
/// # Errors
/// Storage errors.
pub fn status(account: &Account, id: &ConversationId) -> Result<ConversationStatus> {
    Ok(account
        .log(id)?
        .iter()
        .rev()
        .find_map(|e| match e {
            LogEntry::Message {
                kind: ContentKind::Status,
                text,
                ..
            } => ConversationStatus::parse(text).ok(),
            _ => None,
        })
        .unwrap_or(ConversationStatus::Open))
}

/// The last text message of conversation `id`, shortened, from the local timeline.
///
/// # Errors
/// Storage errors.
pub fn preview(account: &Account, id: &ConversationId) -> Result<Option<Preview>> {
    Ok(account.log(id)?.iter().rev().find_map(|e| match e {
        LogEntry::Message {
            kind: ContentKind::Text,
            sender,
            text,
            ..
        } => Some(Preview {
            sender: sender.clone(),
            text: shorten(text),
        }),
        _ => None,
    }))
}

/// One line of at most [`PREVIEW_CHARS`] characters.
fn shorten(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.chars().count() <= PREVIEW_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(PREVIEW_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_is_one_short_line() {
        assert_eq!(shorten("hi\nthere"), "hi there");
        let long = "x".repeat(100);
        let s = shorten(&long);
        assert_eq!(s.chars().count(), PREVIEW_CHARS);
        assert!(s.ends_with('…'));
    }
}
