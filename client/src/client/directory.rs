//! Cards, trust and pins: fetching and verifying identity cards, agent certificates and org
//! policies, and checking each against what this account pinned before (trust on first use,
//! blocked keys, policy rollback).

use sealdesk_protocol::{
    card::{IdentityCard, VerifiedCard},
    ids::ConversationId,
    keys::SigningPublicKey,
    policy::{OrgPolicy, VerifiedPolicy},
    wire::{Request, Response},
};

use super::Client;
use crate::account::{PinSource, PinStatus};
use crate::error::{ClientError, Result};
use crate::now;
use crate::reply::{expect_ok, unexpected};

impl Client {
    /// Registers the account's card on the relay (idempotent).
    ///
    /// # Errors
    /// [`ClientError::Relay`] with `NameTaken` if another key holds the name.
    pub async fn register(&mut self) -> Result<()> {
        expect_ok(self.session.request(Request::Register).await?)
    }

    /// Fetches and verifies a card from the relay's directory.
    ///
    /// # Errors
    /// [`ClientError::Relay`] (`NotFound`), [`ClientError::Protocol`] for a forged card.
    pub async fn fetch_card(&self, name: &str) -> Result<VerifiedCard> {
        match self
            .session
            .request(Request::GetCard {
                name: name.to_owned(),
            })
            .await?
        {
            Response::Card(card) => {
                let card = card.verify()?;
                if card.name != name {
                    return Err(ClientError::UnexpectedResponse(format!(
                        "asked for the card of {name}, got one for {}",
                        card.name
                    )));
                }
                Ok(card)
            }
            other => Err(unexpected("GetCard", &other)),
        }
    }

    /// Accepts a changed key of `name` (after the user compared fingerprints).
    ///
    /// # Errors
    /// [`ClientError::NothingPending`] if nothing is pending and the relay has no card.
    pub async fn trust(&mut self, name: &str) -> Result<IdentityCard> {
        let fresh = self.fetch_card(name).await.ok();
        let card = self.account.trust_peer(name, fresh.as_ref())?;
        self.policies.clear();
        Ok(card)
    }

    // --- policies -----------------------------------------------------------------------

    /// The latest policy of `org`, verified and checked against the pinned master (pinned on
    /// first use if none is).
    ///
    /// # Errors
    /// [`ClientError::OrgKeyChanged`], [`ClientError::Relay`], [`ClientError::Protocol`].
    pub async fn latest_policy(&mut self, org: &str) -> Result<VerifiedPolicy> {
        self.latest_policy_checked(org, None).await
    }

    /// [`Self::latest_policy`], its master also checked against `fingerprint` when given:
    /// against the pinned master if there is one, else before it is pinned (then pinned as
    /// checked). Nothing is created on the relay.
    ///
    /// # Errors
    /// [`ClientError::FingerprintMismatch`], and as [`Self::latest_policy`].
    pub(super) async fn latest_policy_checked(
        &mut self,
        org: &str,
        fingerprint: Option<&str>,
    ) -> Result<VerifiedPolicy> {
        if let Some(fp) = fingerprint {
            crate::error::check_fingerprint_format(fp)?;
        }
        let raw = match self
            .session
            .request(Request::GetPolicy {
                org: org.to_owned(),
                version: None,
            })
            .await?
        {
            Response::Policy(p) => p,
            other => return Err(unexpected("GetPolicy", &other)),
        };
        if raw.org != org {
            return Err(ClientError::UnexpectedResponse(format!(
                "asked for org {org}, got {}",
                raw.org
            )));
        }
        let source = match (self.account.org_pin(org)?, fingerprint) {
            (_, None) => PinSource::Tofu,
            (Some(pin), Some(fp)) => {
                let pinned = pin.master.clone().verify()?;
                if !pinned.fingerprint().matches(fp) {
                    return Err(ClientError::FingerprintMismatch {
                        org: org.to_owned(),
                        given: fp.to_owned(),
                        actual: pinned.fingerprint().to_string(),
                    });
                }
                PinSource::Tofu
            }
            (None, Some(fp)) => {
                let master = raw.master.clone().verify()?;
                if !master.fingerprint().matches(fp) {
                    return Err(ClientError::FingerprintMismatch {
                        org: org.to_owned(),
                        given: fp.to_owned(),
                        actual: master.fingerprint().to_string(),
                    });
                }
                PinSource::Fingerprint
            }
        };
        let policy = self.verify_pinned(raw, source)?;
        // A relay must not be able to move new epochs back under an older policy (and so an
        // older trustee set) by serving it as the latest.
        if let Some(seen) = self.account.highest_policy_version(org)?
            && policy.version < seen
        {
            return Err(ClientError::PolicyRollback {
                org: org.to_owned(),
                served: policy.version,
                seen,
            });
        }
        self.remember_policy(&policy)?;
        Ok(policy)
    }

