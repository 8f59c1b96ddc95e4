//! What the chat shows: the engine (`super::engine`) turns the relay's pushes and the user's
//! commands into [`Shown`] values, and a [`Sink`] presents them — as text lines
//! ([`super::line::TextSink`]), as JSON lines ([`super::line::JsonSink`], `chat --json`) or in
//! the terminal UI ([`super::tui`]). Nothing here talks to the relay or the terminal.

use sealdesk_client::account::LogEntry;
use sealdesk_client::client::HistoryLine;
use sealdesk_client::quota::quota_warning;
use sealdesk_protocol::{ids::ConversationId, message::ContentKind, wire::ByteQuota};
use serde_json::{Value, json};

use crate::print::render_line;

/// One thing the chat shows.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Shown {
    /// The chat started for this account.
    Welcome {
        /// The account's name.
        name: String,
        /// Its role, as shown (`customer`, `agent`, …).
        role: String,
    },
    /// The conversations, with unread counts and status.
    Conversations {
        /// One row per conversation, in `/list` order (numbered from 1).
        rows: Vec<ConvRow>,
        /// The current conversation.
        current: Option<ConversationId>,
        /// Whether the user asked for it (`/list`, the start): a line display prints it only
        /// then; the terminal UI keeps its list current with every one.
        asked: bool,
    },
    /// A conversation became the current one: its header, banner and latest lines.
    Selected {
        /// The conversation.
        conversation: ConversationId,
        /// Its org.
        org: String,
        /// Its customer.
        customer: String,
        /// Its agent.
        agent: String,
        /// The encryption banner, the first time this conversation is shown in this chat.
        banner: Option<String>,
        /// The latest history lines (at most [`super::RECENT_LINES`]).
        recent: Vec<HistoryLine>,
    },
    /// The whole history of the current conversation (`/history`).
    History {
        /// The conversation.
        conversation: ConversationId,
        /// Its lines.
        lines: Vec<HistoryLine>,
    },
    /// A timeline line: a message (received, or sent by this account), an epoch, a hand-off,
    /// a status, a notice, a gap.
    Line {
        /// Its conversation.
        conversation: ConversationId,
        /// Whether that is the current conversation.
        here: bool,
        /// The line.
        line: HistoryLine,
    },
    /// A timeline line shown before that now reads differently (a release notice another
    /// trustee's entry joined, a notice the witnesses confirmed): it has the sequence number
    /// of the line it replaces. The window replaces that line in place; the line displays
    /// print it again as an update (`--json`: `"update": true`).
    Updated {
        /// Its conversation.
        conversation: ConversationId,
        /// Whether that is the current conversation.
        here: bool,
        /// The line as it now reads.
        line: HistoryLine,
    },
    /// A conversation was assigned to this agent.
    Assigned {
        /// The conversation.
        conversation: ConversationId,
        /// Its customer.
        customer: String,
    },
    /// A member received (`read` false) or read this account's latest message.
    Receipt {
        /// The conversation.
        conversation: ConversationId,
        /// The member.
        member: String,
        /// Read rather than delivered.
        read: bool,
        /// The sequence number of the message it covers (and every earlier one).
        seq: u64,
    },
    /// A member started or stopped typing.
    Typing {
        /// The conversation.
        conversation: ConversationId,
        /// Whether that is the current conversation.
        here: bool,
        /// The member.
        member: String,
        /// Typing, or stopped.
        typing: bool,
    },
    /// Something the user should know, from the library.
    Warning {
        /// Its conversation, if it is about one.
        conversation: Option<ConversationId>,
        /// Whether that is the current conversation.
        here: bool,
        /// The text.
        text: String,
    },
    /// The relay's warning ahead of a stored-bytes quota, with a message or an attachment
    /// this account sent (`--json`: a `quota_warning` event).
    QuotaWarning {
        /// The conversation it was sent in.
        conversation: ConversationId,
        /// Whether that is the current conversation.
        here: bool,
        /// Whose quota, how much of how much.
        quota: ByteQuota,
    },
    /// A pinned key changed: sending to `name` is blocked until the user accepts it.
    KeyChange {
        /// The conversation it was found in, if any.
        conversation: Option<ConversationId>,
        /// Whose key.
        name: String,
        /// What to do about it.
        text: String,
    },
    /// The connection to the relay changed.
    Connection(Connection),
    /// A line could not be sent now and is kept to send once the relay is back.
    Kept {
        /// The conversation it was typed in.
        conversation: ConversationId,
        /// Typed while offline (rather than interrupted while sending).
        offline: bool,
        /// The line, as typed: shown as pending until it is sent.
        text: String,
    },
    /// A line typed, or kept to send once the relay was back, that the relay refused (the
    /// error is shown before this): it is not pending, and the terminal UI hands it back in
    /// the input line.
    NotSent {
        /// The conversation it was typed in.
        conversation: ConversationId,
        /// The line.
        text: String,
    },
    /// An attachment's upload: started (`seq` none) or sent.
    Upload {
        /// The conversation.
        conversation: ConversationId,
        /// The file's name.
        name: String,
        /// Its size in bytes.
        size: u64,
        /// Its chunks.
        chunks: u64,
        /// Once sent: the message's sequence number.
        seq: Option<u64>,
    },
    /// An upload's chunks the relay holds, after each chunk.
    UploadProgress {
        /// The conversation.
        conversation: ConversationId,
        /// The file's name.
        name: String,
        /// Chunks the relay holds.
        sent_chunks: u64,
        /// Chunks the file has.
        total_chunks: u64,
        /// Bytes of the file those chunks cover.
        bytes: u64,
    },
    /// An upload was cancelled (`/cancel`, Ctrl-C, `/quit`): nothing was sent in
    /// the conversation; `/attach` of the same file resumes it.
    UploadCancelled {
        /// The conversation.
        conversation: ConversationId,
        /// The file's name.
        name: String,
        /// Chunks the relay holds.
        sent_chunks: u64,
        /// Chunks the file has.
        total_chunks: u64,
    },
    /// An answer to a command (help, "opened …", "transferred …").
    Info(String),
    /// A command failed; the chat goes on.
    Error {
        /// The stable code (as in a command's `--json` error, README "Exit statuses and errors").
        code: String,
        /// The message.
        message: String,
    },
    /// The chat ended.
    Bye,
}

