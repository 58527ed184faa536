//! Why it failed, and what the protocol around it says: one sequence per row
//! of the protocol coverage map (auth failure reasons, OCI 1.1 artifacts,
//! content negotiation, redirects, Docker Hub quota, pagination, mirrors,
//! warnings), built with the shared flow factory.

use regtap_fixtures as common;

use base64::Engine as _;
use regtap_capture::Flow;
use regtap_capture::factory::FlowBuilder;
use regtap_decode::{
    Analysis, AnnotationKind, DescriptorRole, ManifestPurpose, OperationKind, OperationStatus,
    Options, Severity, analyze,
};

use common::{REALM, REGISTRY, at, bearer, digest, jwt, ping};

fn run(flows: &[Flow]) -> Analysis {
    analyze(flows, &Options::default())
}

/// The texts of a flow's annotations of one kind.
fn notes(analysis: &Analysis, id: u64, kind: AnnotationKind) -> Vec<String> {
    analysis
        .flow(id)
        .map(|f| {
            f.annotations
                .iter()
                .filter(|a| a.label == kind)
                .map(|a| a.text.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn has(analysis: &Analysis, id: u64, kind: AnnotationKind, words: &str) -> bool {
    notes(analysis, id, kind).iter().any(|t| t.contains(words))
}

fn url(path: &str) -> String {
    format!("{REGISTRY}{path}")
}

#[test]
fn docker_hub_and_oauth2_refusals_say_why() {
    let flows = vec![
        ping(1, 0, REGISTRY),
        FlowBuilder::new(
            2,
            "GET",
            &format!("{REALM}?service=registry.test&account=me"),
        )
        .start_ns(at(5))
        .request_header("Authorization", common::BASIC_ALICE)
        .status(401)
        .response_body(br#"{"details":"incorrect username or password"}"#)
        .build(),
    ];
    let analysis = run(&flows);
    assert!(has(
        &analysis,
        2,
        AnnotationKind::RegistryError,
        "incorrect username or password"
    ));
    match &analysis.operations[0].status {
        OperationStatus::Failed { reason } => assert!(reason.contains("refused"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let oauth = run(&[FlowBuilder::new(1, "POST", REALM)
        .request_body(b"grant_type=password&username=me&password=x&client_id=containerd-client")
        .status(400)
        .response_body(br#"{"error":"invalid_grant","error_description":"bad password"}"#)
        .build()]);
    assert!(has(
        &oauth,
        1,
        AnnotationKind::RegistryError,
        "invalid_grant: bad password"
    ));
    assert!(has(
        &oauth,
        1,
        AnnotationKind::Token,
        "client_id containerd-client"
    ));
    // The password never shows.
    assert!(
        oauth
            .flow(1)
            .is_some_and(|f| f.annotations.iter().all(|a| !a.text.contains("password=x")))
    );
}

#[test]
fn html_and_text_error_bodies_are_trimmed_and_cannot_drive_the_terminal() {
    let flows = vec![
        FlowBuilder::new(1, "GET", &url("/v2/lab/app/manifests/v1"))
            .status(502)
            .response_body(b"<html><head><style>p{}</style></head><body><h1>Bad Gateway</h1>\x1b]0;owned\x07</body></html>")
            .build(),
    ];
    let analysis = run(&flows);
    let texts = notes(&analysis, 1, AnnotationKind::RegistryError);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("Bad Gateway"), "{}", texts[0]);
    assert!(
        !texts[0].contains('\x1b') && !texts[0].contains("<h1>"),
        "{}",
        texts[0]
    );
}

#[test]
fn a_bare_405_413_and_a_plain_429_with_retry_after_are_explained() {
    let flows = vec![
        FlowBuilder::new(1, "DELETE", &url("/v2/lab/app/manifests/sha256:aa"))
            .status(405)
            .build(),
        FlowBuilder::new(
            2,
            "PUT",
            &url("/v2/lab/app/blobs/uploads/u?digest=sha256:bb"),
        )
        .status(413)
        .build(),
        FlowBuilder::new(3, "GET", &url("/v2/lab/app/manifests/v1"))
            .status(429)
            .response_header("Retry-After", "60")
            .build(),
    ];
    let analysis = run(&flows);
    assert!(has(
        &analysis,
        1,
        AnnotationKind::RegistryError,
        "does not allow deletes"
    ));
    assert!(has(
        &analysis,
        2,
        AnnotationKind::RegistryError,
        "refused a body this large"
    ));
    assert!(has(
        &analysis,
        3,
        AnnotationKind::RegistryError,
        "abuse limit"
    ));
    assert!(has(
        &analysis,
        3,
        AnnotationKind::RateLimit,
        "Retry-After: 60"
    ));
}

#[test]
fn vendor_codes_are_named_as_the_vendors() {
    let flows = vec![FlowBuilder::new(1, "GET", &url("/v2/lab/app/manifests/v1"))
        .status(412)
        .response_body(br#"{"errors":[{"code":"PROJECTPOLICYVIOLATION","message":"current image with 1 vulnerabilities cannot be pulled"}]}"#)
        .build()];
    let analysis = run(&flows);
    let error = &analysis.flows[0].registry_errors[0];
    assert!(
        error.explanation.starts_with("Harbor's own code"),
        "{}",
        error.explanation
    );
}

#[test]
fn a_token_for_another_audience_is_flagged() {
    // The JWT's aud is registry.test; the client asked for another service.
    let token = jwt(&[("lab/app", &["pull"])], 0, 300);
    let body = serde_json::json!({ "token": token }).to_string();
    let flows = vec![
        FlowBuilder::new(
            1,
            "GET",
            &format!("{REALM}?service=other.registry&scope=repository%3Alab%2Fapp%3Apull"),
        )
        .status(200)
        .response_body(body.as_bytes())
        .build(),
    ];
    let analysis = run(&flows);
    assert!(has(&analysis, 1, AnnotationKind::Token, "another audience"));
}

#[test]
fn containerd_falling_back_from_post_to_get_is_a_working_login() {
    let (get, token) = common::login_token(3, 10);
    let flows = vec![
        ping(1, 0, REGISTRY),
        FlowBuilder::new(2, "POST", REALM)
            .start_ns(at(5))
            .request_body(b"grant_type=password&username=alice&password=x&service=registry.test")
            .status(405)
            .build(),
        get,
        common::ping_ok(4, 20, REGISTRY, &bearer(&token)),
    ];
    let analysis = run(&flows);
    assert_eq!(analysis.operations.len(), 1);
    assert_eq!(analysis.operations[0].status, OperationStatus::Succeeded);
    assert!(has(
        &analysis,
        2,
        AnnotationKind::Token,
        "fell back to GET (flow #3), which worked"
    ));
}

#[test]
fn cloud_users_and_an_expired_ecr_password_are_explained() {
    let basic = |user: &str, password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    // The ECR password says when it expires (before this request).
    let ecr = base64::engine::general_purpose::STANDARD.encode(
        r#"{"payload":"p","datakey":"d","version":"2","type":"DATA_KEY","expiration":1600000000}"#,
    );
    let flows = vec![
        FlowBuilder::new(1, "GET", &url("/v2/"))
            .request_header("Authorization", &basic("AWS", &ecr))
            .status(403)
            .response_body(b"Your authorization token has expired. Reauthenticate and try again.")
            .build(),
        FlowBuilder::new(2, "GET", &url("/v2/"))
            .request_header("Authorization", &basic("oauth2accesstoken", "ya29.x"))
            .status(200)
            .build(),
        FlowBuilder::new(3, "GET", &url("/v2/"))
            .request_header(
                "Authorization",
                &basic("00000000-0000-0000-0000-000000000000", "eyJ.x"),
            )
            .status(200)
            .build(),
    ];
    let analysis = run(&flows);
    assert!(has(
        &analysis,
        1,
        AnnotationKind::Basic,
        "ECR password expired at 2020-09-13"
    ));
    assert!(has(
        &analysis,
        1,
        AnnotationKind::RegistryError,
        "authorization token has expired"
    ));
    assert!(has(
        &analysis,
        2,
        AnnotationKind::Basic,
        "Google OAuth2 access token"
    ));
    assert!(has(
        &analysis,
        3,
        AnnotationKind::Basic,
        "Azure Container Registry refresh token"
    ));
}

#[test]
fn acr_exchange_answers_a_refresh_token_only() {
    let refresh = jwt(&[], 0, 3 * 3600);
    let body = serde_json::json!({ "refresh_token": refresh }).to_string();
    let flows = vec![
        FlowBuilder::new(1, "POST", "https://acr.example/oauth2/exchange")
            .request_body(b"grant_type=access_token&service=acr.example&access_token=eyJ.aad")
            .status(200)
            .response_body(body.as_bytes())
            .build(),
    ];
    let analysis = run(&flows);
    assert!(has(
        &analysis,
        1,
        AnnotationKind::Token,
        "issued refresh token"
    ));
    assert!(
        analysis.diagnostics.is_empty(),
        "a refresh-only answer is no problem: {:?}",
        analysis.diagnostics
    );
}

#[test]
fn an_expired_token_refused_with_a_bare_400_is_explained() {
    let (t, token) = common::token(
        1,
        0,
        &["repository:lab/app:pull"],
        &[("lab/app", &["pull"])],
    );
    let flows = vec![
        t,
        // 400 s later: the 300 s token has expired.
        FlowBuilder::new(2, "GET", &url("/v2/lab/app/manifests/v1"))
            .start_ns(at(400_000))
            .request_header("Authorization", &bearer(&token))
            .status(400)
            .build(),
    ];
    let analysis = run(&flows);
    assert!(has(
        &analysis,
        2,
        AnnotationKind::Bearer,
        "bare 400 (ECR Public)"
    ));
}

#[test]
fn attestations_in_an_index_are_labelled_and_not_counted_as_images() {
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":500,"platform":{"os":"linux","architecture":"amd64"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":800,"platform":{"os":"unknown","architecture":"unknown"},
         "annotations":{"vnd.docker.reference.type":"attestation-manifest","vnd.docker.reference.digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"}}]}"#;
    let attestation = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":10},
        "layers":[{"mediaType":"application/vnd.in-toto+json","digest":"sha256:4444444444444444444444444444444444444444444444444444444444444444","size":9000,"annotations":{"in-toto.io/predicate-type":"https://spdx.dev/Document"}}]}"#;
    let flows = vec![
        FlowBuilder::new(1, "GET", &url("/v2/lab/app/manifests/v1"))
            .status(200)
            .response_header("Content-Type", "application/vnd.oci.image.index.v1+json")
            .response_body(index)
            .build(),
        FlowBuilder::new(
            2,
            "GET",
            &url(&format!("/v2/lab/app/manifests/{}", digest(attestation))),
        )
        .status(200)
        .response_body(attestation)
        .build(),
    ];
    let analysis = run(&flows);
    let manifest = analysis.flow(1).and_then(|f| f.manifest.as_ref()).unwrap();
    assert_eq!(
        manifest.manifests[1].role,
        Some(DescriptorRole::AttestationManifest)
    );
    assert!(has(
        &analysis,
        1,
        AnnotationKind::Manifest,
        "of 1 manifest(s): linux/amd64, and 1 attestation manifest(s)"
    ));
    assert!(!has(
        &analysis,
        1,
        AnnotationKind::Manifest,
        "unknown/unknown"
    ));
    let statement = analysis.flow(2).and_then(|f| f.manifest.as_ref()).unwrap();
    assert_eq!(statement.purpose, ManifestPurpose::Attestation);
    assert!(has(
        &analysis,
        2,
        AnnotationKind::Manifest,
        "1 in-toto statement(s)"
    ));
}

#[test]
fn subject_referrers_and_tag_schemas_are_explained() {
    let subject = format!("sha256:{}", "ab".repeat(32));
    let artifact = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}},"layers":[],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{subject}","size":100}}}}"#
    );
    let referrers = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:5555555555555555555555555555555555555555555555555555555555555555","size":10,"artifactType":"application/spdx+json"}]}"#;
    let flows = vec![
        FlowBuilder::new(
            1,
            "PUT",
            &url(&format!(
                "/v2/lab/app/manifests/{}",
                digest(artifact.as_bytes())
            )),
        )
        .request_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .request_body(artifact.as_bytes())
        .status(201)
        .response_header("OCI-Subject", &subject)
        .build(),
        FlowBuilder::new(
            2,
            "GET",
            &url(&format!(
                "/v2/lab/app/referrers/{subject}?artifactType=application%2Fspdx%2Bjson"
            )),
        )
        .start_ns(at(5))
        .status(200)
        .response_body(referrers.as_bytes())
        .build(),
        FlowBuilder::new(
            3,
            "GET",
            &url(&format!("/v2/lab/app/manifests/sha256-{}", "ab".repeat(32))),
        )
        .start_ns(at(6))
        .status(404)
        .build(),
        FlowBuilder::new(
            4,
            "HEAD",
            &url(&format!(
                "/v2/lab/app/manifests/sha256-{}.sig",
                "ab".repeat(32)
            )),
        )
        .start_ns(at(7))
        .status(200)
        .build(),
    ];
    let analysis = run(&flows);
    let manifest = analysis.flow(1).and_then(|f| f.manifest.as_ref()).unwrap();
    assert_eq!(
        manifest.subject.as_ref().map(|d| d.digest.as_str()),
        Some(subject.as_str())
    );
    assert!(
        matches!(&manifest.purpose, ManifestPurpose::Artifact { artifact_type } if artifact_type.contains("cosign"))
    );
    assert!(has(
        &analysis,
        1,
        AnnotationKind::Artifact,
        "processed the subject"
    ));
    assert!(has(
        &analysis,
        2,
        AnnotationKind::Artifact,
        "1 referrer(s): application/spdx+json"
    ));
    assert!(has(
        &analysis,
        2,
        AnnotationKind::Artifact,
        "did not filter"
    ));
    assert!(has(
        &analysis,
        3,
        AnnotationKind::Artifact,
        "expected, not a failure"
    ));
    assert!(has(
        &analysis,
        4,
        AnnotationKind::Artifact,
        "sigstore signature of sha256:abab"
    ));
}

#[test]
fn manifest_unknown_because_of_accept_is_told_apart() {
    let flows = vec![
        FlowBuilder::new(1, "GET", &url("/v2/lab/app/manifests/v1"))
            .request_header("Accept", "application/vnd.docker.distribution.manifest.v2+json")
            .status(404)
            .response_body(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"OCI index found, but accept header does not support OCI indexes"}]}"#)
            .build(),
        // dockerd sends one Accept per type: the served type is in the second.
        FlowBuilder::new(2, "GET", &url("/v2/lab/app/manifests/v2"))
            .request_header("Accept", "application/vnd.oci.image.index.v1+json")
            .request_header("Accept", "application/vnd.docker.distribution.manifest.v2+json")
            .status(200)
            .response_header("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
            .build(),
        FlowBuilder::new(3, "GET", &url("/v2/lab/app/manifests/v3"))
            .request_header("Accept", "application/vnd.oci.image.manifest.v1+json")
            .status(200)
            .response_header("Content-Type", "application/vnd.oci.image.index.v1+json")
            .build(),
    ];
    let analysis = run(&flows);
    let error = &analysis.flows[0].registry_errors[0];
    assert!(
        error.explanation.contains("Accept allows"),
        "{}",
        error.explanation
    );
    assert!(notes(&analysis, 2, AnnotationKind::Negotiation).is_empty());
    assert!(has(
        &analysis,
        3,
        AnnotationKind::Negotiation,
        "did not list it"
    ));
}

#[test]
fn a_manifest_redirected_to_another_registry_with_its_own_token_is_one_pull() {
    // registry.k8s.io sends the manifest to a regional Artifact Registry,
    // which challenges for its own token.
    let k8s = "https://registry.k8s.io";
    let ar = "https://europe-docker.pkg.dev";
    let target = format!("{ar}/v2/k8s-artifacts-prod/images/pause/manifests/3.9");
    let ar_token = "ar-opaque-token";
    let conn = "127.0.0.1:43000";
    let client = "containerd/1.7.0";
    let flows = vec![
        FlowBuilder::new(1, "HEAD", &format!("{k8s}/v2/pause/manifests/3.9"))
            .client(conn, client)
            .status(307)
            .response_header("Location", &target)
            .build(),
        FlowBuilder::new(2, "HEAD", &target)
            .client(conn, client)
            .start_ns(at(2))
            .status(401)
            .response_header("WWW-Authenticate", &format!(r#"Bearer realm="{ar}/v2/token",service="europe-docker.pkg.dev""#))
            .build(),
        FlowBuilder::new(3, "GET", &format!("{ar}/v2/token?scope=repository%3Ak8s-artifacts-prod%2Fimages%2Fpause%3Apull&service=europe-docker.pkg.dev"))
            .client(conn, client)
            .start_ns(at(300))
            .status(200)
            .response_body(serde_json::json!({ "token": ar_token }).to_string().as_bytes())
            .build(),
        FlowBuilder::new(4, "HEAD", &target)
            .client(conn, client)
            .start_ns(at(600))
            .request_header("Authorization", &bearer(ar_token))
            .status(200)
            .response_header("Docker-Content-Digest", &format!("sha256:{}", "cd".repeat(32)))
            .build(),
    ];
    let analysis = run(&flows);
    assert_eq!(
        analysis.operations.len(),
        1,
        "{:?}",
        analysis
            .operations
            .iter()
            .map(|o| &o.title)
            .collect::<Vec<_>>()
    );
    assert!(has(
        &analysis,
        1,
        AnnotationKind::Redirect,
        "followed by flow #2, #4"
    ));
    assert!(has(
        &analysis,
        4,
        AnnotationKind::Redirect,
        "as redirected by flow #1"
    ));
    assert_eq!(analysis.operations[0].status, OperationStatus::Succeeded);
}

#[test]
fn pre_signed_urls_say_until_when_never_their_signature() {
    let layer = vec![1u8; 64];
    let d = digest(&layer);
    let storage = "https://bucket.s3.example/blob?X-Amz-Date=20231114T221320Z&X-Amz-Expires=60&X-Amz-Signature=deadbeefsecret";
    let flows = vec![
        FlowBuilder::new(1, "GET", &url(&format!("/v2/lab/app/blobs/{d}")))
            .status(307)
            .response_header("Location", storage)
            .build(),
        // 10 minutes later: expired.
        FlowBuilder::new(2, "GET", storage)
            .start_ns(at(600_000))
            .status(403)
            .build(),
    ];
    let analysis = run(&flows);
    let texts = notes(&analysis, 2, AnnotationKind::Redirect);
    assert!(
        texts
            .iter()
            .any(|t| t.contains("expired at 2023-11-14T22:14:20Z")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("that is why storage refused it")),
        "{texts:?}"
    );
    assert!(
        analysis
            .flows
            .iter()
            .flat_map(|f| &f.annotations)
            .all(|a| !a.text.contains("deadbeefsecret"))
    );
}

#[test]
fn docker_hub_pulls_are_counted_per_operation() {
    let hub = "https://registry-1.docker.io";
    let limit = |remaining: u64| ("100;w=21600".to_owned(), format!("{remaining};w=21600"));
    let (l, r1) = limit(76);
    let (_, r2) = limit(75);
    let flows = vec![
        FlowBuilder::new(
            1,
            "HEAD",
            &format!("{hub}/v2/library/alpine/manifests/latest"),
        )
        .status(200)
        .response_header("ratelimit-limit", &l)
        .response_header("ratelimit-remaining", &r1)
        .build(),
        FlowBuilder::new(
            2,
            "GET",
            &format!(
                "{hub}/v2/library/alpine/manifests/sha256:{}",
                "aa".repeat(32)
            ),
        )
        .start_ns(at(3))
        .status(200)
        .response_header("ratelimit-limit", &l)
        .response_header("ratelimit-remaining", &r2)
        .build(),
        FlowBuilder::new(
            3,
            "GET",
            &format!(
                "{hub}/v2/library/alpine/manifests/sha256:{}",
                "bb".repeat(32)
            ),
        )
        .start_ns(at(4))
        .status(200)
        .build(),
    ];
    let analysis = run(&flows);
    let quota = analysis.operations[0]
        .quota
        .as_ref()
        .expect("Docker Hub counts pulls");
    assert_eq!(
        quota.pulls_counted, 2,
        "two manifest GETs (a multi-platform pull)"
    );
    assert_eq!(quota.free_heads, 1);
    assert_eq!(
        (quota.remaining_first, quota.remaining_last),
        (Some(76), Some(75))
    );
    let text = regtap_decode::render_text(&analysis, &flows, false);
    assert!(text.contains("Pull quota: 2 pulls counted"), "{text}");
    // A registry that counts nothing has no quota.
    assert!(
        run(
            &[FlowBuilder::new(1, "GET", &url("/v2/lab/app/manifests/v1"))
                .status(200)
                .build()]
        )
        .operations[0]
            .quota
            .is_none()
    );
}

#[test]
fn a_client_that_stops_before_the_last_page_is_told() {
    let list = |id: u64, ms: i64, query: &str, next: Option<&str>| {
        let mut f = FlowBuilder::new(id, "GET", &url(&format!("/v2/lab/app/tags/list{query}")))
            .start_ns(at(ms))
            .status(200)
            .response_body(br#"{"name":"lab/app","tags":["a","b"]}"#);
        if let Some(next) = next {
            f = f.response_header("Link", &format!(r#"<{next}>; rel="next""#));
        }
        f.build()
    };
    let followed = run(&[
        list(1, 0, "?n=2", Some("/v2/lab/app/tags/list?n=2&last=b")),
        list(2, 2, "?n=2&last=b", None),
    ]);
    assert_eq!(followed.operations.len(), 1);
    assert!(has(&followed, 1, AnnotationKind::Pagination, "more follow"));
    assert!(has(
        &followed,
        2,
        AnnotationKind::Pagination,
        "the last page"
    ));
    assert!(
        followed.diagnostics.is_empty(),
        "{:?}",
        followed.diagnostics
    );
    let stopped = run(&[list(1, 0, "?n=2", Some("/v2/lab/app/tags/list?n=2&last=b"))]);
    assert!(
        stopped
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Warning && d.message.contains("stopped here"))
    );
}

#[test]
fn a_mirror_miss_then_the_upstream_is_one_pull() {
    let mirror = "https://mirror.example";
    let hub = "https://registry-1.docker.io";
    let conn = "127.0.0.1:44000";
    let client = "containerd/1.7.0";
    let flows = vec![
        FlowBuilder::new(
            1,
            "HEAD",
            &format!("{mirror}/v2/library/alpine/manifests/3.19?ns=docker.io"),
        )
        .client(conn, client)
        .status(404)
        .build(),
        FlowBuilder::new(
            2,
            "HEAD",
            &format!("{hub}/v2/library/alpine/manifests/3.19"),
        )
        .client("127.0.0.1:44001", client)
        .start_ns(at(5))
        .status(200)
        .build(),
    ];
    let analysis = run(&flows);
    assert_eq!(analysis.operations.len(), 1);
    assert!(matches!(
        &analysis.operations[0].kind,
        OperationKind::Pull { registry, .. } if registry == "registry-1.docker.io"
    ));
    assert!(has(
        &analysis,
        1,
        AnnotationKind::Mirror,
        "mirror request for the upstream registry docker.io"
    ));
    assert!(has(&analysis, 1, AnnotationKind::Mirror, "mirror miss"));
    assert_eq!(analysis.operations[0].status, OperationStatus::Succeeded);
}

#[test]
fn warning_headers_are_shown() {
    let flows = vec![
        FlowBuilder::new(1, "GET", &url("/v2/lab/app/manifests/v1"))
            .status(200)
            .response_header(
                "Warning",
                r#"299 - "this image is deprecated: use lab/app2""#,
            )
            .build(),
    ];
    let analysis = run(&flows);
    assert!(has(
        &analysis,
        1,
        AnnotationKind::Warning,
        "this image is deprecated: use lab/app2"
    ));
}

#[test]
fn an_html_page_answering_the_ping_is_not_a_registry() {
    let flows = vec![
        FlowBuilder::new(1, "GET", &url("/v2/"))
            .status(200)
            .response_header("Content-Type", "text/html; charset=utf-8")
            .response_body(b"<html>Sign in to the corporate proxy</html>")
            .build(),
    ];
    assert!(has(
        &run(&flows),
        1,
        AnnotationKind::Exchange,
        "not a registry"
    ));
}

#[test]
fn an_exclusive_content_range_end_is_flagged() {
    let chunk = vec![9u8; 10];
    let flows = vec![
        FlowBuilder::new(1, "POST", &url("/v2/lab/app/blobs/uploads/"))
            .status(202)
            .response_header("Location", "/v2/lab/app/blobs/uploads/u1")
            .build(),
        // regclient: 10 bytes announced as 0-10.
        FlowBuilder::new(2, "PATCH", &url("/v2/lab/app/blobs/uploads/u1"))
            .request_header("Content-Range", "0-10")
            .request_body(&chunk)
            .status(202)
            .response_header("Location", "/v2/lab/app/blobs/uploads/u1")
            .build(),
    ];
    assert!(has(&run(&flows), 2, AnnotationKind::Chunk, "exclusive end"));
}
