//! Open tokens through `sealdesk` (issue 25 §3): the master certifies a web server key and makes
//! the org require tokens; a customer without a token is refused with its code; the business's
//! script issues a token for the customer's key, and `open --token` opens with it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::card::Role;
use sealdesk_tests::world::{MASTER, World};

mod common;

/// Runs `sealdesk` as `who` (the shared runner); whether it succeeded, stdout and stderr.
async fn run(w: &World, who: &str, args: &[&str]) -> (bool, String, String) {
    let r = common::sealdesk(w, who, args).await;
    (r.ok, r.stdout, r.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_opens_with_the_token_the_business_issued() {
    let w = World::new().await;
    let org = w.org(&["alice"], None).await;
    org.close().await;
    let carol = w.user("carol", Role::Customer).await;
    let carol_key = carol.account().keys().signing_public().to_string();
    carol.close().await;
    let key_file = w.dir.path().join("web.key");
    let key = key_file.to_str().unwrap();

    let (ok, out, err) = run(
        &w,
        MASTER,
        &[
            "org",
            "web-key",
            "--org",
            "acme",
            "--new-key",
            key,
            "--require",
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("certified web key www of acme"), "{out}");
    assert!(out.contains("acme now requires an open token"), "{out}");

    let (ok, out, err) = run(&w, "carol", &["--json", "open", "--org", "acme"]).await;
    assert!(!ok, "opened without a token: {out}");
    assert!(err.contains("\"code\":\"open_token_required\""), "{err}");

    let (ok, token, err) = run(
        &w,
        "carol",
        &[
            "token",
            "issue",
            "--key",
            key,
            "--org",
            "acme",
            "--visitor",
            "visitor-7",
            "--customer",
            &carol_key,
        ],
    )
    .await;
    assert!(ok, "{token}{err}");
    let token = token.trim().to_owned();
    // A token for another key is refused with its own code.
    let other = sealdesk_tests::identity::Identity::new(5, "dave", Role::Customer)
        .key()
        .to_string();
    let (ok, wrong, err) = run(
        &w,
        "carol",
        &[
            "token",
            "issue",
            "--key",
            key,
            "--org",
            "acme",
            "--visitor",
            "visitor-7",
            "--customer",
            &other,
        ],
    )
    .await;
    assert!(ok, "{wrong}{err}");
    let (ok, out, err) = run(
        &w,
        "carol",
        &["--json", "open", "--org", "acme", "--token", wrong.trim()],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        err.contains("\"code\":\"open_token_wrong_customer\""),
        "{err}"
    );

    let (ok, out, err) = run(&w, "carol", &["open", "--org", "acme", "--token", &token]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("Opened conversation"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_or_revoked_web_key_signs_no_more_tokens_and_a_customer_is_named_by_its_card() {
    let w = World::new().await;
    let org = w.org(&["alice"], None).await;
    org.close().await;
    for name in ["carol", "dave", "erin"] {
        w.user(name, Role::Customer).await.close().await;
    }
    let old_file = w.dir.path().join("old.key");
    let new_file = w.dir.path().join("new.key");
    let (old, new) = (old_file.to_str().unwrap(), new_file.to_str().unwrap());
    let certify = |file: &str| {
        vec![
            "--json",
            "org",
            "web-key",
            "--org",
            "acme",
            "--new-key",
            file,
            "--require",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>()
    };
    let args = certify(old);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, err) = run(&w, MASTER, &args).await;
    assert!(ok, "{out}{err}");
    let old_key = serde_json::from_str::<serde_json::Value>(&out).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();

    // `--customer` takes the customer's `whoami --json` file, or its home, as well as hex.
    let (ok, whoami, err) = run(&w, "carol", &["--json", "whoami"]).await;
    assert!(ok, "{err}");
    let card_file = w.dir.path().join("carol.json");
    std::fs::write(&card_file, whoami).unwrap();
    let issue = |key: &str, visitor: &str, customer: &str| {
        [
            "token",
            "issue",
            "--key",
            key,
            "--org",
            "acme",
            "--visitor",
            visitor,
            "--customer",
            customer,
        ]
        .map(str::to_owned)
    };
    let open = |token: String| {
        ["--json", "open", "--org", "acme", "--token"]
            .map(str::to_owned)
            .into_iter()
            .chain([token])
            .collect::<Vec<_>>()
    };
    let mut tokens = Vec::new();
    for (who, customer) in [
        ("carol", card_file.to_str().unwrap().to_owned()),
        ("dave", w.home("dave").to_str().unwrap().to_owned()),
    ] {
        let a = issue(old, who, &customer);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let (ok, token, err) = run(&w, who, &a).await;
        assert!(ok, "{token}{err}");
        tokens.push((who, token.trim().to_owned()));
    }
    // An agent's card is not a customer's.
    let (ok, out, err) = run(
        &w,
        "carol",
        &[
            "token",
            "issue",
            "--key",
            old,
            "--org",
            "acme",
            "--visitor",
            "x",
            "--customer",
            w.home("alice").to_str().unwrap(),
        ],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(err.contains("not a customer's card"), "{err}");
    let (who, token) = tokens.remove(0);
    let a = open(token);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (ok, out, err) = run(&w, who, &a).await;
    assert!(ok, "{out}{err}");

    // A new key certified with --retire revokes the old one: dave's token from the old key is
    // refused, a token from the new key opens.
    let mut args = certify(new);
    args.extend(["--retire".to_owned(), old_key.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, err) = run(&w, MASTER, &args).await;
    assert!(ok, "{out}{err}");
    let new_key = serde_json::from_str::<serde_json::Value>(&out).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (who, token) = tokens.remove(0);
    let a = open(token);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (ok, out, err) = run(&w, who, &a).await;
    assert!(!ok, "{out}");
    assert!(err.contains("\"code\":\"open_token_revoked\""), "{err}");
    assert!(err.contains("revoked"), "{err}");
    let a = issue(new, "erin", "erin");
    let mut a: Vec<&str> = a.iter().map(String::as_str).collect();
    let erin_home = w.home("erin");
    a[9] = erin_home.to_str().unwrap();
    let (ok, token, err) = run(&w, "erin", &a).await;
    assert!(ok, "{token}{err}");
    let erin_token = token.trim().to_owned();

    // --revoke: the new key too; an unknown key is refused.
    let (ok, out, err) = run(
        &w,
        MASTER,
        &["org", "web-key", "--org", "acme", "--revoke", &new_key],
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("revoked web key"), "{out}");
    let a = open(erin_token);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (ok, out, err) = run(&w, "erin", &a).await;
    assert!(!ok, "{out}");
    assert!(err.contains("\"code\":\"open_token_revoked\""), "{err}");
    let unknown = sealdesk_tests::identity::Identity::new(9, "web", Role::Customer)
        .key()
        .to_string();
    let (ok, out, err) = run(
        &w,
        MASTER,
        &[
            "--json", "org", "web-key", "--org", "acme", "--revoke", &unknown,
        ],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(err.contains("\"code\":\"not_found\""), "{err}");
}
