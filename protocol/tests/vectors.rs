//! Known-answer vectors: `protocol/vectors/*.json`.
//!
//! Every vector is produced by the crate's public API from generators seeded with fixed values
//! (`ChaCha20Rng::seed_from_u64`), so the files pin the whole pipeline: key generation, every
//! canonical layout, every hash, HKDF derivation, HPKE seal (including how rust-hpke draws its
//! ephemeral key), AES-GCM, Ed25519, Shamir, Merkle and the CBOR wire encoding.
//!
//! - [`vectors_match_files`] recomputes every file and fails on any byte of difference.
//! - The `independent_*` tests re-derive the files' outputs from their inputs with the raw
//!   primitives (sha2, hkdf, aes-gcm, ed25519-dalek, x25519-dalek, hpke) following PROTOCOL.md,
//!   not the crate's layouts: they check that PROTOCOL.md describes what the code does.
//! - [`regenerate_vectors`] (ignored) rewrites the files after a deliberate change:
//!   `SEALDESK_REGENERATE_VECTORS=1 cargo test -p sealdesk-protocol --test vectors -- --ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod recovery_record_vectors;
mod support;

use std::{collections::BTreeMap, path::PathBuf};

use rand::Rng as _;
use rand::rngs::ChaCha20Rng;
use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent, Cosignature, ExtensionEvent, ReleaseBasis, SignedTreeHead},
    card::IdentityCard,
    codec::Writer,
    epoch::{EpochRecord, HandOff, NewEpoch, VerifiedEpoch},
    escrow,
    export::{ExportStatement, OmittedItem, OmittedKind, ReleaseRef, ShownMessage},
    ids::{ConversationId, EpochRange, TokenId},
    keys::{AgreementPublicKey, Fingerprint, SigningPublicKey},
    labels,
    merkle::MerkleTree,
    message::{ContentKind, EpochKeys, ReplayWindows},
    policy::AgentCertificate,
    recovery_record::RecoveryProof,
    release::{
        ArbiterDecision, BoundRecord, ClosedBecause, ConsentParams, ConsentRevocation,
        ConsentToken, DisputeClose, DisputeParams, DisputeTicket, ErasureRequest, Justification,
        ReleaseRequest, Scope, TrusteeView, Verdict, approvers, decide,
    },
    seal::{self, Purpose, SealContext, Sealed},
    secret::EpochSecret,
    wire::{
        self, AuthResponse, ByteQuota, Challenge, ErrorCode, Frame, Item, Push, QuotaScope,
        Request, Response, Sequenced, SkippedRange, Welcome,
    },
};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256, Sha512};
use support::{Account, Org, T0, rng};

/// Seed of the org fixture (every identity).
const SEED_ORG: u64 = 0x5EA1_DE5C_0000_0001;
/// Seed of the HPKE vectors.
const SEED_HPKE: u64 = 0x5EA1_DE5C_0000_0002;
/// Seed of the epoch records (conversation id, `K`, member seals).
const SEED_EPOCH: u64 = 0x5EA1_DE5C_0000_0003;
/// Seed of the consent token, ticket and request ids.
const SEED_JUSTIFICATION: u64 = 0x5EA1_DE5C_0000_0004;
/// Seed of the trustees' released-share seals.
const SEED_RELEASE: u64 = 0x5EA1_DE5C_0000_0005;
/// Seed of the wire frames (challenge nonce).
const SEED_WIRE: u64 = 0x5EA1_DE5C_0000_0006;
/// The random nonces of `signals.json`.
const SEED_SIGNALS: u64 = 0x5EA1_DE5C_0000_0007;
/// The web server key of `open_token.json`.
const SEED_OPEN_TOKEN: u64 = 0x5EA1_DE5C_0000_0008;
/// The entropy of the codes of `recovery.json`.
const SEED_RECOVERY: u64 = 0x5EA1_DE5C_0000_0009;
/// The attachment's id and key in `attachments.json`.
const SEED_ATTACHMENTS: u64 = 0x5EA1_DE5C_0000_000A;

// ---------------------------------------------------------------------------------------------
// The tests.

