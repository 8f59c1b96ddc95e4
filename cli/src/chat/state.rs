//! The terminal UI's state and its updates, with no terminal: what the chat showed
//! ([`ChatState::apply`]) and what the user typed ([`ChatState::key`]) change a [`ChatState`],
//! which [`super::tui::draw`] draws. Unit tests drive it with events and keys.

use std::collections::{BTreeSet, HashMap};

use sealdesk_client::account::LogEntry;
use sealdesk_client::attachment::human_size;
use sealdesk_client::client::HistoryLine;
use sealdesk_client::quota::quota_warning;
use sealdesk_protocol::{ids::ConversationId, message::ContentKind};

use super::event::{Connection, ConvRow, Shown, cancelled_text, progress_text};
use super::line::connection_text;
use crate::print::render_line;

/// How many lines the message pane keeps (older ones are dropped; `/history` shows them all).
pub const PANE_LIMIT: usize = 2000;

/// A key the user pressed, as the chat understands it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// A character typed.
    Char(char),
    /// Enter: send the line.
    Enter,
    /// Delete the character before the cursor.
    Backspace,
    /// Delete the character under the cursor.
    Delete,
    /// Cursor left.
    Left,
    /// Cursor right.
    Right,
    /// Cursor to the start of the line.
    Home,
    /// Cursor to the end of the line.
    End,
    /// Scroll the message pane up a page.
    PageUp,
    /// Scroll the message pane down a page.
    PageDown,
    /// Ctrl-C or Ctrl-D: leave (while a file uploads: cancel the upload).
    Quit,
}

/// How a line of the message pane looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// A message of another member.
    Theirs,
    /// A message of this account.
    Mine,
    /// An epoch, a hand-off, a status, a notice.
    Event,
    /// The chat's own answers (help, "opened …").
    Info,
    /// An error or a refused message.
    Alarm,
}

/// How far one of this account's messages got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Delivery {
    /// Typed while the relay could not be reached: kept, sent once it is back.
    Pending,
    /// Stored by the relay.
    Sent,
    /// Received by another member.
    Delivered,
    /// Read by another member.
    Read,
}

/// One line of the message pane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaneLine {
    /// The relay's sequence number, for timeline items.
    pub seq: Option<u64>,
    /// The text, as the line display shows it (without the delivery mark).
    pub text: String,
    /// How it looks.
    pub tone: Tone,
    /// For this account's messages: how far it got.
    pub delivery: Option<Delivery>,
}

impl PaneLine {
    fn info(text: impl Into<String>, tone: Tone) -> Self {
        Self {
            seq: None,
            text: text.into(),
            tone,
            delivery: None,
        }
    }

    /// The text with its delivery mark.
    pub fn shown(&self) -> String {
        match self.delivery {
            None => self.text.clone(),
            Some(Delivery::Pending) => {
                format!("{}  … pending: sent once the relay is back", self.text)
            }
            Some(Delivery::Sent) => format!("{}  · sent", self.text),
            Some(Delivery::Delivered) => format!("{}  ✓ delivered", self.text),
            Some(Delivery::Read) => format!("{}  ✓✓ read", self.text),
        }
    }
}

/// How a notice of a conversation not on screen came to read since it was last shown (the
/// list marks the conversation until it is selected, where the line reads anew).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NoticeChange {
    /// Confirmed by the org's trustees (verified now).
    Confirmed,
    /// Reworded otherwise: found not genuine, or a release another trustee joined.
    Changed,
}

/// Whether the relay is reachable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Connected.
    Online,
    /// Lost; the chat is reconnecting.
    Reconnecting(String),
}

