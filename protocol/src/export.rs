//! The master's end marker over an exported transcript: a signature by the org's master key
//! over everything the export shows and everything it leaves out, so that a reader holding only
//! the org's published master fingerprint can tell that nothing was added, dropped, reordered or
//! rewritten after the export.
//!
//! Per-message signatures prove who said what, but not which messages there were: the relay's
//! sequence numbers are not signed by the senders, and a dropped tail leaves no hole in any
//! sender's counters. The end marker closes that: the master states every sequence number of
//! the conversation up to the last one it saw — each either a message shown (with its envelope)
//! or an item left out (with its kind) — and signs the statement.
//!
//! | field            | layout                                                               |
//! |------------------|----------------------------------------------------------------------|
//! | label            | `sealdesk/v1/transcript-end`                                         |
//! | conversation     | 16 bytes                                                             |
//! | org              | string                                                               |
//! | redacted         | bool                                                                 |
//! | policies         | list of 32-byte policy hashes                                        |
//! | epochs           | list of (`u64` seq, 32-byte epoch record hash)                       |
//! | messages         | list of (`u64` seq, bytes envelope signed bytes, 64-byte signature, string sender, string text) |
//! | omitted          | list of (`u64` seq, `u8` kind, option `u32` epoch)                   |
//! | last seq         | `u64`                                                                |
//! | releases         | list of (`u64` leaf index, 32-byte leaf hash, 32-byte request hash)  |
//! | tree head        | `u64` size, 32-byte root                                             |
//! | signed at        | `u64`                                                                |
//! | master           | 32-byte signing key                                                  |

use crate::{
    Result,
    codec::Writer,
    ids::ConversationId,
    keys::{IdentityKeys, Signature, SigningPublicKey},
    labels,
    message::Envelope,
};

/// The kind of a conversation item an export leaves out of its messages.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OmittedKind {
    /// A message of an epoch that was not released.
    Message,
    /// A history hand-off record.
    HandOff,
    /// A consent token shared into the conversation.
    Consent,
    /// A release notice.
    Notice,
}

impl OmittedKind {
    /// The byte in the signed layout.
    pub fn code(self) -> u8 {
        match self {
            OmittedKind::Message => 1,
            OmittedKind::HandOff => 2,
            OmittedKind::Consent => 3,
            OmittedKind::Notice => 4,
        }
    }
}

/// A message as the export shows it.
#[derive(Debug)]
pub struct ShownMessage<'a> {
    /// Relay sequence number.
    pub seq: u64,
    /// The envelope as stored by the relay.
    pub envelope: &'a Envelope,
    /// The sender's name, as shown.
    pub sender: &'a str,
    /// The text, as shown (masked in a redacted export).
    pub text: &'a str,
}

/// An item the export leaves out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OmittedItem {
    /// Relay sequence number.
    pub seq: u64,
    /// What it is.
    pub kind: OmittedKind,
    /// Its epoch, for messages.
    pub epoch: Option<u32>,
}

/// A release entry the export relies on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ReleaseRef {
    /// Leaf index in the audit log.
    pub index: u64,
    /// The entry's leaf hash.
    pub leaf_hash: [u8; 32],
    /// The hash of the release request the entry answers.
    pub request_hash: [u8; 32],
}

/// Everything the master's end marker covers.
#[derive(Debug)]
pub struct ExportStatement<'a> {
    /// The conversation.
    pub conversation: ConversationId,
    /// The org.
    pub org: &'a str,
    /// Whether the texts are redacted.
    pub redacted: bool,
    /// The hashes of the policies included, in file order.
    pub policies: Vec<[u8; 32]>,
    /// The epoch records included, in file order: `(seq, record hash)`.
    pub epochs: Vec<(u64, [u8; 32])>,
    /// The messages shown, in file order.
    pub messages: Vec<ShownMessage<'a>>,
    /// The items left out, in file order.
    pub omitted: Vec<OmittedItem>,
    /// The conversation's last sequence number when the master exported it.
    pub last_seq: u64,
    /// The release entries.
    pub releases: Vec<ReleaseRef>,
    /// Size of the tree head the inclusion proofs are for.
    pub tree_size: u64,
    /// Its root.
    pub tree_root: [u8; 32],
    /// When the master signed.
    pub signed_at: u64,
    /// The master's signing key.
    pub master: SigningPublicKey,
}

