//! Gaps: messages that left a reordering window without arriving are asked for again a
//! bounded number of times, then shown as not delivered; the state kept for that per
//! conversation.
//!
//! Gaps are counted in a sender's counters inside an epoch; holes (`holes`) in the relay's
//! sequence numbers. The two stay apart on purpose: a gap's range runs between epoch records
//! and only its missing counters are taken from an answer, a hole's from the hole on and every
//! item in it is processed (skipped runs checked, late epochs reopened). They share the page
//! read (`Client::refetch_page`, in `holes`) and the budget ([`REFETCH_LIMIT`],
//! [`REFETCH_PAGES`]).

use std::collections::HashSet;

use sealdesk_protocol::{
    ids::ConversationId,
    keys::SigningPublicKey,
    message::{REORDER_WINDOW, ReplayWindow},
    wire::Item,
};
use serde::Serialize;

use super::{Client, Event, REFETCH_LIMIT, REFETCH_PAGES};
use crate::account::{Account, LogEntry};
use crate::error::Result;
use crate::store::name;

impl Client {
    /// Asks the relay again for the messages that have not arrived inside a reordering window
    /// (counters missing below a sender's highest). For each epoch with such a gap the range
    /// asked for runs from the epoch's record to the next epoch's record (the relay takes
    /// messages only in the current epoch, so an epoch's messages lie between the two), or to
    /// the cursor for the newest epoch; at most [`REFETCH_PAGES`] pages per sync. A try is made
    /// only when the cursor moved since the last one, and each missing message is asked for at
    /// most [`REFETCH_LIMIT`] times (counted with the conversation): after that the gap stays
    /// shown as not delivered and costs nothing more. Only the missing messages are taken from
    /// an answer: everything else at or below the cursor was processed already.
    ///
    /// # Errors
    /// Transport and storage errors.
    pub(super) async fn refetch_gaps(&mut self, id: &ConversationId) -> Result<Vec<Event>> {
        let me = self.account.keys().signing_public();
        let upto = self.meta(id)?.cursor;
        let mut state = refetch_state(&self.account, id)?;
        let epochs = self.account.epochs(id)?;
        let mut missing_now: HashSet<(u32, SigningPublicKey, u64)> = HashSet::new();
        for st in &epochs {
            if !st.readable() {
                continue;
            }
            for m in &st.record.members {
                if m.signing_key == me {
                    continue;
                }
                if let Some(w) = st.windows.get(&m.signing_key) {
                    for c in w.missing() {
                        missing_now.insert((st.record.epoch, m.signing_key, c));
                    }
                }
            }
        }
        // Counts of gaps that closed or left the window are dropped: the list stays as short
        // as the open gaps.
        let counted = state.tries.len();
        state
            .tries
            .retain(|(e, s, c, _)| missing_now.contains(&(*e, *s, *c)));
        let pruned = state.tries.len() != counted;
        let mut wanted: HashSet<(u32, SigningPublicKey, u64)> = missing_now
            .into_iter()
            .filter(|k| state.tries_of(k) < REFETCH_LIMIT)
            .collect();
        if wanted.is_empty() || upto == state.cursor {
            if pruned {
                put_refetch_state(&self.account, id, &state)?;
            }
            return Ok(Vec::new());
        }
        // One range per epoch with a wanted gap: (after, end, epoch).
        let mut ranges: Vec<(u64, u64, u32)> = Vec::new();
        for st in &epochs {
            if !wanted.iter().any(|(e, _, _)| *e == st.record.epoch) {
                continue;
            }
            let end = epochs
                .iter()
                .map(|o| o.seq)
                .filter(|s| *s > st.seq)
                .min()
                .unwrap_or(upto)
                .min(upto);
            ranges.push((st.seq, end, st.record.epoch));
        }
        ranges.sort_unstable();
        // Sequence numbers already logged: as rejected (a refetch may replace the rejection,
        // but need not repeat it), or as something shown (a relay that now puts another item
        // at a number it used before is not believed: the gap stays).
        let mut rejected = HashSet::new();
        let mut shown = HashSet::new();
        for e in self.account.log(id)? {
            if matches!(e, LogEntry::Rejected { .. }) {
                rejected.insert(e.seq());
            } else {
                shown.insert(e.seq());
            }
        }
        let mut events = Vec::new();
        let mut pages = 0u32;
        let mut asked: HashSet<u32> = HashSet::new();
        'ranges: for (mut after, end, epoch) in ranges {
            while after < end && pages < REFETCH_PAGES {
                pages += 1;
                asked.insert(epoch);
                // `None`: the relay no longer serves the conversation to this account (a
                // transfer): nothing to refetch from; the gaps stay shown.
                let Some((mut items, more, skipped)) = self.refetch_page(id, after).await? else {
                    break 'ranges;
                };
                items.sort_by_key(|s| s.seq);
                let Some(last) = items.last().map(|s| s.seq) else {
                    break;
                };
                self.refetched.push(super::holes::RefetchedPage {
                    conversation: *id,
                    after,
                    to: if more { last } else { end.max(last) },
                    items: items.clone(),
                    skipped,
                });
                for s in items {
                    if s.seq <= after || s.seq > end || shown.contains(&s.seq) {
                        continue;
                    }
                    let Item::Message(env) = &s.item else {
                        continue;
                    };
                    let key = (env.header.epoch, env.header.sender, env.header.counter);
                    if !wanted.contains(&key) {
                        continue;
                    }
                    let mut meta = self.meta(id)?;
                    let got = self
                        .ingest_message(
                            &mut meta,
                            s.seq,
                            s.stored_at,
                            env,
                            !rejected.contains(&s.seq),
                        )
                        .await?;
                    self.account.save_conversation(&meta)?;
                    if self
                        .account
                        .epoch(id, env.header.epoch)?
                        .and_then(|st| st.windows.get(&env.header.sender).cloned())
                        .is_some_and(|w| w.check(env.header.counter).is_err())
                    {
                        wanted.remove(&key);
                    }
                    events.extend(got);
                }
                if !more || last <= after {
                    break;
                }
                after = last;
            }
        }
        // Every gap of an epoch whose range was asked for and that is still open has had
        // one more request.
        for key in wanted.iter().filter(|(e, _, _)| asked.contains(e)) {
            state.count_try(key);
        }
        state.cursor = upto;
        put_refetch_state(&self.account, id, &state)?;
        Ok(events)
    }
}

