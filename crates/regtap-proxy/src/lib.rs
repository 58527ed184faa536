//! regtap's recording proxy: a MITM HTTP(S) proxy (hyper, with hudsucker's
//! body type) that streams every exchange through unchanged and records it as
//! a [`Flow`] in a capture file, plus the certificate authority it signs its
//! per-host certificates with.
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
mod chain;
mod conn;
mod handler;
mod keylog;
mod recorder;
mod reverse;
mod server;
mod tap;
mod upstream;
mod writer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};
use regtap_capture::{
    CaptureError, CaptureHeader, CaptureSettings, CaptureWriter, ClientTlsSetting, Flow, ProxyMode,
    ReverseSettings, ReverseUpstream, TimeoutSettings, human_bytes, now_ns,
};
use rustls::crypto::CryptoProvider;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, broadcast, watch};

pub use ca::{
    CA_CERT_FILE, CA_KEY_FILE, CA_VALIDITY_DAYS, Ca, CaError, CaInfo, CaOptions,
    LEAF_CACHE_CAPACITY, LeafAuthority, data_dir_from_env, fingerprint,
};
pub use chain::{
    ChainConfigError, ChainOptions, ChainedProxy, NoProxy, ProxyCredentials, ProxyEndpoint,
    ProxyOrigin, UpstreamProxies,
};
pub use regtap_capture::{ExistingCapture, LiveEvent};
pub use reverse::{ClientNet, ReverseConfig, ReverseRoute, ReverseTls};
pub use upstream::ResolveRule;

use recorder::Shared;
use writer::{Record, WriterReport, WriterTask};

/// `--max-inline`'s default: bodies up to 1 MiB (tokens, manifests, error
/// JSON) are kept whole in the capture.
pub const DEFAULT_MAX_INLINE: usize = 1024 * 1024;
/// The largest `--max-inline`: a capture holds metadata, not layers.
pub const MAX_INLINE_LIMIT: usize = 64 * 1024 * 1024;
/// `--inline-budget`'s default: what all inline bodies in flight may hold.
pub const DEFAULT_INLINE_BUDGET: usize = 256 * 1024 * 1024;
/// `--max-connections`' default: open client connections (each also holds
/// an upstream connection, so about twice as many file descriptors).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// How long the proxy waits for each side. Every timeout that fires is
/// recorded as the flow's error, with its own [`regtap_capture::ErrorStage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A client's request head, from its first byte (or from the connection
    /// being opened, for its first request).
    pub request_head: Duration,
    /// A kept-alive client connection with nothing in flight.
    pub idle: Duration,
    /// Connecting to the upstream server, TCP and TLS.
    pub connect: Duration,
    /// The upstream's response head, from the end of the request body.
    pub response: Duration,
    /// A body (either side) with no bytes moving.
    pub body: Duration,
}

impl Default for Timeouts {
    /// Generous enough for a registry finishing a large upload; the idle
    /// timeout is longer than Go's 90 s so that dockerd closes first.
    fn default() -> Self {
        Timeouts {
            request_head: Duration::from_secs(30),
            idle: Duration::from_secs(120),
            connect: Duration::from_secs(30),
            response: Duration::from_secs(300),
            body: Duration::from_secs(120),
        }
    }
}

/// How long a shutdown waits for open connections to finish before it cuts them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Idle upstream connections are closed after this long…
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// …and at most this many are kept per upstream host.
const UPSTREAM_MAX_IDLE_PER_HOST: usize = 32;

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
    #[error("cannot open the TLS key log {path}: {source}")]
    KeyLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
    #[error("reverse mode: {0}")]
    Reverse(String),
    #[error("reverse mode's certificate {path}: {reason}")]
    ReverseCert { path: PathBuf, reason: String },
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error("cannot start the capture writer: {0}")]
    Writer(std::io::Error),
    #[error(
        "--max-inline {0} is larger than the limit of {MAX_INLINE_LIMIT} bytes (64 MiB): a capture keeps metadata, use --store-bodies for whole blobs"
    )]
    MaxInlineTooLarge(usize),
    #[error("--max-connections must be at least 1")]
    NoConnections,
    #[error("the capture writer stopped unexpectedly")]
    WriterPanicked,
    #[error(
        "the upstream proxy {proxy} is this regtap itself (listening on {listen}): every \
         exchange would come back to it{}",
        loop_advice(origin)
    )]
    UpstreamProxyLoop {
        proxy: String,
        origin: ProxyOrigin,
        listen: SocketAddr,
    },
}

