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
    for m in &t.messages {
        s.push_str(&format!(
            "#{} {} {} (epoch {}): {}   [signature verified]\n",
            m.seq,
            fmt_time(m.sent_at),
            m.sender,
            m.epoch,
            m.text
        ));
    }
    for (epoch, sender, missing) in &t.gaps {
        s.push_str(&format!(
            "  ⋯ gap: {} message(s) from {sender} in epoch {epoch} missing\n",
            missing.len()
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
            let id = conv_id(&conversation)?;
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
            let t = c.transcript(&conv_id(&conversation)?)?;
            Output::new(
                transcript_text(&t).trim_end().to_owned(),
                json!({"messages": t.messages.iter().map(|m| json!({"seq": m.seq, "sender": m.sender, "text": m.text, "epoch": m.epoch})).collect::<Vec<_>>()}),
            )
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
            let id = conv_id(&conversation)?;
            let export = c.export_transcript(&id, redact).await?;
            let body = match format.as_str() {
                "json" => serde_json::to_string_pretty(&export)?,
                "text" => {
                    let mut s = format!("Transcript of {} ({})\n", export.conversation, export.org);
                    for r in &export.releases {
                        s.push_str(&format!("Released: {} [audit #{}]\n", r.text, r.index));
                    }
                    for m in &export.messages {
                        s.push_str(&format!(
                            "#{} {} {}: {}\n",
                            m.seq,
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
                    for m in &export.messages {
                        s.push_str(&format!(
                            "<tr><td>#{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            m.seq,
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
                    "exported {} message(s) to {}{}",
                    export.messages.len(),
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
