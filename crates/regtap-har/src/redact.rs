//! Replacing credentials by fingerprints, so a HAR can be shared without
//! leaking them while equal secrets still correlate across entries (the token
//! a token endpoint issued and the `Authorization: Bearer` that later carries it
//! get the same fingerprint).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use regtap_capture::sha256_hex;

/// Query-string, form and JSON keys whose values are credentials.
const SECRET_KEYS: &[&str] = &[
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "password",
    "client_secret",
];

/// Query parameters of pre-signed storage URLs (the redirects of blob
/// downloads): short-lived credentials too. Only checked in URLs, since JSON
/// bodies (signed schema 1 manifests) use `signature` for public data.
const URL_ONLY_SECRET_KEYS: &[&str] = &[
    "signature",
    "sig",
    "x-amz-signature",
    "x-amz-security-token",
    "x-goog-signature",
];

/// Header fields that carry credentials as `Scheme credentials`.
const AUTH_HEADERS: &[&str] = &["authorization", "proxy-authorization"];

/// Characters left as they are when a fingerprint goes into a URL.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `<redacted sha256:XXXXXXXX>`: the first 8 hex digits of the secret's SHA-256.
pub fn fingerprint(secret: &str) -> String {
    let hex = sha256_hex(secret.as_bytes());
    format!("<redacted sha256:{}>", &hex[..8])
}

pub fn is_secret_key(name: &str) -> bool {
    SECRET_KEYS.iter().any(|k| k.eq_ignore_ascii_case(name))
}

/// Whether a query-string or form parameter holds a credential.
pub fn is_secret_query_key(name: &str) -> bool {
    is_secret_key(name)
        || URL_ONLY_SECRET_KEYS
            .iter()
            .any(|k| k.eq_ignore_ascii_case(name))
}

/// The value to write for header `name`: credentials replaced by fingerprints.
pub fn header_value(name: &str, value: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if AUTH_HEADERS.contains(&lower.as_str()) {
        return match value.split_once(' ') {
            // Keep the scheme: "Bearer" vs "Basic" is what a reader needs.
            Some((scheme, credentials)) => {
                format!("{scheme} {}", fingerprint(credentials.trim()))
            }
            None => fingerprint(value),
        };
    }
    match lower.as_str() {
        "cookie" => value
            .split(';')
            .map(|pair| redact_cookie_pair(pair.trim()))
            .collect::<Vec<_>>()
            .join("; "),
        "set-cookie" => {
            let (first, attributes) = value.split_once(';').unwrap_or((value, ""));
            let redacted = redact_cookie_pair(first.trim());
            if attributes.is_empty() {
                redacted
            } else {
                format!("{redacted};{attributes}")
            }
        }
        _ if lower.contains("token") || lower.contains("api-key") || lower == "x-registry-auth" => {
            fingerprint(value)
        }
        _ => value.to_owned(),
    }
}

fn redact_cookie_pair(pair: &str) -> String {
    match pair.split_once('=') {
        Some((name, value)) => format!("{name}={}", fingerprint(value)),
        None => pair.to_owned(),
    }
}

/// `url` with the values of secret query parameters replaced by (percent-encoded)
/// fingerprints of their decoded values.
pub fn url(url: &str) -> String {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((head, fragment)) => (head, Some(fragment)),
        None => (url, None),
    };
    let Some((base, query)) = before_fragment.split_once('?') else {
        return url.to_owned();
    };
    let mut out = format!("{base}?{}", urlencoded(query, true));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// An `application/x-www-form-urlencoded` string (query or form body) with
