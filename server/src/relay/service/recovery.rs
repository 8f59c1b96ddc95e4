//! Agent recovery: the org's master re-certifies an agent name for a new key
//! (`Request::RebindAgent`), and the relay moves the name to it. And customers' replaceable
//! recovery codes: the relay keeps one recovery record per customer name (`PutRecovery`,
//! `GetRecovery`; see [`Service::put_recovery`]).
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
//! old, and every conversation assigned to the old key is assigned to the new one (its record
//! rewritten in the same batch). Then the old key's open sessions are closed
//! ([`CLOSE_KEY_REPLACED`]) on this node and, in a cluster, on every other node (the push
//! channel carries the close; a new session of the old key, on any node, finds no card in
//! the shared store and is refused as unregistered), and the new key is told of each
//! conversation it now holds ([`Push::Assigned`]), as after a transfer. Peers see the new
//! key as a key change, as for any changed card; the customers of the moved conversations are
//! told at once (`Push::AgentKeyChanged`, to the sessions that asked: `key_push.rs`).
//!
//! The new key reads only what is sealed to it: the customer's client, once it trusts the new
//! key, opens a new epoch for it at its next message. Earlier epochs stay readable to the
//! customer (and to the master by release); the new key cannot read them unless the org's
//! policy allows a history hand-off and a member hands them over, as after a transfer.

use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    policy::AgentCertificate,
    recovery_record::{RecoveryProof, RecoveryRecord},
    wire::{ErrorCode, Push, Response},
};
use tracing::info;

use super::{
    Caller, Reply, Service, dec, enc,
    keys::{agent_org_key, certificate_key},
    lock, reject,
};
use crate::{
    connection::CloseReason,
    relay::{session_codes::CLOSE_KEY_REPLACED as KEY_REPLACED_CODE, state::ConvState},
    store::{Batch, Collection},
};

/// How the relay closes the sessions of an agent key whose name was re-certified for another
/// key (PROTOCOL.md §13.3).
pub(crate) const CLOSE_KEY_REPLACED: CloseReason = CloseReason::Application {
    code: KEY_REPLACED_CODE,
    reason: "this key no longer acts for its name: the org's master re-certified it",
};

/// Where the recovery record of the customer `name` is kept (in [`Collection::Meta`]).
fn recovery_record_key(name: &str) -> Vec<u8> {
    let mut k = b"recovery/".to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

impl Service {
    /// `PutRecovery`: a registered customer stores the recovery record of its own card,
    /// replacing the one before (whose code then fetches nothing). Only the account itself can:
    /// the record's card must be the caller's, byte for byte, so no one else can put a record
    /// that a code of theirs would open as this account. Answered once durable, so a client
    /// that was answered `ok` knows the new code is the one in force.
    pub(super) async fn put_recovery(&self, caller: &Caller, record: RecoveryRecord) -> Reply {
        if caller.card.role != Role::Customer {
            return reject(
                ErrorCode::Forbidden,
                format!(
                    "recovery codes are for customer accounts, not {} accounts",
                    caller.card.role
                ),
            );
        }
        if record.card != caller.card {
            return reject(
                ErrorCode::Forbidden,
                "a recovery record is stored only by its own account",
            );
        }
        if let Err(e) = record.check_shape() {
            return reject(ErrorCode::BadField, e.to_string());
        }
        let mut b = Batch::new();
        b.put(
            Collection::Meta,
            &recovery_record_key(&record.card.name),
            &enc(&record)?,
        );
        self.store.apply(b)?;
        self.commit.durable().await?;
        info!("recovery record replaced");
        Ok(Response::Ok)
    }

    /// `GetRecovery`: the record of `name` for the proof of its current code (any session).
    pub(super) fn get_recovery(&self, name: &str, proof: &[u8]) -> Reply {
        let Some(bytes) = self
            .store
            .get(Collection::Meta, &recovery_record_key(name))?
        else {
            return reject(
                ErrorCode::NotFound,
                format!("no recovery record for {name:?}"),
            );
        };
        let record: RecoveryRecord = dec(&bytes, "recovery record")?;
        let admitted = RecoveryProof::from_bytes(proof).is_ok_and(|p| record.admits(&p));
        if !admitted {
            return reject(
                ErrorCode::Forbidden,
                format!("this is not the current recovery code of {name:?}"),
            );
        }
        Ok(Response::Recovery(record))
    }

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
        let mut moved = Vec::new();
        let old;
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
            // The same name in the same org: its index entry is there already; written again
            // so that every certificate write carries its own.
            b.put(
                Collection::AgentOrgs,
                &agent_org_key(&new.name, &c.org),
                &[],
            );
            b.put(
                Collection::Certificates,
                &certificate_key(&c.org, &new.name),
                &enc(&c)?,
            );
            // The old key's conversations go to the new key, in the same batch.
            for (k, v) in self.store.scan_prefix(Collection::Conversations, &[])? {
                let mut record: ConvState = dec(&v, "conversation")?;
                if record.agent.as_bytes().as_slice() == old_key.as_slice() {
                    record.agent = new.signing_key;
                    record.agent_name = new.name.clone();
                    b.put(Collection::Conversations, &k, &enc(&record)?);
                    moved.push((ConversationId::try_from(k.as_slice())?, record.customer));
                }
            }
            self.store.apply(b)?;
            old = old_key;
        }
        // The cached states follow the stored records (an append in between rewrote its
        // record from the cache with the old key; this writes it again with the new one).
        for (conversation, _) in &moved {
            if self.convs.load(conversation)? {
                self.convs.update(conversation, |s| {
                    s.agent = new.signing_key;
                    s.agent_name = new.name.clone();
                })?;
            }
        }
        self.commit.durable().await?;
        if let Ok(arr) = <[u8; 32]>::try_from(old.as_slice())
            && let Ok(old) = sealdesk_protocol::keys::SigningPublicKey::from_bytes(&arr)
        {
            // Only its sessions acting for the name: one it opened since is unregistered (its
            // card is gone) and refused everything, or registered the key under another name
            // (`Hub::close_agent`).
            self.hub
                .close_agent(&old, Some(&new.name), CLOSE_KEY_REPLACED);
            // In a cluster, on every other node too.
            self.forward_close(&old, &new.name, CLOSE_KEY_REPLACED);
        }
        for (conversation, customer) in &moved {
            if let Some(customer) = self.card_by_key(customer)? {
                self.push(
                    &new.signing_key,
                    Push::Assigned {
                        conversation: *conversation,
                        customer,
                    },
                );
            }
        }
        // The customers hear of it at once, in the sessions that asked (key_push.rs).
        self.tell_customers_of_new_key(&c.org, new.card(), &moved);
        info!(
            org = %c.org,
            conversations = moved.len(),
            "agent re-certified for a new key; its conversations reassigned to it"
        );
        Ok(Response::Ok)
    }
}
