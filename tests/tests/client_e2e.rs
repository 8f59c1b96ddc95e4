//! End-to-end tests of the client against a real relay on 127.0.0.1:0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::{
    Account, ClientError,
    account::{EpochStatus, LogEntry},
    client::HistoryLine,
    vault::VaultError,
};
use sealdesk_protocol::{
    card::{IdentityCard, Role},
    epoch::{EpochRecord, NewEpoch},
    escrow::EscrowSection,
    keys::IdentityKeys,
    message::ContentKind,
    secret::EpochSecret,
    wire::{Request, Response},
};
use sealdesk_tests::{
    contains_bytes, files_under,
    world::{PASS, World, open_chat, texts},
};

#[tokio::test]
async fn customer_opens_agent_replies_and_histories_match() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let opened = carol
        .open_conversation("acme", Some(&org.fingerprint))
        .await
        .unwrap();
    assert!(opened.warnings.is_empty(), "{:?}", opened.warnings);
    assert!(opened.summary.contains("2 of these 3"));
    let conv = opened.conversation;
    carol
        .send_text(&conv, "hello, my order is late")
        .await
        .unwrap();
    let alice = &mut org.agents[0];
    alice.sync_all().await.unwrap();
    alice.send_text(&conv, "sorry! checking now").await.unwrap();
    carol.sync_all().await.unwrap();
    let expected = vec![
        "carol: hello, my order is late".to_owned(),
        "alice: sorry! checking now".to_owned(),
    ];
    assert_eq!(texts(&carol, &conv), expected);
    assert_eq!(texts(alice, &conv), expected);

    // Read receipt: carol reads; alice sees her message as read.
    carol.mark_seen(&conv).unwrap();
    assert!(carol.send_read_receipt(&conv).await.unwrap().is_some());
    alice.sync_all().await.unwrap();
    let h = alice.history(&conv).unwrap();
    let states: Vec<_> = h
        .lines
        .iter()
        .filter_map(|l| match l {
            HistoryLine::Item {
                entry: LogEntry::Message { mine: true, .. },
                delivery,
                ..
            } => *delivery,
            _ => None,
        })
        .collect();
    assert_eq!(states, vec!["read"]);
    assert_eq!(carol.unread(&conv).unwrap(), 0);
}

#[tokio::test]
async fn a_send_is_one_round_trip_and_shows_at_once() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = org.open_pinned(&mut carol).await;
    carol.send_text(&conv, "first").await.unwrap();
    // Nothing else came in: the send is the `Send` request alone, and the message is in the
    // sender's history at once, at the sequence number the relay gave it.
    let before = carol.session().requests_sent();
    let seq = carol.send_text(&conv, "second").await.unwrap();
    assert_eq!(carol.session().requests_sent() - before, 1);
    assert_eq!(carol.meta(&conv).unwrap().cursor, seq);
    assert_eq!(texts(&carol, &conv), ["carol: first", "carol: second"]);
    // Another member's message came in between: the sender reads it and its own back in relay
    // order.
    let alice = &mut org.agents[0];
    alice.sync_all().await.unwrap();
    alice.send_text(&conv, "hello carol").await.unwrap();
    let seq = carol.send_text(&conv, "third").await.unwrap();
    assert_eq!(carol.meta(&conv).unwrap().cursor, seq);
    assert_eq!(
        texts(&carol, &conv),
        [
            "carol: first",
            "carol: second",
            "alice: hello carol",
            "carol: third"
        ]
    );
    alice.sync_all().await.unwrap();
    assert_eq!(texts(&carol, &conv), texts(alice, &conv));
}

