//! The TUI's state and everything that changes it: keys, mouse and playback
//! ticks ([`navigation`]), live events ([`ingest`]), and the indexes and rows
//! derived from the flows ([`index`]). Nothing here draws; `ui` reads this
//! state.

mod index;
mod ingest;
mod navigation;

use index::{IdIndex, time_ordered};

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use regtap_capture::{Direction, Flow, UnixNanos};
use regtap_decode::{Analysis, FlowAnalysis, Operation, Options, Step};

use crate::relink::Relinker;

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
    /// Finished flows not yet merged into the shown list (see [`App::refresh`]).
    pending: Vec<Arc<Flow>>,
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
    /// decoder (see [`App::decoding`]).
    pub flows: Vec<Arc<Flow>>,
    pub analysis: Analysis,
    /// The analysis is still being computed: kinds and operations are not known yet.
    pub decoding: bool,
    /// While decoding: every flow is decoded, and they are being linked
    /// into operations.
    pub linking: bool,
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
        let mut analyzer = regtap_decode::Analyzer::new(options.clone());
        for flow in &app.flows {
            analyzer.push_shared(Arc::clone(flow));
        }
        app.set_analysis(analyzer.finish());
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
    /// Decode [`App::flows`] (shared, not copied: see
    /// [`regtap_decode::Analyzer::push_shared`]) on another thread.
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
        self.linking = false;
        self.reindex();
    }

    /// The state for live traffic: empty until [`App::apply`] brings flows.
    pub fn live(options: Options) -> App {
        let live = Live {
            relinker: Relinker::new(options),
            pending: Vec::new(),
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

    fn empty(title: String, flows: Vec<Arc<Flow>>, analysis: Analysis, live: Option<Live>) -> App {
        App {
            title,
            flows,
            analysis,
            decoding: false,
            linking: false,
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

    pub fn flow(&self, id: u64) -> Option<&Flow> {
        let position = self.flow_positions.find(id, &self.flows, |flow| flow.id)?;
        self.flows.get(position).map(Arc::as_ref)
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

    /// The decoder's kind name of a flow; `…` until its analysis comes.
    pub fn kind_label(&self, id: u64) -> &'static str {
        match self.flow_analysis(id) {
            Some(analysis) => analysis.kind.label(),
            None if self.decoding || self.unlinked() > 0 => "…",
            None => "-",
        }
    }

    /// Live flows shown that the analysis does not cover yet: their kinds
    /// and operations are still being linked.
    pub fn unlinked(&self) -> usize {
        self.live.as_ref().map_or(0, |live| live.relinker.behind())
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
            .map(Arc::as_ref)
    }

    fn step_count(&self) -> usize {
        self.selected_operation()
            .map_or(0, |operation| operation.steps.len())
    }
}

#[cfg(test)]
mod tests;
