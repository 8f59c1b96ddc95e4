//! Escrow release end to end, on the client side (docs/design.md §4): customer consent and its
//! revocation, dispute tickets and arbiter decisions, the trustee daemon's decision loop, the
//! master's unlock and transcript, the audit log checks, and erasure. The export and its offline
//! verification are in [`crate::transcript`].
//!
//! ```text
//!   customer: grant_consent ─(ShareConsent, via the relay)─▶ master: unlock ─SubmitRelease─▶ relay
//!   trustee:  serve ◀─Push::Release / PendingReleases── relay
//!             cosign head → decide() → AppendAudit(release entry) → prove inclusion
//!             → cosign a head holding it → SubmitShares
//!   master:   ReleaseStatus → open shares → reconstruct K (checked against the commitment)
//!             → decrypt exactly the released epochs → transcript (export: crate::transcript)
//!   customer: Item::Notice in the conversation, checked against the audit log
//! ```
//!
//! **Architecture Invariant:** a trustee persists its decision (the spent justification and the
//! logging stage) before it appends the release entry, and sends its shares only after it has
//! proven the entry is in a head consistent with the last it saw (`confirm_appended`) and has
//! cosigned a head holding it (`witness_cosign`); on restart it resumes from the persisted
//! stage, so a request is logged once and released once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sealdesk_protocol::{
    audit::{
        AllowedSigners, AuditEntry, AuditEvent, ConsistencyProof, Cosignature, LogError,
        ReleaseBasis, SignedTreeHead, WITNESS_FRESHNESS_SECS, witnesses_needed,
    },
    card::Role,
    epoch::{EpochRecord, VerifiedEpoch},
    escrow,
    ids::{ConversationId, EpochRange, TokenId},
    keys::SigningPublicKey,
    message::{Envelope, EpochKeys, ReplayWindows},
    policy::OrgPolicy,
    release::{
        self, ArbiterDecision, ConsentParams, ConsentToken, DisputeTicket, ErasureRequest,
        Justification, ReleaseRequest, Scope, TrusteeView, Verdict,
    },
    secret::EpochSecret,
    wire::{
        ErrorCode, Item, PendingRelease, Push, Request, Response, TicketState, from_cbor, to_cbor,
    },
};
use serde::{Deserialize, Serialize};

use crate::client::{Client, expect_ok, is_transient, unexpected};
use crate::error::{ClientError, Result};
use crate::redact::redact;
use crate::{now, rng};

/// Releases a trustee approves per org per hour before it refuses with "rate limited".
pub const RELEASES_PER_HOUR: usize = 30;
/// Audit entries fetched per `GetEntries` page.
pub const ENTRIES_PAGE: u32 = 100;
/// Default validity of a consent token or dispute ticket (7 days).
pub const DEFAULT_VALIDITY_SECS: u64 = 7 * 86_400;

const CONSENTS: &str = "consents";
const AUDIT_HEAD: &str = "audit/head";
const TRUSTEE_SPENT: &str = "trustee/spent";
/// Consent revocations read from the audit log, by consent id, each with its signer and
/// conversation ([`Revocation`]). Earlier versions kept a plain set under `trustee/revoked`,
/// which did not say who revoked; this key and its cursor are new, so an upgraded trustee reads
/// the log again from the start.
const TRUSTEE_REVOCATIONS: &str = "trustee/revocations";
/// How far the trustee has read the audit log for [`TRUSTEE_REVOCATIONS`].
const TRUSTEE_REVOCATIONS_CURSOR: &str = "trustee/revocations-cursor";
const TRUSTEE_RATE: &str = "trustee/rate";
/// The last tree head this trustee cosigned as a witness.
const WITNESS_HEAD: &str = "trustee/witness-head";

/// How often `trustee serve` cosigns the log's head when nothing else makes it (well inside
/// [`WITNESS_FRESHNESS_SECS`], so an online trustee's cosignature is always fresh).
pub const WITNESS_INTERVAL: Duration = Duration::from_secs(60);

/// **Test-only fault injection.** When this environment variable names a fail point of the
/// trustee's release path, the process exits at that point with [`FAILPOINT_EXIT_CODE`],
/// taking no further step — as if it had been killed there — so tests can restart it and check
/// that it resumes correctly. Read only on the trustee's release path; never set it in
/// production. Test hooks only (the `test-hooks` feature): without it, nothing reads the
/// variable and the points do nothing. The points, in order:
///
/// | value           | the trustee has …                                              |
/// |-----------------|----------------------------------------------------------------|
/// | `before-append` | persisted its decision (`Logging`), not yet appended the entry |
/// | `after-append`  | had its release entry appended, not yet persisted `Logged`     |
/// | `before-shares` | persisted `Logged`, not yet sent its shares                    |
/// | `after-shares`  | had its shares accepted, not yet persisted `Released`          |
#[cfg(feature = "test-hooks")]
pub const FAILPOINT_ENV: &str = "SEALDESK_FAILPOINT";

/// Exit status of a process stopped at a fail point (see [`FAILPOINT_ENV`]).
#[cfg(feature = "test-hooks")]
pub const FAILPOINT_EXIT_CODE: i32 = 86;

/// Every fail point [`FAILPOINT_ENV`] accepts, in the order the release path reaches them.
#[cfg(feature = "test-hooks")]
pub const FAILPOINTS: [&str; 4] = [
    "before-append",
    "after-append",
    "before-shares",
    "after-shares",
];

/// Test-only: exits the process here if [`FAILPOINT_ENV`] names `point` (see there).
#[cfg(feature = "test-hooks")]
fn fail_point(point: &str) {
    debug_assert!(FAILPOINTS.contains(&point), "unknown fail point {point}");
    if std::env::var_os(FAILPOINT_ENV).is_some_and(|v| v == point) {
        eprintln!("sealdesk: fail point `{point}` reached; exiting as if killed (test only)");
        std::process::exit(FAILPOINT_EXIT_CODE);
    }
}

/// Without test hooks a fail point is nothing: a release build cannot be made to stop there.
#[cfg(not(feature = "test-hooks"))]
fn fail_point(_point: &str) {}

/// A consent this customer granted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// The signed token.
    pub token: ConsentToken,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// A consent revocation as a trustee read it from the audit log. It counts only if `signer` is
/// the consent's own signer and `conversation` its conversation (checked when a request is
/// decided, when the consent is at hand).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Revocation {
    /// The conversation the entry names.
    conversation: ConversationId,
    /// Who signed the entry.
    signer: SigningPublicKey,
}

/// Where a trustee is with one request (persisted before each step).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TrusteeStage {
    /// Decided to release; about to append the entry (the log had `log_size` entries before).
    Logging {
        /// Log size before the append.
        log_size: u64,
    },
    /// The entry is in the log at `index`; shares not yet acknowledged.
    Logged {
        /// Leaf index.
        index: u64,
    },
    /// Shares sent.
    Released,
    /// Refused.
    Refused(String),
}

/// A trustee's record of one request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrusteeRecord {
    /// The justification id (spent by this request).
    pub justification: TokenId,
    /// Where it is.
    pub stage: TrusteeStage,
}

