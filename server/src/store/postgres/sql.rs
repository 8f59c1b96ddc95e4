//! The PostgreSQL engine's statements: reads, and the commit of a batch of staged writes in one
//! transaction (pipelined: every statement is sent before the first answer is awaited).

use std::{future::Future, pin::Pin};

use deadpool_postgres::{Object, Pool, Transaction};
use futures_util::future::try_join_all;
use tokio_postgres::types::ToSql;

use super::{PgOp, Unit, db_err, wake};
use crate::error::{Error, Result};
use crate::store::Refused;
use crate::store::{Collection, Entries, prefixed_seq_key, seq_from_key};

/// Length of a conversation id: the prefix of every key in [`Collection::Messages`].
const CONVERSATION_LEN: usize = 16;

/// Why a commit failed.
#[derive(Debug)]
pub(super) enum CommitError {
    /// The database could not be reached or gave up: nothing was committed (or, if the
    /// connection died during COMMIT, perhaps everything); the writes may be tried again.
    Unavailable(Error),
    /// The database refused the batch: a sequence number, counter or key another node took.
    Refused(Error),
}

/// A connection from the pool.
pub(super) async fn client(pool: &Pool, op: &'static str) -> Result<Object> {
    pool.get().await.map_err(|e| Error::Storage {
        op,
        detail: format!("no database connection: {e}"),
    })
}

/// Splits a [`Collection::Messages`] key into (conversation, seq), if it has that shape.
fn message_key(key: &[u8]) -> Option<(&[u8], i64)> {
    let seq = i64::try_from(seq_from_key(key)?).ok()?;
    Some((&key[..key.len() - 8], seq))
}

fn out_of_range(what: &str) -> Error {
    Error::Storage {
        op: "put",
        detail: format!("{what} does not fit the database's 63-bit integers"),
    }
}

/// The stored value of `key`.
pub(super) async fn get(
    pool: &Pool,
    collection: Collection,
    key: &[u8],
) -> Result<Option<Vec<u8>>> {
    let client = client(pool, "get").await?;
    let row = if collection == Collection::Messages {
        let Some((conversation, seq)) = message_key(key) else {
            return Ok(None);
        };
        let stmt = client
            .prepare_cached("SELECT item FROM messages WHERE conversation = $1 AND seq = $2")
            .await
            .map_err(|e| db_err("get", &e))?;
        client.query_opt(&stmt, &[&conversation, &seq]).await
    } else {
        let stmt = client
            .prepare_cached("SELECT value FROM kv WHERE collection = $1 AND key = $2")
            .await
            .map_err(|e| db_err("get", &e))?;
        client.query_opt(&stmt, &[&collection.name(), &key]).await
    }
    .map_err(|e| db_err("get", &e))?;
    row.map(|r| r.try_get(0))
        .transpose()
        .map_err(|e| db_err("get", &e))
}

