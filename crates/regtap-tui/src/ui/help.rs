//! The `?` overlay: every key, in one place.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph};

use crate::keys::{BINDINGS, Context};

/// The mouse, which is no key binding: it scrolls whatever has the focus.
const MOUSE: (&str, &str) = ("mouse wheel", "scroll the pane");

/// The lines of each group of keys, from [`BINDINGS`].
fn groups() -> Vec<Vec<Line<'static>>> {
    let row = |keys: &'static str, meaning: &'static str| {
        Line::from(vec![
            Span::styled(format!("  {keys:<16}"), Style::new().bold()),
            Span::raw(meaning),
        ])
    };
    Context::ALL
        .iter()
        .map(|&context| {
            let mut lines = vec![Line::styled(
                context.title(),
                Style::new().bold().fg(Color::Cyan),
            )];
            lines.extend(
                BINDINGS
                    .iter()
                    .filter(|binding| binding.context == context)
                    .map(|binding| row(binding.label, binding.help)),
            );
            if context == Context::Everywhere {
                lines.push(row(MOUSE.0, MOUSE.1));
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
