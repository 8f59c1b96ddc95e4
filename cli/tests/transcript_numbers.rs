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

    release(w, &conv, "all").await;
    conv
}

/// carol consents to the release of `epochs` ("all" or "A-B"), two trustees release, and the
/// master unlocks: `transcript unlock`'s output.
async fn release(w: &World, conv: &str, epochs: &str) -> String {
    let consent = &common::grant_with(w, conv, "1d", &["--epochs", epochs]).await;
    let r = common::unlock(w, conv, consent, "0").await;
    assert!(!r.ok, "{}\n{}", r.stdout, r.stderr);
    for t in ["trustee-1", "trustee-2"] {
        common::serve_once(w, t).await;
    }
    let r = common::unlock(w, conv, consent, "10").await;
    assert!(r.ok, "{}\n{}", r.stdout, r.stderr);
    r.stdout
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

/// What `transcript show` and `unlock` say, once, when messages are named by seq only.
const UNNUMBERED: &str = "Messages of epochs not released come before some shown here, so they \
                          are named by the relay's sequence number (seq), not by history's \
                          message numbers.";

/// The `--json` numbers of `transcript show`: (number, seq, text) of each message.
async fn shown_numbers(
    w: &World,
    conv: &str,
) -> (serde_json::Value, Vec<(Option<u64>, u64, String)>) {
    let doc = json(
        w,
        "acme-owner",
        &["transcript", "show", "--conversation", conv],
    )
    .await;
    let numbers = doc["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["number"].as_u64(),
                m["seq"].as_u64().unwrap(),
                m["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (doc, numbers)
}

/// A conversation of two epochs, as `history` numbers it: epoch 0 (carol #1, alice #2), then
/// alice's transfer to bob, and epoch 1 (bob #3, carol #4). Returns its id.
async fn two_epochs(w: &World) -> String {
    let conv = common::org_and_conversation(w).await;
    let say = |who: &'static str, text: &'static str| {
        let conv = conv.clone();
        async move { ok(w, who, &["send", "--conversation", &conv, text]).await }
    };
    say("alice", "let me look").await;
    ok(w, "bob", &["init", "--name", "bob", "--role", "agent"]).await;
    ok(w, "bob", &["register"]).await;
    ok(w, "acme-owner", &["org", "add-agent", "bob"]).await;
    ok(
        w,
        "alice",
        &["transfer", "--conversation", &conv, "--to", "bob"],
    )
    .await;
    say("bob", "bob here, I have your order").await;
    say("carol", "thanks bob").await;

    let history = ok(w, "carol", &["history", "--conversation", &conv]).await;
    for (n, said) in [
        (1, "carol: my order 1234 never came"),
        (2, "alice: let me look"),
        (3, "bob: bob here"),
        (4, "carol: thanks bob"),
    ] {
        assert!(
            line_starting(&history, &format!("#{n} ")).contains(said),
            "{history}"
        );
    }
    conv
}

/// (number, text) of each message of `transcript show --json`, as `history` numbers them.
fn as_history_numbers(numbers: &[(Option<u64>, u64, String)]) -> Vec<(Option<u64>, &str)> {
    numbers.iter().map(|(n, _, t)| (*n, t.as_str())).collect()
}

/// Epoch 0 is not released, epoch 1 is: nothing the master holds says how many messages
/// epoch 0 had, so `transcript show` (text and `--json`) and `unlock`'s listing say so once and
/// name bob's and carol's messages by seq — not "#1" and "#2", which `history` gives to epoch
/// 0's. Once epoch 0 is released too, they are numbered as `history` numbers them.
#[tokio::test]
async fn show_names_messages_by_seq_when_an_epoch_not_released_comes_first() {
    let w = World::new().await;
    let conv = two_epochs(&w).await;

    // Only epoch 1.
    let show = ["transcript", "show", "--conversation", conv.as_str()];
    let unlocked = release(&w, &conv, "1-1").await;
    let shown = ok(&w, "acme-owner", &show).await;
    for text in [&unlocked, &shown] {
        assert_eq!(text.matches(UNNUMBERED).count(), 1, "{text}");
        assert!(
            !text.lines().any(|l| l.starts_with('#')),
            "no message numbers: {text}"
        );
        for said in ["bob (epoch 1): bob here", "carol (epoch 1): thanks bob"] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with("(seq ") && l.contains(said)),
                "{said:?} by seq: {text}"
            );
        }
    }
    let (doc, numbers) = shown_numbers(&w, &conv).await;
    assert_eq!(doc["numbered"], false, "{doc}");
    assert_eq!(doc["unnumbered_because"], UNNUMBERED, "{doc}");
    assert_eq!(numbers.len(), 2, "{doc}");
    assert!(numbers.iter().all(|(n, ..)| n.is_none()), "{doc}");

    // Epoch 0 too (merged with the copy).
    let unlocked = release(&w, &conv, "0-0").await;
    assert!(!unlocked.contains(UNNUMBERED), "{unlocked}");
    assert!(
        line_starting(&unlocked, "#3 (seq ").contains("bob (epoch 1): bob here"),
        "{unlocked}"
    );
    let shown = ok(&w, "acme-owner", &show).await;
    assert!(!shown.contains(UNNUMBERED), "{shown}");
    let (doc, numbers) = shown_numbers(&w, &conv).await;
    assert_eq!(doc["numbered"], true, "{doc}");
    assert!(doc["unnumbered_because"].is_null(), "{doc}");
    assert_eq!(
        as_history_numbers(&numbers),
        [
            (Some(1), "my order 1234 never came"),
            (Some(2), "let me look"),
            (Some(3), "bob here, I have your order"),
            (Some(4), "thanks bob"),
        ],
        "{doc}"
    );
    assert!(
        line_starting(&shown, "#3 (seq ").contains("bob (epoch 1): bob here"),
        "{shown}"
    );
}

