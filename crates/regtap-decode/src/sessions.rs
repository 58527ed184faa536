//! Upload sessions: the POST, PATCHes, PUT, status GETs and DELETE of one
//! blob upload, grouped by upload id (from the `Location` path,
//! `Docker-Upload-UUID` or `_state`), whatever else runs in parallel.

use regtap_capture::Ending;
use sha2::Digest as _;

use crate::hash::HashMap;
use crate::http::human_bytes;
use crate::model::AnnotationKind;
use crate::model::{
    Annotation, Chunk, DigestCheck, FlowKind, SessionOutcome, UploadSession, UploadStart,
};
use crate::{Work, Works};

/// Builds the sessions of `work` (in time order) and sets each flow's
/// `session` index.
pub(crate) fn build(works: &mut Works) -> Vec<UploadSession> {
    let mut sessions: Vec<UploadSession> = Vec::new();
    // Keyed by (host the upload's requests go to, upload id): ids are unique
    // per registry, and an absolute `Location` may send them to another host.
    let mut by_id: HashMap<(String, String), usize> = HashMap::default();
    for w in works.items.iter_mut() {
        // Only upload requests need their kind copied (to be read while
        // the flow is annotated): most flows are not one.
        let kind = match &w.local.kind {
            kind @ (FlowKind::UploadStart { .. }
            | FlowKind::UploadMount { .. }
            | FlowKind::UploadChunk { .. }
            | FlowKind::UploadStatus { .. }
            | FlowKind::UploadFinish { .. }
            | FlowKind::UploadCancel { .. }) => kind.clone(),
            _ => continue,
        };
        let index = match &kind {
            FlowKind::UploadStart {
                registry,
                repository,
                digest,
            } => Some(start(
                &mut sessions,
                &mut by_id,
                w,
                registry,
                repository,
                digest.clone(),
                None,
            )),
            FlowKind::UploadMount {
                registry,
                repository,
                digest,
                from,
            } => Some(start(
                &mut sessions,
                &mut by_id,
                w,
                registry,
                repository,
                Some(digest.clone()),
                Some(from.clone()),
            )),
            FlowKind::UploadChunk {
                registry,
                repository,
                upload_id,
                ..
            }
            | FlowKind::UploadStatus {
                registry,
                repository,
                upload_id,
            }
            | FlowKind::UploadFinish {
                registry,
                repository,
                upload_id,
                ..
            }
            | FlowKind::UploadCancel {
                registry,
                repository,
                upload_id,
            } => {
                let key = (registry.clone(), upload_id.clone());
                let index = *by_id.entry(key).or_insert_with(|| {
                    sessions.push(new_session(
                        sessions.len(),
                        registry,
                        repository,
                        Some(upload_id.clone()),
                        UploadStart::NotSeen,
                    ));
                    sessions.len() - 1
                });
                if let Some(session) = sessions.get_mut(index) {
                    follow(session, w);
                }
                // A registry may hand out a new id in the Location.
                if let Some(next) = next_key(w) {
                    by_id.entry(next).or_insert(index);
                }
                Some(index)
            }
            _ => None,
        };
        if let Some(index) = index {
            w.session = Some(index);
            if let Some(session) = sessions.get_mut(index) {
                session.flow_ids.push(w.local.flow.id);
            }
            state_consistency(w);
        }
    }
    for session in &mut sessions {
        finish(session, works);
    }
    sessions
}

/// Where the next request of this upload will go, and its id.
fn next_key(w: &Work) -> Option<(String, String)> {
    let id = w.local.response_upload_id.clone()?;
    let host = match &w.local.location {
        Some(location) => crate::classify::registry_of(location),
        None => w.local.kind.registry()?.to_owned(),
    };
    Some((host, id))
}

fn new_session(
    index: usize,
    registry: &str,
    repository: &str,
    upload_id: Option<String>,
    start: UploadStart,
) -> UploadSession {
    UploadSession {
        index,
        registry: registry.to_owned(),
        repository: repository.to_owned(),
        upload_id,
        start,
        flow_ids: Vec::new(),
        chunks: Vec::new(),
        total_bytes: 0,
        digest: None,
        digest_check: DigestCheck::Pending,
        outcome: SessionOutcome::Open,
        blob_location: None,
    }
}