/// How to get out of [`ProxyError::UpstreamProxyLoop`].
fn loop_advice(origin: &ProxyOrigin) -> String {
    match origin {
        ProxyOrigin::Flag => "; give --upstream-proxy the corporate proxy's address".to_owned(),
        ProxyOrigin::Env(name) => format!(
            ". {name} is probably set for the clients; start regtap without it \
             (env -u {name} regtap proxy …), or with --no-env-proxy, or name the real \
             upstream proxy with --upstream-proxy"
        ),
    }
}

/// How to run the proxy.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Port 0 picks a free port; see [`ProxyHandle::local_addr`].
    pub listen: SocketAddr,
    /// Created with mode 0600; never through a symlink.
    pub capture: PathBuf,
    /// What to do when `capture` exists: refuse (default), append, overwrite.
    pub existing_capture: ExistingCapture,
    /// `fdatasync` the capture after every record.
    pub sync_each_record: bool,
    /// Once a record cannot be written, keep forwarding (each unrecorded
    /// exchange is named on stderr) instead of refusing new exchanges.
    pub keep_forwarding_unrecorded: bool,
    /// PEM files with certificates to trust besides the webpki roots.
    pub upstream_ca: Vec<PathBuf>,
    /// Accept any upstream certificate. Recorded in the capture header.
    pub upstream_insecure: bool,
    pub resolve: Vec<ResolveRule>,
    /// The proxy regtap's own upstream connections go through (a corporate
    /// proxy), per scheme; empty: every connection is direct.
    pub upstream_proxies: UpstreamProxies,
    /// Bodies up to this many bytes are kept whole in the capture; larger ones
    /// keep their size, SHA-256 and first bytes.
    pub max_inline: usize,
    /// Memory all inline bodies in flight may hold together.
    pub inline_budget: usize,
    /// Content-addressed store every complete body is written to as it streams.
    pub store_bodies: Option<PathBuf>,
    pub timeouts: Timeouts,
    /// Connections beyond this many open ones are answered 503 and recorded.
    pub max_connections: usize,
    /// Where to append the NSS key log of both TLS legs (`SSLKEYLOGFILE`).
    pub keylog: Option<PathBuf>,
    /// Reverse mode: listen as the registry itself instead of as a proxy.
    pub reverse: Option<ReverseConfig>,
    /// When not empty, clients from other addresses get a 403 (recorded).
    pub allow_clients: Vec<ClientNet>,
}

impl ProxyConfig {
    pub fn new(listen: SocketAddr, capture: PathBuf) -> Self {
        ProxyConfig {
            listen,
            capture,
            existing_capture: ExistingCapture::Refuse,
            sync_each_record: false,
            keep_forwarding_unrecorded: false,
            upstream_ca: Vec::new(),
            upstream_insecure: false,
            resolve: Vec::new(),
            upstream_proxies: UpstreamProxies::default(),
            max_inline: DEFAULT_MAX_INLINE,
            inline_budget: DEFAULT_INLINE_BUDGET,
            store_bodies: None,
            timeouts: Timeouts::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            keylog: None,
            reverse: None,
            allow_clients: Vec::new(),
        }
    }

