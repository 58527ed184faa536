//! The proxy's front door, in place of hudsucker's `Proxy::start`: the accept
//! loop, each client connection, CONNECT tunnels and the TLS handshake inside
//! them. hudsucker's loop retries a failing `accept` at once (an EMFILE storm
//! burns a core), sets no timeouts, cannot report a failed client handshake,
//! tunnels non-TLS bytes blind and panics on a CONNECT inside a tunnel; this
//! module does each of those on purpose, and records every failure as a flow.
//! Exchanges themselves are recorded by [`crate::handler`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::header::HOST;
use http::uri::{Authority, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hudsucker::Body;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use regtap_capture::{Direction, ErrorStage, FlowError, ReverseExchange, Rewrite};
use rustls::AlertDescription;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::ca::LeafAuthority;
use crate::conn::{ClientDeadlines, ConnState, ExchangeGuard, Rewind, TimedIo};
use crate::handler::{Forwarder, ReverseContext, headers, version_name};
use crate::recorder::Shared;
use crate::reverse::{ClientNet, ClientTls, ReverseFront};
use crate::{error_chain, text_response};

/// How long a failing `accept` (EMFILE, ENFILE, ENOBUFS) waits before trying
/// again, doubling up to the maximum while it keeps failing.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// A failing `accept` is logged at most this often.
const ACCEPT_WARNING_INTERVAL: Duration = Duration::from_secs(5);
/// The most a client connection buffers while reading (hyper's default is
/// ~400 KiB per connection); 64 KiB keeps hundreds of parallel uploads'
/// buffers small without slowing them (bench/proxy-faults.sh).
const CLIENT_READ_BUFFER: usize = 64 * 1024;
/// How long a connection over the limit gets to receive its 503.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Counters the proxy reports when it stops.
#[derive(Debug, Default)]
pub(crate) struct FrontCounters {
    /// Connections answered 503 because the connection limit was reached.
    pub refused_connections: AtomicU64,
    /// `accept` calls that failed (each one waited before the next).
    pub accept_failures: AtomicU64,
}

pub(crate) struct Front {
    pub shared: Arc<Shared>,
    pub forwarder: Forwarder,
    pub leaves: LeafAuthority,
    /// Named in the explanation of a client handshake that failed.
    pub ca_cert_path: PathBuf,
    pub deadlines: ClientDeadlines,
    pub slots: Arc<Semaphore>,
    pub max_connections: usize,
    pub counters: FrontCounters,
    pub http: auto::Builder<TokioExecutor>,
    pub stop: watch::Receiver<bool>,
    /// `Some` in reverse mode: regtap is the registry, not a proxy.
    pub reverse: Option<Arc<ReverseFront>>,
    /// `--allow-client`: when not empty, only these networks are served.
    pub allow_clients: Vec<ClientNet>,
}

/// Where a request arrived: straight from the client, inside the tunnel
/// of a CONNECT to `authority`, or on a reverse-mode listener.
#[derive(Clone)]
enum Origin {
    Direct,
    Tunnel {
        scheme: Scheme,
        authority: Authority,
    },
    Reverse(Arc<ReverseFront>),
}

impl Front {
    pub(crate) fn server_builder() -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .title_case_headers(true)
            .preserve_header_case(true)
            .max_buf_size(CLIENT_READ_BUFFER);
        builder
    }

    /// Accepts connections until the stop signal.
    pub(crate) async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        let mut stop = self.stop.clone();
        let mut backoff = ACCEPT_BACKOFF_MIN;
        let mut last_warning: Option<Instant> = None;
        loop {
            let accepted = tokio::select! {
                _ = stop.changed() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((tcp, client_addr)) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    match Arc::clone(&self.slots).try_acquire_owned() {
                        Ok(permit) => {
                            tokio::spawn(Arc::clone(&self).serve_client(tcp, client_addr, permit));
                        }
                        Err(_) => {
                            tokio::spawn(Arc::clone(&self).refuse(tcp, client_addr));
                        }
                    }
                }
                Err(e) => {
                    let failures = self
                        .counters
                        .accept_failures
                        .fetch_add(1, Ordering::Relaxed);
                    if last_warning.is_none_or(|at| at.elapsed() >= ACCEPT_WARNING_INTERVAL) {
                        last_warning = Some(Instant::now());
                        tracing::warn!(
                            "cannot accept connections: {e} ({} failures so far; retrying with back-off)",
                            failures + 1
                        );
                    }
                    tokio::select! {
                        _ = stop.changed() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            }
        }
    }

    /// A connection beyond `--max-connections`: answered 503 and closed, and recorded.
    async fn refuse(self: Arc<Self>, mut tcp: TcpStream, client_addr: SocketAddr) {
        self.counters
            .refused_connections
            .fetch_add(1, Ordering::Relaxed);
        let message = format!(
            "regtap was at its limit of {} open client connections (--max-connections) and refused this one",
            self.max_connections
        );
        let body = format!("regtap: {message}\n");
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
            tcp.write_all(response.as_bytes()).await?;
            tcp.shutdown().await
        })
        .await;
        self.shared.record_connection_failure(
            client_addr,
            None,
            ErrorStage::ConnectionLimit,
            message,
        );
    }

    async fn serve_client(
        self: Arc<Self>,
        tcp: TcpStream,
        client_addr: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) {
        let _ = tcp.set_nodelay(true);
        let conn = Arc::new(ConnState::new(client_addr));
        let io = TimedIo::new(
            tcp,
            Arc::clone(&conn),
            self.deadlines,
            Arc::clone(&self.shared),
        );
        let permit = Arc::new(permit);
        if let Some(reverse) = self.reverse.clone() {
            let origin = Origin::Reverse(Arc::clone(&reverse));
            match &reverse.tls {
                ClientTls::Plain => {
                    self.serve_tunnel(TokioIo::new(io), origin, conn, permit)
                        .await;
                }
                tls => {
                    let Some(tls) = self.accept_reverse_tls(io, &reverse, tls, &conn).await else {
                        return;
                    };
                    self.serve_tunnel(TokioIo::new(tls), origin, conn, permit)
                        .await;
                }
            }
            return;
        }
        let service = {
            let front = Arc::clone(&self);
            let conn = Arc::clone(&conn);
            service_fn(move |req| {
                let front = Arc::clone(&front);
                let conn = Arc::clone(&conn);
                let permit = Arc::clone(&permit);
                async move { Ok::<_, Infallible>(front.handle(req, conn, Origin::Direct, permit).await) }
            })
        };
        let connection = self
            .http
            .serve_connection_with_upgrades(TokioIo::new(io), service);
        let mut connection = std::pin::pin!(connection);
        let mut stop = self.stop.clone();
        let result = tokio::select! {
            result = connection.as_mut() => result,
            _ = stop.changed() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            self.connection_failed(&conn, e.as_ref());
        }
    }

    /// Records a connection that broke outside any exchange: a client that sent
    /// something that is not HTTP, or hung up in the middle of a request head.
    fn connection_failed(&self, conn: &ConnState, error: &(dyn std::error::Error + 'static)) {
        // Timeouts were recorded when they fired; exchanges record themselves.
        if conn.timed_out() || conn.in_flight() > 0 {
            return;
        }
        let Some(hyper_error) = find_cause::<hyper::Error>(error) else {
            return;
        };
        let message = if hyper_error.is_parse() {
            format!("the client sent something that is not an HTTP request: {hyper_error}")
        } else if hyper_error.is_incomplete_message() {
            "the client closed the connection in the middle of a request head".to_owned()
        } else {
            return;
        };
        self.shared.record_connection_failure(
            conn.client_addr,
            conn.connect_authority(),
            ErrorStage::ClientProtocol,
            message,
        );
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: Arc<ConnState>,
        origin: Origin,
        permit: Arc<OwnedSemaphorePermit>,
    ) -> Response<Body> {
        let guard = conn.exchange(req.version());
        let response = if let Some(refusal) = self.refused_client(&req, &conn, &origin) {
            refusal
        } else if req.method() == Method::CONNECT {
            self.connect(req, &conn, &origin, permit)
        } else if let Origin::Reverse(reverse) = &origin {
            self.reverse_request(req, &conn, reverse).await
        } else {
            match absolute_request(req, &origin) {
                Ok(req) => {
                    self.forwarder
                        .forward(req, conn.client_addr, conn.connect_authority(), None)
                        .await
                }
                Err(refusal) => {
                    self.shared.record_connection_failure(
                        conn.client_addr,
                        conn.connect_authority(),
                        ErrorStage::ClientProtocol,
                        refusal.clone(),
                    );
                    text_response(StatusCode::BAD_REQUEST, &refusal)
                }
            }
        };
        response.map(|body| guarded(body, guard))
    }

    fn connect(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
        conn: &Arc<ConnState>,
        origin: &Origin,
        permit: Arc<OwnedSemaphorePermit>,
    ) -> Response<Body> {
        let refusal = match (origin, req.uri().authority()) {
            (Origin::Tunnel { authority, .. }, _) => Some(format!(
                "CONNECT {} sent inside the tunnel to {authority}: regtap does not nest tunnels",
                req.uri()
            )),
            (Origin::Direct, None) => Some(format!(
                "CONNECT {} has no host:port to connect to",
                req.uri()
            )),
            (Origin::Direct, Some(_)) => None,
            (Origin::Reverse(_), _) => Some(format!(
                "CONNECT {}: regtap runs in reverse mode here (it is the registry, not a proxy)",
                req.uri()
            )),
        };
        if let Some(refusal) = refusal {
            self.shared.record_connection_failure(
                conn.client_addr,
                conn.connect_authority(),
                ErrorStage::ClientProtocol,
                refusal.clone(),
            );
            let status = match origin {
                Origin::Tunnel { .. } | Origin::Reverse(_) => StatusCode::METHOD_NOT_ALLOWED,
                Origin::Direct => StatusCode::BAD_REQUEST,
            };
            return text_response(status, &refusal);
        }
        let Some(authority) = req.uri().authority().cloned() else {
            return text_response(StatusCode::BAD_REQUEST, "CONNECT without host:port");
        };
        conn.set_connect_authority(authority.to_string());
        let front = Arc::clone(self);
        let conn = Arc::clone(conn);
        tokio::spawn(async move {
            match hyper::upgrade::on(&mut req).await {
                Ok(upgraded) => front.tunnel(upgraded, authority, conn, permit).await,
                Err(e) => tracing::debug!("CONNECT upgrade failed: {e}"),
            }
        });
        Response::new(Body::empty())
    }

    /// Serves what comes through a CONNECT tunnel: TLS is intercepted, plain
    /// HTTP is proxied and recorded as `http://authority/…`.
    async fn tunnel(
        self: Arc<Self>,
        upgraded: hyper::upgrade::Upgraded,
        authority: Authority,
        conn: Arc<ConnState>,
        permit: Arc<OwnedSemaphorePermit>,
    ) {
        let mut io = TokioIo::new(upgraded);
        let mut first = [0u8; 1];
        match io.read(&mut first).await {
            Ok(1) => {}
            // The client closed the tunnel without a byte, or a deadline passed.
            _ => return,
        }
        let io = Rewind::new(first.to_vec(), io);
        // 0x16: a TLS handshake record.
        if first[0] == 0x16 {
            let Some(tls) = self.accept_tls(io, &authority, &conn).await else {
                return;
            };
            let origin = Origin::Tunnel {
                scheme: Scheme::HTTPS,
                authority,
            };
            self.serve_tunnel(TokioIo::new(tls), origin, conn, permit)
                .await;
        } else {
            let origin = Origin::Tunnel {
                scheme: Scheme::HTTP,
                authority,
            };
            self.serve_tunnel(TokioIo::new(io), origin, conn, permit)
                .await;
        }
    }

    async fn serve_tunnel<I>(
        self: Arc<Self>,
        io: I,
        origin: Origin,
        conn: Arc<ConnState>,
        permit: Arc<OwnedSemaphorePermit>,
    ) where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let service = {
            let front = Arc::clone(&self);
            let conn = Arc::clone(&conn);
            service_fn(move |req| {
                let front = Arc::clone(&front);
                let conn = Arc::clone(&conn);
                let origin = origin.clone();
                let permit = Arc::clone(&permit);
                async move { Ok::<_, Infallible>(front.handle(req, conn, origin, permit).await) }
            })
        };
        let connection = self.http.serve_connection(io, service);
        let mut connection = std::pin::pin!(connection);
        let mut stop = self.stop.clone();
        let result = tokio::select! {
            result = connection.as_mut() => result,
            _ = stop.changed() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            self.connection_failed(&conn, e.as_ref());
        }
    }

    /// A client outside `--allow-client`: answered 403 and recorded, once
    /// per request (the connection itself is not worth a flow of its own).
    fn refused_client(
        &self,
        req: &Request<Incoming>,
        conn: &ConnState,
        origin: &Origin,
    ) -> Option<Response<Body>> {
        let ip = conn.client_addr.ip();
        if self.allow_clients.is_empty() || self.allow_clients.iter().any(|net| net.contains(ip)) {
            return None;
        }
        let message = format!(
            "regtap does not serve {ip}: the address is not in its --allow-client networks"
        );
        let (scheme, url) = match origin {
            Origin::Tunnel { scheme, authority } => (
                scheme.as_str().to_owned(),
                format!("{scheme}://{authority}{}", path_of(req.uri())),
            ),
            Origin::Reverse(reverse) => {
                let scheme = reverse_scheme(reverse);
                (scheme.to_owned(), client_url(req, scheme))
            }
            Origin::Direct => (
                req.uri().scheme_str().unwrap_or("http").to_owned(),
                req.uri().to_string(),
            ),
        };
        self.shared.record_refused_request(
            conn.client_addr,
            &scheme,
            refused_request(req, url),
            FlowError {
                stage: ErrorStage::ClientRefused,
                message: message.clone(),
            },
        );
        Some(text_response(StatusCode::FORBIDDEN, &message))
    }

    /// Reverse mode: routes the request by its host to an upstream, or
    /// answers 421 (recorded) when regtap serves no such name.
    async fn reverse_request(
        &self,
        mut req: Request<Incoming>,
        conn: &ConnState,
        reverse: &ReverseFront,
    ) -> Response<Body> {
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                req.headers()
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            });
        let route = host.as_deref().and_then(|h| reverse.route(h));
        let target = route.map(|r| (r, r.upstream_uri(req.uri().path_and_query())));
        let (route, uri) = match target {
            Some((route, Ok(uri))) => (route, uri),
            _ => {
                let scheme = reverse_scheme(reverse);
                let message = match (&host, target) {
                    (_, Some((_, Err(reason)))) => reason,
                    (None, _) => format!(
                        "the request names no host (no Host header); regtap serves {}",
                        reverse.names()
                    ),
                    (Some(host), _) => format!(
                        "regtap serves no upstream for {host:?}; it serves {} (--reverse)",
                        reverse.names()
                    ),
                };
                self.shared.record_refused_request(
                    conn.client_addr,
                    scheme,
                    refused_request(&req, client_url(&req, scheme)),
                    FlowError {
                        stage: ErrorStage::Misdirected,
                        message: message.clone(),
                    },
                );
                return text_response(
                    StatusCode::MISDIRECTED_REQUEST,
                    &format!("regtap: {message}"),
                );
            }
        };
        let upstream_host = route.upstream_authority.as_str();
        // HTTP/2 clients name the host in `:authority`; upstream gets `Host`.
        let host_field = if req.version() == Version::HTTP_2 && req.uri().authority().is_some() {
            ":authority"
        } else {
            HOST.as_str()
        };
        let mut rewrites = Vec::new();
        if host.as_deref() != Some(upstream_host) {
            rewrites.push(Rewrite {
                direction: Direction::Request,
                header: host_field.to_owned(),
                original: host.unwrap_or_default(),
                rewritten: upstream_host.to_owned(),
            });
        }
        *req.uri_mut() = uri;
        let context = ReverseContext {
            exchange: ReverseExchange {
                served_as: route.served_as.clone(),
                rewrites,
            },
            rewriter: reverse.rewriter.clone(),
        };
        self.forwarder
            .forward(req, conn.client_addr, None, Some(context))
            .await
    }

    /// Reverse mode's TLS handshake: the operator's certificate, or one from
    /// regtap's CA for the served name the client asked for (by SNI).
    async fn accept_reverse_tls<I>(
        &self,
        io: I,
        reverse: &ReverseFront,
        tls: &ClientTls,
        conn: &ConnState,
    ) -> Option<tokio_rustls::server::TlsStream<I>>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let first = &reverse.routes[0];
        let fail = |served: &str, message: String| {
            if !conn.timed_out() {
                self.shared.record_reverse_tls_failure(
                    conn.client_addr,
                    served.to_owned(),
                    message,
                );
            }
        };
        let acceptor =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
        let start = match acceptor.await {
            Ok(start) => start,
            Err(e) => {
                fail(
                    &first.served_as,
                    format!(
                        "the client's TLS hello to regtap could not be read: {}",
                        error_chain(&e)
                    ),
                );
                return None;
            }
        };
        let sni = start.client_hello().server_name().map(str::to_owned);
        // Without SNI (a client that dialled an address) the first name is served.
        let route = match sni.as_deref() {
            None => Some(first),
            Some(name) => reverse.route(name),
        };
        let served = route.map_or_else(
            || format!("https://{}", sni.as_deref().unwrap_or_default()),
            |r| r.served_as.clone(),
        );
        let config = match (tls, route) {
            (ClientTls::Provided(config), _) => Arc::clone(config),
            (_, Some(route)) => match self.leaves.server_config(&route.name) {
                Ok(config) => config,
                Err(reason) => {
                    fail(
                        &served,
                        format!(
                            "regtap cannot make a certificate for {:?}: {reason}",
                            route.name
                        ),
                    );
                    return None;
                }
            },
            (_, None) => {
                fail(
                    &served,
                    format!(
                        "the client asked (SNI) for {:?}, which regtap does not serve; it serves {} (--reverse)",
                        sni.unwrap_or_default(),
                        reverse.names()
                    ),
                );
                return None;
            }
        };
        let host = route.map_or_else(|| sni.clone().unwrap_or_default(), |r| r.name.clone());
        match start.into_stream(config).await {
            Ok(stream) => Some(stream),
            Err(e) => {
                fail(&served, self.explain_client_tls_failure(&host, &e));
                None
            }
        }
    }

    /// The TLS handshake with the client, with regtap's certificate for the
    /// name the client asked for; a failure is recorded with what to do about it.
    async fn accept_tls<I>(
        &self,
        io: I,
        authority: &Authority,
        conn: &ConnState,
    ) -> Option<tokio_rustls::server::TlsStream<I>>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let fail = |message: String| {
            if !conn.timed_out() {
                self.shared.record_client_tls_failure(
                    conn.client_addr,
                    authority.to_string(),
                    message,
                );
            }
        };
        let acceptor =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
        let start = match acceptor.await {
            Ok(start) => start,
            Err(e) => {
                fail(format!(
                    "the client's TLS hello to regtap could not be read: {}",
                    error_chain(&e)
                ));
                return None;
            }
        };
        let host = start
            .client_hello()
            .server_name()
            .map(str::to_owned)
            .unwrap_or_else(|| authority.host().to_owned());
        let config = match self.leaves.server_config(&host) {
            Ok(config) => config,
            Err(reason) => {
                fail(format!(
                    "regtap cannot make a certificate for {host:?} (the name the client asked for): {reason}"
                ));
                return None;
            }
        };
        match start.into_stream(config).await {
            Ok(stream) => Some(stream),
            Err(e) => {
                fail(self.explain_client_tls_failure(&host, &e));
                None
            }
        }
    }

    fn explain_client_tls_failure(&self, host: &str, error: &std::io::Error) -> String {
        let ca = self.ca_cert_path.display();
        let trust = format!(
            "trust regtap's CA {ca} in the client (`regtap setup docker` shows how for dockerd; \
             curl and skopeo take it through --cacert or SSL_CERT_FILE)"
        );
        match find_cause::<rustls::Error>(error) {
            Some(rustls::Error::AlertReceived(
                alert @ (AlertDescription::UnknownCA
                | AlertDescription::BadCertificate
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate),
            )) => format!(
                "the client does not trust regtap's CA: it rejected the certificate regtap made \
                 for {host} (TLS alert {alert:?}); {trust}"
            ),
            Some(rustls::Error::AlertReceived(alert)) => {
                format!("the client ended the TLS handshake for {host} with alert {alert:?}")
            }
            Some(other) => format!("TLS handshake with the client for {host} failed: {other}"),
            None if error.kind() == std::io::ErrorKind::UnexpectedEof => format!(
                "the client hung up during the TLS handshake for {host} without saying why; \
                 clients that do not trust the certificate often do: {trust}"
            ),
            None => format!(
                "TLS handshake with the client for {host} failed: {}",
                error_chain(error)
            ),
        }
    }
}

