//! JWT decoding: header (with the `x5c` signer certificate) and claims
//! (with the registry `access` claim). Nothing is verified: the decoder
//! holds no keys; it shows what the token says.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::http::unix_to_rfc3339;
use crate::model::{Access, CertInfo, DecodeError, JwtClaims, JwtHeader, JwtInfo, TimeClaim};

/// Why a token is not a readable JWT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("an encrypted JWT (JWE, 5 parts) cannot be read without its key")]
    Encrypted,
    #[error("{0} dot-separated part(s), a JWT has 3")]
    PartCount(usize),
    #[error("{part} is not base64url: {source}")]
    NotBase64url {
        part: JwtPart,
        source: base64::DecodeError,
    },
    #[error("{0} is not a JSON object")]
    NotObject(JwtPart),
    /// `reason`: the JSON parser's.
    #[error("{part} is not JSON: {reason}")]
    NotJson { part: JwtPart, reason: String },
}

/// One of the three dot-separated parts of a JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtPart {
    Header,
    Payload,
    Signature,
}

impl std::fmt::Display for JwtPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JwtPart::Header => "header",
            JwtPart::Payload => "payload",
            JwtPart::Signature => "signature",
        })
    }
}

/// Why an `x5c` entry is not a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum CertificateError {
    #[error("is not base64: {0}")]
    NotBase64(#[from] base64::DecodeError),
    /// `reason`: the X.509 parser's.
    #[error("is not an X.509 certificate: {0}")]
    NotX509(String),
}

/// Decodes a compact JWS (`header.payload.signature`).
pub fn decode(token: &str) -> Result<JwtInfo, DecodeError> {
    let token = token.trim();
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        return Err(DecodeError::Jwt(match parts.len() {
            5 => JwtError::Encrypted,
            n => JwtError::PartCount(n),
        }));
    };
    let mut problems = Vec::new();
    let header = json_object(header, JwtPart::Header)?;
    let claims = json_object(payload, JwtPart::Payload)?;
    let signature_bytes = base64url(signature)
        .map_err(|source| JwtError::NotBase64url {
            part: JwtPart::Signature,
            source,
        })?
        .len();
    Ok(JwtInfo {
        header: decode_header(header, &mut problems),
        claims: decode_claims(claims, &mut problems),
        signature_bytes,
        problems,
    })
}

/// base64url, with or without `=` padding.
pub(crate) fn base64url(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('='))
}

fn json_object(text: &str, part: JwtPart) -> Result<Map<String, Value>, JwtError> {
    let bytes = base64url(text).map_err(|source| JwtError::NotBase64url { part, source })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(JwtError::NotObject(part)),
        Err(e) => Err(JwtError::NotJson {
            part,
            reason: e.to_string(),
        }),
    }
}

fn take_string(
    map: &mut Map<String, Value>,
    key: &str,
    problems: &mut Vec<String>,
) -> Option<String> {
    match map.remove(key)? {
        Value::String(s) => Some(s),
        other => {
            problems.push(format!("{key} is not a string: {other}"));
            None
        }
    }
}

fn decode_header(mut map: Map<String, Value>, problems: &mut Vec<String>) -> JwtHeader {
    let alg = take_string(&mut map, "alg", problems);
    let typ = take_string(&mut map, "typ", problems);
    let kid = take_string(&mut map, "kid", problems);
    let (x5c_len, x5c_first) = match map.remove("x5c") {
        None => (0, None),
        Some(Value::Array(certs)) => {
            let first = certs.first().and_then(|c| match c.as_str() {
                Some(b64) => match certificate(b64) {
                    Ok(info) => Some(info),
                    Err(reason) => {
                        problems.push(format!("x5c[0] {reason}"));
                        None
                    }
                },
                None => {
                    problems.push("x5c[0] is not a string".to_owned());
                    None
                }
            });
            (certs.len(), first)
        }
        Some(_) => {
            problems.push("x5c is not an array".to_owned());
            (0, None)
        }
    };
    JwtHeader {
        alg,
        typ,
        kid,
        x5c_len,
        x5c_first,
        other: map.into_iter().collect(),
    }
}

