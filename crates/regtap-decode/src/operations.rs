//! Operations described: what each group of flows (see [`crate::grouping`])
//! did (login, push, pull, copy, other), whether it worked, and its
//! numbered steps.

use std::collections::HashMap;

use crate::Works;
use crate::grouping::{Group, is_fallback_tag};
use crate::http::{human_bytes, short_digest};
use crate::model::{
    Annotation, DigestCheck, FlowKind, Operation, OperationKind, OperationStatus, Reference,
    SessionOutcome, Severity, Step, UploadSession, UploadStart,
};
use crate::model::{AnnotationKind, PullQuota};
use crate::summary::short_ref;

/// Turns the groups into described operations with numbered steps.
pub(crate) fn describe(
    works: &Works,
    sessions: &[UploadSession],
    groups: Vec<Group>,
) -> Vec<Operation> {
    groups
        .into_iter()
        .enumerate()
        .map(|(position, group)| describe_one(works, sessions, position, group))
        .collect()
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

fn status(
    kind: &OperationKind,
    members: &[&crate::Work],
    sessions: &[UploadSession],
) -> OperationStatus {
    let failure = |w: &crate::Work| -> String {
        let mut parts = vec![w.summary.clone()];
        if let Some(e) = w.local.registry_errors.first() {
            parts.push(format!("{}: {}", e.code, e.explanation));
        }
        if let Some(a) = w
            .local
            .annotations
            .iter()
            .find(|a| a.label == AnnotationKind::Challenge && a.severity == Severity::Warning)
        {
            parts.push(a.text.clone());
        }
        parts.join(" — ")
    };
    // A failure that a later request for the same thing got past is not the
    // operation's failure (a client retrying with a fresh token).
    let recovered = |w: &crate::Work| {
        members.iter().any(|later| {
            later.local.start() > w.local.start()
                && later.local.ok()
                && later.local.flow.method() == w.local.flow.method()
                && later.local.url.as_ref().map(url::Url::path)
                    == w.local.url.as_ref().map(url::Url::path)
        })
    };
    // Among the failed flows, the one the registry explained says most.
    let first_failed = |failed: &dyn Fn(&crate::Work) -> bool| {
        members
            .iter()
            .copied()
            .filter(|w| failed(w) && !recovered(w))
            .min_by_key(|w| w.local.registry_errors.is_empty())
    };
    match kind {
        OperationKind::Login { .. } => {
            // A token request refused, with no later token request that
            // worked (containerd falls back from POST to GET).
            let is_token = |w: &crate::Work| matches!(w.local.kind, FlowKind::Token { .. });
            if let Some(t) = members.iter().find(|w| {
                is_token(w)
                    && w.local.status().is_some_and(|s| s >= 400)
                    && !members.iter().any(|later| {
                        is_token(later) && later.local.start() > w.local.start() && later.local.ok()
                    })
            }) {
                return OperationStatus::Failed {
                    reason: format!("the token server refused the credentials ({})", failure(t)),
                };
            }
            let last_ping = members
                .iter()
                .rev()
                .find(|w| matches!(w.local.kind, FlowKind::ApiCheck { .. }));
            match last_ping.and_then(|w| w.local.status()) {
                Some(200) => OperationStatus::Succeeded,
                Some(401) if members.len() > 1 => OperationStatus::Failed {
                    reason: "the registry still answers 401 with the credentials".to_owned(),
                },
                _ => OperationStatus::Incomplete,
            }
        }
        OperationKind::Push { .. } | OperationKind::Copy { .. } => {
            // The referrers fallback tag written after the manifest is not
            // what the push was for.
            let puts: Vec<&&crate::Work> = members
                .iter()
                .filter(|w| {
                    matches!(&w.local.kind, FlowKind::ManifestPut { reference, .. } if !is_fallback_tag(reference))
                })
                .collect();
            let present = members.iter().any(|w| {
                matches!(
                    &w.local.kind,
                    FlowKind::ManifestHead {
                        reference: Reference::Tag(_),
                        ..
                    }
                ) && w.local.status() == Some(200)
            });
            if puts.is_empty() && present && !members.iter().any(|w| writes(&w.local.kind)) {
                // Everything was there already: nothing to write.
                return OperationStatus::Succeeded;
            }
            if let Some(last) = puts.last() {
                return if last.local.status() == Some(201) || last.local.ok() {
                    OperationStatus::Succeeded
                } else {
                    OperationStatus::Failed {
                        reason: failure(last),
                    }
                };
            }
            if let Some(denied) = first_failed(&|w| {
                !matches!(w.local.kind, FlowKind::ApiCheck { .. })
                    && w.local.status().is_some_and(|s| s == 401 || s == 403)
            }) {
                return OperationStatus::Failed {
                    reason: failure(denied),
                };
            }
            let in_operation = |s: &&UploadSession| {
                s.flow_ids
                    .iter()
                    .any(|id| members.iter().any(|w| w.local.flow.id == *id))
            };
            let mine: Vec<&UploadSession> = sessions.iter().filter(in_operation).collect();
            if let Some(s) = mine.iter().find(|s| s.outcome == SessionOutcome::Failed) {
                return OperationStatus::Failed {
                    reason: format!("an upload to {} failed", s.repository),
                };
            }
            // Blobs only (no manifest written): done when every upload is.
            let blobs_done = !mine.is_empty()
                && mine.iter().all(|s| {
                    matches!(
                        s.outcome,
                        SessionOutcome::Completed | SessionOutcome::Mounted
                    )
                });
            if blobs_done {
                OperationStatus::Succeeded
            } else {
                OperationStatus::Incomplete
            }
        }
        OperationKind::Pull { .. } => {
            let failed = first_failed(&|w| {
                pulls(&w.local.kind)
                    && !expected_miss(w, members)
                    && (w.local.status().is_some_and(|s| s >= 400) || w.local.broken())
            });
            if let Some(w) = failed {
                return OperationStatus::Failed { reason: failure(w) };
            }
            let got_manifest = members.iter().any(|w| {
                matches!(
                    w.local.kind,
                    FlowKind::ManifestHead { .. } | FlowKind::ManifestGet { .. }
                ) && w.local.ok()
            });
            if got_manifest {
                OperationStatus::Succeeded
            } else {
                OperationStatus::Incomplete
            }
        }
        OperationKind::Other => {
            let failed = first_failed(&|w| {
                w.local.broken()
                    || (w.local.status().is_some_and(|s| s >= 400)
                        && !expected_miss(w, members)
                        && !(matches!(w.local.kind, FlowKind::ApiCheck { .. })
                            && w.local.status() == Some(401)))
            });
            match failed {
                Some(w) => OperationStatus::Failed { reason: failure(w) },
                None if members.iter().all(|w| w.local.flow.response.is_some()) => {
                    OperationStatus::Succeeded
                }
                None => OperationStatus::Incomplete,
            }
        }
    }
}

/// A 404 a client expects: the referrers API or its fallback tag before any
/// referrer was pushed, or something the operation deleted before.
fn expected_miss(w: &crate::Work, members: &[&crate::Work]) -> bool {
    if w.local.status() != Some(404) {
        return false;
    }
    let kind = &w.local.kind;
    let (repository, reference) = match kind {
        FlowKind::Referrers { .. } => return true,
        FlowKind::ManifestHead {
            repository,
            reference,
            ..
        }
        | FlowKind::ManifestGet {
            repository,
            reference,
            ..
        } => {
            if is_fallback_tag(reference) {
                return true;
            }
            (repository, reference.as_str())
        }
        FlowKind::BlobHead {
            repository, digest, ..
        }
        | FlowKind::BlobGet {
            repository, digest, ..
        } => (repository, digest.as_str()),
        _ => return false,
    };
    members.iter().any(|d| {
        d.local.start() < w.local.start()
            && d.local.ok()
            && match &d.local.kind {
                FlowKind::ManifestDelete {
                    repository: r,
                    reference: gone,
                    ..
                } => r == repository && gone.as_str() == reference,
                FlowKind::BlobDelete {
                    repository: r,
                    digest: gone,
                    ..
                } => r == repository && gone == reference,
                _ => false,
            }
    })
}

/// What a step is made of.
enum Unit {
    Session(usize, Vec<usize>),
    Flows(Vec<usize>),
}

/// Info annotations worth showing next to a step; warnings and errors always are.
const KEY_LABELS: [AnnotationKind; 6] = [
    AnnotationKind::Challenge,
    AnnotationKind::Token,
    AnnotationKind::Granted,
    AnnotationKind::Digest,
    AnnotationKind::Blobs,
    AnnotationKind::RateLimit,
];

fn steps(members: &[&crate::Work], sessions: &[UploadSession]) -> Vec<Step> {
    let mut units: Vec<Unit> = Vec::new();
    let mut session_unit: HashMap<usize, usize> = HashMap::new();
    for (m, w) in members.iter().enumerate() {
        if let Some(s) = w.session {
            match session_unit.get(&s) {
                Some(&u) => {
                    if let Some(Unit::Session(_, list)) = units.get_mut(u) {
                        list.push(m);
                    }
                }
                None => {
                    session_unit.insert(s, units.len());
                    units.push(Unit::Session(s, vec![m]));
                }
            }
            continue;
        }
        let key = merge_key(w);
        if let (Some(key), Some(Unit::Flows(list))) = (&key, units.last_mut())
            && list
                .last()
                .and_then(|&p| members.get(p))
                .is_some_and(|prev| merge_key(prev).as_ref() == Some(key))
        {
            list.push(m);
            continue;
        }
        units.push(Unit::Flows(vec![m]));
    }
    units
        .into_iter()
        .enumerate()
        .map(|(n, unit)| {
            let (explanation, list) = match &unit {
                Unit::Session(s, list) => (session_line(sessions.get(*s), members, list), list),
                Unit::Flows(list) => (flows_line(members, list), list),
            };
            let flows: Vec<&crate::Work> = list
                .iter()
                .filter_map(|&m| members.get(m).copied())
                .collect();
            let mut annotations: Vec<Annotation> = Vec::new();
            let mut shown_state = false;
            // Several verified downloads in one step are told once.
            let verified: Vec<&&crate::Work> = flows
                .iter()
                .filter(|w| {
                    w.local.download.as_ref().is_some_and(|d| {
                        d.verdict == DigestCheck::Verified && d.range.is_none()
                    })
                })
                .collect();
            let summarise_downloads = verified.len() > 1;
            if summarise_downloads {
                let bytes: u64 = verified
                    .iter()
                    .filter_map(|w| w.local.flow.response.as_ref())
                    .map(|r| r.body.size)
                    .fold(0, u64::saturating_add);
                annotations.push(Annotation::info(
                    AnnotationKind::Digest,
                    format!(
                        "digests verified: the {} bodies received ({}) hash to the digests asked for",
                        verified.len(),
                        human_bytes(bytes)
                    ),
                ));
            }
            for w in &flows {
                for a in &w.local.annotations {
                    if summarise_downloads
                        && a.label == AnnotationKind::Digest
                        && a.severity == Severity::Info
                        && verified.iter().any(|v| v.local.flow.id == w.local.flow.id)
                    {
                        continue;
                    }
                    // One `_state` per upload is enough to tell what it is.
                    let first_state = a.label == AnnotationKind::State && !shown_state;
                    // Credentials matter where authentication happens.
                    let authenticating = a.label == AnnotationKind::Basic
                        && matches!(
                            w.local.kind,
                            FlowKind::ApiCheck { .. } | FlowKind::Token { .. }
                        );
                    let key = a.severity >= Severity::Warning
                        || KEY_LABELS.contains(&a.label)
                        || first_state
                        || authenticating;
                    if key && !annotations.contains(a) {
                        shown_state |= a.label == AnnotationKind::State;
                        annotations.push(a.clone());
                    }
                }
            }
            Step {
                number: n + 1,
                explanation,
                flow_ids: flows.iter().map(|w| w.local.flow.id).collect(),
                annotations,
            }
        })
        .collect()
}

/// Flows in a row with the same key make one step.
fn merge_key(w: &crate::Work) -> Option<String> {
    let status = w
        .local
        .status()
        .map_or_else(|| "none".to_owned(), |s| s.to_string());
    match &w.local.kind {
        FlowKind::BlobHead { repository, .. } => Some(format!("head {repository} {status}")),
        FlowKind::BlobGet {
            repository,
            redirect_to: None,
            redirected_from: None,
            ..
        } => Some(format!("get {repository} {status}")),
        FlowKind::Token { scopes, server, .. } => {
            Some(format!("token {server} {} {status}", scopes.join(" ")))
        }
        _ => None,
    }
}

fn flows_line(members: &[&crate::Work], list: &[usize]) -> String {
    let flows: Vec<&crate::Work> = list
        .iter()
        .filter_map(|&m| members.get(m).copied())
        .collect();
    let Some(first) = flows.first() else {
        return String::new();
    };
    if flows.len() == 1 {
        return first.summary.clone();
    }
    let digests = || {
        flows
            .iter()
            .filter_map(|w| match &w.local.kind {
                FlowKind::BlobHead { digest, .. } | FlowKind::BlobGet { digest, .. } => {
                    Some(short_digest(digest))
                }
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &first.local.kind {
        FlowKind::BlobHead { repository, .. } => {
            let verdict = match first.local.status() {
                Some(200) => "all present".to_owned(),
                Some(404) => "all missing".to_owned(),
                Some(s) => crate::http::status_text(s),
                None => "no response".to_owned(),
            };
            format!(
                "HEAD {} blobs of {repository}: {verdict} ({})",
                flows.len(),
                digests()
            )
        }
        FlowKind::BlobGet {
            repository, digest, ..
        } if flows.iter().all(
            |w| matches!(&w.local.kind, FlowKind::BlobGet { digest: d, .. } if d == digest),
        ) =>
        {
            let ranges: Vec<String> = flows
                .iter()
                .map(|w| match w.local.download.as_ref().and_then(|d| d.range) {
                    Some(r) => format!("{}..{}", r.start, r.end),
                    None => w
                        .local
                        .status()
                        .map_or_else(|| "no response".to_owned(), crate::http::status_text),
                })
                .collect();
            format!(
                "GET blob {} of {repository} in {} requests ({})",
                short_digest(digest),
                flows.len(),
                ranges.join(", ")
            )
        }
        FlowKind::BlobGet { repository, .. } => {
            let total: u64 = flows
                .iter()
                .map(|w| w.local.flow.response.as_ref().map_or(0, |r| r.body.size))
                .fold(0, u64::saturating_add);
            let outcome = first
                .local
                .status()
                .map_or_else(|| "no response".to_owned(), crate::http::status_text);
            format!(
                "GET {} blobs of {repository}: {outcome}, {} in total ({})",
                flows.len(),
                human_bytes(total),
                digests()
            )
        }
        _ => format!("{}× {}", flows.len(), first.summary),
    }
}

fn session_line(
    session: Option<&UploadSession>,
    members: &[&crate::Work],
    list: &[usize],
) -> String {
    let Some(s) = session else {
        return flows_line(members, list);
    };
    let blob = s
        .digest
        .as_deref()
        .map(short_digest)
        .unwrap_or_else(|| "of unknown digest".to_owned());
    let chunks = s.chunks.iter().filter(|c| c.bytes > 0).count();
    let amount = format!(
        "{} in {chunks} chunk{}",
        human_bytes(s.total_bytes),
        if chunks == 1 { "" } else { "s" }
    );
    let check = match &s.digest_check {
        DigestCheck::Verified => "digest verified".to_owned(),
        DigestCheck::Mismatch { expected, computed } => {
            format!("DIGEST MISMATCH: the bytes sent hash to {computed}, not {expected}")
        }
        DigestCheck::NotVerifiable { reason } => format!("digest not verifiable ({reason})"),
        DigestCheck::Pending => "no digest yet".to_owned(),
    };
    let id = s
        .upload_id
        .as_deref()
        .map(|id| format!(" {}", id.chars().take(8).collect::<String>()))
        .unwrap_or_default();
    let last = || {
        list.last()
            .and_then(|&m| members.get(m))
            .map(|w| w.summary.clone())
            .unwrap_or_default()
    };
    match (&s.start, s.outcome) {
        (UploadStart::Mount { .. } | UploadStart::MountFallback { .. }, SessionOutcome::Failed)
            if list.len() == 1 =>
        {
            last()
        }
        (UploadStart::Mount { from }, _) => format!(
            "mount blob {blob} from {}: mounted, nothing uploaded",
            from.as_deref().unwrap_or("another repository")
        ),
        (UploadStart::MountFallback { from }, SessionOutcome::Completed) => format!(
            "mount of blob {blob} from {} refused, uploaded instead ({amount}): {check}",
            from.as_deref().unwrap_or("another repository")
        ),
        (UploadStart::Monolithic, SessionOutcome::Completed) => {
            format!("upload blob {blob} in one request ({amount}): {check}")
        }
        (_, SessionOutcome::Completed) => format!("upload blob {blob} ({amount}): {check}"),
        (_, SessionOutcome::Cancelled) => {
            format!("upload{id} to {} cancelled after {amount}", s.repository)
        }
        (_, SessionOutcome::Failed) => {
            format!("upload{id} to {} failed: {}", s.repository, last())
        }
        (_, SessionOutcome::Open | SessionOutcome::Mounted) => format!(
            "upload{id} to {} still open after {} request(s), {amount} sent",
            s.repository,
            list.len()
        ),
    }
}
