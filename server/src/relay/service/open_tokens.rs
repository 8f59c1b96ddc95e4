//! Open tokens (PROTOCOL.md §13.14): the master publishes certificates of the org's web server
//! keys; an org whose policy sets `require_open_token` is opened only with a token one of them
//! signed for the customer's key, and the opens of each visitor id are counted like a
//! customer's.
//!
//! Web key certificates are stored in the `meta` collection under [`web_key_key`]: the org,
//! then the key, so a token's certificate is one lookup. The master's revocation of a key is
//! stored next to it under [`revocation_key`] (the latest one), and ends the key's
//! certificates issued at or before it: a token signed by a revoked key is refused
//! `open_token_revoked`, and the same certificate published again is refused `forbidden`.
//! Both are read from the store on every check, so they hold across a restart and on every
//! node of a cluster.
//!
//! The conversations opened with a token are recorded by visitor (see [`super::open_quota`]),
//! so the open-conversations quota counts a visitor's conversations whatever customer key
//! opened them (a visitor with a fresh key each time reaches it too).

use sealdesk_protocol::{
    Error as ProtocolError,
    ids::ConversationId,
    keys::SigningPublicKey,
    open_token::{OpenToken, OpenTokenRefusal, WebKeyCertificate, WebKeyRevocation},
    wire::{ErrorCode, Response},
};
use tracing::info;

use super::{
    Caller, Reject, Reply, Service, dec, enc, lock,
    open_quota::{Full, OpenSubject},
    reject,
};
use crate::{limits::OpenRecord, store::Collection};

