//! Conversation commands: `open`, `send`, `conversations`, `history`, `chat`, `transfer` and
//! `erase`. `conversations` and `history` fall back to local state when the relay is
//! unreachable, and say so.

use std::path::Path;

use anyhow::{Result, bail};
use sealdesk_client::{
    Account, Client, ClientError,
    account::LogEntry,
    client::HistoryLine,
    quota::{quota_pushes, quota_warning},
};
use sealdesk_protocol::card::Role;
use serde_json::json;

use super::{Relay, connect, conv_id, open_account};
use crate::print::{Output, render_line};

/// `open --org ORG`: a new conversation with the org, its policy summarised first.
pub(super) async fn open(
    home: &Path,
    relay: &Relay,
    org: &str,
    org_fingerprint: Option<&str>,
    token: Option<sealdesk_protocol::open_token::OpenToken>,
) -> Result<Output> {
    let mut c = connect(home, relay, false).await?;
    let o = c
        .open_conversation_with(org, org_fingerprint, token)
        .await?;
    let text = format!(
        "{}\n\nOpened conversation {} with {} (agent {}, fingerprint {}).\n\
         Send with: sealdesk --home {} send --conversation {} \"hello\"",
        o.summary,
        o.conversation,
        o.org,
        o.agent,
        o.agent_fingerprint,
        super::account::shell_word(&home.display().to_string()),
        o.conversation
    );
    let mut out = Output::new(
        text,
        json!({
            "ok": true, "conversation": o.conversation.to_string(), "org": o.org,
            "agent": o.agent, "agent_fingerprint": o.agent_fingerprint,
            "org_fingerprint": o.org_fingerprint, "summary": o.summary,
        }),
    );
    out.warnings.clone_from(&o.warnings);
    c.close().await;
    Ok(out)
}

/// `send --conversation ID TEXT`: catches up, then sends one message.
pub(super) async fn send(
    home: &Path,
    relay: &Relay,
    conversation: &str,
    text: &str,
) -> Result<Output> {
    let id = conv_id(conversation)?;
    let mut c = connect(home, relay, false).await?;
    let id = id.resolve_synced(&mut c).await?;
    c.sync_all().await?;
    let sent = c.send_text_report(&id, text).await?;
    let seq = sent.seq;
    let number = c.message_number(&id, seq)?;
    // Quotas this account is concerned by at their warning level: told at sign-in (a push the
    // catch-up set aside) or as this message crossed one (its own is in the answer too).
    let own = sent.quota.as_ref().map(quota_warning);
    let mut pushed = quota_pushes(&c.take_other_pushes());
    pushed.retain(|w| Some(w) != own.as_ref());
    pushed.dedup();
    c.close().await;
    let mut doc = json!({"ok": true, "conversation": id.to_string(), "seq": seq, "number": number});
    if let (Some(q), Some(m)) = (&sent.quota, doc.as_object_mut()) {
        // The warning as data; in words it is among `warnings` (stderr in text mode).
        m.insert("quota".into(), json!(q));
    }
    let out = Output::new(
        format!("sent ({})", crate::print::sent_at(number, seq)),
        doc,
    );
    Ok(pushed
        .into_iter()
        .chain(own)
        .fold(out, |out, w| out.warn(w)))
}

/// The interactive chat on `display` (see [`crate::chat`]).
pub(super) async fn chat(
    home: &Path,
    relay: &Relay,
    conversation: Option<&str>,
    display: crate::chat::Display,
) -> Result<()> {
    let id = conversation.map(conv_id).transpose()?;
    let mut c = connect(home, relay, false).await?;
    let id = match id {
        Some(i) => Some(i.resolve_synced(&mut c).await?),
        None => None,
    };
    let stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let mut stdout = std::io::stdout();
    match display {
        crate::chat::Display::Text => {
            crate::chat::run_catching_ctrl_c(&mut c, stdin, &mut stdout, id, false).await?;
        }
        crate::chat::Display::Json => {
            crate::chat::run_catching_ctrl_c(&mut c, stdin, &mut stdout, id, true).await?;
        }
        crate::chat::Display::Window => crate::chat::tui::run(&mut c, id).await?,
    }
    c.close().await;
    Ok(())
}

