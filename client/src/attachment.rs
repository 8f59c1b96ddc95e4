//! Attachments on the client side (PROTOCOL.md §9.8): sealing a file, uploading its chunks
//! (resuming an interrupted upload), sending the message that carries its reference, and
//! fetching, checking and saving a received one.
//!
//! A received attachment's reference (its key included) is kept in the vault under the
//! message's sequence number when the message is ingested; the file itself is fetched only when
//! the user asks for it, and nothing of it is written unless every chunk opened and the size and
//! hash matched. The sender's file name is never used as a path: [`safe_file_name`] keeps one
//! plain name out of it.

use sealdesk_protocol::{
    attachment::{AttachmentRef, SealedAttachment},
    ids::ConversationId,
    message::{ContentKind, Opened},
    wire::{ByteQuota, ErrorCode, Request, Response},
};
use zeroize::Zeroizing;

use crate::{
    account::{Account, LogEntry},
    client::{Client, timeline::HistoryLine},
    error::{ClientError, Result},
    reply::unexpected,
    rng,
    store::name,
    transcript::ExportAttachment,
};

pub use crate::quota::quota_warning;

/// What a sent attachment became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentAttachment {
    /// The relay's sequence number of the message that carries it.
    pub seq: u64,
    /// Chunks uploaded in this call (fewer than all when an earlier upload is resumed).
    pub uploaded: u64,
    /// Chunks the attachment has.
    pub chunks: u64,
    /// A warning ahead of a stored-bytes quota, if the relay gave one.
    pub quota: Option<ByteQuota>,
}

/// A received attachment, opened and checked.
pub struct SavedAttachment {
    /// The file name the sender gave (untrusted; see [`safe_file_name`]).
    pub name: String,
    /// The media type the sender gave.
    pub media_type: String,
    /// The plaintext, zeroized when dropped.
    pub bytes: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for SavedAttachment {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SavedAttachment")
            .field("name", &self.name)
            .field("media_type", &self.media_type)
            .field("size", &self.bytes.len())
            .finish()
    }
}

/// How far an upload got: what [`Client::upload_step`] returns after each chunk, and what
/// [`Client::send_attachment_with_progress`] reports. No UI here: the caller shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadProgress {
    /// Chunks the relay holds (those of an earlier, interrupted upload included).
    pub sent_chunks: u64,
    /// Chunks the attachment has.
    pub total_chunks: u64,
    /// Bytes of the file those chunks cover.
    pub bytes: u64,
}

impl UploadProgress {
    /// The share of chunks the relay holds, in whole percent (0 to 100).
    pub fn percent(&self) -> u64 {
        self.sent_chunks.saturating_mul(100) / self.total_chunks.max(1)
    }
}

/// An upload under way, one chunk at a time ([`Client::start_upload`], [`Client::upload_step`],
/// [`Client::finish_upload`]). Dropping it cancels the upload: no message is sent, and the
/// vault keeps its key and id, so starting the same file again in the same conversation
/// resumes where it stopped.
pub struct Upload {
    conversation: ConversationId,
    sealed: SealedAttachment,
    /// The vault record that keeps the key and id until the message is sent.
    pending: String,
    chunks: ChunkCursor,
    text: String,
}

/// Where a resumable chunk upload stands, as the relay's answers move it: what
/// [`Client::upload_step`] and [`Client::upload_attachment`] both count.
#[derive(Debug, Clone, Copy, Default)]
struct ChunkCursor {
    /// The next chunk to send: the relay holds every chunk before it.
    next: u64,
    /// Chunks sent in this upload (not those the relay already had).
    sent: u64,
    /// The relay's first quota warning.
    quota: Option<ByteQuota>,
}

impl ChunkCursor {
    /// Takes the relay's answer to chunk `next`: it holds `stored` chunks (counted as sent
    /// only when it took just this one; more means an earlier upload left them), and may warn.
    fn record(&mut self, stored: u64, quota: Option<ByteQuota>) {
        self.quota = self.quota.or(quota);
        if stored == self.next + 1 {
            self.sent += 1;
        }
        self.next = stored;
    }
}

impl core::fmt::Debug for Upload {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Upload")
            .field("conversation", &self.conversation)
            .field("name", &self.sealed.reference.name)
            .field("progress", &self.progress())
            .finish_non_exhaustive()
    }
}

