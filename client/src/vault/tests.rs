//! The vault's tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use serde::{Deserialize, Serialize};
use std::fs;
use tempfile::TempDir;

const PASS: &str = "correct horse battery staple";

/// A fresh vault in a temporary directory (the vault lives in a subdirectory, so `create`
/// also has to make the directory).
fn new_vault() -> (TempDir, PathBuf, Vault) {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("home");
    let vault = Vault::create(&dir, PASS, KdfParams::TESTING).unwrap();
    (tmp, dir, vault)
}

/// Every regular file under `dir`, recursively.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let file_type = entry.file_type().unwrap();
        if file_type.is_dir() {
            out.extend(all_files(&entry.path()));
        } else if file_type.is_file() {
            out.push(entry.path());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[test]
fn round_trip_put_get_overwrite_delete() {
    let (_tmp, _dir, vault) = new_vault();
    assert!(vault.get("identity").unwrap().is_none());
    vault.put("identity", b"secret key bytes").unwrap();
    assert_eq!(
        vault.get("identity").unwrap().unwrap().as_slice(),
        b"secret key bytes"
    );
    vault.put("identity", b"").unwrap();
    assert_eq!(vault.get("identity").unwrap().unwrap().as_slice(), b"");
    vault.put("conv/3f2a/epoch/2", &[7; 1000]).unwrap();
    assert_eq!(
        vault.get("conv/3f2a/epoch/2").unwrap().unwrap().as_slice(),
        &[7; 1000]
    );
    assert!(vault.delete("identity").unwrap());
    assert!(!vault.delete("identity").unwrap());
    assert!(vault.get("identity").unwrap().is_none());
}

#[test]
fn list_is_sorted_and_filtered_by_prefix() {
    let (_tmp, _dir, vault) = new_vault();
    for name in [
        "pins/bob",
        "conv/b/epoch/1",
        "conv/a/epoch/2",
        "conv/a/epoch/1",
        "conv",
    ] {
        vault.put(name, b"x").unwrap();
    }
    assert_eq!(
        vault.list("").unwrap(),
        [
            "conv",
            "conv/a/epoch/1",
            "conv/a/epoch/2",
            "conv/b/epoch/1",
            "pins/bob"
        ]
    );
    assert_eq!(
        vault.list("conv/a/").unwrap(),
        ["conv/a/epoch/1", "conv/a/epoch/2"]
    );
    assert_eq!(vault.list("pins").unwrap(), ["pins/bob"]);
    assert!(vault.list("nothing").unwrap().is_empty());
    // Logs are not records.
    vault.append("conv/a/inbox", b"m").unwrap();
    assert!(
        !vault
            .list("")
            .unwrap()
            .iter()
            .any(|name| name.contains("inbox"))
    );
}

#[test]
fn json_helpers_round_trip() {
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Cursor {
        conversation: String,
        seq: u64,
    }
    let (_tmp, _dir, vault) = new_vault();
    let cursor = Cursor {
        conversation: "3f2a".into(),
        seq: 42,
    };
    vault.put_json("cursor/3f2a", &cursor).unwrap();
    assert_eq!(
        vault.get_json::<Cursor>("cursor/3f2a").unwrap(),
        Some(cursor)
    );
    assert_eq!(vault.get_json::<Cursor>("cursor/none").unwrap(), None);
}

#[test]
fn json_errors_do_not_quote_the_record() {
    let (_tmp, _dir, vault) = new_vault();
    vault.put("n", b"\"very-private-string\"").unwrap();
    let err = vault.get_json::<u32>("n").unwrap_err();
    assert!(matches!(err, VaultError::Json { .. }), "{err:?}");
    assert!(!err.to_string().contains("very-private"), "{err}");
    assert!(!format!("{err:?}").contains("very-private"), "{err:?}");
}

#[test]
fn reopen_sees_data() {
    let (_tmp, dir, vault) = new_vault();
    vault.put("identity", b"kept").unwrap();
    vault.append("inbox", b"first").unwrap();
    drop(vault);
    let vault = Vault::open(&dir, PASS).unwrap();
    assert_eq!(vault.get("identity").unwrap().unwrap().as_slice(), b"kept");
    assert_eq!(vault.append("inbox", b"second").unwrap(), 1);
    let log = vault.read_log("inbox").unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].as_slice(), b"first");
    assert_eq!(log[1].as_slice(), b"second");
}

