//! Malformed input of every kind: the analysis never panics, keeps every
//! flow, and says what it could not decode.

use regtap_fixtures as common;

use common::*;
use regtap_capture::factory::FlowBuilder;
use regtap_capture::{Body, Data, Ending, ErrorStage, Flow, FlowError, Header, Kept};
use regtap_decode::AnnotationKind;
use regtap_decode::{Analysis, Options, Severity, analyze, render_text};

/// Properties that hold whatever the input.
fn check(flows: &[Flow]) -> Analysis {
    let analysis = analyze(
        flows,
        &Options {
            registry_secret: Some(SECRET.to_vec()),
        },
    );
    assert_eq!(analysis.flows.len(), flows.len());
    let in_operations: usize = analysis.operations.iter().map(|o| o.flow_ids.len()).sum();
    assert_eq!(
        in_operations,
        flows.len(),
        "every flow is in exactly one operation"
    );
    for (n, op) in analysis.operations.iter().enumerate() {
        assert_eq!(op.index, n + 1);
        for (m, step) in op.steps.iter().enumerate() {
            assert_eq!(step.number, m + 1);
            assert!(!step.flow_ids.is_empty());
        }
    }
    let _ = render_text(&analysis, flows, true);
    let _ = serde_json::to_string(&analysis).unwrap();
    analysis
}

fn has_annotation(analysis: &Analysis, id: u64, severity: Severity, needle: &str) -> bool {
    analysis.flow(id).is_some_and(|f| {
        f.annotations
            .iter()
            .any(|a| a.severity == severity && a.text.contains(needle))
    })
}

