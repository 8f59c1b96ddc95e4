//! `send --conversation ID --attach FILE [TEXT]` and `attachment save --conversation ID
//! --message N [--out PATH]`: files sent and received through the relay, end-to-end encrypted
//! (PROTOCOL.md §9.8).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use sealdesk_client::attachment::{human_size, quota_warning, safe_file_name};

use super::{Relay, connect, conv_id};
use crate::args::AttachmentCmd;
use crate::chat::event::progress_text;
use crate::print::Output;

/// Sends `file` to `conversation`, with the caption `text`; with `progress`, says on stderr how
/// far the upload got, at most every 10% (`uploading NAME 3/12 chunks (25%)`).
pub(super) async fn send(
    home: &Path,
    relay: &Relay,
    conversation: &str,
    file: &Path,
    text: &str,
    progress: bool,
) -> Result<Output> {
    let id = conv_id(conversation)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "attachment".to_owned());
    let media_type = media_type(&name);
    let mut c = connect(home, relay, false).await?;
    let id = id.resolve_synced(&mut c).await?;
    c.sync_all().await?;
    let mut tenths = 0;
    let sent = c
        .send_attachment_with_progress(&id, &bytes, &name, media_type, text, |p| {
            if progress && p.percent() / 10 > tenths {
                tenths = p.percent() / 10;
                eprintln!("{}", progress_text(&name, p.sent_chunks, p.total_chunks));
            }
        })
        .await?;
    let number = c.message_number(&id, sent.seq)?;
    c.close().await;
    let resumed = if sent.uploaded < sent.chunks {
        format!(
            ", resuming an earlier upload ({} of {} chunks were on the relay)",
            sent.chunks - sent.uploaded,
            sent.chunks
        )
    } else {
        String::new()
    };
    let mut out = Output::new(
        format!(
            "sent {name} ({}) ({}){resumed}",
            human_size(bytes.len() as u64),
            crate::print::sent_at(number, sent.seq)
        ),
        json!({
            "conversation": id.to_string(),
            "seq": sent.seq,
            "number": number,
            "name": name,
            "size": bytes.len(),
            "media_type": media_type,
            "chunks": sent.chunks,
            "uploaded": sent.uploaded,
        }),
    );
    if let Some(q) = &sent.quota {
        out = out.warn(quota_warning(q));
    }
    Ok(out)
}

/// `attachment …`.
pub(super) async fn attachment(home: &Path, relay: &Relay, cmd: AttachmentCmd) -> Result<Output> {
    match cmd {
        AttachmentCmd::Save {
            conversation,
            message,
            out,
        } => save(home, relay, &conversation, message, out.as_deref()).await,
    }
}

/// `attachment save`: fetches and checks the file, writes it, and tells the sender it was read.
async fn save(
    home: &Path,
    relay: &Relay,
    conversation: &str,
    message: u64,
    out: Option<&Path>,
) -> Result<Output> {
    let id = conv_id(conversation)?;
    let mut c = connect(home, relay, false).await?;
    let id = id.resolve_synced(&mut c).await?;
    c.sync_all().await?;
    let file = c.fetch_attachment(&id, message).await?;
    // Saved is read: the sender's mark turns to read, as `history` does for a message. Best
    // effort: the file is saved even if the receipt cannot be sent (e.g. a blocked key).
    c.mark_seen(&id)?;
    let _ = c.send_read_receipt(&id).await;
    c.close().await;
    let safe = safe_file_name(&file.name);
    let path: PathBuf = match out {
        Some(p) if p.is_dir() => p.join(&safe),
        Some(p) => p.to_path_buf(),
        None => PathBuf::from(&safe),
    };
    // `create_new`: never overwrite, and never follow a link planted at the path.
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} exists; not overwritten (choose another name with --out)",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
    };
    f.write_all(&file.bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    let size = file.bytes.len() as u64;
    let mut output = Output::new(
        format!(
            "saved {} ({}, {}) — every chunk and the SHA-256 match the signed message",
            path.display(),
            human_size(size),
            file.media_type
        ),
        json!({
            "conversation": id.to_string(),
            "message": message,
            "path": path.display().to_string(),
            "name": file.name,
            "size": size,
            "media_type": file.media_type,
        }),
    );
    if safe != file.name {
        output = output.warn(format!(
            "the sender named the file {:?}; saved under a plain name instead",
            file.name
        ));
    }
    Ok(output)
}

/// The media type a file name suggests (informational: the receiver never acts on it).
pub(crate) fn media_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "json" => "application/json",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}
