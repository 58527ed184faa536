//! The proxy regtap's own connections to registries and auth servers go
//! through, when there is one (a corporate proxy): `--upstream-proxy`, or
//! `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` of regtap's environment, read as
//! Go's net/http reads them (dockerd, skopeo, crane do the same).
//!
//! Nothing here does I/O but reading `--upstream-proxy-auth-file`; the
//! connector in `upstream.rs` uses the result. Credentials are kept apart
//! from everything that is displayed: [`ProxyEndpoint`]'s `Display`, the
//! capture header and every error name the proxy as `http://host:port`.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use http::{HeaderValue, Uri};

/// Why a chained-proxy setting is refused. Never contains a credential.
#[derive(Debug, thiserror::Error)]
pub enum ChainConfigError {
    #[error("{origin}: {reason}")]
    BadUrl { origin: ProxyOrigin, reason: String },
    #[error("--upstream-proxy-auth-file {path}: {reason}")]
    AuthFile { path: PathBuf, reason: String },
    #[error(
        "the upstream proxy URL ({origin}) already holds credentials; give them once, \
         in the URL or in --upstream-proxy-auth-file"
    )]
    CredentialsTwice { origin: ProxyOrigin },
    #[error(
        "--upstream-proxy-auth-file is given but there is no upstream proxy \
         (--upstream-proxy, or HTTPS_PROXY / HTTP_PROXY without --no-env-proxy)"
    )]
    CredentialsWithoutProxy,
}

/// Where a chained proxy was configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyOrigin {
    /// `--upstream-proxy`.
    Flag,
    /// An environment variable, by the name it was found under (`https_proxy`).
    Env(&'static str),
}

impl fmt::Display for ProxyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyOrigin::Flag => f.write_str("--upstream-proxy"),
            ProxyOrigin::Env(name) => f.write_str(name),
        }
    }
}

/// Basic credentials for the chained proxy. Their `Debug` shows neither part.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyCredentials {
    user: String,
    password: String,
}

impl fmt::Debug for ProxyCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProxyCredentials(***)")
    }
}

