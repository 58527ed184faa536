//! The decoder's output types. Everything here is data: the TUI, the HAR
//! export and `regtap inspect` read it, and `--json` prints it as is.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::hash::HashMap;

/// What the analysis needs besides the flows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The registry's `http.secret`, to verify the HMAC of `_state` values.
    pub registry_secret: Option<Vec<u8>>,
}

/// Everything decoded from one capture.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Analysis {
    /// One per input flow, sorted by `(request_start, id)`.
    pub flows: Vec<FlowAnalysis>,
    pub sessions: Vec<UploadSession>,
    /// Login, push, pull and other operations, in time order.
    pub operations: Vec<Operation>,
    /// Problems found in the capture: every warning or error annotation of a
    /// flow, and the ones that concern no single flow.
    pub diagnostics: Vec<Diagnostic>,
    /// The upstream (corporate) proxies the flows went through, by URL,
    /// with how many flows each: a failure may be the proxy's, not the
    /// registry's. Said by `regtap inspect`'s text; in JSON each flow's is
    /// in the capture (and the HAR), not in the analysis.
    #[serde(skip)]
    pub upstream_proxies: Vec<UpstreamProxyUse>,
    /// Position in `flows` of each flow id (the first, when ids repeat).
    #[serde(skip)]
    pub(crate) positions: HashMap<u64, usize>,
}

/// Flows that went through one upstream proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamProxyUse {
    /// `http://host:port`, as the capture records it.
    pub url: String,
    pub flows: usize,
}

impl Analysis {
    /// The analysis of a flow, by id: by the index the decoder built, or
    /// (for an analysis assembled by hand) by a search.
    pub fn flow(&self, id: u64) -> Option<&FlowAnalysis> {
        self.positions
            .get(&id)
            .and_then(|&i| self.flows.get(i))
            .filter(|f| f.flow_id == id)
            .or_else(|| self.flows.iter().find(|f| f.flow_id == id))
    }

    /// Each flow with its analysis, in the order of `flows`: the one way
    /// every front end pairs them.
    pub fn pair<'a>(
        &'a self,
        flows: &'a [regtap_capture::Flow],
    ) -> impl Iterator<Item = (&'a regtap_capture::Flow, Option<&'a FlowAnalysis>)> + 'a {
        flows.iter().map(move |flow| (flow, self.flow(flow.id)))
    }
}

/// What one flow means to a registry client.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowAnalysis {
    pub flow_id: u64,
    pub kind: FlowKind,
    /// One line for people.
    pub summary: String,
    /// Everything decoded about this flow, in display order.
    pub annotations: Vec<Annotation>,
    /// A token issued by this flow (token endpoint response), decoded.
    pub token: Option<Box<TokenInfo>>,
    /// The Bearer token this request carried.
    pub bearer: Option<BearerUse>,
    /// User name of the Basic credentials carried (never the password).
    pub basic_user: Option<String>,
    /// `_state` decoded from the request URL, else from the response `Location`.
    pub upload_state: Option<Box<StateInfo>>,
    /// Index into [`Analysis::sessions`].
    pub session: Option<usize>,
    /// Manifest sent (PUT) or received (GET).
    pub manifest: Option<Box<ManifestInfo>>,
    pub registry_errors: Vec<RegistryError>,
    /// Parsed `WWW-Authenticate` challenges of the response.
    pub challenges: Vec<Challenge>,
    /// Docker Hub style rate-limit headers of the response.
    pub rate_limit: Option<RateLimit>,
    /// Index into [`Analysis::operations`].
    pub operation: Option<usize>,
    /// The program that sent the request.
    pub client: Option<Client>,
    /// A blob or manifest fetched by digest, checked against that digest.
    pub download: Option<Box<DownloadCheck>>,
}

/// The program that sent a request, from its `User-Agent` (and, for a
/// request whose User-Agent names only Go's HTTP library, the program seen
/// on the same client connection).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Client {
    /// Stable lower-case program name: `dockerd`, `containerd`, `skopeo`,
    /// `podman`, `buildah`, `crane`, `go-containerregistry`, `regclient`,
    /// `oras-go`, `python-requests`, `curl`, `go-http-client`; otherwise the
    /// first product token of the User-Agent, lower-cased.
    pub program: String,
    pub version: Option<String>,
    /// What the program says it acts for (dockerd's `UpstreamClient(…)`).
    pub detail: Option<String>,
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(version) => write!(f, "{} {version}", self.program),
            None => f.write_str(&self.program),
        }
    }
}

