//! Each check on hand-made facts: a healthy dockerd, then one trap at a time.

use super::*;
use crate::doctor::{
    BundleFacts, CapturedFailure, ProcessFacts, ProxyEnv, RegistryTrust, TrustFacts, UnitFacts,
};
use regtap_capture::ErrorStage;

const NOW: i64 = 1_800_000_000;
const PROXY: &str = "http://127.0.0.1:8080";

fn env(https_proxy: Option<&str>, no_proxy: Option<&str>) -> ProxyEnv {
    ProxyEnv {
        http_proxy: https_proxy.map(str::to_owned),
        https_proxy: https_proxy.map(str::to_owned),
        no_proxy: no_proxy.map(str::to_owned),
        ssl_cert_file: None,
        ssl_cert_dir: None,
    }
}

fn dockerd() -> DaemonFacts {
    let proxy_env = env(Some(PROXY), Some("localhost,127.0.0.0/8,::1"));
    DaemonFacts {
        daemon: Daemon::Docker,
        process: Some(ProcessFacts {
            pid: Some(812),
            systemd_unit: Some("docker.service".to_owned()),
            started_unix: Some(NOW - 3600),
            env: proxy_env.clone(),
            env_error: None,
        }),
        unit: Some(UnitFacts {
            name: "docker.service".to_owned(),
            files: vec!["/etc/systemd/system/docker.service.d/http-proxy.conf".to_owned()],
            env: proxy_env,
        }),
        trust: TrustFacts {
            system: Some(BundleFacts {
                path: "/etc/ssl/certs/ca-certificates.crt".to_owned(),
                holds_ca: true,
                stale_regtap_cas: 0,
                modified_unix: Some(NOW - 7200),
                error: None,
            }),
            per_registry: Vec::new(),
        },
        probe: Some(ProbeOutcome::ThisRegtap {
            address: "127.0.0.1:8080".to_owned(),
        }),
        insecure_registries: Vec::new(),
    }
}

fn registry(name: &str, addresses: &[&str]) -> RegistryFacts {
    RegistryFacts {
        name: name.to_owned(),
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
    }
}

fn facts(daemon: DaemonFacts) -> Facts {
    Facts {
        now_unix: NOW,
        ca: Ok(CaFacts {
            cert_path: "/root/.local/share/regtap/ca.pem".to_owned(),
            fingerprint: "AB:CD".to_owned(),
            not_after: "2036-01-01T00:00:00Z".to_owned(),
            not_after_unix: NOW + 3000 * DAY,
            name_constraints: Vec::new(),
        }),
        requested: vec![Daemon::Docker],
        daemons: vec![daemon],
        registries: vec![registry("registry.example:5000", &["10.1.2.3"])],
        capture: None,
    }
}

fn problems(facts: &Facts) -> Vec<Finding> {
    run(facts)
        .into_iter()
        .filter(|f| f.level >= Level::Warning)
        .collect()
}

/// The one problem the facts hold: its level, and that message and fix say
/// what a user needs.
#[track_caller]
fn only_problem(facts: &Facts, level: Level, message: &str, fix: &str) {
    let found = problems(facts);
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = &found[0];
    assert_eq!(f.level, level, "{f:#?}");
    assert!(f.message.contains(message), "{f:#?}");
    assert!(f.fix.as_deref().unwrap_or("").contains(fix), "{f:#?}");
}

#[test]
fn a_healthy_setup_has_no_problem_and_says_what_it_checked() {
    let facts = facts(dockerd());
    let findings = run(&facts);
    assert!(!has_errors(&findings), "{findings:#?}");
    assert!(problems(&facts).is_empty(), "{findings:#?}");
    let text: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
    assert!(
        text.iter().any(|m| m.contains("is this regtap")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|m| m.contains("requests for registry.example:5000 go through"))
    );
    assert!(
        text.iter()
            .any(|m| m.contains("trusts regtap's CA through /etc/ssl/certs"))
    );
}

