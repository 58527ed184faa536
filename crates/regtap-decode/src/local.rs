//! What can be decoded from one flow alone: its kind, credentials, token,
//! `_state`, manifest, error body, challenges and rate limit. Computed once
//! per flow (the [`crate::Analyzer`] caches it); the links between flows
//! are made afterwards. The facts are found here; [`wording`] puts the
//! sentences of annotations and summaries together.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use regtap_capture::{Data, Flow, Header, Headers, Kept, TruncationReason};
use sha2::Digest as _;
use url::Url;

use crate::auth::{self, Credentials};
use crate::classify::classify;
use crate::hash::HashMap;
use crate::http::{TokenHash, decoded_body, fingerprint, query_first, resolve};
use crate::jwt::access_scope;
use crate::model::AnnotationKind;
use crate::model::{
    Access, Annotation, BearerUse, Challenge, Client, DecodeError, DownloadCheck, FlowKind,
    HmacStatus, JwtInfo, ManifestInfo, Options, RateLimit, RegistryError, StateInfo, TokenInfo,
};
use crate::{errors, jwt, manifest, state};
use wording::{challenge_error_text, rate_limit_text, token_annotations, user_hint};
pub(crate) use wording::{challenge_text, manifest_text};

mod wording;

/// The large, mostly absent parts are boxed: a capture has many flows.
#[derive(Debug, Clone)]
pub(crate) struct Local {
    /// Shared: every analysis clones the decoded flows, not their bodies.
    pub flow: Arc<Flow>,
    pub url: Option<Url>,
    pub kind: FlowKind,
    pub annotations: Vec<Annotation>,
    pub token: Option<Box<TokenInfo>>,
    /// SHA-256 of the token this flow issued: tokens are matched on it.
    pub issued_hash: Option<TokenHash>,
    pub bearer: Option<Box<BearerUse>>,
    pub bearer_hash: Option<TokenHash>,
    /// `exp` and `nbf` (Unix seconds) of the Bearer token carried, if a JWT.
    pub bearer_exp: Option<i64>,
    pub bearer_nbf: Option<i64>,
    pub basic_user: Option<String>,
    /// `_state` of the request URL.
    pub request_state: Option<Box<StateInfo>>,
    /// `_state` of the response `Location`.
    pub response_state: Option<Box<StateInfo>>,
    /// Upload id named by the response (`Location` path or `Docker-Upload-UUID`).
    pub response_upload_id: Option<String>,
    pub location: Option<Url>,
    pub manifest: Option<Box<ManifestInfo>>,
    pub registry_errors: Vec<RegistryError>,
    pub challenges: Vec<Challenge>,
    pub rate_limit: Option<RateLimit>,
    /// Set by [`crate::downloads::check`].
    pub download: Option<Box<DownloadCheck>>,
    /// The program its own `User-Agent` names (linking resolves the
    /// client of a flow whose User-Agent names only an HTTP library).
    pub own_client: Option<Arc<Client>>,
}

impl Local {
    pub fn status(&self) -> Option<u16> {
        self.flow.status()
    }

    pub fn start(&self) -> i64 {
        self.flow.timing.request_start
    }

    pub fn end(&self) -> i64 {
        self.flow.timing.end()
    }

    pub fn response_headers(&self) -> Option<&Headers> {
        self.flow.response.as_ref().map(|r| &r.headers)
    }

    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response_headers().and_then(|h| h.get(name))
    }

    pub fn ok(&self) -> bool {
        self.status().is_some_and(|s| (200..300).contains(&s))
    }

    /// The response body arrived whole: all of `Content-Length`, whatever
    /// happened to the connection afterwards.
    pub fn response_body_whole(&self) -> bool {
        let Some(response) = &self.flow.response else {
            return false;
        };
        let expected = response
            .headers
            .get("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        match expected {
            Some(length) => response.body.size >= length,
            None => response.body.is_complete() && self.flow.error.is_none(),
        }
    }

    /// Answers whose body the client does not need: HEAD, pings, redirects, errors.
    pub fn response_body_unneeded(&self) -> bool {
        self.flow.method().eq_ignore_ascii_case("HEAD")
            || matches!(self.kind, FlowKind::ApiCheck { .. })
            || self
                .status()
                .is_some_and(|s| (300..400).contains(&s) || s == 204)
    }

    /// The exchange did not deliver what the client asked for: no answer,
    /// or a needed body cut short.
    pub fn broken(&self) -> bool {
        match &self.flow.response {
            None => true,
            Some(_) => {
                self.flow.error.is_some()
                    && !self.response_body_whole()
                    && !self.response_body_unneeded()
            }
        }
    }
}

