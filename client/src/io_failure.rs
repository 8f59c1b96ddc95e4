//! [`IoFailure`]: an I/O error as comparable data, a leaf that every error type of the crate
//! (the client's, the vault's, the TLS options') can hold without importing one another.

use std::fmt;

/// An I/O error as data: its kind and the operating system's message. Unlike
/// [`std::io::Error`] it compares and clones, so the errors holding it can too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoFailure {
    /// The kind of error.
    pub kind: std::io::ErrorKind,
    /// The error's message, as [`std::io::Error`] displays it.
    pub message: String,
}

impl From<std::io::Error> for IoFailure {
    fn from(e: std::io::Error) -> Self {
        Self {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

impl fmt::Display for IoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for IoFailure {}
