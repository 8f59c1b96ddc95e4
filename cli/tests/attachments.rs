//! Files through the `sealdesk` binary (issue 22 §3): `send --attach` uploads an encrypted file
//! and sends its reference; `history` shows "[attachment: name, size]"; `attachment save`
//! fetches and checks it, refuses to overwrite, and never uses the sender's name as a path.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ok, sealdesk};
use sealdesk_tests::world::OpenedChat;

/// The reader's number of the last attachment line of `history`.
fn attachment_number(history: &str) -> String {
    let line = history
        .lines()
        .rev()
        .find(|l| l.contains("[attachment:"))
        .unwrap_or_else(|| panic!("no attachment in {history}"));
    line.trim_start()
        .strip_prefix('#')
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
        .to_owned()
}

#[tokio::test]
async fn a_file_sent_with_attach_is_listed_and_saved_once() {
    let (w, id) = OpenedChat::new().await.close().await;
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("screenshot.png");
    let bytes: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&shot, &bytes).unwrap();

    let sent = sealdesk(
        &w,
        "carol",
        &[
            "send",
            "--conversation",
            &id,
            "--attach",
            shot.to_str().unwrap(),
            "the error",
        ],
    )
    .await;
    assert!(sent.ok, "{}", sent.stderr);
    assert!(
        sent.stdout.contains("sent screenshot.png (68.4 KiB)"),
        "{}",
        sent.stdout
    );
    // The upload's progress, on stderr: one line per chunk here (each is over 10%).
    let progress: Vec<&str> = sent.stderr.lines().collect();
    assert_eq!(
        progress,
        [
            "uploading screenshot.png 1/3 chunks (33%)",
            "uploading screenshot.png 2/3 chunks (66%)",
            "uploading screenshot.png 3/3 chunks (100%)",
        ],
        "{}",
        sent.stderr
    );

    for who in ["alice", "carol"] {
        let history = ok(&w, who, &["history", "--conversation", &id]).await;
        assert!(
            history.contains("carol: [attachment: screenshot.png, 68.4 KiB] the error"),
            "{who}: {history}"
        );
    }
    let history = ok(&w, "alice", &["history", "--conversation", &id]).await;
    let n = attachment_number(&history);
    // The README's way of finding it: the last history line whose entry is an attachment.
    let doc = common::json(&w, "alice", &["history", "--conversation", &id]).await;
    let from_json = doc["lines"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|l| l["entry"]["kind"] == "attachment")
        .unwrap()["number"]
        .to_string();
    assert_eq!(from_json, n, "{doc}");
    let out = tempfile::tempdir().unwrap();
    let args = [
        "attachment",
        "save",
        "--conversation",
        &id,
        "--message",
        &n,
        "--out",
        out.path().to_str().unwrap(),
    ];
    let saved = ok(&w, "alice", &args).await;
    assert!(saved.contains("SHA-256 match"), "{saved}");
    assert_eq!(
        std::fs::read(out.path().join("screenshot.png")).unwrap(),
        bytes
    );

    // Saving again does not overwrite the file.
    std::fs::write(out.path().join("screenshot.png"), b"mine").unwrap();
    let again = sealdesk(&w, "alice", &args).await;
    assert!(!again.ok);
    assert!(again.stderr.contains("not overwritten"), "{}", again.stderr);
    assert_eq!(
        std::fs::read(out.path().join("screenshot.png")).unwrap(),
        b"mine"
    );

    // A message without a file is a clear refusal.
    let text_msg = ok(&w, "alice", &["send", "--conversation", &id, "thanks"]).await;
    assert!(text_msg.contains("sent"), "{text_msg}");
    let history = ok(&w, "alice", &["history", "--conversation", &id]).await;
    let last = history
        .lines()
        .rev()
        .find(|l| l.contains("alice: thanks"))
        .unwrap();
    let m = last
        .trim_start()
        .strip_prefix('#')
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let none = sealdesk(
        &w,
        "alice",
        &["attachment", "save", "--conversation", &id, "--message", m],
    )
    .await;
    assert!(!none.ok);
    assert!(none.stderr.contains("has no attachment"), "{}", none.stderr);
}

#[tokio::test]
async fn the_senders_file_name_never_escapes_the_chosen_directory() {
    let mut chat = OpenedChat::new().await;
    chat.carol
        .send_attachment(
            &chat.conv,
            b"#!/bin/sh\n",
            "../../.profile",
            "text/plain",
            "",
        )
        .await
        .unwrap();
    let (w, id) = chat.close().await;
    let root = tempfile::tempdir().unwrap();
    let inner = root.path().join("a").join("b");
    std::fs::create_dir_all(&inner).unwrap();
    let history = ok(&w, "alice", &["history", "--conversation", &id]).await;
    let n = attachment_number(&history);
    let run = sealdesk(
        &w,
        "alice",
        &[
            "attachment",
            "save",
            "--conversation",
            &id,
            "--message",
            &n,
            "--out",
            inner.to_str().unwrap(),
        ],
    )
    .await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stderr.contains("plain name"), "{}", run.stderr);
    assert_eq!(
        std::fs::read(inner.join("profile")).unwrap(),
        b"#!/bin/sh\n"
    );
    assert!(!root.path().join(".profile").exists());
    assert!(!inner.join(".profile").exists());
}
