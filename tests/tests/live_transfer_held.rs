//! A transfer to an agent whose client is online (ARCHITECTURE.md, "a held-back epoch record
//! is never used"): bob hears the new epoch's record before the hand-off that makes him a
//! reader of the epochs before it. The proxy serves bob the relay's view as it was between
//! the two (the earlier epochs' items not yet his, the hand-off's push held) until the test
//! lets the hand-off through. The record is held back — not stored, no secret, nothing sent
//! in it, a message of its epoch not shown — and judged in full once the hand-off came:
//! accepted with its chain; refused if it does not verify; held back still if the hostile
//! relay keeps withholding the record before it.
//!
//! Hermetic: loopback only, temporary directories, the fast test KDF; every wait is for an
//! event.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use sealdesk_client::{
    Client,
    account::{EpochStatus, LogEntry},
    client::{Event, EventKind},
    handoff::HandOffOutcome,
};
use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    wire::{Frame, Item, Push, Response, Sequenced},
};
use sealdesk_tests::{
    hostile::impostor,
    proxy::Dir,
    world::{Via, World, events_until, open_chat, texts},
};

/// What the relay, as the proxy shows it to bob, does besides the timing.
#[derive(Clone, Copy)]
struct Hostile {
    /// Keeps withholding epoch 0's record from bob, after the hand-off too.
    withholds_record_0: bool,
    /// Delivers epoch 1's record to bob signed by a key of its own.
    forges_record_1: bool,
}

const HONEST: Hostile = Hostile {
    withholds_record_0: false,
    forges_record_1: false,
};

/// The conversation transferred by alice to bob, who is online behind the proxy and has
/// handled what the relay pushed before the hand-off (his view held at "between the record
/// and the hand-off"), with carol's "before" in epoch 0.
struct Live {
    w: World,
    conv: ConversationId,
    bob: Client,
    carol: Client,
    /// The proxy still serves bob the view before the hand-off.
    between: Arc<AtomicBool>,
    /// The hand-off pushes held back from bob meanwhile.
    held: Arc<Mutex<Vec<Frame>>>,
}

/// Whether bob is shown item `s`: before the hand-off, no item of epoch 0 nor the hand-off
/// (he is no reader of them yet); a relay that withholds epoch 0's record, never that.
fn shown(s: &Sequenced, between: bool, h: Hostile) -> bool {
    match &s.item {
        Item::Epoch(r) if r.epoch == 0 => !between && !h.withholds_record_0,
        Item::Message(env) if env.header.epoch == 0 => !between,
        Item::HandOff(_) => !between,
        _ => true,
    }
}

async fn transferred_to_live_bob(h: Hostile) -> Live {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice", "bob"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "before").await.unwrap();
    let mut alice = w.reopen_via("alice", Via::Relay).await;
    alice.sync_all().await.unwrap();
    let mut bob = w.reopen_via("bob", Via::Proxy).await;
    bob.sync_all().await.unwrap();

    let between = Arc::new(AtomicBool::new(true));
    let held = Arc::new(Mutex::new(Vec::new()));
    let forger = impostor(4_242, "mallory", Role::Agent).keys;
    let (b, kept) = (between.clone(), held.clone());
    w.proxy().set_hook(move |ctx, mut frame| {
        if ctx.dir != Dir::ToClient || ctx.account != Some("bob") {
            return vec![frame];
        }
        let between = b.load(Ordering::SeqCst);
        if h.forges_record_1 {
            for s in sealdesk_tests::proxy::items_mut(&mut frame) {
                if let Item::Epoch(r) = &mut s.item
                    && r.epoch == 1
                {
                    r.signature = forger.sign(&r.signed_bytes());
                }
            }
        }
        match &mut frame {
            Frame::Push(Push::Item(s)) if between && matches!(s.item, Item::HandOff(_)) => {
                kept.lock().unwrap().push(frame);
                Vec::new()
            }
            Frame::Push(Push::Item(s)) if !shown(s, between, h) => Vec::new(),
            Frame::Response {
                body: Response::Items { items, .. },
                ..
            } => {
                items.retain(|s| shown(s, between, h));
                vec![frame]
            }
            _ => vec![frame],
        }
    });
    alice.transfer(&conv, "bob").await.unwrap();
    // bob takes the assignment and reads the conversation as it was before the hand-off.
    let held_back = events_until(&mut bob, |e| warns(e, "held back")).await;
    assert_eq!(held_back.conversation, conv);
    Live {
        w,
        conv,
        bob,
        carol,
        between,
        held,
    }
}

fn is_message(e: &Event, said: &str) -> bool {
    matches!(&e.kind, EventKind::Entry { entry: LogEntry::Message { text, .. } } if text == said)
}

fn warns(e: &Event, what: &str) -> bool {
    matches!(&e.kind, EventKind::Warning { text } if text.contains(what))
}

