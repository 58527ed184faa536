//! Drawing: pure functions of [`App`]. Lists draw only the rows on screen,
//! and the detail pane is built only for the selected item, so the cost of a
//! frame does not grow with the size of the capture.

mod detail;
mod flows;
mod help;
mod operations;
mod progress;
mod sequence;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Paragraph, Wrap};
use regtap_decode::{OperationStatus, Severity};

use crate::app::{App, Pane, View};
use crate::format;
use crate::keys::{self, Command};

/// Terminals at least this wide get panes side by side where narrow ones stack them.
const WIDE: u16 = 120;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App) {
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_tabs(frame, top, app);
    let body = progress::draw(frame, body, app);
    match app.view {
        View::Operations => operations::draw(frame, body, app),
        View::Sequence => sequence::draw(frame, body, app),
        View::Flows => flows::draw(frame, body, app),
    }
    draw_status(frame, bottom, app);
    if app.help {
        help::draw(frame, frame.area());
    }
}

fn draw_tabs(frame: &mut Frame, area: Rect, app: &App) {
    let mut spans = vec![Span::styled(" regtap ", Style::new().bold().reversed())];
    for (view, name) in [
        (View::Operations, "1 Operations"),
        (View::Sequence, "2 Sequence"),
        (View::Flows, "3 Flows"),
    ] {
        if view == app.view {
            spans.push(Span::styled(
                format!(" [{name}] "),
                Style::new().fg(Color::Cyan).bold(),
            ));
        } else {
            spans.push(Span::raw(format!("  {name}  ")));
        }
    }
    // Most urgent first: the line is cut at the terminal's edge.
    let mut facts = String::new();
    if let Some(live) = &app.live {
        if live.missed > 0 {
            facts.push_str(&format!(" · ⚠ {} events missed", live.missed));
        }
        if live.ended {
            facts.push_str(" · proxy stopped");
        } else {
            facts.push_str(&format!(" · {} in flight", live.in_flight.len()));
        }
    }
    let unlinked = app.unlinked();
    if unlinked > 0 {
        facts.push_str(&format!(" · linking {unlinked} new flows…"));
    } else if app.linking {
        facts.push_str(" · linking…");
    } else if app.decoding {
        facts.push_str(" · decoding…");
    }
    facts.push_str(&format!(
        " · {} flows · {} ops",
        app.flows.len(),
        app.analysis.operations.len()
    ));
    let used: usize = spans.iter().map(Span::width).sum();
    let room = usize::from(area.width).saturating_sub(used + facts.chars().count() + 1);
    let facts = format!(" {}{facts}", format::clip(&app.title, room.max(8)));
    spans.push(Span::styled(facts, Style::new().dim()));
    frame.render_widget(Line::from(spans), area);
}

fn draw_status(frame: &mut Frame, area: Rect, app: &App) {
    let line = if let Some(input) = &app.search_input {
        Line::from(vec![
            Span::styled("/", Style::new().bold()),
            Span::raw(input.clone()),
            Span::styled("▏", Style::new().fg(Color::Cyan)),
            Span::styled("  Enter keep · Esc clear", Style::new().dim()),
        ])
    } else if let Some(notice) = &app.notice {
        Line::styled(notice.clone(), Style::new().fg(Color::Yellow))
    } else {
        use crate::keys::Command::*;
        let commands: &[Command] = match (app.view, app.focus) {
            (View::Sequence, _) => &[Left, PlayPause, Faster, Help, Quit],
            (View::Flows, Pane::Detail) => &[Up, DrillDown, Back, Help, Quit],
            (View::Flows, _) => &[Up, DrillDown, Search, NextKind, Back, Help, Quit],
            (_, Pane::Detail) => &[Up, Back, NextPane, Help, Quit],
            _ => &[Up, DrillDown, NextPane, ShowOperations, Help, Quit],
        };
        let mut hints: Vec<String> = Vec::new();
        if app.view == View::Sequence {
            let playback = if app.playback.playing {
                "▶ playing"
            } else {
                "⏸ paused"
            };
            hints.push(format!(
                "{playback}, {:.2} s/step",
                app.playback.interval.as_secs_f64()
            ));
        }
        hints.extend(
            commands
                .iter()
                .filter_map(|&command| keys::hint(command))
                .map(str::to_owned),
        );
        let hints = hints.join(" · ");
        Line::styled(hints, Style::new().dim())
    };
    frame.render_widget(line, area);
}

/// A bordered pane; the focused one has a thick border.
fn pane(title: String, focused: bool) -> Block<'static> {
    let block = Block::bordered().title(Span::styled(title, Style::new().bold()));
    if focused {
        block
            .border_type(BorderType::Thick)
            .border_style(Style::new().fg(Color::Cyan))
    } else {
        block.border_style(Style::new().dim())
    }
}

/// Highlight of the selected row of a list.
fn selected_style() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

/// The answer of a flow in a few characters: `404`, `401!` when the
/// exchange then broke (see the detail), `ERR` with no answer, `…` pending.
fn status_text(flow: &regtap_capture::Flow) -> String {
    match (&flow.response, &flow.error) {
        (Some(response), Some(_)) => format!("{}!", response.status),
        (Some(response), None) => response.status.to_string(),
        (None, Some(_)) => "ERR".to_owned(),
        (None, None) => "…".to_owned(),
    }
}

fn status_symbol(status: &OperationStatus) -> Span<'static> {
    match status {
        OperationStatus::Succeeded => Span::styled("✓", Style::new().fg(Color::Green)),
        OperationStatus::Failed { .. } => Span::styled("✗", Style::new().fg(Color::Red)),
        OperationStatus::Incomplete => Span::styled("…", Style::new().fg(Color::Yellow)),
    }
}

fn severity_style(severity: Severity) -> Style {
    match severity {
        Severity::Info => Style::new(),
        Severity::Warning => Style::new().fg(Color::Yellow),
        Severity::Error => Style::new().fg(Color::Red),
    }
}

/// The detail pane: `lines`, scrolled by the app's detail scroll.
fn draw_detail(frame: &mut Frame, area: Rect, app: &App, title: String, lines: Vec<Line<'static>>) {
    let focused = app.focus == Pane::Detail;
    // Rows the wrapped text takes, so that scrolling stops at its end.
    let width = usize::from(area.width.saturating_sub(2)).max(1);
    let rows: usize = lines
        .iter()
        .map(|line| line.width().max(1).div_ceil(width))
        .sum();
    let visible = usize::from(area.height.saturating_sub(2));
    let limit = u16::try_from(rows.saturating_sub(visible)).unwrap_or(u16::MAX);
    app.detail_scroll_limit.set(limit);
    let paragraph = Paragraph::new(lines)
        .block(pane(title, focused))
        .wrap(Wrap { trim: false })
        .scroll((app.detail_scroll.min(limit), 0));
    frame.render_widget(paragraph, area);
}

/// Text in the middle of an empty pane.
fn placeholder(frame: &mut Frame, area: Rect, block: Block<'static>, text: &str) {
    let paragraph = Paragraph::new(Line::styled(text.to_owned(), Style::new().dim()))
        .block(block)
        .wrap(Wrap { trim: true });
    frame.render_widget(paragraph, area);
}

#[cfg(test)]
mod tests;
