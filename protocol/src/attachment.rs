//! Attachments: a file encrypted under a fresh random key, in chunks the relay stores as
//! ciphertext under a random [`AttachmentId`], and described by an ordinary message of kind
//! [`ContentKind::Attachment`](crate::message::ContentKind::Attachment) whose body
//! ([`AttachmentRef`]) carries the key, the SHA-256 of the plaintext, the size, the file name,
//! the media type and a caption — signed and encrypted like any other message.
//!
//! ```text
//!   chunk key   = HKDF-SHA256(salt = none, ikm = key, info = label_key ‖ id)       32 bytes
//!   chunks      = n = max(1, ⌈size / CHUNK_SIZE⌉); chunk i is plaintext[i·CHUNK_SIZE ..]
//!   nonce(i)    = 0x00000000 ‖ u64 BE i                                             12 bytes
//!   aad(i)      = label_aad ‖ id ‖ u64 BE i ‖ final (1 byte: 1 for i = n − 1, else 0)
//!   chunk ct i  = AES-256-GCM(chunk key, nonce(i), chunk i, aad(i))      chunk length + 16
//!   body        = 0x01 ‖ id (16) ‖ key (32) ‖ SHA-256(plaintext) (32) ‖ u64 BE size
//!                 ‖ str name ‖ str media type ‖ str caption         (str: u32 BE length ‖ UTF-8)
//! ```
//!
//! This is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár): the nonce fixes each
//! chunk's position, so chunks cannot be reordered; the final flag in the associated data
//! means a stream cut after any chunk but the last fails to open (its last chunk was sealed as
//! not final), so truncation is detected even before the size and hash are compared.
//!
//! **Key/nonce uniqueness.** Every attachment has its own random 32-byte key, drawn fresh by the
//! uploader and never reused, so a (chunk key, nonce) pair is one chunk of one attachment. The
//! id is bound into the key derivation and the associated data as well, so chunks of one
//! attachment never open as another's even under a (forbidden) reused key.
//!
//! The relay sees the id, the number and sizes of the chunks and when they were uploaded; the
//! key, hash, name, media type and caption travel only inside the encrypted message.

use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce, aead::Aead as _, aead::Payload};
use core::fmt;
use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{Error, Result, codec::Writer, ids::AttachmentId, labels};

/// Plaintext bytes per chunk (the last may be shorter). 32 KiB, so that a chunk's ciphertext
/// and its request fit in one 64 KiB wire frame ([`crate::wire::MAX_FRAME`]).
pub const CHUNK_SIZE: usize = 32 * 1024;
/// The AES-GCM tag each chunk's ciphertext carries after its plaintext bytes.
pub const TAG_LEN: usize = 16;
/// The largest attachment the protocol describes (a relay sets its own, smaller limit).
pub const MAX_SIZE: u64 = 1 << 30;
/// Longest file name in an attachment reference, in bytes.
pub const MAX_NAME: usize = 255;
/// Longest media type in an attachment reference, in bytes.
pub const MAX_MEDIA_TYPE: usize = 127;
/// The format byte that starts an attachment reference's body.
pub const BODY_FORMAT: u8 = 1;

/// Why an attachment did not open. Every variant is a refusal of the whole file: nothing of an
/// attachment that fails one check is shown or saved.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AttachmentError {
    /// Chunk `index` failed to open: tampered with, moved from another position, sealed as the
    /// last while it is not (or the reverse: a truncated upload), or the wrong key.
    #[error("attachment chunk {index} does not open: tampered, reordered, truncated or wrong key")]
    Chunk {
        /// The position of the chunk that failed.
        index: u64,
    },
    /// There are not as many chunks as the attachment's size requires.
    #[error("attachment has {got} chunks, its size requires {expected}")]
    ChunkCount {
        /// Chunks the size requires.
        expected: u64,
        /// Chunks received.
        got: u64,
    },
    /// The chunks opened, but their total length is not the size the message states.
    #[error("attachment is {got} bytes, the message says {expected}")]
    Size {
        /// The size the message states.
        expected: u64,
        /// The size of the opened chunks.
        got: u64,
    },
    /// The chunks opened, but the SHA-256 of the plaintext is not the one the message states.
    #[error("attachment does not match the hash in its message")]
    Hash,
    /// The message states a size larger than [`MAX_SIZE`].
    #[error("attachment size {0} exceeds the protocol's limit")]
    TooLarge(u64),
}

/// An attachment's random key. No `Debug` of the bytes, no `Clone`, zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct AttachmentKey([u8; 32]);

