//! The sequence view: the selected operation as a sequence diagram, one
//! arrow per step from the client to the server it talked to, with a time
//! bar that shows which steps ran side by side.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use regtap_capture::Flow;
use regtap_decode::{Operation, Step};

use super::{detail, draw_detail, pane, placeholder, selected_style, status_text};
use crate::app::{App, Pane};
use crate::format;

/// Terminals this wide get the diagram and the detail side by side.
const SIDE_BY_SIDE: u16 = 140;
/// Server lanes beyond this share the last lane.
const MAX_SERVER_LANES: usize = 3;
/// Marker, step number, concurrency bracket, space.
const GUTTER: usize = 6;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let [diagram, detail_area] = if area.width >= SIDE_BY_SIDE {
        Layout::horizontal([Constraint::Percentage(55), Constraint::Fill(1)]).areas(area)
    } else {
        Layout::vertical([Constraint::Percentage(55), Constraint::Fill(1)]).areas(area)
    };
    let focused = app.focus == Pane::Diagram;
    let Some(operation) = app.selected_operation() else {
        placeholder(
            frame,
            diagram,
            pane(" Sequence ".to_owned(), focused),
            if app.linking || app.unlinked() > 0 {
                "Linking the flows into operations…"
            } else if app.decoding {
                "Decoding the flows…"
            } else {
                "No operation to draw: see the flows view (3)."
            },
        );
        return;
    };
    let block = pane(format!(" Sequence · {} ", operation.title), focused);
    let inner = block.inner(diagram);
    frame.render_widget(block, diagram);
    let lines = diagram_lines(app, operation, inner.width, inner.height);
    frame.render_widget(Paragraph::new(lines), inner);

    match app.selected_step() {
        Some(step) => {
            let title = format!(" Step {} ", step.number);
            draw_detail(
                frame,
                detail_area,
                app,
                title,
                detail::step_lines(app, operation, step),
            );
        }
        None => placeholder(
            frame,
            detail_area,
            pane(" Step ".to_owned(), app.focus == Pane::Detail),
            "This operation has no steps.",
        ),
    }
}

/// The servers of an operation, registry first, each with the hosts it stands for.
struct Lanes {
    names: Vec<String>,
    hosts: Vec<Vec<String>>,
}

impl Lanes {
    fn of(app: &App, operation: &Operation) -> Lanes {
        let registry = operation.kind.registry().map(str::to_owned);
        let mut hosts: Vec<String> = registry.into_iter().collect();
        for &id in &operation.flow_ids {
            if let Some(flow) = app.flow(id) {
                let (host, _) = format::split_url(flow.url());
                if !hosts.iter().any(|h| h == host) {
                    hosts.push(host.to_owned());
                }
            }
        }
        let mut lanes = Lanes {
            names: Vec::new(),
            hosts: Vec::new(),
        };
        for (n, host) in hosts.into_iter().enumerate() {
            if n < MAX_SERVER_LANES {
                lanes.names.push(host.clone());
                lanes.hosts.push(vec![host]);
            } else if let (Some(name), Some(group)) =
                (lanes.names.last_mut(), lanes.hosts.last_mut())
            {
                *name = "other hosts".to_owned();
                group.push(host);
            }
        }
        lanes
    }

    fn lane_of(&self, host: &str) -> usize {
        self.hosts
            .iter()
            .position(|group| group.iter().any(|h| h == host))
            .unwrap_or(0)
    }
}

/// Time span of a step: from its first request to its last response.
fn span(app: &App, step: &Step) -> Option<(i64, i64)> {
    step.flow_ids
        .iter()
        .filter_map(|&id| app.flow(id))
        .map(|flow| (flow.timing.request_start, flow.timing.end()))
        .reduce(|(s1, e1), (s2, e2)| (s1.min(s2), e1.max(e2)))
}

