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
//! ├── vault.lock               advisory lock, held exclusively while a `Vault` is open
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
//! The 32-byte vault key is Argon2id(passphrase, salt, [`KdfParams`]). The header carries a
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

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use aes_gcm::aead::{Nonce, Tag};
use aes_gcm::{AeadInOut, Aes256Gcm, KeyInit};
use argon2::{Algorithm, Argon2, Version};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

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

    /// Cheap parameters for tests: m = 1 MiB, t = 1, p = 1. Never for real vaults; a CLI built
    /// with test hooks picks these only when `INSECURE_FAST_KDF_ENV` is `1`. Test hooks only
    /// (the `test-hooks` feature, or this crate's unit tests).
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
#[derive(Debug, thiserror::Error)]
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
        source: io::Error,
    },
}

/// An open vault. Holds the derived key and the exclusive lock on `vault.lock` until dropped.
///
/// All methods take `&self`; a `Vault` can be shared between threads.
pub struct Vault {
    /// The vault's directory.
    dir: PathBuf,
    /// The key every value is sealed under.
    key: VaultKey,
    /// The open `vault.lock`, never read: it is kept for its drop, which closes the file and
    /// so releases the advisory lock.
    _lock: File,
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
            _lock: _,
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
        };
        let header_path = dir.join(HEADER_FILE);
        let mut json = serde_json::to_vec_pretty(&header).map_err(|err| VaultError::Json {
            name: HEADER_FILE.to_owned(),
            reason: describe_json_error(&err),
        })?;
        json.push(b'\n');
        write_atomic(dir, &header_path, &json)?;

        Ok(Self {
            dir: dir.to_path_buf(),
            key,
            _lock: lock,
            logs: Mutex::new(HashMap::new()),
        })
    }

    /// Opens the vault in `dir` with `passphrase`, taking the exclusive lock on it.
    ///
    /// # Errors
    ///
    /// [`VaultError::NotFound`] if there is no vault, [`VaultError::Locked`] if another process
    /// has it open, [`VaultError::WrongPassphrase`], [`VaultError::UnsupportedVersion`] for a
    /// header from another format version, [`VaultError::Corrupt`] for a damaged header, or
    /// [`VaultError::Io`].
    pub fn open(dir: &Path, passphrase: &str) -> Result<Self, VaultError> {
        if !Self::exists(dir) {
            return Err(VaultError::NotFound {
                dir: dir.to_path_buf(),
            });
        }
        let lock = acquire_lock(dir)?;
        let header_path = dir.join(HEADER_FILE);
        let Some(bytes) = read_bounded(&header_path, MAX_HEADER_LEN)? else {
            return Err(VaultError::NotFound {
                dir: dir.to_path_buf(),
            });
        };
        let (params, salt, check) = parse_header(&header_path, &bytes)?;
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
        Ok(Self {
            dir: dir.to_path_buf(),
            key,
            _lock: lock,
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
        validate_name(name)?;
        let path = self.record_path(name);
        match fs::remove_file(&path) {
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
                source,
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
        validate_name(name)?;
        // Measure first, then serialise into a buffer of exactly that capacity, so the
        // plaintext is never left behind in a buffer freed by a reallocation.
        let mut counter = ByteCounter(0);
        serde_json::to_writer(&mut counter, value).map_err(|err| json_error(name, &err))?;
        check_value_len(name, counter.0)?;
        let mut json = Zeroizing::new(Vec::with_capacity(counter.0));
        serde_json::to_writer(&mut *json, value).map_err(|err| json_error(name, &err))?;
        self.put(name, &json)
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
        let mut ends = self.logs.lock().unwrap_or_else(PoisonError::into_inner);
        let (segments, file_name) = split_name(log, LOG_SUFFIX);
        let parent = ensure_private_dirs(&self.dir.join(LOGS_DIR), &segments)?;
        let path = parent.join(file_name);
        let (mut file, created) = open_log_for_append(&path)?;
        let io_err = |op| {
            let path = path.clone();
            move |source| VaultError::Io { op, path, source }
        };

        // Removed, not read: if anything below fails the next append rescans the file.
        let end = match ends.remove(log) {
            Some(end) => end,
            None => {
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
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(VaultError::Io {
                    op: "read",
                    path,
                    source,
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

// ---------------------------------------------------------------------------------------------
// The key and the AEAD.

/// The vault key. No `Debug`, `Clone` or `Serialize`; wiped when dropped.
#[derive(Zeroize, ZeroizeOnDrop)]
struct VaultKey {
    bytes: [u8; KEY_LEN],
}

impl VaultKey {
    /// Argon2id(passphrase, salt) with the given parameters.
    fn derive(
        passphrase: &str,
        salt: &[u8; SALT_LEN],
        params: argon2::Params,
    ) -> Result<Self, VaultError> {
        let mut key = Self {
            bytes: [0; KEY_LEN],
        };
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase.as_bytes(), salt, &mut key.bytes)
            .map_err(|err| VaultError::InvalidKdfParams {
                reason: err.to_string(),
            })?;
        Ok(key)
    }

    /// The AES-256-GCM cipher for this key. Built per call (a key expansion costs well under a
    /// microsecond) so the only long-lived copy of the key is `self`; with the `zeroize` feature
    /// the cipher's round keys are wiped when it drops.
    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&self.bytes).into())
    }

    /// Seals `plaintext`: `version || nonce || ciphertext || tag`.
    ///
    /// Nonce uniqueness: nonces are 96 random bits from the OS generator. With random nonces
    /// NIST SP 800-38D allows at most 2^32 sealings per key; the chance that q sealings repeat a
    /// nonce is about q^2 / 2^97. A vault seals once per `put`/`append`, far below that bound
    /// over its life, and every new vault has a fresh salt and so a fresh key. (A future
    /// passphrase change must re-seal everything under a new salt, not reuse this key.)
    ///
    /// `name` only labels the error: AES-GCM refuses nothing below 2^36 bytes, far above
    /// [`MAX_VALUE_LEN`].
    fn seal(&self, name: &str, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let nonce: [u8; NONCE_LEN] = random_bytes()?;
        // Zeroizing, so the plaintext copied in here is wiped if sealing fails.
        let mut out = Zeroizing::new(Vec::with_capacity(SEALED_OVERHEAD + plaintext.len()));
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let body = out.get_mut(1 + NONCE_LEN..).unwrap_or_default();
        let tag = self
            .cipher()
            .encrypt_inout_detached((&nonce).into(), aad, body.into())
            .map_err(|_| VaultError::TooLarge {
                name: name.to_owned(),
                len: plaintext.len(),
            })?;
        out.extend_from_slice(&tag);
        // The buffer now holds only ciphertext; take it out of the wrapper.
        Ok(std::mem::take(&mut *out))
    }

    /// Opens a sealed value read from `path`.
    fn open(
        &self,
        path: &Path,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let corrupt = |reason| VaultError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let Some((&version, rest)) = sealed.split_first() else {
            return Err(corrupt("empty file"));
        };
        if version != FORMAT_VERSION {
            return Err(VaultError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: u64::from(version),
            });
        }
        let (nonce, rest) = rest
            .split_at_checked(NONCE_LEN)
            .ok_or(corrupt("too short"))?;
        let body_len = rest
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(corrupt("too short"))?;
        let (body, tag) = rest.split_at(body_len);
        let nonce = <&Nonce<Aes256Gcm>>::try_from(nonce).map_err(|_| corrupt("too short"))?;
        let tag = <&Tag<Aes256Gcm>>::try_from(tag).map_err(|_| corrupt("too short"))?;
        let mut plaintext = Zeroizing::new(body.to_vec());
        self.cipher()
            .decrypt_inout_detached(nonce, aad, plaintext.as_mut_slice().into(), tag)
            .map_err(|_| corrupt(AUTH_FAILED))?;
        Ok(plaintext)
    }
}

/// The associated data of record `name`.
fn record_aad(name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(RECORD_AAD_LABEL.len() + 1 + name.len());
    aad.extend_from_slice(RECORD_AAD_LABEL);
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// The associated data of frame `index` of log `name`. Names never contain `0x00`, so the
/// encoding is unambiguous.
fn log_aad(name: &str, index: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(LOG_AAD_LABEL.len() + name.len() + 10);
    aad.extend_from_slice(LOG_AAD_LABEL);
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&index.to_be_bytes());
    aad
}

/// `N` bytes from the operating system's generator.
fn random_bytes<const N: usize>() -> Result<[u8; N], VaultError> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).map_err(|err| VaultError::Random {
        reason: err.to_string(),
    })?;
    Ok(bytes)
}

// ---------------------------------------------------------------------------------------------
// Header.

/// `vault.json`. Holds no secret: the salt and the check value are public by design.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u64,
    kdf: HeaderKdf,
    /// Hex.
    salt: String,
    /// Hex of the sealed `CHECK_PLAINTEXT`.
    check: String,
}

