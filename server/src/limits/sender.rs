//! The message buckets of one conversation: one [`Bucket`] per sender, kept inside the
//! conversation's own state and updated under the lock its append already holds, so the send
//! path takes no relay-wide lock for its rate limit.
//!
//! Only members of the conversation reach these buckets (the relay checks that the sender is
//! involved before it takes a token), so a conversation holds at most one bucket per member it
//! has had; a bucket that has filled up again is forgotten when a new sender arrives (a new
//! bucket starts full, so nothing is lost). The buckets live in memory only, like every
//! other limit's: a restart, or the conversation's state being dropped from the relay's cache,
//! starts them full.

use std::time::{Duration, Instant};

use super::bucket::{Bucket, Rate};

/// One token bucket per sender, for one conversation (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct SenderBuckets {
    /// A conversation has a handful of senders: a vector beats a hash map.
    buckets: Vec<([u8; 32], Bucket)>,
}

impl SenderBuckets {
    /// Takes one token from `sender`'s bucket of `rate`, or says how long until there is one.
    ///
    /// # Errors
    /// The wait, if the sender's bucket is empty.
    pub fn take(&mut self, rate: Rate, sender: &[u8; 32], now: Instant) -> Result<(), Duration> {
        if let Some((_, b)) = self.buckets.iter_mut().find(|(k, _)| k == sender) {
            return b.take(rate, now);
        }
        // A new sender: forget the buckets that have refilled (nothing is lost) first.
        self.buckets.retain_mut(|(_, b)| !b.refilled(rate, now));
        let mut b = Bucket::new(rate, now);
        let taken = b.take(rate, now);
        self.buckets.push((*sender, b));
        taken
    }

    /// How many senders have a bucket.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no sender has a bucket.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const RATE: Rate = Rate {
        per_minute: 60,
        burst: 3,
    };

    #[test]
    fn each_sender_has_its_own_bucket() {
        let t = Instant::now();
        let mut s = SenderBuckets::default();
        for _ in 0..3 {
            s.take(RATE, &[1; 32], t).unwrap();
        }
        assert_eq!(s.take(RATE, &[1; 32], t), Err(Duration::from_secs(1)));
        // Another sender is not held back by the first one's burst.
        s.take(RATE, &[2; 32], t).unwrap();
        assert_eq!(s.len(), 2);
        // The first one's bucket refills with time.
        s.take(RATE, &[1; 32], t + Duration::from_secs(1)).unwrap();
        assert_eq!(
            s.take(RATE, &[1; 32], t + Duration::from_secs(1)),
            Err(Duration::from_secs(1))
        );
    }

    #[test]
    fn refilled_buckets_are_forgotten_when_a_sender_arrives() {
        let t = Instant::now();
        let mut s = SenderBuckets::default();
        s.take(RATE, &[1; 32], t).unwrap();
        s.take(RATE, &[2; 32], t).unwrap();
        for _ in 0..2 {
            s.take(RATE, &[2; 32], t).unwrap();
        }
        // One second on: sender 1 has refilled (2 + 1 tokens), sender 2 has not (0 + 1).
        let later = t + Duration::from_secs(1);
        s.take(RATE, &[3; 32], later).unwrap();
        assert_eq!(s.len(), 2, "sender 1 forgotten, 2 and 3 kept");
        // Sender 2's bucket was kept, not reset: one token, then empty.
        s.take(RATE, &[2; 32], later).unwrap();
        assert!(s.take(RATE, &[2; 32], later).is_err());
        // Sender 1 starts full again: nothing was lost by forgetting it.
        for _ in 0..3 {
            s.take(RATE, &[1; 32], later).unwrap();
        }
        assert!(s.take(RATE, &[1; 32], later).is_err());
    }
}
