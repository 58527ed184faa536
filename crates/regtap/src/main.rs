//! The `regtap` command: a thin layer of argument parsing over the library crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd_ca;
mod cmd_decode;
mod cmd_diagram;
mod cmd_docs;
mod cmd_doctor;
mod cmd_har;
mod cmd_inspect;
mod cmd_lab;
mod cmd_proxy;
mod cmd_setup;
mod cmd_tui;
mod decoding;
mod doctor;
mod heap;
mod input;
mod private_file;
mod select;

#[global_allocator]
static HEAP: heap::SwitchableHeap = heap::SwitchableHeap;

#[derive(Parser)]
#[command(
    name = "regtap",
    version,
    about = "Capture and explain container-registry traffic"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the recording proxy (HTTPS_PROXY for dockerd and other clients)
    Proxy(Box<cmd_proxy::ProxyArgs>),
    /// Manage the certificate authority the proxy signs its certificates with
    Ca(cmd_ca::CaArgs),
    /// Show how to point container tools at the proxy
    Setup(cmd_setup::SetupArgs),
    /// Explain a capture: operations (login, push, pull) and their numbered steps
    Inspect(cmd_inspect::InspectArgs),
    /// Decode a pasted JWT or `_state` value
    Decode(cmd_decode::DecodeArgs),
    /// Export a capture as an annotated HAR 1.2 (credentials redacted by default)
    Har(cmd_har::HarArgs),
    /// Browse a capture in the terminal: operations, sequence diagrams, flows
    Tui(cmd_tui::TuiArgs),
    /// Run a local Docker-Hub-like lab (token server, registries, dockerd) through regtap (built with `--features lab`)
    Lab(cmd_lab::LabArgs),
    /// Check that docker/containerd/podman really go through this regtap and trust its CA
    Doctor(cmd_doctor::DoctorArgs),
    /// Draw an operation of a capture as a sequence diagram (Mermaid)
    Diagram(cmd_diagram::DiagramArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(cmd_docs::CompletionsArgs),
    /// Print the man page (roff): `regtap man | man -l -`
    Man,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("regtap: {}", error_text(&err));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, each cause once: library errors
/// often name their source in their own message already.
fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if matches!(
        cli.command,
        Command::Inspect(_) | Command::Har(_) | Command::Diagram(_)
    ) {
        heap::analyse_with_mimalloc();
    }
    match cli.command {
        Command::Proxy(args) => cmd_proxy::run(*args),
        Command::Ca(args) => cmd_ca::run(args),
        Command::Setup(args) => cmd_setup::run(args),
        Command::Inspect(args) => cmd_inspect::run(args),
        Command::Decode(args) => cmd_decode::run(args),
        Command::Har(args) => cmd_har::run(args),
        Command::Tui(args) => cmd_tui::run(args),
        Command::Lab(args) => cmd_lab::run(args),
        Command::Doctor(args) => cmd_doctor::run(args),
        Command::Diagram(args) => cmd_diagram::run(args),
        Command::Completions(args) => cmd_docs::completions(args),
        Command::Man => cmd_docs::man(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let err = anyhow::Error::new(regtap_capture::CaptureError::Io {
            path: "/nonexistent/x.jsonl".into(),
            source: io,
        })
        .context("cannot start the proxy");
        assert_eq!(
            error_text(&err),
            "cannot start the proxy: /nonexistent/x.jsonl: No such file or directory"
        );
    }
}
