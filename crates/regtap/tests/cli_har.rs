//! `regtap har`, and HAR files as input to `regtap inspect`, through the binary.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use regtap_capture::factory::FlowBuilder;
use regtap_capture::{
    Body, CaptureHeader, CaptureWriter, Data, Elsewhere, Ending, InFlightRecord, Kept,
    TruncationReason, sha256_hex,
};

fn regtap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_regtap"))
        .args(args)
        .env_remove("REGTAP_REGISTRY_SECRET")
        .output()
        .expect("regtap runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../regtap-har/tests/fixtures")
        .join(path)
}

const PASSWORD: &str = "cli-test-password-7781";
const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjbGkifQ.c2lnbmF0dXJl";

/// A small push: token, an upload whose PATCH body is in the capture, and a
/// blob GET whose body is only in the body store.
fn write_capture(dir: &Path) -> (PathBuf, Vec<u8>, String) {
    let store = dir.join("store");
    let layer: Vec<u8> = (0..2048u32).map(|i| (i * 31 % 251) as u8).collect();
    let layer_hex = sha256_hex(&layer);
    let stored_bytes = b"stored blob bytes".repeat(100);
    let stored_hex = sha256_hex(&stored_bytes);
    std::fs::create_dir_all(store.join("sha256")).expect("store dir");
    std::fs::write(store.join("sha256").join(&stored_hex), &stored_bytes).expect("stored body");

    let basic = format!("Basic {}", base64_of(&format!("alice:{PASSWORD}")));
    let bearer = format!("Bearer {TOKEN}");
    let reg = "https://registry.test:5000";
    let upload = "/v2/lab/app/blobs/uploads/5eed0001-3a56-46e5-9512-f5c9559f2179";
    let token_body = format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#);
    let stored_body = Body {
        size: stored_bytes.len() as u64,
        sha256: Some(stored_hex.clone()),
        kept: Kept::Prefix {
            data: Some(Data::from_bytes(&stored_bytes[..64])),
            reason: TruncationReason::SizeLimit,
        },
        elsewhere: Some(Elsewhere::BodyStore(format!("sha256/{stored_hex}"))),
        ended: Ending::Complete,
    };
    let mut blob_get = FlowBuilder::new(
        7,
        "GET",
        &format!("{reg}/v2/lab/app/blobs/sha256:{stored_hex}"),
    )
    .request_header("Authorization", &bearer)
    .status(200)
    .response_header("Content-Type", "application/octet-stream")
    .build();
    if let Some(response) = blob_get.response.as_mut() {
        response.body = stored_body;
    }
    let flows = vec![
        FlowBuilder::new(1, "GET", &format!("{reg}/v2/"))
            .status(401)
            .response_header(
                "Www-Authenticate",
                r#"Bearer realm="https://auth.test:5001/token",service="registry.test""#,
            )
            .build(),
        FlowBuilder::new(
            2,
            "GET",
            "https://auth.test:5001/token?account=alice&scope=repository%3Alab%2Fapp%3Apush%2Cpull&service=registry.test",
        )
        .request_header("Authorization", &basic)
        .status(200)
        .response_header("Content-Type", "application/json")
        .response_body(token_body.as_bytes())
        .build(),
        FlowBuilder::new(3, "POST", &format!("{reg}/v2/lab/app/blobs/uploads/"))
            .request_header("Authorization", &bearer)
            .status(202)
            .response_header("Location", upload)
            .build(),
        FlowBuilder::new(4, "PATCH", &format!("{reg}{upload}"))
            .request_header("Authorization", &bearer)
            .request_header("Content-Type", "application/octet-stream")
            .request_body(&layer)
            .status(202)
            .response_header("Location", upload)
            .response_header("Range", "0-2047")
            .build(),
        FlowBuilder::new(
            5,
            "PUT",
            &format!("{reg}{upload}?digest=sha256%3A{layer_hex}"),
        )
        .request_header("Authorization", &bearer)
        .status(201)
        .build(),
        blob_get,
    ];
    let settings = regtap_capture::CaptureSettings {
        store_bodies: Some(Some(store.display().to_string())),
        ..Default::default()
    };
    let path = dir.join("push.jsonl");
    let header = CaptureHeader::new("test", 1_700_000_000_000_000_000, settings);
    let mut writer = CaptureWriter::create(&path, &header).expect("capture");
    for flow in &flows {
        writer.append(flow).expect("append");
    }
    (path, layer, stored_hex)
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn har_writes_a_redacted_har_and_the_blob_bodies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (capture, layer, stored_hex) = write_capture(dir.path());
    let out = dir.path().join("out.har");
    let bodies = dir.path().join("bodies");
    let output = regtap(&[
        "har",
        capture.to_str().expect("utf-8"),
        "-o",
        out.to_str().expect("utf-8"),
        "--bodies",
        bodies.to_str().expect("utf-8"),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("credentials redacted"));

    let har = std::fs::read_to_string(&out).expect("HAR written");
    assert!(
        !har.contains(PASSWORD) && !har.contains(TOKEN),
        "secrets leaked"
    );
    assert!(!har.contains(&base64_of(&format!("alice:{PASSWORD}"))));
    let value: serde_json::Value = serde_json::from_str(&har).expect("JSON");
    assert_eq!(value["log"]["entries"].as_array().map(Vec::len), Some(6));

    // The PATCH bytes came from the capture, the GET's from the body store.
    let layer_file = bodies.join("sha256").join(sha256_hex(&layer));
    assert_eq!(std::fs::read(&layer_file).expect("layer written"), layer);
    let stored_file = bodies.join("sha256").join(&stored_hex);
    assert_eq!(
        sha256_hex(&std::fs::read(&stored_file).expect("stored body copied")),
        stored_hex
    );
    // Credentials inside: the HAR and the bodies are private.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&out), 0o600);
    assert_eq!(mode(&layer_file), 0o600);
    assert_eq!(mode(&stored_file), 0o600);
    assert_eq!(mode(&bodies.join("sha256")), 0o700);
    let patch = &value["log"]["entries"][3]["request"]["postData"];
    assert_eq!(
        patch["_file"],
        format!("{}/sha256/{}", bodies.display(), sha256_hex(&layer))
    );
    assert_eq!(patch["text"], "");
}

#[test]
fn a_body_that_cannot_be_written_is_not_referenced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (capture, _, stored_hex) = write_capture(dir.path());
    std::fs::remove_dir_all(dir.path().join("store")).expect("store removed");
    let out = dir.path().join("out.har");
    let bodies = dir.path().join("bodies");
    let output = regtap(&[
        "har",
        capture.to_str().expect("utf-8"),
        "-o",
        out.to_str().expect("utf-8"),
        "--bodies",
        bodies.to_str().expect("utf-8"),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("body sha256:{stored_hex} not written")),
        "{stderr}"
    );
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("HAR")).expect("JSON");
    let content = &value["log"]["entries"][5]["response"]["content"];
    assert_eq!(content["_sha256"], stored_hex.as_str());
    assert!(content.get("_file").is_none(), "{content}");
}

