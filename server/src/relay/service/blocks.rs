//! Blocks: an org's agents (or its master) close a conversation as spam and block the
//! customer's key for the org; the master lifts a block. The relay checks each signed action
//! (PROTOCOL.md §13.13) and enforces it: a blocked customer's `open_conversation` with the org
//! and its `send` in any conversation with the org are refused with `blocked`.
//!
//! Blocks are stored in the `meta` collection under [`block_key`] (org first, so an org's blocks
//! are one prefix scan) and kept in memory as a set, loaded at start (and again on each of a
//! cluster's periodic catch-ups, so another node's blocks take effect here within
//! `cluster_catch_up_ms`, and whenever the wake-up listener reconnects, so one stored while it
//! was away takes effect at once), so the send path pays one set lookup for customers blocked nowhere. They are not in the audit log: the log records who
//! opened what (releases, erasures, tickets), and a block opens nothing.

use std::{collections::HashSet, sync::Mutex};

use sealdesk_protocol::{
    Error as ProtocolError,
    block::{Block, Unblock},
    ids::ConversationId,
    keys::SigningPublicKey,
    wire::{BlockEntry, ErrorCode, Response},
};
use tracing::info;

use super::{Caller, Reject, Reply, Service, dec, enc, lock, reject};
use crate::store::{Collection, Store};

/// The prefix of every [`block_key`] in [`Collection::Meta`].
const BLOCK_PREFIX: &[u8] = b"block/";

/// The block of `customer` by `org`, in [`Collection::Meta`]: `block/` ‖ org ‖ 0 ‖ customer
/// (32 bytes); the value is a [`BlockEntry`] (CBOR).
fn block_key(org: &str, customer: &SigningPublicKey) -> Vec<u8> {
    let mut k = org_blocks_prefix(org);
    k.extend_from_slice(customer.as_bytes());
    k
}

/// The prefix of `org`'s [`block_key`]s.
fn org_blocks_prefix(org: &str) -> Vec<u8> {
    let mut k = BLOCK_PREFIX.to_vec();
    k.extend_from_slice(org.as_bytes());
    k.push(0);
    k
}

/// The (customer, org) of a [`block_key`], if it is one.
fn parse_block_key(k: &[u8]) -> Option<([u8; 32], String)> {
    let rest = k.strip_prefix(BLOCK_PREFIX)?;
    let split = rest.len().checked_sub(33)?;
    let (org, tail) = rest.split_at(split);
    let (zero, customer) = tail.split_first()?;
    if *zero != 0 {
        return None;
    }
    Some((
        <[u8; 32]>::try_from(customer).ok()?,
        String::from_utf8(org.to_vec()).ok()?,
    ))
}

/// The blocks in force, in memory: (customer key, org).
pub(super) struct Blocks {
    set: Mutex<HashSet<([u8; 32], String)>>,
}

impl Blocks {
    /// Loads every stored block's (customer, org).
    ///
    /// # Errors
    /// Storage errors; [`crate::Error::Corrupt`] for a key under `block/` of another shape.
    pub(super) fn load(store: &dyn Store) -> crate::Result<Self> {
        let mut set = HashSet::new();
        for (k, _) in store.scan_prefix(Collection::Meta, BLOCK_PREFIX)? {
            let entry = parse_block_key(&k).ok_or_else(|| {
                crate::Error::Corrupt("a block key (in the `meta` tree) of the wrong shape".into())
            })?;
            set.insert(entry);
        }
        Ok(Self {
            set: Mutex::new(set),
        })
    }

    fn contains(&self, customer: &SigningPublicKey, org: &str) -> Result<bool, Reject> {
        Ok(lock(&self.set)?.contains(&(customer.to_bytes(), org.to_owned())))
    }

    fn any_for(&self, customer: &SigningPublicKey) -> Result<bool, Reject> {
        let key = customer.to_bytes();
        Ok(lock(&self.set)?.iter().any(|(c, _)| *c == key))
    }
}

/// The refusal of a blocked customer.
fn blocked(org: &str) -> Reject {
    Reject::new(
        ErrorCode::Blocked,
        format!(
            "{org} has blocked this account: it cannot open conversations with {org} or write \
             in them"
        ),
    )
}

/// The refusal of a block or unblock whose check failed: `forbidden` when the signer may not
/// take the action, `bad_request` when the statement itself is wrong (signature, freshness).
fn refused(e: ProtocolError) -> Reject {
    let code = match e {
        ProtocolError::BadSignature(_)
        | ProtocolError::Expired(_)
        | ProtocolError::InvalidValidity(_) => ErrorCode::BadRequest,
        _ => ErrorCode::Forbidden,
    };
    Reject::new(code, e.to_string())
}

impl Service {
    /// Reloads the blocks in force from the store, so blocks and unblocks another node of a
    /// cluster stored take effect here (called on the cluster's periodic catch-up, every
    /// `cluster_catch_up_ms`, and when the wake-up listener reconnects: `relay::cluster`). Under the writes lock, so a block this node is storing is not
    /// lost from the set.
    ///
    /// # Errors
    /// Storage errors; a block key of the wrong shape.
    pub(crate) fn reload_blocks(&self) -> Result<(), Reject> {
        let _w = lock(&self.writes)?;
        let fresh = Blocks::load(&*self.store)
            .map_err(|e| Reject::new(ErrorCode::Internal, e.to_string()))?;
        let fresh = fresh
            .set
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *lock(&self.blocks.set)? = fresh;
        Ok(())
    }

