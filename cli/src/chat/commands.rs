//! The chat's slash commands and what they share with the loop: sending a line, selecting a
//! conversation (header, banner once, latest lines), listing conversations, `/attach`.
//!
//! ```text
//!   /list              conversations with unread counts
//!   /switch N|ID       change the current conversation (its number, id or id prefix)
//!   /history           the whole history of the current conversation
//!   /open ORG          (customer) open a new conversation
//!   /transfer AGENT    (agent) hand the current conversation to another agent
//!   /status S          (agent) set the status: open, waiting or resolved
//!   /spam              (agent) close the conversation as spam and block its customer
//!   /attach FILE [TEXT] send a file, end-to-end encrypted, with an optional caption; it
//!                      uploads while the chat goes on
//!   /cancel            stop the running upload (Ctrl-C in the window); /attach resumes it
//!   /typing [off]      tell the other members online that you are typing (or stopped)
//!   /quit              leave (also end of input)
//!   anything else      is sent as a message
//! ```

use sealdesk_client::account::LogEntry;
use sealdesk_client::client::{Client, HistoryLine};
use sealdesk_protocol::{
    ids::ConversationId, message::ContentKind, signal::SignalKind, status::ConversationStatus,
};

use super::engine::{
    Session, io, is_connection_lost, is_customer, is_fatal, key_change, show_events,
};
use super::event::{ConvRow, Shown, Sink};
use super::upload;
use super::{RECENT_LINES, Result};
use crate::error::CliError;

/// The one-line help.
pub const HELP: &str = "/list  /switch N|ID  /history  /open ORG  /transfer AGENT  /status S  /spam  /attach FILE [TEXT]  /cancel  /typing [off]  /quit; other lines are sent";

/// Handles one input line; `Ok(true)` to quit.
pub(crate) async fn command<S: Sink>(
    client: &mut Client,
    out: &mut S,
    line: &str,
    s: &mut Session,
) -> Result<bool> {
    let (cmd, arg) = match line.split_once(' ') {
        Some((c, a)) => (c, a.trim()),
        None => (line, ""),
    };
    match cmd {
        "/quit" | "/exit" => return Ok(true),
        "/help" => out.show(Shown::Info(HELP.to_owned())).map_err(io)?,
        "/list" => {
            let events = client.sync_all().await?;
            show_events(client, out, &events, s).map_err(io)?;
            conversations(client, out, s, true).map_err(io)?;
        }
        "/switch" => {
            let id = pick(client, need(arg, "/switch N|ID")?)?;
            s.current = Some(id);
            select(client, out, id, s).await?;
        }
        "/history" => {
            let id = s
                .current
                .ok_or(CliError::NoConversationSelected { hint: "; /list" })?;
            let lines = client.history(&id)?.lines;
            out.show(Shown::History {
                conversation: id,
                lines,
            })
            .map_err(io)?;
        }
        "/open" => {
            if !is_customer(client) {
                return Err(CliError::NotACustomer);
            }
            let org = need(arg, "/open ORG")?;
            let opened = client.open_conversation(org, None).await?;
            for w in &opened.warnings {
                out.show(Shown::Warning {
                    conversation: Some(opened.conversation),
                    here: false,
                    text: w.clone(),
                })
                .map_err(io)?;
            }
            out.show(Shown::Info(format!(
                "opened {} with {}",
                opened.conversation, opened.agent
            )))
            .map_err(io)?;
            s.current = Some(opened.conversation);
            select(client, out, opened.conversation, s).await?;
        }
        "/transfer" => {
            let id = s
                .current
                .ok_or(CliError::NoConversationSelected { hint: "" })?;
            let agent = need(arg, "/transfer AGENT")?;
            let epoch = client.transfer(&id, agent).await?;
            out.show(Shown::Info(format!(
                "transferred to {arg}; epoch {epoch} is theirs"
            )))
            .map_err(io)?;
            conversations(client, out, s, false).map_err(io)?;
        }
        "/status" => {
            let id = s
                .current
                .ok_or(CliError::NoConversationSelected { hint: "" })?;
            match ConversationStatus::parse(arg) {
                Ok(status) => {
                    let before = client.meta(&id)?.cursor;
                    client.set_status(&id, status).await?;
                    show_after(client, out, id, before)?;
                    conversations(client, out, s, false).map_err(io)?;
                }
                Err(_) => {
                    return Err(CliError::BadArgument {
                        given: need(arg, STATUS_USAGE)?.to_owned(),
                        usage: STATUS_USAGE,
                    });
                }
            }
        }
        "/spam" => {
            let id = s
                .current
                .ok_or(CliError::NoConversationSelected { hint: "" })?;
            let before = client.meta(&id)?.cursor;
            let blocked = client
                .block_conversation(&id, sealdesk_protocol::block::BlockReason::Spam)
                .await?;
            show_after(client, out, id, before)?;
            out.show(Shown::Info(format!(
                "closed as spam; {} is blocked for {}",
                blocked.customer, blocked.org
            )))
            .map_err(io)?;
        }
        "/attach" => {
            let id = s.current.ok_or(CliError::NoConversationSelected {
                hint: "; use /list and /switch",
            })?;
            upload::start(client, out, id, arg, s)?;
        }
        "/cancel" => upload::cancel(out, s)?,
        "/typing" => {
            let id = s
                .current
                .ok_or(CliError::NoConversationSelected { hint: "" })?;
            let kind = if arg == "off" {
                SignalKind::Stopped
            } else {
                SignalKind::Typing
            };
            client.send_signal(&id, kind).await?;
        }
        c if c.starts_with('/') => return Err(CliError::UnknownCommand(c.to_owned())),
        _ => {
            let id = s.current.ok_or(CliError::NoConversationSelected {
                hint: "; use /list and /switch",
            })?;
            send_line(client, out, id, line, s).await?;
        }
    }
    Ok(false)
}

