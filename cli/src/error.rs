//! The CLI's own errors: the chat loop's and the demo's typed failures (the library's errors
//! pass through as [`CliError::Client`]), and [`CannotCheck`], which `main` maps to exit status 2.

use sealdesk_client::ClientError;

/// What can stop the chat loop or the demo.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The client library failed (the relay, the vault, a protocol check).
    #[error(transparent)]
    Client(#[from] ClientError),

    /// Reading the input or writing the output failed.
    #[error("could not {op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// `/switch` named neither a listed number nor a conversation id.
    #[error("no conversation {0:?}; see /list")]
    UnknownConversation(String),

    /// A chat command needs a current conversation and none is selected.
    #[error("no conversation selected{hint}")]
    NoConversationSelected {
        /// What to do about it, starting with "; " (or empty).
        hint: &'static str,
    },

    /// `/open` by an account that is not a customer.
    #[error("only customers open conversations")]
    NotACustomer,

    /// The demo's in-process relay did not start.
    #[error("could not start the demo relay: {0}")]
    DemoRelay(String),

    /// The demo's story went differently from what it narrates (a bug).
    #[error("{0}")]
    DemoStory(&'static str),

    /// `/switch` named an id prefix that more than one conversation has.
    #[error("{0:?} is the start of more than one conversation id; type more of it")]
    AmbiguousConversation(String),

    /// `demo --home DIR` named a directory that holds something.
    #[error(
        "{} is not empty; `sealdesk demo --home DIR` keeps the demo in a new or empty directory \
         (leave --home out for a temporary one)",
        .0.display()
    )]
    DemoDirNotEmpty(std::path::PathBuf),

    /// A new passphrase is too short.
    #[error(
        "the passphrase is too short: use at least {min} characters (a few unrelated words \
         are easy to remember and hard to guess)"
    )]
    WeakPassphrase {
        /// The minimum, in characters.
        min: usize,
    },

    /// `/attach FILE` could not read the file.
    #[error("cannot read {}: {source}", path.display())]
    Attach {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A chat line started with `/` but names no command.
    #[error("unknown command {0}; /help lists them")]
    UnknownCommand(String),

    /// A chat command was given without the argument it needs.
    #[error("missing argument: {usage}")]
    MissingArgument {
        /// How the command is used.
        usage: &'static str,
    },

    /// A chat command's argument is not one it takes.
    #[error("{given:?} is not one of {usage}")]
    BadArgument {
        /// What was given.
        given: String,
        /// What the command takes.
        usage: &'static str,
    },

    /// `/attach` while another upload runs.
    #[error("{name} is still uploading; wait for it, or /cancel it first")]
    UploadRunning {
        /// The file being uploaded.
        name: String,
    },

    /// `/cancel` with no upload running.
    #[error("no upload is running")]
    NothingToCancel,

    /// A chat command that needs the relay, typed while the connection is lost.
    #[error("offline: {command} needs the relay; try again once reconnected")]
    Offline {
        /// The command.
        command: String,
    },

    /// `--conversation` is neither a conversation id nor the start of one.
    #[error(
        "{0:?} is not a conversation id: give the 32 hex digits or at least the first 8; \
         `sealdesk conversations` lists full ids"
    )]
    BadConversationId(String),

    /// `--conversation` is the start of no conversation this account lists.
    #[error("no conversation of yours starts with {0}; `sealdesk conversations` lists full ids")]
    NoSuchConversation(String),

    /// `--conversation` is the start of more than one conversation this account lists.
    #[error(
        "{prefix} is the start of {count} of your conversations; give more digits \
         (`sealdesk conversations` lists full ids)"
    )]
    AmbiguousConversationId {
        /// The digits given.
        prefix: String,
        /// How many conversations start with them.
        count: usize,
    },

    /// An output file exists and `--force` was not given.
    #[error("{} exists; pass --force to replace it", path.display())]
    FileExists {
        /// The file.
        path: std::path::PathBuf,
    },
}

/// A `transcript verify` that could not check at all (the file could not be read, a flag is
/// malformed): exit status 2, apart from a refused transcript's 1.
#[derive(Debug)]
pub struct CannotCheck(pub String);

impl std::fmt::Display for CannotCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CannotCheck {}

impl CliError {
    /// The stable code of a mistake only the chat can make (`chat --json`'s `error.code`,
    /// README "`chat --json`"); `None` for the others, which [`crate::status::classify`] names.
    pub fn chat_code(&self) -> Option<&'static str> {
        Some(match self {
            Self::UnknownConversation(_) => "unknown_conversation",
            Self::AmbiguousConversation(_) => "ambiguous_conversation",
            Self::NoConversationSelected { .. } => "no_conversation_selected",
            Self::NotACustomer => "not_a_customer",
            Self::Attach { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                "file_not_found"
            }
            Self::Attach { .. } => "file_unreadable",
            Self::UnknownCommand(_) => "unknown_command",
            Self::MissingArgument { .. } => "missing_argument",
            Self::BadArgument { .. } => "bad_argument",
            Self::UploadRunning { .. } => "upload_running",
            Self::NothingToCancel => "nothing_to_cancel",
            Self::Offline { .. } => "offline",
            _ => return None,
        })
    }
}
