//! Token buckets: one ([`Bucket`]) and one per key ([`KeyedBuckets`]), bounded in memory.
//!
//! Time is passed in (`now`), so the arithmetic is tested without waiting, and a refusal
//! says how long until the next token ([`Limited::retry_after`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A sustained rate and the burst saved up for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Tokens added per minute.
    pub per_minute: u32,
    /// Most tokens saved up (the bucket starts full).
    pub burst: u32,
}

impl Rate {
    fn per_second(self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }

    fn capacity(self) -> f64 {
        f64::from(self.burst.max(1))
    }
}

/// A refusal by a bucket: which limit, and when a token will be there again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// The limit's metrics label (one of [`LIMIT_LABELS`](super::LIMIT_LABELS)).
    pub limit: &'static str,
    /// How long until the next token (at least one second, rounded up to whole seconds).
    pub retry_after: Duration,
}

impl Limited {
    /// [`retry_after`](Self::retry_after) in whole seconds.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs()
    }
}

/// One token bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.capacity(),
            last: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + elapsed * rate.per_second()).min(rate.capacity());
    }

    /// How long until one token is there (zero if one is there now).
    fn wait(&self, rate: Rate) -> Duration {
        if self.tokens >= 1.0 {
            return Duration::ZERO;
        }
        let per_second = rate.per_second();
        if per_second <= 0.0 {
            return Duration::from_secs(u64::from(u32::MAX));
        }
        let secs = ((1.0 - self.tokens) / per_second).ceil().max(1.0);
        Duration::from_secs_f64(secs.min(f64::from(u32::MAX)))
    }

    /// Takes one token, or says how long until there is one.
    ///
    /// # Errors
    /// The wait, if the bucket is empty.
    pub fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.wait(rate))
        }
    }

    /// Whether a token is there, without taking it.
    ///
    /// # Errors
    /// The wait, if the bucket is empty.
    pub fn check(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        match self.wait(rate) {
            Duration::ZERO => Ok(()),
            wait => Err(wait),
        }
    }

    /// Whether the bucket is full again (then forgetting it loses nothing).
    fn is_full(&self, rate: Rate) -> bool {
        self.tokens >= rate.capacity()
    }

    /// Refills the bucket up to `now` and says whether it is full again.
    pub(super) fn refilled(&mut self, rate: Rate, now: Instant) -> bool {
        self.refill(rate, now);
        self.is_full(rate)
    }
}

