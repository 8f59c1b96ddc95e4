//! [`MeteredStore`]: any engine ([`Store`] and [`ConversationLog`]), timed operation by
//! operation.

use std::sync::Arc;
use std::time::Instant;

use super::{
    Batch, BucketAnswer, BucketOp, BucketRate, Collection, ConversationLog, Entries, MessageAppend,
    Store,
};
use crate::error::Result;
use crate::metrics::Metrics;

/// Wraps a store and records the latency of every operation in
/// [`Metrics::store_latency`](crate::metrics::Metrics::store_latency).
pub struct MeteredStore {
    inner: Arc<dyn ConversationLog>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ConversationLog>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    fn timed<T>(&self, f: impl FnOnce(&dyn ConversationLog) -> T) -> T {
        let start = Instant::now();
        let out = f(self.inner.as_ref());
        self.metrics
            .store_latency
            .observe(start.elapsed().as_secs_f64());
        out
    }
}

impl Store for MeteredStore {
    fn get(&self, collection: Collection, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.timed(|s| s.get(collection, key))
    }

    fn put(&self, collection: Collection, key: &[u8], value: &[u8]) -> Result<()> {
        self.timed(|s| s.put(collection, key, value))
    }

    fn delete(&self, collection: Collection, key: &[u8]) -> Result<bool> {
        self.timed(|s| s.delete(collection, key))
    }

    fn scan_prefix(&self, collection: Collection, prefix: &[u8]) -> Result<Entries> {
        self.timed(|s| s.scan_prefix(collection, prefix))
    }

    fn range_from(&self, collection: Collection, start: &[u8], limit: usize) -> Result<Entries> {
        self.timed(|s| s.range_from(collection, start, limit))
    }

    fn scan_prefix_from(
        &self,
        collection: Collection,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Entries> {
        self.timed(|s| s.scan_prefix_from(collection, prefix, start, limit))
    }

    fn last(&self, collection: Collection, prefix: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.timed(|s| s.last(collection, prefix))
    }

    fn apply(&self, batch: Batch) -> Result<bool> {
        self.timed(|s| s.apply(batch))
    }

    fn insert_if_absent(&self, collection: Collection, key: &[u8], value: &[u8]) -> Result<bool> {
        self.timed(|s| s.insert_if_absent(collection, key, value))
    }

    /// Not timed here: flush latency has its own histogram, recorded by group commit.
    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
}

impl ConversationLog for MeteredStore {
    fn append_message(&self, m: &MessageAppend<'_>) -> Result<bool> {
        self.timed(|s| s.append_message(m))
    }

    fn append_item(&self, conversation: &[u8], seq: u64, item: &[u8], with: Batch) -> Result<bool> {
        self.timed(|s| s.append_item(conversation, seq, item, with))
    }

    fn items_after(&self, conversation: &[u8], after: u64, limit: usize) -> Result<Entries> {
        self.timed(|s| s.items_after(conversation, after, limit))
    }

    fn last_seq(&self, conversation: &[u8]) -> Result<Option<u64>> {
        self.timed(|s| s.last_seq(conversation))
    }

    fn shared(&self) -> bool {
        self.inner.shared()
    }

    fn append_message_again(&self, m: &MessageAppend<'_>) -> Result<()> {
        self.timed(|s| s.append_message_again(m))
    }

    fn take_refused(&self, conversation: &[u8], what: &super::Refused) -> Result<bool> {
        self.inner.take_refused(conversation, what)
    }

    fn replace_if(
        &self,
        collection: super::Collection,
        key: &[u8],
        old: &[u8],
        new: &[u8],
    ) -> Result<bool> {
        self.timed(|s| s.replace_if(collection, key, old, new))
    }

    fn insert_if_absent_now(
        &self,
        collection: super::Collection,
        key: &[u8],
        value: &[u8],
    ) -> Result<bool> {
        self.timed(|s| s.insert_if_absent_now(collection, key, value))
    }

    fn add_counts(
        &self,
        collection: super::Collection,
        changes: &[(Vec<u8>, i64)],
    ) -> Result<Vec<(Vec<u8>, u64)>> {
        self.timed(|s| s.add_counts(collection, changes))
    }

    fn rate_bucket(
        &self,
        key: &[u8],
        rate: BucketRate,
        op: BucketOp,
    ) -> Result<Option<BucketAnswer>> {
        self.timed(|s| s.rate_bucket(key, rate, op))
    }

    fn prune_rate_buckets(&self) -> Result<u64> {
        self.timed(|s| s.prune_rate_buckets())
    }

    fn rate_bucket_counts(&self, limits: &'static [&'static str]) -> Result<Vec<(Vec<u8>, u64)>> {
        self.timed(|s| s.rate_bucket_counts(limits))
    }

    fn forward_push(&self, to: &[u8], frame: &[u8]) -> bool {
        self.inner.forward_push(to, frame)
    }

    fn stored_push(&self, id: i64) -> Result<Option<Vec<u8>>> {
        self.timed(|s| s.stored_push(id))
    }

    fn prune_stored_pushes(&self) -> Result<u64> {
        self.timed(|s| s.prune_stored_pushes())
    }

    fn forward_release(&self, to: &[u8], id: &[u8]) {
        self.inner.forward_release(to, id);
    }

    fn forward_close(&self, to: &[u8], code: u16, name: &str) {
        self.inner.forward_close(to, code, name);
    }

    fn give_up_refused(&self, conversation: &[u8], what: &super::Refused) -> Result<()> {
        self.inner.give_up_refused(conversation, what)
    }

    fn committed_items_after(
        &self,
        conversation: &[u8],
        after: u64,
        limit: usize,
    ) -> Result<Entries> {
        self.timed(|s| s.committed_items_after(conversation, after, limit))
    }

    fn committed_last_seq(&self, conversation: &[u8]) -> Result<Option<u64>> {
        self.timed(|s| s.committed_last_seq(conversation))
    }

    fn committed_heads(&self, conversations: &[&[u8]]) -> Result<Vec<(Vec<u8>, u64)>> {
        self.timed(|s| s.committed_heads(conversations))
    }

    fn committed_tails(
        &self,
        from: &[(&[u8], u64)],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Entries)>> {
        self.timed(|s| s.committed_tails(from, limit))
    }

    fn publish_presence(&self, agents: &[Vec<u8>], ttl: std::time::Duration) -> Result<()> {
        self.timed(|s| s.publish_presence(agents, ttl))
    }

    fn agents_present(&self, agents: &[Vec<u8>]) -> Result<Option<Vec<Vec<u8>>>> {
        self.timed(|s| s.agents_present(agents))
    }
}
