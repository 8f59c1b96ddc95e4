//! Changing a vault's passphrase: one atomic replacement of the header.
//!
//! The records and logs stay sealed under the key they always were (the *records' key*). A
//! changed header carries that key sealed under the new passphrase's key (`wrapped`, with the
//! associated data [`WRAP_AAD`]) next to a fresh salt, the new Argon2id parameters and a check
//! value under the new passphrase's key. The switch is the header alone:
//!
//! ```text
//!   lock ─ new header written to a temporary file, fsynced ─ renamed over vault.json ─
//!   directory fsynced ─ unlock
//! ```
//!
//! A crash before the rename leaves the old header (the old passphrase opens the vault; the
//! temporary file holds nothing secret and is ignored); after it, the new one. Other processes
//! that have the vault open keep working: the records' key they hold does not change. The
//! price, said in SECURITY.md: whoever kept a copy of the old header and knows the old
//! passphrase can still derive the records' key.

use std::fs;
use std::io;
use std::path::Path;

use super::crypto::{VaultKey, random_bytes};
use super::format::Header;
use super::format::HeaderKdf;
use super::fs::{sync_dir, write_new_file};
use super::{
    CHECK_AAD, CHECK_PLAINTEXT, FORMAT_NAME, FORMAT_VERSION, HEADER_FILE, KDF_ALGORITHM, KEY_LEN,
    KdfParams, SALT_LEN, TEMP_PREFIX, Vault, VaultError,
};
use crate::vault::fs::describe_json_error;

/// Associated data of the wrapped records' key.
pub(super) const WRAP_AAD: &[u8] = b"sealdesk/v1/vault-wrapped-key";

/// The records' key from a header's `wrapped` value, opened with the passphrase's key.
pub(super) fn unwrap(
    passphrase_key: &VaultKey,
    header: &Path,
    wrapped: &[u8],
) -> Result<VaultKey, VaultError> {
    let bytes = passphrase_key.open(header, WRAP_AAD, wrapped)?;
    let bytes: [u8; KEY_LEN] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| VaultError::Corrupt {
            path: header.to_path_buf(),
            reason: "the header's wrapped key has the wrong length",
        })?;
    Ok(VaultKey { bytes })
}

/// Test-only: exits the process at `point` if the trustee's fail-point variable names it
/// (`passphrase-written`: the new header is written and fsynced, not renamed;
/// `passphrase-renamed`: renamed over `vault.json`, the directory not yet fsynced).
#[cfg(feature = "test-hooks")]
fn fail_point(point: &str) {
    if std::env::var_os(crate::escrow::FAILPOINT_ENV).is_some_and(|v| v == point) {
        eprintln!("sealdesk: fail point `{point}` reached; exiting as if killed (test only)");
        std::process::exit(crate::escrow::FAILPOINT_EXIT_CODE);
    }
}

#[cfg(not(feature = "test-hooks"))]
fn fail_point(_point: &str) {}

