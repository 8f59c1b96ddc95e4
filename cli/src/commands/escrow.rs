//! The escrow commands of trustees and customers: `trustee serve` (the release daemon) and
//! `consent grant|revoke|list`.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use sealdesk_client::{
    escrow::{TrusteeOutcome, consent::RevokeOutcome, encode_consent},
    fmt_time,
};
use sealdesk_protocol::{card::Role, release::Scope};
use serde_json::json;

use super::{Relay, connect, conv_id, parse_duration, parse_epochs, token_id};
use crate::args::ConsentCmd;
use crate::print::Output;

/// `trustee serve [--once]`: answers release requests, printing each outcome as it goes.
pub(super) async fn trustee(
    home: &Path,
    relay: &Relay,
    once: bool,
    json_out: bool,
) -> Result<Option<Output>> {
    let mut c = connect(home, relay, false).await?;
    let print = |o: &TrusteeOutcome| {
        if json_out {
            println!("{}", json!(o));
        } else {
            println!(
                "request {} (conversation {}): {}",
                o.request, o.conversation, o.outcome
            );
        }
    };
    if once {
        let outcomes = c.trustee_pending().await?;
        for o in &outcomes {
            print(o);
        }
        if outcomes.is_empty() && !json_out {
            println!("no release requests pending");
        }
    } else {
        if !json_out {
            println!(
                "serving release requests as {}; Ctrl-C to stop",
                c.account().name()
            );
        }
        c.trustee_serve(
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
            print,
        )
        .await?;
    }
    c.close().await;
    Ok(None)
}

/// `consent grant|revoke|list` (customers).
pub(super) async fn consent(home: &Path, relay: &Relay, cmd: ConsentCmd) -> Result<Output> {
    let mut c = connect(home, relay, false).await?;
    let out = match cmd {
        ConsentCmd::Grant {
            conversation,
            epochs,
            scope,
            expires,
            purpose,
            out,
        } => {
            let id = conv_id(&conversation)?.resolve_synced(&mut c).await?;
            let scope = match scope.as_str() {
                "full" => Scope::Full,
                "redacted" => Scope::Redacted,
                _ => bail!("--scope is full or redacted"),
            };
            let token = c
                .grant_consent(
                    &id,
                    parse_epochs(&epochs)?,
                    scope,
                    parse_duration(&expires)?,
                    &purpose,
                )
                .await?;
            let encoded = encode_consent(&token)?;
            if let Some(path) = &out {
                std::fs::write(path, &encoded)
                    .with_context(|| format!("could not write {}", path.display()))?;
            }
            Output::new(
                format!(
                    "consent {} granted to the master of {} for {} of {id} ({}, until {})\n\
                     it was shared with the business through the relay; its owner unlocks with\n  \
                     sealdesk --home OWNER_HOME transcript unlock --conversation {id} --consent {}",
                    token.id,
                    token.org,
                    token.epochs,
                    match token.scope {
                        Scope::Full => "the full transcript",
                        Scope::Redacted => "personal data masked",
                    },
                    fmt_time(token.expires_at),
                    token.id
                ),
                json!({"ok": true, "consent": token.id.to_string(), "token": encoded, "expires_at": token.expires_at}),
            )
        }
        ConsentCmd::Revoke { consent } => match c.revoke_consent(&token_id(&consent)?).await? {
            RevokeOutcome::Revoked {
                index,
                witnessed: true,
            } => Output::new(
                format!(
                    "consent {consent} revoked (audit log entry #{index}, confirmed by the org's \
                     trustees); trustees will refuse it"
                ),
                json!({"ok": true, "consent": consent, "state": "revoked", "index": index, "witnessed": true}),
            ),
            RevokeOutcome::Revoked {
                index,
                witnessed: false,
            } => Output::new(
                format!(
                    "consent {consent}: revocation logged (audit log entry #{index}) but NOT YET \
                     CONFIRMED by the org's independent trustees; they usually confirm within a \
                     minute. Run this command again to check (nothing is logged twice); if it \
                     stays unconfirmed, the relay may be hiding it from them"
                ),
                json!({"ok": true, "consent": consent, "state": "revoked", "index": index, "witnessed": false}),
            ),
            RevokeOutcome::AlreadyRevoked { index, witnessed } => Output::new(
                match (index, witnessed) {
                    (Some(i), true) => format!(
                        "consent {consent} was already revoked (audit log entry #{i}, confirmed \
                         by the org's trustees); nothing logged again"
                    ),
                    (Some(i), false) => format!(
                        "consent {consent} was already revoked (audit log entry #{i}) but NOT YET \
                         CONFIRMED by the org's independent trustees; nothing logged again"
                    ),
                    (None, _) => {
                        format!("consent {consent} was already revoked; nothing logged again")
                    }
                },
                json!({"ok": true, "consent": consent, "state": "revoked", "index": index, "already": true, "witnessed": witnessed}),
            ),
            RevokeOutcome::AlreadyUsed { index } => {
                c.close().await;
                bail!(
                    "consent {consent} was already used: a trustee released under it (audit log \
                     entry #{index}); a revocation cannot undo that, so none was logged (the \
                     consent is single-use: it opens nothing more)"
                );
            }
        },
        ConsentCmd::List if c.account().role() == Role::Master => {
            super::org::shared_consents(&mut c).await?
        }
        ConsentCmd::List => {
            let all = c.consent_states().await?;
            let mut text = String::new();
            let mut rows = Vec::new();
            for s in &all {
                let t = &s.record.token;
                let state = s.state.as_str();
                let entry = s
                    .entry
                    .map(|i| format!(" (audit log entry #{i})"))
                    .unwrap_or_default();
                text.push_str(&format!(
                    "{} {} {} {:?} until {} [{state}{entry}] {}\n",
                    t.id,
                    t.conversation,
                    t.epochs,
                    t.scope,
                    fmt_time(t.expires_at),
                    t.purpose
                ));
                rows.push(json!({"consent": t.id.to_string(), "conversation": t.conversation.to_string(), "state": state, "entry": s.entry, "purpose": t.purpose}));
            }
            if all.is_empty() {
                text.push_str("no consents granted");
            }
            Output::new(text.trim_end().to_owned(), json!({"consents": rows}))
        }
    };
    c.close().await;
    Ok(out)
}
