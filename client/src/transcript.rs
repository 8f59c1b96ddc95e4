//! The portable transcript export and its offline verifier.
//!
//! ```text
//!   master: export ── history (every seq) + released keys + release entries and requests
//!                     + inclusion proofs + agent certificates ── end marker (master-signed)
//!   anyone: verify_export(file, &Anchors) ── from the anchors only:
//!           org fingerprint → master → policies → trustees, arbiters, agent certificates
//!           log key → tree head → release entries → released epochs
//!           master → end marker → every seq, every text shown, nothing dropped or reordered
//! ```
//!
//! **Architecture Invariant:** [`verify_export`] trusts no key the file carries. Every key it
//! checks a signature with is either an anchor given by the reader (the org's master
//! fingerprint, the relay's log key) or reached from one through a signed statement (a policy
//! signed by the anchored master, a certificate it signed, an epoch chain that starts with the
//! customer, a release request it signed). Without an anchor the verdict says so, and fails
//! unless the reader asked for an unanchored check.

use std::collections::{BTreeMap, BTreeSet};

use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent, InclusionProof, ReleaseBasis, SignedTreeHead},
    card::Role,
    epoch::{EpochRecord, HandOff, VerifiedEpoch},
    export::{ExportStatement, OmittedItem, OmittedKind, ReleaseRef, ShownMessage, handoff_hash},
    ids::ConversationId,
    keys::{Signature, SigningPublicKey},
    message::{ContentKind, Envelope, EpochKeys, ReplayWindows},
    policy::{AgentCertificate, OrgPolicy, VerifiedPolicy},
    release::{self, Justification, ReleaseRequest, Scope},
    secret::EpochSecret,
    wire::{Item, Request, Response, from_cbor, to_cbor},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use zeroize::Zeroizing;

use crate::client::{Client, describe_notice, unexpected};
use crate::error::{ClientError, Result};
use crate::redact::redact;

/// The format string of the exports this version writes and verifies.
pub const FORMAT: &str = "sealdesk-transcript/2";
/// The format string of the first version (no anchors, no end marker): refused.
pub const FORMAT_V1: &str = "sealdesk-transcript/1";

const REQUESTS: &str = "master/release-request";

// --- the file -----------------------------------------------------------------------------

/// The portable transcript file (JSON, protocol objects as hex CBOR).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportFile {
    /// [`FORMAT`].
    pub format: String,
    /// The conversation (hex).
    pub conversation: String,
    /// The org.
    pub org: String,
    /// Whether texts are redacted (then keys are omitted and texts are attested by the master
    /// only).
    pub redacted: bool,
    /// Policies (hex CBOR): every version an epoch record or a release request names.
    pub policies: Vec<String>,
    /// Every epoch record of the conversation, from epoch 0; the released ones with their key.
    pub epochs: Vec<ExportEpoch>,
    /// Agent certificates (hex CBOR) for every agent member of an epoch.
    pub certificates: Vec<String>,
    /// Messages of the released epochs, in relay order.
    pub messages: Vec<ExportMessage>,
    /// Every other item of the conversation, by sequence number and kind.
    pub omitted: Vec<ExportOmitted>,
    /// The conversation's last sequence number when exported.
    pub last_seq: u64,
    /// Release entries with their requests and inclusion proofs.
    pub releases: Vec<ExportRelease>,
    /// The relay's audit-log key (hex). Names the relay only: the verifier checks the tree head
    /// against its anchor, and `--home` anchors the pinned relay with this key, if any.
    pub log_key: String,
    /// The signed tree head the proofs are for (hex CBOR).
    pub tree_head: String,
    /// The master's end marker over all of the above.
    pub end: EndMarker,
}

/// An epoch in an export.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportEpoch {
    /// Relay sequence number of the record.
    pub seq: u64,
    /// Epoch number.
    pub epoch: u32,
    /// The record (hex CBOR).
    pub record: String,
    /// The key K (hex): for released epochs of a non-redacted export only.
    pub key: Option<String>,
}

/// A message in an export.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportMessage {
    /// Relay sequence number.
    pub seq: u64,
    /// Epoch.
    pub epoch: u32,
    /// Sender name.
    pub sender: String,
    /// Sender clock.
    pub sent_at: u64,
    /// The text (for a read receipt, `read up to #N`).
    pub text: String,
    /// The envelope (hex CBOR).
    pub envelope: String,
}

/// An item an export leaves out.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportOmitted {
    /// Relay sequence number.
    pub seq: u64,
    /// `message` (of an epoch not released), `handoff`, `consent` or `notice`.
    pub kind: String,
    /// The epoch, for a message.
    pub epoch: Option<u32>,
    /// The hand-off record (hex CBOR), for a hand-off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
}

/// A release entry in an export.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportRelease {
    /// Leaf index.
    pub index: u64,
    /// The entry (hex CBOR).
    pub entry: String,
    /// The release request the entry answers (hex CBOR).
    pub request: String,
    /// Inclusion proof in `tree_head` (hex CBOR).
    pub inclusion: String,
    /// Plain words (informative; the verifier describes the entry itself).
    pub text: String,
}

/// The master's signature over the export ([`ExportStatement`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EndMarker {
    /// When the master signed.
    pub signed_at: u64,
    /// The signature (hex).
    pub signature: String,
}

// --- export -------------------------------------------------------------------------------

