//! A dispute ticket's lifecycle through the `sealdesk` binary (issue 22 §1 item 4): the master
//! closes a ticket (`dispute close`), or it closes on its own once its release was collected or
//! the arbiters rejected it; the hold on erasing the conversation ends with it, and the
//! customer is told in `history`. Only the master closes; a closed ticket releases nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{json, ok, org_and_conversation, sealdesk, serve_once};
use sealdesk_tests::world::World;
use serde_json::Value;

/// The master opens a dispute ticket on `conv`; its id.
async fn open_ticket(w: &World, conv: &str) -> String {
    let opened = json(
        w,
        "acme-owner",
        &[
            "dispute",
            "open",
            "--conversation",
            conv,
            "--reason",
            "chargeback",
        ],
    )
    .await;
    opened["ticket"].as_str().unwrap().to_owned()
}

/// The ticket as `dispute show --json` prints it for `name`.
async fn show(w: &World, name: &str, ticket: &str) -> Value {
    json(w, name, &["dispute", "show", "--ticket", ticket]).await
}

/// The history lines' texts, as carol reads them.
async fn carol_history(w: &World, conv: &str) -> Vec<String> {
    json(w, "carol", &["history", "--conversation", conv]).await["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["entry"]["text"].as_str().map(str::to_owned))
        .collect()
}

/// Whether carol's `erase` of `conv` is refused under legal hold (else it must succeed).
async fn erase_held(w: &World, conv: &str) -> bool {
    let r = sealdesk(w, "carol", &["erase", "--conversation", conv]).await;
    if r.ok {
        return false;
    }
    assert!(
        r.stderr.contains("legal hold"),
        "erase failed otherwise:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    true
}

/// The master's `transcript unlock` under `ticket`.
async fn unlock(w: &World, conv: &str, ticket: &str, wait: &str) -> common::Run {
    sealdesk(
        w,
        "acme-owner",
        &[
            "transcript",
            "unlock",
            "--conversation",
            conv,
            "--ticket",
            ticket,
            "--wait",
            wait,
        ],
    )
    .await
}

/// Approved, released by two trustees and collected by the master: the ticket closes on its
/// own, carol is told, and her erase works again.
#[tokio::test]
async fn a_released_and_collected_ticket_closes_and_the_hold_ends() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    let ticket = open_ticket(&w, &conv).await;
    assert!(erase_held(&w, &conv).await, "an open ticket holds erasure");
    ok(
        &w,
        "arbiter-1",
        &["dispute", "approve", "--ticket", &ticket],
    )
    .await;

    let r = unlock(&w, &conv, &ticket, "0").await;
    assert!(!r.ok, "{}\n{}", r.stdout, r.stderr);
    for t in ["trustee-1", "trustee-2"] {
        let handled = serve_once(&w, t).await;
        assert!(
            handled.len() == 1 && handled[0].ends_with(": released"),
            "{t}: {handled:?}"
        );
    }
    assert!(
        show(&w, "acme-owner", &ticket).await["closed"].is_null(),
        "released but not collected yet: still open"
    );
    let r = unlock(&w, &conv, &ticket, "10").await;
    assert!(r.ok, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("my order 1234 never came"),
        "{}",
        r.stdout
    );

    let shown = show(&w, "arbiter-1", &ticket).await;
    assert_eq!(shown["closed"]["because"], "released", "{shown:#}");
    let told = carol_history(&w, &conv).await;
    assert!(
        told.iter()
            .any(|t| t.contains(&format!("dispute {ticket}")) && t.contains("closed")),
        "{told:#?}"
    );
    assert!(
        !erase_held(&w, &conv).await,
        "the hold ended with the close"
    );
}

/// `dispute close` is the master's: an arbiter's is refused; once closed, an unlock under the
/// ticket is refused, carol is told why, and her erase works again.
#[tokio::test]
async fn the_master_closes_a_ticket_and_nothing_is_released_under_it() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    let ticket = open_ticket(&w, &conv).await;
    ok(
        &w,
        "arbiter-1",
        &["dispute", "approve", "--ticket", &ticket],
    )
    .await;

    let r = sealdesk(&w, "arbiter-1", &["dispute", "close", "--ticket", &ticket]).await;
    assert!(!r.ok, "an arbiter closed the ticket:\n{}", r.stdout);
    assert!(r.stderr.contains("master"), "{}", r.stderr);
    assert!(erase_held(&w, &conv).await, "still open, still held");

    let out = ok(
        &w,
        "acme-owner",
        &[
            "dispute",
            "close",
            "--ticket",
            &ticket,
            "--reason",
            "refunded the order",
        ],
    )
    .await;
    assert!(out.contains("closed"), "{out}");
    let shown = show(&w, "acme-owner", &ticket).await;
    assert_eq!(shown["closed"]["because"], "master", "{shown:#}");
    assert_eq!(shown["approved_by"][0], "arbiter-1", "{shown:#}");
    let text = ok(&w, "acme-owner", &["dispute", "show", "--ticket", &ticket]).await;
    assert!(
        text.contains("arbiter-1 approved"),
        "approvers by name: {text}"
    );

    // Approved but closed: no release.
    let r = unlock(&w, &conv, &ticket, "0").await;
    assert!(
        !r.ok && r.stderr.contains("closed"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    for t in ["trustee-1", "trustee-2", "trustee-3"] {
        assert!(serve_once(&w, t).await.is_empty(), "{t} was asked");
    }
    // Closing twice is refused, and says so.
    let r = sealdesk(&w, "acme-owner", &["dispute", "close", "--ticket", &ticket]).await;
    assert!(!r.ok && r.stderr.contains("already closed"), "{}", r.stderr);

    let told = carol_history(&w, &conv).await;
    assert!(
        told.iter()
            .any(|t| t.contains("refunded the order") && t.contains("closed")),
        "{told:#?}"
    );
    assert!(
        !erase_held(&w, &conv).await,
        "the hold ended with the close"
    );
}

/// The one arbiter (threshold 1) rejects: approval is impossible, the ticket closes.
#[tokio::test]
async fn a_rejected_ticket_closes() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    let ticket = open_ticket(&w, &conv).await;
    let out = ok(
        &w,
        "arbiter-1",
        &[
            "dispute",
            "reject",
            "--ticket",
            &ticket,
            "--reason",
            "no evidence",
        ],
    )
    .await;
    assert!(out.contains("rejected by the arbiters"), "{out}");
    assert_eq!(
        show(&w, "acme-owner", &ticket).await["closed"]["because"],
        "rejected"
    );
    assert!(
        !erase_held(&w, &conv).await,
        "the hold ended with the close"
    );
}