/// For each step, its mark in the concurrency bracket: steps that overlap in
/// time are bracketed together (`┌ │ └`).
fn brackets(spans: &[Option<(i64, i64)>]) -> Vec<char> {
    let mut overlaps_previous = vec![false; spans.len()];
    let mut running_end: Option<i64> = None;
    for (n, span) in spans.iter().enumerate() {
        if let Some((start, end)) = span {
            if running_end.is_some_and(|running| *start < running) {
                overlaps_previous[n] = true;
            }
            running_end = Some(running_end.map_or(*end, |running| running.max(*end)));
        }
    }
    (0..spans.len())
        .map(|n| {
            let joins_previous = overlaps_previous[n];
            let joins_next = overlaps_previous.get(n + 1).copied().unwrap_or(false);
            match (joins_previous, joins_next) {
                (false, true) => '┌',
                (true, true) => '│',
                (true, false) => '└',
                (false, false) => ' ',
            }
        })
        .collect()
}

fn diagram_lines(app: &App, operation: &Operation, width: u16, height: u16) -> Vec<Line<'static>> {
    let width = usize::from(width);
    let timeline = if width >= 60 { 12 } else { 0 };
    let lanes_width = width.saturating_sub(GUTTER + timeline + 1);
    let lanes = Lanes::of(app, operation);
    if lanes_width < 20 || lanes.names.is_empty() {
        return vec![Line::raw("Too narrow for a diagram.")];
    }
    let servers = lanes.names.len();
    let positions: Vec<usize> = std::iter::once(0)
        .chain((1..=servers).map(|k| k * (lanes_width - 1) / servers))
        .collect();

    let mut lines = vec![header_line(&lanes, &positions, lanes_width, timeline)];
    let spans: Vec<Option<(i64, i64)>> = operation.steps.iter().map(|s| span(app, s)).collect();
    let marks = brackets(&spans);
    let rows = usize::from(height.saturating_sub(1));
    let window = app.steps.window(operation.steps.len(), rows);
    for n in window {
        let (Some(step), Some(&mark)) = (operation.steps.get(n), marks.get(n)) else {
            continue;
        };
        let selected = n == app.steps.selected();
        let time = spans.get(n).copied().flatten();
        lines.push(step_line(
            app,
            step,
            &lanes,
            &positions,
            lanes_width,
            mark,
            selected,
            (time, operation.start_ns, operation.end_ns, timeline),
        ));
    }
    lines
}

fn header_line(
    lanes: &Lanes,
    positions: &[usize],
    lanes_width: usize,
    timeline: usize,
) -> Line<'static> {
    let mut row: Vec<char> = vec![' '; lanes_width];
    let names = std::iter::once("client").chain(lanes.names.iter().map(String::as_str));
    let slot = lanes_width / positions.len().max(1);
    for (name, &x) in names.zip(positions) {
        let name = format::clip(name, slot.saturating_sub(1).max(4));
        let len = name.chars().count();
        // Names sit on their lane, kept inside the row.
        let start = x
            .saturating_sub(len / 2)
            .min(lanes_width.saturating_sub(len));
        for (i, c) in name.chars().enumerate() {
            if let Some(cell) = row.get_mut(start + i) {
                *cell = c;
            }
        }
    }
    let mut spans = vec![
        Span::raw(" ".repeat(GUTTER)),
        Span::styled(row.into_iter().collect::<String>(), Style::new().bold()),
    ];
    if timeline > 0 {
        spans.push(Span::styled(
            format!(" {:<timeline$}", "time"),
            Style::new().dim(),
        ));
    }
    Line::from(spans)
}

