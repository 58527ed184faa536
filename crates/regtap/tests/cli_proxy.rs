//! `regtap proxy` as a user starts it, for the mistakes made before any
//! traffic flows.

use std::process::Command;

#[test]
fn a_capture_in_a_missing_directory_fails_before_a_ca_is_made() {
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_regtap"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--capture",
            "/nonexistent-regtap-dir/x.jsonl",
        ])
        .env("REGTAP_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim(),
        "regtap: cannot write the capture in /nonexistent-regtap-dir: no such directory"
    );
    assert!(
        std::fs::read_dir(home.path()).unwrap().next().is_none(),
        "no CA is created for a proxy that cannot start"
    );
}

fn proxy(args: &[&str], home: &std::path::Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_regtap"))
        .arg("proxy")
        .args(args)
        .env("REGTAP_HOME", home)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    )
}

#[test]
fn reverse_mode_refuses_an_unreadable_certificate_and_an_open_listener() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("x.jsonl");
    let capture = capture.to_str().unwrap();
    let missing = dir.path().join("missing-cert.pem");
    let missing = missing.to_str().unwrap();
    let (code, stderr) = proxy(
        &[
            "--listen",
            "127.0.0.1:0",
            "--capture",
            capture,
            "--reverse",
            "https://registry.internal:5000",
            "--cert",
            missing,
            "--key",
            missing,
        ],
        &dir.path().join("home"),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("reverse mode's certificate") && stderr.contains("missing-cert.pem"),
        "{stderr}"
    );
    assert!(!std::path::Path::new(capture).exists(), "{stderr}");

    let (code, stderr) = proxy(
        &[
            "--listen",
            "0.0.0.0:0",
            "--capture",
            capture,
            "--reverse",
            "https://registry.internal:5000",
        ],
        &dir.path().join("home"),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}