/// Recomputes every vector file and compares it with the checked-in one, value by value.
#[test]
fn vectors_match_files() {
    let mut problems = Vec::new();
    for (name, computed) in all_vectors() {
        let path = vector_path(name);
        let Ok(text) = std::fs::read_to_string(&path) else {
            problems.push(format!("{name}: missing file {}", path.display()));
            continue;
        };
        let stored: Value = serde_json::from_str(&text).expect("vector file is JSON");
        diff(name, &stored, &computed, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "{} difference(s) between the code and protocol/vectors (if the change is deliberate, \
         regenerate with `SEALDESK_REGENERATE_VECTORS=1 cargo test -p sealdesk-protocol --test \
         vectors -- --ignored` and update PROTOCOL.md):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Generating twice gives the same bytes: nothing in the pipeline depends on the clock, the OS
/// generator or hash-map order.
#[test]
fn generation_is_deterministic() {
    let a = all_vectors();
    let b = all_vectors();
    assert_eq!(a, b);
}

/// Rewrites `protocol/vectors/*.json` from the code. Run deliberately, then review the diff.
#[test]
#[ignore = "rewrites protocol/vectors; run with SEALDESK_REGENERATE_VECTORS=1 -- --ignored"]
fn regenerate_vectors() {
    if std::env::var("SEALDESK_REGENERATE_VECTORS").as_deref() != Ok("1") {
        panic!("set SEALDESK_REGENERATE_VECTORS=1 to rewrite protocol/vectors");
    }
    std::fs::create_dir_all(vector_path("any").parent().unwrap()).unwrap();
    for (name, value) in all_vectors() {
        let mut text = serde_json::to_string_pretty(&value).unwrap();
        text.push('\n');
        std::fs::write(vector_path(name), text).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Generation.

fn all_vectors() -> Vec<(&'static str, Value)> {
    let o = Org::new(SEED_ORG);
    vec![
        ("identities", identities(&o)),
        ("policy", policy(&o)),
        ("hpke", hpke(&o)),
        ("epoch", epochs(&o)),
        ("messages", messages(&o)),
        ("consent", consent(&o)),
        ("dispute", dispute(&o)),
        ("release", release(&o)),
        ("audit", audit(&o)),
        ("wire", wire_frames(&o)),
        ("ed25519_strict", ed25519_strict()),
        ("export", export_end(&o)),
        ("signals", signals(&o)),
        ("open_token", open_token(&o)),
        ("recovery", recovery_codes()),
        ("attachments", attachments(&o)),
        (
            "recovery_record",
            recovery_record_vectors::recovery_record(&o),
        ),
    ]
}

fn vector_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("vectors")
        .join(format!("{name}.json"))
}

fn h(b: impl AsRef<[u8]>) -> String {
    hex::encode(b)
}

fn header(what: &str, seed: Option<u64>) -> Value {
    json!({
        "about": what,
        "generator": "protocol/tests/vectors.rs",
        "org_seed": format!("{SEED_ORG:#018x}"),
        "seed": seed.map(|s| format!("{s:#018x}")),
        "encoding": "byte strings are lowercase hex; times are Unix seconds",
    })
}

fn name_of(o: &Org, key: &SigningPublicKey) -> String {
    o.accounts()
        .into_iter()
        .find(|a| a.card.signing_key == *key)
        .map_or_else(
            || {
                if o.relay.signing_public() == *key {
                    "relay".to_owned()
                } else {
                    format!("unknown {key}")
                }
            },
            |a| a.card.name.clone(),
        )
}

fn sealed(s: &Sealed) -> Value {
    json!({ "enc": h(s.enc), "ciphertext": h(&s.ciphertext) })
}

fn range(r: &EpochRange) -> Value {
    json!({ "first": r.first, "last": r.last })
}

/// SHA-256 over the fingerprint layout (the crate exposes only the printed form).
fn fingerprint_hash(a: &Account) -> [u8; 32] {
    let mut w = Writer::with_label(labels::FINGERPRINT);
    w.fixed(a.card.signing_key.as_bytes())
        .fixed(a.card.agreement_key.as_bytes());
    w.sha256()
}

fn identities(o: &Org) -> Value {
    let mut list: Vec<Value> = o
        .accounts()
        .into_iter()
        .map(|a| {
            let c = a.card.card();
            json!({
                "name": c.name,
                "role": c.role.name(),
                "role_code": c.role.code(),
                "created_at": c.created_at,
                "secret_key": h(*a.keys.to_secret_bytes()),
                "signing_public": h(c.signing_key.as_bytes()),
                "agreement_public": h(c.agreement_key.as_bytes()),
                "card_signed_bytes": h(c.signed_bytes()),
                "card_signature": h(c.signature.to_bytes()),
                "fingerprint_sha256": h(fingerprint_hash(a)),
                "fingerprint": a.card.fingerprint().to_string(),
            })
        })
        .collect();
    list.push(json!({
        "name": "relay",
        "role": null,
        "secret_key": h(*o.relay.to_secret_bytes()),
        "signing_public": h(o.relay.signing_public().as_bytes()),
        "agreement_public": h(o.relay.agreement_public().as_bytes()),
    }));
    json!({
        "header": header(
            "identity keys (secret_key = Ed25519 seed ‖ X25519 scalar), identity cards and \
             fingerprints; the relay key signs tree heads and has no card",
            None,
        ),
        "identities": list,
    })
}

fn cert(o: &Org) -> AgentCertificate {
    AgentCertificate::issue(
        &o.master.keys,
        &o.policy,
        &o.agent.card,
        T0 + 10,
        90 * 86_400,
    )
    .unwrap()
}

fn policy(o: &Org) -> Value {
    let p = o.policy.policy();
    let c = cert(o);
    c.verify(&o.policy, T0 + 20).unwrap();
    json!({
        "header": header("the org policy (2-of-3 trustees, 2-of-3 arbiters) and an agent \
                          certificate", None),
        "policy": {
            "org": p.org,
            "version": p.version,
            "master": p.master.name,
            "trustees": p.trustees.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
            "trustee_threshold": p.trustee_threshold,
            "arbiters": p.arbiters.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
            "arbiter_threshold": p.arbiter_threshold,
            "allow_consent": p.allow_consent,
            "allow_dispute": p.allow_dispute,
            "max_release_validity_secs": p.max_release_validity_secs,
            "rotate_after_messages": p.rotate_after_messages,
            "rotate_after_secs": p.rotate_after_secs,
            "retention_secs": p.retention_secs,
            "history_handoff": p.history_handoff,
            "created_at": p.created_at,
            "signed_bytes": h(p.signed_bytes()),
            "signature": h(p.signature.to_bytes()),
            "hash": h(p.hash()),
            "cbor": h(wire::to_cbor(p).unwrap()),
        },
        "agent_certificate": {
            "org": c.org,
            "agent": c.agent.name,
            "issued_at": c.issued_at,
            "expires_at": c.expires_at,
            "signed_bytes": h(c.signed_bytes()),
            "signature": h(c.signature.to_bytes()),
        },
    })
}

fn purpose_name(p: Purpose) -> &'static str {
    match p {
        Purpose::EpochSecret => labels::SEAL_EPOCH_SECRET,
        Purpose::MasterShare => labels::SEAL_MASTER_SHARE,
        Purpose::TrusteeShare => labels::SEAL_TRUSTEE_SHARE,
        Purpose::ReleasedShare => labels::SEAL_RELEASED_SHARE,
        Purpose::HandOff => labels::SEAL_HANDOFF,
    }
}

fn context_json(o: &Org, ctx: &SealContext<'_>) -> Value {
    json!({
        "purpose": purpose_name(ctx.purpose),
        "conversation": h(ctx.conversation.as_bytes()),
        "epoch": ctx.epoch,
        "recipient": name_of(o, ctx.recipient),
        "recipient_signing_public": h(ctx.recipient.as_bytes()),
        "extra": h(ctx.extra),
        "info": h(ctx.info()),
    })
}

fn hpke(o: &Org) -> Value {
    let mut rng = rng(SEED_HPKE);
    let conv = ConversationId::random(&mut rng);
    let extra: [u8; 32] = Sha256::digest(b"example release request hash").into();
    let t1 = &o.trustees[0];
    let contexts: Vec<Value> = [
        (Purpose::EpochSecret, &o.customer, 0u32, &[][..]),
        (Purpose::MasterShare, &o.master, 0, &[][..]),
        (Purpose::TrusteeShare, t1, 0, &[][..]),
        (Purpose::ReleasedShare, &o.master, 0, &extra[..]),
        (Purpose::HandOff, &o.agent2, 7, &[][..]),
    ]
    .into_iter()
    .map(|(purpose, who, epoch, extra)| {
        let ctx = SealContext {
            purpose,
            conversation: &conv,
            epoch,
            recipient: &who.card.signing_key,
            extra,
        };
        context_json(o, &ctx)
    })
    .collect();

    let mut ikm = [0u8; 32];
    rng.fill_bytes(&mut ikm);
    let ctx = SealContext {
        purpose: Purpose::TrusteeShare,
        conversation: &conv,
        epoch: 3,
        recipient: &t1.card.signing_key,
        extra: &[],
    };
    let plaintext = b"\x01thirty-two bytes of share values";
    let det = seal::seal_deterministic(&ikm, &t1.card.agreement_key, &ctx, plaintext).unwrap();

    // A random seal: rust-hpke draws exactly 32 bytes from the generator as DeriveKeyPair's
    // ikm, so the bytes the generator is about to yield are recorded as `rng_ikm`.
    // (A second generator from the same seed as the one that seals shows those bytes.)
    let seal_seed = SEED_HPKE ^ 0xff;
    let mut rng_ikm = [0u8; 32];
    support::rng(seal_seed).fill_bytes(&mut rng_ikm);
    let mut rng = support::rng(seal_seed);
    let rctx = SealContext {
        purpose: Purpose::EpochSecret,
        conversation: &conv,
        epoch: 0,
        recipient: &o.customer.card.signing_key,
        extra: &[],
    };
    let secret = [0x4b; 32];
    let random = seal::seal(&mut rng, &o.customer.card.agreement_key, &rctx, &secret).unwrap();

    json!({
        "header": header("HPKE info strings per purpose, a deterministic seal (DeriveKeyPair(ikm) \
                          ephemeral) and a seal with a seeded generator", Some(SEED_HPKE)),
        "suite": {
            "mode": "base (0x00)",
            "kem_id": 32,
            "kem": "DHKEM(X25519, HKDF-SHA256)",
            "kdf_id": 1,
            "kdf": "HKDF-SHA256",
            "aead_id": 2,
            "aead": "AES-256-GCM",
            "aad": "",
        },
        "contexts": contexts,
        "deterministic": {
            "ikm": h(ikm),
            "context": context_json(o, &ctx),
            "recipient_agreement_public": h(t1.card.agreement_key.as_bytes()),
            "plaintext": h(plaintext),
            "enc": h(det.enc),
            "ciphertext": h(&det.ciphertext),
        },
        "random": {
            "rng_ikm": h(rng_ikm),
            "context": context_json(o, &rctx),
            "recipient_agreement_public": h(o.customer.card.agreement_key.as_bytes()),
            "plaintext": h(secret),
            "enc": h(random.enc),
            "ciphertext": h(&random.ciphertext),
        },
    })
}

/// Epoch 0 (carol + bob, created by carol), the same every time it is asked for.
fn epoch0(o: &Org) -> (VerifiedEpoch, EpochSecret) {
    o.first_epoch(&mut rng(SEED_EPOCH))
}

/// Epochs 0 and 1 (transfer to dave, created by bob) and the hand-off of epoch 0 to dave.
fn epoch_chain(o: &Org) -> (Vec<(VerifiedEpoch, EpochSecret)>, HandOff) {
    let mut rng = rng(SEED_EPOCH);
    let (e0, k0) = o.first_epoch(&mut rng);
    let members = [o.customer.card.clone(), o.agent2.card.clone()];
    let new = NewEpoch {
        conversation: e0.conversation,
        epoch: 1,
        members: &members,
        previous: Some(e0.record()),
        now: T0 + 400,
    };
    let (e1, k1) = EpochRecord::create(&mut rng, &o.agent.keys, &o.policy, new).unwrap();
    e1.check_follows(Some(&e0)).unwrap();
    let handoff = HandOff::create(
        &mut rng,
        &o.agent.keys,
        &o.agent2.card,
        e0.conversation,
        &[(0, &k0)],
        T0 + 400,
    )
    .unwrap();
    (vec![(e0, k0), (e1, k1)], handoff)
}

/// The key-schedule intermediates of PROTOCOL.md, derived with the raw `hkdf` crate.
struct Schedule {
    salt: Vec<u8>,
    prk: Vec<u8>,
    hk: hkdf::Hkdf<Sha256>,
}

impl Schedule {
    fn new(k: &[u8; 32], conv: &ConversationId, epoch: u32) -> Self {
        let mut salt = Canon::label(labels::EPOCH_SALT);
        salt.fixed(conv.as_bytes()).u32(epoch);
        let (prk, hk) = hkdf::Hkdf::<Sha256>::extract(Some(&salt.0), k);
        Self {
            salt: salt.0,
            prk: prk.as_slice().to_vec(),
            hk,
        }
    }

    fn expand32(&self, info: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        self.hk.expand(info, &mut out).unwrap();
        out
    }

    fn s_m(&self) -> [u8; 32] {
        self.expand32(&Canon::label(labels::ESCROW_MASTER_SHARE).0)
    }

    fn coefficient(&self, i: u8) -> [u8; 32] {
        let mut info = Canon::label(labels::ESCROW_COEFFICIENT);
        info.u8(i);
        self.expand32(&info.0)
    }

    fn ikm(&self, recipient: &SigningPublicKey) -> [u8; 32] {
        let mut info = Canon::label(labels::ESCROW_IKM);
        info.fixed(recipient.as_bytes());
        self.expand32(&info.0)
    }

    fn chain(&self, sender: &SigningPublicKey) -> [u8; 32] {
        let mut info = Canon::label(labels::MESSAGE_CHAIN);
        info.fixed(sender.as_bytes());
        self.expand32(&info.0)
    }
}

/// Message key and nonce from a chain key, with the raw `hkdf` crate.
fn message_keys(chain: &[u8; 32], counter: u64) -> ([u8; 32], [u8; 12]) {
    let hk = hkdf::Hkdf::<Sha256>::from_prk(chain).unwrap();
    let mut info = Canon::label(labels::MESSAGE_KEYS);
    info.u64(counter);
    let mut okm = [0u8; 44];
    hk.expand(&info.0, &mut okm).unwrap();
    (okm[..32].try_into().unwrap(), okm[32..].try_into().unwrap())
}

fn epoch_json(o: &Org, rec: &VerifiedEpoch, k: &EpochSecret) -> Value {
    let kb = *k.to_bytes();
    let conv = rec.conversation;
    let s = Schedule::new(&kb, &conv, rec.epoch);
    let s_m = s.s_m();
    let s_e: Vec<u8> = kb.iter().zip(&s_m).map(|(a, b)| a ^ b).collect();
    let t = o.policy.trustee_threshold;
    let coefficients: Vec<String> = (1..t).map(|i| h(s.coefficient(i))).collect();
    let shares: Vec<String> = o
        .trustees
        .iter()
        .enumerate()
        .map(|(i, tr)| {
            let share = rec.open_trustee_share(&tr.keys, i).unwrap();
            h(*share.to_bytes())
        })
        .collect();
    let mut ikm = BTreeMap::new();
    ikm.insert(
        o.master.card.name.clone(),
        h(s.ikm(&o.master.card.signing_key)),
    );
    for tr in &o.trustees {
        ikm.insert(tr.card.name.clone(), h(s.ikm(&tr.card.signing_key)));
    }
    let member_seals: Vec<Value> = rec
        .members
        .iter()
        .zip(&rec.sealed_secrets)
        .map(|(m, sealed_k)| {
            let ctx = SealContext {
                purpose: Purpose::EpochSecret,
                conversation: &conv,
                epoch: rec.epoch,
                recipient: &m.signing_key,
                extra: &[],
            };
            json!({ "member": m.name, "info": h(ctx.info()), "sealed": sealed(sealed_k) })
        })
        .collect();
    let customer = rec.customer_key().unwrap();
    let master_ctx = SealContext {
        purpose: Purpose::MasterShare,
        conversation: &conv,
        epoch: rec.epoch,
        recipient: &o.master.card.signing_key,
        extra: customer.as_bytes(),
    };
    let trustee_seals: Vec<Value> = o
        .trustees
        .iter()
        .zip(&rec.escrow.trustees)
        .map(|(tr, sealed_share)| {
            let ctx = SealContext {
                purpose: Purpose::TrusteeShare,
                conversation: &conv,
                epoch: rec.epoch,
                recipient: &tr.card.signing_key,
                extra: customer.as_bytes(),
            };
            json!({ "trustee": tr.card.name, "info": h(ctx.info()), "sealed": sealed(sealed_share) })
        })
        .collect();
    json!({
        "epoch": rec.epoch,
        "version": rec.version,
        "org": rec.org,
        "conversation": h(conv.as_bytes()),
        "policy_version": rec.policy_version,
        "policy_hash": h(rec.policy_hash),
        "previous": rec.previous.map(h),
        "created_at": rec.created_at,
        "creator": name_of(o, &rec.creator),
        "members": rec.members.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
        "k": h(kb),
        "commitment": h(rec.commitment),
        "key_schedule": {
            "salt": h(&s.salt),
            "prk": h(&s.prk),
            "s_m": h(s_m),
            "s_e": h(&s_e),
            "coefficients": coefficients,
            "shares": shares,
            "ikm": ikm,
        },
        "sealed_secrets": member_seals,
        "escrow": {
            "master": { "info": h(master_ctx.info()), "sealed": sealed(&rec.escrow.master) },
            "trustees": trustee_seals,
        },
        "signed_bytes": h(rec.signed_bytes()),
        "signature": h(rec.signature.to_bytes()),
        "hash": h(rec.hash()),
        "cbor": h(wire::to_cbor(rec.record()).unwrap()),
    })
}

fn epochs(o: &Org) -> Value {
    let (chain, handoff) = epoch_chain(o);
    for (rec, _) in &chain {
        for m in [&o.customer, &o.agent, &o.agent2] {
            if rec.member(&m.card.signing_key).is_some() {
                rec.open(&m.keys, &o.policy).unwrap();
            }
        }
    }
    let records: Vec<Value> = chain.iter().map(|(r, k)| epoch_json(o, r, k)).collect();
    let handoff_seals: Vec<Value> = handoff
        .epochs
        .iter()
        .map(|(e, s)| {
            let ctx = SealContext {
                purpose: Purpose::HandOff,
                conversation: &handoff.conversation,
                epoch: *e,
                recipient: &handoff.to,
                extra: &[],
            };
            json!({ "epoch": e, "info": h(ctx.info()), "sealed": sealed(s) })
        })
        .collect();
    json!({
        "header": header("epoch records of one conversation under the 2-of-3 policy: epoch 0 \
                          (carol + bob, by carol) and epoch 1 (carol + dave, by bob), with the \
                          escrow key schedule, and bob's hand-off of epoch 0 to dave",
                         Some(SEED_EPOCH)),
        "epochs": records,
        "handoff": {
            "from": name_of(o, &handoff.from),
            "to": name_of(o, &handoff.to),
            "created_at": handoff.created_at,
            "epochs": handoff_seals,
            "signed_bytes": h(handoff.signed_bytes()),
            "signature": h(handoff.signature.to_bytes()),
        },
    })
}

/// The example messages of epoch 0: (sender, counter, kind, sent_at, body).
fn message_plan(o: &Org) -> Vec<(&Account, u64, ContentKind, u64, Vec<u8>)> {
    vec![
        (
            &o.customer,
            0,
            ContentKind::Text,
            T0 + 110,
            b"Hello! My order #1234 never arrived.".to_vec(),
        ),
        (
            &o.agent,
            0,
            ContentKind::Text,
            T0 + 120,
            "Sorry to hear that, Carol \u{2014} let me check."
                .as_bytes()
                .to_vec(),
        ),
        (
            &o.customer,
            1,
            ContentKind::Read,
            T0 + 130,
            2u64.to_be_bytes().to_vec(),
        ),
        (&o.agent, 1, ContentKind::Text, T0 + 140, Vec::new()),
    ]
}

fn messages(o: &Org) -> Value {
    let (rec, k) = epoch0(o);
    let keys = EpochKeys::new(&k, &rec);
    let s = Schedule::new(&k.to_bytes(), &rec.conversation, rec.epoch);
    let mut windows = ReplayWindows::default();
    let list: Vec<Value> = message_plan(o)
        .into_iter()
        .map(|(who, counter, kind, sent_at, body)| {
            let env = keys
                .seal_message(&who.keys, counter, kind, sent_at, &body)
                .unwrap();
            let opened = keys.open_message(&env, &mut windows).unwrap();
            assert_eq!(&opened.body[..], &body[..]);
            let chain = s.chain(&who.card.signing_key);
            let (mk, nonce) = message_keys(&chain, counter);
            let header = env.header.to_bytes();
            let mut aad = Canon::label(labels::MESSAGE_AAD);
            aad.fixed(&header);
            json!({
                "sender": who.card.name,
                "sender_signing_public": h(who.card.signing_key.as_bytes()),
                "counter": counter,
                "kind": match kind { ContentKind::Text => "text", ContentKind::Read => "read", ContentKind::Status => "status", ContentKind::Attachment => "attachment" },
                "sent_at": sent_at,
                "body": h(&body),
                "chain_key": h(chain),
                "message_key": h(mk),
                "nonce": h(nonce),
                "commitment": h(env.header.commitment),
                "header": h(&header),
                "aad": h(&aad.0),
                "ciphertext": h(&env.ciphertext),
                "signed_bytes": h(env.signed_bytes()),
                "signature": h(env.signature.to_bytes()),
                "envelope_cbor": h(wire::to_cbor(&env).unwrap()),
            })
        })
        .collect();
    json!({
        "header": header("messages of epoch 0 (see epoch.json for K and the conversation)", None),
        "conversation": h(rec.conversation.as_bytes()),
        "epoch": rec.epoch,
        "k": h(*k.to_bytes()),
        "messages": list,
    })
}

/// Typing signals of epoch 0 (PROTOCOL.md §9.7): carol typing, bob stopped.
fn signals(o: &Org) -> Value {
    use sealdesk_protocol::signal::{SignalKind, open_signal, seal_signal};
    let (rec, k) = epoch0(o);
    let keys = EpochKeys::new(&k, &rec);
    let s = Schedule::new(&k.to_bytes(), &rec.conversation, rec.epoch);
    let mut r = rng(SEED_SIGNALS);
    let plan = [
        (&o.customer, SignalKind::Typing, T0 + 150),
        (&o.agent, SignalKind::Stopped, T0 + 151),
    ];
    let list: Vec<Value> = plan
        .into_iter()
        .map(|(who, kind, sent_at)| {
            let env = seal_signal(&keys, &who.keys, kind, sent_at, &mut r).unwrap();
            assert_eq!(open_signal(&keys, &env, sent_at).unwrap().kind, kind);
            let mut info = Canon::label(labels::SIGNAL_KEY);
            info.fixed(who.card.signing_key.as_bytes());
            let key = s.expand32(&info.0);
            let header = env.header.to_bytes();
            let mut aad = Canon::label(labels::SIGNAL_AAD);
            aad.fixed(&header);
            json!({
                "sender": who.card.name,
                "sender_signing_public": h(who.card.signing_key.as_bytes()),
                "kind": match kind { SignalKind::Typing => "typing", SignalKind::Stopped => "stopped" },
                "kind_code": match kind { SignalKind::Typing => 1, SignalKind::Stopped => 2 },
                "sent_at": sent_at,
                "signal_key": h(key),
                "nonce": h(env.header.nonce),
                "header": h(&header),
                "aad": h(&aad.0),
                "ciphertext": h(&env.ciphertext),
                "signed_bytes": h(env.signed_bytes()),
                "signature": h(env.signature.to_bytes()),
                "envelope_cbor": h(wire::to_cbor(&env).unwrap()),
            })
        })
        .collect();
    json!({
        "header": header("typing signals of epoch 0 (see epoch.json for K and the conversation)", Some(SEED_SIGNALS)),
        "conversation": h(rec.conversation.as_bytes()),
        "epoch": rec.epoch,
        "k": h(*k.to_bytes()),
        "signals": list,
    })
}

/// A policy requiring open tokens, a web key certificate and an open token (PROTOCOL.md §13.14).
fn open_token(o: &Org) -> Value {
    use sealdesk_protocol::{
        keys::IdentityKeys,
        open_token::{OpenToken, OpenTokenParams, WebKeyCertificate, WebKeyRevocation},
    };
    let web = IdentityKeys::generate(&mut rng(SEED_OPEN_TOKEN));
    let mut p = o.policy.policy().clone();
    p.version += 1;
    p.require_open_token = true;
    p.signature = o.master.keys.sign(&p.signed_bytes());
    let policy = p.clone().verify().unwrap();
    let mut old = p.clone();
    old.require_open_token = false;
    let cert = WebKeyCertificate::issue(
        &o.master.keys,
        &policy,
        "www",
        web.signing_public(),
        T0 + 2_000,
        90 * 86_400,
    )
    .unwrap();
    let token = OpenToken::issue(
        &web,
        &OpenTokenParams {
            org: &policy.org,
            visitor: b"visitor-0042",
            customer: o.customer.card.signing_key,
            now: T0 + 3_000,
            valid_secs: 3_600,
        },
    )
    .unwrap();
    let verified = token
        .clone()
        .verify(
            &policy,
            Some(cert.clone()),
            &o.customer.card.signing_key,
            T0 + 3_100,
        )
        .unwrap();
    let revocation = WebKeyRevocation::issue(
        &o.master.keys,
        &policy.org,
        web.signing_public(),
        T0 + 4_000,
    );
    assert!(
        revocation
            .clone()
            .verify(&policy, T0 + 4_010)
            .unwrap()
            .revokes(&cert)
    );
    json!({
        "header": header("open tokens: a policy requiring them, a web key certificate, a token, a revocation", Some(SEED_OPEN_TOKEN)),
        "policy": {
            "signed_bytes": h(policy.signed_bytes()),
            "signed_bytes_without_the_field": h(old.signed_bytes()),
            "signature": h(policy.signature.to_bytes()),
            "cbor": h(wire::to_cbor(policy.policy()).unwrap()),
        },
        "web_key": {
            "signing_public": h(web.signing_public().as_bytes()),
        },
        "certificate": {
            "org": cert.org,
            "name": cert.name,
            "issued_at": cert.issued_at,
            "expires_at": cert.expires_at,
            "signed_bytes": h(cert.signed_bytes()),
            "signature": h(cert.signature.to_bytes()),
            "cbor": h(wire::to_cbor(&cert).unwrap()),
        },
        "token": {
            "org": token.org,
            "visitor": h(&token.visitor),
            "customer": h(token.customer.as_bytes()),
            "issued_at": token.issued_at,
            "expires_at": token.expires_at,
            "signed_bytes": h(token.signed_bytes()),
            "signature": h(token.signature.to_bytes()),
            "cbor": h(wire::to_cbor(&token).unwrap()),
            "visitor_key": h(verified.visitor_key()),
        },
        "revocation": {
            "org": revocation.org,
            "revoked_at": revocation.revoked_at,
            "signed_bytes": h(revocation.signed_bytes()),
            "signature": h(revocation.signature.to_bytes()),
            "cbor": h(wire::to_cbor(&revocation).unwrap()),
        },
    })
}

/// Recovery codes (PROTOCOL.md §3.5): the code's bytes and text, the keys it derives, and
/// codes that must be refused.
fn recovery_codes() -> Value {
    use sealdesk_protocol::recovery::{CodeError, ENTROPY_LEN, RecoveryCode};
    let mut r = rng(SEED_RECOVERY);
    let salt = Writer::with_label(labels::RECOVERY_CODE_SALT).into_bytes();
    let info = Writer::with_label(labels::RECOVERY_CODE_IDENTITY).into_bytes();
    let mut codes = Vec::new();
    let mut first = String::new();
    for created_at in [T0, T0 + 86_400, u64::from(u32::MAX)] {
        let mut entropy = [0u8; ENTROPY_LEN];
        r.fill_bytes(&mut entropy);
        let code = RecoveryCode::from_parts(&entropy, created_at).unwrap();
        let text = code.reveal().to_string();
        let mut payload = vec![1u8];
        payload.extend_from_slice(&entropy);
        payload.extend_from_slice(&u32::try_from(created_at).unwrap().to_be_bytes());
        let mut input = Writer::with_label(labels::RECOVERY_CODE_CHECKSUM);
        input.fixed(&payload);
        let checksum = &Sha256::digest(input.as_bytes())[..4];
        let keys = code.identity_keys();
        let back = RecoveryCode::parse(&text).unwrap();
        assert_eq!(back.identity_keys().signing_public(), keys.signing_public());
        if first.is_empty() {
            first.clone_from(&text);
        }
        codes.push(json!({
            "entropy": h(entropy),
            "created_at": created_at,
            "payload": h(&payload),
            "checksum_input": h(input.as_bytes()),
            "checksum": h(checksum),
            "code": text,
            "identity_secret": h(keys.to_secret_bytes().as_slice()),
            "signing_public": h(keys.signing_public().as_bytes()),
            "agreement_public": h(keys.agreement_public().as_bytes()),
            "fingerprint": Fingerprint::of(&keys.signing_public(), &keys.agreement_public()).to_string(),
        }));
    }
    // Typed as a person might: lower case, spaces, O for 0 and l for 1; all read the same.
    let loose = first
        .replace('-', " ")
        .to_lowercase()
        .replace('0', "o")
        .replace('1', "l");
    assert!(RecoveryCode::parse(&loose).is_ok());
    let flip = |i: usize| {
        let mut c: Vec<char> = first.chars().collect();
        c[i] = if c[i] == 'A' { 'B' } else { 'A' };
        c.into_iter().collect::<String>()
    };
    let refused = [
        ("a typo in the first group", flip(2), "checksum"),
        (
            "a typo in the last character",
            flip(first.len() - 1),
            "checksum",
        ),
        (
            "a character outside the alphabet",
            format!("U{}", &first[1..]),
            "bad_character",
        ),
        (
            "one character short",
            first[..first.len() - 1].to_owned(),
            "wrong_length",
        ),
    ];
    let refused: Vec<Value> = refused
        .into_iter()
        .map(|(about, code, error)| {
            let got = RecoveryCode::parse(&code).map(|_| ()).unwrap_err();
            let name = match got {
                CodeError::Checksum => "checksum",
                CodeError::BadCharacter { .. } => "bad_character",
                CodeError::WrongLength { .. } => "wrong_length",
                _ => "other",
            };
            assert_eq!(name, error, "{about}");
            json!({"about": about, "code": code, "error": error})
        })
        .collect();
    json!({
        "header": header("recovery codes: Crockford base32 of version ‖ entropy ‖ u32(created_at) ‖ checksum; identity keys by HKDF-SHA256", Some(SEED_RECOVERY)),
        "alphabet": "0123456789ABCDEFGHJKMNPQRSTVWXYZ",
        "salt": h(&salt),
        "info": h(&info),
        "codes": codes,
        "loose": {"code": loose, "same_as": first},
        "refused": refused,
    })
}

/// An attachment of 2 full chunks and a short one (PROTOCOL.md §9.8), and the message of epoch
/// 0 that carries its reference, sent by carol.
fn attachments(o: &Org) -> Value {
    use sealdesk_protocol::attachment::{
        AttachmentRef, CHUNK_SIZE, chunk_aad, chunk_count, chunk_nonce,
    };
    let size = 2 * CHUNK_SIZE + 100;
    let plaintext: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
    let mut r = rng(SEED_ATTACHMENTS);
    let sealed = AttachmentRef::seal(
        &mut r,
        &plaintext,
        "receipt.pdf",
        "application/pdf",
        "my receipt",
    )
    .unwrap();
    let a = &sealed.reference;
    assert_eq!(
        a.open(&sealed.chunks).unwrap().as_slice(),
        plaintext.as_slice()
    );
    let key = a.key.to_bytes();
    // The chunk key, derived here with the raw HKDF (PROTOCOL.md §9.8), not the crate's.
    let mut info = Canon::label(labels::ATTACHMENT_KEY);
    info.fixed(a.id.as_bytes());
    let mut chunk_key = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(None, key.as_slice())
        .expand(&info.0, &mut chunk_key)
        .unwrap();
    let n = chunk_count(size as u64);
    let chunks: Vec<Value> = sealed
        .chunks
        .iter()
        .enumerate()
        .map(|(i, ct)| {
            let i = i as u64;
            let last = i + 1 == n;
            json!({
                "index": i,
                "final": last,
                "nonce": h(chunk_nonce(i)),
                "aad": h(chunk_aad(&a.id, i, last)),
                "ciphertext_len": ct.len(),
                "ciphertext_sha256": h(Sha256::digest(ct)),
                "tag": h(&ct[ct.len() - 16..]),
                "ciphertext": if last { Value::String(h(ct)) } else { Value::Null },
            })
        })
        .collect();
    let (rec, k) = epoch0(o);
    let keys = EpochKeys::new(&k, &rec);
    let body = a.to_body();
    let env = keys
        .seal_message(
            &o.customer.keys,
            7,
            ContentKind::Attachment,
            T0 + 160,
            &body,
        )
        .unwrap();
    let mut w = ReplayWindows::default();
    let opened = keys.open_message(&env, &mut w).unwrap();
    assert_eq!(opened.body.as_slice(), body.as_slice());
    json!({
        "header": header("an attachment in 3 chunks and its reference in a message of epoch 0 (see epoch.json for K)", Some(SEED_ATTACHMENTS)),
        "chunk_size": CHUNK_SIZE,
        "plaintext": "byte i of the plaintext is (7 * i + 3) mod 256",
        "size": size,
        "plaintext_sha256": h(a.sha256),
        "id": h(a.id.as_bytes()),
        "key": h(*key),
        "chunk_key": h(chunk_key),
        "chunks": chunks,
        "name": a.name,
        "media_type": a.media_type,
        "text": a.text,
        "body": h(body.as_slice()),
        "message": {
            "sender": o.customer.card.name,
            "sender_signing_public": h(o.customer.card.signing_key.as_bytes()),
            "kind_code": 4,
            "counter": 7,
            "sent_at": T0 + 160,
            "header": h(env.header.to_bytes()),
            "ciphertext": h(&env.ciphertext),
            "signed_bytes": h(env.signed_bytes()),
            "signature": h(env.signature.to_bytes()),
        },
    })
}

/// The consent token, its revocation and an erasure request, the same every time.
fn make_consent(o: &Org, rng: &mut ChaCha20Rng) -> ConsentToken {
    let (rec, _) = epoch0(o);
    let p = ConsentParams {
        conversation: rec.conversation,
        epochs: EpochRange::new(0, 1).unwrap(),
        scope: Scope::Full,
        purpose: "Check my refund claim for order #1234".into(),
        valid_secs: 7 * 86_400,
    };
    ConsentToken::issue(rng, &o.customer.keys, &o.policy, p, T0 + 1_000).unwrap()
}

fn make_ticket(o: &Org, rng: &mut ChaCha20Rng) -> (DisputeTicket, Vec<ArbiterDecision>) {
    let (rec, _) = epoch0(o);
    let ticket = DisputeTicket::issue(
        rng,
        &o.master.keys,
        &o.policy,
        DisputeParams {
            conversation: rec.conversation,
            epochs: EpochRange::single(0),
            reason: "chargeback dispute #77".into(),
            valid_secs: 86_400,
        },
        T0 + 1_000,
    )
    .unwrap();
    let decisions = vec![
        ArbiterDecision::sign(&o.arbiters[0].keys, &ticket, Verdict::Approve, T0 + 1_100).unwrap(),
        ArbiterDecision::sign(
            &o.arbiters[1].keys,
            &ticket,
            Verdict::Reject("not enough evidence".into()),
            T0 + 1_200,
        )
        .unwrap(),
        ArbiterDecision::sign(&o.arbiters[2].keys, &ticket, Verdict::Approve, T0 + 1_300).unwrap(),
    ];
    (ticket, decisions)
}

/// Consent token, ticket with decisions, and both release requests, from one generator.
struct Justifications {
    consent: ConsentToken,
    ticket: DisputeTicket,
    decisions: Vec<ArbiterDecision>,
    by_consent: ReleaseRequest,
    by_dispute: ReleaseRequest,
}

fn justifications(o: &Org) -> Justifications {
    let mut rng = rng(SEED_JUSTIFICATION);
    let consent = make_consent(o, &mut rng);
    let (ticket, decisions) = make_ticket(o, &mut rng);
    let by_consent = ReleaseRequest::sign(
        &mut rng,
        &o.master.keys,
        &o.policy,
        EpochRange::single(0),
        Justification::Consent(consent.clone()),
        T0 + 1_500,
    )
    .unwrap();
    let by_dispute = ReleaseRequest::sign(
        &mut rng,
        &o.master.keys,
        &o.policy,
        EpochRange::single(0),
        Justification::Dispute {
            ticket: ticket.clone(),
            decisions: decisions.clone(),
        },
        T0 + 1_500,
    )
    .unwrap();
    Justifications {
        consent,
        ticket,
        decisions,
        by_consent,
        by_dispute,
    }
}

fn consent(o: &Org) -> Value {
    let j = justifications(o);
    let c = &j.consent;
    let revocation = ConsentRevocation::issue(&o.customer.keys, c, T0 + 2_000).unwrap();
    revocation.verify().unwrap();
    let erasure = ErasureRequest::sign(&o.customer.keys, c.conversation, T0 + 3_000);
    erasure.verify().unwrap();
    json!({
        "header": header("a consent token for epochs 0-1, its revocation, and an erasure \
                          request", Some(SEED_JUSTIFICATION)),
        "consent": {
            "id": h(c.id.as_bytes()),
            "org": c.org,
            "conversation": h(c.conversation.as_bytes()),
            "epochs": range(&c.epochs),
            "grantee": name_of(o, &c.grantee),
            "scope": "full",
            "scope_code": 1,
            "purpose": c.purpose,
            "issued_at": c.issued_at,
            "expires_at": c.expires_at,
            "customer": name_of(o, &c.customer),
            "signed_bytes": h(c.signed_bytes()),
            "signature": h(c.signature.to_bytes()),
        },
        "revocation": {
            "revoked_at": revocation.revoked_at,
            "signed_bytes": h(revocation.signed_bytes()),
            "signature": h(revocation.signature.to_bytes()),
        },
        "erasure_request": {
            "requested_at": erasure.requested_at,
            "signed_bytes": h(erasure.signed_bytes()),
            "signature": h(erasure.signature.to_bytes()),
        },
    })
}

fn dispute(o: &Org) -> Value {
    let j = justifications(o);
    let t = &j.ticket;
    t.verify(&o.policy).unwrap();
    let decisions: Vec<Value> = j
        .decisions
        .iter()
        .map(|d| {
            d.verify(&o.policy, t).unwrap();
            json!({
                "arbiter": name_of(o, &d.arbiter),
                "verdict": match &d.verdict {
                    Verdict::Approve => json!("approve"),
                    Verdict::Reject(r) => json!({ "reject": r }),
                },
                "decided_at": d.decided_at,
                "signed_bytes": h(d.signed_bytes()),
                "signature": h(d.signature.to_bytes()),
            })
        })
        .collect();
    let counted: Vec<String> = approvers(&o.policy, t, &j.decisions)
        .iter()
        .map(|k| name_of(o, k))
        .collect();
    let close = DisputeClose::sign(&o.master.keys, t, "settled with the customer", T0 + 1_400);
    close.verify(&o.policy, t).unwrap();
    let closed = AuditEntry::sign(
        &o.relay,
        AuditEvent::DisputeClosed {
            org: t.org.clone(),
            conversation: t.conversation,
            ticket: t.id,
            because: ClosedBecause::Master(close.reason.clone()),
        },
        T0 + 1_401,
    );
    // A ticket bound to the record it releases (PROTOCOL.md §10.4), from its own generator so
    // the vectors above are unchanged.
    let (rec, _) = epoch0(o);
    let bound = DisputeTicket::issue_bound(
        &mut rng(SEED_JUSTIFICATION ^ 0xb0),
        &o.master.keys,
        &o.policy,
        DisputeParams {
            conversation: rec.conversation,
            epochs: EpochRange::single(0),
            reason: "chargeback dispute #78".into(),
            valid_secs: 86_400,
        },
        vec![BoundRecord {
            epoch: 0,
            hash: rec.hash(),
        }],
        T0 + 1_000,
    )
    .unwrap();
    bound.verify(&o.policy).unwrap();
    json!({
        "header": header("a dispute ticket for epoch 0 and three arbiter decisions (two \
                          approvals count toward the 2-of-3 threshold); a ticket bound to epoch \
                          0's record (bound_ticket, seed SEED_JUSTIFICATION ^ 0xb0)", Some(SEED_JUSTIFICATION)),
        "bound_ticket": {
            "id": h(bound.id.as_bytes()),
            "org": bound.org,
            "conversation": h(bound.conversation.as_bytes()),
            "epochs": range(&bound.epochs),
            "reason": bound.reason,
            "opened_at": bound.opened_at,
            "expires_at": bound.expires_at,
            "master": name_of(o, &bound.master),
            "records": bound.records.iter().map(|r| json!({
                "epoch": r.epoch,
                "hash": h(r.hash),
            })).collect::<Vec<_>>(),
            "signed_bytes": h(bound.signed_bytes()),
            "signature": h(bound.signature.to_bytes()),
            "hash": h(bound.hash()),
        },
        "ticket": {
            "id": h(t.id.as_bytes()),
            "org": t.org,
            "conversation": h(t.conversation.as_bytes()),
            "epochs": range(&t.epochs),
            "reason": t.reason,
            "opened_at": t.opened_at,
            "expires_at": t.expires_at,
            "master": name_of(o, &t.master),
            "signed_bytes": h(t.signed_bytes()),
            "signature": h(t.signature.to_bytes()),
            "hash": h(t.hash()),
        },
        "decisions": decisions,
        "approvers": counted,
        "close": {
            "reason": close.reason,
            "closed_at": close.closed_at,
            "master": name_of(o, &close.master),
            "signed_bytes": h(close.signed_bytes()),
            "signature": h(close.signature.to_bytes()),
            "audit_entry": {
                "at": closed.at,
                "signer": "relay",
                "signed_bytes": h(closed.signed_bytes()),
                "signature": h(closed.signature.to_bytes()),
                "leaf_hash": h(closed.leaf_hash()),
            },
        },
    })
}

fn request_json(r: &ReleaseRequest) -> Value {
    json!({
        "id": h(r.id.as_bytes()),
        "org": r.org,
        "policy_version": r.policy_version,
        "conversation": h(r.conversation.as_bytes()),
        "epochs": range(&r.epochs),
        "justification": match &r.justification {
            Justification::Consent(_) => "consent",
            Justification::Dispute { .. } => "dispute",
        },
        "requested_at": r.requested_at,
        "signed_bytes": h(r.signed_bytes()),
        "signature": h(r.signature.to_bytes()),
        "hash": h(r.hash()),
    })
}

fn release(o: &Org) -> Value {
    let (rec, k) = epoch0(o);
    let j = justifications(o);
    let req = &j.by_consent;
    let records = [rec.clone()];
    let no = |_: &TokenId| false;
    let mut rng = rng(SEED_RELEASE);
    let mut opened = Vec::new();
    let mut shares = Vec::new();
    for (i, tr) in o.trustees.iter().enumerate().take(2) {
        let view = TrusteeView {
            policy: &o.policy,
            me: &tr.keys,
            now: T0 + 1_600,
            epochs: &records,
            is_spent: &no,
            is_revoked: &no,
        };
        let approved = decide(&mut rng, &view, req).unwrap();
        assert_eq!(approved.request_hash, req.hash());
        for rs in &approved.shares {
            let share = rs.open(&o.master.keys, &o.policy, req).unwrap();
            let ctx = SealContext {
                purpose: Purpose::ReleasedShare,
                conversation: &rs.conversation,
                epoch: rs.epoch,
                recipient: &o.master.card.signing_key,
                extra: &rs.request_hash,
            };
            shares.push(json!({
                "trustee": tr.card.name,
                "trustee_index": i,
                "epoch": rs.epoch,
                "request_hash": h(rs.request_hash),
                "info": h(ctx.info()),
                "sealed": sealed(&rs.sealed),
                "share": h(*share.to_bytes()),
                "signed_bytes": h(rs.signed_bytes()),
                "signature": h(rs.signature.to_bytes()),
            }));
            opened.push(share);
        }
    }
    // Dispute request: the same trustees would also release for it.
    let view = TrusteeView {
        policy: &o.policy,
        me: &o.trustees[2].keys,
        now: T0 + 1_600,
        epochs: &records,
        is_spent: &no,
        is_revoked: &no,
    };
    let by_dispute = decide(&mut rng, &view, &j.by_dispute).unwrap();
    assert_eq!(by_dispute.approvers.len(), 2);

    let s_m = rec.open_master_share(&o.master.keys).unwrap();
    let k2 = escrow::reconstruct(
        &s_m,
        &opened,
        o.policy.trustee_threshold,
        &rec.conversation,
        0,
        &rec.commitment,
    )
    .unwrap();
    assert_eq!(*k2.to_bytes(), *k.to_bytes());
    json!({
        "header": header("release requests (by consent, by dispute) and the released shares of \
                          trustee-1 and trustee-2 for the consent request; the master recombines \
                          them with s_M into epoch 0's K", Some(SEED_RELEASE)),
        "request_by_consent": request_json(req),
        "request_by_dispute": request_json(&j.by_dispute),
        "released_shares": shares,
        "s_m": h(*s_m),
        "k": h(*k2.to_bytes()),
    })
}

fn audit_entries(o: &Org) -> Vec<AuditEntry> {
    let (rec, _) = epoch0(o);
    let j = justifications(o);
    let conv = rec.conversation;
    let release = |basis, at, who: &Account| {
        AuditEntry::sign(
            &who.keys,
            AuditEvent::Release {
                org: "acme".into(),
                request_hash: if matches!(basis, ReleaseBasis::Consent { .. }) {
                    j.by_consent.hash()
                } else {
                    j.by_dispute.hash()
                },
                conversation: conv,
                epochs: EpochRange::single(0),
                basis,
                master: o.master.card.signing_key,
            },
            at,
        )
    };
    let consent_basis = ReleaseBasis::Consent {
        id: j.consent.id,
        scope: Scope::Full,
        issued_at: j.consent.issued_at,
    };
    vec![
        AuditEntry::sign(
            &o.master.keys,
            AuditEvent::PolicyChange {
                org: "acme".into(),
                version: o.policy.version,
                policy_hash: o.policy.hash(),
            },
            T0 + 1,
        ),
        release(consent_basis.clone(), T0 + 1_600, &o.trustees[0]),
        release(consent_basis, T0 + 1_601, &o.trustees[1]),
        release(
            ReleaseBasis::Dispute {
                id: j.ticket.id,
                approvers: vec![
                    o.arbiters[0].card.signing_key,
                    o.arbiters[2].card.signing_key,
                ],
            },
            T0 + 1_700,
            &o.trustees[2],
        ),
        AuditEntry::sign(
            &o.customer.keys,
            AuditEvent::ConsentRevocation {
                conversation: conv,
                consent: j.consent.id,
            },
            T0 + 2_000,
        ),
        AuditEntry::sign(
            &o.relay,
            AuditEvent::Erasure {
                conversation: conv,
                reason: "customer request".into(),
            },
            T0 + 3_000,
        ),
        AuditEntry::sign(
            &o.relay,
            AuditEvent::Erasure {
                conversation: ConversationId::from_bytes(&[0x11; 16]).unwrap(),
                reason: "retention".into(),
            },
            T0 + 4_000,
        ),
    ]
}

fn audit(o: &Org) -> Value {
    let entries = audit_entries(o);
    let mut tree = MerkleTree::default();
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            e.verify().unwrap();
            let index = tree.push(&e.leaf());
            json!({
                "index": index,
                "event": match &e.event {
                    AuditEvent::Release { basis: ReleaseBasis::Consent { .. }, .. } =>
                        "release (consent)",
                    AuditEvent::Release { .. } => "release (dispute)",
                    AuditEvent::Erasure { .. } => "erasure",
                    AuditEvent::ConsentRevocation { .. } => "consent_revocation",
                    AuditEvent::PolicyChange { .. } => "policy_change",
                    AuditEvent::DisputeClosed { .. } => "dispute_closed",
                    AuditEvent::Extension(_) => unreachable!("no extension among these"),
                },
                "signer": name_of(o, &e.signer),
                "at": e.at,
                "signed_bytes": h(e.signed_bytes()),
                "signature": h(e.signature.to_bytes()),
                "leaf": h(e.leaf()),
                "leaf_hash": h(e.leaf_hash()),
            })
        })
        .collect();
    let n = tree.len();
    let roots: Vec<String> = (0..=n).map(|s| h(tree.root_at(s).unwrap())).collect();
    let hexes = |v: Vec<[u8; 32]>| v.into_iter().map(h).collect::<Vec<_>>();
    let inclusion: Vec<Value> = (0..n)
        .map(|i| json!({ "index": i, "size": n, "path": hexes(tree.inclusion_proof(i, n).unwrap()) }))
        .chain([json!({ "index": 2, "size": 5, "path": hexes(tree.inclusion_proof(2, 5).unwrap()) })])
        .collect();
    let consistency: Vec<Value> = (0..=n)
        .map(|m| (m, n))
        .chain([(3, 5), (4, 6)])
        .map(|(m, s)| {
            json!({ "old": m, "new": s, "path": hexes(tree.consistency_proof(m, s).unwrap()) })
        })
        .collect();
    let heads: Vec<Value> = [(4u64, T0 + 2_500), (n, T0 + 5_000)]
        .into_iter()
        .map(|(size, ts)| {
            let sth = SignedTreeHead::sign(&o.relay, size, tree.root_at(size).unwrap(), ts);
            sth.verify(&o.relay.signing_public()).unwrap();
            json!({
                "size": size,
                "root": h(sth.root),
                "timestamp": ts,
                "log_key": h(sth.log_key.as_bytes()),
                "signed_bytes": h(sth.signed_bytes()),
                "signature": h(sth.signature.to_bytes()),
            })
        })
        .collect();
    // Each trustee cosigns the full head as a witness (its own clock, a little later).
    let full = SignedTreeHead::sign(&o.relay, n, tree.root_at(n).unwrap(), T0 + 5_000);
    let cosignatures: Vec<Value> = o
        .trustees
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let ts = T0 + 5_010 + i as u64;
            let c = Cosignature::sign(&t.keys, &full, ts);
            c.verify().unwrap();
            json!({
                "witness": t.card.name,
                "size": n,
                "root": h(c.root),
                "timestamp": ts,
                "log_key": h(c.log_key.as_bytes()),
                "signed_bytes": h(c.signed_bytes()),
                "signature": h(c.signature.to_bytes()),
            })
        })
        .collect();
    json!({
        "header": header("seven audit entries of every kind, the RFC 9162 Merkle roots of every \
                          prefix, inclusion and consistency proofs, two signed tree heads, and \
                          each trustee's witness cosignature on the second; an entry of a kind a \
                          later version adds (§12.1) with its CBOR and leaf, and CBOR entries a \
                          reader refuses",
                         None),
        "entries": list,
        "unreadable": unreadable_entry(o),
        "refused": refused_entries(o),
        "roots": roots,
        "inclusion": inclusion,
        "consistency": consistency,
        "tree_heads": heads,
        "cosignatures": cosignatures,
    })
}

