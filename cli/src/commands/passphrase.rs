//! `passphrase change`: the home's vault re-keyed under a new passphrase in one atomic step
//! (`Vault::change_passphrase`): interrupted anywhere, the old passphrase or the new one opens
//! it, never neither.

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use super::{MIN_PASSPHRASE_CHARS, open_account, passphrase_with};
use crate::error::CliError;
use crate::kdf;
use crate::print::Output;

/// Where a script gives the new passphrase (the current one is `SEALDESK_PASSPHRASE`).
const NEW_VAR: &str = "SEALDESK_NEW_PASSPHRASE";

/// `passphrase change`.
pub(super) fn change(home: &Path) -> Result<Output> {
    let account = open_account(home)?;
    let new = match std::env::var(NEW_VAR) {
        Ok(p) => {
            if p.chars().count() < MIN_PASSPHRASE_CHARS {
                return Err(CliError::WeakPassphrase {
                    min: MIN_PASSPHRASE_CHARS,
                }
                .into());
            }
            p
        }
        // At a terminal: asked twice, without echo, at least as long as `init` asks.
        Err(_) => passphrase_with_new()?,
    };
    let (params, warning) = kdf::for_new_vault();
    account.vault().change_passphrase(&new, params)?;
    let out = Output::new(
        format!(
            "changed the passphrase of {} ({}); the old one no longer opens it",
            home.display(),
            account.name()
        ),
        json!({"ok": true, "home": home, "name": account.name()}),
    );
    Ok(match warning {
        Some(w) => out.warn(w),
        None => out,
    })
}

/// The new passphrase at a terminal (never from `SEALDESK_PASSPHRASE`, which is the old one).
fn passphrase_with_new() -> Result<String> {
    if std::env::var_os("SEALDESK_PASSPHRASE").is_some() {
        anyhow::bail!(
            "no new passphrase: set {NEW_VAR} (SEALDESK_PASSPHRASE is the current one), or run \
             in a terminal to be asked"
        );
    }
    passphrase_with(true, "New passphrase: ")
}
