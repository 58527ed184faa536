//! Importing HAR files written by other tools (see tests/fixtures/README.md).

use std::path::PathBuf;

use regtap_capture::{Ending, Flow, Kept, TruncationReason, sha256_hex};
use regtap_har::{ImportError, import, looks_like_har};

fn fixture(path: &str) -> Vec<u8> {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    url.split_once('?')?
        .1
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn response_header<'a>(flow: &'a Flow, name: &str) -> Option<&'a str> {
    flow.response.as_ref()?.headers.get(name)
}

#[test]
fn mitmproxy_hardump_becomes_flows_with_exact_body_bytes() {
    let bytes = fixture("mitmproxy/docker-push.har");
    assert!(looks_like_har(&bytes));
    let imported = import(&bytes).expect("mitmproxy HAR imports");
    assert_eq!(imported.creator.as_deref(), Some("mitmproxy 11.0.2"));
    let flows = &imported.flows;
    let summary: Vec<String> = flows
        .iter()
        .map(|f| format!("{} {} {}", f.id, f.method(), f.status().unwrap_or(0)))
        .collect();
    assert_eq!(
        summary,
        [
            "1 GET 401",
            "2 GET 200",
            "3 GET 200",
            "4 HEAD 404",
            "5 POST 202",
            "6 PATCH 202",
            "7 PUT 201",
            "8 HEAD 404",
            "9 POST 202",
            "10 PATCH 202",
            "11 PUT 201",
            "12 HEAD 404",
            "13 POST 202",
            "14 PATCH 202",
            "15 PUT 201",
            "16 PUT 201",
            "17 GET 200",
            "18 GET 200",
        ]
    );

    // Binary PATCH bodies were written as latin-1 text: decoded back, their
    // hash is the digest the client then committed with PUT ?digest=.
    for (patch, put) in [(9, 10), (13, 14)] {
        let body = &flows[patch].request.body;
        let digest = query_param(flows[put].url(), "digest").expect("PUT has ?digest=");
        assert_eq!(
            format!("sha256%3A{}", body.sha256.as_deref().unwrap()),
            digest,
            "flow {}",
            flows[patch].id
        );
        assert!(body.full_bytes().is_some());
    }
    assert_eq!(flows[9].request.body.size, 3076);

    // The streamed PATCH: mitmproxy kept nothing, and the import says so.
    let streamed = &flows[5].request.body;
    assert!(streamed.full_bytes().is_none());
    // Neither bytes nor hash: no digest check may treat it as an empty body,
    // and nothing says it was cut off.
    assert_eq!(streamed.kept, Kept::Unknown);
    assert_eq!(streamed.ended, Ending::Unknown);
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| w.starts_with("HAR entry 6:") && w.contains("not in the HAR")),
        "{:?}",
        imported.warnings
    );

    // The manifest PUT body is text, and its hash is the digest the registry computed.
    let manifest_put = &flows[15];
    assert_eq!(
        manifest_put.request.body.digest().as_deref(),
        response_header(manifest_put, "docker-content-digest")
    );

    // Response bodies: one base64-encoded, one written as latin-1 text.
    for blob_get in &flows[16..18] {
        let body = &blob_get.response.as_ref().unwrap().body;
        assert_eq!(
            body.digest().as_deref(),
            response_header(blob_get, "docker-content-digest"),
            "flow {}",
            blob_get.id
        );
    }

    // Token response JSON and the Basic credentials the client sent, as sent.
    let token = &flows[1];
    let body = token.response.as_ref().unwrap().body.full_bytes().unwrap();
    assert!(
        String::from_utf8(body)
            .unwrap()
            .starts_with("{\"token\": \"eyJ")
    );
    assert!(
        token
            .request
            .headers
            .get("authorization")
            .unwrap()
            .starts_with("Basic ")
    );

    // Times: `+00:00` offsets parsed, phases in order, the server's address known.
    for flow in flows {
        let t = &flow.timing;
        assert!(t.request_start > 1_700_000_000_000_000_000);
        assert!(t.request_end.unwrap() <= t.response_head.unwrap());
        assert!(t.response_head.unwrap() <= t.response_end.unwrap());
        assert_eq!(flow.server_addr.as_deref(), Some("127.0.0.1:18500"));
        assert_eq!(flow.scheme, "http");
    }
    assert!(
        flows
            .windows(2)
            .all(|w| w[0].timing.request_start <= w[1].timing.request_start)
    );
}

