//! A release driven step by step at the client level, for the tests where a hostile relay
//! stands between the steps: a customer's consent ([`consenting_carol`]), the master's signed
//! request submitted ([`submit_release`]) and the trustees answering what is pending
//! ([`trustees_answer`]). A whole release in one call is [`crate::transcript::release`].

use sealdesk_client::Client;
use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    policy::VerifiedPolicy,
    release::{ConsentToken, Justification, ReleaseRequest, Scope},
    wire::{Request, Response},
};

use crate::{
    identity::now,
    world::{Via, World, open_chat},
};

/// Customer carol (connected `via`) in a new chat where she said `said`, and the full consent
/// (an hour, "review") she granted for it.
pub async fn consenting_carol(
    w: &World,
    via: Via,
    said: &str,
) -> (Client, ConversationId, ConsentToken) {
    let mut carol = w.user_via("carol", Role::Customer, via).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, said).await.unwrap();
    let token = carol
        .grant_consent(&conv, None, Scope::Full, 3600, "review")
        .await
        .unwrap();
    (carol, conv, token)
}

/// The master signs a release request for `token` and submits it to the trustees.
pub async fn submit_release(
    master: &Client,
    policy: &VerifiedPolicy,
    token: &ConsentToken,
) -> ReleaseRequest {
    let req = ReleaseRequest::sign(
        &mut sealdesk_client::rng().unwrap(),
        master.account().keys(),
        policy,
        token.epochs,
        Justification::Consent(token.clone()),
        now(),
    )
    .unwrap();
    match master
        .session()
        .request(Request::SubmitRelease(req.clone()))
        .await
        .unwrap()
    {
        Response::Ok => req,
        other => panic!("{other:?}"),
    }
}

/// Trustees that answer whatever is pending now (a request already submitted); returns each
/// one's outcomes.
pub async fn trustees_answer(w: &World, names: &[&str], via: Via) -> Vec<Vec<String>> {
    let mut outcomes = Vec::new();
    for n in names {
        let mut t = w.reopen_via(n, via).await;
        outcomes.push(
            t.trustee_pending()
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.outcome)
                .collect(),
        );
        t.close().await;
    }
    outcomes
}

/// Org [`crate::world::ORG`] (trustees 2 of 3) with agent alice, customer carol (connected
/// `via`) in a chat where she said `said` under her consent, and the master's release request
/// for it submitted — no trustee has answered yet. Returns carol's client and the chat.
pub async fn release_asked(w: &World, via: Via, said: &str) -> (Client, ConversationId) {
    let mut master = w.org_master(&["alice"], None).await;
    let (carol, conv, token) = consenting_carol(w, via, said).await;
    let policy = master.latest_policy(crate::world::ORG).await.unwrap();
    submit_release(&master, &policy, &token).await;
    master.close().await;
    (carol, conv)
}