/// What a trustee did with one request.
#[derive(Clone, Debug, Serialize)]
pub struct TrusteeOutcome {
    /// The request id.
    pub request: String,
    /// The conversation.
    pub conversation: String,
    /// "released", "refused: …", or "already handled".
    pub outcome: String,
}

/// One message of a released transcript.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TranscriptMessage {
    /// Relay sequence number.
    pub seq: u64,
    /// Epoch.
    pub epoch: u32,
    /// Sender counter.
    pub counter: u64,
    /// Sender name (from the epoch record).
    pub sender: String,
    /// Sender's clock.
    pub sent_at: u64,
    /// The text (masked if the release was redacted).
    pub text: String,
    /// The envelope as stored (for offline verification).
    pub envelope: Envelope,
}

/// A released transcript held by the master.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Transcript {
    /// The conversation.
    pub conversation: ConversationId,
    /// The org.
    pub org: String,
    /// Whether redaction is mandatory (a consent of scope `redacted`).
    pub redacted: bool,
    /// Released epoch records.
    pub records: Vec<EpochRecord>,
    /// Policies the records were made under.
    pub policies: Vec<OrgPolicy>,
    /// Messages of the released epochs, in relay order.
    pub messages: Vec<TranscriptMessage>,
    /// Gaps: (epoch, sender, missing counters).
    pub gaps: Vec<(u32, String, Vec<u64>)>,
    /// Release entries `(index, entry)` of the requests that opened it.
    pub releases: Vec<(u64, AuditEntry)>,
}

/// Progress of an unlock, for display.
#[derive(Clone, Debug, Serialize)]
pub struct UnlockProgress {
    /// Trustees that released.
    pub released: usize,
    /// Trustees needed.
    pub needed: usize,
    /// Refusals `(trustee, reason)`.
    pub refusals: Vec<(String, String)>,
}

/// An audit entry as shown to a user.
#[derive(Clone, Debug, Serialize)]
pub struct AuditLine {
    /// Leaf index.
    pub index: u64,
    /// Plain words.
    pub text: String,
    /// Whether the signature verified.
    pub signed: bool,
    /// Whether the signer may make an entry of this kind (a trustee of the org for a release,
    /// the customer for a revocation, ...; see [`AllowedSigners`]).
    pub signer_allowed: bool,
    /// Whether inclusion in the pinned tree head was proven (only with `--verify`).
    pub included: Option<bool>,
}

/// The result of `audit`.
#[derive(Clone, Debug, Serialize)]
pub struct AuditReport {
    /// The tree size.
    pub size: u64,
    /// Whether the new head is consistent with the one pinned before (None on first use).
    pub consistent_with_pinned: Option<bool>,
    /// With `--verify`: per org, how many of its trustees cosigned the head (fresh, on a
    /// head it extends); at least `n_e − t_e + 1` each, or the audit fails.
    pub witnessed: BTreeMap<String, usize>,
    /// The entries concerning this account.
    pub entries: Vec<AuditLine>,
    /// The trustees' release entries among them, one group per release request (each entry
    /// is still in `entries` with its own checks).
    pub releases: Vec<crate::notice::AuditRelease>,
}

impl AuditReport {
    /// Whether everything listed passed its checks: every entry signed and not disproven,
    /// no entry whose signer may not make an entry of its kind,
    /// and no release request with an entry that is NOT GENUINE (not signed by a trustee of
    /// the org, about another org, or not proven) or that contradicts the other entries of
    /// its release. `sealdesk audit` fails when this is false.
    pub fn verified(&self) -> bool {
        self.entries
            .iter()
            .all(|e| e.signed && e.signer_allowed && e.included != Some(false))
            && self
                .releases
                .iter()
                .all(|g| g.notice.failed.is_empty() && g.notice.contradicting.is_empty())
    }
}

impl Client {
    // --- audit log ----------------------------------------------------------------------

    /// Fetches the relay's tree head, checks its signature against the pinned log key and its
    /// consistency with the head pinned last time, and pins it. A rewritten, truncated or
    /// forked log fails here.
    ///
    /// # Errors
    /// [`ClientError::Protocol`] (`Merkle`, `BadSignature`) on a bad log; relay errors.
    pub async fn checked_tree_head(&mut self) -> Result<(SignedTreeHead, Option<bool>)> {
        let head = match self.session.request(Request::GetTreeHead).await? {
            Response::TreeHead(h) => h,
            other => return Err(unexpected("GetTreeHead", &other)),
        };
        let consistent = self.pin_head(&head).await?;
        Ok((head, consistent))
    }

    /// Checks `head`'s signature against the pinned log key and its consistency with the head
    /// pinned before (kept durably in the vault), then pins it. Returns whether there was an
    /// earlier head to compare with.
    ///
    /// # Errors
    /// [`ClientError::Protocol`] (`Merkle`, `BadSignature`) on a bad log; relay errors.
    async fn pin_head(&mut self, head: &SignedTreeHead) -> Result<Option<bool>> {
        head.verify(&self.session.welcome().log_key)?;
        let pinned: Option<SignedTreeHead> = self.account.get_cbor(AUDIT_HEAD)?;
        let mut consistent = None;
        if let Some(old) = &pinned {
            if head.size < old.size {
                return Err(sealdesk_protocol::Error::Merkle(format!(
                    "the audit log shrank from {} to {} entries since you last looked: the relay \
                     rewrote or truncated it",
                    old.size, head.size
                ))
                .into());
            }
            if head.size == old.size {
                if head.root != old.root {
                    return Err(sealdesk_protocol::Error::Merkle(
                        "the audit log has a different root at the same size: the relay forked it"
                            .into(),
                    )
                    .into());
                }
            } else if old.size > 0 {
                let proof = match self
                    .session
                    .request(Request::GetConsistency {
                        old: old.size,
                        new: head.size,
                    })
                    .await?
                {
                    Response::Consistency(p) => p,
                    other => return Err(unexpected("GetConsistency", &other)),
                };
                check_consistency(&proof, old, head)?;
            }
            consistent = Some(true);
        }
        self.account.put_cbor(AUDIT_HEAD, head)?;
        Ok(consistent)
    }

    /// The appender's check (DESIGN.md §4 "Witnesses"): the relay answered an append of
    /// `entry` with `Appended { index, head }`. Before the caller acts on it (a trustee sending
    /// its share, a customer being told "revoked"), prove that `head` is signed by the log key,
    /// extends the last head this account saw, and includes `entry` at `index`. A relay that
    /// answers with an older genuine head without appending fails here, whatever key it holds.
    ///
    /// # Errors
    /// [`LogError::NotAppended`] if the head cannot hold the entry, [`LogError::NotIncluded`]
    /// if the log does not prove it; transport errors as they are.
    pub async fn confirm_appended(
        &mut self,
        entry: &AuditEntry,
        index: u64,
        head: &SignedTreeHead,
    ) -> Result<()> {
        if index >= head.size {
            return Err(log_error(LogError::NotAppended {
                index,
                size: head.size,
            }));
        }
        let checked = match self.pin_head(head).await {
            Ok(_) => self.check_inclusion(entry, index, head).await,
            Err(e) => Err(e),
        };
        match checked {
            Ok(()) => Ok(()),
            Err(e) if is_transient(&e) => Err(e),
            Err(e) => Err(log_error(LogError::NotIncluded {
                index,
                reason: e.to_string(),
            })),
        }
    }

