//! The metric kinds the registry is made of: counters, gauges, labelled counters and gauges,
//! histograms — atomics only, so recording is a `fetch_add` (and a compare-and-swap loop for a
//! histogram's sum). Gauges and labelled counters also wake whoever waits for a value.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use tokio::sync::Notify;

use super::header;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge {
    value: AtomicI64,
    /// Woken on every change (see [`Gauge::wait_for`]).
    changed: Notify,
}

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.value.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.value.fetch_sub(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.value.store(v, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }

    /// Waits until `holds` is true of the value: checked now and after every change.
    pub async fn wait_for(&self, holds: impl Fn(i64) -> bool) {
        wait_until(&self.changed, || holds(self.get())).await;
    }
}

/// Waits until `holds()`, checking it now and whenever `changed` is notified. The waiter is
/// registered before each check, so a change between the check and the wait is not missed.
async fn wait_until(changed: &Notify, holds: impl Fn() -> bool) {
    loop {
        let notified = changed.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if holds() {
            return;
        }
        notified.await;
    }
}

/// Counters sharing a name, one per value of a single `reason` label.
///
/// The label values are fixed at construction; [`inc`](Self::inc) with any other value counts
/// under `other`, so a typo cannot grow the set.
#[derive(Debug)]
pub struct LabeledCounter {
    labels: &'static [&'static str],
    /// One slot per label, plus a final one for `other`.
    counts: Box<[AtomicU64]>,
    /// Woken on every change (see [`LabeledCounter::wait_for`]).
    changed: Notify,
}

impl LabeledCounter {
    pub(super) fn new(labels: &'static [&'static str]) -> Self {
        Self {
            labels,
            counts: (0..=labels.len()).map(|_| AtomicU64::new(0)).collect(),
            changed: Notify::new(),
        }
    }

    fn slot(&self, label: &str) -> usize {
        self.labels
            .iter()
            .position(|l| *l == label)
            .unwrap_or(self.labels.len())
    }

    /// Adds one to the counter for `label`.
    pub fn inc(&self, label: &str) {
        if let Some(c) = self.counts.get(self.slot(label)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.changed.notify_waiters();
    }

    /// Waits until `holds` is true of the counter for `label`: checked now and after every
    /// change.
    pub async fn wait_for(&self, label: &str, holds: impl Fn(u64) -> bool) {
        wait_until(&self.changed, || holds(self.get(label))).await;
    }

    /// The counter for `label`.
    pub fn get(&self, label: &str) -> u64 {
        self.counts
            .get(self.slot(label))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.labels
            .iter()
            .copied()
            .chain(std::iter::once("other"))
            .zip(self.counts.iter().map(|c| c.load(Ordering::Relaxed)))
    }
}

/// Gauges sharing a name, one per value of a single `reason` label (fixed at construction;
/// [`set`](Self::set) with any other value is ignored).
#[derive(Debug)]
pub struct LabeledGauge {
    labels: &'static [&'static str],
    values: Box<[AtomicI64]>,
    /// Woken on every change (see [`LabeledGauge::wait_for`]).
    changed: Notify,
}

impl LabeledGauge {
    pub(super) fn new(labels: &'static [&'static str]) -> Self {
        Self {
            labels,
            values: labels.iter().map(|_| AtomicI64::new(0)).collect(),
            changed: Notify::new(),
        }
    }

    fn slot(&self, label: &str) -> Option<&AtomicI64> {
        let i = self.labels.iter().position(|l| *l == label)?;
        self.values.get(i)
    }

    /// Sets the gauge for `label`; wakes the waiters only if the value changed.
    pub fn set(&self, label: &str, v: i64) {
        if let Some(slot) = self.slot(label)
            && slot.swap(v, Ordering::Relaxed) != v
        {
            self.changed.notify_waiters();
        }
    }

    /// The gauge for `label` (0 for a label it does not have).
    pub fn get(&self, label: &str) -> i64 {
        self.slot(label).map_or(0, |v| v.load(Ordering::Relaxed))
    }

    /// Waits until `holds` is true of the gauge for `label`: checked now and after every
    /// change.
    pub async fn wait_for(&self, label: &str, holds: impl Fn(i64) -> bool) {
        wait_until(&self.changed, || holds(self.get(label))).await;
    }

    pub(super) fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "gauge");
        for (label, v) in self.labels.iter().zip(self.values.iter()) {
            let _ = writeln!(
                out,
                "{name}{{reason=\"{label}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}

/// A histogram with fixed upper bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative count per bucket; the last slot is `+Inf`.
    buckets: Box<[AtomicU64]>,
    /// Sum of observations, as `f64` bits.
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// A histogram whose buckets have the given ascending upper bounds (`+Inf` is implicit).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        let slot = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(b) = self.buckets.get(slot) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        // The closure always returns `Some`, so `fetch_update` cannot fail.
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of observations.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum.load(Ordering::Relaxed))
    }

    pub(super) fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "histogram");
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum {}", self.sum());
        let _ = writeln!(out, "{name}_count {}", self.count());
    }
}