/// Epoch 0 is released, epoch 1 after it is not: its messages come after every message shown,
/// so the numbers stand and are given.
#[tokio::test]
async fn an_epoch_not_released_after_the_messages_shown_leaves_their_numbers() {
    let w = World::new().await;
    let conv = two_epochs(&w).await;
    let unlocked = release(&w, &conv, "0-0").await;
    assert!(!unlocked.contains(UNNUMBERED), "{unlocked}");
    let shown = ok(
        &w,
        "acme-owner",
        &["transcript", "show", "--conversation", &conv],
    )
    .await;
    assert!(!shown.contains(UNNUMBERED), "{shown}");
    assert!(
        line_starting(&shown, "#2 (seq ").contains("alice (epoch 0): let me look"),
        "{shown}"
    );
    assert!(
        !shown.contains("bob here"),
        "epoch 1 is not released: {shown}"
    );
    let (doc, numbers) = shown_numbers(&w, &conv).await;
    assert_eq!(doc["numbered"], true, "{doc}");
    assert_eq!(
        as_history_numbers(&numbers),
        [
            (Some(1), "my order 1234 never came"),
            (Some(2), "let me look")
        ],
        "{doc}"
    );
}

/// What `transcript show` and `unlock` say of a copy rebuilt with its files.
const REBUILT: &str = "This transcript was kept by an earlier version without its files; it was \
                       rebuilt with them from the relay, with the epoch keys kept at its \
                       release, and saved.";

/// Makes the master's saved copy of `conv` as an earlier version kept it: texts only, not
/// marked as holding the files; with `forget_key`, without epoch 0's key in the vault either.
fn keep_as_an_earlier_version(w: &World, conv: &str, forget_key: bool) {
    let account =
        sealdesk_client::Account::open(&w.home("acme-owner"), sealdesk_tests::world::PASS).unwrap();
    let id = sealdesk_protocol::ids::ConversationId::parse(conv).unwrap();
    let mut t = account.store().transcript(&id).unwrap().unwrap();
    t.messages
        .retain(|m| m.envelope.header.kind == sealdesk_protocol::message::ContentKind::Text);
    t.with_files = false;
    account.store().put_transcript(&id, &t).unwrap();
    if forget_key {
        assert!(
            account
                .vault()
                .delete(&format!("master/key/{conv}/0"))
                .unwrap()
        );
    }
}

