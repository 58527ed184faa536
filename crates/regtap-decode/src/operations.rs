//! Operations: the flows grouped into what the user did (login, push,
//! pull, other), from the flows alone.
//!
//! Every docker command starts with an unauthenticated `GET /v2/`, so each
//! such ping opens a *window* on its registry; the repository flows that
//! follow are grouped by repository inside the window. A ping that carries
//! credentials right after a 401 belongs to the same window (login). Token
//! requests go to an operation of the request that used their token, else
//! of the ping whose challenge named their realm. Flows of an operation
//! still running when a new window opens (parallel commands) stay with it.

use std::collections::HashMap;

use crate::Works;
use crate::http::{authority, human_bytes, short_digest};
use crate::model::{
    Annotation, DigestCheck, FlowKind, Operation, OperationKind, OperationStatus, Reference,
    SessionOutcome, Severity, Step, UploadSession, UploadStart,
};
use crate::summary::short_ref;

/// Flows that belong together, before they are described.
#[derive(Debug)]
pub(crate) struct Group {
    registry: Option<String>,
    repository: Option<String>,
    /// The window this group was opened in (`None` for loose flows).
    window: Option<usize>,
    /// Host of loose flows (unknown requests, stray tokens).
    host: Option<String>,
    members: Vec<usize>,
    last_end: i64,
    /// A push whose tag manifest PUT was answered: nothing more comes.
    finished: bool,
}

struct Window {
    registry: String,
    start: i64,
    base: usize,
    has_repository_flows: bool,
}

impl Group {
    fn new(registry: Option<String>, repository: Option<String>, window: Option<usize>) -> Self {
        Group {
            registry,
            repository,
            window,
            host: None,
            members: Vec::new(),
            last_end: i64::MIN,
            finished: false,
        }
    }
}

fn add(groups: &mut [Group], g: usize, item: usize, end: i64) {
    if let Some(group) = groups.get_mut(g) {
        group.members.push(item);
        group.last_end = group.last_end.max(end);
    }
}

