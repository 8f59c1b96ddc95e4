//! Why the relay no longer serves a conversation the master would export, unlock again or
//! open a dispute for: its erasure, read from the audit log and checked, or a refusal when no
//! erasure that holds explains it.
//!
//! Erasure is of a whole conversation (PROTOCOL.md §10.7, §12): the relay deletes every item
//! and logs one erasure entry. An export is made from the relay's history, so it can never hold
//! an erased item, and the offline verifier has no erasure to see in it. What the master does
//! meet is a conversation it unlocked and the relay no longer has: `export` then says that it
//! was erased — when, why, under which audit entry — only for an entry that holds (signed by
//! the conversation's customer at its request, or by the pinned relay log key for retention;
//! not older than the conversation; in the log the checked tree head describes). An entry that
//! does not hold is named as not genuine, and without any the relay's `not_found` stands.
//! `transcript unlock` and `dispute open` meet the same `not_found` when they read the records
//! ([`Gone`] says which of the three asked, for the words). A master that never unlocked the
//! conversation has no records: it cannot tell who its customer was or when it was opened, so
//! an entry claiming the customer's request is neither confirmed nor refused — the relay's
//! `not_found` stands, with what the entry says and why it cannot be checked.

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
    /// It cannot be checked without the conversation's records (this master never unlocked it).
    Unchecked,
}

/// What the master was doing when the relay said the conversation was not found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gone {
    /// `transcript export`.
    Export,
    /// `transcript unlock`.
    Unlock,
    /// `dispute open`.
    Dispute,
}

impl Gone {
    /// What cannot be done any more, in words, for [`ClientError::ConversationErased`].
    fn consequence(self, unlocked: bool) -> &'static str {
        match (self, unlocked) {
            (Self::Export, _) => {
                "it cannot be exported; the transcript unlocked before is still shown by \
                 `sealdesk transcript show`"
            }
            (Self::Unlock, true) => {
                "nothing more of it can be unlocked; the transcript unlocked before is still \
                 shown by `sealdesk transcript show`"
            }
            (Self::Unlock, false) => "nothing of it can be unlocked",
            (Self::Dispute, true) => {
                "no dispute can be opened for it; the transcript unlocked before is still \
                 shown by `sealdesk transcript show`"
            }
            (Self::Dispute, false) => "no dispute can be opened for it",
        }
    }
}

impl Client {
    /// Master: the error for `doing` on `id` (unlocked earlier as `t`, if it was) when the
    /// relay answered `not_found`: [`ClientError::ConversationErased`] for an erasure entry
    /// that holds, [`ClientError::ErasureNotGenuine`] when the log names only erasures that do
    /// not, and `not_found` itself when it names none (with what an entry that cannot be
    /// checked without `t` says).
    ///
    /// # Errors
    /// Relay and transport errors while reading the log.
    pub(crate) async fn why_gone(
        &self,
        id: &ConversationId,
        t: Option<&Transcript>,
        head: &SignedTreeHead,
        doing: Gone,
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
        let mut unchecked = Vec::new();
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
                        so: doing.consequence(t.is_some()),
                    });
                }
                Judged::Unchecked => unchecked.push(format!(
                    "audit entry #{index} says it was erased at the customer's request, but this \
                     master never unlocked it, so whether its customer signed that cannot be \
                     checked"
                )),
                Judged::NotGenuine(why) => {
                    refused.push(format!(
                        "audit entry #{index} says it was erased, but {why}"
                    ));
                }
            }
        }
        Ok(if refused.is_empty() {
            match not_found {
                ClientError::Relay {
                    code,
                    message,
                    retry_after,
                } if !unchecked.is_empty() => ClientError::Relay {
                    code,
                    message: format!("{message} ({})", unchecked.join("; ")),
                    retry_after,
                },
                other => other,
            }
        } else {
            ClientError::ErasureNotGenuine {
                conversation: id.to_string(),
                detail: refused.join("; "),
            }
        })
    }
}

/// Judges an erasure entry about the transcript's conversation by what the master knows of
/// it: the customer's key and the conversation's age from the released epoch records (none
/// without a transcript), and the relay's pinned log key.
fn judge(entry: &AuditEntry, t: Option<&Transcript>, log_key: SigningPublicKey) -> Judged {
    if entry.verify().is_err() {
        return Judged::NotGenuine("its signature does not verify");
    }
    let Some(t) = t else {
        // Without the records only the relay's own retention erasure can be checked: its
        // signer is the pinned log key. Its age cannot be (no record says when the
        // conversation was opened); conversation ids are random, so an old statement about
        // an earlier conversation under the same id is not a practical replay.
        return match ErasureReason::of(entry) {
            Some(ErasureReason::Retention) if entry.signer == log_key => Judged::Genuine,
            Some(ErasureReason::Retention) => Judged::NotGenuine(
                "it claims the retention period and is not signed by the relay's log key",
            ),
            Some(ErasureReason::CustomerRequest) => Judged::Unchecked,
            None => Judged::NotGenuine("it names no reason an erasure may have"),
        };
    };
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