/// An entry of code 6 (a kind a later version adds, §12.1 "Kinds a later version adds"),
/// signed by the relay: its CBOR as served, signed bytes, signature, leaf and leaf hash, which a
/// reader of this version computes from the bytes as served.
fn unreadable_entry(o: &Org) -> Value {
    let mut body = b"\x00\x00\x00\x04acme".to_vec();
    body.extend_from_slice(&[0x22; 16]);
    let event = AuditEvent::Extension(ExtensionEvent::new(6, body.clone()).unwrap());
    let e = AuditEntry::sign(&o.relay, event, T0 + 6_000);
    e.verify().unwrap();
    json!({
        "code": 6,
        "body": h(&body),
        "signer": name_of(o, &e.signer),
        "at": e.at,
        "cbor": h(wire::to_cbor(&e).unwrap()),
        "signed_bytes": h(e.signed_bytes()),
        "signature": h(e.signature.to_bytes()),
        "leaf": h(e.leaf()),
        "leaf_hash": h(e.leaf_hash()),
    })
}

/// Entries whose outer structure is an entry's but whose event a reader refuses (a malformed
/// entry fails the reading, §12.3): a kind it reads (a consent revocation's layout) served in
/// the extension form, which would otherwise be passed over unread with its genuine leaf;
/// code 0; and an event name that is neither a kind of §12.1 nor `extension`.
fn refused_entries(o: &Org) -> Value {
    let entry = |event: ciborium::Value| {
        let v = ciborium::Value::Map(vec![
            (ciborium::Value::Text("event".into()), event),
            (
                ciborium::Value::Text("at".into()),
                ciborium::Value::Integer(T0.into()),
            ),
            (
                ciborium::Value::Text("signer".into()),
                ciborium::Value::Bytes(o.relay.signing_public().as_bytes().to_vec()),
            ),
            (
                ciborium::Value::Text("signature".into()),
                ciborium::Value::Bytes(vec![0; 64]),
            ),
        ]);
        let mut out = Vec::new();
        ciborium::into_writer(&v, &mut out).unwrap();
        assert!(wire::from_cbor::<AuditEntry>(&out, "audit entry").is_err());
        h(out)
    };
    let extension = |code: u8| {
        ciborium::Value::Map(vec![(
            ciborium::Value::Text("extension".into()),
            ciborium::Value::Map(vec![
                (
                    ciborium::Value::Text("code".into()),
                    ciborium::Value::Integer(code.into()),
                ),
                (
                    ciborium::Value::Text("body".into()),
                    ciborium::Value::Bytes(vec![0x33; 32]),
                ),
            ]),
        )])
    };
    json!([
        { "why": "a kind this version reads (3) in the extension form", "cbor": entry(extension(3)) },
        { "why": "code 0", "cbor": entry(extension(0)) },
        { "why": "an event name neither of §12.1 nor extension", "cbor": entry(ciborium::Value::Map(vec![(
            ciborium::Value::Text("frobnicate".into()),
            ciborium::Value::Map(vec![(ciborium::Value::Text("org".into()), ciborium::Value::Text("acme".into()))]),
        )])) },
    ])
}

