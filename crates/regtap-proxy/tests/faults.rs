//! The proxy under faults, over real loopback sockets: clients that never send
//! a request, upstreams that never answer or break mid-body, clients that do
//! not trust regtap's CA or speak something else in a tunnel, and more
//! connections than allowed. Every failure must reach the capture with its stage.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{start_proxy, start_upstream, upstream_pki};
use regtap_capture::{ErrorStage, Flow};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

fn short(configure: impl FnOnce(&mut regtap_proxy::Timeouts)) -> regtap_proxy::Timeouts {
    let mut timeouts = regtap_proxy::Timeouts {
        request_head: Duration::from_secs(10),
        idle: Duration::from_secs(10),
        connect: Duration::from_secs(10),
        response: Duration::from_secs(10),
        body: Duration::from_secs(10),
    };
    configure(&mut timeouts);
    timeouts
}

/// Reads until the peer closes the connection (or fails it); what was read.
async fn read_to_close(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the proxy should close the connection");
    out
}

fn with_stage(flows: &[Flow], stage: ErrorStage) -> Vec<&Flow> {
    flows
        .iter()
        .filter(|f| f.error.as_ref().is_some_and(|e| e.stage == stage))
        .collect()
}

/// An upstream that accepts connections and runs `serve` on each.
async fn raw_upstream<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(tcp));
        }
    });
    addr
}

