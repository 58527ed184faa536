//! A token server that behaves like Docker Hub's auth service (the distribution
//! "token authentication" specification): `GET /token` with optional Basic
//! credentials and the OAuth2 `POST /token` of newer clients. Tokens are RS256
//! JWTs with an `x5c` header, which distribution verifies against the signing
//! certificate given as its `rootcertbundle`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::LabError;
use crate::pki::Pki;
use crate::server::BackgroundServer;

/// Seconds a token is valid.
pub const TOKEN_LIFETIME_SECS: i64 = 300;

#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// The `service` the registry names in its `WWW-Authenticate` (its `aud`).
    pub service: String,
    pub issuer: String,
    /// user name → password. Authenticated users get every action they ask
    /// for; anonymous clients get `pull` only.
    pub users: HashMap<String, String>,
}

/// One token the server handed out, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub subject: String,
    pub access: Vec<Access>,
    pub jwt: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub name: String,
    pub actions: Vec<String>,
}

struct State {
    config: TokenConfig,
    pki: Arc<Pki>,
    issued: Mutex<Vec<IssuedToken>>,
    /// refresh token → user, for `grant_type=refresh_token`.
    refresh_tokens: Mutex<HashMap<String, String>>,
    counter: AtomicU64,
}

/// The running server; stops when dropped.
pub struct TokenServer {
    addr: SocketAddr,
    state: Arc<State>,
    _server: BackgroundServer,
}

