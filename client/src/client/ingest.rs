//! Verifying and recording each kind of item: epochs (every check of an epoch record),
//! messages (opened under their epoch's keys, replay windows), notices, and hand-offs of
//! earlier epochs' keys.

use std::collections::{HashMap, HashSet};

use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent},
    card::Role,
    epoch::{EpochRecord, HandOff, VerifiedEpoch},
    handoff_chain::Holders,
    ids::ConversationId,
    message::{ContentKind, Envelope, EpochKeys, ReplayWindows},
    status::status_of,
    wire::Item,
};

use super::gaps::{add_lost, left_window};
use super::timeline::{audience_of, group_notices, release_of};
use super::{Client, Event, EventKind, cannot_send, refusal};
use crate::account::{ConvMeta, EpochState, EpochStatus, LogEntry, Unwitnessed};
use crate::error::Result;
use crate::escrow::{Witnessing, is_log_fault};
use crate::handoff::HandOffOutcome;
use crate::notice::{
    ReleaseNotice, counts_as_release, describe_notice, not_yet_witnessed, short_key,
};
use crate::reply::is_transient;
use sealdesk_protocol::policy::VerifiedPolicy;

/// What the checks of a notice's entry found ([`Client::judge_notice`]).
pub(super) struct NoticeVerdict {
    /// Every check but the witnesses' passed.
    pub(super) verified: bool,
    /// `Some(why)` if it passed them but is not witnessed yet.
    pub(super) unwitnessed: Option<String>,
    /// The conversation's org, whose trustees witness (named in the notice's words).
    pub(super) org: String,
    /// The org's latest policy, for a release entry.
    pub(super) policy: Option<VerifiedPolicy>,
}

impl Client {
    /// A notice delivered into the conversation: each entry is verified and logged on its own;
    /// a trustee's release entry joins the notice of its release request, and the live view
    /// hears about the request when it first appears and whenever its line reads differently
    /// (another trustee released, it opened, an entry of it failed or was delivered again).
    /// An entry that passes every check but the witnesses' is logged "not yet witnessed" and
    /// checked again at each sync ([`Client::recheck_unwitnessed`]).
    pub(super) async fn ingest_notice(
        &mut self,
        meta: &ConvMeta,
        seq: u64,
        stored_at: u64,
        entry: &AuditEntry,
        index: u64,
    ) -> Result<Vec<Event>> {
        let id = meta.id;
        let verdict = self.judge_notice(meta, entry, index).await?;
        // The relay could deliver the same logged entry again (at the same or a new
        // index): one logged release is one opening, shown once.
        let leaf = entry.leaf_hash();
        let duplicate = verdict.verified && self.account.notice_seen(&id, &leaf)?;
        if verdict.verified && !duplicate {
            self.account.mark_notice_seen(&id, &leaf)?;
        }
        let e = self.notice_line(seq, stored_at, entry, index, &verdict, duplicate);
        self.log_notice(&id, e, !verdict.verified || duplicate, false)
    }

    /// Logs notice line `e` of conversation `id` and says what the live view hears of it.
    ///
    /// A release entry: its request's line ([`Client::release_line`]) when the request first
    /// appears ([`EventKind::Entry`]), and again ([`EventKind::Updated`], at the same place)
    /// whenever that line reads differently than before — another trustee released, the
    /// request opened, it was confirmed or found not genuine — or when the entry is `loud` (it
    /// failed or is a repeat). The live view must never keep a weaker wording than history's.
    /// Any other notice: always, as [`EventKind::Updated`] when it `replaces` a line logged
    /// before for the same item (a notice checked again), else as a new entry.
    pub(super) fn log_notice(
        &self,
        id: &ConversationId,
        e: LogEntry,
        loud: bool,
        replaces: bool,
    ) -> Result<Vec<Event>> {
        let id = *id;
        let Some(release) = release_of(&e).cloned() else {
            self.account.append_log(&id, &e)?;
            let kind = if replaces {
                EventKind::Updated { entry: e }
            } else {
                EventKind::Entry { entry: e }
            };
            return Ok(vec![Event {
                conversation: id,
                kind,
            }]);
        };
        let before = self.release_line(&id, &release.request)?;
        self.account.append_log(&id, &e)?;
        let after = self.release_line(&id, &release.request)?;
        Ok(match (before, after) {
            (_, None) => Vec::new(),
            (None, Some(line)) => vec![Event {
                conversation: id,
                kind: EventKind::Entry { entry: line },
            }],
            (Some(b), Some(a)) if loud || reads_differently(&b, &a) => vec![Event {
                conversation: id,
                kind: EventKind::Updated { entry: a },
            }],
            (Some(_), Some(_)) => Vec::new(),
        })
    }

