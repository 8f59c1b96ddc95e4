//! Moving a relay from sled to PostgreSQL: `sealdesk-relay migrate --from DIR --to URL`.
//!
//! - a sled relay filled through real clients (messages both ways, an attachment, a release by
//!   consent whose audit entries and notice are stored) is stopped and migrated; a relay on the
//!   database, at the same address, serves the same history byte for byte, the same audit log
//!   (size and root of its signed tree head, entries that verify for the customer), the file,
//!   and takes the next message;
//! - refused: a target that is not empty, a missing source, a directory that is not a relay's,
//!   a source a relay is running on, a source whose log item does not decode (and the target
//!   is left empty); an interrupted migration (the process SIGKILLed inside its transaction)
//!   leaves the target empty and the next run copies everything.
//!
//! Skipped, loudly, only when the machine has no PostgreSQL binaries (CI installs them).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Command, Output, Stdio},
};

use sealdesk_client::{Client, account::LogEntry, client::HistoryLine};
use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    message::ContentKind,
    release::{Justification, Scope},
    wire::{Request, Response, Sequenced},
};
use sealdesk_server::{
    config::{RelayConfig, StoreKind},
    store::{Collection, PgStore, SledStore, Store},
};
use sealdesk_tests::{
    child::relay_binary,
    eventually, pg,
    relay::{http_get, metric, stop_relay, stop_world_relay},
    transcript::release,
    world::{World, open_chat, texts},
};