impl Client {
    /// Master: remembers a release request, so that an export can show what each release
    /// entry answered. Called by `unlock` once the request is submitted.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn remember_release_request(&self, request: &ReleaseRequest) -> Result<()> {
        self.account.put_cbor(
            &format!("{REQUESTS}/{}", hex::encode(request.hash())),
            request,
        )
    }

    /// Master: the transcript as a portable, verifiable file, signed with an end marker. With
    /// `redact_text` (or a redacted consent) personal data is masked and the keys are left out.
    ///
    /// # Errors
    /// [`crate::escrow::not_released`], [`ClientError::Invalid`] for a release whose request
    /// this account did not keep, relay errors.
    pub async fn export_transcript(
        &mut self,
        id: &ConversationId,
        redact_text: bool,
    ) -> Result<ExportFile> {
        let t = self.transcript(id)?;
        let redacted = t.redacted || redact_text;
        let (head, _) = self.checked_tree_head().await?;
        let mut keys: BTreeMap<u32, EpochSecret> = BTreeMap::new();
        for r in &t.records {
            if let Some(k) = self
                .account
                .vault()
                .get(&format!("master/key/{id}/{}", r.epoch))?
                && let Ok(b) = <[u8; 32]>::try_from(k.as_slice())
            {
                keys.insert(r.epoch, EpochSecret::from_bytes(&Zeroizing::new(b)));
            }
        }
        let mut epochs = Vec::new();
        let mut verified: BTreeMap<u32, VerifiedEpoch> = BTreeMap::new();
        let mut policies: BTreeMap<u32, VerifiedPolicy> = BTreeMap::new();
        let mut opened: BTreeMap<u32, (EpochKeys, ReplayWindows)> = BTreeMap::new();
        let mut messages = Vec::new();
        let mut omitted = Vec::new();
        let mut last_seq = 0;
        for s in self.history_items(id).await? {
            last_seq = last_seq.max(s.seq);
            match s.item {
                Item::Epoch(rec) => {
                    let policy = self.policy(&rec.org, rec.policy_version).await?;
                    let v = rec.clone().verify(&policy)?;
                    policies.insert(policy.version, policy);
                    let key = match keys.get(&rec.epoch) {
                        Some(k) if !redacted => Some(hex::encode(k.to_bytes().as_slice())),
                        _ => None,
                    };
                    if let Some(k) = keys.get(&rec.epoch) {
                        opened.insert(rec.epoch, (EpochKeys::new(k, &v), ReplayWindows::default()));
                    }
                    epochs.push(ExportEpoch {
                        seq: s.seq,
                        epoch: rec.epoch,
                        record: hex::encode(to_cbor(&rec)?),
                        key,
                    });
                    verified.insert(rec.epoch, v);
                }
                Item::Message(env) => {
                    let shown = match opened.get_mut(&env.header.epoch) {
                        Some((k, windows)) => k.open_message(&env, windows).ok(),
                        None => None,
                    };
                    match shown {
                        Some(m) => {
                            let sender = verified
                                .get(&env.header.epoch)
                                .and_then(|r| r.member(&env.header.sender))
                                .map(|c| c.name.clone())
                                .unwrap_or_default();
                            let text = message_text(m.header.kind, &m.body);
                            messages.push(ExportMessage {
                                seq: s.seq,
                                epoch: env.header.epoch,
                                sender,
                                sent_at: env.header.sent_at,
                                text: if redacted { redact(&text) } else { text },
                                envelope: hex::encode(to_cbor(&env)?),
                            });
                        }
                        None => omitted.push(ExportOmitted {
                            seq: s.seq,
                            kind: kind_name(OmittedKind::Message).into(),
                            epoch: Some(env.header.epoch),
                            record: None,
                        }),
                    }
                }
                Item::HandOff(h) => omitted.push(ExportOmitted {
                    record: Some(hex::encode(to_cbor(&h)?)),
                    ..omit(s.seq, OmittedKind::HandOff)
                }),
                Item::Consent(_) => omitted.push(omit(s.seq, OmittedKind::Consent)),
                Item::Notice { .. } => omitted.push(omit(s.seq, OmittedKind::Notice)),
            }
        }
        let mut certificates = Vec::new();
        let mut certified = BTreeSet::new();
        for v in verified.values() {
            for m in v.members.iter().filter(|m| m.role == Role::Agent) {
                if !certified.insert(m.signing_key) {
                    continue;
                }
                match self
                    .session
                    .request(Request::GetCertificate {
                        org: v.org.clone(),
                        agent: m.name.clone(),
                    })
                    .await?
                {
                    Response::Certificate(cert) => certificates.push(hex::encode(to_cbor(&cert)?)),
                    other => return Err(unexpected("GetCertificate", &other)),
                }
            }
        }
        let mut releases = Vec::new();
        for (index, e) in &t.releases {
            let AuditEvent::Release { request_hash, .. } = &e.event else {
                continue;
            };
            let request: ReleaseRequest = self
                .account
                .get_cbor(&format!("{REQUESTS}/{}", hex::encode(request_hash)))?
                .ok_or_else(|| {
                    ClientError::Invalid(format!(
                        "the release request behind audit entry #{index} is not kept in this \
                         account (it was unlocked by an older version): unlock the conversation \
                         again to export it"
                    ))
                })?;
            let policy = self.policy(&request.org, request.policy_version).await?;
            let genuine = crate::notice::counts_as_release(e, Some(&policy), None);
            policies.insert(policy.version, policy);
            let proof = match self
                .session
                .request(Request::GetInclusion {
                    index: *index,
                    size: head.size,
                })
                .await?
            {
                Response::Inclusion(p) => p,
                other => return Err(unexpected("GetInclusion", &other)),
            };
            releases.push(ExportRelease {
                index: *index,
                entry: hex::encode(to_cbor(e)?),
                request: hex::encode(to_cbor(&request)?),
                inclusion: hex::encode(to_cbor(&proof)?),
                text: describe_notice(e, genuine, crate::notice::Audience::Master),
            });
        }
        let mut file = ExportFile {
            format: FORMAT.into(),
            conversation: id.to_string(),
            org: t.org.clone(),
            redacted,
            policies: policies
                .values()
                .map(|p| to_cbor(p.policy()).map(hex::encode))
                .collect::<sealdesk_protocol::Result<_>>()?,
            epochs,
            certificates,
            messages,
            omitted,
            last_seq,
            releases,
            log_key: hex::encode(self.session.welcome().log_key.as_bytes()),
            tree_head: hex::encode(to_cbor(&head)?),
            end: EndMarker {
                signed_at: crate::now(),
                signature: String::new(),
            },
        };
        sign_export(&mut file, self.account.keys())?;
        Ok(file)
    }
}

/// Signs (or re-signs) `file`'s end marker with the master's identity keys.
///
/// # Errors
/// [`ClientError::Invalid`] if the file is not well formed enough to state.
pub fn sign_export(
    file: &mut ExportFile,
    master: &sealdesk_protocol::keys::IdentityKeys,
) -> Result<()> {
    let parsed = Parsed::parse(file).map_err(|f| ClientError::Invalid(f.detail))?;
    let statement = parsed.statement(file, master.signing_public());
    file.end.signature = hex::encode(statement.sign(master).to_bytes());
    Ok(())
}

fn omit(seq: u64, kind: OmittedKind) -> ExportOmitted {
    ExportOmitted {
        seq,
        kind: kind_name(kind).into(),
        epoch: None,
        record: None,
    }
}

fn kind_name(kind: OmittedKind) -> &'static str {
    match kind {
        OmittedKind::Message => "message",
        OmittedKind::HandOff => "handoff",
        OmittedKind::Consent => "consent",
        OmittedKind::Notice => "notice",
    }
}

fn kind_from_name(name: &str) -> Option<OmittedKind> {
    [
        OmittedKind::Message,
        OmittedKind::HandOff,
        OmittedKind::Consent,
        OmittedKind::Notice,
    ]
    .into_iter()
    .find(|k| kind_name(*k) == name)
}

/// The text an export shows for a decrypted message body.
fn message_text(kind: ContentKind, body: &[u8]) -> String {
    match kind {
        ContentKind::Text => String::from_utf8_lossy(body).into_owned(),
        ContentKind::Read => match <[u8; 8]>::try_from(body) {
            Ok(b) => format!("read up to #{}", u64::from_be_bytes(b)),
            Err(_) => "read receipt (malformed)".into(),
        },
    }
}

// --- verification: anchors, reasons, verdict ---------------------------------------------

/// What the reader trusts, from outside the file.
#[derive(Clone, Debug, Default)]
pub struct Anchors {
    /// The org master fingerprint the business publishes (printed form), or the pinned one.
    pub org_fingerprint: Option<String>,
    /// The relay's audit-log keys the reader trusts (from `--log-key` or the home's pins).
    pub log_keys: Vec<SigningPublicKey>,
}

impl Anchors {
    /// Whether both anchors are present.
    pub fn complete(&self) -> bool {
        self.org_fingerprint.is_some() && !self.log_keys.is_empty()
    }
}

/// Why a transcript does not verify: one stable code per check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// The file's format is not [`FORMAT`] (an older export must be made again).
    UnsupportedFormat,
    /// A field of the file cannot be decoded.
    Undecodable,
    /// No org fingerprint was given: nothing is checked against a trusted master key.
    NoOrgAnchor,
    /// No log key was given: the release entries' inclusion is not checked against a trusted log.
    NoLogAnchor,
    /// No policy in the file is signed by the anchored master key.
    WrongMaster,
    /// A policy does not verify, is for another org, is signed by another master, or repeats a version.
    BadPolicy,
    /// An epoch record or release request names a policy version the file does not carry.
    MissingPolicy,
    /// An epoch record's structure or signature does not verify.
    BadEpochRecord,
    /// An epoch record is for another conversation.
    WrongConversation,
    /// The epochs do not form a chain from epoch 0 created by the customer.
    BrokenEpochChain,
    /// A hand-off record is missing, hands over no epoch, is not signed by a member of the
    /// epochs it hands over, is not to a member of a later epoch, or is not allowed by the
    /// policy.
    BadHandOff,
    /// An agent member has no valid certificate from the anchored master.
    AgentNotCertified,
    /// A released key does not match its epoch's commitment, or a released epoch has no key.
    BadKey,
    /// An epoch's key or messages are shown, but no valid release covers it.
    EpochNotReleased,
    /// A message's sender is not a member of its epoch.
    SenderNotMember,
    /// A message's signature does not verify.
    BadMessageSignature,
    /// The sender name shown is not the name on the member's card.
    SenderNameMismatch,
    /// The text shown is not what the message decrypts to.
    TextMismatch,
    /// A sender's counters in an epoch have a hole or a repeat.
    CounterGap,
    /// Sequence numbers repeat, are out of order, or do not run from 1 to the last one.
    SequenceGap,
    /// An item left out is a message of a released epoch.
    WithheldMessage,
    /// The master's end marker is missing or does not verify.
    BadEndMarker,
    /// There are no release entries.
    NoRelease,
    /// A release entry's event is not a release (for example a revocation).
    NotAReleaseEvent,
    /// A release entry's signature does not verify.
    BadReleaseSignature,
    /// A release entry is signed by a key that is not a trustee of the policy in force.
    SignerNotTrustee,
    /// Two release entries of one request are signed by the same trustee.
    DuplicateTrustee,
    /// Fewer distinct trustees than the policy's threshold released an epoch.
    ThresholdNotMet,
    /// A release entry's request or justification does not match the conversation, epochs,
    /// customer, master or policy.
    JustificationMismatch,
    /// The consent was for a redacted transcript, and this export is not redacted.
    RedactionRequired,
    /// The tree head is not signed by the anchored log key.
    UntrustedTreeHead,
    /// A release entry is not proven included in the tree head.
    NotIncluded,
    /// No policy in the file verifies: nothing could be checked, anchored or not.
    NoPolicy,
    /// An epoch is released by a dispute only, and dispute releases do not bind the epoch records:
    /// the release event, request, ticket and approvals name only the org, the conversation and
    /// epoch numbers, so a master holding a genuine dispute release could write the epochs and
    /// messages itself. Refused until release entries carry the released records' hashes (an
    /// epoch a consent release in the file also covers is bound through the consent).
    DisputeNotBoundToRecords,
    /// A release entry was signed outside its consent's or ticket's validity window, or the
    /// window is longer than the policy allows.
    ReleaseOutsideWindow,
    /// A field the file shows beside a signed object (a message's epoch or clock, an epoch's
    /// number) is not what the signed object says.
    ShownFieldMismatch,
}

