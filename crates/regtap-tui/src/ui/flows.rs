//! The flows view: every flow in time order, searchable and filterable by kind.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row, Table, TableState};
use regtap_capture::Flow;

use super::{WIDE, detail, draw_detail, pane, placeholder, selected_style, status_text};
use crate::app::{App, Pane};
use crate::format;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let list = &app.flow_list;
    let (list_area, detail_area) = if list.detail_open {
        let [top, bottom] =
            Layout::vertical([Constraint::Percentage(40), Constraint::Fill(1)]).areas(area);
        (top, Some(bottom))
    } else {
        (area, None)
    };
    draw_list(frame, list_area, app);
    if let Some(detail_area) = detail_area {
        match app.selected_flow() {
            Some(flow) => {
                let title = format!(" Flow #{} ", flow.id);
                let lines = detail::flow_lines(app, flow, None);
                draw_detail(frame, detail_area, app, title, lines);
            }
            None => placeholder(
                frame,
                detail_area,
                pane(" Flow ".to_owned(), app.focus == Pane::Detail),
                "No flow selected.",
            ),
        }
    }
}

fn draw_list(frame: &mut Frame, area: Rect, app: &App) {
    let list = &app.flow_list;
    let mut title = format!(" Flows {}/{}", list.rows.len(), app.flows.len());
    if let Some(kind) = list.kind {
        title.push_str(&format!(" · kind {kind}"));
    }
    if let Some(client) = &list.client {
        title.push_str(&format!(" · client {client}"));
    }
    if let Some(repository) = &list.repository {
        title.push_str(&format!(" · repository {repository}"));
    }
    if list.failed_only {
        title.push_str(" · failed only");
    }
    let search = app.search_input.as_deref().unwrap_or(&list.search);
    if !search.is_empty() {
        title.push_str(&format!(" · \"{search}\""));
    }
    title.push(' ');
    let block = pane(title, app.focus == Pane::Flows);
    if list.rows.is_empty() {
        let text = if app.flows.is_empty() {
            "No flows yet."
        } else {
            "No flow matches. Esc clears the search and the filter."
        };
        placeholder(frame, area, block, text);
        return;
    }
    let wide = area.width >= WIDE;
    // Borders and the header row.
    let height = usize::from(area.height.saturating_sub(3));
    let window = list.cursor.window(list.rows.len(), height);
    let selected = list.cursor.selected().saturating_sub(window.start);
    let rows: Vec<Row> = list.rows[window]
        .iter()
        .filter_map(|&position| app.flows.get(position))
        .map(|flow| row(app, flow, wide))
        .collect();
    let mut widths = vec![
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(4),
        Constraint::Length(13),
    ];
    let mut header = vec!["#", "time", "method", "st", "kind"];
    if wide {
        widths.extend([
            Constraint::Length(8),
            Constraint::Length(10),
            Constraint::Length(14),
        ]);
        header.extend(["took", "size", "client"]);
        widths.push(Constraint::Length(22));
        header.push("host");
    }
    widths.push(Constraint::Fill(1));
    header.push("path");
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::new().bold()))
        .block(block)
        .row_highlight_style(selected_style())
        .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected(Some(selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn row<'a>(app: &'a App, flow: &'a Flow, wide: bool) -> Row<'a> {
    let style = match (flow.status(), &flow.error) {
        (_, Some(_)) => Style::new().fg(Color::Red),
        (Some(200..=299), None) => Style::new().fg(Color::Green),
        (Some(300..=399), None) => Style::new().fg(Color::Cyan),
        _ => Style::new().fg(Color::Yellow),
    };
    let status = Span::styled(status_text(flow), style);
    let kind = app.kind_label(flow.id);
    let kind_style = if kind == "unknown" {
        Style::new().fg(Color::Magenta)
    } else {
        Style::new()
    };
    let mut cells = vec![
        Cell::from(flow.id.to_string()),
        Cell::from(format::offset(flow.timing.request_start, app.origin_ns)),
        Cell::from(flow.method()),
        Cell::from(status),
        Cell::from(Span::styled(kind, kind_style)),
    ];
    let (host, _) = format::split_url(flow.url());
    if wide {
        let took = format::duration(flow.timing.end() - flow.timing.request_start);
        let size = flow
            .response
            .as_ref()
            .map_or(flow.request.body.size, |response| {
                flow.request.body.size.max(response.body.size)
            });
        cells.push(Cell::from(took));
        cells.push(Cell::from(format::bytes(size)));
        cells.push(Cell::from(app.client_program(flow.id).unwrap_or("-")));
        cells.push(Cell::from(host));
        cells.push(Cell::from(format::short_path(flow.url())));
    } else if kind == "unknown" || kind == "token" {
        // Without a host column, say where requests outside the registry API went.
        cells.push(Cell::from(format!(
            "{host}{}",
            format::short_path(flow.url())
        )));
    } else {
        cells.push(Cell::from(format::short_path(flow.url())));
    }
    Row::new(cells)
}