impl Upload {
    /// The conversation it goes to.
    pub fn conversation(&self) -> ConversationId {
        self.conversation
    }

    /// The file's name.
    pub fn name(&self) -> &str {
        &self.sealed.reference.name
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.sealed.reference.size
    }

    /// How far it got.
    pub fn progress(&self) -> UploadProgress {
        let chunk = sealdesk_protocol::attachment::CHUNK_SIZE as u64;
        UploadProgress {
            sent_chunks: self.chunks.next,
            total_chunks: self.sealed.reference.chunks(),
            bytes: self.chunks.next.saturating_mul(chunk).min(self.size()),
        }
    }

    /// Whether the relay holds every chunk (the message can be sent).
    pub fn uploaded(&self) -> bool {
        self.chunks.next >= self.sealed.reference.chunks()
    }
}

impl Client {
    /// Seals `bytes` as an attachment named `file_name` and sends it with the caption `text`:
    /// [`Self::send_attachment_with_progress`] without a report.
    ///
    /// # Errors
    /// As [`Self::send_attachment_with_progress`].
    pub async fn send_attachment(
        &mut self,
        id: &ConversationId,
        bytes: &[u8],
        file_name: &str,
        media_type: &str,
        text: &str,
    ) -> Result<SentAttachment> {
        self.send_attachment_with_progress(id, bytes, file_name, media_type, text, |_| {})
            .await
    }

    /// Seals `bytes` as an attachment named `file_name`, uploads it and sends the message that
    /// carries its reference (with the caption `text`), calling `progress` once the relay's
    /// first answer says where the upload stands and after every chunk. An upload of the same
    /// file to the same conversation that was interrupted is resumed from the last chunk the
    /// relay stored: the key and id are kept in the vault until the message is sent.
    ///
    /// # Errors
    /// [`ClientError::Relay`] with `too_large` or `quota_exceeded` from the relay;
    /// [`ClientError::Protocol`] for a name or media type the protocol refuses; as
    /// [`Self::send_text`].
    pub async fn send_attachment_with_progress(
        &mut self,
        id: &ConversationId,
        bytes: &[u8],
        file_name: &str,
        media_type: &str,
        text: &str,
        mut progress: impl FnMut(UploadProgress),
    ) -> Result<SentAttachment> {
        let mut upload = self.start_upload(id, bytes, file_name, media_type, text)?;
        while !upload.uploaded() {
            progress(self.upload_step(&mut upload).await?);
        }
        self.finish_upload(upload).await
    }

    /// Starts an upload: seals `bytes` (with the key and id the vault kept for an interrupted
    /// upload of the same file to the same conversation, so that it resumes), and keeps the
    /// key and id in the vault until [`Self::finish_upload`] sent the message. Nothing is sent
    /// to the relay yet.
    ///
    /// # Errors
    /// [`ClientError::Protocol`] for a file too large, or a name or media type the protocol
    /// refuses; vault errors.
    pub fn start_upload(
        &self,
        id: &ConversationId,
        bytes: &[u8],
        file_name: &str,
        media_type: &str,
        text: &str,
    ) -> Result<Upload> {
        let pending = name::attachment_upload(id, &upload_tag(bytes, file_name, media_type));
        let reference = match self.account.vault().get(&pending)? {
            Some(body) => AttachmentRef::from_body(&body)?,
            None => {
                let sealed = AttachmentRef::seal(&mut rng()?, bytes, file_name, media_type, text)?;
                self.account
                    .vault()
                    .put(&pending, &sealed.reference.to_body())?;
                sealed.reference
            }
        };
        // Sealing is deterministic for a given key and id, so the chunks of a resumed upload
        // are the bytes the relay already holds.
        let sealed = SealedAttachment {
            chunks: sealdesk_protocol::attachment::seal_chunks(
                &reference.key,
                &reference.id,
                bytes,
            )?,
            reference,
        };
        Ok(Upload {
            conversation: *id,
            sealed,
            pending,
            chunks: ChunkCursor::default(),
            text: text.to_owned(),
        })
    }

