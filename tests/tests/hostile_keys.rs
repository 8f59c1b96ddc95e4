//! The hostile relay substitutes keys: cards in lookups and pushes (against a pin, and on the
//! master's first lookup), the org policy (another master's, and an older version), agent
//! certificates it signed itself, and its own audit-log key on a later connection. Each is
//! refused with a named error before anything is certified, published or sealed to a key the
//! relay chose.
//!
//! Hermetic: loopback only, temporary directories, the fast test KDF. No timing assertions:
//! the only waits are generous bounds ([`sealdesk_tests::STEP`]) that keep a broken test from
//! hanging. `SECURITY.md` maps each attack to its test and the observed result; the other
//! `hostile_*.rs` files hold the rest of the hostile relay's attacks, and
//! [`sealdesk_tests::hostile`] its shared hooks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealdesk_client::{Account, Client, ClientError};
use sealdesk_protocol::{
    card::Role,
    policy::{AgentCertificate, OrgPolicy, PolicyParams, VerifiedPolicy},
    wire::{Frame, Push, Request, Response},
};
use sealdesk_tests::{
    Identity, STEP,
    hostile::{answer_for, impostor},
    now,
    world::{MASTER, ORG, PASS, Via, World, open_chat, spec, texts},
};

// ---- substituted keys, cards, policies, certificates ---------------------------------------

/// Handles `c`'s pushes (as its event loop would) until one `stop` accepts has been handled.
async fn handle_pushes_until(c: &mut Client, mut stop: impl FnMut(&Push) -> bool) {
    loop {
        let push = tokio::time::timeout(STEP, c.session().next_push())
            .await
            .expect("timed out waiting for a push")
            .expect("the connection closed");
        let last = stop(&push);
        // A push about no conversation comes back to the caller's loop to route; these tests
        // only wait for it.
        if let Err(other) = c.handle_push(push).await.unwrap() {
            assert!(last, "an unexpected push: {other:?}");
        }
        if last {
            return;
        }
    }
}

/// A policy for the same org (same trustees, arbiters and version) signed by `master`.
fn policy_signed_by(real: &VerifiedPolicy, master: &Identity) -> VerifiedPolicy {
    let mut params = PolicyParams::new(
        &real.org,
        real.trustees.clone(),
        real.trustee_threshold,
        real.arbiters.clone(),
        real.arbiter_threshold,
    );
    params.version = real.version;
    OrgPolicy::issue(&master.keys, &master.card, params, now()).unwrap()
}

/// The relay answers a card lookup with a card of its own under a pinned name: the master's
/// renewal of alice's certificate and its new policy version are refused with `KeyChanged`,
/// and nothing is certified or published for the relay's keys.
#[tokio::test]
async fn substituted_card_in_a_lookup_is_refused_against_the_pin() {
    let w = World::with_proxy().await;
    drop(w.org_master(&["alice"], None).await.close().await);
    let fake_alice = impostor(9_002, "alice", Role::Agent);
    let fake_trustee = impostor(9_003, "trustee-1", Role::Trustee);
    let (a, t) = (fake_alice.card(), fake_trustee.card());
    w.proxy()
        .set_hook(answer_for(MASTER, move |req, body| match req {
            Request::GetCard { name } if name == "alice" => Response::Card(a.clone()),
            Request::GetCard { name } if name == "trustee-1" => Response::Card(t.clone()),
            _ => body,
        }));
    let mut master = w.reopen_via(MASTER, Via::Proxy).await;
    let err = master.add_agent(ORG, "alice").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::KeyChanged { name } if name == "alice"),
        "{err}"
    );
    let err = master.create_org(&spec(None, Some(30))).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::KeyChanged { name } if name == "trustee-1"),
        "{err}"
    );
    assert_eq!(
        w.proxy().requests_sent(MASTER, |r| matches!(
            r,
            Request::PublishCertificate(_) | Request::PublishPolicy(_)
        )),
        0
    );
    assert!(master.account().peer_blocked("alice").unwrap());
}

/// The relay substitutes a new agent's card on the master's *first* lookup, before anything is
/// pinned. The master has no fingerprint to check it against and is not warned, so it would
/// certify the relay's key as an agent of its org (and the relay, which assigns conversations,
/// could then be handed customers' epoch keys). The master must not certify a key it could not
/// check: it must refuse, or check a fingerprint given out of band.
#[tokio::test]
async fn card_substituted_on_the_masters_first_lookup_is_not_certified() {
    let w = World::with_proxy().await;
    drop(w.org_master(&[], None).await.close().await);
    let dave = w.user_via("dave", Role::Agent, Via::Relay).await;
    let real_key = dave.account().keys().signing_public();
    // What dave reads from `sealdesk whoami` and tells the master out of band.
    let real_fp = sealdesk_protocol::keys::Fingerprint::of(
        &real_key,
        &dave.account().keys().agreement_public(),
    )
    .to_string();
    dave.close().await;
    let fake = impostor(9_014, "dave", Role::Agent).card();
    w.proxy()
        .set_hook(answer_for(MASTER, move |req, body| match req {
            Request::GetCard { name } if name == "dave" => Response::Card(fake.clone()),
            _ => body,
        }));
    let mut master = w.reopen_via(MASTER, Via::Proxy).await;
    match master.add_agent_checked(ORG, "dave", Some(&real_fp)).await {
        Err(ClientError::CardFingerprintMismatch { name, .. }) => assert_eq!(name, "dave"),
        Ok(cert) => assert_eq!(
            cert.agent.signing_key, real_key,
            "the master certified the relay's key as agent dave"
        ),
        Err(e) => panic!("expected CardFingerprintMismatch, got {e}"),
    }
}

