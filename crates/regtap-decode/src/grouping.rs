//! Which flows make one operation. The rules, in the order they apply, are
//! written down in ARCHITECTURE.md ("How flows become operations"):
//!
//! 1. Flows of different clients (program and version from the User-Agent,
//!    and client address) never share an operation.
//! 2. Hard links: every request of an upload session goes where its POST
//!    went; a follow-up of a redirect (to storage, or to another registry)
//!    where the redirect went; a token request where the first request that
//!    used its token went.
//! 3. Command boundaries the protocol shows open a new operation: a `/v2/`
//!    ping (unless it carries the credentials of a login in progress,
//!    retries a ping that got no answer, or continues a command on the same
//!    connection); any request after a push whose tag was written, a listing
//!    or a deletion (but the referrers tag-schema fallback, the next page, or
//!    a check that a deleted thing is gone); a tag resolved again by the same
//!    method.
//! 4. Otherwise a request joins the same client's operation that used the
//!    same Bearer token (its latest, or one busy less than [`IDLE_NS`]
//!    before), else the one its connection carried last, else the latest one
//!    on the same repository busy less than [`IDLE_NS`] before (or the ping
//!    or 401 that a token issued since, or Basic credentials sent within
//!    [`RETRY_NS`], answers).
//! 5. A pull immediately followed by, or overlapping, a push of the same
//!    client that writes the manifest the pull read is one copy.
//! 6. A mirror's misses (`ns=` naming the upstream) followed by the same
//!    client on the upstream registry are one operation.

mod lane;

use crate::Works;
use crate::hash::{HashMap, HashSet};
use crate::http::{TokenHash, authority};
use crate::model::{FlowKind, Reference};
use lane::Lane;

/// A client that was idle this long, and comes back on a new connection,
/// starts a new command. Within a command, requests follow each other
/// within milliseconds; a new process (a client that opens a connection
/// per request, such as a Python script) takes longer than this to start.
const IDLE_NS: i64 = 100_000_000;

/// A ping that got no answer, or a request answered 401 that comes again with
/// Basic credentials, is the same command retrying when sent again within
/// this long (crane waits 150 ms between its HTTPS attempts).
const RETRY_NS: i64 = 1_000_000_000;

/// Flows that belong together, before they are described.
#[derive(Debug)]
pub(crate) struct Group {
    pub actor: usize,
    pub registry: Option<String>,
    /// The first repository the group's requests named.
    pub repository: Option<String>,
    /// Opened by a `/v2/` ping.
    pub opened_by_ping: bool,
    /// Host of loose flows (unknown requests, stray tokens).
    pub host: Option<String>,
    pub members: Vec<usize>,
    pub last_end: i64,
    /// A push whose tag manifest PUT was answered: a new request starts a
    /// new command.
    finished: bool,
    /// The latest ping was answered 401: credentials come next.
    login_pending: bool,
    /// Every member so far is a ping that got no answer.
    unanswered_pings_only: bool,
    /// The latest request was answered 401: a token request comes next.
    challenged: bool,
    /// `(method, repository, tag)` of manifests asked for by tag (and not
    /// answered 401).
    resolved: HashSet<(String, String, String)>,
    /// `(repository, reference)` of what the group deleted.
    deleted: HashSet<(String, String)>,
    /// The next page a list answer offered (`Link: <…>; rel="next"`).
    next_page: Option<url::Url>,
    /// Index of its actor's and registry's lane in [`State::lanes`], and
    /// its position there.
    lane: Option<(usize, usize)>,
}

impl Group {
    fn new(actor: usize, registry: Option<String>) -> Self {
        Group {
            actor,
            registry,
            repository: None,
            opened_by_ping: false,
            host: None,
            members: Vec::new(),
            last_end: i64::MIN,
            finished: false,
            login_pending: false,
            unanswered_pings_only: true,
            challenged: false,
            resolved: HashSet::default(),
            deleted: HashSet::default(),
            next_page: None,
            lane: None,
        }
    }
}