    /// Sends the upload's next chunk and returns where it stands. The first step sends chunk
    /// 0, and the relay's answer says how many chunks it already holds (an interrupted upload
    /// goes on from there). `upload` changes only once the relay answered, so a step dropped
    /// before it finished (the chat did something else meanwhile) is simply taken again.
    ///
    /// # Errors
    /// [`ClientError::Relay`] (`too_large`, `quota_exceeded`, `forbidden`, ...);
    /// [`ClientError::ImpossibleNumber`] for a relay that answers progress it cannot have.
    pub async fn upload_step(&self, upload: &mut Upload) -> Result<UploadProgress> {
        if upload.uploaded() {
            return Ok(upload.progress());
        }
        let (stored, quota) = self
            .put_chunk(&upload.conversation, &upload.sealed, upload.chunks.next)
            .await?;
        upload.chunks.record(stored, quota);
        Ok(upload.progress())
    }

    /// Uploads what chunks are left, then sends the message that carries the attachment's
    /// reference, and forgets the kept key and id.
    ///
    /// # Errors
    /// As [`Self::upload_step`] and [`Self::send_text`].
    pub async fn finish_upload(&mut self, mut upload: Upload) -> Result<SentAttachment> {
        while !upload.uploaded() {
            self.upload_step(&mut upload).await?;
        }
        let mut reference = upload.sealed.reference;
        upload.text.clone_into(&mut reference.text);
        let sent = self
            .send_kind(
                &upload.conversation,
                ContentKind::Attachment,
                &reference.to_body(),
            )
            .await?;
        self.account.vault().delete(&upload.pending)?;
        Ok(SentAttachment {
            seq: sent.seq,
            uploaded: upload.chunks.sent,
            chunks: reference.chunks(),
            // The message's warning counts the reference too: the later of the two.
            quota: sent.quota.or(upload.chunks.quota),
        })
    }

    /// Uploads a sealed attachment's chunks, resuming: chunk 0 is sent first, and the relay's
    /// answer says how many it holds; the upload goes on from there. Returns the chunks sent
    /// beyond those the relay already had, and the relay's quota warning.
    ///
    /// # Errors
    /// [`ClientError::Relay`] (`too_large`, `quota_exceeded`, `forbidden`, ...);
    /// [`ClientError::ImpossibleNumber`] for a relay that answers progress it cannot have.
    pub async fn upload_attachment(
        &self,
        id: &ConversationId,
        sealed: &SealedAttachment,
    ) -> Result<(u64, Option<ByteQuota>)> {
        let total = sealed.chunks.len() as u64;
        let mut cursor = ChunkCursor::default();
        while cursor.next < total {
            let (stored, quota) = self.put_chunk(id, sealed, cursor.next).await?;
            cursor.record(stored, quota);
        }
        Ok((cursor.sent, cursor.quota))
    }

    /// Sends chunk `index` of `sealed`; returns how many chunks the relay holds after it (more
    /// than `index`) and its quota warning.
    async fn put_chunk(
        &self,
        id: &ConversationId,
        sealed: &SealedAttachment,
        index: u64,
    ) -> Result<(u64, Option<ByteQuota>)> {
        let total = sealed.chunks.len() as u64;
        let data = sealed
            .chunks
            .get(usize::try_from(index).unwrap_or(usize::MAX))
            .cloned()
            .unwrap_or_default();
        let answer = self
            .session
            .request(Request::AttachmentPut {
                conversation: *id,
                attachment: sealed.reference.id,
                size: sealed.reference.size,
                index,
                data,
            })
            .await?;
        let Response::AttachmentProgress {
            stored,
            chunks,
            quota,
        } = answer
        else {
            return Err(unexpected("AttachmentPut", &answer));
        };
        if chunks != total || stored > total || stored <= index {
            return Err(ClientError::ImpossibleNumber {
                what: "count of an attachment's stored chunks",
                detail: format!(
                    "{stored} of {chunks} stored after chunk {index} of {total} was sent"
                ),
            });
        }
        Ok((stored, quota))
    }

    /// Fetches every chunk of `reference`'s file and opens and checks it.
    ///
    /// # Errors
    /// [`ClientError::Protocol`] with [`sealdesk_protocol::Error::Attachment`] if a chunk
    /// does not open or the size or hash does not match; relay errors.
    pub async fn fetch_reference(
        &self,
        id: &ConversationId,
        reference: &AttachmentRef,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let mut opener = reference.opener()?;
        let total = reference.chunks();
        for index in 0..total {
            let answer = self
                .session
                .request(Request::AttachmentGet {
                    conversation: *id,
                    attachment: reference.id,
                    index,
                })
                .await?;
            let Response::AttachmentChunk {
                index: got, data, ..
            } = answer
            else {
                return Err(unexpected("AttachmentGet", &answer));
            };
            if got != index {
                return Err(ClientError::ImpossibleNumber {
                    what: "attachment chunk index",
                    detail: format!("chunk {got} sent for chunk {index}"),
                });
            }
            opener.push(&data, index + 1 == total)?;
        }
        Ok(opener.finish()?)
    }