/// The relay pushes a made-up card for the conversation's customer to the agent: the pinned
/// key's change is recorded and blocks sending with `KeyChanged` until the agent accepts it.
#[tokio::test]
async fn substituted_customer_card_blocks_the_agent_from_sending() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Relay).await;
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap(); // pins carol from epoch 0
    let fake = impostor(9_004, "carol", Role::Customer);
    let push = Frame::Push(Push::Assigned {
        conversation: conv,
        customer: fake.card(),
    });
    assert_eq!(w.proxy().inject_to_client("alice", &push), 1);
    handle_pushes_until(&mut alice, |p| matches!(p, Push::Assigned { .. })).await;
    let err = alice.send_text(&conv, "reply").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::KeyChanged { name } if name == "carol"),
        "{err}"
    );
    assert_eq!(texts(&alice, &conv), ["carol: hello"]);
}

/// The relay serves an org policy signed by a master key of its own: refused with
/// `OrgKeyChanged` against the pin, and with `FingerprintMismatch` on a first contact made with
/// the fingerprint the business published. No epoch is opened under it.
#[tokio::test]
async fn substituted_policy_with_another_master_is_refused() {
    let w = World::with_proxy().await;
    let master = w.org_master(&["alice"], None).await;
    let fingerprint = master.account().fingerprint().to_string();
    let mut carol = w.user_via("carol", Role::Customer, Via::Proxy).await;
    carol.open_conversation(ORG, None).await.unwrap(); // pins the real master
    let real = carol.latest_policy(ORG).await.unwrap();
    let fake_master = impostor(9_005, MASTER, Role::Master);
    let fake = policy_signed_by(&real, &fake_master).policy().clone();
    let substitute = move |_: &Request, body| match body {
        Response::Opened {
            agent, certificate, ..
        } => Response::Opened {
            agent,
            certificate,
            policy: fake.clone(),
            quota: None,
        },
        Response::Policy(_) => Response::Policy(fake.clone()),
        other => other,
    };
    w.proxy().set_hook({
        let mut c = answer_for("carol", substitute.clone());
        let mut d = answer_for("dan", substitute);
        move |ctx, f| match ctx.account {
            Some("dan") => d(ctx, f),
            _ => c(ctx, f),
        }
    });
    let err = carol.open_conversation(ORG, None).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::OrgKeyChanged { org, .. } if org == ORG),
        "{err}"
    );
    let err = carol.latest_policy(ORG).await.unwrap_err();
    assert!(matches!(err, ClientError::OrgKeyChanged { .. }), "{err}");
    let pin = carol.account().org_pin(ORG).unwrap().unwrap();
    assert_eq!(pin.master.signing_key, real.master_key());
    let epochs_put = w
        .proxy()
        .requests_sent("carol", |r| matches!(r, Request::PutEpoch(_)));
    assert_eq!(epochs_put, 1, "only the genuine first conversation");

    let mut dan = w.user_via("dan", Role::Customer, Via::Proxy).await;
    let err = dan
        .open_conversation(ORG, Some(&fingerprint))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::FingerprintMismatch { .. }),
        "{err}"
    );
    assert!(dan.account().org_pin(ORG).unwrap().is_none());
}

/// The relay serves an older policy version (genuinely signed by the master) as the latest,
/// after the customer has already used a newer one: a rollback to the old trustee set must be
/// refused, not used for the next epoch.
#[tokio::test]
async fn policy_rollback_to_an_older_version_is_refused() {
    let w = World::with_proxy().await;
    let mut master = w.org_master(&["alice"], Some(2)).await;
    let mut carol = w.user_via("carol", Role::Customer, Via::Proxy).await;
    let conv = open_chat(&mut carol).await;
    let v1 = master.policy(ORG, 1).await.unwrap().policy().clone();
    let v2 = master.create_org(&spec(Some(2), Some(30))).await.unwrap();
    assert_eq!(v2.version, 2);
    for t in ["m0", "m1", "m2"] {
        carol.send_text(&conv, t).await.unwrap();
    }
    let e1 = carol.account().epoch(&conv, 1).unwrap().unwrap();
    assert_eq!(
        e1.record.policy_version, 2,
        "rotation used the newest policy"
    );

    w.proxy()
        .set_hook(answer_for("carol", move |req, body| match req {
            Request::GetPolicy { version: None, .. } => Response::Policy(v1.clone()),
            _ => body,
        }));
    carol.send_text(&conv, "m3").await.unwrap();
    let rotated = carol.send_text(&conv, "m4").await;
    let rolled_back = w.proxy().requests_sent(
        "carol",
        |r| matches!(r, Request::PutEpoch(r) if r.epoch > 0 && r.policy_version < 2),
    ) > 0;
    assert!(
        !rolled_back,
        "carol opened an epoch under policy v1 after using v2 (send: {rotated:?})"
    );
    let err = rotated.unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::PolicyRollback { org, served: 1, seen: 2 } if org == ORG
        ),
        "{err}"
    );
}

