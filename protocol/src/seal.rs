//! Sealing to a recipient: RFC 9180 HPKE, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! AES-256-GCM, through the `hpke` crate.
//!
//! The HPKE `info` always binds the purpose, the conversation, the epoch and the recipient (plus,
//! for released shares, the release request's hash), so a sealed blob can be opened only in the
//! exact context it was made for: an escrow share moved to another epoch or recipient fails.
//!
//! [`seal_deterministic`] fixes the ephemeral key as RFC 9180 `DeriveKeyPair(ikm)`: rust-hpke
//! draws exactly 32 bytes from the generator as `ikm`, so a generator that yields our HKDF-derived
//! `ikm` makes the sealed bytes a pure function of their inputs (docs/design.md §4). The `hpke` version
//! is pinned exactly and a known-answer vector catches any change in how it draws.

use hkdf::Hkdf;
use hpke::{
    Deserializable as _, OpModeR, OpModeS, Serializable as _, aead::AesGcm256, kdf::HkdfSha256,
    kem::X25519HkdfSha256,
};
use rand_core::{CryptoRng, TryCryptoRng, TryRng};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{
    Error, Result,
    codec::Writer,
    ids::ConversationId,
    keys::{AgreementPublicKey, IdentityKeys, SigningPublicKey},
    labels,
};

type Kem = X25519HkdfSha256;

/// What a sealed blob is for. Part of the HPKE `info`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Purpose {
    /// An epoch secret `K` sealed to a member.
    EpochSecret,
    /// The master's escrow share `s_M`.
    MasterShare,
    /// A trustee's Shamir share of `s_E`.
    TrusteeShare,
    /// A trustee's share re-sealed to the master for one release request.
    ReleasedShare,
    /// An earlier epoch's secret handed to a new agent.
    HandOff,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Purpose::EpochSecret => labels::SEAL_EPOCH_SECRET,
            Purpose::MasterShare => labels::SEAL_MASTER_SHARE,
            Purpose::TrusteeShare => labels::SEAL_TRUSTEE_SHARE,
            Purpose::ReleasedShare => labels::SEAL_RELEASED_SHARE,
            Purpose::HandOff => labels::SEAL_HANDOFF,
        }
    }
}

/// The context a blob is sealed in; becomes the HPKE `info`.
#[derive(Clone, Copy, Debug)]
pub struct SealContext<'a> {
    /// Purpose of the blob.
    pub purpose: Purpose,
    /// Conversation it belongs to.
    pub conversation: &'a ConversationId,
    /// Epoch it belongs to.
    pub epoch: u32,
    /// The recipient's identity (signing key), so a blob cannot be re-addressed.
    pub recipient: &'a SigningPublicKey,
    /// Extra binding: the release request hash for [`Purpose::ReleasedShare`], else empty.
    pub extra: &'a [u8],
}

impl SealContext<'_> {
    /// The HPKE `info` bytes.
    pub fn info(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::HPKE_INFO);
        w.str(self.purpose.label())
            .fixed(self.conversation.as_bytes())
            .u32(self.epoch)
            .fixed(self.recipient.as_bytes())
            .bytes(self.extra);
        w.into_bytes()
    }
}

/// An HPKE-sealed blob: the encapsulated key and the AEAD ciphertext (with tag).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Sealed {
    /// The 32-byte encapsulated (ephemeral public) key.
    #[serde(with = "serde_bytes")]
    pub enc: [u8; 32],
    /// The ciphertext, 16 bytes longer than the plaintext.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

impl Sealed {
    pub(crate) fn write(&self, w: &mut Writer) {
        w.fixed(&self.enc).bytes(&self.ciphertext);
    }
}

/// Seals `plaintext` to `recipient` with a fresh random ephemeral key.
///
/// # Errors
/// [`Error::Seal`] if HPKE refuses (for example a non-contributory key).
pub fn seal(
    rng: &mut impl CryptoRng,
    recipient: &AgreementPublicKey,
    ctx: &SealContext<'_>,
    plaintext: &[u8],
) -> Result<Sealed> {
    seal_with(rng, recipient, ctx, plaintext)
}

