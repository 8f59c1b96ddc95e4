//! The master's transcript commands: `transcript unlock` (ask the trustees, under a consent or
//! an approved ticket), `transcript show`, and `transcript export` (json, text or html).
//! `transcript verify` is [`super::verify`].

use std::path::Path;

use anyhow::{Result, bail};
use sealdesk_client::{
    escrow::{Transcript, transcript_releases},
    fmt_time,
};
use serde_json::json;

use super::verify::verify_file;
use super::{Relay, connect, conv_id, token_id};
use crate::args::TranscriptCmd;
use crate::print::Output;
use sealdesk_protocol::message::{ContentKind, Envelope};

/// A released transcript for people: its release notices, messages and gaps.
fn transcript_text(t: &Transcript) -> String {
    let mut s = format!(
        "transcript of {} ({}){}\n",
        t.conversation,
        t.org,
        if t.redacted { " — redacted" } else { "" }
    );
    for line in transcript_releases(t) {
        s.push_str(&format!("  {line}\n"));
    }
    let numbers = numbered(t.messages.iter().map(|m| Some(m.envelope.header.kind)));
    for (m, n) in t.messages.iter().zip(&numbers) {
        s.push_str(&format!(
            "{} {} {} (epoch {}): {}   [signature verified]\n",
            item_label(*n, m.seq),
            fmt_time(m.sent_at),
            m.sender,
            m.epoch,
            m.text
        ));
    }
    for (epoch, sender, missing) in &t.gaps {
        s.push_str(&format!(
            "  ⋯ gap: {} from {sender} in epoch {epoch} missing\n",
            crate::print::counted(missing.len() as u64, "message", "messages")
        ));
    }
    s
}

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
/// chunk opened, size and SHA-256 against the signed reference), and the count of attachment
/// messages whose file the relay no longer has. The stored transcript keeps text messages
/// only, so the files come from the export's reading of the released epochs. None for a
/// redacted release (redacted exports leave files out).
///
/// # Errors
/// Why the files could not be listed (the transcript itself is still shown).
async fn attachments(
    c: &mut sealdesk_client::Client,
    id: &sealdesk_protocol::ids::ConversationId,
    t: &Transcript,
) -> Result<(Vec<ShownFile>, usize)> {
    if t.redacted {
        return Ok((Vec::new(), 0));
    }
    let export = c.export_transcript(id, false).await?;
    let mut files = Vec::new();
    let mut gone = 0;
    for m in export.messages {
        match m.attachment {
            Some(a) => files.push(ShownFile {
                seq: m.seq,
                sender: m.sender,
                name: a.name,
                size: a.size,
                media_type: a.media_type,
                sha256: a.sha256,
                checked: true,
            }),
            None if m.text.starts_with("[attachment: ") => gone += 1,
            None => {}
        }
    }
    Ok((files, gone))
}

