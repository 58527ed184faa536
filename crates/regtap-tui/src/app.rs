//! The TUI's state and everything that changes it: keys, mouse, playback
//! ticks and live events. Nothing here draws; `ui` reads this state.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind,
};
use regtap_capture::{Direction, Flow, LiveEvent, UnixNanos};
use regtap_decode::{Analysis, FlowAnalysis, Operation, Options, Step};

use crate::relink::{Linked, Relinker};

use crate::format;

/// The three screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Operations,
    Sequence,
    Flows,
}

/// The part of a view that receives movement keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Operations,
    Steps,
    Diagram,
    Flows,
    Detail,
}

/// What the event loop should do after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    Quit,
}

/// A selected row and the first row on screen. Drawing moves the offset so
/// that the selection stays visible, and records the height for paging.
#[derive(Debug, Default)]
pub struct Cursor {
    selected: usize,
    offset: Cell<usize>,
    height: Cell<usize>,
}

impl Cursor {
    pub fn selected(&self) -> usize {
        self.selected
    }

    fn select(&mut self, index: usize, len: usize) {
        self.selected = index.min(len.saturating_sub(1));
    }

    fn move_by(&mut self, delta: isize, len: usize) {
        let target = self.selected.saturating_add_signed(delta);
        self.select(target, len);
    }

    fn page(&self) -> isize {
        isize::try_from(self.height.get().max(1)).unwrap_or(1)
    }

    /// The rows to draw in a viewport of `height` rows out of `len`.
    pub fn window(&self, len: usize, height: usize) -> Range<usize> {
        self.height.set(height);
        if len == 0 || height == 0 {
            return 0..0;
        }
        let selected = self.selected.min(len - 1);
        let mut offset = self.offset.get().min(len.saturating_sub(height));
        if selected < offset {
            offset = selected;
        } else if selected >= offset + height {
            offset = selected + 1 - height;
        }
        self.offset.set(offset);
        offset..(offset + height).min(len)
    }
}

/// Step-by-step playback of the sequence view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Playback {
    pub playing: bool,
    /// Time each step stays highlighted.
    pub interval: Duration,
    elapsed: Duration,
}

const FASTEST_STEP: Duration = Duration::from_millis(125);
const SLOWEST_STEP: Duration = Duration::from_secs(8);

impl Default for Playback {
    fn default() -> Self {
        Playback {
            playing: false,
            interval: Duration::from_secs(1),
            elapsed: Duration::ZERO,
        }
    }
}

/// Bytes seen so far of one side of an in-flight exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyProgress {
    pub bytes: u64,
    pub total: Option<u64>,
    first_bytes: u64,
    first_at: UnixNanos,
    last_at: UnixNanos,
}

impl BodyProgress {
    /// Average rate since the first progress report of this body.
    pub fn rate(&self) -> Option<String> {
        format::rate(
            self.bytes.saturating_sub(self.first_bytes),
            self.last_at - self.first_at,
        )
    }
}

/// An exchange the proxy has started and not yet finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: u64,
    pub method: String,
    pub url: String,
    pub started_at: UnixNanos,
    pub request: Option<BodyProgress>,
    pub response: Option<BodyProgress>,
}

impl Transfer {
    /// The side currently moving: the response once it streams, else the request.
    pub fn current(&self) -> Option<(Direction, &BodyProgress)> {
        match (&self.response, &self.request) {
            (Some(response), _) => Some((Direction::Response, response)),
            (None, Some(request)) => Some((Direction::Request, request)),
            (None, None) => None,
        }
    }
}

/// Live mode: the analyzer fed by finished flows and the exchanges in flight.
#[derive(Debug)]
pub struct Live {
    relinker: Relinker,
    /// Finished flows not yet merged into the shown state (see [`App::refresh`]),
    /// in the order they were pushed to the relinker.
    pending: Vec<Flow>,
    /// Flows pushed to the relinker and shown.
    shown: usize,
    pub in_flight: BTreeMap<u64, Transfer>,
    /// The event source has gone (the proxy stopped).
    pub ended: bool,
    /// Events the source dropped because the TUI fell behind.
    pub missed: u64,
}

