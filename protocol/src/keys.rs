//! Identity keys: an Ed25519 signing key and an independent X25519 key-agreement key per account.
//!
//! Secret halves are newtypes with no `Clone`, `Debug` that prints only the public half,
//! and zeroization on drop. Public halves are plain `Copy + Eq + Hash` values.

use core::fmt;

use ed25519_dalek::{Signer as _, SigningKey};
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{Error, Result, codec::Writer, labels};

/// Implements serde for a fixed-size byte newtype as a CBOR byte string, validating on decode.
macro_rules! serde_fixed_bytes {
    ($ty:ty, $len:expr, $what:expr) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> core::result::Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.to_bytes())
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> core::result::Result<Self, D::Error> {
                let buf = serde_bytes::ByteBuf::deserialize(d)?;
                <$ty>::try_from(buf.as_slice()).map_err(serde::de::Error::custom)
            }
        }
        impl TryFrom<&[u8]> for $ty {
            type Error = crate::Error;
            fn try_from(v: &[u8]) -> crate::Result<Self> {
                let arr: [u8; $len] = v.try_into().map_err(|_| crate::Error::BadLength {
                    what: $what,
                    expected: $len,
                    got: v.len(),
                })?;
                Self::from_bytes(&arr)
            }
        }
    };
}
pub(crate) use serde_fixed_bytes;

/// An Ed25519 public key, checked to be a valid curve point on construction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SigningPublicKey([u8; 32]);

impl SigningPublicKey {
    /// Decodes and validates a compressed Edwards point.
    ///
    /// # Errors
    /// [`Error::InvalidPublicKey`] if the bytes are not a valid point, or a weak (small-order) one.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        checked_verifying_key(bytes)?;
        Ok(Self(*bytes))
    }

    /// The 32 encoded bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// Borrow the encoded bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Verifies `signature` over `message` with Ed25519 `verify_strict` (rejects malleable and
    /// small-order signatures).
    ///
    /// # Errors
    /// [`Error::BadSignature`] naming `what` if verification fails.
    pub fn verify(&self, message: &[u8], signature: &Signature, what: &'static str) -> Result<()> {
        let vk = checked_verifying_key(&self.0)?;
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        vk.verify_strict(message, &sig)
            .map_err(|_| Error::BadSignature(what))
    }
}

impl fmt::Debug for SigningPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningPublicKey({})", hex::encode(&self.0[..8]))
    }
}

impl fmt::Display for SigningPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
serde_fixed_bytes!(SigningPublicKey, 32, "Ed25519 public key");

/// How many checked Ed25519 keys each thread remembers (about 200 KiB); the memo is emptied
/// when it is full.
const CHECKED_KEYS: usize = 1024;

std::thread_local! {
    /// Ed25519 keys this thread has already decompressed and found valid, by encoding. The same
    /// few keys are decoded over and over (every message header names its sender, every
    /// signature check needs the point), and a decompression costs a field inversion; a repeat
    /// is a hash lookup instead. Only keys that passed the checks are stored, under their exact
    /// bytes, so the answer is the same with or without the memo.
    static CHECKED: std::cell::RefCell<std::collections::HashMap<[u8; 32], ed25519_dalek::VerifyingKey>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Decompresses `bytes` and refuses invalid and weak (small-order) points, through the
/// per-thread memo of keys already checked.
fn checked_verifying_key(bytes: &[u8; 32]) -> Result<ed25519_dalek::VerifyingKey> {
    if let Some(vk) = CHECKED.with(|m| m.borrow().get(bytes).copied()) {
        return Ok(vk);
    }
    let vk = ed25519_dalek::VerifyingKey::from_bytes(bytes)
        .map_err(|_| Error::InvalidPublicKey("Ed25519"))?;
    if vk.is_weak() {
        return Err(Error::InvalidPublicKey("Ed25519"));
    }
    CHECKED.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= CHECKED_KEYS {
            m.clear();
        }
        m.insert(*bytes, vk);
    });
    Ok(vk)
}

/// An X25519 public key, checked on construction to be contributory: a low-order point (whose
/// Diffie–Hellman output would be all zero, known to an attacker) is refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgreementPublicKey([u8; 32]);

