//! Opening what the user points regtap at: a capture file or a HAR file (from
//! regtap, mitmproxy, browser DevTools, HTTP Toolkit, …) becomes a list of
//! flows plus warnings to show.

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use regtap_capture::{Capture, CaptureError, Flow};

/// Flows read from a file, and what the user should be told about the read.
pub struct Loaded {
    pub flows: Vec<Flow>,
    pub warnings: Vec<String>,
    /// The proxy's body store (`--store-bodies DIR`) named by a capture's
    /// header, resolved, when it is in the capture's directory; `None` for
    /// HAR files and captures without one.
    pub body_store: Option<PathBuf>,
    /// A body store the header names elsewhere: someone else's capture must
    /// not point regtap at arbitrary directories, so it is only reported.
    pub foreign_body_store: Option<PathBuf>,
}

/// How many bytes are read to tell a capture from a HAR.
const SNIFF_LEN: u64 = 4096;

/// Reads a capture file or a HAR file, whichever `path` holds.
pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    let mut head = Vec::new();
    File::open(path)
        .and_then(|file| file.take(SNIFF_LEN).read_to_end(&mut head))
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !Capture::sniff(&head) && regtap_har::looks_like_har(&head) {
        return load_har(path);
    }
    match Capture::read(path) {
        Ok(capture) => Ok(from_capture(path, capture)),
        // A HAR whose first key is not `log` still gets its chance.
        Err(CaptureError::NotACapture { reason, .. })
            if head.trim_ascii_start().starts_with(b"{") =>
        {
            load_har(path).map_err(|har_error| {
                anyhow::anyhow!(
                    "{} is neither a regtap capture ({reason}) nor a HAR file ({har_error:#})",
                    path.display()
                )
            })
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn from_capture(path: &Path, capture: Capture) -> Loaded {
    let mut warnings = Vec::new();
    if capture.truncated_tail {
        warnings.push(format!(
            "{}: the last record is cut off (the proxy was stopped mid-write); {} complete flows read",
            path.display(),
            capture.flows.len()
        ));
    }
    let named = capture
        .header
        .settings
        .get("store_bodies")
        .and_then(|v| v.as_str())
        .map(|dir| resolve_beside(path, Path::new(dir)));
    let (body_store, foreign_body_store) = match named {
        Some(store) if is_inside_directory_of(&store, path) => (Some(store), None),
        Some(store) => (None, Some(store)),
        None => (None, None),
    };
    Loaded {
        flows: capture.flows,
        warnings,
        body_store,
        foreign_body_store,
    }
}

/// Whether `dir` is the directory of `capture` or inside it, symlinks
/// resolved. A directory that does not exist holds nothing to read.
fn is_inside_directory_of(dir: &Path, capture: &Path) -> bool {
    let capture_dir = match capture.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match (dir.canonicalize(), capture_dir.canonicalize()) {
        (Ok(dir), Ok(capture_dir)) => dir.starts_with(capture_dir),
        (Err(_), _) => true,
        (Ok(_), Err(_)) => false,
    }
}

/// A directory the proxy named relative to its working directory: taken as
/// given when it exists from here, else relative to the capture's directory.
fn resolve_beside(capture: &Path, dir: &Path) -> PathBuf {
    if dir.is_absolute() || dir.is_dir() {
        return dir.to_owned();
    }
    match capture.parent() {
        Some(parent) if parent.join(dir).is_dir() => parent.join(dir),
        _ => dir.to_owned(),
    }
}

fn load_har(path: &Path) -> anyhow::Result<Loaded> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    // Streamed: the file is never held whole.
    let imported = regtap_har::import_reader(file, &regtap_har::ImportLimits::default())
        .with_context(|| format!("cannot import {}", path.display()))?;
    if imported.flows.is_empty() && !imported.warnings.is_empty() {
        bail!(
            "{}: no HAR entry could be read:\n  {}",
            path.display(),
            imported.warnings.join("\n  ")
        );
    }
    let mut warnings: Vec<String> = imported
        .warnings
        .into_iter()
        .map(|w| format!("{}: {w}", path.display()))
        .collect();
    if imported
        .creator
        .as_deref()
        .is_none_or(|c| !c.starts_with(regtap_har::CREATOR_NAME))
    {
        warnings.push(format!(
            "{}: read as a HAR written by {}: {} entries; timings and bodies are only as \
             complete as that tool recorded them",
            path.display(),
            imported.creator.as_deref().unwrap_or("an unnamed tool"),
            imported.flows.len()
        ));
    }
    Ok(Loaded {
        flows: imported.flows,
        warnings,
        body_store: None,
        foreign_body_store: None,
    })
}