/// `transfer --conversation ID --to AGENT`: a new epoch sealed to the customer and `to`.
pub(super) async fn transfer(
    home: &Path,
    relay: &Relay,
    conversation: &str,
    to: &str,
) -> Result<Output> {
    let id = conv_id(conversation)?;
    let mut c = connect(home, relay, false).await?;
    let id = id.resolve_synced(&mut c).await?;
    c.sync_all().await?;
    let epoch = c.transfer(&id, to).await?;
    c.close().await;
    Ok(Output::new(
        format!("transferred {id} to {to}: epoch {epoch} is sealed to the customer and {to}"),
        json!({"ok": true, "conversation": id.to_string(), "to": to, "epoch": epoch}),
    ))
}

/// `erase --conversation ID`: asks the relay to erase the conversation; the local copy stays.
pub(super) async fn erase(home: &Path, relay: &Relay, conversation: &str) -> Result<Output> {
    let id = conv_id(conversation)?;
    let mut c = connect(home, relay, false).await?;
    let id = id.resolve_synced(&mut c).await?;
    c.erase(&id).await?;
    c.mark_erased(&id)?;
    c.close().await;
    Ok(Output::new(
        format!("the relay erased conversation {id}; your local copy is kept"),
        json!({"ok": true, "conversation": id.to_string()}),
    ))
}

/// Connects and catches up; when the relay is unreachable, falls back to local state and says so.
async fn sync_or_offline(
    home: &Path,
    relay: &Relay,
) -> Result<(Option<Client>, Option<Account>, Option<String>)> {
    sync_or_offline_with(open_account(home)?, relay).await
}

/// [`sync_or_offline`] with the account already open. With several relay URLs (the nodes of a
/// cluster), the first that answers; offline only if none does.
async fn sync_or_offline_with(
    account: Account,
    relay: &Relay,
) -> Result<(Option<Client>, Option<Account>, Option<String>)> {
    let urls = if relay.urls.is_empty() {
        std::slice::from_ref(&relay.url)
    } else {
        relay.urls.as_slice()
    };
    let mut account = account;
    let mut offline = None;
    for url in urls {
        match Client::try_connect_with(account, url, &relay.tls).await {
            Ok(mut c) => {
                c.set_relays(urls.to_vec());
                c.sync_all().await?;
                return Ok((Some(c), None, None));
            }
            Err((
                a,
                e @ (ClientError::Transport(_)
                | ClientError::Timeout { .. }
                | ClientError::Closed(_)),
            )) => {
                account = a;
                offline = Some(e);
            }
            Err((_, e)) => return Err(e.into()),
        }
    }
    let why = offline.map_or_else(|| "no relay URL".to_owned(), |e| e.to_string());
    Ok((
        None,
        Some(account),
        Some(format!("offline ({why}); showing local state")),
    ))
}

/// `conversations`: every conversation with its unread count (local state when offline); for
/// a master, the org view (see [`super::org::org_conversations`]).
pub(super) async fn conversations(home: &Path, relay: &Relay) -> Result<Output> {
    let account = open_account(home)?;
    if account.role() == Role::Master {
        let mut c = Client::connect_with(account, &relay.url, &relay.tls).await?;
        let out = super::org::org_conversations(&mut c).await;
        c.close().await;
        return out;
    }
    let (client, account, warning) = sync_or_offline_with(account, relay).await?;
    let account_ref = match (&client, &account) {
        (Some(c), _) => c.account(),
        (None, Some(a)) => a,
        (None, None) => bail!("no account"),
    };
    let mut text = String::new();
    let mut rows = Vec::new();
    let convs = account_ref.conversations()?;
    if convs.is_empty() {
        text.push_str("no conversations");
    }
    for m in &convs {
        let unread = sealdesk_client::client::unread(account_ref, &m.id)?;
        let epochs = account_ref.epochs(&m.id)?.len();
        let status = sealdesk_client::client::status::status(account_ref, &m.id)?;
        let preview = sealdesk_client::client::status::preview(account_ref, &m.id)?;
        // An erased conversation's last status says nothing now: it is shown as erased.
        let shown = if m.erased {
            "erased".to_owned()
        } else {
            status.to_string()
        };
        text.push_str(&format!(
            "{}  {}  [{shown}]  customer {}  agent {}  {}  {} unread{}{}\n",
            m.id,
            m.org,
            m.customer,
            m.agent,
            crate::print::counted(epochs as u64, "epoch", "epochs"),
            unread,
            if m.transferred_out {
                "  (transferred)"
            } else {
                ""
            },
            if m.erased {
                "  (local copy; the relay erased it)"
            } else {
                ""
            }
        ));
        if let Some(p) = &preview {
            text.push_str(&format!("    {}: {}\n", p.sender, p.text));
        }
        rows.push(json!({
            "conversation": m.id.to_string(), "org": m.org, "customer": m.customer,
            "agent": m.agent, "epochs": epochs, "unread": unread, "last_seq": m.cursor,
            "transferred_out": m.transferred_out, "erased": m.erased,
            "status": status.name(), "preview": preview,
        }));
    }
    if let Some(c) = client {
        c.close().await;
    }
    Ok(offline(
        Output::new(text.trim_end().to_owned(), json!({ "conversations": rows })),
        warning,
    ))
}

