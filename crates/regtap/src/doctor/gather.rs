//! Gathering [`Facts`] from this machine: /proc, systemd units, trust
//! stores, /etc/docker/daemon.json, DNS, the proxy itself and a capture.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::Context as _;
use regtap_proxy::Ca;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{
    BundleFacts, CaFacts, CaptureFacts, CapturedFailure, Daemon, DaemonFacts, Facts, ProbeOutcome,
    ProcessFacts, ProxyEnv, RegistryFacts, RegistryTrust, TrustFacts, UnitFacts,
};

/// Where Go looks for the system roots on Linux (crypto/x509/root_linux.go),
/// first existing file wins.
const GO_CERT_FILES: [&str; 6] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];
/// Go also reads every certificate file in these directories.
const GO_CERT_DIRS: [&str; 2] = ["/etc/ssl/certs", "/etc/pki/tls/certs"];
/// Directories systemd reads units from, lowest priority first.
const UNIT_DIRS: [&str; 4] = [
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/run/systemd/system",
    "/etc/systemd/system",
];
const DOCKER_DAEMON_JSON: &str = "/etc/docker/daemon.json";
/// Kernel clock ticks per second in /proc (USER_HZ, 100 on every Linux ABI).
const USER_HZ: i64 = 100;
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);
/// Registries taken from a capture, at most.
const MAX_CAPTURE_REGISTRIES: usize = 12;
/// Files read from a certificate directory, at most.
const MAX_CERT_DIR_FILES: usize = 4000;

/// What `regtap doctor` was asked to look at.
pub struct Request<'a> {
    pub daemons: &'a [Daemon],
    pub registries: &'a [String],
    pub capture: Option<&'a Path>,
}

pub fn gather(request: &Request) -> anyhow::Result<Facts> {
    let now_unix = time::OffsetDateTime::now_utc().unix_timestamp();
    let ca = regtap_proxy::data_dir_from_env()
        .and_then(|dir| Ca::load(&dir))
        .map_err(|e| e.to_string());
    let ca_der = ca.as_ref().ok().map(|ca| ca.cert_der().to_vec());
    let ca_facts = match &ca {
        Ok(ca) => ca_facts(ca),
        Err(e) => Err(e.clone()),
    };

    let capture = request.capture.map(read_capture).transpose()?;
    let mut names: Vec<String> = request.registries.to_vec();
    if let Some((_, seen)) = &capture {
        for name in seen.iter().take(MAX_CAPTURE_REGISTRIES) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    let registries = resolve_all(&names);

    let wanted: Vec<Daemon> = if request.daemons.is_empty() {
        Daemon::ALL.to_vec()
    } else {
        request.daemons.to_vec()
    };
    let processes = list_processes();
    let mut daemons = Vec::new();
    let mut probes: BTreeMap<String, ProbeOutcome> = BTreeMap::new();
    for daemon in wanted {
        let mut found: Vec<ProcessFacts> = processes
            .iter()
            .filter(|(_, comm)| comm == daemon.program())
            .filter_map(|(pid, _)| process_facts(*pid))
            .collect();
        // podman has no daemon: asked for by name, it is this shell's environment.
        if found.is_empty() && daemon == Daemon::Podman && request.daemons.contains(&daemon) {
            found.push(ProcessFacts {
                pid: None,
                systemd_unit: None,
                started_unix: None,
                env_error: None,
                env: ProxyEnv::from_pairs(
                    std::env::vars()
                        .collect::<Vec<_>>()
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                ),
            });
        }
        for process in found {
            let probe = process.env.https_proxy.as_ref().map(|url| {
                probes
                    .entry(url.clone())
                    .or_insert_with(|| probe(url, ca_der.as_deref(), ca_facts.as_ref().ok()))
                    .clone()
            });
            let trust = trust_facts(daemon, &process.env, &registries, ca_der.as_deref());
            let insecure_registries = if daemon == Daemon::Docker {
                insecure_registries(process.pid)
            } else {
                Vec::new()
            };
            daemons.push(DaemonFacts {
                daemon,
                unit: unit_facts(daemon.unit()),
                process: Some(process),
                trust,
                probe,
                insecure_registries,
            });
        }
    }
    Ok(Facts {
        now_unix,
        ca: ca_facts,
        requested: request.daemons.to_vec(),
        daemons,
        registries,
        capture: capture.map(|(facts, _)| facts),
    })
}

fn ca_facts(ca: &Ca) -> Result<CaFacts, String> {
    let info = ca.info().map_err(|e| e.to_string())?;
    let not_after_unix = time::OffsetDateTime::parse(
        &info.not_after,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|e| format!("unreadable expiry {:?}: {e}", info.not_after))?
    .unix_timestamp();
    Ok(CaFacts {
        cert_path: info.cert_path.display().to_string(),
        fingerprint: info.sha256_fingerprint,
        not_after: info.not_after,
        not_after_unix,
        name_constraints: info.name_constraints,
    })
}

/// `(pid, comm)` of every process.
fn list_processes() -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            Some((pid, comm.trim_end().to_owned()))
        })
        .collect()
}

