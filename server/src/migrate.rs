//! `sealdesk-relay migrate --from DIR --to postgres://…`: copies a sled data directory into an
//! empty PostgreSQL database, then checks the copy.
//!
//! What is copied: every [`Collection`] of the directory, entry by entry — the directory
//! (names, cards, policies, certificates and their org index), the conversations and their
//! logs (messages, epoch records, hand-offs, consents, release notices), epochs, the
//! duplicate keys, deliveries, release requests, tickets, the audit log, the relay's metadata
//! (its identity — so the log key stays the same —, the consent index and the org index's
//! marker, release markers, witnesses' cosignatures, stored bytes) and attachments. A
//! directory holding data in a sled tree that is no collection (a later build's) is refused:
//! nothing would copy it.
//!
//! The layout written is the PostgreSQL engine's (schema version 1, created or checked first
//! as a relay with `--migrate` does): the log in `messages` with each message's (epoch,
//! sender, counter) — so the database refuses a reused counter after the move as it does for
//! a message stored there — and each conversation's last sequence number in
//! `conversation_heads`; everything else in `kv`.
//!
//! Safety: the source must be a relay's data directory no relay is running on (its
//! `relay.lock` is taken, as a relay takes it), read only. The target must be empty: no
//! `--force`, since a relay's data merged into another's would mix two relays' identities and
//! logs. The copy is ONE transaction: interrupted (killed, the database lost), it leaves the
//! target empty and the migration is simply run again. After the commit every count is read
//! back from the database and compared: entries per collection, messages, each conversation's
//! last sequence number, and the audit log's size and Merkle root.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

use crate::{
    relay::inspect,
    store::{Collection, LogRow, PgImport, SledStore, Store, seq_from_key},
};

/// Entries read from sled and written to the database at a time.
const PAGE: usize = 512;

/// Length of a conversation id: the prefix of every key of [`Collection::Messages`].
const CONVERSATION_LEN: usize = 16;

/// Why a migration did not happen or did not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The source directory does not exist.
    #[error("{} does not exist: nothing to migrate", path.display())]
    SourceMissing {
        /// The directory given.
        path: PathBuf,
    },
    /// The source is not a relay's sled data directory.
    #[error("{} is not a relay's data directory (no sled `conf` file in it)", path.display())]
    NotADataDirectory {
        /// The directory given.
        path: PathBuf,
    },
    /// A relay is running on the source directory.
    #[error("a relay is running on {} (it holds relay.lock): stop it, then migrate", path.display())]
    SourceInUse {
        /// The directory given.
        path: PathBuf,
    },
    /// The source holds data in sled trees that are no collection of this build.
    #[error(
        "{} holds data this relay does not know, in sled trees {trees}: a newer build's? \
         Nothing was copied",
        path.display()
    )]
    ForeignData {
        /// The directory given.
        path: PathBuf,
        /// The trees, with their entry counts.
        trees: String,
    },
    /// The source could not be opened or read (a damaged store, an item that does not decode).
    #[error("the source cannot be read: {0}")]
    Source(#[source] crate::Error),
    /// The target database already holds data.
    #[error(
        "the target database is not empty ({rows} rows in kv, messages and conversation_heads): \
         migrate into a new database; nothing was copied"
    )]
    TargetNotEmpty {
        /// Rows found.
        rows: u64,
    },
    /// The target database could not be used (unreachable, refused a write, its schema is not
    /// this build's). Nothing was committed unless the copy's report was printed.
    #[error("the target database: {0}")]
    Target(#[source] crate::Error),
    /// A check after the copy found the target different from the source.
    #[error("verification failed: {what}: {in_source} in the source, {in_target} in the target")]
    Mismatch {
        /// What was compared.
        what: String,
        /// The source's value.
        in_source: String,
        /// The target's value.
        in_target: String,
    },
}

