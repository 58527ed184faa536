//! `regtap inspect`: explain a capture as operations and numbered steps.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use regtap_capture::Flow;
use regtap_decode::{Analysis, Options, render_text};
use regtap_har::redact::{Redactor, Salt};
use serde::Serialize;
use serde::ser::SerializeMap as _;

#[derive(Args)]
pub struct InspectArgs {
    /// Capture files written by `regtap proxy`, or HAR files from other
    /// tools; several are read as one, in time order (flow ids made unique)
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<PathBuf>,
    /// Only the operations of this client program (dockerd, skopeo, crane, …)
    #[arg(long, value_name = "PROGRAM")]
    client: Option<String>,
    /// Only the operations on this repository (either side of a copy)
    #[arg(long, value_name = "NAME")]
    repository: Option<String>,
    /// Only operation N (its number without filters)
    #[arg(long, value_name = "N")]
    operation: Option<usize>,
    /// Only the operations that failed
    #[arg(long)]
    failed: bool,
    /// Print the whole analysis as JSON (for scripts)
    #[arg(long)]
    json: bool,
    /// The registry's `http.secret`, to verify the HMAC of `_state` values
    #[arg(long, env = "REGTAP_REGISTRY_SECRET", hide_env_values = true)]
    registry_secret: Option<String>,
    /// When to colour the text output
    #[arg(long, value_enum, default_value_t = ColorMode::Auto)]
    color: ColorMode,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorMode {
    /// When standard output is a terminal and NO_COLOR is not set
    Auto,
    Always,
    Never,
}

pub fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let mut decoder = crate::decoding::ParallelDecoder::new(options(&args));
    // The text's times count from the earliest flow.
    let mut earliest: Option<Flow> = None;
    let streamed = crate::input::for_each_flow(&args.captures, |flow| {
        if earliest
            .as_ref()
            .is_none_or(|e| flow.timing.request_start < e.timing.request_start)
        {
            earliest = Some(flow.clone());
        }
        decoder.push(flow);
    });
    // A capture that cannot be read is reported without waiting for the
    // decoder to link what came before.
    let streamed = streamed?;
    let mut analysis = decoder.finish();
    for warning in &streamed.warnings {
        eprintln!("regtap: warning: {warning}");
    }
    if streamed.renumbering.len() > 1 {
        eprintln!("regtap: flow ids of the merged captures:");
        for file in &streamed.renumbering {
            eprintln!("  {}", file.describe());
        }
    }
    let color = match args.color {
        ColorMode::Always => true,
        ColorMode::Never => false,
        ColorMode::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let earliest = earliest.as_slice();
    // Indented for a person at a terminal; one line for a pipe or a file,
    // where indentation would make a large capture's document over ten
    // times the size.
    let pretty = std::io::stdout().is_terminal();
    let written =
        write_output(&args, &mut analysis, earliest, color, pretty, &mut out).and_then(|()| {
            out.flush()?;
            Ok(())
        });
    // The process is about to end, which returns all its memory at once:
    // freeing a large capture's analysis piece by piece first would only
    // delay the exit (0.25 s for 100k flows).
    std::mem::forget(analysis);
    match written {
        // A reader that went away (`| head`) is not an error.
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        other => other.map(|()| ExitCode::SUCCESS),
    }
}

/// The version of the `inspect --json` document (`docs/inspect-json.md`):
/// raised when a field is removed, renamed or changes meaning; new fields
/// and new enum values do not raise it.
pub const SCHEMA_VERSION: &str = "1";

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}

fn options(args: &InspectArgs) -> Options {
    Options {
        registry_secret: args.registry_secret.clone().map(String::into_bytes),
    }
}

/// Writes what `inspect` prints for an analysis to `out`; `flows` are the
/// flows analysed, or at least the earliest of them.
fn write_output(
    args: &InspectArgs,
    analysis: &mut Analysis,
    flows: &[Flow],
    color: bool,
    pretty_json: bool,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    crate::select::retain(
        analysis,
        &crate::select::OperationFilter {
            client: args.client.clone(),
            repository: args.repository.clone(),
            operation: args.operation,
            failed: args.failed,
        },
    );
    let redactor = Redactor::new(Salt::random());
    if args.json {
        // Credentials the decoder quotes (signed redirect URLs, error
        // messages) are redacted as in a HAR; token fingerprints stay the
        // decoder's, as the text output shows them.
        write_json(analysis, &redactor, pretty_json, &mut *out)?;
        out.write_all(b"\n")?;
    } else {
        let text = redactor.text(&render_text(analysis, flows, color));
        out.write_all(escape_controls(&text, color).as_bytes())?;
    }
    Ok(())
}