/// A POST: a new session, or (for a POST answered with an id already seen,
/// which a capture that starts mid-upload can give) that session.
fn start(
    sessions: &mut Vec<UploadSession>,
    by_id: &mut HashMap<(String, String), usize>,
    w: &mut Work,
    registry: &str,
    repository: &str,
    digest: Option<String>,
    mount_from: Option<Option<String>>,
) -> usize {
    let status = w.local.status();
    let upload_id = w.local.response_upload_id.clone();
    let key = next_key(w);
    let start = match (&mount_from, status) {
        (Some(from), Some(201)) => UploadStart::Mount { from: from.clone() },
        (Some(from), _) => UploadStart::MountFallback { from: from.clone() },
        (None, _) if digest.is_some() => UploadStart::Monolithic,
        (None, _) => UploadStart::Chunked,
    };
    // An id already seen names the same upload only when that upload's
    // POST was not seen (the capture started mid-upload); a registry that
    // hands out an id twice started a new upload.
    let known = key
        .as_ref()
        .and_then(|k| by_id.get(k))
        .copied()
        .filter(|&i| {
            sessions
                .get(i)
                .is_some_and(|s| s.start == UploadStart::NotSeen)
        });
    let index = match known {
        Some(index) => index,
        None => {
            sessions.push(new_session(
                sessions.len(),
                registry,
                repository,
                upload_id.clone(),
                start.clone(),
            ));
            let index = sessions.len() - 1;
            if let Some(key) = key {
                by_id.insert(key, index);
            }
            index
        }
    };
    let Some(session) = sessions.get_mut(index) else {
        return index;
    };
    session.start = start.clone();
    session.digest = digest;
    match (&start, status) {
        (UploadStart::Mount { from }, _) => {
            session.outcome = SessionOutcome::Mounted;
            session.blob_location = w.local.location.as_ref().map(|l| l.path().to_owned());
            w.local.annotations.push(Annotation::info(
                AnnotationKind::Mount,
                format!(
                    "mounted from {}: no bytes uploaded",
                    from.as_deref().unwrap_or("another repository")
                ),
            ));
        }
        (UploadStart::MountFallback { from }, Some(202)) => {
            w.local.annotations.push(Annotation::info(
                AnnotationKind::Mount,
                format!(
                    "the registry did not mount the blob from {} and started a normal upload instead",
                    from.as_deref().unwrap_or("the other repository")
                ),
            ));
        }
        (UploadStart::Monolithic, Some(201)) => {
            add_chunk(session, w);
            session.outcome = SessionOutcome::Completed;
            session.blob_location = w.local.location.as_ref().map(|l| l.path().to_owned());
        }
        (UploadStart::Monolithic, Some(202)) if w.local.flow.request.body.size > 0 => {
            // distribution ignores the body of a `POST ?digest=` it answers
            // 202: the client must send the blob again.
            w.local.annotations.push(Annotation::info(
                AnnotationKind::Chunk,
                format!(
                    "the registry answered 202, not 201: it did not take the {} sent with this POST, which are not part of the upload",
                    human_bytes(w.local.flow.request.body.size)
                ),
            ));
        }
        _ => {}
    }
    if let Some(status) = status
        && status >= 400
    {
        session.outcome = SessionOutcome::Failed;
    }
    if w.local.flow.response.is_none() {
        session.outcome = SessionOutcome::Failed;
    }
    index
}

