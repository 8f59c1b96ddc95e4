//! Stored-bytes quotas: how many bytes (ciphertext, as the relay stores it: attachments and
//! messages) one account and the conversations of one org may hold, with a warning ahead of
//! each.
//!
//! The counts are stored by the service (in `meta`, so they survive a restart); [`ByteQuotas`]
//! decides, and [`ByteCounts`] is this node's view of the counts: the value last read from or
//! written to the store, plus what this node added since and has not written yet. An engine
//! only this node writes gets every change written at once, in the same group commit as the
//! bytes it counts; on a shared engine (a cluster), where two nodes would lose each other's
//! updates to one count, changes are gathered here and folded in by a conditional write
//! every catch-up, so a message costs no database round trip of its own.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use crate::config::Limits;

/// The share of a stored-bytes quota (in percent) from which an upload carries a warning.
pub const BYTES_WARN_PERCENT: u64 = 80;

/// Whose stored bytes a quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The uploading account's.
    Account,
    /// The org of the conversation.
    Org,
}

impl Scope {
    /// The limit's metrics label ([`super::LIMIT_LABELS`]).
    pub fn label(self) -> &'static str {
        match self {
            Scope::Account => super::STORED_BYTES_ACCOUNT,
            Scope::Org => super::STORED_BYTES_ORG,
        }
    }

    /// The configuration field that sets it.
    pub fn setting(self) -> &'static str {
        match self {
            Scope::Account => "stored_bytes_per_account",
            Scope::Org => "stored_bytes_per_org",
        }
    }
}

/// A quota that an upload would pass: refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverQuota {
    /// Which quota.
    pub scope: Scope,
    /// Bytes stored under it now.
    pub used: u64,
    /// Bytes the upload would add.
    pub adding: u64,
    /// The most allowed.
    pub most: u64,
}

/// A quota that an upload brings to [`BYTES_WARN_PERCENT`] or more: allowed, with a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NearQuota {
    /// Which quota.
    pub scope: Scope,
    /// Bytes stored under it with the upload.
    pub used: u64,
    /// The most allowed.
    pub most: u64,
}

/// The relay's stored-bytes quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteQuotas {
    /// Largest attachment, plaintext bytes.
    pub max_attachment: u64,
    /// Most bytes one account may have stored.
    pub per_account: u64,
    /// Most bytes the conversations of one org may have stored.
    pub per_org: u64,
    /// Seconds an upload may stay unfinished or unsent before the sweep deletes it.
    pub upload_expiry_secs: u64,
}

impl ByteQuotas {
    /// From the configured limits.
    pub fn new(limits: &Limits) -> Self {
        Self {
            max_attachment: limits.max_attachment_bytes,
            per_account: limits.stored_bytes_per_account,
            per_org: limits.stored_bytes_per_org,
            upload_expiry_secs: limits.attachment_upload_expiry_secs,
        }
    }

    /// Whether `adding` bytes may be stored by an account holding `account` bytes in an org
    /// holding `org` bytes; the account's quota is checked first.
    ///
    /// # Errors
    /// [`OverQuota`] naming the first quota the upload would pass.
    pub fn check(
        &self,
        account: u64,
        org: u64,
        adding: u64,
    ) -> Result<Option<NearQuota>, OverQuota> {
        let mut warning = None;
        for (scope, used, most) in [
            (Scope::Account, account, self.per_account),
            (Scope::Org, org, self.per_org),
        ] {
            let after = used.saturating_add(adding);
            if after > most {
                return Err(OverQuota {
                    scope,
                    used,
                    adding,
                    most,
                });
            }
            if warning.is_none()
                && after.saturating_mul(100) >= most.saturating_mul(BYTES_WARN_PERCENT)
            {
                warning = Some(NearQuota {
                    scope,
                    used: after,
                    most,
                });
            }
        }
        Ok(warning)
    }

    /// The quota of `scope` a count going from `before` to `after` bytes brings to
    /// [`BYTES_WARN_PERCENT`] from below (the moment to tell everyone it concerns).
    pub fn crossed(&self, scope: Scope, before: u64, after: u64) -> Option<NearQuota> {
        let most = match scope {
            Scope::Account => self.per_account,
            Scope::Org => self.per_org,
        };
        let near = |n: u64| n.saturating_mul(100) >= most.saturating_mul(BYTES_WARN_PERCENT);
        (!near(before) && near(after)).then_some(NearQuota {
            scope,
            used: after,
            most,
        })
    }

    /// The warning for a count of `used` bytes under `scope`'s quota, if it is at
    /// [`BYTES_WARN_PERCENT`] or more (a sign-in while above it).
    pub fn near(&self, scope: Scope, used: u64) -> Option<NearQuota> {
        self.crossed(scope, 0, used)
    }
}

/// One count as this node sees it.
#[derive(Debug, Clone, Copy, Default)]
struct Count {
    /// The value last read from or written to the store.
    stored: u64,
    /// Bytes this node added (negative: gave back) and has not written yet.
    pending: i64,
}

impl Count {
    fn current(self) -> u64 {
        apply(self.stored, self.pending)
    }
}

/// `value` changed by `delta`, within `0..=u64::MAX`.
pub fn apply(value: u64, delta: i64) -> u64 {
    if delta >= 0 {
        value.saturating_add(delta.unsigned_abs())
    } else {
        value.saturating_sub(delta.unsigned_abs())
    }
}

/// This node's view of the stored-bytes counts, by the key they are stored under (see the
/// module docs). A std Mutex: held for map updates and, on an engine only this node writes,
/// the store write of the new value (so that writes of one count keep their order), never
/// across an await.
#[derive(Debug, Default)]
pub struct ByteCounts {
    counts: Mutex<HashMap<Vec<u8>, Count>>,
}

