//! Flows shaped like what dockerd 20.10 sends to distribution 2.8 with token
//! auth (shared/reference/dockerd-20.10-sequences.md): a login, a first push
//! with three parallel layer uploads, and a pull. Times follow the reference.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use regtap_capture::factory::FlowBuilder;
use regtap_capture::{Flow, sha256_hex};

const REGISTRY: &str = "https://registry.test:5000";
const EPOCH_NS: i64 = 1_721_668_000_000_000_000;
const CHALLENGE: &str = r#"Bearer realm="https://auth.test:5001/token",service="registry.test""#;

pub struct Blob {
    pub digest: String,
    pub hex: String,
    pub size: u64,
}

fn blob(name: &str, size: u64) -> Blob {
    let hex = sha256_hex(name.as_bytes());
    Blob {
        digest: format!("sha256:{hex}"),
        hex,
        size,
    }
}

/// Three layers and the config of the reference image.
pub fn blobs() -> [Blob; 4] {
    [
        blob("layer-small", 241),
        blob("layer-big", 262_435),
        blob("layer-mid", 65_787),
        blob("config", 766),
    ]
}

fn at(seconds: f64) -> i64 {
    EPOCH_NS + (seconds * 1e9) as i64
}

/// A flow that took `millis` from request start to response end.
fn timed(builder: FlowBuilder, start: f64, millis: i64) -> Flow {
    let mut flow = builder.start_ns(at(start)).build();
    let start = flow.timing.request_start;
    let end = start + millis * 1_000_000;
    flow.timing.request_end = Some(start + millis * 500_000);
    flow.timing.response_head = Some(end - 100_000);
    flow.timing.response_end = Some(end);
    flow
}

fn jwt(scope_actions: &[(&str, &[&str])]) -> String {
    let header = r#"{"alg":"RS256","typ":"JWT","kid":"PYYO:TEWU:V7JH:26JV"}"#;
    let access: Vec<String> = scope_actions
        .iter()
        .map(|(name, actions)| {
            let actions: Vec<String> = actions.iter().map(|a| format!("\"{a}\"")).collect();
            format!(
                r#"{{"type":"repository","name":"{name}","actions":[{}]}}"#,
                actions.join(",")
            )
        })
        .collect();
    let claims = format!(
        r#"{{"iss":"auth.test","sub":"alice","aud":"registry.test","exp":1721668300,"nbf":1721667990,"iat":1721668000,"jti":"jti-1","access":[{}]}}"#,
        access.join(",")
    );
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims),
        URL_SAFE_NO_PAD.encode([7u8; 64])
    )
}

fn state(uuid: &str, offset: u64) -> String {
    let json = format!(
        r#"{{"Name":"lab/seq","UUID":"{uuid}","Offset":{offset},"StartedAt":"2024-07-22T17:06:43Z"}}"#
    );
    let mut bytes = vec![0x5a; 32];
    bytes.extend_from_slice(json.as_bytes());
    URL_SAFE.encode(bytes).replace('=', "%3D")
}

fn api_check(start: f64, authorized: bool) -> Flow {
    let builder = FlowBuilder::new(0, "GET", &format!("{REGISTRY}/v2/"));
    let builder = if authorized {
        builder
            .request_header("Authorization", &format!("Bearer {}", jwt(&[])))
            .status(200)
            .response_body(b"{}")
    } else {
        builder
            .status(401)
            .response_header("WWW-Authenticate", CHALLENGE)
            .response_header("Content-Type", "application/json")
            .response_body(
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#,
            )
    };
    timed(builder, start, 4)
}

fn token(start: f64, scope: Option<&str>, grants: &[(&str, &[&str])]) -> Flow {
    let query = match scope {
        Some(scope) => format!("account=alice&scope={scope}&service=registry.test"),
        None => "account=alice&client_id=docker&offline_token=true&service=registry.test".into(),
    };
    let token = jwt(grants);
    let body = format!(
        r#"{{"token":"{token}","access_token":"{token}","expires_in":300,"issued_at":"2024-07-22T17:06:40Z"}}"#
    );
    let builder = FlowBuilder::new(0, "GET", &format!("https://auth.test:5001/token?{query}"))
        .request_header("Authorization", "Basic YWxpY2U6c2VjcmV0")
        .status(200)
        .response_header("Content-Type", "application/json")
        .response_body(body.as_bytes());
    timed(builder, start, 8)
}