/// Subject, issuer and validity of a base64 (standard alphabet) DER
/// certificate. An issuer signs its tokens with one certificate, which each
/// token carries in `x5c`: the last few parsed are remembered, since
/// parsing one was a third of decoding a token.
fn certificate(b64: &str) -> Result<CertInfo, CertificateError> {
    const REMEMBERED: usize = 4;
    thread_local! {
        static RECENT: RefCell<VecDeque<(String, CertInfo)>> = const { RefCell::new(VecDeque::new()) };
    }
    let known = RECENT.with_borrow(|recent| {
        recent
            .iter()
            .find(|(text, _)| text == b64)
            .map(|(_, info)| info.clone())
    });
    if let Some(info) = known {
        return Ok(info);
    }
    let info = parse_certificate(b64)?;
    RECENT.with_borrow_mut(|recent| {
        if recent.len() >= REMEMBERED {
            recent.pop_front();
        }
        recent.push_back((b64.to_owned(), info.clone()));
    });
    Ok(info)
}

fn parse_certificate(b64: &str) -> Result<CertInfo, CertificateError> {
    let der = base64::engine::general_purpose::STANDARD.decode(b64)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| CertificateError::NotX509(e.to_string()))?;
    let validity = cert.validity();
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: unix_to_rfc3339(validity.not_before.timestamp()),
        not_after: unix_to_rfc3339(validity.not_after.timestamp()),
    })
}

fn decode_claims(mut map: Map<String, Value>, problems: &mut Vec<String>) -> JwtClaims {
    let iss = take_string(&mut map, "iss", problems);
    let sub = take_string(&mut map, "sub", problems);
    let jti = take_string(&mut map, "jti", problems);
    let aud = match map.remove("aud") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::String(s) => Some(s),
                other => {
                    problems.push(format!("aud entry is not a string: {other}"));
                    None
                }
            })
            .collect(),
        Some(other) => {
            problems.push(format!("aud is neither a string nor an array: {other}"));
            Vec::new()
        }
    };
    let mut time = |key: &str| {
        let value = map.remove(key)?;
        match value.as_i64().or_else(|| value.as_f64().map(|f| f as i64)) {
            Some(unix) => Some(TimeClaim {
                unix,
                utc: unix_to_rfc3339(unix),
            }),
            None => {
                problems.push(format!("{key} is not a number: {value}"));
                None
            }
        }
    };
    let exp = time("exp");
    let nbf = time("nbf");
    let iat = time("iat");
    let access = match map.remove("access") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => access_list(&value, problems),
    };
    JwtClaims {
        iss,
        sub,
        aud,
        exp,
        nbf,
        iat,
        jti,
        access,
        other: map.into_iter().collect(),
    }
}

/// The registry token `access` claim: `[{type, name, actions, parameters}]`.
pub(crate) fn access_list(value: &Value, problems: &mut Vec<String>) -> Vec<Access> {
    let Some(entries) = value.as_array() else {
        problems.push("access is not an array".to_owned());
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let Some(obj) = entry.as_object() else {
                problems.push(format!("access entry is not an object: {entry}"));
                return None;
            };
            let text = |k: &str| {
                obj.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let actions = obj
                .get("actions")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let parameters: BTreeMap<String, Value> = obj
                .get("parameters")
                .and_then(Value::as_object)
                .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            Some(Access {
                resource_type: text("type"),
                name: text("name"),
                actions,
                parameters,
            })
        })
        .collect()
}