/// A blob or manifest body fetched by digest, compared with that digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DownloadCheck {
    /// The digest the request asked for.
    pub digest: String,
    pub verdict: DigestCheck,
    /// The response's `Docker-Content-Digest`, when it sent one.
    pub content_digest_header: Option<String>,
    /// `[start, end)` of a `206 Partial Content` answer, and the blob's size
    /// when `Content-Range` gave it.
    pub range: Option<ByteRange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
    pub total: Option<u64>,
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    Tag(String),
    Digest(String),
}

impl Reference {
    /// A digest is `algorithm:hex`; a tag never contains `:`.
    pub fn parse(text: &str) -> Reference {
        if text.contains(':') {
            Reference::Digest(text.to_owned())
        } else {
            Reference::Tag(text.to_owned())
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Reference::Tag(s) | Reference::Digest(s) => s,
        }
    }

    pub fn is_digest(&self) -> bool {
        matches!(self, Reference::Digest(_))
    }
}

impl fmt::Display for Reference {
    /// `:latest` or `@sha256:…`, ready to follow a repository name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(tag) => write!(f, ":{tag}"),
            Reference::Digest(digest) => write!(f, "@{digest}"),
        }
    }
}

/// How a token was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenGrant {
    /// Docker token protocol: `GET` with `service`, `scope`, `account`.
    Get,
    /// OAuth2 `POST` with `grant_type=password`.
    Password,
    /// OAuth2 `POST` with `grant_type=refresh_token`.
    RefreshToken,
    /// OAuth2 `POST` with another `grant_type`.
    Other(String),
}

/// The registry meaning of a flow. `registry` is the `host[:port]` the
/// request went to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum FlowKind {
    ApiCheck {
        registry: String,
    },
    Token {
        /// The token server's `host[:port]`.
        server: String,
        grant: TokenGrant,
        service: Option<String>,
        scopes: Vec<String>,
        account: Option<String>,
        offline_token: bool,
    },
    BlobHead {
        registry: String,
        repository: String,
        digest: String,
    },
    BlobGet {
        registry: String,
        repository: String,
        digest: String,
        /// The request's `Range` header.
        range: Option<String>,
        /// Where a 3xx answer sent the client (a storage host).
        redirect_to: Option<String>,
        /// Set on the follow-up GET to the storage host: the flow that redirected.
        redirected_from: Option<u64>,
    },
    BlobDelete {
        registry: String,
        repository: String,
        digest: String,
    },
    UploadStart {
        registry: String,
        repository: String,
        /// `?digest=`: a monolithic upload in one POST.
        digest: Option<String>,
    },
    UploadMount {
        registry: String,
        repository: String,
        digest: String,
        from: Option<String>,
    },
    UploadChunk {
        registry: String,
        repository: String,
        upload_id: String,
        content_range: Option<String>,
    },
    UploadStatus {
        registry: String,
        repository: String,
        upload_id: String,
    },
    UploadFinish {
        registry: String,
        repository: String,
        upload_id: String,
        digest: Option<String>,
    },
    UploadCancel {
        registry: String,
        repository: String,
        upload_id: String,
    },
    ManifestHead {
        registry: String,
        repository: String,
        reference: Reference,
    },
    ManifestGet {
        registry: String,
        repository: String,
        reference: Reference,
    },
    ManifestPut {
        registry: String,
        repository: String,
        reference: Reference,
    },
    ManifestDelete {
        registry: String,
        repository: String,
        reference: Reference,
    },
    TagsList {
        registry: String,
        repository: String,
    },
    Catalog {
        registry: String,
    },
    Referrers {
        registry: String,
        repository: String,
        digest: String,
    },
    Unknown,
}

