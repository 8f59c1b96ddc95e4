//! Which agent keys are connected to which node of a cluster (`store::presence`): one row per
//! (agent, node), lapsing at `expires_at` on the database's clock unless the node refreshes
//! it, so a node that crashes stops counting its agents online within one time-to-live and
//! the nodes' clocks do not matter.

use deadpool_postgres::Pool;

use super::{db_err, sql::client};
use crate::error::Result;

/// Now, in Unix seconds, on the database's clock.
macro_rules! now {
    () => {
        "extract(epoch FROM clock_timestamp())::float8"
    };
}

/// Node `$1`'s agents are exactly `$2`, each until `$3` seconds from now: in one statement,
/// its rows for other keys go, the listed ones are inserted or moved on, and the other nodes'
/// lapsed rows are dropped (never this node's own: a row may not be both deleted and
/// upserted by one statement).
const PUBLISH: &str = concat!(
    "WITH gone AS (DELETE FROM agent_presence \
       WHERE (node = $1 AND NOT (agent = ANY($2::bytea[]))) \
          OR (node <> $1 AND expires_at <= ",
    now!(),
    ")) \
     INSERT INTO agent_presence (agent, node, expires_at) \
     SELECT a, $1, ",
    now!(),
    " + $3 FROM unnest($2::bytea[]) AS a \
     ON CONFLICT (agent, node) DO UPDATE SET expires_at = EXCLUDED.expires_at"
);

/// Which of the keys `$1` some node holds a live row for.
const PRESENT: &str = concat!(
    "SELECT DISTINCT agent FROM agent_presence \
     WHERE agent = ANY($1::bytea[]) AND expires_at > ",
    now!()
);

/// Publishes that `agents` (keys' bytes) are the ones connected to `node`, for `ttl_secs`.
pub(super) async fn publish(
    pool: &Pool,
    node: u64,
    agents: &[Vec<u8>],
    ttl_secs: f64,
) -> Result<()> {
    let client = client(pool, "publish_presence").await?;
    let err = |e: tokio_postgres::Error| db_err("publish_presence", &e);
    let stmt = client.prepare_cached(PUBLISH).await.map_err(err)?;
    client
        .execute(&stmt, &[&node_id(node), &agents, &ttl_secs])
        .await
        .map_err(err)?;
    Ok(())
}

/// Which of `agents` are connected to some node whose row has not lapsed: one query for all.
pub(super) async fn present(pool: &Pool, agents: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
    let client = client(pool, "agents_present").await?;
    let err = |e: tokio_postgres::Error| db_err("agents_present", &e);
    let stmt = client.prepare_cached(PRESENT).await.map_err(err)?;
    client
        .query(&stmt, &[&agents])
        .await
        .map_err(err)?
        .iter()
        .map(|row| row.try_get::<_, Vec<u8>>(0).map_err(err))
        .collect()
}

/// A node's name as the `bigint` column holds it (the same 64 bits).
fn node_id(node: u64) -> i64 {
    i64::from_be_bytes(node.to_be_bytes())
}
