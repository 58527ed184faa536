//! HAR files from other tools (and from regtap) → flows.
//!
//! Tools disagree on the details, so the reader walks the JSON loosely rather
//! than through strict types: a field that is missing, `null` or of the wrong
//! type is treated as unknown, an entry that cannot become a flow is skipped
//! with a warning, and only a file that is not a HAR at all is an error.
//! Known dialects: mitmproxy's `hardump` and `.zhar` (binary request bodies
//! as latin-1 text, `"text": null` for streamed bodies, `+00:00` offsets,
//! zlib compression), Chrome and Firefox DevTools (`encoding: "base64"`,
//! HTTP/2 pseudo-headers, `[v6]` server addresses, status 0 for requests that
//! got no response), HTTP Toolkit (binary request bodies as base64 in
//! `_content`, the reason a body was left out in `comment`, failed client
//! handshakes in `log._tlsErrors`), and regtap's own `_regtap` / `_sha256`
//! fields, which make the round trip exact.

use std::io::{BufRead, Read};

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use regtap_capture::{
    Body, Data, Ending, ErrorStage, Flow, FlowError, Header, Headers, Kept, Request, Response,
    Timing, TruncationReason, UnixNanos, sha256_hex,
};
use serde_json::Value;

use crate::media;
use crate::model::{BodyFacts, CaptureFacts};

/// Flows read from a HAR, and what the user should be told about the read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub flows: Vec<Flow>,
    pub warnings: Vec<String>,
    /// `log.creator.name` and version, e.g. `mitmproxy 11.0.2`.
    pub creator: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("not a HAR file: invalid JSON ({0})")]
    NotJson(String),
    #[error("not a HAR file: {0}")]
    NotAHar(String),
    #[error("HAR too large: {0}")]
    TooLarge(String),
}

/// True when `head` (the first bytes of a file) look like a HAR: a JSON object
/// whose first key is `log`, as every HAR writer puts it, possibly
/// zlib-compressed as mitmproxy's `.zhar`.
pub fn looks_like_har(head: &[u8]) -> bool {
    let inflated;
    let head = if is_zlib(head) {
        // A cut-off stream still yields its first bytes.
        let mut start = Vec::new();
        let _ = flate2::read::ZlibDecoder::new(head)
            .take(64)
            .read_to_end(&mut start);
        inflated = start;
        &inflated[..]
    } else {
        head
    };
    let text = String::from_utf8_lossy(strip_bom(head));
    let rest = text.trim_start();
    let Some(rest) = rest.strip_prefix('{') else {
        return false;
    };
    rest.trim_start().starts_with("\"log\"")
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// A zlib stream header: deflate, 32 KiB window, valid check bits.
fn is_zlib(bytes: &[u8]) -> bool {
    matches!(bytes, [0x78, flags, ..] if (0x7800_u16 | u16::from(*flags)).is_multiple_of(31))
}

/// How much of a HAR regtap reads: entries are parsed one at a time, so
/// memory stays proportional to the flows kept, and these bound that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportLimits {
    /// Entries read at most.
    pub max_entries: usize,
    /// Bytes of JSON one entry (or `log.creator`) may span.
    pub max_entry_bytes: u64,
    /// Bytes a zlib-compressed HAR (`.zhar`) may inflate to.
    pub max_inflated_bytes: u64,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            // A flow takes ~1 KB here and ~7 KB more once decoded: 200,000
            // entries stay under ~2 GB all told.
            max_entries: 200_000,
            max_entry_bytes: 32 << 20,
            max_inflated_bytes: 4 << 30,
        }
    }
}

/// Reads a whole HAR file's bytes, with the default limits.
pub fn import(bytes: &[u8]) -> Result<Imported, ImportError> {
    import_reader(bytes, &ImportLimits::default())
}