#[test]
fn wrong_passphrase_is_reported_clearly() {
    let (_tmp, dir, vault) = new_vault();
    drop(vault);
    let err = Vault::open(&dir, "not the passphrase").unwrap_err();
    assert!(
        matches!(&err, VaultError::WrongPassphrase { dir: d } if *d == dir),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("wrong passphrase for the vault at {}", dir.display())
    );
}

#[test]
fn missing_and_existing_vaults() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("nowhere");
    assert!(!Vault::exists(&dir));
    let err = Vault::open(&dir, PASS).unwrap_err();
    assert!(matches!(err, VaultError::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains("run `sealdesk init` first"),
        "{err}"
    );
    assert!(!dir.exists(), "open must not create anything");

    let vault = Vault::create(&dir, PASS, KdfParams::TESTING).unwrap();
    assert!(Vault::exists(&dir));
    drop(vault);
    let err = Vault::create(&dir, PASS, KdfParams::TESTING).unwrap_err();
    assert!(matches!(err, VaultError::AlreadyExists { .. }), "{err:?}");
    Vault::open(&dir, PASS).unwrap();
}

#[test]
fn create_rejects_bad_inputs() {
    let tmp = TempDir::new().unwrap();
    let err = Vault::create(tmp.path(), "", KdfParams::TESTING).unwrap_err();
    assert!(matches!(err, VaultError::EmptyPassphrase), "{err:?}");
    let params = KdfParams {
        memory_kib: 1,
        iterations: 1,
        parallelism: 1,
    };
    let err = Vault::create(tmp.path(), PASS, params).unwrap_err();
    assert!(
        matches!(err, VaultError::InvalidKdfParams { .. }),
        "{err:?}"
    );
    let params = KdfParams {
        memory_kib: u32::MAX,
        ..KdfParams::TESTING
    };
    let err = Vault::create(tmp.path(), PASS, params).unwrap_err();
    assert!(
        matches!(err, VaultError::InvalidKdfParams { .. }),
        "{err:?}"
    );
    assert!(!Vault::exists(tmp.path()));
    assert_eq!(KdfParams::default(), KdfParams::INTERACTIVE);
}

#[test]
fn record_moved_to_another_name_fails_to_open() {
    let (_tmp, dir, vault) = new_vault();
    vault.put("pins/alice", b"alice's key").unwrap();
    vault.put("pins/mallory", b"mallory's key").unwrap();
    let records = dir.join(RECORDS_DIR).join("pins");
    fs::copy(records.join("mallory.rec"), records.join("alice.rec")).unwrap();
    let err = vault.get("pins/alice").unwrap_err();
    assert!(
        matches!(
            err,
            VaultError::Corrupt {
                reason: AUTH_FAILED,
                ..
            }
        ),
        "{err:?}"
    );
    // Nor does one renamed to a name that had no record.
    fs::rename(records.join("mallory.rec"), records.join("bob.rec")).unwrap();
    let err = vault.get("pins/bob").unwrap_err();
    assert!(matches!(err, VaultError::Corrupt { .. }), "{err:?}");
}

