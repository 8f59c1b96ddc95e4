//! Local views of a conversation, offline: its history with gaps and delivery states, unread
//! counts, and release notices grouped per request.

use std::collections::{BTreeMap, HashMap};

use sealdesk_protocol::{card::Role, ids::ConversationId, message::ContentKind};
use serde::Serialize;

use super::gaps::{lost, merge_ranges, refetch_state};
use super::{Client, REFETCH_LIMIT};
use crate::account::{Account, ConvMeta, LogEntry};
use crate::error::{ClientError, Result};
use crate::notice::{Audience, ReleaseNotice};

/// A line of a rendered history.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "line")]
pub enum HistoryLine {
    /// A timeline item, with the delivery state of this account's own messages.
    Item {
        /// The item.
        entry: LogEntry,
        /// For own messages: "sent", "delivered" or "read".
        #[serde(skip_serializing_if = "Option::is_none")]
        delivery: Option<&'static str>,
        /// The reader's number for a message (shown or not shown): 1, 2, 3 … in the order of
        /// the history, without the skips of the relay's sequence numbers (the entry's `seq`),
        /// which also count epochs, hand-offs, statuses and notices. `None` for other lines.
        #[serde(skip_serializing_if = "Option::is_none")]
        number: Option<u64>,
    },
    /// Messages that never arrived.
    Gap {
        /// Epoch.
        epoch: u32,
        /// Sender name.
        sender: String,
        /// Missing counters, as sorted inclusive ranges (`[[1, 1], [4, 9]]`).
        counters: Vec<(u64, u64)>,
        /// `Some(n)`: the client asked the relay for these messages `n` times
        /// ([`REFETCH_LIMIT`]) and stopped asking: not delivered.
        #[serde(skip_serializing_if = "Option::is_none")]
        requests: Option<u32>,
    },
    /// Items of the relay's sequence that never arrived (a customer reads every item, so a
    /// sequence number skipped is an item withheld: an epoch record, a hand-off, a consent, a
    /// release notice or a message; an agent, numbers the relay neither served nor named as
    /// skipped). Placed where the items belong.
    Withheld {
        /// First missing sequence number.
        from: u64,
        /// Last missing sequence number (inclusive).
        to: u64,
        /// `Some(n)`: asked for `n` times ([`REFETCH_LIMIT`]) and given up: not delivered.
        #[serde(skip_serializing_if = "Option::is_none")]
        requests: Option<u32>,
        /// The relay's lie about them, if it told one: a skipped run naming an epoch this
        /// account reads, or any skipped run shown to a customer (PROTOCOL.md §13.10).
        #[serde(skip_serializing_if = "Option::is_none")]
        claimed: Option<super::holes::Claim>,
        /// `Some(n)`: a summary run past [`super::holes::MAX_HOLES`]; `from..=to` also spans
        /// items that arrived, and at least `n` of its numbers are missing.
        #[serde(skip_serializing_if = "Option::is_none")]
        missing: Option<u64>,
    },
}

/// A conversation's history as shown to the user.
#[derive(Clone, Debug, Serialize)]
pub struct History {
    /// The conversation.
    pub conversation: ConversationId,
    /// The org.
    pub org: String,
    /// The policy summary, if the policy is known.
    pub summary: Option<String>,
    /// The lines.
    pub lines: Vec<HistoryLine>,
    /// Whether the relay erased the conversation (this is the local copy).
    pub erased: bool,
}

impl Client {
    /// The history of a conversation as stored locally, with gaps and delivery states.
    ///
    /// # Errors
    /// [`ClientError::UnknownConversation`], storage errors.
    pub fn history(&self, id: &ConversationId) -> Result<History> {
        history(&self.account, id)
    }

    /// The reader's number of the item at relay sequence `seq`, as [`Client::history`]
    /// numbers it: `None` if that item is not a message (or is not in the timeline).
    ///
    /// # Errors
    /// Storage errors.
    pub fn message_number(&self, id: &ConversationId, seq: u64) -> Result<Option<u64>> {
        message_number(&self.account, id, seq)
    }

