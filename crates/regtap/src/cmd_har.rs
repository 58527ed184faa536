//! `regtap har`: export a capture (or re-export a HAR) as an annotated HAR 1.2,
//! credentials redacted unless asked otherwise.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use regtap_capture::{Flow, FlowLines, FlowLocation};
use regtap_decode::Options;
use regtap_har::redact::Salt;
use regtap_har::{
    BodySource, BodyToWrite, ExportOptions, Listed, Parallelism, export_flows_in_parallel,
};

#[derive(Args)]
pub struct HarArgs {
    /// Capture file written by `regtap proxy`, or a HAR file from another tool
    capture: PathBuf,
    /// Where to write the HAR (`-` for standard output)
    #[arg(short, long, value_name = "OUT.har")]
    output: PathBuf,
    /// Only the flows of operation N, as numbered by `regtap inspect`
    #[arg(long, value_name = "N")]
    operation: Option<usize>,
    /// Keep credentials (Authorization, tokens, passwords, cookies, signed URLs)
    /// instead of replacing them by `<redacted hmac:…>` fingerprints
    #[arg(long)]
    include_secrets: bool,
    /// Also drop decoded JWT claims and the identities they name from the annotations
    #[arg(long)]
    redact_claims: bool,
    /// Write blob bodies to DIR/sha256/<hex> and reference them from the entries
    /// (`_file`, the path as given here)
    #[arg(long, value_name = "DIR")]
    bodies: Option<PathBuf>,
    /// The proxy's body store (`regtap proxy --store-bodies`), where --bodies finds
    /// large bodies [default: the one the capture's header names, when it is
    /// in the capture's directory]
    #[arg(long, value_name = "DIR")]
    body_store: Option<PathBuf>,
    /// The registry's `http.secret`, to verify the HMAC of `_state` values
    #[arg(long, env = "REGTAP_REGISTRY_SECRET", hide_env_values = true)]
    registry_secret: Option<String>,
}

/// Where the export gets a flow again.
enum Source {
    /// Its line in the capture, read again for each use: a large capture's
    /// flows are never all held (the decoder keeps what it needs of them).
    Line(FlowLocation),
    /// A flow without a line of its own: a HAR entry, or an exchange
    /// rebuilt from in-flight records.
    Held(Box<Flow>),
}

pub fn run(args: HarArgs) -> anyhow::Result<ExitCode> {
    let mut decoder = crate::decoding::ParallelDecoder::new(Options {
        registry_secret: args.registry_secret.map(String::into_bytes),
    });
    let mut listing = Vec::new();
    let mut sources = Vec::new();
    let loaded = crate::input::stream(&args.capture, |flow, location| {
        listing.push(Listed::of(&flow));
        match location {
            Some(location) => {
                sources.push(Source::Line(location));
                // The decoder reads bodies whole or never; the first bytes
                // of a larger body are read again with the flow, for its entry.
                let mut flow = flow;
                flow.forget_body_prefixes();
                decoder.push(flow);
            }
            None => {
                decoder.push(flow.clone());
                sources.push(Source::Held(Box::new(flow)));
            }
        }
    });
    // A capture that cannot be read is reported without waiting for the
    // decoder to link what came before.
    let loaded = loaded?;
    let analysis = decoder.finish();
    if args.bodies.is_some()
        && args.body_store.is_none()
        && let Some(foreign) = &loaded.foreign_body_store
    {
        eprintln!(
            "regtap: warning: the capture names the body store {}, outside the capture's \
             directory: not used (pass --body-store {} if it is yours)",
            foreign.display(),
            foreign.display()
        );
    }
    for warning in &loaded.warnings {
        eprintln!("regtap: warning: {warning}");
    }
    // Each thread that builds entries reads flows again with its own reader.
    let (sources, capture) = (&sources, &args.capture);
    let reader = || {
        let mut lines: Option<FlowLines> = None;
        move |i: usize| match &sources[i] {
            Source::Held(flow) => Ok(Cow::Borrowed(&**flow)),
            Source::Line(location) => {
                let lines = match &mut lines {
                    Some(lines) => lines,
                    None => lines.insert(FlowLines::open(capture)?),
                };
                lines.read(location).map(Cow::Owned)
            }
        }
    };
    let options = ExportOptions {
        include_secrets: args.include_secrets,
        redact_claims: args.redact_claims,
        operation: args.operation,
        bodies_dir: args.bodies.as_ref().map(|dir| dir.display().to_string()),
        salt: Salt::random(),
    };
    let store = args.body_store.as_deref().or(loaded.body_store.as_deref());
    let write_one = |body: &BodyToWrite| match &args.bodies {
        Some(dir) => match write_body(dir, store, body) {
            Ok(()) => true,
            Err(reason) => {
                eprintln!(
                    "regtap: warning: body sha256:{} not written: {reason:#}",
                    body.sha256
                );
                false
            }
        },
        None => false,
    };
    // Written entry by entry: the HAR is never held whole.
    let export = |out: &mut dyn std::io::Write| {
        export_flows_in_parallel(
            &listing,
            reader,
            &analysis,
            &options,
            Parallelism::for_this_machine(),
            out,
            write_one,
        )
    };
    let written = if args.output == Path::new("-") {
        export(&mut std::io::BufWriter::new(std::io::stdout().lock()))?
    } else {
        crate::private_file::write_with(&args.output, |out| Ok(export(out)?))?
    };
    eprintln!(
        "regtap: wrote {}: {} entries, {} operation{}{}{}",
        if args.output == Path::new("-") {
            "standard output".to_owned()
        } else {
            args.output.display().to_string()
        },
        written.entries,
        written.pages,
        if written.pages == 1 { "" } else { "s" },
        match &args.bodies {
            Some(dir) => format!(
                ", {} bodies in {}",
                written.bodies,
                dir.join("sha256").display()
            ),
            None => String::new(),
        },
        if args.include_secrets {
            "; credentials INCLUDED: do not share this file"
        } else {
            "; credentials redacted (--include-secrets keeps them)"
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes one body to `dir/sha256/<hex>` (mode 0600, directories 0700) from
/// the capture's bytes or the body store. Names come from the capture file,
/// so they are checked before they become paths, and every body is checked
/// against its hash before it is written.
fn write_body(dir: &Path, store: Option<&Path>, body: &BodyToWrite) -> anyhow::Result<()> {
    let is_hex_digest = body.sha256.len() == 64
        && body
            .sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    anyhow::ensure!(is_hex_digest, "not a lowercase SHA-256 hex digest");
    let target_dir = dir.join("sha256");
    crate::private_file::create_dir(&target_dir)?;
    let target = target_dir.join(&body.sha256);
    match &body.source {
        BodySource::Inline(bytes) => {
            anyhow::ensure!(
                regtap_capture::sha256_hex(bytes) == body.sha256,
                "the capture's bytes do not hash to it"
            );
            crate::private_file::write(&target, bytes)?;
        }
        BodySource::Stored(relative) => {
            let store = store.context(
                "it is in the proxy's body store, which is unknown: pass --body-store DIR",
            )?;
            // The store keeps a body under its own hash and nowhere else.
            anyhow::ensure!(
                *relative == format!("sha256/{}", body.sha256),
                "its body-store path {relative:?} is not sha256/<its hash>"
            );
            crate::private_file::copy_verified(&store.join(relative), &target, &body.sha256)?;
        }
    }
    Ok(())
}