/// Splits `/attach`'s argument into the file and the caption: a file name in double quotes may
/// hold spaces.
pub(crate) fn split_file_arg(arg: &str) -> (String, &str) {
    if let Some(rest) = arg.strip_prefix('"')
        && let Some((file, caption)) = rest.split_once('"')
    {
        return (file.to_owned(), caption.trim());
    }
    match arg.split_once(' ') {
        Some((file, caption)) => (file.to_owned(), caption.trim()),
        None => (arg.to_owned(), ""),
    }
}

/// Sends `text` in `id` and shows what came back from the relay in order, including it.
pub(crate) async fn send_line<S: Sink>(
    client: &mut Client,
    out: &mut S,
    id: ConversationId,
    text: &str,
    s: &mut Session,
) -> Result<()> {
    let before = client.meta(&id)?.cursor;
    let sent = client.send_text_report(&id, text).await?;
    s.receipts.mine.insert(id, sent.seq);
    let here = Some(id) == s.current;
    for line in client.history(&id)?.lines.into_iter().filter(|l| match l {
        HistoryLine::Item { entry, .. } => entry.seq() > before,
        HistoryLine::Gap { .. } | HistoryLine::Withheld { .. } => false,
    }) {
        out.show(Shown::Line {
            conversation: id,
            here,
            line,
        })
        .map_err(io)?;
    }
    let org = client.meta(&id)?.org;
    if sent.quota.is_none() {
        s.quotas.below(&org);
    }
    if let Some(quota) = sent.quota
        && s.quotas.news(Some(&org), &quota)
    {
        out.show(Shown::QuotaWarning {
            conversation: id,
            here,
            quota,
        })
        .map_err(io)?;
    }
    client.mark_seen(&id)?;
    Ok(())
}

/// Shows the items of `id` after `before` (what a command of this account just added).
pub(crate) fn show_after<S: Sink>(
    client: &Client,
    out: &mut S,
    id: ConversationId,
    before: u64,
) -> Result<()> {
    for line in client.history(&id)?.lines.into_iter().filter(|l| match l {
        HistoryLine::Item { entry, .. } => entry.seq() > before,
        HistoryLine::Gap { .. } | HistoryLine::Withheld { .. } => false,
    }) {
        out.show(Shown::Line {
            conversation: id,
            here: true,
            line,
        })
        .map_err(io)?;
    }
    Ok(())
}

