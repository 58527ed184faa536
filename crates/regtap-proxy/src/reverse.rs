//! Reverse mode: regtap listens as the registry itself. Clients address it
//! by the names it serves (`--reverse [NAME=]URL`); each request is routed by
//! its `Host` (or HTTP/2 `:authority`) to that name's upstream and then takes
//! the same path as a forward-mode exchange (recorder, taps, timeouts).
//!
//! What differs between the client's and the upstream's view is recorded per
//! flow ([`regtap_capture::ReverseExchange`]): the `Host` regtap forwards, and, with
//! `--rewrite-urls`, absolute `Location`s and Bearer realms that name an
//! upstream, rewritten to the origin regtap serves it under.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use http::header::{LOCATION, WWW_AUTHENTICATE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Uri};
use regtap_capture::{Direction, Rewrite};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;

use crate::ProxyError;

/// One `--reverse [NAME=]URL`: clients asking for `name` are served by `upstream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReverseRoute {
    /// The host name clients use (lower case, no port).
    pub name: String,
    /// `scheme://host[:port]` of the upstream, without a path.
    pub upstream: Uri,
}

impl FromStr for ReverseRoute {
    type Err = String;

    /// `https://registry.internal:5000` (served under `registry.internal`) or
    /// `mirror.example=https://10.0.0.5:5000`.
    fn from_str(value: &str) -> Result<Self, String> {
        let (name, url) = match value.split_once('=') {
            Some((name, url)) if !name.contains("://") => (Some(name), url),
            _ => (None, value),
        };
        let upstream: Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let scheme = upstream.scheme_str().unwrap_or_default();
        if scheme != "https" && scheme != "http" {
            return Err(format!(
                "{url:?}: the upstream must be an http:// or https:// URL"
            ));
        }
        let Some(authority) = upstream.authority() else {
            return Err(format!("{url:?} names no host"));
        };
        if !matches!(
            upstream.path_and_query().map(PathAndQuery::as_str),
            None | Some("/")
        ) {
            return Err(format!(
                "{url:?}: an upstream is an origin (scheme://host[:port]); regtap does not map paths"
            ));
        }
        if authority.as_str().contains('@') {
            return Err(format!("{url:?}: credentials in the URL are not supported"));
        }
        let name = name.unwrap_or(authority.host());
        let name = name.trim_start_matches('[').trim_end_matches(']');
        if name.is_empty() || name.contains([':', '/', ' ']) && name.parse::<IpAddr>().is_err() {
            return Err(format!(
                "{name:?} is not a host name to serve (NAME=URL takes a name without port)"
            ));
        }
        let upstream = Uri::builder()
            .scheme(scheme)
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| format!("{url:?}: {e}"))?;
        Ok(ReverseRoute {
            name: name.to_ascii_lowercase(),
            upstream,
        })
    }
}

impl fmt::Display for ReverseRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, origin_of(&self.upstream))
    }
}

/// How regtap speaks to clients in reverse mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReverseTls {
    /// A certificate from regtap's CA for each name served (by SNI).
    RegtapCa,
    /// The operator's certificate chain and key (PEM), for every name.
    Provided { cert: PathBuf, key: PathBuf },
    /// No TLS: clients speak plain HTTP to regtap (`--reverse-plain-http`).
    PlainHttp,
}

/// Reverse mode's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReverseConfig {
    pub routes: Vec<ReverseRoute>,
    pub tls: ReverseTls,
    /// Rewrite absolute `Location`s and Bearer realms that name an upstream
    /// to the origin regtap serves it under (each rewrite is recorded).
    pub rewrite_urls: bool,
}

/// One `--allow-client` network: `10.0.0.0/8`, `192.168.1.7`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientNet {
    addr: IpAddr,
    prefix: u8,
}

