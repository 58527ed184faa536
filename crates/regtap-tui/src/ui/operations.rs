//! The operations view: operations, the steps of the selected one, and the
//! detail of the selected step.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, List, ListItem, ListState};

use super::{WIDE, detail, draw_detail, pane, placeholder, selected_style, status_symbol};
use crate::app::{App, Pane};
use crate::format;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let left_share = if area.width >= WIDE { 40 } else { 45 };
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(left_share), Constraint::Fill(1)]).areas(area);
    // The operations list takes what it needs, up to a third of the height.
    let wanted = app.analysis.operations.len().max(1) as u16 + 2;
    let [top, bottom] = Layout::vertical([
        Constraint::Length(wanted.min((left.height / 3).max(4))),
        Constraint::Fill(1),
    ])
    .areas(left);
    draw_operations(frame, top, app);
    draw_steps(frame, bottom, app);
    draw_right(frame, right, app);
}

fn draw_operations(frame: &mut Frame, area: Rect, app: &App) {
    let operations = &app.analysis.operations;
    let block = pane(
        format!(" Operations {} ", operations.len()),
        app.focus == Pane::Operations,
    );
    if operations.is_empty() {
        let text = if app.linking || app.unlinked() > 0 {
            "Linking the flows into operations… the flows view (3) has them already."
        } else if app.decoding {
            "Decoding the flows… the flows view (3) has them already."
        } else if app.flows.is_empty() {
            "No traffic yet."
        } else {
            "No registry operation recognised: see the flows view (3)."
        };
        placeholder(frame, area, block, text);
        return;
    }
    let width = usize::from(area.width.saturating_sub(4));
    let height = usize::from(area.height.saturating_sub(2));
    let window = app.operations.window(operations.len(), height);
    let selected = app.operations.selected().saturating_sub(window.start);
    let items: Vec<ListItem> = operations[window]
        .iter()
        .map(|operation| {
            let took = format::duration(operation.end_ns - operation.start_ns);
            let title_width = width.saturating_sub(took.chars().count() + 3);
            let title = match &operation.client {
                Some(client) => format!("{} · {}", operation.title, client.program),
                None => operation.title.clone(),
            };
            let title = format::clip(&title, title_width);
            ListItem::new(Line::from(vec![
                status_symbol(&operation.status),
                Span::raw(format!(" {title:<title_width$} ")),
                Span::styled(took, Style::new().dim()),
            ]))
        })
        .collect();
    draw_list(frame, area, block, items, selected);
}

fn draw_steps(frame: &mut Frame, area: Rect, app: &App) {
    let focused = app.focus == Pane::Steps;
    let Some(operation) = app.selected_operation() else {
        placeholder(frame, area, pane(" Steps ".to_owned(), focused), "");
        return;
    };
    let block = pane(format!(" Steps {} ", operation.steps.len()), focused);
    let height = usize::from(area.height.saturating_sub(2));
    let window = app.steps.window(operation.steps.len(), height);
    let selected = app.steps.selected().saturating_sub(window.start);
    let items: Vec<ListItem> = operation.steps[window]
        .iter()
        .map(|step| {
            let warn = step
                .annotations
                .iter()
                .map(|a| a.severity)
                .max()
                .filter(|s| *s != regtap_decode::Severity::Info);
            let mut spans = vec![Span::styled(
                format!("{:>2} ", step.number),
                Style::new().dim(),
            )];
            if let Some(severity) = warn {
                spans.push(Span::styled("⚠ ", super::severity_style(severity)));
            }
            spans.push(Span::raw(step.explanation.clone()));
            ListItem::new(Line::from(spans))
        })
        .collect();
    draw_list(frame, area, block, items, selected);
}

/// A bordered list with the selected row highlighted.
fn draw_list(frame: &mut Frame, area: Rect, block: Block, items: Vec<ListItem>, selected: usize) {
    let list = List::new(items)
        .block(block)
        .highlight_style(selected_style())
        .highlight_symbol("▶ ");
    let mut state = ListState::default().with_selected(Some(selected));
    frame.render_stateful_widget(list, area, &mut state);
}

fn draw_right(frame: &mut Frame, area: Rect, app: &App) {
    let Some(operation) = app.selected_operation() else {
        placeholder(
            frame,
            area,
            pane(" Detail ".to_owned(), app.focus == Pane::Detail),
            "Operations are logins, pushes and pulls recognised in the traffic.",
        );
        return;
    };
    match (app.focus, app.selected_step()) {
        (Pane::Steps | Pane::Detail, Some(step)) => {
            let title = format!(" Step {} ", step.number);
            draw_detail(
                frame,
                area,
                app,
                title,
                detail::step_lines(app, operation, step),
            );
        }
        _ => {
            let title = format!(" Operation {} ", operation.index);
            draw_detail(
                frame,
                area,
                app,
                title,
                detail::operation_lines(app, operation),
            );
        }
    }
}
