//! Open tokens: a business vouches for the visitors of its web pages.
//!
//! The org's master certifies a key of the business's web server ([`WebKeyCertificate`]); the
//! web server signs, for a visitor of its page, a short-lived [`OpenToken`] naming the org, an
//! opaque visitor id, an expiry and the customer key the visitor's widget uses. An org whose
//! policy sets `require_open_token` is opened only with such a token ([`OpenToken::verify`]),
//! and the relay counts its open limits per visitor id.
//!
//! ```text
//!   web key certificate = label "sealdesk/v1/web-key-cert" ‖ str org ‖ str name ‖ [32] key
//!                         ‖ u64 issued_at ‖ u64 expires_at                   (signed by the master)
//!   open token          = label "sealdesk/v1/open-token" ‖ str org ‖ bytes visitor
//!                         ‖ [32] customer ‖ u64 issued_at ‖ u64 expires_at ‖ [32] web_key
//!                                                                         (signed by the web key)
//!   web key revocation  = label "sealdesk/v1/web-key-revoke" ‖ str org ‖ [32] key
//!                         ‖ u64 revoked_at ‖ [32] signer                     (signed by the master)
//! ```
//!
//! A [`WebKeyRevocation`] ends every certificate of its key issued at or before `revoked_at`
//! (a certificate issued later, a re-certification, is not touched): replaying an old
//! revocation cannot end a newer certificate, and replaying an old certificate cannot undo a
//! revocation. It is fresh ([`MAX_REVOCATION_AGE_SECS`]) when the relay first accepts it.

use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    codec::Writer,
    ids::check_name,
    keys::{IdentityKeys, Signature, SigningPublicKey},
    labels,
    policy::VerifiedPolicy,
    release::CLOCK_SKEW_SECS,
    signed::{Signed as _, impl_signed, verified_type},
};

/// Longest a visitor id may be, in bytes.
pub const MAX_VISITOR_ID: usize = 64;
/// Longest an open token may be valid (expiry minus issue time), in seconds: 24 hours.
pub const MAX_OPEN_TOKEN_VALIDITY_SECS: u64 = 86_400;

/// Longest a web key revocation may have been signed before the relay accepts it, in seconds.
pub const MAX_REVOCATION_AGE_SECS: u64 = 600;

/// Why an open token was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenTokenRefusal {
    /// The org requires a token and none was given.
    #[error("this org requires an open token from its web site")]
    Missing,
    /// The token expired (or its validity is longer than allowed, or it starts in the future).
    #[error("the open token expired or is not valid yet")]
    Expired,
    /// The token's signature does not verify under the web key it names.
    #[error("the open token's signature does not verify")]
    Forged,
    /// The token names another org.
    #[error("the open token is for another org")]
    WrongOrg,
    /// The token names another customer key.
    #[error("the open token was issued to another customer key")]
    WrongCustomer,
    /// The web key is not certified by the org's master (or its certificate expired).
    #[error("the open token's web key is not certified by the org's master")]
    Uncertified,
    /// The visitor id is empty or longer than [`MAX_VISITOR_ID`] bytes.
    #[error("the open token's visitor id is empty or longer than 64 bytes")]
    BadVisitor,
}

impl OpenTokenRefusal {
    /// The reason's stable name (`missing`, `expired`, `forged`, `wrong_org`, `wrong_customer`,
    /// `uncertified`, `bad_visitor`), as the relay's error message starts.
    pub fn name(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Expired => "expired",
            Self::Forged => "forged",
            Self::WrongOrg => "wrong_org",
            Self::WrongCustomer => "wrong_customer",
            Self::Uncertified => "uncertified",
            Self::BadVisitor => "bad_visitor",
        }
    }
}

/// The master's statement that `key` is the org's web server key `name`, until `expires_at`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct WebKeyCertificate {
    /// The org.
    pub org: String,
    /// A name for the key (e.g. the site), unique in the org: certifying a name again
    /// replaces its key.
    pub name: String,
    /// The web server's signing key.
    pub key: SigningPublicKey,
    /// Issue time.
    pub issued_at: u64,
    /// Expiry time.
    pub expires_at: u64,
    /// Master signature over [`WebKeyCertificate::signed_bytes`].
    pub signature: Signature,
}

