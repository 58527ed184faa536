//! The links between flows: which flow issued the token a request carries,
//! which GET follows a redirect, which blobs a manifest's descriptors are;
//! then the assembly of the [`Analysis`].

use std::collections::{BTreeMap, BTreeSet};

use crate::hash::{HashMap, HashSet};
use crate::http::{TokenHash, authority, short_digest};
use crate::model::AnnotationKind;
use crate::model::{
    Analysis, Annotation, BlobStatus, Descriptor, DescriptorRole, Diagnostic, FlowAnalysis,
    FlowKind, SessionOutcome, Severity, UploadSession,
};
use crate::model::{Client, TokenGrant, UpstreamProxyUse};
use crate::{Works, client, downloads, grouping, operations, pagination, sessions, summary};

const NANOS: i64 = 1_000_000_000;

pub(crate) fn link(works: &mut Works, threads: usize) -> Analysis {
    clients(works);
    token_fallbacks(works);
    bearer_links(works);
    redirects(works);
    let sessions = sessions::build(works);
    downloads::check(works);
    crate::parallel::for_each_mut(&mut works.items, threads, |w| {
        w.summary = summary::summarize(w, &sessions);
    });
    let groups = grouping::group(works);
    downloads::ranges(works);
    pagination::annotate(works);
    manifest_links(works, &sessions);
    let operations = operations::describe(works, &sessions, groups, threads);
    assemble(works, sessions, operations)
}

/// Each flow's client, and its actor: one per (program, version, client
/// address without the port).
fn clients(works: &mut Works) {
    let own: Vec<Option<&Client>> = works
        .items
        .iter()
        .map(|w| w.local.own_client.as_deref())
        .collect();
    let connections: Vec<Option<&str>> = works.items.iter().map(|w| w.connection()).collect();
    let resolved = client::resolve(&own, &connections);
    let mut actors: HashMap<(Option<&Client>, Option<&str>), usize> = HashMap::default();
    let assigned: Vec<(usize, Option<Client>)> = resolved
        .into_iter()
        .zip(&connections)
        .map(|(client, connection)| {
            let next = actors.len();
            let actor = *actors
                .entry((client, connection.map(client_ip)))
                .or_insert(next);
            (actor, client.cloned())
        })
        .collect();
    for (w, (actor, client)) in works.items.iter_mut().zip(assigned) {
        w.actor = actor;
        w.client = client;
    }
}

/// An OAuth2 `POST` to a token endpoint refused with 400, 401, 404 or 405,
/// followed by the same client's `GET` to the same endpoint: the client's
/// fallback (containerd, go-containerregistry), not a failed login.
fn token_fallbacks(works: &mut Works) {
    let mut notes: Vec<(usize, String)> = Vec::new();
    for (i, w) in works.items.iter().enumerate() {
        let FlowKind::Token { server, grant, .. } = &w.local.kind else {
            continue;
        };
        let refused = w
            .local
            .status()
            .filter(|s| matches!(s, 400 | 401 | 404 | 405));
        let (Some(status), false) = (refused, *grant == TokenGrant::Get) else {
            continue;
        };
        let path = w.local.url.as_ref().map(url::Url::path);
        let fallback = works.items.iter().skip(i + 1).take(64).find(|f| {
            f.actor == w.actor
                && matches!(&f.local.kind, FlowKind::Token { server: s, grant: TokenGrant::Get, .. } if s == server)
                && f.local.url.as_ref().map(url::Url::path) == path
        });
        if let Some(f) = fallback {
            let worked = if f.local.ok() {
                "which worked"
            } else {
                "which failed too"
            };
            notes.push((
                i,
                format!(
                    "the token server refused the OAuth2 POST ({status}); the client fell back to GET (flow #{}), {worked}",
                    f.local.flow.id
                ),
            ));
        }
    }
    for (i, text) in notes {
        if let Some(w) = works.items.get_mut(i) {
            w.local
                .annotations
                .push(Annotation::info(AnnotationKind::Token, text));
        }
    }
}

/// `127.0.0.1:53412` → `127.0.0.1`; `[::1]:53412` → `[::1]`.
fn client_ip(address: &str) -> &str {
    match address.rsplit_once(':') {
        Some((ip, port)) if port.bytes().all(|b| b.is_ascii_digit()) => ip,
        _ => address,
    }
}

