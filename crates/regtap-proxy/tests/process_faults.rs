//! Faults that need a process of their own: the proxy runs in a child (this
//! test binary again, running only [`proxy_child`]) so that a file-descriptor
//! limit, a file-size limit or `kill -9` hits the proxy and nothing else.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{MIB, random_mib, start_upstream, upstream_pki};
use regtap_capture::{Capture, ErrorStage};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::process::{Child, ChildStdout};

/// Set to a [`ChildSpec`] (JSON) in the child's environment.
const CHILD_ENV: &str = "REGTAP_PROXY_TEST_CHILD";

#[derive(Serialize, Deserialize, Default)]
struct ChildSpec {
    home: PathBuf,
    capture: PathBuf,
    upstream_ca: Option<PathBuf>,
    keep_forwarding_unrecorded: bool,
    /// RLIMIT_FSIZE for the child, set before the proxy starts.
    file_size_limit: Option<u64>,
    /// RLIMIT_NOFILE for the child, as descriptors beyond those open once
    /// the proxy runs.
    spare_fds: Option<u64>,
}

#[derive(Serialize, Deserialize, Debug)]
struct ChildSummary {
    flows_written: u64,
    flows_lost: u64,
    capture_error: Option<String>,
    accept_failures: u64,
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: plain system call on a valid struct.
    assert_eq!(unsafe { libc::setrlimit(resource, &limit) }, 0);
}

/// The proxy side of every test here; does nothing unless run as a child.
#[test]
fn proxy_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let spec: ChildSpec = serde_json::from_str(&spec).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let (ca, _) = regtap_proxy::Ca::load_or_init(&spec.home).unwrap();
        let mut config =
            regtap_proxy::ProxyConfig::new("127.0.0.1:0".parse().unwrap(), spec.capture.clone());
        config.upstream_ca.extend(spec.upstream_ca.clone());
        config.keep_forwarding_unrecorded = spec.keep_forwarding_unrecorded;
        if let Some(limit) = spec.file_size_limit {
            set_limit(libc::RLIMIT_FSIZE, limit);
        }
        let proxy = regtap_proxy::start(config, &ca).await.unwrap();
        if let Some(spare) = spec.spare_fds {
            let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
            set_limit(libc::RLIMIT_NOFILE, open + spare);
        }
        println!("LISTEN {}", proxy.local_addr());
        let mut stdin = tokio::io::stdin();
        let mut sink = Vec::new();
        tokio::select! {
            _ = stdin.read_to_end(&mut sink) => {}
            _ = proxy.capture_failed(), if !spec.keep_forwarding_unrecorded => {}
        }
        let summary = proxy.shutdown().await.unwrap();
        let summary = ChildSummary {
            flows_written: summary.flows_written,
            flows_lost: summary.flows_lost,
            capture_error: summary.capture_error,
            accept_failures: summary.accept_failures,
        };
        println!("SUMMARY {}", serde_json::to_string(&summary).unwrap());
    });
}

struct ProxyProcess {
    child: Child,
    addr: SocketAddr,
    stdout: BufReader<ChildStdout>,
}

/// Waits for a line containing `marker` on the child's stdout; what follows it.
async fn line_after(stdout: &mut BufReader<ChildStdout>, marker: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut line))
            .await
            .expect("the child should answer")
            .unwrap();
        assert!(n > 0, "the child ended without printing {marker}");
        if let Some((_, rest)) = line.split_once(marker) {
            return rest.trim().to_owned();
        }
    }
}

async fn spawn_proxy(spec: &ChildSpec) -> ProxyProcess {
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "proxy_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, serde_json::to_string(spec).unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let addr = line_after(&mut stdout, "LISTEN ").await.parse().unwrap();
    ProxyProcess {
        child,
        addr,
        stdout,
    }
}

impl ProxyProcess {
    /// Closes the child's stdin (it shuts the proxy down) and reads its summary
    /// and what it wrote to stderr.
    async fn stop(mut self) -> (ChildSummary, Vec<u8>) {
        drop(self.child.stdin.take());
        self.finish().await
    }

