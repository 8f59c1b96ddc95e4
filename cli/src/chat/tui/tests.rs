//! The window drawn on ratatui's `TestBackend` ([`super::draw`]).

use ratatui::{Terminal, backend::TestBackend};

use ratatui::buffer::Buffer;

use super::{CUT, draw, fit, list_width, wrap};
use crate::chat::event::{ConvRow, Shown};
use crate::chat::state::tests::{conv, judged_notice, message};
use crate::chat::state::{ChatState, Key};

fn screen(state: &mut ChatState) -> String {
    text_of(&drawn(state, 100, 24))
}

/// The window drawn on a `width` × `height` terminal.
fn drawn(state: &mut ChatState, width: u16, height: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(width, height)).unwrap();
    t.draw(|f| draw(f, state)).unwrap();
    t.backend().buffer().clone()
}

/// The buffer's text, a line per row.
fn text_of(buf: &Buffer) -> String {
    let mut s = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            s.push_str(buf[(x, y)].symbol());
        }
        s.push('\n');
    }
    s
}

/// The text of row `y` from column `from` to `to` (excluded).
fn row(buf: &Buffer, y: u16, from: u16, to: u16) -> String {
    (from..to).map(|x| buf[(x, y)].symbol()).collect()
}

/// Words joined by one space: wrapped text compares with the text it wraps.
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn chat() -> ChatState {
    let mut s = ChatState::default();
    s.apply(Shown::Welcome {
        name: "alice".to_owned(),
        role: "agent".to_owned(),
    });
    s.apply(Shown::Conversations {
        rows: vec![
            ConvRow {
                id: conv(1),
                org: "acme".to_owned(),
                peer: "carol".to_owned(),
                customer: "carol".to_owned(),
                agent: "alice".to_owned(),
                unread: 0,
                status: "waiting".to_owned(),
                transferred: false,
                unconfirmed: false,
            },
            ConvRow {
                id: conv(2),
                org: "acme".to_owned(),
                peer: "dan".to_owned(),
                customer: "dan".to_owned(),
                agent: "bob".to_owned(),
                unread: 3,
                status: "open".to_owned(),
                transferred: true,
                unconfirmed: false,
            },
        ],
        current: Some(conv(1)),
        asked: true,
    });
    s.apply(Shown::Selected {
        conversation: conv(1),
        org: "acme".to_owned(),
        customer: "carol".to_owned(),
        agent: "alice".to_owned(),
        banner: Some("This conversation is end-to-end encrypted".to_owned()),
        recent: vec![message(1, "carol", false, "my order is late")],
    });
    s
}

/// The list (status, unread count, a transferred conversation marked), the banner and a
/// message show.
#[test]
fn a_message_the_list_and_the_banner_show() {
    let mut s = chat();
    let text = screen(&mut s);
    assert!(text.contains("carol: my order is late"), "{text}");
    assert!(text.contains("1. carol"), "{text}");
    assert!(text.contains("waiting"), "{text}");
    assert!(text.contains("2. dan (3)"), "{text}");
    assert!(text.contains("transferred to bob"), "{text}");
    assert!(
        text.contains("This conversation is end-to-end encrypted"),
        "{text}"
    );
    assert!(text.contains("● connected"), "{text}");
}

/// A message that arrives while the user is typing shows in the pane; the input line keeps
/// exactly what was typed, and the cursor stays at its end.
#[test]
fn an_incoming_message_leaves_the_input_line_intact() {
    let mut s = chat();
    for c in "I will check the tracking".chars() {
        s.key(Key::Char(c));
    }
    let before = screen(&mut s);
    s.apply(Shown::Line {
        conversation: conv(1),
        here: true,
        line: message(2, "carol", false, "are you there?"),
    });
    let after = screen(&mut s);
    assert!(after.contains("carol: are you there?"), "{after}");
    let input_line = |t: &str| {
        t.lines()
            .find(|l| l.contains("I will check"))
            .map(str::to_owned)
    };
    assert_eq!(input_line(&before), input_line(&after));
    assert!(input_line(&after).is_some(), "{after}");
    assert_eq!(s.input, "I will check the tracking");
}

/// A changed key shows as a banner above the messages.
#[test]
fn the_key_change_banner_shows() {
    let mut s = chat();
    assert!(!screen(&mut s).contains("KEY CHANGED"));
    s.apply(Shown::KeyChange {
        conversation: Some(conv(1)),
        name: "carol".to_owned(),
        text: "the identity key of carol has changed".to_owned(),
    });
    let text = screen(&mut s);
    assert!(
        text.contains("KEY CHANGED: the identity key of carol has changed"),
        "{text}"
    );
}

