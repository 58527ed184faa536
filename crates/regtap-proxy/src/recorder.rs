//! One exchange while it is in flight. The handler, the request body and the
//! response body each hold the same [`FlowRecorder`]; the flow is written once
//! both bodies have ended (or failed), or when the last holder lets go. Before
//! that, the capture gets a start record (before anything is forwarded), the
//! response head, and the bytes streamed so far, so that a killed proxy still
//! leaves every started exchange in the capture.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak, mpsc};

use regtap_capture::{
    Direction, ErrorStage, Flow, FlowError, Headers, InFlightRecord, LiveEvent, Request, Response,
    Timing, now_ns,
};
use tokio::sync::{broadcast, oneshot, watch};

use crate::tap::{BodyStore, BodyTap, InlineBudget, InlineHold};
use crate::writer::Record;

/// What every flow of one proxy shares.
pub(crate) struct Shared {
    next_id: AtomicU64,
    records: mpsc::Sender<Record>,
    pub(crate) live: broadcast::Sender<LiveEvent>,
    in_flight: Mutex<HashMap<u64, Weak<FlowRecorder>>>,
    max_inline: usize,
    inline_budget: Arc<InlineBudget>,
    store: Option<BodyStore>,
    /// `http://<listen address>`: the URL of failures on connections to the
    /// proxy itself, before any request.
    proxy_url: String,
}

impl Shared {
    /// `first_id`: the id of the first exchange (a capture appended to
    /// continues after its highest id).
    pub(crate) fn new(
        listen: SocketAddr,
        records: mpsc::Sender<Record>,
        live: broadcast::Sender<LiveEvent>,
        first_id: u64,
        max_inline: usize,
        inline_budget: Arc<InlineBudget>,
        store: Option<BodyStore>,
    ) -> Self {
        Shared {
            next_id: AtomicU64::new(first_id),
            records,
            live,
            in_flight: Mutex::new(HashMap::new()),
            max_inline,
            inline_budget,
            store,
            proxy_url: format!("http://{listen}"),
        }
    }

    /// Records something that went wrong on a client connection outside any
    /// HTTP exchange (a timeout, a refused connection, a protocol error): a
    /// flow with an empty method, the client's address and the error; its URL
    /// is the tunnel's (`https://host[:port]`) when it came through a
    /// CONNECT, so that it is listed with that server's traffic, else the
    /// proxy's own (`http://127.0.0.1:8080`).
    pub(crate) fn record_connection_failure(
        &self,
        client_addr: SocketAddr,
        connect_authority: Option<String>,
        stage: ErrorStage,
        message: String,
    ) {
        let scheme = if connect_authority.is_some() {
            "https"
        } else {
            "http"
        };
        let url = connect_authority
            .as_deref()
            .map_or_else(|| self.proxy_url.clone(), tunnel_url);
        self.record_failure(
            client_addr,
            connect_authority,
            scheme,
            Request {
                method: String::new(),
                url,
                http_version: String::new(),
                headers: Headers::default(),
                body: regtap_capture::Body::from_bytes(b""),
            },
            FlowError { stage, message },
        );
    }

    /// Records a CONNECT tunnel whose TLS handshake with the client failed.
    pub(crate) fn record_client_tls_failure(
        &self,
        client_addr: SocketAddr,
        connect_authority: String,
        message: String,
    ) {
        self.record_failure(
            client_addr,
            Some(connect_authority.clone()),
            "https",
            Request {
                method: "CONNECT".to_owned(),
                url: tunnel_url(&connect_authority),
                http_version: "HTTP/1.1".to_owned(),
                headers: Headers::default(),
                body: regtap_capture::Body::from_bytes(b""),
            },
            FlowError {
                stage: ErrorStage::ClientTls,
                message,
            },
        );
    }

    /// Records a reverse-mode TLS handshake with the client that failed;
    /// `served` is the origin the client was after, when known.
    pub(crate) fn record_reverse_tls_failure(
        &self,
        client_addr: SocketAddr,
        served: String,
        message: String,
    ) {
        self.record_failure(
            client_addr,
            None,
            "https",
            Request {
                method: String::new(),
                url: served,
                http_version: String::new(),
                headers: Headers::default(),
                body: regtap_capture::Body::from_bytes(b""),
            },
            FlowError {
                stage: ErrorStage::ClientTls,
                message,
            },
        );
    }

