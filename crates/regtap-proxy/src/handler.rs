//! The hudsucker handler: turns each proxied exchange into a [`FlowRecorder`]
//! and its bodies into [`RecordingBody`]s. It forwards everything unchanged.

use std::sync::Arc;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, Version};
use hudsucker::hyper::{Request, Response};
use hudsucker::{Body, HttpContext, HttpHandler, RequestOrResponse};
use hyper_util::client::legacy::connect::HttpInfo;
use regtap_capture::{Direction, ErrorStage, FlowError, Headers};

use crate::body::RecordingBody;
use crate::error_chain;
use crate::recorder::{FlowRecorder, RequestHead, Shared};
use crate::upstream::ResolveMap;

/// hudsucker clones the handler of a connection for every request on it, and
/// the CONNECT request's handler for every request inside that tunnel; so the
/// tunnel's authority set here is seen by the requests that follow.
#[derive(Clone)]
pub(crate) struct RecordingHandler {
    shared: Arc<Shared>,
    resolve: Arc<ResolveMap>,
    connect_authority: Option<String>,
    /// The exchange of the request this clone is handling.
    flow: Option<Arc<FlowRecorder>>,
    /// `host:port` the request is for, for error messages.
    upstream: String,
}

impl RecordingHandler {
    pub(crate) fn new(shared: Arc<Shared>, resolve: Arc<ResolveMap>) -> Self {
        RecordingHandler {
            shared,
            resolve,
            connect_authority: None,
            flow: None,
            upstream: String::new(),
        }
    }
}

impl HttpHandler for RecordingHandler {
    async fn handle_request(&mut self, ctx: &HttpContext, req: Request<Body>) -> RequestOrResponse {
        if req.method() == Method::CONNECT {
            self.connect_authority = req.uri().authority().map(ToString::to_string);
            return req.into();
        }
        let (parts, body) = req.into_parts();
        self.upstream = parts
            .uri
            .authority()
            .map(ToString::to_string)
            .unwrap_or_default();
        let head = RequestHead {
            client_addr: Some(ctx.client_addr.to_string()),
            connect_authority: self.connect_authority.clone(),
            server_addr: self.resolve.lookup(&parts.uri).map(|a| a.to_string()),
            scheme: parts.uri.scheme_str().unwrap_or("http").to_owned(),
            request: regtap_capture::Request {
                method: parts.method.to_string(),
                url: canonical_url(&parts.uri),
                http_version: version_name(parts.version),
                headers: headers(&parts.headers),
                body: regtap_capture::Body::default(),
            },
        };
        let recorder = FlowRecorder::start(&self.shared, head);
        self.flow = Some(Arc::clone(&recorder));
        let total = content_length(&parts.headers);
        let body = RecordingBody::wrap(body, recorder, Direction::Request, total);
        Request::from_parts(parts, body).into()
    }

    async fn handle_response(&mut self, _ctx: &HttpContext, res: Response<Body>) -> Response<Body> {
        let Some(recorder) = self.flow.take() else {
            return res;
        };
        let (parts, body) = res.into_parts();
        let server_addr = parts
            .extensions
            .get::<HttpInfo>()
            .map(|info| info.remote_addr().to_string());
        recorder.response_head(
            regtap_capture::Response {
                status: parts.status.as_u16(),
                http_version: version_name(parts.version),
                headers: headers(&parts.headers),
                body: regtap_capture::Body::default(),
            },
            server_addr,
        );
        let total = content_length(&parts.headers);
        let body = RecordingBody::wrap(body, recorder, Direction::Response, total);
        Response::from_parts(parts, body)
    }

    async fn handle_error(
        &mut self,
        _ctx: &HttpContext,
        err: hyper_util::client::legacy::Error,
    ) -> Response<Body> {
        let (stage, message) = if err.is_connect() {
            let reason = std::error::Error::source(&err)
                .map(error_chain)
                .unwrap_or_else(|| err.to_string());
            (
                ErrorStage::Connect,
                format!("cannot connect to {}: {reason}", self.upstream),
            )
        } else {
            (
                ErrorStage::Response,
                format!("upstream {} failed: {}", self.upstream, error_chain(&err)),
            )
        };
        if let Some(recorder) = self.flow.take() {
            recorder.upstream_failed(FlowError {
                stage,
                message: message.clone(),
            });
        }
        let mut res = Response::new(Body::from(format!("regtap: {message}\n")));
        *res.status_mut() = StatusCode::BAD_GATEWAY;
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        res
    }
}

fn headers(map: &HeaderMap) -> Headers {
    map.iter()
        .map(|(name, value)| {
            (
                name.as_str(),
                regtap_capture::Data::from_bytes(value.as_bytes()),
            )
        })
        .collect()
}

/// The URL without a port that is its scheme's default: requests inside a
/// tunnel carry the CONNECT authority (`registry.test:443`), while the client
/// asked for `https://registry.test/…`.
fn canonical_url(uri: &Uri) -> String {
    let default_port = match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    };
    match (uri.port_u16(), uri.host()) {
        (Some(port), Some(host)) if Some(port) == default_port => {
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            format!("{}://{host}{path}", uri.scheme_str().unwrap_or("https"))
        }
        _ => uri.to_string(),
    }
}

fn content_length(map: &HeaderMap) -> Option<u64> {
    map.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

fn version_name(version: Version) -> String {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/?",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_url_drops_only_default_ports() {
        let url = |s: &str| canonical_url(&s.parse().unwrap());
        assert_eq!(url("https://r.test:443/v2/?n=1"), "https://r.test/v2/?n=1");
        assert_eq!(url("http://r.test:80/v2/"), "http://r.test/v2/");
        assert_eq!(url("https://r.test:5000/v2/"), "https://r.test:5000/v2/");
        assert_eq!(url("http://r.test:443/"), "http://r.test:443/");
        assert_eq!(url("https://[::1]:443/v2/"), "https://[::1]/v2/");
        assert_eq!(url("https://r.test/v2/"), "https://r.test/v2/");
    }
}
