//! regtap's lab: a local Docker-Hub-like set-up for end-to-end tests, built
//! from the real programs a user has. A throwaway PKI, a token server like
//! Docker Hub's auth service, two distribution registries (token auth and
//! htpasswd Basic auth), and a private dockerd whose `HTTPS_PROXY` is
//! `regtap proxy` (or a plain tunnel). Nothing resolves the lab names
//! (`registry-SUFFIX.test`, `auth-SUFFIX.test`, unique per lab) but the proxy,
//! so dockerd cannot consider the registries local (and skip certificate
//! checks), and no `/etc/hosts` entry on the machine can interfere.
//!
//! Every process is stopped by pid when the [`Lab`] is dropped, also while a
//! test unwinds from a panic, and the lab's temporary directory is removed
//! (kept, for a post-mortem, with `REGTAP_LAB_KEEP=1`).

pub mod containerd;
pub mod dockerd;
pub mod image;
pub mod pki;
pub mod process;
pub mod proxy;
pub mod registry;
mod server;
pub mod token;
pub mod verify;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regtap_capture::Capture;

use crate::dockerd::Dockerd;
use crate::pki::{LabHosts, Pki, PkiFiles};
use crate::process::{CommandOutput, free_port};
use crate::proxy::{Regtap, RegtapProxy, Tunnel};
use crate::registry::{Registry, RegistryAuth};
use crate::token::{TokenConfig, TokenServer};

pub use crate::registry::HTTP_SECRET;

/// The lab's user, known to the token server and the Basic-auth registry.
pub const LAB_USER: &str = "alice";
pub const LAB_PASSWORD: &str = "wonderland-lab-password";
pub const TOKEN_ISSUER: &str = "regtap-lab-auth";
/// The system CA bundle of Debian.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("lab set-up: {0}")]
    Setup(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("capture: {0}")]
    Capture(#[from] regtap_capture::CaptureError),
}

impl LabError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        LabError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), LabError> {
    std::fs::write(path, bytes).map_err(|e| LabError::io(path, e))
}

/// What this machine lacks to run the lab: root, or one of the programs.
pub fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root (dockerd needs it)".to_owned());
    }
    for program in [
        "dockerd",
        "docker",
        "containerd",
        "runc",
        "docker-registry",
        "skopeo",
    ] {
        if !on_path(program) {
            missing.push(format!("the `{program}` program"));
        }
    }
    if !Path::new(SYSTEM_CA_BUNDLE).exists() {
        missing.push(SYSTEM_CA_BUNDLE.to_owned());
    }
    missing
}

/// For a test that needs the lab: `true` when it must be skipped because
/// something is missing, after saying so loudly on the real stderr (past the
/// test harness's output capture). Under `CI=true` a missing piece is a
/// failure instead: CI installs everything.
pub fn skip_without_prerequisites(test: &str) -> bool {
    skip_when_missing(test, &missing_prerequisites())
}

/// [`skip_without_prerequisites`] for any list of what is missing.
pub fn skip_when_missing(test: &str, missing: &[String]) -> bool {
    if missing.is_empty() {
        return false;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {test} cannot run: missing {}",
        missing.join(", ")
    );
    let message = format!(
        "\n**********\n*** SKIPPED {test}: missing {} ***\n**********\n",
        missing.join(", ")
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), message.as_bytes());
    true
}

/// True when `program` is an executable file in a directory of `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program)).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt as _;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

