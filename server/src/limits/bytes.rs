//! Stored-bytes quotas: how many attachment bytes (ciphertext, as the relay stores them) one
//! account and the conversations of one org may hold, with a warning ahead of each.
//!
//! The counts themselves are kept by the service next to the attachments they count (so they
//! survive a restart and move in the same batch as the bytes); this module only decides.

use crate::config::Limits;

/// The share of a stored-bytes quota (in percent) from which an upload carries a warning.
pub const BYTES_WARN_PERCENT: u64 = 80;

/// Whose stored bytes a quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The uploading account's.
    Account,
    /// The org of the conversation.
    Org,
}

impl Scope {
    /// The limit's metrics label ([`super::LIMIT_LABELS`]).
    pub fn label(self) -> &'static str {
        match self {
            Scope::Account => super::STORED_BYTES_ACCOUNT,
            Scope::Org => super::STORED_BYTES_ORG,
        }
    }

    /// The configuration field that sets it.
    pub fn setting(self) -> &'static str {
        match self {
            Scope::Account => "stored_bytes_per_account",
            Scope::Org => "stored_bytes_per_org",
        }
    }
}

/// A quota that an upload would pass: refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverQuota {
    /// Which quota.
    pub scope: Scope,
    /// Bytes stored under it now.
    pub used: u64,
    /// Bytes the upload would add.
    pub adding: u64,
    /// The most allowed.
    pub most: u64,
}

/// A quota that an upload brings to [`BYTES_WARN_PERCENT`] or more: allowed, with a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NearQuota {
    /// Which quota.
    pub scope: Scope,
    /// Bytes stored under it with the upload.
    pub used: u64,
    /// The most allowed.
    pub most: u64,
}

/// The relay's stored-bytes quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteQuotas {
    /// Largest attachment, plaintext bytes.
    pub max_attachment: u64,
    /// Most bytes one account may have stored.
    pub per_account: u64,
    /// Most bytes the conversations of one org may have stored.
    pub per_org: u64,
    /// Seconds an upload may stay unfinished or unsent before the sweep deletes it.
    pub upload_expiry_secs: u64,
}

impl ByteQuotas {
    /// From the configured limits.
    pub fn new(limits: &Limits) -> Self {
        Self {
            max_attachment: limits.max_attachment_bytes,
            per_account: limits.stored_bytes_per_account,
            per_org: limits.stored_bytes_per_org,
            upload_expiry_secs: limits.attachment_upload_expiry_secs,
        }
    }

    /// Whether `adding` bytes may be stored by an account holding `account` bytes in an org
    /// holding `org` bytes; the account's quota is checked first.
    ///
    /// # Errors
    /// [`OverQuota`] naming the first quota the upload would pass.
    pub fn check(
        &self,
        account: u64,
        org: u64,
        adding: u64,
    ) -> Result<Option<NearQuota>, OverQuota> {
        let mut warning = None;
        for (scope, used, most) in [
            (Scope::Account, account, self.per_account),
            (Scope::Org, org, self.per_org),
        ] {
            let after = used.saturating_add(adding);
            if after > most {
                return Err(OverQuota {
                    scope,
                    used,
                    adding,
                    most,
                });
            }
            if warning.is_none()
                && after.saturating_mul(100) >= most.saturating_mul(BYTES_WARN_PERCENT)
            {
                warning = Some(NearQuota {
                    scope,
                    used: after,
                    most,
                });
            }
        }
        Ok(warning)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas() -> ByteQuotas {
        ByteQuotas {
            max_attachment: 10,
            per_account: 100,
            per_org: 1_000,
            upload_expiry_secs: 1,
        }
    }

    #[test]
    fn an_upload_past_a_quota_is_refused_and_one_near_it_warned() {
        let q = quotas();
        assert_eq!(q.check(0, 0, 79), Ok(None));
        assert_eq!(
            q.check(0, 0, 80),
            Ok(Some(NearQuota {
                scope: Scope::Account,
                used: 80,
                most: 100
            }))
        );
        assert_eq!(
            q.check(90, 0, 11),
            Err(OverQuota {
                scope: Scope::Account,
                used: 90,
                adding: 11,
                most: 100
            })
        );
        assert_eq!(q.check(0, 950, 51).map_err(|e| e.scope), Err(Scope::Org));
        assert_eq!(
            q.check(0, 800, 1).map(|w| w.map(|w| w.scope)),
            Ok(Some(Scope::Org))
        );
    }
}
