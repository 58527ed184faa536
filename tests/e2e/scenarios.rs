//! The scenarios, in the order they run: each one a user action through
//! regtap, checked on the capture and on the decoder's analysis.

use std::collections::BTreeSet;
use std::path::Path;

use regtap_decode::{OperationKind, OperationStatus, Reference, SessionOutcome, UploadStart};
use regtap_lab::dockerd::Dockerd;
use regtap_lab::verify::{gunzip_digest, sha256_hex};
use regtap_lab::{LAB_PASSWORD, LAB_USER, Lab, SYSTEM_CA_BUNDLE};

use crate::World;
use crate::checks::{analysis, common, operations_listing};
use crate::flows::{Exchange, Flows, Token};

type Scenario = fn(&mut World);

pub const ALL: &[(&str, Scenario)] = &[
    (
        "names-resolve-only-in-the-proxy",
        names_resolve_only_in_the_proxy,
    ),
    ("login-failed", login_failed),
    ("login", login),
    ("push", push),
    ("mount", mount),
    ("re-push", re_push),
    ("pull", pull),
    ("manifest-unknown", manifest_unknown),
    ("push-denied", push_denied),
    ("basic-auth", basic_auth),
    ("skopeo-copy", skopeo_copy),
    (
        "dockerd-checks-regtaps-certificate",
        dockerd_checks_regtaps_certificate,
    ),
];

fn repo_ref(world: &World, repository: &str, tag: &str) -> String {
    format!("{}/{repository}:{tag}", world.lab.registry_host())
}

/// No `/etc/hosts` entry or DNS answer for the lab names: only the proxy's
/// `--resolve` knows them, so dockerd cannot see a loopback registry (which it
/// would treat as insecure, skipping certificate checks).
fn names_resolve_only_in_the_proxy(world: &mut World) {
    use std::net::ToSocketAddrs as _;
    for host in [world.lab.registry_host(), world.lab.auth_host()] {
        assert!(
            host.to_socket_addrs().is_err(),
            "{host} resolves on this machine: the test could not prove certificate checks"
        );
    }
}

fn login_failed(world: &mut World) {
    let host = world.lab.registry_host();
    let mut output = None;
    let capture = world.captured("login-failed", |lab| {
        output = Some(lab.docker(&["login", &host, "-u", LAB_USER, "-p", "not-the-password"]));
    });
    let output = output.unwrap_or_else(|| panic!("docker login did not run"));
    output.assert_failure();
    common(&world.lab, &capture);
    let flows = Flows::of(&capture);
    let listing = flows.listing();
    let api = flows.matching(&host, "GET", |p| p == "/v2/");
    let first = api
        .first()
        .unwrap_or_else(|| panic!("no GET /v2/:\n{listing}"));
    assert_eq!(first.status(), 401, "{listing}");
    let challenge = first
        .response_header("WWW-Authenticate")
        .unwrap_or_default();
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"https://{}/token\",service=\"{}\"",
            world.lab.auth_host(),
            world.lab.token_service()
        )
    );
    assert!(api.iter().all(|e| e.status() == 401), "{listing}");
    let tokens = flows.matching(&world.lab.auth_host(), "GET", |p| p == "/token");
    assert!(!tokens.is_empty(), "no token request:\n{listing}");
    for token in &tokens {
        assert_eq!(token.status(), 401, "{listing}");
        assert!(
            token
                .request_header("Authorization")
                .is_some_and(|a| a.starts_with("Basic "))
        );
        assert_eq!(token.url.param("account"), Some(LAB_USER));
    }
    assert!(
        tokens[0]
            .response_text()
            .contains("incorrect username or password"),
        "{}",
        tokens[0].response_text()
    );
    let analysis = analysis(&capture);
    let login = analysis
        .operations
        .iter()
        .find(|op| matches!(&op.kind, OperationKind::Login { registry } if *registry == host))
        .unwrap_or_else(|| panic!("decoder saw no login:\n{}", operations_listing(&analysis)));
    assert!(
        matches!(login.status, OperationStatus::Failed { .. }),
        "decoder: {:?}",
        login.status
    );
}