    fn header_settings(
        &self,
        listen: SocketAddr,
        ca: &Ca,
        reverse: Option<&reverse::ReverseFront>,
    ) -> CaptureSettings {
        let path = |p: &PathBuf| p.display().to_string();
        let reverse_settings = match (reverse, &self.reverse) {
            (Some(front), Some(config)) => {
                let (client_tls, cert) = match &config.tls {
                    ReverseTls::RegtapCa => (ClientTlsSetting::RegtapCa, None),
                    ReverseTls::Provided { cert, .. } => {
                        (ClientTlsSetting::Provided, Some(path(cert)))
                    }
                    ReverseTls::PlainHttp => (ClientTlsSetting::PlainHttp, None),
                };
                Some(ReverseSettings {
                    cert,
                    client_tls,
                    rewrite_urls: config.rewrite_urls,
                    upstreams: front
                        .routes
                        .iter()
                        .map(|r| ReverseUpstream {
                            name: r.name.clone(),
                            served_as: r.served_as.clone(),
                            upstream: format!("{}://{}", r.upstream_scheme, r.upstream_authority),
                        })
                        .collect(),
                })
            }
            _ => None,
        };
        let t = &self.timeouts;
        CaptureSettings {
            allow_client: Some(self.allow_clients.iter().map(|n| n.to_string()).collect()),
            ca_sha256_fingerprint: Some(fingerprint(ca.cert_der())),
            inline_budget: Some(self.inline_budget as u64),
            keep_forwarding_unrecorded: Some(self.keep_forwarding_unrecorded),
            // Whoever reads the capture learns that the traffic's keys exist.
            keylog: self.keylog.as_ref().map(path),
            listen: Some(listen.to_string()),
            max_connections: Some(self.max_connections as u64),
            max_inline: Some(self.max_inline as u64),
            mode: Some(if reverse.is_some() {
                ProxyMode::Reverse
            } else {
                ProxyMode::Forward
            }),
            resolve: Some(self.resolve.iter().map(|r| r.to_string()).collect()),
            reverse: reverse_settings,
            store_bodies: Some(self.store_bodies.as_ref().map(path)),
            sync_each_record: Some(self.sync_each_record),
            timeouts_s: Some(TimeoutSettings {
                body: t.body.as_secs_f64(),
                connect: t.connect.as_secs_f64(),
                idle: t.idle.as_secs_f64(),
                request_head: t.request_head.as_secs_f64(),
                response: t.response.as_secs_f64(),
            }),
            upstream_ca: Some(self.upstream_ca.iter().map(path).collect()),
            upstream_insecure: Some(self.upstream_insecure),
            upstream_proxy: Some(self.upstream_proxies.header_setting()),
            other: serde_json::Map::new(),
        }
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
    if config.max_inline > MAX_INLINE_LIMIT {
        return Err(ProxyError::MaxInlineTooLarge(config.max_inline));
    }
    if config.max_connections == 0 {
        return Err(ProxyError::NoConnections);
    }
    // A capture that reaches the file-size limit must fail its write (EFBIG),
    // which the writer handles, rather than kill the process with SIGXFSZ.
    #[cfg(unix)]
    // SAFETY: setting a signal to SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    warn_if_short_of_file_descriptors(config.max_connections);
    keep_freed_buffers();
    let provider = crypto_provider();
    let keylog: Option<Arc<dyn rustls::KeyLog>> = match &config.keylog {
        Some(path) => Some(Arc::new(keylog::KeyLogFile::open(path)?)),
        None => None,
    };
    let leaves = ca
        .leaf_authority(Arc::clone(&provider))?
        .with_key_log(keylog.clone());
    // Loaded before anything is created: a bad --cert fails the start.
    let reverse_tls = config
        .reverse
        .as_ref()
        .map(|r| reverse::ClientTls::new(r, &provider, keylog.clone()))
        .transpose()?;
    let mut tls = upstream::client_tls_config(
        &upstream::UpstreamTrust {
            extra_roots: config.upstream_ca.clone(),
            insecure: config.upstream_insecure,
        },
        Arc::clone(&provider),
    )?;
    if let Some(keylog) = keylog {
        tls.key_log = keylog;
    }
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
    let chained = [
        &config.upstream_proxies.https,
        &config.upstream_proxies.http,
    ];
    for proxy in chained.into_iter().flatten() {
        if upstream::points_at(&proxy.endpoint, local_addr).await {
            return Err(ProxyError::UpstreamProxyLoop {
                proxy: proxy.endpoint.to_string(),
                origin: proxy.origin.clone(),
                listen: local_addr,
            });
        }
    }

    let reverse = match (&config.reverse, reverse_tls) {
        (Some(reverse), Some(tls)) => Some(Arc::new(reverse::ReverseFront::new(
            reverse, tls, local_addr,
        )?)),
        _ => None,
    };
    let header = CaptureHeader::new(
        env!("CARGO_PKG_VERSION"),
        now_ns(),
        config.header_settings(local_addr, ca, reverse.as_deref()),
    );
    let capture = CaptureWriter::open(&config.capture, &header, config.existing_capture)?
        .sync_each_record(config.sync_each_record);
    let first_id = capture.last_id() + 1;
    let (live, _) = broadcast::channel(LIVE_CAPACITY);
    let (failed, capture_failure) = watch::channel(None);
    let (records, writer) = writer::spawn(WriterTask {
        writer: capture,
        live: live.clone(),
        keep_forwarding: config.keep_forwarding_unrecorded,
        failed,
    })
    .map_err(ProxyError::Writer)?;
    let shared = Arc::new(Shared::new(
        local_addr,
        records.clone(),
        live.clone(),
        first_id,
        config.max_inline,
        Arc::new(tap::InlineBudget::new(config.inline_budget)),
        store,
    ));
    let routes = Arc::new(upstream::Routes {
        resolve: upstream::ResolveMap::new(&config.resolve),
        proxies: config.upstream_proxies.clone(),
    });
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http1_title_case_headers(true)
        .http1_preserve_header_case(true)
        // Without a timer the pool never closes idle upstream connections: a
        // long-running proxy would hold every one it ever opened.
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .pool_idle_timeout(UPSTREAM_IDLE_TIMEOUT)
        .pool_max_idle_per_host(UPSTREAM_MAX_IDLE_PER_HOST)
        .build(upstream::connector(
            tls,
            Arc::clone(&routes),
            config.timeouts.connect,
        ));

    let (stop, stopped) = watch::channel(false);
    let front = Arc::new(server::Front {
        shared: Arc::clone(&shared),
        forwarder: handler::Forwarder {
            shared: Arc::clone(&shared),
            routes,
            client,
            response_timeout: config.timeouts.response,
            body_timeout: config.timeouts.body,
            keep_forwarding: config.keep_forwarding_unrecorded,
        },
        leaves,
        ca_cert_path: ca.cert_path(),
        deadlines: conn::ClientDeadlines {
            request_head: config.timeouts.request_head,
            idle: config.timeouts.idle,
        },
        slots: Arc::new(Semaphore::new(config.max_connections)),
        max_connections: config.max_connections,
        counters: server::FrontCounters::default(),
        http: server::Front::server_builder(),
        stop: stopped,
        reverse,
        allow_clients: config.allow_clients.clone(),
    });
    let server = tokio::spawn(Arc::clone(&front).accept_loop(listener));

    Ok(ProxyHandle {
        local_addr,
        capture_path: config.capture,
        live,
        shared,
        front,
        stop,
        server,
        records,
        writer,
        capture_failure,
    })
}

/// Bodies stream through buffers of up to a few hundred KiB. With glibc's
/// defaults a worker thread's heap gives its free top back to the kernel as
/// soon as 128 KiB are free (about 140 `madvise` calls per 512 MiB passed),
/// so the next buffers' pages are faulted in and zeroed again. Keeping up to
/// 32 MiB per heap cuts the proxy's CPU per GiB of HTTP/2 uploads by about a
/// sixth (bench/proxy-throughput.sh). Setting the trim threshold stops glibc
/// from raising the mmap threshold by itself, so that one is set too.
fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; it touches no
    // memory of ours.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
    }
}

