//! The audit log of a cluster node never drifts from the shared store, and its growth reaches
//! the sessions watching it on every node (issue 24).
//!
//! A node keeps the log's leaf hashes in memory and serves tree heads and proofs from them. An
//! entry appended with a notice in a conversation is staged with the next batch, and the
//! database may refuse it when the batch commits (another node took its index). Deterministic
//! here: node A's group commit is held (its commit gate closed) while node B appends an entry
//! at the index A staged its entry at, then A appends another entry. A must reload its log
//! rather than keep the refused leaf below its new one: its tree head is then the one B
//! serves, and the leaves a reader fetches make it. Without the check A would sign a head over
//! a leaf the store does not hold, with the top leaf (its second entry, stored) matching the
//! store's.
//!
//! A session on node B that asked `watch_audit` is told `audit_grew` for an entry appended
//! through node A (committed at once, or staged with its notice), with the size of the log B
//! then serves; a session on B that did not ask is told nothing.
//!
//! Skipped, loudly, only when the machine has no PostgreSQL binaries (CI installs them).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    audit::{AuditEntry, SignedTreeHead},
    merkle,
    wire::{Push, Request, Response},
};
use sealdesk_tests::{
    Org, RawClient,
    audit_log::policy_entry,
    cluster::{TwoNodes, slow_and_quick, two_nodes},
    consent::release_entry,
    eventually,
};

/// The tree head the node `c` is connected to serves.
async fn head(c: &mut RawClient) -> SignedTreeHead {
    match c.request(Request::GetTreeHead).await {
        Response::TreeHead(h) => h,
        other => panic!("expected a tree head, got {other:?}"),
    }
}

/// The leaf hashes of the first `size` entries, as node `c` serves them (the caller reads them
/// all: nothing is withheld).
async fn leaves(c: &mut RawClient, size: u64) -> Vec<merkle::Hash> {
    let mut out = Vec::new();
    while (out.len() as u64) < size {
        match c
            .request(Request::GetEntries {
                from: out.len() as u64,
                limit: 256,
            })
            .await
        {
            Response::Entries {
                entries, withheld, ..
            } => {
                assert!(withheld.is_empty(), "the master reads every entry here");
                assert!(!entries.is_empty(), "the log ends before its head's size");
                out.extend(entries.iter().map(AuditEntry::leaf_hash));
            }
            other => panic!("expected entries, got {other:?}"),
        }
    }
    out.truncate(usize::try_from(size).unwrap());
    out
}

