//! The full-screen chat (`sealdesk chat` on a terminal): a conversation list, a message pane
//! and an input line, drawn with `ratatui` on `crossterm`. Incoming messages redraw the pane and
//! never touch the line being typed.
//!
//! The state lives in [`super::state`]; here are the drawing ([`draw`], tested on ratatui's
//! `TestBackend`), the keys read from the terminal, and the glue to the engine: the input line
//! is the engine's `Input`, the state its [`Sink`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::{DefaultTerminal, Frame};
use sealdesk_client::client::Client;
use sealdesk_protocol::ids::ConversationId;
use tokio::sync::mpsc;
use unicode_width::UnicodeWidthChar as _;

use super::Result;
use super::engine::{Input, drive};
use super::event::{Shown, Sink, short};
use super::state::{ChatState, Key, Link, Tone};
use crate::error::CliError;

/// The conversation list's width, in columns.
const LIST_WIDTH: u16 = 30;
/// How often the key reader checks whether the chat ended.
const KEY_POLL: Duration = Duration::from_millis(200);

/// Runs the chat full-screen on the terminal until `/quit` or Ctrl-C; the terminal is restored
/// whatever happens.
///
/// # Errors
/// As [`super::run`]; [`CliError::Io`] when the terminal cannot be set up.
pub async fn run(client: &mut Client, conversation: Option<ConversationId>) -> Result<()> {
    let terminal = ratatui::try_init().map_err(|e| CliError::Io {
        op: "set up the terminal",
        source: e,
    })?;
    let ui = Arc::new(Mutex::new(Ui {
        state: ChatState::default(),
        terminal,
    }));
    let (tx, rx) = mpsc::unbounded_channel();
    let reader = std::thread::spawn(move || read_keys(&tx));
    let mut input = KeyInput {
        keys: rx,
        ui: Arc::clone(&ui),
    };
    let mut sink = UiSink {
        ui: Arc::clone(&ui),
    };
    let result = drive(
        client,
        &mut input,
        &mut sink,
        conversation,
        &mut super::interrupt::Interrupts::none(),
    )
    .await;
    // Closing the channel stops the reader at its next poll.
    drop(input);
    let _ = reader.join();
    let restored = ratatui::try_restore();
    result?;
    restored.map_err(|e| CliError::Io {
        op: "restore the terminal",
        source: e,
    })
}

/// Reads the terminal's events and hands them over until the chat stops listening.
fn read_keys(tx: &mpsc::UnboundedSender<Event>) {
    while !tx.is_closed() {
        match event::poll(KEY_POLL) {
            Ok(true) => match event::read() {
                Ok(e) => {
                    if tx.send(e).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            Ok(false) => {}
            Err(_) => return,
        }
    }
}

/// The state and the terminal it is drawn on.
struct Ui {
    state: ChatState,
    terminal: DefaultTerminal,
}

impl Ui {
    fn redraw(&mut self) -> std::io::Result<()> {
        let state = &mut self.state;
        self.terminal.draw(|f| draw(f, state)).map(|_| ())
    }
}

fn lock(ui: &Mutex<Ui>) -> std::sync::MutexGuard<'_, Ui> {
    ui.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The input line as the engine's input: keys edit it; Enter hands the line over.
struct KeyInput {
    keys: mpsc::UnboundedReceiver<Event>,
    ui: Arc<Mutex<Ui>>,
}

impl Input for KeyInput {
    async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        loop {
            let Some(e) = self.keys.recv().await else {
                return Ok(None);
            };
            let mut ui = lock(&self.ui);
            let line = match e {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    key_of(k).and_then(|k| ui.state.key(k))
                }
                Event::Paste(text) => {
                    for c in text.chars().filter(|c| !c.is_control()) {
                        ui.state.key(Key::Char(c));
                    }
                    None
                }
                _ => None,
            };
            ui.redraw()?;
            if line.is_some() {
                return Ok(line);
            }
        }
    }
}

/// The chat's key for a terminal key.
fn key_of(k: KeyEvent) -> Option<Key> {
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    Some(match k.code {
        KeyCode::Char('c' | 'd') if ctrl => Key::Quit,
        KeyCode::Char(c) if !ctrl => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Delete => Key::Delete,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::PageUp | KeyCode::Up => Key::PageUp,
        KeyCode::PageDown | KeyCode::Down => Key::PageDown,
        _ => return None,
    })
}

