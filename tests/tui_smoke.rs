//! `regtap tui` and `regtap proxy --tui` in a real terminal: the built binary runs inside tmux, keys
//! are typed with `send-keys` and the screen is read with `capture-pane`,
//! checking what a user sees. Needs tmux: under CI=true a missing tmux
//! fails the test, elsewhere the test says loudly that it skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::sleep;
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_regtap");

/// A tmux server of our own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(name: &str, width: u16, height: u16, command: &str) -> Tmux {
        let tmux = Tmux {
            socket: format!("regtap-smoke-{}-{name}", std::process::id()),
        };
        let output = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "smoke",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ]);
        assert!(
            output.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("running tmux")
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "smoke"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success(), "send-keys {keys:?}");
    }

    fn screen(&self) -> String {
        let output = self.run(&["capture-pane", "-p", "-t", "smoke"]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until the screen shows every one of `texts` (a screen can be
    /// read halfway through a redraw), and returns that screen.
    fn wait_for(&self, texts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if texts.iter().all(|text| screen.contains(text)) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed all of {texts:?}; it shows:\n{screen}"
            );
            sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the screen no longer shows `text`.
    fn wait_until_gone(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if !screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen still shows {text:?}:\n{screen}"
            );
            sleep(Duration::from_millis(100));
        }
    }

    fn resize(&self, width: u16, height: u16) {
        let output = self.run(&[
            "resize-window",
            "-t",
            "smoke",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
        ]);
        assert!(output.status.success(), "resize-window");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn tmux_available() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tmux is not installed: CI must install it (see .ci/run)"
        );
        eprintln!("SKIPPED: tmux is not installed, the TUI smoke test did not run");
    }
    found
}

fn capture(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../captures")
        .join(name);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// Runs `regtap tui` on `capture`, then reports how it exited on the
/// terminal it leaves behind.
fn tui_command(capture: &Path) -> String {
    format!(
        "'{BINARY}' tui '{}'; echo REGTAP_EXIT=$?; sleep 60",
        capture.display()
    )
}

#[test]
fn a_user_browses_a_push_and_quits_with_q() {
    if !tmux_available() {
        return;
    }
    let tmux = Tmux::start("q", 100, 30, &tui_command(&capture("push.jsonl")));

    tmux.wait_for(&["push lab/app:latest", "[1 Operations]", "Steps"]);

    // Drill down into the steps: the detail pane shows the first step.
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["Step 1 of", "api-check"]);

    // The sequence diagram of the push, with its lanes.
    tmux.keys(&["2"]);
    tmux.wait_for(&["Sequence · push lab/app:latest", "client", "token"]);

    tmux.keys(&["?"]);
    tmux.wait_for(&[
        "Keys · Esc or ? closes",
        "play / pause",
        "kind filter / none",
    ]);
    tmux.keys(&["Escape"]);
    tmux.wait_until_gone("Keys · Esc or ? closes");

    // The flows view, then a resize to 80x24: still drawn whole.
    tmux.keys(&["3"]);
    tmux.wait_for(&["[3 Flows]"]);
    tmux.resize(80, 24);
    let screen = tmux.wait_for(&["Flows ", "q quit"]);
    assert!(
        screen.lines().all(|line| line.chars().count() <= 80),
        "{screen}"
    );

    tmux.keys(&["q"]);
    // The exit status, printed on the screen the TUI leaves behind.
    let screen = tmux.wait_for(&["REGTAP_EXIT=0"]);
    assert!(
        !screen.contains("[3 Flows]"),
        "the alternate screen is left: {screen}"
    );
}

#[test]
fn ctrl_c_quits_cleanly() {
    if !tmux_available() {
        return;
    }
    let tmux = Tmux::start("ctrl-c", 80, 24, &tui_command(&capture("login.jsonl")));
    tmux.wait_for(&["[1 Operations]"]);
    tmux.keys(&["C-c"]);
    tmux.wait_for(&["REGTAP_EXIT=0"]);
}

#[test]
fn a_missing_capture_is_an_error_before_any_terminal_change() {
    let output = Command::new(BINARY)
        .args(["tui", "/nonexistent/regtap-capture.jsonl"])
        .output()
        .expect("running regtap");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot read"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("\u{1b}[?1049h"),
        "no alternate screen was entered"
    );
}

#[test]
fn a_capture_cut_off_mid_record_opens_with_a_warning() {
    if !tmux_available() {
        return;
    }
    let mut bytes = std::fs::read(capture("login.jsonl")).expect("reading login.jsonl");
    bytes.extend_from_slice(br#"{"id":99,"scheme":"https","request":{"meth"#);
    let path = std::env::temp_dir().join(format!("regtap-smoke-{}-cut.jsonl", std::process::id()));
    std::fs::write(&path, bytes).expect("writing the cut capture");

    let tmux = Tmux::start("cut", 100, 30, &tui_command(&path));
    tmux.wait_for(&["[1 Operations]", "warning:", "cut off"]);
    tmux.keys(&["q"]);
    // The warning was printed on the normal screen too, where it stays.
    tmux.wait_for(&["REGTAP_EXIT=0", "regtap: warning:"]);
    let _ = std::fs::remove_file(&path);
}

/// A registry stand-in on loopback that answers every request with the
/// `/v2/` challenge, for as long as the test runs.
fn challenge_server() -> u16 {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the upstream");
    let port = listener.local_addr().expect("upstream address").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\n\
                  Www-Authenticate: Bearer realm=\"https://auth.test/token\",service=\"registry.test\"\r\n\
                  Content-Length: 2\r\nConnection: close\r\n\r\n{}",
            );
        }
    });
    port
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("finding a free port")
        .port()
}

#[test]
fn proxy_tui_shows_traffic_live_and_quitting_stops_the_proxy() {
    use std::io::{Read as _, Write as _};
    if !tmux_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let capture = dir.path().join("live.jsonl");
    let upstream = challenge_server();
    let proxy_port = free_port();
    let command = format!(
        "REGTAP_HOME='{home}' '{BINARY}' proxy --tui --listen 127.0.0.1:{proxy_port} \
         --capture '{capture}' --resolve registry.test:{upstream}=127.0.0.1; \
         echo REGTAP_EXIT=$?; sleep 60",
        home = dir.path().join("home").display(),
        capture = capture.display(),
    );
    let tmux = Tmux::start("live", 100, 30, &command);
    tmux.wait_for(&["live", "0 flows"]);

    let mut client = std::net::TcpStream::connect(("127.0.0.1", proxy_port)).expect("connecting");
    write!(
        client,
        "GET http://registry.test:{upstream}/v2/ HTTP/1.1\r\nHost: registry.test:{upstream}\r\n\r\n"
    )
    .expect("sending the request");
    let mut answer = [0u8; 12];
    client.read_exact(&mut answer).expect("reading the answer");
    assert_eq!(&answer, b"HTTP/1.1 401");

    tmux.wait_for(&["1 flows", &format!("API check registry.test:{upstream}")]);
    tmux.keys(&["q"]);
    tmux.wait_for(&["REGTAP_EXIT=0", "1 flows written"]);
    let written = regtap_capture::Capture::read(&capture).expect("reading the capture");
    assert_eq!(written.flows.len(), 1, "{:#?}", written.flows);
    assert_eq!(written.cut_off, 0, "the exchange finished");
    assert!(written.bad_lines.is_empty(), "{:?}", written.bad_lines);
}
