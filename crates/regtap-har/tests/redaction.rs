//! The default (redacted) HAR holds no credential: every string of the HAR of
//! every capture in `captures/` and of crafted flows (one per class of secret
//! the reporter found leaking) is checked for credential-shaped values by
//! rules written here, independently of `regtap_har::redact`, and the secrets
//! planted in the crafted flows must appear nowhere, in any spelling.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use regtap_capture::Flow;
use regtap_capture::factory::FlowBuilder;
use regtap_decode::{Options, analyze};
use regtap_har::redact::Salt;
use regtap_har::{ExportOptions, export};
use serde_json::Value;

const REGISTRY: &str = "https://registry.test:5000";
const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJsYWItdXNlciJ9.c2lnbmF0dXJlLWJ5dGVz";

/// Secrets planted in [`crafted_flows`], one or more per class.
const PLANTED: &[&str] = &[
    "AMZSIG0123456789abcdef0123456789abcdef",
    "AMZSESSIONTOKENFwoGZXIvYXdz",
    "AKIAPLANTEDKEYID",
    "userinfo-pass-9f3",
    "camel-access-token-77",
    "ecr-authorization-token-88",
    "docker-identity-token-99",
    "plain-secret-value-11",
    "dXNlcjpiYXNlNjQtYXV0aC1wYXNz",
    "base64-auth-pass",
    "123456789",
    "1700000000-CDNVERIFYSIG",
    "jfrog-art-api-key-55",
    "x-registry-auth-66",
    "private-token-glpat-44",
    "session-cookie-value-33",
    "set-cookie-value-22",
    "query-access-token-12",
    "azure-sas-sig-13",
    "basic-header-password-14",
    JWT,
    "form-password-15",
    "nested-client-secret-16",
];

fn crafted_flows() -> Vec<Flow> {
    let s3 = "https://bucket.s3.amazonaws.com/docker/blobs/sha256/aa/data?X-Amz-Algorithm=AWS4-HMAC-SHA256\
              &X-Amz-Credential=AKIAPLANTEDKEYID%2F20240101%2Fus-east-1%2Fs3%2Faws4_request\
              &X-Amz-Date=20240101T000000Z&X-Amz-Expires=1200\
              &X-Amz-Security-Token=AMZSESSIONTOKENFwoGZXIvYXdz&X-Amz-SignedHeaders=host\
              &X-Amz-Signature=AMZSIG0123456789abcdef0123456789abcdef";
    let blob = format!("{REGISTRY}/v2/lab/app/blobs/sha256:{}", "a".repeat(64));
    let basic = STANDARD.encode("lab:basic-header-password-14");
    vec![
        // A blob GET redirected to a pre-signed S3 URL, and the GET that follows.
        FlowBuilder::new(1, "GET", &blob)
            .request_header("Authorization", &format!("Bearer {JWT}"))
            .status(307)
            .response_header("Location", s3)
            .build(),
        FlowBuilder::new(2, "GET", s3)
            .status(200)
            .response_body_summary(10, &"b".repeat(64))
            .build(),
        // A CDN redirect with `verify=` and URL userinfo.
        FlowBuilder::new(3, "GET", "https://lab:userinfo-pass-9f3@registry.test:5000/v2/")
            .status(307)
            .response_header(
                "Location",
                "https://cdn.test/r/b?verify=1700000000-CDNVERIFYSIG&expires=1700000000",
            )
            .build(),
        // JSON keys other than the six exact names, a numeric password, nesting.
        FlowBuilder::new(4, "POST", "https://auth.test/token")
            .request_header("Content-Type", "application/json")
            .request_body(
                br#"{"username":"lab","password":123456789,"client":{"client_secret":"nested-client-secret-16"}}"#,
            )
            .status(200)
            .response_header("Content-Type", "application/json")
            .response_body(
                br#"{"accessToken":"camel-access-token-77","authorizationData":[{"authorizationToken":"ecr-authorization-token-88"}],"identitytoken":"docker-identity-token-99","secret":"plain-secret-value-11","auths":{"registry.test":{"auth":"dXNlcjpiYXNlNjQtYXV0aC1wYXNz"}},"expires_in":300}"#,
            )
            .build(),
        // Vendor and credential headers, cookies, query tokens, Azure SAS.
        FlowBuilder::new(
            5,
            "GET",
            &format!("{REGISTRY}/v2/?access_token=query-access-token-12&sig=azure-sas-sig-13&se=2030-01-01"),
        )
        .request_header("X-JFrog-Art-Api", "jfrog-art-api-key-55")
        .request_header("X-Registry-Auth", "x-registry-auth-66")
        .request_header("Private-Token", "private-token-glpat-44")
        .request_header("Cookie", "session=session-cookie-value-33")
        .request_header("Authorization", &format!("Basic {basic}"))
        .status(200)
        .response_header("Set-Cookie", "sid=set-cookie-value-22; Path=/; HttpOnly")
        .build(),
        // A form with a password, and an error message quoting a token.
        FlowBuilder::new(6, "POST", "https://auth.test/token")
            .request_header("Content-Type", "application/x-www-form-urlencoded")
            .request_body(b"grant_type=password&username=lab&password=form-password-15")
            .status(401)
            .response_header("Content-Type", "application/json")
            .response_body(
                format!(
                    r#"{{"errors":[{{"code":"UNAUTHORIZED","message":"invalid token {JWT}","detail":"see base64-auth-pass"}}]}}"#
                )
                .replace("see base64-auth-pass", "see https://u:base64-auth-pass@x.test/")
                .as_bytes(),
            )
            .build(),
    ]
}

