//! Cluster mode: the master's consent pushes made up for.
//!
//! The org's master is no member of a conversation, so no node pushes it a consent from its
//! cursor ([`cluster`](super::cluster)): the node that stored the consent forwards it once to
//! the master's connections on the others ([`Service::forward_item`]). A node that misses the
//! notification (its listener was reconnecting, or it runs with `cluster_wakeups = 0`) would
//! never push it. So the storing node also writes the push to the shared store, under the time
//! it stored it (a `master-push/` row: the master's key and the frame), and every node, at each
//! periodic catch-up and at once when its listener (re)connects (`relay::cluster`), reads the
//! rows stored since its previous read (less [`MARGIN`], for commit delays and the nodes'
//! clock skew) and pushes those whose master is connected to it and that it did not push yet.
//! What a node pushed (its own consents, the forwarded ones, those made up for) it remembers
//! for `3 × MARGIN`, so a consent is pushed once per node; rows older than [`KEEP`] are
//! deleted by whichever node reads them first.

use std::{collections::HashMap, sync::Mutex};

use bytes::Bytes;
use sealdesk_protocol::{
    ids::ConversationId,
    keys::SigningPublicKey,
    wire::{self, Frame, Item, Push, Sequenced},
};
use tracing::warn;

use super::{Reject, Service, lock};
use crate::store::Collection;

/// **Test-only**: when this variable is set, the node drops the consents other nodes forward
/// to the masters connected here, as a node whose wake-up listener was reconnecting at that
/// instant misses them (the make-up delivers them). Never set it in production; a build
/// without the test hooks ignores it ([`crate::test_hooks`]).
pub const DROP_CONSENTS_ENV: &str = "SEALDESK_TEST_DROP_FORWARDED_CONSENTS";

/// The prefix of the master-push rows (collection `Meta`): then the time stored (Unix
/// seconds, big-endian), the conversation and the item's sequence number (big-endian).
const PREFIX: &[u8] = b"master-push/";

/// How far before its previous read a node reads again: more than a consent's row takes to
/// commit after its time is taken plus the nodes' clock skew.
pub(super) const MARGIN: u64 = 60;

/// How long a row is kept (seconds): far beyond any read's window.
pub(super) const KEEP: u64 = 600;

/// Rows read (or pruned) per statement.
const PAGE: usize = 256;

