//! The load generator's clocks: a monotonic one for latencies (nanoseconds since a process-wide
//! base, so a timestamp fits in a message body) and the wall clock that certificates, cards and
//! records carry. A leaf: it imports nothing from the rest of the load generator.

use std::{
    sync::OnceLock,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

/// Nanoseconds since the process-wide clock base.
pub fn now_ns() -> u64 {
    ns_at(Instant::now())
}

/// `at` as nanoseconds since the clock base.
pub fn ns_at(at: Instant) -> u64 {
    let base = *BASE.get_or_init(Instant::now);
    at.saturating_duration_since(base).as_nanos() as u64
}

static BASE: OnceLock<Instant> = OnceLock::new();

/// Seconds since the Unix epoch (certificates, cards and records carry wall-clock times).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
