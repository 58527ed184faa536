//! The proxy end to end: a real client, the proxy, a real TLS upstream.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::{MIB, random_mib, repeated_sha256, start_proxy, start_upstream, upstream_pki};
use regtap_capture::{Data, ErrorStage, LiveEvent};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const BIG_MIB: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_a_64_mib_upload_and_download_recording_their_hashes() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = upstream_pki(pki_dir.path());
    let upstream = start_upstream(Some(Arc::clone(&pki.server_config))).await;
    let mut harness = start_proxy(|c| c.upstream_ca.push(pki.ca_pem.clone())).await;
    let client = harness.client();
    let base = format!("https://localhost:{}", upstream.addr.port());
    let chunk = random_mib();
    let expected = repeated_sha256(&chunk, BIG_MIB);

    let chunks = std::iter::repeat_n(chunk.clone(), BIG_MIB).map(Ok::<Bytes, std::io::Error>);
    let upload = client
        .put(format!("{base}/upload"))
        .header("content-length", (BIG_MIB * MIB).to_string())
        .body(reqwest::Body::wrap_stream(
            hudsucker::futures::stream::iter(chunks),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 200);
    let echoed: serde_json::Value = serde_json::from_slice(&upload.bytes().await.unwrap()).unwrap();
    assert_eq!(
        echoed["sha256"],
        expected.as_str(),
        "upstream got other bytes"
    );

    let mut download = client
        .get(format!("{base}/download/{BIG_MIB}"))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let mut received = 0usize;
    while let Some(part) = download.chunk().await.unwrap() {
        received += part.len();
        sha2::Digest::update(&mut hasher, &part);
    }
    assert_eq!(received, BIG_MIB * MIB);
    assert_eq!(hex::encode(sha2::Digest::finalize(hasher)), expected);

    harness.finished(2).await;
    let (capture, _dir) = harness.stop().await;
    assert_eq!(capture.flows.len(), 2);

    let put = &capture.flows[0];
    assert_eq!(put.request.method, "PUT");
    assert_eq!(put.error, None);
    let sent = &put.request.body;
    assert_eq!(sent.size, (BIG_MIB * MIB) as u64);
    assert_eq!(sent.sha256.as_deref(), Some(expected.as_str()));
    assert!(sent.is_complete());
    assert!(
        sent.truncation().is_some(),
        "a 64 MiB body must not be inlined"
    );
    let prefix = sent.inline().and_then(Data::to_bytes).unwrap();
    assert_eq!(prefix, chunk[..4096]);

    let get = &capture.flows[1];
    let got = &get.response.as_ref().unwrap().body;
    assert_eq!(get.request.url, format!("{base}/download/{BIG_MIB}"));
    assert_eq!(got.size, (BIG_MIB * MIB) as u64);
    assert_eq!(got.sha256.as_deref(), Some(expected.as_str()));
    assert!(got.is_complete() && got.truncation().is_some());
    assert_eq!(get.error, None);
}

#[tokio::test]
async fn small_json_is_inlined_with_headers_addresses_and_times() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = upstream_pki(pki_dir.path());
    let upstream = start_upstream(Some(Arc::clone(&pki.server_config))).await;
    let mut harness = start_proxy(|c| c.upstream_ca.push(pki.ca_pem.clone())).await;
    let url = format!("https://localhost:{}/v2/_catalog?n=1", upstream.addr.port());
    let response = harness
        .client()
        .get(&url)
        .header("authorization", "Bearer t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"repositories":["library/alpine"]}"#
    );

    let started = loop {
        match harness.live.recv().await.unwrap() {
            LiveEvent::Started { id, url: seen, .. } => break (id, seen),
            _ => continue,
        }
    };
    assert_eq!(started.1, url);
    let finished = harness.finished(1).await;
    assert_eq!(finished[0].id, started.0);

    let capture_mode = std::fs::metadata(&harness.capture).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&capture_mode) & 0o777,
        0o600
    );
    let (capture, _dir) = harness.stop().await;
    let flow = &capture.flows[0];
    assert_eq!(flow.scheme, "https");
    assert_eq!(flow.request.url, url);
    assert_eq!(
        flow.connect_authority.as_deref(),
        Some(format!("localhost:{}", upstream.addr.port()).as_str())
    );
    assert!(
        flow.client_addr
            .as_deref()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(flow.server_addr, Some(upstream.addr.to_string()));
    assert_eq!(
        flow.request.headers.get("authorization"),
        Some("Bearer t0ken")
    );
    let response = flow.response.as_ref().unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        response.headers.get("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    assert_eq!(
        response.body.full_bytes().unwrap(),
        br#"{"repositories":["library/alpine"]}"#
    );
    assert!(response.body.truncation().is_none() && response.body.is_complete());
    let t = &flow.timing;
    let head = t.response_head.unwrap();
    assert!(t.request_start <= t.request_end.unwrap());
    assert!(t.request_end.unwrap() <= t.response_end.unwrap());
    assert!(t.request_start <= head && head <= t.response_end.unwrap());
    assert_eq!(capture.header.settings.max_inline, Some(1024 * 1024));
}

