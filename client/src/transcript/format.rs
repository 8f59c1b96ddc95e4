//! The export file: [`ExportFile`] and its parts as they appear in the JSON, hex-encoded CBOR
//! for every signed record.

use sealdesk_protocol::{export::OmittedKind, message::ContentKind, status::ConversationStatus};
use serde::{Deserialize, Serialize};

/// The format string of the exports this version writes and verifies.
pub const FORMAT: &str = "sealdesk-transcript/2";
/// The format string of the first version (no anchors, no end marker): refused.
pub const FORMAT_V1: &str = "sealdesk-transcript/1";

// --- the file -----------------------------------------------------------------------------

/// The portable transcript file (JSON, protocol objects as hex CBOR).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportFile {
    /// [`FORMAT`].
    pub format: String,
    /// The conversation (hex).
    pub conversation: String,
    /// The org.
    pub org: String,
    /// Whether the export is redacted: then no epoch key is shown; each message is either
    /// shown in clear with its own message key ([`ExportMessage::key`]) or withheld
    /// ([`ExportMessage::withheld`]), whole.
    pub redacted: bool,
    /// Policies (hex CBOR): every version an epoch record or a release request names.
    pub policies: Vec<String>,
    /// Every epoch record of the conversation, from epoch 0; the released ones with their key.
    pub epochs: Vec<ExportEpoch>,
    /// Agent certificates (hex CBOR) for every agent member of an epoch.
    pub certificates: Vec<String>,
    /// Messages of the released epochs, in relay order.
    pub messages: Vec<ExportMessage>,
    /// Every other item of the conversation, by sequence number and kind.
    pub omitted: Vec<ExportOmitted>,
    /// The conversation's last sequence number when exported.
    pub last_seq: u64,
    /// Release entries with their requests and inclusion proofs.
    pub releases: Vec<ExportRelease>,
    /// The relay's audit-log key (hex). Names the relay only: the verifier checks the tree head
    /// against its anchor, and `--home` anchors the pinned relay with this key, if any.
    pub log_key: String,
    /// The signed tree head the proofs are for (hex CBOR).
    pub tree_head: String,
    /// The master's end marker over all of the above.
    pub end: EndMarker,
}

/// An epoch in an export.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportEpoch {
    /// Relay sequence number of the record.
    pub seq: u64,
    /// Epoch number.
    pub epoch: u32,
    /// The record (hex CBOR).
    pub record: String,
    /// The key K (hex): for released epochs of a non-redacted export only.
    pub key: Option<String>,
}

/// A message in an export.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportMessage {
    /// Relay sequence number.
    pub seq: u64,
    /// Epoch.
    pub epoch: u32,
    /// Sender name.
    pub sender: String,
    /// Sender clock.
    pub sent_at: u64,
    /// The text (for a read receipt, `read up to #N` where N is the relay sequence number read
    /// up to, [`Self::read_up_to_seq`]); empty for a withheld message.
    pub text: String,
    /// The envelope (hex CBOR): header, ciphertext and the sender's signature, withheld or not.
    pub envelope: String,
    /// In a redacted export, for a message shown in clear: its own key and nonce (hex, 44
    /// bytes, [`sealdesk_protocol::disclosure::MessageKey`]), which open this message and no
    /// other. Absent in non-redacted exports (the epoch keys open every message) and for a
    /// withheld message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// In a redacted export: the message is withheld (personal data, or a file) — its header,
    /// ciphertext and signature prove who sent it, when, and its place in the counters and
    /// the sequence, but its content is not shown (no key, empty text).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub withheld: bool,
    /// For a message of kind `attachment` in a non-redacted export: the file, fetched from
    /// the relay and opened with the key in the (signed) message. Absent otherwise, and in
    /// files written before attachments existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<ExportAttachment>,
}

/// An attachment's file in an export. The verifier checks it against the reference in the
/// sender-signed message it belongs to (name, media type, size, SHA-256).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportAttachment {
    /// The file name the sender gave.
    pub name: String,
    /// The media type the sender gave.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of the file (hex).
    pub sha256: String,
    /// The file (hex).
    pub data: String,
}

/// An item an export leaves out.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportOmitted {
    /// Relay sequence number.
    pub seq: u64,
    /// `message` (of an epoch not released), `handoff`, `consent` or `notice`.
    pub kind: String,
    /// The epoch, for a message.
    pub epoch: Option<u32>,
    /// The hand-off record (hex CBOR), for a hand-off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
}

/// A release entry in an export.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportRelease {
    /// Leaf index.
    pub index: u64,
    /// The entry (hex CBOR).
    pub entry: String,
    /// The release request the entry answers (hex CBOR).
    pub request: String,
    /// Inclusion proof in `tree_head` (hex CBOR).
    pub inclusion: String,
    /// Plain words (informative; the verifier describes the entry itself).
    pub text: String,
}

/// The master's signature over the export ([`sealdesk_protocol::export::ExportStatement`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EndMarker {
    /// When the master signed.
    pub signed_at: u64,
    /// The signature (hex).
    pub signature: String,
}

pub(crate) fn kind_name(kind: OmittedKind) -> &'static str {
    match kind {
        OmittedKind::Message => "message",
        OmittedKind::HandOff => "handoff",
        OmittedKind::Consent => "consent",
        OmittedKind::Notice => "notice",
    }
}

pub(crate) fn kind_from_name(name: &str) -> Option<OmittedKind> {
    [
        OmittedKind::Message,
        OmittedKind::HandOff,
        OmittedKind::Consent,
        OmittedKind::Notice,
    ]
    .into_iter()
    .find(|k| kind_name(*k) == name)
}