fn login(world: &mut World) {
    let host = world.lab.registry_host();
    let capture = world.captured("login", |lab| {
        lab.docker(&["login", &host, "-u", LAB_USER, "-p", LAB_PASSWORD])
            .assert_success();
    });
    common(&world.lab, &capture);
    let flows = Flows::of(&capture);
    let listing = flows.listing();
    let sequence: Vec<String> = flows
        .all
        .iter()
        .map(|e| format!("{} {} {}", e.method(), e.url.path, e.status()))
        .collect();
    assert_eq!(
        sequence,
        ["GET /v2/ 401", "GET /token 200", "GET /v2/ 200"],
        "{listing}"
    );
    let token_flow = &flows.all[1];
    assert_eq!(token_flow.url.param("account"), Some(LAB_USER));
    assert_eq!(
        token_flow.url.param("service"),
        Some(world.lab.token_service().as_str())
    );
    let token = Token::of(token_flow);
    assert_eq!(token.claims["sub"], LAB_USER);
    assert_eq!(
        token.grants(),
        Vec::<String>::new(),
        "login asks for no scope"
    );
    assert_eq!(
        flows.all[2].request_header("Authorization"),
        Some(format!("Bearer {}", token.jwt).as_str())
    );
    let analysis = analysis(&capture);
    assert_eq!(
        analysis.operations.len(),
        1,
        "{}",
        operations_listing(&analysis)
    );
    assert!(
        matches!(&analysis.operations[0].kind, OperationKind::Login { registry } if *registry == host)
    );
    assert_eq!(analysis.operations[0].status, OperationStatus::Succeeded);
    let decoded = analysis
        .flow(token_flow.flow.id)
        .and_then(|f| f.token.as_ref())
        .unwrap_or_else(|| panic!("decoder did not decode the login token"));
    let jwt = decoded
        .jwt
        .as_ref()
        .unwrap_or_else(|| panic!("decoder: token is not a JWT"));
    assert_eq!(jwt.header.alg.as_deref(), Some("RS256"));
    assert_eq!(jwt.header.x5c_len, 1);
}

/// The uploads of `repository` in a capture: each PUT `?digest=` matched with
/// the PATCH that sent the bytes.
struct Upload<'a> {
    patch: &'a Exchange<'a>,
    put: &'a Exchange<'a>,
    digest: String,
}

fn uploads<'a>(flows: &'a Flows<'a>, host: &str, repository: &str) -> Vec<Upload<'a>> {
    let prefix = format!("/v2/{repository}/blobs/uploads/");
    let listing = flows.listing();
    flows
        .matching(host, "PUT", |p| p.starts_with(&prefix))
        .into_iter()
        .map(|put| {
            assert_eq!(put.status(), 201, "{}\n{listing}", put.line());
            let digest = put
                .url
                .param("digest")
                .unwrap_or_else(|| panic!("{}: no digest", put.line()))
                .to_owned();
            let patches = flows.matching(host, "PATCH", |p| p == put.url.path);
            assert_eq!(patches.len(), 1, "one PATCH per upload:\n{listing}");
            let patch = patches[0];
            assert_eq!(patch.status(), 202, "{listing}");
            assert_eq!(
                put.flow.request.body.size, 0,
                "docker sends the bytes in the PATCH"
            );
            // The upload digest check: the bytes sent hash to the digest claimed.
            assert_eq!(
                patch.flow.request.body.digest().unwrap_or_default(),
                digest,
                "{}: PATCH bytes do not hash to the PUT digest",
                put.line()
            );
            let state = put
                .request_state()
                .unwrap_or_else(|| panic!("{}: no _state", put.line()))
                .unwrap_or_else(|e| panic!("{}: {e}", put.line()));
            assert_eq!(
                u64::try_from(state.offset).ok(),
                Some(patch.flow.request.body.size),
                "{}: _state offset is not the bytes sent",
                put.line()
            );
            Upload { patch, put, digest }
        })
        .collect()
}

