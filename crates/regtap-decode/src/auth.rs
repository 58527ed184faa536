//! Authentication as seen on the wire: `WWW-Authenticate` challenges,
//! `Authorization` credentials and token endpoint answers.

use base64::Engine as _;

use crate::model::Challenge;

/// Parses a `WWW-Authenticate` value (RFC 9110 §11.6.1): one or more
/// challenges, each a scheme then `name=value` or `name="quoted, value"`
/// parameters. Returns what could be read and, if the value is malformed,
/// why.
pub fn parse_challenges(value: &str) -> (Vec<Challenge>, Option<String>) {
    let mut challenges: Vec<Challenge> = Vec::new();
    let mut problem = None;
    let chars: Vec<char> = value.chars().collect();
    let mut i = 0;
    let skip = |i: &mut usize, set: &[char]| {
        while chars.get(*i).is_some_and(|c| set.contains(c)) {
            *i += 1;
        }
    };
    while i < chars.len() {
        skip(&mut i, &[' ', '\t', ',']);
        let start = i;
        while chars
            .get(i)
            .is_some_and(|c| !matches!(c, ' ' | '\t' | '=' | ','))
        {
            i += 1;
        }
        let word: String = chars.get(start..i).unwrap_or_default().iter().collect();
        if word.is_empty() {
            if let Some(c) = chars.get(i) {
                problem.get_or_insert_with(|| format!("unexpected '{c}'"));
                i += 1;
            }
            continue;
        }
        let mut after = i;
        skip(&mut after, &[' ', '\t']);
        if chars.get(after) == Some(&'=') {
            // A parameter, unless `=` is the padding of a token68.
            let mut v = after + 1;
            while chars.get(v) == Some(&'=') {
                v += 1;
            }
            if v > after + 1 {
                i = v;
                continue;
            }
            skip(&mut v, &[' ', '\t']);
            let (text, next, unterminated) = read_value(&chars, v);
            if unterminated {
                problem.get_or_insert_with(|| {
                    format!("unterminated quoted value of parameter {word}")
                });
            }
            i = next;
            match challenges.last_mut() {
                Some(challenge) => add_param(challenge, word.to_ascii_lowercase(), text),
                None => {
                    problem
                        .get_or_insert_with(|| format!("parameter {word} comes before any scheme"));
                }
            }
        } else {
            challenges.push(Challenge {
                scheme: word,
                realm: None,
                service: None,
                scope: Vec::new(),
                error: None,
                params: Vec::new(),
            });
        }
    }
    if challenges.is_empty() && problem.is_none() {
        problem = Some("no challenge in WWW-Authenticate".to_owned());
    }
    (challenges, problem)
}

/// A token or a quoted string starting at `at`: (value, next index, unterminated).
fn read_value(chars: &[char], at: usize) -> (String, usize, bool) {
    let mut i = at;
    let mut out = String::new();
    if chars.get(i) == Some(&'"') {
        i += 1;
        while let Some(&c) = chars.get(i) {
            match c {
                '"' => return (out, i + 1, false),
                '\\' => {
                    if let Some(&escaped) = chars.get(i + 1) {
                        out.push(escaped);
                    }
                    i += 2;
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        (out, i, true)
    } else {
        while let Some(&c) = chars.get(i) {
            if matches!(c, ',' | ' ' | '\t') {
                break;
            }
            out.push(c);
            i += 1;
        }
        (out, i, false)
    }
}

fn add_param(challenge: &mut Challenge, name: String, value: String) {
    match name.as_str() {
        "realm" => challenge.realm = Some(value.clone()),
        "service" => challenge.service = Some(value.clone()),
        "scope" => challenge.scope.extend(
            value
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        ),
        "error" => challenge.error = Some(value.clone()),
        _ => {}
    }
    challenge.params.push((name, value));
}

/// Credentials of an `Authorization` header, reduced to what may be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Bearer(String),
    /// The user name; the password is never kept, only the non-secret
    /// expiry an ECR password carries (Unix seconds).
    Basic {
        user: String,
        ecr_expiration: Option<i64>,
    },
    BadBasic(BasicError),
    Other(String),
}

/// Why `Authorization: Basic …` does not hold a user and password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BasicError {
    #[error("credentials are not base64: {0}")]
    NotBase64(#[from] base64::DecodeError),
    #[error("credentials are not UTF-8")]
    NotUtf8,
    #[error("credentials have no ':' between user and password")]
    NoColon,
}

/// Why a token endpoint's answer cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenResponseError {
    #[error("token answer is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("token answer is not a JSON object")]
    NotObject,
}

pub fn parse_authorization(value: &str) -> Credentials {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Credentials::Bearer(rest.to_owned())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(BasicError::NotBase64)
            .and_then(|bytes| String::from_utf8(bytes).map_err(|_| BasicError::NotUtf8));
        match decoded {
            Ok(text) => match text.split_once(':') {
                Some((user, password)) => Credentials::Basic {
                    user: user.to_owned(),
                    ecr_expiration: (user == "AWS").then(|| ecr_expiration(password)).flatten(),
                },
                None => Credentials::BadBasic(BasicError::NoColon),
            },
            Err(reason) => Credentials::BadBasic(reason),
        }
    } else {
        Credentials::Other(scheme.to_owned())
    }
}

