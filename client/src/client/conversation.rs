//! Conversations from this account's side: opening one, sending in it (messages and read
//! receipts), the epoch this account sends in, rotation, and transfer to another agent.

use std::collections::BTreeMap;

use sealdesk_protocol::{
    card::{IdentityCard, Role, VerifiedCard},
    epoch::{EpochRecord, HandOff, NewEpoch},
    ids::ConversationId,
    message::{ContentKind, Envelope},
    policy::{AgentCertificate, OrgPolicy, VerifiedPolicy},
    release::ErasureRequest,
    wire::{ErrorCode, Item, Request, Response, Sequenced},
};
use serde::Serialize;

use super::paging::{Next, Paging};
use super::{Client, Event, HISTORY_PAGE, cannot_send, next_epoch};

/// How long a customer's session trusts its last check of a conversation's agent key before
/// asking the relay again (see `Client::check_agent_key`), in seconds.
pub const AGENT_CHECK_SECS: u64 = 300;

/// How many times one send takes a fresh counter in the same epoch after another process of
/// this account overtook it at the relay (see `Client::send_kind`), before it opens a new
/// epoch instead.
pub const OVERTAKEN_RETRIES: u32 = 8;
use crate::account::{ConvMeta, EpochState, EpochStatus, LogEntry, PinSource, PinStatus};
use crate::error::{ClientError, Result};
use crate::reply::{expect_ok, unexpected};
use crate::{now, quota::SendReport, rng};

/// The result of opening a conversation.
#[derive(Clone, Debug, Serialize)]
pub struct OpenedConversation {
    /// The conversation id.
    pub conversation: ConversationId,
    /// The org.
    pub org: String,
    /// The assigned agent.
    pub agent: String,
    /// The agent's fingerprint.
    pub agent_fingerprint: String,
    /// The policy in plain words.
    pub summary: String,
    /// The org master's fingerprint (pinned).
    pub org_fingerprint: String,
    /// Warnings (trust on first use, blocked keys).
    pub warnings: Vec<String>,
}

impl Client {
    /// Customer: opens a conversation with `org`. Verifies the policy (against the pinned
    /// master, or `fingerprint`, or trust on first use with a warning), the assigned agent's
    /// certificate, then creates and stores epoch 0.
    ///
    /// # Errors
    /// [`ClientError::WrongRole`], [`ClientError::FingerprintMismatch`],
    /// [`ClientError::OrgKeyChanged`], verification and relay errors.
    pub async fn open_conversation(
        &mut self,
        org: &str,
        fingerprint: Option<&str>,
    ) -> Result<OpenedConversation> {
        self.open_conversation_with(org, fingerprint, None).await
    }

