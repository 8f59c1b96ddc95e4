//! The abuse scenario's figures (see the loadgen's `abuse` module): the chat's latency with
//! and without a flood from one source, what the flood tried and what the relay refused, and
//! the relay's memory.

use serde::Serialize;

use super::{Percentiles, RunFigures};

/// What the flood did and what the relay refused, by the flood's own count.
#[derive(Debug, Default, Serialize)]
pub struct FloodTally {
    /// Connections tried.
    pub attempts: u64,
    /// WebSocket upgrades refused with HTTP 429 (connections per source).
    pub refused_connections: u64,
    /// Connections that failed otherwise (closed before or during the handshake).
    pub failed_connections: u64,
    /// Registrations made.
    pub registered: u64,
    /// Registrations refused (`rate_limited`).
    pub refused_registrations: u64,
    /// Conversations opened.
    pub opened: u64,
    /// Opens refused (`quota_exceeded` or `rate_limited`).
    pub refused_opens: u64,
    /// Any other answer.
    pub other: u64,
}

impl FloodTally {
    /// Every refused request: upgrades, registrations and opens.
    pub fn refused(&self) -> u64 {
        self.refused_connections + self.refused_registrations + self.refused_opens
    }
}

/// The abuse scenario's figures.
#[derive(Debug, Serialize)]
pub struct AbuseFigures {
    /// Conversations chatting.
    pub conversations: usize,
    /// The chat's rate, messages/s over all conversations.
    pub rate_per_s: f64,
    /// The chat's delivery latency without the flood (both quiet runs).
    pub quiet: Percentiles,
    /// The chat's delivery latency during the flood.
    pub flood: Percentiles,
    /// `flood.p99 / quiet.p99`.
    pub p99_ratio: f64,
    /// The three runs: quiet, flood, quiet.
    pub runs: Vec<RunFigures>,
    /// The flood, by its own count.
    pub tally: FloodTally,
    /// The relay's refusals during the scenario, `sealdesk_limited_total` by reason.
    pub relay_limited: Vec<(String, f64)>,
    /// Relay RSS (bytes) before the flood, at its end, and after the last quiet run.
    pub rss_before: u64,
    /// See `rss_before`.
    pub rss_flood_end: u64,
    /// See `rss_before`.
    pub rss_after: u64,
}
