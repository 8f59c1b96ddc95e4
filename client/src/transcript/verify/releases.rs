//! Checks of the release entries, their requests, justification windows, and the tree head.

use std::collections::{BTreeMap, BTreeSet};

use sealdesk_protocol::signed::Signed as _;
use sealdesk_protocol::{
    audit::{AuditEvent, ReleaseBasis, SignedTreeHead},
    epoch::VerifiedEpoch,
    keys::SigningPublicKey,
    policy::VerifiedPolicy,
    release::{self, Justification, Scope},
};

use super::{
    Anchors, CONSENT_LATER_EPOCHS_WEAKER, NO_COSIGNATURES_WEAKER, Parsed, Reason, Verifier,
};
use crate::notice::describe_notice;
use crate::transcript::format::*;

impl Verifier {
    /// Release entries: each a release event for this conversation, signed by a distinct
    /// trustee of the policy in force, answering a request the master signed under a matching
    /// justification, included in a tree head signed by the anchored log key. Returns the
    /// epochs at least `t_e` distinct trustees released.
    pub(super) fn check_releases(
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
                        crate::notice::short_key(&entry.signer),
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
            if *entry_master != master || request.check_signed_by(&master).is_err() {
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
                    if c.check_signature().is_err() {
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
                    if ticket.binds_records() {
                        // The ticket names the records it releases (signed by the master,
                        // approved by the arbiters, and the trustees released only from
                        // records with these hashes): the file's must be those.
                        let other: Vec<u32> = request
                            .epochs
                            .iter()
                            .filter(|e| epochs.get(e).map(|r| r.hash()) != ticket.record_hash(*e))
                            .collect();
                        if !other.is_empty() {
                            self.fail(
                                Reason::DisputeRecordsMismatch,
                                format!(
                                    "{at}: its dispute ticket names other records for epoch(s) \
                                     {other:?} than the file shows"
                                ),
                            );
                            ok = false;
                        }
                    } else {
                        disputes.insert(*request_hash);
                    }
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
        // A release under a ticket that names no records binds the org, the conversation and
        // epoch numbers only: the master writes the ticket, the request and the file. A master
        // holding such a release could write new records (a made-up customer, its own K,
        // agents it certifies itself), invent messages and sign the end marker, so the export
        // proves nothing about its contents. Tickets now name each released record's hash,
        // which the trustees check against the records they release from (checked above);
        // only older tickets end here. An epoch that a consent release covers as well is bound
        // to the consenting customer as any consent export is (see the weaker line below).
        if !dispute_only.is_empty() {
            self.fail(
                Reason::DisputeNotBoundToRecords,
                format!(
                    "epoch(s) {dispute_only:?} are released only by a dispute whose ticket does \
                     not name the epoch records (a ticket opened before tickets bound them): the \
                     master could have written the records, keys and messages of this file itself"
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
    pub(super) fn check_window(
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
    pub(super) fn check_tree_head(&mut self, head: &SignedTreeHead, anchors: &Anchors) -> bool {
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
}