    /// Every check of a delivered notice's entry, short of duplicates: signed, about this
    /// conversation, by a signer its kind allows (a release: a trustee of the org's policy),
    /// proven in the audit log — and witnessed: proven in a head that enough of the org's
    /// trustees cosigned holding it ([`Client::witnessed_entry`]).
    pub(super) async fn judge_notice(
        &mut self,
        meta: &ConvMeta,
        entry: &AuditEntry,
        index: u64,
    ) -> Result<NoticeVerdict> {
        let id = meta.id;
        // Genuine only if signed, about this conversation, and proven to be in the
        // audit log under a tree head consistent with the one pinned before.
        let mut verified = entry.verify().is_ok() && entry.event.conversation() == Some(id);
        // A release notice is genuine only if a trustee of the policy in force for that
        // release (its epochs' policy, not the latest) signed it: the relay could otherwise
        // log an entry under any key it likes.
        let release_policy = self.release_policy(entry).await?;
        let policy = release_policy.policy().cloned();
        if verified && let AuditEvent::Release { org, .. } = &entry.event {
            verified = *org == meta.org && counts_as_release(entry, policy.as_ref(), Some(&id));
        }
        // Every kind of entry has the signers allowed to make it (a revocation: the customer;
        // an erasure: the customer or the relay; ...), checked here like the release's.
        if verified {
            let allowed = self.allowed_signers(Some(&meta.org), Some(id)).await?;
            verified = entry
                .check_signer(&release_policy.signers(&allowed))
                .is_ok();
        }
        // An erasure also must not be a replayed statement nor an implausible retention.
        if verified && self.erasure_fault(entry).await?.is_some() {
            verified = false;
        }
        let mut unwitnessed = None;
        if verified {
            match self
                .witnessed_entry(&meta.org, &entry.leaf_hash(), index)
                .await
            {
                Ok(Witnessing::Witnessed { .. }) => {}
                Ok(Witnessing::NotYet(why)) => {
                    // Not witnessed yet: still proven in the relay's own head, or not genuine.
                    let (head, _) = self.checked_tree_head().await?;
                    verified = match self.check_inclusion(entry, index, &head).await {
                        Ok(()) => true,
                        Err(e) if is_transient(&e) => return Err(e),
                        Err(_) => false,
                    };
                    if verified {
                        unwitnessed = Some(why.to_string());
                    }
                }
                Err(e) if is_transient(&e) => return Err(e),
                // The head the witnesses vouch for does not hold it: not genuine.
                Err(e) if is_log_fault(&e) => verified = false,
                Err(e) => return Err(e),
            }
        }
        Ok(NoticeVerdict {
            verified,
            unwitnessed,
            org: meta.org.clone(),
            policy,
        })
    }

    /// The history line of a notice's entry under `verdict` (`duplicate`: the entry was
    /// counted already).
    pub(super) fn notice_line(
        &self,
        seq: u64,
        stored_at: u64,
        entry: &AuditEntry,
        index: u64,
        verdict: &NoticeVerdict,
        duplicate: bool,
    ) -> LogEntry {
        let verified = verdict.verified;
        let unwitnessed = verdict
            .unwitnessed
            .as_ref()
            .filter(|_| verified && !duplicate);
        let release = ReleaseNotice::from_entry(index, entry, verified, verdict.policy.as_ref())
            .map(|n| if duplicate { n.as_repeat() } else { n })
            .map(|n| {
                if unwitnessed.is_some() {
                    n.as_unwitnessed()
                } else {
                    n
                }
            });
        let audience = audience_of(&self.account);
        let mut text = describe_notice(entry, verified, audience);
        if duplicate {
            text = format!("{text} — a repeat of a notice already shown, not a new opening");
        }
        if let Some(why) = unwitnessed {
            text = format!(
                "{text} — {}",
                not_yet_witnessed(
                    &format!("audit #{index}"),
                    &verdict.org,
                    Some(why),
                    audience
                )
            );
        }
        LogEntry::Notice {
            seq,
            stored_at,
            text,
            verified: verified && !duplicate && unwitnessed.is_none(),
            index,
            release: release.map(Box::new),
            unwitnessed: unwitnessed.map(|why| {
                Box::new(Unwitnessed {
                    entry: entry.clone(),
                    reason: why.clone(),
                })
            }),
        }
    }