impl ExportStatement<'_> {
    /// The canonical bytes the master's signature covers (layout in the module docs).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_label(labels::TRANSCRIPT_END);
        w.fixed(self.conversation.as_bytes())
            .str(self.org)
            .bool(self.redacted)
            .count(self.policies.len());
        for p in &self.policies {
            w.fixed(p);
        }
        w.count(self.epochs.len());
        for (seq, hash) in &self.epochs {
            w.u64(*seq).fixed(hash);
        }
        w.count(self.messages.len());
        for m in &self.messages {
            w.u64(m.seq)
                .bytes(&m.envelope.signed_bytes())
                .fixed(&m.envelope.signature.to_bytes())
                .str(m.sender)
                .str(m.text);
        }
        w.count(self.omitted.len());
        for o in &self.omitted {
            w.u64(o.seq).u8(o.kind.code());
            match o.epoch {
                None => w.u8(0),
                Some(e) => w.u8(1).u32(e),
            };
        }
        w.u64(self.last_seq).count(self.releases.len());
        for r in &self.releases {
            w.u64(r.index).fixed(&r.leaf_hash).fixed(&r.request_hash);
        }
        w.u64(self.tree_size)
            .fixed(&self.tree_root)
            .u64(self.signed_at)
            .fixed(self.master.as_bytes());
        w.into_bytes()
    }

    /// Signs the statement with the master's identity key (`self.master` must be its key).
    pub fn sign(&self, master: &IdentityKeys) -> Signature {
        master.sign(&self.signed_bytes())
    }

    /// Checks the master's signature.
    ///
    /// # Errors
    /// [`crate::Error::BadSignature`].
    pub fn verify(&self, signature: &Signature) -> Result<()> {
        self.master
            .verify(&self.signed_bytes(), signature, "transcript end marker")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::test_rng;

    fn statement(master: &IdentityKeys) -> ExportStatement<'static> {
        ExportStatement {
            conversation: ConversationId::random(&mut test_rng(1)),
            org: "acme",
            redacted: false,
            policies: vec![[1; 32]],
            epochs: vec![(1, [2; 32])],
            messages: Vec::new(),
            omitted: vec![OmittedItem {
                seq: 2,
                kind: OmittedKind::Message,
                epoch: Some(0),
            }],
            last_seq: 3,
            releases: vec![ReleaseRef {
                index: 4,
                leaf_hash: [5; 32],
                request_hash: [6; 32],
            }],
            tree_size: 7,
            tree_root: [8; 32],
            signed_at: 9,
            master: master.signing_public(),
        }
    }

    #[test]
    fn end_marker_verifies_and_binds_every_field() {
        let master = IdentityKeys::generate(&mut test_rng(2));
        let sig = statement(&master).sign(&master);
        statement(&master).verify(&sig).unwrap();
        let changes: Vec<fn(&mut ExportStatement<'static>)> = vec![
            |s| s.org = "other",
            |s| s.redacted = true,
            |s| s.policies.clear(),
            |s| s.epochs[0].0 = 2,
            |s| s.omitted[0].kind = OmittedKind::Notice,
            |s| s.omitted[0].epoch = None,
            |s| s.last_seq = 2,
            |s| s.releases[0].index = 5,
            |s| s.tree_size = 8,
            |s| s.signed_at = 10,
        ];
        for change in changes {
            let mut s = statement(&master);
            change(&mut s);
            assert!(s.verify(&sig).is_err());
        }
        // Another key's signature over the same statement does not verify as the master's.
        let other = IdentityKeys::generate(&mut test_rng(3));
        assert!(
            statement(&master)
                .verify(&statement(&master).sign(&other))
                .is_err()
        );
    }
}
