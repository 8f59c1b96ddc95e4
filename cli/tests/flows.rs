//! Flows a person must be able to finish, through the `sealdesk` binary (issue 22 §1): erasing
//! one conversation leaves the others and the local copy readable; a refused `open` creates
//! nothing; the org's master finds its org's conversations and the consents shared with it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use sealdesk_protocol::card::Role;
use sealdesk_tests::world::{PASS, World, open_chat};
use serde_json::Value;

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn sealdesk(w: &World, home: &Path, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sealdesk"))
        .arg("--home")
        .arg(home)
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

async fn json(w: &World, name: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let r = sealdesk(w, &w.home(name), &all).await;
    assert!(
        r.ok,
        "sealdesk {args:?} as {name} failed:\n{}\n{}",
        r.stdout, r.stderr
    );
    serde_json::from_str(&r.stdout).unwrap()
}

/// The conversations `name` lists, by id.
async fn listed(w: &World, name: &str) -> Vec<Value> {
    json(w, name, &["conversations"]).await["conversations"]
        .as_array()
        .unwrap()
        .clone()
}

fn texts_of(history: &Value) -> Vec<String> {
    history["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["entry"]["text"].as_str().map(str::to_owned))
        .collect()
}

/// Issue 22 §1 item 1: after `erase --conversation X`, `conversations` and `history` of
/// another conversation work, and X's local copy stays readable, marked erased; the agent's
/// client keeps working too, and nothing more can be sent in X.
#[tokio::test]
async fn erasing_one_conversation_leaves_the_others_and_the_local_copy_readable() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let erased = open_chat(&mut carol).await;
    let kept = open_chat(&mut carol).await;
    carol.send_text(&erased, "erase me").await.unwrap();
    carol.send_text(&kept, "keep me").await.unwrap();
    carol.close().await;
    let alice = &mut org.agents[0];
    alice.sync_all().await.unwrap();

    let (x, y) = (erased.to_string(), kept.to_string());
    json(&w, "carol", &["erase", "--conversation", &x]).await;

    let rows = listed(&w, "carol").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        let is_erased = row["conversation"] == x.as_str();
        assert_eq!(row["erased"], is_erased, "{row}");
    }
    let other = json(&w, "carol", &["history", "--conversation", &y]).await;
    assert_eq!(texts_of(&other), ["keep me"]);
    assert_eq!(other["erased"], false);
    let copy = json(&w, "carol", &["history", "--conversation", &x]).await;
    assert_eq!(texts_of(&copy), ["erase me"]);
    assert_eq!(copy["erased"], true);
    let text = sealdesk(&w, &w.home("carol"), &["history", "--conversation", &x]).await;
    assert!(
        text.ok && text.stdout.contains("erased on the relay"),
        "{}",
        text.stdout
    );

    let sent = sealdesk(&w, &w.home("carol"), &["send", "--conversation", &x, "hi"]).await;
    assert!(
        !sent.ok && sent.stderr.contains("erased"),
        "{}{}",
        sent.stdout,
        sent.stderr
    );
    let sent = sealdesk(
        &w,
        &w.home("carol"),
        &["send", "--conversation", &y, "still here"],
    )
    .await;
    assert!(sent.ok, "{}", sent.stderr);

    // The agent's client: the erased conversation is kept locally, marked, the other synced.
    alice.sync_all().await.unwrap();
    assert!(alice.meta(&erased).unwrap().erased);
    assert!(!alice.meta(&kept).unwrap().erased);
    let texts = sealdesk_tests::world::texts(alice, &kept);
    assert_eq!(texts, ["carol: keep me", "carol: still here"]);
}

/// Issue 22 §1 item 3: `open` with a wrong `--org-fingerprint` is refused before the relay
/// creates anything: neither the customer nor the agent lists a conversation afterwards, on
/// first contact and with the org already pinned.
#[tokio::test]
async fn a_refused_open_creates_no_conversation() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    w.user("carol", Role::Customer).await.close().await;
    let wrong = org.agents[0].account().fingerprint().to_string();
    let open_with = |fp: String| {
        let w = &w;
        async move {
            sealdesk(
                w,
                &w.home("carol"),
                &["open", "--org", "acme", "--org-fingerprint", &fp],
            )
            .await
        }
    };

    let refused = open_with(wrong.clone()).await;
    assert!(
        !refused.ok
            && refused
                .stderr
                .contains("does not match the fingerprint you gave"),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    assert!(listed(&w, "carol").await.is_empty());
    let alice = &mut org.agents[0];
    alice.sync_all().await.unwrap();
    assert!(alice.account().conversations().unwrap().is_empty());

    // Pinned now (with the right fingerprint): a wrong one is still refused before creation.
    let opened = open_with(org.fingerprint.clone()).await;
    assert!(opened.ok, "{}", opened.stderr);
    let refused = open_with(wrong).await;
    assert!(!refused.ok, "{}", refused.stdout);
    assert_eq!(listed(&w, "carol").await.len(), 1);
    alice.sync_all().await.unwrap();
    assert_eq!(alice.account().conversations().unwrap().len(), 1);
}