impl ProxyCredentials {
    /// `--upstream-proxy-auth-file`: `user:password` on the first line, as
    /// typed (not percent-encoded); nothing else in the file is read.
    pub fn read_file(path: &Path) -> Result<Self, ChainConfigError> {
        let bad = |reason: String| ChainConfigError::AuthFile {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let line = text.lines().next().unwrap_or("");
        let (user, password) = line
            .split_once(':')
            .ok_or_else(|| bad("expected user:password on its first line".to_owned()))?;
        if user.is_empty() {
            return Err(bad("the user name before ':' is empty".to_owned()));
        }
        Ok(ProxyCredentials {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    /// The `Proxy-Authorization` value, marked sensitive (hyper then keeps it
    /// out of its debug output and HPACK tables).
    pub(crate) fn basic_authorization(&self) -> Option<HeaderValue> {
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.user, self.password));
        let mut value = HeaderValue::from_str(&format!("Basic {token}")).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

/// A chained HTTP proxy: `http://[user:password@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyEndpoint {
    /// Lower case, IPv6 without brackets.
    host: String,
    port: u16,
    credentials: Option<ProxyCredentials>,
}

impl ProxyEndpoint {
    /// Parses a proxy URL as Go does: no scheme means `http://`, no port
    /// means 80. `https://` (TLS to the proxy) and SOCKS are not supported,
    /// and say so. Errors never repeat the URL (it may hold a password).
    pub fn parse(url: &str, origin: ProxyOrigin) -> Result<Self, ChainConfigError> {
        let bad = |reason: &str| ChainConfigError::BadUrl {
            origin: origin.clone(),
            reason: reason.to_owned(),
        };
        let url = url.trim();
        let rest = match url.split_once("://") {
            None => url,
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(bad(
                    "https:// proxies (TLS between regtap and the proxy) are not supported; \
                     use the proxy's http:// address (TLS to registries still goes \
                     end to end through its CONNECT tunnel)",
                ));
            }
            Some((scheme, _)) => {
                return Err(bad(&format!(
                    "{scheme}:// proxies are not supported, only http:// proxies \
                     (CONNECT for https, absolute URLs for http)"
                )));
            }
        };
        let authority = match rest.split_once('/') {
            Some((authority, "")) => authority,
            Some(_) => return Err(bad("a proxy URL has no path")),
            None => rest,
        };
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority),
        };
        let (host, port) = split_host_port(host_port).ok_or_else(|| {
            bad("expected http://[user:password@]host[:port], e.g. http://proxy.corp:3128")
        })?;
        let credentials = match userinfo {
            None => None,
            Some(userinfo) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8()
                        .map(|s| s.into_owned())
                        .map_err(|_| bad("the credentials are not UTF-8 once percent-decoded"))
                };
                let user = decode(user)?;
                if user.is_empty() {
                    return Err(bad("the user name before ':' is empty"));
                }
                Some(ProxyCredentials {
                    user,
                    password: decode(password)?,
                })
            }
        };
        Ok(ProxyEndpoint {
            host: host.to_ascii_lowercase(),
            port: port.unwrap_or(80),
            credentials,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    pub(crate) fn credentials(&self) -> Option<&ProxyCredentials> {
        self.credentials.as_ref()
    }

    /// The URI the TCP connector dials.
    pub(crate) fn dial_uri(&self) -> Option<Uri> {
        format!("http://{}/", self.authority()).parse().ok()
    }
}

/// `http://host:port`: never the credentials.
impl fmt::Display for ProxyEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority())
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`; the port may be absent.
fn split_host_port(text: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            Some(_) => return None,
            None => (text, None),
        }
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
        return None;
    }
    let port = match port {
        None => None,
        Some(port) => Some(port.parse::<u16>().ok().filter(|p| *p != 0)?),
    };
    Some((host, port))
}

/// A chained proxy and where it was configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedProxy {
    pub endpoint: ProxyEndpoint,
    pub origin: ProxyOrigin,
}

impl ChainedProxy {
    /// `http://proxy.corp:3128 (HTTPS_PROXY, Basic auth)`: for people, without secrets.
    pub fn describe(&self) -> String {
        let auth = if self.endpoint.has_credentials() {
            ", Basic auth"
        } else {
            ""
        };
        format!("{} ({}{auth})", self.endpoint, self.origin)
    }
}

/// What `regtap proxy` was told about the chained proxy.
#[derive(Debug, Clone, Default)]
pub struct ChainOptions {
    /// `--upstream-proxy`: replaces `HTTPS_PROXY` and `HTTP_PROXY`.
    pub proxy: Option<ProxyEndpoint>,
    /// `--upstream-proxy-auth-file`.
    pub credentials: Option<ProxyCredentials>,
    /// `--upstream-no-proxy`: replaces `NO_PROXY`.
    pub no_proxy: Option<String>,
    /// `--no-env-proxy`: the environment is not read at all.
    pub ignore_env: bool,
}

/// The chained proxy for each scheme of target, and the targets reached
/// directly. Empty (the default) means every connection is direct.
#[derive(Debug, Clone, Default)]
pub struct UpstreamProxies {
    /// For `https://` targets (CONNECT tunnel, TLS end to end).
    pub https: Option<ChainedProxy>,
    /// For `http://` targets (absolute-form requests).
    pub http: Option<ChainedProxy>,
    pub no_proxy: NoProxy,
}

