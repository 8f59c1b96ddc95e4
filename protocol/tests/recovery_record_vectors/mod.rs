//! `protocol/vectors/recovery_record.json` (PROTOCOL.md §3.5): a replaceable recovery code, the
//! key, proof, verifier and associated data it gives, carol's identity keys sealed under it, the
//! record's CBOR, and records that must be refused. A module of the `vectors` test: the
//! generator, the record the `wire.json` frames carry, and the independent re-derivation.

use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce, aead::Aead as _, aead::Payload};
use hkdf::Hkdf;
use rand::Rng as _;
use sealdesk_protocol::{
    card::{IdentityCard, Role},
    codec::Writer,
    keys::IdentityKeys,
    labels,
    recovery::{ENTROPY_LEN, RECORD_CODE_VERSION, RecoveryCode},
    recovery_record::{RecordError, RecoveryProof, RecoveryRecord},
    wire,
};
use serde_json::{Value, json};
use sha2::Sha256;

use super::support::{Org, T0, rng};
use super::{Canon, h, header, identity, load, unhex};

/// The code's entropy, the record's nonce and the other keys and code of the refused records.
pub const SEED_RECOVERY_RECORD: u64 = 0x5EA1_DE5C_0000_0020;
/// When the code was made (the four bytes after its entropy).
const MADE_AT: u64 = T0 + 30 * 86_400;

/// The replaceable code of the vectors, its entropy, and carol's record sealed under it.
pub struct Fixture {
    /// The 16 secret bytes of the code.
    pub entropy: [u8; ENTROPY_LEN],
    /// The code (version 2).
    pub code: RecoveryCode,
    /// Carol's identity keys sealed under `code`.
    pub record: RecoveryRecord,
    /// The generator, for the refused records.
    rng: rand::rngs::ChaCha20Rng,
}

/// The code and the record (also the payload of the `put_recovery` and `recovery` frames).
pub fn fixture(o: &Org) -> Fixture {
    let mut r = rng(SEED_RECOVERY_RECORD);
    let mut entropy = [0u8; ENTROPY_LEN];
    rng(SEED_RECOVERY_RECORD).fill_bytes(&mut entropy);
    let code = RecoveryCode::generate_for_record(&mut r, MADE_AT).unwrap();
    let record =
        RecoveryRecord::seal(&mut r, &code, o.customer.card.card(), &o.customer.keys).unwrap();
    Fixture {
        entropy,
        code,
        record,
        rng: r,
    }
}

/// `N` bytes of HKDF-SHA256 of `entropy` under the recovery-code salt and `info_label`.
fn expand<const N: usize>(entropy: &[u8], info_label: &str) -> [u8; N] {
    let salt = Canon::label(labels::RECOVERY_CODE_SALT);
    let hk = Hkdf::<Sha256>::new(Some(&salt.0), entropy);
    let mut out = [0u8; N];
    hk.expand(&Canon::label(info_label).0, &mut out).unwrap();
    out
}

/// The name of a refusal, as the file and the TypeScript test spell it.
fn error_name(e: &RecordError) -> &'static str {
    match e {
        RecordError::Open => "open",
        RecordError::CardMismatch => "card_mismatch",
        RecordError::NotARecordCode => "not_a_record_code",
        RecordError::WrongName { .. } => "wrong_name",
        _ => "other",
    }
}

