//! The runs of sequence numbers a history page skips, and its head (PROTOCOL.md §13.10).
//!
//! The relay names, in each page, the runs of items the caller may not read (`skipped`: an
//! epoch the caller is no reader of, or conversation-level items) and the conversation's
//! newest durable sequence number (`head`). A page is processed in sequence order: an item is
//! ingested, a skipped run moves the cursor past its numbers. What neither covers is a hole
//! ([`super::holes`]), for an agent as for a customer. A run is judged by what this account
//! knows:
//!
//! - shown to a customer, any run is a lie: the customer reads every item;
//! - naming an epoch whose record lists this account as a member, or one it was handed, is a
//!   lie: the relay must serve those items;
//! - naming an epoch whose record has not arrived is kept pending and judged when it does;
//! - anything else (an epoch before this account joined, conversation-level items) holds up.
//!   A relay can still pass off a withheld item as a consent or a notice (SECURITY.md).
//!
//! A lie is kept as a hole carrying the claim ([`super::holes::Hole::claimed`]), asked for
//! again like any hole and shown as withheld. A page with `more = false` whose items and runs
//! stop short of `head` leaves the newest numbers as a hole after the cursor.

use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    wire::{Sequenced, SkippedRange},
};

use super::holes::{Claim, load, save};
use super::{Client, Event};
use crate::account::EpochStatus;
use crate::error::Result;

/// The last sequence number a page answers for: its last item or run (`None`: an empty page).
pub(super) fn page_end(items: &[Sequenced], skipped: &[SkippedRange]) -> Option<u64> {
    items
        .iter()
        .map(|s| s.seq)
        .chain(skipped.iter().map(|r| r.to))
        .max()
}

/// Runs kept pending (claims of epochs whose record has not arrived) per conversation.
const MAX_PENDING: usize = 256;

/// What a skipped run's claim is worth to this account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// The relay must have served these items: they are withheld.
    Lie,
    /// The items may well be ones this account does not read.
    HoldsUp,
    /// Names an epoch whose record this account does not have yet.
    Unknown,
}

impl Client {
    /// Processes one `History` page (see the module docs). `head` and `skipped` come from a
    /// relay that names what it skips; without them the page is taken as before.
    ///
    /// # Errors
    /// Transport and storage errors.
    pub(super) async fn ingest_page(
        &mut self,
        id: &ConversationId,
        mut items: Vec<Sequenced>,
        mut skipped: Vec<SkippedRange>,
        more: bool,
        head: Option<u64>,
    ) -> Result<Vec<Event>> {
        let checks = matches!(self.account.role(), Role::Customer | Role::Agent);
        if checks && (head.is_some() || !skipped.is_empty()) {
            let mut holes = load(&self.account, id)?;
            if !holes.named {
                holes.named = true;
                save(&self.account, id, &holes)?;
            }
        }
        // Items are processed in sequence order whatever order the page lists them in: an
        // item listed after a later one would otherwise fall below the cursor and be skipped
        // as already seen.
        items.sort_by_key(|s| s.seq);
        skipped.sort_by_key(|r| r.from);
        let mut runs = skipped.into_iter().peekable();
        let mut events = Vec::new();
        let mut delivered = Vec::new();
        for item in items {
            while let Some(run) = runs.next_if(|r| r.from < item.seq) {
                self.pass_skipped(id, &run)?;
            }
            delivered.push(item.seq);
            events.extend(self.ingest(item).await?);
        }
        for run in runs {
            self.pass_skipped(id, &run)?;
        }
        if !checks {
            return Ok(events);
        }
        let cursor = self.meta(id)?.cursor;
        let mut holes = load(&self.account, id)?;
        for seq in delivered {
            holes.close(seq);
        }
        self.judge_pending(id, &mut holes)?;
        if let Some(head) = head.filter(|h| !more && *h > cursor) {
            // The newest items did not come: asked for again by the next sync.
            holes.tried_tail(cursor);
            holes.add(cursor + 1, head, None);
        }
        save(&self.account, id, &holes)?;
        Ok(events)
    }

    /// Moves the cursor past a skipped run, after noting what lies between the cursor and
    /// the run as a hole and judging the run's claim.
    fn pass_skipped(&mut self, id: &ConversationId, run: &SkippedRange) -> Result<()> {
        let mut meta = self.meta(id)?;
        let from = run.from.max(meta.cursor.saturating_add(1));
        if run.to < from {
            return Ok(());
        }
        self.note_hole(&meta, from)?;
        let verdict = self.judge(id, run.epoch)?;
        let mut holes = load(&self.account, id)?;
        match verdict {
            Verdict::Lie => holes.add(from, run.to, Some(Claim::of(run.epoch))),
            Verdict::HoldsUp => holes.close_range(from, run.to),
            Verdict::Unknown => {
                holes.close_range(from, run.to);
                if holes.pending.len() >= MAX_PENDING {
                    holes.pending.remove(0);
                }
                holes.pending.push(SkippedRange { from, ..*run });
            }
        }
        save(&self.account, id, &holes)?;
        meta.cursor = run.to;
        self.account.save_conversation(&meta)
    }

    /// A hole the relay explains, when asked again, with a skipped run that holds up is
    /// closed (a lie already caught stays open).
    pub(super) fn explain_hole(&mut self, id: &ConversationId, run: &SkippedRange) -> Result<()> {
        let verdict = self.judge(id, run.epoch)?;
        let mut holes = load(&self.account, id)?;
        if verdict == Verdict::Lie {
            holes.blame(run.from, run.to, Claim::of(run.epoch));
        } else {
            holes.close_unclaimed(run.from, run.to);
        }
        save(&self.account, id, &holes)
    }

    /// Judges the pending runs whose epoch record has arrived since: a record listing this
    /// account as a member made the relay owe it every item of the epoch from the start (a
    /// hand-off only from when it was stored, so a later hand-off proves nothing).
    fn judge_pending(&self, id: &ConversationId, holes: &mut super::holes::Holes) -> Result<()> {
        let pending = std::mem::take(&mut holes.pending);
        for run in pending {
            let Some(e) = run.epoch else { continue };
            match self.account.epoch(id, e)? {
                None => holes.pending.push(run),
                Some(st) if st.status == EpochStatus::Member => {
                    holes.add(run.from, run.to, Some(Claim::Epoch(e)));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// What a run claiming `epoch` is worth to this account (see the module docs).
    fn judge(&self, id: &ConversationId, epoch: Option<u32>) -> Result<Verdict> {
        match self.account.role() {
            Role::Customer => return Ok(Verdict::Lie),
            Role::Agent => {}
            _ => return Ok(Verdict::HoldsUp),
        }
        let Some(e) = epoch else {
            return Ok(Verdict::HoldsUp);
        };
        Ok(match self.account.epoch(id, e)? {
            Some(st) if matches!(st.status, EpochStatus::Member | EpochStatus::HandedOver) => {
                Verdict::Lie
            }
            Some(_) => Verdict::HoldsUp,
            None => Verdict::Unknown,
        })
    }
}
