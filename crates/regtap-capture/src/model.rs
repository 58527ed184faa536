//! The flow: one HTTP exchange between a client and a server, as seen by the proxy.
//!
//! A flow is recorded whole once it has finished, successfully or not. An error
//! (an upstream that refused the TLS handshake, a client that hung up mid-upload)
//! is not an HTTP error response: it is kept in [`Flow::error`], next to whatever
//! request and response data had been seen by then.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Nanoseconds since the Unix epoch (UTC).
pub type UnixNanos = i64;

/// One finished exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// Unique within one capture, increasing in the order requests started.
    pub id: u64,
    /// Address of the client that connected to the proxy, e.g. `127.0.0.1:53412`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    /// The `host:port` of the CONNECT tunnel this request came through, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_authority: Option<String>,
    /// The address the proxy connected to, when known (e.g. from `--resolve`).
    /// Through an upstream proxy, only the address a `--resolve` rule asked
    /// it to connect to (the proxy's own address is in `upstream_proxy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_addr: Option<String>,
    /// The upstream (corporate) proxy the exchange went through,
    /// `http://host:port` without credentials; absent when direct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_proxy: Option<String>,
    /// `https` or `http`.
    pub scheme: String,
    pub request: Request,
    /// Absent when no response head arrived (connect failure, client abort before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
    pub timing: Timing,
    /// Why the exchange did not complete normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<FlowError>,
    /// Set when the flow came through reverse mode (`regtap proxy --reverse`):
    /// the name the client addressed and what regtap rewrote on the way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse: Option<ReverseExchange>,
}

/// How a reverse-mode exchange differed between the client and the upstream.
///
/// The flow itself holds the exchange as the upstream saw it: `request.url`
/// is the URL regtap asked the upstream for, `response` is what the upstream
/// answered. The request headers are the client's. What the client saw
/// differently is here, every change with both values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReverseExchange {
    /// The origin the client addressed: `https://registry.internal:5000`.
    pub served_as: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rewrites: Vec<Rewrite>,
}

/// One header value regtap changed between the client and the upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewrite {
    /// `request`: the client sent `original`, the upstream got `rewritten`;
    /// `response`: the upstream sent `original`, the client got `rewritten`.
    pub direction: Direction,
    /// Lower-case header name: `host` (`:authority` for HTTP/2 clients),
    /// `location`, `www-authenticate`.
    pub header: String,
    pub original: String,
    pub rewritten: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub method: String,
    /// Absolute URL: `https://registry.test:5000/v2/lab/app/blobs/uploads/?mount=…`.
    pub url: String,
    /// `HTTP/1.1`, `HTTP/2`, …
    pub http_version: String,
    pub headers: Headers,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub status: u16,
    pub http_version: String,
    pub headers: Headers,
    pub body: Body,
}

/// Header fields in the order they were sent, repeats kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Headers(pub Vec<Header>);

impl<'de> Deserialize<'de> for Headers {
    /// Without the spare capacity a growing vector leaves: a reader of a
    /// large capture holds every flow's headers.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut headers = Vec::<Header>::deserialize(deserializer)?;
        headers.shrink_to_fit();
        Ok(Headers(headers))
    }
}

/// One header field. Serialized as a `[name, value]` pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header(pub String, pub Data);

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<Data>) {
        self.0.push(Header(name.into(), value.into()));
    }

    /// The first value of `name` (case-insensitive) that is valid UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.0.eq_ignore_ascii_case(name) && h.1.as_text().is_some())
            .and_then(|h| h.1.as_text())
    }

    /// Every UTF-8 value of `name` (case-insensitive), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| h.0.eq_ignore_ascii_case(name))
            .filter_map(|h| h.1.as_text())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<N: Into<String>, V: Into<Data>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Headers(
            iter.into_iter()
                .map(|(n, v)| Header(n.into(), v.into()))
                .collect(),
        )
    }
}

/// Bytes kept losslessly: UTF-8 text as a JSON string, anything else as
/// `{"base64": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Data {
    Text(String),
    Binary { base64: String },
}

/// Read by hand rather than as `untagged`: serde buffers every untagged
/// value before it tries the variants, and a capture holds millions of
/// header values.
impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DataVisitor)
    }
}

struct DataVisitor;