fn numbered(mut flows: Vec<Flow>, first_id: u64) -> Vec<Flow> {
    for (n, flow) in flows.iter_mut().enumerate() {
        flow.id = first_id + n as u64;
    }
    flows
}

/// `docker login registry.test:5000`: flows 1 to 3.
pub fn login() -> Vec<Flow> {
    numbered(
        vec![
            api_check(0.000, false),
            token(0.014, None, &[]),
            api_check(0.026, true),
        ],
        1,
    )
}

fn upload_url(uuid: &str, offset: u64) -> String {
    format!(
        "{REGISTRY}/v2/lab/seq/blobs/uploads/{uuid}?_state={}",
        state(uuid, offset)
    )
}

fn upload_start(start: f64, uuid: &str) -> Flow {
    let location = upload_url(uuid, 0);
    let builder = FlowBuilder::new(0, "POST", &format!("{REGISTRY}/v2/lab/seq/blobs/uploads/"))
        .status(202)
        .response_header("Location", &location)
        .response_header("Docker-Upload-UUID", uuid)
        .response_header("Range", "0-0");
    timed(builder, start, 5)
}

fn upload_chunk(start: f64, uuid: &str, blob: &Blob) -> Flow {
    let builder = FlowBuilder::new(0, "PATCH", &upload_url(uuid, 0))
        .request_header("Content-Type", "application/octet-stream")
        .request_header("Transfer-Encoding", "chunked")
        .request_body_summary(blob.size, &blob.hex)
        .status(202)
        .response_header("Location", &upload_url(uuid, blob.size))
        .response_header("Docker-Upload-UUID", uuid)
        .response_header("Range", &format!("0-{}", blob.size - 1));
    timed(builder, start, 30)
}

fn upload_finish(start: f64, uuid: &str, blob: &Blob) -> Flow {
    let url = format!("{}&digest={}", upload_url(uuid, blob.size), blob.digest);
    let builder = FlowBuilder::new(0, "PUT", &url)
        .status(201)
        .response_header(
            "Location",
            &format!("{REGISTRY}/v2/lab/seq/blobs/{}", blob.digest),
        )
        .response_header("Docker-Content-Digest", &blob.digest);
    timed(builder, start, 10)
}

fn blob_head(start: f64, blob: &Blob, present: bool) -> Flow {
    let builder = FlowBuilder::new(
        0,
        "HEAD",
        &format!("{REGISTRY}/v2/lab/seq/blobs/{}", blob.digest),
    );
    let builder = if present {
        builder
            .status(200)
            .response_header("Content-Length", &blob.size.to_string())
            .response_header("Docker-Content-Digest", &blob.digest)
    } else {
        builder.status(404)
    };
    timed(builder, start, 3)
}

/// The image manifest of the reference image.
pub fn manifest() -> String {
    let [small, big, mid, config] = blobs();
    let layer = |b: &Blob| {
        format!(
            r#"{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{},"digest":"{}"}}"#,
            b.size, b.digest
        )
    };
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{}"}},"layers":[{},{},{}]}}"#,
        config.size,
        config.digest,
        layer(&big),
        layer(&mid),
        layer(&small)
    )
}

