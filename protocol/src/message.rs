//! Messages: per-sender chains from `K`, AES-256-GCM with the header as associated data, a
//! key-commitment tag, an Ed25519 signature, and a bounded replay/reordering window.
//!
//! ```text
//!   keys(sender, counter) = Expand(Expand(PRK_K, "msg/chain" ‖ sender), "msg/keys" ‖ counter)
//!                         = key (32) ‖ nonce (12)
//!   header (102 bytes)    = version ‖ conversation ‖ epoch ‖ sender ‖ counter ‖ kind ‖ sent_at
//!                           ‖ commitment
//!   commitment            = SHA-256(label ‖ key)             ciphertext cannot open under 2 keys
//!   ciphertext            = AES-256-GCM(key, nonce, body, aad = label ‖ header)
//!   signature             = Ed25519(sender, label ‖ header ‖ ciphertext)
//! ```
//!
//! **Key/nonce uniqueness.** A (key, nonce) pair is a function of (conversation, epoch, sender,
//! counter) only. A sender never reuses a counter in an epoch: the client persists its next
//! counter before sending, and the relay refuses a second message with the same (conversation,
//! epoch, sender, counter), so a client restored from an old backup is told to open a new epoch
//! instead of reusing a nonce.

use std::collections::HashMap;

use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce, aead::Aead as _, aead::Payload};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::{
    Error, Result,
    codec::{Writer, labelled_hash},
    epoch::{PROTOCOL_VERSION, VerifiedEpoch},
    ids::ConversationId,
    keys::{IdentityKeys, Signature, SigningPublicKey},
    labels,
    secret::{EpochSecret, KeySchedule},
    signed::Signed,
};

/// Largest message body, in bytes (fits a 64 KiB chat frame with room for the envelope).
pub const MAX_BODY: usize = 48 * 1024;
/// Largest message ciphertext: a [`MAX_BODY`] body and the 16-byte AES-GCM tag. Receivers refuse
/// a larger one, so the relay refuses to store it (nothing undeliverable is acknowledged).
pub const MAX_CIPHERTEXT: usize = MAX_BODY + 16;
/// How far behind the highest accepted counter a late message may still arrive.
pub const REORDER_WINDOW: u64 = 256;
/// How far ahead of the highest accepted counter a message may be; further is refused before
/// any key derivation, so a hostile counter cannot make a receiver do unbounded work.
pub const MAX_AHEAD: u64 = 2_000;

/// What a message body holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentKind {
    /// UTF-8 chat text.
    Text,
    /// An end-to-end read receipt: the body is the relay sequence number read up to (u64 BE).
    Read,
    /// A conversation status set by the agent: the body is one byte (see
    /// [`crate::status::ConversationStatus`]).
    Status,
    /// A file: the body is an attachment reference (see [`crate::attachment::AttachmentRef`]:
    /// the file's id on the relay, its key, hash, size, name, media type and a caption).
    Attachment,
}

impl ContentKind {
    fn code(self) -> u8 {
        match self {
            ContentKind::Text => 1,
            ContentKind::Read => 2,
            ContentKind::Status => 3,
            ContentKind::Attachment => 4,
        }
    }
}

/// A message header: routing data and the associated data of the body.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct MessageHeader {
    /// Protocol version.
    pub version: u8,
    /// Conversation.
    pub conversation: ConversationId,
    /// Epoch.
    pub epoch: u32,
    /// Sender's signing key.
    pub sender: SigningPublicKey,
    /// Sender's counter in this epoch (from 0).
    pub counter: u64,
    /// Content kind.
    pub kind: ContentKind,
    /// Sender's clock at sending, seconds since the Unix epoch (informational).
    pub sent_at: u64,
    /// Key-commitment tag.
    #[serde(with = "serde_bytes")]
    pub commitment: [u8; 32],
}

impl MessageHeader {
    /// The fixed 102-byte layout.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(self.version)
            .fixed(self.conversation.as_bytes())
            .u32(self.epoch)
            .fixed(self.sender.as_bytes())
            .u64(self.counter)
            .u8(self.kind.code())
            .u64(self.sent_at)
            .fixed(&self.commitment);
        w.into_bytes()
    }
}

/// An encrypted, signed message as it travels.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The header.
    pub header: MessageHeader,
    /// AES-256-GCM ciphertext with tag.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
    /// Sender's signature.
    pub signature: Signature,
}

impl Envelope {
    /// The bytes the sender's signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(&self.header.to_bytes(), &self.ciphertext)
    }
}