impl<'de> serde::de::Visitor<'de> for DataVisitor {
    type Value = Data;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(r#"a string or {"base64": "…"}"#)
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Data, E> {
        Ok(Data::Text(text.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Data, E> {
        Ok(Data::Text(text))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Data, A::Error> {
        let mut base64 = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "base64" {
                if base64.is_some() {
                    return Err(serde::de::Error::duplicate_field("base64"));
                }
                base64 = Some(map.next_value::<String>()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        base64
            .map(|base64| Data::Binary { base64 })
            .ok_or_else(|| serde::de::Error::missing_field("base64"))
    }
}

impl Data {
    pub fn from_bytes(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => Data::Text(text.to_owned()),
            Err(_) => Data::Binary {
                base64: BASE64.encode(bytes),
            },
        }
    }

    /// The bytes; `None` only for a `base64` field that does not decode.
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        match self {
            Data::Text(text) => Some(text.as_bytes().to_vec()),
            Data::Binary { base64 } => BASE64.decode(base64).ok(),
        }
    }

    /// No bytes at all.
    pub fn is_empty(&self) -> bool {
        match self {
            Data::Text(text) => text.is_empty(),
            Data::Binary { base64 } => base64.is_empty(),
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Data::Text(text) => Some(text),
            Data::Binary { .. } => None,
        }
    }
}

impl From<&str> for Data {
    fn from(text: &str) -> Self {
        Data::Text(text.to_owned())
    }
}

impl From<String> for Data {
    fn from(text: String) -> Self {
        Data::Text(text)
    }
}

/// What was seen of one body. Every body is counted and hashed as it streams;
/// only small ones are kept whole.
///
/// On disk a body keeps the JSON of capture format 1.0/1.1 (`complete`,
/// `inline`, `truncated`, `truncated_reason`, `stored`) (`BodyWire` in this module).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "BodyWire<'static>")]
pub struct Body {
    /// Bytes seen on the wire (after de-chunking, before any content
    /// decoding); for an imported body, the size its recorder gave (0 when
    /// it gave none).
    pub size: u64,
    /// Lowercase hex SHA-256 of those bytes; `None` when the recorder did not
    /// hash them (a HAR from another tool without the body).
    pub sha256: Option<String>,
    /// What the capture itself holds of the bytes.
    pub kept: Kept,
    /// A whole copy outside the capture, when there is one.
    pub elsewhere: Option<Elsewhere>,
    /// How the transfer of the body ended.
    pub ended: Ending,
}

/// What the capture holds of a body's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// Every byte (none for an empty body).
    Inline(Data),
    /// Only the first bytes; `None` when not even those were kept
    /// (`--max-inline 0`).
    Prefix {
        data: Option<Data>,
        reason: TruncationReason,
    },
    /// Nothing is known of the bytes: a HAR entry without its content, or an
    /// exchange whose flow the proxy never wrote.
    Unknown,
}

/// Why only a prefix of a body was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TruncationReason {
    /// Larger than what the recorder keeps inline (the proxy's
    /// `--max-inline`, or the HAR tool's own limit).
    SizeLimit,
    /// No larger than `--max-inline`, but the proxy's memory budget for
    /// inline bodies (`--inline-budget`, in bytes) was in use.
    InlineBudget { limit: u64 },
    /// A reason written by another regtap version, kept as written.
    Other(String),
}

const BUDGET_REASON_START: &str = "the proxy's memory budget for inline bodies (";
const BUDGET_REASON_END: &str = " bytes, --inline-budget) was in use by other exchanges; \
                                 size, hash and first bytes kept";

impl TruncationReason {
    /// The sentence a capture stores in `truncated_reason`; `None` for a
    /// body that was simply too large.
    pub fn sentence(&self) -> Option<String> {
        match self {
            TruncationReason::SizeLimit => None,
            TruncationReason::InlineBudget { limit } => {
                Some(format!("{BUDGET_REASON_START}{limit}{BUDGET_REASON_END}"))
            }
            TruncationReason::Other(text) => Some(text.clone()),
        }
    }

    fn from_sentence(sentence: Option<String>) -> Self {
        let Some(sentence) = sentence else {
            return TruncationReason::SizeLimit;
        };
        // Only a sentence written back identically is recognised.
        let limit = sentence
            .strip_prefix(BUDGET_REASON_START)
            .and_then(|rest| rest.strip_suffix(BUDGET_REASON_END))
            .and_then(|n| n.parse::<u64>().ok().filter(|limit| limit.to_string() == n));
        match limit {
            Some(limit) => TruncationReason::InlineBudget { limit },
            None => TruncationReason::Other(sentence),
        }
    }
}

/// Where a whole copy of a body lives outside the capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Elsewhere {
    /// In the body store of `--store-bodies`, at this path relative to the
    /// store root (`sha256/<hex>`). Only complete bodies are stored.
    BodyStore(String),
}

/// How the transfer of a body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every byte went through.
    Complete,
    /// The body was cut off (client or server hung up, error).
    CutOff,
    /// The recorder did not say (a HAR entry without its content).
    Unknown,
}

impl Body {
    /// A complete body kept whole: for tests, importers and tools.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Body {
            size: bytes.len() as u64,
            sha256: Some(sha256_hex(bytes)),
            kept: Kept::Inline(Data::from_bytes(bytes)),
            elsewhere: None,
            ended: Ending::Complete,
        }
    }

    /// Forgets the first bytes kept of a body not kept whole: for a reader
    /// that needs bodies whole or not at all and can read the flow again.
    pub fn forget_prefix(&mut self) {
        if let Kept::Prefix { data, .. } = &mut self.kept {
            *data = None;
        }
    }

    /// A body of which nothing has streamed yet: what the start record of an
    /// exchange holds (on disk: size 0, no hash, not complete).
    pub fn pending() -> Self {
        Body {
            size: 0,
            sha256: None,
            kept: Kept::Inline(Data::Text(String::new())),
            elsewhere: None,
            ended: Ending::CutOff,
        }
    }

    /// The whole body, when the capture kept all of it.
    pub fn full_bytes(&self) -> Option<Vec<u8>> {
        match &self.kept {
            Kept::Inline(data) => data.to_bytes(),
            Kept::Prefix { .. } | Kept::Unknown => None,
        }
    }

    /// What the capture holds of the bytes: all of them or a prefix.
    pub fn inline(&self) -> Option<&Data> {
        match &self.kept {
            Kept::Inline(data) => Some(data),
            Kept::Prefix { data, .. } => data.as_ref(),
            Kept::Unknown => None,
        }
    }

    /// Why only a prefix was kept, when that is the case.
    pub fn truncation(&self) -> Option<&TruncationReason> {
        match &self.kept {
            Kept::Prefix { reason, .. } => Some(reason),
            Kept::Inline(_) | Kept::Unknown => None,
        }
    }

    /// The path of the body in the body store, relative to its root.
    pub fn stored(&self) -> Option<&str> {
        match &self.elsewhere {
            Some(Elsewhere::BodyStore(path)) => Some(path),
            None => None,
        }
    }

    pub fn is_complete(&self) -> bool {
        self.ended == Ending::Complete
    }

    pub fn is_cut_off(&self) -> bool {
        self.ended == Ending::CutOff
    }

    /// `sha256:<hex>`, the OCI digest form, when the body was hashed.
    pub fn digest(&self) -> Option<String> {
        self.sha256.as_ref().map(|hex| format!("sha256:{hex}"))
    }
}

