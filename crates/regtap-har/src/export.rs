//! Flows and their analysis → HAR 1.2.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use regtap_capture::{Body, CaptureError, Ending, Flow, Headers, UnixNanos, rfc3339};
use regtap_decode::{Analysis, FlowKind, Operation};
use serde::Serialize;

use crate::model::{
    BodyFacts, Cache, Content, Cookie, Creator, Entry, EntryError, Har, Log, NameValue, Page,
    PageTimings, PostData, Request, Response, Timings,
};
use crate::redact::{self, Redactor, Salt};
use crate::{annotate, media};

/// How to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Keep credentials (Authorization, tokens, passwords, cookies) as they were.
    pub include_secrets: bool,
    /// Also drop decoded JWT claims from the `_regtap` annotations.
    pub redact_claims: bool,
    /// Only the flows of this operation (1-based, as numbered by the decoder).
    pub operation: Option<usize>,
    /// Where blob bodies are written (`<dir>/sha256/<hex>`); entries reference
    /// them by that path. The caller writes the files listed in [`Export::bodies`].
    pub bodies_dir: Option<String>,
    /// Keys the fingerprints of redacted credentials; random by default, so
    /// that fingerprints correlate within one export and nowhere else.
    pub salt: Salt,
}

/// A HAR, and the bodies the caller must write for `--bodies DIR`.
#[derive(Debug, Clone)]
pub struct Export {
    pub har: Har,
    pub bodies: Vec<BodyToWrite>,
}

/// A body that is referenced from the HAR but not pasted into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyToWrite {
    /// Lowercase hex SHA-256: the file goes to `<dir>/sha256/<sha256>`.
    pub sha256: String,
    pub source: BodySource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodySource {
    /// The capture holds the whole body.
    Inline(Vec<u8>),
    /// The body is in the proxy's body store, at this path relative to its root.
    Stored(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExportError {
    #[error("there is no operation {requested}: the capture has {available} (numbered from 1)")]
    NoSuchOperation { requested: usize, available: usize },
}

pub const CREATOR_NAME: &str = "regtap";

/// Builds the HAR of `flows` (with their `analysis`, from `regtap_decode::analyze`).
pub fn export(
    flows: &[Flow],
    analysis: &Analysis,
    options: &ExportOptions,
) -> Result<Export, ExportError> {
    let listing = list(flows);
    let plan = Plan::new(&listing, analysis, options)?;
    let redactor = plan.new_redactor();
    if let Some(redactor) = &redactor {
        let Ok(()) = plan.learn_credentials(
            redactor,
            &mut |i| Ok::<_, Infallible>(Cow::Borrowed(&flows[i])),
            0..plan.flows.len(),
        );
    }
    let pages = plan
        .operations
        .iter()
        .map(|operation| plan.page(operation, redactor.as_ref()))
        .collect();
    let mut bodies = Vec::new();
    let entries: Vec<Entry> = plan
        .flows
        .iter()
        .map(|&i| plan.entry(&flows[i], redactor.as_ref(), &mut bodies))
        .collect();
    bodies.sort_by(|a: &BodyToWrite, b| a.sha256.cmp(&b.sha256));
    bodies.dedup_by(|a, b| a.sha256 == b.sha256);
    Ok(Export {
        har: Har {
            log: Log {
                version: "1.2".to_owned(),
                creator: creator(),
                pages,
                entries,
                comment: plan.comment(),
            },
        },
        bodies,
    })
}

/// What [`export_to`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub entries: usize,
    pub pages: usize,
    /// Distinct bodies `write_body` said it wrote.
    pub bodies: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportToError {
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("cannot read a flow again: {0}")]
    Read(#[from] CaptureError),
    #[error("cannot write the HAR: {0}")]
    Write(#[from] serde_json::Error),
}

/// A flow to export as [`export_flows`] needs it before the flow itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    pub id: u64,
    /// [`regtap_capture::Timing::request_start`]: entries are in time order.
    pub request_start: UnixNanos,
}

impl Listed {
    pub fn of(flow: &Flow) -> Self {
        Listed {
            id: flow.id,
            request_start: flow.timing.request_start,
        }
    }
}

fn list(flows: &[Flow]) -> Vec<Listed> {
    flows.iter().map(Listed::of).collect()
}

/// Writes the HAR of `flows` to `out` entry by entry (pretty-printed, the
/// same document [`export`] builds), never holding more than one entry.
/// With `bodies_dir`, `write_body` is asked to write each distinct body the
/// entries reference, once, before the first entry that references it is
/// written; when it answers `false` (not written) no entry references it.
pub fn export_to(
    flows: &[Flow],
    analysis: &Analysis,
    options: &ExportOptions,
    out: impl std::io::Write,
    write_body: impl FnMut(&BodyToWrite) -> bool,
) -> Result<Written, ExportToError> {
    export_flows(
        &list(flows),
        |i| Ok(Cow::Borrowed(&flows[i])),
        analysis,
        options,
        out,
        write_body,
    )
}

/// As [`export_to`], for flows that are not all held: `listing` names them,
/// and `fetch(i)` gives the flow of `listing[i]` each time it is needed, so
/// that only one is held at a time: for its entry, and before the first
/// entry when credentials are redacted (the redactor learns them all first).
pub fn export_flows<'f>(
    listing: &[Listed],
    mut fetch: impl FnMut(usize) -> Result<Cow<'f, Flow>, CaptureError>,
    analysis: &Analysis,
    options: &ExportOptions,
    out: impl std::io::Write,
    write_body: impl FnMut(&BodyToWrite) -> bool,
) -> Result<Written, ExportToError> {
    let plan = Plan::new(listing, analysis, options)?;
    let redactor = plan.new_redactor();
    let mut har = HarWriter::start(&plan, out, write_body)?;
    if let Some(redactor) = &redactor {
        plan.learn_credentials(redactor, &mut fetch, 0..plan.flows.len())?;
    }
    let operations = plan.operations.len();
    har.open_list("pages", operations)?;
    har.write(plan.pages_text(0..operations, redactor.as_ref())?)?;
    har.close_list(operations)?;
    let flows = plan.flows.len();
    har.open_list("entries", flows)?;
    for batch in batches(flows, Parallelism::DEFAULT_BATCH) {
        har.write(plan.entries_text(&mut fetch, batch, redactor.as_ref())?)?;
    }
    har.close_list(flows)?;
    har.finish(&plan)
}

/// How [`export_flows_in_parallel`] shares its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parallelism {
    /// Threads that build entries (the calling thread writes them).
    pub threads: usize,
    /// Flows (or operations, for the pages) per batch: a thread reads,
    /// builds and serializes a batch at a time; each thread holds at most
    /// two batches' text.
    pub batch: usize,
}