/// `sealdesk-relay migrate --from from --to to`.
fn migrate(from: &Path, to: &str) -> Output {
    let mut cmd = Command::new(relay_binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SEALDESK_RELAY_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("migrate")
        .arg("--from")
        .arg(from)
        .args(["--to", to])
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh database for `test`, or `None` (the test is skipped) without PostgreSQL, or when
/// the store matrix puts every test relay on PostgreSQL (the source must be sled).
fn target(test: &str) -> Option<String> {
    if pg::matrix_wants_postgres() {
        eprintln!("skipped under SEALDESK_TEST_STORE=postgres: a migration's source is sled");
        return None;
    }
    let server = pg::server()?;
    Some(pg::database(
        server,
        &format!("migrate_{test}_{}", std::process::id()),
    ))
}

/// Rows in the tables the migration writes.
fn rows(url: &str) -> u64 {
    pg::query(
        url,
        "SELECT (SELECT count(*) FROM kv) + (SELECT count(*) FROM messages) \
         + (SELECT count(*) FROM conversation_heads)",
    )
    .parse()
    .unwrap()
}

/// Every item of `conv` as the relay serves it.
async fn history(c: &Client, conv: ConversationId) -> Vec<Sequenced> {
    let answer = c
        .session()
        .request(Request::History {
            conversation: conv,
            after: 0,
            limit: 1000,
        })
        .await
        .unwrap();
    match answer {
        Response::Items { items, more, .. } => {
            assert!(!more, "one page holds the test's history");
            items
        }
        other => panic!("history: {other:?}"),
    }
}

/// The size and root of the relay's signed tree head.
async fn tree_head(c: &Client) -> (u64, [u8; 32]) {
    match c.session().request(Request::GetTreeHead).await.unwrap() {
        Response::TreeHead(h) => (h.size, h.root),
        other => panic!("tree head: {other:?}"),
    }
}

/// The reader's number of the last attachment message in `conv`'s history.
fn last_attachment(c: &Client, conv: &ConversationId) -> u64 {
    c.history(conv)
        .unwrap()
        .lines
        .iter()
        .filter_map(|l| match l {
            HistoryLine::Item {
                entry:
                    LogEntry::Message {
                        kind: ContentKind::Attachment,
                        ..
                    },
                number,
                ..
            } => *number,
            _ => None,
        })
        .next_back()
        .expect("an attachment message")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sled_relay_moved_to_postgresql_serves_the_same_history_audit_log_and_files() {
    let Some(url) = target("full") else { return };
    let mut w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "my order never came").await.unwrap();
    let mut alice = org.agents.remove(0);
    alice.sync_all().await.unwrap();
    alice.send_text(&conv, "refund issued").await.unwrap();
    let file: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    carol
        .send_attachment(&conv, &file, "receipt.pdf", "application/pdf", "receipt")
        .await
        .unwrap();
    // A release by consent: audit entries, a notice in the conversation.
    let token = carol
        .grant_consent(&conv, None, Scope::Full, 3600, "quality review")
        .await
        .unwrap();
    let mut master = org.master;
    let released = release(&w, &mut master, conv, Justification::Consent(token)).await;
    assert!(released.messages.len() >= 2);
    carol.sync_all().await.unwrap();
    let items = history(&carol, conv).await;
    let (size, root) = tree_head(&carol).await;
    assert!(size >= 2, "the release is in the audit log: {size}");
    let said = texts(&carol, &conv);
    for c in [carol, alice, master] {
        c.close().await;
    }

    // The relay stops; its directory moves to the database.
    let addr = w.relay.local_addr();
    let down = stop_world_relay(&mut w).await;
    let out = migrate(&w.dir.path().join("relay"), &url);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let report = stdout(&out);
    assert!(
        report.contains(&format!("audit log size: {size}\n")),
        "{report}"
    );
    assert!(
        report.contains(&format!("audit log root: {}\n", hex(&root))),
        "{report}"
    );

    // A relay on the database, where the old one was.
    let pg_dir = tempfile::tempdir().unwrap();
    let on_pg = sealdesk_server::spawn(RelayConfig {
        listen: addr,
        data_dir: pg_dir.path().to_owned(),
        store: StoreKind::Postgres,
        database_url: Some(url.clone()),
        ..RelayConfig::default()
    })
    .await
    .unwrap();
    stop_relay(std::mem::replace(&mut w.relay, on_pg)).await;
    drop(down);

    // The same relay and log keys (the clients pinned them), history, log and file.
    let mut carol = w.reopen("carol").await;
    carol.sync_all().await.unwrap();
    assert_eq!(history(&carol, conv).await, items);
    assert_eq!(tree_head(&carol).await, (size, root));
    assert_eq!(texts(&carol, &conv), said);
    let report = carol.audit(Some(conv), true).await.unwrap();
    assert!(!report.entries.is_empty());
    assert!(
        report
            .entries
            .iter()
            .all(|e| e.included == Some(true) && e.signed),
        "{:?}",
        report.entries
    );
    let mut alice = w.reopen("alice").await;
    alice.sync_all().await.unwrap();
    let n = last_attachment(&alice, &conv);
    let saved = alice.fetch_attachment(&conv, n).await.unwrap();
    assert_eq!(saved.bytes.as_slice(), file.as_slice());
    // The log goes on where it was: the next message takes the next number.
    carol.send_text(&conv, "thanks").await.unwrap();
    let after = history(&carol, conv).await;
    assert_eq!(after.len(), items.len() + 1);
    assert_eq!(after.last().unwrap().seq, items.last().unwrap().seq + 1);
    alice.sync_all().await.unwrap();
    assert_eq!(texts(&alice, &conv).last().unwrap(), "carol: thanks");
    // On PostgreSQL, /metrics times each batch's transaction.
    let metrics = http_get(&w.relay, "/metrics").await;
    assert!(
        metric(&metrics, "sealdesk_db_commit_seconds_count").is_some_and(|n| n > 0.0),
        "{metrics}"
    );
}

/// A sled data directory with a few entries of the key-value collections (no log items).
fn small_source() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store.put(Collection::Names, b"carol", &[7; 32]).unwrap();
    store
        .put(Collection::Meta, b"relay-identity", &[9; 64])
        .unwrap();
    store.flush().unwrap();
    dir
}

#[test]
fn a_target_that_is_not_empty_is_refused_and_left_as_it_was() {
    let Some(url) = target("not_empty") else {
        return;
    };
    let source = small_source();
    let first = migrate(source.path(), &url);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).contains("names          1"),
        "{}",
        stdout(&first)
    );
    let held = rows(&url);
    let again = migrate(source.path(), &url);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("the target database is not empty"),
        "{}",
        stderr(&again)
    );
    assert_eq!(rows(&url), held, "nothing was added");
}