/// Everything the terminal UI shows.
#[derive(Clone, Debug)]
pub struct ChatState {
    /// This account's name.
    pub me: String,
    /// Its role.
    pub role: String,
    /// The conversation list.
    pub conversations: Vec<ConvRow>,
    /// The current conversation.
    pub current: Option<ConversationId>,
    /// The current conversation's header ("org · customer … · agent …").
    pub header: Option<String>,
    /// Banners, per conversation, shown above its messages.
    pub banners: HashMap<ConversationId, String>,
    /// Changed keys per conversation (`None`: found outside one), each blocking sending.
    pub key_changes: HashMap<Option<ConversationId>, BTreeSet<String>>,
    /// The key-change texts, by name.
    pub key_change_text: HashMap<String, String>,
    /// The message pane (the current conversation's lines and the chat's answers).
    pub pane: Vec<PaneLine>,
    /// Who is typing in the current conversation.
    pub typing: BTreeSet<String>,
    /// The connection.
    pub link: Link,
    /// An upload in progress.
    pub upload: Option<String>,
    /// The last error, shown in the status line until the next line is sent.
    pub error: Option<String>,
    /// The input line.
    pub input: String,
    /// The cursor in the input line, in characters.
    pub cursor: usize,
    /// Lines scrolled up from the bottom of the pane.
    pub scroll: usize,
    /// The pane's height at the last drawing (a page for PageUp and PageDown).
    pub page: usize,
    /// Whether the others were told this account is typing the line in the input.
    pub typing_told: bool,
    /// Conversations not on screen whose notices read differently since they were last shown.
    pub notices_changed: HashMap<ConversationId, NoticeChange>,
}

impl Default for ChatState {
    fn default() -> Self {
        Self {
            me: String::new(),
            role: String::new(),
            conversations: Vec::new(),
            current: None,
            header: None,
            banners: HashMap::new(),
            key_changes: HashMap::new(),
            key_change_text: HashMap::new(),
            pane: Vec::new(),
            typing: BTreeSet::new(),
            link: Link::Online,
            upload: None,
            error: None,
            input: String::new(),
            cursor: 0,
            scroll: 0,
            page: 10,
            typing_told: false,
            notices_changed: HashMap::new(),
        }
    }
}

/// A timeline line for the pane.
fn pane_line(line: &HistoryLine) -> PaneLine {
    let (seq, tone, delivery) = match line {
        // A status is an event of the conversation, whoever set it.
        HistoryLine::Item {
            entry:
                LogEntry::Message {
                    seq,
                    kind: ContentKind::Status,
                    ..
                },
            ..
        } => (Some(*seq), Tone::Event, None),
        HistoryLine::Item {
            entry: LogEntry::Message { seq, mine, .. },
            delivery,
            ..
        } => (
            Some(*seq),
            if *mine { Tone::Mine } else { Tone::Theirs },
            match *delivery {
                Some("read") => Some(Delivery::Read),
                Some("delivered") => Some(Delivery::Delivered),
                Some(_) => Some(Delivery::Sent),
                None if *mine => Some(Delivery::Sent),
                None => None,
            },
        ),
        HistoryLine::Item {
            entry: LogEntry::Rejected { seq, .. },
            ..
        } => (Some(*seq), Tone::Alarm, None),
        HistoryLine::Item { entry, .. } => (Some(entry.seq()), Tone::Event, None),
        HistoryLine::Gap { .. } | HistoryLine::Withheld { .. } => (None, Tone::Alarm, None),
    };
    let plain = match line {
        HistoryLine::Item { entry, number, .. } => render_line(&HistoryLine::Item {
            entry: entry.clone(),
            delivery: None,
            number: *number,
        }),
        gap @ (HistoryLine::Gap { .. } | HistoryLine::Withheld { .. }) => render_line(gap),
    };
    PaneLine {
        seq,
        text: plain,
        tone,
        delivery,
    }
}

/// How a line kept to send later shows in the pane (its mark says it is pending).
fn pending_text(me: &str, text: &str) -> String {
    format!("{me}: {text}")
}

/// The sender of a message line.
fn sender(line: &HistoryLine) -> Option<&str> {
    match line {
        HistoryLine::Item {
            entry: LogEntry::Message { sender, .. },
            ..
        } => Some(sender),
        _ => None,
    }
}