impl TokenServer {
    /// Listens with TLS (the lab server certificate) on 127.0.0.1:`port`
    /// (0: any free port, see [`TokenServer::port`]).
    pub fn start(config: TokenConfig, pki: Arc<Pki>, port: u16) -> Result<Self, LabError> {
        let tls = tls_acceptor(&pki)?;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .map_err(|e| LabError::Setup(format!("token server cannot bind port {port}: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| LabError::Setup(format!("token server: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| LabError::Setup(format!("token server: {e}")))?;
        let state = Arc::new(State {
            config,
            pki,
            issued: Mutex::new(Vec::new()),
            refresh_tokens: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
        });
        let served = Arc::clone(&state);
        let server = BackgroundServer::start("token-server", listener, move |tcp| {
            let tls = tls.clone();
            let state = Arc::clone(&served);
            async move {
                let Ok(stream) = tls.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            }
        })?;
        Ok(TokenServer {
            addr,
            state,
            _server: server,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every token issued so far, oldest first.
    pub fn issued(&self) -> Vec<IssuedToken> {
        self.state
            .issued
            .lock()
            .map(|issued| issued.clone())
            .unwrap_or_default()
    }
}

fn tls_acceptor(pki: &Pki) -> Result<tokio_rustls::TlsAcceptor, LabError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LabError::Setup(format!("token server TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(pki.server_cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key_der.clone())),
        )
        .map_err(|e| LabError::Setup(format!("token server TLS: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: serde_json::Value) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

async fn handle(state: &State, req: Request<Incoming>) -> Reply {
    if req.uri().path() != "/token" {
        return reply(StatusCode::NOT_FOUND, json!({"details": "not found"}));
    }
    match *req.method() {
        Method::GET => handle_get(state, &req),
        Method::POST => {
            let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    return reply(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"}));
                }
            };
            handle_post(state, &body)
        }
        _ => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"details": "method not allowed"}),
        ),
    }
}

/// `GET /token?service=…&scope=…&account=…`, Docker Hub style.
fn handle_get(state: &State, req: &Request<Incoming>) -> Reply {
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if param("service").as_deref() != Some(state.config.service.as_str()) {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"details": "unknown or missing service"}),
        );
    }
    let subject = match basic_credentials(req) {
        None => None,
        Some(Some((user, password))) if check_password(state, &user, &password) => Some(user),
        Some(_) => {
            return reply(
                StatusCode::UNAUTHORIZED,
                json!({"details": "incorrect username or password"}),
            );
        }
    };
    let scopes: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let (jwt, issued_at) = match issue(state, subject.as_deref(), &scopes) {
        Ok(issued) => issued,
        Err(e) => return reply(StatusCode::INTERNAL_SERVER_ERROR, json!({"details": e})),
    };
    reply(
        StatusCode::OK,
        json!({
            "token": jwt,
            "access_token": jwt,
            "expires_in": TOKEN_LIFETIME_SECS,
            "issued_at": issued_at,
        }),
    )
}

/// The OAuth2 `POST /token` (form body): `grant_type=password` or `refresh_token`.
fn handle_post(state: &State, body: &[u8]) -> Reply {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    if field("service") != state.config.service {
        return reply(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"}));
    }
    let user = match field("grant_type").as_str() {
        "password" => {
            let user = field("username");
            if !check_password(state, &user, &field("password")) {
                return reply(StatusCode::UNAUTHORIZED, json!({"error": "invalid_grant"}));
            }
            user
        }
        "refresh_token" => {
            let known = state
                .refresh_tokens
                .lock()
                .ok()
                .and_then(|tokens| tokens.get(&field("refresh_token")).cloned());
            match known {
                Some(user) => user,
                None => {
                    return reply(StatusCode::UNAUTHORIZED, json!({"error": "invalid_grant"}));
                }
            }
        }
        _ => {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": "unsupported_grant_type"}),
            );
        }
    };
    let scope = field("scope");
    let scopes: Vec<String> = scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let (jwt, issued_at) = match issue(state, Some(&user), &scopes) {
        Ok(issued) => issued,
        Err(e) => return reply(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": e})),
    };
    let mut answer = json!({
        "access_token": jwt,
        "scope": scope,
        "expires_in": TOKEN_LIFETIME_SECS,
        "issued_at": issued_at,
    });
    if field("grant_type") == "password" && field("access_type") == "offline" {
        let refresh = format!(
            "lab-refresh-{}",
            state.counter.fetch_add(1, Ordering::Relaxed)
        );
        if let Ok(mut tokens) = state.refresh_tokens.lock() {
            tokens.insert(refresh.clone(), user);
        }
        answer["refresh_token"] = json!(refresh);
    }
    reply(StatusCode::OK, answer)
}

fn check_password(state: &State, user: &str, password: &str) -> bool {
    state.config.users.get(user).is_some_and(|p| p == password)
}

/// `None`: no Basic credentials; `Some(None)`: malformed ones.
fn basic_credentials(req: &Request<Incoming>) -> Option<Option<(String, String)>> {
    let value = req.headers().get(hyper::header::AUTHORIZATION)?;
    let parsed = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
        });
    Some(parsed)
}

/// Grants for `scopes` (`type:name:action,action`): what an authenticated user
/// asked for, or only `pull` for anonymous clients.
pub fn grant(subject: Option<&str>, scopes: &[String]) -> Vec<Access> {
    let mut granted: Vec<Access> = Vec::new();
    for scope in scopes {
        let Some((resource_type, rest)) = scope.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        let actions: Vec<String> = actions
            .split(',')
            .filter(|a| subject.is_some() || *a == "pull")
            .map(str::to_owned)
            .collect();
        if actions.is_empty() {
            continue;
        }
        granted.push(Access {
            resource_type: resource_type.to_owned(),
            name: name.to_owned(),
            actions,
        });
    }
    granted
}

/// A signed JWT and its RFC 3339 issue time.
fn issue(
    state: &State,
    subject: Option<&str>,
    scopes: &[String],
) -> Result<(String, String), String> {
    let now = time::OffsetDateTime::now_utc();
    let now_secs = now.unix_timestamp();
    let access = grant(subject, scopes);
    let jti = format!(
        "lab-{}-{}",
        now.unix_timestamp_nanos(),
        state.counter.fetch_add(1, Ordering::Relaxed)
    );
    let header = json!({
        "typ": "JWT",
        "alg": "RS256",
        "x5c": [state.pki.signing_cert_x5c()],
    });
    let claims = json!({
        "iss": state.config.issuer,
        "sub": subject.unwrap_or(""),
        "aud": state.config.service,
        "exp": now_secs + TOKEN_LIFETIME_SECS,
        "nbf": now_secs - 1,
        "iat": now_secs,
        "jti": jti,
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = state
        .pki
        .sign_rs256(signing_input.as_bytes())
        .map_err(|e| e.to_string())?;
    let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
    if let Ok(mut issued) = state.issued.lock() {
        issued.push(IssuedToken {
            subject: subject.unwrap_or("").to_owned(),
            access,
            jwt: jwt.clone(),
        });
    }
    let issued_at = now
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())?;
    Ok((jwt, issued_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_clients_get_pull_only() {
        let scopes = vec!["repository:lab/app:push,pull".to_owned()];
        let granted = grant(None, &scopes);
        assert_eq!(granted.len(), 1);
        assert_eq!(granted[0].actions, vec!["pull".to_owned()]);
        let granted = grant(Some("alice"), &scopes);
        assert_eq!(
            granted[0].actions,
            vec!["push".to_owned(), "pull".to_owned()]
        );
    }

    #[test]
    fn repository_names_with_registry_ports_keep_their_colon() {
        let granted = grant(
            Some("alice"),
            &["repository:host:5000/lab/app:pull".to_owned()],
        );
        assert_eq!(granted[0].name, "host:5000/lab/app");
    }
}
