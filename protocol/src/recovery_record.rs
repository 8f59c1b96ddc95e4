//! Replaceable recovery codes: the identity keys sealed under a code, in a record the relay
//! keeps for the account's name.
//!
//! ```text
//!   key      = HKDF-SHA256(salt = str("sealdesk/v1/recovery-code/salt"), ikm = entropy,
//!                          info = str("sealdesk/v1/recovery-record/key"), 32 bytes)
//!   proof    = HKDF-SHA256(same salt and ikm, info = str("sealdesk/v1/recovery-record/proof"), 32)
//!   verifier = SHA-256(str("sealdesk/v1/recovery-record/verifier") ‖ bytes(proof))
//!   aad      = str("sealdesk/v1/recovery-record/aad") ‖ str(card.name) ‖ verifier
//!   sealed   = AES-256-GCM(key, nonce (12 random bytes), aad, identity secret (64 bytes))
//!   record   = { version: 1, card, verifier, nonce, sealed }        (CBOR, `wire`)
//! ```
//!
//! `str(x)` and `bytes(x)` are the codec's length-prefixed strings and bytes. The relay keeps one record per name and
//! hands it out only to a caller that shows the proof (it compares SHA-256 of what it is shown
//! with the verifier, in constant time): the relay never sees the key, and the record alone
//! opens nothing. A new record replaces the old one, so the old code's proof no longer fetches
//! anything — that is what makes a code replaceable, unlike an `init` code
//! ([`crate::recovery::CodeKind::DerivedKeys`]), which *is* the keys. The name and verifier in
//! the associated data bind the sealed keys to the record they came in: a record moved to
//! another name does not open. The account's card travels in the clear (it is public): the
//! keys that come out must be the card's, or the record is refused.

use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce, aead::Aead as _, aead::Payload};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::{
    card::IdentityCard,
    codec::{Writer, labelled_hash},
    keys::IdentityKeys,
    labels,
    recovery::{CodeKind, RecoveryCode},
};

/// The version of the records this module writes.
pub const RECORD_VERSION: u8 = 1;
/// Bytes of a proof and of a verifier.
pub const PROOF_LEN: usize = 32;
/// Bytes of the AES-GCM nonce.
const NONCE_LEN: usize = 12;
/// Bytes of the sealed identity secret (64 bytes and a 16-byte tag).
const SEALED_LEN: usize = 64 + 16;

/// Why a recovery record could not be made or opened. Nothing is returned from a refused record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The code is an `init` code, which stands for its keys and opens no record.
    #[error("this recovery code stands for its keys itself and opens no recovery record")]
    NotARecordCode,
    /// A record written by another version of Sealdesk.
    #[error("recovery record version {0} is not known to this version of Sealdesk")]
    UnknownVersion(u8),
    /// A field has the wrong length.
    #[error("the recovery record is malformed ({0})")]
    Malformed(&'static str),
    /// The sealed keys are not the card's.
    #[error("the keys in the recovery record are not its card's")]
    CardMismatch,
    /// The record is for another name than the one asked for.
    #[error("the recovery record is for {found:?}, not {expected:?}")]
    WrongName {
        /// The name asked for.
        expected: String,
        /// The record's name.
        found: String,
    },
    /// The code does not open the record (another code's record, or tampered with).
    #[error("this recovery code does not open the recovery record")]
    Open,
}

/// What a replaceable code shows the relay to fetch its record. Secret: with the record it
/// proves nothing about the keys, but it should not be logged.
pub struct RecoveryProof(Zeroizing<[u8; PROOF_LEN]>);

impl RecoveryProof {
    /// The proof of `code`.
    ///
    /// # Errors
    /// [`RecordError::NotARecordCode`] for an `init` code.
    pub fn of(code: &RecoveryCode) -> Result<Self, RecordError> {
        if code.kind() != CodeKind::Record {
            return Err(RecordError::NotARecordCode);
        }
        Ok(Self(
            code.expand::<PROOF_LEN>(labels::RECOVERY_RECORD_PROOF),
        ))
    }

    /// A proof as received on the wire.
    ///
    /// # Errors
    /// [`RecordError::Malformed`] for a wrong length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        let arr: [u8; PROOF_LEN] = bytes
            .try_into()
            .map_err(|_| RecordError::Malformed("proof"))?;
        Ok(Self(Zeroizing::new(arr)))
    }

    /// The proof's bytes, to send.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.0.to_vec())
    }

    /// The verifier the relay keeps for this proof.
    pub fn verifier(&self) -> [u8; PROOF_LEN] {
        labelled_hash(labels::RECOVERY_RECORD_VERIFIER, &[self.0.as_slice()])
    }
}

