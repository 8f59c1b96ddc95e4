//! Telling the sessions that watch the audit log (`watch_audit`) that it grew (PROTOCOL.md
//! §13.5 `audit_grew`): at once for this node's own appends; in a cluster, for another node's,
//! when its wake-up says so (`Wake::AuditGrew`, handled once per round by `relay::cluster`),
//! and made up when that wake-up is lost.
//!
//! A node whose listener was reconnecting when the wake-up was sent (or that runs with
//! `cluster_wakeups = 0`) would tell its watchers nothing: they would learn of the entry only
//! at their own next look. So every node remembers the largest size it told its watchers
//! ([`AuditTold`]), and at each periodic catch-up, and at once when its listener (re)connects
//! (`relay::cluster`), if a session here watches, it reads the log's new leaves (one range
//! read from its own size, [`Service::sync_log`]: empty when nothing grew) and tells the
//! watchers if the log it now serves is larger than what it told. Nothing is read while no
//! session here watches. Whoever raises the remembered size tells (the round's wake-up, the
//! make-up or an append here), so a growth is told once per node however it is learnt.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use sealdesk_protocol::wire::{self, Frame, Push};
use tracing::{debug, warn};

use super::Service;

/// **Test-only**: when this variable is set, the node drops the audit log wake-ups other
/// nodes send (`Wake::AuditGrew`), as a node whose wake-up listener was reconnecting at that
/// instant misses them (the make-up tells the watchers). Never set it in production; a build
/// without the test hooks ignores it ([`crate::test_hooks`]).
pub const DROP_AUDIT_WAKEUPS_ENV: &str = "SEALDESK_TEST_DROP_AUDIT_WAKEUPS";

/// The largest audit log size this node told its watchers (or had when it started): the
/// make-up tells them only of a larger one.
#[derive(Debug, Default)]
pub(crate) struct AuditTold(AtomicU64);

impl AuditTold {
    /// Starting from a log of `size` entries: its watchers (none yet) are told of growth past it.
    pub(super) fn new(size: u64) -> Self {
        Self(AtomicU64::new(size))
    }

    /// Records that the watchers are told `size`; `false` if they were told as much already.
    fn raise(&self, size: u64) -> bool {
        self.0.fetch_max(size, Ordering::AcqRel) < size
    }
}

impl Service {
    /// Cluster mode: another node committed audit leaves, up to a log of `size` entries
    /// (`Wake::AuditGrew`, sent in the leaves' transaction). If sessions here watch the log,
    /// reads the leaves other nodes stored ([`Self::sync_log`]) and tells them the size this
    /// node now serves, so a reader that fetches the head at once finds the entry. Nothing is
    /// read when no session here watches.
    pub(crate) fn audit_grew_elsewhere(&self, size: u64) {
        if crate::test_hooks::var_os(DROP_AUDIT_WAKEUPS_ENV).is_some() {
            warn!(size, "an audit log wake-up dropped (test only)");
            return;
        }
        if !self.hub.audit_watched() {
            return;
        }
        if let Some((served, _)) = self.sync_and_tell()
            && served < size
        {
            // Cannot happen (the notification follows the commit): the watchers are told
            // what this node serves, and read the rest at their next look.
            debug!(
                served,
                size, "the audit log read is behind another node's append"
            );
        }
    }

    /// Cluster mode: the make-up of a lost audit wake-up (see the module's docs). If a session
    /// here watches the log, reads the leaves other nodes stored since this node's last read
    /// and tells the watchers if the log grew past what they were told. Called by the periodic
    /// catch-up, and at once when the listener (re)connects (`relay::cluster`).
    pub(crate) fn make_up_audit_growth(&self) {
        if !self.store_shared || !self.hub.audit_watched() {
            return;
        }
        self.metrics.audit_size_reads.inc();
        if self.sync_and_tell().is_some_and(|(_, told)| told) {
            self.metrics.audit_grew_made_up.inc();
        }
    }

    /// Tells the sessions that asked (`watch_audit`) that the log grew to `size` entries
    /// (PROTOCOL.md §13.5 `audit_grew`), unless they were told as much already: a hint, the
    /// reader checks the new head itself. In a cluster the other nodes tell theirs once the
    /// entry is committed ([`Self::audit_grew_elsewhere`]), or at their next catch-up
    /// ([`Self::make_up_audit_growth`]). Returns whether they were told.
    pub(super) fn tell_audit_watchers(&self, size: u64) -> bool {
        if !self.audit_told.raise(size) {
            return false;
        }
        if let Ok(frame) = wire::encode(&Frame::Push(Push::AuditGrew { size })) {
            self.hub.push_audit_watchers(&Bytes::from(frame));
        }
        true
    }

    /// Reads the leaves other nodes stored, then tells the watchers the size of the log this
    /// node serves if they were not told as much. Returns that size and whether they were
    /// told, or `None` (logged) if the log could not be read.
    fn sync_and_tell(&self) -> Option<(u64, bool)> {
        if let Err(e) = self.sync_log() {
            warn!(code = ?e.code, "reading the audit log other nodes grew failed: {}", e.message);
            return None;
        }
        match self.log.len() {
            Ok(served) => Some((served, self.tell_audit_watchers(served))),
            Err(e) => {
                warn!(code = ?e.code, "the audit log's size: {}", e.message);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_larger_size_is_told() {
        let told = AuditTold::new(3);
        assert!(!told.raise(3), "the size at start is not told");
        assert!(told.raise(5));
        assert!(
            !told.raise(4),
            "a smaller size after a larger one is not told"
        );
        assert!(!told.raise(5), "nor the same one twice");
        assert!(told.raise(6));
    }
}
