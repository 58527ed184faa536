//! Opening what the user points regtap at: a capture file or a HAR file (from
//! regtap, mitmproxy, browser DevTools, HTTP Toolkit, …) becomes a list of
//! flows plus warnings to show.

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use regtap_capture::{
    BadLine, Capture, CaptureError, CaptureHeader, CaptureReader, Flow, FlowLocation,
};

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
    let warnings = capture_warnings(
        path,
        capture.flows.len(),
        capture.truncated_tail,
        &capture.bad_lines,
        capture.cut_off,
    );
    let (body_store, foreign_body_store) = body_stores(path, &capture.header);
    Loaded {
        flows: capture.flows,
        warnings,
        body_store,
        foreign_body_store,
    }
}

/// The body store a capture's header names: usable (in the capture's
/// directory) or foreign.
fn body_stores(path: &Path, header: &CaptureHeader) -> (Option<PathBuf>, Option<PathBuf>) {
    let named = header
        .settings
        .body_store()
        .map(|dir| resolve_beside(path, Path::new(dir)));
    match named {
        Some(store) if is_inside_directory_of(&store, path) => (Some(store), None),
        Some(store) => (None, Some(store)),
        None => (None, None),
    }
}

/// What the user is told about a capture read with `flows` flows.
fn capture_warnings(
    path: &Path,
    flows: usize,
    truncated_tail: bool,
    bad_lines: &[BadLine],
    cut_off: usize,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if truncated_tail {
        warnings.push(format!(
            "{}: the last record is cut off (the proxy was stopped mid-write); {flows} complete flows read",
            path.display(),
        ));
    }
    for bad in bad_lines {
        warnings.push(format!(
            "{}:{}: not a record regtap reads, skipped ({}); every other record was read",
            path.display(),
            bad.line,
            bad.reason
        ));
    }
    if cut_off > 0 {
        warnings.push(format!(
            "{}: {cut_off} exchanges were cut off: the proxy stopped before they finished \
             (shown with what was known: request, response head, bytes so far)",
            path.display(),
        ));
    }
    warnings
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

/// How a file's flow ids were renumbered when several files were read together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renumbering {
    pub path: PathBuf,
    /// Added to every id of the file (0: ids kept).
    pub offset: u64,
    /// Lowest and highest id in the file, before renumbering (`None`: no flow).
    pub ids: Option<(u64, u64)>,
}

impl Renumbering {
    /// `b.jsonl: #1–#30 are #41–#70 here`.
    pub fn describe(&self) -> String {
        match self.ids {
            None => format!("{}: no flow", self.path.display()),
            Some((low, high)) if self.offset == 0 => {
                format!("{}: #{low}–#{high} keep their ids", self.path.display())
            }
            Some((low, high)) => format!(
                "{}: #{low}–#{high} are #{}–#{} here",
                self.path.display(),
                low + self.offset,
                high + self.offset
            ),
        }
    }
}

/// Reads several captures (or HAR files) as one: flows of every file after
/// the first are renumbered above the ids already taken, so ids stay
/// unique; the decoder puts them in time order.
pub fn load_all(paths: &[PathBuf]) -> anyhow::Result<(Loaded, Vec<Renumbering>)> {
    let mut flows: Vec<Flow> = Vec::new();
    let mut warnings = Vec::new();
    let mut body_store = None;
    let mut foreign_body_store = None;
    let mut renumbering = Vec::new();
    let mut highest: u64 = 0;
    for (n, path) in paths.iter().enumerate() {
        let loaded = load(path)?;
        warnings.extend(loaded.warnings);
        if n == 0 {
            body_store = loaded.body_store;
            foreign_body_store = loaded.foreign_body_store;
        }
        let offset = if n == 0 { 0 } else { highest };
        let ids = loaded
            .flows
            .iter()
            .map(|f| f.id)
            .fold(None, |range: Option<(u64, u64)>, id| {
                Some(range.map_or((id, id), |(lo, hi)| (lo.min(id), hi.max(id))))
            });
        // Renumbered in place, and the first file's flows kept as they are
        // read: moving 100k flows into another list took 40-100 ms.
        let mut read = loaded.flows;
        for flow in &mut read {
            flow.id = flow
                .id
                .checked_add(offset)
                .with_context(|| format!("{}: flow ids too large to renumber", path.display()))?;
            highest = highest.max(flow.id);
        }
        if flows.is_empty() {
            flows = read;
        } else {
            flows.extend(read);
        }
        renumbering.push(Renumbering {
            path: path.clone(),
            offset,
            ids,
        });
    }
    Ok((
        Loaded {
            flows,
            warnings,
            body_store,
            foreign_body_store,
        },
        renumbering,
    ))
}

