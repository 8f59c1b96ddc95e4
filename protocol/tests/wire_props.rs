//! Property tests of the wire format (`wire::encode` / `wire::decode`).
//!
//! Frames are built from proptest-chosen seeds, strings and numbers: keys come from a generator
//! seeded by the case, heavyweight objects (epoch records, envelopes, justifications) from one
//! shared fixture whose fields are then overwritten with the case's values. Every variant of
//! `Frame`, `Request`, `Response` and `Push` is generated; [`every_variant_is_generated`] keeps
//! that true when variants are added.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::{collections::BTreeSet, sync::OnceLock};

use proptest::prelude::*;
use sealdesk_protocol::{
    Error,
    audit::{
        AuditEntry, AuditEvent, ConsistencyProof, Cosignature, InclusionProof, ReleaseBasis,
        SignedTreeHead, WithheldEntry, WitnessedHead, to_wire_path,
    },
    block::{Block, BlockReason, Unblock},
    card::{IdentityCard, Role},
    epoch::{EpochRecord, HandOff},
    ids::{ConversationId, EpochRange, TokenId},
    keys::IdentityKeys,
    message::{ContentKind, Envelope, EpochKeys},
    open_token::{OpenToken, WebKeyCertificate},
    policy::AgentCertificate,
    release::{
        ArbiterDecision, ClosedBecause, ConsentParams, ConsentToken, DisputeClose, DisputeParams,
        DisputeTicket, ErasureRequest, Justification, ReleaseRequest, ReleasedShare, Scope,
        TrusteeView, Verdict, decide,
    },
    wire::{
        self, AuthResponse, BlockEntry, Challenge, ConversationInfo, ErrorCode, Frame, Item,
        MAX_FRAME, OrgConversation, PendingRelease, Push, ReleaseProgress, Request, Response,
        Sequenced, SkippedRange, TicketClosed, TicketState, WIRE_VERSION, Welcome,
    },
};
use support::{Org, T0, rng};

/// Objects that are expensive to make, made once.
struct Fixture {
    org: Org,
    epoch: EpochRecord,
    handoff: HandOff,
    envelope: Envelope,
    certificate: AgentCertificate,
    consent: ConsentToken,
    ticket: DisputeTicket,
    decision: ArbiterDecision,
    request: ReleaseRequest,
    share: ReleasedShare,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let org = Org::new(0xF1);
        let mut rng = rng(0xF2);
        let (epoch, k) = org.first_epoch(&mut rng);
        let keys = EpochKeys::new(&k, &epoch);
        let envelope = keys
            .seal_message(&org.customer.keys, 0, ContentKind::Text, T0, b"hello")
            .unwrap();
        let handoff = HandOff::create(
            &mut rng,
            &org.agent.keys,
            &org.agent2.card,
            epoch.conversation,
            &[(0, &k)],
            T0,
        )
        .unwrap();
        let certificate =
            AgentCertificate::issue(&org.master.keys, &org.policy, &org.agent.card, T0, 1_000)
                .unwrap();
        let consent = ConsentToken::issue(
            &mut rng,
            &org.customer.keys,
            &org.policy,
            ConsentParams {
                conversation: epoch.conversation,
                epochs: EpochRange::single(0),
                scope: Scope::Redacted,
                purpose: "check".into(),
                valid_secs: 3_600,
            },
            T0,
        )
        .unwrap();
        let ticket = DisputeTicket::issue(
            &mut rng,
            &org.master.keys,
            &org.policy,
            DisputeParams {
                conversation: epoch.conversation,
                epochs: EpochRange::single(0),
                reason: "why".into(),
                valid_secs: 3_600,
            },
            T0,
        )
        .unwrap();
        let decision =
            ArbiterDecision::sign(&org.arbiters[0].keys, &ticket, Verdict::Approve, T0).unwrap();
        let request = ReleaseRequest::sign(
            &mut rng,
            &org.master.keys,
            &org.policy,
            EpochRange::single(0),
            Justification::Consent(consent.clone()),
            T0,
        )
        .unwrap();
        let no = |_: &TokenId| false;
        let records = [epoch.clone()];
        let view = TrusteeView {
            policy: &org.policy,
            me: &org.trustees[0].keys,
            now: T0 + 1,
            epochs: &records,
            is_spent: &no,
            is_revoked: &no,
        };
        let share = decide(&mut rng, &view, &request).unwrap().shares.remove(0);
        Fixture {
            epoch: epoch.into_record(),
            org,
            handoff,
            envelope,
            certificate,
            consent,
            ticket,
            decision,
            request,
            share,
        }
    })
}

/// What one proptest case contributes to a frame.
#[derive(Debug, Clone)]
struct Params {
    seed: u64,
    text: String,
    name: String,
    n: u64,
    m: u32,
    flag: bool,
    bytes: Vec<u8>,
}

fn params() -> impl Strategy<Value = Params> {
    (
        any::<u64>(),
        "\\PC{0,40}",
        "[A-Za-z0-9._-]{1,24}",
        any::<u64>(),
        any::<u32>(),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..80),
    )
        .prop_map(|(seed, text, name, n, m, flag, bytes)| Params {
            seed,
            text,
            name,
            n,
            m,
            flag,
            bytes,
        })
}

