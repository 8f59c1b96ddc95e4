//! The conversation flow through a real relay: opening, epoch 0, messages, pushes, duplicate
//! counters, history paging, offline catch-up and delivery receipts.

// Test helpers outside #[test] fns: a failed step must panic loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    message::{Envelope, EpochKeys, ReplayWindows},
    wire::{ErrorCode, Frame, Item, Push, Request, Response, Sequenced},
};
use sealdesk_tests::{
    Chat, EpochSpec, Org, RawClient, http_get, metric, spawn_relay, spawn_relay_with, stop_relay,
};

fn item(p: &Push) -> Option<Sequenced> {
    match p {
        Push::Item(s) => Some(s.clone()),
        _ => None,
    }
}

fn message(s: &Sequenced) -> &Envelope {
    match &s.item {
        Item::Message(env) => env,
        other => panic!("expected a message at seq {}, got {other:?}", s.seq),
    }
}

/// Every item of a conversation, paging with `limit`.
async fn all_items(c: &mut RawClient, chat: &Chat, limit: u32) -> Vec<Sequenced> {
    let mut out = Vec::new();
    let mut after = 0;
    for _ in 0..1_000 {
        match c
            .request(Request::History {
                conversation: chat.id,
                after,
                limit,
            })
            .await
        {
            Response::Items { items, more, .. } => {
                assert!(items.len() <= limit as usize, "page over the limit");
                if let Some(last) = items.last() {
                    after = last.seq;
                }
                let empty = items.is_empty();
                out.extend(items);
                if !more {
                    return out;
                }
                assert!(!empty, "an empty page that says more follow");
            }
            other => panic!("expected Items, got {other:?}"),
        }
    }
    panic!("history paging did not end");
}