#[test]
fn no_proxy_in_the_environment() {
    let mut d = dockerd();
    d.process.as_mut().unwrap().env = env(None, None);
    d.unit = None;
    d.probe = None;
    let facts = facts(d);
    only_problem(
        &facts,
        Level::Error,
        "HTTPS_PROXY is not set",
        "regtap setup docker --write --proxy http://127.0.0.1:8080 && systemctl daemon-reload && systemctl restart docker",
    );
    assert!(has_errors(&run(&facts)));
}

#[test]
fn a_drop_in_written_but_dockerd_not_restarted() {
    let mut d = dockerd();
    d.process.as_mut().unwrap().env = env(None, None);
    d.probe = None;
    let found = problems(&facts(d));
    assert!(
        found
            .iter()
            .any(|f| f.message.contains("not restarted since")
                && f.fix.as_deref() == Some("systemctl daemon-reload && systemctl restart docker"))
    );
}

#[test]
fn the_proxy_is_down_or_someone_else() {
    let mut d = dockerd();
    d.probe = Some(ProbeOutcome::Unreachable {
        address: "127.0.0.1:8080".to_owned(),
        error: "Connection refused (os error 111)".to_owned(),
    });
    only_problem(
        &facts(d),
        Level::Error,
        "does not answer",
        "regtap proxy --listen 127.0.0.1:8080",
    );

    let mut d = dockerd();
    d.probe = Some(ProbeOutcome::OtherCa {
        address: "127.0.0.1:8080".to_owned(),
        issuer: "issuer CN=mitmproxy".to_owned(),
    });
    only_problem(
        &facts(d),
        Level::Error,
        "CN=mitmproxy",
        "regtap proxy --listen 127.0.0.1:8080",
    );

    let mut d = dockerd();
    d.probe = Some(ProbeOutcome::BadUrl {
        url: "https://127.0.0.1:8080".to_owned(),
        reason: "a https:// proxy".to_owned(),
    });
    only_problem(
        &facts(d),
        Level::Error,
        "https://",
        "--proxy http://127.0.0.1:8080",
    );
}

#[test]
fn no_proxy_and_loopback_traps() {
    let mut d = dockerd();
    d.process.as_mut().unwrap().env.no_proxy = Some("localhost,.example:5000".to_owned());
    d.unit = None;
    only_problem(
        &facts(d),
        Level::Error,
        "NO_PROXY entry \".example:5000\" sends registry.example:5000 around the proxy",
        "systemctl edit docker   # set Environment=\"NO_PROXY=localhost\"; then: systemctl restart docker",
    );

    let mut facts_loopback = facts(dockerd());
    facts_loopback.registries = vec![registry("localhost:5000", &["127.0.0.1"])];
    only_problem(
        &facts_loopback,
        Level::Error,
        "loopback address, which Go never sends through a proxy",
        "regtap proxy --resolve registry.test:5000=127.0.0.1",
    );
}

#[test]
fn a_name_resolving_to_loopback_or_listed_insecure_is_never_verified_by_dockerd() {
    let mut f = facts(dockerd());
    f.registries = vec![registry("registry.test:5000", &["127.0.0.1"])];
    only_problem(
        &f,
        Level::Error,
        "resolves to 127.0.0.1 here, and dockerd treats a registry on 127.0.0.0/8 as insecure",
        "/etc/hosts && regtap proxy --resolve registry.test:5000=127.0.0.1",
    );

    let mut d = dockerd();
    d.insecure_registries = vec!["registry.example:5000".to_owned()];
    only_problem(
        &facts(d),
        Level::Error,
        "insecure-registries",
        "/etc/docker/daemon.json",
    );
    let mut d = dockerd();
    d.insecure_registries = vec!["10.0.0.0/8".to_owned()];
    only_problem(
        &facts(d),
        Level::Error,
        "(\"10.0.0.0/8\")",
        "systemctl restart docker",
    );

    // containerd has no such rule.
    let mut d = dockerd();
    d.daemon = Daemon::Containerd;
    d.unit = None;
    let mut f = facts(d);
    f.requested = vec![Daemon::Containerd];
    f.registries = vec![registry("registry.test:5000", &["127.0.0.1"])];
    assert!(problems(&f).is_empty(), "{:#?}", problems(&f));
}