    /// Records a request regtap answered itself without forwarding it (a
    /// client outside `--allow-client`, a host reverse mode does not serve).
    pub(crate) fn record_refused_request(
        &self,
        client_addr: SocketAddr,
        scheme: &str,
        request: Request,
        error: FlowError,
    ) {
        self.record_failure(client_addr, None, scheme, request, error);
    }

    fn record_failure(
        &self,
        client_addr: SocketAddr,
        connect_authority: Option<String>,
        scheme: &str,
        request: Request,
        error: FlowError,
    ) {
        let at = now_ns();
        let flow = Flow {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            client_addr: Some(client_addr.to_string()),
            connect_authority,
            server_addr: None,
            upstream_proxy: None,
            scheme: scheme.to_owned(),
            request,
            response: None,
            timing: Timing {
                request_start: at,
                ..Timing::default()
            },
            error: Some(error),
            reverse: None,
        };
        self.send(flow, Vec::new());
    }

    /// Finishes every exchange still in flight with `reason` (the proxy stops).
    pub(crate) fn abandon_in_flight(&self, reason: &str) {
        let in_flight: Vec<_> = match self.in_flight.lock() {
            Ok(map) => map.values().filter_map(Weak::upgrade).collect(),
            Err(_) => return,
        };
        for recorder in in_flight {
            recorder.abandon(reason);
        }
    }

    fn send(&self, flow: Flow, holds: Vec<InlineHold>) {
        // After shutdown the writer is gone; nothing is left to record into.
        let _ = self.records.send(Record::Flow {
            flow: Box::new(flow),
            holds,
        });
    }

    fn send_in_flight(&self, record: InFlightRecord) {
        let _ = self.records.send(Record::InFlight(record));
    }
}

/// `https://registry.test` for a tunnel to `registry.test:443`.
fn tunnel_url(authority: &str) -> String {
    let host = authority.strip_suffix(":443").unwrap_or(authority);
    format!("https://{host}")
}

/// The request as it arrived, before its body.
pub(crate) struct RequestHead {
    pub client_addr: Option<String>,
    pub connect_authority: Option<String>,
    pub server_addr: Option<String>,
    pub upstream_proxy: Option<String>,
    pub scheme: String,
    pub request: Request,
    /// Reverse mode: the origin served and the request's rewrites.
    pub reverse: Option<regtap_capture::ReverseExchange>,
}

#[derive(Default)]
struct Side {
    tap: Option<BodyTap>,
    ended: bool,
    complete: bool,
}

struct State {
    /// `None` once written.
    flow: Option<Flow>,
    request: Side,
    response: Side,
    /// False once it is known no response will come (upstream failure).
    response_expected: bool,
    /// An error reported by a body stream or the upstream client; the first wins.
    error: Option<FlowError>,
    /// An error inferred from a body that was dropped before its end; used when
    /// nothing more precise was reported.
    inferred_error: Option<FlowError>,
}

pub(crate) struct FlowRecorder {
    id: u64,
    shared: Arc<Shared>,
    state: Mutex<State>,
    /// True once the request body has ended (the upstream's turn to answer).
    request_sent: watch::Sender<bool>,
}

/// How one side's body stream ended.
pub(crate) enum SideEnd {
    /// The stream reached its end.
    Complete,
    /// The stream yielded an error.
    Failed(String),
    /// No bytes moved for too long; the message says how long.
    TimedOut(String),
    /// The body was dropped; `at_end` tells whether everything had been read.
    Dropped { at_end: bool },
}