#[tokio::test]
async fn open_epoch_send_push_decrypt_and_deliver() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 1, "acme", 1, 1).await;
    let agent = &org.agents[0];
    let customer = &org.customers[0];
    let mut a = RawClient::login(&url, agent).await;
    let mut c = RawClient::login(&url, customer).await;

    // Opening: the relay names the certified agent with its certificate and the policy.
    let id = sealdesk_protocol::ids::ConversationId::random(&mut sealdesk_tests::rng(77));
    match c
        .request(Request::OpenConversation {
            org: "acme".into(),
            conversation: id,
        })
        .await
    {
        Response::Opened {
            agent: card,
            certificate,
            policy,
            ..
        } => {
            assert_eq!(card, agent.card());
            assert_eq!(certificate, org.certificates[0]);
            assert_eq!(&policy, org.policy.policy());
        }
        other => panic!("expected Opened, got {other:?}"),
    }
    let (conv, who) = a
        .expect_push("assignment", |p| match p {
            Push::Assigned {
                conversation,
                customer,
            } => Some((*conversation, customer.clone())),
            _ => None,
        })
        .await;
    assert_eq!(conv, id);
    assert_eq!(who, customer.card());
    // The same id cannot be opened twice.
    assert_eq!(
        c.refused(Request::OpenConversation {
            org: "acme".into(),
            conversation: id,
        })
        .await,
        ErrorCode::IdTaken
    );

    // Epoch 0, created by the customer.
    let mut r = sealdesk_tests::rng(78);
    let (record, secret) = org.epoch(
        &mut r,
        EpochSpec {
            conversation: id,
            creator: customer,
            customer: 0,
            agent: 0,
            epoch: 0,
            previous: None,
        },
    );
    let seq = c.stored(Request::PutEpoch(record.record().clone())).await;
    assert_eq!(seq, 1, "the first item of a conversation is seq 1");
    let chat = Chat {
        id,
        customer: 0,
        agent: 0,
        keys: EpochKeys::new(&secret, &record),
        record,
        secret,
        epoch_seq: seq,
    };
    // The agent receives the record, checks it and opens K.
    let pushed = a.expect_push("epoch record", item).await;
    assert_eq!(pushed.seq, 1);
    let Item::Epoch(rec) = pushed.item else {
        panic!("expected the epoch record, got {:?}", pushed.item);
    };
    let verified = rec.verify(&org.policy).unwrap();
    verified.check_follows(None).unwrap();
    let k = verified.open(&agent.keys, &org.policy).unwrap();
    assert_eq!(*k.to_bytes(), *chat.secret.to_bytes());
    let agent_keys = EpochKeys::new(&k, &verified);
    let mut agent_window = ReplayWindows::default();

    // Messages: stored with increasing sequence numbers, pushed to the agent, who decrypts.
    let texts = ["hello, my order is late", "order #4711", "thanks!"];
    for (i, text) in texts.iter().enumerate() {
        let env = chat.seal(customer, i as u64, text);
        let seq = c.stored(Request::Send(env.clone())).await;
        assert_eq!(seq, 2 + i as u64);
        let got = a.expect_push("message", item).await;
        assert_eq!(got.seq, seq);
        assert_eq!(got.conversation, id);
        assert_eq!(
            message(&got),
            &env,
            "the relay forwards the envelope unchanged"
        );
        let opened = agent_keys
            .open_message(message(&got), &mut agent_window)
            .unwrap();
        assert_eq!(&opened.body[..], text.as_bytes());
    }
    // The agent answers; the customer decrypts.
    let reply = agent_keys
        .seal_message(
            &agent.keys,
            0,
            sealdesk_protocol::message::ContentKind::Text,
            sealdesk_tests::now(),
            b"sorry, looking into it",
        )
        .unwrap();
    c.expect_no_push("own messages", |p| matches!(p, Push::Item(_)))
        .await;
    let seq = a.stored(Request::Send(reply)).await;
    assert_eq!(seq, 5);
    let got = c.expect_push("reply", item).await;
    assert_eq!(got.seq, 5);
    assert_eq!(
        &chat.open(message(&got)).body[..],
        b"sorry, looking into it"
    );

    // A counter is used once: the same counter again is a conflict, whatever the body.
    let again = chat.seal(customer, 1, "a different body under an old counter");
    assert_eq!(
        c.refused(Request::Send(again)).await,
        ErrorCode::CounterReused
    );
    let replay = chat.seal(customer, 2, "thanks!");
    assert_eq!(
        c.refused(Request::Send(replay)).await,
        ErrorCode::CounterReused
    );
    // A fresh counter still works, and the refused ones did not take a sequence number.
    let seq = c
        .stored(Request::Send(chat.seal(customer, 3, "one more")))
        .await;
    assert_eq!(seq, 6);
    a.expect_push("message 6", item).await;

    // Delivery receipts reach the other member.
    a.ok(Request::Delivered {
        conversation: id,
        seq: 6,
    })
    .await;
    let (conv, member, seq) = c
        .expect_push("delivery receipt", |p| match p {
            Push::Delivered {
                conversation,
                member,
                seq,
            } => Some((*conversation, member.clone(), *seq)),
            _ => None,
        })
        .await;
    assert_eq!((conv, member.as_str(), seq), (id, agent.name(), 6));
    match a.request(Request::ListConversations).await {
        Response::Conversations(list) => {
            assert_eq!(list.len(), 1);
            let info = &list[0];
            assert_eq!(info.conversation, id);
            assert_eq!(info.org, "acme");
            assert_eq!(info.customer, customer.name());
            assert_eq!(info.agent, agent.name());
            assert_eq!(info.last_seq, 6);
            assert_eq!(info.delivered, 6);
        }
        other => panic!("expected Conversations, got {other:?}"),
    }
    // The agent's own receipt is not echoed to the agent.
    a.expect_no_push("own receipt", |p| matches!(p, Push::Delivered { .. }))
        .await;

    // Counters need not be dense, but they only go up: after a jump, a skipped counter is
    // refused like a used one (the relay keeps each sender's highest, not every counter).
    let jump = c
        .stored(Request::Send(chat.seal(customer, 10, "counter 10")))
        .await;
    assert_eq!(jump, 7);
    for old in [5, 10, 9, 3, 0] {
        let again = chat.seal(customer, old, "at or below the highest");
        assert_eq!(
            c.refused(Request::Send(again)).await,
            ErrorCode::CounterReused,
            "counter {old}, at or below the highest (10)"
        );
    }
    // The agent's counters are its own: its highest is still 0.
    let next = a
        .stored(Request::Send(chat.seal(agent, 1, "agent's counter 1")))
        .await;
    assert_eq!(next, 8, "the refused ones took no sequence number");

    c.close().await;
    a.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn history_pages_in_sequence_order() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 2, "acme", 1, 1).await;
    let customer = &org.customers[0];
    let mut c = RawClient::login(&url, customer).await;
    let chat = org.start_chat(&mut c, 0, 20).await;
    for i in 0..25u64 {
        let seq = c
            .stored(Request::Send(chat.seal(
                customer,
                i,
                &format!("message {i}"),
            )))
            .await;
        assert_eq!(seq, i + 2);
    }

    // Fixed pages of 10: 1..=10 more, 11..=20 more, 21..=26 done.
    let mut after = 0;
    for (expected, more_expected) in [(1..=10u64, true), (11..=20, true), (21..=26, false)] {
        match c
            .request(Request::History {
                conversation: chat.id,
                after,
                limit: 10,
            })
            .await
        {
            Response::Items { items, more, .. } => {
                let seqs: Vec<u64> = items.iter().map(|s| s.seq).collect();
                assert_eq!(seqs, expected.clone().collect::<Vec<_>>());
                assert_eq!(more, more_expected, "page after {after}");
                after = *expected.end();
            }
            other => panic!("expected Items, got {other:?}"),
        }
    }
    // Past the end: empty, nothing more.
    match c
        .request(Request::History {
            conversation: chat.id,
            after: 26,
            limit: 10,
        })
        .await
    {
        Response::Items { items, more, .. } => assert!(items.is_empty() && !more),
        other => panic!("expected Items, got {other:?}"),
    }

    // Any page size gives the same items, once each, in order; the bodies decrypt in order.
    for limit in [1, 7, 26, 1_000] {
        let items = all_items(&mut c, &chat, limit).await;
        let seqs: Vec<u64> = items.iter().map(|s| s.seq).collect();
        assert_eq!(seqs, (1..=26).collect::<Vec<_>>(), "limit {limit}");
        assert!(matches!(items[0].item, Item::Epoch(_)));
        for (i, s) in items[1..].iter().enumerate() {
            assert_eq!(
                &chat.open(message(s)).body[..],
                format!("message {i}").as_bytes()
            );
        }
    }
    // A limit of 0 is not an endless loop of empty pages.
    match c
        .request(Request::History {
            conversation: chat.id,
            after: 0,
            limit: 0,
        })
        .await
    {
        Response::Items { items, more, .. } => assert!(!items.is_empty() || !more),
        Response::Error { code, .. } => assert_eq!(code, ErrorCode::BadRequest),
        other => panic!("expected Items or an error, got {other:?}"),
    }
    c.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn offline_agent_catches_up_from_history() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 3, "acme", 1, 1).await;
    let agent = &org.agents[0];
    let customer = &org.customers[0];

    // The agent is offline while the customer opens the conversation and writes.
    let mut c = RawClient::login(&url, customer).await;
    let chat = org.start_chat(&mut c, 0, 30).await;
    for i in 0..5u64 {
        c.stored(Request::Send(chat.seal(
            customer,
            i,
            &format!("offline {i}"),
        )))
        .await;
    }

    let mut a = RawClient::login(&url, agent).await;
    let list = match a.request(Request::ListConversations).await {
        Response::Conversations(list) => list,
        other => panic!("expected Conversations, got {other:?}"),
    };
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].conversation, chat.id);
    assert_eq!((list[0].last_seq, list[0].delivered), (6, 0));

    // Read the first half, remember the cursor, go away.
    let first = match a
        .request(Request::History {
            conversation: chat.id,
            after: 0,
            limit: 3,
        })
        .await
    {
        Response::Items { items, more, .. } => {
            assert!(more);
            items
        }
        other => panic!("expected Items, got {other:?}"),
    };
    let Item::Epoch(rec) = &first[0].item else {
        panic!("the first item is the epoch record");
    };
    let verified = rec.clone().verify(&org.policy).unwrap();
    let k = verified.open(&agent.keys, &org.policy).unwrap();
    let keys = EpochKeys::new(&k, &verified);
    let mut window = ReplayWindows::default();
    let mut read = Vec::new();
    for s in &first[1..] {
        read.push(
            keys.open_message(message(s), &mut window)
                .unwrap()
                .body
                .to_vec(),
        );
    }
    let cursor = first.last().unwrap().seq;
    a.ok(Request::Delivered {
        conversation: chat.id,
        seq: cursor,
    })
    .await;
    a.close().await;
    let seq = c
        .expect_push("delivery receipt", |p| match p {
            Push::Delivered { seq, .. } => Some(*seq),
            _ => None,
        })
        .await;
    assert_eq!(seq, cursor);

    // More while the agent is away.
    for i in 5..8u64 {
        c.stored(Request::Send(chat.seal(
            customer,
            i,
            &format!("offline {i}"),
        )))
        .await;
    }

    // Back: resume from the cursor; everything missed arrives exactly once, in order.
    let mut a = RawClient::login(&url, agent).await;
    match a.request(Request::ListConversations).await {
        Response::Conversations(list) => {
            assert_eq!((list[0].last_seq, list[0].delivered), (9, cursor));
        }
        other => panic!("expected Conversations, got {other:?}"),
    }
    let rest = match a
        .request(Request::History {
            conversation: chat.id,
            after: cursor,
            limit: 100,
        })
        .await
    {
        Response::Items { items, more, .. } => {
            assert!(!more);
            items
        }
        other => panic!("expected Items, got {other:?}"),
    };
    assert_eq!(
        rest.iter().map(|s| s.seq).collect::<Vec<_>>(),
        ((cursor + 1)..=9).collect::<Vec<_>>()
    );
    for s in &rest {
        read.push(
            keys.open_message(message(s), &mut window)
                .unwrap()
                .body
                .to_vec(),
        );
    }
    let expected: Vec<Vec<u8>> = (0..8)
        .map(|i| format!("offline {i}").into_bytes())
        .collect();
    assert_eq!(read, expected);

    // Now online: the next message is pushed live.
    c.stored(Request::Send(chat.seal(customer, 8, "live")))
        .await;
    let got = a.expect_push("live message", item).await;
    assert_eq!(got.seq, 10);
    assert_eq!(
        &keys.open_message(message(&got), &mut window).unwrap().body[..],
        b"live"
    );
    a.ok(Request::Delivered {
        conversation: chat.id,
        seq: 10,
    })
    .await;
    let seq = c
        .expect_push("delivery receipt", |p| match p {
            Push::Delivered { seq, .. } => Some(*seq),
            _ => None,
        })
        .await;
    assert_eq!(seq, 10);
    // Receipts beyond the end are capped to what exists, and never go backwards.
    a.ok(Request::Delivered {
        conversation: chat.id,
        seq: 1_000,
    })
    .await;
    a.ok(Request::Delivered {
        conversation: chat.id,
        seq: 2,
    })
    .await;
    match a.request(Request::ListConversations).await {
        Response::Conversations(list) => assert_eq!(list[0].delivered, 10),
        other => panic!("expected Conversations, got {other:?}"),
    }
    c.close().await;
    a.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn every_connection_of_an_account_gets_its_pushes() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 4, "acme", 1, 1).await;
    let agent = &org.agents[0];
    let customer = &org.customers[0];
    // The agent on two machines.
    let mut a1 = RawClient::login(&url, agent).await;
    let mut a2 = RawClient::login(&url, agent).await;
    let mut c = RawClient::login(&url, customer).await;
    let chat = org.start_chat(&mut c, 0, 40).await;
    for a in [&mut a1, &mut a2] {
        a.expect_push("assignment", |p| match p {
            Push::Assigned { conversation, .. } => Some(*conversation),
            _ => None,
        })
        .await;
        let s = a.expect_push("epoch record", item).await;
        assert_eq!(s.seq, chat.epoch_seq);
    }
    let seq = c
        .stored(Request::Send(chat.seal(customer, 0, "to both")))
        .await;
    for a in [&mut a1, &mut a2] {
        assert_eq!(a.expect_push("message", item).await.seq, seq);
    }
    // One machine goes away; the other still receives.
    a1.close().await;
    let seq = c
        .stored(Request::Send(chat.seal(customer, 1, "to one")))
        .await;
    assert_eq!(a2.expect_push("message", item).await.seq, seq);
    // The customer's own second connection sees the agent's reply as well.
    let mut c2 = RawClient::login(&url, customer).await;
    let seq = a2.stored(Request::Send(chat.seal(agent, 0, "reply"))).await;
    for x in [&mut c, &mut c2] {
        let got = x.expect_push("reply", item).await;
        assert_eq!(got.seq, seq);
        assert_eq!(&chat.open(message(&got)).body[..], b"reply");
    }
    for x in [a2, c, c2] {
        x.close().await;
    }
    stop_relay(relay).await;
}

