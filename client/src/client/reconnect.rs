//! Connecting again after the connection was lost (the relay restarted, the network dropped, a
//! node of a relay cluster died): a new session replaces the old one in place, with the same
//! checks as the first connection (the relay's keys must be the ones pinned). With several
//! URLs ([`Client::set_relays`]: the nodes of one cluster), the next node is tried first, and
//! it must present the same relay and log keys as the node it replaces: a cluster is one
//! relay, pinned once. The account's state — cursors, counters, epochs — is in the vault, so a
//! sync after reconnecting resumes from each conversation's cursor; pushes are deduplicated
//! by sequence number, so one that two nodes both send is taken once.
//!
//! The contract: [`Client::reconnect`] succeeds once a new session is authenticated, its relay
//! keys are the pinned ones, and it has replaced the old one. What the old session had asked
//! for (the agent-key pushes, [`Client::watch_agent_keys`]) is then asked again; a failure
//! there — a timeout, an odd answer, the new connection lost at that moment — does not undo
//! the reconnection: it is handed back in [`Reconnected::not_asked_again`], the client asks
//! again at the next [`Client::sync_all`] (and at the next reconnection), and a connection lost
//! meanwhile shows at the caller's next request like any other.

use super::Client;
use crate::error::{ClientError, Result};

/// What [`Client::reconnect`] did besides putting a new session in place.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Reconnected {
    /// Asking the new session again for the agent-key pushes the old one had asked for failed
    /// with this error (the session was up when it was replaced). It is asked again at the next
    /// [`Client::sync_all`] and reconnection; meanwhile the periodic re-check of the agent's key
    /// stays. A transport error here usually means the new connection was lost already.
    pub not_asked_again: Option<ClientError>,
}

impl Client {
    /// Whether the session is still open (the relay has not closed it, and the I/O task runs).
    pub fn is_connected(&self) -> bool {
        self.session.closed().is_none()
    }

    /// The nodes of the relay (one cluster, behind one pinned pair of keys): after a lost
    /// connection, [`Self::reconnect`] tries the one after the current, in this order. Empty
    /// `urls` keep the current one alone.
    pub fn set_relays(&mut self, urls: Vec<String>) {
        self.relays = if urls.is_empty() {
            vec![self.session.url().to_owned()]
        } else {
            urls
        };
    }

    /// The URLs [`Self::reconnect`] tries, in order: the nodes after the current one, then
    /// the current one.
    pub fn relays_to_try(&self) -> Vec<String> {
        let current = self.session.url();
        let at = self.relays.iter().position(|u| u == current);
        let n = self.relays.len();
        match at {
            Some(i) => (1..=n).map(|k| self.relays[(i + k) % n].clone()).collect(),
            None => self.relays.clone(),
        }
    }

    /// Connects again — to the next node of [`Self::set_relays`], else to the relay this client
    /// connected to — with the same TLS trust, and replaces the session (the old one is
    /// closed). Pushes of the old session that were not read are gone: sync afterwards
    /// ([`Self::sync_all`]) to catch up from the cursors. Succeeds once the new session is in
    /// place, even if asking it again for what the old one had asked failed (see the module
    /// docs and [`Reconnected`]).
    ///
    /// # Errors
    /// As [`Self::connect`], from the last node tried: transport and handshake errors,
    /// [`crate::ClientError::RelayKeyChanged`] (the session is then not replaced) — also for a
    /// node whose keys are not those of the node it would replace.
    pub async fn reconnect(&mut self) -> Result<Reconnected> {
        let (relay_key, log_key) = (self.session.relay_key(), self.session.welcome().log_key);
        let mut last = None;
        for url in self.relays_to_try() {
            let session = match Self::handshake(&self.account, &url, &self.tls).await {
                Ok(s) => s,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let what = if session.relay_key() != relay_key {
                Some("relay")
            } else if session.welcome().log_key != log_key {
                Some("audit log")
            } else {
                None
            };
            let checked = match what {
                // Another node of the same relay must be the same relay.
                Some(what) => Err(ClientError::RelayKeyChanged {
                    url: url.clone(),
                    what,
                }),
                None => self
                    .account
                    .check_relay(&url, session.relay_key(), session.welcome().log_key)
                    .map(|_| ()),
            };
            if let Err(e) = checked {
                session.close().await;
                return Err(e);
            }
            let old = std::mem::replace(&mut self.session, session);
            old.close().await;
            // Pushes asked for are per session: ask the new one too. Its failure is no failed
            // reconnection: the session is in place, and `sync_all` asks again.
            let not_asked_again = self.watch_agent_keys_again().await.err();
            if let Some(e) = &not_asked_again {
                tracing::debug!(error = %e, "could not ask the new session for agent-key pushes");
            }
            return Ok(Reconnected { not_asked_again });
        }
        Err(last
            .unwrap_or_else(|| ClientError::Closed(Some("no relay URL to reconnect to".into()))))
    }
}