/// A bucket per key, at most `max_keys` of them.
///
/// When the table is full, buckets that have filled up again are forgotten (a new bucket
/// starts full, so nothing is lost); if every tracked key is still short of tokens, a new key
/// is refused until some refill. Memory stays bounded whatever the number of keys.
#[derive(Debug)]
pub struct KeyedBuckets<K> {
    limit: &'static str,
    rate: Rate,
    max_keys: usize,
    /// A std Mutex: held for a hash-map update only.
    map: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> KeyedBuckets<K> {
    /// Buckets of `rate` for up to `max_keys` keys, refusing as `limit`.
    pub fn new(limit: &'static str, rate: Rate, max_keys: usize) -> Self {
        Self {
            limit,
            rate,
            max_keys: max_keys.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token from `key`'s bucket.
    ///
    /// # Errors
    /// [`Limited`] if the bucket is empty (or the table is full of keys short of tokens).
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Limited> {
        self.with(key, now, |b, rate| b.take(rate, now))
    }

    /// Whether `key`'s bucket has a token, without taking it.
    ///
    /// # Errors
    /// [`Limited`] if it has none.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Limited> {
        {
            let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            // An untracked key has a full bucket: nothing to keep for it.
            if !map.contains_key(key) {
                return Ok(());
            }
        }
        self.with(key, now, |b, rate| b.check(rate, now))
    }

    /// Gives back the token taken by an attempt that turned out not to count.
    pub fn refund(&self, key: &K) {
        if let Ok(mut map) = self.map.lock()
            && let Some(b) = map.get_mut(key)
        {
            b.tokens = (b.tokens + 1.0).min(self.rate.capacity());
        }
    }

    /// The limit's label and the buckets' rate.
    pub fn limit(&self) -> (&'static str, Rate) {
        (self.limit, self.rate)
    }

    /// How many keys are tracked now.
    pub fn len(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn with(
        &self,
        key: &K,
        now: Instant,
        op: impl FnOnce(&mut Bucket, Rate) -> Result<(), Duration>,
    ) -> Result<(), Limited> {
        let refuse = |retry_after: Duration| Limited {
            limit: self.limit,
            retry_after,
        };
        // A poisoned lock only means another thread panicked mid-update of plain numbers.
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(key) && map.len() >= self.max_keys {
            let rate = self.rate;
            map.retain(|_, b| {
                b.refill(rate, now);
                !b.is_full(rate)
            });
            if map.len() >= self.max_keys {
                return Err(refuse(Duration::from_secs(1)));
            }
        }
        let bucket = map
            .entry(key.clone())
            .or_insert_with(|| Bucket::new(self.rate, now));
        op(bucket, self.rate).map_err(refuse)
    }
}

/// One bucket shared by everyone (an overall limit).
#[derive(Debug)]
pub struct SharedBucket {
    limit: &'static str,
    rate: Rate,
    bucket: Mutex<Bucket>,
}

impl SharedBucket {
    /// A full bucket of `rate`, refusing as `limit`.
    pub fn new(limit: &'static str, rate: Rate, now: Instant) -> Self {
        Self {
            limit,
            rate,
            bucket: Mutex::new(Bucket::new(rate, now)),
        }
    }

    /// Takes a token.
    ///
    /// # Errors
    /// [`Limited`] if there is none.
    pub fn take(&self, now: Instant) -> Result<(), Limited> {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        b.take(self.rate, now).map_err(|retry_after| Limited {
            limit: self.limit,
            retry_after,
        })
    }

    /// The limit's label and the bucket's rate.
    pub fn limit(&self) -> (&'static str, Rate) {
        (self.limit, self.rate)
    }

    /// Whether a token is there, without taking it.
    ///
    /// # Errors
    /// [`Limited`] if there is none.
    pub fn check(&self, now: Instant) -> Result<(), Limited> {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        b.check(self.rate, now).map_err(|retry_after| Limited {
            limit: self.limit,
            retry_after,
        })
    }

    /// Gives back a token taken by an attempt that turned out not to count.
    pub fn refund(&self) {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        b.tokens = (b.tokens + 1.0).min(self.rate.capacity());
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
    fn burst_then_rate_with_retry_after() {
        let t = Instant::now();
        let mut b = Bucket::new(RATE, t);
        for _ in 0..3 {
            b.take(RATE, t).unwrap();
        }
        assert_eq!(b.take(RATE, t), Err(Duration::from_secs(1)));
        assert_eq!(b.check(RATE, t), Err(Duration::from_secs(1)));
        b.take(RATE, t + Duration::from_secs(1)).unwrap();
        let slow = Rate {
            per_minute: 1,
            burst: 1,
        };
        let mut s = Bucket::new(slow, t);
        s.take(slow, t).unwrap();
        assert_eq!(s.take(slow, t), Err(Duration::from_secs(60)));
        assert_eq!(
            s.take(slow, t + Duration::from_secs(30)),
            Err(Duration::from_secs(30))
        );
    }

    #[test]
    fn check_does_not_take() {
        let t = Instant::now();
        let mut b = Bucket::new(RATE, t);
        for _ in 0..10 {
            b.check(RATE, t).unwrap();
        }
        for _ in 0..3 {
            b.take(RATE, t).unwrap();
        }
        assert!(b.check(RATE, t).is_err());
    }

    #[test]
    fn checking_an_untracked_key_tracks_nothing() {
        let t = Instant::now();
        let k = KeyedBuckets::new("x", RATE, 1);
        k.check(&1, t).unwrap();
        assert!(k.is_empty());
        k.take(&2, t).unwrap();
        k.check(&3, t).unwrap();
        assert_eq!(k.len(), 1);
    }

    #[test]
    fn keys_are_separate_and_refunds_give_back() {
        let t = Instant::now();
        let k = KeyedBuckets::new("x", RATE, 10);
        for _ in 0..3 {
            k.take(&1, t).unwrap();
        }
        let refused = k.take(&1, t).unwrap_err();
        assert_eq!(refused.limit, "x");
        assert_eq!(refused.retry_after_secs(), 1);
        k.take(&2, t).unwrap();
        k.refund(&1);
        k.take(&1, t).unwrap();
        assert!(k.take(&1, t).is_err());
    }

    #[test]
    fn the_table_is_bounded_and_forgets_full_buckets_first() {
        let t = Instant::now();
        let k = KeyedBuckets::new("x", RATE, 2);
        k.take(&1, t).unwrap();
        k.take(&2, t).unwrap();
        // Both still short of tokens: a third key is refused, the table does not grow.
        assert!(k.take(&3, t).is_err());
        assert_eq!(k.len(), 2);
        // Once they have refilled they are forgotten and the new key gets a bucket.
        let later = t + Duration::from_secs(5);
        k.take(&3, later).unwrap();
        assert_eq!(k.len(), 1);
    }

    #[test]
    fn shared_bucket_limits_everyone() {
        let t = Instant::now();
        let s = SharedBucket::new("all", RATE, t);
        for _ in 0..3 {
            s.take(t).unwrap();
        }
        assert_eq!(s.take(t).unwrap_err().limit, "all");
        s.refund();
        s.take(t).unwrap();
    }
}
