//! One release, one notice: the trustees' release entries of one release request, grouped.
//!
//! Every trustee that releases its share for a request signs its own audit-log entry, and the
//! relay delivers each of them into the conversation. A 2-of-3 release is therefore two or
//! three entries, but one event for the people concerned: the org opened these epochs, under
//! this justification, because these trustees released. This module turns the entries into
//! that one notice and words it for its reader.
//!
//! Each entry is still verified on its own by the caller ([`counts_as_release`]: signature,
//! release of the policy's org, signer a trustee of it, conversation; then inclusion in the
//! audit log): a [`ReleaseNotice`] is built from entries with their verdicts, counts as
//! released only the distinct trustee keys whose entries verified, and says which entries
//! failed. Verified entries of one request that say different things (other epochs, org,
//! conversation or justification) are kept apart and counted apart: the request opened if one
//! of them reached the threshold, and the others are named as contradicting it. A request
//! that never reached the trustee threshold reads "not opened as far as the entries received
//! show", never "opened" — and never "not opened" as a fact: the relay may have withheld
//! entries.
//!
//! ```text
//!   entry (trustee-1, request R) ─┐
//!   entry (trustee-2, request R) ─┼─▶ ReleaseNotice R: trustees [trustee-1, trustee-2], 2 of 3
//!   entry (forged,    request R) ─┘                     failed [#7]
//! ```

use sealdesk_protocol::{
    audit::{AuditEntry, AuditEvent, ReleaseBasis},
    ids::{ConversationId, EpochRange},
    keys::SigningPublicKey,
    policy::VerifiedPolicy,
    release::ClosedBecause,
};
use serde::{Deserialize, Serialize};

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
    /// The trustees whose verified entries say the above, by name, in the order their entries
    /// arrived.
    pub trustees: Vec<String>,
    /// Their signing keys, in the same order: what is counted (a key counts once, under
    /// whatever name).
    pub trustee_keys: Vec<SigningPublicKey>,
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
    /// Verified entries of the same request that say something else than the above (other
    /// epochs, org, conversation or justification), grouped by what they say. They contradict
    /// the entries above and are not counted with them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contradicting: Vec<ReleaseVersion>,
    /// Audit-log indexes of verified entries not yet witnessed (no head cosigned by enough of
    /// the org's trustees holds them yet): counted, but the notice is not genuine until they
    /// are (SECURITY.md, "Witnesses").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unwitnessed: Vec<u64>,
}

/// What some verified entries of one release request say, and who signed them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseVersion {
    /// The org.
    pub org: String,
    /// The conversation.
    pub conversation: ConversationId,
    /// The epochs.
    pub epochs: EpochRange,
    /// The justification.
    pub ground: ReleaseGround,
    /// The trustees, by name, in arrival order.
    pub trustees: Vec<String>,
    /// Their signing keys, in the same order (distinct).
    pub trustee_keys: Vec<SigningPublicKey>,
    /// Audit-log indexes of their entries, in the same order.
    pub indexes: Vec<u64>,
}

impl ReleaseVersion {
    fn same_content(&self, other: &Self) -> bool {
        self.org == other.org
            && self.conversation == other.conversation
            && self.epochs == other.epochs
            && self.ground == other.ground
    }

    /// Adds `other`'s trustees (same content); returns how many were counted already.
    fn merge(&mut self, other: &Self) -> u32 {
        let mut repeats = 0;
        for ((name, key), index) in other
            .trustees
            .iter()
            .zip(&other.trustee_keys)
            .zip(&other.indexes)
        {
            if self.trustee_keys.contains(key) {
                repeats += 1;
            } else {
                self.trustees.push(name.clone());
                self.trustee_keys.push(*key);
                self.indexes.push(*index);
            }
        }
        repeats
    }
}

