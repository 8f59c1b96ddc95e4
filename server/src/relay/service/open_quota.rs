//! The open-conversations quota's records (see [`crate::limits::quota`]): one stored value per
//! customer and org, and one per visitor id, listing the conversations it opened. An open
//! reserves its place with a conditional write of the whole value — under a lock of this node
//! (the engine's conditional write may be a read and a put), and decided by the database in a
//! cluster ([`ConversationLog::replace_if`](crate::store::ConversationLog::replace_if),
//! [`insert_if_absent_now`](crate::store::ConversationLog::insert_if_absent_now)) — read again and
//! retried if another open changed it since. So two opens at the same instant, on one node or
//! on two, cannot both take the last place, and every node counts the same conversations.
//!
//! Records are in [`Collection::Meta`]: `openrec/c/` ‖ org ‖ 0 ‖ customer key (32 bytes), and
//! `openrec/v/` ‖ visitor key (32 bytes; it names the org already).

use sealdesk_protocol::{ids::ConversationId, keys::SigningPublicKey, wire::ErrorCode};
use tracing::warn;

use super::{Reject, Service};
use crate::{
    limits::quota::{self, OpenRecord, Reservation},
    store::Collection,
};

/// Conditional writes tried before an open is answered `rate_limited` (other opens of the
/// same subject kept changing the record).
const TRIES: usize = 16;

/// Whose opens a record counts.
pub(super) enum OpenSubject {
    /// A customer key's conversations with one org.
    Customer {
        /// The org.
        org: String,
        /// The customer's signing key.
        key: SigningPublicKey,
    },
    /// A visitor id's conversations (the token's visitor key, which names the org).
    Visitor([u8; 32]),
}

impl OpenSubject {
    /// The record's key in [`Collection::Meta`].
    fn record_key(&self) -> Vec<u8> {
        match self {
            Self::Customer { org, key } => {
                let mut k = b"openrec/c/".to_vec();
                k.extend_from_slice(org.as_bytes());
                k.push(0);
                k.extend_from_slice(key.as_bytes());
                k
            }
            Self::Visitor(v) => {
                let mut k = b"openrec/v/".to_vec();
                k.extend_from_slice(v);
                k
            }
        }
    }
}

/// A place taken in a subject's record.
pub(super) struct Reserved {
    /// Conversations open before this one.
    pub open_before: usize,
    /// Whether this open added the conversation to the record (and must take it out again if
    /// the open fails); `false` if it was there already (an id used before).
    pub added: bool,
}

/// A subject with its most conversations open.
pub(super) struct Full {
    /// How many are open.
    pub open: usize,
    /// The last activity of the quietest of them.
    pub quietest: u64,
}

impl Service {
    /// Reserves a place for conversation `c` in `subject`'s record, unless the subject has as
    /// many open conversations as the quota allows: those in the record (see
    /// [`quota::assess`]) and the last activities `legacy` gives of its open conversations
    /// the record does not hold (opened by an earlier relay build).
    pub(super) fn reserve_open(
        &self,
        subject: &OpenSubject,
        c: &ConversationId,
        legacy: impl Fn(&OpenRecord) -> Result<Vec<u64>, Reject>,
    ) -> Result<Result<Reserved, Full>, Reject> {
        let key = subject.record_key();
        let most = self.guard.open_conversations;
        let idle = self.guard.open_idle.as_secs();
        let _order = self.guard.open_records.lock(&key);
        for _ in 0..TRIES {
            let attempt = self.write_if_unchanged(Collection::Meta, &key, |old| {
                let record = decode(old)?;
                let now = self.clock.now();
                let assessed = quota::assess(&record, now, now.saturating_sub(idle), |id| {
                    self.activity(id)
                })?;
                let mut open = assessed.open;
                open.extend(legacy(&record)?);
                if open.len() >= most {
                    let full = Full {
                        open: open.len(),
                        quietest: open.iter().min().copied().unwrap_or(now),
                    };
                    return Ok((None, Err(full)));
                }
                let added = !assessed.kept.holds(c.as_bytes());
                let mut next = assessed.kept;
                if added {
                    next.entries.push(Reservation {
                        conversation: *c.as_bytes(),
                        reserved_at: now,
                    });
                }
                let reserved = Reserved {
                    open_before: open.len(),
                    added,
                };
                Ok((Some(next.encode()), Ok(reserved)))
            })?;
            if let Some(outcome) = attempt {
                return Ok(outcome);
            }
        }
        Err(Reject::retry_after(
            ErrorCode::RateLimited,
            "too many opens of this account's conversations at once; try again".into(),
            1,
        ))
    }

    /// Takes conversation `c` out of `subject`'s record again (its open failed after the
    /// reservation). A failure is logged: the reservation then expires by itself after
    /// [`quota::PENDING_SECS`].
    pub(super) fn release_open(&self, subject: &OpenSubject, c: &ConversationId) {
        if let Err(e) = self.try_release_open(subject, c) {
            warn!(conversation = %c, error = %e.message, "an open's reservation was not released");
        }
    }

    fn try_release_open(&self, subject: &OpenSubject, c: &ConversationId) -> Result<(), Reject> {
        let key = subject.record_key();
        let _order = self.guard.open_records.lock(&key);
        for _ in 0..TRIES {
            let attempt = self.write_if_unchanged(Collection::Meta, &key, |old| {
                if old.is_none() {
                    return Ok((None, ()));
                }
                let record = decode(old)?;
                if !record.holds(c.as_bytes()) {
                    return Ok((None, ()));
                }
                Ok((Some(record.without(c.as_bytes()).encode()), ()))
            })?;
            if attempt.is_some() {
                return Ok(());
            }
        }
        Err(Reject::new(
            ErrorCode::Internal,
            "the open-conversation record kept changing".into(),
        ))
    }

    /// The last activity of conversation `id`, or `None` if it is not stored. In a cluster,
    /// read from the database (another node may have appended since this one cached it).
    fn activity(&self, id: &[u8; 16]) -> Result<Option<u64>, Reject> {
        let Ok(c) = ConversationId::from_bytes(id) else {
            return Ok(None);
        };
        if self.store_shared {
            self.convs.refresh(&c)?;
        }
        Ok(self.convs.get(&c)?.map(|s| s.last_activity))
    }
}

/// A stored record (none: empty).
fn decode(bytes: Option<&[u8]>) -> Result<OpenRecord, Reject> {
    match bytes {
        None => Ok(OpenRecord::default()),
        Some(b) => OpenRecord::decode(b).map_err(|e| {
            warn!(error = %e, "an open-conversation record does not decode");
            Reject::new(ErrorCode::Internal, "stored data is damaged".into())
        }),
    }
}
