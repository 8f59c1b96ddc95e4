//! Catching up with the relay: the conversation list, paging a conversation's history from its
//! cursor, pushes, delivery receipts, and the one path every item takes (`Client::ingest`).

use std::collections::{BTreeMap, BTreeSet};

use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    wire::{ConversationInfo, ErrorCode, Item, Push, Request, Response, Sequenced},
};

use super::paging::{Next, Paging};
use super::skipped::page_end;
use super::{Client, Event, EventKind, HISTORY_PAGE, OtherPush, PUSH_BACKLOG};
use crate::account::ConvMeta;
use crate::error::{ClientError, Result};
use crate::reply::{expect_ok, unexpected};

impl Client {
    /// Refreshes the conversation list from the relay and catches every conversation up from
    /// its cursor.
    ///
    /// # Errors
    /// Relay and storage errors (verification failures are recorded, not returned).
    pub async fn sync_all(&mut self) -> Result<Vec<Event>> {
        // What a reconnection could not ask the new session for, asked first.
        self.ask_again_if_unasked().await?;
        let mut events = self.drain_pushes().await?;
        let infos = self.list_conversations().await?;
        let listed: BTreeSet<ConversationId> = infos.iter().map(|i| i.conversation).collect();
        for info in &infos {
            events.extend(self.learn_conversation(info)?);
        }
        if self.account.role() == Role::Master {
            // The relay lists the org's conversations to its master too (kept here as
            // metadata, e.g. for `sealdesk audit`), but the master is no member of any:
            // nothing to sync. It sees them through `Client::org_conversations`.
            return Ok(events);
        }
        for meta in self.account.conversations()? {
            if meta.erased {
                // The relay holds nothing of it any more; the local copy is only read.
                continue;
            }
            if meta.transferred_out && self.account.role() == Role::Agent {
                // The relay no longer serves it to this agent; catch up once, quietly.
                match self.sync(&meta.id).await {
                    Ok(ev) => events.extend(ev),
                    Err(ClientError::Relay {
                        code: ErrorCode::Forbidden | ErrorCode::NotFound,
                        ..
                    }) => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            match self.sync(&meta.id).await {
                Ok(ev) => events.extend(ev),
                // Not in the relay's list and unknown to it: erased (at the customer's
                // request, or for retention). The local copy is kept, marked erased, and the
                // other conversations are caught up as usual.
                Err(ClientError::Relay {
                    code: ErrorCode::NotFound,
                    ..
                }) if !listed.contains(&meta.id) => self.mark_erased(&meta.id)?,
                Err(e) => return Err(e),
            }
        }
        Ok(events)
    }

    /// Handles every push already queued (delivery updates, items). Pushes the conversation
    /// machinery does not handle are kept for [`Self::take_other_pushes`].
    ///
    /// # Errors
    /// Relay and storage errors.
    pub async fn drain_pushes(&mut self) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        while let Some(push) = self.session.try_push() {
            match self.handle_push(push).await? {
                Ok(ev) => events.extend(ev),
                Err(other) => {
                    if self.other_pushes.len() >= PUSH_BACKLOG {
                        self.other_pushes.pop_front();
                    }
                    self.other_pushes.push_back(other);
                }
            }
        }
        Ok(events)
    }

    /// Pushes set aside by [`Self::drain_pushes`] (release requests, tickets, updates).
    pub fn take_other_pushes(&mut self) -> Vec<Push> {
        self.other_pushes.drain(..).collect()
    }

    /// Asks the relay for this account's conversations and records any not known locally.
    ///
    /// # Errors
    /// Relay and storage errors.
    pub async fn refresh_conversations(&mut self) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        for info in self.list_conversations().await? {
            events.extend(self.learn_conversation(&info)?);
        }
        Ok(events)
    }

    /// The relay's list of this account's conversations.
    async fn list_conversations(&self) -> Result<Vec<ConversationInfo>> {
        match self.session.request(Request::ListConversations).await? {
            Response::Conversations(c) => Ok(c),
            other => Err(unexpected("ListConversations", &other)),
        }
    }