fn default_har(flows: &[Flow]) -> Value {
    let analysis = analyze(flows, &Options::default());
    let options = ExportOptions {
        salt: Salt::from_bytes([3; 16]),
        ..ExportOptions::default()
    };
    let exported = export(flows, &analysis, &options).expect("export");
    serde_json::to_value(&exported.har).expect("HAR serializes")
}

/// Key words of credential-carrying names, as a reviewer would list them.
const CREDENTIAL_WORDS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "credential",
    "signature",
    "apikey",
    "artapi",
    "cookie",
];

fn normalized(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn credential_name(name: &str) -> bool {
    let name = normalized(name);
    let descriptive = ["type", "expires", "expiresin", "bytes", "url"]
        .iter()
        .any(|end| name.ends_with(end));
    !descriptive
        && (CREDENTIAL_WORDS.iter().any(|w| name.contains(w))
            || ["auth", "sig", "verify", "authorization", "xregistryauth"].contains(&name.as_str()))
}

/// Redacted, or `Scheme <redacted…>`, or `name=<redacted…>` (cookies).
fn redacted(value: &str) -> bool {
    let value = value.trim();
    let after = |separator: char| {
        value
            .split_once(separator)
            .is_some_and(|(_, rest)| rest.starts_with("<redacted"))
    };
    value.starts_with("<redacted") || value.starts_with("%3Credacted") || after(' ') || after('=')
}

/// Why `text` is credential-shaped, if it is.
fn credential_shape(text: &str) -> Option<String> {
    // A JWT.
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c))) {
        let parts: Vec<&str> = word.split('.').collect();
        if parts.len() == 3 && parts[0].starts_with("eyJ") && parts[1].len() > 3 {
            return Some(format!("a JWT {word:.20}…"));
        }
    }
    // URLs: userinfo passwords and credential query parameters.
    for at in text.match_indices("://").map(|(i, _)| i) {
        let url = &text[at + 3..];
        let url = &url[..url
            .find(|c: char| c.is_whitespace() || "\"'<>".contains(c))
            .unwrap_or(url.len())];
        let authority = url.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
            && !redacted(password)
        {
            return Some(format!("a URL password in {url:.60}"));
        }
        let query = url.split_once('?').map_or("", |(_, q)| q);
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if credential_name(name) && !value.is_empty() && !redacted(value) && value != "true" {
                return Some(format!("query parameter {name}={value:.20}"));
            }
        }
    }
    // JSON text with a credential under a credential key.
    if let Ok(json) = serde_json::from_str::<Value>(text)
        && (json.is_object() || json.is_array())
    {
        return json_credential(&json, false);
    }
    None
}

fn json_credential(value: &Value, under_credential_key: bool) -> Option<String> {
    match value {
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| json_credential(v, under_credential_key || credential_name(k))),
        Value::Array(items) => items
            .iter()
            .find_map(|v| json_credential(v, under_credential_key)),
        Value::String(s) if under_credential_key && !s.is_empty() && !redacted(s) => {
            Some(format!("JSON credential {s:.20}"))
        }
        Value::Number(n) if under_credential_key => Some(format!("JSON credential {n}")),
        Value::String(s) => credential_shape(s),
        _ => None,
    }
}