/// Up to `limit` stored entries of `collection` with keys in `[lo, hi)`, ascending (or the
/// top ones descending). `prefix` is the caller's prefix: a whole conversation id lets the
/// messages be read through their primary key.
pub(super) async fn scan(
    pool: &Pool,
    collection: Collection,
    prefix: &[u8],
    lo: &[u8],
    hi: Option<&[u8]>,
    limit: usize,
    desc: bool,
) -> Result<Entries> {
    let client = client(pool, "scan").await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let order = if desc { "DESC" } else { "ASC" };
    let err = |e: tokio_postgres::Error| db_err("scan", &e);
    if collection == Collection::Messages {
        // One conversation, from a sequence number on: the primary key's order.
        let from = if lo == prefix {
            Some(0)
        } else if lo.len() == CONVERSATION_LEN + 8 && lo.starts_with(prefix) {
            message_key(lo).map(|(_, seq)| seq)
        } else {
            None
        };
        if let Some(from) = from.filter(|_| prefix.len() == CONVERSATION_LEN) {
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT seq, item FROM messages WHERE conversation = $1 AND seq >= $2 \
                     ORDER BY seq {order} LIMIT $3"
                ))
                .await
                .map_err(err)?;
            let rows = client
                .query(&stmt, &[&prefix, &from, &limit])
                .await
                .map_err(err)?;
            return rows
                .iter()
                .map(|r| {
                    let seq: i64 = r.try_get(0)?;
                    let item: Vec<u8> = r.try_get(1)?;
                    Ok((prefixed_seq_key(prefix, seq.unsigned_abs()), item))
                })
                .collect::<std::result::Result<_, tokio_postgres::Error>>()
                .map_err(err);
        }
    }
    let (key, value, from) = if collection == Collection::Messages {
        (
            "(conversation || int8send(seq))",
            "item",
            "messages WHERE $4::text IS NOT NULL",
        )
    } else {
        ("key", "value", "kv WHERE collection = $4")
    };
    let upper = if hi.is_some() {
        format!("AND {key} < $2")
    } else {
        "AND $2::bytea IS NULL".to_owned()
    };
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {key}, {value} FROM {from} AND {key} >= $1 {upper} ORDER BY {key} {order} \
             LIMIT $3"
        ))
        .await
        .map_err(err)?;
    let rows = client
        .query(&stmt, &[&lo, &hi, &limit, &collection.name()])
        .await
        .map_err(err)?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<std::result::Result<_, tokio_postgres::Error>>()
        .map_err(err)
}

/// Sets `key` of `collection` (not the messages) to `new` if it holds `old`; whether it did.
pub(super) async fn replace_if(
    pool: &Pool,
    collection: Collection,
    key: &[u8],
    old: &[u8],
    new: &[u8],
) -> Result<bool> {
    let client = client(pool, "replace_if").await?;
    let stmt = client
        .prepare_cached(
            "UPDATE kv SET value = $4 WHERE collection = $1 AND key = $2 AND value = $3",
        )
        .await
        .map_err(|e| db_err("replace_if", &e))?;
    let rows = client
        .execute(&stmt, &[&collection.name(), &key, &old, &new])
        .await
        .map_err(|e| db_err("replace_if", &e))?;
    Ok(rows == 1)
}

/// Whether the database refused the statement (a constraint, a serialisation failure) rather
/// than being out of reach.
fn classify(e: &tokio_postgres::Error) -> CommitError {
    let refused = e.as_db_error().is_some_and(|db| {
        let code = db.code().code();
        code.starts_with("23") || code.starts_with("40")
    });
    if refused {
        CommitError::Refused(db_err("flush", e))
    } else {
        CommitError::Unavailable(db_err("flush", e))
    }
}

type Step<'a> = Pin<Box<dyn Future<Output = std::result::Result<bool, CommitError>> + Send + 'a>>;

/// Runs `sql` with `params` in `tx`; with `exactly_one`, answers whether it touched exactly
/// one row (a check the database made: the next sequence number, an unused counter, a free
/// key), else `true`.
fn step<'a>(
    tx: &'a Transaction<'a>,
    sql: &'static str,
    params: Vec<&'a (dyn ToSql + Sync)>,
    exactly_one: bool,
) -> Step<'a> {
    Box::pin(async move {
        let stmt = tx.prepare_cached(sql).await.map_err(|e| classify(&e))?;
        let rows = tx.execute(&stmt, &params).await.map_err(|e| classify(&e))?;
        Ok(!exactly_one || rows == 1)
    })
}

const PUT_KV: &str = "INSERT INTO kv (collection, key, value) VALUES ($1, $2, $3) \
     ON CONFLICT (collection, key) DO UPDATE SET value = EXCLUDED.value";
const INSERT_KV: &str =
    "INSERT INTO kv (collection, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
