//! Blocks across a cluster (issue 25): a block stored through node A is enforced by node B
//! within the periodic catch-up (each node reloads its block set from the database there), and
//! so is the master's unblock — no restart needed. Two relay processes on one throwaway
//! PostgreSQL (`sealdesk_tests::pg`); skipped, loudly, without PostgreSQL binaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::Path, time::Duration};

use sealdesk_protocol::{
    block::{Block, BlockReason, Unblock},
    wire::{ErrorCode, Request, Response},
};
use sealdesk_tests::{
    Org, RawClient,
    child::{RelayProcess, relay_binary},
    identity::now,
    pg,
    wait::eventually,
};
use tempfile::TempDir;

/// A relay node on database `db` with the shared log key `key`, wake-ups off, catching up
/// every 150 ms.
fn node(db: &str, key: &Path) -> (RelayProcess, String, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let key = key.to_string_lossy().into_owned();
    let mut process = RelayProcess::spawn(
        relay_binary(),
        dir.path(),
        &[
            ("STORE", "postgres"),
            ("DATABASE_URL", db),
            ("MIGRATE", "true"),
            ("LOG_KEY_FILE", &key),
            ("CLUSTER_WAKEUPS", "false"),
            ("CLUSTER_CATCH_UP_MS", "150"),
        ],
    )
    .unwrap();
    process.wait_ready(Duration::from_secs(60)).unwrap();
    let url = process.ws_url();
    (process, url, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_through_one_node_is_enforced_by_the_other_within_the_catch_up() {
    let Some(server) = pg::server() else {
        return;
    };
    let db = pg::database(server, &format!("cluster_blocks_{}", std::process::id()));
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("log.key");
    std::fs::write(&key, [0x5au8; 64]).unwrap();
    // Node B starts first, so its block set is loaded before the block exists.
    let (_b, b_url, _b_dir) = node(&db, &key);
    let (_a, a_url, _a_dir) = node(&db, &key);
    let org = Org::setup(&a_url, 3, "acme", 1, 1).await;
    let (customer, agent) = (&org.customers[0], &org.agents[0]);
    let mut on_b = RawClient::login(&b_url, customer).await;
    let chat = org.start_chat(&mut on_b, 0, 9).await;
    on_b.stored(Request::Send(chat.seal(customer, 1, "hello")))
        .await;

    let mut agent_on_a = RawClient::login(&a_url, agent).await;
    agent_on_a
        .ok(Request::Block(Block::issue(
            &agent.keys,
            "acme",
            chat.id,
            customer.key(),
            BlockReason::Spam,
            now(),
        )))
        .await;
    agent_on_a.close().await;
    // Node B refuses the customer's next message once its catch-up has read the block.
    let mut counter = 1;
    eventually("node B enforces node A's block", async || {
        counter += 1;
        match on_b
            .request(Request::Send(chat.seal(customer, counter, "more")))
            .await
        {
            Response::Error {
                code: ErrorCode::Blocked,
                ..
            } => Some(()),
            _ => None,
        }
    })
    .await;

    // The master's unblock through node A is read by node B the same way.
    let mut master_on_a = RawClient::login(&a_url, &org.master).await;
    master_on_a
        .ok(Request::Unblock(Unblock::issue(
            &org.master.keys,
            "acme",
            customer.key(),
            now(),
        )))
        .await;
    master_on_a.close().await;
    eventually("node B lifts the block", async || {
        counter += 1;
        match on_b
            .request(Request::Send(chat.seal(customer, counter, "again")))
            .await
        {
            Response::Stored { .. } => Some(()),
            _ => None,
        }
    })
    .await;
    on_b.close().await;
}
