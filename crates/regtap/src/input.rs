//! Opening what the user points regtap at: a capture file (or, with the HAR
//! importer, a HAR file) becomes a list of flows plus warnings to show.

use std::path::Path;

use anyhow::Context as _;
use regtap_capture::{Capture, Flow};

/// Flows read from a file, and what the user should be told about the read.
pub struct Loaded {
    pub flows: Vec<Flow>,
    pub warnings: Vec<String>,
}

/// Reads a capture file.
pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    let capture = Capture::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut warnings = Vec::new();
    if capture.truncated_tail {
        warnings.push(format!(
            "{}: the last record is cut off (the proxy was stopped mid-write); {} complete flows read",
            path.display(),
            capture.flows.len()
        ));
    }
    Ok(Loaded {
        flows: capture.flows,
        warnings,
    })
}
