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

/// One open connection of an account here.
struct Joined {
    outbox: Outbox,
    /// The agent name this connection acts for: set when it signed in registered as an agent
    /// (or registered as one, [`Hub::note_agent`]), taken when a close for this key and this
    /// name — the name was re-certified for another key — reaches it ([`Hub::close_agent`]). A
    /// per-connection fact, not a per-key one: a connection the same key opens after its name
    /// was re-certified away signs in unregistered, is refused everything, and has none; one
    /// that then registers the key under a new name has that name. So no close for the
    /// replaced name (a forwarded one arriving late, a re-check) takes either for one it was
    /// meant for.
    agent: Option<String>,
}

/// Whether any of an account's connections acts for an agent name.
fn acts(joined: &[Joined]) -> bool {
    joined.iter().any(|j| j.agent.is_some())
}

/// Online connections by account.
#[derive(Default)]
pub(crate) struct Hub {
    // A std Mutex: held only to clone or edit a small map, never across an await. The agent
    // names of the connections are kept here too, so a close checks and forgets them under
    // the lock that lists the connections it closes.
    online: Mutex<HashMap<SigningPublicKey, Vec<Joined>>>,
    /// The connections that asked to be told when the audit log grows (`watch_audit`), by
    /// connection id.
    audit_watchers: Mutex<HashMap<u64, Outbox>>,
    /// The connections that asked to be told when an agent of their conversations is
    /// re-certified for a new key (`watch_agent_keys`), by connection id.
    key_watchers: Mutex<HashSet<u64>>,
    /// Woken when an agent key's first acting connection here is noted or its last one leaves
    /// or is closed: in a cluster, the node then publishes its agents at once rather than at
    /// its next period (`relay::cluster`). A `Notify` holds at most one permit, so changes
    /// while a publication runs coalesce into the next one.
    agents_changed: tokio::sync::Notify,
}

impl Hub {
    /// Adds connection `outbox` of `who`; `agent` is the agent name it acts for if it signed
    /// in registered as an agent (re-checked against the name's current key in a cluster,
    /// `service::cluster`), `None` for an unregistered session or another role.
    pub fn join(&self, who: SigningPublicKey, outbox: Outbox, agent: Option<&str>) {
        if let Ok(mut m) = self.online.lock() {
            let joined = m.entry(who).or_default();
            let was = acts(joined);
            joined.push(Joined {
                outbox,
                agent: agent.map(str::to_owned),
            });
            if !was && acts(joined) {
                self.agents_changed.notify_one();
            }
        }
    }

    pub fn leave(&self, who: &SigningPublicKey, id: u64) {
        if let Ok(mut m) = self.online.lock()
            && let Some(v) = m.get_mut(who)
        {
            let was = acts(v);
            v.retain(|j| j.outbox.id() != id);
            if was && !acts(v) {
                self.agents_changed.notify_one();
            }
            if v.is_empty() {
                m.remove(who);
            }
        }
        if let Ok(mut w) = self.audit_watchers.lock() {
            w.remove(&id);
        }
        if let Ok(mut w) = self.key_watchers.lock() {
            w.remove(&id);
        }
    }

    /// Notes that connection `id` of `who`, which signed in unregistered, registered as an
    /// agent named `name` (until it leaves or a close for its key reaches it).
    pub fn note_agent(&self, who: &SigningPublicKey, id: u64, name: &str) {
        if let Ok(mut m) = self.online.lock()
            && let Some(v) = m.get_mut(who)
        {
            let was = acts(v);
            for j in v.iter_mut().filter(|j| j.outbox.id() == id) {
                j.agent = Some(name.to_owned());
            }
            if !was && acts(v) {
                self.agents_changed.notify_one();
            }
        }
    }

    /// Returns when an agent key's first connection here was noted or its last one left since
    /// the last call returned (at once if that happened meanwhile).
    pub async fn agents_changed(&self) {
        self.agents_changed.notified().await;
    }