/// A body as capture files hold it (formats 1.0 and 1.1). Two optional
/// fields, written only for imported bodies, say what that JSON cannot:
/// `bytes_unknown` (nothing is known of the bytes) and `ending_unknown`
/// (nobody said whether the transfer ended). Readers that do not know them
/// take such a body for an empty prefix of a cut-off body, as they did
/// before they existed.
#[derive(Serialize, Deserialize)]
struct BodyWire<'a> {
    size: u64,
    /// Empty when unknown.
    sha256: Cow<'a, str>,
    complete: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    ending_unknown: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inline: Option<Cow<'a, Data>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    bytes_unknown: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    truncated_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stored: Option<Cow<'a, str>>,
}

impl Serialize for Body {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (inline, truncated, bytes_unknown, truncated_reason) = match &self.kept {
            Kept::Inline(data) => (Some(data).filter(|d| !d.is_empty()), false, false, None),
            Kept::Prefix { data, reason } => (data.as_ref(), true, false, reason.sentence()),
            Kept::Unknown => (None, true, true, None),
        };
        BodyWire {
            size: self.size,
            sha256: Cow::Borrowed(self.sha256.as_deref().unwrap_or_default()),
            complete: self.ended == Ending::Complete,
            ending_unknown: self.ended == Ending::Unknown,
            inline: inline.map(Cow::Borrowed),
            truncated,
            bytes_unknown,
            truncated_reason,
            stored: self.stored().map(Cow::Borrowed),
        }
        .serialize(serializer)
    }
}

