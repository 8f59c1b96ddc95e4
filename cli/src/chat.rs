//! The interactive chat (`sealdesk chat`): a line-based loop that shows live pushes while
//! reading the user's input. Lines are rendered by [`crate::print`].
//!
//! It is generic over its input and output so tests drive it with in-memory streams.
//!
//! ```text
//!   /list              conversations with unread counts
//!   /switch N|ID       change the current conversation
//!   /history           the whole history of the current conversation
//!   /open ORG          (customer) open a new conversation
//!   /transfer AGENT    (agent) hand the current conversation to another agent
//!   /quit              leave (also end of input)
//!   anything else      is sent as a message
//! ```

use std::io::Write;

use sealdesk_client::ClientError;
use sealdesk_client::account::LogEntry;
use sealdesk_client::client::{Client, Event, EventKind, HistoryLine};
use sealdesk_protocol::{card::Role, ids::ConversationId};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _};

use crate::error::CliError;
use crate::print::render_line;

/// The chat's result.
type Result<T> = std::result::Result<T, CliError>;

/// How many history lines are shown when a conversation is selected.
pub const RECENT_LINES: usize = 20;

/// Runs the chat until `/quit` or the end of `input`.
///
/// # Errors
/// Relay and storage errors that end the session; errors of single commands are printed and
/// the loop goes on.
pub async fn run<R, W>(
    client: &mut Client,
    input: R,
    out: &mut W,
    conversation: Option<ConversationId>,
) -> Result<()>
where
    R: AsyncBufRead + Unpin,
    W: Write,
{
    let io = |e: std::io::Error| CliError::Io {
        op: "write to the terminal",
        source: e,
    };
    let mut receipts = Receipts::default();
    let events = client.sync_all().await?;
    print_events(client, out, &events, None, &mut receipts).map_err(io)?;
    let mut current = conversation.or_else(|| {
        client
            .account()
            .conversations()
            .ok()
            .and_then(|c| c.last().map(|m| m.id))
    });
    writeln!(
        out,
        "sealdesk chat as {} ({}). Type a message and press Enter; /help for commands.",
        client.account().name(),
        client.account().role()
    )
    .map_err(io)?;
    list(client, out, current).map_err(io)?;
    if let Some(id) = current {
        select(client, out, id).await?;
    }
    let mut lines = input.lines();
    loop {
        out.flush().map_err(io)?;
        tokio::select! {
            line = lines.next_line() => {
                let line = line.map_err(|e| CliError::Io { op: "read input", source: e })?;
                let Some(line) = line else { break };
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                match command(client, out, &mut current, line, &mut receipts).await {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) if is_fatal(&e) => return Err(e),
                    Err(e) => writeln!(out, "error: {e}").map_err(io)?,
                }
            }
            push = client.session().next_push() => {
                let Some(push) = push else {
                    let reason = client.session().closed();
                    writeln!(out, "the relay closed the connection; run `sealdesk chat` again to reconnect").map_err(io)?;
                    return Err(ClientError::Closed(reason).into());
                };
                // Release and ticket pushes are not shown in the chat.
                let events: Vec<Event> = client.handle_push(push).await?.unwrap_or_default();
                let mut events = events;
                if client.session().take_dropped_pushes() > 0 {
                    events.extend(client.sync_all().await?);
                }
                print_events(client, out, &events, current, &mut receipts).map_err(io)?;
                if let Some(id) = current
                    && events.iter().any(|e| e.conversation == id) {
                        client.mark_seen(&id)?;
                        if let Err(e) = client.send_read_receipt(&id).await.map_err(CliError::from)
                            && is_fatal(&e) { return Err(e); }
                    }
            }
        }
    }
    writeln!(out, "bye").map_err(io)?;
    Ok(())
}

/// Whether an error ends the chat (the connection or the vault is gone), rather than being
/// printed before the next line is read.
fn is_fatal(e: &CliError) -> bool {
    matches!(
        e,
        CliError::Client(ClientError::Closed(_) | ClientError::Vault(_))
    )
}

