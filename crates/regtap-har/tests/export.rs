//! HAR export: validity (npm har-validator), golden snapshots, redaction,
//! bodies, timings, operations as pages, and the round trip through import.

mod common;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::Command;

use regtap_capture::{CaptureError, CaptureReader, Flow, FlowLines};
use regtap_decode::{Analysis, Analyzer, DigestCheck, Options, analyze};
use regtap_har::redact::{self, Salt};
use regtap_har::{
    BodySource, ExportError, ExportOptions, ExportToError, Listed, export, export_flows, import,
};
use serde_json::Value;

/// The export with a fixed salt, so that snapshots are reproducible.
fn har_json(flows: &[Flow], options: &ExportOptions) -> (Analysis, Value) {
    let analysis = analyze(flows, &Options::default());
    let options = ExportOptions {
        salt: Salt::from_bytes([0x5a; 16]),
        ..options.clone()
    };
    let exported = export(flows, &analysis, &options).expect("export");
    let value = serde_json::to_value(&exported.har).expect("HAR serializes");
    (analysis, value)
}

fn entries(har: &Value) -> &Vec<Value> {
    har["log"]["entries"].as_array().expect("entries")
}

// ---------------------------------------------------------------- validator

fn validator_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/validator")
}

/// Installs har-validator (`npm ci`) when needed, once for all tests. `None`
/// when node or npm is missing outside CI, where the test then skips loudly;
/// under CI=true a missing tool fails the test.
fn prepare_validator() -> Option<PathBuf> {
    static SCRIPT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(install_validator).clone()
}

fn install_validator() -> Option<PathBuf> {
    let dir = validator_dir();
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("node") || !have("npm") {
        assert!(
            !in_ci,
            "node and npm are required to run har-validator under CI"
        );
        eprintln!("SKIPPED: node/npm not found; the HAR validator test did not run");
        return None;
    }
    if !dir.join("node_modules/har-validator").is_dir() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm ci runs");
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    Some(dir.join("validate.js"))
}

