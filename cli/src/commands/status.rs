//! `status --conversation ID open|waiting|resolved`: the agent sets a conversation's status as
//! a signed, encrypted status message in the conversation.

use std::path::Path;

use anyhow::{Result, anyhow};
use serde_json::json;

use sealdesk_protocol::status::ConversationStatus;

use super::{Relay, connect, conv_id};
use crate::print::Output;

/// Sets the status of `conversation` to `status`.
pub(super) async fn set(
    home: &Path,
    relay: &Relay,
    conversation: &str,
    status: &str,
) -> Result<Output> {
    let id = conv_id(conversation)?;
    let status = ConversationStatus::parse(status)
        .map_err(|_| anyhow!("{status:?} is not a status: use open, waiting or resolved"))?;
    let mut c = connect(home, relay, false).await?;
    let id = id.resolve_synced(&mut c).await?;
    c.sync_all().await?;
    let seq = c.set_status(&id, status).await?;
    c.close().await;
    Ok(Output::new(
        format!("status of {id}: {status} (#{seq})"),
        json!({"ok": true, "conversation": id.to_string(), "status": status.name(), "seq": seq}),
    ))
}