impl Parallelism {
    /// About 15 MB of HAR per batch on real captures.
    const DEFAULT_BATCH: usize = 2048;

    /// A thread per core.
    pub fn for_this_machine() -> Self {
        Parallelism {
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            batch: Self::DEFAULT_BATCH,
        }
    }
}

/// As [`export_flows`], the work shared among `parallelism.threads`
/// threads, each reading flows with its own `reader()` (a `fetch` of
/// [`export_flows`]); the HAR is the same, byte for byte.
///
/// The redactor learns from every flow before the first entry, as
/// [`export_flows`] does, each thread from its batches; redacting the
/// pages' and entries' annotations may teach it more (a token quoted in an
/// error message), and an entry may name what an earlier one taught. So
/// each batch starts from what the redactor knew before the first entry and
/// notes which names it looked up; a batch that looked up a name an earlier
/// batch learned is built again, in order, by the writing thread.
pub fn export_flows_in_parallel<'f, R>(
    listing: &[Listed],
    reader: impl Fn() -> R + Sync,
    analysis: &Analysis,
    options: &ExportOptions,
    parallelism: Parallelism,
    out: impl std::io::Write,
    write_body: impl FnMut(&BodyToWrite) -> bool,
) -> Result<Written, ExportToError>
where
    R: FnMut(usize) -> Result<Cow<'f, Flow>, CaptureError> + Send,
{
    let plan = Plan::new(listing, analysis, options)?;
    let threads = parallelism.threads.max(1);
    let flow_batches = batches(plan.flows.len(), parallelism.batch.max(1));
    let mut redactor = plan.new_redactor();
    let mut har = HarWriter::start(&plan, out, write_body)?;
    if let Some(redactor) = &redactor {
        // What a batch learns does not depend on what the redactor knew.
        in_order::<_, _, ExportToError>(
            (0..threads).map(|_| reader()).collect(),
            flow_batches.len(),
            |fetch, batch| {
                let learner = Redactor::new(options.salt.clone());
                learner.keep_journal();
                plan.learn_credentials(&learner, fetch, flow_batches[batch].clone())?;
                Ok(learner.take_journal().learned)
            },
            |_, learned| {
                redactor.learn(&learned);
                Ok(())
            },
        )?;
    }
    // Each batch gets a copy of the redactor: the names so far are shared.
    if let Some(redactor) = &mut redactor {
        redactor.freeze();
    }
    let operations = plan.operations.len();
    har.open_list("pages", operations)?;
    let page_batches = batches(operations, parallelism.batch.max(1));
    in_order_redacted(
        (0..threads).map(|_| ()).collect(),
        &page_batches,
        redactor.as_ref(),
        |(), batch, redactor| plan.pages_text(batch, redactor),
        || (),
        |pieces| har.write(pieces),
    )?;
    har.close_list(operations)?;
    if let Some(redactor) = &mut redactor {
        redactor.freeze();
    }
    har.open_list("entries", plan.flows.len())?;
    in_order_redacted(
        (0..threads).map(|_| reader()).collect(),
        &flow_batches,
        redactor.as_ref(),
        |fetch, batch, redactor| plan.entries_text(fetch, batch, redactor),
        &reader,
        |pieces| har.write(pieces),
    )?;
    har.close_list(plan.flows.len())?;
    har.finish(&plan)
}

