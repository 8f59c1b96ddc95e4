//! Ephemeral signals: "typing" and "stopped typing", end-to-end encrypted under the epoch's
//! keys, bound to the conversation, the epoch and the sender, and never stored by anyone.
//!
//! ```text
//!   key        = Expand(PRK_K, "signal/key" ‖ sender)                      32 bytes
//!   header     = version ‖ conversation ‖ epoch ‖ sender ‖ sent_at ‖ nonce  (73 bytes)
//!   ciphertext = AES-256-GCM(key, nonce, kind (1 byte), aad = label ‖ header)
//!   signature  = Ed25519(sender, label ‖ header ‖ ciphertext)
//! ```
//!
//! **Key/nonce uniqueness.** Signals carry no counter (they are not stored, so there is nothing
//! for one to order), so the 12-byte nonce is random. A key is one (conversation, epoch,
//! sender): a sender sends a handful of signals per epoch, far below the 2^32 random nonces per
//! key that AES-GCM allows. The key is derived under its own label, so it never coincides with
//! a message key.
//!
//! **Freshness.** A signal says something about *now*: a receiver drops one whose `sent_at` is
//! more than [`MAX_SIGNAL_SKEW`] seconds from its own clock (a replay of an old one, or one held
//! back by the relay), and one that is not newer than the last it accepted from that sender.
//! The relay sees that a member of a conversation signalled, and when; not what.

use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce, aead::Aead as _, aead::Payload};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{
    Error, Result,
    codec::Writer,
    epoch::PROTOCOL_VERSION,
    ids::ConversationId,
    keys::{IdentityKeys, Signature, SigningPublicKey},
    labels,
    message::EpochKeys,
    signed::Signed,
};

/// How far (seconds) a signal's `sent_at` may be from the receiver's clock, either way.
pub const MAX_SIGNAL_SKEW: u64 = 30;
/// The ciphertext of every signal: one byte of kind and the 16-byte tag. Anything else is
/// refused before any key is derived.
pub const SIGNAL_CIPHERTEXT_LEN: usize = 1 + 16;

/// What a signal says.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// The sender is typing.
    Typing,
    /// The sender stopped typing (cleared the line, or sent it).
    Stopped,
}

impl SignalKind {
    fn code(self) -> u8 {
        match self {
            SignalKind::Typing => 1,
            SignalKind::Stopped => 2,
        }
    }

    fn from_code(code: u8) -> Result<Self> {
        match code {
            1 => Ok(SignalKind::Typing),
            2 => Ok(SignalKind::Stopped),
            other => Err(Error::Decode {
                what: "signal",
                reason: format!("unknown signal kind {other}"),
            }),
        }
    }
}

/// A signal's header: routing data, and the associated data of its body.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SignalHeader {
    /// Protocol version.
    pub version: u8,
    /// Conversation.
    pub conversation: ConversationId,
    /// The epoch whose keys sealed it (the sender's current epoch).
    pub epoch: u32,
    /// Sender's signing key.
    pub sender: SigningPublicKey,
    /// Sender's clock at sending, seconds since the Unix epoch (checked for freshness).
    pub sent_at: u64,
    /// The AES-GCM nonce (random).
    #[serde(with = "serde_bytes")]
    pub nonce: [u8; 12],
}

impl SignalHeader {
    /// The fixed 73-byte layout.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(self.version)
            .fixed(self.conversation.as_bytes())
            .u32(self.epoch)
            .fixed(self.sender.as_bytes())
            .u64(self.sent_at)
            .fixed(&self.nonce);
        w.into_bytes()
    }
}

/// An encrypted, signed signal as it travels ([`crate::wire::Request::Signal`],
/// [`crate::wire::Push::Signal`]).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SignalEnvelope {
    /// The header.
    pub header: SignalHeader,
    /// AES-256-GCM ciphertext of the kind, with tag.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
    /// Sender's signature.
    pub signature: Signature,
}

impl SignalEnvelope {
    /// The bytes the sender's signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(&self.header.to_bytes(), &self.ciphertext)
    }
}

/// The relay checks a signal's signature against the session's account without opening it.
impl Signed for SignalEnvelope {
    const WHAT: &'static str = "signal";
    fn signed_bytes(&self) -> Vec<u8> {
        SignalEnvelope::signed_bytes(self)
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn signer(&self) -> &SigningPublicKey {
        &self.header.sender
    }
}

/// A signal that passed every check.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OpenedSignal {
    /// Conversation.
    pub conversation: ConversationId,
    /// Epoch.
    pub epoch: u32,
    /// Sender.
    pub sender: SigningPublicKey,
    /// Sender's clock at sending.
    pub sent_at: u64,
    /// What it says.
    pub kind: SignalKind,
}

