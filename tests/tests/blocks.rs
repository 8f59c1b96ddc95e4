//! Agents act on spam (issue 25, item 4): an agent closes a conversation as spam and blocks its
//! customer's key for the org; the relay refuses the blocked customer's opens with the org and
//! its sends there (`blocked`); the block survives a restart, is listed, and the master lifts
//! it. Blocks from anyone but the org's agents and master, for another org's conversation, or
//! moved to another customer, are refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::ClientError;
use sealdesk_protocol::{
    block::{Block, BlockReason, Unblock},
    card::Role,
    ids::ConversationId,
    wire::{ErrorCode, Request, Response},
};
use sealdesk_tests::{
    World,
    identity::{Identity, now},
    org::Org,
    raw::RawClient,
    relay::{restart_world_relay, spawn_relay},
    world::{ORG, open_chat},
};

fn code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Relay { code, .. }) => code,
        other => panic!("expected a refusal from the relay, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_customer_is_refused_until_the_master_unblocks() {
    let mut world = World::new().await;
    let mut org = world.org(&["agent-1"], None).await;
    let mut spammer = world.user("spammer", Role::Customer).await;
    let mut fine = world.user("fine", Role::Customer).await;
    let conv = open_chat(&mut spammer).await;
    spammer.send_text(&conv, "buy cheap watches").await.unwrap();
    let agent = &mut org.agents[0];
    agent.sync_all().await.unwrap();

    let blocked = agent
        .block_conversation(&conv, BlockReason::Spam)
        .await
        .unwrap();
    assert_eq!(blocked.customer, "spammer");
    assert_eq!(blocked.org, ORG);
    assert!(
        blocked.status_seq.is_some(),
        "the agent's block resolves it"
    );
    assert_eq!(
        sealdesk_client::client::status::status(agent.account(), &conv)
            .unwrap()
            .name(),
        "resolved"
    );

    // Refused on send in the conversation, and on open.
    assert_eq!(
        code(spammer.send_text(&conv, "still here").await),
        ErrorCode::Blocked
    );
    assert_eq!(
        code(spammer.open_conversation(ORG, None).await),
        ErrorCode::Blocked
    );
    // Another customer is served as before.
    let other = open_chat(&mut fine).await;
    fine.send_text(&other, "hello").await.unwrap();

    // Listed to the agent and the master.
    let listed = agent.blocks(ORG).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].customer, "spammer");
    assert_eq!(listed[0].block.conversation, conv);
    assert_eq!(listed[0].block.reason, BlockReason::Spam);
    assert_eq!(org.master.blocks(ORG).await.unwrap().len(), 1);
    // Not to a customer.
    assert_eq!(code(fine.blocks(ORG).await), ErrorCode::Forbidden);

    // The block survives a restart.
    spammer.close().await;
    restart_world_relay(&mut world).await;
    let mut spammer = world.reopen("spammer").await;
    assert_eq!(
        code(spammer.open_conversation(ORG, None).await),
        ErrorCode::Blocked
    );
    let mut master = world.reopen(sealdesk_tests::world::MASTER).await;
    assert_eq!(master.blocks(ORG).await.unwrap().len(), 1);

    // Only the master unblocks, by fingerprint.
    let mut agent = world.reopen("agent-1").await;
    let fp = spammer.account().fingerprint().to_string();
    assert!(matches!(
        agent.unblock(Some(ORG), &fp).await,
        Err(ClientError::WrongRole { .. })
    ));
    let other_fp = world
        .reopen("fine")
        .await
        .account()
        .fingerprint()
        .to_string();
    assert!(matches!(
        master.unblock(Some(ORG), &other_fp).await,
        Err(ClientError::NotBlocked { .. })
    ));
    let (org_name, name) = master.unblock(None, &fp).await.unwrap();
    assert_eq!((org_name.as_str(), name.as_str()), (ORG, "spammer"));
    assert!(master.blocks(ORG).await.unwrap().is_empty());
    spammer.send_text(&conv, "sorry").await.unwrap();
    open_chat(&mut spammer).await;
}

/// Logs in as `who` and asks the relay to store `block`.
async fn try_block(url: &str, who: &Identity, block: Block) -> Response {
    let mut c = RawClient::login(url, who).await;
    let r = c.request(Request::Block(block)).await;
    c.close().await;
    r
}

