//! HAR 1.2 as regtap writes it (<http://www.softwareishard.com/blog/har-12-spec/>).
//!
//! Field names follow the spec's camelCase; regtap's own additions are the
//! `_`-prefixed fields the spec reserves for custom data. Optional fields are
//! left out rather than written as `null`, which strict validators reject.

use regtap_capture::{ReverseExchange, Timing};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, Serialize)]
pub struct Har {
    pub log: Log,
}

#[derive(Debug, Clone, Serialize)]
pub struct Log {
    pub version: String,
    pub creator: Creator,
    pub pages: Vec<Page>,
    pub entries: Vec<Entry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Creator {
    pub name: String,
    pub version: String,
}

/// One registry operation (login, push, pull).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub started_date_time: String,
    pub id: String,
    pub title: String,
    pub page_timings: PageTimings,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The operation as the decoder saw it: kind, status, steps.
    #[serde(rename = "_regtap", skip_serializing_if = "Option::is_none")]
    pub regtap: Option<serde_json::Value>,
}

/// Browser page-load milestones; registry operations have none, so both are -1.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageTimings {
    pub on_content_load: f64,
    pub on_load: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pageref: Option<String>,
    pub started_date_time: String,
    /// Milliseconds: the sum of the non-negative `timings`.
    pub time: f64,
    pub request: Request,
    pub response: Response,
    pub cache: Cache,
    pub timings: Timings,
    #[serde(rename = "serverIPAddress", skip_serializing_if = "Option::is_none")]
    pub server_ip_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Why the exchange did not complete (proxy-side error), if it did not.
    #[serde(rename = "_error", skip_serializing_if = "Option::is_none")]
    pub error: Option<EntryError>,
    /// regtap's understanding of the exchange (see `annotate`).
    #[serde(rename = "_regtap")]
    pub regtap: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct EntryError {
    pub stage: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub method: String,
    pub url: String,
    pub http_version: String,
    pub cookies: Vec<Cookie>,
    pub headers: Vec<NameValue>,
    pub query_string: Vec<NameValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_data: Option<PostData>,
    /// -1: the proxy does not keep the raw header block.
    pub headers_size: i64,
    pub body_size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub status: u16,
    pub status_text: String,
    pub http_version: String,
    pub cookies: Vec<Cookie>,
    pub headers: Vec<NameValue>,
    pub content: Content,
    #[serde(rename = "redirectURL")]
    pub redirect_url: String,
    pub headers_size: i64,
    pub body_size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A header or a query-string parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cookie {
    pub name: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostData {
    pub mime_type: String,
    /// Empty for bodies that are described rather than pasted (binary, blobs):
    /// HAR readers (mitmproxy's among them) require the field.
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(flatten)]
    pub body: BodyFacts,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    pub size: i64,
    pub mime_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(flatten)]
    pub body: BodyFacts,
}

/// What regtap knows about a body beyond HAR's fields, in `postData` and
/// `content`: written by the export, read back (leniently) by the import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyFacts {
    /// Lowercase hex SHA-256 of the body bytes as seen on the wire.
    #[serde(
        rename = "_sha256",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub sha256: Option<String>,
    /// The body was cut off (client or server hung up).
    #[serde(
        rename = "_incomplete",
        default,
        skip_serializing_if = "std::ops::Not::not",
        deserialize_with = "lenient_or_default"
    )]
    pub incomplete: bool,
    /// Where the bytes were written with `--bodies DIR`: `DIR/sha256/<hex>`.
    #[serde(
        rename = "_file",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub file: Option<String>,
}

impl BodyFacts {
    /// The facts in a `postData` or `content` object; none when it is not one.
    pub fn of(object: &serde_json::Value) -> Self {
        BodyFacts::deserialize(object).unwrap_or_default()
    }
}

/// regtap is not a cache; HAR requires the object.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cache {}

/// Milliseconds; -1 where the proxy could not observe the phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timings {
    pub blocked: f64,
    pub dns: f64,
    pub connect: f64,
    pub ssl: f64,
    pub send: f64,
    pub wait: f64,
    pub receive: f64,
}

impl Timings {
    /// HAR's `time`: every non-negative phase but `ssl`, which `connect` already includes.
    pub fn total(&self) -> f64 {
        let sum: f64 = [
            self.blocked,
            self.dns,
            self.connect,
            self.send,
            self.wait,
            self.receive,
        ]
        .into_iter()
        .filter(|ms| *ms >= 0.0)
        .sum();
        // Phases are whole nanoseconds; keep the sum free of float noise.
        (sum * 1e6).round() / 1e6
    }
}

/// `_regtap.capture` of an entry: what HAR has no field for, written by the
/// export and read by the import so that the HAR gives the same flows back.
/// Read leniently: a field of the wrong type is taken as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureFacts {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub flow_id: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub timing: Option<Timing>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub client_addr: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub connect_authority: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub server_addr: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub upstream_proxy: Option<String>,
    /// How a reverse-mode exchange differed between client and upstream.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub reverse: Option<ReverseExchange>,
}

impl CaptureFacts {
    /// The facts of an entry's `_regtap.capture`, when it has one.
    pub fn of_entry(entry: &serde_json::Value) -> Self {
        entry
            .get("_regtap")
            .and_then(|r| r.get("capture"))
            .and_then(|c| CaptureFacts::deserialize(c).ok())
            .unwrap_or_default()
    }
}

fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

fn lenient_or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(lenient(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn regtap_facts_read_back_field_by_field() {
        let entry = json!({"_regtap": {"capture": {
            "flow_id": "seven", "server_addr": "127.0.0.1:5000",
            "timing": {"request_start": 5}
        }}});
        let facts = CaptureFacts::of_entry(&entry);
        assert_eq!(facts.flow_id, None);
        assert_eq!(facts.server_addr.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(facts.timing.map(|t| t.request_start), Some(5));
        assert_eq!(
            CaptureFacts::of_entry(&json!({"_regtap": 1})),
            CaptureFacts::default()
        );

        let body = BodyFacts::of(&json!({"text": "", "_sha256": "ab", "_incomplete": "yes"}));
        assert_eq!(body.sha256.as_deref(), Some("ab"));
        assert!(!body.incomplete);
        assert!(BodyFacts::of(&json!({"_incomplete": true})).incomplete);
    }
}