/// A PATCH, PUT, GET or DELETE of an existing upload.
fn follow(session: &mut UploadSession, w: &mut Work) {
    let status = w.local.status();
    let kind = w.local.kind.clone();
    match &kind {
        FlowKind::UploadChunk { .. } => add_chunk(session, w),
        FlowKind::UploadFinish { digest, .. } => {
            if w.local.flow.request.body.size > 0 || !w.local.flow.request.body.is_complete() {
                add_chunk(session, w);
            }
            if digest.is_some() {
                session.digest = digest.clone();
            }
            if status == Some(201) {
                session.outcome = SessionOutcome::Completed;
                session.blob_location = w.local.location.as_ref().map(|l| l.path().to_owned());
            }
        }
        FlowKind::UploadCancel { .. } if status.is_some_and(|s| (200..300).contains(&s)) => {
            session.outcome = SessionOutcome::Cancelled;
        }
        _ => {}
    }
    let failed = w.local.flow.response.is_none() || status.is_some_and(|s| s >= 400);
    if failed && session.outcome == SessionOutcome::Open {
        session.outcome = SessionOutcome::Failed;
    } else if !failed && session.outcome == SessionOutcome::Failed {
        // A retry went through.
        session.outcome = SessionOutcome::Open;
        if status == Some(201) {
            session.outcome = SessionOutcome::Completed;
        }
    }
    if let Some(range) = w.local.response_header("range").map(str::to_owned) {
        check_server_range(session, w, &range);
    }
}

fn add_chunk(session: &mut UploadSession, w: &mut Work) {
    let status = w.local.status();
    if let Some(status) = status
        && !(200..300).contains(&status)
    {
        // A refused chunk is not part of the upload (the client sends it
        // again, or gives up).
        w.local.annotations.push(Annotation::info(
            AnnotationKind::Chunk,
            format!(
                "the registry refused these {} ({}): not counted in the upload",
                human_bytes(w.local.flow.request.body.size),
                crate::http::status_text(status)
            ),
        ));
        return;
    }
    let body = &w.local.flow.request.body;
    let running = session.total_bytes;
    let content_range = w
        .local
        .flow
        .request
        .headers
        .get("content-range")
        .map(str::to_owned);
    let declared_start = content_range.as_deref().and_then(range_start);
    let offset_start = declared_start.unwrap_or(running);
    if let Some(declared) = declared_start
        && declared != running
    {
        w.local.annotations.push(Annotation::warning(
            AnnotationKind::Chunk,
            format!(
                "Content-Range starts at byte {declared}, but {running} bytes were sent before in this upload"
            ),
        ));
    }
    // The spec's Content-Range is inclusive; regclient sends an exclusive end.
    if let (Some(start), Some(end)) = (declared_start, content_range.as_deref().and_then(range_end))
        && body.is_complete()
        && body.size > 0
    {
        let inclusive = end.checked_sub(start).map(|d| d.saturating_add(1));
        if inclusive != Some(body.size) {
            let exclusive = end.checked_sub(start) == Some(body.size);
            w.local.annotations.push(Annotation::warning(
                AnnotationKind::Chunk,
                if exclusive {
                    format!(
                        "Content-Range {start}-{end} has an exclusive end: the spec's range is inclusive ({start}-{})",
                        end.saturating_sub(1)
                    )
                } else {
                    format!(
                        "Content-Range {start}-{end} announces {} bytes but {} were sent",
                        inclusive.unwrap_or(0),
                        body.size
                    )
                },
            ));
        }
    }
    session.chunks.push(Chunk {
        flow_id: w.local.flow.id,
        offset_start,
        offset_end: offset_start.saturating_add(body.size),
        bytes: body.size,
        sha256: body.sha256.clone(),
        content_range,
        server_range: w.local.response_header("range").map(str::to_owned),
        acknowledged: status.is_some(),
    });
    session.total_bytes = offset_start.saturating_add(body.size);
    w.local.annotations.push(Annotation::info(
        AnnotationKind::Chunk,
        format!(
            "sent bytes {offset_start}..{} ({})",
            offset_start.saturating_add(body.size),
            human_bytes(body.size)
        ),
    ));
}

/// `start-end` (optionally `bytes start-end/total`) → start.
fn range_start(value: &str) -> Option<u64> {
    let value = value.trim();
    let value = value
        .strip_prefix("bytes")
        .map(str::trim_start)
        .unwrap_or(value);
    let value = value.strip_prefix('=').unwrap_or(value).trim();
    value.split('-').next()?.trim().parse().ok()
}