/// The header's KDF section.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderKdf {
    algorithm: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

/// The part of the header read first, so that a newer format is reported as such rather than
/// as a parse error.
#[derive(Deserialize)]
struct HeaderProbe {
    format: String,
    version: u64,
}

/// Parses and checks `vault.json`, returning its parameters, salt and check value.
fn parse_header(
    path: &Path,
    bytes: &[u8],
) -> Result<(KdfParams, [u8; SALT_LEN], Vec<u8>), VaultError> {
    let corrupt = |reason| VaultError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let probe: HeaderProbe =
        serde_json::from_slice(bytes).map_err(|_| corrupt("the header is not valid JSON"))?;
    if probe.format != FORMAT_NAME {
        return Err(corrupt("the header is not a sealdesk vault header"));
    }
    if probe.version != u64::from(FORMAT_VERSION) {
        return Err(VaultError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: probe.version,
        });
    }
    let header: Header = serde_json::from_slice(bytes)
        .map_err(|_| corrupt("the header has missing or unexpected fields"))?;
    if header.kdf.algorithm != KDF_ALGORITHM {
        return Err(corrupt(
            "the header names an unknown key-derivation function",
        ));
    }
    let params = KdfParams {
        memory_kib: header.kdf.memory_kib,
        iterations: header.kdf.iterations,
        parallelism: header.kdf.parallelism,
    };
    let salt = hex::decode(&header.salt)
        .ok()
        .and_then(|salt| <[u8; SALT_LEN]>::try_from(salt).ok())
        .ok_or(corrupt("the header's salt is not 16 bytes of hex"))?;
    let check = hex::decode(&header.check).map_err(|_| corrupt("the header's check is not hex"))?;
    Ok((params, salt, check))
}

