//! The detail pane's text: an operation, a step, or one flow with
//! everything the decoder found in it.

use std::collections::HashMap;

use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use regtap_capture::{Body, Direction, Ending, ErrorStage, Flow, Headers, ReverseExchange};
use regtap_decode::{
    Annotation, BearerUse, BlobStatus, Descriptor, DigestCheck, FlowAnalysis, HmacStatus, JwtInfo,
    ManifestInfo, Operation, OperationStatus, RegistryError, SessionOutcome, Severity, StateInfo,
    Step, TokenInfo, UploadSession, UploadStart,
};

use super::severity_style;
use crate::app::App;
use crate::format;
use regtap_decode::AnnotationKind;

/// Header values longer than this are cut: a JWT fills a screen, and the
/// decoded token is shown below the headers anyway.
const MAX_HEADER_VALUE: usize = 120;

type Lines = Vec<Line<'static>>;

fn heading(text: impl Into<String>) -> Line<'static> {
    Line::styled(text.into(), Style::new().bold().fg(Color::Cyan))
}

fn field(name: &str, value: impl Into<String>) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("  {name}: "), Style::new().dim()),
        Span::raw(value.into()),
    ])
}

fn annotation_line(annotation: &Annotation) -> Line<'static> {
    let marker = match annotation.severity {
        Severity::Info => "·",
        Severity::Warning => "⚠",
        Severity::Error => "✗",
    };
    Line::from(vec![
        Span::styled(
            format!("{marker} {}: ", annotation.label),
            severity_style(annotation.severity).bold(),
        ),
        Span::styled(annotation.text.clone(), severity_style(annotation.severity)),
    ])
}

/// Step numbers of an operation by flow id, to link flows to steps.
fn step_numbers(operation: &Operation) -> HashMap<u64, usize> {
    operation
        .steps
        .iter()
        .flat_map(|step| step.flow_ids.iter().map(move |&id| (id, step.number)))
        .collect()
}

/// How a flow is named in a link: `step 7`, or `flow #12` outside an operation.
fn flow_link(id: u64, steps: Option<&HashMap<u64, usize>>) -> String {
    match steps.and_then(|steps| steps.get(&id)) {
        Some(step) => format!("step {step}"),
        None => format!("flow #{id}"),
    }
}

/// The operation overview shown while the operations list has the focus.
pub fn operation_lines(app: &App, operation: &Operation) -> Lines {
    let mut lines = vec![heading(operation.title.clone())];
    let status = match &operation.status {
        OperationStatus::Succeeded => Span::styled("succeeded", Style::new().fg(Color::Green)),
        OperationStatus::Failed { reason } => {
            Span::styled(format!("failed: {reason}"), Style::new().fg(Color::Red))
        }
        OperationStatus::Incomplete => Span::styled(
            "incomplete: the capture ends before the operation does",
            Style::new().fg(Color::Yellow),
        ),
    };
    lines.push(Line::from(vec![
        Span::styled("  status: ", Style::new().dim()),
        status,
    ]));
    if let Some(client) = &operation.client {
        let text = match &client.detail {
            Some(detail) => format!("{client} ({detail})"),
            None => client.to_string(),
        };
        lines.push(field("client", text));
    }
    lines.push(field(
        "started",
        format!("{} s", format::offset(operation.start_ns, app.origin_ns)),
    ));
    lines.push(field(
        "took",
        format::duration(operation.end_ns - operation.start_ns),
    ));
    lines.push(field(
        "steps",
        format!(
            "{} ({} requests)",
            operation.steps.len(),
            operation.flow_ids.len()
        ),
    ));
    let problems: Vec<Line> = operation
        .steps
        .iter()
        .flat_map(|step| {
            step.annotations
                .iter()
                .filter(|a| a.severity != Severity::Info)
                .map(move |a| {
                    let mut line = annotation_line(a);
                    line.spans
                        .insert(0, Span::raw(format!("step {}: ", step.number)));
                    line
                })
        })
        .collect();
    if !problems.is_empty() {
        lines.push(Line::default());
        lines.push(heading("Problems"));
        lines.extend(problems);
    }
    lines.push(Line::default());
    lines.push(Line::styled(
        "Enter lists the steps; 2 draws them as a sequence.",
        Style::new().dim(),
    ));
    lines
}

