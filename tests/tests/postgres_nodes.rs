//! Two PostgreSQL engines on one database, as two relay nodes whose caches disagree, against
//! a throwaway PostgreSQL (`sealdesk_tests::pg`): the database's own refusal of a taken
//! sequence number or a reused counter and the hold on a conversation behind a refusal, a
//! refused item known by its number and bytes, conditional inserts and read-modify-write
//! records two nodes make at once, counts two nodes add at once, and the wake-ups a batch sends
//! the other nodes' listeners. One engine's contract is `postgres_store.rs`.
//!
//! Skipped, loudly, only when the machine has no PostgreSQL binaries (CI installs them: `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_server::store::{
    Batch, Collection, ConversationLog, MessageAppend, PgStore, Refused, Store, Wake, WakeCounts,
    listen_for_wakeups, prefixed_seq_key,
};
use sealdesk_tests::{
    appends::{message, sent},
    cluster::two_stores,
    pg,
};

/// Two engines on one database, as two relay nodes whose caches disagree: the database
/// refuses a sequence number that is not the conversation's next one, and a reused (epoch,
/// sender, counter); the refused append is dropped alone (the rest of its batch commits), its
/// writer learns it once (`take_refused`), and until it appends again every later append to
/// that conversation is dropped too, so that a sender's messages are never stored out of order.
#[test]
fn the_database_refuses_a_taken_sequence_number_and_a_reused_counter() {
    let Some(url) = pg::fresh_database("refuses") else {
        return;
    };
    let (a, b) = two_stores(&url);
    let (c, d) = ([5u8; 16], [6u8; 16]);
    a.append_message(&message(&c, 1, 1, b"from a")).unwrap();
    a.flush().unwrap();

    // Node b still thinks the conversation is empty: seq 1 again, in a batch with another
    // conversation's append, which commits.
    b.append_message(&message(&c, 1, 7, b"from b")).unwrap();
    b.append_message(&message(&d, 1, 1, b"other")).unwrap();
    b.flush().unwrap();
    assert!(b.take_refused(&c, &sent(7)).unwrap(), "seq 1 was taken");
    assert!(!b.take_refused(&c, &sent(7)).unwrap(), "told once");
    assert!(!b.take_refused(&d, &sent(1)).unwrap());
    assert_eq!(
        a.last_seq(&d).unwrap(),
        Some(1),
        "the rest of the batch committed"
    );
    // A gap: seq 3 after 1.
    b.append_message(&message(&c, 3, 8, b"gap")).unwrap();
    b.flush().unwrap();
    assert!(
        b.take_refused(&c, &sent(8)).unwrap(),
        "a sequence gap is refused"
    );
    // The next number but a counter already used: the UNIQUE constraint refuses it.
    b.append_message(&message(&c, 2, 1, b"reused")).unwrap();
    b.flush().unwrap();
    // While that refusal is not taken, a later append to the conversation is dropped too.
    b.append_message(&message(&c, 3, 9, b"behind")).unwrap();
    b.flush().unwrap();
    assert!(
        b.take_refused(&c, &sent(1)).unwrap(),
        "a reused counter is refused"
    );
    // Appended again (after reloading): committed, and the one behind is reported refused.
    b.append_message_again(&message(&c, 2, 2, b"next")).unwrap();
    b.flush().unwrap();
    assert!(!b.take_refused(&c, &sent(2)).unwrap());
    assert!(
        b.take_refused(&c, &sent(9)).unwrap(),
        "dropped behind the refusal"
    );
    let items: Vec<Vec<u8>> = a
        .items_after(&c, 0, 10)
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(items, vec![b"from a".to_vec(), b"next".to_vec()]);
    assert_eq!(b.committed_last_seq(&c).unwrap(), Some(2));
}