    /// Marks a conversation as erased on the relay: its local copy stays readable, and it is
    /// neither synced nor sent in any more. Called after an accepted erasure, and when the
    /// relay no longer knows a conversation this account has a copy of.
    ///
    /// # Errors
    /// [`ClientError::UnknownConversation`], storage errors.
    pub fn mark_erased(&mut self, id: &ConversationId) -> Result<()> {
        let mut meta = self.meta(id)?;
        if !meta.erased {
            meta.erased = true;
            self.account.save_conversation(&meta)?;
        }
        Ok(())
    }

    pub(super) fn learn_conversation(&mut self, info: &ConversationInfo) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        match self.account.conversation(&info.conversation)? {
            Some(mut meta) => {
                // Listed again: not erased after all (a relay that hid it for a while is
                // not trusted to make the mark permanent).
                if meta.agent != info.agent || meta.erased {
                    meta.agent = info.agent.clone();
                    meta.erased = false;
                    self.account.save_conversation(&meta)?;
                }
            }
            None => {
                let meta = ConvMeta {
                    id: info.conversation,
                    org: info.org.clone(),
                    customer: info.customer.clone(),
                    agent: info.agent.clone(),
                    created_at: info.created_at,
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
                if self.account.role() == Role::Agent && info.agent == self.account.name() {
                    events.push(Event {
                        conversation: info.conversation,
                        kind: EventKind::Assigned {
                            customer: info.customer.clone(),
                        },
                    });
                }
            }
        }
        Ok(events)
    }

    /// Catches one conversation up from its cursor, then tells the relay what was delivered.
    ///
    /// # Errors
    /// Relay and storage errors.
    pub async fn sync(&mut self, id: &ConversationId) -> Result<Vec<Event>> {
        self.refetched.clear();
        let mut events = Vec::new();
        let mut paging = Paging::new(self.meta(id)?.cursor);
        loop {
            let after = self.meta(id)?.cursor;
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
            let end = page_end(&items, &skipped);
            events.extend(self.ingest_page(id, items, skipped, more, head).await?);
            // Bounded by the head the first page named and by `MAX_SYNC_PAGES` (see
            // `paging`): a relay cannot keep a sync paging for ever.
            let reached = self.meta(id)?.cursor;
            match paging.next(after, end, reached, more, head)? {
                Next::After(_) => {}
                Next::Done => break,
                Next::Budget => {
                    tracing::warn!(
                        conversation = %id,
                        pages = paging.pages(),
                        reached,
                        "a sync stopped at its page budget"
                    );
                    events.push(Event {
                        conversation: *id,
                        kind: EventKind::Warning {
                            text: format!(
                                "catching up stopped for now: {}; the next sync goes on from \
                                 {reached}",
                                paging.budget_detail(reached)
                            ),
                        },
                    });
                    break;
                }
            }
        }
        events.extend(self.refetch_gaps(id).await?);
        events.extend(self.refetch_holes(id).await?);
        events.extend(self.recheck_unwitnessed(id).await?);
        let mut meta = self.meta(id)?;
        if meta.cursor > meta.delivered_sent {
            expect_ok(
                self.session
                    .request(Request::Delivered {
                        conversation: *id,
                        seq: meta.cursor,
                    })
                    .await?,
            )?;
            meta.delivered_sent = meta.cursor;
            self.account.save_conversation(&meta)?;
        }
        Ok(events)
    }

    /// Handles a push from the relay. Pushes the conversation machinery does not handle
    /// (release requests, tickets, release updates) are returned as `Err(push)` inside `Ok`.
    /// The events a send kept aside (items it synced in, see [`Client::take_events_aside`])
    /// come first, so an item whose push a send overtook is still shown once.
    ///
    /// # Errors
    /// Relay and storage errors.
    pub async fn handle_push(
        &mut self,
        push: Push,
    ) -> Result<core::result::Result<Vec<Event>, OtherPush>> {
        let handled = self.handle_push_only(push).await?;
        Ok(handled.map(|events| {
            let mut all = self.take_events_aside();
            all.extend(events);
            all
        }))
    }

