//! The relay's one error type.
//!
//! Errors carry operation names, paths, sizes and reasons — never stored values, frame
//! payloads or key material. Every variant holds plain data so the enum is `Clone + PartialEq`:
//! group commit hands the same flush error to every waiter of a batch, and tests compare errors.

use std::path::PathBuf;

use crate::close::CloseReason;

/// A `Result` with the relay's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside the relay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of range or inconsistent with another; the message names the setting.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A configuration, certificate or key file could not be read or parsed.
    #[error("cannot use {path}: {detail}")]
    File {
        /// The file that failed.
        path: PathBuf,
        /// What went wrong (an I/O or parse error; never the file's contents).
        detail: String,
    },

    /// The TLS server configuration could not be built from the certificate and key.
    #[error("tls setup failed: {0}")]
    Tls(String),

    /// A storage operation failed. `detail` describes the engine error, never a key or value.
    #[error("storage {op} failed: {detail}")]
    Storage {
        /// The [`Store`](crate::store::Store) operation that failed (`get`, `apply`, `flush`, …).
        op: &'static str,
        /// The engine's description of the failure.
        detail: String,
    },

    /// The database's schema is newer than this build writes: an older relay must not write
    /// to it.
    #[error(
        "the database schema is version {found}, newer than this relay's {supported}: run a \
         newer relay"
    )]
    SchemaTooNew {
        /// The database's version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },

    /// The database's schema is behind this build's and the relay was not asked to migrate it.
    #[error(
        "the database schema is version {found}, this relay needs {latest}: start one node \
         with --migrate"
    )]
    SchemaBehind {
        /// The database's version.
        found: i64,
        /// This build's.
        latest: i64,
    },

    /// The log key file (`--log-key-file`) names another key than the one the store holds:
    /// the node would sign tree heads no client pinned. Nothing was changed.
    #[error(
        "the log key in {path} is not the one the relay's store holds: give every node of a \
         cluster the same key file"
    )]
    LogKeyMismatch {
        /// The key file.
        path: PathBuf,
    },

    /// The group-commit thread is gone (the relay is shutting down, or the thread failed).
    #[error("group commit is not running")]
    CommitStopped,

    /// An outbound frame is larger than the configured `max_message_size`, so a peer using the
    /// same limits would reject it. Nothing was queued.
    #[error("outbound frame of {size} bytes exceeds the {max}-byte limit")]
    FrameTooLarge {
        /// Size of the refused frame in bytes.
        size: usize,
        /// The configured limit in bytes.
        max: usize,
    },

    /// The connection has been closed by the relay (a limit was violated, the session asked for
    /// it, or the peer vanished). Further sends and receives fail with the same reason.
    #[error("connection closed: {0}")]
    Closed(CloseReason),

    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {detail}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The operating system's reason.
        detail: String,
    },

    /// Stored data did not decode (the data directory is damaged or from another version).
    #[error("stored {0} is damaged or from an incompatible version")]
    Corrupt(String),

    /// An internal task failed.
    #[error("internal error: {0}")]
    Internal(String),

    /// The relay's identity key is stored but malformed. The relay refuses to start instead of
    /// making a new key: every client pinned the old one and would see "relay key changed".
    #[error(
        "the relay's identity key is damaged: {detail} (in {location}); refusing to start \
         rather than replace it, which every client would see as a changed relay key. Restore \
         the data directory from a backup"
    )]
    CorruptIdentity {
        /// Where it is stored: the data directory, tree and key.
        location: String,
        /// What is wrong with it (a length, never the bytes).
        detail: String,
    },
}

impl Error {
    /// Wraps an error encountered while reading or parsing `path`.
    pub(crate) fn file(path: impl Into<PathBuf>, detail: impl ToString) -> Self {
        Error::File {
            path: path.into(),
            detail: detail.to_string(),
        }
    }
}
