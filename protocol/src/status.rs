//! Conversation status — open, waiting, resolved — set by the conversation's agent as an
//! ordinary message of kind [`ContentKind::Status`]: signed, encrypted under the epoch's keys
//! and stored like any other message, so the relay learns only that a message was sent.
//!
//! ```text
//!   body = status (1 byte: 1 open, 2 waiting, 3 resolved)        kind = 3 in the header
//! ```
//!
//! Receivers accept a status only from a member whose card in the epoch record is an agent's
//! ([`status_of`]); the message checks (signature, membership, commitment, AEAD) come first.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    card::Role,
    message::{ContentKind, Opened},
};

/// Where a conversation stands, as its agent set it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    /// Being worked on (the status of a conversation nobody set one for).
    Open,
    /// Waiting for the customer.
    Waiting,
    /// Resolved.
    Resolved,
}

impl ConversationStatus {
    /// The one-byte body of the status message.
    pub fn body(self) -> [u8; 1] {
        [match self {
            ConversationStatus::Open => 1,
            ConversationStatus::Waiting => 2,
            ConversationStatus::Resolved => 3,
        }]
    }

    /// Reads a status message's body.
    ///
    /// # Errors
    /// [`Error::Decode`] for anything but one known byte.
    pub fn from_body(body: &[u8]) -> Result<Self> {
        match body {
            [1] => Ok(ConversationStatus::Open),
            [2] => Ok(ConversationStatus::Waiting),
            [3] => Ok(ConversationStatus::Resolved),
            _ => Err(Error::Decode {
                what: "conversation status",
                reason: format!("a {}-byte body that is no known status", body.len()),
            }),
        }
    }

    /// The status's name (`open`, `waiting`, `resolved`).
    pub fn name(self) -> &'static str {
        match self {
            ConversationStatus::Open => "open",
            ConversationStatus::Waiting => "waiting",
            ConversationStatus::Resolved => "resolved",
        }
    }

    /// Parses a name as printed by [`Self::name`].
    ///
    /// # Errors
    /// [`Error::Decode`] for another word.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "open" => Ok(ConversationStatus::Open),
            "waiting" => Ok(ConversationStatus::Waiting),
            "resolved" => Ok(ConversationStatus::Resolved),
            other => Err(Error::Decode {
                what: "conversation status",
                reason: format!("{other:?} is not open, waiting or resolved"),
            }),
        }
    }
}

impl fmt::Display for ConversationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The status an opened message sets, given the role of its sender's card in the epoch record.
///
/// # Errors
/// [`Error::Decode`] if the message is not a status message or its body is no status;
/// [`Error::WrongRole`] if its sender is not an agent.
pub fn status_of(opened: &Opened, sender_role: Role) -> Result<ConversationStatus> {
    if opened.header.kind != ContentKind::Status {
        return Err(Error::Decode {
            what: "conversation status",
            reason: "not a status message".into(),
        });
    }
    if sender_role != Role::Agent {
        return Err(Error::WrongRole {
            expected: Role::Agent.name(),
            found: sender_role.name(),
        });
    }
    ConversationStatus::from_body(&opened.body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{
        epoch::tests::first_epoch,
        message::{EpochKeys, ReplayWindows},
        policy::tests::org,
    };

    #[test]
    fn an_agents_status_is_read_and_a_customers_is_refused() {
        let o = org(320);
        let (rec, k) = first_epoch(&o, 321);
        let keys = EpochKeys::new(&k, &rec);
        let mut w = ReplayWindows::default();
        for (i, st) in [
            ConversationStatus::Open,
            ConversationStatus::Waiting,
            ConversationStatus::Resolved,
        ]
        .into_iter()
        .enumerate()
        {
            let env = keys
                .seal_message(&o.agent, i as u64, ContentKind::Status, 5, &st.body())
                .unwrap();
            let opened = keys.open_message(&env, &mut w).unwrap();
            assert_eq!(status_of(&opened, Role::Agent).unwrap(), st);
            assert_eq!(ConversationStatus::parse(st.name()).unwrap(), st);
        }
        // The customer is a member and signs validly, but may not set the status.
        let env = keys
            .seal_message(&o.customer, 0, ContentKind::Status, 5, &[3])
            .unwrap();
        let opened = keys.open_message(&env, &mut w).unwrap();
        assert_eq!(
            status_of(&opened, Role::Customer).err(),
            Some(Error::WrongRole {
                expected: "agent",
                found: "customer"
            })
        );
        // A text message is no status; a status body must be one known byte.
        let env = keys
            .seal_message(&o.agent, 9, ContentKind::Text, 5, b"\x03")
            .unwrap();
        let opened = keys.open_message(&env, &mut w).unwrap();
        assert!(status_of(&opened, Role::Agent).is_err());
        assert!(ConversationStatus::from_body(&[]).is_err());
        assert!(ConversationStatus::from_body(&[4]).is_err());
        assert!(ConversationStatus::from_body(&[3, 3]).is_err());
        assert!(ConversationStatus::parse("closed").is_err());
    }

    #[test]
    fn a_status_message_from_a_non_member_or_tampered_does_not_open() {
        let o = org(322);
        let (rec, k) = first_epoch(&o, 323);
        let keys = EpochKeys::new(&k, &rec);
        let mut w = ReplayWindows::default();
        assert_eq!(
            keys.seal_message(&o.agent2, 0, ContentKind::Status, 5, &[3])
                .err(),
            Some(Error::NotAMember)
        );
        let mut env = keys
            .seal_message(&o.agent, 0, ContentKind::Status, 5, &[2])
            .unwrap();
        env.ciphertext[0] ^= 1;
        assert!(keys.open_message(&env, &mut w).is_err());
    }
}