/// Each client connection holds its socket and usually one upstream socket;
/// when the file-descriptor limit is lower than that, connections beyond it
/// wait in the listen backlog instead of getting the limit's 503.
fn warn_if_short_of_file_descriptors(max_connections: usize) {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return;
        }
        let needed = max_connections.saturating_mul(2).saturating_add(64) as u64;
        if limit.rlim_cur < needed {
            tracing::warn!(
                "--max-connections {max_connections} needs about {needed} file descriptors \
                 but the limit is {} (ulimit -n): raise it, or lower --max-connections to \
                 about {} so that extra clients get a 503 instead of waiting",
                limit.rlim_cur,
                limit.rlim_cur.saturating_sub(64) / 2
            );
        }
    }
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
    front: Arc<server::Front>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    records: mpsc::Sender<Record>,
    writer: std::thread::JoinHandle<WriterReport>,
    capture_failure: watch::Receiver<Option<String>>,
}

/// What a stopped proxy leaves behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownSummary {
    pub capture_path: PathBuf,
    pub flows_written: u64,
    /// Finished exchanges that are not in the capture (it could not be written).
    pub flows_lost: u64,
    /// Why the capture could not be written, when it could not.
    pub capture_error: Option<String>,
    /// Connections answered 503 because of `--max-connections`.
    pub refused_connections: u64,
    /// `accept` calls that failed (for instance out of file descriptors).
    pub accept_failures: u64,
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

    /// True when the proxy goes on forwarding after a failed capture write.
    pub fn keeps_forwarding_unrecorded(&self) -> bool {
        self.front.forwarder.keep_forwarding
    }

    /// Resolves with the reason once a capture record could not be written.
    /// Unless `keep_forwarding_unrecorded` is set, the proxy already refuses
    /// new exchanges by then and should be shut down.
    pub async fn capture_failed(&self) -> String {
        let mut failure = self.capture_failure.clone();
        match failure.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            // The writer is gone (shutdown): nothing more will fail.
            Err(_) => std::future::pending().await,
        }
    }

    /// Stops accepting connections, gives open ones a few seconds to finish,
    /// records exchanges still in flight as cut off, and closes the capture.
    pub async fn shutdown(self) -> Result<ShutdownSummary, ProxyError> {
        let ProxyHandle {
            capture_path,
            shared,
            front,
            stop,
            server,
            records,
            writer,
            ..
        } = self;
        let _ = stop.send(true);
        let _ = server.await;
        // Connections finish what is in flight (each holds a slot) or are cut.
        let all = u32::try_from(front.max_connections).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, front.slots.acquire_many(all)).await;
        shared.abandon_in_flight("the proxy stopped while the exchange was in flight");
        let _ = records.send(Record::Close);
        let report = tokio::task::spawn_blocking(move || writer.join())
            .await
            .map_err(|_| ProxyError::WriterPanicked)?
            .map_err(|_| ProxyError::WriterPanicked)?;
        Ok(ShutdownSummary {
            capture_path,
            flows_written: report.flows_written,
            flows_lost: report.flows_lost,
            capture_error: report.first_error.map(|e| e.to_string()),
            refused_connections: front.counters.refused_connections.load(Ordering::Relaxed),
            accept_failures: front.counters.accept_failures.load(Ordering::Relaxed),
        })
    }
}

/// A plain-text response regtap makes itself (refusals, upstream failures).
pub(crate) fn text_response(status: StatusCode, message: &str) -> Response<hudsucker::Body> {
    let mut res = Response::new(hudsucker::Body::from(format!("{message}\n")));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
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
    // A failure before any request (a timeout, a refused connection).
    let method = match flow.request.method.as_str() {
        "" => "-",
        method => method,
    };
    let mut line = format!("{method} {host} {path} {status} {size} {ms}ms");
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
