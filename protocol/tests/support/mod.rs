//! Shared fixtures for the integration tests: a deterministic org (master, three trustees,
//! three arbiters, two agents, a customer and a relay key) built from a seeded generator.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use rand::SeedableRng as _;
use rand::rngs::ChaCha20Rng;
use sealdesk_protocol::{
    card::{IdentityCard, Role, VerifiedCard},
    epoch::{EpochRecord, NewEpoch, VerifiedEpoch},
    ids::ConversationId,
    keys::IdentityKeys,
    policy::{OrgPolicy, PolicyParams, VerifiedPolicy},
    secret::EpochSecret,
};

/// The time every fixture is created at (Unix seconds, 2023-11-14T22:13:20Z).
pub const T0: u64 = 1_700_000_000;

/// A deterministic generator for tests and vectors.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// One account: its keys and its (verified) card.
pub struct Account {
    /// The secret keys.
    pub keys: IdentityKeys,
    /// The self-signed card.
    pub card: VerifiedCard,
}

impl Account {
    fn new(rng: &mut ChaCha20Rng, name: &str, role: Role) -> Self {
        let keys = IdentityKeys::generate(rng);
        let card = IdentityCard::issue(&keys, name, role, T0).unwrap();
        Self { keys, card }
    }
}

/// A 2-of-3 escrow org with 2-of-3 arbiters, two agents, a customer and a relay log key.
pub struct Org {
    /// The org's master account.
    pub master: Account,
    /// Three escrow trustees, in share order.
    pub trustees: Vec<Account>,
    /// Three dispute arbiters.
    pub arbiters: Vec<Account>,
    /// The first agent ("bob").
    pub agent: Account,
    /// The second agent ("dave"), for transfers.
    pub agent2: Account,
    /// The customer ("carol").
    pub customer: Account,
    /// The relay's log/identity key (it has no card).
    pub relay: IdentityKeys,
    /// The master-signed policy.
    pub policy: VerifiedPolicy,
}

impl Org {
    /// Builds the org from `seed`. Identities are drawn in this order: master, trustee-1..3,
    /// arbiter-1..3, bob, dave, carol, relay.
    pub fn new(seed: u64) -> Self {
        let mut rng = rng(seed);
        let master = Account::new(&mut rng, "acme-master", Role::Master);
        let trustees: Vec<_> = (1..=3)
            .map(|i| Account::new(&mut rng, &format!("trustee-{i}"), Role::Trustee))
            .collect();
        let arbiters: Vec<_> = (1..=3)
            .map(|i| Account::new(&mut rng, &format!("arbiter-{i}"), Role::Arbiter))
            .collect();
        let agent = Account::new(&mut rng, "bob", Role::Agent);
        let agent2 = Account::new(&mut rng, "dave", Role::Agent);
        let customer = Account::new(&mut rng, "carol", Role::Customer);
        let relay = IdentityKeys::generate(&mut rng);
        let params = PolicyParams::new(
            "acme",
            trustees.iter().map(|t| t.card.card().clone()).collect(),
            2,
            arbiters.iter().map(|a| a.card.card().clone()).collect(),
            2,
        );
        let policy = OrgPolicy::issue(&master.keys, &master.card, params, T0).unwrap();
        Self {
            master,
            trustees,
            arbiters,
            agent,
            agent2,
            customer,
            relay,
            policy,
        }
    }

    /// Every account with a card, in generation order (the relay key comes last, after these).
    pub fn accounts(&self) -> Vec<&Account> {
        let mut v = vec![&self.master];
        v.extend(self.trustees.iter());
        v.extend(self.arbiters.iter());
        v.extend([&self.agent, &self.agent2, &self.customer]);
        v
    }

    /// Epoch 0 of a new conversation between carol and bob, created by carol at `T0 + 100`.
    pub fn first_epoch(&self, rng: &mut ChaCha20Rng) -> (VerifiedEpoch, EpochSecret) {
        let members = [self.customer.card.clone(), self.agent.card.clone()];
        let new = NewEpoch {
            conversation: ConversationId::random(rng),
            epoch: 0,
            members: &members,
            previous: None,
            now: T0 + 100,
        };
        EpochRecord::create(rng, &self.customer.keys, &self.policy, new).unwrap()
    }
}
