//! Flows a person must be able to finish, through the `sealdesk` binary (issue 22 §1): erasing
//! one conversation leaves the others and the local copy readable; a refused `open` creates
//! nothing; the org's master finds its org's conversations and the consents shared with it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{json, sealdesk};
use sealdesk_client::ClientError;
use sealdesk_protocol::{
    card::Role,
    release::Scope,
    wire::{ErrorCode, Request},
};
use sealdesk_tests::{
    identity::Identity,
    raw::RawClient,
    world::{MASTER, ORG, World, open_chat},
};
use serde_json::Value;

/// The conversations `name` lists, by id.
async fn listed(w: &World, name: &str) -> Vec<Value> {
    json(w, name, &["conversations"]).await["conversations"]
        .as_array()
        .unwrap()
        .clone()
}

fn texts_of(history: &Value) -> Vec<String> {
    history["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["entry"]["text"].as_str().map(str::to_owned))
        .collect()
}

/// Issue 22 §1 item 1: after `erase --conversation X`, `conversations` and `history` of
/// another conversation work, and X's local copy stays readable, marked erased; the agent's
/// client keeps working too, and nothing more can be sent in X.
#[tokio::test]
async fn erasing_one_conversation_leaves_the_others_and_the_local_copy_readable() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let erased = open_chat(&mut carol).await;
    let kept = open_chat(&mut carol).await;
    carol.send_text(&erased, "erase me").await.unwrap();
    carol.send_text(&kept, "keep me").await.unwrap();
    carol.close().await;
    let alice = &mut org.agents[0];
    alice.sync_all().await.unwrap();

    let (x, y) = (erased.to_string(), kept.to_string());
    json(&w, "carol", &["erase", "--conversation", &x]).await;

    let rows = listed(&w, "carol").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        let is_erased = row["conversation"] == x.as_str();
        assert_eq!(row["erased"], is_erased, "{row}");
    }
    let other = json(&w, "carol", &["history", "--conversation", &y]).await;
    assert_eq!(texts_of(&other), ["keep me"]);
    assert_eq!(other["erased"], false);
    let copy = json(&w, "carol", &["history", "--conversation", &x]).await;
    assert_eq!(texts_of(&copy), ["erase me"]);
    assert_eq!(copy["erased"], true);
    let text = sealdesk(&w, "carol", &["history", "--conversation", &x]).await;
    assert!(
        text.ok && text.stdout.contains("erased on the relay"),
        "{}",
        text.stdout
    );

    let sent = sealdesk(&w, "carol", &["send", "--conversation", &x, "hi"]).await;
    assert!(
        !sent.ok && sent.stderr.contains("erased"),
        "{}{}",
        sent.stdout,
        sent.stderr
    );
    let sent = sealdesk(&w, "carol", &["send", "--conversation", &y, "still here"]).await;
    assert!(sent.ok, "{}", sent.stderr);

    // The agent's client: the erased conversation is kept locally, marked, the other synced.
    alice.sync_all().await.unwrap();
    assert!(alice.meta(&erased).unwrap().erased);
    assert!(!alice.meta(&kept).unwrap().erased);
    let texts = sealdesk_tests::world::texts(alice, &kept);
    assert_eq!(texts, ["carol: keep me", "carol: still here"]);
}

/// Issue 22 §1 item 3: `open` with a wrong `--org-fingerprint` is refused before the relay
/// creates anything: neither the customer nor the agent lists a conversation afterwards, on
/// first contact and with the org already pinned.
#[tokio::test]
async fn a_refused_open_creates_no_conversation() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    w.user("carol", Role::Customer).await.close().await;
    let wrong = org.agents[0].account().fingerprint().to_string();
    let open_with = |fp: String| {
        let w = &w;
        async move {
            sealdesk(
                w,
                "carol",
                &["open", "--org", "acme", "--org-fingerprint", &fp],
            )
            .await
        }
    };

    let refused = open_with(wrong.clone()).await;
    assert!(
        !refused.ok
            && refused
                .stderr
                .contains("does not match the fingerprint you gave"),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    assert!(listed(&w, "carol").await.is_empty());
    let alice = &mut org.agents[0];
    alice.sync_all().await.unwrap();
    assert!(alice.account().conversations().unwrap().is_empty());

    // Pinned now (with the right fingerprint): a wrong one is still refused before creation.
    let opened = open_with(org.fingerprint.clone()).await;
    assert!(opened.ok, "{}", opened.stderr);
    let refused = open_with(wrong).await;
    assert!(!refused.ok, "{}", refused.stdout);
    assert_eq!(listed(&w, "carol").await.len(), 1);
    alice.sync_all().await.unwrap();
    assert_eq!(alice.account().conversations().unwrap().len(), 1);
}

