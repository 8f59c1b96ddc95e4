//! The encrypted local-state store.
//!
//! Everything the client keeps on disk — identity secret keys, pinned keys, epoch secrets, chain
//! counters, cursors, received messages — goes through a [`Vault`]. Nothing is written
//! unencrypted: the only plaintext file is the header, and it holds no secret.
//!
//! # Layout
//!
//! ```text
//! DIR/                         0700
//! ├── vault.json               header: format version, Argon2id m/t/p, salt, check value
//! ├── vault.lock               advisory lock, held exclusively for each write
//! ├── records/                 one sealed file per record, written atomically
//! │   ├── identity.rec             name "identity"
//! │   └── conv/3f2a/epoch/2.rec    name "conv/3f2a/epoch/2"
//! └── logs/                    append-only logs of sealed frames
//!     └── conv/3f2a/inbox.log      log "conv/3f2a/inbox"
//! ```
//!
//! Files are created 0600 and directories 0700 (on unix).
//!
//! # Key
//!
//! The 32-byte vault key is Argon2id(passphrase, salt, [`KdfParams`]); after a passphrase change
//! ([`Vault::change_passphrase`], `passphrase.rs`) it is the key the records were always sealed
//! under, kept in the header's `wrapped` field sealed under Argon2id of the new passphrase. The header carries a
//! *check* value, the sealing of a fixed label under that key, so a wrong passphrase is reported
//! as [`VaultError::WrongPassphrase`] instead of as corrupt records. Because the key depends on the
//! salt and the parameters, editing either in the header also makes the check fail.
//!
//! # Sealed values
//!
//! | offset | length  | field                                        |
//! |--------|---------|----------------------------------------------|
//! | 0      | 1       | format version, `1`                          |
//! | 1      | 12      | random AES-GCM nonce                         |
//! | 13     | n + 16  | AES-256-GCM ciphertext of the n-byte value, then its tag |
//!
//! The associated data binds each value to where it belongs, so a sealed file moved or copied to
//! another name fails to open:
//!
//! - a record: `"sealdesk/v1/vault-record" || 0x00 || name`;
//! - a log frame: `"sealdesk/v1/vault-log" || 0x00 || name || 0x00 || index` (u64 big-endian),
//!   so frames cannot be reordered or moved between logs either;
//! - the header check: `"sealdesk/v1/vault-check"`.
//!
//! # Logs and crashes
//!
//! A log file is a sequence of frames `len (u32 big-endian) || sealed value`. [`Vault::append`]
//! returns only after the frame is fsynced. A crash during an append can leave a *torn* final
//! frame: a partial length, a partial body, a zero-filled tail, or a complete-looking final frame
//! whose bytes never reached the disk and so do not authenticate. [`Vault::read_log`] ignores such
//! a tail and the next [`Vault::append`] truncates it away, so nothing that was acknowledged
//! earlier is lost. A frame that fails to authenticate anywhere *but* the end is reported as
//! [`VaultError::Corrupt`]. The flip side: whoever can write the directory can cut a log short
//! without detection, and damage to the final frame looks exactly like a torn write and is
//! dropped the same way; a caller that must notice rollback keeps the expected count in a record.
//!
//! # Passphrase cost in tests
//!
//! [`KdfParams::INTERACTIVE`] (64 MiB, 3 passes) is the default. `KdfParams::TESTING` exists only
//! with the crate's `test-hooks` feature (and in its own unit tests); a CLI built with it uses it
//! when the environment variable named by `INSECURE_FAST_KDF_ENV` (`SEALDESK_INSECURE_FAST_KDF`)
//! is `1`. That is for test suites only, since it makes guessing the passphrase of a stolen vault
//! cheap; a normal build has neither.
//!
//! # Several processes
//!
//! Several processes may have one vault open (a `chat` or `trustee serve` running, and
//! `send` or `whoami` next to it). Each write — a record put or deleted, a frame appended —
//! takes the exclusive lock on `vault.lock` for that write only ([`Vault::lock`] holds it
//! across a read-modify-write), and an append finds the log's end again when another process
//! appended since. Reads take no lock: a record is replaced atomically (written to a temporary
//! file, then renamed), and a log is read up to its last complete frame. A value that must
//! never be handed out twice, like a sending counter, is read, advanced and written back under
//! one [`Vault::lock`], before it is used.
//!
//! The module's parts: this file holds the [`Vault`] itself and its errors; `crypto` the key
//! derivation and the AEAD, `format` the header, record names and log frames, `fs` the private
//! files and directories, the lock and the atomic writes.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::io_failure::IoFailure;

