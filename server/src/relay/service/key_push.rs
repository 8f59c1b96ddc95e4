//! Telling customers at once that the agent of their conversations was re-certified for a new
//! key (PROTOCOL.md §13.5 `agent_key_changed`), instead of at their client's next periodic
//! check.
//!
//! Only sessions that asked (`watch_agent_keys`) get the push: an older client decodes no push
//! kind it does not know and would end its session on one. After a re-certification
//! ([`Service::rebind_agent`]) each customer of the moved conversations is sent one push naming
//! the org, the agent, the new card and that customer's conversations with it; in a cluster the
//! push is forwarded to the other nodes like any push, and the receiving node gives it, too,
//! only to its sessions that asked ([`is_key_push`]). The push is a hint: the client fetches
//! the agent's certificate and verifies it under the org's policy before it shows a key change.

use std::collections::HashMap;

use bytes::Bytes;
use sealdesk_protocol::{
    card::IdentityCard,
    ids::ConversationId,
    keys::SigningPublicKey,
    wire::{self, Frame, MAX_KEY_PUSH_CONVERSATIONS, Push},
};
use tracing::{debug, warn};

use super::Service;

/// How every encoded `agent_key_changed` push begins: the version byte, then the CBOR of
/// `{ "push": { "agent_key_changed": … } }` up to the kind's name. A forwarded push is routed by
/// this prefix, without decoding it.
const KEY_PUSH_PREFIX: &[u8] = b"\x01\xa1\x64push\xa1\x71agent_key_changed";

/// Whether an encoded push frame is an `agent_key_changed` push (for the sessions that asked
/// only).
pub(crate) fn is_key_push(frame: &[u8]) -> bool {
    frame.starts_with(KEY_PUSH_PREFIX)
}

impl Service {
    /// After agent `card` of `org` was re-certified: tells each customer of the `moved`
    /// conversations (conversation, customer), on this node and in a cluster on the others, in
    /// the sessions that asked.
    pub(super) fn tell_customers_of_new_key(
        &self,
        org: &str,
        card: &IdentityCard,
        moved: &[(ConversationId, SigningPublicKey)],
    ) {
        let mut by_customer: HashMap<SigningPublicKey, Vec<ConversationId>> = HashMap::new();
        for (conversation, customer) in moved {
            let list = by_customer.entry(*customer).or_default();
            if list.len() < MAX_KEY_PUSH_CONVERSATIONS {
                list.push(*conversation);
            }
        }
        for (customer, conversations) in by_customer {
            let push = Push::AgentKeyChanged {
                org: org.to_owned(),
                agent: card.name.clone(),
                card: card.clone(),
                conversations,
            };
            match wire::encode(&Frame::Push(push)) {
                Ok(bytes) => {
                    let told = self
                        .hub
                        .push_key_watchers(&customer, &Bytes::from(bytes.clone()));
                    debug!(told, "customer told of a re-certified agent");
                    self.forward(&customer, None, &bytes);
                }
                Err(e) => warn!(error = %e, "an agent key push does not fit a frame"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sealdesk_protocol::{
        card::{IdentityCard, Role},
        keys::IdentityKeys,
    };

    use super::*;

    #[test]
    fn the_prefix_matches_an_encoded_key_push_and_nothing_else() {
        let keys = IdentityKeys::generate(&mut rand::rng());
        let card = IdentityCard::issue(&keys, "alice", Role::Agent, 1)
            .unwrap()
            .card()
            .clone();
        let push = wire::encode(&Frame::Push(Push::AgentKeyChanged {
            org: "acme".into(),
            agent: "alice".into(),
            card,
            conversations: Vec::new(),
        }))
        .unwrap();
        assert!(is_key_push(&push));
        let other = wire::encode(&Frame::Push(Push::AuditGrew { size: 1 })).unwrap();
        assert!(!is_key_push(&other));
    }
}
