//! `/attach` as a task the engine polls: the file is sealed when the command is read, then one
//! chunk is sent each time the engine's loop has nothing else to do, so the window keeps
//! drawing and answering keys, pushes are shown, and messages can be sent while it runs. Each
//! chunk is shown as [`Shown::UploadProgress`]; `/cancel` (Ctrl-C in the window) stops it with
//! nothing sent in the conversation, and `/attach` of the same file later resumes it (the
//! vault keeps its key and id, the relay its chunks).

use std::path::Path;

use sealdesk_client::ClientError;
use sealdesk_client::attachment::{Upload, UploadProgress};
use sealdesk_client::client::Client;
use sealdesk_protocol::ids::ConversationId;

use super::Result;
use super::commands::{show_after, split_file_arg};
use super::engine::{Session, io};
use super::event::{Shown, Sink};
use crate::error::CliError;

/// What `/quit` says while a file uploads.
pub(crate) const QUIT_WAITS: &str =
    "leaving once the file is uploaded and sent; /cancel stops the upload";

/// An upload the chat runs.
pub(crate) struct Job {
    /// The library's upload.
    upload: Upload,
    /// The conversation's cursor when it started: what came after it is shown once it is sent.
    before: u64,
}

/// `/attach FILE [TEXT]`: reads and seals the file and starts its upload; the engine sends its
/// chunks ([`next_chunk`], [`stepped`]). A file name with spaces is quoted:
/// `/attach "my file.png" caption`.
pub(crate) fn start<S: Sink>(
    client: &Client,
    out: &mut S,
    id: ConversationId,
    arg: &str,
    s: &mut Session,
) -> Result<()> {
    let (file, caption) = split_file_arg(arg);
    if file.is_empty() {
        return Err(CliError::MissingArgument {
            usage: "/attach FILE [TEXT]",
        });
    }
    let path = Path::new(&file);
    let bytes = std::fs::read(path).map_err(|source| CliError::Attach {
        path: path.to_path_buf(),
        source,
    })?;
    if let Some(job) = &s.upload {
        return Err(CliError::UploadRunning {
            name: job.upload.name().to_owned(),
        });
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "attachment".to_owned());
    let media_type = crate::commands::media_type(&name);
    let before = client.meta(&id)?.cursor;
    let upload = client.start_upload(&id, &bytes, &name, media_type, caption)?;
    out.show(Shown::Upload {
        conversation: id,
        name,
        size: upload.size(),
        chunks: upload.progress().total_chunks,
        seq: None,
    })
    .map_err(io)?;
    s.upload = Some(Job { upload, before });
    Ok(())
}

/// Sends the running upload's next chunk; never finishes when none runs (a branch of the
/// engine's `select!`). Dropped before it finished, it is taken again: the upload changes only
/// once the relay answered.
pub(crate) async fn next_chunk(
    client: &Client,
    job: Option<&mut Job>,
) -> std::result::Result<UploadProgress, ClientError> {
    match job {
        Some(j) => client.upload_step(&mut j.upload).await,
        None => std::future::pending().await,
    }
}

/// After a chunk: shows the progress and, once the relay holds every chunk, sends the message
/// and shows it.
pub(crate) async fn stepped<S: Sink>(
    client: &mut Client,
    out: &mut S,
    progress: UploadProgress,
    s: &mut Session,
) -> Result<()> {
    let Some(job) = s.upload.take_if(|j| j.upload.uploaded()) else {
        if let Some(job) = &s.upload {
            out.show(progress_shown(&job.upload, progress))
                .map_err(io)?;
        }
        return Ok(());
    };
    out.show(progress_shown(&job.upload, progress))
        .map_err(io)?;
    let (id, name, size, before) = (
        job.upload.conversation(),
        job.upload.name().to_owned(),
        job.upload.size(),
        job.before,
    );
    let sent = match client.finish_upload(job.upload).await {
        Ok(sent) => sent,
        Err(e) => {
            // Every chunk is on the relay and the vault keeps the key: `/attach` sends it.
            out.show(Shown::UploadCancelled {
                conversation: id,
                name,
                sent_chunks: progress.sent_chunks,
                total_chunks: progress.total_chunks,
            })
            .map_err(io)?;
            return Err(e.into());
        }
    };
    s.receipts.mine.insert(id, sent.seq);
    out.show(Shown::Upload {
        conversation: id,
        name,
        size,
        chunks: sent.chunks,
        seq: Some(sent.seq),
    })
    .map_err(io)?;
    let org = client.meta(&id)?.org;
    if sent.quota.is_none() {
        s.quotas.below(&org);
    }
    if let Some(quota) = sent.quota
        && s.quotas.news(Some(&org), &quota)
    {
        out.show(Shown::QuotaWarning {
            conversation: id,
            here: Some(id) == s.current,
            quota,
        })
        .map_err(io)?;
    }
    if Some(id) == s.current {
        show_after(client, out, id, before)?;
        client.mark_seen(&id)?;
    }
    Ok(())
}

/// `/cancel` (Ctrl-C in the window while uploading): stops the upload, says how far it got and
/// that `/attach` of the same file resumes it. Nothing was sent in the conversation.
///
/// # Errors
/// [`CliError::NothingToCancel`] when no upload runs.
pub(crate) fn cancel<S: Sink>(out: &mut S, s: &mut Session) -> Result<()> {
    if s.upload.is_none() {
        return Err(CliError::NothingToCancel);
    }
    stop(out, s).map_err(io)
}

/// Stops the running upload, if any, saying so (`/cancel`, `/quit`, a failed upload).
pub(crate) fn stop<S: Sink>(out: &mut S, s: &mut Session) -> std::io::Result<()> {
    let Some(job) = s.upload.take() else {
        return Ok(());
    };
    let p = job.upload.progress();
    out.show(Shown::UploadCancelled {
        conversation: job.upload.conversation(),
        name: job.upload.name().to_owned(),
        sent_chunks: p.sent_chunks,
        total_chunks: p.total_chunks,
    })
}

fn progress_shown(upload: &Upload, p: UploadProgress) -> Shown {
    Shown::UploadProgress {
        conversation: upload.conversation(),
        name: upload.name().to_owned(),
        sent_chunks: p.sent_chunks,
        total_chunks: p.total_chunks,
        bytes: p.bytes,
    }
}
