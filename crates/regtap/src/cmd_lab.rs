//! `regtap lab`: a local Docker-Hub-like set-up to watch a whole login, token,
//! push and pull offline: a token server, a token-auth and a Basic-auth
//! registry, and a private dockerd whose HTTPS_PROXY is this regtap. Needs
//! root, dockerd, docker-registry and skopeo (Debian: docker.io,
//! docker-registry, skopeo). Everything is stopped and removed on Ctrl-C,
//! except the capture. Built only with the `lab` feature
//! (`cargo run --release --features lab -- lab`).

use std::path::PathBuf;
use std::process::ExitCode;

#[cfg(feature = "lab")]
use anyhow::Context as _;
use clap::Args;
#[cfg(feature = "lab")]
use regtap_lab::image::TestImage;
#[cfg(feature = "lab")]
use regtap_lab::{LAB_PASSWORD, LAB_USER, Lab, Via, missing_prerequisites};

#[derive(Args)]
pub struct LabArgs {
    /// Where to write the capture when the lab stops (default: ./regtap-lab-<UTC time>.jsonl)
    #[arg(long, value_name = "FILE")]
    #[cfg_attr(not(feature = "lab"), allow(dead_code))]
    capture: Option<PathBuf>,
}

/// Without the lab, the command still exists so that it can say how to get it.
#[cfg(not(feature = "lab"))]
pub fn run(_: LabArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "this regtap was built without the lab; build it with `--features lab` \
         (from a checkout: `cargo run --release --features lab -- lab`)"
    )
}

#[cfg(feature = "lab")]
pub fn run(args: LabArgs) -> anyhow::Result<ExitCode> {
    let missing = missing_prerequisites();
    if !missing.is_empty() {
        anyhow::bail!("regtap lab needs {}", missing.join(", "));
    }
    let capture_out = args
        .capture
        .unwrap_or_else(|| crate::cmd_proxy::timestamped_capture_path("regtap-lab"));
    let bin = std::env::current_exe().context("cannot find the regtap binary")?;
    eprintln!("regtap lab: starting (a token server, two registries, dockerd)…");
    let mut lab = Lab::start(Via::Regtap {
        bin,
        proxy_args: Vec::new(),
        store_bodies: false,
    })?;
    lab.start_capture("lab")?;

    let image = TestImage::new(1, &[256 * 1024, 64 * 1024, 1024])?;
    let demo = format!("{}/lab/demo:latest", lab.registry_host());
    let archive = lab.dir().join("demo.tar");
    image.write_docker_archive(&archive, &[&demo])?;
    let loaded = lab.docker(&["load", "-i", &archive.display().to_string()]);
    if !loaded.success {
        anyhow::bail!(
            "docker load of the demo image failed: {}",
            loaded.combined()
        );
    }

    println!(
        "regtap lab is ready. In another shell:\n\
         \n  export DOCKER_HOST=unix://{socket} DOCKER_CONFIG={config}\
         \n  docker login {registry} -u {LAB_USER} -p {LAB_PASSWORD}\
         \n  docker push {demo}\
         \n  docker rmi {demo} && docker pull {demo}\
         \n\
         \n  token-auth registry  {registry}  (token server {auth})\
         \n  Basic-auth registry  {basic}  (same user)\
         \n\nCtrl-C stops the lab and writes the capture to {out}",
        socket = lab.dockerd.socket().display(),
        config = lab.dockerd.cli_config().display(),
        registry = lab.registry_host(),
        auth = lab.auth_host(),
        basic = lab.basic_registry_host(),
        out = capture_out.display(),
    );

    wait_for_stop_signal()?;
    eprintln!("regtap lab: stopping…");
    let capture = lab.finish_capture()?;
    let recorded = lab.dir().join("captures").join("lab.jsonl");
    std::fs::copy(&recorded, &capture_out)
        .with_context(|| format!("cannot write {}", capture_out.display()))?;
    drop(lab);
    eprintln!(
        "regtap lab: {} exchanges in {}; explain them with `regtap inspect {}`",
        capture.flows.len(),
        capture_out.display(),
        capture_out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Blocks until SIGINT (Ctrl-C) or SIGTERM.
#[cfg(feature = "lab")]
fn wait_for_stop_signal() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal handler")?;
    runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("cannot listen for SIGTERM")?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted.context("cannot listen for Ctrl-C"),
            _ = terminate.recv() => Ok(()),
        }
    })
}