impl WebKeyCertificate {
    /// Certifies `key` as web key `name` of the org of `policy`, for `valid_secs` from `now`.
    ///
    /// # Errors
    /// [`Error::InvalidName`]; [`Error::InvalidValidity`] for a zero validity.
    pub fn issue(
        master: &IdentityKeys,
        policy: &VerifiedPolicy,
        name: &str,
        key: SigningPublicKey,
        now: u64,
        valid_secs: u64,
    ) -> Result<Self> {
        check_name(name)?;
        if valid_secs == 0 {
            return Err(Error::InvalidValidity("web key certificate"));
        }
        let mut c = WebKeyCertificate {
            org: policy.org.clone(),
            name: name.to_owned(),
            key,
            issued_at: now,
            expires_at: now.saturating_add(valid_secs),
            signature: Signature::placeholder(),
        };
        c.signature = master.sign(&c.signed_bytes());
        Ok(c)
    }

    /// The canonical bytes the master's signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::WEB_KEY_CERT);
        w.str(&self.org)
            .str(&self.name)
            .fixed(self.key.as_bytes())
            .u64(self.issued_at)
            .u64(self.expires_at);
        w.into_bytes()
    }

    /// Checks the certificate against the org's policy at time `now`.
    ///
    /// # Errors
    /// [`Error::WrongOrg`], [`Error::BadSignature`], [`Error::InvalidValidity`],
    /// [`Error::Expired`], [`Error::InvalidName`].
    pub fn verify(self, policy: &VerifiedPolicy, now: u64) -> Result<VerifiedWebKey> {
        if self.org != policy.org {
            return Err(Error::WrongOrg {
                expected: policy.org.clone(),
                found: self.org,
            });
        }
        check_name(&self.name)?;
        policy
            .master_key()
            .verify(&self.signed_bytes(), &self.signature, "web key certificate")?;
        if self.issued_at > now.saturating_add(CLOCK_SKEW_SECS) || self.expires_at <= self.issued_at
        {
            return Err(Error::InvalidValidity("web key certificate"));
        }
        if now >= self.expires_at {
            return Err(Error::Expired("web key certificate"));
        }
        Ok(VerifiedWebKey(self))
    }
}

verified_type!(
    /// A web key certificate checked against the org's policy ([`WebKeyCertificate::verify`]).
    VerifiedWebKey(WebKeyCertificate),
    certificate,
    into_certificate
);

/// The master's statement that the org's certificates of web key `key` issued at or before
/// `revoked_at` are no longer in force.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct WebKeyRevocation {
    /// The org.
    pub org: String,
    /// The revoked web server key.
    pub key: SigningPublicKey,
    /// When the master revoked it (its clock): certificates of `key` issued at or before this
    /// time are revoked.
    pub revoked_at: u64,
    /// The master's key.
    pub signer: SigningPublicKey,
    /// Signature over [`WebKeyRevocation::signed_bytes`].
    pub signature: Signature,
}

impl_signed!(WebKeyRevocation, "web key revocation", signer);

verified_type!(
    /// A web key revocation whose org, freshness and master signature were checked
    /// ([`WebKeyRevocation::verify`]).
    VerifiedWebKeyRevocation(WebKeyRevocation),
    revocation,
    into_revocation
);

impl WebKeyRevocation {
    /// Signs, with the master's `keys`, the revocation of web key `key` of `org` at `now`.
    pub fn issue(keys: &IdentityKeys, org: &str, key: SigningPublicKey, now: u64) -> Self {
        let mut r = WebKeyRevocation {
            org: org.to_owned(),
            key,
            revoked_at: now,
            signer: keys.signing_public(),
            signature: Signature::placeholder(),
        };
        r.signature = keys.sign(&r.signed_bytes());
        r
    }

