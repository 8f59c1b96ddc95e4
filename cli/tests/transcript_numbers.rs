//! One numbering for a conversation wherever it is read (issue 22/20): `history`,
//! `transcript show`, the text and html exports and `transcript verify` all call a text or a
//! file "#N" by the same N — the attachment in its place, with its caption — and a read
//! receipt names the message it reads up to by that number, not by the relay's sequence
//! number.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{json, ok, sealdesk};
use sealdesk_tests::world::World;

/// The one line of `text` that starts (after its indent) with `prefix`.
fn line_starting<'a>(text: &'a str, prefix: &str) -> &'a str {
    let found: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with(prefix))
        .collect();
    assert_eq!(found.len(), 1, "one line starting {prefix:?} in:\n{text}");
    found[0]
}

/// The relay sequence number of `label` ("#4 (seq 9) …") in `text`.
fn seq_of(text: &str, number: u64) -> u64 {
    let line = line_starting(text, &format!("#{number} (seq "));
    line.trim_start()
        .split_once("(seq ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no seq in {line:?}"))
}

/// The lead's conversation: carol #1, alice's read receipt of it, alice #2, carol #3, carol's
/// file with a caption #4, a status change, alice #5, carol #6 — released to the master.
/// Returns the conversation id.
async fn released_conversation(w: &World, dir: &std::path::Path) -> String {
    // carol #1 ("my order 1234 never came").
    let conv = common::org_and_conversation(w).await;
    // alice reads it: her history sends a read receipt up to carol's message.
    ok(w, "alice", &["history", "--conversation", &conv]).await;
    let say = |who: &'static str, text: &'static str| {
        let conv = conv.clone();
        async move { ok(w, who, &["send", "--conversation", &conv, text]).await }
    };
    say("alice", "sorry to hear that, let me look").await;
    say("carol", "thanks").await;
    let receipt = dir.join("receipt.txt");
    std::fs::write(&receipt, b"order 1234, paid").unwrap();
    common::send_file(w, "carol", &conv, &receipt, "here is the receipt").await;
    ok(w, "alice", &["status", "--conversation", &conv, "waiting"]).await;
    say("alice", "I am checking with the courier").await;
    say("carol", "ok").await;

    let consent = common::grant(w, &conv, "1d").await;
    let r = common::unlock(w, &conv, &consent, "0").await;
    assert!(!r.ok, "{}\n{}", r.stdout, r.stderr);
    for t in ["trustee-1", "trustee-2"] {
        common::serve_once(w, t).await;
    }
    let r = common::unlock(w, &conv, &consent, "10").await;
    assert!(r.ok, "{}\n{}", r.stdout, r.stderr);
    conv
}