/// Typing and a lost connection are visible.
#[test]
fn typing_and_the_connection_state_show() {
    let mut s = chat();
    s.apply(Shown::Typing {
        conversation: conv(1),
        here: true,
        member: "carol".to_owned(),
        typing: true,
    });
    s.apply(Shown::Connection(crate::chat::event::Connection::Lost {
        why: "relay closed".to_owned(),
        retry_in: std::time::Duration::from_millis(100),
        attempts: 0,
    }));
    let text = screen(&mut s);
    assert!(text.contains("… carol is typing"), "{text}");
    assert!(text.contains("reconnecting"), "{text}");
}

/// A line typed while offline shows with its text, marked pending, in the window.
#[test]
fn a_line_kept_offline_shows_its_text_marked_pending() {
    let mut s = chat();
    s.apply(Shown::Connection(crate::chat::event::Connection::Lost {
        why: "relay closed".to_owned(),
        retry_in: std::time::Duration::from_millis(100),
        attempts: 0,
    }));
    s.apply(Shown::Kept {
        conversation: conv(1),
        offline: true,
        text: "back in a minute".to_owned(),
    });
    let text = screen(&mut s);
    assert!(
        text.lines().any(|l| l.contains("alice: back in a minute")
            && l.contains("pending: sent once the relay is back")),
        "{text}"
    );
}

/// Scrolling up shows older lines and says more are below.
#[test]
fn the_pane_scrolls() {
    let mut s = chat();
    for i in 2..60 {
        s.apply(Shown::Line {
            conversation: conv(1),
            here: true,
            line: message(i, "carol", false, &format!("line {i}")),
        });
    }
    let bottom = screen(&mut s);
    assert!(bottom.contains("line 59"));
    s.key(Key::PageUp);
    let up = screen(&mut s);
    assert!(!up.contains("line 59"), "{up}");
    assert!(up.contains("more line(s) below"), "{up}");
}

/// While a file uploads, the status line shows its chunks; the input line still takes keys
/// and the pane still shows incoming messages; Ctrl-C cancels the upload (not the chat),
/// and the cancellation shows; the next Ctrl-C leaves.
#[test]
fn an_upload_shows_its_progress_and_the_window_still_answers() {
    let mut s = chat();
    s.apply(Shown::Upload {
        conversation: conv(1),
        name: "shot.png".to_owned(),
        size: 380_000,
        chunks: 12,
        seq: None,
    });
    s.apply(Shown::UploadProgress {
        conversation: conv(1),
        name: "shot.png".to_owned(),
        sent_chunks: 3,
        total_chunks: 12,
        bytes: 3 * 32 * 1024,
    });
    for c in "one moment".chars() {
        s.key(Key::Char(c));
    }
    s.apply(Shown::Line {
        conversation: conv(1),
        here: true,
        line: message(2, "carol", false, "take your time"),
    });
    let text = screen(&mut s);
    assert!(
        text.contains("uploading shot.png 3/12 chunks (25%)"),
        "{text}"
    );
    assert!(text.contains("carol: take your time"), "{text}");
    assert!(text.contains("one moment"), "{text}");
    assert_eq!(s.key(Key::Quit), Some("/cancel".to_owned()));
    s.apply(Shown::UploadCancelled {
        conversation: conv(1),
        name: "shot.png".to_owned(),
        sent_chunks: 3,
        total_chunks: 12,
    });
    let text = screen(&mut s);
    assert!(!text.contains("3/12 chunks (25%)"), "{text}");
    assert!(text.contains("cancelled at 3/12 chunks"), "{text}");
    assert_eq!(s.key(Key::Quit), Some("/quit".to_owned()));
}

#[test]
fn wrapping_counts_columns() {
    assert_eq!(wrap("abcdef", 4), ["abcd", "ef"]);
    assert_eq!(wrap("", 4), [""]);
    assert_eq!(wrap("ab cd ef", 5), ["ab cd", "ef"]);
    assert_eq!(wrap("ab cde", 5), ["ab ", "cde"]);
    assert_eq!(wrap("abc defgh", 4), ["abc ", "defg", "h"]);
    assert_eq!(wrap("abcd efgh", 4), ["abcd", "efgh"]);
}

/// A customer's banner as `Policy::summary` words it: long enough to need cutting on a small
/// terminal.
const POLICY: &str = "Your chat with acme is end-to-end encrypted: the relay cannot read it. \
    acme's owner account (acme-master) can open it only with your signed consent, or with a \
    dispute ticket approved by 1 of these 1 independent arbiters: arbiter, and only if 2 of the \
    3 independent key trustees (trustee-1, trustee-2, trustee-3) agree. You will be told of \
    every opening, and each one is recorded in a public audit log your app checks. If your chat \
    is transferred, the new agent cannot read the earlier messages. Messages are deleted 30 \
    days after the conversation ends. (Policy version 1.)";

