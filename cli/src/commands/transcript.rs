//! The master's transcript commands: `transcript unlock` (ask the trustees, under a consent or
//! an approved ticket), `transcript show`, and `transcript export` (json, text or html).
//! `transcript verify` is [`super::verify`].

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};
use sealdesk_client::escrow::Transcript;
use serde_json::json;

use super::transcript_render::{
    FileCheck, Kept, NOT_KNOWN_NUMBERED, UNNUMBERED, export_html, export_kind, export_text,
    exported_items, transcript_numbers, transcript_text,
};
use super::verify::verify_file;
use super::{Relay, connect, conv_id, token_id};
use crate::args::TranscriptCmd;
use crate::print::Output;
use sealdesk_protocol::message::ContentKind;

/// A released transcript's file, as `transcript show` lists it.
struct ShownFile {
    seq: u64,
    sender: String,
    name: String,
    size: u64,
    media_type: String,
    sha256: String,
    /// Fetched, opened chunk by chunk, and its size and SHA-256 matched the signed message.
    checked: bool,
}

/// The files of a released transcript, each fetched and checked as the export does (every
/// chunk opened, size and SHA-256 against the signed reference), and what became of each
/// file message's file, by sequence number (checked, or no longer on the relay). None for a
/// redacted release (redacted exports leave files out).
///
/// # Errors
/// Why the files could not be listed (the transcript itself is still shown).
async fn attachments(
    c: &mut sealdesk_client::Client,
    id: &sealdesk_protocol::ids::ConversationId,
    t: &Transcript,
) -> Result<(Vec<ShownFile>, BTreeMap<u64, FileCheck>)> {
    let mut files = Vec::new();
    let mut checks = BTreeMap::new();
    if t.redacted {
        return Ok((files, checks));
    }
    let export = c.export_transcript(id, false).await?;
    for m in export.messages {
        if export_kind(&m) != Some(ContentKind::Attachment) {
            continue;
        }
        match m.attachment {
            Some(a) => {
                checks.insert(m.seq, FileCheck::Checked);
                files.push(ShownFile {
                    seq: m.seq,
                    sender: m.sender,
                    name: a.name,
                    size: a.size,
                    media_type: a.media_type,
                    sha256: a.sha256,
                    checked: true,
                });
            }
            None => {
                checks.insert(m.seq, FileCheck::Gone);
            }
        }
    }
    Ok((files, checks))
}

/// `t` with its files: a transcript kept by an earlier version (texts only) is rebuilt from
/// the relay with the epoch keys this account kept ([`sealdesk_client::Client::rebuild_transcript`]);
/// if that cannot be done, `t` as it is and why.
async fn with_files(
    c: &mut sealdesk_client::Client,
    id: &sealdesk_protocol::ids::ConversationId,
    t: Transcript,
) -> (Transcript, Kept) {
    if t.with_files {
        return (t, Kept::WithFiles);
    }
    match c.rebuild_transcript(id).await {
        Ok(rebuilt) => (rebuilt, Kept::Rebuilt),
        Err(e) => (t, Kept::WithoutFiles(format!("{e:#}"))),
    }
}

/// Why `t`'s messages do not get `history`'s numbers, if they do not
/// ([`sealdesk_client::Client::transcript_numbers_hold`]), and a warning if the relay's history
/// could not be read to tell (then they do not: a number that may be wrong is worse than the
/// sequence number).
async fn numbering(
    c: &mut sealdesk_client::Client,
    id: &sealdesk_protocol::ids::ConversationId,
    t: &Transcript,
) -> (Option<&'static str>, Option<String>) {
    match c.transcript_numbers_hold(id, t).await {
        Ok(holds) => ((!holds).then_some(UNNUMBERED), None),
        Err(e) => (
            Some(NOT_KNOWN_NUMBERED),
            Some(format!(
                "the relay's history could not be read to tell whether messages of epochs not \
                 released come first ({e:#}), so messages are named by sequence number"
            )),
        ),
    }
}

