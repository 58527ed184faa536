//! Operations described: what each group of flows (see [`crate::grouping`])
//! did (login, push, pull, copy, other) and its title, here; whether it
//! worked in [`verdict`]; its numbered steps in [`mod@steps`].

mod steps;
mod verdict;

use crate::Works;
use crate::grouping::{Group, is_fallback_tag};
use crate::http::short_digest;
use crate::model::PullQuota;
use crate::model::{FlowKind, Operation, OperationKind, Reference, UploadSession};
use crate::summary::short_ref;
use steps::steps;
use verdict::status;

/// Turns the groups into described operations with numbered steps.
pub(crate) fn describe(
    works: &Works,
    sessions: &[UploadSession],
    groups: Vec<Group>,
    threads: usize,
) -> Vec<Operation> {
    crate::parallel::map(groups, threads, |position, group| {
        describe_one(works, sessions, position, group)
    })
}

fn describe_one(
    works: &Works,
    sessions: &[UploadSession],
    position: usize,
    group: Group,
) -> Operation {
    let members: Vec<&crate::Work> = group
        .members
        .iter()
        .filter_map(|&i| works.items.get(i))
        .collect();
    let kind = operation_kind(&group, &members);
    let title = title(&kind, &group, &members);
    let status = status(&kind, &members, sessions);
    let steps = steps(&members, sessions);
    let client = operation_client(&members);
    Operation {
        index: position + 1,
        kind,
        title,
        status,
        start_ns: members
            .iter()
            .map(|w| w.local.start())
            .min()
            .unwrap_or_default(),
        end_ns: members
            .iter()
            .map(|w| w.local.end())
            .max()
            .unwrap_or_default(),
        steps,
        flow_ids: members.iter().map(|w| w.local.flow.id).collect(),
        client,
        quota: quota(&members),
    }
}

/// Docker Hub's hosts, which count pulls even when they send no header.
fn docker_hub(registry: &str) -> bool {
    matches!(
        registry,
        "registry-1.docker.io" | "index.docker.io" | "docker.io" | "registry.hub.docker.com"
    )
}

/// The pull accounting of an operation on a registry that counts pulls.
fn quota(members: &[&crate::Work]) -> Option<PullQuota> {
    let manifests: Vec<&&crate::Work> = members
        .iter()
        .filter(|w| {
            matches!(
                w.local.kind,
                FlowKind::ManifestGet { .. } | FlowKind::ManifestHead { .. }
            )
        })
        .collect();
    let limits: Vec<&crate::model::RateLimit> = members
        .iter()
        .filter_map(|w| w.local.rate_limit.as_ref())
        .collect();
    let counting = !limits.is_empty()
        || manifests
            .iter()
            .any(|w| w.local.kind.registry().is_some_and(docker_hub));
    if !counting {
        return None;
    }
    let get = |w: &&&crate::Work| matches!(w.local.kind, FlowKind::ManifestGet { .. });
    Some(PullQuota {
        pulls_counted: manifests.iter().filter(|w| get(w) && w.local.ok()).count() as u64,
        free_heads: manifests.iter().filter(|w| !get(w)).count() as u64,
        remaining_first: limits.iter().find_map(|l| l.remaining),
        remaining_last: limits.iter().rev().find_map(|l| l.remaining),
        limit: limits.iter().find_map(|l| l.limit),
        window_seconds: limits.iter().find_map(|l| l.window_seconds),
        refused: members
            .iter()
            .filter(|w| w.local.status() == Some(429))
            .count() as u64,
    })
}

/// The program of an operation: the one most of its registry requests
/// named (token requests may name another: python-dxf's say Docker-Client).
fn operation_client(members: &[&crate::Work]) -> Option<crate::model::Client> {
    let mut counts: Vec<(&crate::model::Client, usize)> = Vec::new();
    let registry_requests = members
        .iter()
        .filter(|w| !matches!(w.local.kind, FlowKind::Token { .. }));
    for client in registry_requests.filter_map(|w| w.client.as_ref()) {
        match counts.iter_mut().find(|(c, _)| *c == client) {
            Some((_, n)) => *n += 1,
            None => counts.push((client, 1)),
        }
    }
    // The first most frequent, so that ties go to the earliest.
    let best = counts.iter().map(|(_, n)| *n).max();
    counts
        .iter()
        .find(|(_, n)| Some(*n) == best)
        .map(|(c, _)| (*c).clone())
        .or_else(|| members.first().and_then(|w| w.client.clone()))
}

