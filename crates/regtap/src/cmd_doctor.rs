//! `regtap doctor`: checks that container daemons really go through this
//! regtap and trust its CA, and says how to fix what does not.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::doctor::{Daemon, Finding, Level, checks, gather};

#[derive(Args)]
pub struct DoctorArgs {
    /// The daemons to check (default: every dockerd, containerd and podman
    /// service running); `podman` without a service checks this shell's
    /// environment, which podman and skopeo read
    #[arg(value_enum)]
    daemons: Vec<Daemon>,
    /// A registry (`host[:port]`, as in image names) to check NO_PROXY,
    /// loopback, insecure-registries, name constraints and trust for (repeatable)
    #[arg(long = "registry", value_name = "HOST[:PORT]")]
    registries: Vec<String>,
    /// Also report the failures before HTTP (refused TLS handshakes, timeouts,
    /// refused connections) recorded in this capture, and check its hosts
    #[arg(long, value_name = "FILE")]
    capture: Option<PathBuf>,
    /// Print the facts gathered and the findings as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let facts = gather::gather(&gather::Request {
        daemons: &args.daemons,
        registries: &args.registries,
        capture: args.capture.as_deref(),
    })?;
    let findings = checks::run(&facts);
    let text = if args.json {
        let mut json = serde_json::to_string_pretty(&serde_json::json!({
            "ok": !checks::has_errors(&findings),
            "findings": findings,
            "facts": facts,
        }))?;
        json.push('\n');
        json
    } else {
        render(&findings)
    };
    crate::cmd_inspect::print_all(&text)?;
    Ok(if checks::has_errors(&findings) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One line per finding, grouped by subject, each problem followed by its fix.
fn render(findings: &[Finding]) -> String {
    let mut out = String::new();
    let mut subject: Option<&str> = None;
    for f in findings {
        if subject != Some(f.subject.as_str()) {
            if subject.is_some() {
                out.push('\n');
            }
            out.push_str(&f.subject);
            out.push('\n');
            subject = Some(&f.subject);
        }
        let mark = match f.level {
            Level::Ok => "ok",
            Level::Info => "note",
            Level::Warning => "WARNING",
            Level::Error => "PROBLEM",
        };
        out.push_str(&format!("  {mark:<8} {}\n", f.message));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("           fix: {fix}\n"));
        }
    }
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    let warnings = findings
        .iter()
        .filter(|f| f.level == Level::Warning)
        .count();
    out.push_str(&match (errors, warnings) {
        (0, 0) => "\nNo problem found.\n".to_owned(),
        (0, w) => format!("\nNo problem found; {w} warning(s).\n"),
        (e, w) => format!("\n{e} problem(s), {w} warning(s).\n"),
    });
    out
}