/// Node A stages a release entry (with its notice) at index `i`, its commit held at the gate;
/// node B appends an entry at `i` meanwhile; A then appends another entry, which its store
/// would put at `i + 1`, committing A's staged batch first (the release entry refused there).
/// A's log is reloaded before that append: every head A serves afterwards is B's, and the
/// entries make it. The release entry is appended again after them, once the gate opens, and
/// its trustee answered for it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_entry_under_a_stored_one_never_stays_in_a_nodes_log() {
    let Some((TwoNodes { a, b, .. }, gate)) = slow_and_quick("auditdrift") else {
        return;
    };
    let org = Org::setup(&b.url, 2450, "driftco", 1, 1).await;
    let mut customer = RawClient::login(&b.url, &org.customers[0]).await;
    let chat = org.start_chat(&mut customer, 0, 2451).await;
    let trustee = &org.trustees[0];
    let release = release_entry(&org, chat.id, [25; 32], 2452);
    let (on_b_entry, on_a_entry) = (policy_entry(&org, 7), policy_entry(&org, 8));
    let mut on_a = RawClient::login(&a.url, &org.master).await;
    let mut on_b = RawClient::login(&b.url, &org.master).await;
    let mut on_a_again = RawClient::login(&a.url, &org.master).await;
    let before = head(&mut on_a).await.size;
    let mut t = RawClient::login(&a.url, trustee).await;
    gate.close();
    let (answer, second_head) =
        tokio::join!(t.request(Request::AppendAudit(release.clone())), async {
            // A shows the entry in its tree head once staged, while its commit is held.
            eventually("node A to stage the release entry", async || {
                (head(&mut on_a).await.size > before).then_some(())
            })
            .await;
            // B takes the index A staged the release entry at (B reads what is committed).
            match on_b.request(Request::AppendAudit(on_b_entry.clone())).await {
                Response::Appended { index, .. } => assert_eq!(index, before, "B took A's index"),
                other => panic!("B's entry: {other:?}"),
            }
            // A appends on top: its batch (the release entry) is committed, and refused, first,
            // by the append itself (not the held group commit). The answer waits for the group
            // commit: the gate opens once A's log holds the second entry.
            let (second, ()) = tokio::join!(
                on_a_again.request(Request::AppendAudit(on_a_entry.clone())),
                async {
                    eventually("node A to append its second entry", async || {
                        (head(&mut on_a).await.size == before + 2).then_some(())
                    })
                    .await;
                    gate.open();
                }
            );
            match second {
                Response::Appended { index, head } => {
                    assert_eq!(index, before + 1);
                    head
                }
                other => panic!("A's second entry: {other:?}"),
            }
        });
    match answer {
        Response::Appended { index, .. } => {
            assert_eq!(index, before + 2, "appended again after the two others");
        }
        other => panic!("the trustee was not answered for its entry: {other:?}"),
    }
    let (from_a, from_b) = (head(&mut on_a).await, head(&mut on_b).await);
    assert_eq!(from_a.size, before + 3);
    assert_eq!(
        (from_a.size, from_a.root),
        (from_b.size, from_b.root),
        "node A serves the log the store holds"
    );
    // A reader's check (`audit`): the leaves node A serves make the head it signed.
    let served = leaves(&mut on_a, from_a.size).await;
    assert_eq!(
        merkle::root(&served),
        from_a.root,
        "A's entries make A's head"
    );
    let at = usize::try_from(before).unwrap();
    assert_eq!(
        served[at..],
        [
            on_b_entry.leaf_hash(),
            on_a_entry.leaf_hash(),
            release.leaf_hash()
        ]
    );
    // The head A answered its second entry with was signed over the stored leaves (B's entry
    // below it), not over the refused release entry A had staged there.
    assert_eq!(second_head.size, before + 2);
    assert_eq!(
        second_head.root,
        merkle::root(&served[..at + 2]),
        "A signed its second entry's head over a leaf the store does not hold"
    );
    // An inclusion proof from A for the release entry verifies against that head.
    match on_a
        .request(Request::GetInclusion {
            index: before + 2,
            size: from_a.size,
        })
        .await
    {
        Response::Inclusion(p) => p.verify(&release, &from_a).unwrap(),
        other => panic!("expected an inclusion proof, got {other:?}"),
    }
}

/// A session watching the audit log on node B is told of the entries appended through node A —
/// a policy change (committed at once) and a release entry (staged with its notice, committed
/// with the next batch) — with the size of the log B then serves; another session on B, of the
/// same account, that did not ask `watch_audit` is told nothing. Before, only the sessions on
/// the node that appended were told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_on_another_node_is_told_the_log_grew() {
    let Some(TwoNodes { a, b, .. }) = two_nodes("auditgrew").start() else {
        return;
    };
    let org = Org::setup(&a.url, 2460, "growco", 1, 1).await;
    let mut customer = RawClient::login(&a.url, &org.customers[0]).await;
    let chat = org.start_chat(&mut customer, 0, 2461).await;
    let mut watcher = RawClient::login(&b.url, &org.agents[0]).await;
    watcher.ok(Request::WatchAudit).await;
    let mut not_asking = RawClient::login(&b.url, &org.agents[0]).await;
    let mut reader_b = RawClient::login(&b.url, &org.master).await;
    let mut master_a = RawClient::login(&a.url, &org.master).await;
    let mut trustee_a = RawClient::login(&a.url, &org.trustees[0]).await;

    let release = release_entry(&org, chat.id, [26; 32], 2462);
    for (what, appender, entry) in [
        ("a policy change", &mut master_a, policy_entry(&org, 9)),
        ("a release entry with its notice", &mut trustee_a, release),
    ] {
        let appended = match appender.request(Request::AppendAudit(entry)).await {
            Response::Appended { head, .. } => head,
            other => panic!("{what} through node A: {other:?}"),
        };
        // Told on node B; an earlier append's push (the org's set-up) may come first, smaller.
        let told = watcher
            .expect_push(&format!("audit_grew on node B for {what}"), |p| match p {
                Push::AuditGrew { size } if *size >= appended.size => Some(*size),
                _ => None,
            })
            .await;
        assert_eq!(told, appended.size, "{what}: the size the entry made");
        // The head node B serves at once is that size, and the one node A signed.
        let served = head(&mut reader_b).await;
        assert_eq!(
            (served.size, served.root),
            (appended.size, appended.root),
            "{what}: node B serves the log it told of"
        );
        not_asking
            .expect_no_push("audit_grew without watch_audit", |p| {
                matches!(p, Push::AuditGrew { .. })
            })
            .await;
    }
}
