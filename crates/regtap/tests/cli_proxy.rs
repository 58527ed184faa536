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

const PROXY_VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// `regtap proxy ARGS…` with `REGTAP_HOME` in `home` and only `env` of the
/// proxy variables.
fn regtap_proxy(home: &std::path::Path, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_regtap"));
    command.arg("proxy").args(args).env("REGTAP_HOME", home);
    for name in PROXY_VARIABLES {
        command.env_remove(name);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command
}

#[test]
fn an_https_proxy_variable_pointing_at_regtap_itself_is_refused_before_any_capture() {
    let home = tempfile::tempdir().unwrap();
    let port = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().port()
    };
    let capture = home.path().join("capture.jsonl");
    let listen = format!("127.0.0.1:{port}");
    let output = regtap_proxy(
        home.path(),
        &["--listen", &listen, "--capture", capture.to_str().unwrap()],
        &[("HTTPS_PROXY", format!("http://{listen}"))],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "regtap: the upstream proxy http://{listen} is this regtap itself (listening on {listen})"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("env -u HTTPS_PROXY regtap proxy") && stderr.contains("--no-env-proxy"),
        "{stderr}"
    );
    assert!(
        !capture.exists(),
        "a proxy that cannot run starts no capture"
    );
}

/// Starts `regtap proxy`, waits for its "listening on" line, stops it with
/// SIGTERM and returns its stderr and the capture header's `upstream_proxy`.
fn start_and_stop(args: &[&str], env: &[(&str, String)]) -> (String, serde_json::Value, String) {
    use std::io::BufRead as _;
    let home = tempfile::tempdir().unwrap();
    let capture = home.path().join("capture.jsonl");
    let mut all_args = vec!["--listen", "127.0.0.1:0", "-q", "--capture"];
    all_args.push(capture.to_str().unwrap());
    all_args.extend_from_slice(args);
    let mut child = regtap_proxy(home.path(), &all_args, env)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        stderr.push_str(&line);
        stderr.push('\n');
        if line.contains("listening on") {
            break;
        }
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    for line in lines {
        stderr.push_str(&line.unwrap());
        stderr.push('\n');
    }
    assert!(child.wait().unwrap().success(), "{stderr}");
    let file = std::fs::read_to_string(&capture).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let header: serde_json::Value = serde_json::from_str(file.lines().next().unwrap()).unwrap();
    (stderr, header["settings"]["upstream_proxy"].clone(), file)
}

#[test]
fn the_environment_s_proxy_is_announced_and_recorded_without_its_password() {
    let env = [
        (
            "https_proxy",
            "http://corp-user:s3cr3t-pw@127.0.0.1:9".to_owned(),
        ),
        ("NO_PROXY", "internal.test,.svc".to_owned()),
    ];
    let (stderr, setting, file) = start_and_stop(&[], &env);
    assert!(
        stderr.contains(
            "regtap: upstream proxy for https targets: http://127.0.0.1:9 (https_proxy, Basic auth)\n\
             regtap: upstream proxy for http targets: none, direct\n\
             regtap: direct: localhost, loopback IPs, internal.test,.svc\n"
        ),
        "{stderr}"
    );
    assert_eq!(
        setting,
        serde_json::json!({
            "https": {"url": "http://127.0.0.1:9", "basic_auth": true, "from": "https_proxy"},
            "http": null,
            "no_proxy": ["internal.test", ".svc"],
        })
    );
    for text in [&stderr, &file] {
        assert!(
            !text.contains("s3cr3t") && !text.contains("corp-user"),
            "{text}"
        );
    }

    // The flag wins over the environment, which --no-env-proxy ignores.
    let (stderr, setting, _) = start_and_stop(
        &["--upstream-proxy", "proxy.corp:3128", "--no-env-proxy"],
        &env,
    );
    assert!(
        stderr.contains(
            "regtap: upstream proxy for https targets: http://proxy.corp:3128 (--upstream-proxy)\n"
        ),
        "{stderr}"
    );
    assert_eq!(setting["no_proxy"], serde_json::json!([]));
    let (stderr, setting, _) = start_and_stop(&["--no-env-proxy"], &env);
    assert!(!stderr.contains("upstream proxy"), "{stderr}");
    assert_eq!(setting, serde_json::Value::Null);
}

#[test]
fn a_bad_upstream_proxy_url_is_refused_without_repeating_its_password() {
    let home = tempfile::tempdir().unwrap();
    let output = regtap_proxy(
        home.path(),
        &["--listen", "127.0.0.1:0"],
        &[(
            "HTTPS_PROXY",
            "socks5://u:s3cr3t-pw@proxy.corp:1080".to_owned(),
        )],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("regtap: HTTPS_PROXY: socks5:// proxies are not supported"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
}