#[tokio::test]
async fn history_show_the_exports_and_verify_number_every_message_alike() {
    let w = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    let conv = released_conversation(&w, dir.path()).await;

    // history: the file is #4, with its caption; alice's courier line is #5.
    let history = ok(&w, "carol", &["history", "--conversation", &conv]).await;
    let file = line_starting(&history, "#4 ");
    assert!(file.contains("carol: [attachment: receipt.txt"), "{file}");
    assert!(file.contains("here is the receipt"), "{file}");
    assert!(
        line_starting(&history, "#5 ").contains("alice: I am checking with the courier"),
        "{history}"
    );
    assert!(
        line_starting(&history, "#6 ").contains("carol: ok"),
        "{history}"
    );

    // transcript show: the same numbers, the file in its place with its caption and check.
    let shown = ok(
        &w,
        "acme-owner",
        &["transcript", "show", "--conversation", &conv],
    )
    .await;
    let file = line_starting(&shown, "#4 (seq ");
    assert!(
        file.contains("carol (epoch 0): [attachment: receipt.txt"),
        "{file}"
    );
    assert!(file.contains("here is the receipt"), "{file}");
    assert!(
        file.contains("file checked: every chunk and the SHA-256 match the signed message"),
        "{file}"
    );
    assert!(
        line_starting(&shown, "#5 (seq ")
            .contains("alice (epoch 0): I am checking with the courier"),
        "{shown}"
    );
    assert!(
        line_starting(&shown, "#6 (seq ").contains("carol (epoch 0): ok"),
        "{shown}"
    );
    assert!(
        !shown.contains("attachments ("),
        "no separate block: {shown}"
    );
    let file_seq = seq_of(&shown, 4);
    let courier_seq = seq_of(&shown, 5);
    let doc = json(
        &w,
        "acme-owner",
        &["transcript", "show", "--conversation", &conv],
    )
    .await;
    let numbered: Vec<(u64, u64, String)> = doc["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["number"].as_u64().unwrap(),
                m["seq"].as_u64().unwrap(),
                m["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(numbered.len(), 6, "{doc}");
    assert_eq!(numbered[3], (4, file_seq, "attachment".to_owned()), "{doc}");
    assert_eq!(numbered[4], (5, courier_seq, "text".to_owned()), "{doc}");

    // The text export: the same "#N (seq S)" labels; the receipt names message #1.
    let text_file = dir.path().join("t.txt");
    let html_file = dir.path().join("t.html");
    let json_file = dir.path().join("t.json");
    for (format, out) in [
        ("text", &text_file),
        ("html", &html_file),
        ("json", &json_file),
    ] {
        ok(
            &w,
            "acme-owner",
            &[
                "transcript",
                "export",
                "--conversation",
                &conv,
                "--format",
                format,
                "--out",
                out.to_str().unwrap(),
            ],
        )
        .await;
    }
    let text = std::fs::read_to_string(&text_file).unwrap();
    let carol_first = seq_of(&text, 1);
    assert!(
        line_starting(&text, &format!("#4 (seq {file_seq}) "))
            .contains("carol: [attachment: receipt.txt"),
        "{text}"
    );
    assert!(
        line_starting(&text, &format!("#5 (seq {courier_seq}) ")).contains("alice: I am checking"),
        "{text}"
    );
    // The epoch record is seq 1, so carol's first message's number and seq differ.
    assert!(carol_first > 1, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("(seq ") && l.ends_with("alice: read up to #1")),
        "{text}"
    );
    assert!(
        !text.contains(&format!("read up to #{carol_first}")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("(seq ") && l.ends_with("alice: set the status to waiting")),
        "{text}"
    );

    // The html export: the same labels in its table.
    let html = std::fs::read_to_string(&html_file).unwrap();
    assert!(
        html.contains(&format!("<tr><td>#4 (seq {file_seq})</td>")),
        "{html}"
    );
    assert!(
        html.contains(&format!("<tr><td>#5 (seq {courier_seq})</td>")),
        "{html}"
    );
    assert!(
        html.contains("<td>alice</td><td>read up to #1</td>"),
        "{html}"
    );

    // transcript verify names a forged message by the same number and its seq.
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_file).unwrap()).unwrap();
    let courier = file["messages"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["seq"] == courier_seq)
        .unwrap();
    courier["text"] = "your parcel was delivered".into();
    let forged = dir.path().join("forged.json");
    std::fs::write(&forged, serde_json::to_vec(&file).unwrap()).unwrap();
    let r = sealdesk(
        &w,
        "acme-owner",
        &[
            "transcript",
            "verify",
            forged.to_str().unwrap(),
            "--no-anchor",
        ],
    )
    .await;
    assert!(!r.ok, "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "message #5 (seq {courier_seq}) (shown as from alice): the text shown is not what the sender wrote"
        )),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
}

/// A transcript kept by an earlier version left the files out: `transcript show` says its
/// numbers skip them, and says nothing of the kind for one kept with its files.
#[tokio::test]
async fn show_warns_that_a_transcript_kept_without_its_files_numbers_differently() {
    let w = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    let conv = released_conversation(&w, dir.path()).await;
    let show = ["transcript", "show", "--conversation", conv.as_str()];
    let r = sealdesk(&w, "acme-owner", &show).await;
    assert!(
        r.ok && !r.stderr.contains("earlier version"),
        "{}",
        r.stderr
    );

    // As an earlier version kept it: texts only, not marked as holding the files.
    let account =
        sealdesk_client::Account::open(&w.home("acme-owner"), sealdesk_tests::world::PASS).unwrap();
    let id = sealdesk_protocol::ids::ConversationId::parse(&conv).unwrap();
    let mut t = account.store().transcript(&id).unwrap().unwrap();
    t.messages
        .retain(|m| m.envelope.header.kind == sealdesk_protocol::message::ContentKind::Text);
    t.with_files = false;
    account.store().put_transcript(&id, &t).unwrap();
    drop(account);

    let r = sealdesk(&w, "acme-owner", &show).await;
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "warning: this transcript was kept by an earlier version, which left the files out"
        ),
        "{}",
        r.stderr
    );
}