/// The flows view: which flows pass the search and the kind filter.
#[derive(Debug, Default)]
pub struct FlowList {
    /// Positions in [`App::flows`] of the rows shown, in time order.
    pub rows: Vec<usize>,
    pub cursor: Cursor,
    pub search: String,
    pub kind: Option<&'static str>,
    /// Kind labels present in the capture, in the order `f` cycles through them.
    pub kinds: Vec<&'static str>,
    /// Only the flows of this client program.
    pub client: Option<String>,
    /// Client programs present in the capture, in the order `c` cycles through them.
    pub clients: Vec<String>,
    /// Only the flows on this repository.
    pub repository: Option<String>,
    /// Repositories present in the capture, in the order `r` cycles through them.
    pub repositories: Vec<String>,
    /// Only the flows that failed: no answer, or one the decoder calls an error.
    pub failed_only: bool,
    pub detail_open: bool,
}

pub struct App {
    /// What is shown: a capture path, or "live".
    pub title: String,
    /// Sorted by `(request_start, id)`, as the analysis is. Shared with the
    /// thread that decodes them (see [`App::decoding`]).
    pub flows: Arc<Vec<Flow>>,
    pub analysis: Analysis,
    /// The analysis is still being computed: kinds and operations are not known yet.
    pub decoding: bool,
    /// Lowercased searchable text of each flow, built at the first search.
    search_text: Option<Vec<String>>,
    flow_positions: IdIndex,
    analysis_positions: IdIndex,
    /// Start of the first flow: times are shown relative to it.
    pub origin_ns: UnixNanos,
    pub view: View,
    pub focus: Pane,
    pub operations: Cursor,
    pub steps: Cursor,
    pub flow_list: FlowList,
    pub detail_scroll: u16,
    /// The largest useful detail scroll, as last drawn.
    pub detail_scroll_limit: Cell<u16>,
    /// The search text being typed after `/`.
    pub search_input: Option<String>,
    pub help: bool,
    pub playback: Playback,
    pub live: Option<Live>,
    /// A one-time message for the status line (warnings from loading).
    pub notice: Option<String>,
    /// Show credentials (Authorization, cookies, secret query values) as
    /// they are; masked until `s` is pressed.
    pub reveal_secrets: bool,
}

impl App {
    /// The state for a capture: decodes every flow once, before returning.
    pub fn new(title: impl Into<String>, flows: Vec<Flow>, options: &Options) -> App {
        let mut app = App::decoding(title, flows);
        let analysis = regtap_decode::analyze(&app.flows, options);
        app.set_analysis(analysis);
        app
    }

    /// The state for flows already analysed (`analysis` must come from these flows).
    pub fn from_analysis(title: impl Into<String>, flows: Vec<Flow>, analysis: Analysis) -> App {
        let mut app = App::decoding(title, flows);
        app.set_analysis(analysis);
        app
    }

    /// The state for flows whose analysis is still to come: the flows show
    /// at once, kinds and operations once [`App::set_analysis`] brings them.
    /// Decode [`App::flows`] (shared, not copied) on another thread.
    pub fn decoding(title: impl Into<String>, flows: Vec<Flow>) -> App {
        let mut app = App::empty(title.into(), time_ordered(flows), Analysis::default(), None);
        app.decoding = true;
        app.reindex();
        app
    }

    /// Takes in the analysis of [`App::flows`].
    pub fn set_analysis(&mut self, analysis: Analysis) {
        self.analysis = analysis;
        self.decoding = false;
        self.reindex();
    }