/// Every request carrying a Bearer token is linked to the flow that issued
/// it (matched on the whole token), and checked against `exp`/`nbf` (or
/// the issuer's `expires_in` for opaque tokens).
fn bearer_links(works: &mut Works) {
    let mut issuers: HashMap<TokenHash, Vec<(u64, i64, Option<i64>)>> = HashMap::default();
    for w in &works.items {
        let Some(hash) = &w.local.issued_hash else {
            continue;
        };
        let issued_at = w
            .local
            .flow
            .timing
            .response_head
            .unwrap_or_else(|| w.local.start());
        let expires = w
            .local
            .token
            .as_ref()
            .and_then(|t| t.expires_in)
            .and_then(|s| i64::try_from(s).ok())
            .map(|s| issued_at.saturating_add(s.saturating_mul(NANOS)));
        issuers
            .entry(*hash)
            .or_default()
            .push((w.local.flow.id, issued_at, expires));
    }
    for list in issuers.values_mut() {
        list.sort_by_key(|(id, at, _)| (*at, *id));
    }
    for w in works.items.iter_mut() {
        let Some(hash) = &w.local.bearer_hash else {
            continue;
        };
        let start = w.local.start();
        // The latest issue of this token before the request, else the first.
        let issuer = issuers.get(hash).and_then(|list| {
            let before = list.partition_point(|(_, at, _)| *at <= start);
            before
                .checked_sub(1)
                .and_then(|k| list.get(k))
                .or_else(|| list.first())
                .copied()
        });
        let expiry = w
            .local
            .bearer_exp
            .map(|s| s.saturating_mul(NANOS))
            .or_else(|| issuer.and_then(|(_, _, e)| e));
        let not_before = w.local.bearer_nbf.map(|s| s.saturating_mul(NANOS));
        let expired = expiry.is_some_and(|e| start > e);
        let not_yet_valid = not_before.is_some_and(|n| start < n);
        let refused = w
            .local
            .status()
            .is_some_and(|s| matches!(s, 400 | 401 | 403));
        let Some(bearer) = w.local.bearer.as_mut() else {
            continue;
        };
        bearer.issued_by = issuer.map(|(id, _, _)| id);
        bearer.expired = expired;
        bearer.not_yet_valid = not_yet_valid;
        let fingerprint = &bearer.fingerprint;
        w.local.annotations.push(match issuer {
            Some((id, _, _)) => Annotation::info(
                AnnotationKind::Bearer,
                format!("token {fingerprint} was issued by flow #{id}"),
            ),
            None => Annotation::info(
                AnnotationKind::Bearer,
                format!("token {fingerprint} was not issued in this capture"),
            ),
        });
        if expired {
            w.local.annotations.push(Annotation::error(
                AnnotationKind::Bearer,
                format!(
                    "token {fingerprint} used {} after it expired",
                    seconds(start.saturating_sub(expiry.unwrap_or(start)))
                ),
            ));
        }
        if expired && refused {
            w.local.annotations.push(Annotation::error(
                AnnotationKind::Bearer,
                format!(
                    "refused because token {fingerprint} had expired: registries answer that with 401 invalid_token, 403, or a bare 400 (ECR Public)"
                ),
            ));
        }
        if not_yet_valid {
            w.local.annotations.push(Annotation::warning(
                AnnotationKind::Bearer,
                format!(
                    "token {fingerprint} used {} before its nbf (clock skew?)",
                    seconds(not_before.unwrap_or(start).saturating_sub(start))
                ),
            ));
        }
    }
}

fn seconds(ns: i64) -> String {
    format!("{:.1} s", ns as f64 / NANOS as f64)
}

/// How many flows after a redirect its follow-up may come.
const REDIRECT_LOOK_AHEAD: usize = 256;

