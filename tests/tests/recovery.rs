//! Account recovery (issue 22 §3), end to end against a real relay: a customer restores her
//! account on a new machine from the recovery code `init` showed, with the same keys, her
//! conversations and their history, and continues in a new epoch (no counter of the lost
//! device is ever reused); the agent reads on without a key-change warning. A wrong code, a
//! wrong name and a home that holds an account already are refused, and nothing is created.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use sealdesk_client::{
    Account, Client, ClientError, TlsOptions,
    account::LogEntry,
    client::EventKind,
    recovery::{self, NewAccount},
};
use sealdesk_protocol::{
    ids::ConversationId,
    recovery::{CodeError, RecoveryCode},
};
use sealdesk_tests::world::{FAST_KDF, PASS, World, texts};

/// Carol with a recovery code, registered; her code as text.
async fn carol_with_code(w: &World) -> (Client, String) {
    let NewAccount { account, code } =
        Account::create_with_code(&w.home("carol"), PASS, FAST_KDF, "carol").unwrap();
    let mut c = Client::connect(account, &w.url).await.unwrap();
    c.register().await.unwrap();
    (c, code.reveal().to_string())
}

/// Every (epoch, counter) of `sender`'s messages in `c`'s timeline of `conv`.
fn counters(c: &Client, conv: &ConversationId, sender: &str) -> Vec<(u32, u64)> {
    c.account()
        .log(conv)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            LogEntry::Message {
                epoch,
                counter,
                sender: s,
                ..
            } if s == sender => Some((epoch, counter)),
            _ => None,
        })
        .collect()
}

async fn recover(
    w: &World,
    home: &str,
    name: &str,
    code: &str,
) -> Result<recovery::Recovered, ClientError> {
    let code = RecoveryCode::parse(code).unwrap();
    recovery::recover(
        &w.home(home),
        PASS,
        FAST_KDF,
        name,
        &code,
        &w.url,
        &TlsOptions::default(),
    )
    .await
}

#[tokio::test]
async fn a_recovered_customer_continues_in_a_new_epoch_and_the_agent_sees_no_key_change() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let (mut carol, code) = carol_with_code(&w).await;
    let conv = org.open_pinned(&mut carol).await;
    carol.send_text(&conv, "my order is late").await.unwrap();
    carol.send_text(&conv, "order 1234").await.unwrap();
    let alice = &mut org.agents[0];
    alice.sync_all().await.unwrap();
    alice.send_text(&conv, "looking into it").await.unwrap();
    let fingerprint = carol.account().fingerprint().to_string();
    let before = counters(&carol, &conv, "carol");
    assert_eq!(before, vec![(0, 0), (0, 1)]);
    // The laptop is lost: the old home is gone with it.
    carol.close().await;
    std::fs::remove_dir_all(w.home("carol")).unwrap();

    let done = recover(&w, "carol-new", "carol", &code).await.unwrap();
    let mut carol = done.client;
    assert_eq!(done.conversations, 1);
    assert_eq!(carol.account().fingerprint().to_string(), fingerprint);
    // The history came back from the relay, readable.
    assert_eq!(
        texts(&carol, &conv),
        vec![
            "carol: my order is late",
            "carol: order 1234",
            "alice: looking into it"
        ]
    );

    carol.send_text(&conv, "I am back").await.unwrap();
    let after = counters(&carol, &conv, "carol");
    let new: Vec<_> = after.iter().filter(|c| !before.contains(c)).collect();
    assert_eq!(new.len(), 1, "{after:?}");
    // A new epoch, opened by the recovered client: nothing the lost device could have used.
    assert!(
        new[0].0 > 0,
        "sent in an epoch from before the recovery: {after:?}"
    );
    let distinct: BTreeSet<_> = after.iter().collect();
    assert_eq!(
        distinct.len(),
        after.len(),
        "a counter was used twice: {after:?}"
    );

    // The agent reads on: same key, no warning, nothing blocked, and she can answer.
    let events = alice.sync_all().await.unwrap();
    let warnings: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Warning { text } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(!alice.account().peer_blocked("carol").unwrap());
    assert!(
        alice.account().pins().unwrap().peers["carol"]
            .pending
            .is_none()
    );
    assert_eq!(
        texts(alice, &conv).last().map(String::as_str),
        Some("carol: I am back")
    );
    alice.send_text(&conv, "welcome back").await.unwrap();
    carol.sync_all().await.unwrap();
    assert_eq!(
        texts(&carol, &conv).last().map(String::as_str),
        Some("alice: welcome back")
    );
    // Once the recovered client has an epoch of its own, it sends on in it.
    carol.send_text(&conv, "thanks").await.unwrap();
    let last = counters(&carol, &conv, "carol");
    assert_eq!(last.last().map(|c| c.0), Some(new[0].0));
}