/// How an export's `text` starts for a read receipt; the relay sequence number it is read up
/// to follows. The file format (PROTOCOL.md §12.5) fixes these words and the verifier checks
/// them, so a view for people renumbers the receipt ([`ExportMessage::read_up_to_seq`]) rather
/// than the file changing them.
pub const READ_UP_TO: &str = "read up to #";

impl ExportFile {
    /// The number `history` gives each of the file's messages
    /// ([`crate::client::message_numbers`]: texts and files 1, 2, 3 … in order; `None` for a
    /// read receipt, a status change, or an envelope that does not decode) — or `None` for
    /// every one when [`Self::numbers_are_historys`] is false.
    pub fn message_numbers(&self) -> Vec<Option<u64>> {
        if !self.numbers_are_historys() {
            return vec![None; self.messages.len()];
        }
        crate::client::message_numbers(self.messages.iter().map(ExportMessage::kind))
    }

    /// Whether counting the file's messages gives `history`'s numbers: no message left out
    /// (of an epoch not released) comes before a message shown. If one does, the file cannot
    /// say how many messages that was, and its items are named by sequence number only.
    pub fn numbers_are_historys(&self) -> bool {
        let last_shown = self.messages.iter().map(|m| m.seq).max().unwrap_or(0);
        !self
            .omitted
            .iter()
            .any(|o| o.kind == kind_name(OmittedKind::Message) && o.seq < last_shown)
    }
}

impl ExportMessage {
    /// The message's kind, from its envelope's header (`None` if the envelope does not
    /// decode).
    pub fn kind(&self) -> Option<ContentKind> {
        let bytes = hex::decode(&self.envelope).ok()?;
        sealdesk_protocol::wire::from_cbor::<sealdesk_protocol::message::Envelope>(
            &bytes, "envelope",
        )
        .ok()
        .map(|e| e.header.kind)
    }

    /// For a read receipt's text (`read up to #N`): N, the relay sequence number it is read up
    /// to — not a message number. `None` for any other text.
    pub fn read_up_to_seq(&self) -> Option<u64> {
        let n = self.text.strip_prefix(READ_UP_TO)?;
        // Digits only: `u64::from_str` also takes a leading '+'.
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n.parse().ok()
    }
}

/// The text an export shows for a decrypted message body.
pub(crate) fn message_text(kind: ContentKind, body: &[u8]) -> String {
    match kind {
        ContentKind::Text => String::from_utf8_lossy(body).into_owned(),
        ContentKind::Read => match <[u8; 8]>::try_from(body) {
            Ok(b) => format!("{READ_UP_TO}{}", u64::from_be_bytes(b)),
            Err(_) => "read receipt (malformed)".into(),
        },
        ContentKind::Status => match ConversationStatus::from_body(body) {
            Ok(s) => format!("set the status to {s}"),
            Err(_) => "status (malformed)".into(),
        },
        ContentKind::Attachment => {
            match sealdesk_protocol::attachment::AttachmentRef::from_body(body) {
                Ok(r) => crate::attachment::describe(&r),
                Err(_) => "attachment (malformed)".into(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sealdesk_protocol::message::ContentKind;

    use super::{EndMarker, ExportFile, ExportMessage, ExportOmitted, message_text};

    fn shown_text(text: String) -> ExportMessage {
        ExportMessage {
            seq: 3,
            epoch: 0,
            sender: "alice".into(),
            sent_at: 0,
            text,
            envelope: String::new(),
            key: None,
            withheld: false,
            attachment: None,
        }
    }

    /// A file of `shown` messages at these seqs and items left out at `(seq, kind)`.
    fn file(shown: &[u64], left_out: &[(u64, &str)]) -> ExportFile {
        ExportFile {
            format: super::FORMAT.into(),
            conversation: String::new(),
            org: "acme".into(),
            redacted: false,
            policies: Vec::new(),
            epochs: Vec::new(),
            certificates: Vec::new(),
            messages: shown
                .iter()
                .map(|s| ExportMessage {
                    seq: *s,
                    ..shown_text(String::new())
                })
                .collect(),
            omitted: left_out
                .iter()
                .map(|(seq, kind)| ExportOmitted {
                    seq: *seq,
                    kind: (*kind).into(),
                    epoch: Some(0),
                    record: None,
                })
                .collect(),
            last_seq: 0,
            releases: Vec::new(),
            log_key: String::new(),
            tree_head: String::new(),
            end: EndMarker {
                signed_at: 0,
                signature: String::new(),
            },
        }
    }

    /// A message left out before one shown (an epoch not released) makes the file's count
    /// not history's, and then no message gets a number; one left out after them, or an item
    /// that is not a message, does not.
    #[test]
    fn a_message_left_out_before_one_shown_stops_the_numbers() {
        assert!(file(&[4, 5], &[(2, "handoff"), (9, "message")]).numbers_are_historys());
        let gap = file(&[4, 5], &[(3, "message")]);
        assert!(!gap.numbers_are_historys());
        assert_eq!(gap.message_numbers(), [None, None]);
    }

    /// A receipt's text gives back the sequence number its body holds; other texts none.
    #[test]
    fn a_receipts_text_gives_back_its_sequence_number() {
        let text = message_text(ContentKind::Read, &2u64.to_be_bytes());
        assert_eq!(text, "read up to #2");
        assert_eq!(shown_text(text).read_up_to_seq(), Some(2));
        for other in [
            "read up to #",
            "read up to #+2",
            "read up to #2 ",
            "hello #2",
        ] {
            assert_eq!(shown_text(other.into()).read_up_to_seq(), None, "{other}");
        }
    }
}