    /// The history line of one release request, as [`history`] shows it.
    pub(super) fn release_line(
        &self,
        id: &ConversationId,
        request: &str,
    ) -> Result<Option<LogEntry>> {
        let audience = audience_of(&self.account);
        let entries = self.account.log(id)?.into_iter().filter(
            |e| matches!(e, LogEntry::Notice { release: Some(r), .. } if r.request == request),
        );
        Ok(group_notices(entries, audience).into_iter().next())
    }

    pub(super) async fn ingest_epoch(
        &mut self,
        meta: &mut ConvMeta,
        seq: u64,
        stored_at: u64,
        record: EpochRecord,
    ) -> Result<Option<Event>> {
        let id = meta.id;
        if let Some(existing) = self.account.epoch(&id, record.epoch)?
            && existing.seq == seq
        {
            return Ok(None); // already processed (crash before the cursor was saved)
        }
        let verdict = self.check_epoch(meta, &record).await;
        let (status, secret) = match verdict {
            Ok(Some(k)) => (EpochStatus::Member, Some(k)),
            Ok(None) => (EpochStatus::NotMember, None),
            Err(e) if is_transient(&e) => return Err(e),
            // Its chain is not here yet (a transfer to this account, pushed before the
            // hand-off): held back, never used, judged again after a hand-off (`held`).
            Err(e) if self.waits_for_previous(&id, &record)? => {
                return Ok(Some(Self::held_back(&id, &record, &e.to_string())));
            }
            Err(e) => (EpochStatus::Refused(e.to_string()), None),
        };
        if let Some(k) = &secret {
            self.account.save_secret(&id, record.epoch, k)?;
        }
        let names: Vec<String> = record.members.iter().map(|m| m.name.clone()).collect();
        let creator = record
            .members
            .iter()
            .find(|m| m.signing_key == record.creator)
            .map(|m| m.name.clone())
            .or_else(|| self.name_of_key(&id, &record.creator))
            .unwrap_or_else(|| short_key(&record.creator));
        let epoch = record.epoch;
        let duplicate = self.account.epoch(&id, epoch)?.is_some();
        if !duplicate {
            self.account.save_epoch(
                &id,
                &EpochState {
                    record,
                    seq,
                    status: status.clone(),
                    next_counter: 0,
                    windows: ReplayWindows::default(),
                    messages: 0,
                },
            )?;
            meta.last_epoch = Some(epoch);
            if status != EpochStatus::Member {
                self.keys.remove(&(id, epoch));
            }
        }
        if self.account.role() == Role::Agent && !duplicate {
            let was_member = epoch
                .checked_sub(1)
                .and_then(|p| self.account.epoch(&id, p).ok().flatten())
                .is_some_and(|p| p.status == EpochStatus::Member);
            match status {
                EpochStatus::Member => meta.transferred_out = false,
                EpochStatus::NotMember if was_member => meta.transferred_out = true,
                _ => {}
            }
        }
        let entry = LogEntry::Epoch {
            seq,
            stored_at,
            epoch,
            members: names,
            creator,
            status,
        };
        self.account.append_log(&id, &entry)?;
        Ok(Some(Event {
            conversation: id,
            kind: EventKind::Entry { entry },
        }))
    }

