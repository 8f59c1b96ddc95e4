//! Files and directories: private permissions, the lock, bounded reads, atomic writes and
//! directory syncs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::crypto::random_bytes;
use super::{LOCK_FILE, MAX_VALUE_LEN, TEMP_PREFIX, VaultError};

// ---------------------------------------------------------------------------------------------
// Files.

/// Counts the bytes written to it.
pub(super) struct ByteCounter(pub(super) usize);

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A JSON error described by category and position only: serde_json's messages can quote the
/// data ("invalid type: string \"…\""), and errors must never carry record contents.
pub(super) fn describe_json_error(err: &serde_json::Error) -> String {
    let category = match err.classify() {
        serde_json::error::Category::Io => "I/O",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data does not match the expected type",
        serde_json::error::Category::Eof => "unexpected end",
    };
    format!(
        "{category} error at line {}, column {}",
        err.line(),
        err.column()
    )
}

/// The `Json` error for record `name`.
pub(super) fn json_error(name: &str, err: &serde_json::Error) -> VaultError {
    VaultError::Json {
        name: name.to_owned(),
        reason: describe_json_error(err),
    }
}

/// Rejects values over [`MAX_VALUE_LEN`].
pub(super) fn check_value_len(name: &str, len: usize) -> Result<(), VaultError> {
    if len > MAX_VALUE_LEN {
        return Err(VaultError::TooLarge {
            name: name.to_owned(),
            len,
        });
    }
    Ok(())
}

/// How long a write waits for another process's write to finish before it reports
/// [`VaultError::Locked`]: writes hold the lock for one record or frame, so only a process that
/// keeps the lock (a build that held it while open, or one stuck) makes a writer wait this long.
#[cfg(not(test))]
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Shorter in unit tests, which hold the lock on purpose.
#[cfg(test)]
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Takes the exclusive advisory lock on `dir/vault.lock`, waiting up to [`LOCK_WAIT`] for
/// another holder to let go; held until the returned file drops.
pub(super) fn wait_for_lock(dir: &Path) -> Result<File, VaultError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match acquire_lock(dir) {
            Err(VaultError::Locked { .. }) if std::time::Instant::now() < deadline => {
                #[cfg(test)]
                contention::found();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            other => return other,
        }
    }
}

/// Takes the exclusive advisory lock on `dir/vault.lock`, held until the returned file drops.
pub(super) fn acquire_lock(dir: &Path) -> Result<File, VaultError> {
    let path = dir.join(LOCK_FILE);
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    private_mode(&mut options);
    let file = options
        .open(&path)
        .map_err(|source: io::Error| VaultError::Io {
            op: "open",
            path: path.clone(),
            source: source.into(),
        })?;
    // Called through the trait: std's inherent `File::try_lock` needs Rust 1.89, above the
    // workspace's rust-version.
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => Ok(file),
        Err(fs4::TryLockError::WouldBlock) => Err(VaultError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(fs4::TryLockError::Error(source)) => Err(VaultError::Io {
            op: "lock",
            path,
            source: source.into(),
        }),
    }
}

/// Reads `path` if it exists and is at most `max` bytes.
pub(super) fn read_bounded(path: &Path, max: usize) -> Result<Option<Vec<u8>>, VaultError> {
    let io_err = |source: io::Error| VaultError::Io {
        op: "read",
        path: path.to_path_buf(),
        source: source.into(),
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_err(source)),
    };
    let limit = u64::try_from(max).unwrap_or(u64::MAX);
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() > max {
        return Err(VaultError::Corrupt {
            path: path.to_path_buf(),
            reason: "the file is larger than any value the vault writes",
        });
    }
    Ok(Some(bytes))
}

/// Writes `bytes` to `path` (in directory `dir`) atomically: a temporary file in the same
/// directory is written, fsynced and renamed over `path`, then the directory is fsynced.
pub(super) fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{}",
        hex::encode(random_bytes::<8>()?)
    ));
    let result = write_new_file(&temp, bytes)
        .and_then(|()| {
            fs::rename(&temp, path).map_err(|source: io::Error| VaultError::Io {
                op: "rename into place",
                path: path.to_path_buf(),
                source: source.into(),
            })
        })
        .and_then(|()| sync_dir(dir));
    if result.is_err() {
        // Best effort: a leftover temporary file holds only ciphertext and is ignored.
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Creates `path` (which must not exist) with mode 0600, writes `bytes` and fsyncs it.
pub(super) fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    let io_err = |op| {
        move |source: io::Error| VaultError::Io {
            op,
            path: path.to_path_buf(),
            source: source.into(),
        }
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    private_mode(&mut options);
    let mut file = options.open(path).map_err(io_err("create"))?;
    file.write_all(bytes).map_err(io_err("write"))?;
    file.sync_all().map_err(io_err("sync"))
}

/// Makes sure `base/segments[0]/segments[1]/…` exists (`base` must), creating missing
/// directories with mode 0700 and fsyncing each parent that gained an entry. Returns the path.
pub(super) fn ensure_private_dirs(base: &Path, segments: &[&str]) -> Result<PathBuf, VaultError> {
    let mut current = base.to_path_buf();
    for segment in segments {
        let next = current.join(segment);
        match private_dir_builder().create(&next) {
            Ok(()) => sync_dir(&current)?,
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(VaultError::Io {
                    op: "create",
                    path: next,
                    source: source.into(),
                });
            }
        }
        current = next;
    }
    Ok(current)
}

/// Creates `dir` and its missing parents, then sets `dir` itself to mode 0700.
pub(super) fn create_private_dir_all(dir: &Path) -> Result<(), VaultError> {
    let io_err = |op| {
        move |source: io::Error| VaultError::Io {
            op,
            path: dir.to_path_buf(),
            source: source.into(),
        }
    };
    private_dir_builder()
        .recursive(true)
        .create(dir)
        .map_err(io_err("create"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err("set permissions on"))?;
    }
    Ok(())
}

/// A directory builder that creates directories with mode 0700 on unix.
pub(super) fn private_dir_builder() -> fs::DirBuilder {
    #[allow(unused_mut)] // Only unix sets a mode.
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
}

/// Makes files created through `options` mode 0600 on unix.
pub(super) fn private_mode(options: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = options;
}

/// Fsyncs a directory so that entries created, renamed or removed in it survive a crash.
pub(super) fn sync_dir(dir: &Path) -> Result<(), VaultError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|source: io::Error| VaultError::Io {
            op: "sync",
            path: dir.to_path_buf(),
            source: source.into(),
        })?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// A unit test's view of a writer waiting for the lock: a thread may ask to be told when it
/// finds the lock held (`on_contention`), to let the holder go on only once the race it sets up
/// is certain, with no timing involved.
#[cfg(test)]
pub(crate) mod contention {
    use std::cell::RefCell;

    thread_local! {
        static HOOK: RefCell<Option<Box<dyn FnOnce()>>> = RefCell::new(None);
    }

    /// Calls `hook` (once) the next time this thread finds the vault's lock held.
    pub(crate) fn on_contention(hook: impl FnOnce() + 'static) {
        HOOK.with(|h| *h.borrow_mut() = Some(Box::new(hook)));
    }

    /// This thread found the lock held.
    pub(super) fn found() {
        if let Some(hook) = HOOK.with(|h| h.borrow_mut().take()) {
            hook();
        }
    }
}
