//! The `regtap` command: a thin layer of argument parsing over the library crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod input;

#[derive(Parser)]
#[command(name = "regtap", version, about = "Capture and explain container-registry traffic")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {}

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
    match cli.command {}
}