/// For readers that check a message's signature without opening it (an offline transcript
/// check); [`EpochKeys::open_message`] checks the same signature on the way to the plaintext.
impl Signed for Envelope {
    const WHAT: &'static str = "message";
    fn signed_bytes(&self) -> Vec<u8> {
        Envelope::signed_bytes(self)
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn signer(&self) -> &SigningPublicKey {
        &self.header.sender
    }
}

/// A message that passed every check.
#[derive(Debug)]
pub struct Opened {
    /// Its header.
    pub header: MessageHeader,
    /// Its body (zeroized on drop).
    pub body: Zeroizing<Vec<u8>>,
}

/// The key material of one epoch, for sealing and opening its messages.
pub struct EpochKeys {
    conversation: ConversationId,
    epoch: u32,
    members: Vec<SigningPublicKey>,
    schedule: KeySchedule,
}

impl core::fmt::Debug for EpochKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Self {
            conversation,
            epoch,
            members,
            schedule: _,
        } = self;
        f.debug_struct("EpochKeys")
            .field("conversation", conversation)
            .field("epoch", epoch)
            .field("members", &members.len())
            .finish_non_exhaustive()
    }
}

impl EpochKeys {
    /// Key material for `record`'s epoch from its secret `K` (already checked by
    /// [`VerifiedEpoch::open`] or reconstructed from escrow).
    pub fn new(k: &EpochSecret, record: &VerifiedEpoch) -> Self {
        Self {
            conversation: record.conversation,
            epoch: record.epoch,
            members: record.members.iter().map(|m| m.signing_key).collect(),
            schedule: k.schedule(&record.conversation, record.epoch),
        }
    }

    /// The epoch number.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The conversation.
    pub fn conversation(&self) -> ConversationId {
        self.conversation
    }

    /// Whether `who` is a member of the epoch.
    pub fn is_member(&self, who: &SigningPublicKey) -> bool {
        self.members.contains(who)
    }

    /// The key schedule, for the other things derived from the epoch (signals).
    pub(crate) fn schedule(&self) -> &KeySchedule {
        &self.schedule
    }