/// What the client has asked the relay again, per conversation.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub(super) struct Refetch {
    /// The cursor at the last try: the next try waits until it moves.
    cursor: u64,
    /// Requests made so far for each open gap: (epoch, sender, counter, requests).
    tries: Vec<(u32, SigningPublicKey, u64, u32)>,
}

impl Refetch {
    pub(super) fn tries_of(&self, (epoch, sender, counter): &(u32, SigningPublicKey, u64)) -> u32 {
        self.tries
            .iter()
            .find(|(e, s, c, _)| e == epoch && s == sender && c == counter)
            .map_or(0, |t| t.3)
    }

    pub(super) fn count_try(&mut self, key: &(u32, SigningPublicKey, u64)) {
        match self
            .tries
            .iter_mut()
            .find(|(e, s, c, _)| *e == key.0 && *s == key.1 && *c == key.2)
        {
            Some(t) => t.3 = t.3.saturating_add(1),
            None => self.tries.push((key.0, key.1, key.2, 1)),
        }
    }
}

pub(super) fn refetch_state(account: &Account, id: &ConversationId) -> Result<Refetch> {
    Ok(crate::store::get_cbor(account.vault(), &name::refetch(id))?.unwrap_or_default())
}

pub(super) fn put_refetch_state(
    account: &Account,
    id: &ConversationId,
    state: &Refetch,
) -> Result<()> {
    crate::store::put_cbor(account.vault(), &name::refetch(id), state)
}

/// Counters of one sender in one epoch that never arrived and can no longer be accepted, as
/// inclusive ranges, sorted and merged: a sender that jumps its counter far ahead costs one
/// range, not one entry per skipped counter.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub(super) struct Lost {
    pub(super) epoch: u32,
    pub(super) sender: SigningPublicKey,
    #[serde(default)]
    pub(super) ranges: Vec<(u64, u64)>,
    /// Single counters, as stored before ranges (read, never written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) counters: Vec<u64>,
}