/// `0..count` cut in runs of `size`.
fn batches(count: usize, size: usize) -> Vec<Range<usize>> {
    (0..count)
        .step_by(size)
        .map(|start| start..count.min(start + size))
        .collect()
}

/// Runs `work` on every batch, batch `i` on thread `i % threads` (one
/// thread per state; `states` must not be empty), and hands the results to
/// `take` in batch order; a thread is at most one result ahead of `take`.
/// The first error, from `work` or `take`, ends the run. (`inspect --json`
/// writes its items this way too, each thread with a copy of the redactor.)
pub fn in_order<S: Send, T: Send, E: Send>(
    states: Vec<S>,
    batches: usize,
    work: impl Fn(&mut S, usize) -> Result<T, E> + Sync,
    mut take: impl FnMut(usize, T) -> Result<(), E>,
) -> Result<(), E> {
    let threads = states.len();
    let work = &work;
    std::thread::scope(|scope| {
        let results: Vec<_> = states
            .into_iter()
            .enumerate()
            .map(|(thread, mut state)| {
                let (to_writer, from_thread) = std::sync::mpsc::sync_channel(1);
                scope.spawn(move || {
                    for batch in (thread..batches).step_by(threads) {
                        let result = work(&mut state, batch);
                        let failed = result.is_err();
                        // A writer that stopped (an error) ends this thread.
                        if to_writer.send(result).is_err() || failed {
                            break;
                        }
                    }
                });
                from_thread
            })
            .collect();
        for batch in 0..batches {
            // A thread that panicked: the scope passes its panic on.
            let Ok(result) = results[batch % threads].recv() else {
                break;
            };
            take(batch, result?)?;
        }
        Ok(())
    })
}

/// [`in_order`] for the pages or the entries, redacted as one thread would
/// redact them in order (see [`export_flows_in_parallel`]): each batch
/// from a copy of `redactor` as it is now, `redactor` learning what each
/// batch learned in order, and a batch that looked up a name an earlier
/// batch learned built again after it, with `redactor` and a state of
/// `make_state`.
fn in_order_redacted<S: Send>(
    states: Vec<S>,
    batches: &[Range<usize>],
    redactor: Option<&Redactor>,
    build: impl Fn(&mut S, Range<usize>, Option<&Redactor>) -> Result<Vec<Piece>, ExportToError> + Sync,
    make_state: impl FnOnce() -> S,
    mut write: impl FnMut(Vec<Piece>) -> Result<(), ExportToError>,
) -> Result<(), ExportToError> {
    let Some(redactor) = redactor else {
        return in_order(
            states,
            batches.len(),
            |state, batch| build(state, batches[batch].clone(), None),
            |_, pieces| write(pieces),
        );
    };
    let states = states
        .into_iter()
        .map(|state| (state, redactor.clone()))
        .collect();
    let mut learned_by_earlier_batches: HashSet<String> = HashSet::new();
    let mut make_state = Some(make_state);
    let mut own_state = None;
    in_order(
        states,
        batches.len(),
        |(state, before), batch| {
            let copy = before.clone();
            copy.keep_journal();
            let pieces = build(state, batches[batch].clone(), Some(&copy))?;
            Ok((pieces, copy.take_journal()))
        },
        |batch, (pieces, journal)| {
            // A name looked up might have been found, a name given might
            // have been given after an earlier batch gave it another.
            let depends_on_earlier = journal
                .touched
                .iter()
                .any(|name| learned_by_earlier_batches.contains(name));
            let (pieces, learned) = if depends_on_earlier {
                let state = own_state.get_or_insert_with(|| {
                    (make_state
                        .take()
                        .unwrap_or_else(|| unreachable!("taken once")))()
                });
                redactor.keep_journal();
                let pieces = build(state, batches[batch].clone(), Some(redactor));
                (pieces?, redactor.take_journal().learned)
            } else {
                redactor.learn(&journal.learned);
                (pieces, journal.learned)
            };
            learned_by_earlier_batches.extend(learned.into_keys());
            write(pieces)
        },
    )
}

/// Serialized pages or entries, as they go into the HAR.
enum Piece {
    /// Items, each after its separator, indented.
    Text(Vec<u8>),
    /// An entry that references bodies: written once the writer knows
    /// which bodies were written.
    WithBodies {
        position: usize,
        entry: Box<Entry>,
        bodies: Vec<BodyToWrite>,
    },
}

/// How deep the items of `log.pages` and `log.entries` are indented.
const ITEM_INDENT: &[u8] = b"      ";