fn validate(files: &[PathBuf]) -> (bool, String) {
    let Some(script) = prepare_validator() else {
        return (true, String::new());
    };
    let output = Command::new("node")
        .arg(script)
        .args(files)
        .output()
        .expect("node runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn every_capture_exports_to_a_har_that_har_validator_accepts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = Vec::new();
    let inputs = common::all_inputs();
    eprintln!("validating the HAR of {} inputs", inputs.len());
    for (name, flows) in &inputs {
        for (suffix, options) in [
            ("redacted", ExportOptions::default()),
            (
                "secrets",
                ExportOptions {
                    include_secrets: true,
                    bodies_dir: Some("bodies".to_owned()),
                    ..ExportOptions::default()
                },
            ),
        ] {
            let (_, har) = har_json(flows, &options);
            assert_eq!(entries(&har).len(), flows.len(), "{name}");
            let path = dir.path().join(format!("{name}-{suffix}.har"));
            std::fs::write(&path, serde_json::to_vec_pretty(&har).expect("json")).expect("write");
            files.push(path);
        }
    }
    let (valid, report) = validate(&files);
    assert!(valid, "har-validator rejected regtap's HAR:\n{report}");
}

#[test]
fn the_validator_really_rejects_invalid_hars() {
    let (valid, report) =
        validate(&[PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/mitmproxy/docker-push.har")]);
    if prepare_validator().is_some() {
        assert!(!valid, "mitmproxy's `\"text\": null` must be rejected");
        assert!(
            report.contains("postData.text should be string"),
            "{report}"
        );
    }
}

// ---------------------------------------------------------------- snapshots

/// The HAR with the decoder's prose taken out: `_regtap` keeps the flow's
/// kind, operation, step, capture facts and which annotations are present;
/// step explanations become a marker. The decoder's wording has its own
/// golden tests; these pin down what the export itself writes.
fn without_decoder_prose(mut har: Value) -> Value {
    for entry in har["log"]["entries"].as_array_mut().into_iter().flatten() {
        let regtap = &entry["_regtap"];
        let present: Vec<&String> = regtap
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        let kept = serde_json::json!({
            "kind": regtap["kind"],
            "operation": regtap["operation"],
            "step": regtap["step"],
            "capture": regtap["capture"],
            "present": present,
        });
        entry["_regtap"] = kept;
        if entry.get("comment").is_some() {
            entry["comment"] = Value::from("[step explanation]");
        }
    }
    for page in har["log"]["pages"].as_array_mut().into_iter().flatten() {
        let steps = page["_regtap"]["steps"].as_array().map_or(0, Vec::len);
        page["_regtap"] = serde_json::json!({
            "kind": page["_regtap"]["kind"]["type"],
            "status": page["_regtap"]["status"]["type"],
            "steps": steps,
        });
        if page["comment"]
            .as_str()
            .is_some_and(|c| c.starts_with("failed: "))
        {
            page["comment"] = Value::from("failed: [reason]");
        }
    }
    har
}

#[test]
fn golden_har_per_capture() {
    for (name, flows) in common::all_inputs() {
        let (_, har) = har_json(&flows, &ExportOptions::default());
        let har = without_decoder_prose(har);
        insta::with_settings!({ snapshot_suffix => name.clone(), prepend_module_to_snapshot => false }, {
            insta::assert_json_snapshot!("har", har);
        });
    }
}

// ---------------------------------------------------------------- redaction

/// Every credential in `flows`: Authorization credentials (and the decoded
/// Basic password), token values in JSON bodies and query strings, OAuth2
/// passwords, cookie values.
fn secrets_of(flows: &[Flow]) -> Vec<String> {
    use base64::Engine as _;
    let mut secrets = Vec::new();
    let json_secrets = |text: &str, secrets: &mut Vec<String>| {
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            for key in [
                "token",
                "access_token",
                "refresh_token",
                "id_token",
                "password",
            ] {
                if let Some(s) = value.get(key).and_then(Value::as_str) {
                    secrets.push(s.to_owned());
                }
            }
        }
    };
    for flow in flows {
        let mut header_sets = vec![&flow.request.headers];
        if let Some(response) = &flow.response {
            header_sets.push(&response.headers);
            if let Some(bytes) = response.body.full_bytes() {
                json_secrets(&String::from_utf8_lossy(&bytes), &mut secrets);
            }
        }
        for headers in header_sets {
            for value in headers.get_all("authorization") {
                let credentials = value.split_once(' ').map_or(value, |(_, c)| c).trim();
                secrets.push(credentials.to_owned());
                if value.starts_with("Basic ")
                    && let Ok(decoded) =
                        base64::engine::general_purpose::STANDARD.decode(credentials)
                {
                    let decoded = String::from_utf8_lossy(&decoded).into_owned();
                    if let Some((_, password)) = decoded.split_once(':') {
                        secrets.push(password.to_owned());
                    }
                }
            }
            let cookie_pairs = headers
                .get_all("cookie")
                .flat_map(|value| value.split(';'))
                // Set-Cookie: only the first pair is the cookie; the rest are attributes.
                .chain(
                    headers
                        .get_all("set-cookie")
                        .filter_map(|v| v.split(';').next()),
                );
            for pair in cookie_pairs {
                if let Some((_, v)) = pair.split_once('=') {
                    secrets.push(v.trim().to_owned());
                }
            }
        }
        let body = flow.request.body.full_bytes().unwrap_or_default();
        let body = String::from_utf8_lossy(&body);
        json_secrets(&body, &mut secrets);
        let query = flow.url().split_once('?').map_or("", |(_, q)| q);
        for pair in query.split('&').chain(body.split('&')) {
            if let Some((name, value)) = pair.split_once('=')
                && redact::is_secret_key(&redact::decode_component(name))
            {
                secrets.push(value.to_owned());
                secrets.push(redact::decode_component(value));
            }
        }
    }
    // Cookie attributes ("Path=/") and tiny values are not secrets worth a search.
    secrets.retain(|s| s.len() >= 6);
    secrets.sort();
    secrets.dedup();
    secrets
}

#[test]
fn the_default_har_contains_no_secret_of_the_capture() {
    for (name, flows) in common::all_inputs() {
        let secrets = secrets_of(&flows);
        let (_, har) = har_json(&flows, &ExportOptions::default());
        let text = serde_json::to_string(&har).expect("json");
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{name}: HAR leaks {secret:.24}…"
            );
        }
        // And with --include-secrets the ones spelled out in the capture are
        // all there: the search above can find them.
        let capture = serde_json::to_string(&flows).expect("json");
        let (_, kept) = har_json(
            &flows,
            &ExportOptions {
                include_secrets: true,
                ..ExportOptions::default()
            },
        );
        let kept = serde_json::to_string(&kept).expect("json");
        for secret in secrets.iter().filter(|s| capture.contains(s.as_str())) {
            let spelled = serde_json::to_string(secret).expect("json");
            let spelled = &spelled[1..spelled.len() - 1];
            assert!(
                kept.contains(spelled),
                "{name}: --include-secrets lost {secret:.24}…"
            );
        }
    }
}

#[test]
fn the_reference_sequences_hold_the_secrets_the_redaction_test_looks_for() {
    let secrets = secrets_of(&common::dockerd_sequences());
    assert!(secrets.iter().any(|s| s == regtap_fixtures::PASSWORD));
    assert!(secrets.iter().any(|s| s == regtap_fixtures::REFRESH_TOKEN));
    assert!(secrets.iter().any(|s| s.starts_with("eyJ")), "tokens");
}

