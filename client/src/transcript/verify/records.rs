//! Checks of the file's policies (to the anchored master), end marker, epochs and hand-offs.

use std::collections::{BTreeMap, BTreeSet};

use sealdesk_protocol::signed::Signed as _;
use sealdesk_protocol::{
    card::Role,
    epoch::{HandOff, VerifiedEpoch},
    handoff_chain::Holders,
    keys::SigningPublicKey,
};

use super::{Anchors, Parsed, Reason, Verifier};
use crate::transcript::format::*;

impl Verifier {
    /// The policies: each verifies, is this org's, and is signed by the master key — the
    /// anchored one if there is an anchor. Returns the master key and its fingerprint.
    pub(super) fn check_policies(
        &mut self,
        file: &ExportFile,
        parsed: &Parsed,
        anchors: &Anchors,
    ) -> Option<(SigningPublicKey, String)> {
        let mut verified = Vec::new();
        for p in &parsed.policies {
            match p.clone().verify() {
                Ok(v) if v.org == file.org => verified.push(v),
                Ok(v) => self.fail(
                    Reason::BadPolicy,
                    format!(
                        "policy version {} is for org {:?}, not {:?}",
                        v.version, v.org, file.org
                    ),
                ),
                Err(e) => self.fail(
                    Reason::BadPolicy,
                    format!("policy version {} does not verify: {e}", p.version),
                ),
            }
        }
        if verified.is_empty() {
            self.fail(
                Reason::NoPolicy,
                "no policy in the file verifies: there is no master key to check anything with, \
                 so nothing was checked",
            );
        }
        let master_card = match &anchors.org_fingerprint {
            Some(fp) => {
                let found = verified.iter().map(|p| p.master.clone()).find(|c| {
                    c.clone()
                        .verify()
                        .is_ok_and(|c| c.fingerprint().matches(fp))
                });
                if found.is_none() {
                    let seen: BTreeSet<String> = verified
                        .iter()
                        .filter_map(|p| p.master.clone().verify().ok())
                        .map(|c| c.fingerprint().to_string())
                        .collect();
                    self.fail(
                        Reason::WrongMaster,
                        format!(
                            "no policy in the file is signed by the master with fingerprint {fp} \
                             (the file's policies name {})",
                            if seen.is_empty() {
                                "no valid master".to_owned()
                            } else {
                                seen.into_iter().collect::<Vec<_>>().join(", ")
                            }
                        ),
                    );
                }
                found
            }
            None => verified.first().map(|p| p.master.clone()),
        }?;
        let master = master_card.signing_key;
        let fingerprint = master_card
            .clone()
            .verify()
            .map(|c| c.fingerprint().to_string())
            .unwrap_or_default();
        for p in verified {
            if p.master_key() != master {
                self.fail(
                    Reason::BadPolicy,
                    format!(
                        "policy version {} is signed by another master key than the anchored one",
                        p.version
                    ),
                );
            } else {
                let version = p.version;
                if let std::collections::btree_map::Entry::Vacant(slot) =
                    self.policies.entry(version)
                {
                    slot.insert(p);
                } else {
                    self.fail(
                        Reason::BadPolicy,
                        format!("policy version {version} appears twice"),
                    );
                }
            }
        }
        if !self.policies.is_empty() {
            self.pass(format!(
                "{} policy version(s) of {}, signed by the master {fingerprint}{}",
                self.policies.len(),
                file.org,
                if anchors.org_fingerprint.is_some() {
                    " (the anchored fingerprint)"
                } else {
                    " (NOT anchored)"
                }
            ));
        }
        Some((master, fingerprint))
    }

    pub(super) fn check_end_marker(
        &mut self,
        file: &ExportFile,
        parsed: &Parsed,
        master: SigningPublicKey,
    ) {
        let ok = match &parsed.signature {
            None => {
                self.fail(
                    Reason::BadEndMarker,
                    "the export has no end marker signature",
                );
                return;
            }
            Some(sig) => parsed.statement(file, master).verify(sig).is_ok(),
        };
        if ok {
            self.pass(format!(
                "end marker signed by the master: the {} message(s), {} item(s) left out and \
                 everything else up to seq {} are exactly as the master exported them",
                file.messages.len(),
                file.omitted.len(),
                file.last_seq
            ));
        } else {
            self.fail(
                Reason::BadEndMarker,
                "the master's end marker does not verify: the file was changed after the master \
                 exported it, or was not exported by the anchored master",
            );
        }
    }

