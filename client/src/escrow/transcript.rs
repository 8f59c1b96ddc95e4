//! The master's decrypted transcript of exactly the released epochs, kept locally and merged
//! across unlocks, and its release header.

use std::collections::BTreeMap;

use sealdesk_protocol::{
    epoch::VerifiedEpoch,
    ids::ConversationId,
    message::{ContentKind, EpochKeys, ReplayWindows},
    policy::OrgPolicy,
    secret::EpochSecret,
    wire::Item,
};

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::notice::{Audience, group_entries};
use crate::redact::redact;
use crate::store::{Transcript, TranscriptMessage};
use crate::transcript::format::message_text;

/// What the master's transcript shows for a file of a redacted release (its export
/// withholds it whole).
pub const FILE_WITHHELD: &str = "[attachment withheld: the release is redacted]";
use sealdesk_protocol::policy::VerifiedPolicy;

impl Client {
    pub(super) async fn build_transcript(
        &mut self,
        id: &ConversationId,
        org: &str,
        records: &[VerifiedEpoch],
        keys: &BTreeMap<u32, EpochSecret>,
        redacted: bool,
    ) -> Result<Transcript> {
        let mut opened: BTreeMap<u32, (EpochKeys, ReplayWindows)> = BTreeMap::new();
        let mut policies = Vec::new();
        let mut recs = Vec::new();
        for (epoch, k) in keys {
            if let Some(rec) = records.iter().find(|r| r.epoch == *epoch) {
                opened.insert(*epoch, (EpochKeys::new(k, rec), ReplayWindows::default()));
                recs.push(rec.record().clone());
                let p = self.policy(&rec.org, rec.policy_version).await?;
                if !policies.iter().any(|x: &OrgPolicy| x.version == p.version) {
                    policies.push(p.policy().clone());
                }
            }
        }
        let mut messages = Vec::new();
        for s in self.history_items(id).await? {
            if let Item::Message(env) = s.item
                && let Some((k, windows)) = opened.get_mut(&env.header.epoch)
                && let Ok(m) = k.open_message(&env, windows)
            {
                // The messages `history` numbers, files included, so that the transcript's
                // "#4" is the customer's; read receipts and status changes are left out.
                let text = match m.header.kind {
                    ContentKind::Text => {
                        let text = String::from_utf8_lossy(&m.body).into_owned();
                        if redacted { redact(&text) } else { text }
                    }
                    // A file's name and caption are the sender's words, not masked one by
                    // one: a redacted release withholds the file whole, as its export does.
                    ContentKind::Attachment if redacted => FILE_WITHHELD.to_owned(),
                    ContentKind::Attachment => message_text(m.header.kind, &m.body),
                    ContentKind::Read | ContentKind::Status => continue,
                };
                let sender = records
                    .iter()
                    .find(|r| r.epoch == env.header.epoch)
                    .and_then(|r| r.member(&env.header.sender).map(|c| c.name.clone()))
                    .unwrap_or_else(|| crate::notice::short_key(&env.header.sender));
                messages.push(TranscriptMessage {
                    seq: s.seq,
                    epoch: env.header.epoch,
                    counter: env.header.counter,
                    sender,
                    sent_at: env.header.sent_at,
                    text,
                    envelope: env,
                });
            }
        }
        let mut gaps = Vec::new();
        for (epoch, (_, windows)) in &opened {
            if let Some(rec) = records.iter().find(|r| r.epoch == *epoch) {
                for m in &rec.members {
                    if let Some(w) = windows.get(&m.signing_key) {
                        let missing = w.missing();
                        if !missing.is_empty() {
                            gaps.push((*epoch, m.name.clone(), missing));
                        }
                    }
                }
            }
        }
        Ok(Transcript {
            conversation: *id,
            org: org.to_owned(),
            redacted,
            records: recs,
            policies,
            messages,
            with_files: true,
            gaps,
            releases: Vec::new(),
        })
    }