#[test]
fn redacted_tokens_correlate_by_fingerprint() {
    let flows = common::dockerd_sequences();
    let (_, har) = har_json(&flows, &ExportOptions::default());
    let entries = entries(&har);
    // The login's token response and the ping that carries it.
    let token_body: Value = serde_json::from_str(
        entries[1]["response"]["content"]["text"]
            .as_str()
            .expect("token response text"),
    )
    .expect("token JSON");
    let fingerprint = token_body["token"].as_str().expect("token field");
    assert!(fingerprint.starts_with("<redacted hmac:"), "{fingerprint}");
    let authorization = entries[2]["request"]["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .find(|h| h["name"] == "Authorization")
        .expect("Authorization sent");
    assert_eq!(authorization["value"], format!("Bearer {fingerprint}"));
    // The decoder's annotations name the token by the same fingerprint.
    assert_eq!(entries[2]["_regtap"]["bearer"]["fingerprint"], fingerprint);
    assert!(
        entries[2]["_regtap"]["annotations"]
            .as_array()
            .expect("annotations")
            .iter()
            .any(|a| a["text"].as_str().is_some_and(|t| t.contains(fingerprint))),
        "{}",
        entries[2]["_regtap"]
    );
    // The decoded claims stay: scopes are not credentials.
    assert_eq!(
        entries[4]["_regtap"]["token"]["jwt"]["claims"]["access"][0]["name"],
        "lab/seq"
    );
}

#[test]
fn redact_claims_drops_decoded_claims_and_identifying_values() {
    let flows = common::dockerd_sequences();
    let (_, har) = har_json(
        &flows,
        &ExportOptions {
            redact_claims: true,
            ..ExportOptions::default()
        },
    );
    // The tokens' identifying claims (regtap_fixtures::jwt: subject alice,
    // ids jti-…) are nowhere in what regtap adds; URLs keep the account.
    let annotations: String = entries(&har)
        .iter()
        .map(|e| format!("{} {}", e["_regtap"], e["comment"]))
        .collect();
    assert!(!annotations.contains("jti-"), "token id");
    assert!(!annotations.contains("alice"), "subject");
    assert_eq!(
        entries(&har)[4]["_regtap"]["token"]["jwt"]["claims"],
        "<redacted claim>"
    );
}

// ---------------------------------------------------------------- contents

#[test]
fn operations_become_pages_and_steps_become_comments() {
    let flows = common::dockerd_sequences();
    let (analysis, har) = har_json(&flows, &ExportOptions::default());
    let pages = har["log"]["pages"].as_array().expect("pages");
    assert_eq!(pages.len(), analysis.operations.len());
    let titles: Vec<&str> = pages.iter().filter_map(|p| p["title"].as_str()).collect();
    assert!(titles.contains(&"push lab/seq:latest"), "{titles:?}");
    for entry in entries(&har) {
        let id = entry["_regtap"]["capture"]["flow_id"]
            .as_u64()
            .expect("flow id");
        let operation = analysis
            .operations
            .iter()
            .find(|o| o.flow_ids.contains(&id));
        match operation {
            Some(operation) => {
                assert_eq!(entry["pageref"], format!("operation-{}", operation.index));
                let step = operation
                    .steps
                    .iter()
                    .find(|s| s.flow_ids.contains(&id))
                    .expect("every flow of an operation is in a step");
                assert_eq!(entry["comment"], step.explanation.as_str());
            }
            None => assert!(entry.get("pageref").is_none()),
        }
        let label = analysis.flow(id).expect("analysed").kind.label();
        assert_eq!(entry["_regtap"]["kind"], label);
    }
}

#[test]
fn one_operation_only_and_a_missing_operation_is_an_error() {
    let flows = common::dockerd_sequences();
    let analysis = analyze(&flows, &Options::default());
    let second = &analysis.operations[1];
    let exported = export(
        &flows,
        &analysis,
        &ExportOptions {
            operation: Some(second.index),
            ..ExportOptions::default()
        },
    )
    .expect("export");
    assert_eq!(exported.har.log.pages.len(), 1);
    assert_eq!(exported.har.log.pages[0].title, second.title);
    assert_eq!(exported.har.log.entries.len(), second.flow_ids.len());
    let missing = analysis.operations.len() + 1;
    assert_eq!(
        export(
            &flows,
            &analysis,
            &ExportOptions {
                operation: Some(missing),
                ..ExportOptions::default()
            }
        )
        .err(),
        Some(ExportError::NoSuchOperation {
            requested: missing,
            available: analysis.operations.len()
        })
    );
}

#[test]
fn timings_are_real_and_time_is_their_sum() {
    let flows = common::dockerd_sequences();
    let (_, har) = har_json(&flows, &ExportOptions::default());
    let mut previous = time::OffsetDateTime::UNIX_EPOCH;
    for (entry, flow) in entries(&har).iter().zip(&flows) {
        let t = &entry["timings"];
        for unknown in ["blocked", "dns", "connect", "ssl"] {
            assert_eq!(t[unknown], -1.0);
        }
        // FlowBuilder: request ends 0.1 ms in, head at 0.5 ms, end at 0.6 ms.
        assert_eq!(t["send"], 0.1);
        assert_eq!(t["wait"], 0.4);
        assert_eq!(t["receive"], 0.1);
        let sum: f64 = ["send", "wait", "receive"]
            .iter()
            .filter_map(|k| t[k].as_f64())
            .sum();
        assert!((entry["time"].as_f64().expect("time") - sum).abs() < 1e-9);
        let started = entry["startedDateTime"].as_str().expect("started");
        assert!(started.ends_with('Z'), "{started}");
        let at =
            time::OffsetDateTime::parse(started, &time::format_description::well_known::Rfc3339)
                .expect("RFC 3339");
        assert_eq!(
            at.unix_timestamp_nanos(),
            i128::from(flow.timing.request_start)
        );
        assert!(at >= previous, "entries in time order");
        previous = at;
        assert_eq!(entry["serverIPAddress"], "127.0.0.1");
        assert_eq!(
            entry["connection"],
            flow.client_addr.as_deref().expect("client")
        );
    }
}

#[test]
fn blob_bodies_are_described_and_written_with_bodies_dir() {
    let flows = common::dockerd_sequences();
    let analysis = analyze(&flows, &Options::default());
    let options = ExportOptions {
        bodies_dir: Some("out/bodies".to_owned()),
        ..ExportOptions::default()
    };
    let exported = export(&flows, &analysis, &options).expect("export");
    let har = serde_json::to_value(&exported.har).expect("json");
    let patch = entries(&har)
        .iter()
        .find(|e| e["request"]["method"] == "PATCH")
        .expect("a PATCH");
    let post = &patch["request"]["postData"];
    assert_eq!(post["text"], "", "blob bytes are never pasted");
    assert_eq!(post["mimeType"], "application/octet-stream");
    let size = patch["request"]["bodySize"].as_i64().expect("size");
    let sha = post["_sha256"].as_str().expect("sha");
    assert!(
        post["comment"]
            .as_str()
            .expect("described")
            .starts_with(&format!("{size} bytes, sha256:{sha}"))
    );
    // The bytes are in the capture: written once, referenced by hash.
    assert_eq!(post["_file"], format!("out/bodies/sha256/{sha}"));
    assert!(exported.bodies.iter().any(|b| b.sha256 == sha));

    // Inline binary bytes are written and referenced.
    let mut flows = flows;
    let blob = vec![0x1f_u8, 0x8b, 0x08, 0x00, 0xff, 0xfe];
    flows[0].request.body = regtap_capture::Body::from_bytes(&blob);
    flows[0]
        .request
        .headers
        .push("Content-Type", "application/octet-stream");
    let stored = regtap_capture::Body {
        size: 262_435,
        sha256: Some("ab".repeat(32)),
        kept: regtap_capture::Kept::Prefix {
            data: None,
            reason: regtap_capture::TruncationReason::SizeLimit,
        },
        elsewhere: Some(regtap_capture::Elsewhere::BodyStore(format!(
            "sha256/{}",
            "ab".repeat(32)
        ))),
        ended: regtap_capture::Ending::Complete,
    };
    flows[1].response.as_mut().expect("response").body = stored;
    flows[1].response.as_mut().expect("response").headers = Default::default();
    flows[1]
        .response
        .as_mut()
        .expect("response")
        .headers
        .push("Content-Type", "application/octet-stream");
    let exported = export(&flows, &analyze(&flows, &Options::default()), &options).expect("export");
    let har = serde_json::to_value(&exported.har).expect("json");
    let sha = regtap_capture::sha256_hex(&blob);
    assert_eq!(
        entries(&har)[0]["request"]["postData"]["_file"],
        format!("out/bodies/sha256/{sha}")
    );
    assert_eq!(
        entries(&har)[1]["response"]["content"]["_file"],
        format!("out/bodies/sha256/{}", "ab".repeat(32))
    );
    assert!(
        exported
            .bodies
            .iter()
            .any(|b| b.sha256 == sha && b.source == BodySource::Inline(blob.clone()))
    );
    assert!(
        exported
            .bodies
            .iter()
            .any(|b| b.source == BodySource::Stored(format!("sha256/{}", "ab".repeat(32))))
    );
}

#[test]
fn text_bodies_are_inline() {
    let flows = common::dockerd_sequences();
    let (_, har) = har_json(&flows, &ExportOptions::default());
    let manifest_put = entries(&har)
        .iter()
        .find(|e| {
            e["request"]["method"] == "PUT"
                && e["request"]["url"]
                    .as_str()
                    .is_some_and(|u| u.contains("/manifests/"))
        })
        .expect("a manifest PUT");
    let text = manifest_put["request"]["postData"]["text"]
        .as_str()
        .expect("manifest inline");
    let manifest: Value = serde_json::from_str(text).expect("the manifest as sent");
    assert_eq!(manifest["schemaVersion"], 2);
    let challenge = &entries(&har)[0]["response"]["content"];
    assert!(
        challenge["text"]
            .as_str()
            .expect("error JSON inline")
            .contains("UNAUTHORIZED")
    );
}

// ---------------------------------------------------------------- round trip

fn operations_digest(analysis: &Analysis) -> Vec<String> {
    analysis
        .operations
        .iter()
        .flat_map(|op| {
            std::iter::once(format!("{} {:?}", op.title, op.status)).chain(
                op.steps
                    .iter()
                    .map(|s| format!("  {} {} {:?}", s.number, s.explanation, s.flow_ids)),
            )
        })
        .collect()
}

#[test]
fn capture_to_har_with_secrets_and_back_gives_the_same_operations_and_steps() {
    for (name, flows) in common::all_inputs() {
        let analysis = analyze(&flows, &Options::default());
        let options = ExportOptions {
            include_secrets: true,
            ..ExportOptions::default()
        };
        let exported = export(&flows, &analysis, &options).expect("export");
        let bytes = serde_json::to_vec(&exported.har).expect("json");
        let imported = import(&bytes).expect("regtap's own HAR imports");
        assert_eq!(imported.flows.len(), flows.len(), "{name}");
        // A capture lists flows as they finished; a HAR as they started.
        let mut by_start: Vec<&Flow> = flows.iter().collect();
        by_start.sort_by_key(|f| (f.timing.request_start, f.id));
        for (back, original) in imported.flows.iter().zip(by_start) {
            assert_eq!(back.id, original.id, "{name}");
            assert_eq!(back.request.url, original.request.url, "{name}");
            assert_eq!(back.request.headers, original.request.headers, "{name}");
            assert_eq!(back.timing, original.timing, "{name}");
            assert_eq!(back.status(), original.status(), "{name}");
            assert_eq!(back.client_addr, original.client_addr, "{name}");
            assert_eq!(back.server_addr, original.server_addr, "{name}");
            assert_eq!(back.error, original.error, "{name}");
            assert_eq!(back.reverse, original.reverse, "{name}");
            assert_eq!(back.request.body.size, original.request.body.size, "{name}");
            assert_eq!(
                back.request.body.sha256, original.request.body.sha256,
                "{name}"
            );
        }
        let again = analyze(&imported.flows, &Options::default());
        // Blob bytes are described in a HAR, not carried: an upload in
        // several chunks whose bytes the capture held (and hashed whole) can
        // only be "not verifiable" after the round trip. Everything else
        // must come back the same.
        let mut original = analysis.clone();
        let mut again = again;
        for (before, after) in original.sessions.iter_mut().zip(again.sessions.iter_mut()) {
            let chunks = before.chunks.iter().filter(|c| c.bytes > 0).count();
            if chunks > 1
                && before.digest_check != after.digest_check
                && matches!(&after.digest_check, DigestCheck::NotVerifiable { reason } if reason.contains("not in the capture"))
            {
                after.digest_check = before.digest_check.clone();
                for operation in &mut again.operations {
                    for step in &mut operation.steps {
                        if step.flow_ids == before.flow_ids {
                            step.explanation = "an upload whose bytes the HAR describes".to_owned();
                        }
                    }
                }
                for operation in &mut original.operations {
                    for step in &mut operation.steps {
                        if step.flow_ids == before.flow_ids {
                            step.explanation = "an upload whose bytes the HAR describes".to_owned();
                        }
                    }
                }
            }
        }
        assert_eq!(
            operations_digest(&again),
            operations_digest(&original),
            "{name}"
        );
        assert_eq!(again.sessions, original.sessions, "{name}");
    }
}

#[test]
fn every_error_stage_survives_the_round_trip() {
    use regtap_capture::{ErrorStage, FlowError, factory::FlowBuilder};
    let stages = [
        ErrorStage::ClientTls,
        ErrorStage::RequestHeadTimeout,
        ErrorStage::ResponseTimeout,
        ErrorStage::ProxyStopped,
    ];
    let flows: Vec<Flow> = stages
        .iter()
        .zip(1..)
        .map(|(stage, id)| {
            FlowBuilder::new(id, "GET", "https://r.test/v2/")
                .error(FlowError {
                    stage: *stage,
                    message: format!("{stage:?}"),
                })
                .build()
        })
        .collect();
    let (_, har) = har_json(&flows, &ExportOptions::default());
    let imported = import(&serde_json::to_vec(&har).expect("json")).expect("import");
    let back: Vec<ErrorStage> = imported
        .flows
        .iter()
        .filter_map(|f| f.error.as_ref().map(|e| e.stage))
        .collect();
    assert_eq!(back, stages);
}

#[test]
fn bodies_dir_paths_are_under_sha256() {
    // The path the entry references is where the binary writes the file.
    let dir = Path::new("x/");
    let options = ExportOptions {
        bodies_dir: Some(dir.display().to_string()),
        ..ExportOptions::default()
    };
    let mut flows = common::dockerd_sequences();
    flows.truncate(1);
    flows[0].request.body = regtap_capture::Body::from_bytes(&[0xff, 0x00]);
    let exported = export(&flows, &analyze(&flows, &Options::default()), &options).expect("export");
    let sha = regtap_capture::sha256_hex(&[0xff, 0x00]);
    assert_eq!(
        exported.har.log.entries[0]
            .request
            .post_data
            .as_ref()
            .and_then(|p| p.body.file.clone()),
        Some(format!("x/sha256/{sha}"))
    );
}

#[test]
fn extreme_times_do_not_panic_and_stay_valid_numbers() {
    let mut flows = common::dockerd_sequences();
    flows.truncate(2);
    flows[0].timing.request_start = i64::MIN;
    flows[0].timing.request_end = Some(i64::MAX);
    flows[1].timing.response_head = Some(i64::MIN);
    let (_, har) = har_json(&flows, &ExportOptions::default());
    for entry in entries(&har) {
        assert!(
            entry["time"].as_f64().is_some_and(f64::is_finite),
            "{}",
            entry["time"]
        );
    }
}

// ---------------------------------------------------------------- streaming

/// Redacted, with JWT claims redacted too, and with secrets kept; one salt,
/// so that two exports can be compared byte for byte.
fn every_redaction() -> [ExportOptions; 3] {
    [
        ExportOptions::default(),
        ExportOptions {
            redact_claims: true,
            ..ExportOptions::default()
        },
        ExportOptions {
            include_secrets: true,
            ..ExportOptions::default()
        },
    ]
    .map(|options| ExportOptions {
        salt: Salt::from_bytes([0x5a; 16]),
        ..options
    })
}

/// `export_to` writes, entry by entry, the document `export` builds: byte
/// for byte, redacted or not, for every input.
#[test]
fn the_streamed_har_is_the_built_har() {
    for (name, flows) in &common::all_inputs() {
        let analysis = analyze(flows, &Options::default());
        for options in every_redaction() {
            let built = export(flows, &analysis, &options).expect("export");
            let mut expected = serde_json::to_vec_pretty(&built.har).expect("json");
            expected.push(b'\n');
            let mut streamed = Vec::new();
            let written =
                regtap_har::export_to(flows, &analysis, &options, &mut streamed, |_| true)
                    .expect("export_to");
            assert_eq!(
                String::from_utf8_lossy(&streamed),
                String::from_utf8_lossy(&expected),
                "{name}"
            );
            assert_eq!(written.entries, built.har.log.entries.len(), "{name}");
            assert_eq!(written.pages, built.har.log.pages.len(), "{name}");
        }
    }
}

/// With `--bodies`, each distinct body is handed over once, and an entry
/// never references a body that could not be written.
#[test]
fn the_streamed_har_references_only_bodies_written() {
    let mut flows = common::dockerd_sequences();
    let blob = vec![0x1f_u8, 0x8b, 0x08, 0x00, 0xff, 0xfe];
    let other = vec![0x1f_u8, 0x8b, 0x08, 0x01];
    for (i, bytes) in [(0, &blob), (1, &blob), (2, &other)] {
        flows[i].request.body = regtap_capture::Body::from_bytes(bytes);
        flows[i]
            .request
            .headers
            .push("Content-Type", "application/octet-stream");
    }
    let analysis = analyze(&flows, &Options::default());
    let options = ExportOptions {
        bodies_dir: Some("out".to_owned()),
        ..ExportOptions::default()
    };
    let refused = regtap_capture::sha256_hex(&other);
    let mut asked = Vec::new();
    let mut streamed = Vec::new();
    let written = regtap_har::export_to(&flows, &analysis, &options, &mut streamed, |body| {
        asked.push(body.sha256.clone());
        body.sha256 != refused
    })
    .expect("export_to");
    // The fixtures' uploads carry bodies of their own: each distinct body is
    // asked for once, the blob and the refused one among them.
    let mut distinct = asked.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        asked.len(),
        "a body was asked for twice: {asked:?}"
    );
    let blob_sha = regtap_capture::sha256_hex(&blob);
    assert!(
        asked.contains(&blob_sha) && asked.contains(&refused),
        "{asked:?}"
    );
    assert_eq!(written.bodies, asked.len() - 1);
    let har: Value = serde_json::from_slice(&streamed).expect("json");
    let files: Vec<&str> = entries(&har)
        .iter()
        .flat_map(|e| {
            [
                &e["request"]["postData"]["_file"],
                &e["response"]["content"]["_file"],
            ]
        })
        .filter_map(Value::as_str)
        .collect();
    let kept = format!("out/sha256/{blob_sha}");
    assert_eq!(files.iter().filter(|f| **f == kept).count(), 2, "{files:?}");
    assert!(
        files.iter().all(
            |f| asked.iter().any(|a| *f == format!("out/sha256/{a}")) && !f.ends_with(&refused)
        ),
        "{files:?}"
    );
    assert!(!String::from_utf8_lossy(&streamed).contains(&format!("sha256/{refused}")));
}