/// A step: its explanation, then every flow of it in full.
pub fn step_lines(app: &App, operation: &Operation, step: &Step) -> Lines {
    let mut lines = vec![
        heading(format!(
            "Step {} of {} · {}",
            step.number,
            operation.steps.len(),
            operation.title
        )),
        Line::raw(step.explanation.clone()),
    ];
    lines.extend(step.annotations.iter().map(annotation_line));
    for &id in &step.flow_ids {
        lines.push(Line::default());
        match app.flow(id) {
            Some(flow) => lines.extend(flow_lines(app, flow, Some((operation, step)))),
            None => lines.push(Line::raw(format!("flow #{id} is not in the capture"))),
        }
    }
    lines
}

/// One flow: request and response with headers, then what the decoder found.
/// Inside a step, what the step already says is not repeated.
pub fn flow_lines(app: &App, flow: &Flow, within: Option<(&Operation, &Step)>) -> Lines {
    let steps = within.map(|(operation, _)| step_numbers(operation));
    let steps = steps.as_ref();
    let step = within.map(|(_, step)| step);
    let analysis = app.flow_analysis(flow.id);
    let mut lines = vec![heading(format!(
        "── flow #{} · {} · {} at {} s",
        flow.id,
        analysis.map_or("-", |a| a.kind.label()),
        format::duration(flow.timing.end() - flow.timing.request_start),
        format::offset(flow.timing.request_start, app.origin_ns),
    ))];
    if let Some(analysis) = analysis {
        if step.is_none_or(|step| step.explanation != analysis.summary) {
            lines.push(Line::raw(analysis.summary.clone()));
        }
        // Registry errors get their own section below.
        lines.extend(
            analysis
                .annotations
                .iter()
                .filter(|a| a.label != AnnotationKind::RegistryError)
                .filter(|a| step.is_none_or(|step| !step.annotations.contains(a)))
                .map(annotation_line),
        );
    }
    lines.push(Line::from(vec![
        Span::styled("▶ ", Style::new().fg(Color::Blue)),
        Span::styled(
            format!(
                "{} {} {}",
                flow.method(),
                request_target(flow.url(), app.reveal_secrets),
                flow.request.http_version
            ),
            Style::new().bold(),
        ),
    ]));
    header_lines(&mut lines, &flow.request.headers, app.reveal_secrets);
    body_line(&mut lines, &flow.request.body);
    match &flow.response {
        Some(response) => {
            lines.push(Line::from(vec![
                Span::styled("◀ ", Style::new().fg(Color::Blue)),
                Span::styled(
                    format!("{} {}", response.http_version, response.status),
                    Style::new().bold(),
                ),
            ]));
            header_lines(&mut lines, &response.headers, app.reveal_secrets);
            body_line(&mut lines, &response.body);
        }
        None => lines.push(Line::styled("◀ no response", Style::new().dim())),
    }
    if let Some(reverse) = &flow.reverse {
        reverse_lines(&mut lines, reverse, app.reveal_secrets);
    }
    if let Some(proxy) = &flow.upstream_proxy {
        lines.push(Line::styled(
            format!("⇢ through upstream proxy {proxy}"),
            Style::new().fg(Color::Blue),
        ));
    }
    if let Some(error) = &flow.error {
        let stage = match error.stage {
            ErrorStage::Connect => "connecting upstream",
            other => other.describe(),
        };
        lines.push(Line::styled(
            format!("✗ failed while {stage}: {}", error.message),
            Style::new().fg(Color::Red),
        ));
    }
    if let Some(analysis) = analysis {
        decoded_lines(&mut lines, app, analysis, steps);
    }
    lines
}