/// What the flows of a capture repeat, decoded once. A `Bearer`
/// credential: in a large capture one token rides on thousands of
/// requests, and decoding its JWT (certificates included) is the costliest
/// part of a flow. A `User-Agent`: a capture has a handful.
#[derive(Debug, Clone, Default)]
pub(crate) struct Memo {
    /// By the token itself, which is quicker to find again than to hash
    /// with SHA-256 (a JWT with its certificates is kilobytes long).
    bearers: HashMap<String, (TokenHash, BearerFacts)>,
    user_agents: HashMap<String, Option<Arc<Client>>>,
}

/// How many tokens a [`Memo`] holds before it starts afresh: a capture's
/// tokens are renewed every few minutes, so old ones rarely return.
const REMEMBERED_TOKENS: usize = 1024;

/// How many User-Agents a [`Memo`] holds before it starts afresh: more
/// than a capture of real clients has, fewer than one that sends a new one
/// with every request.
const REMEMBERED_USER_AGENTS: usize = 256;

#[derive(Debug, Clone)]
struct BearerFacts {
    exp: Option<i64>,
    nbf: Option<i64>,
    annotations: Vec<Annotation>,
}

pub(crate) fn decode_flow(flow: Arc<Flow>, options: &Options, memo: &mut Memo) -> Local {
    let url = Url::parse(flow.url()).ok();
    let kind = classify(&flow, url.as_ref());
    let location = flow
        .response
        .as_ref()
        .and_then(|r| r.headers.get("location"))
        .and_then(|l| resolve(url.as_ref(), l));
    let own_client = own_client(&flow, memo);
    let mut local = Local {
        flow,
        url,
        kind,
        annotations: Vec::new(),
        token: None,
        issued_hash: None,
        bearer: None,
        bearer_hash: None,
        bearer_exp: None,
        bearer_nbf: None,
        basic_user: None,
        request_state: None,
        response_state: None,
        response_upload_id: None,
        location,
        manifest: None,
        registry_errors: Vec::new(),
        challenges: Vec::new(),
        rate_limit: None,
        download: None,
        own_client,
    };
    if local.url.is_none() {
        local.annotations.push(Annotation::warning(
            AnnotationKind::Url,
            format!("the request URL does not parse: {}", local.flow.url()),
        ));
    }
    exchange_problems(&mut local);
    credentials(&mut local, memo);
    challenges(&mut local);
    if matches!(local.kind, FlowKind::Token { .. }) {
        client_id(&mut local);
        issued_token(&mut local, memo);
    }
    upload_details(&mut local, options);
    manifest_body(&mut local);
    error_body(&mut local);
    warnings(&mut local);
    crate::referrers::annotate(&mut local);
    crate::negotiation::annotate(&mut local);
    crate::urls::annotate(&mut local);
    not_a_registry(&mut local);
    if let Some(limit) = local.response_headers().and_then(errors::rate_limit) {
        local.annotations.push(Annotation::info(
            AnnotationKind::RateLimit,
            rate_limit_text(&limit),
        ));
        local.rate_limit = Some(limit);
    }
    forget_unneeded_bytes(&mut local);
    forget_credentials(&mut local);
    local
}