/// Assigns every flow to a group, and each flow its operation index.
pub(crate) fn group(works: &mut Works) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut windows: Vec<Window> = Vec::new();
    let mut open: HashMap<String, usize> = HashMap::new();
    let mut by_repository: HashMap<(String, String), Vec<usize>> = HashMap::new();
    let mut deferred: Vec<usize> = Vec::new();
    let mut group_of: Vec<Option<usize>> = vec![None; works.items.len()];

    for (i, w) in works.items.iter().enumerate() {
        let kind = &w.local.kind;
        let end = w.local.end();
        let redirected = matches!(
            kind,
            FlowKind::BlobGet {
                redirected_from: Some(_),
                ..
            }
        );
        let Some(registry) = kind.registry().filter(|_| !redirected) else {
            deferred.push(i);
            continue;
        };
        let registry = registry.to_owned();
        if let FlowKind::ApiCheck { .. } = kind {
            let with_credentials = w.local.flow.request.headers.get("authorization").is_some();
            let joins = open
                .get(&registry)
                .and_then(|&x| windows.get(x))
                .is_some_and(|x| with_credentials && !x.has_repository_flows);
            if !joins {
                open_window(
                    &mut windows,
                    &mut groups,
                    &mut open,
                    &registry,
                    w.local.start(),
                );
            }
            if let Some(base) = open
                .get(&registry)
                .and_then(|&x| windows.get(x))
                .map(|x| x.base)
            {
                add(&mut groups, base, i, end);
                if let Some(slot) = group_of.get_mut(i) {
                    *slot = Some(base);
                }
            }
            continue;
        }
        if !open.contains_key(&registry) {
            open_window(
                &mut windows,
                &mut groups,
                &mut open,
                &registry,
                w.local.start(),
            );
        }
        let Some(&x) = open.get(&registry) else {
            continue;
        };
        let repository = kind.repository().map(str::to_owned);
        // When the token this request carries was issued, if the capture says.
        let token_issued_at = w
            .local
            .bearer
            .as_ref()
            .and_then(|b| b.issued_by)
            .and_then(|id| works.get(id))
            .map(|t| t.local.start());
        let target = match &repository {
            None => windows.get(x).map(|win| win.base),
            Some(repo) => Some(repository_group(
                &windows,
                &mut groups,
                &mut by_repository,
                Placement {
                    window: x,
                    registry: &registry,
                    repository: repo,
                    token_issued_at,
                },
            )),
        };
        let ends_push = matches!(
            kind,
            FlowKind::ManifestPut {
                reference: Reference::Tag(_),
                ..
            }
        ) && w.local.flow.response.is_some();
        if let Some(window) = windows.get_mut(x)
            && repository.is_some()
        {
            window.has_repository_flows = true;
        }
        if let Some(g) = target {
            add(&mut groups, g, i, end);
            if let Some(slot) = group_of.get_mut(i) {
                *slot = Some(g);
            }
            if let Some(group) = groups.get_mut(g) {
                group.finished |= ends_push;
            }
        }
    }

    // The first request that used each issued token, and the flows whose
    // challenges named each realm.
    let mut first_user: HashMap<u64, usize> = HashMap::new();
    let mut challenged: HashMap<String, Vec<usize>> = HashMap::new();
    for (p, w) in works.items.iter().enumerate() {
        if let Some(issuer) = w.local.bearer.as_ref().and_then(|b| b.issued_by) {
            first_user.entry(issuer).or_insert(p);
        }
        for realm in w.local.challenges.iter().filter_map(|c| c.realm.as_deref()) {
            let list = challenged.entry(realm_key(realm)).or_default();
            if list.last() != Some(&p) {
                list.push(p);
            }
        }
    }
    for i in deferred {
        let Some(w) = works.items.get(i) else {
            continue;
        };
        let end = w.local.end();
        let target = match &w.local.kind {
            FlowKind::BlobGet {
                redirected_from: Some(from),
                ..
            } => works
                .index_of(*from)
                .and_then(|p| group_of.get(p).copied().flatten()),
            FlowKind::Token { scopes, .. } => token_group(
                works,
                &group_of,
                &groups,
                &first_user,
                &challenged,
                i,
                scopes,
            ),
            _ => unknown_group(&windows, w),
        };
        let g = match target {
            Some(g) => g,
            None => loose_group(&mut groups, w),
        };
        add(&mut groups, g, i, end);
        if let Some(slot) = group_of.get_mut(i) {
            *slot = Some(g);
        }
    }

    // Groups in time order become operations; their members too.
    for group in &mut groups {
        group.members.sort_by_key(|&i| {
            works
                .items
                .get(i)
                .map(|w| (w.local.start(), w.local.flow.id))
        });
    }
    let mut order: Vec<usize> = (0..groups.len())
        .filter(|&g| groups.get(g).is_some_and(|x| !x.members.is_empty()))
        .collect();
    order.sort_by_key(|&g| {
        groups
            .get(g)
            .and_then(|x| x.members.first())
            .and_then(|&i| works.items.get(i))
            .map(|w| (w.local.start(), w.local.flow.id))
    });
    let mut sorted = Vec::with_capacity(order.len());
    let mut taken: Vec<Option<Group>> = groups.into_iter().map(Some).collect();
    for (position, g) in order.into_iter().enumerate() {
        if let Some(group) = taken.get_mut(g).and_then(Option::take) {
            for &i in &group.members {
                if let Some(w) = works.items.get_mut(i) {
                    w.operation = Some(position);
                }
            }
            sorted.push(group);
        }
    }
    sorted
}