/// A deterministic byte source (no rand in the workspace).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() as usize) % n.max(1)
    }
    fn garble(&mut self, text: &str) -> String {
        let mut bytes = text.as_bytes().to_vec();
        for _ in 0..=self.below(4) {
            if bytes.is_empty() {
                break;
            }
            let at = self.below(bytes.len());
            let replacements = b"%=:;,\"\\/ ?&#-_.x0\x7f";
            bytes[at] = replacements[self.below(replacements.len())];
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn cut(text: &str, n: usize) -> String {
    text.chars().take(n).collect()
}

#[test]
fn every_header_value_cut_or_garbled() {
    let image = Image::new();
    let mut base = login(1, 0);
    base.extend(first_push(&image, 4, 676));
    let mut noise = Noise(7);
    for target in 0..base.len() {
        let headers: Vec<(bool, usize)> = {
            let f = &base[target];
            let request = (0..f.request.headers.len()).map(|i| (true, i));
            let response =
                (0..f.response.as_ref().map_or(0, |r| r.headers.len())).map(|i| (false, i));
            request.chain(response).collect()
        };
        for (in_request, index) in headers {
            for round in 0..3 {
                let mut flows = base.clone();
                let f = &mut flows[target];
                let list = if in_request {
                    &mut f.request.headers.0
                } else {
                    &mut f.response.as_mut().unwrap().headers.0
                };
                let Header(_, value) = &mut list[index];
                let text = value.as_text().unwrap_or_default().to_owned();
                *value = Data::Text(match round {
                    0 => cut(&text, noise.below(text.len() + 1)),
                    1 => noise.garble(&text),
                    _ => String::new(),
                });
                check(&flows);
            }
        }
    }
}

#[test]
fn urls_methods_and_statuses_garbled() {
    let image = Image::new();
    let base = whole_reference();
    let mut noise = Noise(11);
    for round in 0..200 {
        let mut flows = base.clone();
        let target = noise.below(flows.len());
        let f = &mut flows[target];
        match round % 5 {
            0 => f.request.url = noise.garble(&f.request.url),
            1 => f.request.url = cut(&f.request.url, noise.below(f.request.url.len() + 1)),
            2 => {
                f.request.method = ["", "get", "PATCH", "BREW", "\u{0}"][noise.below(5)].to_owned()
            }
            3 => {
                if let Some(r) = f.response.as_mut() {
                    r.status = [0, 100, 204, 302, 416, 499, 999, u16::MAX][noise.below(8)];
                }
            }
            _ => {
                f.response = None;
                f.error = Some(FlowError {
                    stage: ErrorStage::Connect,
                    message: "connection refused".into(),
                });
            }
        }
        check(&flows);
    }
    let _ = image;
}

#[test]
fn bodies_cut_short_at_every_length() {
    let image = Image::new();
    let manifest = image.manifest();
    let (token_flow, _) = token(
        2,
        10,
        &["repository:lab/seq:pull"],
        &[("lab/seq", &["pull"])],
    );
    let token_body = token_flow
        .response
        .as_ref()
        .unwrap()
        .body
        .full_bytes()
        .unwrap();
    let error_body = br#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied","detail":{"a":1}}]}"#;
    for n in (0..manifest.len()).step_by(7) {
        let put = manifest_put(
            3,
            20,
            REGISTRY,
            "lab/seq",
            "latest",
            &manifest[..n],
            "Bearer x",
        );
        let analysis = check(&[ping(1, 0, REGISTRY), put]);
        let manifest_note = analysis
            .flow(3)
            .unwrap()
            .annotations
            .iter()
            .any(|a| a.label == AnnotationKind::Manifest);
        assert!(
            manifest_note,
            "cut at {n}: the manifest is said to be unreadable"
        );
    }
    for n in (0..token_body.len()).step_by(13) {
        let mut t = token_flow.clone();
        t.response.as_mut().unwrap().body = Body::from_bytes(&token_body[..n]);
        let analysis = check(&[ping(1, 0, REGISTRY), t]);
        let f = analysis.flow(2).unwrap();
        if f.token.is_none() && f.kind.label() == "token" && n > 0 {
            assert!(
                f.annotations
                    .iter()
                    .any(|a| a.severity == Severity::Warning),
                "cut at {n}: {:#?}",
                f.annotations
            );
        }
    }
    for n in 0..error_body.len() {
        let denied = FlowBuilder::new(3, "PUT", &format!("{REGISTRY}/v2/lab/seq/manifests/latest"))
            .request_header("Authorization", "Bearer x")
            .request_body(&manifest)
            .status(403)
            .response_body(&error_body[..n])
            .build();
        check(&[denied]);
    }
}

#[test]
fn malformed_values_become_annotations_with_a_reason() {
    let bad_jwt = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOi.c2ln";
    let token_answer = format!(r#"{{"token":"{bad_jwt}","expires_in":"soon"}}"#);
    let flows = vec![
        ping(1, 0, REGISTRY),
        FlowBuilder::new(
            2,
            "GET",
            &format!("{REALM}?scope=repository%3Alab%2Fseq%3Apull&service=registry.test"),
        )
        .start_ns(at(10))
        .status(200)
        .response_body(token_answer.as_bytes())
        .build(),
        FlowBuilder::new(
            3,
            "PATCH",
            &format!("{REGISTRY}/v2/lab/seq/blobs/uploads/u1?_state=not-a-state"),
        )
        .start_ns(at(20))
        .request_header("Authorization", &format!("Bearer {bad_jwt}"))
        .request_body(b"abc")
        .status(202)
        .response_header("Range", "bytes=garbage")
        .build(),
        FlowBuilder::new(4, "PUT", &format!("{REGISTRY}/v2/lab/seq/manifests/latest"))
            .start_ns(at(30))
            .request_body(b"{\"schemaVersion\": 2, \"layers\": [")
            .status(400)
            .response_body(br#"{"errors":{"code":"MANIFEST_INVALID"}}"#)
            .build(),
        FlowBuilder::new(5, "GET", &format!("{REGISTRY}/v2/"))
            .start_ns(at(40))
            .request_header("Authorization", "Basic %%%")
            .status(401)
            .response_header("WWW-Authenticate", "Bearer realm=\"https://a/t")
            .build(),
    ];
    let analysis = check(&flows);
    assert!(has_annotation(
        &analysis,
        2,
        Severity::Warning,
        "looks like a JWT but does not decode"
    ));
    assert!(has_annotation(
        &analysis,
        3,
        Severity::Warning,
        "looks like a JWT but does not decode"
    ));
    assert!(has_annotation(
        &analysis,
        3,
        Severity::Warning,
        "not a distribution _state value"
    ));
    assert!(has_annotation(
        &analysis,
        3,
        Severity::Warning,
        "does not parse"
    ));
    assert!(has_annotation(
        &analysis,
        4,
        Severity::Warning,
        "manifest is not JSON"
    ));
    assert!(has_annotation(
        &analysis,
        4,
        Severity::Warning,
        "malformed registry error body"
    ));
    assert!(has_annotation(
        &analysis,
        5,
        Severity::Warning,
        "malformed Basic credentials"
    ));
    assert!(has_annotation(
        &analysis,
        5,
        Severity::Warning,
        "unterminated quoted value"
    ));
    // Each of them is also listed as a problem of the capture.
    for id in 2..=5 {
        assert!(
            analysis.diagnostics.iter().any(|d| d.flow_id == Some(id)),
            "{id}"
        );
    }
}

#[test]
fn extreme_numbers_do_not_overflow() {
    let huge = u64::MAX.to_string();
    let mut chunk = FlowBuilder::new(
        2,
        "PATCH",
        &format!("{REGISTRY}/v2/lab/seq/blobs/uploads/u1"),
    )
    .request_header("Content-Range", &format!("{huge}-{huge}"))
    .request_body_summary(u64::MAX, &"0".repeat(64))
    .status(202)
    .response_header("Range", &format!("0-{huge}"))
    .build();
    chunk.timing.request_start = i64::MAX;
    chunk.timing.response_end = Some(i64::MIN);
    let manifest = format!(
        r#"{{"schemaVersion":2,"config":{{"digest":"sha256:{z}","size":{huge}}},"layers":[{{"digest":"sha256:{z}","size":{huge}}},{{"digest":"sha256:{z}","size":{huge}}}]}}"#,
        z = "0".repeat(64)
    );
    let flows = vec![
        upload_start(1, 0, REGISTRY, "lab/seq", "u1", "Bearer x"),
        chunk,
        FlowBuilder::new(
            3,
            "PUT",
            &format!(
                "{REGISTRY}/v2/lab/seq/blobs/uploads/u1?digest=sha256:{}",
                "0".repeat(64)
            ),
        )
        .request_body_summary(u64::MAX, &"0".repeat(64))
        .status(201)
        .build(),
        FlowBuilder::new(4, "PUT", &format!("{REGISTRY}/v2/lab/seq/manifests/latest"))
            .request_header(
                "Authorization",
                &format!("Bearer {}", jwt_with_times(i64::MAX, i64::MIN)),
            )
            .request_body(manifest.as_bytes())
            .status(201)
            .build(),
        FlowBuilder::new(
            5,
            "GET",
            &format!("{REGISTRY}/v2/lab/seq/blobs/sha256:{}", "1".repeat(64)),
        )
        .response_body_summary(u64::MAX, &"0".repeat(64))
        .status(200)
        .build(),
        FlowBuilder::new(
            6,
            "GET",
            &format!("{REGISTRY}/v2/lab/seq/blobs/sha256:{}", "2".repeat(64)),
        )
        .response_body_summary(u64::MAX, &"0".repeat(64))
        .status(200)
        .build(),
    ];
    check(&flows);
}

fn jwt_with_times(exp: i64, nbf: i64) -> String {
    use base64::Engine as _;
    let b64 = |s: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.c2ln",
        b64(r#"{"alg":"none"}"#.to_owned()),
        b64(format!(r#"{{"exp":{exp},"nbf":{nbf},"iat":1e300}}"#))
    )
}

#[test]
fn binary_and_undecodable_data_anywhere() {
    let mut flow = FlowBuilder::new(1, "GET", &format!("{REGISTRY}/v2/lab/seq/manifests/latest"))
        .status(200)
        .build();
    flow.request.headers.0.push(Header(
        "Authorization".into(),
        Data::Binary {
            base64: "AAEC/w==".into(),
        },
    ));
    let response = flow.response.as_mut().unwrap();
    response
        .headers
        .0
        .push(Header("Content-Encoding".into(), Data::Text("gzip".into())));
    response.body = Body {
        size: 10,
        sha256: None,
        kept: Kept::Inline(Data::Binary {
            base64: "not base64!".into(),
        }),
        elsewhere: None,
        ended: Ending::Complete,
    };
    let empty = Flow {
        id: 2,
        ..FlowBuilder::new(2, "", "").build()
    };
    check(&[flow, empty]);
    check(&[]);
}

#[test]
fn flows_sharing_an_id_are_reported_and_found_by_the_first() {
    let flow = |id: u64, ms: i64, path: &str, status: u16| {
        FlowBuilder::new(id, "GET", &format!("https://registry.test{path}"))
            .start_ns(at(ms))
            .status(status)
            .build()
    };
    let unique = vec![flow(1, 0, "/v2/", 200), flow(2, 10, "/v2/", 200)];
    let analysis = analyze(&unique, &Options::default());
    assert!(
        analysis.diagnostics.is_empty(),
        "{:?}",
        analysis.diagnostics
    );

    // Pushed out of time order: the earlier flow #5 is the one found.
    let flows = vec![
        flow(5, 30, "/v2/lib/a/tags/list", 404),
        flow(7, 0, "/v2/", 200),
        flow(5, 20, "/v2/", 401),
        flow(5, 40, "/v2/", 200),
        flow(7, 50, "/v2/", 200),
    ];
    let analysis = analyze(&flows, &Options::default());
    let shared: Vec<&str> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.message.contains("share id"))
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(
        shared,
        [
            "3 flows share id 5; links by id use the first",
            "2 flows share id 7; links by id use the first",
        ]
    );
    let first = analysis.flow(5).unwrap();
    assert!(first.summary.contains("401"), "{}", first.summary);
    assert!(analysis.flow(7).unwrap().summary.starts_with("API check"));
    assert!(analysis.flow(6).is_none());
}
