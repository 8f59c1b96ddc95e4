//! Attachments (PROTOCOL.md §9.8): ciphertext chunks uploaded in order by a member of the
//! conversation's current epoch, fetched by anyone who may read the conversation's history,
//! counted against the stored-bytes quotas ([`super::stored_bytes`]), deleted with their
//! conversation (erasure, retention), and deleted by the sweep if the upload is never finished
//! or never followed by a message from its uploader.
//!
//! The relay cannot open a chunk or the message that refers to it: it checks only what it can
//! see — membership, the size limit, the quotas, each chunk's position and exact length.

use sealdesk_protocol::{
    attachment::{chunk_ciphertext_len, chunk_count, stored_len},
    ids::{AttachmentId, ConversationId},
    keys::SigningPublicKey,
    wire::{ErrorCode, Item, Response},
};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use super::{
    Caller, Reject, Reply, Service, dec, enc,
    keys::{ATTACHMENT_RECORDS, attachment_chunk_key, attachment_key, attachment_prefix},
    lock, reject,
};
use crate::{
    limits::bytes::NearQuota,
    store::{Batch, Collection},
};

/// What the relay keeps about one upload, next to its chunks.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct AttachmentRecord {
    /// Who uploaded it (only they may add chunks).
    uploader: SigningPublicKey,
    /// The conversation's org, whose quota it counts against.
    org: String,
    /// The declared plaintext size.
    size: u64,
    /// Chunks stored, from 0.
    stored: u64,
    /// When the upload began.
    created_at: u64,
    /// When the last chunk was stored, and the conversation's last sequence number then.
    completed: Option<(u64, u64)>,
    /// Whether a message from the uploader was stored after the upload completed (then it
    /// lives as long as its conversation).
    referenced: bool,
}

impl AttachmentRecord {
    fn chunks(&self) -> u64 {
        chunk_count(self.size)
    }

    /// The bytes counted against the quotas: all of the ciphertext, from the first chunk.
    fn counted(&self) -> u64 {
        stored_len(self.size)
    }
}

impl Service {
    pub(super) async fn attachment_put(
        &self,
        caller: &Caller,
        c: ConversationId,
        id: AttachmentId,
        size: u64,
        index: u64,
        data: Vec<u8>,
    ) -> Reply {
        let s = self.conv_for(caller, &c)?;
        if !s.may_read(&caller.key(), s.current_epoch) {
            return reject(
                ErrorCode::Forbidden,
                "only a member of the conversation's current epoch may upload attachments",
            );
        }
        let quotas = self.guard.bytes;
        if size > quotas.max_attachment {
            return reject(
                ErrorCode::TooLarge,
                format!(
                    "an attachment of {size} bytes is over this relay's limit of {} bytes \
                     (max_attachment_bytes)",
                    quotas.max_attachment
                ),
            );
        }
        match chunk_ciphertext_len(size, index) {
            Some(len) if len == data.len() as u64 => {}
            Some(len) => {
                return reject(
                    ErrorCode::BadRequest,
                    format!("chunk {index} of this attachment is {len} bytes of ciphertext"),
                );
            }
            None => {
                return reject(
                    ErrorCode::BadRequest,
                    format!(
                        "an attachment of {size} bytes has {} chunks; there is no chunk {index}",
                        chunk_count(size)
                    ),
                );
            }
        }
        let now = self.clock.now();
        let (record, warning) = {
            let _w = lock(&self.writes)?;
            let rkey = attachment_key(&c, &id);
            let mut b = Batch::new();
            let (mut record, warning) = match self.store.get(Collection::Attachments, &rkey)? {
                Some(v) => {
                    let r: AttachmentRecord = dec(&v, "attachment")?;
                    if r.uploader != caller.key() || r.size != size {
                        return reject(
                            ErrorCode::IdTaken,
                            "another upload uses this attachment id: pick a fresh random id",
                        );
                    }
                    if index < r.stored {
                        // Already stored: an upload resuming asks where to go on from.
                        return Ok(progress(&r, None));
                    }
                    if index > r.stored {
                        return reject(
                            ErrorCode::BadRequest,
                            format!("chunks go in order: chunk {} is next", r.stored),
                        );
                    }
                    (r, None)
                }
                None => {
                    if index != 0 {
                        return reject(ErrorCode::BadRequest, "an upload starts with chunk 0");
                    }
                    let r = AttachmentRecord {
                        uploader: caller.key(),
                        org: s.org.clone(),
                        size,
                        stored: 0,
                        created_at: now,
                        completed: None,
                        referenced: false,
                    };
                    let warning =
                        self.check_bytes(&r.uploader, &r.org, r.counted(), "this upload")?;
                    (r, warning)
                }
            };
            record.stored += 1;
            if record.stored == record.chunks() {
                record.completed = Some((now, s.last_seq));
            }
            b.put(
                Collection::Attachments,
                &attachment_chunk_key(&c, &id, index),
                &data,
            );
            b.put(Collection::Attachments, &rkey, &enc(&record)?);
            self.store.apply(b)?;
            if index == 0 {
                self.count_bytes(&record.uploader, &record.org, signed(record.counted()))?;
            }
            (record, warning)
        };
        self.commit.durable().await?;
        debug!(conversation = %c, attachment = %id, index, size, "attachment chunk stored");
        Ok(progress(&record, warning))
    }