impl fmt::Debug for AttachmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self(_) = self;
        f.write_str("AttachmentKey(..)")
    }
}

impl AttachmentKey {
    /// A fresh random key (one per attachment, never reused).
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        Self(b)
    }

    /// Wraps 32 key bytes (from a decoded reference).
    pub fn from_bytes(b: &[u8; 32]) -> Self {
        Self(*b)
    }

    /// The key bytes, zeroized when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0)
    }

    /// The AES-256-GCM key of the attachment's chunks.
    fn chunk_cipher(&self, id: &AttachmentId) -> Result<Aes256Gcm> {
        let mut info = Writer::with_label(labels::ATTACHMENT_KEY);
        info.fixed(id.as_bytes());
        let mut okm = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(None, &self.0)
            .expand(info.as_bytes(), okm.as_mut_slice())
            .map_err(|_| Error::Encode("attachment key"))?;
        Aes256Gcm::new_from_slice(okm.as_slice()).map_err(|_| Error::Encode("attachment key"))
    }
}

/// The chunks an attachment of `size` bytes has: at least one (an empty file is one empty
/// chunk), else `⌈size / CHUNK_SIZE⌉`.
pub fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK_SIZE as u64).max(1)
}

/// The ciphertext length of chunk `index` of an attachment of `size` bytes, or `None` for an
/// index past its last chunk. The relay checks every uploaded chunk against it.
pub fn chunk_ciphertext_len(size: u64, index: u64) -> Option<u64> {
    let n = chunk_count(size);
    if index >= n {
        return None;
    }
    let start = index.checked_mul(CHUNK_SIZE as u64)?;
    let len = size.saturating_sub(start).min(CHUNK_SIZE as u64);
    len.checked_add(TAG_LEN as u64)
}

/// The ciphertext bytes an attachment of `size` bytes takes on the relay.
pub fn stored_len(size: u64) -> u64 {
    size.saturating_add(chunk_count(size).saturating_mul(TAG_LEN as u64))
}

/// The nonce of chunk `index`.
pub fn chunk_nonce(index: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&index.to_be_bytes());
    n
}

/// The associated data of chunk `index`, `last` if it is the final chunk.
pub fn chunk_aad(id: &AttachmentId, index: u64, last: bool) -> Vec<u8> {
    let mut w = Writer::with_label(labels::ATTACHMENT_AAD);
    w.fixed(id.as_bytes()).u64(index).bool(last);
    w.into_bytes()
}

/// Encrypts `plaintext` into its chunks, in order.
///
/// # Errors
/// [`Error::TooLarge`] past [`MAX_SIZE`].
pub fn seal_chunks(
    key: &AttachmentKey,
    id: &AttachmentId,
    plaintext: &[u8],
) -> Result<Vec<Vec<u8>>> {
    let size = plaintext.len() as u64;
    if size > MAX_SIZE {
        return Err(Error::TooLarge {
            what: "attachment",
            size: plaintext.len(),
            limit: MAX_SIZE as usize,
        });
    }
    let cipher = key.chunk_cipher(id)?;
    let n = chunk_count(size);
    let mut out = Vec::new();
    let mut parts = plaintext.chunks(CHUNK_SIZE);
    for index in 0..n {
        let part = parts.next().unwrap_or(&[]);
        let aad = chunk_aad(id, index, index + 1 == n);
        let ct = cipher
            .encrypt(
                &Nonce::from(chunk_nonce(index)),
                Payload {
                    msg: part,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::Encode("attachment chunk"))?;
        out.push(ct);
    }
    Ok(out)
}

/// Decrypts chunk `index` (`last` if it is meant to be the final one).
///
/// # Errors
/// [`AttachmentError::Chunk`] if it does not open at that position with that flag and key.
pub fn open_chunk(
    key: &AttachmentKey,
    id: &AttachmentId,
    index: u64,
    last: bool,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let cipher = key.chunk_cipher(id)?;
    open_with(&cipher, id, index, last, ciphertext)
}

fn open_with(
    cipher: &Aes256Gcm,
    id: &AttachmentId,
    index: u64,
    last: bool,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let aad = chunk_aad(id, index, last);
    cipher
        .decrypt(
            &Nonce::from(chunk_nonce(index)),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| AttachmentError::Chunk { index }.into())
}

/// What a message of kind `attachment` says about its file: everything needed to fetch, open
/// and check it. Its key is secret, so it has a hand-written `Debug` and no `Clone`.
pub struct AttachmentRef {
    /// Where the ciphertext is stored on the relay.
    pub id: AttachmentId,
    /// The attachment's key.
    pub key: AttachmentKey,
    /// SHA-256 of the plaintext.
    pub sha256: [u8; 32],
    /// The plaintext's size in bytes.
    pub size: u64,
    /// The file name the sender gave (untrusted: a receiver never uses it as a path as is).
    pub name: String,
    /// The media type the sender gave (untrusted, informational).
    pub media_type: String,
    /// A caption (may be empty).
    pub text: String,
}

impl fmt::Debug for AttachmentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            id,
            key: _,
            sha256,
            size,
            name,
            media_type,
            text,
        } = self;
        f.debug_struct("AttachmentRef")
            .field("id", id)
            .field("sha256", &hex::encode(sha256))
            .field("size", size)
            .field("name", name)
            .field("media_type", media_type)
            .field("text_len", &text.len())
            .finish_non_exhaustive()
    }
}

