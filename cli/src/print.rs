//! How things are printed: a command's [`Output`] (text for people, JSON for scripts) and one
//! history line for a terminal ([`render_line`]), shared by the commands, the chat and the demo.

use sealdesk_client::account::{EpochStatus, LogEntry};
use sealdesk_client::client::{HistoryLine, holes::Claim};
use sealdesk_client::fmt_time;
use sealdesk_client::handoff::HandOffOutcome;

/// What a command prints: text for people, JSON for scripts.
///
/// With `--json`, one object on stdout: `ok` (whether the command did what it was asked),
/// `warnings` (a list, maybe empty) and the command's own fields ([`Output::json_document`]).
/// Without it, the text on stdout and each warning on stderr as `warning: …`.
#[derive(Debug)]
pub struct Output {
    /// The text printed without `--json` (nothing if empty).
    pub text: String,
    /// The value printed with `--json`.
    pub json: serde_json::Value,
    /// Print the output as usual, then exit with a failure status (a negative verdict).
    pub failed: bool,
    /// Warnings: to stderr in text mode, in `warnings` with `--json`.
    pub warnings: Vec<String>,
    /// The relay could not be reached and what is shown is local state: exit status
    /// [`EXIT_UNREACHABLE`] although something was printed.
    pub offline: bool,
}

/// Exit status: the command did what it was asked.
pub const EXIT_OK: u8 = 0;
/// Exit status: the command failed or was refused, or a verdict was negative.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: `transcript verify` could not check at all.
pub const EXIT_CANNOT_CHECK: u8 = 2;
/// Exit status: the relay could not be reached (what was printed, if anything, is local).
pub const EXIT_UNREACHABLE: u8 = 3;

impl Output {
    /// An output that exits with success.
    pub fn new(text: impl Into<String>, json: serde_json::Value) -> Self {
        Self {
            text: text.into(),
            json,
            failed: false,
            warnings: Vec::new(),
            offline: false,
        }
    }

    /// Adds a warning.
    #[must_use]
    pub fn warn(mut self, w: impl Into<String>) -> Self {
        self.warnings.push(w.into());
        self
    }

    /// The exit status this output ends the process with.
    pub fn status(&self) -> u8 {
        if self.failed {
            EXIT_FAILED
        } else if self.offline {
            EXIT_UNREACHABLE
        } else {
            EXIT_OK
        }
    }

    /// The one `--json` document: the command's object with `ok` and `warnings` added (a
    /// value that is not an object is put under `result`).
    pub fn json_document(&self) -> serde_json::Value {
        let mut doc = match &self.json {
            serde_json::Value::Object(m) => m.clone(),
            other => {
                let mut m = serde_json::Map::new();
                m.insert("result".into(), other.clone());
                m
            }
        };
        doc.insert("ok".into(), (!self.failed && !self.offline).into());
        doc.insert("warnings".into(), self.warnings.clone().into());
        serde_json::Value::Object(doc)
    }
}

/// Renders one history line for a terminal.
pub fn render_line(line: &HistoryLine) -> String {
    match line {
        HistoryLine::Gap {
            epoch,
            sender,
            counters,
            requests,
        } => {
            let count: u64 = counters
                .iter()
                .map(|(a, b)| b.saturating_sub(*a).saturating_add(1))
                .fold(0, u64::saturating_add);
            let list = counters
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}–{b}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            let messages = counted(count, "message", "messages");
            match requests {
                None => format!(
                    "  ⋯ gap: {messages} from {sender} in epoch {epoch} never arrived (counters {list})"
                ),
                Some(n) => format!(
                    "  ⋯ gap: {messages} from {sender} in epoch {epoch} not delivered after {} (counters {list})",
                    counted(u64::from(*n), "request", "requests")
                ),
            }
        }
        HistoryLine::Withheld {
            from,
            to,
            requests,
            claimed,
            missing,
        } => {
            let which = if from == to {
                format!("#{from}")
            } else {
                format!("#{from}–#{to}")
            };
            let items = counted(to.saturating_sub(*from).saturating_add(1), "item", "items");
            let lie = match claimed {
                Some(Claim::Epoch(e)) => {
                    format!(" (the relay claimed they were of epoch {e}, which you read)")
                }
                Some(Claim::ConversationLevel) => {
                    " (the relay claimed they were consents or notices, which you read)".into()
                }
                None => String::new(),
            };
            let line = match (missing, requests) {
                // A summary run (more holes than a client keeps one by one): its span also
                // holds items that arrived, so it says how many are missing at least, and where;
                // it was given up when made, not asked for that many times.
                (Some(n), _) => format!(
                    "  !! at least {} of the conversation WITHHELD somewhere in relay {which} (too many holes to list one by one; not asked for again): epochs, hand-offs, consents, notices or messages",
                    counted(*n, "item", "items")
                ),
                (None, None) => format!(
                    "  !! {items} of the conversation never arrived (relay {which}): an epoch, hand-off, consent, notice or message withheld; asking again"
                ),
                (None, Some(n)) => format!(
                    "  !! {items} of the conversation WITHHELD (relay {which}), not delivered after {}: an epoch, hand-off, consent, notice or message",
                    counted(u64::from(*n), "request", "requests")
                ),
            };
            format!("{line}{lie}")
        }
        HistoryLine::Item {
            entry,
            delivery,
            number,
        } => item(entry, *delivery, *number),
    }
}