impl Params {
    fn recovery_record(&self) -> sealdesk_protocol::recovery_record::RecoveryRecord {
        sealdesk_protocol::recovery_record::RecoveryRecord {
            version: 1,
            card: self.card(),
            verifier: self.hash().to_vec(),
            nonce: self.bytes.clone(),
            sealed: self.bytes.clone(),
        }
    }

    fn keys(&self) -> IdentityKeys {
        IdentityKeys::generate(&mut rng(self.seed))
    }

    fn card(&self) -> IdentityCard {
        let role = [
            Role::Customer,
            Role::Agent,
            Role::Master,
            Role::Trustee,
            Role::Arbiter,
        ][(self.n % 5) as usize];
        IdentityCard::issue(&self.keys(), &self.name, role, self.n)
            .unwrap()
            .into_card()
    }

    fn conversation(&self) -> ConversationId {
        ConversationId::random(&mut rng(self.seed ^ 1))
    }

    fn token(&self) -> TokenId {
        TokenId::random(&mut rng(self.seed ^ 2))
    }

    fn hash(&self) -> [u8; 32] {
        let mut h = [0u8; 32];
        for (i, b) in self.bytes.iter().enumerate() {
            h[i % 32] ^= *b;
        }
        h
    }

    fn range(&self) -> EpochRange {
        EpochRange {
            first: self.m / 2,
            last: self.m,
        }
    }

    fn envelope(&self) -> Envelope {
        let mut e = fixture().envelope.clone();
        e.header.counter = self.n;
        e.header.sent_at = u64::from(self.m);
        e.header.epoch = self.m;
        e.header.kind = if self.flag {
            ContentKind::Text
        } else {
            ContentKind::Read
        };
        e.header.conversation = self.conversation();
        e.header.sender = self.keys().signing_public();
        e.header.commitment = self.hash();
        e.ciphertext.clone_from(&self.bytes);
        e
    }

