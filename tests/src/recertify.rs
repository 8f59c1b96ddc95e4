//! The set-up the agent re-certification tests share (issue 22: `agent_key_push`,
//! `recertified_agent`): customer carol in a conversation with agent alice of org `acme`, a
//! new machine for alice (new keys, a card not registered anywhere) for the master to
//! re-certify.

use std::path::PathBuf;

use sealdesk_client::{Account, Client};
use sealdesk_protocol::{
    card::{IdentityCard, Role},
    ids::ConversationId,
    keys::IdentityKeys,
};

use crate::{
    identity::copy_keys,
    raw::RawClient,
    world::{FAST_KDF, Org, PASS, Via, World},
};

/// Alice's new machine: an agent account in its own home, not registered anywhere.
pub struct NewAlice {
    /// The new account's home (`alice-new` in the world).
    pub home: PathBuf,
    /// Its card, for the master to re-certify.
    pub card: IdentityCard,
    /// Its fingerprint, as the master checks it.
    pub fingerprint: String,
    /// A copy of its keys, for raw sessions.
    pub keys: IdentityKeys,
}

/// Creates alice's new machine in `w` (account `alice`, role agent, home `alice-new`).
pub fn new_alice(w: &World) -> NewAlice {
    let home = w.home("alice-new");
    let account = Account::create(&home, PASS, FAST_KDF, "alice", Role::Agent).unwrap();
    NewAlice {
        card: account.card().card().clone(),
        fingerprint: account.fingerprint().to_string(),
        keys: copy_keys(account.keys()),
        home,
    }
}

/// Org `acme` with agent alice, and customer carol (connected `via`) in a conversation with
/// alice opened against the org's fingerprint, where she has said "hello".
pub async fn carol_with_alice(w: &World, via: Via) -> (Org, Client, ConversationId) {
    let org = w.org(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, via).await;
    let conv = carol
        .open_conversation("acme", Some(&org.fingerprint))
        .await
        .unwrap()
        .conversation;
    carol.send_text(&conv, "hello").await.unwrap();
    (org, carol, conv)
}

/// A session of `who`'s key that signs in unregistered (asserted): its card, of the same key,
/// names `{name}-elsewhere`, which the relay does not hold for that key, so it is refused
/// everything, as a session the key opens after its name was re-certified away is. A close of
/// the key for its re-certified name must leave it open.
pub async fn unregistered_session(url: &str, who: &crate::Identity) -> RawClient {
    let card = IdentityCard::issue(
        &who.keys,
        &format!("{}-elsewhere", who.name()),
        who.card.role,
        1_700_000_000,
    )
    .expect("a card of the same key under another name");
    let mut session = RawClient::connect(url).await;
    let welcome = session.auth(&who.keys, card.card().clone()).await;
    assert!(!welcome.registered, "a card the relay holds for this key");
    session
}