/// `transcript unlock|show|export`; `verify` goes to [`verify_file`] without connecting.
pub(super) async fn transcript(
    home: &Path,
    home_given: bool,
    relay: &Relay,
    cmd: TranscriptCmd,
) -> Result<Output> {
    if let TranscriptCmd::Verify {
        file,
        org_fingerprint,
        log_key,
        no_anchor,
    } = &cmd
    {
        return verify_file(
            file,
            home_given.then_some(home),
            org_fingerprint,
            log_key,
            *no_anchor,
        );
    }
    let mut c = connect(home, relay, false).await?;
    let out = match cmd {
        TranscriptCmd::Unlock {
            conversation,
            consent,
            ticket,
            wait,
        } => {
            let id = conv_id(&conversation)?.resolve_synced(&mut c).await?;
            let ticket = ticket.as_deref().map(token_id).transpose()?;
            let j = c
                .justification(&id, consent.as_deref(), ticket.as_ref())
                .await?;
            let t = c
                .unlock(&id, j, None, std::time::Duration::from_secs(wait), |p| {
                    eprintln!(
                        "trustees: {} of {} released{}",
                        p.released,
                        p.needed,
                        if p.refusals.is_empty() {
                            String::new()
                        } else {
                            format!(", {} refused", p.refusals.len())
                        }
                    );
                })
                .await?;
            let (t, kept) = with_files(&mut c, &id, t).await;
            let (unnumbered, numbering_warning) = numbering(&mut c, &id, &t).await;
            let mut out = Output::new(
                transcript_text(&t, &BTreeMap::new(), unnumbered, kept.rebuilt())
                    .trim_end()
                    .to_owned(),
                json!({
                    "ok": true, "messages": t.messages.len(),
                    "epochs": t.records.iter().map(|r| r.epoch).collect::<Vec<_>>(),
                    "numbered": unnumbered.is_none(), "unnumbered_because": unnumbered,
                    "rebuilt": kept.rebuilt(),
                }),
            );
            for w in kept.warning().into_iter().chain(numbering_warning) {
                out = out.warn(w);
            }
            out
        }
        TranscriptCmd::Show { conversation } => {
            let id = conv_id(&conversation)?.resolve_synced(&mut c).await?;
            let t = c.transcript(&id)?;
            let (t, kept) = with_files(&mut c, &id, t).await;
            let (unnumbered, numbering_warning) = numbering(&mut c, &id, &t).await;
            let (files, checks, warning) = match attachments(&mut c, &id, &t).await {
                Ok((files, checks)) => (files, checks, None),
                Err(e) => (
                    Vec::new(),
                    BTreeMap::new(),
                    Some(format!("the attachments could not be checked: {e:#}")),
                ),
            };
            let text = transcript_text(&t, &checks, unnumbered, kept.rebuilt());
            let mut out = Output::new(
                text.trim_end().to_owned(),
                json!({
                    "messages": t.messages.iter().zip(transcript_numbers(&t, unnumbered.is_none())).map(|(m, n)| json!({
                        "number": n, "seq": m.seq, "sender": m.sender, "text": m.text, "epoch": m.epoch,
                        "kind": kind_name(m.envelope.header.kind),
                    })).collect::<Vec<_>>(),
                    "numbered": unnumbered.is_none(),
                    "unnumbered_because": unnumbered,
                    "rebuilt": kept.rebuilt(),
                    "attachments": files.iter().map(|f| json!({
                        "seq": f.seq, "sender": f.sender, "name": f.name, "size": f.size,
                        "media_type": f.media_type, "sha256": f.sha256, "checked": f.checked,
                    })).collect::<Vec<_>>(),
                }),
            );
            for w in kept
                .warning()
                .into_iter()
                .chain(numbering_warning)
                .chain(warning)
            {
                out = out.warn(w);
            }
            out
        }
        TranscriptCmd::Export {
            conversation,
            out,
            format,
            redact,
            force,
        } => {
            if !force && out.exists() {
                return Err(crate::error::CliError::FileExists { path: out }.into());
            }
            let id = conv_id(&conversation)?.resolve_synced(&mut c).await?;
            let export = c.export_transcript(&id, redact).await?;
            let body = match format.as_str() {
                "json" => serde_json::to_string_pretty(&export)?,
                "text" => export_text(&export),
                "html" => export_html(&export),
                _ => bail!("--format is json, text or html"),
            };
            super::write_output(&out, body.as_bytes(), force)?;
            Output::new(
                format!(
                    "exported {} to {}{}",
                    exported_items(&export.messages),
                    out.display(),
                    if export.redacted { " (redacted)" } else { "" }
                ),
                json!({"ok": true, "out": out, "redacted": export.redacted}),
            )
        }
        TranscriptCmd::Verify { .. } => unreachable_verify()?,
    };
    c.close().await;
    Ok(out)
}

/// `transcript verify` never reaches the connected branch (it returns before connecting).
fn unreachable_verify() -> Result<Output> {
    bail!("transcript verify is handled before connecting")
}

/// A message kind's name in `--json` output.
fn kind_name(kind: ContentKind) -> &'static str {
    match kind {
        ContentKind::Text => "text",
        ContentKind::Attachment => "attachment",
        ContentKind::Read => "read",
        ContentKind::Status => "status",
    }
}
