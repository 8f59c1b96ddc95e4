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
