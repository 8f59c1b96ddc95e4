//! The directory: accounts (names and cards), org policies, agent certificates, and the
//! verified-policy cache ([`Policies`]).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use sealdesk_protocol::{
    card::{IdentityCard, Role},
    keys::SigningPublicKey,
    policy::{AgentCertificate, OrgPolicy, VerifiedPolicy},
    wire::{ErrorCode, Response},
};
use tracing::info;

use super::{
    Caller, Reject, Reply, Service, dec, enc,
    keys::{agent_org_key, certificate_key, master_org_key, org_prefix, policy_key},
    lock, reject,
};
use crate::store::{Batch, Collection, Store};

/// Most verified policies [`Policies`] keeps (the oldest is dropped first). A policy is
/// small, so this bounds the cache to a few megabytes whatever clients publish.
const MAX_CACHED_POLICIES: usize = 1024;

/// Org policies as stored, verified once each. A stored policy version is never overwritten
/// or deleted (a new one must have a higher version), so the outcome of verifying the bytes
/// under one key never changes: it is cached by key. Only policies that verify are cached;
/// one that does not is refused again on every read, as before.
pub(super) struct Policies {
    store: Arc<dyn Store>,
    /// A std Mutex: held for map updates only.
    cache: Mutex<PolicyCache>,
}

#[derive(Default)]
struct PolicyCache {
    verified: HashMap<Vec<u8>, VerifiedPolicy>,
    /// Keys in the order they were cached, for eviction.
    order: VecDeque<Vec<u8>>,
}

impl PolicyCache {
    /// Keeps `policy`, verified from the bytes under `key`, dropping the oldest entry if the
    /// cache is full.
    fn insert(&mut self, key: Vec<u8>, policy: VerifiedPolicy) {
        if self.verified.contains_key(&key) {
            return;
        }
        if self.order.len() >= MAX_CACHED_POLICIES
            && let Some(oldest) = self.order.pop_front()
        {
            self.verified.remove(&oldest);
        }
        self.order.push_back(key.clone());
        self.verified.insert(key, policy);
    }
}

impl Policies {
    /// An empty cache over `store`.
    pub(super) fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cache: Mutex::new(PolicyCache::default()),
        }
    }

    /// Version `version` of `org`'s policy (the newest if `None`), verified.
    pub(super) fn get(
        &self,
        org: &str,
        version: Option<u32>,
    ) -> Result<Option<VerifiedPolicy>, Reject> {
        let (key, bytes) = match version {
            Some(v) => {
                let key = policy_key(org, v);
                if let Some(p) = self.cached(&key)? {
                    return Ok(Some(p));
                }
                match self.store.get(Collection::Policies, &key)? {
                    Some(b) => (key, b),
                    None => return Ok(None),
                }
            }
            None => match self.store.last(Collection::Policies, &org_prefix(org))? {
                Some((key, b)) => {
                    if let Some(p) = self.cached(&key)? {
                        return Ok(Some(p));
                    }
                    (key, b)
                }
                None => return Ok(None),
            },
        };
        let p: OrgPolicy = dec(&bytes, "policy")?;
        let verified = p.verify()?;
        lock(&self.cache)?.insert(key, verified.clone());
        Ok(Some(verified))
    }

    /// `org`'s newest policy, verified.
    ///
    /// # Errors
    /// `NotFound` if the org has none.
    pub(super) fn current(&self, org: &str) -> Result<VerifiedPolicy, Reject> {
        self.get(org, None)?
            .ok_or_else(|| Reject::new(ErrorCode::NotFound, format!("no org named {org:?}")))
    }

    /// How many verified policies are cached (for tests).
    #[cfg(test)]
    pub(super) fn cached_len(&self) -> usize {
        lock(&self.cache).map_or(0, |c| c.verified.len())
    }

    fn cached(&self, key: &[u8]) -> Result<Option<VerifiedPolicy>, Reject> {
        Ok(lock(&self.cache)?.verified.get(key).cloned())
    }
}

impl Service {
    /// Registers `card` (its name and keys), or finds it registered already; returns the
    /// token the account's requests on connection `connection` are served with.
    pub(super) async fn register(
        &self,
        card: &IdentityCard,
        connection: u64,
    ) -> Result<Caller, Reject> {
        let card = card.clone().verify()?;
        {
            let _w = lock(&self.writes)?;
            if let Some(owner) = self.store.get(Collection::Names, card.name.as_bytes())?
                && owner.as_slice() != card.signing_key.as_bytes()
            {
                return reject(
                    ErrorCode::NameTaken,
                    format!(
                        "the name {:?} is taken on this relay; pick another",
                        card.name
                    ),
                );
            }
            if let Some(existing) = self.card_by_key(&card.signing_key)?
                && existing != *card.card()
            {
                return reject(
                    ErrorCode::KeyRegistered,
                    "this key is registered with another card",
                );
            }
            let mut b = Batch::new();
            b.put(
                Collection::Names,
                card.name.as_bytes(),
                card.signing_key.as_bytes(),
            );
            b.put(
                Collection::Cards,
                card.signing_key.as_bytes(),
                &enc(card.card())?,
            );
            self.store.apply(b)?;
        }
        self.commit.durable().await?;
        info!(role = %card.role, "account registered");
        Ok(Caller {
            card: card.into_card(),
            connection,
            _registered: (),
        })
    }

