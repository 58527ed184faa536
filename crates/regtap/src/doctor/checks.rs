//! The checks of `regtap doctor`: pure functions from [`Facts`] to
//! [`Finding`]s, each problem with the command that fixes it.

use std::collections::BTreeMap;

use regtap_capture::ErrorStage;
use std::net::IpAddr;

use super::noproxy::{Bypass, bypass};
use super::{
    CaFacts, CaptureFacts, Daemon, DaemonFacts, Facts, Finding, Level, ProbeOutcome, ProcessFacts,
    RegistryFacts,
};

/// Where `regtap proxy` listens unless told otherwise.
pub const DEFAULT_PROXY: &str = "http://127.0.0.1:8080";
/// A CA that expires sooner than this is worth replacing now.
const EXPIRY_WARNING_DAYS: i64 = 30;
const DAY: i64 = 24 * 60 * 60;

/// Every finding, in the order a reader fixes things: the CA, the daemons,
/// then what the capture recorded.
pub fn run(facts: &Facts) -> Vec<Finding> {
    let mut findings = check_ca(facts);
    findings.extend(check_presence(facts));
    for daemon in &facts.daemons {
        findings.extend(check_daemon(facts, daemon));
    }
    if let Some(capture) = &facts.capture {
        findings.extend(check_capture(capture));
    }
    findings
}

/// Something is wrong: `regtap doctor` exits non-zero.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.level == Level::Error)
}

fn finding(level: Level, subject: &str, message: String, fix: Option<String>) -> Finding {
    Finding {
        level,
        subject: subject.to_owned(),
        message,
        fix,
    }
}

/// How to restart the daemon: its systemd unit, or by hand when it runs
/// outside systemd (a private dockerd).
fn restart(daemon: &DaemonFacts) -> String {
    match &daemon.process {
        Some(ProcessFacts {
            pid: Some(pid),
            systemd_unit: None,
            ..
        }) => format!(
            "restart {} (pid {pid}; it is not a systemd service)",
            daemon.daemon.program()
        ),
        _ => format!("systemctl restart {}", daemon.daemon.unit()),
    }
}

/// The commands that make the system store trust regtap's CA (Debian/Ubuntu).
fn trust_system_store(daemon: &DaemonFacts) -> String {
    format!(
        "regtap ca export --format pem -o /usr/local/share/ca-certificates/regtap.crt \
         && update-ca-certificates && {}",
        restart(daemon)
    )
}

/// The commands that point a daemon (or the shell, for podman) at the proxy.
fn set_proxy(daemon: &DaemonFacts, url: &str) -> String {
    let unit = daemon.daemon.unit();
    match (daemon.daemon, &daemon.process) {
        (Daemon::Docker, _) => format!(
            "regtap setup docker --write --proxy {url} && systemctl daemon-reload && systemctl restart docker"
        ),
        (Daemon::Podman, Some(p)) if p.pid.is_none() => {
            format!("export HTTPS_PROXY={url} HTTP_PROXY={url} NO_PROXY=localhost,127.0.0.0/8,::1")
        }
        _ => format!(
            "mkdir -p /etc/systemd/system/{unit}.service.d && printf '[Service]\\nEnvironment=\"HTTP_PROXY={url}\" \"HTTPS_PROXY={url}\" \"NO_PROXY=localhost,127.0.0.0/8,::1\"\\n' > /etc/systemd/system/{unit}.service.d/http-proxy.conf && systemctl daemon-reload && systemctl restart {unit}"
        ),
    }
}

/// A DNS name constraint covers `host` (itself or a subdomain). IP
/// addresses are not constrained by DNS subtrees.
fn constraint_covers(constraint: &str, host: &str) -> bool {
    let constraint = constraint.trim_start_matches('.').to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    host.parse::<IpAddr>().is_ok()
        || host == constraint
        || host.ends_with(&format!(".{constraint}"))
}

