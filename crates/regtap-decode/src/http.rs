//! Small helpers over the captured HTTP data: URLs, queries, bodies, and the
//! short forms used in one-line summaries.

use std::io::Read as _;

use regtap_capture::{Body, Headers};
use sha2::Digest as _;
use url::Url;

/// Largest decompressed body the decoder will look at: registry JSON is
/// small, and a gzip bomb must not eat the memory.
const MAX_DECODED_BODY: u64 = 8 * 1024 * 1024;

/// `host[:port]` of an absolute URL.
pub fn authority(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => String::new(),
    }
}

/// Every value of query parameter `name`, percent-decoded.
pub fn query_all(url: &Url, name: &str) -> Vec<String> {
    query_values(url, name).collect()
}

pub fn query_first(url: &Url, name: &str) -> Option<String> {
    query_values(url, name).next()
}

/// The values of query parameter `name`, as [`Url::query_pairs`] decodes
/// them, but decoding only the values asked for: a scope or a signature
/// decoded for every parameter looked up was a hot spot of large captures.
fn query_values<'a>(url: &'a Url, name: &'a str) -> impl Iterator<Item = String> + 'a {
    url.query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(move |pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decoded(key) == name).then(|| form_decoded(value).into_owned())
        })
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, then
/// percent-decoding, invalid UTF-8 replaced.
fn form_decoded(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['+', '%']) {
        return text.into();
    }
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
        .into()
}

/// `Location` resolved against the request URL (registries send both
/// relative and absolute ones).
pub fn resolve(base: Option<&Url>, location: &str) -> Option<Url> {
    match base {
        Some(base) => base.join(location).ok(),
        None => Url::parse(location).ok(),
    }
}

/// The body's bytes as the application sees them: whole, and gunzipped when
/// `Content-Encoding` says gzip. `None` when the capture does not hold all of it.
pub fn decoded_body(body: &Body, headers: &Headers) -> Option<Vec<u8>> {
    let raw = body.full_bytes()?;
    let encoding = headers
        .get("content-encoding")
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if encoding == "gzip" || encoding == "x-gzip" {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .take(MAX_DECODED_BODY)
            .read_to_end(&mut out)
            .ok()?;
        Some(out)
    } else {
        Some(raw)
    }
}

/// A short non-reversible name for a secret: 12 hex digits of its SHA-256.
pub fn fingerprint(secret: &str) -> String {
    let hash = sha2::Sha256::digest(secret.as_bytes());
    hex::encode(&hash[..6])
}

/// The whole SHA-256 of a token, to match tokens without keeping them: as
/// bytes, since a capture holds one per request that carried a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        TokenHash(sha2::Sha256::digest(token.as_bytes()).into())
    }

    /// The token's [`fingerprint`].
    pub fn short(&self) -> String {
        hex::encode(self.0.get(..6).unwrap_or_default())
    }
}

/// `sha256:0123456789ab…`: enough to tell digests apart on one line.
pub fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algorithm, hex)) if hex.len() > 12 => {
            let cut: String = hex.chars().take(12).collect();
            format!("{algorithm}:{cut}…")
        }
        _ => digest.to_owned(),
    }
}

pub use regtap_capture::human_bytes;

/// Text of a status code: `401 Unauthorized`.
pub fn status_text(status: u16) -> String {
    let reason = regtap_capture::reason_phrase(status);
    if reason.is_empty() {
        status.to_string()
    } else {
        format!("{status} {reason}")
    }
}

/// RFC 3339 of a Unix time in seconds, or the number when out of range.
pub fn unix_to_rfc3339(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{seconds}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_hash_prints_as_the_token_fingerprint() {
        for token in ["", "abc", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"] {
            assert_eq!(TokenHash::of(token).short(), fingerprint(token));
            assert_eq!(TokenHash::of(token).short().len(), 12);
        }
        assert_ne!(TokenHash::of("a"), TokenHash::of("b"));
    }

    #[test]
    fn query_values_are_decoded_as_query_pairs_decodes_them() {
        let queries = [
            "scope=repository%3Alib%2Fa%3Apull&scope=repository:b:push&service=r.test",
            "a=1&&a=2&a&=x&a==3&b=c=d",
            "X%2DAmz-Date=20240722T170641Z&X-Amz-Expires=+60+&x+y=%zz%41",
            "n=%FF%FE&n=caf%C3%A9&n=%E2%82",
            "",
        ];
        for query in queries {
            let url = Url::parse(&format!("https://r.test/v2/?{query}")).unwrap();
            let mut names: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
            names.extend(["absent".to_owned(), String::new()]);
            for name in &names {
                let expected: Vec<String> = url
                    .query_pairs()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
                    .collect();
                assert_eq!(query_all(&url, name), expected, "{name:?} in {query:?}");
                assert_eq!(query_first(&url, name), expected.first().cloned());
            }
        }
    }

    #[test]
    fn gzip_bodies_are_inflated() {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(br#"{"errors":[]}"#).unwrap();
        let body = Body::from_bytes(&encoder.finish().unwrap());
        let headers: Headers = [("Content-Encoding", "gzip")].into_iter().collect();
        assert_eq!(decoded_body(&body, &headers).unwrap(), br#"{"errors":[]}"#);
    }

    #[test]
    fn garbage_gzip_is_not_a_body() {
        let body = Body::from_bytes(b"not gzip at all");
        let headers: Headers = [("Content-Encoding", "gzip")].into_iter().collect();
        assert_eq!(decoded_body(&body, &headers), None);
    }

    #[test]
    fn short_forms() {
        assert_eq!(
            short_digest("sha256:0123456789abcdef0123"),
            "sha256:0123456789ab…"
        );
        assert_eq!(short_digest("latest"), "latest");
        assert_eq!(fingerprint("secret").len(), 12);
    }
}
