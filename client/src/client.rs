//! The client state machine: an [`Account`] talking to the relay through a [`Session`].
//!
//! Every item of a conversation — including this account's own epochs and messages — is
//! processed in relay order from the conversation's cursor by one path, [`Client::sync`]: the
//! relay's answer to a `Send` or `PutEpoch` only says "stored", and the item is then read back
//! and verified like any other. That keeps one ordering and one set of checks.
//!
//! **Architecture Invariant:** a message is shown as genuine only if its epoch record passed
//! every check (policy signature and pinned master, chain, agent certificates, byte-for-byte
//! escrow recomputation) and the message itself opened under that epoch's keys.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent, ReleaseBasis},
    card::{IdentityCard, Role, VerifiedCard},
    epoch::{EpochRecord, HandOff, NewEpoch, VerifiedEpoch},
    ids::ConversationId,
    keys::SigningPublicKey,
    message::{ContentKind, Envelope, EpochKeys, REORDER_WINDOW, ReplayWindow, ReplayWindows},
    policy::{AgentCertificate, OrgPolicy, PolicyParams, VerifiedPolicy},
    wire::{ConversationInfo, ErrorCode, Item, Push, Request, Response, Sequenced},
};
use serde::Serialize;

use crate::account::{Account, ConvMeta, EpochState, EpochStatus, LogEntry, PinSource, PinStatus};
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::notice::{Audience, ReleaseNotice, counts_as_release};
use crate::session::Session;
use crate::tls::TlsOptions;
use crate::{now, rng};

/// Items fetched per `History` page.
pub const HISTORY_PAGE: u32 = 200;
/// How many times a missing message is asked for again before the client stops asking and
/// shows its gap as not delivered.
pub const REFETCH_LIMIT: u32 = 3;
/// At most this many `History` pages per sync are spent refetching gaps.
pub const REFETCH_PAGES: u32 = 4;
/// Pushes kept for the caller by [`Client::drain_pushes`].
pub const PUSH_BACKLOG: usize = 256;
/// How long agent certificates issued by `add_agent` are valid (one year).
pub const AGENT_CERT_VALIDITY_SECS: u64 = 365 * 86_400;

/// Something that happened while processing relay data, for a live view.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// The conversation concerned.
    pub conversation: ConversationId,
    /// What happened.
    pub kind: EventKind,
}

/// What an [`Event`] is.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum EventKind {
    /// A new item in the timeline.
    Entry {
        /// The item.
        entry: LogEntry,
    },
    /// A conversation was assigned to this agent.
    Assigned {
        /// The customer's name.
        customer: String,
    },
    /// Another member received items up to `seq`.
    Delivered {
        /// The member.
        member: String,
        /// Up to.
        seq: u64,
    },
    /// Another member read items up to `seq` (end-to-end receipt).
    Read {
        /// The member.
        member: String,
        /// Up to.
        seq: u64,
    },
    /// Something the user should know.
    Warning {
        /// The text.
        text: String,
    },
}

/// A push the conversation machinery does not handle (releases, tickets), for the caller.
pub type OtherPush = Push;

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
}

/// The result of opening a conversation.
#[derive(Clone, Debug, Serialize)]
pub struct OpenedConversation {
    /// The conversation id.
    pub conversation: ConversationId,
    /// The org.
    pub org: String,
    /// The assigned agent.
    pub agent: String,
    /// The agent's fingerprint.
    pub agent_fingerprint: String,
    /// The policy in plain words.
    pub summary: String,
    /// The org master's fingerprint (pinned).
    pub org_fingerprint: String,
    /// Warnings (trust on first use, blocked keys).
    pub warnings: Vec<String>,
}

/// A line of a rendered history.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "line")]
pub enum HistoryLine {
    /// A timeline item, with the delivery state of this account's own messages.
    Item {
        /// The item.
        entry: LogEntry,
        /// For own messages: "sent", "delivered" or "read".
        #[serde(skip_serializing_if = "Option::is_none")]
        delivery: Option<&'static str>,
    },
    /// Messages that never arrived.
    Gap {
        /// Epoch.
        epoch: u32,
        /// Sender name.
        sender: String,
        /// Missing counters, as sorted inclusive ranges (`[[1, 1], [4, 9]]`).
        counters: Vec<(u64, u64)>,
        /// `Some(n)`: the client asked the relay for these messages `n` times
        /// ([`REFETCH_LIMIT`]) and stopped asking: not delivered.
        #[serde(skip_serializing_if = "Option::is_none")]
        requests: Option<u32>,
    },
}

/// A conversation's history as shown to the user.
#[derive(Clone, Debug, Serialize)]
pub struct History {
    /// The conversation.
    pub conversation: ConversationId,
    /// The org.
    pub org: String,
    /// The policy summary, if the policy is known.
    pub summary: Option<String>,
    /// The lines.
    pub lines: Vec<HistoryLine>,
}

/// An account connected to a relay.
#[derive(Debug)]
pub struct Client {
    pub(crate) account: Account,
    pub(crate) session: Session,
    /// Verified policies by (org, version): verification is cheap but not free.
    policies: HashMap<(String, u32), VerifiedPolicy>,
    /// Key material of readable epochs.
    keys: HashMap<(ConversationId, u32), EpochKeys>,
    /// Pushes for the caller, set aside while draining (bounded by [`PUSH_BACKLOG`]; they are
    /// hints, and the state they announce can be asked for again).
    other_pushes: VecDeque<Push>,
}

impl Client {
    /// Connects `account` to the relay at `url`, authenticates, and checks the relay's keys
    /// against those pinned for `url` (pinning them on first contact). A `wss://` relay must
    /// present a certificate that the system's roots vouch for; see [`Self::connect_with`].
    ///
    /// # Errors
    /// Transport and handshake errors, [`ClientError::RelayKeyChanged`].
    pub async fn connect(account: Account, url: &str) -> Result<Self> {
        Self::connect_with(account, url, &TlsOptions::default()).await
    }

    /// As [`Self::connect`], trusting for a `wss://` relay the certificates `tls` names (for
    /// example a private CA's, from `--ca-file`).
    ///
    /// # Errors
    /// As [`Self::connect`], and [`ClientError::Tls`].
    pub async fn connect_with(account: Account, url: &str, tls: &TlsOptions) -> Result<Self> {
        Self::try_connect_with(account, url, tls)
            .await
            .map_err(|(_, e)| e)
    }

    /// As [`Self::connect`], but gives the account back on failure (to work offline).
    ///
    /// # Errors
    /// As [`Self::connect`], with the account.
    pub async fn try_connect(
        account: Account,
        url: &str,
    ) -> core::result::Result<Self, (Account, ClientError)> {
        Self::try_connect_with(account, url, &TlsOptions::default()).await
    }

    /// As [`Self::connect_with`], but gives the account back on failure (to work offline).
    ///
    /// # Errors
    /// As [`Self::connect_with`], with the account.
    pub async fn try_connect_with(
        account: Account,
        url: &str,
        tls: &TlsOptions,
    ) -> core::result::Result<Self, (Account, ClientError)> {
        let session = match Self::handshake(&account, url, tls).await {
            Ok(s) => s,
            Err(e) => return Err((account, e)),
        };
        if let Err(e) = account.check_relay(url, session.relay_key(), session.welcome().log_key) {
            session.close().await;
            return Err((account, e));
        }
        Ok(Self {
            account,
            session,
            policies: HashMap::new(),
            keys: HashMap::new(),
            other_pushes: VecDeque::new(),
        })
    }

    async fn handshake(account: &Account, url: &str, tls: &TlsOptions) -> Result<Session> {
        let conn = Connection::connect_with(url, tls).await?;
        Session::establish(conn, account.keys(), account.card().card()).await
    }

    /// The account.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Whether the relay knows this account's card.
    pub fn registered(&self) -> bool {
        self.session.welcome().registered
    }

    /// Closes the connection and gives the account back.
    pub async fn close(self) -> Account {
        self.session.close().await;
        self.account
    }

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
    /// [`ClientError::Invalid`] if nothing is pending and the relay has no card.
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
        let policy = self.verify_pinned(raw, PinSource::Tofu)?;
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

    fn remember_policy(&mut self, policy: &VerifiedPolicy) -> Result<()> {
        self.account.save_policy(policy.policy())?;
        self.policies
            .insert((policy.org.clone(), policy.version), policy.clone());
        Ok(())
    }

