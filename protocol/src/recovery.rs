//! Recovery codes: a customer's identity keys derived from a code shown once at `init`.
//!
//! ```text
//!   payload  = version (1) ‖ entropy (16) ‖ u32(card created_at)        21 bytes
//!   checksum = SHA-256(str("sealdesk/v1/recovery-code/checksum") ‖ payload)[..4]
//!   code     = Crockford base32(payload ‖ checksum)                     40 characters,
//!              written in eight groups of five joined by '-'
//!   keys     = HKDF-SHA256(salt = str("sealdesk/v1/recovery-code/salt"), ikm = entropy,
//!                          info = str("sealdesk/v1/recovery-code/identity"), 64 bytes)
//!              → Ed25519 seed (first 32) ‖ X25519 secret (last 32)
//! ```
//!
//! The 128 bits of entropy are the secret; the card's creation time travels in the code so
//! that the card re-issued from it is byte for byte the registered one (Ed25519 signatures are
//! deterministic), which is what lets a recovered client authenticate as the same account
//! without asking the relay for anything. The checksum catches a mistyped code before any key
//! is derived. The derivation is HKDF, not a password hash: the input is 128 uniformly random
//! bits, so stretching it adds nothing an attacker would notice (SECURITY.md, "Recovery codes").
//! PROTOCOL.md §3.5 gives the bytes; `protocol/vectors/recovery.json` pins them.

use core::fmt;

use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::{Digest as _, Sha256};
use zeroize::{Zeroize as _, Zeroizing};

use crate::{codec::Writer, keys::IdentityKeys, labels};

/// The version byte of the codes `init` writes: the identity keys are derived from the code.
pub const CODE_VERSION: u8 = 1;
/// The version byte of a replaceable code: the identity keys are sealed under it in a record
/// the relay keeps ([`crate::recovery_record`]); the bytes are laid out as for version 1.
pub const RECORD_CODE_VERSION: u8 = 2;

/// What a code stands for, from its version byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeKind {
    /// Version 1: the identity keys are derived from the code ([`RecoveryCode::identity_keys`]).
    DerivedKeys,
    /// Version 2: the code opens a recovery record the relay keeps
    /// ([`crate::recovery_record::RecoveryRecord`]); it can be replaced.
    Record,
}
/// Secret bytes in a code.
pub const ENTROPY_LEN: usize = 16;
/// Bytes before the checksum: version, entropy, creation time.
const PAYLOAD_LEN: usize = 1 + ENTROPY_LEN + 4;
/// Checksum bytes.
const CHECKSUM_LEN: usize = 4;
/// All the bytes a code encodes.
const CODE_LEN: usize = PAYLOAD_LEN + CHECKSUM_LEN;
/// Base32 characters in a code (25 bytes are exactly 40 characters).
pub const CODE_CHARS: usize = CODE_LEN * 8 / 5;
/// Characters per printed group.
const GROUP: usize = 5;

/// Crockford's base32 alphabet: no I, L, O or U, so fewer look-alikes.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Why a recovery code was refused. Nothing is derived from a refused code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// A character outside the code's alphabet (hyphens and spaces are ignored).
    #[error(
        "the recovery code has a character it cannot contain ({character:?}, character {position})"
    )]
    BadCharacter {
        /// The character.
        character: char,
        /// Its position among the code's characters, from 1.
        position: usize,
    },
    /// Too few or too many characters.
    #[error("a recovery code has {expected} characters (not counting hyphens); this one has {got}")]
    WrongLength {
        /// Characters required.
        expected: usize,
        /// Characters given.
        got: usize,
    },
    /// The checksum does not match: a character is mistyped (or missing, or swapped).
    #[error("the recovery code has a typo: its checksum does not match; check every character")]
    Checksum,
    /// A code written by another version of Sealdesk.
    #[error("recovery code version {0} is not known to this version of Sealdesk")]
    UnknownVersion(u8),
    /// The time does not fit the code (after 2106).
    #[error("the card's creation time does not fit a recovery code")]
    TimeOutOfRange,
}