/// Appends item `position` of a list of `log`, as `serde_json`'s pretty
/// printer writes it there: its separator, and its lines indented.
fn append_item(
    text: &mut Vec<u8>,
    position: usize,
    item: &impl Serialize,
) -> Result<(), serde_json::Error> {
    text.extend_from_slice(if position == 0 { b"\n" } else { b",\n" });
    text.extend_from_slice(ITEM_INDENT);
    item.serialize(&mut serde_json::Serializer::with_formatter(
        text,
        ItemFormatter::default(),
    ))
}

/// `serde_json`'s pretty printer, every line after the first indented by
/// [`ITEM_INDENT`]: only its structural calls write newlines (JSON strings
/// escape theirs), so only those go through [`IndentedLines`].
#[derive(Default)]
struct ItemFormatter(serde_json::ser::PrettyFormatter<'static>);

impl serde_json::ser::Formatter for ItemFormatter {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.0.begin_array(out)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.0.end_array(&mut IndentedLines(out))
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(&mut IndentedLines(out), first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(out)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.0.begin_object(out)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.0.end_object(&mut IndentedLines(out))
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(&mut IndentedLines(out), first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
    ) -> std::io::Result<()> {
        self.0.begin_object_value(out)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(out)
    }
}

/// Writes [`ITEM_INDENT`] after every newline written through it.
struct IndentedLines<'w, W: ?Sized>(&'w mut W);

impl<W: ?Sized + std::io::Write> std::io::Write for IndentedLines<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.write_all(bytes)?;
        Ok(bytes.len())
    }
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            self.0.write_all(line)?;
            if line.ends_with(b"\n") {
                self.0.write_all(ITEM_INDENT)?;
            }
        }
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Writes the HAR around its pages and entries: the document with both
/// lists empty, as `serde_json`'s pretty printer writes it, with the items
/// put in.
struct HarWriter<W, F> {
    out: W,
    frame: Vec<u8>,
    /// How much of `frame` is written.
    written: usize,
    bodies: BodyFiles<F>,
    text: Vec<u8>,
}

impl<W: std::io::Write, F: FnMut(&BodyToWrite) -> bool> HarWriter<W, F> {
    fn start(plan: &Plan, out: W, write_body: F) -> Result<Self, serde_json::Error> {
        let frame = serde_json::to_vec_pretty(&Har {
            log: Log {
                version: "1.2".to_owned(),
                creator: creator(),
                pages: Vec::new(),
                entries: Vec::new(),
                comment: plan.comment(),
            },
        })?;
        Ok(HarWriter {
            out,
            frame,
            written: 0,
            bodies: BodyFiles {
                write: write_body,
                written: HashMap::new(),
            },
            text: Vec::new(),
        })
    }

    /// Writes the frame up to list `name` of `log` and opens it.
    fn open_list(&mut self, name: &str, items: usize) -> Result<(), serde_json::Error> {
        let empty = format!("\"{name}\": []");
        let rest = &self.frame[self.written..];
        // The first list so named after what is written: `log`'s own, as
        // only its version and creator (or its pages) come before.
        let at = rest
            .windows(empty.len())
            .position(|w| w == empty.as_bytes())
            .unwrap_or_else(|| unreachable!("the frame has both lists"));
        let list = self.written + at + empty.len() - 2;
        self.out
            .write_all(&self.frame[self.written..list])
            .map_err(serde_json::Error::io)?;
        self.out
            .write_all(if items == 0 { b"[]" } else { b"[" })
            .map_err(serde_json::Error::io)?;
        self.written = list + 2;
        Ok(())
    }

    fn close_list(&mut self, items: usize) -> Result<(), serde_json::Error> {
        if items > 0 {
            self.out
                .write_all(b"\n    ]")
                .map_err(serde_json::Error::io)?;
        }
        Ok(())
    }

    fn write(&mut self, pieces: Vec<Piece>) -> Result<(), ExportToError> {
        for piece in pieces {
            let text = match piece {
                Piece::Text(text) => text,
                Piece::WithBodies {
                    position,
                    mut entry,
                    bodies,
                } => {
                    self.bodies.settle(&mut entry, bodies);
                    self.text.clear();
                    append_item(&mut self.text, position, &entry)?;
                    std::mem::take(&mut self.text)
                }
            };
            self.out.write_all(&text).map_err(serde_json::Error::io)?;
            self.text = text;
        }
        Ok(())
    }

    fn finish(mut self, plan: &Plan) -> Result<Written, ExportToError> {
        self.out
            .write_all(&self.frame[self.written..])
            .map_err(serde_json::Error::io)?;
        self.out.write_all(b"\n").map_err(serde_json::Error::io)?;
        self.out.flush().map_err(serde_json::Error::io)?;
        Ok(Written {
            entries: plan.flows.len(),
            pages: plan.operations.len(),
            bodies: self.bodies.written.values().filter(|&&w| w).count(),
        })
    }
}

/// The bodies `--bodies DIR` asked for: each written once, by the caller.
struct BodyFiles<F> {
    write: F,
    /// sha256 → whether the caller wrote it.
    written: HashMap<String, bool>,
}