#[tokio::test]
async fn untrusted_upstream_gets_a_502_with_a_reason_and_an_error_flow() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = upstream_pki(pki_dir.path());
    let upstream = start_upstream(Some(Arc::clone(&pki.server_config))).await;
    let mut harness = start_proxy(|_| {}).await;
    let response = harness
        .client()
        .get(format!("https://localhost:{}/v2/", upstream.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let reason = response.text().await.unwrap();
    assert_eq!(reason.lines().count(), 1, "{reason}");
    assert!(reason.contains("UnknownIssuer"), "{reason}");

    harness.finished(1).await;
    let (capture, _dir) = harness.stop().await;
    let flow = &capture.flows[0];
    assert_eq!(flow.response, None);
    let error = flow.error.as_ref().unwrap();
    assert_eq!(error.stage, ErrorStage::Connect);
    assert!(error.message.contains("UnknownIssuer"), "{}", error.message);
    assert!(
        error
            .message
            .contains(&format!("localhost:{}", upstream.addr.port()))
    );
}

#[tokio::test]
async fn refused_connection_is_an_error_flow() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut harness = start_proxy(|_| {}).await;
    let response = harness
        .client()
        .put(format!("http://127.0.0.1:{closed_port}/upload"))
        .body("some bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    harness.finished(1).await;
    let (capture, _dir) = harness.stop().await;
    let error = capture.flows[0].error.as_ref().unwrap();
    assert_eq!(error.stage, ErrorStage::Connect);
    assert!(error.message.contains("refused"), "{}", error.message);
}

#[tokio::test]
async fn client_hanging_up_mid_upload_is_recorded_with_the_bytes_seen() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = upstream_pki(pki_dir.path());
    let upstream = start_upstream(Some(Arc::clone(&pki.server_config))).await;
    let mut harness = start_proxy(|c| c.upstream_ca.push(pki.ca_pem.clone())).await;
    let chunk = random_mib();
    let stream = start_tunnelled_upload(&harness, &upstream, &chunk).await;
    drop(stream);

    let flow = harness.finished(1).await.remove(0);
    assert_eq!(flow.request.method, "PATCH");
    let body = &flow.request.body;
    assert!(body.is_cut_off());
    assert_eq!(body.size, MIB as u64);
    assert_eq!(
        body.sha256.as_deref(),
        Some(repeated_sha256(&chunk, 1).as_str())
    );
    let error = flow.error.as_ref().unwrap();
    assert_eq!(error.stage, ErrorStage::Request, "{}", error.message);
    assert!(
        error.message.contains(&MIB.to_string()),
        "{}",
        error.message
    );
    let (capture, _dir) = harness.stop().await;
    assert_eq!(capture.flows, vec![flow]);
}

#[tokio::test]
async fn plain_http_upstreams_are_proxied_and_recorded() {
    let upstream = start_upstream(None).await;
    let mut harness = start_proxy(|_| {}).await;
    let url = format!("http://127.0.0.1:{}/upload", upstream.addr.port());
    let response = harness
        .client()
        .post(&url)
        .body("{\"hello\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    harness.finished(1).await;
    let (capture, _dir) = harness.stop().await;
    let flow = &capture.flows[0];
    assert_eq!(flow.scheme, "http");
    assert_eq!(flow.request.url, url);
    assert_eq!(flow.connect_authority, None);
    assert_eq!(flow.request.body.full_bytes().unwrap(), b"{\"hello\":1}");
    let answer = flow.response.as_ref().unwrap().body.full_bytes().unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["size"], 11);
}

#[tokio::test]
async fn resolve_sends_a_name_to_loopback_keeping_the_name_for_tls() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = upstream_pki(pki_dir.path());
    let upstream = start_upstream(Some(Arc::clone(&pki.server_config))).await;
    let port = upstream.addr.port();
    let mut harness = start_proxy(|c| {
        c.upstream_ca.push(pki.ca_pem.clone());
        c.resolve
            .push(format!("registry.test:{port}=127.0.0.1").parse().unwrap());
    })
    .await;
    let url = format!("https://registry.test:{port}/v2/");
    let response = harness.client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    harness.finished(1).await;
    let (capture, _dir) = harness.stop().await;
    let flow = &capture.flows[0];
    assert_eq!(flow.request.url, url);
    assert_eq!(flow.server_addr, Some(upstream.addr.to_string()));
    assert_eq!(
        capture.header.settings.resolve,
        Some(vec![format!("registry.test:{port}=127.0.0.1:{port}")])
    );
}