/// Handles one input line; `Ok(true)` to quit.
async fn command<W: Write>(
    client: &mut Client,
    out: &mut W,
    current: &mut Option<ConversationId>,
    line: &str,
    receipts: &mut Receipts,
) -> Result<bool> {
    let io = |e: std::io::Error| CliError::Io {
        op: "write to the terminal",
        source: e,
    };
    let (cmd, arg) = match line.split_once(' ') {
        Some((c, a)) => (c, a.trim()),
        None => (line, ""),
    };
    match cmd {
        "/quit" | "/exit" => return Ok(true),
        "/help" => {
            writeln!(
                out,
                "/list  /switch N|ID  /history  /open ORG  /transfer AGENT  /quit; other lines are sent"
            )
            .map_err(io)?;
        }
        "/list" => {
            let events = client.sync_all().await?;
            print_events(client, out, &events, *current, receipts).map_err(io)?;
            list(client, out, *current).map_err(io)?;
        }
        "/switch" => {
            let convs = client.account().conversations()?;
            let id = match arg.parse::<usize>() {
                Ok(n) if n >= 1 && n <= convs.len() => convs[n - 1].id,
                _ => ConversationId::parse(arg)
                    .map_err(|_| CliError::UnknownConversation(arg.to_owned()))?,
            };
            client.meta(&id)?;
            *current = Some(id);
            select(client, out, id).await?;
        }
        "/history" => {
            let id = current.ok_or(CliError::NoConversationSelected { hint: "; /list" })?;
            let h = client.history(&id)?;
            for l in &h.lines {
                writeln!(out, "{}", render_line(l)).map_err(io)?;
            }
        }
        "/open" => {
            if client.account().role() != Role::Customer {
                return Err(CliError::NotACustomer);
            }
            let opened = client.open_conversation(arg, None).await?;
            for w in &opened.warnings {
                writeln!(out, "warning: {w}").map_err(io)?;
            }
            writeln!(out, "opened {} with {}", opened.conversation, opened.agent).map_err(io)?;
            *current = Some(opened.conversation);
            select(client, out, opened.conversation).await?;
        }
        "/transfer" => {
            let id = current.ok_or(CliError::NoConversationSelected { hint: "" })?;
            let epoch = client.transfer(&id, arg).await?;
            writeln!(out, "transferred to {arg}; epoch {epoch} is theirs").map_err(io)?;
        }
        c if c.starts_with('/') => {
            writeln!(out, "unknown command {c}; /help lists them").map_err(io)?;
        }
        _ => {
            let id = current.ok_or(CliError::NoConversationSelected {
                hint: "; use /list and /switch",
            })?;
            let before = client.meta(&id)?.cursor;
            let seq = client.send_text(&id, line).await?;
            receipts.mine.insert(id, seq);
            // Show what came back from the relay in order, including this message.
            let h = client.history(&id)?;
            for l in h.lines.iter().filter(|l| match l {
                HistoryLine::Item { entry, .. } => entry.seq() > before,
                HistoryLine::Gap { .. } => false,
            }) {
                writeln!(out, "{}", render_line(l)).map_err(io)?;
            }
            client.mark_seen(&id)?;
        }
    }
    Ok(false)
}

async fn select<W: Write>(client: &mut Client, out: &mut W, id: ConversationId) -> Result<()> {
    let io = |e: std::io::Error| CliError::Io {
        op: "write to the terminal",
        source: e,
    };
    let meta = client.meta(&id)?;
    writeln!(
        out,
        "── conversation {id} · {} · customer {} · agent {} ──",
        meta.org, meta.customer, meta.agent
    )
    .map_err(io)?;
    if let Ok(summary) = client.summary(&id).await {
        writeln!(out, "🔒 {summary}").map_err(io)?;
    }
    let h = client.history(&id)?;
    let skip = h.lines.len().saturating_sub(RECENT_LINES);
    for l in &h.lines[skip..] {
        writeln!(out, "{}", render_line(l)).map_err(io)?;
    }
    client.mark_seen(&id)?;
    if let Err(e) = client.send_read_receipt(&id).await.map_err(CliError::from)
        && is_fatal(&e)
    {
        return Err(e);
    }
    Ok(())
}