/// A file sealed for upload: its reference (for the message) and its ciphertext chunks (for
/// the relay).
#[derive(Debug)]
pub struct SealedAttachment {
    /// The reference the message carries.
    pub reference: AttachmentRef,
    /// The chunks to upload, in order.
    pub chunks: Vec<Vec<u8>>,
}

impl AttachmentRef {
    /// Seals `plaintext` under a fresh key and id, and describes it.
    ///
    /// # Errors
    /// [`Error::TooLarge`] past [`MAX_SIZE`]; [`Error::Decode`] for a name or media type that
    /// is empty or too long.
    pub fn seal(
        rng: &mut impl CryptoRng,
        plaintext: &[u8],
        name: &str,
        media_type: &str,
        text: &str,
    ) -> Result<SealedAttachment> {
        check_text("attachment name", name, MAX_NAME)?;
        check_text("attachment media type", media_type, MAX_MEDIA_TYPE)?;
        let id = AttachmentId::random(rng);
        let key = AttachmentKey::generate(rng);
        let chunks = seal_chunks(&key, &id, plaintext)?;
        Ok(SealedAttachment {
            reference: AttachmentRef {
                id,
                key,
                sha256: Sha256::digest(plaintext).into(),
                size: plaintext.len() as u64,
                name: name.to_owned(),
                media_type: media_type.to_owned(),
                text: text.to_owned(),
            },
            chunks,
        })
    }

    /// The message body (see the module docs), zeroized when dropped: it holds the key.
    pub fn to_body(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::default();
        w.u8(BODY_FORMAT)
            .fixed(self.id.as_bytes())
            .fixed(self.key.0.as_slice())
            .fixed(&self.sha256)
            .u64(self.size)
            .str(&self.name)
            .str(&self.media_type)
            .str(&self.text);
        Zeroizing::new(w.into_bytes())
    }

    /// Reads a message body.
    ///
    /// # Errors
    /// [`Error::UnknownVersion`] for another format byte; [`Error::Decode`] for a short,
    /// long or malformed body, or a name or media type that is empty or too long;
    /// [`AttachmentError::TooLarge`] for a size past [`MAX_SIZE`].
    pub fn from_body(body: &[u8]) -> Result<Self> {
        let mut r = Reader(body);
        let format = r.take(1)?[0];
        if format != BODY_FORMAT {
            return Err(Error::UnknownVersion(format));
        }
        let id = AttachmentId::try_from(r.take(16)?)?;
        let key = AttachmentKey(r.array()?);
        let sha256 = r.array()?;
        let size = u64::from_be_bytes(r.array()?);
        if size > MAX_SIZE {
            return Err(AttachmentError::TooLarge(size).into());
        }
        let name = r.str()?;
        let media_type = r.str()?;
        let text = r.str()?;
        if !r.0.is_empty() {
            return Err(decode("trailing bytes after the caption"));
        }
        check_text("attachment name", &name, MAX_NAME)?;
        check_text("attachment media type", &media_type, MAX_MEDIA_TYPE)?;
        Ok(Self {
            id,
            key,
            sha256,
            size,
            name,
            media_type,
            text,
        })
    }

    /// The number of chunks the relay must hold for this attachment.
    pub fn chunks(&self) -> u64 {
        chunk_count(self.size)
    }

    /// Opens all the chunks and checks them against this reference: every chunk at its
    /// position (the last sealed as final), as many as the size requires, the total size, and
    /// the SHA-256 of the plaintext (compared in constant time).
    ///
    /// # Errors
    /// [`AttachmentError`]: `Chunk`, `ChunkCount`, `Size`, `Hash`, `TooLarge`.
    pub fn open<C: AsRef<[u8]>>(&self, chunks: &[C]) -> Result<Zeroizing<Vec<u8>>> {
        let mut opener = self.opener()?;
        let last = chunks.len().saturating_sub(1);
        for (i, c) in chunks.iter().enumerate() {
            opener.push(c.as_ref(), i == last)?;
        }
        opener.finish()
    }

