//! The relay's protocol service: one method per request, over the [`Store`] seam.
//!
//! The relay checks what it can without any key that opens content — card and policy signatures,
//! epoch-record chains, audit-entry signatures, membership — as defence in depth. Clients check
//! everything again: the relay is an untrusted directory.
//!
//! [`Service`] holds the shared state and dispatches requests; the requests live by concern:
//!
//! - [`directory`]: accounts, cards, names, policies (and the verified-policy cache
//!   [`directory::Policies`]), agent certificates;
//! - [`conversations`]: open, transfer, list, epochs, hand-offs, messages (staged and
//!   acknowledged), history, delivery receipts — over the conversation table [`table::ConvTable`];
//! - [`escrow`]: consents, revocation checks, release requests and shares, dispute tickets;
//! - [`audit_log`]: the transparency log [`audit_log::AuditLog`], tree heads, proofs,
//!   cosignatures and release notices;
//! - [`erasure`]: customer erasure and the retention sweep;
//! - [`signals`]: ephemeral signals (typing), forwarded and never stored;
//! - [`blocks`]: an org's blocks of customers (spam), checked and enforced;
//! - [`open_tokens`]: web key certificates and the open-token check on open;
//! - [`attachments`]: attachment uploads (chunked, resumable) and fetches, the stored-bytes
//!   quotas, and their share of erasure and the retention sweep;
//! - [`keys`]: every storage key and its layout.

mod attachments;
mod audit_log;
mod audit_watch;
mod blocks;
mod close_gate;
pub use close_gate::FORWARDED_CLOSE_GATE_ENV;
mod recheck_gate;
pub use recheck_gate::RECHECK_GATE_ENV;
mod cluster;
pub use cluster::CATCH_UP_GATE_ENV;
pub use {
    audit_watch::DROP_AUDIT_WAKEUPS_ENV, cluster::DROP_CLOSES_ENV,
    consent_makeup::DROP_CONSENTS_ENV, extension_hook::EXTENSION_ENTRY_ENV,
    presence::FAIL_PRESENCE_READS_ENV,
};
mod consent_makeup;
mod conversations;
mod directory;
mod erasure;
mod escrow;
mod extension_hook;
pub(crate) mod key_push;
pub(crate) mod keys;
mod open_quota;
mod open_tokens;
mod org_index;
mod presence;
mod quota_push;
mod records;
mod recovery;
mod signals;
mod stored_bytes;
mod table;
mod tickets;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sealdesk_protocol::{
    card::IdentityCard,
    keys::{IdentityKeys, SigningPublicKey},
    wire::{self, ErrorCode, Frame, Push, Request, Response, Sequenced},
};
use tracing::{debug, info, warn};

pub(crate) use self::conversations::Staged;
pub(crate) use self::recovery::CLOSE_KEY_REPLACED;
use self::{
    audit_log::AuditLog,
    blocks::Blocks,
    directory::Policies,
    keys::{RELAY_IDENTITY, RELAY_IDENTITY_LOCATION},
    table::ConvTable,
};
use super::hub::Hub;
use crate::{
    clock::ClockHandle,
    commit::GroupCommit,
    limits::{Guard, Limited},
    metrics::Metrics,
    store::{Collection, ConversationLog, Store},
};

/// The answer to a duplicate message.
const COUNTER_REUSED: &str = "this (epoch, sender) has stored a message with this counter or a \
     higher one: counters only go up, and one may not be reused; open a new epoch instead of \
     resending with an old counter";

/// A refusal: an error code, a message for the client and, for a refusal that frees up with
/// time, the seconds to wait before trying again.
#[derive(Debug)]
pub(crate) struct Reject {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// Seconds to wait before trying again, if the refusal names a wait.
    pub retry_after: Option<u64>,
}

impl Reject {
    /// A refusal naming no wait.
    pub(crate) fn new(code: ErrorCode, message: String) -> Self {
        Self {
            code,
            message,
            retry_after: None,
        }
    }

    /// A refusal asking the client to wait `secs` seconds (at least one) before trying again.
    pub(crate) fn retry_after(code: ErrorCode, message: String, secs: u64) -> Self {
        Self {
            code,
            message,
            retry_after: Some(secs.max(1)),
        }
    }