/// What was copied and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Entries per collection (by its stable name), in [`Collection::ALL`] order; the
    /// messages collection counts every log item.
    pub counts: Vec<(&'static str, u64)>,
    /// Conversations with log items, each with the same last sequence number in both.
    pub conversations: u64,
    /// The audit log's size (entries).
    pub audit_size: u64,
    /// Its Merkle root, hex.
    pub audit_root: String,
    /// The relay's public log key, if the source had an identity yet.
    pub log_key: Option<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "copied and verified (source = target):")?;
        for (name, n) in &self.counts {
            writeln!(f, "  {name:<14} {n}")?;
        }
        writeln!(
            f,
            "  conversations with items: {}, each with the same last sequence number",
            self.conversations
        )?;
        writeln!(f, "  audit log size: {}", self.audit_size)?;
        writeln!(f, "  audit log root: {}", self.audit_root)?;
        match &self.log_key {
            Some(k) => writeln!(f, "  log key: {k}"),
            None => writeln!(f, "  log key: none yet (the relay never started)"),
        }
    }
}

/// Copies the sled data directory `from` into the empty PostgreSQL database at `to` and
/// verifies the copy (see the module docs).
///
/// # Errors
///
/// A [`MigrateError`] saying what was refused or failed; only a [`MigrateError::Mismatch`]
/// leaves a committed copy behind (to look at, not to serve).
pub fn migrate(from: &Path, to: &str) -> Result<Report, MigrateError> {
    let sled = open_source(from)?;
    let target = PgImport::open(to).map_err(MigrateError::Target)?;
    let copied = copy(&sled, &target)?;
    verify(&target, &copied)
}

