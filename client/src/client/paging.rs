//! How far one walk through a conversation's `History` pages may go (PROTOCOL.md §13.10).
//!
//! A relay answers each page with `more` and the conversation's `head`; a lying or broken one
//! could page forever: pages that never move on, a `head` that grows with every page, a head
//! far beyond anything it will ever serve. `Paging` bounds a walk:
//!
//! - it ends at the head the **first** page named: what was stored when the walk began.
//!   Items stored meanwhile are pushed, or read by the next sync; a head that grows on every
//!   page is not chased;
//! - every page with `more` must move the cursor on (else the same page would come forever);
//! - a page may not end beyond the head it names, a head may not go back, and a relay that
//!   named a head may not stop naming it mid-walk: answers that cannot be right;
//! - at most [`MAX_SYNC_PAGES`] pages per walk, whatever head the relay claims. Every page
//!   moves the cursor by at least one, so a walk to the first head needs at most `head −
//!   start` pages; a claimed head of 2^60 would allow 2^60 of them, so the constant caps it.
//!
//! Nothing read is lost when a walk stops: each item is recorded with the cursor as it is
//! ingested, and the next walk starts from there.

use crate::error::{ClientError, Result};

/// The most `History` pages one walk reads. At the relay's largest page (200 items) that is
/// 51,200 items; at its smallest honest page (one item of up to 48 KiB) about 12 MiB. A sync
/// that reaches it stops with a warning and goes on at the next sync; a full-history walk
/// (an export, a dispute) stops with an error.
pub const MAX_SYNC_PAGES: u32 = 256;

/// Where a walk stands after a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Ask for the page after this sequence number.
    After(u64),
    /// The walk is done: the relay said nothing follows, or the head named first is reached.
    Done,
    /// [`MAX_SYNC_PAGES`] pages were read without reaching the end: stop here.
    Budget,
}

/// One walk's bounds: where it started, the head its first page named, the pages read.
#[derive(Debug)]
pub(crate) struct Paging {
    start: u64,
    /// The head named by the first page (`None`: a relay older than `head`).
    target: Option<u64>,
    /// The head the last page named.
    last_head: Option<u64>,
    pages: u32,
}

impl Paging {
    /// A walk from `start` (the first page asks for items after it).
    pub(crate) fn new(start: u64) -> Self {
        Self {
            start,
            target: None,
            last_head: None,
            pages: 0,
        }
    }

    /// The head the first page named, if it named one.
    #[cfg(test)]
    fn target(&self) -> Option<u64> {
        self.target
    }

    /// The pages read so far.
    pub(crate) fn pages(&self) -> u32 {
        self.pages
    }

    /// Judges a page asked for after `after`: `end` is the last sequence number it answers
    /// for (its last item or run; `None` for an empty page), `reached` where the walk now
    /// stands (for a sync, the cursor after ingesting it), `more` and `head` as the relay
    /// said.
    ///
    /// # Errors
    /// [`ClientError::ImpossibleNumber`] (`history page`) for a page with `more` that does not
    /// move on, a page ending beyond its own head, a head that went back, and a head no longer
    /// named once named.
    pub(crate) fn next(
        &mut self,
        after: u64,
        end: Option<u64>,
        reached: u64,
        more: bool,
        head: Option<u64>,
    ) -> Result<Next> {
        self.pages = self.pages.saturating_add(1);
        match (self.last_head, head) {
            (Some(before), None) => {
                return Err(impossible(format!(
                    "a page after sequence {after} names no head, where an earlier page of the \
                     same walk named {before}"
                )));
            }
            (Some(before), Some(now)) if now < before => {
                return Err(impossible(format!(
                    "the conversation's head went back from {before} to {now} between two pages"
                )));
            }
            _ => {}
        }
        if let (Some(end), Some(head)) = (end, head)
            && end > head
        {
            return Err(impossible(format!(
                "a page ends at sequence {end}, beyond the head {head} it names"
            )));
        }
        if self.target.is_none() && self.pages == 1 {
            self.target = head;
        }
        self.last_head = head;
        if !more {
            return Ok(Next::Done);
        }
        // A page with more after it must move on: asking again from the same cursor would get
        // the same page forever. One that moves nothing (all of it at or below the cursor) is
        // a relay answer that cannot be right, and said so.
        let next = super::page_advances(after, reached)?;
        if self.target.is_some_and(|t| next >= t) {
            return Ok(Next::Done);
        }
        if self.pages >= MAX_SYNC_PAGES {
            return Ok(Next::Budget);
        }
        Ok(Next::After(next))
    }

