//! Reverse mode (issue #15): dockerd and skopeo address `regtap proxy
//! --reverse` as the registry itself, in front of the lab's token-auth
//! registry and its token server (both reverse-proxied, realms and upload
//! `Location`s rewritten with `--rewrite-urls`). The captures must decode as
//! forward-mode ones do: the same operations, token steps and verified
//! upload sessions, with every rewrite recorded.

use std::collections::BTreeSet;

use regtap_capture::{Capture, Direction, ErrorStage};
use regtap_decode::{OperationKind, OperationStatus, SessionOutcome};
use regtap_lab::image::TestImage;
use regtap_lab::{LAB_PASSWORD, LAB_USER, Lab};

use crate::checks::{analysis, operations_listing};
use crate::expect::{self, Expected};
use crate::flows::{Flows, Token};
use crate::scenarios::skopeo_push_then_pull;

pub struct ReverseWorld {
    pub lab: Lab,
    pub image: TestImage,
    pub skopeo_image: TestImage,
    /// `captures/` with `REGTAP_RECORD_CAPTURES=1`: the push is recorded there.
    pub record_to: Option<std::path::PathBuf>,
}

type Scenario = fn(&mut ReverseWorld);

/// The captures kept as samples (the others show nothing the forward-mode
/// samples do not).
const RECORDED: &[&str] = &["reverse-push"];

pub const ALL: &[(&str, Scenario)] = &[
    ("reverse-login", login),
    ("reverse-push", push),
    ("reverse-pull", pull),
    ("reverse-skopeo-copy", skopeo_copy),
    ("reverse-unknown-host", unknown_host),
];

impl ReverseWorld {
    fn captured(&mut self, name: &str, action: impl FnOnce(&Lab)) -> Capture {
        let record_to = self
            .record_to
            .as_deref()
            .filter(|_| RECORDED.contains(&name));
        let capture = crate::captured(&mut self.lab, record_to, name, action);
        served(&self.lab, &capture);
        capture
    }

    /// `registry-SUFFIX.test:REGTAP_PORT/repository:tag`.
    fn reference(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.lab.served_registry_host())
    }
}

/// What every reverse-mode capture of the lab must show: the header says
/// reverse mode; each exchange is the upstream's (its URL names the registry
/// or token server at its own port), came straight from the client (no
/// CONNECT), completed, and says under which origin regtap served it; every
/// response rewrite replaced an upstream origin with the served one.
fn served(lab: &Lab, capture: &Capture) {
    let flows = Flows::of(capture);
    let listing = flows.listing();
    assert_eq!(
        serde_json::to_value(&capture.header.settings).unwrap()["mode"],
        "reverse"
    );
    let pairs = [
        (lab.registry_host(), lab.served_registry_host()),
        (lab.auth_host(), lab.served_auth_host()),
    ];
    for exchange in &flows.all {
        let flow = exchange.flow;
        let line = exchange.line();
        // Go clients may hang up after the head of an error or of the ping.
        if let Some(error) = &flow.error {
            assert!(
                error.stage == ErrorStage::Response
                    && error.message.contains("client stopped reading")
                    && (exchange.status() >= 400 || exchange.url.path == "/v2/"),
                "{line}: {error:?}"
            );
        }
        assert_eq!(flow.scheme, "https", "{line}");
        assert_eq!(flow.connect_authority, None, "{line}");
        let (upstream, served) = pairs
            .iter()
            .find(|(upstream, _)| *upstream == exchange.url.authority)
            .unwrap_or_else(|| panic!("{line}: not a lab upstream:\n{listing}"));
        let reverse = flow
            .reverse
            .as_ref()
            .unwrap_or_else(|| panic!("{line}: not marked as served in reverse mode"));
        assert_eq!(reverse.served_as, format!("https://{served}"), "{line}");
        for rewrite in &reverse.rewrites {
            match rewrite.direction {
                Direction::Request => {
                    assert!(
                        ["host", ":authority"].contains(&rewrite.header.as_str()),
                        "{line}: {rewrite:?}"
                    );
                    assert_eq!(
                        (rewrite.original.as_str(), rewrite.rewritten.as_str()),
                        (served.as_str(), upstream.as_str()),
                        "{line}"
                    );
                }
                Direction::Response => {
                    let from = pairs
                        .iter()
                        .find(|(u, _)| rewrite.original.contains(u.as_str()));
                    let (from, to) = from.unwrap_or_else(|| panic!("{line}: {rewrite:?}"));
                    assert_eq!(
                        rewrite.original.replace(from.as_str(), to),
                        rewrite.rewritten,
                        "{line}: a rewrite changes the origin only"
                    );
                }
            }
        }
        if exchange.url.authority == lab.auth_host() && exchange.status() == 200 {
            let token = Token::of(exchange);
            assert_eq!(token.claims["sub"], LAB_USER, "{line}");
        }
    }
}