    /// The canonical bytes the master's signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::WEB_KEY_REVOKE);
        w.str(&self.org)
            .fixed(self.key.as_bytes())
            .u64(self.revoked_at)
            .fixed(self.signer.as_bytes());
        w.into_bytes()
    }

    /// Whether this revocation ends `certificate` (same org and key, issued at or before the
    /// revocation).
    pub fn revokes(&self, certificate: &WebKeyCertificate) -> bool {
        certificate.org == self.org
            && certificate.key == self.key
            && certificate.issued_at <= self.revoked_at
    }

    /// Checks the revocation against the org's current policy at time `now`: the org, the
    /// signer (the master), the signature, and freshness (signed at most
    /// [`MAX_REVOCATION_AGE_SECS`] before `now` and at most `CLOCK_SKEW_SECS` after).
    ///
    /// # Errors
    /// [`Error::WrongOrg`], [`Error::WrongSigner`] (not the org's master),
    /// [`Error::BadSignature`], [`Error::InvalidValidity`] (from the future),
    /// [`Error::Expired`] (too old: a replay, or sign a new one).
    pub fn verify(self, policy: &VerifiedPolicy, now: u64) -> Result<VerifiedWebKeyRevocation> {
        if self.org != policy.org {
            return Err(Error::WrongOrg {
                expected: policy.org.clone(),
                found: self.org,
            });
        }
        self.check_signed_by(&policy.master_key())?;
        if self.revoked_at > now.saturating_add(CLOCK_SKEW_SECS) {
            return Err(Error::InvalidValidity("web key revocation"));
        }
        if now.saturating_sub(self.revoked_at) > MAX_REVOCATION_AGE_SECS {
            return Err(Error::Expired("web key revocation"));
        }
        Ok(VerifiedWebKeyRevocation(self))
    }
}

/// A web server's statement: this visitor may open a conversation with the org, with this
/// customer key, until `expires_at`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct OpenToken {
    /// The org.
    pub org: String,
    /// The business's opaque id of the visitor (1 to 64 bytes).
    #[serde(with = "serde_bytes")]
    pub visitor: Vec<u8>,
    /// The customer key the token is for.
    pub customer: SigningPublicKey,
    /// Issue time (the web server's clock).
    pub issued_at: u64,
    /// Expiry, at most 24 hours after `issued_at`.
    pub expires_at: u64,
    /// The web key that signs.
    pub web_key: SigningPublicKey,
    /// Signature over [`OpenToken::signed_bytes`].
    pub signature: Signature,
}

impl_signed!(OpenToken, "open token", web_key);

verified_type!(
    /// An open token whose checks passed ([`OpenToken::verify`]).
    VerifiedOpenToken(OpenToken),
    token,
    into_token
);

/// What the web server puts in a token.
#[derive(Clone, Debug)]
pub struct OpenTokenParams<'a> {
    /// The org.
    pub org: &'a str,
    /// The visitor id (1 to 64 bytes).
    pub visitor: &'a [u8],
    /// The customer key of the visitor's widget.
    pub customer: SigningPublicKey,
    /// Now.
    pub now: u64,
    /// Validity, seconds (at most [`MAX_OPEN_TOKEN_VALIDITY_SECS`]).
    pub valid_secs: u64,
}

impl OpenToken {
    /// Signs a token with the web key `web`.
    ///
    /// # Errors
    /// [`Error::InvalidValidity`] for a zero validity or one over 24 hours;
    /// [`Error::BadLength`] for a visitor id that is empty or over 64 bytes.
    pub fn issue(web: &IdentityKeys, p: &OpenTokenParams<'_>) -> Result<Self> {
        if p.visitor.is_empty() || p.visitor.len() > MAX_VISITOR_ID {
            return Err(Error::BadLength {
                what: "visitor id",
                expected: MAX_VISITOR_ID,
                got: p.visitor.len(),
            });
        }
        if p.valid_secs == 0 || p.valid_secs > MAX_OPEN_TOKEN_VALIDITY_SECS {
            return Err(Error::InvalidValidity("open token"));
        }
        let mut t = OpenToken {
            org: p.org.to_owned(),
            visitor: p.visitor.to_vec(),
            customer: p.customer,
            issued_at: p.now,
            expires_at: p.now.saturating_add(p.valid_secs),
            web_key: web.signing_public(),
            signature: Signature::placeholder(),
        };
        t.signature = web.sign(&t.signed_bytes());
        Ok(t)
    }

