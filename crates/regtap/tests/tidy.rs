//! ARCHITECTURE.md's invariants, checked on the source: a change that
//! breaks one fails here, with the file and line.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no Rust file under {}", dir.display());
    files
}

/// The lines of a source file that are code: comments and the
/// `#[cfg(test)]` module at the end of a file left out.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .take_while(|(_, line)| line.trim() != "#[cfg(test)]")
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .map(|(n, line)| (n + 1, line.to_owned()))
        .collect()
}

/// Every `(file:line, text)` of `dir`'s code that contains one of `words`.
fn offences(dir: &str, words: &[&str]) -> Vec<String> {
    let root = workspace().join(dir);
    rust_files(&root)
        .iter()
        .flat_map(|path| {
            code_lines(path)
                .into_iter()
                .filter(|(_, line)| words.iter().any(|w| line.contains(w)))
                .map(move |(n, line)| format!("{}:{n}: {}", path.display(), line.trim()))
        })
        .collect()
}

#[test]
fn the_decoder_does_no_io() {
    let found = offences(
        "crates/regtap-decode/src",
        &[
            "std::fs",
            "std::net",
            "tokio",
            "std::process",
            "std::env",
            "println!",
            "eprintln!",
        ],
    );
    assert!(
        found.is_empty(),
        "I/O in regtap-decode:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_decoder_and_har_import_cannot_panic_on_input() {
    let mut found = offences(
        "crates/regtap-decode/src",
        &[".unwrap()", ".expect(", "panic!(", "unreachable!("],
    );
    found.extend(
        offences(
            "crates/regtap-har/src",
            &[".unwrap()", ".expect(", "panic!(", "unreachable!("],
        )
        .into_iter()
        .filter(|line| line.contains("import")),
    );
    assert!(
        found.is_empty(),
        "panics on input paths:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_proxy_knows_no_registry_vocabulary() {
    let found = offences(
        "crates/regtap-proxy/src",
        &[
            "/v2/",
            "manifest",
            "blobs/",
            "uploads",
            "_state",
            "Docker-Content-Digest",
            "WWW-Authenticate",
        ],
    );
    assert!(
        found.is_empty(),
        "registry semantics in the proxy (they belong in regtap-decode):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_tui_does_not_parse_http() {
    let found = offences(
        "crates/regtap-tui/src",
        &["httparse", "hyper::", "url::Url::parse", "serde_json::from"],
    );
    assert!(
        found.is_empty(),
        "HTTP parsing in the TUI:\n{}",
        found.join("\n")
    );
}

#[test]
fn libraries_use_thiserror_not_anyhow() {
    for krate in [
        "regtap-capture",
        "regtap-proxy",
        "regtap-decode",
        "regtap-tui",
        "regtap-har",
        "regtap-lab",
    ] {
        let manifest = workspace().join("crates").join(krate).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        let dependencies = text.split("[dev-dependencies]").next().unwrap_or_default();
        assert!(
            !dependencies.contains("anyhow"),
            "{krate} depends on anyhow: libraries return thiserror errors"
        );
        let found = offences(&format!("crates/{krate}/src"), &["anyhow"]);
        assert!(found.is_empty(), "anyhow in {krate}:\n{}", found.join("\n"));
    }
}

/// The lab is test scaffolding: a build of the binary without the `lab`
/// feature (the default) must not pull it in, nor what only it needs.
#[test]
fn the_binary_does_not_build_the_lab_by_default() {
    let output = std::process::Command::new(env!("CARGO"))
        .current_dir(workspace())
        .args([
            "tree",
            "--locked",
            "--package",
            "regtap",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cargo tree: {e}"));
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        tree.lines().any(|l| l.starts_with("regtap-proxy ")),
        "cargo tree does not show the binary's dependencies:\n{tree}"
    );
    let lab_only: Vec<&str> = tree
        .lines()
        .filter(|l| {
            ["regtap-lab ", "bcrypt ", "tar "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    assert!(
        lab_only.is_empty(),
        "the default build of regtap depends on the lab: {lab_only:?}"
    );
}