    /// Checks that the tree `head` describes extends the tree of `old_size` entries with root
    /// `old_root` (a proof from the relay when the sizes differ).
    ///
    /// # Errors
    /// [`ClientError::Protocol`] (`Merkle`) if it does not; relay errors.
    async fn check_extends(
        &self,
        old_size: u64,
        old_root: &[u8; 32],
        head: &SignedTreeHead,
    ) -> Result<()> {
        let merkle_error = |m: String| ClientError::Protocol(sealdesk_protocol::Error::Merkle(m));
        if head.size < old_size {
            return Err(merkle_error(format!(
                "the log shrank from {old_size} to {} entries",
                head.size
            )));
        }
        if head.size == old_size {
            return if head.root == *old_root {
                Ok(())
            } else {
                Err(merkle_error(format!(
                    "another root at the same size ({old_size}): a forked log"
                )))
            };
        }
        if old_size == 0 {
            return Ok(());
        }
        let proof = match self
            .session
            .request(Request::GetConsistency {
                old: old_size,
                new: head.size,
            })
            .await?
        {
            Response::Consistency(p) => p,
            other => return Err(unexpected("GetConsistency", &other)),
        };
        if proof.old != old_size || proof.new != head.size {
            return Err(merkle_error("consistency proof for other sizes".into()));
        }
        let path: Vec<[u8; 32]> = proof.path.iter().map(|h| **h).collect();
        sealdesk_protocol::merkle::verify_consistency(
            old_size, head.size, old_root, &head.root, &path,
        )
        .map_err(|e| merkle_error(e.to_string()))
    }

    /// The log's head as the witnesses of `org` vouch for it (DESIGN.md §4 "Witnesses"): the
    /// relay's head, signed by the pinned log key and consistent with the pinned head, carrying
    /// cosignatures of at least `n_e − t_e + 1` trustees of the org's current policy, each dated
    /// within [`WITNESS_FRESHNESS_SECS`] and each on a head that this one extends. Any `t_e`
    /// trustees that released share one of those witnesses, who cosigned only a log holding its
    /// own entry; so a head accepted here cannot hide a release older than the bound. Pins the
    /// head; returns it with the number of witnesses that vouched.
    ///
    /// # Errors
    /// [`LogError::TooFewCosignatures`] (also for cosignatures too old: a frozen view),
    /// [`LogError::SplitView`] if a trustee cosigned a log this head does not extend; a bad
    /// log and relay errors as [`Client::checked_tree_head`].
    pub async fn witnessed_head(&mut self, org: &str) -> Result<(SignedTreeHead, usize)> {
        let wh = match self
            .session
            .request(Request::GetWitnessedHead {
                org: org.to_owned(),
            })
            .await?
        {
            Response::WitnessedHead(w) => w,
            other => return Err(unexpected("GetWitnessedHead", &other)),
        };
        self.pin_head(&wh.head).await?;
        let policy = self.latest_policy(org).await?;
        let trustees: Vec<SigningPublicKey> =
            policy.trustees.iter().map(|c| c.signing_key).collect();
        let need = witnesses_needed(trustees.len(), usize::from(policy.trustee_threshold));
        let count = wh.fresh_cosignatures(&trustees, now(), WITNESS_FRESHNESS_SECS);
        for c in &count.fresh {
            match self.check_extends(c.size, &c.root, &wh.head).await {
                Ok(()) => {}
                Err(e) if is_transient(&e) => return Err(e),
                Err(_) => {
                    return Err(log_error(LogError::SplitView {
                        cosigned: c.size,
                        served: wh.head.size,
                    }));
                }
            }
        }
        if count.fresh.len() < need {
            return Err(log_error(LogError::TooFewCosignatures {
                org: org.to_owned(),
                have: count.fresh.len(),
                stale: count.stale,
                need,
                bound_secs: WITNESS_FRESHNESS_SECS,
            }));
        }
        Ok((wh.head, count.fresh.len()))
    }

    /// Trustee: witnesses the log once (DESIGN.md §4 "Witnesses"). Fetches the relay's head,
    /// checks it like any head (signature, consistency with the last head seen) and that it
    /// extends the last head this trustee cosigned (kept durably in the vault), records it as
    /// cosigned, then cosigns it and hands the cosignature to the relay. A trustee that never
    /// cosigns two heads of which one does not extend the other cannot be part of two quorums
    /// for two histories.
    ///
    /// # Errors
    /// [`LogError::NotAnExtension`] for a rolled-back or forked log; relay errors.
    pub async fn witness_cosign(&mut self) -> Result<Cosignature> {
        self.account.require(Role::Trustee, "trustee cosign")?;
        let last: Option<SignedTreeHead> = self.account.get_cbor(WITNESS_HEAD)?;
        let head = match self.checked_tree_head().await {
            Ok((head, _)) => match &last {
                Some(old) => self
                    .check_extends(old.size, &old.root, &head)
                    .await
                    .map(|()| head),
                None => Ok(head),
            },
            Err(e) => Err(e),
        };
        let head = match head {
            Ok(h) => h,
            Err(e) if is_transient(&e) => return Err(e),
            Err(e) => {
                return Err(log_error(LogError::NotAnExtension {
                    old: last.as_ref().map_or(0, |h| h.size),
                    reason: e.to_string(),
                }));
            }
        };
        // Recorded before it leaves: a crash after sending must not let an older head be
        // cosigned next.
        self.account.put_cbor(WITNESS_HEAD, &head)?;
        let c = Cosignature::sign(self.account.keys(), &head, now());
        expect_ok(self.session.request(Request::Cosign(c.clone())).await?)?;
        Ok(c)
    }

    /// Who may sign entries about `conversation` in `org`, as this account knows them: the
    /// trustees and master of the org's latest policy, the conversation's customer (this
    /// account if it is the customer, else its pinned card), and the relay's pinned log key.
    ///
    /// # Errors
    /// Policy lookups (relay errors, a policy that fails its checks), storage errors.
    pub async fn allowed_signers(
        &mut self,
        org: Option<&str>,
        conversation: Option<ConversationId>,
    ) -> Result<AllowedSigners> {
        let mut allowed = AllowedSigners {
            log_key: Some(self.session.welcome().log_key),
            ..AllowedSigners::default()
        };
        let meta = match conversation {
            Some(c) => self.account.conversation(&c)?,
            None => None,
        };
        let org = org
            .map(str::to_owned)
            .or(meta.as_ref().map(|m| m.org.clone()));
        if let Some(org) = org {
            let policy = self.latest_policy(&org).await?;
            allowed.trustees = policy.trustees.iter().map(|c| c.signing_key).collect();
            allowed.master = Some(policy.master_key());
        }
        if let Some(m) = meta {
            allowed.customer = if self.account.role() == Role::Customer {
                Some(self.account.keys().signing_public())
            } else {
                self.account
                    .pins()?
                    .peers
                    .get(&m.customer)
                    .map(|p| p.card.signing_key)
            };
        }
        Ok(allowed)
    }