/// Ends the view before the hand-off and delivers its held push; waits for bob's hand-off line.
async fn hand_off_arrives(l: &mut Live) -> HandOffOutcome {
    l.between.store(false, Ordering::SeqCst);
    let pushes: Vec<Frame> = l.held.lock().unwrap().drain(..).collect();
    assert!(!pushes.is_empty(), "the hand-off was pushed to bob");
    for f in &pushes {
        assert_eq!(l.w.proxy().inject_to_client("bob", f), 1);
    }
    let e = events_until(&mut l.bob, |e| {
        matches!(
            &e.kind,
            EventKind::Entry {
                entry: LogEntry::HandOff { .. }
            }
        )
    })
    .await;
    match e.kind {
        EventKind::Entry {
            entry: LogEntry::HandOff { outcome, .. },
        } => outcome,
        other => panic!("{other:?}"),
    }
}

/// Before the hand-off, the held record is not used: no epoch, no secret, no send.
async fn nothing_used(l: &mut Live) {
    for epoch in [0, 1] {
        assert!(l.bob.account().epoch(&l.conv, epoch).unwrap().is_none());
        assert!(l.bob.account().secret(&l.conv, epoch).unwrap().is_none());
    }
    assert!(l.bob.send_text(&l.conv, "too early").await.is_err());
    assert!(
        texts(&l.bob, &l.conv).is_empty(),
        "{:?}",
        texts(&l.bob, &l.conv)
    );
}

#[tokio::test]
async fn a_record_pushed_before_the_hand_off_is_held_back_then_taken_with_its_chain() {
    let mut l = transferred_to_live_bob(HONEST).await;
    nothing_used(&mut l).await;

    let outcome = hand_off_arrives(&mut l).await;
    assert!(
        matches!(&outcome, HandOffOutcome::Opened { epochs } if epochs == &[0]),
        "{outcome:?}"
    );
    let status = |e| l.bob.account().epoch(&l.conv, e).unwrap().unwrap().status;
    assert_eq!(status(0), EpochStatus::HandedOver);
    assert_eq!(status(1), EpochStatus::Member);
    // Epoch 0 read through the hand-off, epoch 1 as its member.
    l.carol.send_text(&l.conv, "after").await.unwrap();
    events_until(&mut l.bob, |e| is_message(e, "after")).await;
    assert_eq!(texts(&l.bob, &l.conv), ["carol: before", "carol: after"]);

    l.bob.send_text(&l.conv, "bob here").await.unwrap();
    l.carol.sync_all().await.unwrap();
    assert!(texts(&l.carol, &l.conv).contains(&"bob: bob here".to_owned()));
}

/// The hostile relay keeps epoch 0's record from bob: epoch 1's record has no chain, after the
/// hand-off too, and stays held back — never used.
#[tokio::test]
async fn a_record_whose_chain_never_comes_is_never_used() {
    let mut l = transferred_to_live_bob(Hostile {
        withholds_record_0: true,
        forges_record_1: false,
    })
    .await;
    let outcome = hand_off_arrives(&mut l).await;
    assert!(
        matches!(outcome, HandOffOutcome::Refused { .. }),
        "{outcome:?}"
    );
    nothing_used(&mut l).await;
    l.carol.send_text(&l.conv, "after").await.unwrap();
    events_until(&mut l.bob, |e| {
        matches!(
            &e.kind,
            EventKind::Entry {
                entry: LogEntry::Rejected { epoch: 1, .. }
            }
        )
    })
    .await;
    assert!(texts(&l.bob, &l.conv).is_empty());
}

/// The hostile relay forges epoch 1's record as bob gets it: held back while its chain is
/// missing, then refused for good once the hand-off brought the chain — never used.
#[tokio::test]
async fn a_held_record_that_does_not_verify_with_its_chain_is_refused() {
    let mut l = transferred_to_live_bob(Hostile {
        withholds_record_0: false,
        forges_record_1: true,
    })
    .await;
    hand_off_arrives(&mut l).await;
    let st = l.bob.account().epoch(&l.conv, 1).unwrap();
    match st.map(|s| s.status) {
        Some(EpochStatus::Refused(why)) => assert!(why.contains("signature"), "{why}"),
        other => panic!("epoch 1 not refused: {other:?}"),
    }
    assert!(l.bob.account().secret(&l.conv, 1).unwrap().is_none());
    assert!(l.bob.send_text(&l.conv, "answer").await.is_err());
    l.carol.send_text(&l.conv, "after").await.unwrap();
    events_until(&mut l.bob, |e| {
        matches!(
            &e.kind,
            EventKind::Entry {
                entry: LogEntry::Rejected { epoch: 1, .. }
            }
        )
    })
    .await;
    assert_eq!(texts(&l.bob, &l.conv), ["carol: before"]);
}