/// Blanks the `Authorization` value, decoded by now: after this pass the
/// decoder only asks whether a request carried credentials, and an analysis
/// should not hold a copy of a token (2–3 KB on Docker Hub) for every
/// request that carried it. The header stays, text or not as it was.
fn forget_credentials(local: &mut Local) {
    let is_credential =
        |header: &Header| header.0.eq_ignore_ascii_case("authorization") && !header.1.is_empty();
    if !local.flow.request.headers.iter().any(is_credential) {
        return;
    }
    // A flow the caller shares ([`crate::Analyzer::push_shared`]) stays
    // whole: blanking would copy it, and the caller holds the token anyway.
    let Some(flow) = Arc::get_mut(&mut local.flow) else {
        return;
    };
    for header in flow.request.headers.0.iter_mut() {
        if is_credential(header) {
            header.1 = match header.1 {
                Data::Text(_) => Data::Text(String::new()),
                Data::Binary { .. } => Data::Binary {
                    base64: String::new(),
                },
            };
        }
    }
}

/// Drops the response bytes the passes after this one never read, so that
/// an analysis does not hold a second copy of every blob it saw. What this
/// flow says alone is decoded by now; the linking passes read bytes only to
/// hash a blob by sha512, to join ranges, to count a listing, and to join
/// an upload's chunks (requests, always kept). A flow of unknown kind may
/// turn out to follow a redirect to a blob: its bytes stay too.
fn forget_unneeded_bytes(local: &mut Local) {
    let needed = match &local.kind {
        FlowKind::BlobGet { digest, range, .. } => {
            digest.starts_with("sha512:") || range.is_some() || local.status() == Some(206)
        }
        FlowKind::ManifestGet { reference, .. } => reference.as_str().starts_with("sha512:"),
        FlowKind::TagsList { .. } | FlowKind::Catalog { .. } | FlowKind::Unknown => true,
        _ => false,
    };
    let holds_bytes = local
        .flow
        .response
        .as_ref()
        .is_some_and(|r| r.body.size > 0 && matches!(r.body.kept, Kept::Inline(_)));
    if needed || !holds_bytes {
        return;
    }
    // A shared flow stays whole, as in `forget_credentials`.
    let Some(flow) = Arc::get_mut(&mut local.flow) else {
        return;
    };
    if let Some(response) = flow.response.as_mut() {
        // As if the capture had kept none of them: the bytes are unknown
        // here, while the size, hash and ending stay what the capture says.
        response.body.kept = Kept::Prefix {
            data: None,
            reason: TruncationReason::SizeLimit,
        };
    }
}

fn exchange_problems(local: &mut Local) {
    if let Some(error) = &local.flow.error {
        let stage = error.stage.describe();
        let text = format!("the exchange broke while {stage}: {}", error.message);
        let annotation = if local.response_body_whole() {
            Annotation::info(
                AnnotationKind::Exchange,
                format!("{text} (all the bytes of Content-Length had arrived)"),
            )
        } else if local.flow.response.is_some() && local.response_body_unneeded() {
            Annotation::info(
                AnnotationKind::Exchange,
                format!("{text} (the client needs no body from this answer)"),
            )
        } else if local.flow.response.is_some() {
            Annotation::warning(AnnotationKind::Exchange, text)
        } else {
            Annotation::error(AnnotationKind::Exchange, text)
        };
        local.annotations.push(annotation);
    } else if local.flow.response.is_none() {
        local.annotations.push(Annotation::warning(
            AnnotationKind::Exchange,
            "no response was received",
        ));
    }
    if local.flow.request.body.is_cut_off() {
        local.annotations.push(Annotation::warning(
            AnnotationKind::RequestBody,
            format!(
                "the request body was cut off after {} bytes",
                local.flow.request.body.size
            ),
        ));
    }
}

/// Parsed here, while the flow's headers are at hand: linking read them
/// again for every flow of a big capture, long after they left the cache.
fn own_client(flow: &Flow, memo: &mut Memo) -> Option<Arc<Client>> {
    let user_agent = flow.request.headers.get("user-agent")?;
    if let Some(client) = memo.user_agents.get(user_agent) {
        return client.clone();
    }
    if memo.user_agents.len() >= REMEMBERED_USER_AGENTS {
        memo.user_agents.clear();
    }
    let client = crate::client::from_user_agent(user_agent).map(Arc::new);
    memo.user_agents
        .insert(user_agent.to_owned(), client.clone());
    client
}

