//! How long the analysis takes on big captures: batch, and live (a flow
//! pushed, then the analysis asked for, as the TUI does).
//!
//!     cargo bench -p regtap-decode --bench analyze

use regtap_fixtures as common;

use std::time::{Duration, Instant};

use regtap_capture::Flow;
use regtap_decode::{Analyzer, Options, analyze};

/// `copies` times the whole dockerd reference sequence (79 flows each), one
/// after the other, with fresh ids, times and upload ids.
fn capture(copies: usize) -> Vec<Flow> {
    let one = common::whole_reference();
    let mut flows = Vec::with_capacity(one.len() * copies);
    for copy in 0..copies {
        for flow in &one {
            let mut f = flow.clone();
            f.id += (copy * 1000) as u64;
            // Upload ids are unique per registry.
            let fresh = format!("uuid-{copy}-");
            f.request.url = f.request.url.replace("uuid-", &fresh);
            if let Some(response) = f.response.as_mut() {
                for header in &mut response.headers.0 {
                    if let regtap_capture::Data::Text(value) = &mut header.1 {
                        *value = value.replace("uuid-", &fresh);
                    }
                }
            }
            let shift = (copy as i64) * 10_000_000_000;
            f.timing.request_start += shift;
            for t in [
                &mut f.timing.request_end,
                &mut f.timing.response_head,
                &mut f.timing.response_end,
            ]
            .into_iter()
            .flatten()
            {
                *t += shift;
            }
            flows.push(f);
        }
    }
    flows
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let options = Options::default();
    for copies in [1, 10, 50] {
        let flows = capture(copies);
        let batch = best_of(5, || analyze(&flows, &options));
        let mut analyzer = Analyzer::new(options.clone());
        for f in &flows {
            analyzer.push(f);
        }
        let relink = best_of(5, || analyzer.analysis());
        println!(
            "{:>5} flows: analyze {:>9.2?} ({:>6.1} µs/flow); analysis() of a filled Analyzer {:>9.2?}",
            flows.len(),
            batch,
            batch.as_secs_f64() * 1e6 / flows.len() as f64,
            relink,
        );
    }
    // Live: the TUI asks for the analysis after every flow.
    let flows = capture(10);
    let start = Instant::now();
    let mut analyzer = Analyzer::new(options);
    for f in &flows {
        analyzer.push(f);
        std::hint::black_box(analyzer.analysis());
    }
    println!(
        "{:>5} flows live, analysis() after each push: {:.2?} in all",
        flows.len(),
        start.elapsed()
    );
}