    /// A specific policy version (local copy first, then the relay), verified and pinned.
    ///
    /// # Errors
    /// As [`Self::latest_policy`].
    pub async fn policy(&mut self, org: &str, version: u32) -> Result<VerifiedPolicy> {
        if let Some(p) = self.policies.get(&(org.to_owned(), version)) {
            return Ok(p.clone());
        }
        let raw = match self.account.stored_policy(org, version)? {
            Some(p) => p,
            None => match self
                .session
                .request(Request::GetPolicy {
                    org: org.to_owned(),
                    version: Some(version),
                })
                .await?
            {
                Response::Policy(p) => p,
                other => return Err(unexpected("GetPolicy", &other)),
            },
        };
        if raw.org != org || raw.version != version {
            return Err(ClientError::UnexpectedResponse(format!(
                "asked for policy {org} v{version}, got {} v{}",
                raw.org, raw.version
            )));
        }
        let policy = self.verify_pinned(raw, PinSource::Tofu)?;
        self.remember_policy(&policy)?;
        Ok(policy)
    }

    pub(super) fn remember_policy(&mut self, policy: &VerifiedPolicy) -> Result<()> {
        self.account.save_policy(policy.policy())?;
        self.policies
            .insert((policy.org.clone(), policy.version), policy.clone());
        Ok(())
    }

    /// Verifies a policy and checks its master against the pin; with no pin, pins it with
    /// `source`.
    pub(super) fn verify_pinned(
        &self,
        raw: OrgPolicy,
        source: PinSource,
    ) -> Result<VerifiedPolicy> {
        let policy = raw.verify()?;
        let master = policy.master.clone().verify()?;
        match self.account.org_pin(&policy.org)? {
            Some(pin) => {
                if !master.same_keys(&pin.master) {
                    // Recorded as a pending peer change so `keys trust MASTER` can accept it.
                    self.account.observe_peer(&master)?;
                    return Err(ClientError::OrgKeyChanged {
                        org: policy.org.clone(),
                        master: master.name.clone(),
                    });
                }
            }
            None => {
                self.account.pin_org(&policy.org, master.card(), source)?;
                self.account.observe_peer(&master)?;
            }
        }
        Ok(policy)
    }

    /// Fetches and verifies an agent's certificate against `policy`; returns the agent's card.
    ///
    /// # Errors
    /// [`ClientError::Relay`] (`NotFound`: not certified), [`ClientError::Protocol`].
    pub async fn agent_certificate(
        &self,
        policy: &VerifiedPolicy,
        agent: &str,
    ) -> Result<VerifiedCard> {
        match self
            .session
            .request(Request::GetCertificate {
                org: policy.org.clone(),
                agent: agent.to_owned(),
            })
            .await?
        {
            Response::Certificate(cert) => {
                let card = cert.verify(policy, now())?;
                if card.name != agent {
                    return Err(ClientError::UnexpectedResponse(format!(
                        "certificate for {agent} names {}",
                        card.name
                    )));
                }
                Ok(card)
            }
            other => Err(unexpected("GetCertificate", &other)),
        }
    }

    /// For a customer: asks the relay now for the certificate of conversation `id`'s agent
    /// and checks its card against the pin, as sending does at most every
    /// [`super::conversation::AGENT_CHECK_SECS`]. A long-running chat calls it from time to
    /// time, so that an agent the org's master re-certified for a new key shows as a key change
    /// before the customer writes. Nothing is asked for an agent, or when the relay vouches for
    /// no agent now (its certificate expired, say: sending goes on as before).
    ///
    /// # Errors
    /// [`ClientError::KeyChanged`] when the agent's key differs from the pinned one (recorded
    /// as pending, so `keys trust` can accept it; sending is blocked until then);
    /// [`ClientError::OrgKeyChanged`]; [`ClientError::UnknownConversation`]; relay errors.
    pub async fn recheck_agent(&mut self, id: &ConversationId) -> Result<()> {
        if self.account.role() != sealdesk_protocol::card::Role::Customer {
            return Ok(());
        }
        let meta = self.meta(id)?;
        let policy = self.latest_policy(&meta.org).await?;
        match self.agent_certificate(&policy, &meta.agent).await {
            Ok(agent) => self.pin_or_block(&agent),
            Err(ClientError::Relay { .. } | ClientError::Protocol(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(super) fn name_of_key(
        &self,
        id: &ConversationId,
        key: &SigningPublicKey,
    ) -> Option<String> {
        if *key == self.account.keys().signing_public() {
            return Some(self.account.name().to_owned());
        }
        let epochs = self.account.epochs(id).ok()?;
        epochs
            .iter()
            .rev()
            .flat_map(|st| st.record.members.iter())
            .find(|m| &m.signing_key == key)
            .map(|m| m.name.clone())
    }

    pub(super) fn pin_or_block(&self, card: &VerifiedCard) -> Result<()> {
        if self.account.observe_peer(card)? == PinStatus::Changed {
            return Err(ClientError::KeyChanged {
                name: card.name.clone(),
            });
        }
        Ok(())
    }
}