/// `history --conversation ID [--export FILE]`: the verified history (local when offline), then
/// a read receipt, best effort.
pub(super) async fn history(
    home: &Path,
    relay: &Relay,
    conversation: &str,
    export: Option<(&Path, bool)>,
) -> Result<Output> {
    let id = conv_id(conversation)?;
    let (mut client, account, warning) = sync_or_offline(home, relay).await?;
    let id = match (&client, &account) {
        (Some(c), _) => id.resolve(c.account())?,
        (None, Some(a)) => id.resolve(a)?,
        (None, None) => bail!("no account"),
    };
    let (mut h, account_ref) = match (&client, &account) {
        (Some(c), _) => (c.history(&id)?, c.account()),
        (None, Some(a)) => (sealdesk_client::client::history(a, &id)?, a),
        (None, None) => bail!("no account"),
    };
    // An agent reads what the customer was told, not the customer's own wording.
    if account_ref.role() == Role::Agent
        && let Some(meta) = account_ref.conversation(&id)?
    {
        h.summary = Some(crate::print::agent_summary(&meta.customer, &meta.org));
    }
    let mut text = String::new();
    if h.erased {
        text.push_str("this conversation was erased on the relay; this is your local copy\n");
    }
    if let Some(s) = &h.summary {
        text.push_str(&format!("🔒 {s}\n"));
    }
    for l in &h.lines {
        text.push_str(&render_line(l));
        text.push('\n');
    }
    let mut lines = serde_json::to_value(&h.lines)?;
    crate::json_hex::ids_in_hex(&mut lines);
    let value = json!({
        "conversation": id.to_string(), "org": h.org, "summary": h.summary,
        "lines": lines, "erased": h.erased,
    });
    if let Some((path, force)) = export {
        super::write_output(
            path,
            serde_json::to_string_pretty(&value)?.as_bytes(),
            force,
        )?;
        text.push_str(&format!(
            "exported to {} (plaintext: keep it safe)\n",
            path.display()
        ));
    }
    let messages = h
        .lines
        .iter()
        .filter(|l| {
            matches!(
                l,
                HistoryLine::Item {
                    entry: LogEntry::Message { .. },
                    ..
                }
            )
        })
        .count();
    if messages == 0 {
        text.push_str("(no messages yet)\n");
    }
    if let Some(c) = client.as_mut() {
        c.mark_seen(&id)?;
        // Best effort: history is still shown if the receipt cannot be sent (e.g. a blocked key).
        if !h.erased {
            let _ = c.send_read_receipt(&id).await;
        }
    }
    if let Some(c) = client {
        c.close().await;
    }
    Ok(offline(
        Output::new(text.trim_end().to_owned(), value),
        warning,
    ))
}

/// `out`, marked as shown from local state when the relay could not be reached (`warning`
/// says so): it exits with [`crate::print::EXIT_UNREACHABLE`].
fn offline(out: Output, warning: Option<String>) -> Output {
    match warning {
        Some(w) => {
            let mut out = out.warn(w);
            out.offline = true;
            out
        }
        None => out,
    }
}
