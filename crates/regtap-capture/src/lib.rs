//! regtap's shared data: the [`Flow`] model and the capture file.
//!
//! This crate does no networking. Every other regtap crate speaks in its types:
//! the proxy writes flows, the decoder reads them, the TUI and HAR export show them.

pub mod factory;
mod file;
mod model;
mod parse_ahead;

pub use file::{
    BadLine, Capture, CaptureError, CaptureHeader, CaptureReader, CaptureSettings, CaptureWriter,
    ChainedProxySetting, ClientTlsSetting, ExistingCapture, FORMAT_MAJOR, FORMAT_MINOR,
    FORMAT_NAME, FlowLines, FlowLocation, InFlightRecord, ProxyMode, ReverseSettings,
    ReverseUpstream, TimeoutSettings, UpstreamProxySettings, now_ns, rfc3339,
};
pub use model::{
    Body, Data, Direction, Elsewhere, Ending, ErrorStage, Flow, FlowError, Header, Headers, Kept,
    LiveEvent, Request, Response, ReverseExchange, Rewrite, Timing, TruncationReason, UnixNanos,
    human_bytes, reason_phrase, sha256_hex,
};
