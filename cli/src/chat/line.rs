//! The chat's line displays: [`TextSink`] prints what the chat shows as lines of text (a pipe,
//! `--plain`, a terminal without the full-screen UI), [`JsonSink`] as one JSON object a line
//! (`chat --json`).

use std::io::Write;

use sealdesk_client::{attachment::human_size, quota::quota_warning};

use super::event::{Connection, Shown, Sink, cancelled_text, percent, progress_text, short};
use crate::print::render_line;

/// Prints what the chat shows as lines of text.
pub struct TextSink<'a, W: Write> {
    out: &'a mut W,
    /// The running upload's last progress printed, in tenths: a line at most every 10%.
    tenths: u64,
}

impl<'a, W: Write> TextSink<'a, W> {
    /// Prints to `out`.
    pub fn new(out: &'a mut W) -> Self {
        Self { out, tenths: 0 }
    }
}

/// `[1a2b3c4d] ` for a line of another conversation than the current one.
fn prefix(conversation: &sealdesk_protocol::ids::ConversationId, here: bool) -> String {
    if here {
        String::new()
    } else {
        format!("[{}] ", short(conversation))
    }
}

impl<W: Write> Sink for TextSink<'_, W> {
    fn show(&mut self, shown: Shown) -> std::io::Result<()> {
        let out = &mut self.out;
        match shown {
            Shown::UploadProgress {
                name,
                sent_chunks,
                total_chunks,
                ..
            } => {
                let tenths = percent(sent_chunks, total_chunks) / 10;
                if tenths <= self.tenths {
                    return Ok(());
                }
                self.tenths = tenths;
                writeln!(out, "· {}", progress_text(&name, sent_chunks, total_chunks))
            }
            Shown::UploadCancelled {
                name,
                sent_chunks,
                total_chunks,
                ..
            } => writeln!(
                out,
                "· {}",
                cancelled_text(&name, sent_chunks, total_chunks)
            ),
            Shown::Welcome { name, role } => writeln!(
                out,
                "sealdesk chat as {name} ({role}). Type a message and press Enter; /help for commands."
            ),
            Shown::Conversations {
                rows,
                current,
                asked,
            } => {
                if !asked {
                    return Ok(());
                }
                if rows.is_empty() {
                    writeln!(out, "no conversations yet")?;
                }
                for (i, m) in rows.iter().enumerate() {
                    let mark = if Some(m.id) == current { "*" } else { " " };
                    let transferred = if m.transferred {
                        format!(" [transferred to {}]", m.agent)
                    } else {
                        String::new()
                    };
                    let unread = if m.unread > 0 {
                        format!(" ({} unread)", m.unread)
                    } else {
                        String::new()
                    };
                    let unconfirmed = if m.unconfirmed {
                        " [a notice NOT YET CONFIRMED]"
                    } else {
                        ""
                    };
                    writeln!(
                        out,
                        "{mark}{:>2}. {} {} with {}{transferred}{unread}{unconfirmed}",
                        i + 1,
                        m.id,
                        m.org,
                        m.peer
                    )?;
                }
                Ok(())
            }
            Shown::Selected {
                conversation,
                org,
                customer,
                agent,
                banner,
                recent,
            } => {
                writeln!(
                    out,
                    "── conversation {conversation} · {org} · customer {customer} · agent {agent} ──"
                )?;
                if let Some(b) = banner {
                    writeln!(out, "🔒 {b}")?;
                }
                for l in &recent {
                    writeln!(out, "{}", render_line(l))?;
                }
                Ok(())
            }
            Shown::History { lines, .. } => {
                for l in &lines {
                    writeln!(out, "{}", render_line(l))?;
                }
                Ok(())
            }
            Shown::Line {
                conversation,
                here,
                line,
            } => writeln!(out, "{}{}", prefix(&conversation, here), render_line(&line)),
            // Printed again, marked, so that the newer wording is the last one on screen.
            Shown::Updated {
                conversation,
                here,
                line,
            } => writeln!(
                out,
                "{}update: {}",
                prefix(&conversation, here),
                render_line(&line)
            ),
            Shown::Assigned {
                conversation,
                customer,
            } => writeln!(
                out,
                "{}new conversation {conversation} from {customer} assigned to you; /switch to it",
                prefix(&conversation, false)
            ),
            Shown::Receipt {
                member, read, seq, ..
            } => {
                if read {
                    writeln!(out, "  ✓✓ #{seq} read by {member}")
                } else {
                    writeln!(out, "  ✓ #{seq} delivered to {member}")
                }
            }
            // Only the current conversation's, and only "typing": a stop shows nothing in line
            // mode (the next line from that member replaces the hint).
            Shown::Typing {
                here: true,
                member,
                typing: true,
                ..
            } => writeln!(out, "  … {member} is typing"),
            Shown::Typing { .. } => Ok(()),
            Shown::Warning {
                conversation: Some(c),
                here,
                text,
            } => writeln!(out, "{}warning: {text}", prefix(&c, here)),
            Shown::Warning { text, .. } => writeln!(out, "warning: {text}"),
            Shown::QuotaWarning {
                conversation,
                here,
                quota,
            } => writeln!(
                out,
                "{}warning: {}",
                prefix(&conversation, here),
                quota_warning(&quota)
            ),
            Shown::KeyChange { text, .. } => writeln!(out, "error: {text}"),
            Shown::Connection(c) => writeln!(out, "{}", connection_text(&c)),
            Shown::Kept { offline: false, .. } => {
                writeln!(out, "  (kept: sent once the relay is back)")
            }
            // The error before it named the line.
            Shown::NotSent { .. } => Ok(()),
            Shown::Kept { offline: true, .. } => {
                writeln!(out, "  (offline: kept, sent once the relay is back)")
            }
            Shown::Upload {
                name,
                size,
                chunks,
                seq: None,
                ..
            } => {
                self.tenths = 0;
                writeln!(
                    out,
                    "· uploading {name} ({}, {chunks} chunk{})…",
                    human_size(size),
                    if chunks == 1 { "" } else { "s" }
                )
            }
            Shown::Upload {
                name,
                size,
                seq: Some(_),
                ..
            } => writeln!(out, "· sent {name} ({})", human_size(size)),
            Shown::Info(text) => writeln!(out, "{text}"),
            Shown::Error { message, .. } => writeln!(out, "error: {message}"),
            Shown::Bye => writeln!(out, "bye"),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// The connection state in words.
pub(crate) fn connection_text(c: &Connection) -> String {
    match c {
        Connection::Lost { why, retry_in, .. } => format!(
            "· connection lost ({why}); reconnecting in {:.1} s… lines you type are kept and sent \
             once it is back",
            retry_in.as_secs_f64()
        ),
        Connection::Reconnected => "· reconnected; catching up".to_owned(),
        Connection::GaveUp { unsent } => {
            format!("· the relay did not come back: {unsent} line(s) not sent")
        }
        Connection::LeftOffline { unsent } => {
            format!("· leaving offline: {unsent} line(s) not sent")
        }
    }
}

/// Prints what the chat shows as JSON lines (`chat --json`): every [`Shown`] as one object
/// ([`Shown::to_json`]), flushed line by line so a script reads each event as it happens.
pub struct JsonSink<'a, W: Write> {
    out: &'a mut W,
}

impl<'a, W: Write> JsonSink<'a, W> {
    /// Prints to `out`.
    pub fn new(out: &'a mut W) -> Self {
        Self { out }
    }
}

impl<W: Write> Sink for JsonSink<'_, W> {
    fn show(&mut self, shown: Shown) -> std::io::Result<()> {
        writeln!(self.out, "{}", shown.to_json())?;
        self.out.flush()
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn conv() -> sealdesk_protocol::ids::ConversationId {
        crate::chat::state::tests::conv(1)
    }

    /// An updated line (a release another trustee joined) is printed again, marked, in the
    /// text chat; `--json` gives it the same event as the line, with `"update": true`.
    #[test]
    fn an_updated_notice_is_printed_again_as_an_update() {
        let first = crate::chat::state::tests::notice(4, "1 of 2 trustees");
        let second = crate::chat::state::tests::notice(4, "released by trustees t1 and t2");
        let mut out = Vec::new();
        let mut sink = TextSink::new(&mut out);
        sink.show(Shown::Line {
            conversation: conv(),
            here: true,
            line: first.clone(),
        })
        .unwrap();
        sink.show(Shown::Updated {
            conversation: conv(),
            here: true,
            line: second.clone(),
        })
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(!lines[0].starts_with("update: "), "{text}");
        assert!(
            lines[1].starts_with("update: ") && lines[1].contains("released by trustees t1 and t2"),
            "{text}"
        );

        let mut out = Vec::new();
        let mut sink = JsonSink::new(&mut out);
        for shown in [
            Shown::Line {
                conversation: conv(),
                here: true,
                line: first,
            },
            Shown::Updated {
                conversation: conv(),
                here: true,
                line: second,
            },
        ] {
            sink.show(shown).unwrap();
        }
        let events: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events[0]["event"], "notice");
        assert_eq!(events[0].get("update"), None, "{}", events[0]);
        assert_eq!(events[1]["event"], "notice");
        assert_eq!(events[1]["update"], true, "{}", events[1]);
        assert_eq!(events[1]["entry"]["seq"], 4, "{}", events[1]);
        assert!(
            events[1]["text"]
                .as_str()
                .unwrap()
                .contains("released by trustees t1 and t2"),
            "{}",
            events[1]
        );
    }

    /// Issue 20: `--plain` prints another conversation's notice confirmed, marked with that
    /// conversation, and its `/list` row says while a notice waits for confirmation.
    #[test]
    fn another_conversations_update_and_the_unconfirmed_mark_print() {
        let other = crate::chat::state::tests::conv(2);
        let row = |unconfirmed| crate::chat::event::ConvRow {
            id: other,
            org: "acme".to_owned(),
            peer: "alice".to_owned(),
            customer: "carol".to_owned(),
            agent: "alice".to_owned(),
            unread: 0,
            status: "open".to_owned(),
            transferred: false,
            unconfirmed,
        };
        let mut out = Vec::new();
        let mut sink = TextSink::new(&mut out);
        for unconfirmed in [true, false] {
            sink.show(Shown::Conversations {
                rows: vec![row(unconfirmed)],
                current: Some(conv()),
                asked: true,
            })
            .unwrap();
        }
        sink.show(Shown::Updated {
            conversation: other,
            here: false,
            line: crate::chat::state::tests::judged_notice(4, "acme opened epoch 0", true),
        })
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with("[a notice NOT YET CONFIRMED]"), "{text}");
        assert!(!lines[1].contains("NOT YET CONFIRMED"), "{text}");
        assert!(
            lines[2].starts_with(&format!("[{}] update: ", short(&other)))
                && lines[2].contains("acme opened epoch 0"),
            "{text}"
        );
    }

    /// Line mode prints an upload's progress at most every 10%, not per chunk.
    #[test]
    fn progress_lines_come_at_most_every_ten_percent() {
        let mut out = Vec::new();
        let mut sink = TextSink::new(&mut out);
        sink.show(Shown::Upload {
            conversation: conv(),
            name: "big.bin".to_owned(),
            size: 40 * 32 * 1024,
            chunks: 40,
            seq: None,
        })
        .unwrap();
        for n in 1..=40 {
            sink.show(Shown::UploadProgress {
                conversation: conv(),
                name: "big.bin".to_owned(),
                sent_chunks: n,
                total_chunks: 40,
                bytes: n * 32 * 1024,
            })
            .unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        let progress: Vec<&str> = text.lines().filter(|l| l.contains("chunks (")).collect();
        assert_eq!(progress.len(), 10, "{text}");
        assert_eq!(progress[0], "· uploading big.bin 4/40 chunks (10%)");
        assert_eq!(progress[9], "· uploading big.bin 40/40 chunks (100%)");
    }
}
