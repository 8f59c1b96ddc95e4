//! The chat's other displays and `/attach` (issue 22 §1.7 and §2): `chat --json` driven through
//! pipes by two `sealdesk` processes, an agent and a customer, every line of their output
//! parsed as JSON; `/attach FILE` in the line chat; `transcript show` listing a released file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::json_chat::{EVENT_WAIT, JsonChat, is};

use sealdesk_cli::chat;
use sealdesk_protocol::card::Role;
use sealdesk_tests::relay::{start_world_relay, stop_world_relay};
use sealdesk_tests::release::{release_asked, trustees_answer};
use sealdesk_tests::world::{OpenedChat, Org, PASS, Via, World, open_chat};
use serde_json::Value;

/// Every event has the shape of the other commands' `--json`: `event`, `ok` and `warnings`.
fn well_formed(v: &Value) {
    assert!(v["event"].is_string(), "{v}");
    assert!(v["ok"].is_boolean(), "{v}");
    assert!(v["warnings"].is_array(), "{v}");
}

/// Org acme with its agent alice, and a conversation carol opened; everyone's connection
/// closed (the test runs `sealdesk` processes).
async fn carol_alone(w: &World) -> sealdesk_protocol::ids::ConversationId {
    let org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.close().await;
    for a in org.agents {
        a.close().await;
    }
    org.master.close().await;
    conv
}

#[tokio::test]
async fn two_json_chats_exchange_messages_receipts_typing_and_status_through_pipes() {
    let (w, id) = OpenedChat::new().await.close().await;

    let mut alice = JsonChat::start(&w, "alice", &id);
    let mut carol = JsonChat::start(&w, "carol", &id);
    for c in [&mut alice, &mut carol] {
        let ready = c.until("ready", is("ready")).await;
        assert!(ready["account"].is_string());
        let selected = c.until("selected", is("selected")).await;
        assert_eq!(selected["conversation"], id.as_str());
        assert!(selected["banner"].is_string(), "{selected}");
    }

    carol.type_line("my parcel never came").await;
    let mine = carol.until("carol's own message", is("message")).await;
    assert_eq!(mine["entry"]["mine"], true, "{mine}");
    let got = alice
        .until("carol's message", |v| {
            v["event"] == "message" && v["entry"]["text"] == "my parcel never came"
        })
        .await;
    assert_eq!(got["entry"]["sender"], "carol");
    assert_eq!(got["conversation"], id.as_str());
    assert!(got["number"].is_u64(), "{got}");
    // alice has it on screen: carol hears it was read.
    let read = carol
        .until("a read receipt", |v| {
            v["event"] == "receipt" && v["receipt"] == "read"
        })
        .await;
    assert_eq!(read["member"], "alice");

    alice.type_line("/typing").await;
    let typing = carol.until("typing", is("typing")).await;
    assert_eq!(typing["member"], "alice");
    assert_eq!(typing["typing"], true);

    alice.type_line("sorry, let me look").await;
    carol
        .until("alice's answer", |v| {
            v["event"] == "message" && v["entry"]["text"] == "sorry, let me look"
        })
        .await;
    alice.type_line("/status waiting").await;
    let status = carol.until("the status", is("status")).await;
    assert!(
        status["text"].as_str().unwrap().contains("waiting"),
        "{status}"
    );

    // A command's error is an event, and the chat goes on.
    alice.type_line("/switch ffff").await;
    let error = alice.until("an error", is("error")).await;
    assert_eq!(error["ok"], false);
    assert_eq!(error["error"]["code"], "unknown_conversation");
    assert!(error["error"]["message"].is_string());
    alice.type_line("/list").await;
    let list = alice.until("the list", is("conversations")).await;
    let rows = list["conversations"].as_array().unwrap();
    assert_eq!(rows[0]["status"], "waiting");
    assert_eq!(rows[0]["peer"], "carol");

    for c in [&mut alice, &mut carol] {
        c.type_line("/quit").await;
        c.until("bye", is("bye")).await;
        let status = tokio::time::timeout(EVENT_WAIT, c.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success());
        c.drain();
        for v in &c.seen {
            well_formed(v);
        }
    }
}

