//! The org policy (who may open transcripts, under what) and agent certificates.
//!
//! A policy is signed by the org's master key. [`OrgPolicy::verify`] checks the signature *and*
//! every rule of separation of duties; only then does a [`VerifiedPolicy`] exist, which is what
//! epochs, escrow and release decisions take.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    card::{IdentityCard, Role, VerifiedCard},
    codec::Writer,
    ids::check_name,
    keys::{IdentityKeys, Signature, SigningPublicKey},
    labels,
};

/// Highest number of trustees or arbiters a policy may list (Shamir over GF(256) allows 255;
/// a smaller bound keeps epoch records small).
pub const MAX_PARTIES: usize = 32;

/// The rules of an org, as signed by its master.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct OrgPolicy {
    /// The org's name.
    pub org: String,
    /// Increases with every change; epochs record the version they were made under.
    pub version: u32,
    /// The master account's card (its key signs this policy).
    pub master: IdentityCard,
    /// Escrow trustees, in share order (trustee `i` holds Shamir share `x = i + 1`).
    pub trustees: Vec<IdentityCard>,
    /// How many trustees must release for a transcript to open.
    pub trustee_threshold: u8,
    /// Dispute arbiters.
    pub arbiters: Vec<IdentityCard>,
    /// How many distinct arbiters must approve a dispute ticket.
    pub arbiter_threshold: u8,
    /// Whether a customer's consent token can justify a release.
    pub allow_consent: bool,
    /// Whether an approved dispute ticket can justify a release.
    pub allow_dispute: bool,
    /// Longest validity (expiry minus issue time) of a consent token or ticket, in seconds.
    pub max_release_validity_secs: u64,
    /// Start a new epoch after this many messages in the current one.
    pub rotate_after_messages: u32,
    /// Start a new epoch after this many seconds.
    pub rotate_after_secs: u64,
    /// Delete conversations this long after their last activity, in seconds.
    pub retention_secs: u64,
    /// Whether a newly assigned agent receives earlier epochs' secrets on transfer.
    pub history_handoff: bool,
    /// When the master signed this version.
    pub created_at: u64,
    /// Master signature over [`OrgPolicy::signed_bytes`].
    pub signature: Signature,
    /// Whether a customer needs an open token from the org's web site to open a conversation
    /// (`crate::open_token`). Absent on the wire and from the signed bytes when false, so a
    /// policy without it encodes and signs exactly as before the field existed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub require_open_token: bool,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if takes a reference
fn is_false(b: &bool) -> bool {
    !*b
}

/// The parts of a policy the master chooses; [`OrgPolicy::issue`] signs them.
#[derive(Clone, Debug)]
pub struct PolicyParams {
    /// Org name.
    pub org: String,
    /// Version (start at 1).
    pub version: u32,
    /// Trustee cards.
    pub trustees: Vec<IdentityCard>,
    /// Trustee threshold.
    pub trustee_threshold: u8,
    /// Arbiter cards.
    pub arbiters: Vec<IdentityCard>,
    /// Arbiter threshold.
    pub arbiter_threshold: u8,
    /// Allow consent releases.
    pub allow_consent: bool,
    /// Allow dispute releases.
    pub allow_dispute: bool,
    /// Longest validity of a justification, seconds.
    pub max_release_validity_secs: u64,
    /// Rotation by message count.
    pub rotate_after_messages: u32,
    /// Rotation by age, seconds.
    pub rotate_after_secs: u64,
    /// Retention, seconds.
    pub retention_secs: u64,
    /// History hand-off on transfer.
    pub history_handoff: bool,
    /// Require an open token to open a conversation.
    pub require_open_token: bool,
}

impl PolicyParams {
    /// Sensible defaults around the given parties: consent and dispute allowed, 30-day release
    /// validity, rotation every 1,000 messages or 7 days, 365-day retention, hand-off on.
    pub fn new(
        org: &str,
        trustees: Vec<IdentityCard>,
        trustee_threshold: u8,
        arbiters: Vec<IdentityCard>,
        arbiter_threshold: u8,
    ) -> Self {
        Self {
            org: org.to_owned(),
            version: 1,
            trustees,
            trustee_threshold,
            arbiters,
            arbiter_threshold,
            allow_consent: true,
            allow_dispute: true,
            max_release_validity_secs: 30 * 86_400,
            rotate_after_messages: 1_000,
            rotate_after_secs: 7 * 86_400,
            retention_secs: 365 * 86_400,
            history_handoff: true,
            require_open_token: false,
        }
    }
}