/// `None` when the process went away.
fn process_facts(pid: u32) -> Option<ProcessFacts> {
    let (environ, env_error) = match std::fs::read(format!("/proc/{pid}/environ")) {
        Ok(environ) => (environ, None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let pairs: Vec<(String, String)> = environ
        .split(|&b| b == 0)
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (k, v) = entry.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect();
    let env = ProxyEnv::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let systemd_unit = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|text| {
            text.lines()
                .flat_map(|line| line.rsplit('/'))
                .find(|part| part.ends_with(".service"))
                .map(str::to_owned)
        });
    Some(ProcessFacts {
        pid: Some(pid),
        systemd_unit,
        started_unix: started_unix(pid),
        env,
        env_error,
    })
}

/// Process start: field 22 of /proc/<pid>/stat (ticks since boot) plus the
/// boot time in /proc/stat.
fn started_unix(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces and parentheses.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let ticks: i64 = after_comm.split_whitespace().nth(19)?.parse().ok()?;
    let boot: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(boot + ticks / USER_HZ)
}

/// The proxy environment systemd gives a unit: its unit file, then its
/// drop-ins (a file in /etc overrides one of the same name in /run or /lib),
/// in file-name order.
fn unit_facts(unit: &str) -> Option<UnitFacts> {
    let name = format!("{unit}.service");
    let mut files: Vec<PathBuf> = UNIT_DIRS
        .iter()
        .rev()
        .map(|dir| Path::new(dir).join(&name))
        .find(|path| path.is_file())
        .into_iter()
        .collect();
    let mut drop_ins: BTreeMap<std::ffi::OsString, PathBuf> = BTreeMap::new();
    for dir in UNIT_DIRS {
        let Ok(entries) = std::fs::read_dir(Path::new(dir).join(format!("{name}.d"))) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            if entry.path().extension().is_some_and(|e| e == "conf") {
                drop_ins.insert(entry.file_name(), entry.path());
            }
        }
    }
    files.extend(drop_ins.into_values());
    if files.is_empty() {
        return None;
    }
    let mut assignments: Vec<(String, String)> = Vec::new();
    for file in &files {
        if let Ok(text) = std::fs::read_to_string(file) {
            apply_environment_lines(&text, &mut assignments);
        }
    }
    Some(UnitFacts {
        name,
        files: files.iter().map(|f| f.display().to_string()).collect(),
        env: ProxyEnv::from_pairs(assignments.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    })
}

/// Applies the `Environment=` lines of a unit file's `[Service]` section: an
/// empty one resets the list, later assignments win.
pub fn apply_environment_lines(text: &str, assignments: &mut Vec<(String, String)>) {
    let mut in_service = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
            continue;
        }
        let Some(value) = line.strip_prefix("Environment=").filter(|_| in_service) else {
            continue;
        };
        if value.trim().is_empty() {
            assignments.clear();
            continue;
        }
        for word in unit_words(value) {
            if let Some((k, v)) = word.split_once('=') {
                assignments.retain(|(name, _)| name != k);
                assignments.push((k.to_owned(), v.to_owned()));
            }
        }
    }
}

