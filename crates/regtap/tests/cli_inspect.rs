//! `regtap inspect` over several captures at once, and its filters, through
//! the binary.

use std::process::{Command, Output};

fn regtap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_regtap"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env_remove("REGTAP_REGISTRY_SECRET")
        .output()
        .expect("regtap runs")
}

fn json(args: &[&str]) -> serde_json::Value {
    let output = regtap(args);
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("JSON")
}

fn titles(json: &serde_json::Value) -> Vec<String> {
    json["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| format!("{}. {}", o["index"], o["title"].as_str().unwrap()))
        .collect()
}

/// `inspect` decodes a capture on several threads, handed batches of flows
/// in turn: its document is the library's analysis of the whole file, for
/// a capture of many batches (1347 flows of a conformance run).
#[test]
fn json_of_a_capture_decoded_on_several_threads_is_the_whole_analysis() {
    let path = "captures/conformance-ggcr.jsonl";
    let printed = json(&["inspect", "--json", path]);
    let file = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join(path);
    let flows: Vec<regtap_capture::Flow> = regtap_capture::CaptureReader::open(&file)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(flows.len() > 1000, "{} flows", flows.len());
    let analysis = regtap_decode::analyze(&flows, &regtap_decode::Options::default());
    let mut whole = serde_json::to_value(&analysis).unwrap();
    whole["schema_version"] = printed["schema_version"].clone();
    regtap_har::redact::Redactor::new(regtap_har::redact::Salt::random()).analysis(&mut whole);
    assert_eq!(printed["flows"].as_array().unwrap().len(), flows.len());
    assert!(printed == whole, "inspect --json differs from analyze()");
}

/// Three captures of one lab session: merged in time order (the login that
/// succeeded ran before the pull), every id unique, the renumbering said.
#[test]
fn several_captures_are_one_timeline_with_unique_ids() {
    let files = [
        "captures/login-failed.jsonl",
        "captures/pull.jsonl",
        "captures/login.jsonl",
    ];
    let mut args = vec!["inspect", "--json"];
    args.extend(files);
    let output = regtap(&args);
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("captures/login-failed.jsonl: #1–#2 keep their ids"),
        "{stderr}"
    );
    assert!(
        stderr.contains("captures/pull.jsonl: #1–#8 are #3–#10 here"),
        "{stderr}"
    );
    assert!(
        stderr.contains("captures/login.jsonl: #1–#3 are #11–#13 here"),
        "{stderr}"
    );

    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut ids: Vec<u64> = json["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["flow_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 13);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids, (1..=13).collect::<Vec<u64>>());
    assert_eq!(
        titles(&json),
        [
            "1. login registry.test:37655",
            "2. login registry.test:37655",
            "3. pull lab/app:latest"
        ]
    );
    let starts: Vec<i64> = json["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["start_ns"].as_i64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
    // The second login is the one of login.jsonl, renumbered.
    assert_eq!(
        json["operations"][1]["flow_ids"],
        serde_json::json!([11, 12, 13])
    );
}

#[test]
fn filters_choose_operations() {
    let failed = json(&[
        "inspect",
        "--json",
        "--failed",
        "captures/login-failed.jsonl",
        "captures/pull.jsonl",
    ]);
    assert_eq!(titles(&failed), ["1. login registry.test:37655"]);
    assert_eq!(failed["flows"].as_array().unwrap().len(), 2);

    let skopeo = json(&[
        "inspect",
        "--json",
        "--client",
        "skopeo",
        "captures/parallel-clients.jsonl",
    ]);
    assert_eq!(titles(&skopeo), ["3. pull lab/par-skopeo:v1"]);

    let repo = json(&[
        "inspect",
        "--json",
        "--repository",
        "lab/par-b",
        "captures/parallel-clients.jsonl",
    ]);
    assert_eq!(titles(&repo), ["2. push lab/par-b:v1"]);

    let text = regtap(&[
        "inspect",
        "--color",
        "never",
        "--operation",
        "2",
        "captures/crane.jsonl",
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.starts_with("9 flows, 1 operation"), "{text}");
    assert!(
        text.contains("\n2. copy crane/img:1 → crane/copy:2 · "),
        "{text}"
    );

    let none = json(&["inspect", "--json", "--failed", "captures/pull.jsonl"]);
    assert!(titles(&none).is_empty());
}

#[test]
fn a_missing_capture_among_several_is_named() {
    let output = regtap(&["inspect", "captures/pull.jsonl", "captures/no-such.jsonl"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("captures/no-such.jsonl"), "{stderr}");
}

/// Every field `inspect --json` writes over the sample captures is in
/// docs/inspect-json.md, under the schema version the document names.
#[test]
fn every_field_of_inspect_json_is_documented() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/inspect-json.md")).expect("the schema");
    let documented: std::collections::BTreeSet<String> = doc
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(path, _)| path.to_owned())
        .collect();
    let mut captures: Vec<String> = std::fs::read_dir(root.join("captures"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "jsonl"))
        .map(|path| format!("captures/{}", path.file_name().unwrap().to_str().unwrap()))
        .collect();
    captures.sort();
    let mut args = vec!["inspect", "--json"];
    args.extend(captures.iter().map(String::as_str));
    let output = json(&args);
    assert_eq!(output["schema_version"], "1");
    assert!(doc.contains("(a string, now `\"1\"`)"));

    let mut seen = std::collections::BTreeSet::new();
    walk(&output, "", &documented, &mut seen);
    let undocumented: Vec<&String> = seen.iter().filter(|p| !documented.contains(*p)).collect();
    assert!(
        undocumented.is_empty(),
        "fields of inspect --json missing from docs/inspect-json.md: {undocumented:#?}"
    );
    assert!(seen.len() > 150, "only {} fields seen", seen.len());
}

/// Collects the paths of `value`'s keys (`flows[].kind.type`), not entering
/// the objects the schema documents as maps (`path{}`).
fn walk(
    value: &serde_json::Value,
    path: &str,
    documented: &std::collections::BTreeSet<String>,
    seen: &mut std::collections::BTreeSet<String>,
) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let map_path = format!("{child_path}{{}}");
                if documented.contains(&map_path) {
                    seen.insert(map_path);
                    continue;
                }
                walk(child, &child_path, documented, seen);
                seen.insert(child_path);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                walk(item, &format!("{path}[]"), documented, seen);
            }
        }
        _ => {}
    }
}