#[tokio::test]
async fn wrong_org_fingerprint_is_refused() {
    let w = World::new().await;
    let _org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let err = carol
        .open_conversation("acme", Some("00000 00000 00000 00000 00000 00000"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::FingerprintMismatch { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn offline_agent_catches_up() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    // alice goes offline.
    let alice = org.agents.remove(0);
    drop(alice.close().await);
    for i in 0..5 {
        carol
            .send_text(&conv, &format!("message {i}"))
            .await
            .unwrap();
    }
    let mut alice = w.reopen("alice").await;
    alice.sync_all().await.unwrap();
    assert_eq!(
        texts(&alice, &conv),
        (0..5)
            .map(|i| format!("carol: message {i}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(alice.unread(&conv).unwrap(), 5);
    // Delivery state reached carol.
    alice.send_text(&conv, "back online").await.unwrap();
    carol.sync_all().await.unwrap();
    assert_eq!(texts(&carol, &conv).last().unwrap(), "alice: back online");
}

#[tokio::test]
async fn transfer_old_agent_cannot_read_new_epoch_new_agent_can() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "before transfer").await.unwrap();
    let mut dave = w.user("dave", Role::Agent).await;
    org.master.add_agent("acme", "dave").await.unwrap();
    let alice = &mut org.agents[0];
    alice.sync_all().await.unwrap();
    let epoch = alice.transfer(&conv, "dave").await.unwrap();
    assert_eq!(epoch, 1);
    carol.sync_all().await.unwrap();
    carol.send_text(&conv, "after transfer").await.unwrap();
    dave.sync_all().await.unwrap();
    dave.send_text(&conv, "dave here").await.unwrap();
    // dave reads the new epoch and, through the hand-off, the earlier one.
    assert_eq!(
        texts(&dave, &conv),
        vec![
            "carol: before transfer".to_owned(),
            "carol: after transfer".to_owned(),
            "dave: dave here".to_owned()
        ]
    );
    // alice cannot read epoch 1.
    alice.sync_all().await.unwrap();
    let alice_texts = texts(alice, &conv);
    assert_eq!(alice_texts, vec!["carol: before transfer".to_owned()]);
    assert!(alice.account().secret(&conv, 1).unwrap().is_none());
    let err = alice.send_text(&conv, "still here?").await.unwrap_err();
    assert!(matches!(err, ClientError::CannotSend { .. }), "{err}");
    carol.sync_all().await.unwrap();
    assert_eq!(texts(&carol, &conv).last().unwrap(), "dave: dave here");
}

#[tokio::test]
async fn changed_pinned_key_blocks_sending_until_trusted() {
    let w = World::new().await;
    let _org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    // carol pinned an "alice" with other keys earlier (say, from another relay).
    let other = IdentityKeys::generate(&mut sealdesk_client::rng().unwrap());
    let fake = IdentityCard::issue(&other, "alice", Role::Agent, 1).unwrap();
    carol.account().observe_peer(&fake).unwrap();
    let opened = carol.open_conversation("acme", None).await.unwrap();
    assert!(
        opened.warnings.iter().any(|w| w.contains("has changed")),
        "{:?}",
        opened.warnings
    );
    let conv = opened.conversation;
    let err = carol.send_text(&conv, "hello?").await.unwrap_err();
    assert!(
        matches!(err, ClientError::KeyChanged { ref name } if name == "alice"),
        "{err}"
    );
    carol.trust("alice").await.unwrap();
    carol.send_text(&conv, "hello after trust").await.unwrap();
    assert_eq!(
        texts(&carol, &conv),
        vec!["carol: hello after trust".to_owned()]
    );
}

#[tokio::test]
async fn tampered_epoch_record_is_refused_and_its_messages_not_shown() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "genuine").await.unwrap();
    // A buggy or malicious customer client escrows garbage in epoch 1, signed properly.
    let e0 = carol.account().epoch(&conv, 0).unwrap().unwrap();
    let policy = carol
        .policy("acme", e0.record.policy_version)
        .await
        .unwrap();
    let members: Vec<_> = e0
        .record
        .members
        .iter()
        .map(|m| m.clone().verify().unwrap())
        .collect();
    let mut rng = sealdesk_client::rng().unwrap();
    let (rec, k) = EpochRecord::create(
        &mut rng,
        carol.account().keys(),
        &policy,
        NewEpoch {
            conversation: conv,
            epoch: 1,
            members: &members,
            previous: Some(&e0.record),
            now: sealdesk_client::now(),
        },
    )
    .unwrap();
    let mut bad = rec.into_record();
    bad.escrow = EscrowSection::compute(
        &EpochSecret::random(&mut rng),
        &conv,
        1,
        &bad.customer_key().unwrap(),
        &policy,
    )
    .unwrap();
    bad.signature = carol.account().keys().sign(&bad.signed_bytes());
    let bad_verified = bad.clone().verify(&policy).unwrap();
    match carol
        .session()
        .request(Request::PutEpoch(bad))
        .await
        .unwrap()
    {
        Response::Stored { .. } => {}
        other => panic!("{other:?}"),
    }
    // A message in the refused epoch, sealed with its (real) K.
    let keys = sealdesk_protocol::message::EpochKeys::new(&k, &bad_verified);
    let env = keys
        .seal_message(carol.account().keys(), 0, ContentKind::Text, 1, b"smuggled")
        .unwrap();
    carol.session().request(Request::Send(env)).await.unwrap();

    let alice = &mut org.agents[0];
    alice.sync_all().await.unwrap();
    let st = alice.account().epoch(&conv, 1).unwrap().unwrap();
    match &st.status {
        EpochStatus::Refused(reason) => assert!(reason.contains("escrow"), "{reason}"),
        other => panic!("epoch accepted: {other:?}"),
    }
    assert_eq!(texts(alice, &conv), vec!["carol: genuine".to_owned()]);
    let h = alice.history(&conv).unwrap();
    assert!(h.lines.iter().any(|l| matches!(
        l,
        HistoryLine::Item {
            entry: LogEntry::Rejected { epoch: 1, .. },
            ..
        }
    )));
    // The refused epoch blocks sending with a clear error.
    let err = alice.send_text(&conv, "reply").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::CannotSend { conversation, .. } if *conversation == conv.to_string()),
        "{err:?}"
    );
    assert!(err.to_string().contains("refused"), "{err}");
}

