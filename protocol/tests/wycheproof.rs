//! The primitives under the protocol against Project Wycheproof and the RFCs' own known answers.
//!
//! - AES-256-GCM (the message AEAD and HPKE's AEAD) through `aes-gcm`;
//! - X25519: our [`AgreementPublicKey::from_bytes`] refuses exactly the low-order public keys
//!   (those whose shared secret is all zero), and `x25519-dalek` computes every other one;
//! - Ed25519 through our strict [`SigningPublicKey::verify`]: every valid vector verifies, every
//!   invalid one fails;
//! - HKDF-SHA256 through `hkdf`;
//! - RFC 7748 §5.2 and §6.1, RFC 8032 §7.1 tests 1–3 and RFC 5869 A.1–A.3.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aes_gcm::{
    AesGcm, KeyInit as _,
    aead::{Aead as _, Payload, array::ArraySize, consts::U12, consts::U16},
    aes::Aes256,
};
use sealdesk_protocol::{
    Error,
    keys::{AgreementPublicKey, IdentityKeys, Signature, SigningPublicKey},
};
use sha2::Sha256;
use wycheproof::TestResult;

fn h(b: impl AsRef<[u8]>) -> String {
    hex::encode(b)
}

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// Runs one AES-256-GCM Wycheproof test with nonce size `N`; returns whether it was as expected.
fn gcm_case<N: ArraySize>(t: &wycheproof::aead::Test) -> Result<(), String> {
    let cipher = AesGcm::<Aes256, N>::new_from_slice(&t.key).map_err(|e| e.to_string())?;
    let nonce = aes_gcm::Nonce::<N>::try_from(&t.nonce[..]).map_err(|_| "nonce size")?;
    let mut ct_tag = t.ct.to_vec();
    ct_tag.extend_from_slice(&t.tag);
    let opened = cipher.decrypt(
        &nonce,
        Payload {
            msg: &ct_tag,
            aad: &t.aad,
        },
    );
    match t.result {
        TestResult::Valid | TestResult::Acceptable => {
            let sealed = cipher
                .encrypt(
                    &nonce,
                    Payload {
                        msg: &t.pt,
                        aad: &t.aad,
                    },
                )
                .map_err(|_| "encrypt failed")?;
            if sealed != ct_tag {
                return Err("ciphertext differs".into());
            }
            if opened.as_deref() != Ok(&t.pt[..]) {
                return Err("did not decrypt".into());
            }
        }
        TestResult::Invalid => {
            if opened.is_ok() {
                return Err("invalid ciphertext accepted".into());
            }
        }
    }
    Ok(())
}

