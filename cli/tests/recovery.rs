//! Account recovery through the `sealdesk` binary (issue 22 §3): `init` shows a customer's
//! recovery code once; `recover` on a new machine refuses a typo (caught by the checksum) and a
//! wrong code with typed error codes, creating nothing, and with the right code restores the
//! account with the same fingerprint, its conversation and history; the agent reads what the
//! recovered customer sends without a key-change warning.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{json, ok, sealdesk};
use sealdesk_protocol::{ids::ConversationId, recovery::RecoveryCode};
use sealdesk_tests::world::{World, texts};
use serde_json::Value;

#[tokio::test]
async fn a_customer_recovers_with_the_code_init_showed_and_carries_on() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let made = json(
        &w,
        "carol",
        &["init", "--name", "carol", "--role", "customer"],
    )
    .await;
    let code = made["recovery_code"].as_str().unwrap().to_owned();
    assert!(RecoveryCode::parse(&code).is_ok(), "{made}");
    let text = ok(
        &w,
        "erin",
        &["init", "--name", "erin", "--role", "customer"],
    )
    .await;
    assert!(text.contains("recovery code: "), "{text}");
    assert!(text.contains("shown only now"), "{text}");
    // Other roles get none (agents are re-certified by their org instead).
    let agent = json(&w, "bob", &["init", "--name", "bob", "--role", "agent"]).await;
    assert!(agent["recovery_code"].is_null(), "{agent}");

    ok(&w, "carol", &["register"]).await;
    let opened = json(
        &w,
        "carol",
        &[
            "open",
            "--org",
            "acme",
            "--org-fingerprint",
            &org.fingerprint,
        ],
    )
    .await;
    let conv = opened["conversation"].as_str().unwrap().to_owned();
    ok(
        &w,
        "carol",
        &["send", "--conversation", &conv, "where is my parcel"],
    )
    .await;
    let alice = &mut org.agents[0];
    alice.sync_all().await.unwrap();
    let fingerprint = made["fingerprint"].as_str().unwrap().to_owned();

    // A typo: refused by the checksum before the relay is asked; nothing created.
    let mut typo: Vec<char> = code.chars().collect();
    typo[1] = if typo[1] == 'A' { 'B' } else { 'A' };
    let typo: String = typo.into_iter().collect();
    let r = sealdesk(
        &w,
        "carol-new",
        &["recover", "--name", "carol", "--code", &typo, "--json"],
    )
    .await;
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    let e: Value = serde_json::from_str(&r.stderr).unwrap();
    assert_eq!(e["error"]["code"], "recovery_code_typo", "{e}");
    assert!(!w.home("carol-new").exists());

    // Someone else's code (well formed): the relay knows no carol with its keys.
    let other = RecoveryCode::from_parts(&[3; 16], 1_790_000_000)
        .unwrap()
        .reveal()
        .to_string();
    let r = sealdesk(
        &w,
        "carol-new",
        &["recover", "--name", "carol", "--code", &other, "--json"],
    )
    .await;
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    let e: Value = serde_json::from_str(&r.stderr).unwrap();
    assert_eq!(e["error"]["code"], "not_recovered", "{e}");
    assert!(!w.home("carol-new").exists());

    // The right code, typed loosely (lower case, spaces).
    let loose = code.replace('-', " ").to_lowercase();
    let back = json(
        &w,
        "carol-new",
        &["recover", "--name", "carol", "--code", &loose],
    )
    .await;
    assert_eq!(back["fingerprint"], fingerprint.as_str(), "{back}");
    assert_eq!(back["conversations"], 1, "{back}");
    let who = json(&w, "carol-new", &["whoami"]).await;
    assert_eq!(who["fingerprint"], fingerprint.as_str(), "{who}");
    let history = ok(&w, "carol-new", &["history", "--conversation", &conv]).await;
    assert!(history.contains("where is my parcel"), "{history}");

    ok(
        &w,
        "carol-new",
        &["send", "--conversation", &conv, "any news?"],
    )
    .await;
    let events = alice.sync_all().await.unwrap();
    assert!(
        !events
            .iter()
            .any(|e| matches!(&e.kind, sealdesk_client::client::EventKind::Warning { .. })),
        "{events:?}"
    );
    assert!(!alice.account().peer_blocked("carol").unwrap());
    assert_eq!(
        texts(alice, &ConversationId::parse(&conv).unwrap())
            .last()
            .map(String::as_str),
        Some("carol: any news?")
    );
}