impl Reason {
    /// Every reason, for listing and tests.
    pub const ALL: [Reason; 36] = [
        Reason::UnsupportedFormat,
        Reason::Undecodable,
        Reason::NoOrgAnchor,
        Reason::NoLogAnchor,
        Reason::WrongMaster,
        Reason::BadPolicy,
        Reason::MissingPolicy,
        Reason::BadEpochRecord,
        Reason::WrongConversation,
        Reason::BrokenEpochChain,
        Reason::BadHandOff,
        Reason::AgentNotCertified,
        Reason::BadKey,
        Reason::EpochNotReleased,
        Reason::SenderNotMember,
        Reason::BadMessageSignature,
        Reason::SenderNameMismatch,
        Reason::TextMismatch,
        Reason::CounterGap,
        Reason::SequenceGap,
        Reason::WithheldMessage,
        Reason::BadEndMarker,
        Reason::NoRelease,
        Reason::NotAReleaseEvent,
        Reason::BadReleaseSignature,
        Reason::SignerNotTrustee,
        Reason::DuplicateTrustee,
        Reason::ThresholdNotMet,
        Reason::JustificationMismatch,
        Reason::RedactionRequired,
        Reason::UntrustedTreeHead,
        Reason::NotIncluded,
        Reason::NoPolicy,
        Reason::DisputeNotBoundToRecords,
        Reason::ReleaseOutsideWindow,
        Reason::ShownFieldMismatch,
    ];

    /// The stable code shown in the verdict and in `--json`.
    pub fn code(self) -> &'static str {
        match self {
            Reason::UnsupportedFormat => "unsupported_format",
            Reason::Undecodable => "undecodable",
            Reason::NoOrgAnchor => "no_org_anchor",
            Reason::NoLogAnchor => "no_log_anchor",
            Reason::WrongMaster => "wrong_master",
            Reason::BadPolicy => "bad_policy",
            Reason::MissingPolicy => "missing_policy",
            Reason::BadEpochRecord => "bad_epoch_record",
            Reason::WrongConversation => "wrong_conversation",
            Reason::BrokenEpochChain => "broken_epoch_chain",
            Reason::BadHandOff => "bad_hand_off",
            Reason::AgentNotCertified => "agent_not_certified",
            Reason::BadKey => "bad_key",
            Reason::EpochNotReleased => "epoch_not_released",
            Reason::SenderNotMember => "sender_not_member",
            Reason::BadMessageSignature => "bad_message_signature",
            Reason::SenderNameMismatch => "sender_name_mismatch",
            Reason::TextMismatch => "text_mismatch",
            Reason::CounterGap => "counter_gap",
            Reason::SequenceGap => "sequence_gap",
            Reason::WithheldMessage => "withheld_message",
            Reason::BadEndMarker => "bad_end_marker",
            Reason::NoRelease => "no_release",
            Reason::NotAReleaseEvent => "not_a_release_event",
            Reason::BadReleaseSignature => "bad_release_signature",
            Reason::SignerNotTrustee => "signer_not_trustee",
            Reason::DuplicateTrustee => "duplicate_trustee",
            Reason::ThresholdNotMet => "threshold_not_met",
            Reason::JustificationMismatch => "justification_mismatch",
            Reason::RedactionRequired => "redaction_required",
            Reason::UntrustedTreeHead => "untrusted_tree_head",
            Reason::NotIncluded => "not_included",
            Reason::NoPolicy => "no_policy",
            Reason::DisputeNotBoundToRecords => "dispute_not_bound_to_records",
            Reason::ReleaseOutsideWindow => "release_outside_window",
            Reason::ShownFieldMismatch => "shown_field_mismatch",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// One failed check.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    /// The named reason.
    pub reason: Reason,
    /// What exactly failed, in plain words.
    pub detail: String,
}

/// The verdict of an offline transcript check.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    /// Whether every check passed against complete anchors.
    pub ok: bool,
    /// Whether the checks past the file's format ran at all: a policy verified, so the end
    /// marker, epochs, releases and messages were checked (against the anchors, or — without
    /// them — against the file's own master). A verdict with `checked == false` shows nothing,
    /// whatever the anchors.
    pub checked: bool,
    /// Whether the master and the log were checked against keys the reader trusts.
    pub anchored: bool,
    /// Every failed check (all of them, not only the first).
    pub failures: Vec<Failure>,
    /// The checks that passed, in plain words.
    pub passed: Vec<String>,
    /// What holds only in a weaker sense than the rest (named, not failures).
    pub weaker: Vec<String>,
    /// The epochs that at least `t_e` distinct trustees released for one request.
    pub released_epochs: Vec<u32>,
    /// The master fingerprint of the policies.
    pub master_fingerprint: String,
}

impl Verification {
    /// Whether `reason` is among the failures.
    pub fn failed(&self, reason: Reason) -> bool {
        self.failures.iter().any(|f| f.reason == reason)
    }

    /// The failures' codes, sorted and without repeats.
    pub fn reasons(&self) -> Vec<Reason> {
        let set: BTreeSet<Reason> = self.failures.iter().map(|f| f.reason).collect();
        set.into_iter().collect()
    }
}

/// The weaker-than-signed line of a redacted export.
pub const REDACTED_WEAKER: &str = "redacted texts are attested by the master's end marker, not by \
     the senders' signatures: the senders signed the ciphertext of the full text, which a redacted \
     export cannot show";

/// The weaker line of a consent export with epochs after epoch 0.
pub const CONSENT_LATER_EPOCHS_WEAKER: &str = "epochs after epoch 0 are bound to the consenting \
     customer only through the epoch chain: an agent colluding with the master could have forked \
     the conversation from epoch 1 on (records, keys and messages the customer never saw), and \
     the release entries do not carry the released records' hashes yet";

/// The weaker line of every anchored tree head.
pub const NO_COSIGNATURES_WEAKER: &str = "no witness cosignatures checked: the audit tree head is \
     trusted on the relay's log key alone, so a relay showing different logs to different \
     readers is not ruled out";

// --- verification -------------------------------------------------------------------------