fn open_window(
    windows: &mut Vec<Window>,
    groups: &mut Vec<Group>,
    open: &mut HashMap<String, usize>,
    registry: &str,
    start: i64,
) {
    groups.push(Group::new(
        Some(registry.to_owned()),
        None,
        Some(windows.len()),
    ));
    windows.push(Window {
        registry: registry.to_owned(),
        start,
        base: groups.len() - 1,
        has_repository_flows: false,
    });
    open.insert(registry.to_owned(), windows.len() - 1);
}

/// Where a repository flow arrived: the open window of its registry.
struct Placement<'a> {
    window: usize,
    registry: &'a str,
    repository: &'a str,
    token_issued_at: Option<i64>,
}

/// The group of a repository flow.
fn repository_group(
    windows: &[Window],
    groups: &mut Vec<Group>,
    by_repository: &mut HashMap<(String, String), Vec<usize>>,
    at: Placement<'_>,
) -> usize {
    let Placement {
        window: x,
        registry,
        repository,
        token_issued_at,
    } = at;
    let key = (registry.to_owned(), repository.to_owned());
    let Some(window) = windows.get(x) else {
        groups.push(Group::new(
            Some(registry.to_owned()),
            Some(repository.to_owned()),
            None,
        ));
        return groups.len() - 1;
    };
    let known = by_repository
        .get(&key)
        .map(Vec::as_slice)
        .unwrap_or_default();
    // 1. This window already has the repository.
    if let Some(&g) = known
        .iter()
        .rev()
        .find(|&&g| groups.get(g).is_some_and(|group| group.window == Some(x)))
    {
        return g;
    }
    // 2. An operation on it from an earlier window is still running: the
    // request carries a token from before this window, or the earlier
    // operation was busy when the window opened, or this window is
    // another repository's.
    let window_start = window.start;
    let old_token = token_issued_at.is_some_and(|t| t < window_start);
    let window_taken = groups
        .get(window.base)
        .is_some_and(|b| b.repository.as_deref().is_some_and(|r| r != repository));
    if let Some(&g) = known.iter().rev().find(|&&g| {
        groups.get(g).is_some_and(|group| {
            group.window != Some(x)
                && !group.finished
                && (old_token || window_taken || group.last_end >= window_start)
        })
    }) {
        return g;
    }
    // 3. The window's first repository takes the ping and tokens along.
    let base = window.base;
    let g = match groups.get_mut(base) {
        Some(group) if group.repository.is_none() => {
            group.repository = Some(repository.to_owned());
            base
        }
        // 4. Another repository in the same window.
        _ => {
            groups.push(Group::new(
                Some(registry.to_owned()),
                Some(repository.to_owned()),
                Some(x),
            ));
            groups.len() - 1
        }
    };
    by_repository.entry(key).or_default().push(g);
    g
}

/// A token flow joins the first request that used its token, else the ping
/// whose challenge named its realm, else a repository it asked a scope for.
fn token_group(
    works: &Works,
    group_of: &[Option<usize>],
    groups: &[Group],
    first_user: &HashMap<u64, usize>,
    challenged: &HashMap<String, Vec<usize>>,
    i: usize,
    scopes: &[String],
) -> Option<usize> {
    let w = works.items.get(i)?;
    let id = w.local.flow.id;
    let start = w.local.start();
    let used_by = first_user.get(&id).copied();
    if let Some(g) = used_by.and_then(|p| group_of.get(p).copied().flatten()) {
        return Some(g);
    }
    let realm = w.local.url.as_ref().map(|u| realm_key(u.as_str()));
    let pinged = realm
        .and_then(|r| challenged.get(&r))
        .and_then(|positions| {
            let before = positions.partition_point(|&p| p < i);
            before.checked_sub(1).and_then(|k| positions.get(k))
        })
        .and_then(|&p| group_of.get(p).copied().flatten());
    if pinged.is_some() {
        return pinged;
    }
    let repositories: Vec<&str> = scopes
        .iter()
        .filter_map(|s| {
            s.split_once(':')
                .and_then(|(_, rest)| rest.rsplit_once(':'))
                .map(|(n, _)| n)
        })
        .collect();
    groups
        .iter()
        .enumerate()
        .rev()
        .find(|(_, g)| {
            g.repository
                .as_deref()
                .is_some_and(|r| repositories.contains(&r))
                && g.members
                    .first()
                    .and_then(|&m| works.items.get(m))
                    .is_some_and(|f| f.local.start() <= start)
        })
        .map(|(g, _)| g)
}

