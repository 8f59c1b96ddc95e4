//! `block --conversation ID [--reason spam|abuse]` (agent or master: close the conversation and
//! block its customer's key for the org), `unblock --customer FP [--org ORG]` (master) and
//! `blocks [--org ORG]` (the blocks in force, with each customer's fingerprint).

use std::path::Path;

use anyhow::{Result, anyhow};
use serde_json::json;

use sealdesk_protocol::block::BlockReason;

use super::{Relay, connect, conv_id};
use crate::print::Output;

/// Closes `conversation` as `reason` and blocks its customer for the org.
pub(super) async fn block(
    home: &Path,
    relay: &Relay,
    conversation: &str,
    reason: &str,
) -> Result<Output> {
    let id = conv_id(conversation)?;
    let reason = BlockReason::parse(reason)
        .map_err(|_| anyhow!("{reason:?} is not a reason: use spam or abuse"))?;
    let mut c = connect(home, relay, false).await?;
    let id = id.resolve_synced(&mut c).await?;
    c.sync_all().await?;
    let b = c.block_conversation(&id, reason).await?;
    c.close().await;
    let closed = if b.status_seq.is_some() {
        "; the conversation is resolved"
    } else {
        ""
    };
    Ok(Output::new(
        format!(
            "closed {id} as {}: {} is blocked for {} (cannot open conversations with it or write \
             in them){closed}",
            reason.name(),
            b.customer,
            b.org
        ),
        json!({
            "ok": true,
            "conversation": id.to_string(),
            "org": b.org,
            "customer": b.customer,
            "reason": reason.name(),
            "status_seq": b.status_seq,
        }),
    ))
}

/// Lifts the block of the customer with fingerprint `customer`.
pub(super) async fn unblock(
    home: &Path,
    relay: &Relay,
    org: Option<&str>,
    customer: &str,
) -> Result<Output> {
    let mut c = connect(home, relay, false).await?;
    let (org, name) = c.unblock(org, customer).await?;
    c.close().await;
    Ok(Output::new(
        format!("{name} is no longer blocked for {org}"),
        json!({"ok": true, "org": org, "customer": name}),
    ))
}

/// Lists the blocks in force for `org`, or for every org this account works for.
pub(super) async fn blocks(home: &Path, relay: &Relay, org: Option<&str>) -> Result<Output> {
    let mut c = connect(home, relay, false).await?;
    let orgs = match org {
        Some(o) => vec![o.to_owned()],
        None => {
            c.sync_all().await?;
            c.block_orgs()?
        }
    };
    let mut lines = Vec::new();
    let mut rows = Vec::new();
    for org in orgs {
        for entry in c.blocks(&org).await? {
            let fingerprint = match c.fetch_card(&entry.customer).await {
                Ok(card) if card.signing_key == entry.block.customer => {
                    card.fingerprint().to_string()
                }
                _ => "(card changed or gone)".to_owned(),
            };
            lines.push(format!(
                "{org}  {}  {fingerprint}  {}  conversation {}",
                entry.customer,
                entry.block.reason.name(),
                entry.block.conversation
            ));
            rows.push(json!({
                "org": org,
                "customer": entry.customer,
                "fingerprint": fingerprint,
                "reason": entry.block.reason.name(),
                "conversation": entry.block.conversation.to_string(),
                "at": entry.at,
            }));
        }
    }
    c.close().await;
    let text = if lines.is_empty() {
        "no customer is blocked".to_owned()
    } else {
        lines.join("\n")
    };
    Ok(Output::new(text, json!({"ok": true, "blocks": rows})))
}
