//! Trust for `wss://` relays: which certificate authorities the client believes, and what it
//! says when a relay's certificate is refused.
//!
//! The client trusts the operating system's root certificates (read with `rustls-native-certs`)
//! plus, if given, the certificates of a PEM file (`--ca-file` / `SEALDESK_CA_FILE`) — the way to
//! reach a relay whose certificate comes from a private CA or is self-signed. TLS is rustls with
//! the `ring` provider, the same as the relay's.
//!
//! [`TlsOptions`] is a plain value handed to the connect functions
//! ([`crate::Client::connect_with`], [`crate::connection::Connection::connect_with`]); nothing
//! here is global, so a test or a daemon can hold several. The files are read when a `wss://`
//! connection is opened, so a changed CA file is picked up on the next connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{CertificateError, ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, pem::PemObject as _};

/// The largest CA file read: a bundle of every public root is about 250 KiB.
pub const MAX_CA_FILE: u64 = 4 * 1024 * 1024;

/// How the client decides whether to trust a relay's TLS certificate (used for `wss://` URLs;
/// `ws://` connections have no certificate).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    ca_file: Option<PathBuf>,
}

impl TlsOptions {
    /// The operating system's root certificates only.
    pub fn system() -> Self {
        Self::default()
    }

    /// The operating system's root certificates and every certificate in the PEM file `path`
    /// (a private CA, or a relay's self-signed certificate).
    pub fn with_ca_file(path: impl Into<PathBuf>) -> Self {
        Self {
            ca_file: Some(path.into()),
        }
    }

    /// The extra CA file, if any.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// Builds the rustls client configuration: the system's roots, then the CA file's
    /// certificates.
    ///
    /// # Errors
    /// [`TlsError::CaFileRead`], [`TlsError::CaFileEmpty`] or [`TlsError::CaFileInvalid`] for a
    /// CA file that cannot be used; [`TlsError::Setup`] if rustls refuses the configuration.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let mut roots = RootCertStore::empty();
        // Unreadable or unparsable system certificates are skipped, as every TLS client does: a
        // relay they would have vouched for fails with `UntrustedCertificate`, whose message
        // says what to do.
        let system = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(system.certs);
        if let Some(path) = &self.ca_file {
            for cert in read_ca_file(path)? {
                roots.add(cert).map_err(|e| TlsError::CaFileInvalid {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// Why a `wss://` connection or its trust settings failed.
///
/// Each message says what to do about it; none carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The relay's certificate does not chain to a trusted certificate authority: no trusted
    /// certificate has its issuer's name, or one does but its key did not sign it.
    #[error(
        "the TLS certificate of the relay at {host} is not trusted: no certificate authority \
         this client trusts signed it. If the relay uses a private CA, pass the CA's \
         certificate (for a self-signed relay certificate, that certificate itself) with \
         --ca-file PEM or SEALDESK_CA_FILE=PEM"
    )]
    UntrustedCertificate {
        /// The host name (or address) in the relay URL.
        host: String,
    },

    /// The certificate is trusted but issued for other names.
    #[error(
        "the TLS certificate of the relay is not valid for {host}{}; connect with the name \
         the certificate was issued for in --relay, or give the relay a certificate for {host}",
        covers(.presented)
    )]
    WrongHost {
        /// The host name (or address) in the relay URL.
        host: String,
        /// The names the certificate covers, as rustls reports them (may be empty).
        presented: Vec<String>,
    },