#[test]
fn trust_missing_stale_per_registry_or_not_reloaded() {
    let mut d = dockerd();
    let bundle = d.trust.system.as_mut().unwrap();
    bundle.holds_ca = false;
    bundle.stale_regtap_cas = 1;
    only_problem(
        &facts(d),
        Level::Error,
        "does not trust regtap's CA: not in /etc/ssl/certs/ca-certificates.crt (it holds an older regtap CA",
        "regtap ca export --format pem -o /usr/local/share/ca-certificates/regtap.crt && update-ca-certificates && systemctl restart docker",
    );

    let mut d = dockerd();
    d.trust.system.as_mut().unwrap().holds_ca = false;
    d.trust.per_registry = vec![RegistryTrust {
        host: "registry.example:5000".to_owned(),
        dir: "/etc/docker/certs.d/registry.example:5000".to_owned(),
        holds_ca: true,
    }];
    only_problem(
        &facts(d),
        Level::Warning,
        "redirect to a storage host fail",
        "update-ca-certificates",
    );

    let mut d = dockerd();
    d.process.as_mut().unwrap().env.ssl_cert_file = Some("/opt/bundle.pem".to_owned());
    d.trust.system = Some(BundleFacts {
        path: "/opt/bundle.pem".to_owned(),
        holds_ca: false,
        stale_regtap_cas: 0,
        modified_unix: None,
        error: None,
    });
    only_problem(
        &facts(d),
        Level::Error,
        "its SSL_CERT_FILE /opt/bundle.pem",
        "regtap ca export --format pem >> /opt/bundle.pem",
    );

    let mut d = dockerd();
    d.trust.system.as_mut().unwrap().modified_unix = Some(NOW - 60);
    only_problem(
        &facts(d),
        Level::Warning,
        "changed after dockerd started",
        "systemctl restart docker",
    );
}

#[test]
fn ca_missing_expiring_expired_or_constrained() {
    let mut f = facts(dockerd());
    f.ca = Err("no CA in /root/.local/share/regtap; create one with `regtap ca init`".to_owned());
    f.daemons[0].trust.system.as_mut().unwrap().holds_ca = false;
    f.daemons[0].probe = Some(ProbeOutcome::OtherCa {
        address: "127.0.0.1:8080".to_owned(),
        issuer: "issuer CN=regtap local CA, O=regtap".to_owned(),
    });
    // Only the missing CA is a problem: trust and the proxy's CA cannot be judged.
    only_problem(&f, Level::Error, "no usable CA", "regtap ca init");
    assert!(
        run(&f).iter().any(|x| x.level == Level::Info
            && x.message.contains("cannot tell whether it is this regtap"))
    );

    let mut f = facts(dockerd());
    f.ca.as_mut().unwrap().not_after_unix = NOW + 10 * DAY;
    only_problem(&f, Level::Warning, "(in 10 days)", "regtap ca init --force");

    let mut f = facts(dockerd());
    f.ca.as_mut().unwrap().not_after_unix = NOW - 1;
    only_problem(&f, Level::Error, "expired", "regtap ca init --force");

    let mut f = facts(dockerd());
    f.ca.as_mut().unwrap().name_constraints = vec!["corp.example".to_owned()];
    f.registries.push(registry("r.corp.example", &[]));
    only_problem(
        &f,
        Level::Error,
        "it may only issue for corp.example: clients refuse the certificate regtap makes for registry.example",
        "regtap ca init --force --name-constraint corp.example --name-constraint registry.example",
    );
    f.ca.as_mut().unwrap().name_constraints = vec!["example".to_owned()];
    assert!(problems(&f).is_empty());
}