    /// The error response that carries this refusal.
    pub(crate) fn into_response(self) -> Response {
        Response::Error {
            code: self.code,
            message: self.message,
            retry_after: self.retry_after,
        }
    }
}

type Reply = Result<Response, Reject>;

impl From<crate::Error> for Reject {
    fn from(e: crate::Error) -> Self {
        warn!(error = %e, "storage error while serving a request");
        Reject::new(
            ErrorCode::Internal,
            "the relay could not complete the request; try again".into(),
        )
    }
}

impl From<sealdesk_protocol::Error> for Reject {
    fn from(e: sealdesk_protocol::Error) -> Self {
        Reject::new(ErrorCode::BadRequest, e.to_string())
    }
}

/// The refusal for a rate limit: `rate_limited`, saying what and when to retry.
pub(crate) fn limited(l: Limited) -> Reject {
    Reject::retry_after(
        ErrorCode::RateLimited,
        l.describe().to_owned(),
        l.retry_after_secs(),
    )
}

fn reject<T>(code: ErrorCode, msg: impl Into<String>) -> Result<T, Reject> {
    Err(Reject::new(code, msg.into()))
}

/// A registered account behind a session: the token every request handler takes. Only the
/// service makes one — for a card registered on this relay ([`Service::authenticated`]) or
/// one it has just registered — so no handler can run for an account that is not.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    /// The account's card, as registered.
    pub card: IdentityCard,
    /// The connection the account's requests come in on ([`crate::connection::Connection::id`]):
    /// the item pushes a request causes skip it, not the account's other connections
    /// ([`Service::push_item`]).
    connection: u64,
    /// Keeps construction inside the service.
    _registered: (),
}

impl Caller {
    fn key(&self) -> SigningPublicKey {
        self.card.signing_key
    }

    /// Where the item pushes this caller's requests cause come from ([`Service::push_item`]).
    fn origin(&self) -> Origin {
        Origin {
            key: self.key(),
            connection: Some(self.connection),
        }
    }
}

/// Who caused an item push: the pushed item skips the one connection whose request caused it
/// (that connection learns the outcome from its response), never the account's other
/// connections — another device or tab of the account gets the item at once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin {
    /// The account whose request caused the push (the relay's own key for a retention sweep
    /// or an expiry).
    key: SigningPublicKey,
    /// The connection it came in on; `None` when the relay itself caused the push.
    connection: Option<u64>,
}

impl Origin {
    /// A push the relay causes itself (a retention sweep, an expiry): every connection of the
    /// audience gets it.
    fn relay(key: SigningPublicKey) -> Self {
        Self {
            key,
            connection: None,
        }
    }
}

/// Where an authenticated session stands: its card answered the challenge; it may send
/// requests only once it is registered (`Register` moves it on).
#[derive(Clone, Debug)]
pub(crate) enum Account {
    /// Authenticated, with a card not (or not yet) registered here: only `Register` is served.
    Unregistered(IdentityCard),
    /// Authenticated and registered: every request is served.
    Registered(Caller),
}

impl Account {
    /// The account's card.
    pub fn card(&self) -> &IdentityCard {
        match self {
            Account::Unregistered(card) => card,
            Account::Registered(caller) => &caller.card,
        }
    }
}

/// The relay's state shared by all sessions.
pub(crate) struct Service {
    pub store: Arc<dyn Store>,
    pub commit: GroupCommit,
    pub metrics: Arc<Metrics>,
    /// The relay's own identity: signs challenges' context, tree heads and erasure entries.
    pub keys: IdentityKeys,
    pub hub: Hub,
    /// Every time the service stamps or checks comes from here.
    clock: ClockHandle,
    /// Org policies, verified once per stored version.
    policies: Arc<Policies>,
    /// The conversation table; its lock serialises sequence-number assignment.
    convs: ConvTable,
    /// The audit log; its lock is the log's single-writer rule.
    log: AuditLog,
    /// The largest audit log size told to the sessions watching it (see [`audit_watch`]).
    audit_told: audit_watch::AuditTold,
    /// The abuse limits: registrations, failed authentications, opens, messages.
    pub guard: Guard,
    /// Every other write that must be atomic with a read (names, policies, releases, tickets).
    /// A std Mutex, like the others: held for in-memory updates and synchronous store writes
    /// only, never across an await, so a tokio Mutex would only add overhead.
    writes: Mutex<()>,
    /// The blocks in force (customer, org), loaded at start.
    blocks: Blocks,
    /// Cluster mode: the push cursors of the conversations with members connected here
    /// (see [`cluster`]).
    cursors: cluster::Cursors,
    /// Cluster mode: the consents pushed to the masters connected here, and where this node
    /// read the stored master pushes up to (see [`consent_makeup`]).
    master_pushes: consent_makeup::MasterPushes,
    /// Whether other relay nodes share the store (cluster mode).
    store_shared: bool,
    /// This node's view of the stored-bytes counts (see [`stored_bytes`]).
    byte_counts: crate::limits::bytes::ByteCounts,
    /// Test-only (the `test-hooks` feature, [`extension_hook`]): the audit entry of a kind
    /// this version cannot read to append, and serve to everyone. Always `None` otherwise.
    extension_hook: Option<extension_hook::ExtensionHook>,
}