    fn signal(&self) -> sealdesk_protocol::signal::SignalEnvelope {
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&self.hash()[..12]);
        sealdesk_protocol::signal::SignalEnvelope {
            header: sealdesk_protocol::signal::SignalHeader {
                version: 1,
                conversation: self.conversation(),
                epoch: self.m,
                sender: self.keys().signing_public(),
                sent_at: self.n,
                nonce,
            },
            ciphertext: self.bytes.clone(),
            signature: self.envelope().signature,
        }
    }

    fn epoch(&self) -> EpochRecord {
        let mut r = fixture().epoch.clone();
        r.org.clone_from(&self.text);
        r.created_at = self.n;
        r.policy_version = self.m;
        r.previous = self.flag.then(|| self.hash());
        r.members.push(self.card());
        r
    }

    fn handoff(&self) -> HandOff {
        let mut h = fixture().handoff.clone();
        h.created_at = self.n;
        h.conversation = self.conversation();
        h.epochs[0].0 = self.m;
        h.epochs[0].1.ciphertext.clone_from(&self.bytes);
        h
    }

    fn policy(&self) -> sealdesk_protocol::policy::OrgPolicy {
        let mut p = fixture().org.policy.policy().clone();
        p.org.clone_from(&self.text);
        p.version = self.m;
        p.allow_dispute = self.flag;
        p.require_open_token = self.n.is_multiple_of(2);
        p.arbiters.push(self.card());
        p
    }

    fn certificate(&self) -> AgentCertificate {
        let mut c = fixture().certificate.clone();
        c.org.clone_from(&self.text);
        c.agent = self.card();
        c.expires_at = self.n;
        c
    }

    fn entry(&self) -> AuditEntry {
        let keys = self.keys();
        let event = match self.n % 6 {
            0 => AuditEvent::Release {
                org: self.text.clone(),
                request_hash: self.hash(),
                conversation: self.conversation(),
                epochs: self.range(),
                basis: ReleaseBasis::Consent {
                    id: self.token(),
                    scope: if self.flag {
                        Scope::Full
                    } else {
                        Scope::Redacted
                    },
                    issued_at: self.n,
                },
                master: keys.signing_public(),
            },
            1 => AuditEvent::Release {
                org: self.text.clone(),
                request_hash: self.hash(),
                conversation: self.conversation(),
                epochs: self.range(),
                basis: ReleaseBasis::Dispute {
                    id: self.token(),
                    approvers: vec![keys.signing_public(); (self.m % 3) as usize],
                },
                master: keys.signing_public(),
            },
            2 => AuditEvent::Erasure {
                conversation: self.conversation(),
                reason: self.text.clone(),
            },
            3 => AuditEvent::ConsentRevocation {
                conversation: self.conversation(),
                consent: self.token(),
            },
            4 => AuditEvent::DisputeClosed {
                org: self.text.clone(),
                conversation: self.conversation(),
                ticket: self.token(),
                because: self.because(),
            },
            _ => AuditEvent::PolicyChange {
                org: self.text.clone(),
                version: self.m,
                policy_hash: self.hash(),
            },
        };
        AuditEntry::sign(&keys, event, self.n)
    }

    fn head(&self) -> SignedTreeHead {
        SignedTreeHead::sign(&self.keys(), self.n, self.hash(), u64::from(self.m))
    }

    fn cosignature(&self) -> Cosignature {
        Cosignature::sign(&self.keys(), &self.head(), self.n)
    }

    fn path(&self) -> Vec<serde_bytes::ByteArray<32>> {
        to_wire_path(vec![self.hash(); (self.m % 5) as usize])
    }

    fn consent(&self) -> ConsentToken {
        let mut c = fixture().consent.clone();
        c.purpose.clone_from(&self.text);
        c.epochs = self.range();
        c.id = self.token();
        c
    }

    fn ticket(&self) -> DisputeTicket {
        let mut t = fixture().ticket.clone();
        t.reason.clone_from(&self.text);
        t.epochs = self.range();
        t.expires_at = self.n;
        t
    }

    fn because(&self) -> ClosedBecause {
        match self.m % 3 {
            0 => ClosedBecause::Master(self.text.clone()),
            1 => ClosedBecause::Released,
            _ => ClosedBecause::Rejected,
        }
    }

    fn close(&self) -> DisputeClose {
        let mut c = DisputeClose::sign(&self.keys(), &self.ticket(), &self.text, self.n);
        c.ticket = self.token();
        c
    }

    fn decision(&self) -> ArbiterDecision {
        let mut d = fixture().decision.clone();
        d.verdict = if self.flag {
            Verdict::Approve
        } else {
            Verdict::Reject(self.text.clone())
        };
        d.decided_at = self.n;
        d
    }

    fn request(&self) -> ReleaseRequest {
        let mut r = fixture().request.clone();
        r.justification = if self.flag {
            Justification::Consent(self.consent())
        } else {
            Justification::Dispute {
                ticket: self.ticket(),
                decisions: vec![self.decision(); (self.m % 4) as usize],
            }
        };
        r.requested_at = self.n;
        r.org.clone_from(&self.text);
        r
    }

    fn share(&self) -> ReleasedShare {
        let mut s = fixture().share.clone();
        s.epoch = self.m;
        s.request_hash = self.hash();
        s.sealed.ciphertext.clone_from(&self.bytes);
        s
    }

    fn item(&self) -> Item {
        match self.n % 5 {
            0 => Item::Epoch(self.epoch()),
            1 => Item::Message(self.envelope()),
            2 => Item::HandOff(self.handoff()),
            3 => Item::Consent(fixture().consent.clone()),
            _ => Item::Notice {
                entry: self.entry(),
                index: u64::from(self.m),
            },
        }
    }

    fn sequenced(&self) -> Sequenced {
        Sequenced {
            conversation: self.conversation(),
            seq: self.n,
            stored_at: u64::from(self.m),
            item: self.item(),
        }
    }

    fn pending(&self) -> PendingRelease {
        PendingRelease {
            request: self.request(),
            epochs: vec![self.epoch(); (self.m % 3) as usize],
        }
    }

    fn ticket_state(&self) -> TicketState {
        TicketState {
            ticket: self.ticket(),
            decisions: vec![self.decision(); (self.m % 3) as usize],
            closed: self.flag.then(|| TicketClosed {
                at: self.n,
                because: self.because(),
                statement: self.m.is_multiple_of(2).then(|| self.close()),
                index: u64::from(self.m),
            }),
        }
    }

    fn block(&self) -> Block {
        let reason = if self.flag {
            BlockReason::Spam
        } else {
            BlockReason::Abuse
        };
        Block::issue(
            &self.keys(),
            &self.text,
            self.conversation(),
            self.keys().signing_public(),
            reason,
            self.n,
        )
    }

    fn error_code(&self) -> ErrorCode {
        [
            ErrorCode::BadRequest,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::NotRegistered,
            ErrorCode::LegalHold,
            ErrorCode::TooLarge,
            ErrorCode::RateLimited,
            ErrorCode::Internal,
            ErrorCode::CounterReused,
            ErrorCode::StaleEpoch,
            ErrorCode::EpochFull,
            ErrorCode::NameTaken,
            ErrorCode::KeyRegistered,
            ErrorCode::IdTaken,
            ErrorCode::StalePolicy,
            ErrorCode::AlreadyAnswered,
            ErrorCode::BadField,
            ErrorCode::TicketClosed,
            ErrorCode::Blocked,
        ][(self.n % 20) as usize]
    }
}

/// Every frame family this file generates, by name; [`family`] must name each one.
const FAMILIES: [&str; 83] = [
    "challenge",
    "auth",
    "welcome",
    "request/register",
    "request/get_card",
    "request/publish_policy",
    "request/get_policy",
    "request/publish_certificate",
    "request/get_certificate",
    "request/open_conversation",
    "request/transfer",
    "request/list_conversations",
    "request/put_epoch",
    "request/put_hand_off",
    "request/send",
    "request/history",
    "request/delivered",
    "request/submit_release",
    "request/submit_shares",
    "request/refuse_release",
    "request/pending_releases",
    "request/release_status",
    "request/open_ticket",
    "request/decide",
    "request/list_tickets",
    "request/share_consent",
    "request/append_audit",
    "request/get_tree_head",
    "request/get_entries",
    "request/get_inclusion",
    "request/get_consistency",
    "request/erase",
    "response/ok",
    "response/error",
    "response/card",
    "response/policy",
    "response/certificate",
    "response/opened",
    "response/conversations",
    "response/stored",
    "response/items",
    "response/releases",
    "response/progress",
    "response/tickets",
    "response/appended",
    "response/tree_head",
    "response/entries",
    "response/inclusion",
    "response/consistency",
    "push/item",
    "push/assigned",
    "push/delivered",
    "push/release",
    "push/release_update",
    "push/ticket",
    "request/cosign",
    "request/get_witnessed_head",
    "response/witnessed_head",
    "request/org_conversations",
    "response/org_conversations",
    "request/signal",
    "push/signal",
    "request/close_ticket",
    "request/block",
    "request/unblock",
    "request/list_blocks",
    "response/blocks",
    "request/open_conversation_with_token",
    "request/publish_web_key",
    "request/rebind_agent",
    "request/attachment_put",
    "request/attachment_get",
    "response/attachment_progress",
    "response/attachment_chunk",
    "request/revoke_web_key",
    "request/watch_audit",
    "push/audit_grew",
    "request/watch_agent_keys",
    "push/agent_key_changed",
    "request/put_recovery",
    "request/get_recovery",
    "response/recovery",
    "push/quota_warning",
];

