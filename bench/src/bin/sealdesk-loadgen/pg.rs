//! A throwaway PostgreSQL for the cluster scenario and `pgbench` (`sealdesk_throwaway_pg`, as
//! the tests use): its directory under the run's data root, so on the disk being measured.
//! It stops, and its directory goes, when [`Postgres`] is dropped or the process ends.
//!
//! Server CPU is that of every process of the server: the postmaster (with the CPU of the
//! children it has reaped) and its live children (backends, WAL writer, checkpointer…).

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use sealdesk_throwaway_pg::{Options, Server};

/// A running throwaway PostgreSQL. Stopped, and its directory removed, when dropped.
pub struct Postgres {
    server: Server,
}

/// The directory of the PostgreSQL binaries.
///
/// # Errors
/// No PostgreSQL is installed.
pub fn bin_dir() -> Result<PathBuf> {
    sealdesk_throwaway_pg::bin_dir().context(
        "no PostgreSQL binaries (initdb) found: install PostgreSQL (Debian: `apt-get install \
         postgresql`) to run the cluster and pgbench scenarios",
    )
}

impl Postgres {
    /// Creates a cluster under `root` (the disk being measured) and starts it with
    /// `fsync=on` and `synchronous_commit=on` (PostgreSQL's defaults: a commit is durable when
    /// acknowledged).
    ///
    /// # Errors
    /// No binaries, `initdb` fails, or the server does not accept connections in time.
    pub fn start(root: &Path) -> Result<Self> {
        let options = Options {
            parent: Some(root.to_owned()),
            prefix: "sealdesk-bench-pg-",
            max_connections: 200,
        };
        let server = Server::start(bin_dir()?, &options)
            .with_context(|| format!("starting PostgreSQL in {}", root.display()))?;
        Ok(Self { server })
    }

    /// `postgres://sealdesk@127.0.0.1:PORT/name`.
    pub fn url(&self, name: &str) -> String {
        self.server.url(name)
    }

    /// Creates database `name`; returns its URL.
    ///
    /// # Errors
    /// `createdb` fails.
    pub fn create_database(&self, name: &str) -> Result<String> {
        Ok(self.server.create_database(name)?)
    }

    fn bin(&self, program: &str) -> PathBuf {
        self.server.bin_dir().join(program)
    }

    /// Runs SQL through `psql` on database `db` (stops at the first error).
    ///
    /// # Errors
    /// `psql` fails.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let out = Command::new(self.bin("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url(db))
            .args(["-c", sql])
            .output()
            .context("running psql")?;
        if !out.status.success() {
            bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The postmaster's process id (first line of `postmaster.pid`).
    fn postmaster(&self) -> Result<u32> {
        // The data directory belongs to the postgres user; root (or that user) reads it.
        let text = std::fs::read_to_string(self.server.data_dir().join("postmaster.pid"))
            .context("reading postmaster.pid")?;
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .context("postmaster.pid has no process id")
    }

    /// CPU time (user + system) of the whole server so far: the postmaster, the children it
    /// has reaped, and every live child.
    ///
    /// # Errors
    /// The postmaster is gone or `/proc` does not parse.
    pub fn cpu_time(&self) -> Result<Duration> {
        let master = self.postmaster()?;
        let mut ticks = 0u64;
        let own = stat_of(master).context("the postmaster's /proc stat")?;
        ticks += own.utime + own.stime + own.cutime + own.cstime;
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            // A process may exit between the listing and the read: skip it.
            if let Some(st) = stat_of(pid)
                && st.ppid == master
            {
                ticks += st.utime + st.stime + st.cutime + st.cstime;
            }
        }
        let hz = rustix::param::clock_ticks_per_second().max(1);
        Ok(Duration::from_nanos(
            ticks.saturating_mul(1_000_000_000) / hz,
        ))
    }
}

/// The fields of `/proc/<pid>/stat` the CPU reading needs.
struct Stat {
    ppid: u32,
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
}

fn stat_of(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses a `/proc/<pid>/stat` line; fields are counted after the command name's last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
    Some(Stat {
        ppid: f.get(1)?.parse().ok()?,
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
        cutime: f.get(13)?.parse().ok()?,
        cstime: f.get(14)?.parse().ok()?,
    })
}

/// What one `pgbench` run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PgbenchRun {
    /// Rows (messages) per transaction.
    pub batch: usize,
    /// Concurrent clients (sessions), as a cluster has one committing session per node.
    pub clients: usize,
    /// Seconds run.
    pub seconds: f64,
    /// Transactions per second (`pgbench`'s figure, without the initial connections).
    pub transactions_per_s: f64,
    /// Rows per second: transactions/s × batch.
    pub rows_per_s: f64,
    /// Mean transaction latency, ms.
    pub latency_ms: f64,
    /// PostgreSQL's CPU per row, µs (all its processes).
    pub server_cpu_us_per_row: f64,
}

