//! The conversation log: the relay's hot path, lifted out of the key-value [`Store`] so that
//! an engine can keep it in a shape of its own.
//!
//! The relay appends to a conversation's log under the conversation's lock (the conversation
//! table's): it assigns the next sequence number and checks the sender's counter, then calls
//! [`ConversationLog::append_message`] or [`ConversationLog::append_item`]. An engine stores
//! the item under `(conversation, seq)`; it may check more (PostgreSQL refuses a sequence
//! number that is not the next one, and a reused `(conversation, epoch, sender, counter)`, in
//! the database itself), never less.
//!
//! The default methods are the key-value layout every engine before this seam used, and that
//! sled keeps byte for byte: items in [`Collection::Messages`] under `conversation ‖ seq`
//! (big-endian), the conversation record in [`Collection::Conversations`]. An engine over
//! [`Store`] alone implements the trait with an empty `impl`.

use super::{
    Batch, BucketAnswer, BucketOp, BucketRate, Collection, Entries, Store, prefixed_seq_key,
    seq_from_key,
};
use crate::error::Result;

/// One message appended to a conversation's log (see [`ConversationLog::append_message`]).
#[derive(Debug, Clone, Copy)]
pub struct MessageAppend<'a> {
    /// The conversation id's bytes.
    pub conversation: &'a [u8],
    /// The sequence number the relay assigned: the conversation's last one plus one.
    pub seq: u64,
    /// The epoch the message was sent in.
    pub epoch: u32,
    /// The sender's signing key bytes.
    pub sender: &'a [u8],
    /// The sender's counter in that epoch: never stored twice.
    pub counter: u64,
    /// The stored item (CBOR), opaque to the engine.
    pub item: &'a [u8],
    /// The conversation record to write after the item (a checkpoint every so many messages),
    /// if any.
    pub record: Option<&'a [u8]>,
}

/// A per-conversation log with conditional append, over a key-value [`Store`] for everything
/// else the relay keeps. Implementations are blocking, like [`Store`]; durability comes from
/// [`Store::flush`] through group commit, as for every other write.
pub trait ConversationLog: Store {
    /// Appends a message item. What a crash can leave: the item without the record, or both,
    /// or neither; never a record ahead of its items (the relay rebuilds the record's tail from
    /// the items at start-up).
    ///
    /// Returns `false` if the engine held the message back instead (a shared engine, while an
    /// earlier append to the conversation is refused and not yet appended again, see
    /// [`Self::take_refused`]): nothing was written, the caller's cached state must not count
    /// it, and its writer learns from [`Self::take_refused`] that it must append it again.
    /// Always `true` for an engine that only this node writes.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails; the engine may
    /// then hold part of the append, and the caller must reload the conversation from it.
    fn append_message(&self, m: &MessageAppend<'_>) -> Result<bool> {
        let mut b = Batch::ordered();
        b.put(
            Collection::Messages,
            &prefixed_seq_key(m.conversation, m.seq),
            m.item,
        );
        if let Some(record) = m.record {
            b.put(Collection::Conversations, m.conversation, record);
        }
        // Puts only: an ordered batch of them always applies.
        self.apply(b).map(|_| true)
    }

    /// Appends item `seq` (one that changes who may read: an epoch, a hand-off, a consent, a
    /// notice) in one transaction with `with` — its duplicate key, indexes and the rewritten
    /// conversation record. Returns `false`, writing nothing, if a conditional insert of `with`
    /// found its key taken.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails; nothing is written
    /// then.
    fn append_item(
        &self,
        conversation: &[u8],
        seq: u64,
        item: &[u8],
        mut with: Batch,
    ) -> Result<bool> {
        with.put(
            Collection::Messages,
            &prefixed_seq_key(conversation, seq),
            item,
        );
        self.apply(with)
    }

    /// Up to `limit` items of `conversation` after sequence number `after`, in order, keyed
    /// as in [`Collection::Messages`].
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn items_after(&self, conversation: &[u8], after: u64, limit: usize) -> Result<Entries> {
        let start = prefixed_seq_key(conversation, after.saturating_add(1));
        self.scan_prefix_from(Collection::Messages, conversation, &start, limit)
    }

