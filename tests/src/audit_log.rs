//! The relay's audit log as a client reads it at the wire level, for tests that forge, fork or
//! check entries against what the relay really serves, and the trustees witnessing it
//! ([`witnesses_cosign`]).

use sealdesk_client::Client;
use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent, WithheldEntry},
    ids::ConversationId,
    keys::IdentityKeys,
    wire::{Request, Response},
};

use crate::world::{Via, World};

/// The first `limit` entries of the audit log, as the relay serves them to `c`'s session
/// (through the proxy when `c` is connected through it).
pub async fn served_entries(c: &Client, limit: u32) -> Vec<AuditEntry> {
    served_log(c, limit).await.0
}

/// [`served_entries`] and the entries the relay withheld from `c` among them (their index and
/// leaf hash only).
pub async fn served_log(c: &Client, limit: u32) -> (Vec<AuditEntry>, Vec<WithheldEntry>) {
    match c
        .session()
        .request(Request::GetEntries { from: 0, limit })
        .await
        .unwrap()
    {
        Response::Entries {
            entries, withheld, ..
        } => (entries, withheld),
        other => panic!("{other:?}"),
    }
}

/// An erasure entry of `conversation` for `reason`, signed by `keys` at `at`: what the relay
/// logs under its log key at the end of a retention period, or — under any other key, or
/// claiming the customer's request without the customer's signature — a forgery the client
/// must name as not genuine.
pub fn erasure_entry(
    keys: &IdentityKeys,
    conversation: ConversationId,
    reason: &str,
    at: u64,
) -> AuditEntry {
    AuditEntry::sign(
        keys,
        AuditEvent::Erasure {
            conversation,
            reason: reason.into(),
        },
        at,
    )
}

/// A policy change entry of `org` signed by its master, now (any version: the relay checks
/// the signer): an entry any test can append without a conversation.
pub fn policy_entry(org: &crate::Org, version: u32) -> AuditEntry {
    AuditEntry::sign(
        &org.master.keys,
        AuditEvent::PolicyChange {
            org: org.name.clone(),
            version,
            policy_hash: [version.to_le_bytes()[0]; 32],
        },
        crate::now(),
    )
}

/// Every trustee of the test org cosigns the relay's current head (as `trustee serve` does on
/// each poll), connected directly.
pub async fn witnesses_cosign(w: &World) {
    for i in 1..=3 {
        let mut t = w.reopen_via(&format!("trustee-{i}"), Via::Relay).await;
        t.witness_cosign().await.unwrap();
        t.close().await;
    }
}