fn list<W: Write>(
    client: &Client,
    out: &mut W,
    current: Option<ConversationId>,
) -> std::io::Result<()> {
    let convs = client.account().conversations().unwrap_or_default();
    if convs.is_empty() {
        writeln!(out, "no conversations yet")?;
    }
    for (i, m) in convs.iter().enumerate() {
        let unread = client.unread(&m.id).unwrap_or(0);
        let mark = if Some(m.id) == current { "*" } else { " " };
        let peer = if m.customer == client.account().name() {
            &m.agent
        } else {
            &m.customer
        };
        writeln!(
            out,
            "{mark}{:>2}. {} {} with {peer}{}",
            i + 1,
            m.id,
            m.org,
            if unread > 0 {
                format!(" ({unread} unread)")
            } else {
                String::new()
            }
        )?;
    }
    Ok(())
}

/// What the chat has already told the user about delivery and reading of their own messages,
/// so that each of their messages is marked delivered and read once, not once per receipt.
#[derive(Default)]
struct Receipts {
    /// Per conversation: the seq of this account's latest own message.
    mine: std::collections::HashMap<ConversationId, u64>,
    /// Per (conversation, member, kind): the highest own-message seq announced.
    announced: std::collections::HashMap<(ConversationId, String, bool), u64>,
}

impl Receipts {
    /// Whether a receipt up to `seq` by `member` newly covers this account's latest message.
    fn news(&mut self, id: ConversationId, member: &str, read: bool, seq: u64) -> Option<u64> {
        let mine = *self.mine.get(&id)?;
        if seq < mine {
            return None;
        }
        let seen = self
            .announced
            .entry((id, member.to_owned(), read))
            .or_default();
        if *seen >= mine {
            return None;
        }
        *seen = mine;
        Some(mine)
    }
}

fn print_events<W: Write>(
    client: &Client,
    out: &mut W,
    events: &[Event],
    current: Option<ConversationId>,
    receipts: &mut Receipts,
) -> std::io::Result<()> {
    for e in events {
        let here = Some(e.conversation) == current;
        let prefix = if here {
            String::new()
        } else {
            format!("[{}] ", short(&e.conversation))
        };
        match &e.kind {
            EventKind::Entry { entry } => {
                if let LogEntry::Message {
                    mine: true, seq, ..
                } = entry
                {
                    receipts.mine.insert(e.conversation, *seq);
                }
                let line = HistoryLine::Item {
                    entry: entry.clone(),
                    delivery: None,
                };
                if here || !matches!(entry, LogEntry::Message { mine: true, .. }) {
                    writeln!(out, "{prefix}{}", render_line(&line))?;
                }
            }
            EventKind::Assigned { customer } => writeln!(
                out,
                "{prefix}new conversation {} from {customer} assigned to you; /switch to it",
                e.conversation
            )?,
            EventKind::Delivered { member, seq } => {
                if here
                    && member != client.account().name()
                    && let Some(m) = receipts.news(e.conversation, member, false, *seq)
                {
                    writeln!(out, "{prefix}  ✓ #{m} delivered to {member}")?;
                }
            }
            EventKind::Read { member, seq } => {
                if here && let Some(m) = receipts.news(e.conversation, member, true, *seq) {
                    writeln!(out, "{prefix}  ✓✓ #{m} read by {member}")?;
                }
            }
            EventKind::Warning { text } => writeln!(out, "{prefix}warning: {text}")?,
        }
    }
    Ok(())
}

fn short(id: &ConversationId) -> String {
    let s = id.to_string();
    s.get(..8).unwrap_or(&s).to_owned()
}