/// The response rewrites of the capture's flows for `header`.
fn rewrites<'a>(capture: &'a Capture, header: &str) -> Vec<&'a regtap_capture::Rewrite> {
    capture
        .flows
        .iter()
        .filter_map(|f| f.reverse.as_ref())
        .flat_map(|r| &r.rewrites)
        .filter(|r| r.direction == Direction::Response && r.header == header)
        .collect()
}

fn login(world: &mut ReverseWorld) {
    let served = world.lab.served_registry_host();
    let capture = world.captured("reverse-login", |lab| {
        lab.docker(&["login", &served, "-u", LAB_USER, "-p", LAB_PASSWORD])
            .assert_success();
    });
    let flows = Flows::of(&capture);
    let listing = flows.listing();
    let sequence: Vec<String> = flows
        .all
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}",
                e.method(),
                e.url.authority,
                e.url.path,
                e.status()
            )
        })
        .collect();
    let (registry, auth) = (world.lab.registry_host(), world.lab.auth_host());
    assert_eq!(
        sequence,
        [
            format!("GET {registry} /v2/ 401"),
            format!("GET {auth} /token 200"),
            format!("GET {registry} /v2/ 200"),
        ],
        "{listing}"
    );
    // The capture keeps the challenge the registry sent; dockerd got the
    // realm at regtap, which is how its token request came through regtap.
    assert_eq!(
        flows.all[0].response_header("WWW-Authenticate"),
        Some(
            format!(
                "Bearer realm=\"https://{auth}/token\",service=\"{}\"",
                world.lab.token_service()
            )
            .as_str()
        )
    );
    let realms = rewrites(&capture, "www-authenticate");
    assert_eq!(realms.len(), 1, "{listing}");
    assert!(
        realms[0].rewritten.contains(&format!(
            "realm=\"https://{}/token\"",
            world.lab.served_auth_host()
        )),
        "{:?}",
        realms[0]
    );

    let analysis = analysis(&capture);
    assert_eq!(
        analysis.operations.len(),
        1,
        "{}",
        operations_listing(&analysis)
    );
    let login = &analysis.operations[0];
    assert!(
        matches!(&login.kind, OperationKind::Login { registry: r } if *r == registry),
        "{}",
        operations_listing(&analysis)
    );
    assert_eq!(login.status, OperationStatus::Succeeded);
    let token = analysis
        .flow(flows.all[1].flow.id)
        .and_then(|f| f.token.as_ref())
        .and_then(|t| t.jwt.as_ref())
        .unwrap_or_else(|| panic!("decoder did not decode the login token as a JWT"));
    assert_eq!(token.header.alg.as_deref(), Some("RS256"));
}

fn push(world: &mut ReverseWorld) {
    let reference = world.reference("lab/app", "latest");
    let archive = world.lab.dir().join("reverse-image.tar");
    world
        .image
        .write_docker_archive(&archive, &[&reference])
        .unwrap_or_else(|e| panic!("{e}"));
    world
        .lab
        .docker(&["load", "-i", &archive.display().to_string()])
        .assert_success();
    let capture = world.captured("reverse-push", |lab| {
        lab.docker(&["push", &reference]).assert_success();
    });
    let flows = Flows::of(&capture);
    let listing = flows.listing();
    let registry = world.lab.registry_host();
    let posts = flows.matching(&registry, "POST", |p| p == "/v2/lab/app/blobs/uploads/");
    assert_eq!(posts.len(), 4, "3 layers and the config:\n{listing}");
    // Each upload's Location named the registry; dockerd got regtap's origin
    // and kept going through regtap (its PATCH and PUT are in the capture).
    let uploads_at_regtap = format!(
        "https://{}/v2/lab/app/blobs/uploads/",
        world.lab.served_registry_host()
    );
    let patches = flows.matching(&registry, "PATCH", |p| {
        p.starts_with("/v2/lab/app/blobs/uploads/")
    });
    assert_eq!(patches.len(), 4, "{listing}");
    for exchange in posts.iter().chain(&patches) {
        let rewritten: Vec<_> = exchange
            .flow
            .reverse
            .iter()
            .flat_map(|r| &r.rewrites)
            .filter(|r| r.header == "location")
            .collect();
        assert_eq!(rewritten.len(), 1, "{}", exchange.line());
        assert_eq!(
            Some(rewritten[0].original.as_str()),
            exchange.response_header("Location"),
            "the capture keeps the registry's Location"
        );
        assert!(
            rewritten[0].rewritten.starts_with(&uploads_at_regtap),
            "{:?}",
            rewritten[0]
        );
    }
    let puts = flows.matching(&registry, "PUT", |p| {
        p.starts_with("/v2/lab/app/blobs/uploads/")
    });
    assert_eq!(puts.len(), 4, "{listing}");
    assert!(puts.iter().all(|p| p.status() == 201), "{listing}");

    let analysis = analysis(&capture);
    expect::operations(
        &analysis,
        &[Expected::push(&registry, "lab/app", "dockerd")],
        true,
    );
    expect::no_mismatch(&analysis);
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
    let tokens: Vec<_> = analysis
        .flows
        .iter()
        .filter_map(|f| f.token.as_ref())
        .collect();
    assert!(!tokens.is_empty(), "decoder decoded no token:\n{listing}");
    assert!(tokens.iter().all(|t| t.jwt.is_some()));
}