/// The running state of the grouping pass.
#[derive(Default)]
struct State {
    groups: Vec<Group>,
    /// The groups of each actor and registry, in the order they were
    /// opened (two levels, so that looking a registry up copies no string).
    by_actor: HashMap<usize, HashMap<String, usize>>,
    lanes: Vec<Lane>,
    /// The group a client connection carried last.
    by_connection: HashMap<String, usize>,
    by_session: HashMap<usize, usize>,
    /// The groups whose requests carried each Bearer token (full hash), in
    /// the order they were opened.
    by_token: HashMap<TokenHash, Vec<usize>>,
    group_of: Vec<Option<usize>>,
}

impl State {
    fn open(&mut self, actor: usize, registry: &str) -> usize {
        let g = self.groups.len();
        let mut group = Group::new(actor, Some(registry.to_owned()));
        let next_lane = self.lanes.len();
        let l = *self
            .by_actor
            .entry(actor)
            .or_default()
            .entry(registry.to_owned())
            .or_insert(next_lane);
        if l == next_lane {
            self.lanes.push(Lane::default());
        }
        if let Some(lane) = self.lanes.get_mut(l) {
            // No repository yet: it may answer a challenge.
            group.lane = Some((l, lane.push(g, true)));
        }
        self.groups.push(group);
        g
    }

    fn lane(&self, actor: usize, registry: &str) -> Option<&Lane> {
        let l = self.by_actor.get(&actor)?.get(registry)?;
        self.lanes.get(*l)
    }

    fn candidates(&self, actor: usize, registry: &str) -> &[usize] {
        self.lane(actor, registry)
            .map(Lane::groups)
            .unwrap_or_default()
    }

    fn add(&mut self, g: usize, i: usize, end: i64) {
        if let Some(group) = self.groups.get_mut(g) {
            group.members.push(i);
            group.last_end = group.last_end.max(end);
            if let Some((l, position)) = group.lane
                && let Some(lane) = self.lanes.get_mut(l)
            {
                lane.ended(position, end);
            }
        }
        if let Some(slot) = self.group_of.get_mut(i) {
            *slot = Some(g);
        }
    }
}

/// Assigns every flow to a group, and each flow its operation index.
pub(crate) fn group(works: &mut Works) -> Vec<Group> {
    let mut state = State {
        group_of: vec![None; works.items.len()],
        ..State::default()
    };
    let mut deferred: Vec<usize> = Vec::new();

    for (i, w) in works.items.iter().enumerate() {
        let kind = &w.local.kind;
        let Some(registry) = kind.registry().filter(|_| w.redirected_from.is_none()) else {
            deferred.push(i);
            continue;
        };
        let g = if matches!(kind, FlowKind::ApiCheck { .. }) {
            ping_group(&mut state, w, registry)
        } else {
            repository_group(&mut state, works, w, registry)
        };
        state.add(g, i, w.local.end());
        note(&mut state, g, w);
    }

    let tokens = TokenIndex::new(works);
    for i in deferred {
        let Some(w) = works.items.get(i) else {
            continue;
        };
        let target = match (&w.local.kind, w.redirected_from) {
            (_, Some(from)) => works
                .index_of(from)
                .and_then(|p| state.group_of.get(p).copied().flatten()),
            (FlowKind::Token { scopes, .. }, None) => {
                token_group(&state, &tokens, works, i, scopes)
            }
            _ => unknown_group(&state, w),
        };
        let g = match target {
            Some(g) => g,
            None => loose_group(&mut state, w),
        };
        state.add(g, i, w.local.end());
    }

    merge_copies(works, &mut state);
    merge_mirror_misses(works, &mut state);
    order(works, state.groups)
}