    /// Every check of an epoch record; `Ok(Some(K))` for a member, `Ok(None)` for a verified
    /// epoch this account is not in.
    pub(super) async fn check_epoch(
        &mut self,
        meta: &ConvMeta,
        record: &EpochRecord,
    ) -> Result<Option<sealdesk_protocol::secret::EpochSecret>> {
        let id = meta.id;
        if record.conversation != id {
            return Err(sealdesk_protocol::Error::WrongConversation.into());
        }
        if record.org != meta.org {
            return Err(refusal(format!(
                "it names org {}, but the conversation is with {}",
                record.org, meta.org
            )));
        }
        if let Some(existing) = self.account.epoch(&id, record.epoch)? {
            return Err(refusal(format!(
                "a second record for epoch {} (the first arrived at sequence {})",
                record.epoch, existing.seq
            )));
        }
        let policy = self.policy(&record.org, record.policy_version).await?;
        let verified = record.clone().verify(&policy)?;
        // An account that joins late (an agent re-certified for a new key, PROTOCOL.md §4.4)
        // is not a reader of the earlier epochs, so the relay withholds their records: its
        // view of the conversation starts at the first epoch it is a member of, provided it
        // has seen no epoch of the conversation before and the customer made that epoch (whose
        // card the rest of this check verifies). The chain is checked from there on.
        let joins_late = record.epoch > 0
            && self.account.epochs(&id)?.is_empty()
            && verified
                .member(&self.account.keys().signing_public())
                .is_some()
            && verified.customer().map(|c| c.signing_key) == Some(record.creator);
        let previous = match record.epoch.checked_sub(1) {
            None => None,
            Some(_) if joins_late => None,
            Some(p) => {
                let prev = self.account.epoch(&id, p)?.ok_or_else(|| {
                    refusal(format!("the record of the previous epoch {p} is missing"))
                })?;
                if let EpochStatus::Refused(_) = prev.status {
                    return Err(refusal(format!("it follows epoch {p}, which was refused")));
                }
                let prev_policy = self
                    .policy(&prev.record.org, prev.record.policy_version)
                    .await?;
                Some(prev.record.verify(&prev_policy)?)
            }
        };
        if !joins_late {
            verified.check_follows(previous.as_ref())?;
        }
        if let Some(c) = verified.customer()
            && c.name != meta.customer
        {
            return Err(refusal(format!(
                "its customer is {}, but the conversation's customer is {}",
                c.name, meta.customer
            )));
        }
        for m in &verified.members {
            if m.role == Role::Agent {
                let certified = self
                    .agent_certificate(&policy, &m.name)
                    .await
                    .map_err(|e| {
                        if is_transient(&e) {
                            e
                        } else {
                            refusal(format!("agent {} has no valid certificate: {e}", m.name))
                        }
                    })?;
                if !certified.same_keys(m) {
                    return Err(refusal(format!(
                        "agent {}'s key in the record is not the certified one",
                        m.name
                    )));
                }
            }
            if m.signing_key != self.account.keys().signing_public() {
                self.account.observe_peer(&m.clone().verify()?)?;
            }
        }
        if verified
            .member(&self.account.keys().signing_public())
            .is_none()
        {
            return Ok(None);
        }
        Ok(Some(verified.open(self.account.keys(), &policy)?))
    }

