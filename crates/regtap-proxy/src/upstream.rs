//! The proxy's side towards servers: which certificates it trusts, where it
//! connects (`--resolve`), and the chained proxy it may go through
//! (`--upstream-proxy`; see `chain.rs` for how it is chosen).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use std::sync::atomic::{AtomicU8, Ordering};

use http::header::PROXY_AUTHORIZATION;
use http::{Request, Uri};
use hyper_rustls::MaybeHttpsStream;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tower_service::Service as _;

use crate::ProxyError;
use crate::ca::pem_certificates;
use crate::chain::{ChainedProxy, ProxyCredentials, ProxyEndpoint, UpstreamProxies};

/// One `--resolve HOST:PORT=ADDR` rule: connections for `HOST:PORT` go to
/// `ADDR` (an IP, which keeps `PORT`, or an `IP:PORT`), while TLS server name
/// and `Host` stay `HOST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveRule {
    pub host: String,
    pub port: u16,
    pub addr: SocketAddr,
}

impl FromStr for ResolveRule {
    type Err = String;

    fn from_str(rule: &str) -> Result<Self, Self::Err> {
        let usage =
            || format!("{rule:?}: expected HOST:PORT=ADDR, e.g. registry.test:443=127.0.0.1");
        let (target, addr) = rule.split_once('=').ok_or_else(usage)?;
        let (host, port) = target.rsplit_once(':').ok_or_else(usage)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| usage())?;
        if host.is_empty() {
            return Err(usage());
        }
        let addr = match addr.parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(_) => SocketAddr::new(
                addr.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .map_err(|_| usage())?,
                port,
            ),
        };
        Ok(ResolveRule {
            host: host.to_ascii_lowercase(),
            port,
            addr,
        })
    }
}

impl fmt::Display for ResolveRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}={}", self.host, self.port, self.addr)
    }
}

/// The `--resolve` rules, looked up by host and port.
#[derive(Debug, Default)]
pub(crate) struct ResolveMap(HashMap<(String, u16), SocketAddr>);

impl ResolveMap {
    pub(crate) fn new(rules: &[ResolveRule]) -> Self {
        ResolveMap(
            rules
                .iter()
                .map(|r| ((r.host.clone(), r.port), r.addr))
                .collect(),
        )
    }

    /// Where a request for `uri` is sent, when a rule says so.
    pub(crate) fn lookup(&self, uri: &Uri) -> Option<SocketAddr> {
        let host = uri
            .host()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("http") => 80,
            _ => 443,
        });
        self.0.get(&(host, port)).copied()
    }
}

/// How the proxy checks upstream servers' certificates.
#[derive(Debug, Clone, Default)]
pub(crate) struct UpstreamTrust {
    /// PEM files whose certificates are trusted besides the webpki roots.
    pub extra_roots: Vec<PathBuf>,
    /// Accept any certificate (explicit opt-in).
    pub insecure: bool,
}

