//! Erasure: a customer's request to erase a conversation, and the retention sweep that
//! erases conversations idle for longer than their org's retention period. Both are refused
//! while a dispute ticket on the conversation is open (a legal hold, until the ticket is
//! closed or expires). A customer's erasure logs the entry the customer signed itself (sent
//! with its request); only the retention sweep's entry is signed by the relay's log key
//! (`sealdesk_protocol::erasure`).

use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent},
    erasure::ErasureReason,
    ids::ConversationId,
    release::{CLOCK_SKEW_SECS, ErasureRequest},
    wire::{ErrorCode, Response, TicketState},
};
use tracing::info;

use super::{
    Caller, Reject, Reply, Service, dec,
    keys::{consent_prefix, epoch_dedupe_prefix, legacy_counter_conversation_prefix},
    reject,
};
use crate::{
    relay::state::ConvState,
    store::{Batch, Collection},
};

impl Service {
    pub(super) async fn erase(&self, caller: &Caller, r: ErasureRequest) -> Reply {
        r.verify()?;
        let s = self.conv_for(caller, &r.conversation)?;
        if s.customer != caller.key() || r.customer != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "only the conversation's customer can ask for erasure",
            );
        }
        let statement = self.customer_statement(&r)?;
        if self.open_dispute(&r.conversation)? {
            return reject(
                ErrorCode::LegalHold,
                "a dispute ticket on this conversation is open (legal hold); erasure is refused \
                 until it is closed or expires",
            );
        }
        self.erase_conversation(&r.conversation, statement).await?;
        Ok(Response::Ok)
    }

    /// The customer's own erasure entry carried by `r`, checked: present, signed by the
    /// requesting customer, an erasure of this conversation at the customer's request, and
    /// fresh (within [`CLOCK_SKEW_SECS`] of the relay's clock, so an old statement is not
    /// logged again). The relay never signs an erasure with the customer's reason itself.
    fn customer_statement(&self, r: &ErasureRequest) -> Result<AuditEntry, Reject> {
        let Some(statement) = &r.statement else {
            return reject(
                ErrorCode::BadRequest,
                "an erasure request must carry the customer's signed erasure entry \
                 (`statement`); this client is too old to ask for erasure",
            );
        };
        statement.verify()?;
        if statement.signer != r.customer {
            return reject(
                ErrorCode::Forbidden,
                "the erasure entry must be signed by the customer asking for erasure",
            );
        }
        let expected = AuditEvent::Erasure {
            conversation: r.conversation,
            reason: ErasureReason::CustomerRequest.as_str().to_owned(),
        };
        if statement.event != expected {
            return reject(
                ErrorCode::BadRequest,
                "the erasure entry must name this conversation and the reason \
                 \"customer request\"",
            );
        }
        let now = self.clock.now();
        if statement.at.abs_diff(now) > CLOCK_SKEW_SECS {
            return reject(
                ErrorCode::BadRequest,
                "the erasure entry's time is too far from the relay's clock (an old statement \
                 is not logged again)",
            );
        }
        Ok(statement.clone())
    }

    pub(super) fn open_dispute(&self, c: &ConversationId) -> Result<bool, Reject> {
        let t = self.clock.now();
        for (_, v) in self.store.scan_prefix(Collection::Tickets, &[])? {
            let st: TicketState = dec(&v, "ticket")?;
            if st.ticket.conversation == *c && st.ticket.expires_at > t && st.closed.is_none() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Deletes a conversation's ciphertext, epoch records (with their escrow) and indexes, and
    /// logs `entry`: the customer's own erasure entry, or the relay's for retention.
    async fn erase_conversation(
        &self,
        c: &ConversationId,
        entry: AuditEntry,
    ) -> Result<(), Reject> {
        let parties = self.convs.get(c)?;
        let message_bytes = self.message_bytes(c)?;
        self.forget_attachments(c)?;
        self.convs.erase(c, || {
            let mut b = Batch::new();
            for coll in [
                Collection::Messages,
                Collection::Epochs,
                Collection::Deliveries,
            ] {
                for (k, _) in self.store.scan_prefix(coll, c.as_bytes())? {
                    b.delete(coll, &k);
                }
            }
            for p in [
                legacy_counter_conversation_prefix(c),
                epoch_dedupe_prefix(c),
            ] {
                for (k, _) in self.store.scan_prefix(Collection::MessageKeys, &p)? {
                    b.delete(Collection::MessageKeys, &k);
                }
            }
            for (k, _) in self
                .store
                .scan_prefix(Collection::Meta, &consent_prefix(c))?
            {
                b.delete(Collection::Meta, &k);
            }
            b.delete(Collection::Conversations, c.as_bytes());
            self.store.apply(b)?;
            Ok(())
        })?;
        if let Some(p) = &parties {
            for (sender, bytes) in message_bytes {
                self.count_bytes(&sender, &p.org, -bytes)?;
            }
        }
        self.log_erasure(&entry, parties.as_ref())?;
        self.commit.durable().await?;
        let reason = match &entry.event {
            AuditEvent::Erasure { reason, .. } => reason.as_str(),
            _ => "?",
        };
        info!(conversation = %c, reason, "conversation erased");
        Ok(())
    }

    /// Erases conversations idle for longer than their org's retention period.
    pub async fn sweep_retention(&self) -> Result<usize, Reject> {
        let t = self.clock.now();
        let mut expired = Vec::new();
        let idle_too_long = |s: &ConvState| match self.policies.get(&s.org, None) {
            Ok(Some(p)) => t.saturating_sub(s.last_activity) > p.retention_secs,
            _ => false,
        };
        for (k, v) in self.store.scan_prefix(Collection::Conversations, &[])? {
            // The record's activity time lags behind message appends, never ahead: a record
            // recent enough is enough to keep a conversation, and only the others need the
            // live state (cached, or rebuilt from the items).
            if !idle_too_long(&dec::<ConvState>(&v, "conversation")?) {
                continue;
            }
            let s = self
                .convs
                .live_state(&ConversationId::try_from(k.as_slice())?, &v)?;
            if idle_too_long(&s) && !self.open_dispute(&s.conversation)? {
                expired.push(s.conversation);
            }
        }
        for c in &expired {
            let entry = AuditEntry::sign(
                &self.keys,
                AuditEvent::Erasure {
                    conversation: *c,
                    reason: ErasureReason::Retention.as_str().to_owned(),
                },
                self.clock.now(),
            );
            self.erase_conversation(c, entry).await?;
        }
        self.sweep_attachments().await?;
        Ok(expired.len())
    }
}