    /// A streaming opener, for a reader that fetches chunks one by one.
    ///
    /// # Errors
    /// [`AttachmentError::TooLarge`] for a size past [`MAX_SIZE`].
    pub fn opener(&self) -> Result<Opener<'_>> {
        if self.size > MAX_SIZE {
            return Err(AttachmentError::TooLarge(self.size).into());
        }
        Ok(Opener {
            reference: self,
            cipher: self.key.chunk_cipher(&self.id)?,
            next: 0,
            hash: Sha256::new(),
            plaintext: Zeroizing::new(Vec::new()),
            finished: false,
        })
    }
}

/// Opens an attachment chunk by chunk ([`AttachmentRef::opener`]); the plaintext is returned by
/// [`Opener::finish`] only once every check passed.
pub struct Opener<'a> {
    reference: &'a AttachmentRef,
    cipher: Aes256Gcm,
    next: u64,
    hash: Sha256,
    plaintext: Zeroizing<Vec<u8>>,
    finished: bool,
}

impl fmt::Debug for Opener<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("id", &self.reference.id)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Opener<'_> {
    /// Opens the next chunk; `last` if the caller has no more after it.
    ///
    /// # Errors
    /// [`AttachmentError::Chunk`] if it does not open at its position;
    /// [`AttachmentError::ChunkCount`] for a chunk past the last the size requires, or after
    /// one given as the last.
    pub fn push(&mut self, ciphertext: &[u8], last: bool) -> Result<()> {
        let expected = self.reference.chunks();
        if self.finished || self.next >= expected {
            return Err(AttachmentError::ChunkCount {
                expected,
                got: self.next.saturating_add(1),
            }
            .into());
        }
        let part = open_with(
            &self.cipher,
            &self.reference.id,
            self.next,
            last,
            ciphertext,
        )?;
        self.hash.update(part.as_slice());
        self.plaintext.extend_from_slice(&part);
        self.next += 1;
        self.finished = last;
        Ok(())
    }

    /// The plaintext, once the last chunk was pushed and the size and hash match.
    ///
    /// # Errors
    /// [`AttachmentError::ChunkCount`], [`AttachmentError::Size`], [`AttachmentError::Hash`].
    pub fn finish(self) -> Result<Zeroizing<Vec<u8>>> {
        let expected = self.reference.chunks();
        if !self.finished || self.next != expected {
            return Err(AttachmentError::ChunkCount {
                expected,
                got: self.next,
            }
            .into());
        }
        let got = self.plaintext.len() as u64;
        if got != self.reference.size {
            return Err(AttachmentError::Size {
                expected: self.reference.size,
                got,
            }
            .into());
        }
        let digest: [u8; 32] = self.hash.finalize().into();
        if !bool::from(digest.ct_eq(&self.reference.sha256)) {
            return Err(AttachmentError::Hash.into());
        }
        Ok(self.plaintext)
    }
}

fn check_text(what: &'static str, s: &str, max: usize) -> Result<()> {
    if s.is_empty() || s.len() > max {
        return Err(Error::Decode {
            what,
            reason: format!("{} bytes: use 1 to {max}", s.len()),
        });
    }
    Ok(())
}

fn decode(reason: &str) -> Error {
    Error::Decode {
        what: "attachment reference",
        reason: reason.to_owned(),
    }
}

