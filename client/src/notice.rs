//! One release, one notice: the trustees' release entries of one release request, grouped.
//!
//! Every trustee that releases its share for a request signs its own audit-log entry, and the
//! relay delivers each of them into the conversation. A 2-of-3 release is therefore two or
//! three entries, but one event for the people concerned: the org opened these epochs, under
//! this justification, because these trustees released. This module turns the entries into
//! that one notice and words it for its reader.
//!
//! Each entry is still verified on its own by the caller (signature, signer a trustee of the
//! org, conversation, inclusion in the audit log): a [`ReleaseNotice`] is built from entries
//! with their verdicts, counts as released only the trustees whose entries verified, and says
//! which entries failed. A request that never reached the trustee threshold reads "requested,
//! not opened", never "opened".
//!
//! ```text
//!   entry (trustee-1, request R) ─┐
//!   entry (trustee-2, request R) ─┼─▶ ReleaseNotice R: trustees [trustee-1, trustee-2], 2 of 3
//!   entry (forged,    request R) ─┘                     failed [#7]
//! ```

use std::collections::HashMap;

use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent, ReleaseBasis},
    ids::{ConversationId, EpochRange},
    policy::VerifiedPolicy,
};
use serde::{Deserialize, Serialize};

use crate::client::{Client, audience_of, is_transient};
use crate::error::Result;
use crate::escrow::{AuditLine, Transcript};

/// What justified a release, as far as a reader needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "basis")]
pub enum ReleaseGround {
    /// A consent token signed by the customer.
    Consent {
        /// The consent's id.
        id: String,
        /// When the customer signed it (Unix seconds).
        issued_at: u64,
    },
    /// An approved dispute ticket.
    Dispute {
        /// The ticket's id.
        ticket: String,
        /// The approving arbiters, by name where the policy names them (else a short key).
        arbiters: Vec<String>,
    },
}

/// Who a notice is worded for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// The conversation's customer: "under your consent of 2 Dec".
    Customer,
    /// The org's master, who asked for the release: "acme (you) opened …, under the
    /// customer's consent of 2 Dec".
    Master,
    /// Anyone else (trustees, arbiters, agents): "under the customer's consent of 2 Dec".
    Other,
}

/// The trustees' release entries of one release request, grouped into one notice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseNotice {
    /// The release request's hash (hex): every trustee entry of one request carries it.
    pub request: String,
    /// The org.
    pub org: String,
    /// The conversation.
    pub conversation: ConversationId,
    /// The epochs the request covers.
    pub epochs: EpochRange,
    /// What justified it.
    pub ground: ReleaseGround,
    /// The trustees whose entries verified, in the order their entries arrived.
    pub trustees: Vec<String>,
    /// How many trustees must release for the epochs to open (0 if the policy is unknown).
    pub threshold: u8,
    /// How many trustees the policy has (0 if unknown).
    pub of: u8,
    /// Audit-log indexes of the verified entries.
    pub indexes: Vec<u64>,
    /// Audit-log indexes of the entries that failed verification (never counted).
    pub failed: Vec<u64>,
    /// Entries delivered again (the same trustee's release seen before): not new openings.
    pub repeats: u32,
}

impl ReleaseNotice {
    /// The notice for one release entry, with the caller's verdict on it. `None` for entries
    /// that are not releases. `policy` names the trustees and gives the threshold; `verified`
    /// is the caller's full check (signature, trustee of the org, conversation, inclusion).
    pub fn from_entry(
        index: u64,
        entry: &AuditEntry,
        verified: bool,
        policy: Option<&VerifiedPolicy>,
    ) -> Option<Self> {
        let AuditEvent::Release {
            org,
            request_hash,
            conversation,
            epochs,
            basis,
            ..
        } = &entry.event
        else {
            return None;
        };
        let ground = match basis {
            ReleaseBasis::Consent { id, issued_at, .. } => ReleaseGround::Consent {
                id: id.to_string(),
                issued_at: *issued_at,
            },
            ReleaseBasis::Dispute { id, approvers } => ReleaseGround::Dispute {
                ticket: id.to_string(),
                arbiters: approvers
                    .iter()
                    .map(|k| {
                        policy
                            .and_then(|p| p.arbiter(k))
                            .map(|c| c.name.clone())
                            .unwrap_or_else(|| crate::client::short_key(k))
                    })
                    .collect(),
            },
        };
        let trustee = policy
            .and_then(|p| {
                p.trustee_index(&entry.signer)
                    .and_then(|i| p.trustees.get(i))
            })
            .map(|c| c.name.clone())
            .unwrap_or_else(|| crate::client::short_key(&entry.signer));
        let (trustees, indexes, failed) = if verified {
            (vec![trustee], vec![index], Vec::new())
        } else {
            (Vec::new(), Vec::new(), vec![index])
        };
        Some(Self {
            request: hex::encode(request_hash),
            org: org.clone(),
            conversation: *conversation,
            epochs: *epochs,
            ground,
            trustees,
            threshold: policy.map_or(0, |p| p.trustee_threshold),
            of: policy.map_or(0, |p| u8::try_from(p.trustees.len()).unwrap_or(u8::MAX)),
            indexes,
            failed,
            repeats: 0,
        })
    }