    /// The relay presents a CA certificate (basic constraints `CA:TRUE`) as its own, which
    /// rustls refuses: the usual result of a plain `openssl req -x509`.
    #[error(
        "the relay at {host} presents a CA certificate (CA:TRUE) as its own, which this client \
         refuses; give the relay a certificate marked CA:FALSE (with `openssl req -x509` add \
         -addext basicConstraints=critical,CA:FALSE), or one signed by your CA"
    )]
    CaAsRelayCertificate {
        /// The host name (or address) in the relay URL.
        host: String,
    },

    /// The certificate was refused for another reason (expired, not yet valid, malformed, ...).
    #[error("the TLS certificate of the relay at {host} was refused: {reason}")]
    BadCertificate {
        /// The host name (or address) in the relay URL.
        host: String,
        /// rustls's reason.
        reason: String,
    },

    /// The TLS handshake failed for a reason other than the certificate.
    #[error(
        "the TLS handshake with the relay at {host} failed: {reason}; check that the relay \
         serves TLS on that port (a relay without --tls-cert takes ws://, not wss://)"
    )]
    Handshake {
        /// The host name (or address) in the relay URL.
        host: String,
        /// rustls's reason.
        reason: String,
    },

    /// The host in a `wss://` URL cannot be checked against a certificate.
    #[error("{host:?} in the relay URL is not a host name or IP address a certificate can name")]
    InvalidHost {
        /// The host as written.
        host: String,
    },

    /// The CA file could not be read.
    #[error(
        "could not read the CA file {} (--ca-file / SEALDESK_CA_FILE): {error}",
        .path.display()
    )]
    CaFileRead {
        /// The file.
        path: PathBuf,
        /// The OS error (in the message, not a `source`, so it is printed once).
        error: crate::io_failure::IoFailure,
    },

    /// The CA file holds no PEM certificate.
    #[error(
        "the CA file {} (--ca-file / SEALDESK_CA_FILE) contains no PEM certificate; expected \
         one or more -----BEGIN CERTIFICATE----- blocks",
        .path.display()
    )]
    CaFileEmpty {
        /// The file.
        path: PathBuf,
    },

    /// The CA file is not valid PEM, or a certificate in it does not parse.
    #[error(
        "the CA file {} (--ca-file / SEALDESK_CA_FILE) is not a valid PEM certificate file: \
         {reason}",
        .path.display()
    )]
    CaFileInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// rustls refused the client configuration.
    #[error("could not set up TLS: {0}")]
    Setup(String),
}

impl TlsError {
    /// Classifies a rustls error from the handshake with `host`.
    pub fn from_handshake(host: &str, error: &rustls::Error) -> Self {
        let host = host.to_owned();
        match error {
            // A signature that does not verify under a trusted certificate's key is what webpki
            // reports when a trusted certificate merely shares the issuer's name (Debian's
            // "snakeoil" certificate is named `localhost`): the issuer is still untrusted.
            #[allow(deprecated)]
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
                | CertificateError::BadSignature
                | CertificateError::UnsupportedSignatureAlgorithm
                | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. },
            ) => Self::UntrustedCertificate { host },
            rustls::Error::InvalidCertificate(CertificateError::Other(other))
                if matches!(
                    other.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) =>
            {
                Self::CaAsRelayCertificate { host }
            }
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                presented,
                ..
            }) => Self::WrongHost {
                host,
                presented: presented.iter().map(|n| readable_name(n)).collect(),
            },
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => {
                Self::WrongHost {
                    host,
                    presented: Vec::new(),
                }
            }
            rustls::Error::InvalidCertificate(e) => Self::BadCertificate {
                host,
                reason: e.to_string(),
            },
            e => Self::Handshake {
                host,
                reason: e.to_string(),
            },
        }
    }
}

