//! The chat's engine: one loop for every display. It reads the user's lines from an
//! [`Input`], handles the relay's pushes, runs the slash commands ([`super::commands`]),
//! reconnects with backoff when the connection is lost and sends the lines kept meanwhile, and
//! hands everything it has to show to a [`Sink`] as [`Shown`] values.

use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

use sealdesk_client::ClientError;
use sealdesk_client::account::LogEntry;
use sealdesk_client::client::{Client, Event, EventKind, HistoryLine, reconnect::Reconnected};
use sealdesk_protocol::{card::Role, ids::ConversationId};

use super::backoff::Backoff;
use super::commands::{command, conversations, select, send_line};
use super::event::{Connection, Shown, Sink};
use super::interrupt::Interrupts;
use super::notices::{note_unconfirmed, recheck_notices};
use super::quota::QuotaTold;
use super::upload;
use super::{FLUSH_DEADLINE, Result};
use crate::error::CliError;

/// Where the chat's input lines come from: a pipe or a terminal's lines, or the terminal UI's
/// input line.
pub(crate) trait Input {
    /// The next line, `None` at the end of the input.
    async fn next_line(&mut self) -> std::io::Result<Option<String>>;
}

impl<R: tokio::io::AsyncBufRead + Unpin> Input for tokio::io::Lines<R> {
    async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        tokio::io::Lines::next_line(self).await
    }
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

/// What the chat remembers while it runs: the current conversation, which banners were shown,
/// and which receipts were announced.
#[derive(Default)]
pub(crate) struct Session {
    /// The current conversation.
    pub(crate) current: Option<ConversationId>,
    /// The conversations whose banner was shown.
    pub(crate) banners: std::collections::HashSet<ConversationId>,
    /// Receipts already announced.
    pub(crate) receipts: Receipts,
    /// The upload running, if any: a chunk is sent whenever the loop is idle.
    pub(crate) upload: Option<upload::Job>,
    /// Key changes the periodic check already showed (conversation, name): shown once.
    key_changes: std::collections::HashSet<(ConversationId, String)>,
    /// The stored-bytes warnings shown, so that each is shown once.
    pub(crate) quotas: QuotaTold,
    /// The conversations holding a notice not yet confirmed by the org's trustees: the ones
    /// the periodic check judges again ([`super::notices::recheck_notices`]), marked in the list. Read from
    /// the local logs at the start, then again for a conversation whenever one of its notices
    /// is shown or updated.
    pub(crate) unconfirmed: BTreeSet<ConversationId>,
    /// The failures of that check already warned of: each once per conversation.
    pub(crate) notice_failures: super::notices::RecheckFailures,
}

