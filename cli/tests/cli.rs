//! The `sealdesk` binary end to end against a real relay: init, register, org setup, open,
//! send, history, conversations, keys, and a wrong passphrase.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{json, ok, sealdesk_at};
use sealdesk_client::{Account, Client};
use sealdesk_tests::{
    wait::eventually,
    world::{PASS, World, texts},
};
use serde_json::Value;

#[tokio::test]
async fn cli_story_from_init_to_history() {
    let w = World::new().await;
    let people = [
        ("acme-owner", "master"),
        ("trustee-1", "trustee"),
        ("trustee-2", "trustee"),
        ("trustee-3", "trustee"),
        ("arbiter-1", "arbiter"),
        ("arbiter-2", "arbiter"),
        ("alice", "agent"),
        ("carol", "customer"),
    ];
    for (name, role) in people {
        ok(&w, name, &["init", "--name", name, "--role", role]).await;
        ok(&w, name, &["register"]).await;
    }
    let created = json(
        &w,
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
            "--arbiter",
            "arbiter-2",
            "--arbiter-threshold",
            "2",
            "--retention-days",
            "30",
        ],
    )
    .await;
    assert_eq!(created["version"], 1);
    ok(&w, "acme-owner", &["org", "add-agent", "alice"]).await;
    let shown = json(&w, "carol", &["org", "show", "acme"]).await;
    let fp = shown["org_fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(fp, created["org_fingerprint"].as_str().unwrap());
    assert_eq!(shown["retention_days"], 30);

    // alice is online (in this process) so the relay can assign her.
    let mut alice = Client::connect(Account::open(&w.home("alice"), PASS).unwrap(), &w.url)
        .await
        .unwrap();
    let opened = json(
        &w,
        "carol",
        &["open", "--org", "acme", "--org-fingerprint", &fp],
    )
    .await;
    let conv = opened["conversation"].as_str().unwrap().to_owned();
    assert_eq!(opened["agent"], "alice");
    assert!(
        opened["summary"]
            .as_str()
            .unwrap()
            .contains("end-to-end encrypted")
    );
    ok(
        &w,
        "carol",
        &["send", "--conversation", &conv, "hello from the CLI"],
    )
    .await;

    alice.sync_all().await.unwrap();
    let id = sealdesk_protocol::ids::ConversationId::parse(&conv).unwrap();
    assert_eq!(
        texts(&alice, &id),
        vec!["carol: hello from the CLI".to_owned()]
    );
    alice
        .send_text(&id, "hello from the library")
        .await
        .unwrap();
    drop(alice.close().await);

    let text = ok(&w, "carol", &["history", "--conversation", &conv]).await;
    assert!(text.contains("carol: hello from the CLI"), "{text}");
    assert!(text.contains("alice: hello from the library"), "{text}");
    assert!(text.contains("verified"), "{text}");
    let convs = json(&w, "carol", &["conversations"]).await;
    assert_eq!(convs["conversations"][0]["conversation"], conv.as_str());

    let fpr = json(&w, "carol", &["keys", "fingerprint", "alice"]).await;
    assert_eq!(fpr["source"], "pinned");
    let who = json(&w, "carol", &["whoami"]).await;
    assert_eq!(who["role"], "customer");

    // Errors: wrong passphrase, unknown conversation, wrong role.
    let r = sealdesk_at(&w, &w.home("carol"), "wrong", &["whoami"]).await;
    assert!(!r.ok);
    assert!(r.stderr.contains("wrong passphrase"), "{}", r.stderr);
    let r = sealdesk_at(
        &w,
        &w.home("carol"),
        PASS,
        &["send", "--conversation", "nothex", "x"],
    )
    .await;
    assert!(
        !r.ok && r.stderr.contains("not a conversation id"),
        "{}",
        r.stderr
    );
    let r = sealdesk_at(&w, &w.home("carol"), PASS, &["org", "add-agent", "alice"]).await;
    assert!(
        !r.ok && r.stderr.contains("needs a master account"),
        "{}",
        r.stderr
    );
    let r = sealdesk_at(&w, &w.home("nobody"), PASS, &["whoami"]).await;
    assert!(!r.ok && r.stderr.contains("sealdesk init"), "{}", r.stderr);
}

