//! Chaining through an upstream (corporate) proxy: a client, regtap, a
//! CONNECT proxy written here in a few lines of tokio, and a real TLS
//! upstream. What the chained proxy saw is checked as well as the capture.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use common::{start_proxy, start_upstream, upstream_pki};
use regtap_capture::ErrorStage;
use regtap_proxy::{ChainOptions, ProxyEndpoint, ProxyError, ProxyOrigin, UpstreamProxies};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const USER: &str = "alice";
const PASSWORD: &str = "p@ss:w0rd-7261";
/// [`PASSWORD`] as it is written in a proxy URL.
const PASSWORD_IN_URL: &str = "p%40ss%3Aw0rd-7261";

/// How the test proxy behaves.
#[derive(Clone, Copy)]
enum Policy {
    Open,
    /// 407 unless `Proxy-Authorization` carries [`USER`]:[`PASSWORD`].
    Basic,
    /// 403 to every request.
    Refuse,
    /// Reads the request and never answers.
    Silent,
}

/// A minimal HTTP proxy: CONNECT tunnels and absolute-form requests, with
/// `names` resolved by the proxy (it is the one doing DNS). Every request
/// head it receives is kept.
struct ChainedProxy {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl ChainedProxy {
    async fn start(policy: Policy, names: Vec<(String, SocketAddr)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&heads);
        let names = Arc::new(names);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                let names = Arc::clone(&names);
                tokio::spawn(serve(client, policy, seen, names));
            }
        });
        ChainedProxy { addr, heads }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