#[tokio::test]
async fn a_recovered_customer_never_takes_a_counter_in_an_epoch_from_before() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let (mut carol, code) = carol_with_code(&w).await;
    let conv = org.open_pinned(&mut carol).await;
    carol.send_text(&conv, "one").await.unwrap();
    org.agents[0].sync_all().await.unwrap();
    carol.close().await;

    let carol = recover(&w, "carol-new", "carol", &code)
        .await
        .unwrap()
        .client;
    // The relay's history says counter 0 was used; the lost device may have sealed more that
    // never arrived. The recovered account refuses any counter in epoch 0.
    match carol.account().reserve_counter(&conv, 0) {
        Err(ClientError::CannotSend { reason, .. }) => {
            assert!(reason.contains("recovered"), "{reason}");
        }
        other => panic!("a counter of an epoch from before the recovery: {other:?}"),
    }
    let record = carol.account().recovery().unwrap().unwrap();
    assert!(record.fences.is_empty());
}

#[tokio::test]
async fn a_wrong_code_or_a_wrong_name_is_refused_and_nothing_is_created() {
    let w = World::new().await;
    let (carol, code) = carol_with_code(&w).await;
    carol.close().await;
    let other = RecoveryCode::from_parts(&[9; 16], 1_790_000_000)
        .unwrap()
        .reveal()
        .to_string();

    let got = recover(&w, "new-1", "carol", &other).await.map(|_| ());
    assert_eq!(
        got,
        Err(ClientError::NotRecovered {
            name: "carol".into()
        })
    );
    assert!(
        !w.home("new-1").exists(),
        "a refused recovery created a home"
    );

    let got = recover(&w, "new-2", "caroline", &code).await.map(|_| ());
    assert_eq!(
        got,
        Err(ClientError::NotRecovered {
            name: "caroline".into()
        })
    );
    assert!(!w.home("new-2").exists());

    // A typo never reaches the relay: the checksum refuses it.
    let mut typo: Vec<char> = code.chars().collect();
    typo[3] = if typo[3] == 'A' { 'B' } else { 'A' };
    let typo: String = typo.into_iter().collect();
    assert!(matches!(
        RecoveryCode::parse(&typo),
        Err(CodeError::Checksum)
    ));

    // Recovering into a home that holds an account leaves that account as it was.
    let before = Account::open(&w.home("carol"), PASS).unwrap().fingerprint();
    let got = recover(&w, "carol", "carol", &code).await.map(|_| ());
    assert!(matches!(got, Err(ClientError::Vault(_))), "{got:?}");
    let kept = Account::open(&w.home("carol"), PASS).unwrap();
    assert_eq!(kept.fingerprint(), before);
    assert!(kept.recovery().unwrap().is_none());
}