impl FlowKind {
    /// Short stable kind name.
    pub fn label(&self) -> &'static str {
        match self {
            FlowKind::ApiCheck { .. } => "api-check",
            FlowKind::Token { .. } => "token",
            FlowKind::BlobHead { .. } => "blob-head",
            FlowKind::BlobGet { .. } => "blob-get",
            FlowKind::BlobDelete { .. } => "blob-delete",
            FlowKind::UploadStart { .. } => "upload-start",
            FlowKind::UploadMount { .. } => "upload-mount",
            FlowKind::UploadChunk { .. } => "upload-chunk",
            FlowKind::UploadStatus { .. } => "upload-status",
            FlowKind::UploadFinish { .. } => "upload-finish",
            FlowKind::UploadCancel { .. } => "upload-cancel",
            FlowKind::ManifestHead { .. } => "manifest-head",
            FlowKind::ManifestGet { .. } => "manifest-get",
            FlowKind::ManifestPut { .. } => "manifest-put",
            FlowKind::ManifestDelete { .. } => "manifest-delete",
            FlowKind::TagsList { .. } => "tags-list",
            FlowKind::Catalog { .. } => "catalog",
            FlowKind::Referrers { .. } => "referrers",
            FlowKind::Unknown => "unknown",
        }
    }

    /// The registry `host[:port]`, for every kind that talks to one.
    pub fn registry(&self) -> Option<&str> {
        match self {
            FlowKind::ApiCheck { registry }
            | FlowKind::Catalog { registry }
            | FlowKind::BlobHead { registry, .. }
            | FlowKind::BlobGet { registry, .. }
            | FlowKind::BlobDelete { registry, .. }
            | FlowKind::UploadStart { registry, .. }
            | FlowKind::UploadMount { registry, .. }
            | FlowKind::UploadChunk { registry, .. }
            | FlowKind::UploadStatus { registry, .. }
            | FlowKind::UploadFinish { registry, .. }
            | FlowKind::UploadCancel { registry, .. }
            | FlowKind::ManifestHead { registry, .. }
            | FlowKind::ManifestGet { registry, .. }
            | FlowKind::ManifestPut { registry, .. }
            | FlowKind::ManifestDelete { registry, .. }
            | FlowKind::TagsList { registry, .. }
            | FlowKind::Referrers { registry, .. } => Some(registry),
            FlowKind::Token { .. } | FlowKind::Unknown => None,
        }
    }

    /// The repository name, for every kind that names one.
    pub fn repository(&self) -> Option<&str> {
        match self {
            FlowKind::BlobHead { repository, .. }
            | FlowKind::BlobGet { repository, .. }
            | FlowKind::BlobDelete { repository, .. }
            | FlowKind::UploadStart { repository, .. }
            | FlowKind::UploadMount { repository, .. }
            | FlowKind::UploadChunk { repository, .. }
            | FlowKind::UploadStatus { repository, .. }
            | FlowKind::UploadFinish { repository, .. }
            | FlowKind::UploadCancel { repository, .. }
            | FlowKind::ManifestHead { repository, .. }
            | FlowKind::ManifestGet { repository, .. }
            | FlowKind::ManifestPut { repository, .. }
            | FlowKind::ManifestDelete { repository, .. }
            | FlowKind::TagsList { repository, .. }
            | FlowKind::Referrers { repository, .. } => Some(repository),
            FlowKind::ApiCheck { .. }
            | FlowKind::Catalog { .. }
            | FlowKind::Token { .. }
            | FlowKind::Unknown => None,
        }
    }

    /// The request body is (part of) a blob: upload POST, PATCH, PUT.
    pub fn sends_blob_bytes(&self) -> bool {
        matches!(
            self,
            FlowKind::UploadStart { .. }
                | FlowKind::UploadChunk { .. }
                | FlowKind::UploadFinish { .. }
        )
    }

    /// The response body is (part of) a blob.
    pub fn receives_blob_bytes(&self) -> bool {
        matches!(self, FlowKind::BlobGet { .. })
    }

    /// The upload id in the path, for the kinds that address an upload.
    pub fn upload_id(&self) -> Option<&str> {
        match self {
            FlowKind::UploadChunk { upload_id, .. }
            | FlowKind::UploadStatus { upload_id, .. }
            | FlowKind::UploadFinish { upload_id, .. }
            | FlowKind::UploadCancel { upload_id, .. } => Some(upload_id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// What an annotation is about. Serialized as the short key front ends and
/// `inspect --json` have always shown (`"_state"`, `"rate-limit"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnnotationKind {
    #[serde(rename = "_state")]
    State,
    Authorization,
    Basic,
    Bearer,
    Blobs,
    Challenge,
    Chunk,
    Digest,
    Exchange,
    Granted,
    Jwt,
    Manifest,
    Mount,
    Range,
    RateLimit,
    Redirect,
    RegistryError,
    RequestBody,
    Scope,
    Token,
    Url,
    Warning,
    Negotiation,
    Artifact,
    Quota,
    Pagination,
    Mirror,
}

impl AnnotationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnnotationKind::State => "_state",
            AnnotationKind::Authorization => "authorization",
            AnnotationKind::Basic => "basic",
            AnnotationKind::Bearer => "bearer",
            AnnotationKind::Blobs => "blobs",
            AnnotationKind::Challenge => "challenge",
            AnnotationKind::Chunk => "chunk",
            AnnotationKind::Digest => "digest",
            AnnotationKind::Exchange => "exchange",
            AnnotationKind::Granted => "granted",
            AnnotationKind::Jwt => "jwt",
            AnnotationKind::Manifest => "manifest",
            AnnotationKind::Mount => "mount",
            AnnotationKind::Range => "range",
            AnnotationKind::RateLimit => "rate-limit",
            AnnotationKind::Redirect => "redirect",
            AnnotationKind::RegistryError => "registry-error",
            AnnotationKind::RequestBody => "request-body",
            AnnotationKind::Scope => "scope",
            AnnotationKind::Token => "token",
            AnnotationKind::Url => "url",
            AnnotationKind::Warning => "warning",
            AnnotationKind::Negotiation => "negotiation",
            AnnotationKind::Artifact => "artifact",
            AnnotationKind::Quota => "quota",
            AnnotationKind::Pagination => "pagination",
            AnnotationKind::Mirror => "mirror",
        }
    }
}