/// `0-N` → N.
fn range_end(value: &str) -> Option<u64> {
    let value = value.trim();
    let value = value.strip_prefix("bytes=").unwrap_or(value);
    let (_, end) = value.split_once('-')?;
    end.split('/').next()?.trim().parse().ok()
}

/// The registry's `Range: 0-N` says it holds N+1 bytes, except that
/// distribution answers `0-0` both for 0 and for 1 byte.
fn check_server_range(session: &UploadSession, w: &mut Work, range: &str) {
    // olareg says `0--1` for an upload that holds nothing yet.
    if range.trim() == "0--1" {
        if session.total_bytes > 0 && w.local.ok() {
            w.local.annotations.push(Annotation::warning(
                AnnotationKind::Range,
                format!(
                    "the registry says it holds no bytes, but {} were sent in this upload",
                    session.total_bytes
                ),
            ));
        }
        return;
    }
    let Some(end) = range_end(range) else {
        w.local.annotations.push(Annotation::warning(
            AnnotationKind::Range,
            format!("Range {range:?} does not parse"),
        ));
        return;
    };
    let sent = session.total_bytes;
    let agrees = if end == 0 {
        sent <= 1
    } else {
        end.checked_add(1) == Some(sent)
    };
    if !agrees && w.local.ok() {
        w.local.annotations.push(Annotation::warning(
            AnnotationKind::Range,
            format!(
                "the registry says it holds {} bytes, but {sent} were sent in this upload",
                if end == 0 {
                    "0 or 1".to_owned()
                } else {
                    end.saturating_add(1).to_string()
                }
            ),
        ));
    }
}

/// `_state` names the upload it belongs to; say when it names another.
fn state_consistency(w: &mut Work) {
    let path_id = w.local.kind.upload_id().map(str::to_owned);
    let mut notes = Vec::new();
    for (place, state) in [
        ("request", w.local.request_state.as_ref()),
        ("Location", w.local.response_state.as_ref()),
    ] {
        let Some(state) = state else { continue };
        let expected = path_id.as_ref().or(w.local.response_upload_id.as_ref());
        if let Some(expected) = expected
            && &state.uuid != expected
        {
            notes.push(format!(
                "the {place} _state names upload {} but the URL names {expected}",
                state.uuid
            ));
        }
        if let Some(repository) = w.local.kind.repository()
            && state.name != repository
        {
            notes.push(format!(
                "the {place} _state names repository {} but the URL names {repository}",
                state.name
            ));
        }
    }
    for note in notes {
        w.local
            .annotations
            .push(Annotation::warning(AnnotationKind::State, note));
    }
}

/// Digest check once all flows are in, told on the flow that gave the digest.
fn finish(session: &mut UploadSession, works: &mut Works) {
    session.digest_check = digest_check(session, works);
    if session.outcome != SessionOutcome::Completed {
        return;
    }
    let annotation = match &session.digest_check {
        DigestCheck::Verified => Annotation::info(
            AnnotationKind::Digest,
            format!(
                "digest verified: the {} sent hash to {}",
                human_bytes(session.total_bytes),
                session.digest.as_deref().unwrap_or_default()
            ),
        ),
        DigestCheck::Mismatch { expected, computed } => Annotation::error(
            AnnotationKind::Digest,
            format!(
                "digest MISMATCH: the capture holds every byte sent, and they hash to {computed}, not {expected}{}",
                if session.outcome == SessionOutcome::Completed {
                    " (the registry accepted the upload nonetheless)"
                } else {
                    ""
                }
            ),
        ),
        DigestCheck::NotVerifiable { reason } => Annotation::info(
            AnnotationKind::Digest,
            format!("digest not verifiable: {reason}"),
        ),
        DigestCheck::Pending => return,
    };
    let carrier = session.flow_ids.iter().rev().copied().find(|id| {
        works.get(*id).is_some_and(|w| {
            matches!(
                w.local.kind,
                FlowKind::UploadFinish {
                    digest: Some(_),
                    ..
                } | FlowKind::UploadStart {
                    digest: Some(_),
                    ..
                } | FlowKind::UploadMount { .. }
            )
        })
    });
    if let Some(w) = carrier.and_then(|id| works.get_mut(id)) {
        w.local.annotations.push(annotation);
    }
}