/// A redirect (301, 302, 303, 307, 308) of a registry request is followed by
/// the same client asking the `Location`: a storage host for a blob (the
/// follow-up becomes a blob GET of the same blob), or another registry
/// (registry.k8s.io sends manifests to a regional Artifact Registry, which
/// may challenge for its own token; the retry with the token follows the
/// redirect too). Each follow-up is linked to the flow that redirected it.
fn redirects(works: &mut Works) {
    let mut claimed: HashSet<u64> = HashSet::default();
    for i in 0..works.items.len() {
        let Some(w) = works.items.get(i) else { break };
        let redirected = w
            .local
            .status()
            .is_some_and(|s| matches!(s, 301 | 302 | 303 | 307 | 308));
        let registry_request = w.local.kind.registry().is_some();
        let (Some(target), true, true) = (w.local.location.clone(), redirected, registry_request)
        else {
            continue;
        };
        let from = w.local.flow.id;
        let actor = w.actor;
        let method = w.local.flow.method().to_ascii_uppercase();
        let source_kind = w.local.kind.clone();
        let host = authority(&target);
        // The same client asking the target: once, or a 401 and the retry
        // with the new host's token.
        let mut follow_ups: Vec<usize> = Vec::new();
        for (offset, f) in works
            .items
            .iter()
            .skip(i + 1)
            .take(REDIRECT_LOOK_AHEAD)
            .enumerate()
        {
            let same_target = f.local.url.as_ref() == Some(&target);
            let same_method = f.local.flow.method().eq_ignore_ascii_case(&method)
                || (method != "HEAD" && f.local.flow.method().eq_ignore_ascii_case("GET"));
            if same_target
                && same_method
                && f.actor == actor
                && f.redirected_from.is_none()
                && !claimed.contains(&f.local.flow.id)
            {
                follow_ups.push(i + 1 + offset);
                if f.local.status() != Some(401) {
                    break;
                }
            }
        }
        if follow_ups.is_empty() {
            if let Some(w) = works.items.get_mut(i) {
                w.local.annotations.push(Annotation::info(
                    AnnotationKind::Redirect,
                    format!("redirected to {host}; the follow-up request is not in the capture"),
                ));
            }
            continue;
        }
        let mut ids = Vec::new();
        for &next in &follow_ups {
            let Some(f) = works.items.get_mut(next) else {
                continue;
            };
            let follow_id = f.local.flow.id;
            claimed.insert(follow_id);
            ids.push(format!("#{follow_id}"));
            f.redirected_from = Some(from);
            // A storage URL names nothing a registry would: it fetches the blob.
            if let (
                FlowKind::Unknown,
                FlowKind::BlobGet {
                    registry,
                    repository,
                    digest,
                    ..
                },
            ) = (&f.local.kind, &source_kind)
            {
                f.local.kind = FlowKind::BlobGet {
                    registry: registry.clone(),
                    repository: repository.clone(),
                    digest: digest.clone(),
                    range: f.local.flow.request.headers.get("range").map(str::to_owned),
                    redirect_to: None,
                    redirected_from: Some(from),
                };
            }
            let what = match &source_kind {
                FlowKind::BlobGet { digest, .. } | FlowKind::BlobHead { digest, .. } => {
                    format!("blob {}", short_digest(digest))
                }
                FlowKind::ManifestGet { reference, .. }
                | FlowKind::ManifestHead { reference, .. } => {
                    format!("manifest {}", reference.as_str())
                }
                _ => "the same resource".to_owned(),
            };
            f.local.annotations.push(Annotation::info(
                AnnotationKind::Redirect,
                format!("asks {what} of {host}, as redirected by flow #{from}"),
            ));
        }
        if let Some(w) = works.items.get_mut(i) {
            w.local.annotations.push(Annotation::info(
                AnnotationKind::Redirect,
                format!("redirected to {host}, followed by flow {}", ids.join(", ")),
            ));
        }
    }
}

/// What the capture says about one blob (or child manifest) of a repository.
#[derive(Default)]
struct BlobFacts {
    status: Option<BlobStatus>,
    flow_ids: BTreeSet<u64>,
}

impl BlobFacts {
    fn see(&mut self, status: BlobStatus, id: u64) {
        self.status = Some(self.status.map_or(status, |s| s.max(status)));
        self.flow_ids.insert(id);
    }
}

