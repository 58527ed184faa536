//! The test scenarios of regtap, shared by the decoder's, the HAR export's
//! and the TUI's tests (dev-dependency only; never part of the binary).
//!
//! Two kinds:
//!
//! - **dockerd 20.10 sequences**, built flow by flow with
//!   [`FlowBuilder`]: what dockerd 20.10.24 (Debian `docker.io`) sent to
//!   distribution 2.8.2 (Debian `docker-registry`) as seen through an
//!   intercepting proxy — `docker login`, a first push, a push to another
//!   repository (cross-repository mounts), a push again, `docker rmi` and
//!   pull, then login and push on a Basic-auth registry. The registry is
//!   registry.test:5000 with Docker-Hub-style token auth (realm
//!   `https://auth.test:5001/token`, service `registry.test`), the
//!   Basic-auth registry registry.test:5002 (realm `registry-lab-basic`).
//!   The image has three layers (256 KiB, 64 KiB, tiny) and a config.
//!   dockerd opened a new connection per request; times (ms after
//!   [`EPOCH`]) and the order of requests are the observed ones. Each
//!   builder's comment says what the wire showed. The `captures/` of the
//!   repository hold the same sequences recorded by the end-to-end tests
//!   (`push.jsonl`, `mount.jsonl`, `re-push.jsonl`, `pull.jsonl`,
//!   `login.jsonl`, `basic-auth-*.jsonl`).
//! - **real captures** of other clients, read from `captures/`:
//!   [`captured`] (`skopeo-copy`, `ctr` for containerd, `crane`, …) and
//!   [`captures`] (all of them).
//!
//! Where a test needs one exchange shaped a certain way, the builders
//! ([`ping`], [`token`], [`upload`], [`blob_get`], …) make it.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use regtap_capture::factory::FlowBuilder;
use regtap_capture::{Capture, Flow};
use sha2::Sha256;

pub const REGISTRY: &str = "https://registry.test:5000";
pub const BASIC_REGISTRY: &str = "https://registry.test:5002";
pub const REALM: &str = "https://auth.test:5001/token";
pub const SECRET: &[u8] = b"lab-http-secret";
/// Start of every sequence, in nanoseconds (the FlowBuilder epoch).
pub const EPOCH: i64 = 1_700_000_000_000_000_000;
/// alice's password, on both registries.
pub const PASSWORD: &str = "wonderland";
/// `alice:wonderland`.
pub const BASIC_ALICE: &str = "Basic YWxpY2U6d29uZGVybGFuZA==";
/// The refresh token `docker login` gets (an offline token).
pub const REFRESH_TOKEN: &str = "refresh-secret";

pub fn at(ms: i64) -> i64 {
    EPOCH + ms * 1_000_000
}

pub fn sha256(bytes: &[u8]) -> String {
    regtap_capture::sha256_hex(bytes)
}

pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256(bytes))
}

/// The image of the reference: three layers (256 KiB, 64 KiB, tiny) and a config.
pub struct Image {
    pub layers: Vec<Vec<u8>>,
    pub config: Vec<u8>,
}

impl Default for Image {
    fn default() -> Self {
        Image::new()
    }
}

impl Image {
    pub fn new() -> Self {
        Image {
            layers: vec![
                (0..262_435u32).map(|i| (i % 251) as u8).collect(),
                b"tiny layer".to_vec(),
                (0..65_787u32).map(|i| (i % 241) as u8).collect(),
            ],
            config: br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}"#.to_vec(),
        }
    }

    pub fn manifest(&self) -> Vec<u8> {
        let layers: Vec<String> = self
            .layers
            .iter()
            .map(|l| {
                format!(
                    r#"{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{},"digest":"{}"}}"#,
                    l.len(),
                    digest(l)
                )
            })
            .collect();
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{}"}},"layers":[{}]}}"#,
            self.config.len(),
            digest(&self.config),
            layers.join(",")
        )
        .into_bytes()
    }
}