/// What a group learns from a flow it took.
fn note(state: &mut State, g: usize, w: &crate::Work) {
    // The address is copied only when new: most flows ride a connection
    // seen before.
    if let Some(connection) = w.connection() {
        match state.by_connection.get_mut(connection) {
            Some(last) => *last = g,
            None => {
                state.by_connection.insert(connection.to_owned(), g);
            }
        }
    }
    if let Some(s) = w.session {
        state.by_session.entry(s).or_insert(g);
    }
    if let Some(hash) = w.local.bearer_hash {
        let carried = state.by_token.entry(hash).or_default();
        if let Err(position) = carried.binary_search(&g) {
            carried.insert(position, g);
        }
    }
    let Some(group) = state.groups.get_mut(g) else {
        return;
    };
    let kind = &w.local.kind;
    if group.repository.is_none() {
        group.repository = kind.repository().map(str::to_owned);
    }
    group.unanswered_pings_only &=
        matches!(kind, FlowKind::ApiCheck { .. }) && w.local.flow.response.is_none();
    group.challenged = w.local.status() == Some(401);
    if let Some((l, position)) = group.lane
        && let Some(lane) = state.lanes.get_mut(l)
    {
        lane.set_answering(position, group.repository.is_none() || group.challenged);
    }
    match kind {
        FlowKind::ApiCheck { .. } => {
            group.login_pending = w.local.status() == Some(401);
        }
        FlowKind::ManifestPut {
            reference: Reference::Tag(_),
            ..
        } if w.local.ok() => group.finished = true,
        // One-request commands: listing and deleting.
        FlowKind::TagsList { .. } | FlowKind::Catalog { .. } if w.local.ok() => {
            group.finished = true;
            group.next_page = w
                .local
                .response_header("link")
                .and_then(|l| crate::pagination::next_link(l, w.local.url.as_ref()));
        }
        FlowKind::ManifestDelete {
            repository,
            reference,
            ..
        } if w.local.ok() => {
            group.finished = true;
            group
                .deleted
                .insert((repository.clone(), reference.as_str().to_owned()));
        }
        FlowKind::BlobDelete {
            repository, digest, ..
        } if w.local.ok() => {
            group.finished = true;
            group.deleted.insert((repository.clone(), digest.clone()));
        }
        // Resolved: a 401 asks for credentials and the client asks again.
        FlowKind::ManifestHead {
            repository,
            reference: Reference::Tag(tag),
            ..
        }
        | FlowKind::ManifestGet {
            repository,
            reference: Reference::Tag(tag),
            ..
        } if w.local.status() != Some(401) => {
            group.resolved.insert((
                w.local.flow.method().to_ascii_uppercase(),
                repository.clone(),
                tag.clone(),
            ));
        }
        _ => {}
    }
}

/// A `/v2/` ping: the start of a command, unless it carries the
/// credentials a login in progress asked for, or continues a command on
/// its connection (crane pings once per registry reference of a command).
fn ping_group(state: &mut State, w: &crate::Work, registry: &str) -> usize {
    let with_credentials = w.local.flow.request.headers.get("authorization").is_some();
    let start = w.local.start();
    let login = state
        .candidates(w.actor, registry)
        .last()
        .copied()
        .filter(|&g| {
            state.groups.get(g).is_some_and(|group| {
                with_credentials
                    && group.opened_by_ping
                    && group.login_pending
                    && group.repository.is_none()
            })
        });
    let continued = w
        .connection()
        .and_then(|c| state.by_connection.get(c))
        .copied()
        .filter(|&g| {
            state.groups.get(g).is_some_and(|group| {
                group.actor == w.actor
                    && group.registry.as_deref() == Some(registry)
                    && group.repository.is_some()
                    && !group.finished
                    && start.saturating_sub(group.last_end) < IDLE_NS
            })
        });
    // A ping that got no answer (crane --insecure tries HTTPS before
    // HTTP) is retried by the same command.
    let retried = state
        .candidates(w.actor, registry)
        .last()
        .copied()
        .filter(|&g| {
            state.groups.get(g).is_some_and(|group| {
                group.opened_by_ping
                    && group.repository.is_none()
                    && group.unanswered_pings_only
                    && start.saturating_sub(group.last_end) < RETRY_NS
            })
        });
    if let Some(g) = login.or(continued).or(retried) {
        return g;
    }
    let g = state.open(w.actor, registry);
    if let Some(group) = state.groups.get_mut(g) {
        group.opened_by_ping = true;
    }
    g
}