mod crypto;
mod format;
mod fs;
mod passphrase;
#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) use self::fs::contention;
use self::fs::*;
use crypto::*;
use format::*;

/// The environment variable that makes the CLI create vaults with [`KdfParams::TESTING`] when it
/// is set to `1`. Only for test suites: it makes a stolen vault's passphrase cheap to guess.
/// Test hooks only (the `test-hooks` feature).
#[cfg(feature = "test-hooks")]
pub const INSECURE_FAST_KDF_ENV: &str = "SEALDESK_INSECURE_FAST_KDF";

/// The longest record or log name, in bytes.
pub const MAX_NAME_LEN: usize = 200;

/// The largest value [`Vault::put`] or [`Vault::append`] accepts, in bytes (16 MiB).
pub const MAX_VALUE_LEN: usize = 16 * 1024 * 1024;

/// The vault format version this build writes and reads (header and sealed values).
pub const FORMAT_VERSION: u8 = 1;

/// Argon2id cost parameters for deriving the vault key from the passphrase.
///
/// The parameters are stored in the vault header, so a vault opens with the parameters it was
/// created with, whatever the caller's defaults are now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KdfParams {
    /// Memory cost in KiB (Argon2 `m`).
    pub memory_kib: u32,
    /// Number of passes (Argon2 `t`).
    pub iterations: u32,
    /// Degree of parallelism (Argon2 `p`).
    pub parallelism: u32,
}

impl KdfParams {
    /// The default for real vaults: m = 64 MiB, t = 3, p = 1.
    pub const INTERACTIVE: Self = Self {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };

    /// Cheap parameters for tests: m = 1 MiB, t = 1, p = 1. Never for real vaults; the CLI picks
    /// these only when `INSECURE_FAST_KDF_ENV` is `1`. Test hooks only (the `test-hooks`
    /// feature, or this crate's unit tests).
    #[cfg(any(test, feature = "test-hooks"))]
    pub const TESTING: Self = Self {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };

    /// The largest memory cost accepted (2 GiB), so a header cannot make `open` exhaust memory.
    pub const MAX_MEMORY_KIB: u32 = 2 * 1024 * 1024;
    /// The largest number of passes accepted.
    pub const MAX_ITERATIONS: u32 = 64;
    /// The largest degree of parallelism accepted.
    pub const MAX_PARALLELISM: u32 = 16;

    /// Checks the parameters against Argon2's own rules and this module's upper bounds.
    fn validate(self) -> Result<argon2::Params, String> {
        if self.memory_kib > Self::MAX_MEMORY_KIB {
            return Err(format!("memory cost above {} KiB", Self::MAX_MEMORY_KIB));
        }
        if self.iterations > Self::MAX_ITERATIONS {
            return Err(format!("more than {} passes", Self::MAX_ITERATIONS));
        }
        if self.parallelism > Self::MAX_PARALLELISM {
            return Err(format!("parallelism above {}", Self::MAX_PARALLELISM));
        }
        argon2::Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(KEY_LEN),
        )
        .map_err(|err| err.to_string())
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::INTERACTIVE
    }
}