/// Checks an exported transcript offline against the reader's anchors only. Pure: no I/O and
/// no clock (agent certificates are checked at their epoch's creation time).
pub fn verify_export(file: &ExportFile, anchors: &Anchors) -> Verification {
    let mut v = Verifier::default();
    if file.format != FORMAT {
        let detail = if file.format == FORMAT_V1 {
            "this is a sealdesk-transcript/1 export, which carries no end marker and cannot be \
             checked against a trusted key: ask the business to export it again"
                .to_owned()
        } else {
            format!(
                "unknown export format {:?} (expected {FORMAT})",
                file.format
            )
        };
        v.fail(Reason::UnsupportedFormat, detail);
        return v.finish(anchors, false, String::new(), Vec::new());
    }
    let parsed = match Parsed::parse(file) {
        Ok(p) => p,
        Err(f) => {
            v.failures.push(f);
            return v.finish(anchors, false, String::new(), Vec::new());
        }
    };
    let master = v.check_policies(file, &parsed, anchors);
    let master_fp = master
        .as_ref()
        .map(|(_, fp)| fp.clone())
        .unwrap_or_default();
    let Some((master_key, _)) = master else {
        return v.finish(anchors, false, master_fp, Vec::new());
    };
    v.check_end_marker(file, &parsed, master_key);
    let epochs = v.check_epochs(file, &parsed, master_key);
    v.check_handoffs(&parsed, &epochs);
    let released = v.check_releases(file, &parsed, anchors, master_key, &epochs);
    v.check_keys(&parsed, &released, file.redacted);
    v.check_messages(file, &parsed, &epochs, &released);
    v.check_sequence(file, &parsed, &released);
    if file.redacted {
        v.weaker.push(REDACTED_WEAKER.into());
    }
    v.finish(anchors, true, master_fp, released.into_iter().collect())
}

/// Reads an export from its JSON text. A text that is not an export of this version — not
/// JSON, [`FORMAT_V1`] or an unknown format, a field missing or of the wrong type — gives the
/// refused verdict instead, with its named reason ([`Reason::UnsupportedFormat`] or
/// [`Reason::Undecodable`]) and `checked == false`.
///
/// # Errors
/// The refused [`Verification`] (boxed), as above.
pub fn parse_export(text: &str) -> std::result::Result<ExportFile, Box<Verification>> {
    let err = match serde_json::from_str::<ExportFile>(text) {
        Ok(file) => return Ok(file),
        Err(e) => e,
    };
    let format = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("format").and_then(|f| f.as_str()).map(str::to_owned));
    let failure = match format.as_deref() {
        Some(FORMAT_V1) => Failure {
            reason: Reason::UnsupportedFormat,
            detail: "this is a sealdesk-transcript/1 export, which carries no end marker and \
                     cannot be checked against a trusted key: ask the business to export it again"
                .into(),
        },
        Some(f) if f != FORMAT => Failure {
            reason: Reason::UnsupportedFormat,
            detail: format!("unknown export format {f:?} (expected {FORMAT})"),
        },
        _ => Failure {
            reason: Reason::Undecodable,
            detail: format!("the file is not a {FORMAT} export: {err}"),
        },
    };
    Err(Box::new(Verification {
        ok: false,
        checked: false,
        anchored: false,
        failures: vec![failure],
        passed: Vec::new(),
        weaker: Vec::new(),
        released_epochs: Vec::new(),
        master_fingerprint: String::new(),
    }))
}

/// The file's fields, decoded.
struct Parsed {
    conversation: ConversationId,
    policies: Vec<OrgPolicy>,
    epochs: Vec<(u64, EpochRecord, Option<EpochSecret>)>,
    certificates: Vec<AgentCertificate>,
    messages: Vec<Envelope>,
    omitted: Vec<OmittedItem>,
    /// Hand-off records by seq (`None` where the file lists a hand-off without its record).
    handoffs: Vec<(u64, Option<HandOff>)>,
    releases: Vec<(AuditEntry, ReleaseRequest, InclusionProof)>,
    head: SignedTreeHead,
    signature: Option<Signature>,
}

fn undecodable(what: impl Into<String>) -> Failure {
    Failure {
        reason: Reason::Undecodable,
        detail: format!("{} is not decodable", what.into()),
    }
}

fn hex_cbor<T: DeserializeOwned>(s: &str, what: &str) -> std::result::Result<T, Failure> {
    let bytes = hex::decode(s).map_err(|_| undecodable(what))?;
    from_cbor(&bytes, "export field").map_err(|_| undecodable(what))
}

impl Parsed {
    fn parse(file: &ExportFile) -> std::result::Result<Self, Failure> {
        let conversation = ConversationId::parse(&file.conversation)
            .map_err(|_| undecodable("the conversation id"))?;
        let policies = file
            .policies
            .iter()
            .map(|p| hex_cbor(p, "a policy"))
            .collect::<std::result::Result<_, _>>()?;
        let mut epochs = Vec::new();
        for e in &file.epochs {
            let rec: EpochRecord = hex_cbor(&e.record, &format!("epoch {} record", e.epoch))?;
            let key = match &e.key {
                None => None,
                Some(k) => {
                    let b = hex::decode(k)
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                        .ok_or_else(|| undecodable(format!("epoch {} key", e.epoch)))?;
                    Some(EpochSecret::from_bytes(&Zeroizing::new(b)))
                }
            };
            epochs.push((e.seq, rec, key));
        }
        let certificates = file
            .certificates
            .iter()
            .map(|c| hex_cbor(c, "an agent certificate"))
            .collect::<std::result::Result<_, _>>()?;
        let messages = file
            .messages
            .iter()
            .map(|m| hex_cbor(&m.envelope, &format!("message #{} envelope", m.seq)))
            .collect::<std::result::Result<_, _>>()?;
        let mut omitted = Vec::new();
        let mut handoffs = Vec::new();
        for o in &file.omitted {
            let kind = kind_from_name(&o.kind)
                .ok_or_else(|| undecodable(format!("item kind {:?}", o.kind)))?;
            let record: Option<HandOff> = match &o.record {
                None => None,
                Some(r) => Some(hex_cbor(r, &format!("hand-off #{}", o.seq))?),
            };
            omitted.push(OmittedItem {
                seq: o.seq,
                kind,
                epoch: o.epoch,
                record: record.as_ref().map(handoff_hash),
            });
            if kind == OmittedKind::HandOff {
                handoffs.push((o.seq, record));
            }
        }
        let mut releases = Vec::new();
        for r in &file.releases {
            releases.push((
                hex_cbor(&r.entry, &format!("release entry #{}", r.index))?,
                hex_cbor(
                    &r.request,
                    &format!("release request of entry #{}", r.index),
                )?,
                hex_cbor(
                    &r.inclusion,
                    &format!("inclusion proof of entry #{}", r.index),
                )?,
            ));
        }
        let head = hex_cbor(&file.tree_head, "the tree head")?;
        let signature = hex::decode(&file.end.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
            .and_then(|b| Signature::from_bytes(&b).ok());
        Ok(Parsed {
            conversation,
            policies,
            epochs,
            certificates,
            messages,
            omitted,
            handoffs,
            releases,
            head,
            signature,
        })
    }

    /// What the master's end marker states about `file`.
    fn statement<'a>(
        &'a self,
        file: &'a ExportFile,
        master: SigningPublicKey,
    ) -> ExportStatement<'a> {
        ExportStatement {
            conversation: self.conversation,
            org: &file.org,
            redacted: file.redacted,
            policies: self.policies.iter().map(OrgPolicy::hash).collect(),
            epochs: self
                .epochs
                .iter()
                .map(|(seq, r, _)| (*seq, r.hash()))
                .collect(),
            messages: file
                .messages
                .iter()
                .zip(&self.messages)
                .map(|(m, envelope)| ShownMessage {
                    seq: m.seq,
                    envelope,
                    sender: &m.sender,
                    text: &m.text,
                })
                .collect(),
            omitted: self.omitted.clone(),
            last_seq: file.last_seq,
            releases: self
                .releases
                .iter()
                .zip(&file.releases)
                .map(|((e, r, _), fr)| ReleaseRef {
                    index: fr.index,
                    leaf_hash: e.leaf_hash(),
                    request_hash: r.hash(),
                })
                .collect(),
            tree_size: self.head.size,
            tree_root: self.head.root,
            signed_at: file.end.signed_at,
            master,
        }
    }
}

#[derive(Default)]
struct Verifier {
    failures: Vec<Failure>,
    passed: Vec<String>,
    weaker: Vec<String>,
    policies: BTreeMap<u32, VerifiedPolicy>,
}

