//! Access control: every role trying what it must not.
//!
//! The relay cannot read anything, but it refuses, as defence in depth, whatever a role has no
//! business doing: reading or writing other people's conversations, speaking for the org's
//! master, opening epochs it is not entitled to, spoofing senders, and writing audit entries
//! that belong to someone else.

// Test helpers outside #[test] fns: a failed step must panic loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent, ReleaseBasis},
    card::{IdentityCard, Role},
    epoch::{EpochRecord, HandOff, NewEpoch},
    ids::{ConversationId, EpochRange, TokenId},
    message::{ContentKind, EpochKeys},
    policy::{AgentCertificate, OrgPolicy, PolicyParams},
    release::{ErasureRequest, Scope},
    wire::{ErrorCode, Item, Push, Request, Response},
};
use sealdesk_tests::{
    EpochSpec, Identity, Org, RawClient,
    audit_log::erasure_entry,
    consent::{self, full_consent},
    now, rng, spawn_relay, stop_relay,
};

fn release_event(org: &Org, conversation: ConversationId, hash: [u8; 32]) -> AuditEvent {
    AuditEvent::Release {
        org: org.name.clone(),
        request_hash: hash,
        conversation,
        epochs: EpochRange::single(0),
        basis: ReleaseBasis::Consent {
            id: TokenId::random(&mut rng(hash[0].into())),
            scope: Scope::Full,
            issued_at: now(),
        },
        master: org.master.key(),
    }
}

async fn history_len(c: &mut RawClient, id: ConversationId) -> Result<usize, ErrorCode> {
    match c
        .request(Request::History {
            conversation: id,
            after: 0,
            limit: 200,
        })
        .await
    {
        Response::Items { items, .. } => Ok(items.len()),
        Response::Error { code, .. } => Err(code),
        other => panic!("expected Items or an error, got {other:?}"),
    }
}