pub(crate) fn client_tls_config(
    trust: &UpstreamTrust,
    provider: Arc<CryptoProvider>,
) -> Result<ClientConfig, ProxyError> {
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxyError::Tls(e.to_string()))?;
    if trust.insecure {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in &trust.extra_roots {
        add_pem_roots(&mut roots, path)?;
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

fn add_pem_roots(roots: &mut RootCertStore, path: &Path) -> Result<(), ProxyError> {
    let bad = |reason: String| ProxyError::UpstreamCa {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let certs = pem_certificates(&pem);
    if certs.is_empty() {
        return Err(bad("no PEM certificate in the file".to_owned()));
    }
    for cert in certs {
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    Ok(())
}

/// Where connections for a target go: the `--resolve` rules, then the
/// chained proxy when one applies.
///
/// How the two meet: a `--resolve` rule says where a target is, and still
/// does through a chained proxy for `https://` targets: regtap asks the proxy
/// for a tunnel to the rule's address (`CONNECT 127.0.0.1:5000`), while TLS
/// (SNI, certificate) and `Host` keep naming the target. Without a rule the
/// proxy resolves the name, as it would for any client. Plain `http://`
/// targets through the proxy are sent as absolute URLs naming the target, so
/// the proxy resolves them and a rule does not apply. Whether a target goes
/// through the proxy is decided on its name, never on a rule's address.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    pub resolve: ResolveMap,
    pub proxies: UpstreamProxies,
}

impl Routes {
    /// The address connected to for `uri` (by regtap, or by the chained proxy
    /// asked by address), when a rule says so.
    pub(crate) fn server_addr(&self, uri: &Uri) -> Option<SocketAddr> {
        if uri.scheme_str() == Some("http") && self.proxies.route(uri).is_some() {
            return None;
        }
        self.resolve.lookup(uri)
    }

    /// The chained proxy `uri` goes through, as the flow records it.
    pub(crate) fn via(&self, uri: &Uri) -> Option<String> {
        self.proxies.route(uri).map(|p| p.endpoint.to_string())
    }

    /// A plain-http request through the chained proxy carries the proxy's
    /// credentials (CONNECT carries them for https). Added after the request
    /// was recorded: the capture never holds them.
    pub(crate) fn prepare<B>(&self, req: &mut Request<B>) {
        if req.uri().scheme_str() != Some("http") {
            return;
        }
        let auth = self
            .proxies
            .route(req.uri())
            .and_then(|p| p.endpoint.credentials())
            .and_then(ProxyCredentials::basic_authorization);
        if let Some(auth) = auth {
            req.headers_mut().insert(PROXY_AUTHORIZATION, auth);
        }
    }
}

/// The connector the proxy's client uses: [`Routes`], then TLS with `tls`
/// for `https://` (end to end, through the chained proxy's tunnel when there
/// is one); the whole of it bounded by `timeout`. Upstream connections speak
/// HTTP/1.1 only (no ALPN), as dockerd does to registries: large blobs then
/// stream without HTTP/2 flow-control windows, and what the upstream sees
/// matches what dockerd would send it.
pub(crate) fn connector(
    tls: ClientConfig,
    routes: Arc<Routes>,
    timeout: Duration,
) -> UpstreamConnector {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    UpstreamConnector {
        tcp,
        tls: TlsConnector::from(Arc::new(tls)),
        routes,
        timeout,
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Connecting upstream (TCP, CONNECT, TLS) took longer than `--connect-timeout`.
#[derive(Debug, thiserror::Error)]
#[error("no connection within {}s (--connect-timeout){}", .after.as_secs_f32(), .waiting.as_deref().map(|w| format!(", {w}")).unwrap_or_default())]
pub(crate) struct ConnectTimedOut {
    after: Duration,
    /// Where a connection through the chained proxy was stuck.
    waiting: Option<String>,
}

/// How far a connection got, for a timeout's message.
const STEP_DIRECT: u8 = 0;
const STEP_PROXY_TCP: u8 = 1;
const STEP_PROXY_ANSWER: u8 = 2;
const STEP_TARGET_TLS: u8 = 3;

/// The chained proxy could not be reached, refused the tunnel, or broke
/// off. Names the proxy as `http://host:port (origin)`, never its credentials.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChainedProxyError {
    #[error("cannot connect to the upstream proxy {proxy}: {reason}")]
    Unreachable { proxy: String, reason: String },
    #[error(
        "the upstream proxy {proxy} refused CONNECT {target}: {status}{reason}{agent}{hint}",
        reason = if .reason.is_empty() { String::new() } else { format!(" {}", .reason) },
        agent = .agent.as_deref().map(|a| format!(" ({a})")).unwrap_or_default(),
        hint = match (.status, .sent_credentials) {
            // tinyproxy answers a wrong password with 401.
            (401 | 407, true) => "; regtap sent Basic credentials: check them",
            (401 | 407, false) => "; regtap sent none: give them in --upstream-proxy-auth-file or the proxy URL",
            _ => "",
        }
    )]
    Refused {
        proxy: String,
        target: String,
        status: u16,
        reason: String,
        /// `Proxy-Agent: …`, else `Server: …`, when the answer had one.
        agent: Option<String>,
        sent_credentials: bool,
    },
    #[error("the upstream proxy {proxy} broke off CONNECT {target}: {reason}")]
    Broken {
        proxy: String,
        target: String,
        reason: String,
    },
}

/// [`connector`]'s connector.
#[derive(Clone)]
pub(crate) struct UpstreamConnector {
    tcp: HttpConnector,
    tls: TlsConnector,
    routes: Arc<Routes>,
    timeout: Duration,
}

impl tower_service::Service<Uri> for UpstreamConnector {
    type Response = MaybeHttpsStream<UpstreamStream>;
    type Error = BoxError;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let step = AtomicU8::new(STEP_DIRECT);
            match tokio::time::timeout(this.timeout, this.dial(&dst, &step)).await {
                Ok(connected) => connected,
                Err(_) => {
                    let proxy = this.routes.proxies.route(&dst).map(ChainedProxy::describe);
                    let waiting = proxy.map(|proxy| match step.load(Ordering::Acquire) {
                        STEP_PROXY_TCP => format!("connecting to the upstream proxy {proxy}"),
                        STEP_PROXY_ANSWER => {
                            format!("waiting for the upstream proxy {proxy} to answer CONNECT")
                        }
                        _ => format!(
                            "in the TLS handshake with the server, through the tunnel of the \
                             upstream proxy {proxy}"
                        ),
                    });
                    Err(Box::new(ConnectTimedOut {
                        after: this.timeout,
                        waiting,
                    }) as BoxError)
                }
            }
        })
    }
}