/// Reads a HAR (plain or zlib-compressed) from `reader` as a stream: the
/// file is never held whole, in memory or as a JSON tree.
pub fn import_reader(reader: impl Read, limits: &ImportLimits) -> Result<Imported, ImportError> {
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, reader);
    let head = reader
        .fill_buf()
        .map_err(|e| ImportError::NotJson(format!("cannot read: {e}")))?;
    let inflating = is_zlib(head);
    let counter = Counter::default();
    let result = if inflating {
        let inflated =
            flate2::bufread::ZlibDecoder::new(reader).take(limits.max_inflated_bytes + 1);
        read_har(std::io::BufReader::new(inflated), limits, &counter)
    } else {
        read_har(reader, limits, &counter)
    };
    if inflating && counter.total.get() > limits.max_inflated_bytes {
        return Err(ImportError::TooLarge(format!(
            "the compressed HAR inflates to more than {}",
            regtap_capture::human_bytes(limits.max_inflated_bytes)
        )));
    }
    result.map_err(|e| match counter.refused.take() {
        Some(reason) => ImportError::TooLarge(reason),
        None if inflating && e.is_io() => {
            ImportError::NotJson(format!("zlib-compressed HAR does not inflate: {e}"))
        }
        None if e.is_io() => ImportError::NotJson(format!("cannot read: {e}")),
        None => ImportError::NotJson(e.to_string()),
    })?
}

fn read_har(
    mut reader: impl BufRead,
    limits: &ImportLimits,
    counter: &Counter,
) -> Result<Result<Imported, ImportError>, serde_json::Error> {
    // A byte-order mark is not JSON.
    if reader
        .fill_buf()
        .is_ok_and(|head| head.starts_with(b"\xEF\xBB\xBF"))
    {
        reader.consume(3);
    }
    let mut state = ReadState {
        limits: *limits,
        counter,
        found_log: false,
        found_entries: false,
        creator: None,
        entries_read: 0,
        warnings: Vec::new(),
        flows: Vec::new(),
    };
    let mut deserializer = serde_json::Deserializer::from_reader(Counting {
        inner: reader,
        counter,
    });
    Root(&mut state).deserialize(&mut deserializer)?;
    deserializer.end()?;
    if !state.found_log {
        return Ok(Err(ImportError::NotAHar(
            "no top-level \"log\" object".to_owned(),
        )));
    }
    if !state.found_entries {
        return Ok(Err(ImportError::NotAHar(
            "\"log\" has no \"entries\" array".to_owned(),
        )));
    }
    Ok(Ok(finish(state.flows, state.warnings, state.creator)))
}

/// Bytes read so far, and a limit on how many one value may span.
#[derive(Default)]
struct Counter {
    total: std::cell::Cell<u64>,
    /// Where the value being read started, and how long it may be.
    value: std::cell::Cell<Option<(u64, u64, usize)>>,
    /// Why reading was stopped, when a limit did it.
    refused: std::cell::RefCell<Option<String>>,
}

impl Counter {
    fn start_value(&self, max: u64, entry_number: usize) {
        self.value.set(Some((self.total.get(), max, entry_number)));
    }

    fn end_value(&self) {
        self.value.set(None);
    }
}

/// What serde_json reads through: counts bytes and stops an oversized value.
struct Counting<'a, R> {
    inner: R,
    counter: &'a Counter,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        let total = self.counter.total.get() + read as u64;
        self.counter.total.set(total);
        if let Some((start, max, number)) = self.counter.value.get()
            && total - start > max
        {
            let what = if number == 0 {
                "log.creator".to_owned()
            } else {
                format!("HAR entry {number}")
            };
            let reason = format!(
                "{what} is larger than {}; regtap reads entries up to that size",
                regtap_capture::human_bytes(max)
            );
            *self.counter.refused.borrow_mut() = Some(reason.clone());
            return Err(std::io::Error::other(reason));
        }
        Ok(read)
    }
}

/// The visitor methods that skip what a HAR part is not: values of any
/// other shape are read over (a part missing is reported later), so
/// malformed input is never an error of its own.
macro_rules! skip_other_shapes {
    (seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(())
        }
        skip_other_shapes!(scalars);
    };
    (map) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(())
        }
        skip_other_shapes!(scalars);
    };
    (scalars) => {
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    };
}

struct ReadState<'a> {
    limits: ImportLimits,
    counter: &'a Counter,
    found_log: bool,
    found_entries: bool,
    creator: Option<String>,
    entries_read: usize,
    warnings: Vec<String>,
    flows: Vec<(Option<u64>, Flow)>,
}

/// The top-level object: only `log` is read.
struct Root<'s, 'a>(&'s mut ReadState<'a>);

