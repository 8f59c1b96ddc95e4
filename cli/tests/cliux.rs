//! What a new user tripped over in the CLI (issue 22, "Found but not fixed"): the short id the
//! chat window and `audit` show is taken by `--conversation`, and an erased conversation is
//! listed as erased.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{grant, json, ok, org_and_conversation, sealdesk, serve_once, unlock};
use sealdesk_tests::world::World;

/// `--conversation` takes the first 8 hex digits of an id this account lists; an unknown or
/// malformed one is refused with what to do.
#[tokio::test]
async fn conversation_takes_the_short_id() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    let short = &conv[..8];

    let sent = ok(
        &w,
        "carol",
        &["send", "--conversation", short, "by short id"],
    )
    .await;
    assert!(sent.starts_with("sent"), "{sent}");
    let h = json(&w, "carol", &["history", "--conversation", short]).await;
    assert!(h.to_string().contains("by short id"), "{h:#}");
    // The agent too, upper-case as well.
    let upper = short.to_ascii_uppercase();
    let h = ok(&w, "alice", &["history", "--conversation", &upper]).await;
    assert!(h.contains("by short id"), "{h}");
    // `audit --conversation` as well.
    ok(&w, "carol", &["audit", "--conversation", short]).await;

    // A prefix of no conversation of this account's: named, with where to find full ids.
    let other = if short.starts_with('0') {
        "11111111"
    } else {
        "00000000"
    };
    let r = sealdesk(&w, "carol", &["history", "--conversation", other]).await;
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains(&format!("no conversation of yours starts with {other}"))
            && r.stderr.contains("`sealdesk conversations` lists full ids"),
        "{}",
        r.stderr
    );
    // Too short, or not hex: refused before anything else.
    for bad in [&conv[..6], "not-an-id"] {
        let r = sealdesk(&w, "carol", &["send", "--conversation", bad, "x"]).await;
        assert!(!r.ok);
        assert!(
            r.stderr.contains("is not a conversation id")
                && r.stderr.contains("at least the first 8"),
            "{}",
            r.stderr
        );
    }
}

/// `conversations` lists an erased conversation as `[erased]`, not by its last status.
#[tokio::test]
async fn an_erased_conversation_is_listed_as_erased() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    let before = ok(&w, "carol", &["conversations"]).await;
    assert!(before.contains("[open]"), "{before}");
    ok(&w, "carol", &["erase", "--conversation", &conv]).await;
    let after = ok(&w, "carol", &["conversations"]).await;
    let line = after
        .lines()
        .find(|l| l.starts_with(&conv))
        .expect("still listed");
    assert!(line.contains("[erased]"), "{after}");
    assert!(!line.contains("[open]"), "{after}");
}

/// `audit` names the conversation an erasure entry is about: its short id, its customer and
/// agent.
#[tokio::test]
async fn audit_names_the_erased_conversation() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    ok(&w, "carol", &["erase", "--conversation", &conv]).await;
    let text = ok(&w, "carol", &["audit"]).await;
    let line = text
        .lines()
        .find(|l| l.contains("was erased"))
        .expect("the erasure is listed");
    assert!(
        line.contains(&format!(
            "conversation {} (customer carol, agent alice) was erased",
            &conv[..8]
        )),
        "{text}"
    );
}

/// Every id in `--json` output is hex: `audit --json`'s release groups name their
/// conversation as `conversations` does, not as an array of bytes.
#[tokio::test]
async fn audit_json_gives_ids_in_hex() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    let consent = grant(&w, &conv, "1d").await;
    let r = unlock(&w, &conv, &consent, "0").await;
    assert!(!r.ok, "{}", r.stdout);
    for t in ["trustee-1", "trustee-2"] {
        serve_once(&w, t).await;
    }
    let r = unlock(&w, &conv, &consent, "10").await;
    assert!(r.ok, "{}", r.stderr);
    let a = json(&w, "carol", &["audit"]).await;
    let releases = a["releases"].as_array().unwrap();
    assert!(!releases.is_empty(), "{a:#}");
    for g in releases {
        assert_eq!(g["conversation"], conv.as_str(), "{g:#}");
    }
    assert_no_byte_arrays(&a, "audit");
    // The other `--json` outputs that carry release notices or transcripts.
    let h = json(&w, "carol", &["history", "--conversation", &conv]).await;
    assert_no_byte_arrays(&h, "history");
    let t = json(
        &w,
        "acme-owner",
        &["transcript", "show", "--conversation", &conv],
    )
    .await;
    assert_no_byte_arrays(&t, "transcript show");
    let l = json(&w, "carol", &["conversations"]).await;
    assert_no_byte_arrays(&l, "conversations");
}

