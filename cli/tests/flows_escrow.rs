//! Escrow flows a person can finish, through the `sealdesk` binary (issue 22): an unlock
//! stopped before the shares arrived is resumed by running it again (one justification, one
//! request, one release, one notice), and revocation says what it did (used, expired, revoked
//! or active; revoking a used consent logs nothing; revoking twice logs once).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{grant, json, log_size, ok, org_and_conversation, sealdesk, serve_once, unlock};
use sealdesk_tests::{wait::eventually, world::World};
use serde_json::Value;

/// Issue 22 §1 item 2: `--wait` runs out before the trustees answer; they release later; the
/// same unlock run again resumes the one request and collects the shares kept for it. A third
/// run makes no new request, so the trustee that had not run yet finds only the old one, and
/// the customer is told of one release.
#[tokio::test]
async fn interrupted_unlock_is_resumed_with_one_request_and_one_notice() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    let consent = grant(&w, &conv, "1d").await;

    // Stopped before any share arrived: the request is left with the trustees.
    let r = unlock(&w, &conv, &consent, "0").await;
    assert!(
        !r.ok && r.stderr.contains("trustee shares arrived"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    for t in ["trustee-1", "trustee-2"] {
        let handled = serve_once(&w, t).await;
        assert_eq!(handled.len(), 1, "{t}: {handled:?}");
        assert!(handled[0].ends_with(": released"), "{t}: {handled:?}");
    }

    // Run again: the shares already sealed to the master are collected and opened.
    let r = unlock(&w, &conv, &consent, "10").await;
    assert!(r.ok, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("my order 1234 never came"),
        "{}",
        r.stdout
    );
    // And again: still the one request, nothing new for the trustees.
    let r = unlock(&w, &conv, &consent, "10").await;
    assert!(r.ok, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("my order 1234 never came"),
        "{}",
        r.stdout
    );

    let late = serve_once(&w, "trustee-3").await;
    assert_eq!(late.len(), 1, "only the first request exists: {late:?}");
    for t in ["trustee-1", "trustee-2"] {
        assert!(serve_once(&w, t).await.is_empty(), "{t} has nothing new");
    }

    // One release, one notice for the customer.
    let audit = json(&w, "carol", &["audit"]).await;
    let releases = audit["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 1, "{audit:#}");
}

/// Issue 22 §1 item 5: `consent list` says used / expired / revoked / active; revoking a used
/// consent says so and logs nothing; revoking twice logs once.
#[tokio::test]
async fn revocation_says_what_it_did_and_logs_once() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    let used = grant(&w, &conv, "1d").await;
    let kept = grant(&w, &conv, "1d").await;
    let expiring = grant(&w, &conv, "1s").await;

    // The master asks under `used` and one trustee releases: the consent is spent.
    let r = unlock(&w, &conv, &used, "0").await;
    assert!(!r.ok, "{}\n{}", r.stdout, r.stderr);
    let handled = serve_once(&w, "trustee-1").await;
    assert!(
        handled.len() == 1 && handled[0].ends_with(": released"),
        "{handled:?}"
    );

    let state_of = |list: &Value, id: &str| {
        list["consents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["consent"] == id)
            .map(|c| c["state"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let list = json(&w, "carol", &["consent", "list"]).await;
    assert_eq!(state_of(&list, &used), "used", "{list:#}");
    assert_eq!(state_of(&list, &kept), "active", "{list:#}");
    eventually("the one-second consent to expire", async || {
        let list = json(&w, "carol", &["consent", "list"]).await;
        (state_of(&list, &expiring) == "expired").then_some(())
    })
    .await;

    // Revoking the used one: said, and nothing logged.
    let before = log_size(&w).await;
    let r = sealdesk(&w, "carol", &["consent", "revoke", "--consent", &used]).await;
    assert!(
        !r.ok && r.stderr.contains("already used") && r.stderr.contains("none was logged"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(log_size(&w).await, before);

    // Revoking twice: one entry.
    let first = json(&w, "carol", &["consent", "revoke", "--consent", &kept]).await;
    assert_eq!(first["state"], "revoked");
    let index = first["index"].as_u64().unwrap();
    let again = ok(&w, "carol", &["consent", "revoke", "--consent", &kept]).await;
    assert!(
        again.contains("already revoked") && again.contains(&format!("#{index}")),
        "{again}"
    );
    assert_eq!(log_size(&w).await, before + 1);

    let list = ok(&w, "carol", &["consent", "list"]).await;
    let line = |id: &str| list.lines().find(|l| l.starts_with(id)).unwrap().to_owned();
    assert!(line(&used).contains("[used"), "{list}");
    assert!(line(&kept).contains("[revoked"), "{list}");
    assert!(line(&expiring).contains("[expired]"), "{list}");
}