/// Links the config, layers and child manifests of each manifest to the
/// flows of the same repository in the same operation (or, when the
/// operation has none, anywhere in the capture).
fn manifest_links(works: &mut Works, sessions: &[UploadSession]) {
    let index = blob_facts(works, sessions);
    let targets: Vec<usize> = works
        .items
        .iter()
        .enumerate()
        .filter(|(_, w)| w.local.manifest.is_some())
        .map(|(i, _)| i)
        .collect();
    for i in targets {
        let Some(w) = works.items.get(i) else {
            continue;
        };
        let (Some(registry), Some(repository)) =
            (w.local.kind.registry(), w.local.kind.repository())
        else {
            continue;
        };
        let operation = w.operation;
        let is_put = matches!(w.local.kind, FlowKind::ManifestPut { .. });
        let empty = HashMap::default();
        let scopes = index
            .get(registry)
            .and_then(|repositories| repositories.get(repository));
        let in_op = scopes
            .and_then(|scopes| scopes.get(&operation))
            .filter(|_| operation.is_some())
            .unwrap_or(&empty);
        let anywhere = scopes
            .and_then(|scopes| scopes.get(&None))
            .unwrap_or(&empty);
        let Some(w) = works.items.get_mut(i) else {
            continue;
        };
        let Some(manifest) = w.local.manifest.as_mut() else {
            continue;
        };
        let mut counts: HashMap<BlobStatus, usize> = HashMap::default();
        let descriptors = manifest
            .config
            .iter_mut()
            .chain(manifest.layers.iter_mut())
            .chain(manifest.manifests.iter_mut());
        let mut missing = Vec::new();
        let mut unfetched_attestations = 0usize;
        for d in descriptors {
            apply(d, in_op.get(&d.digest).or_else(|| anywhere.get(&d.digest)));
            // Clients fetch attestations only when asked: not a gap.
            if d.role == Some(DescriptorRole::AttestationManifest)
                && d.blob_status == BlobStatus::Unknown
            {
                unfetched_attestations += 1;
                continue;
            }
            *counts.entry(d.blob_status).or_default() += 1;
            if d.blob_status == BlobStatus::Missing {
                missing.push(short_digest(&d.digest));
            }
        }
        let order = [
            (BlobStatus::Uploaded, "uploaded"),
            (BlobStatus::Mounted, "mounted"),
            (BlobStatus::Present, "already present"),
            (BlobStatus::Downloaded, "downloaded"),
            (BlobStatus::Missing, "missing"),
            (BlobStatus::Unknown, "not seen in this capture"),
        ];
        let mut parts: Vec<String> = order
            .iter()
            .filter_map(|(s, name)| counts.get(s).map(|n| format!("{n} {name}")))
            .collect();
        if unfetched_attestations > 0 {
            parts.push(format!(
                "{unfetched_attestations} attestation manifest(s) not fetched"
            ));
        }
        if !parts.is_empty() {
            w.local.annotations.push(Annotation::info(
                AnnotationKind::Blobs,
                format!("referenced blobs: {}", parts.join(", ")),
            ));
        }
        if is_put && !missing.is_empty() {
            w.local.annotations.push(Annotation::warning(
                AnnotationKind::Blobs,
                format!(
                    "the manifest refers to blobs the registry said it lacks: {}",
                    missing.join(", ")
                ),
            ));
        }
    }
}

fn apply(d: &mut Descriptor, facts: Option<&BlobFacts>) {
    if let Some(facts) = facts {
        d.blob_status = facts.status.unwrap_or(BlobStatus::Unknown);
        d.blob_flow_ids = facts.flow_ids.iter().copied().collect();
    }
}

/// Blob facts by registry, repository and operation, and by registry,
/// repository and `None` for the whole capture, in one pass. Nested, so
/// that finding a digest's facts copies no name (only a new one is).
type FactsIndex = HashMap<String, HashMap<String, HashMap<Option<usize>, DigestFacts>>>;
type DigestFacts = HashMap<String, BlobFacts>;

/// The entry of `key` in `map` (always there), its key copied only when new.
fn entry_of<'m, V: Default>(map: &'m mut HashMap<String, V>, key: &str) -> Option<&'m mut V> {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key)
}