/// The relay assigns an agent of its own with a certificate it signed itself, and answers an
/// agent's certificate lookup during a transfer the same way: refused (`bad signature on agent
/// certificate`, or the card not matching the certificate) before anything is sealed to it.
#[tokio::test]
async fn forged_agent_certificate_is_refused() {
    let w = World::with_proxy().await;
    let mut master = w.org_master(&["alice"], None).await;
    let real = master.latest_policy(ORG).await.unwrap();
    let fake_master = impostor(9_006, MASTER, Role::Master);
    let fake_policy = policy_signed_by(&real, &fake_master);
    let fake_alice = impostor(9_007, "alice", Role::Agent);
    let fake_dave = impostor(9_008, "dave", Role::Agent);
    let cert_of = |who: &Identity| {
        AgentCertificate::issue(
            &fake_master.keys,
            &fake_policy,
            &who.card,
            now() - 60,
            86_400,
        )
        .unwrap()
    };
    let (alice_cert, dave_cert) = (cert_of(&fake_alice), cert_of(&fake_dave));
    let alice_card = fake_alice.card();

    // A relay-made agent with a relay-signed certificate.
    let mut carol = w.user_via("carol", Role::Customer, Via::Proxy).await;
    let (card, cert) = (alice_card.clone(), alice_cert.clone());
    w.proxy()
        .set_hook(answer_for("carol", move |_, body| match body {
            Response::Opened { policy, .. } => Response::Opened {
                agent: card.clone(),
                certificate: cert.clone(),
                policy,
                quota: None,
            },
            other => other,
        }));
    let err = carol.open_conversation(ORG, None).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("bad signature on agent certificate"),
        "{err}"
    );
    // The genuine certificate, with the relay's card for the agent.
    let card = alice_card.clone();
    w.proxy()
        .set_hook(answer_for("carol", move |_, body| match body {
            Response::Opened {
                certificate,
                policy,
                ..
            } => Response::Opened {
                agent: card.clone(),
                certificate,
                policy,
                quota: None,
            },
            other => other,
        }));
    let err = carol.open_conversation(ORG, None).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::UnexpectedResponse(m) if m.contains("does not match its certificate")),
        "{err}"
    );
    assert_eq!(
        w.proxy()
            .requests_sent("carol", |r| matches!(r, Request::PutEpoch(_))),
        0
    );

    // A transfer to dave, whose certificate lookup the relay answers with its own.
    w.proxy().passthrough();
    let conv = open_chat(&mut carol).await;
    carol.send_text(&conv, "hello").await.unwrap();
    w.user_via("dave", Role::Agent, Via::Relay)
        .await
        .close()
        .await;
    master.add_agent(ORG, "dave").await.unwrap();
    w.proxy()
        .set_hook(answer_for("alice", move |req, body| match req {
            Request::GetCertificate { agent, .. } if agent == "dave" => {
                Response::Certificate(dave_cert.clone())
            }
            _ => body,
        }));
    let mut alice = w.reopen_via("alice", Via::Proxy).await;
    alice.sync_all().await.unwrap();
    let err = alice.transfer(&conv, "dave").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("bad signature on agent certificate"),
        "{err}"
    );
    assert_eq!(
        w.proxy().requests_sent("alice", |r| matches!(
            r,
            Request::Transfer { .. } | Request::PutEpoch(_) | Request::PutHandOff(_)
        )),
        0
    );
}

// ---- relay keys ----------------------------------------------------------------------------

/// On a later connection the relay announces another audit-log key: refused with
/// `RelayKeyChanged` before anything else happens.
#[tokio::test]
async fn changed_relay_log_key_is_refused() {
    let w = World::with_proxy().await;
    let _master = w.org_master(&["alice"], None).await;
    let carol = w.user_via("carol", Role::Customer, Via::Proxy).await;
    drop(carol.close().await);
    let other = impostor(9_012, "relay", Role::Agent).key();
    w.proxy().set_hook(move |_, frame| match frame {
        Frame::Welcome(mut wl) => {
            wl.log_key = other;
            vec![Frame::Welcome(wl)]
        }
        f => vec![f],
    });
    let account = Account::open(&w.home("carol"), PASS).unwrap();
    let err = Client::connect(account, &w.proxy().url())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::RelayKeyChanged {
                what: "audit log",
                ..
            }
        ),
        "{err}"
    );
}
