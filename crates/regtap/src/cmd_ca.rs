//! `regtap ca init|show|export`: the certificate authority the proxy signs with.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use regtap_proxy::{Ca, CaOptions, data_dir_from_env};

#[derive(Args)]
pub struct CaArgs {
    #[command(subcommand)]
    command: CaCommand,
}

#[derive(Subcommand)]
enum CaCommand {
    /// Create the CA certificate and key in the data directory ($REGTAP_HOME,
    /// else $XDG_DATA_HOME/regtap, else ~/.local/share/regtap)
    Init {
        /// Replace an existing CA
        #[arg(long)]
        force: bool,
        /// Only allow the CA to issue for DOMAIN and its subdomains (repeatable);
        /// a leaked key then cannot impersonate other sites
        #[arg(long = "name-constraint", value_name = "DOMAIN")]
        name_constraints: Vec<String>,
        /// Days the CA stays valid (default 3650); a short-lived CA limits
        /// what a leaked key can do
        #[arg(long, value_name = "DAYS")]
        validity_days: Option<u32>,
    },
    /// Print the CA's paths, subject, SHA-256 fingerprint and validity
    Show,
    /// Write the CA certificate, for clients to trust
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Pem)]
        format: ExportFormat,
        /// Output file (default: standard output)
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Pem,
    Der,
}

pub fn run(args: CaArgs) -> anyhow::Result<ExitCode> {
    let dir = data_dir_from_env()?;
    match args.command {
        CaCommand::Init {
            force,
            name_constraints,
            validity_days,
        } => {
            let ca = Ca::init(
                &dir,
                &CaOptions {
                    name_constraints,
                    force,
                    validity_days,
                },
            )?;
            eprintln!("regtap: created a CA in {}", dir.display());
            print_info(&ca)?;
        }
        CaCommand::Show => print_info(&Ca::load(&dir)?)?,
        CaCommand::Export { format, output } => {
            let ca = Ca::load(&dir)?;
            let bytes = match format {
                ExportFormat::Pem => ca.cert_pem().as_bytes(),
                ExportFormat::Der => ca.cert_der(),
            };
            match output {
                Some(path) => std::fs::write(&path, bytes)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => {
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(bytes)?;
                    stdout.flush()?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_info(ca: &Ca) -> anyhow::Result<()> {
    let info = ca.info()?;
    println!("certificate:  {}", info.cert_path.display());
    println!("key:          {}", info.key_path.display());
    println!("subject:      {}", info.subject);
    println!("SHA-256:      {}", info.sha256_fingerprint);
    println!("not before:   {}", info.not_before);
    println!("not after:    {}", info.not_after);
    if info.name_constraints.is_empty() {
        println!("constraints:  none (may issue for any name)");
    } else {
        println!("constraints:  {}", info.name_constraints.join(", "));
    }
    Ok(())
}