/// A realm or token URL without query and fragment, normalised.
fn realm_key(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.into()
        }
        Err(_) => url.to_owned(),
    }
}

/// An unknown request to a registry host joins that registry's latest window.
fn unknown_group(windows: &[Window], w: &crate::Work) -> Option<usize> {
    let host = w.local.url.as_ref().map(authority)?;
    windows
        .iter()
        .rev()
        .find(|x| x.registry == host && x.start <= w.local.start())
        .map(|x| x.base)
}

/// Loose flows of one host in a row form one "other" operation.
fn loose_group(groups: &mut Vec<Group>, w: &crate::Work) -> usize {
    let host = w
        .local
        .url
        .as_ref()
        .map(authority)
        .unwrap_or_else(|| w.local.flow.url().to_owned());
    if let Some(last) = groups.last()
        && last.window.is_none()
        && last.host.as_deref() == Some(host.as_str())
    {
        return groups.len() - 1;
    }
    let mut group = Group::new(None, None, None);
    group.host = Some(host);
    groups.push(group);
    groups.len() - 1
}

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
    }
}

fn operation_kind(group: &Group, members: &[&crate::Work]) -> OperationKind {
    let has = |f: fn(&FlowKind) -> bool| members.iter().any(|w| f(&w.local.kind));
    match (&group.registry, &group.repository, group.window) {
        (Some(registry), Some(repository), _) => {
            let pushes = has(|k| {
                matches!(
                    k,
                    FlowKind::UploadStart { .. }
                        | FlowKind::UploadMount { .. }
                        | FlowKind::UploadChunk { .. }
                        | FlowKind::UploadStatus { .. }
                        | FlowKind::UploadFinish { .. }
                        | FlowKind::UploadCancel { .. }
                        | FlowKind::ManifestPut { .. }
                        | FlowKind::BlobHead { .. }
                )
            });
            let pulls = has(|k| {
                matches!(
                    k,
                    FlowKind::ManifestHead { .. }
                        | FlowKind::ManifestGet { .. }
                        | FlowKind::BlobGet { .. }
                )
            });
            if pushes {
                OperationKind::Push {
                    registry: registry.clone(),
                    repository: repository.clone(),
                    reference: pushed_reference(members),
                }
            } else if pulls {
                OperationKind::Pull {
                    registry: registry.clone(),
                    repository: repository.clone(),
                    reference: pulled_reference(members),
                }
            } else {
                OperationKind::Other
            }
        }
        (Some(registry), None, Some(_)) => {
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
            if authenticates && only_auth {
                OperationKind::Login {
                    registry: registry.clone(),
                }
            } else {
                OperationKind::Other
            }
        }
        _ => OperationKind::Other,
    }
}

/// The tag the last manifest went to; else the digest of the last manifest.
fn pushed_reference(members: &[&crate::Work]) -> Option<Reference> {
    let puts: Vec<&Reference> = members
        .iter()
        .filter_map(|w| match &w.local.kind {
            FlowKind::ManifestPut { reference, .. } => Some(reference),
            _ => None,
        })
        .collect();
    puts.iter()
        .rev()
        .find(|r| !r.is_digest())
        .or_else(|| puts.last())
        .map(|r| (*r).clone())
}

