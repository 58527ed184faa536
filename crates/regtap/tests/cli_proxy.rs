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