#[test]
fn a_missing_foreign_or_running_source_is_refused() {
    let Some(url) = target("bad_source") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let missing = migrate(&dir.path().join("nowhere"), &url);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("does not exist"),
        "{}",
        stderr(&missing)
    );
    assert!(!dir.path().join("nowhere").exists(), "not created");

    let not_sled = migrate(dir.path(), &url);
    assert!(!not_sled.status.success());
    assert!(
        stderr(&not_sled).contains("is not a relay's data directory"),
        "{}",
        stderr(&not_sled)
    );

    let source = small_source();
    let running = SledStore::open(source.path()).unwrap();
    let in_use = migrate(source.path(), &url);
    assert!(!in_use.status.success());
    assert!(
        stderr(&in_use).contains("a relay is running on"),
        "{}",
        stderr(&in_use)
    );
    drop(running);
    assert_eq!(
        pg::query(
            &url,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'kv'"
        ),
        "0",
        "the target was not touched"
    );
}

#[test]
fn a_source_whose_log_item_does_not_decode_is_refused_and_nothing_is_committed() {
    let Some(url) = target("corrupt") else { return };
    let source = small_source();
    {
        let store = SledStore::open(source.path()).unwrap();
        let mut key = vec![3u8; 16];
        key.extend_from_slice(&1u64.to_be_bytes());
        store
            .put(Collection::Messages, &key, b"not an item")
            .unwrap();
        store.flush().unwrap();
    }
    let out = migrate(source.path(), &url);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not decode"), "{}", stderr(&out));
    // The copy is one transaction: what it wrote before the bad item is gone.
    assert_eq!(rows(&url), 0);
}

/// A migration killed inside its transaction (held on a lock the test takes on the last
/// table it writes) commits nothing; run again, it copies everything.
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_migration_leaves_the_target_empty_and_runs_again() {
    let Some(url) = target("interrupted") else {
        return;
    };
    let mut w = World::new().await;
    w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();
    carol.close().await;
    let _down = stop_world_relay(&mut w).await;
    let source = w.dir.path().join("relay");
    drop(PgStore::open(&url, true).unwrap());

    // The lock: plain reads pass, inserts into conversation_heads wait.
    let server = pg::server().unwrap();
    let mut locker = Command::new(server.bin_dir().join("psql"))
        .args([url.as_str(), "-At", "-v", "ON_ERROR_STOP=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_locker = locker.stdin.take().unwrap();
    writeln!(
        to_locker,
        "BEGIN; LOCK TABLE conversation_heads IN EXCLUSIVE MODE; SELECT 'locked';"
    )
    .unwrap();
    to_locker.flush().unwrap();
    let mut from_locker = BufReader::new(locker.stdout.take().unwrap());
    let mut line = String::new();
    while line.trim() != "locked" {
        line.clear();
        assert!(from_locker.read_line(&mut line).unwrap() > 0, "psql ended");
    }

    let mut cmd = Command::new(relay_binary());
    let mut running = cmd
        .arg("migrate")
        .arg("--from")
        .arg(&source)
        .args(["--to", url.as_str()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually(
        "the migration waits on the lock, inside its transaction",
        async || {
            let waiting = pg::query(
                &url,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO conversation_heads%'",
            );
            (waiting == "1").then_some(())
        },
    )
    .await;
    running.kill().unwrap();
    running.wait().unwrap();
    writeln!(to_locker, "ROLLBACK;").unwrap();
    drop(to_locker);
    locker.wait().unwrap();
    // Its backend ends the transaction once it sees the client gone. Only this test's
    // database is looked at: the server is the test process's, and another test's relay there
    // keeps idle connections whose last query was an insert for as long as it runs.
    eventually("the interrupted transaction is gone", async || {
        let open = pg::query(
            &url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND query LIKE 'INSERT INTO %' AND pid <> pg_backend_pid()",
        );
        (open == "0").then_some(())
    })
    .await;
    assert_eq!(
        rows(&url),
        0,
        "nothing of the interrupted copy was committed"
    );

    let again = migrate(&source, &url);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("conversations with items: 1,"),
        "{}",
        stdout(&again)
    );
    assert!(rows(&url) > 0);
}