    /// Encrypts and signs a message. The caller must have persisted `counter + 1` as its next
    /// counter before calling (see the module docs).
    ///
    /// # Errors
    /// [`Error::NotAMember`] if `me` is not in the epoch, [`Error::TooLarge`] for a huge body.
    pub fn seal_message(
        &self,
        me: &IdentityKeys,
        counter: u64,
        kind: ContentKind,
        sent_at: u64,
        body: &[u8],
    ) -> Result<Envelope> {
        let sender = me.signing_public();
        if !self.members.contains(&sender) {
            return Err(Error::NotAMember);
        }
        if body.len() > MAX_BODY {
            return Err(Error::TooLarge {
                what: "message body",
                size: body.len(),
                limit: MAX_BODY,
            });
        }
        let (key, nonce) = self.message_keys(&sender, counter);
        let header = MessageHeader {
            version: PROTOCOL_VERSION,
            conversation: self.conversation,
            epoch: self.epoch,
            sender,
            counter,
            kind,
            sent_at,
            commitment: commitment(&key),
        };
        let header_bytes = header.to_bytes();
        let cipher = Aes256Gcm::new_from_slice(key.as_slice()).map_err(|_| Error::Encode("key"))?;
        let aad = aad(&header_bytes);
        let ciphertext = cipher
            .encrypt(
                &Nonce::from(*nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::Encode("message"))?;
        let signature = me.sign(&signed_bytes(&header_bytes, &ciphertext));
        Ok(Envelope {
            header,
            ciphertext,
            signature,
        })
    }

    /// Checks and decrypts a message, in this order (cheapest and most specific first, and no key
    /// derived for a message that fails a routing or window check): version, conversation,
    /// epoch, membership, replay window, signature, key commitment, AEAD. The window is updated
    /// only when everything passed.
    ///
    /// # Errors
    /// [`Error::UnknownVersion`], [`Error::WrongConversation`], [`Error::WrongEpoch`],
    /// [`Error::NotAMember`], [`Error::Duplicate`], [`Error::TooOld`], [`Error::TooFarAhead`],
    /// [`Error::BadSignature`], [`Error::KeyCommitmentMismatch`], [`Error::Decrypt`].
    pub fn open_message(&self, env: &Envelope, windows: &mut ReplayWindows) -> Result<Opened> {
        let h = &env.header;
        if h.version != PROTOCOL_VERSION {
            return Err(Error::UnknownVersion(h.version));
        }
        if h.conversation != self.conversation {
            return Err(Error::WrongConversation);
        }
        if h.epoch != self.epoch {
            return Err(Error::WrongEpoch {
                expected: self.epoch,
                got: h.epoch,
            });
        }
        if !self.members.contains(&h.sender) {
            return Err(Error::NotAMember);
        }
        windows.window(&h.sender).check(h.counter)?;
        if env.ciphertext.len() > MAX_CIPHERTEXT {
            return Err(Error::TooLarge {
                what: "message ciphertext",
                size: env.ciphertext.len(),
                limit: MAX_CIPHERTEXT,
            });
        }
        let header_bytes = h.to_bytes();
        h.sender.verify(
            &signed_bytes(&header_bytes, &env.ciphertext),
            &env.signature,
            "message",
        )?;
        let (key, nonce) = self.message_keys(&h.sender, h.counter);
        if !bool::from(commitment(&key).ct_eq(&h.commitment)) {
            return Err(Error::KeyCommitmentMismatch);
        }
        let cipher = Aes256Gcm::new_from_slice(key.as_slice()).map_err(|_| Error::Decrypt)?;
        let aad = aad(&header_bytes);
        let body = cipher
            .decrypt(
                &Nonce::from(*nonce),
                Payload {
                    msg: &env.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::Decrypt)?;
        windows.window(&h.sender).mark(h.counter);
        Ok(Opened {
            header: h.clone(),
            body: Zeroizing::new(body),
        })
    }

    pub(crate) fn message_keys(
        &self,
        sender: &SigningPublicKey,
        counter: u64,
    ) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 12]>) {
        let chain: Zeroizing<[u8; 32]> = self.schedule.labelled(labels::MESSAGE_CHAIN, |w| {
            w.fixed(sender.as_bytes());
        });
        let mut info = Writer::with_label(labels::MESSAGE_KEYS);
        info.u64(counter);
        let hk = hkdf::Hkdf::<sha2::Sha256>::from_prk(chain.as_slice());
        let mut okm = Zeroizing::new([0u8; 44]);
        if let Ok(hk) = hk {
            // 44 bytes is far below HKDF's limit; expand cannot fail.
            let _ = hk.expand(info.as_bytes(), okm.as_mut_slice());
        }
        let mut key = Zeroizing::new([0u8; 32]);
        let mut nonce = Zeroizing::new([0u8; 12]);
        key.copy_from_slice(&okm[..32]);
        nonce.copy_from_slice(&okm[32..]);
        (key, nonce)
    }
}

pub(crate) fn commitment(key: &[u8; 32]) -> [u8; 32] {
    labelled_hash(labels::MESSAGE_COMMITMENT, &[key])
}

pub(crate) fn aad(header: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_label(labels::MESSAGE_AAD);
    w.fixed(header);
    w.into_bytes()
}

pub(crate) fn signed_bytes(header: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_label(labels::MESSAGE_SIGNATURE);
    w.fixed(header).bytes(ciphertext);
    w.into_bytes()
}

/// Which counters of one sender have been accepted: the highest, and a bitmap of the
/// [`REORDER_WINDOW`] counters below it.
#[derive(Clone, Default, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ReplayWindow {
    highest: Option<u64>,
    /// Bit `i` of word `i / 64` set = counter `highest - i` accepted.
    seen: [u64; 4],
}

impl ReplayWindow {
    /// Whether `counter` may be accepted, without changing anything.
    ///
    /// # Errors
    /// [`Error::Duplicate`], [`Error::TooOld`] or [`Error::TooFarAhead`].
    pub fn check(&self, counter: u64) -> Result<()> {
        let Some(h) = self.highest else {
            return if counter > MAX_AHEAD {
                Err(Error::TooFarAhead {
                    counter,
                    highest: 0,
                })
            } else {
                Ok(())
            };
        };
        if counter > h {
            if counter - h > MAX_AHEAD {
                return Err(Error::TooFarAhead {
                    counter,
                    highest: h,
                });
            }
            return Ok(());
        }
        let back = h - counter;
        if back >= REORDER_WINDOW {
            return Err(Error::TooOld(counter));
        }
        if self.bit(back) {
            return Err(Error::Duplicate(counter));
        }
        Ok(())
    }

    /// Records `counter` as accepted (after [`Self::check`] and full verification).
    pub fn mark(&mut self, counter: u64) {
        match self.highest {
            Some(h) if counter <= h => self.set(h - counter),
            Some(h) => {
                self.shift(counter - h);
                self.highest = Some(counter);
                self.set(0);
            }
            None => {
                self.highest = Some(counter);
                self.set(0);
            }
        }
    }

