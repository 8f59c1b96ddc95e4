//! Customer consent: granting and revoking consent tokens, the list with each one's state
//! (active, used, expired, revoked — read from the audit log), erasure, sharing a token with
//! the master, and a token's portable text form.

use std::collections::BTreeMap;

use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent, ReleaseBasis, SignedTreeHead},
    card::Role,
    ids::{ConversationId, EpochRange, TokenId},
    release::{ConsentParams, ConsentToken, ErasureRequest, Scope},
    wire::{Item, Request, Response, from_cbor, to_cbor},
};

use crate::client::Client;
use crate::error::{ClientError, Result};
use serde::Serialize;

use crate::notice::counts_as_release;
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
    /// check before releasing). Honest about what it did: a consent a trustee already
    /// released under is not revoked ([`RevokeOutcome::AlreadyUsed`], nothing logged), one
    /// already revoked is not logged again ([`RevokeOutcome::AlreadyRevoked`]), and a
    /// revocation is said witnessed only once enough of the org's trustees cosigned a log
    /// holding it (`witnessed`).
    ///
    /// # Errors
    /// [`ClientError::UnknownConsent`] for an unknown consent; relay errors.
    pub async fn revoke_consent(&mut self, consent: &TokenId) -> Result<RevokeOutcome> {
        let all: BTreeMap<String, ConsentRecord> = self.account.store().consents()?;
        let rec = all
            .get(&consent.to_string())
            .ok_or_else(|| ClientError::UnknownConsent {
                consent: consent.to_string(),
            })?;
        let conversation = rec.token.conversation;
        let seen = self.consent_log(std::slice::from_ref(rec)).await?;
        if let Some(index) = seen.used.get(consent) {
            return Ok(RevokeOutcome::AlreadyUsed { index: *index });
        }
        let org = rec.token.org.clone();
        if let Some((index, entry)) = seen.revoked.get(consent) {
            // Said "revoked" only once the earlier revocation is proven to be in the log, and
            // "witnessed" only once enough trustees cosigned a log holding it.
            self.confirm_appended(entry, *index, &seen.head).await?;
            let witnessed = self
                .witnessed_entry(&org, &entry.leaf_hash(), *index)
                .await?
                .is_witnessed();
            self.mark_revoked(consent)?;
            return Ok(RevokeOutcome::AlreadyRevoked {
                index: Some(*index),
                witnessed,
            });
        }
        if rec.revoked {
            return Ok(RevokeOutcome::AlreadyRevoked {
                index: None,
                witnessed: false,
            });
        }
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
        // Witnessed only once enough of the org's trustees cosigned a log holding it: until
        // then a relay holding its log key could still show the trustees a log without it.
        let witnessed = self
            .witnessed_entry(&org, &entry.leaf_hash(), index)
            .await?
            .is_witnessed();
        self.mark_revoked(consent)?;
        Ok(RevokeOutcome::Revoked { index, witnessed })
    }

    fn mark_revoked(&self, consent: &TokenId) -> Result<()> {
        let mut all: BTreeMap<String, ConsentRecord> = self.account.store().consents()?;
        let Some(rec) = all.get_mut(&consent.to_string()) else {
            return Err(ClientError::UnknownConsent {
                consent: consent.to_string(),
            });
        };
        if !rec.revoked {
            rec.revoked = true;
            self.account.store().put_consents(&all)?;
        }
        Ok(())
    }

    /// Customer: the consents granted from this account.
    ///
    /// # Errors
    /// Storage errors.
    pub fn consents(&self) -> Result<Vec<ConsentRecord>> {
        let all: BTreeMap<String, ConsentRecord> = self.account.store().consents()?;
        Ok(all.into_values().collect())
    }

    /// Customer: the consents granted from this account, each with where it stands — used
    /// (a trustee of its org released under it, as the audit log shows), revoked, expired or
    /// active.
    ///
    /// # Errors
    /// Storage, relay and audit-log errors.
    pub async fn consent_states(&mut self) -> Result<Vec<ConsentStatus>> {
        let all = self.consents()?;
        let seen = self.consent_log(&all).await?;
        let t = now();
        Ok(all
            .into_iter()
            .map(|record| {
                let id = record.token.id;
                let (state, entry) = if let Some(i) = seen.used.get(&id) {
                    (ConsentState::Used, Some(*i))
                } else if let Some((i, _)) = seen.revoked.get(&id) {
                    (ConsentState::Revoked, Some(*i))
                } else if record.revoked {
                    (ConsentState::Revoked, None)
                } else if record.token.expires_at <= t {
                    (ConsentState::Expired, None)
                } else {
                    (ConsentState::Active, None)
                };
                ConsentStatus {
                    record,
                    state,
                    entry,
                }
            })
            .collect())
    }

    /// Reads the audit log for what became of `consents`: the first release entry under each
    /// (signed by a trustee of its org, about its conversation) and the first revocation this
    /// account signed of each.
    async fn consent_log(&mut self, consents: &[ConsentRecord]) -> Result<ConsentLog> {
        let (head, _) = self.checked_tree_head().await?;
        let mut out = ConsentLog {
            head,
            used: BTreeMap::new(),
            revoked: BTreeMap::new(),
        };
        if consents.is_empty() {
            return Ok(out);
        }
        let mine: BTreeMap<TokenId, &ConsentToken> =
            consents.iter().map(|r| (r.token.id, &r.token)).collect();
        let me = self.account.keys().signing_public();
        for (i, slot) in (0u64..).zip(self.entries(0, out.head.size).await?) {
            // An entry withheld from this account is about no consent of its own: the
            // customer reads every entry about its conversations (SECURITY.md, "Audit log
            // readers").
            let Some(e) = slot.entry() else { continue };
            match &e.event {
                AuditEvent::Release {
                    conversation,
                    basis: ReleaseBasis::Consent { id, .. },
                    ..
                } => {
                    let Some(token) = mine.get(id) else { continue };
                    if token.conversation != *conversation || out.used.contains_key(id) {
                        continue;
                    }
                    // Judged under the policy of that release (its epochs'), not the latest.
                    let policy = self.release_policy(e).await?;
                    if counts_as_release(e, policy.policy(), Some(conversation)) {
                        out.used.insert(*id, i);
                    }
                }
                AuditEvent::ConsentRevocation {
                    consent,
                    conversation,
                } if e.signer == me
                    && mine
                        .get(consent)
                        .is_some_and(|t| t.conversation == *conversation)
                    && !out.revoked.contains_key(consent)
                    && e.verify().is_ok() =>
                {
                    out.revoked.insert(*consent, (i, e.clone()));
                }
                _ => {}
            }
        }
        Ok(out)
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

/// What `consent revoke` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum RevokeOutcome {
    /// Revoked now: the revocation is audit-log entry `index`, proven in the relay's log.
    Revoked {
        /// The revocation's leaf index.
        index: u64,
        /// Whether a head cosigned by enough of the org's trustees (`n_e − t_e + 1`, fresh)
        /// holds it (SECURITY.md, "Witnesses"). Until then the revocation is logged but not
        /// yet witnessed: a relay holding its log key could still show the trustees a log
        /// without it. Revoking again checks again and logs nothing more.
        witnessed: bool,
    },
    /// Revoked before: nothing logged again (`index` is the earlier revocation's entry, when
    /// the log shows it).
    AlreadyRevoked {
        /// The earlier revocation's leaf index, if found in the log.
        index: Option<u64>,
        /// Whether that entry is witnessed (as for [`RevokeOutcome::Revoked`]).
        witnessed: bool,
    },
    /// A trustee already released under it (audit-log entry `index`): a revocation cannot
    /// undo that, so none was logged.
    AlreadyUsed {
        /// The first release entry under the consent.
        index: u64,
    },
}