#[tokio::test]
async fn another_customer_cannot_read_write_or_open_epochs() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 11, "acme", 1, 2).await;
    let (owner, intruder) = (&org.customers[0], &org.customers[1]);
    let mut c = RawClient::login(&url, owner).await;
    let mut x = RawClient::login(&url, intruder).await;
    let chat = org.start_chat(&mut c, 0, 110).await;
    c.stored(Request::Send(chat.seal(owner, 0, "private")))
        .await;

    assert_eq!(history_len(&mut x, chat.id).await, Err(ErrorCode::NotFound));
    // The same answer as for an id that does not exist: ids are not an oracle.
    let unknown = ConversationId::random(&mut rng(111));
    assert_eq!(history_len(&mut x, unknown).await, Err(ErrorCode::NotFound));

    // Sending into it, with the owner's envelope re-labelled as the intruder's.
    let mut env = chat.seal(owner, 1, "injected");
    env.header.sender = intruder.key();
    let code = x.refused(Request::Send(env)).await;
    assert!(
        matches!(code, ErrorCode::NotFound | ErrorCode::Forbidden),
        "{code:?}"
    );
    // An epoch of its own making that claims to follow the owner's epoch 0.
    let members = [intruder.card.clone(), org.agents[0].card.clone()];
    let (rec, _) = EpochRecord::create(
        &mut rng(112),
        &intruder.keys,
        &org.policy,
        NewEpoch {
            conversation: chat.id,
            epoch: 1,
            members: &members,
            previous: Some(chat.record.record()),
            now: now(),
        },
    )
    .unwrap();
    let code = x.refused(Request::PutEpoch(rec.into_record())).await;
    assert!(
        matches!(code, ErrorCode::NotFound | ErrorCode::Forbidden),
        "{code:?}"
    );
    // A hand-off, a receipt, a transfer, an erasure: all refused.
    let handoff = HandOff::create(
        &mut rng(113),
        &intruder.keys,
        &intruder.card,
        chat.id,
        &[(0, &chat.secret)],
        now(),
    )
    .unwrap();
    for body in [
        Request::PutHandOff(handoff),
        Request::Delivered {
            conversation: chat.id,
            seq: 1,
        },
        Request::Transfer {
            conversation: chat.id,
            agent: org.agents[0].name().into(),
        },
        Request::Erase(ErasureRequest::sign(&intruder.keys, chat.id, now())),
    ] {
        let code = x.refused(body).await;
        assert!(
            matches!(code, ErrorCode::NotFound | ErrorCode::Forbidden),
            "{code:?}"
        );
    }
    match x.request(Request::ListConversations).await {
        Response::Conversations(list) => assert!(list.is_empty(), "{list:?}"),
        other => panic!("expected Conversations, got {other:?}"),
    }
    // Nothing of the owner's conversation is pushed to the intruder.
    c.stored(Request::Send(chat.seal(owner, 2, "still private")))
        .await;
    x.expect_no_push("someone else's conversation", |_| true)
        .await;
    // And nothing refused was stored: epoch record + 2 messages.
    assert_eq!(history_len(&mut c, chat.id).await, Ok(3));
    c.close().await;
    x.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn master_trustees_and_arbiters_cannot_read_or_write_conversations() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 12, "acme", 1, 1).await;
    let other = Org::setup(&url, 13, "globex", 1, 0).await;
    let customer = &org.customers[0];
    let mut c = RawClient::login(&url, customer).await;
    let chat = org.start_chat(&mut c, 0, 120).await;
    c.stored(Request::Send(chat.seal(customer, 0, "secret")))
        .await;

    // Trustees, arbiters and another org's master see nothing of the conversation.
    let outsiders = org
        .trustees
        .iter()
        .chain(&org.arbiters)
        .chain(std::iter::once(&other.master));
    for who in outsiders {
        let mut o = RawClient::login(&url, who).await;
        let code = history_len(&mut o, chat.id).await;
        assert!(
            matches!(code, Err(ErrorCode::NotFound | ErrorCode::Forbidden)),
            "{} read the history: {code:?}",
            who.name()
        );
        match o.request(Request::ListConversations).await {
            Response::Conversations(list) => assert!(list.is_empty(), "{}", who.name()),
            other => panic!("expected Conversations, got {other:?}"),
        }
        o.close().await;
    }

    // The org's master reaches its org's ciphertext (docs/design.md §5) — and nothing that opens it:
    // it is no member of the epoch, so K is not sealed to it.
    let mut m = RawClient::login(&url, &org.master).await;
    match m
        .request(Request::History {
            conversation: chat.id,
            after: 0,
            limit: 100,
        })
        .await
    {
        Response::Items { items, .. } => {
            for s in &items {
                if let Item::Epoch(rec) = &s.item {
                    let v = rec.clone().verify(&org.policy).unwrap();
                    // The master is not a member: nothing sealed to it.
                    assert!(matches!(
                        v.open(&org.master.keys, &org.policy),
                        Err(sealdesk_protocol::Error::NotAMember)
                    ));
                }
            }
        }
        Response::Error { code, .. } => {
            assert!(
                matches!(code, ErrorCode::NotFound | ErrorCode::Forbidden),
                "{code:?}"
            );
        }
        other => panic!("expected Items or an error, got {other:?}"),
    }

    // Nobody outside the epoch writes to the conversation: messages, epochs, hand-offs.
    let writers = std::iter::once(&org.master)
        .chain(&org.trustees)
        .chain(&org.arbiters)
        .chain(std::iter::once(&other.master));
    for (i, who) in writers.enumerate() {
        let mut o = RawClient::login(&url, who).await;
        let mut env = chat.seal(customer, 1, "x");
        env.header.sender = who.key();
        let code = o.refused(Request::Send(env)).await;
        assert!(
            matches!(code, ErrorCode::NotFound | ErrorCode::Forbidden),
            "{}: {code:?}",
            who.name()
        );
        let mut rec = chat.record.record().clone();
        rec.epoch = 1;
        rec.previous = Some(chat.record.hash());
        rec.creator = who.key();
        rec.signature = who.keys.sign(&rec.signed_bytes());
        let code = o.refused(Request::PutEpoch(rec)).await;
        assert!(
            matches!(
                code,
                ErrorCode::NotFound | ErrorCode::Forbidden | ErrorCode::BadRequest
            ),
            "{}: {code:?}",
            who.name()
        );
        let handoff = HandOff::create(
            &mut rng(121 + i as u64),
            &who.keys,
            &org.agents[0].card,
            chat.id,
            &[(0, &chat.secret)],
            now(),
        )
        .unwrap();
        let code = o.refused(Request::PutHandOff(handoff)).await;
        assert!(
            matches!(code, ErrorCode::NotFound | ErrorCode::Forbidden),
            "{}: {code:?}",
            who.name()
        );
        o.close().await;
    }
    assert_eq!(
        history_len(&mut c, chat.id).await,
        Ok(2),
        "nothing was added"
    );
    m.close().await;
    c.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn only_the_master_publishes_the_orgs_policy() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 13, "acme", 1, 1).await;
    let v2 = {
        let mut p = PolicyParams::new(
            "acme",
            org.trustees.iter().map(Identity::card).collect(),
            1,
            org.arbiters.iter().map(Identity::card).collect(),
            1,
        );
        p.version = 2;
        OrgPolicy::issue(&org.master.keys, &org.master.card, p, now()).unwrap()
    };
    // The same key with a master card of its own making, signing its own "acme" policy.
    let usurp = |who: &Identity| {
        let card = IdentityCard::issue(
            &who.keys,
            &format!("{}-as-master", who.name()),
            Role::Master,
            1,
        )
        .unwrap();
        let mut p = PolicyParams::new(
            "acme",
            org.trustees
                .iter()
                .filter(|t| t.key() != who.key())
                .map(Identity::card)
                .collect(),
            1,
            vec![],
            0,
        );
        p.allow_dispute = false;
        p.version = 7;
        OrgPolicy::issue(&who.keys, &card, p, now()).unwrap()
    };
    for who in [
        &org.trustees[0],
        &org.agents[0],
        &org.arbiters[0],
        &org.customers[0],
    ] {
        let mut o = RawClient::login(&url, who).await;
        // The master's genuine (new) policy, relayed by someone else.
        assert_eq!(
            o.refused(Request::PublishPolicy(v2.policy().clone())).await,
            ErrorCode::Forbidden,
            "{} published the master's policy",
            who.name()
        );
        // A policy of its own for the org.
        assert_eq!(
            o.refused(Request::PublishPolicy(usurp(who).policy().clone()))
                .await,
            ErrorCode::Forbidden,
            "{} took over the org",
            who.name()
        );
        o.close().await;
    }
    let mut m = RawClient::login(&url, &org.master).await;
    // A tampered policy does not verify.
    let mut tampered = v2.policy().clone();
    tampered.trustee_threshold = 3;
    assert_eq!(
        m.refused(Request::PublishPolicy(tampered)).await,
        ErrorCode::BadRequest
    );
    // Versions only go up.
    assert_eq!(
        m.refused(Request::PublishPolicy(org.policy.policy().clone()))
            .await,
        ErrorCode::StalePolicy
    );
    match m
        .request(Request::GetPolicy {
            org: "acme".into(),
            version: None,
        })
        .await
    {
        Response::Policy(p) => assert_eq!(&p, org.policy.policy(), "still version 1"),
        other => panic!("expected the policy, got {other:?}"),
    }
    m.ok(Request::PublishPolicy(v2.policy().clone())).await;
    match m
        .request(Request::GetPolicy {
            org: "acme".into(),
            version: None,
        })
        .await
    {
        Response::Policy(p) => assert_eq!(p.version, 2),
        other => panic!("expected the policy, got {other:?}"),
    }
    m.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn a_non_master_account_cannot_publish_a_policy_for_a_new_org() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 14, "acme", 1, 1).await;
    let agent = &org.agents[0];
    // The agent's key under a master card claiming the real master's name.
    let fake = IdentityCard::issue(&agent.keys, "acme-master", Role::Master, 1).unwrap();
    let p = PolicyParams::new(
        "acme-support",
        org.trustees.iter().map(Identity::card).collect(),
        2,
        org.arbiters.iter().map(Identity::card).collect(),
        2,
    );
    let policy = OrgPolicy::issue(&agent.keys, &fake, p, now()).unwrap();
    let mut a = RawClient::login(&url, agent).await;
    let code = a
        .refused(Request::PublishPolicy(policy.policy().clone()))
        .await;
    assert!(
        matches!(code, ErrorCode::Forbidden | ErrorCode::BadRequest),
        "{code:?}"
    );
    a.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn only_the_master_publishes_certificates() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::new(15, "acme", 2, 1);
    org.register_all(&url).await;
    let mut m = RawClient::login(&url, &org.master).await;
    m.ok(Request::PublishPolicy(org.policy.policy().clone()))
        .await;
    let genuine = org.certificates[1].clone();
    let self_made = AgentCertificate::issue(
        &org.agents[1].keys,
        &org.policy,
        &org.agents[1].card,
        now() - 10,
        3_600,
    )
    .unwrap();
    for who in std::iter::once(&org.agents[0])
        .chain(&org.agents[1..])
        .chain(&org.trustees[..1])
        .chain(&org.arbiters[..1])
        .chain(&org.customers)
    {
        let mut o = RawClient::login(&url, who).await;
        for cert in [&genuine, &self_made] {
            assert_eq!(
                o.refused(Request::PublishCertificate(cert.clone())).await,
                ErrorCode::Forbidden,
                "{} published a certificate",
                who.name()
            );
        }
        o.close().await;
    }
    // The master cannot publish a certificate it did not sign either.
    assert_eq!(
        m.refused(Request::PublishCertificate(self_made)).await,
        ErrorCode::BadRequest
    );
    // So there is no agent yet: a customer cannot open a conversation.
    let mut c = RawClient::login(&url, &org.customers[0]).await;
    assert_eq!(
        c.refused(Request::OpenConversation {
            org: "acme".into(),
            conversation: ConversationId::random(&mut rng(150)),
        })
        .await,
        ErrorCode::NotFound
    );
    m.ok(Request::PublishCertificate(genuine.clone())).await;
    match c
        .request(Request::GetCertificate {
            org: "acme".into(),
            agent: org.agents[1].name().into(),
        })
        .await
    {
        Response::Certificate(cert) => assert_eq!(cert, genuine),
        other => panic!("expected the certificate, got {other:?}"),
    }
    m.close().await;
    c.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn only_customers_open_conversations() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 16, "acme", 1, 1).await;
    for (i, who) in [
        &org.agents[0],
        &org.master,
        &org.trustees[0],
        &org.arbiters[0],
    ]
    .into_iter()
    .enumerate()
    {
        let mut o = RawClient::login(&url, who).await;
        assert_eq!(
            o.refused(Request::OpenConversation {
                org: "acme".into(),
                conversation: ConversationId::random(&mut rng(160 + i as u64)),
            })
            .await,
            ErrorCode::Forbidden,
            "{} opened a conversation",
            who.name()
        );
        o.close().await;
    }
    stop_relay(relay).await;
}

