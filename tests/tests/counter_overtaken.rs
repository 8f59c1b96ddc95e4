//! Two processes of one account sending at once (SECURITY.md, "Several processes of one
//! account"): each reserves its counter under the vault's lock, but the relay refuses a counter
//! at or below the highest it stored, so a send that reserved first and reached the relay second
//! is refused `counter_reused`. It takes a fresh counter and stays in the epoch; before, it
//! opened a new epoch (the once-flaky `cli/tests/flows_concurrent.rs` test under load). The
//! hostile proxy makes the overtaking certain: it holds the first process's `Send` until the
//! relay stored the second's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use sealdesk_protocol::{
    card::Role,
    wire::{Frame, Request, Response},
};
use sealdesk_tests::proxy::Dir;
use sealdesk_tests::world::{Via, World, open_chat, texts};

#[tokio::test]
async fn a_send_overtaken_by_another_process_of_the_account_stays_in_the_epoch() {
    let w = World::with_proxy().await;
    w.org_master(&["alice"], None).await.close().await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Proxy).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "first").await.unwrap();
    let held_conn = w.proxy().connections("carol")[0];
    let mut other = w.reopen_via("carol", Via::Proxy).await;

    // Hold carol's next `Send` on the first connection; let it go once the relay answered a
    // `Send` of the other process (whose counter is higher: it reserved after).
    let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    let injector = w.proxy().injector();
    let mut held: Option<Frame> = None;
    let mut released = false;
    w.proxy().set_hook(move |ctx, frame| {
        if released {
            return vec![frame];
        }
        match (&frame, ctx.dir) {
            (
                Frame::Request {
                    body: Request::Send(env),
                    ..
                },
                Dir::ToRelay,
            ) if ctx.conn == held_conn && held.is_none() => {
                held_tx.send(env.header.counter).unwrap();
                held = Some(frame);
                vec![]
            }
            (
                Frame::Response {
                    body: Response::Stored { .. },
                    ..
                },
                Dir::ToClient,
            ) if ctx.conn != held_conn && matches!(ctx.request, Some(Request::Send(_))) => {
                if let Some(f) = held.take() {
                    released = true;
                    injector.inject(held_conn, Dir::ToRelay, f);
                }
                vec![frame]
            }
            _ => vec![frame],
        }
    });

    let first = tokio::spawn(async move {
        carol.send_text(&conv, "reserved first").await.unwrap();
        carol
    });
    let held_counter = held_rx.recv().await.unwrap();
    other.send_text(&conv, "stored first").await.unwrap();
    let mut carol = first.await.unwrap();

    let mut sent = HashSet::new();
    let mut epochs_put = 0;
    for f in w.proxy().sent_by("carol") {
        if let Frame::Request { body, .. } = f {
            match body {
                Request::Send(env) => {
                    sent.insert((env.header.epoch, env.header.counter));
                }
                Request::PutEpoch(_) => epochs_put += 1,
                _ => {}
            }
        }
    }
    assert_eq!(epochs_put, 1, "only epoch 0 was opened: {sent:?}");
    assert!(
        sent.iter().all(|(epoch, _)| *epoch == 0),
        "every message in epoch 0: {sent:?}"
    );
    // The held counter was refused and never sealed again; the retry took a fresh one.
    assert!(sent.contains(&(0, held_counter)), "{sent:?}");
    assert_eq!(
        sent.len(),
        4,
        "first, held, stored first, retried: {sent:?}"
    );

    carol.sync(&conv).await.unwrap();
    let shown = texts(&carol, &conv);
    for text in [
        "carol: first",
        "carol: stored first",
        "carol: reserved first",
    ] {
        assert_eq!(
            shown.iter().filter(|t| *t == text).count(),
            1,
            "{text}: {shown:?}"
        );
    }
}