/// Opens the source read only in spirit (nothing is written to it), refusing a missing
/// directory, one that is not a relay's, one a relay runs on, and one with unknown data.
fn open_source(from: &Path) -> Result<SledStore, MigrateError> {
    if !from.exists() {
        return Err(MigrateError::SourceMissing {
            path: from.to_owned(),
        });
    }
    if !from.join("conf").is_file() {
        return Err(MigrateError::NotADataDirectory {
            path: from.to_owned(),
        });
    }
    // The relay's own lock, tried once without waiting (SledStore::open would wait for it).
    if let Ok(file) = std::fs::File::open(from.join("relay.lock")) {
        match file.try_lock() {
            Ok(()) => drop(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(MigrateError::SourceInUse {
                    path: from.to_owned(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(MigrateError::Source(crate::Error::Storage {
                    op: "open",
                    detail: format!("relay.lock: {e}"),
                }));
            }
        }
    }
    let sled = SledStore::open(from).map_err(MigrateError::Source)?;
    let foreign = sled.foreign_trees().map_err(MigrateError::Source)?;
    if !foreign.is_empty() {
        let trees = foreign
            .iter()
            .map(|(name, n)| format!("`{name}` ({n} entries)"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(MigrateError::ForeignData {
            path: from.to_owned(),
            trees,
        });
    }
    Ok(sled)
}

fn corrupt(what: String) -> MigrateError {
    MigrateError::Source(crate::Error::Corrupt(what))
}

/// What the copy read from the source, to compare with the target.
#[derive(Debug, Default)]
struct Copied {
    counts: BTreeMap<&'static str, u64>,
    /// Each conversation's last sequence number.
    heads: BTreeMap<Vec<u8>, u64>,
    audit: Vec<Vec<u8>>,
    log_key: Option<String>,
}

/// Copies every collection in one transaction (see the module docs).
fn copy(sled: &SledStore, target: &PgImport) -> Result<Copied, MigrateError> {
    let rows = target.rows().map_err(MigrateError::Target)?;
    if rows > 0 {
        return Err(MigrateError::TargetNotEmpty { rows });
    }
    target.begin().map_err(MigrateError::Target)?;
    let mut copied = Copied::default();
    for collection in Collection::ALL {
        let mut start: Vec<u8> = Vec::new();
        let mut count = 0u64;
        loop {
            let page = sled
                .range_from(collection, &start, PAGE)
                .map_err(MigrateError::Source)?;
            let Some((last, _)) = page.last() else { break };
            start = last.clone();
            start.push(0);
            count += page.len() as u64;
            if collection == Collection::Messages {
                let rows = page
                    .iter()
                    .map(|(k, v)| log_row(k, v))
                    .collect::<Result<Vec<_>, _>>()?;
                for r in &rows {
                    copied.heads.insert(r.conversation.clone(), r.seq);
                }
                target.put_items(&rows).map_err(MigrateError::Target)?;
            } else {
                if collection == Collection::AuditLeaves {
                    copied.audit.extend(page.iter().map(|(_, v)| v.clone()));
                }
                if collection == Collection::Meta
                    && let Some((_, v)) = page
                        .iter()
                        .find(|(k, _)| k.as_slice() == inspect::RELAY_IDENTITY_KEY)
                {
                    copied.log_key = Some(inspect::log_key(v).map_err(MigrateError::Source)?);
                }
                target
                    .put_entries(collection, &page)
                    .map_err(MigrateError::Target)?;
            }
        }
        copied.counts.insert(collection.name(), count);
    }
    let heads: Vec<(Vec<u8>, u64)> = copied.heads.clone().into_iter().collect();
    for chunk in heads.chunks(PAGE) {
        target.put_heads(chunk).map_err(MigrateError::Target)?;
    }
    target.commit().map_err(MigrateError::Target)?;
    Ok(copied)
}

/// A stored log item as a row of the database's log: its key split, its message identity
/// read.
fn log_row(key: &[u8], item: &[u8]) -> Result<LogRow, MigrateError> {
    let at = || format!("the log item under key {}", hex(key));
    let seq = seq_from_key(key)
        .filter(|_| key.len() == CONVERSATION_LEN + 8)
        .ok_or_else(|| corrupt(format!("{}: not conversation ‖ sequence number", at())))?;
    let (stored_seq, message) =
        inspect::log_item(item).map_err(|_| corrupt(format!("{}: does not decode", at())))?;
    if stored_seq != seq {
        return Err(corrupt(format!("{}: says it is number {stored_seq}", at())));
    }
    Ok(LogRow {
        conversation: key[..CONVERSATION_LEN].to_vec(),
        seq,
        message,
        item: item.to_vec(),
    })
}

/// Reads the counts back from the database and compares them with the source's.
fn verify(target: &PgImport, copied: &Copied) -> Result<Report, MigrateError> {
    let mismatch = |what: String, a: String, b: String| MigrateError::Mismatch {
        what,
        in_source: a,
        in_target: b,
    };
    let mut stored = target.counts().map_err(MigrateError::Target)?;
    let mut counts = Vec::new();
    for c in Collection::ALL {
        let ours = copied.counts.get(c.name()).copied().unwrap_or(0);
        let theirs = stored.remove(c.name()).unwrap_or(0);
        if ours != theirs {
            return Err(mismatch(
                format!("entries of `{}`", c.name()),
                ours.to_string(),
                theirs.to_string(),
            ));
        }
        counts.push((c.name(), ours));
    }
    if let Some((name, n)) = stored.into_iter().next() {
        return Err(mismatch(
            format!("entries of `{name}`"),
            "0".into(),
            n.to_string(),
        ));
    }

    let mut stored = target.last_seqs().map_err(MigrateError::Target)?;
    for (c, seq) in &copied.heads {
        let found = stored.remove(c);
        if found != Some((*seq, Some(*seq))) {
            return Err(mismatch(
                format!("the last sequence number of conversation {}", hex(c)),
                seq.to_string(),
                format!("{found:?} (greatest stored, head)"),
            ));
        }
    }
    if let Some((c, _)) = stored.into_iter().next() {
        return Err(mismatch(
            format!("conversation {}", hex(&c)),
            "absent".into(),
            "present".into(),
        ));
    }

    let leaves = target
        .entries(Collection::AuditLeaves)
        .map_err(MigrateError::Target)?;
    let ours = inspect::audit_root(copied.audit.iter().map(Vec::as_slice))
        .map_err(MigrateError::Source)?;
    let theirs = inspect::audit_root(leaves.iter().map(|(_, v)| v.as_slice()))
        .map_err(MigrateError::Target)?;
    if copied.audit.len() != leaves.len() || ours != theirs {
        return Err(mismatch(
            "the audit log (size, root)".into(),
            format!("{}, {}", copied.audit.len(), hex(&ours)),
            format!("{}, {}", leaves.len(), hex(&theirs)),
        ));
    }
    Ok(Report {
        counts,
        conversations: copied.heads.len() as u64,
        audit_size: copied.audit.len() as u64,
        audit_root: hex(&ours),
        log_key: copied.log_key.clone(),
    })
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
