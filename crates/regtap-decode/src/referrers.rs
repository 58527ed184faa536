//! OCI 1.1 artifacts and referrers, decoded from one flow: `OCI-Subject` on
//! manifest PUT answers, the referrers API's answer and its `artifactType`
//! filter, the referrers tag schema (`sha256-<hex>`) a client falls back to,
//! and sigstore's `.sig`/`.att`/`.sbom` tags.

use serde_json::Value;

use crate::errors::one_line;
use crate::http::{decoded_body, query_first, short_digest};
use crate::local::Local;
use crate::model::{Annotation, AnnotationKind, FlowKind, Reference};

pub(crate) fn annotate(local: &mut Local) {
    tags(local);
    subject(local);
    referrers_answer(local);
}

/// What a tag of the referrers schema or of sigstore's convention stands for.
fn tags(local: &mut Local) {
    let reference = match &local.kind {
        FlowKind::ManifestHead { reference, .. }
        | FlowKind::ManifestGet { reference, .. }
        | FlowKind::ManifestPut { reference, .. } => reference,
        _ => return,
    };
    let Reference::Tag(tag) = reference else {
        return;
    };
    let text = if let Some(subject) = subject_of_fallback(tag) {
        let miss = if local.status() == Some(404) {
            "; 404: no referrer was pushed yet (expected, not a failure)"
        } else {
            ""
        };
        format!(
            "referrers tag schema: the index of what refers to {}, kept by the client where the registry has no referrers API{miss}",
            short_digest(&subject)
        )
    } else if let Some((subject, kind)) = sigstore(tag) {
        format!("sigstore {kind} of {}", short_digest(&subject))
    } else {
        return;
    };
    local
        .annotations
        .push(Annotation::info(AnnotationKind::Artifact, text));
}

/// `sha256-<hex>` → `sha256:<hex>`.
fn subject_of_fallback(tag: &str) -> Option<String> {
    crate::grouping::is_fallback_tag(&Reference::Tag(tag.to_owned()))
        .then(|| tag.replacen('-', ":", 1))
}

/// `sha256-<hex>.sig` → (`sha256:<hex>`, "signature").
fn sigstore(tag: &str) -> Option<(String, &'static str)> {
    let (base, suffix) = tag.rsplit_once('.')?;
    let kind = match suffix {
        "sig" => "signature",
        "att" => "attestation",
        "sbom" => "SBOM",
        _ => return None,
    };
    Some((subject_of_fallback(base)?, kind))
}

/// A manifest PUT with a `subject`: did the registry take it (`OCI-Subject`)?
fn subject(local: &mut Local) {
    if !matches!(local.kind, FlowKind::ManifestPut { .. }) || !local.ok() {
        return;
    }
    let Some(subject) = local.manifest.as_ref().and_then(|m| m.subject.clone()) else {
        return;
    };
    let text = match local.response_header("oci-subject") {
        Some(echo) => format!(
            "the registry processed the subject {} (OCI-Subject {}): its referrers API lists this manifest",
            short_digest(&subject.digest),
            one_line(echo)
        ),
        None => format!(
            "no OCI-Subject in the answer: the registry did not process the subject {}; the client must update the referrers tag schema itself",
            short_digest(&subject.digest)
        ),
    };
    local
        .annotations
        .push(Annotation::info(AnnotationKind::Artifact, text));
}

/// The referrers API's answer: an index of descriptors with `artifactType`.
fn referrers_answer(local: &mut Local) {
    if !matches!(local.kind, FlowKind::Referrers { .. }) {
        return;
    }
    let asked_type = local
        .url
        .as_ref()
        .and_then(|u| query_first(u, "artifactType"));
    let Some(response) = &local.flow.response else {
        return;
    };
    if response.status == 404 {
        local.annotations.push(Annotation::info(
            AnnotationKind::Artifact,
            "404: the registry has no referrers API; the client falls back to the referrers tag schema",
        ));
        return;
    }
    if response.status != 200 {
        return;
    }
    let applied = response
        .headers
        .get("oci-filters-applied")
        .map(str::to_owned);
    let Some(body) = decoded_body(&response.body, &response.headers) else {
        return;
    };
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        local.annotations.push(Annotation::warning(
            AnnotationKind::Artifact,
            "the referrers answer is not JSON",
        ));
        return;
    };
    let entries = value
        .get("manifests")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut types: Vec<String> = Vec::new();
    for entry in entries {
        let t = entry
            .get("artifactType")
            .and_then(Value::as_str)
            .map_or_else(|| "no artifactType".to_owned(), one_line);
        if !types.contains(&t) {
            types.push(t);
        }
    }
    let mut text = format!("{} referrer(s)", entries.len());
    if !types.is_empty() {
        text.push_str(&format!(": {}", types.join(", ")));
    }
    local
        .annotations
        .push(Annotation::info(AnnotationKind::Artifact, text));
    if let Some(asked) = asked_type {
        let filtered = applied
            .as_deref()
            .is_some_and(|a| a.split(',').any(|f| f.trim() == "artifactType"));
        local.annotations.push(Annotation::info(
            AnnotationKind::Artifact,
            if filtered {
                format!(
                    "filtered by the registry to artifactType {} (OCI-Filters-Applied)",
                    one_line(&asked)
                )
            } else {
                format!(
                    "artifactType {} asked for, but the registry did not filter (no OCI-Filters-Applied): the client must",
                    one_line(&asked)
                )
            },
        ));
    }
}
