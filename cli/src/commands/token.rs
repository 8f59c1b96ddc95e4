//! Open tokens: `org web-key` (the master certifies the business's web server key, and with
//! `--require` makes the org require tokens), `token issue` (the web server's side, offline:
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
    keys::SigningPublicKey,
    open_token::{OpenToken, OpenTokenParams},
    wire,
};

use crate::{args::TokenCmd, error::CliError, print::Output};

/// `org web-key`: certifies the key in `key` (or a new one written to `new_key`).
pub(super) async fn web_key(
    c: &mut Client,
    org: &str,
    name: &str,
    key: Option<&Path>,
    new_key: Option<&Path>,
    require: bool,
) -> Result<Output> {
    let keys = match (key, new_key) {
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
    let cert = c
        .certify_web_key(org, name, keys.signing_public(), WEB_KEY_VALIDITY_SECS)
        .await?;
    let policy = if require {
        Some(c.require_open_tokens(org, true).await?)
    } else {
        None
    };
    let required = policy.as_ref().map(|p| p.version);
    let mut text = format!(
        "certified web key {name} of {org} ({}) until {}",
        cert.key, cert.expires_at
    );
    if let Some(v) = required {
        text.push_str(&format!(
            "\n{org} now requires an open token to open a conversation (policy version {v})"
        ));
    }
    Ok(Output::new(
        text,
        json!({
            "ok": true, "org": org, "name": name, "key": cert.key.to_string(),
            "expires_at": cert.expires_at, "requires_token_from_version": required,
        }),
    ))
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
    let customer = parse_key(&customer)?;
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

/// A signing key given as 64 hex digits.
fn parse_key(s: &str) -> Result<SigningPublicKey> {
    let bad = || anyhow!("{s:?} is not a customer signing key (64 hex digits)");
    let bytes = hex::decode(s.trim()).map_err(|_| bad())?;
    let arr = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| bad())?;
    SigningPublicKey::from_bytes(&arr).map_err(|_| bad())
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