fn pull(world: &mut ReverseWorld) {
    let reference = world.reference("lab/app", "latest");
    world.lab.docker(&["rmi", &reference]).assert_success();
    let capture = world.captured("reverse-pull", |lab| {
        lab.docker(&["pull", &reference]).assert_success();
    });
    let flows = Flows::of(&capture);
    let listing = flows.listing();
    let registry = world.lab.registry_host();
    let blobs: BTreeSet<&str> = flows
        .matching(&registry, "GET", |p| {
            p.starts_with("/v2/lab/app/blobs/sha256:")
        })
        .iter()
        .map(|g| g.url.path.rsplit('/').next().unwrap_or_default())
        .collect();
    assert_eq!(blobs.len(), 4, "3 layers and the config:\n{listing}");
    let analysis = analysis(&capture);
    expect::operations(
        &analysis,
        &[Expected::pull(&registry, "lab/app", "dockerd")],
        true,
    );
    expect::no_mismatch(&analysis);
}

fn skopeo_copy(world: &mut ReverseWorld) {
    let target = world.reference("lab/skopeo", "v1");
    let archive = world.lab.dir().join("reverse-skopeo.tar");
    world
        .skopeo_image
        .write_docker_archive(&archive, &[&target])
        .unwrap_or_else(|e| panic!("{e}"));
    let oci = world.lab.dir().join("reverse-skopeo-oci");
    let capture = world.captured("reverse-skopeo-copy", |lab| {
        skopeo_push_then_pull(lab, &archive, &target, &oci);
    });
    let flows = Flows::of(&capture);
    let listing = flows.listing();
    let registry = world.lab.registry_host();
    let manifest = flows.matching(&registry, "PUT", |p| p == "/v2/lab/skopeo/manifests/v1");
    assert_eq!(manifest.len(), 1, "{listing}");
    assert_eq!(manifest[0].status(), 201);
    let analysis = analysis(&capture);
    expect::operations(
        &analysis,
        &[
            Expected::push(&registry, "lab/skopeo", "skopeo"),
            Expected::pull(&registry, "lab/skopeo", "skopeo"),
        ],
        true,
    );
    expect::no_mismatch(&analysis);
    let verified = analysis
        .sessions
        .iter()
        .filter(|s| s.digest_check == regtap_decode::DigestCheck::Verified)
        .count();
    assert_eq!(verified, 3, "{:#?}", analysis.sessions);
}

/// A name regtap does not serve, asked for through the same front door:
/// refused (421) and recorded, never passed to one of the upstreams.
fn unknown_host(world: &mut ReverseWorld) {
    let served = world.lab.served_registry_host();
    let port = served.rsplit(':').next().unwrap_or_default().to_owned();
    let capture = crate::captured(&mut world.lab, None, "reverse-unknown-host", |lab| {
        let mut curl = std::process::Command::new("curl");
        curl.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg("--cacert")
            .arg(&lab.ca_bundle)
            .arg("--proxy")
            .arg(lab.proxy_url())
            .args(["-H", &format!("Host: elsewhere.test:{port}")])
            .arg(format!("https://{served}/v2/"));
        let out = regtap_lab::process::run_output(curl).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.stdout.trim(), "421", "{}", out.combined());
    });
    assert_eq!(capture.flows.len(), 1, "{:#?}", capture.flows);
    let flow = &capture.flows[0];
    let error = flow.error.as_ref().unwrap_or_else(|| panic!("{flow:#?}"));
    assert_eq!(error.stage, ErrorStage::Misdirected);
    assert!(
        error.message.contains("elsewhere.test"),
        "{}",
        error.message
    );
    assert!(flow.response.is_none());
}
