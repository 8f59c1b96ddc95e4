//! Token buckets: one ([`Bucket`]) and one per key ([`KeyedBuckets`]), bounded in memory.
//!
//! Time is passed in (`now`), so the arithmetic is tested without waiting, and a refusal
//! says how long until the next token ([`Limited::retry_after`]) and whether it was the cap
//! on keys that refused ([`Limited::at_cap`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Whether the key was refused for the limit's cap on keys rather than by a bucket of its
    /// own: it had none, and the table was full of keys still short of tokens (or, for a
    /// limit with an overflow bucket, that bucket was empty; [`KeyedBuckets::with_overflow`]).
    pub at_cap: bool,
}

impl Limited {
    /// A refusal by `limit`'s bucket for the key (not the cap).
    pub fn new(limit: &'static str, retry_after: Duration) -> Self {
        Self {
            limit,
            retry_after,
            at_cap: false,
        }
    }

    /// A refusal by `limit`'s cap on keys.
    pub fn at_cap(limit: &'static str, retry_after: Duration) -> Self {
        Self {
            limit,
            retry_after,
            at_cap: true,
        }
    }

    /// What was limited, in words for the client ([`describe`](super::describe), or
    /// [`describe_at_cap`](super::describe_at_cap) for a refusal by the cap).
    pub fn describe(&self) -> &'static str {
        if self.at_cap {
            super::describe_at_cap(self.limit)
        } else {
            super::describe(self.limit)
        }
    }

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

/// How often, at most, a table at its cap looks for buckets full again to forget (a walk of
/// every bucket under the table's lock), or once per token interval of its rate if that is
/// shorter (within one interval no bucket gains a whole token): a flood of new keys at the cap
/// costs one walk a second (or per token), not one per attempt.
pub const SWEEP_AT_CAP_EVERY: Duration = Duration::from_secs(1);

/// A bucket per key, at most `max_keys` of them.
///
/// When the table is full, buckets that have filled up again are forgotten (a new bucket
/// starts full, so nothing is lost; at most once per [`SWEEP_AT_CAP_EVERY`]); if every
/// tracked key is still short of tokens, a new key is refused until some refill
/// ([`Limited::at_cap`]). Memory stays bounded whatever the number of keys.
///
/// A limit whose tokens are taken *after* the event (a failed authentication is known only
/// once it failed) cannot refuse it at the cap: the event has happened, and a key whose take
/// was refused would go uncounted however often it came back. Such a limit keeps one overflow
/// bucket ([`with_overflow`](Self::with_overflow)): at the cap, every key without a bucket of
/// its own takes from, and is checked against, that one bucket, so many keys together get one
/// key's rate rather than no limit at all.
#[derive(Debug)]
pub struct KeyedBuckets<K> {
    limit: &'static str,
    rate: Rate,
    max_keys: usize,
    /// A std Mutex: held for a hash-map update only.
    map: Mutex<HashMap<K, Bucket>>,
    /// The map's length, kept under its lock, read without it ([`len`](Self::len), the
    /// metrics' gauge).
    keys: AtomicUsize,
    /// The bucket the keys without one share at the cap, if the limit has one. Locked only
    /// while `map` is held (one lock order).
    overflow: Option<Mutex<Bucket>>,
    /// When the table at its cap last forgot its full buckets. Locked only while `map` is
    /// held.
    swept: Mutex<Option<Instant>>,
}

impl<K: Hash + Eq + Clone> KeyedBuckets<K> {
    /// Buckets of `rate` for up to `max_keys` keys, refusing as `limit`.
    pub fn new(limit: &'static str, rate: Rate, max_keys: usize) -> Self {
        Self {
            limit,
            rate,
            max_keys: max_keys.max(1),
            map: Mutex::new(HashMap::new()),
            keys: AtomicUsize::new(0),
            overflow: None,
            swept: Mutex::new(None),
        }
    }

    /// The same buckets with one overflow bucket of the same rate, which the keys without a
    /// bucket share while the table is at its cap (see the type's docs). It starts full.
    #[must_use]
    pub fn with_overflow(mut self, now: Instant) -> Self {
        self.overflow = Some(Mutex::new(Bucket::new(self.rate, now)));
        self
    }

    /// Takes a token from `key`'s bucket (at the cap, from the overflow bucket if the limit
    /// has one).
    ///
    /// # Errors
    /// [`Limited`] if the bucket is empty (or the table is full of keys short of tokens).
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Limited> {
        self.with(key, now, true, |b, rate| b.take(rate, now))
    }

    /// Whether `key`'s bucket has a token, without taking it. An untracked key has a full
    /// bucket, unless the table is at its cap and the limit has an overflow bucket: then the
    /// answer is that bucket's.
    ///
    /// # Errors
    /// [`Limited`] if it has none.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Limited> {
        self.with(key, now, false, |b, rate| b.check(rate, now))
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

    /// How many keys are tracked now (the overflow bucket is not a key's).
    pub fn len(&self) -> usize {
        self.keys.load(Ordering::Relaxed)
    }

    /// Whether the keys without a bucket share an overflow bucket at the cap.
    pub fn has_overflow(&self) -> bool {
        self.overflow.is_some()
    }