    /// Opens one message and logs the result. With `log_rejection` false, a message that
    /// fails is not logged again (a refetch of an item already logged as rejected).
    pub(super) async fn ingest_message(
        &mut self,
        meta: &mut ConvMeta,
        seq: u64,
        stored_at: u64,
        env: &Envelope,
        log_rejection: bool,
    ) -> Result<Vec<Event>> {
        let id = meta.id;
        let h = &env.header;
        let sender_name = self
            .name_of_key(&id, &h.sender)
            .unwrap_or_else(|| short_key(&h.sender));
        let reject = |reason: String| LogEntry::Rejected {
            seq,
            epoch: h.epoch,
            sender: sender_name.clone(),
            reason,
        };
        let entry = match self.account.epoch(&id, h.epoch)? {
            None => reject(format!(
                "it names epoch {}, which this account has no record of",
                h.epoch
            )),
            Some(st) if !st.readable() => match &st.status {
                EpochStatus::Refused(r) => reject(format!(
                    "its epoch {} was refused ({r}); not shown",
                    h.epoch
                )),
                _ => reject(format!(
                    "sealed for epoch {}, which this account is not a member of",
                    h.epoch
                )),
            },
            Some(mut st) => {
                self.load_keys(&id, &st).await?;
                let before = st.windows.get(&h.sender).cloned();
                let opened = match self.keys.get(&(id, st.record.epoch)) {
                    Some(keys) => keys.open_message(env, &mut st.windows),
                    None => Err(sealdesk_protocol::Error::NotAMember),
                };
                match opened {
                    Err(e) => reject(e.to_string()),
                    Ok(opened) => {
                        st.messages = st.messages.saturating_add(1);
                        // Counters that never arrived and have now left the reordering
                        // window can no longer be accepted: keep them as gaps for good.
                        let lost = left_window(before.as_ref(), st.windows.get(&h.sender));
                        if !lost.is_empty() {
                            add_lost(&self.account, &id, h.epoch, &h.sender, &lost)?;
                        }
                        let mine = h.sender == self.account.keys().signing_public();
                        if mine {
                            // This account's own message, sealed here or on another device
                            // (a copied home, pushed or read): its counter is never this
                            // vault's to use again in the epoch (SECURITY.md, "Two devices of
                            // one agent").
                            st.next_counter = st.next_counter.max(h.counter.saturating_add(1));
                        }
                        self.account.save_epoch(&id, &st)?;
                        match opened.header.kind {
                            ContentKind::Read => {
                                let upto = <[u8; 8]>::try_from(opened.body.as_slice())
                                    .map(u64::from_be_bytes)
                                    .ok();
                                match upto {
                                    Some(upto) => {
                                        let receipt = LogEntry::Receipt {
                                            seq,
                                            sender: sender_name.clone(),
                                            upto,
                                        };
                                        self.account.append_log(&id, &receipt)?;
                                        let e =
                                            meta.read_by.entry(sender_name.clone()).or_insert(0);
                                        if mine || upto <= *e {
                                            return Ok(Vec::new());
                                        }
                                        *e = upto;
                                        return Ok(vec![Event {
                                            conversation: id,
                                            kind: EventKind::Read {
                                                member: sender_name,
                                                seq: upto,
                                            },
                                        }]);
                                    }
                                    None => reject("a read receipt with a malformed body".into()),
                                }
                            }
                            ContentKind::Text => match String::from_utf8(opened.body.to_vec()) {
                                Ok(text) => LogEntry::Message {
                                    seq,
                                    stored_at,
                                    sent_at: h.sent_at,
                                    epoch: h.epoch,
                                    counter: h.counter,
                                    sender: sender_name.clone(),
                                    mine,
                                    kind: ContentKind::Text,
                                    text,
                                },
                                Err(_) => reject("the text is not valid UTF-8".into()),
                            },
                            // Only an agent of the epoch may set the status.
                            ContentKind::Status => {
                                let role = st
                                    .record
                                    .members
                                    .iter()
                                    .find(|m| m.signing_key == h.sender)
                                    .map_or(Role::Customer, |m| m.role);
                                match status_of(&opened, role) {
                                    Ok(status) => LogEntry::Message {
                                        seq,
                                        stored_at,
                                        sent_at: h.sent_at,
                                        epoch: h.epoch,
                                        counter: h.counter,
                                        sender: sender_name.clone(),
                                        mine,
                                        kind: ContentKind::Status,
                                        text: status.name().to_owned(),
                                    },
                                    Err(e) => reject(format!("a status change refused: {e}")),
                                }
                            }
                            ContentKind::Attachment => {
                                match crate::attachment::ingest(&self.account, &id, seq, &opened)? {
                                    Ok(text) => LogEntry::Message {
                                        seq,
                                        stored_at,
                                        sent_at: h.sent_at,
                                        epoch: h.epoch,
                                        counter: h.counter,
                                        sender: sender_name.clone(),
                                        mine,
                                        kind: ContentKind::Attachment,
                                        text,
                                    },
                                    Err(reason) => reject(reason),
                                }
                            }
                        }
                    }
                }
            }
        };
        if !log_rejection && matches!(entry, LogEntry::Rejected { .. }) {
            return Ok(Vec::new());
        }
        self.account.append_log(&id, &entry)?;
        Ok(vec![Event {
            conversation: id,
            kind: EventKind::Entry { entry },
        }])
    }
    pub(super) async fn ingest_handoff(
        &mut self,
        meta: &mut ConvMeta,
        seq: u64,
        h: &HandOff,
    ) -> Result<Vec<Event>> {
        let id = meta.id;
        let from = self
            .name_of_key(&id, &h.from)
            .unwrap_or_else(|| short_key(&h.from));
        let to = self
            .name_of_key(&id, &h.to)
            .unwrap_or_else(|| short_key(&h.to));
        let epochs: Vec<u32> = h.epochs.iter().map(|(e, _)| *e).collect();
        let mut events = Vec::new();
        let outcome = if h.to != self.account.keys().signing_public() {
            HandOffOutcome::ForOther
        } else {
            // The records this account has none of, held back or withheld until now, first.
            events.extend(self.take_held_records(meta, seq).await?);
            match self.open_handoff(&id, seq, h).await {
                Ok(opened) => {
                    events.extend(self.replay_epochs(&id, &opened).await?);
                    HandOffOutcome::Opened { epochs: opened }
                }
                Err(e) if is_transient(&e) => return Err(e),
                Err(e) => HandOffOutcome::Refused {
                    reason: e.to_string(),
                },
            }
        };
        let entry = LogEntry::HandOff {
            seq,
            from,
            to,
            epochs,
            outcome,
        };
        self.account.append_log(&id, &entry)?;
        events.insert(
            0,
            Event {
                conversation: id,
                kind: EventKind::Entry { entry },
            },
        );
        Ok(events)
    }

