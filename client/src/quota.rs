//! The relay's warning ahead of a stored-bytes quota (PROTOCOL.md §13.12), as this library
//! hands it on: with a sent message ([`SendReport`], from the relay's `stored` answer) or a
//! sent attachment ([`crate::attachment::SentAttachment`]), and in words ([`quota_warning`]);
//! and the `quota_warning` push the relay sends every account a quota concerns
//! ([`pushed_quota_warning`], [`quota_pushes`]).

use sealdesk_protocol::wire::{ByteQuota, QuotaScope};

use crate::attachment::human_size;

/// What a sent message became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    /// The relay's sequence number of the message.
    pub seq: u64,
    /// A warning ahead of a stored-bytes quota, if the relay gave one: the message brought its
    /// sender's (or its org's) stored bytes to 80% of the relay's most or more.
    pub quota: Option<ByteQuota>,
}

/// What a stored-bytes quota warning says, in words: whose bytes, how much of how much, what
/// happens at the limit and what frees it.
pub fn quota_warning(q: &ByteQuota) -> String {
    let (whose, remedy) = match q.scope {
        QuotaScope::Account => (
            "this account's stored messages and attachments",
            "erasing conversations you no longer need frees it (or ask the relay's operator to \
             raise stored_bytes_per_account)",
        ),
        QuotaScope::Org => (
            "the stored messages and attachments of this org's conversations",
            "it frees up as the org's conversations are erased or expire (or ask the relay's \
             operator to raise stored_bytes_per_org)",
        ),
    };
    format!(
        "{whose} now take {} of the relay's {} ({}%); at the limit the relay refuses new \
         messages and attachments (quota_exceeded): {remedy}",
        human_size(q.used),
        human_size(q.most),
        q.used.saturating_mul(100) / q.most.max(1)
    )
}

/// What a `quota_warning` push says, in words ([`quota_warning`], naming the org for an
/// org's quota): the relay tells every account a quota concerns when it first reaches 80%,
/// and again at each sign-in while it stays there, whoever sent the bytes.
pub fn pushed_quota_warning(org: Option<&str>, q: &ByteQuota) -> String {
    match org {
        Some(org) => format!("org {org}: {}", quota_warning(q)),
        None => quota_warning(q),
    }
}

/// The `quota_warning` pushes among `pushes` (others a client sets aside), in words.
pub fn quota_pushes<'a>(
    pushes: impl IntoIterator<Item = &'a sealdesk_protocol::wire::Push>,
) -> Vec<String> {
    pushes
        .into_iter()
        .filter_map(|p| match p {
            sealdesk_protocol::wire::Push::QuotaWarning { org, quota } => {
                Some(pushed_quota_warning(org.as_deref(), quota))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warning_names_whose_how_much_and_what_to_do() {
        let account = quota_warning(&ByteQuota {
            scope: QuotaScope::Account,
            used: 850 * 1024,
            most: 1024 * 1024,
        });
        assert!(
            account.starts_with(
                "this account's stored messages and attachments now take 850.0 KiB of the \
                 relay's 1.0 MiB (83%)"
            ),
            "{account}"
        );
        assert!(account.contains("erasing conversations"), "{account}");
        let org = quota_warning(&ByteQuota {
            scope: QuotaScope::Org,
            used: 9,
            most: 10,
        });
        assert!(
            org.contains("this org's conversations now take 9 B"),
            "{org}"
        );
        assert!(org.contains("stored_bytes_per_org"), "{org}");
    }

    #[test]
    fn a_pushed_warning_names_its_org_and_other_pushes_are_left_out() {
        use sealdesk_protocol::wire::Push;
        let quota = ByteQuota {
            scope: QuotaScope::Org,
            used: 9,
            most: 10,
        };
        let pushes = [
            Push::AuditGrew { size: 1 },
            Push::QuotaWarning {
                org: Some("acme".into()),
                quota,
            },
        ];
        assert_eq!(
            quota_pushes(&pushes),
            vec![format!("org acme: {}", quota_warning(&quota))]
        );
        assert_eq!(pushed_quota_warning(None, &quota), quota_warning(&quota));
    }
}
