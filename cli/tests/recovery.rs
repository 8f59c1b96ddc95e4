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
