//! The portable transcript export and its offline verifier.
//!
//! - [`format`](mod@format) — the file: [`ExportFile`] and its parts, as JSON.
//! - [`verify`] — [`verify_export`], a pure function of the file and the reader's anchors.
//! - this module — the master's export ([`Client::export_transcript`]) and its end marker.
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
    audit::AuditEvent,
    card::Role,
    epoch::VerifiedEpoch,
    export::OmittedKind,
    ids::ConversationId,
    message::{ContentKind, EpochKeys, ReplayWindows},
    policy::VerifiedPolicy,
    release::ReleaseRequest,
    secret::EpochSecret,
    wire::{ErrorCode, Item, Request, Response, to_cbor},
};

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::notice::describe_notice;
use crate::redact::contains_personal_data;
use crate::reply::unexpected;

pub(crate) mod erased;
pub mod format;
pub mod verify;

pub use format::{
    EndMarker, ExportAttachment, ExportEpoch, ExportFile, ExportMessage, ExportOmitted,
    ExportRelease, FORMAT, FORMAT_V1, READ_UP_TO,
};
pub use verify::{
    Anchors, CONSENT_LATER_EPOCHS_WEAKER, Failure, NO_COSIGNATURES_WEAKER, REDACTED_WEAKER, Reason,
    Verification, parse_export, verify_export,
};

use format::{kind_name, message_text};
use verify::Parsed;

// --- export -------------------------------------------------------------------------------

impl Client {
    /// Master: remembers a release request, so that an export can show what each release
    /// entry answered. Called by `unlock` once the request is submitted.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn remember_release_request(&self, request: &ReleaseRequest) -> Result<()> {
        self.account.store().put_release_request(request)
    }

    /// Master: the transcript as a portable, verifiable file, signed with an end marker. With
    /// `redact_text` (or a redacted consent) no epoch key is shown: each message is shown with
    /// its own message key, or withheld whole if its text holds personal data (or it is a file).
    ///
    /// # Errors
    /// [`ClientError::NotReleased`], [`ClientError::ReleaseRequestNotKept`] for a release whose request
    /// this account did not keep, [`ClientError::ConversationErased`] for a conversation the
    /// relay erased (an erasure entry that holds; [`ClientError::ErasureNotGenuine`] for one
    /// that does not), relay errors.
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
            if let Some(k) = self.account.store().master_key(id, r.epoch)? {
                keys.insert(r.epoch, k);
            }
        }
        let mut epochs = Vec::new();
        let mut verified: BTreeMap<u32, VerifiedEpoch> = BTreeMap::new();
        let mut policies: BTreeMap<u32, VerifiedPolicy> = BTreeMap::new();
        let mut opened: BTreeMap<u32, (EpochKeys, ReplayWindows)> = BTreeMap::new();
        let mut messages = Vec::new();
        let mut omitted = Vec::new();
        let mut last_seq = 0;
        let items = match self.history_items(id).await {
            Ok(items) => items,
            // The relay no longer has it: erased, if the audit log says so in an entry that
            // holds (`erased`).
            Err(
                e @ ClientError::Relay {
                    code: ErrorCode::NotFound,
                    ..
                },
            ) => {
                return Err(self
                    .why_gone(id, Some(&t), &head, erased::Gone::Export, e)
                    .await?);
            }
            Err(e) => return Err(e),
        };
        for s in items {
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
                        Some((k, windows)) => k.open_message(&env, windows).ok().map(|m| {
                            let key = k.message_key(&env.header.sender, env.header.counter);
                            (m, key)
                        }),
                        None => None,
                    };
                    match shown {
                        Some((m, message_key)) => {
                            let sender = verified
                                .get(&env.header.epoch)
                                .and_then(|r| r.member(&env.header.sender))
                                .map(|c| c.name.clone())
                                .unwrap_or_default();
                            let text = message_text(m.header.kind, &m.body);
                            // A redacted export shows a message whole, opened by its own key,
                            // or withholds it whole: personal data, or a file (its reference
                            // carries the file's key, name and caption). Files are left out.
                            let (text, key, withheld, attachment) = if !redacted {
                                let attachment = self.export_attachment(id, &m).await?;
                                (text, None, false, attachment)
                            } else if m.header.kind == ContentKind::Attachment
                                || contains_personal_data(&text)
                            {
                                (String::new(), None, true, None)
                            } else {
                                let key = hex::encode(message_key.to_bytes().as_slice());
                                (text, Some(key), false, None)
                            };
                            messages.push(ExportMessage {
                                seq: s.seq,
                                epoch: env.header.epoch,
                                sender,
                                sent_at: env.header.sent_at,
                                text,
                                envelope: hex::encode(to_cbor(&env)?),
                                attachment,
                                key,
                                withheld,
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
                .store()
                .release_request(request_hash)?
                .ok_or(ClientError::ReleaseRequestNotKept { index: *index })?;
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
/// [`ClientError::ExportMalformed`] if the file is not well formed enough to state.
pub fn sign_export(
    file: &mut ExportFile,
    master: &sealdesk_protocol::keys::IdentityKeys,
) -> Result<()> {
    let parsed =
        Parsed::parse(file).map_err(|f| ClientError::ExportMalformed { detail: f.detail })?;
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
