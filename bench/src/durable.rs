//! The writers group commit is measured against: each makes every message durable on its
//! own before taking the next, as a relay without group commit would.
//!
//! Both run on the caller's thread for a bounded time and write `payload` bytes per message
//! into a directory the caller chooses (the relay's data directory's file system, so the disk
//! is the same).

use std::{
    fs::OpenOptions,
    io::{self, Write as _},
    path::Path,
    time::{Duration, Instant},
};

/// What a writer achieved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriterRun {
    /// Messages made durable.
    pub writes: u64,
    /// Wall time taken.
    pub elapsed: Duration,
}

impl WriterRun {
    /// Durable messages per second.
    pub fn per_second(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Appends `payload` to a file and calls `sync_data` after every append, for `duration` (at
/// most `max_writes` appends).
///
/// # Errors
/// Any I/O error from creating, writing or syncing the file.
pub fn file_sync_per_write(
    dir: &Path,
    payload: &[u8],
    duration: Duration,
    max_writes: u64,
) -> io::Result<WriterRun> {
    let path = dir.join("fsync-per-message.log");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let start = Instant::now();
    let mut writes = 0;
    while writes < max_writes && start.elapsed() < duration {
        file.write_all(payload)?;
        file.sync_data()?;
        writes += 1;
    }
    let elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(WriterRun { writes, elapsed })
}

/// Inserts `payload` under big-endian sequence keys into a sled tree (the relay's engine) and
/// flushes after every insert, for `duration` (at most `max_writes` inserts).
///
/// # Errors
/// A sled error, as `io::Error`.
pub fn sled_flush_per_insert(
    dir: &Path,
    payload: &[u8],
    duration: Duration,
    max_writes: u64,
) -> io::Result<WriterRun> {
    let path = dir.join("sled-flush-per-message");
    let db = sled::open(&path).map_err(io::Error::other)?;
    let tree = db.open_tree("messages").map_err(io::Error::other)?;
    let start = Instant::now();
    let mut writes: u64 = 0;
    while writes < max_writes && start.elapsed() < duration {
        tree.insert(writes.to_be_bytes(), payload)
            .map_err(io::Error::other)?;
        tree.flush().map_err(io::Error::other)?;
        writes += 1;
    }
    let elapsed = start.elapsed();
    drop(tree);
    drop(db);
    std::fs::remove_dir_all(&path)?;
    Ok(WriterRun { writes, elapsed })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn writers_write_and_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let a = file_sync_per_write(dir.path(), &[1; 64], Duration::from_secs(5), 3).unwrap();
        let b = sled_flush_per_insert(dir.path(), &[1; 64], Duration::from_secs(5), 3).unwrap();
        assert_eq!((a.writes, b.writes), (3, 3));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
