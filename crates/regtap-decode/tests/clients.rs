//! Operations that hold for every client, and verdicts that never contradict
//! the registry: sequences modelled on what ctr, crane, oras, python-dxf,
//! the OCI conformance suite and go-containerregistry's registry sent
//! (`captures/` holds the real captures; these are the same shapes, small).

use regtap_fixtures as common;

use regtap_capture::factory::FlowBuilder;
use regtap_capture::{Flow, FlowError};
use regtap_decode::{
    Analysis, DigestCheck, OperationKind, OperationStatus, Options, SessionOutcome, analyze,
};

use common::{REGISTRY, at, digest, sha256};

const CTR: &str = "containerd/1.6.20~ds1";
const CRANE: &str = "go-containerregistry";
const GO: &str = "Go-http-client/2.0";
const REQUESTS: &str = "python-requests/2.34.2";
const CURL: &str = "curl/7.88.1";

fn run(flows: &[Flow]) -> Analysis {
    analyze(flows, &Options::default())
}

/// Every flow is in exactly one operation.
fn assert_partition(analysis: &Analysis) {
    for f in &analysis.flows {
        let holders: Vec<usize> = analysis
            .operations
            .iter()
            .filter(|o| o.flow_ids.contains(&f.flow_id))
            .map(|o| o.index)
            .collect();
        assert_eq!(
            holders.len(),
            1,
            "flow #{} is in operations {holders:?}",
            f.flow_id
        );
    }
}