#[test]
fn chrome_devtools_har_becomes_flows() {
    let imported = import(&fixture("chrome/registry-ui.har")).expect("Chrome HAR imports");
    assert_eq!(imported.creator.as_deref(), Some("WebInspector 537.36"));
    let flows = &imported.flows;
    assert_eq!(flows.len(), 8);

    let first = &flows[0];
    assert_eq!(first.url(), "https://registry.test:5000/v2/");
    assert_eq!(first.request.http_version, "http/2.0");
    // Header order kept, pseudo-headers included.
    let names: Vec<&str> = first.request.headers.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(
        &names[..5],
        [":authority", ":method", ":path", ":scheme", "accept"]
    );
    // `[::1]` from Chrome, with the URL's port.
    assert_eq!(first.server_addr.as_deref(), Some("[::1]:5000"));
    // Chrome's connection ids are not addresses.
    assert_eq!(first.client_addr, None);
    // blocked + dns + connect come before the request: 1.317 + 0.021 + 3.805 ms.
    let t = &first.timing;
    assert_eq!(t.request_end.unwrap() - t.request_start, 189_000);
    assert_eq!(t.response_head.unwrap() - t.request_end.unwrap(), 4_412_000);

    // The redirect to storage and the base64 blob it served.
    assert_eq!(flows[4].status(), Some(307));
    assert!(
        response_header(&flows[4], "location")
            .unwrap()
            .starts_with("https://storage.test/")
    );
    let config = &flows[5].response.as_ref().unwrap().body;
    let bytes = config.full_bytes().expect("base64 content decoded");
    assert_eq!(Some(sha256_hex(&bytes)), config.sha256);
    assert!(flows[4].url().ends_with(config.sha256.as_deref().unwrap()));

    // A refused connection: no response, the browser's error kept.
    let refused = &flows[7];
    assert_eq!(refused.response, None);
    let error = refused.error.as_ref().expect("error kept");
    assert_eq!(error.message, "net::ERR_CONNECTION_REFUSED");
    assert_eq!(refused.server_addr, None);
}

#[test]
fn not_a_har_is_a_clear_error_not_a_panic() {
    assert!(matches!(
        import(b"{\"log\": ["),
        Err(ImportError::NotJson(_))
    ));
    assert_eq!(
        import(b"[1, 2]"),
        Err(ImportError::NotAHar(
            "no top-level \"log\" object".to_owned()
        ))
    );
    assert_eq!(
        import(br#"{"log": {"version": "1.2"}}"#),
        Err(ImportError::NotAHar(
            "\"log\" has no \"entries\" array".to_owned()
        ))
    );
    assert!(!looks_like_har(
        b"{\"format\":\"regtap-capture\",\"version\":\"1.0\"}\n"
    ));
    assert!(looks_like_har(b"\xEF\xBB\xBF  {\n  \"log\": {"));
}

#[test]
fn broken_entries_are_skipped_with_warnings_and_the_rest_kept() {
    let har = br#"{"log": {"entries": [
        "nonsense",
        {"request": {"method": "GET"}},
        {"startedDateTime": "yesterday", "request": {"method": "GET", "url": "https://r.test/v2/",
         "headers": [{"name": "Accept"}, {"value": "x"}, {"name": "X-N", "value": 5}],
         "postData": {"mimeType": "application/octet-stream", "text": "%%%", "encoding": "base64"}},
         "response": {"status": 200, "content": {"size": 4, "text": null}},
         "timings": {"send": null, "wait": "slow", "receive": -1}},
        {"startedDateTime": "2024-07-22T17:06:43.5Z", "request": {"method": "GET", "url": "https://r.test/v2/"},
         "response": {"status": 200, "content": {"size": 10, "text": "{}"}}}
    ]}}"#;
    let imported = import(har).expect("a HAR with broken entries still imports");
    assert_eq!(imported.flows.len(), 2);
    let warnings = imported.warnings.join("\n");
    assert!(
        warnings.contains("HAR entry 1 skipped: not a JSON object"),
        "{warnings}"
    );
    assert!(
        warnings.contains("HAR entry 2 skipped: the request has no URL"),
        "{warnings}"
    );
    assert!(
        warnings.contains("HAR entry 3: no valid startedDateTime"),
        "{warnings}"
    );
    assert!(
        warnings.contains("HAR entry 3: request body dropped"),
        "{warnings}"
    );

    let odd = &imported.flows[0];
    assert_eq!(odd.timing.request_start, 0);
    let headers: Vec<(&str, Option<&str>)> = odd
        .request
        .headers
        .iter()
        .map(|h| (h.0.as_str(), h.1.as_text()))
        .collect();
    assert_eq!(headers, [("Accept", Some("")), ("X-N", Some("5"))]);
    let response = odd.response.as_ref().unwrap();
    assert_eq!(response.body.size, 4);
    assert!(response.body.full_bytes().is_none());

    // Text shorter than the declared size: a prefix, not the body.
    let short = &imported.flows[1].response.as_ref().unwrap().body;
    assert_eq!(short.truncation(), Some(&TruncationReason::SizeLimit));
    assert_eq!(short.size, 10);
}