async fn serve(
    mut client: TcpStream,
    policy: Policy,
    seen: Arc<Mutex<Vec<String>>>,
    names: Arc<Vec<(String, SocketAddr)>>,
) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        if client.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    seen.lock().unwrap().push(head.clone());
    let expected = format!(
        "proxy-authorization: basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    )
    .to_ascii_lowercase();
    let refusal = match policy {
        Policy::Silent => {
            std::future::pending::<()>().await;
            None
        }
        Policy::Refuse => Some("403 Forbidden"),
        Policy::Basic if !head.to_ascii_lowercase().contains(&expected) => {
            Some("407 Proxy Authentication Required")
        }
        _ => None,
    };
    if let Some(status) = refusal {
        let answer = format!(
            "HTTP/1.1 {status}\r\nProxy-Agent: test-proxy/1.0\r\n\
             Proxy-Authenticate: Basic realm=\"corp\"\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = client.write_all(answer.as_bytes()).await;
        return;
    }
    let target = head.split(' ').nth(1).unwrap_or("").to_owned();
    let connect = head.starts_with("CONNECT ");
    let authority = if connect {
        target.clone()
    } else {
        // GET http://plain.test:PORT/path
        target
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or("").to_owned())
            .unwrap_or_default()
    };
    let (host, port) = authority.rsplit_once(':').unwrap();
    let addr = match names.iter().find(|(name, _)| name == host) {
        Some((_, addr)) => *addr,
        None => format!("{host}:{port}").parse().unwrap(),
    };
    let Ok(mut server) = TcpStream::connect(addr).await else {
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    };
    if connect {
        let _ = client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await;
    } else {
        // The server accepts the absolute form as it is.
        let _ = server.write_all(head.as_bytes()).await;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

fn through(url: &str, no_proxy: &str) -> UpstreamProxies {
    UpstreamProxies::choose(
        ChainOptions {
            proxy: Some(ProxyEndpoint::parse(url, ProxyOrigin::Flag).unwrap()),
            no_proxy: Some(no_proxy.to_owned()),
            ..ChainOptions::default()
        },
        |_| None,
    )
    .unwrap()
}

fn with_credentials(proxy_url: &str) -> String {
    proxy_url.replace("http://", &format!("http://{USER}:{PASSWORD_IN_URL}@"))
}

#[tokio::test]
async fn https_through_a_proxy_with_basic_auth_is_recorded_without_its_credentials() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = upstream_pki(pki_dir.path());
    let upstream = start_upstream(Some(Arc::clone(&pki.server_config))).await;
    let port = upstream.addr.port();
    let chained = ChainedProxy::start(Policy::Basic, Vec::new()).await;
    let bodies = pki_dir.path().join("bodies");
    let keylog = pki_dir.path().join("keys.log");
    let mut harness = start_proxy(|c| {
        c.upstream_ca.push(pki.ca_pem.clone());
        c.resolve
            .push(format!("registry.test:{port}=127.0.0.1").parse().unwrap());
        c.upstream_proxies = through(&with_credentials(&chained.url()), "");
        c.store_bodies = Some(bodies.clone());
        c.keylog = Some(keylog.clone());
    })
    .await;
    let url = format!("https://registry.test:{port}/v2/_catalog");
    let response = harness.client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"repositories":["library/alpine"]}"#
    );
    harness.finished(1).await;
    let capture_path = harness.capture.clone();
    let (capture, _dir) = harness.stop().await;

    // The proxy was asked for the --resolve address, with the credentials.
    let heads = chained.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(
        heads[0].starts_with(&format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n")),
        "{heads:?}"
    );
    let flow = &capture.flows[0];
    assert_eq!(flow.error, None);
    assert_eq!(flow.request.url, url);
    assert_eq!(flow.response.as_ref().unwrap().status, 200);
    assert_eq!(flow.upstream_proxy.as_deref(), Some(chained.url().as_str()));
    assert_eq!(flow.server_addr, Some(format!("127.0.0.1:{port}")));
    // The request as the client sent it: no credential of the chained proxy.
    assert_eq!(flow.request.headers.get("proxy-authorization"), None);

    let setting = &serde_json::to_value(&capture.header.settings).unwrap()["upstream_proxy"];
    assert_eq!(setting["https"]["url"], chained.url());
    assert_eq!(setting["https"]["basic_auth"], true);
    assert_eq!(setting["https"]["from"], "--upstream-proxy");

    let token = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    // The key log has both legs: the client's, and regtap's TLS with the
    // server through the tunnel.
    let keys = std::fs::read_to_string(&keylog).unwrap();
    let traffic_secrets = keys
        .lines()
        .filter(|l| l.starts_with("CLIENT_TRAFFIC_SECRET_0 "))
        .count();
    assert_eq!(traffic_secrets, 2, "{keys}");
    let mut files = vec![std::fs::read(&capture_path).unwrap(), keys.into_bytes()];
    for entry in walk(&bodies) {
        files.push(std::fs::read(entry).unwrap());
    }
    assert!(files.len() > 1, "the body store holds the response body");
    for bytes in files {
        let text = String::from_utf8_lossy(&bytes);
        for secret in [PASSWORD, PASSWORD_IN_URL, token.as_str()] {
            assert!(!text.contains(secret), "{secret:?} written: {text}");
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn plain_http_goes_in_absolute_form_and_no_proxy_targets_go_direct() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = upstream_pki(pki_dir.path());
    let tls_upstream = start_upstream(Some(Arc::clone(&pki.server_config))).await;
    let plain_upstream = start_upstream(None).await;
    let (tls_port, plain_port) = (tls_upstream.addr.port(), plain_upstream.addr.port());
    let chained = ChainedProxy::start(
        Policy::Basic,
        vec![("plain.test".into(), plain_upstream.addr)],
    )
    .await;
    let mut harness = start_proxy(|c| {
        c.upstream_ca.push(pki.ca_pem.clone());
        c.resolve.push(
            format!("registry.test:{tls_port}=127.0.0.1")
                .parse()
                .unwrap(),
        );
        c.upstream_proxies = through(&with_credentials(&chained.url()), "registry.test");
    })
    .await;
    let client = harness.client();
    let direct = format!("https://registry.test:{tls_port}/v2/");
    assert_eq!(client.get(&direct).send().await.unwrap().status(), 200);
    let plain = format!("http://plain.test:{plain_port}/v2/");
    let response = client.get(&plain).send().await.unwrap();
    assert_eq!(response.status(), 200);
    harness.finished(2).await;
    let (capture, _dir) = harness.stop().await;

    let heads = chained.heads();
    assert_eq!(heads.len(), 1, "NO_PROXY's target went direct: {heads:?}");
    assert!(
        heads[0].starts_with(&format!("GET {plain} HTTP/1.1\r\n")),
        "{heads:?}"
    );
    assert!(
        heads[0]
            .to_ascii_lowercase()
            .contains("\r\nproxy-authorization: basic "),
        "{heads:?}"
    );
    let flow = |url: &str| capture.flows.iter().find(|f| f.request.url == url).unwrap();
    assert_eq!(flow(&direct).upstream_proxy, None);
    assert_eq!(
        flow(&direct).server_addr,
        Some(format!("127.0.0.1:{tls_port}"))
    );
    let through = flow(&plain);
    // Added for the proxy after the request was recorded.
    assert_eq!(through.request.headers.get("proxy-authorization"), None);
    assert_eq!(
        through.upstream_proxy.as_deref(),
        Some(chained.url().as_str())
    );
    assert_eq!(through.response.as_ref().unwrap().status, 200);
    // The proxy resolved the name: regtap claims no server address.
    assert_eq!(through.server_addr, None);
    assert_eq!(
        serde_json::to_value(&capture.header.settings).unwrap()["upstream_proxy"]["no_proxy"],
        serde_json::json!(["registry.test"])
    );
}

#[tokio::test]
async fn failures_at_the_chained_proxy_are_told_apart_from_failures_at_the_server() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = upstream_pki(pki_dir.path());
    let upstream = start_upstream(Some(Arc::clone(&pki.server_config))).await;
    let port = upstream.addr.port();
    let auth = ChainedProxy::start(Policy::Basic, Vec::new()).await;
    let refusing = ChainedProxy::start(Policy::Refuse, Vec::new()).await;
    let open = ChainedProxy::start(Policy::Open, Vec::new()).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let wrong_password = auth
        .url()
        .replace("http://", "http://alice:not-the-password@");
    let cases: Vec<(String, &str, bool, ErrorStage, Vec<String>)> = vec![
        (
            auth.url(),
            "registry.test",
            true,
            ErrorStage::UpstreamProxy,
            vec![
                format!(
                    "the upstream proxy {} (--upstream-proxy) refused CONNECT 127.0.0.1:{port}: 407 Proxy Authentication Required",
                    auth.url()
                ),
                "(Proxy-Agent: test-proxy/1.0); regtap sent none".into(),
            ],
        ),
        (
            wrong_password,
            "registry.test",
            true,
            ErrorStage::UpstreamProxy,
            vec![
                "407 Proxy Authentication Required".into(),
                "regtap sent Basic credentials".into(),
            ],
        ),
        (
            refusing.url(),
            "registry.test",
            true,
            ErrorStage::UpstreamProxy,
            vec![format!(
                "{} (--upstream-proxy) refused CONNECT 127.0.0.1:{port}: 403 Forbidden",
                refusing.url()
            )],
        ),
        (
            format!("http://{closed}"),
            "registry.test",
            true,
            ErrorStage::UpstreamProxy,
            vec![format!(
                "cannot connect to the upstream proxy http://{closed} (--upstream-proxy)"
            )],
        ),
        // The proxy opened the tunnel; the server's certificate is not trusted.
        (
            open.url(),
            "registry.test",
            false,
            ErrorStage::Connect,
            vec![format!("cannot connect to registry.test:{port}")],
        ),
    ];
    for (proxy_url, host, trust_upstream, stage, wanted) in cases {
        let mut harness = start_proxy(|c| {
            if trust_upstream {
                c.upstream_ca.push(pki.ca_pem.clone());
            }
            c.resolve
                .push(format!("{host}:{port}=127.0.0.1").parse().unwrap());
            c.upstream_proxies = through(&proxy_url, "");
        })
        .await;
        let url = format!("https://{host}:{port}/v2/");
        let response = harness.client().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 502, "{proxy_url}");
        let body = response.text().await.unwrap();
        harness.finished(1).await;
        let (capture, _dir) = harness.stop().await;
        let flow = &capture.flows[0];
        let error = flow.error.as_ref().unwrap();
        assert_eq!(error.stage, stage, "{proxy_url}: {error:?}");
        for part in &wanted {
            assert!(
                error.message.contains(part.as_str()),
                "{part:?} not in {error:?}"
            );
            assert!(
                body.contains(part.as_str()),
                "{part:?} not in the 502 body {body}"
            );
        }
        assert!(!error.message.contains("not-the-password"), "{error:?}");
        assert!(flow.response.is_none());
        // The flow names the proxy, without credentials.
        let without_credentials = proxy_url.replace("alice:not-the-password@", "");
        assert_eq!(flow.upstream_proxy, Some(without_credentials));
    }
    assert_eq!(
        open.heads().len(),
        1,
        "the tunnel to the untrusted server was opened"
    );
}