    /// [`Client::handle_push`] without the events kept aside.
    async fn handle_push_only(
        &mut self,
        push: Push,
    ) -> Result<core::result::Result<Vec<Event>, OtherPush>> {
        match push {
            Push::Item(s) => {
                let id = s.conversation;
                if self.account.conversation(&id)?.is_none() {
                    self.refresh_conversations().await?;
                }
                let Some(meta) = self.account.conversation(&id)? else {
                    return Ok(Ok(Vec::new()));
                };
                if self.account.role() == Role::Master {
                    // A consent shared with the master: read with `Client::org_conversations`.
                    return Ok(Ok(Vec::new()));
                }
                if s.seq <= meta.cursor {
                    return Ok(Ok(Vec::new()));
                }
                if s.seq == meta.cursor + 1 {
                    let seq = s.seq;
                    let mut events = self.ingest(s).await?;
                    self.close_hole(&id, seq)?;
                    let mut meta = self.meta(&id)?;
                    if meta.cursor > meta.delivered_sent {
                        expect_ok(
                            self.session
                                .request(Request::Delivered {
                                    conversation: id,
                                    seq: meta.cursor,
                                })
                                .await?,
                        )?;
                        meta.delivered_sent = meta.cursor;
                        self.account.save_conversation(&meta)?;
                    }
                    events.extend(Vec::new());
                    Ok(Ok(events))
                } else {
                    Ok(Ok(self.sync(&id).await?))
                }
            }
            Push::Assigned {
                conversation,
                customer,
            } => {
                let customer = customer.verify_as(Role::Customer)?;
                self.account.observe_peer(&customer)?;
                let mut events = self.refresh_conversations().await?;
                if !events.iter().any(|e| {
                    e.conversation == conversation && matches!(e.kind, EventKind::Assigned { .. })
                }) {
                    events.push(Event {
                        conversation,
                        kind: EventKind::Assigned {
                            customer: customer.name.clone(),
                        },
                    });
                }
                if self.account.conversation(&conversation)?.is_some() {
                    events.extend(self.sync(&conversation).await?);
                }
                Ok(Ok(events))
            }
            Push::Delivered {
                conversation,
                member,
                seq,
            } => {
                let Some(mut meta) = self.account.conversation(&conversation)? else {
                    return Ok(Ok(Vec::new()));
                };
                let entry = meta.delivered_by.entry(member.clone()).or_insert(0);
                if seq <= *entry {
                    return Ok(Ok(Vec::new()));
                }
                *entry = seq;
                self.account.save_conversation(&meta)?;
                Ok(Ok(vec![Event {
                    conversation,
                    kind: EventKind::Delivered { member, seq },
                }]))
            }
            Push::Signal(env) => Ok(Ok(self.receive_signal(env).await?)),
            Push::AgentKeyChanged {
                org, agent, card, ..
            } => Ok(Ok(self.agent_key_pushed(&org, &agent, &card).await?)),
            other => Ok(Err(other)),
        }
    }

    /// Processes one item in relay order. Verification failures are recorded in the
    /// timeline (the epoch refused, the message rejected); only transport and storage errors
    /// abort, leaving the cursor before the item so it is retried.
    pub(super) async fn ingest(&mut self, s: Sequenced) -> Result<Vec<Event>> {
        let id = s.conversation;
        let mut meta = self.meta(&id)?;
        if s.seq <= meta.cursor {
            return Ok(Vec::new());
        }
        self.note_hole(&meta, s.seq)?;
        let mut events = Vec::new();
        match s.item {
            Item::Epoch(record) => {
                if let Some(entry) = self
                    .ingest_epoch(&mut meta, s.seq, s.stored_at, record)
                    .await?
                {
                    events.push(entry);
                }
            }
            Item::Message(env) => {
                events.extend(
                    self.ingest_message(&mut meta, s.seq, s.stored_at, &env, true)
                        .await?,
                );
            }
            Item::HandOff(h) => {
                events.extend(self.ingest_handoff(&mut meta, s.seq, &h).await?);
            }
            // A consent the customer shared with the master: the customer keeps its own list
            // (`sealdesk consent list`); the master looks it up when unlocking.
            Item::Consent(_) => {}
            Item::Notice { entry, index } => {
                events.extend(
                    self.ingest_notice(&meta, s.seq, s.stored_at, &entry, index)
                        .await?,
                );
            }
        }
        meta.cursor = s.seq;
        self.account.save_conversation(&meta)?;
        Ok(events)
    }
}