    /// Marks everything in the conversation as seen by the user (for unread counts).
    ///
    /// # Errors
    /// Storage errors.
    pub fn mark_seen(&self, id: &ConversationId) -> Result<()> {
        let mut meta = self.meta(id)?;
        if meta.cursor > meta.read_local {
            meta.read_local = meta.cursor;
            self.account.save_conversation(&meta)?;
        }
        Ok(())
    }

    /// Unread text messages from others.
    ///
    /// # Errors
    /// Storage errors.
    pub fn unread(&self, id: &ConversationId) -> Result<usize> {
        unread(&self.account, id)
    }

    /// The conversation's bookkeeping.
    ///
    /// # Errors
    /// [`ClientError::UnknownConversation`].
    pub fn meta(&self, id: &ConversationId) -> Result<ConvMeta> {
        self.account
            .conversation(id)?
            .ok_or_else(|| ClientError::UnknownConversation(id.to_string()))
    }

    /// The policy summary for a conversation (from its newest epoch's policy, or the latest
    /// stored one).
    ///
    /// # Errors
    /// Relay and storage errors.
    pub async fn summary(&mut self, id: &ConversationId) -> Result<String> {
        let meta = self.meta(id)?;
        let policy = match self.account.epochs(id)?.pop() {
            Some(st) => {
                self.policy(&st.record.org, st.record.policy_version)
                    .await?
            }
            None => self.latest_policy(&meta.org).await?,
        };
        Ok(policy.summary())
    }
}

/// The history of a conversation from local state only (works offline).
///
/// # Errors
/// [`ClientError::UnknownConversation`], storage errors.
pub fn history(account: &Account, id: &ConversationId) -> Result<History> {
    let meta = account
        .conversation(id)?
        .ok_or_else(|| ClientError::UnknownConversation(id.to_string()))?;
    let epochs = account.epochs(id)?;
    let summary = epochs
        .last()
        .and_then(|st| {
            account
                .stored_policy(&st.record.org, st.record.policy_version)
                .ok()
                .flatten()
        })
        .and_then(|p| p.verify().ok())
        .map(|p| p.summary());
    let me = account.keys().signing_public();
    // Gaps per epoch: counters inside a sender's window that never arrived (each sync asks
    // the relay for them again), and those that left the window without arriving (for good).
    let lost = lost(account, id)?;
    let refetch = refetch_state(account, id)?;
    let mut gaps: BTreeMap<u32, Vec<HistoryLine>> = BTreeMap::new();
    for st in &epochs {
        if !st.readable() {
            continue;
        }
        for m in &st.record.members {
            if m.signing_key == me {
                continue;
            }
            let mut missing: Vec<(u64, u64)> = lost
                .iter()
                .filter(|l| l.epoch == st.record.epoch && l.sender == m.signing_key)
                .flat_map(|l| l.ranges.iter().copied())
                .collect();
            let mut given_up: Vec<(u64, u64)> = Vec::new();
            if let Some(w) = st.windows.get(&m.signing_key) {
                for c in w.missing() {
                    if refetch.tries_of(&(st.record.epoch, m.signing_key, c)) >= REFETCH_LIMIT {
                        given_up.push((c, c));
                    } else {
                        missing.push((c, c));
                    }
                }
            }
            let (missing, given_up) = (merge_ranges(missing), merge_ranges(given_up));
            for (counters, requests) in [(missing, None), (given_up, Some(REFETCH_LIMIT))] {
                if !counters.is_empty() {
                    gaps.entry(st.record.epoch)
                        .or_default()
                        .push(HistoryLine::Gap {
                            epoch: st.record.epoch,
                            sender: m.name.clone(),
                            counters,
                            requests,
                        });
                }
            }
        }
    }
    let others_max = |map: &BTreeMap<String, u64>| {
        map.iter()
            .filter(|(n, _)| n.as_str() != account.name())
            .map(|(_, s)| *s)
            .max()
            .unwrap_or(0)
    };
    let delivered = others_max(&meta.delivered_by);
    let read = others_max(&meta.read_by);
    let entries = group_notices(account.log(id)?, audience_of(account));
    let mut lines = Vec::new();
    let mut last_epoch_of_line: Option<u32> = None;
    let mut messages: u64 = 0;
    for entry in entries {
        if matches!(entry, LogEntry::Receipt { .. }) {
            continue;
        }
        let epoch = match &entry {
            LogEntry::Message { epoch, .. } | LogEntry::Epoch { epoch, .. } => Some(*epoch),
            _ => None,
        };
        if let (Some(prev), Some(cur)) = (last_epoch_of_line, epoch)
            && cur != prev
            && let Some(g) = gaps.remove(&prev)
        {
            lines.extend(g);
        }
        if epoch.is_some() {
            last_epoch_of_line = epoch;
        }
        let delivery = match &entry {
            LogEntry::Message {
                mine: true, seq, ..
            } => Some(if read >= *seq {
                "read"
            } else if delivered >= *seq {
                "delivered"
            } else {
                "sent"
            }),
            _ => None,
        };
        let number = if numbered(&entry) {
            messages += 1;
            Some(messages)
        } else {
            None
        };
        lines.push(HistoryLine::Item {
            entry,
            delivery,
            number,
        });
    }
    for (_, g) in gaps {
        lines.extend(g);
    }
    for h in super::holes::open_holes(account, id)?.into_iter().rev() {
        let at = lines
            .iter()
            .position(|l| matches!(l, HistoryLine::Item { entry, .. } if entry.seq() > h.to))
            .unwrap_or(lines.len());
        lines.insert(
            at,
            HistoryLine::Withheld {
                from: h.from,
                to: h.to,
                requests: (h.tries >= REFETCH_LIMIT).then_some(h.tries),
                claimed: h.claimed,
                missing: h.missing,
            },
        );
    }
    Ok(History {
        conversation: *id,
        org: meta.org,
        summary,
        lines,
        erased: meta.erased,
    })
}