#[test]
fn flipped_byte_is_corrupt() {
    let (_tmp, dir, vault) = new_vault();
    vault.put("identity", b"0123456789abcdef").unwrap();
    let path = dir.join(RECORDS_DIR).join("identity.rec");
    let original = fs::read(&path).unwrap();
    // Every byte after the version byte is covered by the tag.
    for i in 1..original.len() {
        let mut bytes = original.clone();
        bytes[i] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let err = vault.get("identity").unwrap_err();
        assert!(
            matches!(err, VaultError::Corrupt { .. }),
            "byte {i}: {err:?}"
        );
    }
    let mut bytes = original.clone();
    bytes[0] = 2;
    fs::write(&path, &bytes).unwrap();
    let err = vault.get("identity").unwrap_err();
    assert!(
        matches!(err, VaultError::UnsupportedVersion { found: 2, .. }),
        "{err:?}"
    );
    fs::write(&path, &original[..10]).unwrap();
    let err = vault.get("identity").unwrap_err();
    assert!(matches!(err, VaultError::Corrupt { .. }), "{err:?}");
    fs::write(&path, &original).unwrap();
    assert_eq!(
        vault.get("identity").unwrap().unwrap().as_slice(),
        b"0123456789abcdef"
    );
}

#[test]
fn header_problems_are_reported() {
    let (_tmp, dir, vault) = new_vault();
    drop(vault);
    let path = dir.join(HEADER_FILE);
    let original = fs::read_to_string(&path).unwrap();

    let newer = original.replace("\"version\": 1", "\"version\": 2");
    assert_ne!(newer, original);
    fs::write(&path, newer).unwrap();
    let err = Vault::open(&dir, PASS).unwrap_err();
    assert!(
        matches!(err, VaultError::UnsupportedVersion { found: 2, .. }),
        "{err:?}"
    );

    fs::write(&path, "{ not json").unwrap();
    let err = Vault::open(&dir, PASS).unwrap_err();
    assert!(matches!(err, VaultError::Corrupt { .. }), "{err:?}");

    // Lowering the cost in the header changes the key, so the check catches it.
    let cheaper = original.replace("\"memory_kib\": 1024", "\"memory_kib\": 512");
    assert_ne!(cheaper, original);
    fs::write(&path, cheaper).unwrap();
    let err = Vault::open(&dir, PASS).unwrap_err();
    assert!(matches!(err, VaultError::WrongPassphrase { .. }), "{err:?}");

    let huge = original.replace("\"memory_kib\": 1024", "\"memory_kib\": 4000000000");
    fs::write(&path, huge).unwrap();
    let err = Vault::open(&dir, PASS).unwrap_err();
    assert!(matches!(err, VaultError::Corrupt { .. }), "{err:?}");

    fs::write(&path, original).unwrap();
    Vault::open(&dir, PASS).unwrap();
}

#[test]
fn no_plaintext_or_passphrase_on_disk() {
    let (_tmp, dir, vault) = new_vault();
    let marker = b"MARKER-7f3c9b1e-plaintext-that-must-never-hit-the-disk";
    vault.put("identity", marker).unwrap();
    vault.put("conv/3f2a/epoch/2", marker).unwrap();
    vault
        .put_json("json", &String::from_utf8_lossy(marker))
        .unwrap();
    vault.append("conv/3f2a/inbox", marker).unwrap();
    vault.append("conv/3f2a/inbox", marker).unwrap();
    let files = all_files(&dir);
    assert!(files.len() >= 6, "{files:?}");
    for file in files {
        let bytes = fs::read(&file).unwrap();
        assert!(!contains(&bytes, marker), "plaintext in {}", file.display());
        assert!(
            !contains(&bytes, &marker[..16]),
            "plaintext in {}",
            file.display()
        );
        assert!(
            !contains(&bytes, PASS.as_bytes()),
            "passphrase in {}",
            file.display()
        );
    }
}

#[cfg(unix)]
#[test]
fn permissions_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let (_tmp, dir, vault) = new_vault();
    vault.put("conv/3f2a/epoch/2", b"x").unwrap();
    vault.append("logs/inbox", b"x").unwrap();
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(
        mode(&dir.join(RECORDS_DIR).join("conv").join("3f2a")),
        0o700
    );
    for file in all_files(&dir) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[test]
