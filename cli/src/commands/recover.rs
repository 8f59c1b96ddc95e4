//! `recover`: a customer's account restored on a new machine from the recovery code `init`
//! showed ([`sealdesk_client::recovery`]). The code is checked (its checksum catches a typo)
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