/// Seals a signal from `me` under `keys` (an epoch `me` is a member of).
///
/// # Errors
/// [`Error::NotAMember`].
pub fn seal_signal(
    keys: &EpochKeys,
    me: &IdentityKeys,
    kind: SignalKind,
    sent_at: u64,
    rng: &mut impl CryptoRng,
) -> Result<SignalEnvelope> {
    let sender = me.signing_public();
    if !keys.is_member(&sender) {
        return Err(Error::NotAMember);
    }
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);
    let header = SignalHeader {
        version: PROTOCOL_VERSION,
        conversation: keys.conversation(),
        epoch: keys.epoch(),
        sender,
        sent_at,
        nonce,
    };
    let header_bytes = header.to_bytes();
    let key = signal_key(keys, &sender);
    let cipher = Aes256Gcm::new_from_slice(key.as_slice()).map_err(|_| Error::Encode("key"))?;
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &[kind.code()],
                aad: &aad(&header_bytes),
            },
        )
        .map_err(|_| Error::Encode("signal"))?;
    let signature = me.sign(&signed_bytes(&header_bytes, &ciphertext));
    Ok(SignalEnvelope {
        header,
        ciphertext,
        signature,
    })
}

/// Checks and opens a signal received at `now`, in this order: version, conversation, epoch,
/// membership, freshness, length, signature, AEAD. (The last-accepted check per sender is the
/// receiver's: it holds that state.)
///
/// # Errors
/// [`Error::UnknownVersion`], [`Error::WrongConversation`], [`Error::WrongEpoch`],
/// [`Error::NotAMember`], [`Error::Expired`] (outside [`MAX_SIGNAL_SKEW`]),
/// [`Error::BadLength`], [`Error::BadSignature`], [`Error::Decrypt`], [`Error::Decode`].
pub fn open_signal(keys: &EpochKeys, env: &SignalEnvelope, now: u64) -> Result<OpenedSignal> {
    let h = &env.header;
    if h.version != PROTOCOL_VERSION {
        return Err(Error::UnknownVersion(h.version));
    }
    if h.conversation != keys.conversation() {
        return Err(Error::WrongConversation);
    }
    if h.epoch != keys.epoch() {
        return Err(Error::WrongEpoch {
            expected: keys.epoch(),
            got: h.epoch,
        });
    }
    if !keys.is_member(&h.sender) {
        return Err(Error::NotAMember);
    }
    if h.sent_at.abs_diff(now) > MAX_SIGNAL_SKEW {
        return Err(Error::Expired("signal"));
    }
    if env.ciphertext.len() != SIGNAL_CIPHERTEXT_LEN {
        return Err(Error::BadLength {
            what: "signal ciphertext",
            expected: SIGNAL_CIPHERTEXT_LEN,
            got: env.ciphertext.len(),
        });
    }
    env.check_signature()?;
    let header_bytes = h.to_bytes();
    let key = signal_key(keys, &h.sender);
    let cipher = Aes256Gcm::new_from_slice(key.as_slice()).map_err(|_| Error::Decrypt)?;
    let body = cipher
        .decrypt(
            &Nonce::from(h.nonce),
            Payload {
                msg: &env.ciphertext,
                aad: &aad(&header_bytes),
            },
        )
        .map_err(|_| Error::Decrypt)?;
    let [code] = body.as_slice() else {
        return Err(Error::Decrypt);
    };
    Ok(OpenedSignal {
        conversation: h.conversation,
        epoch: h.epoch,
        sender: h.sender,
        sent_at: h.sent_at,
        kind: SignalKind::from_code(*code)?,
    })
}

fn signal_key(keys: &EpochKeys, sender: &SigningPublicKey) -> Zeroizing<[u8; 32]> {
    keys.schedule().labelled(labels::SIGNAL_KEY, |w| {
        w.fixed(sender.as_bytes());
    })
}

fn aad(header: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_label(labels::SIGNAL_AAD);
    w.fixed(header);
    w.into_bytes()
}