    /// Fetches, opens and checks the attachment of message number `number` (the reader's
    /// number, as `history` shows it) of conversation `id`.
    ///
    /// # Errors
    /// [`ClientError::NotAnAttachment`] if that message carries none;
    /// [`ClientError::Protocol`] with [`sealdesk_protocol::Error::Attachment`] if a chunk
    /// does not open or the size or hash does not match; relay errors.
    pub async fn fetch_attachment(
        &self,
        id: &ConversationId,
        number: u64,
    ) -> Result<SavedAttachment> {
        let seq = self
            .history(id)?
            .lines
            .iter()
            .find_map(|l| match l {
                HistoryLine::Item {
                    entry:
                        LogEntry::Message {
                            seq,
                            kind: ContentKind::Attachment,
                            ..
                        },
                    number: Some(n),
                    ..
                } if *n == number => Some(*seq),
                _ => None,
            })
            .ok_or(ClientError::NotAnAttachment { message: number })?;
        let body = self
            .account
            .vault()
            .get(&name::attachment(id, seq))?
            .ok_or(ClientError::NotAnAttachment { message: number })?;
        let reference = AttachmentRef::from_body(&body)?;
        let bytes = self.fetch_reference(id, &reference).await?;
        Ok(SavedAttachment {
            name: reference.name.clone(),
            media_type: reference.media_type.clone(),
            bytes,
        })
    }
}

