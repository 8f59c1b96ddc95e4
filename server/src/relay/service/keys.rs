//! Every storage key the relay's service writes: which [`Collection`] (sled tree) holds what,
//! under which key layout. Nothing else in the service builds a key by hand. These layouts
//! are the on-disk format: change none of them.
//!
//! | collection      | key                                    | value                                  |
//! |-----------------|----------------------------------------|----------------------------------------|
//! | `names`         | account name (UTF-8)                   | its signing key                        |
//! | `cards`         | signing key                            | the identity card (CBOR)               |
//! | `policies`      | [`policy_key`]: org ‖ 0 ‖ version (BE)  | the signed policy (CBOR)               |
//! | `certificates`  | [`certificate_key`]: org ‖ 0 ‖ agent   | the agent certificate (CBOR)           |
//! | `conversations` | conversation id                        | `ConvState` (CBOR), see `ConvTable`    |
//! | `messages`      | [`item_key`]: conversation ‖ seq (BE)  | `StoredItem` (CBOR)                    |
//! | `epochs`        | [`epoch_key`]: conversation ‖ epoch (BE) | the epoch record (CBOR)              |
//! | `message_keys`  | [`epoch_dedupe_key`]: `epoch` ‖ conversation ‖ epoch | the item's seq (BE)      |
//! |                 | [`legacy_counter_prefix`] ‖ counter (old builds only) | —                        |
//! | `deliveries`    | [`delivery_key`]: conversation ‖ member | highest delivered seq (BE)            |
//! | `releases`      | release request id                     | `ReleaseState` (CBOR)                  |
//! | `tickets`       | ticket id                              | `TicketState` (CBOR)                   |
//! | `audit_leaves`  | index (BE)                             | the audit entry (CBOR)                 |
//! | `meta`          | [`RELAY_IDENTITY`]                     | the relay's 64 secret bytes            |
//! |                 | [`CONSENT_INDEX_FILLED`]               | `1` once old consents are indexed      |
//! |                 | [`ORG_INDEX_FILLED`]                   | `1` once old certificates and policies are indexed |
//! |                 | [`consent_key`]: `consent` ‖ conversation ‖ token id | the consent's signer     |
//! |                 | [`release_marker_key`]: `release` ‖ request hash ‖ trustee | the entry's index (BE) |
//! |                 | [`cosignature_key`]: `cosig/` ‖ witness | its latest cosignature (CBOR)         |
//! |                 | [`account_bytes_key`]: `bytes/account/` ‖ key | attachment bytes stored (BE) |
//! |                 | [`org_bytes_key`]: `bytes/org/` ‖ org   | attachment bytes stored (BE)          |
//! | `attachments`   | [`attachment_key`]: `r` ‖ conversation ‖ id | the upload's record (CBOR)        |
//! |                 | [`attachment_chunk_key`]: `c` ‖ conversation ‖ id ‖ index (BE) | a chunk's ciphertext |
//! | `agent_orgs`    | [`agent_org_key`]: agent ‖ 0 ‖ org      | empty: a certificate of agent in org was stored |
//! | `master_orgs`   | [`master_org_key`]: master key ‖ org    | empty: a policy of org named this master |

use sealdesk_protocol::{
    ids::{AttachmentId, ConversationId, TokenId},
    keys::SigningPublicKey,
};

#[cfg(doc)]
use crate::store::Collection;

/// The key of the relay's identity (its 64 secret bytes) in [`Collection::Meta`].
pub(crate) const RELAY_IDENTITY: &[u8] = b"relay-identity";
/// [`RELAY_IDENTITY`]'s place in the store, for errors.
pub(super) const RELAY_IDENTITY_LOCATION: &str = "key `relay-identity` of the `meta` tree";

/// Key in [`Collection::Meta`] set once the consents shared before the relay indexed them
/// have been indexed (at the first start of a build that does it); a store without it is
/// indexed at start.
pub const CONSENT_INDEX_FILLED: &[u8] = b"index/consents-filled";

/// Key in [`Collection::Meta`] set once the certificates and policies stored before the relay
/// indexed them ([`Collection::AgentOrgs`], [`Collection::MasterOrgs`]) have been indexed; a
/// store without it is indexed at start.
pub const ORG_INDEX_FILLED: &[u8] = b"index/orgs-filled";