/// What the chat shows goes into the state; the screen is redrawn before the chat waits.
struct UiSink {
    ui: Arc<Mutex<Ui>>,
}

impl Sink for UiSink {
    fn show(&mut self, shown: Shown) -> std::io::Result<()> {
        lock(&self.ui).state.apply(shown);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        lock(&self.ui).redraw()
    }
}

/// Splits `text` into lines at most `width` columns wide, at the last space that fits (by
/// character when a word is longer than a line).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width {
            match line.rfind(' ') {
                // Break after the last space: the word goes on the next line.
                Some(at) if c != ' ' && at + 1 < line.len() => {
                    let rest = line.split_off(at + 1);
                    lines.push(std::mem::take(&mut line));
                    used = rest.chars().map(|c| c.width().unwrap_or(0)).sum();
                    line = rest;
                }
                _ => {
                    lines.push(std::mem::take(&mut line));
                    used = 0;
                }
            }
            if c == ' ' && line.is_empty() {
                continue;
            }
        }
        line.push(c);
        used += w;
    }
    lines.push(line);
    lines
}

fn tone_style(tone: Tone) -> Style {
    match tone {
        Tone::Theirs => Style::default(),
        Tone::Mine => Style::default().fg(Color::Cyan),
        Tone::Event => Style::default().fg(Color::DarkGray),
        Tone::Info => Style::default().fg(Color::Yellow),
        Tone::Alarm => Style::default().fg(Color::Red),
    }
}

/// Draws the whole screen: the top bar, the conversation list, the message pane (banner,
/// key-change banner, messages, who is typing), the input line and the status line.
pub fn draw(f: &mut Frame<'_>, state: &mut ChatState) {
    let [top, body, input, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    draw_top(f, top, state);
    let [list, pane] =
        Layout::horizontal([Constraint::Length(LIST_WIDTH), Constraint::Min(10)]).areas(body);
    draw_list(f, list, state);
    draw_pane(f, pane, state);
    draw_input(f, input, state);
    draw_status(f, status, state);
}

fn draw_top(f: &mut Frame<'_>, area: Rect, state: &ChatState) {
    let link = match &state.link {
        Link::Online => Span::styled("● connected", Style::default().fg(Color::Green)),
        Link::Reconnecting(_) => Span::styled(
            "○ connection lost — reconnecting…",
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
    };
    let line = Line::from(vec![
        Span::styled(" sealdesk", Style::default().add_modifier(Modifier::BOLD)),
        Span::raw(format!(" · {} ({}) · ", state.me, state.role)),
        link,
    ]);
    f.render_widget(
        Paragraph::new(line).style(Style::default().bg(Color::Black)),
        area,
    );
}

fn draw_list(f: &mut Frame<'_>, area: Rect, state: &ChatState) {
    let mut lines = Vec::new();
    if state.conversations.is_empty() {
        lines.push(Line::styled(
            "no conversations yet",
            Style::default().fg(Color::DarkGray),
        ));
    }
    for (i, row) in state.conversations.iter().enumerate() {
        let here = Some(row.id) == state.current;
        let style = if here {
            Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED)
        } else {
            Style::default()
        };
        let unread = if row.unread > 0 {
            format!(" ({})", row.unread)
        } else {
            String::new()
        };
        lines.push(Line::styled(
            format!(
                "{}{}. {}{unread}",
                if here { ">" } else { " " },
                i + 1,
                row.peer
            ),
            style,
        ));
        let mut detail = format!("   {} · {}", row.status, short(&row.id));
        if row.transferred {
            detail = format!("   ⇢ transferred to {}", row.agent);
        }
        lines.push(Line::styled(detail, Style::default().fg(Color::DarkGray)));
    }
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Conversations ")),
        area,
    );
}