/// What an agent reads where a customer reads the org's policy (the chat's banner, the top of
/// `history`): the conversation is end-to-end encrypted, and what the customer was told.
pub(crate) fn agent_summary(customer: &str, org: &str) -> String {
    format!(
        "This conversation is end-to-end encrypted: the relay cannot read it. {customer} was \
         told when {org}'s owner may open it under {org}'s policy; every opening is recorded in \
         the audit log and {customer} is told of it."
    )
}

/// One timeline item: a message starts with the reader's number (`#3`) when the history gave
/// one; other lines start with no number (the relay's sequence numbers skip for the reader).
fn item(entry: &LogEntry, delivery: Option<&str>, number: Option<u64>) -> String {
    let at = number.map(|n| format!("#{n} ")).unwrap_or_default();
    match entry {
        LogEntry::Message {
            stored_at,
            sender,
            text,
            epoch,
            kind: sealdesk_protocol::message::ContentKind::Status,
            ..
        } => format!(
            "{at}{} ── {sender} set the status to {text} ──   [verified, epoch {epoch}]",
            fmt_time(*stored_at)
        ),
        LogEntry::Message {
            stored_at,
            sender,
            text,
            epoch,
            ..
        } => {
            let d = match delivery {
                Some("read") => "  ✓✓ read",
                Some("delivered") => "  ✓ delivered",
                Some(_) => "  · sent",
                None => "",
            };
            format!(
                "{at}{} {sender}: {text}   [verified, epoch {epoch}]{d}",
                fmt_time(*stored_at)
            )
        }
        LogEntry::Rejected {
            epoch,
            sender,
            reason,
            ..
        } => format!("{at}✗ message from {sender} (epoch {epoch}) NOT SHOWN: {reason}"),
        LogEntry::Epoch {
            epoch,
            members,
            creator,
            status,
            ..
        } => match status {
            EpochStatus::Refused(r) => {
                format!("{at}!! epoch {epoch} REFUSED: {r}; its messages will not be shown")
            }
            EpochStatus::NotMember => format!(
                "{at}── epoch {epoch} opened by {creator} for {}; you are not a member ──",
                members.join(", ")
            ),
            _ => format!(
                "{at}── epoch {epoch} opened by {creator}: {} (verified, escrow recomputed) ──",
                members.join(", ")
            ),
        },
        LogEntry::HandOff {
            from,
            to,
            epochs,
            outcome,
            ..
        } => {
            let what = format!(
                "{from} passed {to} the earlier messages ({})",
                epoch_list(epochs)
            );
            match outcome {
                HandOffOutcome::ForOther => format!("{at}── {what} ──"),
                HandOffOutcome::Opened { epochs: opened } if opened == epochs => {
                    format!("{at}── {what}: opened, you can read them now ──")
                }
                HandOffOutcome::Opened { epochs: opened } => format!(
                    "{at}── {what}: opened, {} now readable ──",
                    match opened.as_slice() {
                        [_] => format!("{} is", epoch_list(opened)),
                        _ => format!("{} are", epoch_list(opened)),
                    }
                ),
                HandOffOutcome::Refused { reason } => {
                    format!("{at}── {what}: refused: {reason} ──")
                }
            }
        }
        LogEntry::Receipt { sender, .. } => format!("{at}(read receipt from {sender})"),
        LogEntry::Notice {
            stored_at,
            text,
            verified,
            index,
            ..
        } => format!(
            "{at}!! NOTICE {} {text} [audit log #{index}{}] !!",
            fmt_time(*stored_at),
            if *verified { ", signed" } else { "" }
        ),
    }
}