/// The family of a frame. Exhaustive on purpose: a new variant does not compile here until it
/// is generated by [`frame`] and listed in [`FAMILIES`].
fn family(f: &Frame) -> &'static str {
    match f {
        Frame::Challenge(_) => "challenge",
        Frame::Auth(_) => "auth",
        Frame::Welcome(_) => "welcome",
        Frame::Request { body, .. } => match body {
            Request::Register => "request/register",
            Request::GetCard { .. } => "request/get_card",
            Request::PublishPolicy(_) => "request/publish_policy",
            Request::GetPolicy { .. } => "request/get_policy",
            Request::PublishCertificate(_) => "request/publish_certificate",
            Request::GetCertificate { .. } => "request/get_certificate",
            Request::OpenConversation { .. } => "request/open_conversation",
            Request::Transfer { .. } => "request/transfer",
            Request::ListConversations => "request/list_conversations",
            Request::PutEpoch(_) => "request/put_epoch",
            Request::PutHandOff(_) => "request/put_hand_off",
            Request::Send(_) => "request/send",
            Request::History { .. } => "request/history",
            Request::Delivered { .. } => "request/delivered",
            Request::SubmitRelease(_) => "request/submit_release",
            Request::SubmitShares { .. } => "request/submit_shares",
            Request::RefuseRelease { .. } => "request/refuse_release",
            Request::PendingReleases => "request/pending_releases",
            Request::ReleaseStatus { .. } => "request/release_status",
            Request::OpenTicket(_) => "request/open_ticket",
            Request::Decide(_) => "request/decide",
            Request::ListTickets => "request/list_tickets",
            Request::CloseTicket(_) => "request/close_ticket",
            Request::ShareConsent(_) => "request/share_consent",
            Request::AppendAudit(_) => "request/append_audit",
            Request::GetTreeHead => "request/get_tree_head",
            Request::GetEntries { .. } => "request/get_entries",
            Request::GetInclusion { .. } => "request/get_inclusion",
            Request::GetConsistency { .. } => "request/get_consistency",
            Request::Erase(_) => "request/erase",
            Request::Cosign(_) => "request/cosign",
            Request::GetWitnessedHead { .. } => "request/get_witnessed_head",
            Request::OrgConversations { .. } => "request/org_conversations",
            Request::Signal(_) => "request/signal",
            Request::Block(_) => "request/block",
            Request::Unblock(_) => "request/unblock",
            Request::ListBlocks { .. } => "request/list_blocks",
            Request::OpenConversationWithToken { .. } => "request/open_conversation_with_token",
            Request::PublishWebKey(_) => "request/publish_web_key",
            Request::RevokeWebKey(_) => "request/revoke_web_key",
            Request::WatchAudit => "request/watch_audit",
            Request::WatchAgentKeys => "request/watch_agent_keys",
            Request::RebindAgent(_) => "request/rebind_agent",
            Request::AttachmentPut { .. } => "request/attachment_put",
            Request::AttachmentGet { .. } => "request/attachment_get",
            Request::PutRecovery(_) => "request/put_recovery",
            Request::GetRecovery { .. } => "request/get_recovery",
        },
        Frame::Response { body, .. } => match body {
            Response::Ok => "response/ok",
            Response::Error { .. } => "response/error",
            Response::Card(_) => "response/card",
            Response::Policy(_) => "response/policy",
            Response::Certificate(_) => "response/certificate",
            Response::Opened { .. } => "response/opened",
            Response::Conversations(_) => "response/conversations",
            Response::Stored { .. } => "response/stored",
            Response::Items { .. } => "response/items",
            Response::Releases(_) => "response/releases",
            Response::Progress(_) => "response/progress",
            Response::Tickets(_) => "response/tickets",
            Response::Appended { .. } => "response/appended",
            Response::TreeHead(_) => "response/tree_head",
            Response::Entries { .. } => "response/entries",
            Response::Inclusion(_) => "response/inclusion",
            Response::Consistency(_) => "response/consistency",
            Response::WitnessedHead(_) => "response/witnessed_head",
            Response::OrgConversations(_) => "response/org_conversations",
            Response::Blocks(_) => "response/blocks",
            Response::AttachmentProgress { .. } => "response/attachment_progress",
            Response::AttachmentChunk { .. } => "response/attachment_chunk",
            Response::Recovery(_) => "response/recovery",
        },
        Frame::Push(p) => match p {
            Push::Item(_) => "push/item",
            Push::Assigned { .. } => "push/assigned",
            Push::Delivered { .. } => "push/delivered",
            Push::Release(_) => "push/release",
            Push::ReleaseUpdate { .. } => "push/release_update",
            Push::Ticket(_) => "push/ticket",
            Push::Signal(_) => "push/signal",
            Push::AuditGrew { .. } => "push/audit_grew",
            Push::AgentKeyChanged { .. } => "push/agent_key_changed",
            Push::QuotaWarning { .. } => "push/quota_warning",
        },
    }
}