#[allow(clippy::too_many_arguments)]
fn step_line(
    app: &App,
    step: &Step,
    lanes: &Lanes,
    positions: &[usize],
    lanes_width: usize,
    mark: char,
    selected: bool,
    (time, op_start, op_end, timeline): (Option<(i64, i64)>, i64, i64, usize),
) -> Line<'static> {
    let flows: Vec<_> = step
        .flow_ids
        .iter()
        .filter_map(|&id| app.flow(id))
        .collect();
    let first = flows.first();
    let target = first.map_or(1, |flow| lanes.lane_of(format::split_url(flow.url()).0) + 1);
    let end = positions.get(target).copied().unwrap_or(lanes_width - 1);

    let mut row: Vec<char> = vec![' '; lanes_width];
    for &x in positions {
        row[x] = '│';
    }
    row[0] = '├';
    for cell in row.iter_mut().take(end).skip(1) {
        *cell = if *cell == '│' { '┼' } else { '─' };
    }
    row[end.saturating_sub(1).max(1)] = '▶';

    let label = match first {
        Some(flow) => format!(" {} ", arrow_label(app, &flows, flow)),
        None => " ? ".to_owned(),
    };
    // The label rides on the arrow; a short arrow lets it run past the head.
    let room = lanes_width.saturating_sub(3);
    for (i, c) in format::clip(&label, room).chars().enumerate() {
        if let Some(cell) = row.get_mut(2 + i) {
            *cell = c;
        }
    }

    // The step's outcome is its last answer.
    let failed = flows
        .last()
        .is_some_and(|flow| flow.error.is_some() || flow.status().is_some_and(|s| s >= 400));
    let arrow_style = if failed {
        Style::new().fg(Color::Yellow)
    } else {
        Style::new()
    };
    let marker = if selected { "▶" } else { " " };
    let mut spans = vec![
        Span::styled(marker, Style::new().fg(Color::Cyan).bold()),
        Span::styled(format!("{:>3}", step.number), Style::new().dim()),
        Span::styled(format!("{mark} "), Style::new().fg(Color::Magenta)),
        Span::styled(row.into_iter().collect::<String>(), arrow_style),
    ];
    if timeline > 0 {
        spans.push(Span::raw(" "));
        spans.push(Span::styled(
            time_bar(time, op_start, op_end, timeline),
            Style::new().fg(Color::Cyan),
        ));
    }
    let line = Line::from(spans);
    if selected {
        line.style(selected_style())
    } else {
        line
    }
}

/// `GET 401 api-check`, `3× HEAD 200 blob-head` for a step of alike
/// requests, `POST+PATCH+PUT 201` for an upload (its last answer).
fn arrow_label(app: &App, flows: &[&Flow], first: &Flow) -> String {
    if flows.iter().all(|flow| flow.method() == first.method()) {
        let count = if flows.len() > 1 {
            format!("{}× ", flows.len())
        } else {
            String::new()
        };
        return format!(
            "{count}{} {} {}",
            first.method(),
            status_text(first),
            app.kind_label(first.id)
        );
    }
    let mut methods: Vec<&str> = Vec::new();
    for flow in flows {
        if methods.last() != Some(&flow.method()) {
            methods.push(flow.method());
        }
    }
    let last = flows.last().copied().unwrap_or(first);
    format!("{} {}", methods.join("+"), status_text(last))
}

/// Where in the operation's time a step ran: `··███·······`.
fn time_bar(time: Option<(i64, i64)>, op_start: i64, op_end: i64, width: usize) -> String {
    let Some((start, end)) = time else {
        return " ".repeat(width);
    };
    let total = (op_end - op_start).max(1) as f64;
    let column = |t: i64| {
        let share = ((t - op_start) as f64 / total).clamp(0.0, 1.0);
        ((share * width as f64) as usize).min(width - 1)
    };
    let (from, to) = (column(start), column(end));
    (0..width)
        .map(|x| {
            if (from..=to).contains(&x) {
                '█'
            } else {
                '·'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_steps_are_bracketed_together() {
        let spans = [
            Some((0, 10)),
            Some((20, 50)),
            Some((21, 40)),
            Some((45, 60)),
            Some((70, 80)),
            None,
        ];
        assert_eq!(brackets(&spans), vec![' ', '┌', '│', '└', ' ', ' ']);
    }

    #[test]
    fn time_bars_place_steps_in_the_operation() {
        assert_eq!(time_bar(Some((0, 10)), 0, 100, 10), "██········");
        assert_eq!(time_bar(Some((90, 100)), 0, 100, 10), "·········█");
        assert_eq!(time_bar(None, 0, 100, 4), "    ");
    }
}
