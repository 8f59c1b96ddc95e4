//! Criterion benchmarks of the protocol's hot paths, each next to the raw primitive calls it is
//! built from, measured in the same run so the ratio (ours / raw) is the protocol's overhead:
//! key schedule, commitment, canonical layouts and checks.
//!
//! Run: `cargo bench -p sealdesk-protocol --bench crypto -- --warm-up-time 1 --measurement-time 3`
//! (`--bench crypto` because the library's own libtest bench target rejects criterion flags).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;

use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce, aead::Aead as _, aead::Payload};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::Signer as _;
use hpke::{Deserializable as _, OpModeS, aead::AesGcm256, kdf::HkdfSha256, kem::X25519HkdfSha256};
use sealdesk_protocol::{
    epoch::{EpochRecord, NewEpoch},
    escrow,
    ids::ConversationId,
    message::{ContentKind, Envelope, EpochKeys, ReplayWindows},
    seal::{self, Purpose, SealContext},
    shamir::Share,
};
use support::{Org, T0, rng};

const BODY: usize = 1024;
/// A 102-byte header plus label: what the raw baseline authenticates and signs alongside.
const HEADER: usize = 102;

fn messages(c: &mut Criterion) {
    let org = Org::new(1);
    let (rec, k) = org.first_epoch(&mut rng(2));
    let keys = EpochKeys::new(&k, &rec);
    let body = vec![0x61u8; BODY];

    let raw_key = [7u8; 32];
    let raw_nonce = [9u8; 12];
    let raw_signer = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
    let raw_verifier = raw_signer.verifying_key();
    let raw_aad = vec![1u8; HEADER + 24];

    let mut g = c.benchmark_group("message_1KiB");
    g.throughput(Throughput::Bytes(BODY as u64));
    g.bench_function("seal/ours", |b| {
        b.iter(|| {
            keys.seal_message(
                &org.customer.keys,
                black_box(5),
                ContentKind::Text,
                T0,
                &body,
            )
            .unwrap()
        })
    });
    g.bench_function("seal/raw (aes-gcm + ed25519 sign)", |b| {
        b.iter(|| {
            // A fresh cipher per message, as every message has its own key.
            let cipher = Aes256Gcm::new_from_slice(&raw_key).unwrap();
            let ct = cipher
                .encrypt(
                    &Nonce::from(raw_nonce),
                    Payload {
                        msg: &body,
                        aad: &raw_aad,
                    },
                )
                .unwrap();
            let mut signed = Vec::with_capacity(raw_aad.len() + ct.len());
            signed.extend_from_slice(&raw_aad);
            signed.extend_from_slice(&ct);
            black_box((raw_signer.sign(&signed), ct))
        })
    });

    let env = keys
        .seal_message(&org.customer.keys, 5, ContentKind::Text, T0, &body)
        .unwrap();
    let cipher = Aes256Gcm::new_from_slice(&raw_key).unwrap();
    let raw_ct = cipher
        .encrypt(
            &Nonce::from(raw_nonce),
            Payload {
                msg: &body,
                aad: &raw_aad,
            },
        )
        .unwrap();
    let mut raw_signed = raw_aad.clone();
    raw_signed.extend_from_slice(&raw_ct);
    let raw_sig = raw_signer.sign(&raw_signed);
    g.bench_function("open/ours", |b| {
        b.iter(|| {
            let mut windows = ReplayWindows::default();
            keys.open_message(black_box(&env), &mut windows).unwrap()
        })
    });
    g.bench_function("open/raw (ed25519 verify_strict + aes-gcm)", |b| {
        b.iter(|| {
            let mut signed = Vec::with_capacity(raw_aad.len() + raw_ct.len());
            signed.extend_from_slice(&raw_aad);
            signed.extend_from_slice(&raw_ct);
            raw_verifier.verify_strict(&signed, &raw_sig).unwrap();
            let cipher = Aes256Gcm::new_from_slice(&raw_key).unwrap();
            cipher
                .decrypt(
                    &Nonce::from(raw_nonce),
                    Payload {
                        msg: black_box(&raw_ct),
                        aad: &raw_aad,
                    },
                )
                .unwrap()
        })
    });
    g.finish();
}

