//! Registry error bodies (`{"errors":[{code,message,detail}]}`) and Docker
//! Hub's rate-limit headers.

use regtap_capture::Headers;
use serde_json::Value;

use crate::model::{RateLimit, RegistryError};

/// What an error code means, in one sentence (distribution spec and Docker
/// registry API v2).
pub fn explain(code: &str) -> String {
    let text = match code {
        "UNAUTHORIZED" => {
            "The client is not authenticated: it sent no credentials or a token the registry does not accept."
        }
        "DENIED" => "The credentials are valid but do not allow this action on this repository.",
        "BLOB_UNKNOWN" => "The registry does not have this blob in this repository.",
        "BLOB_UPLOAD_INVALID" => {
            "The upload was refused: a chunk was out of order, or the upload is in a bad state."
        }
        "BLOB_UPLOAD_UNKNOWN" => {
            "The registry knows no upload with this id: it expired, was cancelled or was never started."
        }
        "DIGEST_INVALID" => "The digest given does not match the bytes the registry received.",
        "MANIFEST_INVALID" => {
            "The registry rejected the manifest: it does not parse or does not validate."
        }
        "MANIFEST_BLOB_UNKNOWN" => {
            "The manifest refers to a blob (config or layer) that is not in the repository."
        }
        "MANIFEST_UNKNOWN" => "No manifest with this tag or digest exists in the repository.",
        "MANIFEST_UNVERIFIED" => "The signature of a schema 1 manifest does not verify.",
        "NAME_INVALID" => "The repository name is not a valid name.",
        "NAME_UNKNOWN" => "The repository does not exist (or is not visible to this client).",
        "SIZE_INVALID" => "The length sent does not match the content received.",
        "TAG_INVALID" => "The tag in the manifest does not match the tag in the URL.",
        "UNSUPPORTED" => "The registry does not support this operation.",
        "TOOMANYREQUESTS" => {
            "The client sent too many requests: a rate limit was reached; retry later."
        }
        "PAGINATION_NUMBER_INVALID" => "The page size requested is not valid.",
        "RANGE_INVALID" => "The Content-Range does not follow the bytes already received.",
        "UNKNOWN" => "The registry reported an error it did not classify.",
        _ => {
            return match vendor_code(code) {
                Some((vendor, meaning)) => format!("{vendor}'s own code: {meaning}"),
                None => format!("Error code {code} is not one of the standard registry codes."),
            };
        }
    };
    text.to_owned()
}

/// Codes some registries add to the standard ones: (registry, meaning).
fn vendor_code(code: &str) -> Option<(&'static str, &'static str)> {
    Some(match code {
        "PROJECTPOLICYVIOLATION" => (
            "Harbor",
            "a project policy refused the request (vulnerability severity, unsigned image, or a content trust rule).",
        ),
        "PRECONDITION" => (
            "Harbor",
            "a precondition of the project failed (for instance an immutable tag, or a quota).",
        ),
        "FORBIDDEN" => ("Harbor", "the user may not do this in this project."),
        "NOT_FOUND" => ("Harbor", "the project or artifact does not exist."),
        "BAD_CREDENTIAL" => (
            "Artifactory",
            "the user name or password (or API key) is wrong.",
        ),
        _ => return None,
    })
}

/// What a registry's explanation of `MANIFEST_UNKNOWN` adds: distribution
/// says so when the manifest exists but the client's `Accept` excludes its
/// media type.
pub fn negotiation_failure(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("accept header") || message.contains("not acceptable")
}

/// The most a person needs of an error body that is not a registry error
/// document: Docker Hub's `{"details":…}`, OAuth2's `error` and
/// `error_description`, a `message`, or the text itself (HTML tags dropped,
/// control characters escaped, trimmed to one line).
pub fn other_error_text(body: &[u8]) -> Option<String> {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
        let text = match (field("error"), field("error_description")) {
            (Some(error), Some(description)) => Some(format!("{error}: {description}")),
            (Some(error), None) => Some(error),
            (None, Some(description)) => Some(description),
            (None, None) => field("details")
                .or_else(|| field("message"))
                .or_else(|| field("detail")),
        };
        return text.map(|t| one_line(&t)).filter(|t| !t.is_empty());
    }
    let text = String::from_utf8_lossy(body);
    let text = strip_tags(&text);
    let text = one_line(&text);
    (!text.is_empty()).then_some(text)
}

/// HTML to its text: tags and the contents of `<script>`/`<style>` dropped.
fn strip_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(rest.get(..open).unwrap_or_default());
        let after = rest.get(open..).unwrap_or_default();
        let lower = after.get(..8).unwrap_or(after).to_ascii_lowercase();
        let skip_to = if lower.starts_with("<script") {
            "</script>"
        } else if lower.starts_with("<style") {
            "</style>"
        } else {
            ">"
        };
        match after.to_ascii_lowercase().find(skip_to) {
            Some(end) => {
                out.push(' ');
                rest = after.get(end + skip_to.len()..).unwrap_or_default();
            }
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whitespace runs to one space, control characters escaped, at most 500 characters.
pub fn one_line(text: &str) -> String {
    const LIMIT: usize = 500;
    let mut out = String::new();
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        if out.chars().count() >= LIMIT {
            out.push('…');
            break;
        }
    }
    out
}