/// What [`for_each_flow`] read, besides the flows.
pub struct Streamed {
    pub warnings: Vec<String>,
    pub renumbering: Vec<Renumbering>,
}

/// Reads several captures (or HAR files) as [`load_all`] does, handing each
/// flow to `each` as it is read instead of keeping them: a capture file is
/// never held whole (a HAR file is, as its import needs).
pub fn for_each_flow(paths: &[PathBuf], mut each: impl FnMut(Flow)) -> anyhow::Result<Streamed> {
    let mut warnings = Vec::new();
    let mut renumbering = Vec::new();
    let mut highest: u64 = 0;
    for (n, path) in paths.iter().enumerate() {
        let offset = if n == 0 { 0 } else { highest };
        let mut ids: Option<(u64, u64)> = None;
        let mut renumbered = |mut flow: Flow| -> anyhow::Result<()> {
            ids = Some(ids.map_or((flow.id, flow.id), |(lo, hi)| {
                (lo.min(flow.id), hi.max(flow.id))
            }));
            flow.id = flow
                .id
                .checked_add(offset)
                .with_context(|| format!("{}: flow ids too large to renumber", path.display()))?;
            highest = highest.max(flow.id);
            each(flow);
            Ok(())
        };
        if is_capture(path)? {
            let opened = stream_capture(path, &mut |flow, _| renumbered(flow))?;
            warnings.extend(opened.warnings);
        } else {
            let loaded = load(path)?;
            warnings.extend(loaded.warnings);
            for flow in loaded.flows {
                renumbered(flow)?;
            }
        }
        renumbering.push(Renumbering {
            path: path.clone(),
            offset,
            ids,
        });
    }
    Ok(Streamed {
        warnings,
        renumbering,
    })
}

/// Whether `path` starts as a regtap capture (else it is read as [`load`] does).
fn is_capture(path: &Path) -> anyhow::Result<bool> {
    let mut head = Vec::new();
    File::open(path)
        .and_then(|file| file.take(SNIFF_LEN).read_to_end(&mut head))
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Capture::sniff(&head))
}

/// What [`stream`] read, besides the flows.
pub struct Opened {
    pub warnings: Vec<String>,
    /// As [`Loaded::body_store`].
    pub body_store: Option<PathBuf>,
    /// As [`Loaded::foreign_body_store`].
    pub foreign_body_store: Option<PathBuf>,
}

/// Reads a capture file or a HAR file as [`load`] does, handing each flow to
/// `each` as it is read instead of keeping them, with where its line is in a
/// capture file, for [`regtap_capture::FlowLines`] to read it again; `None`
/// for a HAR entry (a HAR file is held whole, as its import needs) or an
/// exchange rebuilt from in-flight records.
pub fn stream(
    path: &Path,
    mut each: impl FnMut(Flow, Option<FlowLocation>),
) -> anyhow::Result<Opened> {
    if is_capture(path)? {
        return stream_capture(path, &mut |flow, location| {
            each(flow, location);
            Ok(())
        });
    }
    let loaded = load(path)?;
    for flow in loaded.flows {
        each(flow, None);
    }
    Ok(Opened {
        warnings: loaded.warnings,
        body_store: loaded.body_store,
        foreign_body_store: loaded.foreign_body_store,
    })
}

/// The flows of one capture file, one at a time.
fn stream_capture(
    path: &Path,
    each: &mut impl FnMut(Flow, Option<FlowLocation>) -> anyhow::Result<()>,
) -> anyhow::Result<Opened> {
    let mut reader =
        CaptureReader::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut bad_lines = Vec::new();
    let mut flows = 0;
    while let Some(record) = reader.next_located_flow() {
        match record {
            Ok((flow, location)) => {
                flows += 1;
                each(flow, location)?;
            }
            Err(CaptureError::BadRecord { line, reason, .. }) => {
                bad_lines.push(BadLine { line, reason });
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    let (body_store, foreign_body_store) = body_stores(path, reader.header());
    Ok(Opened {
        warnings: capture_warnings(
            path,
            flows,
            reader.truncated_tail(),
            &bad_lines,
            reader.cut_off_count(),
        ),
        body_store,
        foreign_body_store,
    })
}
