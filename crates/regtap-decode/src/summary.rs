//! The one-line summary of each flow.

use crate::Work;
use crate::http::{human_bytes, short_digest, status_text};
use crate::local::{challenge_text, manifest_text};
use crate::model::{FlowKind, TokenGrant, UploadSession};

pub(crate) fn summarize(w: &Work, sessions: &[UploadSession]) -> String {
    let local = &w.local;
    let status = local.status();
    let outcome = match (status, &local.flow.error) {
        (Some(s), _) => status_text(s),
        (None, Some(e)) => format!("failed: {}", e.message),
        (None, None) => "no response".to_owned(),
    };
    let upload = |id: &str| {
        let short: String = id.chars().take(8).collect();
        if id.chars().count() > 8 {
            format!("{short}…")
        } else {
            short
        }
    };
    let size = |bytes: Option<u64>| {
        bytes
            .map(human_bytes)
            .map(|b| format!(", {b}"))
            .unwrap_or_default()
    };
    let content_length = local
        .response_header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    match &local.kind {
        FlowKind::ApiCheck { registry } => {
            let detail = match status {
                Some(200) => ": API v2 available".to_owned(),
                Some(401) => local
                    .challenges
                    .first()
                    .map(|c| format!(": {}", challenge_text(c)))
                    .unwrap_or_else(|| ": no WWW-Authenticate challenge".to_owned()),
                Some(404) => ": no v2 API here".to_owned(),
                _ => String::new(),
            };
            format!("API check {registry}: {outcome}{detail}")
        }
        FlowKind::Token {
            server,
            grant,
            scopes,
            account,
            ..
        } => {
            let what = if scopes.is_empty() {
                "no scope (login)".to_owned()
            } else {
                scopes.join(" ")
            };
            let how = match grant {
                TokenGrant::Get => String::new(),
                TokenGrant::Password => " (OAuth2 password)".to_owned(),
                TokenGrant::RefreshToken => " (OAuth2 refresh token)".to_owned(),
                TokenGrant::Other(g) if g.is_empty() => " (POST)".to_owned(),
                TokenGrant::Other(g) => format!(" (OAuth2 {g})"),
            };
            let who = account
                .as_deref()
                .map(|a| format!(" as {a}"))
                .unwrap_or_default();
            let granted = local
                .token
                .as_ref()
                .filter(|t| t.jwt.is_some())
                .map(|t| {
                    let actions: Vec<String> = t
                        .granted
                        .iter()
                        .map(|a| format!("{}:{}", a.name, a.actions.join(",")))
                        .collect();
                    if actions.is_empty() {
                        ", granted no repository access".to_owned()
                    } else {
                        format!(", granted {}", actions.join(" "))
                    }
                })
                .unwrap_or_default();
            format!("token from {server}{how}{who} for {what}: {outcome}{granted}")
        }
        FlowKind::BlobHead {
            repository, digest, ..
        } => {
            let verdict = match status {
                Some(200) => format!("present{}", size(content_length)),
                Some(404) => "missing".to_owned(),
                _ => outcome.clone(),
            };
            format!(
                "HEAD blob {} of {repository}: {verdict}",
                short_digest(digest)
            )
        }
        FlowKind::BlobGet {
            repository,
            digest,
            range,
            redirect_to,
            redirected_from,
            ..
        } => {
            let range = range
                .as_deref()
                .map(|r| format!(" (Range {r})"))
                .unwrap_or_default();
            let tail = match (redirect_to, redirected_from) {
                (Some(to), _) => {
                    let host = url::Url::parse(to)
                        .map(|u| crate::http::authority(&u))
                        .unwrap_or_default();
                    format!(", redirect to {host}")
                }
                (None, Some(from)) => format!(
                    " from storage (redirected by #{from}), {}",
                    human_bytes(local.flow.response.as_ref().map_or(0, |r| r.body.size))
                ),
                (None, None) => size(
                    local
                        .flow
                        .response
                        .as_ref()
                        .map(|r| r.body.size)
                        .filter(|s| *s > 0),
                ),
            };
            format!(
                "GET blob {} of {repository}{range}: {outcome}{tail}",
                short_digest(digest)
            )
        }
        FlowKind::BlobDelete {
            repository, digest, ..
        } => format!(
            "DELETE blob {} of {repository}: {outcome}",
            short_digest(digest)
        ),
        FlowKind::UploadStart {
            repository, digest, ..
        } => {
            let id = local
                .response_upload_id
                .as_deref()
                .map(|id| format!(", upload {}", upload(id)))
                .unwrap_or_default();
            match digest {
                Some(d) => format!(
                    "monolithic upload of {} ({}) to {repository}: {outcome}",
                    short_digest(d),
                    human_bytes(local.flow.request.body.size)
                ),
                None => format!("start upload to {repository}: {outcome}{id}"),
            }
        }
        FlowKind::UploadMount {
            repository,
            digest,
            from,
            ..
        } => {
            let verdict = match status {
                Some(201) => "mounted".to_owned(),
                Some(202) => "not mounted, upload started instead".to_owned(),
                _ => outcome.clone(),
            };
            format!(
                "mount blob {} from {} into {repository}: {verdict}",
                short_digest(digest),
                from.as_deref().unwrap_or("?")
            )
        }
        FlowKind::UploadChunk { upload_id, .. } => {
            let range = local
                .response_header("range")
                .map(|r| format!(", registry holds {r}"))
                .unwrap_or_default();
            format!(
                "send chunk of {} to upload {}: {outcome}{range}",
                human_bytes(local.flow.request.body.size),
                upload(upload_id)
            )
        }
        FlowKind::UploadStatus { upload_id, .. } => {
            let range = local
                .response_header("range")
                .map(|r| format!(", registry holds {r}"))
                .unwrap_or_default();
            format!("status of upload {}: {outcome}{range}", upload(upload_id))
        }
        FlowKind::UploadFinish {
            upload_id, digest, ..
        } => {
            let check = w
                .session
                .and_then(|i| sessions.get(i))
                .map(|s| match &s.digest_check {
                    crate::model::DigestCheck::Verified => ", digest verified".to_owned(),
                    crate::model::DigestCheck::Mismatch { .. } => ", DIGEST MISMATCH".to_owned(),
                    _ => String::new(),
                })
                .unwrap_or_default();
            format!(
                "finish upload {} as {}: {outcome}{check}",
                upload(upload_id),
                digest
                    .as_deref()
                    .map(short_digest)
                    .unwrap_or_else(|| "(no digest)".to_owned())
            )
        }
        FlowKind::UploadCancel { upload_id, .. } => {
            format!("cancel upload {}: {outcome}", upload(upload_id))
        }
        FlowKind::ManifestHead {
            repository,
            reference,
            ..
        } => {
            let digest = local
                .response_header("docker-content-digest")
                .map(|d| format!(", {}", short_digest(d)))
                .unwrap_or_default();
            let verdict = match status {
                Some(200) => format!("present{digest}"),
                Some(404) => "missing".to_owned(),
                _ => outcome.clone(),
            };
            format!(
                "HEAD manifest {repository}{}: {verdict}",
                short_ref(reference)
            )
        }
        FlowKind::ManifestGet {
            repository,
            reference,
            ..
        } => {
            let what = local
                .manifest
                .as_ref()
                .map(|m| format!(", {}", manifest_text(m)))
                .unwrap_or_default();
            format!(
                "GET manifest {repository}{}: {outcome}{what}",
                short_ref(reference)
            )
        }
        FlowKind::ManifestPut {
            repository,
            reference,
            ..
        } => {
            let what = local
                .manifest
                .as_ref()
                .map(|m| format!(", {}", manifest_text(m)))
                .unwrap_or_default();
            format!(
                "PUT manifest {repository}{}: {outcome}{what}",
                short_ref(reference)
            )
        }
        FlowKind::ManifestDelete {
            repository,
            reference,
            ..
        } => format!(
            "DELETE manifest {repository}{}: {outcome}",
            short_ref(reference)
        ),
        FlowKind::TagsList { repository, .. } => {
            format!(
                "list tags of {repository}: {outcome}{}",
                json_count(w, "tags")
            )
        }
        FlowKind::Catalog { registry } => {
            format!(
                "list repositories of {registry}: {outcome}{}",
                json_count(w, "repositories")
            )
        }
        FlowKind::Referrers {
            repository, digest, ..
        } => format!(
            "list referrers of {repository}@{}: {outcome}",
            short_digest(digest)
        ),
        FlowKind::Unknown => {
            let target = local
                .url
                .as_ref()
                .map(|u| format!("{}{}", crate::http::authority(u), u.path()))
                .unwrap_or_else(|| local.flow.url().to_owned());
            format!("{} {target}: {outcome}", local.flow.method())
        }
    }
}

/// `:latest` or `@sha256:0123456789ab…`.
pub(crate) fn short_ref(reference: &crate::model::Reference) -> String {
    match reference {
        crate::model::Reference::Tag(tag) => format!(":{tag}"),
        crate::model::Reference::Digest(d) => format!("@{}", short_digest(d)),
    }
}

/// `, 3 tags` from a JSON list answer.
fn json_count(w: &Work, field: &str) -> String {
    let Some(response) = &w.local.flow.response else {
        return String::new();
    };
    let Some(body) = crate::http::decoded_body(&response.body, &response.headers) else {
        return String::new();
    };
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get(field).and_then(|l| l.as_array().map(Vec::len)))
        .map(|n| format!(", {n} {field}"))
        .unwrap_or_default()
}