impl UpstreamConnector {
    async fn dial(
        &self,
        dst: &Uri,
        step: &AtomicU8,
    ) -> Result<MaybeHttpsStream<UpstreamStream>, BoxError> {
        let https = match dst.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            other => return Err(format!("unsupported scheme {other:?}").into()),
        };
        let host = dst.host().ok_or("no host in the URL")?;
        let port = dst.port_u16().unwrap_or(if https { 443 } else { 80 });
        let resolved = self.routes.resolve.lookup(dst);
        let mut tcp = self.tcp.clone();
        let stream = match self.routes.proxies.route(dst) {
            None => {
                // An IP-literal URI makes the TCP connector skip name resolution.
                let target = match resolved {
                    Some(addr) => Uri::builder()
                        .scheme("http")
                        .authority(addr.to_string())
                        .path_and_query("/")
                        .build()?,
                    None => dst.clone(),
                };
                UpstreamStream {
                    io: tcp.call(target).await?,
                    via: Via::Direct,
                }
            }
            Some(proxy) => {
                step.store(STEP_PROXY_TCP, Ordering::Release);
                let dial = proxy
                    .endpoint
                    .dial_uri()
                    .ok_or("bad upstream proxy address")?;
                let io = tcp
                    .call(dial)
                    .await
                    .map_err(|e| ChainedProxyError::Unreachable {
                        proxy: proxy.describe(),
                        reason: crate::error_chain(&e),
                    })?;
                if https {
                    step.store(STEP_PROXY_ANSWER, Ordering::Release);
                    let target =
                        resolved.map_or_else(|| format!("{host}:{port}"), |a| a.to_string());
                    UpstreamStream {
                        io: connect_tunnel(io, &target, proxy).await?,
                        via: Via::Tunnel,
                    }
                } else {
                    UpstreamStream {
                        io,
                        via: Via::AbsoluteForm,
                    }
                }
            }
        };
        if !https {
            return Ok(MaybeHttpsStream::Http(stream));
        }
        step.store(STEP_TARGET_TLS, Ordering::Release);
        let name = ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        )?;
        let tls = self.tls.connect(name, TokioIo::new(stream)).await?;
        Ok(MaybeHttpsStream::Https(TokioIo::new(tls)))
    }
}

/// The largest CONNECT answer head read from a chained proxy.
const MAX_CONNECT_ANSWER: usize = 16 * 1024;

/// Asks the chained proxy for a tunnel to `target` (`host:port`), with
/// `Proxy-Authorization` when there are credentials. Any 2xx opens it; the
/// TLS handshake with the server then goes through it, end to end.
async fn connect_tunnel(
    io: TokioIo<TcpStream>,
    target: &str,
    proxy: &ChainedProxy,
) -> Result<TokioIo<TcpStream>, ChainedProxyError> {
    let broken = |reason: String| ChainedProxyError::Broken {
        proxy: proxy.describe(),
        target: target.to_owned(),
        reason,
    };
    let mut tcp = io.into_inner();
    let credentials = proxy
        .endpoint
        .credentials()
        .and_then(ProxyCredentials::basic_authorization);
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n").into_bytes();
    if let Some(auth) = &credentials {
        request.extend_from_slice(b"Proxy-Authorization: ");
        request.extend_from_slice(auth.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    tcp.write_all(&request)
        .await
        .map_err(|e| broken(format!("cannot send the request: {e}")))?;
    let mut answer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = tcp
            .read(&mut chunk)
            .await
            .map_err(|e| broken(format!("cannot read its answer: {e}")))?;
        if n == 0 {
            return Err(broken(if answer.is_empty() {
                "it closed the connection without an answer".to_owned()
            } else {
                "it closed the connection in the middle of its answer".to_owned()
            }));
        }
        answer.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(&answer) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = parsed.code.unwrap_or(0);
                if (200..300).contains(&status) {
                    if head_len < answer.len() {
                        return Err(broken(format!(
                            "it sent bytes after its {status} answer, before the TLS handshake"
                        )));
                    }
                    return Ok(TokioIo::new(tcp));
                }
                let header = |name: &str| {
                    parsed
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| format!("{name}: {}", one_line(&String::from_utf8_lossy(h.value))))
                };
                return Err(ChainedProxyError::Refused {
                    proxy: proxy.describe(),
                    target: target.to_owned(),
                    status,
                    reason: one_line(parsed.reason.unwrap_or("")),
                    agent: header("Proxy-Agent").or_else(|| header("Server")),
                    sent_credentials: credentials.is_some(),
                });
            }
            Ok(httparse::Status::Partial) if answer.len() > MAX_CONNECT_ANSWER => {
                return Err(broken(format!(
                    "its answer head is longer than {MAX_CONNECT_ANSWER} bytes"
                )));
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(broken(format!("its answer is not HTTP ({e})"))),
        }
    }
}

