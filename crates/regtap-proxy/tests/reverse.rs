//! Reverse mode end to end: a real client addressing regtap as the registry,
//! regtap routing by name to real TLS upstreams, and the capture.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::{start_proxy, upstream_pki};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use regtap_capture::{Direction, ErrorStage, Flow, Rewrite};
use regtap_proxy::{ClientNet, ReverseConfig, ReverseRoute, ReverseTls};
use rustls::ServerConfig;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// A registry-shaped upstream: `/v2/` challenges with a realm at `realm`,
/// a POST to uploads answers an absolute `Location` naming `self_origin`,
/// `/token` answers a token, `/host` echoes the `Host` it got.
async fn registry_upstream(tls: Arc<ServerConfig>, realm: String, host: &str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let self_origin = format!("https://{host}:{}", addr.port());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (tls, realm, origin) = (Arc::clone(&tls), realm.clone(), self_origin.clone());
            tokio::spawn(async move {
                let Ok(stream) = tokio_rustls::TlsAcceptor::from(tls).accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (realm, origin) = (realm.clone(), origin.clone());
                    async move { Ok::<_, Infallible>(answer(&req, &realm, &origin)) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn answer(req: &Request<Incoming>, realm: &str, origin: &str) -> Response<Full<Bytes>> {
    let builder = Response::builder();
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (builder, body) = match (req.method().as_str(), req.uri().path()) {
        ("GET", "/v2/") => (
            builder.status(401).header(
                "www-authenticate",
                format!(r#"Bearer realm="{realm}",service="registry.test""#),
            ),
            String::new(),
        ),
        ("POST", "/v2/lab/app/blobs/uploads/") => (
            builder.status(202).header(
                "location",
                format!("{origin}/v2/lab/app/blobs/uploads/u-1?_state=abc"),
            ),
            String::new(),
        ),
        ("GET", "/token") => (builder.status(200), r#"{"token":"t0k3n"}"#.to_owned()),
        ("GET", "/host") => (builder.status(200), host),
        _ => (builder.status(404), String::new()),
    };
    builder.body(Full::new(Bytes::from(body))).unwrap()
}

struct Lab {
    registry: SocketAddr,
    auth: SocketAddr,
    _pki_dir: tempfile::TempDir,
    ca_pem: std::path::PathBuf,
}

async fn lab() -> Lab {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = upstream_pki(pki_dir.path());
    let auth = registry_upstream(Arc::clone(&pki.server_config), String::new(), "localhost").await;
    let registry = registry_upstream(
        Arc::clone(&pki.server_config),
        format!("https://localhost:{}/token", auth.port()),
        "registry.test",
    )
    .await;
    Lab {
        registry,
        auth,
        ca_pem: pki.ca_pem,
        _pki_dir: pki_dir,
    }
}

impl Lab {
    /// regtap's `--resolve` for the registry's name.
    fn resolve(&self) -> String {
        format!("registry.test:{}=127.0.0.1", self.registry.port())
    }
}

fn reverse_config(lab: &Lab, tls: ReverseTls, rewrite_urls: bool) -> ReverseConfig {
    ReverseConfig {
        routes: vec![
            format!("https://registry.test:{}", lab.registry.port())
                .parse::<ReverseRoute>()
                .unwrap(),
            format!("auth.test=https://localhost:{}", lab.auth.port())
                .parse()
                .unwrap(),
        ],
        tls,
        rewrite_urls,
    }
}

/// A client that reaches `registry.test` and `auth.test` at regtap, as DNS
/// pointing those names at it would, over HTTP/1.1 (so that a test can set Host).
fn client_for(harness: &common::Harness) -> reqwest::Client {
    let at = harness.proxy.local_addr();
    reqwest::Client::builder()
        .use_preconfigured_tls(harness.client_tls())
        .no_proxy()
        .http1_only()
        .resolve("registry.test", at)
        .resolve("auth.test", at)
        .resolve("other.test", at)
        .build()
        .unwrap()
}

fn rewrite(direction: Direction, header: &str, original: &str, rewritten: &str) -> Rewrite {
    Rewrite {
        direction,
        header: header.to_owned(),
        original: original.to_owned(),
        rewritten: rewritten.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_name_rewrites_what_names_an_upstream_and_records_both_sides() {
    let lab = lab().await;
    let config = reverse_config(&lab, ReverseTls::RegtapCa, true);
    let (ca, resolve) = (lab.ca_pem.clone(), lab.resolve());
    let mut harness = start_proxy(|c| {
        c.reverse = Some(config);
        c.upstream_ca.push(ca);
        c.resolve = vec![resolve.parse().unwrap()];
    })
    .await;
    let client = client_for(&harness);
    let port = harness.proxy.local_addr().port();
    let (reg, auth) = (lab.registry.port(), lab.auth.port());
    let served = format!("https://registry.test:{port}");

    let ping = client.get(format!("{served}/v2/")).send().await.unwrap();
    assert_eq!(ping.status(), 401);
    let challenge = ping.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let realm = format!("https://auth.test:{port}/token");
    assert_eq!(
        challenge,
        format!(r#"Bearer realm="{realm}",service="registry.test""#),
        "the client must be sent to regtap for its token"
    );
    let token = client.get(&realm).send().await.unwrap();
    assert_eq!(token.text().await.unwrap(), r#"{"token":"t0k3n"}"#);
    let upload = client
        .post(format!("{served}/v2/lab/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 202);
    assert_eq!(
        upload.headers()["location"],
        format!("{served}/v2/lab/app/blobs/uploads/u-1?_state=abc").as_str()
    );
    let host = client.get(format!("{served}/host")).send().await.unwrap();
    assert_eq!(
        host.text().await.unwrap(),
        format!("registry.test:{reg}"),
        "the upstream gets its own name as Host"
    );
    harness.finished(4).await;
    let (capture, _dir) = harness.stop().await;
    let flows = &capture.flows;
    assert_eq!(flows.len(), 4);
    let settings = serde_json::to_value(&capture.header.settings).unwrap();
    assert_eq!(settings["mode"], "reverse");
    assert_eq!(settings["reverse"]["rewrite_urls"], true);
    assert_eq!(settings["reverse"]["client_tls"], "regtap_ca");
    assert_eq!(
        settings["reverse"]["upstreams"][1]["served_as"],
        format!("https://auth.test:{port}")
    );

    // The flow is the upstream's exchange; the client's view is in `reverse`.
    let upstream = format!("https://registry.test:{reg}");
    let host_rewrite = rewrite(
        Direction::Request,
        "host",
        &format!("registry.test:{port}"),
        &format!("registry.test:{reg}"),
    );
    let ping = &flows[0];
    assert_eq!(ping.request.url, format!("{upstream}/v2/"));
    assert_eq!(ping.scheme, "https");
    assert!(
        ping.client_addr
            .as_deref()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let reverse = ping.reverse.as_ref().unwrap();
    assert_eq!(reverse.served_as, served);
    let original_challenge =
        format!(r#"Bearer realm="https://localhost:{auth}/token",service="registry.test""#);
    assert_eq!(
        response_header(ping, "www-authenticate"),
        original_challenge,
        "the capture keeps the challenge the upstream sent"
    );
    assert_eq!(
        reverse.rewrites,
        vec![
            host_rewrite.clone(),
            rewrite(
                Direction::Response,
                "www-authenticate",
                &original_challenge,
                &challenge
            ),
        ]
    );
    let token = &flows[1];
    assert_eq!(token.request.url, format!("https://localhost:{auth}/token"));
    assert_eq!(
        token.reverse.as_ref().unwrap().served_as,
        format!("https://auth.test:{port}")
    );
    let upload = &flows[2];
    let upstream_location = format!("{upstream}/v2/lab/app/blobs/uploads/u-1?_state=abc");
    assert_eq!(response_header(upload, "location"), upstream_location);
    assert_eq!(
        upload.reverse.as_ref().unwrap().rewrites,
        vec![
            host_rewrite,
            rewrite(
                Direction::Response,
                "location",
                &upstream_location,
                &format!("{served}/v2/lab/app/blobs/uploads/u-1?_state=abc"),
            ),
        ]
    );
}

fn response_header(flow: &Flow, name: &str) -> String {
    let headers = &flow.response.as_ref().unwrap().headers;
    headers.get(name).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_are_routed_by_their_authority() {
    let lab = lab().await;
    let config = reverse_config(&lab, ReverseTls::RegtapCa, true);
    let (ca, resolve) = (lab.ca_pem.clone(), lab.resolve());
    let mut harness = start_proxy(|c| {
        c.reverse = Some(config);
        c.upstream_ca.push(ca);
        c.resolve = vec![resolve.parse().unwrap()];
    })
    .await;
    let at = harness.proxy.local_addr();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(harness.client_tls())
        .no_proxy()
        .http2_prior_knowledge()
        .resolve("auth.test", at)
        .build()
        .unwrap();
    let token = client
        .get(format!("https://auth.test:{}/token", at.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(token.version(), reqwest::Version::HTTP_2);
    assert_eq!(token.text().await.unwrap(), r#"{"token":"t0k3n"}"#);
    harness.finished(1).await;
    let (capture, _dir) = harness.stop().await;
    let flow = &capture.flows[0];
    assert_eq!(flow.request.http_version, "HTTP/2");
    assert_eq!(
        flow.request.url,
        format!("https://localhost:{}/token", lab.auth.port())
    );
    let reverse = flow.reverse.as_ref().unwrap();
    assert_eq!(
        reverse.served_as,
        format!("https://auth.test:{}", at.port())
    );
    assert_eq!(
        reverse.rewrites,
        vec![rewrite(
            Direction::Request,
            ":authority",
            &format!("auth.test:{}", at.port()),
            &format!("localhost:{}", lab.auth.port()),
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_rewrite_urls_the_upstream_answers_pass_unchanged() {
    let lab = lab().await;
    let config = reverse_config(&lab, ReverseTls::RegtapCa, false);
    let (ca, resolve) = (lab.ca_pem.clone(), lab.resolve());
    let mut harness = start_proxy(|c| {
        c.reverse = Some(config);
        c.upstream_ca.push(ca);
        c.resolve = vec![resolve.parse().unwrap()];
    })
    .await;
    let client = client_for(&harness);
    let port = harness.proxy.local_addr().port();
    let upload = client
        .post(format!(
            "https://registry.test:{port}/v2/lab/app/blobs/uploads/"
        ))
        .send()
        .await
        .unwrap();
    let location = format!(
        "https://registry.test:{}/v2/lab/app/blobs/uploads/u-1?_state=abc",
        lab.registry.port()
    );
    assert_eq!(upload.headers()["location"], location.as_str());
    harness.finished(1).await;
    let (capture, _dir) = harness.stop().await;
    let rewrites = &capture.flows[0].reverse.as_ref().unwrap().rewrites;
    assert_eq!(rewrites.len(), 1, "only the Host: {rewrites:?}");
    assert_eq!(rewrites[0].header, "host");
    assert_eq!(
        serde_json::to_value(&capture.header.settings).unwrap()["reverse"]["rewrite_urls"],
        false
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_get_a_recorded_refusal_never_a_default_upstream() {
    let lab = lab().await;
    let config = reverse_config(&lab, ReverseTls::RegtapCa, true);
    let (ca, resolve) = (lab.ca_pem.clone(), lab.resolve());
    let harness = start_proxy(|c| {
        c.reverse = Some(config);
        c.upstream_ca.push(ca);
        c.resolve = vec![resolve.parse().unwrap()];
    })
    .await;
    let client = client_for(&harness);
    let port = harness.proxy.local_addr().port();

    // A served name in TLS, another one in Host.
    let misdirected = client
        .get(format!("https://registry.test:{port}/v2/"))
        .header("host", format!("other.test:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(misdirected.status(), 421);
    let text = misdirected.text().await.unwrap();
    assert!(
        text.contains("\"other.test") && text.contains("registry.test, auth.test"),
        "{text}"
    );
    // A name regtap does not serve, in SNI: no certificate for it.
    let err = client
        .get(format!("https://other.test:{port}/v2/"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // A CONNECT: reverse mode is not a proxy.
    let mut tcp = tokio::net::TcpStream::connect(harness.proxy.local_addr())
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(harness.client_tls()));
    let name = rustls::pki_types::ServerName::try_from("registry.test").unwrap();
    let mut tls = connector.connect(name, &mut tcp).await.unwrap();
    tls.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 12];
    tls.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 405");
    drop(tls);

    let (capture, _dir) = harness.stop().await;
    let stage = |stage| {
        capture
            .flows
            .iter()
            .filter(move |f| f.error.as_ref().is_some_and(|e| e.stage == stage))
    };
    let misdirected: Vec<_> = stage(ErrorStage::Misdirected).collect();
    assert_eq!(misdirected.len(), 1, "{:#?}", capture.flows);
    assert_eq!(misdirected[0].request.method, "GET");
    assert_eq!(
        misdirected[0].request.url,
        format!("https://other.test:{port}/v2/")
    );
    let tls_failures: Vec<_> = stage(ErrorStage::ClientTls).collect();
    assert_eq!(tls_failures.len(), 1, "{:#?}", capture.flows);
    let message = &tls_failures[0].error.as_ref().unwrap().message;
    assert!(
        message.contains("\"other.test\", which regtap does not serve"),
        "{message}"
    );
    assert_eq!(stage(ErrorStage::ClientProtocol).count(), 1);
    assert!(
        capture.flows.iter().all(|f| f.response.is_none()),
        "nothing reached an upstream: {:#?}",
        capture.flows
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_listening_and_clients_outside_the_allow_list() {
    let lab = lab().await;
    let config = reverse_config(&lab, ReverseTls::PlainHttp, true);
    let (ca, resolve) = (lab.ca_pem.clone(), lab.resolve());
    let mut harness = start_proxy(|c| {
        c.reverse = Some(config);
        c.upstream_ca.push(ca);
        c.resolve = vec![resolve.parse().unwrap()];
        c.allow_clients = vec!["10.0.0.0/8".parse::<ClientNet>().unwrap()];
    })
    .await;
    let client = client_for(&harness);
    let port = harness.proxy.local_addr().port();
    let refused = client
        .get(format!("http://registry.test:{port}/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("127.0.0.1") && text.contains("--allow-client"),
        "{text}"
    );
    harness.finished(1).await;
    let (capture, _dir) = harness.stop().await;
    let flow = &capture.flows[0];
    assert_eq!(
        flow.error.as_ref().unwrap().stage,
        ErrorStage::ClientRefused
    );
    assert_eq!(flow.request.url, format!("http://registry.test:{port}/v2/"));
    assert_eq!(
        serde_json::to_value(&capture.header.settings).unwrap()["allow_client"][0],
        "10.0.0.0/8"
    );

    // Allowed, over plain HTTP: the realm and Location name regtap's http origin.
    let config = reverse_config(&lab, ReverseTls::PlainHttp, true);
    let (ca, resolve) = (lab.ca_pem.clone(), lab.resolve());
    let mut harness = start_proxy(|c| {
        c.reverse = Some(config);
        c.upstream_ca.push(ca);
        c.resolve = vec![resolve.parse().unwrap()];
        c.allow_clients = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let client = client_for(&harness);
    let port = harness.proxy.local_addr().port();
    let ping = client
        .get(format!("http://registry.test:{port}/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 401);
    assert_eq!(
        ping.headers()["www-authenticate"],
        format!(r#"Bearer realm="http://auth.test:{port}/token",service="registry.test""#).as_str()
    );
    harness.finished(1).await;
    let (capture, _dir) = harness.stop().await;
    assert_eq!(
        serde_json::to_value(&capture.header.settings).unwrap()["reverse"]["client_tls"],
        "plain_http"
    );
    let flow = &capture.flows[0];
    assert_eq!(
        flow.reverse.as_ref().unwrap().served_as,
        format!("http://registry.test:{port}")
    );
    assert_eq!(
        flow.request.url,
        format!("https://registry.test:{}/v2/", lab.registry.port())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_certificate_is_served_and_a_wrong_key_is_refused_at_start() {
    let lab = lab().await;
    let dir = tempfile::tempdir().unwrap();
    // The operator's own PKI: a CA and a leaf for registry.test and auth.test.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["registry.test".into(), "auth.test".into()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let (cert, key, other_key) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("other-key.pem"),
    );
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    std::fs::write(
        &other_key,
        rcgen::KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();

    let start = |key: std::path::PathBuf| {
        let mut config = regtap_proxy::ProxyConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            dir.path()
                .join(format!("{}.jsonl", key.file_stem().unwrap().display())),
        );
        config.reverse = Some(reverse_config(
            &lab,
            ReverseTls::Provided {
                cert: cert.clone(),
                key,
            },
            true,
        ));
        config
    };
    let regtap_ca = regtap_proxy::Ca::init(
        &dir.path().join("home"),
        &regtap_proxy::CaOptions::default(),
    )
    .unwrap();
    let err = regtap_proxy::start(start(other_key.clone()), &regtap_ca)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("other-key.pem") && err.contains("is not the key of the certificate"),
        "{err}"
    );
    let err = regtap_proxy::start(start(dir.path().join("missing.pem")), &regtap_ca)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("missing.pem"), "{err}");
    assert!(
        !dir.path().join("missing.jsonl").exists(),
        "no capture is created for a proxy that cannot start"
    );

    let mut config = start(key);
    config.upstream_ca.push(lab.ca_pem.clone());
    config.resolve = vec![lab.resolve().parse().unwrap()];
    let proxy = regtap_proxy::start(config, &regtap_ca).await.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(regtap_proxy::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .no_proxy()
        .resolve("registry.test", proxy.local_addr())
        .build()
        .unwrap();
    let ping = client
        .get(format!(
            "https://registry.test:{}/v2/",
            proxy.local_addr().port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 401);
    let summary = proxy.shutdown().await.unwrap();
    assert_eq!(summary.flows_written, 1);
    let capture = regtap_capture::Capture::read(&summary.capture_path).unwrap();
    assert_eq!(
        serde_json::to_value(&capture.header.settings).unwrap()["reverse"]["client_tls"],
        "provided"
    );
    assert_eq!(capture.flows[0].response.as_ref().unwrap().status, 401);
}