/// Seals with the ephemeral key fixed as `DeriveKeyPair(ikm)`: reproducible by anyone who knows
/// `ikm`. Use only where docs/design.md asks for it (escrow), with an `ikm` unique to the context.
///
/// # Errors
/// [`Error::Seal`] if HPKE refuses.
pub fn seal_deterministic(
    ikm: &[u8; 32],
    recipient: &AgreementPublicKey,
    ctx: &SealContext<'_>,
    plaintext: &[u8],
) -> Result<Sealed> {
    let mut rng = IkmStream::new(ikm);
    seal_with(&mut rng, recipient, ctx, plaintext)
}

/// Opens a blob sealed to `keys` in context `ctx`.
///
/// # Errors
/// [`Error::SealOpen`] naming `what` on any failure (wrong key, wrong context, tampering).
pub fn open(
    keys: &IdentityKeys,
    sealed: &Sealed,
    ctx: &SealContext<'_>,
    what: &'static str,
) -> Result<Zeroizing<Vec<u8>>> {
    let sk = keys.agreement().to_hpke()?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed.enc)
        .map_err(|_| Error::SealOpen(what))?;
    hpke::single_shot_open::<AesGcm256, HkdfSha256, Kem>(
        &OpModeR::Base,
        &sk,
        &enc,
        &ctx.info(),
        &sealed.ciphertext,
        &[],
    )
    .map(Zeroizing::new)
    .map_err(|_| Error::SealOpen(what))
}

fn seal_with(
    rng: &mut impl CryptoRng,
    recipient: &AgreementPublicKey,
    ctx: &SealContext<'_>,
    plaintext: &[u8],
) -> Result<Sealed> {
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(recipient.as_bytes())
        .map_err(|_| Error::Seal("HPKE public key"))?;
    let (enc, ciphertext) = hpke::single_shot_seal_with_rng::<AesGcm256, HkdfSha256, Kem>(
        &OpModeS::Base,
        &pk,
        &ctx.info(),
        plaintext,
        &[],
        rng,
    )
    .map_err(|_| Error::Seal("HPKE"))?;
    let enc_bytes = enc.to_bytes();
    let enc: [u8; 32] = enc_bytes
        .as_slice()
        .try_into()
        .map_err(|_| Error::Seal("HPKE enc"))?;
    Ok(Sealed { enc, ciphertext })
}

/// A deterministic byte stream whose first 32 bytes are `ikm` itself, and whose later bytes (which
/// rust-hpke 0.15 never asks for, but a future version might) come from HKDF-Expand(ikm,
/// counter). A changed draw pattern therefore changes the sealed bytes, which the known-answer
/// vector detects, instead of failing silently.
struct IkmStream {
    ikm: Zeroizing<[u8; 32]>,
    pos: u64,
}

impl IkmStream {
    fn new(ikm: &[u8; 32]) -> Self {
        Self {
            ikm: Zeroizing::new(*ikm),
            pos: 0,
        }
    }
}

impl TryRng for IkmStream {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> core::result::Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> core::result::Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> core::result::Result<(), Self::Error> {
        for byte in dst.iter_mut() {
            let pos = self.pos;
            self.pos = self.pos.saturating_add(1);
            *byte = if pos < 32 {
                self.ikm[usize::try_from(pos).unwrap_or(0)]
            } else {
                let block = (pos - 32) / 32;
                let mut out = [0u8; 32];
                let hk = Hkdf::<Sha256>::new(None, self.ikm.as_slice());
                // Expanding 32 bytes from a 32-byte PRK cannot fail (limit is 255 * 32).
                let _ = hk.expand(&block.to_be_bytes(), &mut out);
                out[usize::try_from((pos - 32) % 32).unwrap_or(0)]
            };
        }
        Ok(())
    }
}

impl TryCryptoRng for IkmStream {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{ids::ConversationId, test_rng};