fn blob_facts(works: &Works, sessions: &[UploadSession]) -> FactsIndex {
    let mut index: FactsIndex = HashMap::default();
    let mut record = |registry: &str,
                      repository: &str,
                      operation: Option<usize>,
                      digest: &str,
                      status: Option<BlobStatus>,
                      id: u64| {
        let scopes = if operation.is_some() { 2 } else { 1 };
        let Some(by_scope) = entry_of(&mut index, registry).and_then(|r| entry_of(r, repository))
        else {
            return;
        };
        for scope in [operation, None].into_iter().skip(2 - scopes) {
            let Some(facts) = entry_of(by_scope.entry(scope).or_default(), digest) else {
                continue;
            };
            match status {
                Some(status) => facts.see(status, id),
                None => {
                    facts.flow_ids.insert(id);
                }
            }
        }
    };
    for w in &works.items {
        let (Some(registry), Some(repository)) =
            (w.local.kind.registry(), w.local.kind.repository())
        else {
            continue;
        };
        let id = w.local.flow.id;
        let status = w.local.status();
        let mut note = |digest: &str, blob: Option<BlobStatus>| {
            record(registry, repository, w.operation, digest, blob, id);
        };
        match &w.local.kind {
            FlowKind::BlobHead { digest, .. } => match status {
                Some(200) => note(digest, Some(BlobStatus::Present)),
                Some(404) => note(digest, Some(BlobStatus::Missing)),
                _ => {}
            },
            FlowKind::BlobGet { digest, .. } if matches!(status, Some(200 | 206)) => {
                note(digest, Some(BlobStatus::Downloaded));
            }
            FlowKind::BlobGet { digest, .. } => note(digest, None),
            FlowKind::ManifestPut { reference, .. }
                if reference.is_digest() && status == Some(201) =>
            {
                note(reference.as_str(), Some(BlobStatus::Uploaded));
            }
            FlowKind::ManifestHead { reference, .. }
                if reference.is_digest() && status == Some(200) =>
            {
                note(reference.as_str(), Some(BlobStatus::Present));
            }
            FlowKind::ManifestGet { reference, .. }
                if reference.is_digest() && status == Some(200) =>
            {
                note(reference.as_str(), Some(BlobStatus::Downloaded));
            }
            _ => {}
        }
    }
    for session in sessions {
        let Some(digest) = &session.digest else {
            continue;
        };
        let status = match session.outcome {
            SessionOutcome::Completed => BlobStatus::Uploaded,
            SessionOutcome::Mounted => BlobStatus::Mounted,
            _ => continue,
        };
        let operation = session
            .flow_ids
            .first()
            .and_then(|id| works.get(*id))
            .and_then(|w| w.operation);
        for id in &session.flow_ids {
            record(
                &session.registry,
                &session.repository,
                operation,
                digest,
                Some(status),
                *id,
            );
        }
    }
    index
}

fn assemble(
    works: &mut Works,
    sessions: Vec<UploadSession>,
    operations: Vec<crate::model::Operation>,
) -> Analysis {
    let mut through: BTreeMap<&str, usize> = BTreeMap::new();
    for proxy in works
        .items
        .iter()
        .filter_map(|w| w.local.flow.upstream_proxy.as_deref())
    {
        *through.entry(proxy).or_default() += 1;
    }
    let upstream_proxies: Vec<UpstreamProxyUse> = through
        .into_iter()
        .map(|(url, flows)| UpstreamProxyUse {
            url: url.to_owned(),
            flows,
        })
        .collect();
    let mut diagnostics = Vec::new();
    let mut flows = Vec::with_capacity(works.items.len());
    // Ids are counted only when some repeat (fewer ids than flows).
    let ids_repeat = works.position.len() < works.items.len();
    let mut seen: HashMap<u64, usize> = HashMap::default();
    for w in works.items.drain(..) {
        let id = w.local.flow.id;
        if ids_repeat {
            *seen.entry(id).or_default() += 1;
        }
        for a in &w.local.annotations {
            if a.severity >= Severity::Warning {
                diagnostics.push(Diagnostic {
                    flow_id: Some(id),
                    severity: a.severity,
                    message: a.text.clone(),
                });
            }
        }
        let local = w.local;
        let upload_state = local.request_state.or(local.response_state);
        flows.push(FlowAnalysis {
            flow_id: id,
            kind: local.kind,
            summary: w.summary,
            annotations: local.annotations,
            token: local.token,
            bearer: local.bearer.map(|b| *b),
            basic_user: local.basic_user,
            upload_state,
            session: w.session,
            manifest: local.manifest,
            registry_errors: local.registry_errors,
            challenges: local.challenges,
            rate_limit: local.rate_limit,
            operation: w.operation,
            client: w.client,
            download: local.download,
        });
    }
    let mut repeated: Vec<(u64, usize)> = seen.into_iter().filter(|(_, n)| *n > 1).collect();
    repeated.sort_unstable();
    for (id, n) in repeated {
        diagnostics.push(Diagnostic {
            flow_id: Some(id),
            severity: Severity::Warning,
            message: format!("{n} flows share id {id}; links by id use the first"),
        });
    }
    Analysis {
        flows,
        sessions,
        operations,
        diagnostics,
        upstream_proxies,
        // The flows are in the order of the works: the same first
        // position of each id.
        positions: std::mem::take(&mut works.position),
    }
}
