//! The dockerd 20.10 sequences of `regtap_fixtures` (observed dockerd traffic),
//! rebuilt with FlowBuilder, and what a user reading `regtap inspect` would
//! check about each.

use regtap_fixtures as common;

use common::*;
use regtap_capture::factory::FlowBuilder;
use regtap_capture::{Elsewhere, Flow};
use regtap_decode::AnnotationKind;
use regtap_decode::{
    Analysis, Analyzer, BlobStatus, DigestCheck, FlowKind, HmacStatus, OperationKind,
    OperationStatus, Options, Reference, SessionOutcome, Severity, UploadStart, analyze,
};

fn run(flows: &[Flow]) -> Analysis {
    analyze(flows, &Options::default())
}

fn titles(analysis: &Analysis) -> Vec<&str> {
    analysis
        .operations
        .iter()
        .map(|o| o.title.as_str())
        .collect()
}

#[test]
fn login_is_one_operation_with_three_steps() {
    let analysis = run(&login(1, 0));
    assert_eq!(titles(&analysis), vec!["login registry.test:5000"]);
    let op = &analysis.operations[0];
    assert_eq!(op.status, OperationStatus::Succeeded);
    assert_eq!(op.flow_ids, vec![1, 2, 3]);
    assert_eq!(op.steps.len(), 3);
    assert!(
        op.steps[0].explanation.contains("401"),
        "{}",
        op.steps[0].explanation
    );
    assert!(op.steps[1].explanation.contains("no scope (login)"));
    // The authenticated ping carries the token issued by flow 2.
    let bearer = analysis.flow(3).unwrap().bearer.as_ref().unwrap();
    assert_eq!(bearer.issued_by, Some(2));
    assert!(!bearer.expired);
    let token = analysis.flow(2).unwrap().token.as_ref().unwrap();
    assert_eq!(token.fingerprint, bearer.fingerprint);
    assert!(token.refresh_token.is_some());
    // The expected 401 of the first ping is not reported as a problem.
    assert!(
        analysis.diagnostics.is_empty(),
        "{:?}",
        analysis.diagnostics
    );
}

#[test]
fn first_push_rebuilds_three_interleaved_uploads() {
    let image = Image::new();
    let flows = first_push(&image, 4, 676);
    let analysis = run(&flows);
    assert_eq!(titles(&analysis), vec!["push lab/seq:latest"]);
    let op = &analysis.operations[0];
    assert_eq!(op.status, OperationStatus::Succeeded);
    assert_eq!(op.flow_ids.len(), 20);
    assert_eq!(
        op.kind,
        OperationKind::Push {
            registry: "registry.test:5000".into(),
            repository: "lab/seq".into(),
            reference: Some(Reference::Tag("latest".into())),
        }
    );

    assert_eq!(analysis.sessions.len(), 4);
    let expected = [
        ("uuid-1", &image.layers[0], [6, 10, 14]),
        ("uuid-2", &image.layers[1], [7, 11, 12]),
        ("uuid-3", &image.layers[2], [8, 9, 13]),
        ("uuid-4", &image.config, [19, 20, 21]),
    ];
    for (uuid, bytes, ids) in expected {
        let s = analysis
            .sessions
            .iter()
            .find(|s| s.upload_id.as_deref() == Some(uuid))
            .unwrap();
        assert_eq!(s.flow_ids, ids.to_vec(), "{uuid}");
        assert_eq!(s.total_bytes, bytes.len() as u64, "{uuid}");
        assert_eq!(s.digest.as_deref(), Some(digest(bytes).as_str()), "{uuid}");
        assert_eq!(s.digest_check, DigestCheck::Verified, "{uuid}");
        assert_eq!(s.outcome, SessionOutcome::Completed, "{uuid}");
        assert_eq!(s.start, UploadStart::Chunked);
        assert_eq!(s.chunks.len(), 1);
        assert_eq!(s.chunks[0].offset_end, bytes.len() as u64);
        for id in ids {
            assert_eq!(analysis.flow(id).unwrap().session, Some(s.index));
        }
    }

    // The manifest's blobs are linked to their uploads.
    let manifest = analysis.flow(23).unwrap().manifest.as_ref().unwrap();
    assert_eq!(manifest.layers.len(), 3);
    for d in manifest.layers.iter().chain(manifest.config.iter()) {
        assert_eq!(d.blob_status, BlobStatus::Uploaded, "{}", d.digest);
    }
    let config = manifest.config.as_ref().unwrap();
    assert!(
        config.blob_flow_ids.contains(&18),
        "the 404 HEAD: {:?}",
        config.blob_flow_ids
    );
    assert!(
        config.blob_flow_ids.contains(&21),
        "the PUT: {:?}",
        config.blob_flow_ids
    );

    // Steps: ping, token, 3 uploads, HEAD ×3, HEAD 404, config upload, HEAD, manifest.
    let lines: Vec<&str> = op.steps.iter().map(|s| s.explanation.as_str()).collect();
    assert_eq!(op.steps.len(), 10, "{lines:#?}");
    assert!(
        lines[2].starts_with("upload blob sha256:") && lines[2].contains("digest verified"),
        "{lines:#?}"
    );
    assert!(
        lines[5].contains("HEAD 3 blobs of lab/seq: all present"),
        "{lines:#?}"
    );
    assert!(lines[6].contains("missing"), "{lines:#?}");
    assert!(
        lines[9].starts_with("PUT manifest lab/seq:latest: 201 Created"),
        "{lines:#?}"
    );
    assert_eq!(op.steps[2].flow_ids, vec![6, 10, 14]);
}