#[tokio::test]
async fn epochs_follow_the_chain_and_only_members_may_open_the_next() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 17, "acme", 2, 1).await;
    let customer = &org.customers[0];
    let mut c = RawClient::login(&url, customer).await;
    let chat = org.start_chat(&mut c, 0, 170).await;
    let (old_i, new_i) = (chat.agent, 1 - chat.agent);
    let (old, new) = (&org.agents[old_i], &org.agents[new_i]);
    let mut a = RawClient::login(&url, old).await;
    let mut b = RawClient::login(&url, new).await;
    c.stored(Request::Send(chat.seal(customer, 0, "epoch 0 text")))
        .await;

    // Only the assigned agent transfers.
    let to_new = Request::Transfer {
        conversation: chat.id,
        agent: new.name().into(),
    };
    assert_eq!(c.refused(to_new.clone()).await, ErrorCode::Forbidden);
    let code = b.refused(to_new.clone()).await;
    assert!(
        matches!(code, ErrorCode::NotFound | ErrorCode::Forbidden),
        "{code:?}"
    );
    a.ok(to_new).await;
    let (conv, who) = b
        .expect_push("assignment", |p| match p {
            Push::Assigned {
                conversation,
                customer,
            } => Some((*conversation, customer.clone())),
            _ => None,
        })
        .await;
    assert_eq!((conv, who), (chat.id, customer.card()));

    // The new agent was not a member of epoch 0: it cannot open epoch 1.
    let members = [customer.card.clone(), new.card.clone()];
    let next = |creator: &Identity, seed: u64| {
        EpochRecord::create(
            &mut rng(seed),
            &creator.keys,
            &org.policy,
            NewEpoch {
                conversation: chat.id,
                epoch: 1,
                members: &members,
                previous: Some(chat.record.record()),
                now: now(),
            },
        )
        .unwrap()
        .0
    };
    assert_eq!(
        b.refused(Request::PutEpoch(next(new, 171).into_record()))
            .await,
        ErrorCode::BadRequest
    );
    // A record that skips a number, or does not chain to epoch 0, is refused too.
    let (skip, _) = EpochRecord::create(
        &mut rng(172),
        &old.keys,
        &org.policy,
        NewEpoch {
            conversation: chat.id,
            epoch: 2,
            members: &members,
            previous: Some(chat.record.record()),
            now: now(),
        },
    )
    .unwrap();
    assert_eq!(
        a.refused(Request::PutEpoch(skip.into_record())).await,
        ErrorCode::BadRequest
    );
    let (unchained, _) = EpochRecord::create(
        &mut rng(173),
        &old.keys,
        &org.policy,
        NewEpoch {
            conversation: chat.id,
            epoch: 1,
            members: &members,
            previous: None,
            now: now(),
        },
    )
    .unwrap();
    assert_eq!(
        a.refused(Request::PutEpoch(unchained.into_record())).await,
        ErrorCode::BadRequest
    );

    // The transferring member opens epoch 1 for the new agent.
    let e1 = next(old, 174);
    let seq = a.stored(Request::PutEpoch(e1.record().clone())).await;
    let pushed = b
        .expect_push("epoch 1", |p| match p {
            Push::Item(s) if s.seq == seq => Some(s.clone()),
            _ => None,
        })
        .await;
    let Item::Epoch(rec) = pushed.item else {
        panic!("expected epoch 1");
    };
    let v1 = rec.verify(&org.policy).unwrap();
    v1.check_follows(Some(&chat.record)).unwrap();
    let k1 = v1.open(&new.keys, &org.policy).unwrap();
    let keys1 = EpochKeys::new(&k1, &v1);
    // A second record for epoch 1 is refused.
    assert_eq!(
        a.refused(Request::PutEpoch(next(old, 175).into_record()))
            .await,
        ErrorCode::StaleEpoch
    );

    // The old agent, no longer a member, cannot send in epoch 1 nor open epoch 2.
    let env = keys1
        .seal_message(&new.keys, 0, ContentKind::Text, now(), b"x")
        .unwrap();
    let mut spoof = env.clone();
    spoof.header.sender = old.key();
    let code = a.refused(Request::Send(spoof)).await;
    assert_eq!(
        code,
        ErrorCode::Forbidden,
        "not a member of the current epoch"
    );
    let (e2, _) = EpochRecord::create(
        &mut rng(176),
        &old.keys,
        &org.policy,
        NewEpoch {
            conversation: chat.id,
            epoch: 2,
            members: &[customer.card.clone(), old.card.clone()],
            previous: Some(v1.record()),
            now: now(),
        },
    )
    .unwrap();
    assert_eq!(
        a.refused(Request::PutEpoch(e2.into_record())).await,
        ErrorCode::BadRequest
    );
    // Nobody sends in the closed epoch 0 any more.
    assert_eq!(
        c.refused(Request::Send(chat.seal(customer, 1, "stale epoch")))
            .await,
        ErrorCode::StaleEpoch
    );
    // The new agent sends in epoch 1; the old agent neither receives it nor reads it.
    let seq = b.stored(Request::Send(env)).await;
    c.expect_push("epoch 1 message", |p| match p {
        Push::Item(s) if s.seq == seq => Some(()),
        _ => None,
    })
    .await;
    a.expect_no_push(
        "epoch 1 message to the old agent",
        |p| matches!(p, Push::Item(s) if s.seq == seq),
    )
    .await;
    match a
        .request(Request::History {
            conversation: chat.id,
            after: 0,
            limit: 100,
        })
        .await
    {
        Response::Items { items, .. } => {
            for s in &items {
                match &s.item {
                    Item::Epoch(r) => assert_eq!(r.epoch, 0, "the old agent read epoch 1's record"),
                    Item::Message(m) => assert_eq!(m.header.epoch, 0, "the old agent read epoch 1"),
                    other => panic!("unexpected item {other:?}"),
                }
            }
            assert_eq!(items.len(), 2);
        }
        other => panic!("expected Items, got {other:?}"),
    }
    // Paging one item at a time over what it may not read ends cleanly, with the same items.
    let mut after = 0;
    let mut seen = Vec::new();
    for _ in 0..20 {
        match a
            .request(Request::History {
                conversation: chat.id,
                after,
                limit: 1,
            })
            .await
        {
            Response::Items { items, more, .. } => {
                seen.extend(items.iter().map(|s| s.seq));
                match items.last() {
                    Some(l) => after = l.seq,
                    None => assert!(!more, "an empty page that says more follow"),
                }
                if !more {
                    break;
                }
            }
            other => panic!("expected Items, got {other:?}"),
        }
    }
    assert_eq!(seen, vec![1, 2], "paging ends after the readable items");
    // With history hand-off, the old agent may give the new one epoch 0 — but not epoch 1.
    let bad = HandOff::create(
        &mut rng(177),
        &old.keys,
        &new.card,
        chat.id,
        &[(1, &k1)],
        now(),
    )
    .unwrap();
    assert_eq!(
        a.refused(Request::PutHandOff(bad)).await,
        ErrorCode::Forbidden
    );
    let good = HandOff::create(
        &mut rng(178),
        &old.keys,
        &new.card,
        chat.id,
        &[(0, &chat.secret)],
        now(),
    )
    .unwrap();
    a.stored(Request::PutHandOff(good)).await;
    match b
        .request(Request::History {
            conversation: chat.id,
            after: 0,
            limit: 100,
        })
        .await
    {
        Response::Items { items, .. } => {
            let ho = items
                .iter()
                .find_map(|s| match &s.item {
                    Item::HandOff(h) => Some(h.clone()),
                    _ => None,
                })
                .expect("the hand-off is readable by its recipient");
            let got = ho
                .open(&new.keys, std::slice::from_ref(&chat.record))
                .unwrap();
            assert_eq!(*got[0].1.to_bytes(), *chat.secret.to_bytes());
            assert!(
                items
                    .iter()
                    .any(|s| matches!(&s.item, Item::Message(m) if m.header.epoch == 0)),
                "after the hand-off the new agent reads epoch 0"
            );
        }
        other => panic!("expected Items, got {other:?}"),
    }
    for x in [a, b, c] {
        x.close().await;
    }
    stop_relay(relay).await;
}

