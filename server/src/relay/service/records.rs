//! Read-modify-write records that several relay nodes may update at the same instant: a
//! release request's shares and refusals, a dispute ticket's decisions, a witness's latest
//! cosignature, the stored-bytes counts. [`Service::writes`] serialises an update within one
//! node only; across nodes each write is conditional on the value read
//! ([`ConversationLog::replace_if`], or [`ConversationLog::insert_if_absent_now`] for a record
//! not stored yet), and an update another node overtook is made again from a fresh read, at
//! most [`MAX_REPLACE`] times. On an engine only this node writes, the condition always holds
//! and nothing changes.
//!
//! [`ConversationLog::replace_if`]: crate::store::ConversationLog::replace_if
//! [`ConversationLog::insert_if_absent_now`]: crate::store::ConversationLog::insert_if_absent_now

use sealdesk_protocol::wire::ErrorCode;
use tracing::warn;

use super::{Reject, Service, lock, reject};
use crate::store::Collection;

/// How many times an update is made again after another relay node changed its record first.
/// Each retry follows a fresh read, and nodes answer a handful of requests per record at once
/// (the trustees of a release, the arbiters of a ticket), so running out means something else
/// keeps rewriting it.
pub(super) const MAX_REPLACE: usize = 16;

impl Service {
    /// Updates the record at `key` of `collection`: `f` gets what is stored (`None` if
    /// nothing) and answers the new value (`None`: write nothing, `f` wrote what it needed
    /// itself) and what to return, or a refusal, which is returned as is. `f` runs under
    /// [`Service::writes`]. The write is conditional on what `f` read; if another node wrote
    /// first, `f` runs again on the fresh value. `what` names the record in the refusal when the retries
    /// run out.
    ///
    /// The write is not durable yet on every engine: the caller waits for the group commit
    /// (`self.commit.durable()`) before it answers, as for any other write.
    ///
    /// # Errors
    ///
    /// `f`'s refusal; `conflict` if other nodes overtook every one of [`MAX_REPLACE`]
    /// attempts; storage errors.
    pub(super) fn update_record<T>(
        &self,
        collection: Collection,
        key: &[u8],
        what: &str,
        mut f: impl FnMut(Option<&[u8]>) -> Result<(Option<Vec<u8>>, T), Reject>,
    ) -> Result<T, Reject> {
        for _ in 0..MAX_REPLACE {
            let _w = lock(&self.writes)?;
            if let Some(out) = self.write_if_unchanged(collection, key, &mut f)? {
                return Ok(out);
            }
        }
        warn!(
            collection = collection.name(),
            what, "conditional update overtaken every time"
        );
        reject(
            ErrorCode::Conflict,
            format!("other relay nodes kept changing {what} at the same time; send it again"),
        )
    }

    /// One attempt of a conditional update, the mechanism beneath [`Self::update_record`] and
    /// the open-conversation records (`service/open_quota.rs`): reads the record at `key` of
    /// `collection`, `f` answers the new value (`None`: write nothing) and what to return,
    /// and the value is written only if the record still holds what was read. `Some` once
    /// done; `None` if another writer changed the record first (read again and retry). The
    /// caller holds whatever lock orders this node's writers of the record.
    ///
    /// # Errors
    ///
    /// `f`'s refusal; storage errors.
    pub(super) fn write_if_unchanged<T>(
        &self,
        collection: Collection,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> Result<(Option<Vec<u8>>, T), Reject>,
    ) -> Result<Option<T>, Reject> {
        let engine = self.convs.engine();
        let before = self.store.get(collection, key)?;
        let (after, out) = f(before.as_deref())?;
        let written = match (&before, after) {
            (_, None) => true,
            (Some(old), Some(after)) => engine.replace_if(collection, key, old, &after)?,
            (None, Some(after)) => engine.insert_if_absent_now(collection, key, &after)?,
        };
        Ok(written.then_some(out))
    }
}