/// Space-separated words, double or single quotes keeping spaces.
fn unit_words(value: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in value.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            (_, c) => {
                current.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(current);
    }
    words
}

fn trust_facts(
    daemon: Daemon,
    env: &ProxyEnv,
    registries: &[RegistryFacts],
    ca_der: Option<&[u8]>,
) -> TrustFacts {
    let Some(ca_der) = ca_der else {
        return TrustFacts::default();
    };
    let file = match &env.ssl_cert_file {
        Some(file) => Some(PathBuf::from(file)),
        None => GO_CERT_FILES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file()),
    };
    let mut system = file.map(|path| bundle_facts(&path, ca_der));
    if system.as_ref().is_none_or(|b| !b.holds_ca) {
        let dirs: Vec<PathBuf> = match &env.ssl_cert_dir {
            Some(dirs) => dirs.split(':').map(PathBuf::from).collect(),
            None => GO_CERT_DIRS.iter().map(PathBuf::from).collect(),
        };
        if let Some(found) = dirs.iter().find_map(|dir| find_in_dir(dir, ca_der)) {
            system = Some(found);
        }
    }

    let certs_dir = Path::new(daemon.certs_dir());
    let mut hosts: Vec<String> = registries.iter().map(|r| r.name.clone()).collect();
    if let Ok(entries) = std::fs::read_dir(certs_dir) {
        for entry in entries.filter_map(Result::ok).take(100) {
            let host = entry.file_name().to_string_lossy().into_owned();
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
    }
    let per_registry = hosts
        .into_iter()
        .map(|host| {
            let dir = certs_dir.join(&host);
            let holds_ca = find_in_dir(&dir, ca_der).is_some();
            RegistryTrust {
                host,
                dir: dir.display().to_string(),
                holds_ca,
            }
        })
        .collect();
    TrustFacts {
        system,
        per_registry,
    }
}

fn bundle_facts(path: &Path, ca_der: &[u8]) -> BundleFacts {
    let modified_unix = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok());
    match std::fs::read(path) {
        Ok(bytes) => {
            let (holds_ca, stale_regtap_cas) = scan_pem(&bytes, ca_der);
            BundleFacts {
                path: path.display().to_string(),
                holds_ca,
                stale_regtap_cas,
                modified_unix,
                error: None,
            }
        }
        Err(e) => BundleFacts {
            path: path.display().to_string(),
            holds_ca: false,
            stale_regtap_cas: 0,
            modified_unix,
            error: Some(e.to_string()),
        },
    }
}

/// Whether the PEM text holds `ca_der`, and how many other certificates
/// named like a regtap CA it holds.
pub fn scan_pem(bytes: &[u8], ca_der: &[u8]) -> (bool, usize) {
    let mut holds = false;
    let mut stale = 0;
    for pem in x509_parser::pem::Pem::iter_from_buffer(bytes).filter_map(Result::ok) {
        if pem.contents == ca_der {
            holds = true;
        } else if let Ok((_, cert)) = x509_parser::parse_x509_certificate(&pem.contents)
            && cert.subject().to_string().contains("regtap")
        {
            stale += 1;
        }
    }
    (holds, stale)
}

/// The first certificate file in `dir` that holds the CA.
fn find_in_dir(dir: &Path, ca_der: &[u8]) -> Option<BundleFacts> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(Result::ok)
        .take(MAX_CERT_DIR_FILES)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| bundle_facts(&p, ca_der))
        .find(|b| b.holds_ca)
}