impl From<BodyWire<'static>> for Body {
    fn from(wire: BodyWire<'static>) -> Self {
        let kept = match (wire.bytes_unknown, wire.truncated, wire.inline) {
            (true, _, _) => Kept::Unknown,
            (false, true, data) => Kept::Prefix {
                data: data.map(Cow::into_owned),
                reason: TruncationReason::from_sentence(wire.truncated_reason),
            },
            (false, false, Some(data)) => Kept::Inline(data.into_owned()),
            (false, false, None) if wire.size == 0 => Kept::Inline(Data::Text(String::new())),
            // Not truncated, yet nothing inline: no regtap writes this; the
            // bytes were never in the capture.
            (false, false, None) => Kept::Unknown,
        };
        let ended = match (wire.complete, wire.ending_unknown) {
            (true, _) => Ending::Complete,
            (false, true) => Ending::Unknown,
            (false, false) => Ending::CutOff,
        };
        Body {
            size: wire.size,
            sha256: Some(wire.sha256.into_owned()).filter(|hex| !hex.is_empty()),
            kept,
            elsewhere: wire
                .stored
                .map(|path| Elsewhere::BodyStore(path.into_owned())),
            ended,
        }
    }
}
/// The reason phrase of a status code (`Unauthorized` for 401), empty when
/// the code is not one a registry exchange commonly uses.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// A byte count as people read it: `12 B`, `1.5 KiB`, `256.0 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS.get(unit).unwrap_or(&"TiB"))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Points in time of one exchange. All but `request_start` may be missing when
/// the exchange failed before reaching them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    pub request_start: UnixNanos,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_end: Option<UnixNanos>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_head: Option<UnixNanos>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_end: Option<UnixNanos>,
}

impl Timing {
    /// The last instant known for the exchange.
    pub fn end(&self) -> UnixNanos {
        self.response_end
            .or(self.response_head)
            .or(self.request_end)
            .unwrap_or(self.request_start)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowError {
    /// Where the exchange broke.
    pub stage: ErrorStage,
    /// One line, meant for people.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorStage {
    /// Connecting to, or the TLS handshake with, the upstream server.
    Connect,
    /// Sending the request (e.g. the client hung up mid-upload).
    Request,
    /// Receiving the response head or body.
    Response,
    /// The TLS handshake between the client and regtap inside a CONNECT tunnel
    /// (typically: the client does not trust regtap's CA).
    ClientTls,
    /// The client sent something regtap does not proxy (a CONNECT inside a
    /// tunnel, bytes that are neither TLS nor HTTP, a malformed request).
    ClientProtocol,
    /// The client did not send a complete request head in time.
    RequestHeadTimeout,
    /// A kept-alive client connection stayed idle too long and was closed.
    IdleTimeout,
    /// Connecting to the upstream server took too long.
    ConnectTimeout,
    /// The upstream proxy regtap goes through (`--upstream-proxy`,
    /// `HTTPS_PROXY`) could not be reached, refused the tunnel (407, 403,
    /// 502, …) or broke off; the message names the proxy and its answer.
    UpstreamProxy,
    /// The upstream server did not send its response head in time.
    ResponseTimeout,
    /// A body (either side) stopped moving for too long.
    BodyTimeout,
    /// The proxy was at its connection limit and refused the connection.
    ConnectionLimit,
    /// The client's address is not in the proxy's `--allow-client` list.
    ClientRefused,
    /// Reverse mode: the request named a host regtap serves no upstream for.
    Misdirected,
    /// The proxy stopped (or was killed) before the exchange finished; only
    /// its in-flight records tell what was known.
    ProxyStopped,
}

impl ErrorStage {
    /// The stage as the capture writes it: `client_tls`, `connect`, …
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorStage::Connect => "connect",
            ErrorStage::Request => "request",
            ErrorStage::Response => "response",
            ErrorStage::ClientTls => "client_tls",
            ErrorStage::ClientProtocol => "client_protocol",
            ErrorStage::RequestHeadTimeout => "request_head_timeout",
            ErrorStage::IdleTimeout => "idle_timeout",
            ErrorStage::ConnectTimeout => "connect_timeout",
            ErrorStage::UpstreamProxy => "upstream_proxy",
            ErrorStage::ResponseTimeout => "response_timeout",
            ErrorStage::BodyTimeout => "body_timeout",
            ErrorStage::ConnectionLimit => "connection_limit",
            ErrorStage::ClientRefused => "client_refused",
            ErrorStage::Misdirected => "misdirected",
            ErrorStage::ProxyStopped => "proxy_stopped",
        }
    }