/// Everything that can go wrong with a vault. Never contains record contents, the passphrase
/// or key bytes; names and paths are included so the message says what to look at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// There is no vault in the directory.
    #[error("no vault at {}; run `sealdesk init` first", dir.display())]
    NotFound {
        /// The directory that was searched.
        dir: PathBuf,
    },

    /// [`Vault::create`] found a vault already in the directory and left it alone.
    #[error("a vault already exists at {}; refusing to overwrite it", dir.display())]
    AlreadyExists {
        /// The vault's directory.
        dir: PathBuf,
    },

    /// The passphrase does not open the vault (or the header's salt or parameters were edited).
    #[error("wrong passphrase for the vault at {}", dir.display())]
    WrongPassphrase {
        /// The vault's directory.
        dir: PathBuf,
    },

    /// Another process (or another `Vault` in this one) has the vault open.
    #[error(
        "the vault at {} is in use by another sealdesk process (it holds {}); \
         stop that process and try again",
        dir.display(),
        dir.join(LOCK_FILE).display()
    )]
    Locked {
        /// The vault's directory.
        dir: PathBuf,
    },

    /// A file in the vault is damaged, was tampered with, or was moved to another name.
    #[error("{} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A file in the vault has a format version this build does not read.
    #[error(
        "{} has format version {found}, but this build reads only version {FORMAT_VERSION}; \
         use a matching sealdesk",
        path.display()
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found in it.
        found: u64,
    },

    /// A record or log name breaks the naming rules (see [`Vault::put`]).
    #[error("invalid vault name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },

    /// The Argon2id parameters given to [`Vault::create`] are out of range.
    #[error("invalid Argon2id parameters: {reason}")]
    InvalidKdfParams {
        /// What is out of range.
        reason: String,
    },

    /// [`Vault::create`] was given an empty passphrase.
    #[error("the passphrase is empty; choose a non-empty passphrase")]
    EmptyPassphrase,

    /// A value is larger than [`MAX_VALUE_LEN`].
    #[error("the value for {name:?} is {len} bytes, more than the limit of {MAX_VALUE_LEN}")]
    TooLarge {
        /// The record or log name.
        name: String,
        /// The value's length in bytes.
        len: usize,
    },

    /// A value could not be encoded to, or decoded from, JSON. The reason gives only the error
    /// category and position, never the data.
    #[error("record {name:?} could not be converted to or from JSON: {reason}")]
    Json {
        /// The record name.
        name: String,
        /// The error category and position.
        reason: String,
    },

    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {reason}")]
    Random {
        /// The generator's error message.
        reason: String,
    },

    /// A file operation failed.
    #[error("could not {op} {}", path.display())]
    Io {
        /// What was being done ("read", "write", "create", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: IoFailure,
    },
}

/// An open vault. Holds the derived key; takes the lock on `vault.lock` for each write only, so
/// other processes may have the same vault open.
///
/// All methods take `&self`; a `Vault` can be shared between threads.
pub struct Vault {
    /// The vault's directory.
    dir: PathBuf,
    /// The key every value is sealed under.
    key: VaultKey,
    /// Where each log's valid data ends, learned on first append. A std `Mutex`, not an async
    /// one: it is held only across short blocking file operations, and it also serialises
    /// appends to a log within this process.
    logs: Mutex<HashMap<String, LogEnd>>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new field cannot start appearing here unnoticed.
        let Self {
            dir,
            key: _,
            logs: _,
        } = self;
        f.debug_struct("Vault")
            .field("dir", dir)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Creates a new vault in `dir` (created if missing, then set to mode 0700), with a fresh
    /// random salt and a key derived from `passphrase` with `params`.
    ///
    /// Use [`KdfParams::INTERACTIVE`] unless the caller is a test (`KdfParams::TESTING`, with
    /// the `test-hooks` feature).
    ///
    /// # Errors
    ///
    /// [`VaultError::AlreadyExists`] if `dir` already holds a vault,
    /// [`VaultError::EmptyPassphrase`], [`VaultError::InvalidKdfParams`], [`VaultError::Locked`]
    /// if another process is creating one there at the same moment, [`VaultError::Random`], or
    /// [`VaultError::Io`].
    pub fn create(dir: &Path, passphrase: &str, params: KdfParams) -> Result<Self, VaultError> {
        if passphrase.is_empty() {
            return Err(VaultError::EmptyPassphrase);
        }
        let argon_params = params
            .validate()
            .map_err(|reason| VaultError::InvalidKdfParams { reason })?;
        if Self::exists(dir) {
            return Err(VaultError::AlreadyExists {
                dir: dir.to_path_buf(),
            });
        }
        create_private_dir_all(dir)?;
        let lock = acquire_lock(dir)?;
        // Checked again under the lock: another process may have won the race.
        if Self::exists(dir) {
            return Err(VaultError::AlreadyExists {
                dir: dir.to_path_buf(),
            });
        }

        let salt: [u8; SALT_LEN] = random_bytes()?;
        let key = VaultKey::derive(passphrase, &salt, argon_params)?;
        let check = key.seal(HEADER_FILE, CHECK_AAD, CHECK_PLAINTEXT)?;

        ensure_private_dirs(dir, &[RECORDS_DIR])?;
        ensure_private_dirs(dir, &[LOGS_DIR])?;
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
            wrapped: None,
        };
        let header_path = dir.join(HEADER_FILE);
        let mut json = serde_json::to_vec_pretty(&header).map_err(|err| VaultError::Json {
            name: HEADER_FILE.to_owned(),
            reason: describe_json_error(&err),
        })?;
        json.push(b'\n');
        write_atomic(dir, &header_path, &json)?;
        drop(lock);