#[tokio::test]
async fn a_chained_proxy_that_is_regtap_itself_is_refused() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = free.local_addr().unwrap();
    drop(free);
    let dir = tempfile::tempdir().unwrap();
    let ca = regtap_proxy::Ca::init(&dir.path().join("home"), &Default::default()).unwrap();
    let mut config = regtap_proxy::ProxyConfig::new(listen, dir.path().join("capture.jsonl"));
    config.upstream_proxies = UpstreamProxies::choose(ChainOptions::default(), |name| {
        (name == "https_proxy").then(|| format!("http://localhost:{}", listen.port()))
    })
    .unwrap();
    let Err(error) = regtap_proxy::start(config, &ca).await else {
        panic!("a proxy chained to itself started");
    };
    assert!(
        matches!(error, ProxyError::UpstreamProxyLoop { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "the upstream proxy http://localhost:{} is this regtap itself (listening on {listen})",
            listen.port()
        )),
        "{message}"
    );
    assert!(message.contains("env -u https_proxy"), "{message}");
    assert!(
        !dir.path().join("capture.jsonl").exists(),
        "no capture is started by a proxy that cannot run"
    );
}

#[tokio::test]
async fn a_chained_proxy_that_never_answers_is_a_connect_timeout_that_says_where() {
    let silent = ChainedProxy::start(Policy::Silent, Vec::new()).await;
    let mut harness = start_proxy(|c| {
        c.timeouts.connect = std::time::Duration::from_millis(500);
        c.upstream_proxies = through(&silent.url(), "");
    })
    .await;
    let response = harness
        .client()
        .get("https://registry.test:4443/v2/")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    harness.finished(1).await;
    let (capture, _dir) = harness.stop().await;
    let error = capture.flows[0].error.as_ref().unwrap();
    assert_eq!(error.stage, ErrorStage::ConnectTimeout);
    assert_eq!(
        error.message,
        format!(
            "cannot connect to registry.test:4443: no connection within 0.5s \
             (--connect-timeout), waiting for the upstream proxy {} (--upstream-proxy) \
             to answer CONNECT",
            silent.url()
        )
    );
    assert_eq!(silent.heads().len(), 1);
}
