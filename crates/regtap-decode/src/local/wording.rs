//! How [`super`]'s facts are worded: the sentences of annotations and
//! summaries, from parsed challenges, tokens, manifests, rate limits and
//! user names.

use url::Url;

use super::Local;
use crate::http::short_digest;
use crate::jwt::access_scope;
use crate::model::{
    Annotation, AnnotationKind, Challenge, Descriptor, DescriptorRole, ManifestInfo,
    ManifestPurpose, RateLimit, TokenInfo,
};
use crate::{errors, manifest};

/// What well-known user names say about the password they come with.
pub(super) fn user_hint(user: &str, url: Option<&Url>) -> Option<String> {
    let host = url.and_then(Url::host_str).unwrap_or_default();
    Some(match user {
        "AWS" => "user AWS: the password is an ECR authorization token (valid 12 hours)".to_owned(),
        "oauth2accesstoken" => {
            "user oauth2accesstoken: the password is a Google OAuth2 access token (GCR / Artifact Registry, valid about 1 hour)".to_owned()
        }
        "_json_key" | "_json_key_base64" => format!(
            "user {user}: the password is a Google service-account key{}",
            if user == "_json_key_base64" { " (base64)" } else { " (JSON)" }
        ),
        "00000000-0000-0000-0000-000000000000" => {
            "the null GUID user: the password is an Azure Container Registry refresh token (az acr login)".to_owned()
        }
        _ if user.contains('@') && host.ends_with("docker.io") => {
            "Docker Hub expects the Docker ID as user name, not an email address".to_owned()
        }
        _ => return None,
    })
}

/// RFC 6750 §3.1 error codes of a Bearer challenge, explained.
pub(super) fn challenge_error_text(error: &str, scope: &[String]) -> String {
    let needs = if scope.is_empty() {
        String::new()
    } else {
        format!(" (it needs {})", scope.join(" "))
    };
    match error {
        "insufficient_scope" => {
            format!("the token does not grant the access this request needs{needs}: insufficient_scope")
        }
        "invalid_token" => {
            "the registry rejected the token: expired, malformed or signed by an unknown key (invalid_token)".to_owned()
        }
        "invalid_request" => "the registry found the request malformed (invalid_request)".to_owned(),
        other => format!("the registry refused the token: {other}{needs}"),
    }
}

pub(crate) fn challenge_text(c: &Challenge) -> String {
    let mut parts = vec![format!("{} challenge", c.scheme)];
    if let Some(realm) = &c.realm {
        parts.push(format!("realm {realm}"));
    }
    if let Some(service) = &c.service {
        parts.push(format!("service {service}"));
    }
    if !c.scope.is_empty() {
        parts.push(format!("scope {}", c.scope.join(" ")));
    }
    if let Some(error) = &c.error {
        parts.push(format!("error {error}"));
    }
    parts.join(", ")
}

