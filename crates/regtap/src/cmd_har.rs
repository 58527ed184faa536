//! `regtap har`: export a capture (or re-export a HAR) as an annotated HAR 1.2,
//! credentials redacted unless asked otherwise.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use regtap_decode::{Options, analyze};
use regtap_har::model::{BodyFacts, Har};
use regtap_har::redact::Salt;
use regtap_har::{BodySource, BodyToWrite, ExportOptions, export};

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

pub fn run(args: HarArgs) -> anyhow::Result<ExitCode> {
    let loaded = crate::input::load(&args.capture)?;
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
    let analysis = analyze(
        &loaded.flows,
        &Options {
            registry_secret: args.registry_secret.map(String::into_bytes),
        },
    );
    let options = ExportOptions {
        include_secrets: args.include_secrets,
        redact_claims: args.redact_claims,
        operation: args.operation,
        bodies_dir: args.bodies.as_ref().map(|dir| dir.display().to_string()),
        salt: Salt::random(),
    };
    let mut exported = export(&loaded.flows, &analysis, &options)?;

    let mut written = 0;
    if let Some(dir) = &args.bodies {
        let store = args.body_store.as_deref().or(loaded.body_store.as_deref());
        let mut unwritten = HashSet::new();
        for body in &exported.bodies {
            match write_body(dir, store, body) {
                Ok(()) => written += 1,
                Err(reason) => {
                    eprintln!(
                        "regtap: warning: body sha256:{} not written: {reason:#}",
                        body.sha256
                    );
                    unwritten.insert(body.sha256.clone());
                }
            }
        }
        // An entry must not point at a file that is not there.
        drop_references(&mut exported.har, &unwritten);
    }

    let mut json = serde_json::to_vec_pretty(&exported.har)?;
    json.push(b'\n');
    if args.output == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(&json).and_then(|()| out.flush())?;
    } else {
        crate::private_file::write(&args.output, &json)?;
    }
    let log = &exported.har.log;
    eprintln!(
        "regtap: wrote {}: {} entries, {} operation{}{}{}",
        if args.output == Path::new("-") {
            "standard output".to_owned()
        } else {
            args.output.display().to_string()
        },
        log.entries.len(),
        log.pages.len(),
        if log.pages.len() == 1 { "" } else { "s" },
        match &args.bodies {
            Some(dir) => format!(", {written} bodies in {}", dir.join("sha256").display()),
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

fn drop_references(har: &mut Har, unwritten: &HashSet<String>) {
    let forget_file = |facts: &mut BodyFacts| {
        if facts.sha256.as_ref().is_some_and(|s| unwritten.contains(s)) {
            facts.file = None;
        }
    };
    for entry in &mut har.log.entries {
        if let Some(post) = entry.request.post_data.as_mut() {
            forget_file(&mut post.body);
        }
        forget_file(&mut entry.response.content.body);
    }
}
