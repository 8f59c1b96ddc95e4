//! The hostile relay tampers with epochs: members added to epoch records, escrow blobs swapped
//! or stripped, an old epoch record (or another conversation's) replayed as new, and a
//! member's `epoch_full` refusal held back until another member has opened the next epoch.
//! Each epoch it altered is refused with the named reason and its messages are not shown; the
//! epochs in force stay, and no epoch is opened twice.
//!
//! Hermetic: loopback only, temporary directories, the fast test KDF. No timing assertions:
//! the only waits are generous bounds ([`sealdesk_tests::STEP`]) that keep a broken test from
//! hanging. `SECURITY.md` maps each attack to its test and the observed result; the other
//! `hostile_*.rs` files hold the rest of the hostile relay's attacks, and
//! [`sealdesk_tests::hostile`] its shared hooks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::{
    Client, ClientError,
    account::{EpochStatus, LogEntry},
    client::HistoryLine,
};
use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    wire::{Frame, Item, Response},
};
use sealdesk_tests::{
    STEP, copy_keys,
    hostile::{edit_for, impostor, replace_for},
    proxy::{Ctx, Dir, edit_items},
    timeline::{items, lines, rejected},
    world::{ORG, Via, World, open_chat, texts},
};

// ---- epoch records and escrow --------------------------------------------------------------

/// The epoch entries of the timeline: (epoch, verdict).
fn epoch_entries(c: &Client, conv: &ConversationId) -> Vec<(u32, EpochStatus)> {
    lines(c, conv)
        .into_iter()
        .filter_map(|l| match l {
            HistoryLine::Item {
                entry: LogEntry::Epoch { epoch, status, .. },
                ..
            } => Some((epoch, status)),
            _ => None,
        })
        .collect()
}

fn status(c: &Client, conv: &ConversationId, epoch: u32) -> EpochStatus {
    c.account().epoch(conv, epoch).unwrap().unwrap().status
}

fn refused_because(st: &EpochStatus, why: &str) {
    match st {
        EpochStatus::Refused(reason) => assert!(reason.contains(why), "{reason}"),
        other => panic!("epoch accepted ({other:?}); expected a refusal for {why:?}"),
    }
}

/// The relay adds a member of its own to epoch records: as delivered (signature broken), and
/// re-signed with its own key as the creator. The agent refuses both epochs and every message
/// in them and cannot send; the customer refuses its own epoch read back modified.
#[tokio::test]
async fn member_added_to_an_epoch_record_is_refused() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let a = open_chat(&mut carol).await;
    let b = open_chat(&mut carol).await;
    carol.send_text(&a, "hello a").await.unwrap();
    carol.send_text(&b, "hello b").await.unwrap();
    let spy = impostor(9_009, "mallory", Role::Agent);
    let spy_card = spy.card();
    let spy_keys = spy.keys;
    w.proxy().set_hook(move |ctx, frame| {
        if ctx.dir != Dir::ToClient {
            return vec![frame];
        }
        vec![edit_items(frame, |s| {
            if let Item::Epoch(r) = &mut s.item {
                r.members.push(spy_card.clone());
                r.sealed_secrets.push(r.sealed_secrets[0].clone());
                if s.conversation == b {
                    r.creator = spy_keys.signing_public();
                    r.signature = spy_keys.sign(&r.signed_bytes());
                }
            }
        })]
    });
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    refused_because(&status(&alice, &a, 0), "bad signature on epoch record");
    refused_because(&status(&alice, &b, 0), "created by the customer");
    for (conv, text) in [(a, "hello a"), (b, "hello b")] {
        assert!(texts(&alice, &conv).is_empty(), "{text} shown");
        let r = rejected(&alice, &conv);
        assert!(r.len() == 1 && r[0].contains("was refused"), "{r:?}");
        let err = alice.send_text(&conv, "reply").await.unwrap_err();
        assert!(
            matches!(&err, ClientError::CannotSend { reason, .. } if reason.contains("refused")),
            "{err}"
        );
    }
    assert!(!alice.account().peer_blocked("mallory").unwrap());

    let mut erin = w.user_via("erin", Role::Customer, Via::Proxy).await;
    let err = erin.open_conversation(ORG, None).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::EpochRefused { epoch: 0, reason, .. } if reason.contains("bad signature")),
        "{err}"
    );
}

