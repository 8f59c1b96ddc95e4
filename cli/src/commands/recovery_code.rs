//! `recovery-code`: a new recovery code for the signed-in customer account
//! ([`sealdesk_client::recovery_code`]). The relay keeps the account's keys sealed under it;
//! the code before (the last one made here, or the one `init` showed) stops working. It works
//! for accounts made before recovery codes existed, too.
//!
//! The new code is kept in the vault until the relay confirms it, and shown with every outcome
//! in which it may be the one in force, so the user always holds a code that works: the old
//! one (nothing confirmed, and the relay cannot have stored the new one) or the new one.

use anyhow::{Result, anyhow};
use sealdesk_client::{Client, ClientError, recovery_code::InForce};
use sealdesk_protocol::wire::ErrorCode;
use serde_json::json;

use super::{Relay, open_account};
use crate::print::Output;

/// `recovery-code`.
pub(super) async fn recovery_code(home: &std::path::Path, relay: &Relay) -> Result<Output> {
    let account = open_account(home)?;
    let name = account.name().to_owned();
    // A pending code means an earlier run was interrupted: the relay may hold it already.
    let resumed = account.has_pending_recovery_code()?;
    let code = account.pending_recovery_code()?;
    let text = code.reveal();
    let unconfirmed = |e: ClientError, maybe_sent: bool| {
        let which = if maybe_sent {
            format!(
                "the relay may have stored it before it stopped answering, so either the code \
                 before or this new one works now: {}\nwrite both down; run `sealdesk \
                 recovery-code` again to find out which (it sends this same code again and \
                 says)",
                text.as_str()
            )
        } else {
            "nothing was sent: the code before still works; run `sealdesk recovery-code` \
             again to replace it"
                .to_owned()
        };
        anyhow::Error::new(e).context(format!("the new recovery code is not confirmed: {which}"))
    };
    let mut client = match Client::connect_with(account, &relay.url, &relay.tls).await {
        Ok(c) => c,
        Err(e) => return Err(unconfirmed(e, resumed)),
    };
    if !client.registered() {
        client.close().await;
        return Err(anyhow!(ClientError::NotRegistered));
    }
    let already = if resumed {
        match client.recovery_code_in_force(&code).await {
            Ok(found) => found == InForce::Pending,
            Err(e) => return Err(unconfirmed(e, true)),
        }
    } else {
        false
    };
    if !already && let Err(e) = client.install_recovery_code(&code).await {
        // A refusal stored nothing; a lost connection or an internal error may have.
        let refused = matches!(&e, ClientError::Relay { code, .. } if *code != ErrorCode::Internal);
        let maybe_sent = resumed || !refused;
        client.close().await;
        return Err(unconfirmed(e, maybe_sent));
    }
    client.close().await;
    Ok(Output::new(
        format!(
            "new recovery code for {name}: {}\n  shown only now: write it down and keep it \
             offline. With it, `sealdesk recover --name {name}` restores this account on a new \
             machine; anyone who has it can act as you. The code before no longer works.",
            text.as_str()
        ),
        json!({
            "name": name,
            "recovery_code": text.as_str(),
            "resumed": resumed,
        }),
    ))
}
