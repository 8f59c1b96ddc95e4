//! Epoch records held back until their chain is there (ARCHITECTURE.md, "a held-back epoch
//! record is never used").
//!
//! A transfer to an agent that is online pushes it the new epoch's record before the hand-off
//! that makes it a reader of the earlier epochs: the record's previous one is missing, not
//! known to be bad. Such a record is held back instead of refused for good: nothing of it is
//! stored (no epoch state, no secret, no log line), so nothing is sealed in it and none of its
//! messages is opened. When a hand-off to this account arrives, the conversation's records
//! before it that this account has none of are read again from the relay and judged in full,
//! in order ([`Client::ingest_epoch`]): with its chain the record is accepted or refused as
//! any other; without, it is held back again.

use std::collections::HashSet;

use sealdesk_protocol::{epoch::EpochRecord, ids::ConversationId, wire::Item};

use super::{Client, Event, EventKind};
use crate::account::{ConvMeta, EpochStatus};
use crate::error::Result;

impl Client {
    /// Whether `record`, which failed its checks, only waits for its chain: the record of the
    /// epoch before it is not here (and no record of its own epoch is), so it is held back
    /// rather than refused.
    pub(super) fn waits_for_previous(
        &self,
        id: &ConversationId,
        record: &EpochRecord,
    ) -> Result<bool> {
        let Some(previous) = record.epoch.checked_sub(1) else {
            return Ok(false);
        };
        Ok(self.account.epoch(id, previous)?.is_none()
            && self.account.epoch(id, record.epoch)?.is_none())
    }

    /// What the live view hears of a record held back for `why`.
    pub(super) fn held_back(id: &ConversationId, record: &EpochRecord, why: &str) -> Event {
        Event {
            conversation: *id,
            kind: EventKind::Warning {
                text: format!(
                    "epoch {}'s record is held back, not used: {why}; it is checked again \
                     when a hand-off to this account brings the epochs before it",
                    record.epoch
                ),
            },
        }
    }

    /// Before a hand-off to this account stored at `upto` is opened: the conversation read
    /// again, every epoch record stored before `upto` that this account has none of is judged
    /// in full ([`Client::ingest_epoch`]), and the messages before `upto` of the epochs this
    /// account became a member of so are opened (they were logged unreadable, their epoch's
    /// record being held back).
    pub(super) async fn take_held_records(
        &mut self,
        meta: &mut ConvMeta,
        upto: u64,
    ) -> Result<Vec<Event>> {
        let id = meta.id;
        let items: Vec<_> = self
            .history_items(&id)
            .await?
            .into_iter()
            .filter(|s| s.seq < upto)
            .collect();
        let mut events = Vec::new();
        let mut members = HashSet::new();
        for s in &items {
            let Item::Epoch(record) = &s.item else {
                continue;
            };
            let epoch = record.epoch;
            if self.account.epoch(&id, epoch)?.is_some() {
                continue;
            }
            events.extend(
                self.ingest_epoch(meta, s.seq, s.stored_at, record.clone())
                    .await?,
            );
            if self
                .account
                .epoch(&id, epoch)?
                .is_some_and(|st| st.status == EpochStatus::Member)
            {
                members.insert(epoch);
            }
        }
        if members.is_empty() {
            return Ok(events);
        }
        for s in &items {
            if let Item::Message(env) = &s.item
                && members.contains(&env.header.epoch)
            {
                events.extend(
                    self.ingest_message(meta, s.seq, s.stored_at, env, true)
                        .await?,
                );
            }
        }
        Ok(events)
    }
}
