//! How long the chat waits before its next reconnection attempt.
//!
//! The wait doubles after every attempt that did not get the chat back, up to
//! [`RECONNECT_MAX`], and starts over at [`RECONNECT_FIRST`] only once a reconnection has
//! caught up (the new session synced every conversation and sent the lines kept) *and then
//! stayed up*: the relay answered something the chat asked after the catch-up, or pushed to
//! it, or the connection lasted [`STEADY`]. An attempt that did not get the chat back is one
//! the relay refused or could not be reached for, one whose new session was lost again before
//! it caught up (a relay, or a proxy in front of it, that cuts the connection at every re-ask
//! of `watch_agent_keys`), and one lost again right after its catch-up (a relay that lets the
//! chat catch up and then cuts it at once). Each of those costs the relay a connection and
//! most of them a full catch-up; resetting the wait on them would have the chat pay that cost
//! at the shortest interval for as long as it runs.
//!
//! Why "answered or pushed, else [`STEADY`]" and not a fixed period alone: a chat that is
//! talking to the relay proves the connection good at once (a loss a moment later is a new
//! loss, retried after the shortest wait), while a quiet chat has nothing to prove it with
//! but time; and [`STEADY`] is the longest wait, so a relay that cuts every connection just
//! after it has lasted that long still sees at most one catch-up per [`STEADY`] plus a few
//! shorter ones.

use std::time::{Duration, Instant};

use super::{RECONNECT_FIRST, RECONNECT_MAX};

/// How long a caught-up connection must stay up, with nothing answered or pushed, before a
/// loss counts as a new one (retried after [`RECONNECT_FIRST`]) rather than as one more
/// failed attempt.
pub(crate) const STEADY: Duration = RECONNECT_MAX;

/// The wait before the next reconnection attempt, the attempts since the chat was last back,
/// and whether the last reconnection is still on probation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    wait: Duration,
    failed: u32,
    /// A reconnection caught up at this instant, when the relay had sent the new session this
    /// many answers, and has not yet proven itself (nothing answered or pushed since).
    probation: Option<(Instant, u64)>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            wait: RECONNECT_FIRST,
            failed: 0,
            probation: None,
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
        self.probation = None;
    }

    /// A reconnection caught up at `now`, the relay having sent its session `answers` answers
    /// (`Session::answers_received`): the wait is kept until the connection proves itself
    /// ([`Backoff::answered`], [`Backoff::dropped`]).
    pub(crate) fn caught_up(&mut self, now: Instant, answers: u64) {
        self.probation = Some((now, answers));
    }

    /// The relay has now sent the session `answers` answers: one more than at the catch-up
    /// proves the connection, and the next loss starts from [`RECONNECT_FIRST`] again.
    ///
    /// Answers, not requests sent: a request sent after the catch-up and dropped before its
    /// answer came (a chunk of an upload, cancelled by a line typed meanwhile) proves nothing,
    /// and a local command that follows it (`/help`) must not count it as answered.
    pub(crate) fn answered(&mut self, answers: u64) {
        if self.probation.is_some_and(|(_, at)| answers > at) {
            *self = Self::default();
        }
    }

    /// The relay pushed something to the caught-up session: it is up.
    pub(crate) fn pushed(&mut self) {
        if self.probation.is_some() {
            *self = Self::default();
        }
    }

    /// The connection was lost at `now` while the chat was online. Lost before it proved
    /// itself and within [`STEADY`] of its catch-up: one more failed attempt (the next waits
    /// longer). After [`STEADY`]: a new loss, retried after [`RECONNECT_FIRST`].
    pub(crate) fn dropped(&mut self, now: Instant) {
        match self.probation {
            Some((since, _)) if now.saturating_duration_since(since) < STEADY => self.failed(),
            Some(_) => *self = Self::default(),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(b: &Backoff) -> u128 {
        b.wait().as_millis()
    }

    #[test]
    fn the_wait_doubles_per_failed_attempt_up_to_the_most() {
        let mut b = Backoff::default();
        let mut waits = vec![ms(&b)];
        for _ in 0..8 {
            b.failed();
            waits.push(ms(&b));
        }
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(b.failed_attempts(), 8);
    }

    #[test]
    fn a_connection_cut_right_after_its_catch_up_counts_as_a_failed_attempt() {
        let t = Instant::now();
        let mut b = Backoff::default();
        // The first loss of a steady connection: nothing on probation, the shortest wait.
        b.dropped(t);
        assert_eq!((ms(&b), b.failed_attempts()), (100, 0));
        let mut waits = Vec::new();
        for n in 0..4u64 {
            let at = t + Duration::from_secs(n);
            b.caught_up(at, 3);
            // Nothing asked after the catch-up: no proof.
            b.answered(3);
            b.dropped(at + Duration::from_millis(1));
            waits.push((ms(&b), b.failed_attempts()));
        }
        assert_eq!(waits, [(200, 1), (400, 2), (800, 3), (1600, 4)]);
    }

    #[test]
    fn an_answer_or_a_push_after_the_catch_up_starts_the_wait_over() {
        let t = Instant::now();
        let mut b = Backoff::default();
        b.failed();
        b.caught_up(t, 5);
        b.answered(6);
        assert_eq!(b, Backoff::default());
        b.dropped(t + Duration::from_millis(1));
        assert_eq!(ms(&b), 100, "a new loss after the proof");

        let mut b = Backoff::default();
        b.failed();
        b.caught_up(t, 5);
        b.pushed();
        assert_eq!(b, Backoff::default());
    }

    #[test]
    fn a_quiet_connection_that_stays_up_for_the_steady_period_starts_the_wait_over() {
        let t = Instant::now();
        let mut b = Backoff::default();
        b.failed();
        b.failed();
        b.caught_up(t, 2);
        b.dropped(t + STEADY);
        assert_eq!(b, Backoff::default());
        b.caught_up(t, 2);
        b.dropped(t + STEADY - Duration::from_millis(1));
        assert_eq!((ms(&b), b.failed_attempts()), (200, 1));
    }

    #[test]
    fn a_loss_before_the_catch_up_fails_and_ends_any_probation() {
        let t = Instant::now();
        let mut b = Backoff::default();
        b.caught_up(t, 1);
        b.failed();
        // The failure was counted once; the loss that follows it is not counted again.
        b.dropped(t);
        assert_eq!((ms(&b), b.failed_attempts()), (200, 1));
    }
}