/// [`chat`] with the customer's banner and enough messages to fill any pane.
fn busy_customer_chat() -> ChatState {
    customer_chat(1..40)
}

/// [`chat`] with the customer's banner and messages `line N` for each N of `lines`.
fn customer_chat(lines: std::ops::Range<u64>) -> ChatState {
    let mut s = chat();
    s.apply(Shown::Selected {
        conversation: conv(1),
        org: "acme".to_owned(),
        customer: "carol".to_owned(),
        agent: "alice".to_owned(),
        banner: Some(POLICY.to_owned()),
        recent: lines
            .map(|i| message(i, "alice", false, &format!("line {i}")))
            .collect(),
    });
    s
}

/// The message pane's rows, from its top.
fn pane_rows(buf: &Buffer, list: u16) -> Vec<String> {
    let (right, bottom) = (buf.area.width - 1, buf.area.height - 5);
    (2..bottom).map(|y| row(buf, y, list + 1, right)).collect()
}

/// What the pane shows below its pinned lines, page after page from the top to the end.
fn paged(s: &mut ChatState, width: u16, height: u16) -> String {
    let list = list_width(width);
    for _ in 0..100 {
        s.key(Key::PageUp);
    }
    let mut pages = Vec::new();
    loop {
        let rows = pane_rows(&drawn(s, width, height), list);
        // Below the pinned lines (the last ends with the cut mark), above the "more" mark.
        let from = rows
            .iter()
            .position(|r| r.contains("(PgUp:"))
            .map_or(0, |i| i + 1);
        let to = rows.iter().position(|r| r.contains("more line(s) below"));
        pages.extend_from_slice(&rows[from..to.unwrap_or(rows.len())]);
        if s.scroll == 0 {
            return words(&pages.join(" "));
        }
        s.key(Key::PageDown);
    }
}

/// The pinned lines at the top of the message pane (those drawn in the banner's blue), joined.
fn pinned(buf: &Buffer, list: u16) -> String {
    let (right, bottom) = (buf.area.width - 1, buf.area.height - 5);
    let lines: Vec<String> = (2..bottom)
        .take_while(|&y| buf[(list + 1, y)].fg == ratatui::style::Color::Blue)
        .map(|y| row(buf, y, list + 1, right))
        .collect();
    words(&lines.join(" "))
}

/// Issue 22: at 80×24 the banner was cut mid-sentence with no sign of it, and the list kept
/// 30 columns. At every size the pinned banner is the whole statement, or whole sentences of
/// it ending with the cut mark — never a cut statement that reads as complete — and the list
/// takes a quarter of the width, between 20 and 30 columns.
#[test]
fn the_banner_is_whole_or_marked_cut_and_the_list_fits_the_terminal() {
    let full = words(&format!("🔒 {POLICY}"));
    for (width, height, list, whole) in [
        (80, 24, 20, false),
        (100, 30, 25, true),
        (120, 32, 30, true),
        (60, 20, 20, false),
    ] {
        let mut s = busy_customer_chat();
        let buf = drawn(&mut s, width, height);
        let screen = text_of(&buf);
        assert_eq!(list_width(width), list, "{width}×{height}");
        // The list's right border, then the pane's left one.
        assert_eq!(
            buf[(list - 1, 1)].symbol(),
            "┐",
            "{width}×{height}\n{screen}"
        );
        assert_eq!(buf[(list, 1)].symbol(), "┌", "{width}×{height}\n{screen}");
        // The input box's title is whole too.
        assert!(
            screen.contains("Ctrl-C quits "),
            "{width}×{height}\n{screen}"
        );
        let shown = pinned(&buf, list);
        if whole {
            assert_eq!(shown, full, "{width}×{height}\n{screen}");
            continue;
        }
        let kept = shown
            .strip_suffix(&words(CUT))
            .unwrap_or_else(|| panic!("{width}×{height}: cut without the mark\n{screen}"));
        let kept = kept.trim_end();
        assert!(
            kept.ends_with('.') && full.starts_with(kept),
            "{width}×{height}: not whole sentences: {kept:?}\n{screen}"
        );
        assert!(
            kept.contains("end-to-end encrypted: the relay cannot read it."),
            "{width}×{height}\n{screen}"
        );
        // The whole statement is above the messages: paging up to it and down again shows
        // every line of it (none hidden behind the "more below" mark).
        let read = paged(&mut s, width, height);
        assert!(read.contains(&full), "{width}×{height}\n{read}");
    }
}