impl<'de> DeserializeSeed<'de> for Root<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Root<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a HAR")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "log" && !self.0.found_log {
                map.next_value_seed(Log(&mut *self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
    skip_other_shapes!(seq);
}

/// `log`: `creator` and `entries` are read, the rest skipped.
struct Log<'s, 'a>(&'s mut ReadState<'a>);

impl<'de> DeserializeSeed<'de> for Log<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        // Anything but an object is not a `log`: skipped, reported later.
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Log<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("the HAR's log object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        state.found_log = true;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "entries" if !state.found_entries => {
                    map.next_value_seed(Entries(&mut *state))?;
                }
                "creator" if state.creator.is_none() => {
                    let creator = bounded_value(state, &mut map)?;
                    state.creator = Some(
                        format!(
                            "{} {}",
                            text_field(&creator, "name").unwrap_or("unknown"),
                            text_field(&creator, "version").unwrap_or("")
                        )
                        .trim_end()
                        .to_owned(),
                    );
                }
                "_tlsErrors" => {
                    let failed = bounded_value(state, &mut map)?;
                    if let Some(failed) = failed.as_array().filter(|list| !list.is_empty()) {
                        state.warnings.push(tls_errors_warning(failed));
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
    skip_other_shapes!(seq);
}

/// The next value of `map`, held whole but no bigger than an entry may be.
fn bounded_value<'de, A: MapAccess<'de>>(
    state: &ReadState<'_>,
    map: &mut A,
) -> Result<Value, A::Error> {
    state.counter.start_value(state.limits.max_entry_bytes, 0);
    let value = map.next_value();
    state.counter.end_value();
    value
}

/// `log.entries`: each entry becomes a flow as soon as it is parsed.
struct Entries<'s, 'a>(&'s mut ReadState<'a>);

impl<'de> DeserializeSeed<'de> for Entries<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("the HAR's entries array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let state = self.0;
        state.found_entries = true;
        loop {
            let number = state.entries_read + 1;
            state
                .counter
                .start_value(state.limits.max_entry_bytes, number);
            let Some(entry) = seq.next_element::<Value>()? else {
                state.counter.end_value();
                return Ok(());
            };
            state.counter.end_value();
            if number > state.limits.max_entries {
                let reason = format!(
                    "the HAR has more than {} entries; regtap reads at most that many",
                    state.limits.max_entries
                );
                *state.counter.refused.borrow_mut() = Some(reason.clone());
                return Err(serde::de::Error::custom(reason));
            }
            state.entries_read = number;
            match flow_from_entry(&entry, number, &mut state.warnings) {
                Ok(flow) => state.flows.push(flow),
                Err(reason) => state
                    .warnings
                    .push(format!("HAR entry {number} skipped: {reason}")),
            }
        }
    }
    skip_other_shapes!(map);
}

/// Flow ids and order, once every entry is read.
fn finish(
    mut flows: Vec<(Option<u64>, Flow)>,
    warnings: Vec<String>,
    creator: Option<String>,
) -> Imported {
    // Keep regtap's flow ids when every entry has a distinct one; otherwise
    // number the flows in the order their requests started.
    let mut ids: Vec<u64> = flows.iter().filter_map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    let keep_ids = ids.len() == flows.len();
    flows.sort_by_key(|(id, flow)| (flow.timing.request_start, *id));
    let flows = flows
        .into_iter()
        .enumerate()
        .map(|(position, (id, mut flow))| {
            flow.id = match id {
                Some(id) if keep_ids => id,
                _ => position as u64 + 1,
            };
            flow
        })
        .collect();
    Imported {
        flows,
        warnings,
        creator,
    }
}

/// HTTP Toolkit's `log._tlsErrors`: client handshakes that failed before any
/// request, so no HAR entry (and no flow) holds them.
fn tls_errors_warning(failed: &[Value]) -> String {
    const SHOWN: usize = 5;
    let described: Vec<String> = failed
        .iter()
        .take(SHOWN)
        .map(|e| {
            let client = match (
                text_field(e, "clientIPAddress"),
                e.get("clientPort").and_then(Value::as_u64),
            ) {
                (Some(ip), Some(port)) => format!(", client {ip}:{port}"),
                (Some(ip), None) => format!(", client {ip}"),
                _ => String::new(),
            };
            format!(
                "{}: {}{client}",
                text_field(e, "hostname").unwrap_or("no server name"),
                text_field(e, "cause").unwrap_or("unknown cause"),
            )
        })
        .collect();
    let more = failed.len().saturating_sub(SHOWN);
    format!(
        "the recording tool noted {} TLS handshake{} that failed ({}{}); `cert-rejected` means \
         the client does not trust the tool's CA; they are not flows, so not imported",
        failed.len(),
        if failed.len() == 1 { "" } else { "s" },
        described.join("; "),
        if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        }
    )
}