/// Reverse mode: the origin the client addressed, and what the client sent
/// or got differently from the upstream (the headers above are the upstream's).
fn reverse_lines(lines: &mut Lines, reverse: &ReverseExchange, reveal: bool) {
    lines.push(Line::styled(
        format!("⇄ reverse mode: the client addressed {}", reverse.served_as),
        Style::new().fg(Color::Blue),
    ));
    for rewrite in &reverse.rewrites {
        let shown = |value: &str| {
            let value = if reveal {
                value.to_owned()
            } else {
                regtap_har::redact::header_masked(&rewrite.header, value)
            };
            format::clip(&value, MAX_HEADER_VALUE)
        };
        let (side, verb) = match rewrite.direction {
            Direction::Request => ("client sent", "upstream got"),
            Direction::Response => ("upstream sent", "client got"),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("  {}: ", rewrite.header), Style::new().dim()),
            Span::raw(format!(
                "{side} {}, {verb} {}",
                shown(&rewrite.original),
                shown(&rewrite.rewritten)
            )),
        ]));
    }
}

/// The URL with a long query cut: `_state` values run to hundreds of
/// characters and are decoded below. Secret query values are masked unless
/// `reveal`.
fn request_target(url: &str, reveal: bool) -> String {
    const MAX_QUERY: usize = 48;
    let masked;
    let url = if reveal {
        url
    } else {
        masked = regtap_har::redact::url_masked(url);
        &masked
    };
    match url.split_once('?') {
        Some((path, query)) => format!("{path}?{}", format::clip(query, MAX_QUERY)),
        None => url.to_owned(),
    }
}

/// Headers, credentials masked unless `reveal` (the `s` key): a TUI gets
/// screen-shared and screenshotted.
fn header_lines(lines: &mut Lines, headers: &Headers, reveal: bool) {
    for header in headers.iter() {
        let value = match header.1.as_text() {
            Some(text) if reveal => format::clip(text, MAX_HEADER_VALUE),
            Some(text) => format::clip(
                &regtap_har::redact::header_masked(&header.0, text),
                MAX_HEADER_VALUE,
            ),
            None => "(binary value)".to_owned(),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("  {}: ", header.0), Style::new().dim()),
            Span::raw(value),
        ]));
    }
}

fn body_line(lines: &mut Lines, body: &Body) {
    if body.size == 0 && body.is_complete() {
        return;
    }
    let mut text = format!("  body: {}", format::bytes(body.size));
    match body.ended {
        Ending::Complete => {}
        Ending::CutOff => text.push_str(", cut off"),
        Ending::Unknown => text.push_str(", not in the recording"),
    }
    if let Some(digest) = body.digest() {
        text.push_str(&format!(", {}", format::short_digest(&digest)));
    }
    lines.push(Line::styled(text, Style::new().dim()));
}

fn decoded_lines(
    lines: &mut Lines,
    app: &App,
    analysis: &FlowAnalysis,
    steps: Option<&HashMap<u64, usize>>,
) {
    if let Some(user) = &analysis.basic_user {
        lines.push(field("Basic credentials of user", user.clone()));
    }
    if let Some(bearer) = &analysis.bearer {
        bearer_lines(lines, bearer, steps);
    }
    if let Some(token) = &analysis.token {
        token_lines(lines, token);
    }
    if let Some(state) = &analysis.upload_state {
        state_lines(lines, state);
    }
    if let Some(session) = analysis.session.and_then(|i| app.analysis.sessions.get(i)) {
        session_lines(lines, app, session, steps);
    }
    if let Some(manifest) = &analysis.manifest {
        manifest_lines(lines, manifest, steps);
    }
    if !analysis.registry_errors.is_empty() {
        lines.push(Line::default());
        lines.push(heading("Registry errors"));
        for error in &analysis.registry_errors {
            registry_error_lines(lines, error);
        }
    }
    if let Some(limit) = &analysis.rate_limit {
        let number = |n: Option<u64>| n.map_or("?".to_owned(), |n| n.to_string());
        let mut text = format!(
            "{} of {} pulls left",
            number(limit.remaining),
            number(limit.limit)
        );
        if let Some(window) = limit.window_seconds {
            text.push_str(&format!(" per {} h", window / 3600));
        }
        lines.push(field("rate limit", text));
    }
}