/// Under a cut banner, a short conversation shows its messages (at the bottom), not the end
/// of the whole banner read on from its middle (seen at 80×24 through tmux); paging up and
/// down again reads all of it.
#[test]
fn under_a_cut_banner_the_pane_starts_with_the_messages() {
    let mut s = customer_chat(1..3);
    let rows = pane_rows(&drawn(&mut s, 80, 24), 20);
    let below = rows.iter().position(|r| r.contains("(PgUp:")).unwrap() + 1;
    let under: Vec<&String> = rows[below..]
        .iter()
        .filter(|r| !r.trim().is_empty())
        .collect();
    assert!(under[0].contains("line 1"), "{rows:#?}");
    let pane = words(&rows.join(" "));
    assert!(!pane.contains("Messages are deleted"), "{pane}");
    let read = paged(&mut s, 80, 24);
    assert!(read.contains(&words(&format!("🔒 {POLICY}"))), "{read}");
}

/// A changed key is told before the banner: on a small pane, a long banner leaves it room,
/// and the banner keeps its first line.
#[test]
fn a_changed_key_is_shown_whole_beside_a_long_banner() {
    let mut s = busy_customer_chat();
    let warning = "alice's key changed: compare the new fingerprint 12345 67890 with alice \
                   before you trust it; sending to alice is blocked until then";
    s.apply(Shown::KeyChange {
        conversation: Some(conv(1)),
        name: "alice".to_owned(),
        text: warning.to_owned(),
    });
    let screen = words(&pane_rows(&drawn(&mut s, 80, 24), 20).join(" "));
    assert!(
        screen.contains(&words(&format!("⚠ KEY CHANGED: {warning}"))),
        "{screen}"
    );
    assert!(screen.contains("🔒 Your chat with acme"), "{screen}");
}

#[test]
fn fitting_cuts_at_a_sentence_or_a_word_and_says_so() {
    assert_eq!(
        fit("One. Two.", 40, 1),
        (vec!["One. Two.".to_owned()], false)
    );
    // Whole sentences first.
    let (lines, cut) = fit("One two. Three four five six seven.", 30, 1);
    assert!(cut);
    assert_eq!(lines, [format!("One two. {CUT}")]);
    // Not even one sentence fits: the words that do, and the mark.
    let (lines, cut) = fit("one two three four five six seven eight nine ten", 30, 1);
    assert!(cut);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].ends_with(CUT) && lines[0].starts_with("one"),
        "{lines:?}"
    );
    assert!(super::columns(&lines[0]) <= 30, "{lines:?}");
    // Too narrow for the whole mark: a bare ellipsis.
    let (lines, _) = fit("abcdefgh ijklmnop qrstuvw", 10, 1);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].ends_with('…') && !lines[0].contains("PgUp"),
        "{lines:?}"
    );
    assert!(super::columns(&lines[0]) <= 10, "{lines:?}");
    assert_eq!(fit("anything", 10, 0), (Vec::new(), true));
}

/// Issue 20: the list marks a conversation holding a notice not yet confirmed, and one whose
/// notice was confirmed since while another was on screen; wrapped, never cut, at 80 columns.
#[test]
fn the_list_marks_unconfirmed_and_confirmed_notices() {
    let mut s = chat();
    let mut rows = s.conversations.clone();
    rows[1].unconfirmed = true;
    s.apply(Shown::Conversations {
        rows: rows.clone(),
        current: Some(conv(1)),
        asked: false,
    });
    let list = |s: &mut ChatState| {
        let buf = drawn(s, 80, 24);
        let lines: Vec<String> = (2..19).map(|y| row(&buf, y, 1, 19)).collect();
        words(&lines.join(" "))
    };
    let shown = list(&mut s);
    assert!(shown.contains("? a notice not yet confirmed"), "{shown}");
    assert!(
        !shown.contains("confirmed ✓") && !shown.contains('✓'),
        "{shown}"
    );
    rows[1].unconfirmed = false;
    s.apply(Shown::Conversations {
        rows,
        current: Some(conv(1)),
        asked: false,
    });
    s.apply(Shown::Updated {
        conversation: conv(2),
        here: false,
        line: judged_notice(4, "acme opened epoch 0", true),
    });
    let shown = list(&mut s);
    assert!(!shown.contains("not yet confirmed"), "{shown}");
    assert!(shown.contains("✓ a notice was confirmed"), "{shown}");
}