    /// Epoch records from epoch 0: each verifies under a policy of the anchored master, the
    /// chain holds (epoch 0 created by the customer, each later one by a member of the one
    /// before), and every agent member has a certificate from the master valid at creation.
    pub(super) fn check_epochs(
        &mut self,
        file: &ExportFile,
        parsed: &Parsed,
        master: SigningPublicKey,
    ) -> BTreeMap<u32, VerifiedEpoch> {
        let mut out: BTreeMap<u32, VerifiedEpoch> = BTreeMap::new();
        let mut previous: Option<VerifiedEpoch> = None;
        let mut chain_ok = true;
        let mut broken = false;
        for ((_, rec, _), shown) in parsed.epochs.iter().zip(&file.epochs) {
            let n = rec.epoch;
            if shown.epoch != n {
                self.fail(
                    Reason::ShownFieldMismatch,
                    format!(
                        "the file shows epoch {} at seq {}, but the record there is of epoch {n}",
                        shown.epoch, shown.seq
                    ),
                );
            }
            let Some(policy) = self.policies.get(&rec.policy_version).cloned() else {
                self.fail(
                    Reason::MissingPolicy,
                    format!(
                        "epoch {n} was made under policy version {}, which the file does not carry \
                         signed by the master",
                        rec.policy_version
                    ),
                );
                chain_ok = false;
                broken = true;
                continue;
            };
            if rec.conversation != parsed.conversation {
                self.fail(
                    Reason::WrongConversation,
                    format!("epoch {n} record is for conversation {}", rec.conversation),
                );
            }
            // Agents are the master's: each needs its certificate, valid when the epoch was
            // created (checked on the cards as written, whether or not the record verifies).
            for m in rec.members.iter().filter(|m| m.role == Role::Agent) {
                let certified = parsed.certificates.iter().any(|c| {
                    c.agent == *m
                        && c.verify(&policy, rec.created_at).is_ok()
                        && policy.master_key() == master
                });
                if !certified {
                    self.fail(
                        Reason::AgentNotCertified,
                        format!(
                            "agent {} of epoch {n} has no certificate from the master valid when \
                             the epoch was created",
                            m.name
                        ),
                    );
                }
            }
            let v = match rec.clone().verify(&policy) {
                Ok(v) => v,
                Err(e) => {
                    self.fail(
                        Reason::BadEpochRecord,
                        format!("epoch {n} record does not verify: {e}"),
                    );
                    chain_ok = false;
                    broken = true;
                    continue;
                }
            };
            if broken {
                self.fail(
                    Reason::BrokenEpochChain,
                    format!("epoch {n} follows a record that does not verify"),
                );
            } else if let Err(e) = v.check_follows(previous.as_ref()) {
                chain_ok = false;
                self.fail(
                    Reason::BrokenEpochChain,
                    match &previous {
                        None => format!("epoch {n} cannot start the chain: {e}"),
                        Some(p) => format!("epoch {n} does not follow epoch {}: {e}", p.epoch),
                    },
                );
            }
            previous = Some(v.clone());
            if out.insert(n, v).is_some() {
                self.fail(Reason::BrokenEpochChain, format!("epoch {n} appears twice"));
            }
        }
        if out.is_empty() {
            self.fail(Reason::BrokenEpochChain, "the file has no epoch records");
        } else if chain_ok {
            self.pass(format!(
                "{} epoch record(s): a chain from epoch 0 created by the customer, members \
                 certified by the master, for conversation {}",
                out.len(),
                file.conversation
            ));
        }
        out
    }

    /// Hand-offs: each record present, for this conversation, signed by a member of every epoch
    /// it hands over (or an agent that holds it by the earlier hand-offs, PROTOCOL.md §7.6), to
    /// a member of a later epoch whose policy allows history hand-off.
    pub(super) fn check_handoffs(
        &mut self,
        parsed: &Parsed,
        epochs: &BTreeMap<u32, VerifiedEpoch>,
    ) {
        let before = self.failures.len();
        let records: Vec<VerifiedEpoch> = epochs.values().cloned().collect();
        // Who holds what by the hand-offs before the one checked, followed once each.
        let mut holders = Holders::default();
        for (seq, h) in &parsed.handoffs {
            self.check_handoff(parsed, epochs, &holders, *seq, h.as_ref());
            if let Some(h) = h {
                holders.follow_one(&records, h);
            }
        }
        if !parsed.handoffs.is_empty() && self.failures.len() == before {
            self.pass(format!(
                "{} hand-off(s): each signed by a member of the epochs it hands over (or an \
                 agent they were handed to), to a member of a later epoch, as the policy allows",
                parsed.handoffs.len()
            ));
        }
    }

    /// [`Self::check_handoffs`] for the hand-off at `seq` (`None`: listed without its record),
    /// with `holders` those the hand-offs before it made.
    fn check_handoff(
        &mut self,
        parsed: &Parsed,
        epochs: &BTreeMap<u32, VerifiedEpoch>,
        holders: &Holders,
        seq: u64,
        h: Option<&HandOff>,
    ) {
        let Some(h) = h else {
            self.fail(
                Reason::BadHandOff,
                format!("the hand-off at seq {seq} is listed without its record"),
            );
            return;
        };
        let at = format!("the hand-off at seq {seq}");
        if h.conversation != parsed.conversation {
            self.fail(
                Reason::BadHandOff,
                format!("{at} is for another conversation"),
            );
            return;
        }
        if h.check_signature().is_err() {
            self.fail(Reason::BadHandOff, format!("{at}: bad signature"));
            return;
        }
        let handed: Vec<u32> = h.epochs.iter().map(|(e, _)| *e).collect();
        if handed.is_empty() {
            self.fail(Reason::BadHandOff, format!("{at} hands over no epoch"));
            return;
        }
        if handed.iter().any(|e| {
            epochs.get(e).is_none_or(|r| r.member(&h.from).is_none()) && !holders.holds(*e, &h.from)
        }) {
            self.fail(
                Reason::BadHandOff,
                format!(
                    "{at} hands over epochs {handed:?}, of which its signer was not a member \
                     nor held them by an earlier hand-off"
                ),
            );
        }
        let last = handed.iter().max().copied().unwrap_or(0);
        let receiving = epochs
            .values()
            .find(|r| r.epoch > last && r.member(&h.to).is_some());
        match receiving {
            None => self.fail(
                Reason::BadHandOff,
                format!("{at} is to a key that is not a member of a later epoch"),
            ),
            Some(r) => {
                if !self
                    .policies
                    .get(&r.policy_version)
                    .is_some_and(|p| p.history_handoff)
                {
                    self.fail(
                        Reason::BadHandOff,
                        format!(
                            "{at}: the policy of epoch {} does not allow hand-off",
                            r.epoch
                        ),
                    );
                }
            }
        }
    }
}
