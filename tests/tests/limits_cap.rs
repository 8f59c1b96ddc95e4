//! The cap on the keys each abuse limit tracks (`max_tracked_sources`), on one relay, in its
//! memory (issue 25): a new source at the cap is refused and counted as the cap's refusal
//! (`sealdesk_limited_at_cap_total`), beside the keys tracked (`sealdesk_limit_keys`) and the
//! cap (`sealdesk_limit_keys_max`); and failed authentications from new sources at the cap are
//! charged to one overflow bucket, not left uncounted.
//!
//! Sources other than 127.0.0.1 are made with a trusted proxy: the relay trusts 127.0.0.1 as a
//! reverse proxy, and each connection names its client in `X-Forwarded-For`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::wire::{ErrorCode, Frame, Response};
use sealdesk_server::{RunningRelay, relay::CLOSE_RATE_LIMITED};
use sealdesk_tests::{
    forwarded::{close_frame, connect, fail_authentication, next_frame, register_from},
    identity::visitor,
    relay::{metric_of, spawn_relay_with},
};

/// The cap holds for the connections' own per-source table too: with a bucket of one upgrade
/// refilled within nanoseconds, each source's is full again by its next connection, so that
/// table never stands at the cap and only the limit under test does.
fn instant_connection_refill(c: &mut sealdesk_server::config::RelayConfig) {
    c.limits.source_connection_burst = 1;
    c.limits.source_connections_per_minute = u32::MAX;
}

/// A refusal before the challenge: the `rate_limited` answer's message, and the 4104 close's
/// reason.
struct Refusal {
    message: String,
    close_reason: String,
}

impl Refusal {
    /// Whether the answer and the close both say the cap's words (new addresses, not this one).
    fn says_at_cap(&self) -> bool {
        self.message.contains("new addresses") && self.close_reason.contains("new addresses")
    }

    /// Whether the answer and the close both blame this address (its own bucket).
    fn says_own_address(&self) -> bool {
        self.message.contains("from your address")
            && self.close_reason.contains("from this address")
    }
}

/// How a connection from `client` is refused `rate_limited` before the challenge (and closed
/// with 4104), or `None` if it is challenged.
async fn refused_before_the_challenge(relay: &RunningRelay, client: &str) -> Option<Refusal> {
    let mut ws = connect(&relay.ws_url(), Some(client))
        .await
        .expect("upgrade");
    match next_frame(&mut ws).await {
        Some(Frame::Challenge(_)) => None,
        Some(Frame::Response {
            id: 0,
            body:
                body @ Response::Error {
                    code: ErrorCode::RateLimited,
                    ..
                },
        }) => {
            assert!(body.retry_after().is_some(), "{body:?}");
            let Response::Error { message, .. } = body else {
                unreachable!()
            };
            let (code, close_reason) = close_frame(&mut ws).await.expect("a close frame");
            assert_eq!(code, CLOSE_RATE_LIMITED);
            Some(Refusal {
                message,
                close_reason,
            })
        }
        other => panic!("expected a challenge or a rate_limited refusal, got {other:?}"),
    }
}