    /// Proves that `entry` is at `index` in the log described by `head`.
    ///
    /// # Errors
    /// [`ClientError::Protocol`] (`Merkle`) if not; relay errors.
    pub async fn check_inclusion(
        &self,
        entry: &AuditEntry,
        index: u64,
        head: &SignedTreeHead,
    ) -> Result<()> {
        let proof = match self
            .session
            .request(Request::GetInclusion {
                index,
                size: head.size,
            })
            .await?
        {
            Response::Inclusion(p) => p,
            other => return Err(unexpected("GetInclusion", &other)),
        };
        if proof.index != index {
            return Err(sealdesk_protocol::Error::Merkle(
                "inclusion proof for another index".into(),
            )
            .into());
        }
        proof.verify(entry, head)?;
        Ok(())
    }

    /// All entries `from..` of the log (bounded by `head.size`).
    async fn entries(&self, from: u64, size: u64) -> Result<Vec<AuditEntry>> {
        let mut out = Vec::new();
        let mut at = from;
        while at < size {
            let limit =
                u32::try_from((size - at).min(u64::from(ENTRIES_PAGE))).unwrap_or(ENTRIES_PAGE);
            let (first, entries) = match self
                .session
                .request(Request::GetEntries { from: at, limit })
                .await?
            {
                Response::Entries { from, entries } => (from, entries),
                other => return Err(unexpected("GetEntries", &other)),
            };
            if first != at || entries.is_empty() {
                return Err(ClientError::UnexpectedResponse(format!(
                    "asked for audit entries from {at}, got {} from {first}",
                    entries.len()
                )));
            }
            if entries.len() > limit as usize {
                return Err(ClientError::ImpossibleNumber {
                    what: "number of audit entries",
                    detail: format!("asked for at most {limit}, got {}", entries.len()),
                });
            }
            at = at.checked_add(entries.len() as u64).ok_or_else(|| {
                ClientError::ImpossibleNumber {
                    what: "audit log size",
                    detail: format!("entries from {at} run past the largest index"),
                }
            })?;
            out.extend(entries);
        }
        Ok(out)
    }

    /// The audit entries that concern this account (its conversations, or its org), checked
    /// against the pinned tree head; with `verify`, each with an inclusion proof.
    ///
    /// # Errors
    /// A bad log (loudly), relay errors.
    pub async fn audit(
        &mut self,
        conversation: Option<ConversationId>,
        verify: bool,
    ) -> Result<AuditReport> {
        let (mut head, consistent) = self.checked_tree_head().await?;
        let mine: BTreeSet<ConversationId> =
            self.account.conversations()?.iter().map(|m| m.id).collect();
        let orgs: BTreeSet<String> = self.account.pins()?.orgs.keys().cloned().collect();
        // With `verify`, the head must be vouched for by the witnesses of every org this
        // account deals with: a relay-signed head alone could be one of two histories.
        let mut witnessed = BTreeMap::new();
        if verify {
            for org in &orgs {
                let (h, n) = self.witnessed_head(org).await?;
                witnessed.insert(org.clone(), n);
                head = h;
            }
        }
        let entries = self.entries(0, head.size).await?;
        let me = self.account.keys().signing_public();
        let mut lines = Vec::new();
        // Who may sign, per (org, conversation): one policy look-up each, not one per entry.
        let mut signers: BTreeMap<(Option<String>, Option<ConversationId>), AllowedSigners> =
            BTreeMap::new();
        for (i, e) in entries.iter().enumerate() {
            let index = i as u64;
            let conv = e.event.conversation();
            let relevant = match conversation {
                Some(c) => conv == Some(c),
                None => match &e.event {
                    AuditEvent::Release { org, master, .. } => {
                        conv.is_some_and(|c| mine.contains(&c))
                            || orgs.contains(org)
                                && (*master == me || self.account.role() != Role::Customer)
                    }
                    AuditEvent::PolicyChange { org, .. } => orgs.contains(org),
                    _ => conv.is_some_and(|c| mine.contains(&c)) || e.signer == me,
                },
            };
            if !relevant {
                continue;
            }
            let signed = e.verify().is_ok();
            let org = match &e.event {
                AuditEvent::Release { org, .. } | AuditEvent::PolicyChange { org, .. } => {
                    Some(org.as_str())
                }
                _ => None,
            };
            let key = (org.map(str::to_owned), conv);
            let allowed = match signers.get(&key) {
                Some(a) => a,
                None => {
                    let a = self.allowed_signers(org, conv).await?;
                    signers.entry(key).or_insert(a)
                }
            };
            let signer_allowed = signed && e.check_signer(allowed).is_ok();
            let included = if verify {
                Some(self.check_inclusion(e, index, &head).await.is_ok())
            } else {
                None
            };
            lines.push(AuditLine {
                index,
                text: crate::client::describe_notice(
                    e,
                    signer_allowed,
                    crate::client::audience_of(&self.account),
                ),
                signed,
                signer_allowed,
                included,
            });
        }
        let releases = self.audit_releases(&entries, &lines).await?;
        Ok(AuditReport {
            size: head.size,
            consistent_with_pinned: consistent,
            witnessed,
            entries: lines,
            releases,
        })
    }