impl Memo {
    /// The hash and facts of Bearer `token`, decoded once; `decoded` is
    /// its JWT when the caller has decoded it already.
    fn bearer(
        &mut self,
        token: String,
        decoded: Option<&Result<JwtInfo, DecodeError>>,
    ) -> &(TokenHash, BearerFacts) {
        if self.bearers.len() >= REMEMBERED_TOKENS && !self.bearers.contains_key(&token) {
            self.bearers.clear();
        }
        match self.bearers.entry(token) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(new) => {
                let hash = TokenHash::of(new.key());
                let print = hash.short();
                let facts = match decoded {
                    Some(decoded) => bearer_facts(decoded, new.key(), &print),
                    None => bearer_facts(&jwt::decode(new.key()), new.key(), &print),
                };
                new.insert((hash, facts))
            }
        }
    }
}

fn credentials(local: &mut Local, memo: &mut Memo) {
    let Some(value) = local.flow.request.headers.get("authorization") else {
        return;
    };
    match auth::parse_authorization(value) {
        Credentials::Bearer(token) => {
            let (hash, facts) = memo.bearer(token, None);
            // The short fingerprint is the full one's first 12 digits.
            let print = hash.short();
            local.bearer_hash = Some(*hash);
            local.bearer_exp = facts.exp;
            local.bearer_nbf = facts.nbf;
            local.annotations.extend(facts.annotations.iter().cloned());
            local.bearer = Some(Box::new(BearerUse {
                fingerprint: print,
                issued_by: None,
                expired: false,
                not_yet_valid: false,
            }));
        }
        Credentials::Basic {
            user,
            ecr_expiration,
        } => {
            local.annotations.push(Annotation::info(
                AnnotationKind::Basic,
                format!(
                    "Basic credentials of user {:?} (password not shown)",
                    errors::one_line(&user)
                ),
            ));
            if let Some(hint) = user_hint(&user, local.url.as_ref()) {
                local
                    .annotations
                    .push(Annotation::info(AnnotationKind::Basic, hint));
            }
            if let Some(expiration) = ecr_expiration {
                let at = local.start().div_euclid(1_000_000_000);
                let when = crate::http::unix_to_rfc3339(expiration);
                local.annotations.push(if at > expiration {
                    Annotation::error(
                        AnnotationKind::Basic,
                        format!(
                            "the ECR password expired at {when}, {} s before this request: run aws ecr get-login-password again",
                            at - expiration
                        ),
                    )
                } else {
                    Annotation::info(
                        AnnotationKind::Basic,
                        format!("the ECR password is valid until {when}"),
                    )
                });
            }
            local.basic_user = Some(user);
        }
        Credentials::BadBasic(reason) => local.annotations.push(Annotation::warning(
            AnnotationKind::Basic,
            format!("malformed Basic credentials: {reason}"),
        )),
        Credentials::Other(scheme) => local.annotations.push(Annotation::info(
            AnnotationKind::Authorization,
            format!("{scheme} credentials"),
        )),
    }
}

/// The annotations and validity times of `Bearer` token `print`
/// (`token`, whose JWT decoded as `decoded`).
fn bearer_facts(decoded: &Result<JwtInfo, DecodeError>, token: &str, print: &str) -> BearerFacts {
    let mut facts = BearerFacts {
        exp: None,
        nbf: None,
        annotations: Vec::new(),
    };
    let text = match decoded {
        Ok(info) => {
            facts.exp = info.claims.exp.as_ref().map(|t| t.unix);
            facts.nbf = info.claims.nbf.as_ref().map(|t| t.unix);
            let grants: Vec<String> = info.claims.access.iter().map(access_scope).collect();
            let expiry = info
                .claims
                .exp
                .as_ref()
                .map(|t| format!(", expires {}", t.utc))
                .unwrap_or_default();
            format!(
                "Bearer token {print} (JWT granting {}{expiry})",
                if grants.is_empty() {
                    "no repository access".to_owned()
                } else {
                    grants.join(" ")
                }
            )
        }
        Err(e) => {
            if looks_like_jwt(token) {
                facts.annotations.push(Annotation::warning(
                    AnnotationKind::Jwt,
                    format!("Bearer token {print} looks like a JWT but does not decode: {e}"),
                ));
            }
            format!("Bearer token {print} (opaque, not a JWT)")
        }
    };
    facts
        .annotations
        .push(Annotation::info(AnnotationKind::Bearer, text));
    facts
}

