//! How the master's transcript reads to people: `transcript show` and `unlock`'s listing, and
//! the text and html exports. One numbering for all of them, `history`'s
//! ([`sealdesk_client::client::message_numbers`]): texts and files are messages #1, #2, #3 …
//! in relay order, with the relay's sequence number beside them; read receipts and status
//! changes carry only their sequence number, and a receipt names the message it reads up to
//! by that message's number.

use std::collections::BTreeMap;

use sealdesk_client::{
    client::{message_numbers, read_up_to},
    escrow::{Transcript, transcript_releases},
    fmt_time,
    transcript::{ExportFile, ExportMessage},
};
use sealdesk_protocol::message::ContentKind;

use crate::print::counted;

/// Why a transcript's or an export's items carry sequence numbers only.
pub(super) const UNNUMBERED: &str = "Messages of epochs not released come before some shown here, so \
                          they are named by the relay's sequence number (seq), not by \
                          history's message numbers.";

/// Why a transcript's items carry sequence numbers only when the relay's history could not be
/// read to tell whether [`UNNUMBERED`] is so.
pub(super) const NOT_KNOWN_NUMBERED: &str = "Whether messages of epochs not released come \
                          before some shown here could not be told, so they are named by the \
                          relay's sequence number (seq), not by history's message numbers.";

/// What `transcript show` and `unlock` say of a transcript an earlier version kept without its
/// files, rebuilt with them from the relay (no new release: the epoch keys were kept).
const REBUILT: &str = "This transcript was kept by an earlier version without its files; it \
                       was rebuilt with them from the relay, with the epoch keys kept at its \
                       release, and saved.";

/// What `transcript show` knows of a file message's file, from the export's reading of the
/// released epochs.
pub(super) enum FileCheck {
    /// Fetched, opened chunk by chunk, and its size and SHA-256 matched the signed message.
    Checked,
    /// The relay no longer has it.
    Gone,
}

/// How the saved transcript `transcript show` and `unlock` read came to hold its files.
pub(super) enum Kept {
    /// Kept with them (by this version).
    WithFiles,
    /// Kept by an earlier version without them, and rebuilt with them just now.
    Rebuilt,
    /// Kept by an earlier version without them, and not rebuilt: why.
    WithoutFiles(String),
}

impl Kept {
    /// Whether the transcript was rebuilt with its files just now.
    pub(super) fn rebuilt(&self) -> bool {
        matches!(self, Self::Rebuilt)
    }

    /// The warning for a transcript still without its files: its numbers skip them.
    pub(super) fn warning(&self) -> Option<String> {
        match self {
            Self::WithoutFiles(why) => Some(format!(
                "this transcript was kept by an earlier version, which left the files out, and \
                 it could not be rebuilt with them: {why}. Its message numbers skip the files \
                 and may be lower than history's"
            )),
            Self::WithFiles | Self::Rebuilt => None,
        }
    }
}

/// A released transcript for people: its release notices, its messages numbered as
/// `history` numbers them unless `unnumbered` says why not (then named by sequence number, and
/// that said once),
/// files in their place, with their caption, and what `files` says of each file (keyed by
/// sequence number); and its gaps.
pub(super) fn transcript_text(
    t: &Transcript,
    files: &BTreeMap<u64, FileCheck>,
    unnumbered: Option<&str>,
    rebuilt: bool,
) -> String {
    let mut s = format!(
        "transcript of {} ({}){}\n",
        t.conversation,
        t.org,
        if t.redacted { " — redacted" } else { "" }
    );
    for line in transcript_releases(t) {
        s.push_str(&format!("  {line}\n"));
    }
    if rebuilt {
        s.push_str(REBUILT);
        s.push('\n');
    }
    if let Some(why) = unnumbered {
        s.push_str(why);
        s.push('\n');
    }
    let numbers = transcript_numbers(t, unnumbered.is_none());
    for (m, n) in t.messages.iter().zip(&numbers) {
        let file = match files.get(&m.seq) {
            Some(FileCheck::Checked) => {
                " — file checked: every chunk and the SHA-256 match the signed message"
            }
            Some(FileCheck::Gone) => " — the file is no longer on the relay",
            None => "",
        };
        s.push_str(&format!(
            "{} {} {} (epoch {}): {}   [signature verified]{file}\n",
            item_label(*n, m.seq),
            fmt_time(m.sent_at),
            m.sender,
            m.epoch,
            m.text
        ));
    }
    for (epoch, sender, missing) in &t.gaps {
        s.push_str(&format!(
            "  ⋯ gap: {} from {sender} in epoch {epoch} missing\n",
            counted(missing.len() as u64, "message", "messages")
        ));
    }
    s
}

/// The number `history` gives each of a transcript's messages, if `numbered` (no message of an
/// epoch not released comes first: [`sealdesk_client::Client::transcript_numbers_hold`]);
/// else none.
pub(super) fn transcript_numbers(t: &Transcript, numbered: bool) -> Vec<Option<u64>> {
    if !numbered {
        return vec![None; t.messages.len()];
    }
    message_numbers(t.messages.iter().map(|m| Some(m.envelope.header.kind)))
}