/// The attachments section of `transcript show`: each file, or why there is none.
fn attachments_text(files: &[ShownFile], gone: usize) -> String {
    if files.is_empty() && gone == 0 {
        return String::new();
    }
    let mut s = format!("attachments ({}):\n", files.len() + gone);
    for f in files {
        s.push_str(&format!(
            "  #{} {} from {}: {} ({}, SHA-256 {}…) — {}\n",
            f.seq,
            sealdesk_client::attachment::safe_file_name(&f.name),
            f.sender,
            f.media_type,
            sealdesk_client::attachment::human_size(f.size),
            f.sha256.get(..16).unwrap_or(&f.sha256),
            if f.checked {
                "checked: every chunk and the SHA-256 match the signed message"
            } else {
                "not checked"
            }
        ));
    }
    if gone > 0 {
        s.push_str(&format!(
            "  {} no longer on the relay\n",
            crate::print::counted(gone as u64, "file", "files")
        ));
    }
    s
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
            Output::new(
                transcript_text(&t).trim_end().to_owned(),
                json!({"ok": true, "messages": t.messages.len(), "epochs": t.records.iter().map(|r| r.epoch).collect::<Vec<_>>()}),
            )
        }
        TranscriptCmd::Show { conversation } => {
            let id = conv_id(&conversation)?.resolve_synced(&mut c).await?;
            let t = c.transcript(&id)?;
            let mut text = transcript_text(&t);
            let (files, warning) = match attachments(&mut c, &id, &t).await {
                Ok((files, gone)) => {
                    text.push_str(&attachments_text(&files, gone));
                    (files, None)
                }
                Err(e) => (
                    Vec::new(),
                    Some(format!("the attachments could not be listed: {e:#}")),
                ),
            };
            let mut out = Output::new(
                text.trim_end().to_owned(),
                json!({
                    "messages": t.messages.iter().zip(numbered(t.messages.iter().map(|m| Some(m.envelope.header.kind)))).map(|(m, n)| json!({"number": n, "seq": m.seq, "sender": m.sender, "text": m.text, "epoch": m.epoch})).collect::<Vec<_>>(),
                    "attachments": files.iter().map(|f| json!({
                        "seq": f.seq, "sender": f.sender, "name": f.name, "size": f.size,
                        "media_type": f.media_type, "sha256": f.sha256, "checked": f.checked,
                    })).collect::<Vec<_>>(),
                }),
            );
            if let Some(w) = warning {
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
                "text" => {
                    let mut s = format!("Transcript of {} ({})\n", export.conversation, export.org);
                    for r in &export.releases {
                        s.push_str(&format!("Released: {} [audit #{}]\n", r.text, r.index));
                    }
                    let numbers = numbered(export.messages.iter().map(export_kind));
                    for (m, n) in export.messages.iter().zip(&numbers) {
                        s.push_str(&format!(
                            "{} {} {}: {}\n",
                            item_label(*n, m.seq),
                            fmt_time(m.sent_at),
                            m.sender,
                            m.text
                        ));
                    }
                    s
                }
                "html" => {
                    let esc = |s: &str| {
                        s.replace('&', "&amp;")
                            .replace('<', "&lt;")
                            .replace('>', "&gt;")
                            .replace('"', "&quot;")
                    };
                    let mut s = format!(
                        "<!doctype html><meta charset=utf-8><title>Transcript {}</title><h1>Transcript of {} ({})</h1><ul>",
                        esc(&export.conversation),
                        esc(&export.conversation),
                        esc(&export.org)
                    );
                    for r in &export.releases {
                        s.push_str(&format!(
                            "<li>Released: {} [audit #{}]</li>",
                            esc(&r.text),
                            r.index
                        ));
                    }
                    s.push_str("</ul><table>");
                    let numbers = numbered(export.messages.iter().map(export_kind));
                    for (m, n) in export.messages.iter().zip(&numbers) {
                        s.push_str(&format!(
                            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            item_label(*n, m.seq),
                            fmt_time(m.sent_at),
                            esc(&m.sender),
                            esc(&m.text)
                        ));
                    }
                    s.push_str("</table>");
                    s
                }
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

/// An exported message's kind, read from its envelope (`None` if that does not decode).
fn export_kind(m: &sealdesk_client::transcript::ExportMessage) -> Option<ContentKind> {
    let bytes = hex::decode(&m.envelope).ok()?;
    sealdesk_protocol::wire::from_cbor::<Envelope>(&bytes, "envelope")
        .ok()
        .map(|e| e.header.kind)
}

/// The number `history` gives each item that is a message (text or file: 1, 2, 3 … in
/// order), `None` for the others (read receipts, status changes).
fn numbered(kinds: impl Iterator<Item = Option<ContentKind>>) -> Vec<Option<u64>> {
    let mut n = 0;
    kinds
        .map(|k| {
            matches!(k, Some(ContentKind::Text | ContentKind::Attachment)).then(|| {
                n += 1;
                n
            })
        })
        .collect()
}

/// An item's label: a message's number as `history` shows it and the relay's sequence number
/// ("#2 (seq 4)"); only the sequence number for an item that is not a message ("(seq 5)").
fn item_label(number: Option<u64>, seq: u64) -> String {
    match number {
        Some(n) => format!("#{n} (seq {seq})"),
        None => format!("(seq {seq})"),
    }
}

/// What an export holds, in the words `history` uses: "7 messages" when that is all, else
/// "12 items: 7 messages, 4 read receipts, 1 status change" (a read receipt or a status is a
/// signed item of the transcript, not a message `history` numbers).
fn exported_items(messages: &[sealdesk_client::transcript::ExportMessage]) -> String {
    let (mut said, mut read, mut status, mut other) = (0u64, 0u64, 0u64, 0u64);
    for m in messages {
        match export_kind(m) {
            Some(ContentKind::Text | ContentKind::Attachment) => said += 1,
            Some(ContentKind::Read) => read += 1,
            Some(ContentKind::Status) => status += 1,
            None => other += 1,
        }
    }
    let counted = crate::print::counted;
    if said == messages.len() as u64 {
        return counted(said, "message", "messages");
    }
    let parts: Vec<String> = [
        (said, "message", "messages"),
        (read, "read receipt", "read receipts"),
        (status, "status change", "status changes"),
        (other, "other item", "other items"),
    ]
    .into_iter()
    .filter(|(n, ..)| *n > 0)
    .map(|(n, one, many)| counted(n, one, many))
    .collect();
    format!(
        "{}: {}",
        counted(messages.len() as u64, "item", "items"),
        parts.join(", ")
    )
}

/// `transcript verify` never reaches the connected branch (it returns before connecting).
fn unreachable_verify() -> Result<Output> {
    bail!("transcript verify is handled before connecting")
}
