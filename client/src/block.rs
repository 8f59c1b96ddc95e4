//! Acting on spam: an agent (or the master) closes a conversation as spam and blocks its
//! customer's key for the org; the master lifts a block; both list the blocks in force.
//!
//! A block is a signed org action ([`sealdesk_protocol::block::Block`]) the relay checks and
//! enforces: the blocked customer's next open with the org, and its sends in the org's
//! conversations, are refused with `blocked`. An agent's block also sets the conversation's
//! status to resolved (a status message the customer sees, like `sealdesk status`).

use sealdesk_protocol::{
    block::{Block, BlockReason, Unblock},
    card::Role,
    ids::ConversationId,
    keys::SigningPublicKey,
    status::ConversationStatus,
    wire::{BlockEntry, Request, Response},
};
use serde::Serialize;

use crate::{
    Client,
    error::{ClientError, Result},
    now,
    reply::{expect_ok, unexpected},
};

/// What a block did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Blocked {
    /// The org.
    pub org: String,
    /// The conversation closed.
    pub conversation: ConversationId,
    /// The blocked customer's name.
    pub customer: String,
    /// The status message's sequence number, when an agent closed the conversation.
    pub status_seq: Option<u64>,
}

impl Client {
    /// Agent or master: closes conversation `id` as `reason` and blocks its customer's key for
    /// the org. An agent's conversation is then set to resolved.
    ///
    /// # Errors
    /// [`ClientError::WrongRole`] for anyone but an agent or master;
    /// [`ClientError::UnknownConversation`] for a conversation this account does not know (an
    /// agent's, locally; a master's, among its orgs'); [`ClientError::Relay`] (`forbidden` for
    /// a signer the org does not certify).
    pub async fn block_conversation(
        &mut self,
        id: &ConversationId,
        reason: BlockReason,
    ) -> Result<Blocked> {
        let role = self.account.role();
        let (org, customer) = match role {
            Role::Agent => {
                let meta = self
                    .account
                    .conversation(id)?
                    .ok_or_else(|| ClientError::UnknownConversation(id.to_string()))?;
                (meta.org, meta.customer)
            }
            Role::Master => {
                let found = self
                    .org_conversations()
                    .await?
                    .into_iter()
                    .find(|v| v.info.conversation == *id)
                    .ok_or_else(|| ClientError::UnknownConversation(id.to_string()))?;
                (found.org, found.info.customer)
            }
            other => {
                return Err(ClientError::WrongRole {
                    operation: "block a customer",
                    needed: "agent or master",
                    actual: other.name(),
                });
            }
        };
        let card = self.fetch_card(&customer).await?;
        let block = Block::issue(
            self.account.keys(),
            &org,
            *id,
            card.signing_key,
            reason,
            now(),
        );
        expect_ok(self.session.request(Request::Block(block)).await?)?;
        let status_seq = if role == Role::Agent {
            Some(self.set_status(id, ConversationStatus::Resolved).await?)
        } else {
            None
        };
        Ok(Blocked {
            org,
            conversation: *id,
            customer,
            status_seq,
        })
    }

    /// Agent or master: the blocks in force for `org`.
    ///
    /// # Errors
    /// [`ClientError::Relay`] (`forbidden` for anyone but the org's master and agents).
    pub async fn blocks(&mut self, org: &str) -> Result<Vec<BlockEntry>> {
        match self
            .session
            .request(Request::ListBlocks {
                org: org.to_owned(),
            })
            .await?
        {
            Response::Blocks(b) => Ok(b),
            other => Err(unexpected("ListBlocks", &other)),
        }
    }

    /// The orgs whose blocks this account may list: a master's own orgs, an agent's orgs from
    /// its conversations.
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn block_orgs(&self) -> Result<Vec<String>> {
        let mut orgs = if self.account.role() == Role::Master {
            self.own_orgs()?
        } else {
            self.account
                .conversations()?
                .into_iter()
                .map(|m| m.org)
                .collect()
        };
        orgs.sort();
        orgs.dedup();
        Ok(orgs)
    }

    /// Master: lifts the block of the customer whose card has fingerprint `fingerprint`, in
    /// `org` (or the one org of this master's that blocked it). Returns the org and the
    /// customer's name.
    ///
    /// # Errors
    /// [`ClientError::WrongRole`], [`ClientError::MalformedFingerprint`],
    /// [`ClientError::NotBlocked`] when no block of the org's matches, [`ClientError::Relay`].
    pub async fn unblock(
        &mut self,
        org: Option<&str>,
        fingerprint: &str,
    ) -> Result<(String, String)> {
        self.account.require(Role::Master, "unblock")?;
        crate::error::check_fingerprint_format(fingerprint)?;
        let orgs = match org {
            Some(o) => vec![o.to_owned()],
            None => self.own_orgs()?,
        };
        for org in orgs {
            for entry in self.blocks(&org).await? {
                let Some(customer) = self.blocked_customer(&entry, fingerprint).await? else {
                    continue;
                };
                let u = Unblock::issue(self.account.keys(), &org, customer, now());
                expect_ok(self.session.request(Request::Unblock(u)).await?)?;
                return Ok((org, entry.customer));
            }
        }
        Err(ClientError::NotBlocked {
            fingerprint: fingerprint.to_owned(),
        })
    }

    /// The key `entry` blocks, if the card registered under its customer's name is that key's
    /// and has fingerprint `fingerprint`.
    async fn blocked_customer(
        &mut self,
        entry: &BlockEntry,
        fingerprint: &str,
    ) -> Result<Option<SigningPublicKey>> {
        let card = match self.fetch_card(&entry.customer).await {
            Ok(c) => c,
            Err(ClientError::Relay { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(
            (card.signing_key == entry.block.customer && card.fingerprint().matches(fingerprint))
                .then_some(entry.block.customer),
        )
    }
}