    /// The highest accepted counter.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Counters still inside the window that have not arrived: the gaps to show.
    pub fn missing(&self) -> Vec<u64> {
        let Some(h) = self.highest else {
            return Vec::new();
        };
        (0..REORDER_WINDOW.min(h + 1))
            .filter(|&b| !self.bit(b))
            .map(|b| h - b)
            .rev()
            .collect()
    }

    fn bit(&self, back: u64) -> bool {
        let (w, b) = ((back / 64) as usize, back % 64);
        self.seen.get(w).is_some_and(|word| word & (1 << b) != 0)
    }

    fn set(&mut self, back: u64) {
        let (w, b) = ((back / 64) as usize, back % 64);
        if let Some(word) = self.seen.get_mut(w) {
            *word |= 1 << b;
        }
    }

    fn shift(&mut self, by: u64) {
        if by >= REORDER_WINDOW {
            self.seen = [0; 4];
            return;
        }
        // Shift the 256-bit little-endian-by-word bitmap left by `by` bits.
        let (words, bits) = ((by / 64) as usize, (by % 64) as u32);
        let old = self.seen;
        for i in (0..4usize).rev() {
            let lo = i.checked_sub(words).map_or(0, |j| old[j]);
            let lower = i.checked_sub(words + 1).map_or(0, |j| old[j]);
            self.seen[i] = if bits == 0 {
                lo
            } else {
                (lo << bits) | (lower >> (64 - bits))
            };
        }
    }
}

/// One [`ReplayWindow`] per sender of an epoch. Persist it with the messages it covers.
#[derive(Clone, Default, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ReplayWindows(HashMap<SigningPublicKey, ReplayWindow>);

impl ReplayWindows {
    /// The window of `sender`.
    pub fn window(&mut self, sender: &SigningPublicKey) -> &mut ReplayWindow {
        self.0.entry(*sender).or_default()
    }

