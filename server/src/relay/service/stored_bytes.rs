//! The stored-bytes counts (PROTOCOL.md §13.12): what each account and each org hold, attachments
//! and messages alike, checked against [`crate::limits::bytes::ByteQuotas`] before anything is
//! stored and given back when a conversation is erased (by its customer or by retention).
//!
//! A message counts its ciphertext; an attachment all of its ciphertext, from its first chunk.
//! The counts go through this node's [`ByteCounts`]: on an engine only this node writes, every
//! change is written at once (in the group commit of what it counts); in a cluster, changes are
//! gathered and folded in once per catch-up period, all in one transaction that adds each in
//! the database ([`ConversationLog::add_counts`]), in the node's chores task
//! (`relay/cluster.rs`), never in the wake-up rounds ([`Service::fold_byte_counts`]), so two
//! nodes never lose each other's, deliveries never wait behind the fold, and the send path
//! makes no database round trip for them. A node that stops cleanly folds once more as it
//! stops (`relay::serve_with`); one that crashes loses the changes it gathered since its last
//! fold (its counts are then low by at most one catch-up period's bytes).
//!
//! [`ByteCounts`]: crate::limits::bytes::ByteCounts
//! [`ConversationLog::add_counts`]: crate::store::ConversationLog::add_counts

use sealdesk_protocol::{
    ids::ConversationId,
    keys::SigningPublicKey,
    wire::{ByteQuota, ErrorCode, Item, QuotaScope},
};
use tracing::warn;

use super::{
    Reject, Service, dec,
    keys::{account_bytes_key, org_bytes_key},
};
use crate::{
    limits::bytes::{NearQuota, OverQuota, Scope},
    relay::state::StoredItem,
    store::{Collection, Store},
};

/// A count as stored: a big-endian u64 (0 if absent or malformed).
fn read_count(store: &dyn Store, key: &[u8]) -> Result<u64, Reject> {
    Ok(store
        .get(Collection::Meta, key)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes))
}

impl Service {
    /// Bytes stored under count `key`, as this node sees them.
    pub(super) fn stored_bytes(&self, key: &[u8]) -> Result<u64, Reject> {
        self.byte_counts
            .current(key, || read_count(self.store.as_ref(), key))
    }

    /// Whether `adding` bytes may be stored by `account` in a conversation of `org`: the
    /// warning to give if they bring a quota near, or `quota_exceeded` (counted in the
    /// metrics) naming `what` needs them.
    pub(super) fn check_bytes(
        &self,
        account: &SigningPublicKey,
        org: &str,
        adding: u64,
        what: &str,
    ) -> Result<Option<NearQuota>, Reject> {
        let used_account = self.stored_bytes(&account_bytes_key(account))?;
        let used_org = self.stored_bytes(&org_bytes_key(org))?;
        self.guard
            .bytes
            .check(used_account, used_org, adding)
            .map_err(|over| {
                self.guard.refused(over.scope.label());
                over_quota(over, what)
            })
    }

    /// Adds `bytes` (negative: gives them back) to `account`'s and `org`'s counts, and tells
    /// the accounts concerned of a quota the change brought to the warning level
    /// (`service::quota_push`).
    pub(super) fn count_bytes(
        &self,
        account: &SigningPublicKey,
        org: &str,
        bytes: i64,
    ) -> Result<(), Reject> {
        let mut crossed = Vec::new();
        for (scope, key) in [
            (Scope::Account, account_bytes_key(account)),
            (Scope::Org, org_bytes_key(org)),
        ] {
            let (before, after) = self.change_count(&key, bytes)?;
            crossed.extend(self.guard.bytes.crossed(scope, before, after));
        }
        for near in crossed {
            self.push_quota_warning(account, org, near);
        }
        Ok(())
    }

    /// Adds `delta` to the count under `key` (see the module docs); the count before and
    /// after, as this node sees it.
    pub(super) fn change_count(&self, key: &[u8], delta: i64) -> Result<(u64, u64), Reject> {
        if delta == 0 {
            let now = self.stored_bytes(key)?;
            return Ok((now, now));
        }
        let load = || read_count(self.store.as_ref(), key);
        if self.store_shared {
            self.byte_counts.add(key, delta, load, None)
        } else {
            let write = |value: u64| -> Result<(), Reject> {
                self.store
                    .put(Collection::Meta, key, &value.to_be_bytes())
                    .map_err(Reject::from)
            };
            self.byte_counts.add(key, delta, load, Some(&write))
        }
    }

    /// Cluster mode: writes the count changes this node gathered, all in one go, each added in
    /// the database to what the other nodes wrote ([`ConversationLog::add_counts`]), on the
    /// periodic catch-up. Returns how many counts it wrote; what it could not write stays
    /// gathered for the next time.
    pub(crate) fn fold_byte_counts(&self) -> usize {
        let pending = self.byte_counts.pending();
        if pending.is_empty() {
            return 0;
        }
        let written = match self.convs.engine().add_counts(Collection::Meta, &pending) {
            Ok(written) => written,
            Err(e) => {
                warn!("the stored-bytes counts were not written: {e}");
                return 0;
            }
        };
        let pending: std::collections::HashMap<_, _> = pending.into_iter().collect();
        for (key, value) in &written {
            if let Some(delta) = pending.get(key) {
                self.byte_counts.folded(key, *delta, *value);
            }
        }
        written.len()
    }

    /// The message bytes of conversation `c`, by sender: what its erasure gives back.
    pub(super) fn message_bytes(
        &self,
        c: &ConversationId,
    ) -> Result<Vec<(SigningPublicKey, i64)>, Reject> {
        let mut by_sender: Vec<(SigningPublicKey, i64)> = Vec::new();
        for (_, v) in self.store.scan_prefix(Collection::Messages, c.as_bytes())? {
            let stored: StoredItem = dec(&v, "item")?;
            let Item::Message(env) = &stored.sequenced.item else {
                continue;
            };
            let size = i64::try_from(env.ciphertext.len()).unwrap_or(i64::MAX);
            match by_sender.iter_mut().find(|(k, _)| *k == env.header.sender) {
                Some((_, n)) => *n = n.saturating_add(size),
                None => by_sender.push((env.header.sender, size)),
            }
        }
        Ok(by_sender)
    }
}

/// The refusal of `what` past a stored-bytes quota.
pub(super) fn over_quota(o: OverQuota, what: &str) -> Reject {
    let whose = match o.scope {
        Scope::Account => "this account's messages and attachments",
        Scope::Org => "the messages and attachments in this org's conversations",
    };
    Reject::new(
        ErrorCode::QuotaExceeded,
        format!(
            "stored-bytes quota reached: {whose} take {} of the {} bytes this relay allows ({}); \
             {what} needs {} more. It frees up as conversations are erased or expire",
            o.used,
            o.most,
            o.scope.setting(),
            o.adding
        ),
    )
}

/// A stored-bytes warning as the wire names it (in `attachment_progress` and `stored`).
pub(super) fn byte_quota(w: NearQuota) -> ByteQuota {
    ByteQuota {
        scope: match w.scope {
            Scope::Account => QuotaScope::Account,
            Scope::Org => QuotaScope::Org,
        },
        used: w.used,
        most: w.most,
    }
}