    /// The sequence number of the conversation's last stored item, if it has any.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn last_seq(&self, conversation: &[u8]) -> Result<Option<u64>> {
        Ok(self
            .last(Collection::Messages, conversation)?
            .and_then(|(k, _)| seq_from_key(&k)))
    }

    /// Whether other relay nodes write to the same store (a cluster), so that what this node
    /// caches may be behind. `false` for an embedded engine.
    fn shared(&self) -> bool {
        false
    }

    /// [`Self::append_message`] by a writer whose earlier append the engine refused (see
    /// [`Self::take_refused`]), appending it again after reloading the conversation. Never
    /// held back; it ends the hold [`Self::take_refused`] put on the conversation for it.
    ///
    /// # Errors
    ///
    /// As [`Self::append_message`].
    fn append_message_again(&self, m: &MessageAppend<'_>) -> Result<()> {
        self.append_message(m).map(|_| ())
    }

    /// Whether the engine refused the append `what` to `conversation` when it committed it
    /// (another node took the number or the counter meanwhile). A writer asks once its write
    /// is durable: `true` means it was NOT stored, and the writer must now either append it
    /// again ([`Self::append_message_again`]) or give it up ([`Self::give_up_refused`]).
    /// Until it does, the conversation stays held: later messages to it are held back
    /// ([`Self::append_message`] answers `false`), so none is stored ahead of it, and none
    /// changes what the writer reloads before appending it again. Always `false` for an
    /// engine that only this node writes.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn take_refused(&self, _conversation: &[u8], _what: &Refused) -> Result<bool> {
        Ok(false)
    }

    /// The writer of the refused append `what`, taken with [`Self::take_refused`], will not
    /// append it again (it is refused for a reason of its own, or the writer gave up): ends the
    /// hold on `conversation` for it.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn give_up_refused(&self, _conversation: &[u8], _what: &Refused) -> Result<()> {
        Ok(())
    }

    /// Replaces the value of `key` in `collection` with `new` if it still holds `old` (what the
    /// caller read), and answers whether it did: `false`, writing nothing, if another writer
    /// changed it since (the caller reads again and retries). For the read-modify-write
    /// records (a release request's shares and refusals): on a shared engine two nodes may
    /// update one at the same instant, and a plain put would lose one update. The default
    /// (an engine only this node writes, whose caller serialises the read and the write) is
    /// a read, a comparison and a put.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn replace_if(
        &self,
        collection: Collection,
        key: &[u8],
        old: &[u8],
        new: &[u8],
    ) -> Result<bool> {
        if self.get(collection, key)?.as_deref() != Some(old) {
            return Ok(false);
        }
        self.put(collection, key, new)?;
        Ok(true)
    }

    /// Stores `value` at `key` in `collection` if the key holds nothing, and answers whether it
    /// did: `false`, writing nothing, if another writer stored one first (the caller reads it
    /// and retries with [`Self::replace_if`]). The first write of a read-modify-write record
    /// (a witness's cosignature, a stored-bytes count, an open-conversations record); unlike [`Store::insert_if_absent`],
    /// whose check a shared engine makes when it commits its batch, this one is decided when
    /// it returns, so a lost race costs the caller a retry and no other writer its batch. The
    /// default (an engine only this node writes) is [`Store::insert_if_absent`].
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn insert_if_absent_now(
        &self,
        collection: Collection,
        key: &[u8],
        value: &[u8],
    ) -> Result<bool> {
        self.insert_if_absent(collection, key, value)
    }

    /// Adds each change to the count at its key of `collection` (a big-endian `u64`; absent or
    /// malformed: 0), never taking it below 0, and answers the counts after, by key; a key
    /// missing from the answer was not written (its caller keeps the change for the next
    /// time); a key given twice gets both changes. The stored-bytes counts a cluster node
    /// folds in once per catch-up period (`service::stored_bytes`): several nodes add to one
    /// count at the same instant, so a shared engine makes each addition in the database, all
    /// in one go. The default (an engine only this node writes, whose caller serialises its
    /// writers) reads and puts each.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails: then nothing was
    /// added.
    fn add_counts(
        &self,
        collection: Collection,
        changes: &[(Vec<u8>, i64)],
    ) -> Result<Vec<(Vec<u8>, u64)>> {
        let mut merged: Vec<(Vec<u8>, i64)> = Vec::with_capacity(changes.len());
        for (key, delta) in changes {
            match merged.iter_mut().find(|(k, _)| k == key) {
                Some((_, d)) => *d = d.saturating_add(*delta),
                None => merged.push((key.clone(), *delta)),
            }
        }
        let mut batch = Batch::default();
        let mut after = Vec::with_capacity(merged.len());
        for (key, delta) in &merged {
            let old = self
                .get(collection, key)?
                .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
                .map_or(0, u64::from_be_bytes);
            let value = crate::limits::bytes::apply(old, *delta);
            batch.put(collection, key, &value.to_be_bytes());
            after.push((key.clone(), value));
        }
        self.apply(batch)?;
        Ok(after)
    }

    /// In a cluster, sends `frame` (an encoded push) for account `to` to the other nodes, which
    /// push it to `to`'s connections there (a frame too large for a notification by reference,
    /// [`Self::stored_push`]); `false` if it was not sent (an engine only this node uses). Fire and forget: a push lost on the way only delays
    /// (the member reads again on reconnecting).
    fn forward_push(&self, _to: &[u8], _frame: &[u8]) -> bool {
        false
    }

    /// In a cluster, the push frame another node stored for forwarding by reference (its
    /// notification named row `id`, [`Self::forward_push`]); `None` if it lapsed. `None` on an
    /// engine only this node uses.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn stored_push(&self, _id: i64) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    /// Drops the pushes stored for forwarding that lapsed (every node read them, or will not
    /// any more); how many. Nothing on an engine only this node uses.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn prune_stored_pushes(&self) -> Result<u64> {
        Ok(0)
    }

    /// In a cluster, asks the other nodes to push release request `id` (which they read from
    /// the store) to trustee `to`'s connections there. Fire and forget, like
    /// [`Self::forward_push`].
    fn forward_release(&self, _to: &[u8], _id: &[u8]) {}

    /// In a cluster, asks the other nodes to close account `to`'s sessions there that act for
    /// agent name `name` with WebSocket close `code`. Fire and forget, like
    /// [`Self::forward_push`].
    fn forward_close(&self, _to: &[u8], _code: u16, _name: &str) {}

    /// [`Self::items_after`], committed items only (what every node can read). The same for an
    /// engine whose reads see only what it will keep.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn committed_items_after(
        &self,
        conversation: &[u8],
        after: u64,
        limit: usize,
    ) -> Result<Entries> {
        self.items_after(conversation, after, limit)
    }

    /// [`Self::last_seq`], committed items only.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn committed_last_seq(&self, conversation: &[u8]) -> Result<Option<u64>> {
        self.last_seq(conversation)
    }

    /// [`Self::committed_items_after`] of several conversations at once, each after its own
    /// sequence number and at most `limit` items each: one statement on a shared engine (a
    /// node woken for many conversations reads them all in one round trip, not one each).
    /// Answers the conversations that have such items, each with its items in order.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn committed_tails(
        &self,
        from: &[(&[u8], u64)],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Entries)>> {
        let mut out = Vec::new();
        for (c, after) in from {
            let items = self.committed_items_after(c, *after, limit)?;
            if !items.is_empty() {
                out.push((c.to_vec(), items));
            }
        }
        Ok(out)
    }

    /// [`Self::committed_last_seq`] of each of `conversations` that holds items (in one
    /// statement on a shared engine: the periodic catch-up asks it for every watched
    /// conversation, to read only those whose head moved).
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn committed_heads(&self, conversations: &[&[u8]]) -> Result<Vec<(Vec<u8>, u64)>> {
        let mut out = Vec::with_capacity(conversations.len());
        for c in conversations {
            if let Some(seq) = self.committed_last_seq(c)? {
                out.push((c.to_vec(), seq));
            }
        }
        Ok(out)
    }

    /// In a cluster, `op` on the token bucket `key` of `rate` that every node shares (see
    /// `store::rate_bucket`), decided by the shared engine in one statement; `None` from an
    /// engine only this node uses, whose caller keeps the bucket in memory.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn rate_bucket(
        &self,
        _key: &[u8],
        _rate: BucketRate,
        _op: BucketOp,
    ) -> Result<Option<BucketAnswer>> {
        Ok(None)
    }

    /// Drops the shared buckets that are full again (they hold nothing a new bucket would
    /// not); how many. Nothing on an engine only this node uses.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn prune_rate_buckets(&self) -> Result<u64> {
        Ok(0)
    }

    /// How many shared buckets each of `limits` keeps (the keys that begin with the label and
    /// `/`); nothing on an engine only this node uses.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn rate_bucket_counts(&self, _limits: &'static [&'static str]) -> Result<Vec<(Vec<u8>, u64)>> {
        Ok(Vec::new())
    }

    /// In a cluster, publishes that `agents` (signing keys' bytes) are exactly the agents
    /// connected to this node, each for `ttl` unless published again (a node that stops
    /// publishing, crashed, stops counting them within `ttl`); an empty list withdraws them
    /// all. One statement for all of them. Nothing on an engine only this node uses, whose
    /// connections are the whole picture.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn publish_presence(&self, _agents: &[Vec<u8>], _ttl: std::time::Duration) -> Result<()> {
        Ok(())
    }

    /// In a cluster, which of `agents` (signing keys' bytes) some node has published as
    /// connected to it, and not lapsed ([`Self::publish_presence`]): one query for all; `None`
    /// from an engine only this node uses (its caller asks its own connections).
    ///
    /// # Errors
    ///
    /// [`Error::Storage`](crate::error::Error::Storage) if the engine fails.
    fn agents_present(&self, _agents: &[Vec<u8>]) -> Result<Option<Vec<Vec<u8>>>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::store::{MemoryStore, SledStore};

    /// The default methods keep the key-value layout of earlier builds, byte for byte.
    fn exercise(store: &dyn ConversationLog) {
        let c = [7u8; 16];
        assert_eq!(store.last_seq(&c).unwrap(), None);
        let mut with = Batch::new();
        with.insert_if_absent(Collection::MessageKeys, b"epoch-1", b"1")
            .put(Collection::Conversations, &c, b"record-1");
        assert!(store.append_item(&c, 1, b"item-1", with).unwrap());
        for seq in 2..=3 {
            let item = format!("item-{seq}").into_bytes();
            store
                .append_message(&MessageAppend {
                    conversation: &c,
                    seq,
                    epoch: 1,
                    sender: &[1; 32],
                    counter: seq,
                    item: &item,
                    record: (seq == 3).then_some(b"record-3".as_slice()),
                })
                .unwrap();
        }
        // A taken duplicate key writes nothing.
        let mut with = Batch::new();
        with.insert_if_absent(Collection::MessageKeys, b"epoch-1", b"4");
        assert!(!store.append_item(&c, 4, b"item-4", with).unwrap());

        assert_eq!(store.last_seq(&c).unwrap(), Some(3));
        assert_eq!(
            store
                .get(Collection::Messages, &prefixed_seq_key(&c, 2))
                .unwrap(),
            Some(b"item-2".to_vec())
        );
        assert_eq!(
            store.get(Collection::Conversations, &c).unwrap(),
            Some(b"record-3".to_vec())
        );
        let after: Vec<_> = store
            .items_after(&c, 1, 10)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (seq_from_key(&k).unwrap(), v))
            .collect();
        assert_eq!(
            after,
            vec![(2, b"item-2".to_vec()), (3, b"item-3".to_vec())]
        );
        assert_eq!(store.items_after(&c, 0, 1).unwrap().len(), 1, "limit");
        assert_eq!(store.last_seq(&[8u8; 16]).unwrap(), None);
    }

    #[test]
    fn memory_log_keeps_the_key_value_layout() {
        exercise(&MemoryStore::new());
    }

    /// The default `add_counts`: big-endian counts, absent or malformed read as 0, never below 0.
    #[test]
    fn counts_add_as_big_endian_and_stop_at_zero() {
        let store = MemoryStore::new();
        store.put(Collection::Meta, b"odd", b"short").unwrap();
        store
            .put(Collection::Meta, b"ten", &10u64.to_be_bytes())
            .unwrap();
        let after = store
            .add_counts(
                Collection::Meta,
                &[
                    (b"ten".to_vec(), 5),
                    (b"odd".to_vec(), 2),
                    (b"new".to_vec(), -3),
                ],
            )
            .unwrap();
        assert_eq!(
            after,
            vec![
                (b"ten".to_vec(), 15),
                (b"odd".to_vec(), 2),
                (b"new".to_vec(), 0)
            ]
        );
        assert_eq!(
            store.get(Collection::Meta, b"ten").unwrap(),
            Some(15u64.to_be_bytes().to_vec())
        );
    }

    #[test]
    fn sled_log_keeps_the_key_value_layout() {
        let dir = tempfile::tempdir().unwrap();
        exercise(&SledStore::open(dir.path()).unwrap());
    }
}