    /// What was going on, for people: "connecting to the server".
    pub fn describe(self) -> &'static str {
        match self {
            ErrorStage::Connect => "connecting to the server",
            ErrorStage::Request => "sending the request",
            ErrorStage::Response => "receiving the response",
            ErrorStage::ClientTls => "the TLS handshake with the client",
            ErrorStage::ClientProtocol => "reading what the client sent",
            ErrorStage::RequestHeadTimeout => "waiting for the request head",
            ErrorStage::IdleTimeout => "waiting on an idle kept-alive connection",
            ErrorStage::ConnectTimeout => "connecting to the server (timed out)",
            ErrorStage::UpstreamProxy => "going through the upstream proxy",
            ErrorStage::ResponseTimeout => "waiting for the response head",
            ErrorStage::BodyTimeout => "waiting for body bytes",
            ErrorStage::ConnectionLimit => "accepting the connection (limit reached)",
            ErrorStage::ClientRefused => "checking the client's address (not allowed)",
            ErrorStage::Misdirected => "choosing the upstream (no such name served)",
            ErrorStage::ProxyStopped => "in flight (the proxy stopped)",
        }
    }
}

impl Flow {
    /// [`Body::forget_prefix`] on both sides.
    pub fn forget_body_prefixes(&mut self) {
        self.request.body.forget_prefix();
        if let Some(response) = self.response.as_mut() {
            response.body.forget_prefix();
        }
    }

    pub fn method(&self) -> &str {
        &self.request.method
    }

    pub fn url(&self) -> &str {
        &self.request.url
    }

    pub fn status(&self) -> Option<u16> {
        self.response.as_ref().map(|r| r.status)
    }
}