    /// Master: a transcript kept by an earlier version, which kept texts only
    /// ([`Transcript::with_files`] false), rebuilt with its files in their place: the relay's
    /// history of its released epochs opened again with the epoch keys this account kept when
    /// they were released, merged with the copy, and saved. No new release is asked for.
    ///
    /// A transcript kept with its files is returned as it is.
    ///
    /// # Errors
    /// [`ClientError::NotReleased`]; [`ClientError::EpochKeysNotKept`] (nothing changed) if
    /// a released epoch's key is not in this account's vault: only a new release of those
    /// epochs brings it back; verification and relay errors.
    pub async fn rebuild_transcript(&mut self, id: &ConversationId) -> Result<Transcript> {
        let old = self.transcript(id)?;
        if old.with_files {
            return Ok(old);
        }
        let mut keys = BTreeMap::new();
        let mut missing = Vec::new();
        let mut records = Vec::new();
        for r in &old.records {
            match self.account.store().master_key(id, r.epoch)? {
                Some(k) => {
                    keys.insert(r.epoch, k);
                }
                None => missing.push(r.epoch),
            }
            let policy = self.policy(&r.org, r.policy_version).await?;
            records.push(r.clone().verify(&policy)?);
        }
        if !missing.is_empty() {
            return Err(ClientError::EpochKeysNotKept { epochs: missing });
        }
        let org = old.org.clone();
        let redacted = old.redacted;
        let rebuilt = self
            .build_transcript(id, &org, &records, &keys, redacted)
            .await?;
        // The kept copy's release entries and any message the relay no longer serves stay;
        // every released epoch was opened again, so the files are all in.
        let mut t = merge(old, rebuilt);
        t.with_files = true;
        self.account.store().put_transcript(id, &t)?;
        Ok(t)
    }

    /// Master: whether counting `t`'s messages gives `history`'s numbers: no message of an
    /// epoch `t` does not hold comes before its last message in the relay's history. If one
    /// does, nobody holding `t` can say how many messages `history` counted there (their kind
    /// is in the clear, but whether each opens is not known without the epoch's key), so its
    /// messages are named by sequence number only — as the exports name theirs
    /// ([`crate::transcript::ExportFile::numbers_are_historys`]).
    ///
    /// # Errors
    /// Relay errors.
    pub async fn transcript_numbers_hold(
        &mut self,
        id: &ConversationId,
        t: &Transcript,
    ) -> Result<bool> {
        let Some(last) = t.messages.iter().map(|m| m.seq).max() else {
            return Ok(true);
        };
        let released: Vec<u32> = t.records.iter().map(|r| r.epoch).collect();
        Ok(!self.history_items(id).await?.into_iter().any(|s| {
            s.seq < last
                && matches!(&s.item, Item::Message(env) if !released.contains(&env.header.epoch))
        }))
    }

    /// Master: the transcript unlocked earlier.
    ///
    /// # Errors
    /// [`ClientError::NotReleased`] if no release opened it.
    pub fn transcript(&self, id: &ConversationId) -> Result<Transcript> {
        self.account
            .store()
            .transcript(id)?
            .ok_or_else(|| not_released(id))
    }
}

/// The typed error for a master asking for a transcript nothing released.
pub fn not_released(id: &ConversationId) -> ClientError {
    ClientError::NotReleased {
        conversation: id.to_string(),
    }
}

pub(super) fn merge(old: Transcript, new: Transcript) -> Transcript {
    let mut t = new;
    for r in old.records {
        if !t.records.iter().any(|x| x.epoch == r.epoch) {
            t.records.push(r);
        }
    }
    t.records.sort_by_key(|r| r.epoch);
    for p in old.policies {
        if !t.policies.iter().any(|x| x.version == p.version) {
            t.policies.push(p);
        }
    }
    for m in old.messages {
        if !t.messages.iter().any(|x| x.seq == m.seq) {
            t.messages.push(m);
        }
    }
    t.messages.sort_by_key(|m| m.seq);
    t.releases.extend(old.releases);
    t.releases.sort_by_key(|(i, _)| *i);
    t.releases.dedup_by_key(|(i, _)| *i);
    t.redacted |= old.redacted;
    // The older transcript's messages stay as they were kept: without files, if so.
    t.with_files &= old.with_files;
    t
}

/// The master's transcript header: one line per release request that opened the transcript,
/// in the master's words ("acme (you) opened … under the customer's consent of …"), with the
/// audit indexes of its entries. Entries are checked offline (signature, signer a trustee of
/// the newest policy the released records were made under).
pub fn transcript_releases(t: &Transcript) -> Vec<String> {
    let policy = transcript_policy(t);
    group_entries(t.releases.iter().map(|(i, e)| (*i, e)), policy.as_ref())
        .iter()
        .map(|r| {
            let refs: Vec<String> = r.all_indexes().iter().map(|i| format!("#{i}")).collect();
            format!(
                "{} [audit {}]",
                r.describe(Audience::Master, "this conversation"),
                refs.join(", ")
            )
        })
        .collect()
}

/// The policy a transcript's release entries are checked against: the newest policy the
/// released records were made under, if it verifies.
pub fn transcript_policy(t: &Transcript) -> Option<VerifiedPolicy> {
    t.policies
        .iter()
        .max_by_key(|p| p.version)
        .and_then(|p| p.clone().verify().ok())
}
