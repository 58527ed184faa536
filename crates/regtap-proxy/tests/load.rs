//! Parallel large uploads and many small requests at once: every exchange made
//! must be in the capture, whole. (The full-size figures, with memory and CPU,
//! come from `bench/proxy-faults.sh`.)

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use common::{MIB, random_mib, repeated_sha256, start_proxy, start_upstream, upstream_pki};

const UPLOADS: usize = 6;
const UPLOAD_MIB: usize = 8;
const SMALL: usize = 400;
const SMALL_IN_PARALLEL: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exchange_of_a_mixed_load_is_in_the_capture() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = upstream_pki(pki_dir.path());
    let upstream = start_upstream(Some(Arc::clone(&pki.server_config))).await;
    let harness = start_proxy(|c| c.upstream_ca.push(pki.ca_pem.clone())).await;
    let client = harness.client();
    let base = format!("https://localhost:{}", upstream.addr.port());
    let chunk = random_mib();

    let mut uploads = Vec::new();
    for _ in 0..UPLOADS {
        let chunks =
            std::iter::repeat_n(chunk.clone(), UPLOAD_MIB).map(Ok::<Bytes, std::io::Error>);
        let request = client
            .put(format!("{base}/upload"))
            .header("content-length", (UPLOAD_MIB * MIB).to_string())
            .body(reqwest::Body::wrap_stream(
                hudsucker::futures::stream::iter(chunks),
            ));
        uploads.push(tokio::spawn(async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
        }));
    }
    let small = Arc::new(tokio::sync::Semaphore::new(SMALL_IN_PARALLEL));
    let mut requests = Vec::new();
    for i in 0..SMALL {
        let client = client.clone();
        let url = format!("{base}/json?n={i}");
        let small = Arc::clone(&small);
        requests.push(tokio::spawn(async move {
            let _turn = small.acquire().await.unwrap();
            let response = client.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
        }));
    }
    for task in uploads.into_iter().chain(requests) {
        task.await.unwrap();
    }

    let (capture, _dir) = harness.stop().await;
    assert!(capture.bad_lines.is_empty(), "{:?}", capture.bad_lines);
    assert_eq!(capture.cut_off, 0);
    assert_eq!(capture.flows.len(), UPLOADS + SMALL);
    let ids: HashSet<u64> = capture.flows.iter().map(|f| f.id).collect();
    assert_eq!(ids.len(), capture.flows.len(), "ids must be unique");
    let expected = repeated_sha256(&chunk, UPLOAD_MIB);
    let mut small_urls = HashSet::new();
    for flow in &capture.flows {
        assert_eq!(
            flow.error, None,
            "{} {}",
            flow.request.method, flow.request.url
        );
        match flow.request.method.as_str() {
            "PUT" => {
                assert_eq!(flow.request.body.sha256.as_deref(), Some(expected.as_str()));
                assert_eq!(flow.request.body.size, (UPLOAD_MIB * MIB) as u64);
            }
            _ => {
                assert!(small_urls.insert(flow.request.url.clone()));
                assert!(flow.response.as_ref().unwrap().body.full_bytes().is_some());
            }
        }
    }
    assert_eq!(small_urls.len(), SMALL);
}