impl ChatState {
    /// Applies one thing the chat showed.
    pub fn apply(&mut self, shown: Shown) {
        match shown {
            Shown::Welcome { name, role } => {
                self.me = name;
                self.role = role;
            }
            Shown::Conversations { rows, current, .. } => {
                self.conversations = rows;
                self.current = current;
            }
            Shown::Selected {
                conversation,
                org,
                customer,
                agent,
                banner,
                recent,
            } => {
                self.current = Some(conversation);
                // Its notices read as they now are in the lines below.
                self.notices_changed.remove(&conversation);
                self.header = Some(format!(
                    "{org} · customer {customer} · agent {agent} · {conversation}"
                ));
                if let Some(b) = banner {
                    self.banners.insert(conversation, b);
                }
                self.pane = recent.iter().map(pane_line).collect();
                self.typing.clear();
                self.scroll = 0;
            }
            Shown::History { lines, .. } => {
                self.pane = lines.iter().map(pane_line).collect();
                self.scroll = 0;
            }
            Shown::Line {
                here: true, line, ..
            } => {
                if let Some(who) = sender(&line) {
                    self.typing.remove(who);
                }
                self.sent_pending(&line);
                self.push(pane_line(&line));
            }
            // Another conversation's line: its unread count in the list says so.
            Shown::Line { .. } => {}
            // The line it updates is replaced where it stands (see `push`).
            Shown::Updated {
                here: true, line, ..
            } => self.push(pane_line(&line)),
            // Another conversation's: its mark in the list says so until it is selected (its
            // history reads anew then). A change other than a confirmation outweighs one.
            Shown::Updated {
                conversation, line, ..
            } => {
                let change = match line {
                    HistoryLine::Item {
                        entry:
                            LogEntry::Notice {
                                verified: true,
                                unwitnessed: None,
                                ..
                            },
                        ..
                    } => NoticeChange::Confirmed,
                    _ => NoticeChange::Changed,
                };
                let mark = self.notices_changed.entry(conversation).or_insert(change);
                *mark = (*mark).max(change);
            }
            Shown::Assigned {
                conversation,
                customer,
            } => self.push(PaneLine::info(
                format!(
                    "new conversation {conversation} from {customer} assigned to you; /switch to it"
                ),
                Tone::Info,
            )),
            Shown::Receipt { read, seq, .. } => {
                let mark = if read {
                    Delivery::Read
                } else {
                    Delivery::Delivered
                };
                for l in &mut self.pane {
                    if l.tone == Tone::Mine
                        && l.seq.is_some_and(|s| s <= seq)
                        && l.delivery.is_none_or(|d| d < mark)
                    {
                        l.delivery = Some(mark);
                    }
                }
            }
            Shown::Typing {
                here: true,
                member,
                typing,
                ..
            } => {
                if typing {
                    self.typing.insert(member);
                } else {
                    self.typing.remove(&member);
                }
            }
            Shown::Typing { .. } => {}
            Shown::Warning { text, .. } => {
                self.push(PaneLine::info(format!("warning: {text}"), Tone::Alarm))
            }
            Shown::QuotaWarning { quota, .. } => self.push(PaneLine::info(
                format!("warning: {}", quota_warning(&quota)),
                Tone::Alarm,
            )),
            Shown::KeyChange {
                conversation,
                name,
                text,
            } => {
                self.key_change_text.insert(name.clone(), text);
                self.key_changes
                    .entry(conversation)
                    .or_default()
                    .insert(name);
            }
            Shown::Connection(c) => match c {
                Connection::Lost { why, .. } => self.link = Link::Reconnecting(why),
                Connection::Reconnected => self.link = Link::Online,
                other => self.push(PaneLine::info(connection_text(&other), Tone::Alarm)),
            },
            // The line itself, marked pending, where it will be once sent; only in the
            // conversation it was typed in.
            Shown::Kept {
                conversation, text, ..
            } if Some(conversation) == self.current => self.push(PaneLine {
                seq: None,
                text: pending_text(&self.me, &text),
                tone: Tone::Mine,
                delivery: Some(Delivery::Pending),
            }),
            Shown::Kept { .. } => {}
            Shown::NotSent { text, .. } => {
                self.drop_pending(&pending_text(&self.me, &text));
                // What was typed is not lost: back in the input line, unless the user is
                // already typing something else.
                if self.input.is_empty() {
                    self.cursor = text.chars().count();
                    self.input = text;
                }
            }
            Shown::Upload {
                name,
                size,
                chunks,
                seq: None,
                ..
            } => {
                self.upload = Some(format!(
                    "uploading {name} ({}, {chunks} chunk{})…",
                    human_size(size),
                    if chunks == 1 { "" } else { "s" }
                ));
            }
            Shown::Upload { .. } => self.upload = None,
            Shown::UploadProgress {
                name,
                sent_chunks,
                total_chunks,
                ..
            } => self.upload = Some(progress_text(&name, sent_chunks, total_chunks)),
            Shown::UploadCancelled {
                name,
                sent_chunks,
                total_chunks,
                ..
            } => {
                self.upload = None;
                self.push(PaneLine::info(
                    cancelled_text(&name, sent_chunks, total_chunks),
                    Tone::Info,
                ));
            }
            Shown::Info(text) => self.push(PaneLine::info(text, Tone::Info)),
            Shown::Error { message, .. } => {
                self.push(PaneLine::info(format!("error: {message}"), Tone::Alarm));
                self.error = Some(message);
            }
            Shown::Bye => {}
        }
    }