/// Why a status came without an explaining body.
pub fn bare_status(status: u16, method: &str) -> Option<&'static str> {
    Some(match status {
        405 if method.eq_ignore_ascii_case("DELETE") => {
            "405 Method Not Allowed: the registry does not allow deletes (distribution needs storage.delete.enabled)"
        }
        405 => {
            "405 Method Not Allowed: the registry (or a mirror or read-only proxy in front of it) does not accept this method here"
        }
        413 => {
            "413 Content Too Large: the registry or a proxy in front of it refused a body this large (for example nginx's client_max_body_size)"
        }
        429 => {
            "429 Too Many Requests without a registry error body: a rate limit of the registry or of a proxy in front of it (Docker Hub's abuse limit answers so)"
        }
        _ => return None,
    })
}

/// Why a body that claims to be a registry error document is malformed. The
/// entries are quoted as JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorBodyError {
    #[error("\"errors\" is not an array")]
    NotAnArray,
    #[error("error entry is not an object: {0}")]
    EntryNotObject(String),
    #[error("error entry has no code: {0}")]
    NoCode(String),
}

/// Decodes a registry error body. An empty list when the body is not an
/// error document (or not JSON at all, as proxies' HTML pages); `Err` when
/// it claims to be one and is malformed.
pub fn parse_error_body(body: &[u8]) -> Result<Vec<RegistryError>, ErrorBodyError> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Ok(Vec::new());
    };
    let Some(errors) = value.get("errors") else {
        return Ok(Vec::new());
    };
    let Some(list) = errors.as_array() else {
        return Err(ErrorBodyError::NotAnArray);
    };
    list.iter()
        .map(|entry| {
            let obj = entry
                .as_object()
                .ok_or_else(|| ErrorBodyError::EntryNotObject(entry.to_string()))?;
            let code = obj
                .get("code")
                .and_then(Value::as_str)
                .ok_or_else(|| ErrorBodyError::NoCode(entry.to_string()))?
                .to_owned();
            let message = obj
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let detail = match obj.get("detail") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
            };
            Ok(RegistryError {
                explanation: explain(&code),
                code,
                message,
                detail,
            })
        })
        .collect()
}

/// `ratelimit-limit: 100;w=21600`, `ratelimit-remaining: 76;w=21600`,
/// `docker-ratelimit-source: 203.0.113.7`.
pub fn rate_limit(headers: &Headers) -> Option<RateLimit> {
    let limit = headers.get("ratelimit-limit");
    let remaining = headers.get("ratelimit-remaining");
    let source = headers.get("docker-ratelimit-source");
    if limit.is_none() && remaining.is_none() && source.is_none() {
        return None;
    }
    let (limit_value, limit_window) = limit.map(parse_quota).unwrap_or_default();
    let (remaining_value, remaining_window) = remaining.map(parse_quota).unwrap_or_default();
    Some(RateLimit {
        limit: limit_value,
        remaining: remaining_value,
        window_seconds: limit_window.or(remaining_window),
        source: source.map(str::to_owned),
    })
}

/// `100;w=21600` → (100, 21600).
fn parse_quota(value: &str) -> (Option<u64>, Option<u64>) {
    let mut parts = value.split(';').map(str::trim);
    let amount = parts.next().and_then(|p| p.parse().ok());
    let window = parts
        .find_map(|p| p.strip_prefix("w="))
        .and_then(|w| w.parse().ok());
    (amount, window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_code_is_explained() {
        for code in [
            "UNAUTHORIZED",
            "DENIED",
            "BLOB_UNKNOWN",
            "BLOB_UPLOAD_INVALID",
            "BLOB_UPLOAD_UNKNOWN",
            "DIGEST_INVALID",
            "MANIFEST_INVALID",
            "MANIFEST_BLOB_UNKNOWN",
            "MANIFEST_UNKNOWN",
            "NAME_INVALID",
            "NAME_UNKNOWN",
            "SIZE_INVALID",
            "UNSUPPORTED",
            "TOOMANYREQUESTS",
        ] {
            assert!(!explain(code).contains("not one of the standard"), "{code}");
        }
        assert!(explain("WHATEVER").contains("not one of the standard"));
    }

    #[test]
    fn error_bodies() {
        let errors = parse_error_body(
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[{"Type":"repository","Name":"lab/seq","Action":"push"}]}]}"#,
        )
        .unwrap();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].code, "UNAUTHORIZED");
        assert_eq!(errors[0].message, "authentication required");
        assert!(errors[0].detail.as_deref().unwrap().contains("lab/seq"));
        assert!(errors[0].explanation.contains("not authenticated"));
        assert!(parse_error_body(b"<html>").unwrap().is_empty());
        assert!(parse_error_body(br#"{"token":"x"}"#).unwrap().is_empty());
        assert_eq!(
            parse_error_body(br#"{"errors":{}}"#),
            Err(ErrorBodyError::NotAnArray)
        );
        assert_eq!(
            parse_error_body(br#"{"errors":[{"message":"no code"}]}"#)
                .unwrap_err()
                .to_string(),
            r#"error entry has no code: {"message":"no code"}"#
        );
    }

    #[test]
    fn rate_limit_headers() {
        let headers: Headers = [
            ("ratelimit-limit", "100;w=21600"),
            ("ratelimit-remaining", "76;w=21600"),
            ("docker-ratelimit-source", "203.0.113.7"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            rate_limit(&headers),
            Some(RateLimit {
                limit: Some(100),
                remaining: Some(76),
                window_seconds: Some(21600),
                source: Some("203.0.113.7".into()),
            })
        );
        assert_eq!(rate_limit(&Headers::new()), None);
    }
}
