//! `--keylog`: the secrets of both TLS legs in the NSS key log format, the
//! same secrets the client and the upstream server computed (so Wireshark,
//! given the file, decrypts a packet capture of both legs).

mod common;

use std::sync::{Arc, Mutex};

use common::{start_proxy, start_upstream, upstream_pki};

/// A key log that keeps its lines, as a TLS peer's own record of its secrets.
#[derive(Debug, Default)]
struct Recorded(Mutex<Vec<String>>);

impl rustls::KeyLog for Recorded {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(format!(
                "{label} {} {}",
                hex::encode(client_random),
                hex::encode(secret)
            ));
        }
    }
}

impl Recorded {
    fn lines(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_legs_secrets_are_logged_as_their_peers_computed_them() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = upstream_pki(pki_dir.path());
    let upstream_log = Arc::new(Recorded::default());
    let mut server_config = (*pki.server_config).clone();
    server_config.key_log = Arc::clone(&upstream_log) as Arc<dyn rustls::KeyLog>;
    let upstream = start_upstream(Some(Arc::new(server_config))).await;
    let keylog = pki_dir.path().join("keys.log");
    let mut harness = start_proxy(|c| {
        c.upstream_ca.push(pki.ca_pem.clone());
        c.keylog = Some(keylog.clone());
    })
    .await;

    let client_log = Arc::new(Recorded::default());
    let mut client_tls = harness.client_tls();
    client_tls.key_log = Arc::clone(&client_log) as Arc<dyn rustls::KeyLog>;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(client_tls)
        .proxy(reqwest::Proxy::all(format!("http://{}", harness.proxy.local_addr())).unwrap())
        .build()
        .unwrap();
    let answer = client
        .get(format!("https://localhost:{}/json", upstream.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    harness.finished(1).await;

    let written = std::fs::read_to_string(&keylog).unwrap();
    let logged: Vec<&str> = written.lines().collect();
    let client_side = client_log.lines();
    let upstream_side = upstream_log.lines();
    assert!(!client_side.is_empty() && !upstream_side.is_empty());
    for line in client_side.iter().chain(&upstream_side) {
        assert!(
            logged.contains(&line.as_str()),
            "{line} is missing from the key log:\n{written}"
        );
    }
    // Nothing but key log lines, and the file is the user's alone.
    assert!(
        logged.iter().all(|l| l.split(' ').count() == 3),
        "{written}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&keylog).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (capture, _dir) = harness.stop().await;
    assert_eq!(
        capture.header.settings.keylog.as_deref(),
        Some(keylog.display().to_string().as_str())
    );
}

/// Whether this machine can capture packets with tshark (root and the
/// program); under `CI=true` it must.
fn tshark_usable() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tshark = std::process::Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if root && tshark {
        return true;
    }
    let missing = if root { "tshark" } else { "root" };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and this machine lacks {missing}: install tshark and run as root");
    }
    eprintln!("SKIPPED: tshark decryption test needs {missing}");
    false
}

/// A packet capture of both legs, decrypted by tshark with the key log alone,
/// shows the HTTP request on each leg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_decrypts_both_legs_with_the_key_log() {
    if !tshark_usable() {
        return;
    }
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = upstream_pki(pki_dir.path());
    let upstream = start_upstream(Some(Arc::clone(&pki.server_config))).await;
    let keylog = pki_dir.path().join("keys.log");
    let mut harness = start_proxy(|c| {
        c.upstream_ca.push(pki.ca_pem.clone());
        c.keylog = Some(keylog.clone());
    })
    .await;
    let proxy_port = harness.proxy.local_addr().port();
    let upstream_port = upstream.addr.port();
    let pcap = pki_dir.path().join("legs.pcapng");
    let mut capture = std::process::Command::new("tshark")
        .args(["-i", "lo", "-q", "-w"])
        .arg(&pcap)
        .args([
            "-f",
            &format!("tcp port {proxy_port} or tcp port {upstream_port}"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // tshark writes the file's header once it captures.
    let ready = std::time::Instant::now();
    while std::fs::metadata(&pcap).map_or(true, |m| m.len() == 0) {
        assert!(
            ready.elapsed().as_secs() < 20,
            "tshark did not start capturing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let answer = harness
        .client()
        .get(format!("https://localhost:{upstream_port}/json?leg=test"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    harness.finished(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // SAFETY: kill with SIGINT on our own child's pid.
    unsafe {
        libc::kill(capture.id() as i32, libc::SIGINT);
    }
    capture.wait().unwrap();

    let decoded = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .arg("-o")
        .arg(format!("tls.keylog_file:{}", keylog.display()))
        .args(["-d", &format!("tcp.port=={upstream_port},tls")])
        .args(["-Y", "http.request or http2.type == 1", "-V"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&decoded.stdout);
    let requests = text.matches("/json?leg=test").count();
    assert!(
        requests >= 2,
        "tshark should see the request on both legs, saw {requests}:\n{}",
        text.chars().take(3000).collect::<String>()
    );
    let (_capture, _dir) = harness.stop().await;
}
