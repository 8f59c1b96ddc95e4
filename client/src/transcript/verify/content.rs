//! Checks of the released keys, the messages shown, and the sequence (nothing dropped).

use std::collections::{BTreeMap, BTreeSet};

use sealdesk_protocol::signed::Signed as _;
use sealdesk_protocol::{
    epoch::VerifiedEpoch,
    export::OmittedKind,
    keys::SigningPublicKey,
    message::{EpochKeys, ReplayWindows},
    secret::EpochSecret,
};

use super::{Parsed, Reason, Verifier, preview};
use crate::transcript::format::*;

impl Verifier {
    /// Keys: each released epoch of a non-redacted export has its key, matching the record's
    /// commitment; no key for an epoch not released.
    pub(super) fn check_keys(&mut self, parsed: &Parsed, released: &BTreeSet<u32>, redacted: bool) {
        for (_, rec, key) in &parsed.epochs {
            let n = rec.epoch;
            match key {
                Some(_) if redacted => self.fail(
                    Reason::KeyInRedactedExport,
                    format!(
                        "this redacted export shows epoch {n}'s key, which opens every message of \
                         the epoch, the withheld ones too"
                    ),
                ),
                Some(_) if !released.contains(&n) => self.fail(
                    Reason::EpochNotReleased,
                    format!(
                        "the file shows epoch {n}'s key, but no valid release covers epoch {n}"
                    ),
                ),
                Some(k) => {
                    if !k.matches(&parsed.conversation, n, &rec.commitment) {
                        self.fail(
                            Reason::BadKey,
                            format!("epoch {n}'s key does not match the record's commitment"),
                        );
                        continue;
                    }
                    // With K in hand, the escrow section must recompute byte for byte (the
                    // check a member makes when it opens the epoch).
                    let escrow_ok =
                        match (self.policies.get(&rec.policy_version), rec.customer_key()) {
                            (Some(policy), Ok(customer)) => rec
                                .escrow
                                .check(k, &parsed.conversation, n, &customer, policy)
                                .is_ok(),
                            _ => false,
                        };
                    if !escrow_ok {
                        self.fail(
                            Reason::BadKey,
                            format!("epoch {n}'s escrow section does not recompute from its key"),
                        );
                    }
                }
                None if released.contains(&n) && !redacted => self.fail(
                    Reason::BadKey,
                    format!(
                        "epoch {n} is released, but this non-redacted export does not show its key"
                    ),
                ),
                None => {}
            }
        }
    }

