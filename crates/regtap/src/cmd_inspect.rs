//! `regtap inspect`: explain a capture as operations and numbered steps.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use regtap_decode::{Options, analyze, render_text};

#[derive(Args)]
pub struct InspectArgs {
    /// Capture file written by `regtap proxy`
    capture: PathBuf,
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
    let loaded = crate::input::load(&args.capture)?;
    for warning in &loaded.warnings {
        eprintln!("regtap: warning: {warning}");
    }
    let options = Options {
        registry_secret: args.registry_secret.map(String::into_bytes),
    };
    let analysis = analyze(&loaded.flows, &options);
    let text = if args.json {
        let mut json = serde_json::to_string_pretty(&analysis)?;
        json.push('\n');
        json
    } else {
        let color = match args.color {
            ColorMode::Always => true,
            ColorMode::Never => false,
            ColorMode::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        };
        render_text(&analysis, &loaded.flows, color)
    };
    print_all(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes to standard output; a reader that went away (`| head`) is not an error.
pub fn print_all(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
