//! What survives a restart, what never reaches the disk, and what the metrics count.

// Test helpers outside #[test] fns: a failed step must panic loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    ids::{ConversationId, EpochRange},
    message::Envelope,
    release::{ConsentParams, ConsentToken, Justification, ReleaseRequest, Scope},
    wire::{ErrorCode, Item, Push, Request, Response, Sequenced},
};
use sealdesk_tests::{
    Chat, Org, RawClient, contains_bytes, files_under, http_get, metric, now, rng, spawn_relay,
    spawn_relay_in, stop_relay,
};

async fn history(c: &mut RawClient, id: ConversationId) -> Vec<Sequenced> {
    let mut out = Vec::new();
    let mut after = 0;
    for _ in 0..1_000 {
        match c
            .request(Request::History {
                conversation: id,
                after,
                limit: 50,
            })
            .await
        {
            Response::Items { items, more, .. } => {
                if let Some(last) = items.last() {
                    after = last.seq;
                }
                out.extend(items);
                if !more {
                    return out;
                }
            }
            other => panic!("expected Items, got {other:?}"),
        }
    }
    panic!("history paging did not end");
}

/// Sends `n` messages from the chat's customer, counters from `first`; returns what was
/// acknowledged, as (seq, envelope).
async fn send_many(
    org: &Org,
    c: &mut RawClient,
    chat: &Chat,
    first: u64,
    n: u64,
) -> Vec<(u64, Envelope)> {
    let me = &org.customers[chat.customer];
    let mut acked = Vec::new();
    for i in first..first + n {
        let env = chat.seal(me, i, &format!("customer {} message {i}", chat.customer));
        let seq = c.stored(Request::Send(env.clone())).await;
        acked.push((seq, env));
    }
    acked
}

/// Whether this run is the PostgreSQL matrix, where a test of sled's own files has nothing to
/// test (said on stderr).
fn sled_only(why: &str) -> bool {
    let skip = sealdesk_tests::pg::matrix_wants_postgres();
    if skip {
        eprintln!("sled only ({why}): not run with SEALDESK_TEST_STORE=postgres");
    }
    skip
}

