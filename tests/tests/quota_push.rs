//! The `quota_warning` push (issue 25, PROTOCOL.md §13.12): a stored-bytes quota reaching 80%
//! is told to every account it concerns, not only to the sender of the message that brought it
//! there — the org's agents (one who sent nothing included) and master for the org's quota,
//! every session of the account for its own, whatever brought it there (a read receipt too) —
//! once at the crossing, and again at each sign-in while it stays there: an agent's for each
//! org that certifies it, a master's for each org it is the master of, found through the org
//! index (built at start for a store that has none).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    message::ContentKind,
    wire::{ByteQuota, Push, QuotaScope, Request, Response},
};
use std::path::Path;

use sealdesk_server::{
    config::RelayConfig,
    relay::ORG_INDEX_FILLED,
    store::{Collection, PgStore, SledStore, Store},
};
use sealdesk_tests::{
    Chat,
    identity::{Identity, now},
    org::Org,
    pg,
    raw::RawClient,
    relay::{spawn_relay_in_with, spawn_relay_with, stop_relay},
};

/// The body of each text message, and its ciphertext's size (the body and the 16-byte tag).
const BODY: usize = 984;
const CIPHERTEXT: u64 = 1_000;

/// Sends text message `counter` of `who` in `chat`; expects it stored.
async fn send_text(client: &mut RawClient, chat: &Chat, who: &Identity, counter: u64) {
    let env = chat.seal(who, counter, &"x".repeat(BODY));
    assert_eq!(env.ciphertext.len() as u64, CIPHERTEXT);
    assert!(matches!(
        client.request(Request::Send(env)).await,
        Response::Stored { .. }
    ));
}

/// The next `quota_warning` push on `client`: its org and quota.
async fn quota_push(client: &mut RawClient, what: &str) -> (Option<String>, ByteQuota) {
    client
        .expect_push(what, |p| match p {
            Push::QuotaWarning { org, quota } => Some((org.clone(), *quota)),
            _ => None,
        })
        .await
}

async fn no_quota_push(client: &mut RawClient, what: &str) {
    client
        .expect_no_push(what, |p| matches!(p, Push::QuotaWarning { .. }))
        .await;
}

#[tokio::test]
async fn the_orgs_quota_reaching_eighty_percent_is_pushed_to_its_agents_and_master() {
    let (relay, _dir) = spawn_relay_with(|c| {
        c.limits.stored_bytes_per_org = 10 * CIPHERTEXT;
    })
    .await;
    let url = relay.ws_url();
    // An org that has nothing to do with it, with its own agents: it changes nothing.
    let other = Org::setup(&url, 79, "otherco", 3, 0).await;
    let org = Org::setup(&url, 80, "warnco", 2, 1).await;
    let c0 = &org.customers[0];
    let mut alice = RawClient::login(&url, c0).await;
    let chat = org.start_chat(&mut alice, 0, 800).await;
    // The agent not in the conversation, who sends nothing, and the master.
    let idle = &org.agents[1 - chat.agent];
    let mut agent = RawClient::login(&url, idle).await;
    let mut master = RawClient::login(&url, &org.master).await;
    for counter in 0..7 {
        send_text(&mut alice, &chat, c0, counter).await;
    }
    no_quota_push(&mut agent, "70% is below the warning").await;
    send_text(&mut alice, &chat, c0, 7).await;
    let at_80 = ByteQuota {
        scope: QuotaScope::Org,
        used: 8 * CIPHERTEXT,
        most: 10 * CIPHERTEXT,
    };
    for client in [&mut agent, &mut master] {
        assert_eq!(
            quota_push(client, "the org's quota at 80%").await,
            (Some("warnco".to_owned()), at_80)
        );
    }
    // Told once, at the crossing: the next message brings no second push.
    send_text(&mut alice, &chat, c0, 8).await;
    no_quota_push(&mut agent, "the quota was already past the warning").await;
    // The customer's own quota is far away: she is told nothing by push.
    no_quota_push(&mut alice, "the org's quota is not the customer's").await;
    agent.close().await;

    // Signing in again while the org is above the warning: told again.
    let mut again = RawClient::login(&url, idle).await;
    let (org_name, quota) = quota_push(&mut again, "at sign-in").await;
    assert_eq!(org_name.as_deref(), Some("warnco"));
    assert_eq!((quota.scope, quota.used), (QuotaScope::Org, 9 * CIPHERTEXT));
    no_quota_push(&mut again, "warnco is its only org above the warning").await;
    again.close().await;
    // Its master too, at sign-in, once.
    let mut master_again = RawClient::login(&url, &org.master).await;
    assert_eq!(
        quota_push(&mut master_again, "the master at sign-in").await,
        (
            Some("warnco".to_owned()),
            ByteQuota {
                scope: QuotaScope::Org,
                used: 9 * CIPHERTEXT,
                most: 10 * CIPHERTEXT,
            }
        )
    );
    no_quota_push(&mut master_again, "one warning per org").await;
    master_again.close().await;
    // The other org's agent and master are not concerned.
    for who in [&other.agents[0], &other.master] {
        let mut c = RawClient::login(&url, who).await;
        no_quota_push(&mut c, "another org's quota").await;
        c.close().await;
    }
    master.close().await;
}