/// Issue 22 §1 item 6: the org's master finds what to unlock. `conversations` shows the org's
/// conversations (metadata only: customer, agent, status, times, consents, tickets) and
/// `consent list` the consents customers shared with the business.
#[tokio::test]
async fn the_owner_sees_the_orgs_conversations_and_the_consents_shared_with_it() {
    let w = World::new().await;
    let org = w.org(&["alice"], None).await;
    org.master.close().await;
    let mut carol = w.user("carol", Role::Customer).await;
    let with_consent = open_chat(&mut carol).await;
    let without = open_chat(&mut carol).await;
    carol
        .send_text(&with_consent, "my card was charged twice")
        .await
        .unwrap();
    let token = carol
        .grant_consent(&with_consent, None, Scope::Full, 86_400, "fraud check")
        .await
        .unwrap();
    carol.close().await;

    let view = json(&w, MASTER, &["conversations"]).await;
    let rows = view["conversations"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{view}");
    for row in rows {
        assert_eq!(row["customer"], "carol");
        assert_eq!(row["agent"], "alice");
        assert_eq!(row["org"], "acme");
        assert_eq!(row["legal_hold"], false);
        assert!(row["created_at"].as_u64().unwrap() > 0);
        assert!(row["last_activity"].as_u64().unwrap() >= row["created_at"].as_u64().unwrap());
        if row["conversation"] == with_consent.to_string().as_str() {
            assert_eq!(row["status"], "consent shared");
            assert_eq!(row["consents"], serde_json::json!([token.id.to_string()]));
        } else {
            assert_eq!(row["conversation"], without.to_string().as_str());
            assert_eq!(row["status"], "open");
            assert_eq!(row["consents"], serde_json::json!([]));
        }
        assert!(!row.to_string().contains("charged twice"));
    }
    let text = sealdesk(&w, MASTER, &["conversations"]).await;
    assert!(
        text.ok && text.stdout.contains("customer carol") && text.stdout.contains("consent shared"),
        "{}{}",
        text.stdout,
        text.stderr
    );

    let consents = json(&w, MASTER, &["consent", "list"]).await;
    let rows = consents["consents"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{consents}");
    assert_eq!(rows[0]["consent"], token.id.to_string().as_str());
    assert_eq!(rows[0]["conversation"], with_consent.to_string().as_str());
    assert_eq!(rows[0]["purpose"], "fraud check");
    assert_eq!(rows[0]["state"], "shared");
}

/// The org view is served only to the org's master: a customer, an agent of the org and the
/// master of another org are refused with `Forbidden`, and so is anyone asking for an org
/// that does not exist (the same answer: org names are not an oracle of this request).
#[tokio::test]
async fn the_org_view_is_refused_to_anyone_but_the_orgs_master() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    open_chat(&mut carol).await;
    carol.close().await;
    let ask = |org: &str| Request::OrgConversations {
        org: org.to_owned(),
    };
    for (seed, name, role) in [
        (901, "mallory", Role::Customer),
        (902, "eve", Role::Agent),
        (903, "other-owner", Role::Master),
    ] {
        let mut raw = RawClient::login(&w.url, &Identity::new(seed, name, role)).await;
        assert_eq!(raw.refused(ask(ORG)).await, ErrorCode::Forbidden, "{name}");
        assert_eq!(raw.refused(ask("no-such-org")).await, ErrorCode::Forbidden);
        raw.close().await;
    }
    // The org's own agent, through the library: the role is refused before asking; the
    // master's answer lists the conversation.
    assert!(matches!(
        org.agents[0].org_conversations().await,
        Err(ClientError::WrongRole { .. })
    ));
    let view = org.master.org_conversations().await.unwrap();
    assert_eq!(view.len(), 1);
    assert_eq!(view[0].info.customer, "carol");
}
