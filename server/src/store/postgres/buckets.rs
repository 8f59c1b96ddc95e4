//! The token buckets the nodes of a cluster share (`store::rate_bucket`): one row per bucket,
//! the time it is full again on the database's clock (so the nodes' clocks do not matter),
//! taken from in one `INSERT … ON CONFLICT … DO UPDATE … RETURNING`: the row's lock orders
//! the nodes' takes, and each sees the one before. While a limit stands at its cap of keys
//! (`limits::shared`), a take is an `UPDATE` only ([`BucketOp::TakeKnown`]): a key without a
//! row gets none, and the table does not grow; a check ([`BucketOp::CheckKnown`]) then says
//! whether the key has a row, for a limit whose keys without one share an overflow bucket.

use deadpool_postgres::Pool;

use super::{db_err, sql::client};
use crate::error::Result;
use crate::store::{BucketAnswer, BucketOp, BucketRate};

/// Now, in Unix seconds, on the database's clock.
macro_rules! now {
    () => {
        "extract(epoch FROM clock_timestamp())::float8"
    };
}

/// Takes a token: a new bucket is full (this token is its first); a known one gives a token
/// if it is full again no more than the tolerance (`$3`) from now, moving its full-again time
/// on by a token's interval (`$2`). Returns whether it gave one and how far ahead of now the
/// bucket is full again.
const TAKE: &str = concat!(
    "INSERT INTO rate_buckets AS b (key, full_at, at, granted) \
     SELECT $1, n.t + $2, n.t, true FROM (SELECT ",
    now!(),
    " AS t) n \
     ON CONFLICT (key) DO UPDATE SET \
       at = EXCLUDED.at, \
       granted = greatest(b.full_at, EXCLUDED.at) - EXCLUDED.at <= $3, \
       full_at = CASE WHEN greatest(b.full_at, EXCLUDED.at) - EXCLUDED.at <= $3 \
                 THEN greatest(b.full_at, EXCLUDED.at) + $2 ELSE b.full_at END \
     RETURNING granted, full_at - at, \
       NOT EXISTS (SELECT 1 FROM rate_buckets o WHERE o.key = $1)"
);

/// [`TAKE`] for a bucket that has a row only: no row, no answer (and none inserted). The last
/// column of `TAKE` says whether the key had no row before: a subquery reads the statement's
/// snapshot, which does not hold the row the statement itself inserted (a row another node
/// inserted meanwhile counts as this one's: an over-count, which the chores' next count
/// corrects).
const TAKE_KNOWN: &str = concat!(
    "UPDATE rate_buckets AS b SET \
       at = n.t, \
       granted = greatest(b.full_at, n.t) - n.t <= $3, \
       full_at = CASE WHEN greatest(b.full_at, n.t) - n.t <= $3 \
                 THEN greatest(b.full_at, n.t) + $2 ELSE b.full_at END \
     FROM (SELECT ",
    now!(),
    " AS t) n WHERE b.key = $1 \
     RETURNING granted, full_at - at"
);

/// How many rows one limit has: its keys run from `$1` (its label and `/`,
/// `limits::shared::bucket_key`) up to `$2` (its label and `0`, the byte after `/`), a range
/// of the primary key's index, with nothing computed per row. (A scan grouping every row by
/// the part of its key before the first `/` took 6 times as long at the default cap,
/// BENCHMARKS.md.)
const COUNT: &str = "SELECT count(*) FROM rate_buckets WHERE key >= $1 AND key < $2";

/// How far ahead of now bucket `$1` is full again (no row: it is full).
const CHECK: &str = concat!(
    "SELECT full_at - ",
    now!(),
    " FROM rate_buckets WHERE key = $1"
);

/// Gives a token back to bucket `$1`: its full-again time moves back by an interval (`$2`).
const REFUND: &str = "UPDATE rate_buckets SET full_at = full_at - $2 WHERE key = $1";

