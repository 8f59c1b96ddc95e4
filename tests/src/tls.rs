//! TLS for tests: a private certificate authority made by rcgen ([`Ca`]) and a relay on
//! `127.0.0.1:0` serving TLS with a certificate it signed ([`TlsRelay`]). The client tests
//! (`tests/tests/client_tls.rs`) and the `sealdesk` binary's (`cli/tests/wss.rs`) share them.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use sealdesk_client::TlsOptions;
use sealdesk_server::{RunningRelay, config::RelayConfig};
use tempfile::TempDir;

/// A private certificate authority whose certificate is written to `NAME.pem`.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate's PEM file, what a client is given with `--ca-file`.
    pub pem: PathBuf,
}

impl Ca {
    /// A fresh CA, its certificate written to `dir/NAME.pem`.
    pub fn new(dir: &Path, name: &str) -> Self {
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
    pub fn relay_cert(&self, dir: &Path, names: &[&str]) -> (PathBuf, PathBuf) {
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
pub struct TlsRelay {
    /// The running relay.
    pub relay: RunningRelay,
    /// The CA that signed the relay's certificate.
    pub ca: Ca,
    /// The temporary directory holding the CA, the certificate, the relay's data and homes.
    pub dir: TempDir,
}

impl TlsRelay {
    /// Starts the relay with a certificate for `names`.
    pub async fn new(names: &[&str]) -> Self {
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
    pub fn url(&self, host: &str) -> String {
        format!("wss://{host}:{}/v1/ws", self.relay.local_addr().port())
    }

    /// The client's TLS options trusting this relay's CA.
    pub fn trust(&self) -> TlsOptions {
        TlsOptions::with_ca_file(&self.ca.pem)
    }

    /// The home directory of account `name`, inside the temporary directory.
    pub fn home(&self, name: &str) -> PathBuf {
        self.dir.path().join("homes").join(name)
    }
}
