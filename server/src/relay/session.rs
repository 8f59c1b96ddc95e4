//! One authenticated session: challenge, answer, then requests in order (messages pipelined).
//!
//! The session's standing is a type, [`Account`]: `Unregistered(card)` after a good answer
//! for a card not registered here (only `Register` and `GetRecovery` are served),
//! `Registered(Caller)` after it, or for a registered card. Request handlers take the [`Caller`](super::service::Caller)
//! token, which only the service makes.
//!
//! ```text
//!   ExpectAuth ──Auth ok──▶ Serving ──close / error──▶ (hub leave)
//!        ├── anything else, bad signature, timeout ──▶ close 4101 / 4001
//!        ├── another wire version ──▶ close 4103
//!        └── (before the challenge) the source used up its failed authentications
//!            ──▶ error rate_limited, close 4104
//!   Serving: a request with a bad field ──▶ BadField response, go on (at most
//!              MAX_BAD_FIELDS times; the next one ──▶ close 4102)
//!            a frame that does not decode / is not a request ──▶ close 4102
//!            another wire version ──▶ close 4103
//! ```
//!
//! Every close code is listed in PROTOCOL.md §13.6.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use rand_core::Rng as _;
use sealdesk_protocol::wire::{
    self, Challenge, ErrorCode, Frame, Inbound, Request, Response, Welcome,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument as _, debug, info_span};

use super::service::{Account, Reject, Service, Staged, limited};
use crate::connection::{CloseReason, Connection, Outbox};

/// Close code for a failed or missing authentication.
pub(crate) const AUTH_FAILED: CloseReason = CloseReason::Application {
    code: super::CLOSE_AUTH_FAILED,
    reason: "authentication failed",
};
/// Close code for a frame that does not decode, or a frame type a client may not send.
pub(crate) const BAD_FRAME: CloseReason = CloseReason::Application {
    code: super::CLOSE_BAD_FRAME,
    reason: "malformed frame",
};
/// Close code for a frame whose version byte is not [`wire::WIRE_VERSION`].
pub(crate) const UNKNOWN_VERSION: CloseReason = CloseReason::Application {
    code: super::CLOSE_UNKNOWN_VERSION,
    reason: "unsupported wire version; this relay speaks version 1",
};

/// Close code for a source over its own failed-authentication limit.
pub(crate) const RATE_LIMITED: CloseReason = CloseReason::Application {
    code: super::CLOSE_RATE_LIMITED,
    reason: "too many failed authentications from this address; retry later",
};
/// Close code for a source without a bucket of its own, refused by the limit's cap on tracked
/// addresses (new addresses share one bucket, used up): this address itself did nothing wrong,
/// so the close says what the refusal before it says ([`crate::limits::describe_at_cap`]).
pub(crate) const RATE_LIMITED_AT_CAP: CloseReason = CloseReason::Application {
    code: super::CLOSE_RATE_LIMITED,
    reason: "too many failed authentications from new addresses right now; retry later",
};

pub(crate) async fn run(svc: Arc<Service>, mut conn: Connection, peer: SocketAddr) {
    let span = info_span!("session", id = conn.id(), %peer);
    async move {
        let source = peer.ip();
        if let Err(l) = svc.guard.may_authenticate(source) {
            // Refused before the challenge: the answer says why and when, the close ends it.
            debug!(
                at_cap = l.at_cap,
                "failed-authentication limit; refusing the session"
            );
            let close = if l.at_cap {
                RATE_LIMITED_AT_CAP
            } else {
                RATE_LIMITED
            };
            let refusal = Frame::Response {
                id: 0,
                body: limited(l).into_response(),
            };
            if let Ok(b) = wire::encode(&refusal) {
                let _ = conn.send(b).await;
            }
            let _ = conn.outbox().finish(close).await;
            return;
        }
        let Some(account) = authenticate(&svc, &mut conn, source).await else {
            return;
        };
        let me = account.card().signing_key;
        let agent = agent_name(&account);
        if agent.is_some() {
            hold_at_sign_in_gate().await;
        }
        svc.hub.join(me, conn.outbox(), agent);
        if let (Some(_), Account::Registered(caller)) = (agent, &account)
            && let Some(close) = replaced_while_signing_in(&svc, caller)
        {
            let _ = conn.outbox().finish(close).await;
            svc.hub.leave(&me, conn.id());
            return;
        }
        if let Account::Registered(caller) = &account {
            // A quota it is concerned by stands at the warning level: told again at sign-in.
            for frame in svc.quota_warnings_at_sign_in(caller) {
                if let Ok(b) = wire::encode(&frame) {
                    let _ = conn.send(b).await;
                }
            }
        }
        serve(&svc, &mut conn, account, source).await;
        svc.hub.leave(&me, conn.id());
    }
    .instrument(span)
    .await;
}