/// A parsed, checksum-verified recovery code. Holds the secret: no `Clone`, `Debug` prints
/// nothing secret, zeroized on drop.
pub struct RecoveryCode {
    version: u8,
    entropy: Zeroizing<[u8; ENTROPY_LEN]>,
    created_at: u32,
}

impl RecoveryCode {
    /// A fresh code for a card created at `created_at` (seconds since the Unix epoch).
    ///
    /// # Errors
    /// [`CodeError::TimeOutOfRange`] past 2106.
    pub fn generate(rng: &mut impl CryptoRng, created_at: u64) -> Result<Self, CodeError> {
        let mut entropy = Zeroizing::new([0u8; ENTROPY_LEN]);
        rng.fill_bytes(entropy.as_mut_slice());
        Self::from_parts(&entropy, created_at)
    }

    /// A code from its secret bytes and the card's creation time (for vectors and tests).
    ///
    /// # Errors
    /// [`CodeError::TimeOutOfRange`] past 2106.
    pub fn from_parts(entropy: &[u8; ENTROPY_LEN], created_at: u64) -> Result<Self, CodeError> {
        let created_at = u32::try_from(created_at).map_err(|_| CodeError::TimeOutOfRange)?;
        Ok(Self {
            version: CODE_VERSION,
            entropy: Zeroizing::new(*entropy),
            created_at,
        })
    }

    /// A fresh replaceable code ([`CodeKind::Record`]), made at `now`.
    ///
    /// # Errors
    /// [`CodeError::TimeOutOfRange`] past 2106.
    pub fn generate_for_record(rng: &mut impl CryptoRng, now: u64) -> Result<Self, CodeError> {
        let mut code = Self::generate(rng, now)?;
        code.version = RECORD_CODE_VERSION;
        Ok(code)
    }

    /// What this code stands for.
    pub fn kind(&self) -> CodeKind {
        if self.version == RECORD_CODE_VERSION {
            CodeKind::Record
        } else {
            CodeKind::DerivedKeys
        }
    }