pub fn check_ca(facts: &Facts) -> Vec<Finding> {
    const SUBJECT: &str = "regtap CA";
    let ca: &CaFacts = match &facts.ca {
        Ok(ca) => ca,
        Err(reason) => {
            return vec![finding(
                Level::Error,
                SUBJECT,
                format!("no usable CA: {reason}"),
                Some("regtap ca init".to_owned()),
            )];
        }
    };
    let mut findings = Vec::new();
    let retrust = "then trust the new CA again (see the other fixes)";
    let left = ca.not_after_unix - facts.now_unix;
    if left <= 0 {
        findings.push(finding(
            Level::Error,
            SUBJECT,
            format!(
                "{} expired on {}: clients refuse every certificate regtap makes",
                ca.cert_path, ca.not_after
            ),
            Some(format!("regtap ca init --force   # {retrust}")),
        ));
    } else if left < EXPIRY_WARNING_DAYS * DAY {
        findings.push(finding(
            Level::Warning,
            SUBJECT,
            format!(
                "{} expires on {} (in {} days)",
                ca.cert_path,
                ca.not_after,
                left / DAY
            ),
            Some(format!("regtap ca init --force   # {retrust}")),
        ));
    } else {
        findings.push(finding(
            Level::Ok,
            SUBJECT,
            format!(
                "{} (SHA-256 {}) valid until {}",
                ca.cert_path, ca.fingerprint, ca.not_after
            ),
            None,
        ));
    }
    if !ca.name_constraints.is_empty() {
        let uncovered: Vec<&RegistryFacts> = facts
            .registries
            .iter()
            .filter(|r| {
                !ca.name_constraints
                    .iter()
                    .any(|c| constraint_covers(c, r.host()))
            })
            .collect();
        if uncovered.is_empty() {
            findings.push(finding(
                Level::Ok,
                SUBJECT,
                format!(
                    "its name constraints ({}) cover every registry checked",
                    ca.name_constraints.join(", ")
                ),
                None,
            ));
        } else {
            let mut domains = ca.name_constraints.clone();
            domains.extend(uncovered.iter().map(|r| r.host().to_owned()));
            let flags: Vec<String> = domains
                .iter()
                .map(|d| format!("--name-constraint {d}"))
                .collect();
            findings.push(finding(
                Level::Error,
                SUBJECT,
                format!(
                    "it may only issue for {}: clients refuse the certificate regtap makes for {}",
                    ca.name_constraints.join(", "),
                    uncovered
                        .iter()
                        .map(|r| r.host())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some(format!(
                    "regtap ca init --force {}   # {retrust}",
                    flags.join(" ")
                )),
            ));
        }
    }
    findings
}

/// Daemons asked for by name must run.
fn check_presence(facts: &Facts) -> Vec<Finding> {
    let running = |daemon: Daemon| {
        facts
            .daemons
            .iter()
            .any(|d| d.daemon == daemon && d.process.is_some())
    };
    let mut findings: Vec<Finding> = facts
        .requested
        .iter()
        .filter(|&&d| !running(d))
        .map(|&d| {
            finding(
                Level::Error,
                d.program(),
                format!("{} is not running", d.program()),
                Some(format!("systemctl start {}", d.unit())),
            )
        })
        .collect();
    if facts.requested.is_empty() && facts.daemons.is_empty() {
        findings.push(finding(
            Level::Info,
            "daemons",
            "no dockerd, containerd or podman service is running; \
             `regtap doctor podman` checks this shell's environment for podman and skopeo"
                .to_owned(),
            None,
        ));
    }
    findings
}

pub fn check_daemon(facts: &Facts, daemon: &DaemonFacts) -> Vec<Finding> {
    let Some(process) = &daemon.process else {
        return Vec::new();
    };
    let subject = daemon.label();
    let unit = daemon.daemon.unit();
    let mut findings = Vec::new();
    let mut push = |level, message: String, fix: Option<String>| {
        findings.push(finding(level, &subject, message, fix));
    };
    if let Some(error) = &process.env_error {
        push(
            Level::Error,
            format!("cannot read its environment ({error}): its proxy settings are unknown"),
            Some("sudo regtap doctor".to_owned()),
        );
        return findings;
    }

    if let Some(unit_facts) = &daemon.unit {
        let configured = &unit_facts.env;
        let running = &process.env;
        if process.systemd_unit.as_deref() == Some(unit_facts.name.as_str())
            && (configured.https_proxy != running.https_proxy
                || configured.http_proxy != running.http_proxy
                || configured.no_proxy != running.no_proxy)
        {
            push(
                Level::Warning,
                format!(
                    "{} sets HTTPS_PROXY={} NO_PROXY={} but the running process has \
                     HTTPS_PROXY={} NO_PROXY={}: it was not restarted since",
                    unit_facts.name,
                    shown(&configured.https_proxy),
                    shown(&configured.no_proxy),
                    shown(&running.https_proxy),
                    shown(&running.no_proxy),
                ),
                Some(format!(
                    "systemctl daemon-reload && systemctl restart {unit}"
                )),
            );
        }
    }

    match &process.env.https_proxy {
        None => push(
            Level::Error,
            "HTTPS_PROXY is not set in its environment: it talks to registries directly, \
             regtap sees nothing"
                .to_owned(),
            Some(set_proxy(daemon, DEFAULT_PROXY)),
        ),
        Some(url) => {
            if process.env.http_proxy.is_none() {
                push(
                    Level::Info,
                    "HTTP_PROXY is not set: plain-http registries are not recorded".to_owned(),
                    Some(set_proxy(daemon, url)),
                );
            }
            if let Some(probe) = &daemon.probe {
                let (level, message, fix) = probe_finding(facts, probe, daemon, url);
                push(level, message, fix);
            }
        }
    }

    for registry in &facts.registries {
        for (level, message, fix) in registry_findings(daemon, registry, &process.env.no_proxy) {
            push(level, message, fix);
        }
    }

    // Without a CA there is nothing to trust: the CA finding says so.
    if facts.ca.is_ok() {
        let (level, message, fix) = trust_finding(facts, daemon);
        push(level, message, fix);
    }
    if let (Some(bundle), Some(started)) = (&daemon.trust.system, process.started_unix)
        && bundle.holds_ca
        && bundle.modified_unix.is_some_and(|m| m > started)
    {
        push(
            Level::Warning,
            format!(
                "{} changed after {} started, and Go reads its roots once: \
                 it does not trust regtap's CA until restarted",
                bundle.path,
                daemon.daemon.program()
            ),
            Some(restart(daemon)),
        );
    }
    findings
}

fn shown(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("(unset)")
}

type Outcome = (Level, String, Option<String>);

fn probe_finding(facts: &Facts, probe: &ProbeOutcome, daemon: &DaemonFacts, url: &str) -> Outcome {
    match probe {
        ProbeOutcome::BadUrl { url, reason } => (
            Level::Error,
            format!("HTTPS_PROXY={url} cannot reach regtap: {reason}"),
            Some(set_proxy(daemon, DEFAULT_PROXY)),
        ),
        ProbeOutcome::Unreachable { address, error } => (
            Level::Error,
            format!(
                "its proxy {url} does not answer ({error}): every pull and push fails until it runs"
            ),
            Some(format!("regtap proxy --listen {address}")),
        ),
        ProbeOutcome::NotAProxy { address, error } => (
            Level::Error,
            format!("{address} answers but is not an HTTPS proxy ({error})"),
            Some(format!(
                "ss -ltnp 'sport = :{port}'   # find what listens there; stop it, then: regtap proxy --listen {address}",
                port = address.rsplit(':').next().unwrap_or("8080")
            )),
        ),
        ProbeOutcome::OtherCa { address, issuer } if facts.ca.is_err() => (
            Level::Info,
            format!(
                "the proxy at {address} signs with {issuer}; with no CA here, regtap cannot \
                 tell whether it is this regtap"
            ),
            Some("REGTAP_HOME=<the proxy's data directory> regtap doctor".to_owned()),
        ),
        ProbeOutcome::OtherCa { address, issuer } => {
            let ours = facts
                .ca
                .as_ref()
                .map_or_else(|_| "regtap's CA".to_owned(), |ca| ca.cert_path.clone());
            (
                Level::Error,
                format!(
                    "the proxy at {address} signs with another CA ({issuer}), not {ours}: \
                     another proxy, or a regtap with another REGTAP_HOME"
                ),
                Some(format!(
                    "ss -ltnp 'sport = :{port}'   # find and stop it, then: regtap proxy --listen {address}",
                    port = address.rsplit(':').next().unwrap_or("8080")
                )),
            )
        }
        ProbeOutcome::ThisRegtap { address } => (
            Level::Ok,
            format!("its proxy {address} is this regtap (its certificates chain to regtap's CA)"),
            None,
        ),
    }
}

fn registry_findings(
    daemon: &DaemonFacts,
    registry: &RegistryFacts,
    no_proxy: &Option<String>,
) -> Vec<Outcome> {
    let unit = daemon.daemon.unit();
    let name = &registry.name;
    let (host, port) = (registry.host(), registry.port());
    let mut out = Vec::new();
    let bypassed = bypass(host, port, no_proxy.as_deref());
    let loopback_name = bypassed == Some(Bypass::Loopback);
    match bypassed {
        Some(Bypass::Loopback) => out.push((
            Level::Error,
            format!(
                "{name} is a loopback address, which Go never sends through a proxy \
                 (whatever NO_PROXY says): regtap does not see it"
            ),
            Some(format!(
                "regtap proxy --resolve registry.test:{port}={}   # then use registry.test:{port} in image names",
                loopback_target(host)
            )),
        )),
        Some(Bypass::NoProxy(entry)) => {
            let without: Vec<&str> = no_proxy
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty() && *e != entry)
                .collect();
            let without = without.join(",");
            out.push((
                Level::Error,
                format!("NO_PROXY entry {entry:?} sends {name} around the proxy"),
                Some(match &daemon.process {
                    Some(p) if p.pid.is_none() => format!("export NO_PROXY={without}"),
                    _ => format!(
                        "systemctl edit {unit}   # set Environment=\"NO_PROXY={without}\"; then: systemctl restart {unit}"
                    ),
                }),
            ));
        }
        None => out.push((
            Level::Ok,
            format!("requests for {name} go through its proxy"),
            None,
        )),
    }
    if daemon.daemon == Daemon::Docker {
        // `localhost` is reported above: Go does not even send it to the proxy.
        if let Some(ip) = registry.addresses.iter().find(|ip| ip.is_loopback())
            && !loopback_name
        {
            out.push((
                Level::Error,
                format!(
                    "{name} resolves to {ip} here, and dockerd treats a registry on \
                     127.0.0.0/8 as insecure (no certificate check, plain-http fallback): \
                     the capture would not show what a real pull or push does"
                ),
                Some(format!(
                    "sed -i '/[[:space:]]{host}\\([[:space:]]\\|$\\)/d' /etc/hosts && regtap proxy --resolve {host}:{port}={ip}"
                )),
            ));
        }
        if let Some(entry) = daemon
            .insecure_registries
            .iter()
            .find(|entry| insecure_entry_matches(entry, name, &registry.addresses))
        {
            out.push((
                Level::Error,
                format!(
                    "{name} is in insecure-registries ({entry:?}) of /etc/docker/daemon.json: \
                     dockerd skips certificate checks for it (and falls back to plain http)"
                ),
                Some(format!(
                    "edit /etc/docker/daemon.json to drop {entry:?} from insecure-registries, then: systemctl restart docker"
                )),
            ));
        }
    }
    out
}