/// A refused message holds its conversation from the moment its writer takes the refusal until
/// it is appended again: the session's next message, staged in between (a pipelining client
/// sends on while the relay reloads the conversation), is held back — not stored ahead of it —
/// and its writer learns it is refused and appends it after. Without the hold the next message
/// took the number the reload gave, committed first, and the message appended again was
/// refused, then refused `counter_reused` (its counter below the stored one's): the known
/// defect of the two-node burst in `tests/tests/cluster.rs`.
#[test]
fn a_taken_refusal_holds_the_conversation_until_the_message_is_appended_again() {
    let Some(url) = pg::fresh_database("hold") else {
        return;
    };
    let (a, b) = two_stores(&url);
    let c = [7u8; 16];
    let other = |seq, counter, item| MessageAppend {
        sender: &[8; 32],
        ..message(&c, seq, counter, item)
    };
    assert!(a.append_message(&other(1, 1, b"from a")).unwrap());
    a.flush().unwrap();
    // Node b's cache is behind: its first message takes seq 1 again, and is refused.
    assert!(b.append_message(&message(&c, 1, 1, b"first")).unwrap());
    b.flush().unwrap();
    assert!(b.take_refused(&c, &sent(1)).unwrap());
    // The writer reloads; meanwhile the session's second message arrives and is held back.
    assert!(
        !b.append_message(&message(&c, 2, 2, b"second")).unwrap(),
        "held back behind the refused message being appended again"
    );
    b.append_message_again(&message(&c, 2, 1, b"first"))
        .unwrap();
    b.flush().unwrap();
    assert!(!b.take_refused(&c, &sent(1)).unwrap(), "stored this time");
    assert!(
        b.take_refused(&c, &sent(2)).unwrap(),
        "the held one is refused"
    );
    b.append_message_again(&message(&c, 3, 2, b"second"))
        .unwrap();
    b.flush().unwrap();
    assert!(!b.take_refused(&c, &sent(2)).unwrap());
    // Released: the next message is staged as usual.
    assert!(b.append_message(&message(&c, 4, 3, b"third")).unwrap());
    b.flush().unwrap();
    let items: Vec<Vec<u8>> = a
        .items_after(&c, 0, 10)
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        items,
        vec![
            b"from a".to_vec(),
            b"first".to_vec(),
            b"second".to_vec(),
            b"third".to_vec()
        ],
        "in the order the session sent them"
    );

    // A writer that will not append its refused message again gives it up, which releases
    // the conversation.
    assert!(a.append_message(&other(5, 2, b"a again")).unwrap());
    a.flush().unwrap();
    assert!(b.append_message(&message(&c, 5, 4, b"refused")).unwrap());
    b.flush().unwrap();
    assert!(b.take_refused(&c, &sent(4)).unwrap());
    assert!(!b.append_message(&message(&c, 6, 5, b"held")).unwrap());
    assert!(b.take_refused(&c, &sent(5)).unwrap());
    b.give_up_refused(&c, &sent(4)).unwrap();
    b.give_up_refused(&c, &sent(5)).unwrap();
    assert!(
        b.append_message(&message(&c, 6, 6, b"after")).unwrap(),
        "released once given up"
    );
}

/// A refused item is known by its number AND its bytes: node A's item `y` at number 2 is
/// refused for its audit leaf (node B took the index), which leaves the number free; A's next
/// item `x` is stored under it before `y`'s writer asks. `x`'s writer is told `x` was stored,
/// `y`'s that `y` was refused. Known by the number alone, `x`'s writer would take `y`'s
/// refusal (and append `x` a second time) and `y`'s writer would be told `y` was stored.
#[test]
fn a_refused_item_is_never_taken_for_another_item_at_its_number() {
    let Some(url) = pg::fresh_database("refused_item") else {
        return;
    };
    let a = PgStore::open(&url, true).unwrap();
    let b = PgStore::open(&url, false).unwrap();
    let c = [5u8; 16];
    assert!(a.append_item(&c, 1, b"first", Batch::new()).unwrap());
    a.flush().unwrap();
    let leaf = 0u64.to_be_bytes();

    // `y` with its audit leaf, staged; B takes the leaf's index first.
    let mut with = Batch::new();
    with.put(Collection::AuditLeaves, &leaf, b"a's leaf");
    assert!(a.append_item(&c, 2, b"y", with).unwrap());
    assert!(
        b.insert_if_absent(Collection::AuditLeaves, &leaf, b"b's leaf")
            .unwrap()
    );
    a.flush().unwrap();
    assert_eq!(
        b.get(Collection::AuditLeaves, &leaf).unwrap(),
        Some(b"b's leaf".to_vec())
    );

    // `x` at the number `y` left free: stored.
    assert!(a.append_item(&c, 2, b"x", Batch::new()).unwrap());
    a.flush().unwrap();
    assert_eq!(
        b.get(Collection::Messages, &prefixed_seq_key(&c, 2))
            .unwrap(),
        Some(b"x".to_vec())
    );
    assert!(
        !a.take_refused(&c, &Refused::item(2, b"x")).unwrap(),
        "x was stored"
    );
    assert!(
        a.take_refused(&c, &Refused::item(2, b"y")).unwrap(),
        "y was refused"
    );
    assert!(
        !a.take_refused(&c, &Refused::item(2, b"y")).unwrap(),
        "taken once"
    );
}