impl UpstreamProxies {
    /// Combines the flags with the environment `env` (a lookup, so that tests
    /// need not touch the process's). As Go: `HTTPS_PROXY` before
    /// `https_proxy`, `HTTP_PROXY` before `http_proxy`, `NO_PROXY` before
    /// `no_proxy`; an empty value counts as unset. Unlike Go, `HTTP_PROXY` is
    /// never used for https targets (neither does curl).
    pub fn choose(
        options: ChainOptions,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ChainConfigError> {
        let env = |names: [&'static str; 2]| -> Option<(&'static str, String)> {
            if options.ignore_env {
                return None;
            }
            names.into_iter().find_map(|name| {
                env(name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (name, v))
            })
        };
        let from_env = |names| {
            env(names)
                .map(|(name, url)| {
                    ProxyEndpoint::parse(&url, ProxyOrigin::Env(name)).map(|endpoint| {
                        ChainedProxy {
                            endpoint,
                            origin: ProxyOrigin::Env(name),
                        }
                    })
                })
                .transpose()
        };
        let (mut https, mut http) = match options.proxy {
            Some(endpoint) => {
                let flag = ChainedProxy {
                    endpoint,
                    origin: ProxyOrigin::Flag,
                };
                (Some(flag.clone()), Some(flag))
            }
            None => (
                from_env(["HTTPS_PROXY", "https_proxy"])?,
                from_env(["HTTP_PROXY", "http_proxy"])?,
            ),
        };
        if let Some(credentials) = options.credentials {
            if https.is_none() && http.is_none() {
                return Err(ChainConfigError::CredentialsWithoutProxy);
            }
            for proxy in [&mut https, &mut http].into_iter().flatten() {
                if proxy.endpoint.has_credentials() {
                    return Err(ChainConfigError::CredentialsTwice {
                        origin: proxy.origin.clone(),
                    });
                }
                proxy.endpoint.credentials = Some(credentials.clone());
            }
        }
        let no_proxy = match options.no_proxy {
            Some(list) => list,
            None => env(["NO_PROXY", "no_proxy"])
                .map(|(_, list)| list)
                .unwrap_or_default(),
        };
        Ok(UpstreamProxies {
            https,
            http,
            no_proxy: no_proxy.parse().unwrap_or_default(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.https.is_none() && self.http.is_none()
    }

    /// The proxy a connection to `uri` goes through, or `None` for a direct
    /// one. Decided on the name the client asked for, never on a `--resolve`
    /// address: `localhost` and loopback IPs are always direct (the chained
    /// proxy could not reach this machine's loopback; Go does the same), then
    /// `NO_PROXY`.
    pub fn route(&self, uri: &Uri) -> Option<&ChainedProxy> {
        let (proxy, default_port) = match uri.scheme_str() {
            Some("http") => (self.http.as_ref()?, 80),
            _ => (self.https.as_ref()?, 443),
        };
        let host = uri
            .host()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(default_port);
        if host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
            return None;
        }
        if self.no_proxy.matches(&host, port) {
            return None;
        }
        Some(proxy)
    }

    /// The capture header's `upstream_proxy`: `null` when every connection
    /// is direct; otherwise the proxy per scheme (URL without credentials,
    /// whether Basic auth is sent, where it was configured) and `NO_PROXY`.
    pub fn header_setting(&self) -> Option<regtap_capture::UpstreamProxySettings> {
        if self.is_empty() {
            return None;
        }
        let one = |proxy: &Option<ChainedProxy>| {
            proxy.as_ref().map(|p| regtap_capture::ChainedProxySetting {
                basic_auth: p.endpoint.has_credentials(),
                from: p.origin.to_string(),
                url: p.endpoint.to_string(),
            })
        };
        Some(regtap_capture::UpstreamProxySettings {
            http: one(&self.http),
            https: one(&self.https),
            no_proxy: self.no_proxy.entries().to_vec(),
        })
    }
}

/// `NO_PROXY`: comma- (or space-) separated entries, matched as Go matches
/// them. `*` matches everything; `example.com` matches it and its
/// subdomains; `.example.com` (or `*.example.com`) only its subdomains; an
/// IP matches that IP literal; `10.0.0.0/8` any IP literal inside; any entry
/// may end in `:PORT` to match that port only. Names are never resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    raw: Vec<String>,
    rules: Vec<NoProxyRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NoProxyRule {
    All,
    Network {
        ip: IpAddr,
        prefix: u8,
    },
    Ip {
        ip: IpAddr,
        port: Option<u16>,
    },
    Domain {
        suffix: String,
        subdomains_only: bool,
        port: Option<u16>,
    },
}

impl FromStr for NoProxy {
    type Err = std::convert::Infallible;

    /// Entries that cannot be read (`:x`, an empty name) are left out, as Go does.
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let mut no_proxy = NoProxy::default();
        for entry in list.split([',', ' ', '\t']) {
            let entry = entry.trim().to_ascii_lowercase();
            if entry.is_empty() {
                continue;
            }
            if let Some(rule) = NoProxyRule::parse(&entry) {
                no_proxy.rules.push(rule);
                no_proxy.raw.push(entry);
            }
        }
        Ok(no_proxy)
    }
}

impl NoProxyRule {
    fn parse(entry: &str) -> Option<Self> {
        if entry == "*" {
            return Some(NoProxyRule::All);
        }
        if let Some((ip, prefix)) = entry.split_once('/') {
            let ip: IpAddr = ip.parse().ok()?;
            let prefix: u8 = prefix.parse().ok()?;
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            return (prefix <= bits).then_some(NoProxyRule::Network { ip, prefix });
        }
        if let Ok(ip) = entry.parse::<IpAddr>() {
            return Some(NoProxyRule::Ip { ip, port: None });
        }
        let (host, port) = split_host_port(entry)?;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(NoProxyRule::Ip { ip, port });
        }
        let host = host.strip_prefix('*').unwrap_or(host);
        let (suffix, subdomains_only) = match host.strip_prefix('.') {
            Some(rest) => (rest, true),
            None => (host, false),
        };
        (!suffix.is_empty()).then(|| NoProxyRule::Domain {
            suffix: suffix.to_owned(),
            subdomains_only,
            port,
        })
    }

    fn matches(&self, host: &str, ip: Option<IpAddr>, port: u16) -> bool {
        let port_ok = |wanted: &Option<u16>| wanted.is_none_or(|p| p == port);
        match self {
            NoProxyRule::All => true,
            NoProxyRule::Network { ip: net, prefix } => {
                ip.is_some_and(|ip| in_network(ip, *net, *prefix))
            }
            NoProxyRule::Ip {
                ip: wanted,
                port: p,
            } => ip == Some(*wanted) && port_ok(p),
            NoProxyRule::Domain {
                suffix,
                subdomains_only,
                port: p,
            } => {
                let sub = host
                    .strip_suffix(suffix.as_str())
                    .is_some_and(|rest| rest.ends_with('.'));
                (sub || (!subdomains_only && host == suffix)) && port_ok(p)
            }
        }
    }
}

fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

impl NoProxy {
    /// Whether a connection to `host` (lower case, no brackets) and `port`
    /// is direct.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let ip = host.parse::<IpAddr>().ok();
        self.rules.iter().any(|rule| rule.matches(host, ip, port))
    }

