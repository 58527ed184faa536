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
            ("1 2 3", "operations / sequence / flows view"),
            ("Tab S-Tab", "next / previous pane"),
            ("↑ ↓ j k", "move, or scroll the detail pane"),
            ("PgUp PgDn ^u ^d", "page up / down"),
            ("g G Home End", "first / last"),
            ("← → h l", "previous / next pane"),
            ("Enter", "drill down"),
            ("Esc", "back"),
            ("mouse wheel", "scroll the focused pane"),
            ("s", "show / hide credentials (hidden at start)"),
            ("?", "this help (Esc closes)"),
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
            ("/", "search text (Enter keeps, Esc clears)"),
            ("f F", "next kind filter / no filter"),
            ("Enter (detail)", "go to the flow's step"),
        ],
    ),
];

pub fn draw(frame: &mut Frame, area: Rect) {
    let mut lines = Vec::new();
    for (group, keys) in KEYS {
        lines.push(Line::styled(*group, Style::new().bold().fg(Color::Cyan)));
        for (key, meaning) in *keys {
            lines.push(Line::from(vec![
                Span::styled(format!("  {key:<16}"), Style::new().bold()),
                Span::raw(*meaning),
            ]));
        }
    }
    let width = lines.iter().map(Line::width).max().unwrap_or(0) as u16 + 4;
    let height = lines.len() as u16 + 2;
    let [popup] = Layout::horizontal([Constraint::Length(width)])
        .flex(Flex::Center)
        .areas(area);
    let [popup] = Layout::vertical([Constraint::Length(height)])
        .flex(Flex::Center)
        .areas(popup);
    let block = Block::bordered()
        .border_type(BorderType::Double)
        .title(" Keys · Esc or ? closes ")
        .padding(ratatui::widgets::Padding::horizontal(1));
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}
