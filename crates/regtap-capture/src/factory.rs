//! Builders for flows, for tests and for importers that assemble flows from
//! other formats.

use crate::model::{
    Body, Data, Ending, Flow, FlowError, Headers, Kept, Request, Response, Timing,
    TruncationReason, UnixNanos,
};

/// Builds a [`Flow`]: `FlowBuilder::new(1, "GET", "https://r.test/v2/").status(401).build()`.
#[derive(Debug, Clone)]
pub struct FlowBuilder {
    flow: Flow,
}

impl FlowBuilder {
    /// A request with no headers and an empty body, starting at `id` milliseconds
    /// past a fixed epoch so that ids and times agree in tests.
    pub fn new(id: u64, method: &str, url: &str) -> Self {
        let start: UnixNanos = 1_700_000_000_000_000_000 + (id as i64) * 1_000_000;
        let scheme = url.split("://").next().unwrap_or("https").to_owned();
        FlowBuilder {
            flow: Flow {
                id,
                client_addr: None,
                connect_authority: None,
                server_addr: None,
                upstream_proxy: None,
                scheme,
                request: Request {
                    method: method.to_owned(),
                    url: url.to_owned(),
                    http_version: "HTTP/1.1".to_owned(),
                    headers: Headers::new(),
                    body: Body::from_bytes(b""),
                },
                response: None,
                timing: Timing {
                    request_start: start,
                    request_end: Some(start + 100_000),
                    response_head: None,
                    response_end: None,
                },
                error: None,
                reverse: None,
            },
        }
    }

    pub fn request_header(mut self, name: &str, value: &str) -> Self {
        self.flow.request.headers.push(name, value);
        self
    }

    /// The client connection the request came on, and its `User-Agent`.
    pub fn client(mut self, addr: &str, user_agent: &str) -> Self {
        self.flow.client_addr = Some(addr.to_owned());
        self.request_header("User-Agent", user_agent)
    }

    pub fn request_body(mut self, bytes: &[u8]) -> Self {
        self.flow.request.body = Body::from_bytes(bytes);
        self
    }

    /// A request body of which only the size and hash are known (a streamed blob).
    pub fn request_body_summary(mut self, size: u64, sha256_hex: &str) -> Self {
        self.flow.request.body = summary_body(size, sha256_hex);
        self
    }

    /// Adds a response with `status`, no headers and an empty body.
    pub fn status(mut self, status: u16) -> Self {
        let start = self.flow.timing.request_start;
        self.flow.timing.response_head = Some(start + 500_000);
        self.flow.timing.response_end = Some(start + 600_000);
        self.flow.response = Some(Response {
            status,
            http_version: "HTTP/1.1".to_owned(),
            headers: Headers::new(),
            body: Body::from_bytes(b""),
        });
        self
    }

    /// Adds a response header; call after [`FlowBuilder::status`].
    pub fn response_header(mut self, name: &str, value: &str) -> Self {
        if let Some(response) = self.flow.response.as_mut() {
            response.headers.push(name, value);
        }
        self
    }

    /// Sets the response body; call after [`FlowBuilder::status`].
    pub fn response_body(mut self, bytes: &[u8]) -> Self {
        if let Some(response) = self.flow.response.as_mut() {
            response.body = Body::from_bytes(bytes);
        }
        self
    }

    /// A response body of which only the size and hash are known.
    pub fn response_body_summary(mut self, size: u64, sha256_hex: &str) -> Self {
        if let Some(response) = self.flow.response.as_mut() {
            response.body = summary_body(size, sha256_hex);
        }
        self
    }

    pub fn error(mut self, error: FlowError) -> Self {
        self.flow.error = Some(error);
        self
    }

    pub fn start_ns(mut self, start: UnixNanos) -> Self {
        let shift = start - self.flow.timing.request_start;
        let t = &mut self.flow.timing;
        t.request_start = start;
        for instant in [
            &mut t.request_end,
            &mut t.response_head,
            &mut t.response_end,
        ]
        .into_iter()
        .flatten()
        {
            *instant += shift;
        }
        self
    }

    pub fn build(self) -> Flow {
        self.flow
    }
}

fn summary_body(size: u64, sha256_hex: &str) -> Body {
    Body {
        size,
        sha256: Some(sha256_hex.to_owned()),
        kept: if size > 0 {
            Kept::Prefix {
                data: None,
                reason: TruncationReason::SizeLimit,
            }
        } else {
            Kept::Inline(Data::Text(String::new()))
        },
        elsewhere: None,
        ended: Ending::Complete,
    }
}
