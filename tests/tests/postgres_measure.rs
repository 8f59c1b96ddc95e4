//! Measurements of the PostgreSQL engine, not checks (ignored; run with `--ignored
//! --nocapture`): durable acknowledgements per second through group commit against sled, and
//! the cost of the stored-bytes fold per count against one transaction. BENCHMARKS.md has the
//! figures.
//!
//! Skipped, loudly, only when the machine has no PostgreSQL binaries (CI installs them: `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_server::store::{Collection, ConversationLog, PgStore, Store};
use sealdesk_tests::{appends::message, pg};

/// Durable acknowledgements per second through group commit, sled against PostgreSQL, in one
/// run on this machine: 64 writers each append a message to a conversation of their own and
/// wait for `durable()`, for three seconds per engine. A measurement, not a check: run it with
/// `cargo test -p sealdesk-tests --test postgres_measure -- --ignored --nocapture durable_acks`.
#[test]
#[ignore = "a measurement; prints figures"]
fn durable_acks_sled_against_postgres() {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    };
    use std::time::{Duration, Instant};

    use sealdesk_server::{commit::GroupCommit, metrics::Metrics};

    fn measure(engine: Arc<dyn ConversationLog>) -> f64 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let store: Arc<dyn Store> = engine.clone();
            let (commit, committer) = GroupCommit::spawn(
                store,
                256,
                Duration::from_micros(500),
                Arc::new(Metrics::new()),
            )
            .unwrap();
            let acks = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let item = vec![0xA5u8; 1_300];
            let writers: Vec<_> = (0..64u8)
                .map(|w| {
                    let (engine, commit) = (engine.clone(), commit.clone());
                    let (acks, stop, item) = (acks.clone(), stop.clone(), item.clone());
                    tokio::spawn(async move {
                        let c = [w; 16];
                        let mut seq = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            seq += 1;
                            engine
                                .append_message(&message(&c, seq, seq, &item))
                                .unwrap();
                            commit.durable().await.unwrap();
                            acks.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            let started = Instant::now();
            tokio::time::sleep(Duration::from_secs(3)).await;
            stop.store(true, Ordering::Relaxed);
            let n = acks.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64();
            for w in writers {
                w.await.unwrap();
            }
            committer.stop_async().await;
            n as f64 / secs
        })
    }

    let Some(url) = pg::fresh_database("measure") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sled = measure(Arc::new(
        sealdesk_server::store::SledStore::open(dir.path()).unwrap(),
    ));
    let pg = measure(Arc::new(PgStore::open(&url, true).unwrap()));
    let sled_again = measure(Arc::new(
        sealdesk_server::store::SledStore::open(&dir.path().join("again")).unwrap(),
    ));
    println!(
        "durable acks/s, 64 writers: sled {sled:.0}, postgres {pg:.0}, sled again {sled_again:.0}; \
         postgres / sled = {:.2}",
        pg / ((sled + sled_again) / 2.0)
    );
}

/// The stored-bytes fold's cost, the way before `add_counts` (per count: commit the staged
/// writes, read, conditional write — `update_record`) against `add_counts` (one transaction),
/// alternated on one database: 512 counts a fold, the size of a busy node's period.
/// `cargo test -p sealdesk-tests --test postgres_measure fold_cost -- --ignored --nocapture`
#[test]
#[ignore = "a measurement; prints figures"]
fn fold_cost_per_count_against_one_transaction() {
    use std::time::Instant;

    let Some(url) = pg::fresh_database("foldcost") else {
        return;
    };
    let store = PgStore::open(&url, true).unwrap();
    let changes: Vec<(Vec<u8>, i64)> = (0..512u32)
        .map(|i| (format!("bytes/{i}").into_bytes(), 1_300))
        .collect();
    let per_count = |store: &PgStore| {
        for (key, delta) in &changes {
            loop {
                store.flush().unwrap();
                let before = store.get(Collection::Meta, key).unwrap();
                let old = before
                    .as_deref()
                    .and_then(|v| <[u8; 8]>::try_from(v).ok())
                    .map_or(0, u64::from_be_bytes);
                let new = old.saturating_add(delta.unsigned_abs()).to_be_bytes();
                let done = match &before {
                    Some(b) => store.replace_if(Collection::Meta, key, b, &new).unwrap(),
                    None => store
                        .insert_if_absent_now(Collection::Meta, key, &new)
                        .unwrap(),
                };
                if done {
                    break;
                }
            }
        }
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t = Instant::now();
        per_count(&store);
        a.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        assert_eq!(
            store.add_counts(Collection::Meta, &changes).unwrap().len(),
            512
        );
        b.push(t.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ma, mb) = (median(&mut a), median(&mut b));
    println!(
        "fold of 512 counts: per count {:.1} ms, one transaction {:.1} ms (median of 5 each, \
         alternated): {:.1}x",
        ma * 1e3,
        mb * 1e3,
        ma / mb
    );
    let v = store.get(Collection::Meta, b"bytes/7").unwrap().unwrap();
    assert_eq!(u64::from_be_bytes(v.try_into().unwrap()), 10 * 1_300);
}