/// The certificate of web key `key` of `org`, in [`Collection::Meta`]: `webkey/` ‖ org ‖ 0 ‖
/// key (32 bytes); the value is the [`WebKeyCertificate`] (CBOR).
fn web_key_key(org: &str, key: &SigningPublicKey) -> Vec<u8> {
    let mut k = b"webkey/".to_vec();
    k.extend_from_slice(org.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

/// The latest revocation of web key `key` of `org`, in [`Collection::Meta`]: `webkeyrev/` ‖
/// org ‖ 0 ‖ key (32 bytes); the value is the [`WebKeyRevocation`] (CBOR).
fn revocation_key(org: &str, key: &SigningPublicKey) -> Vec<u8> {
    let mut k = b"webkeyrev/".to_vec();
    k.extend_from_slice(org.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

/// The prefix of the conversations opened by visitor `visitor` (the token's visitor key, which
/// names the org already), in [`Collection::Meta`], as an earlier relay build recorded them:
/// `visitor/` ‖ visitor key (32 bytes) ‖ conversation (16 bytes), the value empty. Read for
/// the quota, never written now (see [`super::open_quota`]).
fn visitor_prefix(visitor: &[u8; 32]) -> Vec<u8> {
    let mut k = b"visitor/".to_vec();
    k.extend_from_slice(visitor);
    k
}

/// The refusal of a revocation whose check failed: `forbidden` when its signer is not the
/// org's master, `bad_request` when the statement itself is wrong (signature, freshness).
fn revocation_refused(e: ProtocolError) -> Reject {
    let code = match e {
        ProtocolError::BadSignature(_)
        | ProtocolError::Expired(_)
        | ProtocolError::InvalidValidity(_) => ErrorCode::BadRequest,
        _ => ErrorCode::Forbidden,
    };
    Reject::new(code, e.to_string())
}

impl Service {
    /// The master publishes a certificate of a web server key of its org.
    pub(super) async fn publish_web_key(&self, caller: &Caller, c: WebKeyCertificate) -> Reply {
        let policy = self.policies.current(&c.org)?;
        if policy.master_key() != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "only the org's master may certify web keys",
            );
        }
        let c = c.verify(&policy, self.clock.now())?.into_certificate();
        let key = web_key_key(&c.org, &c.key);
        {
            let _w = lock(&self.writes)?;
            if self
                .web_key_revocation(&c.org, &c.key)?
                .is_some_and(|r| r.revokes(&c))
            {
                return reject(
                    ErrorCode::Forbidden,
                    "this web key certificate was revoked: certify the key again with a new \
                     certificate",
                );
            }
            self.store.put(Collection::Meta, &key, &enc(&c)?)?;
        }
        self.commit.durable().await?;
        Ok(Response::Ok)
    }

    /// The master revokes a web server key of its org: checked against the org's current
    /// policy (sent and signed by the master, fresh), for a key the org certified and a
    /// revocation not older than the key's certificate in force, then stored durably. The same
    /// revocation sent again is answered `ok` and changes nothing.
    pub(super) async fn revoke_web_key(&self, caller: &Caller, r: WebKeyRevocation) -> Reply {
        let policy = self.policies.current(&r.org)?;
        if policy.master_key() != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "only the org's master may revoke web keys",
            );
        }
        let r = r
            .verify(&policy, self.clock.now())
            .map_err(revocation_refused)?
            .into_revocation();
        {
            let _w = lock(&self.writes)?;
            let Some(certificate) = self.web_key_certificate(&r.org, &r.key)? else {
                return reject(ErrorCode::NotFound, "the org never certified this web key");
            };
            if !r.revokes(&certificate) {
                return reject(
                    ErrorCode::BadRequest,
                    "the revocation is older than the key's certificate in force (a replay?): \
                     sign a new one",
                );
            }
            if self
                .web_key_revocation(&r.org, &r.key)?
                .is_some_and(|old| old.revoked_at >= r.revoked_at)
            {
                return Ok(Response::Ok);
            }
            self.store
                .put(Collection::Meta, &revocation_key(&r.org, &r.key), &enc(&r)?)?;
        }
        self.commit.durable().await?;
        info!(org = r.org, key = %r.key, "web key revoked");
        Ok(Response::Ok)
    }

    /// The org's stored certificate of web key `key`.
    fn web_key_certificate(
        &self,
        org: &str,
        key: &SigningPublicKey,
    ) -> Result<Option<WebKeyCertificate>, Reject> {
        self.store
            .get(Collection::Meta, &web_key_key(org, key))?
            .map(|b| dec::<WebKeyCertificate>(&b, "web key certificate"))
            .transpose()
    }

    /// The latest stored revocation of web key `key` of `org`.
    fn web_key_revocation(
        &self,
        org: &str,
        key: &SigningPublicKey,
    ) -> Result<Option<WebKeyRevocation>, Reject> {
        self.store
            .get(Collection::Meta, &revocation_key(org, key))?
            .map(|b| dec::<WebKeyRevocation>(&b, "web key revocation"))
            .transpose()
    }

    /// Checks the open token of `caller` opening a conversation with `org`: required when the
    /// org's policy says so, checked whenever given. Returns the key the visitor's opens are
    /// counted under, if a token was given.
    pub(super) fn check_open_token(
        &self,
        caller: &Caller,
        org: &str,
        token: Option<OpenToken>,
    ) -> Result<Option<[u8; 32]>, Reject> {
        let policy = self.policies.current(org)?;
        let Some(token) = token else {
            if policy.require_open_token {
                return Err(refusal(OpenTokenRefusal::Missing));
            }
            return Ok(None);
        };
        let certificate = self.web_key_certificate(org, &token.web_key)?;
        if let Some(c) = &certificate
            && self
                .web_key_revocation(org, &c.key)?
                .is_some_and(|r| r.revokes(c))
        {
            return Err(Reject::new(
                ErrorCode::OpenTokenRevoked,
                "the open token's web key was revoked by the org's master".into(),
            ));
        }
        let verified = token
            .verify(&policy, certificate, &caller.key(), self.clock.now())
            .map_err(refusal)?;
        Ok(Some(verified.visitor_key()))
    }
    /// Reserves visitor `visitor`'s place for conversation `c` in its record (see
    /// [`super::open_quota`]; pushed onto `reserved`), or refuses (`quota_exceeded`, with the
    /// wait until a place frees up) a visitor who has as many open conversations with `org`
    /// as a customer may have, whatever keys opened them.
    pub(super) fn visitor_open_limit(
        &self,
        visitor: &[u8; 32],
        org: &str,
        c: &ConversationId,
        reserved: &mut Vec<OpenSubject>,
    ) -> Result<(), Reject> {
        let subject = OpenSubject::Visitor(*visitor);
        let legacy = |record: &OpenRecord| self.legacy_visitor_opens(visitor, record);
        let Full { open, quietest } = match self.reserve_open(&subject, c, legacy)? {
            Ok(r) => {
                if r.added {
                    reserved.push(subject);
                }
                return Ok(());
            }
            Err(full) => full,
        };
        let idle = self.guard.open_idle.as_secs();
        let most = self.guard.open_conversations;
        let wait = (quietest + idle).saturating_sub(self.clock.now()).max(1);
        self.guard.refused(crate::limits::OPEN_CONVERSATIONS);
        Err(Reject::retry_after(
            ErrorCode::QuotaExceeded,
            format!(
                "this visitor of {org}'s web site has {open} open conversations with {org}, the \
                 most this relay allows ({most}); continue one of them, or wait until one has \
                 been quiet for {} h",
                idle / 3600
            ),
            wait,
        ))
    }

    /// The last activities of visitor `visitor`'s open conversations recorded by an earlier
    /// relay build (one `visitor/` key each, see [`visitor_prefix`]) that `record` does not
    /// hold. Records of conversations that no longer exist are deleted here.
    fn legacy_visitor_opens(
        &self,
        visitor: &[u8; 32],
        record: &OpenRecord,
    ) -> Result<Vec<u64>, Reject> {
        let since = self
            .clock
            .now()
            .saturating_sub(self.guard.open_idle.as_secs());
        let mut open = Vec::new();
        let mut gone = Vec::new();
        for (k, _) in self
            .store
            .scan_prefix(Collection::Meta, &visitor_prefix(visitor))?
        {
            let id = k
                .get(k.len().saturating_sub(16)..)
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .filter(|b| !record.holds(b))
                .and_then(|b| ConversationId::from_bytes(&b).ok());
            let Some(id) = id else { continue };
            match self.convs.get(&id)? {
                Some(s) if s.last_activity >= since => open.push(s.last_activity),
                Some(_) => {}
                None => gone.push(k),
            }
        }
        if !gone.is_empty() {
            let _w = lock(&self.writes)?;
            for k in gone {
                self.store.delete(Collection::Meta, &k)?;
            }
        }
        Ok(open)
    }
}

/// The refusal of an open token, with its reason's own code.
fn refusal(r: OpenTokenRefusal) -> Reject {
    Reject::new(ErrorCode::from(r), r.to_string())
}