/// `regtap har` does not hold a capture's flows: the decoder gets them
/// without the first bytes of bodies not kept whole, and the export reads
/// each flow again from its line when it needs it. The analysis and the HAR
/// are the ones the flows held in memory give, byte for byte, redacted or
/// not, for every capture.
#[test]
fn flows_read_again_from_their_lines_export_the_same_har() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../captures");
    for (name, flows) in regtap_fixtures::captures() {
        let path = dir.join(format!("{name}.jsonl"));
        let mut reader = CaptureReader::open(&path).expect("capture");
        let mut listing = Vec::new();
        let mut sources = Vec::new();
        let mut analyzer = Analyzer::new(Options::default());
        while let Some(record) = reader.next_located_flow() {
            let (mut flow, location) = record.expect("flow");
            listing.push(Listed::of(&flow));
            match location {
                Some(location) => {
                    sources.push(Err(location));
                    // As `regtap har` does: the decoder never reads a prefix.
                    flow.forget_body_prefixes();
                    analyzer.push_owned(flow);
                }
                None => {
                    analyzer.push(&flow);
                    sources.push(Ok(flow));
                }
            }
        }
        let analysis = analyzer.finish();
        assert_eq!(analysis, analyze(&flows, &Options::default()), "{name}");
        for options in every_redaction() {
            let mut expected = Vec::new();
            regtap_har::export_to(&flows, &analysis, &options, &mut expected, |_| true)
                .expect("export_to");
            let mut lines = FlowLines::open(&path).expect("capture");
            let mut streamed = Vec::new();
            let fetch = |i: usize| match &sources[i] {
                Ok(held) => Ok(Cow::Borrowed(held)),
                Err(location) => lines.read(location).map(Cow::Owned),
            };
            let written = export_flows(&listing, fetch, &analysis, &options, &mut streamed, |_| {
                true
            })
            .expect("export_flows");
            assert_eq!(
                String::from_utf8_lossy(&streamed),
                String::from_utf8_lossy(&expected),
                "{name}"
            );
            assert_eq!(written.entries, flows.len(), "{name}");
        }
    }
}

