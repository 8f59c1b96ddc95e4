//! The master's org: creating an org (its policy, trustees and arbiters), certifying agents,
//! listing the orgs this account created, and the org view: its conversations (metadata only)
//! and the consents customers shared with the business.

use sealdesk_protocol::{
    card::{IdentityCard, Role},
    policy::{AgentCertificate, OrgPolicy, PolicyParams, VerifiedPolicy},
    release::ConsentToken,
    signed::Signed as _,
    wire::{ErrorCode, OrgConversation, Request, Response},
};

use super::{AGENT_CERT_VALIDITY_SECS, Client};
use crate::account::PinSource;
use crate::error::{ClientError, Result};
use crate::now;
use crate::reply::{expect_ok, unexpected};

/// What the master chooses when creating an org.
#[derive(Clone, Debug)]
pub struct OrgSpec {
    /// Org name.
    pub name: String,
    /// Trustee account names, in share order.
    pub trustees: Vec<String>,
    /// Trustee threshold.
    pub trustee_threshold: u8,
    /// Arbiter account names.
    pub arbiters: Vec<String>,
    /// Arbiter threshold.
    pub arbiter_threshold: u8,
    /// Retention in days (default 365).
    pub retention_days: Option<u64>,
    /// Rotation by message count (default 1000).
    pub rotate_messages: Option<u32>,
    /// Publish the policy without `history_handoff` (PROTOCOL.md §7.6): a transfer hands the
    /// new agent no earlier epoch, so it starts blind.
    pub no_history_handoff: bool,
}

/// One conversation of an org, as its master sees it: metadata only.
#[derive(Clone, Debug)]
pub struct OrgConversationView {
    /// The org.
    pub org: String,
    /// The relay's metadata; its consents are only those whose customer signature checks and
    /// that name this conversation, this org and this master.
    pub info: OrgConversation,
}

impl OrgConversationView {
    /// The conversation's status in a word: `on hold` while a dispute ticket is open,
    /// `consent shared` when the customer shared a consent, else `open`.
    #[must_use]
    pub fn status(&self) -> &'static str {
        if self.info.legal_hold {
            "on hold"
        } else if !self.info.consents.is_empty() {
            "consent shared"
        } else {
            "open"
        }
    }
}

impl Client {
    /// Master: creates (or updates to a new version) an org policy and publishes it.
    ///
    /// # Errors
    /// [`ClientError::WrongRole`], card lookups, [`ClientError::Protocol`] for a policy that
    /// breaks a rule, [`ClientError::Relay`].
    pub async fn create_org(&mut self, spec: &OrgSpec) -> Result<VerifiedPolicy> {
        self.account.require(Role::Master, "org create")?;
        let mut trustees = Vec::new();
        for entry in &spec.trustees {
            trustees.push(self.party_card(entry, Role::Trustee).await?);
        }
        let mut arbiters = Vec::new();
        for entry in &spec.arbiters {
            arbiters.push(self.party_card(entry, Role::Arbiter).await?);
        }
        let version = match self
            .session
            .request(Request::GetPolicy {
                org: spec.name.clone(),
                version: None,
            })
            .await
        {
            Ok(Response::Policy(p)) => {
                p.version
                    .checked_add(1)
                    .ok_or_else(|| ClientError::ImpossibleNumber {
                        what: "policy version",
                        detail: format!("version {} has no successor", p.version),
                    })?
            }
            Ok(other) => return Err(unexpected("GetPolicy", &other)),
            Err(ClientError::Relay {
                code: ErrorCode::NotFound,
                ..
            }) => 1,
            Err(e) => return Err(e),
        };
        let mut params = PolicyParams::new(
            &spec.name,
            trustees,
            spec.trustee_threshold,
            arbiters,
            spec.arbiter_threshold,
        );
        params.version = version;
        if let Some(days) = spec.retention_days {
            params.retention_secs = days.saturating_mul(86_400);
        }
        if let Some(n) = spec.rotate_messages {
            params.rotate_after_messages = n;
        }
        params.history_handoff = !spec.no_history_handoff;
        let policy = OrgPolicy::issue(self.account.keys(), self.account.card(), params, now())?;
        expect_ok(
            self.session
                .request(Request::PublishPolicy(policy.policy().clone()))
                .await?,
        )?;
        self.account
            .pin_org(&policy.org, self.account.card().card(), PinSource::Own)?;
        self.remember_policy(&policy)?;
        Ok(policy)
    }

    /// Master: certifies an agent of the org this master runs.
    ///
    /// # Errors
    /// [`ClientError::WrongRole`], lookups, [`ClientError::Relay`].
    pub async fn add_agent(&mut self, org: &str, name: &str) -> Result<AgentCertificate> {
        self.add_agent_checked(org, name, None).await
    }