impl<F: FnMut(&BodyToWrite) -> bool> BodyFiles<F> {
    /// Writes the entry's bodies not yet asked for; an entry must not
    /// point at a file that is not there.
    fn settle(&mut self, entry: &mut Entry, bodies: Vec<BodyToWrite>) {
        for body in bodies {
            if !self.written.contains_key(&body.sha256) {
                let ok = (self.write)(&body);
                self.written.insert(body.sha256, ok);
            }
        }
        let forget_unwritten = |facts: &mut BodyFacts| {
            let unwritten = facts
                .sha256
                .as_ref()
                .is_some_and(|s| self.written.get(s) == Some(&false));
            if unwritten {
                facts.file = None;
            }
        };
        if let Some(post) = entry.request.post_data.as_mut() {
            forget_unwritten(&mut post.body);
        }
        forget_unwritten(&mut entry.response.content.body);
    }
}

fn creator() -> Creator {
    Creator {
        name: CREATOR_NAME.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// What every entry of one export needs, prepared once; shared by the
/// threads that build entries, each with its own redactor.
struct Plan<'a> {
    analysis: &'a Analysis,
    options: &'a ExportOptions,
    operations: Vec<&'a Operation>,
    /// The flows exported, in time order, as indices in the listing.
    flows: Vec<usize>,
    /// Where each flow sits: its operation's page and its step.
    place: HashMap<u64, (usize, &'a str)>,
    /// Claim values dropped with `redact_claims`.
    identifying: Vec<String>,
}

impl<'a> Plan<'a> {
    fn new(
        listing: &[Listed],
        analysis: &'a Analysis,
        options: &'a ExportOptions,
    ) -> Result<Self, ExportError> {
        let operations: Vec<&Operation> = match options.operation {
            None => analysis.operations.iter().collect(),
            Some(requested) => {
                let operation = analysis
                    .operations
                    .iter()
                    .find(|op| op.index == requested)
                    .ok_or(ExportError::NoSuchOperation {
                        requested,
                        available: analysis.operations.len(),
                    })?;
                vec![operation]
            }
        };
        let mut place: HashMap<u64, (usize, &str)> = HashMap::new();
        for operation in &operations {
            for step in &operation.steps {
                for id in &step.flow_ids {
                    place.insert(*id, (operation.index, step.explanation.as_str()));
                }
            }
            for id in &operation.flow_ids {
                place.entry(*id).or_insert((operation.index, ""));
            }
        }
        let mut selected: Vec<usize> = (0..listing.len())
            .filter(|&i| options.operation.is_none() || place.contains_key(&listing[i].id))
            .collect();
        selected.sort_by_key(|&i| (listing[i].request_start, listing[i].id));
        Ok(Plan {
            analysis,
            options,
            operations,
            flows: selected,
            place,
            identifying: if options.redact_claims {
                annotate::identifying_claims(analysis)
            } else {
                Vec::new()
            },
        })
    }

    /// The export's redactor, unless secrets are kept.
    fn new_redactor(&self) -> Option<Redactor> {
        (!self.options.include_secrets).then(|| Redactor::new(self.options.salt.clone()))
    }

    /// The decoder names tokens in any entry and on the pages: the redactor
    /// learns every credential the entries show before the first is
    /// written, so that each gets this export's fingerprint wherever the
    /// decoder names it. (The `_regtap` objects are redacted as each entry
    /// is written, in entry order.) `positions`: of the flows exported.
    fn learn_credentials<'f, E>(
        &self,
        redactor: &Redactor,
        fetch: &mut impl FnMut(usize) -> Result<Cow<'f, Flow>, E>,
        positions: Range<usize>,
    ) -> Result<(), E> {
        for &i in &self.flows[positions] {
            let flow = fetch(i)?;
            let kind = self.analysis.flow(flow.id).map(|f| &f.kind);
            let blobs = BlobSides::of(kind, flow.status());
            entry(&flow, blobs, self.options, Some(redactor), &mut Vec::new());
        }
        Ok(())
    }

    /// The entries of the flows exported at `positions`, serialized.
    fn entries_text<'f>(
        &self,
        fetch: &mut impl FnMut(usize) -> Result<Cow<'f, Flow>, CaptureError>,
        positions: Range<usize>,
        redactor: Option<&Redactor>,
    ) -> Result<Vec<Piece>, ExportToError> {
        let mut pieces = Vec::new();
        let mut text = Vec::new();
        for position in positions {
            let flow = fetch(self.flows[position])?;
            let mut bodies = Vec::new();
            let entry = self.entry(&flow, redactor, &mut bodies);
            if bodies.is_empty() {
                append_item(&mut text, position, &entry)?;
            } else {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::WithBodies {
                    position,
                    entry: Box::new(entry),
                    bodies,
                });
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(pieces)
    }

    /// The pages of the operations at `positions`, serialized.
    fn pages_text(
        &self,
        positions: Range<usize>,
        redactor: Option<&Redactor>,
    ) -> Result<Vec<Piece>, ExportToError> {
        let mut text = Vec::new();
        for position in positions {
            let page = self.page(self.operations[position], redactor);
            append_item(&mut text, position, &page)?;
        }
        Ok(vec![Piece::Text(text)])
    }

    /// The entry of one flow, redacted; the bodies it references are added
    /// to `bodies`.
    fn entry(
        &self,
        flow: &Flow,
        redactor: Option<&Redactor>,
        bodies: &mut Vec<BodyToWrite>,
    ) -> Entry {
        let (pageref, comment) = match self.place.get(&flow.id) {
            Some((index, explanation)) => (
                Some(page_id(*index)),
                (!explanation.is_empty()).then(|| (*explanation).to_owned()),
            ),
            None => (None, None),
        };
        let kind = self.analysis.flow(flow.id).map(|f| &f.kind);
        let mut entry = entry(
            flow,
            BlobSides::of(kind, flow.status()),
            self.options,
            redactor,
            bodies,
        );
        entry.pageref = pageref;
        entry.comment = comment;
        entry.regtap = annotate::flow(flow, self.analysis, self.options);
        if let Some(redactor) = redactor {
            redactor.annotations(&mut entry.regtap);
            if let Some(comment) = entry.comment.as_mut() {
                *comment = redactor.annotations_text(comment);
            }
            if let Some(error) = entry.error.as_mut() {
                error.message = redactor.annotations_text(&error.message);
            }
        }
        if self.options.redact_claims {
            annotate::scrub(&mut entry.regtap, &self.identifying);
            if let Some(comment) = entry.comment.as_mut() {
                annotate::scrub_text(comment, &self.identifying);
            }
        }
        entry
    }

    fn page(&self, operation: &Operation, redactor: Option<&Redactor>) -> Page {
        let mut page = Page {
            started_date_time: rfc3339(operation.start_ns),
            id: page_id(operation.index),
            title: operation.title.clone(),
            page_timings: PageTimings {
                on_content_load: -1.0,
                on_load: -1.0,
            },
            comment: Some(annotate::operation_status(operation)),
            regtap: Some(annotate::operation(operation)),
        };
        if let Some(redactor) = redactor {
            page.title = redactor.annotations_text(&page.title);
            if let Some(comment) = page.comment.as_mut() {
                *comment = redactor.annotations_text(comment);
            }
            if let Some(regtap) = page.regtap.as_mut() {
                redactor.annotations(regtap);
            }
        }
        // Titles name repositories, which URLs show anyway: left as they are.
        if self.options.redact_claims
            && let Some(regtap) = page.regtap.as_mut()
        {
            annotate::scrub(regtap, &self.identifying);
        }
        page
    }

    fn comment(&self) -> Option<String> {
        (!self.options.include_secrets).then(|| {
            format!(
                "Credentials (credential headers, cookies, URL passwords, token, \
                 password, secret, key and signature fields, pre-signed URL \
                 parameters) are replaced by <redacted hmac:…> fingerprints: \
                 HMAC-SHA256 of the value keyed with this export's salt {}, so \
                 equal values correlate within this file only.",
                self.options.salt.hex()
            )
        })
    }
}

fn page_id(operation_index: usize) -> String {
    format!("operation-{operation_index}")
}

/// Which bodies of a flow are blob bytes by the decoder's classification:
/// described, never pasted, whatever their media type claims.
#[derive(Debug, Clone, Copy)]
struct BlobSides {
    request: bool,
    response: bool,
}

impl BlobSides {
    /// Only a successful answer carries blob bytes; an error answer's body
    /// is the registry's explanation and stays in the HAR.
    fn of(kind: Option<&FlowKind>, status: Option<u16>) -> Self {
        BlobSides {
            request: kind.is_some_and(FlowKind::sends_blob_bytes),
            response: kind.is_some_and(FlowKind::receives_blob_bytes)
                && status.is_some_and(|s| (200..300).contains(&s)),
        }
    }
}

fn entry(
    flow: &Flow,
    blobs: BlobSides,
    options: &ExportOptions,
    redactor: Option<&Redactor>,
    bodies: &mut Vec<BodyToWrite>,
) -> Entry {
    let request_type = flow.request.headers.get("content-type");
    let request_body = render_body(&flow.request.body, request_type, blobs.request, redactor);
    let post_data = (flow.request.body.size > 0 || !flow.request.body.is_complete()).then(|| {
        let file = reference_body(&flow.request.body, &request_body, options, bodies);
        PostData {
            mime_type: request_type.unwrap_or("").to_owned(),
            text: request_body.text.clone().unwrap_or_default(),
            comment: request_body.description.clone(),
            body: BodyFacts {
                sha256: flow.request.body.sha256.clone(),
                incomplete: flow.request.body.is_cut_off(),
                file,
            },
        }
    });
    let url = match redactor {
        Some(redactor) => redactor.url(&flow.request.url),
        None => flow.request.url.clone(),
    };
    let request = Request {
        method: flow.request.method.clone(),
        query_string: query_string(&flow.request.url, redactor),
        url,
        http_version: flow.request.http_version.clone(),
        cookies: request_cookies(&flow.request.headers, redactor),
        headers: headers(&flow.request.headers, redactor),
        post_data,
        headers_size: -1,
        body_size: size(flow.request.body.size),
        comment: None,
    };

    let response = match &flow.response {
        Some(response) => {
            let content_type = response.headers.get("content-type");
            let rendered = render_body(&response.body, content_type, blobs.response, redactor);
            let file = reference_body(&response.body, &rendered, options, bodies);
            let location = response.headers.get("location").unwrap_or("");
            Response {
                status: response.status,
                status_text: regtap_capture::reason_phrase(response.status).to_owned(),
                http_version: response.http_version.clone(),
                cookies: response_cookies(&response.headers, redactor),
                headers: headers(&response.headers, redactor),
                content: Content {
                    size: size(response.body.size),
                    mime_type: content_type.unwrap_or("x-unknown").to_owned(),
                    text: rendered.text,
                    encoding: None,
                    comment: rendered.description,
                    body: BodyFacts {
                        sha256: response.body.sha256.clone(),
                        incomplete: response.body.is_cut_off(),
                        file,
                    },
                },
                redirect_url: match redactor {
                    _ if !(300..400).contains(&response.status) => String::new(),
                    Some(redactor) => redactor.url(location),
                    None => location.to_owned(),
                },
                headers_size: -1,
                body_size: size(response.body.size),
                comment: None,
            }
        }
        // HAR has no entry without a response: status 0, as browsers write
        // for requests that got none.
        None => Response {
            status: 0,
            status_text: String::new(),
            http_version: String::new(),
            cookies: Vec::new(),
            headers: Vec::new(),
            content: Content {
                size: 0,
                mime_type: "x-unknown".to_owned(),
                text: None,
                encoding: None,
                comment: None,
                body: BodyFacts::default(),
            },
            redirect_url: String::new(),
            headers_size: -1,
            body_size: -1,
            comment: Some("no response was received".to_owned()),
        },
    };

    let timings = timings(flow);
    Entry {
        pageref: None,
        started_date_time: rfc3339(flow.timing.request_start),
        time: timings.total(),
        request,
        response,
        cache: Cache {},
        timings,
        server_ip_address: flow.server_addr.as_deref().and_then(server_ip),
        connection: flow.client_addr.clone(),
        comment: None,
        error: flow.error.as_ref().map(|e| EntryError {
            stage: serde_json::to_value(e.stage)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            message: e.message.clone(),
        }),
        regtap: serde_json::Value::Null,
    }
}

fn size(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// The IP part of `host:port`, `[v6]:port` or a bare address.
fn server_ip(addr: &str) -> Option<String> {
    if let Ok(socket) = addr.parse::<SocketAddr>() {
        return Some(socket.ip().to_string());
    }
    addr.trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
        .ok()
        .map(|ip| ip.to_string())
}

/// Milliseconds between two instants, -1 when either is unknown or time ran backwards.
fn phase(from: Option<UnixNanos>, to: Option<UnixNanos>) -> f64 {
    match (from, to) {
        (Some(from), Some(to)) if to >= from => nanos_to_ms(to.saturating_sub(from)),
        _ => -1.0,
    }
}

pub(crate) fn nanos_to_ms(nanos: i64) -> f64 {
    nanos as f64 / 1_000_000.0
}

/// The proxy sees a request from its first byte to its last, then the response
/// head and body; connection set-up (DNS, TCP, TLS) happens on the proxy's own
/// upstream connection and is not recorded per flow, so those phases are -1.
fn timings(flow: &Flow) -> Timings {
    let t = &flow.timing;
    let send = phase(Some(t.request_start), t.request_end);
    // A server may answer before the request body ends (a 401 to a PATCH): then
    // waiting took no time and the response is received from the end of the send.
    let wait = match (t.request_end, t.response_head) {
        (Some(end), Some(head)) if head < end => 0.0,
        _ => phase(t.request_end, t.response_head),
    };
    let receive_from = match (t.request_end, t.response_head) {
        (Some(end), Some(head)) => Some(end.max(head)),
        (_, head) => head,
    };
    let receive = phase(receive_from, t.response_end);
    Timings {
        blocked: -1.0,
        dns: -1.0,
        connect: -1.0,
        ssl: -1.0,
        send,
        wait,
        receive,
    }
}

fn headers(headers: &Headers, redactor: Option<&Redactor>) -> Vec<NameValue> {
    headers
        .iter()
        .map(|h| {
            let value = match h.1.to_bytes() {
                Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                None => String::new(),
            };
            let value = match redactor {
                Some(redactor) => redactor.header_value(&h.0, &value),
                None => value,
            };
            NameValue {
                name: h.0.clone(),
                value,
            }
        })
        .collect()
}

fn query_string(url: &str, redactor: Option<&Redactor>) -> Vec<NameValue> {
    let without_fragment = url.split('#').next().unwrap_or_default();
    let Some((_, query)) = without_fragment.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = redact::decode_component(name);
            let value = redact::decode_component(value);
            let value = match redactor {
                Some(redactor) => redactor.parameter_value(&name, &value),
                None => value,
            };
            NameValue { name, value }
        })
        .collect()
}