        Ok(Self {
            dir: dir.to_path_buf(),
            key,
            logs: Mutex::new(HashMap::new()),
        })
    }

    /// Opens the vault in `dir` with `passphrase`. Other processes may have it open too (see
    /// the module docs, "Several processes").
    ///
    /// # Errors
    ///
    /// [`VaultError::NotFound`] if there is no vault, [`VaultError::WrongPassphrase`], [`VaultError::UnsupportedVersion`] for a
    /// header from another format version, [`VaultError::Corrupt`] for a damaged header, or
    /// [`VaultError::Io`].
    pub fn open(dir: &Path, passphrase: &str) -> Result<Self, VaultError> {
        if !Self::exists(dir) {
            return Err(VaultError::NotFound {
                dir: dir.to_path_buf(),
            });
        }
        let header_path = dir.join(HEADER_FILE);
        let Some(bytes) = read_bounded(&header_path, MAX_HEADER_LEN)? else {
            return Err(VaultError::NotFound {
                dir: dir.to_path_buf(),
            });
        };
        let (params, salt, check, wrapped) = parse_header(&header_path, &bytes)?;
        let argon_params = params.validate().map_err(|_| VaultError::Corrupt {
            path: header_path.clone(),
            reason: "the header's Argon2id parameters are out of range",
        })?;
        let key = VaultKey::derive(passphrase, &salt, argon_params)?;
        let label = key
            .open(&header_path, CHECK_AAD, &check)
            .map_err(|err| match err {
                VaultError::Corrupt {
                    reason: AUTH_FAILED,
                    ..
                } => VaultError::WrongPassphrase {
                    dir: dir.to_path_buf(),
                },
                other => other,
            })?;
        if label.as_slice() != CHECK_PLAINTEXT {
            return Err(VaultError::Corrupt {
                path: header_path,
                reason: "the header's check value holds an unexpected label",
            });
        }
        let key = match wrapped {
            None => key,
            Some(w) => passphrase::unwrap(&key, &header_path, &w)?,
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            key,
            logs: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `dir` holds a vault (its header file exists). Does not check the passphrase.
    #[must_use]
    pub fn exists(dir: &Path) -> bool {
        dir.join(HEADER_FILE).is_file()
    }

    /// The vault's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Seals `value` and stores it under `name`, replacing any previous value atomically: after a
    /// crash the record holds either the old or the new value, never a mix.
    ///
    /// Names are 1 to [`MAX_NAME_LEN`] bytes of `A-Z a-z 0-9 . _ / -`, must not start or end with
    /// `/`, contain `//` or `..`, have a `/`-separated segment that starts with `.` (reserved for
    /// temporary files), or one that ends in `.rec` or `.log` (reserved for file names). Each
    /// `/` becomes a subdirectory on disk.
    ///
    /// # Errors
    ///
    /// [`VaultError::InvalidName`], [`VaultError::TooLarge`], [`VaultError::Random`] or
    /// [`VaultError::Io`].
    pub fn put(&self, name: &str, value: &[u8]) -> Result<(), VaultError> {
        self.lock()?.put(name, value)
    }

    /// Takes the vault's write lock until the returned [`VaultLock`] drops, for a
    /// read-modify-write that no other process may interleave with: read with [`Vault::get`],
    /// write with [`VaultLock::put`] and [`VaultLock::delete`] (the vault's own writes would
    /// wait for the lock held here).
    ///
    /// # Errors
    ///
    /// [`VaultError::Locked`] if another process held it for longer than a write takes, or
    /// [`VaultError::Io`].
    pub fn lock(&self) -> Result<VaultLock<'_>, VaultError> {
        Ok(VaultLock {
            vault: self,
            _file: wait_for_lock(&self.dir)?,
        })
    }

    /// [`Vault::put`], under the lock the caller holds.
    fn put_locked(&self, name: &str, value: &[u8]) -> Result<(), VaultError> {
        validate_name(name)?;
        check_value_len(name, value.len())?;
        let sealed = self.key.seal(name, &record_aad(name), value)?;
        let (segments, file_name) = split_name(name, RECORD_SUFFIX);
        let parent = ensure_private_dirs(&self.dir.join(RECORDS_DIR), &segments)?;
        write_atomic(&parent, &parent.join(file_name), &sealed)
    }

    /// The value stored under `name`, or `None` if there is none.
    ///
    /// # Errors
    ///
    /// [`VaultError::InvalidName`], [`VaultError::Corrupt`] if the file was damaged, tampered
    /// with or moved from another name, [`VaultError::UnsupportedVersion`], or [`VaultError::Io`].
    pub fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, VaultError> {
        validate_name(name)?;
        let path = self.record_path(name);
        let Some(sealed) = read_bounded(&path, MAX_SEALED_LEN)? else {
            return Ok(None);
        };
        self.key.open(&path, &record_aad(name), &sealed).map(Some)
    }

    /// Removes the record `name`; `true` if it existed.
    ///
    /// # Errors
    ///
    /// [`VaultError::InvalidName`] or [`VaultError::Io`].
    pub fn delete(&self, name: &str) -> Result<bool, VaultError> {
        self.lock()?.delete(name)
    }

    /// [`Vault::delete`], under the lock the caller holds.
    fn delete_locked(&self, name: &str) -> Result<bool, VaultError> {
        validate_name(name)?;
        let path = self.record_path(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                if let Some(parent) = path.parent() {
                    sync_dir(parent)?;
                }
                Ok(true)
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(VaultError::Io {
                op: "delete",
                path,
                source: source.into(),
            }),
        }
    }

    /// The names of all records that start with `prefix` (a plain string prefix: `"conv/"` lists
    /// every record under `conv`, `""` lists them all), sorted. Logs are not records and are not
    /// listed.
    ///
    /// # Errors
    ///
    /// [`VaultError::Io`] if a directory cannot be read.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, VaultError> {
        let mut names = Vec::new();
        let mut relative = String::new();
        list_records(
            &self.dir.join(RECORDS_DIR),
            &mut relative,
            prefix,
            0,
            &mut names,
        )?;
        names.sort();
        Ok(names)
    }

    /// Stores `value` as JSON under `name`; see [`Vault::put`].
    ///
    /// # Errors
    ///
    /// [`VaultError::Json`] if `value` cannot be serialised, and the errors of [`Vault::put`].
    pub fn put_json<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<(), VaultError> {
        self.put(name, &to_json(name, value)?)
    }

    /// The JSON value stored under `name`, or `None` if there is none; see [`Vault::get`].
    ///
    /// # Errors
    ///
    /// [`VaultError::Json`] if the record is not valid JSON for `T`, and the errors of
    /// [`Vault::get`].
    pub fn get_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, VaultError> {
        let Some(json) = self.get(name)? else {
            return Ok(None);
        };
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|err| json_error(name, &err))
    }

    /// Appends `record` to the log `log` (same naming rules as [`Vault::put`]), returning its
    /// index (0 for the first record). The record is sealed on its own, bound to the log name
    /// and its index, and is fsynced before this returns. A torn tail left by an earlier crash
    /// is truncated away first (see the module docs).
    ///
    /// # Errors
    ///
    /// [`VaultError::InvalidName`], [`VaultError::TooLarge`], [`VaultError::Corrupt`] if the
    /// log's framing is damaged before its end, [`VaultError::Random`] or [`VaultError::Io`].
    pub fn append(&self, log: &str, record: &[u8]) -> Result<u64, VaultError> {
        validate_name(log)?;
        check_value_len(log, record.len())?;
        let _lock = self.lock()?;
        let mut ends = self.logs.lock().unwrap_or_else(PoisonError::into_inner);
        let (segments, file_name) = split_name(log, LOG_SUFFIX);
        let parent = ensure_private_dirs(&self.dir.join(LOGS_DIR), &segments)?;
        let path = parent.join(file_name);
        let (mut file, created) = open_log_for_append(&path)?;
        let io_err = |op| {
            let path = path.clone();
            move |source: io::Error| VaultError::Io {
                op,
                path,
                source: source.into(),
            }
        };

        // Removed, not read: if anything below fails the next append rescans the file. An end
        // learned earlier is kept only if the file still ends there: another process may have
        // appended since.
        let on_disk = file.metadata().map_err(io_err("inspect"))?.len();
        let end = match ends.remove(log) {
            Some(end) if end.len == on_disk => end,
            _ => {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes).map_err(io_err("read"))?;
                self.log_end(&path, log, &bytes)?
            }
        };
        let frame = self.seal_frame(log, end.count, record)?;
        let file_len = file.metadata().map_err(io_err("inspect"))?.len();
        if file_len != end.len {
            file.set_len(end.len)
                .map_err(io_err("truncate the torn tail of"))?;
        }
        file.seek(SeekFrom::Start(end.len))
            .map_err(io_err("seek in"))?;
        file.write_all(&frame).map_err(io_err("write"))?;
        file.sync_data().map_err(io_err("sync"))?;
        if created {
            sync_dir(&parent)?;
        }
        let frame_len = u64::try_from(frame.len()).unwrap_or(u64::MAX);
        ends.insert(
            log.to_owned(),
            LogEnd {
                len: end.len.saturating_add(frame_len),
                count: end.count + 1,
            },
        );
        Ok(end.count)
    }

    /// Every complete record of the log `log`, in append order; empty if the log does not
    /// exist. A torn final frame is ignored (see the module docs).
    ///
    /// # Errors
    ///
    /// [`VaultError::InvalidName`], [`VaultError::Corrupt`] if a frame before the end is
    /// damaged, tampered with or out of order, [`VaultError::UnsupportedVersion`], or
    /// [`VaultError::Io`].
    pub fn read_log(&self, log: &str) -> Result<Vec<Zeroizing<Vec<u8>>>, VaultError> {
        validate_name(log)?;
        let (segments, file_name) = split_name(log, LOG_SUFFIX);
        let mut path = self.dir.join(LOGS_DIR);
        path.extend(segments);
        path.push(file_name);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(VaultError::Io {
                    op: "read",
                    path,
                    source: source.into(),
                });
            }
        };
        self.scan_log(&path, log, &bytes)
    }

    /// The file that holds record `name` (which must be valid).
    fn record_path(&self, name: &str) -> PathBuf {
        let (segments, file_name) = split_name(name, RECORD_SUFFIX);
        let mut path = self.dir.join(RECORDS_DIR);
        path.extend(segments);
        path.push(file_name);
        path
    }

    /// Seals `record` as frame `index` of `log`: `len || sealed`.
    fn seal_frame(&self, log: &str, index: u64, record: &[u8]) -> Result<Vec<u8>, VaultError> {
        let sealed = self.key.seal(log, &log_aad(log, index), record)?;
        let len = u32::try_from(sealed.len()).map_err(|_| VaultError::TooLarge {
            name: log.to_owned(),
            len: record.len(),
        })?;
        let mut frame = Vec::with_capacity(FRAME_LEN_BYTES + sealed.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&sealed);
        Ok(frame)
    }

    /// Splits a log file into frames and opens them all, dropping a torn tail.
    fn scan_log(
        &self,
        path: &Path,
        log: &str,
        bytes: &[u8],
    ) -> Result<Vec<Zeroizing<Vec<u8>>>, VaultError> {
        let frames = split_log_frames(path, bytes)?;
        let mut records = Vec::with_capacity(frames.len());
        let last = frames.len().checked_sub(1);
        for (i, (index, (_, sealed))) in (0u64..).zip(frames).enumerate() {
            match self.key.open(path, &log_aad(log, index), sealed) {
                Ok(record) => records.push(record),
                // A final frame that does not open was written but never fully reached the
                // disk before a crash: it was never acknowledged, so it is dropped.
                Err(_) if Some(i) == last => break,
                Err(err) => return Err(err),
            }
        }
        Ok(records)
    }

    /// Where the valid data of a log file ends. Opens only the final frame, to tell whether it
    /// is torn; earlier frames are checked by [`Vault::read_log`].
    fn log_end(&self, path: &Path, log: &str, bytes: &[u8]) -> Result<LogEnd, VaultError> {
        let frames = split_log_frames(path, bytes)?;
        let Some(((last_end, last), earlier)) = frames.split_last() else {
            return Ok(LogEnd { len: 0, count: 0 });
        };
        let count = u64::try_from(earlier.len()).unwrap_or(u64::MAX);
        if self.key.open(path, &log_aad(log, count), last).is_ok() {
            Ok(LogEnd {
                len: *last_end,
                count: count + 1,
            })
        } else {
            Ok(LogEnd {
                len: earlier.last().map_or(0, |(end, _)| *end),
                count,
            })
        }
    }
}

