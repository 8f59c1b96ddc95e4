//! Dispute tickets' lifecycle: a ticket is open until it expires or is closed — by the org's
//! master's signed [`DisputeClose`], or by the relay once the release it justified was
//! collected by the master, or once enough arbiters rejected it that it can never be approved.
//! A close is logged (an entry signed by the relay's log key, delivered into the conversation
//! as a notice, so its customer is told) in the same transaction as the closed ticket; a
//! closed ticket takes no decision and justifies no release, and its legal hold is over.

use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent},
    ids::TokenId,
    policy::VerifiedPolicy,
    release::{ClosedBecause, DisputeClose, Justification, ReleaseRequest},
    wire::{ErrorCode, Response, TicketClosed, TicketState},
};
use tracing::info;

use super::{
    Caller, Origin, Reject, Reply, Service, cluster::until_stored, enc, lock, reject,
    table::Appended,
};
use crate::store::{Batch, Collection};

/// A close made under the write lock, to announce once it is durable.
pub(super) struct Closed {
    state: TicketState,
    notice: Option<Appended>,
}

impl Service {
    /// Master: closes a ticket on its signed [`DisputeClose`].
    pub(super) async fn close_ticket(&self, caller: &Caller, c: DisputeClose) -> Reply {
        let policy = self.policies.current(&c.org)?;
        if policy.master_key() != caller.key() || c.master != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "only the org's master closes dispute tickets",
            );
        }
        // A close whose notice another node's append refused was not stored at all: made
        // again from a fresh read of the ticket.
        until_stored(|| async {
            let closed = {
                let _w = lock(&self.writes)?;
                let (st, before) = self.ticket_record(&c.ticket)?;
                c.verify(&policy, &st.ticket)?;
                if st.closed.is_some() {
                    return reject(ErrorCode::TicketClosed, "the ticket is already closed");
                }
                let because = ClosedBecause::Master(c.reason.chars().take(500).collect());
                self.close_locked(st, &before, because, Some(c.clone()))?
            };
            let Some(closed) = closed else {
                return Ok(None);
            };
            self.commit.durable().await?;
            if self.close_refused(&closed)? {
                return Ok(None);
            }
            self.announce_close(&policy, closed, caller.origin());
            Ok(Some(Response::Ok))
        })
        .await
    }

    /// Once a close is durable: whether the store refused its notice (another relay node
    /// appended to the conversation first), and with it the whole close (see
    /// [`Service::item_refused`]).
    pub(super) fn close_refused(&self, closed: &Closed) -> Result<bool, Reject> {
        match &closed.notice {
            // A close's notice, like a release's, has no epoch (`Service::log_append_with`).
            Some((item, _)) => self.item_refused(item, None),
            None => Ok(false),
        }
    }

    /// Under the write lock: logs the close of `st` (with its notice in the conversation, if
    /// the relay still has it) and stores the closed ticket, in one transaction. `before` is
    /// the ticket record `st` was read from: the closed ticket replaces it only if the record
    /// still holds it (a conditional write, as [`Service::update_record`] makes), so a decision
    /// another relay node stored since is never overwritten by the close. `None`, nothing
    /// written, if the store refused the close at once (the record changed, or the log index
    /// was taken): the caller reads the ticket again and closes again. A refusal when the
    /// close commits comes with its notice ([`Self::close_refused`]).
    pub(super) fn close_locked(
        &self,
        mut st: TicketState,
        before: &[u8],
        because: ClosedBecause,
        statement: Option<DisputeClose>,
    ) -> Result<Option<Closed>, Reject> {
        let t = &st.ticket;
        let entry = AuditEntry::sign(
            &self.keys,
            AuditEvent::DisputeClosed {
                org: t.org.clone(),
                conversation: t.conversation,
                ticket: t.id,
                because: because.clone(),
            },
            self.clock.now(),
        );
        let notice = self.convs.get(&t.conversation)?.map(|_| t.conversation);
        let at = self.clock.now();
        let key = t.id.as_bytes().to_vec();
        let closed = |index| TicketClosed {
            at,
            because: because.clone(),
            statement: statement.clone(),
            index,
        };
        let Some((index, _, notice)) = self.log_append_with(
            &entry,
            None,
            |index| {
                let mut s = st.clone();
                s.closed = Some(closed(index));
                let mut b = Batch::new();
                b.replace_if(Collection::Tickets, &key, before, &enc(&s)?);
                Ok(b)
            },
            notice,
        )?
        else {
            return Ok(None);
        };
        st.closed = Some(closed(index));
        info!(ticket = %st.ticket.id, ?because, "dispute ticket closed");
        Ok(Some(Closed { state: st, notice }))
    }

    /// Ticket `id` and its record's bytes as stored (what a conditional write compares).
    pub(super) fn ticket_record(&self, id: &TokenId) -> Result<(TicketState, Vec<u8>), Reject> {
        match self.store.get(Collection::Tickets, id.as_bytes())? {
            Some(b) => Ok((super::dec(&b, "ticket")?, b)),
            None => reject(ErrorCode::NotFound, "no such ticket"),
        }
    }

    /// Once a close is durable: the notice to the conversation, the closed ticket to the
    /// arbiters and the master.
    pub(super) fn announce_close(&self, policy: &VerifiedPolicy, closed: Closed, origin: Origin) {
        if let Some((item, audience)) = &closed.notice {
            self.push_item(item, audience, origin);
        }
        self.notify_ticket(policy, &closed.state);
    }

    /// The ticket a dispute release request names, refused if it is closed.
    pub(super) fn check_ticket_open(&self, r: &ReleaseRequest) -> Result<(), Reject> {
        let Justification::Dispute { ticket, .. } = &r.justification else {
            return Ok(());
        };
        self.check_open(&ticket.id)
    }

    /// Refuses a closed ticket (an unknown one is left to the other checks).
    pub(super) fn check_open(&self, id: &TokenId) -> Result<(), Reject> {
        match self.store.get(Collection::Tickets, id.as_bytes())? {
            Some(b) if super::dec::<TicketState>(&b, "ticket")?.closed.is_some() => reject(
                ErrorCode::TicketClosed,
                "the dispute ticket is closed: no release follows under it",
            ),
            _ => Ok(()),
        }
    }

    /// After the master collected the shares of a dispute release (`shares` distinct
    /// trustees): closes its ticket once they reach the policy's threshold.
    pub(super) async fn close_if_collected(
        &self,
        r: &ReleaseRequest,
        trustees: usize,
    ) -> Result<(), Reject> {
        let Justification::Dispute { ticket, .. } = &r.justification else {
            return Ok(());
        };
        let policy = self.policies.current(&r.org)?;
        if trustees < usize::from(policy.trustee_threshold) {
            return Ok(());
        }
        until_stored(|| async {
            let closed = {
                let _w = lock(&self.writes)?;
                let (st, before) = self.ticket_record(&ticket.id)?;
                if st.closed.is_some() {
                    return Ok(Some(()));
                }
                self.close_locked(st, &before, ClosedBecause::Released, None)?
            };
            let Some(closed) = closed else {
                return Ok(None);
            };
            self.commit.durable().await?;
            if self.close_refused(&closed)? {
                return Ok(None);
            }
            self.announce_close(&policy, closed, Origin::relay(self.keys.signing_public()));
            Ok(Some(()))
        })
        .await
    }
}
