//! Token buckets an engine shared by a cluster keeps for the relay's rare, expensive events
//! (registrations, failed authentications, conversation opens), so that N nodes allow what
//! one does, not N times it ([`ConversationLog::rate_bucket`](super::ConversationLog::rate_bucket)).
//!
//! A bucket is kept as the time it is full again (the "theoretical arrival time" of the
//! generic cell rate algorithm): one number per key, one conditional update per event, and a
//! bucket full again is a row that can be dropped without losing anything.

use std::time::Duration;

/// A bucket's rate, as the engine computes with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketRate {
    /// Seconds per token (the sustained rate's inverse).
    pub interval_secs: f64,
    /// Most tokens saved up (at least one).
    pub burst: u32,
}

impl BucketRate {
    /// A rate of `per_minute` tokens with `burst` saved up; a rate of zero never refills
    /// (in practice: once in about 30 years).
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let interval_secs = if per_minute == 0 {
            1e9
        } else {
            60.0 / f64::from(per_minute)
        };
        Self {
            interval_secs,
            burst: burst.max(1),
        }
    }

    /// How far ahead of now the full-again time may be while a token is left: the burst's
    /// other tokens' worth of time.
    pub fn tolerance_secs(self) -> f64 {
        f64::from(self.burst.saturating_sub(1)) * self.interval_secs
    }

    /// The answer for a bucket full again `ahead_secs` from now: a token is there, or the
    /// wait until one is (whole seconds, at least one).
    pub fn answer(self, ahead_secs: f64) -> BucketAnswer {
        let short = ahead_secs - self.tolerance_secs();
        if short <= 0.0 {
            BucketAnswer::Allowed
        } else {
            BucketAnswer::Empty {
                retry_after: Duration::from_secs_f64(short.ceil().clamp(1.0, f64::from(u32::MAX))),
            }
        }
    }
}

/// What to do with a shared bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketOp {
    /// Take a token if there is one (a key without a bucket starts one, full).
    Take,
    /// Take a token only from a bucket that exists: a key without one is answered
    /// [`BucketAnswer::Unknown`] and starts none (its limit stands at its cap of keys).
    TakeKnown,
    /// Whether a token is there, taking none.
    Check,
    /// [`Check`](Self::Check) for a bucket that exists: a key without one is answered
    /// [`BucketAnswer::Unknown`] (its limit stands at its cap of keys, and the keys without a
    /// bucket are answered by the limit's overflow bucket, `limits::shared`).
    CheckKnown,
    /// Give back a token taken by an attempt that turned out not to count.
    Refund,
}

/// A shared bucket's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketAnswer {
    /// A token was there (and, for a take, taken); always the answer to
    /// [`BucketOp::Refund`].
    Allowed,
    /// [`BucketOp::Take`] for a key without a bucket: a bucket was started for it (one key
    /// more kept), and its first token taken.
    Started,
    /// [`BucketOp::TakeKnown`] or [`BucketOp::CheckKnown`] for a key without a bucket:
    /// nothing taken, nothing kept.
    Unknown,
    /// The bucket is empty: the wait until a token is there.
    Empty {
        /// At least one second, in whole seconds.
        retry_after: Duration,
    },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_answer_follows_the_full_again_time() {
        // 60 a minute, burst 3: a token per second, two seconds of tolerance.
        let r = BucketRate::new(60, 3);
        assert_eq!(r.tolerance_secs(), 2.0);
        assert_eq!(r.answer(0.0), BucketAnswer::Allowed);
        assert_eq!(r.answer(2.0), BucketAnswer::Allowed);
        assert_eq!(
            r.answer(2.2),
            BucketAnswer::Empty {
                retry_after: Duration::from_secs(1)
            }
        );
        assert_eq!(
            BucketRate::new(1, 1).answer(60.0),
            BucketAnswer::Empty {
                retry_after: Duration::from_secs(60)
            }
        );
        assert!(BucketRate::new(0, 1).interval_secs > 1e8);
    }
}