/// A flow that cannot be read again stops the export with the reader's
/// reason, whether it is needed to learn credentials or to write its entry.
#[test]
fn a_flow_that_cannot_be_read_again_fails_the_export_with_its_reason() {
    let flows = common::dockerd_sequences();
    let analysis = analyze(&flows, &Options::default());
    let listing: Vec<Listed> = flows.iter().map(Listed::of).collect();
    for include_secrets in [false, true] {
        let options = ExportOptions {
            include_secrets,
            ..ExportOptions::default()
        };
        let fetch = |i: usize| {
            if i == 1 {
                Err(CaptureError::Changed {
                    path: "c.jsonl".into(),
                    line: 3,
                })
            } else {
                Ok(Cow::Borrowed(&flows[i]))
            }
        };
        let result = export_flows(&listing, fetch, &analysis, &options, Vec::new(), |_| true);
        match result {
            Err(ExportToError::Read(CaptureError::Changed { line: 3, .. })) => {}
            other => panic!("include_secrets {include_secrets}: {other:?}"),
        }
        // Read by another thread than the writer's, in the first pass or for the entry.
        let result = regtap_har::export_flows_in_parallel(
            &listing,
            || fetch,
            &analysis,
            &options,
            regtap_har::Parallelism {
                threads: 2,
                batch: 1,
            },
            Vec::new(),
            |_| true,
        );
        match result {
            Err(ExportToError::Read(CaptureError::Changed { line: 3, .. })) => {}
            other => panic!("in parallel, include_secrets {include_secrets}: {other:?}"),
        }
    }
}