/// secret values replaced. `percent_encode_fingerprints`: write the fingerprint
/// percent-encoded (for URLs, where `<` and spaces are not allowed) rather than
/// form-encoded.
pub fn urlencoded(text: &str, percent_encode_fingerprints: bool) -> String {
    text.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if is_secret_query_key(&decode_component(name)) => {
                let print = fingerprint(&decode_component(value));
                let encoded = utf8_percent_encode(&print, QUERY_VALUE).to_string();
                if percent_encode_fingerprints {
                    format!("{name}={encoded}")
                } else {
                    format!("{name}={}", encoded.replace("%20", "+"))
                }
            }
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A form-encoded component decoded: `+` is a space, then percent-decoding.
pub fn decode_component(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// A JSON text with the string values of secret keys (at any depth) replaced.
/// The text is otherwise kept as it was (formatting, key order) when the
/// secrets are spelled plainly in it; otherwise it is re-serialized. `None`
/// when the text is not JSON.
pub fn json_text(text: &str) -> Option<String> {
    let mut value: serde_json::Value = serde_json::from_str(text).ok()?;
    let mut secrets = Vec::new();
    collect_json_secrets(&value, &mut secrets);
    if secrets.is_empty() {
        return Some(text.to_owned());
    }
    let mut out = text.to_owned();
    for secret in &secrets {
        // The secret as it is spelled inside the JSON text, quotes included.
        let (Ok(spelled), Ok(replacement)) = (
            serde_json::to_string(secret),
            serde_json::to_string(&fingerprint(secret)),
        ) else {
            continue;
        };
        out = replace_values(&out, &spelled, &replacement);
    }
    let still_secret = serde_json::from_str::<serde_json::Value>(&out)
        .map(|redacted| {
            let mut left = Vec::new();
            collect_json_secrets(&redacted, &mut left);
            left.iter().any(|s| !s.starts_with("<redacted sha256:"))
        })
        .unwrap_or(true);
    if still_secret {
        // Escaped spellings (`\u0041…`): fall back to rewriting the value.
        replace_json_secrets(&mut value);
        return serde_json::to_string(&value).ok();
    }
    Some(out)
}

/// Replaces `spelled` where it stands as an object member's value (after `:`),
/// so a key that happens to equal a secret is left alone.
fn replace_values(text: &str, spelled: &str, replacement: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(spelled) {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        let is_value = out.trim_end().ends_with(':');
        out.push_str(if is_value { replacement } else { spelled });
        rest = &after[spelled.len()..];
    }
    out.push_str(rest);
    out
}

fn replace_json_secrets(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                match item {
                    serde_json::Value::String(secret)
                        if is_secret_key(key) && !secret.is_empty() =>
                    {
                        *secret = fingerprint(secret);
                    }
                    _ => replace_json_secrets(item),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(replace_json_secrets),
        _ => {}
    }
}

fn collect_json_secrets(value: &serde_json::Value, secrets: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                match item {
                    serde_json::Value::String(secret)
                        if is_secret_key(key) && !secret.is_empty() =>
                    {
                        secrets.push(secret.clone());
                    }
                    _ => collect_json_secrets(item, secrets),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_json_secrets(item, secrets);
            }
        }
        _ => {}
    }
}

/// Whether a text that is not valid JSON still names a secret key, so that it
/// must be withheld rather than pasted.
pub fn mentions_secret_key(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|k| lower.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_keep_their_scheme_and_lose_the_credentials() {
        let bearer = header_value("Authorization", "Bearer abc.def.ghi");
        assert_eq!(bearer, format!("Bearer {}", fingerprint("abc.def.ghi")));
        let basic = header_value("authorization", "Basic dXNlcjpzM2NyZXQ=");
        assert!(basic.starts_with("Basic <redacted sha256:"));
        assert!(!basic.contains("dXNlcjpzM2NyZXQ="));
        assert_eq!(header_value("Docker-Upload-UUID", "abc"), "abc");
    }

    #[test]
    fn equal_secrets_get_equal_fingerprints_across_places() {
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
        let json = json_text(&format!(r#"{{"token": "{token}", "expires_in": 300}}"#)).unwrap();
        let header = header_value("Authorization", &format!("Bearer {token}"));
        let print = fingerprint(token);
        assert_eq!(
            json,
            format!(r#"{{"token": "{print}", "expires_in": 300}}"#)
        );
        assert_eq!(header, format!("Bearer {print}"));
    }

    #[test]
    fn query_and_form_secrets_are_replaced_by_fingerprints_of_decoded_values() {
        let redacted = url("https://r.test/token?service=r&access_token=a%2Bb&x=1#frag");
        let expected_print = fingerprint("a+b");
        let encoded = utf8_percent_encode(&expected_print, QUERY_VALUE).to_string();
        assert_eq!(
            redacted,
            format!("https://r.test/token?service=r&access_token={encoded}&x=1#frag")
        );
        let form = urlencoded("grant_type=password&username=bob&password=hunter2", false);
        assert!(!form.contains("hunter2"));
        assert!(form.contains("username=bob"));
        assert_eq!(
            decode_component(form.rsplit_once('=').unwrap().1),
            fingerprint("hunter2")
        );
    }

    #[test]
    fn cookies_keep_names_and_attributes() {
        assert_eq!(
            header_value("Cookie", "a=1; b=2"),
            format!("a={}; b={}", fingerprint("1"), fingerprint("2"))
        );
        assert_eq!(
            header_value("Set-Cookie", "sid=xyz; Path=/; HttpOnly"),
            format!("sid={}; Path=/; HttpOnly", fingerprint("xyz"))
        );
    }

    #[test]
    fn nested_json_secrets_are_found_and_other_text_is_kept() {
        let text = r#"{"b":{"refresh_token":"r1"},"list":[{"password":"p", "p": 1}],"token":7}"#;
        let out = json_text(text).unwrap();
        assert_eq!(
            out,
            format!(
                r#"{{"b":{{"refresh_token":"{}"}},"list":[{{"password":"{}", "p": 1}}],"token":7}}"#,
                fingerprint("r1"),
                fingerprint("p")
            )
        );
        let escaped = json_text(r#"{"token":"\u0041BC"}"#).unwrap();
        assert_eq!(escaped, format!(r#"{{"token":"{}"}}"#, fingerprint("ABC")));
        assert_eq!(json_text("not json"), None);
    }
}