/// The key of the row for item `seq` of `c`, stored at `at`.
fn row_key(at: u64, c: &ConversationId, seq: u64) -> Vec<u8> {
    let mut k = PREFIX.to_vec();
    k.extend_from_slice(&at.to_be_bytes());
    k.extend_from_slice(c.as_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `(at, conversation, seq)` of a row's key, `None` if it is not one.
fn parse_key(key: &[u8]) -> Option<(u64, ConversationId, u64)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (at, rest) = rest.split_first_chunk::<8>()?;
    let (c, seq) = rest.split_at_checked(rest.len().checked_sub(8)?)?;
    Some((
        u64::from_be_bytes(*at),
        ConversationId::try_from(c).ok()?,
        u64::from_be_bytes(seq.try_into().ok()?),
    ))
}

/// What this node pushed to the masters connected to it, and where it read the rows up to.
#[derive(Debug, Default)]
pub(crate) struct MasterPushes {
    inner: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// When the previous read started (this node's clock), if there was one.
    read_at: Option<u64>,
    /// The consents pushed (conversation, sequence number), each with when (this node's clock).
    pushed: HashMap<(ConversationId, u64), u64>,
}

impl MasterPushes {
    /// Records that item `seq` of `c` is pushed now (`now`); `false` if it was already.
    fn claim(&self, c: ConversationId, seq: u64, now: u64) -> Result<bool, Reject> {
        Ok(lock(&self.inner)?.pushed.insert((c, seq), now).is_none())
    }
}

impl Service {
    /// In a cluster, on storing consent `item` pushed to the org's master here: stages the
    /// master-push row other nodes make a lost forward up from, and remembers the push as this
    /// node's (its own read of the row pushes nothing). Answers whether a row was staged: the
    /// caller then waits for the group commit, which writes it. A failed write is logged: the
    /// master still has the forward, and its listing.
    pub(super) fn record_master_push(&self, master: &SigningPublicKey, item: &Sequenced) -> bool {
        if !self.store_shared {
            return false;
        }
        let now = self.clock.now();
        if let Err(e) = self.master_pushes.claim(item.conversation, item.seq, now) {
            warn!(code = ?e.code, "recording a master push failed: {}", e.message);
        }
        let Ok(frame) = wire::encode(&Frame::Push(Push::Item(item.clone()))) else {
            return false;
        };
        let mut value = master.as_bytes().to_vec();
        value.extend_from_slice(&frame);
        let key = row_key(now, &item.conversation, item.seq);
        match self.store.put(Collection::Meta, &key, &value) {
            Ok(()) => true,
            Err(e) => {
                warn!(error = %e, "storing a master push failed; a node that misses its forward will not make it up");
                false
            }
        }
    }

    /// Whether a push another node forwarded (`frame`) is to be pushed here: not a consent
    /// this node already pushed (made up for, from its row); any other frame is.
    pub(super) fn first_forward(&self, frame: &[u8]) -> bool {
        let Ok(Frame::Push(Push::Item(s))) = wire::decode(frame) else {
            return true;
        };
        if !matches!(s.item, Item::Consent(_)) {
            return true;
        }
        if crate::test_hooks::var_os(DROP_CONSENTS_ENV).is_some() {
            warn!(conversation = %s.conversation, seq = s.seq, "a forwarded consent dropped (test only)");
            return false;
        }
        self.master_pushes
            .claim(s.conversation, s.seq, self.clock.now())
            .unwrap_or(true)
    }

    /// Reads the master-push rows stored since this node's previous read (less [`MARGIN`]) and
    /// pushes to the masters connected here the consents not pushed here yet; forgets the
    /// pushes too old to be read again and deletes rows older than [`KEEP`]. Called by the
    /// periodic catch-up, and at once when the listener (re)connects (`relay::cluster`).
    pub(crate) fn make_up_master_pushes(&self) {
        if !self.store_shared {
            return;
        }
        let now = self.clock.now();
        let from = match lock(&self.master_pushes.inner) {
            Ok(mut seen) => {
                let cutoff = now.saturating_sub(3 * MARGIN);
                seen.pushed.retain(|_, at| *at >= cutoff);
                seen.read_at.replace(now).unwrap_or(now)
            }
            Err(_) => return,
        }
        .saturating_sub(MARGIN);
        let mut start = PREFIX.to_vec();
        start.extend_from_slice(&from.to_be_bytes());
        loop {
            let rows = match self
                .store
                .scan_prefix_from(Collection::Meta, PREFIX, &start, PAGE)
            {
                Ok(rows) => rows,
                Err(e) => {
                    warn!(error = %e, "reading the master pushes failed");
                    return;
                }
            };
            let full = rows.len() >= PAGE;
            for (key, value) in &rows {
                self.make_up_one(key, value, now);
            }
            match rows.last() {
                Some((key, _)) if full => {
                    start = key.clone();
                    start.push(0);
                }
                _ => break,
            }
        }
        self.prune_master_pushes(now);
        self.metrics.master_push_reads.inc();
    }

    /// Pushes the row `key`, `value` to its master if connected here and not pushed yet.
    fn make_up_one(&self, key: &[u8], value: &[u8], now: u64) {
        let Some((_, c, seq)) = parse_key(key) else {
            return;
        };
        let Some((master, frame)) = value.split_first_chunk::<32>() else {
            return;
        };
        let Ok(master) = SigningPublicKey::try_from(master.as_slice()) else {
            return;
        };
        if !self.hub.is_online(&master) {
            return;
        }
        if self.master_pushes.claim(c, seq, now).unwrap_or(false) {
            self.hub.push(&master, &Bytes::copy_from_slice(frame));
            self.metrics.master_pushes_made_up.inc();
        }
    }

    /// Deletes up to a page of rows older than [`KEEP`].
    fn prune_master_pushes(&self, now: u64) {
        let old = now.saturating_sub(KEEP);
        let rows = match self
            .store
            .scan_prefix_from(Collection::Meta, PREFIX, PREFIX, PAGE)
        {
            Ok(rows) => rows,
            Err(e) => {
                warn!(error = %e, "reading the master pushes to prune failed");
                return;
            }
        };
        for (key, _) in rows {
            if parse_key(&key).is_none_or(|(at, _, _)| at >= old) {
                break;
            }
            if let Err(e) = self.store.delete(Collection::Meta, &key) {
                warn!(error = %e, "pruning a master push failed");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_row_key_reads_back_and_sorts_by_time() {
        let c = ConversationId::from_bytes(&[7u8; 16]).unwrap();
        let k = row_key(1_700_000_000, &c, 42);
        assert_eq!(parse_key(&k), Some((1_700_000_000, c, 42)));
        assert!(row_key(5, &c, 9) < row_key(6, &c, 1));
        assert_eq!(parse_key(b"master-push/short"), None);
    }
}