/// Where a message just sent stands, in the numbers `history` shows: `#4` (the reader's number,
/// which `attachment save --message` takes), or the relay's sequence number spelled out when the
/// history has no number for it.
pub fn sent_at(number: Option<u64>, seq: u64) -> String {
    match number {
        Some(n) => format!("#{n} in history"),
        None => format!("relay seq {seq}"),
    }
}

/// `n` with the singular or the plural noun: "1 message", "3 messages".
pub fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Epoch numbers in words: "epoch 0", "epochs 0 and 1", "epochs 0, 1 and 2".
fn epoch_list(epochs: &[u32]) -> String {
    match epochs {
        [] => "no epoch".to_owned(),
        [one] => format!("epoch {one}"),
        [init @ .., last] => format!(
            "epochs {} and {last}",
            init.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use sealdesk_client::account::LogEntry;
    use sealdesk_client::client::HistoryLine;
    use sealdesk_client::handoff::HandOffOutcome;

    use super::render_line;

    /// A summary run past the holes' bound says how many items are missing at least and
    /// where, not how many requests were made (it was given up when made).
    #[test]
    fn a_summary_of_holes_says_at_least_how_many() {
        let line = render_line(&HistoryLine::Withheld {
            from: 10,
            to: 900,
            requests: Some(3),
            claimed: None,
            missing: Some(450),
        });
        assert_eq!(
            line,
            "  !! at least 450 items of the conversation WITHHELD somewhere in relay #10–#900 (too \
             many holes to list one by one; not asked for again): epochs, hand-offs, consents, \
             notices or messages"
        );
    }

    fn hand_off(epochs: Vec<u32>, outcome: HandOffOutcome) -> String {
        render_line(&HistoryLine::Item {
            entry: LogEntry::HandOff {
                seq: 9,
                from: "alice".to_owned(),
                to: "dave".to_owned(),
                epochs,
                outcome,
            },
            delivery: None,
            number: None,
        })
    }

    /// Each outcome's wording, pinned: someone else's hand-off adds nothing, an opened one
    /// says so in words (no `[0, 1]`), a refused one gives the reason.
    #[test]
    fn a_hand_off_reads_in_plain_words() {
        assert_eq!(
            hand_off(vec![0], HandOffOutcome::ForOther),
            "── alice passed dave the earlier messages (epoch 0) ──"
        );
        assert_eq!(
            hand_off(vec![0, 1], HandOffOutcome::Opened { epochs: vec![0, 1] }),
            "── alice passed dave the earlier messages (epochs 0 and 1): opened, you can read them now ──"
        );
        assert_eq!(
            hand_off(vec![0, 1, 2], HandOffOutcome::Opened { epochs: vec![1, 2] }),
            "── alice passed dave the earlier messages (epochs 0, 1 and 2): opened, epochs 1 and 2 are now readable ──"
        );
        assert_eq!(
            hand_off(vec![0, 1], HandOffOutcome::Opened { epochs: vec![1] }),
            "── alice passed dave the earlier messages (epochs 0 and 1): opened, epoch 1 is now readable ──"
        );
        assert_eq!(
            hand_off(
                vec![0, 1, 2],
                HandOffOutcome::Refused {
                    reason: "not signed".to_owned()
                }
            ),
            "── alice passed dave the earlier messages (epochs 0, 1 and 2): refused: not signed ──"
        );
    }

    /// A message shows the reader's number, never the relay's sequence number.
    #[test]
    fn a_message_shows_the_readers_number() {
        let line = render_line(&HistoryLine::Item {
            entry: LogEntry::Rejected {
                seq: 17,
                epoch: 1,
                sender: "carol".to_owned(),
                reason: "bad signature".to_owned(),
            },
            delivery: None,
            number: Some(3),
        });
        assert_eq!(
            line,
            "#3 ✗ message from carol (epoch 1) NOT SHOWN: bad signature"
        );
    }

    #[test]
    fn a_gap_counts_in_words() {
        let gap = |counters: Vec<(u64, u64)>, requests| {
            render_line(&HistoryLine::Gap {
                epoch: 1,
                sender: "carol".to_owned(),
                counters,
                requests,
            })
        };
        assert_eq!(
            gap(vec![(4, 4)], None),
            "  ⋯ gap: 1 message from carol in epoch 1 never arrived (counters 4)"
        );
        assert_eq!(
            gap(vec![(1, 1), (4, 6)], Some(3)),
            "  ⋯ gap: 4 messages from carol in epoch 1 not delivered after 3 requests (counters 1, 4–6)"
        );
    }
}