fn digest_check(session: &UploadSession, works: &Works) -> DigestCheck {
    let not = |reason: String| DigestCheck::NotVerifiable { reason };
    match session.outcome {
        SessionOutcome::Completed => {}
        SessionOutcome::Open => return DigestCheck::Pending,
        SessionOutcome::Mounted => {
            return not("mounted from another repository: no bytes were sent".to_owned());
        }
        SessionOutcome::Failed | SessionOutcome::Cancelled => {
            return not("the upload did not complete".to_owned());
        }
    }
    let Some(digest) = &session.digest else {
        return not("the upload ended without a digest".to_owned());
    };
    if let Some(chunk) = session.chunks.iter().find(|c| !c.acknowledged) {
        return not(format!(
            "the request of flow #{} got no answer: whether the registry kept its bytes is unknown",
            chunk.flow_id
        ));
    }
    let bodies: Vec<(&crate::model::Chunk, &regtap_capture::Body)> = session
        .chunks
        .iter()
        .filter_map(|c| {
            works
                .get(c.flow_id)
                .map(|w| (c, &w.local.flow.request.body))
        })
        .collect();
    if bodies.iter().any(|(_, b)| b.is_cut_off()) {
        return not("a chunk was cut off".to_owned());
    }
    if bodies.iter().any(|(_, b)| b.ended == Ending::Unknown) {
        return not("the recording does not say whether every chunk arrived whole".to_owned());
    }
    // The chunks must tile the blob from byte 0, in order, without gaps or
    // overlaps, for their concatenation to be the blob.
    let mut non_empty: Vec<&(&crate::model::Chunk, &regtap_capture::Body)> =
        bodies.iter().filter(|(c, _)| c.bytes > 0).collect();
    non_empty.sort_by_key(|(c, _)| c.offset_start);
    let mut next = 0u64;
    for (chunk, _) in &non_empty {
        if chunk.offset_start != next {
            return not(format!(
                "the chunks do not tile the blob: flow #{} starts at byte {} where byte {next} was expected",
                chunk.flow_id, chunk.offset_start
            ));
        }
        next = chunk.offset_end;
    }
    let whole = || -> Option<Vec<u8>> {
        let mut all = Vec::new();
        for (_, body) in &non_empty {
            all.extend_from_slice(&body.full_bytes()?);
        }
        Some(all)
    };
    let sha256 = match non_empty.as_slice() {
        [] => Some(hex::encode(sha2::Sha256::digest(b""))),
        [(_, only)] => {
            return crate::downloads::verdict_of_bytes(digest, only.sha256.as_deref(), || {
                only.full_bytes()
            });
        }
        _ => whole().map(|all| hex::encode(sha2::Sha256::digest(&all))),
    };
    match (digest.split_once(':'), sha256) {
        (Some(("sha256", _)), None) => {
            let stored = non_empty.iter().all(|(_, b)| b.stored().is_some());
            not(if stored {
                format!(
                    "{} chunks; their bytes are in the body store, which the analysis does not read (only each chunk's hash is in the capture)",
                    non_empty.len()
                )
            } else {
                format!(
                    "{} chunks, and their bytes are not in the capture (only each chunk's hash is)",
                    non_empty.len()
                )
            })
        }
        (_, sha256) => crate::downloads::verdict_of_bytes(digest, sha256.as_deref(), whole),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(range_start("0-1023"), Some(0));
        assert_eq!(range_start("bytes 1024-2047/4096"), Some(1024));
        assert_eq!(range_start("garbage"), None);
        assert_eq!(range_end("0-0"), Some(0));
        assert_eq!(range_end("bytes=0-262434"), Some(262_434));
        assert_eq!(range_end("0-"), None);
    }
}