/// The address a loopback registry is reached at.
fn loopback_target(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => "127.0.0.1".to_owned(),
    }
}

/// An `insecure-registries` entry is `host[:port]` or a CIDR.
fn insecure_entry_matches(entry: &str, name: &str, addresses: &[IpAddr]) -> bool {
    if entry.contains('/') {
        return addresses.iter().any(|ip| {
            super::noproxy::bypass(&ip.to_string(), 443, Some(entry)).is_some() && !ip.is_loopback()
        });
    }
    entry.eq_ignore_ascii_case(name)
}

fn trust_finding(facts: &Facts, daemon: &DaemonFacts) -> Outcome {
    let trust = &daemon.trust;
    let ssl_cert_file = daemon
        .process
        .as_ref()
        .and_then(|p| p.env.ssl_cert_file.clone());
    if let Some(bundle) = &trust.system {
        if let Some(error) = &bundle.error {
            return (
                Level::Warning,
                format!("cannot read {}: {error}", bundle.path),
                None,
            );
        }
        if bundle.holds_ca {
            return (
                Level::Ok,
                format!("trusts regtap's CA through {}", bundle.path),
                None,
            );
        }
    }
    let fix = match &ssl_cert_file {
        Some(file) => {
            format!(
                "regtap ca export --format pem >> {file} && {}",
                restart(daemon)
            )
        }
        None => trust_system_store(daemon),
    };
    let stale = trust
        .system
        .as_ref()
        .is_some_and(|b| b.stale_regtap_cas > 0);
    let store = match (&ssl_cert_file, &trust.system) {
        (Some(file), _) => format!("its SSL_CERT_FILE {file}"),
        (None, Some(bundle)) => bundle.path.clone(),
        (None, None) => "the system store".to_owned(),
    };
    let older = if stale {
        " (it holds an older regtap CA: the CA was re-created since)"
    } else {
        ""
    };
    let per_registry: Vec<&str> = trust
        .per_registry
        .iter()
        .filter(|t| t.holds_ca)
        .map(|t| t.host.as_str())
        .collect();
    let all_registries_trusted = !facts.registries.is_empty()
        && facts
            .registries
            .iter()
            .all(|r| per_registry.contains(&r.name.as_str()));
    if all_registries_trusted {
        (
            Level::Warning,
            format!(
                "trusts regtap's CA only in {}/<host>/ ({}), not in {store}{older}: \
                 blob downloads that redirect to a storage host fail",
                daemon.daemon.certs_dir(),
                per_registry.join(", ")
            ),
            Some(fix),
        )
    } else {
        (
            Level::Error,
            format!(
                "does not trust regtap's CA: not in {store}{older}{}; every TLS handshake \
                 through regtap fails (a capture records them as client_tls)",
                if per_registry.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", only in {}/ for {}",
                        daemon.daemon.certs_dir(),
                        per_registry.join(", ")
                    )
                }
            ),
            Some(fix),
        )
    }
}

