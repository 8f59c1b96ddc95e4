//! The conditional insert of the relay's read-modify-write records (the open-conversation
//! records of `limits::quota`): decided by the database at once, in a statement of its own,
//! so two nodes inserting the same record cannot both succeed (the loser reads the winner's
//! record and retries with `replace_if`).

use deadpool_postgres::Pool;

use super::{db_err, sql::client};
use crate::{error::Result, store::Collection};

/// Inserts `key` of `collection` (not the messages) with `value` unless a row holds it;
/// whether it did.
pub(super) async fn create_if_absent(
    pool: &Pool,
    collection: Collection,
    key: &[u8],
    value: &[u8],
) -> Result<bool> {
    let client = client(pool, "create_if_absent").await?;
    let stmt = client
        .prepare_cached(
            "INSERT INTO kv (collection, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (collection, key) DO NOTHING",
        )
        .await
        .map_err(|e| db_err("create_if_absent", &e))?;
    let rows = client
        .execute(&stmt, &[&collection.name(), &key, &value])
        .await
        .map_err(|e| db_err("create_if_absent", &e))?;
    Ok(rows == 1)
}
