//! The org index: which orgs an account may belong to, found by the account instead of by a
//! walk over every org — agent name → org ([`Collection::AgentOrgs`], one entry per stored
//! certificate) and master key → org ([`Collection::MasterOrgs`], one entry per stored policy).
//!
//! The index is a **hint**, never an answer. An entry is written in the same batch as its
//! certificate or policy, before it (`directory`), so the index holds every stored one; it
//! is never deleted, so an entry may outlive what made it true (a master key replaced in a
//! later policy version, a name re-certified for another key). Whoever reads it checks each
//! org it names against the org's stored certificate and current policy
//! ([`Service::certifies`], [`Service::is_master_of`]), exactly as without it. A stale or
//! forged entry therefore costs one check and concerns no one.
//!
//! Stores written before the index existed hold certificates and policies without entries:
//! [`fill_org_index`] indexes them once, at start, then sets [`ORG_INDEX_FILLED`]. Filling
//! only writes entries that are true of stored data and every write is a plain put of an
//! empty value, so it is idempotent, and two cluster nodes filling it at once write the same
//! entries; the marker is set after every entry is durable, so a start interrupted half-way
//! fills again.

use sealdesk_protocol::{card::IdentityCard, policy::OrgPolicy, wire};
use tracing::{debug, info, warn};

use super::{
    Reject, Service,
    keys::{
        ORG_INDEX_FILLED, agent_org_key, agent_orgs_prefix, master_org_key, master_orgs_prefix,
    },
};
use crate::store::{Batch, Collection, Store};

/// Entries read (and, when filling, written) per page.
const PAGE: usize = 256;

/// Indexes the certificates and policies stored before the relay kept an index of them
/// (see the module docs), once: after it, [`ORG_INDEX_FILLED`] is set and later starts skip
/// it. One page of index entries is one batch, flushed before the next page is read, so a
/// store of any size is filled in bounded memory.
///
/// # Errors
///
/// Storage errors. An entry that does not parse (a key without its separator, a policy that
/// does not decode) is skipped with a warning: the index is a hint, and the relay refuses
/// such entries when it reads them anyway.
pub(super) fn fill_org_index(store: &dyn Store) -> crate::Result<()> {
    if store.get(Collection::Meta, ORG_INDEX_FILLED)?.is_some() {
        return Ok(());
    }
    let agents = fill_from(store, Collection::Certificates, |key, _| {
        // Keys are org ‖ 0 ‖ agent (`keys::certificate_key`).
        let split = key.iter().position(|b| *b == 0)?;
        let org = std::str::from_utf8(&key[..split]).ok()?;
        let agent = std::str::from_utf8(&key[split + 1..]).ok()?;
        Some((Collection::AgentOrgs, agent_org_key(agent, org)))
    })?;
    let masters = fill_from(store, Collection::Policies, |key, value| {
        // Keys are org ‖ 0 ‖ version (4 bytes, `keys::policy_key`).
        let split = key.len().checked_sub(5).filter(|at| key[*at] == 0)?;
        let org = std::str::from_utf8(&key[..split]).ok()?;
        let policy: OrgPolicy = wire::from_cbor(value, "policy").ok()?;
        Some((
            Collection::MasterOrgs,
            master_org_key(&policy.master.signing_key, org),
        ))
    })?;
    store.put(Collection::Meta, ORG_INDEX_FILLED, b"1")?;
    store.flush()?;
    info!(agents, masters, "org index filled");
    Ok(())
}

/// Puts the index entry `entry` gives for each entry of `source`, a page at a time; returns
/// how many were written.
fn fill_from(
    store: &dyn Store,
    source: Collection,
    entry: impl Fn(&[u8], &[u8]) -> Option<(Collection, Vec<u8>)>,
) -> crate::Result<usize> {
    let mut start = Vec::new();
    let mut written = 0usize;
    loop {
        let page = store.range_from(source, &start, PAGE)?;
        let Some((last, _)) = page.last() else {
            return Ok(written);
        };
        start = last.clone();
        start.push(0);
        let mut batch = Batch::new();
        for (key, value) in &page {
            match entry(key, value) {
                Some((collection, k)) => {
                    batch.put(collection, &k, &[]);
                }
                None => warn!(
                    collection = source.name(),
                    "a stored entry that does not parse left out of the org index"
                ),
            }
        }
        written += batch.len();
        store.apply(batch)?;
        store.flush()?;
    }
}