#[tokio::test]
async fn everything_acknowledged_survives_a_restart_in_order_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let relay = spawn_relay_in(dir.path()).await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 41, "acme", 1, 2).await;
    let mut c0 = RawClient::login(&url, &org.customers[0]).await;
    let mut c1 = RawClient::login(&url, &org.customers[1]).await;
    let relay_key = c0.challenge().relay_key;
    let chat0 = org.start_chat(&mut c0, 0, 410).await;
    let chat1 = org.start_chat(&mut c1, 1, 411).await;
    // Two customers write at the same time (their writes share group commits).
    let (acked0, acked1) = tokio::join!(
        send_many(&org, &mut c0, &chat0, 0, 40),
        send_many(&org, &mut c1, &chat1, 0, 40)
    );
    let mut a = RawClient::login(&url, &org.agents[0]).await;
    a.ok(Request::Delivered {
        conversation: chat0.id,
        seq: 20,
    })
    .await;
    let mut t = RawClient::login(&url, &org.trustees[0]).await;
    let entry = org.release_entry(
        &org.trustees[0],
        &ReleaseRequest::sign(
            &mut rng(412),
            &org.master.keys,
            &org.policy,
            EpochRange::single(0),
            Justification::Consent(
                ConsentToken::issue(
                    &mut rng(413),
                    &org.customers[0].keys,
                    &org.policy,
                    ConsentParams {
                        conversation: chat0.id,
                        epochs: EpochRange::single(0),
                        scope: Scope::Redacted,
                        purpose: "audit".into(),
                        valid_secs: 600,
                    },
                    now(),
                )
                .unwrap(),
            ),
            now(),
        )
        .unwrap(),
    );
    let notice_seq = match t.request(Request::AppendAudit(entry.clone())).await {
        Response::Appended { .. } => {
            c0.expect_push("notice", |p| match p {
                Push::Item(s) if matches!(s.item, Item::Notice { .. }) => Some(s.seq),
                _ => None,
            })
            .await
        }
        other => panic!("expected Appended, got {other:?}"),
    };
    let head_before = match t.request(Request::GetTreeHead).await {
        Response::TreeHead(h) => h,
        other => panic!("expected a tree head, got {other:?}"),
    };
    let before0 = history(&mut c0, chat0.id).await;
    let before1 = history(&mut c1, chat1.id).await;
    for x in [c0, c1, t] {
        x.close().await;
    }
    // One session is still open when the relay stops: shutdown is graceful anyway.
    assert!(matches!(
        a.request(Request::ListConversations).await,
        Response::Conversations(_)
    ));
    stop_relay(relay).await;
    drop(a);

    // Same data directory, new process state, new port.
    let relay = spawn_relay_in(dir.path()).await;
    let url = relay.ws_url();
    let mut c0 = RawClient::connect(&url).await;
    assert_eq!(
        c0.challenge().relay_key,
        relay_key,
        "the relay keeps its identity"
    );
    assert!(
        c0.auth(&org.customers[0].keys, org.customers[0].card())
            .await
            .registered,
        "registrations survive"
    );
    let mut c1 = RawClient::login(&url, &org.customers[1]).await;

    for (c, chat, acked, before) in [
        (&mut c0, &chat0, &acked0, &before0),
        (&mut c1, &chat1, &acked1, &before1),
    ] {
        let after = history(c, chat.id).await;
        assert_eq!(&after, before, "history identical across the restart");
        let seqs: Vec<u64> = after.iter().map(|s| s.seq).collect();
        assert_eq!(
            seqs,
            (1..=after.len() as u64).collect::<Vec<_>>(),
            "1..n, no gaps"
        );
        // Every acknowledged message is there, once, at its acknowledged seq.
        for (seq, env) in acked {
            let found: Vec<&Sequenced> = after
                .iter()
                .filter(|s| matches!(&s.item, Item::Message(e) if e == env))
                .collect();
            assert_eq!(found.len(), 1, "message at seq {seq} stored once");
            assert_eq!(found[0].seq, *seq);
        }
        assert_eq!(after[0].seq, chat.epoch_seq);
        assert!(matches!(&after[0].item, Item::Epoch(r) if r == chat.record.record()));
        for s in &after {
            if let Item::Message(env) = &s.item {
                chat.open(env);
            }
        }
    }
    assert!(before0.iter().any(|s| s.seq == notice_seq));

    // State survives too: the counter dedupe, the current epoch, the sequence, deliveries.
    let (dup_seq, dup) = &acked0[5];
    assert!(*dup_seq > 0);
    assert_eq!(
        c0.refused(Request::Send(dup.clone())).await,
        ErrorCode::CounterReused,
        "a used counter stays used after a restart"
    );
    let last = before0.last().unwrap().seq;
    let next = c0
        .stored(Request::Send(chat0.seal(
            &org.customers[0],
            40,
            "after restart",
        )))
        .await;
    assert_eq!(next, last + 1);
    let mut a = RawClient::login(&url, &org.agents[0]).await;
    match a.request(Request::ListConversations).await {
        Response::Conversations(list) => {
            let info = list.iter().find(|i| i.conversation == chat0.id).unwrap();
            assert_eq!((info.last_seq, info.delivered), (next, 20));
        }
        other => panic!("expected Conversations, got {other:?}"),
    }
    // The audit log and the directory survive: same head, and a new conversation can open.
    match a.request(Request::GetTreeHead).await {
        Response::TreeHead(h) => {
            h.verify(&relay_key).unwrap();
            assert_eq!((h.size, h.root), (head_before.size, head_before.root));
        }
        other => panic!("expected a tree head, got {other:?}"),
    }
    match a.request(Request::GetEntries { from: 0, limit: 10 }).await {
        Response::Entries { entries, .. } => assert_eq!(entries, vec![entry]),
        other => panic!("expected entries, got {other:?}"),
    }
    let chat2 = org.start_chat(&mut c1, 1, 414).await;
    assert_eq!(chat2.epoch_seq, 1);
    for x in [c0, c1, a] {
        x.close().await;
    }
    stop_relay(relay).await;
}