    fn ctx<'a>(c: &'a ConversationId, r: &'a SigningPublicKey, epoch: u32) -> SealContext<'a> {
        SealContext {
            purpose: Purpose::EpochSecret,
            conversation: c,
            epoch,
            recipient: r,
            extra: &[],
        }
    }

    #[test]
    fn round_trip_and_context_binding() {
        let mut rng = test_rng(30);
        let bob = IdentityKeys::generate(&mut rng);
        let eve = IdentityKeys::generate(&mut rng);
        let conv = ConversationId::random(&mut rng);
        let other_conv = ConversationId::random(&mut rng);
        let rcpt = bob.signing_public();
        let sealed = seal(
            &mut rng,
            &bob.agreement_public(),
            &ctx(&conv, &rcpt, 1),
            b"k",
        )
        .unwrap();
        assert_eq!(
            &open(&bob, &sealed, &ctx(&conv, &rcpt, 1), "t").unwrap()[..],
            b"k"
        );
        // Wrong key, epoch, conversation, recipient, purpose, extra: all refused.
        assert_eq!(
            open(&eve, &sealed, &ctx(&conv, &rcpt, 1), "t"),
            Err(Error::SealOpen("t"))
        );
        assert!(open(&bob, &sealed, &ctx(&conv, &rcpt, 2), "t").is_err());
        assert!(open(&bob, &sealed, &ctx(&other_conv, &rcpt, 1), "t").is_err());
        let er = eve.signing_public();
        assert!(open(&bob, &sealed, &ctx(&conv, &er, 1), "t").is_err());
        let mut c = ctx(&conv, &rcpt, 1);
        c.purpose = Purpose::MasterShare;
        assert!(open(&bob, &sealed, &c, "t").is_err());
        let mut c = ctx(&conv, &rcpt, 1);
        c.extra = b"x";
        assert!(open(&bob, &sealed, &c, "t").is_err());
        // Tampered ciphertext or enc.
        let mut t = sealed.clone();
        t.ciphertext[0] ^= 1;
        assert!(open(&bob, &t, &ctx(&conv, &rcpt, 1), "t").is_err());
        let mut t = sealed;
        t.enc[0] ^= 1;
        assert!(open(&bob, &t, &ctx(&conv, &rcpt, 1), "t").is_err());
    }

    #[test]
    fn deterministic_seal_is_reproducible_and_opens() {
        let mut rng = test_rng(31);
        let bob = IdentityKeys::generate(&mut rng);
        let conv = ConversationId::random(&mut rng);
        let rcpt = bob.signing_public();
        let c = ctx(&conv, &rcpt, 0);
        let a = seal_deterministic(&[7; 32], &bob.agreement_public(), &c, b"share").unwrap();
        let b = seal_deterministic(&[7; 32], &bob.agreement_public(), &c, b"share").unwrap();
        assert_eq!(a, b);
        let d = seal_deterministic(&[8; 32], &bob.agreement_public(), &c, b"share").unwrap();
        assert_ne!(a.enc, d.enc);
        assert_eq!(&open(&bob, &a, &c, "t").unwrap()[..], b"share");
    }

    #[test]
    fn ephemeral_key_is_rfc9180_derive_key_pair_of_ikm() {
        // RFC 9180 A.1.1 (DHKEM(X25519) base mode): ikmE derives pkEm. Our generator must make
        // rust-hpke use ikm exactly as DeriveKeyPair input.
        let ikm_e: [u8; 32] =
            hex::decode("7268600d403fce431561aef583ee1613527cff655c1343f29812e66706df3234")
                .unwrap()
                .try_into()
                .unwrap();
        let pk_em = "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431";
        let mut rng = test_rng(32);
        let bob = IdentityKeys::generate(&mut rng);
        let conv = ConversationId::random(&mut rng);
        let rcpt = bob.signing_public();
        let s = seal_deterministic(&ikm_e, &bob.agreement_public(), &ctx(&conv, &rcpt, 0), b"x")
            .unwrap();
        assert_eq!(hex::encode(s.enc), pk_em);
    }
}