    /// A message of this account's that the relay stored replaces the first pending line
    /// with its text (kept while offline, sent on reconnecting).
    fn sent_pending(&mut self, line: &HistoryLine) {
        if let HistoryLine::Item {
            entry:
                LogEntry::Message {
                    mine: true,
                    sender,
                    text,
                    ..
                },
            ..
        } = line
        {
            self.drop_pending(&pending_text(sender, text));
        }
    }

    /// Removes the first pending line that reads `kept`.
    fn drop_pending(&mut self, kept: &str) {
        if let Some(at) = self
            .pane
            .iter()
            .position(|l| l.delivery == Some(Delivery::Pending) && l.text == kept)
        {
            self.pane.remove(at);
        }
    }

    /// Adds `line` at the bottom of the pane — unless the pane already has a line with its
    /// sequence number. A message seen again (sent, then pushed back) is not shown twice. Any
    /// other line with that number (a release notice another trustee joined, a notice
    /// confirmed later) takes the earlier one's place and words: the pane never keeps the
    /// weaker wording.
    fn push(&mut self, line: PaneLine) {
        if let Some(shown) = line
            .seq
            .and_then(|seq| self.pane.iter_mut().find(|l| l.seq == Some(seq)))
        {
            if !matches!(shown.tone, Tone::Mine | Tone::Theirs) {
                shown.text = line.text;
                shown.tone = line.tone;
            }
            return;
        }
        self.pane.push(line);
        if self.pane.len() > PANE_LIMIT {
            self.pane.drain(..self.pane.len() - PANE_LIMIT);
        }
    }

    /// The names whose changed key blocks sending in the current conversation.
    pub fn blocked(&self) -> BTreeSet<&str> {
        let mut names = BTreeSet::new();
        for key in [None, self.current] {
            if let Some(set) = self.key_changes.get(&key) {
                names.extend(set.iter().map(String::as_str));
            }
        }
        names
    }

    /// Applies one key; returns a line to run (a message or a command) on Enter, or `/quit`.
    /// The first character of a message also returns `/typing` (the others see "… is
    /// typing"), and emptying the input `/typing off`: once per message, not per key.
    pub fn key(&mut self, key: Key) -> Option<String> {
        match key {
            Key::Char(c) => {
                let at = self.byte_at(self.cursor);
                self.input.insert(at, c);
                self.cursor += 1;
                if !self.typing_told && !self.input.starts_with('/') && self.current.is_some() {
                    self.typing_told = true;
                    return Some("/typing".to_owned());
                }
            }
            Key::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                let at = self.byte_at(self.cursor);
                self.input.remove(at);
                if self.input.is_empty() && self.typing_told {
                    self.typing_told = false;
                    return Some("/typing off".to_owned());
                }
            }
            Key::Delete if self.cursor < self.input.chars().count() => {
                let at = self.byte_at(self.cursor);
                self.input.remove(at);
            }
            Key::Backspace | Key::Delete => {}
            Key::Left => self.cursor = self.cursor.saturating_sub(1),
            Key::Right => self.cursor = (self.cursor + 1).min(self.input.chars().count()),
            Key::Home => self.cursor = 0,
            Key::End => self.cursor = self.input.chars().count(),
            Key::PageUp => self.scroll = self.scroll.saturating_add(self.page.max(1)),
            Key::PageDown => self.scroll = self.scroll.saturating_sub(self.page.max(1)),
            Key::Enter => {
                // The message itself ends the others' "… is typing".
                self.typing_told = false;
                let line = std::mem::take(&mut self.input);
                self.cursor = 0;
                self.scroll = 0;
                self.error = None;
                return (!line.trim().is_empty()).then_some(line);
            }
            // While a file uploads, Ctrl-C stops the upload, not the chat.
            Key::Quit if self.upload.is_some() => return Some("/cancel".to_owned()),
            Key::Quit => return Some("/quit".to_owned()),
        }
        None
    }

    /// The byte offset of the `n`th character of the input.
    fn byte_at(&self, n: usize) -> usize {
        self.input
            .char_indices()
            .nth(n)
            .map_or(self.input.len(), |(i, _)| i)
    }
}

#[cfg(test)]
pub(crate) mod tests;