/// The master's end marker over an export of epoch 0: the messages of `messages.json` at seqs
/// 2–5, the epoch record at seq 1, four items left out (the last is `epoch.json`'s hand-off,
/// by its hash), and the two consent release entries of `audit.json`.
fn export_end(o: &Org) -> Value {
    let (rec, k) = epoch0(o);
    let keys = EpochKeys::new(&k, &rec);
    let shown: Vec<(u64, sealdesk_protocol::message::Envelope, String, String)> = message_plan(o)
        .into_iter()
        .enumerate()
        .map(|(i, (who, counter, kind, sent_at, body))| {
            let env = keys
                .seal_message(&who.keys, counter, kind, sent_at, &body)
                .unwrap();
            let text = match kind {
                ContentKind::Text => String::from_utf8(body).unwrap(),
                ContentKind::Read => format!(
                    "read up to #{}",
                    u64::from_be_bytes(body.as_slice().try_into().unwrap())
                ),
                ContentKind::Status => format!("status {:?}", body),
                ContentKind::Attachment => "attachment".to_owned(),
            };
            (i as u64 + 2, env, who.card.name.clone(), text)
        })
        .collect();
    let entries = audit_entries(o);
    let j = justifications(o);
    let mut tree = MerkleTree::default();
    for e in &entries {
        tree.push(&e.leaf());
    }
    let omitted = vec![
        OmittedItem {
            seq: 6,
            kind: OmittedKind::Consent,
            epoch: None,
            record: None,
        },
        OmittedItem {
            seq: 7,
            kind: OmittedKind::Notice,
            epoch: None,
            record: None,
        },
        OmittedItem {
            seq: 8,
            kind: OmittedKind::Message,
            epoch: Some(1),
            record: None,
        },
        // epoch.json's hand-off, by its hash.
        OmittedItem {
            seq: 9,
            kind: OmittedKind::HandOff,
            epoch: None,
            record: Some(sealdesk_protocol::export::handoff_hash(&epoch_chain(o).1)),
        },
    ];
    let releases: Vec<ReleaseRef> = [1u64, 2]
        .into_iter()
        .map(|i| ReleaseRef {
            index: i,
            leaf_hash: entries[usize::try_from(i).unwrap()].leaf_hash(),
            request_hash: j.by_consent.hash(),
        })
        .collect();
    let statement = ExportStatement {
        conversation: rec.conversation,
        org: "acme",
        redacted: false,
        policies: vec![o.policy.hash()],
        epochs: vec![(1, rec.hash())],
        messages: shown
            .iter()
            .map(|(seq, env, sender, text)| ShownMessage {
                seq: *seq,
                envelope: env,
                sender,
                text,
            })
            .collect(),
        omitted: omitted.clone(),
        last_seq: 9,
        releases: releases.clone(),
        tree_size: tree.len(),
        tree_root: tree.root(),
        signed_at: T0 + 6_000,
        master: o.master.card.signing_key,
    };
    let signature = statement.sign(&o.master.keys);
    statement.verify(&signature).unwrap();
    json!({
        "header": header("the master's end marker over a transcript export (messages.json's \
                          envelopes, audit.json's consent releases)", None),
        "conversation": h(rec.conversation.as_bytes()),
        "org": "acme",
        "redacted": false,
        "policies": [h(o.policy.hash())],
        "epochs": [{ "seq": 1, "record_hash": h(rec.hash()) }],
        "messages": shown.iter().map(|(seq, env, sender, text)| json!({
            "seq": seq,
            "envelope_signed_bytes": h(env.signed_bytes()),
            "envelope_signature": h(env.signature.to_bytes()),
            "sender": sender,
            "text": text,
        })).collect::<Vec<_>>(),
        "omitted": omitted.iter().map(|o| json!({
            "seq": o.seq,
            "kind": o.kind.code(),
            "epoch": o.epoch,
            "record_hash": o.record.map(h),
        })).collect::<Vec<_>>(),
        "last_seq": 9,
        "releases": releases.iter().map(|r| json!({
            "index": r.index,
            "leaf_hash": h(r.leaf_hash),
            "request_hash": h(r.request_hash),
        })).collect::<Vec<_>>(),
        "tree_size": tree.len(),
        "tree_root": h(tree.root()),
        "signed_at": T0 + 6_000,
        "master": h(o.master.card.signing_key.as_bytes()),
        "signed_bytes": h(statement.signed_bytes()),
        "signature": h(signature.to_bytes()),
    })
}