#[tokio::test]
async fn rotation_and_counter_conflict_open_new_epochs() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], Some(2)).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    for i in 0..3 {
        carol.send_text(&conv, &format!("m{i}")).await.unwrap();
    }
    assert!(carol.account().epoch(&conv, 1).unwrap().is_some());
    // A home restored from an old copy would reuse counter 0: the relay refuses, the client
    // opens a new epoch instead of reusing the nonce.
    // (Written to the vault directly, as a restore would: `save_epoch` never moves the next
    // counter back.)
    let mut st = carol.account().epochs(&conv).unwrap().pop().unwrap();
    let epoch_before = st.record.epoch;
    st.next_counter = 0;
    let restored = sealdesk_client::vault::Vault::open(&w.home("carol"), PASS).unwrap();
    restored
        .put(
            &format!("conv/{conv}/epoch/{epoch_before}"),
            &sealdesk_protocol::wire::to_cbor(&st).unwrap(),
        )
        .unwrap();
    carol.send_text(&conv, "after restore").await.unwrap();
    let last = carol.account().epochs(&conv).unwrap().pop().unwrap();
    assert!(last.record.epoch > epoch_before);
    let alice = &mut org.agents[0];
    alice.sync_all().await.unwrap();
    assert_eq!(
        texts(alice, &conv),
        vec![
            "carol: m0",
            "carol: m1",
            "carol: m2",
            "carol: after restore"
        ]
    );
}

#[tokio::test]
async fn a_full_epoch_refused_by_the_relay_makes_the_client_rotate() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], Some(3)).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    for i in 0..3 {
        carol.send_text(&conv, &format!("m{i}")).await.unwrap();
    }
    // The client's own count says the epoch has room (as when another member's messages
    // reached the relay after this client's last sync); the relay counts them all.
    let mut st = carol.account().epochs(&conv).unwrap().pop().unwrap();
    assert_eq!(st.record.epoch, 0, "three messages fit in epoch 0");
    st.messages = 0;
    carol.account().save_epoch(&conv, &st).unwrap();
    carol.send_text(&conv, "m3").await.unwrap();
    let last = carol.account().epochs(&conv).unwrap().pop().unwrap();
    assert_eq!(
        last.record.epoch, 1,
        "refused in the full epoch, sent in the next"
    );
    let alice = &mut org.agents[0];
    alice.sync_all().await.unwrap();
    assert_eq!(
        texts(alice, &conv),
        vec!["carol: m0", "carol: m1", "carol: m2", "carol: m3"]
    );
}