    /// [`Self::open_conversation`], with the open token the org's web site issued to this
    /// customer key (for an org whose policy requires one; PROTOCOL.md §13.14).
    ///
    /// # Errors
    /// As [`Self::open_conversation`]; the relay's `open_token_*` refusals.
    pub async fn open_conversation_with(
        &mut self,
        org: &str,
        fingerprint: Option<&str>,
        token: Option<sealdesk_protocol::open_token::OpenToken>,
    ) -> Result<OpenedConversation> {
        self.account.require(Role::Customer, "open")?;
        // Everything that can be checked before the relay creates the conversation is: the
        // org's policy, its master against the pin or `fingerprint`. A refusal here leaves
        // nothing behind on the relay.
        let first_contact = self.account.org_pin(org)?.is_none();
        let checked = self.latest_policy_checked(org, fingerprint).await?;
        let org_fingerprint = checked.master.clone().verify()?.fingerprint().to_string();
        let mut warnings = Vec::new();
        if first_contact && fingerprint.is_none() {
            warnings.push(format!(
                "first contact with {org}: its master key (fingerprint {org_fingerprint}) \
                 was trusted on first use; compare it with the one the business publishes, \
                 or pass --org-fingerprint next time"
            ));
        }
        let id = ConversationId::random(&mut rng()?);
        let (agent, certificate, raw, quota) = match self
            .session
            .request(match token {
                Some(token) => Request::OpenConversationWithToken {
                    org: org.to_owned(),
                    conversation: id,
                    token,
                },
                None => Request::OpenConversation {
                    org: org.to_owned(),
                    conversation: id,
                },
            })
            .await?
        {
            Response::Opened {
                agent,
                certificate,
                policy,
                quota,
            } => (agent, certificate, policy, quota),
            other => return Err(unexpected("OpenConversation", &other)),
        };
        // What only the relay's answer shows (the policy it opened under, the assigned
        // agent's certificate): if it does not hold, the conversation just created is erased
        // again, best effort, so neither side is left with it.
        let (policy, agent_card) = match self.check_opened(org, &checked, &agent, certificate, raw)
        {
            Ok(ok) => ok,
            Err(e) => {
                let req = ErasureRequest::sign(self.account.keys(), id, now());
                let _ = self.session.request(Request::Erase(req)).await;
                return Err(e);
            }
        };
        let meta = ConvMeta {
            id,
            org: org.to_owned(),
            customer: self.account.name().to_owned(),
            agent: agent_card.name.clone(),
            created_at: now(),
            cursor: 0,
            delivered_sent: 0,
            read_local: 0,
            read_sent: 0,
            delivered_by: BTreeMap::new(),
            read_by: BTreeMap::new(),
            last_epoch: None,
            transferred_out: false,
            erased: false,
        };
        self.account.save_conversation(&meta)?;
        if self.account.observe_peer(&agent_card)? == PinStatus::Changed
            || self.account.peer_blocked(&agent_card.name)?
        {
            warnings.push(
                ClientError::KeyChanged {
                    name: agent_card.name.clone(),
                }
                .to_string(),
            );
        } else {
            self.create_epoch(
                &id,
                &policy,
                vec![self.account.card().clone(), agent_card.clone()],
                None,
            )
            .await?;
        }
        if let Some(q) = quota {
            // Built from the numbers only: the relay's words are not shown as ours.
            warnings.push(format!(
                "you now have {} of the {} conversations this relay lets you have open with \
                 {org}; continue one of them rather than opening another",
                q.open, q.most
            ));
        }
        Ok(OpenedConversation {
            conversation: id,
            org: org.to_owned(),
            agent: agent_card.name.clone(),
            agent_fingerprint: agent_card.fingerprint().to_string(),
            summary: policy.summary(),
            org_fingerprint,
            warnings,
        })
    }

    /// Checks the relay's answer to `OpenConversation` against the policy checked before:
    /// the same org, the pinned master, no older version; the agent's certificate under it.
    fn check_opened(
        &mut self,
        org: &str,
        checked: &VerifiedPolicy,
        agent: &IdentityCard,
        certificate: AgentCertificate,
        raw: OrgPolicy,
    ) -> Result<(VerifiedPolicy, VerifiedCard)> {
        if raw.org != org {
            return Err(ClientError::UnexpectedResponse(format!(
                "opened a conversation with {org} but got the policy of {}",
                raw.org
            )));
        }
        let policy = self.verify_pinned(raw, PinSource::Tofu)?;
        if policy.version < checked.version {
            return Err(ClientError::PolicyRollback {
                org: org.to_owned(),
                served: policy.version,
                seen: checked.version,
            });
        }
        self.remember_policy(&policy)?;
        let agent_card = certificate.verify(&policy, now())?;
        if agent_card.name != agent.name || !agent_card.same_keys(agent) {
            return Err(ClientError::UnexpectedResponse(
                "the assigned agent's card does not match its certificate".into(),
            ));
        }
        Ok((policy, agent_card))
    }