    // --- customer: consent and erasure --------------------------------------------------

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
        let last = meta
            .last_epoch
            .ok_or_else(|| ClientError::Invalid("the conversation has no epoch yet".into()))?;
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
        let mut all: BTreeMap<String, ConsentRecord> =
            self.account.get_cbor(CONSENTS)?.unwrap_or_default();
        all.insert(
            token.id.to_string(),
            ConsentRecord {
                token: token.clone(),
                revoked: false,
            },
        );
        self.account.put_cbor(CONSENTS, &all)?;
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
    /// [`ClientError::Invalid`] for an unknown consent; relay errors.
    pub async fn revoke_consent(&mut self, consent: &TokenId) -> Result<u64> {
        let all: BTreeMap<String, ConsentRecord> =
            self.account.get_cbor(CONSENTS)?.unwrap_or_default();
        let rec = all.get(&consent.to_string()).ok_or_else(|| {
            ClientError::Invalid(format!(
                "no consent {consent}; `sealdesk consent list` shows yours"
            ))
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
        let mut all: BTreeMap<String, ConsentRecord> =
            self.account.get_cbor(CONSENTS)?.unwrap_or_default();
        let Some(rec) = all.get_mut(&consent.to_string()) else {
            return Err(ClientError::Invalid(format!("no consent {consent}")));
        };
        rec.revoked = true;
        self.account.put_cbor(CONSENTS, &all)?;
        Ok(index)
    }

    /// Customer: the consents granted from this account.
    ///
    /// # Errors
    /// Storage errors.
    pub fn consents(&self) -> Result<Vec<ConsentRecord>> {
        let all: BTreeMap<String, ConsentRecord> =
            self.account.get_cbor(CONSENTS)?.unwrap_or_default();
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

    // --- disputes -------------------------------------------------------------------------

    /// Master: opens a dispute ticket for `epochs` (all so far when `None`).
    ///
    /// # Errors
    /// [`ClientError::WrongRole`], relay errors.
    pub async fn open_dispute(
        &mut self,
        id: &ConversationId,
        epochs: Option<EpochRange>,
        reason: &str,
    ) -> Result<DisputeTicket> {
        self.account.require(Role::Master, "dispute open")?;
        let (org, records) = self.master_records(id).await?;
        let epochs = match epochs {
            Some(r) => r,
            None => {
                let last = records.last().map(|r| r.epoch).ok_or_else(|| {
                    ClientError::Invalid("the conversation has no epoch yet".into())
                })?;
                EpochRange::new(0, last)?
            }
        };
        let policy = self.latest_policy(&org).await?;
        let ticket = DisputeTicket::open(
            &mut rng()?,
            self.account.keys(),
            &policy,
            *id,
            epochs,
            reason,
            DEFAULT_VALIDITY_SECS.min(policy.max_release_validity_secs),
            now(),
        )?;
        expect_ok(
            self.session
                .request(Request::OpenTicket(ticket.clone()))
                .await?,
        )?;
        Ok(ticket)
    }

    /// Arbiter or master: tickets of the org with the decisions so far.
    ///
    /// # Errors
    /// Relay errors.
    pub async fn tickets(&self) -> Result<Vec<TicketState>> {
        match self.session.request(Request::ListTickets).await? {
            Response::Tickets(t) => Ok(t),
            other => Err(unexpected("ListTickets", &other)),
        }
    }

    /// Arbiter: approves or rejects a ticket after checking the master's signature.
    ///
    /// # Errors
    /// [`ClientError::WrongRole`], [`ClientError::Invalid`] for an unknown ticket, relay errors.
    pub async fn decide_ticket(
        &mut self,
        ticket: &TokenId,
        verdict: Verdict,
    ) -> Result<TicketState> {
        self.account
            .require(Role::Arbiter, "dispute approve/reject")?;
        let st = self
            .tickets()
            .await?
            .into_iter()
            .find(|t| t.ticket.id == *ticket)
            .ok_or_else(|| {
                ClientError::Invalid(format!(
                    "no ticket {ticket}; `sealdesk dispute list` shows them"
                ))
            })?;
        let policy = self.latest_policy(&st.ticket.org).await?;
        st.ticket.verify(&policy)?;
        if policy
            .arbiter(&self.account.keys().signing_public())
            .is_none()
        {
            return Err(ClientError::Invalid(format!(
                "this account is not an arbiter of {}",
                st.ticket.org
            )));
        }
        let d = ArbiterDecision::sign(self.account.keys(), &st.ticket, verdict, now())?;
        expect_ok(self.session.request(Request::Decide(d)).await?)?;
        self.tickets()
            .await?
            .into_iter()
            .find(|t| t.ticket.id == *ticket)
            .ok_or_else(|| ClientError::UnexpectedResponse("the ticket disappeared".into()))
    }

    // --- trustee ------------------------------------------------------------------------

    /// Trustee: processes every pending release request once.
    ///
    /// # Errors
    /// Relay and storage errors (a refused request is an outcome, not an error).
    pub async fn trustee_pending(&mut self) -> Result<Vec<TrusteeOutcome>> {
        self.account.require(Role::Trustee, "trustee serve")?;
        self.witness_cosign().await?;
        let pending = match self.session.request(Request::PendingReleases).await? {
            Response::Releases(p) => p,
            other => return Err(unexpected("PendingReleases", &other)),
        };
        let mut out = Vec::new();
        for p in pending {
            out.push(self.trustee_handle(p).await?);
        }
        Ok(out)
    }

    /// Trustee: handles pushes until the connection closes or `stop` resolves; calls `report`
    /// for each request handled.
    ///
    /// # Errors
    /// Relay and storage errors.
    pub async fn trustee_serve(
        &mut self,
        stop: impl std::future::Future<Output = ()>,
        mut report: impl FnMut(&TrusteeOutcome),
    ) -> Result<()> {
        for o in self.trustee_pending().await? {
            report(&o);
        }
        tokio::pin!(stop);
        let mut witness = tokio::time::interval(WITNESS_INTERVAL);
        witness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut stop => return Ok(()),
                _ = witness.tick() => {
                    self.witness_cosign().await?;
                }
                push = self.session.next_push() => {
                    let Some(push) = push else {
                        return Err(ClientError::Closed(self.session.closed()));
                    };
                    if self.session.take_dropped_pushes() > 0 {
                        for o in self.trustee_pending().await? {
                            report(&o);
                        }
                    }
                    if let Push::Release(p) = push {
                        let o = self.trustee_handle(p).await?;
                        report(&o);
                    }
                }
            }
        }
    }

    async fn trustee_handle(&mut self, p: PendingRelease) -> Result<TrusteeOutcome> {
        let r = &p.request;
        let name = format!("trustee/req/{}", r.id);
        let outcome = |s: &str| TrusteeOutcome {
            request: r.id.to_string(),
            conversation: r.conversation.to_string(),
            outcome: s.to_owned(),
        };
        let existing: Option<TrusteeRecord> = self.account.get_cbor(&name)?;
        match existing.as_ref().map(|e| &e.stage) {
            Some(TrusteeStage::Released) => return Ok(outcome("already released")),
            Some(TrusteeStage::Refused(reason)) => {
                // Answer again in case the refusal never reached the relay.
                let _ = self
                    .session
                    .request(Request::RefuseRelease {
                        request: r.id,
                        reason: reason.clone(),
                    })
                    .await;
                return Ok(outcome(&format!("refused: {reason}")));
            }
            _ => {}
        }
        match self.trustee_decide(&p, existing.as_ref()).await {
            Ok(()) => Ok(outcome("released")),
            // A relay that lied about the log is not a reason to refuse the request: stop
            // loudly, keep the persisted stage, and resume (re-append) on the next run.
            Err(e) if is_transient(&e) || is_log_fault(&e) => Err(e),
            Err(e) => {
                let reason = match &e {
                    ClientError::Protocol(sealdesk_protocol::Error::Refused(r)) => r.to_string(),
                    other => other.to_string(),
                };
                self.account.put_cbor(
                    &name,
                    &TrusteeRecord {
                        justification: r.justification.id(),
                        stage: TrusteeStage::Refused(reason.clone()),
                    },
                )?;
                match self
                    .session
                    .request(Request::RefuseRelease {
                        request: r.id,
                        reason: reason.clone(),
                    })
                    .await
                {
                    Ok(_)
                    | Err(ClientError::Relay {
                        code: ErrorCode::AlreadyAnswered | ErrorCode::Conflict,
                        ..
                    }) => {}
                    Err(e) => return Err(e),
                }
                Ok(outcome(&format!("refused: {reason}")))
            }
        }
    }

    async fn trustee_decide(
        &mut self,
        p: &PendingRelease,
        existing: Option<&TrusteeRecord>,
    ) -> Result<()> {
        let r = &p.request;
        let name = format!("trustee/req/{}", r.id);
        let policy = self.policy(&r.org, r.policy_version).await?;
        let mut records = Vec::new();
        for rec in &p.epochs {
            let rp = self.policy(&rec.org, rec.policy_version).await?;
            records.push(rec.clone().verify(&rp)?);
        }
        self.refresh_revocations().await?;
        let spent: BTreeMap<String, String> =
            self.account.get_cbor(TRUSTEE_SPENT)?.unwrap_or_default();
        let revocations: BTreeMap<String, Vec<Revocation>> = self
            .account
            .get_cbor(TRUSTEE_REVOCATIONS)?
            .unwrap_or_default();
        let this_request = r.id.to_string();
        let resuming = existing.is_some();
        // Rate limit per org: releases approved over the last hour. A request is counted only
        // once `decide` approved it (below), so a refused one spends nothing — one whose
        // justification names another conversation or other epochs included.
        let rate = if resuming {
            None
        } else {
            let mut rate: Vec<(String, u64)> =
                self.account.get_cbor(TRUSTEE_RATE)?.unwrap_or_default();
            let t = now();
            rate.retain(|(_, at)| t.saturating_sub(*at) < 3600);
            if rate.iter().filter(|(o, _)| *o == r.org).count() >= RELEASES_PER_HOUR {
                return Err(
                    sealdesk_protocol::Error::Refused(release::Refusal::RateLimited).into(),
                );
            }
            rate.push((r.org.clone(), t));
            Some(rate)
        };
        let is_spent = |id: &TokenId| {
            spent
                .get(&id.to_string())
                .is_some_and(|req| *req != this_request)
        };
        // Only the consent's signer may revoke it (docs/design.md §4.4): a revocation entry signed by
        // anyone else, or naming another conversation, is ignored.
        let is_revoked = |id: &TokenId| match &r.justification {
            Justification::Consent(c) if c.id == *id => {
                revocations.get(&id.to_string()).is_some_and(|all| {
                    all.iter()
                        .any(|x| x.signer == c.customer && x.conversation == c.conversation)
                })
            }
            _ => false,
        };
        let approved = release::decide(
            &mut rng()?,
            &TrusteeView {
                policy: &policy,
                me: self.account.keys(),
                now: now(),
                epochs: &records,
                is_spent: &is_spent,
                is_revoked: &is_revoked,
            },
            r,
        )?;
        if let Some(rate) = rate {
            self.account.put_cbor(TRUSTEE_RATE, &rate)?;
        }
        let index = match existing.map(|e| &e.stage) {
            Some(TrusteeStage::Logged { index }) => *index,
            other => {
                let logged_before = match other {
                    Some(TrusteeStage::Logging { log_size }) => {
                        self.find_release_entry(&approved.request_hash, *log_size)
                            .await?
                    }
                    _ => None,
                };
                match logged_before {
                    Some(i) => i,
                    None => {
                        let (head, _) = self.checked_tree_head().await?;
                        // Persist the decision (spent justification, logging stage) first.
                        let mut spent = spent.clone();
                        spent.insert(approved.justification.to_string(), this_request.clone());
                        self.account.put_cbor(TRUSTEE_SPENT, &spent)?;
                        self.account.put_cbor(
                            &name,
                            &TrusteeRecord {
                                justification: approved.justification,
                                stage: TrusteeStage::Logging {
                                    log_size: head.size,
                                },
                            },
                        )?;
                        fail_point("before-append");
                        let basis = match &r.justification {
                            Justification::Consent(c) => ReleaseBasis::Consent {
                                id: c.id,
                                scope: c.scope,
                                issued_at: c.issued_at,
                            },
                            Justification::Dispute { ticket, .. } => ReleaseBasis::Dispute {
                                id: ticket.id,
                                approvers: approved.approvers.clone(),
                            },
                        };
                        let entry = AuditEntry::sign(
                            self.account.keys(),
                            AuditEvent::Release {
                                org: r.org.clone(),
                                request_hash: approved.request_hash,
                                conversation: r.conversation,
                                epochs: r.epochs,
                                basis,
                                master: r.master,
                            },
                            now(),
                        );
                        match self
                            .session
                            .request(Request::AppendAudit(entry.clone()))
                            .await?
                        {
                            Response::Appended { index, head } => {
                                fail_point("after-append");
                                // No share leaves before the entry is proven to be logged.
                                self.confirm_appended(&entry, index, &head).await?;
                                index
                            }
                            other => return Err(unexpected("AppendAudit", &other)),
                        }
                    }
                }
            }
        };
        self.account.put_cbor(
            &name,
            &TrusteeRecord {
                justification: approved.justification,
                stage: TrusteeStage::Logged { index },
            },
        )?;
        // Witness a head holding the entry before any share leaves: this trustee will never
        // cosign a log without it, so no reader can be shown one with a quorum.
        self.witness_cosign().await?;
        fail_point("before-shares");
        match self
            .session
            .request(Request::SubmitShares {
                request: r.id,
                shares: approved.shares,
            })
            .await
        {
            Ok(Response::Ok)
            | Err(ClientError::Relay {
                code: ErrorCode::AlreadyAnswered | ErrorCode::Conflict,
                ..
            }) => {}
            Ok(other) => return Err(unexpected("SubmitShares", &other)),
            Err(e) => return Err(e),
        }
        fail_point("after-shares");
        self.account.put_cbor(
            &name,
            &TrusteeRecord {
                justification: approved.justification,
                stage: TrusteeStage::Released,
            },
        )?;
        Ok(())
    }

    /// Looks for this trustee's release entry for `request_hash` at or after `from`.
    async fn find_release_entry(
        &mut self,
        request_hash: &[u8; 32],
        from: u64,
    ) -> Result<Option<u64>> {
        let (head, _) = self.checked_tree_head().await?;
        let me = self.account.keys().signing_public();
        for (i, e) in self.entries(from, head.size).await?.iter().enumerate() {
            if let AuditEvent::Release {
                request_hash: h, ..
            } = &e.event
                && h == request_hash
                && e.signer == me
            {
                // `entries` stops at `head.size`, so this stays below it.
                let index =
                    from.checked_add(i as u64)
                        .ok_or_else(|| ClientError::ImpossibleNumber {
                            what: "audit entry index",
                            detail: format!("entry {i} after {from} is past the largest index"),
                        })?;
                // The listing alone proves nothing: the entry must be in the pinned head.
                self.confirm_appended(e, index, &head).await?;
                return Ok(Some(index));
            }
        }
        Ok(None)
    }

    /// Reads new audit entries and records every validly signed consent revocation with its
    /// signer and conversation. Whether one counts is decided with the request, where the
    /// consent is at hand: only one signed by the consent's own signer, for its conversation
    /// (the relay refuses any other, but a hostile relay could still serve one). All are kept,
    /// so a flood of forged ones cannot push the genuine one out.
    async fn refresh_revocations(&mut self) -> Result<()> {
        let (head, _) = self.checked_tree_head().await?;
        let cursor: u64 = self
            .account
            .get_cbor(TRUSTEE_REVOCATIONS_CURSOR)?
            .unwrap_or(0);
        if cursor >= head.size {
            return Ok(());
        }
        let mut all: BTreeMap<String, Vec<Revocation>> = self
            .account
            .get_cbor(TRUSTEE_REVOCATIONS)?
            .unwrap_or_default();
        for e in self.entries(cursor, head.size).await? {
            if let AuditEvent::ConsentRevocation {
                consent,
                conversation,
            } = &e.event
                && e.verify().is_ok()
            {
                let r = Revocation {
                    conversation: *conversation,
                    signer: e.signer,
                };
                let known = all.entry(consent.to_string()).or_default();
                if !known.contains(&r) {
                    known.push(r);
                }
            }
        }
        self.account.put_cbor(TRUSTEE_REVOCATIONS, &all)?;
        self.account
            .put_cbor(TRUSTEE_REVOCATIONS_CURSOR, &head.size)?;
        Ok(())
    }

    // --- master -------------------------------------------------------------------------

    /// Master: the conversation's epoch records, verified (structure, signature, chain).
    async fn master_records(
        &mut self,
        id: &ConversationId,
    ) -> Result<(String, Vec<VerifiedEpoch>)> {
        let mut org = None;
        let mut out: Vec<VerifiedEpoch> = Vec::new();
        for s in self.history_items(id).await? {
            if let Item::Epoch(rec) = s.item {
                let policy = self.policy(&rec.org, rec.policy_version).await?;
                if policy.master_key() != self.account.keys().signing_public() {
                    return Err(ClientError::Invalid(
                        "this account is not the master of the conversation's org".into(),
                    ));
                }
                let v = rec.verify(&policy)?;
                if v.check_follows(out.last()).is_ok() {
                    org = Some(v.org.clone());
                    out.push(v);
                }
            }
        }
        let org = org.ok_or_else(|| {
            ClientError::Invalid(format!(
                "conversation {id} has no epochs the master can see"
            ))
        })?;
        Ok((org, out))
    }

    /// Master: submits a release request and waits (up to `wait`) for enough trustees; then
    /// reconstructs the released epochs' keys and builds the transcript. `progress` is called
    /// whenever the count changes.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] if too few trustees released in time or too many refused;
    /// verification and relay errors.
    pub async fn unlock(
        &mut self,
        id: &ConversationId,
        justification: Justification,
        epochs: Option<EpochRange>,
        wait: Duration,
        mut progress: impl FnMut(&UnlockProgress),
    ) -> Result<Transcript> {
        self.account.require(Role::Master, "transcript unlock")?;
        let (org, records) = self.master_records(id).await?;
        let policy = self.latest_policy(&org).await?;
        let epochs = match epochs {
            Some(r) => r,
            None => match &justification {
                Justification::Consent(c) => c.epochs,
                Justification::Dispute { ticket, .. } => ticket.epochs,
            },
        };
        let redacted =
            matches!(&justification, Justification::Consent(c) if c.scope == Scope::Redacted);
        // The request is for the justification's conversation: one naming another conversation
        // than `id` would have the trustees release (and spend) that other one. Refused here,
        // before anything is submitted; so is one that does not cover the epochs asked for.
        let named = match &justification {
            Justification::Consent(c) => c.conversation,
            Justification::Dispute { ticket, .. } => ticket.conversation,
        };
        if named != *id {
            return Err(
                sealdesk_protocol::Error::Refused(release::Refusal::WrongConversation).into(),
            );
        }
        let request = ReleaseRequest::sign(
            &mut rng()?,
            self.account.keys(),
            &policy,
            epochs,
            justification,
            now(),
        )?;
        request
            .check_scope()
            .map_err(sealdesk_protocol::Error::Refused)?;
        expect_ok(
            self.session
                .request(Request::SubmitRelease(request.clone()))
                .await?,
        )?;
        self.remember_release_request(&request)?;
        let need = usize::from(policy.trustee_threshold);
        let deadline = tokio::time::Instant::now() + wait;
        let mut last_seen = usize::MAX;
        let progress_now = loop {
            let p = match self
                .session
                .request(Request::ReleaseStatus {
                    request: request.id,
                })
                .await?
            {
                Response::Progress(p) => p,
                other => return Err(unexpected("ReleaseStatus", &other)),
            };
            let trustees: BTreeSet<SigningPublicKey> = p.shares.iter().map(|s| s.trustee).collect();
            let up = UnlockProgress {
                released: trustees.len(),
                needed: need,
                refusals: p.refusals.clone(),
            };
            let answered = trustees.len().saturating_add(p.refusals.len());
            if answered != last_seen {
                last_seen = answered;
                progress(&up);
            }
            if trustees.len() >= need {
                break p;
            }
            // The refusals are the relay's word: more of them than the policy has trustees is
            // impossible, not a reason to wrap around (or panic) and keep waiting.
            let not_refused = policy
                .trustees
                .len()
                .checked_sub(p.refusals.len())
                .ok_or_else(|| ClientError::ImpossibleNumber {
                    what: "number of refusals",
                    detail: format!(
                        "{} refusals of a release, but the policy has {} trustees",
                        p.refusals.len(),
                        policy.trustees.len()
                    ),
                })?;
            if not_refused < need {
                let reasons: Vec<String> = p
                    .refusals
                    .iter()
                    .map(|(t, r)| format!("{t}: {r}"))
                    .collect();
                return Err(ClientError::Invalid(format!(
                    "the release was refused by too many trustees ({})",
                    reasons.join("; ")
                )));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Invalid(format!(
                    "only {} of the {need} trustee shares arrived within {} s; ask the trustees to run \
                     `sealdesk trustee serve`, then unlock again",
                    trustees.len(),
                    wait.as_secs()
                )));
            }
            // Wake on a ReleaseUpdate push, or poll every second.
            let _ = tokio::time::timeout(Duration::from_secs(1), self.session.next_push()).await;
        };
        // Reconstruct each released epoch's K and check it against the commitment.
        let mut keys = BTreeMap::new();
        for epoch in epochs.iter() {
            let rec = records.iter().find(|r| r.epoch == epoch).ok_or_else(|| {
                ClientError::Invalid(format!("no verified record for epoch {epoch}"))
            })?;
            let s_m = rec.open_master_share(self.account.keys())?;
            let rec_policy = self.policy(&rec.org, rec.policy_version).await?;
            let mut shares = Vec::new();
            let mut used = BTreeSet::new();
            for s in progress_now
                .shares
                .iter()
                .filter(|s| s.epoch == epoch && s.conversation == *id)
            {
                if used.contains(&s.trustee) {
                    continue;
                }
                if let Ok(share) = s.open(self.account.keys(), &policy, &request) {
                    used.insert(s.trustee);
                    shares.push(share);
                }
            }
            let k = escrow::reconstruct(
                &s_m,
                &shares,
                rec_policy.trustee_threshold,
                id,
                epoch,
                &rec.commitment,
            )?;
            self.account
                .vault()
                .put(&format!("master/key/{id}/{epoch}"), k.to_bytes().as_slice())?;
            keys.insert(epoch, k);
        }
        let mut transcript = self
            .build_transcript(id, &org, &records, &keys, redacted)
            .await?;
        // The release entries for this request, with their indexes.
        let (head, _) = self.checked_tree_head().await?;
        let hash = request.hash();
        for (i, e) in self.entries(0, head.size).await?.into_iter().enumerate() {
            if matches!(&e.event, AuditEvent::Release { request_hash, .. } if *request_hash == hash)
            {
                transcript.releases.push((i as u64, e));
            }
        }
        // Merge with a transcript unlocked earlier.
        let name = format!("master/transcript/{id}");
        if let Some(old) = self.account.get_cbor::<Transcript>(&name)? {
            transcript = merge(old, transcript);
        }
        self.account.put_cbor(&name, &transcript)?;
        Ok(transcript)
    }