impl AgreementPublicKey {
    /// Decodes an X25519 public key and rejects low-order points.
    ///
    /// # Errors
    /// [`Error::InvalidPublicKey`] for a non-contributory point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        if has_small_order(bytes) {
            return Err(Error::InvalidPublicKey("X25519"));
        }
        Ok(Self(*bytes))
    }

    /// The 32 encoded bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// Borrow the encoded bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for AgreementPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgreementPublicKey({})", hex::encode(&self.0[..8]))
    }
}
serde_fixed_bytes!(AgreementPublicKey, 32, "X25519 public key");

/// The u-coordinates of the points of small order on Curve25519 and its twist, and their
/// non-canonical encodings below 2^255 (X25519 ignores the top bit): the list libsodium's
/// `has_small_order` checks. A Diffie–Hellman with any of them gives all zeros; with any other
/// point it does not. The unit tests check each entry against an actual X25519, and the
/// Wycheproof test checks that every zero-secret public key it knows is refused.
const SMALL_ORDER: [[u8; 32]; 7] = {
    const fn p_plus(low: u8) -> [u8; 32] {
        let mut b = [0xff; 32];
        b[0] = low;
        b[31] = 0x7f;
        b
    }
    [
        // 0 (order 4)
        [0; 32],
        // 1 (order 1)
        {
            let mut b = [0; 32];
            b[0] = 1;
            b
        },
        // 325606250916557431795983626356110631294008115727848805560023387167927233504 (order 8)
        [
            0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f,
            0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16,
            0x5f, 0x49, 0xb8, 0x00,
        ],
        // 39382357235489614581723060781553021112529911719440698176882885853963445705823 (order 8)
        [
            0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83,
            0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd,
            0xd0, 0x9f, 0x11, 0x57,
        ],
        // p - 1 (order 2), p (= 0), p + 1 (= 1)
        p_plus(0xec),
        p_plus(0xed),
        p_plus(0xee),
    ]
};

/// Whether X25519 with the public key `u` gives the all-zero secret for every private key:
/// `u`, top bit ignored, is one of [`SMALL_ORDER`]. Compares every byte of every entry (no
/// early exit), though public keys are public anyway. Costs nanoseconds where the equivalent
/// probe (one X25519) costs tens of microseconds.
fn has_small_order(u: &[u8; 32]) -> bool {
    let mut masked = *u;
    masked[31] &= 0x7f;
    SMALL_ORDER.iter().fold(false, |found, bad| {
        let diff = bad.iter().zip(&masked).fold(0u8, |d, (a, b)| d | (a ^ b));
        found | (diff == 0)
    })
}

/// An Ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; 64]);

impl Signature {
    /// Wraps 64 signature bytes (checked only when verified).
    ///
    /// # Errors
    /// Never; the signature is parsed at verification. Kept fallible for symmetry with keys.
    pub fn from_bytes(bytes: &[u8; 64]) -> Result<Self> {
        Ok(Self(*bytes))
    }

    /// An all-zero placeholder, replaced by the real signature once the signed bytes exist.
    pub(crate) const fn placeholder() -> Self {
        Self([0; 64])
    }

    /// The 64 bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex::encode(&self.0[..8]))
    }
}
serde_fixed_bytes!(Signature, 64, "Ed25519 signature");

/// The X25519 secret of an identity. Consumed only through [`IdentityKeys`].
#[derive(ZeroizeOnDrop)]
pub(crate) struct AgreementSecret(x25519_dalek::StaticSecret);

impl AgreementSecret {
    pub(crate) fn to_hpke(&self) -> Result<<hpke::kem::X25519HkdfSha256 as hpke::Kem>::PrivateKey> {
        use hpke::Deserializable as _;
        let bytes = Zeroizing::new(self.0.to_bytes());
        <hpke::kem::X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(bytes.as_slice())
            .map_err(|_| Error::InvalidPublicKey("X25519"))
    }
}

/// An account's secret identity: Ed25519 signing key and X25519 agreement key, both random and
/// independent. No `Clone`, no `Serialize`; export only through [`IdentityKeys::to_secret_bytes`].
#[derive(ZeroizeOnDrop)]
pub struct IdentityKeys {
    signing: SigningKey,
    agreement: AgreementSecret,
}