    pub(super) fn card_by_key(
        &self,
        key: &SigningPublicKey,
    ) -> Result<Option<IdentityCard>, Reject> {
        self.store
            .get(Collection::Cards, key.as_bytes())?
            .map(|b| dec(&b, "card"))
            .transpose()
    }

    pub(super) fn card_by_name(&self, name: &str) -> Result<Option<IdentityCard>, Reject> {
        match self.store.get(Collection::Names, name.as_bytes())? {
            None => Ok(None),
            Some(k) => {
                let key = SigningPublicKey::try_from(k.as_slice())?;
                self.card_by_key(&key)
            }
        }
    }

    pub(super) fn get_card(&self, name: &str) -> Reply {
        match self.card_by_name(name)? {
            Some(c) => Ok(Response::Card(c)),
            None => reject(ErrorCode::NotFound, format!("no account named {name:?}")),
        }
    }

    pub(super) async fn publish_policy(&self, caller: &Caller, p: OrgPolicy) -> Reply {
        let p = p.verify()?;
        // The policy's master card must be the caller's own registered master card: a key
        // registered as an agent cannot mint itself a master card for a new org.
        if p.master_key() != caller.key()
            || caller.card.role != Role::Master
            || p.master != caller.card
        {
            return reject(
                ErrorCode::Forbidden,
                "only a registered master account may publish a policy, and only one that names \
                 its own card as master",
            );
        }
        {
            let _w = lock(&self.writes)?;
            if let Some(cur) = self.policies.get(&p.org, None)? {
                if cur.master_key() != p.master_key() {
                    return reject(
                        ErrorCode::Forbidden,
                        "this org belongs to another master key",
                    );
                }
                if p.version <= cur.version {
                    return reject(
                        ErrorCode::StalePolicy,
                        format!("policy version must be above {}", cur.version),
                    );
                }
            }
            // The master index entry first and in the same batch: the index holds every
            // stored policy's master, so a master's sign-in finds its orgs by key
            // (`quota_push`). It is a hint; the reader checks the current policy.
            let mut b = Batch::new();
            b.put(
                Collection::MasterOrgs,
                &master_org_key(&p.master_key(), &p.org),
                &[],
            );
            b.put(
                Collection::Policies,
                &policy_key(&p.org, p.version),
                &enc(p.policy())?,
            );
            self.store.apply(b)?;
        }
        self.commit.durable().await?;
        info!(org = %p.org, version = p.version, "policy published");
        Ok(Response::Ok)
    }

    pub(super) fn get_policy(&self, org: &str, version: Option<u32>) -> Reply {
        match self.policies.get(org, version)? {
            Some(p) => Ok(Response::Policy(p.policy().clone())),
            None => reject(ErrorCode::NotFound, format!("no policy for org {org:?}")),
        }
    }

