#![no_main]
//! Bodies a registry sends: manifests (each media type), error bodies,
//! token responses, each as the decoder meets them in a response.

use libfuzzer_sys::fuzz_target;
use regtap_fuzz::{decode, response_flow};

const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/json",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let media_type = MANIFEST_TYPES[usize::from(selector) % MANIFEST_TYPES.len()];
    let gzip = selector & 0x80 != 0;
    let encoding: &[(&str, &str)] = if gzip {
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ]
    } else {
        &[("Content-Type", "application/json")]
    };
    let flows = [
        response_flow(
            1,
            "GET",
            "https://registry.test/v2/lab/app/manifests/latest",
            200,
            &[("Content-Type", media_type)],
            body,
        ),
        response_flow(
            2,
            "PUT",
            "https://registry.test/v2/lab/app/manifests/v1",
            400,
            encoding,
            body,
        ),
        response_flow(
            3,
            "GET",
            "https://auth.test/token?service=registry.test&scope=repository:lab/app:pull",
            200,
            encoding,
            body,
        ),
    ];
    decode(&flows);
});
