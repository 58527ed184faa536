//! Classification: method, path, query, status and headers of one flow to a
//! [`FlowKind`] (OCI distribution spec and Docker registry API v2).

use percent_encoding::percent_decode_str;
use regtap_capture::Flow;
use url::Url;

use crate::http::{authority, decoded_body, query_all, query_first};
use crate::model::{FlowKind, Reference, TokenGrant};

/// The registry endpoint a `/v2/…` path names, before the method is looked at.
enum Endpoint {
    Base,
    Catalog,
    Tags(String),
    Manifest(String, Reference),
    Blob(String, String),
    UploadStart(String),
    Upload(String, String),
    Referrers(String, String),
}

pub fn classify(flow: &Flow, url: Option<&Url>) -> FlowKind {
    let Some(url) = url else {
        return FlowKind::Unknown;
    };
    let host = authority(url);
    let method = flow.method().to_ascii_uppercase();
    // A registry may be rooted below a path (Artifactory, containerd's
    // override_path): it is then named by host and prefix.
    let (prefix, api) = split_api_root(url.path());
    let registry = format!("{host}{prefix}");
    if let Some(mut kind) = endpoint(api).and_then(|e| registry_kind(&method, url, registry, e)) {
        add_header_details(flow, url, &mut kind);
        return kind;
    }
    token_kind(flow, &method, url, host).unwrap_or(FlowKind::Unknown)
}

/// The registry a URL addresses: `host[:port]`, and the path its API is
/// rooted below, if any.
pub fn registry_of(url: &Url) -> String {
    format!("{}{}", authority(url), split_api_root(url.path()).0)
}

/// `/artifactory/api/docker/hub/v2/lab/app/manifests/1` →
/// (`/artifactory/api/docker/hub`, `/v2/lab/app/manifests/1`); a path that
/// starts with `/v2` has no prefix.
fn split_api_root(path: &str) -> (&str, &str) {
    if path == "/v2" || path.starts_with("/v2/") {
        return ("", path);
    }
    let at = path
        .find("/v2/")
        .or_else(|| path.strip_suffix("/v2").map(str::len));
    match at {
        Some(at) => (
            path.get(..at).unwrap_or_default(),
            path.get(at..).unwrap_or(path),
        ),
        None => ("", path),
    }
}

fn registry_kind(
    method: &str,
    url: &Url,
    registry: String,
    endpoint: Endpoint,
) -> Option<FlowKind> {
    let kind = match (method, endpoint) {
        ("GET" | "HEAD", Endpoint::Base) => FlowKind::ApiCheck { registry },
        ("GET", Endpoint::Catalog) => FlowKind::Catalog { registry },
        ("GET", Endpoint::Tags(repository)) => FlowKind::TagsList {
            registry,
            repository,
        },
        (method, Endpoint::Manifest(repository, reference)) => match method {
            "HEAD" => FlowKind::ManifestHead {
                registry,
                repository,
                reference,
            },
            "GET" => FlowKind::ManifestGet {
                registry,
                repository,
                reference,
            },
            "PUT" => FlowKind::ManifestPut {
                registry,
                repository,
                reference,
            },
            "DELETE" => FlowKind::ManifestDelete {
                registry,
                repository,
                reference,
            },
            _ => return None,
        },
        (method, Endpoint::Blob(repository, digest)) => match method {
            "HEAD" => FlowKind::BlobHead {
                registry,
                repository,
                digest,
            },
            "GET" => FlowKind::BlobGet {
                registry,
                repository,
                digest,
                range: None,
                redirect_to: None,
                redirected_from: None,
            },
            "DELETE" => FlowKind::BlobDelete {
                registry,
                repository,
                digest,
            },
            _ => return None,
        },
        ("POST", Endpoint::UploadStart(repository)) => {
            match query_first(url, "mount").filter(|m| !m.is_empty()) {
                Some(digest) => FlowKind::UploadMount {
                    registry,
                    repository,
                    digest,
                    from: query_first(url, "from").filter(|f| !f.is_empty()),
                },
                None => FlowKind::UploadStart {
                    registry,
                    repository,
                    digest: query_first(url, "digest").filter(|d| !d.is_empty()),
                },
            }
        }
        (method, Endpoint::Upload(repository, upload_id)) => match method {
            "PATCH" => FlowKind::UploadChunk {
                registry,
                repository,
                upload_id,
                content_range: None,
            },
            "PUT" => FlowKind::UploadFinish {
                registry,
                repository,
                upload_id,
                digest: query_first(url, "digest").filter(|d| !d.is_empty()),
            },
            "GET" => FlowKind::UploadStatus {
                registry,
                repository,
                upload_id,
            },
            "DELETE" => FlowKind::UploadCancel {
                registry,
                repository,
                upload_id,
            },
            _ => return None,
        },
        ("GET", Endpoint::Referrers(repository, digest)) => FlowKind::Referrers {
            registry,
            repository,
            digest,
        },
        _ => return None,
    };
    Some(kind)
}