fn invalid_names_are_rejected() {
    let (_tmp, _dir, vault) = new_vault();
    let long = "a".repeat(MAX_NAME_LEN + 1);
    for name in [
        "",
        "/identity",
        "identity/",
        "a//b",
        "..",
        "a/../b",
        "a..b",
        ".hidden",
        "a/.b",
        "a/./b",
        "x.rec",
        "x.log/y",
        "with space",
        "tab\t",
        "nul\0",
        "ümlaut",
        "back\\slash",
        long.as_str(),
    ] {
        let err = vault.put(name, b"x").unwrap_err();
        assert!(
            matches!(err, VaultError::InvalidName { .. }),
            "{name:?}: {err:?}"
        );
        assert!(
            matches!(vault.get(name), Err(VaultError::InvalidName { .. })),
            "{name:?}"
        );
        assert!(matches!(
            vault.delete(name),
            Err(VaultError::InvalidName { .. })
        ));
        assert!(matches!(
            vault.append(name, b"x"),
            Err(VaultError::InvalidName { .. })
        ));
        assert!(matches!(
            vault.read_log(name),
            Err(VaultError::InvalidName { .. })
        ));
    }
    for name in [
        "a",
        "A-z_0.9",
        "conv/3f2a/epoch/2",
        "x.recx",
        &"b".repeat(MAX_NAME_LEN),
    ] {
        vault.put(name, b"ok").unwrap();
        assert_eq!(
            vault.get(name).unwrap().unwrap().as_slice(),
            b"ok",
            "{name}"
        );
    }
}

#[test]
fn too_large_values_are_rejected() {
    let (_tmp, _dir, vault) = new_vault();
    let big = vec![0; MAX_VALUE_LEN + 1];
    assert!(matches!(
        vault.put("big", &big),
        Err(VaultError::TooLarge { .. })
    ));
    assert!(matches!(
        vault.append("big", &big),
        Err(VaultError::TooLarge { .. })
    ));
}

#[test]
fn log_with_torn_tail_keeps_complete_records() {
    let (_tmp, dir, vault) = new_vault();
    assert!(vault.read_log("conv/3f2a/inbox").unwrap().is_empty());
    for (i, record) in [b"one".as_slice(), b"two", b"three"]
        .into_iter()
        .enumerate()
    {
        assert_eq!(vault.append("conv/3f2a/inbox", record).unwrap(), i as u64);
    }
    drop(vault);
    let path = dir
        .join(LOGS_DIR)
        .join("conv")
        .join("3f2a")
        .join("inbox.log");
    let full = fs::read(&path).unwrap();

    // Cut the last frame short, as a crash in the middle of a write would.
    fs::write(&path, &full[..full.len() - 3]).unwrap();
    let vault = Vault::open(&dir, PASS).unwrap();
    let log = vault.read_log("conv/3f2a/inbox").unwrap();
    assert_eq!(
        log.iter().map(|r| r.as_slice()).collect::<Vec<_>>(),
        [b"one", b"two"]
    );
    // The next append truncates the torn frame and takes its place.
    assert_eq!(vault.append("conv/3f2a/inbox", b"four").unwrap(), 2);
    let log = vault.read_log("conv/3f2a/inbox").unwrap();
    let log: Vec<&[u8]> = log.iter().map(|r| r.as_slice()).collect();
    assert_eq!(log, [b"one".as_slice(), b"two", b"four"]);
    drop(vault);

    // A torn length prefix, and a zero-filled tail, are torn too.
    let mut bytes = fs::read(&path).unwrap();
    let complete = bytes.len();
    bytes.extend_from_slice(&[0, 0]);
    fs::write(&path, &bytes).unwrap();
    let vault = Vault::open(&dir, PASS).unwrap();
    assert_eq!(vault.read_log("conv/3f2a/inbox").unwrap().len(), 3);
    bytes.truncate(complete);
    bytes.extend_from_slice(&[0; 64]);
    fs::write(&path, &bytes).unwrap();
    assert_eq!(vault.read_log("conv/3f2a/inbox").unwrap().len(), 3);
    assert_eq!(vault.append("conv/3f2a/inbox", b"five").unwrap(), 3);
    assert_eq!(vault.read_log("conv/3f2a/inbox").unwrap().len(), 4);
}