fn request_cookies(headers: &Headers, redactor: Option<&Redactor>) -> Vec<Cookie> {
    headers
        .get_all("cookie")
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(name, value)| Cookie {
            name: name.to_owned(),
            value: cookie_value(value, redactor),
            path: None,
            domain: None,
            http_only: None,
            secure: None,
        })
        .collect()
}

fn response_cookies(headers: &Headers, redactor: Option<&Redactor>) -> Vec<Cookie> {
    headers
        .get_all("set-cookie")
        .filter_map(|line| {
            let mut parts = line.split(';').map(str::trim);
            let (name, value) = parts.next()?.split_once('=')?;
            let mut cookie = Cookie {
                name: name.to_owned(),
                value: cookie_value(value, redactor),
                path: None,
                domain: None,
                http_only: None,
                secure: None,
            };
            for attribute in parts {
                let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
                match key.to_ascii_lowercase().as_str() {
                    "path" => cookie.path = Some(val.to_owned()),
                    "domain" => cookie.domain = Some(val.to_owned()),
                    "httponly" => cookie.http_only = Some(true),
                    "secure" => cookie.secure = Some(true),
                    _ => {}
                }
            }
            Some(cookie)
        })
        .collect()
}

fn cookie_value(value: &str, redactor: Option<&Redactor>) -> String {
    match redactor {
        Some(redactor) => redactor.cookie_value(value),
        None => value.to_owned(),
    }
}