/// Two relay nodes insert the same key, each having checked that it is free, while other
/// writers' writes are staged on the losing node: the database answers the two inserts, one
/// `true` and one `false`, and the losing node's flush commits its other writes. Staged, the
/// conditional insert was answered `true` by both nodes, and the loser's flush then failed
/// its whole batch ("another relay node took a key this batch inserted"): every writer of
/// the batch was told its write failed, and the loser was told it inserted.
#[test]
fn a_conditional_insert_another_node_made_first_fails_only_its_own_writer() {
    let Some(url) = pg::fresh_database("insert_race") else {
        return;
    };
    let (a, b) = two_stores(&url);
    // Other writers' writes, staged on both nodes.
    a.put(Collection::Names, b"alice", b"a").unwrap();
    b.put(Collection::Names, b"bob", b"b").unwrap();
    let won_a = a
        .insert_if_absent(Collection::AuditLeaves, &7u64.to_be_bytes(), b"from a")
        .unwrap();
    let won_b = b
        .insert_if_absent(Collection::AuditLeaves, &7u64.to_be_bytes(), b"from b")
        .unwrap();
    a.flush().unwrap();
    b.flush()
        .expect("the losing node's batch commits its other writes");
    assert!(won_a && !won_b, "exactly one insert is told it inserted");
    let fresh_node = PgStore::open(&url, false).unwrap();
    assert_eq!(
        fresh_node
            .get(Collection::AuditLeaves, &7u64.to_be_bytes())
            .unwrap()
            .as_deref(),
        Some(b"from a".as_slice())
    );
    assert_eq!(
        fresh_node
            .get(Collection::Names, b"alice")
            .unwrap()
            .as_deref(),
        Some(b"a".as_slice())
    );
    assert_eq!(
        fresh_node
            .get(Collection::Names, b"bob")
            .unwrap()
            .as_deref(),
        Some(b"b".as_slice())
    );
    // A batch of audit leaves (a put there is an insert) the other node took: refused as a
    // whole, nothing of it written, the node's other writes unaffected.
    b.put(Collection::Names, b"carol", b"c").unwrap();
    let mut batch = Batch::new();
    batch
        .put(Collection::AuditLeaves, &8u64.to_be_bytes(), b"from b")
        .put(Collection::Meta, b"marker", b"8");
    assert!(b.apply(batch).unwrap());
    let mut batch = Batch::new();
    batch
        .put(Collection::AuditLeaves, &8u64.to_be_bytes(), b"from a")
        .put(Collection::Meta, b"marker", b"a's");
    assert!(!a.apply(batch).unwrap(), "the index is taken");
    a.flush().unwrap();
    b.flush().unwrap();
    assert_eq!(
        fresh_node
            .get(Collection::Meta, b"marker")
            .unwrap()
            .as_deref(),
        Some(b"8".as_slice())
    );
    assert_eq!(
        fresh_node
            .get(Collection::Names, b"carol")
            .unwrap()
            .as_deref(),
        Some(b"c".as_slice())
    );
}

/// Two relay nodes update one read-modify-write record at the same instant (two trustees
/// answering one release request through two nodes): each read it before the other wrote. A
/// plain put would have the later commit overwrite the earlier one's update; `replace_if` tells
/// the second writer that the record changed, and it reads again and adds its update to the
/// first one's. Also, a node's own update still staged is what its next comparison sees.
#[test]
fn a_record_two_nodes_update_at_once_loses_neither_update() {
    let Some(url) = pg::fresh_database("rmw") else {
        return;
    };
    let (a, b) = two_stores(&url);
    let k = b"release-1";
    a.put(Collection::Releases, k, b"shares:").unwrap();
    a.flush().unwrap();
    let (read_a, read_b) = (
        a.get(Collection::Releases, k).unwrap().unwrap(),
        b.get(Collection::Releases, k).unwrap().unwrap(),
    );
    assert!(
        a.replace_if(Collection::Releases, k, &read_a, b"shares:a")
            .unwrap()
    );
    assert!(
        !b.replace_if(Collection::Releases, k, &read_b, b"shares:b")
            .unwrap(),
        "b read the record before a's update: refused, not overwritten"
    );
    let again = b.get(Collection::Releases, k).unwrap().unwrap();
    assert_eq!(again, b"shares:a");
    assert!(
        b.replace_if(Collection::Releases, k, &again, b"shares:a,b")
            .unwrap()
    );
    assert_eq!(
        a.get(Collection::Releases, k).unwrap().as_deref(),
        Some(b"shares:a,b".as_slice()),
        "both updates kept"
    );
    // A staged update of this node is committed before the comparison.
    a.put(Collection::Releases, k, b"staged").unwrap();
    assert!(
        a.replace_if(Collection::Releases, k, b"staged", b"after")
            .unwrap()
    );
    assert_eq!(
        b.get(Collection::Releases, k).unwrap().as_deref(),
        Some(b"after".as_slice())
    );
}