impl Verifier {
    fn fail(&mut self, reason: Reason, detail: impl Into<String>) {
        self.failures.push(Failure {
            reason,
            detail: detail.into(),
        });
    }

    fn pass(&mut self, what: impl Into<String>) {
        self.passed.push(what.into());
    }

    fn finish(
        mut self,
        anchors: &Anchors,
        checked: bool,
        master_fingerprint: String,
        released_epochs: Vec<u32>,
    ) -> Verification {
        if anchors.org_fingerprint.is_none() {
            self.fail(
                Reason::NoOrgAnchor,
                "no --org-fingerprint (and no pinned org in --home): nothing was verified against \
                 a trusted master key; anyone can make a file that passes the other checks",
            );
        }
        if anchors.log_keys.is_empty() {
            self.fail(
                Reason::NoLogAnchor,
                "no --log-key (and no pinned relay in --home): the release entries were not \
                 checked against a trusted audit log",
            );
        }
        let anchored = anchors.complete();
        Verification {
            ok: checked && self.failures.is_empty(),
            checked,
            anchored,
            failures: self.failures,
            passed: self.passed,
            weaker: self.weaker,
            released_epochs,
            master_fingerprint,
        }
    }

    /// The policies: each verifies, is this org's, and is signed by the master key — the
    /// anchored one if there is an anchor. Returns the master key and its fingerprint.
    fn check_policies(
        &mut self,
        file: &ExportFile,
        parsed: &Parsed,
        anchors: &Anchors,
    ) -> Option<(SigningPublicKey, String)> {
        let mut verified = Vec::new();
        for p in &parsed.policies {
            match p.clone().verify() {
                Ok(v) if v.org == file.org => verified.push(v),
                Ok(v) => self.fail(
                    Reason::BadPolicy,
                    format!(
                        "policy version {} is for org {:?}, not {:?}",
                        v.version, v.org, file.org
                    ),
                ),
                Err(e) => self.fail(
                    Reason::BadPolicy,
                    format!("policy version {} does not verify: {e}", p.version),
                ),
            }
        }
        if verified.is_empty() {
            self.fail(
                Reason::NoPolicy,
                "no policy in the file verifies: there is no master key to check anything with, \
                 so nothing was checked",
            );
        }
        let master_card = match &anchors.org_fingerprint {
            Some(fp) => {
                let found = verified.iter().map(|p| p.master.clone()).find(|c| {
                    c.clone()
                        .verify()
                        .is_ok_and(|c| c.fingerprint().matches(fp))
                });
                if found.is_none() {
                    let seen: BTreeSet<String> = verified
                        .iter()
                        .filter_map(|p| p.master.clone().verify().ok())
                        .map(|c| c.fingerprint().to_string())
                        .collect();
                    self.fail(
                        Reason::WrongMaster,
                        format!(
                            "no policy in the file is signed by the master with fingerprint {fp} \
                             (the file's policies name {})",
                            if seen.is_empty() {
                                "no valid master".to_owned()
                            } else {
                                seen.into_iter().collect::<Vec<_>>().join(", ")
                            }
                        ),
                    );
                }
                found
            }
            None => verified.first().map(|p| p.master.clone()),
        }?;
        let master = master_card.signing_key;
        let fingerprint = master_card
            .clone()
            .verify()
            .map(|c| c.fingerprint().to_string())
            .unwrap_or_default();
        for p in verified {
            if p.master_key() != master {
                self.fail(
                    Reason::BadPolicy,
                    format!(
                        "policy version {} is signed by another master key than the anchored one",
                        p.version
                    ),
                );
            } else {
                let version = p.version;
                if let std::collections::btree_map::Entry::Vacant(slot) =
                    self.policies.entry(version)
                {
                    slot.insert(p);
                } else {
                    self.fail(
                        Reason::BadPolicy,
                        format!("policy version {version} appears twice"),
                    );
                }
            }
        }
        if !self.policies.is_empty() {
            self.pass(format!(
                "{} policy version(s) of {}, signed by the master {fingerprint}{}",
                self.policies.len(),
                file.org,
                if anchors.org_fingerprint.is_some() {
                    " (the anchored fingerprint)"
                } else {
                    " (NOT anchored)"
                }
            ));
        }
        Some((master, fingerprint))
    }

    fn check_end_marker(&mut self, file: &ExportFile, parsed: &Parsed, master: SigningPublicKey) {
        let ok = match &parsed.signature {
            None => {
                self.fail(
                    Reason::BadEndMarker,
                    "the export has no end marker signature",
                );
                return;
            }
            Some(sig) => parsed.statement(file, master).verify(sig).is_ok(),
        };
        if ok {
            self.pass(format!(
                "end marker signed by the master: the {} message(s), {} item(s) left out and \
                 everything else up to #{} are exactly as the master exported them",
                file.messages.len(),
                file.omitted.len(),
                file.last_seq
            ));
        } else {
            self.fail(
                Reason::BadEndMarker,
                "the master's end marker does not verify: the file was changed after the master \
                 exported it, or was not exported by the anchored master",
            );
        }
    }

    /// Epoch records from epoch 0: each verifies under a policy of the anchored master, the
    /// chain holds (epoch 0 created by the customer, each later one by a member of the one
    /// before), and every agent member has a certificate from the master valid at creation.
    fn check_epochs(
        &mut self,
        file: &ExportFile,
        parsed: &Parsed,
        master: SigningPublicKey,
    ) -> BTreeMap<u32, VerifiedEpoch> {
        let mut out: BTreeMap<u32, VerifiedEpoch> = BTreeMap::new();
        let mut previous: Option<VerifiedEpoch> = None;
        let mut chain_ok = true;
        let mut broken = false;
        for ((_, rec, _), shown) in parsed.epochs.iter().zip(&file.epochs) {
            let n = rec.epoch;
            if shown.epoch != n {
                self.fail(
                    Reason::ShownFieldMismatch,
                    format!(
                        "the file shows epoch {} at #{}, but the record there is of epoch {n}",
                        shown.epoch, shown.seq
                    ),
                );
            }
            let Some(policy) = self.policies.get(&rec.policy_version).cloned() else {
                self.fail(
                    Reason::MissingPolicy,
                    format!(
                        "epoch {n} was made under policy version {}, which the file does not carry \
                         signed by the master",
                        rec.policy_version
                    ),
                );
                chain_ok = false;
                broken = true;
                continue;
            };
            if rec.conversation != parsed.conversation {
                self.fail(
                    Reason::WrongConversation,
                    format!("epoch {n} record is for conversation {}", rec.conversation),
                );
            }
            // Agents are the master's: each needs its certificate, valid when the epoch was
            // created (checked on the cards as written, whether or not the record verifies).
            for m in rec.members.iter().filter(|m| m.role == Role::Agent) {
                let certified = parsed.certificates.iter().any(|c| {
                    c.agent == *m
                        && c.verify(&policy, rec.created_at).is_ok()
                        && policy.master_key() == master
                });
                if !certified {
                    self.fail(
                        Reason::AgentNotCertified,
                        format!(
                            "agent {} of epoch {n} has no certificate from the master valid when \
                             the epoch was created",
                            m.name
                        ),
                    );
                }
            }
            let v = match rec.clone().verify(&policy) {
                Ok(v) => v,
                Err(e) => {
                    self.fail(
                        Reason::BadEpochRecord,
                        format!("epoch {n} record does not verify: {e}"),
                    );
                    chain_ok = false;
                    broken = true;
                    continue;
                }
            };
            if broken {
                self.fail(
                    Reason::BrokenEpochChain,
                    format!("epoch {n} follows a record that does not verify"),
                );
            } else if let Err(e) = v.check_follows(previous.as_ref()) {
                chain_ok = false;
                self.fail(
                    Reason::BrokenEpochChain,
                    match &previous {
                        None => format!("epoch {n} cannot start the chain: {e}"),
                        Some(p) => format!("epoch {n} does not follow epoch {}: {e}", p.epoch),
                    },
                );
            }
            previous = Some(v.clone());
            if out.insert(n, v).is_some() {
                self.fail(Reason::BrokenEpochChain, format!("epoch {n} appears twice"));
            }
        }
        if out.is_empty() {
            self.fail(Reason::BrokenEpochChain, "the file has no epoch records");
        } else if chain_ok {
            self.pass(format!(
                "{} epoch record(s): a chain from epoch 0 created by the customer, members \
                 certified by the master, for conversation {}",
                out.len(),
                file.conversation
            ));
        }
        out
    }

