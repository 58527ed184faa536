//! Content negotiation of manifests: the request's `Accept` against what
//! the registry answered.

use crate::errors::one_line;
use crate::local::Local;
use crate::model::{Annotation, AnnotationKind, FlowKind};

/// The index types a multi-platform image is stored as.
const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

pub(crate) fn annotate(local: &mut Local) {
    if !matches!(
        local.kind,
        FlowKind::ManifestGet { .. } | FlowKind::ManifestHead { .. }
    ) {
        return;
    }
    let Some(status) = local.status() else {
        return;
    };
    // Clients send one Accept with a list, or (dockerd) one Accept per type.
    let accept = local
        .flow
        .request
        .headers
        .get_all("accept")
        .collect::<Vec<_>>()
        .join(", ");
    if accept.trim().is_empty() {
        return;
    }
    let accepted = media_types(&accept);
    if accepted.iter().any(|t| t == "*/*") {
        return;
    }
    if (200..300).contains(&status) {
        let Some(served) = local
            .response_header("content-type")
            .map(|c| c.split(';').next().unwrap_or_default().trim().to_owned())
            .filter(|c| !c.is_empty())
        else {
            return;
        };
        if !accepted.contains(&served) {
            local.annotations.push(Annotation::warning(
                AnnotationKind::Negotiation,
                format!(
                    "the registry answered {} although the request's Accept did not list it ({})",
                    one_line(&served),
                    one_line(&accept)
                ),
            ));
        }
    } else if status == 404 && !INDEX_TYPES.iter().any(|t| accepted.iter().any(|a| a == t)) {
        local.annotations.push(Annotation::info(
            AnnotationKind::Negotiation,
            "the request's Accept lists no index type (OCI index, Docker manifest list): if this tag is a multi-platform image, some registries answer 404 rather than a type the client did not ask for",
        ));
    }
}

/// `a/b, c/d;q=0.5` → `["a/b", "c/d"]`.
fn media_types(accept: &str) -> Vec<String> {
    accept
        .split(',')
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_lists() {
        assert_eq!(
            media_types("application/a+json, application/b;q=0.5,,"),
            vec!["application/a+json", "application/b"]
        );
    }
}