    /// Every item of a conversation the relay serves this account, paging through `History`.
    ///
    /// # Errors
    /// Relay errors.
    pub(crate) async fn history_items(&self, id: &ConversationId) -> Result<Vec<Sequenced>> {
        let mut out = Vec::new();
        let mut after = 0;
        let mut paging = Paging::new(0);
        loop {
            let (items, more, skipped, head) = match self
                .session
                .request(Request::History {
                    conversation: *id,
                    after,
                    limit: HISTORY_PAGE,
                })
                .await?
            {
                Response::Items {
                    items,
                    more,
                    skipped,
                    head,
                } => (items, more, skipped, head),
                other => return Err(unexpected("History", &other)),
            };
            // A page may hold only skipped runs: it still moves on.
            let end = super::skipped::page_end(&items, &skipped);
            out.extend(items);
            // Bounded as a sync is (see `paging`), but the whole history is wanted here: a
            // walk cut by the page budget is an error, not a part.
            match paging.next(after, end, end.unwrap_or(after), more, head)? {
                Next::After(next) => after = next,
                Next::Done => break,
                Next::Budget => {
                    return Err(ClientError::ImpossibleNumber {
                        what: "history page",
                        detail: paging.budget_detail(end.unwrap_or(after)),
                    });
                }
            }
        }
        Ok(out)
    }

    // --- sending ------------------------------------------------------------------------

    /// Sends a text message; returns its relay sequence number.
    ///
    /// # Errors
    /// [`ClientError::CannotSend`], [`ClientError::KeyChanged`], relay errors.
    pub async fn send_text(&mut self, id: &ConversationId, text: &str) -> Result<u64> {
        Ok(self.send_text_report(id, text).await?.seq)
    }

    /// Sends a text message; returns its relay sequence number and the relay's warning ahead
    /// of a stored-bytes quota, if it gave one ([`crate::quota::quota_warning`] words it).
    ///
    /// # Errors
    /// As [`Self::send_text`].
    pub async fn send_text_report(
        &mut self,
        id: &ConversationId,
        text: &str,
    ) -> Result<SendReport> {
        self.send_kind(id, ContentKind::Text, text.as_bytes()).await
    }

    /// Sends an end-to-end read receipt for everything read so far, if there is anything new
    /// from other members (a message or a file). Returns the sequence number covered.
    ///
    /// # Errors
    /// As [`Self::send_text`].
    pub async fn send_read_receipt(&mut self, id: &ConversationId) -> Result<Option<u64>> {
        let meta = self.meta(id)?;
        let me = self.account.name().to_owned();
        let newest_from_others = self
            .account
            .log(id)?
            .iter()
            .filter_map(|e| match e {
                LogEntry::Message {
                    seq,
                    sender,
                    kind: ContentKind::Text | ContentKind::Attachment,
                    ..
                } if *sender != me => Some(*seq),
                _ => None,
            })
            .max();
        let Some(upto) = newest_from_others.filter(|s| *s > meta.read_sent) else {
            return Ok(None);
        };
        self.send_kind(id, ContentKind::Read, &upto.to_be_bytes())
            .await?;
        let mut meta = self.meta(id)?;
        meta.read_sent = meta.read_sent.max(upto);
        self.account.save_conversation(&meta)?;
        Ok(Some(upto))
    }

