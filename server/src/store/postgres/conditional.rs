//! The engine's conditional insert decided at once, outside group commit: the first write of a
//! read-modify-write record (a witness's cosignature, a stored-bytes count, an open-conversations record) that several nodes
//! may make at the same instant. Like `sql::replace_if`, the update that follows it, it is one
//! statement of its own, durable when it returns; the caller commits what this node staged
//! first.

use deadpool_postgres::Pool;

use super::{db_err, sql::client};
use crate::error::Result;
use crate::store::Collection;

/// Stores `value` at `key` of `collection` (not the messages) if it holds nothing; whether it
/// did.
pub(super) async fn insert_if_absent(
    pool: &Pool,
    collection: Collection,
    key: &[u8],
    value: &[u8],
) -> Result<bool> {
    let client = client(pool, "insert_if_absent_now").await?;
    let stmt = client
        .prepare_cached(
            "INSERT INTO kv (collection, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (collection, key) DO NOTHING",
        )
        .await
        .map_err(|e| db_err("insert_if_absent_now", &e))?;
    let rows = client
        .execute(&stmt, &[&collection.name(), &key, &value])
        .await
        .map_err(|e| db_err("insert_if_absent_now", &e))?;
    Ok(rows == 1)
}

/// Adds each change (sorted by key, no key twice) to the big-endian count at its key of
/// `collection`, never below 0, in one transaction; the counts after, by key. The rows are
/// created (0) where absent and locked in key order first — the order every node takes them
/// in, so two nodes folding at once wait for each other and never deadlock — then updated in
/// the database, so that no node's addition is lost. A value that is not 8 bytes counts as 0.
pub(super) async fn add_counts(
    pool: &Pool,
    collection: Collection,
    changes: &[(Vec<u8>, i64)],
) -> Result<Vec<(Vec<u8>, u64)>> {
    const OP: &str = "add_counts";
    let err = |e: tokio_postgres::Error| db_err(OP, &e);
    let keys: Vec<&[u8]> = changes.iter().map(|(k, _)| k.as_slice()).collect();
    let deltas: Vec<i64> = changes.iter().map(|(_, d)| *d).collect();
    let mut client = client(pool, OP).await?;
    let tx = client.transaction().await.map_err(err)?;
    tx.execute(
        "INSERT INTO kv (collection, key, value) \
         SELECT $1, k, '\\x0000000000000000'::bytea FROM unnest($2::bytea[]) AS c(k) ORDER BY k \
         ON CONFLICT (collection, key) DO NOTHING",
        &[&collection.name(), &keys],
    )
    .await
    .map_err(err)?;
    tx.execute(
        "SELECT 1 FROM kv WHERE collection = $1 AND key = ANY($2) ORDER BY key FOR UPDATE",
        &[&collection.name(), &keys],
    )
    .await
    .map_err(err)?;
    let rows = tx
        .query(
            "UPDATE kv SET value = int8send(greatest(0, \
                 CASE WHEN length(kv.value) = 8 \
                      THEN ('x' || encode(kv.value, 'hex'))::bit(64)::bigint ELSE 0 END \
                 + c.delta)) \
             FROM unnest($2::bytea[], $3::int8[]) AS c(key, delta) \
             WHERE kv.collection = $1 AND kv.key = c.key \
             RETURNING kv.key, kv.value",
            &[&collection.name(), &keys, &deltas],
        )
        .await
        .map_err(err)?;
    tx.commit().await.map_err(err)?;
    rows.iter()
        .map(|r| {
            let key: Vec<u8> = r.try_get(0).map_err(err)?;
            let value: Vec<u8> = r.try_get(1).map_err(err)?;
            let value = <[u8; 8]>::try_from(value.as_slice()).map_or(0, u64::from_be_bytes);
            Ok((key, value))
        })
        .collect()
}