/// Version `version` of `org`'s policy, in [`Collection::Policies`]. Big-endian, so the last
/// key under [`org_prefix`] is the newest version.
pub(super) fn policy_key(org: &str, version: u32) -> Vec<u8> {
    let mut k = org_prefix(org);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// The prefix of `org`'s keys in [`Collection::Policies`] and [`Collection::Certificates`].
pub(super) fn org_prefix(org: &str) -> Vec<u8> {
    let mut k = org.as_bytes().to_vec();
    k.push(0);
    k
}

/// The certificate of agent `agent` (its account name) in `org`, in
/// [`Collection::Certificates`].
pub(super) fn certificate_key(org: &str, agent: &str) -> Vec<u8> {
    let mut k = org_prefix(org);
    k.extend_from_slice(agent.as_bytes());
    k
}

/// The index entry saying that a certificate of agent `agent` (its account name) in `org` was
/// stored, in [`Collection::AgentOrgs`]. Names and org names hold no 0 byte (they are
/// `A-Z a-z 0-9 . _ -`), so [`agent_orgs_prefix`] finds exactly this agent's entries.
pub(super) fn agent_org_key(agent: &str, org: &str) -> Vec<u8> {
    let mut k = agent_orgs_prefix(agent);
    k.extend_from_slice(org.as_bytes());
    k
}

/// The prefix of every [`agent_org_key`] of agent `agent`.
pub(super) fn agent_orgs_prefix(agent: &str) -> Vec<u8> {
    let mut k = agent.as_bytes().to_vec();
    k.push(0);
    k
}

/// The index entry saying that a policy of `org` naming `master` as its master was stored, in
/// [`Collection::MasterOrgs`]. The key is 32 bytes, so its bytes are the prefix of its
/// entries ([`master_orgs_prefix`]).
pub(super) fn master_org_key(master: &SigningPublicKey, org: &str) -> Vec<u8> {
    let mut k = master_orgs_prefix(master);
    k.extend_from_slice(org.as_bytes());
    k
}

/// The prefix of every [`master_org_key`] of `master`.
pub(super) fn master_orgs_prefix(master: &SigningPublicKey) -> Vec<u8> {
    master.as_bytes().to_vec()
}

/// The index entry of a consent shared in `c` (in [`Collection::Meta`]; the value is the
/// consent's signing key). Keyed by conversation first, so erasure finds them by prefix.
pub(super) fn consent_key(c: &ConversationId, id: &TokenId) -> Vec<u8> {
    let mut k = consent_prefix(c);
    k.extend_from_slice(id.as_bytes());
    k
}

/// The prefix of every [`consent_key`] of conversation `c`.
pub(super) fn consent_prefix(c: &ConversationId) -> Vec<u8> {
    let mut k = b"consent".to_vec();
    k.extend_from_slice(c.as_bytes());
    k
}

/// Item `seq` of conversation `c` in [`Collection::Messages`] (the conversation id is the
/// prefix of all its items, in order).
/// Written by [`ConversationLog`](crate::store::ConversationLog)'s default methods (as
/// `prefixed_seq_key`), which the test below holds to this layout.
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "the layout the log's default methods write")
)]
pub(super) fn item_key(c: &ConversationId, seq: u64) -> Vec<u8> {
    let mut k = c.as_bytes().to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The record of epoch `epoch` of conversation `c` in [`Collection::Epochs`].
pub(super) fn epoch_key(c: &ConversationId, epoch: u32) -> Vec<u8> {
    let mut k = c.as_bytes().to_vec();
    k.extend_from_slice(&epoch.to_be_bytes());
    k
}

/// The duplicate key that makes epoch `epoch` of `c` storable once, in
/// [`Collection::MessageKeys`]: two racing records for one epoch cannot both be stored.
pub(super) fn epoch_dedupe_key(c: &ConversationId, epoch: u32) -> Vec<u8> {
    let mut k = epoch_dedupe_prefix(c);
    k.extend_from_slice(&epoch.to_be_bytes());
    k
}

/// The prefix of every [`epoch_dedupe_key`] of `c`.
pub(super) fn epoch_dedupe_prefix(c: &ConversationId) -> Vec<u8> {
    let mut k = b"epoch".to_vec();
    k.extend_from_slice(c.as_bytes());
    k
}

/// The prefix under which earlier relay builds kept one duplicate key per message of a
/// (conversation, epoch, sender), ending in the big-endian counter. Nothing writes these any
/// more; they are read for conversations stored by such a build (see `ConvState::counters`)
/// and deleted with the conversation.
pub(super) fn legacy_counter_prefix(
    c: &ConversationId,
    (epoch, sender): (u32, SigningPublicKey),
) -> Vec<u8> {
    let mut k = legacy_counter_conversation_prefix(c);
    k.extend_from_slice(&epoch.to_be_bytes());
    k.extend_from_slice(sender.as_bytes());
    k
}

/// The prefix of every [`legacy_counter_prefix`] of `c`.
pub(super) fn legacy_counter_conversation_prefix(c: &ConversationId) -> Vec<u8> {
    let mut k = b"msg".to_vec();
    k.extend_from_slice(c.as_bytes());
    k
}

/// Where `member`'s delivery watermark in `c` is kept, in [`Collection::Deliveries`] (the
/// conversation id is the prefix, so erasure finds them).
pub(super) fn delivery_key(c: &ConversationId, member: &SigningPublicKey) -> Vec<u8> {
    let mut k = c.as_bytes().to_vec();
    k.extend_from_slice(member.as_bytes());
    k
}

/// The marker that trustee `signer` logged its release entry for the request hashing to
/// `request_hash` (in [`Collection::Meta`]; the value is the entry's index): a share is
/// accepted only after it.
pub(super) fn release_marker_key(request_hash: &[u8; 32], signer: &SigningPublicKey) -> Vec<u8> {
    let mut k = b"release".to_vec();
    k.extend_from_slice(request_hash);
    k.extend_from_slice(signer.as_bytes());
    k
}

/// Where a witness's latest cosignature is kept (in [`Collection::Meta`]).
pub(super) fn cosignature_key(witness: &SigningPublicKey) -> Vec<u8> {
    let mut k = b"cosig/".to_vec();
    k.extend_from_slice(witness.as_bytes());
    k
}

/// Who may still read the audit entries of erased conversation `c` — its org and customer —
/// written with its erasure entry (in [`Collection::Meta`]), since the conversation's record
/// is gone (`audit_log::ErasedParties`).
pub(super) fn erased_parties_key(c: &ConversationId) -> Vec<u8> {
    let mut k = b"erased/".to_vec();
    k.extend_from_slice(c.as_bytes());
    k
}

/// An attachment's record in [`Collection::Attachments`]: `r` ‖ conversation ‖ id. Records
/// and chunks are apart (`r`, `c`), so that the sweep reads records without reading chunks.
pub(super) fn attachment_key(c: &ConversationId, id: &AttachmentId) -> Vec<u8> {
    let mut k = attachment_prefix(c);
    k.extend_from_slice(id.as_bytes());
    k
}

/// The prefix of every [`attachment_key`] of conversation `c` (`r` alone: of every record).
pub(super) fn attachment_prefix(c: &ConversationId) -> Vec<u8> {
    let mut k = ATTACHMENT_RECORDS.to_vec();
    k.extend_from_slice(c.as_bytes());
    k
}

/// The first byte of every attachment record's key.
pub(super) const ATTACHMENT_RECORDS: &[u8] = b"r";

/// Chunk `index` of an attachment, in [`Collection::Attachments`]: `c` ‖ conversation ‖ id ‖
/// index (BE).
pub(super) fn attachment_chunk_key(c: &ConversationId, id: &AttachmentId, index: u64) -> Vec<u8> {
    let mut k = b"c".to_vec();
    k.extend_from_slice(c.as_bytes());
    k.extend_from_slice(id.as_bytes());
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// The attachment bytes an account has stored, in [`Collection::Meta`].
pub(super) fn account_bytes_key(account: &SigningPublicKey) -> Vec<u8> {
    let mut k = b"bytes/account/".to_vec();
    k.extend_from_slice(account.as_bytes());
    k
}

/// The attachment bytes the conversations of an org have stored, in [`Collection::Meta`].
pub(super) fn org_bytes_key(org: &str) -> Vec<u8> {
    let mut k = b"bytes/org/".to_vec();
    k.extend_from_slice(org.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn layouts_are_the_stored_ones() {
        let c = ConversationId::from_bytes(&[7u8; 16]).unwrap();
        let mut p = b"acme\0".to_vec();
        p.extend_from_slice(&3u32.to_be_bytes());
        assert_eq!(policy_key("acme", 3), p);
        assert_eq!(certificate_key("acme", "ann"), b"acme\0ann".to_vec());
        assert_eq!(agent_org_key("ann", "acme"), b"ann\0acme".to_vec());
        assert!(agent_org_key("ann", "acme").starts_with(&agent_orgs_prefix("ann")));
        assert!(!agent_org_key("anna", "acme").starts_with(&agent_orgs_prefix("ann")));
        let master =
            sealdesk_protocol::keys::IdentityKeys::generate(&mut rand::rng()).signing_public();
        let mut m = master.as_bytes().to_vec();
        m.extend_from_slice(b"acme");
        assert_eq!(master_org_key(&master, "acme"), m);
        let mut e = b"epoch".to_vec();
        e.extend_from_slice(c.as_bytes());
        e.extend_from_slice(&2u32.to_be_bytes());
        assert_eq!(epoch_dedupe_key(&c, 2), e);
        assert_eq!(epoch_key(&c, 2), e[5..].to_vec());
        assert_eq!(item_key(&c, 9)[16..], 9u64.to_be_bytes());
        assert_eq!(
            item_key(&c, 9),
            crate::store::prefixed_seq_key(c.as_bytes(), 9),
            "the conversation log's default layout is this one"
        );
    }
}
