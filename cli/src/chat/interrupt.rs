//! Ctrl-C in the line chat (`--plain`, `--json`, a pipe): while a file uploads it cancels the
//! upload, as `/cancel` does, and the chat goes on; otherwise (a second Ctrl-C) it leaves, as
//! `/quit` does. The window reads Ctrl-C as a key instead ([`super::state::Key::Quit`]).

/// Where the engine hears Ctrl-C from: nowhere (the window, tests driving the chat in-process),
/// or the process's interrupt signal.
pub(crate) struct Interrupts {
    /// The interrupt signal, once its handler is installed.
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
    /// Whether Ctrl-C is listened for.
    #[cfg(not(unix))]
    on: bool,
}

impl Interrupts {
    /// Ctrl-C is not listened for: [`Self::next`] never finishes.
    pub(crate) fn none() -> Self {
        Self {
            #[cfg(unix)]
            signal: None,
            #[cfg(not(unix))]
            on: false,
        }
    }

    /// Ctrl-C is heard from now on (the process no longer ends on it: the chat decides).
    ///
    /// # Errors
    /// The signal handler could not be installed.
    pub(crate) fn catch() -> std::io::Result<Self> {
        Ok(Self {
            #[cfg(unix)]
            signal: Some(tokio::signal::unix::signal(
                tokio::signal::unix::SignalKind::interrupt(),
            )?),
            #[cfg(not(unix))]
            on: true,
        })
    }

    /// The next Ctrl-C (never, for [`Self::none`]). A Ctrl-C that came while nobody waited is
    /// not lost: the signal's stream keeps it.
    pub(crate) async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(s) = self.signal.as_mut()
            && s.recv().await.is_some()
        {
            return;
        }
        #[cfg(not(unix))]
        if self.on && tokio::signal::ctrl_c().await.is_ok() {
            return;
        }
        std::future::pending::<()>().await;
    }
}
