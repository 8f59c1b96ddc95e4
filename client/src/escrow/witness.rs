//! Whether one audit-log entry is witnessed: proven in a head that enough of the org's trustees
//! cosigned (SECURITY.md, "Witnesses"). A release, revocation or erasure notice is shown as
//! genuine, and a revocation confirmed, only once this holds; until then it is "not yet
//! witnessed" — a state of its own, never genuine and never dropped.
//!
//! The rule is [`Client::witnessed_head`]'s, for one entry: the relay's head carries fresh
//! cosignatures of at least `n_e − t_e + 1` trustees, on heads it extends, *each holding the
//! entry* (a cosigned size above its index), and the head proves the entry's inclusion. A
//! cosignature on a smaller head vouches for the log before the entry, not for the entry: a
//! relay could otherwise append an entry to the view of one reader only, on top of a prefix
//! the trustees cosigned.

use sealdesk_protocol::audit::LogError;

use super::log::log_error;
use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::reply::is_transient;

/// What the witnesses say of one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Witnessing {
    /// Proven in a head whose cosignatures by `witnesses` trustees (at least the quorum) each
    /// hold the entry.
    Witnessed {
        /// How many trustees' fresh cosignatures hold the entry.
        witnesses: usize,
    },
    /// Not (yet) witnessed: too few fresh trustee cosignatures hold it, or the trustees
    /// cosigned a log that the one served here does not extend. The error says which.
    NotYet(LogError),
}

impl Witnessing {
    /// Whether the entry is witnessed.
    #[must_use]
    pub fn is_witnessed(&self) -> bool {
        matches!(self, Self::Witnessed { .. })
    }
}

impl Client {
    /// Whether the entry with leaf hash `leaf` at `index` is witnessed by the trustees of
    /// `org` (see the module documentation). A quorum that is missing, stale, or on a log the
    /// served one does not extend is [`Witnessing::NotYet`], not an error: it is the state the
    /// caller shows.
    ///
    /// # Errors
    /// [`LogError::NotIncluded`] if the witnessed head does not hold the entry at `index` (the
    /// relay showed it in a log the trustees did not cosign); a bad log (rolled back, forked),
    /// policy lookups and relay errors as [`Client::witnessed_head`].
    pub async fn witnessed_entry(
        &mut self,
        org: &str,
        leaf: &[u8; 32],
        index: u64,
    ) -> Result<Witnessing> {
        let covering = index
            .checked_add(1)
            .ok_or_else(|| ClientError::ImpossibleNumber {
                what: "audit index",
                detail: format!("entry #{index} is past the largest log size"),
            })?;
        let (head, witnesses) = match self.witnessed_head_covering(org, covering).await {
            Ok(w) => w,
            Err(ClientError::Protocol(sealdesk_protocol::Error::Audit(
                e @ (LogError::TooFewCosignatures { .. } | LogError::SplitView { .. }),
            ))) => return Ok(Witnessing::NotYet(e)),
            Err(e) => return Err(e),
        };
        match self.check_leaf_inclusion(leaf, index, &head).await {
            Ok(()) => Ok(Witnessing::Witnessed { witnesses }),
            Err(e) if is_transient(&e) => Err(e),
            Err(e) => Err(log_error(LogError::NotIncluded {
                index,
                reason: e.to_string(),
            })),
        }
    }
}
