//! Agent recovery: the org's master re-certifies an agent name for a new key
//! (`Request::RebindAgent`), and the relay moves the name to it.
//!
//! A name is bound to one key for good ([`Service::register`] refuses another key with
//! `name_taken`); the one exception is an agent whose org's master signs a certificate for a
//! new card under the same name. The relay checks, in order: the caller is the master of the
//! certificate's org under its current policy; the certificate verifies under that policy (an
//! agent card of a valid name, signed by the master, not expired); the name is registered, and
//! its current key is the one the org's stored certificate for that name certifies (so a master
//! can take back only its own agents' names, never a customer's or another org's agent's); the
//! new key is not registered with another card. Then, in one batch: the name points at the new
//! key, the new card is registered, the old key's card is removed (a new session of the old key
//! is unregistered, and cannot register the name again), and the new certificate replaces the
//! old. Peers see the new key as a key change, as for any changed card.

use sealdesk_protocol::{
    card::Role,
    policy::AgentCertificate,
    wire::{ErrorCode, Response},
};
use tracing::info;

use super::{Caller, Reply, Service, enc, keys::certificate_key, lock, reject};
use crate::store::{Batch, Collection};

impl Service {
    /// `RebindAgent`: see the module documentation.
    pub(super) async fn rebind_agent(&self, caller: &Caller, c: AgentCertificate) -> Reply {
        let policy = self.policies.current(&c.org)?;
        if policy.master_key() != caller.card.signing_key {
            return reject(
                ErrorCode::Forbidden,
                "only the org's master may re-certify its agents",
            );
        }
        let new = c.verify(&policy, self.clock.now())?;
        {
            let _w = lock(&self.writes)?;
            let Some(old_key) = self.store.get(Collection::Names, new.name.as_bytes())? else {
                return reject(
                    ErrorCode::NotFound,
                    format!(
                        "no account named {:?} to re-certify; certify a new agent with org \
                         add-agent",
                        new.name
                    ),
                );
            };
            if old_key.as_slice() == new.signing_key.as_bytes() {
                return reject(
                    ErrorCode::Conflict,
                    "the name is bound to this key already; nothing to re-certify",
                );
            }
            let certified_old = self
                .certificate(&c.org, &new.name)?
                .is_some_and(|stored| stored.agent.signing_key.as_bytes() == old_key.as_slice());
            let old_card = self
                .store
                .get(Collection::Cards, &old_key)?
                .map(|b| super::dec::<sealdesk_protocol::card::IdentityCard>(&b, "card"))
                .transpose()?;
            if !certified_old
                || old_card
                    .as_ref()
                    .is_none_or(|card| card.role != Role::Agent)
            {
                return reject(
                    ErrorCode::Forbidden,
                    format!(
                        "{:?} is not an agent of {:?}: a master re-certifies only its own agents",
                        new.name, c.org
                    ),
                );
            }
            if let Some(existing) = self.card_by_key(&new.signing_key)?
                && existing != *new.card()
            {
                return reject(
                    ErrorCode::KeyRegistered,
                    "the new key is registered with another card",
                );
            }
            let mut b = Batch::new();
            b.put(
                Collection::Names,
                new.name.as_bytes(),
                new.signing_key.as_bytes(),
            );
            b.put(
                Collection::Cards,
                new.signing_key.as_bytes(),
                &enc(new.card())?,
            );
            b.delete(Collection::Cards, &old_key);
            b.put(
                Collection::Certificates,
                &certificate_key(&c.org, &new.name),
                &enc(&c)?,
            );
            self.store.apply(b)?;
        }
        self.commit.durable().await?;
        info!(org = %c.org, "agent re-certified for a new key");
        Ok(Response::Ok)
    }
}