impl RevokeOutcome {
    /// The audit-log entry of the consent's revocation, if it is revoked and the log shows it.
    #[must_use]
    pub fn index(&self) -> Option<u64> {
        match self {
            Self::Revoked { index, .. } => Some(*index),
            Self::AlreadyRevoked { index, .. } => *index,
            Self::AlreadyUsed { .. } => None,
        }
    }
}

/// Where a consent stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    /// Unused, unrevoked, unexpired: the master may still unlock under it.
    Active,
    /// A trustee released under it (it is single-use).
    Used,
    /// Its validity ended before it was used.
    Expired,
    /// Revoked before it was used.
    Revoked,
}

impl ConsentState {
    /// The state's word, as lists show it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Used => "used",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// A consent granted from this account, with where it stands.
#[derive(Clone, Debug)]
pub struct ConsentStatus {
    /// The consent as granted.
    pub record: ConsentRecord,
    /// Where it stands.
    pub state: ConsentState,
    /// The audit-log entry that used or revoked it, when the log shows one.
    pub entry: Option<u64>,
}

/// What the audit log (up to `head`) says became of some consents, by consent id: the index
/// of the first release entry under each, and the first revocation of each by this account.
struct ConsentLog {
    head: SignedTreeHead,
    used: BTreeMap<TokenId, u64>,
    revoked: BTreeMap<TokenId, (u64, AuditEntry)>,
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