/// What a failure stage recorded in a capture means, and how bad it is.
/// Exhaustive, so that a new stage cannot go without advice.
pub fn stage_advice(stage: ErrorStage) -> (Level, &'static str, Option<&'static str>) {
    match stage {
        ErrorStage::ClientTls => (
            Level::Error,
            "the TLS handshake between the client and regtap failed: the client does not trust regtap's CA",
            Some(
                "regtap ca export --format pem -o /usr/local/share/ca-certificates/regtap.crt && update-ca-certificates   # then restart the client's daemon",
            ),
        ),
        ErrorStage::ClientProtocol => (
            Level::Warning,
            "the client sent something regtap does not proxy inside the tunnel (plain http to a TLS port?)",
            None,
        ),
        ErrorStage::ConnectionLimit => (
            Level::Warning,
            "the proxy was at its connection limit and refused connections",
            Some("regtap proxy --max-connections 2048"),
        ),
        ErrorStage::ClientRefused => (
            Level::Warning,
            "clients outside the proxy's --allow-client networks were refused",
            Some("regtap proxy --allow-client 10.0.0.0/8   # one per network allowed"),
        ),
        ErrorStage::Misdirected => (
            Level::Warning,
            "clients in reverse mode asked for a host name regtap serves no upstream for (answered 421)",
            Some("regtap proxy --reverse NAME=https://REGISTRY   # serve the name the clients use"),
        ),
        ErrorStage::RequestHeadTimeout => (
            Level::Warning,
            "clients took too long to send a request head",
            Some("regtap proxy --request-head-timeout 120"),
        ),
        ErrorStage::ConnectTimeout => (
            Level::Warning,
            "connecting to the upstream server timed out",
            Some("regtap proxy --connect-timeout 120"),
        ),
        ErrorStage::UpstreamProxy => (
            Level::Error,
            "the upstream proxy regtap goes through could not be reached or refused the tunnel \
             (each flow's error names the proxy and its answer)",
            Some(
                "regtap proxy --upstream-proxy http://PROXY:PORT --upstream-proxy-auth-file FILE   # FILE holds user:password",
            ),
        ),
        ErrorStage::ResponseTimeout => (
            Level::Warning,
            "the upstream server did not answer in time",
            Some("regtap proxy --response-timeout 900"),
        ),
        ErrorStage::BodyTimeout => (
            Level::Warning,
            "a body stopped moving for too long",
            Some("regtap proxy --body-timeout 600"),
        ),
        ErrorStage::Connect => (
            Level::Warning,
            "regtap could not connect to, or verify the certificate of, the upstream server",
            Some(
                "regtap proxy --upstream-ca REGISTRY-CA.pem   # when the registry uses a private CA",
            ),
        ),
        ErrorStage::IdleTimeout => (Level::Info, "idle kept-alive connections were closed", None),
        ErrorStage::Request => (Level::Info, "the client stopped sending its request", None),
        ErrorStage::Response => (Level::Info, "the response was cut off", None),
        ErrorStage::ProxyStopped => (
            Level::Info,
            "exchanges were cut off when the proxy stopped",
            None,
        ),
    }
}