/// What the request and response headers add: the `Range` of a blob GET and
/// where a redirect sent it, the `Content-Range` of a chunk.
fn add_header_details(flow: &Flow, url: &Url, kind: &mut FlowKind) {
    match kind {
        FlowKind::BlobGet {
            range, redirect_to, ..
        } => {
            *range = flow.request.headers.get("range").map(str::to_owned);
            if let Some(response) = flow
                .response
                .as_ref()
                .filter(|r| (300..400).contains(&r.status))
            {
                *redirect_to = response
                    .headers
                    .get("location")
                    .and_then(|l| crate::http::resolve(Some(url), l))
                    .map(String::from);
            }
        }
        FlowKind::UploadChunk { content_range, .. } => {
            *content_range = flow.request.headers.get("content-range").map(str::to_owned);
        }
        _ => {}
    }
}

/// The endpoint a path names. Repository names may have several segments, so
/// the endpoint is recognised from the end of the path.
fn endpoint(path: &str) -> Option<Endpoint> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Endpoint::Base);
    }
    let rest = rest.strip_prefix('/')?;
    let segments: Vec<String> = rest
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let n = segments.len();
    let name = |end: usize| -> Option<String> {
        let parts = segments.get(..end)?;
        (!parts.is_empty() && parts.iter().all(|p| !p.is_empty())).then(|| parts.join("/"))
    };
    let at = |i: usize| segments.get(i).map(String::as_str);
    if n == 1 && at(0) == Some("_catalog") {
        return Some(Endpoint::Catalog);
    }
    if n >= 3 && at(n - 2) == Some("tags") && at(n - 1) == Some("list") {
        return Some(Endpoint::Tags(name(n - 2)?));
    }
    if n >= 4 && at(n - 3) == Some("blobs") && at(n - 2) == Some("uploads") {
        let repository = name(n - 3)?;
        let id = at(n - 1).unwrap_or_default();
        return Some(if id.is_empty() {
            Endpoint::UploadStart(repository)
        } else {
            Endpoint::Upload(repository, id.to_owned())
        });
    }
    if n >= 3 && at(n - 2) == Some("blobs") {
        let repository = name(n - 2)?;
        let last = at(n - 1).unwrap_or_default();
        return match last {
            "uploads" => Some(Endpoint::UploadStart(repository)),
            "" => None,
            digest => Some(Endpoint::Blob(repository, digest.to_owned())),
        };
    }
    if n >= 3 && at(n - 2) == Some("manifests") {
        let repository = name(n - 2)?;
        let reference = at(n - 1).filter(|r| !r.is_empty())?;
        return Some(Endpoint::Manifest(repository, Reference::parse(reference)));
    }
    if n >= 3 && at(n - 2) == Some("referrers") {
        let repository = name(n - 2)?;
        let digest = at(n - 1).filter(|r| !r.is_empty())?;
        return Some(Endpoint::Referrers(repository, digest.to_owned()));
    }
    None
}