/// How dockerd and skopeo reach the lab.
pub enum Via {
    /// Through `regtap proxy`, started per capture with [`Lab::start_capture`].
    Regtap {
        bin: PathBuf,
        /// Extra `regtap proxy` arguments, e.g. `--max-inline 8192`.
        proxy_args: Vec<String>,
        /// Have the proxy store every body under [`Lab::bodies_dir`].
        store_bodies: bool,
    },
    /// Through a plain CONNECT tunnel; dockerd trusts the lab CA directly.
    Tunnel,
    /// `regtap proxy --reverse` in front of the token-auth registry and the
    /// token server, started per capture with [`Lab::start_capture`]. The
    /// clients' `HTTPS_PROXY` is a plain tunnel that sends both lab names, at
    /// regtap's port, to regtap (as DNS naming regtap would); they trust
    /// regtap's CA. The registries' own ports differ from regtap's, so the
    /// proxy runs with `--rewrite-urls`. [`Lab::served_registry_host`] is
    /// the registry as clients address it.
    Reverse {
        bin: PathBuf,
        proxy_args: Vec<String>,
    },
    /// For benchmarks: through whatever listens on [`Lab::proxy_port`] at the
    /// time, `regtap proxy` ([`Lab::start_capture`]), a plain tunnel
    /// ([`Lab::tunnel_on_proxy_port`]) or another MITM proxy that signs with
    /// its own CA; dockerd trusts the lab CA, regtap's and `also_trusted`
    /// (PEM files: the other proxies' CAs).
    Compared {
        bin: PathBuf,
        also_trusted: Vec<PathBuf>,
    },
}

pub struct Lab {
    // Fields drop in this order: dockerd first, the temporary directory last.
    pub dockerd: Dockerd,
    proxy: Option<RegtapProxy>,
    /// Held for its lifetime: the tunnel serves until dropped.
    _tunnel: Option<Tunnel>,
    pub basic_registry: Registry,
    pub registry: Registry,
    pub token_server: TokenServer,
    pub pki: Arc<Pki>,
    pub pki_files: PkiFiles,
    pub hosts: LabHosts,
    /// `--resolve` entries of the proxy beyond the lab's own servers.
    extra_resolve: Vec<String>,
    regtap: Option<(Regtap, Vec<String>)>,
    /// The `SSL_CERT_FILE` of dockerd and skopeo.
    pub ca_bundle: PathBuf,
    proxy_url: String,
    proxy_port: u16,
    dir: tempfile::TempDir,
}

