//! A private containerd (own root, state, socket and config, no CRI) for
//! `ctr`. ctr does the registry I/O in its own process, so the proxy and the
//! CA bundle are ctr's environment, not containerd's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::LabError;
use crate::process::{ChildGuard, run_output};

pub struct Containerd {
    socket: PathBuf,
    process: ChildGuard,
}

impl Containerd {
    /// Starts containerd in `dir` and waits until it answers `ctr version`.
    pub fn start(dir: &Path) -> Result<Self, LabError> {
        std::fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
        let socket = dir.join("containerd.sock");
        // "isolated": a namespace sees only the content written in it, so a
        // pull into a fresh namespace downloads every blob again.
        let config = format!(
            "version = 2\n\
             root = \"{root}\"\n\
             state = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.btrfs\", \
             \"io.containerd.snapshotter.v1.zfs\", \"io.containerd.snapshotter.v1.aufs\", \
             \"io.containerd.snapshotter.v1.devmapper\", \"io.containerd.internal.v1.tracing\", \
             \"io.containerd.tracing.processor.v1.otlp\"]\n\
             [grpc]\n  address = \"{socket}\"\n\
             [ttrpc]\n  address = \"{socket}.ttrpc\"\n\
             [metrics]\n  address = \"\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{opt}\"\n\
             [plugins.\"io.containerd.metadata.v1.bolt\"]\n  content_sharing_policy = \"isolated\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            socket = socket.display(),
            opt = dir.join("opt").display(),
        );
        let config_path = dir.join("config.toml");
        crate::write_file(&config_path, config.as_bytes())?;
        let mut command = Command::new("containerd");
        command
            .arg("--config")
            .arg(&config_path)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        let mut process = ChildGuard::spawn("containerd", command, &dir.join("containerd.log"))?
            .grace(Duration::from_secs(10));
        let probe_socket = socket.clone();
        process.wait_until("its socket", Duration::from_secs(30), || {
            probe_socket.exists()
                && run_output(ctr_command(&probe_socket, "default", &["version"]))
                    .is_ok_and(|out| out.success)
        })?;
        Ok(Containerd { socket, process })
    }

    /// `ctr --address SOCKET --namespace NAMESPACE ARGS…`, to be completed
    /// with the environment (proxy, CA bundle) and run by the caller.
    pub fn ctr_command(&self, namespace: &str, args: &[&str]) -> Command {
        ctr_command(&self.socket, namespace, args)
    }

    pub fn log_tail(&self, max: usize) -> String {
        self.process.log_tail(max)
    }
}

fn ctr_command(socket: &Path, namespace: &str, args: &[&str]) -> Command {
    let mut command = Command::new("ctr");
    command
        .arg("--address")
        .arg(socket)
        .arg("--namespace")
        .arg(namespace)
        .args(args);
    command
}