/// The whole file.
pub fn recovery_record(o: &Org) -> Value {
    let Fixture {
        entropy,
        code,
        record,
        mut rng,
    } = fixture(o);
    let carol = &o.customer;
    let name = carol.card.card().name.clone();
    let proof = RecoveryProof::of(&code).unwrap();
    let key: [u8; 32] = expand(&entropy, labels::RECOVERY_RECORD_KEY);
    let mut aad = Writer::with_label(labels::RECOVERY_RECORD_AAD);
    aad.str(&name).fixed(&record.verifier);
    // The record opens with the crate, and with the raw cipher under these key and AAD.
    assert_eq!(
        record.open(&code, &name).unwrap().signing_public(),
        carol.keys.signing_public()
    );
    let plain = open_raw(&key, &record.nonce, &name, &record.verifier, &record.sealed).unwrap();
    assert_eq!(aad.as_bytes(), aad_raw(&name, &record.verifier));
    assert_eq!(plain, carol.keys.to_secret_bytes().as_slice());

    // Refused records: each opened with `code` (or the given one) as `name`.
    let mut moved = record.clone();
    moved.card.name = "dave".into();
    let other_code = RecoveryCode::generate_for_record(&mut rng, MADE_AT).unwrap();
    // A relay's substitution: its own keys sealed under carol's code and name, with carol's
    // genuine card.
    let other_keys = IdentityKeys::generate(&mut rng);
    let fake_card = IdentityCard::issue(&other_keys, &name, Role::Customer, T0).unwrap();
    let mut swapped = RecoveryRecord::seal(&mut rng, &code, fake_card.card(), &other_keys).unwrap();
    swapped.card = carol.card.card().clone();
    let mut tampered = record.clone();
    tampered.sealed[0] ^= 1;
    let init_code = RecoveryCode::from_parts(&entropy, MADE_AT).unwrap();
    // A verifier that is not the code's, the keys sealed consistently with it: only the
    // verifier check refuses it.
    let mut unverified = record.clone();
    unverified.verifier = vec![0x5a; 32];
    unverified.sealed = seal_raw(&key, &record.nonce, &name, &unverified.verifier, &plain);
    let cases: [(&str, &RecoveryRecord, &RecoveryCode, &str, &str); 6] = [
        (
            "the record moved to another name (its card's name changed): the AAD differs",
            &moved,
            &code,
            "dave",
            "open",
        ),
        (
            "a wrong code (another replaceable code)",
            &record,
            &other_code,
            &name,
            "open",
        ),
        (
            "sealed keys that are not the card's (other keys under the same code and name)",
            &swapped,
            &code,
            &name,
            "card_mismatch",
        ),
        ("a sealed byte flipped", &tampered, &code, &name, "open"),
        (
            "a verifier that is not the code's proof's (the keys sealed under that verifier's AAD)",
            &unverified,
            &code,
            &name,
            "open",
        ),
        (
            "an init code (version 1) with the code's entropy",
            &record,
            &init_code,
            &name,
            "not_a_record_code",
        ),
    ];
    let refused: Vec<Value> = cases
        .into_iter()
        .map(|(about, rec, c, as_name, error)| {
            let got = rec.open(c, as_name).map(|_| ()).unwrap_err();
            assert_eq!(error_name(&got), error, "{about}");
            let aead_opens = rec.card.name == as_name
                && c.reveal() == code.reveal()
                && open_raw(&key, &rec.nonce, &rec.card.name, &rec.verifier, &rec.sealed).is_ok();
            json!({
                "about": about,
                "aead_opens": aead_opens,
                "code": c.reveal().to_string(),
                "name": as_name,
                "record_cbor": h(wire::to_cbor(rec).unwrap()),
                "error": error,
            })
        })
        .collect();

    let mut payload = vec![RECORD_CODE_VERSION];
    payload.extend_from_slice(&entropy);
    payload.extend_from_slice(&u32::try_from(MADE_AT).unwrap().to_be_bytes());
    json!({
        "header": header(
            "replaceable recovery codes and recovery records: key and proof by HKDF-SHA256 of the code's entropy, verifier = labelled SHA-256 of the proof, AES-256-GCM of the identity secret under aad = label ‖ name ‖ verifier",
            Some(SEED_RECOVERY_RECORD),
        ),
        "code": {
            "version": RECORD_CODE_VERSION,
            "entropy": h(entropy),
            "made_at": MADE_AT,
            "payload": h(&payload),
            "code": code.reveal().to_string(),
        },
        "salt": h(Writer::with_label(labels::RECOVERY_CODE_SALT).as_bytes()),
        "key_info": h(Writer::with_label(labels::RECOVERY_RECORD_KEY).as_bytes()),
        "proof_info": h(Writer::with_label(labels::RECOVERY_RECORD_PROOF).as_bytes()),
        "key": h(key),
        "proof": h(proof.to_bytes().as_slice()),
        "verifier": h(proof.verifier()),
        "name": name,
        "identity_secret": h(carol.keys.to_secret_bytes().as_slice()),
        "card_cbor": h(wire::to_cbor(carol.card.card()).unwrap()),
        "aad": h(aad.as_bytes()),
        "nonce": h(&record.nonce),
        "sealed": h(&record.sealed),
        "record_cbor": h(wire::to_cbor(&record).unwrap()),
        "refused": refused,
    })
}

/// The `name` of a card's CBOR map.
fn card_name(card: &ciborium::Value) -> &str {
    card.as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_text() == Some("name"))
        .and_then(|(_, v)| v.as_text())
        .unwrap()
}

/// The associated data of §3.5.
fn aad_raw(name: &str, verifier: &[u8]) -> Vec<u8> {
    let mut aad = Canon::label("sealdesk/v1/recovery-record/aad");
    aad.str(name).fixed(verifier);
    aad.0
}

/// AES-256-GCM of `plain` under `key` and the record's associated data.
fn seal_raw(key: &[u8], nonce: &[u8], name: &str, verifier: &[u8], plain: &[u8]) -> Vec<u8> {
    let aad = aad_raw(name, verifier);
    Aes256Gcm::new_from_slice(key)
        .unwrap()
        .encrypt(
            &Nonce::from(<[u8; 12]>::try_from(nonce).unwrap()),
            Payload {
                msg: plain,
                aad: &aad,
            },
        )
        .unwrap()
}

