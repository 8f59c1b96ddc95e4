//! Dispute commands: `dispute open|close` (master), `dispute list|show|approve|reject`
//! (arbiters; the master lists and shows too).

use std::path::Path;

use anyhow::{Result, anyhow};
use sealdesk_client::{Client, fmt_time, notice::short_key};
use sealdesk_protocol::{
    keys::SigningPublicKey,
    policy::VerifiedPolicy,
    release::{ClosedBecause, Verdict},
    wire::TicketState,
};
use serde_json::json;

use super::{Relay, connect, conv_id, parse_epochs, token_id};
use crate::args::DisputeCmd;
use crate::print::Output;

/// An arbiter by the name the policy gives it, else by a short key.
fn arbiter_name(policy: Option<&VerifiedPolicy>, k: &SigningPublicKey) -> String {
    policy
        .and_then(|p| p.arbiter(k))
        .map_or_else(|| short_key(k), |c| c.name.clone())
}

/// Whether the ticket is closed, in words.
fn status(st: &TicketState) -> String {
    match &st.closed {
        None => "open".to_owned(),
        Some(c) => {
            let why = match &c.because {
                ClosedBecause::Master(r) => format!("by the master: {r}"),
                ClosedBecause::Released => "the release was collected".to_owned(),
                ClosedBecause::Rejected => "rejected by the arbiters".to_owned(),
            };
            format!("closed {} ({why})", fmt_time(c.at))
        }
    }
}

/// A ticket and its decisions, for people; arbiters by name where the policy names them.
fn describe_ticket(st: &TicketState, policy: Option<&VerifiedPolicy>) -> String {
    let t = &st.ticket;
    let approvals = st
        .decisions
        .iter()
        .filter(|d| d.verdict == Verdict::Approve)
        .count();
    let mut s = format!(
        "ticket {}\n  org {} · conversation {} · {}\n  reason: {}\n  opened {} · expires {}\n  \
         {}\n  approvals: {approvals}{}",
        t.id,
        t.org,
        t.conversation,
        t.epochs,
        t.reason,
        fmt_time(t.opened_at),
        fmt_time(t.expires_at),
        status(st),
        policy.map_or_else(String::new, |p| format!(
            " of {} needed",
            p.arbiter_threshold
        )),
    );
    for d in &st.decisions {
        let v = match &d.verdict {
            Verdict::Approve => "approved".to_owned(),
            Verdict::Reject(r) => format!("rejected: {r}"),
        };
        s.push_str(&format!(
            "\n    {} {v} at {}",
            arbiter_name(policy, &d.arbiter),
            fmt_time(d.decided_at)
        ));
    }
    s
}

/// A ticket and its decisions, for `--json`.
fn ticket_json(st: &TicketState, policy: Option<&VerifiedPolicy>) -> serde_json::Value {
    let names = |v: bool| {
        st.decisions
            .iter()
            .filter(|d| (d.verdict == Verdict::Approve) == v)
            .map(|d| arbiter_name(policy, &d.arbiter))
            .collect::<Vec<_>>()
    };
    json!({
        "ticket": st.ticket.id.to_string(), "org": st.ticket.org,
        "conversation": st.ticket.conversation.to_string(), "reason": st.ticket.reason,
        "epochs": [st.ticket.epochs.first, st.ticket.epochs.last],
        "approvals": st.decisions.iter().filter(|d| d.verdict == Verdict::Approve).count(),
        "decisions": st.decisions.len(),
        "approved_by": names(true),
        "rejected_by": names(false),
        "closed": st.closed.as_ref().map(|c| json!({
            "at": c.at,
            "because": match &c.because {
                ClosedBecause::Master(_) => "master",
                ClosedBecause::Released => "released",
                ClosedBecause::Rejected => "rejected",
            },
            "reason": match &c.because { ClosedBecause::Master(r) => Some(r), _ => None },
            "audit_index": c.index,
        })),
    })
}

/// The org's policy, for names (none if it cannot be fetched: keys are shown instead).
async fn policy_of(c: &mut Client, st: &TicketState) -> Option<VerifiedPolicy> {
    c.latest_policy(&st.ticket.org).await.ok()
}

/// A ticket, in text and JSON, with names from its org's policy.
async fn shown(c: &mut Client, head: &str, st: &TicketState) -> Output {
    let policy = policy_of(c, st).await;
    Output::new(
        format!("{head}{}", describe_ticket(st, policy.as_ref())),
        ticket_json(st, policy.as_ref()),
    )
}

/// `dispute open|list|show|approve|reject|close`.
pub(super) async fn dispute(home: &Path, relay: &Relay, cmd: DisputeCmd) -> Result<Output> {
    let mut c = connect(home, relay, false).await?;
    let out = match cmd {
        DisputeCmd::Open {
            conversation,
            reason,
            epochs,
        } => {
            let id = conv_id(&conversation)?.resolve_synced(&mut c).await?;
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
            let mut texts = Vec::new();
            let mut jsons = Vec::new();
            for st in &all {
                let policy = policy_of(&mut c, st).await;
                texts.push(describe_ticket(st, policy.as_ref()));
                jsons.push(ticket_json(st, policy.as_ref()));
            }
            let text = if all.is_empty() {
                "no tickets".to_owned()
            } else {
                texts.join("\n")
            };
            Output::new(text, json!({ "tickets": jsons }))
        }
        DisputeCmd::Show { ticket } => {
            let id = token_id(&ticket)?;
            let st = c
                .tickets()
                .await?
                .into_iter()
                .find(|t| t.ticket.id == id)
                .ok_or_else(|| anyhow!("no ticket {ticket}; `sealdesk dispute list` shows them"))?;
            let policy = policy_of(&mut c, &st).await;
            let signed = policy.as_ref().is_some_and(|p| st.ticket.verify(p).is_ok());
            Output::new(
                format!(
                    "{}\n  master signature: {}",
                    describe_ticket(&st, policy.as_ref()),
                    if signed { "valid" } else { "INVALID" }
                ),
                ticket_json(&st, policy.as_ref()),
            )
        }
        DisputeCmd::Approve { ticket } => {
            let st = c
                .decide_ticket(&token_id(&ticket)?, Verdict::Approve)
                .await?;
            shown(&mut c, "approved\n", &st).await
        }
        DisputeCmd::Reject { ticket, reason } => {
            let st = c
                .decide_ticket(&token_id(&ticket)?, Verdict::Reject(reason))
                .await?;
            shown(&mut c, "rejected\n", &st).await
        }
        DisputeCmd::Close { ticket, reason } => {
            let st = c.close_dispute(&token_id(&ticket)?, &reason).await?;
            shown(
                &mut c,
                "closed: nothing more is released under this ticket, the hold on erasing the \
                 conversation has ended, and the customer has been told\n",
                &st,
            )
            .await
        }
    };
    c.close().await;
    Ok(out)
}
