//! Live mode: a bar per exchange whose body is still streaming.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use regtap_capture::Direction;

use crate::app::{App, Transfer};
use crate::format;

/// At most this many transfers get a bar; the title counts the rest.
const MAX_BARS: usize = 5;

/// Draws the in-flight pane at the bottom of `area` when something is in
/// flight, and returns the area left for the view.
pub fn draw(frame: &mut Frame, area: Rect, app: &App) -> Rect {
    let Some(live) = &app.live else {
        return area;
    };
    let moving: Vec<&Transfer> = live
        .in_flight
        .values()
        .filter(|transfer| transfer.current().is_some())
        .collect();
    if moving.is_empty() || area.height < 12 {
        return area;
    }
    let shown = moving.len().min(MAX_BARS);
    let [rest, pane] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(shown as u16 + 2)]).areas(area);
    let mut title = format!(" In flight: {} ", moving.len());
    if moving.len() > shown {
        title = format!(
            " In flight: {} ({} more not shown) ",
            moving.len(),
            moving.len() - shown
        );
    }
    let width = usize::from(pane.width.saturating_sub(2));
    let lines: Vec<Line> = moving
        .iter()
        .take(shown)
        .map(|transfer| bar_line(transfer, width))
        .collect();
    let block = Block::bordered()
        .title(title)
        .border_style(Style::new().fg(Color::Blue));
    frame.render_widget(Paragraph::new(lines).block(block), pane);
    rest
}

/// `#12 ↑ PATCH /v2/…  ████░░░░  1.2 MiB / 3.0 MiB  40%  4.5 MiB/s`
fn bar_line(transfer: &Transfer, width: usize) -> Line<'static> {
    let Some((direction, progress)) = transfer.current() else {
        return Line::default();
    };
    let arrow = match direction {
        Direction::Request => "↑",
        Direction::Response => "↓",
    };
    let amount = match progress.total {
        Some(total) => format!(
            "{} / {}{}",
            format::bytes(progress.bytes),
            format::bytes(total),
            percent(progress.bytes, total)
        ),
        None => format::bytes(progress.bytes),
    };
    let rate = progress.rate().unwrap_or_default();
    let numbers = format!(" {amount} {rate}");
    let label = format!(
        "#{} {arrow} {} {} ",
        transfer.id,
        transfer.method,
        format::short_path(&transfer.url)
    );
    let bar_width = 16.min(width.saturating_sub(numbers.chars().count() + 10));
    let label = format::clip(
        &label,
        width.saturating_sub(bar_width + numbers.chars().count()),
    );
    let (done, todo) = match progress.total {
        Some(total) if total > 0 => {
            let filled = (u128::from(progress.bytes.min(total)) * bar_width as u128
                / u128::from(total)) as usize;
            ("█".repeat(filled), "░".repeat(bar_width - filled))
        }
        // No total: a bar cannot say how far along; show the bytes only.
        _ => (String::new(), "·".repeat(bar_width)),
    };
    Line::from(vec![
        Span::raw(format!(
            "{label:<w$}",
            w = width.saturating_sub(bar_width + numbers.chars().count())
        )),
        Span::styled(done, Style::new().fg(Color::Green)),
        Span::styled(todo, Style::new().dim()),
        Span::raw(numbers),
    ])
}

fn percent(bytes: u64, total: u64) -> String {
    if total == 0 {
        return String::new();
    }
    format!(
        " {:>3}%",
        u128::from(bytes.min(total)) * 100 / u128::from(total)
    )
}