/// The first `docker push registry.test:5000/lab/seq:latest`: flows 4 to 23.
pub fn push() -> Vec<Flow> {
    let [small, big, mid, config] = blobs();
    let manifest = manifest();
    let manifest_digest = format!("sha256:{}", sha256_hex(manifest.as_bytes()));
    let manifest_put =
        FlowBuilder::new(0, "PUT", &format!("{REGISTRY}/v2/lab/seq/manifests/latest"))
            .request_header(
                "Content-Type",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            .request_body(manifest.as_bytes())
            .status(201)
            .response_header(
                "Location",
                &format!("{REGISTRY}/v2/lab/seq/manifests/{manifest_digest}"),
            )
            .response_header("Docker-Content-Digest", &manifest_digest);
    let (u1, u2, u3, u4) = (
        "0b5c1d3e-1111-4a6b-9c1d-000000000001",
        "0b5c1d3e-2222-4a6b-9c1d-000000000002",
        "0b5c1d3e-3333-4a6b-9c1d-000000000003",
        "0b5c1d3e-4444-4a6b-9c1d-000000000004",
    );
    numbered(
        vec![
            api_check(0.676, false),
            token(
                0.691,
                Some("repository:lab/seq:push,pull"),
                &[("lab/seq", &["push", "pull"])],
            ),
            upload_start(0.709, u1),
            upload_start(0.714, u2),
            upload_start(0.716, u3),
            upload_chunk(0.750, u1, &big),
            upload_chunk(0.751, u2, &small),
            upload_chunk(0.752, u3, &mid),
            upload_finish(0.785, u2, &small),
            upload_finish(0.816, u1, &big),
            upload_finish(0.818, u3, &mid),
            blob_head(0.832, &small, true),
            blob_head(0.845, &mid, true),
            blob_head(0.846, &big, true),
            blob_head(0.861, &config, false),
            upload_start(0.872, u4),
            upload_chunk(0.885, u4, &config),
            upload_finish(0.900, u4, &config),
            blob_head(0.915, &config, true),
            timed(manifest_put, 0.927, 12),
        ],
        4,
    )
}

/// `docker pull registry.test:5000/lab/seq:latest`: flows 24 to 31.
pub fn pull() -> Vec<Flow> {
    let [small, big, mid, config] = blobs();
    let manifest = manifest();
    let manifest_digest = format!("sha256:{}", sha256_hex(manifest.as_bytes()));
    let media_type = "application/vnd.docker.distribution.manifest.v2+json";
    let head = FlowBuilder::new(
        0,
        "HEAD",
        &format!("{REGISTRY}/v2/lab/seq/manifests/latest"),
    )
    .request_header("Accept", media_type)
    .status(200)
    .response_header("Content-Type", media_type)
    .response_header("Docker-Content-Digest", &manifest_digest);
    let get = FlowBuilder::new(
        0,
        "GET",
        &format!("{REGISTRY}/v2/lab/seq/manifests/{manifest_digest}"),
    )
    .request_header("Accept", media_type)
    .status(200)
    .response_header("Content-Type", media_type)
    .response_body(manifest.as_bytes());
    let blob_get = |start: f64, blob: &Blob| {
        let builder = FlowBuilder::new(
            0,
            "GET",
            &format!("{REGISTRY}/v2/lab/seq/blobs/{}", blob.digest),
        )
        .status(200)
        .response_header("Content-Length", &blob.size.to_string())
        .response_body_summary(blob.size, &blob.hex);
        timed(builder, start, 20)
    };
    numbered(
        vec![
            api_check(3.217, false),
            token(
                3.228,
                Some("repository:lab/seq:pull"),
                &[("lab/seq", &["pull"])],
            ),
            timed(head, 3.239, 5),
            timed(get, 3.257, 6),
            blob_get(3.279, &config),
            blob_get(3.283, &mid),
            blob_get(3.284, &small),
            blob_get(3.285, &big),
        ],
        24,
    )
}

/// Login, push and pull, in that order.
pub fn session() -> Vec<Flow> {
    let mut flows = login();
    flows.extend(push());
    flows.extend(pull());
    flows
}

/// A request the decoder cannot place: it must still show in the flows view.
pub fn unknown(id: u64) -> Flow {
    let builder = FlowBuilder::new(id, "GET", "https://example.test/favicon.ico").status(404);
    timed(builder, 5.0, 2)
}

/// What the decoder could say about [`session`], written by hand so that
/// the state and drawing tests do not change with the decoder's wording.
pub mod analysis {
    use std::collections::BTreeMap;

    use regtap_capture::Flow;
    use regtap_decode::{
        Access, Analysis, Annotation, AnnotationKind, BearerUse, BlobStatus, Chunk, Descriptor,
        DigestCheck, FlowAnalysis, FlowKind, HmacStatus, JwtClaims, JwtHeader, JwtInfo,
        ManifestInfo, ManifestPurpose, ManifestSchema, Operation, OperationKind, OperationStatus,
        Reference, RegistryError, SessionOutcome, StateInfo, Step, TimeClaim, TokenGrant,
        TokenInfo, UploadSession, UploadStart,
    };

    use super::blobs;
    use crate::format::split_url;

    const REGISTRY: &str = "registry.test:5000";

    fn kind(flow: &Flow) -> FlowKind {
        let (host, path) = split_url(flow.url());
        let path = path.split('?').next().unwrap_or(path);
        let registry = REGISTRY.to_owned();
        let repository = "lab/seq".to_owned();
        let last = path.rsplit('/').next().unwrap_or("").to_owned();
        match (flow.method(), path) {
            (_, "/v2/") => FlowKind::ApiCheck { registry },
            (_, "/token") => FlowKind::Token {
                server: host.to_owned(),
                grant: TokenGrant::Get,
                service: Some("registry.test".to_owned()),
                scopes: Vec::new(),
                account: Some("alice".to_owned()),
                offline_token: false,
            },
            ("POST", _) => FlowKind::UploadStart {
                registry,
                repository,
                digest: None,
            },
            ("PATCH", _) => FlowKind::UploadChunk {
                registry,
                repository,
                upload_id: last,
                content_range: None,
            },
            ("PUT", p) if p.contains("/blobs/uploads/") => FlowKind::UploadFinish {
                registry,
                repository,
                upload_id: last,
                digest: None,
            },
            ("HEAD", p) if p.contains("/blobs/") => FlowKind::BlobHead {
                registry,
                repository,
                digest: last,
            },
            ("GET", p) if p.contains("/blobs/") => FlowKind::BlobGet {
                registry,
                repository,
                digest: last,
                range: None,
                redirect_to: None,
                redirected_from: None,
            },
            ("PUT", _) => FlowKind::ManifestPut {
                registry,
                repository,
                reference: Reference::parse(&last),
            },
            ("HEAD", _) => FlowKind::ManifestHead {
                registry,
                repository,
                reference: Reference::parse(&last),
            },
            ("GET", p) if p.contains("/manifests/") => FlowKind::ManifestGet {
                registry,
                repository,
                reference: Reference::parse(&last),
            },
            _ => FlowKind::Unknown,
        }
    }

    fn access(actions: &[&str]) -> Access {
        Access {
            resource_type: "repository".to_owned(),
            name: "lab/seq".to_owned(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            parameters: BTreeMap::new(),
        }
    }

    fn token(scopes: &[&str], actions: &[&str]) -> TokenInfo {
        let granted: Vec<Access> = if actions.is_empty() {
            Vec::new()
        } else {
            vec![access(actions)]
        };
        let time = |unix: i64, utc: &str| {
            Some(TimeClaim {
                unix,
                utc: utc.to_owned(),
            })
        };
        TokenInfo {
            fingerprint: "tok:5f1c9a".to_owned(),
            jwt: Some(JwtInfo {
                header: JwtHeader {
                    alg: Some("RS256".to_owned()),
                    typ: Some("JWT".to_owned()),
                    kid: Some("PYYO:TEWU:V7JH:26JV".to_owned()),
                    x5c_len: 0,
                    x5c_first: None,
                    other: BTreeMap::new(),
                },
                claims: JwtClaims {
                    iss: Some("auth.test".to_owned()),
                    sub: Some("alice".to_owned()),
                    aud: vec!["registry.test".to_owned()],
                    exp: time(1_721_668_300, "2024-07-22T17:11:40Z"),
                    nbf: time(1_721_667_990, "2024-07-22T17:06:30Z"),
                    iat: time(1_721_668_000, "2024-07-22T17:06:40Z"),
                    jti: Some("jti-1".to_owned()),
                    access: granted.clone(),
                    other: BTreeMap::new(),
                },
                signature_bytes: 64,
                problems: Vec::new(),
            }),
            opaque_reason: None,
            requested_scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            granted,
            missing_grants: Vec::new(),
            expires_in: Some(300),
            issued_at: Some("2024-07-22T17:06:40Z".to_owned()),
            refresh_token: None,
        }
    }

    fn explanation(flow: &Flow, kind: &FlowKind) -> String {
        let status = flow.status().map_or("-".to_owned(), |s| s.to_string());
        let what = match kind {
            FlowKind::ApiCheck { .. } if flow.status() == Some(401) => "API check: token needed",
            FlowKind::ApiCheck { .. } => "API check: authorized",
            FlowKind::Token { .. } => "token issued",
            FlowKind::UploadStart { .. } => "upload started",
            FlowKind::UploadChunk { .. } => "layer bytes sent",
            FlowKind::UploadFinish { .. } => "upload finished",
            FlowKind::BlobHead { .. } if flow.status() == Some(404) => "blob missing",
            FlowKind::BlobHead { .. } => "blob present",
            FlowKind::BlobGet { .. } => "blob downloaded",
            FlowKind::ManifestPut { .. } => "manifest pushed",
            FlowKind::ManifestHead { .. } => "manifest digest asked",
            FlowKind::ManifestGet { .. } => "manifest fetched",
            _ => "other request",
        };
        format!("{what} ({} {status})", flow.method())
    }

    fn manifest(blob_flows: &[(usize, Vec<u64>)], status: BlobStatus) -> ManifestInfo {
        let all = blobs();
        let descriptor = |index: usize| {
            let blob = &all[index];
            Descriptor {
                media_type: "application/vnd.docker.image.rootfs.diff.tar.gzip".to_owned(),
                digest: blob.digest.clone(),
                size: Some(blob.size),
                platform: None,
                blob_status: status,
                blob_flow_ids: blob_flows
                    .iter()
                    .find(|(i, _)| *i == index)
                    .map(|(_, ids)| ids.clone())
                    .unwrap_or_default(),
                artifact_type: None,
                annotations: BTreeMap::new(),
                role: None,
            }
        };
        ManifestInfo {
            media_type: "application/vnd.docker.distribution.manifest.v2+json".to_owned(),
            schema: ManifestSchema::DockerV2,
            digest: None,
            config: Some(descriptor(3)),
            layers: vec![descriptor(1), descriptor(2), descriptor(0)],
            manifests: Vec::new(),
            problems: Vec::new(),
            artifact_type: None,
            subject: None,
            annotations: BTreeMap::new(),
            purpose: ManifestPurpose::Image,
        }
    }

    /// The analysis of `flows` (made of [`super::session`], optionally
    /// followed by [`super::unknown`] flows).
    pub fn of(flows: &[Flow]) -> Analysis {
        let mut analysis = Analysis::default();
        for flow in flows {
            let kind = kind(flow);
            let mut flow_analysis = FlowAnalysis {
                flow_id: flow.id,
                summary: explanation(flow, &kind),
                kind,
                annotations: Vec::new(),
                token: None,
                bearer: None,
                basic_user: None,
                upload_state: None,
                session: None,
                manifest: None,
                registry_errors: Vec::new(),
                challenges: Vec::new(),
                rate_limit: None,
                operation: match flow.id {
                    1..=3 => Some(0),
                    4..=23 => Some(1),
                    24..=31 => Some(2),
                    _ => None,
                },
                client: None,
                download: None,
            };
            match flow.id {
                2 => {
                    flow_analysis.token = Some(token(&[], &[]));
                    flow_analysis.basic_user = Some("alice".to_owned());
                }
                5 => {
                    flow_analysis.token =
                        Some(token(&["repository:lab/seq:push,pull"], &["push", "pull"]))
                }
                25 => flow_analysis.token = Some(token(&["repository:lab/seq:pull"], &["pull"])),
                3 => {
                    flow_analysis.bearer = Some(BearerUse {
                        fingerprint: "tok:5f1c9a".to_owned(),
                        issued_by: Some(2),
                        expired: false,
                        not_yet_valid: false,
                    })
                }
                23 => {
                    flow_analysis.manifest = Some(manifest(
                        &[
                            (0, vec![9, 12]),
                            (1, vec![10, 13]),
                            (2, vec![11, 14]),
                            (3, vec![20, 21]),
                        ],
                        BlobStatus::Uploaded,
                    ))
                }
                _ => {}
            }
            if flow.status() == Some(401) {
                flow_analysis.registry_errors.push(RegistryError {
                    code: "UNAUTHORIZED".to_owned(),
                    message: "authentication required".to_owned(),
                    detail: None,
                    explanation: "The request carried no valid credentials: get a token from the realm of the WWW-Authenticate challenge.".to_owned(),
                });
            }
            // Sessions: flows 6..=14 are three parallel uploads, 19..=21 a fourth.
            let session = match flow.id {
                6 | 9 | 13 => Some(0),
                7 | 10 | 12 => Some(1),
                8 | 11 | 14 => Some(2),
                19..=21 => Some(3),
                _ => None,
            };
            flow_analysis.session = session;
            if matches!(flow.id, 9..=11 | 20) {
                flow_analysis.upload_state = Some(StateInfo {
                    name: "lab/seq".to_owned(),
                    uuid: format!("0b5c1d3e-{}", flow.id),
                    offset: 0,
                    started_at: "2024-07-22T17:06:43Z".to_owned(),
                    hmac: HmacStatus::NotChecked,
                    mac_hex: "5a".repeat(32),
                });
            }
            analysis.flows.push(flow_analysis);
        }
        let all = blobs();
        for (index, (start, chunk, finish, blob)) in [
            (6, 9, 13, 1),
            (7, 10, 12, 0),
            (8, 11, 14, 2),
            (19, 20, 21, 3),
        ]
        .into_iter()
        .enumerate()
        {
            let size = all[blob].size;
            analysis.sessions.push(UploadSession {
                index,
                registry: REGISTRY.to_owned(),
                repository: "lab/seq".to_owned(),
                upload_id: Some(format!("0b5c1d3e-{chunk}")),
                start: UploadStart::Chunked,
                flow_ids: vec![start, chunk, finish],
                chunks: vec![Chunk {
                    flow_id: chunk,
                    offset_start: 0,
                    offset_end: size,
                    bytes: size,
                    sha256: Some(all[blob].hex.clone()),
                    content_range: None,
                    server_range: Some(format!("0-{}", size - 1)),
                    acknowledged: true,
                }],
                total_bytes: size,
                digest: Some(all[blob].digest.clone()),
                digest_check: DigestCheck::Verified,
                outcome: SessionOutcome::Completed,
                blob_location: None,
            });
        }
        let operation = |index: usize, kind: OperationKind, title: &str, ids: &[u64]| {
            let mut steps: Vec<Step> = Vec::new();
            for &id in ids {
                let Some(flow) = flows.iter().find(|f| f.id == id) else {
                    continue;
                };
                // The three parallel chunk uploads of the push are one step.
                if matches!(id, 10 | 11)
                    && let Some(step) = steps.last_mut()
                {
                    step.flow_ids.push(id);
                    step.explanation = "3 layers' bytes sent in parallel (PATCH 202)".to_owned();
                    continue;
                }
                let mut annotations = Vec::new();
                if flow.status() == Some(404) {
                    annotations.push(Annotation::warning(
                        AnnotationKind::Blobs,
                        "not in the repository yet: it will be uploaded",
                    ));
                }
                steps.push(Step {
                    number: steps.len() + 1,
                    explanation: explanation(flow, &kind_of(flows, id)),
                    flow_ids: vec![id],
                    annotations,
                });
            }
            let span: Vec<&Flow> = flows.iter().filter(|f| ids.contains(&f.id)).collect();
            Operation {
                index,
                kind,
                title: title.to_owned(),
                status: OperationStatus::Succeeded,
                start_ns: span
                    .iter()
                    .map(|f| f.timing.request_start)
                    .min()
                    .unwrap_or(0),
                end_ns: span.iter().map(|f| f.timing.end()).max().unwrap_or(0),
                steps,
                flow_ids: ids.to_vec(),
                client: None,
                quota: None,
            }
        };
        let ids = |range: std::ops::RangeInclusive<u64>| -> Vec<u64> { range.collect() };
        analysis.operations = vec![
            operation(
                1,
                OperationKind::Login {
                    registry: REGISTRY.to_owned(),
                },
                "login registry.test:5000",
                &ids(1..=3),
            ),
            operation(
                2,
                OperationKind::Push {
                    registry: REGISTRY.to_owned(),
                    repository: "lab/seq".to_owned(),
                    reference: Some(Reference::Tag("latest".to_owned())),
                },
                "push lab/seq:latest",
                &ids(4..=23),
            ),
            operation(
                3,
                OperationKind::Pull {
                    registry: REGISTRY.to_owned(),
                    repository: "lab/seq".to_owned(),
                    reference: Some(Reference::Tag("latest".to_owned())),
                },
                "pull lab/seq:latest",
                &ids(24..=31),
            ),
        ];
        analysis
    }

    fn kind_of(flows: &[Flow], id: u64) -> FlowKind {
        flows
            .iter()
            .find(|f| f.id == id)
            .map_or(FlowKind::Unknown, kind)
    }
}

/// An [`App`](crate::App) over [`session`] and one unknown flow, with the hand-made analysis.
pub fn app() -> crate::App {
    let mut flows = session();
    flows.push(unknown(32));
    let analysis = analysis::of(&flows);
    crate::App::from_analysis("session.jsonl", flows, analysis)
}