/// Reads a request head from `tcp`.
async fn read_head(tcp: &mut TcpStream) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        match tcp.read_u8().await {
            Ok(b) => head.push(b),
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_clients_are_shed_by_the_request_head_timeout_and_recorded() {
    const SILENT: usize = 200;
    let harness = start_proxy(|c| {
        c.timeouts = short(|t| t.request_head = Duration::from_millis(800));
    })
    .await;
    let addr = harness.proxy.local_addr();
    let mut silent = Vec::new();
    for _ in 0..SILENT {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // A slow client: one byte of a request head every 200 ms, never finishing.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let slow_addr = slow.local_addr().unwrap().to_string();
    let dripping = tokio::spawn(async move {
        for byte in b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n"
            .iter()
            .cycle()
        {
            if slow.write_all(&[*byte]).await.is_err() {
                return slow;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        unreachable!()
    });
    for stream in &mut silent {
        read_to_close(stream).await;
    }
    let mut slow = tokio::time::timeout(Duration::from_secs(10), dripping)
        .await
        .expect("the slow client should be cut off")
        .unwrap();
    read_to_close(&mut slow).await;

    let (capture, _dir) = harness.stop().await;
    let timed_out = with_stage(&capture.flows, ErrorStage::RequestHeadTimeout);
    assert_eq!(timed_out.len(), SILENT + 1, "{:#?}", capture.flows.first());
    assert!(timed_out.iter().all(|f| f.client_addr.is_some()));
    assert!(
        timed_out
            .iter()
            .all(|f| f.request.url == format!("http://{addr}") && f.request.method.is_empty())
    );
    assert!(
        timed_out
            .iter()
            .any(|f| f.client_addr.as_deref() == Some(slow_addr.as_str()))
    );
    assert!(
        timed_out[0]
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("request head"),
        "{:?}",
        timed_out[0].error
    );
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_and_recorded() {
    let upstream = start_upstream(None).await;
    let harness = start_proxy(|c| {
        c.timeouts = short(|t| t.idle = Duration::from_millis(500));
    })
    .await;
    let mut tcp = TcpStream::connect(harness.proxy.local_addr())
        .await
        .unwrap();
    let url = format!("http://{}/json", upstream.addr);
    tcp.write_all(format!("GET {url} HTTP/1.1\r\nHost: {}\r\n\r\n", upstream.addr).as_bytes())
        .await
        .unwrap();
    let answer = read_to_close(&mut tcp).await;
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");

    let (capture, _dir) = harness.stop().await;
    assert_eq!(capture.flows.len(), 2, "{:#?}", capture.flows);
    assert_eq!(capture.flows[0].request.url, url);
    assert_eq!(capture.flows[0].error, None);
    let idle = capture.flows[1].error.as_ref().unwrap();
    assert_eq!(idle.stage, ErrorStage::IdleTimeout, "{}", idle.message);
}

#[tokio::test]
async fn an_upstream_that_never_answers_gets_a_504_and_a_response_timeout() {
    let upstream = raw_upstream(|mut tcp| async move {
        read_head(&mut tcp).await;
        // Hold the connection without a word.
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let mut harness = start_proxy(|c| {
        c.timeouts = short(|t| t.response = Duration::from_millis(500));
    })
    .await;
    let response = harness
        .client()
        .get(format!("http://{upstream}/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("--response-timeout")
    );
    let flow = harness.finished(1).await.remove(0);
    let error = flow.error.unwrap();
    assert_eq!(
        error.stage,
        ErrorStage::ResponseTimeout,
        "{}",
        error.message
    );
    assert!(flow.response.is_none());
}

#[tokio::test]
async fn an_upstream_stuck_in_the_tls_handshake_is_a_connect_timeout() {
    // Accepts TCP, never says a TLS word.
    let upstream = raw_upstream(|tcp| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(tcp);
    })
    .await;
    let mut harness = start_proxy(|c| {
        c.timeouts = short(|t| t.connect = Duration::from_millis(500));
    })
    .await;
    let response = harness
        .client()
        .get(format!("https://localhost:{}/v2/", upstream.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let flow = harness.finished(1).await.remove(0);
    let error = flow.error.unwrap();
    assert_eq!(error.stage, ErrorStage::ConnectTimeout, "{}", error.message);
    assert!(
        error.message.contains("--connect-timeout"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_response_body_that_stalls_is_cut_by_the_body_timeout() {
    let upstream = raw_upstream(|mut tcp| async move {
        read_head(&mut tcp).await;
        let _ = tcp
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
            .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let mut harness = start_proxy(|c| {
        c.timeouts = short(|t| t.body = Duration::from_millis(500));
    })
    .await;
    let response = harness
        .client()
        .get(format!("http://{upstream}/v2/blob"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.bytes().await.is_err(),
        "the body must not look whole"
    );
    let flow = harness.finished(1).await.remove(0);
    let error = flow.error.as_ref().unwrap();
    assert_eq!(error.stage, ErrorStage::BodyTimeout, "{}", error.message);
    let body = &flow.response.as_ref().unwrap().body;
    assert_eq!(body.size, 10);
    assert!(body.is_cut_off());
}

#[tokio::test]
async fn an_upstream_reset_mid_body_is_recorded_with_the_bytes_seen() {
    let upstream = raw_upstream(|mut tcp| async move {
        read_head(&mut tcp).await;
        let _ = tcp
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            .await;
        let _ = tcp.write_all(&[b'x'; 4000]).await;
        let _ = tcp.flush().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // RST rather than FIN.
        #[allow(deprecated)] // blocking on drop is what a reset needs here
        let _ = tcp.set_linger(Some(Duration::ZERO));
        drop(tcp);
    })
    .await;
    let mut harness = start_proxy(|_| {}).await;
    let response = harness
        .client()
        .get(format!("http://{upstream}/v2/blob"))
        .send()
        .await
        .unwrap();
    assert!(response.bytes().await.is_err());
    let flow = harness.finished(1).await.remove(0);
    let error = flow.error.as_ref().unwrap();
    assert_eq!(error.stage, ErrorStage::Response, "{}", error.message);
    let body = &flow.response.as_ref().unwrap().body;
    assert_eq!(body.size, 4000);
    assert!(body.is_cut_off());
}

/// CONNECT `authority` through the proxy; returns the tunnel once it is open.
async fn connect(proxy: SocketAddr, authority: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(proxy).await.unwrap();
    tcp.write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
    tcp
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_leaves_a_flow_that_says_how_to_fix_it() {
    let pki_dir = tempfile::tempdir().unwrap();
    // The client trusts only an unrelated CA.
    let unrelated = upstream_pki(pki_dir.path());
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read_to_string(&unrelated.ca_pem).unwrap();
    for cert in rustls_pemfile_certs(&pem) {
        roots.add(cert).unwrap();
    }
    let client_tls = rustls::ClientConfig::builder_with_provider(regtap_proxy::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut harness = start_proxy(|_| {}).await;
    let tcp = connect(harness.proxy.local_addr(), "registry.test:443").await;
    let client_addr = tcp.local_addr().unwrap().to_string();
    let name = rustls::pki_types::ServerName::try_from("registry.test").unwrap();
    let handshake = tokio_rustls::TlsConnector::from(Arc::new(client_tls))
        .connect(name, tcp)
        .await;
    assert!(handshake.is_err());

    let flow = harness.finished(1).await.remove(0);
    assert_eq!(flow.request.method, "CONNECT");
    assert_eq!(flow.request.url, "https://registry.test");
    assert_eq!(flow.connect_authority.as_deref(), Some("registry.test:443"));
    assert_eq!(flow.client_addr.as_deref(), Some(client_addr.as_str()));
    let error = flow.error.unwrap();
    assert_eq!(error.stage, ErrorStage::ClientTls);
    assert!(
        error
            .message
            .contains("the client does not trust regtap's CA"),
        "{}",
        error.message
    );
    let ca_path = harness.ca.cert_path().display().to_string();
    assert!(error.message.contains(&ca_path), "{}", error.message);
}

fn rustls_pemfile_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn plain_http_inside_a_tunnel_is_proxied_with_resolve_and_recorded() {
    let upstream = start_upstream(None).await;
    let mut harness = start_proxy(|c| {
        c.resolve.push(
            format!("registry.test:5000={}", upstream.addr)
                .parse()
                .unwrap(),
        );
    })
    .await;
    let mut tunnel = connect(harness.proxy.local_addr(), "registry.test:5000").await;
    tunnel
        .write_all(b"GET /json HTTP/1.1\r\nHost: registry.test:5000\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut tunnel).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("library/alpine"), "{answer}");

    let flow = harness.finished(1).await.remove(0);
    assert_eq!(flow.request.url, "http://registry.test:5000/json");
    assert_eq!(
        flow.connect_authority.as_deref(),
        Some("registry.test:5000")
    );
    assert_eq!(flow.server_addr, Some(upstream.addr.to_string()));
    assert_eq!(flow.status(), Some(200));
}

#[tokio::test]
async fn a_connect_inside_a_tunnel_is_refused_without_breaking_the_proxy() {
    let upstream = start_upstream(None).await;
    let mut harness = start_proxy(|c| {
        c.resolve.push(
            format!("registry.test:5000={}", upstream.addr)
                .parse()
                .unwrap(),
        );
    })
    .await;
    let tcp = connect(harness.proxy.local_addr(), "registry.test:443").await;
    let name = rustls::pki_types::ServerName::try_from("registry.test").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(harness.client_tls()))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(b"CONNECT elsewhere.test:443 HTTP/1.1\r\nHost: elsewhere.test:443\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    tls.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 405");
    let flow = harness.finished(1).await.remove(0);
    let error = flow.error.unwrap();
    assert_eq!(error.stage, ErrorStage::ClientProtocol);
    assert!(
        error.message.contains("elsewhere.test:443"),
        "{}",
        error.message
    );

    // The proxy still serves.
    let response = harness
        .client()
        .get(format!("http://{}/json", upstream.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn connections_beyond_the_limit_get_a_503_and_are_counted_and_recorded() {
    let harness = start_proxy(|c| c.max_connections = 2).await;
    let addr = harness.proxy.local_addr();
    let _held = [
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    // The accept loop takes connections in order; let it take the two first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    let answer = read_to_close(&mut third).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("--max-connections"), "{answer}");

    let capture_path = harness.capture.clone();
    let summary = harness.proxy.shutdown().await.unwrap();
    assert_eq!(summary.refused_connections, 1);
    let capture = regtap_capture::Capture::read(&capture_path).unwrap();
    assert_eq!(
        with_stage(&capture.flows, ErrorStage::ConnectionLimit).len(),
        1
    );
}

#[tokio::test]
async fn max_inline_beyond_its_cap_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = regtap_proxy::Ca::init(&dir.path().join("home"), &Default::default()).unwrap();
    let mut config =
        regtap_proxy::ProxyConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("c.jsonl"));
    config.max_inline = regtap_proxy::MAX_INLINE_LIMIT + 1;
    let Err(err) = regtap_proxy::start(config, &ca).await else {
        panic!("a 64 MiB + 1 --max-inline must be refused");
    };
    assert!(err.to_string().contains("--max-inline"), "{err}");
    assert!(!dir.path().join("c.jsonl").exists());
}

#[tokio::test]
async fn an_existing_capture_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let ca = regtap_proxy::Ca::init(&dir.path().join("home"), &Default::default()).unwrap();
    let path = dir.path().join("c.jsonl");
    std::fs::write(&path, "yesterday's evidence\n").unwrap();
    let config = regtap_proxy::ProxyConfig::new("127.0.0.1:0".parse().unwrap(), path.clone());
    let Err(err) = regtap_proxy::start(config, &ca).await else {
        panic!("an existing capture must be refused");
    };
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "yesterday's evidence\n"
    );
}
