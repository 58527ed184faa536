//! Looking things up in a capture: flows by host, method and path, their
//! query parameters, tokens and upload state.

use regtap_capture::{Capture, Flow};
use regtap_lab::verify::{UploadState, UrlParts, decode_state, jwt_parts};

pub struct Exchange<'a> {
    pub flow: &'a Flow,
    pub url: UrlParts,
}

impl Exchange<'_> {
    pub fn method(&self) -> &str {
        &self.flow.request.method
    }

    pub fn status(&self) -> u16 {
        self.flow.status().unwrap_or(0)
    }

    pub fn request_header(&self, name: &str) -> Option<&str> {
        self.flow.request.headers.get(name)
    }

    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.flow.response.as_ref()?.headers.get(name)
    }

    pub fn response_text(&self) -> String {
        self.flow
            .response
            .as_ref()
            .and_then(|r| r.body.full_bytes())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn response_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.response_text()).unwrap_or(serde_json::Value::Null)
    }

    /// "GET registry.test:1234/v2/ 401", for messages.
    pub fn line(&self) -> String {
        format!(
            "{} {}{} {}",
            self.method(),
            self.url.authority,
            self.url.path,
            self.status()
        )
    }

    /// `_state` of the request URL, checked against the registry's http.secret.
    pub fn request_state(&self) -> Option<Result<UploadState, String>> {
        self.url
            .param("_state")
            .map(|v| decode_state(v, regtap_lab::HTTP_SECRET.as_bytes()))
    }

    /// `_state` of the response `Location`, checked against the registry's http.secret.
    pub fn location_state(&self) -> Option<Result<UploadState, String>> {
        let location = self.response_header("Location")?;
        let absolute = if location.starts_with('/') {
            format!("https://{}{location}", self.url.authority)
        } else {
            location.to_owned()
        };
        UrlParts::parse(&absolute)?
            .param("_state")
            .map(|v| decode_state(v, regtap_lab::HTTP_SECRET.as_bytes()))
    }
}

pub struct Flows<'a> {
    pub all: Vec<Exchange<'a>>,
}

impl<'a> Flows<'a> {
    pub fn of(capture: &'a Capture) -> Self {
        let mut all: Vec<Exchange<'a>> = capture
            .flows
            .iter()
            .map(|flow| Exchange {
                flow,
                url: UrlParts::parse(&flow.request.url).unwrap_or_else(|| {
                    panic!("flow {} has no absolute URL: {}", flow.id, flow.request.url)
                }),
            })
            .collect();
        all.sort_by_key(|e| (e.flow.timing.request_start, e.flow.id));
        Flows { all }
    }

    /// Flows to `authority` with `method` whose path satisfies `path`.
    pub fn matching(
        &self,
        authority: &str,
        method: &str,
        path: impl Fn(&str) -> bool,
    ) -> Vec<&Exchange<'a>> {
        self.all
            .iter()
            .filter(|e| e.url.authority == authority && e.method() == method && path(&e.url.path))
            .collect()
    }

    pub fn to_host(&self, authority: &str) -> Vec<&Exchange<'a>> {
        self.all
            .iter()
            .filter(|e| e.url.authority == authority)
            .collect()
    }

    /// Every exchange as one line, for failure messages.
    pub fn listing(&self) -> String {
        self.all
            .iter()
            .map(|e| format!("  #{} {}", e.flow.id, e.line()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A token endpoint answer: the JWT and its header and claims.
pub struct Token {
    pub jwt: String,
    pub header: serde_json::Value,
    pub claims: serde_json::Value,
}

impl Token {
    pub fn of(exchange: &Exchange<'_>) -> Token {
        let body = exchange.response_json();
        let jwt = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .unwrap_or_else(|| panic!("no token in {}: {body}", exchange.line()))
            .to_owned();
        let (header, claims) =
            jwt_parts(&jwt).unwrap_or_else(|e| panic!("{}: {e}", exchange.line()));
        Token {
            jwt,
            header,
            claims,
        }
    }

    /// `type:name:actions` of every grant, actions sorted.
    pub fn grants(&self) -> Vec<String> {
        let mut grants: Vec<String> = self.claims["access"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|a| {
                let mut actions: Vec<&str> = a["actions"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect();
                actions.sort_unstable();
                format!(
                    "{}:{}:{}",
                    a["type"].as_str().unwrap_or(""),
                    a["name"].as_str().unwrap_or(""),
                    actions.join(",")
                )
            })
            .collect();
        grants.sort();
        grants
    }
}
