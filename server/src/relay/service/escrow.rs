//! Escrow plumbing: consents shared in conversations (and the index revocations are checked
//! against), release requests and the trustees' shares or refusals, dispute tickets and
//! arbiters' decisions. The relay routes and stores these; it cannot open any of them.

use sealdesk_protocol::signed::Signed as _;
use sealdesk_protocol::{
    ids::{ConversationId, TokenId},
    keys::SigningPublicKey,
    policy::VerifiedPolicy,
    release::{
        ArbiterDecision, ClosedBecause, ConsentToken, DisputeTicket, ReleaseRequest, ReleasedShare,
        approval_impossible,
    },
    wire::{self, ErrorCode, Item, PendingRelease, Push, ReleaseProgress, Response, TicketState},
};
use tracing::{info, warn};

use super::{
    Caller, Origin, Reject, Reply, Service,
    cluster::until_stored,
    dec, enc,
    keys::{CONSENT_INDEX_FILLED, consent_key},
    lock, reject,
    table::MAX_PAGE,
};
use crate::{
    relay::state::{ReleaseState, StoredItem},
    store::{Batch, Collection, Store},
};

/// Indexes the consents shared before the relay kept an index of them (see [`consent_key`]),
/// once: a walk over every stored item, after which [`CONSENT_INDEX_FILLED`] is set and
/// later starts skip it. So a revocation reads the index only, never a conversation.
pub(super) fn fill_consent_index(store: &dyn Store) -> crate::Result<()> {
    if store.get(Collection::Meta, CONSENT_INDEX_FILLED)?.is_some() {
        return Ok(());
    }
    let mut start = Vec::new();
    let mut filled = 0usize;
    loop {
        let page = store.scan_prefix_from(Collection::Messages, &[], &start, MAX_PAGE)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        let mut next = last.clone();
        next.push(0);
        for (_, v) in page {
            let Ok(stored) = wire::from_cbor::<StoredItem>(&v, "item") else {
                warn!("an undecodable item skipped while indexing consents");
                continue;
            };
            if let Item::Consent(t) = &stored.sequenced.item {
                let k = consent_key(&stored.sequenced.conversation, &t.id);
                if store.get(Collection::Meta, &k)?.is_none() {
                    store.put(Collection::Meta, &k, t.customer.as_bytes())?;
                    filled += 1;
                }
            }
        }
        start = next;
    }
    store.put(Collection::Meta, CONSENT_INDEX_FILLED, b"1")?;
    store.flush()?;
    info!(filled, "consent index filled");
    Ok(())
}

impl Service {
    pub(super) async fn share_consent(&self, caller: &Caller, token: ConsentToken) -> Reply {
        // Refused by another node's append, the consent and its index entry were not stored:
        // shared again from the reloaded conversation (the index checked again with it).
        until_stored(|| self.share_consent_once(caller, token.clone())).await
    }

