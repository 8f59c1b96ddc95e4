//! Open tokens: `org web-key` (the master certifies the business's web server key, with
//! `--require` makes the org require tokens, with `--retire KEY` revokes the key it replaces,
//! and with `--revoke KEY` revokes a key), `token issue` (the web server's side, offline:
//! signs a token for a visitor and a customer key) and reading the token `open --token` takes.
//!
//! A token travels as the hex of its CBOR (PROTOCOL.md §13.14); `--token` takes that text or
//! the name of a file holding it.

use std::path::Path;

use anyhow::{Context as _, Result, anyhow};
use serde_json::json;

use sealdesk_client::{
    Client,
    open_token::{WEB_KEY_VALIDITY_SECS, new_web_key, web_key_from_hex, web_key_to_hex},
};
use sealdesk_protocol::{
    card::{IdentityCard, Role},
    keys::SigningPublicKey,
    open_token::{OpenToken, OpenTokenParams},
    wire,
};

use crate::{args::TokenCmd, error::CliError, print::Output};

/// What `org web-key` certifies (and, with `retire`, which earlier key it revokes after).
pub(super) struct WebKeyArgs<'a> {
    /// The org.
    pub org: &'a str,
    /// The key's name (e.g. the site).
    pub name: &'a str,
    /// The key file to certify.
    pub key: Option<&'a Path>,
    /// Or the file a new key is written to.
    pub new_key: Option<&'a Path>,
    /// Also require open tokens.
    pub require: bool,
    /// An earlier web key (hex) revoked once the new one is certified.
    pub retire: Option<&'a str>,
}

/// `org web-key`: certifies the key in `key` (or a new one written to `new_key`), then
/// revokes the key `retire` names, if any.
pub(super) async fn web_key(c: &mut Client, a: &WebKeyArgs<'_>) -> Result<Output> {
    let (org, name) = (a.org, a.name);
    let retire = a.retire.map(parse_web_key).transpose()?;
    let keys = match (a.key, a.new_key) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("could not read {}", path.display()))?;
            web_key_from_hex(&text)?
        }
        (None, Some(path)) => {
            if path.exists() {
                return Err(CliError::FileExists {
                    path: path.to_owned(),
                }
                .into());
            }
            let keys = new_web_key()?;
            write_secret(path, &web_key_to_hex(&keys))?;
            keys
        }
        (None, None) => return Err(anyhow!("give --key FILE or --new-key FILE")),
    };
    if retire == Some(keys.signing_public()) {
        return Err(anyhow!(
            "--retire names the key being certified; give the earlier key"
        ));
    }
    let cert = c
        .certify_web_key(org, name, keys.signing_public(), WEB_KEY_VALIDITY_SECS)
        .await?;
    let policy = if a.require {
        Some(c.require_open_tokens(org, true).await?)
    } else {
        None
    };
    let required = policy.as_ref().map(|p| p.version);
    let mut text = format!(
        "certified web key {name} of {org} ({}) until {}",
        cert.key,
        sealdesk_client::fmt_time(cert.expires_at)
    );
    if let Some(v) = required {
        text.push_str(&format!(
            "\n{org} now requires an open token to open a conversation (policy version {v})"
        ));
    }
    if let Some(old) = retire {
        c.revoke_web_key(org, old).await.with_context(|| {
            format!(
                "the new web key is certified, but {old} was not revoked; run `sealdesk org \
                 web-key --org {org} --revoke {old}`"
            )
        })?;
        text.push_str(&format!(
            "\nrevoked the earlier web key {old}: tokens it signs are refused from now on"
        ));
    }
    Ok(Output::new(
        text,
        json!({
            "ok": true, "org": org, "name": name, "key": cert.key.to_string(),
            "expires_at": cert.expires_at, "requires_token_from_version": required,
            "retired": retire.map(|k| k.to_string()),
        }),
    ))
}

