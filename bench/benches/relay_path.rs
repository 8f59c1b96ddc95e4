//! Criterion benchmarks of the per-connection and per-message work on the relay's path that
//! `protocol/benches/crypto.rs` does not already cover (it has seal/open of 1 KiB, epoch
//! creation with 2-of-3 escrow, `escrow::reconstruct` from opened shares and the 10,000-message
//! transcript):
//!
//! - the authentication handshake: the client's answer, the relay's check (two signature
//!   verifications: the card and the challenge) — the connect storm's unit of work;
//! - the wire codec for a 1 KiB message, both directions the relay handles it: decoding a
//!   `Request::Send`, encoding the `Push::Item` it forwards;
//! - a release end to end for the master: open the master share and two trustee shares (HPKE)
//!   and reconstruct `K` with its commitment check.
//!
//! Run: `cargo bench -p sealdesk-bench -- --warm-up-time 1 --measurement-time 3`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::{SeedableRng as _, rngs::ChaCha20Rng};
use sealdesk_protocol::{
    card::{IdentityCard, Role, VerifiedCard},
    epoch::{EpochRecord, NewEpoch},
    escrow,
    ids::ConversationId,
    keys::IdentityKeys,
    message::{ContentKind, EpochKeys},
    policy::{OrgPolicy, PolicyParams},
    wire::{self, AuthResponse, Challenge, Frame, Item, Push, Request, Sequenced},
};

const T0: u64 = 1_700_000_000;

fn account(rng: &mut ChaCha20Rng, name: &str, role: Role) -> (IdentityKeys, VerifiedCard) {
    let keys = IdentityKeys::generate(rng);
    let card = IdentityCard::issue(&keys, name, role, T0).unwrap();
    (keys, card)
}

fn handshake(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (keys, card) = account(&mut rng, "carol", Role::Customer);
    let (relay, _) = account(&mut rng, "relay", Role::Customer);
    let challenge = Challenge {
        relay_key: relay.signing_public(),
        nonce: [9; 32],
    };
    let answer = AuthResponse::answer(&keys, card.card().clone(), &challenge);
    let mut g = c.benchmark_group("auth_handshake");
    g.bench_function("client answer (sign)", |b| {
        b.iter(|| AuthResponse::answer(&keys, card.card().clone(), black_box(&challenge)))
    });
    g.bench_function("relay check (card + challenge verify)", |b| {
        b.iter(|| black_box(&answer).verify(&challenge).unwrap())
    });
    g.finish();
}

fn codec(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let (master_keys, master_card) = account(&mut rng, "acme-master", Role::Master);
    let trustees: Vec<_> = (1..=3)
        .map(|i| account(&mut rng, &format!("trustee-{i}"), Role::Trustee))
        .collect();
    let arbiters: Vec<_> = (1..=3)
        .map(|i| account(&mut rng, &format!("arbiter-{i}"), Role::Arbiter))
        .collect();
    let (cust_keys, cust_card) = account(&mut rng, "carol", Role::Customer);
    let (_, agent_card) = account(&mut rng, "bob", Role::Agent);
    let params = PolicyParams::new(
        "acme",
        trustees.iter().map(|t| t.1.card().clone()).collect(),
        2,
        arbiters.iter().map(|a| a.1.card().clone()).collect(),
        2,
    );
    let policy = OrgPolicy::issue(&master_keys, &master_card, params, T0).unwrap();
    let conversation = ConversationId::random(&mut rng);
    let members = [cust_card.clone(), agent_card];
    let (rec, k) = EpochRecord::create(
        &mut rng,
        &cust_keys,
        &policy,
        NewEpoch {
            conversation,
            epoch: 0,
            members: &members,
            previous: None,
            now: T0,
        },
    )
    .unwrap();
    let keys = EpochKeys::new(&k, &rec);
    let env = keys
        .seal_message(&cust_keys, 0, ContentKind::Text, T0, &[0x61; 1024])
        .unwrap();
    let send = wire::encode(&Frame::Request {
        id: 42,
        body: Request::Send(env.clone()),
    })
    .unwrap();
    let push = Frame::Push(Push::Item(Sequenced {
        conversation,
        seq: 7,
        stored_at: T0,
        item: Item::Message(env),
    }));

    let mut g = c.benchmark_group("wire_1KiB");
    g.throughput(Throughput::Bytes(send.len() as u64));
    g.bench_function("decode Request::Send", |b| {
        b.iter(|| wire::decode(black_box(&send)).unwrap())
    });
    g.bench_function("encode Push::Item", |b| {
        b.iter(|| wire::encode(black_box(&push)).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("release_2of3");
    g.bench_function("open master + 2 trustee shares, reconstruct", |b| {
        b.iter(|| {
            let s_m = rec.open_master_share(&master_keys).unwrap();
            let shares: Vec<_> = [0usize, 2]
                .into_iter()
                .map(|i| rec.open_trustee_share(&trustees[i].0, i).unwrap())
                .collect();
            escrow::reconstruct(&s_m, &shares, 2, &conversation, 0, &rec.commitment).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, handshake, codec);
criterion_main!(benches);
