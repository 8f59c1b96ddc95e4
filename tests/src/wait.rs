//! Bounded waits: how a test waits for something without sleeping.
//!
//! A test never sleeps to let another party catch up. It waits for the event itself — the
//! response or push it expects ([`crate::RawClient::expect_push`], the client's own calls), the
//! close ([`crate::RawClient::expect_close`]), a task's end ([`within_step`]) — or, when the event
//! is only visible as a state (a metric, a pending request, a file), it polls that state with
//! [`eventually`] until it holds. Every wait is bounded by [`STEP`] and fails loudly, naming what
//! it waited for, so a bug fails a test instead of hanging it.
//!
//! The one wait on time alone is [`stays_for`]: a short quiet period ([`QUIET`]) in a test that
//! asserts that something does *not* happen. No test asserts how long anything took.

use std::time::Duration;

use tokio::time::Instant;

/// Generous bound on any single step, so that a bug fails a test instead of hanging it.
pub const STEP: Duration = Duration::from_secs(20);

/// A short wait used only to check that *nothing* arrives (never to assert a duration).
pub const QUIET: Duration = Duration::from_millis(300);

/// How often [`eventually`] and [`stays_for`] look at the state they watch.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `check` every [`POLL`] until it returns `Some`, and returns that value.
///
/// # Panics
///
/// After [`STEP`] without `Some`, naming `what` was awaited.
pub async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    eventually_within(STEP, what, check).await
}

/// [`eventually`] with another bound than [`STEP`] (for an event that the relay's own timers
/// bring about, such as an idle timeout).
///
/// # Panics
///
/// After `bound` without `Some`, naming `what` was awaited.
pub async fn eventually_within<T>(
    bound: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {bound:?} waiting for {what}"
        );
        // The poll interval of this helper: the only timed wait besides a quiet period.
        tokio::time::sleep(POLL).await;
    }
}

/// Checks, every [`POLL`] for `period`, that `holds` stays true: the quiet period of a test that
/// asserts that something does *not* happen (use [`QUIET`] unless the test needs longer).
///
/// # Panics
///
/// As soon as `holds` is false, naming `what` should have stayed true.
pub async fn stays_for(period: Duration, what: &str, mut holds: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + period;
    loop {
        assert!(holds().await, "{what} stopped holding");
        if Instant::now() >= end {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Awaits `future`, at most [`STEP`].
///
/// # Panics
///
/// On timeout, naming `what` was awaited.
pub async fn within_step<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {STEP:?} waiting for {what}"),
    }
}