/// Whether a release entry counts towards its request, short of the audit-log inclusion
/// proof (which the caller checks where it has the log): its signature verifies, it is a
/// release of `policy`'s org, one of `policy`'s trustees signed it, and — when
/// `conversation` is given — it is about that conversation. Without a policy nothing counts.
/// Every place that counts release entries (the live notice, `audit`, a transcript's header)
/// uses this one check.
pub fn counts_as_release(
    entry: &AuditEntry,
    policy: Option<&VerifiedPolicy>,
    conversation: Option<&ConversationId>,
) -> bool {
    let Some(p) = policy else {
        return false;
    };
    let AuditEvent::Release {
        org,
        conversation: about,
        ..
    } = &entry.event
    else {
        return false;
    };
    *org == p.org
        && conversation.is_none_or(|c| c == about)
        && p.trustee_index(&entry.signer).is_some()
        && entry.verify().is_ok()
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
                            .unwrap_or_else(|| crate::notice::short_key(k))
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
            .unwrap_or_else(|| crate::notice::short_key(&entry.signer));
        let (trustees, trustee_keys, indexes, failed) = if verified {
            (vec![trustee], vec![entry.signer], vec![index], Vec::new())
        } else {
            (Vec::new(), Vec::new(), Vec::new(), vec![index])
        };
        Some(Self {
            request: hex::encode(request_hash),
            org: org.clone(),
            conversation: *conversation,
            epochs: *epochs,
            ground,
            trustees,
            trustee_keys,
            threshold: policy.map_or(0, |p| p.trustee_threshold),
            of: policy.map_or(0, |p| u8::try_from(p.trustees.len()).unwrap_or(u8::MAX)),
            indexes,
            failed,
            repeats: 0,
            contradicting: Vec::new(),
            unwitnessed: Vec::new(),
        })
    }

    /// Marks this (single-entry) notice's entry as verified but not yet witnessed.
    #[must_use]
    pub fn as_unwitnessed(mut self) -> Self {
        self.unwitnessed = self.indexes.clone();
        self
    }

    /// Marks this (single-entry) notice as a repeat of an entry already counted.
    #[must_use]
    pub fn as_repeat(mut self) -> Self {
        self.trustees.clear();
        self.trustee_keys.clear();
        self.indexes.clear();
        self.repeats = 1;
        self
    }

    /// Whether `other` belongs to the same release request.
    pub fn same_request(&self, other: &Self) -> bool {
        self.request == other.request
    }

    /// What the notice's own (counted) entries say.
    fn main_version(&self) -> ReleaseVersion {
        ReleaseVersion {
            org: self.org.clone(),
            conversation: self.conversation,
            epochs: self.epochs,
            ground: self.ground.clone(),
            trustees: self.trustees.clone(),
            trustee_keys: self.trustee_keys.clone(),
            indexes: self.indexes.clone(),
        }
    }

    fn set_main(&mut self, v: ReleaseVersion) {
        self.org = v.org;
        self.conversation = v.conversation;
        self.epochs = v.epochs;
        self.ground = v.ground;
        self.trustees = v.trustees;
        self.trustee_keys = v.trustee_keys;
        self.indexes = v.indexes;
    }

    fn reaches_threshold(&self, keys: usize) -> bool {
        self.threshold > 0 && keys >= usize::from(self.threshold)
    }

    /// Folds another notice of the same request into this one. Verified entries are grouped
    /// by what they say (org, conversation, epochs, justification) and each group counts its
    /// distinct trustee keys; a trustee key counted already in its group is a repeat. The
    /// notice describes the first group that reaches the threshold, else the one with the
    /// most trustees (the earliest on a tie); the other groups are kept as contradicting it.
    pub fn absorb(&mut self, other: &Self) {
        if !self.same_request(other) {
            return;
        }
        self.failed.extend(&other.failed);
        self.unwitnessed.extend(&other.unwitnessed);
        self.repeats += other.repeats;
        if other.threshold > 0 {
            self.threshold = other.threshold;
            self.of = other.of;
        }
        let mut versions = vec![self.main_version()];
        versions.append(&mut self.contradicting);
        let incoming = std::iter::once(other.main_version()).chain(other.contradicting.clone());
        for v in incoming.filter(|v| !v.trustee_keys.is_empty()) {
            match versions.iter_mut().find(|x| x.same_content(&v)) {
                Some(x) => self.repeats += x.merge(&v),
                None => versions.push(v),
            }
        }
        // A main group of failed entries only describes the request until a verified entry
        // arrives.
        if versions.len() > 1 && versions[0].trustee_keys.is_empty() {
            versions.remove(0);
        }
        let mut best = 0;
        let score = |v: &ReleaseVersion| {
            (
                self.reaches_threshold(v.trustee_keys.len()),
                v.trustee_keys.len(),
            )
        };
        for (i, v) in versions.iter().enumerate() {
            if score(v) > score(&versions[best]) {
                best = i;
            }
        }
        let main = versions.remove(best);
        self.set_main(main);
        self.contradicting = versions;
    }

    /// Whether enough distinct trustees' verified entries saying the same thing arrived for
    /// the epochs to open.
    pub fn opened(&self) -> bool {
        self.reaches_threshold(self.trustee_keys.len())
    }

    /// Whether the notice can be shown as genuine: at least one verified entry, none failed,
    /// none contradicting the others, and every entry witnessed.
    pub fn genuine(&self) -> bool {
        !self.trustee_keys.is_empty()
            && self.failed.is_empty()
            && self.contradicting.is_empty()
            && self.unwitnessed.is_empty()
    }

    /// Audit-log indexes of every entry of the request: counted, contradicting, failed.
    pub fn all_indexes(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self
            .indexes
            .iter()
            .chain(self.contradicting.iter().flat_map(|v| &v.indexes))
            .chain(&self.failed)
            .copied()
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The notice in plain words for `audience`; `chat` names the conversation ("this chat").
    pub fn describe(&self, audience: Audience, chat: &str) -> String {
        let org = match audience {
            Audience::Master => format!("{} (you)", self.org),
            Audience::Customer | Audience::Other => self.org.clone(),
        };
        let epochs = self.epochs;
        let under = under_words(&self.ground, audience);
        let mut text = if self.trustee_keys.is_empty() {
            format!(
                "a release notice that is NOT GENUINE (not signed by a trustee of the org, or \
                 not proven in the audit log): it claims {org} opened {epochs} of {chat} {under}"
            )
        } else if self.opened() {
            format!(
                "{org} opened {epochs} of {chat} {under}, released by {} {} (threshold {} of {})",
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
                "{org} asked to open {epochs} of {chat} {under}: not opened as far as the \
                 entries received show ({} of {needed} trustees; released so far by {} {})",
                self.trustees.len(),
                trustee_word(self.trustees.len()),
                and_list(&self.trustees)
            )
        };
        for v in &self.contradicting {
            let org = match audience {
                Audience::Master => format!("{} (you)", v.org),
                Audience::Customer | Audience::Other => v.org.clone(),
            };
            let other_chat = if v.conversation == self.conversation {
                chat.to_owned()
            } else {
                chat_name(audience, &v.conversation)
            };
            text.push_str(&format!(
                " — {} by {} {} {} other entries of this release (it says {org} opens {} of \
                 {other_chat} {}; not counted with them)",
                audit_refs(&v.indexes),
                trustee_word(v.trustees.len()),
                and_list(&v.trustees),
                if v.indexes.len() == 1 {
                    "contradicts"
                } else {
                    "contradict"
                },
                v.epochs,
                under_words(&v.ground, audience)
            ));
        }
        if !self.trustee_keys.is_empty() && !self.failed.is_empty() {
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
        if !self.unwitnessed.is_empty() {
            let mut refs = self.unwitnessed.clone();
            refs.sort_unstable();
            refs.dedup();
            text.push_str(&format!(
                " — {}",
                not_yet_witnessed(&audit_refs(&refs), &self.org, None, audience)
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
        let verified = counts_as_release(e, policy, None);
        ReleaseNotice::from_entry(index, e, verified, policy)
    }))
}

/// "2 Dec 2026" (UTC) for Unix seconds.
pub fn day_month(secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // `fmt_time` is "YYYY-MM-DD HH:MM:SS": reuse its calendar arithmetic.
    let full = crate::fmt_time(secs);
    let mut date = full.split(' ').next().unwrap_or_default().splitn(3, '-');
    let (year, month, day) = (date.next(), date.next(), date.next());
    let month = month
        .and_then(|m| m.parse::<usize>().ok())
        .and_then(|m| m.checked_sub(1))
        .and_then(|m| MONTHS.get(m));
    let day = day.and_then(|d| d.parse::<u8>().ok());
    match (day, month, year) {
        (Some(d), Some(m), Some(y)) => format!("{d} {m} {y}"),
        _ => full,
    }
}

/// "under your consent of 2 Dec 2026" (the customer), "under the customer's consent of …"
/// (anyone else), "under dispute ticket …, approved by arbiters …".
fn under_words(ground: &ReleaseGround, audience: Audience) -> String {
    match (ground, audience) {
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

/// What a reader says of an audit entry of a kind this version cannot read (PROTOCOL.md §12.3
/// "Who reads the log"): passed over, never taken for one of the kinds it reads.
pub fn unreadable_text(code: u8) -> String {
    format!("an entry of a kind this version cannot read (code {code}): update sealdesk to read it")
}

/// What a reader says of the audit entries at `indexes` (increasing), of kinds this version
/// cannot read: one line, e.g. "1 entry of a kind this version cannot read at index 4 —
/// update sealdesk".
pub fn unreadable_summary(indexes: &[u64]) -> String {
    let at = indexes
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match indexes.len() {
        1 => format!("1 entry of a kind this version cannot read at index {at} — update sealdesk"),
        n => format!(
            "{n} entries of a kind this version cannot read at indexes {at} — update sealdesk"
        ),
    }
}

/// One audit entry in plain words for `audience` (a trustee's release entry on its own: one
/// share released, not an opening; [`crate::notice`] words a release request as a whole).
/// Only the customer reads "your consent"; anyone else reads "the customer's consent".
pub fn describe_notice(entry: &AuditEntry, verified: bool, audience: Audience) -> String {
    let mark = if verified {
        ""
    } else {
        " (NOT GENUINE: not signed by a party allowed to make it, or not proven in the audit log)"
    };
    let text = match &entry.event {
        AuditEvent::Release {
            org, epochs, basis, ..
        } => match basis {
            // One trustee's entry: the release request it belongs to opens only with enough
            // of them, which `crate::notice` says once per request.
            ReleaseBasis::Consent { id, .. } => format!(
                "a trustee released its share to {org} for {epochs} of this chat under {} \
                 consent {id}",
                match audience {
                    Audience::Customer => "your",
                    Audience::Master | Audience::Other => "the customer's",
                }
            ),
            ReleaseBasis::Dispute { id, approvers } => format!(
                "a trustee released its share to {org} for {epochs} of this chat under dispute \
                 ticket {id}, approved by {}",
                match approvers.len() {
                    1 => "1 arbiter".to_owned(),
                    n => format!("{n} arbiters"),
                }
            ),
        },
        AuditEvent::Erasure { reason, .. } => format!("this conversation was erased ({reason})"),
        AuditEvent::ConsentRevocation { consent, .. } => {
            format!("consent {consent} was revoked")
        }
        AuditEvent::PolicyChange { org, version, .. } => {
            format!("{org} published policy version {version}")
        }
        AuditEvent::DisputeClosed {
            org,
            ticket,
            because,
            ..
        } => {
            let why = match because {
                ClosedBecause::Master(reason) => format!("{org} closed it: {reason}"),
                ClosedBecause::Released => "the release it allowed was collected".to_owned(),
                ClosedBecause::Rejected => "the arbiters rejected it".to_owned(),
            };
            format!(
                "dispute {ticket} on this chat is closed ({why}); nothing more can be opened \
                 under it, and the hold on erasing this chat has ended"
            )
        }
        AuditEvent::Extension(x) => unreadable_text(x.code()),
    };
    format!("{text}{mark}")
}

/// What a notice not yet witnessed says of its entries (`refs`, e.g. "audit #4") to
/// `audience`; `why` is the witnessing check's own words, when known.
///
/// The customer reads what it means for her, in a line or two: the org's independent trustees
/// have not confirmed it yet, it is checked again, and if it stays so the relay may be hiding
/// something. She cannot act on the rest. The master, trustees, arbiters and agents read the
/// detail they can act on: which entries, the count of cosignatures against the needed
/// (`why`), and where to look (`sealdesk audit --verify`; trustees witness with
/// `sealdesk trustee serve`).
pub fn not_yet_witnessed(refs: &str, org: &str, why: Option<&str>, audience: Audience) -> String {
    match audience {
        Audience::Customer => format!(
            "NOT YET CONFIRMED by {org}'s independent trustees (checked again at each sync; if it \
             stays unconfirmed, the relay may be hiding something)"
        ),
        Audience::Master | Audience::Other => {
            // The check's words name the counts and the trustees' command; without them, the
            // command is named here.
            let why = match why {
                Some(w) => format!(": {w}"),
                None => "; trustees cosign while `sealdesk trustee serve` runs".to_owned(),
            };
            format!(
                "NOT YET WITNESSED: {refs} not yet in a log that enough of {org}'s trustees \
                 cosigned (SECURITY.md, \"Witnesses\"); not shown as genuine until they do, \
                 checked again at each sync{why}. `sealdesk audit --verify` shows the witnesses"
            )
        }
    }
}

/// A key shown by the start of its fingerprint, for a signer this account has no name for.
pub fn short_key(k: &SigningPublicKey) -> String {
    let s = k.to_string();
    format!("key {}", s.get(..16).unwrap_or(&s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use sealdesk_protocol::keys::IdentityKeys;

    /// The signing key of trustee `n` (fixed per `n`).
    fn key(n: u8) -> SigningPublicKey {
        IdentityKeys::generate(&mut rand::rngs::ChaCha20Rng::from_seed([n; 32])).signing_public()
    }

    /// One entry's notice: trustee `name` signing with key `k`.
    fn entry(name: &str, k: u8, index: u64, verified: bool) -> ReleaseNotice {
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
                vec![name.into()]
            } else {
                Vec::new()
            },
            trustee_keys: if verified { vec![key(k)] } else { Vec::new() },
            threshold: 2,
            of: 3,
            indexes: if verified { vec![index] } else { Vec::new() },
            failed: if verified { Vec::new() } else { vec![index] },
            repeats: 0,
            contradicting: Vec::new(),
            unwitnessed: Vec::new(),
        }
    }

    /// Trustee `tN` with its own key `N`.
    fn notice(trustee: &str, index: u64, verified: bool) -> ReleaseNotice {
        let k = trustee.trim_start_matches('t').parse::<u8>().unwrap_or(0);
        entry(trustee, k, index, verified)
    }

    #[test]
    fn an_opened_release_with_an_entry_not_yet_witnessed_is_not_genuine() {
        let g = group([
            notice("t1", 4, true),
            notice("t2", 5, true).as_unwitnessed(),
        ]);
        assert_eq!(g.len(), 1);
        assert!(g[0].opened(), "both entries still count");
        assert!(!g[0].genuine(), "but the notice is not genuine yet");
        // The customer reads what it means for her, short, with no command she cannot run.
        let text = g[0].describe(Audience::Customer, "this chat");
        assert!(
            text.contains(
                "NOT YET CONFIRMED by acme's independent trustees (checked again at each sync; \
                 if it stays unconfirmed, the relay may be hiding something)"
            ),
            "{text}"
        );
        assert!(!text.contains("sealdesk"), "{text}");
        assert!(!text.contains("WITNESSED"), "{text}");
        // The master and the other parties keep the detail: which entry, where to look.
        for audience in [Audience::Master, Audience::Other] {
            let text = g[0].describe(audience, "this chat");
            assert!(text.contains("NOT YET WITNESSED: audit #5"), "{text}");
            assert!(text.contains("`sealdesk audit --verify`"), "{text}");
            assert!(text.contains("`sealdesk trustee serve`"), "{text}");
        }
        // Once the entry is witnessed (its line replaced), the same release is genuine.
        let g = group([notice("t1", 4, true), notice("t2", 5, true)]);
        assert!(g[0].genuine());
        assert!(
            !g[0]
                .describe(Audience::Customer, "this chat")
                .contains("WITNESSED")
        );
    }

    #[test]
    fn two_trustees_of_one_request_are_one_opened_notice() {
        let g = group([notice("t1", 4, true), notice("t2", 5, true)]);
        assert_eq!(g.len(), 1);
        assert!(g[0].opened() && g[0].genuine());
        assert_eq!(
            g[0].describe(Audience::Customer, "this chat"),
            "acme opened epochs 0–1 of this chat under your consent of 2 Dec 2026, released by \
             trustees t1 and t2 (threshold 2 of 3)"
        );
        assert!(
            g[0].describe(Audience::Other, "chat x")
                .contains("under the customer's consent of 2 Dec 2026")
        );
    }

    #[test]
    fn one_trustee_reads_not_opened_as_far_as_received() {
        let g = group([notice("t1", 4, true)]);
        let text = g[0].describe(Audience::Customer, "this chat");
        assert!(!g[0].opened());
        assert!(
            text.contains(
                "not opened as far as the entries received show (1 of 2 trustees; released so \
                 far by trustee t1)"
            ),
            "{text}"
        );
        assert!(!text.contains("requested, not opened"), "{text}");
        assert!(!text.contains(" opened epoch"), "{text}");
    }

    #[test]
    fn one_key_under_two_names_counts_once() {
        // The same trustee key, named differently (another policy version, an unknown key
        // shown by its short form): one trustee, not two.
        let g = group([entry("t1", 1, 4, true), entry("trustee-one", 1, 5, true)]);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].trustee_keys, [key(1)]);
        assert_eq!(g[0].trustees, ["t1"]);
        assert_eq!(g[0].repeats, 1);
        assert!(!g[0].opened(), "one key counted as two trustees");
        // A second distinct key reaches the threshold.
        let g = group([
            entry("t1", 1, 4, true),
            entry("trustee-one", 1, 5, true),
            entry("t1", 2, 6, true),
        ]);
        assert!(g[0].opened());
        assert_eq!(g[0].trustee_keys, [key(1), key(2)]);
        assert_eq!(g[0].indexes, [4, 6]);
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
        assert_eq!(g[0].contradicting.len(), 1);
        assert_eq!(g[0].contradicting[0].indexes, [5]);
        assert!(!g[0].opened() && !g[0].genuine());
    }

    /// A misbehaving trustee signs an entry with the request's hash but other epochs, and it
    /// arrives first: the two honest entries still open the release as they say, and the odd
    /// one is named as contradicting them — not the honest ones as failed.
    #[test]
    fn a_contradicting_entry_arriving_first_does_not_decide_the_release() {
        let mut odd = notice("t3", 3, true);
        odd.epochs = EpochRange { first: 0, last: 9 };
        let g = group([odd, notice("t1", 4, true), notice("t2", 5, true)]);
        assert_eq!(g.len(), 1);
        let n = &g[0];
        assert!(n.opened(), "{n:?}");
        assert_eq!(n.epochs, EpochRange { first: 0, last: 1 });
        assert_eq!(n.trustees, ["t1", "t2"]);
        assert!(n.failed.is_empty(), "honest entries counted as failed");
        assert_eq!(n.contradicting.len(), 1);
        assert_eq!(n.contradicting[0].trustees, ["t3"]);
        assert!(!n.genuine());
        let text = n.describe(Audience::Customer, "this chat");
        assert!(
            text.starts_with(
                "acme opened epochs 0–1 of this chat under your consent of 2 Dec 2026, \
                 released by trustees t1 and t2 (threshold 2 of 3)"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "audit #3 by trustee t3 contradicts other entries of this release (it says \
                 acme opens epochs 0–9 of this chat"
            ),
            "{text}"
        );
        assert!(!text.contains("NOT GENUINE"), "{text}");
        assert_eq!(n.all_indexes(), [3, 4, 5]);
    }

    /// Each group counts only its own trustees: two trustees saying different things do not
    /// add up to an opening.
    #[test]
    fn contradicting_entries_do_not_add_up_to_the_threshold() {
        let mut odd = notice("t2", 5, true);
        odd.ground = ReleaseGround::Dispute {
            ticket: "tk9".into(),
            arbiters: Vec::new(),
        };
        let g = group([notice("t1", 4, true), odd]);
        assert!(!g[0].opened());
        let text = g[0].describe(Audience::Other, "chat x");
        assert!(text.contains("not opened as far as"), "{text}");
        assert!(
            text.contains("contradicts other entries of this release") && text.contains("tk9"),
            "{text}"
        );
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
            m.trustee_keys = vec![key(3)];
            m.indexes = vec![5];
            m
        });
        assert_eq!(
            n.describe(Audience::Customer, "this chat"),
            "acme opened epochs 0–1 of this chat under dispute ticket tk1, approved by arbiters \
             arbiter-1 and arbiter-3, released by trustees t1 and t3 (threshold 2 of 3)"
        );
    }

    #[test]
    fn days_months_and_years_are_read_right() {
        assert_eq!(day_month(0), "1 Jan 1970");
        assert_eq!(day_month(951_782_400), "29 Feb 2000");
        assert_eq!(day_month(1_796_205_600), "2 Dec 2026");
    }

    #[test]
    fn an_audit_report_with_a_bad_release_entry_is_not_verified() {
        use crate::escrow::{AuditLine, AuditReport};
        let report = |releases: Vec<ReleaseNotice>| AuditReport {
            size: 9,
            root: String::new(),
            consistent_with_pinned: Some(true),
            witnessed: Default::default(),
            withheld: 8,
            leaves_make_head: true,
            unreadable: Vec::new(),
            entries: vec![AuditLine {
                index: 4,
                text: String::new(),
                signed: true,
                signer_allowed: true,
                included: Some(true),
                fault: None,
            }],
            releases: releases
                .into_iter()
                .map(|notice| AuditRelease {
                    text: String::new(),
                    notice,
                })
                .collect(),
        };
        assert!(report(group([notice("t1", 4, true), notice("t2", 5, true)])).verified());
        // An entry whose signer may not make an entry of its kind fails the report.
        let mut wrong_signer = report(group([notice("t1", 4, true), notice("t2", 5, true)]));
        if let Some(line) = wrong_signer.entries.first_mut() {
            line.signer_allowed = false;
        }
        assert!(!wrong_signer.verified());
        // Withheld entries are not failures; leaves that do not make up the head are.
        let mut not_the_log = report(group([notice("t1", 4, true), notice("t2", 5, true)]));
        not_the_log.leaves_make_head = false;
        assert!(!not_the_log.verified());
        // Not opened is not a failure: only what is not genuine or contradicts is.
        assert!(report(group([notice("t1", 4, true)])).verified());
        assert!(!report(group([notice("t1", 4, true), notice("t2", 5, false)])).verified());
        let mut odd = notice("t2", 5, true);
        odd.epochs = EpochRange { first: 3, last: 3 };
        assert!(!report(group([notice("t1", 4, true), odd])).verified());
    }

    /// A signed 2-of-3 policy of `org` with trustees "trustee-1..3", the trustees' keys, and
    /// a release event of `org` about conversation [1; 16].
    struct Fixture {
        policy: VerifiedPolicy,
        trustees: Vec<IdentityKeys>,
        outsider: IdentityKeys,
        event: AuditEvent,
    }

    fn fixture(org: &str) -> Fixture {
        use sealdesk_protocol::{
            card::{IdentityCard, Role},
            ids::TokenId,
            policy::{OrgPolicy, PolicyParams},
            release::Scope,
        };
        let mut rng = rand::rngs::ChaCha20Rng::from_seed([7; 32]);
        let master = IdentityKeys::generate(&mut rng);
        let trustees: Vec<_> = (0..3).map(|_| IdentityKeys::generate(&mut rng)).collect();
        let card = |k: &IdentityKeys, n: &str, r| IdentityCard::issue(k, n, r, 100).unwrap();
        let mcard = card(&master, "master", Role::Master);
        let tcards = trustees
            .iter()
            .enumerate()
            .map(|(i, k)| card(k, &format!("trustee-{}", i + 1), Role::Trustee).into_card())
            .collect();
        let mut params = PolicyParams::new(org, tcards, 2, Vec::new(), 0);
        params.allow_dispute = false;
        let policy = OrgPolicy::issue(&master, &mcard, params, 100).unwrap();
        let event = AuditEvent::Release {
            org: org.into(),
            request_hash: [3; 32],
            conversation: ConversationId::from_bytes(&[1; 16]).unwrap(),
            epochs: EpochRange { first: 0, last: 1 },
            basis: ReleaseBasis::Consent {
                id: TokenId::random(&mut rng),
                scope: Scope::Full,
                issued_at: 1_796_205_600,
            },
            master: master.signing_public(),
        };
        Fixture {
            policy,
            trustees,
            outsider: IdentityKeys::generate(&mut rng),
            event,
        }
    }

    /// The one per-entry check: each condition removed would let one of these through.
    #[test]
    fn only_a_trustee_signed_release_of_the_policys_org_counts() {
        let f = fixture("acme");
        let conv = ConversationId::from_bytes(&[1; 16]).unwrap();
        let other_conv = ConversationId::from_bytes(&[2; 16]).unwrap();
        let good = AuditEntry::sign(&f.trustees[0], f.event.clone(), 200);
        assert!(counts_as_release(&good, Some(&f.policy), Some(&conv)));
        assert!(counts_as_release(&good, Some(&f.policy), None));
        // Without a policy, nothing counts.
        assert!(!counts_as_release(&good, None, Some(&conv)));
        // Another conversation.
        assert!(!counts_as_release(
            &good,
            Some(&f.policy),
            Some(&other_conv)
        ));
        // Not a trustee.
        let outsider = AuditEntry::sign(&f.outsider, f.event.clone(), 200);
        assert!(!counts_as_release(&outsider, Some(&f.policy), None));
        // Tampered after signing.
        let mut tampered = good.clone();
        if let AuditEvent::Release { epochs, .. } = &mut tampered.event {
            epochs.last = 9;
        }
        assert!(!counts_as_release(&tampered, Some(&f.policy), None));
        // A trustee of acme signing a release of another org: not acme's release.
        let mut event = f.event.clone();
        if let AuditEvent::Release { org, .. } = &mut event {
            *org = "globex".into();
        }
        let other_org = AuditEntry::sign(&f.trustees[1], event, 200);
        assert!(!counts_as_release(&other_org, Some(&f.policy), None));
        // The offline grouping uses the same check: the other org's entry fails.
        let g = group_entries([(4, &good), (5, &other_org)], Some(&f.policy));
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].indexes, [4]);
        assert_eq!(g[0].failed, [5]);
    }

    /// A trustee's entry on its own is worded for its reader: "your consent" only for the
    /// customer.
    #[test]
    fn a_single_entry_is_worded_by_reader() {
        let f = fixture("acme");
        let e = AuditEntry::sign(&f.trustees[0], f.event.clone(), 200);
        let customer = crate::notice::describe_notice(&e, true, Audience::Customer);
        assert!(customer.contains("under your consent"), "{customer}");
        for audience in [Audience::Master, Audience::Other] {
            let text = crate::notice::describe_notice(&e, true, audience);
            assert!(text.contains("under the customer's consent"), "{text}");
            assert!(!text.contains("your consent"), "{text}");
        }
    }
}