/// Frame family `index` (see [`FAMILIES`]) filled with the case's values.
fn frame(index: usize, p: &Params) -> Frame {
    let id = p.n;
    let req = |body| Frame::Request { id, body };
    let resp = |body| Frame::Response { id, body };
    match index {
        0 => Frame::Challenge(Challenge {
            relay_key: p.keys().signing_public(),
            nonce: p.hash(),
        }),
        1 => {
            let keys = p.keys();
            let challenge = Challenge {
                relay_key: fixture().org.relay.signing_public(),
                nonce: p.hash(),
            };
            Frame::Auth(AuthResponse::answer(&keys, p.card(), &challenge))
        }
        2 => Frame::Welcome(Welcome {
            registered: p.flag,
            log_key: p.keys().signing_public(),
        }),
        3 => req(Request::Register),
        4 => req(Request::GetCard {
            name: p.text.clone(),
        }),
        5 => req(Request::PublishPolicy(p.policy())),
        6 => req(Request::GetPolicy {
            org: p.text.clone(),
            version: p.flag.then_some(p.m),
        }),
        7 => req(Request::PublishCertificate(p.certificate())),
        8 => req(Request::GetCertificate {
            org: p.text.clone(),
            agent: p.name.clone(),
        }),
        9 => req(Request::OpenConversation {
            org: p.text.clone(),
            conversation: p.conversation(),
        }),
        10 => req(Request::Transfer {
            conversation: p.conversation(),
            agent: p.text.clone(),
        }),
        11 => req(Request::ListConversations),
        12 => req(Request::PutEpoch(p.epoch())),
        13 => req(Request::PutHandOff(p.handoff())),
        14 => req(Request::Send(p.envelope())),
        15 => req(Request::History {
            conversation: p.conversation(),
            after: p.n,
            limit: p.m,
        }),
        16 => req(Request::Delivered {
            conversation: p.conversation(),
            seq: p.n,
        }),
        17 => req(Request::SubmitRelease(p.request())),
        18 => req(Request::SubmitShares {
            request: p.token(),
            shares: vec![p.share(); (p.m % 3) as usize],
        }),
        19 => req(Request::RefuseRelease {
            request: p.token(),
            reason: p.text.clone(),
        }),
        20 => req(Request::PendingReleases),
        21 => req(Request::ReleaseStatus { request: p.token() }),
        22 => req(Request::OpenTicket(p.ticket())),
        23 => req(Request::Decide(p.decision())),
        24 => req(Request::ListTickets),
        25 => {
            let mut t = fixture().consent.clone();
            t.conversation = p.conversation();
            req(Request::ShareConsent(t))
        }
        26 => req(Request::AppendAudit(p.entry())),
        27 => req(Request::GetTreeHead),
        28 => req(Request::GetEntries {
            from: p.n,
            limit: p.m,
        }),
        29 => req(Request::GetInclusion {
            index: p.n,
            size: u64::from(p.m),
        }),
        30 => req(Request::GetConsistency {
            old: u64::from(p.m),
            new: p.n,
        }),
        31 => req(Request::Erase(ErasureRequest::sign(
            &p.keys(),
            p.conversation(),
            p.n,
        ))),
        32 => resp(Response::Ok),
        33 => resp(Response::Error {
            code: p.error_code(),
            message: p.text.clone(),
            retry_after: (p.n % 2 == 1).then_some(p.n),
        }),
        34 => resp(Response::Card(p.card())),
        35 => resp(Response::Policy(p.policy())),
        36 => resp(Response::Certificate(p.certificate())),
        37 => resp(Response::Opened {
            agent: p.card(),
            certificate: p.certificate(),
            policy: p.policy(),
            quota: (p.n % 2 == 1).then_some(wire::OpenQuota {
                open: p.n as u32,
                most: p.n as u32,
            }),
        }),
        38 => resp(Response::Conversations(vec![
            ConversationInfo {
                conversation: p.conversation(),
                org: p.text.clone(),
                customer: p.name.clone(),
                agent: p.text.clone(),
                last_seq: p.n,
                delivered: u64::from(p.m),
                created_at: p.n ^ 7,
            };
            (p.m % 3) as usize
        ])),
        39 => resp(Response::Stored {
            seq: p.n,
            quota: p.flag.then_some(sealdesk_protocol::wire::ByteQuota {
                scope: sealdesk_protocol::wire::QuotaScope::Account,
                used: u64::from(p.m),
                most: p.n,
            }),
        }),
        40 => resp(Response::Items {
            items: vec![p.sequenced(); (p.m % 3) as usize],
            more: p.flag,
            skipped: vec![
                SkippedRange {
                    from: p.n,
                    to: p.n.saturating_add(u64::from(p.m)),
                    epoch: p.flag.then_some(p.m),
                };
                (p.m % 2) as usize
            ],
            head: p.flag.then_some(p.n),
        }),
        41 => resp(Response::Releases(vec![
            p.pending();
            (p.m % 2) as usize + 1
        ])),
        42 => resp(Response::Progress(ReleaseProgress {
            shares: vec![p.share(); (p.m % 3) as usize],
            refusals: vec![(p.name.clone(), p.text.clone()); (p.n % 3) as usize],
        })),
        43 => resp(Response::Tickets(vec![
            p.ticket_state();
            (p.n % 3) as usize
        ])),
        44 => resp(Response::Appended {
            index: p.n,
            head: p.head(),
        }),
        45 => resp(Response::TreeHead(p.head())),
        46 => resp(Response::Entries {
            from: p.n,
            entries: vec![p.entry(); (p.m % 3) as usize],
            withheld: (0..u64::from(p.m % 2))
                .map(|i| WithheldEntry {
                    index: p.n.wrapping_add(i),
                    leaf: serde_bytes::ByteArray::new([u8::try_from(p.m % 256).unwrap_or(0); 32]),
                })
                .collect(),
        }),
        47 => resp(Response::Inclusion(InclusionProof {
            index: p.n,
            size: u64::from(p.m),
            path: p.path(),
        })),
        48 => resp(Response::Consistency(ConsistencyProof {
            old: u64::from(p.m),
            new: p.n,
            path: p.path(),
        })),
        49 => Frame::Push(Push::Item(p.sequenced())),
        50 => Frame::Push(Push::Assigned {
            conversation: p.conversation(),
            customer: p.card(),
        }),
        51 => Frame::Push(Push::Delivered {
            conversation: p.conversation(),
            member: p.text.clone(),
            seq: p.n,
        }),
        52 => Frame::Push(Push::Release(p.pending())),
        53 => Frame::Push(Push::ReleaseUpdate { request: p.token() }),
        54 => Frame::Push(Push::Ticket(p.ticket_state())),
        55 => req(Request::Cosign(p.cosignature())),
        56 => req(Request::GetWitnessedHead {
            org: p.text.clone(),
        }),
        57 => resp(Response::WitnessedHead(WitnessedHead {
            head: p.head(),
            cosignatures: vec![p.cosignature(); (p.m % 3) as usize],
        })),
        58 => req(Request::OrgConversations {
            org: p.text.clone(),
        }),
        59 => resp(Response::OrgConversations(vec![
            OrgConversation {
                conversation: p.conversation(),
                customer: p.name.clone(),
                agent: p.text.clone(),
                created_at: p.n ^ 7,
                last_activity: p.n,
                last_seq: u64::from(p.m),
                consents: vec![p.consent(); (p.n % 2) as usize],
                tickets: vec![p.token(); (p.m % 3) as usize],
                legal_hold: p.flag,
            };
            (p.m % 3) as usize
        ])),
        60 => req(Request::Signal(p.signal())),
        61 => req(Request::CloseTicket(p.close())),
        63 => req(Request::Block(p.block())),
        64 => req(Request::Unblock(Unblock::issue(
            &p.keys(),
            &p.text,
            p.keys().signing_public(),
            p.n,
        ))),
        65 => req(Request::ListBlocks {
            org: p.text.clone(),
        }),
        67 => req(Request::OpenConversationWithToken {
            org: p.text.clone(),
            conversation: p.conversation(),
            token: OpenToken {
                org: p.text.clone(),
                visitor: p.bytes.clone(),
                customer: p.keys().signing_public(),
                issued_at: p.n,
                expires_at: p.n ^ 5,
                web_key: p.keys().signing_public(),
                signature: p.keys().sign(&p.bytes),
            },
        }),
        68 => req(Request::PublishWebKey(WebKeyCertificate {
            org: p.text.clone(),
            name: p.name.clone(),
            key: p.keys().signing_public(),
            issued_at: p.n,
            expires_at: p.n ^ 9,
            signature: p.keys().sign(&p.bytes),
        })),
        66 => resp(Response::Blocks(vec![
            BlockEntry {
                block: p.block(),
                customer: p.name.clone(),
                at: p.n,
            };
            (p.m % 3) as usize
        ])),
        69 => req(Request::RebindAgent(p.certificate())),
        70 => req(Request::AttachmentPut {
            conversation: p.conversation(),
            attachment: sealdesk_protocol::ids::AttachmentId::from_bytes(
                p.conversation().as_bytes(),
            )
            .unwrap(),
            size: p.n,
            index: u64::from(p.m),
            data: p.bytes.clone(),
        }),
        71 => req(Request::AttachmentGet {
            conversation: p.conversation(),
            attachment: sealdesk_protocol::ids::AttachmentId::from_bytes(
                p.conversation().as_bytes(),
            )
            .unwrap(),
            index: p.n,
        }),
        72 => resp(Response::AttachmentProgress {
            stored: u64::from(p.m),
            chunks: p.n,
            quota: p.flag.then_some(sealdesk_protocol::wire::ByteQuota {
                scope: sealdesk_protocol::wire::QuotaScope::Org,
                used: p.n,
                most: u64::from(p.m),
            }),
        }),
        73 => resp(Response::AttachmentChunk {
            size: p.n,
            index: u64::from(p.m),
            data: p.bytes.clone(),
        }),
        74 => req(Request::RevokeWebKey(
            sealdesk_protocol::open_token::WebKeyRevocation {
                org: p.text.clone(),
                key: p.keys().signing_public(),
                revoked_at: p.n,
                signer: p.keys().signing_public(),
                signature: p.keys().sign(&p.bytes),
            },
        )),
        75 => req(Request::WatchAudit),
        76 => Frame::Push(Push::AuditGrew { size: p.n }),
        77 => req(Request::WatchAgentKeys),
        78 => Frame::Push(Push::AgentKeyChanged {
            org: p.text.clone(),
            agent: p.text.clone(),
            card: p.card(),
            conversations: vec![p.conversation()],
        }),
        79 => req(Request::PutRecovery(p.recovery_record())),
        80 => req(Request::GetRecovery {
            name: p.name.clone(),
            proof: p.bytes.clone(),
        }),
        81 => resp(Response::Recovery(p.recovery_record())),
        82 => Frame::Push(Push::QuotaWarning {
            org: p.flag.then(|| p.text.clone()),
            quota: sealdesk_protocol::wire::ByteQuota {
                scope: sealdesk_protocol::wire::QuotaScope::Org,
                used: p.n,
                most: p.n.saturating_add(1),
            },
        }),
        _ => Frame::Push(Push::Signal(p.signal())),
    }
}

