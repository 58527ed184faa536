//! `regtap tui`: browse a capture in the terminal UI.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use regtap_decode::Options;

#[derive(Args)]
pub struct TuiArgs {
    /// Capture file written by `regtap proxy`, or a HAR file from another tool
    capture: PathBuf,
    /// The registry's `http.secret`, to verify the HMAC of `_state` values
    #[arg(long, env = "REGTAP_REGISTRY_SECRET", hide_env_values = true)]
    registry_secret: Option<String>,
}

pub fn run(args: TuiArgs) -> anyhow::Result<ExitCode> {
    let loaded = crate::input::load(&args.capture)?;
    // Printed on the normal screen, where they are found again after the
    // TUI closes; the first one also shows in the TUI's status line.
    for warning in &loaded.warnings {
        eprintln!("regtap: warning: {warning}");
    }
    let options = Options {
        registry_secret: args.registry_secret.map(String::into_bytes),
    };
    let title = args.capture.display().to_string();
    let notice = loaded.warnings.first().map(|w| format!("warning: {w}"));
    regtap_tui::run_capture(&title, loaded.flows, &options, notice)?;
    Ok(ExitCode::SUCCESS)
}
