//! The `regtap` command: a thin layer of argument parsing over the library crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd_ca;
mod cmd_decode;
mod cmd_har;
mod cmd_inspect;
mod cmd_lab;
mod cmd_proxy;
mod cmd_setup;
mod cmd_tui;
mod input;
mod private_file;

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
    Proxy(cmd_proxy::ProxyArgs),
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
    /// Run a local Docker-Hub-like lab (token server, registries, dockerd) through regtap
    Lab(cmd_lab::LabArgs),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("regtap: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Proxy(args) => cmd_proxy::run(args),
        Command::Ca(args) => cmd_ca::run(args),
        Command::Setup(args) => cmd_setup::run(args),
        Command::Inspect(args) => cmd_inspect::run(args),
        Command::Decode(args) => cmd_decode::run(args),
        Command::Har(args) => cmd_har::run(args),
        Command::Tui(args) => cmd_tui::run(args),
        Command::Lab(args) => cmd_lab::run(args),
    }
}