/// A token endpoint, recognised by what is asked and what is answered, not
/// by its host: a GET with `service`/`scope`, an OAuth2 form POST with
/// `grant_type`, or a JSON answer with `token`/`access_token`.
fn token_kind(flow: &Flow, method: &str, url: &Url, server: String) -> Option<FlowKind> {
    let query_scopes = split_scopes(&query_all(url, "scope"));
    let service = query_first(url, "service");
    let account = query_first(url, "account").filter(|a| !a.is_empty());
    let offline_token = query_first(url, "offline_token").is_some_and(|v| v == "true");
    let answered_with_token = response_has_token(flow);
    match method {
        "GET" => {
            let asks = service.is_some() || !query_scopes.is_empty();
            (asks || answered_with_token).then_some(FlowKind::Token {
                server,
                grant: TokenGrant::Get,
                service,
                scopes: query_scopes,
                account,
                offline_token,
            })
        }
        "POST" => {
            let form = form_fields(flow);
            let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            let grant = field("grant_type");
            if grant.is_none() && !answered_with_token {
                return None;
            }
            let grant = match grant.as_deref() {
                Some("password") => TokenGrant::Password,
                Some("refresh_token") => TokenGrant::RefreshToken,
                Some(other) => TokenGrant::Other(other.to_owned()),
                None => TokenGrant::Other(String::new()),
            };
            let form_scopes: Vec<String> = form
                .iter()
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v.clone())
                .collect();
            let mut scopes = split_scopes(&form_scopes);
            scopes.extend(query_scopes);
            Some(FlowKind::Token {
                server,
                grant,
                service: field("service").or(service),
                scopes,
                account: field("username").or(account).filter(|a| !a.is_empty()),
                offline_token: offline_token
                    || field("access_type").is_some_and(|v| v == "offline"),
            })
        }
        _ => None,
    }
}