#[tokio::test]
async fn no_plaintext_or_epoch_secret_reaches_the_disk() {
    if sled_only("reads the sled data directory's files") {
        return;
    }
    const MARKER: &str = "MARKER-7f3a9c-PLAINTEXT";
    let (relay, dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 42, "acme", 1, 1).await;
    let customer = &org.customers[0];
    let agent = &org.agents[0];
    let mut c = RawClient::login(&url, customer).await;
    let mut a = RawClient::login(&url, agent).await;
    let chat = org.start_chat(&mut c, 0, 420).await;
    let mut ciphertexts = Vec::new();
    for i in 0..20u64 {
        let env = chat.seal(customer, i, &format!("{MARKER} customer line {i}"));
        ciphertexts.push(env.ciphertext.clone());
        c.stored(Request::Send(env)).await;
        let env = chat.seal(agent, i, &format!("agent says {MARKER} #{i}"));
        a.stored(Request::Send(env)).await;
    }
    // A release, so that released shares are stored too.
    let mut m = RawClient::login(&url, &org.master).await;
    let mut t = RawClient::login(&url, &org.trustees[0]).await;
    let token = ConsentToken::issue(
        &mut rng(421),
        &customer.keys,
        &org.policy,
        ConsentParams {
            conversation: chat.id,
            epochs: EpochRange::single(0),
            scope: Scope::Full,
            purpose: format!("purpose text is not secret, unlike {}", "the chat"),
            valid_secs: 600,
        },
        now(),
    )
    .unwrap();
    let request = ReleaseRequest::sign(
        &mut rng(422),
        &org.master.keys,
        &org.policy,
        EpochRange::single(0),
        Justification::Consent(token),
        now(),
    )
    .unwrap();
    m.ok(Request::SubmitRelease(request.clone())).await;
    let pending = t
        .expect_push("release", |p| match p {
            Push::Release(r) => Some(r.clone()),
            _ => None,
        })
        .await;
    let approved = org.trustee_decides(&org.trustees[0], &pending, 423);
    let appended = t
        .request(Request::AppendAudit(
            org.release_entry(&org.trustees[0], &request),
        ))
        .await;
    assert!(
        matches!(appended, Response::Appended { .. }),
        "{appended:?}"
    );
    t.ok(Request::SubmitShares {
        request: request.id,
        shares: approved.shares,
    })
    .await;
    for x in [c, a, m, t] {
        x.close().await;
    }
    stop_relay(relay).await;

    let k = chat.secret.to_bytes();
    let s_m = chat.record.open_master_share(&org.master.keys).unwrap();
    let mut secrets: Vec<(String, Vec<u8>)> = vec![
        ("the plaintext marker".into(), MARKER.as_bytes().to_vec()),
        ("the epoch secret K".into(), k.to_vec()),
        ("the master's escrow share".into(), s_m.to_vec()),
    ];
    for who in org.everyone() {
        let sk = who.keys.to_secret_bytes();
        secrets.push((
            format!("{}'s signing secret", who.name()),
            sk[..32].to_vec(),
        ));
        secrets.push((
            format!("{}'s agreement secret", who.name()),
            sk[32..].to_vec(),
        ));
    }
    let files = files_under(dir.path());
    assert!(!files.is_empty(), "the relay wrote its store");
    let mut all = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for (what, needle) in &secrets {
            assert!(
                !contains_bytes(&bytes, needle),
                "{what} found in {}",
                f.display()
            );
        }
        all.extend(bytes);
    }
    // The scan does see what the relay stores: ciphertext and public names are there.
    assert!(
        contains_bytes(&all, customer.name().as_bytes()),
        "the scan sees stored cards"
    );
    assert!(
        ciphertexts.iter().any(|ct| contains_bytes(&all, ct)),
        "the scan sees stored ciphertext"
    );
}

#[tokio::test]
async fn metrics_count_stored_messages() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 43, "acme", 1, 1).await;
    let customer = &org.customers[0];
    let mut c = RawClient::login(&url, customer).await;
    let mut a = RawClient::login(&url, &org.agents[0]).await;
    let chat = org.start_chat(&mut c, 0, 430).await;
    let sent = 12u64;
    for i in 0..sent {
        c.stored(Request::Send(chat.seal(customer, i, "counted")))
            .await;
    }
    // A refused duplicate is not a stored message.
    assert_eq!(
        c.refused(Request::Send(chat.seal(customer, 0, "dup")))
            .await,
        ErrorCode::CounterReused
    );
    a.ok(Request::Delivered {
        conversation: chat.id,
        seq: sent + 1,
    })
    .await;

    let response = http_get(&relay, "/metrics").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let stored = metric(&response, "sealdesk_messages_stored_total")
        .expect("sealdesk_messages_stored_total is exported");
    assert!(stored >= sent as f64, "{stored} < {sent}");
    assert!(
        stored <= sent as f64,
        "the refused duplicate was counted: {stored}"
    );
    assert_eq!(
        metric(&response, "sealdesk_ack_latency_seconds_count"),
        Some(stored),
        "one ack-latency sample per stored message"
    );
    let waits = metric(&response, "sealdesk_commit_wait_seconds_count")
        .expect("sealdesk_commit_wait_seconds is exported");
    assert!(
        waits >= stored,
        "every stored message waited for a commit: {waits} < {stored}"
    );
    let delivered = metric(&response, "sealdesk_messages_delivered_total")
        .expect("sealdesk_messages_delivered_total is exported");
    assert!(delivered >= 1.0);
    assert!(metric(&response, "sealdesk_connections_total").unwrap() >= 2.0);
    let health = http_get(&relay, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    c.close().await;
    a.close().await;
    stop_relay(relay).await;
}