    /// Refuses (`blocked`) a customer `org` blocked.
    pub(super) fn refuse_blocked(
        &self,
        customer: &SigningPublicKey,
        org: &str,
    ) -> Result<(), Reject> {
        if self.blocks.contains(customer, org)? {
            return Err(blocked(org));
        }
        Ok(())
    }

    /// Refuses (`blocked`) a send by a customer in conversation `c` of an org that blocked it.
    /// One set lookup for a sender blocked by no org.
    pub(super) fn refuse_blocked_send(
        &self,
        caller: &Caller,
        c: &ConversationId,
    ) -> Result<(), Reject> {
        let me = caller.key();
        if !self.blocks.any_for(&me)? {
            return Ok(());
        }
        match self.convs.get(c)? {
            Some(s) if s.customer == me => self.refuse_blocked(&me, &s.org),
            _ => Ok(()),
        }
    }

    /// An agent's or the master's block: checked against the org's current policy (the
    /// signer is the caller, and the master or a certified agent), the conversation (the org's,
    /// and the block's customer its customer), then stored durably.
    ///
    /// "The signer is the caller" needs no check of its own: the block must verify under the
    /// master's key when the caller is the master, and otherwise under the key of the
    /// certificate stored for the caller's name, which is the caller's key (a name is bound to
    /// one registered key; a re-certified name's old key is unregistered and its sessions are
    /// closed). A block signed by another agent and sent by a third is refused there
    /// (`forbidden`, wrong signer), as `blocks.rs`'s test shows.
    pub(super) async fn block(&self, caller: &Caller, b: Block) -> Reply {
        let policy = self.policies.current(&b.org)?;
        let certificate = if caller.key() == policy.master_key() {
            None
        } else {
            self.certificate(&b.org, &caller.card.name)?
        };
        let now = self.clock.now();
        let b = b
            .verify(&policy, certificate.as_ref(), now)
            .map_err(refused)?
            .into_block();
        let customer_name = match self.convs.get(&b.conversation)? {
            Some(s) if s.org != b.org => {
                return reject(
                    ErrorCode::Forbidden,
                    "the conversation is not one of the org's",
                );
            }
            Some(s) if s.customer != b.customer => {
                return reject(
                    ErrorCode::Forbidden,
                    "the block names another customer than the conversation's",
                );
            }
            Some(s) => s.customer_name,
            None => return reject(ErrorCode::NotFound, "no such conversation"),
        };
        let key = block_key(&b.org, &b.customer);
        let org = b.org.clone();
        let customer = b.customer;
        let entry = BlockEntry {
            block: b,
            customer: customer_name,
            at: now,
        };
        {
            let _w = lock(&self.writes)?;
            self.store.put(Collection::Meta, &key, &enc(&entry)?)?;
            lock(&self.blocks.set)?.insert((customer.to_bytes(), org.clone()));
        }
        self.commit.durable().await?;
        info!(org, "customer blocked");
        Ok(Response::Ok)
    }

    /// The master's unblock: checked against the org's current policy, then the block is
    /// deleted durably. `not_found` if the customer is not blocked.
    pub(super) async fn unblock(&self, caller: &Caller, u: Unblock) -> Reply {
        if u.signer != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "an unblock must be signed by its sender",
            );
        }
        let policy = self.policies.current(&u.org)?;
        let u = u
            .verify(&policy, self.clock.now())
            .map_err(refused)?
            .into_unblock();
        let key = block_key(&u.org, &u.customer);
        {
            let _w = lock(&self.writes)?;
            if !self.store.delete(Collection::Meta, &key)? {
                return reject(ErrorCode::NotFound, "that customer is not blocked");
            }
            lock(&self.blocks.set)?.remove(&(u.customer.to_bytes(), u.org.clone()));
        }
        self.commit.durable().await?;
        info!(org = u.org, "customer unblocked");
        Ok(Response::Ok)
    }

    /// The blocks in force for `org`, for its master and its certified agents.
    pub(super) fn list_blocks(&self, caller: &Caller, org: &str) -> Reply {
        let policy = self.policies.current(org)?;
        let me = caller.key();
        let allowed = me == policy.master_key()
            || self
                .agents(&policy)?
                .iter()
                .any(|(card, _)| card.signing_key == me);
        if !allowed {
            return reject(
                ErrorCode::Forbidden,
                "only the org's master and agents see its blocks",
            );
        }
        let mut out = Vec::new();
        for (_, v) in self
            .store
            .scan_prefix(Collection::Meta, &org_blocks_prefix(org))?
        {
            out.push(dec::<BlockEntry>(&v, "block")?);
        }
        Ok(Response::Blocks(out))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sealdesk_protocol::keys::IdentityKeys;

    use super::*;

    #[test]
    fn block_keys_read_back() {
        let k = IdentityKeys::generate(&mut rand::rng()).signing_public();
        let key = block_key("acme-2", &k);
        assert_eq!(
            parse_block_key(&key),
            Some((k.to_bytes(), "acme-2".to_owned()))
        );
        assert!(key.starts_with(&org_blocks_prefix("acme-2")));
        assert!(!key.starts_with(&org_blocks_prefix("acme")));
        assert_eq!(parse_block_key(b"block/short"), None);
    }
}