    /// The most keys tracked at once.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the table at its cap may forget its full buckets at `now` (not within
    /// [`SWEEP_AT_CAP_EVERY`], or one token interval if shorter, of the last time); if so,
    /// noted as done. Called with `map` held.
    fn may_sweep(&self, now: Instant) -> bool {
        let per_second = self.rate.per_second();
        let every = if per_second > 1.0 {
            Duration::from_secs_f64(1.0 / per_second)
        } else {
            SWEEP_AT_CAP_EVERY
        };
        let mut swept = self.swept.lock().unwrap_or_else(|p| p.into_inner());
        if swept.is_some_and(|at| now.saturating_duration_since(at) < every) {
            return false;
        }
        *swept = Some(now);
        true
    }

    /// `op` on `key`'s bucket, started (full) if the key has none and `start`; at the cap,
    /// on the overflow bucket if there is one, else refused (a take) or let through (a
    /// check: an untracked key's bucket is full).
    fn with(
        &self,
        key: &K,
        now: Instant,
        start: bool,
        op: impl FnOnce(&mut Bucket, Rate) -> Result<(), Duration>,
    ) -> Result<(), Limited> {
        let rate = self.rate;
        // A poisoned lock only means another thread panicked mid-update of plain numbers.
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(key) {
            if map.len() >= self.max_keys && self.may_sweep(now) {
                map.retain(|_, b| {
                    b.refill(rate, now);
                    !b.is_full(rate)
                });
                self.keys.store(map.len(), Ordering::Relaxed);
            }
            if map.len() >= self.max_keys {
                return match &self.overflow {
                    Some(overflow) => {
                        let mut b = overflow.lock().unwrap_or_else(|p| p.into_inner());
                        op(&mut b, rate).map_err(|wait| Limited::at_cap(self.limit, wait))
                    }
                    None if start => Err(Limited::at_cap(self.limit, Duration::from_secs(1))),
                    None => Ok(()),
                };
            }
            if !start {
                // Nothing to keep for a key whose bucket would be full.
                return Ok(());
            }
        }
        let bucket = map
            .entry(key.clone())
            .or_insert_with(|| Bucket::new(rate, now));
        let r = op(bucket, rate).map_err(|wait| Limited::new(self.limit, wait));
        self.keys.store(map.len(), Ordering::Relaxed);
        r
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
        b.take(self.rate, now)
            .map_err(|retry_after| Limited::new(self.limit, retry_after))
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
        b.check(self.rate, now)
            .map_err(|retry_after| Limited::new(self.limit, retry_after))
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
    fn at_the_cap_keys_without_a_bucket_share_the_overflow_bucket() {
        let t = Instant::now();
        let slow = Rate {
            per_minute: 1,
            burst: 1,
        };
        let k = KeyedBuckets::new("x", slow, 2).with_overflow(t);
        k.take(&1, t).unwrap();
        k.check(&3, t).unwrap();
        assert_eq!(k.len(), 1, "below the cap a check keeps nothing");
        k.take(&2, t).unwrap();
        // At the cap: key 3's take is charged to the overflow bucket (no bucket of its own)…
        k.take(&3, t).unwrap();
        assert_eq!(k.len(), 2);
        // … which then answers for every key without a bucket: refused, at the cap.
        let refused = k.check(&4, t).unwrap_err();
        assert!(refused.at_cap, "{refused:?}");
        assert_eq!(refused.retry_after_secs(), 60);
        assert!(k.take(&5, t).unwrap_err().at_cap);
        assert!(k.check(&3, t).unwrap_err().at_cap);
        // A tracked key is answered by its own bucket.
        let own = k.check(&1, t).unwrap_err();
        assert!(!own.at_cap, "{own:?}");
        // Once the tracked buckets are full again they are forgotten: new keys get their own.
        let later = t + Duration::from_secs(61);
        k.check(&4, later).unwrap();
        k.take(&4, later).unwrap();
        assert_eq!(k.len(), 1);

        // Without an overflow bucket, a new key's check at the cap passes (its bucket would
        // be full) and its take is refused, at the cap.
        let plain = KeyedBuckets::new("y", slow, 1);
        plain.take(&1, t).unwrap();
        plain.check(&2, t).unwrap();
        let refused = plain.take(&2, t).unwrap_err();
        assert!(refused.at_cap && refused.limit == "y", "{refused:?}");
        assert!(!plain.take(&1, t).unwrap_err().at_cap, "key 1's own bucket");
    }

    #[test]
    fn a_table_at_its_cap_forgets_full_buckets_at_most_once_a_second_or_token() {
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        let slow = Rate {
            per_minute: 6,
            burst: 1,
        };
        let k = KeyedBuckets::new("x", slow, 1);
        k.take(&1, t).unwrap();
        // At the cap: the walk at 9.5 s finds key 1 still short of its token.
        assert!(k.take(&2, ms(9_500)).unwrap_err().at_cap);
        // Key 1 is full again from 10 s, but the table walked at 9.5 s: not again within 1 s.
        assert!(k.take(&2, ms(10_000)).unwrap_err().at_cap);
        assert_eq!(k.len(), 1);
        // A second after the last walk, the next one forgets it and key 2 is served.
        k.take(&2, ms(10_500)).unwrap();
        assert_eq!(k.len(), 1);

        // A rate of ten tokens a second walks at most every tenth of a second.
        let quick = Rate {
            per_minute: 600,
            burst: 1,
        };
        let k = KeyedBuckets::new("y", quick, 1);
        k.take(&1, t).unwrap();
        assert!(k.take(&2, ms(50)).unwrap_err().at_cap);
        assert!(k.take(&2, ms(120)).unwrap_err().at_cap, "walked 70 ms ago");
        k.take(&2, ms(150)).unwrap();
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
