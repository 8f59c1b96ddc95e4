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
use super::state::{ChatState, Key, Link, NoticeChange, Tone};
use crate::error::CliError;

/// The conversation list's widest, in columns (a quarter of a 120-column terminal).
const LIST_MAX: u16 = 30;
/// Its narrowest, unless the terminal is narrower than three times this.
const LIST_MIN: u16 = 20;
/// What ends a pinned banner cut to fit: the rest is above the messages (PgUp). No-break
/// spaces keep it on one line.
const CUT: &str = "…\u{a0}(PgUp:\u{a0}all\u{a0}of\u{a0}it)";
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

/// `text` wrapped to `width` columns in at most `max` lines, and whether it had to be cut.
/// Cut, it keeps the whole sentences that fit — or, when not even the first does, the words
/// that fit — and its last line ends with [`CUT`] (a bare "…" when the lines are too narrow
/// for it): a statement never reads as complete when it is not.
fn fit(text: &str, width: usize, max: usize) -> (Vec<String>, bool) {
    let all = wrap(text, width);
    if all.len() <= max {
        return (all, false);
    }
    if max == 0 {
        return (Vec::new(), true);
    }
    let mark = if columns(CUT) < width { CUT } else { "…" };
    let mut best = None;
    for (end, _) in text.match_indices(". ") {
        let lines = wrap(&format!("{} {mark}", &text[..=end]), width);
        if lines.len() > max {
            break;
        }
        best = Some(lines);
    }
    if let Some(lines) = best {
        return (lines, true);
    }
    let mut lines = all;
    lines.truncate(max);
    if let Some(last) = lines.last_mut() {
        while !last.is_empty() && columns(last) + 1 + columns(mark) > width {
            last.pop();
        }
        *last = format!("{} {mark}", last.trim_end())
            .trim_start()
            .to_owned();
    }
    (lines, true)
}

/// How many columns `text` takes.
fn columns(text: &str) -> usize {
    text.chars().map(|c| c.width().unwrap_or(0)).sum()
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
    let [list, pane] = Layout::horizontal([
        Constraint::Length(list_width(body.width)),
        Constraint::Min(10),
    ])
    .areas(body);
    draw_list(f, list, state);
    draw_pane(f, pane, state);
    draw_input(f, input, state);
    draw_status(f, status, state);
}

/// The conversation list's width on a terminal `width` columns wide: a quarter of it, between
/// [`LIST_MIN`] and [`LIST_MAX`], and never more than a third (the messages keep the rest).
pub(crate) fn list_width(width: u16) -> u16 {
    (width / 4).clamp(LIST_MIN, LIST_MAX).min(width / 3)
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
    let block = Block::bordered().title(" Conversations ");
    let width = usize::from(block.inner(area).width);
    let dim = Style::default().fg(Color::DarkGray);
    let mut lines = Vec::new();
    if state.conversations.is_empty() {
        lines.extend(indented("no conversations yet", "", width, dim));
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
        let head = format!(
            "{}{}. {}{unread}",
            if here { ">" } else { " " },
            i + 1,
            row.peer
        );
        lines.extend(indented(&head, "", width, style));
        let detail = if row.transferred {
            format!("⇢ transferred to {}", row.agent)
        } else {
            format!("{} · {}", row.status, short(&row.id))
        };
        lines.extend(indented(&detail, INDENT, width, dim));
        // Every line of the list wraps rather than being cut: a mark about a notice is read
        // whole.
        if row.unconfirmed {
            let yellow = Style::default().fg(Color::Yellow);
            lines.extend(indented(
                "? a notice not yet confirmed",
                INDENT,
                width,
                yellow,
            ));
        }
        match state.notices_changed.get(&row.id) {
            Some(NoticeChange::Confirmed) => {
                let green = Style::default().fg(Color::Green);
                lines.extend(indented("✓ a notice was confirmed", INDENT, width, green));
            }
            Some(NoticeChange::Changed) => {
                let red = Style::default().fg(Color::Red);
                lines.extend(indented("⚠ a notice changed: open it", INDENT, width, red));
            }
            None => {}
        }
    }
    f.render_widget(Paragraph::new(lines).block(block), area);
}

/// How far a row's second and later lines are indented.
const INDENT: &str = "   ";

