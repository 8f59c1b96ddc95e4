//! `--conversation`'s argument: a full conversation id (32 hex digits), or the start of one
//! (at least [`MIN_PREFIX`] hex digits, as the chat window and `audit` show them) that only one
//! conversation this account lists has. A prefix no local conversation has is tried again once
//! after fetching the conversation list from the relay ([`ConvRef::resolve_synced`]): a
//! conversation opened elsewhere (another device, or assigned to an agent who has not synced
//! since) is found too.

use anyhow::Result;
use sealdesk_client::{Account, Client};
use sealdesk_protocol::ids::ConversationId;

use crate::error::CliError;

/// The fewest hex digits a short conversation id may have (what the chat window shows).
pub(crate) const MIN_PREFIX: usize = 8;

/// A `--conversation` argument, checked for its form before the vault is opened.
#[derive(Debug, Clone)]
pub(super) enum ConvRef {
    /// A full id: taken as it is.
    Full(ConversationId),
    /// The start of an id, lower-case: resolved against the account's conversations.
    Prefix(String),
}

impl ConvRef {
    /// Parses `s`: a full id, or a prefix of at least [`MIN_PREFIX`] hex digits.
    ///
    /// # Errors
    /// [`CliError::BadConversationId`] for anything else.
    pub(super) fn parse(s: &str) -> Result<Self, CliError> {
        if let Ok(id) = ConversationId::parse(s) {
            return Ok(Self::Full(id));
        }
        let prefix = s.trim().to_ascii_lowercase();
        if prefix.len() >= MIN_PREFIX
            && prefix.len() < 32
            && prefix.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Ok(Self::Prefix(prefix));
        }
        Err(CliError::BadConversationId(s.to_owned()))
    }

    /// The conversation this names, among those `account` lists.
    ///
    /// # Errors
    /// [`CliError::NoSuchConversation`] when no listed conversation starts so,
    /// [`CliError::AmbiguousConversationId`] when more than one does; the vault's error.
    pub(super) fn resolve(&self, account: &Account) -> Result<ConversationId> {
        let prefix = match self {
            Self::Full(id) => return Ok(*id),
            Self::Prefix(p) => p,
        };
        let matching: Vec<ConversationId> = account
            .conversations()?
            .into_iter()
            .map(|m| m.id)
            .filter(|id| id.to_string().starts_with(prefix.as_str()))
            .collect();
        match matching.as_slice() {
            [id] => Ok(*id),
            [] => Err(CliError::NoSuchConversation(prefix.clone()).into()),
            many => Err(CliError::AmbiguousConversationId {
                prefix: prefix.clone(),
                count: many.len(),
            }
            .into()),
        }
    }
}

impl ConvRef {
    /// [`Self::resolve`] among the conversations `client`'s account lists; when none starts
    /// with the prefix, the relay's list of this account's conversations is fetched once and
    /// the prefix tried again before it is refused.
    ///
    /// # Errors
    /// As [`Self::resolve`], and the relay's error while fetching the list.
    pub(super) async fn resolve_synced(&self, client: &mut Client) -> Result<ConversationId> {
        match self.resolve(client.account()) {
            Err(e)
                if matches!(
                    e.downcast_ref::<CliError>(),
                    Some(CliError::NoSuchConversation(_))
                ) =>
            {
                client.refresh_conversations().await?;
                self.resolve(client.account())
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An account holding conversations with these ids.
    fn account_with(dir: &std::path::Path, ids: &[[u8; 16]]) -> Account {
        let a = Account::create(
            dir,
            "a passphrase for tests",
            sealdesk_client::vault::KdfParams::TESTING,
            "carol",
            sealdesk_protocol::card::Role::Customer,
        )
        .unwrap();
        for (i, b) in ids.iter().enumerate() {
            let meta = sealdesk_client::account::ConvMeta {
                id: ConversationId::from_bytes(b).unwrap(),
                org: "acme".into(),
                customer: "carol".into(),
                agent: "alice".into(),
                created_at: i as u64,
                cursor: 0,
                delivered_sent: 0,
                read_local: 0,
                read_sent: 0,
                delivered_by: Default::default(),
                read_by: Default::default(),
                last_epoch: None,
                transferred_out: false,
                erased: false,
            };
            a.save_conversation(&meta).unwrap();
        }
        a
    }

    #[test]
    fn a_prefix_resolves_only_when_one_conversation_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut one = [0u8; 16];
        one[..5].copy_from_slice(&[0xab, 0xcd, 0xef, 0x01, 0x10]);
        let mut two = one;
        two[4] = 0x20;
        let a = account_with(dir.path(), &[one, two]);
        let one_id = ConversationId::from_bytes(&one).unwrap();
        let resolved = ConvRef::parse("abcdef0110").unwrap().resolve(&a).unwrap();
        assert_eq!(resolved, one_id);
        let err = ConvRef::parse("abcdef01").unwrap().resolve(&a).unwrap_err();
        assert!(matches!(
            err.downcast_ref::<CliError>(),
            Some(CliError::AmbiguousConversationId { count: 2, .. })
        ));
        let err = ConvRef::parse("12345678").unwrap().resolve(&a).unwrap_err();
        assert!(matches!(
            err.downcast_ref::<CliError>(),
            Some(CliError::NoSuchConversation(_))
        ));
    }

    #[test]
    fn short_or_non_hex_is_refused_before_opening_the_vault() {
        assert!(matches!(
            ConvRef::parse("abcd"),
            Err(CliError::BadConversationId(_))
        ));
        assert!(matches!(
            ConvRef::parse("zzzzzzzz"),
            Err(CliError::BadConversationId(_))
        ));
        assert!(matches!(ConvRef::parse("ABCDEF01"), Ok(ConvRef::Prefix(p)) if p == "abcdef01"));
    }
}