    /// One `Send` round trip; the relay then pushes the message to the other members. The
    /// conversation is not synced first: when this account has missed an epoch (another member
    /// rotated, a transfer), the relay's answer says so (`StaleEpoch`, `EpochFull`,
    /// `CounterReused`, `Forbidden`) and the answer is handled by syncing then, once, and
    /// retrying. Only a conversation with no local epoch at all is synced first (its epochs
    /// may be on the relay already). The sent message is then recorded by [`Self::record_sent`].
    pub(crate) async fn send_kind(
        &mut self,
        id: &ConversationId,
        kind: ContentKind,
        body: &[u8],
    ) -> Result<SendReport> {
        if self.account.epochs(id)?.is_empty() {
            self.sync_aside(id).await?;
        }
        let mut retried = false;
        let mut overtaken = 0;
        loop {
            let state = self.sending_epoch(id).await?;
            // Reserve and persist the next counter before sealing (docs/design.md §3): a crash
            // after this point burns a counter, never reuses one, and another process of this
            // account reserves the ones after it.
            let (counter, state) = self.account.reserve_counter(id, state.record.epoch)?;
            self.load_keys(id, &state).await?;
            let keys = self
                .keys
                .get(&(*id, state.record.epoch))
                .ok_or_else(|| cannot_send(id, "epoch keys unavailable"))?;
            let env = keys.seal_message(self.account.keys(), counter, kind, now(), body)?;
            match self.session.request(Request::Send(env.clone())).await {
                Ok(Response::Stored { seq, quota }) => {
                    self.record_sent(id, seq, env).await?;
                    return Ok(SendReport { seq, quota });
                }
                Ok(other) => return Err(unexpected("Send", &other)),
                Err(ClientError::Relay {
                    code: ErrorCode::CounterReused,
                    ..
                }) if overtaken < OVERTAKEN_RETRIES
                    && self.reserved_since(id, state.record.epoch, counter)? =>
                {
                    // The relay refuses a counter at or below the highest it stored, and
                    // another process of this account (a `send` next to a `chat`) reserved a
                    // later counter here and got it to the relay first. Nothing was reused:
                    // this counter stays burnt, and a fresh one, above every counter this
                    // vault handed out, keeps the message in this epoch.
                    overtaken += 1;
                }
                Err(ClientError::Relay {
                    code: ErrorCode::CounterReused | ErrorCode::EpochFull | ErrorCode::Conflict,
                    ..
                }) if !retried => {
                    // The relay has this counter already (this home was restored from an old
                    // copy, or another device shares it): never reuse it. Or the epoch holds
                    // the policy's limit of messages (another member's messages count too).
                    // Either way: open a new epoch (or follow one another member just opened).
                    // If another member opened a newer epoch meanwhile (it also found this
                    // one full), send in theirs: rotating again would open one epoch too many.
                    retried = true;
                    self.sync_aside(id).await?;
                    let newest = self.account.epochs(id)?.last().map(|e| e.record.epoch);
                    if newest.is_none_or(|e| e <= state.record.epoch) {
                        self.rotate(id).await?;
                    }
                }
                Err(ClientError::Relay {
                    code: ErrorCode::StaleEpoch | ErrorCode::Forbidden,
                    ..
                }) if !retried => {
                    // Another member opened a newer epoch (or this agent was transferred out):
                    // the sync brings it, then send there (or say why this account cannot).
                    retried = true;
                    self.sync_aside(id).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether another process of this account reserved a counter after `counter` in `epoch`
    /// of `id` (the vault's next counter moved past `counter + 1`). A home restored from an
    /// old copy has not: its refusals still open a new epoch.
    fn reserved_since(&self, id: &ConversationId, epoch: u32, counter: u64) -> Result<bool> {
        Ok(self
            .account
            .epoch(id, epoch)?
            .is_some_and(|s| s.next_counter > counter.saturating_add(1)))
    }

    /// Records a message this account sent and the relay stored at `seq`, through the one
    /// ingest path, without another round trip: when `seq` is the next item after the cursor,
    /// the message is ingested as the relay's item `seq` (stored now, as far as this account
    /// saw); when other items came in between, the conversation is synced instead, which reads
    /// them and the message back in relay order.
    pub(super) async fn record_sent(
        &mut self,
        id: &ConversationId,
        seq: u64,
        env: Envelope,
    ) -> Result<()> {
        let meta = self.meta(id)?;
        if meta.cursor.checked_add(1) == Some(seq) {
            self.ingest(Sequenced {
                conversation: *id,
                seq,
                stored_at: now(),
                item: Item::Message(env),
            })
            .await?;
        } else {
            self.sync_aside(id).await?;
        }
        Ok(())
    }

    /// Syncs `id` for a send, keeping the events of the items it brings in for the caller
    /// (they are another member's items, new to the caller; see `Client::events_aside`).
    async fn sync_aside(&mut self, id: &ConversationId) -> Result<()> {
        let events = self.sync(id).await?;
        self.events_aside.extend(events);
        while self.events_aside.len() > super::EVENTS_ASIDE {
            self.events_aside.pop_front();
        }
        Ok(())
    }

    /// Takes the events a send kept aside (see `Client::events_aside`), oldest first.
    pub fn take_events_aside(&mut self) -> Vec<Event> {
        self.events_aside.drain(..).collect()
    }

    /// The epoch this account sends in now: checks membership and pins, creates epoch 0 for a
    /// customer whose conversation has none, rotates when the policy's limit is reached.
    pub(super) async fn sending_epoch(&mut self, id: &ConversationId) -> Result<EpochState> {
        let meta = self.meta(id)?;
        if meta.erased {
            return Err(cannot_send(
                id,
                "it was erased on the relay (only the local copy is left)",
            ));
        }
        if self.account.role() == Role::Agent
            && (meta.transferred_out || meta.agent != self.account.name())
        {
            return Err(cannot_send(
                id,
                &format!(
                    "it is assigned to {} now (this agent was transferred out)",
                    meta.agent
                ),
            ));
        }
        let epochs = self.account.epochs(id)?;
        let Some(last) = epochs.last().cloned() else {
            if self.account.role() != Role::Customer {
                return Err(cannot_send(
                    id,
                    "the customer has not opened the first epoch yet",
                ));
            }
            let policy = self.latest_policy(&meta.org).await?;
            let agent = self.agent_certificate(&policy, &meta.agent).await?;
            self.pin_or_block(&agent)?;
            return self
                .create_epoch(id, &policy, vec![self.account.card().clone(), agent], None)
                .await;
        };
        match &last.status {
            EpochStatus::Member => {}
            EpochStatus::Refused(reason) => {
                return Err(cannot_send(
                    id,
                    &format!(
                        "its current epoch {} was refused: {reason}",
                        last.record.epoch
                    ),
                ));
            }
            EpochStatus::NotMember | EpochStatus::HandedOver => {
                return Err(cannot_send(
                    id,
                    "this account is not a member of the current epoch (it was transferred)",
                ));
            }
        }
        for m in &last.record.members {
            if m.signing_key != self.account.keys().signing_public()
                && self.account.peer_blocked(&m.name)?
            {
                return Err(ClientError::KeyChanged {
                    name: m.name.clone(),
                });
            }
        }
        if let Some(state) = self.check_agent_key(id, &meta, &last).await? {
            return Ok(state);
        }
        // An epoch this account's key created somewhere else (another device of the same
        // account: the browser console, a copied home) is that device's to seal in: its
        // counters are not in this vault, so sealing here could reuse one (a key and nonce the
        // relay would see twice). Open a new epoch instead (SECURITY.md, "Two devices of one
        // agent").
        if last.record.creator == self.account.keys().signing_public()
            && !self.account.made_here(id, &last.record)?
        {
            return self.rotate(id).await;
        }
        if !self.account.may_send_in(id, last.record.epoch)? {
            // Recovered: open an epoch of its own first (crate::recovery). If another member
            // won the race for that number, the next one.
            let state = self.rotate(id).await?;
            if self.account.may_send_in(id, state.record.epoch)? {
                return Ok(state);
            }
            return self.rotate(id).await;
        }
        let policy = self
            .policy(&last.record.org, last.record.policy_version)
            .await?;
        let age = now().saturating_sub(last.record.created_at);
        if last.messages >= u64::from(policy.rotate_after_messages)
            || age >= policy.rotate_after_secs
        {
            return self.rotate(id).await;
        }
        Ok(last)
    }

    /// The conversation's newest epoch, which this account must be a member of (`none`: the
    /// refusal when there is no epoch at all).
    pub(super) fn current_member_epoch(
        &self,
        id: &ConversationId,
        none: &str,
    ) -> Result<EpochState> {
        let last = self
            .account
            .epochs(id)?
            .pop()
            .ok_or_else(|| cannot_send(id, none))?;
        if last.status != EpochStatus::Member {
            return Err(cannot_send(
                id,
                "this account is not a member of the current epoch",
            ));
        }
        Ok(last)
    }

    /// For a customer: whether the conversation's agent's name is still bound to a key of the
    /// current epoch. The org's master may have re-certified the agent for a new key (the relay
    /// then assigns the conversation to it, PROTOCOL.md §4.4): the new card is checked against
    /// the pin ([`ClientError::KeyChanged`] until `keys trust`), and once trusted an epoch is
    /// opened for it, which this returns. Asked of the relay at most every
    /// [`AGENT_CHECK_SECS`] per conversation and session.
    async fn check_agent_key(
        &mut self,
        id: &ConversationId,
        meta: &ConvMeta,
        last: &EpochState,
    ) -> Result<Option<EpochState>> {
        if self.account.role() != Role::Customer
            || self
                .agent_checked
                .get(id)
                .is_some_and(|t| t.elapsed().as_secs() < AGENT_CHECK_SECS)
        {
            return Ok(None);
        }
        // A policy or an agent the relay does not vouch for now (its certificate expired, say)
        // is not this check's to refuse: sending in the epoch goes on as before.
        let Ok(policy) = self.latest_policy(&meta.org).await else {
            return Ok(None);
        };
        let Ok(agent) = self.agent_certificate(&policy, &meta.agent).await else {
            return Ok(None);
        };
        self.pin_or_block(&agent)?;
        self.agent_checked.insert(*id, std::time::Instant::now());
        if last
            .record
            .members
            .iter()
            .any(|m| m.signing_key == agent.signing_key)
        {
            return Ok(None);
        }
        let customer = self.account.card().clone();
        self.create_epoch(id, &policy, vec![customer, agent], Some(&last.record))
            .await
            .map(Some)
    }

    /// Opens the next epoch with the current members, under the org's latest policy.
    pub(super) async fn rotate(&mut self, id: &ConversationId) -> Result<EpochState> {
        let meta = self.meta(id)?;
        let last = self.current_member_epoch(id, "there is no epoch to rotate")?;
        let policy = self.latest_policy(&meta.org).await?;
        let mut members = Vec::new();
        for m in &last.record.members {
            members.push(m.clone().verify()?);
        }
        self.create_epoch(id, &policy, members, Some(&last.record))
            .await
    }

    /// Creates, stores and reads back an epoch.
    pub(super) async fn create_epoch(
        &mut self,
        id: &ConversationId,
        policy: &VerifiedPolicy,
        members: Vec<VerifiedCard>,
        previous: Option<&EpochRecord>,
    ) -> Result<EpochState> {
        let epoch = match previous {
            None => 0,
            Some(p) => next_epoch(p.epoch)?,
        };
        let (record, _k) = EpochRecord::create(
            &mut rng()?,
            self.account.keys(),
            policy,
            NewEpoch {
                conversation: *id,
                epoch,
                members: &members,
                previous,
                now: now(),
            },
        )?;
        self.account.mark_made_here(id, record.record())?;
        match self
            .session
            .request(Request::PutEpoch(record.into_record()))
            .await
        {
            Ok(Response::Stored { .. }) => self.account.note_own_epoch(id, epoch)?,
            Ok(other) => return Err(unexpected("PutEpoch", &other)),
            // Another member opened this epoch number first: use theirs.
            Err(ClientError::Relay {
                code: ErrorCode::StaleEpoch | ErrorCode::Conflict,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        self.sync(id).await?;
        let state = self
            .account
            .epochs(id)?
            .pop()
            .ok_or_else(|| cannot_send(id, "the new epoch did not come back from the relay"))?;
        match &state.status {
            EpochStatus::Member => Ok(state),
            EpochStatus::Refused(reason) => Err(ClientError::EpochRefused {
                conversation: id.to_string(),
                epoch: state.record.epoch,
                reason: reason.clone(),
            }),
            _ => Err(cannot_send(
                id,
                "this account is not a member of the current epoch",
            )),
        }
    }

    // --- transfer -----------------------------------------------------------------------

    /// Agent: hands the conversation to agent `to`: asks the relay to reassign, opens the next
    /// epoch for [customer, `to`], and, if the policy allows, hands over the earlier epochs this
    /// agent was a member of. Returns the new epoch number.
    ///
    /// # Errors
    /// [`ClientError::WrongRole`], [`ClientError::CannotSend`], [`ClientError::KeyChanged`],
    /// relay and verification errors.
    pub async fn transfer(&mut self, id: &ConversationId, to: &str) -> Result<u32> {
        self.account.require(Role::Agent, "transfer")?;
        self.sync(id).await?;
        let mut meta = self.meta(id)?;
        let last = self.current_member_epoch(id, "the conversation has no epoch yet")?;
        let policy = self.latest_policy(&meta.org).await?;
        let new_agent = self.agent_certificate(&policy, to).await?;
        self.pin_or_block(&new_agent)?;
        let customer = last
            .record
            .members
            .iter()
            .find(|m| m.role == Role::Customer)
            .cloned()
            .ok_or_else(|| cannot_send(id, "the current epoch has no customer"))?
            .verify()?;
        expect_ok(
            self.session
                .request(Request::Transfer {
                    conversation: *id,
                    agent: to.to_owned(),
                })
                .await?,
        )?;
        let epoch = next_epoch(last.record.epoch)?;
        let (record, _k) = EpochRecord::create(
            &mut rng()?,
            self.account.keys(),
            &policy,
            NewEpoch {
                conversation: *id,
                epoch,
                members: &[customer, new_agent.clone()],
                previous: Some(&last.record),
                now: now(),
            },
        )?;
        let record = record.into_record();
        let seq = match self
            .session
            .request(Request::PutEpoch(record.clone()))
            .await?
        {
            Response::Stored { seq, .. } => seq,
            other => return Err(unexpected("PutEpoch", &other)),
        };
        // This agent is no member of the new epoch, so the relay withholds its record from it;
        // it keeps the record it made (checked as any other), or a transfer back would find
        // the next epoch following one it has no record of.
        self.ingest_epoch(&mut meta, seq, now(), record).await?;
        if policy.history_handoff {
            // Every epoch this agent holds, so an agent after a second transfer reads the
            // conversation from epoch 0: first those it was a member of, then, in a hand-off
            // of their own, those handed to it (opened through the chain of hand-offs,
            // PROTOCOL.md §7.6). Apart, a reader that knows only the member rule (an older
            // client, the console) still opens the first.
            let (mut member, mut held) = (Vec::new(), Vec::new());
            for st in self.account.epochs(id)? {
                let to = match st.status {
                    EpochStatus::Member => &mut member,
                    EpochStatus::HandedOver => &mut held,
                    _ => continue,
                };
                if let Some(k) = self.account.secret(id, st.record.epoch)? {
                    to.push((st.record.epoch, k));
                }
            }
            for secrets in [member, held] {
                self.hand_off(id, &new_agent, &secrets).await?;
            }
        }
        meta.agent = to.to_owned();
        meta.transferred_out = true;
        self.account.save_conversation(&meta)?;
        self.sync(id).await?;
        Ok(epoch)
    }

    /// Seals `secrets` to agent `to` in one hand-off and stores it; nothing for none.
    async fn hand_off(
        &mut self,
        id: &ConversationId,
        to: &sealdesk_protocol::card::VerifiedCard,
        secrets: &[(u32, sealdesk_protocol::secret::EpochSecret)],
    ) -> Result<()> {
        if secrets.is_empty() {
            return Ok(());
        }
        let refs: Vec<(u32, &sealdesk_protocol::secret::EpochSecret)> =
            secrets.iter().map(|(e, k)| (*e, k)).collect();
        let handoff = HandOff::create(&mut rng()?, self.account.keys(), to, *id, &refs, now())?;
        match self.session.request(Request::PutHandOff(handoff)).await? {
            Response::Stored { .. } | Response::Ok => Ok(()),
            other => Err(unexpected("PutHandOff", &other)),
        }
    }
}