/// The vault's write lock, held until dropped ([`Vault::lock`]).
pub struct VaultLock<'a> {
    vault: &'a Vault,
    /// The locked `vault.lock`, never read: kept for its drop, which releases the lock.
    _file: File,
}

impl VaultLock<'_> {
    /// [`Vault::put`] under this lock.
    ///
    /// # Errors
    ///
    /// As [`Vault::put`].
    pub fn put(&self, name: &str, value: &[u8]) -> Result<(), VaultError> {
        self.vault.put_locked(name, value)
    }

    /// [`Vault::delete`] under this lock.
    ///
    /// # Errors
    ///
    /// As [`Vault::delete`].
    pub fn delete(&self, name: &str) -> Result<bool, VaultError> {
        self.vault.delete_locked(name)
    }

    /// [`Vault::put_json`] under this lock.
    ///
    /// # Errors
    ///
    /// As [`Vault::put_json`].
    pub fn put_json<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<(), VaultError> {
        self.put(name, &to_json(name, value)?)
    }
}

/// `value` as JSON, for the record `name`.
fn to_json<T: Serialize + ?Sized>(name: &str, value: &T) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    validate_name(name)?;
    // Measure first, then serialise into a buffer of exactly that capacity, so the
    // plaintext is never left behind in a buffer freed by a reallocation.
    let mut counter = ByteCounter(0);
    serde_json::to_writer(&mut counter, value).map_err(|err| json_error(name, &err))?;
    check_value_len(name, counter.0)?;
    let mut json = Zeroizing::new(Vec::with_capacity(counter.0));
    serde_json::to_writer(&mut *json, value).map_err(|err| json_error(name, &err))?;
    Ok(json)
}

