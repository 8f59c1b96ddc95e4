//! What a client shows of a conversation, read from its history for the hostile tests'
//! assertions — the messages it rejected ([`rejected`]), the gaps ([`gaps`]), the notices
//! ([`notices`]) — and the items the relay really stores ([`items`]), read by a member connected
//! directly. The verified messages themselves are [`crate::world::texts`].

use sealdesk_client::{Client, account::LogEntry, client::HistoryLine};
use sealdesk_protocol::{
    ids::ConversationId,
    wire::{Item, Request, Response, Sequenced},
};

/// Every line of `c`'s history of `conv`, in order.
pub fn lines(c: &Client, conv: &ConversationId) -> Vec<HistoryLine> {
    c.history(conv).unwrap().lines
}

/// The reasons of the rejected (never shown) messages.
pub fn rejected(c: &Client, conv: &ConversationId) -> Vec<String> {
    lines(c, conv)
        .into_iter()
        .filter_map(|l| match l {
            HistoryLine::Item {
                entry: LogEntry::Rejected { reason, .. },
                ..
            } => Some(reason),
            _ => None,
        })
        .collect()
}

/// The gaps shown: (sender, missing counters).
pub fn gaps(c: &Client, conv: &ConversationId) -> Vec<(String, Vec<u64>)> {
    lines(c, conv)
        .into_iter()
        .filter_map(|l| match l {
            HistoryLine::Gap {
                sender, counters, ..
            } => Some((
                sender,
                counters.into_iter().flat_map(|(a, b)| a..=b).collect(),
            )),
            _ => None,
        })
        .collect()
}

/// The notices shown: (audit index, text, verified).
pub fn notices(c: &Client, conv: &ConversationId) -> Vec<(u64, String, bool)> {
    lines(c, conv)
        .into_iter()
        .filter_map(|l| match l {
            HistoryLine::Item {
                entry:
                    LogEntry::Notice {
                        index,
                        text,
                        verified,
                        ..
                    },
                ..
            } => Some((index, text, verified)),
            _ => None,
        })
        .collect()
}

/// Every item of a conversation, fetched by `c` (a member connected directly).
pub async fn items(c: &Client, conv: &ConversationId) -> Vec<Sequenced> {
    match c
        .session()
        .request(Request::History {
            conversation: *conv,
            after: 0,
            limit: 200,
        })
        .await
        .unwrap()
    {
        Response::Items { items, more, .. } => {
            assert!(!more);
            items
        }
        other => panic!("{other:?}"),
    }
}

/// The item at sequence number `seq` among `items`.
pub fn item_at(items: &[Sequenced], seq: u64) -> Item {
    items
        .iter()
        .find(|s| s.seq == seq)
        .map(|s| s.item.clone())
        .expect("item at seq")
}
