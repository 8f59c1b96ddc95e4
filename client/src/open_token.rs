//! Open tokens, the master's side and the web server's: certifying a web server key, requiring
//! tokens in the org's policy, and issuing a token (which needs no relay: the business's web
//! server signs it for the customer key of the visitor's widget). The customer opens with one
//! through [`Client::open_conversation_with`]. PROTOCOL.md §13.14.

use sealdesk_protocol::{
    card::Role,
    keys::{IdentityKeys, SigningPublicKey},
    open_token::{WebKeyCertificate, WebKeyRevocation},
    policy::{OrgPolicy, PolicyParams, VerifiedPolicy},
    wire::Request,
};

use crate::{
    Client,
    error::{ClientError, Result},
    now,
    reply::expect_ok,
};

/// How long a web key certificate is valid by default: 90 days.
pub const WEB_KEY_VALIDITY_SECS: u64 = 90 * 86_400;

impl Client {
    /// Master: certifies `key` as the org's web server key `name` for `valid_secs` and
    /// publishes the certificate.
    ///
    /// # Errors
    /// [`ClientError::WrongRole`], [`ClientError::NotMaster`], [`ClientError::Protocol`] (a
    /// bad name or validity), [`ClientError::Relay`].
    pub async fn certify_web_key(
        &mut self,
        org: &str,
        name: &str,
        key: SigningPublicKey,
        valid_secs: u64,
    ) -> Result<WebKeyCertificate> {
        self.account.require(Role::Master, "org web-key")?;
        let policy = self.own_policy(org).await?;
        let cert =
            WebKeyCertificate::issue(self.account.keys(), &policy, name, key, now(), valid_secs)?;
        expect_ok(
            self.session
                .request(Request::PublishWebKey(cert.clone()))
                .await?,
        )?;
        Ok(cert)
    }

    /// Master: revokes the org's web server key `key` (its certificates issued until now stop
    /// being accepted) and publishes the revocation.
    ///
    /// # Errors
    /// [`ClientError::WrongRole`], [`ClientError::NotMaster`], [`ClientError::Relay`]
    /// (`not_found` for a key the org never certified).
    pub async fn revoke_web_key(
        &mut self,
        org: &str,
        key: SigningPublicKey,
    ) -> Result<WebKeyRevocation> {
        self.account.require(Role::Master, "org web-key --revoke")?;
        let policy = self.own_policy(org).await?;
        let r = WebKeyRevocation::issue(self.account.keys(), &policy.org, key, now());
        expect_ok(
            self.session
                .request(Request::RevokeWebKey(r.clone()))
                .await?,
        )?;
        Ok(r)
    }

    /// Master: publishes the next version of the org's policy with `require_open_token` set to
    /// `required` (nothing is published if it is already so). Returns the policy in force.
    ///
    /// # Errors
    /// As [`Self::certify_web_key`].
    pub async fn require_open_tokens(
        &mut self,
        org: &str,
        required: bool,
    ) -> Result<VerifiedPolicy> {
        self.account
            .require(Role::Master, "org web-key --require")?;
        let p = self.own_policy(org).await?;
        if p.require_open_token == required {
            return Ok(p);
        }
        let version = p
            .version
            .checked_add(1)
            .ok_or_else(|| ClientError::ImpossibleNumber {
                what: "policy version",
                detail: format!("version {} has no successor", p.version),
            })?;
        let params = PolicyParams {
            org: p.org.clone(),
            version,
            trustees: p.trustees.clone(),
            trustee_threshold: p.trustee_threshold,
            arbiters: p.arbiters.clone(),
            arbiter_threshold: p.arbiter_threshold,
            allow_consent: p.allow_consent,
            allow_dispute: p.allow_dispute,
            max_release_validity_secs: p.max_release_validity_secs,
            rotate_after_messages: p.rotate_after_messages,
            rotate_after_secs: p.rotate_after_secs,
            retention_secs: p.retention_secs,
            history_handoff: p.history_handoff,
            require_open_token: required,
        };
        let next = OrgPolicy::issue(self.account.keys(), self.account.card(), params, now())?;
        expect_ok(
            self.session
                .request(Request::PublishPolicy(next.policy().clone()))
                .await?,
        )?;
        // Read back (and remember) the version now in force.
        self.latest_policy(org).await
    }

    /// The org's latest policy, if this account is its master.
    async fn own_policy(&mut self, org: &str) -> Result<VerifiedPolicy> {
        let policy = self.latest_policy(org).await?;
        if policy.master_key() != self.account.keys().signing_public() {
            return Err(ClientError::NotMaster {
                org: org.to_owned(),
            });
        }
        Ok(policy)
    }
}

/// A new web server key (its 64 secret bytes are what [`web_key_from_hex`] reads back).
pub fn new_web_key() -> Result<IdentityKeys> {
    Ok(IdentityKeys::generate(&mut crate::rng()?))
}

/// The hex form of a web server key's secret bytes, for its file.
pub fn web_key_to_hex(keys: &IdentityKeys) -> String {
    hex::encode(keys.to_secret_bytes().as_slice())
}

/// Reads a web server key from the hex of its 64 secret bytes (surrounding space ignored).
///
/// # Errors
/// [`ClientError::BadWebKey`] if it is not 128 hex digits.
pub fn web_key_from_hex(text: &str) -> Result<IdentityKeys> {
    let bytes = hex::decode(text.trim()).map_err(|_| ClientError::BadWebKey)?;
    let arr = <[u8; 64]>::try_from(bytes.as_slice()).map_err(|_| ClientError::BadWebKey)?;
    Ok(IdentityKeys::from_secret_bytes(&arr))
}
