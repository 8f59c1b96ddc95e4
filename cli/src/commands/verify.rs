//! `transcript verify`: checks an exported transcript offline, against the anchors the flags
//! give or the pins of `--home`, and prints the verdict. Its exit status: 0 verified, 1 refused
//! (or only unanchored without `--no-anchor`), 2 could not check at all ([`CannotCheck`]).

use std::path::Path;

use anyhow::{Result, anyhow};
use sealdesk_client::transcript::{self as export, Anchors, ExportFile, verify_export};
use serde_json::json;

use super::open_account;
use crate::error::CannotCheck;
use crate::print::Output;

/// `transcript verify`: the anchors come from the flags, else from the pins of `--home`.
pub(super) fn verify_file(
    file: &Path,
    home: Option<&Path>,
    org_fingerprint: &Option<String>,
    log_keys: &[String],
    no_anchor: bool,
) -> Result<Output> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        anyhow!(CannotCheck(format!(
            "could not read {}: {e}",
            file.display()
        )))
    })?;
    let export: ExportFile = match export::parse_export(&text) {
        Ok(e) => e,
        Err(v) => return Ok(verdict_output(file, &v, no_anchor)),
    };
    let mut anchors = Anchors {
        org_fingerprint: org_fingerprint.clone(),
        log_keys: Vec::new(),
    };
    for k in log_keys {
        let key = hex::decode(k.trim())
            .ok()
            .and_then(|b| sealdesk_protocol::keys::SigningPublicKey::try_from(b.as_slice()).ok())
            .ok_or_else(|| {
                anyhow!(CannotCheck(
                    "--log-key takes the relay's log key as 64 hex digits".into()
                ))
            })?;
        anchors.log_keys.push(key);
    }
    if let Some(home) = home
        && (anchors.org_fingerprint.is_none() || anchors.log_keys.is_empty())
    {
        let pins = open_account(home)
            .and_then(|a| a.pins().map_err(anyhow::Error::from))
            .map_err(|e| {
                anyhow!(CannotCheck(format!(
                    "could not read the pins of --home: {e:#}"
                )))
            })?;
        if anchors.org_fingerprint.is_none()
            && let Some(pin) = pins.orgs.get(&export.org)
        {
            anchors.org_fingerprint = Some(pin.master.clone().verify()?.fingerprint().to_string());
        }
        if anchors.log_keys.is_empty() {
            anchors.log_keys = home_log_keys(&pins, &export.log_key);
        }
    }
    let v = verify_export(&export, &anchors);
    Ok(verdict_output(file, &v, no_anchor))
}

/// The log key a home anchors for `export`: the pinned relay whose log key the export names,
/// if that relay is pinned — not every relay the home ever pinned (a tree head signed by any
/// of them would otherwise pass).
fn home_log_keys(
    pins: &sealdesk_client::account::Pins,
    named: &str,
) -> Vec<sealdesk_protocol::keys::SigningPublicKey> {
    let named = hex::decode(named.trim())
        .ok()
        .and_then(|b| sealdesk_protocol::keys::SigningPublicKey::try_from(b.as_slice()).ok());
    pins.relays
        .values()
        .map(|r| r.log_key)
        .filter(|k| Some(*k) == named)
        .take(1)
        .collect()
}

/// Prints a verdict; the output fails (exit status 1) unless the transcript verified, or only
/// the anchors are missing under `--no-anchor` after everything else was checked.
fn verdict_output(file: &Path, v: &export::Verification, no_anchor: bool) -> Output {
    let mut out = format!(
        "verifying {} (master fingerprint {}):\n",
        file.display(),
        v.master_fingerprint
    );
    for line in &v.passed {
        out.push_str(&format!("  ✓ {line}\n"));
    }
    for line in &v.weaker {
        out.push_str(&format!("  ~ weaker: {line}\n"));
    }
    let unanchored_only = v.checked
        && !v.failures.is_empty()
        && v.failures.iter().all(|f| {
            matches!(
                f.reason,
                export::Reason::NoOrgAnchor | export::Reason::NoLogAnchor
            )
        });
    for f in &v.failures {
        out.push_str(&format!("  ✗ [{}] {}\n", f.reason, f.detail));
    }
    let org_unanchored = v.failed(export::Reason::NoOrgAnchor);
    let (verdict, failed) = if v.ok {
        (
            "VERDICT: the transcript verifies against the anchored master and log keys",
            false,
        )
    } else if unanchored_only && org_unanchored {
        (
            "VERDICT: NOTHING WAS VERIFIED AGAINST A TRUSTED KEY: the checks above hold only \
             relative to keys the file itself carries (pass --org-fingerprint and --log-key, or \
             --home with pinned keys)",
            !no_anchor,
        )
    } else if unanchored_only {
        (
            "VERDICT: the transcript verifies against the anchored master, but its release \
             entries were NOT checked against a trusted audit log (pass --log-key, or --home \
             with the relay pinned)",
            !no_anchor,
        )
    } else {
        ("VERDICT: the transcript does NOT verify", true)
    };
    out.push_str(verdict);
    let mut json = serde_json::to_value(v).unwrap_or_else(|_| json!({}));
    if let Some(o) = json.as_object_mut() {
        // `ok` is what the exit status says: true only for a 0 exit.
        o.insert("ok".into(), json!(!failed));
        o.insert("verified".into(), json!(v.ok));
        o.insert("verdict".into(), json!(verdict));
    }
    let mut o = Output::new(out, json);
    o.failed = failed;
    o
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sealdesk_client::account::{Pins, RelayPin};
    use sealdesk_protocol::keys::IdentityKeys;

    #[test]
    fn a_home_anchors_only_the_log_key_of_the_relay_the_export_names() {
        let mut rng = sealdesk_client::rng().unwrap();
        let mut key = || IdentityKeys::generate(&mut rng).signing_public();
        let (a, b) = (key(), key());
        let mut pins = Pins::default();
        for (url, log_key) in [("ws://a", a), ("ws://b", b)] {
            pins.relays.insert(
                url.into(),
                RelayPin {
                    relay_key: key(),
                    log_key,
                },
            );
        }
        assert_eq!(home_log_keys(&pins, &hex::encode(a.as_bytes())), vec![a]);
        assert_eq!(home_log_keys(&pins, &hex::encode(b.as_bytes())), vec![b]);
        // A relay the home never pinned, or no key at all: no log anchor.
        assert!(home_log_keys(&pins, &hex::encode(key().as_bytes())).is_empty());
        assert!(home_log_keys(&pins, "").is_empty());
    }
}