/// The group of a request that names a repository (or a registry, for the
/// catalog).
fn repository_group(state: &mut State, works: &Works, w: &crate::Work, registry: &str) -> usize {
    if let Some(&g) = w.session.and_then(|s| state.by_session.get(&s)) {
        return g;
    }
    let start = w.local.start();
    let restarts = |g: usize| state.groups.get(g).is_none_or(|group| restarts(group, w));
    let candidates = state.candidates(w.actor, registry);
    // The same Bearer token, in the client's latest group or one still
    // busy (a token can outlive the command that got it: once the client
    // started another command, an idle group's token no longer ties).
    let latest = candidates.last().copied();
    if let Some(hash) = &w.local.bearer_hash
        && let Some(carried) = state.by_token.get(hash)
        && let Some(g) = same_token_group(state, w, registry, carried, latest)
        && !restarts(g)
    {
        return g;
    }
    // The same connection.
    if let Some(&g) = w.connection().and_then(|c| state.by_connection.get(c))
        && state.groups.get(g).is_some_and(|group| {
            group.actor == w.actor && group.registry.as_deref() == Some(registry)
        })
        && !restarts(g)
    {
        return g;
    }
    // The latest busy group on the same repository, or the ping that
    // opened this command.
    let repository = w.local.kind.repository();
    let token_issued_at = w
        .local
        .bearer
        .as_ref()
        .and_then(|b| b.issued_by)
        .and_then(|id| works.get(id))
        .map(|t| t.local.start());
    let matches = |g: usize| {
        state.groups.get(g).is_some_and(|group| {
            let same_repository = match (&group.repository, repository) {
                (Some(r), Some(mine)) => r == mine,
                (None, _) => group.opened_by_ping,
                (Some(_), None) => true,
            };
            // A token issued after the ping (or after the 401 the group
            // ended on) was asked for this command: a slow token server
            // does not split it.
            let fresh_token = token_issued_at.is_some_and(|t| t >= group.last_end);
            let answers_challenge = group.repository.is_none() || group.challenged;
            // Basic credentials sent again after the group's 401 are the
            // client's retry (python-dxf and oras-py ask without them first),
            // however slowly a loaded machine lets it come.
            let retries_with_basic = group.challenged
                && w.local.basic_user.is_some()
                && start.saturating_sub(group.last_end) < RETRY_NS;
            same_repository
                && (start.saturating_sub(group.last_end) < IDLE_NS
                    || (answers_challenge && fresh_token)
                    || retries_with_basic)
        })
    };
    // Only a group that ended within RETRY_NS (> IDLE_NS) matches, or one
    // that may answer a challenge when the request's token was issued:
    // the lane visits no other.
    let recent = state.lane(w.actor, registry).and_then(|lane| {
        lane.latest(
            start.saturating_sub(RETRY_NS),
            token_issued_at.is_some(),
            matches,
        )
    });
    if let Some(g) = recent.filter(|&g| !restarts(g)) {
        return g;
    }
    state.open(w.actor, registry)
}

/// Of the groups that carried `w`'s token (`carried`, in opening order),
/// the latest of the same client on `registry` that is its latest group
/// there or was busy less than [`IDLE_NS`] before. Found in the client's
/// lane: a long-lived token is carried by ever more groups, and scanning
/// them all made grouping quadratic.
fn same_token_group(
    state: &State,
    w: &crate::Work,
    registry: &str,
    carried: &[usize],
    latest: Option<usize>,
) -> Option<usize> {
    let carries = |g: usize| carried.binary_search(&g).is_ok();
    // The lane's latest group is the last any of its groups could be.
    if let Some(g) = latest.filter(|&g| carries(g)) {
        return Some(g);
    }
    let start = w.local.start();
    state
        .lane(w.actor, registry)?
        .latest(start.saturating_sub(IDLE_NS), false, |g| {
            carries(g)
                && state
                    .groups
                    .get(g)
                    .is_some_and(|group| start.saturating_sub(group.last_end) < IDLE_NS)
        })
}

/// Whether `w` starts a new command instead of continuing `group`.
fn restarts(group: &Group, w: &crate::Work) -> bool {
    let kind = &w.local.kind;
    let offered = group.next_page.is_some() && group.next_page.as_ref() == w.local.url.as_ref();
    if group.finished
        && !referrers_follow_up(kind)
        && !next_page(w)
        && !offered
        && !checks_deletion(group, kind)
    {
        return true;
    }
    match kind {
        FlowKind::ManifestHead {
            repository,
            reference: Reference::Tag(tag),
            ..
        }
        | FlowKind::ManifestGet {
            repository,
            reference: Reference::Tag(tag),
            ..
        } => group.resolved.contains(&(
            w.local.flow.method().to_ascii_uppercase(),
            repository.clone(),
            tag.clone(),
        )),
        _ => false,
    }
}