/// The text export: the release lines, then every item of the released epochs, numbered.
pub(super) fn export_text(export: &ExportFile) -> String {
    let mut s = format!("Transcript of {} ({})\n", export.conversation, export.org);
    for r in &export.releases {
        s.push_str(&format!("Released: {} [audit #{}]\n", r.text, r.index));
    }
    if !export.numbers_are_historys() {
        s.push_str(&format!("{UNNUMBERED}\n"));
    }
    for row in export_rows(export) {
        s.push_str(&format!(
            "{} {} {}: {}\n",
            row.label, row.time, row.message.sender, row.text
        ));
    }
    s
}

/// The html export: as [`export_text`], escaped, in a table.
pub(super) fn export_html(export: &ExportFile) -> String {
    let mut s = format!(
        "<!doctype html><meta charset=utf-8><title>Transcript {}</title><h1>Transcript of {} ({})</h1><ul>",
        esc(&export.conversation),
        esc(&export.conversation),
        esc(&export.org)
    );
    for r in &export.releases {
        s.push_str(&format!(
            "<li>Released: {} [audit #{}]</li>",
            esc(&r.text),
            r.index
        ));
    }
    s.push_str("</ul>");
    if !export.numbers_are_historys() {
        s.push_str(&format!("<p>{}</p>", esc(UNNUMBERED)));
    }
    s.push_str("<table>");
    for row in export_rows(export) {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            row.label,
            row.time,
            esc(&row.message.sender),
            esc(&row.text)
        ));
    }
    s.push_str("</table>");
    s
}

/// An exported message's kind, read from its envelope (`None` if that does not decode).
pub(super) fn export_kind(m: &ExportMessage) -> Option<ContentKind> {
    m.kind()
}

/// What an export holds, in the words `history` uses: "7 messages" when that is all, else
/// "12 items: 7 messages, 4 read receipts, 1 status change" (a read receipt or a status is a
/// signed item of the transcript, not a message `history` numbers).
pub(super) fn exported_items(messages: &[ExportMessage]) -> String {
    let (mut said, mut read, mut status, mut other) = (0u64, 0u64, 0u64, 0u64);
    for m in messages {
        match export_kind(m) {
            Some(ContentKind::Text | ContentKind::Attachment) => said += 1,
            Some(ContentKind::Read) => read += 1,
            Some(ContentKind::Status) => status += 1,
            None => other += 1,
        }
    }
    if said == messages.len() as u64 {
        return counted(said, "message", "messages");
    }
    let parts: Vec<String> = [
        (said, "message", "messages"),
        (read, "read receipt", "read receipts"),
        (status, "status change", "status changes"),
        (other, "other item", "other items"),
    ]
    .into_iter()
    .filter(|(n, ..)| *n > 0)
    .map(|(n, one, many)| counted(n, one, many))
    .collect();
    format!(
        "{}: {}",
        counted(messages.len() as u64, "item", "items"),
        parts.join(", ")
    )
}

/// One exported item as the text and html exports show it.
struct Row<'a> {
    label: String,
    time: String,
    message: &'a ExportMessage,
    /// The message's text; for a read receipt, the message it reads up to by its number.
    text: String,
}

/// The export's items in order, numbered as `history` numbers them — if the export can
/// ([`ExportFile::numbers_are_historys`]); else by sequence number only.
fn export_rows(export: &ExportFile) -> Vec<Row<'_>> {
    let kinds: Vec<Option<ContentKind>> = export.messages.iter().map(export_kind).collect();
    let numbers = export.message_numbers();
    let seqs: Vec<u64> = export.messages.iter().map(|m| m.seq).collect();
    export
        .messages
        .iter()
        .zip(&kinds)
        .zip(&numbers)
        .map(|((m, kind), n)| {
            let text = match (kind, m.read_up_to_seq()) {
                (Some(ContentKind::Read), Some(up_to)) => receipt_text(&seqs, &numbers, up_to),
                _ => m.text.clone(),
            };
            Row {
                label: item_label(*n, m.seq),
                time: fmt_time(m.sent_at),
                message: m,
                text,
            }
        })
        .collect()
}

/// A read receipt in the reader's numbers: "read up to #3", the last message at or before
/// relay sequence number `up_to` (the messages `history` marks read for it); the sequence
/// number, plainly, when no numbered message is that early.
fn receipt_text(seqs: &[u64], numbers: &[Option<u64>], up_to: u64) -> String {
    match read_up_to(seqs, numbers, up_to) {
        Some(n) => format!("read up to #{n}"),
        None => format!("read up to seq {up_to}"),
    }
}

/// An item's label: a message's number as `history` shows it and the relay's sequence number
/// ("#2 (seq 4)"); only the sequence number for an item that is not a message ("(seq 5)").
fn item_label(number: Option<u64>, seq: u64) -> String {
    match number {
        Some(n) => format!("#{n} (seq {seq})"),
        None => format!("(seq {seq})"),
    }
}

/// `s` escaped for html text and attribute values.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
