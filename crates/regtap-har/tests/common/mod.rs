//! Test data shared by the export tests: flows built with `FlowBuilder` that
//! replay /work/shared/reference/dockerd-20.10-sequences.md (dockerd 20.10
//! against distribution 2.8 with token auth on :5000 and Basic auth on :5002),
//! and the capture files in the repository's `captures/`.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use regtap_capture::factory::FlowBuilder;
use regtap_capture::{Capture, Flow, sha256_hex};

pub const TOKEN_REGISTRY: &str = "registry.test:5000";
pub const BASIC_REGISTRY: &str = "registry.test:5002";
pub const AUTH: &str = "auth.test:5001";
pub const BASIC_USER: &str = "lab";
pub const BASIC_PASSWORD: &str = "lab-basic-password-5002";
pub const LOGIN_PASSWORD: &str = "lab-token-password-5000";
const START_NS: i64 = 1_721_668_000_000_000_000;

/// `captures/*.jsonl` of the repository, sorted, with their flows.
pub fn captures() -> Vec<(String, Vec<Flow>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../captures");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let capture =
                Capture::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            (stem, capture.flows)
        })
        .collect()
}

/// Every input the export tests run over: the captures and the dockerd sequences.
pub fn all_inputs() -> Vec<(String, Vec<Flow>)> {
    let mut inputs = captures();
    inputs.push(("dockerd-20.10-sequences".to_owned(), dockerd_sequences()));
    inputs
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT shaped like distribution's token server issues (not signed: the
/// decoder does not verify).
pub fn jwt(scopes: &[(&str, &str)], serial: u32) -> String {
    let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": "LAB1:KEY2:ID34"});
    let iat = START_NS / 1_000_000_000 + i64::from(serial);
    let access: Vec<_> = scopes
        .iter()
        .map(|(name, actions)| {
            serde_json::json!({"type": "repository", "name": name, "actions": actions.split(',').collect::<Vec<_>>()})
        })
        .collect();
    let claims = serde_json::json!({
        "iss": "lab-token-server", "sub": "lab-user", "aud": "registry.test",
        "exp": iat + 300, "nbf": iat - 10, "iat": iat,
        "jti": format!("lab-jti-{serial:04}"), "access": access,
    });
    let signature = sha256_hex(format!("signature {serial}").as_bytes());
    format!(
        "{}.{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes()),
        b64url(signature.as_bytes())
    )
}

/// A distribution `_state` value: 32 MAC bytes then the JSON, base64url,
/// percent-encoded for a query string.
pub fn state(repository: &str, upload_id: &str, offset: u64) -> String {
    let payload = format!(
        r#"{{"Name":"{repository}","UUID":"{upload_id}","Offset":{offset},"StartedAt":"2024-07-22T17:06:43.565871557Z"}}"#
    );
    let mac = hex_bytes(&sha256_hex(format!("mac {payload}").as_bytes()));
    let mut raw = mac;
    raw.extend_from_slice(payload.as_bytes());
    URL_SAFE_NO_PAD.encode(raw)
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Blobs of the image: (digest hex, size).
struct Image {
    layers: [(String, u64); 3],
    config: (String, u64),
    manifest: String,
}

fn image() -> Image {
    let layers = [
        (sha256_hex(b"layer one"), 262_435),
        (sha256_hex(b"layer two"), 241),
        (sha256_hex(b"layer three"), 65_787),
    ];
    let config = (sha256_hex(b"config"), 766);
    let manifest = serde_json::to_string_pretty(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": config.1, "digest": format!("sha256:{}", config.0)},
        "layers": layers.iter().map(|(d, s)| serde_json::json!({
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": s, "digest": format!("sha256:{d}")})).collect::<Vec<_>>(),
    }))
    .unwrap_or_default();
    Image {
        layers,
        config,
        manifest,
    }
}

const MANIFEST_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Builds the flows of the reference, in order.
struct Sequence {
    flows: Vec<Flow>,
    next_id: u64,
    token_serial: u32,
    upload_serial: u32,
}

impl Sequence {
    fn builder(&mut self, t_seconds: f64, method: &str, url: &str) -> FlowBuilder {
        // Ids are assigned in start order once every flow is built.
        self.next_id += 1;
        FlowBuilder::new(self.next_id, method, url)
            .start_ns(START_NS + (t_seconds * 1e9).round() as i64)
            .request_header(
                "User-Agent",
                "docker/20.10.24 go/go1.19.8 kernel/6.1.0 os/linux arch/amd64",
            )
    }

    fn push(&mut self, flow: Flow) {
        self.flows.push(flow);
    }

    fn challenge(&mut self, t: f64, registry: &str, bearer: bool) {
        let challenge = if bearer {
            format!(r#"Bearer realm="https://{AUTH}/token",service="registry.test""#)
        } else {
            r#"Basic realm="registry-lab-basic""#.to_owned()
        };
        let flow = self
            .builder(t, "GET", &format!("https://{registry}/v2/"))
            .status(401)
            .response_header("Content-Type", "application/json")
            .response_header("Docker-Distribution-Api-Version", "registry/2.0")
            .response_header("Www-Authenticate", &challenge)
            .response_body(br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#)
            .build();
        self.push(flow);
    }

    /// A token request: GET with Basic credentials (login) or with a scope.
    fn token(&mut self, t: f64, scopes: &[(&str, &str)], login: bool) -> String {
        self.token_serial += 1;
        let token = jwt(scopes, self.token_serial);
        let mut query = if login {
            "account=lab&client_id=docker&offline_token=true&service=registry.test".to_owned()
        } else {
            "account=lab".to_owned()
        };
        for (name, actions) in scopes {
            query.push_str(&format!(
                "&scope=repository%3A{}%3A{}",
                name.replace('/', "%2F"),
                actions.replace(',', "%2C")
            ));
        }
        if !login {
            query.push_str("&service=registry.test");
        }
        let body = serde_json::json!({
            "token": token, "access_token": token, "expires_in": 300,
            "issued_at": "2024-07-22T17:06:40Z",
        });
        let basic = STANDARD.encode(format!("lab:{LOGIN_PASSWORD}"));
        let flow = self
            .builder(t, "GET", &format!("https://{AUTH}/token?{query}"))
            .request_header("Authorization", &format!("Basic {basic}"))
            .status(200)
            .response_header("Content-Type", "application/json")
            .response_body(body.to_string().as_bytes())
            .build();
        self.push(flow);
        token
    }

    fn authorized(&mut self, t: f64, method: &str, url: &str, auth: &str) -> FlowBuilder {
        self.builder(t, method, url)
            .request_header("Authorization", auth)
    }

    fn ping(&mut self, t: f64, registry: &str, auth: &str) {
        let flow = self
            .authorized(t, "GET", &format!("https://{registry}/v2/"), auth)
            .status(200)
            .response_header("Content-Type", "application/json")
            .response_header("Docker-Distribution-Api-Version", "registry/2.0")
            .response_body(b"{}")
            .build();
        self.push(flow);
    }

    fn head_blob(
        &mut self,
        t: f64,
        registry: &str,
        repo: &str,
        digest: &str,
        size: Option<u64>,
        auth: &str,
    ) {
        let builder = self.authorized(
            t,
            "HEAD",
            &format!("https://{registry}/v2/{repo}/blobs/sha256:{digest}"),
            auth,
        );
        let flow = match size {
            Some(size) => builder
                .status(200)
                .response_header("Content-Length", &size.to_string())
                .response_header("Docker-Content-Digest", &format!("sha256:{digest}")),
            None => builder.status(404),
        }
        .response_header("Docker-Distribution-Api-Version", "registry/2.0")
        .build();
        self.push(flow);
    }

    /// POST, PATCH and PUT of one blob, at the three given times.
    fn upload(
        &mut self,
        times: [f64; 3],
        registry: &str,
        repo: &str,
        blob: &(String, u64),
        auth: &str,
    ) {
        self.upload_serial += 1;
        let upload_id = format!("5eed{:04x}-3a56-46e5-9512-f5c9559f2179", self.upload_serial);
        let base = format!("https://{registry}");
        let location = |offset| {
            format!(
                "/v2/{repo}/blobs/uploads/{upload_id}?_state={}",
                state(repo, &upload_id, offset)
            )
        };
        let started = location(0);
        let flow = self
            .authorized(
                times[0],
                "POST",
                &format!("{base}/v2/{repo}/blobs/uploads/"),
                auth,
            )
            .request_header("Content-Length", "0")
            .status(202)
            .response_header("Location", &started)
            .response_header("Range", "0-0")
            .response_header("Docker-Upload-Uuid", &upload_id)
            .build();
        self.push(flow);
        let patched = location(blob.1);
        let flow = self
            .authorized(times[1], "PATCH", &format!("{base}{started}"), auth)
            .request_header("Content-Type", "application/octet-stream")
            .request_header("Transfer-Encoding", "chunked")
            .request_body_summary(blob.1, &blob.0)
            .status(202)
            .response_header("Location", &patched)
            .response_header("Range", &format!("0-{}", blob.1 - 1))
            .response_header("Docker-Upload-Uuid", &upload_id)
            .build();
        self.push(flow);
        let flow = self
            .authorized(
                times[2],
                "PUT",
                &format!("{base}{patched}&digest=sha256%3A{}", blob.0),
                auth,
            )
            .status(201)
            .response_header("Location", &format!("/v2/{repo}/blobs/sha256:{}", blob.0))
            .response_header("Docker-Content-Digest", &format!("sha256:{}", blob.0))
            .build();
        self.push(flow);
    }

    fn mount(&mut self, t: f64, registry: &str, repo: &str, from: &str, digest: &str, auth: &str) {
        let url = format!(
            "https://{registry}/v2/{repo}/blobs/uploads/?from={}&mount=sha256%3A{digest}",
            from.replace('/', "%2F")
        );
        let flow = self
            .authorized(t, "POST", &url, auth)
            .status(201)
            .response_header("Location", &format!("/v2/{repo}/blobs/sha256:{digest}"))
            .response_header("Docker-Content-Digest", &format!("sha256:{digest}"))
            .build();
        self.push(flow);
    }

    fn put_manifest(&mut self, t: f64, registry: &str, repo: &str, manifest: &str, auth: &str) {
        let digest = sha256_hex(manifest.as_bytes());
        let flow = self
            .authorized(
                t,
                "PUT",
                &format!("https://{registry}/v2/{repo}/manifests/latest"),
                auth,
            )
            .request_header("Content-Type", MANIFEST_TYPE)
            .request_body(manifest.as_bytes())
            .status(201)
            .response_header("Location", &format!("/v2/{repo}/manifests/sha256:{digest}"))
            .response_header("Docker-Content-Digest", &format!("sha256:{digest}"))
            .build();
        self.push(flow);
    }
}

/// The reference sequences: login and three pushes and a pull on the token
/// registry, then login and a push on the Basic-auth registry.
pub fn dockerd_sequences() -> Vec<Flow> {
    let image = image();
    let [l1, l2, l3] = &image.layers;
    let config = &image.config;
    let mut s = Sequence {
        flows: Vec::new(),
        next_id: 0,
        token_serial: 0,
        upload_serial: 0,
    };
    let reg = TOKEN_REGISTRY;

    // docker login registry.test:5000
    s.challenge(0.000, reg, true);
    let login = s.token(0.014, &[], true);
    s.ping(0.026, reg, &format!("Bearer {login}"));

    // docker push (first push)
    s.challenge(0.676, reg, true);
    let push = format!(
        "Bearer {}",
        s.token(0.691, &[("lab/seq", "push,pull")], false)
    );
    let repo = "lab/seq";
    // Three parallel uploads: their POSTs, PATCHes and PUTs interleave.
    s.upload([0.709, 0.750, 0.785], reg, repo, l1, &push);
    s.upload([0.714, 0.751, 0.816], reg, repo, l2, &push);
    s.upload([0.716, 0.752, 0.818], reg, repo, l3, &push);
    s.head_blob(0.832, reg, repo, &l1.0, Some(l1.1), &push);
    s.head_blob(0.845, reg, repo, &l3.0, Some(l3.1), &push);
    s.head_blob(0.846, reg, repo, &l2.0, Some(l2.1), &push);
    s.head_blob(0.861, reg, repo, &config.0, None, &push);
    s.upload([0.872, 0.885, 0.900], reg, repo, config, &push);
    s.head_blob(0.915, reg, repo, &config.0, Some(config.1), &push);
    s.put_manifest(0.927, reg, repo, &image.manifest, &push);

    // docker push to lab/seq-copy: cross-repository mounts
    let copy = "lab/seq-copy";
    s.challenge(1.598, reg, true);
    let first = format!("Bearer {}", s.token(1.615, &[(copy, "push,pull")], false));
    s.head_blob(1.639, reg, copy, &l3.0, None, &first);
    s.head_blob(1.642, reg, copy, &l1.0, None, &first);
    s.head_blob(1.644, reg, copy, &l2.0, None, &first);
    let both = [(copy, "push,pull"), ("lab/seq", "pull")];
    let mount = format!("Bearer {}", s.token(1.658, &both, false));
    s.mount(1.674, reg, copy, repo, &l3.0, &mount);
    let mount2 = format!("Bearer {}", s.token(1.677, &both, false));
    let mount3 = format!("Bearer {}", s.token(1.695, &both, false));
    s.mount(1.696, reg, copy, repo, &l1.0, &mount2);
    s.mount(1.713, reg, copy, repo, &l2.0, &mount3);
    s.head_blob(1.716, reg, copy, &l3.0, Some(l3.1), &mount3);
    s.head_blob(1.719, reg, copy, &l1.0, Some(l1.1), &mount3);
    s.head_blob(1.733, reg, copy, &l2.0, Some(l2.1), &mount3);
    s.head_blob(1.745, reg, copy, &config.0, None, &mount3);
    s.upload([1.756, 1.769, 1.782], reg, copy, config, &mount3);
    s.head_blob(1.797, reg, copy, &config.0, Some(config.1), &mount3);
    s.put_manifest(1.807, reg, copy, &image.manifest, &mount3);

    // docker push again: everything already there
    s.challenge(2.451, reg, true);
    let again = format!("Bearer {}", s.token(2.462, &[(repo, "push,pull")], false));
    for (t, blob) in [(2.481, l3), (2.482, l1), (2.483, l2), (2.498, config)] {
        s.head_blob(t, reg, repo, &blob.0, Some(blob.1), &again);
    }
    s.put_manifest(2.511, reg, repo, &image.manifest, &again);

    // docker rmi + docker pull
    s.challenge(3.217, reg, true);
    let pull = format!("Bearer {}", s.token(3.228, &[(repo, "pull")], false));
    let manifest_digest = sha256_hex(image.manifest.as_bytes());
    let flow = s
        .authorized(
            3.239,
            "HEAD",
            &format!("https://{reg}/v2/{repo}/manifests/latest"),
            &pull,
        )
        .request_header("Accept", MANIFEST_TYPE)
        .status(200)
        .response_header("Content-Type", MANIFEST_TYPE)
        .response_header("Content-Length", &image.manifest.len().to_string())
        .response_header(
            "Docker-Content-Digest",
            &format!("sha256:{manifest_digest}"),
        )
        .build();
    s.push(flow);
    let flow = s
        .authorized(
            3.257,
            "GET",
            &format!("https://{reg}/v2/{repo}/manifests/sha256:{manifest_digest}"),
            &pull,
        )
        .request_header("Accept", MANIFEST_TYPE)
        .status(200)
        .response_header("Content-Type", MANIFEST_TYPE)
        .response_header(
            "Docker-Content-Digest",
            &format!("sha256:{manifest_digest}"),
        )
        .response_body(image.manifest.as_bytes())
        .build();
    s.push(flow);
    for (t, blob) in [(3.279, config), (3.283, l3), (3.284, l2), (3.285, l1)] {
        let flow = s
            .authorized(
                t,
                "GET",
                &format!("https://{reg}/v2/{repo}/blobs/sha256:{}", blob.0),
                &pull,
            )
            .status(200)
            .response_header("Content-Type", "application/octet-stream")
            .response_header("Docker-Content-Digest", &format!("sha256:{}", blob.0))
            .response_body_summary(blob.1, &blob.0)
            .build();
        s.push(flow);
    }

    // docker login registry.test:5002 and push (Basic auth)
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{BASIC_USER}:{BASIC_PASSWORD}"))
    );
    let reg = BASIC_REGISTRY;
    s.challenge(4.081, reg, false);
    s.ping(4.092, reg, &basic);
    s.challenge(4.756, reg, false);
    for (t, blob) in [(4.779, l2), (4.780, l1), (4.781, l3)] {
        s.head_blob(t, reg, repo, &blob.0, None, &basic);
    }
    s.upload([4.800, 4.835, 4.865], reg, repo, l1, &basic);
    s.upload([4.810, 4.839, 4.878], reg, repo, l2, &basic);
    s.upload([4.812, 4.840, 4.881], reg, repo, l3, &basic);
    s.head_blob(4.902, reg, repo, &l1.0, Some(l1.1), &basic);
    s.head_blob(4.919, reg, repo, &l3.0, Some(l3.1), &basic);
    s.head_blob(4.921, reg, repo, &l2.0, Some(l2.1), &basic);
    s.head_blob(4.943, reg, repo, &config.0, None, &basic);
    s.upload([4.961, 4.978, 4.998], reg, repo, config, &basic);
    s.head_blob(5.015, reg, repo, &config.0, Some(config.1), &basic);
    s.put_manifest(5.028, reg, repo, &image.manifest, &basic);

    let mut flows = s.flows;
    flows.sort_by_key(|f| (f.timing.request_start, f.id));
    for (position, flow) in flows.iter_mut().enumerate() {
        flow.id = position as u64 + 1;
        // One TCP+TLS connection per request, as observed.
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
