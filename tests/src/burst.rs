//! Bursts of requests at the same instant, for the quota tests: many connections logged in
//! first, then one request each, all in flight together, so that only the relay's (or the
//! database's) atomic check stands between them and one more than the quota.

use futures_util::future::join_all;
use sealdesk_protocol::{
    card::Role,
    wire::{ErrorCode, Request, Response},
};

use sealdesk_server::RunningRelay;
use tempfile::TempDir;

use crate::{identity::Identity, raw::RawClient, relay::spawn_relay_with};

/// A relay that allows `most` open conversations per customer (and per visitor) and org, and
/// 1,000 opens an hour, so that only the open-conversations quota decides a burst.
pub async fn relay_with_open_quota(most: usize) -> (RunningRelay, TempDir) {
    spawn_relay_with(|cfg| {
        cfg.limits.open_conversations_per_org = most;
        cfg.limits.conversation_opens_per_hour = 1_000;
    })
    .await
}

/// `n` fresh customer keys of burst `round` (`v{round}k{i}`, from seeds `1000 * (round + 1)
/// + i`): keys that have opened nothing themselves.
pub fn fresh_keys(round: u64, n: u64) -> Vec<Identity> {
    (0..n)
        .map(|i| {
            Identity::new(
                1_000 * (round + 1) + i,
                &format!("v{round}k{i}"),
                Role::Customer,
            )
        })
        .collect()
}

/// Logs each account of `burst` in on the relays at `urls` in turn, then sends every request
/// at once; the answers, in the burst's order. The connections are closed after.
pub async fn at_once(urls: &[&str], burst: Vec<(&Identity, Request)>) -> Vec<Response> {
    let mut clients = Vec::new();
    let mut requests = Vec::new();
    for (i, (who, request)) in burst.into_iter().enumerate() {
        clients.push(RawClient::login(urls[i % urls.len()], who).await);
        requests.push(request);
    }
    let answers = join_all(
        clients
            .iter_mut()
            .zip(requests)
            .map(|(c, body)| c.request(body)),
    )
    .await;
    for c in clients {
        c.close().await;
    }
    answers
}

/// How many of a burst's `answers` opened a conversation.
///
/// # Panics
///
/// If any other answer is anything but a `quota_exceeded` refusal.
pub fn opened_or_over_quota(answers: &[Response]) -> usize {
    let mut opened = 0;
    for a in answers {
        match a {
            Response::Opened { .. } => opened += 1,
            Response::Error {
                code: ErrorCode::QuotaExceeded,
                ..
            } => {}
            other => panic!("expected opened or quota_exceeded, got {other:?}"),
        }
    }
    opened
}
