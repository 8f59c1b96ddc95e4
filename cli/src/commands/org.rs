//! Org commands (master): `org create` (publish a policy), `org add-agent` (certify an agent,
//! checking its fingerprint), `org show`; and the master's org view behind `conversations`
//! and `consent list` (the org's conversations, metadata only; the consents shared with it).

use std::path::Path;

use anyhow::{Result, bail};
use sealdesk_client::{Client, client::OrgSpec, fmt_time};
use sealdesk_protocol::card::Role;
use serde_json::json;

use super::{Relay, connect};
use crate::args::OrgCmd;
use crate::print::Output;

/// `org create|add-agent|show` (masters; `show` for anyone).
pub(super) async fn org(home: &Path, relay: &Relay, cmd: OrgCmd) -> Result<Output> {
    let mut c = connect(home, relay, false).await?;
    let out = match cmd {
        OrgCmd::Create {
            name,
            trustees,
            trustee_threshold,
            arbiters,
            arbiter_threshold,
            retention_days,
            rotate_messages,
            no_history_handoff,
        } => {
            let spec = OrgSpec {
                name,
                trustees,
                trustee_threshold,
                arbiters,
                arbiter_threshold,
                retention_days,
                rotate_messages,
                no_history_handoff,
            };
            let p = c.create_org(&spec).await?;
            let fp = c.account().fingerprint().to_string();
            Output::new(
                format!(
                    "published {} policy version {}\nmaster fingerprint (give it to customers for --org-fingerprint): {fp}\n\n{}",
                    p.org,
                    p.version,
                    p.summary()
                ),
                json!({"ok": true, "org": p.org, "version": p.version, "org_fingerprint": fp, "summary": p.summary()}),
            )
        }
        OrgCmd::WebKey {
            org,
            name,
            key,
            new_key,
            require,
            retire,
            revoke,
        } => match revoke {
            Some(old) => super::token::revoke_web_key(&mut c, &org, &old).await?,
            None => {
                super::token::web_key(
                    &mut c,
                    &super::token::WebKeyArgs {
                        org: &org,
                        name: &name,
                        key: key.as_deref(),
                        new_key: new_key.as_deref(),
                        require,
                        retire: retire.as_deref(),
                    },
                )
                .await?
            }
        },
        OrgCmd::AddAgent {
            name,
            org,
            fingerprint,
        } => {
            c.account().require(Role::Master, "org add-agent")?;
            let org = match org {
                Some(o) => o,
                None => {
                    let mut own = c.own_orgs()?;
                    match own.len() {
                        1 => own.remove(0),
                        0 => bail!(
                            "this account has not created an org yet; run `sealdesk org create` first"
                        ),
                        _ => bail!(
                            "this master runs several orgs ({}); pass --org",
                            own.join(", ")
                        ),
                    }
                }
            };
            let cert = c
                .add_agent_checked(&org, &name, fingerprint.as_deref())
                .await?;
            let fp = sealdesk_protocol::keys::Fingerprint::of(
                &cert.agent.signing_key,
                &cert.agent.agreement_key,
            );
            let check = if fingerprint.is_some() {
                "fingerprint checked".to_owned()
            } else {
                format!(
                    "fingerprint {fp}: compare it with what {name}'s `sealdesk whoami` shows, \
                     or pass --fingerprint next time"
                )
            };
            Output::new(
                format!(
                    "certified {name} as an agent of {org} until {} ({check})",
                    fmt_time(cert.expires_at)
                ),
                json!({"ok": true, "org": org, "agent": name, "expires_at": cert.expires_at,
                       "fingerprint": fp.to_string(), "fingerprint_checked": fingerprint.is_some()}),
            )
        }
        OrgCmd::Recertify {
            name,
            card,
            org,
            fingerprint,
        } => {
            let org = match org {
                Some(o) => o,
                None => only_org(&c)?,
            };
            super::recover::recertify(&mut c, &org, &name, &card, fingerprint.as_deref()).await?
        }
        OrgCmd::Show { org } => {
            let p = c.latest_policy(&org).await?;
            let master = p.master.clone().verify()?;
            let pin = c.account().org_pin(&org)?;
            let mut text = format!(
                "{} (policy version {}, master {} fingerprint {}, pinned: {})\n{}\n",
                p.org,
                p.version,
                master.name,
                master.fingerprint(),
                pin.map(|p| format!("{:?}", p.source).to_lowercase())
                    .unwrap_or_else(|| "no".into()),
                p.summary()
            );
            let mut parties = Vec::new();
            for (label, cards) in [("trustee", &p.trustees), ("arbiter", &p.arbiters)] {
                for card in cards.iter() {
                    let fp = card.clone().verify()?.fingerprint().to_string();
                    text.push_str(&format!("  {label} {} {fp}\n", card.name));
                    parties.push(json!({"role": label, "name": card.name, "fingerprint": fp}));
                }
            }
            text.push_str(&format!(
                "  trustee threshold {} of {}, arbiter threshold {} of {}, rotate after {} messages, retention {} days, hand-off {}",
                p.trustee_threshold,
                p.trustees.len(),
                p.arbiter_threshold,
                p.arbiters.len(),
                p.rotate_after_messages,
                p.retention_secs / 86_400,
                if p.history_handoff { "on" } else { "off" }
            ));
            Output::new(
                text,
                json!({
                    "org": p.org, "version": p.version, "master": master.name,
                    "org_fingerprint": master.fingerprint().to_string(), "summary": p.summary(),
                    "parties": parties, "trustee_threshold": p.trustee_threshold,
                    "arbiter_threshold": p.arbiter_threshold,
                    "rotate_after_messages": p.rotate_after_messages,
                    "retention_days": p.retention_secs / 86_400, "history_handoff": p.history_handoff,
                }),
            )
        }
    };
    c.close().await;
    Ok(out)
}

