//! Crash durability of the real `sealdesk-relay` binary under SIGKILL.
//!
//! The short run (30 cycles) is a normal test. The long run (≥ 1,000 cycles) is one command:
//!
//! ```text
//! cargo run --release -p sealdesk-tests --bin crash-harness -- --cycles 1000
//! ```
//!
//! Both build `sealdesk-relay` for their profile first if needed (see
//! `sealdesk_tests::child::relay_binary`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use sealdesk_protocol::wire::Request;
use sealdesk_tests::{
    Org, RawClient, STEP,
    child::{RelayProcess, relay_binary},
    crash::{Conn, CrashConfig, run},
    stays_for,
};

#[test]
fn acknowledged_messages_survive_sigkill_exactly_once_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = CrashConfig {
        cycles: 30,
        seed: 30,
        ..CrashConfig::default()
    };
    let report = run(&cfg, dir.path(), relay_binary());
    println!("{report}");
    assert_eq!(report.cycles, 30);
    assert!(report.acked > 0, "nothing was acknowledged: {report}");
    assert!(report.is_clean(), "{report}");
}

/// The same on PostgreSQL, with three relay nodes on one database: each cycle SIGKILLs a random
/// node while every chat sends through one node, and the chats move to another node the next
/// cycle. Skipped (loudly) only without PostgreSQL binaries.
#[test]
fn a_postgresql_cluster_keeps_every_acknowledged_message_when_nodes_are_sigkilled() {
    let Some(server) = sealdesk_tests::pg::server() else {
        return;
    };
    let db = sealdesk_tests::pg::database(server, &format!("crash_{}", std::process::id()));
    let dir = tempfile::tempdir().unwrap();
    let cfg = CrashConfig {
        cycles: 8,
        seed: 31,
        store: Some(db),
        nodes: 3,
        full_check_every: 4,
        ..CrashConfig::default()
    };
    let report = run(&cfg, dir.path(), relay_binary());
    println!("{report}");
    assert_eq!(report.cycles, 8);
    assert!(report.acked > 0, "nothing was acknowledged: {report}");
    assert!(report.is_clean(), "{report}");
}

/// Starts the relay binary and waits until it listens.
fn start(data: &std::path::Path, limits: &[(&str, &str)]) -> RelayProcess {
    let mut relay = RelayProcess::spawn(relay_binary(), data, limits).unwrap();
    relay.wait_ready(STEP).unwrap();
    relay
}

/// History must not serve an item before its group commit made it durable. Otherwise, if the
/// relay dies before the flush, the item is gone and the next message takes its seq: a member
/// that read it and advanced its cursor would never receive the acknowledged message that then
/// sits at that seq.
///
/// Deterministic: a group-commit delay of a minute holds the window open while the agent polls
/// History for a quiet second, far inside it however slow a loaded machine is (with 3 s, a
/// slow poll could outlast the window); it must see nothing until the send is acknowledged. SIGKILL inside the window; after
/// the restart the agent's cursor (still before the lost item) gets everything acknowledged.
#[test]
fn history_never_serves_what_a_crash_can_take_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    std::fs::create_dir_all(&data).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // Setup with normal limits; everything acknowledged here is durable.
    let mut relay = start(&data, &[]);
    let url = relay.ws_url();
    let (org, chat) = rt.block_on(async {
        let org = Org::setup(&url, 77, "rucorp", 1, 1).await;
        let mut c = RawClient::login(&url, &org.customers[0]).await;
        let chat = org.start_chat(&mut c, 0, 770).await;
        c.close().await;
        (org, chat)
    });
    relay.kill().unwrap();

    // A relay whose group commit waits a minute before flushing (it is killed long before).
    let mut relay = start(&data, &[("COMMIT_MAX_DELAY_US", "60000000")]);
    let url = relay.ws_url();
    // The send's JoinHandle leaves the block unawaited on purpose: it must still be pending.
    #[allow(clippy::async_yields_async)]
    let send = rt.block_on(async {
        let customer = &org.customers[0];
        let agent = &org.agents[chat.agent];
        let mut writer = Conn::login(&url, customer).await.unwrap();
        let mut reader = Conn::login(&url, agent).await.unwrap();
        let env = chat.seal(customer, 0, "not durable yet");
        let send = tokio::spawn(async move { writer.request(Request::Send(env)).await });
        // A quiet period well inside the minute's window: History stays empty while the send
        // waits for its flush.
        stays_for(
            Duration::from_secs(1),
            "the send waiting for its flush with nothing served",
            async || {
                let (items, _) = reader.history(chat.id, chat.epoch_seq, 1).await.unwrap();
                assert!(
                    items.is_empty(),
                    "History served seq {:?} before it was durable",
                    items.first().map(|s| s.seq)
                );
                !send.is_finished()
            },
        )
        .await;
        send
    });
    relay.kill().unwrap();
    rt.block_on(async {
        let answer = tokio::time::timeout(STEP, send).await.unwrap().unwrap();
        // Never acknowledged: the connection died with the relay (not a refusal or a bad frame).
        assert!(
            answer
                .as_ref()
                .is_err_and(|e| e.starts_with("receive:") || e == "connection ended"),
            "the send was never acknowledged: {answer:?}"
        );
    });

    // After the restart the agent's own message is acknowledged, and a reader starting from the
    // cursor it had (the epoch record) receives it.
    let mut relay = start(&data, &[]);
    let url = relay.ws_url();
    rt.block_on(async {
        let agent = &org.agents[chat.agent];
        let mut a = Conn::login(&url, agent).await.unwrap();
        a.request(Request::Send(chat.seal(agent, 0, "acknowledged")))
            .await
            .unwrap();
        let (items, more) = a.history(chat.id, chat.epoch_seq, 1).await.unwrap();
        assert_eq!((items.len(), more), (1, false), "{items:?}");
    });
    relay.kill().unwrap();
}