#[test]
fn upload_state_hmac_is_checked_with_the_registry_secret() {
    let image = Image::new();
    let flows = first_push(&image, 4, 676);
    let checked = analyze(
        &flows,
        &Options {
            registry_secret: Some(SECRET.to_vec()),
        },
    );
    let states: Vec<_> = checked
        .flows
        .iter()
        .filter_map(|f| f.upload_state.as_ref())
        .collect();
    assert_eq!(states.len(), 12);
    assert!(states.iter().all(|s| s.hmac == HmacStatus::Valid));
    assert!(states.iter().all(|s| s.name == "lab/seq"));
    let wrong = analyze(
        &flows,
        &Options {
            registry_secret: Some(b"wrong".to_vec()),
        },
    );
    let invalid = wrong.flows.iter().filter_map(|f| f.upload_state.as_ref());
    assert!(invalid.into_iter().all(|s| s.hmac == HmacStatus::Invalid));
    assert!(
        wrong
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error && d.message.contains("HMAC INVALID"))
    );
    let unchecked = run(&flows);
    assert!(
        unchecked
            .flows
            .iter()
            .filter_map(|f| f.upload_state.as_ref())
            .all(|s| s.hmac == HmacStatus::NotChecked)
    );
}

#[test]
fn cross_repo_mount_with_a_second_token_is_one_push() {
    let image = Image::new();
    let analysis = run(&cross_repo_push(&image, 24, 1598));
    assert_eq!(titles(&analysis), vec!["push lab/seq-copy:latest"]);
    let op = &analysis.operations[0];
    assert_eq!(op.status, OperationStatus::Succeeded);
    // All four token requests (the second, for the mount scope, mid-push) are in it.
    for token_flow in [25, 29, 31, 32] {
        assert!(op.flow_ids.contains(&token_flow), "{token_flow}");
        let token = analysis.flow(token_flow).unwrap().token.as_ref().unwrap();
        assert!(token.missing_grants.is_empty());
    }
    let second = analysis.flow(29).unwrap().token.as_ref().unwrap();
    assert_eq!(
        second.requested_scopes,
        vec![
            "repository:lab/seq-copy:push,pull",
            "repository:lab/seq:pull"
        ]
    );
    assert_eq!(
        analysis
            .flow(30)
            .unwrap()
            .bearer
            .as_ref()
            .unwrap()
            .issued_by,
        Some(29)
    );
    let mounted: Vec<_> = analysis
        .sessions
        .iter()
        .filter(|s| s.outcome == SessionOutcome::Mounted)
        .collect();
    assert_eq!(mounted.len(), 3);
    assert!(mounted.iter().all(|s| s.start
        == UploadStart::Mount {
            from: Some("lab/seq".into())
        }));
    let manifest = analysis.flow(43).unwrap().manifest.as_ref().unwrap();
    assert!(
        manifest
            .layers
            .iter()
            .all(|l| l.blob_status == BlobStatus::Mounted)
    );
    assert_eq!(
        manifest.config.as_ref().unwrap().blob_status,
        BlobStatus::Uploaded
    );
    let mount_steps = op
        .steps
        .iter()
        .filter(|s| s.explanation.starts_with("mount blob"))
        .count();
    assert_eq!(mount_steps, 3);
}

#[test]
fn a_token_server_granting_less_is_flagged_and_the_mount_falls_back() {
    let (t, token) = token(
        2,
        10,
        &["repository:lab/copy:push,pull", "repository:lab/seq:pull"],
        &[("lab/copy", &["pull", "push"])],
    );
    let a = bearer(&token);
    let layer = b"layer bytes".to_vec();
    let fallback = FlowBuilder::new(
        3,
        "POST",
        &format!(
            "{REGISTRY}/v2/lab/copy/blobs/uploads/?from=lab%2Fseq&mount={}",
            digest(&layer)
        ),
    )
    .start_ns(at(20))
    .request_header("Authorization", &a)
    .status(202)
    .response_header("Location", "/v2/lab/copy/blobs/uploads/uuid-f")
    .response_header("Docker-Upload-UUID", "uuid-f")
    .build();
    let mut flows = vec![ping(1, 0, REGISTRY), t, fallback];
    flows.push(upload_chunk(
        4, 30, REGISTRY, "lab/copy", "uuid-f", &a, &layer,
    ));
    flows.push(upload_finish(
        5,
        40,
        REGISTRY,
        "lab/copy",
        "uuid-f",
        &a,
        layer.len() as u64,
        &digest(&layer),
    ));
    let analysis = run(&flows);
    let info = analysis.flow(2).unwrap().token.as_ref().unwrap();
    assert_eq!(info.missing_grants, vec!["repository:lab/seq:pull"]);
    assert!(
        analysis
            .diagnostics
            .iter()
            .any(|d| d.flow_id == Some(2) && d.message.contains("granted less than requested"))
    );
    assert_eq!(analysis.sessions.len(), 1);
    let s = &analysis.sessions[0];
    assert_eq!(
        s.start,
        UploadStart::MountFallback {
            from: Some("lab/seq".into())
        }
    );
    assert_eq!(s.outcome, SessionOutcome::Completed);
    assert_eq!(s.digest_check, DigestCheck::Verified);
    assert!(
        analysis.operations[0]
            .steps
            .iter()
            .any(|s| s.explanation.contains("refused, uploaded instead"))
    );
}