#[test]
fn absurd_values_do_not_panic() {
    let har = br#"{"log": {"entries": [
        {"startedDateTime": "9999-12-31T23:59:59.999999999Z",
         "request": {"method": "GET", "url": "https://r.test/v2/", "bodySize": -5,
                     "headers": "not a list", "postData": {"text": 7}},
         "response": {"status": 70000, "content": {"size": 1e300}},
         "timings": {"blocked": 1e300, "send": 1e300, "wait": 1e300, "receive": 1e300}},
        {"startedDateTime": "2262-04-11T23:47:16.854775807Z",
         "request": {"method": "PUT", "url": "r.test", "postData": {"text": "\u00ff\u0100"}},
         "response": {"status": 201, "content": {"size": -1, "text": "x", "encoding": "base64"}},
         "timings": {"send": 1e18, "wait": 1e18, "receive": 1e18}}
    ]}}"#;
    let imported = import(har).expect("imports");
    assert_eq!(imported.flows.len(), 2);
    // Status 70000 is no HTTP status: no response.
    assert!(imported.flows.iter().any(|f| f.response.is_none()));
    // Text that is neither latin-1 nor base64 stays as UTF-8 bytes.
    let put = imported
        .flows
        .iter()
        .find(|f| f.method() == "PUT")
        .expect("PUT");
    assert_eq!(
        put.request.body.full_bytes(),
        Some("\u{ff}\u{100}".as_bytes().to_vec())
    );
}

#[test]
fn mitmproxy_zhar_is_inflated() {
    use std::io::Write as _;
    let har = fixture("mitmproxy/docker-push.har");
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&har).expect("compress");
    let zhar = encoder.finish().expect("compress");
    assert!(looks_like_har(&zhar[..zhar.len().min(4096)]));
    let imported = import(&zhar).expect("a .zhar imports");
    assert_eq!(imported.flows, import(&har).expect("plain").flows);
    // A damaged stream is an error, not a panic.
    assert!(matches!(
        import(&zhar[..zhar.len() / 2]),
        Err(ImportError::NotJson(_))
    ));
}

/// HTTP Toolkit's export (see fixtures/httptoolkit/make_fixture.py for the
/// format's source): binary upload bodies in `_content`, lower-case headers,
/// local-offset times, a body over its size limit, an aborted exchange and
/// `_tlsErrors`.
#[test]
fn http_toolkit_har_becomes_flows_with_upload_bytes() {
    use regtap_decode::{DigestCheck, OperationStatus, Options, analyze};

    let bytes = fixture("httptoolkit/docker-push.har");
    assert!(looks_like_har(&bytes));
    let imported = import(&bytes).expect("HTTP Toolkit HAR imports");
    assert_eq!(imported.creator.as_deref(), Some("HTTP Toolkit 1.19.3"));
    let flows = &imported.flows;
    assert_eq!(flows.len(), 10);

    // `22:38:36.086+01:00` is 21:38:36.086 UTC.
    assert_eq!(flows[0].timing.request_start, 1_795_383_516_086_000_000);
    assert_eq!(
        flows[0]
            .request
            .headers
            .get("User-Agent")
            .map(|ua| &ua[..7]),
        Some("docker/")
    );

    // The layer PATCH: HTTP Toolkit could not write it as text, so it is
    // base64 in `_content`; every byte is back.
    let patch = &flows[4];
    assert_eq!(patch.method(), "PATCH");
    let layer = patch
        .request
        .body
        .full_bytes()
        .expect("layer bytes imported");
    assert_eq!(layer.len(), 3003);
    assert!(flows[5].url().contains(&sha256_hex(&layer)));

    // Over HTTP Toolkit's limit: the size, no bytes, and a warning saying why.
    let big = &flows[8].response.as_ref().unwrap().body;
    assert_eq!((big.size, big.inline().is_none()), (734_003, true));
    // Aborted: no response.
    assert_eq!(flows[9].response, None);

    let warnings = imported.warnings.join("\n");
    assert!(
        warnings.contains("noted 1 TLS handshake that failed (registry.test: cert-rejected, client ::ffff:127.0.0.1:51234)"),
        "{warnings}"
    );
    assert!(
        !warnings.contains("request body is not in the HAR"),
        "{warnings}"
    );

    // What `inspect` makes of it: one push by dockerd, its layer verified.
    let analysis = analyze(flows, &Options::default());
    let push = &analysis.operations[0];
    assert_eq!(push.title, "push lab/app:latest");
    assert_eq!(push.client.as_ref().unwrap().program, "dockerd");
    assert_eq!(push.status, OperationStatus::Succeeded, "{push:#?}");
    let layer_session = analysis
        .sessions
        .iter()
        .find(|s| s.flow_ids.contains(&patch.id))
        .expect("the PATCH is in an upload session");
    assert_eq!(layer_session.digest_check, DigestCheck::Verified);
}