pub(super) fn lost(account: &Account, id: &ConversationId) -> Result<Vec<Lost>> {
    let mut all: Vec<Lost> =
        crate::store::get_cbor(account.vault(), &name::lost(id))?.unwrap_or_default();
    for l in &mut all {
        let old = std::mem::take(&mut l.counters);
        l.ranges.extend(old.into_iter().map(|c| (c, c)));
        l.ranges = merge_ranges(std::mem::take(&mut l.ranges));
    }
    Ok(all)
}

pub(super) fn add_lost(
    account: &Account,
    id: &ConversationId,
    epoch: u32,
    sender: &SigningPublicKey,
    ranges: &[(u64, u64)],
) -> Result<()> {
    let mut all = lost(account, id)?;
    match all
        .iter_mut()
        .find(|l| l.epoch == epoch && l.sender == *sender)
    {
        Some(l) => {
            l.ranges.extend(ranges);
            l.ranges = merge_ranges(std::mem::take(&mut l.ranges));
        }
        None => all.push(Lost {
            epoch,
            sender: *sender,
            ranges: merge_ranges(ranges.to_vec()),
            counters: Vec::new(),
        }),
    }
    crate::store::put_cbor(account.vault(), &name::lost(id), &all)
}

/// Sorts inclusive ranges and merges those that overlap or touch.
pub(super) fn merge_ranges(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.retain(|(a, b)| a <= b);
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// The counters that were missing from a sender's window `before` a message was accepted
/// and are outside it `after` (shifted out, or jumped over by a counter more than a window
/// ahead), as inclusive ranges: they can never be accepted now.
pub(super) fn left_window(
    before: Option<&ReplayWindow>,
    after: Option<&ReplayWindow>,
) -> Vec<(u64, u64)> {
    let Some(after) = after else {
        return Vec::new();
    };
    let Some(high) = after.highest() else {
        return Vec::new();
    };
    let floor = high.saturating_sub(REORDER_WINDOW - 1);
    // Everything above the old highest (or from 0 on a first message) up to the new one was
    // skipped; below the floor it is gone.
    let start = match before.and_then(ReplayWindow::highest) {
        Some(h) => h.saturating_add(1),
        None => 0,
    };
    let mut out = Vec::new();
    let end = floor.min(high);
    if start < end {
        out.push((start, end - 1));
    }
    if let Some(b) = before {
        out.extend(
            b.missing()
                .into_iter()
                .filter(|c| *c < floor)
                .map(|c| (c, c)),
        );
    }
    merge_ranges(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn window(counters: &[u64]) -> ReplayWindow {
        let mut w = ReplayWindow::default();
        for c in counters {
            w.mark(*c);
        }
        w
    }

    /// A sender that jumps its counter far ahead leaves one range behind, not one entry per
    /// skipped counter (which would not even fit in memory here).
    #[test]
    pub(super) fn counters_jumped_over_are_one_range() {
        let before = window(&[0]);
        let top = 1u64 << 60;
        let after = window(&[0, top]);
        assert_eq!(
            left_window(Some(&before), Some(&after)),
            [(1, top - REORDER_WINDOW)]
        );
        // With a hole in the old window that is shifted out too: merged where they touch.
        let before = window(&[0, 2]);
        let after = window(&[0, 2, 2 + REORDER_WINDOW]);
        assert_eq!(left_window(Some(&before), Some(&after)), [(1, 1)]);
        let after = window(&[0, 2, 3 + REORDER_WINDOW]);
        assert_eq!(left_window(Some(&before), Some(&after)), [(1, 1), (3, 3)]);
    }

    #[test]
    pub(super) fn lost_ranges_merge() {
        assert_eq!(
            merge_ranges(vec![(5, 9), (1, 1), (2, 4), (20, 20), (8, 12), (7, 3)]),
            [(1, 12), (20, 20)]
        );
        assert_eq!(
            merge_ranges(vec![(0, u64::MAX), (u64::MAX, u64::MAX)]),
            [(0, u64::MAX)]
        );
    }
}
