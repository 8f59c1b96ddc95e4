//! What a reader checks of an erasure entry beyond its signer (`sealdesk_protocol::erasure`):
//! a customer's statement is not older than its conversation, and a retention erasure is
//! plausible against the activity this account saw and the org's retention period. Both
//! checks need data only a party of the conversation has; an account without it skips them
//! (the signer rule in `AuditEntry::check_signer` still holds).

use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent, LogError},
    erasure::{ErasureReason, check_not_stale, check_retention},
};

use crate::account::{ConvMeta, LogEntry};
use crate::client::Client;
use crate::error::Result;
use crate::reply::is_transient;

/// When the conversation was last active as far as this account knows: the relay's time of
/// the newest item it holds locally, or the conversation's opening.
pub fn last_activity(meta: &ConvMeta, log: &[LogEntry]) -> u64 {
    log.iter()
        .filter_map(|e| match e {
            LogEntry::Message { stored_at, .. }
            | LogEntry::Epoch { stored_at, .. }
            | LogEntry::Notice { stored_at, .. } => Some(*stored_at),
            _ => None,
        })
        .fold(meta.created_at, u64::max)
}

impl Client {
    /// What is wrong with erasure entry `entry`, as far as this account can tell (`None` for
    /// other kinds, for conversations this account does not hold, and when nothing is wrong):
    /// a customer's statement signed before the conversation was opened (a replay), or a
    /// retention erasure of a conversation idle for less than its org's retention period.
    ///
    /// # Errors
    /// Transport and storage errors only: a policy that cannot be had or does not verify
    /// leaves the retention unchecked.
    pub async fn erasure_fault(&mut self, entry: &AuditEntry) -> Result<Option<LogError>> {
        let AuditEvent::Erasure { conversation, .. } = &entry.event else {
            return Ok(None);
        };
        let Some(meta) = self.account.conversation(conversation)? else {
            return Ok(None);
        };
        if let Err(e) = check_not_stale(entry, meta.created_at) {
            return Ok(Some(e));
        }
        if ErasureReason::of(entry) != Some(ErasureReason::Retention) {
            return Ok(None);
        }
        let retention = match self.latest_policy(&meta.org).await {
            Ok(p) => p.retention_secs,
            Err(e) if is_transient(&e) => return Err(e),
            Err(_) => return Ok(None),
        };
        let last = last_activity(&meta, &self.account.log(conversation)?);
        Ok(check_retention(entry, last, retention).err())
    }
}