/// Reads every certificate of a PEM file, refusing an empty or malformed one.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_error = |error: std::io::Error| TlsError::CaFileRead {
        path: path.to_owned(),
        error: error.into(),
    };
    let len = std::fs::metadata(path).map_err(read_error)?.len();
    if len > MAX_CA_FILE {
        return Err(TlsError::CaFileInvalid {
            path: path.to_owned(),
            reason: format!("it is {len} bytes, more than the {MAX_CA_FILE} a CA file may be"),
        });
    }
    let bytes = std::fs::read(path).map_err(read_error)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::CaFileInvalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::CaFileEmpty {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// `DnsName("relay.example")` and `IpAddress(127.0.0.1)`, as rustls-webpki reports the names a
/// certificate covers, become `relay.example` and `127.0.0.1`; anything else is kept as is.
fn readable_name(name: &str) -> String {
    let inner = name
        .strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
        .or_else(|| {
            name.strip_prefix("IpAddress(")
                .and_then(|n| n.strip_suffix(')'))
        });
    inner.unwrap_or(name).to_owned()
}

fn covers(presented: &[String]) -> String {
    if presented.is_empty() {
        String::new()
    } else {
        format!(" (it covers {})", presented.join(", "))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, contents: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn a_ca_file_with_a_certificate_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let path = write(&dir, "ca.pem", ca.cert.pem().as_bytes());
        TlsOptions::with_ca_file(&path).client_config().unwrap();
        assert_eq!(
            TlsOptions::with_ca_file(&path).ca_file(),
            Some(path.as_path())
        );
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nowhere.pem");
        let err = TlsOptions::with_ca_file(&path).client_config().unwrap_err();
        assert!(matches!(&err, TlsError::CaFileRead { path: p, .. } if *p == path));
        assert!(err.to_string().contains("nowhere.pem"), "{err}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "garbage.pem", b"this is not a certificate\n\x00\xff");
        let err = TlsOptions::with_ca_file(&path).client_config().unwrap_err();
        assert!(matches!(&err, TlsError::CaFileEmpty { path: p } if *p == path));
        assert!(err.to_string().contains("garbage.pem"), "{err}");
        // A private key is PEM, but not a certificate.
        let key = rcgen::KeyPair::generate().unwrap();
        let path = write(&dir, "key.pem", key.serialize_pem().as_bytes());
        let err = TlsOptions::with_ca_file(&path).client_config().unwrap_err();
        assert!(matches!(&err, TlsError::CaFileEmpty { path: p } if *p == path));
    }

    #[test]
    fn a_certificate_block_that_is_not_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bad_base64 = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let path = write(&dir, "bad64.pem", bad_base64);
        let err = TlsOptions::with_ca_file(&path).client_config().unwrap_err();
        assert!(matches!(&err, TlsError::CaFileInvalid { path: p, .. } if *p == path));
        assert!(err.to_string().contains("bad64.pem"), "{err}");
        // Valid base64 of bytes that are not DER.
        let not_der = b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        let path = write(&dir, "notder.pem", not_der);
        let err = TlsOptions::with_ca_file(&path).client_config().unwrap_err();
        assert!(matches!(&err, TlsError::CaFileInvalid { path: p, .. } if *p == path));
        let unterminated = b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n";
        let path = write(&dir, "cut.pem", unterminated);
        let err = TlsOptions::with_ca_file(&path).client_config().unwrap_err();
        assert!(matches!(&err, TlsError::CaFileInvalid { path: p, .. } if *p == path));
    }

    #[test]
    fn handshake_errors_are_classified() {
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let e = TlsError::from_handshake("relay.example", &unknown);
        assert!(matches!(&e, TlsError::UntrustedCertificate { host } if host == "relay.example"));
        assert!(e.to_string().contains("--ca-file"), "{e}");
        assert!(e.to_string().contains("SEALDESK_CA_FILE"), "{e}");

        let wrong = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: rustls_pki_types::ServerName::try_from("relay.example")
                .unwrap()
                .to_owned(),
            presented: vec![
                "DnsName(\"other.example\")".to_owned(),
                "IpAddress(10.0.0.1)".to_owned(),
                "Unsupported(0x80)".to_owned(),
            ],
        });
        let e = TlsError::from_handshake("relay.example", &wrong);
        assert!(matches!(&e, TlsError::WrongHost { host, presented }
            if host == "relay.example"
                && *presented == ["other.example", "10.0.0.1", "Unsupported(0x80)"]));
        assert!(
            e.to_string()
                .contains("(it covers other.example, 10.0.0.1, Unsupported(0x80))"),
            "{e}"
        );

        let forged = rustls::Error::InvalidCertificate(CertificateError::BadSignature);
        let e = TlsError::from_handshake("relay.example", &forged);
        assert!(matches!(e, TlsError::UntrustedCertificate { .. }));

        let ca = rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
            Arc::new(webpki::Error::CaUsedAsEndEntity),
        )));
        let e = TlsError::from_handshake("relay.example", &ca);
        assert!(matches!(e, TlsError::CaAsRelayCertificate { .. }));
        assert!(e.to_string().contains("CA:FALSE"), "{e}");

        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        let e = TlsError::from_handshake("relay.example", &expired);
        assert!(matches!(e, TlsError::BadCertificate { .. }));

        let other = rustls::Error::DecryptError;
        let e = TlsError::from_handshake("relay.example", &other);
        assert!(matches!(e, TlsError::Handshake { .. }));
    }
}
