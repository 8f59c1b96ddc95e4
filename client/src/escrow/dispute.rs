//! Dispute tickets: a master opens one, arbiters decide it, the master closes it (or the relay
//! does, once the release was collected or the arbiters rejected it).

use sealdesk_protocol::{
    card::Role,
    ids::{ConversationId, EpochRange, TokenId},
    release::{ArbiterDecision, BoundRecord, DisputeClose, DisputeParams, DisputeTicket, Verdict},
    wire::{Request, Response, TicketState},
};

use super::DEFAULT_VALIDITY_SECS;
use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::reply::{expect_ok, unexpected};
use crate::transcript::erased::Gone;
use crate::{now, rng};

impl Client {
    /// Master: opens a dispute ticket for `epochs` (all so far when `None`).
    ///
    /// # Errors
    /// [`ClientError::WrongRole`]; [`ClientError::ConversationErased`] or
    /// [`ClientError::ErasureNotGenuine`] when the relay no longer serves the conversation
    /// (see `master_records`); relay errors.
    pub async fn open_dispute(
        &mut self,
        id: &ConversationId,
        epochs: Option<EpochRange>,
        reason: &str,
    ) -> Result<DisputeTicket> {
        self.account.require(Role::Master, "dispute open")?;
        let (org, records) = self.master_records(id, Gone::Dispute).await?;
        let epochs = match epochs {
            Some(r) => r,
            None => {
                let last =
                    records
                        .last()
                        .map(|r| r.epoch)
                        .ok_or_else(|| ClientError::NoEpochYet {
                            conversation: id.to_string(),
                        })?;
                EpochRange::new(0, last)?
            }
        };
        let policy = self.latest_policy(&org).await?;
        // The ticket names each record it releases (by hash): the arbiters approve those, the
        // trustees release only from them, and the offline verifier checks an export against
        // them. Every epoch of the range must exist already.
        let mut bound = Vec::new();
        for e in epochs.iter() {
            let rec =
                records
                    .iter()
                    .find(|r| r.epoch == e)
                    .ok_or_else(|| ClientError::NoSuchEpoch {
                        conversation: id.to_string(),
                        epoch: e,
                    })?;
            bound.push(BoundRecord {
                epoch: e,
                hash: rec.hash(),
            });
        }
        let ticket = DisputeTicket::issue_bound(
            &mut rng()?,
            self.account.keys(),
            &policy,
            DisputeParams {
                conversation: *id,
                epochs,
                reason: reason.to_owned(),
                valid_secs: DEFAULT_VALIDITY_SECS.min(policy.max_release_validity_secs),
            },
            bound,
            now(),
        )?;
        expect_ok(
            self.session
                .request(Request::OpenTicket(ticket.clone()))
                .await?,
        )?;
        Ok(ticket)
    }

    /// Arbiter or master: tickets of the org with the decisions so far.
    ///
    /// # Errors
    /// Relay errors.
    pub async fn tickets(&self) -> Result<Vec<TicketState>> {
        match self.session.request(Request::ListTickets).await? {
            Response::Tickets(t) => Ok(t),
            other => Err(unexpected("ListTickets", &other)),
        }
    }

    /// Arbiter: approves or rejects a ticket after checking the master's signature.
    ///
    /// # Errors
    /// [`ClientError::WrongRole`], [`ClientError::UnknownTicket`] for an unknown ticket, [`ClientError::NotArbiter`], relay errors.
    pub async fn decide_ticket(
        &mut self,
        ticket: &TokenId,
        verdict: Verdict,
    ) -> Result<TicketState> {
        self.account
            .require(Role::Arbiter, "dispute approve/reject")?;
        let st = self
            .tickets()
            .await?
            .into_iter()
            .find(|t| t.ticket.id == *ticket)
            .ok_or_else(|| ClientError::UnknownTicket {
                ticket: ticket.to_string(),
            })?;
        let policy = self.latest_policy(&st.ticket.org).await?;
        st.ticket.verify(&policy)?;
        if policy
            .arbiter(&self.account.keys().signing_public())
            .is_none()
        {
            return Err(ClientError::NotArbiter {
                org: st.ticket.org.clone(),
            });
        }
        let d = ArbiterDecision::sign(self.account.keys(), &st.ticket, verdict, now())?;
        expect_ok(self.session.request(Request::Decide(d)).await?)?;
        self.tickets()
            .await?
            .into_iter()
            .find(|t| t.ticket.id == *ticket)
            .ok_or_else(|| ClientError::UnexpectedResponse("the ticket disappeared".into()))
    }

    /// Master: closes a dispute ticket (no release follows under it; the legal hold on its
    /// conversation ends and its customer is told), after checking it is this org's ticket.
    ///
    /// # Errors
    /// [`ClientError::WrongRole`], [`ClientError::UnknownTicket`], relay errors (a ticket
    /// already closed: `TicketClosed`).
    pub async fn close_dispute(&mut self, ticket: &TokenId, reason: &str) -> Result<TicketState> {
        self.account.require(Role::Master, "dispute close")?;
        let st = self.find_ticket(ticket).await?;
        let policy = self.latest_policy(&st.ticket.org).await?;
        st.ticket.verify(&policy)?;
        let close = DisputeClose::sign(self.account.keys(), &st.ticket, reason, now());
        expect_ok(self.session.request(Request::CloseTicket(close)).await?)?;
        self.find_ticket(ticket).await
    }

    /// The ticket `id` as the relay lists it.
    async fn find_ticket(&self, id: &TokenId) -> Result<TicketState> {
        self.tickets()
            .await?
            .into_iter()
            .find(|t| t.ticket.id == *id)
            .ok_or_else(|| ClientError::UnknownTicket {
                ticket: id.to_string(),
            })
    }
}