/// dockerd's insecure registries: daemon.json and `--insecure-registry` flags.
fn insecure_registries(pid: Option<u32>) -> Vec<String> {
    let mut entries: Vec<String> = std::fs::read(DOCKER_DAEMON_JSON)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|json| {
            json.get("insecure-registries")?.as_array().map(|list| {
                list.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
        })
        .unwrap_or_default();
    if let Some(cmdline) = pid.and_then(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok()) {
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        for (n, arg) in args.iter().enumerate() {
            if let Some(value) = arg.strip_prefix("--insecure-registry=") {
                entries.push(value.to_owned());
            } else if arg == "--insecure-registry" {
                entries.extend(args.get(n + 1).cloned());
            }
        }
    }
    entries
}

/// Resolves every name at once, each given [`RESOLVE_TIMEOUT`] (a machine
/// without DNS must not hang the doctor).
fn resolve_all(names: &[String]) -> Vec<RegistryFacts> {
    let (tx, rx) = mpsc::channel();
    for (n, name) in names.iter().enumerate() {
        let tx = tx.clone();
        let name = name.clone();
        std::thread::spawn(move || {
            let (host, port) = super::split_host_port(&name);
            let addresses: Vec<IpAddr> = (host, port.unwrap_or(443))
                .to_socket_addrs()
                .map(|addrs| addrs.map(|a| a.ip()).collect())
                .unwrap_or_default();
            let _ = tx.send((n, addresses));
        });
    }
    drop(tx);
    let mut resolved: Vec<Vec<IpAddr>> = vec![Vec::new(); names.len()];
    let deadline = std::time::Instant::now() + RESOLVE_TIMEOUT;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((n, addresses)) => resolved[n] = addresses,
            Err(_) => break,
        }
    }
    names
        .iter()
        .zip(resolved)
        .map(|(name, addresses)| RegistryFacts {
            name: name.clone(),
            addresses,
        })
        .collect()
}

/// `host:port` of an HTTP proxy URL as Go reads it (no scheme: http; no
/// port: 80).
pub fn proxy_address(url: &str) -> Result<String, String> {
    let rest = match url.split_once("://") {
        Some(("http", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "a {scheme}:// proxy; regtap speaks plain HTTP to its clients (use http://)"
            ));
        }
        None => url,
    };
    let authority = rest.split('/').next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if authority.is_empty() {
        return Err("no host in the URL".to_owned());
    }
    Ok(match super::split_host_port(authority) {
        (_, Some(_)) => authority.to_owned(),
        (host, None) if host.contains(':') => format!("[{host}]:80"),
        (host, None) => format!("{host}:80"),
    })
}

/// Connects to the proxy, opens a CONNECT tunnel and reads the certificate
/// it presents inside: chained to regtap's CA means it is this regtap.
fn probe(url: &str, ca_der: Option<&[u8]>, ca: Option<&CaFacts>) -> ProbeOutcome {
    let address = match proxy_address(url) {
        Ok(address) => address,
        Err(reason) => {
            return ProbeOutcome::BadUrl {
                url: url.to_owned(),
                reason,
            };
        }
    };
    // A name the CA may issue for, that no registry uses.
    let probe_host = match ca.and_then(|ca| ca.name_constraints.first()) {
        Some(domain) => format!("regtap-doctor.{}", domain.trim_start_matches('.')),
        None => "regtap-doctor.invalid".to_owned(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return ProbeOutcome::Unreachable {
                address,
                error: format!("cannot start the probe: {e}"),
            };
        }
    };
    let result = runtime.block_on(async {
        tokio::time::timeout(PROBE_TIMEOUT, tunnel_certificate(&address, &probe_host))
            .await
            .unwrap_or_else(|_| {
                Err(ProbeError::NotAProxy(format!(
                    "no TLS certificate within {} s",
                    PROBE_TIMEOUT.as_secs()
                )))
            })
    });
    match result {
        Err(ProbeError::Unreachable(error)) => ProbeOutcome::Unreachable { address, error },
        Err(ProbeError::NotAProxy(error)) => ProbeOutcome::NotAProxy { address, error },
        Ok(chain) => {
            let Some(ca_der) = ca_der else {
                return ProbeOutcome::OtherCa {
                    address,
                    issuer: issuer_of(&chain),
                };
            };
            if chain_to(&chain, ca_der, &probe_host) {
                ProbeOutcome::ThisRegtap { address }
            } else {
                ProbeOutcome::OtherCa {
                    address,
                    issuer: issuer_of(&chain),
                }
            }
        }
    }
}

