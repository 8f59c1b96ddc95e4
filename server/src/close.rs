//! Why a WebSocket is closed: [`CloseReason`], its close code, text and metrics label.
//!
//! A leaf module (it imports nothing from the crate), so that both [`crate::connection`],
//! which sends close frames, and [`crate::error`], whose `Closed` variant carries the reason,
//! can use it without importing each other. The protocol layer's own codes (4100–4199) are
//! in [`crate::relay::session_codes`].

use std::fmt;

/// Why the relay closed (or is closing) a WebSocket. Each reason has a close code and a short
/// text sent in the close frame, and a label for metrics.
///
/// | reason              | code | text                |
/// |---------------------|------|---------------------|
/// | `Normal`            | 1000 | `normal`            |
/// | `GoingAway`         | 1001 | `going away`        |
/// | `Protocol`          | 1002 | `protocol error`    |
/// | `UnsupportedData`   | 1003 | `unsupported data`  |
/// | `TooBig`            | 1009 | `message too big`   |
/// | `Internal`          | 1011 | `internal error`    |
/// | `IdleTimeout`       | 4000 | `idle timeout`      |
/// | `AuthTimeout`       | 4001 | `auth timeout`      |
/// | `SlowConsumer`      | 4008 | `slow consumer`     |
/// | `RateLimit`         | 4029 | `rate limit`        |
/// | `Application{..}`   | any  | given               |
/// | `ConnectionLost`    | none — the transport failed; no close frame is sent |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The session ended normally.
    Normal,
    /// The relay is shutting down.
    GoingAway,
    /// The peer broke the WebSocket protocol (bad framing, unmasked frame, …).
    Protocol,
    /// The peer sent a text message; the relay speaks binary only.
    UnsupportedData,
    /// The peer sent a frame or message over the configured size limits.
    TooBig,
    /// The relay hit an internal error.
    Internal,
    /// Nothing (not even a pong) arrived within the idle timeout.
    IdleTimeout,
    /// The peer did not authenticate in time (used by the protocol layer).
    AuthTimeout,
    /// The peer did not read fast enough and its outbound queue filled up.
    SlowConsumer,
    /// The peer sent frames faster than its rate limit allows.
    RateLimit,
    /// A protocol-layer reason. Use codes 4100–4999; 4000–4099 are the transport's.
    Application {
        /// Close code sent to the peer.
        code: u16,
        /// Short text sent to the peer (at most 123 bytes; never user data).
        reason: &'static str,
    },
    /// The transport failed or the peer vanished without a close handshake.
    ConnectionLost,
}

impl CloseReason {
    /// The WebSocket close code.
    pub fn code(self) -> u16 {
        match self {
            CloseReason::Normal => 1000,
            CloseReason::GoingAway => 1001,
            CloseReason::Protocol => 1002,
            CloseReason::UnsupportedData => 1003,
            CloseReason::TooBig => 1009,
            CloseReason::Internal => 1011,
            CloseReason::IdleTimeout => 4000,
            CloseReason::AuthTimeout => 4001,
            CloseReason::SlowConsumer => 4008,
            CloseReason::RateLimit => 4029,
            CloseReason::Application { code, .. } => code,
            // 1006 is reserved for "closed abnormally" and is never put on the wire.
            CloseReason::ConnectionLost => 1006,
        }
    }

    /// The text sent in the close frame.
    pub fn text(self) -> &'static str {
        match self {
            CloseReason::Normal => "normal",
            CloseReason::GoingAway => "going away",
            CloseReason::Protocol => "protocol error",
            CloseReason::UnsupportedData => "unsupported data",
            CloseReason::TooBig => "message too big",
            CloseReason::Internal => "internal error",
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::AuthTimeout => "auth timeout",
            CloseReason::SlowConsumer => "slow consumer",
            CloseReason::RateLimit => "rate limit",
            CloseReason::Application { reason, .. } => reason,
            CloseReason::ConnectionLost => "connection lost",
        }
    }

    /// The metrics label (see [`CLOSE_REASONS`](crate::metrics::CLOSE_REASONS)).
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Normal => "normal",
            CloseReason::GoingAway => "going_away",
            CloseReason::Protocol => "protocol",
            CloseReason::UnsupportedData => "unsupported_data",
            CloseReason::TooBig => "too_big",
            CloseReason::Internal => "internal",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::AuthTimeout => "auth_timeout",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::RateLimit => "rate_limit",
            CloseReason::Application { .. } => "application",
            CloseReason::ConnectionLost => "connection_lost",
        }
    }

    /// Whether this reason is about an incoming frame (counted in `frames_rejected`).
    pub(crate) fn is_frame_rejection(self) -> bool {
        matches!(
            self,
            CloseReason::Protocol
                | CloseReason::UnsupportedData
                | CloseReason::TooBig
                | CloseReason::RateLimit
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.text())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn close_reasons_have_distinct_codes_and_known_labels() {
        let all = [
            CloseReason::Normal,
            CloseReason::GoingAway,
            CloseReason::Protocol,
            CloseReason::UnsupportedData,
            CloseReason::TooBig,
            CloseReason::Internal,
            CloseReason::IdleTimeout,
            CloseReason::AuthTimeout,
            CloseReason::SlowConsumer,
            CloseReason::RateLimit,
            CloseReason::Application {
                code: 4100,
                reason: "x",
            },
            CloseReason::ConnectionLost,
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), all.len());
        for r in all {
            assert!(crate::metrics::CLOSE_REASONS.contains(&r.label()), "{r}");
            assert!(r.text().len() <= 123);
        }
        assert_eq!(CloseReason::SlowConsumer.to_string(), "4008 slow consumer");
    }
}
