//! Holes in the relay's sequence: items without a sender counter (an epoch record, a hand-off,
//! a consent, a release notice) that never arrived. The relay numbers a conversation's items
//! 1, 2, 3 … without gaps, and a customer may read every one of them (it is a member of every
//! epoch, and the items of no epoch — consents, notices — are the customer's), so a sequence
//! number the customer's cursor jumped over is an item the relay withheld. Such a hole is asked
//! for again as missing counters are ([`REFETCH_LIMIT`] requests, at most [`REFETCH_PAGES`]
//! pages per sync, a try only when the cursor moved), then shown as not delivered for good.
//!
//! Agents too, once the relay names what it skips (`client::skipped`): a sequence number
//! neither delivered nor inside a skipped run is a hole, and a skipped run that claims an
//! epoch the agent is a member of is a lie, kept as a hole with the claim
//! ([`Hole::claimed`]). A page that stops short of the conversation's head (the newest items
//! withheld) leaves a hole after the cursor, asked for again by each sync (PROTOCOL.md
//! §13.10).
//!
//! The stored list is bounded ([`MAX_HOLES`]): a relay that alternates claims, or makes one
//! more hole after each try, would otherwise grow it by an entry per sync. Past the bound the
//! two newest holes are merged into one summary run ([`Hole::missing`]) that keeps how many
//! numbers were missing in it: the reader is still told that items were withheld there, and
//! at least how many; such a run is given up at once (asking for a span that holds delivered
//! items would hand them in twice) and is never narrowed.

use std::collections::BTreeSet;

use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    wire::{ErrorCode, Item, Request, Response, Sequenced, SkippedRange},
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
    /// What the relay claimed the items were when that claim is a lie (a skipped run naming
    /// an epoch this account is a member of, or any skipped run shown to a customer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed: Option<Claim>,
    /// A summary run past [`MAX_HOLES`]: `from..=to` also spans items that did arrive, and
    /// this many of its numbers were missing when it was made (at least that many are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<u64>,
}

/// Holes stored per conversation, at most (PROTOCOL.md §13.10). Past it the two newest are
/// merged into one summary run, so the list stays within this many entries whatever a relay
/// does, and the count of missing numbers is kept.
pub const MAX_HOLES: usize = 256;

impl Hole {
    /// How many sequence numbers are missing in this run (at least, for a summary run).
    #[must_use]
    pub fn missing_count(&self) -> u64 {
        self.missing
            .unwrap_or_else(|| self.to.saturating_sub(self.from).saturating_add(1))
    }

    /// One summary run for `a` and the newer `b`: their span, their missing numbers summed,
    /// given up (see the module docs), and a lie caught in either kept.
    fn merged(a: Self, b: Self) -> Self {
        Self {
            from: a.from.min(b.from),
            to: a.to.max(b.to),
            tries: a.tries.max(b.tries).max(REFETCH_LIMIT),
            claimed: a.claimed.or(b.claimed),
            missing: Some(a.missing_count().saturating_add(b.missing_count())),
        }
    }
}

/// What a skipped run said its items were (PROTOCOL.md §13.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Claim {
    /// Items of this epoch.
    Epoch(u32),
    /// Conversation-level items (consents, release notices).
    ConversationLevel,
}

impl Claim {
    /// The claim of a skipped run.
    #[must_use]
    pub fn of(epoch: Option<u32>) -> Self {
        epoch.map_or(Self::ConversationLevel, Self::Epoch)
    }
}

/// A `History` page the counters' refetch read in the current sync (`gaps.rs`), kept for
/// the holes' refetch: a hole it covers is not asked for again in the same sync.
#[derive(Clone, Debug)]
pub struct RefetchedPage {
    /// The conversation.
    pub(crate) conversation: ConversationId,
    /// The request's `after`.
    pub(crate) after: u64,
    /// The last sequence number the page answers for.
    pub(crate) to: u64,
    /// Its items.
    pub(crate) items: Vec<Sequenced>,
    /// Its skipped runs.
    pub(crate) skipped: Vec<SkippedRange>,
}

impl RefetchedPage {
    fn covers(&self, h: &Hole) -> bool {
        self.after < h.from && h.to <= self.to
    }
}

/// The state of one refetch of holes.
struct Pass {
    /// The holes asked for.
    wanted: Vec<Hole>,
    /// The cursor: items after it are not this pass's.
    upto: u64,
    /// Messages refused so far.
    rejected: BTreeSet<u64>,
    /// Epochs whose record came in a hole.
    late_epochs: BTreeSet<u32>,
}