fn draw_pane(f: &mut Frame<'_>, area: Rect, state: &mut ChatState) {
    let title = state
        .header
        .clone()
        .unwrap_or_else(|| "no conversation selected: /list, /switch N".to_owned());
    let block = Block::bordered().title(format!(" {title} "));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let width = usize::from(inner.width);
    // Above the messages: the banner, then a changed key in red (it blocks sending).
    let mut head: Vec<Line<'_>> = Vec::new();
    if let Some(b) = state.current.and_then(|c| state.banners.get(&c)) {
        for l in wrap(&format!("🔒 {b}"), width) {
            head.push(Line::styled(l, Style::default().fg(Color::Blue)));
        }
    }
    for name in state.blocked() {
        let text = state.key_change_text.get(name).cloned().unwrap_or_default();
        for l in wrap(&format!("⚠ KEY CHANGED: {text}"), width) {
            head.push(Line::styled(
                l,
                Style::default()
                    .fg(Color::White)
                    .bg(Color::Red)
                    .add_modifier(Modifier::BOLD),
            ));
        }
    }
    // The banner takes at most half the pane.
    head.truncate(usize::from(inner.height) / 2);
    let typing = (!state.typing.is_empty()).then(|| {
        let names: Vec<&str> = state.typing.iter().map(String::as_str).collect();
        Line::styled(
            format!(
                "… {} {} typing",
                names.join(", "),
                if names.len() == 1 { "is" } else { "are" }
            ),
            Style::default()
                .fg(Color::DarkGray)
                .add_modifier(Modifier::ITALIC),
        )
    });
    let height = usize::from(inner.height)
        .saturating_sub(head.len())
        .saturating_sub(usize::from(typing.is_some()));
    state.page = height.max(1);
    let mut body: Vec<Line<'_>> = Vec::new();
    for l in &state.pane {
        let style = tone_style(l.tone);
        for w in wrap(&l.shown(), width) {
            body.push(Line::styled(w, style));
        }
    }
    let max_scroll = body.len().saturating_sub(height);
    state.scroll = state.scroll.min(max_scroll);
    let end = body.len() - state.scroll;
    let start = end.saturating_sub(height);
    let mut lines = head;
    let more = state.scroll > 0;
    lines.extend(body.drain(start..end));
    if more && let Some(last) = lines.last_mut() {
        *last = Line::styled(
            format!("↓ {} more line(s) below (PgDn)", state.scroll),
            Style::default().fg(Color::Yellow),
        );
    }
    if let Some(t) = typing {
        lines.push(t);
    }
    f.render_widget(Paragraph::new(lines), inner);
}

fn draw_input(f: &mut Frame<'_>, area: Rect, state: &ChatState) {
    let block = Block::bordered()
        .title(" Message — Enter sends · /help · /attach FILE · PgUp/PgDn scroll · Ctrl-C quits ");
    let inner = block.inner(area);
    let width = usize::from(inner.width).max(1);
    // Keep the cursor in view: show the end of a line longer than the box.
    let before: String = state.input.chars().take(state.cursor).collect();
    let skip = before.chars().count().saturating_sub(width - 1);
    let shown: String = state.input.chars().skip(skip).take(width).collect();
    f.render_widget(Paragraph::new(shown).block(block), area);
    let x = u16::try_from(state.cursor - skip).unwrap_or(0);
    f.set_cursor_position((inner.x.saturating_add(x), inner.y));
}

fn draw_status(f: &mut Frame<'_>, area: Rect, state: &ChatState) {
    let line = if let Some(u) = &state.upload {
        Line::styled(format!(" {u}"), Style::default().fg(Color::Yellow))
    } else if let Link::Reconnecting(why) = &state.link {
        Line::styled(
            format!(" connection lost ({why}); lines you type are kept and sent once it is back"),
            Style::default().fg(Color::Red),
        )
    } else if let Some(e) = &state.error {
        Line::styled(format!(" error: {e}"), Style::default().fg(Color::Red))
    } else {
        Line::styled(
            " end-to-end encrypted · every message verified",
            Style::default().fg(Color::DarkGray),
        )
    };
    f.render_widget(Paragraph::new(line), area);
}

#[cfg(test)]
mod tests {
    use ratatui::{Terminal, backend::TestBackend};

    use super::{draw, wrap};
    use crate::chat::event::{ConvRow, Shown};
    use crate::chat::state::tests::{conv, message};
    use crate::chat::state::{ChatState, Key};

    fn screen(state: &mut ChatState) -> String {
        let mut t = Terminal::new(TestBackend::new(100, 24)).unwrap();
        t.draw(|f| draw(f, state)).unwrap();
        let buf = t.backend().buffer().clone();
        let mut s = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                s.push_str(buf[(x, y)].symbol());
            }
            s.push('\n');
        }
        s
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
}