impl fmt::Display for AnnotationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decoded fact or problem about a flow: `label` says what it is about,
/// `text` is the sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Annotation {
    pub severity: Severity,
    pub label: AnnotationKind,
    pub text: String,
}

impl Annotation {
    pub fn info(label: AnnotationKind, text: impl Into<String>) -> Self {
        Annotation {
            severity: Severity::Info,
            label,
            text: text.into(),
        }
    }

    pub fn warning(label: AnnotationKind, text: impl Into<String>) -> Self {
        Annotation {
            severity: Severity::Warning,
            label,
            text: text.into(),
        }
    }

    pub fn error(label: AnnotationKind, text: impl Into<String>) -> Self {
        Annotation {
            severity: Severity::Error,
            label,
            text: text.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub flow_id: Option<u64>,
    pub severity: Severity,
    pub message: String,
}

/// A user-level operation: what a `docker login/push/pull` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operation {
    /// 1-based, display order.
    pub index: usize,
    pub kind: OperationKind,
    /// "push lab/app:latest", "login registry.test:5000", "pull lab/app@sha256:…".
    pub title: String,
    pub status: OperationStatus,
    pub start_ns: i64,
    pub end_ns: i64,
    pub steps: Vec<Step>,
    /// All flows of the operation, in time order.
    pub flow_ids: Vec<u64>,
    /// The program that made the operation's requests.
    pub client: Option<Client>,
    /// Docker Hub's pull accounting, when the operation talked to a
    /// registry that counts pulls (Docker Hub, or one sending `ratelimit-*`).
    pub quota: Option<PullQuota>,
}

/// What an operation cost in Docker Hub pulls: every manifest GET counts (a
/// multi-platform pull counts the index and the platform's manifest), a
/// HEAD is free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullQuota {
    pub pulls_counted: u64,
    pub free_heads: u64,
    /// `ratelimit-remaining` at the first and the last answer that carried it.
    pub remaining_first: Option<u64>,
    pub remaining_last: Option<u64>,
    pub limit: Option<u64>,
    pub window_seconds: Option<u64>,
    /// 429 answers (rate limited).
    pub refused: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OperationKind {
    Login {
        registry: String,
    },
    Push {
        registry: String,
        repository: String,
        /// The tag (or digest) the manifest was pushed to; `None` before the manifest PUT.
        reference: Option<Reference>,
    },
    Pull {
        registry: String,
        repository: String,
        reference: Option<Reference>,
    },
    /// A manifest read from one repository and written to another (or to
    /// another tag): `crane copy`, `skopeo copy`, `crane tag`.
    Copy {
        source_registry: String,
        source_repository: String,
        source_reference: Option<Reference>,
        registry: String,
        repository: String,
        reference: Option<Reference>,
    },
    Other,
}

impl OperationKind {
    /// The registry the operation worked on (for a copy, the one written to).
    pub fn registry(&self) -> Option<&str> {
        match self {
            OperationKind::Login { registry }
            | OperationKind::Push { registry, .. }
            | OperationKind::Pull { registry, .. }
            | OperationKind::Copy { registry, .. } => Some(registry),
            OperationKind::Other => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OperationStatus {
    Succeeded,
    Failed { reason: String },
    Incomplete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// 1-based.
    pub number: usize,
    /// One line.
    pub explanation: String,
    pub flow_ids: Vec<u64>,
    pub annotations: Vec<Annotation>,
}

/// All requests of one blob upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadSession {
    /// Position in [`Analysis::sessions`].
    pub index: usize,
    pub registry: String,
    pub repository: String,
    /// From the `Location` path, `Docker-Upload-UUID` or `_state`.
    pub upload_id: Option<String>,
    pub start: UploadStart,
    /// POST, PATCHes, PUT, GET status, DELETE, in time order.
    pub flow_ids: Vec<u64>,
    pub chunks: Vec<Chunk>,
    pub total_bytes: u64,
    /// From `?digest=` (PUT, monolithic POST or mount).
    pub digest: Option<String>,
    pub digest_check: DigestCheck,
    pub outcome: SessionOutcome,
    /// Where the finished blob lives (`Location` of the final 201).
    pub blob_location: Option<String>,
}

/// How a session began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UploadStart {
    /// POST then PATCH/PUT.
    Chunked,
    /// POST `?digest=` with the whole blob.
    Monolithic,
    /// POST `?mount=&from=`: answered 201, nothing uploaded.
    Mount { from: Option<String> },
    /// POST `?mount=` answered 202: the registry started a normal upload.
    MountFallback { from: Option<String> },
    /// The capture holds no POST for this upload.
    NotSeen,
}

/// Bytes sent in one request of an upload. Offsets are byte positions in
/// the blob; `offset_end` is exclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chunk {
    pub flow_id: u64,
    pub offset_start: u64,
    pub offset_end: u64,
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the bytes sent; `None` when the recording
    /// holds no hash of them (a HAR from another tool).
    pub sha256: Option<String>,
    /// The request's `Content-Range`.
    pub content_range: Option<String>,
    /// The response's `Range` (inclusive; distribution says `0-0` both for 0 and 1 byte).
    pub server_range: Option<String>,
    /// The registry answered the request (2xx: refused chunks are not
    /// recorded); without an answer, whether it kept the bytes is unknown.
    pub acknowledged: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DigestCheck {
    Verified,
    /// regtap holds every byte and they hash to another digest.
    Mismatch {
        expected: String,
        computed: String,
    },
    NotVerifiable {
        reason: String,
    },
    Pending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionOutcome {
    Completed,
    Mounted,
    Cancelled,
    Failed,
    Open,
}

/// A token issued by a token endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenInfo {
    /// Short, non-reversible name of the token (never the token itself).
    pub fingerprint: String,
    pub jwt: Option<JwtInfo>,
    /// Why the token is not a decodable JWT, when it is not one.
    pub opaque_reason: Option<String>,
    pub requested_scopes: Vec<String>,
    pub granted: Vec<Access>,
    /// Requested `type:name:action`s that the token does not grant. Only
    /// computed when the token is a JWT (grants of opaque tokens are unknown).
    pub missing_grants: Vec<String>,
    pub expires_in: Option<u64>,
    /// `issued_at` of the response body, as sent.
    pub issued_at: Option<String>,
    /// Fingerprint of the refresh token, when one was returned.
    pub refresh_token: Option<String>,
}

/// A Bearer token carried by a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BearerUse {
    pub fingerprint: String,
    /// The flow that issued this token, when the capture holds it.
    pub issued_by: Option<u64>,
    /// The request started after the token's `exp` (or `expires_in`).
    pub expired: bool,
    /// The request started before the token's `nbf`.
    pub not_yet_valid: bool,
}

/// One entry of a token's `access` claim.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub name: String,
    pub actions: Vec<String>,
    pub parameters: BTreeMap<String, serde_json::Value>,
}

