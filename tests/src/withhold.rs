//! A hostile relay that withholds conversation items from one account, as a [`Proxy`] hook
//! (`w.proxy().set_hook(withhold(..))`), and what the account's history then shows of them.
//!
//! Only frames to that account's client are touched: a pushed item the test picks is dropped
//! (the push never arrives), and the history pages served to it (`Response::Items`) lose the
//! items it picks — without naming them as skipped, unless the test's page edit does.
//! [`pages_for`] withholds every push and leaves the pages to the test: it swaps, drops or
//! holds back items of the history only.
//!
//! [`made_up_pages`] goes further: it answers the account's history requests with pages it
//! makes up itself, holding nothing but skipped runs.
//!
//! [`Proxy`]: crate::proxy::Proxy

use std::sync::{Arc, Mutex, PoisonError};

use sealdesk_client::{
    Client,
    client::{HistoryLine, holes::Claim},
};
use sealdesk_protocol::{
    ids::ConversationId,
    wire::{Frame, Request, Response, Sequenced, SkippedRange},
};

use crate::proxy::{Ctx, Dir, is_item_push, items_mut};

/// A hook that withholds from `account` every item `pick` picks: in pushes and in history
/// pages alike. `pick` is called once an item served (it may count or remember what it saw).
pub fn withhold(
    account: &'static str,
    pick: impl FnMut(&Sequenced) -> bool + Send + 'static,
) -> impl FnMut(&Ctx<'_>, Frame) -> Vec<Frame> + Send + 'static {
    let pick = Arc::new(Mutex::new(pick));
    let in_pages = Arc::clone(&pick);
    withhold_with(
        account,
        move |s| (pick.lock().unwrap_or_else(PoisonError::into_inner))(s),
        move |items, _| {
            let mut pick = in_pages.lock().unwrap_or_else(PoisonError::into_inner);
            items.retain(|s| !(*pick)(s));
        },
    )
}

/// A hook that drops every push to `account` of an item `in_push` picks, and lets `page` edit
/// each history page served to it: its items and its skipped runs.
pub fn withhold_with(
    account: &'static str,
    mut in_push: impl FnMut(&Sequenced) -> bool + Send + 'static,
    mut page: impl FnMut(&mut Vec<Sequenced>, &mut Vec<SkippedRange>) + Send + 'static,
) -> impl FnMut(&Ctx<'_>, Frame) -> Vec<Frame> + Send + 'static {
    move |ctx: &Ctx<'_>, mut frame: Frame| {
        if ctx.dir != Dir::ToClient || ctx.account != Some(account) {
            return vec![frame];
        }
        if is_item_push(&frame) {
            let hit = items_mut(&mut frame).iter().any(|s| in_push(s));
            return if hit { Vec::new() } else { vec![frame] };
        }
        if let Frame::Response {
            body: Response::Items { items, skipped, .. },
            ..
        } = &mut frame
        {
            page(items, skipped);
        }
        vec![frame]
    }
}

/// A hook that rewrites the `History` pages served to `victim` with `page(items)` (sequence
/// numbers untouched), withholds its live item pushes (so only catch-up delivers), and passes
/// everything else through.
pub fn pages_for(
    victim: &'static str,
    mut page: impl FnMut(&mut Vec<Sequenced>) + Send + 'static,
) -> impl FnMut(&Ctx<'_>, Frame) -> Vec<Frame> + Send + 'static {
    withhold_with(victim, |_| true, move |items, _| page(items))
}

/// A `Withheld` line of a history: the run of sequence numbers it names, and what the client
/// knows of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withheld {
    /// First missing sequence number.
    pub from: u64,
    /// Last missing sequence number (inclusive).
    pub to: u64,
    /// `Some(n)`: asked for `n` times and given up.
    pub requests: Option<u32>,
    /// The relay's lie about the run, if it told one.
    pub claimed: Option<Claim>,
}

/// The `Withheld` lines of `c`'s history of `conv`, in order.
pub fn withheld(c: &Client, conv: &ConversationId) -> Vec<Withheld> {
    c.history(conv)
        .unwrap()
        .lines
        .into_iter()
        .filter_map(|l| match l {
            HistoryLine::Withheld {
                from,
                to,
                requests,
                claimed,
                ..
            } => Some(Withheld {
                from,
                to,
                requests,
                claimed,
            }),
            _ => None,
        })
        .collect()
}

/// A hook that answers `victim`'s history requests with pages the proxy makes up, holding no
/// item: `page(after)` gives the page after `after` — its skipped runs ("items you may not
/// read", which cost a hostile relay nothing), its `more` and its `head`. Every other frame
/// passes.
pub fn made_up_pages(
    victim: &'static str,
    page: impl Fn(u64) -> (Vec<SkippedRange>, bool, Option<u64>) + Send + 'static,
) -> impl FnMut(&Ctx<'_>, Frame) -> Vec<Frame> + Send + 'static {
    move |ctx, frame| match (ctx.request, frame) {
        (Some(Request::History { after, .. }), Frame::Response { id, .. })
            if ctx.account == Some(victim) =>
        {
            let (skipped, more, head) = page(*after);
            vec![Frame::Response {
                id,
                body: Response::Items {
                    items: Vec::new(),
                    more,
                    skipped,
                    head,
                },
            }]
        }
        (_, frame) => vec![frame],
    }
}