fn bearer_lines(lines: &mut Lines, bearer: &BearerUse, steps: Option<&HashMap<u64, usize>>) {
    let mut text = format!("token {}", bearer.fingerprint);
    if let Some(issuer) = bearer.issued_by {
        text.push_str(&format!(", issued in {}", flow_link(issuer, steps)));
    }
    lines.push(field("Bearer", text));
    if bearer.expired {
        lines.push(Line::styled(
            "  ✗ the token had expired when this request was sent",
            Style::new().fg(Color::Red),
        ));
    }
    if bearer.not_yet_valid {
        lines.push(Line::styled(
            "  ✗ the token was not yet valid (nbf) when this request was sent",
            Style::new().fg(Color::Red),
        ));
    }
}

fn token_lines(lines: &mut Lines, token: &TokenInfo) {
    lines.push(Line::default());
    lines.push(heading(format!("Token issued: {}", token.fingerprint)));
    let requested = if token.requested_scopes.is_empty() {
        "(none: a login token)".to_owned()
    } else {
        token.requested_scopes.join(" ")
    };
    lines.push(field("requested", requested));
    let granted: Vec<String> = token
        .granted
        .iter()
        .map(|access| {
            format!(
                "{}:{}:{}",
                access.resource_type,
                access.name,
                access.actions.join(",")
            )
        })
        .collect();
    let granted = if granted.is_empty() {
        "nothing".to_owned()
    } else {
        granted.join(" ")
    };
    lines.push(field("granted", granted));
    for missing in &token.missing_grants {
        lines.push(Line::styled(
            format!("  ⚠ requested but not granted: {missing}"),
            Style::new().fg(Color::Yellow),
        ));
    }
    if let Some(seconds) = token.expires_in {
        lines.push(field("expires in", format!("{seconds} s")));
    }
    if let Some(issued) = &token.issued_at {
        lines.push(field("issued at", issued.clone()));
    }
    if let Some(refresh) = &token.refresh_token {
        lines.push(field("refresh token", refresh.clone()));
    }
    match &token.jwt {
        Some(jwt) => jwt_lines(lines, jwt),
        None => {
            if let Some(reason) = &token.opaque_reason {
                lines.push(field("not a JWT", reason.clone()));
            }
        }
    }
}

fn jwt_lines(lines: &mut Lines, jwt: &JwtInfo) {
    let header = &jwt.header;
    let optional = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    lines.push(heading("  JWT header"));
    lines.push(field(
        "alg / typ / kid",
        format!(
            "{} / {} / {}",
            optional(&header.alg),
            optional(&header.typ),
            optional(&header.kid)
        ),
    ));
    if let Some(cert) = &header.x5c_first {
        lines.push(field(
            "signer",
            format!(
                "{} (issuer {}, valid {} to {}), {} certificates in x5c",
                cert.subject, cert.issuer, cert.not_before, cert.not_after, header.x5c_len
            ),
        ));
    }
    let claims = &jwt.claims;
    lines.push(heading("  JWT claims"));
    lines.push(field("iss", optional(&claims.iss)));
    lines.push(field("sub", optional(&claims.sub)));
    lines.push(field("aud", claims.aud.join(", ")));
    for (name, claim) in [
        ("iat", &claims.iat),
        ("nbf", &claims.nbf),
        ("exp", &claims.exp),
    ] {
        if let Some(claim) = claim {
            lines.push(field(name, format!("{} ({})", claim.utc, claim.unix)));
        }
    }
    if let (Some(iat), Some(exp)) = (&claims.iat, &claims.exp) {
        lines.push(field(
            "lifetime",
            format::duration((exp.unix - iat.unix).saturating_mul(1_000_000_000)),
        ));
    }
    if let Some(jti) = &claims.jti {
        lines.push(field("jti", jti.clone()));
    }
    for access in &claims.access {
        lines.push(field(
            "access",
            format!(
                "{} {} → {}",
                access.resource_type,
                access.name,
                access.actions.join(", ")
            ),
        ));
    }
    for (name, value) in &claims.other {
        lines.push(field(name, value.to_string()));
    }
    problem_lines(lines, &jwt.problems);
}

