//! The genuine transcript export the verifier tests start from: a real end-to-end release
//! (real relay, real trustees) of a conversation over two epochs. The client-level verifier
//! tests (`tests/tests/client_transcript.rs`) forge it every way a file can lie; the CLI's
//! (`cli/tests/verify.rs`) check the exit statuses of `sealdesk transcript verify` on it.

use std::time::Duration;

use sealdesk_client::{
    Client,
    escrow::Transcript,
    transcript::{Anchors, ExportFile},
};
use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    release::{Justification, Scope},
};

use crate::world::{Via, World, open_chat, released_once};

/// A released conversation and its full export, with the anchors a reader would hold.
pub struct Genuine {
    /// The relay and the accounts' homes.
    pub w: World,
    /// The org's master, who unlocked and exported the transcript.
    pub master: Client,
    /// The customer.
    pub carol: Client,
    /// The released conversation.
    pub conv: ConversationId,
    /// The org's fingerprint and the relay's log key.
    pub anchors: Anchors,
    /// The master's full (unredacted) export.
    pub full: ExportFile,
}

/// Runs a release while trustee-1 and trustee-2 serve; asserts each released once.
pub async fn release(
    w: &World,
    master: &mut Client,
    conv: ConversationId,
    j: Justification,
) -> Transcript {
    let unlock = master.unlock(&conv, j, None, Duration::from_secs(30), |_| {});
    let (r, outcomes) = w
        .serving(&["trustee-1", "trustee-2"], Via::Relay, unlock)
        .await;
    let t = r.unwrap();
    released_once(&outcomes);
    t
}

/// `customer` grants the master its consent of `scope` to read `conv` (an hour, for "quality
/// review"), and the master releases the conversation under it ([`release`]).
pub async fn release_by_consent(
    w: &World,
    customer: &mut Client,
    master: &mut Client,
    conv: ConversationId,
    scope: Scope,
) -> Transcript {
    let token = customer
        .grant_consent(&conv, None, scope, 3600, "quality review")
        .await
        .unwrap();
    release(w, master, conv, Justification::Consent(token)).await
}

/// Agent `from` catches up on `conv`, tells the customer and hands the conversation to agent
/// `to` (its next epoch).
pub async fn hand_over(from: &mut Client, conv: &ConversationId, to: &str) {
    from.sync_all().await.unwrap();
    from.send_text(conv, "let me pass you to billing")
        .await
        .unwrap();
    from.transfer(conv, to).await.unwrap();
}

/// A conversation over two epochs (alice hands it to dave), released under carol's consent
/// of `scope`.
pub async fn genuine(scope: Scope) -> Genuine {
    let w = World::new().await;
    let mut org = w.org(&["alice", "dave"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();
    carol
        .send_text(&conv, "my card is 4111 1111 1111 1111")
        .await
        .unwrap();
    let mut dave = org.agents.remove(1);
    let mut alice = org.agents.remove(0);
    hand_over(&mut alice, &conv, "dave").await;
    dave.sync_all().await.unwrap();
    dave.send_text(&conv, "refund issued").await.unwrap();
    carol.sync_all().await.unwrap();
    carol.send_text(&conv, "thanks").await.unwrap();
    let mut master = org.master;
    let t = release_by_consent(&w, &mut carol, &mut master, conv, scope).await;
    assert_eq!(t.records.len(), 2);
    let full = master.export_transcript(&conv, false).await.unwrap();
    let anchors = Anchors {
        org_fingerprint: Some(org.fingerprint.clone()),
        log_keys: vec![master.session().welcome().log_key],
    };
    for c in [alice, dave] {
        c.close().await;
    }
    Genuine {
        w,
        master,
        carol,
        conv,
        anchors,
        full,
    }
}