/// Scopes are space-separated inside one parameter, and parameters repeat.
pub fn split_scopes(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(' '))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `application/x-www-form-urlencoded` fields of the request body.
fn form_fields(flow: &Flow) -> Vec<(String, String)> {
    let Some(body) = decoded_body(&flow.request.body, &flow.request.headers) else {
        return Vec::new();
    };
    url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn response_has_token(flow: &Flow) -> bool {
    let Some(response) = &flow.response else {
        return false;
    };
    let Some(body) = decoded_body(&response.body, &response.headers) else {
        return false;
    };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(&body)
    else {
        return false;
    };
    ["token", "access_token"]
        .iter()
        .any(|k| map.get(*k).is_some_and(serde_json::Value::is_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_rooted_below_a_path() {
        assert_eq!(
            split_api_root("/v2/lab/app/manifests/1"),
            ("", "/v2/lab/app/manifests/1")
        );
        assert_eq!(
            split_api_root("/artifactory/api/docker/hub/v2/lab/app/manifests/1"),
            ("/artifactory/api/docker/hub", "/v2/lab/app/manifests/1")
        );
        assert_eq!(split_api_root("/mirror/v2"), ("/mirror", "/v2"));
        assert_eq!(split_api_root("/token"), ("", "/token"));
        let flow = regtap_capture::factory::FlowBuilder::new(
            1,
            "GET",
            "https://art.example/artifactory/api/docker/hub/v2/lab/app/manifests/1",
        )
        .build();
        let url = Url::parse(flow.url()).ok();
        assert_eq!(
            classify(&flow, url.as_ref()).registry(),
            Some("art.example/artifactory/api/docker/hub")
        );
    }
    use regtap_capture::factory::FlowBuilder;

    fn kind_of(flow: &Flow) -> FlowKind {
        classify(flow, Url::parse(flow.url()).ok().as_ref())
    }

    #[test]
    fn multi_segment_names_and_references() {
        let flow =
            FlowBuilder::new(1, "HEAD", "https://r.test:5000/v2/a/b/c/manifests/latest").build();
        assert_eq!(
            kind_of(&flow),
            FlowKind::ManifestHead {
                registry: "r.test:5000".into(),
                repository: "a/b/c".into(),
                reference: Reference::Tag("latest".into()),
            }
        );
        let flow =
            FlowBuilder::new(2, "GET", "https://r.test/v2/lab/app/manifests/sha256%3Aabc").build();
        assert_eq!(
            kind_of(&flow),
            FlowKind::ManifestGet {
                registry: "r.test".into(),
                repository: "lab/app".into(),
                reference: Reference::Digest("sha256:abc".into()),
            }
        );
    }

    #[test]
    fn repository_named_like_an_endpoint_is_read_from_the_end() {
        let flow = FlowBuilder::new(
            1,
            "PATCH",
            "https://r.test/v2/blobs/uploads/x/blobs/uploads/id-1",
        )
        .build();
        assert_eq!(
            kind_of(&flow),
            FlowKind::UploadChunk {
                registry: "r.test".into(),
                repository: "blobs/uploads/x".into(),
                upload_id: "id-1".into(),
                content_range: None,
            }
        );
    }

    #[test]
    fn upload_starts() {
        let mount = FlowBuilder::new(
            1,
            "POST",
            "https://r.test/v2/lab/copy/blobs/uploads/?mount=sha256%3Aab&from=lab%2Fseq",
        )
        .build();
        assert_eq!(
            kind_of(&mount),
            FlowKind::UploadMount {
                registry: "r.test".into(),
                repository: "lab/copy".into(),
                digest: "sha256:ab".into(),
                from: Some("lab/seq".into()),
            }
        );
        let mono = FlowBuilder::new(
            2,
            "POST",
            "https://r.test/v2/lab/seq/blobs/uploads/?digest=sha256:cd",
        )
        .build();
        assert_eq!(
            mono.url(),
            "https://r.test/v2/lab/seq/blobs/uploads/?digest=sha256:cd"
        );
        assert!(
            matches!(kind_of(&mono), FlowKind::UploadStart { digest: Some(d), .. } if d == "sha256:cd")
        );
    }

    #[test]
    fn token_endpoints_by_shape_not_host() {
        let get = FlowBuilder::new(1, "GET", "https://auth.test:5001/token?account=u&scope=repository%3Alab%2Fseq%3Apush%2Cpull&service=registry.test").build();
        match kind_of(&get) {
            FlowKind::Token {
                scopes,
                service,
                account,
                ..
            } => {
                assert_eq!(scopes, vec!["repository:lab/seq:push,pull"]);
                assert_eq!(service.as_deref(), Some("registry.test"));
                assert_eq!(account.as_deref(), Some("u"));
            }
            other => panic!("{other:?}"),
        }
        let gitea = FlowBuilder::new(2, "GET", "https://git.test/v2/token")
            .status(200)
            .response_body(br#"{"token":"abc"}"#)
            .build();
        assert_eq!(kind_of(&gitea).label(), "token");
        let oauth = FlowBuilder::new(3, "POST", "https://elsewhere.test/oauth")
            .request_body(
                b"grant_type=refresh_token&service=s&scope=repository:a:pull&refresh_token=x",
            )
            .build();
        assert!(matches!(
            kind_of(&oauth),
            FlowKind::Token {
                grant: TokenGrant::RefreshToken,
                ..
            }
        ));
        let plain = FlowBuilder::new(4, "GET", "https://web.test/index.html")
            .status(200)
            .build();
        assert_eq!(kind_of(&plain), FlowKind::Unknown);
    }

    #[test]
    fn everything_else_is_unknown() {
        for (method, url) in [
            ("GET", "https://r.test/v2/lab/manifests/"),
            ("POST", "https://r.test/v2/lab/manifests/latest"),
            ("PATCH", "https://r.test/v2/lab/blobs/sha256:ab"),
            ("GET", "https://r.test/v2//blobs/sha256:ab"),
            ("GET", "https://r.test/v3/"),
            ("GET", "not a url"),
        ] {
            let flow = FlowBuilder::new(1, method, url).build();
            assert_eq!(kind_of(&flow), FlowKind::Unknown, "{method} {url}");
        }
    }
}
