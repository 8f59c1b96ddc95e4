//! Wall-clock time for the relay's protocol layer, behind a seam a test can move.
//!
//! Everything the relay stamps or checks in whole seconds — `stored_at` of items, the
//! activity time retention counts from, certificate expiry, dispute-ticket holds, tree-head
//! and erasure-entry timestamps — reads a [`Clock`]. Production uses [`SystemClock`]; a test
//! passes a [`TestClock`] in [`RelayConfig::clock`](crate::config::RelayConfig::clock) and
//! sets the time instead of sleeping. Durations the transport measures (timeouts, latency
//! histograms) stay on tokio's and std's monotonic clocks.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time in whole seconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time in seconds since the Unix epoch.
    fn now(&self) -> u64;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock that stands still until it is set or advanced (for tests). Clones share the time.
#[derive(Debug, Clone, Default)]
pub struct TestClock(Arc<AtomicU64>);

impl TestClock {
    /// A clock showing `now` (seconds since the Unix epoch).
    pub fn new(now: u64) -> Self {
        Self(Arc::new(AtomicU64::new(now)))
    }

    /// A clock showing the system's time now, standing still from then on.
    pub fn at_system_time() -> Self {
        Self::new(SystemClock.now())
    }

    /// Sets the time to `now`.
    pub fn set(&self, now: u64) {
        self.0.store(now, Ordering::SeqCst);
    }

    /// Moves the time on by `secs` seconds.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    /// This clock as the handle a [`RelayConfig`](crate::config::RelayConfig) takes.
    pub fn handle(&self) -> ClockHandle {
        ClockHandle::Custom(Arc::new(self.clone()))
    }
}

impl Clock for TestClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The clock a relay runs on, as a configuration value: the system's by default. It is not
/// part of the configuration file (serde skips it); two handles are equal when both are the
/// system's or both share one clock.
#[derive(Clone, Debug, Default)]
pub enum ClockHandle {
    /// [`SystemClock`].
    #[default]
    System,
    /// Another clock, e.g. a [`TestClock`].
    Custom(Arc<dyn Clock>),
}

impl ClockHandle {
    /// The current time in seconds since the Unix epoch.
    pub fn now(&self) -> u64 {
        match self {
            ClockHandle::System => SystemClock.now(),
            ClockHandle::Custom(clock) => clock.now(),
        }
    }
}

impl PartialEq for ClockHandle {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ClockHandle::System, ClockHandle::System) => true,
            // The data pointers only: vtable pointers of one type may differ between
            // codegen units.
            (ClockHandle::Custom(a), ClockHandle::Custom(b)) => {
                std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
            }
            _ => false,
        }
    }
}

impl Eq for ClockHandle {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_test_clock_moves_only_when_told_and_clones_share_it() {
        let clock = TestClock::new(1_000);
        let handle = clock.handle();
        assert_eq!(handle.now(), 1_000);
        clock.advance(5);
        assert_eq!(handle.now(), 1_005);
        clock.set(7);
        assert_eq!(clock.clone().now(), 7);
    }

    #[test]
    fn handles_are_equal_when_they_share_a_clock() {
        let clock = TestClock::new(1);
        let h = clock.handle();
        assert_eq!(h, h.clone());
        assert_ne!(h, TestClock::new(1).handle());
        assert_eq!(ClockHandle::default(), ClockHandle::default());
    }
}