#[tokio::test]
async fn forged_and_tampered_epoch_records_are_refused() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 18, "acme", 1, 2).await;
    let other = Org::setup(&url, 19, "globex", 1, 0).await;
    let customer = &org.customers[0];
    let agent = &org.agents[0];
    let mut c = RawClient::login(&url, customer).await;
    let mut a = RawClient::login(&url, agent).await;
    let id = ConversationId::random(&mut rng(180));
    assert!(matches!(
        c.request(Request::OpenConversation {
            org: "acme".into(),
            conversation: id,
        })
        .await,
        Response::Opened { .. }
    ));
    let (good, _) = org.epoch(
        &mut rng(181),
        EpochSpec {
            conversation: id,
            creator: customer,
            customer: 0,
            agent: 0,
            epoch: 0,
            previous: None,
        },
    );
    let good = good.into_record();

    // A field changed after signing.
    let mut t = good.clone();
    t.created_at += 1;
    assert_eq!(c.refused(Request::PutEpoch(t)).await, ErrorCode::BadRequest);
    // A member slipped in after signing (with a sealed secret to match the count).
    let mut t = good.clone();
    t.members.push(org.customers[1].card());
    t.sealed_secrets.push(t.sealed_secrets[0].clone());
    assert_eq!(c.refused(Request::PutEpoch(t)).await, ErrorCode::BadRequest);
    // A signature by someone else than the named creator.
    let mut t = good.clone();
    t.signature = agent.keys.sign(&t.signed_bytes());
    assert_eq!(c.refused(Request::PutEpoch(t)).await, ErrorCode::BadRequest);
    // Epoch 0 created by the agent: the customer opens a conversation's first epoch.
    let (by_agent, _) = org.epoch(
        &mut rng(182),
        EpochSpec {
            conversation: id,
            creator: agent,
            customer: 0,
            agent: 0,
            epoch: 0,
            previous: None,
        },
    );
    assert_eq!(
        a.refused(Request::PutEpoch(by_agent.record().clone()))
            .await,
        ErrorCode::BadRequest
    );
    // Someone else's record relayed by the customer (creator is not the sender).
    assert_eq!(
        c.refused(Request::PutEpoch(by_agent.into_record())).await,
        ErrorCode::Forbidden
    );
    // Made under another org's policy.
    let members = [customer.card.clone(), other.agents[0].card.clone()];
    let (foreign, _) = EpochRecord::create(
        &mut rng(183),
        &customer.keys,
        &other.policy,
        NewEpoch {
            conversation: id,
            epoch: 0,
            members: &members,
            previous: None,
            now: now(),
        },
    )
    .unwrap();
    assert_eq!(
        c.refused(Request::PutEpoch(foreign.into_record())).await,
        ErrorCode::BadRequest
    );
    // A record whose customer is not the conversation's (the other customer's record, signed by
    // that customer, then relayed) is refused as well.
    let (theirs, _) = org.epoch(
        &mut rng(184),
        EpochSpec {
            conversation: id,
            creator: &org.customers[1],
            customer: 1,
            agent: 0,
            epoch: 0,
            previous: None,
        },
    );
    let code = c.refused(Request::PutEpoch(theirs.into_record())).await;
    assert!(
        matches!(code, ErrorCode::Forbidden | ErrorCode::BadRequest),
        "{code:?}"
    );
    // Unknown protocol version.
    let mut t = good.clone();
    t.version = 9;
    assert_eq!(c.refused(Request::PutEpoch(t)).await, ErrorCode::BadRequest);

    // None of that took a sequence number or a slot: the genuine record is seq 1.
    assert_eq!(c.stored(Request::PutEpoch(good.clone())).await, 1);
    assert_eq!(
        c.refused(Request::PutEpoch(good)).await,
        ErrorCode::StaleEpoch,
        "the same record twice"
    );
    c.close().await;
    a.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn senders_cannot_speak_for_another_member() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 20, "acme", 1, 1).await;
    let customer = &org.customers[0];
    let agent = &org.agents[0];
    let mut c = RawClient::login(&url, customer).await;
    let mut a = RawClient::login(&url, agent).await;
    let chat = org.start_chat(&mut c, 0, 200).await;

    // The customer's message with the agent's key in the header.
    let mut env = chat.seal(customer, 0, "I, the agent, promise a refund");
    env.header.sender = agent.key();
    assert_eq!(c.refused(Request::Send(env)).await, ErrorCode::Forbidden);
    // A message the agent genuinely sealed, replayed by the customer.
    let agents_own = chat.seal(agent, 0, "genuine agent text");
    assert_eq!(
        c.refused(Request::Send(agents_own.clone())).await,
        ErrorCode::Forbidden
    );
    // And the other way round.
    let mut env = chat.seal(agent, 1, "I, the customer, withdraw my complaint");
    env.header.sender = customer.key();
    assert_eq!(a.refused(Request::Send(env)).await, ErrorCode::Forbidden);
    // The agent's own message goes through, once; nothing refused was stored.
    assert_eq!(a.stored(Request::Send(agents_own)).await, 2);
    c.close().await;
    a.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn only_trustees_append_release_entries_and_nobody_appends_erasures() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 21, "acme", 1, 2).await;
    let customer = &org.customers[0];
    let mut c = RawClient::login(&url, customer).await;
    let chat = org.start_chat(&mut c, 0, 210).await;

    let not_trustees = [
        &org.master,
        &org.agents[0],
        &org.customers[0],
        &org.customers[1],
        &org.arbiters[0],
    ];
    for (i, who) in not_trustees.iter().enumerate() {
        let mut o = RawClient::login(&url, who).await;
        let entry = AuditEntry::sign(
            &who.keys,
            release_event(&org, chat.id, [i as u8; 32]),
            now(),
        );
        assert_eq!(
            o.refused(Request::AppendAudit(entry)).await,
            ErrorCode::Forbidden,
            "{} logged a release",
            who.name()
        );
        o.close().await;
    }
    let mut t = RawClient::login(&url, &org.trustees[0]).await;
    // An entry signed by another trustee, sent by this one.
    let theirs = AuditEntry::sign(
        &org.trustees[1].keys,
        release_event(&org, chat.id, [40; 32]),
        now(),
    );
    assert_eq!(
        t.refused(Request::AppendAudit(theirs)).await,
        ErrorCode::Forbidden
    );
    // A tampered entry.
    let mut tampered = AuditEntry::sign(
        &org.trustees[0].keys,
        release_event(&org, chat.id, [41; 32]),
        now(),
    );
    tampered.at += 1;
    assert_eq!(
        t.refused(Request::AppendAudit(tampered)).await,
        ErrorCode::BadRequest
    );
    // The trustee's own entry is appended.
    let own = AuditEntry::sign(
        &org.trustees[0].keys,
        release_event(&org, chat.id, [42; 32]),
        now(),
    );
    assert!(matches!(
        t.request(Request::AppendAudit(own)).await,
        Response::Appended { index: 0, .. }
    ));

    // Erasure entries: only the relay writes them, whoever asks.
    let everyone: Vec<&Identity> = org.everyone().collect();
    for who in everyone {
        let mut o = RawClient::login(&url, who).await;
        let entry = erasure_entry(&who.keys, chat.id, "customer request", now());
        assert_eq!(
            o.refused(Request::AppendAudit(entry)).await,
            ErrorCode::Forbidden,
            "{} logged an erasure",
            who.name()
        );
        o.close().await;
    }
    // Policy changes: only the master.
    let change = |who: &Identity| {
        AuditEntry::sign(
            &who.keys,
            AuditEvent::PolicyChange {
                org: "acme".into(),
                version: 1,
                policy_hash: org.policy.hash(),
            },
            now(),
        )
    };
    assert_eq!(
        t.refused(Request::AppendAudit(change(&org.trustees[0])))
            .await,
        ErrorCode::Forbidden
    );
    let mut m = RawClient::login(&url, &org.master).await;
    assert!(matches!(
        m.request(Request::AppendAudit(change(&org.master))).await,
        Response::Appended { index: 1, .. }
    ));
    // Exactly the two accepted entries are in the log.
    match m.request(Request::GetTreeHead).await {
        Response::TreeHead(h) => assert_eq!(h.size, 2),
        other => panic!("expected a tree head, got {other:?}"),
    }
    for x in [c, t, m] {
        x.close().await;
    }
    stop_relay(relay).await;
}