/// The state of the connection to the relay.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Connection {
    /// Lost; reconnecting with backoff.
    Lost {
        /// Why.
        why: String,
        /// The wait before the next reconnection attempt.
        retry_in: std::time::Duration,
        /// The attempts that did not get the chat back since it was last back (refused, lost
        /// again before catching up, or lost right after catching up, before the relay
        /// answered or pushed anything); the wait doubles with each.
        attempts: u32,
    },
    /// Back, catching up.
    Reconnected,
    /// The input ended and the relay did not come back in time: `unsent` lines were not sent.
    GaveUp {
        /// Lines not sent.
        unsent: usize,
    },
    /// The user left while offline: `unsent` lines were not sent.
    LeftOffline {
        /// Lines not sent.
        unsent: usize,
    },
}

/// One conversation in the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvRow {
    /// The conversation.
    pub id: ConversationId,
    /// Its org.
    pub org: String,
    /// The other side: the agent for a customer, the customer for an agent.
    pub peer: String,
    /// Its customer.
    pub customer: String,
    /// Its agent (after a transfer, the agent it went to).
    pub agent: String,
    /// Unread messages.
    pub unread: usize,
    /// open, waiting or resolved.
    pub status: String,
    /// This account transferred it to [`ConvRow::agent`].
    pub transferred: bool,
    /// It holds a notice not yet confirmed by the org's trustees ("NOT YET CONFIRMED"),
    /// which the chat judges again every minute.
    pub unconfirmed: bool,
}

/// Presents what the chat shows.
pub trait Sink {
    /// Shows one thing.
    ///
    /// # Errors
    /// Writing to the output failed.
    fn show(&mut self, shown: Shown) -> std::io::Result<()>;

    /// Makes what was shown visible (before the chat waits).
    ///
    /// # Errors
    /// Writing to the output failed.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `sent` of `total` chunks in whole percent.
pub fn percent(sent: u64, total: u64) -> u64 {
    sent.saturating_mul(100) / total.max(1)
}

/// How an upload's progress reads: `uploading NAME 3/12 chunks (25%)`.
pub fn progress_text(name: &str, sent: u64, total: u64) -> String {
    format!(
        "uploading {name} {sent}/{total} chunks ({}%)",
        percent(sent, total)
    )
}

/// How a cancelled upload reads.
pub fn cancelled_text(name: &str, sent: u64, total: u64) -> String {
    format!(
        "upload of {name} cancelled at {sent}/{total} chunks; nothing was sent. /attach the same \
         file to resume it"
    )
}

/// The first 8 digits of a conversation id, as the chat shows other conversations.
pub fn short(id: &ConversationId) -> String {
    let s = id.to_string();
    s.get(..8).unwrap_or(&s).to_owned()
}

impl Connection {
    /// The name `chat --json` gives the state.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Lost { .. } => "lost",
            Self::Reconnected => "reconnected",
            Self::GaveUp { .. } => "gave_up",
            Self::LeftOffline { .. } => "left_offline",
        }
    }
}

