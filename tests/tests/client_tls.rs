//! The client over `wss://` against a real relay serving TLS on 127.0.0.1:0, with a private CA
//! and relay certificates made by rcgen: trusted with `--ca-file`, refused without it, refused
//! for the wrong host name, a bad CA file named. (The `sealdesk` binary over `wss://` is tested
//! in `cli/tests/wss.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use sealdesk_client::{
    Account, Client, ClientError, TlsOptions, client::OrgSpec, tls::TlsError, vault::KdfParams,
};
use sealdesk_protocol::card::Role;
use sealdesk_server::config::RelayConfig;
use sealdesk_tests::{
    tls::{Ca, TlsRelay},
    world::{PASS, texts},
};

/// Creates `name`'s account in the relay's temporary directory.
fn account(r: &TlsRelay, name: &str, role: Role) -> Account {
    Account::create(&r.home(name), PASS, KdfParams::TESTING, name, role).unwrap()
}

/// Creates, connects (trusting the CA) and registers an account.
async fn user(r: &TlsRelay, name: &str, role: Role) -> Client {
    let account = account(r, name, role);
    let mut c = Client::connect_with(account, &r.url("localhost"), &r.trust())
        .await
        .unwrap();
    c.register().await.unwrap();
    c
}

fn tls_error(e: ClientError) -> TlsError {
    match e {
        ClientError::Tls(e) => e,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test]
async fn with_the_ca_file_a_client_registers_and_chats_over_wss() {
    let r = TlsRelay::new(&["localhost", "127.0.0.1"]).await;
    assert!(r.relay.ws_url().starts_with("wss://"));
    let mut master = user(&r, "acme-owner", Role::Master).await;
    let mut parties = Vec::new();
    for i in 1..=3 {
        parties.push(user(&r, &format!("trustee-{i}"), Role::Trustee).await);
        parties.push(user(&r, &format!("arbiter-{i}"), Role::Arbiter).await);
    }
    master
        .create_org(&OrgSpec {
            name: "acme".into(),
            trustees: (1..=3).map(|i| format!("trustee-{i}")).collect(),
            trustee_threshold: 2,
            arbiters: (1..=3).map(|i| format!("arbiter-{i}")).collect(),
            arbiter_threshold: 2,
            retention_days: None,
            rotate_messages: None,
            no_history_handoff: false,
        })
        .await
        .unwrap();
    let mut alice = user(&r, "alice", Role::Agent).await;
    master.add_agent("acme", "alice").await.unwrap();

    // The IP address in the URL is checked against the certificate's IP name.
    let carol = account(&r, "carol", Role::Customer);
    let mut carol = Client::connect_with(carol, &r.url("127.0.0.1"), &r.trust())
        .await
        .unwrap();
    carol.register().await.unwrap();
    let fingerprint = master.account().fingerprint().to_string();
    let conv = carol
        .open_conversation("acme", Some(&fingerprint))
        .await
        .unwrap()
        .conversation;
    carol.send_text(&conv, "hello over tls").await.unwrap();
    alice.sync_all().await.unwrap();
    alice.send_text(&conv, "hello back").await.unwrap();
    carol.sync_all().await.unwrap();
    let expected = vec![
        "carol: hello over tls".to_owned(),
        "alice: hello back".to_owned(),
    ];
    assert_eq!(texts(&carol, &conv), expected);
    assert_eq!(texts(&alice, &conv), expected);

    for c in parties.into_iter().chain([master, alice, carol]) {
        c.close().await;
    }
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_the_ca_the_certificate_is_not_trusted() {
    let r = TlsRelay::new(&["localhost", "127.0.0.1"]).await;
    let url = r.url("localhost");

    // The system's roots alone do not vouch for a private CA.
    let account = account(&r, "carol", Role::Customer);
    let (account, err) = Client::try_connect(account, &url).await.unwrap_err();
    let err = tls_error(err);
    assert!(
        matches!(&err, TlsError::UntrustedCertificate { host } if host == "localhost"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("not trusted"), "{text}");
    assert!(text.contains("--ca-file"), "{text}");
    assert!(text.contains("SEALDESK_CA_FILE"), "{text}");

    // Another CA's file does not either: trust comes from the CA that signed the certificate.
    let other = Ca::new(r.dir.path(), "other-ca");
    let (account, err) =
        Client::try_connect_with(account, &url, &TlsOptions::with_ca_file(&other.pem))
            .await
            .unwrap_err();
    assert!(matches!(
        tls_error(err),
        TlsError::UntrustedCertificate { .. }
    ));

    // Nor does a CA with the same name and another key (webpki finds the trusted certificate
    // by the issuer's name, then the signature does not verify under its key).
    let impostor = tempfile::tempdir().unwrap();
    let impostor = Ca::new(impostor.path(), "ca");
    let (account, err) =
        Client::try_connect_with(account, &url, &TlsOptions::with_ca_file(&impostor.pem))
            .await
            .unwrap_err();
    assert!(
        matches!(tls_error(err), TlsError::UntrustedCertificate { .. }),
        "a same-name CA with another key is reported as untrusted"
    );

    // The refused attempts pinned nothing: the same account then connects with the right CA.
    let mut c = Client::connect_with(account, &url, &r.trust())
        .await
        .unwrap();
    c.register().await.unwrap();
    c.close().await;
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let r = TlsRelay::new(&["relay.example"]).await;
    let account = account(&r, "carol", Role::Customer);
    let (account, err) = Client::try_connect_with(account, &r.url("localhost"), &r.trust())
        .await
        .unwrap_err();
    let err = tls_error(err);
    assert!(
        matches!(&err, TlsError::WrongHost { host, presented }
            if host == "localhost" && *presented == ["relay.example"]),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("not valid for localhost"), "{text}");
    assert!(text.contains("(it covers relay.example)"), "{text}");

    // An IP address is checked as one: a certificate naming only a DNS name does not cover it.
    let (_, err) = Client::try_connect_with(account, &r.url("127.0.0.1"), &r.trust())
        .await
        .unwrap_err();
    assert!(matches!(tls_error(err), TlsError::WrongHost { host, .. } if host == "127.0.0.1"),);
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_ca_certificate_as_the_relays_own_is_refused_with_a_hint() {
    // What a plain `openssl req -x509` makes: a self-signed certificate marked CA:TRUE.
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let relay = sealdesk_server::spawn(RelayConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.path().join("relay"),
        tls_cert: Some(cert_path.clone()),
        tls_key: Some(key_path),
        ..RelayConfig::default()
    })
    .await
    .unwrap();
    let account = Account::create(
        &dir.path().join("carol"),
        PASS,
        KdfParams::TESTING,
        "carol",
        Role::Customer,
    )
    .unwrap();
    let url = format!("wss://localhost:{}/v1/ws", relay.local_addr().port());
    let (_, err) = Client::try_connect_with(account, &url, &TlsOptions::with_ca_file(&cert_path))
        .await
        .unwrap_err();
    let err = tls_error(err);
    assert!(
        matches!(&err, TlsError::CaAsRelayCertificate { host } if host == "localhost"),
        "{err:?}"
    );
    assert!(err.to_string().contains("CA:FALSE"), "{err}");
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_bad_ca_file_is_named_before_connecting() {
    let r = TlsRelay::new(&["localhost"]).await;
    let url = r.url("localhost");
    let garbage = r.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate at all\n").unwrap();
    let account = account(&r, "carol", Role::Customer);
    let (account, err) =
        Client::try_connect_with(account, &url, &TlsOptions::with_ca_file(&garbage))
            .await
            .unwrap_err();
    let err = tls_error(err);
    assert!(
        matches!(&err, TlsError::CaFileEmpty { path } if *path == garbage),
        "{err:?}"
    );
    assert!(err.to_string().contains(&garbage.display().to_string()));

    let missing = r.dir.path().join("missing.pem");
    let (_, err) = Client::try_connect_with(account, &url, &TlsOptions::with_ca_file(&missing))
        .await
        .unwrap_err();
    let err = tls_error(err);
    assert!(
        matches!(&err, TlsError::CaFileRead { path, .. } if *path == missing),
        "{err:?}"
    );
    assert!(err.to_string().contains("missing.pem"));
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn wss_to_a_plain_relay_fails_the_tls_handshake_and_ws_to_a_tls_relay_fails() {
    let dir = tempfile::tempdir().unwrap();
    let plain = sealdesk_server::spawn(RelayConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.path().join("relay"),
        ..RelayConfig::default()
    })
    .await
    .unwrap();
    let account = Account::create(
        &dir.path().join("carol"),
        PASS,
        KdfParams::TESTING,
        "carol",
        Role::Customer,
    )
    .unwrap();
    let url = format!("wss://127.0.0.1:{}/v1/ws", plain.local_addr().port());
    let (account, err) = Client::try_connect(account, &url).await.unwrap_err();
    let err = tls_error(err);
    assert!(
        matches!(&err, TlsError::Handshake { host, .. } if host == "127.0.0.1"),
        "{err:?}"
    );
    assert!(err.to_string().contains("ws://, not wss://"), "{err}");
    plain.shutdown().await.unwrap();

    let r = TlsRelay::new(&["localhost"]).await;
    let url = format!("ws://localhost:{}/v1/ws", r.relay.local_addr().port());
    let (_, err) = Client::try_connect_with(account, &url, &r.trust())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
    r.relay.shutdown().await.unwrap();
}
