//! Live delivery: which connections belong to which account, and pushing frames to them.
//!
//! This is the seam for cluster mode (docs/design.md §8): a second implementation would publish to
//! a message bus instead of a local map. Pushes go through each connection's bounded outbox; a
//! connection that cannot keep up is closed as a slow consumer rather than buffered.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use bytes::Bytes;
use sealdesk_protocol::keys::SigningPublicKey;

use crate::connection::Outbox;

/// Online connections by account.
#[derive(Default)]
pub(crate) struct Hub {
    // A std Mutex: held only to clone or edit a small map, never across an await.
    online: Mutex<HashMap<SigningPublicKey, Vec<Outbox>>>,
    /// The connections that asked to be told when the audit log grows (`watch_audit`), by
    /// connection id.
    audit_watchers: Mutex<HashMap<u64, Outbox>>,
    /// The connections that asked to be told when an agent of their conversations is
    /// re-certified for a new key (`watch_agent_keys`), by connection id.
    key_watchers: Mutex<HashSet<u64>>,
    /// The agent keys connected here whose session was registered (at authentication or by
    /// `Register`), with the name their card holds: re-checked against the name's current key
    /// when the cluster's wake-up listener reconnects (`service::cluster`).
    agents: Mutex<HashMap<SigningPublicKey, String>>,
    /// Woken when an agent key's first connection here is noted or its last one leaves: in a
    /// cluster, the node then publishes its agents at once rather than at its next period
    /// (`relay::cluster`). A `Notify` holds at most one permit, so changes while a
    /// publication runs coalesce into the next one.
    agents_changed: tokio::sync::Notify,
}

impl Hub {
    pub fn join(&self, who: SigningPublicKey, outbox: Outbox) {
        if let Ok(mut m) = self.online.lock() {
            m.entry(who).or_default().push(outbox);
        }
    }

    pub fn leave(&self, who: &SigningPublicKey, id: u64) {
        if let Ok(mut m) = self.online.lock()
            && let Some(v) = m.get_mut(who)
        {
            v.retain(|o| o.id() != id);
            if v.is_empty() {
                m.remove(who);
                if let Ok(mut a) = self.agents.lock()
                    && a.remove(who).is_some()
                {
                    self.agents_changed.notify_one();
                }
            }
        }
        if let Ok(mut w) = self.audit_watchers.lock() {
            w.remove(&id);
        }
        if let Ok(mut w) = self.key_watchers.lock() {
            w.remove(&id);
        }
    }

    /// Notes that `who`, connected here, is a registered agent named `name` (until its last
    /// connection leaves).
    pub fn note_agent(&self, who: SigningPublicKey, name: &str) {
        if let Ok(mut a) = self.agents.lock()
            && a.insert(who, name.to_owned()).is_none()
        {
            self.agents_changed.notify_one();
        }
    }

    /// Returns when an agent key's first connection here was noted or its last one left since
    /// the last call returned (at once if that happened meanwhile).
    pub async fn agents_changed(&self) {
        self.agents_changed.notified().await;
    }

    /// The registered agents connected here, with their names ([`Self::note_agent`]).
    pub fn agents(&self) -> Vec<(SigningPublicKey, String)> {
        self.agents
            .lock()
            .map(|a| a.iter().map(|(k, n)| (*k, n.clone())).collect())
            .unwrap_or_default()
    }

    /// Tells this connection (until it leaves) when an agent of its account's conversations is
    /// re-certified for a new key.
    pub fn watch_agent_keys(&self, id: u64) {
        if let Ok(mut w) = self.key_watchers.lock() {
            w.insert(id);
        }
    }

    /// Pushes an encoded `agent_key_changed` frame to the connections of `who` that asked for
    /// it (`watch_agent_keys`); the others never see it. Returns how many took it.
    pub fn push_key_watchers(&self, who: &SigningPublicKey, frame: &Bytes) -> usize {
        let watching = self
            .key_watchers
            .lock()
            .map(|w| w.clone())
            .unwrap_or_default();
        let targets = self.connections(who);
        targets
            .iter()
            .filter(|o| watching.contains(&o.id()))
            .filter(|o| o.try_push(frame.clone()).is_ok())
            .count()
    }

    /// Tells this connection (until it leaves) when the audit log grows.
    pub fn watch_audit(&self, outbox: Outbox) {
        if let Ok(mut w) = self.audit_watchers.lock() {
            w.insert(outbox.id(), outbox);
        }
    }

    /// Whether any connection here watches the audit log (another node's append is read only
    /// then).
    pub fn audit_watched(&self) -> bool {
        self.audit_watchers.lock().is_ok_and(|w| !w.is_empty())
    }

    /// Pushes an encoded `audit_grew` frame to every connection watching the audit log.
    pub fn push_audit_watchers(&self, frame: &Bytes) {
        let targets: Vec<Outbox> = self
            .audit_watchers
            .lock()
            .map(|w| w.values().cloned().collect())
            .unwrap_or_default();
        for o in &targets {
            let _ = o.try_push(frame.clone());
        }
    }