impl Lab {
    pub fn start(via: Via) -> Result<Self, LabError> {
        let dir = tempfile::Builder::new()
            .prefix("regtap-lab-")
            .tempdir()
            .map_err(|e| LabError::Setup(format!("temporary directory: {e}")))?;
        let root = dir.path().to_owned();
        let hosts = LabHosts::unique()?;
        let pki = Arc::new(Pki::generate(&hosts)?);
        let pki_files = pki.write_to(&root)?;

        let token_server = TokenServer::start(
            TokenConfig {
                service: hosts.registry(),
                issuer: TOKEN_ISSUER.to_owned(),
                users: HashMap::from([(LAB_USER.to_owned(), LAB_PASSWORD.to_owned())]),
            },
            Arc::clone(&pki),
            0,
        )?;
        let auth_port = token_server.port();
        let registry_dir = root.join("registry");
        std::fs::create_dir_all(&registry_dir).map_err(|e| LabError::io(&registry_dir, e))?;
        let registry = Registry::start(
            &registry_dir,
            free_port()?,
            &pki_files,
            &RegistryAuth::Token {
                realm: format!("https://{}:{auth_port}/token", hosts.auth()),
                service: hosts.registry(),
                issuer: TOKEN_ISSUER.to_owned(),
            },
        )?;
        let basic_dir = root.join("registry-basic");
        std::fs::create_dir_all(&basic_dir).map_err(|e| LabError::io(&basic_dir, e))?;
        let basic_registry = Registry::start(
            &basic_dir,
            free_port()?,
            &pki_files,
            &RegistryAuth::Basic {
                users: vec![(LAB_USER.to_owned(), LAB_PASSWORD.to_owned())],
            },
        )?;

        let ca_bundle = root.join("ca-bundle.pem");
        let mut bundle = std::fs::read(SYSTEM_CA_BUNDLE)
            .map_err(|e| LabError::io(Path::new(SYSTEM_CA_BUNDLE), e))?;
        bundle.push(b'\n');
        let (tunnel, regtap, proxy_port, proxy_url) = match via {
            Via::Regtap {
                bin,
                mut proxy_args,
                store_bodies,
            } => {
                if store_bodies {
                    proxy_args.push("--store-bodies".to_owned());
                    proxy_args.push(root.join("bodies").display().to_string());
                }
                let (regtap, port) = lab_regtap(bin, &root, &mut bundle)?;
                let url = format!("http://127.0.0.1:{port}");
                (None, Some((regtap, proxy_args)), port, url)
            }
            Via::Compared { bin, also_trusted } => {
                bundle.extend(pki.ca_pem.as_bytes());
                bundle.push(b'\n');
                for pem in also_trusted {
                    bundle.extend(std::fs::read(&pem).map_err(|e| LabError::io(&pem, e))?);
                    bundle.push(b'\n');
                }
                let (regtap, port) = lab_regtap(bin, &root, &mut bundle)?;
                let url = format!("http://127.0.0.1:{port}");
                (None, Some((regtap, Vec::new())), port, url)
            }
            Via::Reverse {
                bin,
                mut proxy_args,
            } => {
                let (regtap, port) = lab_regtap(bin, &root, &mut bundle)?;
                proxy_args.extend([
                    "--reverse".to_owned(),
                    format!("https://{}:{}", hosts.registry(), registry.port),
                    "--reverse".to_owned(),
                    format!("https://{}:{auth_port}", hosts.auth()),
                    "--rewrite-urls".to_owned(),
                ]);
                let tunnel = Tunnel::start(vec![
                    (format!("{}:{port}", hosts.registry()), port),
                    (format!("{}:{port}", hosts.auth()), port),
                ])?;
                let url = tunnel.url();
                (Some(tunnel), Some((regtap, proxy_args)), port, url)
            }
            Via::Tunnel => {
                bundle.extend(pki.ca_pem.as_bytes());
                let tunnel = Tunnel::start(tunnel_routes(
                    &hosts,
                    &[registry.port, basic_registry.port],
                    auth_port,
                ))?;
                let url = tunnel.url();
                (Some(tunnel), None, 0, url)
            }
        };
        write_file(&ca_bundle, &bundle)?;
        let dockerd = Dockerd::start(&root.join("dockerd"), &proxy_url, &ca_bundle)?;
        std::fs::create_dir_all(root.join("captures"))
            .map_err(|e| LabError::io(&root.join("captures"), e))?;
        Ok(Lab {
            dockerd,
            proxy: None,
            _tunnel: tunnel,
            basic_registry,
            registry,
            token_server,
            pki,
            pki_files,
            hosts,
            extra_resolve: Vec::new(),
            regtap,
            ca_bundle,
            proxy_url,
            proxy_port,
            dir,
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the proxy stores bodies when started with `store_bodies`.
    pub fn bodies_dir(&self) -> PathBuf {
        self.dir().join("bodies")
    }

    /// `registry-SUFFIX.test:PORT` of the token-auth registry.
    pub fn registry_host(&self) -> String {
        format!("{}:{}", self.hosts.registry(), self.registry.port)
    }

    /// `registry-SUFFIX.test:PORT` with regtap's port: the token-auth
    /// registry as clients of a [`Via::Reverse`] lab address it.
    pub fn served_registry_host(&self) -> String {
        format!("{}:{}", self.hosts.registry(), self.proxy_port)
    }

    /// `auth-SUFFIX.test:PORT` with regtap's port: the token server as
    /// clients of a [`Via::Reverse`] lab reach it (through the rewritten realm).
    pub fn served_auth_host(&self) -> String {
        format!("{}:{}", self.hosts.auth(), self.proxy_port)
    }

    /// `registry-SUFFIX.test:PORT` of the Basic-auth registry.
    pub fn basic_registry_host(&self) -> String {
        format!("{}:{}", self.hosts.registry(), self.basic_registry.port)
    }

    /// `auth-SUFFIX.test:PORT` of the token server.
    pub fn auth_host(&self) -> String {
        format!("{}:{}", self.hosts.auth(), self.token_server.port())
    }

    /// The `service` of the token-auth registry (the `aud` of its tokens).
    pub fn token_service(&self) -> String {
        self.hosts.registry()
    }

    /// Has the proxies started from now on resolve `HOST:PORT` to
    /// 127.0.0.1:`port` too, for a server a test runs besides the lab's.
    pub fn resolve_also(&mut self, host_port: &str, port: u16) {
        self.extra_resolve
            .push(format!("{host_port}=127.0.0.1:{port}"));
    }

    /// The URL dockerd and skopeo use as `HTTPS_PROXY`.
    pub fn proxy_url(&self) -> &str {
        &self.proxy_url
    }

    /// The port of [`Lab::proxy_url`].
    pub fn proxy_port(&self) -> u16 {
        self.proxy_port
    }

    /// The pid of the running `regtap proxy`, if any.
    pub fn proxy_pid(&self) -> Option<u32> {
        self.proxy.as_ref().and_then(RegtapProxy::pid)
    }

    /// Stops the running `regtap proxy`, if any, so that something else can
    /// listen on [`Lab::proxy_port`] (another proxy, for comparisons).
    pub fn release_proxy_port(&mut self) {
        self.stop_proxy();
    }

    /// Stops the running `regtap proxy`, if any, and serves a plain CONNECT
    /// tunnel on [`Lab::proxy_port`] instead, until the tunnel is dropped:
    /// dockerd then reaches the registries as directly as it can.
    pub fn tunnel_on_proxy_port(&mut self) -> Result<Tunnel, LabError> {
        self.stop_proxy();
        Tunnel::start_on(
            self.proxy_port,
            tunnel_routes(
                &self.hosts,
                &[self.registry.port, self.basic_registry.port],
                self.token_server.port(),
            ),
        )
    }

    /// The `--resolve` arguments that map the lab names to 127.0.0.1.
    pub fn resolve_args(&self) -> Vec<String> {
        [
            self.registry.port,
            self.basic_registry.port,
            self.token_server.port(),
        ]
        .iter()
        .zip([
            self.hosts.registry(),
            self.hosts.registry(),
            self.hosts.auth(),
        ])
        .map(|(port, host)| format!("{host}:{port}=127.0.0.1"))
        .chain(self.extra_resolve.iter().cloned())
        .collect()
    }

    /// Starts `regtap proxy` writing `<lab>/captures/<name>.jsonl`.
    pub fn start_capture(&mut self, name: &str) -> Result<PathBuf, LabError> {
        self.stop_proxy();
        let Some((regtap, proxy_args)) = &self.regtap else {
            return Err(LabError::Setup(
                "this lab does not go through regtap".into(),
            ));
        };
        let capture = self.dir().join("captures").join(format!("{name}.jsonl"));
        let log = self
            .dir()
            .join("captures")
            .join(format!("{name}.proxy.log"));
        let proxy = RegtapProxy::start(
            regtap,
            self.proxy_port,
            &capture,
            &self.resolve_args(),
            &self.pki_files.ca,
            proxy_args,
            &log,
        )?;
        self.proxy = Some(proxy);
        Ok(capture)
    }

    /// Waits until the capture file has stopped growing, stops the proxy and
    /// reads the capture.
    pub fn finish_capture(&mut self) -> Result<Capture, LabError> {
        let Some(proxy) = self.proxy.take() else {
            return Err(LabError::Setup("no capture running".into()));
        };
        let capture = proxy.capture.clone();
        wait_until_quiet(
            &capture,
            Duration::from_millis(400),
            Duration::from_secs(10),
        );
        proxy.stop();
        Ok(Capture::read(&capture)?)
    }

    /// The ends of the logs of dockerd, the running regtap proxy and the
    /// registries, for failure messages.
    pub fn log_tails(&self) -> String {
        let proxy = self
            .proxy
            .as_ref()
            .map(|p| p.log_tail(2000))
            .unwrap_or_else(|| "(not running)".to_owned());
        format!(
            "--- dockerd:\n{}\n--- regtap proxy:\n{proxy}\n--- token-auth registry:\n{}\n--- Basic-auth registry:\n{}",
            self.dockerd.log_tail(2000),
            self.registry.log_tail(1500),
            self.basic_registry.log_tail(1500),
        )
    }

    fn stop_proxy(&mut self) {
        if let Some(proxy) = self.proxy.take() {
            proxy.stop();
        }
    }

    /// `docker ARGS…` against the lab's dockerd.
    pub fn docker(&self, args: &[&str]) -> CommandOutput {
        self.dockerd.docker(args)
    }

    /// `skopeo --insecure-policy ARGS…` going through the lab's proxy and trusting its CA bundle.
    pub fn skopeo(&self, args: &[&str]) -> CommandOutput {
        let mut command = Command::new("skopeo");
        command.arg("--insecure-policy").args(args);
        self.client_env(&mut command, self.dir());
        CommandOutput::of(command)
    }

    /// Gives a registry client the lab's proxy (`HTTPS_PROXY` and
    /// `HTTP_PROXY`, no `NO_PROXY`), its CA bundle (`SSL_CERT_FILE` for Go
    /// programs, `REQUESTS_CA_BUNDLE` for Python's requests) and `home` as
    /// `HOME`, `TMPDIR` and `XDG_RUNTIME_DIR`.
    pub fn client_env(&self, command: &mut Command, home: &Path) {
        command
            .env("HTTPS_PROXY", &self.proxy_url)
            .env("HTTP_PROXY", &self.proxy_url)
            .env("NO_PROXY", "")
            .env("SSL_CERT_FILE", &self.ca_bundle)
            .env("REQUESTS_CA_BUNDLE", &self.ca_bundle)
            .env("HOME", home)
            .env("TMPDIR", home)
            .env("XDG_RUNTIME_DIR", home);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // dockerd first: it may still talk to the proxy and registries.
        self.dockerd.stop();
        self.stop_proxy();
        if std::env::var("REGTAP_LAB_KEEP").as_deref() == Ok("1") {
            self.dir.disable_cleanup(true);
            eprintln!(
                "regtap-lab: kept {} (REGTAP_LAB_KEEP=1)",
                self.dir().display()
            );
        }
    }
}

/// What the plain tunnel connects: each registry's and the token server's
/// `name:port` to the same port on 127.0.0.1.
fn tunnel_routes(hosts: &LabHosts, registry_ports: &[u16], auth_port: u16) -> Vec<(String, u16)> {
    registry_ports
        .iter()
        .map(|&port| (format!("{}:{port}", hosts.registry()), port))
        .chain([(format!("{}:{auth_port}", hosts.auth()), auth_port)])
        .collect()
}

/// Returns once `path` kept its size for `quiet`, or after `timeout`.
fn wait_until_quiet(path: &Path, quiet: Duration, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let size = || std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut last = size();
    let mut stable_since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        let now = size();
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() >= quiet {
            return;
        }
    }
}

/// The lab's regtap, with a home and a CA of its own that the lab's clients
/// trust (added to `bundle`), and the port it will listen on.
fn lab_regtap(bin: PathBuf, root: &Path, bundle: &mut Vec<u8>) -> Result<(Regtap, u16), LabError> {
    let regtap = Regtap {
        bin,
        home: root.join("regtap-home"),
    };
    let ca = root.join("regtap-ca.pem");
    regtap.init_ca(&ca)?;
    bundle.extend(std::fs::read(&ca).map_err(|e| LabError::io(&ca, e))?);
    Ok((regtap, free_port()?))
}
