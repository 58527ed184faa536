//! Shared by the fuzz targets: one flow around a fuzzed part, and the whole
//! pipeline (decoder, text rendering, redacted HAR export) run over flows.

use regtap_capture::Flow;
use regtap_capture::factory::FlowBuilder;
use regtap_decode::{Analyzer, Options, analyze, render_text};
use regtap_har::redact::Salt;
use regtap_har::{ExportOptions, export};

/// The decoder over flows, as `inspect --json` runs it: what the parser
/// targets need, without the costlier rendering and export.
pub fn decode(flows: &[Flow]) {
    let options = Options {
        registry_secret: Some(b"fuzz".to_vec()),
    };
    let _ = serde_json::to_string(&analyze(flows, &options));
}

/// Everything a user can run over flows: batch and live decoding, the text
/// of `inspect`, `inspect --json`, and a redacted HAR export.
pub fn run_pipeline(flows: &[Flow]) {
    let options = Options {
        registry_secret: Some(b"fuzz".to_vec()),
    };
    let analysis = analyze(flows, &options);
    let mut live = Analyzer::new(options);
    for flow in flows.iter().rev() {
        live.push(flow);
    }
    let _ = live.analysis();
    let _ = render_text(&analysis, flows, false);
    let _ = serde_json::to_string(&analysis);
    let export_options = ExportOptions {
        salt: Salt::from_bytes([0; 16]),
        ..ExportOptions::default()
    };
    if let Ok(exported) = export(flows, &analysis, &export_options) {
        let _ = serde_json::to_vec(&exported.har);
    }
}

/// A token-auth exchange whose response carries `status`, `headers` and `body`.
pub fn response_flow(
    id: u64,
    method: &str,
    url: &str,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Flow {
    let mut builder = FlowBuilder::new(id, method, url).status(status);
    for (name, value) in headers {
        builder = builder.response_header(name, value);
    }
    builder.response_body(body).build()
}
