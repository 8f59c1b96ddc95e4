//! The PostgreSQL schema: versioned migrations, applied at start under an advisory lock.
//!
//! Version `n` is `MIGRATIONS[n - 1]`; `schema_version` holds one row per applied
//! migration. A relay refuses a database whose schema is newer than it knows (an older build
//! must not write to a newer layout), and one that is behind unless it was started with
//! `--migrate` (an operator decides when a shared database changes, not whichever node starts
//! first). Migrations are only ever appended: never edit one that has shipped.

use tokio_postgres::Client;

use super::db_err;
use crate::error::{Error, Result};

/// The migrations, oldest first.
///
/// 1. `kv`: every collection but the messages, keyed by (collection name, key), byte order;
///    `messages`: the conversation log, keyed by (conversation, seq), with the database itself
///    refusing a reused (conversation, epoch, sender, counter) — non-message items leave the
///    three NULL, which the constraint lets repeat; `conversation_heads`: each conversation's
///    last sequence number, the row whose lock serialises appends across nodes.
/// 2. `rate_buckets`: the token buckets the nodes share (`store::rate_bucket`), each the time
///    (Unix seconds, the database's clock) it is full again; rows past it are pruned.
/// 3. `agent_presence`: the agent keys connected to each node (`store::presence`), each row
///    lapsing at `expires_at` (Unix seconds, the database's clock) unless its node refreshes
///    it: a node that crashes stops refreshing, and its agents stop counting as online.
/// 4. `forwarded_pushes`: push frames too large for a notification's payload, forwarded to the
///    other nodes by reference (`wake::store_push`): the notification carries the row's id,
///    each node reads the frame once; every row lapses at `expires_at` (Unix seconds, the
///    database's clock) and is pruned by the nodes' periodic chores.
pub(super) const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE kv (
        collection text NOT NULL,
        key bytea NOT NULL,
        value bytea NOT NULL,
        PRIMARY KEY (collection, key)
    );
    CREATE TABLE messages (
        conversation bytea NOT NULL,
        seq bigint NOT NULL CHECK (seq >= 0),
        epoch bigint,
        sender bytea,
        counter bigint,
        item bytea NOT NULL,
        PRIMARY KEY (conversation, seq),
        UNIQUE (conversation, epoch, sender, counter)
    );
    CREATE TABLE conversation_heads (
        conversation bytea PRIMARY KEY,
        last_seq bigint NOT NULL
    );
",
    "
    CREATE TABLE rate_buckets (
        key bytea PRIMARY KEY,
        full_at double precision NOT NULL,
        at double precision NOT NULL,
        granted boolean NOT NULL
    );
    CREATE INDEX rate_buckets_full_at ON rate_buckets (full_at);
",
    "
    CREATE TABLE agent_presence (
        agent bytea NOT NULL,
        node bigint NOT NULL,
        expires_at double precision NOT NULL,
        PRIMARY KEY (agent, node)
    );
    CREATE INDEX agent_presence_node ON agent_presence (node);
",
    "
    CREATE TABLE forwarded_pushes (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        frame bytea NOT NULL,
        expires_at double precision NOT NULL
    );
    CREATE INDEX forwarded_pushes_expires_at ON forwarded_pushes (expires_at);
",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Key of the advisory lock held while the schema is checked or migrated.
const MIGRATION_LOCK: i64 = 0x5ea1_de5c_0001;

/// Checks the schema and, if `migrate`, brings it up to [`SCHEMA_VERSION`].
///
/// # Errors
///
/// [`Error::SchemaTooNew`], [`Error::SchemaBehind`], or [`Error::Storage`].
pub(super) async fn prepare(client: &mut Client, migrate: bool) -> Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| db_err("migrate", &e))?;
    let result = prepare_locked(client, migrate).await;
    // The lock is the session's: released here, or with the connection if this fails.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| db_err("migrate", &e));
    result.and(unlocked.map(|_| ()))
}

async fn prepare_locked(client: &mut Client, migrate: bool) -> Result<()> {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version bigint PRIMARY KEY)")
        .await
        .map_err(|e| db_err("migrate", &e))?;
    let found: i64 = client
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|e| db_err("migrate", &e))?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < SCHEMA_VERSION && !migrate {
        return Err(Error::SchemaBehind {
            found,
            latest: SCHEMA_VERSION,
        });
    }
    for (version, sql) in (1i64..).zip(MIGRATIONS.iter()).skip(found.max(0) as usize) {
        let tx = client
            .transaction()
            .await
            .map_err(|e| db_err("migrate", &e))?;
        tx.batch_execute(sql)
            .await
            .map_err(|e| db_err("migrate", &e))?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(|e| db_err("migrate", &e))?;
        tx.commit().await.map_err(|e| db_err("migrate", &e))?;
        tracing::info!(version, "database schema migrated");
    }
    Ok(())
}