/// A valid encoded frame of any family.
fn encoded_frame() -> impl Strategy<Value = Vec<u8>> {
    (0..FAMILIES.len(), params()).prop_map(|(i, p)| wire::encode(&frame(i, &p)).unwrap())
}

/// The `id` of `{ "request": { "id": u64, … } }` in a version-1 frame, read with a generic
/// CBOR decoder (not the one under test).
fn envelope_id(bytes: &[u8]) -> Option<u64> {
    let mut rest = bytes.get(1..)?;
    let value: ciborium::Value = ciborium::from_reader(&mut rest).ok()?;
    let [(key, inner)] = value.as_map()?.as_slice() else {
        return None;
    };
    if key.as_text()? != "request" {
        return None;
    }
    let (_, id) = inner
        .as_map()?
        .iter()
        .find(|(k, _)| k.as_text() == Some("id"))?;
    u64::try_from(id.as_integer()?).ok()
}

fn is_decode_error(r: &Result<Frame, Error>) -> bool {
    matches!(r, Err(Error::Decode { .. }))
}

#[test]
fn every_variant_is_generated() {
    let p = Params {
        seed: 1,
        text: "x".into(),
        name: "y".into(),
        n: 2,
        m: 3,
        flag: true,
        bytes: vec![4],
    };
    let generated: BTreeSet<&str> = (0..FAMILIES.len()).map(|i| family(&frame(i, &p))).collect();
    let listed: BTreeSet<&str> = FAMILIES.into_iter().collect();
    assert_eq!(generated, listed);
}