impl core::fmt::Debug for RecoveryProof {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RecoveryProof(..)")
    }
}

/// An account's identity keys sealed under a replaceable recovery code, as the relay keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryRecord {
    /// [`RECORD_VERSION`].
    pub version: u8,
    /// The account's card (public; the sealed keys must be its keys).
    pub card: IdentityCard,
    /// SHA-256 of the code's proof (see the module documentation).
    #[serde(with = "serde_bytes")]
    pub verifier: Vec<u8>,
    /// The AES-GCM nonce.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// The sealed identity secret.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

impl RecoveryRecord {
    /// Seals `keys` of the account of `card` under the replaceable `code`.
    ///
    /// # Errors
    /// [`RecordError::NotARecordCode`] for an `init` code; [`RecordError::CardMismatch`] when
    /// `keys` are not `card`'s; [`RecordError::Open`] if the cipher fails (it does not for
    /// these sizes).
    pub fn seal(
        rng: &mut impl CryptoRng,
        code: &RecoveryCode,
        card: &IdentityCard,
        keys: &IdentityKeys,
    ) -> Result<Self, RecordError> {
        if !is_card_of(card, keys) {
            return Err(RecordError::CardMismatch);
        }
        let verifier = RecoveryProof::of(code)?.verifier().to_vec();
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let secret = keys.to_secret_bytes();
        let sealed = cipher(code)?
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: secret.as_slice(),
                    aad: &aad(&card.name, &verifier),
                },
            )
            .map_err(|_| RecordError::Open)?;
        Ok(Self {
            version: RECORD_VERSION,
            card: card.clone(),
            verifier,
            nonce: nonce.to_vec(),
            sealed,
        })
    }

    /// Opens the record of the account `name` with `code`: its identity keys (which are its
    /// card's).
    ///
    /// # Errors
    /// [`RecordError`]: an `init` code, an unknown version, a malformed record, another
    /// name's record, a code that does not open it, keys that are not the card's.
    pub fn open(&self, code: &RecoveryCode, name: &str) -> Result<IdentityKeys, RecordError> {
        self.check_shape()?;
        if self.card.name != name {
            return Err(RecordError::WrongName {
                expected: name.to_owned(),
                found: self.card.name.clone(),
            });
        }
        if !self.admits(&RecoveryProof::of(code)?) {
            return Err(RecordError::Open);
        }
        let nonce: [u8; NONCE_LEN] = self
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| RecordError::Malformed("nonce"))?;
        let secret = Zeroizing::new(
            cipher(code)?
                .decrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: &self.sealed,
                        aad: &aad(&self.card.name, &self.verifier),
                    },
                )
                .map_err(|_| RecordError::Open)?,
        );
        let arr: Zeroizing<[u8; 64]> = Zeroizing::new(
            secret
                .as_slice()
                .try_into()
                .map_err(|_| RecordError::Malformed("sealed keys"))?,
        );
        let keys = IdentityKeys::from_secret_bytes(&arr);
        if !is_card_of(&self.card, &keys) {
            return Err(RecordError::CardMismatch);
        }
        Ok(keys)
    }

    /// Whether `proof` is this record's (constant-time comparison of its verifier).
    pub fn admits(&self, proof: &RecoveryProof) -> bool {
        bool::from(self.verifier.as_slice().ct_eq(&proof.verifier()))
    }

    /// Checks the version and the fields' lengths (the relay's check before storing).
    ///
    /// # Errors
    /// [`RecordError::UnknownVersion`], [`RecordError::Malformed`].
    pub fn check_shape(&self) -> Result<(), RecordError> {
        if self.version != RECORD_VERSION {
            return Err(RecordError::UnknownVersion(self.version));
        }
        if self.verifier.len() != PROOF_LEN {
            return Err(RecordError::Malformed("verifier"));
        }
        if self.nonce.len() != NONCE_LEN {
            return Err(RecordError::Malformed("nonce"));
        }
        if self.sealed.len() != SEALED_LEN {
            return Err(RecordError::Malformed("sealed keys"));
        }
        Ok(())
    }
}

/// Whether `keys` are the keys `card` names.
fn is_card_of(card: &IdentityCard, keys: &IdentityKeys) -> bool {
    card.signing_key == keys.signing_public() && card.agreement_key == keys.agreement_public()
}

/// The AES-256-GCM cipher of a replaceable code.
fn cipher(code: &RecoveryCode) -> Result<Aes256Gcm, RecordError> {
    if code.kind() != CodeKind::Record {
        return Err(RecordError::NotARecordCode);
    }
    let key = code.expand::<32>(labels::RECOVERY_RECORD_KEY);
    Aes256Gcm::new_from_slice(key.as_slice()).map_err(|_| RecordError::Open)
}