    /// As [`Self::add_agent`], but refuses unless the agent's card has the fingerprint
    /// `expected` (compared out of band with the agent): the relay serves cards and could
    /// otherwise hand the master its own key to certify.
    ///
    /// # Errors
    /// As [`Self::add_agent`], and [`ClientError::CardFingerprintMismatch`].
    pub async fn add_agent_checked(
        &mut self,
        org: &str,
        name: &str,
        expected: Option<&str>,
    ) -> Result<AgentCertificate> {
        self.account.require(Role::Master, "org add-agent")?;
        let policy = self.latest_policy(org).await?;
        if policy.master_key() != self.account.keys().signing_public() {
            return Err(ClientError::NotMaster {
                org: org.to_owned(),
            });
        }
        if let Some(fp) = expected {
            crate::error::check_fingerprint_format(fp)?;
        }
        let card = self
            .fetch_card(name)
            .await?
            .into_card()
            .verify_as(Role::Agent)?;
        if let Some(fp) = expected
            && !card.fingerprint().matches(fp)
        {
            return Err(ClientError::CardFingerprintMismatch {
                name: name.to_owned(),
                given: fp.to_owned(),
                actual: card.fingerprint().to_string(),
            });
        }
        self.pin_or_block(&card)?;
        let cert = AgentCertificate::issue(
            self.account.keys(),
            &policy,
            &card,
            now(),
            AGENT_CERT_VALIDITY_SECS,
        )?;
        expect_ok(
            self.session
                .request(Request::PublishCertificate(cert.clone()))
                .await?,
        )?;
        Ok(cert)
    }

    /// The card of a trustee or arbiter named `NAME` or `NAME=FINGERPRINT` in an org spec. With a
    /// fingerprint (read by that party from `sealdesk whoami`), a card the relay substituted is
    /// refused: escrow shares sealed to it would go to whoever holds that key.
    pub(super) async fn party_card(&mut self, entry: &str, role: Role) -> Result<IdentityCard> {
        let (name, expected) = match entry.split_once('=') {
            Some((n, fp)) => (n.trim(), Some(fp)),
            None => (entry.trim(), None),
        };
        if let Some(fp) = expected {
            crate::error::check_fingerprint_format(fp)?;
        }
        let card = self.fetch_card(name).await?.into_card().verify_as(role)?;
        if let Some(fp) = expected
            && !card.fingerprint().matches(fp)
        {
            return Err(ClientError::CardFingerprintMismatch {
                name: name.to_owned(),
                given: fp.to_owned(),
                actual: card.fingerprint().to_string(),
            });
        }
        self.pin_or_block(&card)?;
        Ok(card.into_card())
    }

    /// The orgs this master account has created (from pinned policies).
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn own_orgs(&self) -> Result<Vec<String>> {
        Ok(self
            .account
            .pins()?
            .orgs
            .into_iter()
            .filter(|(_, pin)| pin.source == PinSource::Own)
            .map(|(org, _)| org)
            .collect())
    }

    /// Master: the conversations of every org this account created, metadata only (who, when,
    /// consents shared, dispute tickets), from the relay, which serves this only to the org's
    /// master. A consent whose signature does not check, or that names another conversation,
    /// org or grantee, is left out.
    ///
    /// # Errors
    /// [`ClientError::WrongRole`], [`ClientError::Relay`] (`Forbidden` for an org this
    /// account is not the master of).
    pub async fn org_conversations(&mut self) -> Result<Vec<OrgConversationView>> {
        self.account
            .require(Role::Master, "conversations of the org")?;
        let me = self.account.keys().signing_public();
        let mut out = Vec::new();
        for org in self.own_orgs()? {
            let infos = match self
                .session
                .request(Request::OrgConversations { org: org.clone() })
                .await?
            {
                Response::OrgConversations(c) => c,
                other => return Err(unexpected("OrgConversations", &other)),
            };
            for mut info in infos {
                let c = info.conversation;
                info.consents.retain(|t: &ConsentToken| {
                    t.conversation == c
                        && t.org == org
                        && t.grantee == me
                        && t.check_signature().is_ok()
                });
                out.push(OrgConversationView {
                    org: org.clone(),
                    info,
                });
            }
        }
        Ok(out)
    }

    /// Master: the consents customers shared with the business, across the org's
    /// conversations (see [`Self::org_conversations`]), with the org of each.
    ///
    /// # Errors
    /// As [`Self::org_conversations`].
    pub async fn shared_consents(&mut self) -> Result<Vec<(String, ConsentToken)>> {
        Ok(self
            .org_conversations()
            .await?
            .into_iter()
            .flat_map(|v| {
                let org = v.org;
                v.info.consents.into_iter().map(move |t| (org.clone(), t))
            })
            .collect())
    }
}
