//! regtap's recording proxy: a MITM HTTP(S) proxy (hudsucker) that streams
//! every exchange through unchanged and records it as a [`Flow`] in a capture
//! file, plus the certificate authority it signs its per-host certificates with.
//!
//! The proxy knows HTTP, not registries: it records what passed, the decoder
//! makes sense of it.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use regtap_proxy::{Ca, ProxyConfig};
//! let ca = Ca::load_or_init(&regtap_proxy::data_dir_from_env()?)?.0;
//! let config = ProxyConfig::new("127.0.0.1:8080".parse()?, "capture.jsonl".into());
//! let proxy = regtap_proxy::start(config, &ca).await?;
//! let mut live = proxy.subscribe();
//! while let Ok(event) = live.recv().await {
//!     println!("{event:?}");
//! #   break;
//! }
//! proxy.shutdown().await?;
//! # Ok(()) }
//! ```

mod body;
mod ca;
mod handler;
mod recorder;
mod tap;
mod upstream;
mod writer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use regtap_capture::{CaptureError, CaptureHeader, CaptureWriter, Flow, human_bytes, now_ns};
use rustls::crypto::CryptoProvider;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot};

pub use ca::{
    CA_CERT_FILE, CA_KEY_FILE, CA_VALIDITY_DAYS, Ca, CaError, CaInfo, CaOptions, LeafAuthority,
    data_dir_from_env, fingerprint,
};
pub use regtap_capture::LiveEvent;
pub use upstream::ResolveRule;

use recorder::Shared;
use writer::{Record, WriterReport};

/// `--max-inline`'s default: bodies up to 1 MiB (tokens, manifests, error
/// JSON) are kept whole in the capture.
pub const DEFAULT_MAX_INLINE: usize = 1024 * 1024;

/// How long a shutdown waits for open connections to finish before it cuts them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How many live events a subscriber may fall behind before it misses some.
const LIVE_CAPACITY: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("--upstream-ca {path}: {reason}")]
    UpstreamCa { path: PathBuf, reason: String },
    #[error("body store {path}: {source}")]
    BodyStore {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error("cannot start the capture writer: {0}")]
    Writer(std::io::Error),
    #[error("the capture writer stopped unexpectedly")]
    WriterPanicked,
}

/// How to run the proxy.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Port 0 picks a free port; see [`ProxyHandle::local_addr`].
    pub listen: SocketAddr,
    /// Created (or truncated) with mode 0600.
    pub capture: PathBuf,
    /// PEM files with certificates to trust besides the webpki roots.
    pub upstream_ca: Vec<PathBuf>,
    /// Accept any upstream certificate. Recorded in the capture header.
    pub upstream_insecure: bool,
    pub resolve: Vec<ResolveRule>,
    /// Bodies up to this many bytes are kept whole in the capture; larger ones
    /// keep their size, SHA-256 and first bytes.
    pub max_inline: usize,
    /// Content-addressed store every complete body is written to as it streams.
    pub store_bodies: Option<PathBuf>,
}

impl ProxyConfig {
    pub fn new(listen: SocketAddr, capture: PathBuf) -> Self {
        ProxyConfig {
            listen,
            capture,
            upstream_ca: Vec::new(),
            upstream_insecure: false,
            resolve: Vec::new(),
            max_inline: DEFAULT_MAX_INLINE,
            store_bodies: None,
        }
    }

    fn header_settings(
        &self,
        listen: SocketAddr,
        ca: &Ca,
    ) -> serde_json::Map<String, serde_json::Value> {
        let path = |p: &Path| serde_json::Value::from(p.display().to_string());
        let mut settings = serde_json::Map::new();
        settings.insert("listen".into(), listen.to_string().into());
        settings.insert("upstream_insecure".into(), self.upstream_insecure.into());
        settings.insert(
            "upstream_ca".into(),
            self.upstream_ca.iter().map(|p| path(p)).collect(),
        );
        settings.insert(
            "resolve".into(),
            self.resolve.iter().map(|r| r.to_string()).collect(),
        );
        settings.insert("max_inline".into(), self.max_inline.into());
        settings.insert(
            "store_bodies".into(),
            self.store_bodies
                .as_deref()
                .map_or(serde_json::Value::Null, path),
        );
        settings.insert(
            "ca_sha256_fingerprint".into(),
            fingerprint(ca.cert_der()).into(),
        );
        settings
    }
}

/// The rustls crypto provider regtap uses everywhere (aws-lc-rs), installed as
/// the process default so that code building rustls configurations without
/// naming a provider gets the same one.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// Starts the proxy: binds `config.listen`, creates the capture file and
/// serves until [`ProxyHandle::shutdown`]. Must run inside a Tokio runtime.
pub async fn start(config: ProxyConfig, ca: &Ca) -> Result<ProxyHandle, ProxyError> {
    let provider = crypto_provider();
    let authority = ca.leaf_authority(Arc::clone(&provider))?;
    let tls = upstream::client_tls_config(
        &upstream::UpstreamTrust {
            extra_roots: config.upstream_ca.clone(),
            insecure: config.upstream_insecure,
        },
        Arc::clone(&provider),
    )?;
    let store = config
        .store_bodies
        .as_deref()
        .map(|dir| {
            tap::BodyStore::open(dir).map_err(|source| ProxyError::BodyStore {
                path: dir.to_owned(),
                source,
            })
        })
        .transpose()?;

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ProxyError::Listen {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ProxyError::Listen {
        addr: config.listen,
        source,
    })?;

    let header = CaptureHeader::new(
        env!("CARGO_PKG_VERSION"),
        now_ns(),
        config.header_settings(local_addr, ca),
    );
    let capture = CaptureWriter::create(&config.capture, &header)?;
    let (live, _) = broadcast::channel(LIVE_CAPACITY);
    let (records, writer) = writer::spawn(capture, live.clone()).map_err(ProxyError::Writer)?;
    let shared = Arc::new(Shared::new(
        records.clone(),
        live.clone(),
        config.max_inline,
        store,
    ));
    let resolve = Arc::new(upstream::ResolveMap::new(&config.resolve));

    let (stop, stopped) = oneshot::channel::<()>();
    let proxy = hudsucker::Proxy::builder()
        .with_listener(listener)
        .with_ca(authority)
        .with_http_connector(upstream::connector(tls, Arc::clone(&resolve)))
        .with_http_handler(handler::RecordingHandler::new(Arc::clone(&shared), resolve))
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        })
        .build()
        .map_err(|e| ProxyError::Tls(error_chain(&e)))?;
    let server = tokio::spawn(async move {
        if let Err(e) = proxy.start().await {
            tracing::error!("proxy stopped: {}", error_chain(&e));
        }
    });

    Ok(ProxyHandle {
        local_addr,
        capture_path: config.capture,
        live,
        shared,
        stop,
        server,
        records,
        writer,
    })
}

