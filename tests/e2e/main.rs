//! End to end: the real dockerd 20.10, distribution 2.8 and skopeo, with a
//! Docker-Hub-like token server, all going through `regtap proxy`. Each
//! scenario is checked on regtap's capture (independently decoded here) and on
//! regtap-decode's analysis of it, not only on exit codes.
//!
//! One lab (one dockerd) serves every scenario in turn; a failed scenario is
//! reported and the others still run. `REGTAP_RECORD_CAPTURES=1` copies the
//! captures to `captures/` (see captures/README.md).

mod checks;
mod clients;
mod expect;
mod flows;
mod reverse;
mod scenarios;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Instant;

use regtap_capture::Capture;
use regtap_lab::image::TestImage;
use regtap_lab::{Lab, Via, skip_when_missing, skip_without_prerequisites};

/// Bodies up to this size are kept whole in the capture: tokens, manifests,
/// configs and error bodies are, the test images' layers are not.
const MAX_INLINE: usize = 12 * 1024;

/// State the scenarios hand on to each other.
pub struct World {
    pub lab: Lab,
    /// Pushed, mounted, re-pushed, pulled, pushed to the Basic-auth registry.
    pub image: TestImage,
    /// Copied with skopeo.
    pub skopeo_image: TestImage,
    /// Blob digests of `image` as pushed to the token registry (layers gzip'd by dockerd).
    pub pushed_layers: Vec<String>,
    pub pushed_manifest: Option<String>,
    /// Where `regtap proxy --store-bodies` writes.
    pub bodies: PathBuf,
    record_to: Option<PathBuf>,
}

impl World {
    /// Runs `action` with `regtap proxy` writing the capture `name`, reads it
    /// back, and with `REGTAP_RECORD_CAPTURES=1` copies it to `captures/`.
    pub fn captured(&mut self, name: &str, action: impl FnOnce(&Lab)) -> Capture {
        captured(&mut self.lab, self.record_to.as_deref(), name, action)
    }

    /// Runs `action` through `regtap proxy` and reads the capture back; never recorded.
    pub fn unrecorded(&mut self, name: &str, action: impl FnOnce(&Lab)) -> Capture {
        captured(&mut self.lab, None, name, action)
    }