    /// Opens hand-off `h`, stored at `seq`, for this account. Its `from` must have been a
    /// member of each epoch it carries, or hold it by the conversation's earlier hand-offs
    /// (read again from the relay only then: a conversation transferred more than once).
    pub(super) async fn open_handoff(
        &mut self,
        id: &ConversationId,
        seq: u64,
        h: &HandOff,
    ) -> Result<Vec<u32>> {
        if h.conversation != *id {
            return Err(sealdesk_protocol::Error::WrongConversation.into());
        }
        let mut records = Vec::new();
        let mut policies = HashMap::new();
        for st in self.account.epochs(id)? {
            if matches!(st.status, EpochStatus::Refused(_)) {
                continue;
            }
            let policy = self
                .policy(&st.record.org, st.record.policy_version)
                .await?;
            policies.insert(st.record.epoch, policy.clone());
            records.push(st.record.clone().verify(&policy)?);
        }
        let by_membership = h.epochs.iter().all(|(e, _)| {
            records
                .iter()
                .any(|r| r.epoch == *e && r.member(&h.from).is_some())
        });
        let holders = if by_membership {
            Holders::default()
        } else {
            let items = self.history_items(id).await?;
            let earlier = items.iter().filter_map(|s| match &s.item {
                Item::HandOff(e) if s.seq < seq => Some(e),
                _ => None,
            });
            Holders::follow(&records, earlier)
        };
        let opened = h.open_held(self.account.keys(), &records, &holders)?;
        let mut done = Vec::new();
        for (epoch, k) in opened {
            let Some(mut st) = self.account.epoch(id, epoch)? else {
                continue;
            };
            if st.readable() {
                continue;
            }
            let policy = policies
                .get(&epoch)
                .ok_or_else(|| refusal(format!("no verified record for epoch {epoch}")))?;
            st.record
                .escrow
                .check(&k, id, epoch, &st.record.customer_key()?, policy)?;
            self.account.save_secret(id, epoch, &k)?;
            st.status = EpochStatus::HandedOver;
            self.account.save_epoch(id, &st)?;
            done.push(epoch);
        }
        Ok(done)
    }

    /// Re-reads the conversation from the start and opens the messages of `epochs` (just made
    /// readable by a hand-off).
    pub(super) async fn replay_epochs(
        &mut self,
        id: &ConversationId,
        epochs: &[u32],
    ) -> Result<Vec<Event>> {
        if epochs.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: HashSet<u32> = epochs.iter().copied().collect();
        let mut events = Vec::new();
        for s in self.history_items(id).await? {
            if let Item::Message(env) = &s.item
                && wanted.contains(&env.header.epoch)
            {
                let mut meta = self.meta(id)?;
                events.extend(
                    self.ingest_message(&mut meta, s.seq, s.stored_at, env, true)
                        .await?,
                );
                self.account.save_conversation(&meta)?;
            }
        }
        Ok(events)
    }

    /// Makes sure the key material of a readable epoch is in the cache.
    pub(super) async fn load_keys(&mut self, id: &ConversationId, st: &EpochState) -> Result<()> {
        let key = (*id, st.record.epoch);
        if !self.keys.contains_key(&key) {
            let policy = self
                .policy(&st.record.org, st.record.policy_version)
                .await?;
            let verified: VerifiedEpoch = st.record.clone().verify(&policy)?;
            let k = self.account.secret(id, st.record.epoch)?.ok_or_else(|| {
                cannot_send(
                    id,
                    &format!("the secret of epoch {} is missing", st.record.epoch),
                )
            })?;
            self.keys.insert(key, EpochKeys::new(&k, &verified));
        }
        Ok(())
    }
}

/// Whether a release request's line changed in what its reader sees: its words (the trustees
/// named, opened or not, confirmed or not, contradicted), or its verdict.
fn reads_differently(before: &LogEntry, after: &LogEntry) -> bool {
    match (before, after) {
        (
            LogEntry::Notice {
                text: b,
                verified: bv,
                ..
            },
            LogEntry::Notice {
                text: a,
                verified: av,
                ..
            },
        ) => a != b || av != bv,
        _ => true,
    }
}