fn wire_frames(o: &Org) -> Value {
    let mut rng = rng(SEED_WIRE);
    let mut nonce = [0u8; 32];
    rng.fill_bytes(&mut nonce);
    let challenge = Challenge {
        relay_key: o.relay.signing_public(),
        nonce,
    };
    let auth = AuthResponse::answer(&o.customer.keys, o.customer.card.card().clone(), &challenge);
    auth.verify(&challenge).unwrap();
    let (rec, k) = epoch0(o);
    let keys = EpochKeys::new(&k, &rec);
    let env = keys
        .seal_message(&o.customer.keys, 0, ContentKind::Text, T0 + 110, b"hi")
        .unwrap();
    let recovery = recovery_record_vectors::fixture(o);
    let frames: Vec<(&str, Frame)> = vec![
        ("challenge", Frame::Challenge(challenge.clone())),
        ("auth (carol)", Frame::Auth(auth.clone())),
        (
            "welcome",
            Frame::Welcome(Welcome {
                registered: true,
                log_key: o.relay.signing_public(),
            }),
        ),
        (
            "request 1: register (a unit variant)",
            Frame::Request {
                id: 1,
                body: Request::Register,
            },
        ),
        (
            "request 2: get_card",
            Frame::Request {
                id: 2,
                body: Request::GetCard { name: "bob".into() },
            },
        ),
        (
            "request 3: get_policy with no version",
            Frame::Request {
                id: 3,
                body: Request::GetPolicy {
                    org: "acme".into(),
                    version: None,
                },
            },
        ),
        (
            "request 4: send",
            Frame::Request {
                id: 4,
                body: Request::Send(env.clone()),
            },
        ),
        (
            "response 4: stored",
            Frame::Response {
                id: 4,
                body: Response::stored(7),
            },
        ),
        (
            "response 4: stored, with a stored-bytes quota warning (PROTOCOL §13.12)",
            Frame::Response {
                id: 4,
                body: Response::Stored {
                    seq: 7,
                    quota: Some(ByteQuota {
                        scope: QuotaScope::Org,
                        used: 850_000,
                        most: 1_000_000,
                    }),
                },
            },
        ),
        (
            "response 5: error",
            Frame::Response {
                id: 5,
                body: Response::error(ErrorCode::Forbidden, "not a member of this conversation"),
            },
        ),
        (
            "response 6: ok (a unit variant)",
            Frame::Response {
                id: 6,
                body: Response::Ok,
            },
        ),
        (
            "response 7: items, with skipped runs and the head (PROTOCOL §13.10)",
            Frame::Response {
                id: 7,
                body: Response::Items {
                    items: vec![Sequenced {
                        conversation: rec.conversation,
                        seq: 9,
                        stored_at: T0 + 111,
                        item: Item::Message(env.clone()),
                    }],
                    more: false,
                    skipped: vec![
                        SkippedRange {
                            from: 3,
                            to: 7,
                            epoch: Some(0),
                        },
                        SkippedRange {
                            from: 8,
                            to: 8,
                            epoch: None,
                        },
                        SkippedRange {
                            from: 10,
                            to: 10,
                            epoch: None,
                        },
                    ],
                    head: Some(10),
                },
            },
        ),
        (
            "response 8: items from a relay that names no skipped runs (older relays)",
            Frame::Response {
                id: 8,
                body: Response::Items {
                    items: Vec::new(),
                    more: false,
                    skipped: Vec::new(),
                    head: None,
                },
            },
        ),
        (
            "push: delivered",
            Frame::Push(Push::Delivered {
                conversation: rec.conversation,
                member: "bob".into(),
                seq: 7,
            }),
        ),
        (
            "request 7: watch_audit (a unit variant)",
            Frame::Request {
                id: 7,
                body: Request::WatchAudit,
            },
        ),
        (
            "push: audit_grew",
            Frame::Push(Push::AuditGrew { size: 12 }),
        ),
        (
            "request 9: watch_agent_keys (a unit variant)",
            Frame::Request {
                id: 9,
                body: Request::WatchAgentKeys,
            },
        ),
        (
            "push: agent_key_changed",
            Frame::Push(Push::AgentKeyChanged {
                org: "acme".into(),
                agent: o.agent.card.name.clone(),
                card: o.agent.card.card().clone(),
                conversations: vec![rec.conversation],
            }),
        ),
        (
            "push: quota_warning (PROTOCOL §13.12)",
            Frame::Push(Push::QuotaWarning {
                org: Some("acme".into()),
                quota: ByteQuota {
                    scope: QuotaScope::Org,
                    used: 850_000,
                    most: 1_000_000,
                },
            }),
        ),
        (
            "request 10: put_recovery (PROTOCOL §3.5, the record of recovery_record.json)",
            Frame::Request {
                id: 10,
                body: Request::PutRecovery(recovery.record.clone()),
            },
        ),
        (
            "request 11: get_recovery",
            Frame::Request {
                id: 11,
                body: Request::GetRecovery {
                    name: "carol".into(),
                    proof: RecoveryProof::of(&recovery.code)
                        .unwrap()
                        .to_bytes()
                        .to_vec(),
                },
            },
        ),
        (
            "response 11: recovery",
            Frame::Response {
                id: 11,
                body: Response::Recovery(recovery.record),
            },
        ),
    ];
    let list: Vec<Value> = frames
        .into_iter()
        .map(|(what, f)| {
            let bytes = wire::encode(&f).unwrap();
            assert_eq!(wire::decode(&bytes).unwrap(), f);
            json!({ "frame": what, "bytes": h(&bytes) })
        })
        .collect();
    json!({
        "header": header("wire frames: version byte 0x01 then one CBOR item", Some(SEED_WIRE)),
        "auth_signed_bytes": h(AuthResponse::signed_bytes(&challenge, &o.customer.card.signing_key)),
        "frames": list,
    })
}

// ---------------------------------------------------------------------------------------------
// Comparison.

/// `L`, the order of the Ed25519 base point, little-endian.
const ED25519_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// A scalar derived from a label (the cases need known secret scalars, not key pairs).
fn test_scalar(label: &str) -> curve25519_dalek::Scalar {
    let wide: [u8; 64] = Sha512::digest(label.as_bytes()).into();
    curve25519_dalek::Scalar::from_bytes_mod_order_wide(&wide)
}

/// Ed25519's challenge `k = SHA-512(R ‖ A ‖ M) mod L`.
fn ed25519_challenge(r: &[u8], a: &[u8], msg: &[u8]) -> curve25519_dalek::Scalar {
    let mut hsh = Sha512::new();
    hsh.update(r);
    hsh.update(a);
    hsh.update(msg);
    let wide: [u8; 64] = hsh.finalize().into();
    curve25519_dalek::Scalar::from_bytes_mod_order_wide(&wide)
}

/// Signatures that strict verification (`verify_strict`, PROTOCOL.md §1.2) rejects and lax
/// verifiers accept, each built by hand from its points and scalars, plus one valid signature.
/// `cofactorless_lax` is ed25519-dalek's `verify` (the cofactorless equation, compared as
/// bytes, small-order points allowed, `S` canonical); `cofactored_lax` is the most lenient
/// common rule (`[8][S]B = [8]R + [8][k]A`, `S` reduced mod `L`, any point), as in ZIP 215.
fn ed25519_strict() -> Value {
    use curve25519_dalek::{EdwardsPoint, Scalar, constants::EIGHT_TORSION, traits::Identity as _};
    let sig = |r: &EdwardsPoint, s: [u8; 32]| -> String {
        let mut b = r.compress().to_bytes().to_vec();
        b.extend_from_slice(&s);
        h(b)
    };
    let case =
        |name: &str, about: &str, a: &EdwardsPoint, msg: &[u8], signature: String, lax: bool| {
            json!({
                "name": name,
                "about": about,
                "public_key": h(a.compress().to_bytes()),
                "message": h(msg),
                "signature": signature,
                "verify_strict": name == "valid",
                "cofactorless_lax": lax,
                "cofactored_lax": true,
            })
        };
    let a = test_scalar("sealdesk/v1 ed25519-strict vectors: key");
    let r = test_scalar("sealdesk/v1 ed25519-strict vectors: nonce");
    let big_a = EdwardsPoint::mul_base(&a);
    let big_r = EdwardsPoint::mul_base(&r);
    let honest = |big_r: &EdwardsPoint, msg: &[u8]| -> Scalar {
        r + ed25519_challenge(
            &big_r.compress().to_bytes(),
            &big_a.compress().to_bytes(),
            msg,
        ) * a
    };
    let id = EdwardsPoint::identity();
    let t8 = EIGHT_TORSION[1];
    let mut cases = Vec::new();

    let msg = b"sealdesk/v1 ed25519-strict: valid";
    cases.push(case(
        "valid",
        "an ordinary signature: every verifier accepts it",
        &big_a,
        msg,
        sig(&big_r, honest(&big_r, msg).to_bytes()),
        true,
    ));

    let msg = b"sealdesk/v1 ed25519-strict: identity key";
    cases.push(case(
        "identity_key_identity_r_zero_s",
        "A = identity, R = identity, S = 0: verifies for every message under a lax verifier",
        &id,
        msg,
        sig(&id, [0; 32]),
        true,
    ));

    let msg = b"sealdesk/v1 ed25519-strict: small-order R";
    let k = ed25519_challenge(&id.compress().to_bytes(), &big_a.compress().to_bytes(), msg);
    cases.push(case(
        "small_order_r",
        "R = identity (order 1), S = k·a: the cofactorless equation holds",
        &big_a,
        msg,
        sig(&id, (k * a).to_bytes()),
        true,
    ));

    let msg = b"sealdesk/v1 ed25519-strict: order-8 R";
    let k = ed25519_challenge(&t8.compress().to_bytes(), &big_a.compress().to_bytes(), msg);
    cases.push(case(
        "small_order_r_order_8",
        "R = a point of order 8, S = k·a: only the cofactored equation holds",
        &big_a,
        msg,
        sig(&t8, (k * a).to_bytes()),
        false,
    ));

    // A of order 8: [k]A vanishes when 8 divides k, so S = r, R = [r]B verifies cofactorless.
    let (msg, _) = (0u32..)
        .map(|i| format!("sealdesk/v1 ed25519-strict: small-order A #{i}").into_bytes())
        .map(|m| {
            let k = ed25519_challenge(&big_r.compress().to_bytes(), &t8.compress().to_bytes(), &m);
            (m, k)
        })
        .find(|(_, k)| t8 * k == id)
        .unwrap();
    cases.push(case(
        "small_order_a",
        "A = a point of order 8, R = [r]B, S = r, the message chosen so that 8 divides k",
        &t8,
        &msg,
        sig(&big_r, r.to_bytes()),
        true,
    ));

    let msg = b"sealdesk/v1 ed25519-strict: mixed-order R";
    let mixed = big_r + t8;
    let k = ed25519_challenge(
        &mixed.compress().to_bytes(),
        &big_a.compress().to_bytes(),
        msg,
    );
    cases.push(case(
        "mixed_order_r",
        "R = [r]B + T (T of order 8), S = r + k·a: only the cofactored equation holds",
        &big_a,
        msg,
        sig(&mixed, (r + k * a).to_bytes()),
        false,
    ));

    let msg = b"sealdesk/v1 ed25519-strict: non-canonical S";
    let s = honest(&big_r, msg).to_bytes();
    let mut s_plus_l = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(ED25519_L[i]) + carry;
        s_plus_l[i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    cases.push(case(
        "non_canonical_s",
        "the valid signature of this message with S + L in place of S (S ≥ L)",
        &big_a,
        msg,
        sig(&big_r, s_plus_l),
        false,
    ));

    json!({
        "header": header("Ed25519 signatures verify_strict rejects and lax verifiers accept", None),
        "rule": "verify_strict: A and R decode and are not of small order, S < L, and R == [S]B - [k]A as encoded bytes, k = SHA-512(R || A || M) mod L",
        "cases": cases,
    })
}

fn diff(path: &str, stored: &Value, computed: &Value, out: &mut Vec<String>) {
    match (stored, computed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                match b.get(k) {
                    Some(vb) => diff(&format!("{path}.{k}"), va, vb, out),
                    None => out.push(format!("{path}.{k}: in the file, no longer computed")),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{k}: computed, missing from the file"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                out.push(format!(
                    "{path}: file has {} items, code gives {}",
                    a.len(),
                    b.len()
                ));
            }
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: file {a}, code {b}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Independent re-derivation from the files, following PROTOCOL.md with raw primitives.

/// The canonical layout of PROTOCOL.md §1, written again here so the checks below do not go
/// through `codec::Writer`.
struct Canon(Vec<u8>);

impl Canon {
    fn label(l: &str) -> Self {
        let mut c = Canon(Vec::new());
        c.str(l);
        c
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn fixed(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(u32::try_from(v.len()).unwrap()).fixed(v)
    }
    fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    fn sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.0).into()
    }
}

