//! Reading the relay's stored bytes from outside a running relay: what the migration to
//! PostgreSQL (`crate::migrate`) needs to know about them, kept here because only `relay`
//! knows the protocol crate (the crate's architecture invariant).

use sealdesk_protocol::{audit::AuditEntry, keys::IdentityKeys, merkle, wire::Item};

use super::state::StoredItem;
use crate::error::{Error, Result};

/// What the database's `UNIQUE (conversation, epoch, sender, counter)` needs to know of one
/// stored log item: its epoch, sender (signing key bytes) and counter if it is a message,
/// `None` for every other item (an epoch record, a hand-off, a consent, a notice).
pub type MessageIdentity = Option<(u32, Vec<u8>, u64)>;

/// The sequence number and, for a message, the identity of stored log item `bytes` (a
/// `StoredItem`, as the `messages` collection holds it).
///
/// # Errors
///
/// [`Error::Corrupt`] if the bytes do not decode as a stored item.
pub fn log_item(bytes: &[u8]) -> Result<(u64, MessageIdentity)> {
    let stored: StoredItem = sealdesk_protocol::wire::from_cbor(bytes, "stored item")
        .map_err(|_| Error::Corrupt("a stored conversation item does not decode".into()))?;
    let seq = stored.sequenced.seq;
    Ok(match stored.sequenced.item {
        Item::Message(env) => {
            let h = env.header;
            (
                seq,
                Some((h.epoch, h.sender.as_bytes().to_vec(), h.counter)),
            )
        }
        _ => (seq, None),
    })
}

/// The Merkle root (RFC 9162) of the audit log whose entries are `entries`, in index order,
/// as the relay computes it for its signed tree heads.
///
/// # Errors
///
/// [`Error::Corrupt`] naming the first entry (by position) that does not decode.
pub fn audit_root<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Result<[u8; 32]> {
    let leaves = entries
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| {
            sealdesk_protocol::wire::from_cbor::<AuditEntry>(bytes, "audit entry")
                .map(|e| e.leaf_hash())
                .map_err(|_| {
                    Error::Corrupt(format!("audit entry {i} (in the `audit_leaves` tree)"))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(merkle::root(&leaves))
}

/// The public log key (as clients print and pin it) of the relay identity stored under
/// `relay-identity` in the `meta` collection.
///
/// # Errors
///
/// [`Error::CorruptIdentity`] if the stored value is not 64 bytes.
pub fn log_key(identity: &[u8]) -> Result<String> {
    let secret = <[u8; 64]>::try_from(identity).map_err(|_| Error::CorruptIdentity {
        location: "key `relay-identity` of the `meta` tree".into(),
        detail: format!("{} bytes stored, 64 expected", identity.len()),
    })?;
    Ok(IdentityKeys::from_secret_bytes(&secret)
        .signing_public()
        .to_string())
}

/// The key of the relay identity in the `meta` collection.
pub const RELAY_IDENTITY_KEY: &[u8] = super::service::keys::RELAY_IDENTITY;
