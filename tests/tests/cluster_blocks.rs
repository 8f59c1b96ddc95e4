//! Blocks across a cluster (issue 25): a block stored through node A is enforced by node B
//! within the periodic catch-up (each node reloads its block set from the database there), and
//! so is the master's unblock — no restart needed. Two relay processes on one throwaway
//! PostgreSQL (`sealdesk_tests::pg`); skipped, loudly, without PostgreSQL binaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    block::Unblock,
    wire::{ErrorCode, Request, Response},
};
use sealdesk_tests::{
    Org, RawClient,
    cluster::{TwoNodes, two_nodes},
    identity::now,
    wait::eventually,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_through_one_node_is_enforced_by_the_other_within_the_catch_up() {
    // Node B starts first, so its block set is loaded before the block exists.
    // Wake-ups off: the periodic catch-up (150 ms) alone reloads the blocks.
    let Some(TwoNodes { a, b, .. }) = two_nodes("blocks").b_first().wakeups(false).start() else {
        return;
    };
    let (a_url, b_url) = (a.url.clone(), b.url.clone());
    let org = Org::setup(&a_url, 3, "acme", 1, 1).await;
    let customer = &org.customers[0];
    let mut on_b = RawClient::login(&b_url, customer).await;
    let chat = org.start_chat(&mut on_b, 0, 9).await;
    on_b.stored(Request::Send(chat.seal(customer, 1, "hello")))
        .await;

    org.block(&a_url, &chat).await;
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