fn hpke_seal(c: &mut Criterion) {
    let org = Org::new(3);
    let conv = ConversationId::from_bytes(&[3; 16]).unwrap();
    let recipient = &org.customer.card;
    let ctx = SealContext {
        purpose: Purpose::EpochSecret,
        conversation: &conv,
        epoch: 0,
        recipient: &recipient.signing_key,
        extra: &[],
    };
    let info = ctx.info();
    let pk =
        <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(recipient.agreement_key.as_bytes())
            .unwrap();
    let secret = [0x4bu8; 32];
    let mut rng = rng(4);
    let mut g = c.benchmark_group("hpke_seal_32B");
    g.bench_function("ours (seal::seal)", |b| {
        b.iter(|| seal::seal(&mut rng, &recipient.agreement_key, &ctx, black_box(&secret)).unwrap())
    });
    g.bench_function("raw (hpke::single_shot_seal_with_rng)", |b| {
        b.iter(|| {
            hpke::single_shot_seal_with_rng::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
                &OpModeS::Base,
                &pk,
                &info,
                black_box(&secret),
                &[],
                &mut rng,
            )
            .unwrap()
        })
    });
    g.finish();
}

fn epochs_and_escrow(c: &mut Criterion) {
    let org = Org::new(5);
    let members = [org.customer.card.clone(), org.agent.card.clone()];
    let mut rng = rng(6);
    let mut g = c.benchmark_group("escrow_2of3");
    g.bench_function("EpochRecord::create", |b| {
        b.iter(|| {
            let new = NewEpoch {
                conversation: ConversationId::from_bytes(&[6; 16]).unwrap(),
                epoch: 0,
                members: &members,
                previous: None,
                now: T0,
            };
            EpochRecord::create(&mut rng, &org.customer.keys, &org.policy, new).unwrap()
        })
    });

    let (rec, _) = org.first_epoch(&mut rng);
    let s_m = rec.open_master_share(&org.master.keys).unwrap();
    let shares: Vec<Share> = [0usize, 2]
        .into_iter()
        .map(|i| rec.open_trustee_share(&org.trustees[i].keys, i).unwrap())
        .collect();
    g.bench_function("escrow::reconstruct", |b| {
        b.iter(|| {
            escrow::reconstruct(
                &s_m,
                black_box(&shares),
                2,
                &rec.conversation,
                0,
                &rec.commitment,
            )
            .unwrap()
        })
    });
    g.finish();
}

fn transcript(c: &mut Criterion) {
    const N: u64 = 10_000;
    let org = Org::new(7);
    let (rec, k) = org.first_epoch(&mut rng(8));
    let keys = EpochKeys::new(&k, &rec);
    let body = b"Thanks, that helps. Could you also check the delivery address on file?";
    let transcript: Vec<Envelope> = (0..N)
        .map(|i| {
            let who = if i % 2 == 0 {
                &org.customer
            } else {
                &org.agent
            };
            keys.seal_message(&who.keys, i / 2, ContentKind::Text, T0 + i, body)
                .unwrap()
        })
        .collect();
    let mut g = c.benchmark_group("transcript_10k");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N));
    g.bench_function("verify+decrypt (1 thread)", |b| {
        b.iter(|| {
            let mut windows = ReplayWindows::default();
            let mut total = 0usize;
            for env in &transcript {
                total += keys.open_message(env, &mut windows).unwrap().body.len();
            }
            black_box(total)
        })
    });
    g.finish();
}

criterion_group!(benches, messages, hpke_seal, epochs_and_escrow, transcript);
criterion_main!(benches);