/// Environment variable naming a file: while it exists, a session that has signed in
/// registered as an agent (its card read, the welcome sent) waits before it joins the hub, and
/// one that registered as an agent in the session (its card stored) waits before the hub notes
/// it as acting for the name, so a test can re-certify the agent name in that gap
/// (`session::replaced_while_signing_in`). Sessions of other roles are not held: the master that
/// re-certifies goes on meanwhile. Never set it in production: a gate left closed holds every
/// agent's sign-in; a build without the test hooks ignores it ([`crate::test_hooks`]).
pub const SIGN_IN_GATE_ENV: &str = "SEALDESK_TEST_SIGN_IN_GATE";

/// **Test-only**: environment variable naming a file: while it exists, the re-read of an
/// agent's card once its session joined the hub (`session::replaced_while_signing_in`, at
/// sign-in and after registering) fails, as it does when the store cannot answer, so a test
/// can see the session closed `Internal` rather than left serving. A file rather than a
/// switch, so that the test's agent registers before the reads fail. Never set it in
/// production; a build without the test hooks ignores it ([`crate::test_hooks`]).
pub const FAIL_CARD_REREADS_ENV: &str = "SEALDESK_TEST_FAIL_CARD_REREADS";

/// Waits while the [sign-in gate](SIGN_IN_GATE_ENV) is closed (test only). Polls with a
/// tokio sleep rather than blocking: the held session runs on the relay's runtime. The
/// variable is read once per process, not at every agent's sign-in.
async fn hold_at_sign_in_gate() {
    static GATE: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let Some(gate) = GATE
        .get_or_init(|| crate::test_hooks::var_os(SIGN_IN_GATE_ENV).map(std::path::PathBuf::from))
    else {
        return;
    };
    if !gate.exists() {
        return;
    }
    tracing::warn!("a sign-in held at its gate (test only)");
    while gate.exists() {
        tokio::time::sleep(crate::test_hooks::GATE_POLL).await;
    }
}

/// Whether the [card re-reads fail](FAIL_CARD_REREADS_ENV) now (test only). The variable is
/// read once per process.
fn card_rereads_fail() -> bool {
    static FILE: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        crate::test_hooks::var_os(FAIL_CARD_REREADS_ENV).map(std::path::PathBuf::from)
    })
    .as_deref()
    .is_some_and(std::path::Path::exists)
}

/// The close for a session that signed in registered as an agent and whose card was replaced
/// before it joined the hub: [`CLOSE_KEY_REPLACED`](super::service::CLOSE_KEY_REPLACED) if
/// the key's card is no longer the one it signed in with, `Internal` if the store cannot
/// say; `None` if the card is still the key's.
///
/// The card was read at sign-in (`Service::authenticated`), and a re-certification closes
/// the old key's sessions it finds in the hub (`Hub::close_agent`) only after it stored the
/// new card and deleted the old one (`recovery.rs`: store, durable, then close). A close that
/// ran between that read and this session's join found nothing to close. So the session,
/// having joined, reads the card once more. Either the re-certification's store write came
/// before this read, and the read sees the old card gone; or it came after, and then its
/// close, which follows its write, follows this session's join too, and finds the session
/// in the hub. Either way the session does not serve with a replaced card.
///
/// Only agent sessions: a card is replaced (or deleted) only by an agent's re-certification,
/// the cards of other roles never change once registered, so a re-read for them would be a
/// store read at every sign-in that can never find anything; and only the sessions that act
/// for an agent name are the ones a re-certification's close is meant for.
fn replaced_while_signing_in(
    svc: &Service,
    caller: &super::service::Caller,
) -> Option<CloseReason> {
    let current = if card_rereads_fail() {
        Err("failed on purpose (test only)".to_owned())
    } else {
        svc.card_is_current(caller).map_err(|e| e.message)
    };
    match current {
        Ok(true) => None,
        Ok(false) => {
            debug!("the card was replaced while signing in; closing");
            Some(super::service::CLOSE_KEY_REPLACED)
        }
        Err(why) => {
            tracing::warn!(%why, "the card could not be read again after sign-in; closing");
            Some(CloseReason::Internal)
        }
    }
}

/// The agent name a session acts for, if it is a registered agent's: the hub keeps it with
/// the connection, which a close for a key re-certified away then reaches (and a cluster node
/// re-checks against the name's current key, `service::cluster`); an unregistered session of
/// the same key is never taken for it (`Hub::close_agent`).
fn agent_name(account: &Account) -> Option<&str> {
    match account {
        Account::Registered(caller) if caller.card.role == sealdesk_protocol::card::Role::Agent => {
            Some(&caller.card.name)
        }
        _ => None,
    }
}