    /// Hand-offs: each record present, for this conversation, signed by a member of every epoch
    /// it hands over, to a member of a later epoch whose policy allows history hand-off.
    fn check_handoffs(&mut self, parsed: &Parsed, epochs: &BTreeMap<u32, VerifiedEpoch>) {
        let before = self.failures.len();
        for (seq, h) in &parsed.handoffs {
            let Some(h) = h else {
                self.fail(
                    Reason::BadHandOff,
                    format!("the hand-off at #{seq} is listed without its record"),
                );
                continue;
            };
            let at = format!("hand-off #{seq}");
            if h.conversation != parsed.conversation {
                self.fail(
                    Reason::BadHandOff,
                    format!("{at} is for another conversation"),
                );
                continue;
            }
            if h.from
                .verify(&h.signed_bytes(), &h.signature, "hand-off")
                .is_err()
            {
                self.fail(Reason::BadHandOff, format!("{at}: bad signature"));
                continue;
            }
            let handed: Vec<u32> = h.epochs.iter().map(|(e, _)| *e).collect();
            if handed.is_empty() {
                self.fail(Reason::BadHandOff, format!("{at} hands over no epoch"));
                continue;
            }
            if handed
                .iter()
                .any(|e| epochs.get(e).is_none_or(|r| r.member(&h.from).is_none()))
            {
                self.fail(
                    Reason::BadHandOff,
                    format!(
                        "{at} hands over epochs {handed:?}, of which its signer was not a member"
                    ),
                );
            }
            let last = handed.iter().max().copied().unwrap_or(0);
            let receiving = epochs
                .values()
                .find(|r| r.epoch > last && r.member(&h.to).is_some());
            match receiving {
                None => self.fail(
                    Reason::BadHandOff,
                    format!("{at} is to a key that is not a member of a later epoch"),
                ),
                Some(r) => {
                    if !self
                        .policies
                        .get(&r.policy_version)
                        .is_some_and(|p| p.history_handoff)
                    {
                        self.fail(
                            Reason::BadHandOff,
                            format!(
                                "{at}: the policy of epoch {} does not allow hand-off",
                                r.epoch
                            ),
                        );
                    }
                }
            }
        }
        if !parsed.handoffs.is_empty() && self.failures.len() == before {
            self.pass(format!(
                "{} hand-off(s): each signed by a member of the epochs it hands over, to a member \
                 of a later epoch, as the policy allows",
                parsed.handoffs.len()
            ));
        }
    }

    /// Release entries: each a release event for this conversation, signed by a distinct
    /// trustee of the policy in force, answering a request the master signed under a matching
    /// justification, included in a tree head signed by the anchored log key. Returns the
    /// epochs at least `t_e` distinct trustees released.
    fn check_releases(
        &mut self,
        file: &ExportFile,
        parsed: &Parsed,
        anchors: &Anchors,
        master: SigningPublicKey,
        epochs: &BTreeMap<u32, VerifiedEpoch>,
    ) -> BTreeSet<u32> {
        let head_ok = self.check_tree_head(&parsed.head, anchors);
        if parsed.releases.is_empty() {
            self.fail(
                Reason::NoRelease,
                "no release entries: nothing shows this transcript was released",
            );
        }
        // (epoch, request) -> the distinct trustees that validly released that epoch for that
        // request; per request, every trustee seen. The threshold is met by one request's
        // trustees, not by adding up trustees who each approved a different request.
        let mut valid: BTreeMap<(u32, [u8; 32]), BTreeSet<SigningPublicKey>> = BTreeMap::new();
        let mut by_request: BTreeMap<[u8; 32], BTreeSet<SigningPublicKey>> = BTreeMap::new();
        let mut redacted_required = false;
        let mut claimed: BTreeSet<u32> = BTreeSet::new();
        // The requests justified by a dispute (their releases do not bind the records).
        let mut disputes: BTreeSet<[u8; 32]> = BTreeSet::new();
        let mut by_consent = false;
        for ((entry, request, proof), fr) in parsed.releases.iter().zip(&file.releases) {
            let at = format!(
                "release entry #{} ({})",
                fr.index,
                describe_notice(entry, true, crate::notice::Audience::Other)
            );
            let mut ok = true;
            let AuditEvent::Release {
                org,
                request_hash,
                conversation,
                epochs: entry_epochs,
                basis,
                master: entry_master,
            } = &entry.event
            else {
                self.fail(
                    Reason::NotAReleaseEvent,
                    format!("{at} is not a release event"),
                );
                continue;
            };
            claimed.extend(entry_epochs.iter());
            if entry.verify().is_err() {
                self.fail(Reason::BadReleaseSignature, format!("{at}: bad signature"));
                ok = false;
            }
            let policy = self.policies.get(&request.policy_version).cloned();
            let Some(policy) = policy else {
                self.fail(
                    Reason::MissingPolicy,
                    format!(
                        "{at}: its request names policy version {}, which the file does not carry",
                        request.policy_version
                    ),
                );
                continue;
            };
            if policy.trustee_index(&entry.signer).is_none() {
                self.fail(
                    Reason::SignerNotTrustee,
                    format!(
                        "{at} is signed by {}, not a trustee of policy version {}",
                        crate::client::short_key(&entry.signer),
                        policy.version
                    ),
                );
                ok = false;
            }
            let mut mismatch = Vec::new();
            if *org != file.org || request.org != file.org {
                mismatch.push("org");
            }
            if *conversation != parsed.conversation || request.conversation != parsed.conversation {
                mismatch.push("conversation");
            }
            if *request_hash != request.hash() {
                mismatch.push("request hash");
            }
            if *entry_master != master
                || request.master != master
                || request
                    .master
                    .verify(&request.signed_bytes(), &request.signature, "request")
                    .is_err()
            {
                mismatch.push("master's request signature");
            }
            if *entry_epochs != request.epochs || request.epochs.check().is_err() {
                mismatch.push("epochs");
            }
            for e in request.epochs.iter() {
                match epochs.get(&e) {
                    Some(rec) if rec.policy_version == policy.version => {}
                    Some(_) => mismatch.push("epoch under another policy"),
                    None => mismatch.push("epoch not in the file"),
                }
            }
            match (&request.justification, basis) {
                (
                    Justification::Consent(c),
                    ReleaseBasis::Consent {
                        id,
                        scope,
                        issued_at,
                    },
                ) => {
                    if c.id != *id || c.scope != *scope || c.issued_at != *issued_at {
                        mismatch.push("consent id, scope or date");
                    }
                    if c.conversation != parsed.conversation
                        || c.org != file.org
                        || !c.epochs.covers(&request.epochs)
                        || c.grantee != master
                        || !policy.allow_consent
                    {
                        mismatch.push("consent terms");
                    }
                    if c.customer
                        .verify(&c.signed_bytes(), &c.signature, "consent")
                        .is_err()
                    {
                        mismatch.push("consent signature");
                    }
                    // The consenting key is the customer of each released epoch, as the
                    // customer-created chain records it.
                    if request.epochs.iter().any(|e| {
                        epochs
                            .get(&e)
                            .and_then(|r| r.customer().map(|m| m.signing_key))
                            != Some(c.customer)
                    }) {
                        mismatch.push("consent not signed by the epochs' customer");
                    }
                    if c.scope == Scope::Redacted {
                        redacted_required = true;
                    }
                    self.check_window(&at, entry.at, c.issued_at, c.expires_at, &policy);
                    by_consent = true;
                }
                (
                    Justification::Dispute { ticket, decisions },
                    ReleaseBasis::Dispute { id, approvers },
                ) => {
                    let ok_approvers = release::approvers(&policy, ticket, decisions);
                    if ticket.id != *id
                        || ticket.verify(&policy).is_err()
                        || ticket.conversation != parsed.conversation
                        || !ticket.epochs.covers(&request.epochs)
                        || !policy.allow_dispute
                    {
                        mismatch.push("dispute ticket");
                    }
                    if ok_approvers.len() < usize::from(policy.arbiter_threshold)
                        || approvers.iter().any(|a| !ok_approvers.contains(a))
                    {
                        mismatch.push("arbiter approvals");
                    }
                    self.check_window(&at, entry.at, ticket.opened_at, ticket.expires_at, &policy);
                    disputes.insert(*request_hash);
                }
                _ => mismatch.push("justification kind"),
            }
            if !mismatch.is_empty() {
                self.fail(
                    Reason::JustificationMismatch,
                    format!("{at}: {} do not match", mismatch.join(", ")),
                );
                ok = false;
            }
            let included =
                head_ok && proof.index == fr.index && proof.verify(entry, &parsed.head).is_ok();
            if !included {
                self.fail(
                    Reason::NotIncluded,
                    format!(
                        "{at} is not proven included in the tree head{}",
                        if head_ok {
                            ""
                        } else {
                            " (which is not trusted)"
                        }
                    ),
                );
                ok = false;
            }
            let seen = by_request.entry(*request_hash).or_default();
            if !seen.insert(entry.signer) {
                self.fail(
                    Reason::DuplicateTrustee,
                    format!("{at}: this trustee already released the same request"),
                );
                ok = false;
            }
            if ok {
                for e in request.epochs.iter() {
                    valid
                        .entry((e, *request_hash))
                        .or_default()
                        .insert(entry.signer);
                }
                self.pass(format!(
                    "{at}: signed by a trustee, justified, included in the log"
                ));
            }
        }
        let mut released = BTreeSet::new();
        let mut dispute_only = Vec::new();
        for e in &claimed {
            let most = valid
                .range((*e, [0; 32])..=(*e, [0xff; 32]))
                .map(|(_, t)| t.len())
                .max()
                .unwrap_or(0);
            let most_by_consent = valid
                .range((*e, [0; 32])..=(*e, [0xff; 32]))
                .filter(|((_, r), _)| !disputes.contains(r))
                .map(|(_, t)| t.len())
                .max()
                .unwrap_or(0);
            let need = epochs
                .get(e)
                .and_then(|r| self.policies.get(&r.policy_version))
                .map_or(usize::MAX, |p| usize::from(p.trustee_threshold));
            if most >= need {
                released.insert(*e);
                if most_by_consent < need {
                    dispute_only.push(*e);
                }
            } else {
                self.fail(
                    Reason::ThresholdNotMet,
                    format!(
                        "epoch {e} was released by at most {most} distinct trustee(s) for one \
                         request; the policy needs {}",
                        if need == usize::MAX {
                            "a known policy".to_owned()
                        } else {
                            need.to_string()
                        }
                    ),
                );
            }
        }
        // A dispute release binds the org, the conversation and epoch numbers only: neither the
        // release event, nor the request, nor the ticket or the approvals commit to the epoch
        // records, and the master writes all of them. A master holding a genuine dispute release
        // could write new records (a made-up customer, its own K, agents it certifies itself),
        // invent messages and sign the end marker. Until release entries carry the released
        // records' hashes (which the trustees hold), such an export proves nothing about its
        // contents. An epoch that a consent release covers as well is bound to the consenting
        // customer as any consent export is (see the weaker line below).
        if !dispute_only.is_empty() {
            self.fail(
                Reason::DisputeNotBoundToRecords,
                format!(
                    "epoch(s) {dispute_only:?} are released only by a dispute, and a dispute \
                     release does not bind the epoch records: the master could have written the \
                     records, keys and messages of this file itself (release entries do not carry \
                     record hashes yet)"
                ),
            );
        }
        if by_consent && epochs.keys().any(|e| *e >= 1) {
            self.weaker.push(CONSENT_LATER_EPOCHS_WEAKER.into());
        }
        if redacted_required && !file.redacted {
            self.fail(
                Reason::RedactionRequired,
                "the customer consented to a redacted transcript only, and this export is not \
                 redacted",
            );
        }
        released
    }