impl Service {
    /// The orgs whose current policy certifies `agent` now, among those the index names for
    /// its name (see the module docs), each with what `keep` said of it: `keep` is asked
    /// first (`None`: the caller has no use for the org, which then costs no check), then
    /// [`Self::certifies`]. An org whose check fails
    /// on a storage or decoding error is left out (logged).
    ///
    /// # Errors
    ///
    /// Storage errors while reading the index.
    pub(super) fn certifying_orgs<T>(
        &self,
        agent: &IdentityCard,
        mut keep: impl FnMut(&str) -> Option<T>,
    ) -> Result<Vec<(String, T)>, Reject> {
        let mut out = Vec::new();
        let prefix = agent_orgs_prefix(&agent.name);
        for org in self.indexed_orgs(Collection::AgentOrgs, &prefix)? {
            let Some(kept) = keep(&org) else {
                continue;
            };
            match self.certifies(&org, agent) {
                Ok(true) => out.push((org, kept)),
                Ok(false) => debug!(org, "an org index entry that no certificate bears out"),
                Err(e) => debug!(org, "an agent's org not checked: {}", e.message),
            }
        }
        Ok(out)
    }

    /// The orgs whose current policy has `master` as its master, among those the index names
    /// for its key: each checked by [`Self::is_master_of`]; `keep` is asked first, as in
    /// [`Self::certifying_orgs`].
    ///
    /// # Errors
    ///
    /// Storage errors while reading the index.
    pub(super) fn mastered_orgs<T>(
        &self,
        master: &IdentityCard,
        mut keep: impl FnMut(&str) -> Option<T>,
    ) -> Result<Vec<(String, T)>, Reject> {
        let mut out = Vec::new();
        let key = master.signing_key;
        for org in self.indexed_orgs(Collection::MasterOrgs, &master_orgs_prefix(&key))? {
            let Some(kept) = keep(&org) else {
                continue;
            };
            match self.is_master_of(&key, &org) {
                Ok(true) => out.push((org, kept)),
                Ok(false) => debug!(
                    org,
                    "an org index entry that the current policy does not bear out"
                ),
                Err(e) => debug!(org, "a master's org not checked: {}", e.message),
            }
        }
        Ok(out)
    }

    /// Whether `org`'s stored certificate for `agent`'s name verifies under the org's current
    /// policy, now, and certifies `agent`'s key (a certificate for the name's earlier key does
    /// not).
    ///
    /// # Errors
    ///
    /// Storage errors; a stored certificate or policy that does not decode.
    pub(super) fn certifies(&self, org: &str, agent: &IdentityCard) -> Result<bool, Reject> {
        let Some(policy) = self.policies.get(org, None)? else {
            return Ok(false);
        };
        let Some(cert) = self.certificate(org, &agent.name)? else {
            return Ok(false);
        };
        Ok(cert
            .verify(&policy, self.clock.now())
            .is_ok_and(|card| card.signing_key == agent.signing_key))
    }