    /// The canonical bytes the web key's signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::OPEN_TOKEN);
        w.str(&self.org)
            .bytes(&self.visitor)
            .fixed(self.customer.as_bytes())
            .u64(self.issued_at)
            .u64(self.expires_at)
            .fixed(self.web_key.as_bytes());
        w.into_bytes()
    }

    /// Checks the token for `customer` opening a conversation with the org of `policy` at time
    /// `now`, `certificate` being the org's certificate of the token's web key, if it has one
    /// (the relay looks it up by key).
    ///
    /// # Errors
    /// The [`OpenTokenRefusal`] that applies, checked in this order: `wrong_org`,
    /// `bad_visitor`, `uncertified` (no certificate, one for another key, or one that does not
    /// verify now), `forged`, `wrong_customer`, `expired` (now past the expiry, an issue time
    /// more than `CLOCK_SKEW_SECS` ahead, or a validity over 24 hours).
    pub fn verify(
        self,
        policy: &VerifiedPolicy,
        certificate: Option<WebKeyCertificate>,
        customer: &SigningPublicKey,
        now: u64,
    ) -> core::result::Result<VerifiedOpenToken, OpenTokenRefusal> {
        if self.org != policy.org {
            return Err(OpenTokenRefusal::WrongOrg);
        }
        if self.visitor.is_empty() || self.visitor.len() > MAX_VISITOR_ID {
            return Err(OpenTokenRefusal::BadVisitor);
        }
        let certified = certificate
            .filter(|c| c.key == self.web_key)
            .and_then(|c| c.verify(policy, now).ok());
        if certified.is_none() {
            return Err(OpenTokenRefusal::Uncertified);
        }
        if self.check_signature().is_err() {
            return Err(OpenTokenRefusal::Forged);
        }
        if self.customer != *customer {
            return Err(OpenTokenRefusal::WrongCustomer);
        }
        let validity = self.expires_at.saturating_sub(self.issued_at);
        if now >= self.expires_at
            || self.issued_at > now.saturating_add(CLOCK_SKEW_SECS)
            || validity > MAX_OPEN_TOKEN_VALIDITY_SECS
        {
            return Err(OpenTokenRefusal::Expired);
        }
        Ok(VerifiedOpenToken(self))
    }
}