impl Vault {
    /// Replaces the passphrase with `new` (hashed with `params`), atomically: afterwards only
    /// `new` opens the vault; if the process dies on the way, the old one still does. Holds the
    /// vault's write lock throughout.
    ///
    /// # Errors
    /// [`VaultError::EmptyPassphrase`], [`VaultError::InvalidKdfParams`], [`VaultError::Locked`],
    /// [`VaultError::Random`], [`VaultError::Io`].
    pub fn change_passphrase(&self, new: &str, params: KdfParams) -> Result<(), VaultError> {
        if new.is_empty() {
            return Err(VaultError::EmptyPassphrase);
        }
        let argon_params = params
            .validate()
            .map_err(|reason| VaultError::InvalidKdfParams { reason })?;
        let _lock = self.lock()?;
        let salt: [u8; SALT_LEN] = random_bytes()?;
        let key = VaultKey::derive(new, &salt, argon_params)?;
        let check = key.seal(HEADER_FILE, CHECK_AAD, CHECK_PLAINTEXT)?;
        let wrapped = key.seal(HEADER_FILE, WRAP_AAD, &self.key.bytes)?;
        let header = Header {
            format: FORMAT_NAME.to_owned(),
            version: u64::from(FORMAT_VERSION),
            kdf: HeaderKdf {
                algorithm: KDF_ALGORITHM.to_owned(),
                memory_kib: params.memory_kib,
                iterations: params.iterations,
                parallelism: params.parallelism,
            },
            salt: hex::encode(salt),
            check: hex::encode(check),
            wrapped: Some(hex::encode(wrapped)),
        };
        let mut json = serde_json::to_vec_pretty(&header).map_err(|err| VaultError::Json {
            name: HEADER_FILE.to_owned(),
            reason: describe_json_error(&err),
        })?;
        json.push(b'\n');
        let temp = self.dir.join(format!(
            "{TEMP_PREFIX}{}",
            hex::encode(random_bytes::<8>()?)
        ));
        let path = self.dir.join(HEADER_FILE);
        let result = write_new_file(&temp, &json)
            .and_then(|()| {
                fail_point("passphrase-written");
                fs::rename(&temp, &path).map_err(|source: io::Error| VaultError::Io {
                    op: "rename into place",
                    path: path.clone(),
                    source: source.into(),
                })
            })
            .and_then(|()| {
                fail_point("passphrase-renamed");
                sync_dir(&self.dir)
            });
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_changed_passphrase_opens_every_record_and_another_open_handle_keeps_working() {
        let dir = tempfile::tempdir().unwrap();
        let a = Vault::create(dir.path(), "old passphrase", KdfParams::TESTING).unwrap();
        a.put("identity", b"secret").unwrap();
        a.append("conv/1/log", b"frame one").unwrap();
        let b = Vault::open(dir.path(), "old passphrase").unwrap();
        b.change_passphrase("new passphrase", KdfParams::TESTING)
            .unwrap();
        assert!(matches!(
            Vault::open(dir.path(), "old passphrase"),
            Err(VaultError::WrongPassphrase { .. })
        ));
        // The handle opened before the change still writes records the new passphrase reads.
        a.put("pins", b"pinned").unwrap();
        a.append("conv/1/log", b"frame two").unwrap();
        let c = Vault::open(dir.path(), "new passphrase").unwrap();
        assert_eq!(c.get("identity").unwrap().unwrap().as_slice(), b"secret");
        assert_eq!(c.get("pins").unwrap().unwrap().as_slice(), b"pinned");
        assert_eq!(c.read_log("conv/1/log").unwrap().len(), 2);
        // Changed twice: still one wrapping of the same records' key.
        c.change_passphrase("third passphrase", KdfParams::TESTING)
            .unwrap();
        let d = Vault::open(dir.path(), "third passphrase").unwrap();
        assert_eq!(d.get("identity").unwrap().unwrap().as_slice(), b"secret");
        assert!(matches!(
            c.change_passphrase("", KdfParams::TESTING),
            Err(VaultError::EmptyPassphrase)
        ));
    }

    #[test]
    fn a_tampered_wrapped_key_is_refused_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let a = Vault::create(dir.path(), "old passphrase", KdfParams::TESTING).unwrap();
        a.change_passphrase("new passphrase", KdfParams::TESTING)
            .unwrap();
        let path = dir.path().join(HEADER_FILE);
        let mut header: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let w = header["wrapped"].as_str().unwrap().to_owned();
        let flipped = format!(
            "{}{}",
            &w[..w.len() - 1],
            if w.ends_with('0') { '1' } else { '0' }
        );
        header["wrapped"] = serde_json::Value::String(flipped);
        std::fs::write(&path, serde_json::to_vec(&header).unwrap()).unwrap();
        assert!(matches!(
            Vault::open(dir.path(), "new passphrase"),
            Err(VaultError::Corrupt { .. })
        ));
    }
}