/// A conditional replace: refused (no row) if the key no longer holds the value read.
const REPLACE_KV: &str =
    "UPDATE kv SET value = $4 WHERE collection = $1 AND key = $2 AND value = $3";
const DELETE_KV: &str = "DELETE FROM kv WHERE collection = $1 AND key = $2";
const HEAD_NEXT: &str = "INSERT INTO conversation_heads AS h (conversation, last_seq) \
     VALUES ($1, $2) ON CONFLICT (conversation) DO UPDATE SET last_seq = EXCLUDED.last_seq \
     WHERE h.last_seq + 1 = EXCLUDED.last_seq";
const HEAD_RAISE: &str = "INSERT INTO conversation_heads AS h (conversation, last_seq) \
     VALUES ($1, $2) ON CONFLICT (conversation) DO UPDATE SET last_seq = EXCLUDED.last_seq \
     WHERE h.last_seq < EXCLUDED.last_seq";
const DELETE_HEAD: &str = "DELETE FROM conversation_heads WHERE conversation = $1";
/// A log append: refused (no row) if its sequence number or its (epoch, sender, counter) is
/// taken — checked by the database's unique constraints, without an error, so that the rest
/// of the batch stands.
const APPEND: &str = "INSERT INTO messages (conversation, seq, epoch, sender, counter, item) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";
const PUT_MESSAGE: &str = "INSERT INTO messages (conversation, seq, item) VALUES ($1, $2, $3) \
     ON CONFLICT (conversation, seq) DO UPDATE SET item = EXCLUDED.item";
const INSERT_MESSAGE: &str = "INSERT INTO messages (conversation, seq, item) \
     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
const DELETE_MESSAGE: &str = "DELETE FROM messages WHERE conversation = $1 AND seq = $2";
const HEAD: &str = "SELECT last_seq FROM conversation_heads WHERE conversation = $1";
const HEADS: &str =
    "SELECT conversation, last_seq FROM conversation_heads WHERE conversation = ANY($1)";
const NOTIFY: &str = "SELECT pg_notify($1, $2)";
/// Each conversation's items after its own number (`$1`, `$2` side by side), `$3` at most
/// each, grouped by conversation in sequence order (the primary key's order per conversation).
const TAILS: &str = "SELECT w.c, m.seq, m.item \
     FROM unnest($1::bytea[], $2::int8[]) AS w(c, after) \
     CROSS JOIN LATERAL (SELECT seq, item FROM messages \
         WHERE conversation = w.c AND seq > w.after ORDER BY seq LIMIT $3) AS m \
     ORDER BY w.c, m.seq";

/// A NULL `bytea`.
static NO_BYTES: Option<&[u8]> = None;

/// The numbers of one op, converted before the statements borrow them.
struct Numbers {
    seq: i64,
    epoch: Option<i64>,
    counter: Option<i64>,
    name: &'static str,
}

/// What a commit did.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// The log appends the database refused, or that were dropped behind a refused one.
    pub(super) refused_appends: Vec<(Vec<u8>, Refused)>,
    /// Whether a unit without log appends was refused (a conditional insert's key taken).
    pub(super) refused_other: bool,
    /// Wake-up notifications sent (one per batch that appended, more if its conversations
    /// do not fit one payload).
    pub(super) wakeups: usize,
}

/// The last sequence number the database holds for `conversation`.
pub(super) async fn head(pool: &Pool, conversation: &[u8]) -> Result<Option<u64>> {
    let client = client(pool, "head").await?;
    let stmt = client
        .prepare_cached(HEAD)
        .await
        .map_err(|e| db_err("head", &e))?;
    let row = client
        .query_opt(&stmt, &[&conversation])
        .await
        .map_err(|e| db_err("head", &e))?;
    row.map(|r| r.try_get::<_, i64>(0).map(i64::unsigned_abs))
        .transpose()
        .map_err(|e| db_err("head", &e))
}