impl VerifiedOpenToken {
    /// The 32 bytes the relay counts the visitor's open limits under: a hash of the org and
    /// the visitor id, so two orgs' visitor ids never share a count.
    pub fn visitor_key(&self) -> [u8; 32] {
        let mut w = Writer::with_label(labels::OPEN_TOKEN_VISITOR);
        w.str(&self.org).bytes(&self.visitor);
        w.sha256()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::policy::tests::org;

    const NOW: u64 = 50_000;

    #[test]
    fn a_good_token_verifies_and_each_bad_one_has_its_reason() {
        let o = org(60);
        let web = IdentityKeys::generate(&mut crate::test_rng(61));
        let cert = WebKeyCertificate::issue(
            &o.master,
            &o.policy,
            "www",
            web.signing_public(),
            100,
            1_000_000,
        )
        .unwrap();
        let customer = o.customer.signing_public();
        let params = OpenTokenParams {
            org: "acme",
            visitor: b"visitor-42",
            customer,
            now: NOW,
            valid_secs: 3600,
        };
        let t = OpenToken::issue(&web, &params).unwrap();
        let check = |t: &OpenToken, cert: Option<&WebKeyCertificate>, who, now| {
            t.clone()
                .verify(&o.policy, cert.cloned(), who, now)
                .map(|_| ())
        };
        assert_eq!(check(&t, Some(&cert), &customer, NOW + 10), Ok(()));
        // Expired; from the far future.
        assert_eq!(
            check(&t, Some(&cert), &customer, NOW + 3600),
            Err(OpenTokenRefusal::Expired)
        );
        assert_eq!(
            check(&t, Some(&cert), &customer, NOW - CLOCK_SKEW_SECS - 1),
            Err(OpenTokenRefusal::Expired)
        );
        // Another customer key.
        let other = o.agent.signing_public();
        assert_eq!(
            check(&t, Some(&cert), &other, NOW),
            Err(OpenTokenRefusal::WrongCustomer)
        );
        // Forged: the customer changed after signing.
        let mut forged = t.clone();
        forged.customer = other;
        assert_eq!(
            check(&forged, Some(&cert), &other, NOW),
            Err(OpenTokenRefusal::Forged)
        );
        // Another org.
        let mut elsewhere = OpenToken::issue(
            &web,
            &OpenTokenParams {
                org: "globex",
                ..params.clone()
            },
        )
        .unwrap();
        assert_eq!(
            check(&elsewhere, Some(&cert), &customer, NOW),
            Err(OpenTokenRefusal::WrongOrg)
        );
        elsewhere.org = "acme".into();
        assert_eq!(
            check(&elsewhere, Some(&cert), &customer, NOW),
            Err(OpenTokenRefusal::Forged)
        );
        // An uncertified key: no certificate, one for another key, one by another master.
        let rogue = IdentityKeys::generate(&mut crate::test_rng(62));
        let r = OpenToken::issue(&rogue, &params).unwrap();
        assert_eq!(
            check(&r, None, &customer, NOW),
            Err(OpenTokenRefusal::Uncertified)
        );
        assert_eq!(
            check(&r, Some(&cert), &customer, NOW),
            Err(OpenTokenRefusal::Uncertified)
        );
        let by_agent = WebKeyCertificate::issue(
            &o.agent,
            &o.policy,
            "www",
            rogue.signing_public(),
            100,
            1_000_000,
        )
        .unwrap();
        assert_eq!(
            check(&r, Some(&by_agent), &customer, NOW),
            Err(OpenTokenRefusal::Uncertified)
        );
        // An expired certificate.
        let short =
            WebKeyCertificate::issue(&o.master, &o.policy, "www", web.signing_public(), 100, 10)
                .unwrap();
        assert_eq!(
            check(&t, Some(&short), &customer, NOW),
            Err(OpenTokenRefusal::Uncertified)
        );
        // Issuing refuses what verifying would.
        assert!(
            OpenToken::issue(
                &web,
                &OpenTokenParams {
                    visitor: &[7; 65],
                    ..params.clone()
                }
            )
            .is_err()
        );
        assert!(
            OpenToken::issue(
                &web,
                &OpenTokenParams {
                    visitor: b"",
                    ..params.clone()
                }
            )
            .is_err()
        );
        assert!(
            OpenToken::issue(
                &web,
                &OpenTokenParams {
                    valid_secs: 86_401,
                    ..params.clone()
                }
            )
            .is_err()
        );
        // Visitors of two orgs never share a count.
        let v = t
            .clone()
            .verify(&o.policy, Some(cert), &customer, NOW)
            .unwrap();
        assert_ne!(v.visitor_key(), [0; 32]);
    }

    #[test]
    fn a_revocation_is_the_masters_fresh_and_ends_only_earlier_certificates() {
        let o = org(63);
        let web = IdentityKeys::generate(&mut crate::test_rng(64));
        let cert = |at| {
            WebKeyCertificate::issue(
                &o.master,
                &o.policy,
                "www",
                web.signing_public(),
                at,
                1_000_000,
            )
            .unwrap()
        };
        let r = WebKeyRevocation::issue(&o.master, "acme", web.signing_public(), NOW);
        let v = r.clone().verify(&o.policy, NOW + 5).unwrap();
        assert!(v.revokes(&cert(NOW - 100)));
        assert!(v.revokes(&cert(NOW)));
        // A re-certification after the revocation is not touched.
        assert!(!v.revokes(&cert(NOW + 1)));
        // Another key's certificate is not touched.
        let other = IdentityKeys::generate(&mut crate::test_rng(65));
        let c =
            WebKeyCertificate::issue(&o.master, &o.policy, "www", other.signing_public(), NOW, 10)
                .unwrap();
        assert!(!v.revokes(&c));
        // Signed by an agent of the org; forged; for another org; too old; from the future.
        let by_agent = WebKeyRevocation::issue(&o.agent, "acme", web.signing_public(), NOW);
        assert!(matches!(
            by_agent.verify(&o.policy, NOW),
            Err(Error::WrongSigner(_))
        ));
        let mut forged = r.clone();
        forged.key = other.signing_public();
        assert!(matches!(
            forged.verify(&o.policy, NOW),
            Err(Error::BadSignature(_))
        ));
        let elsewhere = WebKeyRevocation::issue(&o.master, "globex", web.signing_public(), NOW);
        assert!(matches!(
            elsewhere.verify(&o.policy, NOW),
            Err(Error::WrongOrg { .. })
        ));
        assert!(matches!(
            r.clone()
                .verify(&o.policy, NOW + MAX_REVOCATION_AGE_SECS + 1),
            Err(Error::Expired(_))
        ));
        assert!(matches!(
            r.verify(&o.policy, NOW - CLOCK_SKEW_SECS - 1),
            Err(Error::InvalidValidity(_))
        ));
    }
}
