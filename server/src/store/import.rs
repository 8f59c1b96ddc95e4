//! Bulk writes into an empty PostgreSQL database, for `sealdesk-relay migrate`
//! (`crate::migrate`): [`PgImport`] writes the engine's tables directly, inside one
//! transaction, and reads back what verifying the copy needs. The relay never uses it.
//!
//! It writes schema version 1's layout (see `postgres::schema`; version 2's `rate_buckets`,
//! version 3's `agent_presence` and version 4's `forwarded_pushes` start empty): a new migration must be reflected here,
//! which the assertion below enforces.

use std::collections::BTreeMap;

use futures_util::future::try_join_all;
use tokio_postgres::{Client, types::ToSql};

use super::{Collection, Entries, PgStore, SCHEMA_VERSION};
use crate::error::{Error, Result};

// Version 2 adds only `rate_buckets`, which holds nothing a copy must keep (a new bucket
// starts full); version 3 only `agent_presence`, which a sled relay never had (its nodes
// publish their agents as they connect); version 4 only `forwarded_pushes`, pushes in flight
// between running nodes, which lapse within minutes.
const _: () = assert!(
    SCHEMA_VERSION == 4,
    "PgImport writes schema version 1's tables (versions 2 to 4 add only rate_buckets, \
     agent_presence and forwarded_pushes)"
);

/// One statement parameter.
type Param<'a> = dyn ToSql + Sync + 'a;

const INSERT_KV: &str = "INSERT INTO kv (collection, key, value) VALUES ($1, $2, $3)";
const INSERT_MESSAGE: &str = "INSERT INTO messages (conversation, seq, epoch, sender, counter, \
     item) VALUES ($1, $2, $3, $4, $5, $6)";
const INSERT_HEAD: &str = "INSERT INTO conversation_heads (conversation, last_seq) VALUES ($1, $2)";

/// Per conversation (its id's bytes): the greatest stored sequence number and the head (`None`
/// without a `conversation_heads` row).
pub type LastSeqs = BTreeMap<Vec<u8>, (u64, Option<u64>)>;

/// One item of a conversation's log, as [`PgImport::put_items`] writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    /// The conversation id's bytes.
    pub conversation: Vec<u8>,
    /// Its sequence number.
    pub seq: u64,
    /// A message's (epoch, sender's signing key, counter); `None` for other items.
    pub message: Option<(u32, Vec<u8>, u64)>,
    /// The stored item, as the log holds it.
    pub item: Vec<u8>,
}

/// A connection to a PostgreSQL database with the relay's schema, for one bulk import.
pub struct PgImport {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl std::fmt::Debug for PgImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgImport").finish_non_exhaustive()
    }
}

fn db_err(op: &'static str, e: &tokio_postgres::Error) -> Error {
    let detail = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    Error::Storage { op, detail }
}

fn big(n: u64, what: &str) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::Storage {
        op: "import",
        detail: format!("{what} {n} does not fit the database's 63-bit integers"),
    })
}