/// `repository:lab/app:pull,push` for one access entry.
pub fn access_scope(access: &Access) -> String {
    format!(
        "{}:{}:{}",
        access.resource_type,
        access.name,
        access.actions.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Bearer token of the seed document (Docker Hub, 2024-07-22).
    pub(crate) const DOCKER_HUB_JWT: &str = include_str!("../tests/data/dockerhub-jwt.txt");

    #[test]
    fn docker_hub_token_from_the_seed() {
        let jwt = decode(DOCKER_HUB_JWT).unwrap();
        assert_eq!(jwt.header.alg.as_deref(), Some("RS256"));
        assert_eq!(jwt.header.typ.as_deref(), Some("JWT"));
        assert_eq!(jwt.header.x5c_len, 1);
        let cert = jwt.header.x5c_first.as_ref().unwrap();
        assert!(
            cert.subject.contains("Docker, Inc. Eng JWT CA"),
            "{}",
            cert.subject
        );
        assert!(
            cert.issuer.contains("Docker, Inc. Eng Root CA"),
            "{}",
            cert.issuer
        );
        assert_eq!(cert.not_before, "2024-01-16T06:36:00Z");
        assert_eq!(cert.not_after, "2025-01-15T06:36:00Z");
        let c = &jwt.claims;
        assert_eq!(c.iss.as_deref(), Some("auth.docker.io"));
        assert_eq!(
            c.sub.as_deref(),
            Some("9019465a-ce80-4f90-9c85-762665c3ea3d")
        );
        assert_eq!(c.aud, vec!["registry.docker.io"]);
        assert_eq!(c.exp.as_ref().unwrap().unix, 1_721_668_302);
        assert_eq!(c.exp.as_ref().unwrap().utc, "2024-07-22T17:11:42Z");
        assert_eq!(c.nbf.as_ref().unwrap().unix, 1_721_667_702);
        assert_eq!(c.iat.as_ref().unwrap().unix, 1_721_668_002);
        assert_eq!(
            c.jti.as_deref(),
            Some("dckr_jti_-Ik8pWrRNkVYfxRlEp4Zb46qBN8=")
        );
        assert_eq!(c.access.len(), 1);
        let access = &c.access[0];
        assert_eq!(access.resource_type, "repository");
        assert_eq!(access.name, "jockerdragon/test");
        assert_eq!(access.actions, vec!["pull", "push"]);
        assert_eq!(access.parameters["pull_limit"], "200");
        assert_eq!(
            access_scope(access),
            "repository:jockerdragon/test:pull,push"
        );
        assert_eq!(
            c.other["https://auth.docker.io"]["username"],
            "jockerdragon"
        );
        assert_eq!(jwt.signature_bytes, 256);
        assert!(jwt.problems.is_empty(), "{:?}", jwt.problems);
    }

    fn b64(json: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn aud_as_array_padding_and_odd_claims() {
        let token = format!(
            "{}.{}==.c2ln",
            b64(r#"{"alg":"none","x5c":["bm90IGEgY2VydA=="]}"#),
            b64(
                r#"{"aud":["a","b",3],"exp":"soon","nbf":1.5e9,"access":[{"type":"repository","name":"x","actions":["pull"]},7]}"#
            )
        );
        let jwt = decode(&token).unwrap();
        assert_eq!(jwt.claims.aud, vec!["a", "b"]);
        assert_eq!(jwt.claims.exp, None);
        assert_eq!(jwt.claims.nbf.as_ref().unwrap().unix, 1_500_000_000);
        assert_eq!(jwt.claims.access.len(), 1);
        assert_eq!(jwt.header.x5c_len, 1);
        assert!(jwt.header.x5c_first.is_none());
        let problems = jwt.problems.join("; ");
        for expected in ["aud entry", "exp is not a number", "access entry", "x5c[0]"] {
            assert!(problems.contains(expected), "{problems}");
        }
    }

    #[test]
    fn malformed_tokens_are_errors_with_a_reason() {
        for (token, reason) in [
            ("", "1 dot-separated part"),
            ("a.b", "2 dot-separated"),
            ("a.b.c.d.e", "JWE"),
            ("!!.e30.c2ln", "header is not base64url"),
            (
                &format!("{}.e30.c2ln", b64("[1]")),
                "header is not a JSON object",
            ),
            (
                &format!("{}.{}.c2ln", b64("{}"), b64("{")),
                "payload is not JSON",
            ),
            (&format!("{}.{}.***", b64("{}"), b64("{}")), "signature"),
        ] {
            let err = decode(token).unwrap_err().to_string();
            assert!(err.contains(reason), "{token}: {err}");
        }
    }

    #[test]
    fn truncated_seed_token_never_panics() {
        for cut in 0..DOCKER_HUB_JWT.len() {
            let _ = decode(&DOCKER_HUB_JWT[..cut]);
        }
    }
}
