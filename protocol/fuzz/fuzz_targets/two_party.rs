//! A customer and an agent in one epoch, over a hostile network the fuzz input controls: each
//! step sends, delivers, drops, duplicates, reorders or tampers with a message in flight.
//!
//! Invariants: nothing panics; every genuine message is accepted at most once, by the right
//! receiver, with the body that was sent; no tampered message is ever accepted.
#![no_main]

use std::{collections::HashMap, sync::OnceLock};

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng as _;
use rand::rngs::ChaCha20Rng;
use sealdesk_protocol::{
    card::{IdentityCard, Role},
    epoch::{EpochRecord, NewEpoch},
    ids::ConversationId,
    keys::IdentityKeys,
    message::{ContentKind, Envelope, EpochKeys, ReplayWindows},
    policy::{OrgPolicy, PolicyParams},
};

/// Most messages in flight at once (bounds the fuzzer's memory per input).
const MAX_IN_FLIGHT: usize = 64;

struct World {
    /// 0 = customer, 1 = agent.
    parties: [IdentityKeys; 2],
    keys: EpochKeys,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(0x7A11);
        let master = IdentityKeys::generate(&mut rng);
        let trustee = IdentityKeys::generate(&mut rng);
        let customer = IdentityKeys::generate(&mut rng);
        let agent = IdentityKeys::generate(&mut rng);
        let card = |k: &IdentityKeys, n: &str, r| IdentityCard::issue(k, n, r, 1).unwrap();
        let mut params = PolicyParams::new(
            "acme",
            vec![card(&trustee, "t", Role::Trustee).into_card()],
            1,
            Vec::new(),
            0,
        );
        params.allow_dispute = false;
        let policy =
            OrgPolicy::issue(&master, &card(&master, "m", Role::Master), params, 1).unwrap();
        let members = [
            card(&customer, "carol", Role::Customer),
            card(&agent, "bob", Role::Agent),
        ];
        let new = NewEpoch {
            conversation: ConversationId::from_bytes(&[1; 16]).unwrap(),
            epoch: 0,
            members: &members,
            previous: None,
            now: 2,
        };
        let (epoch, k) = EpochRecord::create(&mut rng, &customer, &policy, new).unwrap();
        World {
            keys: EpochKeys::new(&k, &epoch),
            parties: [customer, agent],
        }
    })
}

/// A message on the network and who sent it (a tampered copy keeps its original sender).
#[derive(Clone)]
struct InFlight {
    sender: usize,
    envelope: Envelope,
}

/// Reads the fuzz input a byte at a time (zeros once it runs out).
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn index(&mut self, len: usize) -> usize {
        usize::from(self.byte()) % len
    }
    fn nonzero(&mut self) -> u8 {
        self.byte().max(1)
    }
}