/// Rewrites the capture's header to name another body store.
fn point_store_at(capture: &Path, store: &str) {
    let text = std::fs::read_to_string(capture).expect("capture");
    let (header, rest) = text.split_once('\n').expect("header line");
    let mut header: serde_json::Value = serde_json::from_str(header).expect("header");
    let settings = header
        .pointer_mut("/settings")
        .and_then(serde_json::Value::as_object_mut)
        .expect("settings");
    settings.insert("store_bodies".to_owned(), store.into());
    std::fs::write(capture, format!("{header}\n{rest}")).expect("rewrite");
}

#[test]
fn a_crafted_capture_cannot_make_har_copy_other_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (capture, _, stored_hex) = write_capture(dir.path());
    let out = dir.path().join("out.har");
    let bodies = dir.path().join("bodies");
    let har = |extra: &[&str]| {
        let mut args = vec![
            "har",
            capture.to_str().expect("utf-8"),
            "-o",
            out.to_str().expect("utf-8"),
            "--bodies",
            bodies.to_str().expect("utf-8"),
        ];
        args.extend_from_slice(extra);
        regtap(&args)
    };
    let copied = bodies.join("sha256").join(&stored_hex);

    // A store outside the capture's directory is not used unless given.
    let elsewhere = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(elsewhere.path().join("sha256")).expect("dir");
    std::fs::copy(
        dir.path().join("store/sha256").join(&stored_hex),
        elsewhere.path().join("sha256").join(&stored_hex),
    )
    .expect("copy");
    point_store_at(&capture, &elsewhere.path().display().to_string());
    let output = har(&[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("outside the capture's directory: not used"),
        "{}",
        text(&output.stderr)
    );
    assert!(!copied.exists());
    let explicit = elsewhere.path().display().to_string();
    assert!(har(&["--body-store", &explicit]).status.success());
    assert!(copied.exists());
    std::fs::remove_file(&copied).expect("rm");

    // The capture's own store, but the body there is another file.
    point_store_at(&capture, "store");
    let stored = dir.path().join("store/sha256").join(&stored_hex);
    std::fs::remove_file(&stored).expect("rm");
    std::os::unix::fs::symlink("/etc/passwd", &stored).expect("symlink");
    let output = har(&[]);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("does not hold that body"), "{stderr}");
    assert!(!copied.exists());
}