/// A HEAD or GET of something the group deleted: the client checking that
/// it is gone.
fn checks_deletion(group: &Group, kind: &FlowKind) -> bool {
    let target = match kind {
        FlowKind::BlobHead {
            repository, digest, ..
        }
        | FlowKind::BlobGet {
            repository, digest, ..
        } => (repository, digest.as_str()),
        FlowKind::ManifestHead {
            repository,
            reference,
            ..
        }
        | FlowKind::ManifestGet {
            repository,
            reference,
            ..
        } => (repository, reference.as_str()),
        _ => return false,
    };
    group
        .deleted
        .contains(&(target.0.clone(), target.1.to_owned()))
}

/// A list request for a page after the first (`last=`).
fn next_page(w: &crate::Work) -> bool {
    matches!(
        w.local.kind,
        FlowKind::TagsList { .. } | FlowKind::Catalog { .. } | FlowKind::Referrers { .. }
    ) && w
        .local
        .url
        .as_ref()
        .is_some_and(|u| u.query_pairs().any(|(k, _)| k == "last"))
}

/// The referrers API, or its tag-schema fallback (`sha256-<hex>` tags),
/// which a client uses right after pushing a manifest with a subject.
fn referrers_follow_up(kind: &FlowKind) -> bool {
    match kind {
        FlowKind::Referrers { .. } => true,
        FlowKind::ManifestHead { reference, .. }
        | FlowKind::ManifestGet { reference, .. }
        | FlowKind::ManifestPut { reference, .. } => is_fallback_tag(reference),
        _ => false,
    }
}

