//! The vault's cache of verified attachment files, bounded in size.
//!
//! A transcript export keeps each file it fetched and checked in the vault
//! (`files/SHA256`, encrypted like every record) so the next export need not fetch it again.
//! The cache holds at most a configured number of bytes ([`FILE_CACHE_DEFAULT`] unless
//! `Client::set_file_cache_limit` says otherwise; 0 keeps nothing): when a new file would go
//! past it, the least recently used files are removed first. A record of which file was used
//! when (the record `file-cache`) orders them; files found in the vault but not in
//! that record (kept before it existed) count as the oldest. Everything here is best effort: a
//! failure only costs a fetch next time.
//!
//! Several processes of one account may use the cache at once (two exports, an export next to
//! a `chat` saving a file). Each update of the record — read, change, write back, with the
//! files it adds or evicts — runs under the vault's write lock ([`Vault::lock`]), so one
//! process's update never overwrites another's: no use is lost from the order, and an
//! eviction never removes a file another process is adding.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::store::name;
use crate::vault::{MAX_VALUE_LEN, Vault, VaultError, VaultLock};

/// The cache's default bound: 256 MiB of files.
pub const FILE_CACHE_DEFAULT: u64 = 256 * 1024 * 1024;

/// Which cached file was used when, and how large each is.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    /// The next use's number (a counter, not a clock: uses are ordered, never timed).
    next: u64,
    /// Per file (its SHA-256 in hex): its size and its last use.
    files: BTreeMap<String, Entry>,
}

/// One cached file.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Entry {
    /// Its size in bytes.
    size: u64,
    /// The number of its last use (higher is more recent).
    used: u64,
}

impl Index {
    fn load(vault: &Vault) -> Result<Self, VaultError> {
        Ok(vault.get_json(name::FILE_CACHE)?.unwrap_or_default())
    }

    /// Writes the record back, under the lock it was read under.
    fn save(&self, lock: &VaultLock<'_>) -> Result<(), VaultError> {
        lock.put_json(name::FILE_CACHE, self)
    }

    /// Marks `sha256` used now.
    fn touch(&mut self, sha256: &str, size: u64) {
        let used = self.next;
        self.next = self.next.saturating_add(1);
        self.files.insert(sha256.to_owned(), Entry { size, used });
    }

    /// Adds the files the vault holds that this record does not name, as the oldest.
    fn adopt(&mut self, vault: &Vault) -> Result<(), VaultError> {
        let prefix = name::attachment_file("");
        for record in vault.list(&prefix)? {
            let sha = record[prefix.len()..].to_owned();
            if self.files.contains_key(&sha) {
                continue;
            }
            if let Some(bytes) = vault.get(&record)? {
                let size = bytes.len() as u64;
                self.files.insert(sha, Entry { size, used: 0 });
            }
        }
        Ok(())
    }

    fn total(&self) -> u64 {
        self.files
            .values()
            .map(|e| e.size)
            .fold(0, u64::saturating_add)
    }
}

/// The cached file with this SHA-256 (hex), marked as just used; `None` if it is not cached.
/// A cache over `limit` (lowered since) is brought back within it, least recently used first.
///
/// # Errors
/// The vault's errors reading the file.
pub(crate) fn get(
    vault: &Vault,
    sha256: &str,
    limit: u64,
) -> Result<Option<Zeroizing<Vec<u8>>>, VaultError> {
    let got = vault.get(&name::attachment_file(sha256))?;
    // Only the order of later evictions depends on this: a failure is ignored.
    if let Ok(lock) = vault.lock()
        && let Ok(mut index) = Index::load(vault)
    {
        #[cfg(test)]
        tests::index_loaded();
        match &got {
            Some(bytes) => index.touch(sha256, bytes.len() as u64),
            None => {
                index.files.remove(sha256);
            }
        }
        evict(&lock, &mut index, limit);
        let _ = index.save(&lock);
    }
    Ok(got)
}

/// Keeps `bytes` (already checked against their SHA-256, `sha256` in hex) in the cache, then
/// removes the least recently used files until the cache holds at most `limit` bytes. A file
/// larger than `limit` (or than one record) is not kept. Best effort: nothing is returned.
pub(crate) fn put(vault: &Vault, sha256: &str, bytes: &[u8], limit: u64) {
    let size = bytes.len() as u64;
    if size > limit || bytes.len() > MAX_VALUE_LEN {
        return;
    }
    // The file is written under the same lock as the record, so that another process's
    // eviction cannot see it before it is in the record (as one of the oldest) and remove it.
    let Ok(lock) = vault.lock() else {
        return;
    };
    let Ok(mut index) = Index::load(vault) else {
        return;
    };
    #[cfg(test)]
    tests::index_loaded();
    if index.adopt(vault).is_err() {
        return;
    }
    if lock.put(&name::attachment_file(sha256), bytes).is_err() {
        return;
    }
    index.touch(sha256, size);
    evict(&lock, &mut index, limit);
    let _ = index.save(&lock);
}