impl Client {
    /// The file of an opened attachment message, for a transcript export (`None` for another
    /// kind of message, or a file the relay no longer has).
    pub(crate) async fn export_attachment(
        &self,
        id: &ConversationId,
        opened: &Opened,
    ) -> Result<Option<ExportAttachment>> {
        if opened.header.kind != ContentKind::Attachment {
            return Ok(None);
        }
        let Ok(reference) = AttachmentRef::from_body(&opened.body) else {
            return Ok(None);
        };
        let bytes = match self.cached_file(&reference)? {
            Some(b) => b,
            None => match self.fetch_reference(id, &reference).await {
                Ok(b) => {
                    self.cache_file(&reference, &b);
                    b
                }
                Err(ClientError::Relay {
                    code: ErrorCode::NotFound,
                    ..
                }) => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        Ok(Some(ExportAttachment {
            name: reference.name.clone(),
            media_type: reference.media_type.clone(),
            size: reference.size,
            sha256: hex::encode(reference.sha256),
            data: hex::encode(bytes.as_slice()),
        }))
    }
}

impl Client {
    /// The file `reference` describes, from the vault's cache of verified files, if it is
    /// there and its size and SHA-256 still match the signed reference (a record that does not
    /// is ignored, and the file fetched again).
    fn cached_file(&self, reference: &AttachmentRef) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let Some(bytes) = crate::file_cache::get(
            self.account.vault(),
            &hex::encode(reference.sha256),
            self.file_cache_limit,
        )?
        else {
            return Ok(None);
        };
        Ok(matches_reference(&bytes, reference).then_some(bytes))
    }

    /// Keeps a fetched and verified file in the vault (encrypted like every record), by its
    /// SHA-256, so the next export need not fetch it; the cache stays within its limit
    /// ([`crate::file_cache`]). A failure to keep it only costs a fetch next time.
    fn cache_file(&self, reference: &AttachmentRef, bytes: &[u8]) {
        crate::file_cache::put(
            self.account.vault(),
            &hex::encode(reference.sha256),
            bytes,
            self.file_cache_limit,
        );
    }
}

/// Whether `bytes` are the file `reference` signs for: its size and SHA-256.
fn matches_reference(bytes: &[u8], reference: &AttachmentRef) -> bool {
    let mut w = sealdesk_protocol::codec::Writer::default();
    w.fixed(bytes);
    bytes.len() as u64 == reference.size && w.sha256() == reference.sha256
}

/// Checks an exported file against the opened message it is shown with: a message of kind
/// attachment may show its file (or not: a redacted export, or one the relay no longer had);
/// a shown file must be the one its reference describes, and no other message may show one.
///
/// # Errors
/// Why it is not, in words.
pub(crate) fn check_exported(
    opened: &Opened,
    shown: Option<&ExportAttachment>,
) -> std::result::Result<(), String> {
    let Some(a) = shown else {
        return Ok(());
    };
    if opened.header.kind != ContentKind::Attachment {
        return Err("a file is shown with a message that carries none".into());
    }
    let r = AttachmentRef::from_body(&opened.body)
        .map_err(|e| format!("its attachment reference is malformed: {e}"))?;
    let data = hex::decode(&a.data).map_err(|_| "the file is not hex".to_owned())?;
    if !matches_reference(&data, &r) {
        return Err(
            "the file shown is not the one the sender signed (its SHA-256 or size \
                    differs)"
                .into(),
        );
    }
    if a.name != r.name
        || a.media_type != r.media_type
        || a.size != r.size
        || a.sha256 != hex::encode(r.sha256)
    {
        return Err("the file's name, type, size or hash shown differ from the signed ones".into());
    }
    Ok(())
}

/// The timeline entry of an opened attachment message, keeping its reference in the vault
/// under `seq` (the message's sequence number) for a later [`Client::fetch_attachment`]. A
/// body that is no reference gives the reason it is rejected.
pub(crate) fn ingest(
    account: &Account,
    id: &ConversationId,
    seq: u64,
    opened: &Opened,
) -> Result<std::result::Result<String, String>> {
    match AttachmentRef::from_body(&opened.body) {
        Ok(r) => {
            account
                .vault()
                .put(&name::attachment(id, seq), &opened.body)?;
            Ok(Ok(describe(&r)))
        }
        Err(e) => Ok(Err(format!(
            "an attachment with a malformed reference: {e}"
        ))),
    }
}

/// How an attachment message reads in a timeline: `[attachment: NAME, SIZE]`, then the caption.
pub fn describe(r: &AttachmentRef) -> String {
    let shown = format!(
        "[attachment: {}, {}]",
        printable(&r.name),
        human_size(r.size)
    );
    if r.text.is_empty() {
        shown
    } else {
        format!("{shown} {}", printable(&r.text))
    }
}

/// A size in B, KiB or MiB, as people read it.
pub fn human_size(size: u64) -> String {
    const KIB: u64 = 1024;
    match size {
        s if s < KIB => format!("{s} B"),
        s if s < KIB * KIB => format!("{:.1} KiB", s as f64 / KIB as f64),
        s => format!("{:.1} MiB", s as f64 / (KIB * KIB) as f64),
    }
}

/// A file name safe to create in a directory of the reader's choosing, from the sender's
/// (untrusted) name: its last path component only, with anything but letters, digits and
/// `. _ - + ( ) space` replaced by `_`, no leading dot (no hidden file, no `..`), at most 100
/// characters, and `attachment` when nothing is left.
pub fn safe_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '(' | ')' | ' ') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    if trimmed.is_empty() {
        "attachment".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Text with control characters (terminal escapes among them) shown as `?`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Names an upload of these bytes under this name and type (not secret: only a vault record
/// name, so the same file sent again resumes its upload).
fn upload_tag(bytes: &[u8], file_name: &str, media_type: &str) -> String {
    let mut w = sealdesk_protocol::codec::Writer::default();
    w.bytes(bytes).str(file_name).str(media_type);
    hex::encode(w.sha256())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_senders_name_never_leaves_the_directory() {
        for (given, safe) in [
            ("../../etc/passwd", "passwd"),
            ("..", "attachment"),
            ("/", "attachment"),
            ("C:\\Windows\\evil.exe", "evil.exe"),
            (".bashrc", "bashrc"),
            ("a\u{1b}[31mred.txt", "a__31mred.txt"),
            ("report (final).pdf", "report (final).pdf"),
            ("", "attachment"),
        ] {
            assert_eq!(safe_file_name(given), safe, "{given:?}");
        }
        assert_eq!(safe_file_name(&"x".repeat(300)).len(), 100);
    }

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(human_size(12), "12 B");
        assert_eq!(human_size(2048), "2.0 KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB");
    }
}