    /// The window of `sender`, if any message from it was accepted.
    pub fn get(&self, sender: &SigningPublicKey) -> Option<&ReplayWindow> {
        self.0.get(sender)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{epoch::tests::first_epoch, policy::tests::org};
    use proptest::prelude::*;

    fn setup(seed: u64) -> (crate::policy::tests::Org, EpochKeys, VerifiedEpoch) {
        let o = org(seed);
        let (rec, k) = first_epoch(&o, seed + 1);
        let keys = EpochKeys::new(&k, &rec);
        (o, keys, rec)
    }

    #[test]
    fn round_trip_and_replay() {
        let (o, keys, _) = setup(80);
        let env = keys
            .seal_message(&o.customer, 0, ContentKind::Text, 5, b"hello")
            .unwrap();
        let mut w = ReplayWindows::default();
        let opened = keys.open_message(&env, &mut w).unwrap();
        assert_eq!(&opened.body[..], b"hello");
        assert_eq!(
            keys.open_message(&env, &mut w).err(),
            Some(Error::Duplicate(0))
        );
    }

    #[test]
    fn every_check_has_its_error() {
        let (o, keys, rec) = setup(82);
        let env = keys
            .seal_message(&o.agent, 3, ContentKind::Text, 5, b"hi")
            .unwrap();
        let fresh = || ReplayWindows::default();
        let mut t = env.clone();
        t.header.version = 2;
        assert_eq!(
            keys.open_message(&t, &mut fresh()).err(),
            Some(Error::UnknownVersion(2))
        );
        let mut t = env.clone();
        t.header.conversation = ConversationId::from_bytes(&[9; 16]).unwrap();
        assert_eq!(
            keys.open_message(&t, &mut fresh()).err(),
            Some(Error::WrongConversation)
        );
        let mut t = env.clone();
        t.header.epoch = 1;
        assert_eq!(
            keys.open_message(&t, &mut fresh()).err(),
            Some(Error::WrongEpoch {
                expected: 0,
                got: 1
            })
        );
        let mut t = env.clone();
        t.header.sender = o.agent2.signing_public();
        assert_eq!(
            keys.open_message(&t, &mut fresh()).err(),
            Some(Error::NotAMember)
        );
        let mut t = env.clone();
        t.header.counter = 4;
        assert_eq!(
            keys.open_message(&t, &mut fresh()).err(),
            Some(Error::BadSignature("message"))
        );
        assert_eq!(t.check_signature(), Err(Error::BadSignature("message")));
        let mut t = env.clone();
        t.ciphertext[0] ^= 1;
        assert_eq!(
            keys.open_message(&t, &mut fresh()).err(),
            Some(Error::BadSignature("message"))
        );
        assert_eq!(t.check_signature(), Err(Error::BadSignature("message")));
        // Without opening: the honest envelope's signature, and a forged one.
        assert_eq!(env.check_signature(), Ok(()));
        let mut t = env.clone();
        t.signature = o.customer.sign(&t.signed_bytes());
        assert_eq!(t.check_signature(), Err(Error::BadSignature("message")));
        assert_eq!(
            keys.open_message(&t, &mut fresh()).err(),
            Some(Error::BadSignature("message"))
        );
        let mut t = env.clone();
        t.header.kind = ContentKind::Read;
        assert!(keys.open_message(&t, &mut fresh()).is_err());
        // A member who signs a header with a wrong commitment is caught by the commitment check.
        let mut t = env.clone();
        t.header.commitment[0] ^= 1;
        t.signature = o.agent.sign(&t.signed_bytes());
        assert_eq!(
            keys.open_message(&t, &mut fresh()).err(),
            Some(Error::KeyCommitmentMismatch)
        );
        // A member who signs a corrupted ciphertext is caught by the AEAD.
        let mut t = env.clone();
        t.ciphertext[0] ^= 1;
        t.signature = o.agent.sign(&t.signed_bytes());
        assert_eq!(
            keys.open_message(&t, &mut fresh()).err(),
            Some(Error::Decrypt)
        );
        // Far future counters are refused before any derivation.
        let far = keys
            .seal_message(&o.agent, MAX_AHEAD + 1, ContentKind::Text, 5, b"x")
            .unwrap();
        assert!(matches!(
            keys.open_message(&far, &mut fresh()),
            Err(Error::TooFarAhead { .. })
        ));
        // Another epoch's keys cannot open it.
        let o2 = org(82);
        let (rec2, k2) = first_epoch(&o2, 99);
        let other = EpochKeys::new(&k2, &rec2);
        assert!(other.open_message(&env, &mut fresh()).is_err());
        // Non-members cannot send.
        assert_eq!(
            keys.seal_message(&o.master, 0, ContentKind::Text, 0, b"x")
                .err(),
            Some(Error::NotAMember)
        );
        let _ = rec;
    }

    #[test]
    fn reordering_within_the_window_and_gaps() {
        let (o, keys, _) = setup(84);
        let mut w = ReplayWindows::default();
        for c in [0u64, 2, 1, 5] {
            let e = keys
                .seal_message(&o.customer, c, ContentKind::Text, 0, b"m")
                .unwrap();
            keys.open_message(&e, &mut w).unwrap();
        }
        let win = w.get(&o.customer.signing_public()).unwrap();
        assert_eq!(win.missing(), vec![3, 4]);
        let late = keys
            .seal_message(&o.customer, 300, ContentKind::Text, 0, b"m")
            .unwrap();
        keys.open_message(&late, &mut w).unwrap();
        let old = keys
            .seal_message(&o.customer, 3, ContentKind::Text, 0, b"m")
            .unwrap();
        assert_eq!(
            keys.open_message(&old, &mut w).err(),
            Some(Error::TooOld(3))
        );
    }

    proptest! {
        #[test]
        fn window_matches_a_set_model(counters in proptest::collection::vec(0u64..600, 1..200)) {
            let mut win = ReplayWindow::default();
            let mut accepted = std::collections::BTreeSet::new();
            for c in counters {
                let highest = accepted.iter().next_back().copied();
                let expect = match highest {
                    None if c > MAX_AHEAD => Some("ahead"),
                    None => None,
                    Some(h) if c > h + MAX_AHEAD => Some("ahead"),
                    Some(h) if c + REORDER_WINDOW <= h => Some("old"),
                    Some(_) if accepted.contains(&c) => Some("dup"),
                    Some(_) => None,
                };
                let got = win.check(c);
                match (expect, &got) {
                    (None, Ok(())) => { win.mark(c); accepted.insert(c); }
                    (Some("dup"), Err(Error::Duplicate(_))) | (Some("old"), Err(Error::TooOld(_)))
                    | (Some("ahead"), Err(Error::TooFarAhead { .. })) => {}
                    _ => prop_assert!(false, "counter {c}: expected {expect:?}, got {got:?}"),
                }
            }
        }
    }
}