    /// The state for live traffic: empty until [`App::apply`] brings flows.
    pub fn live(options: Options) -> App {
        let live = Live {
            relinker: Relinker::new(options),
            pending: Vec::new(),
            shown: 0,
            in_flight: BTreeMap::new(),
            ended: false,
            missed: 0,
        };
        App::empty(
            "live".to_owned(),
            Vec::new(),
            Analysis::default(),
            Some(live),
        )
    }

    fn empty(title: String, flows: Vec<Flow>, analysis: Analysis, live: Option<Live>) -> App {
        App {
            title,
            flows: Arc::new(flows),
            analysis,
            decoding: false,
            search_text: None,
            flow_positions: IdIndex::Ascending,
            analysis_positions: IdIndex::Ascending,
            origin_ns: 0,
            view: View::Operations,
            focus: Pane::Operations,
            operations: Cursor::default(),
            steps: Cursor::default(),
            flow_list: FlowList::default(),
            detail_scroll: 0,
            detail_scroll_limit: Cell::new(u16::MAX),
            search_input: None,
            help: false,
            playback: Playback::default(),
            live,
            notice: None,
            reveal_secrets: false,
        }
    }

    pub fn with_notice(mut self, notice: Option<String>) -> App {
        self.notice = notice;
        self
    }

    fn reindex(&mut self) {
        self.search_text = None;
        self.flow_positions = IdIndex::of(self.flows.iter().map(|flow| flow.id));
        self.analysis_positions = IdIndex::of(self.analysis.flows.iter().map(|flow| flow.flow_id));
        self.origin_ns = self
            .flows
            .first()
            .map_or(0, |flow| flow.timing.request_start);
        // A handful of distinct kinds among many flows: dedupe as they come.
        let mut kinds: Vec<&'static str> = Vec::new();
        for flow in &self.analysis.flows {
            let label = flow.kind.label();
            if !kinds.contains(&label) {
                kinds.push(label);
            }
        }
        kinds.sort_unstable();
        self.flow_list.kinds = kinds;
        let mut clients: Vec<String> = Vec::new();
        for flow in &self.analysis.flows {
            if let Some(client) = &flow.client
                && !clients.contains(&client.program)
            {
                clients.push(client.program.clone());
            }
        }
        clients.sort_unstable();
        self.flow_list.clients = clients;
        let mut repositories: Vec<String> = Vec::new();
        for flow in &self.analysis.flows {
            if let Some(repository) = flow.kind.repository()
                && !repositories.iter().any(|r| r == repository)
            {
                repositories.push(repository.to_owned());
            }
        }
        repositories.sort_unstable();
        self.flow_list.repositories = repositories;
        self.rebuild_rows();
        let operations = self.analysis.operations.len();
        self.operations.select(self.operations.selected, operations);
        let steps = self.step_count();
        self.steps.select(self.steps.selected, steps);
    }

    pub fn flow(&self, id: u64) -> Option<&Flow> {
        let position = self.flow_positions.find(id, &self.flows, |flow| flow.id)?;
        self.flows.get(position)
    }

    pub fn flow_analysis(&self, id: u64) -> Option<&FlowAnalysis> {
        let flows = &self.analysis.flows;
        let position = self
            .analysis_positions
            .find(id, flows, |flow| flow.flow_id)?;
        flows.get(position)
    }

    /// The program that sent a flow, as the decoder named it.
    pub fn client_program(&self, id: u64) -> Option<&str> {
        self.flow_analysis(id)
            .and_then(|analysis| analysis.client.as_ref())
            .map(|client| client.program.as_str())
    }

    /// The flow got no answer (`Flow::error`), or the decoder judged it an
    /// error (a refused login, a denied push); a 401 challenge is not.
    pub fn failed(&self, flow: &Flow) -> bool {
        flow.error.is_some()
            || self.flow_analysis(flow.id).is_some_and(|analysis| {
                analysis
                    .annotations
                    .iter()
                    .any(|a| a.severity == regtap_decode::Severity::Error)
            })
    }

