#![no_main]
//! The whole decoder on arbitrary flows: registry-shaped URLs, headers and
//! bodies in any order, with or without responses and errors.

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use regtap_capture::factory::FlowBuilder;
use regtap_capture::{ErrorStage, Flow, FlowError};

const HOSTS: &[&str] = &[
    "https://registry.test:5000",
    "https://auth.test",
    "http://s3.test",
];
const PATHS: &[&str] = &[
    "/v2/",
    "/v2/lab/app/blobs/uploads/",
    "/v2/lab/app/blobs/uploads/0b5c1d3e-1111-4e6b-9d0a-3a56f5c9559f",
    "/v2/lab/app/blobs/sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "/v2/lab/app/manifests/latest",
    "/v2/lab/app/tags/list",
    "/v2/_catalog",
    "/token",
    "/",
];
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"];
const HEADERS: &[&str] = &[
    "Authorization",
    "WWW-Authenticate",
    "Content-Type",
    "Content-Length",
    "Content-Range",
    "Content-Encoding",
    "Range",
    "Location",
    "Docker-Content-Digest",
    "Docker-Upload-UUID",
    "Docker-Distribution-API-Version",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "Link",
    "Set-Cookie",
    "Cookie",
    "X-Registry-Auth",
];

#[derive(Arbitrary, Debug)]
struct FuzzFlow {
    method: u8,
    host: u8,
    path: u8,
    suffix: String,
    request_headers: Vec<(u8, String)>,
    request_body: Vec<u8>,
    response: Option<FuzzResponse>,
    error: Option<(u8, String)>,
}

#[derive(Arbitrary, Debug)]
struct FuzzResponse {
    status: u16,
    headers: Vec<(u8, String)>,
    body: Vec<u8>,
}

fn pick<'a>(list: &[&'a str], index: u8) -> &'a str {
    list[usize::from(index) % list.len()]
}

fn build(id: u64, flow: &FuzzFlow) -> Flow {
    let url = format!(
        "{}{}{}",
        pick(HOSTS, flow.host),
        pick(PATHS, flow.path),
        flow.suffix
    );
    let mut builder = FlowBuilder::new(id, pick(METHODS, flow.method), &url);
    for (name, value) in &flow.request_headers {
        builder = builder.request_header(pick(HEADERS, *name), value);
    }
    builder = builder.request_body(&flow.request_body);
    if let Some(response) = &flow.response {
        builder = builder.status(response.status);
        for (name, value) in &response.headers {
            builder = builder.response_header(pick(HEADERS, *name), value);
        }
        builder = builder.response_body(&response.body);
    }
    if let Some((stage, message)) = &flow.error {
        let stage = match stage % 3 {
            0 => ErrorStage::Connect,
            1 => ErrorStage::Request,
            _ => ErrorStage::Response,
        };
        builder = builder.error(FlowError {
            stage,
            message: message.clone(),
        });
    }
    builder.build()
}

fuzz_target!(|input: Vec<FuzzFlow>| {
    let flows: Vec<Flow> = input
        .iter()
        .take(32)
        .enumerate()
        .map(|(i, flow)| build(i as u64 + 1, flow))
        .collect();
    regtap_fuzz::run_pipeline(&flows);
});
