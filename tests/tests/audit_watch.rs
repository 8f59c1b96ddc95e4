//! `watch_audit` and `audit_grew` (PROTOCOL.md §13.5): a session that asked is pushed the log's
//! new size on every append; another connection of the same account that did not ask, and an
//! account that never asks (an older client, whose decoder fails an unknown push), receive
//! nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::wire::{Push, Request, Response};
use sealdesk_tests::{
    Org, RawClient,
    consent::{full_consent, revocation},
    spawn_relay,
};

#[tokio::test]
async fn only_the_sessions_that_asked_are_told_the_log_grew() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let acme = Org::setup(&url, 91, "acme", 1, 2).await;
    let (alice, bob) = (&acme.customers[0], &acme.customers[1]);

    let mut watcher = RawClient::login(&url, &acme.agents[0]).await;
    watcher.ok(Request::WatchAudit).await;
    // The same agent on another connection, and another account, never ask.
    let mut same_agent = RawClient::login(&url, &acme.agents[0]).await;
    let mut other = RawClient::login(&url, bob).await;

    let mut ca = RawClient::login(&url, alice).await;
    let chat = acme.start_chat(&mut ca, 0, 910).await;
    let token = full_consent(&acme, alice, chat.id, 911);
    ca.stored(Request::ShareConsent(token.clone())).await;
    let revocation = revocation(&alice.keys, chat.id, token.id);
    let size = match ca.request(Request::AppendAudit(revocation)).await {
        Response::Appended { head, .. } => head.size,
        other => panic!("expected Appended, got {other:?}"),
    };
    let told = watcher
        .expect_push("audit_grew", |p| match p {
            Push::AuditGrew { size } => Some(*size),
            _ => None,
        })
        .await;
    assert_eq!(told, size);
    same_agent
        .expect_no_push("audit_grew without watch_audit", |p| {
            matches!(p, Push::AuditGrew { .. })
        })
        .await;
    other
        .expect_no_push("audit_grew without watch_audit", |p| {
            matches!(p, Push::AuditGrew { .. })
        })
        .await;
}