/// `org web-key --revoke KEY`: revokes a web key of the org.
pub(super) async fn revoke_web_key(c: &mut Client, org: &str, key: &str) -> Result<Output> {
    let key = parse_web_key(key)?;
    let r = c.revoke_web_key(org, key).await?;
    Ok(Output::new(
        format!(
            "revoked web key {key} of {org}: open tokens it signs are refused from now on (a \
             certificate of it issued later would be accepted again)"
        ),
        json!({"ok": true, "org": org, "revoked": key.to_string(), "revoked_at": r.revoked_at}),
    ))
}

/// A web key given as 64 hex digits (as `org web-key` prints it).
fn parse_web_key(s: &str) -> Result<SigningPublicKey> {
    hex_key(s).ok_or_else(|| {
        anyhow!("{s:?} is not a web key (64 hex digits, as `sealdesk org web-key` printed it)")
    })
}

/// Writes `text` to a new file only its owner may read.
fn write_secret(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("could not write {}", path.display()))?;
    Ok(())
}

/// `token issue`.
pub(super) fn token(cmd: TokenCmd) -> Result<Output> {
    let TokenCmd::Issue {
        key,
        org,
        visitor,
        customer,
        valid_secs,
    } = cmd;
    let text = std::fs::read_to_string(&key)
        .with_context(|| format!("could not read {}", key.display()))?;
    let web = web_key_from_hex(&text)?;
    let customer = parse_customer(&customer)?;
    let t = OpenToken::issue(
        &web,
        &OpenTokenParams {
            org: &org,
            visitor: visitor.as_bytes(),
            customer,
            now: sealdesk_client::now(),
            valid_secs,
        },
    )
    .map_err(sealdesk_client::ClientError::from)?;
    let encoded = hex::encode(wire::to_cbor(&t).map_err(sealdesk_client::ClientError::from)?);
    Ok(Output::new(
        encoded.clone(),
        json!({"ok": true, "token": encoded, "org": org, "expires_at": t.expires_at}),
    ))
}

/// A signing key given as 64 hex digits, if it is one.
fn hex_key(s: &str) -> Option<SigningPublicKey> {
    let bytes = hex::decode(s.trim()).ok()?;
    let arr = <[u8; 32]>::try_from(bytes.as_slice()).ok()?;
    SigningPublicKey::from_bytes(&arr).ok()
}

/// The customer `--customer` names: its signing key in hex, a file holding its `sealdesk
/// whoami --json`, or its home directory (opened with its passphrase).
fn parse_customer(s: &str) -> Result<SigningPublicKey> {
    if let Some(k) = hex_key(s) {
        return Ok(k);
    }
    let path = Path::new(s);
    let card = if path.is_dir() {
        super::open_account(path)?.card().card().clone()
    } else if path.is_file() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read {}", path.display()))?;
        let doc: serde_json::Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not the JSON `sealdesk whoami --json` prints",
                path.display()
            )
        })?;
        let card_hex = doc["card"].as_str().ok_or_else(|| {
            anyhow!(
                "{} has no card: give the output of the customer's `sealdesk whoami --json`",
                path.display()
            )
        })?;
        let bytes = hex::decode(card_hex).context("the card in the file is not hex")?;
        wire::from_cbor::<IdentityCard>(&bytes, "card")
            .map_err(sealdesk_client::ClientError::from)?
    } else {
        return Err(anyhow!(
            "{s:?} is not a customer signing key (64 hex digits), a `whoami --json` file or a \
             home directory"
        ));
    };
    if card.role != Role::Customer {
        return Err(anyhow!(
            "{} is not a customer's card (role {})",
            card.name,
            card.role
        ));
    }
    Ok(card.signing_key)
}

/// The token `--token` names: the hex text itself, or a file holding it.
pub(super) fn read(given: &str) -> Result<OpenToken> {
    let text = if Path::new(given).is_file() {
        std::fs::read_to_string(given).with_context(|| format!("could not read {given}"))?
    } else {
        given.to_owned()
    };
    let bytes = hex::decode(text.trim())
        .map_err(|_| anyhow!("the open token is not hex (as `sealdesk token issue` prints it)"))?;
    Ok(wire::from_cbor(&bytes, "open token").map_err(sealdesk_client::ClientError::from)?)
}