/// A request body HTTP Toolkit left out is named with its reason.
#[test]
fn http_toolkit_discarded_request_bodies_say_why() {
    let har = serde_json::json!({"log": {"version": "1.2",
    "creator": {"name": "HTTP Toolkit", "version": "1.19.3"},
    "entries": [{
        "startedDateTime": "2026-11-22T22:38:36.086+01:00", "time": 1,
        "request": {"method": "PATCH", "url": "https://registry.test/v2/a/blobs/uploads/u",
            "httpVersion": "HTTP/1.1", "cookies": [], "headers": [], "queryString": [],
            "headersSize": -1, "bodySize": 734003,
            "_requestBodyStatus": "discarded:too-large",
            "comment": "Body discarded during HAR generation: longer than limit of 500000 bytes"},
        "response": {"status": 202, "statusText": "Accepted", "httpVersion": "HTTP/1.1",
            "cookies": [], "headers": [], "redirectURL": "", "headersSize": -1, "bodySize": 0,
            "content": {"mimeType": "text/plain", "size": 0, "text": ""}},
        "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0}
    }]}});
    let imported = import(har.to_string().as_bytes()).unwrap();
    let body = &imported.flows[0].request.body;
    assert_eq!((body.size, body.ended), (734_003, Ending::Unknown));
    assert!(
        imported.warnings.iter().any(|w| w
            .contains("the request body is not in the HAR: Body discarded during HAR generation: longer than limit of 500000 bytes")),
        "{:?}",
        imported.warnings
    );
}

/// A HAR that leaves bodies out says nothing about how they ended: the
/// decoder must not call them cut off, and whatever needs their bytes is
/// "not verifiable".
#[test]
fn bodies_left_out_of_a_har_are_not_called_cut_off() {
    use regtap_decode::{DigestCheck, Options, analyze, render_text};
    let digest = format!("sha256:{}", "7e".repeat(32));
    let header = |name: &str, value: &str| serde_json::json!({"name": name, "value": value});
    let entry = |method: &str,
                 path: &str,
                 request_headers: Vec<serde_json::Value>,
                 body_size: u64,
                 status: u16,
                 response_headers: Vec<serde_json::Value>,
                 content_size: u64| {
        serde_json::json!({
            "startedDateTime": "2026-11-22T22:38:36.086+01:00", "time": 1,
            "request": {"method": method, "url": format!("https://registry.test{path}"),
                "httpVersion": "HTTP/1.1", "cookies": [], "queryString": [],
                "headers": request_headers, "headersSize": -1, "bodySize": body_size},
            "response": {"status": status, "statusText": "", "httpVersion": "HTTP/1.1",
                "cookies": [], "headers": response_headers, "redirectURL": "",
                "headersSize": -1, "bodySize": content_size,
                "content": {"mimeType": "application/octet-stream", "size": content_size}},
            "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0}
        })
    };
    let upload = "/v2/lab/app/blobs/uploads/u-1";
    let har = serde_json::json!({"log": {"version": "1.2",
    "creator": {"name": "some recorder", "version": "1"},
    "entries": [
        entry("GET", &format!("/v2/lab/app/blobs/{digest}"), vec![], 0, 200,
              vec![header("Docker-Content-Digest", &digest)], 1234),
        entry("POST", "/v2/lab/app/blobs/uploads/", vec![], 0, 202,
              vec![header("Location", upload)], 0),
        entry("PATCH", upload, vec![header("Content-Type", "application/octet-stream")],
              1234, 202, vec![header("Location", upload), header("Range", "0-1233")], 0),
        entry("PUT", &format!("{upload}?digest={digest}"), vec![], 0, 201,
              vec![header("Docker-Content-Digest", &digest)], 0),
    ]}});
    let imported = import(har.to_string().as_bytes()).unwrap();
    let flows = &imported.flows;
    let blob_body = &flows[0].response.as_ref().unwrap().body;
    assert_eq!(
        (blob_body.kept.clone(), blob_body.ended),
        (Kept::Unknown, Ending::Unknown)
    );
    assert_eq!(flows[2].request.body.ended, Ending::Unknown);

    let analysis = analyze(flows, &Options::default());
    let text = render_text(&analysis, flows, false);
    assert!(!text.contains("cut off"), "{text}");
    let download = analysis.flows[0]
        .download
        .as_ref()
        .expect("a blob download");
    assert_eq!(
        download.verdict,
        DigestCheck::NotVerifiable {
            reason: "the recording does not say whether the body arrived whole".to_owned()
        }
    );
    let session = analysis.sessions.first().expect("an upload session");
    assert_eq!(
        session.digest_check,
        DigestCheck::NotVerifiable {
            reason: "the recording does not say whether every chunk arrived whole".to_owned()
        },
        "{text}"
    );
}