/// The last sequence number the database holds for each of `conversations` that has one,
/// in one statement.
pub(super) async fn heads(pool: &Pool, conversations: &[Vec<u8>]) -> Result<Vec<(Vec<u8>, u64)>> {
    let client = client(pool, "heads").await?;
    let stmt = client
        .prepare_cached(HEADS)
        .await
        .map_err(|e| db_err("heads", &e))?;
    let rows = client
        .query(&stmt, &[&conversations])
        .await
        .map_err(|e| db_err("heads", &e))?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get::<_, i64>(1)?.unsigned_abs())))
        .collect::<std::result::Result<_, tokio_postgres::Error>>()
        .map_err(|e| db_err("heads", &e))
}

/// The committed items of several conversations, each after its own sequence number, at most
/// `limit` each, in one statement: `(conversation, entries)` for those that have any, each
/// conversation's entries in sequence order.
pub(super) async fn tails(
    pool: &Pool,
    from: &[(Vec<u8>, u64)],
    limit: usize,
) -> Result<Vec<(Vec<u8>, Entries)>> {
    let err = |e: tokio_postgres::Error| db_err("tails", &e);
    let client = client(pool, "tails").await?;
    let stmt = client.prepare_cached(TAILS).await.map_err(err)?;
    let conversations: Vec<&[u8]> = from.iter().map(|(c, _)| c.as_slice()).collect();
    let after: Vec<i64> = from
        .iter()
        .map(|(_, a)| i64::try_from(*a).unwrap_or(i64::MAX))
        .collect();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(&stmt, &[&conversations, &after, &limit])
        .await
        .map_err(err)?;
    let mut out: Vec<(Vec<u8>, Entries)> = Vec::new();
    for r in &rows {
        let c: Vec<u8> = r.try_get(0).map_err(err)?;
        let seq: i64 = r.try_get(1).map_err(err)?;
        let item: Vec<u8> = r.try_get(2).map_err(err)?;
        let entry = (prefixed_seq_key(&c, seq.unsigned_abs()), item);
        match out.last_mut() {
            Some((last, entries)) if *last == c => entries.push(entry),
            _ => out.push((c, vec![entry])),
        }
    }
    Ok(out)
}

/// Commits `units` in one transaction, in order; a unit the database refuses is dropped with
/// every later unit of its conversations, and the rest committed (see the module docs of the
/// engine). The transaction also sends the batch's wake-up, naming this `node`.
pub(super) async fn commit(
    pool: &Pool,
    units: &[Unit],
    node: u64,
) -> std::result::Result<Outcome, CommitError> {
    let mut client = client(pool, "flush")
        .await
        .map_err(CommitError::Unavailable)?;
    let mut outcome = Outcome::default();
    let mut live: Vec<usize> = (0..units.len()).collect();
    loop {
        let refused = match attempt(&mut client, units, &live, node).await? {
            Ok(wakeups) => {
                outcome.wakeups = wakeups;
                return Ok(outcome);
            }
            Err(refused) => refused,
        };
        // Drop the refused units and, in order, every later one appending to their
        // conversations (its sequence number follows a refused one).
        let mut blocked: std::collections::HashSet<&[u8]> = Default::default();
        live.retain(|&i| {
            let unit = &units[i];
            let behind = unit.appends().any(|(c, _)| blocked.contains(c));
            if !refused.contains(&i) && !behind {
                return true;
            }
            let mut appended = false;
            for (c, what) in unit.refusals() {
                blocked.insert(c);
                outcome.refused_appends.push((c.to_vec(), what));
                appended = true;
            }
            if !appended {
                outcome.refused_other = true;
            }
            false
        });
        if live.is_empty() {
            return Ok(outcome);
        }
    }
}