fn tamper(env: &mut Envelope, input: &mut Input<'_>, other: &IdentityKeys) {
    let h = &mut env.header;
    match input.byte() % 11 {
        0 if !env.ciphertext.is_empty() => {
            let i = input.index(env.ciphertext.len());
            env.ciphertext[i] ^= input.nonzero();
        }
        1 => {
            let mut sig = env.signature.to_bytes();
            sig[input.index(64)] ^= input.nonzero();
            env.signature = sealdesk_protocol::keys::Signature::from_bytes(&sig).unwrap();
        }
        2 => h.counter ^= u64::from(input.nonzero()),
        3 => h.epoch ^= u32::from(input.nonzero()),
        4 => h.sent_at ^= u64::from(input.nonzero()),
        5 => {
            h.kind = match h.kind {
                ContentKind::Text => ContentKind::Read,
                ContentKind::Read => ContentKind::Status,
                ContentKind::Status => ContentKind::Attachment,
                ContentKind::Attachment => ContentKind::Text,
            }
        }
        6 => h.commitment[input.index(32)] ^= input.nonzero(),
        7 => h.sender = other.signing_public(),
        8 => {
            let mut c = h.conversation.to_bytes();
            c[input.index(16)] ^= input.nonzero();
            h.conversation = ConversationId::from_bytes(&c).unwrap();
        }
        9 => {
            let n = input.byte();
            env.ciphertext.push(n);
        }
        _ => h.version ^= input.nonzero(),
    }
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let mut input = Input(data);
    let mut next_counter = [0u64; 2];
    // Each party's record of what it accepted from the other.
    let mut windows = [ReplayWindows::default(), ReplayWindows::default()];
    let mut net: Vec<InFlight> = Vec::new();
    // (sender, counter) -> (envelope, body), for every message sent. A message in flight is
    // genuine exactly when it equals the envelope sent under its (sender, counter): tampering
    // twice can restore the original bytes, and that copy is genuine again.
    let mut sent: HashMap<(usize, u64), (Envelope, Vec<u8>)> = HashMap::new();
    let mut accepted: HashMap<(usize, u64), usize> = HashMap::new();

    while !input.0.is_empty() {
        match input.byte() % 6 {
            0 => {
                if net.len() >= MAX_IN_FLIGHT {
                    continue;
                }
                let sender = usize::from(input.byte() % 2);
                // Sometimes skip counters, to exercise gaps and the far-ahead limit.
                let skip = match input.byte() {
                    250..=255 => u64::from(input.byte()) * 16,
                    _ => 0,
                };
                let counter = next_counter[sender] + skip;
                next_counter[sender] = counter + 1;
                let len = usize::from(input.byte() % 32);
                let body: Vec<u8> = (0..len).map(|_| input.byte()).collect();
                let kind = if input.byte() % 2 == 0 {
                    ContentKind::Text
                } else {
                    ContentKind::Read
                };
                let envelope = w
                    .keys
                    .seal_message(&w.parties[sender], counter, kind, 3, &body)
                    .expect("a member can always seal");
                sent.insert((sender, counter), (envelope.clone(), body));
                net.push(InFlight { sender, envelope });
            }
            1 if !net.is_empty() => {
                let m = net.remove(input.index(net.len()));
                let receiver = 1 - m.sender;
                let result = w.keys.open_message(&m.envelope, &mut windows[receiver]);
                if let Ok(opened) = result {
                    let key = (m.sender, opened.header.counter);
                    let original = sent.get(&key).map(|(env, _)| env);
                    assert!(
                        original == Some(&m.envelope),
                        "a tampered message was accepted"
                    );
                    assert_eq!(
                        opened.header.sender,
                        w.parties[m.sender].signing_public(),
                        "accepted under another sender"
                    );
                    let count = accepted.entry(key).or_insert(0);
                    *count += 1;
                    assert_eq!(*count, 1, "a message was accepted twice");
                    assert_eq!(
                        sent.get(&key).map(|(_, body)| body.as_slice()),
                        Some(&opened.body[..]),
                        "the body changed"
                    );
                }
            }
            2 if !net.is_empty() => {
                let i = input.index(net.len());
                net.remove(i);
            }
            3 if !net.is_empty() && net.len() < MAX_IN_FLIGHT => {
                let i = input.index(net.len());
                net.push(net[i].clone());
            }
            4 if net.len() >= 2 => {
                let (i, j) = (input.index(net.len()), input.index(net.len()));
                net.swap(i, j);
            }
            5 if !net.is_empty() => {
                let i = input.index(net.len());
                let mut m = net[i].clone();
                let before = m.envelope.clone();
                tamper(&mut m.envelope, &mut input, &w.parties[1 - m.sender]);
                if m.envelope != before {
                    // Sometimes the tampered copy replaces the original, sometimes both travel.
                    if input.byte() % 2 == 0 {
                        net[i] = m;
                    } else if net.len() < MAX_IN_FLIGHT {
                        net.push(m);
                    }
                }
            }
            _ => {}
        }
    }
});
