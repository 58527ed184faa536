//! A private dockerd (own data root, exec root, socket and daemon.json) whose
//! registry traffic goes through an HTTP(S) proxy, and the docker CLI for it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::LabError;
use crate::process::{ChildGuard, CommandOutput, run_output};

pub struct Dockerd {
    socket: PathBuf,
    /// The CLI's `DOCKER_CONFIG` (credentials of `docker login`).
    cli_config: PathBuf,
    process: ChildGuard,
}

impl Dockerd {
    /// Starts dockerd in `dir` with `proxy_url` as `HTTPS_PROXY`/`HTTP_PROXY` and
    /// `ca_bundle` as `SSL_CERT_FILE`, and waits until it answers.
    pub fn start(dir: &Path, proxy_url: &str, ca_bundle: &Path) -> Result<Self, LabError> {
        std::fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
        let socket = dir.join("docker.sock");
        let daemon_json = dir.join("daemon.json");
        crate::write_file(&daemon_json, b"{}\n")?;
        let cli_config = dir.join("cli");
        std::fs::create_dir_all(&cli_config).map_err(|e| LabError::io(&cli_config, e))?;
        let mut command = Command::new("dockerd");
        command
            .arg("--config-file")
            .arg(&daemon_json)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .args([
                "--storage-driver=vfs",
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
            ])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("HTTPS_PROXY", proxy_url)
            .env("HTTP_PROXY", proxy_url)
            .env("NO_PROXY", "")
            .env("SSL_CERT_FILE", ca_bundle);
        // dockerd stops the containerd it started when it gets SIGTERM.
        let mut process = ChildGuard::spawn("dockerd", command, &dir.join("dockerd.log"))?
            .grace(Duration::from_secs(15));
        let probe = docker_command(
            &socket,
            &cli_config,
            &["version", "--format", "{{.Server.Version}}"],
        );
        let probe_socket = socket.clone();
        process.wait_until("its API socket", Duration::from_secs(60), || {
            probe_socket.exists() && answers(&probe)
        })?;
        Ok(Dockerd {
            socket,
            cli_config,
            process,
        })
    }

    /// `docker ARGS…` against this daemon.
    pub fn docker(&self, args: &[&str]) -> CommandOutput {
        run_output(docker_command(&self.socket, &self.cli_config, args)).unwrap_or_else(|e| {
            CommandOutput {
                command: format!("docker {args:?}"),
                success: false,
                stdout: String::new(),
                stderr: e.to_string(),
            }
        })
    }

    /// The API socket, for `docker -H unix://…` or `DOCKER_HOST`.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The docker CLI's `DOCKER_CONFIG` directory for this daemon.
    pub fn cli_config(&self) -> &Path {
        &self.cli_config
    }

    pub fn log_tail(&self, max: usize) -> String {
        self.process.log_tail(max)
    }

    /// Stops the daemon (and its containerd) now.
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

fn answers(probe: &Command) -> bool {
    let mut command = Command::new(probe.get_program());
    command.args(probe.get_args());
    for (key, value) in probe.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    run_output(command).is_ok_and(|out| out.success)
}

fn docker_command(socket: &Path, cli_config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("docker");
    command
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(args)
        .env("DOCKER_CONFIG", cli_config);
    command
}