    /// The open connections of `who` on this node.
    fn connections(&self, who: &SigningPublicKey) -> Vec<Outbox> {
        self.online
            .lock()
            .map(|m| m.get(who).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    pub fn is_online(&self, who: &SigningPublicKey) -> bool {
        self.online
            .lock()
            .map(|m| m.contains_key(who))
            .unwrap_or(false)
    }

    /// Closes every connection of `who` with `reason` (a key that no longer acts for its
    /// name); returns how many were open. `who` is no longer noted as a registered agent here
    /// ([`Self::note_agent`]) from this instant, though its closed connections leave only once
    /// their close handshake ends: a connection it opens meanwhile (unregistered now) must not
    /// be taken for one of them by a later re-check of agent keys, and closed too. A
    /// connection that signs in registered notes it again.
    pub fn close_all(
        &self,
        who: &SigningPublicKey,
        reason: crate::connection::CloseReason,
    ) -> usize {
        let targets = self.connections(who);
        for o in &targets {
            o.close(reason);
        }
        if let Ok(mut a) = self.agents.lock()
            && a.remove(who).is_some()
        {
            self.agents_changed.notify_one();
        }
        targets.len()
    }

    /// Closes the connections of `who` with `reason`, as [`Self::close_all`] does, but only if
    /// `who` is noted as a registered agent here at this instant — checked and forgotten under
    /// one lock. A re-check of agent keys works from a list read before its store reads; if
    /// another close (one a node forwarded) forgot the key meanwhile, a connection the key
    /// opened since is unregistered, refused everything, and must not be closed by the stale
    /// list. Returns how many connections were closed, `None` if `who` was not noted.
    pub fn close_agent(
        &self,
        who: &SigningPublicKey,
        reason: crate::connection::CloseReason,
    ) -> Option<usize> {
        let noted = self
            .agents
            .lock()
            .map(|mut a| a.remove(who).is_some())
            .unwrap_or(false);
        if !noted {
            return None;
        }
        self.agents_changed.notify_one();
        let targets = self.connections(who);
        for o in &targets {
            o.close(reason);
        }
        Some(targets.len())
    }

    /// Pushes an encoded frame to every connection of `who`; returns how many took it.
    pub fn push(&self, who: &SigningPublicKey, frame: &Bytes) -> usize {
        let targets = self.connections(who);
        targets
            .iter()
            .filter(|o| o.try_push(frame.clone()).is_ok())
            .count()
    }

    /// Pushes an encoded frame to every connection of `who` but connection `skip` (the one
    /// whose request caused it); returns how many took it.
    pub fn push_except(&self, who: &SigningPublicKey, frame: &Bytes, skip: u64) -> usize {
        let targets = self.connections(who);
        targets
            .iter()
            .filter(|o| o.id() != skip)
            .filter(|o| o.try_push(frame.clone()).is_ok())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use sealdesk_protocol::keys::IdentityKeys;

    use super::*;
    use crate::connection::CloseReason;

    const REPLACED: CloseReason = CloseReason::Application {
        code: crate::relay::session_codes::CLOSE_KEY_REPLACED,
        reason: "re-certified",
    };

    fn key(seed: u8) -> SigningPublicKey {
        IdentityKeys::from_secret_bytes(&[seed; 64]).signing_public()
    }

    /// A re-check of agent keys read the list, then a forwarded close closed the agent's
    /// session and forgot the key, then the key opened a new (unregistered) session before the
    /// old one left: the stale re-check closes nothing.
    #[test]
    fn a_stale_recheck_leaves_a_session_opened_after_the_close() {
        let hub = Hub::default();
        let old = key(1);
        let lost = Outbox::detached(1);
        hub.join(old, lost.clone());
        hub.note_agent(old, "alice");
        let listed = hub.agents();
        assert_eq!(listed.len(), 1);

        assert_eq!(hub.close_all(&old, REPLACED), 1);
        let again = Outbox::detached(2);
        hub.join(old, again.clone());

        assert_eq!(hub.close_agent(&listed[0].0, REPLACED), None);
        assert!(
            again.closed_with().is_none(),
            "the session opened after the close was closed"
        );
        assert!(lost.closed_with().is_some());
    }

    /// A key still noted as a registered agent is closed, all its sessions, and forgotten.
    #[test]
    fn a_recheck_closes_a_noted_agent_once() {
        let hub = Hub::default();
        let (old, other) = (key(1), key(2));
        let (one, two, bystander) = (
            Outbox::detached(1),
            Outbox::detached(2),
            Outbox::detached(3),
        );
        hub.join(old, one.clone());
        hub.join(old, two.clone());
        hub.join(other, bystander.clone());
        hub.note_agent(old, "alice");
        hub.note_agent(other, "bob");

        assert_eq!(hub.close_agent(&old, REPLACED), Some(2));
        assert!(one.closed_with().is_some() && two.closed_with().is_some());
        assert!(bystander.closed_with().is_none());
        assert_eq!(hub.agents().len(), 1);
        assert_eq!(hub.close_agent(&old, REPLACED), None);
    }
}