/// A client may send messages without waiting for each answer. The relay stores them in the
/// order sent, answers each in that order (a refused one included, in its place), lets them
/// share group commits, and handles a request that follows only after the messages before it:
/// here a History request right behind them sees every one.
#[tokio::test]
async fn pipelined_messages_are_answered_in_order_and_share_flushes() {
    // A long commit delay: answered one at a time, 40 messages would need about 40 flushes.
    let (relay, _dir) = spawn_relay_with(|c| c.limits.commit_max_delay_us = 300_000).await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 61, "pipeco", 1, 1).await;
    let me = &org.customers[0];
    let mut c = RawClient::login(&url, me).await;
    let chat = org.start_chat(&mut c, 0, 610).await;
    let flushes = |text: &str| metric(text, "sealdesk_flush_latency_seconds_count").unwrap();
    let before = flushes(&http_get(&relay, "/metrics").await);

    let mut envs: Vec<Envelope> = Vec::new();
    for i in 0..40u64 {
        // The 21st reuses the 4th's counter: refused, in its place.
        let env = if i == 20 {
            envs[3].clone()
        } else {
            chat.seal(me, i, &format!("pipelined {i}"))
        };
        envs.push(env.clone());
        c.send_frame(&Frame::Request {
            id: 1_000 + i,
            body: Request::Send(env),
        })
        .await;
    }
    c.send_frame(&Frame::Request {
        id: 2_000,
        body: Request::History {
            conversation: chat.id,
            after: 0,
            limit: 100,
        },
    })
    .await;

    let mut next_seq = chat.epoch_seq + 1;
    for i in 0..40u64 {
        match c.recv_frame().await {
            Some(Frame::Response { id, body }) => {
                assert_eq!(id, 1_000 + i, "answers come in request order");
                match body {
                    Response::Stored { seq, .. } if i != 20 => {
                        assert_eq!(seq, next_seq, "stored in the order sent");
                        next_seq += 1;
                    }
                    Response::Error { code, .. } if i == 20 => {
                        assert_eq!(code, ErrorCode::CounterReused);
                    }
                    other => panic!("message {i}: {other:?}"),
                }
            }
            other => panic!("expected the answer to message {i}, got {other:?}"),
        }
    }
    match c.recv_frame().await {
        Some(Frame::Response {
            id: 2_000,
            body: Response::Items { items, more, .. },
        }) => {
            assert!(!more);
            let sent: Vec<&Envelope> = items.iter().skip(1).map(message).collect();
            let expected: Vec<&Envelope> = envs
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 20)
                .map(|(_, e)| e)
                .collect();
            assert_eq!(
                sent, expected,
                "history after the messages holds all of them"
            );
        }
        other => panic!("expected the History answer, got {other:?}"),
    }
    let used = flushes(&http_get(&relay, "/metrics").await) - before;
    assert!(
        used <= 8.0,
        "39 pipelined messages took {used} flushes; they should share a few"
    );
    c.close().await;
    stop_relay(relay).await;
}