    /// Messages: each in a released epoch, from a member, signed, named as on the card, its
    /// text what it decrypts to (unless redacted), each sender's counters without holes.
    pub(super) fn check_messages(
        &mut self,
        file: &ExportFile,
        parsed: &Parsed,
        epochs: &BTreeMap<u32, VerifiedEpoch>,
        released: &BTreeSet<u32>,
    ) {
        let keys: BTreeMap<u32, &EpochSecret> = parsed
            .epochs
            .iter()
            .filter_map(|(_, r, k)| k.as_ref().map(|k| (r.epoch, k)))
            .collect();
        let mut counters: BTreeMap<(u32, SigningPublicKey), Vec<u64>> = BTreeMap::new();
        let mut windows: BTreeMap<u32, ReplayWindows> = BTreeMap::new();
        let before = self.failures.len();
        let names = item_names(file, parsed);
        for (((m, env), message_key), name) in file
            .messages
            .iter()
            .zip(&parsed.messages)
            .zip(&parsed.message_keys)
            .zip(&names)
        {
            let at = format!("{name} (shown as from {})", m.sender);
            let h = &env.header;
            if h.conversation != parsed.conversation {
                self.fail(
                    Reason::WrongConversation,
                    format!("{at} is from conversation {}", h.conversation),
                );
                continue;
            }
            if h.sent_at != m.sent_at {
                self.fail(
                    Reason::ShownFieldMismatch,
                    format!(
                        "{at} is shown as sent at {}, but its signed header says {}",
                        m.sent_at, h.sent_at
                    ),
                );
            }
            if h.epoch != m.epoch {
                self.fail(
                    Reason::ShownFieldMismatch,
                    format!(
                        "{at} claims epoch {} but its envelope is of epoch {}",
                        m.epoch, h.epoch
                    ),
                );
            }
            let Some(rec) = epochs.get(&h.epoch) else {
                self.fail(
                    Reason::EpochNotReleased,
                    format!("{at} is of epoch {}, which has no verified record", h.epoch),
                );
                continue;
            };
            if !released.contains(&h.epoch) {
                self.fail(
                    Reason::EpochNotReleased,
                    format!(
                        "{at} is of epoch {}, which no valid release covers",
                        h.epoch
                    ),
                );
            }
            let Some(member) = rec.member(&h.sender) else {
                self.fail(
                    Reason::SenderNotMember,
                    format!("{at}: its signer is not a member of epoch {}", h.epoch),
                );
                continue;
            };
            if env.check_signature().is_err() {
                self.fail(Reason::BadMessageSignature, format!("{at}: bad signature"));
                continue;
            }
            if member.name != m.sender {
                self.fail(
                    Reason::SenderNameMismatch,
                    format!("{at} was signed by {}", member.name),
                );
            }
            counters
                .entry((h.epoch, h.sender))
                .or_default()
                .push(h.counter);
            if !file.redacted {
                if m.withheld || message_key.is_some() {
                    self.fail(
                        Reason::BadWithheld,
                        format!(
                            "{at} is marked withheld or carries a message key in a non-redacted \
                             export"
                        ),
                    );
                    continue;
                }
                match keys.get(&h.epoch) {
                    None => self.fail(
                        Reason::BadKey,
                        format!(
                            "{at}: epoch {}'s key is not in this non-redacted export",
                            h.epoch
                        ),
                    ),
                    Some(k) => {
                        let w = windows.entry(h.epoch).or_default();
                        let opened = EpochKeys::new(k, rec).open_message(env, w);
                        self.check_opened(&at, m, opened);
                    }
                }
            } else if m.withheld {
                if message_key.is_some() || !m.text.is_empty() || m.attachment.is_some() {
                    self.fail(
                        Reason::BadWithheld,
                        format!("{at} is marked withheld but shows its text, key or file"),
                    );
                } else {
                    self.withheld.push(m.seq);
                }
            } else {
                match message_key {
                    None => self.fail(
                        Reason::MessageKeyMissing,
                        format!(
                            "{at} is shown in clear without its message key, so its text is not \
                             proven (a redacted export made before they carried message keys: \
                             ask the business to export it again)"
                        ),
                    ),
                    Some(k) if !k.matches(env) => self.fail(
                        Reason::BadMessageKey,
                        format!(
                            "{at}: the message key shown is not the one its signed header \
                             commits to"
                        ),
                    ),
                    Some(k) => self.check_opened(&at, m, k.open(env)),
                }
            }
        }
        for ((epoch, sender), mut seen) in counters {
            seen.sort_unstable();
            let name = epochs
                .get(&epoch)
                .and_then(|r| r.member(&sender))
                .map(|c| c.name.clone())
                .unwrap_or_default();
            let expected: Vec<u64> = (0..seen.len() as u64).collect();
            if seen != expected {
                let set: BTreeSet<u64> = seen.iter().copied().collect();
                let top = seen.last().copied().unwrap_or(0);
                let missing: Vec<u64> = (0..=top).filter(|c| !set.contains(c)).collect();
                self.fail(
                    Reason::CounterGap,
                    format!(
                        "{name}'s messages in epoch {epoch}: counters {missing:?} are missing{}",
                        if set.len() < seen.len() {
                            " and some repeat"
                        } else {
                            ""
                        }
                    ),
                );
            }
        }
        if self.failures.len() == before {
            let how = if !file.redacted {
                ", each decrypting to the text shown".to_owned()
            } else if self.withheld.is_empty() {
                ", each decrypting with its own message key to the text shown (redacted export: \
                 no message withheld)"
                    .to_owned()
            } else {
                format!(
                    "; {} shown in clear, each decrypting with its own message key to the text \
                     shown; {} withheld (redacted: sender, time and place proven, content not \
                     shown): seq {}",
                    file.messages.len() - self.withheld.len(),
                    self.withheld.len(),
                    preview(&self.withheld)
                )
            };
            self.pass(format!(
                "{} message(s): each from a member of its epoch, signed by its sender, every \
                 sender's counters without holes{how}",
                file.messages.len(),
            ));
        }
    }