    pub(super) async fn publish_certificate(&self, caller: &Caller, c: AgentCertificate) -> Reply {
        let policy = self.policies.current(&c.org)?;
        if policy.master_key() != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "only the org's master may certify agents",
            );
        }
        let agent = c.verify(&policy, self.clock.now())?;
        // The index entry (agent name → org) first and in the same batch: the index holds
        // every stored certificate, so an agent's sign-in finds its orgs by name
        // (`quota_push`). It is a hint; the reader verifies the certificate.
        let mut b = Batch::new();
        b.put(
            Collection::AgentOrgs,
            &agent_org_key(&agent.name, &c.org),
            &[],
        );
        b.put(
            Collection::Certificates,
            &certificate_key(&c.org, &agent.name),
            &enc(&c)?,
        );
        self.store.apply(b)?;
        self.commit.durable().await?;
        Ok(Response::Ok)
    }

    pub(super) fn certificate(
        &self,
        org: &str,
        agent: &str,
    ) -> Result<Option<AgentCertificate>, Reject> {
        let key = certificate_key(org, agent);
        self.store
            .get(Collection::Certificates, &key)?
            .map(|b| dec(&b, "certificate"))
            .transpose()
    }

    pub(super) fn get_certificate(&self, org: &str, agent: &str) -> Reply {
        match self.certificate(org, agent)? {
            Some(c) => Ok(Response::Certificate(c)),
            None => reject(
                ErrorCode::NotFound,
                format!("no certificate for {agent:?} in {org:?}"),
            ),
        }
    }

    /// Certified agents of an org with their current load.
    pub(super) fn agents(
        &self,
        policy: &VerifiedPolicy,
    ) -> Result<Vec<(IdentityCard, AgentCertificate)>, Reject> {
        let mut out = Vec::new();
        let t = self.clock.now();
        for (_, v) in self
            .store
            .scan_prefix(Collection::Certificates, &org_prefix(&policy.org))?
        {
            let cert: AgentCertificate = dec(&v, "certificate")?;
            if let Ok(card) = cert.verify(policy, t) {
                // The agent must still be registered with the same card.
                if self.card_by_key(&card.signing_key)?.as_ref() == Some(card.card()) {
                    out.push((card.into_card(), cert));
                }
            }
        }
        Ok(out)
    }

    /// Whether `who` is the master of `org` under its current policy. The master may read its
    /// org's ciphertext (useless to it without a release), never write to a conversation.
    pub(super) fn is_master_of(&self, who: &SigningPublicKey, org: &str) -> Result<bool, Reject> {
        Ok(self
            .policies
            .get(org, None)?
            .is_some_and(|p| p.master_key() == *who))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use sealdesk_protocol::{card::VerifiedCard, keys::IdentityKeys, policy::PolicyParams};

    use super::*;
    use crate::store::MemoryStore;

    const NOW: u64 = 1_700_000_000;

    fn party(name: &str, role: Role) -> (IdentityKeys, VerifiedCard) {
        let keys = IdentityKeys::generate(&mut rand::rng());
        let card = IdentityCard::issue(&keys, name, role, NOW).unwrap();
        (keys, card)
    }

    /// Versions 1..=`n` of one org's policy, as its master issues them.
    fn versions(n: u32) -> Vec<VerifiedPolicy> {
        let (master, master_card) = party("boss", Role::Master);
        let (_, trustee) = party("tru", Role::Trustee);
        let (_, arbiter) = party("arb", Role::Arbiter);
        (1..=n)
            .map(|version| {
                let mut params = PolicyParams::new(
                    "acme",
                    vec![trustee.card().clone()],
                    1,
                    vec![arbiter.card().clone()],
                    1,
                );
                params.version = version;
                OrgPolicy::issue(&master, &master_card, params, NOW).unwrap()
            })
            .collect()
    }

    fn store_policy(store: &dyn Store, p: &OrgPolicy) {
        store
            .put(
                Collection::Policies,
                &policy_key(&p.org, p.version),
                &enc(p).unwrap(),
            )
            .unwrap();
    }

    #[test]
    fn each_stored_version_is_verified_once_and_answers_as_before() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let v = versions(3);
        store_policy(store.as_ref(), v[0].policy());
        store_policy(store.as_ref(), v[1].policy());
        let policies = Policies::new(store.clone());
        for _ in 0..3 {
            assert_eq!(policies.get("acme", Some(1)).unwrap().as_ref(), Some(&v[0]));
            assert_eq!(policies.get("acme", None).unwrap().as_ref(), Some(&v[1]));
            assert_eq!(policies.current("acme").unwrap(), v[1]);
        }
        assert_eq!(policies.cached_len(), 2, "one entry per stored version");
        assert_eq!(policies.get("acme", Some(3)).unwrap(), None);
        assert_eq!(policies.get("other", None).unwrap(), None);
        assert!(matches!(
            policies.current("other"),
            Err(Reject {
                code: ErrorCode::NotFound,
                ..
            })
        ));
        // A version published later is the current one at once.
        store_policy(store.as_ref(), v[2].policy());
        assert_eq!(policies.get("acme", None).unwrap().as_ref(), Some(&v[2]));
    }

    #[test]
    fn a_stored_policy_that_does_not_verify_is_refused_every_time_and_never_cached() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut forged = versions(1)[0].policy().clone();
        forged.retention_secs += 1;
        store_policy(store.as_ref(), &forged);
        let policies = Policies::new(store);
        for version in [Some(1), None] {
            for _ in 0..2 {
                assert!(matches!(
                    policies.get("acme", version),
                    Err(Reject {
                        code: ErrorCode::BadRequest,
                        ..
                    })
                ));
            }
        }
        assert_eq!(policies.cached_len(), 0);
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_oldest() {
        let p = versions(1).remove(0);
        let mut cache = PolicyCache::default();
        let total = MAX_CACHED_POLICIES as u32 + 10;
        for version in 0..total {
            cache.insert(policy_key("acme", version), p.clone());
        }
        assert_eq!(cache.verified.len(), MAX_CACHED_POLICIES);
        assert_eq!(cache.order.len(), MAX_CACHED_POLICIES);
        assert!(!cache.verified.contains_key(&policy_key("acme", 9)));
        assert!(cache.verified.contains_key(&policy_key("acme", 10)));
        assert!(cache.verified.contains_key(&policy_key("acme", total - 1)));
    }
}