    async fn build_transcript(
        &mut self,
        id: &ConversationId,
        org: &str,
        records: &[VerifiedEpoch],
        keys: &BTreeMap<u32, EpochSecret>,
        redacted: bool,
    ) -> Result<Transcript> {
        let mut opened: BTreeMap<u32, (EpochKeys, ReplayWindows)> = BTreeMap::new();
        let mut policies = Vec::new();
        let mut recs = Vec::new();
        for (epoch, k) in keys {
            if let Some(rec) = records.iter().find(|r| r.epoch == *epoch) {
                opened.insert(*epoch, (EpochKeys::new(k, rec), ReplayWindows::default()));
                recs.push(rec.record().clone());
                let p = self.policy(&rec.org, rec.policy_version).await?;
                if !policies.iter().any(|x: &OrgPolicy| x.version == p.version) {
                    policies.push(p.policy().clone());
                }
            }
        }
        let mut messages = Vec::new();
        for s in self.history_items(id).await? {
            if let Item::Message(env) = s.item
                && let Some((k, windows)) = opened.get_mut(&env.header.epoch)
                && let Ok(m) = k.open_message(&env, windows)
            {
                if m.header.kind != sealdesk_protocol::message::ContentKind::Text {
                    continue;
                }
                let sender = records
                    .iter()
                    .find(|r| r.epoch == env.header.epoch)
                    .and_then(|r| r.member(&env.header.sender).map(|c| c.name.clone()))
                    .unwrap_or_else(|| crate::client::short_key(&env.header.sender));
                let text = String::from_utf8_lossy(&m.body).into_owned();
                messages.push(TranscriptMessage {
                    seq: s.seq,
                    epoch: env.header.epoch,
                    counter: env.header.counter,
                    sender,
                    sent_at: env.header.sent_at,
                    text: if redacted { redact(&text) } else { text },
                    envelope: env,
                });
            }
        }
        let mut gaps = Vec::new();
        for (epoch, (_, windows)) in &opened {
            if let Some(rec) = records.iter().find(|r| r.epoch == *epoch) {
                for m in &rec.members {
                    if let Some(w) = windows.get(&m.signing_key) {
                        let missing = w.missing();
                        if !missing.is_empty() {
                            gaps.push((*epoch, m.name.clone(), missing));
                        }
                    }
                }
            }
        }
        Ok(Transcript {
            conversation: *id,
            org: org.to_owned(),
            redacted,
            records: recs,
            policies,
            messages,
            gaps,
            releases: Vec::new(),
        })
    }

