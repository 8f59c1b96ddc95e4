//! The policy a release entry is judged under: the one in force for that release, not the
//! org's latest. Trustees release the epochs of a request only under the policy the request
//! names, and only if every released epoch was sealed under that same policy (`decide`:
//! `WrongPolicy`, `EpochUnderOtherPolicy`): a release's policy is therefore the policy of the
//! epochs it opens, as their verified records say. A trustee that a later policy removed still
//! counts for the releases it made before; a key that a later policy adds does not count for a
//! release of epochs sealed before it was a trustee (it holds no share of them anyway).
//!
//! A reader that holds none of the released epochs' records (the master's and the trustees'
//! `audit`, which read the log only) falls back to the org's latest policy.

use sealdesk_protocol::{
    audit::{AllowedSigners, AuditEntry, AuditEvent},
    policy::VerifiedPolicy,
};

use crate::account::EpochStatus;
use crate::client::Client;
use crate::error::Result;
use crate::reply::is_transient;

/// Where the policy of a release came from ([`Client::release_policy`]).
#[derive(Clone, Debug)]
pub enum ReleasePolicy {
    /// Not a release entry.
    NotARelease,
    /// The policy of the released epochs' verified records.
    OfTheEpochs(VerifiedPolicy),
    /// This account holds none of the released epochs' records: the org's latest policy.
    Latest(VerifiedPolicy),
    /// No policy can judge it: the released epochs this account holds name different policy
    /// versions (no trustee releases such a request), or the policy does not verify.
    None,
}

impl ReleasePolicy {
    /// The policy, if there is one.
    #[must_use]
    pub fn policy(&self) -> Option<&VerifiedPolicy> {
        match self {
            Self::OfTheEpochs(p) | Self::Latest(p) => Some(p),
            Self::NotARelease | Self::None => None,
        }
    }

    /// `allowed`, with the trustees of this release's policy as the only keys that may sign
    /// a release (none if there is no policy). Other kinds keep theirs.
    #[must_use]
    pub fn signers(&self, allowed: &AllowedSigners) -> AllowedSigners {
        let mut out = allowed.clone();
        if !matches!(self, Self::NotARelease) {
            out.trustees = self
                .policy()
                .map(|p| p.trustees.iter().map(|c| c.signing_key).collect())
                .unwrap_or_default();
        }
        out
    }
}

impl Client {
    /// The policy release entry `entry` is judged under (see the module documentation).
    ///
    /// # Errors
    /// Transport and storage errors only: a policy that cannot be had or does not verify is
    /// [`ReleasePolicy::None`].
    pub async fn release_policy(&mut self, entry: &AuditEntry) -> Result<ReleasePolicy> {
        let AuditEvent::Release {
            org,
            conversation,
            epochs,
            ..
        } = &entry.event
        else {
            return Ok(ReleasePolicy::NotARelease);
        };
        let mut versions = Vec::new();
        if self.account.conversation(conversation)?.is_some() {
            for e in epochs.iter() {
                if let Some(st) = self.account.epoch(conversation, e)?
                    && !matches!(st.status, EpochStatus::Refused(_))
                    && st.record.org == *org
                    && !versions.contains(&st.record.policy_version)
                {
                    versions.push(st.record.policy_version);
                }
            }
        }
        let fetched = match versions.as_slice() {
            [] => self.latest_policy(org).await.map(ReleasePolicy::Latest),
            [v] => self.policy(org, *v).await.map(ReleasePolicy::OfTheEpochs),
            _ => return Ok(ReleasePolicy::None),
        };
        match fetched {
            Ok(p) => Ok(p),
            Err(e) if is_transient(&e) => Err(e),
            Err(_) => Ok(ReleasePolicy::None),
        }
    }
}