impl IdentityKeys {
    /// Generates a fresh identity.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let signing = SigningKey::generate(rng);
        let agreement = AgreementSecret(x25519_dalek::StaticSecret::random_from_rng(rng));
        Self { signing, agreement }
    }

    /// Restores an identity from the 64 bytes written by [`Self::to_secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8; 64]) -> Self {
        let mut sk = [0u8; 32];
        let mut ak = [0u8; 32];
        sk.copy_from_slice(&bytes[..32]);
        ak.copy_from_slice(&bytes[32..]);
        let keys = Self {
            signing: SigningKey::from_bytes(&sk),
            agreement: AgreementSecret(x25519_dalek::StaticSecret::from(ak)),
        };
        sk.zeroize();
        ak.zeroize();
        keys
    }

    /// Exports the secret bytes (signing seed then X25519 scalar), zeroized when dropped.
    /// Store them only encrypted.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 64]> {
        let mut out = Zeroizing::new([0u8; 64]);
        out[..32].copy_from_slice(&self.signing.to_bytes());
        out[32..].copy_from_slice(self.agreement.0.as_bytes());
        out
    }

    /// The public signing key.
    pub fn signing_public(&self) -> SigningPublicKey {
        SigningPublicKey(self.signing.verifying_key().to_bytes())
    }

    /// The public agreement key.
    pub fn agreement_public(&self) -> AgreementPublicKey {
        AgreementPublicKey(x25519_dalek::PublicKey::from(&self.agreement.0).to_bytes())
    }

    /// Signs `message` (which must already start with a domain label).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing.sign(message).to_bytes())
    }

    pub(crate) fn agreement(&self) -> &AgreementSecret {
        &self.agreement
    }
}

impl fmt::Debug for IdentityKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructure so that a new secret field cannot be printed by accident.
        let Self {
            signing: _,
            agreement: _,
        } = self;
        f.debug_struct("IdentityKeys")
            .field("signing_public", &self.signing_public())
            .field("agreement_public", &self.agreement_public())
            .finish_non_exhaustive()
    }
}

