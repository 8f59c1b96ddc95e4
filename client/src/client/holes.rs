//! Holes in the relay's sequence: items without a sender counter (an epoch record, a hand-off,
//! a consent, a release notice) that never arrived. The relay numbers a conversation's items
//! 1, 2, 3 … without gaps, and a customer may read every one of them (it is a member of every
//! epoch, and the items of no epoch — consents, notices — are the customer's), so a sequence
//! number the customer's cursor jumped over is an item the relay withheld. Such a hole is asked
//! for again as missing counters are ([`REFETCH_LIMIT`] requests, at most [`REFETCH_PAGES`]
//! pages per sync, a try only when the cursor moved), then shown as not delivered for good.
//!
//! Agents are not covered: the relay skips, for an agent, the items of epochs it may not read
//! and the items of no epoch, and says nothing of them, so an agent cannot tell a hole from
//! an item it is not shown (PROTOCOL.md §8.6).

use std::collections::BTreeSet;

use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    wire::{ErrorCode, Item, Request, Response, Sequenced},
};
use serde::{Deserialize, Serialize};

use super::{Client, Event, HISTORY_PAGE, REFETCH_LIMIT, REFETCH_PAGES};
use crate::account::{Account, ConvMeta, LogEntry};
use crate::error::{ClientError, Result};
use crate::reply::unexpected;
use crate::store::name;

/// A run of sequence numbers never delivered, with the requests made for it so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hole {
    /// First missing sequence number.
    pub from: u64,
    /// Last missing sequence number (inclusive).
    pub to: u64,
    /// Requests made for it so far.
    pub tries: u32,
}

/// A conversation's holes and the cursor at the last try.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Holes {
    cursor: u64,
    open: Vec<Hole>,
}

impl Holes {
    /// Removes `seq` from the open holes (splitting one if it is inside).
    fn close(&mut self, seq: u64) {
        let mut out = Vec::with_capacity(self.open.len() + 1);
        for h in self.open.drain(..) {
            if seq < h.from || seq > h.to {
                out.push(h);
                continue;
            }
            if h.from < seq {
                out.push(Hole { to: seq - 1, ..h });
            }
            if seq < h.to {
                out.push(Hole { from: seq + 1, ..h });
            }
        }
        self.open = out;
    }

    fn contains(&self, seq: u64) -> bool {
        self.open.iter().any(|h| h.from <= seq && seq <= h.to)
    }
}

fn load(account: &Account, id: &ConversationId) -> Result<Holes> {
    Ok(crate::store::get_cbor(account.vault(), &name::holes(id))?.unwrap_or_default())
}

fn save(account: &Account, id: &ConversationId, holes: &Holes) -> Result<()> {
    crate::store::put_cbor(account.vault(), &name::holes(id), holes)
}

/// The holes of a conversation still open, for its history (`tries >= REFETCH_LIMIT`: asked
/// for that many times and given up).
///
/// # Errors
/// Storage errors.
pub fn open_holes(account: &Account, id: &ConversationId) -> Result<Vec<Hole>> {
    Ok(load(account, id)?.open)
}

impl Client {
    /// Notes the sequence numbers between the cursor and item `seq` as a hole, for an account
    /// that reads every item (a customer). Called before the item moves the cursor.
    pub(super) fn note_hole(&self, meta: &ConvMeta, seq: u64) -> Result<()> {
        if self.account.role() != Role::Customer || seq <= meta.cursor.saturating_add(1) {
            return Ok(());
        }
        let mut holes = load(&self.account, &meta.id)?;
        holes.open.push(Hole {
            from: meta.cursor + 1,
            to: seq - 1,
            tries: 0,
        });
        save(&self.account, &meta.id, &holes)
    }

