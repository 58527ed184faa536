//! Test fixtures: a TLS (or plain) upstream server with its own CA, a proxy
//! with its own regtap CA, and a client that goes through the proxy.

#![allow(dead_code)] // each test file uses a different part of the fixtures

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use regtap_capture::{Flow, LiveEvent};
use regtap_proxy::{Ca, CaOptions, ProxyConfig, ProxyHandle};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sha2::Digest as _;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::broadcast;

pub const MIB: usize = 1024 * 1024;

/// 1 MiB of pseudo-random bytes (so that nothing compresses or repeats in a
/// way a bug could hide behind), reused for large bodies.
pub fn random_mib() -> Bytes {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(MIB);
    while out.len() < MIB {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    Bytes::from(out)
}

/// SHA-256 (hex) of `chunk` repeated `times`.
pub fn repeated_sha256(chunk: &[u8], times: usize) -> String {
    let mut hasher = sha2::Sha256::new();
    for _ in 0..times {
        hasher.update(chunk);
    }
    hex::encode(hasher.finalize())
}

/// A private PKI for the upstream server: a CA (written to `ca.pem`) and a
/// leaf for `localhost`, `registry.test` and 127.0.0.1.
pub struct UpstreamPki {
    pub ca_pem: PathBuf,
    pub server_config: Arc<ServerConfig>,
}

pub fn upstream_pki(dir: &Path) -> UpstreamPki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "upstream test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_pem = dir.join("upstream-ca.pem");
    std::fs::write(&ca_pem, ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_owned(), "registry.test".to_owned()]).unwrap();
    leaf_params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let mut config = ServerConfig::builder_with_provider(regtap_proxy::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    UpstreamPki {
        ca_pem,
        server_config: Arc::new(config),
    }
}

/// A test server: `PUT|POST /upload` answers `{"size":N,"sha256":"…"}` for the
/// body it read; `GET /download/<MiB>` streams that many MiB of
/// [`random_mib`]; `GET /json` answers a small JSON document.
pub struct Upstream {
    pub addr: SocketAddr,
    /// Upload bytes received so far, over all requests.
    pub received: Arc<AtomicU64>,
}

pub async fn start_upstream(tls: Option<Arc<ServerConfig>>) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&received);
    let chunk = random_mib();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let tls = tls.clone();
            let counter = Arc::clone(&counter);
            let chunk = chunk.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    serve(req, Arc::clone(&counter), chunk.clone())
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match tls {
                    Some(config) => {
                        let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                        else {
                            return;
                        };
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                    }
                }
            });
        }
    });
    Upstream { addr, received }
}

async fn serve(
    req: Request<Incoming>,
    received: Arc<AtomicU64>,
    chunk: Bytes,
) -> Result<Response<BoxedBody>, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/upload" {
        let mut body = req.into_body();
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                hasher.update(data);
                size += data.len() as u64;
                received.fetch_add(data.len() as u64, Ordering::SeqCst);
            }
        }
        let json = format!(
            "{{\"size\":{size},\"sha256\":\"{}\"}}",
            hex::encode(hasher.finalize())
        );
        return Ok(json_response(json));
    }
    if let Some(mib) = path.strip_prefix("/download/") {
        let mib: u64 = mib.parse().unwrap_or(0);
        let body = RepeatBody {
            chunk,
            remaining: mib,
        };
        return Ok(Response::builder()
            .header("content-type", "application/octet-stream")
            .header("content-length", (mib * MIB as u64).to_string())
            .body(body.boxed())
            .unwrap());
    }
    Ok(json_response(
        r#"{"repositories":["library/alpine"]}"#.to_owned(),
    ))
}

type BoxedBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn json_response(json: String) -> Response<BoxedBody> {
    Response::builder()
        .header("content-type", "application/json")
        .header("docker-distribution-api-version", "registry/2.0")
        .body(http_body_util::Full::new(Bytes::from(json)).boxed())
        .unwrap()
}

/// `chunk`, `remaining` more times.
struct RepeatBody {
    chunk: Bytes,
    remaining: u64,
}

impl HttpBody for RepeatBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        self.remaining -= 1;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining * self.chunk.len() as u64)
    }
}

/// A running proxy with its own regtap CA, in a temporary directory.
pub struct Harness {
    pub proxy: ProxyHandle,
    pub ca: Ca,
    pub dir: TempDir,
    pub capture: PathBuf,
    pub live: broadcast::Receiver<LiveEvent>,
}

pub async fn start_proxy(configure: impl FnOnce(&mut ProxyConfig)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::init(&dir.path().join("home"), &CaOptions::default()).unwrap();
    let capture = dir.path().join("capture.jsonl");
    let mut config = ProxyConfig::new("127.0.0.1:0".parse().unwrap(), capture.clone());
    configure(&mut config);
    let proxy = regtap_proxy::start(config, &ca).await.unwrap();
    let live = proxy.subscribe();
    Harness {
        proxy,
        ca,
        dir,
        capture,
        live,
    }
}

impl Harness {
    /// A client configuration that trusts only regtap's CA.
    pub fn client_tls(&self) -> ClientConfig {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.ca.cert_der().to_vec()))
            .unwrap();
        ClientConfig::builder_with_provider(regtap_proxy::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth()
    }

    /// An HTTP client that sends everything through the proxy.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .use_preconfigured_tls(self.client_tls())
            .proxy(reqwest::Proxy::all(format!("http://{}", self.proxy.local_addr())).unwrap())
            .build()
            .unwrap()
    }

    /// Waits for the next `n` finished flows, in the order they finished.
    pub async fn finished(&mut self, n: usize) -> Vec<Flow> {
        let mut flows = Vec::new();
        while flows.len() < n {
            let event = tokio::time::timeout(Duration::from_secs(30), self.live.recv())
                .await
                .expect("a flow should finish within 30 s")
                .expect("live feed");
            if let LiveEvent::Finished(flow) = event {
                flows.push(*flow);
            }
        }
        flows
    }

    /// Stops the proxy and reads the capture file back.
    pub async fn stop(self) -> (regtap_capture::Capture, TempDir) {
        let capture_path = self.capture.clone();
        self.proxy.shutdown().await.unwrap();
        (
            regtap_capture::Capture::read(&capture_path).unwrap(),
            self.dir,
        )
    }
}