impl ByteCounts {
    /// The count under `key` as this node sees it, read with `load` the first time.
    ///
    /// # Errors
    /// `load`'s.
    pub fn current<E>(&self, key: &[u8], load: impl FnOnce() -> Result<u64, E>) -> Result<u64, E> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = counts.get(key) {
            return Ok(c.current());
        }
        let stored = load()?;
        counts.insert(key.to_vec(), Count { stored, pending: 0 });
        Ok(stored)
    }

    /// Changes the count under `key` by `delta`, reading it with `load` the first time, and
    /// hands the new value to `write` (an engine only this node writes: the caller stores
    /// it at once); without `write`, keeps the change to fold in later ([`Self::pending`]).
    /// Returns the count as this node saw it before and after the change (under one lock,
    /// so two changes at once never both see the same before).
    ///
    /// # Errors
    /// `load`'s or `write`'s; the count is unchanged then.
    pub fn add<E>(
        &self,
        key: &[u8],
        delta: i64,
        load: impl FnOnce() -> Result<u64, E>,
        write: Option<&dyn Fn(u64) -> Result<(), E>>,
    ) -> Result<(u64, u64), E> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = match counts.get_mut(key) {
            Some(c) => c,
            None => counts.entry(key.to_vec()).or_insert(Count {
                stored: load()?,
                pending: 0,
            }),
        };
        let before = count.current();
        match write {
            Some(write) => {
                let value = apply(before, delta);
                write(value)?;
                *count = Count {
                    stored: value,
                    pending: 0,
                };
            }
            None => count.pending = count.pending.saturating_add(delta),
        }
        Ok((before, count.current()))
    }

    /// The changes not written yet, by key. Counts with none are forgotten, so that their
    /// next use reads what other nodes wrote meanwhile.
    pub fn pending(&self) -> Vec<(Vec<u8>, i64)> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.retain(|_, c| c.pending != 0);
        counts.iter().map(|(k, c)| (k.clone(), c.pending)).collect()
    }

    /// `folded` of the change under `key` is written, and the store now holds `value` there.
    pub fn folded(&self, key: &[u8], folded: i64, value: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = counts.get_mut(key) {
            c.stored = value;
            c.pending = c.pending.saturating_sub(folded);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas() -> ByteQuotas {
        ByteQuotas {
            max_attachment: 10,
            per_account: 100,
            per_org: 1_000,
            upload_expiry_secs: 1,
        }
    }

    #[test]
    fn an_upload_past_a_quota_is_refused_and_one_near_it_warned() {
        let q = quotas();
        assert_eq!(q.check(0, 0, 79), Ok(None));
        assert_eq!(
            q.check(0, 0, 80),
            Ok(Some(NearQuota {
                scope: Scope::Account,
                used: 80,
                most: 100
            }))
        );
        assert_eq!(
            q.check(90, 0, 11),
            Err(OverQuota {
                scope: Scope::Account,
                used: 90,
                adding: 11,
                most: 100
            })
        );
        assert_eq!(q.check(0, 950, 51).map_err(|e| e.scope), Err(Scope::Org));
        assert_eq!(
            q.check(0, 800, 1).map(|w| w.map(|w| w.scope)),
            Ok(Some(Scope::Org))
        );
    }

    #[test]
    fn a_quota_is_crossed_once_on_the_way_up() {
        let q = quotas();
        let at = |used| NearQuota {
            scope: Scope::Account,
            used,
            most: 100,
        };
        assert_eq!(q.crossed(Scope::Account, 10, 79), None);
        assert_eq!(q.crossed(Scope::Account, 79, 80), Some(at(80)));
        assert_eq!(q.crossed(Scope::Account, 0, 95), Some(at(95)));
        assert_eq!(q.crossed(Scope::Account, 80, 90), None, "already there");
        assert_eq!(q.crossed(Scope::Account, 90, 70), None, "on the way down");
        assert_eq!(q.crossed(Scope::Org, 799, 800).map(|w| w.most), Some(1_000));
        assert_eq!(q.near(Scope::Account, 85), Some(at(85)));
        assert_eq!(q.near(Scope::Account, 79), None);
    }

    #[test]
    fn counts_written_at_once_or_gathered_and_folded() {
        let counts = ByteCounts::default();
        let written = std::cell::Cell::new(0);
        let write = |v: u64| -> Result<(), ()> {
            written.set(v);
            Ok(())
        };
        assert_eq!(counts.add(b"a", 10, || Ok(5), Some(&write)), Ok((5, 15)));
        assert_eq!(written.get(), 15);
        assert_eq!(counts.current(b"a", || Err(())), Ok(15), "not read again");
        counts.add(b"a", -20, || Err(()), Some(&write)).unwrap();
        assert_eq!(written.get(), 0, "never below zero");

        // Gathered: counted at once, written by the fold.
        let none: Option<&dyn Fn(u64) -> Result<(), ()>> = None;
        counts.add(b"b", 7, || Ok(100), none).unwrap();
        assert_eq!(counts.add(b"b", 3, || Err(()), none), Ok((107, 110)));
        assert_eq!(counts.current(b"b", || Err(())), Ok(110));
        assert_eq!(counts.pending(), vec![(b"b".to_vec(), 10)]);
        // Another node added 50 meanwhile: the fold wrote 160, and 1 more came in since.
        counts.add(b"b", 1, || Err(()), none).unwrap();
        counts.folded(b"b", 10, 160);
        assert_eq!(counts.current(b"b", || Err(())), Ok(161));
        counts.folded(b"b", 1, 161);
        assert!(counts.pending().is_empty());
        assert_eq!(
            counts.current(b"b", || Ok::<_, ()>(170)),
            Ok(170),
            "read again"
        );
    }
}
