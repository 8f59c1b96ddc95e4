//! The offline verifier: [`verify_export`] checks an [`ExportFile`] against the reader's
//! [`Anchors`] only, and says per [`Reason`] what failed. Pure: no I/O, no clock, no state.
//!
//! - [`parse`](self) — decoding the file's hex CBOR into records, before any check.
//! - `records` — policies, the end marker, epochs and hand-offs.
//! - `releases` — release entries, their requests and windows, and the tree head.
//! - `content` — released keys, messages and the sequence.

mod content;
pub(crate) mod parse;
mod records;
mod releases;

use std::collections::{BTreeMap, BTreeSet};

use sealdesk_protocol::{keys::SigningPublicKey, policy::VerifiedPolicy};
use serde::Serialize;

use crate::transcript::format::*;
pub(crate) use parse::Parsed;

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
    /// A file shown with a message is not the one its signed reference describes (or one is
    /// shown with a message that carries none).
    AttachmentMismatch,
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
    /// An epoch is released by a dispute only, under a ticket that does not name its epoch
    /// records (a ticket opened before tickets bound them): the release event, request, ticket
    /// and approvals name only the org, the conversation and epoch numbers, so a master holding
    /// such a release could write the epochs and messages itself. (An epoch a consent release
    /// in the file also covers is bound through the consent.)
    DisputeNotBoundToRecords,
    /// A release entry was signed outside its consent's or ticket's validity window, or the
    /// window is longer than the policy allows.
    ReleaseOutsideWindow,
    /// A field the file shows beside a signed object (a message's epoch or clock, an epoch's
    /// number) is not what the signed object says.
    ShownFieldMismatch,
    /// A dispute ticket names epoch records (by hash) other than the ones the file shows for
    /// the epochs it releases: the trustees released, and the arbiters approved, other records.
    DisputeRecordsMismatch,
    /// A redacted export shows a message's text without the message's own key (nor marks it
    /// withheld): the text is not proven. Redacted exports made before they carried message
    /// keys are refused so.
    MessageKeyMissing,
    /// A message key shown is not the one the message's signed header commits to (another
    /// message's key, or a made-up one).
    BadMessageKey,
    /// A redacted export shows an epoch key, which opens every message of the epoch, withheld
    /// ones included.
    KeyInRedactedExport,
    /// A message marked withheld shows a text, a key or a file; or a non-redacted export marks
    /// a message withheld.
    BadWithheld,
}

impl Reason {
    /// Every reason, for listing and tests.
    pub const ALL: [Reason; 42] = [
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
        Reason::DisputeRecordsMismatch,
        Reason::AttachmentMismatch,
        Reason::MessageKeyMissing,
        Reason::BadMessageKey,
        Reason::KeyInRedactedExport,
        Reason::BadWithheld,
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
            Reason::AttachmentMismatch => "attachment_mismatch",
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
            Reason::DisputeRecordsMismatch => "dispute_records_mismatch",
            Reason::MessageKeyMissing => "message_key_missing",
            Reason::BadMessageKey => "bad_message_key",
            Reason::KeyInRedactedExport => "key_in_redacted_export",
            Reason::BadWithheld => "bad_withheld",
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
    /// The sequence numbers of the messages a redacted export withholds (proven sent, content
    /// not shown).
    pub withheld: Vec<u64>,
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

/// The weaker line of a redacted export that withholds messages ([`Verification::withheld`]).
pub const REDACTED_WEAKER: &str = "redaction is by whole message: a withheld message's sender, \
     time, epoch and place in its sender's counters and in the sequence are proven by its \
     signed envelope, its content is not shown; that it held personal data is the master's word";

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
    if !v.withheld.is_empty() {
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
        withheld: Vec::new(),
        master_fingerprint: String::new(),
    }))
}

#[derive(Default)]
struct Verifier {
    failures: Vec<Failure>,
    passed: Vec<String>,
    weaker: Vec<String>,
    withheld: Vec<u64>,
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
            withheld: self.withheld,
            master_fingerprint,
        }
    }
}

fn preview(seqs: &[u64]) -> String {
    let shown: Vec<String> = seqs.iter().take(10).map(u64::to_string).collect();
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