fn refused(r: &Response) -> ErrorCode {
    match r {
        Response::Error { code, .. } => *code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_the_org_did_not_sign_for_this_conversation_are_refused() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let acme = Org::setup(&url, 71, "acme", 2, 2).await;
    let globex = Org::setup(&url, 72, "globex", 1, 1).await;
    let mut customer = RawClient::login(&url, &acme.customers[0]).await;
    let chat = acme.start_chat(&mut customer, 0, 7).await;
    let mut globex_customer = RawClient::login(&url, &globex.customers[0]).await;
    let globex_chat = globex.start_chat(&mut globex_customer, 0, 8).await;
    let victim = acme.customers[0].key();
    let block = |who: &Identity, org: &str, c: ConversationId, customer| {
        Block::issue(&who.keys, org, c, customer, BlockReason::Spam, now())
    };

    // A customer (not an agent) of the org.
    let other_customer = &acme.customers[1];
    let r = try_block(
        &url,
        other_customer,
        block(other_customer, "acme", chat.id, victim),
    )
    .await;
    assert_eq!(refused(&r), ErrorCode::Forbidden, "{r:?}");
    // An agent of another org, naming this org.
    let g_agent = &globex.agents[0];
    let r = try_block(&url, g_agent, block(g_agent, "acme", chat.id, victim)).await;
    assert_eq!(refused(&r), ErrorCode::Forbidden, "{r:?}");
    // This org's agent, for another org's conversation.
    let a_agent = &acme.agents[0];
    let g_victim = globex.customers[0].key();
    let r = try_block(
        &url,
        a_agent,
        block(a_agent, "acme", globex_chat.id, g_victim),
    )
    .await;
    assert_eq!(refused(&r), ErrorCode::Forbidden, "{r:?}");
    // This org's agent, for its conversation, but naming another customer.
    let bystander = acme.customers[1].key();
    let r = try_block(&url, a_agent, block(a_agent, "acme", chat.id, bystander)).await;
    assert_eq!(refused(&r), ErrorCode::Forbidden, "{r:?}");
    // A good block replayed for another customer: its signature no longer holds.
    let mut moved = block(a_agent, "acme", chat.id, victim);
    moved.customer = bystander;
    let r = try_block(&url, a_agent, moved).await;
    assert_eq!(refused(&r), ErrorCode::BadRequest, "{r:?}");
    // Signed by the agent, sent by someone else.
    let r = try_block(&url, &acme.master, block(a_agent, "acme", chat.id, victim)).await;
    assert_eq!(refused(&r), ErrorCode::Forbidden, "{r:?}");
    // Signed by one certified agent of the org, sent by another: the relay checks the
    // signature against the sender's own certificate (there is no separate "signer is the
    // sender" check to remove; this is the case it would cover).
    let b_agent = &acme.agents[1];
    let r = try_block(&url, b_agent, block(a_agent, "acme", chat.id, victim)).await;
    assert_eq!(refused(&r), ErrorCode::Forbidden, "{r:?}");
    // Stale.
    let stale = Block::issue(
        &a_agent.keys,
        "acme",
        chat.id,
        victim,
        BlockReason::Spam,
        now() - sealdesk_protocol::block::MAX_ACTION_AGE_SECS - 60,
    );
    let r = try_block(&url, a_agent, stale).await;
    assert_eq!(refused(&r), ErrorCode::BadRequest, "{r:?}");

    // None of those blocked anyone: the customer still sends.
    let env = chat.seal(&acme.customers[0], 1, "still served");
    customer.stored(Request::Send(env)).await;

    // The org's own agent blocks; the master too (idempotent).
    let r = try_block(&url, a_agent, block(a_agent, "acme", chat.id, victim)).await;
    assert_eq!(r, Response::Ok);
    let r = try_block(
        &url,
        &acme.master,
        block(&acme.master, "acme", chat.id, victim),
    )
    .await;
    assert_eq!(r, Response::Ok);
    let env = chat.seal(&acme.customers[0], 2, "refused now");
    assert_eq!(
        customer.refused(Request::Send(env)).await,
        ErrorCode::Blocked
    );
    // The globex customer, not blocked by globex, still sends there.
    let env = globex_chat.seal(&globex.customers[0], 1, "fine");
    globex_customer.stored(Request::Send(env)).await;

    // An unblock by the agent is refused; by the master, accepted.
    let mut agent = RawClient::login(&url, a_agent).await;
    let u = Unblock::issue(&a_agent.keys, "acme", victim, now());
    assert_eq!(
        agent.refused(Request::Unblock(u)).await,
        ErrorCode::Forbidden
    );
    agent.close().await;
    let mut master = RawClient::login(&url, &acme.master).await;
    master
        .ok(Request::Unblock(Unblock::issue(
            &acme.master.keys,
            "acme",
            victim,
            now(),
        )))
        .await;
    let env = chat.seal(&acme.customers[0], 3, "served again");
    customer.stored(Request::Send(env)).await;
}
