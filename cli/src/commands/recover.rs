//! `recover`: a customer's account restored on a new machine from the recovery code `init`
//! showed ([`sealdesk_client::recovery`]); and `org recertify`, the master's re-certification of
//! an agent that lost its keys. The code is checked (its checksum catches a typo)
//! before anything is asked of the relay, and nothing is created unless the relay knows this
//! very account.

use std::io::IsTerminal as _;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use sealdesk_client::recovery;
use sealdesk_protocol::recovery::RecoveryCode;
use serde_json::json;

use super::{Relay, passphrase};
use crate::kdf;
use crate::print::Output;

/// The environment variable a recovery code may come from (kept out of the shell history).
const CODE_VAR: &str = "SEALDESK_RECOVERY_CODE";

/// `recover --name NAME [--code CODE]`.
pub(super) async fn recover(
    home: &Path,
    relay: &Relay,
    name: &str,
    code: Option<String>,
) -> Result<Output> {
    let text = match code {
        Some(c) => c,
        None => read_code()?,
    };
    let code = RecoveryCode::parse(&text)
        .map_err(sealdesk_protocol::Error::from)
        .map_err(sealdesk_client::ClientError::from)?;
    let (params, warning) = kdf::for_new_vault();
    let pass = passphrase(true)?;
    let done = recovery::recover(home, &pass, params, name, &code, &relay.url, &relay.tls).await?;
    let fp = done.client.account().fingerprint().to_string();
    let mut warnings: Vec<String> = done
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            sealdesk_client::client::EventKind::Warning { text } => Some(text.clone()),
            _ => None,
        })
        .collect();
    if let Some(w) = warning {
        warnings.push(w.to_owned());
    }
    done.client.close().await;
    let mut out = Output::new(
        format!(
            "recovered customer account {name} in {}\nfingerprint: {fp} (unchanged: your \
             contacts see the same key)\nconversations restored: {}\nyour next message in each \
             conversation opens a new epoch first (this device cannot know what the lost one \
             sent last)",
            home.display(),
            done.conversations
        ),
        json!({
            "name": name,
            "fingerprint": fp,
            "home": home,
            "conversations": done.conversations,
        }),
    );
    for w in warnings {
        out = out.warn(w);
    }
    Ok(out)
}

/// The code from `SEALDESK_RECOVERY_CODE`, else asked for at a terminal without echo.
fn read_code() -> Result<String> {
    if let Ok(c) = std::env::var(CODE_VAR) {
        return Ok(c);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no recovery code: pass --code, set {CODE_VAR}, or run in a terminal to be asked");
    }
    rpassword::prompt_password("Recovery code: ").context("could not read the recovery code")
}

/// `org recertify --name NAME --card FILE`: the agent's new card, from its `whoami --json`.
pub(super) async fn recertify(
    c: &mut sealdesk_client::Client,
    org: &str,
    name: &str,
    file: &Path,
    fingerprint: Option<&str>,
) -> Result<Output> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("could not read {}", file.display()))?;
    let doc: serde_json::Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not the JSON `sealdesk whoami --json` prints",
            file.display()
        )
    })?;
    let Some(card_hex) = doc["card"].as_str() else {
        bail!(
            "{} has no card: give the output of the agent's `sealdesk whoami --json`",
            file.display()
        );
    };
    let bytes = hex::decode(card_hex).context("the card in the file is not hex")?;
    let card: sealdesk_protocol::card::IdentityCard =
        sealdesk_protocol::wire::from_cbor(&bytes, "card")?;
    if card.name != name {
        bail!(
            "the card in {} is {:?}'s, not {name:?}'s",
            file.display(),
            card.name
        );
    }
    let cert = c.recertify_agent(org, card, fingerprint).await?;
    let fp = sealdesk_protocol::keys::Fingerprint::of(
        &cert.agent.signing_key,
        &cert.agent.agreement_key,
    )
    .to_string();
    let check = if fingerprint.is_some() {
        "fingerprint checked".to_owned()
    } else {
        format!("new fingerprint {fp}: compare it with what {name}'s `sealdesk whoami` shows")
    };
    Ok(Output::new(
        format!(
            "re-certified {name} as an agent of {org} for a new key until {} ({check}); the old \
             key no longer acts for {name} (its open sessions were closed), and {name}'s \
             conversations are the new key's now. Customers will see a key change; once they \
             accept it (`sealdesk keys trust {name}`), their next message opens a new epoch the \
             new key reads. Messages from before stay readable to the customer, not to the new \
             key",
            sealdesk_client::fmt_time(cert.expires_at)
        ),
        json!({"ok": true, "org": org, "agent": name, "fingerprint": fp,
               "fingerprint_checked": fingerprint.is_some(), "expires_at": cert.expires_at}),
    ))
}
