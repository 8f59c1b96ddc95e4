//! Quota warnings for everyone a stored-bytes quota concerns (PROTOCOL.md §13.12): the
//! `quota_warning` push.
//!
//! When a message or an upload — anyone's, a read receipt or a status message included —
//! first brings a count to the warning level ([`crate::limits::bytes::BYTES_WARN_PERCENT`]),
//! the account's own quota is pushed to the account (all its sessions, on every node), and the
//! org's to the org's master and every agent it certified. The sender of a message also has
//! the warning in its `stored` answer, as before. At each sign-in of an account above a level
//! the warning is pushed again to that session: its own quota, and the quota of each org it
//! belongs to — for an agent, each org whose current policy certifies it now; for a master,
//! each org whose current policy names its key. Those orgs are found through the org index
//! (`org_index`: agent name → org, master key → org), so a sign-in reads as many entries as
//! the account has orgs, not every certificate on the relay; each org the index names is
//! checked against its stored certificate or current policy before it is warned of.

use sealdesk_protocol::{
    card::Role,
    keys::SigningPublicKey,
    wire::{Frame, Push},
};
use tracing::debug;

use super::{
    Caller, Reject, Service,
    keys::{account_bytes_key, org_bytes_key},
    stored_bytes::byte_quota,
};
use crate::limits::bytes::{NearQuota, Scope};

impl Service {
    /// Tells the accounts `near` concerns that it reached the warning level: `account` for
    /// its own quota, the master and agents of `org` for the org's.
    pub(super) fn push_quota_warning(
        &self,
        account: &SigningPublicKey,
        org: &str,
        near: NearQuota,
    ) {
        match near.scope {
            Scope::Account => self.push(
                account,
                Push::QuotaWarning {
                    org: None,
                    quota: byte_quota(near),
                },
            ),
            Scope::Org => match self.org_members(org) {
                Ok(members) => {
                    for who in members {
                        self.push(
                            &who,
                            Push::QuotaWarning {
                                org: Some(org.to_owned()),
                                quota: byte_quota(near),
                            },
                        );
                    }
                }
                Err(e) => debug!(org, "quota warning not sent: {}", e.message),
            },
        }
    }

    /// The master of `org` and the agents it certified.
    fn org_members(&self, org: &str) -> Result<Vec<SigningPublicKey>, Reject> {
        let policy = self.policies.current(org)?;
        let mut members = vec![policy.master_key()];
        members.extend(
            self.agents(&policy)?
                .into_iter()
                .map(|(card, _)| card.signing_key),
        );
        Ok(members)
    }

    /// The warnings an account signing in is owed: each quota it is concerned by that stands
    /// at the warning level or above (see the module docs), as frames to send its session.
    pub(crate) fn quota_warnings_at_sign_in(&self, caller: &Caller) -> Vec<Frame> {
        let mut out = Vec::new();
        let me = caller.card.signing_key;
        if let Ok(used) = self.stored_bytes(&account_bytes_key(&me))
            && let Some(near) = self.guard.bytes.near(Scope::Account, used)
        {
            out.push(Frame::Push(Push::QuotaWarning {
                org: None,
                quota: byte_quota(near),
            }));
        }
        // Only an org at the warning level is checked (one count read per org the index
        // names; the certificate or policy is read and verified only for those).
        let near_org = |org: &str| {
            self.stored_bytes(&org_bytes_key(org))
                .ok()
                .and_then(|used| self.guard.bytes.near(Scope::Org, used))
        };
        let orgs = match caller.card.role {
            Role::Agent => self.certifying_orgs(&caller.card, near_org),
            Role::Master => self.mastered_orgs(&caller.card, near_org),
            _ => return out,
        };
        match orgs {
            Ok(orgs) => out.extend(orgs.into_iter().map(|(org, near)| {
                Frame::Push(Push::QuotaWarning {
                    org: Some(org),
                    quota: byte_quota(near),
                })
            })),
            Err(e) => debug!("an account's orgs not looked up at sign-in: {}", e.message),
        }
        out
    }
}