#[test]
fn damaged_or_reordered_log_frames_are_corrupt() {
    let (_tmp, dir, vault) = new_vault();
    for record in [b"aaaa", b"bbbb", b"cccc"] {
        vault.append("inbox", record).unwrap();
    }
    let path = dir.join(LOGS_DIR).join("inbox.log");
    let original = fs::read(&path).unwrap();
    let frame = original.len() / 3;

    // A flipped byte in a frame before the end.
    let mut bytes = original.clone();
    bytes[frame / 2] ^= 0x80;
    fs::write(&path, &bytes).unwrap();
    let err = vault.read_log("inbox").unwrap_err();
    assert!(matches!(err, VaultError::Corrupt { .. }), "{err:?}");

    // Two frames swapped: each is bound to its index.
    let mut bytes = original[frame..2 * frame].to_vec();
    bytes.extend_from_slice(&original[..frame]);
    bytes.extend_from_slice(&original[2 * frame..]);
    fs::write(&path, &bytes).unwrap();
    let err = vault.read_log("inbox").unwrap_err();
    assert!(matches!(err, VaultError::Corrupt { .. }), "{err:?}");

    // A log copied under another name does not open.
    fs::write(&path, &original).unwrap();
    fs::copy(&path, dir.join(LOGS_DIR).join("other.log")).unwrap();
    let err = vault.read_log("other").unwrap_err();
    assert!(matches!(err, VaultError::Corrupt { .. }), "{err:?}");
    assert_eq!(vault.read_log("inbox").unwrap().len(), 3);
}

#[test]
fn two_opens_share_the_vault_and_their_appends_interleave() {
    let (_tmp, dir, first) = new_vault();
    let second = Vault::open(&dir, PASS).unwrap();
    // Each learns the log's end, then the other appends behind its back.
    assert_eq!(first.append("inbox", b"a").unwrap(), 0);
    assert_eq!(second.append("inbox", b"b").unwrap(), 1);
    assert_eq!(first.append("inbox", b"c").unwrap(), 2);
    assert_eq!(second.append("inbox", b"d").unwrap(), 3);
    let read: Vec<Vec<u8>> = first
        .read_log("inbox")
        .unwrap()
        .into_iter()
        .map(|r| r.to_vec())
        .collect();
    assert_eq!(read, [b"a", b"b", b"c", b"d"].map(|b| b.to_vec()));
    second.put("r", b"from the second").unwrap();
    assert_eq!(
        first.get("r").unwrap().unwrap().as_slice(),
        b"from the second"
    );
}

#[test]
fn a_write_waits_for_the_lock_and_says_so_when_it_is_kept() {
    let (_tmp, dir, vault) = new_vault();
    let held = acquire_lock(&dir).unwrap();
    let err = vault.put("r", b"x").unwrap_err();
    assert!(matches!(&err, VaultError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("in use by another sealdesk process"),
        "{err}"
    );
    drop(held);
    vault.put("r", b"x").unwrap();
    // A read-modify-write under the lock.
    let lock = vault.lock().unwrap();
    let old = vault.get("r").unwrap().unwrap();
    lock.put("r", &[old.as_slice(), b"y"].concat()).unwrap();
    drop(lock);
    assert_eq!(vault.get("r").unwrap().unwrap().as_slice(), b"xy");
}

#[test]
fn debug_shows_only_the_path() {
    let (_tmp, dir, vault) = new_vault();
    let header = fs::read(dir.join(HEADER_FILE)).unwrap();
    let (params, salt, _, _) = parse_header(&dir, &header).unwrap();
    let key = VaultKey::derive(PASS, &salt, params.validate().unwrap()).unwrap();
    let debug = format!("{vault:?}");
    assert_eq!(debug, format!("Vault {{ dir: {dir:?}, .. }}"));
    assert!(!debug.contains(&hex::encode(key.bytes)), "{debug}");
    assert!(!debug.contains(&format!("{:?}", key.bytes)), "{debug}");
    assert!(!debug.contains(PASS), "{debug}");
}

#[test]
fn vault_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Vault>();
}