fn load(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(vector_path(name)).unwrap()).unwrap()
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(
        v.as_str()
            .unwrap_or_else(|| panic!("not a hex string: {v}")),
    )
    .unwrap()
}

fn arr<const N: usize>(v: &Value) -> [u8; N] {
    unhex(v).try_into().unwrap()
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn identity<'a>(ids: &'a Value, name: &str) -> &'a Value {
    ids["identities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no identity {name}"))
}

fn ed25519_verify(public: &[u8; 32], msg: &[u8], sig: &[u8; 64]) {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(public).unwrap();
    vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig))
        .unwrap();
}

#[test]
fn independent_identities_cards_and_fingerprints() {
    use ed25519_dalek::Signer as _;
    let ids = load("identities");
    for id in ids["identities"].as_array().unwrap() {
        let secret: [u8; 64] = arr(&id["secret_key"]);
        let sk = ed25519_dalek::SigningKey::from_bytes(&secret[..32].try_into().unwrap());
        assert_eq!(h(sk.verifying_key().to_bytes()), id["signing_public"]);
        let xs = x25519_dalek::StaticSecret::from(<[u8; 32]>::try_from(&secret[32..]).unwrap());
        assert_eq!(
            h(x25519_dalek::PublicKey::from(&xs).to_bytes()),
            id["agreement_public"]
        );
        if id["role"].is_null() {
            continue;
        }
        let sp: [u8; 32] = arr(&id["signing_public"]);
        let ap: [u8; 32] = arr(&id["agreement_public"]);
        let mut card = Canon::label("sealdesk/v1/card");
        card.str(id["name"].as_str().unwrap())
            .u8(u8::try_from(num(&id["role_code"])).unwrap())
            .fixed(&sp)
            .fixed(&ap)
            .u64(num(&id["created_at"]));
        assert_eq!(h(&card.0), id["card_signed_bytes"]);
        // Ed25519 is deterministic: the signature is reproducible from the seed.
        assert_eq!(h(sk.sign(&card.0).to_bytes()), id["card_signature"]);

        let mut fp = Canon::label("sealdesk/v1/fingerprint");
        fp.fixed(&sp).fixed(&ap);
        let digest = fp.sha256();
        assert_eq!(h(digest), id["fingerprint_sha256"]);
        let groups: Vec<String> = digest
            .chunks(5)
            .take(6)
            .map(|c| {
                let v = c.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
                format!("{:05}", v % 100_000)
            })
            .collect();
        assert_eq!(groups.join(" "), id["fingerprint"]);
        // The crate's printed form agrees.
        let fpr = Fingerprint::of(
            &SigningPublicKey::from_bytes(&sp).unwrap(),
            &AgreementPublicKey::from_bytes(&ap).unwrap(),
        );
        assert_eq!(fpr.to_string(), id["fingerprint"]);
    }
}

/// The layout of an identity card inside another object: its signed bytes as variable bytes,
/// then the 64-byte signature.
fn embedded_card(c: &mut Canon, id: &Value) {
    c.bytes(&unhex(&id["card_signed_bytes"]))
        .fixed(&unhex(&id["card_signature"]));
}

#[test]
fn independent_policy_and_certificate() {
    let ids = load("identities");
    let v = load("policy");
    let p = &v["policy"];
    let mut c = Canon::label("sealdesk/v1/policy");
    c.str(p["org"].as_str().unwrap())
        .u32(u32::try_from(num(&p["version"])).unwrap());
    embedded_card(&mut c, identity(&ids, p["master"].as_str().unwrap()));
    let trustees = p["trustees"].as_array().unwrap();
    c.u32(u32::try_from(trustees.len()).unwrap());
    for t in trustees {
        embedded_card(&mut c, identity(&ids, t.as_str().unwrap()));
    }
    c.u8(u8::try_from(num(&p["trustee_threshold"])).unwrap());
    let arbiters = p["arbiters"].as_array().unwrap();
    c.u32(u32::try_from(arbiters.len()).unwrap());
    for a in arbiters {
        embedded_card(&mut c, identity(&ids, a.as_str().unwrap()));
    }
    c.u8(u8::try_from(num(&p["arbiter_threshold"])).unwrap())
        .u8(u8::from(p["allow_consent"].as_bool().unwrap()))
        .u8(u8::from(p["allow_dispute"].as_bool().unwrap()))
        .u64(num(&p["max_release_validity_secs"]))
        .u32(u32::try_from(num(&p["rotate_after_messages"])).unwrap())
        .u64(num(&p["rotate_after_secs"]))
        .u64(num(&p["retention_secs"]))
        .u8(u8::from(p["history_handoff"].as_bool().unwrap()))
        .u64(num(&p["created_at"]));
    assert_eq!(h(&c.0), p["signed_bytes"]);
    let master = identity(&ids, "acme-master");
    ed25519_verify(&arr(&master["signing_public"]), &c.0, &arr(&p["signature"]));
    let mut hash = Canon::label("sealdesk/v1/policy");
    hash.bytes(&c.0).fixed(&unhex(&p["signature"]));
    assert_eq!(h(hash.sha256()), p["hash"]);

    let a = &v["agent_certificate"];
    let mut c = Canon::label("sealdesk/v1/agent-cert");
    c.str(a["org"].as_str().unwrap());
    embedded_card(&mut c, identity(&ids, a["agent"].as_str().unwrap()));
    c.u64(num(&a["issued_at"])).u64(num(&a["expires_at"]));
    assert_eq!(h(&c.0), a["signed_bytes"]);
    ed25519_verify(&arr(&master["signing_public"]), &c.0, &arr(&a["signature"]));
}

fn info(ctx: &Value) -> Vec<u8> {
    let mut c = Canon::label("sealdesk/v1/hpke");
    c.str(ctx["purpose"].as_str().unwrap())
        .fixed(&unhex(&ctx["conversation"]))
        .u32(u32::try_from(num(&ctx["epoch"])).unwrap())
        .fixed(&unhex(&ctx["recipient_signing_public"]))
        .bytes(&unhex(&ctx["extra"]));
    c.0
}

/// Opens an HPKE blob with the raw `hpke` crate.
fn hpke_open(secret_scalar: &[u8], enc: &[u8], info: &[u8], ct: &[u8]) -> Vec<u8> {
    use hpke::{Deserializable as _, aead::AesGcm256, kdf::HkdfSha256, kem::X25519HkdfSha256};
    let sk = <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(secret_scalar).unwrap();
    let enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(enc).unwrap();
    hpke::single_shot_open::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
        &hpke::OpModeR::Base,
        &sk,
        &enc,
        info,
        ct,
        &[],
    )
    .unwrap()
}

fn agreement_secret(ids: &Value, name: &str) -> Vec<u8> {
    unhex(&identity(ids, name)["secret_key"])[32..].to_vec()
}

#[test]
fn independent_hpke() {
    let ids = load("identities");
    let v = load("hpke");
    for ctx in v["contexts"].as_array().unwrap() {
        assert_eq!(h(info(ctx)), ctx["info"]);
    }
    for which in ["deterministic", "random"] {
        let s = &v[which];
        let ctx = &s["context"];
        assert_eq!(h(info(ctx)), ctx["info"]);
        let pt = hpke_open(
            &agreement_secret(&ids, ctx["recipient"].as_str().unwrap()),
            &unhex(&s["enc"]),
            &info(ctx),
            &unhex(&s["ciphertext"]),
        );
        assert_eq!(h(pt), s["plaintext"]);
    }
    // The random seal's ephemeral key is DeriveKeyPair of the first 32 generator bytes: sealing
    // deterministically with them gives the same bytes (this pins how rust-hpke draws).
    let r = &v["random"];
    let rcpt = AgreementPublicKey::from_bytes(&arr(&r["recipient_agreement_public"])).unwrap();
    let conv = ConversationId::from_bytes(&arr(&r["context"]["conversation"])).unwrap();
    let who =
        SigningPublicKey::from_bytes(&arr(&r["context"]["recipient_signing_public"])).unwrap();
    let ctx = SealContext {
        purpose: Purpose::EpochSecret,
        conversation: &conv,
        epoch: u32::try_from(num(&r["context"]["epoch"])).unwrap(),
        recipient: &who,
        extra: &[],
    };
    let again = seal::seal_deterministic(&arr(&r["rng_ikm"]), &rcpt, &ctx, &unhex(&r["plaintext"]))
        .unwrap();
    assert_eq!(h(again.enc), r["enc"]);
    assert_eq!(h(&again.ciphertext), r["ciphertext"]);
}

