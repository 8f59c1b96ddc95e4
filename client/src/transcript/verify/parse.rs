//! Decoding an export file's hex CBOR into records, before any check.

use sealdesk_protocol::{
    audit::{AuditEntry, InclusionProof, SignedTreeHead},
    disclosure::MessageKey,
    epoch::{EpochRecord, HandOff},
    export::{ExportStatement, OmittedItem, OmittedKind, ReleaseRef, ShownMessage, handoff_hash},
    ids::ConversationId,
    keys::{Signature, SigningPublicKey},
    message::Envelope,
    policy::{AgentCertificate, OrgPolicy},
    release::ReleaseRequest,
    secret::EpochSecret,
    wire::from_cbor,
};
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::{Failure, Reason};
use crate::transcript::format::*;

/// The file's fields, decoded.
pub(crate) struct Parsed {
    pub(super) conversation: ConversationId,
    pub(super) policies: Vec<OrgPolicy>,
    pub(super) epochs: Vec<(u64, EpochRecord, Option<EpochSecret>)>,
    pub(super) certificates: Vec<AgentCertificate>,
    pub(super) messages: Vec<Envelope>,
    /// Each message's disclosed key (redacted exports), in file order.
    pub(super) message_keys: Vec<Option<MessageKey>>,
    pub(super) omitted: Vec<OmittedItem>,
    /// Hand-off records by seq (`None` where the file lists a hand-off without its record).
    pub(super) handoffs: Vec<(u64, Option<HandOff>)>,
    pub(super) releases: Vec<(AuditEntry, ReleaseRequest, InclusionProof)>,
    pub(super) head: SignedTreeHead,
    pub(super) signature: Option<Signature>,
}

pub(super) fn undecodable(what: impl Into<String>) -> Failure {
    Failure {
        reason: Reason::Undecodable,
        detail: format!("{} is not decodable", what.into()),
    }
}

pub(super) fn hex_cbor<T: DeserializeOwned>(
    s: &str,
    what: &str,
) -> std::result::Result<T, Failure> {
    let bytes = hex::decode(s).map_err(|_| undecodable(what))?;
    from_cbor(&bytes, "export field").map_err(|_| undecodable(what))
}

impl Parsed {
    pub(crate) fn parse(file: &ExportFile) -> std::result::Result<Self, Failure> {
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
            .map(|m| {
                hex_cbor(
                    &m.envelope,
                    &format!("the envelope of the message at seq {}", m.seq),
                )
            })
            .collect::<std::result::Result<_, _>>()?;
        let mut message_keys = Vec::new();
        for m in &file.messages {
            message_keys.push(match &m.key {
                None => None,
                Some(k) => Some(
                    hex::decode(k)
                        .ok()
                        .and_then(|b| MessageKey::from_bytes(&b).ok())
                        .ok_or_else(|| {
                            undecodable(format!("the key of the message at seq {}", m.seq))
                        })?,
                ),
            });
        }
        let mut omitted = Vec::new();
        let mut handoffs = Vec::new();
        for o in &file.omitted {
            let kind = kind_from_name(&o.kind)
                .ok_or_else(|| undecodable(format!("item kind {:?}", o.kind)))?;
            let record: Option<HandOff> = match &o.record {
                None => None,
                Some(r) => Some(hex_cbor(r, &format!("the hand-off at seq {}", o.seq))?),
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
            message_keys,
            omitted,
            handoffs,
            releases,
            head,
            signature,
        })
    }

    /// What the master's end marker states about `file`.
    pub(crate) fn statement<'a>(
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