/// `text` wrapped to fit `width` columns after [`INDENT`], its first line after `lead`, its
/// others after [`INDENT`], each line styled.
fn indented(text: &str, lead: &str, width: usize, style: Style) -> Vec<Line<'static>> {
    wrap(text, width.saturating_sub(INDENT.len()))
        .into_iter()
        .enumerate()
        .map(|(i, l)| Line::styled(format!("{}{l}", if i == 0 { lead } else { INDENT }), style))
        .collect()
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
    // Above the messages: the banner, then a changed key in red (it blocks sending), pinned in
    // at most half the pane. A changed key is told first: the banner keeps one line of it
    // (two when it has room), the key changes have the rest. Whatever does not fit is cut at a
    // sentence's end, marked so, and shown whole above the messages (PgUp).
    let banner = state
        .current
        .and_then(|c| state.banners.get(&c))
        .map(|b| format!("🔒 {b}"));
    let keys: Vec<String> = state
        .blocked()
        .into_iter()
        .map(|name| {
            let text = state.key_change_text.get(name).cloned().unwrap_or_default();
            format!("⚠ KEY CHANGED: {text}")
        })
        .collect();
    let budget = usize::from(inner.height) / 2;
    let keep = match &banner {
        Some(b) => wrap(b, width).len().min(2).min(budget),
        None => 0,
    };
    let mut left = budget - keep;
    let blue = Style::default().fg(Color::Blue);
    let red = Style::default()
        .fg(Color::White)
        .bg(Color::Red)
        .add_modifier(Modifier::BOLD);
    let mut cut: Vec<(&str, Style)> = Vec::new();
    let mut key_lines: Vec<Line<'_>> = Vec::new();
    for text in &keys {
        let (lines, was_cut) = fit(text, width, left);
        left -= lines.len();
        key_lines.extend(lines.into_iter().map(|l| Line::styled(l, red)));
        if was_cut {
            cut.push((text, red));
        }
    }
    let mut head: Vec<Line<'_>> = Vec::new();
    if let Some(b) = &banner {
        let (lines, was_cut) = fit(b, width, keep + left);
        head.extend(lines.into_iter().map(|l| Line::styled(l, blue)));
        if was_cut {
            cut.insert(0, (b, blue));
        }
    }
    head.extend(key_lines);
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
    // Scrolled up, the pane's last line says how many are below: the lines shown are one
    // fewer, and a page is that many, so that paging hides no line behind the mark.
    state.page = height.saturating_sub(1).max(1);
    let mut body: Vec<Line<'_>> = Vec::new();
    for (text, style) in cut {
        body.extend(
            wrap(text, width)
                .into_iter()
                .map(|l| Line::styled(l, style)),
        );
    }
    // Where the messages start: below the whole banners, which show once scrolled up to.
    let messages = body.len();
    for l in &state.pane {
        let style = tone_style(l.tone);
        for w in wrap(&l.shown(), width) {
            body.push(Line::styled(w, style));
        }
    }
    // Fewer messages than the pane holds under a whole banner: blank lines between them, so
    // that the pane at its end shows the messages, not the banner's end read on from its
    // middle, and paging up reads the banner whole.
    let shown = body.len() - messages;
    if messages > 0 && shown < height && body.len() > height {
        body.splice(
            messages..messages,
            std::iter::repeat_n(Line::default(), height - shown),
        );
    }
    let max_scroll = body.len().saturating_sub(height.saturating_sub(1).max(1));
    state.scroll = state.scroll.min(max_scroll);
    let more = state.scroll > 0;
    let end = body.len() - state.scroll;
    let start = end.saturating_sub(if more { state.page } else { height });
    let mut lines = head;
    lines.extend(body.drain(start..end));
    if more {
        lines.push(Line::styled(
            format!("↓ {} more line(s) below (PgDn)", state.scroll),
            Style::default().fg(Color::Yellow),
        ));
    }
    if let Some(t) = typing {
        lines.push(t);
    }
    f.render_widget(Paragraph::new(lines), inner);
}

fn draw_input(f: &mut Frame<'_>, area: Rect, state: &ChatState) {
    // The keys, the way that fits the box's top border whole.
    let title = [
        " Message — Enter sends · /help · /attach FILE · PgUp/PgDn scroll · Ctrl-C quits ",
        " Message — Enter sends · /help · PgUp/PgDn scroll · Ctrl-C quits ",
        " Enter sends · /help · Ctrl-C quits ",
    ]
    .into_iter()
    .find(|t| columns(t) + 2 <= usize::from(area.width))
    .unwrap_or(" Message ");
    let block = Block::bordered().title(title);
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
mod tests;
