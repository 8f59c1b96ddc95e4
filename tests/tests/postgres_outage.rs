//! A relay on a throwaway PostgreSQL (`sealdesk_tests::pg`) whose database goes down as in a
//! power cut and comes back: no acknowledgement while it is down, none lost, `/healthz` saying
//! so.
//!
//! Skipped, loudly, only when the machine has no PostgreSQL binaries (CI installs them: `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::wire::{Item, Request, Response};
use sealdesk_tests::{Org, RawClient, http_get, pg, spawn_relay_with, stop_relay};

/// A relay on PostgreSQL whose database stops as in a power cut (`pg_ctl stop -m immediate`)
/// and comes back: while it is down the relay acknowledges nothing; afterwards it acknowledges
/// again without a restart of its own, and every message acknowledged before, during and after
/// is in the history once, in order, with no sequence gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_down_stops_acknowledgements_and_loses_nothing_acknowledged() {
    let Some(cluster) = pg::Cluster::start() else {
        return;
    };
    let url = cluster.database("down");
    let (relay, _dir) = spawn_relay_with(move |c| {
        c.store = sealdesk_server::config::StoreKind::Postgres;
        c.database_url = Some(url);
        c.migrate = true;
    })
    .await;
    let ws = relay.ws_url();
    let org = Org::setup(&ws, 3, "acme", 1, 1).await;
    let customer = &org.customers[0];
    let mut c = RawClient::login(&ws, customer).await;
    let chat = org.start_chat(&mut c, 0, 30).await;
    let mut acked: Vec<(u64, String)> = Vec::new();
    let mut counter = 0u64;
    for _ in 0..5 {
        let text = format!("before {counter}");
        let seq = c
            .stored(Request::Send(chat.seal(customer, counter, &text)))
            .await;
        acked.push((seq, text));
        counter += 1;
    }

    assert!(
        http_get(&relay, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    cluster.stop_immediate();
    let text = format!("while down {counter}");
    match c
        .request(Request::Send(chat.seal(customer, counter, &text)))
        .await
    {
        Response::Error { .. } => {}
        other => panic!("acknowledged while the database was down: {other:?}"),
    }
    counter += 1;
    // The node reports itself unhealthy, so a load balancer sends clients elsewhere.
    let health = http_get(&relay, "/healthz").await;
    assert!(
        health.starts_with("HTTP/1.1 503") && health.contains("database unreachable"),
        "{health}"
    );

    cluster.start_again();
    // The pool reconnects on use: the first sends may still fail, none may be acknowledged
    // wrongly, and within a few the relay acknowledges again.
    let mut back = false;
    for _ in 0..20 {
        let text = format!("after {counter}");
        match c
            .request(Request::Send(chat.seal(customer, counter, &text)))
            .await
        {
            Response::Stored { seq, .. } => {
                acked.push((seq, text));
                back = true;
                counter += 1;
                break;
            }
            Response::Error { .. } => counter += 1,
            other => panic!("unexpected answer: {other:?}"),
        }
    }
    assert!(
        back,
        "the relay acknowledges again once the database is back"
    );
    // Healthy again once the wake-up connection is back too.
    sealdesk_tests::eventually("/healthz ok again", async || {
        http_get(&relay, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
            .then_some(())
    })
    .await;
    for _ in 0..3 {
        let text = format!("after {counter}");
        let seq = c
            .stored(Request::Send(chat.seal(customer, counter, &text)))
            .await;
        acked.push((seq, text));
        counter += 1;
    }

    let items = match c
        .request(Request::History {
            conversation: chat.id,
            after: 0,
            limit: 1_000,
        })
        .await
    {
        Response::Items { items, .. } => items,
        other => panic!("expected Items, got {other:?}"),
    };
    let seqs: Vec<u64> = items.iter().map(|s| s.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "no gap, no repeat"
    );
    for (seq, text) in &acked {
        let item = items
            .iter()
            .find(|s| s.seq == *seq)
            .expect("acknowledged item stored");
        let Item::Message(env) = &item.item else {
            panic!("seq {seq} is not a message");
        };
        assert_eq!(&chat.open(env).body[..], text.as_bytes(), "seq {seq}");
    }
    c.close().await;
    stop_relay(relay).await;
}