#[test]
fn re_push_finds_every_blob_present() {
    let image = Image::new();
    let analysis = run(&re_push(&image, 44, 2451));
    assert_eq!(titles(&analysis), vec!["push lab/seq:latest"]);
    let op = &analysis.operations[0];
    assert_eq!(op.status, OperationStatus::Succeeded);
    assert!(analysis.sessions.is_empty());
    let lines: Vec<&str> = op.steps.iter().map(|s| s.explanation.as_str()).collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(
        lines[2].starts_with("HEAD 4 blobs of lab/seq: all present"),
        "{lines:#?}"
    );
    let manifest = analysis.flow(50).unwrap().manifest.as_ref().unwrap();
    assert!(
        manifest
            .layers
            .iter()
            .chain(manifest.config.iter())
            .all(|d| d.blob_status == BlobStatus::Present)
    );
}

#[test]
fn pull_by_tag_downloads_the_blobs() {
    let image = Image::new();
    let analysis = run(&pull(&image, 51, 3217));
    assert_eq!(titles(&analysis), vec!["pull lab/seq:latest"]);
    let op = &analysis.operations[0];
    assert_eq!(op.status, OperationStatus::Succeeded);
    assert_eq!(op.flow_ids.len(), 8);
    let manifest = analysis.flow(54).unwrap().manifest.as_ref().unwrap();
    assert!(
        manifest
            .layers
            .iter()
            .chain(manifest.config.iter())
            .all(|d| d.blob_status == BlobStatus::Downloaded)
    );
    assert!(
        op.steps
            .iter()
            .any(|s| s.explanation.starts_with("GET 4 blobs of lab/seq: 200 OK")),
        "{:#?}",
        op.steps
    );
    assert!(matches!(
        &analysis.flow(54).unwrap().kind,
        FlowKind::ManifestGet {
            reference: Reference::Digest(_),
            ..
        }
    ));
}

#[test]
fn basic_auth_login_and_push_never_show_the_password() {
    let image = Image::new();
    let mut flows = basic_login(59, 4081);
    flows.extend(basic_push(&image, 61, 4756));
    let analysis = run(&flows);
    assert_eq!(
        titles(&analysis),
        vec!["login registry.test:5002", "push lab/seq:latest"]
    );
    assert!(
        analysis
            .operations
            .iter()
            .all(|o| o.status == OperationStatus::Succeeded)
    );
    assert_eq!(
        analysis.flow(60).unwrap().basic_user.as_deref(),
        Some("alice")
    );
    let json = serde_json::to_string(&analysis).unwrap();
    assert!(!json.contains("wonderland"));
    assert!(!json.contains("YWxpY2U6d29uZGVybGFuZA"));
    let text = regtap_decode::render_text(&analysis, &flows, false);
    assert!(!text.contains("wonderland"));
}

#[test]
fn the_whole_reference_gives_seven_operations_in_order() {
    let flows = whole_reference();
    let analysis = run(&flows);
    assert_eq!(
        titles(&analysis),
        vec![
            "login registry.test:5000",
            "push lab/seq:latest",
            "push lab/seq-copy:latest",
            "push lab/seq:latest",
            "pull lab/seq:latest",
            "login registry.test:5002",
            "push lab/seq:latest",
        ]
    );
    assert!(
        analysis
            .operations
            .iter()
            .all(|o| o.status == OperationStatus::Succeeded)
    );
    // Every flow is in exactly one operation.
    let mut ids: Vec<u64> = analysis
        .operations
        .iter()
        .flat_map(|o| o.flow_ids.clone())
        .collect();
    ids.sort_unstable();
    let mut expected: Vec<u64> = flows.iter().map(|f| f.id).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert!(
        analysis.diagnostics.is_empty(),
        "{:#?}",
        analysis.diagnostics
    );
    // No flow is left unclassified.
    assert!(analysis.flows.iter().all(|f| f.kind != FlowKind::Unknown));
}

/// A deterministic shuffle (no rand in the workspace).
fn shuffled(flows: &[Flow], seed: u64) -> Vec<Flow> {
    let mut out = flows.to_vec();
    let mut state = seed;
    for i in (1..out.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = (state >> 33) as usize % (i + 1);
        out.swap(i, j);
    }
    out
}

