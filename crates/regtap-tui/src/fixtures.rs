//! The TUI tests' capture: the shared dockerd 20.10 sequences of
//! `regtap_fixtures` (a login, a first push with three parallel layer
//! uploads, a pull) and one request the decoder cannot place, analysed by
//! the real decoder, as `regtap tui` would show them.

use regtap_capture::Flow;
use regtap_capture::factory::FlowBuilder;
use regtap_decode::{Analysis, Options};
use regtap_fixtures::{Image, at, first_push, pull};

/// `docker login registry.test:5000`: flows 1 to 3.
pub fn login() -> Vec<Flow> {
    regtap_fixtures::login(1, 0)
}

/// The first `docker push registry.test:5000/lab/seq:latest`: flows 4 to 23.
pub fn push() -> Vec<Flow> {
    first_push(&Image::new(), 4, 676)
}

/// Login, push and pull (flows 24 to 31), in that order.
pub fn session() -> Vec<Flow> {
    let mut flows = login();
    flows.extend(push());
    flows.extend(pull(&Image::new(), 24, 3217));
    flows
}

/// A request the decoder cannot place: it must still show in the flows view.
pub fn unknown(id: u64) -> Flow {
    FlowBuilder::new(id, "GET", "https://example.test/favicon.ico")
        .start_ns(at(5000))
        .status(404)
        .build()
}

/// What the decoder says about `flows`.
pub fn analysis(flows: &[Flow]) -> Analysis {
    regtap_decode::analyze(flows, &Options::default())
}

/// An [`App`](crate::App) over [`session`] and one unknown flow.
pub fn app() -> crate::App {
    let mut flows = session();
    flows.push(unknown(32));
    crate::App::new("session.jsonl", flows, &Options::default())
}