/// The states a crash can leave a message append in: a message is one write, its item (and,
/// every 256 messages, the conversation record after it).
#[derive(Clone, Copy, Debug)]
enum Torn {
    /// The item is stored; the record, as after most appends, is older than the item.
    ItemOnly,
    /// The item never reached the disk.
    Nothing,
}

/// Undoes the append of the message at `seq` in the stopped relay's data directory, as a crash
/// before its write reached the disk would. Uses only the store's public interface.
fn tear_append(data: &std::path::Path, id: ConversationId, seq: u64, torn: Torn) {
    use sealdesk_server::store::{Collection, SledStore, Store, prefixed_seq_key};
    if let Torn::Nothing = torn {
        let store = SledStore::open(data).unwrap();
        let key = prefixed_seq_key(id.as_bytes(), seq);
        assert!(store.delete(Collection::Messages, &key).unwrap());
        store.flush().unwrap();
    }
}

/// Message appends are not one transaction (the item alone; the conversation record only
/// every 256 messages), so the relay rebuilds a conversation's state from its items at
/// start-up. Every state a crash can leave must come back exact: the next seq follows the last
/// stored item (no gap, no reuse), a stored message cannot be stored again under its counter
/// (the sender's highest counter comes back from the items), and the conversation list and
/// history agree — across a record checkpoint too.
#[tokio::test]
async fn a_crash_inside_a_message_append_leaves_no_gap_no_reused_counter() {
    if sled_only("tears sled's writes by hand") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let relay = spawn_relay_in(dir.path()).await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 43, "tornco", 1, 1).await;
    let me = &org.customers[0];
    let mut c = RawClient::login(&url, me).await;
    let chat = org.start_chat(&mut c, 0, 430).await;
    // The agent sends only before the checkpoint: after a restart its counters come from the
    // record alone.
    let agent = &org.agents[0];
    let mut a = RawClient::login(&url, agent).await;
    let mut agent_sent = Vec::new();
    for i in 0..5 {
        let env = chat.seal(agent, i, &format!("agent message {i}"));
        a.stored(Request::Send(env.clone())).await;
        agent_sent.push(env);
    }
    a.close().await;
    // Past the first record checkpoint (seq 256), so the replay starts from a rewritten record.
    let mut acked = send_many(&org, &mut c, &chat, 0, 300).await;
    c.close().await;
    stop_relay(relay).await;

    for (counter, torn) in (300..).zip([Torn::ItemOnly, Torn::Nothing, Torn::ItemOnly]) {
        let (last_seq, last_env) = acked.last().cloned().unwrap();
        tear_append(dir.path(), chat.id, last_seq, torn);

        let relay = spawn_relay_in(dir.path()).await;
        let url = relay.ws_url();
        let mut c = RawClient::login(&url, me).await;
        let stored_last = match torn {
            Torn::ItemOnly => last_seq,
            Torn::Nothing => last_seq - 1,
        };
        // The list is built from the same rebuilt state.
        match c.request(Request::ListConversations).await {
            Response::Conversations(list) => {
                assert_eq!(list.len(), 1);
                assert_eq!(list[0].last_seq, stored_last, "{torn:?}: listed last seq");
            }
            other => panic!("expected Conversations, got {other:?}"),
        }
        // Resending the torn message: refused if its item survived, stored at the same seq
        // (no gap) if it did not.
        match (torn, c.request(Request::Send(last_env.clone())).await) {
            (Torn::ItemOnly, Response::Error { code, .. }) => {
                assert_eq!(
                    code,
                    ErrorCode::CounterReused,
                    "the sender's highest counter is rebuilt from the items"
                );
            }
            (Torn::Nothing, Response::Stored { seq, .. }) => assert_eq!(seq, last_seq),
            (_, other) => panic!("{torn:?}: resend answered {other:?}"),
        }
        // The agent's counters, all from before the record's checkpoint: refused by the
        // counters the record keeps (no item after it names the agent).
        let mut a = RawClient::login(&url, agent).await;
        for env in [&agent_sent[2], &agent_sent[4]] {
            assert_eq!(
                a.refused(Request::Send(env.clone())).await,
                ErrorCode::CounterReused,
                "{torn:?}: agent counter {} from before the checkpoint",
                env.header.counter
            );
        }
        a.close().await;
        let next = chat.seal(me, counter, "after the crash");
        let seq = c.stored(Request::Send(next.clone())).await;
        assert_eq!(seq, last_seq + 1, "{torn:?}: the next message follows");
        acked.push((seq, next));

        let items = history(&mut c, chat.id).await;
        let seqs: Vec<u64> = items.iter().map(|s| s.seq).collect();
        assert_eq!(
            seqs,
            (1..=seq).collect::<Vec<_>>(),
            "{torn:?}: 1..n, no gaps"
        );
        for (seq, env) in &acked {
            let found = items
                .iter()
                .filter(|s| matches!(&s.item, Item::Message(e) if e == env))
                .count();
            assert_eq!(found, 1, "{torn:?}: message at seq {seq} stored once");
        }
        c.close().await;
        stop_relay(relay).await;
    }
}

