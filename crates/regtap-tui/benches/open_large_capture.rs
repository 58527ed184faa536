//! How long the TUI takes to open a capture of 100,000 flows and to draw a
//! frame while scrolling it, and what live traffic of as many flows costs
//! its UI thread per frame. Figures, not assertions:
//! `cargo bench -p regtap-tui --bench open_large_capture`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use regtap_capture::factory::FlowBuilder;
use regtap_capture::{Flow, LiveEvent};
use regtap_decode::{Analyzer, Options};
use regtap_tui::{App, draw};

const FLOWS: u64 = 100_000;
const FRAMES: u32 = 200;

/// Pulls of one image again and again: API check, token, manifest, blobs.
fn synthetic_capture() -> Vec<Flow> {
    let registry = "https://registry.test:5000";
    let digest = format!("sha256:{}", "ab".repeat(32));
    (1..=FLOWS)
        .map(|id| {
            let repository = format!("lab/app{}", id / 8);
            let builder = match id % 8 {
                0 => FlowBuilder::new(id, "GET", &format!("{registry}/v2/"))
                    .status(401)
                    .response_header(
                        "WWW-Authenticate",
                        r#"Bearer realm="https://auth.test/token",service="registry.test""#,
                    ),
                1 => FlowBuilder::new(
                    id,
                    "GET",
                    &format!(
                        "https://auth.test/token?scope=repository:{repository}:pull&service=registry.test"
                    ),
                )
                .status(200)
                .response_body(br#"{"token":"opaque","expires_in":300}"#),
                2 => FlowBuilder::new(
                    id,
                    "HEAD",
                    &format!("{registry}/v2/{repository}/manifests/latest"),
                )
                .status(200),
                _ => FlowBuilder::new(
                    id,
                    "GET",
                    &format!("{registry}/v2/{repository}/blobs/{digest}"),
                )
                .status(200)
                .response_body_summary(1 << 20, &"ab".repeat(32)),
            };
            builder.build()
        })
        .collect()
}

fn main() {
    let flows = synthetic_capture();
    let mut terminal = match Terminal::new(TestBackend::new(200, 60)) {
        Ok(terminal) => terminal,
        Err(never) => match never {},
    };

    // What `regtap tui` does before its first frame: the decoder then runs
    // on another thread.
    let start = Instant::now();
    let mut app = App::decoding("synthetic", flows);
    let drawn = terminal.draw(|frame| draw(frame, &app));
    black_box(drawn.is_ok());
    let first_frame = start.elapsed();
    let start = Instant::now();
    let mut analyzer = Analyzer::new(Options::default());
    for flow in &app.flows {
        analyzer.push_shared(Arc::clone(flow));
    }
    let analysis = analyzer.finish();
    let decoded = start.elapsed();
    let start = Instant::now();
    app.set_analysis(analysis);
    let taken_in = start.elapsed();
    println!(
        "{FLOWS} flows: first frame after {:.0} ms; the decoder takes {:.0} ms on its thread, \
         and the TUI {:.0} ms to take its analysis in ({} operations)",
        first_frame.as_secs_f64() * 1e3,
        decoded.as_secs_f64() * 1e3,
        taken_in.as_secs_f64() * 1e3,
        app.analysis.operations.len()
    );

    for (view, keys) in [("operations", "1"), ("sequence", "2"), ("flows", "3")] {
        for c in keys.chars() {
            app.handle_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        }
        let start = Instant::now();
        for _ in 0..FRAMES {
            app.handle_key(KeyEvent::new(KeyCode::Char('j'), KeyModifiers::NONE));
            let drawn = terminal.draw(|frame| draw(frame, &app));
            black_box(drawn.is_ok());
        }
        let per_frame = start.elapsed() / FRAMES;
        println!(
            "{view} view, 200x60, scrolling: {:.2} ms per frame",
            per_frame.as_secs_f64() * 1e3
        );
    }
    let start = Instant::now();
    for c in "/lab/app777".chars() {
        app.handle_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
    println!(
        "search typed over {FLOWS} flows (11 keys, the first builds the index): {:.0} ms, {} flows match",
        start.elapsed().as_secs_f64() * 1e3,
        app.flow_list.rows.len()
    );
    live_replay(synthetic_capture(), &mut terminal);
}

/// The capture replayed into live mode, 100 finished flows per frame (a
/// busy proxy): what a frame costs the UI thread (taking the flows in and
/// drawing) as the capture grows, and how long after the last flow the
/// analysis covers them all.
fn live_replay(flows: Vec<Flow>, terminal: &mut Terminal<TestBackend>) {
    const PER_FRAME: usize = 100;
    let mut app = App::live(Options::default());
    let start = Instant::now();
    let mut window = Instant::now();
    for (frame, chunk) in flows.chunks(PER_FRAME).enumerate() {
        for flow in chunk {
            app.apply(LiveEvent::Finished(Box::new(flow.clone())));
        }
        app.poll_refresh();
        let drawn = terminal.draw(|frame| draw(frame, &app));
        black_box(drawn.is_ok());
        let shown = (frame + 1) * PER_FRAME;
        if [1_000, 10_000, 100_000].contains(&shown) {
            // The last 1,000 flows: 10 frames.
            let per_frame = window.elapsed() / 10;
            println!(
                "live, {shown} flows shown: {:.2} ms per frame of {PER_FRAME} new flows \
                 ({} not linked yet)",
                per_frame.as_secs_f64() * 1e3,
                app.unlinked()
            );
        }
        if shown.is_multiple_of(1_000) {
            window = Instant::now();
        }
    }
    let replayed = start.elapsed();
    app.refresh();
    println!(
        "live, {FLOWS} flows replayed in {:.2} s; linked whole {:.2} s after the last one \
         ({} operations)",
        replayed.as_secs_f64(),
        (start.elapsed() - replayed).as_secs_f64(),
        app.analysis.operations.len()
    );
}
