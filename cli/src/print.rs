//! How things are printed: a command's [`Output`] (text for people, JSON for scripts) and one
//! history line for a terminal ([`render_line`]), shared by the commands, the chat and the demo.

use sealdesk_client::account::{EpochStatus, LogEntry};
use sealdesk_client::client::HistoryLine;
use sealdesk_client::fmt_time;

/// What a command prints: text for people, JSON for scripts.
#[derive(Debug)]
pub struct Output {
    /// The text printed without `--json` (nothing if empty).
    pub text: String,
    /// The value printed with `--json`.
    pub json: serde_json::Value,
    /// Print the output as usual, then exit with a failure status (a negative verdict).
    pub failed: bool,
}

impl Output {
    /// An output that exits with success.
    pub fn new(text: impl Into<String>, json: serde_json::Value) -> Self {
        Self {
            text: text.into(),
            json,
            failed: false,
        }
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
            match requests {
                None => format!(
                    "  ⋯ gap: {count} message(s) from {sender} in epoch {epoch} never arrived (counters {list})"
                ),
                Some(n) => format!(
                    "  ⋯ gap: {count} message(s) from {sender} in epoch {epoch} not delivered after {n} requests (counters {list})"
                ),
            }
        }
        HistoryLine::Item { entry, delivery } => match entry {
            LogEntry::Message {
                seq,
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
                    "#{seq} {} {sender}: {text}   [verified, epoch {epoch}]{d}",
                    fmt_time(*stored_at)
                )
            }
            LogEntry::Rejected {
                seq,
                epoch,
                sender,
                reason,
            } => format!("#{seq} ✗ message from {sender} (epoch {epoch}) NOT SHOWN: {reason}"),
            LogEntry::Epoch {
                seq,
                epoch,
                members,
                creator,
                status,
                ..
            } => match status {
                EpochStatus::Refused(r) => {
                    format!("#{seq} !! epoch {epoch} REFUSED: {r}; its messages will not be shown")
                }
                EpochStatus::NotMember => format!(
                    "#{seq} ── epoch {epoch} opened by {creator} for {}; you are not a member ──",
                    members.join(", ")
                ),
                _ => format!(
                    "#{seq} ── epoch {epoch} opened by {creator}: {} (verified, escrow recomputed) ──",
                    members.join(", ")
                ),
            },
            LogEntry::HandOff {
                seq,
                from,
                to,
                epochs,
                outcome,
            } => format!(
                "#{seq} ── history hand-off of epochs {epochs:?} from {from} to {to}: {outcome} ──"
            ),
            LogEntry::Receipt { seq, sender, upto } => {
                format!("#{seq} (read receipt from {sender} up to #{upto})")
            }
            LogEntry::Notice {
                seq,
                stored_at,
                text,
                verified,
                index,
                ..
            } => format!(
                "#{seq} !! NOTICE {} {text} [audit log #{index}{}] !!",
                fmt_time(*stored_at),
                if *verified { ", signed" } else { "" }
            ),
        },
    }
}
