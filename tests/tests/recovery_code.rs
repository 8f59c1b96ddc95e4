//! Replaceable recovery codes (issue 22): a customer's new code recovers the same keys and the
//! code before stops working; the relay stores a recovery record only from its own account
//! (negative tests through the wire, where the client would not even try); and an interrupted
//! replacement leaves either the old or the new code working, and the client finds out which.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sealdesk_client::{
    Account, Client, ClientError, TlsOptions, recovery, recovery::NewAccount,
    recovery_code::InForce,
};
use sealdesk_protocol::{
    card::Role,
    recovery::RecoveryCode,
    recovery_record::{RecoveryProof, RecoveryRecord},
    wire::{ErrorCode, Frame, Request, Response},
};
use sealdesk_tests::{
    proxy::Dir,
    wait::eventually,
    world::{FAST_KDF, PASS, Via, World},
};

/// Carol with an `init` recovery code, registered `via`; her code as text.
async fn carol_with_code(w: &World, via: Via) -> (Client, String) {
    let NewAccount { account, code } =
        Account::create_with_code(&w.home("carol"), PASS, FAST_KDF, "carol").unwrap();
    let mut c = Client::connect(account, &w.url_via(via)).await.unwrap();
    c.register().await.unwrap();
    (c, code.reveal().to_string())
}

async fn recover(w: &World, home: &str, code: &str) -> Result<recovery::Recovered, ClientError> {
    let code = RecoveryCode::parse(code).unwrap();
    recovery::recover(
        &w.home(home),
        PASS,
        FAST_KDF,
        "carol",
        &code,
        &w.url,
        &TlsOptions::default(),
    )
    .await
}

/// A new code for `c`, installed; its text.
async fn replace(c: &mut Client) -> String {
    let code = c.account().pending_recovery_code().unwrap();
    c.install_recovery_code(&code).await.unwrap();
    assert!(!c.account().has_pending_recovery_code().unwrap());
    code.reveal().to_string()
}

#[tokio::test]
async fn a_new_code_recovers_the_same_keys_and_retires_the_one_before() {
    let w = World::new().await;
    let (mut carol, first) = carol_with_code(&w, Via::Relay).await;
    let fingerprint = carol.account().fingerprint().to_string();
    let second = replace(&mut carol).await;

    // The init code is refused once a newer code exists; nothing is created.
    let e = recover(&w, "old", &first).await.unwrap_err();
    assert!(matches!(e, ClientError::RecoveryCodeReplaced { .. }), "{e}");
    assert!(!w.home("old").exists());
    let back = recover(&w, "new", &second).await.unwrap();
    assert_eq!(back.client.account().fingerprint().to_string(), fingerprint);
    back.client.close().await;

    // Replaced again: the second code fetches nothing now, the third works.
    let third = replace(&mut carol).await;
    let e = recover(&w, "older", &second).await.unwrap_err();
    assert!(matches!(e, ClientError::NotRecovered { .. }), "{e}");
    assert!(!w.home("older").exists());
    let back = recover(&w, "newest", &third).await.unwrap();
    assert_eq!(back.client.account().fingerprint().to_string(), fingerprint);
}

