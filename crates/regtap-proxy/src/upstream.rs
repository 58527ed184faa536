//! The proxy's side towards servers: which certificates it trusts and where it
//! connects (`--resolve`).

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

use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::ProxyError;
use crate::ca::pem_certificates;

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

/// A TCP connector that applies the `--resolve` rules, then connects like hyper's.
#[derive(Clone)]
pub(crate) struct ResolvingConnector {
    inner: HttpConnector,
    rules: Arc<ResolveMap>,
}

impl tower_service::Service<Uri> for ResolvingConnector {
    type Response = <HttpConnector as tower_service::Service<Uri>>::Response;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let target = match self.rules.lookup(&dst) {
            // An IP-literal URI makes the inner connector skip name resolution.
            Some(addr) => Uri::builder()
                .scheme(dst.scheme_str().unwrap_or("https"))
                .authority(addr.to_string())
                .path_and_query("/")
                .build()
                .unwrap_or(dst),
            None => dst,
        };
        let connecting = self.inner.call(target);
        Box::pin(async move { connecting.await.map_err(Into::into) })
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

/// The connector the proxy's client uses: `--resolve`, then TLS with `tls`;
/// plain `http://` passes through; the whole of it (TCP and TLS) bounded by
/// `timeout`. Upstream connections speak HTTP/1.1 only, as dockerd does to
/// registries: large blobs then stream without HTTP/2 flow-control windows,
/// and what the upstream sees matches what dockerd would send it.
pub(crate) fn connector(
    tls: ClientConfig,
    rules: Arc<ResolveMap>,
    timeout: Duration,
) -> UpstreamConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let inner = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(ResolvingConnector { inner: http, rules });
    UpstreamConnector { inner, timeout }
}

/// Connecting upstream (TCP and TLS) took longer than `--connect-timeout`.
#[derive(Debug, thiserror::Error)]
#[error("no connection within {}s (--connect-timeout)", .0.as_secs_f32())]
pub(crate) struct ConnectTimedOut(Duration);

/// [`connector`]'s connector: HTTPS over `--resolve`, with a time limit.
#[derive(Clone)]
pub(crate) struct UpstreamConnector {
    inner: HttpsConnector<ResolvingConnector>,
    timeout: Duration,
}

impl tower_service::Service<Uri> for UpstreamConnector {
    type Response = <HttpsConnector<ResolvingConnector> as tower_service::Service<Uri>>::Response;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.inner.call(dst);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected,
                Err(_) => Err(Box::new(ConnectTimedOut(timeout)) as Self::Error),
            }
        })
    }
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
