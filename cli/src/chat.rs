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
//!   /status S          (agent) set the status: open, waiting or resolved
//!   /typing [off]      tell the other members online that you are typing (or stopped)
//!   /quit              leave (also end of input)
//!   anything else      is sent as a message
//! ```

use std::collections::VecDeque;
use std::io::Write;
use std::time::Duration;

use sealdesk_client::ClientError;
use sealdesk_client::account::LogEntry;
use sealdesk_client::client::{Client, Event, EventKind, HistoryLine};
use sealdesk_protocol::{
    card::Role, ids::ConversationId, signal::SignalKind, status::ConversationStatus,
};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _};

use crate::error::CliError;
use crate::print::render_line;

/// The chat's result.
type Result<T> = std::result::Result<T, CliError>;

/// How many history lines are shown when a conversation is selected.
pub const RECENT_LINES: usize = 20;

/// The first wait before reconnecting after the connection was lost; each failed attempt
/// doubles it, up to [`RECONNECT_MAX`].
pub const RECONNECT_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two reconnection attempts.
pub const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// After the input ended (`/quit` or end of a pipe) with lines still waiting for the relay, how
/// long the chat keeps trying to reconnect to send them before it gives up and says so.
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(60);

/// Runs the chat until `/quit` or the end of `input`. When the connection is lost (the relay
/// restarted), it says so, reconnects with backoff and resumes every conversation from its
/// cursor; lines typed meanwhile are kept and sent, in order, once it is back.
///
/// # Errors
/// Relay and storage errors that end the session; errors of single commands are printed and
/// the loop goes on. [`ClientError::Closed`] when lines typed could not be sent because the
/// relay did not come back within [`FLUSH_DEADLINE`] after the input ended.
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
    let mut view = View::default();
    let mut online = true;
    if let Some(id) = current {
        match select(client, out, id, &mut view).await {
            Ok(()) => {}
            Err(e) if is_connection_lost(&e) => {
                online = false;
                lost(client, out, &e).map_err(io)?;
            }
            Err(e) => return Err(e),
        }
    }
    let mut lines = input.lines();
    // Lines to send once the relay is back, with the conversation they were typed in.
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut input_done = false;
    let mut backoff = RECONNECT_FIRST;
    let mut flush_deadline: Option<tokio::time::Instant> = None;
    loop {
        out.flush().map_err(io)?;
        if online {
            if input_done {
                break;
            }
            tokio::select! {
                line = lines.next_line() => {
                    let line = line.map_err(|e| CliError::Io { op: "read input", source: e })?;
                    let Some(line) = line else {
                        input_done = true;
                        continue;
                    };
                    let line = line.trim();
                    if line.is_empty() {
                        continue;
                    }
                    let before = current.and_then(|id| client.meta(&id).ok()).map(|m| m.cursor);
                    match command(client, out, &mut current, line, &mut receipts, &mut view).await {
                        Ok(true) => break,
                        Ok(false) => {}
                        Err(e) if is_connection_lost(&e) => {
                            online = false;
                            backoff = RECONNECT_FIRST;
                            lost(client, out, &e).map_err(io)?;
                            if let (false, Some(id)) = (line.starts_with('/'), current) {
                                // It may have reached the relay before the connection went:
                                // after reconnecting, the history says whether it did.
                                pending.push_back(Pending { conversation: id, text: line.to_owned(), sent_after: before });
                                writeln!(out, "  (kept: sent once the relay is back)").map_err(io)?;
                            }
                        }
                        Err(e) if is_fatal(&e) => return Err(e),
                        Err(e) => writeln!(out, "error: {e}").map_err(io)?,
                    }
                }
                push = client.session().next_push() => {
                    let Some(push) = push else {
                        online = false;
                        backoff = RECONNECT_FIRST;
                        let e = CliError::from(ClientError::Closed(client.session().closed()));
                        lost(client, out, &e).map_err(io)?;
                        continue;
                    };
                    match on_push(client, out, push, current, &mut receipts).await {
                        Ok(()) => {}
                        Err(e) if is_connection_lost(&e) => {
                            online = false;
                            backoff = RECONNECT_FIRST;
                            lost(client, out, &e).map_err(io)?;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        } else {
            if input_done && pending.is_empty() {
                break;
            }
            if input_done {
                let deadline = *flush_deadline
                    .get_or_insert_with(|| tokio::time::Instant::now() + FLUSH_DEADLINE);
                if tokio::time::Instant::now() >= deadline {
                    writeln!(
                        out,
                        "· the relay did not come back: {} line(s) not sent",
                        pending.len()
                    )
                    .map_err(io)?;
                    return Err(ClientError::Closed(client.session().closed()).into());
                }
            }
            tokio::select! {
                line = lines.next_line(), if !input_done => {
                    let line = line.map_err(|e| CliError::Io { op: "read input", source: e })?;
                    let Some(line) = line else {
                        input_done = true;
                        continue;
                    };
                    let line = line.trim();
                    match line {
                        "" => {}
                        "/quit" | "/exit" => {
                            if !pending.is_empty() {
                                writeln!(out, "· leaving offline: {} line(s) not sent", pending.len()).map_err(io)?;
                            }
                            break;
                        }
                        c if c.starts_with('/') => {
                            writeln!(out, "· offline: {c} needs the relay; try again once reconnected").map_err(io)?;
                        }
                        text => match current {
                            Some(id) => {
                                pending.push_back(Pending { conversation: id, text: text.to_owned(), sent_after: None });
                                writeln!(out, "  (offline: kept, sent once the relay is back)").map_err(io)?;
                            }
                            None => writeln!(out, "error: {}", CliError::NoConversationSelected { hint: "; use /list and /switch" }).map_err(io)?,
                        },
                    }
                }
                () = tokio::time::sleep(backoff) => {
                    match client.reconnect().await {
                        Ok(()) => {
                            online = true;
                            backoff = RECONNECT_FIRST;
                            match resume(client, out, current, &mut receipts, &mut pending).await {
                                Ok(()) => {}
                                Err(e) if is_connection_lost(&e) => {
                                    online = false;
                                    lost(client, out, &e).map_err(io)?;
                                }
                                Err(e) => return Err(e),
                            }
                        }
                        // Not back yet: wait longer before the next try.
                        Err(ClientError::Transport(_) | ClientError::Closed(_) | ClientError::Timeout { .. }) => {
                            backoff = (backoff * 2).min(RECONNECT_MAX);
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
    }
    writeln!(out, "bye").map_err(io)?;
    Ok(())
}

/// A line typed while the relay was unreachable (or whose sending the connection's loss
/// interrupted), to send once it is back.
struct Pending {
    conversation: ConversationId,
    text: String,
    /// For a line whose sending was interrupted: the conversation's cursor before it was
    /// sent. If a message of this account with this text came after it, the relay had stored
    /// it, and it is not sent again.
    sent_after: Option<u64>,
}

/// The chat's state of display: which conversations' banners were shown.
#[derive(Default)]
struct View {
    banners: std::collections::HashSet<ConversationId>,
}

fn io(e: std::io::Error) -> CliError {
    CliError::Io {
        op: "write to the terminal",
        source: e,
    }
}

/// Whether an error ends the chat (the vault is gone), rather than being printed before the
/// next line is read. A lost connection is not: the chat reconnects ([`is_connection_lost`]).
fn is_fatal(e: &CliError) -> bool {
    matches!(
        e,
        CliError::Client(ClientError::Closed(_) | ClientError::Vault(_))
    )
}

/// Whether an error means the connection to the relay is gone (reconnect, keep going).
fn is_connection_lost(e: &CliError) -> bool {
    matches!(
        e,
        CliError::Client(
            ClientError::Closed(_) | ClientError::Transport(_) | ClientError::Timeout { .. }
        )
    )
}

/// Says that the connection was lost and that the chat is reconnecting (the visible state).
fn lost<W: Write>(client: &Client, out: &mut W, e: &CliError) -> std::io::Result<()> {
    let why = client.session().closed().unwrap_or_else(|| e.to_string());
    writeln!(
        out,
        "· connection lost ({why}); reconnecting… lines you type are kept and sent once it is back"
    )
}

/// After a reconnection: says so, catches every conversation up from its cursor, and sends the
/// lines kept meanwhile, in order (one already stored before the connection went is not sent
/// again).
async fn resume<W: Write>(
    client: &mut Client,
    out: &mut W,
    current: Option<ConversationId>,
    receipts: &mut Receipts,
    pending: &mut VecDeque<Pending>,
) -> Result<()> {
    writeln!(out, "· reconnected; catching up").map_err(io)?;
    let events = client.sync_all().await?;
    print_events(client, out, &events, current, receipts).map_err(io)?;
    while let Some(p) = pending.front() {
        if let Some(after) = p.sent_after
            && already_stored(client, &p.conversation, &p.text, after)
        {
            pending.pop_front();
            continue;
        }
        let (id, text) = (p.conversation, p.text.clone());
        match send_line(client, out, id, &text, current, receipts).await {
            Ok(()) => {
                pending.pop_front();
            }
            Err(e) if is_connection_lost(&e) => {
                if let Some(p) = pending.front_mut() {
                    p.sent_after = Some(client.meta(&id).map(|m| m.cursor).unwrap_or(0));
                }
                return Err(e);
            }
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) => {
                writeln!(out, "error: {e} (not sent: {text})").map_err(io)?;
                pending.pop_front();
            }
        }
    }
    Ok(())
}

/// Whether a message of this account with `text` is in the timeline after sequence `after`.
fn already_stored(client: &Client, id: &ConversationId, text: &str, after: u64) -> bool {
    client.history(id).is_ok_and(|h| {
        h.lines.iter().any(|l| {
            matches!(l, HistoryLine::Item {
                entry: LogEntry::Message { mine: true, seq, text: t, .. },
                ..
            } if *seq > after && t == text)
        })
    })
}

/// Handles one push: shows what it brought, and tells the others it was read when it is in
/// the conversation on screen.
async fn on_push<W: Write>(
    client: &mut Client,
    out: &mut W,
    push: sealdesk_protocol::wire::Push,
    current: Option<ConversationId>,
    receipts: &mut Receipts,
) -> Result<()> {
    // Release and ticket pushes are not shown in the chat.
    let mut events: Vec<Event> = client.handle_push(push).await?.unwrap_or_default();
    if client.session().take_dropped_pushes() > 0 {
        events.extend(client.sync_all().await?);
    }
    print_events(client, out, &events, current, receipts).map_err(io)?;
    if let Some(id) = current
        && events
            .iter()
            .any(|e| e.conversation == id && matches!(e.kind, EventKind::Entry { .. }))
    {
        client.mark_seen(&id)?;
        if let Err(e) = client.send_read_receipt(&id).await.map_err(CliError::from)
            && (is_fatal(&e) || is_connection_lost(&e))
        {
            return Err(e);
        }
    }
    Ok(())
}

/// Sends `text` in `id` and shows what came back from the relay in order, including it.
async fn send_line<W: Write>(
    client: &mut Client,
    out: &mut W,
    id: ConversationId,
    text: &str,
    current: Option<ConversationId>,
    receipts: &mut Receipts,
) -> Result<()> {
    let before = client.meta(&id)?.cursor;
    let seq = client.send_text(&id, text).await?;
    receipts.mine.insert(id, seq);
    let prefix = if Some(id) == current {
        String::new()
    } else {
        format!("[{}] ", short(&id))
    };
    let h = client.history(&id)?;
    for l in h.lines.iter().filter(|l| match l {
        HistoryLine::Item { entry, .. } => entry.seq() > before,
        HistoryLine::Gap { .. } | HistoryLine::Withheld { .. } => false,
    }) {
        writeln!(out, "{prefix}{}", render_line(l)).map_err(io)?;
    }
    client.mark_seen(&id)?;
    Ok(())
}

/// Shows the items of `id` after `before` (what a command of this account just added).
fn show_after<W: Write>(
    client: &Client,
    out: &mut W,
    id: ConversationId,
    before: u64,
) -> Result<()> {
    for l in client.history(&id)?.lines.iter().filter(|l| match l {
        HistoryLine::Item { entry, .. } => entry.seq() > before,
        HistoryLine::Gap { .. } | HistoryLine::Withheld { .. } => false,
    }) {
        writeln!(out, "{}", render_line(l)).map_err(io)?;
    }
    Ok(())
}

/// Handles one input line; `Ok(true)` to quit.
async fn command<W: Write>(
    client: &mut Client,
    out: &mut W,
    current: &mut Option<ConversationId>,
    line: &str,
    receipts: &mut Receipts,
    view: &mut View,
) -> Result<bool> {
    let (cmd, arg) = match line.split_once(' ') {
        Some((c, a)) => (c, a.trim()),
        None => (line, ""),
    };
    match cmd {
        "/quit" | "/exit" => return Ok(true),
        "/help" => {
            writeln!(
                out,
                "/list  /switch N|ID  /history  /open ORG  /transfer AGENT  /status S  /spam  /typing [off]  /quit; other lines are sent"
            )
            .map_err(io)?;
        }
        "/list" => {
            let events = client.sync_all().await?;
            print_events(client, out, &events, *current, receipts).map_err(io)?;
            list(client, out, *current).map_err(io)?;
        }
        "/switch" => {
            let id = pick(client, arg)?;
            client.meta(&id)?;
            *current = Some(id);
            select(client, out, id, view).await?;
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
            select(client, out, opened.conversation, view).await?;
        }
        "/transfer" => {
            let id = current.ok_or(CliError::NoConversationSelected { hint: "" })?;
            let epoch = client.transfer(&id, arg).await?;
            writeln!(out, "transferred to {arg}; epoch {epoch} is theirs").map_err(io)?;
        }
        "/status" => {
            let id = current.ok_or(CliError::NoConversationSelected { hint: "" })?;
            match ConversationStatus::parse(arg) {
                Ok(status) => {
                    let before = client.meta(&id)?.cursor;
                    client.set_status(&id, status).await?;
                    show_after(client, out, id, before)?;
                }
                Err(_) => writeln!(out, "/status open|waiting|resolved").map_err(io)?,
            }
        }
        "/spam" => {
            let id = current.ok_or(CliError::NoConversationSelected { hint: "" })?;
            let before = client.meta(&id)?.cursor;
            let blocked = client
                .block_conversation(&id, sealdesk_protocol::block::BlockReason::Spam)
                .await?;
            show_after(client, out, id, before)?;
            writeln!(
                out,
                "closed as spam; {} is blocked for {}",
                blocked.customer, blocked.org
            )
            .map_err(io)?;
        }
        "/typing" => {
            let id = current.ok_or(CliError::NoConversationSelected { hint: "" })?;
            let kind = if arg == "off" {
                SignalKind::Stopped
            } else {
                SignalKind::Typing
            };
            client.send_signal(&id, kind).await?;
        }
        c if c.starts_with('/') => {
            writeln!(out, "unknown command {c}; /help lists them").map_err(io)?;
        }
        _ => {
            let id = current.ok_or(CliError::NoConversationSelected {
                hint: "; use /list and /switch",
            })?;
            send_line(client, out, id, line, *current, receipts).await?;
        }
    }
    Ok(false)
}

/// The conversation `arg` names: its number in `/list`, its id, or a prefix of its id that
/// only it has (the chat shows the first 8 digits of ids of other conversations).
fn pick(client: &Client, arg: &str) -> Result<ConversationId> {
    let convs = client.account().conversations()?;
    if let Ok(n) = arg.parse::<usize>()
        && n >= 1
        && let Some(m) = convs.get(n - 1)
    {
        return Ok(m.id);
    }
    if let Ok(id) = ConversationId::parse(arg) {
        return Ok(id);
    }
    let prefix = arg.to_ascii_lowercase();
    let unknown = || CliError::UnknownConversation(arg.to_owned());
    if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(unknown());
    }
    let mut matching = convs
        .iter()
        .filter(|m| m.id.to_string().starts_with(&prefix));
    match (matching.next(), matching.next()) {
        (Some(m), None) => Ok(m.id),
        (Some(_), Some(_)) => Err(CliError::AmbiguousConversation(arg.to_owned())),
        _ => Err(unknown()),
    }
}

async fn select<W: Write>(
    client: &mut Client,
    out: &mut W,
    id: ConversationId,
    view: &mut View,
) -> Result<()> {
    let meta = client.meta(&id)?;
    writeln!(
        out,
        "── conversation {id} · {} · customer {} · agent {} ──",
        meta.org, meta.customer, meta.agent
    )
    .map_err(io)?;
    // The banner once per conversation and chat, worded for who reads it: the customer reads
    // the policy they agreed to, an agent what the customer was told.
    if view.banners.insert(id) {
        if client.account().role() == Role::Customer {
            if let Ok(summary) = client.summary(&id).await {
                writeln!(out, "🔒 {summary}").map_err(io)?;
            }
        } else {
            writeln!(
                out,
                "🔒 This conversation is end-to-end encrypted: the relay cannot read it. \
                 {customer} was told when {org}'s owner may open it under {org}'s policy; every opening \
                 is recorded in the audit log and {customer} is told of it.",
                customer = meta.customer,
                org = meta.org,
            )
            .map_err(io)?;
        }
    }
    let h = client.history(&id)?;
    let skip = h.lines.len().saturating_sub(RECENT_LINES);
    for l in &h.lines[skip..] {
        writeln!(out, "{}", render_line(l)).map_err(io)?;
    }
    client.mark_seen(&id)?;
    if let Err(e) = client.send_read_receipt(&id).await.map_err(CliError::from)
        && (is_fatal(&e) || is_connection_lost(&e))
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
        let transferred = if m.transferred_out {
            format!(" [transferred to {}]", m.agent)
        } else {
            String::new()
        };
        writeln!(
            out,
            "{mark}{:>2}. {} {} with {peer}{transferred}{}",
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
                    // The number history gives it; none if the timeline cannot be read now.
                    number: client
                        .message_number(&e.conversation, entry.seq())
                        .ok()
                        .flatten(),
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
            EventKind::Typing { member, typing } => {
                // Only the current conversation's, and only "typing": a stop shows nothing
                // in line mode (the next line from that member replaces the hint).
                if here && *typing {
                    writeln!(out, "  … {member} is typing")?;
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