    /// The orgs named by the entries of `index` under `prefix` (`prefix ‖ org`), a page at a
    /// time. Entries whose org is not UTF-8 are skipped (no writer makes them).
    fn indexed_orgs(&self, index: Collection, prefix: &[u8]) -> Result<Vec<String>, Reject> {
        let mut orgs = Vec::new();
        let mut start = prefix.to_vec();
        loop {
            let page = self.store.scan_prefix_from(index, prefix, &start, PAGE)?;
            let full = page.len() == PAGE;
            for (key, _) in &page {
                if let Ok(org) = std::str::from_utf8(&key[prefix.len()..]) {
                    orgs.push(org.to_owned());
                }
            }
            match page.last() {
                Some((last, _)) if full => {
                    start = last.clone();
                    start.push(0);
                }
                _ => return Ok(orgs),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::{sync::Arc, time::Duration};

    use sealdesk_protocol::{
        card::{Role, VerifiedCard},
        keys::IdentityKeys,
        policy::{AgentCertificate, PolicyParams, VerifiedPolicy},
        wire::{Frame, Push},
    };

    use super::*;
    use crate::{
        clock::TestClock,
        commit::{Committer, GroupCommit},
        config::Limits,
        limits::Guard,
        metrics::Metrics,
        relay::service::{
            Caller, enc,
            keys::{certificate_key, org_bytes_key, policy_key},
        },
        store::{ConversationLog, Entries, MemoryStore, MeteredStore},
    };

    const NOW: u64 = 1_700_000_000;
    /// The relay's most stored bytes per org in these tests; [`NEAR`] is past its 80%.
    const MOST: u64 = 1_000;
    const NEAR: u64 = 900;

    struct Party {
        keys: IdentityKeys,
        card: VerifiedCard,
    }

    fn party(name: &str, role: Role) -> Party {
        let keys = IdentityKeys::generate(&mut rand::rng());
        let card = IdentityCard::issue(&keys, name, role, NOW).unwrap();
        Party { keys, card }
    }

    /// A service over `store` (counted: every store operation is one observation of
    /// `metrics.store_latency`), as a relay opens it.
    struct Relay {
        svc: Service,
        metrics: Arc<Metrics>,
        _committer: Committer,
    }

    fn open(store: &Arc<MemoryStore>) -> Relay {
        let metrics = Arc::new(Metrics::new());
        let engine: Arc<dyn ConversationLog> =
            Arc::new(MeteredStore::new(store.clone(), metrics.clone()));
        let (commit, committer) =
            GroupCommit::spawn(engine.clone(), 64, Duration::ZERO, metrics.clone()).unwrap();
        let limits = Limits {
            stored_bytes_per_org: MOST,
            ..Limits::default()
        };
        let svc = Service::open(
            engine,
            commit,
            metrics.clone(),
            TestClock::new(NOW).handle(),
            Guard::new(&limits, metrics.clone()),
            &mut rand::rng(),
        )
        .unwrap();
        Relay {
            svc,
            metrics,
            _committer: committer,
        }
    }

    /// `org`'s policy, version `version`, with `master` as its master.
    fn policy(org: &str, version: u32, master: &Party) -> VerifiedPolicy {
        let trustee = party(&format!("{org}-trustee"), Role::Trustee);
        let arbiter = party(&format!("{org}-arbiter"), Role::Arbiter);
        let mut params = PolicyParams::new(
            org,
            vec![trustee.card.card().clone()],
            1,
            vec![arbiter.card.card().clone()],
            1,
        );
        params.version = version;
        OrgPolicy::issue(&master.keys, &master.card, params, NOW).unwrap()
    }

    fn certificate(master: &Party, policy: &VerifiedPolicy, agent: &Party) -> AgentCertificate {
        AgentCertificate::issue(&master.keys, policy, &agent.card, NOW - 60, 86_400).unwrap()
    }

    async fn register(relay: &Relay, who: &Party) -> Caller {
        relay.svc.register(who.card.card(), 0).await.unwrap()
    }

    /// Publishes org `name` (master `master`) and certifies `agents` in it, through the
    /// service as the master's requests do.
    async fn publish_org(relay: &Relay, name: &str, master: &Party, agents: &[&Party]) {
        let m = register(relay, master).await;
        let p = policy(name, 1, master);
        relay
            .svc
            .publish_policy(&m, p.policy().clone())
            .await
            .unwrap();
        for a in agents {
            register(relay, a).await;
            relay
                .svc
                .publish_certificate(&m, certificate(master, &p, a))
                .await
                .unwrap();
        }
    }

    /// Sets `org`'s stored bytes, as the relay keeps them.
    fn set_org_bytes(store: &MemoryStore, org: &str, bytes: u64) {
        store
            .put(Collection::Meta, &org_bytes_key(org), &bytes.to_be_bytes())
            .unwrap();
    }

    /// The orgs `caller` is warned of at sign-in, and the store operations that took.
    fn warned(relay: &Relay, caller: &Caller) -> (Vec<String>, u64) {
        let before = relay.metrics.store_latency.count();
        let frames = relay.svc.quota_warnings_at_sign_in(caller);
        let ops = relay.metrics.store_latency.count() - before;
        let orgs = frames
            .into_iter()
            .filter_map(|f| match f {
                Frame::Push(Push::QuotaWarning { org: Some(o), .. }) => Some(o),
                _ => None,
            })
            .collect();
        (orgs, ops)
    }

    fn index(store: &MemoryStore) -> (Entries, Entries) {
        (
            store.scan_prefix(Collection::AgentOrgs, &[]).unwrap(),
            store.scan_prefix(Collection::MasterOrgs, &[]).unwrap(),
        )
    }

    #[tokio::test]
    async fn a_sign_in_reads_the_accounts_own_orgs_not_every_certificate() {
        let store = Arc::new(MemoryStore::new());
        let relay = open(&store);
        let (boss, ann) = (party("boss", Role::Master), party("ann", Role::Agent));
        publish_org(&relay, "acme", &boss, &[&ann]).await;
        // Another org certifies ann, below its warning; a third is near its quota and does
        // not certify her.
        let (bravo, cara) = (
            party("bravo-boss", Role::Master),
            party("cara", Role::Agent),
        );
        publish_org(&relay, "bravo", &bravo, &[&ann]).await;
        publish_org(
            &relay,
            "carrot",
            &party("carrot-boss", Role::Master),
            &[&cara],
        )
        .await;
        for org in ["acme", "carrot"] {
            set_org_bytes(&store, org, NEAR);
        }
        let (ann_c, boss_c) = (register(&relay, &ann).await, register(&relay, &boss).await);
        // The first sign-in loads the counts and verifies the policies once (cached after).
        warned(&relay, &ann_c);
        warned(&relay, &boss_c);
        let (orgs, agent_ops) = warned(&relay, &ann_c);
        assert_eq!(orgs, vec!["acme".to_owned()]);
        let (orgs, master_ops) = warned(&relay, &boss_c);
        assert_eq!(orgs, vec!["acme".to_owned()]);

        // 300 certificates of other orgs (more than a page of the walk this replaced), all
        // of orgs near their quota.
        for i in 0..3 {
            let org = format!("other{i}");
            let agents: Vec<Party> = (0..100)
                .map(|j| party(&format!("{org}-agent{j}"), Role::Agent))
                .collect();
            let refs: Vec<&Party> = agents.iter().collect();
            publish_org(
                &relay,
                &org,
                &party(&format!("{org}-boss"), Role::Master),
                &refs,
            )
            .await;
            set_org_bytes(&store, &org, NEAR);
        }
        assert!(
            store
                .scan_prefix(Collection::Certificates, &[])
                .unwrap()
                .len()
                > 300,
            "the other orgs' certificates are stored"
        );
        assert_eq!(
            warned(&relay, &ann_c),
            (vec!["acme".to_owned()], agent_ops),
            "the same warnings, for the same store reads"
        );
        assert_eq!(
            warned(&relay, &boss_c),
            (vec!["acme".to_owned()], master_ops)
        );
    }

    #[tokio::test]
    async fn an_index_entry_no_certificate_or_policy_bears_out_warns_of_nothing() {
        let store = Arc::new(MemoryStore::new());
        let relay = open(&store);
        let (boss, ann) = (party("boss", Role::Master), party("ann", Role::Agent));
        publish_org(&relay, "acme", &boss, &[&ann]).await;
        // An org that certifies another agent, and entries forged for ann and her master.
        let cara = party("cara", Role::Agent);
        publish_org(
            &relay,
            "carrot",
            &party("carrot-boss", Role::Master),
            &[&cara],
        )
        .await;
        // An org whose master certified a card of its own making under ann's name (the
        // index entry is written by the real path: the certificate verifies, for another key).
        let impostor = party("ann", Role::Agent);
        let decoy_boss = party("decoy-boss", Role::Master);
        let m = register(&relay, &decoy_boss).await;
        let decoy = policy("decoy", 1, &decoy_boss);
        relay
            .svc
            .publish_policy(&m, decoy.policy().clone())
            .await
            .unwrap();
        relay
            .svc
            .publish_certificate(&m, certificate(&decoy_boss, &decoy, &impostor))
            .await
            .unwrap();
        for org in ["acme", "carrot", "decoy", "ghost"] {
            set_org_bytes(&store, org, NEAR);
        }
        let boss_key = boss.card.signing_key;
        for org in ["carrot", "ghost"] {
            store
                .put(Collection::AgentOrgs, &agent_org_key("ann", org), &[])
                .unwrap();
            store
                .put(Collection::MasterOrgs, &master_org_key(&boss_key, org), &[])
                .unwrap();
        }
        let ann_entries = store
            .scan_prefix(Collection::AgentOrgs, &agent_orgs_prefix("ann"))
            .unwrap();
        assert_eq!(ann_entries.len(), 4, "ann: acme, carrot, decoy, ghost");
        let ann_c = register(&relay, &ann).await;
        assert_eq!(warned(&relay, &ann_c).0, vec!["acme".to_owned()]);
        let boss_c = register(&relay, &boss).await;
        assert_eq!(warned(&relay, &boss_c).0, vec!["acme".to_owned()]);
    }

    #[tokio::test]
    async fn a_master_key_replaced_in_a_later_policy_is_warned_no_more() {
        // Written as a store would hold them (the relay itself refuses a new master key for
        // an org): version 1 names `old`, version 2 `new`; the index names both.
        let store = Arc::new(MemoryStore::new());
        let (old, new) = (
            party("old-boss", Role::Master),
            party("new-boss", Role::Master),
        );
        for (version, master) in [(1, &old), (2, &new)] {
            let p = policy("acme", version, master);
            store
                .put(
                    Collection::Policies,
                    &policy_key("acme", version),
                    &enc(p.policy()).unwrap(),
                )
                .unwrap();
        }
        set_org_bytes(&store, "acme", NEAR);
        let relay = open(&store);
        assert_eq!(index(&store).1.len(), 2, "both masters indexed at start");
        let old_c = register(&relay, &old).await;
        assert_eq!(warned(&relay, &old_c).0, Vec::<String>::new());
        let new_c = register(&relay, &new).await;
        assert_eq!(warned(&relay, &new_c).0, vec!["acme".to_owned()]);
    }

    #[tokio::test]
    async fn a_store_without_the_index_is_indexed_once_at_start() {
        // Certificates and policies as a build before the index stored them: no entry, no
        // marker; and a certificate key that does not parse.
        let store = Arc::new(MemoryStore::new());
        let (boss, ann) = (party("boss", Role::Master), party("ann", Role::Agent));
        let p = policy("acme", 1, &boss);
        store
            .put(
                Collection::Policies,
                &policy_key("acme", 1),
                &enc(p.policy()).unwrap(),
            )
            .unwrap();
        store
            .put(
                Collection::Certificates,
                &certificate_key("acme", "ann"),
                &enc(&certificate(&boss, &p, &ann)).unwrap(),
            )
            .unwrap();
        store
            .put(Collection::Certificates, b"no-separator", b"x")
            .unwrap();
        set_org_bytes(&store, "acme", NEAR);
        let relay = open(&store);
        let ann_c = register(&relay, &ann).await;
        assert_eq!(warned(&relay, &ann_c).0, vec!["acme".to_owned()]);
        let boss_c = register(&relay, &boss).await;
        assert_eq!(warned(&relay, &boss_c).0, vec!["acme".to_owned()]);
        assert!(
            store
                .get(Collection::Meta, ORG_INDEX_FILLED)
                .unwrap()
                .is_some()
        );
        let filled = index(&store);
        assert_eq!((filled.0.len(), filled.1.len()), (1, 1));

        // Filled again (the marker lost), and by two at once: the same entries.
        store.delete(Collection::Meta, ORG_INDEX_FILLED).unwrap();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| fill_org_index(store.as_ref()).unwrap());
            }
        });
        assert_eq!(index(&store), filled);
        assert!(
            store
                .get(Collection::Meta, ORG_INDEX_FILLED)
                .unwrap()
                .is_some()
        );
    }
}
