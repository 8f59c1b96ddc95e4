//! A transfer under a policy without history hand-off (PROTOCOL.md §7.6): the new agent starts
//! blind. The relay serves it the earlier epochs' *records* (never their messages), so it
//! checks the chain from the customer's epoch 0 as a member does and accepts the epoch the
//! transfer opened; it sends, and the customer reads it. A record the chain does not lead to —
//! the transfer's record re-signed by a certified agent that was no member of epoch 0, or the
//! real one with epoch 0's record withheld — is refused.
//!
//! Hermetic: loopback only, temporary directories, the fast test KDF, no timing assertions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::{Account, Client, account::EpochStatus, client::OrgSpec};
use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    wire::{Frame, Item, Response, Sequenced, SkippedRange},
};
use sealdesk_tests::{
    copy_keys,
    proxy::{Ctx, Dir},
    timeline::items,
    world::{PASS, Via, World, open_chat, spec, texts},
};

/// Org acme without history hand-off (agents alice, bob and dave certified, their clients
/// closed); carol opened a conversation and said something, alice answered and transferred it
/// to bob. Returns carol's client and the conversation.
async fn transferred_blind(w: &World, carol_via: Via) -> (Client, ConversationId) {
    let mut master = w.org_master(&["alice", "bob", "dave"], None).await;
    master
        .create_org(&OrgSpec {
            no_history_handoff: true,
            ..spec(None, None)
        })
        .await
        .unwrap();
    let summary = master.latest_policy("acme").await.unwrap().summary();
    assert!(
        summary.contains("the new agent cannot read the earlier messages"),
        "{summary}"
    );
    master.close().await;
    let mut carol = w.user_via("carol", Role::Customer, carol_via).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "my order never came").await.unwrap();
    let mut alice = w.reopen("alice").await;
    alice.sync_all().await.unwrap();
    alice.send_text(&conv, "let me look").await.unwrap();
    assert_eq!(alice.transfer(&conv, "bob").await.unwrap(), 1);
    alice.close().await;
    (carol, conv)
}

/// Applies `edit` to the items and skipped runs of a history page (other frames unchanged).
fn edit_history(
    mut frame: Frame,
    edit: impl FnOnce(&mut Vec<Sequenced>, &mut Vec<SkippedRange>),
) -> Frame {
    if let Frame::Response {
        body: Response::Items { items, skipped, .. },
        ..
    } = &mut frame
    {
        edit(items, skipped);
    }
    frame
}

fn status(c: &Client, conv: &ConversationId, epoch: u32) -> EpochStatus {
    c.account().epoch(conv, epoch).unwrap().unwrap().status
}

#[tokio::test]
async fn the_new_agent_starts_blind_and_answers() {
    let w = World::new().await;
    let (mut carol, conv) = transferred_blind(&w, Via::Relay).await;
    let mut bob = w.reopen("bob").await;
    bob.sync_all().await.unwrap();
    // The chain from carol's epoch 0: verified, bob no member of it; the transfer's epoch his.
    assert_eq!(status(&bob, &conv, 0), EpochStatus::NotMember);
    assert_eq!(status(&bob, &conv, 1), EpochStatus::Member);
    assert!(texts(&bob, &conv).is_empty(), "{:?}", texts(&bob, &conv));

    // The relay serves bob epoch 0's record and nothing else of it: its messages are a run.
    let served = items(&bob, &conv).await;
    let epoch0: Vec<&Item> = served
        .iter()
        .map(|s| &s.item)
        .filter(|i| match i {
            Item::Epoch(r) => r.epoch == 0,
            Item::Message(e) => e.header.epoch == 0,
            _ => false,
        })
        .collect();
    assert!(
        matches!(epoch0.as_slice(), [Item::Epoch(_)]),
        "bob was served more of epoch 0 than its record: {epoch0:?}"
    );

    bob.send_text(&conv, "bob here, it ships today")
        .await
        .unwrap();
    carol.sync_all().await.unwrap();
    let said = texts(&carol, &conv);
    assert!(
        said.iter().any(|t| t.contains("bob here, it ships today")),
        "{said:?}"
    );
    // carol reads the whole conversation; bob still reads only what was said since.
    assert!(said.iter().any(|t| t.contains("let me look")), "{said:?}");
    bob.sync_all().await.unwrap();
    assert_eq!(
        texts(&bob, &conv),
        vec!["bob: bob here, it ships today".to_owned()]
    );
}

/// Bob reads through a relay that lies about the chain: the transfer's record re-signed by
/// dave (a certified agent of the org, no member of epoch 0), or epoch 0's record withheld as
/// a skipped run. bob refuses the forged record, holds back the one without its chain (never
/// used), and cannot send either way.
#[tokio::test]
async fn a_first_record_the_chain_does_not_lead_to_is_refused() {
    for forge in [true, false] {
        let w = World::with_proxy().await;
        let (_carol, conv) = transferred_blind(&w, Via::Relay).await;
        let dave = Account::open(&w.home("dave"), PASS).unwrap();
        let dave_keys = copy_keys(dave.keys());
        w.proxy().set_hook(move |ctx: &Ctx<'_>, frame| {
            if ctx.dir != Dir::ToClient {
                return vec![frame];
            }
            vec![edit_history(frame, |items, skipped| {
                if forge {
                    for s in items.iter_mut() {
                        if let Item::Epoch(r) = &mut s.item
                            && r.epoch == 1
                        {
                            r.creator = dave_keys.signing_public();
                            r.signature = dave_keys.sign(&r.signed_bytes());
                        }
                    }
                } else if let Some(at) = items
                    .iter()
                    .position(|s| matches!(&s.item, Item::Epoch(r) if r.epoch == 0))
                {
                    let seq = items.remove(at).seq;
                    skipped.push(SkippedRange {
                        from: seq,
                        to: seq,
                        epoch: Some(0),
                    });
                    skipped.sort_by_key(|r| r.from);
                }
            })]
        });
        let mut bob = w.reopen_via("bob", Via::Proxy).await;
        bob.sync_all().await.unwrap();
        if forge {
            match status(&bob, &conv, 1) {
                EpochStatus::Refused(reason) => assert!(
                    reason.contains("the creator was not a member of the previous epoch"),
                    "{reason}"
                ),
                other => panic!("the forged record accepted ({other:?})"),
            }
        } else {
            // Its chain withheld, the record is held back (`client/src/client/held.rs`): not
            // stored at all, so never used.
            assert!(
                bob.account().epoch(&conv, 1).unwrap().is_none(),
                "a record without its chain was stored"
            );
        }
        assert!(bob.send_text(&conv, "hello").await.is_err());
    }
}
