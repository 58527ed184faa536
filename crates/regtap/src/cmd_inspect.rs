//! `regtap inspect`: explain a capture as operations and numbered steps.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use regtap_decode::{Options, analyze, render_text};
use regtap_har::redact::{Redactor, Salt};

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
    let (loaded, renumbering) = crate::input::load_all(&args.captures)?;
    for warning in &loaded.warnings {
        eprintln!("regtap: warning: {warning}");
    }
    if renumbering.len() > 1 {
        eprintln!("regtap: flow ids of the merged captures:");
        for file in &renumbering {
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
    print_all(&output(&args, &loaded.flows, color)?)?;
    Ok(ExitCode::SUCCESS)
}

/// The version of the `inspect --json` document (`docs/inspect-json.md`):
/// raised when a field is removed, renamed or changes meaning; new fields
/// and new enum values do not raise it.
pub const SCHEMA_VERSION: &str = "1";

/// The `inspect --json` document: the decoder's analysis, whose every field
/// is documented in `docs/inspect-json.md` (a test holds the two together),
/// under a version.
#[derive(serde::Serialize)]
struct InspectJson<'a> {
    schema_version: &'static str,
    #[serde(flatten)]
    analysis: &'a regtap_decode::Analysis,
}

/// What `inspect` prints for these flows.
fn output(
    args: &InspectArgs,
    flows: &[regtap_capture::Flow],
    color: bool,
) -> anyhow::Result<String> {
    let options = Options {
        registry_secret: args.registry_secret.clone().map(String::into_bytes),
    };
    let mut analysis = analyze(flows, &options);
    crate::select::retain(
        &mut analysis,
        &crate::select::OperationFilter {
            client: args.client.clone(),
            repository: args.repository.clone(),
            operation: args.operation,
            failed: args.failed,
        },
    );
    Ok(if args.json {
        // Credentials the decoder quotes (signed redirect URLs, error
        // messages) are redacted as in a HAR; token fingerprints stay the
        // decoder's, as the text output shows them.
        let mut value = serde_json::to_value(InspectJson {
            schema_version: SCHEMA_VERSION,
            analysis: &analysis,
        })?;
        Redactor::new(Salt::random()).analysis(&mut value);
        let mut json = serde_json::to_string_pretty(&value)?;
        json.push('\n');
        json
    } else {
        let text = Redactor::new(Salt::random()).text(&render_text(&analysis, flows, color));
        escape_controls(&text, color)
    })
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
}