#[test]
fn wycheproof_aes_256_gcm() {
    let set = wycheproof::aead::TestSet::load(wycheproof::aead::TestName::AesGcm).unwrap();
    let (mut run, mut skipped, mut failures) = (0, 0, Vec::new());
    for g in set.test_groups.iter().filter(|g| g.key_size == 256) {
        for t in &g.tests {
            let outcome = match (g.nonce_size, g.tag_size) {
                (96, 128) => gcm_case::<U12>(t),
                (128, 128) => gcm_case::<U16>(t),
                _ => {
                    // Nonce sizes the protocol never uses (and `aes-gcm` has no type for).
                    skipped += 1;
                    continue;
                }
            };
            run += 1;
            if let Err(e) = outcome {
                failures.push(format!("tcId {} ({}): {e}", t.tc_id, t.comment));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // 66 tests with 96-bit nonces and 19 with 128-bit ones in this Wycheproof release.
    assert!(run >= 85, "ran only {run} AES-256-GCM tests");
    assert!(skipped < run, "skipped {skipped}");
}

#[test]
fn wycheproof_x25519_low_order_points_and_shared_secrets() {
    use wycheproof::xdh::TestFlag;
    let set = wycheproof::xdh::TestSet::load(wycheproof::xdh::TestName::X25519).unwrap();
    let (mut rejected, mut computed, mut failures) = (0, 0, Vec::new());
    for g in &set.test_groups {
        for t in &g.tests {
            let public: [u8; 32] = t.public_key[..].try_into().unwrap();
            let private: [u8; 32] = t.private_key[..].try_into().unwrap();
            let zero = t.shared_secret.iter().all(|&b| b == 0);
            let flagged = t.flags.contains(&TestFlag::ZeroSharedSecret)
                || t.flags.contains(&TestFlag::LowOrderPublic);
            let ours = AgreementPublicKey::from_bytes(&public);
            match ours {
                Err(e) => {
                    rejected += 1;
                    assert_eq!(e, Error::InvalidPublicKey("X25519"));
                    if !zero || !flagged {
                        failures.push(format!(
                            "tcId {}: rejected a contributory key ({:?})",
                            t.tc_id, t.flags
                        ));
                    }
                }
                Ok(_) => {
                    if zero {
                        failures.push(format!(
                            "tcId {}: accepted a low-order key ({:?})",
                            t.tc_id, t.flags
                        ));
                    }
                    computed += 1;
                    let shared = x25519_dalek::x25519(private, public);
                    if shared[..] != t.shared_secret[..] {
                        failures.push(format!("tcId {}: shared secret differs", t.tc_id));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(rejected >= 20, "only {rejected} low-order keys seen");
    assert!(computed >= 400, "only {computed} shared secrets computed");
}

#[test]
fn wycheproof_ed25519_strict_verification() {
    let set = wycheproof::eddsa::TestSet::load(wycheproof::eddsa::TestName::Ed25519).unwrap();
    let (mut valid, mut invalid, mut failures) = (0, 0, Vec::new());
    for g in &set.test_groups {
        let pk: [u8; 32] = g.key.pk[..].try_into().unwrap();
        let key = SigningPublicKey::from_bytes(&pk);
        for t in &g.tests {
            let verified = match (&key, <[u8; 64]>::try_from(&t.sig[..])) {
                (Ok(key), Ok(sig)) => key
                    .verify(&t.msg, &Signature::from_bytes(&sig).unwrap(), "wycheproof")
                    .is_ok(),
                _ => false,
            };
            match t.result {
                TestResult::Valid => {
                    valid += 1;
                    if !verified {
                        failures.push(format!("tcId {} ({}): valid, refused", t.tc_id, t.comment));
                    }
                }
                TestResult::Invalid => {
                    invalid += 1;
                    if verified {
                        failures.push(format!(
                            "tcId {} ({}): invalid, accepted",
                            t.tc_id, t.comment
                        ));
                    }
                }
                TestResult::Acceptable => {}
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        valid >= 80 && invalid >= 60,
        "{valid} valid, {invalid} invalid"
    );
}

#[test]
fn wycheproof_hkdf_sha256() {
    let set = wycheproof::hkdf::TestSet::load(wycheproof::hkdf::TestName::HkdfSha256).unwrap();
    let mut failures = Vec::new();
    let mut run = 0;
    for g in &set.test_groups {
        for t in &g.tests {
            run += 1;
            let hk = hkdf::Hkdf::<Sha256>::new(Some(&t.salt), &t.ikm);
            let mut okm = vec![0u8; t.size];
            let ok = hk.expand(&t.info, &mut okm).is_ok();
            match t.result {
                TestResult::Valid | TestResult::Acceptable => {
                    if !ok || okm[..] != t.okm[..] {
                        failures.push(format!("tcId {}: wrong output", t.tc_id));
                    }
                }
                TestResult::Invalid => {
                    if ok {
                        failures.push(format!("tcId {}: oversized output allowed", t.tc_id));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(run >= 80);
}

/// RFC 7748 §5.2: the two scalar-multiplication vectors and the iterated one (1 and 1,000
/// iterations; the 1,000,000-iteration value is left to the library's own tests).
#[test]
fn rfc7748_x25519() {
    for (k, u, out) in [
        (
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        ),
        (
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        ),
    ] {
        assert_eq!(h(x25519_dalek::x25519(unhex(k), unhex(u))), out);
        // Both inputs are contributory points to us.
        assert!(AgreementPublicKey::from_bytes(&unhex(u)).is_ok());
    }
    let mut k = [0u8; 32];
    k[0] = 9;
    let mut u = k;
    for i in 1..=1000 {
        let next = x25519_dalek::x25519(k, u);
        u = k;
        k = next;
        if i == 1 {
            assert_eq!(
                h(k),
                "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"
            );
        }
    }
    assert_eq!(
        h(k),
        "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"
    );

    // §6.1: Diffie-Hellman between Alice and Bob, through our identity keys.
    let alice_sk = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
    let bob_sk = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
    let identity = |x: &str| {
        let mut secret = [0u8; 64];
        secret[..32].copy_from_slice(&[1; 32]);
        secret[32..].copy_from_slice(&unhex::<32>(x));
        IdentityKeys::from_secret_bytes(&secret)
    };
    assert_eq!(
        h(identity(alice_sk).agreement_public().as_bytes()),
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    );
    assert_eq!(
        h(identity(bob_sk).agreement_public().as_bytes()),
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    );
    let shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
    assert_eq!(
        h(x25519_dalek::x25519(
            unhex(alice_sk),
            unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        )),
        shared
    );
    assert_eq!(
        h(x25519_dalek::x25519(
            unhex(bob_sk),
            unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        )),
        shared
    );
}

/// RFC 8032 §7.1 tests 1–3, through our identity keys (signing seed = RFC secret key).
#[test]
fn rfc8032_ed25519() {
    for (sk, pk, msg, sig) in [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        (
            "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
    ] {
        let mut secret = [0u8; 64];
        secret[..32].copy_from_slice(&unhex::<32>(sk));
        secret[32..].copy_from_slice(&[9; 32]);
        let keys = IdentityKeys::from_secret_bytes(&secret);
        assert_eq!(h(keys.signing_public().as_bytes()), pk);
        let msg = hex::decode(msg).unwrap();
        let signature = keys.sign(&msg);
        assert_eq!(h(signature.to_bytes()), sig);
        let public = SigningPublicKey::from_bytes(&unhex(pk)).unwrap();
        public.verify(&msg, &signature, "rfc8032").unwrap();
        let mut other = msg.clone();
        other.push(0);
        assert_eq!(
            public.verify(&other, &signature, "rfc8032"),
            Err(Error::BadSignature("rfc8032"))
        );
    }
}

/// RFC 5869 appendix A.1–A.3 (the SHA-256 cases): PRK and OKM.
#[test]
fn rfc5869_hkdf_sha256() {
    let seq = |from: u8, to: u8| (from..=to).collect::<Vec<u8>>();
    for (ikm, salt, info, len, prk, okm) in [
        (
            vec![0x0b; 22],
            seq(0x00, 0x0c),
            seq(0xf0, 0xf9),
            42,
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        ),
        (
            seq(0x00, 0x4f),
            seq(0x60, 0xaf),
            seq(0xb0, 0xff),
            82,
            "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
        ),
        (
            vec![0x0b; 22],
            Vec::new(),
            Vec::new(),
            42,
            "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        ),
    ] {
        let (got_prk, hk) = hkdf::Hkdf::<Sha256>::extract(Some(&salt), &ikm);
        assert_eq!(h(got_prk.as_slice()), prk);
        let mut out = vec![0u8; len];
        hk.expand(&info, &mut out).unwrap();
        assert_eq!(h(&out), okm);
    }
}