impl FlowRecorder {
    /// Registers a new exchange, sends its start record to the capture and
    /// announces it to live subscribers. The receiver says whether the start
    /// record was written.
    pub(crate) fn start(
        shared: &Arc<Shared>,
        head: RequestHead,
    ) -> (Arc<FlowRecorder>, oneshot::Receiver<bool>) {
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let at = now_ns();
        let _ = shared.live.send(LiveEvent::Started {
            id,
            method: head.request.method.clone(),
            url: head.request.url.clone(),
            at,
        });
        let tap = |side: &str| {
            BodyTap::new(
                shared.max_inline,
                Some(Arc::clone(&shared.inline_budget)),
                shared.store.clone(),
                format!("{}-{id}-{side}", std::process::id()),
            )
        };
        let flow = Flow {
            id,
            client_addr: head.client_addr,
            connect_authority: head.connect_authority,
            server_addr: head.server_addr,
            upstream_proxy: head.upstream_proxy,
            scheme: head.scheme,
            request: head.request,
            response: None,
            timing: Timing {
                request_start: at,
                ..Timing::default()
            },
            error: None,
            reverse: head.reverse,
        };
        let (written, start_recorded) = oneshot::channel();
        let _ = shared.records.send(Record::Start {
            flow: Box::new(flow.clone()),
            written,
        });
        let recorder = Arc::new(FlowRecorder {
            id,
            request_sent: watch::Sender::new(false),
            shared: Arc::clone(shared),
            state: Mutex::new(State {
                flow: Some(flow),
                request: Side {
                    tap: Some(tap("request")),
                    ..Side::default()
                },
                response: Side {
                    tap: Some(tap("response")),
                    ..Side::default()
                },
                response_expected: true,
                error: None,
                inferred_error: None,
            }),
        });
        if let Ok(mut in_flight) = shared.in_flight.lock() {
            in_flight.insert(id, Arc::downgrade(&recorder));
        }
        (recorder, start_recorded)
    }

    /// Resolves once the whole request body has gone upstream (or failed).
    pub(crate) async fn request_sent(&self) {
        let mut sent = self.request_sent.subscribe();
        let _ = sent.wait_for(|sent| *sent).await;
    }

    /// Writes the bytes streamed so far to the capture (a killed proxy then
    /// leaves them behind).
    pub(crate) fn record_progress(&self) {
        let Ok(state) = self.state.lock() else {
            return;
        };
        if state.flow.is_none() {
            return;
        }
        let size = |side: &Side| side.tap.as_ref().map_or(0, BodyTap::size);
        self.shared.send_in_flight(InFlightRecord::Progress {
            id: self.id,
            at: now_ns(),
            request_bytes: size(&state.request),
            response_bytes: size(&state.response),
        });
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn live(&self) -> &broadcast::Sender<LiveEvent> {
        &self.shared.live
    }

    /// Counts, hashes and keeps `data`; returns the bytes seen so far on that side.
    pub(crate) fn data(&self, direction: Direction, data: &[u8]) -> u64 {
        let Ok(mut state) = self.state.lock() else {
            return 0;
        };
        match side_mut(&mut state, direction).tap.as_mut() {
            Some(tap) => {
                tap.push(data);
                tap.size()
            }
            None => 0,
        }
    }

    /// The response head arrived from upstream.
    pub(crate) fn response_head(&self, response: Response, server_addr: Option<String>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Some(flow) = state.flow.as_mut() {
            let at = now_ns();
            flow.timing.response_head = Some(at);
            self.shared.send_in_flight(InFlightRecord::ResponseHead {
                id: self.id,
                at,
                response: response.clone(),
            });
            flow.response = Some(response);
            if server_addr.is_some() {
                flow.server_addr = server_addr;
            }
        }
    }

    /// Reverse mode: what regtap changed in the response head the client got.
    pub(crate) fn response_rewrites(&self, rewrites: Vec<regtap_capture::Rewrite>) {
        if rewrites.is_empty() {
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Some(reverse) = state.flow.as_mut().and_then(|f| f.reverse.as_mut()) {
            reverse.rewrites.extend(rewrites);
        }
    }

    /// No response will come from upstream: `error` says why.
    pub(crate) fn upstream_failed(&self, error: FlowError) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.error.get_or_insert(error);
        state.response_expected = false;
        self.finish_if_done(&mut state);
    }

    /// One side's body stream ended.
    pub(crate) fn end(&self, direction: Direction, end: SideEnd) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let now = now_ns();
        let side = side_mut(&mut state, direction);
        if side.ended {
            return;
        }
        side.ended = true;
        let seen = side.tap.as_ref().map_or(0, BodyTap::size);
        let (stage, what) = match direction {
            Direction::Request => (ErrorStage::Request, "request"),
            Direction::Response => (ErrorStage::Response, "response"),
        };
        match end {
            SideEnd::Complete | SideEnd::Dropped { at_end: true } => side.complete = true,
            SideEnd::Failed(reason) => {
                state.error.get_or_insert(FlowError {
                    stage,
                    message: format!("{what} body failed after {seen} bytes: {reason}"),
                });
            }
            SideEnd::TimedOut(reason) => {
                state.error.get_or_insert(FlowError {
                    stage: ErrorStage::BodyTimeout,
                    message: format!("{what} body stalled after {seen} bytes: {reason}"),
                });
            }
            SideEnd::Dropped { at_end: false } => {
                let message = match direction {
                    Direction::Request => {
                        format!("request body cut off after {seen} bytes")
                    }
                    Direction::Response => format!(
                        "response body cut off after {seen} bytes (the client stopped reading)"
                    ),
                };
                state
                    .inferred_error
                    .get_or_insert(FlowError { stage, message });
            }
        }
        if let Some(flow) = state.flow.as_mut() {
            match direction {
                Direction::Request => flow.timing.request_end = Some(now),
                Direction::Response => flow.timing.response_end = Some(now),
            }
        }
        if direction == Direction::Request {
            self.request_sent.send_replace(true);
        }
        self.finish_if_done(&mut state);
    }