    /// One attempt of [`Self::share_consent`]: `None` if the store refused its item.
    async fn share_consent_once(
        &self,
        caller: &Caller,
        token: ConsentToken,
    ) -> Result<Option<Response>, Reject> {
        let s = self.conv_for(caller, &token.conversation)?;
        if s.customer != caller.key() || token.customer != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "only the conversation's customer shares consent",
            );
        }
        if token.org != s.org {
            return reject(ErrorCode::BadRequest, "the consent names another org");
        }
        token.check_signature()?;
        let policy = self.policies.current(&s.org)?;
        let master = policy.master_key();
        let conversation = token.conversation;
        let index = consent_key(&conversation, &token.id);
        let signer = token.customer;
        // Conversation-level item: readable by the customer, and by the master like all of its
        // org's items. Stored with the consent's index entry (its signer, who alone may revoke
        // it), in one transaction; the write lock makes "not shared yet" and the store atomic.
        let (item, audience) = {
            let _w = lock(&self.writes)?;
            // The index (filled at start-up for consents shared before it existed) says
            // whether this id was shared in this conversation.
            if self.store.get(Collection::Meta, &index)?.is_some() {
                return reject(
                    ErrorCode::IdTaken,
                    "a consent with this id was already shared in this conversation",
                );
            }
            self.convs.append_item_with(
                &conversation,
                None,
                Item::Consent(token),
                None,
                Batch::of_put(Collection::Meta, &index, signer.as_bytes()),
                |_| {},
            )?
        };
        self.commit.durable().await?;
        if self.item_refused(&item, None)? {
            return Ok(None);
        }
        // To the customer's other connections too (another device or tab of the account
        // lists it at once), never back to the one that shared it.
        self.push_item(&item, &audience, caller.origin());
        self.push_item(&item, &[master], caller.origin());
        // The master is no member of the conversation: other nodes, which push its items from
        // their cursors to the members connected there, would never push it this one. Stored
        // too (committed before the answer), for a node that misses the forward to make it up
        // (`consent_makeup`).
        self.forward_item(&master, &item);
        if self.record_master_push(&master, &item)
            && let Err(e) = self.commit.durable().await
        {
            warn!(error = %e, "committing a master push failed");
        }
        Ok(Some(Response::stored(item.seq)))
    }

    /// The signer of consent `id` shared in conversation `c` (through `ShareConsent`), if the
    /// relay has seen it.
    pub(super) fn consent_signer(
        &self,
        c: &ConversationId,
        id: &TokenId,
    ) -> Result<Option<SigningPublicKey>, Reject> {
        // Consents shared by a relay build that kept no index were indexed at start-up
        // (`fill_consent_index`): the index is the whole answer.
        match self.store.get(Collection::Meta, &consent_key(c, id))? {
            Some(k) => Ok(Some(SigningPublicKey::try_from(k.as_slice())?)),
            None => Ok(None),
        }
    }

    /// A consent revocation may be logged only by the consent's signer (the conversation's
    /// customer, who shared it), for a consent the relay has seen in that conversation.
    pub(super) fn check_revocation(
        &self,
        caller: &Caller,
        c: &ConversationId,
        consent: &TokenId,
    ) -> Result<(), Reject> {
        let s = self.conv_for(caller, c)?;
        if s.customer != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "only the conversation's customer revokes consent",
            );
        }
        match self.consent_signer(c, consent)? {
            None => reject(
                ErrorCode::NotFound,
                "no consent with this id was shared in this conversation; only a consent the \
                 relay has seen (`sealdesk consent grant` shares it) can be revoked",
            ),
            Some(signer) if signer != caller.key() => reject(
                ErrorCode::Forbidden,
                "only the consent's signer may revoke it",
            ),
            Some(_) => Ok(()),
        }
    }

    pub(super) fn pending_for(&self, r: &ReleaseRequest) -> Result<PendingRelease, Reject> {
        let mut epochs = Vec::new();
        for e in r.epochs.iter().take(1024) {
            if let Ok(rec) = self.convs.epoch_record(&r.conversation, e) {
                epochs.push(rec);
            }
        }
        Ok(PendingRelease {
            request: r.clone(),
            epochs,
        })
    }

    pub(super) async fn submit_release(&self, caller: &Caller, r: ReleaseRequest) -> Reply {
        let policy = self.policies.current(&r.org)?;
        if policy.master_key() != caller.key() || r.master != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "only the org's master may request a release",
            );
        }
        r.check_signature()?;
        // A justification for another conversation or other epochs would have the trustees
        // refuse it (or, signed as the master wrote it, release and spend what the justification
        // names instead): refuse it before any trustee sees it.
        if let Err(refusal) = r.check_scope() {
            return reject(
                ErrorCode::BadRequest,
                format!("the release request does not match its justification: {refusal}"),
            );
        }
        let key = r.id.to_bytes();
        // A request resubmitted as it is (a resumed unlock) is answered `id_taken` below even
        // once its ticket closed; a new request under a closed ticket is refused.
        if self.store.get(Collection::Releases, &key)?.is_none() {
            self.check_ticket_open(&r)?;
        }
        let state = ReleaseState {
            request: r.clone(),
            shares: vec![],
            refusals: vec![],
            answered: Default::default(),
        };
        if !self
            .store
            .insert_if_absent(Collection::Releases, &key, &enc(&state)?)?
        {
            return reject(ErrorCode::IdTaken, "a release request with this id exists");
        }
        self.commit.durable().await?;
        let pending = self.pending_for(&r)?;
        for t in &policy.trustees {
            self.push(&t.signing_key, Push::Release(pending.clone()));
        }
        info!(request = %r.id, conversation = %r.conversation, "release request queued for trustees");
        Ok(Response::Ok)
    }

    pub(super) fn release_state(&self, id: &TokenId) -> Result<ReleaseState, Reject> {
        match self.store.get(Collection::Releases, id.as_bytes())? {
            Some(b) => dec(&b, "release"),
            None => reject(ErrorCode::NotFound, "no such release request"),
        }
    }

    pub(super) fn trustee_of(&self, caller: &Caller, org: &str) -> Result<VerifiedPolicy, Reject> {
        let policy = self.policies.current(org)?;
        if policy.trustee_index(&caller.key()).is_none() {
            return reject(ErrorCode::Forbidden, "you are not a trustee of this org");
        }
        Ok(policy)
    }

    /// Adds a trustee's answer to a release request: a read-modify-write of its record
    /// ([`Service::update_record`]), so that two trustees answering through two nodes at once
    /// both count.
    pub(super) async fn answer_release(
        &self,
        caller: &Caller,
        id: TokenId,
        f: impl Fn(&mut ReleaseState) -> Result<(), Reject>,
    ) -> Reply {
        let master = self.update_record(
            Collection::Releases,
            id.as_bytes(),
            "this release request",
            |before| {
                let Some(before) = before else {
                    return reject(ErrorCode::NotFound, "no such release request");
                };
                let mut st: ReleaseState = dec(before, "release")?;
                self.trustee_of(caller, &st.request.org)?;
                if !st.answered.insert(caller.key()) {
                    return reject(
                        ErrorCode::AlreadyAnswered,
                        "you already answered this request",
                    );
                }
                f(&mut st)?;
                Ok((Some(enc(&st)?), st.request.master))
            },
        )?;
        self.commit.durable().await?;
        self.push(&master, Push::ReleaseUpdate { request: id });
        Ok(Response::Ok)
    }

    pub(super) async fn submit_shares(
        &self,
        caller: &Caller,
        id: TokenId,
        shares: Vec<ReleasedShare>,
    ) -> Reply {
        let me = caller.key();
        // A share is accepted only once its release entry is in the log: the trustee must log
        // before it releases, and the relay holds it to that.
        let logged = {
            let st = self.release_state(&id)?;
            self.check_ticket_open(&st.request)?;
            let hash = st.request.hash();
            self.has_release_entry(&hash, &me)?
        };
        if !logged {
            return reject(
                ErrorCode::BadRequest,
                "append the release entry to the audit log first",
            );
        }
        for s in &shares {
            if s.trustee != me {
                return reject(ErrorCode::Forbidden, "shares must be your own");
            }
            s.check_signature()?;
        }
        self.answer_release(caller, id, |st| {
            st.shares.extend(shares.iter().cloned());
            Ok(())
        })
        .await
    }

    pub(super) async fn refuse_release(
        &self,
        caller: &Caller,
        id: TokenId,
        reason: String,
    ) -> Reply {
        let name = caller.card.name.clone();
        let reason: String = reason.chars().take(500).collect();
        self.answer_release(caller, id, |st| {
            st.refusals.push((name.clone(), reason.clone()));
            Ok(())
        })
        .await
    }

    pub(super) fn pending_releases(&self, caller: &Caller) -> Reply {
        let mut out = Vec::new();
        for (_, v) in self.store.scan_prefix(Collection::Releases, &[])? {
            let st: ReleaseState = dec(&v, "release")?;
            if st.answered.contains(&caller.key()) || self.check_ticket_open(&st.request).is_err() {
                continue;
            }
            if let Ok(Some(p)) = self.policies.get(&st.request.org, None)
                && p.trustee_index(&caller.key()).is_some()
            {
                out.push(self.pending_for(&st.request)?);
            }
            if out.len() >= 64 {
                break;
            }
        }
        Ok(Response::Releases(out))
    }

    /// The master's view of a release. Once it holds the shares of enough trustees, the
    /// master has collected the release: a dispute ticket that justified it closes.
    pub(super) async fn release_status(&self, caller: &Caller, id: TokenId) -> Reply {
        let st = self.release_state(&id)?;
        if st.request.master != caller.key() {
            return reject(ErrorCode::NotFound, "no such release request");
        }
        let trustees: std::collections::HashSet<_> = st.shares.iter().map(|s| s.trustee).collect();
        self.close_if_collected(&st.request, trustees.len()).await?;
        Ok(Response::Progress(ReleaseProgress {
            shares: st.shares,
            refusals: st.refusals,
        }))
    }

    pub(super) fn notify_ticket(&self, policy: &VerifiedPolicy, st: &TicketState) {
        for a in &policy.arbiters {
            self.push(&a.signing_key, Push::Ticket(st.clone()));
        }
        self.push(&policy.master_key(), Push::Ticket(st.clone()));
    }

    pub(super) async fn open_ticket(&self, caller: &Caller, t: DisputeTicket) -> Reply {
        let policy = self.policies.current(&t.org)?;
        if policy.master_key() != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "only the org's master opens dispute tickets",
            );
        }
        t.verify(&policy)?;
        if self
            .convs
            .get(&t.conversation)?
            .is_none_or(|s| s.org != t.org)
        {
            return reject(ErrorCode::NotFound, "no such conversation in this org");
        }
        let st = TicketState {
            ticket: t,
            decisions: vec![],
            closed: None,
        };
        if !self
            .store
            .insert_if_absent(Collection::Tickets, st.ticket.id.as_bytes(), &enc(&st)?)?
        {
            return reject(ErrorCode::IdTaken, "a ticket with this id exists");
        }
        self.commit.durable().await?;
        self.notify_ticket(&policy, &st);
        Ok(Response::Ok)
    }

    /// An arbiter's decision; a rejection that leaves too few arbiters to approve closes the
    /// ticket. The ticket is a read-modify-write record ([`Service::update_record`]): two
    /// arbiters deciding through two relay nodes at once both count. A closing rejection is
    /// stored with the close, in the audit log's transaction, conditional on the record read
    /// (`Service::close_locked`): a decision another node stores in that instant refuses the
    /// close, and the decision is made again from a fresh read.
    pub(super) async fn decide(&self, caller: &Caller, d: ArbiterDecision) -> Reply {
        // A closing rejection whose close notice another node's append refused was not stored
        // (the decision went with the close): decided again from a fresh read.
        until_stored(|| self.decide_once(caller, &d)).await
    }

    /// One attempt of [`Self::decide`]: `None` if the store refused the close it made.
    async fn decide_once(
        &self,
        caller: &Caller,
        d: &ArbiterDecision,
    ) -> Result<Option<Response>, Reject> {
        let (policy, st, closed) = self.update_record(
            Collection::Tickets,
            d.ticket.as_bytes(),
            "this dispute ticket",
            |before| {
                let Some(before) = before else {
                    return reject(ErrorCode::NotFound, "no such ticket");
                };
                let mut st: TicketState = dec(before, "ticket")?;
                let policy = self.policies.current(&st.ticket.org)?;
                if d.arbiter != caller.key() {
                    return reject(ErrorCode::Forbidden, "decisions must be your own");
                }
                d.verify(&policy, &st.ticket)?;
                if st.closed.is_some() {
                    return reject(ErrorCode::TicketClosed, "the ticket is closed");
                }
                if st.decisions.iter().any(|x| x.arbiter == d.arbiter) {
                    return reject(
                        ErrorCode::AlreadyAnswered,
                        "you already decided on this ticket",
                    );
                }
                st.decisions.push(d.clone());
                if approval_impossible(&policy, &st.ticket, &st.decisions) {
                    // The close writes the ticket itself, conditional on `before` too.
                    let closed =
                        self.close_locked(st.clone(), before, ClosedBecause::Rejected, None)?;
                    Ok((None, (policy, st, Some(closed))))
                } else {
                    Ok((Some(enc(&st)?), (policy, st, None)))
                }
            },
        )?;
        let closed = match closed {
            // The ticket changed since it was read (or the log index was taken): decided again
            // from a fresh read.
            Some(None) => return Ok(None),
            Some(Some(c)) => Some(c),
            None => None,
        };
        self.commit.durable().await?;
        if let Some(c) = &closed
            && self.close_refused(c)?
        {
            return Ok(None);
        }
        match closed {
            Some(c) => self.announce_close(&policy, c, Origin::relay(self.keys.signing_public())),
            None => self.notify_ticket(&policy, &st),
        }
        Ok(Some(Response::Ok))
    }

    pub(super) fn list_tickets(&self, caller: &Caller) -> Reply {
        let mut out = Vec::new();
        for (_, v) in self.store.scan_prefix(Collection::Tickets, &[])? {
            let st: TicketState = dec(&v, "ticket")?;
            let Ok(Some(p)) = self.policies.get(&st.ticket.org, None) else {
                continue;
            };
            if p.master_key() == caller.key() || p.arbiter(&caller.key()).is_some() {
                out.push(st);
            }
        }
        Ok(Response::Tickets(out))
    }
}