/// Something the proxy tells live subscribers (the TUI) as traffic goes by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveEvent {
    /// A request head arrived.
    Started {
        id: u64,
        method: String,
        url: String,
        at: UnixNanos,
    },
    /// Body bytes streamed so far for one side of an in-flight exchange.
    Progress {
        id: u64,
        direction: Direction,
        bytes: u64,
        /// From `Content-Length` (or `Content-Range`) when known.
        total: Option<u64>,
        at: UnixNanos,
    },
    /// The exchange finished and has been appended to the capture.
    Finished(Box<Flow>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Request,
    Response,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_reads_text_and_base64_and_says_what_it_expected() {
        let read = |json: &str| serde_json::from_str::<Data>(json);
        assert_eq!(
            read(r#""text \u00e9""#).unwrap(),
            Data::Text("text é".into())
        );
        assert_eq!(
            read(r#"{"base64": "/w==", "later": [1]}"#).unwrap(),
            Data::Binary {
                base64: "/w==".into()
            }
        );
        assert_eq!(
            read(r#"{"base64": "/w=="}"#).unwrap().to_bytes(),
            Some(vec![0xff])
        );
        for (bad, says) in [
            ("{}", "missing field `base64`"),
            (
                r#"{"base64": "a", "base64": "b"}"#,
                "duplicate field `base64`",
            ),
            ("7", r#"expected a string or {"base64": "…"}"#),
        ] {
            let error = read(bad).unwrap_err().to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
        for data in [
            Data::Text("a".into()),
            Data::Binary {
                base64: "/w==".into(),
            },
        ] {
            assert_eq!(read(&serde_json::to_string(&data).unwrap()).unwrap(), data);
        }
    }

    #[test]
    fn reason_phrases_of_registry_statuses() {
        assert_eq!(reason_phrase(202), "Accepted");
        assert_eq!(reason_phrase(416), "Range Not Satisfiable");
        assert_eq!(reason_phrase(299), "");
    }

    #[test]
    fn human_bytes_picks_the_largest_unit_under_1024() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(262_435), "256.3 KiB");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16777216.0 TiB");
    }

    const HEX: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    /// Each body state next to its JSON in a capture (format 1.1).
    fn shapes() -> Vec<(Body, String)> {
        let budget = "the proxy's memory budget for inline bodies (4096 bytes, --inline-budget) \
                      was in use by other exchanges; size, hash and first bytes kept";
        let whole = Body::from_bytes(b"hello");
        let mut whole_stored = whole.clone();
        whole_stored.elsewhere = Some(Elsewhere::BodyStore(format!("sha256/{HEX}")));
        let prefix = |reason| Body {
            size: 9000,
            sha256: Some(HEX.to_owned()),
            kept: Kept::Prefix {
                data: Some(Data::from_bytes(b"he")),
                reason,
            },
            elsewhere: None,
            ended: Ending::Complete,
        };
        let cut_nothing = Body {
            size: 3,
            sha256: Some(HEX.to_owned()),
            kept: Kept::Prefix {
                data: None,
                reason: TruncationReason::SizeLimit,
            },
            elsewhere: None,
            ended: Ending::CutOff,
        };
        let unknown = Body {
            size: 10,
            sha256: None,
            kept: Kept::Unknown,
            elsewhere: None,
            ended: Ending::Unknown,
        };
        vec![
            (
                Body::from_bytes(b""),
                r#"{"size":0,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","complete":true}"#.to_owned(),
            ),
            (
                Body::pending(),
                r#"{"size":0,"sha256":"","complete":false}"#.to_owned(),
            ),
            (
                whole,
                format!(r#"{{"size":5,"sha256":"{HEX}","complete":true,"inline":"hello"}}"#),
            ),
            (
                whole_stored,
                format!(
                    r#"{{"size":5,"sha256":"{HEX}","complete":true,"inline":"hello","stored":"sha256/{HEX}"}}"#
                ),
            ),
            (
                prefix(TruncationReason::SizeLimit),
                format!(
                    r#"{{"size":9000,"sha256":"{HEX}","complete":true,"inline":"he","truncated":true}}"#
                ),
            ),
            (
                prefix(TruncationReason::InlineBudget { limit: 4096 }),
                format!(
                    r#"{{"size":9000,"sha256":"{HEX}","complete":true,"inline":"he","truncated":true,"truncated_reason":"{budget}"}}"#
                ),
            ),
            (
                prefix(TruncationReason::Other("a newer reason".to_owned())),
                format!(
                    r#"{{"size":9000,"sha256":"{HEX}","complete":true,"inline":"he","truncated":true,"truncated_reason":"a newer reason"}}"#
                ),
            ),
            (
                cut_nothing,
                format!(r#"{{"size":3,"sha256":"{HEX}","complete":false,"truncated":true}}"#),
            ),
            (
                unknown,
                r#"{"size":10,"sha256":"","complete":false,"ending_unknown":true,"truncated":true,"bytes_unknown":true}"#
                    .to_owned(),
            ),
        ]
    }

    #[test]
    fn bodies_keep_the_json_of_format_1_1_both_ways() {
        for (body, json) in shapes() {
            assert_eq!(serde_json::to_string(&body).unwrap(), json);
            assert_eq!(serde_json::from_str::<Body>(&json).unwrap(), body, "{json}");
        }
    }

    #[test]
    fn a_budget_reason_is_recognised_only_when_it_reads_back_identically() {
        let odd = "the proxy's memory budget for inline bodies (04096 bytes, --inline-budget) \
                   was in use by other exchanges; size, hash and first bytes kept";
        assert_eq!(
            TruncationReason::from_sentence(Some(odd.to_owned())),
            TruncationReason::Other(odd.to_owned())
        );
    }

    #[test]
    fn a_body_neither_inline_nor_truncated_is_not_taken_for_an_empty_one() {
        let json = format!(r#"{{"size":7,"sha256":"{HEX}","complete":true}}"#);
        let body: Body = serde_json::from_str(&json).unwrap();
        assert_eq!(body.kept, Kept::Unknown);
        assert_eq!(body.full_bytes(), None);
        assert!(body.is_complete());
    }
}