#[tokio::test]
async fn attach_in_the_line_chat_uploads_and_the_agent_receives_the_file() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("screen shot.png");
    let bytes: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&shot, &bytes).unwrap();
    let input = format!(
        "/attach \"{}\" the error\n/attach {}\n/quit\n",
        shot.display(),
        dir.path().join("missing.png").display()
    );
    let mut out = Vec::new();
    chat::run(&mut carol, input.as_bytes(), &mut out, Some(conv))
        .await
        .unwrap();
    let shown = String::from_utf8(out).unwrap();
    assert!(
        shown.contains("· uploading screen shot.png (68.4 KiB, 3 chunks)…"),
        "{shown}"
    );
    assert!(
        shown.contains("· sent screen shot.png (68.4 KiB)"),
        "{shown}"
    );
    assert!(
        shown.contains("carol: [attachment: screen shot.png, 68.4 KiB] the error"),
        "{shown}"
    );
    // A file that cannot be read is an error; the chat goes on to /quit.
    assert!(shown.contains("error: cannot read"), "{shown}");
    assert!(shown.ends_with("bye\n"), "{shown}");

    let alice = &mut org.agents[0];
    alice.sync_all().await.unwrap();
    let n = alice
        .history(&conv)
        .unwrap()
        .lines
        .iter()
        .rev()
        .find_map(|l| match l {
            sealdesk_client::client::HistoryLine::Item {
                entry: sealdesk_client::account::LogEntry::Message { text, .. },
                number,
                ..
            } if text.contains("[attachment:") => *number,
            _ => None,
        })
        .unwrap();
    let file = alice.fetch_attachment(&conv, n).await.unwrap();
    assert_eq!(file.name, "screen shot.png");
    assert_eq!(file.bytes.as_slice(), bytes.as_slice());
}