    pub(super) fn attachment_get(
        &self,
        caller: &Caller,
        c: ConversationId,
        id: AttachmentId,
        index: u64,
    ) -> Reply {
        let me = caller.key();
        match self.convs.get(&c)? {
            Some(s) if s.involves(&me) || self.is_master_of(&me, &s.org)? => {}
            _ => return reject(ErrorCode::NotFound, "no such conversation for this account"),
        }
        let not_found = || {
            reject(
                ErrorCode::NotFound,
                "no such attachment chunk in this conversation",
            )
        };
        let Some(v) = self
            .store
            .get(Collection::Attachments, &attachment_key(&c, &id))?
        else {
            return not_found();
        };
        let r: AttachmentRecord = dec(&v, "attachment")?;
        if index >= r.stored {
            return not_found();
        }
        let Some(data) = self.store.get(
            Collection::Attachments,
            &attachment_chunk_key(&c, &id, index),
        )?
        else {
            return not_found();
        };
        Ok(Response::AttachmentChunk {
            size: r.size,
            index,
            data,
        })
    }

    /// Deletes every attachment of `c` (with erasure: the bytes go with the conversation) and
    /// gives their bytes back to the quotas.
    pub(super) fn forget_attachments(&self, c: &ConversationId) -> Result<(), Reject> {
        let _w = lock(&self.writes)?;
        let mut b = Batch::new();
        let mut freed = Vec::new();
        for (k, v) in self
            .store
            .scan_prefix(Collection::Attachments, &attachment_prefix(c))?
        {
            let r: AttachmentRecord = dec(&v, "attachment")?;
            delete_upload(&mut b, &k, &r)?;
            freed.push(r);
        }
        self.store.apply(b)?;
        self.give_back(&freed)?;
        if !freed.is_empty() {
            info!(conversation = %c, attachments = freed.len(), "attachments erased");
        }
        Ok(())
    }

    /// Deletes uploads left unfinished, and finished uploads no message of their uploader
    /// followed, once they are older than the relay's upload expiry. Returns how many.
    pub(super) async fn sweep_attachments(&self) -> Result<usize, Reject> {
        let now = self.clock.now();
        let expiry = self.guard.bytes.upload_expiry_secs;
        let mut expired = Vec::new();
        let mut referenced = Vec::new();
        for (k, v) in self
            .store
            .scan_prefix(Collection::Attachments, ATTACHMENT_RECORDS)?
        {
            let r: AttachmentRecord = dec(&v, "attachment")?;
            if r.referenced {
                continue;
            }
            let since = match r.completed {
                None => r.created_at,
                Some((at, seq)) => {
                    let c = record_conversation(&k)?;
                    if self.uploader_sent_after(&c, &r.uploader, seq)? {
                        referenced.push((k, r));
                        continue;
                    }
                    at
                }
            };
            if now.saturating_sub(since) > expiry {
                expired.push((k, r));
            }
        }
        if expired.is_empty() && referenced.is_empty() {
            return Ok(0);
        }
        {
            let _w = lock(&self.writes)?;
            let mut b = Batch::new();
            for (k, mut r) in referenced {
                r.referenced = true;
                b.put(Collection::Attachments, &k, &enc(&r)?);
            }
            let mut freed = Vec::new();
            for (k, r) in &expired {
                delete_upload(&mut b, k, r)?;
                freed.push(r.clone());
            }
            self.store.apply(b)?;
            self.give_back(&freed)?;
        }
        self.commit.durable().await?;
        if !expired.is_empty() {
            info!(uploads = expired.len(), "unsent attachment uploads expired");
        }
        Ok(expired.len())
    }

    /// Whether `uploader` stored a message in `c` after sequence number `seq` (looked for in
    /// one page of items: a message that refers to an upload follows it closely).
    fn uploader_sent_after(
        &self,
        c: &ConversationId,
        uploader: &SigningPublicKey,
        seq: u64,
    ) -> Result<bool, Reject> {
        Ok(self.convs.items_after(c, seq)?.iter().any(|(stored, _)| {
            matches!(&stored.sequenced.item, Item::Message(env) if env.header.sender == *uploader)
        }))
    }

    /// Gives the bytes of `freed` back to the quotas (the caller holds `writes`).
    fn give_back(&self, freed: &[AttachmentRecord]) -> Result<(), Reject> {
        for r in freed {
            self.count_bytes(&r.uploader, &r.org, -signed(r.counted()))?;
        }
        Ok(())
    }
}

/// Bytes as a count change.
fn signed(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// The conversation of a record's key (`r` ‖ conversation ‖ id).
fn record_conversation(key: &[u8]) -> Result<ConversationId, Reject> {
    Ok(ConversationId::try_from(
        key.get(1..17).unwrap_or_default(),
    )?)
}

/// Adds to `b` the deletion of an upload: its record (at `key`) and every chunk it stored.
fn delete_upload(b: &mut Batch, key: &[u8], r: &AttachmentRecord) -> Result<(), Reject> {
    let c = record_conversation(key)?;
    let id = AttachmentId::try_from(key.get(17..33).unwrap_or_default())?;
    for index in 0..r.stored {
        b.delete(
            Collection::Attachments,
            &attachment_chunk_key(&c, &id, index),
        );
    }
    b.delete(Collection::Attachments, key);
    Ok(())
}

fn progress(r: &AttachmentRecord, warning: Option<NearQuota>) -> Response {
    Response::AttachmentProgress {
        stored: r.stored,
        chunks: r.chunks(),
        quota: warning.map(super::stored_bytes::byte_quota),
    }
}
