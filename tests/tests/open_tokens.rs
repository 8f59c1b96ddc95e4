//! Open tokens (issue 25, item 3): an org whose policy requires one is opened only with a token
//! signed by a web key its master certified, for the opening customer's key, unexpired; each
//! refusal has its own code; the opens of one visitor id are counted across customer keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    ids::ConversationId,
    keys::IdentityKeys,
    open_token::OpenToken,
    wire::{ErrorCode, Request, Response},
};
use sealdesk_tests::{
    burst::{at_once, fresh_keys, opened_or_over_quota, relay_with_open_quota},
    identity::{Identity, now, rng},
    org::Org,
    raw::RawClient,
    relay::spawn_relay_with,
    web_key::{self, open_request, token},
};

/// Opens a conversation with `org` as `who` with `token` (or none); the relay's answer.
async fn open(
    url: &str,
    who: &Identity,
    org: &str,
    token: Option<OpenToken>,
    seed: u64,
) -> Response {
    let mut c = RawClient::login(url, who).await;
    let r = c.request(open_request(org, seed, token)).await;
    c.close().await;
    r
}

fn code(r: &Response) -> ErrorCode {
    match r {
        Response::Error { code, .. } => *code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_requiring_tokens_opens_only_with_a_good_one() {
    let (relay, _dir) = spawn_relay_with(|cfg| cfg.limits.conversation_opens_per_hour = 2).await;
    let url = relay.ws_url();
    let acme = Org::new_with(81, "acme", 1, 4, |p| p.require_open_token = true)
        .publish(&url)
        .await;
    let globex = Org::setup(&url, 82, "globex", 1, 1).await;
    let web = IdentityKeys::generate(&mut rng(83));
    let rogue = IdentityKeys::generate(&mut rng(84));
    let t = now();
    let cert = web_key::certificate(&acme, &web, t - 10);
    // Only the master publishes a web key certificate.
    let mut agent = RawClient::login(&url, &acme.agents[0]).await;
    assert_eq!(
        agent.refused(Request::PublishWebKey(cert.clone())).await,
        ErrorCode::Forbidden
    );
    agent.close().await;
    web_key::publish(&url, &acme, cert).await;

    let alice = &acme.customers[0];
    // Missing.
    assert_eq!(
        code(&open(&url, alice, "acme", None, 1).await),
        ErrorCode::OpenTokenRequired
    );
    // Expired.
    let old = token(&web, "acme", b"v1", alice, t - 7200, 3600);
    assert_eq!(
        code(&open(&url, alice, "acme", Some(old), 2).await),
        ErrorCode::OpenTokenExpired
    );
    // Forged: the visitor changed after signing.
    let mut forged = token(&web, "acme", b"v1", alice, t, 600);
    forged.visitor = b"v2".to_vec();
    assert_eq!(
        code(&open(&url, alice, "acme", Some(forged), 3).await),
        ErrorCode::OpenTokenForged
    );
    // For another org.
    let elsewhere = token(&web, "globex", b"v1", alice, t, 600);
    assert_eq!(
        code(&open(&url, alice, "acme", Some(elsewhere), 4).await),
        ErrorCode::OpenTokenWrongOrg
    );
    // For another customer key.
    let bobs = token(&web, "acme", b"v1", &acme.customers[1], t, 600);
    assert_eq!(
        code(&open(&url, alice, "acme", Some(bobs), 5).await),
        ErrorCode::OpenTokenWrongCustomer
    );
    // Signed by a key the master did not certify.
    let uncertified = token(&rogue, "acme", b"v1", alice, t, 600);
    assert_eq!(
        code(&open(&url, alice, "acme", Some(uncertified), 6).await),
        ErrorCode::OpenTokenUncertified
    );
    // A certificate of another org's master for the same key does not certify it here.
    web_key::publish(&url, &globex, web_key::certificate(&globex, &rogue, t - 10)).await;
    let uncertified = token(&rogue, "acme", b"v1", alice, t, 600);
    assert_eq!(
        code(&open(&url, alice, "acme", Some(uncertified), 7).await),
        ErrorCode::OpenTokenUncertified
    );

    // A good one.
    let good = token(&web, "acme", b"v1", alice, t, 600);
    assert!(matches!(
        open(&url, alice, "acme", Some(good), 8).await,
        Response::Opened { .. }
    ));
    // An org that does not require tokens still opens without one.
    assert!(matches!(
        open(&url, &globex.customers[0], "globex", None, 9).await,
        Response::Opened { .. }
    ));

    // The visitor's opens are counted whatever key opens: two per hour here, so the third
    // open by visitor v1 is refused though its customer key has not opened before.
    let bob = &acme.customers[1];
    let carol = &acme.customers[2];
    assert!(matches!(
        open(
            &url,
            bob,
            "acme",
            Some(token(&web, "acme", b"v1", bob, t, 600)),
            10
        )
        .await,
        Response::Opened { .. }
    ));
    assert_eq!(
        code(
            &open(
                &url,
                carol,
                "acme",
                Some(token(&web, "acme", b"v1", carol, t, 600)),
                11
            )
            .await
        ),
        ErrorCode::RateLimited
    );
    // Another visitor is not affected.
    assert!(matches!(
        open(
            &url,
            carol,
            "acme",
            Some(token(&web, "acme", b"v2", carol, t, 600)),
            12
        )
        .await,
        Response::Opened { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_with_a_fresh_key_each_time_reaches_the_open_conversations_quota() {
    let (relay, _dir) = spawn_relay_with(|cfg| {
        cfg.limits.open_conversations_per_org = 2;
        cfg.limits.conversation_opens_per_hour = 100;
    })
    .await;
    let url = relay.ws_url();
    let acme = Org::new_with(85, "acme", 1, 4, |p| p.require_open_token = true)
        .publish(&url)
        .await;
    let web = web_key::certified(&url, &acme, 86).await;
    let t = now();
    let with = |who: &Identity, visitor: &[u8]| Some(token(&web, "acme", visitor, who, t, 600));
    let c = &acme.customers;
    // Visitor v1 opens two conversations, each with a key of its own.
    for (i, who) in c[..2].iter().enumerate() {
        let r = open(&url, who, "acme", with(who, b"v1"), 20 + i as u64).await;
        assert!(matches!(r, Response::Opened { .. }), "{r:?}");
    }
    // A third key of the same visitor, which has opened nothing itself: refused as the quota.
    let r = open(&url, &c[2], "acme", with(&c[2], b"v1"), 22).await;
    assert_eq!(code(&r), ErrorCode::QuotaExceeded, "{r:?}");
    let Response::Error {
        message,
        retry_after,
        ..
    } = r
    else {
        unreachable!()
    };
    assert!(message.contains("this visitor"), "{message}");
    assert!(retry_after.is_some_and(|s| s > 0));
    // The same key as another visitor opens; so does another visitor with a fresh key.
    assert!(matches!(
        open(&url, &c[2], "acme", with(&c[2], b"v2"), 23).await,
        Response::Opened { .. }
    ));
    assert!(matches!(
        open(&url, &c[3], "acme", with(&c[3], b"v3"), 24).await,
        Response::Opened { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opens_of_one_visitor_at_the_same_instant_take_exactly_the_quota() {
    let most = 2;
    let (relay, _dir) = relay_with_open_quota(most).await;
    let url = relay.ws_url();
    let acme = Org::new_with(87, "acme", 1, 1, |p| p.require_open_token = true)
        .publish(&url)
        .await;
    let web = web_key::certified(&url, &acme, 88).await;
    let t = now();
    // Rounds of one visitor id each: every customer key opens with a token naming it, all
    // at the same instant. Each key has opened nothing itself; the visitor's quota decides.
    for round in 0..3u64 {
        let visitor = format!("burst-{round}");
        let keys = fresh_keys(round, 10);
        let mut r = rng(90 + round);
        let burst = keys
            .iter()
            .map(|who| {
                let request = Request::OpenConversationWithToken {
                    org: "acme".to_owned(),
                    conversation: ConversationId::random(&mut r),
                    token: token(&web, "acme", visitor.as_bytes(), who, t, 600),
                };
                (who, request)
            })
            .collect();
        let answers = at_once(&[&url], burst).await;
        assert_eq!(
            opened_or_over_quota(&answers),
            most,
            "round {round}: {answers:?}"
        );
    }
}
