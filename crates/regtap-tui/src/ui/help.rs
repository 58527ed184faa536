//! The `?` overlay: every key, in one place.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph};

/// Every key the TUI knows, grouped: (keys, what they do).
pub const KEYS: &[(&str, &[(&str, &str)])] = &[
    (
        "Everywhere",
        &[
            ("1 2 3", "the three views"),
            ("Tab S-Tab", "next / previous pane"),
            ("↑ ↓ j k", "move, scroll detail"),
            ("PgUp PgDn ^u ^d", "page up / down"),
            ("g G Home End", "first / last"),
            ("← → h l", "previous / next pane"),
            ("Enter", "drill down"),
            ("Esc", "back"),
            ("mouse wheel", "scroll the pane"),
            ("s", "show credentials"),
            ("?", "this help"),
            ("q Ctrl-c", "quit"),
        ],
    ),
    (
        "Sequence view",
        &[
            ("← → n p", "previous / next step"),
            ("space", "play / pause"),
            ("+ -", "faster / slower"),
        ],
    ),
    (
        "Flows view",
        &[
            ("/", "search (Enter, Esc)"),
            ("f F", "kind filter / none"),
            ("c C", "client filter / none"),
            ("r R", "repository / none"),
            ("x", "failed only / all"),
            ("Enter (detail)", "go to its step"),
        ],
    ),
];

/// The lines of each group of keys.
fn groups() -> Vec<Vec<Line<'static>>> {
    KEYS.iter()
        .map(|(group, keys)| {
            let mut lines = vec![Line::styled(*group, Style::new().bold().fg(Color::Cyan))];
            for (key, meaning) in *keys {
                lines.push(Line::from(vec![
                    Span::styled(format!("  {key:<16}"), Style::new().bold()),
                    Span::raw(*meaning),
                ]));
            }
            lines
        })
        .collect()
}

/// One column when the screen is tall enough; else the first group beside
/// the others, so that every key stays on an 80×24 screen.
pub fn draw(frame: &mut Frame, area: Rect) {
    let groups = groups();
    let all: usize = groups.iter().map(Vec::len).sum();
    let fits = all as u16 + 2 <= area.height;
    let columns: Vec<Vec<Line>> = if fits {
        vec![groups.into_iter().flatten().collect()]
    } else {
        let mut groups = groups.into_iter();
        let first = groups.next().unwrap_or_default();
        vec![first, groups.flatten().collect()]
    };
    let widths: Vec<u16> = columns
        .iter()
        .map(|lines| lines.iter().map(Line::width).max().unwrap_or(0) as u16 + 2)
        .collect();
    let width = widths.iter().sum::<u16>() + 2;
    let height = columns.iter().map(Vec::len).max().unwrap_or(0) as u16 + 2;
    let [popup] = Layout::horizontal([Constraint::Length(width)])
        .flex(Flex::Center)
        .areas(area);
    let [popup] = Layout::vertical([Constraint::Length(height)])
        .flex(Flex::Center)
        .areas(popup);
    let block = Block::bordered()
        .border_type(BorderType::Double)
        .title(" Keys · Esc or ? closes ");
    let inner = block.inner(popup);
    frame.render_widget(Clear, popup);
    frame.render_widget(block, popup);
    let areas = Layout::horizontal(widths.iter().map(|&w| Constraint::Length(w))).split(inner);
    for (lines, column) in columns.into_iter().zip(areas.iter()) {
        frame.render_widget(
            Paragraph::new(lines).block(Block::new().padding(ratatui::widgets::Padding::left(1))),
            *column,
        );
    }
}
