//! The relay's audit log as a client reads it at the wire level, for tests that forge, fork or
//! check entries against what the relay really serves.

use sealdesk_client::Client;
use sealdesk_protocol::{
    audit::AuditEntry,
    wire::{Request, Response},
};

/// The first `limit` entries of the audit log, as the relay serves them to `c`'s session
/// (through the proxy when `c` is connected through it).
pub async fn served_entries(c: &Client, limit: u32) -> Vec<AuditEntry> {
    match c
        .session()
        .request(Request::GetEntries { from: 0, limit })
        .await
        .unwrap()
    {
        Response::Entries { entries, .. } => entries,
        other => panic!("{other:?}"),
    }
}