    /// The agent keys connected here with a connection acting for a name, each with one of
    /// its names ([`Self::join`], [`Self::note_agent`]): what this node publishes as its agents
    /// (`service::presence`). Every name a key acts for: [`Self::acting`].
    pub fn agents(&self) -> Vec<(SigningPublicKey, String)> {
        self.online
            .lock()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((*k, v.iter().find_map(|j| j.agent.clone())?)))
                    .collect()
            })
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
            .map(|m| {
                m.get(who)
                    .map(|v| v.iter().map(|j| j.outbox.clone()).collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    pub fn is_online(&self, who: &SigningPublicKey) -> bool {
        self.online
            .lock()
            .map(|m| m.contains_key(who))
            .unwrap_or(false)
    }

    /// The agent names the connections here act for, each with its key: every distinct
    /// (key, name) pair ([`Self::join`], [`Self::note_agent`]), in no order. What a re-check of
    /// agent keys reads (`service::cluster`): a key may act for a name re-certified away in one
    /// connection and for a name it registered since in another, and each is checked on its
    /// own.
    pub fn acting(&self) -> Vec<(SigningPublicKey, String)> {
        self.online
            .lock()
            .map(|m| {
                let mut pairs: Vec<(SigningPublicKey, String)> = m
                    .iter()
                    .flat_map(|(k, v)| v.iter().filter_map(|j| Some((*k, j.agent.clone()?))))
                    .collect();
                pairs.sort_unstable_by(|x, y| {
                    x.0.as_bytes()
                        .cmp(y.0.as_bytes())
                        .then_with(|| x.1.cmp(&y.1))
                });
                pairs.dedup();
                pairs
            })
            .unwrap_or_default()
    }

    /// A page of [`Self::acting`] in key order: the pairs of the keys after `after` (from the
    /// first key if `None`), `limit` pairs, and the other names of the page's last key with
    /// them, so a key's names are never split between pages; and the key the next page starts
    /// after (`None` once the page reached the end). What a periodic re-check of agent keys
    /// reads (`service::cluster`).
    pub fn acting_after(
        &self,
        after: Option<SigningPublicKey>,
        limit: usize,
    ) -> (Vec<(SigningPublicKey, String)>, Option<SigningPublicKey>) {
        let acting = self.acting();
        let start = after.map_or(0, |a| {
            acting.partition_point(|(k, _)| k.as_bytes() <= a.as_bytes())
        });
        let rest = acting.get(start..).unwrap_or_default();
        let mut page: Vec<_> = rest.iter().take(limit).cloned().collect();
        let next = (page.len() == limit)
            .then(|| page.last().map(|(k, _)| *k))
            .flatten();
        if let Some(last) = next {
            let more = rest.get(page.len()..).unwrap_or_default();
            page.extend(more.iter().take_while(|(k, _)| *k == last).cloned());
        }
        (page, next)
    }

    /// Closes the connections of `who` that act for agent name `name` ([`Self::join`],
    /// [`Self::note_agent`]) with `reason` — the name was re-certified for another key — and
    /// forgets that they do; returns how many were closed. `name` is `None` only for a close
    /// forwarded by a node of the previous version, which names no name: then every
    /// connection of `who` acting for any name is closed, as that version did. The
    /// connections are chosen and their names forgotten under one lock, so each is closed
    /// once: the closed ones leave only once their close handshake ends, and a later close of
    /// the key for the name (a re-check that listed it before this close, a close another node
    /// forwarded) finds nothing of theirs.
    ///
    /// **Architecture Invariant:** a connection of `who` that does not act for `name` is never
    /// closed here. The key's connections that were registered for the name when it was
    /// re-certified away are the ones a lost device could act through. A connection the key
    /// opens after that signs in unregistered and is refused everything (`not_registered`),
    /// like any unregistered session; one that then registers the key under a new name nobody
    /// held acts for that name, legitimately. Neither is closed, whichever close — this
    /// node's, another node's forwarded one arriving late, a re-check of agent keys — reaches
    /// the node after it opened.
    pub fn close_agent(
        &self,
        who: &SigningPublicKey,
        name: Option<&str>,
        reason: crate::connection::CloseReason,
    ) -> usize {
        let targets: Vec<Outbox> = self
            .online
            .lock()
            .map(|mut m| {
                m.get_mut(who)
                    .map(|v| {
                        v.iter_mut()
                            .filter(|j| {
                                j.agent
                                    .as_deref()
                                    .is_some_and(|acts| name.is_none_or(|n| n == acts))
                            })
                            .filter_map(|j| j.agent.take().map(|_| j.outbox.clone()))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        if targets.is_empty() {
            return 0;
        }
        self.agents_changed.notify_one();
        for o in &targets {
            o.close(reason);
        }
        targets.len()
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

    /// The name the closes of these tests were re-certified away.
    const ALICE: Option<&str> = Some("alice");

    fn key(seed: u8) -> SigningPublicKey {
        IdentityKeys::from_secret_bytes(&[seed; 64]).signing_public()
    }

    /// The agent `old` signed in registered here as `alice` (connection 1), and the
    /// connection it opens after its name was re-certified away (connection 2, unregistered).
    fn registered_then_unregistered(hub: &Hub, old: SigningPublicKey) -> (Outbox, Outbox) {
        let (lost, again) = (Outbox::detached(1), Outbox::detached(2));
        hub.join(old, lost.clone(), Some("alice"));
        (lost, again)
    }

    /// A re-check of agent keys read the list, then a forwarded close closed the agent's
    /// session, then the key opened a new (unregistered) session before the old one left:
    /// the stale re-check closes nothing.
    #[test]
    fn a_stale_recheck_leaves_a_session_opened_after_a_forwarded_close() {
        let hub = Hub::default();
        let old = key(1);
        let (lost, again) = registered_then_unregistered(&hub, old);
        let listed = hub.agents();
        assert_eq!(listed, vec![(old, "alice".to_owned())]);

        assert_eq!(
            hub.close_agent(&old, ALICE, REPLACED),
            1,
            "the forwarded close"
        );
        hub.join(old, again.clone(), None);

        assert_eq!(
            hub.close_agent(&listed[0].0, Some(&listed[0].1), REPLACED),
            0,
            "the re-check"
        );
        assert!(
            again.closed_with().is_none(),
            "the session opened after the close was closed"
        );
        assert!(lost.closed_with().is_some());
    }

    /// The other order: a re-check closed the agent's session (its node missed the close,
    /// or had not had it yet), the key opened a new (unregistered) session, then the close
    /// another node forwarded arrives late: it closes nothing.
    #[test]
    fn a_late_forwarded_close_leaves_a_session_opened_after_a_recheck() {
        let hub = Hub::default();
        let old = key(1);
        let (lost, again) = registered_then_unregistered(&hub, old);

        assert_eq!(hub.close_agent(&old, ALICE, REPLACED), 1, "the re-check");
        hub.join(old, again.clone(), None);
        assert!(hub.agents().is_empty());

        assert_eq!(
            hub.close_agent(&old, ALICE, REPLACED),
            0,
            "the forwarded close"
        );
        assert!(
            again.closed_with().is_none(),
            "the session opened after the re-check was closed"
        );
        assert!(lost.closed_with().is_some());
    }

    /// The key opened its unregistered session while its registered one was still open, and
    /// then the first close arrives (forwarded, or a re-check): it closes the registered one
    /// only, and a second close finds nothing.
    #[test]
    fn a_close_takes_the_registered_sessions_and_leaves_the_unregistered_one() {
        let hub = Hub::default();
        let old = key(1);
        let (lost, again) = registered_then_unregistered(&hub, old);
        hub.join(old, again.clone(), None);

        assert_eq!(hub.close_agent(&old, ALICE, REPLACED), 1);
        assert!(lost.closed_with().is_some());
        assert!(
            again.closed_with().is_none(),
            "the unregistered session was closed"
        );
        assert_eq!(hub.close_agent(&old, ALICE, REPLACED), 0);
        assert!(again.closed_with().is_none());
    }

    /// A session that signed in unregistered and then registered as an agent acts for its
    /// name from then on: listed for re-checks, and closed when its key is re-certified away.
    #[test]
    fn a_session_that_registers_as_an_agent_is_closed_with_its_key() {
        let hub = Hub::default();
        let old = key(1);
        let (first, other) = (Outbox::detached(1), Outbox::detached(2));
        hub.join(old, first.clone(), None);
        hub.join(old, other.clone(), None);
        assert!(hub.agents().is_empty());

        hub.note_agent(&old, 1, "alice");
        assert_eq!(hub.agents(), vec![(old, "alice".to_owned())]);
        assert_eq!(hub.close_agent(&old, ALICE, REPLACED), 1);
        assert!(first.closed_with().is_some());
        assert!(other.closed_with().is_none());
    }

    /// Every session of a key acting for its name is closed, and the key forgotten; other
    /// keys' sessions are not touched.
    #[test]
    fn a_recheck_closes_a_noted_agent_once() {
        let hub = Hub::default();
        let (old, other) = (key(1), key(2));
        let (one, two, bystander) = (
            Outbox::detached(1),
            Outbox::detached(2),
            Outbox::detached(3),
        );
        hub.join(old, one.clone(), Some("alice"));
        hub.join(old, two.clone(), Some("alice"));
        hub.join(other, bystander.clone(), Some("bob"));

        assert_eq!(hub.close_agent(&old, ALICE, REPLACED), 2);
        assert!(one.closed_with().is_some() && two.closed_with().is_some());
        assert!(bystander.closed_with().is_none());
        assert_eq!(hub.agents(), vec![(other, "bob".to_owned())]);
        assert_eq!(hub.close_agent(&old, ALICE, REPLACED), 0);
    }

    /// The key's registered session for `alice` was closed (a re-check), the key then
    /// registered anew under a name nobody held (`alice-2`), and the close another node
    /// forwarded for `alice` arrives late: it closes nothing, and the key still acts for its
    /// new name.
    #[test]
    fn a_late_close_leaves_a_session_registered_under_a_new_name() {
        let hub = Hub::default();
        let old = key(1);
        let (lost, again) = registered_then_unregistered(&hub, old);
        assert_eq!(hub.close_agent(&old, ALICE, REPLACED), 1, "the re-check");
        hub.join(old, again.clone(), None);
        hub.note_agent(&old, 2, "alice-2");

        assert_eq!(hub.close_agent(&old, ALICE, REPLACED), 0, "the late close");
        assert!(
            again.closed_with().is_none(),
            "the session registered under a new name was closed"
        );
        assert!(lost.closed_with().is_some());
        assert_eq!(hub.acting(), vec![(old, "alice-2".to_owned())]);
    }

    /// The key acts for the replaced name in one session and for a new name in another (it
    /// registered it before the close came): the close for the replaced name closes the
    /// first only; a re-check reads both names, each on its own.
    #[test]
    fn a_close_for_a_name_leaves_the_sessions_acting_for_another() {
        let hub = Hub::default();
        let old = key(1);
        let (lost, again) = registered_then_unregistered(&hub, old);
        hub.join(old, again.clone(), Some("alice-2"));
        assert_eq!(
            hub.acting(),
            vec![(old, "alice".to_owned()), (old, "alice-2".to_owned())]
        );

        assert_eq!(hub.close_agent(&old, ALICE, REPLACED), 1);
        assert!(lost.closed_with().is_some());
        assert!(
            again.closed_with().is_none(),
            "the session acting for another name was closed"
        );
        assert_eq!(hub.acting(), vec![(old, "alice-2".to_owned())]);
    }

    /// A close from a node of the previous version names no name: it closes every session of
    /// the key acting for any name, as that version did, and still leaves the unregistered
    /// ones.
    #[test]
    fn a_close_naming_no_name_closes_every_acting_session_of_the_key() {
        let hub = Hub::default();
        let old = key(1);
        let (alice, other, plain) = (
            Outbox::detached(1),
            Outbox::detached(2),
            Outbox::detached(3),
        );
        hub.join(old, alice.clone(), Some("alice"));
        hub.join(old, other.clone(), Some("alice-2"));
        hub.join(old, plain.clone(), None);

        assert_eq!(hub.close_agent(&old, None, REPLACED), 2);
        assert!(alice.closed_with().is_some() && other.closed_with().is_some());
        assert!(plain.closed_with().is_none());
        assert!(hub.acting().is_empty());
    }

    /// The periodic re-check's pages: `limit` pairs in key order, a key's names never split
    /// between two pages, each pair read once over a whole pass.
    #[test]
    fn a_page_of_acting_names_keeps_a_key_s_names_together() {
        let hub = Hub::default();
        let mut keys = [key(1), key(2), key(3)];
        keys.sort_unstable_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
        let [first, second, third] = keys;
        hub.join(first, Outbox::detached(1), Some("a"));
        hub.join(second, Outbox::detached(2), Some("b"));
        hub.join(second, Outbox::detached(3), Some("b-2"));
        hub.join(third, Outbox::detached(4), Some("c"));
        hub.join(third, Outbox::detached(5), None);

        let (page, next) = hub.acting_after(None, 2);
        assert_eq!(
            page,
            vec![
                (first, "a".to_owned()),
                (second, "b".to_owned()),
                (second, "b-2".to_owned())
            ]
        );
        assert_eq!(next, Some(second));
        let (page, next) = hub.acting_after(next, 2);
        assert_eq!(page, vec![(third, "c".to_owned())]);
        assert_eq!(next, None);
        assert_eq!(hub.acting_after(Some(third), 2), (Vec::new(), None));
    }

    /// The last acting session of a key leaving forgets the key; another of its sessions
    /// still acting keeps it listed.
    #[test]
    fn an_agent_key_is_listed_while_a_session_acts_for_it() {
        let hub = Hub::default();
        let old = key(1);
        hub.join(old, Outbox::detached(1), Some("alice"));
        hub.join(old, Outbox::detached(2), Some("alice"));
        hub.join(old, Outbox::detached(3), None);
        hub.leave(&old, 1);
        assert_eq!(hub.agents().len(), 1);
        hub.leave(&old, 2);
        assert!(hub.agents().is_empty());
        assert!(hub.is_online(&old));
    }
}