/// Conversations stored by an earlier relay build have one duplicate key per message instead
/// of each sender's highest counter in the record. Those keys still refuse their counters and
/// every counter below, both for a sender whose messages the relay replays at start-up and
/// for one it first meets when it sends.
#[tokio::test]
async fn duplicate_keys_from_an_earlier_build_still_refuse_their_counters() {
    if sled_only("writes an earlier build's sled keys") {
        return;
    }
    use sealdesk_server::store::{Collection, SledStore, Store};
    let dir = tempfile::tempdir().unwrap();
    let relay = spawn_relay_in(dir.path()).await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 44, "legacyco", 1, 1).await;
    let (me, agent) = (&org.customers[0], &org.agents[0]);
    let mut c = RawClient::login(&url, me).await;
    let chat = org.start_chat(&mut c, 0, 440).await;
    send_many(&org, &mut c, &chat, 0, 3).await;
    c.close().await;
    stop_relay(relay).await;

    // As the earlier build wrote them: "msg" ‖ conversation ‖ epoch ‖ sender ‖ counter.
    {
        let store = SledStore::open(dir.path()).unwrap();
        let epoch = chat.record.epoch;
        for (who, counter) in [(me, 50u64), (agent, 20)] {
            let mut key = b"msg".to_vec();
            key.extend_from_slice(chat.id.as_bytes());
            key.extend_from_slice(&epoch.to_be_bytes());
            key.extend_from_slice(who.keys.signing_public().as_bytes());
            key.extend_from_slice(&counter.to_be_bytes());
            store
                .put(Collection::MessageKeys, &key, &1u64.to_be_bytes())
                .unwrap();
        }
        store.flush().unwrap();
    }

    let relay = spawn_relay_in(dir.path()).await;
    let url = relay.ws_url();
    let mut c = RawClient::login(&url, me).await;
    let mut a = RawClient::login(&url, agent).await;
    // The customer's items end at counter 2; its old key says 50.
    for counter in [3, 50] {
        let env = chat.seal(me, counter, "below the old key");
        assert_eq!(
            c.refused(Request::Send(env)).await,
            ErrorCode::CounterReused,
            "customer counter {counter}"
        );
    }
    let seq = c.stored(Request::Send(chat.seal(me, 51, "above it"))).await;
    assert_eq!(seq, 5, "epoch 0 at 1, three messages, then this");
    // The agent has no items; its old key says 20.
    let env = chat.seal(agent, 20, "at the old key");
    assert_eq!(
        a.refused(Request::Send(env)).await,
        ErrorCode::CounterReused
    );
    let seq = a
        .stored(Request::Send(chat.seal(agent, 21, "above it")))
        .await;
    assert_eq!(seq, 6);
    c.close().await;
    a.close().await;
    stop_relay(relay).await;
}