/// One try at committing the `live` units: `Ok` with the wake-up notifications sent if
/// committed, else `Err` with the units the database refused (the transaction rolled back).
async fn attempt(
    client: &mut Object,
    units: &[Unit],
    live: &[usize],
    node: u64,
) -> std::result::Result<std::result::Result<usize, Vec<usize>>, CommitError> {
    let tx = client.transaction().await.map_err(|e| classify(&e))?;
    let ops: Vec<(usize, &PgOp)> = live
        .iter()
        .flat_map(|&i| units[i].ops.iter().map(move |op| (i, op)))
        .collect();
    let mut numbers = Vec::with_capacity(ops.len());
    for (_, op) in &ops {
        let (seq, epoch, counter, collection) = match op {
            PgOp::Append { seq, message, .. } => (
                i64::try_from(*seq).map_err(|_| out_of_range("a sequence number")),
                message.as_ref().map(|(e, _, _)| i64::from(*e)),
                message
                    .as_ref()
                    .map(|(_, _, c)| i64::try_from(*c).map_err(|_| out_of_range("a counter")))
                    .transpose(),
                Collection::Messages,
            ),
            PgOp::Put(c, ..)
            | PgOp::Delete(c, _)
            | PgOp::InsertIfAbsent(c, ..)
            | PgOp::ReplaceIf(c, ..) => (Ok(0), None, Ok(None), *c),
        };
        numbers.push(Numbers {
            seq: seq.map_err(CommitError::Refused)?,
            epoch,
            counter: counter.map_err(CommitError::Refused)?,
            name: collection.name(),
        });
    }
    let mut keys = Vec::with_capacity(ops.len());
    for (_, op) in &ops {
        keys.push(match op {
            PgOp::Put(Collection::Messages, k, _)
            | PgOp::Delete(Collection::Messages, k)
            | PgOp::InsertIfAbsent(Collection::Messages, k, _) => {
                Some(message_key(k).ok_or_else(|| {
                    CommitError::Refused(out_of_range("a message key's sequence number"))
                })?)
            }
            _ => None,
        });
    }
    let tx_ref = &tx;
    let mut steps: Vec<(usize, Step<'_>)> = Vec::with_capacity(ops.len() * 2);
    for (((unit, op), n), key) in ops.iter().zip(&numbers).zip(&keys) {
        let unit = *unit;
        let mut add = |s| steps.push((unit, s));
        match (op, key) {
            (
                PgOp::Append {
                    conversation,
                    message,
                    item,
                    ..
                },
                _,
            ) => {
                add(step(tx_ref, HEAD_NEXT, vec![conversation, &n.seq], true));
                let sender: &(dyn ToSql + Sync) = match message {
                    Some((_, sender, _)) => sender,
                    None => &NO_BYTES,
                };
                add(step(
                    tx_ref,
                    APPEND,
                    vec![conversation, &n.seq, &n.epoch, sender, &n.counter, item],
                    true,
                ));
            }
            (PgOp::Put(_, _, v), Some((conversation, seq))) => {
                add(step(tx_ref, HEAD_RAISE, vec![conversation, seq], false));
                add(step(tx_ref, PUT_MESSAGE, vec![conversation, seq, v], false));
            }
            (PgOp::InsertIfAbsent(_, _, v), Some((conversation, seq))) => {
                add(step(tx_ref, HEAD_RAISE, vec![conversation, seq], false));
                add(step(
                    tx_ref,
                    INSERT_MESSAGE,
                    vec![conversation, seq, v],
                    true,
                ));
            }
            (PgOp::Delete(..), Some((conversation, seq))) => {
                add(step(tx_ref, DELETE_MESSAGE, vec![conversation, seq], false));
            }
            (PgOp::Put(_, k, v), None) => {
                add(step(tx_ref, PUT_KV, vec![&n.name, k, v], false));
            }
            (PgOp::InsertIfAbsent(_, k, v), None) => {
                add(step(tx_ref, INSERT_KV, vec![&n.name, k, v], true));
            }
            (PgOp::ReplaceIf(_, k, old, v), _) => {
                add(step(tx_ref, REPLACE_KV, vec![&n.name, k, old, v], true));
            }
            (PgOp::Delete(c, k), None) => {
                add(step(tx_ref, DELETE_KV, vec![&n.name, k], false));
                if *c == Collection::Conversations {
                    // An erased conversation's numbering starts over if its id comes back.
                    add(step(tx_ref, DELETE_HEAD, vec![k], false));
                }
            }
        }
    }
    let (owners, futures): (Vec<usize>, Vec<Step<'_>>) = steps.into_iter().unzip();
    let passed = try_join_all(futures).await?;
    let mut refused: Vec<usize> = owners
        .iter()
        .zip(&passed)
        .filter(|(_, ok)| !**ok)
        .map(|(unit, _)| *unit)
        .collect();
    if !refused.is_empty() {
        refused.dedup();
        tx.rollback().await.map_err(|e| classify(&e))?;
        return Ok(Err(refused));
    }
    // One wake-up per batch: the conversations it appended to (split to fit NOTIFY's limit).
    let touched = wake::touched(live.iter().flat_map(|&i| units[i].appends()));
    let payloads = wake::payloads(node, &touched);
    for payload in &payloads {
        let stmt = tx.prepare_cached(NOTIFY).await.map_err(|e| classify(&e))?;
        tx.execute(&stmt, &[&wake::WAKE_CHANNEL, &payload])
            .await
            .map_err(|e| classify(&e))?;
    }
    // And one telling the audit log's new size, if the batch stored leaves: every node's
    // watchers are told (`audit_grew`), only once the leaves are committed.
    if let Some(size) = audit_size(live.iter().map(|&i| &units[i])) {
        let stmt = tx.prepare_cached(NOTIFY).await.map_err(|e| classify(&e))?;
        tx.execute(
            &stmt,
            &[&wake::PUSH_CHANNEL, &wake::audit_payload(node, size)],
        )
        .await
        .map_err(|e| classify(&e))?;
    }
    tx.commit().await.map_err(|e| classify(&e))?;
    Ok(Ok(payloads.len()))
}

/// The audit log's size once `units` are committed, if they store audit leaves: the highest
/// leaf index they insert, plus one. (A leaf's put is always an insert: `to_pg`.)
fn audit_size<'a>(units: impl Iterator<Item = &'a Unit>) -> Option<u64> {
    units
        .flat_map(|u| &u.ops)
        .filter_map(|op| match op {
            PgOp::InsertIfAbsent(Collection::AuditLeaves, key, _) => {
                <[u8; 8]>::try_from(key.as_slice())
                    .ok()
                    .map(u64::from_be_bytes)
            }
            _ => None,
        })
        .max()
        .map(|index| index.saturating_add(1))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn unit(ops: Vec<PgOp>) -> Unit {
        Unit { ops, retry: false }
    }

    #[test]
    fn a_batch_that_stores_audit_leaves_tells_the_size_after_the_highest() {
        let leaf = |i: u64| {
            PgOp::InsertIfAbsent(Collection::AuditLeaves, i.to_be_bytes().to_vec(), vec![1])
        };
        let other = PgOp::InsertIfAbsent(Collection::Meta, 9u64.to_be_bytes().to_vec(), vec![1]);
        let units = [
            unit(vec![other.clone(), leaf(4)]),
            unit(vec![leaf(6)]),
            unit(vec![leaf(5)]),
        ];
        assert_eq!(audit_size(units.iter()), Some(7));
        // No leaf, or a key that is not an index: nothing to tell.
        assert_eq!(audit_size([unit(vec![other])].iter()), None);
        let odd = PgOp::InsertIfAbsent(Collection::AuditLeaves, vec![1, 2], vec![1]);
        assert_eq!(audit_size([unit(vec![odd])].iter()), None);
        assert_eq!(audit_size(std::iter::empty()), None);
    }
}