#[tokio::test]
async fn cli_escrow_story() {
    let w = World::new().await;
    for (name, role) in [
        ("acme-owner", "master"),
        ("trustee-1", "trustee"),
        ("trustee-2", "trustee"),
        ("trustee-3", "trustee"),
        ("arbiter-1", "arbiter"),
        ("arbiter-2", "arbiter"),
        ("alice", "agent"),
        ("carol", "customer"),
    ] {
        ok(&w, name, &["init", "--name", name, "--role", role]).await;
        ok(&w, name, &["register"]).await;
    }
    ok(
        &w,
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
            "--arbiter",
            "arbiter-2",
            "--arbiter-threshold",
            "2",
        ],
    )
    .await;
    ok(&w, "acme-owner", &["org", "add-agent", "alice"]).await;
    let mut alice = Client::connect(Account::open(&w.home("alice"), PASS).unwrap(), &w.url)
        .await
        .unwrap();
    let opened = json(&w, "carol", &["open", "--org", "acme"]).await;
    let conv = opened["conversation"].as_str().unwrap().to_owned();
    ok(
        &w,
        "carol",
        &[
            "send",
            "--conversation",
            &conv,
            "mail me at carol@example.com",
        ],
    )
    .await;
    alice.sync_all().await.unwrap();
    drop(alice.close().await);

    // The master has nothing before a release.
    let r = sealdesk_at(
        &w,
        &w.home("acme-owner"),
        PASS,
        &["transcript", "show", "--conversation", &conv],
    )
    .await;
    assert!(
        !r.ok && r.stderr.contains("nothing of conversation"),
        "{}",
        r.stderr
    );

    let granted = json(
        &w,
        "carol",
        &[
            "consent",
            "grant",
            "--conversation",
            &conv,
            "--scope",
            "redacted",
            "--expires",
            "1d",
        ],
    )
    .await;
    // The consent reaches the master through the relay: the id is all it needs.
    let token = granted["consent"].as_str().unwrap().to_owned();
    assert!(granted["token"].as_str().is_some_and(|t| t.len() > 64));
    let list = json(&w, "carol", &["consent", "list"]).await;
    assert_eq!(list["consents"][0]["state"], "active");

    // Unlock in the background while the trustees run `serve --once`.
    let unlock = {
        let home = w.home("acme-owner");
        let url = w.url.clone();
        let conv = conv.clone();
        tokio::spawn(async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_sealdesk"))
                .arg("--home")
                .arg(home)
                .arg("--relay")
                .arg(url)
                .args([
                    "transcript",
                    "unlock",
                    "--conversation",
                    &conv,
                    "--consent",
                    &token,
                    "--wait",
                    "30",
                ])
                .env("SEALDESK_PASSPHRASE", PASS)
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .unwrap()
        })
    };
    // The trustees serve once at a time until both have released the request the unlock above
    // submits (it is pending only once that process has reached the relay).
    let mut released = 0;
    eventually(
        "both trustees to release through `trustee serve --once`",
        async || {
            for t in ["trustee-1", "trustee-2"] {
                released += ok(&w, t, &["trustee", "serve", "--once"])
                    .await
                    .matches(": released")
                    .count();
            }
            (released >= 2).then_some(())
        },
    )
    .await;
    assert_eq!(released, 2, "each trustee releases the one request once");
    let out = unlock.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("[email redacted]"), "{stdout}");

    let file = w.dir.path().join("transcript.json");
    ok(
        &w,
        "acme-owner",
        &[
            "transcript",
            "export",
            "--conversation",
            &conv,
            "--out",
            file.to_str().unwrap(),
        ],
    )
    .await;
    let verdict = ok(
        &w,
        "carol",
        &["transcript", "verify", file.to_str().unwrap()],
    )
    .await;
    assert!(
        verdict.contains("VERDICT: the transcript verifies"),
        "{verdict}"
    );
    let mut tampered: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    tampered["releases"] = Value::Array(vec![]);
    std::fs::write(&file, tampered.to_string()).unwrap();
    let r = sealdesk_at(
        &w,
        &w.home("carol"),
        PASS,
        &["transcript", "verify", file.to_str().unwrap()],
    )
    .await;
    assert!(
        !r.ok && r.stdout.contains("does NOT verify") && r.stdout.contains("[no_release]"),
        "{}",
        r.stdout
    );

    let audit = ok(&w, "carol", &["audit", "--verify"]).await;
    assert!(
        audit.contains("under your consent") && audit.contains("[inclusion proven]"),
        "{audit}"
    );
    let hist = ok(&w, "carol", &["history", "--conversation", &conv]).await;
    assert!(hist.contains("NOTICE"), "{hist}");

    // Disputes: list and approve by arbiters; erasure is held meanwhile.
    let t = json(
        &w,
        "acme-owner",
        &[
            "dispute",
            "open",
            "--conversation",
            &conv,
            "--reason",
            "fraud check",
        ],
    )
    .await;
    let ticket = t["ticket"].as_str().unwrap().to_owned();
    let listed = json(&w, "arbiter-1", &["dispute", "list"]).await;
    assert_eq!(listed["tickets"][0]["ticket"], ticket.as_str());
    let shown = ok(&w, "arbiter-1", &["dispute", "show", "--ticket", &ticket]).await;
    assert!(
        shown.contains("fraud check") && shown.contains("master signature: valid"),
        "{shown}"
    );
    let approved = json(
        &w,
        "arbiter-1",
        &["dispute", "approve", "--ticket", &ticket],
    )
    .await;
    assert_eq!(approved["approvals"], 1);
    let rejected = ok(
        &w,
        "arbiter-2",
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
    // With 2 of 2 arbiters needed, one rejection makes approval impossible: the ticket
    // closes and the legal hold ends with it (issue 22 §1 item 4).
    assert!(
        rejected.contains("no evidence") && rejected.contains("rejected by the arbiters"),
        "{rejected}"
    );
    let r = sealdesk_at(
        &w,
        &w.home("carol"),
        PASS,
        &["erase", "--conversation", &conv],
    )
    .await;
    assert!(r.ok, "{}", r.stderr);
}