/// GF(2^8) multiplication modulo the AES polynomial 0x11b, textbook style.
fn gf_mul(a: u8, b: u8) -> u8 {
    let (mut a, mut b, mut p) = (a, b, 0u8);
    while b != 0 {
        if b & 1 == 1 {
            p ^= a;
        }
        let carry = a & 0x80 != 0;
        a <<= 1;
        if carry {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    p
}

#[test]
fn independent_epoch_key_schedule_and_escrow() {
    let ids = load("identities");
    let pol = load("policy");
    let v = load("epoch");
    let t = num(&pol["policy"]["trustee_threshold"]);
    for e in v["epochs"].as_array().unwrap() {
        let k: [u8; 32] = arr(&e["k"]);
        let conv = ConversationId::from_bytes(&arr(&e["conversation"])).unwrap();
        let epoch = u32::try_from(num(&e["epoch"])).unwrap();
        let ks = &e["key_schedule"];

        let mut com = Canon::label("sealdesk/v1/epoch-commitment");
        com.fixed(conv.as_bytes()).u32(epoch).fixed(&k);
        assert_eq!(h(com.sha256()), e["commitment"]);

        let s = Schedule::new(&k, &conv, epoch);
        let mut salt = Canon::label("sealdesk/v1/epoch-salt");
        salt.fixed(conv.as_bytes()).u32(epoch);
        assert_eq!(h(&salt.0), ks["salt"]);
        assert_eq!(h(&s.prk), ks["prk"]);
        let s_m = s.s_m();
        assert_eq!(h(s_m), ks["s_m"]);
        let s_e: Vec<u8> = k.iter().zip(&s_m).map(|(a, b)| a ^ b).collect();
        assert_eq!(h(&s_e), ks["s_e"]);
        let coeffs: Vec<[u8; 32]> = (1..u8::try_from(t).unwrap())
            .map(|i| s.coefficient(i))
            .collect();
        assert_eq!(
            coeffs.iter().map(h).collect::<Vec<_>>(),
            ks["coefficients"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        );
        // Shamir: share i is (x = i + 1, y_j = s_E[j] + Σ c_k[j]·x^k) over GF(2^8).
        for (i, want) in ks["shares"].as_array().unwrap().iter().enumerate() {
            let x = u8::try_from(i + 1).unwrap();
            let mut share = vec![x];
            for j in 0..32 {
                let mut y = 0u8;
                for c in coeffs.iter().rev() {
                    y = gf_mul(y, x) ^ c[j];
                }
                share.push(gf_mul(y, x) ^ s_e[j]);
            }
            assert_eq!(&h(&share), want);
        }

        // The escrow seals are DeriveKeyPair(ikm_r) seals of s_M and the shares.
        let escrow_recipients = std::iter::once(("acme-master", &e["escrow"]["master"], h(s_m)))
            .chain(
                e["escrow"]["trustees"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(ks["shares"].as_array().unwrap())
                    .map(|(t, share)| {
                        (
                            t["trustee"].as_str().unwrap(),
                            t,
                            share.as_str().unwrap().to_owned(),
                        )
                    }),
            );
        for (name, sealed_part, plaintext) in escrow_recipients {
            let id = identity(&ids, name);
            let who = SigningPublicKey::from_bytes(&arr(&id["signing_public"])).unwrap();
            let ikm = s.ikm(&who);
            assert_eq!(h(ikm), ks["ikm"][name]);
            let apk = AgreementPublicKey::from_bytes(&arr(&id["agreement_public"])).unwrap();
            let purpose = if name == "acme-master" {
                Purpose::MasterShare
            } else {
                Purpose::TrusteeShare
            };
            // Escrow seals bind the epoch's customer (PROTOCOL.md §8).
            let customer = identity(&ids, "carol");
            let customer: [u8; 32] = arr(&customer["signing_public"]);
            let ctx = SealContext {
                purpose,
                conversation: &conv,
                epoch,
                recipient: &who,
                extra: &customer,
            };
            let mut inf = Canon::label("sealdesk/v1/hpke");
            inf.str(if name == "acme-master" {
                "master-share"
            } else {
                "trustee-share"
            })
            .fixed(conv.as_bytes())
            .u32(epoch)
            .fixed(who.as_bytes())
            .bytes(&customer);
            assert_eq!(h(&inf.0), sealed_part["info"]);
            let again =
                seal::seal_deterministic(&ikm, &apk, &ctx, &hex::decode(&plaintext).unwrap())
                    .unwrap();
            assert_eq!(h(again.enc), sealed_part["sealed"]["enc"]);
            assert_eq!(h(&again.ciphertext), sealed_part["sealed"]["ciphertext"]);
            let opened = hpke_open(
                &agreement_secret(&ids, name),
                &unhex(&sealed_part["sealed"]["enc"]),
                &inf.0,
                &unhex(&sealed_part["sealed"]["ciphertext"]),
            );
            assert_eq!(h(opened), plaintext);
        }

        // K sealed to each member opens with that member's key.
        for m in e["sealed_secrets"].as_array().unwrap() {
            let opened = hpke_open(
                &agreement_secret(&ids, m["member"].as_str().unwrap()),
                &unhex(&m["sealed"]["enc"]),
                &unhex(&m["info"]),
                &unhex(&m["sealed"]["ciphertext"]),
            );
            assert_eq!(opened, k);
        }

        // The signed layout.
        let mut c = Canon::label("sealdesk/v1/epoch-record");
        c.u8(u8::try_from(num(&e["version"])).unwrap())
            .str(e["org"].as_str().unwrap())
            .fixed(conv.as_bytes())
            .u32(epoch)
            .u32(u32::try_from(num(&e["policy_version"])).unwrap())
            .fixed(&unhex(&e["policy_hash"]));
        match &e["previous"] {
            Value::Null => c.u8(0),
            p => c.u8(1).fixed(&unhex(p)),
        };
        let creator = identity(&ids, e["creator"].as_str().unwrap());
        c.u64(num(&e["created_at"]))
            .fixed(&unhex(&creator["signing_public"]));
        let members = e["members"].as_array().unwrap();
        c.u32(u32::try_from(members.len()).unwrap());
        for m in members {
            embedded_card(&mut c, identity(&ids, m.as_str().unwrap()));
        }
        let seals = e["sealed_secrets"].as_array().unwrap();
        c.u32(u32::try_from(seals.len()).unwrap());
        for s in seals {
            c.fixed(&unhex(&s["sealed"]["enc"]))
                .bytes(&unhex(&s["sealed"]["ciphertext"]));
        }
        c.fixed(&unhex(&e["escrow"]["master"]["sealed"]["enc"]))
            .bytes(&unhex(&e["escrow"]["master"]["sealed"]["ciphertext"]));
        let ts = e["escrow"]["trustees"].as_array().unwrap();
        c.u32(u32::try_from(ts.len()).unwrap());
        for t in ts {
            c.fixed(&unhex(&t["sealed"]["enc"]))
                .bytes(&unhex(&t["sealed"]["ciphertext"]));
        }
        c.fixed(&unhex(&e["commitment"]));
        assert_eq!(h(&c.0), e["signed_bytes"]);
        ed25519_verify(
            &arr(&creator["signing_public"]),
            &c.0,
            &arr(&e["signature"]),
        );
        let mut hash = Canon::label("sealdesk/v1/epoch-record-hash");
        hash.bytes(&c.0).fixed(&unhex(&e["signature"]));
        assert_eq!(h(hash.sha256()), e["hash"]);
    }
    // Epoch 1 chains to epoch 0.
    assert_eq!(v["epochs"][1]["previous"], v["epochs"][0]["hash"]);

    let ho = &v["handoff"];
    let from = identity(&ids, ho["from"].as_str().unwrap());
    let to = identity(&ids, ho["to"].as_str().unwrap());
    let mut c = Canon::label("sealdesk/v1/handoff");
    c.fixed(&unhex(&v["epochs"][0]["conversation"]))
        .fixed(&unhex(&from["signing_public"]))
        .fixed(&unhex(&to["signing_public"]));
    let list = ho["epochs"].as_array().unwrap();
    c.u32(u32::try_from(list.len()).unwrap());
    for e in list {
        c.u32(u32::try_from(num(&e["epoch"])).unwrap())
            .fixed(&unhex(&e["sealed"]["enc"]))
            .bytes(&unhex(&e["sealed"]["ciphertext"]));
        let opened = hpke_open(
            &agreement_secret(&ids, ho["to"].as_str().unwrap()),
            &unhex(&e["sealed"]["enc"]),
            &unhex(&e["info"]),
            &unhex(&e["sealed"]["ciphertext"]),
        );
        assert_eq!(h(opened), v["epochs"][0]["k"]);
    }
    c.u64(num(&ho["created_at"]));
    assert_eq!(h(&c.0), ho["signed_bytes"]);
    ed25519_verify(&arr(&from["signing_public"]), &c.0, &arr(&ho["signature"]));
}

#[test]
fn independent_signals() {
    use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce, aead::Aead as _, aead::Payload};
    let v = load("signals");
    let k: [u8; 32] = arr(&v["k"]);
    let conv = ConversationId::from_bytes(&arr(&v["conversation"])).unwrap();
    let epoch = u32::try_from(num(&v["epoch"])).unwrap();
    let s = Schedule::new(&k, &conv, epoch);
    for m in v["signals"].as_array().unwrap() {
        let sender = SigningPublicKey::from_bytes(&arr(&m["sender_signing_public"])).unwrap();
        let mut info = Canon::label("sealdesk/v1/signal/key");
        info.fixed(sender.as_bytes());
        let key = s.expand32(&info.0);
        assert_eq!(h(key), m["signal_key"]);
        let nonce: [u8; 12] = arr(&m["nonce"]);
        let mut hdr = vec![1u8];
        hdr.extend_from_slice(conv.as_bytes());
        hdr.extend_from_slice(&epoch.to_be_bytes());
        hdr.extend_from_slice(sender.as_bytes());
        hdr.extend_from_slice(&num(&m["sent_at"]).to_be_bytes());
        hdr.extend_from_slice(&nonce);
        assert_eq!(hdr.len(), 73);
        assert_eq!(h(&hdr), m["header"]);
        let mut aad = Canon::label("sealdesk/v1/signal/aad");
        aad.fixed(&hdr);
        assert_eq!(h(&aad.0), m["aad"]);
        let code = u8::try_from(num(&m["kind_code"])).unwrap();
        let ct = Aes256Gcm::new_from_slice(&key)
            .unwrap()
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &[code],
                    aad: &aad.0,
                },
            )
            .unwrap();
        assert_eq!(h(&ct), m["ciphertext"]);
        let mut signed = Canon::label("sealdesk/v1/signal/signature");
        signed.fixed(&hdr).bytes(&ct);
        assert_eq!(h(&signed.0), m["signed_bytes"]);
        ed25519_verify(sender.as_bytes(), &signed.0, &arr(&m["signature"]));
    }
}

#[test]
fn independent_messages() {
    use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce, aead::Aead as _, aead::Payload};
    let v = load("messages");
    let k: [u8; 32] = arr(&v["k"]);
    let conv = ConversationId::from_bytes(&arr(&v["conversation"])).unwrap();
    let epoch = u32::try_from(num(&v["epoch"])).unwrap();
    let s = Schedule::new(&k, &conv, epoch);
    for m in v["messages"].as_array().unwrap() {
        let sender = SigningPublicKey::from_bytes(&arr(&m["sender_signing_public"])).unwrap();
        let counter = num(&m["counter"]);
        let chain = s.chain(&sender);
        assert_eq!(h(chain), m["chain_key"]);
        let (key, nonce) = message_keys(&chain, counter);
        assert_eq!(h(key), m["message_key"]);
        assert_eq!(h(nonce), m["nonce"]);
        let mut com = Canon::label("sealdesk/v1/msg/commitment");
        com.bytes(&key);
        assert_eq!(h(com.sha256()), m["commitment"]);

        let mut hdr = Vec::new();
        hdr.push(1u8);
        hdr.extend_from_slice(conv.as_bytes());
        hdr.extend_from_slice(&epoch.to_be_bytes());
        hdr.extend_from_slice(sender.as_bytes());
        hdr.extend_from_slice(&counter.to_be_bytes());
        hdr.push(if m["kind"] == "text" { 1 } else { 2 });
        hdr.extend_from_slice(&num(&m["sent_at"]).to_be_bytes());
        hdr.extend_from_slice(&com.sha256());
        assert_eq!(hdr.len(), 102);
        assert_eq!(h(&hdr), m["header"]);

        let mut aad = Canon::label("sealdesk/v1/msg/aad");
        aad.fixed(&hdr);
        assert_eq!(h(&aad.0), m["aad"]);
        let cipher = Aes256Gcm::new_from_slice(&key).unwrap();
        let ct = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &unhex(&m["body"]),
                    aad: &aad.0,
                },
            )
            .unwrap();
        assert_eq!(h(&ct), m["ciphertext"]);

        let mut signed = Canon::label("sealdesk/v1/msg/signature");
        signed.fixed(&hdr).bytes(&ct);
        assert_eq!(h(&signed.0), m["signed_bytes"]);
        ed25519_verify(sender.as_bytes(), &signed.0, &arr(&m["signature"]));
    }
}

#[test]
fn independent_justifications_and_release() {
    let ids = load("identities");
    let pk = |name: &Value| unhex(&identity(&ids, name.as_str().unwrap())["signing_public"]);
    let v = load("consent");
    let c = &v["consent"];
    let mut w = Canon::label("sealdesk/v1/consent");
    w.fixed(&unhex(&c["id"]))
        .str(c["org"].as_str().unwrap())
        .fixed(&unhex(&c["conversation"]))
        .u32(u32::try_from(num(&c["epochs"]["first"])).unwrap())
        .u32(u32::try_from(num(&c["epochs"]["last"])).unwrap())
        .fixed(&pk(&c["grantee"]))
        .u8(u8::try_from(num(&c["scope_code"])).unwrap())
        .str(c["purpose"].as_str().unwrap())
        .u64(num(&c["issued_at"]))
        .u64(num(&c["expires_at"]))
        .fixed(&pk(&c["customer"]));
    assert_eq!(h(&w.0), c["signed_bytes"]);
    let consent_signed = w.0;
    let carol: [u8; 32] = pk(&c["customer"]).try_into().unwrap();
    ed25519_verify(&carol, &consent_signed, &arr(&c["signature"]));

    let r = &v["revocation"];
    let mut w = Canon::label("sealdesk/v1/consent-revocation");
    w.fixed(&unhex(&c["id"]))
        .fixed(&unhex(&c["conversation"]))
        .u64(num(&r["revoked_at"]))
        .fixed(&carol);
    assert_eq!(h(&w.0), r["signed_bytes"]);
    ed25519_verify(&carol, &w.0, &arr(&r["signature"]));

    let e = &v["erasure_request"];
    let mut w = Canon::label("sealdesk/v1/erasure-request");
    w.fixed(&unhex(&c["conversation"]))
        .u64(num(&e["requested_at"]))
        .fixed(&carol);
    assert_eq!(h(&w.0), e["signed_bytes"]);
    ed25519_verify(&carol, &w.0, &arr(&e["signature"]));

    let d = load("dispute");
    let t = &d["ticket"];
    let mut w = Canon::label("sealdesk/v1/dispute-ticket");
    w.fixed(&unhex(&t["id"]))
        .str(t["org"].as_str().unwrap())
        .fixed(&unhex(&t["conversation"]))
        .u32(u32::try_from(num(&t["epochs"]["first"])).unwrap())
        .u32(u32::try_from(num(&t["epochs"]["last"])).unwrap())
        .str(t["reason"].as_str().unwrap())
        .u64(num(&t["opened_at"]))
        .u64(num(&t["expires_at"]))
        .fixed(&pk(&t["master"]));
    assert_eq!(h(&w.0), t["signed_bytes"]);
    let ticket_signed = w.0;
    let master: [u8; 32] = pk(&t["master"]).try_into().unwrap();
    ed25519_verify(&master, &ticket_signed, &arr(&t["signature"]));
    let mut th = Canon::label("sealdesk/v1/dispute-ticket-hash");
    th.bytes(&ticket_signed).fixed(&unhex(&t["signature"]));
    assert_eq!(h(th.sha256()), t["hash"]);
    // The bound ticket: the same layout, then u32(#records) ‖ (u32 epoch ‖ hash[32])….
    let b = &d["bound_ticket"];
    let mut w = Canon::label("sealdesk/v1/dispute-ticket");
    w.fixed(&unhex(&b["id"]))
        .str(b["org"].as_str().unwrap())
        .fixed(&unhex(&b["conversation"]))
        .u32(u32::try_from(num(&b["epochs"]["first"])).unwrap())
        .u32(u32::try_from(num(&b["epochs"]["last"])).unwrap())
        .str(b["reason"].as_str().unwrap())
        .u64(num(&b["opened_at"]))
        .u64(num(&b["expires_at"]))
        .fixed(&pk(&b["master"]));
    let records = b["records"].as_array().unwrap();
    w.u32(u32::try_from(records.len()).unwrap());
    for r in records {
        w.u32(u32::try_from(num(&r["epoch"])).unwrap())
            .fixed(&unhex(&r["hash"]));
    }
    assert_eq!(h(&w.0), b["signed_bytes"]);
    ed25519_verify(&master, &w.0, &arr(&b["signature"]));
    let mut th = Canon::label("sealdesk/v1/dispute-ticket-hash");
    th.bytes(&w.0).fixed(&unhex(&b["signature"]));
    assert_eq!(h(th.sha256()), b["hash"]);
    let e = load("epoch");
    assert_eq!(
        records[0]["hash"], e["epochs"][0]["hash"],
        "epoch 0's record hash"
    );
    for dec in d["decisions"].as_array().unwrap() {
        let mut w = Canon::label("sealdesk/v1/arbiter-decision");
        w.fixed(&unhex(&t["id"])).fixed(&unhex(&t["hash"]));
        match &dec["verdict"] {
            Value::String(s) if s == "approve" => w.u8(1),
            other => w.u8(2).str(other["reject"].as_str().unwrap()),
        };
        w.u64(num(&dec["decided_at"])).fixed(&pk(&dec["arbiter"]));
        assert_eq!(h(&w.0), dec["signed_bytes"]);
        ed25519_verify(
            &pk(&dec["arbiter"]).try_into().unwrap(),
            &w.0,
            &arr(&dec["signature"]),
        );
    }

    let rel = load("release");
    for (key, justification) in [
        ("request_by_consent", {
            let mut j = Canon(vec![1]);
            j.bytes(&consent_signed).fixed(&unhex(&c["signature"]));
            j.0
        }),
        ("request_by_dispute", {
            let mut j = Canon(vec![2]);
            j.bytes(&ticket_signed).fixed(&unhex(&t["signature"]));
            let decs = d["decisions"].as_array().unwrap();
            j.u32(u32::try_from(decs.len()).unwrap());
            for dec in decs {
                j.bytes(&unhex(&dec["signed_bytes"]))
                    .fixed(&unhex(&dec["signature"]));
            }
            j.0
        }),
    ] {
        let r = &rel[key];
        let mut w = Canon::label("sealdesk/v1/release-request");
        w.fixed(&unhex(&r["id"]))
            .str(r["org"].as_str().unwrap())
            .u32(u32::try_from(num(&r["policy_version"])).unwrap())
            .fixed(&unhex(&r["conversation"]))
            .u32(u32::try_from(num(&r["epochs"]["first"])).unwrap())
            .u32(u32::try_from(num(&r["epochs"]["last"])).unwrap())
            .fixed(&justification)
            .u64(num(&r["requested_at"]))
            .fixed(&master);
        assert_eq!(h(&w.0), r["signed_bytes"], "{key}");
        ed25519_verify(&master, &w.0, &arr(&r["signature"]));
        let mut rh = Canon::label("sealdesk/v1/release-request-hash");
        rh.bytes(&w.0).fixed(&unhex(&r["signature"]));
        assert_eq!(h(rh.sha256()), r["hash"], "{key}");
    }

    // Released shares: the signed layout (label "sealdesk/v1/released-share", see PROTOCOL.md), the
    // released-share HPKE info with the request hash as `extra`, and recombination.
    let req_hash = unhex(&rel["request_by_consent"]["hash"]);
    let master_secret = agreement_secret(&ids, "acme-master");
    let mut shares = Vec::new();
    for s in rel["released_shares"].as_array().unwrap() {
        let trustee = pk(&s["trustee"]);
        let mut w = Canon::label("sealdesk/v1/released-share");
        w.fixed(&req_hash)
            .fixed(&unhex(&c["conversation"]))
            .u32(u32::try_from(num(&s["epoch"])).unwrap())
            .fixed(&trustee)
            .fixed(&unhex(&s["sealed"]["enc"]))
            .bytes(&unhex(&s["sealed"]["ciphertext"]));
        assert_eq!(h(&w.0), s["signed_bytes"]);
        ed25519_verify(&trustee.try_into().unwrap(), &w.0, &arr(&s["signature"]));
        let mut inf = Canon::label("sealdesk/v1/hpke");
        inf.str("released-share")
            .fixed(&unhex(&c["conversation"]))
            .u32(u32::try_from(num(&s["epoch"])).unwrap())
            .fixed(&master)
            .bytes(&req_hash);
        assert_eq!(h(&inf.0), s["info"]);
        let share = hpke_open(
            &master_secret,
            &unhex(&s["sealed"]["enc"]),
            &inf.0,
            &unhex(&s["sealed"]["ciphertext"]),
        );
        assert_eq!(h(&share), s["share"]);
        shares.push(share);
    }
    // Lagrange interpolation at 0 of the two shares, plus s_M, gives K.
    let (x1, x2) = (shares[0][0], shares[1][0]);
    let inv = |a: u8| (1..=255u8).find(|&b| gf_mul(a, b) == 1).unwrap();
    let l1 = gf_mul(x2, inv(x1 ^ x2));
    let l2 = gf_mul(x1, inv(x1 ^ x2));
    let s_m = unhex(&rel["s_m"]);
    let k: Vec<u8> = (0..32)
        .map(|j| gf_mul(l1, shares[0][j + 1]) ^ gf_mul(l2, shares[1][j + 1]) ^ s_m[j])
        .collect();
    assert_eq!(h(&k), rel["k"]);
    assert_eq!(rel["k"], load("epoch")["epochs"][0]["k"]);
}