fn text_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// A non-negative number of milliseconds; HAR's -1 (unknown), `null` and
/// anything else are `None`.
fn millis(value: &Value, key: &str) -> Option<f64> {
    value
        .get(key)
        .and_then(Value::as_f64)
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
}

/// `as` saturates absurd values rather than wrapping.
fn ms_to_nanos(ms: f64) -> i64 {
    (ms * 1_000_000.0).round() as i64
}

fn parse_time(text: &str) -> Option<UnixNanos> {
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    UnixNanos::try_from(parsed.unix_timestamp_nanos()).ok()
}

fn flow_from_entry(
    entry: &Value,
    number: usize,
    warnings: &mut Vec<String>,
) -> Result<(Option<u64>, Flow), String> {
    if !entry.is_object() {
        return Err("not a JSON object".to_owned());
    }
    let request = entry
        .get("request")
        .filter(|r| r.is_object())
        .ok_or("no \"request\" object")?;
    let url = text_field(request, "url")
        .filter(|u| !u.is_empty())
        .ok_or("the request has no URL")?;
    let method = text_field(request, "method")
        .filter(|m| !m.is_empty())
        .ok_or("the request has no method")?;
    // What regtap wrote about the flow for the round trip.
    let facts = CaptureFacts::of_entry(entry);
    let id = facts.flow_id;
    let scheme = url
        .split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase())
        .unwrap_or_else(|| "https".to_owned());

    let request_headers = headers(request.get("headers"));
    let request_body = request_body(request, &request_headers, number, warnings);

    // Status 0 (or none, or out of range) is how tools write "no response".
    let response = entry.get("response").and_then(|response| {
        let status = response
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| *s > 0)?;
        Some(Response {
            status,
            http_version: http_version(response),
            headers: headers(response.get("headers")),
            body: response_body(response, number, warnings),
        })
    });

    let timing = match facts.timing {
        Some(timing) => timing,
        None => timing(entry, response.is_some(), number, warnings),
    };

    let server_addr = facts.server_addr.or_else(|| {
        text_field(entry, "serverIPAddress")
            .filter(|ip| !ip.is_empty())
            .map(|ip| {
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                match url_port(url, &scheme) {
                    Some(port) if ip.contains(':') => format!("[{ip}]:{port}"),
                    Some(port) => format!("{ip}:{port}"),
                    None => ip.to_owned(),
                }
            })
    });
    let client_addr = facts.client_addr.or_else(|| {
        // regtap writes the client's address as the connection; other tools
        // write a connection number, which is no address.
        text_field(entry, "connection")
            .filter(|c| c.parse::<std::net::SocketAddr>().is_ok())
            .map(str::to_owned)
    });

    let error = entry_error(entry, response.is_some());
    let flow = Flow {
        id: 0,
        client_addr,
        connect_authority: facts.connect_authority,
        server_addr,
        upstream_proxy: facts.upstream_proxy,
        scheme,
        request: Request {
            method: method.to_owned(),
            url: url.to_owned(),
            http_version: http_version(request),
            headers: request_headers,
            body: request_body,
        },
        response,
        timing,
        error,
        reverse: facts.reverse,
    };
    Ok((id, flow))
}

fn http_version(message: &Value) -> String {
    match text_field(message, "httpVersion").map(str::trim) {
        Some("") | None => "HTTP/1.1".to_owned(),
        Some(version) => version.to_owned(),
    }
}

fn url_port(url: &str, scheme: &str) -> Option<u16> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let port = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && !port.contains(']') => port.parse().ok(),
        _ => None,
    };
    port.or(match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    })
}

fn headers(list: Option<&Value>) -> Headers {
    let Some(list) = list.and_then(Value::as_array) else {
        return Headers::new();
    };
    Headers(
        list.iter()
            .filter_map(|h| {
                let name = text_field(h, "name")?;
                let value = match h.get("value") {
                    Some(Value::String(value)) => value.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => String::new(),
                };
                Some(Header(name.to_owned(), Data::Text(value)))
            })
            .collect(),
    )
}

