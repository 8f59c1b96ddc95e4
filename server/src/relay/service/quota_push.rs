//! Quota warnings for everyone a stored-bytes quota concerns (PROTOCOL.md §13.12): the
//! `quota_warning` push.
//!
//! When a message or an upload — anyone's, a read receipt or a status message included —
//! first brings a count to the warning level ([`crate::limits::bytes::BYTES_WARN_PERCENT`]),
//! the account's own quota is pushed to the account (all its sessions, on every node), and the
//! org's to the org's master and every agent it certified. The sender of a message also has
//! the warning in its `stored` answer, as before. At each sign-in of an account above a level
//! the warning is pushed again to that session: its own quota, and for an agent, the quota of
//! each org that certified it (found by a walk over the certificates, once per agent
//! sign-in). A master learns of its org's quota from the push when it first crosses, not at
//! sign-in.

use sealdesk_protocol::{
    card::Role,
    keys::SigningPublicKey,
    policy::AgentCertificate,
    wire::{Frame, Push},
};
use tracing::debug;

use super::{
    Caller, Reject, Service, dec,
    keys::{account_bytes_key, org_bytes_key},
    stored_bytes::byte_quota,
};
use crate::{
    limits::bytes::{NearQuota, Scope},
    store::Collection,
};

/// Certificates read per page when an agent's orgs are looked up at sign-in.
const CERTIFICATE_PAGE: usize = 256;

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
        if caller.card.role != Role::Agent {
            return out;
        }
        let orgs = match self.certifying_orgs(caller) {
            Ok(orgs) => orgs,
            Err(e) => {
                debug!("an agent's orgs not looked up at sign-in: {}", e.message);
                return out;
            }
        };
        for org in orgs {
            if let Ok(used) = self.stored_bytes(&org_bytes_key(&org))
                && let Some(near) = self.guard.bytes.near(Scope::Org, used)
            {
                out.push(Frame::Push(Push::QuotaWarning {
                    org: Some(org),
                    quota: byte_quota(near),
                }));
            }
        }
        out
    }

    /// The orgs whose current policy certifies `caller` (an agent) now.
    fn certifying_orgs(&self, caller: &Caller) -> Result<Vec<String>, Reject> {
        let name = caller.card.name.as_bytes();
        let mut orgs = Vec::new();
        let mut start = Vec::new();
        loop {
            let page = self
                .store
                .range_from(Collection::Certificates, &start, CERTIFICATE_PAGE)?;
            let full = page.len() == CERTIFICATE_PAGE;
            for (key, value) in &page {
                // Keys are org ‖ 0 ‖ agent (`keys::certificate_key`).
                let Some(split) = key.iter().position(|b| *b == 0) else {
                    continue;
                };
                if &key[split + 1..] != name {
                    continue;
                }
                let Ok(org) = std::str::from_utf8(&key[..split]) else {
                    continue;
                };
                let Some(policy) = self.policies.get(org, None)? else {
                    continue;
                };
                let cert: AgentCertificate = dec(value, "certificate")?;
                if cert
                    .verify(&policy, self.clock.now())
                    .is_ok_and(|card| card.signing_key == caller.card.signing_key)
                {
                    orgs.push(org.to_owned());
                }
            }
            match page.last() {
                Some((last, _)) if full => {
                    start = last.clone();
                    start.push(0);
                }
                _ => return Ok(orgs),
            }
        }
    }
}