impl ClientNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_matches(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_matches(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_matches(net: &[u8], ip: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if net[..full] != ip[..full] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        net[full] & mask == ip[full] & mask
    }
}

impl FromStr for ClientNet {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let (addr, prefix) = value
            .split_once('/')
            .map_or((value, None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{value:?} is not an address or network (CIDR: 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{value:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(ClientNet { addr, prefix })
    }
}

impl fmt::Display for ClientNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `scheme://host[:port]` of a URI, with its port only when the URI had one.
fn origin_of(uri: &Uri) -> String {
    format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map_or("", Authority::as_str)
    )
}

/// An origin compared the way browsers do: scheme, lower-case host, port
/// (the scheme's default when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
struct OriginKey {
    scheme: String,
    host: String,
    port: u16,
}

impl OriginKey {
    fn of(uri: &Uri) -> Option<Self> {
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let port = uri.port_u16().or(match scheme.as_str() {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        })?;
        Some(OriginKey {
            host: uri.host()?.to_ascii_lowercase(),
            scheme,
            port,
        })
    }
}

/// A route as it runs: the name, where it goes, and the origin clients use.
#[derive(Debug, Clone)]
pub(crate) struct ServedRoute {
    pub name: String,
    pub upstream_scheme: Scheme,
    pub upstream_authority: Authority,
    /// `https://registry.internal:5000`: the name with regtap's scheme and port.
    pub served_as: String,
}

impl ServedRoute {
    /// The upstream URI for a request that asked for `path`.
    pub(crate) fn upstream_uri(&self, path: Option<&PathAndQuery>) -> Result<Uri, String> {
        Uri::builder()
            .scheme(self.upstream_scheme.clone())
            .authority(self.upstream_authority.clone())
            .path_and_query(path.map_or("/", PathAndQuery::as_str))
            .build()
            .map_err(|e| format!("bad request target: {e}"))
    }
}

/// Reverse mode as the front door runs it.
pub(crate) struct ReverseFront {
    pub routes: Vec<ServedRoute>,
    pub tls: ClientTls,
    /// `Some` with `--rewrite-urls`.
    pub rewriter: Option<Arc<UrlRewriter>>,
}

pub(crate) enum ClientTls {
    /// regtap's CA signs a certificate for the name the client asked for.
    Leaves,
    /// The operator's certificate, for every name.
    Provided(Arc<ServerConfig>),
    Plain,
}

impl ClientTls {
    /// Loads and checks `--cert`/`--key` when given.
    pub(crate) fn new(
        config: &ReverseConfig,
        provider: &Arc<CryptoProvider>,
        key_log: Option<Arc<dyn rustls::KeyLog>>,
    ) -> Result<Self, ProxyError> {
        Ok(match &config.tls {
            ReverseTls::RegtapCa => ClientTls::Leaves,
            ReverseTls::Provided { cert, key } => {
                ClientTls::Provided(provided_server_config(cert, key, provider, key_log)?)
            }
            ReverseTls::PlainHttp => ClientTls::Plain,
        })
    }
}

impl ReverseFront {
    /// The routes served at `listen` (its port is in every served origin).
    pub(crate) fn new(
        config: &ReverseConfig,
        tls: ClientTls,
        listen: SocketAddr,
    ) -> Result<Self, ProxyError> {
        let scheme = match tls {
            ClientTls::Plain => "http",
            _ => "https",
        };
        let default_port = if scheme == "https" { 443 } else { 80 };
        let port = match listen.port() {
            p if p == default_port => String::new(),
            p => format!(":{p}"),
        };
        let mut routes: Vec<ServedRoute> = Vec::new();
        for route in &config.routes {
            if routes.iter().any(|r| r.name == route.name) {
                return Err(ProxyError::Reverse(format!(
                    "--reverse names {} twice; each name serves one upstream",
                    route.name
                )));
            }
            let (Some(upstream_scheme), Some(upstream_authority)) = (
                route.upstream.scheme().cloned(),
                route.upstream.authority().cloned(),
            ) else {
                return Err(ProxyError::Reverse(format!(
                    "--reverse {route}: the upstream must be scheme://host[:port]"
                )));
            };
            let host = if route.name.parse::<std::net::Ipv6Addr>().is_ok() {
                format!("[{}]", route.name)
            } else {
                route.name.clone()
            };
            routes.push(ServedRoute {
                name: route.name.clone(),
                upstream_scheme,
                upstream_authority,
                served_as: format!("{scheme}://{host}{port}"),
            });
        }
        if routes.is_empty() {
            return Err(ProxyError::Reverse(
                "reverse mode needs at least one --reverse upstream".to_owned(),
            ));
        }
        let rewriter = config
            .rewrite_urls
            .then(|| Arc::new(UrlRewriter::new(&routes)));
        Ok(ReverseFront {
            routes,
            tls,
            rewriter,
        })
    }

    /// The route for a `Host` value (`name` or `name:port`; the port is the
    /// listener's, whatever the client wrote).
    pub(crate) fn route(&self, host: &str) -> Option<&ServedRoute> {
        let name = host_without_port(host);
        self.routes
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }

    /// The names served, for messages: `a.test, b.test`.
    pub(crate) fn names(&self) -> String {
        self.routes
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The operator's `--cert`/`--key`, checked to belong together.
fn provided_server_config(
    cert: &Path,
    key: &Path,
    provider: &Arc<CryptoProvider>,
    key_log: Option<Arc<dyn rustls::KeyLog>>,
) -> Result<Arc<ServerConfig>, ProxyError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |path: &Path, reason: String| ProxyError::ReverseCert {
        path: path.to_owned(),
        reason,
    };
    let cert_pem = std::fs::read(cert).map_err(|e| bad(cert, e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(bad(cert, "holds no PEM certificate".to_owned()));
    }
    let key_pem = std::fs::read(key).map_err(|e| bad(key, e.to_string()))?;
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| bad(key, format!("not a PEM private key: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxyError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => bad(
                key,
                format!("is not the key of the certificate in {}", cert.display()),
            ),
            other => bad(cert, other.to_string()),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if let Some(key_log) = key_log {
        config.key_log = key_log;
    }
    Ok(Arc::new(config))
}

/// Rewrites URLs naming an upstream to the origin regtap serves it under.
pub(crate) struct UrlRewriter {
    origins: Vec<(OriginKey, String)>,
}

impl UrlRewriter {
    fn new(routes: &[ServedRoute]) -> Self {
        let origins = routes
            .iter()
            .filter_map(|r| {
                let upstream = Uri::builder()
                    .scheme(r.upstream_scheme.clone())
                    .authority(r.upstream_authority.clone())
                    .path_and_query("/")
                    .build()
                    .ok()?;
                let served: Uri = r.served_as.parse().ok()?;
                let key = OriginKey::of(&upstream)?;
                // Served under its own origin: nothing to rewrite.
                (OriginKey::of(&served).as_ref() != Some(&key)).then(|| (key, r.served_as.clone()))
            })
            .collect();
        UrlRewriter { origins }
    }

    /// `https://upstream:5000/v2/…` → `https://served:8443/v2/…`; `None`
    /// when `url` is relative or names no upstream.
    fn rewrite_url(&self, url: &str) -> Option<String> {
        let (scheme, rest) = url.split_once("://")?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let origin: Uri = format!("{scheme}://{}", &rest[..end]).parse().ok()?;
        let key = OriginKey::of(&origin)?;
        let (_, served) = self.origins.iter().find(|(k, _)| *k == key)?;
        Some(format!("{served}{}", &rest[end..]))
    }

    /// The `realm="…"` of a challenge, rewritten when it names an upstream.
    fn rewrite_challenge(&self, challenge: &str) -> Option<String> {
        let lower = challenge.to_ascii_lowercase();
        let mut search = 0;
        while let Some(found) = lower[search..].find("realm=\"") {
            let start = search + found + "realm=\"".len();
            let end = start + challenge[start..].find('"')?;
            // `realm` as a parameter name, not the tail of another one.
            let boundary = start - "realm=\"".len();
            let standalone =
                boundary == 0 || matches!(lower.as_bytes()[boundary - 1], b' ' | b',' | b'\t');
            if standalone && let Some(url) = self.rewrite_url(&challenge[start..end]) {
                return Some(format!("{}{url}{}", &challenge[..start], &challenge[end..]));
            }
            search = end;
        }
        None
    }

    /// Rewrites the response's `Location` and `WWW-Authenticate` values in
    /// place and returns what changed.
    pub(crate) fn rewrite_response(&self, headers: &mut HeaderMap) -> Vec<Rewrite> {
        let mut rewrites = Vec::new();
        for (name, rewrite) in [
            (
                LOCATION,
                Self::rewrite_url as fn(&Self, &str) -> Option<String>,
            ),
            (WWW_AUTHENTICATE, Self::rewrite_challenge),
        ] {
            let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
            let mut changed = false;
            let new_values: Vec<HeaderValue> = values
                .into_iter()
                .map(|value| {
                    let Some(text) = value.to_str().ok() else {
                        return value;
                    };
                    match rewrite(self, text)
                        .and_then(|new| HeaderValue::from_str(&new).ok().map(|v| (new, v)))
                    {
                        Some((new, new_value)) => {
                            rewrites.push(Rewrite {
                                direction: Direction::Response,
                                header: name.as_str().to_owned(),
                                original: text.to_owned(),
                                rewritten: new,
                            });
                            changed = true;
                            new_value
                        }
                        None => value,
                    }
                })
                .collect();
            if changed {
                headers.remove(&name);
                for value in new_values {
                    headers.append(&name, value);
                }
            }
        }
        rewrites
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn front(routes: &[&str], listen: &str, tls: ReverseTls) -> ReverseFront {
        let config = ReverseConfig {
            routes: routes.iter().map(|r| r.parse().unwrap()).collect(),
            tls,
            rewrite_urls: true,
        };
        let tls = ClientTls::new(&config, &crate::crypto_provider(), None).unwrap();
        ReverseFront::new(&config, tls, listen.parse().unwrap()).unwrap()
    }

    #[test]
    fn routes_parse_with_and_without_a_name() {
        let r: ReverseRoute = "https://Registry.Internal:5000".parse().unwrap();
        assert_eq!(r.name, "registry.internal");
        assert_eq!(
            r.to_string(),
            "registry.internal=https://Registry.Internal:5000"
        );
        let r: ReverseRoute = "mirror.test=http://10.0.0.5:5000/".parse().unwrap();
        assert_eq!(r.name, "mirror.test");
        assert_eq!(r.upstream.to_string(), "http://10.0.0.5:5000/");
        for bad in [
            "registry.test:5000",
            "ftp://r.test",
            "https://r.test/v2/",
            "a:1=https://r.test",
            "https://u:p@r.test",
        ] {
            assert!(bad.parse::<ReverseRoute>().is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn client_networks_match_by_prefix() {
        let net: ClientNet = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one: ClientNet = "192.168.1.7".parse().unwrap();
        assert_eq!(one.to_string(), "192.168.1.7/32");
        assert!(one.contains("192.168.1.7".parse().unwrap()));
        assert!(!one.contains("192.168.1.6".parse().unwrap()));
        let odd: ClientNet = "172.16.0.0/12".parse().unwrap();
        assert!(odd.contains("172.31.255.255".parse().unwrap()));
        assert!(!odd.contains("172.32.0.0".parse().unwrap()));
        let v6: ClientNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert!(
            "0.0.0.0/0"
                .parse::<ClientNet>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        for bad in ["10.0.0.0/33", "host.test", "10.0.0.0/x"] {
            assert!(bad.parse::<ClientNet>().is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn served_origins_use_the_listen_port_and_the_routes_match_by_name() {
        let f = front(
            &["https://r.test:5000", "auth.lab=https://10.0.0.9:5001"],
            "127.0.0.1:8443",
            ReverseTls::RegtapCa,
        );
        assert_eq!(f.routes[0].served_as, "https://r.test:8443");
        assert_eq!(f.routes[1].served_as, "https://auth.lab:8443");
        assert_eq!(f.route("R.test:8443").unwrap().name, "r.test");
        assert_eq!(
            f.route("auth.lab").unwrap().upstream_authority,
            "10.0.0.9:5001"
        );
        assert!(f.route("other.test:8443").is_none());
        let plain = front(&["http://r.test:5000"], "0.0.0.0:80", ReverseTls::PlainHttp);
        assert_eq!(plain.routes[0].served_as, "http://r.test");
    }

    #[test]
    fn locations_and_realms_naming_an_upstream_are_rewritten_and_reported() {
        let f = front(
            &["https://r.test:5000", "https://auth.test:5001"],
            "127.0.0.1:8443",
            ReverseTls::RegtapCa,
        );
        let rewriter = f.rewriter.unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            LOCATION,
            HeaderValue::from_static("https://R.test:5000/v2/a/blobs/uploads/u?_state=x"),
        );
        headers.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(
                r#"Bearer realm="https://auth.test:5001/token",service="r.test",scope="repository:a:pull""#,
            ),
        );
        let rewrites = rewriter.rewrite_response(&mut headers);
        assert_eq!(
            headers[LOCATION],
            "https://r.test:8443/v2/a/blobs/uploads/u?_state=x"
        );
        assert_eq!(
            headers[WWW_AUTHENTICATE],
            r#"Bearer realm="https://auth.test:8443/token",service="r.test",scope="repository:a:pull""#
        );
        assert_eq!(rewrites.len(), 2);
        assert_eq!(rewrites[0].header, "location");
        assert_eq!(
            rewrites[0].original,
            "https://R.test:5000/v2/a/blobs/uploads/u?_state=x"
        );
        assert_eq!(rewrites[1].header, "www-authenticate");
        assert!(rewrites[1].original.contains("auth.test:5001"));

        // Relative URLs, other hosts and other ports stay as they are.
        for untouched in [
            "/v2/a/blobs/uploads/u",
            "https://storage.test/blob?sig=1",
            "https://r.test:5001/v2/",
            "http://r.test:5000/v2/",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(LOCATION, HeaderValue::from_str(untouched).unwrap());
            assert!(
                rewriter.rewrite_response(&mut headers).is_empty(),
                "{untouched}"
            );
            assert_eq!(headers[LOCATION], untouched);
        }
        let mut basic = HeaderMap::new();
        basic.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="https://r.test:5000/""#),
        );
        assert_eq!(rewriter.rewrite_response(&mut basic).len(), 1);
    }

    #[test]
    fn an_upstream_served_under_its_own_origin_is_never_rewritten() {
        let f = front(
            &["https://r.test:8443"],
            "127.0.0.1:8443",
            ReverseTls::RegtapCa,
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            LOCATION,
            HeaderValue::from_static("https://r.test:8443/v2/x"),
        );
        assert!(
            f.rewriter
                .unwrap()
                .rewrite_response(&mut headers)
                .is_empty()
        );
    }
}