/// A decoded JWT (not verified: the decoder holds no keys).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JwtInfo {
    pub header: JwtHeader,
    pub claims: JwtClaims,
    pub signature_bytes: usize,
    /// Parts that are present but malformed (an `x5c` that is not a
    /// certificate, an `exp` that is not a number, …).
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JwtHeader {
    pub alg: Option<String>,
    pub typ: Option<String>,
    pub kid: Option<String>,
    /// Number of certificates in `x5c`.
    pub x5c_len: usize,
    /// The first `x5c` certificate (the signer).
    pub x5c_first: Option<CertInfo>,
    pub other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JwtClaims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    /// `aud` as a list, whether it was sent as a string or an array.
    pub aud: Vec<String>,
    pub exp: Option<TimeClaim>,
    pub nbf: Option<TimeClaim>,
    pub iat: Option<TimeClaim>,
    pub jti: Option<String>,
    pub access: Vec<Access>,
    /// Every other claim (registry-specific ones such as Docker Hub's
    /// `https://auth.docker.io`).
    pub other: BTreeMap<String, serde_json::Value>,
}

/// A NumericDate claim: seconds since the epoch and the same as RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimeClaim {
    pub unix: i64,
    pub utc: String,
}

/// A decoded distribution `_state` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateInfo {
    pub name: String,
    pub uuid: String,
    pub offset: i64,
    pub started_at: String,
    pub hmac: HmacStatus,
    /// Hex of the 32-byte HMAC-SHA256 that precedes the JSON.
    pub mac_hex: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HmacStatus {
    Valid,
    Invalid,
    NotChecked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ManifestSchema {
    DockerV2,
    DockerManifestList,
    OciManifest,
    OciIndex,
    DockerV1,
    Unknown,
}

/// A manifest sent or received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestInfo {
    pub media_type: String,
    pub schema: ManifestSchema,
    /// Digest of the manifest bytes, when they are in the capture.
    pub digest: Option<String>,
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    /// Entries of a manifest list or index.
    pub manifests: Vec<Descriptor>,
    /// Where the document strays from the OCI image spec (it was still read).
    pub problems: Vec<String>,
    /// OCI 1.1 `artifactType`.
    pub artifact_type: Option<String>,
    /// OCI 1.1 `subject`: the manifest this one refers to (a signature, an SBOM, …).
    pub subject: Option<Descriptor>,
    pub annotations: BTreeMap<String, String>,
    /// What the document is for, beyond its schema.
    pub purpose: ManifestPurpose,
}