/// Drops the buckets that are full again. Now is read once, in an uncorrelated subquery (an
/// init plan), so the index on `full_at` serves the condition: `clock_timestamp()` in the
/// condition itself is volatile, evaluated for every row of a scan of the whole table — at
/// the default cap, hundreds of times the cost of a prune with nothing to drop
/// (BENCHMARKS.md).
const PRUNE: &str = concat!(
    "DELETE FROM rate_buckets WHERE full_at <= (SELECT ",
    now!(),
    ")"
);

/// `op` on bucket `key` of `rate`, in one statement.
pub(super) async fn rate_bucket(
    pool: &Pool,
    key: &[u8],
    rate: BucketRate,
    op: BucketOp,
) -> Result<BucketAnswer> {
    let client = client(pool, "rate_bucket").await?;
    let err = |e: tokio_postgres::Error| db_err("rate_bucket", &e);
    let interval = rate.interval_secs;
    match op {
        BucketOp::Take => {
            let stmt = client.prepare_cached(TAKE).await.map_err(err)?;
            let row = client
                .query_one(&stmt, &[&key, &interval, &rate.tolerance_secs()])
                .await
                .map_err(err)?;
            let granted: bool = row.try_get(0).map_err(err)?;
            let ahead: f64 = row.try_get(1).map_err(err)?;
            let started: bool = row.try_get(2).map_err(err)?;
            // A refusal's wait is from the bucket as it is (the token was not taken).
            Ok(match (granted, started) {
                (true, true) => BucketAnswer::Started,
                (true, false) => BucketAnswer::Allowed,
                (false, _) => rate.answer(ahead),
            })
        }
        BucketOp::TakeKnown => {
            let stmt = client.prepare_cached(TAKE_KNOWN).await.map_err(err)?;
            let row = client
                .query_opt(&stmt, &[&key, &interval, &rate.tolerance_secs()])
                .await
                .map_err(err)?;
            let Some(row) = row else {
                return Ok(BucketAnswer::Unknown);
            };
            let granted: bool = row.try_get(0).map_err(err)?;
            let ahead: f64 = row.try_get(1).map_err(err)?;
            Ok(if granted {
                BucketAnswer::Allowed
            } else {
                rate.answer(ahead)
            })
        }
        BucketOp::Check | BucketOp::CheckKnown => {
            let stmt = client.prepare_cached(CHECK).await.map_err(err)?;
            let row = client.query_opt(&stmt, &[&key]).await.map_err(err)?;
            let ahead: f64 = match row {
                Some(row) => row.try_get(0).map_err(err)?,
                None if op == BucketOp::CheckKnown => return Ok(BucketAnswer::Unknown),
                None => 0.0,
            };
            Ok(rate.answer(ahead))
        }
        BucketOp::Refund => {
            let stmt = client.prepare_cached(REFUND).await.map_err(err)?;
            client
                .execute(&stmt, &[&key, &interval])
                .await
                .map_err(err)?;
            Ok(BucketAnswer::Allowed)
        }
    }
}

/// Drops the buckets that are full again; how many.
pub(super) async fn prune(pool: &Pool) -> Result<u64> {
    let client = client(pool, "prune_rate_buckets").await?;
    client
        .execute(PRUNE, &[])
        .await
        .map_err(|e| db_err("prune_rate_buckets", &e))
}

/// How many rows each of `limits` (labels) has, one range count of the primary key each.
pub(super) async fn counts(pool: &Pool, limits: &[&str]) -> Result<Vec<(Vec<u8>, u64)>> {
    let client = client(pool, "rate_bucket_counts").await?;
    let err = |e: tokio_postgres::Error| db_err("rate_bucket_counts", &e);
    let stmt = client.prepare_cached(COUNT).await.map_err(err)?;
    let mut out = Vec::with_capacity(limits.len());
    for limit in limits {
        let from = [limit.as_bytes(), b"/"].concat();
        let to = [limit.as_bytes(), b"0"].concat();
        let row = client.query_one(&stmt, &[&from, &to]).await.map_err(err)?;
        let n: i64 = row.try_get(0).map_err(err)?;
        out.push((limit.as_bytes().to_vec(), u64::try_from(n).unwrap_or(0)));
    }
    Ok(out)
}