/// Text from the chained proxy, fit for a one-line message.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// An upstream TCP connection, to the server or to the chained proxy.
pub(crate) struct UpstreamStream {
    io: TokioIo<TcpStream>,
    via: Via,
}

enum Via {
    Direct,
    /// A CONNECT tunnel through the chained proxy.
    Tunnel,
    /// Plain HTTP to the chained proxy, which forwards absolute-form requests.
    AbsoluteForm,
}

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        match self.via {
            // The peer is the server: its address goes in the flow.
            Via::Direct => self.io.connected(),
            // The peer is the chained proxy: no address is claimed for the server.
            Via::Tunnel => Connected::new(),
            // hyper then sends absolute-form request targets.
            Via::AbsoluteForm => Connected::new().proxy(true),
        }
    }
}

impl hyper::rt::Read for UpstreamStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpstreamStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// Whether the chained proxy `proxy` is this very regtap, listening on
/// `listen`: clients' `HTTPS_PROXY` often points at regtap, and regtap
/// reading the same environment would send every exchange to itself.
/// Names are resolved once, here; an unresolvable name is no loop.
pub(crate) async fn points_at(proxy: &ProxyEndpoint, listen: SocketAddr) -> bool {
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((proxy.host(), proxy.port())),
    )
    .await
    {
        Ok(Ok(addrs)) => addrs.collect(),
        _ => return false,
    };
    addrs.iter().any(|addr| {
        addr.port() == listen.port()
            && (addr.ip() == listen.ip()
                || (listen.ip().is_unspecified() && addr.ip().is_loopback()))
    })
}

/// `--upstream-insecure`: every certificate is accepted, signatures are still
/// checked so that the handshake itself stays sound.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_rule_with_ip_keeps_the_port() {
        let rule: ResolveRule = "Registry.Test:443=127.0.0.1".parse().unwrap();
        assert_eq!(rule.host, "registry.test");
        assert_eq!(rule.port, 443);
        assert_eq!(rule.addr, "127.0.0.1:443".parse().unwrap());
    }

    #[test]
    fn resolve_rule_with_socket_address_and_ipv6() {
        let rule: ResolveRule = "r.test:443=127.0.0.1:5000".parse().unwrap();
        assert_eq!(rule.addr, "127.0.0.1:5000".parse().unwrap());
        let rule: ResolveRule = "r.test:443=[::1]".parse().unwrap();
        assert_eq!(rule.addr, "[::1]:443".parse().unwrap());
    }

    #[test]
    fn resolve_rule_rejects_malformed_rules() {
        for bad in [
            "r.test=127.0.0.1",
            "r.test:x=127.0.0.1",
            ":443=127.0.0.1",
            "r.test:443=nohost",
        ] {
            assert!(bad.parse::<ResolveRule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn lookup_uses_the_scheme_default_port() {
        let map = ResolveMap::new(&["r.test:443=127.0.0.2".parse().unwrap()]);
        let addr = map.lookup(&"https://R.test/v2/".parse().unwrap());
        assert_eq!(addr, Some("127.0.0.2:443".parse().unwrap()));
        assert_eq!(map.lookup(&"http://r.test/v2/".parse().unwrap()), None);
    }
}