fn problem_lines(lines: &mut Lines, problems: &[String]) {
    for problem in problems {
        lines.push(Line::styled(
            format!("  ⚠ {problem}"),
            Style::new().fg(Color::Yellow),
        ));
    }
}

fn state_lines(lines: &mut Lines, state: &StateInfo) {
    lines.push(Line::default());
    lines.push(heading("_state (upload state kept by the client)"));
    lines.push(field("name", state.name.clone()));
    lines.push(field("uuid", state.uuid.clone()));
    lines.push(field("offset", state.offset.to_string()));
    lines.push(field("started at", state.started_at.clone()));
    let hmac = match state.hmac {
        HmacStatus::Valid => Span::styled("valid", Style::new().fg(Color::Green)),
        HmacStatus::Invalid => Span::styled(
            "INVALID: the registry will reject this upload",
            Style::new().fg(Color::Red),
        ),
        HmacStatus::NotChecked => Span::styled(
            "not checked (give the registry's http.secret to verify)",
            Style::new().dim(),
        ),
    };
    lines.push(Line::from(vec![
        Span::styled("  HMAC: ", Style::new().dim()),
        hmac,
    ]));
}

fn session_lines(
    lines: &mut Lines,
    app: &App,
    session: &UploadSession,
    steps: Option<&HashMap<u64, usize>>,
) {
    lines.push(Line::default());
    let id = session.upload_id.as_deref().unwrap_or("id unknown");
    lines.push(heading(format!(
        "Upload session {} to {} ({id})",
        session.index + 1,
        session.repository
    )));
    let start = match &session.start {
        UploadStart::Chunked => "POST, then chunks".to_owned(),
        UploadStart::Monolithic => "monolithic POST with the whole blob".to_owned(),
        UploadStart::Mount { from } => format!(
            "cross-repository mount from {}",
            from.as_deref().unwrap_or("?")
        ),
        UploadStart::MountFallback { from } => format!(
            "mount from {} refused, the registry started a normal upload",
            from.as_deref().unwrap_or("?")
        ),
        UploadStart::NotSeen => "its POST is not in the capture".to_owned(),
    };
    lines.push(field("started by", start));
    let outcome = match session.outcome {
        SessionOutcome::Completed => "completed",
        SessionOutcome::Mounted => "mounted",
        SessionOutcome::Cancelled => "cancelled",
        SessionOutcome::Failed => "failed",
        SessionOutcome::Open => "still open",
    };
    lines.push(field("outcome", outcome));
    for (n, chunk) in session.chunks.iter().enumerate() {
        let rate = app
            .flow(chunk.flow_id)
            .and_then(|flow| {
                let end = flow.timing.request_end?;
                format::rate(chunk.bytes, end - flow.timing.request_start)
            })
            .unwrap_or_default();
        let mut text = format!(
            "bytes {}–{} ({}) {rate}, {}",
            chunk.offset_start,
            chunk.offset_end,
            format::bytes(chunk.bytes),
            flow_link(chunk.flow_id, steps)
        );
        if let Some(range) = &chunk.server_range {
            text.push_str(&format!(", registry answered Range: {range}"));
        }
        lines.push(field(&format!("chunk {}", n + 1), text));
    }
    lines.push(field("total", format::bytes(session.total_bytes)));
    if let Some(digest) = &session.digest {
        lines.push(field("digest", digest.clone()));
    }
    let check = match &session.digest_check {
        DigestCheck::Verified => Span::styled(
            "verified: the bytes sent hash to the digest",
            Style::new().fg(Color::Green),
        ),
        DigestCheck::Mismatch { expected, computed } => Span::styled(
            format!("MISMATCH: the bytes sent hash to {computed}, not {expected}"),
            Style::new().fg(Color::Red),
        ),
        DigestCheck::NotVerifiable { reason } => {
            Span::styled(format!("not verifiable: {reason}"), Style::new().dim())
        }
        DigestCheck::Pending => Span::styled("pending: no digest yet", Style::new().dim()),
    };
    lines.push(Line::from(vec![
        Span::styled("  digest check: ", Style::new().dim()),
        check,
    ]));
}