#[test]
fn a_har_with_secrets_reads_back_as_the_same_analysis() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (capture, _, _) = write_capture(dir.path());
    let har = dir.path().join("with-secrets.har");
    let output = regtap(&[
        "har",
        capture.to_str().expect("utf-8"),
        "-o",
        har.to_str().expect("utf-8"),
        "--include-secrets",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("credentials INCLUDED"));
    let from_capture = regtap(&[
        "inspect",
        "--color",
        "never",
        capture.to_str().expect("utf-8"),
    ]);
    let from_har = regtap(&["inspect", "--color", "never", har.to_str().expect("utf-8")]);
    assert!(from_har.status.success(), "{}", text(&from_har.stderr));
    assert_eq!(text(&from_har.stdout), text(&from_capture.stdout));
    // regtap's own HAR is not announced as a foreign tool's.
    assert!(!text(&from_har.stderr).contains("read as a HAR written by"));
}

#[test]
fn inspect_and_har_accept_hars_from_other_tools() {
    let mitmproxy = fixture("mitmproxy/docker-push.har");
    let output = regtap(&[
        "inspect",
        "--color",
        "never",
        mitmproxy.to_str().expect("utf-8"),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("push lab/app:latest"),
        "{}",
        text(&output.stdout)
    );
    assert!(text(&output.stderr).contains("read as a HAR written by mitmproxy 11.0.2"));

    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("chrome.har");
    let chrome = fixture("chrome/registry-ui.har");
    let output = regtap(&[
        "har",
        chrome.to_str().expect("utf-8"),
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let har = std::fs::read_to_string(&out).expect("HAR");
    // The browser's Basic credentials are redacted on re-export.
    assert!(!har.contains("YWxpY2U6YnJvd3Nlci11aS1wYXNzd29yZC00Mg=="));
    assert!(har.contains("Basic <redacted hmac:"));
}

#[test]
fn unreadable_input_and_missing_operations_are_clear_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, br#"{"hello": "world"}"#).expect("junk");
    let output = regtap(&["inspect", junk.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("is neither a regtap capture") && stderr.contains("nor a HAR file"),
        "{stderr}"
    );

    let broken = dir.path().join("broken.har");
    std::fs::write(&broken, b"{\"log\": {\"entries\": [").expect("broken");
    let output = regtap(&["inspect", broken.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("invalid JSON"),
        "{}",
        text(&output.stderr)
    );

    let (capture, _, _) = write_capture(dir.path());
    let output = regtap(&[
        "har",
        capture.to_str().expect("utf-8"),
        "-o",
        dir.path().join("x.har").to_str().expect("utf-8"),
        "--operation",
        "99",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("there is no operation 99"),
        "{}",
        text(&output.stderr)
    );
}

/// An exchange the proxy never finished has no line of its own (it is
/// rebuilt from its in-flight records): `har` exports it, cut off, among the
/// flows it reads again from their lines, each in its place in time.
#[test]
fn a_cut_off_exchange_is_exported_among_the_flows_read_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (capture, _, _) = write_capture(dir.path());
    let unfinished = FlowBuilder::new(8, "GET", "https://registry.test:5000/v2/lab/app/tags/list")
        .request_header("Authorization", &format!("Bearer {TOKEN}"))
        .build();
    let start = InFlightRecord::Start(Box::new(unfinished));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&capture)
        .expect("capture");
    writeln!(file, "{}", serde_json::to_string(&start).expect("JSON")).expect("append");
    drop(file);

    let out = dir.path().join("out.har");
    let output = regtap(&[
        "har",
        capture.to_str().expect("utf-8"),
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("1 exchanges were cut off"),
        "{}",
        text(&output.stderr)
    );
    let har = std::fs::read_to_string(&out).expect("HAR written");
    assert!(!har.contains(TOKEN), "secrets leaked");
    let value: serde_json::Value = serde_json::from_str(&har).expect("JSON");
    let entries = value["log"]["entries"].as_array().expect("entries");
    let urls: Vec<&str> = entries
        .iter()
        .map(|e| e["request"]["url"].as_str().expect("url"))
        .collect();
    assert_eq!(urls.len(), 7, "{urls:?}");
    let cut = entries
        .iter()
        .find(|e| {
            e["request"]["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/tags/list"))
        })
        .expect("the cut-off exchange is exported");
    assert_eq!(cut["response"]["status"], 0);
    assert!(
        cut["_error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("cut off: proxy stopped")),
        "{cut}"
    );
    // The flows read again are whole: the PATCH's 2048 bytes are described.
    assert_eq!(entries[3]["request"]["bodySize"], 2048);
}
