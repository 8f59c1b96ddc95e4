//! The on-disk format: the header file, record names and their files, and log frames.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::fs::private_mode;
use super::{
    FORMAT_NAME, FORMAT_VERSION, FRAME_LEN_BYTES, KDF_ALGORITHM, KdfParams, LOG_SUFFIX, MAX_DEPTH,
    MAX_NAME_LEN, MAX_SEALED_LEN, RECORD_SUFFIX, SALT_LEN, SEALED_OVERHEAD, VaultError,
};

// ---------------------------------------------------------------------------------------------
// Header.

/// `vault.json`. Holds no secret: the salt and the check value are public by design.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Header {
    pub(super) format: String,
    pub(super) version: u64,
    pub(super) kdf: HeaderKdf,
    /// Hex.
    pub(super) salt: String,
    /// Hex of the sealed `CHECK_PLAINTEXT`.
    pub(super) check: String,
    /// Hex of the records' key sealed under the passphrase's key, once the passphrase was
    /// changed (`passphrase.rs`); absent (and not written) before, when the passphrase's key
    /// is the records' key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) wrapped: Option<String>,
}

/// The header's KDF section.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HeaderKdf {
    pub(super) algorithm: String,
    pub(super) memory_kib: u32,
    pub(super) iterations: u32,
    pub(super) parallelism: u32,
}

/// The part of the header read first, so that a newer format is reported as such rather than
/// as a parse error.
#[derive(Deserialize)]
pub(super) struct HeaderProbe {
    pub(super) format: String,
    pub(super) version: u64,
}

/// What [`parse_header`] reads: parameters, salt, check value, and the wrapped records' key.
pub(super) type ParsedHeader = (KdfParams, [u8; SALT_LEN], Vec<u8>, Option<Vec<u8>>);

/// Parses and checks `vault.json`, returning its parameters, salt, check value and wrapped key.
pub(super) fn parse_header(path: &Path, bytes: &[u8]) -> Result<ParsedHeader, VaultError> {
    let corrupt = |reason| VaultError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let probe: HeaderProbe =
        serde_json::from_slice(bytes).map_err(|_| corrupt("the header is not valid JSON"))?;
    if probe.format != FORMAT_NAME {
        return Err(corrupt("the header is not a sealdesk vault header"));
    }
    if probe.version != u64::from(FORMAT_VERSION) {
        return Err(VaultError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: probe.version,
        });
    }
    let header: Header = serde_json::from_slice(bytes)
        .map_err(|_| corrupt("the header has missing or unexpected fields"))?;
    if header.kdf.algorithm != KDF_ALGORITHM {
        return Err(corrupt(
            "the header names an unknown key-derivation function",
        ));
    }
    let params = KdfParams {
        memory_kib: header.kdf.memory_kib,
        iterations: header.kdf.iterations,
        parallelism: header.kdf.parallelism,
    };
    let salt = hex::decode(&header.salt)
        .ok()
        .and_then(|salt| <[u8; SALT_LEN]>::try_from(salt).ok())
        .ok_or(corrupt("the header's salt is not 16 bytes of hex"))?;
    let check = hex::decode(&header.check).map_err(|_| corrupt("the header's check is not hex"))?;
    let wrapped = header
        .wrapped
        .as_deref()
        .map(hex::decode)
        .transpose()
        .map_err(|_| corrupt("the header's wrapped key is not hex"))?;
    Ok((params, salt, check, wrapped))
}

// ---------------------------------------------------------------------------------------------
// Names.