/// `/status`'s argument.
const STATUS_USAGE: &str = "/status open|waiting|resolved";

/// A command's argument, or [`CliError::MissingArgument`] when it has none.
fn need<'a>(arg: &'a str, usage: &'static str) -> Result<&'a str> {
    if arg.is_empty() {
        Err(CliError::MissingArgument { usage })
    } else {
        Ok(arg)
    }
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
    let unknown = || CliError::UnknownConversation(arg.to_owned());
    if let Ok(id) = ConversationId::parse(arg) {
        return convs
            .iter()
            .any(|m| m.id == id)
            .then_some(id)
            .ok_or_else(unknown);
    }
    let prefix = arg.to_ascii_lowercase();
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

/// Makes `id` the conversation on screen: its header, its banner the first time, its latest
/// lines, a pinned key that changed; then a read receipt.
pub(crate) async fn select<S: Sink>(
    client: &mut Client,
    out: &mut S,
    id: ConversationId,
    s: &mut Session,
) -> Result<()> {
    let meta = client.meta(&id)?;
    // The banner once per conversation and chat, worded for who reads it: the customer reads
    // the policy they agreed to, an agent what the customer was told.
    let banner = if s.banners.insert(id) {
        if is_customer(client) {
            client.summary(&id).await.ok()
        } else {
            Some(crate::print::agent_summary(&meta.customer, &meta.org))
        }
    } else {
        None
    };
    let h = client.history(&id)?;
    // Receipts that arrive from now on mark this account's latest message, even one sent
    // before the chat started.
    if let Some(seq) = h.lines.iter().rev().find_map(|l| match l {
        HistoryLine::Item {
            entry:
                LogEntry::Message {
                    mine: true,
                    seq,
                    kind: ContentKind::Text | ContentKind::Attachment,
                    ..
                },
            ..
        } => Some(*seq),
        _ => None,
    }) {
        s.receipts.mine.entry(id).or_insert(seq);
    }
    let skip = h.lines.len().saturating_sub(RECENT_LINES);
    out.show(Shown::Selected {
        conversation: id,
        org: meta.org.clone(),
        customer: meta.customer.clone(),
        agent: meta.agent.clone(),
        banner,
        recent: h.lines.into_iter().skip(skip).collect(),
    })
    .map_err(io)?;
    // A peer whose pinned key changed: sending here is blocked until the user accepts it.
    let me = client.account().name().to_owned();
    for peer in [&meta.customer, &meta.agent] {
        if *peer != me && client.account().peer_blocked(peer).unwrap_or(false) {
            out.show(key_change(client, Some(id), peer)).map_err(io)?;
        }
    }
    client.mark_seen(&id)?;
    if let Err(e) = client.send_read_receipt(&id).await.map_err(CliError::from)
        && (is_fatal(&e) || is_connection_lost(&e))
    {
        return Err(e);
    }
    conversations(client, out, s, false).map_err(io)?;
    Ok(())
}

/// Shows the conversations (`asked`: the user asked for the list), each marked when it holds
/// a notice not yet confirmed ([`Session::unconfirmed`]).
pub(crate) fn conversations<S: Sink>(
    client: &Client,
    out: &mut S,
    s: &Session,
    asked: bool,
) -> std::io::Result<()> {
    let account = client.account();
    let rows = account
        .conversations()
        .unwrap_or_default()
        .into_iter()
        .map(|m| ConvRow {
            unread: client.unread(&m.id).unwrap_or(0),
            status: sealdesk_client::client::status::status(account, &m.id)
                .map(|st| st.name().to_owned())
                .unwrap_or_default(),
            peer: if m.customer == account.name() {
                m.agent.clone()
            } else {
                m.customer.clone()
            },
            org: m.org,
            customer: m.customer,
            agent: m.agent,
            transferred: m.transferred_out,
            unconfirmed: s.unconfirmed.contains(&m.id),
            id: m.id,
        })
        .collect();
    out.show(Shown::Conversations {
        rows,
        current: s.current,
        asked,
    })
}
