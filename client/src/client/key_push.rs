//! A customer told at once that the org's master re-certified an agent for a new key
//! (PROTOCOL.md §13.5 `watch_agent_keys` / `agent_key_changed`).
//!
//! [`Client::watch_agent_keys`] asks the relay for the push on this session (and again on
//! every session [`Client::reconnect`] opens). The push is a hint and nothing in it is
//! trusted: on it the client fetches the agent's certificate and verifies it under the org's
//! pinned policy, exactly as [`Client::recheck_agent`] does, and compares the certified card
//! with the pin. A verified change is an [`EventKind::KeyChanged`] per conversation with the
//! agent (recorded as pending, so sending is blocked until `keys trust`); a push whose card the
//! org's certificate does not confirm (or that cannot be checked) changes nothing and is
//! reported as [`EventKind::AgentKeyUnconfirmed`]. The periodic re-check stays the fallback.

use sealdesk_protocol::{
    card::{IdentityCard, Role},
    ids::ConversationId,
    wire::Request,
};

use super::{Client, Event, EventKind};
use crate::{
    account::PinStatus,
    error::{ClientError, Result},
    reply::expect_ok,
};

/// The close code of a relay that read a frame it could not decode (PROTOCOL.md §13.6): what
/// a relay older than `watch_agent_keys` answers it with.
pub const CLOSE_BAD_FRAME: u16 = 4102;

impl Client {
    /// Asks the relay to tell this session when the agent of one of this account's
    /// conversations is re-certified for a new key. [`Self::reconnect`] asks again on the new
    /// session. A relay too old to know the request answers with an error, returned here (the
    /// periodic re-check still finds the change). A relay older still closes the connection on
    /// it as a malformed frame (4102): then the client connects again at once
    /// ([`Self::reconnect`]), without the request, and does not ask this relay again for as
    /// long as this client lives; that is `Ok` (the periodic re-check stays).
    ///
    /// # Errors
    /// Relay and transport errors, and those of [`Self::reconnect`] after a 4102.
    pub async fn watch_agent_keys(&mut self) -> Result<()> {
        if self.agent_keys_unknown {
            return Ok(());
        }
        match self.session.request(Request::WatchAgentKeys).await {
            Err(ClientError::Closed(_)) if self.session.close_code() == Some(CLOSE_BAD_FRAME) => {
                tracing::debug!("the relay does not know watch_agent_keys (4102); not asked again");
                self.agent_keys_unknown = true;
                self.reconnect().await?;
                return Ok(());
            }
            answer => expect_ok(answer?)?,
        }
        // Asked again after a reconnection only once a relay said `ok`: a relay too old to
        // know the request (one that refuses it, or closes the connection on it) is not asked
        // again at every reconnection.
        self.watching_agent_keys = true;
        Ok(())
    }

    /// Asks for the push again on a new session, if the old one had asked. A relay that
    /// refuses it (too old to know it) is not asked again: the periodic re-check stays. Any
    /// other failure leaves the session marked as not asked yet (`agent_keys_unasked`), so
    /// [`Self::sync_all`] and the next [`Self::reconnect`] ask again.
    ///
    /// # Errors
    /// Transport errors, and an answer other than `ok` or a relay error.
    pub(super) async fn watch_agent_keys_again(&mut self) -> Result<()> {
        if !self.watching_agent_keys {
            return Ok(());
        }
        self.agent_keys_unasked = true;
        match self
            .session
            .request(Request::WatchAgentKeys)
            .await
            .and_then(expect_ok)
        {
            Ok(()) => {
                self.agent_keys_unasked = false;
                Ok(())
            }
            Err(ClientError::Relay { .. }) => {
                self.watching_agent_keys = false;
                self.agent_keys_unasked = false;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// At a sync: asks the current session for the push if a reconnection could not.
    ///
    /// # Errors
    /// Transport errors (the sync could not go on either); a relay that answers the request
    /// with anything else is not asked again (the periodic re-check stays).
    pub(super) async fn ask_again_if_unasked(&mut self) -> Result<()> {
        if !self.agent_keys_unasked {
            return Ok(());
        }
        match self.watch_agent_keys_again().await {
            Err(
                e @ (ClientError::Transport(_)
                | ClientError::Closed(_)
                | ClientError::Timeout { .. }),
            ) => Err(e),
            Ok(()) | Err(_) => {
                if self.agent_keys_unasked {
                    tracing::debug!("the relay answered watch_agent_keys oddly; not asked again");
                    self.watching_agent_keys = false;
                    self.agent_keys_unasked = false;
                }
                Ok(())
            }
        }
    }

    /// The relay says agent `agent` of `org` has a new key, `card`: re-verifies it through the
    /// org's policy and certificate (the push's content is not trusted). Not a customer's, or
    /// no conversation of this account with that agent: nothing.
    ///
    /// # Errors
    /// Transport and storage errors only; a push that does not verify is an event.
    pub(super) async fn agent_key_pushed(
        &mut self,
        org: &str,
        agent: &str,
        card: &IdentityCard,
    ) -> Result<Vec<Event>> {
        if self.account.role() != Role::Customer {
            return Ok(Vec::new());
        }
        // The conversations this account holds with the agent, by its own records (not the
        // push's list).
        let ours: Vec<ConversationId> = self
            .account
            .conversations()?
            .into_iter()
            .filter(|m| !m.erased && m.org == org && m.agent == agent)
            .map(|m| m.id)
            .collect();
        let Some(first) = ours.first().copied() else {
            return Ok(Vec::new());
        };
        let unconfirmed = |reason: String| {
            vec![Event {
                conversation: first,
                kind: EventKind::AgentKeyUnconfirmed {
                    agent: agent.to_owned(),
                    reason,
                },
            }]
        };
        let checked = match self.latest_policy(org).await {
            Ok(policy) => self.agent_certificate(&policy, agent).await,
            Err(e) => Err(e),
        };
        let certified = match checked {
            Ok(c) => c,
            Err(
                e @ (ClientError::Transport(_)
                | ClientError::Closed(_)
                | ClientError::Timeout { .. }
                | ClientError::Vault(_)),
            ) => {
                return Err(e);
            }
            Err(e) => return Ok(unconfirmed(e.to_string())),
        };
        let status = self.account.observe_peer(&certified)?;
        let now = std::time::Instant::now();
        for id in &ours {
            self.agent_checked.insert(*id, now);
        }
        if status == PinStatus::Changed {
            return Ok(ours
                .into_iter()
                .map(|conversation| Event {
                    conversation,
                    kind: EventKind::KeyChanged {
                        name: agent.to_owned(),
                    },
                })
                .collect());
        }
        if certified.signing_key != card.signing_key {
            return Ok(unconfirmed(format!(
                "the org's certificate still names the key already pinned for {agent}"
            )));
        }
        Ok(Vec::new())
    }
}
