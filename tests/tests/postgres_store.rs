//! The PostgreSQL engine's store contract against a throwaway PostgreSQL
//! (`sealdesk_tests::pg`), one engine at a time: staged writes, flushes, scans and conditional
//! writes, reads of many conversations' tails, and the schema's versioning. Two engines on one
//! database (two relay nodes) are `postgres_nodes.rs`; the database going down under a relay,
//! `postgres_outage.rs`; measurements, `postgres_measure.rs`. The relay's own tests run on
//! PostgreSQL too: `SEALDESK_TEST_STORE=postgres` (see `.ci/run`).
//!
//! Skipped, loudly, only when the machine has no PostgreSQL binaries (CI installs them: `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_server::{
    Error,
    store::{
        Batch, Collection, ConversationLog, PgStore, SCHEMA_VERSION, Store, prefixed_seq_key,
        seq_from_key,
    },
};
use sealdesk_tests::{appends::message, pg};

#[test]
fn the_store_contract_holds_with_writes_staged_until_the_flush() {
    let Some(url) = pg::fresh_database("contract") else {
        return;
    };
    let store = PgStore::open(&url, true).unwrap();
    use Collection::{Deliveries, Messages, Meta};

    store.put(Meta, b"k", b"v1").unwrap();
    assert_eq!(
        store.get(Meta, b"k").unwrap(),
        Some(b"v1".to_vec()),
        "visible at once"
    );
    store.flush().unwrap();
    store.put(Meta, b"k", b"v2").unwrap();
    assert_eq!(
        store.get(Meta, b"k").unwrap(),
        Some(b"v2".to_vec()),
        "staged over stored"
    );
    assert_eq!(
        store.get(Deliveries, b"k").unwrap(),
        None,
        "collections are separate"
    );
    assert!(store.delete(Meta, b"k").unwrap());
    assert!(!store.delete(Meta, b"k").unwrap());
    assert_eq!(
        store.get(Meta, b"k").unwrap(),
        None,
        "a staged delete hides the stored value"
    );

    // Sequence keys under two prefixes, some stored, some staged, out of order.
    let (a, b) = ([1u8; 16], [2u8; 16]);
    for seq in [3u64, 1, 256] {
        store
            .put(Messages, &prefixed_seq_key(&a, seq), &seq.to_le_bytes())
            .unwrap();
    }
    store.flush().unwrap();
    for seq in [2u64, 255] {
        store
            .put(Messages, &prefixed_seq_key(&a, seq), &seq.to_le_bytes())
            .unwrap();
    }
    store
        .put(Messages, &prefixed_seq_key(&b, 1), b"b1")
        .unwrap();
    let seqs = |e: Vec<(Vec<u8>, Vec<u8>)>| -> Vec<u64> {
        e.iter().map(|(k, _)| seq_from_key(k).unwrap()).collect()
    };
    assert_eq!(
        seqs(store.scan_prefix(Messages, &a).unwrap()),
        vec![1, 2, 3, 255, 256]
    );
    assert_eq!(
        seqs(
            store
                .scan_prefix_from(Messages, &a, &prefixed_seq_key(&a, 3), 2)
                .unwrap()
        ),
        vec![3, 255]
    );
    assert_eq!(
        store
            .range_from(Messages, &prefixed_seq_key(&a, 256), 10)
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        seq_from_key(&store.last(Messages, &a).unwrap().unwrap().0),
        Some(256)
    );
    assert_eq!(store.last_seq(&b).unwrap(), Some(1));
    assert!(store.delete(Messages, &prefixed_seq_key(&a, 256)).unwrap());
    assert_eq!(
        store.last_seq(&a).unwrap(),
        Some(255),
        "a staged delete hides the last item"
    );

    // Conditional writes, checked against staged and stored values.
    assert!(store.insert_if_absent(Meta, b"counter", b"1").unwrap());
    assert!(!store.insert_if_absent(Meta, b"counter", b"2").unwrap());
    let mut batch = Batch::new();
    batch
        .put(Meta, b"y", b"1")
        .insert_if_absent(Meta, b"counter", b"again");
    assert!(!store.apply(batch).unwrap());
    assert_eq!(
        store.get(Meta, b"y").unwrap(),
        None,
        "a refused batch writes nothing"
    );
    store.flush().unwrap();
    drop(store);

    // Another engine on the same database (a restart, another node) sees what was flushed.
    let again = PgStore::open(&url, false).unwrap();
    assert_eq!(again.get(Meta, b"counter").unwrap(), Some(b"1".to_vec()));
    assert_eq!(
        seqs(again.scan_prefix(Messages, &a).unwrap()),
        vec![1, 2, 3, 255]
    );
    assert_eq!(again.get(Meta, b"k").unwrap(), None);
}