/// The append `pgbench` script: per message, the relay's two statements (the conversation's
/// head moved on by one, then the message row with its epoch, sender and counter; the
/// message 1,324 bytes, as a stored 1 KiB message), `batch` messages per transaction and one
/// `pg_notify` per transaction, as a relay node's group commit does. Each session appends to
/// conversations of its own (drawn at random from its `per_session`), as each node of a cluster
/// appends to the conversations of the customers connected to it.
pub fn append_script(batch: usize, per_session: usize) -> String {
    let per_session = per_session.max(1);
    let mut s = String::from("BEGIN;\n");
    for _ in 0..batch {
        s.push_str(&format!(
            "\\set c :client_id * 1000000 + random(1, {per_session})\n"
        ));
        s.push_str(
            "INSERT INTO conversation_heads AS h (conversation, last_seq) \
             VALUES (decode(md5(:c::text), 'hex'), 1) ON CONFLICT (conversation) \
             DO UPDATE SET last_seq = h.last_seq + 1 RETURNING last_seq AS s \\gset\n",
        );
        s.push_str(
            "INSERT INTO messages (conversation, seq, epoch, sender, counter, item) \
             VALUES (decode(md5(:c::text), 'hex'), :s, 0, \
             decode(md5(:c::text) || md5(:c::text), 'hex'), :s, :item) \
             ON CONFLICT DO NOTHING;\n",
        );
    }
    s.push_str("SELECT pg_notify('sealdesk_bench', 'batch');\nCOMMIT;\n");
    s
}

/// The relay's message tables (`server/src/store/postgres/schema.rs`, migration 1), for
/// `pgbench` to append to in a database of its own.
pub const APPEND_TABLES: &str = "
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
    );";

impl Postgres {
    /// Runs `pgbench` with [`append_script`] on database `db` (holding [`APPEND_TABLES`]) for
    /// `seconds`, with `clients` sessions.
    ///
    /// # Errors
    /// `pgbench` fails or its output does not parse.
    pub fn pgbench_append(
        &self,
        db: &str,
        batch: usize,
        clients: usize,
        per_session: usize,
        seconds: u32,
    ) -> Result<PgbenchRun> {
        let script_dir = tempfile::tempdir().context("a directory for the pgbench script")?;
        let script = script_dir.path().join("append.sql");
        std::fs::File::create(&script)?.write_all(append_script(batch, per_session).as_bytes())?;
        // A 1,324-byte item in bytea's hex input form: with `-M prepared` a variable is a
        // parameter, typed by its column.
        let item = format!("\\x{}", "61".repeat(1324));
        let cpu_before = self.cpu_time()?;
        let start = Instant::now();
        let out = Command::new(self.bin("pgbench"))
            .args(["-n", "-M", "prepared", "-T", &seconds.to_string()])
            .args(["-c", &clients.to_string(), "-j", &clients.to_string()])
            .arg("-D")
            .arg(format!("item={item}"))
            .arg("-f")
            .arg(&script)
            .arg(self.url(db))
            .output()
            .context("running pgbench")?;
        let wall = start.elapsed().as_secs_f64();
        let cpu = self.cpu_time()?.saturating_sub(cpu_before);
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "pgbench failed: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let tps = parse_after(&text, "tps = ").context("no tps in pgbench's output")?;
        let latency = parse_after(&text, "latency average = ").unwrap_or(f64::NAN);
        let rows = tps * batch as f64;
        Ok(PgbenchRun {
            batch,
            clients,
            seconds: f64::from(seconds),
            transactions_per_s: tps,
            rows_per_s: rows,
            latency_ms: latency,
            server_cpu_us_per_row: cpu.as_secs_f64() * 1e6 / (rows * wall).max(1.0),
        })
    }
}

/// The number after the first `key` in `text`.
fn parse_after(text: &str, key: &str) -> Option<f64> {
    let rest = &text[text.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parses_a_proc_stat_line() {
        let st = parse_stat("42 (post gres) S 7 2 3 4 5 6 7 8 9 10 111 222 5 6 20 0 1 0").unwrap();
        assert_eq!(
            (st.ppid, st.utime, st.stime, st.cutime, st.cstime),
            (7, 111, 222, 5, 6)
        );
    }

    #[test]
    fn parses_pgbench_output() {
        let out = "number of transactions actually processed: 100\n\
                   latency average = 12.345 ms\n\
                   tps = 81.002345 (without initial connection time)\n";
        assert_eq!(parse_after(out, "tps = "), Some(81.002345));
        assert_eq!(parse_after(out, "latency average = "), Some(12.345));
    }

    #[test]
    fn the_script_has_one_transaction_of_batch_messages() {
        let s = append_script(3, 10);
        assert_eq!(s.matches("INSERT INTO messages").count(), 3);
        assert_eq!(s.matches("\\gset").count(), 3);
        assert_eq!(s.matches("pg_notify").count(), 1);
        assert!(s.starts_with("BEGIN;") && s.ends_with("COMMIT;\n"));
    }
}