/// The reader's number of the item at relay sequence `seq`, from local state: messages are
/// counted in the timeline's order, as [`history`] counts them.
///
/// # Errors
/// Storage errors.
pub fn message_number(account: &Account, id: &ConversationId, seq: u64) -> Result<Option<u64>> {
    let mut n: u64 = 0;
    for entry in account.log(id)? {
        if numbered(&entry) {
            n += 1;
            if entry.seq() == seq {
                return Ok(Some(n));
            }
        }
    }
    Ok(None)
}

/// Whether an entry is a message the reader counts: a message shown ([`counts_as_message`])
/// or a message that could not be shown; not a status change, an epoch, a hand-off or a notice.
fn numbered(entry: &LogEntry) -> bool {
    match entry {
        LogEntry::Message { kind, .. } => counts_as_message(*kind),
        LogEntry::Rejected { .. } => true,
        _ => false,
    }
}

/// Whether an item of this kind is a message the reader counts (the `#N` of [`history`]): a
/// text or a file (its caption is its text); not a read receipt or a status change, which are
/// signed items of the conversation but not something anyone said. Every view that numbers
/// messages — history, the master's transcript, its exports and their verification — counts
/// with this, so that "message #4" means one message wherever it is read.
pub fn counts_as_message(kind: ContentKind) -> bool {
    match kind {
        ContentKind::Text | ContentKind::Attachment => true,
        ContentKind::Read | ContentKind::Status => false,
    }
}

/// The reader's numbers of a run of items in relay order, as [`history`] numbers them: 1, 2,
/// 3 … for each message ([`counts_as_message`]), `None` for the other items and for an item
/// whose kind is not known (`None` in `kinds`: it is not counted).
pub fn message_numbers(kinds: impl IntoIterator<Item = Option<ContentKind>>) -> Vec<Option<u64>> {
    let mut n: u64 = 0;
    kinds
        .into_iter()
        .map(|k| {
            k.is_some_and(counts_as_message).then(|| {
                n += 1;
                n
            })
        })
        .collect()
}