    /// Master: the transcript unlocked earlier.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] (typed "nothing released") if no release opened it.
    pub fn transcript(&self, id: &ConversationId) -> Result<Transcript> {
        self.account
            .get_cbor::<Transcript>(&format!("master/transcript/{id}"))?
            .ok_or_else(|| not_released(id))
    }

    /// Master: builds a justification from a consent token (as handed over by the customer,
    /// hex CBOR) or a ticket id (with the arbiters' decisions collected by the relay).
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for a malformed token or unknown ticket.
    pub async fn justification(
        &self,
        conversation: &ConversationId,
        consent: Option<&str>,
        ticket: Option<&TokenId>,
    ) -> Result<Justification> {
        match (consent, ticket) {
            (Some(c), None) => match TokenId::parse(c) {
                Ok(id) => Ok(Justification::Consent(
                    self.shared_consent(conversation, &id).await?,
                )),
                Err(_) => Ok(Justification::Consent(decode_consent(c)?)),
            },
            (None, Some(t)) => {
                let st = self
                    .tickets()
                    .await?
                    .into_iter()
                    .find(|s| s.ticket.id == *t)
                    .ok_or_else(|| ClientError::Invalid(format!("no ticket {t}")))?;
                Ok(Justification::Dispute {
                    ticket: st.ticket,
                    decisions: st.decisions,
                })
            }
            _ => Err(ClientError::Invalid(
                "give exactly one of --consent or --ticket".into(),
            )),
        }
    }
}