/// The first manifest asked for by tag; else by digest.
fn pulled_reference(members: &[&crate::Work]) -> Option<Reference> {
    let asked: Vec<&Reference> = members
        .iter()
        .filter_map(|w| match &w.local.kind {
            FlowKind::ManifestHead { reference, .. } | FlowKind::ManifestGet { reference, .. } => {
                Some(reference)
            }
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
    match kind {
        OperationKind::Login { registry } => format!("login {registry}"),
        OperationKind::Push {
            repository,
            reference,
            ..
        } => match reference {
            Some(r) => format!("push {repository}{}", short_ref(r)),
            None => format!("push {repository}"),
        },
        OperationKind::Pull {
            repository,
            reference,
            ..
        } => match reference {
            Some(r) => format!("pull {repository}{}", short_ref(r)),
            None => format!("pull {repository}"),
        },
        OperationKind::Other => {
            let labels: Vec<&str> = members.iter().map(|w| w.local.kind.label()).collect();
            let only = |label: &str| labels.iter().all(|l| *l == label);
            if let Some(repository) = &group.repository {
                if labels.contains(&"tags-list") {
                    format!("list tags of {repository}")
                } else if labels.contains(&"manifest-delete") || labels.contains(&"blob-delete") {
                    format!("delete in {repository}")
                } else {
                    format!("requests on {repository}")
                }
            } else if let Some(registry) = &group.registry {
                if labels.contains(&"catalog") {
                    format!("catalog of {registry}")
                } else if only("api-check") {
                    format!("API check {registry}")
                } else {
                    format!("requests to {registry}")
                }
            } else {
                let host = group.host.clone().unwrap_or_default();
                if only("token") {
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
            .find(|a| a.label == "challenge" && a.severity == Severity::Warning)
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
            if let Some(t) = members.iter().find(|w| {
                matches!(w.local.kind, FlowKind::Token { .. })
                    && w.local.status().is_some_and(|s| s >= 400)
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
        OperationKind::Push { .. } => {
            let puts: Vec<&&crate::Work> = members
                .iter()
                .filter(|w| matches!(w.local.kind, FlowKind::ManifestPut { .. }))
                .collect();
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
            let failed_session = sessions.iter().find(|s| {
                s.outcome == SessionOutcome::Failed
                    && s.flow_ids
                        .iter()
                        .any(|id| members.iter().any(|w| w.local.flow.id == *id))
            });
            if let Some(s) = failed_session {
                return OperationStatus::Failed {
                    reason: format!("an upload to {} failed", s.repository),
                };
            }
            OperationStatus::Incomplete
        }
        OperationKind::Pull { .. } => {
            let failed = first_failed(&|w| {
                matches!(
                    w.local.kind,
                    FlowKind::ManifestHead { .. }
                        | FlowKind::ManifestGet { .. }
                        | FlowKind::BlobGet { .. }
                ) && (w.local.status().is_some_and(|s| s >= 400) || w.local.broken())
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

/// What a step is made of.
enum Unit {
    Session(usize, Vec<usize>),
    Flows(Vec<usize>),
}

/// Info annotations worth showing next to a step; warnings and errors always are.
const KEY_LABELS: [&str; 6] = [
    "challenge",
    "token",
    "granted",
    "digest",
    "blobs",
    "rate-limit",
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
            for w in &flows {
                for a in &w.local.annotations {
                    // One `_state` per upload is enough to tell what it is.
                    let first_state = a.label == "_state" && !shown_state;
                    // Credentials matter where authentication happens.
                    let authenticating = a.label == "basic"
                        && matches!(
                            w.local.kind,
                            FlowKind::ApiCheck { .. } | FlowKind::Token { .. }
                        );
                    let key = a.severity >= Severity::Warning
                        || KEY_LABELS.contains(&a.label.as_str())
                        || first_state
                        || authenticating;
                    if key && !annotations.contains(a) {
                        shown_state |= a.label == "_state";
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
        DigestCheck::Mismatch { computed } => {
            format!("DIGEST MISMATCH: the bytes sent hash to {computed}")
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