/// `transcript show` lists a released conversation's files among its messages — name, size,
/// caption, checked — as the export carries them.
#[tokio::test]
async fn transcript_show_lists_the_released_attachments() {
    let w = World::new().await;
    let conv = common::org_and_conversation(&w).await;
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("receipt.pdf");
    std::fs::write(&shot, vec![7u8; 40_000]).unwrap();
    common::send_file(&w, "carol", &conv, &shot, "my receipt").await;
    let consent = common::grant(&w, &conv, "1d").await;
    let r = common::unlock(&w, &conv, &consent, "0").await;
    assert!(!r.ok, "{}\n{}", r.stdout, r.stderr);
    for t in ["trustee-1", "trustee-2"] {
        common::serve_once(&w, t).await;
    }
    let r = common::unlock(&w, &conv, &consent, "10").await;
    assert!(r.ok, "{}\n{}", r.stdout, r.stderr);

    let shown = common::ok(
        &w,
        "acme-owner",
        &["transcript", "show", "--conversation", &conv],
    )
    .await;
    // In its place among the messages: #2, after carol's first message.
    let line = shown
        .lines()
        .find(|l| l.starts_with("#2 (seq "))
        .unwrap_or_else(|| panic!("no #2 in {shown}"));
    assert!(
        line.contains("carol (epoch 0): [attachment: receipt.pdf, 39.1 KiB] my receipt"),
        "{shown}"
    );
    assert!(
        line.ends_with("— file checked: every chunk and the SHA-256 match the signed message"),
        "{shown}"
    );
    let doc = common::json(
        &w,
        "acme-owner",
        &["transcript", "show", "--conversation", &conv],
    )
    .await;
    let files = doc["attachments"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{doc}");
    assert_eq!(files[0]["name"], "receipt.pdf");
    assert_eq!(files[0]["size"], 40_000);
    assert_eq!(files[0]["checked"], true);
}

/// A changed pinned key is a `key_change` event in `chat --json` — when the conversation is
/// selected and when a line cannot be sent — and the line is not sent.
#[tokio::test]
async fn a_changed_key_is_a_key_change_event_and_blocks_the_line() {
    let w = World::new().await;
    let _org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    // carol pinned an "alice" with other keys earlier (say, from another relay).
    let other =
        sealdesk_protocol::keys::IdentityKeys::generate(&mut sealdesk_client::rng().unwrap());
    let fake =
        sealdesk_protocol::card::IdentityCard::issue(&other, "alice", Role::Agent, 1).unwrap();
    carol.account().observe_peer(&fake).unwrap();
    let conv = carol
        .open_conversation("acme", None)
        .await
        .unwrap()
        .conversation;
    let mut out = Vec::new();
    chat::run_json(&mut carol, &b"hello?\n/quit\n"[..], &mut out, Some(conv))
        .await
        .unwrap();
    let events: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let changes: Vec<&Value> = events
        .iter()
        .filter(|v| v["event"] == "key_change")
        .collect();
    assert_eq!(changes.len(), 2, "{events:#?}");
    for c in &changes {
        assert_eq!(c["name"], "alice");
        assert_eq!(c["conversation"], conv.to_string().as_str());
        assert!(c["text"].as_str().unwrap().contains("keys trust alice"));
    }
    assert!(
        !events
            .iter()
            .any(|v| v["event"] == "message" && v["entry"]["text"] == "hello?"),
        "{events:#?}"
    );
    assert_eq!(events.last().unwrap()["event"], "bye");
}

/// While a file uploads in `chat --json`, the chat goes on: a message typed after `/attach` is
/// sent before the file is; `upload_progress` events count the chunks. `/cancel` stops an
/// upload with nothing sent, and `/attach` of the same file resumes it from where the relay
/// stopped.
#[tokio::test]
async fn json_uploads_report_progress_run_beside_messages_and_resume_after_cancel() {
    let (w, id) = OpenedChat::new().await.close().await;
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![5u8; 40 * 32 * 1024]).unwrap();
    let other = dir.path().join("other.bin");
    std::fs::write(&other, vec![6u8; 40 * 32 * 1024]).unwrap();

    let mut c = JsonChat::start(&w, "carol", &id);
    c.until("selected", is("selected")).await;
    c.type_line(&format!("/attach {} logs\nstill there?", big.display()))
        .await;
    let start = c.until("the upload's start", is("upload")).await;
    assert_eq!(start["state"], "uploading", "{start}");
    assert_eq!(start["chunks"], 40);
    c.until("the message typed during the upload", |v| {
        v["event"] == "message" && v["entry"]["text"] == "still there?"
    })
    .await;
    let sent = c
        .until("the upload sent", |v| {
            v["event"] == "upload" && v["state"] == "sent"
        })
        .await;
    assert!(sent["seq"].is_u64(), "{sent}");
    let progress: Vec<u64> = c
        .seen
        .iter()
        .filter(|v| v["event"] == "upload_progress")
        .map(|v| {
            assert_eq!(v["total_chunks"], 40, "{v}");
            assert_eq!(v["name"], "big.bin", "{v}");
            v["sent_chunks"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(progress, (1..=40).collect::<Vec<_>>());
    let last = c
        .seen
        .iter()
        .rfind(|v| v["event"] == "upload_progress")
        .unwrap();
    assert_eq!(last["percent"], 100);
    assert_eq!(last["bytes"], 40 * 32 * 1024);
    // The message typed after /attach was sent (and shown) before the file's.
    let at = |pred: &dyn Fn(&Value) -> bool| c.seen.iter().position(pred).unwrap();
    assert!(
        at(&|v| v["event"] == "message" && v["entry"]["text"] == "still there?")
            < at(&|v| v["event"] == "upload" && v["state"] == "sent")
    );

    // Cancelled part-way: nothing sent; the same file again resumes.
    c.type_line(&format!("/attach {}", other.display())).await;
    c.until("two chunks", |v| {
        v["event"] == "upload_progress" && v["sent_chunks"].as_u64() >= Some(2)
    })
    .await;
    // One upload at a time.
    c.type_line(&format!("/attach {}", big.display())).await;
    let busy = c.until("an error", is("error")).await;
    assert_eq!(busy["error"]["code"], "upload_running", "{busy}");
    c.type_line("/cancel").await;
    let cancelled = c
        .until("the cancellation", |v| {
            v["event"] == "upload" && v["state"] == "cancelled"
        })
        .await;
    let stopped_at = cancelled["sent_chunks"].as_u64().unwrap();
    assert!((2..40).contains(&stopped_at), "{cancelled}");
    c.type_line("/cancel").await;
    let nothing = c.until("an error", is("error")).await;
    assert_eq!(nothing["error"]["code"], "nothing_to_cancel");
    let seen_before = c.seen.len();
    c.type_line(&format!("/attach {}", other.display())).await;
    let first = c
        .until("the resumed upload's progress", is("upload_progress"))
        .await;
    assert!(
        first["sent_chunks"].as_u64().unwrap() >= stopped_at,
        "resumed from {stopped_at}: {first}"
    );
    c.until("the resumed upload sent", |v| {
        v["event"] == "upload" && v["state"] == "sent"
    })
    .await;
    // Exactly one message carries other.bin: the cancelled upload sent none.
    let files: Vec<&Value> = c.seen[..seen_before]
        .iter()
        .filter(|v| v["event"] == "message" && v["kind"] == "attachment")
        .collect();
    assert!(
        files
            .iter()
            .all(|v| !v["text"].as_str().unwrap().contains("other.bin")),
        "{files:#?}"
    );
    c.type_line("/quit").await;
    c.until("bye", is("bye")).await;
    for v in &c.seen {
        well_formed(v);
    }
}

/// Each mistake only the chat can make has its own `error.code` in `chat --json`, never the
/// generic `failed`; the chat goes on after each.
#[tokio::test]
async fn json_chat_mistakes_have_their_own_codes() {
    let (w, id) = OpenedChat::new().await.close().await;
    let dave = w.user("dave", Role::Customer).await;
    dave.close().await;

    let mut c = JsonChat::start(&w, "carol", &id);
    c.until("selected", is("selected")).await;
    for (line, code) in [
        ("/switch ffff", "unknown_conversation"),
        ("/switch 7", "unknown_conversation"),
        ("/switch", "missing_argument"),
        ("/nope", "unknown_command"),
        ("/open", "missing_argument"),
        ("/status sleeping", "bad_argument"),
        ("/attach", "missing_argument"),
        ("/attach /no/such/file.png", "file_not_found"),
        ("/cancel", "nothing_to_cancel"),
    ] {
        c.type_line(line).await;
        let e = c.until(line, is("error")).await;
        assert_eq!(e["error"]["code"], code, "{line}: {e}");
        assert_eq!(e["ok"], false);
    }
    c.type_line("/quit").await;
    c.until("bye", is("bye")).await;

    // No conversation yet: a message has nowhere to go.
    let mut d = JsonChat::start_with(&w, "dave", None, &[]);
    d.until("ready", is("ready")).await;
    d.type_line("hello?").await;
    let e = d.until("an error", is("error")).await;
    assert_eq!(e["error"]["code"], "no_conversation_selected", "{e}");

    // An agent does not open conversations.
    let mut a = JsonChat::start(&w, "alice", &id);
    a.until("selected", is("selected")).await;
    a.type_line("/open acme").await;
    let e = a.until("an error", is("error")).await;
    assert_eq!(e["error"]["code"], "not_a_customer", "{e}");
    for chat in [&mut d, &mut a] {
        chat.type_line("/quit").await;
        chat.until("bye", is("bye")).await;
    }
}

/// Org `acme` with agent alice, and carol's `chat --json` on her conversation with alice (the
/// periodic key re-check every `recheck_ms`), once it has selected the conversation; with the
/// conversation's id.
async fn carol_chatting_with_alice(w: &World, recheck_ms: &str) -> (Org, JsonChat, String) {
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.close().await;
    for a in org.agents.drain(..) {
        a.close().await;
    }
    let id = conv.to_string();
    let mut c = carol_rechecking(w, &id, recheck_ms);
    c.until("selected", is("selected")).await;
    (org, c, id)
}

/// carol's `chat --json` on conversation `id`, with the periodic re-check of the agent's key
/// and of the notices not yet confirmed every `recheck_ms`.
fn carol_rechecking(w: &World, id: &str, recheck_ms: &str) -> JsonChat {
    JsonChat::start_with(
        w,
        "carol",
        Some(id),
        &[("SEALDESK_TEST_KEY_RECHECK_MS", recheck_ms)],
    )
}

/// Issue 20/22, "checked again at each sync": a release notice shown NOT YET CONFIRMED in a
/// running `chat --json` (the last releasing trustee's entry is held by its own cosignature
/// only) is judged again by the chat's periodic check — no push tells it the trustees cosigned
/// — and shown again, as an update of the same line (`"update": true`, its seq), once another
/// trustee witnessed the log: the same release, now without "NOT YET CONFIRMED".
#[tokio::test]
async fn a_running_chat_shows_a_release_notice_confirmed_once_the_trustees_witness_it() {
    let w = World::new().await;
    let (carol, conv) = release_asked(&w, Via::Relay, "my order never came").await;
    carol.close().await;
    let released = trustees_answer(&w, &["trustee-1", "trustee-2"], Via::Relay).await;
    assert_eq!(released, [["released"], ["released"]]);
    let id = conv.to_string();
    let mut c = carol_rechecking(&w, &id, "100");
    let selected = c.until("selected", is("selected")).await;
    let release = |v: &Value| {
        v["entry"]["text"]
            .as_str()
            .unwrap_or("")
            .contains("acme opened")
    };
    let shown = selected["recent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| release(l))
        .unwrap_or_else(|| panic!("no release notice in {selected}"))
        .clone();
    assert!(
        shown["text"]
            .as_str()
            .unwrap()
            .contains("NOT YET CONFIRMED"),
        "{shown}"
    );
    assert_eq!(shown["entry"]["verified"], false, "{shown}");

    assert!(w.witness(&["trustee-1"]).await.iter().all(Result::is_ok));
    let update = c
        .until("the release notice confirmed", |v| {
            v["event"] == "notice" && v["update"] == true && release(v)
        })
        .await;
    well_formed(&update);
    assert_eq!(update["entry"]["seq"], shown["entry"]["seq"], "{update}");
    assert_eq!(update["entry"]["verified"], true, "{update}");
    let text = update["text"].as_str().unwrap();
    assert!(
        text.contains("released by trustees trustee-1 and trustee-2 (threshold 2 of 3)")
            && !text.contains("NOT YET CONFIRMED"),
        "{text}"
    );
    c.quit_within(EVENT_WAIT).await;
}

/// The row of `conversation` in a `conversations` event.
fn row<'a>(list: &'a Value, conversation: &str) -> &'a Value {
    list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["conversation"] == conversation)
        .unwrap_or_else(|| panic!("no {conversation} in {list}"))
}

/// Issue 20: the periodic check judges again every conversation holding a notice not yet
/// confirmed, not only the one on screen. carol's chat is open in another conversation than
/// the one whose release notice reads NOT YET CONFIRMED; no push comes when a trustee
/// witnesses the log, yet the chat prints that conversation's notice again, confirmed (an
/// update of its line, with its conversation), and the list's mark for it goes. Limited to
/// the conversation on screen, the chat printed nothing until carol opened the other one.
#[tokio::test]
async fn a_running_chat_shows_another_conversations_notice_confirmed() {
    let w = World::new().await;
    let (mut carol, released) = release_asked(&w, Via::Relay, "my order never came").await;
    let elsewhere = open_chat(&mut carol).await.to_string();
    carol.close().await;
    let answered = trustees_answer(&w, &["trustee-1", "trustee-2"], Via::Relay).await;
    assert_eq!(answered, [["released"], ["released"]]);
    let released = released.to_string();
    let mut c = carol_rechecking(&w, &elsewhere, "100");
    let list = c.until("the list", is("conversations")).await;
    assert_eq!(row(&list, &released)["unconfirmed_notices"], true, "{list}");
    assert_eq!(
        row(&list, &elsewhere)["unconfirmed_notices"],
        false,
        "{list}"
    );
    let selected = c.until("selected", is("selected")).await;
    assert_eq!(selected["conversation"], elsewhere.as_str());
    let shown = c
        .seen
        .iter()
        .find(|v| {
            v["conversation"] == released.as_str()
                && v["entry"]["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains("acme opened")
        })
        .unwrap_or_else(|| panic!("no notice of {released} in {:#?}", c.seen))
        .clone();
    assert!(
        shown["text"]
            .as_str()
            .unwrap()
            .contains("NOT YET CONFIRMED"),
        "{shown}"
    );

    assert!(w.witness(&["trustee-1"]).await.iter().all(Result::is_ok));
    let update = c
        .until("the other conversation's notice confirmed", |v| {
            v["event"] == "notice" && v["update"] == true && v["conversation"] == released.as_str()
        })
        .await;
    well_formed(&update);
    assert_eq!(update["entry"]["verified"], true, "{update}");
    let text = update["text"].as_str().unwrap();
    assert!(
        text.contains("released by trustees trustee-1 and trustee-2")
            && !text.contains("NOT YET CONFIRMED"),
        "{text}"
    );
    let list = c.until("the list again", is("conversations")).await;
    assert_eq!(
        row(&list, &released)["unconfirmed_notices"],
        false,
        "{list}"
    );
    c.quit_within(EVENT_WAIT).await;
}

/// The org's master re-certifies alice for a new machine's key; returns its fingerprint.
async fn recertify_alice(w: &World, org: &mut Org) -> String {
    let account = sealdesk_client::Account::create(
        &w.home("alice-new"),
        PASS,
        sealdesk_tests::world::FAST_KDF,
        "alice",
        Role::Agent,
    )
    .unwrap();
    let card = account.card().card().clone();
    let fp = account.fingerprint().to_string();
    drop(account);
    org.master
        .recertify_agent("acme", card, Some(&fp))
        .await
        .unwrap();
    fp
}

/// The customer's chat asks the relay for agent-key pushes (`watch_agent_keys`): a
/// re-certified agent shows as a key change at once, though the periodic re-check is set to an
/// hour here (it is 60 s by default), so only the push can bring it.
#[tokio::test]
async fn a_chat_shows_a_recertified_agent_at_once_by_push() {
    let w = World::new().await;
    let (mut org, mut c, id) = carol_chatting_with_alice(&w, "3600000").await;
    let fp = recertify_alice(&w, &mut org).await;

    let change = c.until("a key change", is("key_change")).await;
    assert_eq!(change["name"], "alice", "{change}");
    assert_eq!(change["conversation"], id.as_str());
    let text = change["text"].as_str().unwrap();
    assert!(text.contains(&fp), "the new fingerprint {fp} in {text}");
    // Sending is blocked until carol compares and trusts the new key.
    c.type_line("are you there?").await;
    c.until("the line is refused", is("key_change")).await;
    c.type_line("/quit").await;
    c.until("bye", is("bye")).await;
    org.master.close().await;
}

/// A customer's long-running chat learns that the org's master re-certified its agent for a
/// new key without sending or reopening anything: it asks the relay from time to time, and
/// shows the key change (the red banner in the window) once, with the new key's fingerprint.
#[tokio::test]
async fn a_long_running_chat_notices_a_recertified_agent() {
    let w = World::new().await;
    let (mut org, mut c, id) = carol_chatting_with_alice(&w, "100").await;
    let fp = recertify_alice(&w, &mut org).await;

    let change = c.until("a key change", is("key_change")).await;
    assert_eq!(change["name"], "alice", "{change}");
    assert_eq!(change["conversation"], id.as_str());
    let text = change["text"].as_str().unwrap();
    assert!(text.contains("keys trust alice"), "{text}");
    assert!(text.contains(&fp), "the new fingerprint {fp} in {text}");
    // Shown once, not at every check.
    c.type_line("/list").await;
    c.until("the list", is("conversations")).await;
    c.type_line("/quit").await;
    c.until("bye", is("bye")).await;
    assert_eq!(
        c.seen.iter().filter(|v| v["event"] == "key_change").count(),
        1,
        "{:#?}",
        c.seen
    );
    org.master.close().await;
}

/// The codes of the chat's other mistakes, each through `chat --json`: a prefix two
/// conversations share (`ambiguous_conversation`), a file that exists but cannot be read
/// (`file_unreadable`), a command that needs the relay while it is unreachable (`offline`).
#[tokio::test]
async fn json_chat_codes_for_an_ambiguous_prefix_an_unreadable_file_and_offline() {
    let mut w = World::new().await;
    let conv = carol_alone(&w).await;
    let id = conv.to_string();
    common::twin_conversation(&w, "carol", &id);
    let dir = tempfile::tempdir().unwrap();

    let mut c = JsonChat::start(&w, "carol", &id);
    c.until("selected", is("selected")).await;
    for (line, code) in [
        (format!("/switch {}", &id[..8]), "ambiguous_conversation"),
        (
            format!("/attach {}", dir.path().display()),
            "file_unreadable",
        ),
    ] {
        c.type_line(&line).await;
        let e = c.until(&line, is("error")).await;
        assert_eq!(e["error"]["code"], code, "{line}: {e}");
        assert_eq!(e["ok"], false);
    }
    let down = stop_world_relay(&mut w).await;
    c.until("the connection lost", |v| {
        v["event"] == "connection" && v["state"] == "lost"
    })
    .await;
    c.type_line("/history").await;
    let e = c.until("an error", is("error")).await;
    assert_eq!(e["error"]["code"], "offline", "{e}");
    c.type_line("/quit").await;
    c.until("bye", is("bye")).await;
    start_world_relay(&mut w, down).await;
}

/// Ctrl-C in the line chat while a file uploads cancels the upload, as `/cancel` does, and the
/// chat goes on; a second Ctrl-C leaves it (exit status 0, nothing sent).
#[cfg(unix)]
#[tokio::test]
async fn ctrl_c_in_the_line_chat_cancels_an_upload_and_a_second_leaves() {
    let w = World::new().await;
    let conv = carol_alone(&w).await;
    let id = conv.to_string();
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![5u8; 200 * 32 * 1024]).unwrap();
    let interrupt = |c: &JsonChat| {
        let pid = c.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    };

    let mut c = JsonChat::start(&w, "carol", &id);
    c.until("selected", is("selected")).await;
    c.type_line(&format!("/attach {}", big.display())).await;
    c.until("two chunks", |v| {
        v["event"] == "upload_progress" && v["sent_chunks"].as_u64() >= Some(2)
    })
    .await;
    interrupt(&c);
    let cancelled = c
        .until("the cancellation", |v| {
            v["event"] == "upload" && v["state"] == "cancelled"
        })
        .await;
    assert!(
        cancelled["sent_chunks"].as_u64().unwrap() < 200,
        "{cancelled}"
    );
    // Still chatting.
    c.type_line("/list").await;
    c.until("the list", is("conversations")).await;
    interrupt(&c);
    c.until("bye", is("bye")).await;
    let status = tokio::time::timeout(EVENT_WAIT, c.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(
        !c.seen
            .iter()
            .any(|v| v["event"] == "message" && v["kind"] == "attachment"),
        "{:#?}",
        c.seen
    );
}
