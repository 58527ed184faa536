//! The `_regtap` objects: what the decoder understood, serialized from its
//! types, on each entry and each page.

use regtap_capture::Flow;
use regtap_decode::{Analysis, Operation, OperationStatus};
use serde_json::{Map, Value, json};

use crate::export::ExportOptions;
use crate::model::CaptureFacts;

/// Replaces identifying claim values when `--redact-claims` is given.
const REDACTED_CLAIM: &str = "<redacted claim>";

/// The `_regtap` object of one entry.
pub(crate) fn flow(flow: &Flow, analysis: &Analysis, options: &ExportOptions) -> Value {
    let mut out = Map::new();
    out.insert("capture".to_owned(), capture_facts(flow));
    let Some(decoded) = analysis.flow(flow.id) else {
        return Value::Object(out);
    };
    let mut put = |key: &str, value: Value| {
        if !value.is_null() {
            out.insert(key.to_owned(), value);
        }
    };
    put("kind", json!(decoded.kind.label()));
    put("classification", to_value(&decoded.kind));
    put("summary", json!(decoded.summary));
    if let Some(operation) = decoded.operation.and_then(|i| analysis.operations.get(i)) {
        put("operation", json!(operation.index));
        if let Some(step) = operation
            .steps
            .iter()
            .find(|s| s.flow_ids.contains(&flow.id))
        {
            put("step", json!(step.number));
        }
    }
    put("annotations", to_value(&decoded.annotations));
    put("token", to_value(&decoded.token));
    put("bearer", to_value(&decoded.bearer));
    put("basic_user", to_value(&decoded.basic_user));
    put("upload_state", to_value(&decoded.upload_state));
    if let Some(session) = decoded.session.and_then(|i| analysis.sessions.get(i)) {
        let chunks: Vec<_> = session
            .chunks
            .iter()
            .filter(|c| c.flow_id == flow.id)
            .collect();
        put(
            "upload",
            json!({
                "session": session.index,
                "upload_id": session.upload_id,
                "chunks": to_value(&chunks),
                "total_bytes": session.total_bytes,
                "digest": session.digest,
                "digest_check": to_value(&session.digest_check),
                "outcome": to_value(&session.outcome),
            }),
        );
    }
    put("manifest", to_value(&decoded.manifest));
    if !decoded.registry_errors.is_empty() {
        put("registry_errors", to_value(&decoded.registry_errors));
    }
    if !decoded.challenges.is_empty() {
        put("challenges", to_value(&decoded.challenges));
    }
    put("rate_limit", to_value(&decoded.rate_limit));

    let mut value = Value::Object(out);
    if options.redact_claims
        && let Some(jwt) = value
            .pointer_mut("/token/jwt")
            .and_then(Value::as_object_mut)
    {
        jwt.insert("claims".to_owned(), json!(REDACTED_CLAIM));
    }
    value
}

/// Claim values of every token in `analysis` that name a person or a token
/// (not scopes): `sub`, `jti` and the string values of registry-specific
/// claims. `--redact-claims` scrubs them from every text regtap adds.
pub(crate) fn identifying_claims(analysis: &Analysis) -> Vec<String> {
    let mut values = Vec::new();
    for claims in analysis
        .flows
        .iter()
        .filter_map(|f| f.token.as_ref())
        .filter_map(|t| t.jwt.as_ref())
        .map(|jwt| &jwt.claims)
    {
        values.extend(claims.sub.iter().chain(&claims.jti).cloned());
        claims
            .other
            .values()
            .for_each(|v| collect_strings(v, &mut values));
    }
    // Very short values ("1", "ok") would blank unrelated words.
    values.retain(|v| v.len() >= 3);
    values.sort();
    values.dedup();
    values
}

fn collect_strings(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::String(s) => into.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, into)),
        Value::Object(map) => map.values().for_each(|i| collect_strings(i, into)),
        _ => {}
    }
}

/// Replaces every occurrence of `secrets` in the string leaves of `value`.
pub(crate) fn scrub(value: &mut Value, secrets: &[String]) {
    match value {
        Value::String(text) => scrub_text(text, secrets),
        Value::Array(items) => items.iter_mut().for_each(|i| scrub(i, secrets)),
        Value::Object(map) => map.values_mut().for_each(|i| scrub(i, secrets)),
        _ => {}
    }
}

pub(crate) fn scrub_text(text: &mut String, secrets: &[String]) {
    for secret in secrets {
        if text.contains(secret.as_str()) {
            *text = text.replace(secret.as_str(), REDACTED_CLAIM);
        }
    }
}

/// What the HAR has no field for, kept so that importing the HAR gives the
/// same flows back.
fn capture_facts(flow: &Flow) -> Value {
    to_value(&CaptureFacts {
        flow_id: Some(flow.id),
        timing: Some(flow.timing.clone()),
        client_addr: flow.client_addr.clone(),
        connect_authority: flow.connect_authority.clone(),
        server_addr: flow.server_addr.clone(),
        upstream_proxy: flow.upstream_proxy.clone(),
        reverse: flow.reverse.clone(),
    })
}

/// The page comment: how the operation ended.
pub(crate) fn operation_status(operation: &Operation) -> String {
    match &operation.status {
        OperationStatus::Succeeded => "succeeded".to_owned(),
        OperationStatus::Failed { reason } => format!("failed: {reason}"),
        OperationStatus::Incomplete => "incomplete (the capture ends before it does)".to_owned(),
    }
}

/// The `_regtap` object of one page.
pub(crate) fn operation(operation: &Operation) -> Value {
    json!({
        "kind": to_value(&operation.kind),
        "status": to_value(&operation.status),
        "steps": operation
            .steps
            .iter()
            .map(|step| json!({
                "number": step.number,
                "explanation": step.explanation,
                "flow_ids": step.flow_ids,
                "annotations": to_value(&step.annotations),
            }))
            .collect::<Vec<_>>(),
        "flow_ids": operation.flow_ids,
    })
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}