/// The binary these tests run is built with the test hooks (the dev-dependency on the CLI with
/// `test-hooks`, unified by resolver 2 for `cargo test`), so `SEALDESK_INSECURE_FAST_KDF=1` gives
/// the cheap test KDF — and the output says so, in text and in `--json`. (A build without the
/// hooks ignores the variable: `kdf::Choice`'s unit tests, and `.ci/run`'s check of a normal
/// build.)
#[tokio::test]
async fn the_tested_binary_has_the_test_hooks_and_warns_of_the_cheap_vault() {
    let w = World::new().await;
    // The warning goes to stderr in text mode, into `warnings` with `--json`.
    let r = sealdesk_at(
        &w,
        &w.home("carol"),
        PASS,
        &["init", "--name", "carol", "--role", "customer"],
    )
    .await;
    assert!(
        r.ok && r
            .stderr
            .contains("warning: SEALDESK_INSECURE_FAST_KDF=1: this vault's passphrase is cheap")
            && !r.stdout.contains("warning"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    let v = json(&w, "dave", &["init", "--name", "dave", "--role", "agent"]).await;
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        v["warnings"][0]
            .as_str()
            .is_some_and(|s| s.contains("cheap to guess")),
        "{v}"
    );
    // The vault's header records the cheap setting (1 MiB, one pass), not the real one.
    for name in ["carol", "dave"] {
        let header: Value = serde_json::from_str(
            &std::fs::read_to_string(w.home(name).join("vault.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(header["kdf"]["memory_kib"], 1024, "{header}");
        assert_eq!(header["kdf"]["iterations"], 1, "{header}");
    }
}

/// A reader that stops reading before the output is written (`sealdesk … | head -0`) ends the
/// command quietly with the command's own status: no panic, no backtrace on the terminal.
#[tokio::test]
async fn a_reader_that_left_early_gets_no_panic() {
    let w = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("dora");
    let made = sealdesk_at(
        &w,
        &home,
        PASS,
        &["init", "--name", "dora", "--role", "customer"],
    )
    .await;
    assert!(made.ok, "{}", made.stderr);
    for json in [false, true] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sealdesk"));
        cmd.arg("--home")
            .arg(&home)
            .arg("--relay")
            .arg(&w.url)
            .arg("whoami")
            .env("SEALDESK_PASSPHRASE", PASS)
            .env("SEALDESK_INSECURE_FAST_KDF", "1")
            .env("RUST_BACKTRACE", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd.spawn().unwrap();
        // The only reading end closes before the command can write: its write gets EPIPE.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "json {json}: {:?} {stderr}",
            out.status
        );
        assert!(!stderr.contains("panicked"), "json {json}: {stderr}");
        assert!(stderr.is_empty(), "json {json}: {stderr}");
    }
}