#[test]
fn incremental_analysis_ends_equal_to_batch_in_any_arrival_order() {
    let mut flows = whole_reference();
    // Make the big PATCHes finish last, as on a real network.
    for f in &mut flows {
        if f.request.body.size > 60_000 {
            let end = f.timing.request_start + 90_000_000;
            f.timing.request_end = Some(end);
            f.timing.response_head = Some(end + 1_000_000);
            f.timing.response_end = Some(end + 1_000_000);
        }
    }
    let batch = run(&flows);
    let finishing = in_finishing_order(&flows);
    assert_ne!(
        finishing.iter().map(|f| f.id).collect::<Vec<_>>(),
        flows.iter().map(|f| f.id).collect::<Vec<_>>(),
        "the test needs an arrival order that differs from the start order"
    );
    for (name, order) in [
        ("finishing", finishing),
        ("reversed", flows.iter().rev().cloned().collect()),
        ("shuffled 1", shuffled(&flows, 1)),
        ("shuffled 2", shuffled(&flows, 2)),
    ] {
        let mut analyzer = Analyzer::new(Options::default());
        for (n, flow) in order.iter().enumerate() {
            analyzer.push(flow);
            if n == order.len() / 2 {
                // A live view asks midway; it must not disturb the end result.
                let partial = analyzer.analysis();
                assert_eq!(partial.flows.len(), n + 1);
            }
        }
        assert_eq!(analyzer.analysis(), batch, "{name}");
    }
}

#[test]
fn flows_decoded_by_several_analyzers_and_appended_analyse_as_one_capture() {
    let flows = in_finishing_order(&whole_reference());
    let batch = run(&flows);
    // Interleaved parts, appended out of order, as decoding threads finish.
    let mut parts: Vec<Analyzer> = (0..3).map(|_| Analyzer::new(Options::default())).collect();
    for (n, flow) in flows.iter().enumerate() {
        parts[n % 3].push(flow);
    }
    let mut whole = parts.pop().expect("three parts");
    for part in parts {
        whole.append(part);
    }
    assert_eq!(whole.len(), flows.len());
    assert_eq!(whole.finish(), batch);
}

#[test]
fn linking_when_due_covers_each_flow_a_bounded_number_of_times_and_ends_as_batch() {
    let flows = in_finishing_order(&whole_reference());
    let batch = run(&flows);
    let mut analyzer = Analyzer::new(Options::default());
    let mut linked_sizes = Vec::new();
    for flow in &flows {
        analyzer.push(flow);
        if analyzer.link_due() {
            let analysis = analyzer.link();
            assert_eq!(analysis.flows.len(), analyzer.len());
            linked_sizes.push(analyzer.len());
        }
    }
    assert!(
        analyzer.unlinked() * 2 < analyzer.len(),
        "what is left unlinked is under half the capture"
    );
    // Each link covers at least twice the flows of the one before.
    assert!(
        linked_sizes.windows(2).all(|w| w[1] >= w[0] * 2),
        "{linked_sizes:?}"
    );
    let covered: usize = linked_sizes.iter().sum();
    assert!(covered <= 2 * flows.len(), "{covered} for {}", flows.len());
    assert_eq!(analyzer.link(), batch);
    assert_eq!(analyzer.unlinked(), 0);
    assert!(!analyzer.link_due(), "nothing new: nothing to link");
}

#[test]
fn expired_and_not_yet_valid_tokens_are_flagged() {
    let (t, token) = token(
        2,
        10,
        &["repository:lab/seq:pull"],
        &[("lab/seq", &["pull"])],
    );
    let late = FlowBuilder::new(
        3,
        "HEAD",
        &format!("{REGISTRY}/v2/lab/seq/manifests/latest"),
    )
    .start_ns(at(10 + 301_000))
    .request_header("Authorization", &bearer(&token))
    .status(401)
    .build();
    let early = FlowBuilder::new(
        4,
        "HEAD",
        &format!("{REGISTRY}/v2/lab/seq/manifests/latest"),
    )
    .start_ns(at(-5_000))
    .request_header("Authorization", &bearer(&token))
    .status(200)
    .build();
    let analysis = run(&[ping(1, 0, REGISTRY), t, late, early]);
    let late = analysis.flow(3).unwrap().bearer.as_ref().unwrap();
    assert!(late.expired && !late.not_yet_valid);
    assert_eq!(late.issued_by, Some(2));
    let early = analysis.flow(4).unwrap().bearer.as_ref().unwrap();
    assert!(early.not_yet_valid && !early.expired);
    assert!(
        analysis
            .diagnostics
            .iter()
            .any(|d| d.flow_id == Some(3) && d.message.contains("after it expired"))
    );
    assert!(
        analysis
            .diagnostics
            .iter()
            .any(|d| d.flow_id == Some(4) && d.message.contains("before its nbf"))
    );
}