fn challenges(local: &mut Local) {
    let values: Vec<String> = local
        .response_headers()
        .map(|h| h.get_all("www-authenticate").map(str::to_owned).collect())
        .unwrap_or_default();
    for value in values {
        let (parsed, problem) = auth::parse_challenges(&value);
        if let Some(problem) = problem {
            local.annotations.push(Annotation::warning(
                AnnotationKind::Challenge,
                format!("malformed WWW-Authenticate ({problem}): {value}"),
            ));
        }
        for challenge in &parsed {
            local.annotations.push(Annotation::info(
                AnnotationKind::Challenge,
                challenge_text(challenge),
            ));
            if let Some(error) = &challenge.error {
                local.annotations.push(Annotation::warning(
                    AnnotationKind::Challenge,
                    challenge_error_text(error, &challenge.scope),
                ));
            }
        }
        local.challenges.extend(parsed);
    }
}

fn issued_token(local: &mut Local, memo: &mut Memo) {
    let FlowKind::Token { scopes, .. } = &local.kind else {
        return;
    };
    let requested = scopes.clone();
    let Some(response) = &local.flow.response else {
        return;
    };
    if !(200..300).contains(&response.status) {
        return;
    }
    let Some(body) = decoded_body(&response.body, &response.headers) else {
        local.annotations.push(Annotation::warning(
            AnnotationKind::Token,
            "the token answer is not (wholly) in the capture",
        ));
        return;
    };
    let answer = match auth::parse_token_response(&body) {
        Ok(answer) => answer,
        Err(reason) => {
            local.annotations.push(Annotation::warning(
                AnnotationKind::Token,
                reason.to_string(),
            ));
            return;
        }
    };
    let Some(token) = answer.token else {
        match &answer.refresh_token {
            // ACR's /oauth2/exchange answers a refresh token only.
            Some(refresh) => {
                let expiry = jwt::decode(refresh)
                    .ok()
                    .and_then(|j| j.claims.exp)
                    .map(|exp| format!(", valid until {}", exp.utc))
                    .unwrap_or_default();
                local.annotations.push(Annotation::info(
                    AnnotationKind::Token,
                    format!(
                        "issued refresh token {}{expiry}, no access token: the client trades it for one at the token endpoint (as with ACR's /oauth2/exchange)",
                        fingerprint(refresh)
                    ),
                ));
            }
            None => local.annotations.push(Annotation::warning(
                AnnotationKind::Token,
                "the answer holds no token or access_token",
            )),
        }
        return;
    };
    if answer.conflicting {
        local.annotations.push(Annotation::warning(
            AnnotationKind::Token,
            "token and access_token differ; token is used",
        ));
    }
    let decoded = jwt::decode(&token);
    // The client sends this token next, as its Bearer credential: what it
    // says there is found now, not decoded again.
    let hash = memo.bearer(token.clone(), Some(&decoded)).0;
    let (jwt, opaque_reason) = match decoded {
        Ok(info) => (Some(info), None),
        Err(e) => {
            if looks_like_jwt(&token) {
                local.annotations.push(Annotation::warning(
                    AnnotationKind::Jwt,
                    format!("the issued token looks like a JWT but does not decode: {e}"),
                ));
            }
            (None, Some(e.to_string()))
        }
    };
    let granted: Vec<Access> = jwt
        .as_ref()
        .map(|j| j.claims.access.clone())
        .unwrap_or_default();
    let missing_grants = if jwt.is_some() {
        missing(&requested, &granted)
    } else {
        Vec::new()
    };
    let info = TokenInfo {
        fingerprint: fingerprint(&token),
        jwt,
        opaque_reason,
        requested_scopes: requested,
        granted,
        missing_grants,
        expires_in: answer.expires_in,
        issued_at: answer.issued_at,
        refresh_token: answer.refresh_token.as_deref().map(fingerprint),
    };
    token_annotations(local, &info);
    audience(local, &info);
    local.issued_hash = Some(hash);
    local.token = Some(Box::new(info));
}