fn latin1_bytes(text: &str) -> Option<Vec<u8>> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

/// The bytes a HAR `text` stands for.
fn text_bytes(
    text: &str,
    encoding: Option<&str>,
    mime: &str,
    expected_sha256: Option<&str>,
) -> Result<Vec<u8>, String> {
    if encoding.is_some_and(|e| e.eq_ignore_ascii_case("base64")) {
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        return BASE64
            .decode(compact)
            .map_err(|e| format!("its base64 body does not decode ({e})"));
    }
    let utf8 = text.as_bytes().to_vec();
    let Some(latin1) = latin1_bytes(text).filter(|l| *l != utf8) else {
        return Ok(utf8);
    };
    if let Some(expected) = expected_sha256 {
        if sha256_hex(&latin1) == expected {
            return Ok(latin1);
        }
        if sha256_hex(&utf8) == expected {
            return Ok(utf8);
        }
    }
    // Tools write non-text bodies byte-for-char (latin-1), as mitmproxy does.
    Ok(if media::is_text(mime) { utf8 } else { latin1 })
}

/// A body whose bytes are not in the HAR: its size (when known) and hash (when
/// regtap wrote one), nothing inline. `absent`: the HAR says there was no body.
fn summary_body(size: u64, sha256: Option<&str>, absent: bool) -> Body {
    if absent && size == 0 && sha256.is_none() {
        return Body::from_bytes(b"");
    }
    Body {
        size,
        sha256: sha256.map(str::to_owned),
        kept: Kept::Unknown,
        elsewhere: None,
        // A hash is written by regtap, which says when a body was cut off
        // (`_incomplete`); other tools leave a body out without saying
        // whether it arrived whole.
        ended: if sha256.is_some() {
            Ending::Complete
        } else {
            Ending::Unknown
        },
    }
}

fn body_from_bytes(bytes: &[u8], declared_size: Option<u64>, sha256: Option<&str>) -> Body {
    match declared_size {
        // The tool cut the text short: what is there is a prefix.
        Some(size) if size > bytes.len() as u64 => Body {
            size,
            sha256: sha256.map(str::to_owned),
            kept: Kept::Prefix {
                data: (!bytes.is_empty()).then(|| Data::from_bytes(bytes)),
                reason: TruncationReason::SizeLimit,
            },
            elsewhere: None,
            ended: Ending::Complete,
        },
        _ => Body::from_bytes(bytes),
    }
}

fn non_negative(value: &Value, key: &str) -> Option<u64> {
    value
        .get(key)
        .and_then(Value::as_i64)
        .and_then(|n| u64::try_from(n).ok())
}

