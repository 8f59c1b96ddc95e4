//! Notices not yet witnessed, checked again: at each sync, every notice of the conversation
//! logged "not yet witnessed" (its entry passed every check but the witnesses') is judged
//! again; once enough of the org's trustees cosigned a log holding it, a genuine line
//! replaces it, and if the witnessed log turns out not to hold it, a NOT GENUINE one does.
//! Until then it stays as it is, shown, never as genuine (SECURITY.md, "Witnesses").

use sealdesk_protocol::ids::ConversationId;

use super::{Client, Event};
use crate::account::LogEntry;
use crate::error::Result;

impl Client {
    /// Judges again the notices of conversation `id` not yet witnessed; returns the live
    /// view's events for those that changed.
    ///
    /// # Errors
    /// Relay and storage errors (a notice still not witnessed is not an error).
    pub async fn recheck_unwitnessed(&mut self, id: &ConversationId) -> Result<Vec<Event>> {
        let pending: Vec<(u64, u64, u64, crate::account::Unwitnessed)> = self
            .account
            .log(id)?
            .into_iter()
            .filter_map(|e| match e {
                LogEntry::Notice {
                    seq,
                    stored_at,
                    index,
                    unwitnessed: Some(u),
                    ..
                } => Some((seq, stored_at, index, *u)),
                _ => None,
            })
            .collect();
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let meta = self.meta(id)?;
        let mut events = Vec::new();
        for (seq, stored_at, index, u) in pending {
            let verdict = self.judge_notice(&meta, &u.entry, index).await?;
            if verdict.verified && verdict.unwitnessed.is_some() {
                continue; // still not witnessed: the line stays as it is
            }
            let line = self.notice_line(seq, stored_at, &u.entry, index, &verdict, false);
            events.extend(self.log_notice(id, line, !verdict.verified, true)?);
        }
        Ok(events)
    }
}