/// A refused log append, as its writer asks about it ([`ConversationLog::take_refused`]).
///
/// A message is known by its (epoch, sender, counter), which no other message shares, never by
/// its sequence number: an append made again takes a new number, which may be the number an
/// earlier refused append of this node had, so numbers would mix up whose append was refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Refused {
    /// A message append.
    Message {
        /// Its epoch.
        epoch: u32,
        /// Its sender's signing key.
        sender: Vec<u8>,
        /// The sender's counter.
        counter: u64,
    },
    /// Any other item (an epoch record, a hand-off, a consent share, a notice), by sequence
    /// number and the digest of its stored bytes ([`Refused::item`]): its writer makes its
    /// whole request again from the reloaded conversation (the item's transaction, an audit
    /// leaf with a notice, was refused with it). The number alone is not enough: an item
    /// refused for a key of its transaction (an audit leaf's index) leaves its number free,
    /// and another item of this node may be stored under it before the refused one's writer
    /// asks.
    Item {
        /// Its sequence number.
        seq: u64,
        /// SHA-256 of the item's bytes as appended ([`ConversationLog::append_item`]'s `item`).
        digest: [u8; 32],
    },
}

impl Refused {
    /// The refusal of the item `item` (its bytes as appended) at sequence number `seq`.
    pub fn item(seq: u64, item: &[u8]) -> Self {
        use sha2::Digest as _;
        Refused::Item {
            seq,
            digest: sha2::Sha256::digest(item).into(),
        }
    }
}
