//! `regtap doctor` run for real on this machine: against a real regtap
//! proxy, the daemons that happen to run here, and a capture.

use std::path::Path;
use std::process::{Command, Output};

use regtap_proxy::{Ca, ProxyConfig};

fn doctor(home: &Path, args: &[&str], env: &[(&str, &str)]) -> (Output, serde_json::Value) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_regtap"));
    command
        .arg("doctor")
        .args(args)
        .arg("--json")
        .env("REGTAP_HOME", home);
    for name in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("regtap runs");
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, json)
}

fn findings(json: &serde_json::Value) -> Vec<(String, String)> {
    json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["level"].as_str().unwrap_or("").to_owned(),
                f["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// podman and skopeo read the shell's environment: pointed at a running
/// regtap whose CA their SSL_CERT_FILE holds, nothing is wrong; with the
/// proxy gone, the doctor says so and exits non-zero.
#[test]
fn podman_environment_against_a_real_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let ca = Ca::init(&home, &Default::default()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let proxy = runtime
        .block_on(regtap_proxy::start(
            ProxyConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("c.jsonl")),
            &ca,
        ))
        .unwrap();
    let url = format!("http://{}", proxy.local_addr());
    let bundle = Ca::cert_path_in(&home);
    let bundle = bundle.to_str().unwrap();
    let env = [
        ("HTTPS_PROXY", url.as_str()),
        ("HTTP_PROXY", url.as_str()),
        ("NO_PROXY", "localhost,127.0.0.0/8"),
        ("SSL_CERT_FILE", bundle),
    ];
    let args = ["podman", "--registry", "registry.invalid:5000"];
    let (output, json) = doctor(&home, &args, &env);
    let found = findings(&json);
    assert!(output.status.success(), "{found:#?}");
    assert_eq!(json["ok"], true);
    let has = |level: &str, text: &str| found.iter().any(|(l, m)| l == level && m.contains(text));
    assert!(has("ok", "is this regtap"), "{found:#?}");
    assert!(
        has("ok", &format!("trusts regtap's CA through {bundle}")),
        "{found:#?}"
    );
    assert!(has(
        "ok",
        "requests for registry.invalid:5000 go through its proxy"
    ));

    runtime.block_on(proxy.shutdown()).unwrap();
    let (output, json) = doctor(&home, &args, &env);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        findings(&json)
            .iter()
            .any(|(l, m)| l == "error" && m.contains("does not answer")),
        "{json:#}"
    );
}

/// Whatever runs here: every dockerd and containerd in /proc is reported
/// (with its pid), and the exit status follows the findings.
#[test]
fn the_daemons_running_here() {
    let dir = tempfile::tempdir().unwrap();
    Ca::init(dir.path(), &Default::default()).unwrap();
    let (output, json) = doctor(dir.path(), &[], &[]);
    let running: Vec<(String, u64)> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u64 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            let comm = comm.trim();
            ["dockerd", "containerd"]
                .contains(&comm)
                .then(|| (comm.to_owned(), pid))
        })
        .collect();
    let reported: Vec<(String, u64)> = json["facts"]["daemons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["daemon"] != "podman")
        .map(|d| {
            let program = if d["daemon"] == "docker" {
                "dockerd"
            } else {
                "containerd"
            };
            (program.to_owned(), d["process"]["pid"].as_u64().unwrap())
        })
        .collect();
    for daemon in &running {
        // A daemon that exited while the doctor ran is the only excuse.
        let still_there = Path::new(&format!("/proc/{}", daemon.1)).exists();
        assert!(
            !still_there || reported.contains(daemon),
            "{daemon:?} not in {reported:?}"
        );
    }
    let errors = findings(&json).iter().any(|(l, _)| l == "error");
    assert_eq!(output.status.success(), !errors, "{json:#}");
    assert_eq!(json["ok"], !errors);
    eprintln!("daemons here: {running:?}; doctor reported {reported:?}");
}

/// A capture holding a refused client handshake makes the doctor fail and
/// say how to trust the CA.
#[test]
fn a_capture_with_refused_handshakes() {
    let dir = tempfile::tempdir().unwrap();
    Ca::init(dir.path(), &Default::default()).unwrap();
    let capture = dir.path().join("c.jsonl");
    // Written as the proxy writes a refused client handshake.
    let header = regtap_capture::CaptureHeader::new("0.1.0", 1, Default::default());
    let mut writer = regtap_capture::CaptureWriter::create(&capture, &header).unwrap();
    let mut refused =
        regtap_capture::factory::FlowBuilder::new(1, "CONNECT", "https://registry.test:5000")
            .error(regtap_capture::FlowError {
                stage: regtap_capture::ErrorStage::ClientTls,
                message: "the client refused regtap's certificate (UnknownCA)".to_owned(),
            })
            .build();
    refused.client_addr = Some("127.0.0.1:40000".to_owned());
    refused.connect_authority = Some("registry.test:5000".to_owned());
    writer.append(&refused).unwrap();
    drop(writer);
    let capture = capture.to_str().unwrap();
    let (output, json) = doctor(dir.path(), &["--capture", capture], &[]);
    assert_eq!(output.status.code(), Some(1), "{json:#}");
    let finding = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["message"].as_str().unwrap().starts_with("client_tls:"))
        .unwrap_or_else(|| panic!("{json:#}"));
    assert_eq!(finding["level"], "error");
    assert!(
        finding["message"]
            .as_str()
            .unwrap()
            .contains("registry.test:5000")
    );
    assert!(
        finding["fix"]
            .as_str()
            .unwrap()
            .contains("update-ca-certificates")
    );
    // The capture's host is checked too.
    assert_eq!(json["facts"]["registries"][0]["name"], "registry.test:5000");
}
