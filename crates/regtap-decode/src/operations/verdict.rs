//! Whether an operation worked: its status, from its flows and upload sessions.

use super::{pulls, writes};
use crate::grouping::is_fallback_tag;
use crate::model::{
    AnnotationKind, FlowKind, OperationKind, OperationStatus, Reference, SessionOutcome, Severity,
    UploadSession,
};

pub(super) fn status(
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