#[test]
fn a_daemon_outside_systemd_is_restarted_by_hand() {
    let mut d = dockerd();
    d.unit = None;
    let process = d.process.as_mut().unwrap();
    process.systemd_unit = None;
    process.env.ssl_cert_file = Some("/tmp/lab/ca-bundle.pem".to_owned());
    d.trust.system.as_mut().unwrap().holds_ca = false;
    only_problem(
        &facts(d),
        Level::Error,
        "its SSL_CERT_FILE /tmp/lab/ca-bundle.pem",
        ">> /tmp/lab/ca-bundle.pem && restart dockerd (pid 812; it is not a systemd service)",
    );
}

#[test]
fn an_unreadable_environment_asks_for_root() {
    let mut d = dockerd();
    d.process.as_mut().unwrap().env_error = Some("Permission denied (os error 13)".to_owned());
    only_problem(
        &facts(d),
        Level::Error,
        "cannot read its environment",
        "sudo regtap doctor",
    );
}

#[test]
fn a_daemon_asked_for_must_run() {
    let mut f = facts(dockerd());
    f.requested = vec![Daemon::Docker, Daemon::Containerd];
    only_problem(
        &f,
        Level::Error,
        "containerd is not running",
        "systemctl start containerd",
    );

    let mut f = facts(dockerd());
    f.requested.clear();
    f.daemons.clear();
    assert!(problems(&f).is_empty());
    assert!(
        run(&f)
            .iter()
            .any(|x| x.message.contains("no dockerd, containerd or podman"))
    );
}

#[test]
fn podman_in_the_shell_gets_export_commands() {
    let mut d = dockerd();
    d.daemon = Daemon::Podman;
    d.unit = None;
    let process = d.process.as_mut().unwrap();
    process.pid = None;
    process.env = env(None, None);
    d.probe = None;
    let mut f = facts(d);
    f.requested = vec![Daemon::Podman];
    only_problem(
        &f,
        Level::Error,
        "HTTPS_PROXY is not set",
        "export HTTPS_PROXY=http://127.0.0.1:8080 HTTP_PROXY=http://127.0.0.1:8080",
    );
    assert_eq!(f.daemons[0].label(), "podman (this shell's environment)");
}

#[test]
fn refused_handshakes_in_a_capture() {
    let failure = |id, stage: ErrorStage, client: &str| CapturedFailure {
        flow_id: id,
        stage,
        client_addr: Some(client.to_owned()),
        authority: Some("registry.test:5000".to_owned()),
        message: "client refused the certificate: UnknownCA".to_owned(),
    };
    let capture = CaptureFacts {
        path: "c.jsonl".to_owned(),
        flows: 9,
        failures: vec![
            failure(3, ErrorStage::ClientTls, "172.17.0.1:40000"),
            failure(4, ErrorStage::ClientTls, "172.17.0.1:40002"),
            failure(8, ErrorStage::IdleTimeout, "172.17.0.1:40004"),
        ],
    };
    let findings = check_capture(&capture);
    assert_eq!(findings.len(), 2, "{findings:#?}");
    let tls = &findings[0];
    assert_eq!(tls.level, Level::Error);
    assert!(
        tls.message.starts_with(
            "client_tls: the TLS handshake between the client and regtap failed: the client does not trust regtap's CA — \
             2 flows (3, 4) for registry.test:5000 from 172.17.0.1; first: client refused"
        ),
        "{}",
        tls.message
    );
    assert!(
        tls.fix
            .as_deref()
            .unwrap()
            .contains("update-ca-certificates")
    );
    assert_eq!(findings[1].level, Level::Info);

    let clean = CaptureFacts {
        failures: Vec::new(),
        ..capture
    };
    assert_eq!(check_capture(&clean)[0].level, Level::Ok);
}

/// A stage the proxy records for its own limits is advice, not an alarm;
/// a client that does not trust the CA is an error. (That every stage has
/// advice at all, the compiler checks: the match is exhaustive.)
#[test]
fn stages_are_judged_by_what_they_mean() {
    assert_eq!(stage_advice(ErrorStage::ClientTls).0, Level::Error);
    assert_eq!(stage_advice(ErrorStage::ProxyStopped).0, Level::Info);
    assert!(
        stage_advice(ErrorStage::ConnectionLimit)
            .2
            .is_some_and(|fix| fix.contains("--max-connections"))
    );
}