#[tokio::test]
async fn upstream_insecure_accepts_any_certificate_and_says_so_in_the_capture() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = upstream_pki(pki_dir.path());
    let upstream = start_upstream(Some(Arc::clone(&pki.server_config))).await;
    let mut harness = start_proxy(|c| c.upstream_insecure = true).await;
    let response = harness
        .client()
        .get(format!("https://localhost:{}/v2/", upstream.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    harness.finished(1).await;
    let (capture, _dir) = harness.stop().await;
    assert_eq!(capture.header.settings.upstream_insecure, Some(true));
    assert_eq!(capture.flows[0].error, None);
}

#[tokio::test]
async fn store_bodies_keeps_complete_bodies_under_their_hash() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = upstream_pki(pki_dir.path());
    let upstream = start_upstream(Some(Arc::clone(&pki.server_config))).await;
    let store = pki_dir.path().join("bodies");
    let mut harness = start_proxy(|c| {
        c.upstream_ca.push(pki.ca_pem.clone());
        c.store_bodies = Some(store.clone());
        c.max_inline = 1024;
    })
    .await;
    let chunk = random_mib();
    let response = harness
        .client()
        .put(format!("https://localhost:{}/upload", upstream.addr.port()))
        .body(chunk.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    harness.finished(1).await;
    let (capture, _dir) = harness.stop().await;
    let body = &capture.flows[0].request.body;
    assert_eq!(
        body.inline().and_then(Data::to_bytes).unwrap(),
        chunk[..1024]
    );
    let stored = body.stored().unwrap();
    assert_eq!(stored, &format!("sha256/{}", repeated_sha256(&chunk, 1)));
    assert_eq!(std::fs::read(store.join(stored)).unwrap(), chunk);
}

#[tokio::test]
async fn ip_literal_hosts_get_an_ip_certificate_and_h2_is_negotiated() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = upstream_pki(pki_dir.path());
    let upstream = start_upstream(Some(Arc::clone(&pki.server_config))).await;
    let mut harness = start_proxy(|c| c.upstream_ca.push(pki.ca_pem.clone())).await;
    let mut tls = harness.client_tls();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .proxy(reqwest::Proxy::all(format!("http://{}", harness.proxy.local_addr())).unwrap())
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{}/v2/", upstream.addr.port());
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    harness.finished(1).await;
    let (capture, _dir) = harness.stop().await;
    let flow = &capture.flows[0];
    assert_eq!(flow.request.url, url);
    assert_eq!(flow.request.http_version, "HTTP/2");
    let response = flow.response.as_ref().unwrap();
    assert_eq!(response.status, 200);
    // Upstream connections speak HTTP/1.1, as dockerd does.
    assert_eq!(response.http_version, "HTTP/1.1");
}

/// Sends, through a CONNECT tunnel, the head of a 10 MiB PATCH and its first
/// MiB (`chunk`), and returns once the upstream has received that MiB; the
/// connection is left open.
async fn start_tunnelled_upload(
    harness: &common::Harness,
    upstream: &common::Upstream,
    chunk: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let authority = format!("localhost:{}", upstream.addr.port());

    let mut tcp = tokio::net::TcpStream::connect(harness.proxy.local_addr())
        .await
        .unwrap();
    tcp.write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let tls = tokio_rustls::TlsConnector::from(Arc::new(harness.client_tls()));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = tls.connect(name, tcp).await.unwrap();
    let request = format!(
        "PATCH /upload HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\n\r\n",
        10 * MIB
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(chunk).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while upstream.received.load(Ordering::SeqCst) < MIB as u64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the first MiB should reach the upstream");
    stream
}

#[tokio::test]
async fn stopping_the_proxy_records_exchanges_in_flight() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = upstream_pki(pki_dir.path());
    let upstream = start_upstream(Some(Arc::clone(&pki.server_config))).await;
    let harness = start_proxy(|c| c.upstream_ca.push(pki.ca_pem.clone())).await;
    let chunk = random_mib();
    let _open = start_tunnelled_upload(&harness, &upstream, &chunk).await;

    let (capture, _dir) = harness.stop().await;
    assert_eq!(capture.flows.len(), 1);
    let flow = &capture.flows[0];
    assert_eq!(flow.request.body.size, MIB as u64);
    assert!(flow.request.body.is_cut_off());
    let error = flow.error.as_ref().unwrap();
    assert_eq!(error.stage, ErrorStage::Request);
    assert!(error.message.contains("proxy stopped"), "{}", error.message);
}