/// A JWT whose `aud` is not the service asked for is refused by the registry
/// ("token intended for another audience"), which the client only sees as
/// `invalid_token`.
fn audience(local: &mut Local, info: &TokenInfo) {
    let FlowKind::Token {
        service: Some(service),
        ..
    } = &local.kind
    else {
        return;
    };
    let Some(jwt) = &info.jwt else {
        return;
    };
    if !jwt.claims.aud.is_empty() && !jwt.claims.aud.iter().any(|a| a == service) {
        local.annotations.push(Annotation::warning(
            AnnotationKind::Token,
            format!(
                "the token's aud ({}) is not the service asked for ({}): the registry will refuse it as meant for another audience (invalid_token)",
                errors::one_line(&jwt.claims.aud.join(", ")),
                errors::one_line(service)
            ),
        ));
    }
}

/// `client_id` names the client asking for a token (`docker`,
/// `containerd-client`, `containers/image`, …).
fn client_id(local: &mut Local) {
    let from_query = local.url.as_ref().and_then(|u| query_first(u, "client_id"));
    let from_form =
        decoded_body(&local.flow.request.body, &local.flow.request.headers).and_then(|body| {
            url::form_urlencoded::parse(&body)
                .find(|(k, _)| k == "client_id")
                .map(|(_, v)| v.into_owned())
        });
    if let Some(id) = from_form.or(from_query) {
        local.annotations.push(Annotation::info(
            AnnotationKind::Token,
            format!("client_id {}", errors::one_line(&id)),
        ));
    }
}

/// JWTs start with the base64 of `{"`, and have dots between their parts.
fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") || token.matches('.').count() >= 2
}

/// Requested `type:name:action` triples that no access entry grants.
fn missing(requested: &[String], granted: &[Access]) -> Vec<String> {
    let mut out = Vec::new();
    for scope in requested {
        let Some((resource_type, rest)) = scope.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        for action in actions.split(',').filter(|a| !a.is_empty()) {
            let ok = granted.iter().any(|g| {
                g.resource_type == resource_type
                    && g.name == name
                    && g.actions.iter().any(|a| a == action || a == "*")
            });
            if !ok {
                out.push(format!("{resource_type}:{name}:{action}"));
            }
        }
    }
    out
}

fn upload_details(local: &mut Local, options: &Options) {
    let is_upload = matches!(
        local.kind,
        FlowKind::UploadStart { .. }
            | FlowKind::UploadMount { .. }
            | FlowKind::UploadChunk { .. }
            | FlowKind::UploadStatus { .. }
            | FlowKind::UploadFinish { .. }
            | FlowKind::UploadCancel { .. }
    );
    if !is_upload {
        return;
    }
    let secret = options.registry_secret.as_deref();
    if let Some(value) = local.url.as_ref().and_then(|u| query_first(u, "_state")) {
        local.request_state = decode_state(local, &value, secret, "request").map(Box::new);
    }
    let location_state = local
        .location
        .as_ref()
        .and_then(|l| query_first(l, "_state"));
    if let Some(value) = location_state {
        local.response_state = decode_state(local, &value, secret, "Location").map(Box::new);
    }
    local.response_upload_id = local
        .location
        .as_ref()
        .and_then(|l| upload_id_in_path(l.path()))
        .or_else(|| {
            local
                .response_header("docker-upload-uuid")
                .map(str::to_owned)
        });
    if let Some(range) = local.response_header("range").map(str::to_owned) {
        local.annotations.push(Annotation::info(
            AnnotationKind::Range,
            format!("registry holds bytes {range}"),
        ));
    }
}

