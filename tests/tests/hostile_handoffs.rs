//! The hostile relay forges the chain of hand-offs of a conversation transferred twice (alice →
//! bob → dave, PROTOCOL.md §7.6 "Chains"). bob hands dave epoch 0, which he holds only by
//! alice's hand-off; the relay swaps that first hand-off, as delivered to dave, for one signed by
//! an agent who never held the conversation, for a chain that does not lead back to a member of
//! epoch 0, or for one to a key no epoch record certifies. Each time dave refuses bob's
//! hand-off: epoch 0 stays unreadable to him, and the message in it is not shown.
//!
//! Hermetic: loopback only, temporary directories, the fast test KDF, no timing assertions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::{
    Account, Client, account::LogEntry, client::HistoryLine, handoff::HandOffOutcome,
};
use sealdesk_protocol::{
    card::{Role, VerifiedCard},
    epoch::HandOff,
    ids::ConversationId,
    keys::{IdentityKeys, SigningPublicKey},
    secret::EpochSecret,
    wire::Item,
};
use sealdesk_tests::{
    copy_keys,
    hostile::{edit_for, impostor},
    identity::rng,
    timeline::lines,
    world::{PASS, Via, World, open_chat, texts},
};

/// The conversation after alice → bob → dave, with carol's first message in epoch 0 and bob's
/// in epoch 1; alice's keys, bob's card, mallory's keys (an agent of the org who never held
/// it), and epoch 0's secret.
struct Twice {
    w: World,
    conv: ConversationId,
    alice: IdentityKeys,
    bob: VerifiedCard,
    mallory: IdentityKeys,
    k0: EpochSecret,
}

async fn transferred_twice() -> Twice {
    let w = World::with_proxy().await;
    let _master = w
        .org_master(&["alice", "bob", "dave", "mallory"], None)
        .await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "before").await.unwrap();
    let mut alice = w.reopen_via("alice", Via::Relay).await;
    alice.sync_all().await.unwrap();
    alice.transfer(&conv, "bob").await.unwrap();
    let mut bob = w.reopen_via("bob", Via::Relay).await;
    bob.sync_all().await.unwrap();
    bob.send_text(&conv, "bob here").await.unwrap();
    bob.transfer(&conv, "dave").await.unwrap();
    let mallory = w.reopen_via("mallory", Via::Relay).await;
    Twice {
        conv,
        alice: copy_keys(alice.account().keys()),
        bob: bob.account().card().clone(),
        mallory: copy_keys(mallory.account().keys()),
        k0: carol.account().secret(&conv, 0).unwrap().unwrap(),
        w,
    }
}

/// A hand-off of epoch 0 by `by` to `to`, of `conv`, sealing a made-up secret (dave cannot open
/// a link of the chain anyway: only its signature and who made it count).
fn forged(by: &IdentityKeys, to: &VerifiedCard, conv: ConversationId) -> HandOff {
    let k = EpochSecret::random(&mut rng(7));
    HandOff::create(&mut rng(8), by, to, conv, &[(0, &k)], 300).unwrap()
}

/// dave, through the proxy, is delivered `link` in place of alice's hand-off to bob.
async fn dave_with_link(t: &Twice, link: HandOff) -> Client {
    dave_with_links(t, vec![(t.alice.signing_public(), link)]).await
}

/// dave, through the proxy, is delivered each `(from, forged)`'s hand-off in place of the one
/// of epoch 0 that `from` made.
async fn dave_with_links(t: &Twice, links: Vec<(SigningPublicKey, HandOff)>) -> Client {
    t.w.proxy().set_hook(edit_for("dave", move |s| {
        if let Item::HandOff(h) = &mut s.item
            && h.epochs.iter().any(|(e, _)| *e == 0)
            && let Some((_, forged)) = links.iter().find(|(from, _)| *from == h.from)
        {
            *h = forged.clone();
        }
    }));
    let mut dave = t.w.reopen_via("dave", Via::Proxy).await;
    dave.sync_all().await.unwrap();
    dave
}