/// Walks every string of the HAR; name/value pairs (headers, cookies, query
/// strings) are judged by their name too.
fn leaks(value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let (Some(Value::String(name)), Some(Value::String(v))) =
                (map.get("name"), map.get("value"))
                && credential_name(name)
                && !redacted(v)
                && v != "true"
            {
                out.push(format!("{path}: {name}: {v:.30}"));
            }
            for (key, item) in map {
                leaks(item, &format!("{path}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                leaks(item, &format!("{path}/{i}"), out);
            }
        }
        Value::String(text) => {
            if let Some(why) = credential_shape(text) {
                out.push(format!("{path}: {why}"));
            }
        }
        _ => {}
    }
}

fn all_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.values().for_each(|v| all_strings(v, out)),
        Value::Array(items) => items.iter().for_each(|v| all_strings(v, out)),
        Value::String(text) => out.push(text.clone()),
        _ => {}
    }
}

fn assert_no_leak(name: &str, har: &Value) {
    let mut found = Vec::new();
    leaks(har, "", &mut found);
    assert!(
        found.is_empty(),
        "{name}: the redacted HAR holds credentials:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn no_credential_shaped_value_in_the_default_har_of_any_capture() {
    let inputs = common::all_inputs();
    assert!(inputs.len() > 5, "the captures were found");
    for (name, flows) in &inputs {
        assert_no_leak(name, &default_har(flows));
    }
}

#[test]
fn no_planted_secret_of_any_class_survives_in_any_spelling() {
    let har = default_har(&crafted_flows());
    assert_no_leak("crafted", &har);
    let text = serde_json::to_string(&har).expect("json");
    for secret in PLANTED {
        let spellings = [
            secret.to_string(),
            percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
            STANDARD.encode(secret),
        ];
        for spelled in spellings {
            assert!(!text.contains(&spelled), "HAR leaks {spelled}");
        }
    }
    // What is not secret stays readable.
    let mut strings = Vec::new();
    all_strings(&har, &mut strings);
    let strings = strings.join("\n");
    for kept in [
        "X-Amz-Expires=1200",
        "X-Amz-Date=20240101T000000Z",
        "expires=1700000000",
        "se=2030-01-01",
        "\"username\":\"lab\"",
        "grant_type=password",
        "UNAUTHORIZED",
        "https://bucket.s3.amazonaws.com/docker/blobs/sha256/aa/data?",
    ] {
        assert!(strings.contains(kept), "redaction lost {kept}");
    }
}

#[test]
fn the_checker_finds_every_class_when_secrets_are_included() {
    // The checks above cannot pass for want of looking: with
    // --include-secrets the same walk reports every crafted flow.
    let flows = crafted_flows();
    let analysis = analyze(&flows, &Options::default());
    let options = ExportOptions {
        include_secrets: true,
        ..ExportOptions::default()
    };
    let har = serde_json::to_value(&export(&flows, &analysis, &options).expect("export").har)
        .expect("json");
    let mut found = Vec::new();
    leaks(&har, "", &mut found);
    for entry in 0..flows.len() {
        assert!(
            found
                .iter()
                .any(|f| f.starts_with(&format!("/log/entries/{entry}/"))),
            "entry {entry} not flagged: {found:#?}"
        );
    }
    let text = serde_json::to_string(&har).expect("json");
    // The Basic password travels base64-encoded with its user name.
    let missing: Vec<_> = PLANTED
        .iter()
        .filter(|s| !text.contains(*s) && **s != "basic-header-password-14")
        .collect();
    assert!(missing.is_empty(), "{missing:?}");
}

#[test]
fn fingerprints_correlate_within_an_export_and_not_across() {
    let flows = common::dockerd_sequences();
    let analysis = analyze(&flows, &Options::default());
    let with_salt = |salt: [u8; 16]| {
        let options = ExportOptions {
            salt: Salt::from_bytes(salt),
            ..ExportOptions::default()
        };
        serde_json::to_string(&export(&flows, &analysis, &options).expect("export").har)
            .expect("json")
    };
    let prints = |text: &str| -> Vec<String> {
        text.match_indices("<redacted hmac:")
            .map(|(i, _)| text[i..].chars().take(28).collect::<String>())
            .filter(|p| p[15..27].bytes().all(|b| b.is_ascii_hexdigit()))
            .collect()
    };
    let (a, b) = (with_salt([1; 16]), with_salt([2; 16]));
    let (prints_a, prints_b) = (prints(&a), prints(&b));
    assert!(!prints_a.is_empty());
    assert!(prints_a.iter().all(|p| !prints_b.contains(p)));
    // The salt is stated, and a token's fingerprint repeats within the file.
    assert!(a.contains(&Salt::from_bytes([1; 16]).hex()));
    let mut counted = prints_a.clone();
    counted.sort();
    counted.dedup();
    assert!(counted.len() < prints_a.len());
}