fn push(world: &mut World) {
    let host = world.lab.registry_host();
    let reference = repo_ref(world, "lab/app", "latest");
    let archive = world.lab.dir().join("image.tar");
    world
        .image
        .write_docker_archive(&archive, &[&reference])
        .unwrap_or_else(|e| panic!("{e}"));
    world
        .lab
        .docker(&["load", "-i", &archive.display().to_string()])
        .assert_success();
    let capture = world.captured("push", |lab| {
        lab.docker(&["push", &reference]).assert_success();
    });
    common(&world.lab, &capture);
    let flows = Flows::of(&capture);
    let listing = flows.listing();

    let tokens = flows.matching(&world.lab.auth_host(), "GET", |p| p == "/token");
    assert!(!tokens.is_empty(), "{listing}");
    for token_flow in &tokens {
        assert_eq!(
            token_flow.url.param("scope"),
            Some("repository:lab/app:push,pull")
        );
        let token = Token::of(token_flow);
        assert_eq!(token.claims["sub"], LAB_USER);
        assert_eq!(token.grants(), ["repository:lab/app:pull,push"]);
    }

    let posts = flows.matching(&host, "POST", |p| p == "/v2/lab/app/blobs/uploads/");
    assert_eq!(posts.len(), 4, "3 layers and the config:\n{listing}");
    for post in &posts {
        assert_eq!(post.status(), 202, "{listing}");
        let state = post
            .location_state()
            .unwrap_or_else(|| panic!("{}: no _state in Location", post.line()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(state.offset, 0);
    }
    let uploads = uploads(&flows, &host, "lab/app");
    assert_eq!(uploads.len(), 4, "{listing}");
    for upload in &uploads {
        assert!(
            upload
                .put
                .request_header("Authorization")
                .is_some_and(|a| a.starts_with("Bearer ")),
            "{}",
            upload.put.line()
        );
    }

    // The config goes up byte for byte; the layers gzip'd by dockerd, and
    // gunzipping what the proxy saw gives back the layer tars we built.
    let config = uploads
        .iter()
        .find(|u| u.digest == world.image.config_digest)
        .unwrap_or_else(|| {
            panic!(
                "config {} not pushed:\n{listing}",
                world.image.config_digest
            )
        });
    assert_eq!(
        config.patch.flow.request.body.full_bytes().as_deref(),
        Some(world.image.config.as_slice())
    );
    let mut layer_digests = Vec::new();
    let mut diff_ids = BTreeSet::new();
    for upload in uploads
        .iter()
        .filter(|u| u.digest != world.image.config_digest)
    {
        let body = &upload.patch.flow.request.body;
        assert!(
            body.truncation().is_some(),
            "a layer should not be inlined (--max-inline)"
        );
        let bytes = world.stored_body(body.stored());
        assert_eq!(
            Some(sha256_hex(&bytes)),
            body.sha256,
            "stored body differs from its hash"
        );
        diff_ids.insert(gunzip_digest(&bytes).unwrap_or_else(|e| panic!("{e}")));
        layer_digests.push(upload.digest.clone());
    }
    let expected: BTreeSet<String> = world
        .image
        .layers
        .iter()
        .map(|l| l.diff_id.clone())
        .collect();
    assert_eq!(
        diff_ids, expected,
        "pushed layers are not the image's layers"
    );

    let manifests = flows.matching(&host, "PUT", |p| p == "/v2/lab/app/manifests/latest");
    assert_eq!(manifests.len(), 1, "{listing}");
    let manifest_put = manifests[0];
    assert_eq!(manifest_put.status(), 201);
    let manifest_bytes = manifest_put
        .flow
        .request
        .body
        .full_bytes()
        .unwrap_or_else(|| panic!("manifest not inlined"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&manifest_bytes).unwrap_or_else(|e| panic!("manifest: {e}"));
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        manifest["config"]["digest"],
        world.image.config_digest.as_str()
    );
    let manifest_layers: Vec<String> = manifest["layers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|l| l["digest"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        manifest_layers.iter().collect::<BTreeSet<_>>(),
        layer_digests.iter().collect::<BTreeSet<_>>()
    );
    let manifest_digest = format!("sha256:{}", sha256_hex(&manifest_bytes));
    assert_eq!(
        manifest_put.response_header("Docker-Content-Digest"),
        Some(manifest_digest.as_str())
    );

    let analysis = analysis(&capture);
    let push = analysis
        .operations
        .iter()
        .find(|op| matches!(&op.kind, OperationKind::Push { repository, .. } if repository == "lab/app"))
        .unwrap_or_else(|| panic!("decoder saw no push:\n{}", operations_listing(&analysis)));
    assert_eq!(
        push.status,
        OperationStatus::Succeeded,
        "{}",
        operations_listing(&analysis)
    );
    assert!(matches!(
        &push.kind,
        OperationKind::Push { reference: Some(Reference::Tag(tag)), .. } if tag == "latest"
    ));
    let sessions: Vec<_> = analysis
        .sessions
        .iter()
        .filter(|s| s.repository == "lab/app")
        .collect();
    assert_eq!(sessions.len(), 4, "decoder sessions: {sessions:#?}");
    for session in sessions {
        assert_eq!(session.outcome, SessionOutcome::Completed);
        assert_eq!(session.digest_check, regtap_decode::DigestCheck::Verified);
    }

    world.pushed_layers = manifest_layers;
    world.pushed_manifest = Some(manifest_digest);
}

fn mount(world: &mut World) {
    assert!(!world.pushed_layers.is_empty(), "needs the push scenario");
    let host = world.lab.registry_host();
    let source = repo_ref(world, "lab/app", "latest");
    let copy = repo_ref(world, "lab/app-copy", "latest");
    world.lab.docker(&["tag", &source, &copy]).assert_success();
    let capture = world.captured("mount", |lab| {
        lab.docker(&["push", &copy]).assert_success();
    });
    common(&world.lab, &capture);
    let flows = Flows::of(&capture);
    let listing = flows.listing();
    let mounts: Vec<_> = flows
        .matching(&host, "POST", |p| p == "/v2/lab/app-copy/blobs/uploads/")
        .into_iter()
        .filter(|e| e.url.param("mount").is_some())
        .collect();
    for mount in &mounts {
        assert_eq!(mount.status(), 201, "{}\n{listing}", mount.line());
        assert_eq!(mount.url.param("from"), Some("lab/app"));
    }
    let mounted: BTreeSet<&str> = mounts.iter().filter_map(|m| m.url.param("mount")).collect();
    let layers: BTreeSet<&str> = world.pushed_layers.iter().map(String::as_str).collect();
    assert_eq!(
        mounted, layers,
        "every layer is mounted from lab/app:\n{listing}"
    );
    let cross_repo_token = flows
        .matching(&world.lab.auth_host(), "GET", |p| p == "/token")
        .into_iter()
        .find(|t| {
            t.url
                .params("scope")
                .any(|s| s == "repository:lab/app:pull")
        })
        .unwrap_or_else(|| panic!("no token asked for lab/app:pull:\n{listing}"));
    let scopes: BTreeSet<&str> = cross_repo_token.url.params("scope").collect();
    assert!(
        scopes.contains("repository:lab/app-copy:push,pull"),
        "{scopes:?}"
    );
    assert_eq!(
        Token::of(cross_repo_token).grants(),
        [
            "repository:lab/app-copy:pull,push",
            "repository:lab/app:pull"
        ]
    );
    let manifest = flows.matching(&host, "PUT", |p| p == "/v2/lab/app-copy/manifests/latest");
    assert_eq!(manifest.len(), 1, "{listing}");
    assert_eq!(manifest[0].status(), 201);

    let analysis = analysis(&capture);
    let mounted_sessions: Vec<_> = analysis
        .sessions
        .iter()
        .filter(|s| s.outcome == SessionOutcome::Mounted)
        .collect();
    assert_eq!(mounted_sessions.len(), 3, "{:#?}", analysis.sessions);
    for session in mounted_sessions {
        assert_eq!(
            session.start,
            UploadStart::Mount {
                from: Some("lab/app".to_owned())
            }
        );
    }
    assert!(
        analysis.operations.iter().any(|op| matches!(&op.kind,
            OperationKind::Push { repository, .. } if repository == "lab/app-copy")
            && op.status == OperationStatus::Succeeded),
        "{}",
        operations_listing(&analysis)
    );
}

fn re_push(world: &mut World) {
    assert!(!world.pushed_layers.is_empty(), "needs the push scenario");
    let host = world.lab.registry_host();
    let reference = repo_ref(world, "lab/app", "latest");
    let capture = world.captured("re-push", |lab| {
        lab.docker(&["push", &reference]).assert_success();
    });
    common(&world.lab, &capture);
    let flows = Flows::of(&capture);
    let listing = flows.listing();
    for method in ["POST", "PATCH"] {
        assert!(
            flows
                .matching(&host, method, |p| p.contains("/blobs/uploads/"))
                .is_empty(),
            "nothing to upload, yet:\n{listing}"
        );
    }
    let heads = flows.matching(&host, "HEAD", |p| p.starts_with("/v2/lab/app/blobs/"));
    let present: BTreeSet<String> = heads
        .iter()
        .inspect(|h| assert_eq!(h.status(), 200, "{listing}"))
        .filter_map(|h| h.url.path.rsplit('/').next().map(str::to_owned))
        .collect();
    let mut expected: BTreeSet<String> = world.pushed_layers.iter().cloned().collect();
    expected.insert(world.image.config_digest.clone());
    assert_eq!(present, expected, "{listing}");
    let manifest = flows.matching(&host, "PUT", |p| p == "/v2/lab/app/manifests/latest");
    assert_eq!(manifest.len(), 1, "{listing}");
    assert_eq!(manifest[0].status(), 201);
    let analysis = analysis(&capture);
    assert!(analysis.sessions.is_empty(), "{:#?}", analysis.sessions);
    assert!(
        analysis
            .operations
            .iter()
            .any(|op| matches!(&op.kind, OperationKind::Push { .. })
                && op.status == OperationStatus::Succeeded),
        "{}",
        operations_listing(&analysis)
    );
}

/// GET blob flows of `repository`: each 200 with a body hashing to the digest
/// in its path; returns those digests.
fn fetched_blobs(flows: &Flows<'_>, host: &str, repository: &str) -> BTreeSet<String> {
    let listing = flows.listing();
    flows
        .matching(host, "GET", |p| {
            p.starts_with(&format!("/v2/{repository}/blobs/sha256:"))
        })
        .into_iter()
        .map(|get| {
            assert_eq!(get.status(), 200, "{listing}");
            let digest = get
                .url
                .path
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            let body = &get.flow.response.as_ref().and_then(|r| r.body.digest());
            assert_eq!(body.as_deref(), Some(digest.as_str()), "{}", get.line());
            digest
        })
        .collect()
}

fn pull(world: &mut World) {
    let manifest_digest = world
        .pushed_manifest
        .clone()
        .unwrap_or_else(|| panic!("needs the push scenario"));
    let host = world.lab.registry_host();
    let reference = repo_ref(world, "lab/app", "latest");
    world
        .lab
        .docker(&[
            "rmi",
            &reference,
            &repo_ref(world, "lab/app-copy", "latest"),
        ])
        .assert_success();
    let capture = world.captured("pull", |lab| {
        lab.docker(&["pull", &reference]).assert_success();
    });
    common(&world.lab, &capture);
    let flows = Flows::of(&capture);
    let listing = flows.listing();
    let scopes: BTreeSet<&str> = flows
        .matching(&world.lab.auth_host(), "GET", |p| p == "/token")
        .iter()
        .flat_map(|t| t.url.params("scope").collect::<Vec<_>>())
        .collect();
    assert_eq!(
        scopes,
        BTreeSet::from(["repository:lab/app:pull"]),
        "{listing}"
    );
    let manifest_gets: Vec<_> = flows
        .matching(&host, "GET", |p| p.starts_with("/v2/lab/app/manifests/"))
        .into_iter()
        .filter(|g| g.status() == 200)
        .collect();
    assert!(!manifest_gets.is_empty(), "{listing}");
    for get in manifest_gets {
        let body = &get.flow.response.as_ref().and_then(|r| r.body.digest());
        assert_eq!(
            body.as_deref(),
            Some(manifest_digest.as_str()),
            "{}",
            get.line()
        );
    }
    let mut expected: BTreeSet<String> = world.pushed_layers.iter().cloned().collect();
    expected.insert(world.image.config_digest.clone());
    assert_eq!(
        fetched_blobs(&flows, &host, "lab/app"),
        expected,
        "{listing}"
    );
    let id = world
        .lab
        .docker(&["image", "inspect", "--format", "{{.Id}}", &reference]);
    id.assert_success();
    assert_eq!(id.stdout.trim(), world.image.config_digest);

    let analysis = analysis(&capture);
    assert!(
        analysis.operations.iter().any(|op| matches!(&op.kind,
            OperationKind::Pull { repository, .. } if repository == "lab/app")
            && op.status == OperationStatus::Succeeded),
        "{}",
        operations_listing(&analysis)
    );
}

fn manifest_unknown(world: &mut World) {
    let host = world.lab.registry_host();
    let reference = repo_ref(world, "lab/app", "no-such-tag");
    let mut output = None;
    let capture = world.captured("manifest-unknown", |lab| {
        output = Some(lab.docker(&["pull", &reference]));
    });
    let output = output.unwrap_or_else(|| panic!("docker pull did not run"));
    output.assert_failure();
    assert!(
        output.combined().contains("manifest unknown"),
        "{}",
        output.combined()
    );
    common(&world.lab, &capture);
    let flows = Flows::of(&capture);
    let listing = flows.listing();
    let lookups = flows
        .all
        .iter()
        .filter(|e| e.url.authority == host && e.url.path == "/v2/lab/app/manifests/no-such-tag")
        .collect::<Vec<_>>();
    assert!(!lookups.is_empty(), "{listing}");
    assert!(lookups.iter().all(|e| e.status() == 404), "{listing}");
    let with_body = lookups
        .iter()
        .find(|e| e.method() == "GET")
        .unwrap_or_else(|| panic!("no GET of the missing manifest:\n{listing}"));
    assert_eq!(
        with_body.response_json()["errors"][0]["code"],
        "MANIFEST_UNKNOWN"
    );
    let analysis = analysis(&capture);
    let decoded = analysis
        .flow(with_body.flow.id)
        .unwrap_or_else(|| panic!("decoder lost the flow"));
    assert_eq!(
        decoded.registry_errors.first().map(|e| e.code.as_str()),
        Some("MANIFEST_UNKNOWN")
    );
    assert!(
        analysis
            .operations
            .iter()
            .any(|op| matches!(&op.kind, OperationKind::Pull { .. })
                && matches!(op.status, OperationStatus::Failed { .. })),
        "{}",
        operations_listing(&analysis)
    );
}

fn push_denied(world: &mut World) {
    let host = world.lab.registry_host();
    let source = repo_ref(world, "lab/app", "latest");
    let target = repo_ref(world, "lab/denied", "latest");
    world.lab.docker(&["logout", &host]).assert_success();
    world
        .lab
        .docker(&["tag", &source, &target])
        .assert_success();
    let mut output = None;
    let capture = world.captured("push-denied", |lab| {
        output = Some(lab.docker(&["push", &target]));
    });
    let output = output.unwrap_or_else(|| panic!("docker push did not run"));
    output.assert_failure();
    let said = output.combined();
    assert!(
        said.contains("denied")
            || said.contains("unauthorized")
            || said.contains("authentication required"),
        "{said}"
    );
    common(&world.lab, &capture);
    let flows = Flows::of(&capture);
    let listing = flows.listing();
    let tokens = flows.matching(&world.lab.auth_host(), "GET", |p| p == "/token");
    assert!(!tokens.is_empty(), "{listing}");
    for token_flow in &tokens {
        assert!(
            token_flow.request_header("Authorization").is_none(),
            "anonymous"
        );
        let token = Token::of(token_flow);
        assert_eq!(token.claims["sub"], "");
        assert!(
            token.grants().iter().all(|g| g.ends_with(":pull")),
            "anonymous gets pull only: {:?}",
            token.grants()
        );
    }
    let refused: Vec<_> = flows
        .to_host(&host)
        .into_iter()
        .filter(|e| e.url.path.starts_with("/v2/lab/denied/") && e.status() == 401)
        .collect();
    assert!(!refused.is_empty(), "{listing}");
    assert!(
        refused.iter().any(|e| e
            .response_header("WWW-Authenticate")
            .is_some_and(|c| c.contains("error=\"insufficient_scope\""))),
        "{listing}"
    );
    assert!(
        flows
            .matching(&host, "PUT", |p| p.contains("/manifests/"))
            .is_empty(),
        "{listing}"
    );
    let analysis = analysis(&capture);
    assert!(
        analysis
            .operations
            .iter()
            .any(|op| matches!(&op.kind, OperationKind::Push { .. })
                && matches!(op.status, OperationStatus::Failed { .. })),
        "{}",
        operations_listing(&analysis)
    );
    world.unrecorded("login-again", |lab| {
        lab.docker(&["login", &host, "-u", LAB_USER, "-p", LAB_PASSWORD])
            .assert_success();
    });
}

fn basic_auth(world: &mut World) {
    let host = world.lab.basic_registry_host();
    let source = repo_ref(world, "lab/app", "latest");
    let target = format!("{host}/lab/app:latest");
    world
        .lab
        .docker(&["tag", &source, &target])
        .assert_success();
    let capture = world.captured("basic-auth-push", |lab| {
        lab.docker(&["login", &host, "-u", LAB_USER, "-p", LAB_PASSWORD])
            .assert_success();
        lab.docker(&["push", &target]).assert_success();
    });
    common(&world.lab, &capture);
    let flows = Flows::of(&capture);
    let listing = flows.listing();
    assert!(
        flows.to_host(&world.lab.auth_host()).is_empty(),
        "no tokens:\n{listing}"
    );
    let first = flows.all.first().unwrap_or_else(|| panic!("empty capture"));
    assert_eq!(first.status(), 401);
    assert_eq!(
        first.response_header("WWW-Authenticate"),
        Some(format!("Basic realm=\"{}\"", regtap_lab::registry::BASIC_REALM).as_str())
    );
    let uploads = uploads(&flows, &host, "lab/app");
    assert_eq!(uploads.len(), 4, "{listing}");
    for upload in &uploads {
        assert!(
            upload
                .put
                .request_header("Authorization")
                .is_some_and(|a| a.starts_with("Basic ")),
            "{}",
            upload.put.line()
        );
    }
    let push_analysis = analysis(&capture);
    assert!(
        push_analysis
            .flows
            .iter()
            .filter(|f| f.basic_user.is_some())
            .all(|f| f.basic_user.as_deref() == Some(LAB_USER))
    );
    assert!(
        push_analysis
            .operations
            .iter()
            .any(|op| matches!(&op.kind, OperationKind::Push { .. })
                && op.status == OperationStatus::Succeeded),
        "{}",
        operations_listing(&push_analysis)
    );
    let pushed: BTreeSet<String> = uploads.iter().map(|u| u.digest.clone()).collect();

    world
        .lab
        .docker(&["rmi", "-f", &world.image.config_digest])
        .assert_success();
    let capture = world.captured("basic-auth-pull", |lab| {
        lab.docker(&["pull", &target]).assert_success();
    });
    common(&world.lab, &capture);
    let flows = Flows::of(&capture);
    assert_eq!(
        fetched_blobs(&flows, &host, "lab/app"),
        pushed,
        "{}",
        flows.listing()
    );
    let analysis = analysis(&capture);
    assert!(
        analysis
            .operations
            .iter()
            .any(|op| matches!(&op.kind, OperationKind::Pull { .. })
                && op.status == OperationStatus::Succeeded),
        "{}",
        operations_listing(&analysis)
    );
}

fn skopeo_copy(world: &mut World) {
    let host = world.lab.registry_host();
    let archive = world.lab.dir().join("skopeo-image.tar");
    let target = repo_ref(world, "lab/skopeo", "v1");
    world
        .skopeo_image
        .write_docker_archive(&archive, &[&target])
        .unwrap_or_else(|e| panic!("{e}"));
    let oci = world.lab.dir().join("skopeo-oci");
    let capture = world.captured("skopeo-copy", |lab| {
        skopeo_push_then_pull(lab, &archive, &target, &oci);
    });
    common(&world.lab, &capture);
    let flows = Flows::of(&capture);
    let listing = flows.listing();
    for token_flow in flows.matching(&world.lab.auth_host(), "GET", |p| p == "/token") {
        assert_eq!(token_flow.status(), 200, "{listing}");
        assert!(
            token_flow
                .request_header("Authorization")
                .is_some_and(|a| a.starts_with("Basic ")),
            "skopeo sends its credentials to the token server"
        );
    }
    // Whatever way skopeo sends a blob, the bytes hash to the digest it
    // claims, and un-gzip'd they are the layer tars of the archive.
    let puts = flows.matching(&host, "PUT", |p| {
        p.starts_with("/v2/lab/skopeo/blobs/uploads/")
    });
    assert_eq!(puts.len(), 3, "2 layers and the config:\n{listing}");
    let mut diff_ids = BTreeSet::new();
    for put in &puts {
        assert_eq!(put.status(), 201, "{listing}");
        let digest = put.url.param("digest").unwrap_or_default().to_owned();
        let senders: Vec<_> = flows
            .matching(&host, "PATCH", |p| p == put.url.path)
            .into_iter()
            .chain(std::iter::once(*put))
            .filter(|e| e.flow.request.body.size > 0)
            .collect();
        assert_eq!(senders.len(), 1, "one request carries the blob:\n{listing}");
        let body = &senders[0].flow.request.body;
        assert_eq!(
            body.digest().as_deref(),
            Some(digest.as_str()),
            "{}",
            put.line()
        );
        if digest == world.skopeo_image.config_digest {
            continue;
        }
        let bytes = world.stored_body(body.stored());
        diff_ids.insert(if bytes.starts_with(&[0x1f, 0x8b]) {
            gunzip_digest(&bytes).unwrap_or_else(|e| panic!("{e}"))
        } else {
            format!("sha256:{}", sha256_hex(&bytes))
        });
    }
    let expected: BTreeSet<String> = world
        .skopeo_image
        .layers
        .iter()
        .map(|l| l.diff_id.clone())
        .collect();
    assert_eq!(diff_ids, expected);
    let manifest = flows.matching(&host, "PUT", |p| p == "/v2/lab/skopeo/manifests/v1");
    assert_eq!(manifest.len(), 1, "{listing}");
    assert_eq!(manifest[0].status(), 201);

    // The layers skopeo fetched landed in the OCI layout byte for byte (the
    // config is rewritten as an OCI config, under another digest).
    let fetched = fetched_blobs(&flows, &host, "lab/skopeo");
    assert_eq!(fetched.len(), 3, "{listing}");
    assert!(
        fetched.contains(&world.skopeo_image.config_digest),
        "{listing}"
    );
    for digest in fetched
        .iter()
        .filter(|d| **d != world.skopeo_image.config_digest)
    {
        let hex = digest.trim_start_matches("sha256:");
        let path = oci.join("blobs/sha256").join(hex);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(sha256_hex(&bytes), hex);
    }
    let analysis = analysis(&capture);
    let verified = analysis
        .sessions
        .iter()
        .filter(|s| s.digest_check == regtap_decode::DigestCheck::Verified)
        .count();
    assert_eq!(verified, 3, "{:#?}", analysis.sessions);
}

/// A dockerd whose `SSL_CERT_FILE` lacks regtap's CA fails against regtap's
/// certificate: dockerd really checks it (the lab names resolve to no loopback
/// address on this machine, so dockerd does not treat them as insecure).
fn dockerd_checks_regtaps_certificate(world: &mut World) {
    let host = world.lab.registry_host();
    let dir = world.lab.dir().join("dockerd-untrusting");
    let proxy_url = world.lab.proxy_url().to_owned();
    let mut output = None;
    let capture = world.unrecorded("untrusted", |lab| {
        let untrusting = Dockerd::start(&dir, &proxy_url, std::path::Path::new(SYSTEM_CA_BUNDLE))
            .unwrap_or_else(|e| panic!("{e}"));
        output = Some(untrusting.docker(&["login", &host, "-u", LAB_USER, "-p", LAB_PASSWORD]));
        drop(untrusting);
        // The trusting dockerd still works through the same proxy.
        lab.docker(&["login", &host, "-u", LAB_USER, "-p", LAB_PASSWORD])
            .assert_success();
    });
    let output = output.unwrap_or_else(|| panic!("docker login did not run"));
    output.assert_failure();
    assert!(
        output
            .combined()
            .contains("x509: certificate signed by unknown authority"),
        "{}",
        output.combined()
    );
    // The untrusting dockerd's refused handshake is a flow that says how to
    // fix it; only the trusting dockerd's login got through: 401, token, 200.
    let flows = Flows::of(&capture);
    assert_eq!(flows.all.len(), 4, "{}", flows.listing());
    let refused = flows.all[0].flow;
    assert_eq!(refused.request.method, "CONNECT", "{}", flows.listing());
    let error = refused
        .error
        .as_ref()
        .unwrap_or_else(|| panic!("no error on {}", flows.listing()));
    assert_eq!(error.stage, regtap_capture::ErrorStage::ClientTls);
    assert!(
        error
            .message
            .contains("the client does not trust regtap's CA"),
        "{}",
        error.message
    );
    assert!(flows.all[1..].iter().all(|e| e.flow.error.is_none()));
}

/// `skopeo copy` of a docker archive to `target` with the lab's credentials,
/// then of `target` back into an OCI layout: one push, one pull.
pub(crate) fn skopeo_push_then_pull(lab: &Lab, archive: &Path, target: &str, oci: &Path) {
    let creds = format!("{LAB_USER}:{LAB_PASSWORD}");
    lab.skopeo(&[
        "copy",
        "--dest-creds",
        &creds,
        &format!("docker-archive:{}", archive.display()),
        &format!("docker://{target}"),
    ])
    .assert_success();
    lab.skopeo(&[
        "copy",
        "--src-creds",
        &creds,
        &format!("docker://{target}"),
        &format!("oci:{}:v1", oci.display()),
    ])
    .assert_success();
}