impl Shown {
    /// The `chat --json` line: one object with `event`, `ok`, `warnings` and the event's own
    /// fields (README, "`chat --json`").
    pub fn to_json(&self) -> Value {
        let (event, mut fields) = match self {
            Self::Welcome { name, role } => ("ready", json!({"account": name, "role": role})),
            Self::Conversations { rows, current, .. } => (
                "conversations",
                json!({
                    "current": current.map(|c| c.to_string()),
                    "conversations": rows.iter().map(ConvRow::to_json).collect::<Vec<_>>(),
                }),
            ),
            Self::Selected {
                conversation,
                org,
                customer,
                agent,
                banner,
                recent,
            } => (
                "selected",
                json!({
                    "conversation": conversation.to_string(), "org": org,
                    "customer": customer, "agent": agent, "banner": banner,
                    "recent": recent.iter().map(line_json).collect::<Vec<_>>(),
                }),
            ),
            Self::History {
                conversation,
                lines,
            } => (
                "history",
                json!({
                    "conversation": conversation.to_string(),
                    "lines": lines.iter().map(line_json).collect::<Vec<_>>(),
                }),
            ),
            Self::Line {
                conversation, line, ..
            } => {
                let mut v = line_json(line);
                let event = line_event(line);
                if let Value::Object(m) = &mut v {
                    m.insert("conversation".into(), conversation.to_string().into());
                }
                (event, v)
            }
            Self::Updated {
                conversation, line, ..
            } => {
                let mut v = line_json(line);
                if let Value::Object(m) = &mut v {
                    m.insert("conversation".into(), conversation.to_string().into());
                    m.insert("update".into(), true.into());
                }
                (line_event(line), v)
            }
            Self::Assigned {
                conversation,
                customer,
            } => (
                "notice",
                json!({
                    "kind": "assigned", "conversation": conversation.to_string(),
                    "customer": customer,
                    "text": format!("new conversation {conversation} from {customer} assigned to you"),
                }),
            ),
            Self::Receipt {
                conversation,
                member,
                read,
                seq,
            } => (
                "receipt",
                json!({
                    "conversation": conversation.to_string(), "member": member,
                    "receipt": if *read { "read" } else { "delivered" }, "seq": seq,
                }),
            ),
            Self::Typing {
                conversation,
                member,
                typing,
                ..
            } => (
                "typing",
                json!({"conversation": conversation.to_string(), "member": member, "typing": typing}),
            ),
            Self::Warning {
                conversation, text, ..
            } => (
                "notice",
                json!({
                    "kind": "warning", "conversation": conversation.map(|c| c.to_string()),
                    "text": text,
                }),
            ),
            Self::QuotaWarning {
                conversation,
                quota,
                ..
            } => (
                "quota_warning",
                json!({
                    "conversation": conversation.to_string(), "scope": quota.scope,
                    "used": quota.used, "most": quota.most,
                    "percent": quota.used.saturating_mul(100) / quota.most.max(1),
                    "text": quota_warning(quota),
                }),
            ),
            Self::KeyChange {
                conversation,
                name,
                text,
            } => (
                "key_change",
                json!({
                    "conversation": conversation.map(|c| c.to_string()), "name": name,
                    "text": text,
                }),
            ),
            Self::Connection(c) => {
                let mut v = json!({"state": c.name()});
                if let (
                    Value::Object(m),
                    Connection::Lost {
                        why,
                        retry_in,
                        attempts,
                    },
                ) = (&mut v, c)
                {
                    m.insert("reason".into(), why.clone().into());
                    let ms = u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX);
                    m.insert("retry_in_ms".into(), ms.into());
                    m.insert("attempts".into(), (*attempts).into());
                }
                if let (
                    Value::Object(m),
                    Connection::GaveUp { unsent } | Connection::LeftOffline { unsent },
                ) = (&mut v, c)
                {
                    m.insert("unsent".into(), (*unsent).into());
                }
                ("connection", v)
            }
            Self::Kept {
                conversation,
                offline,
                text,
            } => (
                "notice",
                json!({
                    "kind": "kept", "conversation": conversation.to_string(),
                    "offline": offline, "message": text,
                    "text": "kept: sent once the relay is back",
                }),
            ),
            Self::NotSent { conversation, text } => (
                "notice",
                json!({
                    "kind": "not_sent", "conversation": conversation.to_string(),
                    "message": text, "text": "not sent",
                }),
            ),
            Self::Upload {
                conversation,
                name,
                size,
                chunks,
                seq,
            } => (
                "upload",
                json!({
                    "conversation": conversation.to_string(), "name": name, "size": size,
                    "chunks": chunks, "state": if seq.is_some() { "sent" } else { "uploading" },
                    "seq": seq,
                }),
            ),
            Self::UploadProgress {
                conversation,
                name,
                sent_chunks,
                total_chunks,
                bytes,
            } => (
                "upload_progress",
                json!({
                    "conversation": conversation.to_string(), "name": name,
                    "sent_chunks": sent_chunks, "total_chunks": total_chunks, "bytes": bytes,
                    "percent": percent(*sent_chunks, *total_chunks),
                }),
            ),
            Self::UploadCancelled {
                conversation,
                name,
                sent_chunks,
                total_chunks,
            } => (
                "upload",
                json!({
                    "conversation": conversation.to_string(), "name": name,
                    "state": "cancelled", "sent_chunks": sent_chunks,
                    "total_chunks": total_chunks,
                }),
            ),
            Self::Info(text) => ("notice", json!({"kind": "info", "text": text})),
            Self::Error { code, message } => (
                "error",
                json!({"error": {"code": code, "message": message}}),
            ),
            Self::Bye => ("bye", json!({})),
        };
        if let Value::Object(m) = &mut fields {
            m.insert("event".into(), event.into());
            m.insert("ok".into(), (!matches!(self, Self::Error { .. })).into());
            m.insert("warnings".into(), Value::Array(Vec::new()));
        }
        fields
    }
}