#[tokio::test]
async fn a_trustee_of_another_org_cannot_put_notices_into_a_conversation() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 22, "acme", 1, 1).await;
    let other = Org::setup(&url, 23, "globex", 1, 0).await;
    let mut c = RawClient::login(&url, &org.customers[0]).await;
    let chat = org.start_chat(&mut c, 0, 220).await;
    let mut t = RawClient::login(&url, &other.trustees[0]).await;
    let entry = AuditEntry::sign(
        &other.trustees[0].keys,
        release_event(&other, chat.id, [7; 32]),
        now(),
    );
    let refused = matches!(
        t.request(Request::AppendAudit(entry)).await,
        Response::Error { .. }
    );
    // Whether or not the log takes the entry, acme's customer must not get a notice from globex.
    c.expect_no_push(
        "a foreign notice",
        |p| matches!(p, Push::Item(s) if matches!(s.item, Item::Notice { .. })),
    )
    .await;
    assert_eq!(
        history_len(&mut c, chat.id).await,
        Ok(1),
        "only the epoch record"
    );
    assert!(refused, "the foreign release entry was accepted");
    c.close().await;
    t.close().await;
    stop_relay(relay).await;
}

#[tokio::test]
async fn only_the_conversations_customer_revokes_consent_or_erases() {
    let (relay, _dir) = spawn_relay().await;
    let url = relay.ws_url();
    let org = Org::setup(&url, 24, "acme", 1, 2).await;
    let customer = &org.customers[0];
    let mut c = RawClient::login(&url, customer).await;
    let chat = org.start_chat(&mut c, 0, 240).await;
    let token = full_consent(&org, customer, chat.id, 241);
    // Shared with the master, so the relay knows it (only a consent it has seen is revocable).
    c.stored(Request::ShareConsent(token.clone())).await;
    let revocation = |who: &Identity| consent::revocation(&who.keys, chat.id, token.id);
    let others = [
        &org.agents[0],
        &org.master,
        &org.trustees[0],
        &org.arbiters[0],
        &org.customers[1],
    ];
    for who in others {
        let mut o = RawClient::login(&url, who).await;
        let code = o.refused(Request::AppendAudit(revocation(who))).await;
        assert!(
            matches!(code, ErrorCode::Forbidden | ErrorCode::NotFound),
            "{} revoked the consent: {code:?}",
            who.name()
        );
        // The customer's genuine revocation, relayed by someone else.
        let code = o.refused(Request::AppendAudit(revocation(customer))).await;
        assert_eq!(code, ErrorCode::Forbidden, "{}", who.name());
        // Erasure, signed by itself or relaying the customer's signed request.
        for req in [
            ErasureRequest::sign(&who.keys, chat.id, now()),
            ErasureRequest::sign(&customer.keys, chat.id, now()),
        ] {
            let code = o.refused(Request::Erase(req)).await;
            assert!(
                matches!(code, ErrorCode::Forbidden | ErrorCode::NotFound),
                "{} erased the conversation: {code:?}",
                who.name()
            );
        }
        o.close().await;
    }
    // The conversation is intact (its epoch and the shared consent).
    assert_eq!(history_len(&mut c, chat.id).await, Ok(2));
    // The customer's own revocation is logged; its erasure request with another customer's
    // key inside is refused; its own is carried out.
    assert!(matches!(
        c.request(Request::AppendAudit(revocation(customer))).await,
        Response::Appended { .. }
    ));
    assert_eq!(
        c.refused(Request::Erase(ErasureRequest::sign(
            &org.customers[1].keys,
            chat.id,
            now()
        )))
        .await,
        ErrorCode::Forbidden
    );
    c.ok(Request::Erase(ErasureRequest::sign(
        &customer.keys,
        chat.id,
        now(),
    )))
    .await;
    assert_eq!(history_len(&mut c, chat.id).await, Err(ErrorCode::NotFound));
    c.close().await;
    stop_relay(relay).await;
}
