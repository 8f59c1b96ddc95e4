//! Escrow flows a person can finish, through the `sealdesk` binary (issue 22): an unlock
//! stopped before the shares arrived is resumed by running it again (one justification, one
//! request, one release, one notice), and revocation says what it did (used, expired, revoked
//! or active; revoking a used consent logs nothing; revoking twice logs once).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::{Account, Client};
use sealdesk_tests::{
    wait::eventually,
    world::{PASS, World},
};
use serde_json::Value;

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn sealdesk(w: &World, name: &str, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sealdesk"))
        .arg("--home")
        .arg(w.home(name))
        .arg("--relay")
        .arg(&w.url)
        .args(args)
        .env("SEALDESK_PASSPHRASE", PASS)
        .env("SEALDESK_INSECURE_FAST_KDF", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn ok(w: &World, name: &str, args: &[&str]) -> String {
    let r = sealdesk(w, name, args).await;
    assert!(
        r.ok,
        "sealdesk {args:?} as {name} failed:\n{}\n{}",
        r.stdout, r.stderr
    );
    r.stdout
}

async fn json(w: &World, name: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&ok(w, name, &all).await).unwrap()
}

/// An org `acme` (three trustees, two needed), its agent alice, and a conversation of carol's
/// with one message in it. Returns the conversation id.
async fn org_and_conversation(w: &World) -> String {
    for (name, role) in [
        ("acme-owner", "master"),
        ("trustee-1", "trustee"),
        ("trustee-2", "trustee"),
        ("trustee-3", "trustee"),
        ("arbiter-1", "arbiter"),
        ("alice", "agent"),
        ("carol", "customer"),
    ] {
        ok(w, name, &["init", "--name", name, "--role", role]).await;
        ok(w, name, &["register"]).await;
    }
    ok(
        w,
        "acme-owner",
        &[
            "org",
            "create",
            "--name",
            "acme",
            "--trustee",
            "trustee-1",
            "--trustee",
            "trustee-2",
            "--trustee",
            "trustee-3",
            "--trustee-threshold",
            "2",
            "--arbiter",
            "arbiter-1",
            "--arbiter-threshold",
            "1",
        ],
    )
    .await;
    ok(w, "acme-owner", &["org", "add-agent", "alice"]).await;
    // alice is online (in this process) so the relay can assign her.
    let mut alice = Client::connect(Account::open(&w.home("alice"), PASS).unwrap(), &w.url)
        .await
        .unwrap();
    let opened = json(w, "carol", &["open", "--org", "acme"]).await;
    let conv = opened["conversation"].as_str().unwrap().to_owned();
    ok(
        w,
        "carol",
        &["send", "--conversation", &conv, "my order 1234 never came"],
    )
    .await;
    alice.sync_all().await.unwrap();
    drop(alice.close().await);
    conv
}

/// `consent grant` as carol; the consent's id.
async fn grant(w: &World, conv: &str, expires: &str) -> String {
    let granted = json(
        w,
        "carol",
        &[
            "consent",
            "grant",
            "--conversation",
            conv,
            "--expires",
            expires,
        ],
    )
    .await;
    granted["consent"].as_str().unwrap().to_owned()
}

/// `transcript unlock` as the master, waiting `wait` seconds.
async fn unlock(w: &World, conv: &str, consent: &str, wait: &str) -> Run {
    sealdesk(
        w,
        "acme-owner",
        &[
            "transcript",
            "unlock",
            "--conversation",
            conv,
            "--consent",
            consent,
            "--wait",
            wait,
        ],
    )
    .await
}

/// `trustee serve --once` as `trustee`: the requests it handled, one line each.
async fn serve_once(w: &World, trustee: &str) -> Vec<String> {
    ok(w, trustee, &["trustee", "serve", "--once"])
        .await
        .lines()
        .filter(|l| l.starts_with("request "))
        .map(str::to_owned)
        .collect()
}

/// The number of entries in the audit log, as carol reads it.
async fn log_size(w: &World) -> u64 {
    json(w, "carol", &["audit"]).await["size"].as_u64().unwrap()
}

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
