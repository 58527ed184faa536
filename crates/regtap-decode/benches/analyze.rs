//! How long the analysis takes on big captures (1k, 10k and 100k flows):
//! batch, and live (the flows replayed into an `Analyzer`: the cost of one
//! more flow, of linking them all once, and of a whole replay linked as
//! the TUI's relinker does, when due).
//!
//!     cargo bench -p regtap-decode --bench analyze

use regtap_fixtures as common;

use std::time::{Duration, Instant};

use regtap_decode::{Analyzer, Options, analyze};

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
    // Batch, and the link pass alone, at growing sizes: time per flow
    // should stay flat.
    for copies in [13, 127, 1266] {
        let flows = common::reference_repeated(copies);
        let runs = if copies > 200 { 1 } else { 3 };
        let batch = best_of(runs, || analyze(&flows, &options));
        // Live: the cost of pushing one more flow (its decoding) at 1k, 10k
        // and 100k flows already pushed, and of linking them all once (what
        // the TUI's relinker does after each burst, off the UI thread).
        let mut analyzer = Analyzer::new(options.clone());
        let (first, last) = flows.split_at(flows.len() - 1000);
        for f in first {
            analyzer.push(f);
        }
        let start = Instant::now();
        for f in last {
            analyzer.push(f);
        }
        let push = start.elapsed() / 1000;
        let relink = best_of(runs, || analyzer.analysis());
        println!(
            "{:>6} flows: analyze {:>9.2?} ({:>5.1} µs/flow); live push {:>7.2?}/flow; \
             link all {:>9.2?} ({:>5.1} µs/flow)",
            flows.len(),
            batch,
            batch.as_secs_f64() * 1e6 / flows.len() as f64,
            push,
            relink,
            relink.as_secs_f64() * 1e6 / flows.len() as f64,
        );
        // A whole live replay: every flow pushed, linked whenever
        // `link_due`, and linked whole at the end (the relinker's growth
        // schedule). Per flow, this should stay flat as the capture grows.
        let start = Instant::now();
        let mut live = Analyzer::new(options.clone());
        let mut links = 0;
        for f in &flows {
            live.push(f);
            if live.link_due() {
                std::hint::black_box(live.link());
                links += 1;
            }
        }
        std::hint::black_box(live.link());
        let replay = start.elapsed();
        println!(
            "{:>6} flows: live replay linked when due ({} links) {:>9.2?} ({:>5.1} µs/flow)",
            flows.len(),
            links + 1,
            replay,
            replay.as_secs_f64() * 1e6 / flows.len() as f64,
        );
        // What linking after every new flow (the relinker of old, when flows
        // came slower than it linked) cost: quadratic, so only at 1k flows.
        if copies < 100 {
            let start = Instant::now();
            let mut every = Analyzer::new(options.clone());
            for f in &flows {
                every.push(f);
                std::hint::black_box(every.link());
            }
            let replay = start.elapsed();
            println!(
                "{:>6} flows: live replay linked after every flow {:>9.2?} ({:>5.1} µs/flow)",
                flows.len(),
                replay,
                replay.as_secs_f64() * 1e6 / flows.len() as f64,
            );
        }
    }
}