#[test]
fn empty_and_oversized_input() {
    assert!(matches!(
        wire::decode(&[]),
        Err(Error::Decode { reason, .. }) if reason == "empty"
    ));
    assert!(is_decode_error(&wire::decode(&[WIRE_VERSION])));
    // Exactly MAX_FRAME bytes is accepted; one more is refused by encode and by decode (before
    // the version byte is even looked at).
    let sized = |len: usize| Frame::Request {
        id: 1,
        body: Request::GetCard {
            name: "n".repeat(len),
        },
    };
    let base = wire::encode(&sized(60_000)).unwrap().len();
    let fits = 60_000 + (MAX_FRAME - base);
    let max = wire::encode(&sized(fits)).unwrap();
    assert_eq!(max.len(), MAX_FRAME);
    assert_eq!(wire::decode(&max).unwrap(), sized(fits));
    assert_eq!(
        wire::encode(&sized(fits + 1)),
        Err(Error::TooLarge {
            what: "frame",
            size: MAX_FRAME + 1,
            limit: MAX_FRAME
        })
    );
    let mut over = vec![WIRE_VERSION];
    ciborium::into_writer(&sized(fits + 1), &mut over).unwrap();
    assert_eq!(over.len(), MAX_FRAME + 1);
    assert_eq!(
        wire::decode(&over),
        Err(Error::TooLarge {
            what: "frame",
            size: MAX_FRAME + 1,
            limit: MAX_FRAME
        })
    );
    let mut junk = vec![0xff; MAX_FRAME + 1];
    junk[0] = 9;
    assert!(matches!(wire::decode(&junk), Err(Error::TooLarge { .. })));
    // An envelope too big for a frame cannot be encoded.
    let mut env = fixture().envelope.clone();
    env.ciphertext = vec![0; MAX_FRAME];
    assert!(matches!(
        wire::encode(&Frame::Request {
            id: 0,
            body: Request::Send(env)
        }),
        Err(Error::TooLarge { .. })
    ));
}