fn manifest_lines(lines: &mut Lines, manifest: &ManifestInfo, steps: Option<&HashMap<u64, usize>>) {
    lines.push(Line::default());
    lines.push(heading(format!("Manifest {}", manifest.media_type)));
    if let Some(digest) = &manifest.digest {
        lines.push(field("digest", digest.clone()));
    }
    if let Some(config) = &manifest.config {
        lines.push(descriptor_line("config", config, steps));
    }
    for (n, layer) in manifest.layers.iter().enumerate() {
        lines.push(descriptor_line(&format!("layer {}", n + 1), layer, steps));
    }
    for entry in &manifest.manifests {
        let name = entry.platform.as_deref().unwrap_or("manifest");
        lines.push(descriptor_line(name, entry, steps));
    }
    let total: u64 = manifest
        .config
        .iter()
        .chain(&manifest.layers)
        .filter_map(|d| d.size)
        .sum();
    if total > 0 {
        lines.push(field("total size", format::bytes(total)));
    }
    problem_lines(lines, &manifest.problems);
}

fn descriptor_line(
    name: &str,
    descriptor: &Descriptor,
    steps: Option<&HashMap<u64, usize>>,
) -> Line<'static> {
    let size = descriptor.size.map_or("size ?".to_owned(), format::bytes);
    let status = match descriptor.blob_status {
        BlobStatus::Unknown => "not seen",
        BlobStatus::Missing => "MISSING",
        BlobStatus::Downloaded => "downloaded",
        BlobStatus::Present => "already there",
        BlobStatus::Mounted => "mounted",
        BlobStatus::Uploaded => "uploaded",
    };
    let mut links: Vec<String> = descriptor
        .blob_flow_ids
        .iter()
        .map(|&id| flow_link(id, steps))
        .collect();
    links.dedup();
    let style = if descriptor.blob_status == BlobStatus::Missing {
        Style::new().fg(Color::Red)
    } else {
        Style::new()
    };
    let mut text = format!(
        "{} {size:>10}  {status}",
        format::short_digest(&descriptor.digest)
    );
    if !links.is_empty() {
        text.push_str(&format!(" → {}", links.join(", ")));
    }
    Line::from(vec![
        Span::styled(format!("  {name}: "), Style::new().dim()),
        Span::styled(text, style),
    ])
}

fn registry_error_lines(lines: &mut Lines, error: &RegistryError) {
    lines.push(Line::from(vec![
        Span::styled(
            format!("  {}: ", error.code),
            Style::new().fg(Color::Red).bold(),
        ),
        Span::raw(error.message.clone()),
    ]));
    if let Some(detail) = &error.detail {
        lines.push(field("detail", detail.clone()));
    }
    lines.push(Line::raw(format!("  → {}", error.explanation)));
}
