//! The export tests' inputs: every capture of the repository's `captures/`
//! and the dockerd 20.10 sequences of `regtap_fixtures`.

use regtap_capture::Flow;

/// The dockerd sequences as the proxy records them: login, three pushes and
/// a pull on the token registry, then login and a push on the Basic-auth
/// registry.
pub fn dockerd_sequences() -> Vec<Flow> {
    regtap_fixtures::as_recorded(regtap_fixtures::whole_reference())
}

/// Every input the export tests run over: the captures and the dockerd sequences.
pub fn all_inputs() -> Vec<(String, Vec<Flow>)> {
    let mut inputs = regtap_fixtures::captures();
    inputs.push(("dockerd-20.10-sequences".to_owned(), dockerd_sequences()));
    inputs
}