enum ProbeError {
    Unreachable(String),
    NotAProxy(String),
}

/// The certificates presented inside a CONNECT tunnel to `host:443`.
async fn tunnel_certificate(
    address: &str,
    host: &str,
) -> Result<Vec<CertificateDer<'static>>, ProbeError> {
    let addr: SocketAddr = tokio::net::lookup_host(address)
        .await
        .map_err(|e| ProbeError::Unreachable(e.to_string()))?
        .next()
        .ok_or_else(|| ProbeError::Unreachable("the name resolves to no address".to_owned()))?;
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| ProbeError::Unreachable(e.to_string()))?;
    let not_a_proxy = |e: std::io::Error| ProbeError::NotAProxy(e.to_string());
    stream
        .write_all(format!("CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n").as_bytes())
        .await
        .map_err(not_a_proxy)?;
    // The response head, read byte by byte so nothing of the tunnel is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err(ProbeError::NotAProxy("an endless response head".to_owned()));
        }
        let byte = stream.read_u8().await.map_err(not_a_proxy)?;
        head.push(byte);
    }
    let status_line =
        String::from_utf8_lossy(head.split(|&b| b == b'\r').next().unwrap_or(&[])).into_owned();
    if status_line.split_whitespace().nth(1) != Some("200") {
        return Err(ProbeError::NotAProxy(format!(
            "CONNECT answered {status_line:?}"
        )));
    }
    let recorder = Arc::new(RecordingVerifier::default());
    let config = rustls::ClientConfig::builder_with_provider(regtap_proxy::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProbeError::NotAProxy(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let name =
        ServerName::try_from(host.to_owned()).map_err(|e| ProbeError::NotAProxy(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = connector.connect(name, stream).await;
    let chain = recorder.chain.lock().map(|c| c.clone()).unwrap_or_default();
    match tls {
        _ if !chain.is_empty() => Ok(chain),
        Ok(_) => Err(ProbeError::NotAProxy(
            "TLS without a certificate".to_owned(),
        )),
        Err(e) => Err(ProbeError::NotAProxy(format!("TLS in the tunnel: {e}"))),
    }
}

/// Accepts any certificate and keeps it: the probe judges the chain itself,
/// after the handshake, and sends nothing over the connection.
#[derive(Debug, Default)]
struct RecordingVerifier {
    chain: std::sync::Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut chain) = self.chain.lock() {
            chain.push(end_entity.clone().into_owned());
            chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &regtap_proxy::crypto_provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &regtap_proxy::crypto_provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        regtap_proxy::crypto_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The chain verifies for `host` with regtap's CA as the only root.
fn chain_to(chain: &[CertificateDer<'static>], ca_der: &[u8], host: &str) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    if roots.add(CertificateDer::from(ca_der.to_vec())).is_err() {
        return false;
    }
    let Ok(verifier) = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        regtap_proxy::crypto_provider(),
    )
    .build() else {
        return false;
    };
    let (Some(leaf), Ok(name)) = (chain.first(), ServerName::try_from(host.to_owned())) else {
        return false;
    };
    verifier
        .verify_server_cert(leaf, &chain[1..], &name, &[], UnixTime::now())
        .is_ok()
}

fn issuer_of(chain: &[CertificateDer<'static>]) -> String {
    chain
        .first()
        .and_then(|leaf| x509_parser::parse_x509_certificate(leaf).ok())
        .map(|(_, cert)| format!("issuer {}", cert.issuer()))
        .unwrap_or_else(|| "an unreadable certificate".to_owned())
}

/// Reads a capture: the flows' count, the failures (every flow with an
/// error, judged by `checks::stage_advice`), and the hosts it talked to.
fn read_capture(path: &Path) -> anyhow::Result<(CaptureFacts, Vec<String>)> {
    // The reader keeps every good record, and turns exchanges the proxy never
    // finished into flows that say so.
    let capture = regtap_capture::Capture::read(path)
        .with_context(|| format!("{} is not a readable regtap capture", path.display()))?;
    let mut failures = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    for flow in &capture.flows {
        let authority = flow.connect_authority.clone().or_else(|| {
            let rest = flow.url().split_once("://")?.1;
            let authority = rest.split(['/', '?']).next()?;
            (!authority.is_empty()).then(|| authority.to_owned())
        });
        if let Some(authority) = &authority {
            let name = authority.strip_suffix(":443").unwrap_or(authority);
            if !hosts.iter().any(|h| h == name) {
                hosts.push(name.to_owned());
            }
        }
        if let Some(error) = &flow.error {
            failures.push(CapturedFailure {
                flow_id: flow.id,
                stage: error.stage,
                client_addr: flow.client_addr.clone(),
                authority,
                message: error.message.clone(),
            });
        }
    }
    Ok((
        CaptureFacts {
            path: path.display().to_string(),
            flows: capture.flows.len(),
            failures,
        },
        hosts,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_lines_as_systemd_applies_them() {
        let mut env = Vec::new();
        apply_environment_lines(
            "[Unit]\nEnvironment=IGNORED=1\n[Service]\n\
             Environment=\"HTTP_PROXY=http://a:1\" HTTPS_PROXY=http://a:1\n\
             Environment='NO_PROXY=localhost,127.0.0.0/8'\n",
            &mut env,
        );
        apply_environment_lines("[Service]\nEnvironment=HTTPS_PROXY=http://b:2\n", &mut env);
        let env = ProxyEnv::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(env.http_proxy.as_deref(), Some("http://a:1"));
        assert_eq!(env.https_proxy.as_deref(), Some("http://b:2"));
        assert_eq!(env.no_proxy.as_deref(), Some("localhost,127.0.0.0/8"));

        let mut reset = vec![("HTTPS_PROXY".to_owned(), "x".to_owned())];
        apply_environment_lines("[Service]\nEnvironment=\n", &mut reset);
        assert!(reset.is_empty());
    }

    #[test]
    fn proxy_urls_as_go_reads_them() {
        assert_eq!(
            proxy_address("http://127.0.0.1:8080/").unwrap(),
            "127.0.0.1:8080"
        );
        assert_eq!(proxy_address("127.0.0.1:3128").unwrap(), "127.0.0.1:3128");
        assert_eq!(
            proxy_address("http://u:p@proxy.corp").unwrap(),
            "proxy.corp:80"
        );
        assert!(
            proxy_address("https://127.0.0.1:8080")
                .unwrap_err()
                .contains("https://")
        );
        assert!(proxy_address("socks5://127.0.0.1:1080").is_err());
        assert!(proxy_address("http://").is_err());
    }

    #[test]
    fn a_pem_bundle_is_searched_for_the_ca_and_older_regtap_cas() {
        let dir = tempfile::tempdir().unwrap();
        let current = Ca::init(&dir.path().join("a"), &Default::default()).unwrap();
        let older = Ca::init(&dir.path().join("b"), &Default::default()).unwrap();
        let bundle = format!("{}{}", older.cert_pem(), current.cert_pem());
        assert_eq!(scan_pem(bundle.as_bytes(), current.cert_der()), (true, 1));
        assert_eq!(
            scan_pem(older.cert_pem().as_bytes(), current.cert_der()),
            (false, 1)
        );
        assert_eq!(scan_pem(b"not pem", current.cert_der()), (false, 0));
    }

    /// The probe against a real regtap proxy, and against a port where
    /// nothing listens.
    #[test]
    fn the_probe_recognises_this_regtap_and_a_dead_port() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::init(&dir.path().join("ca"), &Default::default()).unwrap();
        let facts = ca_facts(&ca).unwrap();
        let other = Ca::init(&dir.path().join("other"), &Default::default()).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let handle = runtime
            .block_on(regtap_proxy::start(
                regtap_proxy::ProxyConfig::new(
                    "127.0.0.1:0".parse().unwrap(),
                    dir.path().join("capture.jsonl"),
                ),
                &ca,
            ))
            .unwrap();
        let url = format!("http://{}", handle.local_addr());
        let ours = std::thread::scope(|s| {
            s.spawn(|| probe(&url, Some(ca.cert_der()), Some(&facts)))
                .join()
                .unwrap()
        });
        assert_eq!(
            ours,
            ProbeOutcome::ThisRegtap {
                address: handle.local_addr().to_string()
            }
        );
        let theirs = std::thread::scope(|s| {
            s.spawn(|| probe(&url, Some(other.cert_der()), None))
                .join()
                .unwrap()
        });
        assert!(
            matches!(&theirs, ProbeOutcome::OtherCa { issuer, .. } if issuer.contains("regtap")),
            "{theirs:?}"
        );
        runtime.block_on(handle.shutdown()).unwrap();

        // The port is free again: nothing answers there.
        let dead = probe(&url, Some(ca.cert_der()), Some(&facts));
        assert!(matches!(dead, ProbeOutcome::Unreachable { .. }), "{dead:?}");
    }

    #[test]
    fn a_capture_is_read_for_failures_and_hosts() {
        use regtap_capture::factory::FlowBuilder;
        use regtap_capture::{CaptureHeader, CaptureWriter, ErrorStage, FlowError};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        let header = CaptureHeader::new("test", 0, Default::default());
        let mut writer = CaptureWriter::create(&path, &header).unwrap();
        let mut refused = FlowBuilder::new(1, "CONNECT", "https://registry.test:5000")
            .error(FlowError {
                stage: ErrorStage::ClientTls,
                message: "client refused the certificate: UnknownCA".to_owned(),
            })
            .build();
        refused.client_addr = Some("127.0.0.1:5123".to_owned());
        refused.connect_authority = Some("registry.test:5000".to_owned());
        writer.append(&refused).unwrap();
        writer
            .append(
                &FlowBuilder::new(2, "GET", "https://registry-1.docker.io/v2/")
                    .status(401)
                    .build(),
            )
            .unwrap();
        drop(writer);
        // A record cut off mid-write is left out, the rest kept.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(br#"{"id":3,"#);
        std::fs::write(&path, bytes).unwrap();
        let (facts, hosts) = read_capture(&path).unwrap();
        assert_eq!(facts.flows, 2);
        assert_eq!(hosts, ["registry.test:5000", "registry-1.docker.io"]);
        assert_eq!(facts.failures.len(), 1);
        let failure = &facts.failures[0];
        assert_eq!(failure.stage, regtap_capture::ErrorStage::ClientTls);
        assert_eq!(failure.client_addr.as_deref(), Some("127.0.0.1:5123"));
        assert_eq!(failure.authority.as_deref(), Some("registry.test:5000"));

        std::fs::write(&path, "{\"log\":{}}\n").unwrap();
        let err = read_capture(&path).unwrap_err().to_string();
        assert!(err.contains("not a readable regtap capture"), "{err}");
    }
}