/// The stored-bytes counts two nodes fold in at the same instant: each addition is the
/// database's, so none is lost however the two interleave (the old way, a read and a
/// conditional write per count, lost none either but cost two round trips and a commit of the
/// node's staged writes per count); a count never goes below 0; an absent or malformed value
/// counts as 0; a key given twice adds both.
#[test]
fn counts_two_nodes_add_at_once_lose_no_addition() {
    let Some(url) = pg::fresh_database("counts") else {
        return;
    };
    let (a, b) = two_stores(&url);
    let keys: Vec<Vec<u8>> = (0..40u8).map(|i| vec![b'c', i]).collect();
    // 8 folds per node, each adding 1..=40 to all 40 counts in an order of its own (a's
    // forwards, b's backwards: the engine locks in key order, so neither waits for a cycle).
    std::thread::scope(|scope| {
        for (node, forwards) in [(&a, true), (&b, false)] {
            let keys = &keys;
            scope.spawn(move || {
                for _ in 0..8 {
                    let mut changes: Vec<(Vec<u8>, i64)> = keys
                        .iter()
                        .enumerate()
                        .map(|(i, k)| (k.clone(), i64::try_from(i).unwrap() + 1))
                        .collect();
                    if !forwards {
                        changes.reverse();
                    }
                    let after = node.add_counts(Collection::Meta, &changes).unwrap();
                    assert_eq!(after.len(), keys.len(), "every count written");
                }
            });
        }
    });
    for (i, k) in keys.iter().enumerate() {
        let v = a.get(Collection::Meta, k).unwrap().unwrap();
        assert_eq!(
            u64::from_be_bytes(v.try_into().unwrap()),
            16 * (i as u64 + 1),
            "count {i}: 16 folds of {} each",
            i + 1
        );
    }

    // Below 0 it stops at 0; a malformed value counts as 0; a key twice adds both.
    a.put(Collection::Meta, b"odd", b"not eight bytes").unwrap();
    a.flush().unwrap();
    let mut after = b
        .add_counts(
            Collection::Meta,
            &[
                (keys[0].clone(), -1_000),
                (b"odd".to_vec(), 5),
                (b"new".to_vec(), 7),
                (b"new".to_vec(), 3),
            ],
        )
        .unwrap();
    after.sort();
    assert_eq!(
        after,
        vec![
            (keys[0].clone(), 0),
            (b"new".to_vec(), 10),
            (b"odd".to_vec(), 5),
        ]
    );
    assert_eq!(
        a.get(Collection::Meta, b"new").unwrap().as_deref(),
        Some(10u64.to_be_bytes().as_slice())
    );
    assert!(a.add_counts(Collection::Meta, &[]).unwrap().is_empty());
}

/// One batch appends to 600 conversations (more than one notification's payload can name):
/// both other nodes' listeners are told of every one of them, each notification counted as
/// it arrives, as many as were sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_touching_many_conversations_wakes_both_other_nodes_for_each() {
    let Some(url) = pg::fresh_database("many_wakeups") else {
        return;
    };
    const CONVERSATIONS: u16 = 600;
    let store = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || PgStore::open(&url, true).unwrap())
            .await
            .unwrap()
    };
    let mut listeners = Vec::new();
    for other in [1u64, 2] {
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let counts = std::sync::Arc::new(WakeCounts::default());
        let task = tokio::spawn(listen_for_wakeups(
            url.clone(),
            other,
            std::sync::Arc::clone(&counts),
            tx,
            std::time::Duration::from_millis(100),
        ));
        assert_eq!(rx.recv().await.map(|(_, w)| w), Some(Wake::Reconnected));
        listeners.push((rx, counts, task));
    }
    let store = tokio::task::spawn_blocking(move || {
        for i in 0..CONVERSATIONS {
            let mut c = [0u8; 16];
            c[..2].copy_from_slice(&i.to_be_bytes());
            assert!(store.append_message(&message(&c, 1, 1, b"item")).unwrap());
        }
        store.flush().unwrap();
        store
    })
    .await
    .unwrap();
    let sent = store.counts().sent();
    assert!(sent > 1, "600 conversations do not fit one notification");
    for (rx, counts, task) in &mut listeners {
        let mut named = std::collections::BTreeSet::new();
        while named.len() < usize::from(CONVERSATIONS) {
            match tokio::time::timeout(sealdesk_tests::wait::STEP, rx.recv()).await {
                Ok(Some((_, Wake::Conversations(list)))) => {
                    for (c, first) in list {
                        assert_eq!(first, 1);
                        named.insert(c);
                    }
                }
                Ok(other) => panic!("expected wake-ups, got {other:?}"),
                Err(_) => panic!("{} of {CONVERSATIONS} conversations named", named.len()),
            }
        }
        assert_eq!(counts.received(), sent);
        task.abort();
    }
}