impl PgImport {
    /// Connects to `url`, first creating or checking the schema as a relay started with
    /// `--migrate` does.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the database cannot be reached; [`Error::SchemaTooNew`] if its
    /// schema is newer than this build's.
    pub fn open(url: &str) -> Result<Self> {
        drop(PgStore::open(url, true)?);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the database runtime: {e}")))?;
        let client = runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .map_err(|e| db_err("connect", &e))?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "the import's database connection ended");
                }
            });
            Ok::<_, Error>(client)
        })?;
        Ok(Self { runtime, client })
    }

    /// Rows in the tables an import writes (`kv`, `messages`, `conversation_heads`).
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the database fails.
    pub fn rows(&self) -> Result<u64> {
        let n: i64 = self.runtime.block_on(async {
            self.client
                .query_one(
                    "SELECT (SELECT count(*) FROM kv) + (SELECT count(*) FROM messages) \
                     + (SELECT count(*) FROM conversation_heads)",
                    &[],
                )
                .await
                .and_then(|r| r.try_get(0))
                .map_err(|e| db_err("count", &e))
        })?;
        Ok(n.unsigned_abs())
    }

    /// Starts the import's transaction: nothing is visible, or kept, before [`Self::commit`].
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the database fails.
    pub fn begin(&self) -> Result<()> {
        self.batch("BEGIN", "begin")
    }

    /// Commits the import's transaction.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the database fails or refused a row (nothing is kept then).
    pub fn commit(&self) -> Result<()> {
        self.batch("COMMIT", "commit")
    }

    fn batch(&self, sql: &str, op: &'static str) -> Result<()> {
        self.runtime
            .block_on(self.client.batch_execute(sql))
            .map_err(|e| db_err(op, &e))
    }

    /// Inserts `entries` into `collection` (not [`Collection::Messages`]: see
    /// [`Self::put_items`]). A key present already fails the transaction.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the database fails or refuses a row.
    pub fn put_entries(
        &self,
        collection: Collection,
        entries: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<()> {
        let name = collection.name();
        self.execute_each(
            INSERT_KV,
            entries.iter().map(|(k, v)| vec![&name as &Param<'_>, k, v]),
        )
    }

    /// Inserts log items; the database refuses (failing the transaction) a taken (conversation,
    /// seq) or a message's taken (conversation, epoch, sender, counter).
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if a number is out of range or the database fails or refuses a row.
    pub fn put_items(&self, items: &[LogRow]) -> Result<()> {
        struct Row<'a> {
            conversation: &'a [u8],
            seq: i64,
            epoch: Option<i64>,
            sender: Option<&'a [u8]>,
            counter: Option<i64>,
            item: &'a [u8],
        }
        let rows = items
            .iter()
            .map(|r| {
                Ok(Row {
                    conversation: &r.conversation,
                    seq: big(r.seq, "a sequence number")?,
                    epoch: r.message.as_ref().map(|(e, _, _)| i64::from(*e)),
                    sender: r.message.as_ref().map(|(_, s, _)| s.as_slice()),
                    counter: r
                        .message
                        .as_ref()
                        .map(|(_, _, c)| big(*c, "a counter"))
                        .transpose()?,
                    item: &r.item,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.execute_each(
            INSERT_MESSAGE,
            rows.iter().map(|r| {
                vec![
                    &r.conversation as &Param<'_>,
                    &r.seq,
                    &r.epoch,
                    &r.sender,
                    &r.counter,
                    &r.item,
                ]
            }),
        )
    }

    /// Sets each conversation's last sequence number (the row a relay's append moves on).
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if a number is out of range or the database fails or refuses a row.
    pub fn put_heads(&self, heads: &[(Vec<u8>, u64)]) -> Result<()> {
        let rows = heads
            .iter()
            .map(|(c, seq)| Ok((c.as_slice(), big(*seq, "a sequence number")?)))
            .collect::<Result<Vec<_>>>()?;
        self.execute_each(
            INSERT_HEAD,
            rows.iter().map(|(c, seq)| vec![c as &Param<'_>, seq]),
        )
    }

    /// Runs `sql` once for each parameter list, pipelined on the import's connection (and so
    /// inside its transaction); the first failure fails the import.
    fn execute_each<'p>(
        &self,
        sql: &str,
        rows: impl Iterator<Item = Vec<&'p Param<'p>>>,
    ) -> Result<()> {
        let client = &self.client;
        self.runtime.block_on(async {
            let stmt = client
                .prepare(sql)
                .await
                .map_err(|e| db_err("import", &e))?;
            let stmt = &stmt;
            try_join_all(rows.map(|params| async move { client.execute(stmt, &params).await }))
                .await
                .map_err(|e| db_err("import", &e))?;
            Ok(())
        })
    }

    /// Committed entries per collection name (the log's items under
    /// [`Collection::Messages`]'s name), including names that are no collection.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the database fails.
    pub fn counts(&self) -> Result<BTreeMap<String, u64>> {
        self.runtime.block_on(async {
            let err = |e: tokio_postgres::Error| db_err("count", &e);
            let mut out = BTreeMap::new();
            for r in self
                .client
                .query(
                    "SELECT collection, count(*) FROM kv GROUP BY collection",
                    &[],
                )
                .await
                .map_err(err)?
            {
                let n: i64 = r.try_get(1).map_err(err)?;
                out.insert(r.try_get::<_, String>(0).map_err(err)?, n.unsigned_abs());
            }
            let n: i64 = self
                .client
                .query_one("SELECT count(*) FROM messages", &[])
                .await
                .and_then(|r| r.try_get(0))
                .map_err(err)?;
            if n > 0 {
                out.insert(Collection::Messages.name().to_owned(), n.unsigned_abs());
            }
            Ok(out)
        })
    }

    /// For every conversation with log items: its greatest stored sequence number and its head
    /// (`None` if it has no `conversation_heads` row).
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the database fails.
    pub fn last_seqs(&self) -> Result<LastSeqs> {
        self.runtime.block_on(async {
            let err = |e: tokio_postgres::Error| db_err("count", &e);
            let mut out = BTreeMap::new();
            for r in self
                .client
                .query(
                    "SELECT m.conversation, max(m.seq), h.last_seq FROM messages m \
                     LEFT JOIN conversation_heads h USING (conversation) \
                     GROUP BY m.conversation, h.last_seq",
                    &[],
                )
                .await
                .map_err(err)?
            {
                let max: i64 = r.try_get(1).map_err(err)?;
                let head: Option<i64> = r.try_get(2).map_err(err)?;
                out.insert(
                    r.try_get::<_, Vec<u8>>(0).map_err(err)?,
                    (max.unsigned_abs(), head.map(i64::unsigned_abs)),
                );
            }
            Ok(out)
        })
    }

    /// Every committed entry of `collection` (not [`Collection::Messages`]), in key order.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the database fails.
    pub fn entries(&self, collection: Collection) -> Result<Entries> {
        self.runtime.block_on(async {
            let err = |e: tokio_postgres::Error| db_err("read", &e);
            self.client
                .query(
                    "SELECT key, value FROM kv WHERE collection = $1 ORDER BY key",
                    &[&collection.name()],
                )
                .await
                .map_err(err)?
                .iter()
                .map(|r| Ok((r.try_get(0).map_err(err)?, r.try_get(1).map_err(err)?)))
                .collect()
        })
    }
}