#[tokio::test]
async fn an_account_without_a_code_gets_one_and_other_roles_are_told_why_not() {
    let w = World::new().await;
    // Made with random keys, as before recovery codes existed.
    let mut carol = w.user("carol", Role::Customer).await;
    let fingerprint = carol.account().fingerprint().to_string();
    let code = replace(&mut carol).await;
    let back = recover(&w, "new", &code).await.unwrap();
    assert_eq!(back.client.account().fingerprint().to_string(), fingerprint);

    let bob = w.user("bob", Role::Agent).await;
    let e = bob.account().pending_recovery_code().unwrap_err();
    assert!(
        matches!(e, ClientError::RecoveryCodeNotOffered { role: "agent", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("org recertify"), "{e}");
    assert!(!bob.account().has_pending_recovery_code().unwrap());
}

#[tokio::test]
async fn the_relay_keeps_a_record_only_from_its_own_customer_and_hands_it_only_for_the_code() {
    let w = World::new().await;
    let mut carol = w.user("carol", Role::Customer).await;
    let code = replace(&mut carol).await;
    let code = RecoveryCode::parse(&code).unwrap();
    let mut rng = sealdesk_client::rng().unwrap();

    // Mallory, another customer, sends a record with carol's card sealed with her own keys
    // under a code of hers: refused, and carol's code still fetches carol's record.
    let mallory = w.user("mallory", Role::Customer).await;
    let theirs = RecoveryCode::generate_for_record(&mut rng, 1).unwrap();
    let mut forged = RecoveryRecord::seal(
        &mut rng,
        &theirs,
        mallory.account().card().card(),
        mallory.account().keys(),
    )
    .unwrap();
    forged.card = carol.account().card().card().clone();
    let r = mallory
        .session()
        .request(Request::PutRecovery(forged))
        .await
        .unwrap_err();
    assert_forbidden(&r);
    let fetched = mallory
        .session()
        .request(Request::GetRecovery {
            name: "carol".into(),
            proof: RecoveryProof::of(&code).unwrap().to_bytes().to_vec(),
        })
        .await
        .unwrap();
    let Response::Recovery(record) = fetched else {
        panic!("{fetched:?}")
    };
    assert_eq!(
        record.open(&code, "carol").unwrap().signing_public(),
        carol.account().keys().signing_public()
    );
    // Another proof (mallory's code's), or none: refused.
    for proof in [
        RecoveryProof::of(&theirs).unwrap().to_bytes().to_vec(),
        Vec::new(),
    ] {
        let r = mallory
            .session()
            .request(Request::GetRecovery {
                name: "carol".into(),
                proof,
            })
            .await
            .unwrap_err();
        assert_forbidden(&r);
    }

    // An agent's own record: refused (the client does not even try).
    let bob = w.user("bob", Role::Agent).await;
    let own = RecoveryRecord::seal(
        &mut rng,
        &theirs,
        bob.account().card().card(),
        bob.account().keys(),
    )
    .unwrap();
    let r = bob
        .session()
        .request(Request::PutRecovery(own))
        .await
        .unwrap_err();
    assert_forbidden(&r);
}

/// Carol through the proxy with an init code, and a replacement cut off in `dir`: the request
/// never reaches the relay (`ToRelay`) or its answer never comes back (`ToClient`). The
/// replacing process is gone (its task aborted); carol opens her home again directly.
async fn interrupted(dir: Dir) -> (World, String, String, Client) {
    let w = World::with_proxy().await;
    let (mut carol, first) = carol_with_code(&w, Via::Proxy).await;
    let cut = Arc::new(AtomicBool::new(false));
    let seen = cut.clone();
    w.proxy().set_hook(move |ctx, frame| {
        let put = match (&frame, ctx.dir) {
            (Frame::Request { body, .. }, Dir::ToRelay) => {
                matches!(body, Request::PutRecovery(_))
            }
            (Frame::Response { .. }, Dir::ToClient) => {
                matches!(ctx.request, Some(Request::PutRecovery(_)))
            }
            _ => false,
        };
        if put && ctx.dir == dir {
            seen.store(true, Ordering::SeqCst);
            return Vec::new();
        }
        vec![frame]
    });
    let pending = carol.account().pending_recovery_code().unwrap();
    let second = pending.reveal().to_string();
    let task = tokio::spawn(async move {
        let _ = carol.install_recovery_code(&pending).await;
    });
    eventually("the replacement is cut off", async || {
        cut.load(Ordering::SeqCst).then_some(())
    })
    .await;
    task.abort();
    let _ = task.await;
    let carol = w.reopen("carol").await;
    (w, first, second, carol)
}

#[tokio::test]
async fn a_replacement_cut_off_before_the_relay_keeps_the_old_code_and_finishes_later() {
    let (w, first, second, mut carol) = interrupted(Dir::ToRelay).await;
    assert!(carol.account().has_pending_recovery_code().unwrap());
    let pending = carol.account().pending_recovery_code().unwrap();
    assert_eq!(pending.reveal().as_str(), second, "the same code is kept");
    assert_eq!(
        carol.recovery_code_in_force(&pending).await.unwrap(),
        InForce::Previous
    );
    // The old code works, the unconfirmed one does not.
    let e = recover(&w, "new", &second).await.unwrap_err();
    assert!(matches!(e, ClientError::NotRecovered { .. }), "{e}");
    recover(&w, "old", &first)
        .await
        .unwrap()
        .client
        .close()
        .await;
    // Finished by a later run, with the same code.
    carol.install_recovery_code(&pending).await.unwrap();
    assert!(!carol.account().has_pending_recovery_code().unwrap());
    recover(&w, "new", &second)
        .await
        .unwrap()
        .client
        .close()
        .await;
    let e = recover(&w, "old2", &first).await.unwrap_err();
    assert!(matches!(e, ClientError::RecoveryCodeReplaced { .. }), "{e}");
}

#[tokio::test]
async fn a_replacement_whose_answer_is_lost_is_found_in_force_and_the_new_code_works() {
    let (w, first, second, mut carol) = interrupted(Dir::ToClient).await;
    let pending = carol.account().pending_recovery_code().unwrap();
    assert_eq!(pending.reveal().as_str(), second);
    assert_eq!(
        carol.recovery_code_in_force(&pending).await.unwrap(),
        InForce::Pending
    );
    assert!(!carol.account().has_pending_recovery_code().unwrap());
    let e = recover(&w, "old", &first).await.unwrap_err();
    assert!(matches!(e, ClientError::RecoveryCodeReplaced { .. }), "{e}");
    recover(&w, "new", &second)
        .await
        .unwrap()
        .client
        .close()
        .await;
}

/// `r` is the relay's `forbidden`.
fn assert_forbidden(r: &ClientError) {
    assert!(
        matches!(
            r,
            ClientError::Relay {
                code: ErrorCode::Forbidden,
                ..
            }
        ),
        "{r}"
    );
}