    /// The decoder's kind name of a flow; `…` while decoding.
    pub fn kind_label(&self, id: u64) -> &'static str {
        match self.flow_analysis(id) {
            Some(analysis) => analysis.kind.label(),
            None if self.decoding => "…",
            None => "-",
        }
    }

    pub fn selected_operation(&self) -> Option<&Operation> {
        self.analysis.operations.get(self.operations.selected())
    }

    pub fn selected_step(&self) -> Option<&Step> {
        self.selected_operation()
            .and_then(|operation| operation.steps.get(self.steps.selected()))
    }

    /// The flow under the cursor of the flows view.
    pub fn selected_flow(&self) -> Option<&Flow> {
        self.flow_list
            .rows
            .get(self.flow_list.cursor.selected())
            .and_then(|&position| self.flows.get(position))
    }

    fn step_count(&self) -> usize {
        self.selected_operation()
            .map_or(0, |operation| operation.steps.len())
    }

    /// Applies the search text and the kind filter, keeping the selected
    /// flow selected when it still shows; live, a selection on the last
    /// row follows the newest flow.
    fn rebuild_rows(&mut self) {
        let search = self
            .search_input
            .as_deref()
            .unwrap_or(&self.flow_list.search)
            .to_lowercase();
        if !search.is_empty() && self.search_text.is_none() {
            let texts = self
                .flows
                .iter()
                .map(|flow| self.search_text_of(flow))
                .collect();
            self.search_text = Some(texts);
        }
        let list = &self.flow_list;
        let previous_len = list.rows.len();
        let was_last =
            self.live.is_some() && previous_len > 0 && list.cursor.selected() + 1 >= previous_len;
        let selected_id = self.selected_flow().map(|flow| flow.id);
        let kind = list.kind;
        let client = list.client.as_deref();
        let repository = list.repository.as_deref();
        let failed_only = list.failed_only;
        let texts = self.search_text.as_deref().unwrap_or_default();
        let rows: Vec<usize> = self
            .flows
            .iter()
            .enumerate()
            .filter(|(position, flow)| {
                kind.is_none_or(|kind| self.kind_label(flow.id) == kind)
                    && client.is_none_or(|client| self.client_program(flow.id) == Some(client))
                    && repository.is_none_or(|repository| {
                        self.flow_analysis(flow.id)
                            .and_then(|a| a.kind.repository())
                            == Some(repository)
                    })
                    && (!failed_only || self.failed(flow))
                    && (search.is_empty()
                        || texts
                            .get(*position)
                            .is_some_and(|text| text.contains(&search)))
            })
            .map(|(position, _)| position)
            .collect();
        let target = if was_last {
            rows.len().saturating_sub(1)
        } else {
            selected_id
                .and_then(|id| rows.iter().position(|&p| self.flows[p].id == id))
                .unwrap_or(0)
        };
        self.flow_list.rows = rows;
        let len = self.flow_list.rows.len();
        self.flow_list.cursor.select(target, len);
    }

    /// What a search looks at in a flow, lowercased: method, URL, status,
    /// kind, the decoder's summary and the error.
    fn search_text_of(&self, flow: &Flow) -> String {
        let analysis = self.flow_analysis(flow.id);
        let mut text = format!("{} {}", flow.method(), flow.url());
        if let Some(status) = flow.status() {
            text.push_str(&format!(" {status}"));
        }
        if let Some(analysis) = analysis {
            text.push(' ');
            text.push_str(analysis.kind.label());
            text.push(' ');
            text.push_str(&analysis.summary);
        }
        if let Some(error) = &flow.error {
            text.push(' ');
            text.push_str(&error.message);
        }
        text.to_lowercase()
    }

    /// Handles one key press.
    pub fn handle_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::Continue;
        }
        self.notice = None;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        if self.search_input.is_some() {
            self.handle_search_key(key);
            return Action::Continue;
        }
        if self.help {
            match key.code {
                KeyCode::Char('q') => return Action::Quit,
                KeyCode::Char('?') | KeyCode::Esc | KeyCode::Enter => self.help = false,
                _ => {}
            }
            return Action::Continue;
        }
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('s') => {
                self.reveal_secrets = !self.reveal_secrets;
                self.notice = Some(if self.reveal_secrets {
                    "credentials shown (s hides them)".to_owned()
                } else {
                    "credentials hidden".to_owned()
                });
            }
            KeyCode::Char('1') => self.show(View::Operations),
            KeyCode::Char('2') => self.show(View::Sequence),
            KeyCode::Char('3') => self.show(View::Flows),
            KeyCode::Tab => self.cycle_pane(1),
            KeyCode::BackTab => self.cycle_pane(-1),
            KeyCode::Enter => self.drill_down(),
            KeyCode::Esc => self.back(),
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::Char('u') if ctrl => self.move_page(-1),
            KeyCode::Char('d') if ctrl => self.move_page(1),
            KeyCode::PageUp => self.move_page(-1),
            KeyCode::PageDown => self.move_page(1),
            KeyCode::Home | KeyCode::Char('g') => self.move_selection(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_selection(isize::MAX / 2),
            KeyCode::Left | KeyCode::Char('h') => self.left(),
            KeyCode::Right | KeyCode::Char('l') => self.right(),
            KeyCode::Char('n') => self.move_step(1),
            KeyCode::Char('p') => self.move_step(-1),
            KeyCode::Char(' ') => self.toggle_playback(),
            KeyCode::Char('+') | KeyCode::Char('=') => self.change_speed(true),
            KeyCode::Char('-') | KeyCode::Char('_') => self.change_speed(false),
            KeyCode::Char('/') => {
                self.show(View::Flows);
                self.search_input = Some(self.flow_list.search.clone());
            }
            KeyCode::Char('f') => self.cycle_kind_filter(),
            KeyCode::Char('F') => {
                self.flow_list.kind = None;
                self.rebuild_rows();
            }
            KeyCode::Char('c') => self.cycle_client_filter(),
            KeyCode::Char('C') => {
                self.flow_list.client = None;
                self.rebuild_rows();
            }
            KeyCode::Char('r') => self.cycle_repository_filter(),
            KeyCode::Char('R') => {
                self.flow_list.repository = None;
                self.rebuild_rows();
            }
            KeyCode::Char('x') => {
                self.flow_list.failed_only = !self.flow_list.failed_only;
                self.show(View::Flows);
                self.rebuild_rows();
            }
            _ => {}
        }
        Action::Continue
    }

    fn handle_search_key(&mut self, key: KeyEvent) {
        let Some(input) = self.search_input.as_mut() else {
            return;
        };
        match key.code {
            KeyCode::Enter => {
                self.flow_list.search = input.clone();
                self.search_input = None;
            }
            KeyCode::Esc => {
                self.flow_list.search.clear();
                self.search_input = None;
            }
            KeyCode::Backspace => {
                input.pop();
            }
            KeyCode::Char(c) => input.push(c),
            _ => return,
        }
        self.rebuild_rows();
    }

    /// Mouse wheel scrolls the focused pane.
    pub fn handle_mouse(&mut self, mouse: MouseEvent) {
        match mouse.kind {
            MouseEventKind::ScrollUp => self.move_selection(-1),
            MouseEventKind::ScrollDown => self.move_selection(1),
            _ => {}
        }
    }

    /// Advances playback by the time passed since the last tick.
    pub fn on_tick(&mut self, elapsed: Duration) {
        if !self.playback.playing {
            return;
        }
        self.playback.elapsed += elapsed;
        while self.playback.elapsed >= self.playback.interval {
            self.playback.elapsed -= self.playback.interval;
            if self.steps.selected() + 1 >= self.step_count() {
                self.playback.playing = false;
                self.playback.elapsed = Duration::ZERO;
                return;
            }
            self.move_step(1);
        }
    }

    fn show(&mut self, view: View) {
        self.view = view;
        self.focus = match view {
            View::Operations => Pane::Operations,
            View::Sequence => Pane::Diagram,
            View::Flows if self.flow_list.detail_open => Pane::Detail,
            View::Flows => Pane::Flows,
        };
    }

    fn panes(&self) -> &'static [Pane] {
        match self.view {
            View::Operations => &[Pane::Operations, Pane::Steps, Pane::Detail],
            View::Sequence => &[Pane::Diagram, Pane::Detail],
            View::Flows => &[Pane::Flows, Pane::Detail],
        }
    }

    fn focus_pane(&mut self, pane: Pane) {
        self.focus = pane;
        if self.view == View::Flows {
            self.flow_list.detail_open = pane == Pane::Detail;
        }
    }

    fn cycle_pane(&mut self, step: isize) {
        let panes = self.panes();
        let current = panes.iter().position(|&p| p == self.focus).unwrap_or(0);
        let next = (current as isize + step).rem_euclid(panes.len() as isize) as usize;
        self.focus_pane(panes[next]);
    }

    fn drill_down(&mut self) {
        match self.focus {
            Pane::Operations => self.focus_pane(Pane::Steps),
            Pane::Steps | Pane::Diagram | Pane::Flows => {
                self.detail_scroll = 0;
                self.focus_pane(Pane::Detail);
            }
            Pane::Detail if self.view == View::Flows => self.show_selected_flow_in_its_step(),
            Pane::Detail => {}
        }
    }

    /// From a flow's detail to the step of the operation it belongs to.
    fn show_selected_flow_in_its_step(&mut self) {
        let Some(id) = self.selected_flow().map(|flow| flow.id) else {
            return;
        };
        let Some(index) = self.flow_analysis(id).and_then(|a| a.operation) else {
            self.notice = Some(format!("flow #{id} belongs to no operation"));
            return;
        };
        let Some(operation) = self.analysis.operations.get(index) else {
            return;
        };
        let step = operation
            .steps
            .iter()
            .position(|step| step.flow_ids.contains(&id))
            .unwrap_or(0);
        let operations = self.analysis.operations.len();
        self.operations.select(index, operations);
        self.steps = Cursor::default();
        let steps = self.step_count();
        self.steps.select(step, steps);
        self.detail_scroll = 0;
        self.playback.playing = false;
        self.show(View::Operations);
        self.focus_pane(Pane::Steps);
    }

    fn back(&mut self) {
        match (self.view, self.focus) {
            (View::Operations, Pane::Detail) => self.focus_pane(Pane::Steps),
            (View::Operations, Pane::Steps) => self.focus_pane(Pane::Operations),
            (View::Sequence, Pane::Detail) => self.focus_pane(Pane::Diagram),
            (View::Sequence, _) => {
                self.playback.playing = false;
                self.show(View::Operations);
                self.focus_pane(Pane::Steps);
            }
            (View::Flows, Pane::Detail) => self.focus_pane(Pane::Flows),
            (View::Flows, _) => {
                self.flow_list.search.clear();
                self.flow_list.kind = None;
                self.flow_list.client = None;
                self.flow_list.repository = None;
                self.flow_list.failed_only = false;
                self.rebuild_rows();
            }
            (View::Operations, _) => {}
        }
    }

    fn left(&mut self) {
        if self.view == View::Sequence {
            self.move_step(-1);
        } else if self.focus != self.panes()[0] {
            self.cycle_pane(-1);
        }
    }

    fn right(&mut self) {
        if self.view == View::Sequence {
            self.move_step(1);
        } else if self.focus != Pane::Detail {
            self.cycle_pane(1);
        }
    }

    fn move_page(&mut self, direction: isize) {
        let page = match self.focus {
            Pane::Operations => self.operations.page(),
            Pane::Steps | Pane::Diagram => self.steps.page(),
            Pane::Flows => self.flow_list.cursor.page(),
            Pane::Detail => 10,
        };
        self.move_selection(direction * page);
    }

    fn move_selection(&mut self, delta: isize) {
        match self.focus {
            Pane::Operations => {
                let before = self.operations.selected();
                let len = self.analysis.operations.len();
                self.operations.move_by(delta, len);
                if self.operations.selected() != before {
                    self.steps = Cursor::default();
                    self.detail_scroll = 0;
                    self.playback.playing = false;
                }
            }
            Pane::Steps | Pane::Diagram => self.move_step(delta),
            Pane::Flows => {
                let len = self.flow_list.rows.len();
                self.flow_list.cursor.move_by(delta, len);
                self.detail_scroll = 0;
            }
            Pane::Detail => {
                let delta = i32::try_from(delta.clamp(-10_000, 10_000)).unwrap_or(0);
                let limit = self.detail_scroll_limit.get();
                let scroll = self.detail_scroll.min(limit);
                self.detail_scroll = scroll.saturating_add_signed(delta as i16).min(limit);
            }
        }
    }

    fn move_step(&mut self, delta: isize) {
        if self.view == View::Flows {
            return;
        }
        let len = self.step_count();
        self.steps.move_by(delta, len);
        self.detail_scroll = 0;
    }

    fn toggle_playback(&mut self) {
        if self.view != View::Sequence {
            return;
        }
        let playback = &mut self.playback;
        playback.playing = !playback.playing;
        playback.elapsed = Duration::ZERO;
        // Playing from the last step starts over.
        if playback.playing && self.steps.selected() + 1 >= self.step_count() {
            self.steps = Cursor::default();
        }
    }

    fn change_speed(&mut self, faster: bool) {
        let interval = self.playback.interval;
        self.playback.interval = if faster {
            (interval / 2).max(FASTEST_STEP)
        } else {
            (interval * 2).min(SLOWEST_STEP)
        };
    }

    fn cycle_kind_filter(&mut self) {
        let list = &mut self.flow_list;
        list.kind = match list.kind {
            None => list.kinds.first().copied(),
            Some(current) => {
                let position = list.kinds.iter().position(|&k| k == current);
                position.and_then(|p| list.kinds.get(p + 1)).copied()
            }
        };
        self.show(View::Flows);
        self.rebuild_rows();
    }

    fn cycle_client_filter(&mut self) {
        let list = &mut self.flow_list;
        list.client = match &list.client {
            None => list.clients.first().cloned(),
            Some(current) => {
                let position = list.clients.iter().position(|c| c == current);
                position.and_then(|p| list.clients.get(p + 1)).cloned()
            }
        };
        self.show(View::Flows);
        self.rebuild_rows();
    }

    fn cycle_repository_filter(&mut self) {
        let list = &mut self.flow_list;
        list.repository = match &list.repository {
            None => list.repositories.first().cloned(),
            Some(current) => {
                let position = list.repositories.iter().position(|r| r == current);
                position.and_then(|p| list.repositories.get(p + 1)).cloned()
            }
        };
        self.show(View::Flows);
        self.rebuild_rows();
    }

    /// Takes in one live event. Finished flows go to the relinker and wait
    /// until their analysis comes back ([`App::poll_refresh`]).
    pub fn apply(&mut self, event: LiveEvent) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        match event {
            LiveEvent::Started {
                id,
                method,
                url,
                at,
            } => {
                live.in_flight.insert(
                    id,
                    Transfer {
                        id,
                        method,
                        url,
                        started_at: at,
                        request: None,
                        response: None,
                    },
                );
            }
            LiveEvent::Progress {
                id,
                direction,
                bytes,
                total,
                at,
            } => {
                let Some(transfer) = live.in_flight.get_mut(&id) else {
                    return;
                };
                let side = match direction {
                    Direction::Request => &mut transfer.request,
                    Direction::Response => &mut transfer.response,
                };
                match side {
                    Some(progress) => {
                        progress.bytes = bytes;
                        progress.total = total.or(progress.total);
                        progress.last_at = at;
                    }
                    None => {
                        *side = Some(BodyProgress {
                            bytes,
                            total,
                            first_bytes: bytes,
                            first_at: at,
                            last_at: at,
                        });
                    }
                }
            }
            LiveEvent::Finished(flow) => {
                live.in_flight.remove(&flow.id);
                live.relinker.push((*flow).clone());
                live.pending.push(*flow);
            }
        }
    }

    /// The source dropped `count` events: said on screen, since flows may
    /// be missing (the capture file has them all).
    pub fn missed_live_events(&mut self, count: u64) {
        if let Some(live) = self.live.as_mut() {
            live.missed = live.missed.saturating_add(count);
        }
    }

    /// The source of live events has gone.
    pub fn end_live(&mut self) {
        if let Some(live) = self.live.as_mut() {
            live.ended = true;
            live.in_flight.clear();
        }
    }

    /// Live flows are waiting to be shown.
    pub fn needs_refresh(&self) -> bool {
        self.live
            .as_ref()
            .is_some_and(|live| !live.pending.is_empty())
    }

    /// Waits for the analysis of every finished live flow and shows them.
    pub fn refresh(&mut self) {
        let linked = self.live.as_mut().and_then(|live| live.relinker.complete());
        self.take_in(linked);
    }

    /// Shows the finished live flows the relinker has analysed by now, if
    /// any; never waits. The cost on this thread is that of merging them
    /// into the shown list, whatever linking the capture takes.
    pub fn poll_refresh(&mut self) {
        let linked = self.live.as_mut().and_then(|live| live.relinker.latest());
        self.take_in(linked);
    }

    fn take_in(&mut self, linked: Option<Linked>) {
        let (Some(live), Some(linked)) = (self.live.as_mut(), linked) else {
            return;
        };
        let covered = linked
            .covers
            .saturating_sub(live.shown)
            .min(live.pending.len());
        live.shown += covered;
        self.analysis = linked.analysis;
        for flow in live.pending.drain(..covered) {
            let key = (flow.timing.request_start, flow.id);
            let position = self
                .flows
                .partition_point(|f| (f.timing.request_start, f.id) < key);
            Arc::make_mut(&mut self.flows).insert(position, flow);
        }
        self.reindex();
    }
}

