//! The vault key (Argon2id from the passphrase) and the AEAD that seals every record and log
//! frame under associated data naming it.

use std::path::Path;

use aes_gcm::aead::{Nonce, Tag};
use aes_gcm::{AeadInOut, Aes256Gcm, KeyInit};
use argon2::{Algorithm, Argon2, Version};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{
    AUTH_FAILED, FORMAT_VERSION, KEY_LEN, LOG_AAD_LABEL, NONCE_LEN, RECORD_AAD_LABEL, SALT_LEN,
    SEALED_OVERHEAD, TAG_LEN, VaultError,
};

// ---------------------------------------------------------------------------------------------
// The key and the AEAD.

/// The vault key. No `Debug`, `Clone` or `Serialize`; wiped when dropped.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(super) struct VaultKey {
    pub(super) bytes: [u8; KEY_LEN],
}

impl VaultKey {
    /// Argon2id(passphrase, salt) with the given parameters.
    pub(super) fn derive(
        passphrase: &str,
        salt: &[u8; SALT_LEN],
        params: argon2::Params,
    ) -> Result<Self, VaultError> {
        let mut key = Self {
            bytes: [0; KEY_LEN],
        };
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase.as_bytes(), salt, &mut key.bytes)
            .map_err(|err| VaultError::InvalidKdfParams {
                reason: err.to_string(),
            })?;
        Ok(key)
    }

    /// The AES-256-GCM cipher for this key. Built per call (a key expansion costs well under a
    /// microsecond) so the only long-lived copy of the key is `self`; with the `zeroize` feature
    /// the cipher's round keys are wiped when it drops.
    pub(super) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&self.bytes).into())
    }

    /// Seals `plaintext`: `version || nonce || ciphertext || tag`.
    ///
    /// Nonce uniqueness: nonces are 96 random bits from the OS generator. With random nonces
    /// NIST SP 800-38D allows at most 2^32 sealings per key; the chance that q sealings repeat a
    /// nonce is about q^2 / 2^97. A vault seals once per `put`/`append`, far below that bound
    /// over its life, and every new vault has a fresh salt and so a fresh key. A passphrase
    /// change keeps this key (wrapped under the new passphrase's, `passphrase.rs`), so the count
    /// goes on across changes, still far below the bound.
    ///
    /// `name` only labels the error: AES-GCM refuses nothing below 2^36 bytes, far above
    /// [`MAX_VALUE_LEN`].
    pub(super) fn seal(
        &self,
        name: &str,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let nonce: [u8; NONCE_LEN] = random_bytes()?;
        // Zeroizing, so the plaintext copied in here is wiped if sealing fails.
        let mut out = Zeroizing::new(Vec::with_capacity(SEALED_OVERHEAD + plaintext.len()));
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let body = out.get_mut(1 + NONCE_LEN..).unwrap_or_default();
        let tag = self
            .cipher()
            .encrypt_inout_detached((&nonce).into(), aad, body.into())
            .map_err(|_| VaultError::TooLarge {
                name: name.to_owned(),
                len: plaintext.len(),
            })?;
        out.extend_from_slice(&tag);
        // The buffer now holds only ciphertext; take it out of the wrapper.
        Ok(std::mem::take(&mut *out))
    }

    /// Opens a sealed value read from `path`.
    pub(super) fn open(
        &self,
        path: &Path,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let corrupt = |reason| VaultError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let Some((&version, rest)) = sealed.split_first() else {
            return Err(corrupt("empty file"));
        };
        if version != FORMAT_VERSION {
            return Err(VaultError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: u64::from(version),
            });
        }
        let (nonce, rest) = rest
            .split_at_checked(NONCE_LEN)
            .ok_or(corrupt("too short"))?;
        let body_len = rest
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(corrupt("too short"))?;
        let (body, tag) = rest.split_at(body_len);
        let nonce = <&Nonce<Aes256Gcm>>::try_from(nonce).map_err(|_| corrupt("too short"))?;
        let tag = <&Tag<Aes256Gcm>>::try_from(tag).map_err(|_| corrupt("too short"))?;
        let mut plaintext = Zeroizing::new(body.to_vec());
        self.cipher()
            .decrypt_inout_detached(nonce, aad, plaintext.as_mut_slice().into(), tag)
            .map_err(|_| corrupt(AUTH_FAILED))?;
        Ok(plaintext)
    }
}

/// The associated data of record `name`.
pub(super) fn record_aad(name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(RECORD_AAD_LABEL.len() + 1 + name.len());
    aad.extend_from_slice(RECORD_AAD_LABEL);
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// The associated data of frame `index` of log `name`. Names never contain `0x00`, so the
/// encoding is unambiguous.
pub(super) fn log_aad(name: &str, index: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(LOG_AAD_LABEL.len() + name.len() + 10);
    aad.extend_from_slice(LOG_AAD_LABEL);
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&index.to_be_bytes());
    aad
}

/// `N` bytes from the operating system's generator.
pub(super) fn random_bytes<const N: usize>() -> Result<[u8; N], VaultError> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).map_err(|err| VaultError::Random {
        reason: err.to_string(),
    })?;
    Ok(bytes)
}