/// A conversation's holes and the cursor at the last try.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Holes {
    cursor: u64,
    open: Vec<Hole>,
    /// The relay named skipped runs and the head in this conversation's pages: from then on
    /// an agent's skipped sequence numbers are holes too (a relay that stops naming them
    /// does not switch the check off).
    #[serde(default)]
    pub(super) named: bool,
    /// Skipped runs claiming an epoch whose record this account did not have yet: judged
    /// when it arrives ([`super::skipped`]).
    #[serde(default)]
    pub(super) pending: Vec<SkippedRange>,
}

impl Holes {
    /// Adds `from..=to` as a hole, only the numbers no open hole covers yet.
    pub(super) fn add(&mut self, from: u64, to: u64, claimed: Option<Claim>) {
        let mut next = from;
        let mut covered: Vec<(u64, u64)> = self
            .open
            .iter()
            .filter(|h| h.from <= to && from <= h.to)
            .map(|h| (h.from, h.to))
            .collect();
        covered.sort_unstable();
        for (a, b) in covered {
            if a > next {
                self.push(next, a - 1, claimed);
            }
            next = next.max(b.saturating_add(1));
        }
        if next <= to {
            self.push(next, to, claimed);
        }
    }

    fn push(&mut self, from: u64, to: u64, claimed: Option<Claim>) {
        // A run right after an open hole that carries the same claim and was not asked for yet
        // extends it: a relay naming one number per run (or per page) cannot grow the list,
        // stored and read at every page, one entry at a time.
        if let Some(h) = self
            .open
            .iter_mut()
            .find(|h| h.to.checked_add(1) == Some(from) && h.tries == 0 && h.claimed == claimed)
        {
            h.to = to;
            return;
        }
        self.open.push(Hole {
            from,
            to,
            tries: 0,
            claimed,
            missing: None,
        });
        self.open.sort_by_key(|h| h.from);
        self.cap();
    }

    /// Keeps the list within [`MAX_HOLES`]: the two newest holes become one summary run until
    /// it fits (see the module docs).
    fn cap(&mut self) {
        while self.open.len() > MAX_HOLES {
            let (Some(b), Some(a)) = (self.open.pop(), self.open.pop()) else {
                return;
            };
            self.open.push(Hole::merged(a, b));
        }
    }

    /// Removes `from..=to` from the open holes (but summary runs, which are never narrowed:
    /// the numbers in them that arrived are not known one by one).
    pub(super) fn close_range(&mut self, from: u64, to: u64) {
        let mut out = Vec::with_capacity(self.open.len() + 1);
        for h in self.open.drain(..) {
            if to < h.from || from > h.to || h.missing.is_some() {
                out.push(h);
                continue;
            }
            if h.from < from {
                out.push(Hole { to: from - 1, ..h });
            }
            if to < h.to {
                out.push(Hole { from: to + 1, ..h });
            }
        }
        self.open = out;
        self.cap();
    }

    /// Removes `from..=to` from the open holes that carry no caught lie.
    pub(super) fn close_unclaimed(&mut self, from: u64, to: u64) {
        let (lies, rest): (Vec<Hole>, Vec<Hole>) =
            self.open.drain(..).partition(|h| h.claimed.is_some());
        self.open = rest;
        self.close_range(from, to);
        self.open.extend(lies);
        self.open.sort_by_key(|h| h.from);
        self.cap();
    }

    /// Marks the open holes inside `from..=to` with a lie the relay told about them.
    pub(super) fn blame(&mut self, from: u64, to: u64, claim: Claim) {
        for h in &mut self.open {
            if h.from <= to && from <= h.to && h.claimed.is_none() {
                h.claimed = Some(claim);
            }
        }
    }

    /// Counts one more request for the open holes after `cursor` (the newest items, asked
    /// for again by every sync).
    pub(super) fn tried_tail(&mut self, cursor: u64) {
        for h in &mut self.open {
            if h.from > cursor {
                h.tries = h.tries.saturating_add(1);
            }
        }
    }

    /// Removes `seq` from the open holes (splitting one if it is inside).
    pub(super) fn close(&mut self, seq: u64) {
        self.close_range(seq, seq);
    }

    /// Whether `seq` is in a hole kept number by number (a summary run is not: an item in
    /// its span may have arrived already).
    fn contains(&self, seq: u64) -> bool {
        self.open
            .iter()
            .any(|h| h.missing.is_none() && h.from <= seq && seq <= h.to)
    }
}

pub(super) fn load(account: &Account, id: &ConversationId) -> Result<Holes> {
    let mut holes: Holes =
        crate::store::get_cbor(account.vault(), &name::holes(id))?.unwrap_or_default();
    // A list stored before the bound, or by a client without it, is brought within it.
    holes.cap();
    Ok(holes)
}