    /// Asks the relay again for the items in the open holes of `id` (see the module docs).
    /// An item that arrives is processed as it would have been in order; messages of an
    /// epoch whose record arrives late, refused before for want of it, are opened again.
    ///
    /// # Errors
    /// Transport and storage errors.
    pub(super) async fn refetch_holes(&mut self, id: &ConversationId) -> Result<Vec<Event>> {
        let mut holes = load(&self.account, id)?;
        // A hole another path closed (a message the counters' refetch brought) is closed.
        let before = holes.open.clone();
        for e in self.account.log(id)? {
            if !matches!(e, LogEntry::Rejected { .. }) {
                holes.close(e.seq());
            }
        }
        if holes.open != before {
            save(&self.account, id, &holes)?;
        }
        let upto = self.meta(id)?.cursor;
        let wanted: Vec<Hole> = holes
            .open
            .iter()
            .filter(|h| h.tries < REFETCH_LIMIT)
            .copied()
            .collect();
        let Some(first) = wanted.iter().map(|h| h.from).min() else {
            return Ok(Vec::new());
        };
        if upto == holes.cursor {
            return Ok(Vec::new());
        }
        let rejected: BTreeSet<u64> = self
            .account
            .log(id)?
            .iter()
            .filter(|e| matches!(e, LogEntry::Rejected { .. }))
            .map(LogEntry::seq)
            .collect();
        let last_wanted = wanted.iter().map(|h| h.to).max().unwrap_or(first);
        let mut late_epochs: BTreeSet<u32> = BTreeSet::new();
        let mut events = Vec::new();
        let mut after = first - 1;
        let mut pages = 0u32;
        while after < upto && pages < REFETCH_PAGES {
            // Past the last hole only to reopen messages of an epoch that came late.
            if after >= last_wanted && late_epochs.is_empty() {
                break;
            }
            pages += 1;
            let page = self
                .session
                .request(Request::History {
                    conversation: *id,
                    after,
                    limit: HISTORY_PAGE,
                })
                .await;
            let (mut items, more) = match page {
                Ok(Response::Items { items, more }) => (items, more),
                Err(ClientError::Relay {
                    code: ErrorCode::Forbidden | ErrorCode::NotFound,
                    ..
                }) => break,
                Ok(other) => return Err(unexpected("History", &other)),
                Err(e) => return Err(e),
            };
            items.sort_by_key(|s| s.seq);
            let Some(last) = items.last().map(|s| s.seq) else {
                break;
            };
            for s in items {
                if s.seq <= after || s.seq > upto {
                    continue;
                }
                let in_hole = wanted.iter().any(|h| h.from <= s.seq && s.seq <= h.to)
                    && holes.contains(s.seq);
                if in_hole {
                    if let Item::Epoch(r) = &s.item {
                        late_epochs.insert(r.epoch);
                    }
                    events.extend(self.ingest_late(s).await?);
                    continue;
                }
                // A message refused before because its epoch's record had not arrived.
                if let Item::Message(env) = &s.item
                    && rejected.contains(&s.seq)
                    && late_epochs.contains(&env.header.epoch)
                {
                    let mut meta = self.meta(id)?;
                    let got = self
                        .ingest_message(&mut meta, s.seq, s.stored_at, env, false)
                        .await?;
                    self.account.save_conversation(&meta)?;
                    events.extend(got);
                }
            }
            if !more || last <= after {
                break;
            }
            after = last;
        }
        // Re-read: `ingest_late` closed what arrived. Each hole still open that was asked
        // for has had one more request.
        let mut holes = load(&self.account, id)?;
        if pages > 0 {
            for h in &mut holes.open {
                if wanted.iter().any(|w| w.from <= h.to && h.from <= w.to) {
                    h.tries = h.tries.saturating_add(1);
                }
            }
        }
        holes.cursor = upto;
        save(&self.account, id, &holes)?;
        Ok(events)
    }

    /// Processes an item that arrived after the cursor passed it: as in order, without
    /// moving the cursor; closes its hole.
    async fn ingest_late(&mut self, s: Sequenced) -> Result<Vec<Event>> {
        let id = s.conversation;
        let mut meta = self.meta(&id)?;
        let last_epoch = meta.last_epoch;
        let mut events = Vec::new();
        match &s.item {
            Item::Epoch(record) => {
                if let Some(e) = self
                    .ingest_epoch(&mut meta, s.seq, s.stored_at, record.clone())
                    .await?
                {
                    events.push(e);
                }
                // A record arriving late is not the newest epoch if a later one came first.
                meta.last_epoch = meta.last_epoch.max(last_epoch);
            }
            Item::Message(env) => {
                events.extend(
                    self.ingest_message(&mut meta, s.seq, s.stored_at, env, true)
                        .await?,
                );
            }
            Item::HandOff(h) => events.extend(self.ingest_handoff(&mut meta, s.seq, h).await?),
            Item::Consent(_) => {}
            Item::Notice { entry, index } => {
                events.extend(
                    self.ingest_notice(&meta, s.seq, s.stored_at, entry, *index)
                        .await?,
                );
            }
        }
        self.account.save_conversation(&meta)?;
        let mut holes = load(&self.account, &id)?;
        holes.close(s.seq);
        save(&self.account, &id, &holes)?;
        Ok(events)
    }
}
