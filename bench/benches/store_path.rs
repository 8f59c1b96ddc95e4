//! Criterion benchmark of the relay's per-message write pattern on sled 0.34, the engine behind
//! `SledStore`, with one flush per 44 messages (about the group-commit batch the load generator
//! sees). It compares the three ways the relay has stored a message: the multi-tree
//! transaction of the first round (a dedupe key, the 1.3 KiB stored item and the conversation
//! state, in three trees); the item, then its duplicate key, as two plain inserts (second and
//! third rounds); and what `Service::append_message` does now, the item alone (each sender's
//! highest counter lives in the conversation state instead of one key per message). sled's transactions (and `apply_batch`) call `pin_log`, which seals and writes the
//! log buffer on every call: one disk write per message, whatever group commit does. See
//! BENCHMARKS.md.
//!
//! Run: `cargo bench -p sealdesk-bench --bench store_path -- --warm-up-time 1 --measurement-time 5`.
//! It writes to a temporary directory on the system temporary directory's disk.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sled::transaction::{ConflictableTransactionError, Transactional};

/// Messages between two flushes.
const BATCH: u64 = 44;
/// Conversations the messages are spread over.
const CONVERSATIONS: u64 = 64;

struct Trees {
    _dir: tempfile::TempDir,
    db: sled::Db,
    messages: sled::Tree,
    keys: sled::Tree,
    convs: sled::Tree,
    next: u64,
}

impl Trees {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path())
            .flush_every_ms(None)
            .open()
            .unwrap();
        Self {
            messages: db.open_tree("messages").unwrap(),
            keys: db.open_tree("message_keys").unwrap(),
            convs: db.open_tree("conversations").unwrap(),
            db,
            _dir: dir,
            next: 0,
        }
    }

    /// The keys of the next message: (item key, dedupe key, conversation key).
    fn next_keys(&mut self) -> (Vec<u8>, Vec<u8>, [u8; 8]) {
        let i = self.next;
        self.next += 1;
        let (c, seq) = (i % CONVERSATIONS, i / CONVERSATIONS);
        let mut item = c.to_be_bytes().to_vec();
        item.extend_from_slice(&seq.to_be_bytes());
        let mut dedupe = b"msg".to_vec();
        dedupe.extend_from_slice(&item);
        dedupe.extend_from_slice(&[7; 40]);
        (item, dedupe, c.to_be_bytes())
    }
}

fn write_pattern(c: &mut Criterion) {
    let item = vec![0x61u8; 1300];
    let state = vec![0x62u8; 300];
    let mut g = c.benchmark_group("relay_write_44_then_flush");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(20);

    let mut t = Trees::new();
    g.bench_function("3-tree transaction (the first round's message path)", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                let (k, d, ck) = t.next_keys();
                (&t.messages, &t.keys, &t.convs)
                    .transaction(|(m, keys, cv)| {
                        if keys.get(&d)?.is_some() {
                            return Err(ConflictableTransactionError::Abort(()));
                        }
                        keys.insert(d.as_slice(), &[1u8][..])?;
                        cv.insert(&ck, state.as_slice())?;
                        m.insert(k.as_slice(), item.as_slice())?;
                        Ok(())
                    })
                    .unwrap();
            }
            t.db.flush().unwrap();
        })
    });

    let mut t = Trees::new();
    g.bench_function(
        "item, then duplicate key (the second round's message path)",
        |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let (k, d, _) = t.next_keys();
                    t.messages.insert(k.as_slice(), item.as_slice()).unwrap();
                    t.keys.insert(d.as_slice(), &[1u8][..]).unwrap();
                }
                t.db.flush().unwrap();
            })
        },
    );
    let mut t = Trees::new();
    g.bench_function("item only (the message path now)", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                let (k, _, _) = t.next_keys();
                t.messages.insert(k.as_slice(), item.as_slice()).unwrap();
            }
            t.db.flush().unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, write_pattern);
criterion_main!(benches);