/// `conversations` for a master: the org's conversations, metadata only (customer, agent,
/// status, times, consents shared, dispute tickets), so a consent or conversation id to
/// unlock is found here.
pub(super) async fn org_conversations(c: &mut Client) -> Result<Output> {
    let all = c.org_conversations().await?;
    let mut text = String::new();
    let mut rows = Vec::new();
    for v in &all {
        let i = &v.info;
        text.push_str(&format!(
            "{}  {}  customer {}  agent {}  {}  opened {}  last activity {}  {}  {}\n",
            i.conversation,
            v.org,
            i.customer,
            i.agent,
            v.status(),
            fmt_time(i.created_at),
            fmt_time(i.last_activity),
            crate::print::counted(i.consents.len() as u64, "consent", "consents"),
            crate::print::counted(i.tickets.len() as u64, "ticket", "tickets"),
        ));
        rows.push(json!({
            "conversation": i.conversation.to_string(), "org": v.org, "customer": i.customer,
            "agent": i.agent, "status": v.status(), "created_at": i.created_at,
            "last_activity": i.last_activity, "last_seq": i.last_seq,
            "consents": i.consents.iter().map(|t| t.id.to_string()).collect::<Vec<_>>(),
            "tickets": i.tickets.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "legal_hold": i.legal_hold,
        }));
    }
    if all.is_empty() {
        text.push_str("no conversations in your org yet");
    } else {
        text.push_str(
            "(metadata only: unlock a transcript with `sealdesk transcript unlock` and a consent \
             from `sealdesk consent list`)",
        );
    }
    Ok(Output::new(
        text.trim_end().to_owned(),
        json!({"conversations": rows, "org_view": true}),
    ))
}

/// `consent list` for a master: the consents customers shared with the business, each
/// checked (signed by the customer, for this master), with its conversation.
pub(super) async fn shared_consents(c: &mut Client) -> Result<Output> {
    let all = c.shared_consents().await?;
    let now = sealdesk_client::now();
    let mut text = String::new();
    let mut rows = Vec::new();
    for (org, t) in &all {
        let state = if t.expires_at <= now {
            "expired"
        } else {
            "shared"
        };
        text.push_str(&format!(
            "{} {} conversation {} epochs {} {:?} until {} [{state}] {}\n",
            t.id,
            org,
            t.conversation,
            t.epochs,
            t.scope,
            fmt_time(t.expires_at),
            t.purpose
        ));
        rows.push(json!({
            "consent": t.id.to_string(), "org": org, "conversation": t.conversation.to_string(),
            "state": state, "purpose": t.purpose, "expires_at": t.expires_at,
        }));
    }
    if all.is_empty() {
        text.push_str("no consents shared with your org");
    }
    Ok(Output::new(
        text.trim_end().to_owned(),
        json!({"consents": rows, "shared_with_org": true}),
    ))
}

/// The one org this master runs (for commands whose `--org` may be left out).
fn only_org(c: &Client) -> Result<String> {
    let mut own = c.own_orgs()?;
    match own.len() {
        1 => Ok(own.remove(0)),
        0 => bail!("this account has not created an org yet; run `sealdesk org create` first"),
        _ => bail!(
            "this master runs several orgs ({}); pass --org",
            own.join(", ")
        ),
    }
}
