//! Which agents are online for the agent pick: on one node, its own connections; in a
//! cluster, the agents connected to any node, which each node publishes in the shared
//! database with an expiry (`ConversationLog::publish_presence`) and the pick reads in one
//! query for the org's agents (`ConversationLog::agents_present`).
//!
//! A node publishes at an agent's first connection and last disconnection (the hub wakes
//! its cluster task) and once per catch-up period; a node that crashes stops publishing and
//! its agents stop counting as online once their rows lapse. A database error at pick time
//! falls back to this node's own connections (logged): an open is never refused for it.

use std::{
    collections::{HashMap, HashSet},
    hash::Hash,
    time::Duration,
};

use sealdesk_protocol::keys::SigningPublicKey;
use tracing::warn;

use super::Service;

/// **Test-only**: when this variable is set, the node's reads of the cluster's presence fail
/// (`Service::agents_online`), as they do when the database cannot answer, so a test can see
/// the pick fall back to this node's connections. Never set it in production; a build without
/// the test hooks ignores it ([`crate::test_hooks`]).
pub const FAIL_PRESENCE_READS_ENV: &str = "SEALDESK_TEST_FAIL_PRESENCE_READS";

impl Service {
    /// Publishes the registered agents connected to this node as its whole list, each for
    /// `ttl` (an empty list withdraws them, as a node stopping cleanly does). Returns whether
    /// the engine took it; a failure is logged and counted, and the next period tries again.
    pub(crate) fn publish_presence(&self, ttl: Duration) -> bool {
        let agents: Vec<Vec<u8>> = self
            .hub
            .agents()
            .into_iter()
            .map(|(k, _)| k.to_bytes().to_vec())
            .collect();
        self.publish_agents(&agents, ttl)
    }

    /// Withdraws this node's agents from the cluster's presence (a node stopping cleanly).
    pub(crate) fn withdraw_presence(&self) -> bool {
        self.publish_agents(&[], Duration::ZERO)
    }

    fn publish_agents(&self, agents: &[Vec<u8>], ttl: Duration) -> bool {
        match self.convs.engine().publish_presence(agents, ttl) {
            Ok(()) => {
                self.metrics
                    .presence_agents
                    .set(i64::try_from(agents.len()).unwrap_or(i64::MAX));
                true
            }
            Err(e) => {
                self.metrics.presence_errors.inc();
                warn!(error = %e, agents = agents.len(), "publishing the agents connected here failed");
                false
            }
        }
    }

    /// Which of `agents` are online: connected to this node, or (in a cluster) published by
    /// any node and not lapsed. If the database cannot answer, this node's own connections
    /// (logged and counted): the pick then works as a single node's would.
    pub(super) fn agents_online(&self, agents: &[SigningPublicKey]) -> HashSet<SigningPublicKey> {
        let mut online: HashSet<SigningPublicKey> = agents
            .iter()
            .filter(|k| self.hub.is_online(k))
            .copied()
            .collect();
        let keys: Vec<Vec<u8>> = agents.iter().map(|k| k.to_bytes().to_vec()).collect();
        let read = if crate::test_hooks::var_os(FAIL_PRESENCE_READS_ENV).is_some() {
            Err(crate::Error::Storage {
                op: "agents_present",
                detail: "failed on purpose (test only)".to_owned(),
            })
        } else {
            self.convs.engine().agents_present(&keys)
        };
        match read {
            Ok(Some(present)) => {
                let present: HashSet<Vec<u8>> = present.into_iter().collect();
                online.extend(
                    agents
                        .iter()
                        .filter(|k| present.contains(k.to_bytes().as_slice())),
                );
            }
            Ok(None) => {}
            Err(e) => {
                self.metrics.presence_errors.inc();
                warn!(
                    error = %e,
                    "reading which agents are online in the cluster failed; picking by this \
                     node's connections"
                );
            }
        }
        online
    }
}

/// The agent to assign, by index in `agents`: the least-loaded of those `online`, else the
/// least-loaded of all (an agent with no entry in `load` has none); ties go to the first
/// listed. `None` only if `agents` is empty.
pub(super) fn pick<K: Eq + Hash>(
    agents: &[K],
    online: &HashSet<K>,
    load: &HashMap<K, usize>,
) -> Option<usize> {
    agents
        .iter()
        .enumerate()
        .min_by_key(|(i, k)| (!online.contains(*k), load.get(*k).copied().unwrap_or(0), *i))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn loads(pairs: &[(&'static str, usize)]) -> HashMap<&'static str, usize> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn an_online_agent_is_picked_before_a_less_loaded_offline_one() {
        let agents = ["x", "y"];
        let load = loads(&[("x", 5), ("y", 0)]);
        assert_eq!(pick(&agents, &HashSet::from(["x"]), &load), Some(0));
        // Nobody online: by load alone.
        assert_eq!(pick(&agents, &HashSet::new(), &load), Some(1));
    }

    #[test]
    fn among_online_agents_the_least_loaded_is_picked_and_ties_go_to_the_first() {
        let agents = ["x", "y", "z"];
        let load = loads(&[("x", 3), ("y", 1), ("z", 1)]);
        let online = HashSet::from(["x", "y", "z"]);
        assert_eq!(pick(&agents, &online, &load), Some(1));
        // An agent with no conversations counts none.
        assert_eq!(
            pick(&["x", "w"], &HashSet::from(["x", "w"]), &load),
            Some(1)
        );
        assert_eq!(pick(&agents, &HashSet::from(["z", "x"]), &load), Some(2));
    }

    #[test]
    fn an_online_key_that_is_not_one_of_the_orgs_agents_changes_nothing() {
        let agents = ["x", "y"];
        let load = loads(&[("x", 2), ("y", 1)]);
        assert_eq!(pick(&agents, &HashSet::from(["other"]), &load), Some(1));
        assert_eq!(pick::<&str>(&[], &HashSet::new(), &load), None);
    }
}
