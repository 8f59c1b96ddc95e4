//! `sealdesk audit`: every entry of the log checked (signature, signer allowed, inclusion),
//! and the release entries grouped per request in plain words. Entries the relay withholds
//! (those of other orgs and conversations) are counted, and their leaf hashes checked with
//! the others against the tree head.

use std::collections::{BTreeMap, BTreeSet};

use sealdesk_protocol::{
    audit::{AllowedSigners, AuditEntry, AuditEvent, LogError},
    card::Role,
    ids::ConversationId,
};
use serde::Serialize;

use super::log::{LogSlot, slots_make_head};
use crate::client::Client;
use crate::client::audience_of;
use crate::error::Result;
use crate::notice::{AuditRelease, ReleaseNotice, chat_name, counts_as_release, group};

/// An audit entry as shown to a user.
#[derive(Clone, Debug, Serialize)]
pub struct AuditLine {
    /// Leaf index.
    pub index: u64,
    /// Plain words.
    pub text: String,
    /// Whether the signature verified.
    pub signed: bool,
    /// Whether the signer may make an entry of this kind (a trustee of the org for a release,
    /// the customer for a revocation, ...; see [`AllowedSigners`]).
    pub signer_allowed: bool,
    /// Whether inclusion in the pinned tree head was proven (only with `--verify`).
    pub included: Option<bool>,
    /// What else is wrong with the entry, if anything (an erasure: a replayed statement, or a
    /// retention erasure of a conversation that was not idle long enough).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// The result of `audit`.
#[derive(Clone, Debug, Serialize)]
pub struct AuditReport {
    /// The tree size.
    pub size: u64,
    /// The Merkle root of the tree head checked, in hex (what `sealdesk-relay migrate` prints
    /// as the audit log's root).
    pub root: String,
    /// Whether the new head is consistent with the one pinned before (None on first use).
    pub consistent_with_pinned: Option<bool>,
    /// With `--verify`: per org, how many of its trustees cosigned the head (fresh, on a
    /// head it extends); at least `n_e − t_e + 1` each, or the audit fails.
    pub witnessed: BTreeMap<String, usize>,
    /// How many entries of the log the relay withheld from this account (entries about
    /// conversations and orgs that are not its own: PROTOCOL.md §12 "Who reads the log"). They
    /// are served as their leaf hashes, which count toward `leaves_make_head`.
    pub withheld: u64,
    /// Whether the leaves served — the entries read and the withheld leaf hashes — make up
    /// exactly the tree head checked: the listing is the whole log, nothing dropped or added.
    pub leaves_make_head: bool,
    /// The indexes of the entries served readable whose kind this version cannot read (a
    /// later version's, PROTOCOL.md §12.1): their leaves, computed from the bytes as served,
    /// count toward `leaves_make_head`, but they are passed over, neither checked nor in
    /// `entries`. Whatever they record (it could concern this account) is unknown until
    /// sealdesk is updated: `sealdesk audit` says so
    /// ([`crate::notice::unreadable_summary`]).
    pub unreadable: Vec<u64>,
    /// The entries concerning this account.
    pub entries: Vec<AuditLine>,
    /// The trustees' release entries among them, one group per release request (each entry
    /// is still in `entries` with its own checks).
    pub releases: Vec<crate::notice::AuditRelease>,
}

impl AuditReport {
    /// Whether everything listed passed its checks: the leaves served make up the tree head,
    /// every entry signed and not disproven,
    /// no entry whose signer may not make an entry of its kind,
    /// and no release request with an entry that is NOT GENUINE (not signed by a trustee of
    /// the org, about another org, or not proven) or that contradicts the other entries of
    /// its release. `sealdesk audit` fails when this is false.
    pub fn verified(&self) -> bool {
        self.leaves_make_head
            && self.entries.iter().all(|e| {
                e.signed && e.signer_allowed && e.included != Some(false) && e.fault.is_none()
            })
            && self
                .releases
                .iter()
                .all(|g| g.notice.failed.is_empty() && g.notice.contradicting.is_empty())
    }
}

impl Client {
    /// The audit entries that concern this account (its conversations, or its org), checked
    /// against the pinned tree head; with `verify`, each with an inclusion proof.
    ///
    /// # Errors
    /// A bad log (loudly), relay errors.
    pub async fn audit(
        &mut self,
        conversation: Option<ConversationId>,
        verify: bool,
    ) -> Result<AuditReport> {
        let (mut head, consistent) = self.checked_tree_head().await?;
        let mine: BTreeSet<ConversationId> =
            self.account.conversations()?.iter().map(|m| m.id).collect();
        let orgs: BTreeSet<String> = self.account.pins()?.orgs.keys().cloned().collect();
        // With `verify`, the head must be vouched for by the witnesses of every org this
        // account deals with: a relay-signed head alone could be one of two histories.
        let mut witnessed = BTreeMap::new();
        if verify {
            for org in &orgs {
                let (h, n) = self.witnessed_head(org).await?;
                witnessed.insert(org.clone(), n);
                head = h;
            }
        }
        let slots = self.entries(0, head.size).await?;
        let leaves_make_head = slots_make_head(&slots, &head);
        let withheld = slots.iter().filter(|s| s.entry().is_none()).count() as u64;
        let entries: Vec<Option<&AuditEntry>> = slots.iter().map(LogSlot::entry).collect();
        let me = self.account.keys().signing_public();
        let mut lines = Vec::new();
        // Who may sign, per (org, conversation): one policy look-up each, not one per entry.
        let mut signers: BTreeMap<(Option<String>, Option<ConversationId>), AllowedSigners> =
            BTreeMap::new();
        // Erasure entries seen so far, by leaf: the same entry again is a replay.
        let mut erasures = BTreeSet::new();
        let mut unreadable = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let index = i as u64;
            let Some(e) = *e else {
                continue;
            };
            // A later version's kind: its leaf counted above; who may sign it and whom it
            // concerns are unknown here, so it is passed over and named, never guessed at.
            if e.event.unreadable_code().is_some() {
                unreadable.push(index);
                continue;
            }
            let repeated =
                matches!(e.event, AuditEvent::Erasure { .. }) && !erasures.insert(e.leaf_hash());
            let conv = e.event.conversation();
            let relevant = match conversation {
                Some(c) => conv == Some(c),
                None => match &e.event {
                    AuditEvent::Release { org, master, .. } => {
                        conv.is_some_and(|c| mine.contains(&c))
                            || orgs.contains(org)
                                && (*master == me || self.account.role() != Role::Customer)
                    }
                    AuditEvent::PolicyChange { org, .. } => orgs.contains(org),
                    _ => conv.is_some_and(|c| mine.contains(&c)) || e.signer == me,
                },
            };
            if !relevant {
                continue;
            }
            let signed = e.verify().is_ok();
            let org = match &e.event {
                AuditEvent::Release { org, .. }
                | AuditEvent::PolicyChange { org, .. }
                | AuditEvent::DisputeClosed { org, .. } => Some(org.as_str()),
                _ => None,
            };
            let key = (org.map(str::to_owned), conv);
            let allowed = match signers.get(&key) {
                Some(a) => a.clone(),
                None => {
                    let a = self.allowed_signers(org, conv).await?;
                    signers.entry(key).or_insert(a).clone()
                }
            };
            // A release's signer is judged under the policy of that release (its epochs'),
            // not the org's latest.
            let allowed = self.release_policy(e).await?.signers(&allowed);
            let signer_allowed = signed && e.check_signer(&allowed).is_ok();
            let fault = if repeated {
                Some(
                    LogError::ReplayedErasure {
                        why: "the same entry is earlier in the log",
                    }
                    .to_string(),
                )
            } else if signer_allowed {
                self.erasure_fault(e).await?.map(|f| f.to_string())
            } else {
                None
            };
            let included = if verify {
                Some(self.check_inclusion(e, index, &head).await.is_ok())
            } else {
                None
            };
            let text = match &fault {
                None => crate::notice::describe_notice(
                    e,
                    signer_allowed,
                    crate::client::audience_of(&self.account),
                ),
                Some(f) => format!(
                    "{} (NOT GENUINE: {f})",
                    crate::notice::describe_notice(
                        e,
                        true,
                        crate::client::audience_of(&self.account),
                    )
                ),
            };
            lines.push(AuditLine {
                index,
                text: self.name_erased(e, text),
                signed,
                signer_allowed,
                included,
                fault,
            });
        }
        let releases = self.audit_releases(&entries, &lines).await?;
        Ok(AuditReport {
            size: head.size,
            root: hex::encode(head.root),
            consistent_with_pinned: consistent,
            witnessed,
            withheld,
            leaves_make_head,
            unreadable,
            entries: lines,
            releases,
        })
    }
}