    /// A release entry's time against its consent's or ticket's validity window, and the window
    /// against the policy's longest validity (the checks a trustee made when it released, on
    /// the trustee's own clock: the entry's `at`).
    fn check_window(
        &mut self,
        at: &str,
        released_at: u64,
        issued: u64,
        expires: u64,
        policy: &VerifiedPolicy,
    ) {
        if expires <= issued || expires - issued > policy.max_release_validity_secs {
            self.fail(
                Reason::ReleaseOutsideWindow,
                format!(
                    "{at}: its justification is valid from {issued} to {expires}, which policy \
                     version {} does not allow (at most {} s)",
                    policy.version, policy.max_release_validity_secs
                ),
            );
        } else if released_at < issued || released_at >= expires {
            self.fail(
                Reason::ReleaseOutsideWindow,
                format!(
                    "{at} was signed at {released_at}, outside its justification's validity \
                     ({issued} to {expires})"
                ),
            );
        }
    }

    /// The tree head the inclusion proofs are for: signed by a log key the reader anchored.
    ///
    /// Only the relay's own signature is checked: tree heads carry no witness cosignatures yet,
    /// so the verdict names that as a weaker line. When they do, this is the one place to check
    /// them.
    fn check_tree_head(&mut self, head: &SignedTreeHead, anchors: &Anchors) -> bool {
        if anchors.log_keys.is_empty() {
            return head.verify(&head.log_key).is_ok();
        }
        let ok = anchors
            .log_keys
            .iter()
            .any(|k| head.log_key == *k && head.verify(k).is_ok());
        if ok {
            self.pass(format!(
                "audit tree head (size {}) signed by the anchored log key",
                head.size
            ));
            self.weaker.push(NO_COSIGNATURES_WEAKER.into());
        } else {
            self.fail(
                Reason::UntrustedTreeHead,
                format!(
                    "the audit tree head is signed by {}, not by the anchored log key",
                    head.log_key
                ),
            );
        }
        ok
    }

    /// Keys: each released epoch of a non-redacted export has its key, matching the record's
    /// commitment; no key for an epoch not released.
    fn check_keys(&mut self, parsed: &Parsed, released: &BTreeSet<u32>, redacted: bool) {
        for (_, rec, key) in &parsed.epochs {
            let n = rec.epoch;
            match key {
                Some(_) if !released.contains(&n) => self.fail(
                    Reason::EpochNotReleased,
                    format!(
                        "the file shows epoch {n}'s key, but no valid release covers epoch {n}"
                    ),
                ),
                Some(k) => {
                    if !k.matches(&parsed.conversation, n, &rec.commitment) {
                        self.fail(
                            Reason::BadKey,
                            format!("epoch {n}'s key does not match the record's commitment"),
                        );
                        continue;
                    }
                    // With K in hand, the escrow section must recompute byte for byte (the
                    // check a member makes when it opens the epoch).
                    let escrow_ok =
                        match (self.policies.get(&rec.policy_version), rec.customer_key()) {
                            (Some(policy), Ok(customer)) => rec
                                .escrow
                                .check(k, &parsed.conversation, n, &customer, policy)
                                .is_ok(),
                            _ => false,
                        };
                    if !escrow_ok {
                        self.fail(
                            Reason::BadKey,
                            format!("epoch {n}'s escrow section does not recompute from its key"),
                        );
                    }
                }
                None if released.contains(&n) && !redacted => self.fail(
                    Reason::BadKey,
                    format!(
                        "epoch {n} is released, but this non-redacted export does not show its key"
                    ),
                ),
                None => {}
            }
        }
    }