/// A request inside a tunnel, made absolute (`https://authority/path`) as
/// hudsucker did; a request straight to the proxy must already be absolute.
fn absolute_request(req: Request<Incoming>, origin: &Origin) -> Result<Request<Incoming>, String> {
    match origin {
        Origin::Tunnel { scheme, authority } => {
            if matches!(req.version(), Version::HTTP_2 | Version::HTTP_3)
                && req.uri().authority().is_some()
            {
                return Ok(req);
            }
            let (mut parts, body) = req.into_parts();
            let mut uri = parts.uri.into_parts();
            uri.scheme = Some(scheme.clone());
            uri.authority = Some(authority.clone());
            if uri.path_and_query.is_none() {
                uri.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
            }
            parts.uri = Uri::from_parts(uri).map_err(|e| format!("bad request target: {e}"))?;
            Ok(Request::from_parts(parts, body))
        }
        Origin::Direct if req.uri().authority().is_some() => Ok(req),
        Origin::Reverse(_) => Err("reverse-mode requests are routed by their host".to_owned()),
        Origin::Direct => Err(format!(
            "{} {}: regtap is a proxy; send absolute URLs (http://host/…) or CONNECT host:port",
            req.method(),
            req.uri()
        )),
    }
}

fn reverse_scheme(reverse: &ReverseFront) -> &'static str {
    match reverse.tls {
        ClientTls::Plain => "http",
        _ => "https",
    }
}

fn path_of(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

/// The URL a reverse-mode client asked for, from its Host.
fn client_url(req: &Request<Incoming>, scheme: &str) -> String {
    if req.uri().authority().is_some() {
        return req.uri().to_string();
    }
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    format!("{scheme}://{host}{}", path_of(req.uri()))
}

/// The request head of a request regtap answered itself, for its flow.
fn refused_request(req: &Request<Incoming>, url: String) -> regtap_capture::Request {
    regtap_capture::Request {
        method: req.method().to_string(),
        url,
        http_version: version_name(req.version()),
        headers: headers(req.headers()),
        body: regtap_capture::Body::from_bytes(b""),
    }
}

/// The response body, holding the exchange open on its connection until it is
/// sent (or dropped).
fn guarded(body: Body, guard: ExchangeGuard) -> Body {
    use http_body_util::BodyExt as _;
    Body::from(
        body.map_frame(move |frame| {
            let _held = &guard;
            frame
        })
        .boxed(),
    )
}

pub(crate) fn find_cause<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        // io::Error hides its payload from `source`.
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = inner.downcast_ref::<E>()
        {
            return Some(found);
        }
        next = e.source();
    }
    None
}