/// Requests that write to a repository.
fn writes(kind: &FlowKind) -> bool {
    matches!(
        kind,
        FlowKind::UploadStart { .. }
            | FlowKind::UploadMount { .. }
            | FlowKind::UploadChunk { .. }
            | FlowKind::UploadStatus { .. }
            | FlowKind::UploadFinish { .. }
            | FlowKind::UploadCancel { .. }
            | FlowKind::ManifestPut { .. }
    )
}

/// Requests that read from a repository.
fn pulls(kind: &FlowKind) -> bool {
    matches!(
        kind,
        FlowKind::ManifestHead { .. } | FlowKind::ManifestGet { .. } | FlowKind::BlobGet { .. }
    )
}

fn operation_kind(group: &Group, members: &[&crate::Work]) -> OperationKind {
    let Some(registry) = &group.registry else {
        return OperationKind::Other;
    };
    // The repository written to: where the manifest went, else where blobs
    // went; blob HEADs alone are a push checking what the registry has
    // (containerd re-pushing), unless something was read.
    let reads = members.iter().any(|w| {
        matches!(
            w.local.kind,
            FlowKind::ManifestGet { .. } | FlowKind::BlobGet { .. }
        )
    });
    let target = members
        .iter()
        .rev()
        .find(|w| {
            matches!(&w.local.kind, FlowKind::ManifestPut { reference, .. } if !is_fallback_tag(reference))
        })
        .or_else(|| members.iter().find(|w| writes(&w.local.kind)))
        .or_else(|| {
            // containerd re-pushing: HEADs of the blobs and of the tag.
            let tag_checked = members.iter().any(|w| {
                matches!(&w.local.kind, FlowKind::ManifestHead { reference: Reference::Tag(_), .. })
            });
            members.iter().find(|w| {
                !reads && tag_checked && matches!(w.local.kind, FlowKind::BlobHead { .. })
            })
        })
        .and_then(|w| Some((w.local.kind.registry()?, w.local.kind.repository()?)));
    let writes_manifest = members
        .iter()
        .any(|w| matches!(w.local.kind, FlowKind::ManifestPut { .. }));
    if let Some((registry, repository)) = target {
        let reference = pushed_reference(members, repository);
        if let Some(source) =
            copy_source(members, repository, reference.as_ref()).filter(|_| writes_manifest)
        {
            return OperationKind::Copy {
                source_registry: source.0.to_owned(),
                source_repository: source.1.to_owned(),
                source_reference: source.2,
                registry: registry.to_owned(),
                repository: repository.to_owned(),
                reference,
            };
        }
        return OperationKind::Push {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            reference,
        };
    }
    let deletes = members.iter().any(|w| {
        matches!(
            w.local.kind,
            FlowKind::ManifestDelete { .. } | FlowKind::BlobDelete { .. }
        )
    });
    if let Some(repository) = members
        .iter()
        .find(|w| pulls(&w.local.kind) && !deletes)
        .and_then(|w| w.local.kind.repository())
    {
        return OperationKind::Pull {
            registry: registry.clone(),
            repository: repository.to_owned(),
            reference: pulled_reference(members, repository),
        };
    }
    let authenticates = members.iter().any(|w| {
        matches!(w.local.kind, FlowKind::Token { .. })
            || w.local.flow.request.headers.get("authorization").is_some()
            || w.local.status() == Some(401)
    });
    let only_auth = members.iter().all(|w| {
        matches!(
            w.local.kind,
            FlowKind::Token { .. } | FlowKind::ApiCheck { .. }
        )
    });
    if group.opened_by_ping && authenticates && only_auth {
        OperationKind::Login {
            registry: registry.clone(),
        }
    } else {
        OperationKind::Other
    }
}

/// The manifest read (GET) in this operation from another repository, or
/// by another tag, than the one written: the source of a copy.
fn copy_source<'a>(
    members: &[&'a crate::Work],
    repository: &str,
    reference: Option<&Reference>,
) -> Option<(&'a str, &'a str, Option<Reference>)> {
    let read = members.iter().find(|w| {
        let FlowKind::ManifestGet {
            repository: from,
            reference: asked,
            ..
        } = &w.local.kind
        else {
            return false;
        };
        w.local.ok() && (from != repository || (!asked.is_digest() && Some(asked) != reference))
    })?;
    let from = read.local.kind.repository()?;
    Some((
        read.local.kind.registry()?,
        from,
        pulled_reference(members, from),
    ))
}

