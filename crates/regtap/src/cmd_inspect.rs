//! `regtap inspect`: explain a capture as operations and numbered steps.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use regtap_decode::{Options, analyze, render_text};

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
        let mut json = serde_json::to_string_pretty(&analysis)?;
        json.push('\n');
        json
    } else {
        render_text(&analysis, flows, color)
    })
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
        assert_eq!(json["flows"].as_array().map(Vec::len), Some(4));
        assert_eq!(json["operations"][0]["title"], "push jockerdragon/test");
    }

    #[test]
    fn a_wrong_registry_secret_is_reported() {
        let text = inspect(&["--registry-secret", "not-docker-hubs", "--color", "never"]);
        assert!(text.contains("HMAC INVALID"), "{text}");
    }
}