impl OrgPolicy {
    /// Builds, signs and validates a policy with the master's keys.
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] (or a card error) if the result would not verify.
    pub fn issue(
        master: &IdentityKeys,
        master_card: &VerifiedCard,
        p: PolicyParams,
        now: u64,
    ) -> Result<VerifiedPolicy> {
        let mut policy = OrgPolicy {
            org: p.org,
            version: p.version,
            master: master_card.card().clone(),
            trustees: p.trustees,
            trustee_threshold: p.trustee_threshold,
            arbiters: p.arbiters,
            arbiter_threshold: p.arbiter_threshold,
            allow_consent: p.allow_consent,
            allow_dispute: p.allow_dispute,
            max_release_validity_secs: p.max_release_validity_secs,
            rotate_after_messages: p.rotate_after_messages,
            rotate_after_secs: p.rotate_after_secs,
            retention_secs: p.retention_secs,
            history_handoff: p.history_handoff,
            created_at: now,
            signature: Signature::placeholder(),
            require_open_token: p.require_open_token,
        };
        if policy.master.signing_key != master.signing_public() {
            return Err(Error::InvalidPolicy(
                "the master card is not this key's card".into(),
            ));
        }
        policy.signature = master.sign(&policy.signed_bytes());
        policy.verify()
    }

    /// The canonical bytes the master's signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::POLICY);
        w.str(&self.org).u32(self.version);
        self.master.write(&mut w);
        w.count(self.trustees.len());
        for t in &self.trustees {
            t.write(&mut w);
        }
        w.u8(self.trustee_threshold).count(self.arbiters.len());
        for a in &self.arbiters {
            a.write(&mut w);
        }
        w.u8(self.arbiter_threshold)
            .bool(self.allow_consent)
            .bool(self.allow_dispute)
            .u64(self.max_release_validity_secs)
            .u32(self.rotate_after_messages)
            .u64(self.rotate_after_secs)
            .u64(self.retention_secs)
            .bool(self.history_handoff)
            .u64(self.created_at);
        // An optional trailing field: written only when set, so older policies keep their bytes.
        if self.require_open_token {
            w.bool(true);
        }
        w.into_bytes()
    }

    /// SHA-256 of the signed bytes and signature: names this exact policy version.
    pub fn hash(&self) -> [u8; 32] {
        let mut w = Writer::with_label(labels::POLICY);
        w.bytes(&self.signed_bytes())
            .fixed(&self.signature.to_bytes());
        w.sha256()
    }

    /// Checks the master's signature, every card, and every rule of docs/design.md §1–2.
    ///
    /// # Errors
    /// [`Error::BadSignature`], a card error, or [`Error::InvalidPolicy`] naming the broken rule.
    pub fn verify(self) -> Result<VerifiedPolicy> {
        check_name(&self.org)?;
        let master = self.master.clone().verify_as(Role::Master)?;
        master
            .signing_key
            .verify(&self.signed_bytes(), &self.signature, "org policy")?;
        let invalid = |m: &str| Err(Error::InvalidPolicy(m.to_owned()));

        if self.trustees.is_empty() || self.trustees.len() > MAX_PARTIES {
            return invalid("a policy needs between 1 and 32 trustees");
        }
        let n_e = self.trustees.len();
        if self.trustee_threshold == 0 || usize::from(self.trustee_threshold) > n_e {
            return invalid("the trustee threshold must be between 1 and the number of trustees");
        }
        if self.arbiters.len() > MAX_PARTIES {
            return invalid("a policy lists at most 32 arbiters");
        }
        if self.allow_dispute
            && (self.arbiter_threshold == 0
                || usize::from(self.arbiter_threshold) > self.arbiters.len())
        {
            return invalid(
                "disputes need an arbiter threshold between 1 and the number of arbiters",
            );
        }
        if !self.allow_consent && !self.allow_dispute {
            return invalid(
                "at least one release justification (consent or dispute) must be allowed",
            );
        }
        if self.max_release_validity_secs == 0 {
            return invalid("the release validity must be positive");
        }
        if self.rotate_after_messages == 0 || self.rotate_after_secs == 0 {
            return invalid("epoch rotation limits must be positive");
        }
        if self.retention_secs == 0 {
            return invalid("the retention period must be positive");
        }
        for t in &self.trustees {
            t.clone().verify_as(Role::Trustee)?;
        }
        for a in &self.arbiters {
            a.clone().verify_as(Role::Arbiter)?;
        }
        // Separation of duties: no key (signing or agreement) may appear twice anywhere, which
        // also makes "the master is a trustee/arbiter" and "one trustee counted twice" impossible.
        let mut signing = HashSet::new();
        let mut agreement = HashSet::new();
        let mut names = HashSet::new();
        for c in std::iter::once(&self.master)
            .chain(&self.trustees)
            .chain(&self.arbiters)
        {
            if !signing.insert(c.signing_key) || !agreement.insert(c.agreement_key) {
                return invalid(&format!(
                    "the key of {:?} appears more than once (master, trustees and arbiters must \
                     all be distinct keys)",
                    c.name
                ));
            }
            if !names.insert(c.name.as_str()) {
                return invalid(&format!("the name {:?} appears more than once", c.name));
            }
        }
        Ok(VerifiedPolicy(self))
    }
}