impl Client {
    /// Master: finds a consent token the customer shared into the conversation through the
    /// relay. Its signature is checked by the trustees (and again here, for a clear error).
    async fn shared_consent(
        &self,
        conversation: &ConversationId,
        id: &TokenId,
    ) -> Result<ConsentToken> {
        for s in self.history_items(conversation).await? {
            if let Item::Consent(token) = s.item
                && token.id == *id
            {
                token
                    .customer
                    .verify(&token.signed_bytes(), &token.signature, "consent token")?;
                return Ok(token);
            }
        }
        Err(ClientError::Invalid(format!(
            "no consent {id} was shared in conversation {conversation}; ask the customer to run \
             `sealdesk consent grant`, or pass the token itself"
        )))
    }
}

/// A [`LogError`] as a client error.
fn log_error(e: LogError) -> ClientError {
    ClientError::Protocol(sealdesk_protocol::Error::Audit(e))
}

/// Whether `e` is a relay's lie about the audit log (see [`LogError`]).
pub fn is_log_fault(e: &ClientError) -> bool {
    matches!(e, ClientError::Protocol(sealdesk_protocol::Error::Audit(_)))
}

/// The typed error for a master asking for a transcript nothing released.
pub fn not_released(id: &ConversationId) -> ClientError {
    ClientError::Invalid(format!(
        "nothing of conversation {id} has been released to this account: the master cannot \
         decrypt without a customer consent or an approved dispute ticket \
         (`sealdesk transcript unlock`)"
    ))
}

fn merge(old: Transcript, new: Transcript) -> Transcript {
    let mut t = new;
    for r in old.records {
        if !t.records.iter().any(|x| x.epoch == r.epoch) {
            t.records.push(r);
        }
    }
    t.records.sort_by_key(|r| r.epoch);
    for p in old.policies {
        if !t.policies.iter().any(|x| x.version == p.version) {
            t.policies.push(p);
        }
    }
    for m in old.messages {
        if !t.messages.iter().any(|x| x.seq == m.seq) {
            t.messages.push(m);
        }
    }
    t.messages.sort_by_key(|m| m.seq);
    t.releases.extend(old.releases);
    t.releases.sort_by_key(|(i, _)| *i);
    t.releases.dedup_by_key(|(i, _)| *i);
    t.redacted |= old.redacted;
    t
}

fn check_consistency(
    proof: &ConsistencyProof,
    old: &SignedTreeHead,
    new: &SignedTreeHead,
) -> Result<()> {
    proof.verify(old, new).map_err(|e| {
        ClientError::Protocol(sealdesk_protocol::Error::Merkle(format!(
            "the audit log is not an extension of the one you saw before (size {} → {}): {e}. \
             The relay rewrote or forked it; report this",
            old.size, new.size
        )))
    })
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
/// [`ClientError::Invalid`].
pub fn decode_consent(s: &str) -> Result<ConsentToken> {
    let text = match std::fs::read_to_string(s) {
        Ok(t) => t,
        Err(_) => s.to_owned(),
    };
    let bytes = hex::decode(text.trim()).map_err(|_| {
        ClientError::Invalid(
            "--consent takes the token printed by `sealdesk consent grant` (or a file holding it)"
                .into(),
        )
    })?;
    Ok(from_cbor(&bytes, "consent token")?)
}
