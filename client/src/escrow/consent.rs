//! Customer consent: granting and revoking consent tokens, the local list, erasure, sharing
//! a token with the master, and a token's portable text form.

use std::collections::BTreeMap;

use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent},
    card::Role,
    ids::{ConversationId, EpochRange, TokenId},
    release::{ConsentParams, ConsentToken, ErasureRequest, Scope},
    wire::{Item, Request, Response, from_cbor, to_cbor},
};

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::reply::{expect_ok, unexpected};
use crate::store::ConsentRecord;
use crate::{now, rng};

impl Client {
    /// Customer: grants the org's master a single-use consent to open `epochs` (all epochs so
    /// far when `None`) of a conversation. Hand the token to the business (it is not secret).
    ///
    /// # Errors
    /// [`ClientError::WrongRole`], [`ClientError::Protocol`] for an invalid validity.
    pub async fn grant_consent(
        &mut self,
        id: &ConversationId,
        epochs: Option<EpochRange>,
        scope: Scope,
        valid_secs: u64,
        purpose: &str,
    ) -> Result<ConsentToken> {
        self.account.require(Role::Customer, "consent grant")?;
        self.sync(id).await?;
        let meta = self.meta(id)?;
        let last = meta.last_epoch.ok_or_else(|| ClientError::NoEpochYet {
            conversation: id.to_string(),
        })?;
        let epochs = match epochs {
            Some(r) => r,
            None => EpochRange::new(0, last)?,
        };
        let policy = self.latest_policy(&meta.org).await?;
        let token = ConsentToken::issue(
            &mut rng()?,
            self.account.keys(),
            &policy,
            ConsentParams {
                conversation: *id,
                epochs,
                scope,
                purpose: purpose.to_owned(),
                valid_secs,
            },
            now(),
        )?;
        let mut all: BTreeMap<String, ConsentRecord> = self.account.store().consents()?;
        all.insert(
            token.id.to_string(),
            ConsentRecord {
                token: token.clone(),
                revoked: false,
            },
        );
        self.account.store().put_consents(&all)?;
        // Hand the token to the org's master through the relay (it is not secret: it only
        // lets the master ask the trustees, who check it and log the release).
        match self
            .session
            .request(Request::ShareConsent(token.clone()))
            .await?
        {
            Response::Stored { .. } => Ok(token),
            other => Err(unexpected("ShareConsent", &other)),
        }
    }

    /// Customer: revokes an unused consent (a signed entry in the audit log, which trustees
    /// check before releasing).
    ///
    /// # Errors
    /// [`ClientError::UnknownConsent`] for an unknown consent; relay errors.
    pub async fn revoke_consent(&mut self, consent: &TokenId) -> Result<u64> {
        let all: BTreeMap<String, ConsentRecord> = self.account.store().consents()?;
        let rec = all
            .get(&consent.to_string())
            .ok_or_else(|| ClientError::UnknownConsent {
                consent: consent.to_string(),
            })?;
        let conversation = rec.token.conversation;
        let entry = AuditEntry::sign(
            self.account.keys(),
            AuditEvent::ConsentRevocation {
                conversation,
                consent: *consent,
            },
            now(),
        );
        let index = match self
            .session
            .request(Request::AppendAudit(entry.clone()))
            .await?
        {
            Response::Appended { index, head } => {
                // Say "revoked" only once the revocation is proven to be in the log.
                self.confirm_appended(&entry, index, &head).await?;
                index
            }
            other => return Err(unexpected("AppendAudit", &other)),
        };
        let mut all: BTreeMap<String, ConsentRecord> = self.account.store().consents()?;
        let Some(rec) = all.get_mut(&consent.to_string()) else {
            return Err(ClientError::UnknownConsent {
                consent: consent.to_string(),
            });
        };
        rec.revoked = true;
        self.account.store().put_consents(&all)?;
        Ok(index)
    }

    /// Customer: the consents granted from this account.
    ///
    /// # Errors
    /// Storage errors.
    pub fn consents(&self) -> Result<Vec<ConsentRecord>> {
        let all: BTreeMap<String, ConsentRecord> = self.account.store().consents()?;
        Ok(all.into_values().collect())
    }

    /// Customer: asks the relay to erase a conversation (refused with `LegalHold` while a
    /// dispute is open). The local copy is kept.
    ///
    /// # Errors
    /// [`ClientError::Relay`] (`LegalHold`), relay errors.
    pub async fn erase(&mut self, id: &ConversationId) -> Result<()> {
        self.account.require(Role::Customer, "erase")?;
        let req = ErasureRequest::sign(self.account.keys(), *id, now());
        expect_ok(self.session.request(Request::Erase(req)).await?)
    }

    /// Master: finds a consent token the customer shared into the conversation through the
    /// relay. Its signature is checked by the trustees (and again here, for a clear error).
    pub(super) async fn shared_consent(
        &self,
        conversation: &ConversationId,
        id: &TokenId,
    ) -> Result<ConsentToken> {
        for s in self.history_items(conversation).await? {
            if let Item::Consent(token) = s.item
                && token.id == *id
            {
                return Ok(token.verify()?.into_token());
            }
        }
        Err(ClientError::ConsentNotShared {
            consent: id.to_string(),
            conversation: conversation.to_string(),
        })
    }
}

/// Encodes a consent token for handing to the business (hex of its CBOR).
///
/// # Errors
/// [`ClientError::Protocol`].
pub fn encode_consent(token: &ConsentToken) -> Result<String> {
    Ok(hex::encode(to_cbor(token)?))
}

/// Decodes a consent token from [`encode_consent`]'s form, or from a file holding it.
///
/// # Errors
/// [`ClientError::BadConsentToken`], [`ClientError::Protocol`] for a token that does not decode.
pub fn decode_consent(s: &str) -> Result<ConsentToken> {
    let text = match std::fs::read_to_string(s) {
        Ok(t) => t,
        Err(_) => s.to_owned(),
    };
    let bytes = hex::decode(text.trim()).map_err(|_| ClientError::BadConsentToken)?;
    Ok(from_cbor(&bytes, "consent token")?)
}