fn request_body(
    request: &Value,
    request_headers: &Headers,
    number: usize,
    warnings: &mut Vec<String>,
) -> Body {
    let post = request.get("postData").filter(|p| p.is_object());
    let facts = post.map(BodyFacts::of).unwrap_or_default();
    let sha256 = facts.sha256.as_deref();
    let incomplete = facts.incomplete;
    let body_size = non_negative(request, "bodySize");
    let content_length = request_headers
        .get("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut text = post
        .and_then(|p| text_field(p, "text"))
        .filter(|t| !t.is_empty());
    // HTTP Toolkit writes a body that is not UTF-8 (a layer) as base64 in
    // `_content`, with `_requestBodyStatus: "discarded:not-representable"`.
    let mut post = post;
    if text.is_none()
        && let Some(content) = request.get("_content").filter(|c| c.is_object())
    {
        post = Some(content);
        text = text_field(content, "text").filter(|t| !t.is_empty());
    }
    let mut body = match (post, text) {
        (Some(post), Some(text)) => {
            let mime = text_field(post, "mimeType").unwrap_or("");
            match text_bytes(text, text_field(post, "encoding"), mime, sha256) {
                Ok(bytes) => body_from_bytes(&bytes, body_size, sha256),
                Err(reason) => {
                    warnings.push(format!(
                        "HAR entry {number}: request body dropped: {reason}"
                    ));
                    summary_body(body_size.unwrap_or(0), sha256, false)
                }
            }
        }
        _ => {
            let size = body_size.filter(|s| *s > 0).or(content_length).unwrap_or(0);
            // mitmproxy writes `"text": null` for a body it streamed without keeping.
            let streamed = post.is_some_and(|p| p.get("text") == Some(&Value::Null));
            let absent = !streamed && size == 0;
            if sha256.is_none() && !absent {
                // HTTP Toolkit says why in the request's `comment`.
                let why = text_field(request, "comment")
                    .filter(|c| !c.is_empty())
                    .map_or_else(
                        || " (the recording tool streamed or dropped it)".to_owned(),
                        |comment| format!(": {comment}"),
                    );
                warnings.push(format!(
                    "HAR entry {number}: the request body is not in the HAR{why}; {}",
                    if size > 0 {
                        format!("{size} bytes by its headers")
                    } else {
                        "its size is unknown".to_owned()
                    }
                ));
            }
            summary_body(size, sha256, absent)
        }
    };
    if incomplete {
        body.ended = Ending::CutOff;
    }
    body
}

fn response_body(response: &Value, number: usize, warnings: &mut Vec<String>) -> Body {
    let Some(content) = response.get("content").filter(|c| c.is_object()) else {
        let size = non_negative(response, "bodySize").unwrap_or(0);
        return summary_body(size, None, size == 0);
    };
    let facts = BodyFacts::of(content);
    let sha256 = facts.sha256.as_deref();
    let incomplete = facts.incomplete;
    let size = non_negative(content, "size").or_else(|| non_negative(response, "bodySize"));
    let mut body = match text_field(content, "text").filter(|t| !t.is_empty()) {
        Some(text) => {
            let mime = text_field(content, "mimeType").unwrap_or("");
            match text_bytes(text, text_field(content, "encoding"), mime, sha256) {
                Ok(bytes) => body_from_bytes(&bytes, size, sha256),
                Err(reason) => {
                    warnings.push(format!(
                        "HAR entry {number}: response body dropped: {reason}"
                    ));
                    summary_body(size.unwrap_or(0), sha256, false)
                }
            }
        }
        None => {
            let size = size.unwrap_or(0);
            summary_body(size, sha256, size == 0)
        }
    };
    if incomplete {
        body.ended = Ending::CutOff;
    }
    body
}

fn timing(entry: &Value, has_response: bool, number: usize, warnings: &mut Vec<String>) -> Timing {
    let started = text_field(entry, "startedDateTime").and_then(parse_time);
    if started.is_none() {
        warnings.push(format!(
            "HAR entry {number}: no valid startedDateTime; its time is taken as the Unix epoch"
        ));
    }
    let empty = Value::Null;
    let phases = entry.get("timings").unwrap_or(&empty);
    // Connection set-up happens before the request is sent (`ssl` is part of `connect`).
    let setup: f64 = ["blocked", "dns", "connect"]
        .iter()
        .filter_map(|k| millis(phases, k))
        .sum();
    let request_start = started.unwrap_or(0).saturating_add(ms_to_nanos(setup));
    let send = millis(phases, "send");
    let request_end = request_start.saturating_add(ms_to_nanos(send.unwrap_or(0.0)));
    if !has_response {
        return Timing {
            request_start,
            request_end: send.map(|_| request_end),
            response_head: None,
            response_end: None,
        };
    }
    let response_head =
        request_end.saturating_add(ms_to_nanos(millis(phases, "wait").unwrap_or(0.0)));
    let response_end =
        response_head.saturating_add(ms_to_nanos(millis(phases, "receive").unwrap_or(0.0)));
    Timing {
        request_start,
        request_end: Some(request_end),
        response_head: Some(response_head),
        response_end: Some(response_end),
    }
}

fn entry_error(entry: &Value, has_response: bool) -> Option<FlowError> {
    if let Some(error) = entry.get("_error").filter(|e| e.is_object()) {
        // Every stage regtap writes (`client_tls`, `response_timeout`, …);
        // anything else counts as the response.
        let stage = error
            .get("stage")
            .and_then(|s| serde_json::from_value::<ErrorStage>(s.clone()).ok())
            .unwrap_or(ErrorStage::Response);
        return Some(FlowError {
            stage,
            message: text_field(error, "message").unwrap_or("").to_owned(),
        });
    }
    // mitmproxy and Chrome put a failed request's error on the response.
    let message = entry
        .get("response")
        .and_then(|r| r.get("_error"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())?;
    Some(FlowError {
        stage: if has_response {
            ErrorStage::Response
        } else {
            ErrorStage::Connect
        },
        message: message.to_owned(),
    })
}