    /// Marks this (single-entry) notice as a repeat of an entry already counted.
    #[must_use]
    pub fn as_repeat(mut self) -> Self {
        self.trustees.clear();
        self.indexes.clear();
        self.repeats = 1;
        self
    }

    /// Whether `other` belongs to the same release request.
    pub fn same_request(&self, other: &Self) -> bool {
        self.request == other.request
    }

    /// Folds another notice of the same request into this one. A verified entry whose event
    /// says something else than the group's (other epochs, org, conversation or justification
    /// under the same request hash) is counted as failed, not as a release; a trustee counted
    /// already is a repeat.
    pub fn absorb(&mut self, other: &Self) {
        if !self.same_request(other) {
            return;
        }
        let consistent = self.org == other.org
            && self.conversation == other.conversation
            && self.epochs == other.epochs
            && self.ground == other.ground;
        if self.trustees.is_empty() && !other.trustees.is_empty() {
            // The group so far holds only failed entries: the first verified one describes it.
            self.org.clone_from(&other.org);
            self.conversation = other.conversation;
            self.epochs = other.epochs;
            self.ground = other.ground.clone();
        } else if !consistent {
            self.failed.extend(&other.indexes);
            self.failed.extend(&other.failed);
            self.repeats += other.repeats;
            return;
        }
        for (name, index) in other.trustees.iter().zip(&other.indexes) {
            if self.trustees.contains(name) {
                self.repeats += 1;
            } else {
                self.trustees.push(name.clone());
                self.indexes.push(*index);
            }
        }
        self.failed.extend(&other.failed);
        self.repeats += other.repeats;
        if other.threshold > 0 {
            self.threshold = other.threshold;
            self.of = other.of;
        }
    }

    /// Whether enough verified trustee entries arrived for the epochs to open.
    pub fn opened(&self) -> bool {
        self.threshold > 0 && self.trustees.len() >= usize::from(self.threshold)
    }

    /// Whether the notice can be shown as genuine: at least one verified entry and none failed.
    pub fn genuine(&self) -> bool {
        !self.trustees.is_empty() && self.failed.is_empty()
    }

    /// The notice in plain words for `audience`; `chat` names the conversation ("this chat").
    pub fn describe(&self, audience: Audience, chat: &str) -> String {
        let org = match audience {
            Audience::Master => format!("{} (you)", self.org),
            Audience::Customer | Audience::Other => self.org.clone(),
        };
        let epochs = self.epochs;
        let under = match (&self.ground, audience) {
            (ReleaseGround::Consent { issued_at, .. }, Audience::Customer) => {
                format!("under your consent of {}", day_month(*issued_at))
            }
            (ReleaseGround::Consent { issued_at, .. }, Audience::Master | Audience::Other) => {
                format!("under the customer's consent of {}", day_month(*issued_at))
            }
            (ReleaseGround::Dispute { ticket, arbiters }, _) if arbiters.is_empty() => {
                format!("under dispute ticket {ticket}")
            }
            (ReleaseGround::Dispute { ticket, arbiters }, _) => format!(
                "under dispute ticket {ticket}, approved by {} {}",
                if arbiters.len() == 1 {
                    "arbiter"
                } else {
                    "arbiters"
                },
                and_list(arbiters)
            ),
        };
        let mut text = if self.trustees.is_empty() {
            format!(
                "a release notice that is NOT GENUINE (not signed by a trustee of the org, or \
                 not proven in the audit log): it claims {org} opened {epochs} of {chat} {under}"
            )
        } else if self.opened() {
            format!(
                "{org} opened {epochs} of {chat} {under}, released by {} {} ({} of {})",
                trustee_word(self.trustees.len()),
                and_list(&self.trustees),
                self.threshold,
                self.of
            )
        } else {
            let needed = if self.threshold == 0 {
                "an unknown number of".to_owned()
            } else {
                self.threshold.to_string()
            };
            format!(
                "{org} asked to open {epochs} of {chat} {under}: requested, not opened ({} of \
                 {needed} trustees; released so far by {} {})",
                self.trustees.len(),
                trustee_word(self.trustees.len()),
                and_list(&self.trustees)
            )
        };
        if !self.trustees.is_empty() && !self.failed.is_empty() {
            text.push_str(&format!(
                " — {} more {} of this release NOT GENUINE (not signed by a trustee of the org, \
                 or not proven in the audit log; not counted): {}",
                self.failed.len(),
                if self.failed.len() == 1 {
                    "entry"
                } else {
                    "entries"
                },
                audit_refs(&self.failed)
            ));
        }
        if self.repeats > 0 {
            text.push_str(&format!(
                " — {} repeat(s) of an entry already counted: not a new opening",
                self.repeats
            ));
        }
        text
    }
}

