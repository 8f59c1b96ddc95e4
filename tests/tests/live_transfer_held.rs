//! A transfer to an agent whose client is online (ARCHITECTURE.md, "a held-back epoch record
//! is never used"): bob hears the new epoch's record before the hand-off that makes him a
//! reader of the epochs before it. The proxy holds alice's hand-off on its way to the relay
//! until bob has handled the record and a message carol sent in its epoch, then lets it
//! through. The record is held back — not stored, no secret, nothing sent in it, the message
//! not shown — and judged in full once the hand-off came: accepted with its chain (the message
//! then shown); refused if it does not verify; held back still if the hostile relay withholds
//! the record before it.
//!
//! Until the hand-off is stored the proxy also hides epoch 0's record from bob, as a relay
//! before blind transfers did (and an older node of a mixed-version cluster still does): this
//! relay serves an agent a transfer brought in the earlier records at once (PROTOCOL.md §7.6),
//! so bob's read on the assignment would take the record with its chain and never hold it.
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
    wire::{Frame, Item, Push, Request, Response, Sequenced},
};
use sealdesk_tests::{
    hostile::impostor,
    proxy::{Dir, items_mut},
    timeline::rejected,
    world::{Via, World, events_until, open_chat, texts},
};

/// What the relay, as the proxy shows it to bob, does wrong.
#[derive(Clone, Copy)]
struct Hostile {
    /// Withholds epoch 0's record from bob.
    withholds_record_0: bool,
    /// Delivers epoch 1's record to bob signed by a key of its own.
    forges_record_1: bool,
}

const HONEST: Hostile = Hostile {
    withholds_record_0: false,
    forges_record_1: false,
};

/// The conversation transferred by alice to bob, who is online behind the proxy: the proxy
/// holds alice's hand-off on its way to the relay, so the relay stores and pushes the new
/// epoch's record, then carol's "in between" (epoch 1), before it; bob has handled both. carol
/// said "before" in epoch 0.
struct Live {
    /// Holds the homes (dropped, they are removed).
    _w: World,
    conv: ConversationId,
    bob: Client,
    carol: Client,
}

/// Whether bob is shown item `s` by the relay `h`, `before_hand_off` or after it (an older
/// relay shows no earlier record before).
fn shown(s: &Sequenced, h: Hostile, before_hand_off: bool) -> bool {
    !((h.withholds_record_0 || before_hand_off)
        && matches!(&s.item, Item::Epoch(r) if r.epoch == 0))
}