/// The message a read receipt names, in the reader's numbers: the last message (by `numbers`
/// over `seqs`, in relay order) at or before relay sequence number `up_to` — the messages
/// [`history`] marks read (✓✓) for that receipt. `None` if no message is that early.
pub fn read_up_to(seqs: &[u64], numbers: &[Option<u64>], up_to: u64) -> Option<u64> {
    seqs.iter()
        .zip(numbers)
        .take_while(|(s, _)| **s <= up_to)
        .filter_map(|(_, n)| *n)
        .last()
}

/// Unread text messages from others, from local state.
///
/// # Errors
/// Storage errors.
pub fn unread(account: &Account, id: &ConversationId) -> Result<usize> {
    let meta = account
        .conversation(id)?
        .ok_or_else(|| ClientError::UnknownConversation(id.to_string()))?;
    Ok(account
        .log(id)?
        .iter()
        .filter(
            |e| matches!(e, LogEntry::Message { mine: false, seq, .. } if *seq > meta.read_local),
        )
        .count())
}

/// Folds the trustees' release notices of one request into one line, at the place of the
/// request's first entry; every other entry passes through unchanged. The line's text, verdict
/// and audit index are the group's: genuine only if at least one entry verified and none
/// failed, its index the first verified entry's.
pub fn group_notices(
    entries: impl IntoIterator<Item = LogEntry>,
    audience: Audience,
) -> Vec<LogEntry> {
    let mut out: Vec<LogEntry> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for entry in entries {
        if let LogEntry::Notice {
            release: Some(r), ..
        } = &entry
        {
            if let Some(LogEntry::Notice {
                release: Some(group),
                ..
            }) = at.get(&r.request).and_then(|&i| out.get_mut(i))
            {
                group.absorb(r);
                continue;
            }
            at.insert(r.request.clone(), out.len());
        }
        out.push(entry);
    }
    for entry in &mut out {
        if let LogEntry::Notice {
            text,
            verified,
            index,
            release: Some(group),
            ..
        } = entry
        {
            *text = group.describe(audience, "this chat");
            *verified = group.genuine();
            if let Some(first) = group.indexes.first().or(group.failed.first()) {
                *index = *first;
            }
        }
    }
    out
}

/// How notices are worded for this account: "your consent" for a customer, "(you)" for the
/// org's master.
pub fn audience_of(account: &Account) -> Audience {
    match account.role() {
        Role::Customer => Audience::Customer,
        Role::Master => Audience::Master,
        _ => Audience::Other,
    }
}

pub(super) fn release_of(entry: &LogEntry) -> Option<&ReleaseNotice> {
    match entry {
        LogEntry::Notice {
            release: Some(r), ..
        } => Some(r),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use sealdesk_protocol::message::ContentKind::{Attachment, Read, Status, Text};

    use super::{message_numbers, read_up_to};

    /// Texts and files are numbered in order; receipts, statuses and items of no known kind
    /// are not, and do not move the count.
    #[test]
    fn texts_and_files_are_numbered_receipts_and_statuses_are_not() {
        let numbers = message_numbers([
            Some(Text),
            Some(Read),
            Some(Text),
            Some(Attachment),
            Some(Status),
            None,
            Some(Text),
        ]);
        assert_eq!(
            numbers,
            [Some(1), None, Some(2), Some(3), None, None, Some(4)]
        );
    }

    /// A receipt names the last message at or before the sequence number it reads up to.
    #[test]
    fn a_receipt_names_the_last_message_it_covers() {
        let seqs = [2, 3, 5, 8, 9];
        let numbers = [Some(1), None, Some(2), Some(3), None];
        assert_eq!(read_up_to(&seqs, &numbers, 2), Some(1));
        assert_eq!(read_up_to(&seqs, &numbers, 4), Some(1));
        assert_eq!(read_up_to(&seqs, &numbers, 9), Some(3));
        assert_eq!(read_up_to(&seqs, &numbers, 1), None);
    }
}