fn decode_state(
    local: &mut Local,
    value: &str,
    secret: Option<&[u8]>,
    place: &str,
) -> Option<StateInfo> {
    match state::decode(value, secret) {
        Ok(info) => {
            let hmac = match info.hmac {
                HmacStatus::Valid => "HMAC valid",
                HmacStatus::Invalid => "HMAC INVALID for the given secret",
                HmacStatus::NotChecked => "HMAC not checked",
            };
            let text = format!(
                "_state ({place}): {} upload {} at offset {}, started {}; {hmac}",
                info.name, info.uuid, info.offset, info.started_at
            );
            local.annotations.push(if info.hmac == HmacStatus::Invalid {
                Annotation::error(AnnotationKind::State, text)
            } else {
                Annotation::info(AnnotationKind::State, text)
            });
            Some(info)
        }
        Err(e) => {
            local.annotations.push(Annotation::warning(
                AnnotationKind::State,
                format!("_state ({place}): {e}"),
            ));
            None
        }
    }
}

/// The id in `…/blobs/uploads/<id>`.
pub(crate) fn upload_id_in_path(path: &str) -> Option<String> {
    let (_, id) = path.rsplit_once("/blobs/uploads/")?;
    let id = id.trim_end_matches('/');
    (!id.is_empty() && !id.contains('/')).then(|| id.to_owned())
}

fn manifest_body(local: &mut Local) {
    let (body, headers) = match (&local.kind, &local.flow.response) {
        (FlowKind::ManifestPut { .. }, _) => {
            (&local.flow.request.body, &local.flow.request.headers)
        }
        (FlowKind::ManifestGet { .. }, Some(r)) if (200..300).contains(&r.status) => {
            (&r.body, &r.headers)
        }
        _ => return,
    };
    let Some(bytes) = decoded_body(body, headers) else {
        local.annotations.push(Annotation::info(
            AnnotationKind::Manifest,
            "the manifest body is not (wholly) in the capture",
        ));
        return;
    };
    let content_type = headers.get("content-type").map(str::to_owned);
    match manifest::decode(&bytes, content_type.as_deref()) {
        Ok(mut info) => {
            info.digest = Some(format!(
                "sha256:{}",
                hex::encode(sha2::Sha256::digest(&bytes))
            ));
            let text = manifest_text(&info);
            local
                .annotations
                .push(Annotation::info(AnnotationKind::Manifest, text));
            for problem in &info.problems {
                local.annotations.push(Annotation::warning(
                    AnnotationKind::Manifest,
                    problem.clone(),
                ));
            }
            let announced = local
                .response_header("docker-content-digest")
                .map(str::to_owned);
            if let (Some(announced), Some(computed)) = (announced, &info.digest)
                && announced.starts_with("sha256:")
                && &announced != computed
            {
                local.annotations.push(Annotation::error(
                    AnnotationKind::Digest,
                    format!(
                        "Docker-Content-Digest {announced} differs from the digest of the manifest bytes {computed}"
                    ),
                ));
            }
            local.manifest = Some(Box::new(info));
        }
        Err(reason) => local.annotations.push(Annotation::warning(
            AnnotationKind::Manifest,
            reason.to_string(),
        )),
    }
}