// ---------------------------------------------------------------------------------------------
// Names.

/// Enforces the naming rules documented on [`Vault::put`].
fn validate_name(name: &str) -> Result<(), VaultError> {
    let reject = |reason| {
        Err(VaultError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return reject("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return reject("it is longer than 200 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
    {
        return reject("it may contain only A-Z, a-z, 0-9, '.', '_', '/' and '-'");
    }
    if name.starts_with('/') {
        return reject("it must not start with '/'");
    }
    if name.ends_with('/') {
        return reject("it must not end with '/'");
    }
    if name.contains("//") {
        return reject("it must not contain an empty segment ('//')");
    }
    if name.contains("..") {
        return reject("it must not contain '..'");
    }
    for segment in name.split('/') {
        if segment.starts_with('.') {
            return reject("a segment must not start with '.'");
        }
        if segment.ends_with(RECORD_SUFFIX) || segment.ends_with(LOG_SUFFIX) {
            return reject("a segment must not end in '.rec' or '.log'");
        }
    }
    Ok(())
}

/// Splits a valid name into its directory segments and its file name (last segment + suffix).
fn split_name<'a>(name: &'a str, suffix: &str) -> (Vec<&'a str>, String) {
    let mut segments: Vec<&str> = name.split('/').collect();
    let last = segments.pop().unwrap_or_default();
    (segments, format!("{last}{suffix}"))
}

/// Collects the names of records under `dir` (which holds names starting with `relative`) that
/// start with `prefix`.
fn list_records(
    dir: &Path,
    relative: &mut String,
    prefix: &str,
    depth: usize,
    names: &mut Vec<String>,
) -> Result<(), VaultError> {
    let io_err = |source| VaultError::Io {
        op: "list",
        path: dir.to_path_buf(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(io_err(source)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err)?;
        // `file_type` does not follow symlinks; anything but plain files and directories,
        // and any file name that no valid record produces, is skipped.
        let file_type = entry.file_type().map_err(io_err)?;
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if file_name.starts_with('.') {
            continue;
        }
        let base_len = relative.len();
        if file_type.is_dir() && depth < MAX_DEPTH {
            relative.push_str(&file_name);
            relative.push('/');
            // Descend only where a matching name can be.
            if relative.starts_with(prefix) || prefix.starts_with(relative.as_str()) {
                list_records(&entry.path(), relative, prefix, depth + 1, names)?;
            }
        } else if let (true, Some(stem)) =
            (file_type.is_file(), file_name.strip_suffix(RECORD_SUFFIX))
        {
            relative.push_str(stem);
            if relative.starts_with(prefix) && validate_name(relative).is_ok() {
                names.push(relative.clone());
            }
        }
        relative.truncate(base_len);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Logs.

/// Where a log's valid data ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LogEnd {
    /// Length in bytes of the complete frames.
    len: u64,
    /// Number of complete frames.
    count: u64,
}

/// Splits a log file into `(offset just past the frame, sealed value)` pairs. A tail that is
/// too short for its frame, or is all zero bytes, is torn and left out; an impossible length
/// elsewhere is corruption.
fn split_frames(bytes: &[u8]) -> Result<Vec<(u64, &[u8])>, &'static str> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    let mut offset: u64 = 0;
    while !rest.is_empty() {
        let Some((len, body)) = rest.split_first_chunk::<FRAME_LEN_BYTES>() else {
            break;
        };
        let len = usize::try_from(u32::from_be_bytes(*len)).unwrap_or(usize::MAX);
        if !(SEALED_OVERHEAD..=MAX_SEALED_LEN).contains(&len) {
            if rest.iter().all(|&b| b == 0) {
                break;
            }
            return Err("a log frame has an impossible length");
        }
        let Some((sealed, tail)) = body.split_at_checked(len) else {
            break;
        };
        let frame_len = u64::try_from(FRAME_LEN_BYTES + len).unwrap_or(u64::MAX);
        offset = offset.saturating_add(frame_len);
        frames.push((offset, sealed));
        rest = tail;
    }
    Ok(frames)
}

/// [`split_frames`] for the log file at `path`.
fn split_log_frames<'a>(path: &Path, bytes: &'a [u8]) -> Result<Vec<(u64, &'a [u8])>, VaultError> {
    split_frames(bytes).map_err(|reason| VaultError::Corrupt {
        path: path.to_path_buf(),
        reason,
    })
}

/// Opens (creating if needed) a log file for reading and writing; `true` if it was created.
fn open_log_for_append(path: &Path) -> Result<(File, bool), VaultError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    private_mode(&mut options);
    match options.clone().create_new(true).open(path) {
        Ok(file) => Ok((file, true)),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => options
            .open(path)
            .map(|file| (file, false))
            .map_err(|source| VaultError::Io {
                op: "open",
                path: path.to_path_buf(),
                source,
            }),
        Err(source) => Err(VaultError::Io {
            op: "create",
            path: path.to_path_buf(),
            source,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Files.

/// Counts the bytes written to it.
struct ByteCounter(usize);

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A JSON error described by category and position only: serde_json's messages can quote the
/// data ("invalid type: string \"…\""), and errors must never carry record contents.
fn describe_json_error(err: &serde_json::Error) -> String {
    let category = match err.classify() {
        serde_json::error::Category::Io => "I/O",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data does not match the expected type",
        serde_json::error::Category::Eof => "unexpected end",
    };
    format!(
        "{category} error at line {}, column {}",
        err.line(),
        err.column()
    )
}

/// The `Json` error for record `name`.
fn json_error(name: &str, err: &serde_json::Error) -> VaultError {
    VaultError::Json {
        name: name.to_owned(),
        reason: describe_json_error(err),
    }
}

/// Rejects values over [`MAX_VALUE_LEN`].
fn check_value_len(name: &str, len: usize) -> Result<(), VaultError> {
    if len > MAX_VALUE_LEN {
        return Err(VaultError::TooLarge {
            name: name.to_owned(),
            len,
        });
    }
    Ok(())
}

/// Takes the exclusive advisory lock on `dir/vault.lock`, held until the returned file drops.
fn acquire_lock(dir: &Path) -> Result<File, VaultError> {
    let path = dir.join(LOCK_FILE);
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    private_mode(&mut options);
    let file = options.open(&path).map_err(|source| VaultError::Io {
        op: "open",
        path: path.clone(),
        source,
    })?;
    // Called through the trait: std's inherent `File::try_lock` needs Rust 1.89, above the
    // workspace's rust-version.
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => Ok(file),
        Err(fs4::TryLockError::WouldBlock) => Err(VaultError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(fs4::TryLockError::Error(source)) => Err(VaultError::Io {
            op: "lock",
            path,
            source,
        }),
    }
}

/// Reads `path` if it exists and is at most `max` bytes.
fn read_bounded(path: &Path, max: usize) -> Result<Option<Vec<u8>>, VaultError> {
    let io_err = |source| VaultError::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_err(source)),
    };
    let limit = u64::try_from(max).unwrap_or(u64::MAX);
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() > max {
        return Err(VaultError::Corrupt {
            path: path.to_path_buf(),
            reason: "the file is larger than any value the vault writes",
        });
    }
    Ok(Some(bytes))
}

/// Writes `bytes` to `path` (in directory `dir`) atomically: a temporary file in the same
/// directory is written, fsynced and renamed over `path`, then the directory is fsynced.
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{}",
        hex::encode(random_bytes::<8>()?)
    ));
    let result = write_new_file(&temp, bytes)
        .and_then(|()| {
            fs::rename(&temp, path).map_err(|source| VaultError::Io {
                op: "rename into place",
                path: path.to_path_buf(),
                source,
            })
        })
        .and_then(|()| sync_dir(dir));
    if result.is_err() {
        // Best effort: a leftover temporary file holds only ciphertext and is ignored.
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Creates `path` (which must not exist) with mode 0600, writes `bytes` and fsyncs it.
fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    let io_err = |op| {
        move |source| VaultError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    private_mode(&mut options);
    let mut file = options.open(path).map_err(io_err("create"))?;
    file.write_all(bytes).map_err(io_err("write"))?;
    file.sync_all().map_err(io_err("sync"))
}

/// Makes sure `base/segments[0]/segments[1]/…` exists (`base` must), creating missing
/// directories with mode 0700 and fsyncing each parent that gained an entry. Returns the path.
fn ensure_private_dirs(base: &Path, segments: &[&str]) -> Result<PathBuf, VaultError> {
    let mut current = base.to_path_buf();
    for segment in segments {
        let next = current.join(segment);
        match private_dir_builder().create(&next) {
            Ok(()) => sync_dir(&current)?,
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(VaultError::Io {
                    op: "create",
                    path: next,
                    source,
                });
            }
        }
        current = next;
    }
    Ok(current)
}

/// Creates `dir` and its missing parents, then sets `dir` itself to mode 0700.
fn create_private_dir_all(dir: &Path) -> Result<(), VaultError> {
    let io_err = |op| {
        move |source| VaultError::Io {
            op,
            path: dir.to_path_buf(),
            source,
        }
    };
    private_dir_builder()
        .recursive(true)
        .create(dir)
        .map_err(io_err("create"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err("set permissions on"))?;
    }
    Ok(())
}

/// A directory builder that creates directories with mode 0700 on unix.
fn private_dir_builder() -> fs::DirBuilder {
    #[allow(unused_mut)] // Only unix sets a mode.
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
}

/// Makes files created through `options` mode 0600 on unix.
fn private_mode(options: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = options;
}

/// Fsyncs a directory so that entries created, renamed or removed in it survive a crash.
fn sync_dir(dir: &Path) -> Result<(), VaultError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| VaultError::Io {
            op: "sync",
            path: dir.to_path_buf(),
            source,
        })?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use serde::{Deserialize, Serialize};
    use tempfile::TempDir;

    const PASS: &str = "correct horse battery staple";

    /// A fresh vault in a temporary directory (the vault lives in a subdirectory, so `create`
    /// also has to make the directory).
    fn new_vault() -> (TempDir, PathBuf, Vault) {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("home");
        let vault = Vault::create(&dir, PASS, KdfParams::TESTING).unwrap();
        (tmp, dir, vault)
    }

    /// Every regular file under `dir`, recursively.
    fn all_files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let file_type = entry.file_type().unwrap();
            if file_type.is_dir() {
                out.extend(all_files(&entry.path()));
            } else if file_type.is_file() {
                out.push(entry.path());
            }
        }
        out
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack
            .windows(needle.len())
            .any(|window| window == needle)
    }

    #[test]
    fn round_trip_put_get_overwrite_delete() {
        let (_tmp, _dir, vault) = new_vault();
        assert!(vault.get("identity").unwrap().is_none());
        vault.put("identity", b"secret key bytes").unwrap();
        assert_eq!(
            vault.get("identity").unwrap().unwrap().as_slice(),
            b"secret key bytes"
        );
        vault.put("identity", b"").unwrap();
        assert_eq!(vault.get("identity").unwrap().unwrap().as_slice(), b"");
        vault.put("conv/3f2a/epoch/2", &[7; 1000]).unwrap();
        assert_eq!(
            vault.get("conv/3f2a/epoch/2").unwrap().unwrap().as_slice(),
            &[7; 1000]
        );
        assert!(vault.delete("identity").unwrap());
        assert!(!vault.delete("identity").unwrap());
        assert!(vault.get("identity").unwrap().is_none());
    }

    #[test]
    fn list_is_sorted_and_filtered_by_prefix() {
        let (_tmp, _dir, vault) = new_vault();
        for name in [
            "pins/bob",
            "conv/b/epoch/1",
            "conv/a/epoch/2",
            "conv/a/epoch/1",
            "conv",
        ] {
            vault.put(name, b"x").unwrap();
        }
        assert_eq!(
            vault.list("").unwrap(),
            [
                "conv",
                "conv/a/epoch/1",
                "conv/a/epoch/2",
                "conv/b/epoch/1",
                "pins/bob"
            ]
        );
        assert_eq!(
            vault.list("conv/a/").unwrap(),
            ["conv/a/epoch/1", "conv/a/epoch/2"]
        );
        assert_eq!(vault.list("pins").unwrap(), ["pins/bob"]);
        assert!(vault.list("nothing").unwrap().is_empty());
        // Logs are not records.
        vault.append("conv/a/inbox", b"m").unwrap();
        assert!(
            !vault
                .list("")
                .unwrap()
                .iter()
                .any(|name| name.contains("inbox"))
        );
    }

    #[test]
    fn json_helpers_round_trip() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Cursor {
            conversation: String,
            seq: u64,
        }
        let (_tmp, _dir, vault) = new_vault();
        let cursor = Cursor {
            conversation: "3f2a".into(),
            seq: 42,
        };
        vault.put_json("cursor/3f2a", &cursor).unwrap();
        assert_eq!(
            vault.get_json::<Cursor>("cursor/3f2a").unwrap(),
            Some(cursor)
        );
        assert_eq!(vault.get_json::<Cursor>("cursor/none").unwrap(), None);
    }

    #[test]
    fn json_errors_do_not_quote_the_record() {
        let (_tmp, _dir, vault) = new_vault();
        vault.put("n", b"\"very-private-string\"").unwrap();
        let err = vault.get_json::<u32>("n").unwrap_err();
        assert!(matches!(err, VaultError::Json { .. }), "{err:?}");
        assert!(!err.to_string().contains("very-private"), "{err}");
        assert!(!format!("{err:?}").contains("very-private"), "{err:?}");
    }

    #[test]
    fn reopen_sees_data() {
        let (_tmp, dir, vault) = new_vault();
        vault.put("identity", b"kept").unwrap();
        vault.append("inbox", b"first").unwrap();
        drop(vault);
        let vault = Vault::open(&dir, PASS).unwrap();
        assert_eq!(vault.get("identity").unwrap().unwrap().as_slice(), b"kept");
        assert_eq!(vault.append("inbox", b"second").unwrap(), 1);
        let log = vault.read_log("inbox").unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].as_slice(), b"first");
        assert_eq!(log[1].as_slice(), b"second");
    }

    #[test]
    fn wrong_passphrase_is_reported_clearly() {
        let (_tmp, dir, vault) = new_vault();
        drop(vault);
        let err = Vault::open(&dir, "not the passphrase").unwrap_err();
        assert!(
            matches!(&err, VaultError::WrongPassphrase { dir: d } if *d == dir),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("wrong passphrase for the vault at {}", dir.display())
        );
    }

    #[test]
    fn missing_and_existing_vaults() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("nowhere");
        assert!(!Vault::exists(&dir));
        let err = Vault::open(&dir, PASS).unwrap_err();
        assert!(matches!(err, VaultError::NotFound { .. }), "{err:?}");
        assert!(
            err.to_string().contains("run `sealdesk init` first"),
            "{err}"
        );
        assert!(!dir.exists(), "open must not create anything");

        let vault = Vault::create(&dir, PASS, KdfParams::TESTING).unwrap();
        assert!(Vault::exists(&dir));
        drop(vault);
        let err = Vault::create(&dir, PASS, KdfParams::TESTING).unwrap_err();
        assert!(matches!(err, VaultError::AlreadyExists { .. }), "{err:?}");
        Vault::open(&dir, PASS).unwrap();
    }

    #[test]
    fn create_rejects_bad_inputs() {
        let tmp = TempDir::new().unwrap();
        let err = Vault::create(tmp.path(), "", KdfParams::TESTING).unwrap_err();
        assert!(matches!(err, VaultError::EmptyPassphrase), "{err:?}");
        let params = KdfParams {
            memory_kib: 1,
            iterations: 1,
            parallelism: 1,
        };
        let err = Vault::create(tmp.path(), PASS, params).unwrap_err();
        assert!(
            matches!(err, VaultError::InvalidKdfParams { .. }),
            "{err:?}"
        );
        let params = KdfParams {
            memory_kib: u32::MAX,
            ..KdfParams::TESTING
        };
        let err = Vault::create(tmp.path(), PASS, params).unwrap_err();
        assert!(
            matches!(err, VaultError::InvalidKdfParams { .. }),
            "{err:?}"
        );
        assert!(!Vault::exists(tmp.path()));
        assert_eq!(KdfParams::default(), KdfParams::INTERACTIVE);
    }

    #[test]
    fn record_moved_to_another_name_fails_to_open() {
        let (_tmp, dir, vault) = new_vault();
        vault.put("pins/alice", b"alice's key").unwrap();
        vault.put("pins/mallory", b"mallory's key").unwrap();
        let records = dir.join(RECORDS_DIR).join("pins");
        fs::copy(records.join("mallory.rec"), records.join("alice.rec")).unwrap();
        let err = vault.get("pins/alice").unwrap_err();
        assert!(
            matches!(
                err,
                VaultError::Corrupt {
                    reason: AUTH_FAILED,
                    ..
                }
            ),
            "{err:?}"
        );
        // Nor does one renamed to a name that had no record.
        fs::rename(records.join("mallory.rec"), records.join("bob.rec")).unwrap();
        let err = vault.get("pins/bob").unwrap_err();
        assert!(matches!(err, VaultError::Corrupt { .. }), "{err:?}");
    }

    #[test]
    fn flipped_byte_is_corrupt() {
        let (_tmp, dir, vault) = new_vault();
        vault.put("identity", b"0123456789abcdef").unwrap();
        let path = dir.join(RECORDS_DIR).join("identity.rec");
        let original = fs::read(&path).unwrap();
        // Every byte after the version byte is covered by the tag.
        for i in 1..original.len() {
            let mut bytes = original.clone();
            bytes[i] ^= 0x01;
            fs::write(&path, &bytes).unwrap();
            let err = vault.get("identity").unwrap_err();
            assert!(
                matches!(err, VaultError::Corrupt { .. }),
                "byte {i}: {err:?}"
            );
        }
        let mut bytes = original.clone();
        bytes[0] = 2;
        fs::write(&path, &bytes).unwrap();
        let err = vault.get("identity").unwrap_err();
        assert!(
            matches!(err, VaultError::UnsupportedVersion { found: 2, .. }),
            "{err:?}"
        );
        fs::write(&path, &original[..10]).unwrap();
        let err = vault.get("identity").unwrap_err();
        assert!(matches!(err, VaultError::Corrupt { .. }), "{err:?}");
        fs::write(&path, &original).unwrap();
        assert_eq!(
            vault.get("identity").unwrap().unwrap().as_slice(),
            b"0123456789abcdef"
        );
    }

    #[test]
    fn header_problems_are_reported() {
        let (_tmp, dir, vault) = new_vault();
        drop(vault);
        let path = dir.join(HEADER_FILE);
        let original = fs::read_to_string(&path).unwrap();

        let newer = original.replace("\"version\": 1", "\"version\": 2");
        assert_ne!(newer, original);
        fs::write(&path, newer).unwrap();
        let err = Vault::open(&dir, PASS).unwrap_err();
        assert!(
            matches!(err, VaultError::UnsupportedVersion { found: 2, .. }),
            "{err:?}"
        );

        fs::write(&path, "{ not json").unwrap();
        let err = Vault::open(&dir, PASS).unwrap_err();
        assert!(matches!(err, VaultError::Corrupt { .. }), "{err:?}");

        // Lowering the cost in the header changes the key, so the check catches it.
        let cheaper = original.replace("\"memory_kib\": 1024", "\"memory_kib\": 512");
        assert_ne!(cheaper, original);
        fs::write(&path, cheaper).unwrap();
        let err = Vault::open(&dir, PASS).unwrap_err();
        assert!(matches!(err, VaultError::WrongPassphrase { .. }), "{err:?}");

        let huge = original.replace("\"memory_kib\": 1024", "\"memory_kib\": 4000000000");
        fs::write(&path, huge).unwrap();
        let err = Vault::open(&dir, PASS).unwrap_err();
        assert!(matches!(err, VaultError::Corrupt { .. }), "{err:?}");

        fs::write(&path, original).unwrap();
        Vault::open(&dir, PASS).unwrap();
    }

    #[test]
    fn no_plaintext_or_passphrase_on_disk() {
        let (_tmp, dir, vault) = new_vault();
        let marker = b"MARKER-7f3c9b1e-plaintext-that-must-never-hit-the-disk";
        vault.put("identity", marker).unwrap();
        vault.put("conv/3f2a/epoch/2", marker).unwrap();
        vault
            .put_json("json", &String::from_utf8_lossy(marker))
            .unwrap();
        vault.append("conv/3f2a/inbox", marker).unwrap();
        vault.append("conv/3f2a/inbox", marker).unwrap();
        let files = all_files(&dir);
        assert!(files.len() >= 6, "{files:?}");
        for file in files {
            let bytes = fs::read(&file).unwrap();
            assert!(!contains(&bytes, marker), "plaintext in {}", file.display());
            assert!(
                !contains(&bytes, &marker[..16]),
                "plaintext in {}",
                file.display()
            );
            assert!(
                !contains(&bytes, PASS.as_bytes()),
                "passphrase in {}",
                file.display()
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn permissions_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_tmp, dir, vault) = new_vault();
        vault.put("conv/3f2a/epoch/2", b"x").unwrap();
        vault.append("logs/inbox", b"x").unwrap();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(
            mode(&dir.join(RECORDS_DIR).join("conv").join("3f2a")),
            0o700
        );
        for file in all_files(&dir) {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }

    #[test]
    fn invalid_names_are_rejected() {
        let (_tmp, _dir, vault) = new_vault();
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for name in [
            "",
            "/identity",
            "identity/",
            "a//b",
            "..",
            "a/../b",
            "a..b",
            ".hidden",
            "a/.b",
            "a/./b",
            "x.rec",
            "x.log/y",
            "with space",
            "tab\t",
            "nul\0",
            "ümlaut",
            "back\\slash",
            long.as_str(),
        ] {
            let err = vault.put(name, b"x").unwrap_err();
            assert!(
                matches!(err, VaultError::InvalidName { .. }),
                "{name:?}: {err:?}"
            );
            assert!(
                matches!(vault.get(name), Err(VaultError::InvalidName { .. })),
                "{name:?}"
            );
            assert!(matches!(
                vault.delete(name),
                Err(VaultError::InvalidName { .. })
            ));
            assert!(matches!(
                vault.append(name, b"x"),
                Err(VaultError::InvalidName { .. })
            ));
            assert!(matches!(
                vault.read_log(name),
                Err(VaultError::InvalidName { .. })
            ));
        }
        for name in [
            "a",
            "A-z_0.9",
            "conv/3f2a/epoch/2",
            "x.recx",
            &"b".repeat(MAX_NAME_LEN),
        ] {
            vault.put(name, b"ok").unwrap();
            assert_eq!(
                vault.get(name).unwrap().unwrap().as_slice(),
                b"ok",
                "{name}"
            );
        }
    }

    #[test]
    fn too_large_values_are_rejected() {
        let (_tmp, _dir, vault) = new_vault();
        let big = vec![0; MAX_VALUE_LEN + 1];
        assert!(matches!(
            vault.put("big", &big),
            Err(VaultError::TooLarge { .. })
        ));
        assert!(matches!(
            vault.append("big", &big),
            Err(VaultError::TooLarge { .. })
        ));
    }

    #[test]
    fn log_with_torn_tail_keeps_complete_records() {
        let (_tmp, dir, vault) = new_vault();
        assert!(vault.read_log("conv/3f2a/inbox").unwrap().is_empty());
        for (i, record) in [b"one".as_slice(), b"two", b"three"]
            .into_iter()
            .enumerate()
        {
            assert_eq!(vault.append("conv/3f2a/inbox", record).unwrap(), i as u64);
        }
        drop(vault);
        let path = dir
            .join(LOGS_DIR)
            .join("conv")
            .join("3f2a")
            .join("inbox.log");
        let full = fs::read(&path).unwrap();

        // Cut the last frame short, as a crash in the middle of a write would.
        fs::write(&path, &full[..full.len() - 3]).unwrap();
        let vault = Vault::open(&dir, PASS).unwrap();
        let log = vault.read_log("conv/3f2a/inbox").unwrap();
        assert_eq!(
            log.iter().map(|r| r.as_slice()).collect::<Vec<_>>(),
            [b"one", b"two"]
        );
        // The next append truncates the torn frame and takes its place.
        assert_eq!(vault.append("conv/3f2a/inbox", b"four").unwrap(), 2);
        let log = vault.read_log("conv/3f2a/inbox").unwrap();
        let log: Vec<&[u8]> = log.iter().map(|r| r.as_slice()).collect();
        assert_eq!(log, [b"one".as_slice(), b"two", b"four"]);
        drop(vault);

        // A torn length prefix, and a zero-filled tail, are torn too.
        let mut bytes = fs::read(&path).unwrap();
        let complete = bytes.len();
        bytes.extend_from_slice(&[0, 0]);
        fs::write(&path, &bytes).unwrap();
        let vault = Vault::open(&dir, PASS).unwrap();
        assert_eq!(vault.read_log("conv/3f2a/inbox").unwrap().len(), 3);
        bytes.truncate(complete);
        bytes.extend_from_slice(&[0; 64]);
        fs::write(&path, &bytes).unwrap();
        assert_eq!(vault.read_log("conv/3f2a/inbox").unwrap().len(), 3);
        assert_eq!(vault.append("conv/3f2a/inbox", b"five").unwrap(), 3);
        assert_eq!(vault.read_log("conv/3f2a/inbox").unwrap().len(), 4);
    }

    #[test]
    fn damaged_or_reordered_log_frames_are_corrupt() {
        let (_tmp, dir, vault) = new_vault();
        for record in [b"aaaa", b"bbbb", b"cccc"] {
            vault.append("inbox", record).unwrap();
        }
        let path = dir.join(LOGS_DIR).join("inbox.log");
        let original = fs::read(&path).unwrap();
        let frame = original.len() / 3;

        // A flipped byte in a frame before the end.
        let mut bytes = original.clone();
        bytes[frame / 2] ^= 0x80;
        fs::write(&path, &bytes).unwrap();
        let err = vault.read_log("inbox").unwrap_err();
        assert!(matches!(err, VaultError::Corrupt { .. }), "{err:?}");

        // Two frames swapped: each is bound to its index.
        let mut bytes = original[frame..2 * frame].to_vec();
        bytes.extend_from_slice(&original[..frame]);
        bytes.extend_from_slice(&original[2 * frame..]);
        fs::write(&path, &bytes).unwrap();
        let err = vault.read_log("inbox").unwrap_err();
        assert!(matches!(err, VaultError::Corrupt { .. }), "{err:?}");

        // A log copied under another name does not open.
        fs::write(&path, &original).unwrap();
        fs::copy(&path, dir.join(LOGS_DIR).join("other.log")).unwrap();
        let err = vault.read_log("other").unwrap_err();
        assert!(matches!(err, VaultError::Corrupt { .. }), "{err:?}");
        assert_eq!(vault.read_log("inbox").unwrap().len(), 3);
    }

    #[test]
    fn second_open_is_refused_while_locked() {
        let (_tmp, dir, vault) = new_vault();
        let err = Vault::open(&dir, PASS).unwrap_err();
        assert!(matches!(&err, VaultError::Locked { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("in use by another sealdesk process"),
            "{err}"
        );
        drop(vault);
        Vault::open(&dir, PASS).unwrap();
    }

    #[test]
    fn debug_shows_only_the_path() {
        let (_tmp, dir, vault) = new_vault();
        let header = fs::read(dir.join(HEADER_FILE)).unwrap();
        let (params, salt, _) = parse_header(&dir, &header).unwrap();
        let key = VaultKey::derive(PASS, &salt, params.validate().unwrap()).unwrap();
        let debug = format!("{vault:?}");
        assert_eq!(debug, format!("Vault {{ dir: {dir:?}, .. }}"));
        assert!(!debug.contains(&hex::encode(key.bytes)), "{debug}");
        assert!(!debug.contains(&format!("{:?}", key.bytes)), "{debug}");
        assert!(!debug.contains(PASS), "{debug}");
    }

    #[test]
    fn vault_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Vault>();
    }
}
