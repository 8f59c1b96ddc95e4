//! A release notice is stored in the same transaction as its audit entry: the real
//! `sealdesk-relay` binary, stopped by a test-only fail point right after the append became
//! durable (where the notice used to be a second, separate write), comes back with both.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    ids::EpochRange,
    release::{ConsentParams, ConsentToken, Justification, ReleaseRequest, Scope},
    wire::{Frame, Item, Request, Response},
};
use sealdesk_server::relay::{FAILPOINT_ENV, FAILPOINT_EXIT_CODE};
use sealdesk_tests::{
    Org, RawClient, STEP,
    child::{RelayProcess, relay_binary},
    now, rng,
};

fn start(data: &std::path::Path, env: &[(&str, &str)]) -> RelayProcess {
    let mut relay = RelayProcess::spawn_with_env(relay_binary(), data, &[], env).unwrap();
    relay.wait_ready(STEP).unwrap();
    relay
}

#[test]
fn relay_killed_after_an_audit_append_keeps_the_entry_and_its_notice_together() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    std::fs::create_dir_all(&data).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let mut relay = start(&data, &[(FAILPOINT_ENV, "relay-after-audit-append")]);
    let url = relay.ws_url();
    let (org, chat, entry) = rt.block_on(async {
        let org = Org::setup(&url, 81, "atomcorp", 1, 1).await;
        let mut c = RawClient::login(&url, &org.customers[0]).await;
        let chat = org.start_chat(&mut c, 0, 810).await;
        c.close().await;
        let consent = ConsentToken::issue(
            &mut rng(811),
            &org.customers[0].keys,
            &org.policy,
            ConsentParams {
                conversation: chat.id,
                epochs: EpochRange::single(0),
                scope: Scope::Full,
                purpose: "audit".into(),
                valid_secs: 600,
            },
            now(),
        )
        .unwrap();
        let request = ReleaseRequest::sign(
            &mut rng(812),
            &org.master.keys,
            &org.policy,
            EpochRange::single(0),
            Justification::Consent(consent),
            now(),
        )
        .unwrap();
        let entry = org.release_entry(&org.trustees[0], &request);
        let mut t = RawClient::login(&url, &org.trustees[0]).await;
        t.send_frame(&Frame::Request {
            id: 1,
            body: Request::AppendAudit(entry.clone()),
        })
        .await;
        // The relay dies before it answers.
        let answered = tokio::time::timeout(STEP, t.recv_frame()).await.unwrap();
        assert!(
            !matches!(answered, Some(Frame::Response { .. })),
            "the relay answered: {answered:?}"
        );
        (org, chat, entry)
    });
    let status = relay.kill().unwrap();
    assert_eq!(
        status.code(),
        Some(FAILPOINT_EXIT_CODE),
        "the relay did not stop at the fail point: {}",
        relay.log_tail()
    );

    let mut relay = start(&data, &[]);
    let url = relay.ws_url();
    rt.block_on(async {
        let mut c = RawClient::login(&url, &org.customers[0]).await;
        let logged = match c
            .request(Request::GetEntries {
                from: 0,
                limit: 100,
            })
            .await
        {
            Response::Entries { entries, .. } => entries,
            other => panic!("expected Entries, got {other:?}"),
        };
        let index = logged
            .iter()
            .position(|e| *e == entry)
            .expect("the entry was durable before the fail point") as u64;
        let notices: Vec<u64> = match c
            .request(Request::History {
                conversation: chat.id,
                after: 0,
                limit: 100,
            })
            .await
        {
            Response::Items { items, .. } => items
                .into_iter()
                .filter_map(|s| match s.item {
                    Item::Notice { entry: e, index: i } if e == entry => Some(i),
                    _ => None,
                })
                .collect(),
            other => panic!("expected Items, got {other:?}"),
        };
        assert_eq!(notices, vec![index], "the notice was lost with the crash");
    });
    relay.kill().unwrap();
}
