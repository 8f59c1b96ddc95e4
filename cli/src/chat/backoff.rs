//! How long the chat waits before its next reconnection attempt.
//!
//! The wait doubles after every attempt that did not get the chat back, up to
//! [`RECONNECT_MAX`], and starts over at [`RECONNECT_FIRST`] only once a reconnection has
//! caught up (the new session synced every conversation and sent the lines kept). An attempt
//! that did not get the chat back is one the relay refused or could not be reached for, and
//! also one whose new session was lost again before it caught up: a relay (or a proxy in
//! front of it) that cuts the connection at every re-ask of `watch_agent_keys` — or at
//! anything else a resumed session asks first — would otherwise have the chat connect again
//! at the shortest interval for as long as it runs.

use std::time::Duration;

use super::{RECONNECT_FIRST, RECONNECT_MAX};

/// The wait before the next reconnection attempt, and the attempts since the chat was last
/// back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    wait: Duration,
    failed: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            wait: RECONNECT_FIRST,
            failed: 0,
        }
    }
}

impl Backoff {
    /// The wait before the next attempt.
    pub(crate) fn wait(&self) -> Duration {
        self.wait
    }

    /// The attempts that failed since the chat was last back.
    pub(crate) fn failed_attempts(&self) -> u32 {
        self.failed
    }

    /// An attempt did not get the chat back: the next one waits twice as long (at most
    /// [`RECONNECT_MAX`]).
    pub(crate) fn failed(&mut self) {
        self.failed = self.failed.saturating_add(1);
        self.wait = self.wait.saturating_mul(2).min(RECONNECT_MAX);
    }

    /// A reconnection caught up: the next loss starts from [`RECONNECT_FIRST`] again.
    pub(crate) fn succeeded(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_per_failed_attempt_up_to_the_most_and_starts_over_on_success() {
        let mut b = Backoff::default();
        let mut waits = vec![b.wait()];
        for _ in 0..8 {
            b.failed();
            waits.push(b.wait());
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(b.failed_attempts(), 8);
        b.succeeded();
        assert_eq!(b, Backoff::default());
        assert_eq!(b.wait(), RECONNECT_FIRST);
    }
}