/// `(title, client program)` of each operation.
fn summary(analysis: &Analysis) -> Vec<(String, String)> {
    analysis
        .operations
        .iter()
        .map(|o| {
            (
                o.title.clone(),
                o.client
                    .as_ref()
                    .map(|c| c.program.clone())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn no_mismatch(analysis: &Analysis) {
    for s in &analysis.sessions {
        assert!(
            !matches!(s.digest_check, DigestCheck::Mismatch { .. }),
            "session {} says {:?}",
            s.index,
            s.digest_check
        );
    }
    for f in &analysis.flows {
        if let Some(d) = &f.download {
            assert!(
                !matches!(d.verdict, DigestCheck::Mismatch { .. }),
                "flow #{} says {:?}",
                f.flow_id,
                d.verdict
            );
        }
    }
}

fn url(path: &str) -> String {
    format!("{REGISTRY}{path}")
}

/// A pull as containerd does it (no `/v2/` ping): HEAD by tag, GET by digest, blob GETs.
fn ctr_pull(first: u64, ms: i64, conn: &str, manifest: &[u8], blobs: &[&[u8]]) -> Vec<Flow> {
    let md = digest(manifest);
    let mut flows = vec![
        FlowBuilder::new(first, "HEAD", &url("/v2/lab/app/manifests/v1"))
            .client(conn, CTR)
            .start_ns(at(ms))
            .status(200)
            .response_header("Docker-Content-Digest", &md)
            .build(),
        FlowBuilder::new(
            first + 1,
            "GET",
            &url(&format!("/v2/lab/app/manifests/{md}")),
        )
        .client(conn, CTR)
        .start_ns(at(ms + 2))
        .status(200)
        .response_header(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .response_header("Docker-Content-Digest", &md)
        .response_body(manifest)
        .build(),
    ];
    for (n, blob) in blobs.iter().enumerate() {
        flows.push(
            FlowBuilder::new(
                first + 2 + n as u64,
                "GET",
                &url(&format!("/v2/lab/app/blobs/{}", digest(blob))),
            )
            .client(conn, CTR)
            .start_ns(at(ms + 4 + n as i64))
            .status(200)
            .response_body(blob)
            .build(),
        );
    }
    flows
}

fn image() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = vec![7u8; 300];
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":300,"digest":"{}"}}]}}"#,
        config.len(),
        digest(&config),
        digest(&layer)
    )
    .into_bytes();
    (manifest, config, layer)
}

#[test]
fn ping_less_pulls_of_several_programs_are_separate_operations() {
    let (manifest, config, layer) = image();
    let mut flows = ctr_pull(1, 0, "127.0.0.1:40001", &manifest, &[&config, &layer]);
    // Right after, a requests script and curl fetch the same image.
    let md = digest(&manifest);
    flows.push(
        FlowBuilder::new(10, "GET", &url("/v2/lab/app/manifests/v1"))
            .client("127.0.0.1:40010", REQUESTS)
            .start_ns(at(20))
            .status(200)
            .response_header("Docker-Content-Digest", &md)
            .response_body(&manifest)
            .build(),
    );
    flows.push(
        FlowBuilder::new(
            11,
            "GET",
            &url(&format!("/v2/lab/app/blobs/{}", digest(&layer))),
        )
        .client("127.0.0.1:40011", REQUESTS)
        .start_ns(at(22))
        .status(200)
        .response_body(&layer)
        .build(),
    );
    for (id, range, ms) in [(12, (0, 149), 25), (13, (150, 299), 26)] {
        let part = layer.get(range.0..=range.1).unwrap_or_default();
        flows.push(
            FlowBuilder::new(
                id,
                "GET",
                &url(&format!("/v2/lab/app/blobs/{}", digest(&layer))),
            )
            .client(&format!("127.0.0.1:4002{id}"), CURL)
            .request_header("Range", &format!("bytes={}-{}", range.0, range.1))
            .start_ns(at(ms))
            .status(206)
            .response_header(
                "Content-Range",
                &format!("bytes {}-{}/300", range.0, range.1),
            )
            .response_body(part)
            .build(),
        );
    }
    let analysis = run(&flows);
    assert_partition(&analysis);
    no_mismatch(&analysis);
    assert_eq!(
        summary(&analysis),
        vec![
            ("pull lab/app:v1".to_owned(), "containerd".to_owned()),
            ("pull lab/app:v1".to_owned(), "python-requests".to_owned()),
            ("pull lab/app".to_owned(), "curl".to_owned()),
        ]
    );
    // Every whole body fetched by digest is checked against it.
    for id in [2, 3, 4, 11] {
        let check = analysis.flow(id).and_then(|f| f.download.as_ref());
        assert_eq!(
            check.map(|c| &c.verdict),
            Some(&DigestCheck::Verified),
            "flow #{id}"
        );
    }
    // curl's two ranges are one download, which covers the blob and hashes to it.
    let curl = &analysis.operations[2];
    assert_eq!(curl.steps.len(), 1, "{:?}", curl.steps);
    assert!(
        curl.steps[0]
            .explanation
            .contains("in 2 requests (0..150, 150..300)"),
        "{}",
        curl.steps[0].explanation
    );
    assert_eq!(
        analysis
            .flow(13)
            .and_then(|f| f.download.as_ref())
            .map(|d| &d.verdict),
        Some(&DigestCheck::Verified)
    );
}

#[test]
fn the_same_ping_less_client_pulling_twice_is_two_operations() {
    let (manifest, config, layer) = image();
    let mut flows = ctr_pull(1, 0, "127.0.0.1:40001", &manifest, &[&config, &layer]);
    // `ctr pull` again 30 ms later: a new process, new connections.
    flows.extend(ctr_pull(
        10,
        30,
        "127.0.0.1:40002",
        &manifest,
        &[&config, &layer],
    ));
    let analysis = run(&flows);
    assert_partition(&analysis);
    assert_eq!(analysis.operations.len(), 2, "{:?}", summary(&analysis));
    assert_eq!(analysis.operations[0].flow_ids, vec![1, 2, 3, 4]);
    assert_eq!(analysis.operations[1].flow_ids, vec![10, 11, 12, 13]);
}

#[test]
fn clients_in_parallel_never_share_an_operation() {
    let (manifest, config, layer) = image();
    // Two programs interleaved request by request on the same repository.
    let a = ctr_pull(1, 0, "127.0.0.1:40001", &manifest, &[&config, &layer]);
    let b: Vec<Flow> = ctr_pull(10, 1, "127.0.0.1:40002", &manifest, &[&config, &layer])
        .into_iter()
        .map(|mut f| {
            f.request
                .headers
                .0
                .retain(|h| !h.0.eq_ignore_ascii_case("user-agent"));
            f.request.headers.push("User-Agent", "skopeo/1.9.3");
            f
        })
        .collect();
    let flows: Vec<Flow> = a.into_iter().chain(b).collect();
    let analysis = run(&flows);
    assert_partition(&analysis);
    let programs: Vec<String> = summary(&analysis).into_iter().map(|(_, p)| p).collect();
    assert_eq!(programs, vec!["containerd", "skopeo"]);
    assert_eq!(analysis.operations[1].flow_ids, vec![10, 11, 12, 13]);
}

#[test]
fn crane_copy_is_one_copy_operation_and_its_go_pings_are_crane() {
    let (manifest, config, _) = image();
    let md = digest(&manifest);
    let conn = "127.0.0.1:50001";
    let flows = vec![
        FlowBuilder::new(1, "GET", &url("/v2/"))
            .client(conn, GO)
            .start_ns(at(0))
            .status(200)
            .build(),
        FlowBuilder::new(2, "GET", &url("/v2/crane/img/manifests/1"))
            .client(conn, CRANE)
            .start_ns(at(1))
            .status(200)
            .response_header(
                "Content-Type",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            .response_body(&manifest)
            .build(),
        FlowBuilder::new(3, "GET", &url("/v2/"))
            .client(conn, GO)
            .start_ns(at(3))
            .status(200)
            .build(),
        FlowBuilder::new(
            4,
            "GET",
            &url(&format!("/v2/crane/img/blobs/{}", digest(&config))),
        )
        .client(conn, CRANE)
        .start_ns(at(4))
        .status(200)
        .response_body(&config)
        .build(),
        FlowBuilder::new(
            5,
            "POST",
            &url(&format!(
                "/v2/crane/copy/blobs/uploads/?from=crane%2Fimg&mount={}",
                digest(&config).replace(':', "%3A")
            )),
        )
        .client(conn, CRANE)
        .start_ns(at(5))
        .status(201)
        .response_header(
            "Location",
            &format!("/v2/crane/copy/blobs/{}", digest(&config)),
        )
        .build(),
        FlowBuilder::new(6, "PUT", &url("/v2/crane/copy/manifests/2"))
            .client(conn, CRANE)
            .request_header(
                "Content-Type",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            .request_body(&manifest)
            .start_ns(at(8))
            .status(201)
            .response_header("Docker-Content-Digest", &md)
            .build(),
        // `crane ls` right after: a new process, a new connection.
        FlowBuilder::new(7, "GET", &url("/v2/"))
            .client("127.0.0.1:50002", GO)
            .start_ns(at(30))
            .status(200)
            .build(),
        FlowBuilder::new(8, "GET", &url("/v2/crane/copy/tags/list"))
            .client("127.0.0.1:50002", CRANE)
            .start_ns(at(31))
            .status(200)
            .response_body(br#"{"name":"crane/copy","tags":["2"]}"#)
            .build(),
    ];
    let analysis = run(&flows);
    assert_partition(&analysis);
    assert_eq!(
        summary(&analysis),
        vec![
            (
                "copy crane/img:1 → crane/copy:2".to_owned(),
                "go-containerregistry".to_owned()
            ),
            (
                "list tags of crane/copy".to_owned(),
                "go-containerregistry".to_owned()
            ),
        ]
    );
    assert!(matches!(
        &analysis.operations[0].kind,
        OperationKind::Copy { source_repository, repository, .. }
            if source_repository == "crane/img" && repository == "crane/copy"
    ));
    assert_eq!(analysis.operations[0].status, OperationStatus::Succeeded);
    // The ping carried Go's library name, but it is crane's.
    assert_eq!(
        analysis
            .flow(1)
            .and_then(|f| f.client.as_ref())
            .map(|c| c.program.as_str()),
        Some("go-containerregistry")
    );
}

#[test]
fn a_post_body_answered_202_and_refused_chunks_are_not_part_of_the_upload() {
    let blob = b"conformance blob bytes".to_vec();
    let d = digest(&blob);
    let conn = "127.0.0.1:45968";
    let upload = |id| format!("/v2/c/repo/blobs/uploads/u-{id}");
    let flows = vec![
        // distribution ignores the body of a POST ?digest= and answers 202.
        FlowBuilder::new(
            1,
            "POST",
            &url(&format!(
                "/v2/c/repo/blobs/uploads/?digest={}",
                d.replace(':', "%3A")
            )),
        )
        .client(conn, GO)
        .request_body(&blob)
        .start_ns(at(0))
        .status(202)
        .response_header("Location", &upload(1))
        .build(),
        FlowBuilder::new(
            2,
            "PUT",
            &url(&format!("{}?digest={}", upload(1), d.replace(':', "%3A"))),
        )
        .client(conn, GO)
        .request_body(&blob)
        .start_ns(at(2))
        .status(201)
        .build(),
        // A chunked upload whose second chunk is refused (416) and re-sent.
        FlowBuilder::new(3, "POST", &url("/v2/c/repo/blobs/uploads/"))
            .client(conn, GO)
            .start_ns(at(4))
            .status(202)
            .response_header("Location", &upload(3))
            .build(),
        FlowBuilder::new(4, "PATCH", &url(&upload(3)))
            .client(conn, GO)
            .request_header("Content-Range", "0-9")
            .request_body(blob.get(..10).unwrap_or_default())
            .start_ns(at(5))
            .status(202)
            .response_header("Range", "0-9")
            .response_header("Location", &upload(3))
            .build(),
        FlowBuilder::new(5, "PATCH", &url(&upload(3)))
            .client(conn, GO)
            .request_header("Content-Range", "5-21")
            .request_body(blob.get(5..).unwrap_or_default())
            .start_ns(at(6))
            .status(416)
            .build(),
        FlowBuilder::new(6, "PATCH", &url(&upload(3)))
            .client(conn, GO)
            .request_header("Content-Range", "10-21")
            .request_body(blob.get(10..).unwrap_or_default())
            .start_ns(at(7))
            .status(202)
            .response_header("Range", "0-21")
            .response_header("Location", &upload(3))
            .build(),
        FlowBuilder::new(
            7,
            "PUT",
            &url(&format!("{}?digest={}", upload(3), d.replace(':', "%3A"))),
        )
        .client(conn, GO)
        .start_ns(at(8))
        .status(201)
        .build(),
    ];
    let analysis = run(&flows);
    assert_partition(&analysis);
    assert_eq!(analysis.sessions.len(), 2);
    for s in &analysis.sessions {
        assert_eq!(s.outcome, SessionOutcome::Completed);
        assert_eq!(s.digest_check, DigestCheck::Verified, "session {}", s.index);
        assert_eq!(s.total_bytes, blob.len() as u64);
    }
    assert!(
        analysis
            .diagnostics
            .iter()
            .all(|d| !d.message.contains("MISMATCH")),
        "{:?}",
        analysis.diagnostics
    );
}

#[test]
fn a_real_mismatch_names_both_digests_but_an_unanswered_chunk_is_uncertain() {
    let blob = b"the bytes the client sent".to_vec();
    let claimed = digest(b"something else entirely");
    let conn = "127.0.0.1:45969";
    let session = |first: u64, answered: bool| {
        let upload = format!("/v2/c/repo/blobs/uploads/u-{first}");
        let mut patch = FlowBuilder::new(first + 1, "PATCH", &url(&upload))
            .client(conn, GO)
            .request_body(&blob)
            .start_ns(at(first as i64 * 10 + 1));
        patch = if answered {
            patch.status(202).response_header("Location", &upload)
        } else {
            patch.error(FlowError {
                stage: regtap_capture::ErrorStage::Response,
                message: "upstream reset".to_owned(),
            })
        };
        vec![
            FlowBuilder::new(first, "POST", &url("/v2/c/repo/blobs/uploads/"))
                .client(conn, GO)
                .start_ns(at(first as i64 * 10))
                .status(202)
                .response_header("Location", &upload)
                .build(),
            patch.build(),
            FlowBuilder::new(
                first + 2,
                "PUT",
                &url(&format!("{upload}?digest={}", claimed.replace(':', "%3A"))),
            )
            .client(conn, GO)
            .start_ns(at(first as i64 * 10 + 2))
            .status(201)
            .build(),
        ]
    };
    let mut flows = session(1, true);
    flows.extend(session(11, false));
    let analysis = run(&flows);
    assert_eq!(
        analysis.sessions[0].digest_check,
        DigestCheck::Mismatch {
            expected: claimed.clone(),
            computed: digest(&blob)
        }
    );
    match &analysis.sessions[1].digest_check {
        DigestCheck::NotVerifiable { reason } => {
            assert!(reason.contains("got no answer"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sha512_uploads_and_downloads_are_verified_from_the_bytes() {
    use sha2::Digest as _;
    let blob = b"sha512 blob".to_vec();
    let d = format!("sha512:{}", hex::encode(sha2::Sha512::digest(&blob)));
    let flows = vec![
        FlowBuilder::new(
            1,
            "POST",
            &url(&format!(
                "/v2/c/repo/blobs/uploads/?digest={}",
                d.replace(':', "%3A")
            )),
        )
        .request_body(&blob)
        .status(201)
        .response_header("Location", &format!("/v2/c/repo/blobs/{d}"))
        .build(),
        FlowBuilder::new(2, "GET", &url(&format!("/v2/c/repo/blobs/{d}")))
            .status(200)
            .response_header("Docker-Content-Digest", &d)
            .response_body(&blob)
            .build(),
    ];
    let analysis = run(&flows);
    assert_eq!(analysis.sessions[0].digest_check, DigestCheck::Verified);
    assert_eq!(
        analysis
            .flow(2)
            .and_then(|f| f.download.as_ref())
            .map(|c| &c.verdict),
        Some(&DigestCheck::Verified)
    );
}

#[test]
fn a_body_that_is_not_the_digest_asked_for_is_a_download_mismatch() {
    let served = b"not what was asked".to_vec();
    let asked = digest(b"what was asked");
    let flows = vec![
        FlowBuilder::new(1, "GET", &url(&format!("/v2/c/repo/blobs/{asked}")))
            .status(200)
            .response_body(&served)
            .build(),
    ];
    let analysis = run(&flows);
    assert_eq!(
        analysis
            .flow(1)
            .and_then(|f| f.download.as_ref())
            .map(|c| c.verdict.clone()),
        Some(DigestCheck::Mismatch {
            expected: asked,
            computed: digest(&served)
        })
    );
    // A blob known only by its size and hash is still checked.
    let flows = vec![
        FlowBuilder::new(
            1,
            "GET",
            &url(&format!("/v2/c/repo/blobs/{}", digest(&served))),
        )
        .status(200)
        .response_body_summary(served.len() as u64, &sha256(&served))
        .build(),
    ];
    assert_eq!(
        run(&flows)
            .flow(1)
            .and_then(|f| f.download.as_ref())
            .map(|c| c.verdict.clone()),
        Some(DigestCheck::Verified)
    );
}

#[test]
fn olareg_and_ggcr_upload_answers_are_understood() {
    let blob = b"ggcr blob".to_vec();
    let d = digest(&blob);
    let flows = vec![
        // ggcr: a digest POST completes with 201 and no Location.
        FlowBuilder::new(
            1,
            "POST",
            &url(&format!(
                "/v2/g/repo/blobs/uploads/?digest={}",
                d.replace(':', "%3A")
            )),
        )
        .request_body(&blob)
        .status(201)
        .build(),
        // olareg: an empty session says `Range: 0--1`; ggcr answers PATCH with 204.
        FlowBuilder::new(2, "POST", &url("/v2/g/repo/blobs/uploads/"))
            .status(202)
            .response_header(
                "Location",
                "/v2/g/repo/blobs/uploads/77?state=eyJvZmZzZXQiOjB9",
            )
            .response_header("Range", "0--1")
            .build(),
        FlowBuilder::new(
            3,
            "PATCH",
            &url("/v2/g/repo/blobs/uploads/77?state=eyJvZmZzZXQiOjB9"),
        )
        .request_body(&blob)
        .status(204)
        .response_header("Location", "/v2/g/repo/blobs/uploads/77")
        .response_header("Range", "0-8")
        .build(),
        FlowBuilder::new(
            4,
            "PUT",
            &url(&format!(
                "/v2/g/repo/blobs/uploads/77?digest={}",
                d.replace(':', "%3A")
            )),
        )
        .status(201)
        .build(),
    ];
    let analysis = run(&flows);
    assert_eq!(analysis.sessions.len(), 2);
    for s in &analysis.sessions {
        assert_eq!(s.outcome, SessionOutcome::Completed);
        assert_eq!(s.digest_check, DigestCheck::Verified);
    }
    assert!(
        analysis.diagnostics.is_empty(),
        "{:?}",
        analysis.diagnostics
    );
}

#[test]
fn an_artifact_push_with_the_referrers_fallback_is_one_push_of_its_tag() {
    let subject = format!("sha256:{}", "cd".repeat(32));
    let fallback = format!("sha256-{}", "cd".repeat(32));
    let artifact = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"SUBJECT","size":100}}"#
        .to_vec();
    let artifact = String::from_utf8_lossy(&artifact)
        .replace("SUBJECT", &subject)
        .into_bytes();
    let conn = "127.0.0.1:47000";
    let oras = "oras/1.2.0";
    let flows = vec![
        FlowBuilder::new(1, "PUT", &url("/v2/a/repo/manifests/sig"))
            .client(conn, oras)
            .request_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .request_body(&artifact)
            .status(201)
            .build(),
        FlowBuilder::new(2, "GET", &url(&format!("/v2/a/repo/referrers/{subject}")))
            .client(conn, oras)
            .start_ns(at(3))
            .status(404)
            .build(),
        FlowBuilder::new(3, "GET", &url(&format!("/v2/a/repo/manifests/{fallback}")))
            .client(conn, oras)
            .start_ns(at(4))
            .status(404)
            .build(),
        FlowBuilder::new(4, "PUT", &url(&format!("/v2/a/repo/manifests/{fallback}")))
            .client(conn, oras)
            .start_ns(at(5))
            .request_header("Content-Type", "application/vnd.oci.image.index.v1+json")
            .request_body(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#)
            .status(201)
            .build(),
    ];
    let analysis = run(&flows);
    assert_partition(&analysis);
    assert_eq!(
        summary(&analysis),
        vec![("push a/repo:sig".to_owned(), "oras-go".to_owned())]
    );
    assert_eq!(analysis.operations[0].status, OperationStatus::Succeeded);
}

#[test]
fn a_long_single_connection_run_splits_at_finished_pushes_and_deletions() {
    let conn = "127.0.0.1:45968";
    let blob = b"x".to_vec();
    let d = digest(&blob);
    let manifest = b"{}".to_vec();
    let mut flows = Vec::new();
    let mut id = 0u64;
    let mut next = |method: &str, path: &str, status: u16, body: &[u8]| {
        id += 1;
        FlowBuilder::new(id, method, &url(path))
            .client(conn, GO)
            .request_body(body)
            .start_ns(at(id as i64))
            .status(status)
            .build()
    };
    let put_digest = format!("/v2/c/repo/blobs/uploads/?digest={}", d.replace(':', "%3A"));
    flows.push(next("POST", &put_digest, 201, &blob));
    flows.push(next("PUT", "/v2/c/repo/manifests/one", 201, &manifest));
    flows.push(next("DELETE", &format!("/v2/c/repo/blobs/{d}"), 202, b""));
    // Checking that the blob is gone belongs to the deletion.
    flows.push(next("HEAD", &format!("/v2/c/repo/blobs/{d}"), 404, b""));
    flows.push(next("POST", &put_digest, 201, &blob));
    flows.push(next("PUT", "/v2/c/repo/manifests/two", 201, &manifest));
    let analysis = run(&flows);
    assert_partition(&analysis);
    let titles: Vec<String> = summary(&analysis).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        titles,
        vec!["push c/repo:one", "delete in c/repo", "push c/repo:two"]
    );
    assert!(
        analysis
            .operations
            .iter()
            .all(|o| o.status == OperationStatus::Succeeded),
        "{:?}",
        analysis
            .operations
            .iter()
            .map(|o| &o.status)
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_client_with_a_connection_per_request_is_split_where_it_went_idle() {
    // python-dxf `push-blob` twice: HEAD, POST, PUT each on a new
    // connection, milliseconds apart; the second command 150 ms later.
    let push_blob = |first: u64, ms: i64, blob: &[u8]| {
        let d = digest(blob);
        let upload = format!("/v2/dxf/repo/blobs/uploads/u-{first}");
        vec![
            FlowBuilder::new(first, "HEAD", &url(&format!("/v2/dxf/repo/blobs/{d}")))
                .client(&format!("127.0.0.1:{}", 33000 + first), REQUESTS)
                .start_ns(at(ms))
                .status(404)
                .build(),
            FlowBuilder::new(first + 1, "POST", &url("/v2/dxf/repo/blobs/uploads/"))
                .client(&format!("127.0.0.1:{}", 33001 + first), REQUESTS)
                .start_ns(at(ms + 7))
                .status(202)
                .response_header("Location", &upload)
                .build(),
            FlowBuilder::new(
                first + 2,
                "PUT",
                &url(&format!("{upload}?digest={}", d.replace(':', "%3A"))),
            )
            .client(&format!("127.0.0.1:{}", 33002 + first), REQUESTS)
            .request_body(blob)
            .start_ns(at(ms + 15))
            .status(201)
            .build(),
        ]
    };
    let mut flows = push_blob(1, 0, b"first blob");
    flows.extend(push_blob(10, 175, b"second blob"));
    let analysis = run(&flows);
    assert_partition(&analysis);
    assert_eq!(analysis.operations.len(), 2, "{:?}", summary(&analysis));
    assert_eq!(analysis.operations[0].flow_ids, vec![1, 2, 3]);
    assert!(
        analysis.operations[0]
            .title
            .starts_with("push blob sha256:"),
        "{}",
        analysis.operations[0].title
    );
    assert_eq!(analysis.operations[0].status, OperationStatus::Succeeded);
}

#[test]
fn containerd_authenticating_on_its_first_head_is_one_pull() {
    // No ping: the anonymous HEAD by tag gets the 401 and the challenge.
    let (manifest, config, _) = image();
    let md = digest(&manifest);
    let conn = "127.0.0.1:41000";
    let challenge = format!(
        r#"Bearer realm="{}",service="registry.test",scope="repository:lab/app:pull""#,
        common::REALM
    );
    let (token_flow, token) = common::token(
        2,
        3,
        &["repository:lab/app:pull"],
        &[("lab/app", &["pull"])],
    );
    let token_flow = {
        let mut f = token_flow;
        f.client_addr = Some("127.0.0.1:41001".to_owned());
        f.request.headers.push("User-Agent", CTR);
        f
    };
    let auth = common::bearer(&token);
    let flows = vec![
        FlowBuilder::new(1, "HEAD", &url("/v2/lab/app/manifests/v1"))
            .client(conn, CTR)
            .start_ns(at(0))
            .status(401)
            .response_header("WWW-Authenticate", &challenge)
            .build(),
        token_flow,
        FlowBuilder::new(3, "HEAD", &url("/v2/lab/app/manifests/v1"))
            .client(conn, CTR)
            .request_header("Authorization", &auth)
            .start_ns(at(10))
            .status(200)
            .response_header("Docker-Content-Digest", &md)
            .build(),
        FlowBuilder::new(4, "GET", &url(&format!("/v2/lab/app/manifests/{md}")))
            .client(conn, CTR)
            .request_header("Authorization", &auth)
            .start_ns(at(12))
            .status(200)
            .response_body(&manifest)
            .build(),
        FlowBuilder::new(
            5,
            "GET",
            &url(&format!("/v2/lab/app/blobs/{}", digest(&config))),
        )
        .client(conn, CTR)
        .request_header("Authorization", &auth)
        .start_ns(at(14))
        .status(200)
        .response_body(&config)
        .build(),
    ];
    let analysis = run(&flows);
    assert_partition(&analysis);
    assert_eq!(
        summary(&analysis),
        vec![("pull lab/app:v1".to_owned(), "containerd".to_owned())]
    );
    assert_eq!(analysis.operations[0].status, OperationStatus::Succeeded);
}

#[test]
fn a_probe_of_another_repository_belongs_to_the_push_that_mounts_from_it() {
    // skopeo's blob reuse: HEAD the blob in a candidate repository, then
    // mount it from there, with one token scoped for both.
    let (token_flow, token) = common::token(
        1,
        0,
        &["repository:lab/dest:pull,push", "repository:lab/other:pull"],
        &[("lab/dest", &["pull", "push"]), ("lab/other", &["pull"])],
    );
    let auth = common::bearer(&token);
    let skopeo = "skopeo/1.9.3";
    let with_client = |mut f: Flow, port: u16| {
        f.client_addr = Some(format!("127.0.0.1:{port}"));
        f.request.headers.push("User-Agent", skopeo);
        f
    };
    let blob = digest(b"shared layer");
    let flows = vec![
        with_client(token_flow, 42000),
        with_client(
            common::blob_head(2, 10, REGISTRY, "lab/dest", &blob, &auth, 404),
            42001,
        ),
        with_client(
            common::blob_head(3, 11, REGISTRY, "lab/other", &blob, &auth, 200),
            42002,
        ),
        with_client(
            common::mount(4, 12, "lab/dest", &blob, "lab/other", &auth),
            42001,
        ),
    ];
    let analysis = run(&flows);
    assert_partition(&analysis);
    assert_eq!(analysis.operations.len(), 1, "{:?}", summary(&analysis));
    assert!(
        matches!(&analysis.operations[0].kind, OperationKind::Push { repository, .. } if repository == "lab/dest"),
        "{:?}",
        analysis.operations[0].kind
    );
}

#[test]
fn skopeo_copy_between_repositories_is_one_copy() {
    // skopeo copy docker://lab/src:v1 docker://lab/dst:v1: a source and a
    // destination client (own connections, own tokens), the layer streamed
    // from one to the other while the destination uploads it.
    let (manifest, config, layer) = image();
    let skopeo = "skopeo/1.9.3";
    let on = |f: Flow, port: u16| {
        let mut f = f;
        f.client_addr = Some(format!("127.0.0.1:{port}"));
        f.request.headers.push("User-Agent", skopeo);
        f
    };
    let (src_token_flow, src_token) = common::token(
        2,
        2,
        &["repository:lab/src:pull"],
        &[("lab/src", &["pull"])],
    );
    let (dst_token_flow, dst_token) = common::token(
        5,
        12,
        &["repository:lab/dst:pull,push"],
        &[("lab/dst", &["pull", "push"])],
    );
    let src = common::bearer(&src_token);
    let dst = common::bearer(&dst_token);
    let md = digest(&manifest);
    let put_manifest = FlowBuilder::new(12, "PUT", &url("/v2/lab/dst/manifests/v1"))
        .request_header("Authorization", &dst)
        .request_header(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .request_body(&manifest)
        .start_ns(at(60))
        .status(201)
        .response_header("Docker-Content-Digest", &md)
        .build();
    let flows = vec![
        on(common::ping(1, 0, REGISTRY), 50001),
        on(src_token_flow, 50002),
        on(
            FlowBuilder::new(3, "GET", &url("/v2/lab/src/manifests/v1"))
                .request_header("Authorization", &src)
                .start_ns(at(6))
                .status(200)
                .response_body(&manifest)
                .build(),
            50001,
        ),
        on(common::ping(4, 10, REGISTRY), 50003),
        on(dst_token_flow, 50004),
        on(
            common::blob_head(6, 20, REGISTRY, "lab/dst", &digest(&layer), &dst, 404),
            50003,
        ),
        on(
            common::blob_get(7, 22, REGISTRY, "lab/src", &layer, &src),
            50001,
        ),
        on(
            common::upload_start(8, 23, REGISTRY, "lab/dst", "u-1", &dst),
            50003,
        ),
        on(
            common::upload_chunk(9, 30, REGISTRY, "lab/dst", "u-1", &dst, &layer),
            50003,
        ),
        on(
            common::upload_finish(
                10,
                40,
                REGISTRY,
                "lab/dst",
                "u-1",
                &dst,
                layer.len() as u64,
                &digest(&layer),
            ),
            50003,
        ),
        on(
            common::blob_get(11, 45, REGISTRY, "lab/src", &config, &src),
            50001,
        ),
        on(put_manifest, 50003),
    ];
    let analysis = run(&flows);
    assert_partition(&analysis);
    assert_eq!(
        summary(&analysis),
        vec![(
            "copy lab/src:v1 → lab/dst:v1".to_owned(),
            "skopeo".to_owned()
        )]
    );
    assert_eq!(analysis.operations[0].status, OperationStatus::Succeeded);
}

#[test]
fn a_basic_auth_retry_after_a_401_stays_in_its_pull_however_late() {
    // oras-py against a Basic-auth registry, each request on a new
    // connection: a blob GET without credentials gets the 401, and the same
    // GET with them comes back later than the idle gap on a loaded machine.
    let (manifest, config, _) = image();
    let basic = "Basic bGFiOnNlY3JldA=="; // lab:secret
    let challenge = r#"Basic realm="Registry Realm""#;
    let config_url = url(&format!("/v2/lab/py/blobs/{}", digest(&config)));
    let flows = vec![
        FlowBuilder::new(1, "GET", &url("/v2/lab/py/manifests/v1"))
            .client("127.0.0.1:42001", REQUESTS)
            .request_header("Authorization", basic)
            .start_ns(at(0))
            .status(200)
            .response_header(
                "Content-Type",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            .response_header("Docker-Content-Digest", &digest(&manifest))
            .response_body(&manifest)
            .build(),
        FlowBuilder::new(2, "GET", &config_url)
            .client("127.0.0.1:42002", REQUESTS)
            .start_ns(at(20))
            .status(401)
            .response_header("WWW-Authenticate", challenge)
            .build(),
    ];
    let late_get = |credentials: bool| {
        let get = FlowBuilder::new(3, "GET", &config_url).client("127.0.0.1:42003", REQUESTS);
        let get = if credentials {
            get.request_header("Authorization", basic)
        } else {
            get
        };
        get.start_ns(at(450))
            .status(200)
            .response_body(&config)
            .build()
    };
    let flows: Vec<Flow> = flows.into_iter().chain([late_get(true)]).collect();
    let analysis = run(&flows);
    assert_partition(&analysis);
    assert_eq!(
        summary(&analysis),
        vec![("pull lab/py:v1".to_owned(), "python-requests".to_owned())]
    );
    assert_eq!(analysis.operations[0].status, OperationStatus::Succeeded);

    // Without credentials the late request is not that retry: it starts
    // another command.
    let mut unrelated = flows;
    unrelated[2] = late_get(false);
    assert_eq!(run(&unrelated).operations.len(), 2);
}
