//! One proxied exchange: records the request, forwards it upstream unchanged
//! (apart from hop-by-hop normalisation), records the response, and turns an
//! upstream failure or timeout into a 502/504 with the reason, recorded as the
//! flow's error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CONTENT_LENGTH, COOKIE, HOST};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, Version};
use hudsucker::Body;
use hudsucker::hyper::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpInfo;
use regtap_capture::{Direction, ErrorStage, FlowError, Headers};

use crate::body::RecordingBody;
use crate::recorder::{FlowRecorder, RequestHead, Shared};
use crate::reverse::UrlRewriter;
use crate::upstream::{ChainedProxyError, ConnectTimedOut, Routes, UpstreamConnector};
use crate::{error_chain, text_response};

/// What a reverse-mode exchange carries into the forwarder.
pub(crate) struct ReverseContext {
    pub exchange: regtap_capture::ReverseExchange,
    /// `Some` with `--rewrite-urls`.
    pub rewriter: Option<Arc<UrlRewriter>>,
}

pub(crate) struct Forwarder {
    pub shared: Arc<Shared>,
    pub routes: Arc<Routes>,
    pub client: Client<UpstreamConnector, Body>,
    /// How long the upstream may take to answer once the request is sent.
    pub response_timeout: Duration,
    /// How long a body may stall.
    pub body_timeout: Duration,
    /// Forward even when the start record could not be written.
    pub keep_forwarding: bool,
}

impl Forwarder {
    /// Records and forwards one request with an absolute URI (in reverse
    /// mode: the upstream's URI, with what differs for the client in `reverse`).
    pub(crate) async fn forward(
        &self,
        req: Request<Incoming>,
        client_addr: SocketAddr,
        connect_authority: Option<String>,
        reverse: Option<ReverseContext>,
    ) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let upstream = parts
            .uri
            .authority()
            .map(ToString::to_string)
            .unwrap_or_default();
        let head = RequestHead {
            client_addr: Some(client_addr.to_string()),
            connect_authority,
            server_addr: self.routes.server_addr(&parts.uri).map(|a| a.to_string()),
            upstream_proxy: self.routes.via(&parts.uri),
            scheme: parts.uri.scheme_str().unwrap_or("http").to_owned(),
            request: regtap_capture::Request {
                method: parts.method.to_string(),
                url: canonical_url(&parts.uri),
                http_version: version_name(parts.version),
                headers: headers(&parts.headers),
                body: regtap_capture::Body::pending(),
            },
            reverse: reverse.as_ref().map(|r| r.exchange.clone()),
        };
        let rewriter = reverse.and_then(|r| r.rewriter);
        let (recorder, start_recorded) = FlowRecorder::start(&self.shared, head);
        // Nothing goes upstream before the capture holds the start of the exchange.
        if !start_recorded.await.unwrap_or(false) && !self.keep_forwarding {
            let message = "not forwarded: the capture cannot be written, and regtap does not \
                           forward traffic it cannot record (--keep-forwarding-unrecorded to \
                           forward anyway)";
            recorder.upstream_failed(FlowError {
                stage: ErrorStage::Request,
                message: message.to_owned(),
            });
            return text_response(StatusCode::SERVICE_UNAVAILABLE, message);
        }
        let total = content_length(&parts.headers);
        let body = RecordingBody::wrap(
            Body::from(body),
            Arc::clone(&recorder),
            Direction::Request,
            total,
            self.body_timeout,
        );
        let mut request = normalize_request(Request::from_parts(parts, body));
        self.routes.prepare(&mut request);
        let response_deadline = async {
            recorder.request_sent().await;
            tokio::time::sleep(self.response_timeout).await;
        };
        tokio::select! {
            result = self.client.request(request) => match result {
                Ok(res) => self.response(recorder, res.map(Body::from), rewriter.as_deref()),
                Err(err) => upstream_failed(&recorder, &upstream, &err),
            },
            () = response_deadline => {
                let message = format!(
                    "upstream {upstream} sent no response head within {}s of the request (--response-timeout)",
                    self.response_timeout.as_secs_f32()
                );
                recorder.upstream_failed(FlowError {
                    stage: ErrorStage::ResponseTimeout,
                    message: message.clone(),
                });
                text_response(StatusCode::GATEWAY_TIMEOUT, &format!("regtap: {message}"))
            }
        }
    }

    /// Records the response head as the upstream sent it, then (reverse mode
    /// with `--rewrite-urls`) rewrites what the client gets and records that.
    fn response(
        &self,
        recorder: Arc<FlowRecorder>,
        res: Response<Body>,
        rewriter: Option<&UrlRewriter>,
    ) -> Response<Body> {
        let (mut parts, body) = res.into_parts();
        let server_addr = parts
            .extensions
            .get::<HttpInfo>()
            .map(|info| info.remote_addr().to_string());
        recorder.response_head(
            regtap_capture::Response {
                status: parts.status.as_u16(),
                http_version: version_name(parts.version),
                headers: headers(&parts.headers),
                body: regtap_capture::Body::pending(),
            },
            server_addr,
        );
        if let Some(rewriter) = rewriter {
            recorder.response_rewrites(rewriter.rewrite_response(&mut parts.headers));
        }
        let total = content_length(&parts.headers);
        let body = RecordingBody::wrap(
            body,
            recorder,
            Direction::Response,
            total,
            self.body_timeout,
        );
        Response::from_parts(parts, body)
    }
}

fn upstream_failed(
    recorder: &FlowRecorder,
    upstream: &str,
    err: &hyper_util::client::legacy::Error,
) -> Response<Body> {
    let (stage, message) = if let Some(chain) = crate::server::find_cause::<ChainedProxyError>(err)
    {
        (
            ErrorStage::UpstreamProxy,
            format!("cannot connect to {upstream}: {chain}"),
        )
    } else if let Some(timeout) = crate::server::find_cause::<ConnectTimedOut>(err) {
        (
            ErrorStage::ConnectTimeout,
            format!("cannot connect to {upstream}: {timeout}"),
        )
    } else if err.is_connect() {
        let reason = std::error::Error::source(err)
            .map(error_chain)
            .unwrap_or_else(|| err.to_string());
        (
            ErrorStage::Connect,
            format!("cannot connect to {upstream}: {reason}"),
        )
    } else {
        (
            ErrorStage::Response,
            format!("upstream {upstream} failed: {}", error_chain(err)),
        )
    };
    recorder.upstream_failed(FlowError {
        stage,
        message: message.clone(),
    });
    text_response(StatusCode::BAD_GATEWAY, &format!("regtap: {message}"))
}

/// What hudsucker did before forwarding: the client sets `Host` from the URI,
/// cookies go in one header (HTTP/2 clients split them), and upstream
/// connections speak HTTP/1.1.
fn normalize_request(mut req: Request<Body>) -> Request<Body> {
    req.headers_mut().remove(HOST);
    let cookies: Vec<&[u8]> = req
        .headers()
        .get_all(COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if cookies.len() > 1
        && let Ok(joined) = HeaderValue::from_bytes(&cookies.join(&b"; "[..]))
    {
        req.headers_mut().insert(COOKIE, joined);
    }
    *req.version_mut() = Version::HTTP_11;
    req
}

pub(crate) fn headers(map: &HeaderMap) -> Headers {
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
pub(crate) fn canonical_url(uri: &Uri) -> String {
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

pub(crate) fn version_name(version: Version) -> String {
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