#[test]
fn a_write_not_flushed_is_not_in_the_database() {
    let Some(url) = pg::fresh_database("unflushed") else {
        return;
    };
    let store = PgStore::open(&url, true).unwrap();
    store.put(Collection::Meta, b"flushed", b"1").unwrap();
    store.flush().unwrap();
    store.put(Collection::Meta, b"staged", b"1").unwrap();
    let other = PgStore::open(&url, false).unwrap();
    assert_eq!(
        other.get(Collection::Meta, b"flushed").unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(other.get(Collection::Meta, b"staged").unwrap(), None);
    store.flush().unwrap();
    assert_eq!(
        other.get(Collection::Meta, b"staged").unwrap(),
        Some(b"1".to_vec())
    );
}

/// A node woken for many conversations reads their new items in one statement
/// (`committed_tails`): each conversation from its own number, committed items only (what
/// this engine staged and did not commit is never read), in order, at most `limit` each, the
/// conversations without new items left out — the same answer as one read each.
#[test]
fn the_tails_of_many_conversations_read_at_once_are_the_reads_one_by_one() {
    let Some(url) = pg::fresh_database("tails") else {
        return;
    };
    let store = PgStore::open(&url, true).unwrap();
    let (a, b, c) = ([1u8; 16], [2u8; 16], [3u8; 16]);
    for seq in 1..=5 {
        assert!(store.append_message(&message(&a, seq, seq, b"a")).unwrap());
    }
    for seq in 1..=2 {
        assert!(store.append_message(&message(&b, seq, seq, b"b")).unwrap());
    }
    store.flush().unwrap();
    assert!(store.append_message(&message(&a, 6, 6, b"staged")).unwrap());
    let from: [(&[u8], u64); 3] = [(&a, 1), (&b, 2), (&c, 0)];
    let seqs = |limit: usize| -> Vec<(Vec<u8>, Vec<u64>)> {
        let tails = store.committed_tails(&from, limit).unwrap();
        let one_by_one: Vec<_> = from
            .iter()
            .map(|(conv, after)| {
                (
                    conv.to_vec(),
                    store.committed_items_after(conv, *after, limit).unwrap(),
                )
            })
            .filter(|(_, items)| !items.is_empty())
            .collect();
        assert_eq!(tails, one_by_one);
        tails
            .into_iter()
            .map(|(conv, items)| {
                let seqs = items
                    .iter()
                    .map(|(k, _)| seq_from_key(k).unwrap())
                    .collect();
                (conv, seqs)
            })
            .collect()
    };
    assert_eq!(seqs(3), [(a.to_vec(), vec![2, 3, 4])]);
    assert_eq!(
        seqs(100),
        [(a.to_vec(), vec![2, 3, 4, 5])],
        "6 is not committed"
    );
    store.flush().unwrap();
    assert_eq!(seqs(100), [(a.to_vec(), vec![2, 3, 4, 5, 6])]);
    assert!(store.committed_tails(&[], 10).unwrap().is_empty());
}

#[test]
fn the_schema_is_migrated_only_when_asked_and_a_newer_one_is_refused() {
    let Some(url) = pg::fresh_database("schema") else {
        return;
    };
    let err = PgStore::open(&url, false).unwrap_err();
    assert_eq!(
        err,
        Error::SchemaBehind {
            found: 0,
            latest: SCHEMA_VERSION
        }
    );
    PgStore::open(&url, true).unwrap();
    PgStore::open(&url, false).unwrap();
    pg::query(&url, "INSERT INTO schema_version (version) VALUES (99)");
    let err = PgStore::open(&url, true).unwrap_err();
    assert_eq!(
        err,
        Error::SchemaTooNew {
            found: 99,
            supported: SCHEMA_VERSION
        }
    );
}