/// Several threads, each with its own reader, build the HAR that one
/// thread streams: byte for byte, redacted or not, with bodies written or
/// refused, for every capture read again from its lines and every input
/// held, in batches small enough that every thread builds several.
#[test]
fn the_har_built_in_parallel_is_the_streamed_har() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../captures");
    let captures: Vec<(String, Vec<Flow>)> = common::all_inputs();
    let mut compared = 0;
    for (name, flows) in &captures {
        let analysis = analyze(flows, &Options::default());
        let listing: Vec<Listed> = flows.iter().map(Listed::of).collect();
        let path = dir.join(format!("{name}.jsonl"));
        // Capture files are read again from their lines, as `regtap har` does.
        let locations: Option<Vec<_>> = path.exists().then(|| {
            let mut reader = CaptureReader::open(&path).expect("capture");
            std::iter::from_fn(|| reader.next_located_flow())
                .map(|record| record.expect("flow").1.expect("a line"))
                .collect()
        });
        let mut with_bodies = every_redaction().to_vec();
        with_bodies.push(ExportOptions {
            bodies_dir: Some("out".to_owned()),
            ..with_bodies[0].clone()
        });
        for options in with_bodies {
            // Every third distinct body is refused: its entries must not name it.
            let refuse = |body: &regtap_har::BodyToWrite| !body.sha256.starts_with(['0', '1', '2']);
            let mut expected = Vec::new();
            regtap_har::export_to(flows, &analysis, &options, &mut expected, refuse)
                .expect("export_to");
            for (threads, batch) in [(2, 1), (3, 2), (2, 7), (1, 3)] {
                let (locations, path) = (&locations, &path);
                let reader = || {
                    let mut lines = None;
                    move |i: usize| match locations {
                        Some(locations) => {
                            let lines = match &mut lines {
                                Some(lines) => lines,
                                None => lines.insert(FlowLines::open(path)?),
                            };
                            lines.read(&locations[i]).map(Cow::Owned)
                        }
                        None => Ok(Cow::Borrowed(&flows[i])),
                    }
                };
                let mut built = Vec::new();
                let written = regtap_har::export_flows_in_parallel(
                    &listing,
                    reader,
                    &analysis,
                    &options,
                    regtap_har::Parallelism { threads, batch },
                    &mut built,
                    refuse,
                )
                .expect("export_flows_in_parallel");
                assert_eq!(
                    String::from_utf8_lossy(&built),
                    String::from_utf8_lossy(&expected),
                    "{name}, {threads} threads, batches of {batch}"
                );
                assert_eq!(written.entries, flows.len(), "{name}");
                compared += 1;
            }
        }
    }
    assert!(compared >= 4 * 4 * 5, "{compared} exports compared");
}