/// The analysis as JSON, redacted, written one flow (session,
/// operation, diagnostic) at a time: the document is never held whole.
/// Keys are in the order of `serde_json::Value` (sorted), and the redactor
/// sees the values in that order, as a walk over the whole document would.
fn write_json(
    analysis: &Analysis,
    redactor: &Redactor,
    pretty: bool,
    out: impl std::io::Write,
) -> serde_json::Result<()> {
    let document = RedactedAnalysis { analysis, redactor };
    if pretty {
        document.serialize(&mut serde_json::Serializer::pretty(out))
    } else {
        write_compact_json(analysis, redactor, &ItemChunks::for_this_machine(), out)
    }
}

/// How the items of the one-line document are shared among threads.
struct ItemChunks {
    threads: usize,
    items_per_chunk: usize,
}

impl ItemChunks {
    fn for_this_machine() -> Self {
        ItemChunks {
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            items_per_chunk: 2048,
        }
    }
}

/// The one-line document, as `RedactedAnalysis` writes it with
/// `serde_json`'s compact formatter, its items (the bulk of the work:
/// serialising, redacting) turned into text by several threads.
fn write_compact_json(
    analysis: &Analysis,
    redactor: &Redactor,
    chunks: &ItemChunks,
    mut out: impl std::io::Write,
) -> serde_json::Result<()> {
    let Analysis {
        flows,
        sessions,
        operations,
        diagnostics,
        ..
    } = analysis;
    out.write_all(br#"{"diagnostics":"#)
        .map_err(serde_json::Error::io)?;
    write_items(diagnostics, redactor, chunks, &mut out)?;
    out.write_all(br#","flows":"#)
        .map_err(serde_json::Error::io)?;
    write_items(flows, redactor, chunks, &mut out)?;
    out.write_all(br#","operations":"#)
        .map_err(serde_json::Error::io)?;
    write_items(operations, redactor, chunks, &mut out)?;
    out.write_all(br#","schema_version":"#)
        .map_err(serde_json::Error::io)?;
    serde_json::to_writer(&mut out, SCHEMA_VERSION)?;
    out.write_all(br#","sessions":"#)
        .map_err(serde_json::Error::io)?;
    write_items(sessions, redactor, chunks, &mut out)?;
    out.write_all(b"}").map_err(serde_json::Error::io)
}

/// `[item,item,…]`: the chunks are turned into text by the threads, each
/// with its own copy of the redactor, and written in order.
fn write_items<T: Serialize + Sync>(
    items: &[T],
    redactor: &Redactor,
    chunks: &ItemChunks,
    out: &mut impl std::io::Write,
) -> serde_json::Result<()> {
    let chunked: Vec<&[T]> = items.chunks(chunks.items_per_chunk.max(1)).collect();
    let threads = chunks.threads.clamp(1, chunked.len().max(1));
    out.write_all(b"[").map_err(serde_json::Error::io)?;
    regtap_har::in_order(
        (0..threads).map(|_| redactor.clone()).collect(),
        chunked.len(),
        |redactor, i| chunk_text(chunked[i], redactor),
        |i, text| {
            if i > 0 {
                out.write_all(b",").map_err(serde_json::Error::io)?;
            }
            out.write_all(&text).map_err(serde_json::Error::io)
        },
    )?;
    out.write_all(b"]").map_err(serde_json::Error::io)
}

/// `item,item,…` of one chunk, each redacted as a JSON value.
fn chunk_text<T: Serialize>(items: &[T], redactor: &Redactor) -> serde_json::Result<Vec<u8>> {
    let mut text = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            text.push(b',');
        }
        serde_json::to_writer(&mut text, &RedactedItem(item, redactor))?;
    }
    Ok(text)
}

struct RedactedAnalysis<'a> {
    analysis: &'a Analysis,
    redactor: &'a Redactor,
}

impl Serialize for RedactedAnalysis<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Analysis {
            flows,
            sessions,
            operations,
            diagnostics,
            ..
        } = self.analysis;
        let redactor = self.redactor;
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("diagnostics", &Redacted(diagnostics, redactor))?;
        map.serialize_entry("flows", &Redacted(flows, redactor))?;
        map.serialize_entry("operations", &Redacted(operations, redactor))?;
        map.serialize_entry("schema_version", SCHEMA_VERSION)?;
        map.serialize_entry("sessions", &Redacted(sessions, redactor))?;
        map.end()
    }
}