    /// A message opened (by its epoch key or its own message key): its text and file must be
    /// what the file shows.
    fn check_opened(
        &mut self,
        at: &str,
        m: &ExportMessage,
        opened: sealdesk_protocol::Result<sealdesk_protocol::message::Opened>,
    ) {
        match opened {
            Ok(o) if message_text(o.header.kind, &o.body) == m.text => {
                if let Err(why) = crate::attachment::check_exported(&o, m.attachment.as_ref()) {
                    self.fail(Reason::AttachmentMismatch, format!("{at}: {why}"));
                }
            }
            Ok(_) => self.fail(
                Reason::TextMismatch,
                format!("{at}: the text shown is not what the sender wrote"),
            ),
            Err(e) => self.fail(
                Reason::TextMismatch,
                format!("{at} does not decrypt with the key shown: {e}"),
            ),
        }
    }

    /// Sequence numbers: messages in order, and the file's items (epoch records, messages,
    /// items left out) cover 1..=last_seq exactly once; no message of a released epoch left out.
    pub(super) fn check_sequence(
        &mut self,
        file: &ExportFile,
        parsed: &Parsed,
        released: &BTreeSet<u32>,
    ) {
        let before = self.failures.len();
        for w in file.messages.windows(2) {
            if w[1].seq <= w[0].seq {
                self.fail(
                    Reason::SequenceGap,
                    format!("the item at seq {} comes after seq {}", w[1].seq, w[0].seq),
                );
            }
        }
        let mut all: BTreeMap<u64, usize> = BTreeMap::new();
        for s in parsed
            .epochs
            .iter()
            .map(|(s, _, _)| *s)
            .chain(file.messages.iter().map(|m| m.seq))
            .chain(parsed.omitted.iter().map(|o| o.seq))
        {
            *all.entry(s).or_default() += 1;
        }
        let repeated: Vec<u64> = all
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(s, _)| *s)
            .collect();
        if !repeated.is_empty() {
            self.fail(
                Reason::SequenceGap,
                format!("sequence numbers {repeated:?} appear more than once"),
            );
        }
        let missing: Vec<u64> = (1..=file.last_seq)
            .filter(|s| !all.contains_key(s))
            .collect();
        if !missing.is_empty() {
            self.fail(
                Reason::SequenceGap,
                format!(
                    "{} item(s) of the conversation up to seq {} are neither shown nor listed as \
                     left out: seq {}",
                    missing.len(),
                    file.last_seq,
                    preview(&missing)
                ),
            );
        }
        if let Some((&top, _)) = all.iter().next_back()
            && top > file.last_seq
        {
            self.fail(
                Reason::SequenceGap,
                format!(
                    "the item at seq {top} is after the last sequence number, {}",
                    file.last_seq
                ),
            );
        }
        for o in &parsed.omitted {
            if o.kind == OmittedKind::Message && o.epoch.is_none() {
                self.fail(
                    Reason::WithheldMessage,
                    format!(
                        "the item at seq {} is a message left out without its epoch: it could be a message \
                         of a released epoch",
                        o.seq
                    ),
                );
            }
            if o.kind == OmittedKind::Message && o.epoch.is_some_and(|e| released.contains(&e)) {
                self.fail(
                    Reason::WithheldMessage,
                    format!(
                        "the item at seq {} is a message of released epoch {} and is left out",
                        o.seq,
                        o.epoch.unwrap_or_default()
                    ),
                );
            }
        }
        if self.failures.len() == before {
            self.pass(format!(
                "sequence numbers 1 to {} all accounted for: nothing dropped from the middle or \
                 the end, no message of a released epoch left out",
                file.last_seq
            ));
        }
    }
}

/// How the verdict names each of the file's messages, in `history`'s numbers where the file
/// has them ([`ExportFile::message_numbers`]): "message #4 (seq 8)", "read receipt (seq 3)",
/// "status change (seq 9)"; "message (seq 8)" where a message left out comes before it.
fn item_names(file: &ExportFile, parsed: &Parsed) -> Vec<String> {
    use sealdesk_protocol::message::ContentKind;
    parsed
        .messages
        .iter()
        .zip(&file.messages)
        .zip(file.message_numbers())
        .map(|((env, m), number)| match (env.header.kind, number) {
            (ContentKind::Read, _) => format!("read receipt (seq {})", m.seq),
            (ContentKind::Status, _) => format!("status change (seq {})", m.seq),
            (_, Some(n)) => format!("message #{n} (seq {})", m.seq),
            (_, None) => format!("message (seq {})", m.seq),
        })
        .collect()
}