#[tokio::test]
async fn homes_hold_no_plaintext_and_no_key_bytes() {
    let w = World::new().await;
    let mut org = w.org(&["alice"], None).await;
    let mut carol = w.user("carol", Role::Customer).await;
    let conv = open_chat(&mut carol).await;
    let markers = ["PLAINTEXT-MARKER-7d1e", "SECRET-ORDER-4242"];
    carol.send_text(&conv, markers[0]).await.unwrap();
    let alice = &mut org.agents[0];
    alice.sync_all().await.unwrap();
    alice.send_text(&conv, markers[1]).await.unwrap();
    carol.sync_all().await.unwrap();
    assert_eq!(texts(&carol, &conv).len(), 2);

    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for c in [&carol, &*alice, &org.master] {
        let sk = c.account().keys().to_secret_bytes();
        secrets.push(sk[..32].to_vec());
        secrets.push(sk[32..].to_vec());
    }
    secrets.push(
        carol
            .account()
            .secret(&conv, 0)
            .unwrap()
            .unwrap()
            .to_bytes()
            .to_vec(),
    );
    let mut names = vec!["acme-owner", "alice", "carol"];
    for i in 1..=3 {
        names.push(if i == 1 { "trustee-1" } else { "arbiter-1" });
    }
    let mut scanned = 0;
    for name in names {
        for f in files_under(&w.home(name)) {
            let bytes = std::fs::read(&f).unwrap();
            for m in markers {
                assert!(
                    !contains_bytes(&bytes, m.as_bytes()),
                    "{m} in {}",
                    f.display()
                );
            }
            for s in &secrets {
                assert!(!contains_bytes(&bytes, s), "key bytes in {}", f.display());
                assert!(
                    !contains_bytes(&bytes, hex::encode(s).as_bytes()),
                    "hex key bytes in {}",
                    f.display()
                );
            }
            scanned += 1;
        }
    }
    assert!(scanned > 10);
}

#[tokio::test]
async fn wrong_passphrase_is_a_clear_error() {
    let w = World::new().await;
    let c = w.user("carol", Role::Customer).await;
    drop(c.close().await);
    let err = Account::open(&w.home("carol"), "not the passphrase").unwrap_err();
    assert_eq!(
        err,
        ClientError::Vault(VaultError::WrongPassphrase {
            dir: w.home("carol")
        })
    );
    assert!(err.to_string().contains("wrong passphrase"), "{err}");
    assert!(Account::open(&w.home("carol"), PASS).is_ok());
}

/// The master names trustees as `NAME=FINGERPRINT`: a card whose fingerprint differs (the relay
/// substituting its own key, or a typo) is refused before any policy is signed; the right
/// fingerprints pass.
#[tokio::test]
async fn org_parties_are_checked_against_their_fingerprints() {
    let w = World::new().await;
    let mut master = w.user("acme-owner", Role::Master).await;
    let mut fps = Vec::new();
    for i in 1..=2 {
        let t = w.user(&format!("trustee-{i}"), Role::Trustee).await;
        fps.push(t.account().fingerprint().to_string());
        t.close().await;
    }
    let a = w.user("arbiter-1", Role::Arbiter).await;
    a.close().await;
    let spec = |t1: &str, t2: &str| sealdesk_client::client::OrgSpec {
        name: "acme".into(),
        trustees: vec![format!("trustee-1={t1}"), format!("trustee-2={t2}")],
        trustee_threshold: 2,
        arbiters: vec!["arbiter-1".into()],
        arbiter_threshold: 1,
        retention_days: None,
        rotate_messages: None,
        no_history_handoff: false,
    };
    // trustee-2's fingerprint given for trustee-1: refused, naming the party.
    let err = master
        .create_org(&spec(&fps[1], &fps[1]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::CardFingerprintMismatch { name, .. } if name == "trustee-1"),
        "{err}"
    );
    let policy = master.create_org(&spec(&fps[0], &fps[1])).await.unwrap();
    assert_eq!(policy.trustees.len(), 2);
    assert_eq!(policy.trustees[0].name, "trustee-1");
}