/// The relay swaps two trustees' escrow blobs, strips one, or (with a cheating customer who
/// re-signs) swaps blobs and replaces the master's: refused by the signature, by the structure
/// check, and by the byte-for-byte escrow recomputation (`EscrowMismatch`).
#[tokio::test]
async fn swapped_or_stripped_escrow_blobs_are_refused() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let mut convs = Vec::new();
    for i in 0..4 {
        let c = open_chat(&mut carol).await;
        carol.send_text(&c, &format!("secret {i}")).await.unwrap();
        convs.push(c);
    }
    let carol_keys = copy_keys(carol.account().keys());
    let targets = convs.clone();
    w.proxy().set_hook(edit_for("alice", move |s| {
        let Item::Epoch(r) = &mut s.item else { return };
        match targets.iter().position(|c| *c == s.conversation) {
            Some(0) => r.escrow.trustees.swap(0, 1),
            Some(1) => {
                r.escrow.trustees.pop();
            }
            Some(2) => {
                r.escrow.trustees.swap(0, 1);
                r.signature = carol_keys.sign(&r.signed_bytes());
            }
            Some(3) => {
                r.escrow.master = r.escrow.trustees[0].clone();
                r.signature = carol_keys.sign(&r.signed_bytes());
            }
            _ => {}
        }
    }));
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    refused_because(
        &status(&alice, &convs[0], 0),
        "bad signature on epoch record",
    );
    refused_because(
        &status(&alice, &convs[1], 0),
        "one escrow share per trustee",
    );
    refused_because(
        &status(&alice, &convs[2], 0),
        "does not match the recomputation",
    );
    refused_because(
        &status(&alice, &convs[3], 0),
        "does not match the recomputation",
    );
    for c in &convs {
        assert!(texts(&alice, c).is_empty());
        assert!(alice.account().secret(c, 0).unwrap().is_none());
        // Refused for the refused epoch, not for any failure.
        let err = alice.send_text(c, "reply").await.unwrap_err();
        assert!(
            matches!(&err, ClientError::CannotSend { conversation, reason }
                if *conversation == c.to_string() && reason.contains("epoch 0 was refused")),
            "{err}"
        );
    }
}

/// The relay replays the conversation's old epoch-0 record as a new item, and an epoch record
/// of another conversation: both refused ("a second record for epoch 0", wrong conversation),
/// the epochs in force are untouched and the conversation goes on.
#[tokio::test]
async fn old_epoch_record_replayed_as_new_is_refused() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], Some(3)).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    let other = open_chat(&mut carol).await;
    for i in 0..4 {
        carol.send_text(&conv, &format!("m{i}")).await.unwrap(); // m3 opens epoch 1
    }
    assert!(carol.account().epoch(&conv, 1).unwrap().is_some());
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    let all = items(&carol, &conv).await;
    let e0 = all
        .iter()
        .find(|s| matches!(&s.item, Item::Epoch(r) if r.epoch == 0))
        .unwrap()
        .item
        .clone();
    let foreign = items(&carol, &other)
        .await
        .into_iter()
        .find(|s| matches!(s.item, Item::Epoch(_)))
        .unwrap()
        .item;
    let next = carol.meta(&conv).unwrap().cursor + 1;
    w.proxy().set_hook({
        let mut first = replace_for("alice", conv, next, e0);
        let mut second = replace_for("alice", conv, next + 1, foreign);
        move |ctx, f| {
            let f = first(ctx, f).pop().unwrap();
            second(ctx, f)
        }
    });
    assert_eq!(carol.send_text(&conv, "carrier 1").await.unwrap(), next);
    assert_eq!(carol.send_text(&conv, "carrier 2").await.unwrap(), next + 1);
    alice.sync_all().await.unwrap();
    let log = epoch_entries(&alice, &conv);
    assert_eq!(log.len(), 4, "{log:?}");
    refused_because(&log[2].1, "a second record for epoch 0");
    refused_because(&log[3].1, "another conversation");
    assert_eq!(status(&alice, &conv, 0), EpochStatus::Member);
    assert_eq!(status(&alice, &conv, 1), EpochStatus::Member);

    w.proxy().passthrough();
    alice.send_text(&conv, "still here").await.unwrap();
    carol.send_text(&conv, "after").await.unwrap();
    alice.sync_all().await.unwrap();
    let t = texts(&alice, &conv);
    assert_eq!(
        t,
        [
            "carol: m0",
            "carol: m1",
            "carol: m2",
            "carol: m3",
            "alice: still here",
            "carol: after"
        ]
    );
}

