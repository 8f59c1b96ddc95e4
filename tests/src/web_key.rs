//! Web keys and open tokens (PROTOCOL.md, open tokens): a web key an org's master certifies
//! and publishes, and the open tokens it signs for a customer key and a visitor id — the set-up
//! of the tests of an org that requires a token to open a conversation.

use sealdesk_protocol::{
    ids::ConversationId,
    keys::IdentityKeys,
    open_token::{OpenToken, OpenTokenParams, WebKeyCertificate},
    wire::Request,
};

use crate::{
    identity::{Identity, now, rng},
    org::Org,
    raw::RawClient,
};

/// `org`'s master's certificate for `web` as its web key "www", valid a day from `from`.
pub fn certificate(org: &Org, web: &IdentityKeys, from: u64) -> WebKeyCertificate {
    WebKeyCertificate::issue(
        &org.master.keys,
        &org.policy,
        "www",
        web.signing_public(),
        from,
        86_400,
    )
    .unwrap()
}

/// Publishes `cert` on the relay at `url` as `org`'s master; the relay must accept it.
pub async fn publish(url: &str, org: &Org, cert: WebKeyCertificate) {
    let mut master = RawClient::login(url, &org.master).await;
    master.ok(Request::PublishWebKey(cert)).await;
    master.close().await;
}

/// A web key (from `seed`) that `org`'s master certified for a day (from ten seconds ago) and
/// published on the relay at `url`.
pub async fn certified(url: &str, org: &Org, seed: u64) -> IdentityKeys {
    let web = IdentityKeys::generate(&mut rng(seed));
    publish(url, org, certificate(org, &web, now() - 10)).await;
    web
}

/// An open token signed by `web` for `who` opening with `org` as `visitor`, issued at `now`
/// and valid `valid` seconds.
pub fn token(
    web: &IdentityKeys,
    org: &str,
    visitor: &[u8],
    who: &Identity,
    now: u64,
    valid: u64,
) -> OpenToken {
    OpenToken::issue(
        web,
        &OpenTokenParams {
            org,
            visitor,
            customer: who.key(),
            now,
            valid_secs: valid,
        },
    )
    .unwrap()
}

/// The request opening a conversation (its id from `seed`) with `org`: with `token` when given,
/// as an org that requires one wants, else without.
pub fn open_request(org: &str, seed: u64, token: Option<OpenToken>) -> Request {
    let conversation = ConversationId::random(&mut rng(seed));
    match token {
        Some(token) => Request::OpenConversationWithToken {
            org: org.to_owned(),
            conversation,
            token,
        },
        None => Request::OpenConversation {
            org: org.to_owned(),
            conversation,
        },
    }
}
