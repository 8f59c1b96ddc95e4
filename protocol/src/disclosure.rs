//! Per-message disclosure: one message's own key and nonce, shown instead of its epoch's key
//! so that a reader can open that message — and no other.
//!
//! ```text
//!   message key  = keys(sender, counter) = key (32) ‖ nonce (12)        44 bytes (see message)
//!   checked by   : SHA-256(label_commitment ‖ key) = the signed header's commitment
//!                  AES-256-GCM(key, nonce) opens the signed ciphertext under the header's aad
//! ```
//!
//! Each message's (key, nonce) comes from its sender's chain by HKDF-Expand with the counter, so
//! disclosing one reveals neither the chain nor any other message's key. The key is bound to
//! the message by the commitment in the sender-signed header; the nonce is bound by the AEAD
//! tag: with the key fixed, GCM's tag is `GHASH_H(aad, ct) ⊕ E_K(J0(nonce))` and `J0` is
//! injective on 96-bit nonces, so no other nonce opens the same signed ciphertext. A disclosed
//! message key therefore opens its message to the one body its sender encrypted, or fails.

use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce, aead::Aead as _, aead::Payload};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::{
    Error, Result,
    epoch::PROTOCOL_VERSION,
    keys::SigningPublicKey,
    message::{Envelope, EpochKeys, MAX_CIPHERTEXT, Opened, aad, commitment, signed_bytes},
};

/// The length of a disclosed message key: the 32-byte AES key and the 12-byte nonce.
pub const MESSAGE_KEY_LEN: usize = 44;

/// One message's own key and nonce (zeroized on drop).
pub struct MessageKey {
    key: Zeroizing<[u8; 32]>,
    nonce: Zeroizing<[u8; 12]>,
}

impl core::fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MessageKey(..)")
    }
}

impl MessageKey {
    /// Reads a disclosed key: the 32-byte key, then the 12-byte nonce.
    ///
    /// # Errors
    /// [`Error::BadLength`] unless `bytes` is [`MESSAGE_KEY_LEN`] long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != MESSAGE_KEY_LEN {
            return Err(Error::BadLength {
                what: "message key",
                expected: MESSAGE_KEY_LEN,
                got: bytes.len(),
            });
        }
        let mut key = Zeroizing::new([0u8; 32]);
        let mut nonce = Zeroizing::new([0u8; 12]);
        key.copy_from_slice(&bytes[..32]);
        nonce.copy_from_slice(&bytes[32..]);
        Ok(Self { key, nonce })
    }

    /// The 44 bytes to disclose: key ‖ nonce.
    pub fn to_bytes(&self) -> Zeroizing<[u8; MESSAGE_KEY_LEN]> {
        let mut out = Zeroizing::new([0u8; MESSAGE_KEY_LEN]);
        out[..32].copy_from_slice(self.key.as_slice());
        out[32..].copy_from_slice(self.nonce.as_slice());
        out
    }

    /// Whether this key is the one `env`'s signed header commits to.
    pub fn matches(&self, env: &Envelope) -> bool {
        bool::from(commitment(&self.key).ct_eq(&env.header.commitment))
    }

    /// Checks and opens `env` with this key alone: version, size, the sender's signature, the
    /// key commitment, the AEAD. It does not check that the sender is a member of the epoch
    /// (the caller holds the verified record) nor any replay window (a disclosed message is
    /// read once, offline).
    ///
    /// # Errors
    /// [`Error::UnknownVersion`], [`Error::TooLarge`], [`Error::BadSignature`],
    /// [`Error::KeyCommitmentMismatch`] for another message's key, [`Error::Decrypt`].
    pub fn open(&self, env: &Envelope) -> Result<Opened> {
        let h = &env.header;
        if h.version != PROTOCOL_VERSION {
            return Err(Error::UnknownVersion(h.version));
        }
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
        if !self.matches(env) {
            return Err(Error::KeyCommitmentMismatch);
        }
        let cipher = Aes256Gcm::new_from_slice(self.key.as_slice()).map_err(|_| Error::Decrypt)?;
        let aad = aad(&header_bytes);
        let body = cipher
            .decrypt(
                &Nonce::from(*self.nonce),
                Payload {
                    msg: &env.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::Decrypt)?;
        Ok(Opened {
            header: h.clone(),
            body: Zeroizing::new(body),
        })
    }
}

impl EpochKeys {
    /// The key and nonce of `sender`'s message `counter` in this epoch, to disclose that one
    /// message (see the module docs).
    pub fn message_key(&self, sender: &SigningPublicKey, counter: u64) -> MessageKey {
        let (key, nonce) = self.message_keys(sender, counter);
        MessageKey { key, nonce }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::keys::IdentityKeys;
    use crate::{epoch::tests::first_epoch, message::ContentKind, policy::tests::org};

    fn sealed() -> (EpochKeys, IdentityKeys, Envelope, Envelope) {
        let o = org(140);
        let (rec, k) = first_epoch(&o, 141);
        let keys = EpochKeys::new(&k, &rec);
        let a = keys
            .seal_message(&o.customer, 0, ContentKind::Text, 5, b"first")
            .unwrap();
        let b = keys
            .seal_message(&o.customer, 1, ContentKind::Text, 6, b"second")
            .unwrap();
        (keys, o.customer, a, b)
    }

    #[test]
    fn a_message_key_opens_its_message_and_no_other() {
        let (keys, customer, a, b) = sealed();
        let me = customer.signing_public();
        let ka = keys.message_key(&me, 0);
        assert_eq!(ka.open(&a).unwrap().body.as_slice(), b"first");
        let round = MessageKey::from_bytes(ka.to_bytes().as_slice()).unwrap();
        assert_eq!(round.open(&a).unwrap().body.as_slice(), b"first");
        assert!(matches!(ka.open(&b), Err(Error::KeyCommitmentMismatch)));
        assert!(!ka.matches(&b));
        // The right key with another nonce does not open it.
        let mut bytes = ka.to_bytes();
        bytes[40] ^= 1;
        let bad_nonce = MessageKey::from_bytes(bytes.as_slice()).unwrap();
        assert!(matches!(bad_nonce.open(&a), Err(Error::Decrypt)));
        // A ciphertext altered after signing fails the signature first.
        let mut altered = a.clone();
        altered.ciphertext[0] ^= 1;
        assert!(matches!(ka.open(&altered), Err(Error::BadSignature(_))));
        assert!(matches!(
            MessageKey::from_bytes(&[0; 32]),
            Err(Error::BadLength { .. })
        ));
    }
}