/// A policy whose signature and rules have been checked.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VerifiedPolicy(OrgPolicy);

impl core::ops::Deref for VerifiedPolicy {
    type Target = OrgPolicy;
    fn deref(&self) -> &OrgPolicy {
        &self.0
    }
}

impl VerifiedPolicy {
    /// The policy as it travels.
    pub fn policy(&self) -> &OrgPolicy {
        &self.0
    }

    /// The master's signing key.
    pub fn master_key(&self) -> SigningPublicKey {
        self.0.master.signing_key
    }

    /// The index (share order) of a trustee key, if it is one.
    pub fn trustee_index(&self, key: &SigningPublicKey) -> Option<usize> {
        self.0.trustees.iter().position(|t| &t.signing_key == key)
    }

    /// The arbiter card with this key, if any.
    pub fn arbiter(&self, key: &SigningPublicKey) -> Option<&IdentityCard> {
        self.0.arbiters.iter().find(|a| &a.signing_key == key)
    }

    /// What the policy means, in plain words, for a customer about to write the first message.
    pub fn summary(&self) -> String {
        let p = &self.0;
        let mut ways = Vec::new();
        if p.allow_consent {
            ways.push("with your signed consent".to_owned());
        }
        if p.allow_dispute {
            let names: Vec<&str> = p.arbiters.iter().map(|a| a.name.as_str()).collect();
            ways.push(format!(
                "with a dispute ticket approved by {} of these {} independent arbiters: {}",
                p.arbiter_threshold,
                p.arbiters.len(),
                names.join(", ")
            ));
        }
        let trustees: Vec<&str> = p.trustees.iter().map(|t| t.name.as_str()).collect();
        let handoff = if p.history_handoff {
            "If your chat is transferred, the new agent can read the earlier messages."
        } else {
            "If your chat is transferred, the new agent cannot read the earlier messages."
        };
        format!(
            "Your chat with {org} is end-to-end encrypted: the relay cannot read it. {org}'s \
             owner account ({master}) can open it only {ways}, and only if {t} of the {n} \
             independent key trustees ({trustees}) agree. You will be told of every opening, and \
             each one is recorded in a public audit log your app checks. {handoff} Messages are \
             deleted {days} days after the conversation ends. (Policy version {v}.)",
            org = p.org,
            master = p.master.name,
            ways = ways.join(", or "),
            t = p.trustee_threshold,
            n = p.trustees.len(),
            trustees = trustees.join(", "),
            days = p.retention_secs / 86_400,
            v = p.version,
        )
    }
}

impl Serialize for VerifiedPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// A master's statement that a card belongs to one of its org's agents, until `expires_at`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AgentCertificate {
    /// The org.
    pub org: String,
    /// The agent's card.
    pub agent: IdentityCard,
    /// Issue time.
    pub issued_at: u64,
    /// Expiry time.
    pub expires_at: u64,
    /// Master signature over [`AgentCertificate::signed_bytes`].
    pub signature: Signature,
}

