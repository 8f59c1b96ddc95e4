//! Conversations transferred more than once (issue 22): back to an agent who held it before
//! (alice → bob → alice), and on to a third agent (alice → bob → dave). The agent who holds it
//! at the end sends, and the customer reads that message. And a transfer under a policy
//! without history hand-off (`org create --no-history-handoff`): the new agent starts blind,
//! answers, and the customer reads it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{add_agent as agent, ok, org_and_conversation, org_and_conversation_with, sealdesk};
use sealdesk_tests::world::World;

/// `from` transfers `conv` to `to`.
async fn transfer(w: &World, conv: &str, from: &str, to: &str) {
    ok(w, from, &["transfer", "--conversation", conv, "--to", to]).await;
}

/// `who` sends `text` in `conv`, which must succeed.
async fn say(w: &World, conv: &str, who: &str, text: &str) {
    ok(w, who, &["send", "--conversation", conv, text]).await;
}

/// carol's `history` shows `text` as said by `who`.
async fn carol_reads(w: &World, conv: &str, who: &str, text: &str) {
    let history = ok(w, "carol", &["history", "--conversation", conv]).await;
    assert!(
        history
            .lines()
            .any(|l| l.starts_with('#') && l.contains(&format!("{who}: {text}"))),
        "carol should read {who}'s {text:?}:\n{history}"
    );
}

#[tokio::test]
async fn a_conversation_transferred_back_can_be_answered_by_its_first_agent() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    agent(&w, "bob").await;
    say(&w, &conv, "alice", "let me look").await;
    transfer(&w, &conv, "alice", "bob").await;
    say(&w, &conv, "bob", "bob here").await;
    transfer(&w, &conv, "bob", "alice").await;

    eprintln!(
        "DEBUG {}",
        ok(&w, "alice", &["history", "--conversation", &conv]).await
    );
    say(&w, &conv, "alice", "alice again, it ships today").await;
    carol_reads(&w, &conv, "alice", "alice again, it ships today").await;
    // bob, transferred out, can no longer send; alice reads everything, bob's message too.
    let bob = sealdesk(&w, "bob", &["send", "--conversation", &conv, "late"]).await;
    assert!(!bob.ok, "bob sent after the transfer back:\n{}", bob.stdout);
    let alice = ok(&w, "alice", &["history", "--conversation", &conv]).await;
    for said in ["carol: my order 1234 never came", "bob: bob here"] {
        assert!(alice.contains(said), "{said:?} missing:\n{alice}");
    }
}

#[tokio::test]
async fn a_second_hop_transferee_can_answer() {
    let w = World::new().await;
    let conv = org_and_conversation(&w).await;
    agent(&w, "bob").await;
    agent(&w, "dave").await;
    transfer(&w, &conv, "alice", "bob").await;
    say(&w, &conv, "bob", "bob here").await;
    transfer(&w, &conv, "bob", "dave").await;

    say(&w, &conv, "dave", "dave here, it ships today").await;
    carol_reads(&w, &conv, "dave", "dave here, it ships today").await;
    let dave = ok(&w, "dave", &["history", "--conversation", &conv]).await;
    // Through bob's hand-off (epoch 0 he holds by alice's, and epoch 1), dave reads it all.
    for said in ["carol: my order 1234 never came", "bob: bob here"] {
        assert!(dave.contains(said), "{said:?} missing:\n{dave}");
    }
    assert!(!dave.contains("refused"), "{dave}");
}

#[tokio::test]
async fn without_history_hand_off_the_new_agent_starts_blind_and_answers() {
    let w = World::new().await;
    let conv = org_and_conversation_with(&w, &["--no-history-handoff"]).await;
    // What the customer is shown of the policy says so.
    let shown = ok(&w, "carol", &["org", "show", "acme"]).await;
    assert!(
        shown.contains(
            "If your chat is transferred, the new agent cannot read the earlier messages."
        ) && shown.contains("hand-off off"),
        "{shown}"
    );
    agent(&w, "bob").await;
    say(&w, &conv, "alice", "let me look").await;
    transfer(&w, &conv, "alice", "bob").await;
    say(&w, &conv, "bob", "bob here, it ships today").await;
    carol_reads(&w, &conv, "bob", "bob here, it ships today").await;
    carol_reads(&w, &conv, "alice", "let me look").await;
    // bob reads what was said since he came in, nothing before, and refuses nothing.
    let bob = ok(&w, "bob", &["history", "--conversation", &conv]).await;
    assert!(bob.contains("bob: bob here, it ships today"), "{bob}");
    for before in [
        "my order 1234 never came",
        "let me look",
        "REFUSED",
        "refused",
    ] {
        assert!(!bob.contains(before), "{before:?} in bob's history:\n{bob}");
    }
}