impl Client {
    /// An erasure entry's words name the conversation (a listing covers many: "this
    /// conversation" would not say which): its short id, and its customer and agent where this
    /// account knows them. Other entries' words are left as they are.
    fn name_erased(&self, e: &AuditEntry, text: String) -> String {
        let AuditEvent::Erasure { conversation, .. } = &e.event else {
            return text;
        };
        let full = conversation.to_string();
        let short = full.get(..8).unwrap_or(&full);
        let names = match self.account.conversation(conversation) {
            Ok(Some(m)) => format!(" (customer {}, agent {})", m.customer, m.agent),
            _ => String::new(),
        };
        text.replacen(
            "this conversation",
            &format!("conversation {short}{names}"),
            1,
        )
    }

    /// Groups the release entries among `lines` (the audit report's, each checked, with
    /// `--verify`, for its inclusion) by release request. An entry counts only if it passes
    /// [`counts_as_release`] against the policy of its release ([`Client::release_policy`])
    /// and its inclusion was not disproven; the others are named in the group as failed.
    ///
    /// # Errors
    /// Transport errors while fetching a policy (a policy that fails its checks leaves the
    /// release's entries uncounted instead).
    pub(crate) async fn audit_releases(
        &mut self,
        entries: &[Option<&AuditEntry>],
        lines: &[AuditLine],
    ) -> Result<Vec<AuditRelease>> {
        let audience = audience_of(&self.account);
        let mut notices = Vec::new();
        for line in lines {
            let Some(e) = usize::try_from(line.index)
                .ok()
                .and_then(|i| entries.get(i).copied().flatten())
            else {
                continue;
            };
            if !matches!(e.event, AuditEvent::Release { .. }) {
                continue;
            }
            // Judged under the policy of that release (its epochs'), not the org's latest.
            let release_policy = self.release_policy(e).await?;
            let policy = release_policy.policy();
            let verified = line.included != Some(false) && counts_as_release(e, policy, None);
            notices.extend(ReleaseNotice::from_entry(line.index, e, verified, policy));
        }
        Ok(group(notices)
            .into_iter()
            .map(|notice| {
                let chat = chat_name(audience, &notice.conversation);
                AuditRelease {
                    text: notice.describe(audience, &chat),
                    notice,
                }
            })
            .collect())
    }
}