/// Reads the body layout: fixed fields and length-prefixed strings.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(decode("the body is cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.take(N)?;
        <[u8; N]>::try_from(b).map_err(|_| decode("the body is cut short"))
    }

    fn str(&mut self) -> Result<String> {
        let len = u32::from_be_bytes(self.array()?) as usize;
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| decode("a string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::test_rng;

    fn file(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    fn sealed(len: usize) -> SealedAttachment {
        AttachmentRef::seal(&mut test_rng(900), &file(len), "a.png", "image/png", "hi").unwrap()
    }

    fn err(e: Error) -> AttachmentError {
        match e {
            Error::Attachment(a) => a,
            other => panic!("not an attachment error: {other:?}"),
        }
    }

    #[test]
    fn round_trips_at_every_boundary() {
        for len in [
            0,
            1,
            CHUNK_SIZE - 1,
            CHUNK_SIZE,
            CHUNK_SIZE + 1,
            3 * CHUNK_SIZE + 5,
        ] {
            let s = sealed(len);
            assert_eq!(s.chunks.len() as u64, chunk_count(len as u64));
            for (i, c) in s.chunks.iter().enumerate() {
                assert_eq!(
                    Some(c.len() as u64),
                    chunk_ciphertext_len(len as u64, i as u64)
                );
            }
            let total: usize = s.chunks.iter().map(Vec::len).sum();
            assert_eq!(total as u64, stored_len(len as u64));
            let body = s.reference.to_body();
            let back = AttachmentRef::from_body(&body).unwrap();
            assert_eq!(
                back.open(&s.chunks).unwrap().as_slice(),
                file(len).as_slice()
            );
        }
    }

    #[test]
    fn a_tampered_chunk_is_refused() {
        let mut s = sealed(2 * CHUNK_SIZE + 10);
        s.chunks[1][5] ^= 1;
        assert_eq!(
            err(s.reference.open(&s.chunks).unwrap_err()),
            AttachmentError::Chunk { index: 1 }
        );
    }

    #[test]
    fn a_truncated_attachment_is_refused() {
        let mut s = sealed(2 * CHUNK_SIZE + 10);
        s.chunks.pop();
        // The chunk now last was sealed as not final: it does not open as the last one.
        assert_eq!(
            err(s.reference.open(&s.chunks).unwrap_err()),
            AttachmentError::Chunk { index: 1 }
        );
    }

    #[test]
    fn reordered_chunks_are_refused() {
        let mut s = sealed(3 * CHUNK_SIZE);
        s.chunks.swap(0, 1);
        assert_eq!(
            err(s.reference.open(&s.chunks).unwrap_err()),
            AttachmentError::Chunk { index: 0 }
        );
    }

    #[test]
    fn the_wrong_key_is_refused() {
        let s = sealed(100);
        let mut body = s.reference.to_body();
        body[1 + 16] ^= 1;
        let wrong = AttachmentRef::from_body(&body).unwrap();
        assert_eq!(
            err(wrong.open(&s.chunks).unwrap_err()),
            AttachmentError::Chunk { index: 0 }
        );
    }

    #[test]
    fn a_hash_or_size_that_does_not_match_is_refused() {
        let s = sealed(100);
        let mut body = s.reference.to_body();
        body[1 + 16 + 32] ^= 1;
        let wrong = AttachmentRef::from_body(&body).unwrap();
        assert_eq!(
            err(wrong.open(&s.chunks).unwrap_err()),
            AttachmentError::Hash
        );
        // A size that still needs one chunk, but not the one stored.
        let mut body = s.reference.to_body();
        body[1 + 16 + 32 + 32 + 7] ^= 1;
        let wrong = AttachmentRef::from_body(&body).unwrap();
        assert_eq!(
            err(wrong.open(&s.chunks).unwrap_err()),
            AttachmentError::Size {
                expected: 101,
                got: 100
            }
        );
    }

    #[test]
    fn too_many_or_too_few_chunks_are_refused() {
        let s = sealed(CHUNK_SIZE + 1);
        let mut extra = s.chunks.clone();
        extra.push(extra[1].clone());
        assert!(matches!(
            err(s.reference.open(&extra).unwrap_err()),
            AttachmentError::Chunk { .. } | AttachmentError::ChunkCount { .. }
        ));
        let none: [Vec<u8>; 0] = [];
        assert_eq!(
            err(s.reference.open(&none).unwrap_err()),
            AttachmentError::ChunkCount {
                expected: 2,
                got: 0
            }
        );
    }

    #[test]
    fn malformed_bodies_are_refused_and_never_panic() {
        let s = sealed(10);
        let body = s.reference.to_body();
        for cut in 0..body.len() {
            assert!(AttachmentRef::from_body(&body[..cut]).is_err());
        }
        let mut long = body.to_vec();
        long.push(0);
        assert!(AttachmentRef::from_body(&long).is_err());
        let mut v2 = body.to_vec();
        v2[0] = 2;
        assert_eq!(
            AttachmentRef::from_body(&v2).err(),
            Some(Error::UnknownVersion(2))
        );
        assert!(AttachmentRef::seal(&mut test_rng(1), b"x", "", "a/b", "").is_err());
        assert!(AttachmentRef::seal(&mut test_rng(1), b"x", "n", "", "").is_err());
    }

    #[test]
    fn debug_shows_no_key() {
        let s = sealed(10);
        let key_hex = hex::encode(*s.reference.key.to_bytes());
        let shown = format!("{:?} {:?}", s.reference, s.reference.key);
        assert!(!shown.contains(&key_hex), "{shown}");
    }
}