pub fn check_capture(capture: &CaptureFacts) -> Vec<Finding> {
    let subject = format!("capture {}", capture.path);
    if capture.failures.is_empty() {
        return vec![finding(
            Level::Ok,
            &subject,
            format!("{} flows, none failed before an HTTP answer", capture.flows),
            None,
        )];
    }
    // One finding per stage, naming the hosts and clients involved.
    let mut by_stage: BTreeMap<ErrorStage, Vec<&super::CapturedFailure>> = BTreeMap::new();
    for failure in &capture.failures {
        by_stage.entry(failure.stage).or_default().push(failure);
    }
    let mut findings = Vec::new();
    for (stage, failures) in by_stage {
        let hosts = distinct(failures.iter().filter_map(|f| f.authority.as_deref()));
        let clients = distinct(failures.iter().filter_map(|f| {
            f.client_addr
                .as_deref()
                .map(|a| super::split_host_port(a).0)
        }));
        let ids: Vec<String> = failures.iter().map(|f| f.flow_id.to_string()).collect();
        let ids = distinct(ids.iter().map(String::as_str));
        let context = format!(
            "{} flow{} ({ids}){}{}; first: {}",
            failures.len(),
            if failures.len() == 1 { "" } else { "s" },
            if hosts.is_empty() {
                String::new()
            } else {
                format!(" for {hosts}")
            },
            if clients.is_empty() {
                String::new()
            } else {
                format!(" from {clients}")
            },
            failures[0].message,
        );
        let (level, meaning, fix) = stage_advice(stage);
        findings.push(finding(
            level,
            &subject,
            format!("{}: {meaning} — {context}", stage.as_str()),
            fix.map(str::to_owned),
        ));
    }
    findings
}

/// At most five distinct values, joined, with a count of the rest.
fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for value in values {
        if !seen.contains(&value) {
            seen.push(value);
        }
    }
    const SHOWN: usize = 5;
    let rest = seen.len().saturating_sub(SHOWN);
    let mut text = seen
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if rest > 0 {
        text.push_str(&format!(" and {rest} more"));
    }
    text
}

#[cfg(test)]
mod tests;