async fn authenticate(svc: &Service, conn: &mut Connection, source: IpAddr) -> Option<Account> {
    let mut nonce = [0u8; 32];
    rand::rng().fill_bytes(&mut nonce);
    let challenge = Challenge {
        relay_key: svc.keys.signing_public(),
        nonce,
    };
    let hello = wire::encode(&Frame::Challenge(challenge.clone())).ok()?;
    conn.send(hello).await.ok()?;
    let timeout = conn.limits().auth_timeout();
    let answer = match tokio::time::timeout(timeout, conn.recv()).await {
        Err(_) => {
            svc.metrics.auth_failures.inc();
            svc.guard.auth_failed(source);
            let _ = conn.outbox().finish(CloseReason::AuthTimeout).await;
            return None;
        }
        Ok(Ok(Some(bytes))) => bytes,
        Ok(_) => return None,
    };
    let card = match wire::decode(&answer) {
        Ok(Frame::Auth(a)) => a.verify(&challenge).ok().map(|c| c.into_card()),
        Err(sealdesk_protocol::Error::UnknownVersion(v)) => {
            // A client of another version cannot read a version-1 error: the close code says it.
            debug!(version = v, "unknown wire version before auth; closing");
            svc.metrics.auth_failures.inc();
            svc.guard.auth_failed(source);
            let _ = conn.outbox().finish(UNKNOWN_VERSION).await;
            return None;
        }
        _ => None,
    };
    let Some(card) = card else {
        svc.metrics.auth_failures.inc();
        svc.guard.auth_failed(source);
        let msg = Frame::Response {
            id: 0,
            body: Response::error(
                ErrorCode::Forbidden,
                "authentication failed: answer the challenge with a valid card and signature \
                 before anything else",
            ),
        };
        if let Ok(b) = wire::encode(&msg) {
            let _ = conn.send(b).await;
        }
        let _ = conn.outbox().finish(AUTH_FAILED).await;
        return None;
    };
    let account = svc.authenticated(card, conn.id());
    let registered = matches!(account, Account::Registered(_));
    let welcome = Frame::Welcome(Welcome {
        registered,
        log_key: svc.keys.signing_public(),
    });
    conn.send(wire::encode(&welcome).ok()?).await.ok()?;
    debug!(role = %account.card().role, registered, "authenticated");
    Some(account)
}

async fn serve(svc: &Arc<Service>, conn: &mut Connection, mut account: Account, source: IpAddr) {
    let mut pipeline = Pipeline::new(svc, conn);
    let mut bad_fields = 0usize;
    loop {
        let bytes = match conn.recv().await {
            Ok(Some(b)) => b,
            Ok(None) | Err(_) => break,
        };
        let (id, body) = match wire::decode_inbound(&bytes) {
            Ok(Inbound::Frame(Frame::Request { id, body })) => (id, body),
            Ok(Inbound::BadField(bad)) => {
                // The envelope is sound: answer this request, in order, and read on; but a
                // client that keeps sending them is broken (or probing), so only a few.
                bad_fields += 1;
                if bad_fields > super::MAX_BAD_FIELDS {
                    debug!(
                        size = bytes.len(),
                        "too many requests with a bad field; closing"
                    );
                    pipeline.drain().await;
                    let _ = conn.outbox().finish(BAD_FRAME).await;
                    return;
                }
                // The field name is the client's: log the request id and size only.
                debug!(id = bad.id, size = bytes.len(), "request with a bad field");
                pipeline.drain().await;
                let body = Response::error(ErrorCode::BadField, bad.message());
                let Some(frame) = encode_response(bad.id, body) else {
                    break;
                };
                if conn.send(frame).await.is_err() {
                    break;
                }
                continue;
            }
            Err(sealdesk_protocol::Error::UnknownVersion(v)) => {
                debug!(version = v, "unknown wire version; closing");
                pipeline.drain().await;
                let _ = conn.outbox().finish(UNKNOWN_VERSION).await;
                return;
            }
            Ok(Inbound::Frame(_)) | Err(_) => {
                debug!(size = bytes.len(), "unexpected or malformed frame; closing");
                pipeline.drain().await;
                let _ = conn.outbox().finish(BAD_FRAME).await;
                return;
            }
        };
        // Messages are pipelined: stored now, acknowledged by the pipeline after their flush,
        // while this loop reads on. Everything else waits for the messages before it, so a
        // session's requests still take effect, and are answered, in order.
        let body = match (&account, body) {
            (Account::Registered(caller), Request::Send(env)) => {
                let staged = Box::new(svc.stage_send(caller, env));
                pipeline.push(id, staged).await;
                continue;
            }
            (_, other) => other,
        };
        pipeline.drain().await;
        // A registration counts against its source's and the relay's registration rates;
        // one that registers nothing (refused, or the card was registered) gives them back.
        let registering = matches!(
            (&account, &body),
            (Account::Unregistered(_), Request::Register)
        );
        if registering && let Err(l) = svc.guard.registration(source) {
            let refusal = limited(l);
            debug!(code = ?refusal.code, message = %refusal.message, "registration refused");
            let Some(frame) = encode_response(id, refusal.into_response()) else {
                break;
            };
            if conn.send(frame).await.is_err() {
                break;
            }
            continue;
        }
        // Boxed: the session's future is allocated for its whole life, idle or not, and the
        // handler's future (the largest of all the requests') would otherwise be part of it.
        let watch = matches!(body, Request::WatchAudit);
        let watch_keys = matches!(body, Request::WatchAgentKeys);
        let body = Box::pin(svc.handle(&mut account, conn.id(), body)).await;
        if watch && matches!(body, Response::Ok) {
            svc.hub.watch_audit(conn.outbox());
        }
        if watch_keys && matches!(body, Response::Ok) {
            svc.hub.watch_agent_keys(conn.outbox().id());
        }
        if registering && !matches!(body, Response::Ok) {
            svc.guard.registration_not_made(source);
        }
        if registering && let Some(name) = agent_name(&account) {
            // The same gap as at sign-in: the card was stored (and made durable) before the
            // connection is noted as acting for the name, so a re-certification's close in
            // between found nothing; read the card again once noted.
            hold_at_sign_in_gate().await;
            svc.hub
                .note_agent(&account.card().signing_key, conn.id(), name);
            if let Account::Registered(caller) = &account
                && let Some(close) = replaced_while_signing_in(svc, caller)
            {
                let _ = conn.outbox().finish(close).await;
                return;
            }
        }
        let Some(frame) = encode_response(id, body) else {
            break;
        };
        if conn.send(frame).await.is_err() {
            break;
        }
    }
    // Acknowledge (and push) what was stored before the session ended.
    pipeline.drain().await;
}