/// What a manifest is for, as its media types and annotations say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ManifestPurpose {
    /// A container image, or an index of images.
    Image,
    /// An OCI artifact (`artifactType`, or a config that is not an image config).
    Artifact { artifact_type: String },
    /// BuildKit's attestation manifest (in-toto layers) for an image of an index.
    Attestation,
    /// BuildKit's registry cache (`application/vnd.buildkit.cacheconfig.v0`).
    BuildCache,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: Option<u64>,
    /// `os/architecture[/variant]` of an index entry.
    pub platform: Option<String>,
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
    /// What the descriptor points at, when it is not an ordinary image part.
    pub role: Option<DescriptorRole>,
    pub blob_status: BlobStatus,
    /// The flows that uploaded, mounted, checked or fetched this blob.
    pub blob_flow_ids: Vec<u64>,
}

/// What a descriptor points at, when it is not an ordinary image part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DescriptorRole {
    /// An index entry for BuildKit's attestations of another entry
    /// (`vnd.docker.reference.type=attestation-manifest`).
    AttestationManifest,
    /// An in-toto statement (SBOM, provenance): not image bytes.
    InToto,
    /// BuildKit's cache configuration.
    BuildCacheConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobStatus {
    /// Not seen in the capture.
    Unknown,
    /// A HEAD answered 404 and nothing put it there.
    Missing,
    /// Fetched with a successful GET.
    Downloaded,
    /// A HEAD answered 200.
    Present,
    /// Mounted from another repository.
    Mounted,
    /// Uploaded in this capture.
    Uploaded,
}

/// One entry of a registry error body `{"errors":[…]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryError {
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    /// What the code means, in one sentence.
    pub explanation: String,
}

/// One `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Challenge {
    /// `Bearer`, `Basic`, …
    pub scheme: String,
    pub realm: Option<String>,
    pub service: Option<String>,
    /// Space-separated scopes of `scope=`, split.
    pub scope: Vec<String>,
    pub error: Option<String>,
    /// Every parameter as sent, names lowercased.
    pub params: Vec<(String, String)>,
}

/// Docker Hub's pull rate-limit headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// Window in seconds (`;w=`).
    pub window_seconds: Option<u64>,
    pub source: Option<String>,
}

/// Why a value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a JWT: {0}")]
    Jwt(#[from] crate::jwt::JwtError),
    #[error("not a distribution _state value: {0}")]
    State(#[from] crate::state::StateError),
}
