//! `regtap tui`: browse a capture in the terminal UI.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use regtap_decode::Options;

#[derive(Args)]
pub struct TuiArgs {
    /// Capture files written by `regtap proxy`, or HAR files from other
    /// tools; several are shown as one timeline (flow ids made unique)
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<PathBuf>,
    /// The registry's `http.secret`, to verify the HMAC of `_state` values
    #[arg(long, env = "REGTAP_REGISTRY_SECRET", hide_env_values = true)]
    registry_secret: Option<String>,
}

pub fn run(args: TuiArgs) -> anyhow::Result<ExitCode> {
    crate::heap::grow_in_large_steps();
    let (loaded, renumbering) = crate::input::load_all(&args.captures)?;
    // Printed on the normal screen, where they are found again after the
    // TUI closes; the first one also shows in the TUI's status line.
    for warning in &loaded.warnings {
        eprintln!("regtap: warning: {warning}");
    }
    if renumbering.len() > 1 {
        eprintln!("regtap: flow ids of the merged captures:");
        for file in &renumbering {
            eprintln!("  {}", file.describe());
        }
    }
    let options = Options {
        registry_secret: args.registry_secret.map(String::into_bytes),
    };
    let title = match args.captures.as_slice() {
        [only] => only.display().to_string(),
        [first, rest @ ..] => format!("{} + {} more", first.display(), rest.len()),
        [] => String::new(),
    };
    let notice = loaded.warnings.first().map(|w| format!("warning: {w}"));
    regtap_tui::run_capture(&title, loaded.flows, &options, notice)?;
    Ok(ExitCode::SUCCESS)
}
