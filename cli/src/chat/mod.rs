//! The interactive chat (`sealdesk chat`), one engine and three displays:
//!
//! - a full-screen terminal UI when stdin and stdout are a terminal ([`tui`]): a conversation
//!   list, a message pane and an input line that incoming messages never disturb;
//! - lines of text for pipes and with `--plain` ([`line::TextSink`]);
//! - JSON lines with `--json` ([`line::JsonSink`]): one event a line, for scripts.
//!
//! Every display reads the same input lines — a message, or a slash command
//! ([`commands`], `/help`) — and shows the same [`Shown`] events. When the connection is lost
//! (the relay restarted), the chat says so, reconnects with backoff and resumes every
//! conversation from its cursor; lines typed meanwhile are kept and sent, in order, once it is
//! back.
//!
//! - [`event`] — what the chat shows ([`Shown`]), its JSON form, the [`Sink`] trait.
//! - `engine` — the loop: input, pushes, reconnection, kept lines.
//! - `backoff` — the wait between reconnection attempts: doubled until the chat is back.
//! - [`commands`] — the slash commands, sending, selecting, listing.
//! - `upload` — `/attach` as a task the loop polls: a chunk at a time, progress, `/cancel`.
//! - `interrupt` — Ctrl-C in the line chat: cancels a running upload, else leaves.
//! - [`mod@line`] — the text and JSON displays.
//! - [`state`] — the terminal UI's state and its updates (no terminal).
//! - [`tui`] — drawing and the terminal.

use std::io::Write;
use std::time::Duration;

use sealdesk_client::client::Client;
use sealdesk_protocol::ids::ConversationId;
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _};

use crate::error::CliError;

mod backoff;
pub mod commands;
mod engine;
pub mod event;
mod interrupt;
mod key_recheck;
pub mod line;
mod notices;
mod quota;
pub mod state;
pub mod tui;
mod upload;

pub use event::{Connection, ConvRow, Shown, Sink};

/// Which display the chat uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Display {
    /// Lines of text.
    Text,
    /// JSON lines (`--json`).
    Json,
    /// The full-screen window.
    Window,
}

impl Display {
    /// The window when stdin and stdout are both a terminal, lines of text otherwise.
    pub fn for_terminal() -> Self {
        use std::io::IsTerminal as _;
        if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
            Self::Window
        } else {
            Self::Text
        }
    }
}

/// The chat's result.
type Result<T> = std::result::Result<T, CliError>;

/// How many history lines are shown when a conversation is selected.
pub const RECENT_LINES: usize = 20;

/// The first wait before reconnecting after the connection was lost; each attempt that does
/// not get the chat back (refused, lost again before it caught up, or lost right after it
/// caught up, before the relay answered or pushed anything) doubles it, up to
/// [`RECONNECT_MAX`].
pub const RECONNECT_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two reconnection attempts.
pub const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// How often a customer's chat asks the relay whether the current conversation's agent still
/// has the pinned key (an agent re-certified for a new key shows as a key change within this),
/// and every chat judges again the notices not yet witnessed of every conversation holding one
/// (one the trustees have confirmed since shows updated within this, and the list's mark
/// follows).
pub const KEY_RECHECK: Duration = Duration::from_secs(60);
/// After the input ended (`/quit` or end of a pipe) with lines still waiting for the relay, how
/// long the chat keeps trying to reconnect to send them before it gives up and says so.
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(60);

/// Runs the line-mode chat until `/quit` or the end of `input`, printing text to `out`. When
/// the connection is lost (the relay restarted), it says so, reconnects with backoff and
/// resumes every conversation from its cursor; lines typed meanwhile are kept and sent, in
/// order, once it is back.
///
/// # Errors
/// Relay and storage errors that end the session; errors of single commands are printed and
/// the loop goes on. [`sealdesk_client::ClientError::Closed`] when lines typed could not be
/// sent because the relay did not come back within [`FLUSH_DEADLINE`] after the input ended.
pub async fn run<R, W>(
    client: &mut Client,
    input: R,
    out: &mut W,
    conversation: Option<ConversationId>,
) -> Result<()>
where
    R: AsyncBufRead + Unpin,
    W: Write,
{
    run_with(client, input, &mut line::TextSink::new(out), conversation).await
}

/// [`run`] with JSON lines on `out` (`chat --json`): each event one object with `event`, `ok`,
/// `warnings` and its fields (README, "`chat --json`").
///
/// # Errors
/// As [`run`].
pub async fn run_json<R, W>(
    client: &mut Client,
    input: R,
    out: &mut W,
    conversation: Option<ConversationId>,
) -> Result<()>
where
    R: AsyncBufRead + Unpin,
    W: Write,
{
    run_with(client, input, &mut line::JsonSink::new(out), conversation).await
}

/// [`run`] with any display: every [`Shown`] goes to `sink` (the terminal UI's state, say —
/// [`state::ChatState::apply`] — which is how the tests drive the window without a terminal).
///
/// # Errors
/// As [`run`].
pub async fn run_with<R, S>(
    client: &mut Client,
    input: R,
    sink: &mut S,
    conversation: Option<ConversationId>,
) -> Result<()>
where
    R: AsyncBufRead + Unpin,
    S: Sink,
{
    let mut lines = input.lines();
    engine::drive(
        client,
        &mut lines,
        sink,
        conversation,
        &mut interrupt::Interrupts::none(),
    )
    .await
}

/// [`run`] (or [`run_json`], `json`) for the `sealdesk chat` process itself: Ctrl-C cancels a
/// running upload, as `/cancel` does, and otherwise ends the chat, as `/quit` does, instead of
/// ending the process mid-upload.
///
/// # Errors
/// As [`run`]; [`CliError::Io`] when the Ctrl-C handler cannot be installed.
pub async fn run_catching_ctrl_c<R, W>(
    client: &mut Client,
    input: R,
    out: &mut W,
    conversation: Option<ConversationId>,
    json: bool,
) -> Result<()>
where
    R: AsyncBufRead + Unpin,
    W: Write,
{
    let mut interrupts = interrupt::Interrupts::catch().map_err(|e| CliError::Io {
        op: "listen for Ctrl-C",
        source: e,
    })?;
    let mut lines = input.lines();
    if json {
        let mut sink = line::JsonSink::new(out);
        engine::drive(client, &mut lines, &mut sink, conversation, &mut interrupts).await
    } else {
        let mut sink = line::TextSink::new(out);
        engine::drive(client, &mut lines, &mut sink, conversation, &mut interrupts).await
    }
}