#[test]
fn opaque_tokens_expire_by_expires_in() {
    let body = br#"{"token":"opaque-token-value","expires_in":60}"#;
    let t = FlowBuilder::new(
        2,
        "GET",
        &format!("{REALM}?scope=repository%3Alab%2Fseq%3Apull&service=registry.test"),
    )
    .start_ns(at(10))
    .status(200)
    .response_body(body)
    .build();
    let used = FlowBuilder::new(3, "GET", &format!("{REGISTRY}/v2/lab/seq/tags/list"))
        .start_ns(at(70_000))
        .request_header("Authorization", "Bearer opaque-token-value")
        .status(200)
        .response_body(br#"{"name":"lab/seq","tags":["latest","v1"]}"#)
        .build();
    let analysis = run(&[ping(1, 0, REGISTRY), t, used]);
    let info = analysis.flow(2).unwrap().token.as_ref().unwrap();
    assert!(info.jwt.is_none());
    assert!(info.opaque_reason.is_some());
    let bearer = analysis.flow(3).unwrap().bearer.as_ref().unwrap();
    assert_eq!(bearer.issued_by, Some(2));
    assert!(bearer.expired);
    assert!(analysis.flow(3).unwrap().summary.contains("2 tags"));
    assert_eq!(titles(&analysis), vec!["list tags of lab/seq"]);
}

#[test]
fn blob_redirects_to_storage_and_range_requests() {
    let layer = vec![9u8; 5000];
    let d = digest(&layer);
    let storage = "https://storage.test/blobs/ab/cd?X-Amz-Signature=xyz";
    let flows = vec![
        FlowBuilder::new(
            1,
            "GET",
            &format!("{REGISTRY}/v2/lab/seq/manifests/sha256:{}", "e".repeat(64)),
        )
        .status(200)
        .build(),
        FlowBuilder::new(2, "GET", &format!("{REGISTRY}/v2/lab/seq/blobs/{d}"))
            .status(307)
            .response_header("Location", storage)
            .build(),
        FlowBuilder::new(3, "GET", storage)
            .status(200)
            .response_body(&layer)
            .build(),
        FlowBuilder::new(4, "GET", &format!("{REGISTRY}/v2/lab/seq/blobs/{d}"))
            .request_header("Range", "bytes=1000-")
            .status(206)
            .response_header("Content-Range", "bytes 1000-4999/5000")
            .build(),
    ];
    let analysis = run(&flows);
    match &analysis.flow(2).unwrap().kind {
        FlowKind::BlobGet { redirect_to, .. } => assert_eq!(redirect_to.as_deref(), Some(storage)),
        other => panic!("{other:?}"),
    }
    match &analysis.flow(3).unwrap().kind {
        FlowKind::BlobGet {
            redirected_from,
            digest,
            ..
        } => {
            assert_eq!(*redirected_from, Some(2));
            assert_eq!(digest, &d);
        }
        other => panic!("{other:?}"),
    }
    match &analysis.flow(4).unwrap().kind {
        FlowKind::BlobGet { range, .. } => assert_eq!(range.as_deref(), Some("bytes=1000-")),
        other => panic!("{other:?}"),
    }
    assert_eq!(analysis.operations.len(), 1);
    assert_eq!(analysis.operations[0].flow_ids, vec![1, 2, 3, 4]);
    assert!(
        analysis
            .flow(3)
            .unwrap()
            .summary
            .contains("redirected by #2")
    );
}

#[test]
fn a_rejected_manifest_fails_the_push_with_an_explanation() {
    let image = Image::new();
    let (t, token) = token(
        2,
        10,
        &["repository:lab/seq:push,pull"],
        &[("lab/seq", &["pull", "push"])],
    );
    let a = bearer(&token);
    let rejected = FlowBuilder::new(4, "PUT", &format!("{REGISTRY}/v2/lab/seq/manifests/v1"))
        .start_ns(at(40))
        .request_header("Authorization", &a)
        .request_header("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
        .request_body(&image.manifest())
        .status(400)
        .response_body(br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:abc"}]}"#)
        .build();
    let analysis = run(&[
        ping(1, 0, REGISTRY),
        t,
        blob_head(3, 20, REGISTRY, "lab/seq", &digest(&image.config), &a, 404),
        rejected,
    ]);
    let op = &analysis.operations[0];
    assert_eq!(op.title, "push lab/seq:v1");
    match &op.status {
        OperationStatus::Failed { reason } => {
            assert!(reason.contains("MANIFEST_BLOB_UNKNOWN"), "{reason}");
            assert!(reason.contains("refers to a blob"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let flow = analysis.flow(4).unwrap();
    assert_eq!(
        flow.registry_errors[0].detail.as_deref(),
        Some("sha256:abc")
    );
    let manifest = flow.manifest.as_ref().unwrap();
    assert_eq!(
        manifest.config.as_ref().unwrap().blob_status,
        BlobStatus::Missing
    );
    assert!(flow.annotations.iter().any(|a| {
        a.text
            .contains("refers to blobs the registry said it lacks")
    }));
}

#[test]
fn monolithic_and_multi_chunk_uploads() {
    let blob = b"monolithic blob".to_vec();
    let mono = FlowBuilder::new(
        1,
        "POST",
        &format!(
            "{REGISTRY}/v2/a/b/c/blobs/uploads/?digest={}",
            digest(&blob)
        ),
    )
    .request_body(&blob)
    .status(201)
    .response_header("Location", &format!("/v2/a/b/c/blobs/{}", digest(&blob)))
    .build();
    // Gitea style: no _state, Content-Range on every PATCH, Range 0-(n-1) back.
    let part1 = vec![1u8; 1000];
    let part2 = vec![2u8; 500];
    let whole: Vec<u8> = part1.iter().chain(part2.iter()).copied().collect();
    let start = FlowBuilder::new(2, "POST", "https://git.test/v2/org/img/blobs/uploads/")
        .status(202)
        .response_header("Location", "/v2/org/img/blobs/uploads/gitea-1")
        .response_header("Range", "0-0")
        .response_header("Docker-Upload-Uuid", "gitea-1")
        .build();
    let chunk = |id: u64, range: &str, body: &[u8], server: &str, summary: bool| {
        let b = FlowBuilder::new(
            id,
            "PATCH",
            "https://git.test/v2/org/img/blobs/uploads/gitea-1",
        )
        .request_header("Content-Range", range);
        let b = if summary {
            b.request_body_summary(body.len() as u64, &sha256(body))
        } else {
            b.request_body(body)
        };
        b.status(202)
            .response_header("Location", "/v2/org/img/blobs/uploads/gitea-1")
            .response_header("Range", server)
            .build()
    };
    let finish = FlowBuilder::new(
        5,
        "PUT",
        &format!(
            "https://git.test/v2/org/img/blobs/uploads/gitea-1?digest={}",
            digest(&whole)
        ),
    )
    .status(201)
    .build();
    let inline = run(&[
        mono.clone(),
        start.clone(),
        chunk(3, "0-999", &part1, "0-999", false),
        chunk(4, "1000-1499", &part2, "0-1499", false),
        finish.clone(),
    ]);
    assert_eq!(inline.sessions.len(), 2);
    let m = &inline.sessions[0];
    assert_eq!(
        (m.start.clone(), m.outcome, m.digest_check.clone()),
        (
            UploadStart::Monolithic,
            SessionOutcome::Completed,
            DigestCheck::Verified
        )
    );
    assert_eq!(m.repository, "a/b/c");
    let g = &inline.sessions[1];
    assert_eq!(g.upload_id.as_deref(), Some("gitea-1"));
    assert_eq!(g.flow_ids, vec![2, 3, 4, 5]);
    assert_eq!(g.total_bytes, 1500);
    assert_eq!(
        (g.chunks[1].offset_start, g.chunks[1].offset_end),
        (1000, 1500)
    );
    assert_eq!(g.digest_check, DigestCheck::Verified);
    assert!(inline.diagnostics.is_empty(), "{:#?}", inline.diagnostics);

    let hashed_only = run(&[
        start,
        chunk(3, "0-999", &part1, "0-999", true),
        chunk(4, "1000-1499", &part2, "0-1499", true),
        finish,
    ]);
    match &hashed_only.sessions[0].digest_check {
        DigestCheck::NotVerifiable { reason } => assert!(reason.contains("2 chunks"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn digest_mismatch_and_server_range_disagreement() {
    let sent = b"what was sent".to_vec();
    let flows = vec![
        upload_start(1, 0, REGISTRY, "lab/x", "u-9", "Bearer t"),
        FlowBuilder::new(
            2,
            "PATCH",
            &format!("{REGISTRY}/v2/lab/x/blobs/uploads/u-9"),
        )
        .start_ns(at(10))
        .request_body(&sent)
        .status(202)
        .response_header("Range", "0-4")
        .build(),
        upload_finish(
            3,
            20,
            REGISTRY,
            "lab/x",
            "u-9",
            "Bearer t",
            13,
            &digest(b"something else"),
        ),
    ];
    let analysis = run(&flows);
    let s = &analysis.sessions[0];
    assert_eq!(
        s.digest_check,
        DigestCheck::Mismatch {
            expected: digest(b"something else"),
            computed: digest(&sent)
        }
    );
    assert!(
        analysis
            .diagnostics
            .iter()
            .any(|d| d.flow_id == Some(3) && d.message.contains("MISMATCH"))
    );
    assert!(
        analysis
            .diagnostics
            .iter()
            .any(|d| d.flow_id == Some(2) && d.message.contains("holds 5 bytes"))
    );
}

#[test]
fn absolute_locations_on_another_host_keep_the_session() {
    let first = FlowBuilder::new(1, "POST", "https://hub.test/v2/me/app/blobs/uploads/")
        .status(202)
        .response_header(
            "Location",
            "https://upload.hub.test/v2/me/app/blobs/uploads/abs-1?_state=x",
        )
        .build();
    let second = FlowBuilder::new(
        2,
        "PATCH",
        "https://upload.hub.test/v2/me/app/blobs/uploads/abs-1?_state=x",
    )
    .request_body(b"abc")
    .status(202)
    .build();
    let analysis = run(&[first, second]);
    assert_eq!(analysis.sessions.len(), 1);
    assert_eq!(analysis.sessions[0].flow_ids, vec![1, 2]);
    // `x` is no _state: said, not fatal.
    assert!(
        analysis
            .flow(2)
            .unwrap()
            .annotations
            .iter()
            .any(|a| a.label == AnnotationKind::State && a.severity == Severity::Warning)
    );
}

#[test]
fn gzip_error_bodies_and_rate_limits() {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}"#).unwrap();
    let body = gz.finish().unwrap();
    let flow = FlowBuilder::new(
        1,
        "GET",
        "https://registry-1.docker.io/v2/library/alpine/manifests/latest",
    )
    .request_header("Authorization", "Bearer x")
    .status(429)
    .response_header("Content-Encoding", "gzip")
    .response_header("ratelimit-limit", "100;w=21600")
    .response_header("ratelimit-remaining", "0;w=21600")
    .response_header("docker-ratelimit-source", "203.0.113.9")
    .response_body(&body)
    .build();
    let analysis = run(&[flow]);
    let f = analysis.flow(1).unwrap();
    assert_eq!(f.registry_errors[0].code, "TOOMANYREQUESTS");
    let limit = f.rate_limit.as_ref().unwrap();
    assert_eq!(
        (limit.limit, limit.remaining, limit.window_seconds),
        (Some(100), Some(0), Some(21600))
    );
    assert!(
        f.annotations.iter().any(
            |a| a.text == "rate limit: 0 of 100 requests left per 6 h, counted for 203.0.113.9"
        )
    );
    match &analysis.operations[0].status {
        OperationStatus::Failed { reason } => assert!(reason.contains("rate limit"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_flows_are_kept_and_shown() {
    let flows = vec![
        FlowBuilder::new(1, "GET", "https://example.test/index.html")
            .status(200)
            .build(),
        FlowBuilder::new(2, "GET", "https://example.test/favicon.ico")
            .status(404)
            .build(),
        FlowBuilder::new(
            3,
            "OPTIONS",
            &format!("{REGISTRY}/v2/lab/seq/manifests/latest"),
        )
        .status(405)
        .build(),
    ];
    let analysis = run(&flows);
    assert_eq!(analysis.flows.len(), 3);
    assert!(analysis.flows.iter().all(|f| f.kind == FlowKind::Unknown));
    let all: Vec<u64> = analysis
        .operations
        .iter()
        .flat_map(|o| o.flow_ids.clone())
        .collect();
    assert_eq!(all.len(), 3);
    assert_eq!(analysis.operations[0].title, "requests to example.test");
    let text = regtap_decode::render_text(&analysis, &flows, false);
    assert!(
        text.contains("OPTIONS registry.test:5000/v2/lab/seq/manifests/latest: 405"),
        "{text}"
    );
}

#[test]
fn colour_only_when_asked() {
    let flows = login(1, 0);
    let analysis = run(&flows);
    let plain = regtap_decode::render_text(&analysis, &flows, false);
    let coloured = regtap_decode::render_text(&analysis, &flows, true);
    assert!(!plain.contains('\x1b'));
    assert!(coloured.contains("\x1b[32msucceeded\x1b[0m"));
    assert!(plain.contains("1. login registry.test:5000 — succeeded"));
}

#[test]
fn multi_arch_pull_follows_the_index_to_one_platform() {
    let image = Image::new();
    let manifest = image.manifest();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
          {{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":{},"digest":"{}","platform":{{"architecture":"amd64","os":"linux"}}}},
          {{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":10,"digest":"sha256:{}","platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}]}}"#,
        manifest.len(),
        digest(&manifest),
        "a".repeat(64)
    );
    let (t, token) = token(
        2,
        10,
        &["repository:library/app:pull"],
        &[("library/app", &["pull"])],
    );
    let a = bearer(&token);
    let get = |id: u64, ms: i64, reference: &str, body: &[u8], media: &str| {
        FlowBuilder::new(
            id,
            "GET",
            &format!("{REGISTRY}/v2/library/app/manifests/{reference}"),
        )
        .start_ns(at(ms))
        .request_header("Authorization", &a)
        .status(200)
        .response_header("Content-Type", media)
        .response_header("Docker-Content-Digest", &digest(body))
        .response_body(body)
        .build()
    };
    let mut flows = vec![
        ping(1, 0, REGISTRY),
        t,
        get(
            3,
            20,
            "v1",
            index.as_bytes(),
            "application/vnd.oci.image.index.v1+json",
        ),
        get(
            4,
            30,
            &digest(&manifest),
            &manifest,
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
    ];
    flows.push(blob_get(5, 40, REGISTRY, "library/app", &image.config, &a));
    let analysis = run(&flows);
    assert_eq!(titles(&analysis), vec!["pull library/app:v1"]);
    assert_eq!(analysis.operations[0].status, OperationStatus::Succeeded);
    let index = analysis.flow(3).unwrap().manifest.as_ref().unwrap();
    assert_eq!(index.manifests.len(), 2);
    assert_eq!(index.manifests[0].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(index.manifests[0].blob_status, BlobStatus::Downloaded);
    assert_eq!(index.manifests[0].blob_flow_ids, vec![4]);
    assert_eq!(index.manifests[1].blob_status, BlobStatus::Unknown);
    let platform = analysis.flow(4).unwrap().manifest.as_ref().unwrap();
    assert_eq!(
        platform.config.as_ref().unwrap().blob_status,
        BlobStatus::Downloaded
    );
    assert!(
        analysis
            .flow(3)
            .unwrap()
            .summary
            .contains("OCI index of 2 manifest(s): linux/amd64, linux/arm64/v8")
    );
}

#[test]
fn upload_status_and_cancel_belong_to_the_session() {
    let a = "Bearer t";
    let status = FlowBuilder::new(
        3,
        "GET",
        &format!("{REGISTRY}/v2/lab/seq/blobs/uploads/u-7"),
    )
    .start_ns(at(30))
    .request_header("Authorization", a)
    .status(204)
    .response_header("Range", "0-2")
    .response_header("Docker-Upload-UUID", "u-7")
    .build();
    let cancel = FlowBuilder::new(
        4,
        "DELETE",
        &format!("{REGISTRY}/v2/lab/seq/blobs/uploads/u-7"),
    )
    .start_ns(at(40))
    .request_header("Authorization", a)
    .status(204)
    .build();
    let flows = vec![
        upload_start(1, 0, REGISTRY, "lab/seq", "u-7", a),
        upload_chunk(2, 10, REGISTRY, "lab/seq", "u-7", a, b"abc"),
        status,
        cancel,
    ];
    let analysis = run(&flows);
    assert_eq!(analysis.sessions.len(), 1);
    let s = &analysis.sessions[0];
    assert_eq!(s.flow_ids, vec![1, 2, 3, 4]);
    assert_eq!(s.outcome, SessionOutcome::Cancelled);
    assert_eq!(s.total_bytes, 3);
    assert!(matches!(s.digest_check, DigestCheck::NotVerifiable { .. }));
    assert_eq!(analysis.flow(3).unwrap().kind.label(), "upload-status");
    assert_eq!(analysis.flow(4).unwrap().kind.label(), "upload-cancel");
    assert!(
        analysis.operations[0]
            .steps
            .iter()
            .any(|s| s.explanation.contains("cancelled after 3 B"))
    );
    assert!(
        analysis.diagnostics.is_empty(),
        "{:#?}",
        analysis.diagnostics
    );
}

#[test]
fn bytes_in_the_body_store_are_named_in_the_reason() {
    let mut flows = vec![upload_start(1, 0, REGISTRY, "lab/seq", "u-8", "Bearer t")];
    for (id, range) in [(2u64, "0-9"), (3, "10-19")] {
        let mut chunk = FlowBuilder::new(
            id,
            "PATCH",
            &format!("{REGISTRY}/v2/lab/seq/blobs/uploads/u-8"),
        )
        .start_ns(at(id as i64 * 10))
        .request_header("Content-Range", range)
        .request_body_summary(10, &sha256(b"0123456789"))
        .status(202)
        .build();
        chunk.request.body.elsewhere = Some(Elsewhere::BodyStore(format!(
            "sha256/{}",
            sha256(b"0123456789")
        )));
        flows.push(chunk);
    }
    flows.push(upload_finish(
        4,
        40,
        REGISTRY,
        "lab/seq",
        "u-8",
        "Bearer t",
        20,
        &digest(b"01234567890123456789"),
    ));
    let analysis = run(&flows);
    match &analysis.sessions[0].digest_check {
        DigestCheck::NotVerifiable { reason } => assert!(reason.contains("body store"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_pull_started_during_a_push_is_its_own_operation() {
    let image = Image::new();
    // The push of lab/seq runs from 0 to 251 ms; a pull of lab/other starts at 100 ms.
    let mut flows = first_push(&image, 1, 0);
    let (t, token) = token(
        102,
        110,
        &["repository:lab/other:pull"],
        &[("lab/other", &["pull"])],
    );
    let a = bearer(&token);
    flows.push(ping(101, 100, REGISTRY));
    flows.push(t);
    flows.push(
        FlowBuilder::new(103, "GET", &format!("{REGISTRY}/v2/lab/other/manifests/v2"))
            .start_ns(at(120))
            .request_header("Authorization", &a)
            .status(200)
            .response_header(
                "Content-Type",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            .response_body(&image.manifest())
            .build(),
    );
    flows.push(blob_get(104, 130, REGISTRY, "lab/other", &image.config, &a));
    let analysis = run(&flows);
    assert_eq!(
        titles(&analysis),
        vec!["push lab/seq:latest", "pull lab/other:v2"]
    );
    assert_eq!(analysis.operations[0].flow_ids.len(), 20);
    assert_eq!(analysis.operations[1].flow_ids, vec![101, 102, 103, 104]);
    assert!(
        analysis
            .operations
            .iter()
            .all(|o| o.status == OperationStatus::Succeeded)
    );
}

#[test]
fn a_push_run_again_after_an_abort_is_a_second_operation() {
    let image = Image::new();
    // The first attempt stops after its PATCHes (Ctrl-C): no PUT, no manifest.
    let aborted: Vec<Flow> = first_push(&image, 1, 0)
        .into_iter()
        .filter(|f| f.id <= 8)
        .collect();
    let mut flows = aborted;
    flows.extend(first_push(&image, 101, 5_000));
    let analysis = run(&flows);
    assert_eq!(
        titles(&analysis),
        vec!["push lab/seq", "push lab/seq:latest"]
    );
    assert_eq!(analysis.operations[0].status, OperationStatus::Incomplete);
    assert_eq!(
        analysis.operations[0].flow_ids,
        (1..=8).collect::<Vec<u64>>()
    );
    assert_eq!(analysis.operations[1].status, OperationStatus::Succeeded);
    assert_eq!(analysis.operations[1].flow_ids.len(), 20);
}

#[test]
fn linking_split_among_threads_gives_the_analysis_of_one_thread() {
    // Enough flows and operations that the passes which treat each alone
    // are split.
    let flows = reference_repeated(100);
    let analysis_on = |threads: usize| {
        let mut analyzer = Analyzer::new(Options::default());
        for flow in &flows {
            analyzer.push(flow);
        }
        analyzer.finish_on(threads)
    };
    let one = analysis_on(1);
    assert!(
        one.operations.len() > 600,
        "{} operations",
        one.operations.len()
    );
    for threads in [2, 3] {
        assert!(analysis_on(threads) == one, "{threads} threads");
    }
}