/// RFC 9162 §2.1.1 Merkle Tree Hash over leaf hashes.
fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            let mut hsh = Sha256::new();
            hsh.update([1u8]);
            hsh.update(mth(&leaves[..k]));
            hsh.update(mth(&leaves[k..]));
            hsh.finalize().into()
        }
    }
}

#[test]
fn independent_audit_log() {
    let ids = load("identities");
    let v = load("audit");
    let mut leaves = Vec::new();
    for e in v["entries"].as_array().unwrap() {
        let signed = unhex(&e["signed_bytes"]);
        assert!(signed.starts_with(&Canon::label("sealdesk/v1/audit-entry").0));
        let mut leaf = Canon(Vec::new());
        leaf.bytes(&signed).fixed(&unhex(&e["signature"]));
        assert_eq!(h(&leaf.0), e["leaf"]);
        let mut lh = Sha256::new();
        lh.update([0u8]);
        lh.update(&leaf.0);
        let lh: [u8; 32] = lh.finalize().into();
        assert_eq!(h(lh), e["leaf_hash"]);
        let signer = identity(&ids, e["signer"].as_str().unwrap());
        ed25519_verify(
            &arr(&signer["signing_public"]),
            &signed,
            &arr(&e["signature"]),
        );
        // Tail of every entry: at (u64) then the signer's key.
        let tail = &signed[signed.len() - 40..];
        assert_eq!(&tail[..8], &num(&e["at"]).to_be_bytes());
        assert_eq!(h(&tail[8..]), signer["signing_public"]);
        leaves.push(lh);
    }
    for (size, root) in v["roots"].as_array().unwrap().iter().enumerate() {
        assert_eq!(&h(mth(&leaves[..size])), root);
    }
    // The policy-change entry, byte by byte.
    let pol = load("policy");
    let mut w = Canon::label("sealdesk/v1/audit-entry");
    w.u8(4)
        .str("acme")
        .u32(1)
        .fixed(&unhex(&pol["policy"]["hash"]))
        .u64(num(&v["entries"][0]["at"]))
        .fixed(&unhex(&identity(&ids, "acme-master")["signing_public"]));
    assert_eq!(h(&w.0), v["entries"][0]["signed_bytes"]);

    // The entry of a later kind: `u8(code) ‖ body` as served is its event's layout.
    let x = &v["unreadable"];
    let mut w = Canon::label("sealdesk/v1/audit-entry");
    w.u8(num(&x["code"]) as u8)
        .fixed(&unhex(&x["body"]))
        .u64(num(&x["at"]))
        .fixed(&unhex(&identity(&ids, "relay")["signing_public"]));
    assert_eq!(h(&w.0), x["signed_bytes"]);
    let mut leaf = Canon(Vec::new());
    leaf.bytes(&w.0).fixed(&unhex(&x["signature"]));
    assert_eq!(h(&leaf.0), x["leaf"]);
    ed25519_verify(
        &arr(&identity(&ids, "relay")["signing_public"]),
        &w.0,
        &arr(&x["signature"]),
    );

    let relay = identity(&ids, "relay");
    for sth in v["tree_heads"].as_array().unwrap() {
        let mut w = Canon::label("sealdesk/v1/tree-head");
        w.u64(num(&sth["size"]))
            .fixed(&unhex(&sth["root"]))
            .u64(num(&sth["timestamp"]))
            .fixed(&unhex(&relay["signing_public"]));
        assert_eq!(h(&w.0), sth["signed_bytes"]);
        ed25519_verify(
            &arr(&relay["signing_public"]),
            &w.0,
            &arr(&sth["signature"]),
        );
        assert_eq!(
            sth["root"],
            v["roots"][usize::try_from(num(&sth["size"])).unwrap()]
        );
    }
    // Witness cosignatures: label, log key, size, root, timestamp, witness key.
    let cosignatures = v["cosignatures"].as_array().unwrap();
    assert!(!cosignatures.is_empty());
    for c in cosignatures {
        let witness = identity(&ids, c["witness"].as_str().unwrap());
        let mut w = Canon::label("sealdesk/v1/cosignature");
        w.fixed(&unhex(&relay["signing_public"]))
            .u64(num(&c["size"]))
            .fixed(&unhex(&c["root"]))
            .u64(num(&c["timestamp"]))
            .fixed(&unhex(&witness["signing_public"]));
        assert_eq!(h(&w.0), c["signed_bytes"]);
        ed25519_verify(
            &arr(&witness["signing_public"]),
            &w.0,
            &arr(&c["signature"]),
        );
        assert_eq!(
            c["root"],
            v["roots"][usize::try_from(num(&c["size"])).unwrap()]
        );
    }
    for p in v["inclusion"].as_array().unwrap() {
        let (i, n) = (num(&p["index"]), num(&p["size"]));
        let path: Vec<[u8; 32]> = p["path"].as_array().unwrap().iter().map(arr).collect();
        sealdesk_protocol::merkle::verify_inclusion(
            &leaves[usize::try_from(i).unwrap()],
            i,
            n,
            &path,
            &mth(&leaves[..usize::try_from(n).unwrap()]),
        )
        .unwrap();
    }
    for p in v["consistency"].as_array().unwrap() {
        let (m, n) = (num(&p["old"]), num(&p["new"]));
        let path: Vec<[u8; 32]> = p["path"].as_array().unwrap().iter().map(arr).collect();
        sealdesk_protocol::merkle::verify_consistency(
            m,
            n,
            &mth(&leaves[..usize::try_from(m).unwrap()]),
            &mth(&leaves[..usize::try_from(n).unwrap()]),
            &path,
        )
        .unwrap();
    }
}

#[test]
fn independent_export_end_marker() {
    let ids = load("identities");
    let msgs = load("messages");
    let audit = load("audit");
    let v = load("export");
    let mut w = Canon::label("sealdesk/v1/transcript-end");
    w.fixed(&unhex(&v["conversation"]))
        .str(v["org"].as_str().unwrap())
        .u8(u8::from(v["redacted"].as_bool().unwrap()));
    let list = |k: &str| v[k].as_array().unwrap().clone();
    w.u32(u32::try_from(list("policies").len()).unwrap());
    for p in list("policies") {
        w.fixed(&unhex(&p));
    }
    w.u32(u32::try_from(list("epochs").len()).unwrap());
    for e in list("epochs") {
        w.u64(num(&e["seq"])).fixed(&unhex(&e["record_hash"]));
    }
    w.u32(u32::try_from(list("messages").len()).unwrap());
    for (i, m) in list("messages").iter().enumerate() {
        // The envelopes are messages.json's, byte for byte.
        assert_eq!(
            m["envelope_signed_bytes"],
            msgs["messages"][i]["signed_bytes"]
        );
        assert_eq!(m["envelope_signature"], msgs["messages"][i]["signature"]);
        w.u64(num(&m["seq"]))
            .bytes(&unhex(&m["envelope_signed_bytes"]))
            .fixed(&unhex(&m["envelope_signature"]))
            .str(m["sender"].as_str().unwrap())
            .str(m["text"].as_str().unwrap());
    }
    w.u32(u32::try_from(list("omitted").len()).unwrap());
    let epochs = load("epoch");
    for o in list("omitted") {
        w.u64(num(&o["seq"]))
            .u8(u8::try_from(num(&o["kind"])).unwrap());
        match o["epoch"].as_u64() {
            None => w.u8(0),
            Some(e) => w.u8(1).u32(u32::try_from(e).unwrap()),
        };
        if o["record_hash"].is_null() {
            w.u8(0);
        } else {
            // The only hand-off is epoch.json's: its hash recomputed from its bytes.
            let ho = &epochs["handoff"];
            let mut hash = Canon::label("sealdesk/v1/transcript-handoff");
            hash.bytes(&unhex(&ho["signed_bytes"]))
                .fixed(&unhex(&ho["signature"]));
            assert_eq!(h(hash.sha256()), o["record_hash"]);
            w.u8(1).fixed(&unhex(&o["record_hash"]));
        }
    }
    w.u64(num(&v["last_seq"]))
        .u32(u32::try_from(list("releases").len()).unwrap());
    for r in list("releases") {
        // The leaves are audit.json's.
        let i = usize::try_from(num(&r["index"])).unwrap();
        assert_eq!(r["leaf_hash"], audit["entries"][i]["leaf_hash"]);
        w.u64(num(&r["index"]))
            .fixed(&unhex(&r["leaf_hash"]))
            .fixed(&unhex(&r["request_hash"]));
    }
    let master = identity(&ids, "acme-master");
    assert_eq!(v["master"], master["signing_public"]);
    w.u64(num(&v["tree_size"]))
        .fixed(&unhex(&v["tree_root"]))
        .u64(num(&v["signed_at"]))
        .fixed(&unhex(&v["master"]));
    assert_eq!(h(&w.0), v["signed_bytes"]);
    ed25519_verify(&arr(&master["signing_public"]), &w.0, &arr(&v["signature"]));
}

#[test]
fn independent_wire_frames() {
    let ids = load("identities");
    let v = load("wire");
    for f in v["frames"].as_array().unwrap() {
        let bytes = unhex(&f["bytes"]);
        assert_eq!(bytes[0], 1, "version byte");
        // Each frame is exactly one well-formed CBOR item after the version byte, and the
        // crate decodes it and encodes it back to the same bytes.
        let mut rest = &bytes[1..];
        let _: ciborium::Value = ciborium::from_reader(&mut rest).unwrap();
        assert!(rest.is_empty());
        let frame = wire::decode(&bytes).unwrap();
        assert_eq!(wire::encode(&frame).unwrap(), bytes);
    }
    // The authentication signature.
    let relay = identity(&ids, "relay");
    let carol = identity(&ids, "carol");
    let challenge = wire::decode(&unhex(&v["frames"][0]["bytes"])).unwrap();
    let Frame::Challenge(ch) = challenge else {
        panic!("first frame is the challenge")
    };
    let mut w = Canon::label("sealdesk/v1/auth");
    w.fixed(&unhex(&relay["signing_public"]))
        .fixed(&ch.nonce)
        .fixed(&unhex(&carol["signing_public"]));
    assert_eq!(h(&w.0), v["auth_signed_bytes"]);
    let Frame::Auth(auth) = wire::decode(&unhex(&v["frames"][1]["bytes"])).unwrap() else {
        panic!("second frame is the auth response")
    };
    ed25519_verify(
        &arr(&carol["signing_public"]),
        &w.0,
        &auth.signature.to_bytes(),
    );
}

/// A card decoded from the policy's CBOR is the same card as in identities.json.
#[test]
fn policy_cbor_decodes_to_the_signed_policy() {
    let v = load("policy");
    let p: sealdesk_protocol::policy::OrgPolicy =
        wire::from_cbor(&unhex(&v["policy"]["cbor"]), "policy").unwrap();
    assert_eq!(h(p.signed_bytes()), v["policy"]["signed_bytes"]);
    let verified = p.verify().unwrap();
    let ids = load("identities");
    let master: IdentityCard = verified.master.clone();
    assert_eq!(
        h(master.signed_bytes()),
        identity(&ids, "acme-master")["card_signed_bytes"]
    );
}

/// The lenient rule the `cofactored_lax` column is about: any points, `S` reduced mod `L`,
/// `[8]([S]B - R - [k]A) = identity`.
fn cofactored_lax_verify(public: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    use curve25519_dalek::{
        EdwardsPoint, Scalar, edwards::CompressedEdwardsY, traits::IsIdentity as _,
    };
    let r_bytes: [u8; 32] = sig[..32].try_into().unwrap();
    let s_bytes: [u8; 32] = sig[32..].try_into().unwrap();
    let (Some(a), Some(r)) = (
        CompressedEdwardsY(*public).decompress(),
        CompressedEdwardsY(r_bytes).decompress(),
    ) else {
        return false;
    };
    let s = Scalar::from_bytes_mod_order(s_bytes);
    let k = ed25519_challenge(&r_bytes, public, msg);
    (EdwardsPoint::mul_base(&s) - r - a * k)
        .mul_by_cofactor()
        .is_identity()
}

/// Every case of `ed25519_strict.json` both ways: strict verification (ed25519-dalek's
/// `verify_strict`, and the crate's own key decoding and `verify`) rejects it, and the lax
/// verifiers the file names accept it, so each case tests what it claims to.
#[test]
fn independent_ed25519_strict_cases() {
    let v = load("ed25519_strict");
    let cases = v["cases"].as_array().unwrap();
    let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for expected in [
        "valid",
        "identity_key_identity_r_zero_s",
        "small_order_r",
        "small_order_r_order_8",
        "small_order_a",
        "mixed_order_r",
        "non_canonical_s",
    ] {
        assert!(names.contains(&expected), "missing case {expected}");
    }
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let public: [u8; 32] = arr(&c["public_key"]);
        let msg = unhex(&c["message"]);
        let sig: [u8; 64] = arr(&c["signature"]);
        let signature = ed25519_dalek::Signature::from_bytes(&sig);
        let dalek_key = ed25519_dalek::VerifyingKey::from_bytes(&public);
        let strict = dalek_key
            .as_ref()
            .is_ok_and(|k| k.verify_strict(&msg, &signature).is_ok());
        let cofactorless = dalek_key
            .as_ref()
            .is_ok_and(|k| ed25519_dalek::Verifier::verify(k, &msg, &signature).is_ok());
        let cofactored = cofactored_lax_verify(&public, &msg, &sig);
        // The crate: weak keys are refused when decoded, everything else by `verify`.
        let ours = SigningPublicKey::from_bytes(&public).is_ok_and(|k| {
            k.verify(
                &msg,
                &sealdesk_protocol::keys::Signature::from_bytes(&sig).unwrap(),
                "vector",
            )
            .is_ok()
        });
        assert_eq!(
            strict,
            c["verify_strict"].as_bool().unwrap(),
            "{name}: verify_strict"
        );
        assert_eq!(
            ours, strict,
            "{name}: the crate verifies like verify_strict"
        );
        assert_eq!(
            cofactorless,
            c["cofactorless_lax"].as_bool().unwrap(),
            "{name}: ed25519-dalek verify"
        );
        assert_eq!(
            cofactored,
            c["cofactored_lax"].as_bool().unwrap(),
            "{name}: cofactored"
        );
        if name != "valid" {
            assert!(!strict && !ours, "{name}: strict verification rejects it");
            assert!(cofactored, "{name}: a lax verifier accepts it");
        }
    }
}
