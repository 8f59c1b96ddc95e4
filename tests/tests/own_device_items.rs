//! Issue 20: this account's own items from another device, pushed (PROTOCOL.md §13.11). The
//! relay pushes a message or an epoch record to every connection of its audience but the one
//! that stored it, so a second device of the same account — here a copy of the customer's home,
//! taken after epoch 0 — is pushed its twin's items at once. The client takes them through its
//! one ingest path: its twin's message is shown as its own line, once; its counter is never
//! sealed again here; its twin's epoch is followed without a `stale_epoch`. A pushed "own" item
//! that does not verify (a bad signature, another conversation's message) is refused, not shown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::{
    Client,
    account::LogEntry,
    client::{Event, EventKind},
};
use sealdesk_protocol::{
    keys::Signature,
    wire::{Frame, Item, Push, Request, Sequenced},
};
use sealdesk_tests::{
    now,
    proxy::{Ctx, Dir},
    world::{TwoDevices, World, carol_on_two_devices, events_until, open_chat, texts},
};

/// The message line with `text` that a push brought to `c`.
async fn pushed_line(c: &mut Client, text: &str) -> LogEntry {
    let e = events_until(c, |e| is_line(e, text)).await;
    match e.kind {
        EventKind::Entry { entry } => entry,
        other => panic!("expected a line, got {other:?}"),
    }
}

fn is_line(e: &Event, want: &str) -> bool {
    matches!(&e.kind, EventKind::Entry { entry: LogEntry::Message { text, .. } } if text == want)
}

fn is_rejected(e: &Event, at: u64) -> bool {
    matches!(&e.kind, EventKind::Entry { entry: LogEntry::Rejected { seq, .. } } if *seq == at)
}

#[tokio::test]
async fn a_twin_device_shows_its_twins_lines_as_its_own_by_push_and_never_reuses_a_counter() {
    let w = World::with_proxy().await;
    let TwoDevices {
        mut laptop,
        mut phone,
        conv,
    } = carol_on_two_devices(&w, Some(3)).await;

    let seq = laptop.send_text(&conv, "from the laptop").await.unwrap();
    match pushed_line(&mut phone, "from the laptop").await {
        LogEntry::Message {
            seq: at,
            mine,
            sender,
            ..
        } => {
            assert_eq!(at, seq, "shown under the relay's number");
            assert!(mine, "the twin's line is shown as the account's own");
            assert_eq!(sender, "carol");
        }
        other => panic!("expected a message, got {other:?}"),
    }

    // The phone's copied vault says it made epoch 0 too: it seals there, after the laptop's
    // counter it was pushed, and the laptop is pushed that line in turn.
    phone.send_text(&conv, "from the phone").await.unwrap();
    assert!(matches!(
        pushed_line(&mut laptop, "from the phone").await,
        LogEntry::Message { mine: true, .. }
    ));
    // Epoch 0 is full: the laptop opens epoch 1, pushed to the phone with its line; the phone
    // follows it (its key made it, its vault did not: it opens an epoch of its own to seal in).
    laptop.send_text(&conv, "laptop, new epoch").await.unwrap();
    pushed_line(&mut phone, "laptop, new epoch").await;
    phone.send_text(&conv, "phone, after it").await.unwrap();
    pushed_line(&mut laptop, "phone, after it").await;

    let want = [
        "carol: first",
        "carol: from the laptop",
        "carol: from the phone",
        "carol: laptop, new epoch",
        "carol: phone, after it",
    ];
    assert_eq!(texts(&phone, &conv), want, "each line once, in order");
    assert_eq!(texts(&laptop, &conv), want, "each line once, in order");

    // No (epoch, counter) of the account was ever sealed twice, refused or not.
    w.assert_no_counter_sealed_twice("carol");
}

#[tokio::test]
async fn a_pushed_own_item_that_does_not_verify_is_refused() {
    let w = World::with_proxy().await;
    let TwoDevices {
        mut laptop,
        mut phone,
        conv,
    } = carol_on_two_devices(&w, Some(3)).await;
    let phone_conn = *w.proxy().connections("carol").last().unwrap();

    // The laptop's message, its signature broken on the way to the phone.
    w.proxy().set_hook(move |ctx: &Ctx<'_>, mut f: Frame| {
        if ctx.conn == phone_conn
            && ctx.dir == Dir::ToClient
            && let Frame::Push(Push::Item(Sequenced {
                item: Item::Message(env),
                ..
            })) = &mut f
        {
            let mut b = env.signature.to_bytes();
            b[0] ^= 1;
            env.signature = Signature::from_bytes(&b).unwrap();
        }
        vec![f]
    });
    let forged = laptop.send_text(&conv, "tampered").await.unwrap();
    events_until(&mut phone, |e| is_rejected(e, forged)).await;
    w.proxy().passthrough();

    // Another conversation's message of the account, pushed as the next item of this one.
    let other = open_chat(&mut laptop).await;
    laptop.send_text(&other, "elsewhere").await.unwrap();
    let env = w
        .proxy()
        .sent_by("carol")
        .into_iter()
        .find_map(|f| match f {
            Frame::Request {
                body: Request::Send(env),
                ..
            } if env.header.conversation == other => Some(env),
            _ => None,
        })
        .unwrap();
    let at = forged + 1;
    let push = Frame::Push(Push::Item(Sequenced {
        conversation: conv,
        seq: at,
        stored_at: now(),
        item: Item::Message(env),
    }));
    assert!(w.proxy().inject(phone_conn, Dir::ToClient, push));
    events_until(&mut phone, |e| is_rejected(e, at)).await;

    assert_eq!(
        texts(&phone, &conv),
        ["carol: first"],
        "neither forged item is shown as a line"
    );
}
