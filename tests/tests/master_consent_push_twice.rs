//! A consent pushed twice to the org master's Rust client is harmless (PROTOCOL.md §13.11: in a
//! cluster a node may push a consent the master already has, e.g. a forward and its make-up on
//! different nodes the master is connected to). The master's client takes nothing from an
//! `item` push (it lists consents with `org_conversations`): handling the same push twice
//! yields no event and no error, and the listing holds the consent once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::Client;
use sealdesk_protocol::{
    card::Role,
    ids::TokenId,
    release::Scope,
    wire::{Item, Push},
};
use sealdesk_tests::{
    STEP,
    world::{World, open_chat},
};

/// The next push to `master` of consent `id` (other pushes are handled and dropped).
async fn consent_push(master: &mut Client, id: &TokenId) -> Push {
    loop {
        let push = tokio::time::timeout(STEP, master.session().next_push())
            .await
            .expect("the consent pushed within the step")
            .expect("the session is open");
        if matches!(&push, Push::Item(s) if matches!(&s.item, Item::Consent(t) if t.id == *id)) {
            return push;
        }
        master.handle_push(push).await.unwrap().ok();
    }
}

#[tokio::test]
async fn a_consent_pushed_twice_to_the_master_is_listed_once() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol
        .send_text(&conv, "please check my refund")
        .await
        .unwrap();
    let token = carol
        .grant_consent(&conv, None, Scope::Full, 3600, "refund check")
        .await
        .unwrap();
    let push = consent_push(&mut org.master, &token.id).await;
    for time in ["first", "second"] {
        let events = match org.master.handle_push(push.clone()).await {
            Ok(Ok(events)) => events,
            Ok(Err(_)) => panic!("the {time} push of the consent is not taken as an item"),
            Err(e) => panic!("the {time} push of the consent failed: {e}"),
        };
        assert!(
            events.is_empty(),
            "the {time} push shows nothing: {events:?}"
        );
    }
    let listed = org.master.org_conversations().await.unwrap();
    let ours: Vec<_> = listed
        .iter()
        .filter(|v| v.info.conversation == conv)
        .flat_map(|v| v.info.consents.iter())
        .collect();
    assert_eq!(ours.len(), 1, "the consent is listed once: {ours:?}");
    assert_eq!(ours[0].id, token.id);
}