/// Enforces the naming rules documented on [`Vault::put`].
pub(super) fn validate_name(name: &str) -> Result<(), VaultError> {
    let reject = |reason| {
        Err(VaultError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return reject("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return reject("it is longer than 200 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
    {
        return reject("it may contain only A-Z, a-z, 0-9, '.', '_', '/' and '-'");
    }
    if name.starts_with('/') {
        return reject("it must not start with '/'");
    }
    if name.ends_with('/') {
        return reject("it must not end with '/'");
    }
    if name.contains("//") {
        return reject("it must not contain an empty segment ('//')");
    }
    if name.contains("..") {
        return reject("it must not contain '..'");
    }
    for segment in name.split('/') {
        if segment.starts_with('.') {
            return reject("a segment must not start with '.'");
        }
        if segment.ends_with(RECORD_SUFFIX) || segment.ends_with(LOG_SUFFIX) {
            return reject("a segment must not end in '.rec' or '.log'");
        }
    }
    Ok(())
}

/// Splits a valid name into its directory segments and its file name (last segment + suffix).
pub(super) fn split_name<'a>(name: &'a str, suffix: &str) -> (Vec<&'a str>, String) {
    let mut segments: Vec<&str> = name.split('/').collect();
    let last = segments.pop().unwrap_or_default();
    (segments, format!("{last}{suffix}"))
}

/// Collects the names of records under `dir` (which holds names starting with `relative`) that
/// start with `prefix`.
pub(super) fn list_records(
    dir: &Path,
    relative: &mut String,
    prefix: &str,
    depth: usize,
    names: &mut Vec<String>,
) -> Result<(), VaultError> {
    let io_err = |source: io::Error| VaultError::Io {
        op: "list",
        path: dir.to_path_buf(),
        source: source.into(),
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(io_err(source)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err)?;
        // `file_type` does not follow symlinks; anything but plain files and directories,
        // and any file name that no valid record produces, is skipped.
        let file_type = entry.file_type().map_err(io_err)?;
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if file_name.starts_with('.') {
            continue;
        }
        let base_len = relative.len();
        if file_type.is_dir() && depth < MAX_DEPTH {
            relative.push_str(&file_name);
            relative.push('/');
            // Descend only where a matching name can be.
            if relative.starts_with(prefix) || prefix.starts_with(relative.as_str()) {
                list_records(&entry.path(), relative, prefix, depth + 1, names)?;
            }
        } else if let (true, Some(stem)) =
            (file_type.is_file(), file_name.strip_suffix(RECORD_SUFFIX))
        {
            relative.push_str(stem);
            if relative.starts_with(prefix) && validate_name(relative).is_ok() {
                names.push(relative.clone());
            }
        }
        relative.truncate(base_len);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Logs.

/// Where a log's valid data ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LogEnd {
    /// Length in bytes of the complete frames.
    pub(super) len: u64,
    /// Number of complete frames.
    pub(super) count: u64,
}

/// Splits a log file into `(offset just past the frame, sealed value)` pairs. A tail that is
/// too short for its frame, or is all zero bytes, is torn and left out; an impossible length
/// elsewhere is corruption.
pub(super) fn split_frames(bytes: &[u8]) -> Result<Vec<(u64, &[u8])>, &'static str> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    let mut offset: u64 = 0;
    while !rest.is_empty() {
        let Some((len, body)) = rest.split_first_chunk::<FRAME_LEN_BYTES>() else {
            break;
        };
        let len = usize::try_from(u32::from_be_bytes(*len)).unwrap_or(usize::MAX);
        if !(SEALED_OVERHEAD..=MAX_SEALED_LEN).contains(&len) {
            if rest.iter().all(|&b| b == 0) {
                break;
            }
            return Err("a log frame has an impossible length");
        }
        let Some((sealed, tail)) = body.split_at_checked(len) else {
            break;
        };
        let frame_len = u64::try_from(FRAME_LEN_BYTES + len).unwrap_or(u64::MAX);
        offset = offset.saturating_add(frame_len);
        frames.push((offset, sealed));
        rest = tail;
    }
    Ok(frames)
}

/// [`split_frames`] for the log file at `path`.
pub(super) fn split_log_frames<'a>(
    path: &Path,
    bytes: &'a [u8],
) -> Result<Vec<(u64, &'a [u8])>, VaultError> {
    split_frames(bytes).map_err(|reason| VaultError::Corrupt {
        path: path.to_path_buf(),
        reason,
    })
}

/// Opens (creating if needed) a log file for reading and writing; `true` if it was created.
pub(super) fn open_log_for_append(path: &Path) -> Result<(File, bool), VaultError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    private_mode(&mut options);
    match options.clone().create_new(true).open(path) {
        Ok(file) => Ok((file, true)),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => options
            .open(path)
            .map(|file| (file, false))
            .map_err(|source: io::Error| VaultError::Io {
                op: "open",
                path: path.to_path_buf(),
                source: source.into(),
            }),
        Err(source) => Err(VaultError::Io {
            op: "create",
            path: path.to_path_buf(),
            source: source.into(),
        }),
    }
}