/// An unsigned JWT as a token server would issue it (the decoder does not verify).
pub fn jwt(access: &[(&str, &[&str])], issued_ms: i64, lifetime_s: i64) -> String {
    let iat = at(issued_ms) / 1_000_000_000;
    let access: Vec<serde_json::Value> = access
        .iter()
        .map(|(name, actions)| {
            serde_json::json!({"type": "repository", "name": name, "actions": actions})
        })
        .collect();
    let claims = serde_json::json!({
        "iss": "auth.test", "sub": "alice", "aud": "registry.test",
        "exp": iat + lifetime_s, "nbf": iat - 1, "iat": iat,
        "jti": format!("jti-{issued_ms}"), "access": access,
    });
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.{}",
        b64(&serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "LAB1"})),
        b64(&claims),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 64])
    )
}

/// distribution's `_state`: URL-safe base64 (padded) of HMAC ‖ JSON.
pub fn state(repo: &str, uuid: &str, offset: u64) -> String {
    let json = format!(
        r#"{{"Name":"{repo}","UUID":"{uuid}","Offset":{offset},"StartedAt":"2023-11-14T22:13:20Z"}}"#
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(json.as_bytes());
    let mut bytes = mac.finalize().into_bytes().to_vec();
    bytes.extend_from_slice(json.as_bytes());
    let value = base64::engine::general_purpose::URL_SAFE.encode(bytes);
    value.replace('=', "%3D")
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `GET /v2/` without credentials: 401 with a Bearer challenge.
pub fn ping(id: u64, ms: i64, registry: &str) -> Flow {
    let (challenge, body) = if registry == BASIC_REGISTRY {
        (r#"Basic realm="registry-lab-basic""#.to_owned(), "")
    } else {
        (
            format!(r#"Bearer realm="{REALM}",service="registry.test""#),
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#,
        )
    };
    FlowBuilder::new(id, "GET", &format!("{registry}/v2/"))
        .start_ns(at(ms))
        .status(401)
        .response_header("Docker-Distribution-Api-Version", "registry/2.0")
        .response_header("WWW-Authenticate", &challenge)
        .response_body(body.as_bytes())
        .build()
}

/// `GET /v2/` with credentials: 200.
pub fn ping_ok(id: u64, ms: i64, registry: &str, authorization: &str) -> Flow {
    FlowBuilder::new(id, "GET", &format!("{registry}/v2/"))
        .start_ns(at(ms))
        .request_header("Authorization", authorization)
        .status(200)
        .response_body(b"{}")
        .build()
}

/// A token request for `scopes`, answered with a JWT granting `granted`.
pub fn token(id: u64, ms: i64, scopes: &[&str], granted: &[(&str, &[&str])]) -> (Flow, String) {
    let token = jwt(granted, ms, 300);
    let mut url = format!("{REALM}?account=alice");
    for scope in scopes {
        url.push_str("&scope=");
        url.push_str(
            &scope
                .replace(':', "%3A")
                .replace('/', "%2F")
                .replace(',', "%2C"),
        );
    }
    url.push_str("&service=registry.test");
    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300, "issued_at": "2023-11-14T22:13:20Z"});
    let flow = FlowBuilder::new(id, "GET", &url)
        .start_ns(at(ms))
        .request_header("Authorization", BASIC_ALICE)
        .status(200)
        .response_header("Content-Type", "application/json")
        .response_body(body.to_string().as_bytes())
        .build();
    (flow, token)
}

/// The login token request: no scope, offline token.
pub fn login_token(id: u64, ms: i64) -> (Flow, String) {
    let token = jwt(&[], ms, 300);
    let url =
        format!("{REALM}?account=alice&client_id=docker&offline_token=true&service=registry.test");
    let body =
        serde_json::json!({"token": token, "expires_in": 300, "refresh_token": REFRESH_TOKEN});
    let flow = FlowBuilder::new(id, "GET", &url)
        .start_ns(at(ms))
        .request_header("Authorization", BASIC_ALICE)
        .status(200)
        .response_body(body.to_string().as_bytes())
        .build();
    (flow, token)
}

/// `POST …/blobs/uploads/`: 202 with a relative Location carrying `_state`.
pub fn upload_start(id: u64, ms: i64, registry: &str, repo: &str, uuid: &str, auth: &str) -> Flow {
    let location = format!(
        "/v2/{repo}/blobs/uploads/{uuid}?_state={}",
        state(repo, uuid, 0)
    );
    FlowBuilder::new(id, "POST", &format!("{registry}/v2/{repo}/blobs/uploads/"))
        .start_ns(at(ms))
        .request_header("Authorization", auth)
        .status(202)
        .response_header("Location", &location)
        .response_header("Range", "0-0")
        .response_header("Docker-Upload-UUID", uuid)
        .build()
}

/// `PATCH` with the whole blob (chunked body): 202 with the new offset.
pub fn upload_chunk(
    id: u64,
    ms: i64,
    registry: &str,
    repo: &str,
    uuid: &str,
    auth: &str,
    bytes: &[u8],
) -> Flow {
    let url = format!(
        "{registry}/v2/{repo}/blobs/uploads/{uuid}?_state={}",
        state(repo, uuid, 0)
    );
    let end = bytes.len().saturating_sub(1);
    FlowBuilder::new(id, "PATCH", &url)
        .start_ns(at(ms))
        .request_header("Authorization", auth)
        .request_header("Content-Type", "application/octet-stream")
        .request_header("Transfer-Encoding", "chunked")
        .request_body(bytes)
        .status(202)
        .response_header(
            "Location",
            &format!(
                "/v2/{repo}/blobs/uploads/{uuid}?_state={}",
                state(repo, uuid, bytes.len() as u64)
            ),
        )
        .response_header("Range", &format!("0-{end}"))
        .response_header("Docker-Upload-UUID", uuid)
        .build()
}

/// `PUT ?digest=` closing an upload: 201. Each argument is a part of the request.
#[allow(clippy::too_many_arguments)]
pub fn upload_finish(
    id: u64,
    ms: i64,
    registry: &str,
    repo: &str,
    uuid: &str,
    auth: &str,
    offset: u64,
    blob: &str,
) -> Flow {
    let url = format!(
        "{registry}/v2/{repo}/blobs/uploads/{uuid}?_state={}&digest={}",
        state(repo, uuid, offset),
        blob.replace(':', "%3A")
    );
    FlowBuilder::new(id, "PUT", &url)
        .start_ns(at(ms))
        .request_header("Authorization", auth)
        .status(201)
        .response_header("Location", &format!("/v2/{repo}/blobs/{blob}"))
        .response_header("Docker-Content-Digest", blob)
        .build()
}

pub fn blob_head(
    id: u64,
    ms: i64,
    registry: &str,
    repo: &str,
    blob: &str,
    auth: &str,
    status: u16,
) -> Flow {
    let mut builder = FlowBuilder::new(id, "HEAD", &format!("{registry}/v2/{repo}/blobs/{blob}"))
        .start_ns(at(ms))
        .request_header("Authorization", auth)
        .status(status);
    if status == 200 {
        builder = builder.response_header("Docker-Content-Digest", blob);
    }
    builder.build()
}

pub fn blob_get(id: u64, ms: i64, registry: &str, repo: &str, bytes: &[u8], auth: &str) -> Flow {
    FlowBuilder::new(
        id,
        "GET",
        &format!("{registry}/v2/{repo}/blobs/{}", digest(bytes)),
    )
    .start_ns(at(ms))
    .request_header("Authorization", auth)
    .status(200)
    .response_header("Docker-Content-Digest", &digest(bytes))
    .response_body_summary(bytes.len() as u64, &sha256(bytes))
    .build()
}

pub fn mount(id: u64, ms: i64, repo: &str, blob: &str, from: &str, auth: &str) -> Flow {
    let url = format!(
        "{REGISTRY}/v2/{repo}/blobs/uploads/?from={}&mount={}",
        from.replace('/', "%2F"),
        blob.replace(':', "%3A")
    );
    FlowBuilder::new(id, "POST", &url)
        .start_ns(at(ms))
        .request_header("Authorization", auth)
        .status(201)
        .response_header("Location", &format!("/v2/{repo}/blobs/{blob}"))
        .response_header("Docker-Content-Digest", blob)
        .build()
}

pub fn manifest_put(
    id: u64,
    ms: i64,
    registry: &str,
    repo: &str,
    tag: &str,
    body: &[u8],
    auth: &str,
) -> Flow {
    FlowBuilder::new(id, "PUT", &format!("{registry}/v2/{repo}/manifests/{tag}"))
        .start_ns(at(ms))
        .request_header("Authorization", auth)
        .request_header(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .request_body(body)
        .status(201)
        .response_header(
            "Location",
            &format!("/v2/{repo}/manifests/{}", digest(body)),
        )
        .response_header("Docker-Content-Digest", &digest(body))
        .build()
}

/// `docker login registry.test:5000`: ping 401, token, ping 200.
pub fn login(first_id: u64, ms: i64) -> Vec<Flow> {
    let (token_flow, token) = login_token(first_id + 1, ms + 14);
    vec![
        ping(first_id, ms, REGISTRY),
        token_flow,
        ping_ok(first_id + 2, ms + 26, REGISTRY, &bearer(&token)),
    ]
}

/// One full upload (POST, PATCH, PUT) as three flows at the given times.
pub fn upload(
    ids: [u64; 3],
    ms: [i64; 3],
    registry: &str,
    repo: &str,
    uuid: &str,
    auth: &str,
    bytes: &[u8],
) -> Vec<Flow> {
    vec![
        upload_start(ids[0], ms[0], registry, repo, uuid, auth),
        upload_chunk(ids[1], ms[1], registry, repo, uuid, auth, bytes),
        upload_finish(
            ids[2],
            ms[2],
            registry,
            repo,
            uuid,
            auth,
            bytes.len() as u64,
            &digest(bytes),
        ),
    ]
}

/// The first `docker push registry.test:5000/lab/seq:latest` (20 requests,
/// the first at `ms`): ping, token, three parallel uploads whose POSTs,
/// PATCHes and PUTs interleave, HEADs of the layers and of the config
/// (404), the config's upload, its HEAD, the manifest.
pub fn first_push(image: &Image, first_id: u64, ms: i64) -> Vec<Flow> {
    let (registry, repo) = (REGISTRY, "lab/seq");
    let i = first_id;
    let (t, token) = token(
        i + 1,
        ms + 15,
        &["repository:lab/seq:push,pull"],
        &[("lab/seq", &["pull", "push"])],
    );
    let auth = bearer(&token);
    let mut flows = vec![ping(i, ms, registry), t];
    let a = &auth;
    let [l1, l2, l3] = [&image.layers[0], &image.layers[1], &image.layers[2]];
    flows.extend([
        upload_start(i + 2, ms + 33, registry, repo, "uuid-1", a),
        upload_start(i + 3, ms + 38, registry, repo, "uuid-2", a),
        upload_start(i + 4, ms + 40, registry, repo, "uuid-3", a),
        // PATCHes in another order than the POSTs.
        upload_chunk(i + 5, ms + 74, registry, repo, "uuid-3", a, l3),
        upload_chunk(i + 6, ms + 75, registry, repo, "uuid-1", a, l1),
        upload_chunk(i + 7, ms + 76, registry, repo, "uuid-2", a, l2),
        upload_finish(
            i + 8,
            ms + 109,
            registry,
            repo,
            "uuid-2",
            a,
            l2.len() as u64,
            &digest(l2),
        ),
        upload_finish(
            i + 9,
            ms + 140,
            registry,
            repo,
            "uuid-3",
            a,
            l3.len() as u64,
            &digest(l3),
        ),
        upload_finish(
            i + 10,
            ms + 142,
            registry,
            repo,
            "uuid-1",
            a,
            l1.len() as u64,
            &digest(l1),
        ),
        blob_head(i + 11, ms + 156, registry, repo, &digest(l1), a, 200),
        blob_head(i + 12, ms + 169, registry, repo, &digest(l3), a, 200),
        blob_head(i + 13, ms + 170, registry, repo, &digest(l2), a, 200),
        blob_head(
            i + 14,
            ms + 185,
            registry,
            repo,
            &digest(&image.config),
            a,
            404,
        ),
    ]);
    flows.extend(upload(
        [i + 15, i + 16, i + 17],
        [ms + 196, ms + 209, ms + 224],
        registry,
        repo,
        "uuid-4",
        a,
        &image.config,
    ));
    flows.push(blob_head(
        i + 18,
        ms + 239,
        registry,
        repo,
        &digest(&image.config),
        a,
        200,
    ));
    flows.push(manifest_put(
        i + 19,
        ms + 251,
        registry,
        repo,
        "latest",
        &image.manifest(),
        a,
    ));
    flows
}

/// `docker push registry.test:5002/lab/seq:latest` on the Basic-auth
/// registry: no token; dockerd first asks for the three layers (404), then
/// uploads them in parallel, checks them, uploads the config and puts the
/// manifest (22 requests, the first at `ms`).
pub fn basic_push(image: &Image, first_id: u64, ms: i64) -> Vec<Flow> {
    let (registry, repo, a) = (BASIC_REGISTRY, "lab/seq", BASIC_ALICE);
    let i = first_id;
    let [l1, l2, l3] = [&image.layers[0], &image.layers[1], &image.layers[2]];
    let finish = |id: u64, at_ms: i64, uuid: &str, bytes: &[u8]| {
        upload_finish(
            id,
            at_ms,
            registry,
            repo,
            uuid,
            a,
            bytes.len() as u64,
            &digest(bytes),
        )
    };
    let mut flows = vec![
        ping(i, ms, registry),
        blob_head(i + 1, ms + 23, registry, repo, &digest(l2), a, 404),
        blob_head(i + 2, ms + 24, registry, repo, &digest(l1), a, 404),
        blob_head(i + 3, ms + 25, registry, repo, &digest(l3), a, 404),
        upload_start(i + 4, ms + 44, registry, repo, "uuid-1", a),
        upload_start(i + 5, ms + 54, registry, repo, "uuid-2", a),
        upload_start(i + 6, ms + 56, registry, repo, "uuid-3", a),
        upload_chunk(i + 7, ms + 79, registry, repo, "uuid-1", a, l1),
        upload_chunk(i + 8, ms + 83, registry, repo, "uuid-2", a, l2),
        upload_chunk(i + 9, ms + 84, registry, repo, "uuid-3", a, l3),
        finish(i + 10, ms + 109, "uuid-1", l1),
        finish(i + 11, ms + 122, "uuid-2", l2),
        finish(i + 12, ms + 125, "uuid-3", l3),
        blob_head(i + 13, ms + 146, registry, repo, &digest(l1), a, 200),
        blob_head(i + 14, ms + 163, registry, repo, &digest(l3), a, 200),
        blob_head(i + 15, ms + 165, registry, repo, &digest(l2), a, 200),
        blob_head(
            i + 16,
            ms + 187,
            registry,
            repo,
            &digest(&image.config),
            a,
            404,
        ),
    ];
    flows.extend(upload(
        [i + 17, i + 18, i + 19],
        [ms + 205, ms + 222, ms + 242],
        registry,
        repo,
        "uuid-4",
        a,
        &image.config,
    ));
    flows.push(blob_head(
        i + 20,
        ms + 259,
        registry,
        repo,
        &digest(&image.config),
        a,
        200,
    ));
    flows.push(manifest_put(
        i + 21,
        ms + 272,
        registry,
        repo,
        "latest",
        &image.manifest(),
        a,
    ));
    flows
}

/// The push of the same image to lab/seq-copy: HEADs 404, a second token
/// with the pull scope on lab/seq, mounts (201), the config upload, the manifest.
pub fn cross_repo_push(image: &Image, first_id: u64, ms: i64) -> Vec<Flow> {
    let repo = "lab/seq-copy";
    let i = first_id;
    let (t1, token1) = token(
        i + 1,
        ms + 17,
        &["repository:lab/seq-copy:push,pull"],
        &[("lab/seq-copy", &["pull", "push"])],
    );
    let mount_scopes = [
        "repository:lab/seq-copy:push,pull",
        "repository:lab/seq:pull",
    ];
    let mount_grant: &[(&str, &[&str])] =
        &[("lab/seq-copy", &["pull", "push"]), ("lab/seq", &["pull"])];
    let (t2, token2) = token(i + 5, ms + 60, &mount_scopes, mount_grant);
    let (t3, token3) = token(i + 7, ms + 79, &mount_scopes, mount_grant);
    let (t4, token4) = token(i + 8, ms + 97, &mount_scopes, mount_grant);
    let (a1, a2, a3, a4) = (
        bearer(&token1),
        bearer(&token2),
        bearer(&token3),
        bearer(&token4),
    );
    let d = |b: &Vec<u8>| digest(b);
    let [l1, l2, l3] = [&image.layers[0], &image.layers[1], &image.layers[2]];
    let mut flows = vec![
        ping(i, ms, REGISTRY),
        t1,
        blob_head(i + 2, ms + 41, REGISTRY, repo, &d(l3), &a1, 404),
        blob_head(i + 3, ms + 44, REGISTRY, repo, &d(l1), &a1, 404),
        blob_head(i + 4, ms + 46, REGISTRY, repo, &d(l2), &a1, 404),
        t2,
        mount(i + 6, ms + 76, repo, &d(l3), "lab/seq", &a2),
        t3,
        t4,
        mount(i + 9, ms + 98, repo, &d(l1), "lab/seq", &a3),
        mount(i + 10, ms + 115, repo, &d(l2), "lab/seq", &a4),
        blob_head(i + 11, ms + 118, REGISTRY, repo, &d(l3), &a4, 200),
        blob_head(i + 12, ms + 121, REGISTRY, repo, &d(l1), &a4, 200),
        blob_head(i + 13, ms + 135, REGISTRY, repo, &d(l2), &a4, 200),
        blob_head(
            i + 14,
            ms + 147,
            REGISTRY,
            repo,
            &d(&image.config),
            &a4,
            404,
        ),
    ];
    flows.extend(upload(
        [i + 15, i + 16, i + 17],
        [ms + 158, ms + 171, ms + 184],
        REGISTRY,
        repo,
        "uuid-5",
        &a4,
        &image.config,
    ));
    flows.push(blob_head(
        i + 18,
        ms + 199,
        REGISTRY,
        repo,
        &d(&image.config),
        &a4,
        200,
    ));
    flows.push(manifest_put(
        i + 19,
        ms + 209,
        REGISTRY,
        repo,
        "latest",
        &image.manifest(),
        &a4,
    ));
    flows
}

/// Push again: every blob is already there.
pub fn re_push(image: &Image, first_id: u64, ms: i64) -> Vec<Flow> {
    let i = first_id;
    let (t, token) = token(
        i + 1,
        ms + 11,
        &["repository:lab/seq:push,pull"],
        &[("lab/seq", &["pull", "push"])],
    );
    let a = bearer(&token);
    let mut flows = vec![ping(i, ms, REGISTRY), t];
    let blobs = [
        &image.layers[2],
        &image.layers[0],
        &image.layers[1],
        &image.config,
    ];
    for (n, blob) in blobs.iter().enumerate() {
        flows.push(blob_head(
            i + 2 + n as u64,
            ms + 30 + n as i64,
            REGISTRY,
            "lab/seq",
            &digest(blob),
            &a,
            200,
        ));
    }
    flows.push(manifest_put(
        i + 6,
        ms + 60,
        REGISTRY,
        "lab/seq",
        "latest",
        &image.manifest(),
        &a,
    ));
    flows
}

/// `docker pull registry.test:5000/lab/seq:latest` after `docker rmi`.
pub fn pull(image: &Image, first_id: u64, ms: i64) -> Vec<Flow> {
    let i = first_id;
    let (t, token) = token(
        i + 1,
        ms + 11,
        &["repository:lab/seq:pull"],
        &[("lab/seq", &["pull"])],
    );
    let a = bearer(&token);
    let manifest = image.manifest();
    let mut flows = vec![
        ping(i, ms, REGISTRY),
        t,
        FlowBuilder::new(
            i + 2,
            "HEAD",
            &format!("{REGISTRY}/v2/lab/seq/manifests/latest"),
        )
        .start_ns(at(ms + 22))
        .request_header("Authorization", &a)
        .status(200)
        .response_header("Docker-Content-Digest", &digest(&manifest))
        .response_header(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .build(),
        FlowBuilder::new(
            i + 3,
            "GET",
            &format!("{REGISTRY}/v2/lab/seq/manifests/{}", digest(&manifest)),
        )
        .start_ns(at(ms + 40))
        .request_header("Authorization", &a)
        .status(200)
        .response_header("Docker-Content-Digest", &digest(&manifest))
        .response_header(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .response_body(&manifest)
        .build(),
        blob_get(i + 4, ms + 62, REGISTRY, "lab/seq", &image.config, &a),
    ];
    for (n, layer) in [&image.layers[2], &image.layers[1], &image.layers[0]]
        .iter()
        .enumerate()
    {
        flows.push(blob_get(
            i + 5 + n as u64,
            ms + 66 + n as i64,
            REGISTRY,
            "lab/seq",
            layer,
            &a,
        ));
    }
    flows
}

/// `docker login registry.test:5002` with Basic auth.
pub fn basic_login(first_id: u64, ms: i64) -> Vec<Flow> {
    vec![
        ping(first_id, ms, BASIC_REGISTRY),
        ping_ok(first_id + 1, ms + 11, BASIC_REGISTRY, BASIC_ALICE),
    ]
}

/// Every sequence of the reference document, in its order.
pub fn whole_reference() -> Vec<Flow> {
    let image = Image::new();
    let mut flows = login(1, 0);
    flows.extend(first_push(&image, 4, 676));
    flows.extend(cross_repo_push(&image, 24, 1598));
    flows.extend(re_push(&image, 44, 2451));
    flows.extend(pull(&image, 51, 3217));
    flows.extend(basic_login(59, 4081));
    flows.extend(basic_push(&image, 61, 4756));
    flows
}

/// `copies` times the whole dockerd reference sequence (79 flows each), one
/// after the other, with fresh ids, times and upload ids.
pub fn reference_repeated(copies: usize) -> Vec<Flow> {
    let one = whole_reference();
    let mut flows = Vec::with_capacity(one.len() * copies);
    for copy in 0..copies {
        for flow in &one {
            let mut f = flow.clone();
            f.id += (copy * 1000) as u64;
            // Upload ids are unique per registry.
            let fresh = format!("uuid-{copy}-");
            f.request.url = f.request.url.replace("uuid-", &fresh);
            if let Some(response) = f.response.as_mut() {
                for header in &mut response.headers.0 {
                    if let regtap_capture::Data::Text(value) = &mut header.1 {
                        *value = value.replace("uuid-", &fresh);
                    }
                }
            }
            let shift = (copy as i64) * 10_000_000_000;
            f.timing.request_start += shift;
            for t in [
                &mut f.timing.request_end,
                &mut f.timing.response_head,
                &mut f.timing.response_end,
            ]
            .into_iter()
            .flatten()
            {
                *t += shift;
            }
            flows.push(f);
        }
    }
    flows
}

/// `flows` as the proxy records them: dockerd opens one TCP+TLS connection
/// per request (a client port each), through a CONNECT to the registry's
/// authority, which listens on 127.0.0.1.
pub fn as_recorded(mut flows: Vec<Flow>) -> Vec<Flow> {
    for flow in &mut flows {
        flow.client_addr = Some(format!("127.0.0.1:{}", 40_000 + flow.id));
        let authority = flow
            .request
            .url
            .split('/')
            .nth(2)
            .unwrap_or_default()
            .to_owned();
        let port = authority.rsplit(':').next().unwrap_or("443").to_owned();
        flow.connect_authority = Some(authority);
        flow.server_addr = Some(format!("127.0.0.1:{port}"));
    }
    flows
}

/// Flows in the order they finished (what a live proxy hands over).
pub fn in_finishing_order(flows: &[Flow]) -> Vec<Flow> {
    let mut sorted = flows.to_vec();
    sorted.sort_by_key(|f| (f.timing.end(), f.id));
    sorted
}

/// The repository's `captures/` directory.
fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../captures")
}

/// The flows of `captures/NAME.jsonl`, a capture recorded by the
/// end-to-end tests with the real client (`skopeo-copy`, `ctr`, `crane`, …).
pub fn captured(name: &str) -> Vec<Flow> {
    let path = captures_dir().join(format!("{name}.jsonl"));
    Capture::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .flows
}

/// Every `captures/*.jsonl`, by file stem, sorted (listed when called, so a
/// capture added later is covered without touching a test).
pub fn captures() -> Vec<(String, Vec<Flow>)> {
    let dir = captures_dir();
    let mut stems: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    stems.sort();
    stems
        .into_iter()
        .map(|stem| {
            let flows = captured(&stem);
            (stem, flows)
        })
        .collect()
}