pub(crate) fn manifest_text(info: &ManifestInfo) -> String {
    let name = manifest::schema_name(info.schema);
    let subject = info
        .subject
        .as_ref()
        .map(|d| format!(", refers to {} (subject)", short_digest(&d.digest)))
        .unwrap_or_default();
    let what = match &info.purpose {
        ManifestPurpose::Image => String::new(),
        ManifestPurpose::Artifact { artifact_type } => {
            format!(" (artifact {})", errors::one_line(artifact_type))
        }
        ManifestPurpose::Attestation => " (BuildKit attestation: in-toto statements)".to_owned(),
        ManifestPurpose::BuildCache => " (BuildKit build cache)".to_owned(),
    };
    if manifest::is_index(info.schema) {
        let attestations = info
            .manifests
            .iter()
            .filter(|m| m.role == Some(DescriptorRole::AttestationManifest))
            .count();
        let images: Vec<&Descriptor> = info
            .manifests
            .iter()
            .filter(|m| m.role != Some(DescriptorRole::AttestationManifest))
            .collect();
        let platforms: Vec<&str> = images
            .iter()
            .filter_map(|m| m.platform.as_deref())
            .collect();
        format!(
            "{name}{what} of {} manifest(s){}{}{subject}",
            images.len(),
            if platforms.is_empty() {
                String::new()
            } else {
                format!(": {}", platforms.join(", "))
            },
            if attestations > 0 {
                format!(", and {attestations} attestation manifest(s)")
            } else {
                String::new()
            }
        )
    } else {
        // Attestations are statements, not image bytes.
        let statements = info
            .layers
            .iter()
            .filter(|l| l.role == Some(DescriptorRole::InToto))
            .count();
        let total = info
            .layers
            .iter()
            .filter(|l| l.role != Some(DescriptorRole::InToto))
            .filter_map(|l| l.size)
            .fold(0u64, u64::saturating_add);
        let config = info
            .config
            .as_ref()
            .map(|c| format!("config {}, ", short_digest(&c.digest)))
            .unwrap_or_default();
        let layers = if statements > 0 && statements == info.layers.len() {
            format!("{statements} in-toto statement(s)")
        } else {
            format!(
                "{} layer(s), {}",
                info.layers.len() - statements,
                crate::http::human_bytes(total)
            )
        };
        format!("{name}{what}: {config}{layers}{subject}")
    }
}

pub(super) fn rate_limit_text(limit: &RateLimit) -> String {
    let mut text = match (limit.remaining, limit.limit) {
        (Some(remaining), Some(max)) => format!("rate limit: {remaining} of {max} requests left"),
        (None, Some(max)) => format!("rate limit: {max} requests"),
        (Some(remaining), None) => format!("rate limit: {remaining} requests left"),
        (None, None) => "rate limit".to_owned(),
    };
    if let Some(window) = limit.window_seconds {
        if window % 3600 == 0 {
            text.push_str(&format!(" per {} h", window / 3600));
        } else {
            text.push_str(&format!(" per {window} s"));
        }
    }
    if let Some(source) = &limit.source {
        text.push_str(&format!(", counted for {source}"));
    }
    text
}

/// What a token response says, as annotations: the token, its claims and
/// problems, the scopes asked for and granted.
pub(super) fn token_annotations(local: &mut Local, info: &TokenInfo) {
    let mut text = format!("issued token {}", info.fingerprint);
    match &info.jwt {
        Some(jwt) => {
            let c = &jwt.claims;
            if let Some(iss) = &c.iss {
                text.push_str(&format!(", iss {iss}"));
            }
            if !c.aud.is_empty() {
                text.push_str(&format!(", aud {}", c.aud.join(",")));
            }
            if let Some(exp) = &c.exp {
                text.push_str(&format!(", exp {}", exp.utc));
            }
            if let Some(cert) = &jwt.header.x5c_first {
                text.push_str(&format!(", signed by {}", cert.subject));
            }
            for problem in &jwt.problems {
                local.annotations.push(Annotation::warning(
                    AnnotationKind::Jwt,
                    format!("token JWT: {problem}"),
                ));
            }
        }
        None => text.push_str(" (opaque: not a JWT)"),
    }
    if let Some(seconds) = info.expires_in {
        text.push_str(&format!(", expires_in {seconds} s"));
    }
    local
        .annotations
        .push(Annotation::info(AnnotationKind::Token, text));
    if !info.requested_scopes.is_empty() {
        local.annotations.push(Annotation::info(
            AnnotationKind::Scope,
            format!("requested {}", info.requested_scopes.join(" ")),
        ));
    }
    if info.jwt.is_some() {
        let granted: Vec<String> = info.granted.iter().map(access_scope).collect();
        local.annotations.push(Annotation::info(
            AnnotationKind::Granted,
            if granted.is_empty() {
                "granted no repository access".to_owned()
            } else {
                format!("granted {}", granted.join(" "))
            },
        ));
    }
    if !info.missing_grants.is_empty() {
        local.annotations.push(Annotation::warning(
            AnnotationKind::Granted,
            format!(
                "the token server granted less than requested: missing {}",
                info.missing_grants.join(" ")
            ),
        ));
    }
}