/// Deeply nested CBOR is refused, not a stack overflow.
#[test]
fn deep_nesting_is_refused() {
    let mut bytes = vec![WIRE_VERSION];
    bytes.extend(std::iter::repeat_n(0x81, 60_000)); // arrays of one element, nested
    bytes.push(0x00);
    assert!(is_decode_error(&wire::decode(&bytes)));
    let mut bytes = vec![WIRE_VERSION];
    bytes.extend(std::iter::repeat_n([0xa1, 0x61, 0x61], 20_000).flatten()); // {"a": {"a": …}}
    bytes.push(0x00);
    assert!(is_decode_error(&wire::decode(&bytes)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_frame_round_trips(index in 0..FAMILIES.len(), p in params()) {
        let f = frame(index, &p);
        let bytes = wire::encode(&f).unwrap();
        prop_assert_eq!(bytes[0], WIRE_VERSION);
        prop_assert!(bytes.len() <= MAX_FRAME);
        prop_assert_eq!(&wire::decode(&bytes).unwrap(), &f);
        // Encoding is a function of the value: decoding and re-encoding gives the same bytes.
        prop_assert_eq!(wire::encode(&wire::decode(&bytes).unwrap()).unwrap(), bytes);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = wire::decode(&bytes);
        // And behind a valid version byte, so the CBOR decoder sees them.
        let mut versioned = vec![WIRE_VERSION];
        versioned.extend_from_slice(&bytes);
        if let Ok(f) = wire::decode(&versioned) {
            // Whatever decodes re-encodes, and that encoding decodes to the same frame.
            let again = wire::encode(&f).unwrap();
            prop_assert_eq!(wire::decode(&again).unwrap(), f);
        }
    }

    #[test]
    fn single_byte_mutations_never_panic(
        bytes in encoded_frame(),
        at in any::<prop::sample::Index>(),
        delta in 1u8..=255,
        how in 0u8..3,
    ) {
        let mut m = bytes.clone();
        let i = at.index(m.len());
        match how {
            0 => m[i] ^= delta,
            1 => { m.remove(i); }
            _ => m.insert(i, delta),
        }
        if let Ok(f) = wire::decode(&m) {
            let again = wire::encode(&f).unwrap();
            prop_assert_eq!(wire::decode(&again).unwrap(), f);
        }
    }

    /// `decode_inbound` agrees with `decode` on every frame that decodes and on every refusal
    /// other than a request with a bad field, and never panics; a bad field is named with the
    /// request id of the envelope.
    #[test]
    fn inbound_decoding_agrees_with_decode(
        bytes in encoded_frame(),
        at in any::<prop::sample::Index>(),
        delta in 1u8..=255,
    ) {
        let mut m = bytes.clone();
        let i = at.index(m.len());
        m[i] ^= delta;
        for b in [&bytes, &m] {
            match (wire::decode(b), wire::decode_inbound(b)) {
                (Ok(f), Ok(wire::Inbound::Frame(g))) => prop_assert_eq!(f, g),
                (Err(Error::Decode { .. }), Ok(wire::Inbound::BadField(bad))) => {
                    prop_assert!(bad.field == "body" || bad.field.starts_with("body."), "{:?}", bad);
                    let prefix = format!("{}: ", bad.field);
                    prop_assert!(bad.message().starts_with(&prefix), "{:?}", bad);
                    prop_assert_eq!(Some(bad.id), envelope_id(b), "{:?}", bad);
                }
                (Err(e), Err(f)) => prop_assert_eq!(e, f),
                (a, b) => prop_assert!(false, "decode {:?} but decode_inbound {:?}", a, b),
            }
        }
    }

    #[test]
    fn unknown_version_is_named(bytes in encoded_frame(), version in any::<u8>()) {
        prop_assume!(version != WIRE_VERSION);
        let mut m = bytes;
        m[0] = version;
        prop_assert_eq!(wire::decode(&m), Err(Error::UnknownVersion(version)));
    }

    #[test]
    fn trailing_bytes_are_rejected(
        bytes in encoded_frame(),
        extra in proptest::collection::vec(any::<u8>(), 1..16),
    ) {
        let mut m = bytes;
        m.extend_from_slice(&extra);
        let r = wire::decode(&m);
        prop_assert!(
            matches!(&r, Err(Error::Decode { reason, .. }) if reason.contains("trailing")),
            "{:?}", r
        );
    }

    #[test]
    fn oversized_frames_are_rejected(bytes in encoded_frame(), pad in 1usize..4096) {
        let mut m = bytes;
        m.resize(MAX_FRAME + pad, 0);
        prop_assert!(
            matches!(
                wire::decode(&m),
                Err(Error::TooLarge { size, limit: MAX_FRAME, .. }) if size == MAX_FRAME + pad
            ),
            "oversized frame not refused as too large"
        );
    }

    #[test]
    fn stored_objects_from_arbitrary_cbor_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = wire::from_cbor::<EpochRecord>(&bytes, "epoch record");
        let _ = wire::from_cbor::<Envelope>(&bytes, "envelope");
        let _ = wire::from_cbor::<sealdesk_protocol::policy::OrgPolicy>(&bytes, "policy");
        let _ = wire::from_cbor::<AuditEntry>(&bytes, "audit entry");
        let _ = wire::from_cbor::<ReleaseRequest>(&bytes, "release request");
    }
}