/// The answer frame for request `id`, or a `TooLarge` error if the answer does not fit;
/// `None` only if even that cannot be encoded.
fn encode_response(id: u64, body: Response) -> Option<Vec<u8>> {
    wire::encode(&Frame::Response { id, body })
        .or_else(|_| {
            wire::encode(&Frame::Response {
                id,
                body: Response::error(
                    ErrorCode::TooLarge,
                    "the answer does not fit in one frame; ask for less",
                ),
            })
        })
        .ok()
}

/// A session's messages that are stored but not yet acknowledged, answered in order by a task
/// of their own (started with the first message, so idle sessions cost nothing). At most
/// `max_pipelined` wait at once; beyond that the session stops reading (back-pressure).
struct Pipeline {
    svc: Arc<Service>,
    outbox: Outbox,
    depth: usize,
    jobs: Option<mpsc::Sender<Job>>,
}

enum Job {
    /// Answer request `id` once its message is durable (or with the refusal).
    Answer(u64, Box<Result<Staged, Reject>>),
    /// Signals when every earlier job is answered.
    Barrier(oneshot::Sender<()>),
}

impl Pipeline {
    fn new(svc: &Arc<Service>, conn: &Connection) -> Self {
        Self {
            svc: Arc::clone(svc),
            outbox: conn.outbox(),
            depth: conn.limits().max_pipelined.max(1),
            jobs: None,
        }
    }

    async fn push(&mut self, id: u64, staged: Box<Result<Staged, Reject>>) {
        let jobs = self.jobs.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel(self.depth);
            tokio::spawn(answer(Arc::clone(&self.svc), self.outbox.clone(), rx).in_current_span());
            tx
        });
        // The answering task ends only when every sender is gone, so this cannot fail.
        let _ = jobs.send(Job::Answer(id, staged)).await;
    }

    /// Waits until every message pushed so far is answered.
    async fn drain(&mut self) {
        let Some(jobs) = &self.jobs else { return };
        let (tx, rx) = oneshot::channel();
        if jobs.send(Job::Barrier(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

async fn answer(svc: Arc<Service>, outbox: Outbox, mut jobs: mpsc::Receiver<Job>) {
    let mut open = true;
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Answer(id, staged) => {
                // Acknowledge even if the peer is gone: the push to the other members and the
                // durable watermark must still move on.
                let body = match *staged {
                    Ok(staged) => svc.acknowledge(staged).await,
                    Err(refusal) => {
                        debug!(code = ?refusal.code, message = %refusal.message, "request refused");
                        refusal.into_response()
                    }
                };
                if open {
                    open = match encode_response(id, body) {
                        Some(frame) => outbox.send(frame).await.is_ok(),
                        None => false,
                    };
                }
            }
            Job::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }
}