fn signed_bytes(header: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_label(labels::SIGNAL_SIGNATURE);
    w.fixed(header).bytes(ciphertext);
    w.into_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{epoch::tests::first_epoch, policy::tests::org, test_rng};

    fn setup(seed: u64) -> (crate::policy::tests::Org, EpochKeys) {
        let o = org(seed);
        let (rec, k) = first_epoch(&o, seed + 1);
        (o, EpochKeys::new(&k, &rec))
    }

    #[test]
    fn round_trip() {
        let (o, keys) = setup(300);
        let mut rng = test_rng(301);
        for kind in [SignalKind::Typing, SignalKind::Stopped] {
            let env = seal_signal(&keys, &o.customer, kind, 1_000, &mut rng).unwrap();
            let opened = open_signal(&keys, &env, 1_010).unwrap();
            assert_eq!(opened.kind, kind);
            assert_eq!(opened.sender, o.customer.signing_public());
            assert_eq!(opened.conversation, keys.conversation());
            assert_eq!(env.ciphertext.len(), SIGNAL_CIPHERTEXT_LEN);
            assert_eq!(env.header.to_bytes().len(), 73);
        }
    }

    #[test]
    fn every_check_has_its_error() {
        let (o, keys) = setup(302);
        let mut rng = test_rng(303);
        let env = seal_signal(&keys, &o.agent, SignalKind::Typing, 1_000, &mut rng).unwrap();
        let open = |e: &SignalEnvelope| open_signal(&keys, e, 1_000).err();

        let mut t = env.clone();
        t.header.version = 2;
        assert_eq!(open(&t), Some(Error::UnknownVersion(2)));
        let mut t = env.clone();
        t.header.conversation = ConversationId::from_bytes(&[9; 16]).unwrap();
        assert_eq!(open(&t), Some(Error::WrongConversation));
        let mut t = env.clone();
        t.header.epoch = 1;
        assert_eq!(
            open(&t),
            Some(Error::WrongEpoch {
                expected: 0,
                got: 1
            })
        );
        let mut t = env.clone();
        t.header.sender = o.agent2.signing_public();
        assert_eq!(open(&t), Some(Error::NotAMember));
        // Old and future signals are dropped.
        assert_eq!(
            open_signal(&keys, &env, 1_000 + MAX_SIGNAL_SKEW + 1).err(),
            Some(Error::Expired("signal"))
        );
        assert_eq!(
            open_signal(&keys, &env, 1_000 - MAX_SIGNAL_SKEW - 1).err(),
            Some(Error::Expired("signal"))
        );
        assert!(open_signal(&keys, &env, 1_000 + MAX_SIGNAL_SKEW).is_ok());
        // A tampered ciphertext or header fails the signature.
        let mut t = env.clone();
        t.ciphertext[0] ^= 1;
        assert_eq!(open(&t), Some(Error::BadSignature("signal")));
        let mut t = env.clone();
        t.header.nonce[0] ^= 1;
        assert_eq!(open(&t), Some(Error::BadSignature("signal")));
        let mut t = env.clone();
        t.ciphertext.push(0);
        assert!(matches!(open(&t), Some(Error::BadLength { .. })));
        // Re-signed by the sender over a changed nonce: the AEAD refuses it.
        let mut t = env.clone();
        t.header.nonce[0] ^= 1;
        t.signature = o.agent.sign(&t.signed_bytes());
        assert_eq!(open(&t), Some(Error::Decrypt));
        assert!(open(&env).is_none());
    }

    #[test]
    fn a_signal_does_not_open_in_another_conversation() {
        let (o, keys) = setup(304);
        let (rec, k) = first_epoch(&o, 306);
        let other = EpochKeys::new(&k, &rec);
        assert_ne!(other.conversation(), keys.conversation());
        let mut rng = test_rng(305);
        let env = seal_signal(&keys, &o.customer, SignalKind::Typing, 7, &mut rng).unwrap();
        // Moved to another conversation with the same members (re-signed by the sender
        // itself): the key is derived per conversation, so it does not open.
        let mut moved = env.clone();
        moved.header.conversation = other.conversation();
        moved.signature = o.customer.sign(&moved.signed_bytes());
        assert!(open_signal(&other, &moved, 7).is_err());
        assert_eq!(
            open_signal(&other, &env, 7).err(),
            Some(Error::WrongConversation)
        );
    }

    #[test]
    fn only_members_seal() {
        let (o, keys) = setup(308);
        let mut rng = test_rng(309);
        assert_eq!(
            seal_signal(&keys, &o.agent2, SignalKind::Typing, 7, &mut rng).err(),
            Some(Error::NotAMember)
        );
    }
}