impl ConvRow {
    fn to_json(&self) -> Value {
        json!({
            "conversation": self.id.to_string(), "org": self.org, "peer": self.peer,
            "customer": self.customer, "agent": self.agent, "unread": self.unread,
            "status": self.status, "transferred_out": self.transferred,
            "unconfirmed_notices": self.unconfirmed,
        })
    }
}

/// Which event a timeline line is: a message, a status, or a notice (anything else).
fn line_event(line: &HistoryLine) -> &'static str {
    match line {
        HistoryLine::Item {
            entry:
                LogEntry::Message {
                    kind: ContentKind::Status,
                    ..
                },
            ..
        } => "status",
        HistoryLine::Item {
            entry: LogEntry::Message { .. },
            ..
        } => "message",
        _ => "notice",
    }
}

/// A timeline line as JSON: the fields `history --json` gives it (`line`, `entry`, `number`,
/// `delivery`) and `text`, the line as the text chat shows it.
fn line_json(line: &HistoryLine) -> Value {
    let mut v = serde_json::to_value(line).unwrap_or(Value::Null);
    crate::json_hex::ids_in_hex(&mut v);
    if let Value::Object(m) = &mut v {
        m.insert("text".into(), render_line(line).into());
        let kind = match line {
            HistoryLine::Item { entry, .. } => entry_kind(entry),
            HistoryLine::Gap { .. } => "gap",
            HistoryLine::Withheld { .. } => "withheld",
        };
        m.insert("kind".into(), kind.into());
    }
    v
}

/// A short name for a timeline entry's kind.
fn entry_kind(entry: &LogEntry) -> &'static str {
    match entry {
        LogEntry::Message {
            kind: ContentKind::Status,
            ..
        } => "status",
        LogEntry::Message {
            kind: ContentKind::Attachment,
            ..
        } => "attachment",
        LogEntry::Message { .. } => "text",
        LogEntry::Rejected { .. } => "rejected",
        LogEntry::Epoch { .. } => "epoch",
        LogEntry::HandOff { .. } => "hand_off",
        LogEntry::Receipt { .. } => "receipt",
        LogEntry::Notice { .. } => "audit",
    }
}