fn enc<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, Reject> {
    wire::to_cbor(v).map_err(|_| Reject::new(ErrorCode::Internal, "encoding failed".into()))
}

fn dec<T: serde::de::DeserializeOwned>(b: &[u8], what: &'static str) -> Result<T, Reject> {
    wire::from_cbor(b, what).map_err(|e| {
        warn!(what, error = %e, "stored object does not decode");
        Reject::new(ErrorCode::Internal, "stored data is damaged".into())
    })
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, Reject> {
    m.lock()
        .map_err(|_| Reject::new(ErrorCode::Internal, "internal lock poisoned".into()))
}

impl Service {
    /// Builds the service, loading (or creating) the relay's key and the audit log, and
    /// indexing the consents, certificates and policies stored before the relay kept an
    /// index of them (once).
    ///
    /// # Errors
    /// [`crate::Error::CorruptIdentity`] if the relay's key is stored but malformed (it is
    /// never replaced: only a missing key is generated); [`crate::Error::Corrupt`] for an
    /// undecodable audit entry; storage errors.
    pub fn open(
        engine: Arc<dyn ConversationLog>,
        commit: GroupCommit,
        metrics: Arc<Metrics>,
        clock: ClockHandle,
        mut guard: Guard,
        rng: &mut impl rand_core::CryptoRng,
    ) -> crate::Result<Self> {
        guard.share(engine.clone());
        let store: Arc<dyn Store> = engine.clone();
        let stored = match store.get(Collection::Meta, RELAY_IDENTITY)? {
            Some(b) => Some(b),
            None => {
                // Generated once: by the first node of a cluster to start, whose key every
                // other node then reads (an insert another node won is not replaced).
                let k = IdentityKeys::generate(rng);
                if store.insert_if_absent(
                    Collection::Meta,
                    RELAY_IDENTITY,
                    k.to_secret_bytes().as_slice(),
                )? {
                    store.flush()?;
                }
                store.get(Collection::Meta, RELAY_IDENTITY)?
            }
        };
        let keys = match stored {
            Some(b) => {
                // Any 64 bytes are a key pair (an Ed25519 seed and an X25519 scalar), so the
                // length is all there is to check. Only a missing key is ever generated: a
                // replaced one would look to every client like a relay that changed its key.
                let arr = <[u8; 64]>::try_from(b.as_slice()).map_err(|_| {
                    crate::Error::CorruptIdentity {
                        location: RELAY_IDENTITY_LOCATION.into(),
                        detail: format!("{} bytes stored, 64 expected", b.len()),
                    }
                })?;
                IdentityKeys::from_secret_bytes(&arr)
            }
            None => {
                return Err(crate::Error::CorruptIdentity {
                    location: RELAY_IDENTITY_LOCATION.into(),
                    detail: "the key was stored and is gone".into(),
                });
            }
        };
        let log = AuditLog::load(store.as_ref())?;
        escrow::fill_consent_index(store.as_ref())?;
        org_index::fill_org_index(store.as_ref())?;
        let entries = log.len().unwrap_or(0);
        info!(entries, log_key = %keys.signing_public(), "relay state loaded");
        let policies = Arc::new(Policies::new(store.clone()));
        let blocks = Blocks::load(store.as_ref())?;
        let extension_hook = extension_hook::ExtensionHook::from_env()?;
        let service = Self {
            store_shared: engine.shared(),
            byte_counts: Default::default(),
            convs: ConvTable::new(engine, clock.clone(), policies.clone()),
            store,
            commit,
            metrics,
            keys,
            hub: Hub::default(),
            clock,
            policies,
            audit_told: audit_watch::AuditTold::new(entries),
            log,
            guard,
            writes: Mutex::new(()),
            blocks,
            cursors: cluster::Cursors::default(),
            master_pushes: consent_makeup::MasterPushes::default(),
            extension_hook,
        };
        service
            .fill_extension_slot(entries)
            .map_err(|r| crate::Error::Internal(r.message))?;
        Ok(service)
    }

    /// The session state of an account whose card answered the challenge: registered if the
    /// same card is stored under its key. A storage error while looking it up counts as not
    /// registered: the session may still register (which reads again), and is refused
    /// everything else.
    pub fn authenticated(&self, card: IdentityCard, connection: u64) -> Account {
        match self.card_by_key(&card.signing_key) {
            Ok(Some(stored)) if stored == card => Account::Registered(Caller {
                card,
                connection,
                _registered: (),
            }),
            _ => Account::Unregistered(card),
        }
    }

    /// Whether `caller`'s card is still the one the relay holds for its key: a sign-in re-reads
    /// it after joining the hub, as an agent's re-certification may have replaced it since
    /// [`Self::authenticated`] read it (`session::replaced_while_signing_in`).
    ///
    /// # Errors
    ///
    /// The store could not be read.
    pub fn card_is_current(&self, caller: &Caller) -> Result<bool, Reject> {
        Ok(self
            .card_by_key(&caller.card.signing_key)?
            .is_some_and(|stored| stored == caller.card))
    }

    /// Serves one request other than a registered account's `Send` (the session stages
    /// those itself, see [`Self::stage_send`]). `Register` moves an unregistered account on;
    /// anything else from one but `get_recovery` and `get_policy` is refused. `connection` is
    /// the session's connection id (the pushes its requests cause skip it).
    pub async fn handle(&self, account: &mut Account, connection: u64, req: Request) -> Response {
        let result = if matches!(req, Request::Register) {
            match self.register(account.card(), connection).await {
                Ok(caller) => {
                    *account = Account::Registered(caller);
                    Ok(Response::Ok)
                }
                Err(e) => Err(e),
            }
        } else if let Request::GetRecovery { name, proof } = &req {
            // Asked before the asker has registered keys: recovering them is the point.
            self.get_recovery(name, proof)
        } else if let Request::GetPolicy { org, version } = &req {
            // An org's policy is public and signed by its master: the widget shows it to a
            // visitor before the visitor has an account here (one is registered only to write).
            self.get_policy(org, *version)
        } else {
            match account {
                Account::Unregistered(_) => reject(
                    ErrorCode::NotRegistered,
                    "register this account first (`sealdesk register`)",
                ),
                Account::Registered(caller) => self.dispatch(caller, req).await,
            }
        };
        match result {
            Ok(r) => r,
            Err(refusal) => {
                debug!(code = ?refusal.code, message = %refusal.message, "request refused");
                refusal.into_response()
            }
        }
    }

    /// Serves a registered account's request.
    async fn dispatch(&self, caller: &Caller, req: Request) -> Reply {
        match req {
            // Handled before dispatch: `Register` by `handle`, `Send` by the session.
            Request::Register | Request::Send(_) => {
                reject(ErrorCode::BadRequest, "this request is not served here")
            }
            Request::GetCard { name } => self.get_card(&name),
            Request::PublishPolicy(p) => self.publish_policy(caller, p).await,
            Request::GetPolicy { org, version } => self.get_policy(&org, version),
            Request::PublishCertificate(c) => self.publish_certificate(caller, c).await,
            Request::RebindAgent(c) => self.rebind_agent(caller, c).await,
            Request::PutRecovery(r) => self.put_recovery(caller, r).await,
            Request::GetRecovery { name, proof } => self.get_recovery(&name, &proof),
            Request::GetCertificate { org, agent } => self.get_certificate(&org, &agent),
            Request::OpenConversation { org, conversation } => {
                self.open_conversation(caller, &org, conversation, None)
                    .await
            }
            Request::OpenConversationWithToken {
                org,
                conversation,
                token,
            } => {
                self.open_conversation(caller, &org, conversation, Some(token))
                    .await
            }
            Request::PublishWebKey(c) => self.publish_web_key(caller, c).await,
            Request::RevokeWebKey(r) => self.revoke_web_key(caller, r).await,
            Request::Transfer {
                conversation,
                agent,
            } => self.transfer(caller, conversation, &agent).await,
            Request::ListConversations => self.list_conversations(caller),
            Request::OrgConversations { org } => self.org_conversations(caller, &org),
            Request::PutEpoch(r) => self.put_epoch(caller, r).await,
            Request::PutHandOff(h) => self.put_handoff(caller, h).await,
            Request::History {
                conversation,
                after,
                limit,
            } => self.history(caller, conversation, after, limit),
            Request::Delivered { conversation, seq } => self.delivered(caller, conversation, seq),
            Request::SubmitRelease(r) => self.submit_release(caller, r).await,
            Request::SubmitShares { request, shares } => {
                self.submit_shares(caller, request, shares).await
            }
            Request::RefuseRelease { request, reason } => {
                self.refuse_release(caller, request, reason).await
            }
            Request::PendingReleases => self.pending_releases(caller),
            Request::ReleaseStatus { request } => self.release_status(caller, request).await,
            Request::OpenTicket(t) => self.open_ticket(caller, t).await,
            Request::Decide(d) => self.decide(caller, d).await,
            Request::CloseTicket(c) => self.close_ticket(caller, c).await,
            Request::ListTickets => self.list_tickets(caller),
            Request::ShareConsent(t) => self.share_consent(caller, t).await,
            Request::AppendAudit(e) => self.append_audit(caller, e).await,
            Request::GetTreeHead => self.tree_head().map(Response::TreeHead),
            Request::GetEntries { from, limit } => self.entries(caller, from, limit),
            Request::GetInclusion { index, size } => self.inclusion(index, size),
            Request::GetConsistency { old, new } => self.consistency(old, new),
            Request::Erase(r) => self.erase(caller, r).await,
            Request::Cosign(c) => self.cosign(caller, c).await,
            Request::GetWitnessedHead { org } => self.witnessed_head(&org),
            Request::Signal(env) => self.signal(caller, env),
            // The session registers its connection once this answers `ok` (session.rs).
            Request::WatchAudit | Request::WatchAgentKeys => Ok(Response::Ok),
            Request::Block(b) => self.block(caller, b).await,
            Request::Unblock(u) => self.unblock(caller, u).await,
            Request::ListBlocks { org } => self.list_blocks(caller, &org),
            Request::AttachmentPut {
                conversation,
                attachment,
                size,
                index,
                data,
            } => {
                self.attachment_put(caller, conversation, attachment, size, index, data)
                    .await
            }
            Request::AttachmentGet {
                conversation,
                attachment,
                index,
            } => self.attachment_get(caller, conversation, attachment, index),
        }
    }

    // ---- pushes ----------------------------------------------------------------------------

    fn push(&self, who: &SigningPublicKey, push: Push) {
        let release = cluster::release_of(&push);
        match wire::encode(&Frame::Push(push)) {
            Ok(bytes) => {
                self.hub.push(who, &Bytes::from(bytes.clone()));
                // In a cluster, to the account's connections on the other nodes too.
                self.forward(who, release.as_ref(), &bytes);
            }
            Err(e) => warn!(error = %e, "push too large to send; the client will fetch it"),
        }
    }

    /// Pushes `item`, durable, to every connection of `audience` on this node but the one
    /// whose request caused it (`origin`, answered by its response): the account's other
    /// connections — its other devices and tabs — get its messages, epoch records and
    /// consents at once, and take them as their own (PROTOCOL.md §13.11). In a cluster the
    /// other nodes push it from their cursors ([`cluster`]).
    fn push_item(&self, item: &Sequenced, audience: &[SigningPublicKey], origin: Origin) {
        // Only ever called once the item's write is durable: from here on it may be served.
        let _ = self.convs.mark_durable(&item.conversation, item.seq);
        // In a cluster, unless a read from the cursor pushed it already.
        if self.store_shared
            && !self
                .cursors
                .pushed_locally(item.conversation, item.seq)
                .unwrap_or(true)
        {
            return;
        }
        let Ok(bytes) = wire::encode(&Frame::Push(Push::Item(item.clone()))) else {
            warn!("item too large to push; recipients will page it");
            return;
        };
        let bytes = Bytes::from(bytes);
        for who in audience {
            match origin.connection {
                Some(skip) if *who == origin.key => {
                    self.hub.push_except(who, &bytes, skip);
                }
                _ => {
                    self.hub.push(who, &bytes);
                }
            }
        }
    }
}

/// **Test-only fault injection**, like the client's `SEALDESK_FAILPOINT`: when this variable
/// names `point`, the relay exits there with status [`FAILPOINT_EXIT_CODE`], as if killed, so a
/// test can restart it over the same data directory. Read only in a build with the test hooks
/// (`crate::test_hooks`): a normal build never exits at a fail point. The one
/// point, `relay-after-audit-append`, is after an audit entry (and its notice) became durable
/// and before the relay answers `appended`.
pub const FAILPOINT_ENV: &str = "SEALDESK_TEST_RELAY_FAILPOINT";

/// Exit status of a relay stopped at a fail point (see [`FAILPOINT_ENV`]).
pub const FAILPOINT_EXIT_CODE: i32 = 86;

fn relay_fail_point(point: &str) {
    if crate::test_hooks::var_os(FAILPOINT_ENV).is_some_and(|v| v == point) {
        warn!(
            point,
            "fail point reached; exiting as if killed (test only)"
        );
        std::process::exit(FAILPOINT_EXIT_CODE);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::path::Path;

    use super::*;
    use crate::{config::RelayConfig, store::SledStore};

    /// Starts a relay over `dir` and stops it at once; returns what starting returned.
    async fn start_and_stop(dir: &Path) -> crate::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = RelayConfig {
            listen: listener.local_addr().unwrap(),
            data_dir: dir.to_owned(),
            ..RelayConfig::default()
        };
        crate::serve(listener, config, async {}).await
    }

    fn stored_identity(dir: &Path) -> Option<Vec<u8>> {
        SledStore::open(dir)
            .unwrap()
            .get(Collection::Meta, RELAY_IDENTITY)
            .unwrap()
    }

    fn store_identity(dir: &Path, bytes: &[u8]) {
        let store = SledStore::open(dir).unwrap();
        store.put(Collection::Meta, RELAY_IDENTITY, bytes).unwrap();
        store.flush().unwrap();
    }

    #[tokio::test]
    async fn a_missing_identity_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        start_and_stop(dir.path()).await.unwrap();
        let first = stored_identity(dir.path()).expect("the key was generated");
        assert_eq!(first.len(), 64);
        start_and_stop(dir.path()).await.unwrap();
        assert_eq!(
            stored_identity(dir.path()),
            Some(first),
            "the key was replaced"
        );
    }

    #[tokio::test]
    async fn a_malformed_identity_stops_the_start_and_is_not_overwritten() {
        for bad in [&[][..], &[7u8; 12][..], &[7u8; 63][..], &[7u8; 65][..]] {
            let dir = tempfile::tempdir().unwrap();
            store_identity(dir.path(), bad);
            match start_and_stop(dir.path()).await {
                Err(crate::Error::CorruptIdentity { location, detail }) => {
                    assert!(location.contains("relay-identity"), "{location}");
                    assert!(location.contains("meta"), "{location}");
                    assert!(
                        location.contains(&dir.path().display().to_string()),
                        "{location}"
                    );
                    assert_eq!(detail, format!("{} bytes stored, 64 expected", bad.len()));
                }
                other => panic!(
                    "a relay started over a damaged key ({} bytes): {other:?}",
                    bad.len()
                ),
            }
            assert_eq!(
                stored_identity(dir.path()).as_deref(),
                Some(bad),
                "the damaged key was overwritten"
            );
        }
    }
    #[tokio::test]
    async fn an_undecodable_audit_entry_stops_the_start_and_is_named() {
        let dir = tempfile::tempdir().unwrap();
        start_and_stop(dir.path()).await.unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            store
                .put(Collection::AuditLeaves, &3u64.to_be_bytes(), b"not cbor")
                .unwrap();
            store.flush().unwrap();
        }
        match start_and_stop(dir.path()).await {
            Err(crate::Error::Corrupt(what)) => {
                assert_eq!(what, "audit entry 3 (in the `audit_leaves` tree)");
            }
            other => panic!("a relay started over a damaged audit log: {other:?}"),
        }
    }
}
