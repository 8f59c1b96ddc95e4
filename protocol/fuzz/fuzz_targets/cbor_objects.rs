//! `wire::from_cbor` into the stored objects (epoch record, envelope, org policy, audit entry,
//! release request), then every check a reader runs on them: nothing may panic, and whatever
//! decodes round-trips. The first input byte picks the type.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng as _;
use rand::rngs::ChaCha20Rng;
use sealdesk_protocol::{
    audit::AuditEntry,
    card::{IdentityCard, Role},
    epoch::{EpochRecord, NewEpoch, VerifiedEpoch},
    ids::{ConversationId, TokenId},
    keys::IdentityKeys,
    message::{Envelope, EpochKeys, ReplayWindows},
    policy::{OrgPolicy, PolicyParams, VerifiedPolicy},
    release::{ReleaseRequest, TrusteeView, decide},
    wire,
};

struct World {
    policy: VerifiedPolicy,
    trustee: IdentityKeys,
    member: IdentityKeys,
    epoch: VerifiedEpoch,
    keys: EpochKeys,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(0xF022);
        let master = IdentityKeys::generate(&mut rng);
        let trustees: Vec<IdentityKeys> =
            (0..3).map(|_| IdentityKeys::generate(&mut rng)).collect();
        let arbiter = IdentityKeys::generate(&mut rng);
        let customer = IdentityKeys::generate(&mut rng);
        let agent = IdentityKeys::generate(&mut rng);
        let card = |k: &IdentityKeys, n: &str, r| IdentityCard::issue(k, n, r, 1).unwrap();
        let params = PolicyParams::new(
            "acme",
            trustees
                .iter()
                .enumerate()
                .map(|(i, t)| card(t, &format!("t{i}"), Role::Trustee).into_card())
                .collect(),
            2,
            vec![card(&arbiter, "a0", Role::Arbiter).into_card()],
            1,
        );
        let policy =
            OrgPolicy::issue(&master, &card(&master, "m", Role::Master), params, 1).unwrap();
        let members = [
            card(&customer, "carol", Role::Customer),
            card(&agent, "bob", Role::Agent),
        ];
        let new = NewEpoch {
            conversation: ConversationId::from_bytes(&[7; 16]).unwrap(),
            epoch: 0,
            members: &members,
            previous: None,
            now: 2,
        };
        let (epoch, k) = EpochRecord::create(&mut rng, &customer, &policy, new).unwrap();
        let keys = EpochKeys::new(&k, &epoch);
        let trustee = trustees.into_iter().next().unwrap();
        World {
            policy,
            trustee,
            member: agent,
            epoch,
            keys,
        }
    })
}

fn round_trip<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + core::fmt::Debug,
{
    let bytes = wire::to_cbor(value).unwrap();
    let again: T = wire::from_cbor(&bytes, "again").unwrap();
    assert_eq!(&again, value);
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let w = world();
    match which % 5 {
        0 => {
            if let Ok(r) = wire::from_cbor::<EpochRecord>(bytes, "epoch record") {
                round_trip(&r);
                let _ = r.hash();
                if let Ok(v) = r.verify(&w.policy) {
                    let _ = v.check_follows(None);
                    let _ = v.check_follows(Some(&w.epoch));
                    let _ = v.open(&w.member, &w.policy);
                }
            }
        }
        1 => {
            if let Ok(e) = wire::from_cbor::<Envelope>(bytes, "envelope") {
                round_trip(&e);
                let mut windows = ReplayWindows::default();
                // Nothing decoded from fuzz input can be a genuine message of this epoch
                // (finding a valid signature would be a forgery), so it must be refused.
                assert!(w.keys.open_message(&e, &mut windows).is_err());
            }
        }
        2 => {
            if let Ok(p) = wire::from_cbor::<OrgPolicy>(bytes, "policy") {
                round_trip(&p);
                let _ = p.hash();
                let _ = p.verify().map(|v| v.summary());
            }
        }
        3 => {
            if let Ok(a) = wire::from_cbor::<AuditEntry>(bytes, "audit entry") {
                round_trip(&a);
                let _ = a.leaf_hash();
                let _ = a.verify();
            }
        }
        _ => {
            if let Ok(r) = wire::from_cbor::<ReleaseRequest>(bytes, "release request") {
                round_trip(&r);
                let _ = r.hash();
                let no = |_: &TokenId| false;
                let epochs = [w.epoch.clone()];
                let view = TrusteeView {
                    policy: &w.policy,
                    me: &w.trustee,
                    now: 10,
                    epochs: &epochs,
                    is_spent: &no,
                    is_revoked: &no,
                };
                let mut rng = ChaCha20Rng::seed_from_u64(1);
                // Only the master can sign a request, so a fuzzed one is always refused.
                assert!(decide(&mut rng, &view, &r).is_err());
            }
        }
    }
});
