//! The stored-bytes quota warnings in the chat: each shown once, however many times the relay
//! gives it (in a send's answer, as a push, again at every sign-in).

use sealdesk_protocol::wire::{ByteQuota, Push, QuotaScope};

use super::event::{Shown, Sink};

/// The stored-bytes warnings the chat has shown, by whose quota (the account's, or an org's)
/// with the highest figures shown since the chat last learned that quota stood below the
/// warning level. The relay gives the warning of a quota a send brought near both in the send's
/// answer and as a push (which may arrive after the answer to a later send), and pushes it again
/// at every sign-in (a reconnection too) while the quota stays there: the chat shows a warning
/// only when it says more than one already shown.
#[derive(Default)]
pub(crate) struct QuotaTold(std::collections::HashMap<Option<String>, (u64, u64)>);

impl QuotaTold {
    /// Whether `quota` is news: not at or under a warning of its quota already shown. `org`
    /// names the org of an org's quota (the conversation's for an answer, the push's for a
    /// push); an account's quota is one whatever the org.
    pub(crate) fn news(&mut self, org: Option<&str>, quota: &ByteQuota) -> bool {
        let whose = match quota.scope {
            QuotaScope::Account => None,
            QuotaScope::Org => Some(org.unwrap_or_default().to_owned()),
        };
        match self.0.get(&whose) {
            Some(&(used, most)) if most == quota.most && used >= quota.used => false,
            _ => {
                self.0.insert(whose, (quota.used, quota.most));
                true
            }
        }
    }

    /// A send in a conversation of `org` was answered without a warning: the account's quota
    /// and `org`'s stand below the warning level, and their next warning is news whatever its
    /// figures (after an erasure, say).
    pub(crate) fn below(&mut self, org: &str) {
        self.0.remove(&None);
        self.0.remove(&Some(org.to_owned()));
    }

    /// Shows the `quota_warning` pushes among `pushes` that are news (the others are not shown
    /// in the chat).
    pub(crate) fn show_pushes<S: Sink>(
        &mut self,
        out: &mut S,
        pushes: impl IntoIterator<Item = Push>,
    ) -> std::io::Result<()> {
        for push in pushes {
            if let Push::QuotaWarning { org, quota } = push
                && self.news(org.as_deref(), &quota)
            {
                out.show(Shown::Warning {
                    conversation: None,
                    here: false,
                    text: sealdesk_client::quota::pushed_quota_warning(org.as_deref(), &quota),
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(scope: QuotaScope, used: u64) -> ByteQuota {
        ByteQuota {
            scope,
            used,
            most: 1000,
        }
    }

    #[test]
    fn a_quota_warning_is_shown_once_and_never_after_a_higher_one() {
        let mut told = QuotaTold::default();
        // The answer to a send, then the same warning pushed (the push names no org for an
        // account's quota, the answer is given with the conversation's org).
        assert!(told.news(Some("acme"), &quota(QuotaScope::Account, 850)));
        assert!(!told.news(None, &quota(QuotaScope::Account, 850)));
        // At the next sign-in, unchanged: not again. Higher: shown.
        assert!(!told.news(None, &quota(QuotaScope::Account, 850)));
        assert!(told.news(None, &quota(QuotaScope::Account, 950)));
        // The push of the 85% crossing arriving after the 95% answer: stale, not shown.
        assert!(!told.news(None, &quota(QuotaScope::Account, 850)));
        // An org's quota is its own, and each org's is distinct.
        assert!(told.news(Some("acme"), &quota(QuotaScope::Org, 900)));
        assert!(!told.news(Some("acme"), &quota(QuotaScope::Org, 900)));
        assert!(told.news(Some("globex"), &quota(QuotaScope::Org, 900)));
        // A send answered without a warning: acme's and the account's quotas are below the
        // level again, so their next crossing is news; globex's warning still stands.
        told.below("acme");
        assert!(told.news(None, &quota(QuotaScope::Account, 850)));
        assert!(told.news(Some("acme"), &quota(QuotaScope::Org, 850)));
        assert!(!told.news(Some("globex"), &quota(QuotaScope::Org, 900)));
    }
}