/// Runs the chat until `/quit` or the end of `input` (see [`super::run`]).
pub(crate) async fn drive<I: Input, S: Sink>(
    client: &mut Client,
    input: &mut I,
    out: &mut S,
    conversation: Option<ConversationId>,
    interrupts: &mut Interrupts,
) -> Result<()> {
    let mut s = Session::default();
    if is_customer(client) {
        // Told at once of a re-certified agent (the periodic re-check stays the fallback); a
        // relay too old to know the request, or a lost connection, is no reason to stop here.
        match client.watch_agent_keys().await.map_err(CliError::from) {
            Err(e) if is_fatal(&e) && !is_connection_lost(&e) => return Err(e),
            Ok(()) | Err(_) => {}
        }
    }
    let events = client.sync_all().await?;
    // Every conversation's log is read once here; later only those a notice event touches.
    for m in client.account().conversations().unwrap_or_default() {
        note_unconfirmed(client, &mut s, m.id);
    }
    show_events(client, out, &events, &mut s).map_err(io)?;
    // A quota at its warning level is told at sign-in, in a push the sync set aside.
    s.quotas
        .show_pushes(out, client.take_other_pushes())
        .map_err(io)?;
    s.current = conversation.or_else(|| {
        client
            .account()
            .conversations()
            .ok()
            .and_then(|c| c.last().map(|m| m.id))
    });
    out.show(Shown::Welcome {
        name: client.account().name().to_owned(),
        role: client.account().role().to_string(),
    })
    .map_err(io)?;
    if let Some(text) = super::key_recheck::ignored() {
        out.show(Shown::Warning {
            conversation: None,
            here: false,
            text,
        })
        .map_err(io)?;
    }
    conversations(client, out, &s, true).map_err(io)?;
    let mut online = true;
    // The wait before the next reconnection attempt: back to the shortest only once a
    // reconnection caught up (`resume`) and then stayed up (`backoff`'s module docs).
    let mut backoff = Backoff::default();
    if let Some(id) = s.current {
        match select(client, out, id, &mut s).await {
            Ok(()) => {}
            Err(e) if is_connection_lost(&e) => {
                online = false;
                lost(client, out, &e, &mut backoff).map_err(io)?;
            }
            Err(e) => return Err(e),
        }
    }
    // Lines to send once the relay is back, with the conversation they were typed in.
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut input_done = false;
    let mut flush_deadline: Option<tokio::time::Instant> = None;
    let mut recheck = tokio::time::Instant::now() + super::key_recheck::period();
    // `/quit` was typed while a file uploads: leave once it is sent (or cancelled).
    let mut quitting = false;
    loop {
        out.flush().map_err(io)?;
        if online {
            // The end of the input and `/quit` wait for a running upload to be sent.
            if (input_done || quitting) && s.upload.is_none() {
                break;
            }
            tokio::select! {
                line = input.next_line(), if !input_done => {
                    let line = line.map_err(|e| CliError::Io { op: "read input", source: e })?;
                    let Some(line) = line else {
                        input_done = true;
                        continue;
                    };
                    let line = line.trim();
                    if line.is_empty() {
                        continue;
                    }
                    let before = s.current.and_then(|id| client.meta(&id).ok()).map(|m| m.cursor);
                    let done = command(client, out, line, &mut s).await;
                    if done.is_ok() {
                        // What it asked the relay was answered: the connection is up.
                        backoff.answered(client.session().answers_received());
                    }
                    match done {
                        Ok(true) if s.upload.is_none() => break,
                        Ok(true) => {
                            quitting = true;
                            out.show(Shown::Info(upload::QUIT_WAITS.to_owned())).map_err(io)?;
                        }
                        // A command may have brought in items (a send catches up first): the
                        // list's unread counts and statuses follow.
                        Ok(false) => {
                            // Items a send brought in (stored before this account's message):
                            // shown now, in order, not dropped with their overtaken pushes.
                            let aside = client.take_events_aside();
                            show_events(client, out, &aside, &mut s).map_err(io)?;
                            conversations(client, out, &s, false).map_err(io)?
                        }
                        Err(e) if is_connection_lost(&e) => {
                            online = false;
                            lost(client, out, &e, &mut backoff).map_err(io)?;
                            if let (false, Some(id)) = (line.starts_with('/'), s.current) {
                                // It may have reached the relay before the connection went:
                                // after reconnecting, the history says whether it did.
                                pending.push_back(Pending { conversation: id, text: line.to_owned(), sent_after: before });
                                out.show(Shown::Kept { conversation: id, offline: false, text: line.to_owned() }).map_err(io)?;
                            }
                        }
                        Err(e) if is_fatal(&e) => return Err(e),
                        Err(e) => {
                            failed(client, out, e, s.current).map_err(io)?;
                            if let (false, Some(id)) = (line.starts_with('/'), s.current) {
                                // Refused (a quota, a key change, a limit): handed back, so
                                // that what was typed is not lost (the terminal UI puts it in
                                // the input line again).
                                out.show(Shown::NotSent { conversation: id, text: line.to_owned() }).map_err(io)?;
                            }
                        }
                    }
                }
                // Ctrl-C in the line chat: cancels a running upload, else leaves.
                () = interrupts.next() => {
                    if s.upload.is_some() {
                        upload::stop(out, &mut s).map_err(io)?;
                    } else {
                        break;
                    }
                }
                push = client.session().next_push() => {
                    let Some(push) = push else {
                        online = false;
                        let e = CliError::from(ClientError::Closed(client.session().closed()));
                        lost(client, out, &e, &mut backoff).map_err(io)?;
                        continue;
                    };
                    backoff.pushed();
                    match on_push(client, out, push, &mut s).await {
                        Ok(()) => {}
                        Err(e) if is_connection_lost(&e) => {
                            online = false;
                            lost(client, out, &e, &mut backoff).map_err(io)?;
                        }
                        Err(e) => return Err(e),
                    }
                }
                () = tokio::time::sleep_until(recheck) => {
                    recheck = tokio::time::Instant::now() + super::key_recheck::period();
                    let mut checked = recheck_agent(client, out, &mut s).await;
                    if checked.is_ok() {
                        checked = recheck_notices(client, out, &mut s).await;
                    }
                    if checked.is_ok() {
                        backoff.answered(client.session().answers_received());
                    }
                    if let Err(e) = checked {
                        if is_fatal(&e) {
                            return Err(e);
                        }
                        online = false;
                        lost(client, out, &e, &mut backoff).map_err(io)?;
                    }
                }
                step = upload::next_chunk(client, s.upload.as_mut()) => {
                    let done = match step {
                        Ok(p) => upload::stepped(client, out, p, &mut s).await,
                        Err(e) => Err(e.into()),
                    };
                    match done {
                        Ok(()) => backoff.answered(client.session().answers_received()),
                        // The upload waits for the relay; it goes on once reconnected.
                        Err(e) if is_connection_lost(&e) => {
                            online = false;
                            lost(client, out, &e, &mut backoff).map_err(io)?;
                        }
                        Err(e) if is_fatal(&e) => return Err(e),
                        Err(e) => {
                            upload::stop(out, &mut s).map_err(io)?;
                            failed(client, out, e, s.current).map_err(io)?;
                        }
                    }
                }
            }
        } else {
            // Lines kept and a running upload wait for the relay after the input ended.
            if input_done && pending.is_empty() && s.upload.is_none() {
                break;
            }
            if input_done {
                let deadline = *flush_deadline
                    .get_or_insert_with(|| tokio::time::Instant::now() + FLUSH_DEADLINE);
                if tokio::time::Instant::now() >= deadline {
                    upload::stop(out, &mut s).map_err(io)?;
                    out.show(Shown::Connection(Connection::GaveUp {
                        unsent: pending.len(),
                    }))
                    .map_err(io)?;
                    return Err(ClientError::Closed(client.session().closed()).into());
                }
            }
            tokio::select! {
                line = input.next_line(), if !input_done => {
                    let line = line.map_err(|e| CliError::Io { op: "read input", source: e })?;
                    let Some(line) = line else {
                        input_done = true;
                        continue;
                    };
                    let line = line.trim();
                    match line {
                        // The window's own typing signals wait for the relay like nothing.
                        "" | "/typing" | "/typing off" => {}
                        "/cancel" if s.upload.is_some() => upload::stop(out, &mut s).map_err(io)?,
                        "/quit" | "/exit" => {
                            upload::stop(out, &mut s).map_err(io)?;
                            if !pending.is_empty() {
                                out.show(Shown::Connection(Connection::LeftOffline { unsent: pending.len() })).map_err(io)?;
                            }
                            break;
                        }
                        c if c.starts_with('/') => {
                            failed(client, out, CliError::Offline { command: c.to_owned() }, s.current).map_err(io)?;
                        }
                        text => match s.current {
                            Some(id) => {
                                pending.push_back(Pending { conversation: id, text: text.to_owned(), sent_after: None });
                                out.show(Shown::Kept { conversation: id, offline: true, text: text.to_owned() }).map_err(io)?;
                            }
                            None => failed(client, out, CliError::NoConversationSelected { hint: "; use /list and /switch" }, None).map_err(io)?,
                        },
                    }
                }
                () = interrupts.next() => {
                    if s.upload.is_some() {
                        upload::stop(out, &mut s).map_err(io)?;
                    } else {
                        if !pending.is_empty() {
                            out.show(Shown::Connection(Connection::LeftOffline { unsent: pending.len() })).map_err(io)?;
                        }
                        break;
                    }
                }
                () = tokio::time::sleep(backoff.wait()) => {
                    match client.reconnect().await {
                        Ok(reconnected) => {
                            online = true;
                            match resume(client, out, &mut s, &mut pending, reconnected).await {
                                // Caught up: the wait starts over once the connection stays
                                // up; lost at once, it is one more failed attempt.
                                Ok(()) => backoff.caught_up(Instant::now(), client.session().answers_received()),
                                // Lost again before it caught up (a relay that cuts the
                                // connection at every re-ask, say): no success, so the next
                                // attempt waits longer, as after a refused one.
                                Err(e) if is_connection_lost(&e) => {
                                    online = false;
                                    backoff.failed();
                                    lost(client, out, &e, &mut backoff).map_err(io)?;
                                }
                                Err(e) => return Err(e),
                            }
                        }
                        // Not back yet: wait longer before the next try.
                        Err(ClientError::Transport(_) | ClientError::Closed(_) | ClientError::Timeout { .. }) => {
                            backoff.failed();
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
    }
    out.show(Shown::Bye).map_err(io)?;
    out.flush().map_err(io)?;
    Ok(())
}

/// An error writing to the display.
pub(crate) fn io(e: std::io::Error) -> CliError {
    CliError::Io {
        op: "write to the terminal",
        source: e,
    }
}

/// Shows a command's error; a key change gets its own event (the display's banner), with the
/// new key's fingerprint.
pub(crate) fn failed<S: Sink>(
    client: &Client,
    out: &mut S,
    e: CliError,
    current: Option<ConversationId>,
) -> std::io::Result<()> {
    if let CliError::Client(
        ClientError::KeyChanged { name } | ClientError::OrgKeyChanged { master: name, .. },
    ) = &e
    {
        return out.show(key_change(client, current, name));
    }
    let message = e.to_string();
    let code = crate::status::classify(&anyhow::Error::from(e)).code;
    out.show(Shown::Error { code, message })
}

/// The key-change event for `name`: the error's words and the fingerprint of the new key, to
/// compare out of band before `keys trust`.
pub(crate) fn key_change(
    client: &Client,
    conversation: Option<ConversationId>,
    name: &str,
) -> Shown {
    let mut text = ClientError::KeyChanged {
        name: name.to_owned(),
    }
    .to_string();
    if let Some(fp) = client
        .account()
        .pins()
        .ok()
        .and_then(|p| p.peers.get(name).and_then(|pin| pin.pending.clone()))
        .map(|card| {
            sealdesk_protocol::keys::Fingerprint::of(&card.signing_key, &card.agreement_key)
        })
    {
        text = format!("{text}. The new key's fingerprint: {fp}");
    }
    Shown::KeyChange {
        conversation,
        name: name.to_owned(),
        text,
    }
}

/// For a customer: asks the relay whether the current conversation's agent still has the
/// pinned key, and shows a change once (the red banner, the new fingerprint). The org's master
/// may have re-certified the agent for a new key; the customer hears of it here, not first
/// when sending. Only a lost connection (or a fatal error) is returned.
async fn recheck_agent<S: Sink>(client: &mut Client, out: &mut S, s: &mut Session) -> Result<()> {
    let Some(id) = s.current else {
        return Ok(());
    };
    match client.recheck_agent(&id).await.map_err(CliError::from) {
        Err(CliError::Client(ClientError::KeyChanged { name })) => {
            if s.key_changes.insert((id, name.clone())) {
                out.show(key_change(client, Some(id), &name)).map_err(io)?;
            }
            Ok(())
        }
        Err(e) if is_connection_lost(&e) || is_fatal(&e) => Err(e),
        // Anything else (an org key change among them) shows when the user sends.
        Ok(()) | Err(_) => Ok(()),
    }
}

/// Whether an error ends the chat (the vault is gone), rather than being shown before the
/// next line is read. A lost connection is not: the chat reconnects ([`is_connection_lost`]).
pub(crate) fn is_fatal(e: &CliError) -> bool {
    matches!(
        e,
        CliError::Client(ClientError::Closed(_) | ClientError::Vault(_))
    )
}

/// Whether an error means the connection to the relay is gone (reconnect, keep going).
pub(crate) fn is_connection_lost(e: &CliError) -> bool {
    matches!(
        e,
        CliError::Client(
            ClientError::Closed(_) | ClientError::Transport(_) | ClientError::Timeout { .. }
        )
    )
}

/// Counts the loss of the connection in `backoff` (lost right after a catch-up, it is one more
/// failed attempt: [`Backoff::dropped`]) and says that it was lost and that the chat is
/// reconnecting after `backoff`'s wait (the visible state).
fn lost<S: Sink>(
    client: &Client,
    out: &mut S,
    e: &CliError,
    backoff: &mut Backoff,
) -> std::io::Result<()> {
    backoff.dropped(Instant::now());
    let why = client.session().closed().unwrap_or_else(|| e.to_string());
    out.show(Shown::Connection(Connection::Lost {
        why,
        retry_in: backoff.wait(),
        attempts: backoff.failed_attempts(),
    }))
}

/// After a reconnection: says so, catches every conversation up from its cursor, and sends the
/// lines kept meanwhile, in order (one already stored before the connection went is not sent
/// again).
async fn resume<S: Sink>(
    client: &mut Client,
    out: &mut S,
    s: &mut Session,
    pending: &mut VecDeque<Pending>,
    reconnected: Reconnected,
) -> Result<()> {
    out.show(Shown::Connection(Connection::Reconnected))
        .map_err(io)?;
    // Asking the new session for agent-key pushes failed: the sync below asks again. A lost
    // connection shows there as such; anything else is told here, once.
    if let Some(e) = reconnected.not_asked_again
        && !matches!(e, ClientError::Closed(_) | ClientError::Transport(_))
    {
        out.show(Shown::Warning {
            conversation: None,
            here: false,
            text: format!(
                "the relay did not take the request to tell this chat at once of an agent's \
                 new key ({e}); asking again; the agent's key is still checked every minute"
            ),
        })
        .map_err(io)?;
    }
    let events = client.sync_all().await?;
    show_events(client, out, &events, s).map_err(io)?;
    // What came in meanwhile in the conversation on screen is read, as a live item would be.
    read_if_here(client, &events, s).await?;
    recheck_agent(client, out, s).await?;
    while let Some(p) = pending.front() {
        if let Some(after) = p.sent_after
            && let Some(line) = already_stored(client, &p.conversation, &p.text, after)
        {
            // Shown now: the display replaces the line it kept as pending.
            out.show(Shown::Line {
                conversation: p.conversation,
                here: Some(p.conversation) == s.current,
                line,
            })
            .map_err(io)?;
            pending.pop_front();
            continue;
        }
        let (id, text) = (p.conversation, p.text.clone());
        match send_line(client, out, id, &text, s).await {
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
                let message = format!("{e} (not sent: {text})");
                let code = crate::status::classify(&anyhow::Error::from(e)).code;
                out.show(Shown::Error { code, message }).map_err(io)?;
                out.show(Shown::NotSent {
                    conversation: id,
                    text,
                })
                .map_err(io)?;
                pending.pop_front();
            }
        }
    }
    conversations(client, out, s, false).map_err(io)?;
    Ok(())
}

/// The message of this account with `text` in the timeline after sequence `after`, if the
/// relay stored it.
fn already_stored(
    client: &Client,
    id: &ConversationId,
    text: &str,
    after: u64,
) -> Option<HistoryLine> {
    client.history(id).ok()?.lines.into_iter().find(|l| {
        matches!(l, HistoryLine::Item {
            entry: LogEntry::Message { mine: true, seq, text: t, .. },
            ..
        } if *seq > after && t == text)
    })
}

/// When `events` brought items into the conversation on screen: marks it seen and tells the
/// others it was read. Only a lost connection (or a fatal error) is returned.
async fn read_if_here(client: &mut Client, events: &[Event], s: &Session) -> Result<()> {
    if let Some(id) = s.current
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

/// Handles one push: shows what it brought, and tells the others it was read when it is in
/// the conversation on screen.
async fn on_push<S: Sink>(
    client: &mut Client,
    out: &mut S,
    push: sealdesk_protocol::wire::Push,
    s: &mut Session,
) -> Result<()> {
    // Release and ticket pushes are not shown in the chat; a quota warning is.
    let mut events: Vec<Event> = match client.handle_push(push).await? {
        Ok(events) => events,
        Err(other) => {
            s.quotas.show_pushes(out, [other]).map_err(io)?;
            Vec::new()
        }
    };
    if client.session().take_dropped_pushes() > 0 {
        events.extend(client.sync_all().await?);
    }
    show_events(client, out, &events, s).map_err(io)?;
    read_if_here(client, &events, s).await?;
    if events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Entry { .. } | EventKind::Assigned { .. }))
    {
        conversations(client, out, s, false).map_err(io)?;
    }
    Ok(())
}

/// What the chat has already told the user about delivery and reading of their own messages,
/// so that each of their messages is marked delivered and read once, not once per receipt.
#[derive(Default)]
pub(crate) struct Receipts {
    /// Per conversation: the seq of this account's latest own message.
    pub(crate) mine: std::collections::HashMap<ConversationId, u64>,
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

/// Shows the library's events.
pub(crate) fn show_events<S: Sink>(
    client: &Client,
    out: &mut S,
    events: &[Event],
    s: &mut Session,
) -> std::io::Result<()> {
    // The conversations whose notices were shown or updated: read again for the list's mark.
    let mut noticed = BTreeSet::new();
    for e in events {
        if let EventKind::Entry { entry } | EventKind::Updated { entry } = &e.kind
            && matches!(entry, LogEntry::Notice { .. })
        {
            noticed.insert(e.conversation);
        }
    }
    for id in noticed {
        note_unconfirmed(client, s, id);
    }
    for e in events {
        let here = Some(e.conversation) == s.current;
        match &e.kind {
            EventKind::Entry { entry } => {
                if let LogEntry::Message {
                    mine: true, seq, ..
                } = entry
                {
                    s.receipts.mine.insert(e.conversation, *seq);
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
                // This account's own messages were shown when they were sent.
                if !matches!(entry, LogEntry::Message { mine: true, .. }) {
                    out.show(Shown::Line {
                        conversation: e.conversation,
                        here,
                        line,
                    })?;
                }
            }
            // A line shown before now reads differently (a release another trustee joined,
            // a notice confirmed): shown again, for the display to replace the earlier wording.
            EventKind::Updated { entry } => out.show(Shown::Updated {
                conversation: e.conversation,
                here,
                line: HistoryLine::Item {
                    entry: entry.clone(),
                    delivery: None,
                    number: None,
                },
            })?,
            EventKind::Assigned { customer } => out.show(Shown::Assigned {
                conversation: e.conversation,
                customer: customer.clone(),
            })?,
            EventKind::Delivered { member, seq } => {
                if here
                    && member != client.account().name()
                    && let Some(m) = s.receipts.news(e.conversation, member, false, *seq)
                {
                    out.show(Shown::Receipt {
                        conversation: e.conversation,
                        member: member.clone(),
                        read: false,
                        seq: m,
                    })?;
                }
            }
            EventKind::Read { member, seq } => {
                if here && let Some(m) = s.receipts.news(e.conversation, member, true, *seq) {
                    out.show(Shown::Receipt {
                        conversation: e.conversation,
                        member: member.clone(),
                        read: true,
                        seq: m,
                    })?;
                }
            }
            EventKind::Typing { member, typing } => out.show(Shown::Typing {
                conversation: e.conversation,
                here,
                member: member.clone(),
                typing: *typing,
            })?,
            EventKind::Warning { text } => out.show(Shown::Warning {
                conversation: Some(e.conversation),
                here,
                text: text.clone(),
            })?,
            // The relay told of a re-certified agent and its certificate confirms it.
            EventKind::KeyChanged { name } => {
                if s.key_changes.insert((e.conversation, name.clone())) {
                    out.show(key_change(client, Some(e.conversation), name))?;
                }
            }
            EventKind::AgentKeyUnconfirmed { agent, reason } => out.show(Shown::Warning {
                conversation: Some(e.conversation),
                here,
                text: format!(
                    "the relay said {agent}'s key changed, but the org's certificate does not \
                     confirm it ({reason}); the pinned key is kept"
                ),
            })?,
        }
    }
    Ok(())
}

/// Whether this account is the customer of conversations (the banner's wording).
pub(crate) fn is_customer(client: &Client) -> bool {
    client.account().role() == Role::Customer
}
