//! Dispute commands: `dispute open` (master), `dispute list|show|approve|reject` (arbiters).

use std::path::Path;

use anyhow::{Result, anyhow};
use sealdesk_client::fmt_time;
use sealdesk_protocol::{release::Verdict, wire::TicketState};
use serde_json::json;

use super::{Relay, connect, conv_id, parse_epochs, token_id};
use crate::args::DisputeCmd;
use crate::print::Output;

/// A ticket and its decisions, for people.
fn describe_ticket(st: &TicketState) -> String {
    let t = &st.ticket;
    let approvals = st
        .decisions
        .iter()
        .filter(|d| d.verdict == Verdict::Approve)
        .count();
    let mut s = format!(
        "ticket {}\n  org {} · conversation {} · {}\n  reason: {}\n  opened {} · expires {}\n  {} approval(s)",
        t.id,
        t.org,
        t.conversation,
        t.epochs,
        t.reason,
        fmt_time(t.opened_at),
        fmt_time(t.expires_at),
        approvals
    );
    for d in &st.decisions {
        let v = match &d.verdict {
            Verdict::Approve => "approved".to_owned(),
            Verdict::Reject(r) => format!("rejected: {r}"),
        };
        s.push_str(&format!(
            "\n    {} {v} at {}",
            d.arbiter,
            fmt_time(d.decided_at)
        ));
    }
    s
}

/// A ticket and its decision counts, for `--json`.
fn ticket_json(st: &TicketState) -> serde_json::Value {
    json!({
        "ticket": st.ticket.id.to_string(), "org": st.ticket.org,
        "conversation": st.ticket.conversation.to_string(), "reason": st.ticket.reason,
        "epochs": [st.ticket.epochs.first, st.ticket.epochs.last],
        "approvals": st.decisions.iter().filter(|d| d.verdict == Verdict::Approve).count(),
        "decisions": st.decisions.len(),
    })
}

/// `dispute open|list|show|approve|reject`.
pub(super) async fn dispute(home: &Path, relay: &Relay, cmd: DisputeCmd) -> Result<Output> {
    let mut c = connect(home, relay, false).await?;
    let out = match cmd {
        DisputeCmd::Open {
            conversation,
            reason,
            epochs,
        } => {
            let id = conv_id(&conversation)?;
            let t = c.open_dispute(&id, parse_epochs(&epochs)?, &reason).await?;
            Output::new(
                format!(
                    "opened dispute ticket {} for {} of {id}; arbiters have been notified",
                    t.id, t.epochs
                ),
                json!({"ok": true, "ticket": t.id.to_string()}),
            )
        }
        DisputeCmd::List => {
            let all = c.tickets().await?;
            let text = if all.is_empty() {
                "no tickets".to_owned()
            } else {
                all.iter()
                    .map(describe_ticket)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            Output::new(
                text,
                json!({"tickets": all.iter().map(ticket_json).collect::<Vec<_>>()}),
            )
        }
        DisputeCmd::Show { ticket } => {
            let id = token_id(&ticket)?;
            let st = c
                .tickets()
                .await?
                .into_iter()
                .find(|t| t.ticket.id == id)
                .ok_or_else(|| anyhow!("no ticket {ticket}; `sealdesk dispute list` shows them"))?;
            let policy = c.latest_policy(&st.ticket.org).await?;
            let signed = st.ticket.verify(&policy).is_ok();
            Output::new(
                format!(
                    "{}\n  master signature: {}",
                    describe_ticket(&st),
                    if signed { "valid" } else { "INVALID" }
                ),
                ticket_json(&st),
            )
        }
        DisputeCmd::Approve { ticket } => {
            let st = c
                .decide_ticket(&token_id(&ticket)?, Verdict::Approve)
                .await?;
            Output::new(
                format!("approved\n{}", describe_ticket(&st)),
                ticket_json(&st),
            )
        }
        DisputeCmd::Reject { ticket, reason } => {
            let st = c
                .decide_ticket(&token_id(&ticket)?, Verdict::Reject(reason))
                .await?;
            Output::new(
                format!("rejected\n{}", describe_ticket(&st)),
                ticket_json(&st),
            )
        }
    };
    c.close().await;
    Ok(out)
}