/// A running proxy.
///
/// Dropping the handle leaves the proxy running on the runtime; call
/// [`ProxyHandle::shutdown`] to stop it and complete the capture file.
pub struct ProxyHandle {
    local_addr: SocketAddr,
    capture_path: PathBuf,
    live: broadcast::Sender<LiveEvent>,
    shared: Arc<Shared>,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    records: mpsc::Sender<Record>,
    writer: std::thread::JoinHandle<WriterReport>,
}

/// What a stopped proxy leaves behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownSummary {
    pub capture_path: PathBuf,
    pub flows_written: u64,
}

impl ProxyHandle {
    /// The address the proxy listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn capture_path(&self) -> &Path {
        &self.capture_path
    }

    /// Live events from now on: [`LiveEvent::Started`] when a request head
    /// arrives, [`LiveEvent::Progress`] at most every 100 ms per streaming body,
    /// [`LiveEvent::Finished`] once the flow is in the capture file. A
    /// subscriber that falls more than a few thousand events behind gets
    /// `RecvError::Lagged` and continues with newer events.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.live.subscribe()
    }

    /// Stops accepting connections, gives open ones a few seconds to finish,
    /// records exchanges still in flight as cut off, and closes the capture.
    pub async fn shutdown(self) -> Result<ShutdownSummary, ProxyError> {
        let ProxyHandle {
            capture_path,
            shared,
            stop,
            mut server,
            records,
            writer,
            ..
        } = self;
        let _ = stop.send(());
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
        shared.abandon_in_flight("the proxy stopped while the exchange was in flight");
        let _ = records.send(Record::Close);
        let report = tokio::task::spawn_blocking(move || writer.join())
            .await
            .map_err(|_| ProxyError::WriterPanicked)?
            .map_err(|_| ProxyError::WriterPanicked)?;
        if let Some(e) = report.first_error {
            return Err(e.into());
        }
        Ok(ShutdownSummary {
            capture_path,
            flows_written: report.flows_written,
        })
    }
}

/// An error and its sources in one line: `a: b: c` (repeats left out).
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// The line `regtap proxy` prints for a finished exchange:
/// `GET registry.test /v2/ 401 143 B 12ms`, with `up … down …` sizes when the
/// request had a body, and the error when there was one.
pub fn summary_line(flow: &Flow) -> String {
    let (host, path) = split_url(&flow.request.url);
    let status = flow
        .response
        .as_ref()
        .map_or_else(|| "ERR".to_owned(), |r| r.status.to_string());
    let down = flow.response.as_ref().map_or(0, |r| r.body.size);
    let size = if flow.request.body.size > 0 {
        format!(
            "up {} down {}",
            human_bytes(flow.request.body.size),
            human_bytes(down)
        )
    } else {
        human_bytes(down)
    };
    let ms = (flow.timing.end() - flow.timing.request_start).max(0) / 1_000_000;
    let mut line = format!(
        "{} {host} {path} {status} {size} {ms}ms",
        flow.request.method
    );
    if let Some(error) = &flow.error {
        line.push_str(" - ");
        line.push_str(&error.message);
    }
    line
}

fn split_url(url: &str) -> (&str, &str) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regtap_capture::factory::FlowBuilder;
    use regtap_capture::{ErrorStage, FlowError};

    #[test]
    fn summary_of_a_plain_exchange() {
        let flow = FlowBuilder::new(1, "GET", "https://registry.test/v2/")
            .status(401)
            .response_body(&[b'x'; 143])
            .build();
        assert_eq!(summary_line(&flow), "GET registry.test /v2/ 401 143 B 0ms");
    }

    #[test]
    fn summary_of_an_upload_and_of_a_failure() {
        let upload = FlowBuilder::new(2, "PUT", "https://r.test/v2/a/blobs/uploads/u?digest=x")
            .request_body_summary(64 * 1024 * 1024, "00")
            .status(201)
            .build();
        assert_eq!(
            summary_line(&upload),
            "PUT r.test /v2/a/blobs/uploads/u?digest=x 201 up 64.0 MiB down 0 B 0ms"
        );
        let failed = FlowBuilder::new(3, "GET", "https://r.test")
            .error(FlowError {
                stage: ErrorStage::Connect,
                message: "cannot connect to r.test: refused".to_owned(),
            })
            .build();
        assert_eq!(
            summary_line(&failed),
            "GET r.test / ERR 0 B 0ms - cannot connect to r.test: refused"
        );
    }
}