#[tokio::test]
async fn a_read_receipt_bringing_the_account_to_eighty_percent_warns_its_sessions() {
    // 80% of the account's most is 4_008 bytes: four text messages (4_000) stay below it, and
    // a read receipt (an 8-byte body, 24 bytes of ciphertext) brings it there.
    let most = 5 * CIPHERTEXT + 10;
    let (relay, _dir) = spawn_relay_with(|c| {
        c.limits.stored_bytes_per_account = most;
    })
    .await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 81, "receiptco", 1, 1).await;
    let c0 = &org.customers[0];
    let mut alice = RawClient::login(&url, c0).await;
    let mut other_device = RawClient::login(&url, c0).await;
    let chat = org.start_chat(&mut alice, 0, 810).await;
    for counter in 0..4 {
        send_text(&mut alice, &chat, c0, counter).await;
    }
    no_quota_push(&mut other_device, "80% is not reached yet").await;
    let receipt = chat
        .keys
        .seal_message(&c0.keys, 4, ContentKind::Read, now(), &7u64.to_be_bytes())
        .unwrap();
    assert_eq!(receipt.ciphertext.len(), 24);
    assert!(matches!(
        alice.request(Request::Send(receipt)).await,
        Response::Stored { .. }
    ));
    let expected = (
        None,
        ByteQuota {
            scope: QuotaScope::Account,
            used: 4 * CIPHERTEXT + 24,
            most,
        },
    );
    assert_eq!(
        quota_push(&mut other_device, "the receipt crossed the line").await,
        expected
    );
    assert_eq!(
        quota_push(&mut alice, "the sending session too").await,
        expected
    );
    other_device.close().await;
    // At sign-in, while it stays there.
    let mut later = RawClient::login(&url, c0).await;
    assert_eq!(quota_push(&mut later, "at sign-in").await, expected);
    later.close().await;
    alice.close().await;
}

/// Runs `edit` on the stopped relay's store for `dir` — its sled directory, or its
/// PostgreSQL database when the matrix asks for one — then flushes.
async fn edit_store(dir: &Path, edit: impl FnOnce(&dyn Store) + Send + 'static) {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let store: Box<dyn Store> = if pg::matrix_wants_postgres() {
            let server = pg::server().expect("the test PostgreSQL");
            let url = pg::database(server, &pg::database_name_for(&dir));
            Box::new(PgStore::open(&url, false).unwrap())
        } else {
            Box::new(SledStore::open(&dir).unwrap())
        };
        edit(store.as_ref());
        store.flush().unwrap();
    })
    .await
    .unwrap();
}

/// The index entries of a store, and whether it is marked filled.
fn org_index(store: &dyn Store) -> (usize, usize, bool) {
    (
        store.scan_prefix(Collection::AgentOrgs, &[]).unwrap().len(),
        store
            .scan_prefix(Collection::MasterOrgs, &[])
            .unwrap()
            .len(),
        store
            .get(Collection::Meta, ORG_INDEX_FILLED)
            .unwrap()
            .is_some(),
    )
}

#[tokio::test]
async fn certificates_stored_before_the_org_index_still_warn_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let most = |c: &mut RelayConfig| c.limits.stored_bytes_per_org = 10 * CIPHERTEXT;
    let relay = spawn_relay_in_with(dir.path(), most).await;
    let org = Org::setup(&relay.ws_url(), 82, "oldco", 2, 0).await;
    stop_relay(relay).await;
    // The store as a build before the index left it: certificates and policies, no index,
    // no marker; and the org's stored bytes at 80% (written as the relay keeps them, a
    // big-endian count under `bytes/org/` ‖ org).
    edit_store(dir.path(), |store| {
        assert_eq!(
            org_index(store),
            (2, 1, true),
            "a new store is indexed as it goes"
        );
        for index in [Collection::AgentOrgs, Collection::MasterOrgs] {
            for (k, _) in store.scan_prefix(index, &[]).unwrap() {
                store.delete(index, &k).unwrap();
            }
        }
        store.delete(Collection::Meta, ORG_INDEX_FILLED).unwrap();
        store
            .put(
                Collection::Meta,
                b"bytes/org/oldco",
                &(8 * CIPHERTEXT).to_be_bytes(),
            )
            .unwrap();
    })
    .await;

    let relay = spawn_relay_in_with(dir.path(), most).await;
    let url = relay.ws_url();
    let at_80 = (
        Some("oldco".to_owned()),
        ByteQuota {
            scope: QuotaScope::Org,
            used: 8 * CIPHERTEXT,
            most: 10 * CIPHERTEXT,
        },
    );
    for who in [&org.agents[0], &org.agents[1], &org.master] {
        let mut c = RawClient::login(&url, who).await;
        assert_eq!(
            quota_push(&mut c, "at sign-in, after the restart").await,
            at_80
        );
        c.close().await;
    }
    stop_relay(relay).await;
    edit_store(dir.path(), |store| {
        assert_eq!(org_index(store), (2, 1, true), "indexed at the start, once");
    })
    .await;
}