impl AgentCertificate {
    /// Certifies `agent` for `valid_secs` from `now`.
    ///
    /// # Errors
    /// [`Error::WrongRole`] if the card is not an agent's; [`Error::InvalidValidity`] for a
    /// zero validity.
    pub fn issue(
        master: &IdentityKeys,
        policy: &VerifiedPolicy,
        agent: &VerifiedCard,
        now: u64,
        valid_secs: u64,
    ) -> Result<Self> {
        if agent.role != Role::Agent {
            return Err(Error::WrongRole {
                expected: "agent",
                found: agent.role.name(),
            });
        }
        if valid_secs == 0 {
            return Err(Error::InvalidValidity("agent certificate"));
        }
        let mut cert = AgentCertificate {
            org: policy.org.clone(),
            agent: agent.card().clone(),
            issued_at: now,
            expires_at: now.saturating_add(valid_secs),
            signature: Signature::placeholder(),
        };
        cert.signature = master.sign(&cert.signed_bytes());
        Ok(cert)
    }

    /// The canonical bytes the master's signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::AGENT_CERT);
        w.str(&self.org);
        self.agent.write(&mut w);
        w.u64(self.issued_at).u64(self.expires_at);
        w.into_bytes()
    }

    /// Checks the certificate against the pinned policy at time `now`.
    ///
    /// # Errors
    /// [`Error::WrongOrg`], [`Error::BadSignature`], [`Error::Expired`], [`Error::InvalidValidity`]
    /// or a card error.
    pub fn verify(&self, policy: &VerifiedPolicy, now: u64) -> Result<VerifiedCard> {
        if self.org != policy.org {
            return Err(Error::WrongOrg {
                expected: policy.org.clone(),
                found: self.org.clone(),
            });
        }
        policy
            .master_key()
            .verify(&self.signed_bytes(), &self.signature, "agent certificate")?;
        // A certificate issued a moment ago by a master whose clock runs ahead still verifies,
        // within the skew allowed everywhere else (PROTOCOL.md §1.3).
        if self.issued_at > now.saturating_add(crate::release::CLOCK_SKEW_SECS)
            || self.expires_at <= self.issued_at
        {
            return Err(Error::InvalidValidity("agent certificate"));
        }
        if now >= self.expires_at {
            return Err(Error::Expired("agent certificate"));
        }
        self.agent.clone().verify_as(Role::Agent)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::test_rng;

    /// A test org: master, 3 trustees (2-of-3), 3 arbiters (2-of-3), an agent and a customer.
    pub(crate) struct Org {
        pub master: IdentityKeys,
        pub trustees: Vec<IdentityKeys>,
        pub arbiters: Vec<IdentityKeys>,
        pub agent: IdentityKeys,
        pub agent2: IdentityKeys,
        pub customer: IdentityKeys,
        pub policy: VerifiedPolicy,
    }

    pub(crate) fn org(seed: u64) -> Org {
        let mut rng = test_rng(seed);
        let master = IdentityKeys::generate(&mut rng);
        let trustees: Vec<_> = (0..3).map(|_| IdentityKeys::generate(&mut rng)).collect();
        let arbiters: Vec<_> = (0..3).map(|_| IdentityKeys::generate(&mut rng)).collect();
        let card = |k: &IdentityKeys, n: &str, r| IdentityCard::issue(k, n, r, 100).unwrap();
        let mcard = card(&master, "acme-master", Role::Master);
        let tcards = trustees
            .iter()
            .enumerate()
            .map(|(i, k)| card(k, &format!("t{i}"), Role::Trustee));
        let acards = arbiters
            .iter()
            .enumerate()
            .map(|(i, k)| card(k, &format!("a{i}"), Role::Arbiter));
        let params = PolicyParams::new(
            "acme",
            tcards.map(VerifiedCard::into_card).collect(),
            2,
            acards.map(VerifiedCard::into_card).collect(),
            2,
        );
        let policy = OrgPolicy::issue(&master, &mcard, params, 100).unwrap();
        Org {
            master,
            trustees,
            arbiters,
            agent: IdentityKeys::generate(&mut rng),
            agent2: IdentityKeys::generate(&mut rng),
            customer: IdentityKeys::generate(&mut rng),
            policy,
        }
    }

    fn resign(o: &Org, mut p: OrgPolicy) -> Result<VerifiedPolicy> {
        p.signature = o.master.sign(&p.signed_bytes());
        p.verify()
    }

    #[test]
    fn valid_policy_verifies_and_summarises() {
        let o = org(20);
        let again = o.policy.policy().clone().verify().unwrap();
        let s = again.summary();
        assert!(s.contains("2 of these 3"), "{s}");
        assert!(s.contains("acme"));
    }

    #[test]
    fn tampered_policy_is_refused() {
        let o = org(21);
        let mut p = o.policy.policy().clone();
        p.trustee_threshold = 1;
        assert_eq!(p.verify(), Err(Error::BadSignature("org policy")));
    }

    #[test]
    fn separation_of_duties_is_enforced() {
        let o = org(22);
        // Master as a trustee.
        let mut p = o.policy.policy().clone();
        let mut m = p.master.clone();
        m.role = Role::Trustee;
        m.signature = o.master.sign(&m.signed_bytes());
        p.trustees[0] = m;
        assert!(matches!(resign(&o, p), Err(Error::InvalidPolicy(_))));
        // One trustee listed twice.
        let mut p = o.policy.policy().clone();
        p.trustees[1] = p.trustees[0].clone();
        assert!(matches!(resign(&o, p), Err(Error::InvalidPolicy(_))));
        // A trustee who is also an arbiter (same keys under another name and role).
        let mut p = o.policy.policy().clone();
        let t0 = &o.trustees[0];
        p.arbiters[0] = IdentityCard::issue(t0, "a-dup", Role::Arbiter, 1)
            .unwrap()
            .into_card();
        assert!(matches!(resign(&o, p), Err(Error::InvalidPolicy(_))));
        // A card in the wrong role.
        let mut p = o.policy.policy().clone();
        p.arbiters[0] = IdentityCard::issue(&o.agent, "ag", Role::Agent, 1)
            .unwrap()
            .into_card();
        assert!(matches!(resign(&o, p), Err(Error::WrongRole { .. })));
    }

    #[test]
    fn impossible_thresholds_are_refused() {
        let o = org(23);
        for (te, ta) in [(0, 2), (4, 2), (2, 0), (2, 4)] {
            let mut p = o.policy.policy().clone();
            p.trustee_threshold = te;
            p.arbiter_threshold = ta;
            assert!(
                matches!(resign(&o, p), Err(Error::InvalidPolicy(_))),
                "{te} {ta}"
            );
        }
        let mut p = o.policy.policy().clone();
        p.allow_consent = false;
        p.allow_dispute = false;
        assert!(matches!(resign(&o, p), Err(Error::InvalidPolicy(_))));
    }

    #[test]
    fn agent_certificates_chain_to_the_master() {
        let o = org(24);
        let card = IdentityCard::issue(&o.agent, "bob", Role::Agent, 100).unwrap();
        let cert = AgentCertificate::issue(&o.master, &o.policy, &card, 100, 1000).unwrap();
        assert!(cert.verify(&o.policy, 500).is_ok());
        assert_eq!(
            cert.verify(&o.policy, 1100),
            Err(Error::Expired("agent certificate"))
        );
        // Issued up to CLOCK_SKEW_SECS in the verifier's future: a clock running ahead.
        let skew = crate::release::CLOCK_SKEW_SECS;
        let later = AgentCertificate::issue(&o.master, &o.policy, &card, 10_000, 1000).unwrap();
        assert!(later.verify(&o.policy, 10_000 - skew).is_ok());
        assert_eq!(
            later.verify(&o.policy, 10_000 - skew - 1),
            Err(Error::InvalidValidity("agent certificate"))
        );
        // Signed by someone else.
        let forged = AgentCertificate::issue(&o.agent2, &o.policy, &card, 100, 1000).unwrap();
        assert_eq!(
            forged.verify(&o.policy, 500),
            Err(Error::BadSignature("agent certificate"))
        );
        // Another org's policy.
        let other = org(25);
        assert_eq!(
            cert.verify(&other.policy, 500),
            Err(Error::BadSignature("agent certificate"))
        );
        let mut renamed = cert.clone();
        renamed.org = "globex".into();
        assert!(matches!(
            renamed.verify(&o.policy, 500),
            Err(Error::WrongOrg { .. })
        ));
        // Not an agent card.
        let cust = IdentityCard::issue(&o.customer, "c", Role::Customer, 1).unwrap();
        assert!(AgentCertificate::issue(&o.master, &o.policy, &cust, 100, 10).is_err());
    }
}