    /// A body the proxy stored with `--store-bodies`.
    pub fn stored_body(&self, stored: Option<&str>) -> Vec<u8> {
        let stored = stored.unwrap_or_else(|| panic!("body not stored; is --store-bodies on?"));
        let path = self.bodies.join(stored);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

/// Runs `action` with `regtap proxy` writing the capture `name`, reads it
/// back, and copies it to `record_to` when given.
pub fn captured(
    lab: &mut Lab,
    record_to: Option<&Path>,
    name: &str,
    action: impl FnOnce(&Lab),
) -> Capture {
    lab.start_capture(name)
        .unwrap_or_else(|e| panic!("starting regtap proxy for {name}: {e}"));
    action(lab);
    let capture = lab
        .finish_capture()
        .unwrap_or_else(|e| panic!("reading the capture of {name}: {e}"));
    if let Some(dir) = record_to {
        record(lab, dir, name);
    }
    capture
}

/// Copies the lab's capture `name` to `dir` (`captures/`).
pub fn record(lab: &Lab, dir: &Path, name: &str) {
    let from = lab.dir().join("captures").join(format!("{name}.jsonl"));
    let to = dir.join(format!("{name}.jsonl"));
    std::fs::copy(&from, &to)
        .unwrap_or_else(|e| panic!("recording {} to {}: {e}", from.display(), to.display()));
    eprintln!("recorded {}", to.display());
}

/// Named scenarios, run in order on one world.
pub type Scenarios<W> = [(&'static str, fn(&mut W))];

/// Runs each scenario, reporting a failed one with `log_tails` and going on
/// with the next; panics at the end listing the failures.
pub fn run_scenarios<W>(world: &mut W, scenarios: &Scenarios<W>, log_tails: fn(&W) -> String) {
    let started = Instant::now();
    let mut failures = Vec::new();
    for (name, scenario) in scenarios {
        let t = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| scenario(world)));
        match outcome {
            Ok(()) => eprintln!("scenario {name}: ok ({:?})", t.elapsed()),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                eprintln!(
                    "scenario {name}: FAILED ({:?})\n{}",
                    t.elapsed(),
                    log_tails(world)
                );
                failures.push(format!("{name}: {message}"));
            }
        }
    }
    eprintln!("all scenarios in {:?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} scenario(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn recording_dir() -> Option<PathBuf> {
    if std::env::var("REGTAP_RECORD_CAPTURES").as_deref() != Ok("1") {
        return None;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../captures");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    Some(dir)
}

#[test]
fn dockerd_and_skopeo_through_regtap() {
    if skip_without_prerequisites(
        "the end-to-end tests (dockerd, distribution, skopeo through regtap)",
    ) {
        return;
    }
    let started = Instant::now();
    let lab_started = Instant::now();
    let lab = Lab::start(Via::Regtap {
        bin: PathBuf::from(env!("CARGO_BIN_EXE_regtap")),
        proxy_args: vec!["--max-inline".into(), MAX_INLINE.to_string()],
        store_bodies: true,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("lab started in {:?}", lab_started.elapsed());
    let image_result = TestImage::new(1, &[40_000, 24_000, 16_000]);
    let skopeo_result = TestImage::new(2, &[30_000, 20_000]);
    let (Ok(image), Ok(skopeo_image)) = (image_result, skopeo_result) else {
        panic!("cannot build the test images");
    };
    let lab_bodies = lab.bodies_dir();
    let mut world = World {
        lab,
        image,
        skopeo_image,
        pushed_layers: Vec::new(),
        pushed_manifest: None,
        bodies: lab_bodies,
        record_to: recording_dir(),
    };

    run_scenarios(&mut world, scenarios::ALL, |w| w.lab.log_tails());
    eprintln!("the lab and all scenarios in {:?}", started.elapsed());
}

/// dockerd and skopeo addressing `regtap proxy --reverse` as the registry,
/// in front of the token-auth registry and the token server (issue #15).
#[test]
fn dockerd_and_skopeo_through_reverse_mode() {
    let test = "the reverse-mode tests (dockerd, skopeo, regtap --reverse)";
    if skip_without_prerequisites(test) {
        return;
    }
    // curl sends a request for a name regtap does not serve.
    let missing: Vec<String> = (!regtap_lab::on_path("curl"))
        .then(|| "the `curl` program".to_owned())
        .into_iter()
        .collect();
    if skip_when_missing(test, &missing) {
        return;
    }
    let started = Instant::now();
    let lab = Lab::start(Via::Reverse {
        bin: PathBuf::from(env!("CARGO_BIN_EXE_regtap")),
        proxy_args: vec!["--max-inline".into(), MAX_INLINE.to_string()],
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let (Ok(image), Ok(skopeo_image)) = (
        TestImage::new(3, &[40_000, 24_000, 16_000]),
        TestImage::new(4, &[30_000, 20_000]),
    ) else {
        panic!("cannot build the test images");
    };
    let mut world = reverse::ReverseWorld {
        lab,
        image,
        skopeo_image,
        record_to: recording_dir(),
    };
    run_scenarios(&mut world, reverse::ALL, |w| w.lab.log_tails());
    eprintln!(
        "the reverse-mode lab and its scenarios in {:?}",
        started.elapsed()
    );
}

/// ctr, crane, oras-py, python-dxf and several clients at once through
/// `regtap proxy`, checked on the decoder's operations (issue #9).
#[test]
fn registry_clients_through_regtap() {
    let test = "the client tests (ctr, crane, oras-py, python-dxf through regtap)";
    if skip_without_prerequisites(test) {
        return;
    }
    let (tools, missing) = clients::Tools::locate();
    if skip_when_missing(test, &missing) {
        return;
    }
    let started = Instant::now();
    let lab = Lab::start(Via::Regtap {
        bin: PathBuf::from(env!("CARGO_BIN_EXE_regtap")),
        proxy_args: vec!["--max-inline".into(), MAX_INLINE.to_string()],
        store_bodies: false,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let mut world = clients::Clients::start(lab, tools, recording_dir());
    eprintln!(
        "lab, containerd and crane registry started in {:?}",
        started.elapsed()
    );
    run_scenarios(&mut world, clients::ALL, clients::Clients::log_tails);
    eprintln!(
        "the client lab and all scenarios in {:?}",
        started.elapsed()
    );
}

/// `regtap lab` as a user runs it: it says how to reach its dockerd, a push of
/// the demo image it preloaded goes through, and SIGTERM (as Ctrl-C) stops it
/// and leaves the capture behind.
#[test]
fn regtap_lab_command_serves_a_push_and_writes_its_capture() {
    use regtap_lab::process::{ChildGuard, run_output};
    if skip_without_prerequisites("the `regtap lab` test") {
        return;
    }
    let scratch = std::env::temp_dir().join(format!("regtap-lab-command-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap_or_else(|e| panic!("{e}"));
    let capture_path = scratch.join("lab.jsonl");
    let log = scratch.join("regtap-lab.log");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_regtap"));
    command.arg("lab").arg("--capture").arg(&capture_path);
    let mut lab = ChildGuard::spawn("regtap lab", command, &log)
        .unwrap_or_else(|e| panic!("{e}"))
        .grace(std::time::Duration::from_secs(60));
    lab.wait_until(
        "its instructions",
        std::time::Duration::from_secs(120),
        || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("regtap lab is ready")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    let line_after = |prefix: &str| -> String {
        said.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{said}"))
            .to_owned()
    };
    let env_line = line_after("export ");
    let env: Vec<(String, String)> = env_line
        .split_whitespace()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let login: Vec<String> = line_after("docker login ")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let demo = line_after("docker push ");
    let docker = |args: &[&str]| {
        let mut command = std::process::Command::new("docker");
        command.args(args).envs(env.iter().map(|(k, v)| (k, v)));
        run_output(command).unwrap_or_else(|e| panic!("{e}"))
    };
    let mut login_args = vec!["login"];
    login_args.extend(login.iter().map(String::as_str));
    docker(&login_args).assert_success();
    docker(&["push", &demo]).assert_success();
    lab.stop();

    let capture = Capture::read(&capture_path).unwrap_or_else(|e| panic!("{e}"));
    let (registry, repository_tag) = demo
        .split_once('/')
        .unwrap_or_else(|| panic!("odd demo reference {demo}"));
    let manifest_path = format!("/v2/{}", repository_tag.replace(':', "/manifests/"));
    let manifest_put = capture.flows.iter().find(|f| {
        f.request.method == "PUT" && f.request.url == format!("https://{registry}{manifest_path}")
    });
    assert_eq!(
        manifest_put.and_then(|f| f.status()),
        Some(201),
        "no manifest PUT of {demo} among {} flows",
        capture.flows.len()
    );
    assert!(
        capture
            .flows
            .iter()
            .any(|f| f.request.url.contains("/token?")),
        "the login and push went through the token server"
    );
    std::fs::remove_dir_all(&scratch).unwrap_or_else(|e| panic!("{e}"));
}