/// Sets up [`Live`], checking that nothing of the held record is used before the hand-off; with
/// the outcome of the hand-off as bob logged it.
async fn transferred_to_live_bob(h: Hostile) -> (Live, HandOffOutcome) {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice", "bob"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "before").await.unwrap();
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    let mut bob = w.reopen_via("bob", Via::Proxy).await;
    bob.sync_all().await.unwrap();

    let held: Arc<Mutex<Vec<Frame>>> = Arc::new(Mutex::new(Vec::new()));
    let holding = Arc::new(AtomicBool::new(true));
    let forger = impostor(4_242, "mallory", Role::Agent).keys;
    let (kept, hold) = (held.clone(), holding.clone());
    w.proxy()
        .set_hook(move |ctx, mut frame| match (ctx.dir, ctx.account) {
            (Dir::ToRelay, Some("alice"))
                if hold.load(Ordering::SeqCst)
                    && matches!(
                        &frame,
                        Frame::Request {
                            body: Request::PutHandOff(_),
                            ..
                        }
                    ) =>
            {
                kept.lock().unwrap().push(frame);
                Vec::new()
            }
            (Dir::ToClient, Some("bob")) => {
                if h.forges_record_1 {
                    for s in items_mut(&mut frame) {
                        if let Item::Epoch(r) = &mut s.item
                            && r.epoch == 1
                        {
                            r.signature = forger.sign(&r.signed_bytes());
                        }
                    }
                }
                let before = hold.load(Ordering::SeqCst);
                match &mut frame {
                    Frame::Push(Push::Item(s)) if !shown(s, h, before) => Vec::new(),
                    Frame::Response {
                        body: Response::Items { items, .. },
                        ..
                    } => {
                        items.retain(|s| shown(s, h, before));
                        vec![frame]
                    }
                    _ => vec![frame],
                }
            }
            _ => vec![frame],
        });
    let alice_conn = *w.proxy().connections("alice").last().unwrap();
    let between = async {
        // bob takes the assignment and the record, before the hand-off is stored.
        let e = events_until(&mut bob, |e| warns(e, "held back")).await;
        assert_eq!(e.conversation, conv);
        carol.send_text(&conv, "in between").await.unwrap();
        events_until(&mut bob, |e| {
            matches!(
                &e.kind,
                EventKind::Entry {
                    entry: LogEntry::Rejected { epoch: 1, .. }
                }
            )
        })
        .await;
        nothing_used(&mut bob, &conv).await;
        // The hand-off goes on to the relay, which pushes it to bob.
        holding.store(false, Ordering::SeqCst);
        let frames: Vec<Frame> = held.lock().unwrap().drain(..).collect();
        assert_eq!(frames.len(), 1, "alice sent one hand-off");
        for f in frames {
            assert!(w.proxy().inject(alice_conn, Dir::ToRelay, f));
        }
        let e = events_until(&mut bob, |e| {
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
    };
    let (transferred, outcome) = tokio::join!(alice.transfer(&conv, "bob"), between);
    transferred.unwrap();
    let l = Live {
        _w: w,
        conv,
        bob,
        carol,
    };
    (l, outcome)
}

fn is_message(e: &Event, said: &str) -> bool {
    matches!(&e.kind, EventKind::Entry { entry: LogEntry::Message { text, .. } } if text == said)
}

fn warns(e: &Event, what: &str) -> bool {
    matches!(&e.kind, EventKind::Warning { text } if text.contains(what))
}

/// Before the hand-off, the held record is not used: no epoch, no secret, no send.
async fn nothing_used(bob: &mut Client, conv: &ConversationId) {
    for epoch in [0, 1] {
        assert!(bob.account().epoch(conv, epoch).unwrap().is_none());
        assert!(bob.account().secret(conv, epoch).unwrap().is_none());
    }
    assert!(bob.send_text(conv, "too early").await.is_err());
    let read = texts(bob, conv);
    assert!(read.is_empty(), "{read:?}");
}

#[tokio::test]
async fn a_record_pushed_before_the_hand_off_is_held_back_then_taken_with_its_chain() {
    let (mut l, outcome) = transferred_to_live_bob(HONEST).await;
    assert!(
        matches!(&outcome, HandOffOutcome::Opened { epochs } if epochs == &[0]),
        "{outcome:?}"
    );
    let status = |e| l.bob.account().epoch(&l.conv, e).unwrap().unwrap().status;
    assert_eq!(status(0), EpochStatus::HandedOver);
    assert_eq!(status(1), EpochStatus::Member);
    // Epoch 0 read through the hand-off; epoch 1 as its member, the message that came while
    // its record was held back too.
    let read = texts(&l.bob, &l.conv);
    for said in ["carol: before", "carol: in between"] {
        assert!(read.iter().any(|t| t == said), "{said:?} missing: {read:?}");
    }
    l.carol.send_text(&l.conv, "after").await.unwrap();
    events_until(&mut l.bob, |e| is_message(e, "after")).await;

    l.bob.send_text(&l.conv, "bob here").await.unwrap();
    l.carol.sync_all().await.unwrap();
    assert!(texts(&l.carol, &l.conv).contains(&"bob: bob here".to_owned()));
}

/// The hostile relay keeps epoch 0's record from bob: epoch 1's record has no chain, after the
/// hand-off too, and stays held back — never used.
#[tokio::test]
async fn a_record_whose_chain_never_comes_is_never_used() {
    let (mut l, outcome) = transferred_to_live_bob(Hostile {
        withholds_record_0: true,
        forges_record_1: false,
    })
    .await;
    assert!(
        matches!(outcome, HandOffOutcome::Refused { .. }),
        "{outcome:?}"
    );
    nothing_used(&mut l.bob, &l.conv).await;
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
    let (mut l, _) = transferred_to_live_bob(Hostile {
        withholds_record_0: false,
        forges_record_1: true,
    })
    .await;
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
    assert!(rejected(&l.bob, &l.conv).len() >= 2);
}