/// A body as it goes into the HAR: pasted text, or a description.
struct RenderedBody {
    text: Option<String>,
    description: Option<String>,
    /// Not pasted, but its bytes are known (for `--bodies DIR`).
    described_bytes: Option<BodySource>,
}

fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| {
        t.split(';').next().is_some_and(|e| {
            e.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    })
}

fn render_body(
    body: &Body,
    content_type: Option<&str>,
    blob: bool,
    redactor: Option<&Redactor>,
) -> RenderedBody {
    let stored = body
        .stored()
        .map(|path| BodySource::Stored(path.to_owned()));
    if body.size == 0 && body.is_complete() {
        return RenderedBody {
            text: None,
            description: None,
            described_bytes: None,
        };
    }
    let full = body.full_bytes();
    let textual = !blob && content_type.is_none_or(media::is_text);
    let text = full
        .as_deref()
        .filter(|_| textual)
        .and_then(|bytes| std::str::from_utf8(bytes).ok());
    if let Some(text) = text
        && body.is_complete()
    {
        let text = match redactor {
            None => Some(text.to_owned()),
            // Not JSON, yet naming a credential: withheld rather than guessed at.
            Some(redactor) => redactor.body_text(text, is_form(content_type)),
        };
        let description = text.is_none().then(|| {
            format!(
                "{} bytes of text not included: it names a credential field and could not be \
                 parsed to redact it",
                body.size
            )
        });
        return RenderedBody {
            text,
            description,
            described_bytes: None,
        };
    }
    let what = match body.ended {
        Ending::CutOff => "cut off (the exchange broke)",
        Ending::Unknown => "not in the recording it was imported from",
        Ending::Complete if blob => "blob",
        Ending::Complete if textual => "not fully captured",
        Ending::Complete => "binary",
    };
    let description = match body.digest() {
        Some(digest) => format!("{} bytes, {digest}, {what}; not included", body.size),
        None => format!("{} bytes, {what}; not included", body.size),
    };
    let described_bytes = match full {
        Some(bytes) if body.is_complete() => Some(BodySource::Inline(bytes)),
        _ if body.is_complete() => stored,
        _ => None,
    };
    RenderedBody {
        text: None,
        description: Some(description),
        described_bytes,
    }
}

/// With `--bodies DIR`, records a described body to be written and returns the
/// path the entry references.
fn reference_body(
    body: &Body,
    rendered: &RenderedBody,
    options: &ExportOptions,
    bodies: &mut Vec<BodyToWrite>,
) -> Option<String> {
    let dir = options.bodies_dir.as_deref()?;
    let source = rendered.described_bytes.clone()?;
    let sha256 = body.sha256.clone()?;
    let path = format!("{}/sha256/{sha256}", dir.trim_end_matches('/'));
    bodies.push(BodyToWrite { sha256, source });
    Some(path)
}