/// Opens `sealed` under `key` and the record's associated data.
fn open_raw(
    key: &[u8],
    nonce: &[u8],
    name: &str,
    verifier: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, aes_gcm::Error> {
    let aad = aad_raw(name, verifier);
    Aes256Gcm::new_from_slice(key).unwrap().decrypt(
        &Nonce::from(<[u8; 12]>::try_from(nonce).unwrap()),
        Payload {
            msg: sealed,
            aad: &aad,
        },
    )
}

/// Crockford base32 of `bytes`, most significant bit first (PROTOCOL.md §3.4), in groups of 5.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let bits: Vec<u8> = bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    let chars: Vec<char> = bits
        .chunks(5)
        .map(|c| char::from(ALPHABET[c.iter().fold(0usize, |a, &b| a << 1 | usize::from(b))]))
        .collect();
    chars
        .chunks(5)
        .map(|g| g.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Re-derives the file from its inputs with the raw primitives, following PROTOCOL.md §3.4–3.5.
#[test]
fn independent_recovery_record() {
    let ids = load("identities");
    let v = load("recovery_record");
    let c = &v["code"];
    let entropy = unhex(&c["entropy"]);
    // The code: version 2 ‖ entropy ‖ u32(made_at) ‖ checksum, in base32.
    let mut payload = Canon(vec![2]);
    payload
        .fixed(&entropy)
        .u32(u32::try_from(c["made_at"].as_u64().unwrap()).unwrap());
    assert_eq!(h(&payload.0), c["payload"]);
    let mut check = Canon::label("sealdesk/v1/recovery-code/checksum");
    check.fixed(&payload.0);
    let mut code_bytes = payload.0.clone();
    code_bytes.extend_from_slice(&check.sha256()[..4]);
    assert_eq!(base32(&code_bytes), c["code"]);
    // Key, proof, verifier.
    let key: [u8; 32] = expand(&entropy, "sealdesk/v1/recovery-record/key");
    let proof: [u8; 32] = expand(&entropy, "sealdesk/v1/recovery-record/proof");
    assert_eq!(h(key), v["key"]);
    assert_eq!(h(proof), v["proof"]);
    let mut verifier = Canon::label("sealdesk/v1/recovery-record/verifier");
    verifier.bytes(&proof);
    assert_eq!(h(verifier.sha256()), v["verifier"]);
    // The associated data and the sealed secret, which is carol's.
    let name = v["name"].as_str().unwrap();
    assert_eq!(h(aad_raw(name, &verifier.sha256())), v["aad"]);
    let plain = open_raw(
        &key,
        &unhex(&v["nonce"]),
        name,
        &verifier.sha256(),
        &unhex(&v["sealed"]),
    )
    .unwrap();
    let carol = identity(&ids, "carol");
    assert_eq!(h(&plain), v["identity_secret"]);
    assert_eq!(h(&plain), carol["secret_key"]);
    // The record's CBOR is the map of §3.5.
    let record: ciborium::Value = ciborium::from_reader(&unhex(&v["record_cbor"])[..]).unwrap();
    let field = |m: &ciborium::Value, k: &str| -> ciborium::Value {
        m.as_map()
            .unwrap()
            .iter()
            .find(|(key, _)| key.as_text() == Some(k))
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let bytes = |m: &ciborium::Value, k: &str| field(m, k).as_bytes().unwrap().clone();
    assert_eq!(field(&record, "version").as_integer(), Some(1.into()));
    assert_eq!(h(bytes(&record, "verifier")), v["verifier"]);
    assert_eq!(h(bytes(&record, "nonce")), v["nonce"]);
    assert_eq!(h(bytes(&record, "sealed")), v["sealed"]);
    let mut card = Vec::new();
    ciborium::into_writer(&field(&record, "card"), &mut card).unwrap();
    assert_eq!(h(card), v["card_cbor"]);
    // The refused records do not open to carol's keys with the raw primitives either.
    for r in v["refused"].as_array().unwrap() {
        let about = r["about"].as_str().unwrap();
        let rec: ciborium::Value = ciborium::from_reader(&unhex(&r["record_cbor"])[..]).unwrap();
        let got = RecoveryCode::parse(r["code"].as_str().unwrap()).unwrap();
        let parsed: RecoveryRecord =
            wire::from_cbor(&unhex(&r["record_cbor"]), "recovery record").unwrap();
        let err = parsed
            .open(&got, r["name"].as_str().unwrap())
            .map(|_| ())
            .unwrap_err();
        assert_eq!(error_name(&err), r["error"], "{about}");
        // Whether the code's key opens the sealed bytes under the record's own AAD.
        if r["code"] == c["code"] && r["name"] == name {
            let card = field(&rec, "card");
            let raw = open_raw(
                &key,
                &bytes(&rec, "nonce"),
                card_name(&card),
                &bytes(&rec, "verifier"),
                &bytes(&rec, "sealed"),
            );
            assert_eq!(Value::Bool(raw.is_ok()), r["aead_opens"], "{about}");
        } else {
            assert_eq!(r["aead_opens"], false, "{about}");
        }
    }
}