    /// Waits for the child to stop by itself.
    async fn finish(mut self) -> (ChildSummary, Vec<u8>) {
        let summary = line_after(&mut self.stdout, "SUMMARY ").await;
        let mut stderr = Vec::new();
        let mut pipe = self.child.stderr.take().unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(10), pipe.read_to_end(&mut stderr)).await;
        (serde_json::from_str(&summary).unwrap(), stderr)
    }

    fn client(&self, ca_home: &Path) -> reqwest::Client {
        let ca = regtap_proxy::Ca::load(ca_home).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(
                ca.cert_der().to_vec(),
            ))
            .unwrap();
        let tls = rustls::ClientConfig::builder_with_provider(regtap_proxy::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .proxy(reqwest::Proxy::all(format!("http://{}", self.addr)).unwrap())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_proxy_backs_off_quietly_and_serves_again() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream(None).await;
    let spec = ChildSpec {
        home: dir.path().join("home"),
        capture: dir.path().join("c.jsonl"),
        spare_fds: Some(24),
        ..ChildSpec::default()
    };
    let mut proxy = spawn_proxy(&spec).await;
    // Far more connections than the proxy has descriptors for.
    let mut held = Vec::new();
    for _ in 0..150 {
        held.push(tokio::net::TcpStream::connect(proxy.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(proxy.child.try_wait().unwrap().is_none(), "the proxy died");
    drop(held);

    let client = proxy.client(&spec.home);
    let response = client
        .get(format!("http://{}/json", upstream.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (summary, stderr) = proxy.stop().await;
    assert!(summary.accept_failures > 0, "{summary:?}");
    assert!(
        stderr.len() < 64 * 1024,
        "{} bytes of stderr: the accept loop must not flood it",
        stderr.len()
    );
    let capture = Capture::read(&spec.capture).unwrap();
    let url = format!("http://{}/json", upstream.addr);
    assert!(
        capture
            .flows
            .iter()
            .any(|f| f.request.url == url && f.status() == Some(200))
    );
}

/// Sends `count` small uploads through the proxy one by one; the statuses
/// (0: no HTTP answer at all).
async fn small_uploads(client: &reqwest::Client, upstream: SocketAddr, count: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..count {
        let status = match client
            .post(format!("http://{upstream}/upload"))
            .body(vec![b'u'; UPLOAD_SIZE])
            .send()
            .await
        {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        };
        statuses.push(status);
    }
    statuses
}

const UPLOAD_SIZE: usize = 200;

/// Every exchange the upstream saw is in the capture; nothing else is; the
/// file holds whole records only.
fn assert_capture_tells_the_truth(capture_path: &Path, forwarded: usize) -> Capture {
    let bytes = std::fs::read(capture_path).unwrap();
    assert_eq!(bytes.last(), Some(&b'\n'), "a fragment is left at the end");
    let capture = Capture::read(capture_path).unwrap();
    assert!(capture.bad_lines.is_empty(), "{:?}", capture.bad_lines);
    assert!(!capture.truncated_tail);
    let uploads = capture
        .flows
        .iter()
        .filter(|f| f.request.method == "POST")
        .count();
    assert_eq!(uploads, forwarded, "exchanges in the capture vs forwarded");
    capture
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_that_cannot_be_written_stops_the_proxy_before_it_forwards_unrecorded() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream(None).await;
    let spec = ChildSpec {
        home: dir.path().join("home"),
        capture: dir.path().join("c.jsonl"),
        file_size_limit: Some(12 * 1024),
        ..ChildSpec::default()
    };
    let proxy = spawn_proxy(&spec).await;
    let client = proxy.client(&spec.home);
    let statuses = small_uploads(&client, upstream.addr, 40).await;
    let (summary, _) = proxy.finish().await;
    assert!(summary.capture_error.is_some(), "{summary:?}");

    let forwarded = (upstream.received.load(Ordering::SeqCst) / UPLOAD_SIZE as u64) as usize;
    assert!(forwarded > 0 && forwarded < 40, "forwarded {forwarded}");
    assert!(statuses.iter().filter(|s| **s == 200).count() <= forwarded);
    assert!(
        statuses.contains(&503) || statuses.contains(&0),
        "{statuses:?}"
    );
    assert_capture_tells_the_truth(&spec.capture, forwarded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_forwarding_unrecorded_forwards_and_counts_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream(None).await;
    let spec = ChildSpec {
        home: dir.path().join("home"),
        capture: dir.path().join("c.jsonl"),
        file_size_limit: Some(12 * 1024),
        keep_forwarding_unrecorded: true,
        ..ChildSpec::default()
    };
    let proxy = spawn_proxy(&spec).await;
    let client = proxy.client(&spec.home);
    let statuses = small_uploads(&client, upstream.addr, 40).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let (summary, _) = proxy.stop().await;
    assert!(summary.capture_error.is_some(), "{summary:?}");
    assert!(summary.flows_lost > 0, "{summary:?}");
    let capture = Capture::read(&spec.capture).unwrap();
    assert!(capture.bad_lines.is_empty(), "{:?}", capture.bad_lines);
    assert!(!capture.truncated_tail);
    assert_eq!(
        summary.flows_written,
        capture.flows.len() as u64 - capture.cut_off as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_every_started_upload_is_in_the_capture_cut_off() {
    const UPLOADS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let pki = upstream_pki(dir.path());
    let upstream = start_upstream(Some(Arc::clone(&pki.server_config))).await;
    let spec = ChildSpec {
        home: dir.path().join("home"),
        capture: dir.path().join("c.jsonl"),
        upstream_ca: Some(pki.ca_pem.clone()),
        ..ChildSpec::default()
    };
    let mut proxy = spawn_proxy(&spec).await;
    let client = proxy.client(&spec.home);
    let base = format!("https://localhost:{}", upstream.addr.port());
    let done = client.get(format!("{base}/json")).send().await.unwrap();
    assert_eq!(done.status(), 200);
    done.bytes().await.unwrap();

    // Uploads of 10 MiB that send 1 MiB, then another a second later, then stall.
    let chunk = random_mib();
    let mut senders = Vec::new();
    let mut uploads = Vec::new();
    for _ in 0..UPLOADS {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
        let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
        let request = client
            .patch(format!("{base}/upload"))
            .header("content-length", (10 * MIB).to_string())
            .body(body);
        uploads.push(tokio::spawn(request.send()));
        tx.send(Ok(chunk.clone())).await.unwrap();
        senders.push(tx);
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for tx in &senders {
        tx.send(Ok(chunk.clone())).await.unwrap();
    }
    let want = (UPLOADS * 2 * MIB) as u64;
    tokio::time::timeout(Duration::from_secs(20), async {
        while upstream.received.load(Ordering::SeqCst) < want {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the uploads should reach the upstream");
    // kill -9.
    proxy.child.start_kill().unwrap();
    proxy.child.wait().await.unwrap();
    drop(senders);

    let capture = Capture::read(&spec.capture).unwrap();
    assert!(capture.bad_lines.is_empty(), "{:?}", capture.bad_lines);
    assert_eq!(capture.cut_off, UPLOADS);
    assert_eq!(capture.flows.len(), UPLOADS + 1);
    assert_eq!(capture.flows[0].error, None);
    for flow in &capture.flows[1..] {
        assert_eq!(flow.request.method, "PATCH");
        assert_eq!(flow.request.url, format!("{base}/upload"));
        let error = flow.error.as_ref().unwrap();
        assert_eq!(error.stage, ErrorStage::ProxyStopped);
        assert!(
            error.message.starts_with("cut off: proxy stopped"),
            "{}",
            error.message
        );
        // The progress record written a second in holds at least the first MiB.
        assert!(
            flow.request.body.size >= MIB as u64,
            "{} bytes",
            flow.request.body.size
        );
        assert!(flow.request.body.is_cut_off());
    }
}

/// The chunks sent to `rx`, as a stream for `reqwest::Body::wrap_stream`.
fn tokio_stream_from(
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> impl hudsucker::futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    hudsucker::futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}
