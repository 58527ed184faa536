//! The lab's token server on its own: what Docker Hub's auth service answers,
//! as seen by a plain HTTPS client that trusts the lab CA.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use regtap_lab::pki::{LabHosts, Pki};
use regtap_lab::token::{TOKEN_LIFETIME_SECS, TokenConfig, TokenServer};
use regtap_lab::verify::{jwt_parts, verify_rs256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The lab names of this test process.
fn hosts() -> &'static LabHosts {
    static HOSTS: std::sync::OnceLock<LabHosts> = std::sync::OnceLock::new();
    HOSTS.get_or_init(|| LabHosts::unique().unwrap_or_else(|e| panic!("{e}")))
}

fn start() -> (Arc<Pki>, TokenServer) {
    let pki = Arc::new(Pki::generate(hosts()).unwrap_or_else(|e| panic!("{e}")));
    let server = TokenServer::start(
        TokenConfig {
            service: "registry.test".into(),
            issuer: "lab-issuer".into(),
            users: HashMap::from([("alice".to_owned(), "secret".to_owned())]),
        },
        Arc::clone(&pki),
        0,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (pki, server)
}

/// One HTTP/1.1 request over TLS (SNI the lab's auth name); returns status and body.
fn request(pki: &Pki, port: u16, head: &str, body: &str) -> (u16, serde_json::Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(
                pem_der(&pki.ca_pem),
            ))
            .unwrap_or_else(|e| panic!("{e}"));
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("{e}"))
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let auth_host = hosts().auth();
        let name = rustls::pki_types::ServerName::try_from(auth_host.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap_or_else(|e| panic!("TLS with the lab CA: {e}"));
        let message = format!(
            "{head}\r\nHost: {auth_host}:{port}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        tls.write_all(message.as_bytes()).await.unwrap_or_else(|e| panic!("{e}"));
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response).await;
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
    })
}

fn pem_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn basic(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

fn access_of(claims: &serde_json::Value) -> Vec<String> {
    claims["access"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|a| {
            format!(
                "{}:{}:{}",
                a["type"].as_str().unwrap_or(""),
                a["name"].as_str().unwrap_or(""),
                a["actions"]
            )
        })
        .collect()
}

#[test]
fn get_token_with_credentials_grants_what_was_asked_and_verifies() {
    let (pki, server) = start();
    let (status, body) = request(
        &pki,
        server.port(),
        &format!(
            "GET /token?account=alice&scope=repository%3Alab%2Fapp%3Apush%2Cpull&service=registry.test HTTP/1.1\r\nAuthorization: Basic {}",
            basic("alice", "secret")
        ),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let jwt = body["token"].as_str().unwrap_or_default();
    assert_eq!(body["access_token"].as_str(), Some(jwt));
    assert_eq!(body["expires_in"], TOKEN_LIFETIME_SECS);
    assert!(body["issued_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    verify_rs256(jwt, &pki.signing_public_key_der()).unwrap_or_else(|e| panic!("{e}"));
    let (header, claims) = jwt_parts(jwt).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["x5c"][0], pki.signing_cert_x5c().as_str());
    assert_eq!(claims["iss"], "lab-issuer");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(
        claims["aud"], "registry.test",
        "a single string, as distribution wants"
    );
    assert!(claims["nbf"].as_i64() <= claims["iat"].as_i64());
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert_eq!(
        access_of(&claims),
        [r#"repository:lab/app:["push","pull"]"#]
    );
    assert_eq!(server.issued().len(), 1);
}

#[test]
fn wrong_password_is_401_and_anonymous_gets_pull_only() {
    let (pki, server) = start();
    let (status, body) = request(
        &pki,
        server.port(),
        &format!(
            "GET /token?account=alice&service=registry.test HTTP/1.1\r\nAuthorization: Basic {}",
            basic("alice", "wrong")
        ),
        "",
    );
    assert_eq!(status, 401);
    assert_eq!(body["details"], "incorrect username or password");

    let (status, body) = request(
        &pki,
        server.port(),
        "GET /token?scope=repository%3Alab%2Fapp%3Apush%2Cpull&service=registry.test HTTP/1.1",
        "",
    );
    assert_eq!(status, 200);
    let (_, claims) =
        jwt_parts(body["token"].as_str().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claims["sub"], "");
    assert_eq!(access_of(&claims), [r#"repository:lab/app:["pull"]"#]);

    let (status, _) = request(&pki, server.port(), "GET /token?service=other HTTP/1.1", "");
    assert_eq!(status, 400, "a service the server does not serve");
}

#[test]
fn oauth2_post_gives_a_refresh_token_that_works_once_the_password_is_gone() {
    let (pki, server) = start();
    let form = "grant_type=password&username=alice&password=secret&service=registry.test\
                &client_id=lab-test&access_type=offline&scope=repository%3Alab%2Fapp%3Apull";
    let post = "POST /token HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded";
    let (status, body) = request(&pki, server.port(), post, form);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "repository:lab/app:pull");
    let refresh = body["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!refresh.is_empty(), "{body}");
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claims["sub"], "alice");

    let form = format!(
        "grant_type=refresh_token&refresh_token={refresh}&service=registry.test&client_id=lab-test\
         &scope=repository%3Alab%2Fapp%3Apush%2Cpull"
    );
    let (status, body) = request(&pki, server.port(), post, &form);
    assert_eq!(status, 200, "{body}");
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        access_of(&claims),
        [r#"repository:lab/app:["push","pull"]"#]
    );

    let bad = "grant_type=password&username=alice&password=nope&service=registry.test";
    assert_eq!(request(&pki, server.port(), post, bad).0, 401);
    let unknown = "grant_type=refresh_token&refresh_token=forged&service=registry.test";
    assert_eq!(request(&pki, server.port(), post, unknown).0, 401);
}