/// What became of the hand-offs addressed to dave: (epochs, outcome).
fn dave_handoffs(dave: &Client, conv: &ConversationId) -> Vec<(Vec<u32>, HandOffOutcome)> {
    lines(dave, conv)
        .into_iter()
        .filter_map(|l| match l {
            HistoryLine::Item {
                entry:
                    LogEntry::HandOff {
                        to,
                        epochs,
                        outcome,
                        ..
                    },
                ..
            } if to == "dave" => Some((epochs, outcome)),
            _ => None,
        })
        .collect()
}

/// bob's hand-off of epoch 0 to dave is refused, and epoch 0 stays closed to dave; his
/// hand-off of epoch 1 (a member's, apart) still opens.
fn refused(dave: &Client, conv: &ConversationId) {
    let outcomes = dave_handoffs(dave, conv);
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    for (epochs, outcome) in &outcomes {
        if epochs.contains(&0) {
            assert!(
                matches!(outcome, HandOffOutcome::Refused { reason } if reason.contains("not a member")),
                "{outcomes:?}"
            );
        } else {
            assert_eq!(*outcome, HandOffOutcome::Opened { epochs: vec![1] });
        }
    }
    assert!(dave.account().secret(conv, 0).unwrap().is_none());
    assert_eq!(texts(dave, conv), ["bob: bob here"]);
}

/// The honest chain: dave opens epochs 0 and 1 and reads carol's first message.
#[tokio::test]
async fn the_honest_chain_opens_for_the_second_transferee() {
    let t = transferred_twice().await;
    t.w.proxy().set_hook(|_, frame| vec![frame]);
    let mut dave = t.w.reopen_via("dave", Via::Proxy).await;
    dave.sync_all().await.unwrap();
    // bob's own epoch first (opened by the member rule), then epoch 0 he holds by alice's
    // hand-off (opened through the chain).
    assert_eq!(
        dave_handoffs(&dave, &t.conv),
        [
            (vec![1], HandOffOutcome::Opened { epochs: vec![1] }),
            (vec![0], HandOffOutcome::Opened { epochs: vec![0] }),
        ]
    );
    assert_eq!(texts(&dave, &t.conv), ["carol: before", "bob: bob here"]);
}

/// mallory, a certified agent of the org who never held the conversation, "hands" bob epoch 0.
#[tokio::test]
async fn a_link_signed_by_an_agent_who_did_not_hold_the_conversation_is_refused() {
    let t = transferred_twice().await;
    let link = forged(&t.mallory, &t.bob, t.conv);
    let dave = dave_with_link(&t, link).await;
    refused(&dave, &t.conv);
}

/// The chain does not lead back to epoch 0's members: bob "holds" epoch 0 by a hand-off from
/// dave, who held it by nothing earlier.
#[tokio::test]
async fn a_chain_that_does_not_lead_back_to_epoch_0_is_refused() {
    let t = transferred_twice().await;
    let dave_keys = copy_keys(Account::open(&t.w.home("dave"), PASS).unwrap().keys());
    let link = forged(&dave_keys, &t.bob, t.conv);
    let dave = dave_with_link(&t, link).await;
    refused(&dave, &t.conv);
}

/// alice's hand-off went to a key no epoch record names (an impostor "erin" the org's policy
/// never certified for this conversation), and that key hands epoch 0 (the true secret) on to
/// dave in place of bob: it holds nothing by a hand-off to a key no record certifies.
#[tokio::test]
async fn a_link_to_a_key_the_policy_does_not_certify_is_refused() {
    let t = transferred_twice().await;
    let stranger = impostor(41, "erin", Role::Agent);
    let dave_card = Account::open(&t.w.home("dave"), PASS)
        .unwrap()
        .card()
        .clone();
    let to_stranger = forged(&t.alice, &stranger.card, t.conv);
    let on_to_dave = HandOff::create(
        &mut rng(9),
        &stranger.keys,
        &dave_card,
        t.conv,
        &[(0, &t.k0)],
        300,
    )
    .unwrap();
    let dave = dave_with_links(
        &t,
        vec![
            (t.alice.signing_public(), to_stranger),
            (t.bob.signing_key, on_to_dave),
        ],
    )
    .await;
    refused(&dave, &t.conv);
}