    /// Verifies a policy and checks its master against the pin; with no pin, pins it with
    /// `source`.
    fn verify_pinned(&self, raw: OrgPolicy, source: PinSource) -> Result<VerifiedPolicy> {
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

    // --- master -------------------------------------------------------------------------

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
            return Err(ClientError::Invalid(format!(
                "this account is not the master of org {org}"
            )));
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
    async fn party_card(&mut self, entry: &str, role: Role) -> Result<IdentityCard> {
        let (name, expected) = match entry.split_once('=') {
            Some((n, fp)) => (n.trim(), Some(fp)),
            None => (entry.trim(), None),
        };
        let card = self.fetch_card(name).await?.into_card().verify_as(role)?;
        if let Some(fp) = expected
            && !card.fingerprint().matches(fp)
        {
            return Err(ClientError::CardFingerprintMismatch {
                name: name.to_owned(),
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

    // --- customer -----------------------------------------------------------------------

    /// Customer: opens a conversation with `org`. Verifies the policy (against the pinned
    /// master, or `fingerprint`, or trust on first use with a warning), the assigned agent's
    /// certificate, then creates and stores epoch 0.
    ///
    /// # Errors
    /// [`ClientError::WrongRole`], [`ClientError::FingerprintMismatch`],
    /// [`ClientError::OrgKeyChanged`], verification and relay errors.
    pub async fn open_conversation(
        &mut self,
        org: &str,
        fingerprint: Option<&str>,
    ) -> Result<OpenedConversation> {
        self.account.require(Role::Customer, "open")?;
        let id = ConversationId::random(&mut rng()?);
        let (agent, certificate, raw) = match self
            .session
            .request(Request::OpenConversation {
                org: org.to_owned(),
                conversation: id,
            })
            .await?
        {
            Response::Opened {
                agent,
                certificate,
                policy,
            } => (agent, certificate, policy),
            other => return Err(unexpected("OpenConversation", &other)),
        };
        let mut warnings = Vec::new();
        let master = raw.master.clone().verify()?;
        let org_fingerprint = master.fingerprint().to_string();
        if raw.org != org {
            return Err(ClientError::UnexpectedResponse(format!(
                "opened a conversation with {org} but got the policy of {}",
                raw.org
            )));
        }
        let source = match (self.account.org_pin(org)?, fingerprint) {
            (Some(_), _) => PinSource::Tofu,
            (None, Some(fp)) => {
                if !master.fingerprint().matches(fp) {
                    return Err(ClientError::FingerprintMismatch {
                        org: org.to_owned(),
                        actual: org_fingerprint,
                    });
                }
                PinSource::Fingerprint
            }
            (None, None) => {
                warnings.push(format!(
                    "first contact with {org}: its master key (fingerprint {org_fingerprint}) \
                     was trusted on first use; compare it with the one the business publishes, \
                     or pass --org-fingerprint next time"
                ));
                PinSource::Tofu
            }
        };
        if let (Some(pin), Some(fp)) = (self.account.org_pin(org)?, fingerprint) {
            let pinned = pin.master.clone().verify()?;
            if !pinned.fingerprint().matches(fp) {
                return Err(ClientError::FingerprintMismatch {
                    org: org.to_owned(),
                    actual: pinned.fingerprint().to_string(),
                });
            }
        }
        let policy = self.verify_pinned(raw, source)?;
        self.remember_policy(&policy)?;
        let agent_card = certificate.verify(&policy, now())?;
        if agent_card.name != agent.name || !agent_card.same_keys(&agent) {
            return Err(ClientError::UnexpectedResponse(
                "the assigned agent's card does not match its certificate".into(),
            ));
        }
        let meta = ConvMeta {
            id,
            org: org.to_owned(),
            customer: self.account.name().to_owned(),
            agent: agent_card.name.clone(),
            created_at: now(),
            cursor: 0,
            delivered_sent: 0,
            read_local: 0,
            read_sent: 0,
            delivered_by: BTreeMap::new(),
            read_by: BTreeMap::new(),
            last_epoch: None,
            transferred_out: false,
        };
        self.account.save_conversation(&meta)?;
        if self.account.observe_peer(&agent_card)? == PinStatus::Changed
            || self.account.peer_blocked(&agent_card.name)?
        {
            warnings.push(
                ClientError::KeyChanged {
                    name: agent_card.name.clone(),
                }
                .to_string(),
            );
        } else {
            self.create_epoch(
                &id,
                &policy,
                vec![self.account.card().clone(), agent_card.clone()],
                None,
            )
            .await?;
        }
        Ok(OpenedConversation {
            conversation: id,
            org: org.to_owned(),
            agent: agent_card.name.clone(),
            agent_fingerprint: agent_card.fingerprint().to_string(),
            summary: policy.summary(),
            org_fingerprint,
            warnings,
        })
    }

    /// Every item of a conversation the relay serves this account, paging through `History`.
    ///
    /// # Errors
    /// Relay errors.
    pub(crate) async fn history_items(&self, id: &ConversationId) -> Result<Vec<Sequenced>> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let (items, more) = match self
                .session
                .request(Request::History {
                    conversation: *id,
                    after,
                    limit: HISTORY_PAGE,
                })
                .await?
            {
                Response::Items { items, more } => (items, more),
                other => return Err(unexpected("History", &other)),
            };
            let Some(last) = items.last().map(|s| s.seq) else {
                break;
            };
            out.extend(items);
            if !more {
                break;
            }
            after = page_advances(after, last)?;
        }
        Ok(out)
    }

    // --- sending ------------------------------------------------------------------------

    /// Sends a text message; returns its relay sequence number.
    ///
    /// # Errors
    /// [`ClientError::CannotSend`], [`ClientError::KeyChanged`], relay errors.
    pub async fn send_text(&mut self, id: &ConversationId, text: &str) -> Result<u64> {
        self.send_kind(id, ContentKind::Text, text.as_bytes()).await
    }

    /// Sends an end-to-end read receipt for everything read so far, if there is anything new
    /// from other members. Returns the sequence number covered.
    ///
    /// # Errors
    /// As [`Self::send_text`].
    pub async fn send_read_receipt(&mut self, id: &ConversationId) -> Result<Option<u64>> {
        let meta = self.meta(id)?;
        let me = self.account.name().to_owned();
        let newest_from_others = self
            .account
            .log(id)?
            .iter()
            .filter_map(|e| match e {
                LogEntry::Message {
                    seq,
                    sender,
                    kind: ContentKind::Text,
                    ..
                } if *sender != me => Some(*seq),
                _ => None,
            })
            .max();
        let Some(upto) = newest_from_others.filter(|s| *s > meta.read_sent) else {
            return Ok(None);
        };
        self.send_kind(id, ContentKind::Read, &upto.to_be_bytes())
            .await?;
        let mut meta = self.meta(id)?;
        meta.read_sent = meta.read_sent.max(upto);
        self.account.save_conversation(&meta)?;
        Ok(Some(upto))
    }

    async fn send_kind(
        &mut self,
        id: &ConversationId,
        kind: ContentKind,
        body: &[u8],
    ) -> Result<u64> {
        self.sync(id).await?;
        let mut retried = false;
        loop {
            let mut state = self.sending_epoch(id).await?;
            // Persist the next counter before sealing (docs/design.md §3): a crash after this point
            // burns a counter, never reuses one.
            let counter = state.next_counter;
            state.next_counter = counter.saturating_add(1);
            self.account.save_epoch(id, &state)?;
            self.load_keys(id, &state).await?;
            let keys = self
                .keys
                .get(&(*id, state.record.epoch))
                .ok_or_else(|| cannot_send(id, "epoch keys unavailable"))?;
            let env = keys.seal_message(self.account.keys(), counter, kind, now(), body)?;
            match self.session.request(Request::Send(env)).await {
                Ok(Response::Stored { seq }) => {
                    self.sync(id).await?;
                    return Ok(seq);
                }
                Ok(other) => return Err(unexpected("Send", &other)),
                Err(ClientError::Relay {
                    code: ErrorCode::CounterReused | ErrorCode::EpochFull | ErrorCode::Conflict,
                    ..
                }) if !retried => {
                    // The relay has this counter already (this home was restored from an old
                    // copy, or another device shares it): never reuse it. Or the epoch holds
                    // the policy's limit of messages (another member's messages count too).
                    // Either way: open a new epoch (or follow one another member just opened).
                    // If another member opened a newer epoch meanwhile (it also found this
                    // one full), send in theirs: rotating again would open one epoch too many.
                    retried = true;
                    self.sync(id).await?;
                    let newest = self.account.epochs(id)?.last().map(|e| e.record.epoch);
                    if newest.is_none_or(|e| e <= state.record.epoch) {
                        self.rotate(id).await?;
                    }
                }
                Err(ClientError::Relay {
                    code: ErrorCode::StaleEpoch,
                    ..
                }) if !retried => {
                    // Another member opened a newer epoch: the sync brings it, then send there.
                    retried = true;
                    self.sync(id).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The epoch this account sends in now: checks membership and pins, creates epoch 0 for a
    /// customer whose conversation has none, rotates when the policy's limit is reached.
    async fn sending_epoch(&mut self, id: &ConversationId) -> Result<EpochState> {
        let meta = self.meta(id)?;
        if self.account.role() == Role::Agent
            && (meta.transferred_out || meta.agent != self.account.name())
        {
            return Err(cannot_send(
                id,
                &format!(
                    "it is assigned to {} now (this agent was transferred out)",
                    meta.agent
                ),
            ));
        }
        let epochs = self.account.epochs(id)?;
        let Some(last) = epochs.last().cloned() else {
            if self.account.role() != Role::Customer {
                return Err(cannot_send(
                    id,
                    "the customer has not opened the first epoch yet",
                ));
            }
            let policy = self.latest_policy(&meta.org).await?;
            let agent = self.agent_certificate(&policy, &meta.agent).await?;
            self.pin_or_block(&agent)?;
            return self
                .create_epoch(id, &policy, vec![self.account.card().clone(), agent], None)
                .await;
        };
        match &last.status {
            EpochStatus::Member => {}
            EpochStatus::Refused(reason) => {
                return Err(cannot_send(
                    id,
                    &format!(
                        "its current epoch {} was refused: {reason}",
                        last.record.epoch
                    ),
                ));
            }
            EpochStatus::NotMember | EpochStatus::HandedOver => {
                return Err(cannot_send(
                    id,
                    "this account is not a member of the current epoch (it was transferred)",
                ));
            }
        }
        for m in &last.record.members {
            if m.signing_key != self.account.keys().signing_public()
                && self.account.peer_blocked(&m.name)?
            {
                return Err(ClientError::KeyChanged {
                    name: m.name.clone(),
                });
            }
        }
        let policy = self
            .policy(&last.record.org, last.record.policy_version)
            .await?;
        let age = now().saturating_sub(last.record.created_at);
        if last.messages >= u64::from(policy.rotate_after_messages)
            || age >= policy.rotate_after_secs
        {
            return self.rotate(id).await;
        }
        Ok(last)
    }

    /// The conversation's newest epoch, which this account must be a member of (`none`: the
    /// refusal when there is no epoch at all).
    fn current_member_epoch(&self, id: &ConversationId, none: &str) -> Result<EpochState> {
        let last = self
            .account
            .epochs(id)?
            .pop()
            .ok_or_else(|| cannot_send(id, none))?;
        if last.status != EpochStatus::Member {
            return Err(cannot_send(
                id,
                "this account is not a member of the current epoch",
            ));
        }
        Ok(last)
    }

    /// Opens the next epoch with the current members, under the org's latest policy.
    async fn rotate(&mut self, id: &ConversationId) -> Result<EpochState> {
        let meta = self.meta(id)?;
        let last = self.current_member_epoch(id, "there is no epoch to rotate")?;
        let policy = self.latest_policy(&meta.org).await?;
        let mut members = Vec::new();
        for m in &last.record.members {
            members.push(m.clone().verify()?);
        }
        self.create_epoch(id, &policy, members, Some(&last.record))
            .await
    }

    /// Creates, stores and reads back an epoch.
    async fn create_epoch(
        &mut self,
        id: &ConversationId,
        policy: &VerifiedPolicy,
        members: Vec<VerifiedCard>,
        previous: Option<&EpochRecord>,
    ) -> Result<EpochState> {
        let epoch = match previous {
            None => 0,
            Some(p) => next_epoch(p.epoch)?,
        };
        let (record, _k) = EpochRecord::create(
            &mut rng()?,
            self.account.keys(),
            policy,
            NewEpoch {
                conversation: *id,
                epoch,
                members: &members,
                previous,
                now: now(),
            },
        )?;
        match self
            .session
            .request(Request::PutEpoch(record.into_record()))
            .await
        {
            Ok(Response::Stored { .. }) => {}
            Ok(other) => return Err(unexpected("PutEpoch", &other)),
            // Another member opened this epoch number first: use theirs.
            Err(ClientError::Relay {
                code: ErrorCode::StaleEpoch | ErrorCode::Conflict,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        self.sync(id).await?;
        let state = self
            .account
            .epochs(id)?
            .pop()
            .ok_or_else(|| cannot_send(id, "the new epoch did not come back from the relay"))?;
        match &state.status {
            EpochStatus::Member => Ok(state),
            EpochStatus::Refused(reason) => Err(ClientError::EpochRefused {
                conversation: id.to_string(),
                epoch: state.record.epoch,
                reason: reason.clone(),
            }),
            _ => Err(cannot_send(
                id,
                "this account is not a member of the current epoch",
            )),
        }
    }

    // --- transfer -----------------------------------------------------------------------

    /// Agent: hands the conversation to agent `to`: asks the relay to reassign, opens the next
    /// epoch for [customer, `to`], and, if the policy allows, hands over the earlier epochs this
    /// agent was a member of. Returns the new epoch number.
    ///
    /// # Errors
    /// [`ClientError::WrongRole`], [`ClientError::CannotSend`], [`ClientError::KeyChanged`],
    /// relay and verification errors.
    pub async fn transfer(&mut self, id: &ConversationId, to: &str) -> Result<u32> {
        self.account.require(Role::Agent, "transfer")?;
        self.sync(id).await?;
        let mut meta = self.meta(id)?;
        let last = self.current_member_epoch(id, "the conversation has no epoch yet")?;
        let policy = self.latest_policy(&meta.org).await?;
        let new_agent = self.agent_certificate(&policy, to).await?;
        self.pin_or_block(&new_agent)?;
        let customer = last
            .record
            .members
            .iter()
            .find(|m| m.role == Role::Customer)
            .cloned()
            .ok_or_else(|| cannot_send(id, "the current epoch has no customer"))?
            .verify()?;
        expect_ok(
            self.session
                .request(Request::Transfer {
                    conversation: *id,
                    agent: to.to_owned(),
                })
                .await?,
        )?;
        let epoch = next_epoch(last.record.epoch)?;
        let (record, _k) = EpochRecord::create(
            &mut rng()?,
            self.account.keys(),
            &policy,
            NewEpoch {
                conversation: *id,
                epoch,
                members: &[customer, new_agent.clone()],
                previous: Some(&last.record),
                now: now(),
            },
        )?;
        match self
            .session
            .request(Request::PutEpoch(record.into_record()))
            .await?
        {
            Response::Stored { .. } => {}
            other => return Err(unexpected("PutEpoch", &other)),
        }
        if policy.history_handoff {
            // Only epochs this agent was a member of: a hand-off is opened only if its sender
            // was a member of each epoch it carries.
            let mut secrets = Vec::new();
            for st in self.account.epochs(id)? {
                if st.status == EpochStatus::Member
                    && let Some(k) = self.account.secret(id, st.record.epoch)?
                {
                    secrets.push((st.record.epoch, k));
                }
            }
            if !secrets.is_empty() {
                let refs: Vec<(u32, &sealdesk_protocol::secret::EpochSecret)> =
                    secrets.iter().map(|(e, k)| (*e, k)).collect();
                let handoff = HandOff::create(
                    &mut rng()?,
                    self.account.keys(),
                    &new_agent,
                    *id,
                    &refs,
                    now(),
                )?;
                match self.session.request(Request::PutHandOff(handoff)).await? {
                    Response::Stored { .. } | Response::Ok => {}
                    other => return Err(unexpected("PutHandOff", &other)),
                }
            }
        }
        meta.agent = to.to_owned();
        meta.transferred_out = true;
        self.account.save_conversation(&meta)?;
        self.sync(id).await?;
        Ok(epoch)
    }

    // --- receiving ----------------------------------------------------------------------

    /// Refreshes the conversation list from the relay and catches every conversation up from
    /// its cursor.
    ///
    /// # Errors
    /// Relay and storage errors (verification failures are recorded, not returned).
    pub async fn sync_all(&mut self) -> Result<Vec<Event>> {
        let mut events = self.drain_pushes().await?;
        events.extend(self.refresh_conversations().await?);
        for meta in self.account.conversations()? {
            if meta.transferred_out && self.account.role() == Role::Agent {
                // The relay no longer serves it to this agent; catch up once, quietly.
                match self.sync(&meta.id).await {
                    Ok(ev) => events.extend(ev),
                    Err(ClientError::Relay {
                        code: ErrorCode::Forbidden | ErrorCode::NotFound,
                        ..
                    }) => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            events.extend(self.sync(&meta.id).await?);
        }
        Ok(events)
    }

    /// Handles every push already queued (delivery updates, items). Pushes the conversation
    /// machinery does not handle are kept for [`Self::take_other_pushes`].
    ///
    /// # Errors
    /// Relay and storage errors.
    pub async fn drain_pushes(&mut self) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        while let Some(push) = self.session.try_push() {
            match self.handle_push(push).await? {
                Ok(ev) => events.extend(ev),
                Err(other) => {
                    if self.other_pushes.len() >= PUSH_BACKLOG {
                        self.other_pushes.pop_front();
                    }
                    self.other_pushes.push_back(other);
                }
            }
        }
        Ok(events)
    }

    /// Pushes set aside by [`Self::drain_pushes`] (release requests, tickets, updates).
    pub fn take_other_pushes(&mut self) -> Vec<Push> {
        self.other_pushes.drain(..).collect()
    }

    /// Asks the relay for this account's conversations and records any not known locally.
    ///
    /// # Errors
    /// Relay and storage errors.
    pub async fn refresh_conversations(&mut self) -> Result<Vec<Event>> {
        let infos = match self.session.request(Request::ListConversations).await? {
            Response::Conversations(c) => c,
            other => return Err(unexpected("ListConversations", &other)),
        };
        let mut events = Vec::new();
        for info in infos {
            events.extend(self.learn_conversation(&info)?);
        }
        Ok(events)
    }

    fn learn_conversation(&mut self, info: &ConversationInfo) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        match self.account.conversation(&info.conversation)? {
            Some(mut meta) => {
                if meta.agent != info.agent {
                    meta.agent = info.agent.clone();
                    self.account.save_conversation(&meta)?;
                }
            }
            None => {
                let meta = ConvMeta {
                    id: info.conversation,
                    org: info.org.clone(),
                    customer: info.customer.clone(),
                    agent: info.agent.clone(),
                    created_at: info.created_at,
                    cursor: 0,
                    delivered_sent: 0,
                    read_local: 0,
                    read_sent: 0,
                    delivered_by: BTreeMap::new(),
                    read_by: BTreeMap::new(),
                    last_epoch: None,
                    transferred_out: false,
                };
                self.account.save_conversation(&meta)?;
                if self.account.role() == Role::Agent && info.agent == self.account.name() {
                    events.push(Event {
                        conversation: info.conversation,
                        kind: EventKind::Assigned {
                            customer: info.customer.clone(),
                        },
                    });
                }
            }
        }
        Ok(events)
    }

    /// Catches one conversation up from its cursor, then tells the relay what was delivered.
    ///
    /// # Errors
    /// Relay and storage errors.
    pub async fn sync(&mut self, id: &ConversationId) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        loop {
            let meta = self.meta(id)?;
            let (items, more) = match self
                .session
                .request(Request::History {
                    conversation: *id,
                    after: meta.cursor,
                    limit: HISTORY_PAGE,
                })
                .await?
            {
                Response::Items { items, more } => (items, more),
                other => return Err(unexpected("History", &other)),
            };
            // Items are processed in sequence order whatever order the page lists them in:
            // an item listed after a later one would otherwise fall below the cursor and be
            // skipped as already seen.
            let mut items = items;
            items.sort_by_key(|s| s.seq);
            for item in items {
                events.extend(self.ingest(item).await?);
            }
            if !more {
                break;
            }
            // A page with more after it must move the cursor on: asking again from the same
            // cursor would get the same page forever. One that moves nothing (all of it at or
            // below the cursor) is a relay answer that cannot be right, and said so.
            page_advances(meta.cursor, self.meta(id)?.cursor)?;
        }
        events.extend(self.refetch_gaps(id).await?);
        let mut meta = self.meta(id)?;
        if meta.cursor > meta.delivered_sent {
            expect_ok(
                self.session
                    .request(Request::Delivered {
                        conversation: *id,
                        seq: meta.cursor,
                    })
                    .await?,
            )?;
            meta.delivered_sent = meta.cursor;
            self.account.save_conversation(&meta)?;
        }
        Ok(events)
    }

    /// Handles a push from the relay. Pushes the conversation machinery does not handle
    /// (release requests, tickets, release updates) are returned as `Err(push)` inside `Ok`.
    ///
    /// # Errors
    /// Relay and storage errors.
    pub async fn handle_push(
        &mut self,
        push: Push,
    ) -> Result<core::result::Result<Vec<Event>, OtherPush>> {
        match push {
            Push::Item(s) => {
                let id = s.conversation;
                if self.account.conversation(&id)?.is_none() {
                    self.refresh_conversations().await?;
                }
                let Some(meta) = self.account.conversation(&id)? else {
                    return Ok(Ok(Vec::new()));
                };
                if s.seq <= meta.cursor {
                    return Ok(Ok(Vec::new()));
                }
                if s.seq == meta.cursor + 1 {
                    let mut events = self.ingest(s).await?;
                    let mut meta = self.meta(&id)?;
                    if meta.cursor > meta.delivered_sent {
                        expect_ok(
                            self.session
                                .request(Request::Delivered {
                                    conversation: id,
                                    seq: meta.cursor,
                                })
                                .await?,
                        )?;
                        meta.delivered_sent = meta.cursor;
                        self.account.save_conversation(&meta)?;
                    }
                    events.extend(Vec::new());
                    Ok(Ok(events))
                } else {
                    Ok(Ok(self.sync(&id).await?))
                }
            }
            Push::Assigned {
                conversation,
                customer,
            } => {
                let customer = customer.verify_as(Role::Customer)?;
                self.account.observe_peer(&customer)?;
                let mut events = self.refresh_conversations().await?;
                if !events.iter().any(|e| {
                    e.conversation == conversation && matches!(e.kind, EventKind::Assigned { .. })
                }) {
                    events.push(Event {
                        conversation,
                        kind: EventKind::Assigned {
                            customer: customer.name.clone(),
                        },
                    });
                }
                if self.account.conversation(&conversation)?.is_some() {
                    events.extend(self.sync(&conversation).await?);
                }
                Ok(Ok(events))
            }
            Push::Delivered {
                conversation,
                member,
                seq,
            } => {
                let Some(mut meta) = self.account.conversation(&conversation)? else {
                    return Ok(Ok(Vec::new()));
                };
                let entry = meta.delivered_by.entry(member.clone()).or_insert(0);
                if seq <= *entry {
                    return Ok(Ok(Vec::new()));
                }
                *entry = seq;
                self.account.save_conversation(&meta)?;
                Ok(Ok(vec![Event {
                    conversation,
                    kind: EventKind::Delivered { member, seq },
                }]))
            }
            other => Ok(Err(other)),
        }
    }

    /// Processes one item in relay order. Verification failures are recorded in the
    /// timeline (the epoch refused, the message rejected); only transport and storage errors
    /// abort, leaving the cursor before the item so it is retried.
    async fn ingest(&mut self, s: Sequenced) -> Result<Vec<Event>> {
        let id = s.conversation;
        let mut meta = self.meta(&id)?;
        if s.seq <= meta.cursor {
            return Ok(Vec::new());
        }
        let mut events = Vec::new();
        match s.item {
            Item::Epoch(record) => {
                if let Some(entry) = self
                    .ingest_epoch(&mut meta, s.seq, s.stored_at, record)
                    .await?
                {
                    events.push(entry);
                }
            }
            Item::Message(env) => {
                events.extend(
                    self.ingest_message(&mut meta, s.seq, s.stored_at, &env, true)
                        .await?,
                );
            }
            Item::HandOff(h) => {
                events.extend(self.ingest_handoff(&mut meta, s.seq, &h).await?);
            }
            // A consent the customer shared with the master: the customer keeps its own list
            // (`sealdesk consent list`); the master looks it up when unlocking.
            Item::Consent(_) => {}
            Item::Notice { entry, index } => {
                events.extend(
                    self.ingest_notice(&meta, s.seq, s.stored_at, &entry, index)
                        .await?,
                );
            }
        }
        meta.cursor = s.seq;
        self.account.save_conversation(&meta)?;
        Ok(events)
    }

    /// A notice delivered into the conversation: each entry is verified and logged on its own;
    /// a trustee's release entry joins the notice of its release request, and the live view
    /// hears about the request when it first appears, when it opens, and when an entry of it
    /// fails or is delivered again — not once per trustee.
    async fn ingest_notice(
        &mut self,
        meta: &ConvMeta,
        seq: u64,
        stored_at: u64,
        entry: &AuditEntry,
        index: u64,
    ) -> Result<Vec<Event>> {
        let id = meta.id;
        // Genuine only if signed, about this conversation, and proven to be in the
        // audit log under a tree head consistent with the one pinned before.
        let mut verified = entry.verify().is_ok() && entry.event.conversation() == Some(id);
        // A release notice is genuine only if one of the org's trustees signed it: the
        // relay could otherwise log an entry under any key it likes.
        let policy = if let AuditEvent::Release { .. } = &entry.event {
            match self.latest_policy(&meta.org).await {
                Ok(p) => Some(p),
                Err(e) if is_transient(&e) => return Err(e),
                Err(_) => None,
            }
        } else {
            None
        };
        if verified && let AuditEvent::Release { org, .. } = &entry.event {
            verified = *org == meta.org && counts_as_release(entry, policy.as_ref(), Some(&id));
        }
        // Every kind of entry has the signers allowed to make it (a revocation: the customer;
        // an erasure: the customer or the relay; ...), checked here like the release's.
        if verified {
            let allowed = self.allowed_signers(Some(&meta.org), Some(id)).await?;
            verified = entry.check_signer(&allowed).is_ok();
        }
        if verified {
            let (head, _) = self.checked_tree_head().await?;
            verified = match self.check_inclusion(entry, index, &head).await {
                Ok(()) => true,
                Err(e) if is_transient(&e) => return Err(e),
                Err(_) => false,
            };
        }
        // The relay could deliver the same logged entry again (at the same or a new
        // index): one logged release is one opening, shown once.
        let leaf = entry.leaf_hash();
        let duplicate = verified && self.account.notice_seen(&id, &leaf)?;
        if verified && !duplicate {
            self.account.mark_notice_seen(&id, &leaf)?;
        }
        let release = ReleaseNotice::from_entry(index, entry, verified, policy.as_ref())
            .map(|n| if duplicate { n.as_repeat() } else { n });
        let mut text = describe_notice(entry, verified, audience_of(&self.account));
        if duplicate {
            text = format!("{text} — a repeat of a notice already shown, not a new opening");
        }
        let e = LogEntry::Notice {
            seq,
            stored_at,
            text,
            verified: verified && !duplicate,
            index,
            release: release.clone().map(Box::new),
        };
        let Some(release) = release else {
            self.account.append_log(&id, &e)?;
            return Ok(vec![Event {
                conversation: id,
                kind: EventKind::Entry { entry: e },
            }]);
        };
        let before = self.release_line(&id, &release.request)?;
        self.account.append_log(&id, &e)?;
        let after = self.release_line(&id, &release.request)?;
        let news = match (&before, &after) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(b), Some(a)) => {
                release_of(b).is_some_and(|b| {
                    release_of(a).is_some_and(|a| {
                        a.opened() != b.opened() || a.contradicting.len() != b.contradicting.len()
                    })
                }) || !verified
                    || duplicate
            }
        };
        Ok(match after {
            Some(line) if news => vec![Event {
                conversation: id,
                kind: EventKind::Entry { entry: line },
            }],
            _ => Vec::new(),
        })
    }

    /// The history line of one release request, as [`history`] shows it.
    fn release_line(&self, id: &ConversationId, request: &str) -> Result<Option<LogEntry>> {
        let audience = audience_of(&self.account);
        let entries = self.account.log(id)?.into_iter().filter(
            |e| matches!(e, LogEntry::Notice { release: Some(r), .. } if r.request == request),
        );
        Ok(group_notices(entries, audience).into_iter().next())
    }

    async fn ingest_epoch(
        &mut self,
        meta: &mut ConvMeta,
        seq: u64,
        stored_at: u64,
        record: EpochRecord,
    ) -> Result<Option<Event>> {
        let id = meta.id;
        if let Some(existing) = self.account.epoch(&id, record.epoch)?
            && existing.seq == seq
        {
            return Ok(None); // already processed (crash before the cursor was saved)
        }
        let verdict = self.check_epoch(meta, &record).await;
        let (status, secret) = match verdict {
            Ok(Some(k)) => (EpochStatus::Member, Some(k)),
            Ok(None) => (EpochStatus::NotMember, None),
            Err(e) if is_transient(&e) => return Err(e),
            Err(e) => (EpochStatus::Refused(e.to_string()), None),
        };
        if let Some(k) = &secret {
            self.account.save_secret(&id, record.epoch, k)?;
        }
        let names: Vec<String> = record.members.iter().map(|m| m.name.clone()).collect();
        let creator = record
            .members
            .iter()
            .find(|m| m.signing_key == record.creator)
            .map(|m| m.name.clone())
            .or_else(|| self.name_of_key(&id, &record.creator))
            .unwrap_or_else(|| short_key(&record.creator));
        let epoch = record.epoch;
        let duplicate = self.account.epoch(&id, epoch)?.is_some();
        if !duplicate {
            self.account.save_epoch(
                &id,
                &EpochState {
                    record,
                    seq,
                    status: status.clone(),
                    next_counter: 0,
                    windows: ReplayWindows::default(),
                    messages: 0,
                },
            )?;
            meta.last_epoch = Some(epoch);
            if status != EpochStatus::Member {
                self.keys.remove(&(id, epoch));
            }
        }
        if self.account.role() == Role::Agent && !duplicate {
            let was_member = epoch
                .checked_sub(1)
                .and_then(|p| self.account.epoch(&id, p).ok().flatten())
                .is_some_and(|p| p.status == EpochStatus::Member);
            match status {
                EpochStatus::Member => meta.transferred_out = false,
                EpochStatus::NotMember if was_member => meta.transferred_out = true,
                _ => {}
            }
        }
        let entry = LogEntry::Epoch {
            seq,
            stored_at,
            epoch,
            members: names,
            creator,
            status,
        };
        self.account.append_log(&id, &entry)?;
        Ok(Some(Event {
            conversation: id,
            kind: EventKind::Entry { entry },
        }))
    }

    /// Every check of an epoch record; `Ok(Some(K))` for a member, `Ok(None)` for a verified
    /// epoch this account is not in.
    async fn check_epoch(
        &mut self,
        meta: &ConvMeta,
        record: &EpochRecord,
    ) -> Result<Option<sealdesk_protocol::secret::EpochSecret>> {
        let id = meta.id;
        if record.conversation != id {
            return Err(sealdesk_protocol::Error::WrongConversation.into());
        }
        if record.org != meta.org {
            return Err(refusal(format!(
                "it names org {}, but the conversation is with {}",
                record.org, meta.org
            )));
        }
        if let Some(existing) = self.account.epoch(&id, record.epoch)? {
            return Err(refusal(format!(
                "a second record for epoch {} (the first arrived at sequence {})",
                record.epoch, existing.seq
            )));
        }
        let policy = self.policy(&record.org, record.policy_version).await?;
        let verified = record.clone().verify(&policy)?;
        let previous = match record.epoch.checked_sub(1) {
            None => None,
            Some(p) => {
                let prev = self.account.epoch(&id, p)?.ok_or_else(|| {
                    refusal(format!("the record of the previous epoch {p} is missing"))
                })?;
                if let EpochStatus::Refused(_) = prev.status {
                    return Err(refusal(format!("it follows epoch {p}, which was refused")));
                }
                let prev_policy = self
                    .policy(&prev.record.org, prev.record.policy_version)
                    .await?;
                Some(prev.record.verify(&prev_policy)?)
            }
        };
        verified.check_follows(previous.as_ref())?;
        if let Some(c) = verified.customer()
            && c.name != meta.customer
        {
            return Err(refusal(format!(
                "its customer is {}, but the conversation's customer is {}",
                c.name, meta.customer
            )));
        }
        for m in &verified.members {
            if m.role == Role::Agent {
                let certified = self
                    .agent_certificate(&policy, &m.name)
                    .await
                    .map_err(|e| {
                        if is_transient(&e) {
                            e
                        } else {
                            refusal(format!("agent {} has no valid certificate: {e}", m.name))
                        }
                    })?;
                if !certified.same_keys(m) {
                    return Err(refusal(format!(
                        "agent {}'s key in the record is not the certified one",
                        m.name
                    )));
                }
            }
            if m.signing_key != self.account.keys().signing_public() {
                self.account.observe_peer(&m.clone().verify()?)?;
            }
        }
        if verified
            .member(&self.account.keys().signing_public())
            .is_none()
        {
            return Ok(None);
        }
        Ok(Some(verified.open(self.account.keys(), &policy)?))
    }

    /// Opens one message and logs the result. With `log_rejection` false, a message that
    /// fails is not logged again (a refetch of an item already logged as rejected).
    async fn ingest_message(
        &mut self,
        meta: &mut ConvMeta,
        seq: u64,
        stored_at: u64,
        env: &Envelope,
        log_rejection: bool,
    ) -> Result<Vec<Event>> {
        let id = meta.id;
        let h = &env.header;
        let sender_name = self
            .name_of_key(&id, &h.sender)
            .unwrap_or_else(|| short_key(&h.sender));
        let reject = |reason: String| LogEntry::Rejected {
            seq,
            epoch: h.epoch,
            sender: sender_name.clone(),
            reason,
        };
        let entry = match self.account.epoch(&id, h.epoch)? {
            None => reject(format!(
                "it names epoch {}, which this account has no record of",
                h.epoch
            )),
            Some(st) if !st.readable() => match &st.status {
                EpochStatus::Refused(r) => reject(format!(
                    "its epoch {} was refused ({r}); not shown",
                    h.epoch
                )),
                _ => reject(format!(
                    "sealed for epoch {}, which this account is not a member of",
                    h.epoch
                )),
            },
            Some(mut st) => {
                self.load_keys(&id, &st).await?;
                let before = st.windows.get(&h.sender).cloned();
                let opened = match self.keys.get(&(id, st.record.epoch)) {
                    Some(keys) => keys.open_message(env, &mut st.windows),
                    None => Err(sealdesk_protocol::Error::NotAMember),
                };
                match opened {
                    Err(e) => reject(e.to_string()),
                    Ok(opened) => {
                        st.messages = st.messages.saturating_add(1);
                        // Counters that never arrived and have now left the reordering
                        // window can no longer be accepted: keep them as gaps for good.
                        let lost = left_window(before.as_ref(), st.windows.get(&h.sender));
                        if !lost.is_empty() {
                            add_lost(&self.account, &id, h.epoch, &h.sender, &lost)?;
                        }
                        self.account.save_epoch(&id, &st)?;
                        let mine = h.sender == self.account.keys().signing_public();
                        match opened.header.kind {
                            ContentKind::Read => {
                                let upto = <[u8; 8]>::try_from(opened.body.as_slice())
                                    .map(u64::from_be_bytes)
                                    .ok();
                                match upto {
                                    Some(upto) => {
                                        let receipt = LogEntry::Receipt {
                                            seq,
                                            sender: sender_name.clone(),
                                            upto,
                                        };
                                        self.account.append_log(&id, &receipt)?;
                                        let e =
                                            meta.read_by.entry(sender_name.clone()).or_insert(0);
                                        if mine || upto <= *e {
                                            return Ok(Vec::new());
                                        }
                                        *e = upto;
                                        return Ok(vec![Event {
                                            conversation: id,
                                            kind: EventKind::Read {
                                                member: sender_name,
                                                seq: upto,
                                            },
                                        }]);
                                    }
                                    None => reject("a read receipt with a malformed body".into()),
                                }
                            }
                            ContentKind::Text => match String::from_utf8(opened.body.to_vec()) {
                                Ok(text) => LogEntry::Message {
                                    seq,
                                    stored_at,
                                    sent_at: h.sent_at,
                                    epoch: h.epoch,
                                    counter: h.counter,
                                    sender: sender_name.clone(),
                                    mine,
                                    kind: ContentKind::Text,
                                    text,
                                },
                                Err(_) => reject("the text is not valid UTF-8".into()),
                            },
                        }
                    }
                }
            }
        };
        if !log_rejection && matches!(entry, LogEntry::Rejected { .. }) {
            return Ok(Vec::new());
        }
        self.account.append_log(&id, &entry)?;
        Ok(vec![Event {
            conversation: id,
            kind: EventKind::Entry { entry },
        }])
    }

    /// Asks the relay again for the messages that have not arrived inside a reordering window
    /// (counters missing below a sender's highest). For each epoch with such a gap the range
    /// asked for runs from the epoch's record to the next epoch's record (the relay takes
    /// messages only in the current epoch, so an epoch's messages lie between the two), or to
    /// the cursor for the newest epoch; at most [`REFETCH_PAGES`] pages per sync. A try is made
    /// only when the cursor moved since the last one, and each missing message is asked for at
    /// most [`REFETCH_LIMIT`] times (counted with the conversation): after that the gap stays
    /// shown as not delivered and costs nothing more. Only the missing messages are taken from
    /// an answer: everything else at or below the cursor was processed already.
    ///
    /// # Errors
    /// Transport and storage errors.
    async fn refetch_gaps(&mut self, id: &ConversationId) -> Result<Vec<Event>> {
        let me = self.account.keys().signing_public();
        let upto = self.meta(id)?.cursor;
        let mut state = refetch_state(&self.account, id)?;
        let epochs = self.account.epochs(id)?;
        let mut missing_now: HashSet<(u32, SigningPublicKey, u64)> = HashSet::new();
        for st in &epochs {
            if !st.readable() {
                continue;
            }
            for m in &st.record.members {
                if m.signing_key == me {
                    continue;
                }
                if let Some(w) = st.windows.get(&m.signing_key) {
                    for c in w.missing() {
                        missing_now.insert((st.record.epoch, m.signing_key, c));
                    }
                }
            }
        }
        // Counts of gaps that closed or left the window are dropped: the list stays as short
        // as the open gaps.
        let counted = state.tries.len();
        state
            .tries
            .retain(|(e, s, c, _)| missing_now.contains(&(*e, *s, *c)));
        let pruned = state.tries.len() != counted;
        let mut wanted: HashSet<(u32, SigningPublicKey, u64)> = missing_now
            .into_iter()
            .filter(|k| state.tries_of(k) < REFETCH_LIMIT)
            .collect();
        if wanted.is_empty() || upto == state.cursor {
            if pruned {
                put_refetch_state(&self.account, id, &state)?;
            }
            return Ok(Vec::new());
        }
        // One range per epoch with a wanted gap: (after, end, epoch).
        let mut ranges: Vec<(u64, u64, u32)> = Vec::new();
        for st in &epochs {
            if !wanted.iter().any(|(e, _, _)| *e == st.record.epoch) {
                continue;
            }
            let end = epochs
                .iter()
                .map(|o| o.seq)
                .filter(|s| *s > st.seq)
                .min()
                .unwrap_or(upto)
                .min(upto);
            ranges.push((st.seq, end, st.record.epoch));
        }
        ranges.sort_unstable();
        // Sequence numbers already logged: as rejected (a refetch may replace the rejection,
        // but need not repeat it), or as something shown (a relay that now puts another item
        // at a number it used before is not believed: the gap stays).
        let mut rejected = HashSet::new();
        let mut shown = HashSet::new();
        for e in self.account.log(id)? {
            if matches!(e, LogEntry::Rejected { .. }) {
                rejected.insert(e.seq());
            } else {
                shown.insert(e.seq());
            }
        }
        let mut events = Vec::new();
        let mut pages = 0u32;
        let mut asked: HashSet<u32> = HashSet::new();
        'ranges: for (mut after, end, epoch) in ranges {
            while after < end && pages < REFETCH_PAGES {
                pages += 1;
                asked.insert(epoch);
                let page = self
                    .session
                    .request(Request::History {
                        conversation: *id,
                        after,
                        limit: HISTORY_PAGE,
                    })
                    .await;
                let (mut items, more) = match page {
                    Ok(Response::Items { items, more }) => (items, more),
                    // The relay no longer serves the conversation to this account (a
                    // transfer): nothing to refetch from; the gaps stay shown.
                    Err(ClientError::Relay {
                        code: ErrorCode::Forbidden | ErrorCode::NotFound,
                        ..
                    }) => break 'ranges,
                    Ok(other) => return Err(unexpected("History", &other)),
                    Err(e) => return Err(e),
                };
                items.sort_by_key(|s| s.seq);
                let Some(last) = items.last().map(|s| s.seq) else {
                    break;
                };
                for s in items {
                    if s.seq <= after || s.seq > end || shown.contains(&s.seq) {
                        continue;
                    }
                    let Item::Message(env) = &s.item else {
                        continue;
                    };
                    let key = (env.header.epoch, env.header.sender, env.header.counter);
                    if !wanted.contains(&key) {
                        continue;
                    }
                    let mut meta = self.meta(id)?;
                    let got = self
                        .ingest_message(
                            &mut meta,
                            s.seq,
                            s.stored_at,
                            env,
                            !rejected.contains(&s.seq),
                        )
                        .await?;
                    self.account.save_conversation(&meta)?;
                    if self
                        .account
                        .epoch(id, env.header.epoch)?
                        .and_then(|st| st.windows.get(&env.header.sender).cloned())
                        .is_some_and(|w| w.check(env.header.counter).is_err())
                    {
                        wanted.remove(&key);
                    }
                    events.extend(got);
                }
                if !more || last <= after {
                    break;
                }
                after = last;
            }
        }
        // Every gap of an epoch whose range was asked for and that is still open has had
        // one more request.
        for key in wanted.iter().filter(|(e, _, _)| asked.contains(e)) {
            state.count_try(key);
        }
        state.cursor = upto;
        put_refetch_state(&self.account, id, &state)?;
        Ok(events)
    }

    async fn ingest_handoff(
        &mut self,
        meta: &mut ConvMeta,
        seq: u64,
        h: &HandOff,
    ) -> Result<Vec<Event>> {
        let id = meta.id;
        let from = self
            .name_of_key(&id, &h.from)
            .unwrap_or_else(|| short_key(&h.from));
        let to = self
            .name_of_key(&id, &h.to)
            .unwrap_or_else(|| short_key(&h.to));
        let epochs: Vec<u32> = h.epochs.iter().map(|(e, _)| *e).collect();
        let mut events = Vec::new();
        let outcome = if h.to != self.account.keys().signing_public() {
            format!("for {to}")
        } else {
            match self.open_handoff(&id, h).await {
                Ok(opened) => {
                    events.extend(self.replay_epochs(&id, &opened).await?);
                    format!("opened: epochs {opened:?} are now readable")
                }
                Err(e) if is_transient(&e) => return Err(e),
                Err(e) => format!("refused: {e}"),
            }
        };
        let entry = LogEntry::HandOff {
            seq,
            from,
            to,
            epochs,
            outcome,
        };
        self.account.append_log(&id, &entry)?;
        events.insert(
            0,
            Event {
                conversation: id,
                kind: EventKind::Entry { entry },
            },
        );
        Ok(events)
    }

    async fn open_handoff(&mut self, id: &ConversationId, h: &HandOff) -> Result<Vec<u32>> {
        if h.conversation != *id {
            return Err(sealdesk_protocol::Error::WrongConversation.into());
        }
        let mut records = Vec::new();
        let mut policies = HashMap::new();
        for st in self.account.epochs(id)? {
            if matches!(st.status, EpochStatus::Refused(_)) {
                continue;
            }
            let policy = self
                .policy(&st.record.org, st.record.policy_version)
                .await?;
            policies.insert(st.record.epoch, policy.clone());
            records.push(st.record.clone().verify(&policy)?);
        }
        let opened = h.open(self.account.keys(), &records)?;
        let mut done = Vec::new();
        for (epoch, k) in opened {
            let Some(mut st) = self.account.epoch(id, epoch)? else {
                continue;
            };
            if st.readable() {
                continue;
            }
            let policy = policies
                .get(&epoch)
                .ok_or_else(|| refusal(format!("no verified record for epoch {epoch}")))?;
            st.record
                .escrow
                .check(&k, id, epoch, &st.record.customer_key()?, policy)?;
            self.account.save_secret(id, epoch, &k)?;
            st.status = EpochStatus::HandedOver;
            self.account.save_epoch(id, &st)?;
            done.push(epoch);
        }
        Ok(done)
    }

    /// Re-reads the conversation from the start and opens the messages of `epochs` (just made
    /// readable by a hand-off).
    async fn replay_epochs(&mut self, id: &ConversationId, epochs: &[u32]) -> Result<Vec<Event>> {
        if epochs.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: HashSet<u32> = epochs.iter().copied().collect();
        let mut events = Vec::new();
        for s in self.history_items(id).await? {
            if let Item::Message(env) = &s.item
                && wanted.contains(&env.header.epoch)
            {
                let mut meta = self.meta(id)?;
                events.extend(
                    self.ingest_message(&mut meta, s.seq, s.stored_at, env, true)
                        .await?,
                );
                self.account.save_conversation(&meta)?;
            }
        }
        Ok(events)
    }

    /// Makes sure the key material of a readable epoch is in the cache.
    async fn load_keys(&mut self, id: &ConversationId, st: &EpochState) -> Result<()> {
        let key = (*id, st.record.epoch);
        if !self.keys.contains_key(&key) {
            let policy = self
                .policy(&st.record.org, st.record.policy_version)
                .await?;
            let verified: VerifiedEpoch = st.record.clone().verify(&policy)?;
            let k = self.account.secret(id, st.record.epoch)?.ok_or_else(|| {
                cannot_send(
                    id,
                    &format!("the secret of epoch {} is missing", st.record.epoch),
                )
            })?;
            self.keys.insert(key, EpochKeys::new(&k, &verified));
        }
        Ok(())
    }

    // --- local views --------------------------------------------------------------------

    /// The history of a conversation as stored locally, with gaps and delivery states.
    ///
    /// # Errors
    /// [`ClientError::UnknownConversation`], storage errors.
    pub fn history(&self, id: &ConversationId) -> Result<History> {
        history(&self.account, id)
    }

    /// Marks everything in the conversation as seen by the user (for unread counts).
    ///
    /// # Errors
    /// Storage errors.
    pub fn mark_seen(&self, id: &ConversationId) -> Result<()> {
        let mut meta = self.meta(id)?;
        if meta.cursor > meta.read_local {
            meta.read_local = meta.cursor;
            self.account.save_conversation(&meta)?;
        }
        Ok(())
    }

    /// Unread text messages from others.
    ///
    /// # Errors
    /// Storage errors.
    pub fn unread(&self, id: &ConversationId) -> Result<usize> {
        unread(&self.account, id)
    }

    /// The conversation's bookkeeping.
    ///
    /// # Errors
    /// [`ClientError::UnknownConversation`].
    pub fn meta(&self, id: &ConversationId) -> Result<ConvMeta> {
        self.account
            .conversation(id)?
            .ok_or_else(|| ClientError::UnknownConversation(id.to_string()))
    }

    /// The policy summary for a conversation (from its newest epoch's policy, or the latest
    /// stored one).
    ///
    /// # Errors
    /// Relay and storage errors.
    pub async fn summary(&mut self, id: &ConversationId) -> Result<String> {
        let meta = self.meta(id)?;
        let policy = match self.account.epochs(id)?.pop() {
            Some(st) => {
                self.policy(&st.record.org, st.record.policy_version)
                    .await?
            }
            None => self.latest_policy(&meta.org).await?,
        };
        Ok(policy.summary())
    }

    fn name_of_key(&self, id: &ConversationId, key: &SigningPublicKey) -> Option<String> {
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

    fn pin_or_block(&self, card: &VerifiedCard) -> Result<()> {
        if self.account.observe_peer(card)? == PinStatus::Changed {
            return Err(ClientError::KeyChanged {
                name: card.name.clone(),
            });
        }
        Ok(())
    }
}

/// The history of a conversation from local state only (works offline).
///
/// # Errors
/// [`ClientError::UnknownConversation`], storage errors.
pub fn history(account: &Account, id: &ConversationId) -> Result<History> {
    let meta = account
        .conversation(id)?
        .ok_or_else(|| ClientError::UnknownConversation(id.to_string()))?;
    let epochs = account.epochs(id)?;
    let summary = epochs
        .last()
        .and_then(|st| {
            account
                .stored_policy(&st.record.org, st.record.policy_version)
                .ok()
                .flatten()
        })
        .and_then(|p| p.verify().ok())
        .map(|p| p.summary());
    let me = account.keys().signing_public();
    // Gaps per epoch: counters inside a sender's window that never arrived (each sync asks
    // the relay for them again), and those that left the window without arriving (for good).
    let lost = lost(account, id)?;
    let refetch = refetch_state(account, id)?;
    let mut gaps: BTreeMap<u32, Vec<HistoryLine>> = BTreeMap::new();
    for st in &epochs {
        if !st.readable() {
            continue;
        }
        for m in &st.record.members {
            if m.signing_key == me {
                continue;
            }
            let mut missing: Vec<(u64, u64)> = lost
                .iter()
                .filter(|l| l.epoch == st.record.epoch && l.sender == m.signing_key)
                .flat_map(|l| l.ranges.iter().copied())
                .collect();
            let mut given_up: Vec<(u64, u64)> = Vec::new();
            if let Some(w) = st.windows.get(&m.signing_key) {
                for c in w.missing() {
                    if refetch.tries_of(&(st.record.epoch, m.signing_key, c)) >= REFETCH_LIMIT {
                        given_up.push((c, c));
                    } else {
                        missing.push((c, c));
                    }
                }
            }
            let (missing, given_up) = (merge_ranges(missing), merge_ranges(given_up));
            for (counters, requests) in [(missing, None), (given_up, Some(REFETCH_LIMIT))] {
                if !counters.is_empty() {
                    gaps.entry(st.record.epoch)
                        .or_default()
                        .push(HistoryLine::Gap {
                            epoch: st.record.epoch,
                            sender: m.name.clone(),
                            counters,
                            requests,
                        });
                }
            }
        }
    }
    let others_max = |map: &BTreeMap<String, u64>| {
        map.iter()
            .filter(|(n, _)| n.as_str() != account.name())
            .map(|(_, s)| *s)
            .max()
            .unwrap_or(0)
    };
    let delivered = others_max(&meta.delivered_by);
    let read = others_max(&meta.read_by);
    let entries = group_notices(account.log(id)?, audience_of(account));
    let mut lines = Vec::new();
    let mut last_epoch_of_line: Option<u32> = None;
    for entry in entries {
        if matches!(entry, LogEntry::Receipt { .. }) {
            continue;
        }
        let epoch = match &entry {
            LogEntry::Message { epoch, .. } | LogEntry::Epoch { epoch, .. } => Some(*epoch),
            _ => None,
        };
        if let (Some(prev), Some(cur)) = (last_epoch_of_line, epoch)
            && cur != prev
            && let Some(g) = gaps.remove(&prev)
        {
            lines.extend(g);
        }
        if epoch.is_some() {
            last_epoch_of_line = epoch;
        }
        let delivery = match &entry {
            LogEntry::Message {
                mine: true, seq, ..
            } => Some(if read >= *seq {
                "read"
            } else if delivered >= *seq {
                "delivered"
            } else {
                "sent"
            }),
            _ => None,
        };
        lines.push(HistoryLine::Item { entry, delivery });
    }
    for (_, g) in gaps {
        lines.extend(g);
    }
    Ok(History {
        conversation: *id,
        org: meta.org,
        summary,
        lines,
    })
}

/// Unread text messages from others, from local state.
///
/// # Errors
/// Storage errors.
pub fn unread(account: &Account, id: &ConversationId) -> Result<usize> {
    let meta = account
        .conversation(id)?
        .ok_or_else(|| ClientError::UnknownConversation(id.to_string()))?;
    Ok(account
        .log(id)?
        .iter()
        .filter(
            |e| matches!(e, LogEntry::Message { mine: false, seq, .. } if *seq > meta.read_local),
        )
        .count())
}

/// Folds the trustees' release notices of one request into one line, at the place of the
/// request's first entry; every other entry passes through unchanged. The line's text, verdict
/// and audit index are the group's: genuine only if at least one entry verified and none
/// failed, its index the first verified entry's.
pub fn group_notices(
    entries: impl IntoIterator<Item = LogEntry>,
    audience: Audience,
) -> Vec<LogEntry> {
    let mut out: Vec<LogEntry> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for entry in entries {
        if let LogEntry::Notice {
            release: Some(r), ..
        } = &entry
        {
            if let Some(LogEntry::Notice {
                release: Some(group),
                ..
            }) = at.get(&r.request).and_then(|&i| out.get_mut(i))
            {
                group.absorb(r);
                continue;
            }
            at.insert(r.request.clone(), out.len());
        }
        out.push(entry);
    }
    for entry in &mut out {
        if let LogEntry::Notice {
            text,
            verified,
            index,
            release: Some(group),
            ..
        } = entry
        {
            *text = group.describe(audience, "this chat");
            *verified = group.genuine();
            if let Some(first) = group.indexes.first().or(group.failed.first()) {
                *index = *first;
            }
        }
    }
    out
}

/// How notices are worded for this account: "your consent" for a customer, "(you)" for the
/// org's master.
pub fn audience_of(account: &Account) -> Audience {
    match account.role() {
        Role::Customer => Audience::Customer,
        Role::Master => Audience::Master,
        _ => Audience::Other,
    }
}

fn release_of(entry: &LogEntry) -> Option<&ReleaseNotice> {
    match entry {
        LogEntry::Notice {
            release: Some(r), ..
        } => Some(r),
        _ => None,
    }
}

/// One audit entry in plain words for `audience` (a trustee's release entry on its own: one
/// share released, not an opening; [`crate::notice`] words a release request as a whole).
/// Only the customer reads "your consent"; anyone else reads "the customer's consent".
pub fn describe_notice(entry: &AuditEntry, verified: bool, audience: Audience) -> String {
    let mark = if verified {
        ""
    } else {
        " (NOT GENUINE: not signed by a party allowed to make it, or not proven in the audit log)"
    };
    let text = match &entry.event {
        AuditEvent::Release {
            org, epochs, basis, ..
        } => match basis {
            // One trustee's entry: the release request it belongs to opens only with enough
            // of them, which `crate::notice` says once per request.
            ReleaseBasis::Consent { id, .. } => format!(
                "a trustee released its share to {org} for {epochs} of this chat under {} \
                 consent {id}",
                match audience {
                    Audience::Customer => "your",
                    Audience::Master | Audience::Other => "the customer's",
                }
            ),
            ReleaseBasis::Dispute { id, approvers } => format!(
                "a trustee released its share to {org} for {epochs} of this chat under dispute \
                 ticket {id}, approved by {} arbiter(s)",
                approvers.len()
            ),
        },
        AuditEvent::Erasure { reason, .. } => format!("this conversation was erased ({reason})"),
        AuditEvent::ConsentRevocation { consent, .. } => {
            format!("consent {consent} was revoked")
        }
        AuditEvent::PolicyChange { org, version, .. } => {
            format!("{org} published policy version {version}")
        }
    };
    format!("{text}{mark}")
}

/// The epoch after `epoch` (a number from a record the relay delivered).
fn next_epoch(epoch: u32) -> Result<u32> {
    epoch
        .checked_add(1)
        .ok_or_else(|| ClientError::ImpossibleNumber {
            what: "epoch number",
            detail: format!("epoch {epoch} has no successor"),
        })
}

/// Checks that a page of a conversation's items the relay said had `more` after it ended
/// beyond `after` (at `last`), so that paging ends; returns where the next page starts.
fn page_advances(after: u64, last: u64) -> Result<u64> {
    if last <= after {
        return Err(ClientError::ImpossibleNumber {
            what: "history page",
            detail: format!(
                "asked for items after sequence {after}, got a page ending at {last} with more \
                 to come"
            ),
        });
    }
    Ok(last)
}

pub(crate) fn expect_ok(r: Response) -> Result<()> {
    match r {
        Response::Ok => Ok(()),
        other => Err(unexpected("the request", &other)),
    }
}

pub(crate) fn unexpected(what: &str, r: &Response) -> ClientError {
    let name = match r {
        Response::Ok => "Ok",
        Response::Error { .. } => "Error",
        Response::Card(_) => "Card",
        Response::Policy(_) => "Policy",
        Response::Certificate(_) => "Certificate",
        Response::Opened { .. } => "Opened",
        Response::Conversations(_) => "Conversations",
        Response::Stored { .. } => "Stored",
        Response::Items { .. } => "Items",
        Response::Releases(_) => "Releases",
        Response::Progress(_) => "Progress",
        Response::Tickets(_) => "Tickets",
        Response::Appended { .. } => "Appended",
        Response::TreeHead(_) => "TreeHead",
        Response::Entries { .. } => "Entries",
        Response::Inclusion(_) => "Inclusion",
        Response::Consistency(_) => "Consistency",
        Response::WitnessedHead(_) => "WitnessedHead",
    };
    ClientError::UnexpectedResponse(format!("{what} was answered with {name}"))
}

fn cannot_send(id: &ConversationId, reason: &str) -> ClientError {
    ClientError::CannotSend {
        conversation: id.to_string(),
        reason: reason.to_owned(),
    }
}

fn refusal(reason: String) -> ClientError {
    ClientError::Protocol(sealdesk_protocol::Error::InvalidEpochRecord(reason))
}

/// Errors that say nothing about the data (the network, the disk): retry rather than refuse.
pub(crate) fn is_transient(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Transport(_)
            | ClientError::Closed(_)
            | ClientError::Timeout { .. }
            | ClientError::Vault(_)
            | ClientError::Io { .. }
            | ClientError::Random
            | ClientError::Relay {
                code: ErrorCode::Internal | ErrorCode::RateLimited,
                ..
            }
    )
}

/// Where the refetch state of a conversation is kept.
fn refetch_name(id: &ConversationId) -> String {
    format!("conv/{id}/refetch")
}

/// What the client has asked the relay again, per conversation.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
struct Refetch {
    /// The cursor at the last try: the next try waits until it moves.
    cursor: u64,
    /// Requests made so far for each open gap: (epoch, sender, counter, requests).
    tries: Vec<(u32, SigningPublicKey, u64, u32)>,
}

impl Refetch {
    fn tries_of(&self, (epoch, sender, counter): &(u32, SigningPublicKey, u64)) -> u32 {
        self.tries
            .iter()
            .find(|(e, s, c, _)| e == epoch && s == sender && c == counter)
            .map_or(0, |t| t.3)
    }

    fn count_try(&mut self, key: &(u32, SigningPublicKey, u64)) {
        match self
            .tries
            .iter_mut()
            .find(|(e, s, c, _)| *e == key.0 && *s == key.1 && *c == key.2)
        {
            Some(t) => t.3 = t.3.saturating_add(1),
            None => self.tries.push((key.0, key.1, key.2, 1)),
        }
    }
}

fn refetch_state(account: &Account, id: &ConversationId) -> Result<Refetch> {
    Ok(account.get_cbor(&refetch_name(id))?.unwrap_or_default())
}

fn put_refetch_state(account: &Account, id: &ConversationId, state: &Refetch) -> Result<()> {
    account.put_cbor(&refetch_name(id), state)
}

/// Where the counters that left a reordering window without arriving are kept.
fn lost_name(id: &ConversationId) -> String {
    format!("conv/{id}/lost")
}

/// Counters of one sender in one epoch that never arrived and can no longer be accepted, as
/// inclusive ranges, sorted and merged: a sender that jumps its counter far ahead costs one
/// range, not one entry per skipped counter.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
struct Lost {
    epoch: u32,
    sender: SigningPublicKey,
    #[serde(default)]
    ranges: Vec<(u64, u64)>,
    /// Single counters, as stored before ranges (read, never written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    counters: Vec<u64>,
}

fn lost(account: &Account, id: &ConversationId) -> Result<Vec<Lost>> {
    let mut all: Vec<Lost> = account.get_cbor(&lost_name(id))?.unwrap_or_default();
    for l in &mut all {
        let old = std::mem::take(&mut l.counters);
        l.ranges.extend(old.into_iter().map(|c| (c, c)));
        l.ranges = merge_ranges(std::mem::take(&mut l.ranges));
    }
    Ok(all)
}

fn add_lost(
    account: &Account,
    id: &ConversationId,
    epoch: u32,
    sender: &SigningPublicKey,
    ranges: &[(u64, u64)],
) -> Result<()> {
    let mut all = lost(account, id)?;
    match all
        .iter_mut()
        .find(|l| l.epoch == epoch && l.sender == *sender)
    {
        Some(l) => {
            l.ranges.extend(ranges);
            l.ranges = merge_ranges(std::mem::take(&mut l.ranges));
        }
        None => all.push(Lost {
            epoch,
            sender: *sender,
            ranges: merge_ranges(ranges.to_vec()),
            counters: Vec::new(),
        }),
    }
    account.put_cbor(&lost_name(id), &all)
}

/// Sorts inclusive ranges and merges those that overlap or touch.
fn merge_ranges(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.retain(|(a, b)| a <= b);
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// The counters that were missing from a sender's window `before` a message was accepted
/// and are outside it `after` (shifted out, or jumped over by a counter more than a window
/// ahead), as inclusive ranges: they can never be accepted now.
fn left_window(before: Option<&ReplayWindow>, after: Option<&ReplayWindow>) -> Vec<(u64, u64)> {
    let Some(after) = after else {
        return Vec::new();
    };
    let Some(high) = after.highest() else {
        return Vec::new();
    };
    let floor = high.saturating_sub(REORDER_WINDOW - 1);
    // Everything above the old highest (or from 0 on a first message) up to the new one was
    // skipped; below the floor it is gone.
    let start = match before.and_then(ReplayWindow::highest) {
        Some(h) => h.saturating_add(1),
        None => 0,
    };
    let mut out = Vec::new();
    let end = floor.min(high);
    if start < end {
        out.push((start, end - 1));
    }
    if let Some(b) = before {
        out.extend(
            b.missing()
                .into_iter()
                .filter(|c| *c < floor)
                .map(|c| (c, c)),
        );
    }
    merge_ranges(out)
}

pub(crate) fn short_key(k: &SigningPublicKey) -> String {
    let s = k.to_string();
    format!("key {}", s.get(..16).unwrap_or(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(counters: &[u64]) -> ReplayWindow {
        let mut w = ReplayWindow::default();
        for c in counters {
            w.mark(*c);
        }
        w
    }

    /// A sender that jumps its counter far ahead leaves one range behind, not one entry per
    /// skipped counter (which would not even fit in memory here).
    #[test]
    fn counters_jumped_over_are_one_range() {
        let before = window(&[0]);
        let top = 1u64 << 60;
        let after = window(&[0, top]);
        assert_eq!(
            left_window(Some(&before), Some(&after)),
            [(1, top - REORDER_WINDOW)]
        );
        // With a hole in the old window that is shifted out too: merged where they touch.
        let before = window(&[0, 2]);
        let after = window(&[0, 2, 2 + REORDER_WINDOW]);
        assert_eq!(left_window(Some(&before), Some(&after)), [(1, 1)]);
        let after = window(&[0, 2, 3 + REORDER_WINDOW]);
        assert_eq!(left_window(Some(&before), Some(&after)), [(1, 1), (3, 3)]);
    }

    #[test]
    fn lost_ranges_merge() {
        assert_eq!(
            merge_ranges(vec![(5, 9), (1, 1), (2, 4), (20, 20), (8, 12), (7, 3)]),
            [(1, 12), (20, 20)]
        );
        assert_eq!(
            merge_ranges(vec![(0, u64::MAX), (u64::MAX, u64::MAX)]),
            [(0, u64::MAX)]
        );
    }
}