/// The associated data: the label, the name and the verifier.
fn aad(name: &str, verifier: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_label(labels::RECOVERY_RECORD_AAD);
    w.str(name).fixed(verifier);
    w.into_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn rng() -> rand::rngs::ChaCha20Rng {
        crate::test_rng(22)
    }

    fn carol(r: &mut rand::rngs::ChaCha20Rng) -> (IdentityKeys, IdentityCard) {
        let keys = IdentityKeys::generate(r);
        let card = IdentityCard::issue(&keys, "carol", crate::card::Role::Customer, 7).unwrap();
        (keys, card.card().clone())
    }

    #[test]
    fn a_record_opens_with_its_code_only() {
        let mut r = rng();
        let (keys, card) = carol(&mut r);
        let code = RecoveryCode::generate_for_record(&mut r, 1_790_000_000).unwrap();
        assert_eq!(code.kind(), CodeKind::Record);
        let record = RecoveryRecord::seal(&mut r, &code, &card, &keys).unwrap();
        record.check_shape().unwrap();
        // Through the code's text, as a person types it.
        let typed = RecoveryCode::parse(&code.reveal()).unwrap();
        assert_eq!(typed.kind(), CodeKind::Record);
        let back = record.open(&typed, "carol").unwrap();
        assert_eq!(back.signing_public(), keys.signing_public());
        assert_eq!(back.agreement_public(), keys.agreement_public());
        assert!(record.admits(&RecoveryProof::of(&typed).unwrap()));

        // A replacement: the old code's proof is not the new record's, and it opens nothing.
        let new_code = RecoveryCode::generate_for_record(&mut r, 1_790_000_001).unwrap();
        let new_record = RecoveryRecord::seal(&mut r, &new_code, &card, &keys).unwrap();
        assert!(!new_record.admits(&RecoveryProof::of(&code).unwrap()));
        assert_eq!(
            new_record.open(&code, "carol").unwrap_err(),
            RecordError::Open
        );
        assert_eq!(
            new_record
                .open(&new_code, "carol")
                .unwrap()
                .signing_public(),
            keys.signing_public()
        );
    }

    #[test]
    fn a_record_refuses_another_name_tampering_and_init_codes() {
        let mut r = rng();
        let (keys, card) = carol(&mut r);
        let code = RecoveryCode::generate_for_record(&mut r, 5).unwrap();
        let record = RecoveryRecord::seal(&mut r, &code, &card, &keys).unwrap();
        assert!(matches!(
            record.open(&code, "dave").unwrap_err(),
            RecordError::WrongName { .. }
        ));
        // Moved to another name: the associated data no longer matches.
        let mut moved = record.clone();
        moved.card.name = "dave".into();
        assert_eq!(moved.open(&code, "dave").unwrap_err(), RecordError::Open);
        // Another account's card with these sealed keys: the keys are not its card's.
        let (other_keys, other_card) = carol(&mut r);
        let mut swapped = record.clone();
        swapped.card = other_card.clone();
        assert_eq!(
            swapped.open(&code, "carol").unwrap_err(),
            RecordError::CardMismatch
        );
        assert_eq!(
            RecoveryRecord::seal(&mut r, &code, &other_card, &keys).unwrap_err(),
            RecordError::CardMismatch
        );
        drop(other_keys);
        let mut tampered = record.clone();
        tampered.sealed[3] ^= 1;
        assert_eq!(
            tampered.open(&code, "carol").unwrap_err(),
            RecordError::Open
        );
        let mut short = record.clone();
        short.nonce.pop();
        assert_eq!(
            short.check_shape().unwrap_err(),
            RecordError::Malformed("nonce")
        );
        let mut future = record.clone();
        future.version = 9;
        assert_eq!(
            future.open(&code, "carol").unwrap_err(),
            RecordError::UnknownVersion(9)
        );
        let init_code = RecoveryCode::generate(&mut r, 5).unwrap();
        assert_eq!(init_code.kind(), CodeKind::DerivedKeys);
        assert_eq!(
            RecoveryProof::of(&init_code).unwrap_err(),
            RecordError::NotARecordCode
        );
        assert_eq!(
            RecoveryRecord::seal(&mut r, &init_code, &card, &keys).unwrap_err(),
            RecordError::NotARecordCode
        );
        assert!(format!("{:?}", RecoveryProof::of(&code).unwrap()).ends_with("(..)"));
    }
}
