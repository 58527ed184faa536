//! `regtap doctor`: is a container daemon really recorded by this regtap?
//!
//! [`gather`] collects [`Facts`] from /proc, systemd units, trust stores, the
//! network and a capture; [`checks`] turns them into [`Finding`]s without any
//! I/O, so every check is tested on fixtures.

pub mod checks;
pub mod gather;
pub mod noproxy;

use std::net::IpAddr;

use clap::ValueEnum;
use serde::Serialize;

/// A daemon (or, for podman, the tool) whose traffic regtap should see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Daemon {
    Docker,
    Containerd,
    Podman,
}

impl Daemon {
    pub const ALL: [Daemon; 3] = [Daemon::Docker, Daemon::Containerd, Daemon::Podman];

    /// The process name in /proc/<pid>/comm.
    pub fn program(self) -> &'static str {
        match self {
            Daemon::Docker => "dockerd",
            Daemon::Containerd => "containerd",
            Daemon::Podman => "podman",
        }
    }

    /// The systemd unit name, without `.service`.
    pub fn unit(self) -> &'static str {
        match self {
            Daemon::Docker => "docker",
            Daemon::Containerd => "containerd",
            Daemon::Podman => "podman",
        }
    }

    /// Where the daemon looks for per-registry CA certificates.
    pub fn certs_dir(self) -> &'static str {
        match self {
            Daemon::Docker => "/etc/docker/certs.d",
            Daemon::Containerd => "/etc/containerd/certs.d",
            Daemon::Podman => "/etc/containers/certs.d",
        }
    }
}

/// Everything the checks look at.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    /// Seconds since the Unix epoch.
    pub now_unix: i64,
    /// regtap's CA, or why it could not be loaded.
    pub ca: Result<CaFacts, String>,
    /// Daemons named on the command line (empty: whatever runs).
    pub requested: Vec<Daemon>,
    pub daemons: Vec<DaemonFacts>,
    /// Registries to check names and trust for (`--registry`, and the hosts
    /// a capture talked to).
    pub registries: Vec<RegistryFacts>,
    pub capture: Option<CaptureFacts>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaFacts {
    pub cert_path: String,
    /// SHA-256 of the DER certificate, as `regtap ca show` prints it.
    pub fingerprint: String,
    pub not_after: String,
    pub not_after_unix: i64,
    /// Permitted DNS subtrees; empty when unconstrained.
    pub name_constraints: Vec<String>,
}

/// One running daemon (or, for podman without a service, the shell's
/// environment that podman would be started with).
#[derive(Debug, Clone, Serialize)]
pub struct DaemonFacts {
    pub daemon: Daemon,
    /// `None`: the daemon is not running.
    pub process: Option<ProcessFacts>,
    /// Proxy settings of the systemd unit and its drop-ins, when it has any.
    pub unit: Option<UnitFacts>,
    /// What the daemon's TLS trusts.
    pub trust: TrustFacts,
    /// The proxy its `HTTPS_PROXY` names, probed.
    pub probe: Option<ProbeOutcome>,
    /// dockerd's `insecure-registries` (daemon.json).
    pub insecure_registries: Vec<String>,
}