fn error_body(local: &mut Local) {
    let Some(response) = &local.flow.response else {
        return;
    };
    let status = response.status;
    if let Some(after) = response.headers.get("retry-after") {
        local.annotations.push(Annotation::warning(
            AnnotationKind::RateLimit,
            format!(
                "Retry-After: {}: the server asks the client to wait before retrying",
                errors::one_line(after)
            ),
        ));
    }
    if status < 400 {
        return;
    }
    let with_credentials = local.flow.request.headers.get("authorization").is_some();
    // A 401 to a request without credentials is the usual start of the
    // token dance, not a problem.
    let expected = status == 401 && !with_credentials;
    let body = decoded_body(&response.body, &response.headers).unwrap_or_default();
    let list = match errors::parse_error_body(&body) {
        Ok(list) => list,
        Err(reason) => {
            local.annotations.push(Annotation::warning(
                AnnotationKind::RegistryError,
                format!("malformed registry error body: {reason}"),
            ));
            return;
        }
    };
    if list.is_empty() {
        let method = local.flow.method().to_owned();
        let text = match errors::other_error_text(&body) {
            Some(said) => format!("{status}: the server said \"{said}\""),
            None => match errors::bare_status(status, &method) {
                Some(meaning) => meaning.to_owned(),
                None => return,
            },
        };
        local.annotations.push(if expected {
            Annotation::info(AnnotationKind::RegistryError, text)
        } else {
            Annotation::error(AnnotationKind::RegistryError, text)
        });
        return;
    }
    let accept = Some(
        local
            .flow
            .request
            .headers
            .get_all("accept")
            .collect::<Vec<_>>()
            .join(", "),
    )
    .filter(|a| !a.is_empty());
    let mut list = list;
    for error in &mut list {
        if error.code == "UNAUTHORIZED" && with_credentials {
            error.explanation = "The registry did not accept the credentials sent for this action: the token lacks the scope, has expired, or was issued for another service.".to_owned();
        }
        if error.code == "MANIFEST_UNKNOWN" && errors::negotiation_failure(&error.message) {
            error.explanation = format!(
                "The manifest exists, but its media type is not one the request's Accept allows ({}): the client must accept it (an OCI index or a Docker manifest list, for a multi-platform image).",
                accept
                    .as_deref()
                    .map_or_else(|| "no Accept sent".to_owned(), errors::one_line)
            );
        }
    }
    for error in &list {
        let detail = error
            .detail
            .as_deref()
            .map(|d| format!(" (detail: {})", errors::one_line(d)))
            .unwrap_or_default();
        let text = format!(
            "{}: {}{detail}. {}",
            errors::one_line(&error.code),
            errors::one_line(&error.message),
            error.explanation
        );
        local
            .annotations
            .push(if expected && error.code == "UNAUTHORIZED" {
                Annotation::info(AnnotationKind::RegistryError, text)
            } else {
                Annotation::error(AnnotationKind::RegistryError, text)
            });
    }
    local.registry_errors = list;
}

/// A `/v2/` answered 200 with an HTML page and no
/// `Docker-Distribution-API-Version`: a web server or a proxy's portal
/// answered, not a registry.
fn not_a_registry(local: &mut Local) {
    if !matches!(local.kind, FlowKind::ApiCheck { .. }) || local.status() != Some(200) {
        return;
    }
    let html = local
        .response_header("content-type")
        .is_some_and(|c| c.to_ascii_lowercase().contains("text/html"));
    if html
        && local
            .response_header("docker-distribution-api-version")
            .is_none()
    {
        local.annotations.push(Annotation::warning(
            AnnotationKind::Exchange,
            "an HTML page without Docker-Distribution-API-Version: a web server or a proxy answered, not a registry",
        ));
    }
}

/// `Warning: 299 - "…"` headers (distribution spec): shown as the registry wrote them.
fn warnings(local: &mut Local) {
    let texts: Vec<String> = local
        .response_headers()
        .map(|h| {
            h.get_all("warning")
                .map(|v| {
                    let v = v.trim();
                    let text = v
                        .split_once('"')
                        .and_then(|(_, rest)| rest.rsplit_once('"'))
                        .map_or(v, |(inner, _)| inner);
                    errors::one_line(text)
                })
                .collect()
        })
        .unwrap_or_default();
    for text in texts {
        local.annotations.push(Annotation::warning(
            AnnotationKind::Warning,
            format!("the registry warns: {text}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(name: &str, actions: &[&str]) -> Access {
        Access {
            resource_type: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
            parameters: Default::default(),
        }
    }

    #[test]
    fn missing_grants_are_per_action() {
        let requested = vec![
            "repository:lab/copy:push,pull".to_owned(),
            "repository:lab/seq:pull".to_owned(),
        ];
        let granted = vec![access("lab/copy", &["pull"]), access("lab/seq", &["*"])];
        assert_eq!(
            missing(&requested, &granted),
            vec!["repository:lab/copy:push"]
        );
        assert!(missing(&["garbage".into()], &[]).is_empty());
    }

    #[test]
    fn upload_ids_in_paths() {
        assert_eq!(
            upload_id_in_path("/v2/a/b/blobs/uploads/8429c964-3a56"),
            Some("8429c964-3a56".into())
        );
        assert_eq!(upload_id_in_path("/v2/a/blobs/uploads/"), None);
        assert_eq!(upload_id_in_path("/v2/a/blobs/sha256:x"), None);
    }
}