pub(super) fn save(account: &Account, id: &ConversationId, holes: &Holes) -> Result<()> {
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

/// One page of a conversation's history as a refetch reads it: the items, whether more
/// follow, and the runs the relay says it skipped.
pub(super) type HistoryPage = (Vec<Sequenced>, bool, Vec<SkippedRange>);

impl Client {
    /// Reads the page of `id`'s history after `after`, for a refetch of holes or of missing
    /// counters (`gaps`). `None` when the relay no longer serves the conversation to this
    /// account (a transfer): there is nothing to refetch from, and what is missing stays shown.
    ///
    /// # Errors
    /// Transport errors, other relay errors, and an answer that is not a page.
    pub(super) async fn refetch_page(
        &self,
        id: &ConversationId,
        after: u64,
    ) -> Result<Option<HistoryPage>> {
        let page = self
            .session
            .request(Request::History {
                conversation: *id,
                after,
                limit: HISTORY_PAGE,
            })
            .await;
        match page {
            Ok(Response::Items {
                items,
                more,
                skipped,
                ..
            }) => Ok(Some((items, more, skipped))),
            Err(ClientError::Relay {
                code: ErrorCode::Forbidden | ErrorCode::NotFound,
                ..
            }) => Ok(None),
            Ok(other) => Err(unexpected("History", &other)),
            Err(e) => Err(e),
        }
    }

    /// Notes the sequence numbers between the cursor and item `seq` as a hole, for an account
    /// that reads every item (a customer), or an agent whose relay names what it skips.
    /// Called before the item (or skipped run) moves the cursor.
    pub(super) fn note_hole(&self, meta: &ConvMeta, seq: u64) -> Result<()> {
        if seq <= meta.cursor.saturating_add(1) {
            return Ok(());
        }
        let role = self.account.role();
        if role != Role::Customer && role != Role::Agent {
            return Ok(());
        }
        let mut holes = load(&self.account, &meta.id)?;
        if role == Role::Agent && !holes.named {
            return Ok(());
        }
        holes.add(meta.cursor + 1, seq - 1, None);
        save(&self.account, &meta.id, &holes)
    }

    /// Closes the hole `seq` was in, if any (an item pushed in order after the cursor, inside
    /// the newest numbers a page did not bring).
    pub(super) fn close_hole(&self, id: &ConversationId, seq: u64) -> Result<()> {
        let mut holes = load(&self.account, id)?;
        if holes.contains(seq) {
            holes.close(seq);
            save(&self.account, id, &holes)?;
        }
        Ok(())
    }

    /// Asks the relay again for the items in the open holes of `id` (see the module docs).
    /// An item that arrives is processed as it would have been in order; messages of an
    /// epoch whose record arrives late, refused before for want of it, are opened again.
    ///
    /// # Errors
    /// Transport and storage errors.
    pub(super) async fn refetch_holes(&mut self, id: &ConversationId) -> Result<Vec<Event>> {
        // Pages the counters' refetch read in this sync serve the holes they cover.
        let reused: Vec<RefetchedPage> = std::mem::take(&mut self.refetched)
            .into_iter()
            .filter(|p| p.conversation == *id)
            .collect();
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
        if wanted.is_empty() || upto == holes.cursor {
            return Ok(Vec::new());
        }
        let mut pass = Pass {
            wanted,
            upto,
            rejected: self
                .account
                .log(id)?
                .iter()
                .filter(|e| matches!(e, LogEntry::Rejected { .. }))
                .map(LogEntry::seq)
                .collect(),
            late_epochs: BTreeSet::new(),
        };
        let mut events = Vec::new();
        let mut asked = false;
        for page in &reused {
            if !pass.wanted.iter().any(|h| page.covers(h)) {
                continue;
            }
            asked = true;
            events.extend(
                self.refetched_page(id, &mut pass, page.after, page.items.clone(), &page.skipped)
                    .await?,
            );
        }
        let remote: Vec<Hole> = pass
            .wanted
            .iter()
            .filter(|h| !reused.iter().any(|p| p.covers(h)))
            .copied()
            .collect();
        let mut pages = 0u32;
        if let Some(first) = remote.iter().map(|h| h.from).min() {
            let last_wanted = remote.iter().map(|h| h.to).max().unwrap_or(first);
            let mut after = first - 1;
            while after < upto && pages < REFETCH_PAGES {
                // Past the last hole only to reopen messages of an epoch that came late.
                if after >= last_wanted && pass.late_epochs.is_empty() {
                    break;
                }
                pages += 1;
                let Some((items, more, skipped)) = self.refetch_page(id, after).await? else {
                    break;
                };
                let Some(last) = super::skipped::page_end(&items, &skipped) else {
                    break;
                };
                events.extend(
                    self.refetched_page(id, &mut pass, after, items, &skipped)
                        .await?,
                );
                if !more || last <= after {
                    break;
                }
                after = last;
            }
        }
        // Re-read: `ingest_late` closed what arrived. Each hole still open that was asked
        // for has had one more request.
        let mut holes = load(&self.account, id)?;
        if pages > 0 || asked {
            for h in &mut holes.open {
                if pass.wanted.iter().any(|w| w.from <= h.to && h.from <= w.to) {
                    h.tries = h.tries.saturating_add(1);
                }
            }
        }
        holes.cursor = upto;
        save(&self.account, id, &holes)?;
        Ok(events)
    }

    /// One page read again for the holes (see [`Self::refetch_holes`]): an item in a hole is
    /// processed as in order; a message refused before for want of an epoch record that has
    /// now come is read again; a skipped run that holds up closes the hole it explains.
    async fn refetched_page(
        &mut self,
        id: &ConversationId,
        pass: &mut Pass,
        after: u64,
        mut items: Vec<Sequenced>,
        skipped: &[SkippedRange],
    ) -> Result<Vec<Event>> {
        for run in skipped {
            if run.to > after && run.from <= pass.upto {
                self.explain_hole(id, run)?;
            }
        }
        items.sort_by_key(|s| s.seq);
        let mut events = Vec::new();
        for s in items {
            if s.seq <= after || s.seq > pass.upto {
                continue;
            }
            let in_hole = pass.wanted.iter().any(|h| h.from <= s.seq && s.seq <= h.to)
                && load(&self.account, id)?.contains(s.seq);
            if in_hole {
                if let Item::Epoch(r) = &s.item {
                    pass.late_epochs.insert(r.epoch);
                }
                events.extend(self.ingest_late(s).await?);
                continue;
            }
            // A message refused before because its epoch's record had not arrived.
            if let Item::Message(env) = &s.item
                && pass.late_epochs.contains(&env.header.epoch)
                && pass.rejected.remove(&s.seq)
            {
                let mut meta = self.meta(id)?;
                let got = self
                    .ingest_message(&mut meta, s.seq, s.stored_at, env, false)
                    .await?;
                self.account.save_conversation(&meta)?;
                events.extend(got);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_runs_with_the_same_claim_make_one_hole() {
        let mut h = Holes::default();
        for seq in 10..300 {
            h.add(seq, seq, None);
        }
        assert_eq!(h.open.len(), 1);
        assert_eq!((h.open[0].from, h.open[0].to), (10, 299));
        // Asked for once, a hole is no longer extended: the next numbers are a hole of their own.
        h.tried_tail(0);
        h.add(300, 300, None);
        assert_eq!(h.open.len(), 2);
        // Another claim is another hole.
        h.add(301, 301, Some(Claim::of(Some(1))));
        assert_eq!(h.open.len(), 3);
        assert!(h.contains(150) && h.contains(301) && !h.contains(302));
    }

    /// A relay that alternates its claims run by run, and one that makes one more hole after
    /// each try: the stored list stays within `MAX_HOLES`, and the numbers missing are all
    /// still counted.
    #[test]
    fn the_stored_holes_stay_within_the_bound_and_keep_their_count() {
        let mut h = Holes::default();
        for seq in 1..=5_000u64 {
            let claim = (seq % 2 == 0).then_some(Claim::ConversationLevel);
            h.add(seq, seq, claim);
        }
        assert!(h.open.len() <= MAX_HOLES, "{} holes", h.open.len());
        assert_eq!(h.open.iter().map(Hole::missing_count).sum::<u64>(), 5_000);
        // A summary run says items are missing there and is given up: not asked for again.
        let summary = h.open.last().unwrap();
        assert!(summary.missing.is_some() && summary.tries >= REFETCH_LIMIT);

        let mut h = Holes::default();
        for k in 0..3_000u64 {
            h.add(2 * k + 1, 2 * k + 1, None);
            h.tried_tail(0);
        }
        assert!(h.open.len() <= MAX_HOLES, "{} holes", h.open.len());
        assert_eq!(h.open.iter().map(Hole::missing_count).sum::<u64>(), 3_000);
        // An item that arrives inside a summary run's span does not split it (its numbers
        // that arrived are not known one by one), and is not taken for a missing one.
        let s = *h.open.last().unwrap();
        h.close(s.to);
        assert_eq!(h.open.last(), Some(&s));
        assert!(!h.contains(s.to));
    }
}
