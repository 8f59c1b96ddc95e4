//! The `sealdesk` binary over `wss://` against a real relay serving TLS on 127.0.0.1:0, with a
//! private CA made by rcgen: refused without the CA (and told what to do), a garbage CA file
//! named, trusted with `--ca-file` or `SEALDESK_CA_FILE`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use sealdesk_server::{RunningRelay, config::RelayConfig};
use sealdesk_tests::world::PASS;
use tempfile::TempDir;

/// A private certificate authority whose certificate is written to `ca.pem`.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pem: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Sealdesk test CA {name}"));
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pem = dir.join(format!("{name}.pem"));
        std::fs::write(&pem, issuer.pem()).unwrap();
        Self { issuer, pem }
    }

    /// A relay certificate for `names`, signed by this CA: (certificate file, key file).
    fn relay_cert(&self, dir: &Path, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let (cert_path, key_path) = (dir.join("relay.pem"), dir.join("relay-key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

/// A relay on 127.0.0.1:0 serving TLS with a certificate for `names` signed by a fresh CA.
struct TlsRelay {
    relay: RunningRelay,
    ca: Ca,
    dir: TempDir,
}

impl TlsRelay {
    async fn new(names: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new(dir.path(), "ca");
        let (cert, key) = ca.relay_cert(dir.path(), names);
        let relay = sealdesk_server::spawn(RelayConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: dir.path().join("relay"),
            tls_cert: Some(cert),
            tls_key: Some(key),
            ..RelayConfig::default()
        })
        .await
        .unwrap();
        Self { relay, ca, dir }
    }

    /// `wss://HOST:PORT/v1/ws` for this relay's port.
    fn url(&self, host: &str) -> String {
        format!("wss://{host}:{}/v1/ws", self.relay.local_addr().port())
    }

    fn home(&self, name: &str) -> PathBuf {
        self.dir.path().join("homes").join(name)
    }
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `sealdesk --home HOME ARGS` with `env` set, and none of the caller's SEALDESK_* settings.
async fn sealdesk(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sealdesk"));
    cmd.arg("--home")
        .arg(home)
        .args(args)
        .env_remove("SEALDESK_RELAY")
        .env_remove("SEALDESK_CA_FILE")
        .env("SEALDESK_PASSPHRASE", PASS)
        .env("SEALDESK_INSECURE_FAST_KDF", "1")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn the_cli_talks_wss_with_ca_file_or_sealdesk_ca_file() {
    let r = TlsRelay::new(&["localhost", "127.0.0.1"]).await;
    let url = r.url("localhost");
    let ca = r.ca.pem.to_str().unwrap().to_owned();
    let (alice, bob) = (r.home("alice"), r.home("bob"));
    for (home, name) in [(&alice, "alice"), (&bob, "bob")] {
        let run = sealdesk(home, &["init", "--name", name, "--role", "customer"], &[]).await;
        assert!(run.ok, "{}", run.stderr);
    }

    // Without the CA: refused, and told what to do.
    let run = sealdesk(&alice, &["--relay", &url, "register"], &[]).await;
    assert!(!run.ok, "{}", run.stdout);
    assert!(run.stderr.contains("not trusted"), "{}", run.stderr);
    assert!(run.stderr.contains("--ca-file"), "{}", run.stderr);

    // A garbage CA file is named.
    let garbage = r.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "garbage").unwrap();
    let run = sealdesk(
        &alice,
        &[
            "--relay",
            &url,
            "--ca-file",
            garbage.to_str().unwrap(),
            "register",
        ],
        &[],
    )
    .await;
    assert!(!run.ok, "{}", run.stdout);
    assert!(
        run.stderr.contains(&garbage.display().to_string()),
        "{}",
        run.stderr
    );

    // With --ca-file, and with SEALDESK_CA_FILE (and SEALDESK_RELAY) from the environment.
    let run = sealdesk(
        &alice,
        &["--relay", &url, "--ca-file", &ca, "register"],
        &[],
    )
    .await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!("registered alice on {url}")),
        "{}",
        run.stdout
    );
    let env = [
        ("SEALDESK_RELAY", url.as_str()),
        ("SEALDESK_CA_FILE", ca.as_str()),
    ];
    let run = sealdesk(&bob, &["register"], &env).await;
    assert!(run.ok, "{}", run.stderr);

    // A command that reads from the relay: bob's card, fetched over wss by alice.
    let run = sealdesk(&alice, &["keys", "fingerprint", "bob"], &env).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("bob (from the relay"), "{}", run.stdout);
    r.relay.shutdown().await.unwrap();
}