/// Removes the least recently used files until the index's files total at most `limit`.
fn evict(lock: &VaultLock<'_>, index: &mut Index, limit: u64) {
    let mut by_use: Vec<(u64, String)> = index
        .files
        .iter()
        .map(|(sha, e)| (e.used, sha.clone()))
        .collect();
    by_use.sort();
    for (_, sha) in by_use {
        if index.total() <= limit {
            break;
        }
        if lock.delete(&name::attachment_file(&sha)).is_ok() {
            index.files.remove(&sha);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::sync::mpsc;

    use super::*;
    use crate::vault::{KdfParams, contention};

    const PASS: &str = "a passphrase for tests";

    thread_local! {
        /// Run (once) by this thread's next update of the index, between reading it and
        /// writing it back.
        static LOADED: RefCell<Option<Box<dyn FnOnce()>>> = RefCell::new(None);
    }

    /// This thread's update of the index has read it.
    pub(super) fn index_loaded() {
        if let Some(hook) = LOADED.with(|h| h.borrow_mut().take()) {
            hook();
        }
    }

    fn vault(dir: &std::path::Path) -> Vault {
        Vault::create(dir, PASS, KdfParams::TESTING).unwrap()
    }

    fn index(v: &Vault) -> Vec<(String, u64)> {
        let index = Index::load(v).unwrap();
        index
            .files
            .iter()
            .map(|(k, e)| (k.clone(), e.used))
            .collect()
    }

    /// Runs `first` on this thread with `second` (on another thread, as another process of the
    /// same account would) forced between its read of the index and its write: `second` starts
    /// once `first` has read the index, and `first` goes on once `second` has either finished
    /// or found the vault's lock held (and then waits until `first` is done). No timing: each
    /// step waits for the event it needs.
    fn race(first: impl FnOnce(), second: impl FnOnce() + Send + 'static) {
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (state_tx, state_rx) = mpsc::channel::<&'static str>();
        let (released_tx, released_rx) = mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            go_rx.recv().unwrap();
            let waiting = state_tx.clone();
            contention::on_contention(move || {
                waiting.send("waiting for the lock").unwrap();
                // Holds this thread until the first update is written back.
                let _ = released_rx.recv();
            });
            second();
            // Unread if the first update went on when this one found the lock held.
            let _ = state_tx.send("done");
        });
        LOADED.with(|h| {
            *h.borrow_mut() = Some(Box::new(move || {
                go_tx.send(()).unwrap();
                state_rx.recv().unwrap();
            }))
        });
        first();
        // The other thread either waits for this (the lock held) or has ended.
        let _ = released_tx.send(());
        other.join().unwrap();
    }

    #[test]
    fn two_updates_at_once_lose_neither_use() {
        let dir = tempfile::tempdir().unwrap();
        let one = vault(dir.path());
        let two = Vault::open(dir.path(), PASS).unwrap();
        race(
            || put(&one, "aa", &[1; 10], 100),
            move || put(&two, "bb", &[2; 10], 100),
        );
        // Both files are named, each with its own use.
        let got = index(&one);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_ne!(got[0].1, got[1].1, "{got:?}");

        // A use (get) racing a keep (put): neither update is lost either.
        let two = Vault::open(dir.path(), PASS).unwrap();
        race(
            || assert!(get(&one, "aa", 100).unwrap().is_some()),
            move || put(&two, "cc", &[3; 10], 100),
        );
        let got = index(&one);
        assert_eq!(got.len(), 3, "{got:?}");
        // aa was used last-but-one or last, after bb: bb is the least recently used.
        let oldest = got.iter().min_by_key(|(_, used)| *used).unwrap();
        assert_eq!(oldest.0, "bb", "{got:?}");
    }

    fn cached(v: &Vault) -> Vec<String> {
        let prefix = name::attachment_file("");
        v.list(&prefix)
            .unwrap()
            .into_iter()
            .map(|n| n[prefix.len()..].to_owned())
            .collect()
    }

    #[test]
    fn the_least_recently_used_file_goes_first_when_the_cache_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        put(&v, "aa", &[1; 40], 100);
        put(&v, "bb", &[2; 40], 100);
        // aa is used again: bb is now the least recently used.
        assert_eq!(get(&v, "aa", 100).unwrap().unwrap().as_slice(), &[1; 40]);
        put(&v, "cc", &[3; 40], 100);
        assert_eq!(cached(&v), ["aa", "cc"]);
        assert!(get(&v, "bb", 100).unwrap().is_none());
        // A file larger than the whole cache is not kept, and evicts nothing.
        put(&v, "dd", &[4; 101], 100);
        assert_eq!(cached(&v), ["aa", "cc"]);
        // A limit of 0 keeps nothing.
        put(&v, "ee", &[5; 1], 0);
        assert!(get(&v, "ee", 100).unwrap().is_none());
        // A lower limit takes effect at the next use: the least recently used goes.
        assert!(get(&v, "cc", 50).unwrap().is_some());
        assert_eq!(cached(&v), ["cc"]);
    }

    #[test]
    fn files_kept_before_the_index_existed_count_as_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        v.put(&name::attachment_file("00"), &[9; 60]).unwrap();
        put(&v, "aa", &[1; 60], 100);
        assert_eq!(cached(&v), ["aa"]);
        let index = Index::load(&v).unwrap();
        assert_eq!(index.total(), 60);
    }
}