/// `sealdesk --home HOME ARGS` with the passphrase `pass`, the new one `new` if given, and a
/// fail point if given: (exit code, stdout, stderr).
async fn with_pass(
    home: &std::path::Path,
    pass: &str,
    new: Option<&str>,
    failpoint: Option<&str>,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sealdesk"));
    cmd.arg("--home")
        .arg(home)
        .args(args)
        .env("SEALDESK_PASSPHRASE", pass)
        .env("SEALDESK_INSECURE_FAST_KDF", "1")
        .env_remove("SEALDESK_NEW_PASSPHRASE")
        .env_remove("SEALDESK_FAILPOINT")
        .stdin(std::process::Stdio::null());
    if let Some(n) = new {
        cmd.env("SEALDESK_NEW_PASSPHRASE", n);
    }
    if let Some(f) = failpoint {
        cmd.env("SEALDESK_FAILPOINT", f);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Which of `old` and `new` open `home` (through `whoami`).
async fn opens(home: &std::path::Path, old: &str, new: &str) -> (bool, bool) {
    let a = with_pass(home, old, None, None, &["whoami"]).await.0 == Some(0);
    let b = with_pass(home, new, None, None, &["whoami"]).await.0 == Some(0);
    (a, b)
}

#[tokio::test]
async fn passphrase_change_is_atomic_refuses_a_short_one_and_survives_a_crash_at_each_step() {
    let w = World::new().await;
    const OLD: &str = "correct horse battery staple";
    const NEW: &str = "a new and longer passphrase";
    let home = w.home("carol");
    let (code, out, err) = with_pass(
        &home,
        OLD,
        None,
        None,
        &["init", "--name", "carol", "--role", "customer"],
    )
    .await;
    assert_eq!(code, Some(0), "{out}{err}");
    let fp = with_pass(&home, OLD, None, None, &["whoami", "--json"])
        .await
        .1;

    // Too short: refused as init refuses it; nothing changed.
    let (code, _, err) = with_pass(
        &home,
        OLD,
        Some("short"),
        None,
        &["passphrase", "change", "--json"],
    )
    .await;
    assert_eq!(code, Some(1));
    let e: Value = serde_json::from_str(&err).unwrap();
    assert_eq!(e["error"]["code"], "weak_passphrase", "{e}");
    assert_eq!(opens(&home, OLD, NEW).await, (true, false));

    // The wrong current passphrase: refused; nothing changed.
    let (code, _, _) = with_pass(
        &home,
        "not the passphrase at all",
        Some(NEW),
        None,
        &["passphrase", "change"],
    )
    .await;
    assert_eq!(code, Some(1));
    assert_eq!(opens(&home, OLD, NEW).await, (true, false));

    // Killed with the new header written but not in place: the old passphrase works.
    let (code, _, err) = with_pass(
        &home,
        OLD,
        Some(NEW),
        Some("passphrase-written"),
        &["passphrase", "change"],
    )
    .await;
    assert_eq!(code, Some(86), "{err}");
    assert_eq!(opens(&home, OLD, NEW).await, (true, false));

    // Killed right after the rename: the new one works, the old one no longer does.
    let (code, _, err) = with_pass(
        &home,
        OLD,
        Some(NEW),
        Some("passphrase-renamed"),
        &["passphrase", "change"],
    )
    .await;
    assert_eq!(code, Some(86), "{err}");
    assert_eq!(opens(&home, OLD, NEW).await, (false, true));

    // And back, uninterrupted: every record still opens (same account, same fingerprint).
    let (code, out, err) = with_pass(&home, NEW, Some(OLD), None, &["passphrase", "change"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("changed the passphrase"), "{out}");
    assert_eq!(opens(&home, OLD, NEW).await, (true, false));
    assert_eq!(
        with_pass(&home, OLD, None, None, &["whoami", "--json"])
            .await
            .1,
        fp
    );
}

#[tokio::test]
async fn the_master_recertifies_an_agent_from_its_whoami_and_the_old_home_loses_the_name() {
    let w = World::new().await;
    let org = w.org(&["alice"], None).await;
    org.close().await;
    // The new machine: same name, new keys; the relay says the name is taken.
    ok(
        &w,
        "alice-new",
        &["init", "--name", "alice", "--role", "agent"],
    )
    .await;
    let r = sealdesk(&w, "alice-new", &["register", "--json"]).await;
    assert_eq!(r.code, Some(1));
    let e: Value = serde_json::from_str(&r.stderr).unwrap();
    assert_eq!(e["error"]["code"], "name_taken", "{e}");
    let who = ok(&w, "alice-new", &["whoami", "--json"]).await;
    let card_file = w.dir.path().join("alice-card.json");
    std::fs::write(&card_file, &who).unwrap();
    let fp = serde_json::from_str::<Value>(&who).unwrap()["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();

    // A wrong fingerprint: refused, nothing rebound.
    let r = sealdesk(
        &w,
        "acme-owner",
        &[
            "org",
            "recertify",
            "--name",
            "alice",
            "--card",
            card_file.to_str().unwrap(),
            "--fingerprint",
            "00000 00000 00000 00000 00000 00000",
            "--json",
        ],
    )
    .await;
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(!sealdesk(&w, "alice-new", &["register"]).await.ok);

    let out = ok(
        &w,
        "acme-owner",
        &[
            "org",
            "recertify",
            "--name",
            "alice",
            "--card",
            card_file.to_str().unwrap(),
            "--fingerprint",
            &fp,
        ],
    )
    .await;
    assert!(out.contains("re-certified alice"), "{out}");
    ok(&w, "alice-new", &["register"]).await;
    ok(&w, "alice-new", &["conversations"]).await;
    // The old home still opens locally, but the relay no longer serves its key.
    ok(&w, "alice", &["whoami"]).await;
    let r = sealdesk(&w, "alice", &["conversations", "--json"]).await;
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    let e: Value = serde_json::from_str(&r.stderr).unwrap();
    assert_eq!(e["error"]["code"], "not_registered", "{e}");
}