/// An ECR password is base64 of `{"payload","datakey","version","type","expiration"}`:
/// the expiry is not secret.
fn ecr_expiration(password: &str) -> Option<i64> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(password.trim())
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("expiration")?.as_i64()
}

/// The useful fields of a token endpoint's JSON answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenResponse {
    pub token: Option<String>,
    /// `token` and `access_token` were both sent and differ.
    pub conflicting: bool,
    pub expires_in: Option<u64>,
    pub issued_at: Option<String>,
    pub refresh_token: Option<String>,
}

pub fn parse_token_response(body: &[u8]) -> Result<TokenResponse, TokenResponseError> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    let map = value.as_object().ok_or(TokenResponseError::NotObject)?;
    let text = |k: &str| map.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let token = text("token");
    let access_token = text("access_token");
    let conflicting = matches!((&token, &access_token), (Some(a), Some(b)) if a != b);
    Ok(TokenResponse {
        token: token.or(access_token),
        conflicting,
        expires_in: map.get("expires_in").and_then(serde_json::Value::as_u64),
        issued_at: text("issued_at"),
        refresh_token: text("refresh_token"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_quoted_commas_in_scope() {
        let (challenges, problem) = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:jockerdragon/test:pull,push",error="insufficient_scope""#,
        );
        assert_eq!(problem, None);
        assert_eq!(challenges.len(), 1);
        let c = &challenges[0];
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.realm.as_deref(), Some("https://auth.docker.io/token"));
        assert_eq!(c.service.as_deref(), Some("registry.docker.io"));
        assert_eq!(c.scope, vec!["repository:jockerdragon/test:pull,push"]);
        assert_eq!(c.error.as_deref(), Some("insufficient_scope"));
    }

    #[test]
    fn several_challenges_and_basic() {
        let (challenges, problem) = parse_challenges(
            r#"Basic realm="registry-lab-basic", Bearer realm="https://a/t", service=reg"#,
        );
        assert_eq!(problem, None);
        assert_eq!(challenges.len(), 2);
        assert_eq!(challenges[0].scheme, "Basic");
        assert_eq!(challenges[0].realm.as_deref(), Some("registry-lab-basic"));
        assert_eq!(challenges[1].service.as_deref(), Some("reg"));
    }

    #[test]
    fn escapes_and_malformed_values() {
        let (c, _) = parse_challenges(r#"Basic realm="say \"hi\", ok""#);
        assert_eq!(c[0].realm.as_deref(), Some(r#"say "hi", ok"#));
        let (c, problem) = parse_challenges(r#"Bearer realm="https://a/t"#);
        assert_eq!(c[0].realm.as_deref(), Some("https://a/t"));
        assert!(problem.unwrap().contains("unterminated"));
        let (c, problem) = parse_challenges(r#"realm="x""#);
        assert!(c.is_empty());
        assert!(problem.is_some());
        assert!(parse_challenges("").1.is_some());
    }

    #[test]
    fn basic_credentials_keep_only_the_user() {
        // "alice:s3cret"
        assert_eq!(
            parse_authorization("Basic YWxpY2U6czNjcmV0"),
            Credentials::Basic {
                user: "alice".into(),
                ecr_expiration: None
            }
        );
        // AWS:base64({"payload":"secret","expiration":1700000000})
        let password = base64::engine::general_purpose::STANDARD
            .encode(r#"{"payload":"secret","datakey":"k","version":"2","type":"DATA_KEY","expiration":1700000000}"#);
        let value = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
        assert_eq!(
            parse_authorization(&format!("Basic {value}")),
            Credentials::Basic {
                user: "AWS".into(),
                ecr_expiration: Some(1_700_000_000)
            }
        );
        assert!(matches!(
            parse_authorization("Basic !!!"),
            Credentials::BadBasic(BasicError::NotBase64(_))
        ));
        assert_eq!(
            parse_authorization("Basic /w=="),
            Credentials::BadBasic(BasicError::NotUtf8)
        );
        assert_eq!(
            parse_authorization("Basic YWxpY2U="),
            Credentials::BadBasic(BasicError::NoColon)
        );
        assert_eq!(
            BasicError::NoColon.to_string(),
            "credentials have no ':' between user and password"
        );
        assert_eq!(
            parse_authorization("Bearer abc"),
            Credentials::Bearer("abc".into())
        );
    }

    #[test]
    fn token_answers() {
        let r = parse_token_response(br#"{"token":"a","access_token":"a","expires_in":300,"issued_at":"2024-07-22T17:06:42Z"}"#).unwrap();
        assert_eq!(r.token.as_deref(), Some("a"));
        assert!(!r.conflicting);
        assert_eq!(r.expires_in, Some(300));
        let r = parse_token_response(br#"{"token":"a","access_token":"b"}"#).unwrap();
        assert!(r.conflicting);
        assert!(matches!(
            parse_token_response(b"[1]"),
            Err(TokenResponseError::NotObject)
        ));
        assert!(
            parse_token_response(b"{")
                .unwrap_err()
                .to_string()
                .starts_with("token answer is not JSON: ")
        );
    }
}
