//! Open tokens (PROTOCOL.md §13.14): the master publishes certificates of the org's web server
//! keys; an org whose policy sets `require_open_token` is opened only with a token one of them
//! signed for the customer's key, and the opens of each visitor id are counted like a
//! customer's.
//!
//! Web key certificates are stored in the `meta` collection under [`web_key_key`]: the org,
//! then the key, so a token's certificate is one lookup.

use sealdesk_protocol::{
    keys::SigningPublicKey,
    open_token::{OpenToken, OpenTokenRefusal, WebKeyCertificate},
    wire::{ErrorCode, Response},
};

use super::{Caller, Reject, Reply, Service, dec, enc, lock, reject};
use crate::store::Collection;

/// The certificate of web key `key` of `org`, in [`Collection::Meta`]: `webkey/` ‖ org ‖ 0 ‖
/// key (32 bytes); the value is the [`WebKeyCertificate`] (CBOR).
fn web_key_key(org: &str, key: &SigningPublicKey) -> Vec<u8> {
    let mut k = b"webkey/".to_vec();
    k.extend_from_slice(org.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
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
            self.store.put(Collection::Meta, &key, &enc(&c)?)?;
        }
        self.commit.durable().await?;
        Ok(Response::Ok)
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
        let certificate = self
            .store
            .get(Collection::Meta, &web_key_key(org, &token.web_key))?
            .map(|b| dec::<WebKeyCertificate>(&b, "web key certificate"))
            .transpose()?;
        let verified = token
            .verify(&policy, certificate, &caller.key(), self.clock.now())
            .map_err(refusal)?;
        Ok(Some(verified.visitor_key()))
    }
}

/// The refusal of an open token, with its reason's own code.
fn refusal(r: OpenTokenRefusal) -> Reject {
    Reject::new(ErrorCode::from(r), r.to_string())
}