/// A page may name a token that only an earlier page's redaction learned
/// (here: a JWT quoted in an error message, which the decoder's prose of
/// another operation names by its decoder fingerprint). Built in
/// parallel, the later page's batch did not know the name: it is built
/// again after the earlier one, and the HAR is the one thread's.
#[test]
fn a_page_naming_a_token_an_earlier_page_taught_is_redacted_as_in_order() {
    let mut flows = common::dockerd_sequences();
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvbmx5LWluLWFuLWVycm9yIn0.c2lnbmF0dXJlLXg";
    let decoder_name = &regtap_capture::sha256_hex(jwt.as_bytes())[..12];
    // Exchanges that broke, with hosts that are no registry: an operation each.
    for (i, host, message) in [
        (
            1,
            "a.elsewhere.test",
            format!("upstream refused the token {jwt}"),
        ),
        (
            flows.len() - 1,
            "b.elsewhere.test",
            format!("the token {decoder_name} was refused again"),
        ),
    ] {
        let mut flow = flows[i].clone();
        flow.id = 1000 + i as u64;
        flow.request.url = format!("https://{host}/status");
        flow.response = None;
        flow.error = Some(regtap_capture::FlowError {
            stage: regtap_capture::ErrorStage::Connect,
            message,
        });
        flows.push(flow);
    }
    let analysis = analyze(&flows, &Options::default());
    let listing: Vec<Listed> = flows.iter().map(Listed::of).collect();
    let options = every_redaction()[0].clone();
    let mut expected = Vec::new();
    regtap_har::export_to(&flows, &analysis, &options, &mut expected, |_| true).expect("export_to");
    let har: Value = serde_json::from_slice(&expected).expect("json");
    let print = redact::Redactor::new(options.salt.clone()).fingerprint(jwt);
    let comments: Vec<&str> = har["log"]["pages"]
        .as_array()
        .expect("pages")
        .iter()
        .filter_map(|page| page["comment"].as_str())
        .collect();
    let taught = comments
        .iter()
        .position(|c| c.contains(&format!("refused the token {print}")));
    let named = comments
        .iter()
        .position(|c| c.contains(&format!("the token {print} was refused again")));
    assert!(
        matches!((taught, named), (Some(t), Some(n)) if t < n),
        "{comments:#?}"
    );
    assert!(!String::from_utf8_lossy(&expected).contains(jwt));
    for threads in [2, 3] {
        let mut built = Vec::new();
        regtap_har::export_flows_in_parallel(
            &listing,
            || |i: usize| Ok(Cow::Borrowed(&flows[i])),
            &analysis,
            &options,
            regtap_har::Parallelism { threads, batch: 1 },
            &mut built,
            |_| true,
        )
        .expect("export_flows_in_parallel");
        assert_eq!(
            String::from_utf8_lossy(&built),
            String::from_utf8_lossy(&expected),
            "{threads} threads"
        );
    }
}
