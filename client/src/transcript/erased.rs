//! Why the relay no longer serves a conversation the master would export: its erasure, read
//! from the audit log and checked, or a refusal when no erasure that holds explains it.
//!
//! Erasure is of a whole conversation (PROTOCOL.md §10.7, §12): the relay deletes every item
//! and logs one erasure entry. An export is made from the relay's history, so it can never hold
//! an erased item, and the offline verifier has no erasure to see in it. What the master does
//! meet is a conversation it unlocked and the relay no longer has: `export` then says that it
//! was erased — when, why, under which audit entry — only for an entry that holds (signed by
//! the conversation's customer at its request, or by the pinned relay log key for retention;
//! not older than the conversation; in the log the checked tree head describes). An entry that
//! does not hold is named as not genuine, and without any the relay's `not_found` stands.

use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent, SignedTreeHead},
    card::Role,
    erasure::{ErasureReason, check_not_stale},
    ids::ConversationId,
    keys::SigningPublicKey,
};

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::escrow::log::slots_make_head;
use crate::store::Transcript;

/// What one erasure entry about the conversation is worth.
#[derive(Debug, PartialEq, Eq)]
enum Judged {
    /// It holds.
    Genuine,
    /// It does not, for this reason.
    NotGenuine(&'static str),
}

impl Client {
    /// Master: the error for exporting `id` (unlocked earlier as `t`) when the relay answered
    /// `not_found`: [`ClientError::ConversationErased`] for an erasure entry that holds,
    /// [`ClientError::ErasureNotGenuine`] when the log names only erasures that do not, and
    /// `not_found` itself when it names none.
    ///
    /// # Errors
    /// Relay and transport errors while reading the log.
    pub(super) async fn why_gone(
        &self,
        id: &ConversationId,
        t: &Transcript,
        head: &SignedTreeHead,
        not_found: ClientError,
    ) -> Result<ClientError> {
        let slots = self.entries(0, head.size).await?;
        if !slots_make_head(&slots, head) {
            return Ok(ClientError::ErasureNotGenuine {
                conversation: id.to_string(),
                detail: "the audit log served does not make up its signed tree head".into(),
            });
        }
        let log_key = self.session.welcome().log_key;
        let mut refused = Vec::new();
        for (index, slot) in slots.iter().enumerate() {
            let Some(entry) = slot.entry() else {
                continue;
            };
            if !matches!(&entry.event, AuditEvent::Erasure { conversation, .. } if conversation == id)
            {
                continue;
            }
            let index = index as u64;
            match judge(entry, t, log_key) {
                Judged::Genuine => {
                    return Ok(ClientError::ConversationErased {
                        conversation: id.to_string(),
                        reason: match ErasureReason::of(entry) {
                            Some(ErasureReason::CustomerRequest) => "at the customer's request",
                            _ => "at the end of the retention period",
                        },
                        at: entry.at,
                        index,
                    });
                }
                Judged::NotGenuine(why) => {
                    refused.push(format!(
                        "audit entry #{index} says it was erased, but {why}"
                    ));
                }
            }
        }
        Ok(if refused.is_empty() {
            not_found
        } else {
            ClientError::ErasureNotGenuine {
                conversation: id.to_string(),
                detail: refused.join("; "),
            }
        })
    }
}

/// Judges an erasure entry about the transcript's conversation by what the master knows of
/// it: the customer's key and the conversation's age from the released epoch records, and the
/// relay's pinned log key.
fn judge(entry: &AuditEntry, t: &Transcript, log_key: SigningPublicKey) -> Judged {
    if entry.verify().is_err() {
        return Judged::NotGenuine("its signature does not verify");
    }
    let first = t.records.iter().min_by_key(|r| r.epoch);
    let customer = first.and_then(|r| {
        r.members
            .iter()
            .find(|m| m.role == Role::Customer)
            .map(|m| m.signing_key)
    });
    match ErasureReason::of(entry) {
        Some(ErasureReason::CustomerRequest) if Some(entry.signer) == customer => {}
        Some(ErasureReason::CustomerRequest) => {
            return Judged::NotGenuine(
                "it claims the customer's request and is not signed by the customer",
            );
        }
        Some(ErasureReason::Retention) if entry.signer == log_key => {}
        Some(ErasureReason::Retention) => {
            return Judged::NotGenuine(
                "it claims the retention period and is not signed by the relay's log key",
            );
        }
        None => return Judged::NotGenuine("it names no reason an erasure may have"),
    }
    // The oldest released record is no older than the conversation: a statement signed
    // before it was made for an earlier conversation under the same id.
    if let Some(r) = first
        && check_not_stale(entry, r.created_at).is_err()
    {
        return Judged::NotGenuine("it was signed before the conversation was opened");
    }
    Judged::Genuine
}