impl DaemonFacts {
    /// How the findings name this daemon: `dockerd (pid 812)`.
    pub fn label(&self) -> String {
        match &self.process {
            Some(ProcessFacts { pid: Some(pid), .. }) => {
                format!("{} (pid {pid})", self.daemon.program())
            }
            Some(ProcessFacts { pid: None, .. }) => {
                format!("{} (this shell's environment)", self.daemon.program())
            }
            None => self.daemon.program().to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessFacts {
    /// `None` for the environment of `regtap doctor` itself (podman CLI).
    pub pid: Option<u32>,
    /// The systemd unit whose cgroup holds the process (`docker.service`).
    pub systemd_unit: Option<String>,
    pub started_unix: Option<i64>,
    pub env: ProxyEnv,
    /// Why /proc/<pid>/environ could not be read (another user's process,
    /// without root); `env` is then empty.
    pub env_error: Option<String>,
}

/// The proxy variables of an environment, as Go reads them (upper case
/// first, then lower case).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProxyEnv {
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
    pub ssl_cert_file: Option<String>,
    pub ssl_cert_dir: Option<String>,
}

impl ProxyEnv {
    /// Reads `NAME=value` pairs, upper-case names winning as in Go.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> ProxyEnv {
        let mut env = ProxyEnv::default();
        let mut lower = ProxyEnv::default();
        for (name, value) in pairs {
            let (target, key) = if name.chars().any(|c| c.is_ascii_lowercase()) {
                (&mut lower, name.to_ascii_uppercase())
            } else {
                (&mut env, name.to_owned())
            };
            let slot = match key.as_str() {
                "HTTP_PROXY" => &mut target.http_proxy,
                "HTTPS_PROXY" => &mut target.https_proxy,
                "NO_PROXY" => &mut target.no_proxy,
                "SSL_CERT_FILE" if name == key => &mut target.ssl_cert_file,
                "SSL_CERT_DIR" if name == key => &mut target.ssl_cert_dir,
                _ => continue,
            };
            *slot = Some(value.to_owned()).filter(|v| !v.is_empty());
        }
        ProxyEnv {
            http_proxy: env.http_proxy.or(lower.http_proxy),
            https_proxy: env.https_proxy.or(lower.https_proxy),
            no_proxy: env.no_proxy.or(lower.no_proxy),
            ssl_cert_file: env.ssl_cert_file,
            ssl_cert_dir: env.ssl_cert_dir,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct UnitFacts {
    /// `docker.service`.
    pub name: String,
    /// The unit file and drop-ins read, in the order systemd applies them.
    pub files: Vec<String>,
    pub env: ProxyEnv,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TrustFacts {
    /// The roots Go reads: `SSL_CERT_FILE` or the system bundle, and the
    /// certificate directory.
    pub system: Option<BundleFacts>,
    /// `<certs.d>/<host>/` for each registry checked, and any that exist.
    pub per_registry: Vec<RegistryTrust>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BundleFacts {
    pub path: String,
    /// The file holds regtap's CA certificate (byte for byte).
    pub holds_ca: bool,
    /// Certificates named like a regtap CA that are not the current one.
    pub stale_regtap_cas: usize,
    pub modified_unix: Option<i64>,
    /// Why the file could not be read.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegistryTrust {
    pub host: String,
    pub dir: String,
    pub holds_ca: bool,
}

/// What answered at the proxy address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProbeOutcome {
    /// The proxy's URL cannot be used (no host, an `https://` proxy, …).
    BadUrl {
        url: String,
        reason: String,
    },
    Unreachable {
        address: String,
        error: String,
    },
    /// Something listens but did not tunnel a CONNECT and serve TLS in it.
    NotAProxy {
        address: String,
        error: String,
    },
    /// It tunnels and presents certificates signed by regtap's CA.
    ThisRegtap {
        address: String,
    },
    /// It presents certificates from another CA (another proxy, or a regtap
    /// with another `REGTAP_HOME`).
    OtherCa {
        address: String,
        issuer: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct RegistryFacts {
    /// `host[:port]` as in image names.
    pub name: String,
    /// What the name resolves to on this machine (empty: it does not).
    pub addresses: Vec<IpAddr>,
}

impl RegistryFacts {
    pub fn host(&self) -> &str {
        split_host_port(&self.name).0
    }

    pub fn port(&self) -> u16 {
        split_host_port(&self.name).1.unwrap_or(443)
    }
}

/// `host[:port]`, with `[v6]:port` brackets removed.
pub fn split_host_port(authority: &str) -> (&str, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[')
        && let Some((host, tail)) = rest.split_once(']')
    {
        return (host, tail.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (authority, None),
        },
        _ => (authority, None),
    }
}

/// Failures before HTTP recorded in a capture.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureFacts {
    pub path: String,
    pub flows: usize,
    pub failures: Vec<CapturedFailure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CapturedFailure {
    pub flow_id: u64,
    pub stage: regtap_capture::ErrorStage,
    pub client_addr: Option<String>,
    /// The `host:port` of the CONNECT, or the request's host.
    pub authority: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Info,
    Warning,
    Error,
}

/// One result of a check: what was found and, for a problem, the command
/// that fixes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub level: Level,
    /// What it is about: `dockerd (pid 812)`, `regtap CA`, `capture`.
    pub subject: String,
    pub message: String,
    pub fix: Option<String>,
}