    /// The words for a walk stopped by [`Next::Budget`] at `reached`.
    pub(crate) fn budget_detail(&self, reached: u64) -> String {
        let of = match self.target {
            Some(t) => format!(" of the head {t} it named"),
            None => String::new(),
        };
        format!(
            "after {} pages from sequence {}, the relay's pages had reached {reached}{of}; \
             stopped there (what was read is kept)",
            self.pages, self.start
        )
    }
}

fn impossible(detail: String) -> ClientError {
    ClientError::ImpossibleNumber {
        what: "history page",
        detail,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn refused(r: Result<Next>) -> String {
        match r {
            Err(ClientError::ImpossibleNumber { what, detail }) => {
                assert_eq!(what, "history page");
                detail
            }
            other => panic!("expected a refused page, got {other:?}"),
        }
    }

    #[test]
    fn a_walk_ends_at_the_first_head_even_if_the_head_grows() {
        let mut p = Paging::new(0);
        assert_eq!(
            p.next(0, Some(1), 1, true, Some(3)).unwrap(),
            Next::After(1)
        );
        assert_eq!(
            p.next(1, Some(2), 2, true, Some(4)).unwrap(),
            Next::After(2)
        );
        assert_eq!(p.next(2, Some(3), 3, true, Some(5)).unwrap(), Next::Done);
        assert_eq!(p.target(), Some(3));
    }

    #[test]
    fn a_page_with_more_must_move_on() {
        let mut p = Paging::new(5);
        refused(p.next(5, None, 5, true, Some(9)));
        let mut p = Paging::new(5);
        refused(p.next(5, Some(5), 5, true, None));
    }

    #[test]
    fn impossible_heads_are_refused() {
        let mut p = Paging::new(0);
        let d = refused(p.next(0, Some(7), 7, true, Some(6)));
        assert!(d.contains("beyond the head 6"), "{d}");
        let mut p = Paging::new(0);
        p.next(0, Some(1), 1, true, Some(9)).unwrap();
        let d = refused(p.next(1, Some(2), 2, true, Some(8)));
        assert!(d.contains("went back from 9 to 8"), "{d}");
        let mut p = Paging::new(0);
        p.next(0, Some(1), 1, true, Some(9)).unwrap();
        let d = refused(p.next(1, Some(2), 2, true, None));
        assert!(d.contains("names no head"), "{d}");
    }

    #[test]
    fn a_walk_reads_at_most_the_budget_whatever_head_is_claimed() {
        let mut p = Paging::new(0);
        let mut after = 0;
        let stopped = loop {
            match p
                .next(after, Some(after + 1), after + 1, true, Some(1 << 60))
                .unwrap()
            {
                Next::After(n) => after = n,
                Next::Budget => break after + 1,
                Next::Done => panic!("done before the claimed head"),
            }
        };
        assert_eq!(p.pages(), MAX_SYNC_PAGES);
        assert_eq!(stopped, u64::from(MAX_SYNC_PAGES));
        assert!(
            p.budget_detail(stopped)
                .contains("had reached 256 of the head")
        );
    }

    #[test]
    fn a_relay_without_heads_pages_as_before_within_the_budget() {
        let mut p = Paging::new(0);
        assert_eq!(
            p.next(0, Some(200), 200, true, None).unwrap(),
            Next::After(200)
        );
        assert_eq!(
            p.next(200, Some(300), 300, false, None).unwrap(),
            Next::Done
        );
    }
}