/// A tag of the referrers tag schema: `<alg>-<hex>` naming a subject digest.
pub(crate) fn is_fallback_tag(reference: &Reference) -> bool {
    let Reference::Tag(tag) = reference else {
        return false;
    };
    let Some((algorithm, hex)) = tag.split_once('-') else {
        return false;
    };
    let length = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == length && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Who used each issued token first, and which pings named each realm:
/// computed once for every token flow.
#[derive(Default)]
struct TokenIndex {
    /// Token flow id → position of the first request that carried its token.
    first_user: HashMap<u64, usize>,
    /// (actor, realm) → positions of the flows whose challenge named it.
    challenged: HashMap<(usize, String), Vec<usize>>,
}

impl TokenIndex {
    fn new(works: &Works) -> Self {
        let mut index = TokenIndex::default();
        for (p, w) in works.items.iter().enumerate() {
            if let Some(issuer) = w.local.bearer.as_ref().and_then(|b| b.issued_by) {
                index.first_user.entry(issuer).or_insert(p);
            }
            for realm in w.local.challenges.iter().filter_map(|c| c.realm.as_deref()) {
                let list = index
                    .challenged
                    .entry((w.actor, realm_key(realm)))
                    .or_default();
                if list.last() != Some(&p) {
                    list.push(p);
                }
            }
        }
        index
    }
}

/// A token flow joins the first request that used its token, else the
/// ping of the same client whose challenge named its realm, else a group of
/// the same client on a repository it asked a scope for.
fn token_group(
    state: &State,
    index: &TokenIndex,
    works: &Works,
    i: usize,
    scopes: &[String],
) -> Option<usize> {
    let w = works.items.get(i)?;
    let start = w.local.start();
    let group_at = |p: usize| state.group_of.get(p).copied().flatten();
    if let Some(g) = index
        .first_user
        .get(&w.local.flow.id)
        .and_then(|&p| group_at(p))
    {
        return Some(g);
    }
    let realm = w.local.url.as_ref().map(|u| realm_key(u.as_str()));
    let pinged = realm
        .and_then(|r| index.challenged.get(&(w.actor, r)))
        .and_then(|positions| {
            let before = positions.partition_point(|&p| p < i);
            before.checked_sub(1).and_then(|k| positions.get(k))
        })
        .and_then(|&p| group_at(p));
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
    state
        .groups
        .iter()
        .enumerate()
        .rev()
        .find(|(_, g)| {
            g.actor == w.actor
                && g.repository
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

/// An unknown request to a registry host joins the latest group of the
/// same client on that host, when it was busy less than [`IDLE_NS`] before.
fn unknown_group(state: &State, w: &crate::Work) -> Option<usize> {
    let host = w.local.url.as_ref().map(authority)?;
    let start = w.local.start();
    state
        .candidates(w.actor, &host)
        .iter()
        .rev()
        .copied()
        .find(|&g| {
            state
                .groups
                .get(g)
                .is_some_and(|group| start.saturating_sub(group.last_end) < IDLE_NS)
        })
}

/// Loose flows of one client and host in a row form one "other" operation.
fn loose_group(state: &mut State, w: &crate::Work) -> usize {
    let host = w
        .local
        .url
        .as_ref()
        .map(authority)
        .unwrap_or_else(|| w.local.flow.url().to_owned());
    if let Some(last) = state.groups.last()
        && last.registry.is_none()
        && last.actor == w.actor
        && last.host.as_deref() == Some(host.as_str())
    {
        return state.groups.len() - 1;
    }
    let mut group = Group::new(w.actor, None);
    group.host = Some(host);
    state.groups.push(group);
    state.groups.len() - 1
}

/// How many groups before a push rule 5 looks at for its pull side.
const COPY_LOOK_BACK: usize = 16;

/// Rule 5: a pull whose manifest the same client writes right after (or
/// while it still reads) becomes the pull side of one copy operation.
fn merge_copies(works: &Works, state: &mut State) {
    let digest_of = |i: usize, response: bool| -> Option<String> {
        let w = works.items.get(i)?;
        let body = if response {
            &w.local.flow.response.as_ref()?.body
        } else {
            &w.local.flow.request.body
        };
        body.digest()
            .filter(|_| body.is_complete() && body.size > 0)
    };
    let span = |g: &Group| -> Option<(i64, i64)> {
        let first = g
            .members
            .iter()
            .filter_map(|&i| works.items.get(i))
            .map(|w| w.local.start())
            .min()?;
        Some((first, g.last_end))
    };
    let count = state.groups.len();
    for q in 0..count {
        let Some(push) = state.groups.get(q) else {
            continue;
        };
        let written: Vec<String> = push
            .members
            .iter()
            .filter(|&&i| {
                works
                    .items
                    .get(i)
                    .is_some_and(|w| matches!(w.local.kind, FlowKind::ManifestPut { .. }))
            })
            .filter_map(|&i| digest_of(i, false))
            .collect();
        let uploads = push.members.iter().any(|&i| {
            works.items.get(i).is_some_and(|w| {
                matches!(
                    w.local.kind,
                    FlowKind::UploadStart { .. } | FlowKind::UploadMount { .. }
                )
            })
        });
        let reads_itself = push.members.iter().any(|&i| {
            works
                .items
                .get(i)
                .is_some_and(|w| matches!(w.local.kind, FlowKind::ManifestGet { .. }))
        });
        if (written.is_empty() && !uploads) || reads_itself {
            continue;
        }
        let Some((push_start, _)) = span(push) else {
            continue;
        };
        let actor = push.actor;
        // The same client's group right before (groups are opened in time
        // order: only the few before can be it).
        let pull = (q.saturating_sub(COPY_LOOK_BACK)..q)
            .rev()
            .find(|&p| {
                state
                    .groups
                    .get(p)
                    .is_some_and(|g| g.actor == actor && !g.members.is_empty())
            })
            .filter(|&p| {
                state.groups.get(p).is_some_and(|g| {
                    let Some((start, end)) = span(g) else {
                        return false;
                    };
                    let pull_only = g.members.iter().all(|&i| {
                        works.items.get(i).is_some_and(|w| {
                            matches!(
                                w.local.kind,
                                FlowKind::ApiCheck { .. }
                                    | FlowKind::Token { .. }
                                    | FlowKind::ManifestHead { .. }
                                    | FlowKind::ManifestGet { .. }
                                    | FlowKind::BlobGet { .. }
                            )
                        })
                    });
                    let read: Vec<String> = g
                        .members
                        .iter()
                        .filter(|&&i| {
                            works.items.get(i).is_some_and(|w| {
                                matches!(w.local.kind, FlowKind::ManifestGet { .. }) && w.local.ok()
                            })
                        })
                        .filter_map(|&i| digest_of(i, true))
                        .collect();
                    let same_manifest = read.iter().any(|d| written.contains(d));
                    let overlapping = end > push_start;
                    g.registry.is_some()
                        && pull_only
                        && !read.is_empty()
                        && start <= push_start
                        && push_start.saturating_sub(end) < IDLE_NS
                        && (same_manifest || overlapping)
                })
            });
        if let Some(p) = pull {
            let moved: Vec<usize> = state
                .groups
                .get_mut(p)
                .map(|g| std::mem::take(&mut g.members))
                .unwrap_or_default();
            let last_end = state.groups.get(p).map_or(i64::MIN, |g| g.last_end);
            if let Some(target) = state.groups.get_mut(q) {
                target.members.extend(moved);
                target.last_end = target.last_end.max(last_end);
            }
        }
    }
}

/// The upstream registry a mirror request names (containerd's `ns=`).
fn mirror_namespace(w: &crate::Work) -> Option<String> {
    w.local
        .url
        .as_ref()
        .and_then(|u| crate::http::query_first(u, "ns"))
}

/// Whether `registry` (a `host[:port]`) serves the namespace `ns`.
fn serves(registry: &str, ns: &str) -> bool {
    registry == ns
        || (ns == "docker.io" && matches!(registry, "registry-1.docker.io" | "index.docker.io"))
}

/// Rule 6: requests to a mirror that could not serve them (`ns=` naming
/// the upstream, every answer a failure), followed by the same client on the
/// upstream registry, are one operation: the mirror miss, then upstream.
fn merge_mirror_misses(works: &mut Works, state: &mut State) {
    let count = state.groups.len();
    for m in 0..count {
        let Some(mirror) = state.groups.get(m) else {
            continue;
        };
        let members: Vec<&crate::Work> = mirror
            .members
            .iter()
            .filter_map(|&i| works.items.get(i))
            .collect();
        let Some(ns) = members.iter().find_map(|w| mirror_namespace(w)) else {
            continue;
        };
        let missed = members.iter().all(|w| {
            matches!(w.local.kind, FlowKind::Token { .. })
                || w.local.broken()
                || w.local.status().is_some_and(|s| s >= 400)
        });
        if !missed {
            continue;
        }
        let (actor, end) = (mirror.actor, mirror.last_end);
        let upstream = (m + 1..count.min(m + 1 + COPY_LOOK_BACK)).find(|&u| {
            state.groups.get(u).is_some_and(|g| {
                g.actor == actor
                    && g.registry.as_deref().is_some_and(|r| serves(r, &ns))
                    && g.members
                        .first()
                        .and_then(|&i| works.items.get(i))
                        .is_some_and(|f| f.local.start().saturating_sub(end) < IDLE_NS)
            })
        });
        let Some(u) = upstream else {
            continue;
        };
        let moved: Vec<usize> = state
            .groups
            .get_mut(m)
            .map(|g| std::mem::take(&mut g.members))
            .unwrap_or_default();
        if let Some(&last) = moved.last()
            && let Some(w) = works.items.get_mut(last)
        {
            w.local.annotations.push(crate::model::Annotation::info(
                crate::model::AnnotationKind::Mirror,
                format!("mirror miss: the client went on to the upstream registry {ns}"),
            ));
        }
        if let Some(target) = state.groups.get_mut(u) {
            target.members.extend(moved);
        }
    }
}

/// Groups in time order; each flow learns its operation index.
fn order(works: &mut Works, mut groups: Vec<Group>) -> Vec<Group> {
    for group in &mut groups {
        group.members.sort_by_key(|&i| {
            works
                .items
                .get(i)
                .map(|w| (w.local.start(), w.local.flow.id))
        });
    }
    groups.retain(|g| !g.members.is_empty());
    groups.sort_by_key(|g| {
        g.members
            .first()
            .and_then(|&i| works.items.get(i))
            .map(|w| (w.local.start(), w.local.flow.id))
    });
    for (position, group) in groups.iter().enumerate() {
        for &i in &group.members {
            if let Some(w) = works.items.get_mut(i) {
                w.operation = Some(position);
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_tags_name_a_digest() {
        let hex = "ccdd60262efe5c4be5c55c63fe7615fd5b11fc09aa12f1e9a0b1c2d3e4f5a6b7";
        assert!(is_fallback_tag(&Reference::Tag(format!("sha256-{hex}"))));
        assert!(!is_fallback_tag(&Reference::Tag("sha256-short".into())));
        assert!(!is_fallback_tag(&Reference::Tag("latest".into())));
        assert!(!is_fallback_tag(&Reference::Digest(format!(
            "sha256:{hex}"
        ))));
    }
}