    /// Messages: each in a released epoch, from a member, signed, named as on the card, its
    /// text what it decrypts to (unless redacted), each sender's counters without holes.
    fn check_messages(
        &mut self,
        file: &ExportFile,
        parsed: &Parsed,
        epochs: &BTreeMap<u32, VerifiedEpoch>,
        released: &BTreeSet<u32>,
    ) {
        let keys: BTreeMap<u32, &EpochSecret> = parsed
            .epochs
            .iter()
            .filter_map(|(_, r, k)| k.as_ref().map(|k| (r.epoch, k)))
            .collect();
        let mut counters: BTreeMap<(u32, SigningPublicKey), Vec<u64>> = BTreeMap::new();
        let mut windows: BTreeMap<u32, ReplayWindows> = BTreeMap::new();
        let before = self.failures.len();
        for (m, env) in file.messages.iter().zip(&parsed.messages) {
            let at = format!("message #{} (shown as from {})", m.seq, m.sender);
            let h = &env.header;
            if h.conversation != parsed.conversation {
                self.fail(
                    Reason::WrongConversation,
                    format!("{at} is from conversation {}", h.conversation),
                );
                continue;
            }
            if h.sent_at != m.sent_at {
                self.fail(
                    Reason::ShownFieldMismatch,
                    format!(
                        "{at} is shown as sent at {}, but its signed header says {}",
                        m.sent_at, h.sent_at
                    ),
                );
            }
            if h.epoch != m.epoch {
                self.fail(
                    Reason::ShownFieldMismatch,
                    format!(
                        "{at} claims epoch {} but its envelope is of epoch {}",
                        m.epoch, h.epoch
                    ),
                );
            }
            let Some(rec) = epochs.get(&h.epoch) else {
                self.fail(
                    Reason::EpochNotReleased,
                    format!("{at} is of epoch {}, which has no verified record", h.epoch),
                );
                continue;
            };
            if !released.contains(&h.epoch) {
                self.fail(
                    Reason::EpochNotReleased,
                    format!(
                        "{at} is of epoch {}, which no valid release covers",
                        h.epoch
                    ),
                );
            }
            let Some(member) = rec.member(&h.sender) else {
                self.fail(
                    Reason::SenderNotMember,
                    format!("{at}: its signer is not a member of epoch {}", h.epoch),
                );
                continue;
            };
            if h.sender
                .verify(&env.signed_bytes(), &env.signature, "message")
                .is_err()
            {
                self.fail(Reason::BadMessageSignature, format!("{at}: bad signature"));
                continue;
            }
            if member.name != m.sender {
                self.fail(
                    Reason::SenderNameMismatch,
                    format!("{at} was signed by {}", member.name),
                );
            }
            counters
                .entry((h.epoch, h.sender))
                .or_default()
                .push(h.counter);
            if !file.redacted {
                match keys.get(&h.epoch) {
                    None => self.fail(
                        Reason::BadKey,
                        format!(
                            "{at}: epoch {}'s key is not in this non-redacted export",
                            h.epoch
                        ),
                    ),
                    Some(k) => {
                        let w = windows.entry(h.epoch).or_default();
                        match EpochKeys::new(k, rec).open_message(env, w) {
                            Ok(o) if message_text(o.header.kind, &o.body) == m.text => {}
                            Ok(_) => self.fail(
                                Reason::TextMismatch,
                                format!("{at}: the text shown is not what the sender wrote"),
                            ),
                            Err(e) => self.fail(
                                Reason::TextMismatch,
                                format!("{at} does not decrypt with the released key: {e}"),
                            ),
                        }
                    }
                }
            }
        }
        for ((epoch, sender), mut seen) in counters {
            seen.sort_unstable();
            let name = epochs
                .get(&epoch)
                .and_then(|r| r.member(&sender))
                .map(|c| c.name.clone())
                .unwrap_or_default();
            let expected: Vec<u64> = (0..seen.len() as u64).collect();
            if seen != expected {
                let set: BTreeSet<u64> = seen.iter().copied().collect();
                let top = seen.last().copied().unwrap_or(0);
                let missing: Vec<u64> = (0..=top).filter(|c| !set.contains(c)).collect();
                self.fail(
                    Reason::CounterGap,
                    format!(
                        "{name}'s messages in epoch {epoch}: counters {missing:?} are missing{}",
                        if set.len() < seen.len() {
                            " and some repeat"
                        } else {
                            ""
                        }
                    ),
                );
            }
        }
        if self.failures.len() == before {
            self.pass(format!(
                "{} message(s): each from a member of its epoch, signed by its sender, every \
                 sender's counters without holes{}",
                file.messages.len(),
                if file.redacted {
                    " (texts redacted: see the weaker line)"
                } else {
                    ", each decrypting to the text shown"
                }
            ));
        }
    }

    /// Sequence numbers: messages in order, and the file's items (epoch records, messages,
    /// items left out) cover 1..=last_seq exactly once; no message of a released epoch left out.
    fn check_sequence(&mut self, file: &ExportFile, parsed: &Parsed, released: &BTreeSet<u32>) {
        let before = self.failures.len();
        for w in file.messages.windows(2) {
            if w[1].seq <= w[0].seq {
                self.fail(
                    Reason::SequenceGap,
                    format!("message #{} comes after #{}", w[1].seq, w[0].seq),
                );
            }
        }
        let mut all: BTreeMap<u64, usize> = BTreeMap::new();
        for s in parsed
            .epochs
            .iter()
            .map(|(s, _, _)| *s)
            .chain(file.messages.iter().map(|m| m.seq))
            .chain(parsed.omitted.iter().map(|o| o.seq))
        {
            *all.entry(s).or_default() += 1;
        }
        let repeated: Vec<u64> = all
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(s, _)| *s)
            .collect();
        if !repeated.is_empty() {
            self.fail(
                Reason::SequenceGap,
                format!("sequence numbers {repeated:?} appear more than once"),
            );
        }
        let missing: Vec<u64> = (1..=file.last_seq)
            .filter(|s| !all.contains_key(s))
            .collect();
        if !missing.is_empty() {
            self.fail(
                Reason::SequenceGap,
                format!(
                    "{} item(s) of the conversation up to #{} are neither shown nor listed as left \
                     out: {}",
                    missing.len(),
                    file.last_seq,
                    preview(&missing)
                ),
            );
        }
        if let Some((&top, _)) = all.iter().next_back()
            && top > file.last_seq
        {
            self.fail(
                Reason::SequenceGap,
                format!(
                    "item #{top} is after the last sequence number #{}",
                    file.last_seq
                ),
            );
        }
        for o in &parsed.omitted {
            if o.kind == OmittedKind::Message && o.epoch.is_none() {
                self.fail(
                    Reason::WithheldMessage,
                    format!(
                        "item #{} is a message left out without its epoch: it could be a message \
                         of a released epoch",
                        o.seq
                    ),
                );
            }
            if o.kind == OmittedKind::Message && o.epoch.is_some_and(|e| released.contains(&e)) {
                self.fail(
                    Reason::WithheldMessage,
                    format!(
                        "item #{} is a message of released epoch {} and is left out",
                        o.seq,
                        o.epoch.unwrap_or_default()
                    ),
                );
            }
        }
        if self.failures.len() == before {
            self.pass(format!(
                "sequence numbers 1 to {} all accounted for: nothing dropped from the middle or \
                 the end, no message of a released epoch left out",
                file.last_seq
            ));
        }
    }
}

fn preview(seqs: &[u64]) -> String {
    let shown: Vec<String> = seqs.iter().take(10).map(|s| format!("#{s}")).collect();
    if seqs.len() > 10 {
        format!("{} …", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reason_codes_are_distinct_and_are_what_json_shows() {
        let codes: BTreeSet<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), Reason::ALL.len());
        for r in Reason::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), r.code());
        }
    }

    #[test]
    fn an_old_or_unknown_format_is_refused_before_anything_else() {
        let file = ExportFile {
            format: FORMAT_V1.into(),
            conversation: String::new(),
            org: "acme".into(),
            redacted: false,
            policies: Vec::new(),
            epochs: Vec::new(),
            certificates: Vec::new(),
            messages: Vec::new(),
            omitted: Vec::new(),
            last_seq: 0,
            releases: Vec::new(),
            log_key: String::new(),
            tree_head: String::new(),
            end: EndMarker {
                signed_at: 0,
                signature: String::new(),
            },
        };
        let v = verify_export(&file, &Anchors::default());
        assert!(!v.ok);
        assert!(v.failed(Reason::UnsupportedFormat));
        assert!(v.failures[0].detail.contains("export it again"));
        let v = verify_export(
            &ExportFile {
                format: "sealdesk-transcript/9".into(),
                ..file
            },
            &Anchors::default(),
        );
        assert!(v.failed(Reason::UnsupportedFormat));
    }
}