    /// The entries in use, as given (lower case).
    pub fn entries(&self) -> &[String] {
        &self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> Result<ProxyEndpoint, ChainConfigError> {
        ProxyEndpoint::parse(url, ProxyOrigin::Flag)
    }

    #[test]
    fn proxy_urls_parse_as_go_reads_them() {
        let p = endpoint("http://Proxy.Corp:3128").unwrap();
        assert_eq!(
            (p.host(), p.port(), p.has_credentials()),
            ("proxy.corp", 3128, false)
        );
        assert_eq!(endpoint("proxy.corp:3128").unwrap(), p);
        assert_eq!(endpoint("http://proxy.corp:3128/").unwrap(), p);
        assert_eq!(endpoint("http://proxy.corp").unwrap().port(), 80);
        let v6 = endpoint("http://[::1]:3128").unwrap();
        assert_eq!(v6.authority(), "[::1]:3128");
        assert_eq!(v6.to_string(), "http://[::1]:3128");
    }

    #[test]
    fn credentials_are_percent_decoded_and_never_displayed() {
        let p = endpoint("http://dom%5Cuser:p%40ss%3Aw0rd@proxy.corp:3128").unwrap();
        let creds = p.credentials().unwrap();
        assert_eq!(
            (creds.user.as_str(), creds.password.as_str()),
            ("dom\\user", "p@ss:w0rd")
        );
        assert_eq!(p.to_string(), "http://proxy.corp:3128");
        let debug = format!("{p:?}");
        assert!(!debug.contains("p@ss") && !debug.contains("dom"), "{debug}");
        // `Basic base64(user:password)`, decoded user and password.
        let value = creds.basic_authorization().unwrap();
        assert!(value.is_sensitive());
        assert_eq!(value.to_str().unwrap(), "Basic ZG9tXHVzZXI6cEBzczp3MHJk");
        // An '@' in the password that was not encoded: the last '@' ends the userinfo.
        let raw = endpoint("http://u:a@b@proxy.corp:1").unwrap();
        assert_eq!(raw.credentials().unwrap().password, "a@b");
    }

    #[test]
    fn unsupported_and_malformed_urls_are_refused_without_echoing_secrets() {
        for (url, wanted) in [
            ("https://u:s3cret@proxy.corp:3128", "https:// proxies"),
            (
                "socks5://u:s3cret@proxy.corp:1080",
                "socks5:// proxies are not supported",
            ),
            ("http://u:s3cret@proxy.corp:99999", "expected http://"),
            ("http://u:s3cret@proxy.corp:3128/path", "no path"),
            ("http://:s3cret@proxy.corp:3128", "user name"),
            ("http://u:s3cret@", "expected http://"),
        ] {
            let err = ProxyEndpoint::parse(url, ProxyOrigin::Env("HTTPS_PROXY"))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("HTTPS_PROXY: ") && err.contains(wanted),
                "{url}: {err}"
            );
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn the_environment_is_read_per_scheme_upper_case_first() {
        let proxies = UpstreamProxies::choose(
            ChainOptions::default(),
            env(&[
                ("HTTPS_PROXY", "http://upper:3128"),
                ("https_proxy", "http://lower:3128"),
                ("http_proxy", "http://plain:8080"),
            ]),
        )
        .unwrap();
        let https = proxies.route(&uri("https://registry.test/v2/")).unwrap();
        assert_eq!(https.endpoint.host(), "upper");
        assert_eq!(https.origin, ProxyOrigin::Env("HTTPS_PROXY"));
        let http = proxies.route(&uri("http://registry.test/v2/")).unwrap();
        assert_eq!(http.describe(), "http://plain:8080 (http_proxy)");

        // Only HTTP_PROXY: https targets stay direct (as curl; Go would use it).
        let only_http =
            UpstreamProxies::choose(ChainOptions::default(), env(&[("HTTP_PROXY", "p:1")]))
                .unwrap();
        assert!(only_http.route(&uri("https://registry.test/")).is_none());
        // An empty value is unset.
        let empty =
            UpstreamProxies::choose(ChainOptions::default(), env(&[("HTTPS_PROXY", " ")])).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.header_setting(), None);
    }

    #[test]
    fn the_flag_replaces_the_environment_and_no_env_proxy_ignores_it() {
        let vars = env(&[
            ("HTTPS_PROXY", "http://env-proxy:3128"),
            ("NO_PROXY", "internal.test"),
        ]);
        let flagged = UpstreamProxies::choose(
            ChainOptions {
                proxy: Some(endpoint("http://flag-proxy:8080").unwrap()),
                ..ChainOptions::default()
            },
            &vars,
        )
        .unwrap();
        let both = [
            flagged.route(&uri("https://r.test/")).unwrap(),
            flagged.route(&uri("http://r.test/")).unwrap(),
        ];
        for proxy in both {
            assert_eq!(
                proxy.describe(),
                "http://flag-proxy:8080 (--upstream-proxy)"
            );
        }
        // NO_PROXY of the environment still applies to the flag's proxy…
        assert!(flagged.route(&uri("https://internal.test/")).is_none());
        // …unless the environment is ignored.
        let ignored = UpstreamProxies::choose(
            ChainOptions {
                ignore_env: true,
                ..ChainOptions::default()
            },
            &vars,
        )
        .unwrap();
        assert!(ignored.is_empty());
        let replaced = UpstreamProxies::choose(
            ChainOptions {
                no_proxy: Some("other.test".to_owned()),
                ..ChainOptions::default()
            },
            &vars,
        )
        .unwrap();
        assert!(replaced.route(&uri("https://internal.test/")).is_some());
        assert!(replaced.route(&uri("https://other.test/")).is_none());
    }

    #[test]
    fn credentials_from_a_file_go_to_the_proxies_in_use_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth");
        std::fs::write(&file, "alice:pa:ss\n# ignored\n").unwrap();
        let credentials = ProxyCredentials::read_file(&file).unwrap();
        assert_eq!(credentials.password, "pa:ss");
        let options = |proxy: &str| ChainOptions {
            proxy: Some(endpoint(proxy).unwrap()),
            credentials: Some(credentials.clone()),
            ..ChainOptions::default()
        };
        let proxies = UpstreamProxies::choose(options("http://p:1"), env(&[])).unwrap();
        assert!(proxies.https.as_ref().unwrap().endpoint.has_credentials());
        let setting = serde_json::to_string(&proxies.header_setting()).unwrap();
        assert!(setting.contains(r#""basic_auth":true"#), "{setting}");
        assert!(
            !setting.contains("pa:ss") && !setting.contains("alice"),
            "{setting}"
        );
        let twice = UpstreamProxies::choose(options("http://u:p@p:1"), env(&[])).unwrap_err();
        assert!(matches!(twice, ChainConfigError::CredentialsTwice { .. }));
        let without = UpstreamProxies::choose(
            ChainOptions {
                credentials: Some(credentials),
                ..ChainOptions::default()
            },
            env(&[]),
        )
        .unwrap_err();
        assert!(matches!(without, ChainConfigError::CredentialsWithoutProxy));
        std::fs::write(&file, "no colon").unwrap();
        let bad = ProxyCredentials::read_file(&file).unwrap_err().to_string();
        assert!(bad.contains("user:password"), "{bad}");
    }

    #[test]
    fn loopback_targets_are_always_direct() {
        let proxies = UpstreamProxies::choose(
            ChainOptions {
                proxy: Some(endpoint("http://p:1").unwrap()),
                ..ChainOptions::default()
            },
            env(&[]),
        )
        .unwrap();
        for direct in [
            "https://localhost:5000/",
            "https://127.0.0.5/",
            "http://[::1]:80/",
        ] {
            assert!(proxies.route(&uri(direct)).is_none(), "{direct}");
        }
        assert!(proxies.route(&uri("https://10.0.0.1/")).is_some());
    }

    #[test]
    fn no_proxy_matches_like_go() {
        let no_proxy: NoProxy =
            "Internal.Corp, .sub.test,*.star.test, 10.0.0.0/8,192.168.1.1, r.test:5000, [2001:db8::1]:443, :x"
                .parse()
                .unwrap();
        let cases = [
            ("internal.corp", 443, true),
            ("a.internal.corp", 443, true),
            ("xinternal.corp", 443, false),
            ("sub.test", 443, false),
            ("a.sub.test", 443, true),
            ("star.test", 443, false),
            ("a.star.test", 443, true),
            ("10.20.30.40", 443, true),
            ("11.0.0.1", 443, false),
            ("192.168.1.1", 8443, true),
            ("r.test", 5000, true),
            ("r.test", 443, false),
            ("2001:db8::1", 443, true),
            ("2001:db8::1", 80, false),
        ];
        for (host, port, direct) in cases {
            assert_eq!(no_proxy.matches(host, port), direct, "{host}:{port}");
        }
        assert_eq!(no_proxy.entries().len(), 7, "{:?}", no_proxy.entries());
        let all: NoProxy = "*".parse().unwrap();
        assert!(all.matches("anything.test", 1));
    }
}
