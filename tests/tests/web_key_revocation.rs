//! Web key revocation (issue 25): the org's master revokes a web server key; tokens it signs
//! are refused `open_token_revoked` from then on, across a restart; the old certificate
//! published again does not bring it back, a later re-certification does. Refused: a
//! revocation sent by an agent or signed by one, one by another org's master, one replayed
//! after a re-certification, one for a key the org never certified.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    ids::ConversationId,
    keys::IdentityKeys,
    open_token::{OpenToken, OpenTokenParams, WebKeyCertificate, WebKeyRevocation},
    wire::{ErrorCode, Request, Response},
};
use sealdesk_tests::{
    identity::{Identity, now, rng},
    org::Org,
    raw::RawClient,
    relay::{spawn_relay_in, spawn_relay_with, stop_relay},
};

/// Opens a conversation with `org` as `who` with a fresh token signed by `web`; the answer.
async fn open_with(
    url: &str,
    who: &Identity,
    org: &str,
    web: &IdentityKeys,
    seed: u64,
) -> Response {
    let token = OpenToken::issue(
        web,
        &OpenTokenParams {
            org,
            visitor: format!("visitor-{seed}").as_bytes(),
            customer: who.key(),
            now: now(),
            valid_secs: 600,
        },
    )
    .unwrap();
    let mut c = RawClient::login(url, who).await;
    let r = c
        .request(Request::OpenConversationWithToken {
            org: org.to_owned(),
            conversation: ConversationId::random(&mut rng(seed)),
            token,
        })
        .await;
    c.close().await;
    r
}

fn code(r: &Response) -> ErrorCode {
    match r {
        Response::Error { code, .. } => *code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn opened(r: &Response) -> bool {
    matches!(r, Response::Opened { .. })
}

/// The master's request answered as given.
async fn as_master(url: &str, org: &Org, body: Request) -> Response {
    let mut m = RawClient::login(url, &org.master).await;
    let r = m.request(body).await;
    m.close().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_web_key_signs_no_more_tokens_across_a_restart() {
    let (relay, dir) = spawn_relay_with(|cfg| cfg.limits.conversation_opens_per_hour = 100).await;
    let url = relay.ws_url();
    let acme = Org::new_with(91, "acme", 1, 3, |p| p.require_open_token = true)
        .publish(&url)
        .await;
    let globex = Org::setup(&url, 92, "globex", 1, 1).await;
    let old = IdentityKeys::generate(&mut rng(93));
    let new = IdentityKeys::generate(&mut rng(94));
    let t = now();
    let certify = |keys: &IdentityKeys, at| {
        WebKeyCertificate::issue(
            &acme.master.keys,
            &acme.policy,
            "www",
            keys.signing_public(),
            at,
            86_400,
        )
        .unwrap()
    };
    let old_cert = certify(&old, t - 20);
    assert_eq!(
        as_master(&url, &acme, Request::PublishWebKey(old_cert.clone())).await,
        Response::Ok
    );
    let alice = &acme.customers[0];
    assert!(opened(&open_with(&url, alice, "acme", &old, 1).await));

    // A key the org never certified: not_found.
    let unknown = WebKeyRevocation::issue(&acme.master.keys, "acme", new.signing_public(), t);
    assert_eq!(
        code(&as_master(&url, &acme, Request::RevokeWebKey(unknown)).await),
        ErrorCode::NotFound
    );
    // Sent by an agent (signed by the master or by itself): forbidden.
    let by_master = WebKeyRevocation::issue(&acme.master.keys, "acme", old.signing_public(), t);
    let by_agent = WebKeyRevocation::issue(&acme.agents[0].keys, "acme", old.signing_public(), t);
    let mut agent = RawClient::login(&url, &acme.agents[0]).await;
    assert_eq!(
        agent
            .refused(Request::RevokeWebKey(by_master.clone()))
            .await,
        ErrorCode::Forbidden
    );
    assert_eq!(
        agent.refused(Request::RevokeWebKey(by_agent.clone())).await,
        ErrorCode::Forbidden
    );
    agent.close().await;
    // Signed by an agent, sent by the master: forbidden (not the master's signature).
    assert_eq!(
        code(&as_master(&url, &acme, Request::RevokeWebKey(by_agent)).await),
        ErrorCode::Forbidden
    );
    // Signed by another org's master, for acme's key, sent by either master.
    let by_globex = WebKeyRevocation::issue(&globex.master.keys, "acme", old.signing_public(), t);
    assert_eq!(
        code(&as_master(&url, &acme, Request::RevokeWebKey(by_globex.clone())).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(&as_master(&url, &globex, Request::RevokeWebKey(by_globex)).await),
        ErrorCode::Forbidden
    );
    // None of those revoked anything.
    assert!(opened(&open_with(&url, alice, "acme", &old, 2).await));

    // The master revokes it (a second time changes nothing); the key's tokens are refused.
    assert_eq!(
        as_master(&url, &acme, Request::RevokeWebKey(by_master.clone())).await,
        Response::Ok
    );
    assert_eq!(
        as_master(&url, &acme, Request::RevokeWebKey(by_master.clone())).await,
        Response::Ok
    );
    assert_eq!(
        code(&open_with(&url, alice, "acme", &old, 3).await),
        ErrorCode::OpenTokenRevoked
    );
    // The old certificate published again does not bring it back.
    assert_eq!(
        code(&as_master(&url, &acme, Request::PublishWebKey(old_cert)).await),
        ErrorCode::Forbidden
    );
    // A new key, certified (the retired one stays revoked).
    assert_eq!(
        as_master(&url, &acme, Request::PublishWebKey(certify(&new, t))).await,
        Response::Ok
    );
    assert!(opened(&open_with(&url, alice, "acme", &new, 4).await));

    // Durable: after a restart the revoked key's tokens are still refused.
    stop_relay(relay).await;
    let relay = spawn_relay_in(dir.path()).await;
    let url = relay.ws_url();
    assert_eq!(
        code(&open_with(&url, alice, "acme", &old, 5).await),
        ErrorCode::OpenTokenRevoked
    );
    assert!(opened(
        &open_with(&url, &acme.customers[1], "acme", &new, 6).await
    ));

    // A later re-certification of the revoked key is in force, and the old revocation
    // replayed does not end it.
    let again = certify(&old, now() + 1);
    assert_eq!(
        as_master(&url, &acme, Request::PublishWebKey(again)).await,
        Response::Ok
    );
    assert!(opened(
        &open_with(&url, &acme.customers[1], "acme", &old, 7).await
    ));
    assert_eq!(
        code(&as_master(&url, &acme, Request::RevokeWebKey(by_master)).await),
        ErrorCode::BadRequest
    );
    assert!(opened(
        &open_with(&url, &acme.customers[2], "acme", &old, 8).await
    ));
    stop_relay(relay).await;
}