// ---------------------------------------------------------------------------------------------
// Labels and sizes.

/// The header file's name.
const HEADER_FILE: &str = "vault.json";
/// The lock file's name.
const LOCK_FILE: &str = "vault.lock";
/// The directory that holds records.
const RECORDS_DIR: &str = "records";
/// The directory that holds logs.
const LOGS_DIR: &str = "logs";
/// Appended to the last segment of a record name to make its file name.
const RECORD_SUFFIX: &str = ".rec";
/// Appended to the last segment of a log name to make its file name.
const LOG_SUFFIX: &str = ".log";
/// Prefix of temporary files; record segments may not start with `.`, so these never clash.
const TEMP_PREFIX: &str = ".tmp-";

/// The header's `format` field.
const FORMAT_NAME: &str = "sealdesk-vault";
/// The header's `kdf.algorithm` field.
const KDF_ALGORITHM: &str = "argon2id";

/// Associated-data prefix of a record: `RECORD_AAD_LABEL || 0x00 || name`.
const RECORD_AAD_LABEL: &[u8] = b"sealdesk/v1/vault-record";
/// Associated-data prefix of a log frame: `LOG_AAD_LABEL || 0x00 || name || 0x00 || index`.
const LOG_AAD_LABEL: &[u8] = b"sealdesk/v1/vault-log";
/// Associated data of the header's check value.
const CHECK_AAD: &[u8] = b"sealdesk/v1/vault-check";
/// The plaintext of the header's check value.
const CHECK_PLAINTEXT: &[u8] = b"sealdesk vault passphrase check";

/// Length of the vault key (AES-256).
const KEY_LEN: usize = 32;
/// Length of the Argon2id salt.
const SALT_LEN: usize = 16;
/// Length of an AES-GCM nonce.
const NONCE_LEN: usize = 12;
/// Length of an AES-GCM tag.
const TAG_LEN: usize = 16;
/// Bytes a sealed value adds to its plaintext: version, nonce, tag.
const SEALED_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;
/// The largest sealed value.
const MAX_SEALED_LEN: usize = MAX_VALUE_LEN + SEALED_OVERHEAD;
/// Bytes of a log frame's length prefix.
const FRAME_LEN_BYTES: usize = 4;
/// The largest header file accepted.
const MAX_HEADER_LEN: usize = 64 * 1024;
/// Deepest directory nesting `list` descends into; a valid name has at most this many segments.
const MAX_DEPTH: usize = MAX_NAME_LEN / 2 + 1;

/// The `reason` of the `Corrupt` error for a value that does not authenticate.
const AUTH_FAILED: &str =
    "authentication failed (the file was damaged, tampered with, or moved from another name)";