/// With a cap of two sources and one failure a minute each: two sources fail once and fill
/// the table. A third, new source is still challenged (the overflow bucket is full), fails,
/// and that failure is charged to the overflow bucket; from then on every source without a
/// bucket of its own — the third again, a fourth — is refused before the challenge, counted
/// as the cap's refusal. Without the overflow bucket the third source's failures would go
/// uncounted, and it could try again and again.
#[tokio::test]
async fn failed_authentications_from_new_sources_at_the_cap_share_one_bucket() {
    let (relay, _dir) = spawn_relay_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.limits.max_tracked_sources = 2;
        instant_connection_refill(c);
        c.limits.source_auth_failure_burst = 1;
        c.limits.source_auth_failures_per_minute = 1;
    })
    .await;
    let url = relay.ws_url();
    let keys = "sealdesk_limit_keys{reason=\"source_auth_failures\"}";
    assert_eq!(
        fail_authentication(&url, Some("203.0.113.1")).await,
        Some(4101)
    );
    assert_eq!(
        fail_authentication(&url, Some("203.0.113.2")).await,
        Some(4101)
    );
    assert_eq!(metric_of(&relay, keys).await, 2.0);
    assert_eq!(metric_of(&relay, "sealdesk_limit_keys_max").await, 2.0);

    // At the cap, a new source is challenged once: its failure goes to the overflow bucket.
    assert_eq!(
        fail_authentication(&url, Some("203.0.113.3")).await,
        Some(4101)
    );
    assert_eq!(metric_of(&relay, keys).await, 2.0, "no bucket of its own");
    for source in ["203.0.113.3", "203.0.113.4"] {
        let refusal = refused_before_the_challenge(&relay, source)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{source}, without a bucket at the cap, was challenged after the overflow \
                     bucket was used up"
                )
            });
        // The answer and the close both say why: new addresses, not this one.
        assert!(
            refusal.says_at_cap(),
            "{source}: {:?} / close {:?}",
            refusal.message,
            refusal.close_reason
        );
    }
    let at_cap = "sealdesk_limited_at_cap_total{reason=\"source_auth_failures\"}";
    assert_eq!(metric_of(&relay, at_cap).await, 2.0);
    let limited = "sealdesk_limited_total{reason=\"source_auth_failures\"}";
    assert_eq!(metric_of(&relay, limited).await, 2.0);
    // A source with a bucket is refused by its own (not the cap's refusal), and told so.
    let own = refused_before_the_challenge(&relay, "203.0.113.1")
        .await
        .expect("203.0.113.1 refused by its own bucket");
    assert!(
        own.says_own_address(),
        "{:?} / close {:?}",
        own.message,
        own.close_reason
    );
    assert_eq!(metric_of(&relay, at_cap).await, 2.0);
    assert_eq!(metric_of(&relay, limited).await, 3.0);
}

/// With a cap of two sources, two sources register (each bucket short of tokens since); a
/// third is refused `rate_limited`, counted both under its limit and as the cap's refusal,
/// and the table stays at two keys. A source's own empty bucket is not the cap's refusal.
#[tokio::test]
async fn a_new_source_at_the_cap_is_refused_and_counted_as_the_caps() {
    let (relay, _dir) = spawn_relay_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.limits.max_tracked_sources = 2;
        instant_connection_refill(c);
        c.limits.source_registration_burst = 1;
        c.limits.source_registrations_per_minute = 1;
    })
    .await;
    let url = relay.ws_url();
    let register =
        async |client: &str, seed: u64| register_from(&url, Some(client), &visitor(seed)).await;
    assert_eq!(register("203.0.113.1", 10).await, Response::Ok);
    assert_eq!(register("203.0.113.2", 11).await, Response::Ok);
    let r = register("203.0.113.3", 12).await;
    assert!(
        matches!(
            r,
            Response::Error {
                code: ErrorCode::RateLimited,
                ..
            }
        ),
        "{r:?}"
    );
    assert!(r.retry_after().is_some(), "{r:?}");
    let Response::Error { message, .. } = &r else {
        unreachable!()
    };
    assert!(
        message.contains("too many addresses are registering right now"),
        "the words say it is the cap, not this address: {message}"
    );
    let name = |m: &str| format!("{m}{{reason=\"source_registrations\"}}");
    assert_eq!(
        metric_of(&relay, &name("sealdesk_limited_total")).await,
        1.0
    );
    assert_eq!(
        metric_of(&relay, &name("sealdesk_limited_at_cap_total")).await,
        1.0
    );
    assert_eq!(metric_of(&relay, &name("sealdesk_limit_keys")).await, 2.0);
    // The first source's own bucket is empty: refused, but not by the cap.
    let r = register("203.0.113.1", 13).await;
    assert!(
        matches!(
            r,
            Response::Error {
                code: ErrorCode::RateLimited,
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(
        metric_of(&relay, &name("sealdesk_limited_total")).await,
        2.0
    );
    assert_eq!(
        metric_of(&relay, &name("sealdesk_limited_at_cap_total")).await,
        1.0
    );
}
