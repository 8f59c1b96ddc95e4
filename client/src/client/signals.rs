//! Ephemeral signals (typing): sealed under the current epoch's keys, sent through the relay,
//! which forwards them to the members online and stores nothing; received ones are opened and
//! shown as an [`EventKind::Typing`], never written to the vault or the timeline.

use sealdesk_protocol::{
    card::Role,
    ids::ConversationId,
    signal::{SignalEnvelope, SignalKind, open_signal, seal_signal},
    wire::{ErrorCode, Request},
};

use super::{Client, Event, EventKind, cannot_send};
use crate::account::EpochStatus;
use crate::error::{ClientError, Result};
use crate::reply::expect_ok;
use crate::{now, rng};

impl Client {
    /// Tells the other members of `id` who are online that this account is typing (or
    /// stopped). Sealed under the newest epoch this account is a member of; nothing is stored
    /// anywhere, and nothing is sent to members who are offline.
    ///
    /// # Errors
    /// [`ClientError::CannotSend`] when this account is not a member of the current epoch (or
    /// the conversation has none yet, or was erased), relay errors.
    pub async fn send_signal(&mut self, id: &ConversationId, kind: SignalKind) -> Result<()> {
        let mut retried = false;
        loop {
            let env = self.seal_signal(id, kind).await?;
            match self.session.request(Request::Signal(env)).await {
                Ok(r) => return expect_ok(r),
                // Another member opened a newer epoch: follow it, then signal there.
                Err(ClientError::Relay {
                    code: ErrorCode::StaleEpoch,
                    ..
                }) if !retried => {
                    retried = true;
                    self.sync(id).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Opens a signal another member sent; an [`EventKind::Typing`] if it passes every check
    /// (conversation known, epoch readable, sender a member, fresh, newer than the last one
    /// accepted from that sender, signature, AEAD), else nothing: a signal that fails is
    /// dropped without a trace, as it says nothing that lasts.
    ///
    /// # Errors
    /// Storage errors only.
    pub(super) async fn receive_signal(&mut self, env: SignalEnvelope) -> Result<Vec<Event>> {
        let h = &env.header;
        let id = h.conversation;
        if h.sender == self.account.keys().signing_public() {
            return Ok(Vec::new());
        }
        let Some(st) = self.account.epoch(&id, h.epoch)? else {
            return Ok(Vec::new());
        };
        if !st.readable() {
            return Ok(Vec::new());
        }
        if self.load_keys(&id, &st).await.is_err() {
            return Ok(Vec::new());
        }
        let Some(keys) = self.keys.get(&(id, h.epoch)) else {
            return Ok(Vec::new());
        };
        let Ok(opened) = open_signal(keys, &env, now()) else {
            return Ok(Vec::new());
        };
        let last = self.signals.get(&(id, opened.sender));
        if last.is_some_and(|&(at, nonce)| {
            opened.sent_at < at || (opened.sent_at == at && nonce == h.nonce)
        }) {
            return Ok(Vec::new());
        }
        if self.signals.len() >= super::SIGNAL_SENDERS && last.is_none() {
            self.signals.clear();
        }
        self.signals
            .insert((id, opened.sender), (opened.sent_at, h.nonce));
        let member = self
            .name_of_key(&id, &opened.sender)
            .unwrap_or_else(|| opened.sender.to_string());
        Ok(vec![Event {
            conversation: id,
            kind: EventKind::Typing {
                member,
                typing: opened.kind == SignalKind::Typing,
            },
        }])
    }

    /// Seals a signal under the newest epoch of `id`, which this account must be a member of.
    async fn seal_signal(
        &mut self,
        id: &ConversationId,
        kind: SignalKind,
    ) -> Result<SignalEnvelope> {
        let meta = self.meta(id)?;
        if meta.erased {
            return Err(cannot_send(id, "it was erased on the relay"));
        }
        if self.account.role() == Role::Agent
            && (meta.transferred_out || meta.agent != self.account.name())
        {
            return Err(cannot_send(
                id,
                &format!("it is assigned to {} now", meta.agent),
            ));
        }
        let Some(st) = self.account.epochs(id)?.pop() else {
            return Err(cannot_send(
                id,
                "it has no epoch yet (send a message first)",
            ));
        };
        if st.status != EpochStatus::Member {
            return Err(cannot_send(
                id,
                "this account is not a member of the current epoch",
            ));
        }
        self.load_keys(id, &st).await?;
        let keys = self
            .keys
            .get(&(*id, st.record.epoch))
            .ok_or_else(|| cannot_send(id, "epoch keys unavailable"))?;
        Ok(seal_signal(
            keys,
            self.account.keys(),
            kind,
            now(),
            &mut rng()?,
        )?)
    }
}