// ---- a full epoch --------------------------------------------------------------------------

/// Two members reach the rotation limit together: the agent's message is refused as
/// `epoch_full`, and by the time it reads the history the customer has opened the next epoch.
/// The agent sends in that epoch instead of opening one more, and is never told `stale_epoch`.
#[tokio::test]
async fn a_member_refused_in_a_full_epoch_follows_the_epoch_another_member_opened() {
    use sealdesk_protocol::wire::ErrorCode;

    let w = World::with_proxy().await;
    drop(w.org_master(&["alice"], Some(3)).await.close().await);
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    for i in 0..3 {
        carol.send_text(&conv, &format!("m{i}")).await.unwrap();
    }
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    // Alice's count says epoch 0 has room (as when carol's messages reached the relay after
    // alice's last read), so she sends there and the relay refuses it as full.
    let mut st = alice.account().epochs(&conv).unwrap().pop().unwrap();
    assert_eq!(st.record.epoch, 0);
    st.messages = 0;
    alice.account().save_epoch(&conv, &st).unwrap();

    // The refusal is held back until carol has opened epoch 1.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    w.proxy().set_hook(move |ctx: &Ctx<'_>, frame| {
        let full = matches!(
            &frame,
            Frame::Response {
                body: Response::Error {
                    code: ErrorCode::EpochFull,
                    ..
                },
                ..
            }
        );
        if ctx.dir == Dir::ToClient && ctx.account == Some("alice") && full {
            let _ = tx.send((ctx.conn, frame));
            return vec![];
        }
        vec![frame]
    });
    {
        let send = alice.send_text(&conv, "from alice");
        tokio::pin!(send);
        let (conn, held) = tokio::select! {
            held = rx.recv() => held.expect("the refusal was held"),
            done = &mut send => panic!("alice's send finished before its refusal: {done:?}"),
        };
        carol.send_text(&conv, "m3").await.unwrap();
        assert_eq!(
            carol
                .account()
                .epochs(&conv)
                .unwrap()
                .pop()
                .unwrap()
                .record
                .epoch,
            1,
            "carol opened epoch 1"
        );
        w.proxy().passthrough();
        assert!(w.proxy().inject(conn, Dir::ToClient, held));
        tokio::time::timeout(STEP, &mut send)
            .await
            .expect("alice's send finished")
            .unwrap();
    }
    assert_eq!(
        alice
            .account()
            .epochs(&conv)
            .unwrap()
            .pop()
            .unwrap()
            .record
            .epoch,
        1,
        "alice sent in carol's epoch, without opening another"
    );
    carol.sync_all().await.unwrap();
    let epochs: Vec<u32> = carol
        .account()
        .epochs(&conv)
        .unwrap()
        .iter()
        .map(|e| e.record.epoch)
        .collect();
    assert_eq!(epochs, vec![0, 1], "no extra epoch");
    assert_eq!(
        texts(&carol, &conv),
        vec![
            "carol: m0",
            "carol: m1",
            "carol: m2",
            "carol: m3",
            "alice: from alice"
        ]
    );
    let stale = w.proxy().seen().into_iter().any(|s| {
        matches!(
            s.frame,
            Frame::Response {
                body: Response::Error {
                    code: ErrorCode::StaleEpoch,
                    ..
                },
                ..
            }
        )
    });
    assert!(!stale, "no stale_epoch on the way");
}