/// Fails if `v` holds an array of 16 or more small numbers (bytes serialized as a list).
fn assert_no_byte_arrays(v: &serde_json::Value, path: &str) {
    match v {
        serde_json::Value::Array(a) => {
            let bytes = a.len() >= 16 && a.iter().all(|x| x.as_u64().is_some_and(|n| n < 256));
            assert!(!bytes, "{path} is an array of bytes: {v}");
            for (i, x) in a.iter().enumerate() {
                assert_no_byte_arrays(x, &format!("{path}[{i}]"));
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                assert_no_byte_arrays(x, &format!("{path}.{k}"));
            }
        }
        _ => {}
    }
}

/// `transcript export` counts what `history` calls messages, and names the other items (read
/// receipts, status changes) it holds.
#[tokio::test]
async fn export_counts_messages_as_history_does() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    ok(&w, "alice", &["send", "--conversation", &conv, "on it"]).await;
    ok(&w, "alice", &["status", "--conversation", &conv, "waiting"]).await;
    ok(&w, "carol", &["history", "--conversation", &conv]).await;
    let consent = grant(&w, &conv, "1d").await;
    assert!(!unlock(&w, &conv, &consent, "0").await.ok);
    for t in ["trustee-1", "trustee-2"] {
        serve_once(&w, t).await;
    }
    assert!(unlock(&w, &conv, &consent, "10").await.ok);

    let h = json(&w, "carol", &["history", "--conversation", &conv]).await;
    let messages = h["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l.get("number").is_some())
        .count();
    assert_eq!(messages, 2, "{h:#}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.json");
    let said = ok(
        &w,
        "acme-owner",
        &[
            "transcript",
            "export",
            "--conversation",
            &conv,
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .await;
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let items = file["messages"].as_array().unwrap().len();
    assert!(items > messages, "{said}");
    assert!(
        said.starts_with(&format!("exported {items} items: {messages} messages, ")),
        "{said}"
    );
    assert!(
        said.contains("read receipt") && said.contains("1 status change"),
        "{said}"
    );
}

/// `transcript show` numbers messages as `history` does (#1, #2 …), the relay's sequence
/// number beside it, labelled.
#[tokio::test]
async fn transcript_show_numbers_messages_as_history_does() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    ok(&w, "alice", &["send", "--conversation", &conv, "on it"]).await;
    ok(&w, "carol", &["history", "--conversation", &conv]).await;
    ok(&w, "carol", &["send", "--conversation", &conv, "thanks"]).await;
    let consent = grant(&w, &conv, "1d").await;
    assert!(!unlock(&w, &conv, &consent, "0").await.ok);
    for t in ["trustee-1", "trustee-2"] {
        serve_once(&w, t).await;
    }
    assert!(unlock(&w, &conv, &consent, "10").await.ok);

    let history = ok(&w, "carol", &["history", "--conversation", &conv]).await;
    let shown = ok(
        &w,
        "acme-owner",
        &["transcript", "show", "--conversation", &conv],
    )
    .await;
    for (n, said) in [(1, "my order 1234 never came"), (2, "on it"), (3, "thanks")] {
        assert!(
            history
                .lines()
                .any(|l| l.starts_with(&format!("#{n} ")) && l.contains(said)),
            "{history}"
        );
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with(&format!("#{n} (seq ")) && l.contains(said)),
            "#{n} should be {said:?}:\n{shown}"
        );
    }
}
