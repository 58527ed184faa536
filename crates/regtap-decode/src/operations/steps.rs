//! An operation's numbered steps: its flows merged into upload sessions and
//! runs of alike requests, each with one line and its key annotations.

use crate::hash::HashMap;
use crate::http::{human_bytes, short_digest};
use crate::model::{
    Annotation, AnnotationKind, DigestCheck, FlowKind, SessionOutcome, Severity, Step,
    UploadSession, UploadStart,
};

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

pub(super) fn steps(members: &[&crate::Work], sessions: &[UploadSession]) -> Vec<Step> {
    let mut units: Vec<Unit> = Vec::new();
    let mut session_unit: HashMap<usize, usize> = HashMap::default();
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