/// An agent who lost its keys: a new home under the same name cannot take the name; the org's
/// master re-certifies it; the relay refuses a re-certification from anyone else or signed by
/// another key, binds the name to the new key on the master's, and the old key can no longer
/// act for it; a customer sees the new key as a key change and, once she accepts it, talks to
/// the new key.
#[tokio::test]
async fn an_agent_is_recertified_by_the_master_and_the_old_key_loses_the_name() {
    use sealdesk_protocol::{
        card::Role,
        keys::IdentityKeys,
        policy::AgentCertificate,
        wire::{ErrorCode, Request},
    };
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = org.open_pinned(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();
    let old_alice = org.agents.remove(0);
    old_alice.close().await;

    // The new machine: same name, new keys. Registering is refused, as for any stranger.
    let new_home = w.home("alice-new");
    let account = Account::create(&new_home, PASS, FAST_KDF, "alice", Role::Agent).unwrap();
    let new_card = account.card().card().clone();
    let new_fp = account.fingerprint().to_string();
    let mut new_alice = Client::connect(account, &w.url).await.unwrap();
    assert!(!new_alice.registered());
    assert!(matches!(
        new_alice.register().await,
        Err(ClientError::Relay {
            code: ErrorCode::NameTaken,
            ..
        })
    ));
    new_alice.close().await;

    let policy = org.master.latest_policy("acme").await.unwrap();
    let verified = new_card.clone().verify().unwrap();
    // A certificate signed by another key than the master's: refused by the relay even from
    // the master's session, and by any peer that checks it.
    let forger = IdentityKeys::generate(&mut sealdesk_tests::identity::rng(77));
    let forged =
        AgentCertificate::issue(&forger, &policy, &verified, 1_790_000_000, 86_400).unwrap();
    assert!(forged.verify(&policy, 1_790_000_100).is_err());
    let got = org
        .master
        .session()
        .request(Request::RebindAgent(forged))
        .await;
    assert!(got.is_err(), "{got:?}");
    // A genuine certificate, but sent by someone other than the master: refused.
    let genuine = AgentCertificate::issue(
        org.master.account().keys(),
        &policy,
        &verified,
        sealdesk_client::now(),
        86_400,
    )
    .unwrap();
    let got = carol.session().request(Request::RebindAgent(genuine)).await;
    assert!(
        matches!(
            got,
            Err(ClientError::Relay {
                code: ErrorCode::Forbidden,
                ..
            })
        ),
        "{got:?}"
    );
    // The master may not take a name that is not its agent's (carol is a customer).
    let carol_like = IdentityKeys::generate(&mut sealdesk_tests::identity::rng(77));
    let stolen = sealdesk_protocol::card::IdentityCard::issue(
        &carol_like,
        "carol",
        Role::Agent,
        sealdesk_client::now(),
    )
    .unwrap();
    let got = org
        .master
        .recertify_agent("acme", stolen.card().clone(), None)
        .await;
    assert!(
        matches!(
            got,
            Err(ClientError::Relay {
                code: ErrorCode::Forbidden,
                ..
            })
        ),
        "{got:?}"
    );

    // Nor an agent's that is not certified by its org (bob, another business's agent, say).
    w.user("bob", Role::Agent).await.close().await;
    let bob_keys = IdentityKeys::generate(&mut sealdesk_tests::identity::rng(78));
    let bob_new = sealdesk_protocol::card::IdentityCard::issue(
        &bob_keys,
        "bob",
        Role::Agent,
        sealdesk_client::now(),
    )
    .unwrap();
    let got = org
        .master
        .recertify_agent("acme", bob_new.card().clone(), None)
        .await;
    assert!(
        matches!(
            got,
            Err(ClientError::Relay {
                code: ErrorCode::Forbidden,
                ..
            })
        ),
        "{got:?}"
    );

    // The master re-certifies alice for the new key, checking its fingerprint.
    org.master
        .recertify_agent("acme", new_card.clone(), Some(&new_fp))
        .await
        .unwrap();
    let mut new_alice = Client::connect(Account::open(&new_home, PASS).unwrap(), &w.url)
        .await
        .unwrap();
    assert!(new_alice.registered());
    new_alice.register().await.unwrap();

    // The old key can no longer act for the name.
    let old = Client::connect(Account::open(&w.home("alice"), PASS).unwrap(), &w.url)
        .await
        .unwrap();
    assert!(!old.registered());
    let mut old = old;
    assert!(matches!(
        old.register().await,
        Err(ClientError::Relay {
            code: ErrorCode::NameTaken,
            ..
        })
    ));
    assert!(matches!(
        old.sync_all().await,
        Err(ClientError::NotRegistered | ClientError::Relay { .. })
    ));
    old.close().await;

    // The customer sees the new key as a key change, exactly as for any changed card.
    let opened = carol.open_conversation("acme", None).await.unwrap();
    assert_eq!(opened.agent, "alice");
    assert!(
        opened.warnings.iter().any(|w| w.contains("alice")),
        "{:?}",
        opened.warnings
    );
    assert!(carol.account().peer_blocked("alice").unwrap());
    assert!(matches!(
        carol.send_text(&conv, "still there?").await,
        Err(ClientError::KeyChanged { .. })
    ));
    // Accepted: she talks to the new key in the new conversation.
    carol.trust("alice").await.unwrap();
    carol
        .send_text(&opened.conversation, "is this the new alice?")
        .await
        .unwrap();
    new_alice.sync_all().await.unwrap();
    assert_eq!(
        texts(&new_alice, &opened.conversation),
        vec!["carol: is this the new alice?"]
    );
}