/// Items each redacted as a JSON value, one at a time.
struct Redacted<'a, T>(&'a [T], &'a Redactor);

impl<T: Serialize> Serialize for Redacted<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Redacted(items, redactor) = *self;
        serializer.collect_seq(items.iter().map(|item| RedactedItem(item, redactor)))
    }
}

struct RedactedItem<'a, T>(&'a T, &'a Redactor);

impl<T: Serialize> Serialize for RedactedItem<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut value = serde_json::to_value(self.0).map_err(serde::ser::Error::custom)?;
        self.1.analysis(&mut value);
        value.serialize(serializer)
    }
}

/// `text` safe for a terminal: registry-controlled text (error messages,
/// realms) cannot move the cursor, set the title or hide lines. Control
/// characters other than newline and tab are shown escaped (`\x1b`); with
/// `keep_colours`, `ESC [ … m` colour sequences (which `render_text` writes)
/// are kept, since they can only colour text.
pub fn escape_controls(text: &str, keep_colours: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let colour_len = keep_colours.then(|| colour_sequence_len(rest)).flatten();
        if let Some(len) = colour_len {
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        match c {
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {
                out.push_str(&c.escape_unicode().to_string().replace("\\u", "\\x"))
            }
            c => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The length of `ESC [ digits/semicolons m` at the start of `text`.
fn colour_sequence_len(text: &str) -> Option<usize> {
    let params = text.strip_prefix("\x1b[")?;
    let digits = params
        .find(|c: char| !(c.is_ascii_digit() || c == ';'))
        .unwrap_or(params.len());
    params[digits..].starts_with('m').then_some(2 + digits + 1)
}

/// Writes to standard output; a reader that went away (`| head`) is not an error.
pub fn print_all(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use regtap_decode::analyze;

    fn output(args: &InspectArgs, flows: &[Flow], color: bool) -> anyhow::Result<String> {
        let mut out = Vec::new();
        write_output(
            args,
            &mut analyze(flows, &options(args)),
            flows,
            color,
            true,
            &mut out,
        )?;
        Ok(String::from_utf8(out)?)
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: InspectArgs,
    }

    /// The capture transcribed from the seed document, as `inspect` prints it.
    fn inspect(extra: &[&str]) -> String {
        let capture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../captures/dockerhub-push.jsonl"
        );
        let mut argv = vec!["inspect", capture];
        argv.extend_from_slice(extra);
        let args = Cli::parse_from(argv).args;
        let (loaded, _) = crate::input::load_all(&args.captures).unwrap();
        let color = args.color == ColorMode::Always;
        output(&args, &loaded.flows, color).unwrap()
    }

    #[test]
    fn text_json_and_colour() {
        let text = inspect(&["--color", "never"]);
        assert!(
            text.contains("1. push jockerdragon/test · dockerd 20.10.25+dfsg1 — incomplete"),
            "{text}"
        );
        assert!(
            text.contains("granted repository:jockerdragon/test:pull,push"),
            "{text}"
        );
        assert!(!text.contains('\x1b'));
        assert!(inspect(&["--color", "always"]).contains('\x1b'));
        let json: serde_json::Value = serde_json::from_str(&inspect(&["--json"])).unwrap();
        assert_eq!(json["schema_version"], SCHEMA_VERSION);
        assert_eq!(json["flows"].as_array().map(Vec::len), Some(4));
        assert_eq!(json["operations"][0]["title"], "push jockerdragon/test");
    }

    #[test]
    fn quoted_credentials_and_terminal_controls_never_reach_the_output() {
        use regtap_capture::factory::FlowBuilder;
        let signed = "https://s3.test/blob?X-Amz-Expires=60&X-Amz-Signature=5ec7e7516a7e";
        let blob = format!("https://r.test/v2/lab/app/blobs/sha256:{}", "a".repeat(64));
        let flows = vec![
            FlowBuilder::new(1, "GET", &blob)
                .status(307)
                .response_header("Location", signed)
                .build(),
            FlowBuilder::new(2, "GET", signed).status(200).build(),
            FlowBuilder::new(3, "GET", "https://r.test/v2/lab/app/manifests/latest")
                .status(404)
                .response_header("Content-Type", "application/json")
                .response_body(
                    br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"gone]0;owned[2J"}]}"#,
                )
                .build(),
        ];
        let args = |extra: &[&str]| {
            let mut argv = vec!["inspect", "x"];
            argv.extend_from_slice(extra);
            Cli::parse_from(argv).args
        };
        for (extra, color) in [(&["--json"][..], false), (&[][..], false), (&[][..], true)] {
            let out = output(&args(extra), &flows, color).unwrap();
            assert!(!out.contains("5ec7e7516a7e"), "{out}");
            if extra == ["--json"] {
                // What is not secret stays.
                assert!(out.contains("X-Amz-Expires=60"), "{out}");
            }
            assert!(!out.contains("\x1b]0") && !out.contains("\x1b[2J"), "{out}");
            assert!(!out.contains('\x07'), "{out}");
        }
    }

    #[test]
    fn terminal_controls_from_the_registry_are_escaped() {
        let hostile = "denied\x1b]0;owned\x07\x1b[2J\r\u{9b}31m\x1b[1mbold\x1b[0m\nnext\tcol";
        let plain = escape_controls(hostile, false);
        assert!(
            !plain
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "{plain}"
        );
        assert!(plain.starts_with("denied\\x{1b}]0;owned\\x{7}"), "{plain}");
        let coloured = escape_controls(hostile, true);
        assert!(coloured.contains("\x1b[1mbold\x1b[0m"), "{coloured}");
        assert!(
            !coloured.contains("\x1b[2J") && !coloured.contains("\x1b]0"),
            "{coloured}"
        );
        assert!(coloured.contains("\nnext\tcol"));
    }

    #[test]
    fn a_wrong_registry_secret_is_reported() {
        let text = inspect(&["--registry-secret", "not-docker-hubs", "--color", "never"]);
        assert!(text.contains("HMAC INVALID"), "{text}");
    }

    /// Streamed one item at a time, `inspect --json` is the document a
    /// redacting walk over the whole analysis (and its schema version)
    /// gives, byte for byte, indented or on one line, however the items
    /// are shared among threads.
    #[test]
    fn streamed_json_is_the_whole_document_redacted() {
        let captures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../captures");
        let mut checked = 0;
        for entry in std::fs::read_dir(captures).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            let (loaded, _) = crate::input::load_all(std::slice::from_ref(&path)).unwrap();
            let analysis = analyze(&loaded.flows, &Options::default());
            let salt = || Salt::from_bytes([7; 16]);
            let mut whole = serde_json::to_value(&analysis).unwrap();
            whole["schema_version"] = SCHEMA_VERSION.into();
            Redactor::new(salt()).analysis(&mut whole);
            for (pretty, expected) in [
                (true, serde_json::to_string_pretty(&whole).unwrap()),
                (false, serde_json::to_string(&whole).unwrap()),
            ] {
                let mut streamed = Vec::new();
                write_json(&analysis, &Redactor::new(salt()), pretty, &mut streamed).unwrap();
                assert_eq!(
                    String::from_utf8(streamed).unwrap(),
                    expected,
                    "{}",
                    path.display()
                );
            }
            // Items shared among more threads than chunks, and among
            // threads that each write several chunks.
            let expected = serde_json::to_string(&whole).unwrap();
            for (threads, items_per_chunk) in [(3, 1000), (3, 2), (2, 1)] {
                let chunks = ItemChunks {
                    threads,
                    items_per_chunk,
                };
                let mut streamed = Vec::new();
                write_compact_json(&analysis, &Redactor::new(salt()), &chunks, &mut streamed)
                    .unwrap();
                assert_eq!(
                    String::from_utf8(streamed).unwrap(),
                    expected,
                    "{} in chunks of {items_per_chunk} on {threads} threads",
                    path.display()
                );
            }
            checked += 1;
        }
        assert!(checked >= 10, "{checked} captures");
    }
}