/// One release request in `sealdesk audit`: its trustees' entries, grouped.
#[derive(Clone, Debug, Serialize)]
pub struct AuditRelease {
    /// The group.
    #[serde(flatten)]
    pub notice: ReleaseNotice,
    /// In plain words, for this account.
    pub text: String,
}

impl Client {
    /// Groups the release entries among `lines` (the audit report's, each already checked
    /// for its signature and, with `--verify`, its inclusion) by release request. An entry
    /// counts only if it is signed, not disproven, and signed by a trustee of the org's
    /// policy; the others are named in the group as failed.
    ///
    /// # Errors
    /// Transport errors while fetching a policy (a policy that fails its checks leaves the
    /// org's entries uncounted instead).
    pub(crate) async fn audit_releases(
        &mut self,
        entries: &[AuditEntry],
        lines: &[AuditLine],
    ) -> Result<Vec<AuditRelease>> {
        let audience = audience_of(&self.account);
        let mut policies: HashMap<String, Option<VerifiedPolicy>> = HashMap::new();
        let mut notices = Vec::new();
        for line in lines {
            let Some(e) = usize::try_from(line.index)
                .ok()
                .and_then(|i| entries.get(i))
            else {
                continue;
            };
            let AuditEvent::Release { org, .. } = &e.event else {
                continue;
            };
            if !policies.contains_key(org) {
                let p = match self.latest_policy(org).await {
                    Ok(p) => Some(p),
                    Err(err) if is_transient(&err) => return Err(err),
                    Err(_) => None,
                };
                policies.insert(org.clone(), p);
            }
            let policy = policies.get(org).and_then(Option::as_ref);
            let verified = line.signed
                && line.included != Some(false)
                && policy.is_some_and(|p| p.trustee_index(&e.signer).is_some());
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

/// "your chat 1a2b3c4d" for the customer, "chat 1a2b3c4d" for anyone else.
pub fn chat_name(audience: Audience, id: &ConversationId) -> String {
    let full = id.to_string();
    let short = full.get(..8).unwrap_or(&full);
    match audience {
        Audience::Customer => format!("your chat {short}"),
        Audience::Master | Audience::Other => format!("chat {short}"),
    }
}

/// Groups release notices by request, in order of each request's first entry. Notices of
/// different requests stay apart; entries of one request fold into the first.
pub fn group(notices: impl IntoIterator<Item = ReleaseNotice>) -> Vec<ReleaseNotice> {
    let mut out: Vec<ReleaseNotice> = Vec::new();
    for n in notices {
        match out.iter_mut().find(|g| g.same_request(&n)) {
            Some(g) => g.absorb(&n),
            None => out.push(n),
        }
    }
    out
}

/// Groups release entries checked only offline (a transcript's, where no log is at hand): an
/// entry counts if its signature verifies and a trustee of `policy` signed it.
pub fn group_entries<'a>(
    entries: impl IntoIterator<Item = (u64, &'a AuditEntry)>,
    policy: Option<&VerifiedPolicy>,
) -> Vec<ReleaseNotice> {
    group(entries.into_iter().filter_map(|(index, e)| {
        let verified = e.verify().is_ok()
            && policy.is_some_and(|p| {
                p.trustee_index(&e.signer).is_some()
                    && matches!(&e.event, AuditEvent::Release { org, .. } if *org == p.org)
            });
        ReleaseNotice::from_entry(index, e, verified, policy)
    }))
}

/// The master's transcript header: one line per release request that opened the transcript,
/// in the master's words ("acme (you) opened … under the customer's consent of …"), with the
/// audit indexes of its entries. Entries are checked offline (signature, signer a trustee of
/// the newest policy the released records were made under).
pub fn transcript_releases(t: &Transcript) -> Vec<String> {
    let policy = t
        .policies
        .iter()
        .max_by_key(|p| p.version)
        .and_then(|p| p.clone().verify().ok());
    group_entries(t.releases.iter().map(|(i, e)| (*i, e)), policy.as_ref())
        .iter()
        .map(|r| {
            let mut refs: Vec<u64> = r.indexes.iter().chain(&r.failed).copied().collect();
            refs.sort_unstable();
            let refs: Vec<String> = refs.iter().map(|i| format!("#{i}")).collect();
            format!(
                "{} [audit {}]",
                r.describe(Audience::Master, "this conversation"),
                refs.join(", ")
            )
        })
        .collect()
}

/// "2 Dec" (UTC) for Unix seconds.
pub fn day_month(secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // `fmt_time` is "YYYY-MM-DD HH:MM:SS": reuse its calendar arithmetic.
    let full = crate::chat::fmt_time(secs);
    let month = full
        .get(5..7)
        .and_then(|m| m.parse::<usize>().ok())
        .and_then(|m| m.checked_sub(1))
        .and_then(|m| MONTHS.get(m));
    let day = full.get(8..10).and_then(|d| d.parse::<u8>().ok());
    match (day, month) {
        (Some(d), Some(m)) => format!("{d} {m}"),
        _ => full,
    }
}

fn trustee_word(n: usize) -> &'static str {
    if n == 1 { "trustee" } else { "trustees" }
}

/// "a", "a and b", "a, b and c".
fn and_list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn audit_refs(indexes: &[u64]) -> String {
    indexes
        .iter()
        .map(|i| format!("audit #{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(trustee: &str, index: u64, verified: bool) -> ReleaseNotice {
        ReleaseNotice {
            request: "ab".repeat(32),
            org: "acme".into(),
            conversation: ConversationId::from_bytes(&[1; 16]).unwrap(),
            epochs: EpochRange { first: 0, last: 1 },
            ground: ReleaseGround::Consent {
                id: "c1".into(),
                // 2 Dec 2026, 10:00 UTC.
                issued_at: 1_796_205_600,
            },
            trustees: if verified {
                vec![trustee.into()]
            } else {
                Vec::new()
            },
            threshold: 2,
            of: 3,
            indexes: if verified { vec![index] } else { Vec::new() },
            failed: if verified { Vec::new() } else { vec![index] },
            repeats: 0,
        }
    }

    #[test]
    fn two_trustees_of_one_request_are_one_opened_notice() {
        let g = group([notice("t1", 4, true), notice("t2", 5, true)]);
        assert_eq!(g.len(), 1);
        assert!(g[0].opened() && g[0].genuine());
        assert_eq!(
            g[0].describe(Audience::Customer, "this chat"),
            "acme opened epochs 0–1 of this chat under your consent of 2 Dec, released by \
             trustees t1 and t2 (2 of 3)"
        );
        assert!(
            g[0].describe(Audience::Other, "chat x")
                .contains("under the customer's consent of 2 Dec")
        );
    }

    #[test]
    fn one_trustee_reads_requested_not_opened() {
        let g = group([notice("t1", 4, true)]);
        let text = g[0].describe(Audience::Customer, "this chat");
        assert!(!g[0].opened());
        assert!(
            text.contains("requested, not opened (1 of 2 trustees"),
            "{text}"
        );
        assert!(!text.contains(" opened epoch"), "{text}");
    }

    #[test]
    fn a_failed_entry_is_not_counted_and_is_named() {
        let g = group([
            notice("t1", 4, true),
            notice("t2", 5, false),
            notice("t1", 6, true),
        ]);
        assert_eq!(g.len(), 1);
        assert!(
            !g[0].opened(),
            "a failed entry counted towards the threshold"
        );
        assert!(!g[0].genuine());
        assert_eq!(g[0].repeats, 1, "the same trustee counted twice");
        let text = g[0].describe(Audience::Customer, "this chat");
        assert!(
            text.contains("NOT GENUINE") && text.contains("audit #5"),
            "{text}"
        );
    }

    #[test]
    fn a_verified_entry_saying_something_else_is_not_counted() {
        let mut other = notice("t2", 5, true);
        other.epochs = EpochRange { first: 0, last: 9 };
        let g = group([notice("t1", 4, true), other]);
        assert_eq!(g[0].trustees, ["t1"]);
        assert_eq!(g[0].failed, [5]);
    }

    #[test]
    fn a_dispute_release_names_the_ticket_and_the_arbiters() {
        let mut n = notice("t1", 4, true);
        n.ground = ReleaseGround::Dispute {
            ticket: "tk1".into(),
            arbiters: vec!["arbiter-1".into(), "arbiter-3".into()],
        };
        n.absorb(&{
            let mut m = n.clone();
            m.trustees = vec!["t3".into()];
            m.indexes = vec![5];
            m
        });
        assert_eq!(
            n.describe(Audience::Customer, "this chat"),
            "acme opened epochs 0–1 of this chat under dispute ticket tk1, approved by arbiters \
             arbiter-1 and arbiter-3, released by trustees t1 and t3 (2 of 3)"
        );
    }

    #[test]
    fn months_and_days_are_read_right() {
        assert_eq!(day_month(0), "1 Jan");
        assert_eq!(day_month(951_782_400), "29 Feb");
    }
}