/// The tag the last manifest went to (not a referrers fallback tag); else
/// the digest of the last manifest.
fn pushed_reference(members: &[&crate::Work], repository: &str) -> Option<Reference> {
    let puts: Vec<&Reference> = members
        .iter()
        .filter_map(|w| match &w.local.kind {
            FlowKind::ManifestPut {
                repository: r,
                reference,
                ..
            } if r == repository => Some(reference),
            _ => None,
        })
        .collect();
    puts.iter()
        .rev()
        .find(|r| !r.is_digest() && !is_fallback_tag(r))
        .or_else(|| puts.iter().rev().find(|r| !is_fallback_tag(r)))
        .map(|r| (*r).clone())
        // A push that found the manifest already there (HEAD by tag).
        .or_else(|| {
            members.iter().find_map(|w| match &w.local.kind {
                FlowKind::ManifestHead {
                    repository: r,
                    reference: reference @ Reference::Tag(_),
                    ..
                } if r == repository && !is_fallback_tag(reference) => Some(reference.clone()),
                _ => None,
            })
        })
}

/// The first manifest asked for by tag; else by digest.
fn pulled_reference(members: &[&crate::Work], repository: &str) -> Option<Reference> {
    let asked: Vec<&Reference> = members
        .iter()
        .filter_map(|w| match &w.local.kind {
            FlowKind::ManifestHead {
                repository: r,
                reference,
                ..
            }
            | FlowKind::ManifestGet {
                repository: r,
                reference,
                ..
            } if r == repository && !is_fallback_tag(reference) => Some(reference),
            _ => None,
        })
        .collect();
    asked
        .iter()
        .find(|r| !r.is_digest())
        .or_else(|| asked.first())
        .map(|r| (*r).clone())
}

fn title(kind: &OperationKind, group: &Group, members: &[&crate::Work]) -> String {
    let named = |repository: &str, reference: &Option<Reference>| match reference {
        Some(r) => format!("{repository}{}", short_ref(r)),
        None => repository.to_owned(),
    };
    match kind {
        OperationKind::Login { registry } => format!("login {registry}"),
        OperationKind::Push {
            repository,
            reference: None,
            ..
        } => {
            // Blobs only: the digests the registry took say what was pushed.
            let blobs: Vec<String> = members
                .iter()
                .filter(|w| w.local.status() == Some(201))
                .filter_map(|w| match &w.local.kind {
                    FlowKind::UploadStart {
                        digest: Some(d), ..
                    }
                    | FlowKind::UploadMount { digest: d, .. }
                    | FlowKind::UploadFinish {
                        digest: Some(d), ..
                    } => Some(d.clone()),
                    _ => None,
                })
                .fold(Vec::new(), |mut seen, d| {
                    if !seen.contains(&d) {
                        seen.push(d);
                    }
                    seen
                });
            match blobs.as_slice() {
                [] => format!("push {repository}"),
                [one] => format!("push blob {} to {repository}", short_digest(one)),
                many => format!("push {} blobs to {repository}", many.len()),
            }
        }
        OperationKind::Push {
            repository,
            reference,
            ..
        } => format!("push {}", named(repository, reference)),
        OperationKind::Pull {
            repository,
            reference,
            ..
        } => format!("pull {}", named(repository, reference)),
        OperationKind::Copy {
            source_registry,
            source_repository,
            source_reference,
            registry,
            repository,
            reference,
        } => {
            let from = named(source_repository, source_reference);
            if source_registry == registry {
                format!("copy {from} → {}", named(repository, reference))
            } else {
                format!(
                    "copy {source_registry}/{from} → {registry}/{}",
                    named(repository, reference)
                )
            }
        }
        OperationKind::Other => {
            let has = |f: fn(&FlowKind) -> bool| members.iter().any(|w| f(&w.local.kind));
            let only = |f: fn(&FlowKind) -> bool| members.iter().all(|w| f(&w.local.kind));
            if let Some(repository) = &group.repository {
                if has(|k| matches!(k, FlowKind::TagsList { .. })) {
                    format!("list tags of {repository}")
                } else if has(|k| {
                    matches!(
                        k,
                        FlowKind::ManifestDelete { .. } | FlowKind::BlobDelete { .. }
                    )
                }) {
                    format!("delete in {repository}")
                } else {
                    format!("requests on {repository}")
                }
            } else if let Some(registry) = &group.registry {
                if has(|k| matches!(k, FlowKind::Catalog { .. })) {
                    format!("catalog of {registry}")
                } else if only(|k| matches!(k, FlowKind::ApiCheck { .. })) {
                    format!("API check {registry}")
                } else {
                    format!("requests to {registry}")
                }
            } else {
                let host = group.host.clone().unwrap_or_default();
                if only(|k| matches!(k, FlowKind::Token { .. })) {
                    format!("token request to {host}")
                } else {
                    format!("requests to {host}")
                }
            }
        }
    }
}