    /// The proxy is stopping while this exchange is in flight.
    fn abandon(&self, reason: &str) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let stage = if state.request.ended {
            ErrorStage::Response
        } else {
            ErrorStage::Request
        };
        state.error.get_or_insert(FlowError {
            stage,
            message: reason.to_owned(),
        });
        self.finish(&mut state);
    }

    fn finish_if_done(&self, state: &mut State) {
        let response_done = state.response.ended || !state.response_expected;
        if state.request.ended && response_done {
            self.finish(state);
        }
    }

    /// Writes the flow with whatever is known; sides that have not ended are
    /// recorded as cut off.
    fn finish(&self, state: &mut State) {
        let Some(mut flow) = state.flow.take() else {
            return;
        };
        let mut holds = Vec::new();
        if let Some(tap) = state.request.tap.take() {
            let (body, hold) = tap.finish(state.request.complete);
            flow.request.body = body;
            holds.push(hold);
        }
        let response_tap = state.response.tap.take();
        if let (Some(response), Some(tap)) = (flow.response.as_mut(), response_tap) {
            let (body, hold) = tap.finish(state.response.complete);
            response.body = body;
            holds.push(hold);
        }
        if flow.response.is_none() && state.error.is_none() && state.inferred_error.is_none() {
            state.error = Some(FlowError {
                stage: ErrorStage::Response,
                message: "no response: the exchange ended before the upstream answered".to_owned(),
            });
        }
        flow.error = state.error.take().or_else(|| state.inferred_error.take());
        if let Ok(mut in_flight) = self.shared.in_flight.lock() {
            in_flight.remove(&self.id);
        }
        self.shared.send(flow, holds);
    }
}

fn side_mut(state: &mut State, direction: Direction) -> &mut Side {
    match direction {
        Direction::Request => &mut state.request,
        Direction::Response => &mut state.response,
    }
}

impl Drop for FlowRecorder {
    /// The last holder let go before the exchange finished (for instance the
    /// client hung up while the proxy waited for the upstream): record what we have.
    fn drop(&mut self) {
        let Ok(state) = self.state.get_mut() else {
            return;
        };
        if state.flow.is_none() {
            return;
        }
        let mut state = std::mem::replace(
            state,
            State {
                flow: None,
                request: Side::default(),
                response: Side::default(),
                response_expected: false,
                error: None,
                inferred_error: None,
            },
        );
        self.finish(&mut state);
    }
}