/// A human-comparable fingerprint of an identity's two public keys: 30 decimal digits in six
/// groups of five, like Signal's safety numbers. Compare it out of band.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a (signing, agreement) key pair.
    pub fn of(signing: &SigningPublicKey, agreement: &AgreementPublicKey) -> Self {
        let mut w = Writer::with_label(labels::FINGERPRINT);
        w.fixed(signing.as_bytes()).fixed(agreement.as_bytes());
        Self(w.sha256())
    }

    /// The six five-digit groups.
    pub fn groups(&self) -> [u32; 6] {
        let mut out = [0u32; 6];
        for (i, g) in out.iter_mut().enumerate() {
            let chunk = &self.0[i * 5..i * 5 + 5];
            let v = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            // 2^40 mod 100000 bias is negligible for a comparison string.
            *g = u32::try_from(v % 100_000).unwrap_or(0);
        }
        out
    }

    /// Parses the printed form, ignoring spaces, and checks it equals this fingerprint.
    pub fn matches(&self, printed: &str) -> bool {
        let digits: String = printed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        let ours: String = self
            .to_string()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        subtle::ConstantTimeEq::ct_eq(digits.as_bytes(), ours.as_bytes()).into()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.groups();
        write!(
            f,
            "{:05} {:05} {:05} {:05} {:05} {:05}",
            g[0], g[1], g[2], g[3], g[4], g[5]
        )
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::test_rng;

    /// Every entry of the list is a real low-order point, with or without the top bit, and
    /// random keys agree with an actual X25519 probe.
    #[test]
    fn small_order_list_matches_an_x25519_probe() {
        let probe_is_zero = |u: [u8; 32]| x25519_dalek::x25519([0x42; 32], u) == [0u8; 32];
        for bad in SMALL_ORDER {
            let mut high = bad;
            high[31] |= 0x80;
            for u in [bad, high] {
                assert!(probe_is_zero(u), "{} is not of small order", hex::encode(u));
                assert!(AgreementPublicKey::from_bytes(&u).is_err());
            }
        }
        let mut rng = test_rng(7);
        for _ in 0..200 {
            let mut u = [0u8; 32];
            rand_core::Rng::fill_bytes(&mut rng, &mut u);
            assert_eq!(has_small_order(&u), probe_is_zero(u), "{}", hex::encode(u));
        }
    }

    /// The memo gives the same answers as a fresh check: valid keys verify, a bad point is
    /// refused every time, and a full memo starts over.
    #[test]
    fn checked_key_memo_changes_no_answer() {
        let keys = IdentityKeys::generate(&mut test_rng(8));
        let public = keys.signing_public();
        let sig = keys.sign(b"m");
        for _ in 0..3 {
            assert!(public.verify(b"m", &sig, "test").is_ok());
            assert!(public.verify(b"n", &sig, "test").is_err());
            assert!(SigningPublicKey::from_bytes(&public.to_bytes()).is_ok());
        }
        // A small-order point (the identity) is refused, again and again.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        for _ in 0..3 {
            assert!(SigningPublicKey::from_bytes(&identity).is_err());
        }
        for i in 0..(CHECKED_KEYS + 10) as u64 {
            let k = IdentityKeys::generate(&mut test_rng(1000 + i)).signing_public();
            assert!(SigningPublicKey::from_bytes(&k.to_bytes()).is_ok());
        }
        assert!(CHECKED.with(|m| m.borrow().len()) <= CHECKED_KEYS);
        assert!(public.verify(b"m", &sig, "test").is_ok());
    }

    #[test]
    fn debug_shows_no_secret() {
        let keys = IdentityKeys::generate(&mut test_rng(1));
        let secret = keys.to_secret_bytes();
        let dbg = format!("{keys:?}");
        assert!(!dbg.contains(&hex::encode(&secret[..32])));
        assert!(!dbg.contains(&hex::encode(&secret[32..])));
        assert!(!dbg.contains(&format!("{:?}", &secret[..4])));
        assert!(dbg.contains("IdentityKeys"));
    }

    #[test]
    fn secret_bytes_round_trip() {
        let keys = IdentityKeys::generate(&mut test_rng(2));
        let again = IdentityKeys::from_secret_bytes(&keys.to_secret_bytes());
        assert_eq!(keys.signing_public(), again.signing_public());
        assert_eq!(keys.agreement_public(), again.agreement_public());
    }

    #[test]
    fn low_order_x25519_points_are_rejected() {
        // The canonical small-order points on Curve25519 (from libsodium's blocklist).
        let zero = [0u8; 32];
        let mut one = [0u8; 32];
        one[0] = 1;
        let order8 =
            hex::decode("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
                .unwrap();
        for p in [zero.to_vec(), one.to_vec(), order8] {
            assert_eq!(
                AgreementPublicKey::try_from(p.as_slice()),
                Err(Error::InvalidPublicKey("X25519"))
            );
        }
        let good = IdentityKeys::generate(&mut test_rng(3)).agreement_public();
        assert!(AgreementPublicKey::from_bytes(&good.to_bytes()).is_ok());
    }

    #[test]
    fn signatures_verify_strictly_and_fail_on_tamper() {
        let keys = IdentityKeys::generate(&mut test_rng(4));
        let sig = keys.sign(b"hello");
        keys.signing_public()
            .verify(b"hello", &sig, "test")
            .unwrap();
        assert_eq!(
            keys.signing_public().verify(b"hellp", &sig, "test"),
            Err(Error::BadSignature("test"))
        );
        let other = IdentityKeys::generate(&mut test_rng(5));
        assert!(
            other
                .signing_public()
                .verify(b"hello", &sig, "test")
                .is_err()
        );
        let mut raw = sig.to_bytes();
        raw[10] ^= 1;
        assert!(
            keys.signing_public()
                .verify(b"hello", &Signature(raw), "test")
                .is_err()
        );
    }

    #[test]
    fn wrong_lengths_are_typed_errors() {
        assert!(matches!(
            SigningPublicKey::try_from(&[0u8; 31][..]),
            Err(Error::BadLength {
                expected: 32,
                got: 31,
                ..
            })
        ));
    }

    #[test]
    fn fingerprint_is_stable_and_comparable() {
        let keys = IdentityKeys::generate(&mut test_rng(6));
        let fp = Fingerprint::of(&keys.signing_public(), &keys.agreement_public());
        let shown = fp.to_string();
        assert_eq!(shown.len(), 35);
        assert!(fp.matches(&shown));
        assert!(fp.matches(&shown.replace(' ', "")));
        let other = IdentityKeys::generate(&mut test_rng(7));
        let fp2 = Fingerprint::of(&other.signing_public(), &other.agreement_public());
        assert!(!fp2.matches(&shown));
    }
}