    /// Parses a code as a person types it: case-insensitive, hyphens and whitespace ignored,
    /// `O` read as `0` and `I`/`L` as `1`; then checks its length, checksum and version.
    ///
    /// # Errors
    /// [`CodeError`]: a bad character, a wrong length, a typo (checksum), an unknown version.
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        let mut values = Zeroizing::new(Vec::with_capacity(CODE_CHARS));
        for c in text.chars() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            let v = match c.to_ascii_uppercase() {
                'O' => 0,
                'I' | 'L' => 1,
                u => ALPHABET.iter().position(|&a| char::from(a) == u).ok_or(
                    CodeError::BadCharacter {
                        character: c,
                        position: values.len() + 1,
                    },
                )?,
            };
            values.push(v);
        }
        if values.len() != CODE_CHARS {
            return Err(CodeError::WrongLength {
                expected: CODE_CHARS,
                got: values.len(),
            });
        }
        let mut bytes = Zeroizing::new([0u8; CODE_LEN]);
        let mut acc: u32 = 0;
        let mut bits = 0u32;
        let mut at = 0usize;
        for &v in values.iter() {
            acc = (acc << 5) | u32::try_from(v).map_err(|_| CodeError::Checksum)?;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                if let Some(b) = bytes.get_mut(at) {
                    *b = ((acc >> bits) & 0xff) as u8;
                }
                at += 1;
                acc &= (1 << bits) - 1;
            }
        }
        acc.zeroize();
        let (payload, checksum) = bytes.split_at(PAYLOAD_LEN);
        if checksum_of(payload)[..] != *checksum {
            return Err(CodeError::Checksum);
        }
        if payload[0] != CODE_VERSION && payload[0] != RECORD_CODE_VERSION {
            return Err(CodeError::UnknownVersion(payload[0]));
        }
        let mut entropy = Zeroizing::new([0u8; ENTROPY_LEN]);
        entropy.copy_from_slice(&payload[1..=ENTROPY_LEN]);
        let mut time = [0u8; 4];
        time.copy_from_slice(&payload[1 + ENTROPY_LEN..]);
        Ok(Self {
            version: payload[0],
            entropy,
            created_at: u32::from_be_bytes(time),
        })
    }

    /// The code as it is shown: 40 characters in eight groups of five, joined by `-`.
    /// Secret: show it once, never log it.
    pub fn reveal(&self) -> Zeroizing<String> {
        let mut bytes = Zeroizing::new([0u8; CODE_LEN]);
        bytes[..PAYLOAD_LEN].copy_from_slice(&self.payload()[..]);
        let sum = checksum_of(&self.payload()[..]);
        bytes[PAYLOAD_LEN..].copy_from_slice(&sum);
        let mut out = Zeroizing::new(String::with_capacity(CODE_CHARS + CODE_CHARS / GROUP));
        let mut acc: u32 = 0;
        let mut bits = 0u32;
        let mut n = 0usize;
        for &b in bytes.iter() {
            acc = (acc << 8) | u32::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                if n > 0 && n.is_multiple_of(GROUP) {
                    out.push('-');
                }
                out.push(char::from(ALPHABET[((acc >> bits) & 0x1f) as usize]));
                n += 1;
            }
            acc &= (1 << bits) - 1;
        }
        acc.zeroize();
        out
    }

    /// The card's creation time the code was made with.
    pub fn created_at(&self) -> u64 {
        u64::from(self.created_at)
    }

    /// The identity keys a [`CodeKind::DerivedKeys`] code stands for (always the same for the
    /// same code). A [`CodeKind::Record`] code stands for no keys of its own: it opens a
    /// recovery record instead, so check [`RecoveryCode::kind`] first.
    pub fn identity_keys(&self) -> IdentityKeys {
        IdentityKeys::from_secret_bytes(&self.expand::<64>(labels::RECOVERY_CODE_IDENTITY))
    }

    /// `N` bytes of HKDF-SHA256 of the code's secret under `info_label` (salt as for the
    /// identity keys): the recovery record's key and proof.
    pub(crate) fn expand<const N: usize>(&self, info_label: &str) -> Zeroizing<[u8; N]> {
        let salt = Writer::with_label(labels::RECOVERY_CODE_SALT);
        let info = Writer::with_label(info_label);
        let hk = Hkdf::<Sha256>::new(Some(salt.as_bytes()), self.entropy.as_slice());
        let mut okm = Zeroizing::new([0u8; N]);
        // N is at most 64 here, far below HKDF-SHA256's limit of 255 * 32: this cannot fail.
        if hk.expand(info.as_bytes(), okm.as_mut_slice()).is_err() {
            okm.fill(0);
        }
        okm
    }

    fn payload(&self) -> Zeroizing<[u8; PAYLOAD_LEN]> {
        let mut p = Zeroizing::new([0u8; PAYLOAD_LEN]);
        p[0] = self.version;
        p[1..=ENTROPY_LEN].copy_from_slice(self.entropy.as_slice());
        p[1 + ENTROPY_LEN..].copy_from_slice(&self.created_at.to_be_bytes());
        p
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCode")
            .field("version", &self.version)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// The first four bytes of the labelled SHA-256 of the payload.
fn checksum_of(payload: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut w = Writer::with_label(labels::RECOVERY_CODE_CHECKSUM);
    w.fixed(payload);
    let digest = Sha256::digest(w.as_bytes());
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&digest[..CHECKSUM_LEN]);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn code() -> RecoveryCode {
        RecoveryCode::from_parts(&[7u8; ENTROPY_LEN], 1_790_000_000).unwrap()
    }

    #[test]
    fn a_code_round_trips_and_derives_the_same_keys() {
        let c = code();
        let text = c.reveal();
        assert_eq!(text.len(), CODE_CHARS + 7);
        assert_eq!(text.split('-').count(), 8);
        let back = RecoveryCode::parse(&text).unwrap();
        assert_eq!(back.created_at(), 1_790_000_000);
        assert_eq!(
            back.identity_keys().signing_public(),
            c.identity_keys().signing_public()
        );
        assert_eq!(
            back.identity_keys().agreement_public(),
            c.identity_keys().agreement_public()
        );
        // Lower case, spaces, no hyphens, and O/I/L look-alikes all read the same.
        let loose = text.replace('-', " ").to_lowercase();
        assert!(RecoveryCode::parse(&loose).is_ok());
        let other = RecoveryCode::from_parts(&[8u8; ENTROPY_LEN], 1_790_000_000).unwrap();
        assert_ne!(
            other.identity_keys().signing_public(),
            c.identity_keys().signing_public()
        );
    }

    #[test]
    fn look_alikes_are_read_as_digits() {
        // Find a code with a 0 or a 1 in it, and type it with O / I / L instead.
        for seed in 0u8..=255 {
            let c = RecoveryCode::from_parts(&[seed; ENTROPY_LEN], 1).unwrap();
            let text = c.reveal().to_string();
            if text.contains('0') && text.contains('1') {
                let typed = text.replace('0', "O").replace('1', "l");
                let back = RecoveryCode::parse(&typed).unwrap();
                assert_eq!(
                    back.identity_keys().signing_public(),
                    c.identity_keys().signing_public()
                );
                return;
            }
        }
        panic!("no code with both a 0 and a 1 among 256");
    }

    #[test]
    fn every_single_character_typo_is_caught_by_the_checksum() {
        let text: Vec<char> = code().reveal().chars().filter(|c| *c != '-').collect();
        for i in 0..text.len() {
            for &a in ALPHABET {
                let a = char::from(a);
                if a == text[i] {
                    continue;
                }
                let mut typo = text.clone();
                typo[i] = a;
                let typo: String = typo.into_iter().collect();
                let got = RecoveryCode::parse(&typo).map(|_| ());
                // The last character carries no payload bits beyond the checksum's own, but
                // any change to it changes the checksum bytes: refused either way.
                assert_eq!(got, Err(CodeError::Checksum), "typo at {i} accepted");
            }
        }
        // Two neighbours swapped.
        let mut swapped = text.clone();
        let j = swapped.iter().position(|c| *c != swapped[0]).unwrap();
        swapped.swap(0, j);
        let swapped: String = swapped.into_iter().collect();
        assert_eq!(
            RecoveryCode::parse(&swapped).map(|_| ()),
            Err(CodeError::Checksum)
        );
    }

    #[test]
    fn malformed_codes_are_refused_with_what_is_wrong() {
        let text = code().reveal().to_string();
        assert_eq!(
            RecoveryCode::parse(&text[..text.len() - 1]).map(|_| ()),
            Err(CodeError::WrongLength {
                expected: CODE_CHARS,
                got: CODE_CHARS - 1
            })
        );
        let bad = format!("U{}", &text[1..]);
        assert_eq!(
            RecoveryCode::parse(&bad).map(|_| ()),
            Err(CodeError::BadCharacter {
                character: 'U',
                position: 1
            })
        );
        assert!(matches!(
            RecoveryCode::parse(""),
            Err(CodeError::WrongLength { got: 0, .. })
        ));
    }

    #[test]
    fn another_version_is_refused_even_with_a_good_checksum() {
        let c = code();
        let mut payload = *c.payload();
        payload[0] = 3;
        let mut bytes = [0u8; CODE_LEN];
        bytes[..PAYLOAD_LEN].copy_from_slice(&payload);
        bytes[PAYLOAD_LEN..].copy_from_slice(&checksum_of(&payload));
        // Encode by hand.
        let mut text = String::new();
        let (mut acc, mut bits) = (0u32, 0u32);
        for b in bytes {
            acc = (acc << 8) | u32::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                text.push(char::from(ALPHABET[((acc >> bits) & 0x1f) as usize]));
            }
            acc &= (1 << bits) - 1;
        }
        assert_eq!(
            RecoveryCode::parse(&text).map(|_| ()),
            Err(CodeError::UnknownVersion(3))
        );
    }

    #[test]
    fn debug_prints_no_secret() {
        let c = code();
        assert_eq!(
            format!("{c:?}"),
            "RecoveryCode { version: 1, created_at: 1790000000, .. }"
        );
    }
}