/// Whether the master's saved copy of `conv` holds its files: (marked so, file messages).
fn saved_with_files(w: &World, conv: &str) -> (bool, usize) {
    let account =
        sealdesk_client::Account::open(&w.home("acme-owner"), sealdesk_tests::world::PASS).unwrap();
    let id = sealdesk_protocol::ids::ConversationId::parse(conv).unwrap();
    let t = account.store().transcript(&id).unwrap().unwrap();
    let files = t
        .messages
        .iter()
        .filter(|m| m.envelope.header.kind == sealdesk_protocol::message::ContentKind::Attachment)
        .count();
    (t.with_files, files)
}

/// A transcript kept by an earlier version left the files out. `transcript show` rebuilds it
/// with them from the relay, with the epoch keys the master kept at its release (no new
/// release), says so once, saves it, and numbers the file as `history` does. Without an epoch's
/// key, it cannot: the warning says precisely that only a new release brings the key back, and
/// after one, `unlock` rebuilds the copy.
#[tokio::test]
async fn show_rebuilds_a_transcript_kept_without_its_files() {
    let w = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    let conv = released_conversation(&w, dir.path()).await;
    let show = ["transcript", "show", "--conversation", conv.as_str()];
    let r = sealdesk(&w, "acme-owner", &show).await;
    assert!(r.ok, "{}", r.stderr);
    assert!(!r.stderr.contains("earlier version"), "{}", r.stderr);
    assert!(!r.stdout.contains(REBUILT), "{}", r.stdout);

    keep_as_an_earlier_version(&w, &conv, false);
    assert_eq!(saved_with_files(&w, &conv), (false, 0));
    let r = sealdesk(&w, "acme-owner", &show).await;
    assert!(r.ok, "{}", r.stderr);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    assert_eq!(r.stdout.matches(REBUILT).count(), 1, "{}", r.stdout);
    let file = line_starting(&r.stdout, "#4 (seq ");
    assert!(
        file.contains("carol (epoch 0): [attachment: receipt.txt"),
        "{}",
        r.stdout
    );
    assert!(file.contains("file checked"), "{file}");
    assert!(
        line_starting(&r.stdout, "#5 (seq ").contains("alice (epoch 0): I am checking"),
        "{}",
        r.stdout
    );
    assert_eq!(saved_with_files(&w, &conv), (true, 1));
    let doc = json(&w, "acme-owner", &show).await;
    assert_eq!(doc["rebuilt"], false, "saved rebuilt: {doc}");
    assert_eq!(doc["messages"][3]["number"], 4, "{doc}");
    assert_eq!(doc["messages"][3]["kind"], "attachment", "{doc}");

    // Kept without epoch 0's key as well: not rebuilt, and the warning says why.
    keep_as_an_earlier_version(&w, &conv, true);
    let r = sealdesk(&w, "acme-owner", &show).await;
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "warning: this transcript was kept by an earlier version, which left the files out, \
             and it could not be rebuilt with them: the keys of epoch(s) 0 of this transcript \
             are not kept in this account, so it cannot be opened again; only a new release of \
             those epochs (`transcript unlock`) brings them back. Its message numbers skip the \
             files and may be lower than history's"
        ),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains(REBUILT), "{}", r.stdout);
    assert!(!r.stdout.contains("[attachment:"), "{}", r.stdout);
    assert_eq!(saved_with_files(&w, &conv), (false, 0));

    // A new release brings the key back: `unlock` rebuilds the copy.
    let unlocked = release(&w, &conv, "all").await;
    assert_eq!(unlocked.matches(REBUILT).count(), 1, "{unlocked}");
    assert!(
        line_starting(&unlocked, "#4 (seq ").contains("carol (epoch 0): [attachment: receipt.txt"),
        "{unlocked}"
    );
    assert_eq!(saved_with_files(&w, &conv), (true, 1));
}