/// Where a flow id sits in a list. Ids grow in the order requests start, so
/// a list in start order is nearly always in id order too and needs no map
/// (building one for 100,000 flows costs more than searching).
#[derive(Debug)]
enum IdIndex {
    Ascending,
    Map(HashMap<u64, usize>),
}

impl IdIndex {
    fn of(ids: impl Iterator<Item = u64> + Clone) -> IdIndex {
        if ids.clone().is_sorted() {
            IdIndex::Ascending
        } else {
            IdIndex::Map(
                ids.enumerate()
                    .map(|(position, id)| (id, position))
                    .collect(),
            )
        }
    }

    fn find<T>(&self, id: u64, items: &[T], id_of: impl Fn(&T) -> u64) -> Option<usize> {
        match self {
            IdIndex::Ascending => items.binary_search_by_key(&id, id_of).ok(),
            IdIndex::Map(positions) => positions.get(&id).copied(),
        }
    }
}

/// Flows by `(request_start, id)`. Captures are written as flows finish,
/// so they are nearly in start order; the keys are sorted rather than the
/// (large) flows, which then move once.
fn time_ordered(flows: Vec<Flow>) -> Vec<Flow> {
    let key = |flow: &Flow| (flow.timing.request_start, flow.id);
    if flows.is_sorted_by_key(key) {
        return flows;
    }
    let mut order: Vec<(i64, u64, usize)> = flows
        .iter()
        .enumerate()
        .map(|(position, flow)| (flow.timing.request_start, flow.id, position))
        .collect();
    order.sort_unstable();
    let mut slots: Vec<Option<Flow>> = flows.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|(_, _, position)| slots.get_mut(position).and_then(Option::take))
        .collect()
}

#[cfg(test)]
mod tests;
