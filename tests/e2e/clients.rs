//! Registry clients other than dockerd and skopeo, each started here on
//! loopback through `regtap proxy`, and what the decoder makes of them
//! (issue #9): ctr with its own containerd, crane against distribution and
//! against `crane registry serve`, oras-py, python-dxf, and several clients
//! at once. For each, a user's check of `regtap inspect`: one operation per
//! client command, of the right kind, repository and program; every flow in
//! exactly one operation; no digest verdict that contradicts the registry.
//!
//! crane and the Python clients are installed by `tests/clients/setup.sh`
//! under `$REGTAP_CI_TOOLS` (default `/var/cache/regtap-ci`); ctr and
//! containerd come with Debian's docker.io.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use regtap_capture::Capture;
use regtap_lab::containerd::Containerd;
use regtap_lab::image::{TestImage, pseudo_random};
use regtap_lab::process::{ChildGuard, CommandOutput, free_port, port_open};
use regtap_lab::verify::sha256_hex;
use regtap_lab::{LAB_PASSWORD, LAB_USER, Lab, on_path};

use crate::checks::{common, decode, flows_in_one_operation};
use crate::expect::{self, Expected};

/// Where `tests/clients/setup.sh` puts crane and the Python clients.
const DEFAULT_TOOLS: &str = "/var/cache/regtap-ci";

/// How long one client command may take (they take seconds) before it is killed.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

const CONTAINERD: &str = "containerd";
/// crane built from source says `crane/<version> go-containerregistry/<version>`.
const CRANE: &str = "crane";
const PYTHON: &str = "python-requests";
const DOCKERD: &str = "dockerd";
const SKOPEO: &str = "skopeo";

type Scenario = fn(&mut Clients);

pub const ALL: &[(&str, Scenario)] = &[
    ("ctr", ctr_push_and_pull),
    ("crane-distribution", crane_against_distribution),
    ("crane-ggcr", crane_against_ggcr),
    ("oras-py", oras_py),
    ("python-dxf", python_dxf),
    ("parallel-clients", parallel_clients),
];

/// The programs these tests drive beyond the lab's.
pub struct Tools {
    crane: PathBuf,
    python: PathBuf,
    /// `tests/clients`: the Python drivers.
    scripts: PathBuf,
}

impl Tools {
    pub fn locate() -> (Tools, Vec<String>) {
        let dir = std::env::var_os("REGTAP_CI_TOOLS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_TOOLS));
        let tools = Tools {
            crane: dir.join("bin/crane"),
            python: dir.join("venv/bin/python3"),
            scripts: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients"),
        };
        let mut missing = Vec::new();
        for program in ["ctr", "containerd"] {
            if !on_path(program) {
                missing.push(format!("the `{program}` program"));
            }
        }
        if !tools.crane.exists() {
            missing.push(format!(
                "{} (tests/clients/setup.sh builds it)",
                tools.crane.display()
            ));
        }
        let python_clients = Command::new(&tools.python)
            .args(["-c", "import oras.client, dxf, requests"])
            .output()
            .is_ok_and(|out| out.status.success());
        if !python_clients {
            missing.push(format!(
                "oras, python-dxf and requests in {} (tests/clients/setup.sh installs them)",
                tools.python.display()
            ));
        }
        (tools, missing)
    }
}

/// `crane registry serve`: go-containerregistry's in-memory registry, plain HTTP.
struct Ggcr {
    /// `ggcr-SUFFIX.test:PORT`, resolved by the proxy only.
    host: String,
    _process: ChildGuard,
}

pub struct Clients {
    // Fields drop in this order: containerd and the crane registry before
    // the lab removes its directory.
    containerd: Containerd,
    ggcr: Ggcr,
    lab: Lab,
    tools: Tools,
    /// Archives, homes and pulled files of the clients.
    scratch: PathBuf,
    record_to: Option<PathBuf>,
}

impl Clients {
    pub fn start(mut lab: Lab, tools: Tools, record_to: Option<PathBuf>) -> Self {
        let scratch = lab.dir().join("clients");
        std::fs::create_dir_all(&scratch).unwrap_or_else(|e| panic!("{}: {e}", scratch.display()));
        let containerd =
            Containerd::start(&lab.dir().join("containerd")).unwrap_or_else(|e| panic!("{e}"));
        let port = free_port().unwrap_or_else(|e| panic!("{e}"));
        let mut command = Command::new(&tools.crane);
        command
            .args(["registry", "serve"])
            .env("PORT", port.to_string());
        let mut process =
            ChildGuard::spawn("crane registry serve", command, &scratch.join("ggcr.log"))
                .unwrap_or_else(|e| panic!("{e}"));
        process
            .wait_until("its port", Duration::from_secs(20), || port_open(port))
            .unwrap_or_else(|e| panic!("{e}"));
        let host = format!("{}:{port}", lab.hosts.name("ggcr"));
        lab.resolve_also(&host, port);
        // crane reads its credentials from the Docker CLI's config.
        let docker_config = scratch.join("crane-docker-config");
        std::fs::create_dir_all(&docker_config).unwrap_or_else(|e| panic!("{e}"));
        let auth = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(format!("{LAB_USER}:{LAB_PASSWORD}"))
        };
        let config = serde_json::json!({"auths": {lab.registry_host(): {"auth": auth}}});
        std::fs::write(docker_config.join("config.json"), config.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        Clients {
            containerd,
            ggcr: Ggcr {
                host,
                _process: process,
            },
            lab,
            tools,
            scratch,
            record_to,
        }
    }

    pub fn log_tails(&self) -> String {
        format!(
            "{}\n--- containerd:\n{}",
            self.lab.log_tails(),
            self.containerd.log_tail(1500)
        )
    }

    /// Runs `action` with `regtap proxy` writing the capture `name`, reads it
    /// back, and with `REGTAP_RECORD_CAPTURES=1` and `record` copies it to `captures/`.
    fn captured(&mut self, name: &str, record: bool, action: impl FnOnce(&Clients)) -> Capture {
        self.lab
            .start_capture(name)
            .unwrap_or_else(|e| panic!("starting regtap proxy for {name}: {e}"));
        action(self);
        let capture = self
            .lab
            .finish_capture()
            .unwrap_or_else(|e| panic!("reading the capture of {name}: {e}"));
        if let (true, Some(dir)) = (record, &self.record_to) {
            crate::record(&self.lab, dir, name);
        }
        capture
    }

    /// A directory of its own under the scratch directory.
    fn dir(&self, name: &str) -> PathBuf {
        let dir = self.scratch.join(name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        dir
    }

    /// `command` run as a client of the lab (proxy, CA bundle, a home of its own).
    fn client(&self, mut command: Command, home: &str) -> CommandOutput {
        self.lab.client_env(&mut command, &self.dir(home));
        command
            .env("REGTAP_USER", LAB_USER)
            .env("REGTAP_PASSWORD", LAB_PASSWORD);
        CommandOutput::within(command, CLIENT_TIMEOUT)
    }

    /// `ctr --namespace NAMESPACE ARGS…` on the private containerd.
    fn ctr(&self, namespace: &str, args: &[&str]) -> CommandOutput {
        self.client(self.containerd.ctr_command(namespace, args), "ctr-home")
    }

    /// `ctr images pull` of `reference` into `namespace`, with the lab's credentials.
    fn ctr_pull(&self, namespace: &str, reference: &str) -> CommandOutput {
        let user = format!("{LAB_USER}:{LAB_PASSWORD}");
        self.ctr(
            namespace,
            &[
                "images",
                "pull",
                "--user",
                &user,
                "--snapshotter",
                "native",
                reference,
            ],
        )
    }

    /// `crane ARGS…`, with the lab's credentials in its Docker config.
    fn crane(&self, args: &[&str]) -> CommandOutput {
        let mut command = Command::new(&self.tools.crane);
        command
            .args(args)
            .env("DOCKER_CONFIG", self.scratch.join("crane-docker-config"));
        self.client(command, "crane-home")
    }

    /// `python3 tests/clients/SCRIPT ARGS…` in the clients' venv.
    fn python(&self, script: &str, args: &[&str]) -> CommandOutput {
        let mut command = Command::new(&self.tools.python);
        command.arg(self.tools.scripts.join(script)).args(args);
        self.client(command, "python-home")
    }

    /// A docker-archive of `image` named `reference`, for ctr and crane.
    fn archive(&self, name: &str, image: &TestImage, reference: &str) -> PathBuf {
        let path = self.scratch.join(format!("{name}.tar"));
        image
            .write_docker_archive(&path, &[reference])
            .unwrap_or_else(|e| panic!("{e}"));
        path
    }
}

fn image(seed: u64, layer_sizes: &[usize]) -> TestImage {
    TestImage::new(seed, layer_sizes).unwrap_or_else(|e| panic!("{e}"))
}

fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("{} is not UTF-8", path.display()))
}

/// The checks every scenario ends with: the operations are `expected`, every
/// flow is in exactly one operation (and every `_state` HMAC verifies), and
/// no digest verdict says "mismatch" (a chunked upload whose chunks are not
/// inline may rightly be "not verifiable"). Each check runs even when
/// another failed; the panic names every failed one.
fn decoded_as(capture: &Capture, expected: &[Expected], ordered: bool) {
    let decoded = decode(capture);
    let checks: [(&str, &dyn Fn()); 3] = [
        ("operations", &|| {
            expect::operations(&decoded, expected, ordered)
        }),
        ("every flow in exactly one operation", &|| {
            flows_in_one_operation(capture, &decoded)
        }),
        ("no mismatch", &|| expect::no_mismatch(&decoded)),
    ];
    let failed: Vec<String> = checks
        .iter()
        .filter_map(|(name, check)| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(check))
                .err()
                .map(|panic| {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    format!("[{name}] {message}")
                })
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// `ctr images push` of an imported image, then `ctr images pull` of it
/// into another namespace (which holds none of its blobs).
fn ctr_push_and_pull(w: &mut Clients) {
    let host = w.lab.registry_host();
    let reference = format!("{host}/lab/ctr:v1");
    let archive = w.archive("ctr", &image(21, &[30_000, 12_000]), &reference);
    w.ctr("push", &["images", "import", path_str(&archive)])
        .assert_success();
    let user = format!("{LAB_USER}:{LAB_PASSWORD}");
    let capture = w.captured("ctr", false, |w| {
        w.ctr("push", &["images", "push", "--user", &user, &reference])
            .assert_success();
        w.ctr_pull("pull", &reference).assert_success();
    });
    let pulled = w.ctr("pull", &["images", "ls", "--quiet"]);
    assert!(
        pulled
            .assert_success()
            .stdout
            .lines()
            .any(|l| l == reference),
        "ctr lists no {reference}: {}",
        pulled.stdout
    );
    common(&w.lab, &capture);
    decoded_as(
        &capture,
        &[
            Expected::push(&host, "lab/ctr", CONTAINERD),
            Expected::pull(&host, "lab/ctr", CONTAINERD),
        ],
        true,
    );
}

/// `crane push` of a docker-archive, then `crane pull` of it, against
/// distribution with token auth.
fn crane_against_distribution(w: &mut Clients) {
    let host = w.lab.registry_host();
    let reference = format!("{host}/lab/crane:v1");
    let pushed = image(22, &[26_000, 9_000]);
    let archive = w.archive("crane", &pushed, &reference);
    let pulled = w.scratch.join("crane-pulled.tar");
    let capture = w.captured("crane-distribution", false, |w| {
        w.crane(&["push", path_str(&archive), &reference])
            .assert_success();
        w.crane(&["pull", "--format", "tarball", &reference, path_str(&pulled)])
            .assert_success();
    });
    let mut config = None;
    w.captured("crane-check", false, |w| {
        config = Some(w.crane(&["config", &reference]));
    });
    let config = config.unwrap_or_else(|| panic!("crane config did not run"));
    assert_eq!(
        format!(
            "sha256:{}",
            sha256_hex(config.assert_success().stdout.as_bytes())
        ),
        pushed.config_digest,
        "the image config crane reads back is not the one it pushed"
    );
    assert!(pulled.exists(), "crane pull wrote no {}", pulled.display());
    common(&w.lab, &capture);
    decoded_as(
        &capture,
        &[
            Expected::push(&host, "lab/crane", CRANE),
            Expected::pull(&host, "lab/crane", CRANE),
        ],
        true,
    );
}

/// `crane push` and `crane pull` against `crane registry serve` (plain HTTP,
/// another registry implementation), then `crane copy` of the image crane
/// pushed to distribution over to it. With `--insecure`, crane pings the
/// registry over HTTPS first on every command (the capture holds those
/// CONNECTs, failed at the TLS handshake upstream), then over plain HTTP:
/// the attempts belong to the command's operation.
fn crane_against_ggcr(w: &mut Clients) {
    let ggcr = w.ggcr.host.clone();
    let registry = w.lab.registry_host();
    let reference = format!("{ggcr}/lab/crane:v1");
    let archive = w.archive("crane-ggcr", &image(23, &[21_000, 7_000]), &reference);
    let pulled = w.scratch.join("crane-ggcr-pulled.tar");
    let source = format!("{registry}/lab/crane:v1");
    let copied = format!("{ggcr}/lab/copied:v1");
    // The image crane-distribution pushed, pushed here too so that this
    // scenario stands on its own.
    let source_archive = w.archive("crane-source", &image(22, &[26_000, 9_000]), &source);
    w.captured("crane-ggcr-setup", false, |w| {
        w.crane(&["push", path_str(&source_archive), &source])
            .assert_success();
    });
    let capture = w.captured("crane-ggcr", false, |w| {
        w.crane(&["push", "--insecure", path_str(&archive), &reference])
            .assert_success();
        w.crane(&[
            "pull",
            "--insecure",
            "--format",
            "tarball",
            &reference,
            path_str(&pulled),
        ])
        .assert_success();
        w.crane(&["copy", "--insecure", &source, &copied])
            .assert_success();
    });
    let mut digests = Vec::new();
    w.captured("crane-ggcr-check", false, |w| {
        for reference in [&copied, &source] {
            let out = w.crane(&["digest", "--insecure", reference]);
            digests.push(out.assert_success().stdout.trim().to_owned());
        }
    });
    assert_eq!(digests[0], digests[1], "crane copy changed the manifest");
    decoded_as(
        &capture,
        &[
            Expected::push(&ggcr, "lab/crane", CRANE),
            Expected::pull(&ggcr, "lab/crane", CRANE),
            Expected::copy((&registry, "lab/crane"), (&ggcr, "lab/copied"), CRANE),
        ],
        true,
    );
}

/// Writes `files` (name, size) of pseudo-random bytes into a fresh `dir`.
fn write_files(dir: &Path, seed: u64, files: &[(&str, usize)]) {
    for (i, (name, size)) in files.iter().enumerate() {
        let path = dir.join(name);
        std::fs::write(&path, pseudo_random(seed + i as u64, *size))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// True when `a` and `b` hold the same files with the same bytes.
fn same_files(a: &Path, b: &Path) -> bool {
    let listing = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file())
            .map(|e| {
                let bytes = std::fs::read(e.path()).unwrap_or_default();
                (e.file_name().to_string_lossy().into_owned(), bytes)
            })
            .collect();
        files.sort();
        files
    };
    listing(a) == listing(b)
}

/// oras-py pushes two files with monolithic uploads, then one file in 16 KiB
/// PATCH chunks, then pulls the first artifact; three commands, three
/// operations. Against the Basic-auth registry (see oras_client.py why).
fn oras_py(w: &mut Clients) {
    let host = w.lab.basic_registry_host();
    let mono = w.dir("oras-mono");
    write_files(&mono, 31, &[("a.bin", 20_000), ("b.txt", 3_000)]);
    let chunked = w.dir("oras-chunked");
    write_files(&chunked, 33, &[("big.bin", 40_000)]);
    let pulled = w.dir("oras-pulled");
    let capture = w.captured("oras-py", false, |w| {
        w.python(
            "oras_client.py",
            &["push", &host, "lab/oras-mono:v1", path_str(&mono)],
        )
        .assert_success();
        w.python(
            "oras_client.py",
            &[
                "push-chunked",
                &host,
                "lab/oras-chunked:v1",
                path_str(&chunked),
            ],
        )
        .assert_success();
        w.python(
            "oras_client.py",
            &["pull", &host, "lab/oras-mono:v1", path_str(&pulled)],
        )
        .assert_success();
    });
    assert!(
        same_files(&mono, &pulled),
        "oras pulled other files than it pushed"
    );
    common(&w.lab, &capture);
    decoded_as(
        &capture,
        &[
            Expected::push(&host, "lab/oras-mono", PYTHON),
            Expected::push(&host, "lab/oras-chunked", PYTHON),
            Expected::pull(&host, "lab/oras-mono", PYTHON),
        ],
        true,
    );
}

/// python-dxf pushes two blobs and tags them (`push-blob`, `set-alias`), then
/// pulls them by the tag; two commands, two operations.
fn python_dxf(w: &mut Clients) {
    let host = w.lab.registry_host();
    let files = w.dir("dxf-files");
    write_files(&files, 41, &[("one.bin", 15_000), ("two.bin", 5_000)]);
    let pulled = w.dir("dxf-pulled");
    let one = files.join("one.bin");
    let two = files.join("two.bin");
    let mut pushed = None;
    let capture = w.captured("python-dxf", false, |w| {
        pushed = Some(
            w.python(
                "dxf_client.py",
                &[
                    "push",
                    &host,
                    "lab/dxf",
                    "v1",
                    path_str(&one),
                    path_str(&two),
                ],
            )
            .assert_success()
            .stdout
            .clone(),
        );
        w.python(
            "dxf_client.py",
            &["pull", &host, "lab/dxf", "v1", path_str(&pulled)],
        )
        .assert_success();
    });
    let pushed = pushed.unwrap_or_default();
    for digest in pushed.lines() {
        let path = pulled.join(digest.replace(':', "-"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(format!("sha256:{}", sha256_hex(&bytes)), digest);
    }
    common(&w.lab, &capture);
    decoded_as(
        &capture,
        &[
            Expected::push(&host, "lab/dxf", PYTHON),
            Expected::pull(&host, "lab/dxf", PYTHON),
        ],
        true,
    );
}

/// dockerd pushes two repositories while skopeo, ctr and a requests script
/// each pull another, all at once through one proxy; then ctr pulls twice
/// more in a row. Each command is one operation of its own client.
fn parallel_clients(w: &mut Clients) {
    let host = w.lab.registry_host();
    let reference = |repository: &str| format!("{host}/lab/{repository}:v1");
    let sources = ["par-skopeo", "par-ctr", "par-py"];
    let pushes = ["par-a", "par-b"];
    // The images the pullers pull, pushed beforehand (not recorded).
    // Layers beyond --max-inline keep the recorded capture small.
    let pulled_image = image(51, &[20_000]);
    let load = |w: &Clients, name: &str, image: &TestImage, tags: &[String]| {
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        let archive = w.scratch.join(format!("{name}.tar"));
        image
            .write_docker_archive(&archive, &tags)
            .unwrap_or_else(|e| panic!("{e}"));
        w.lab
            .docker(&["load", "-i", path_str(&archive)])
            .assert_success();
    };
    load(w, "par-sources", &pulled_image, &sources.map(reference));
    load(w, "par-a", &image(52, &[16_000]), &[reference("par-a")]);
    load(w, "par-b", &image(53, &[15_000]), &[reference("par-b")]);
    w.captured("parallel-setup", false, |w| {
        w.lab
            .docker(&["login", &host, "-u", LAB_USER, "-p", LAB_PASSWORD])
            .assert_success();
        for source in sources {
            w.lab.docker(&["push", &reference(source)]).assert_success();
        }
    });

    let oci = w.scratch.join("par-skopeo-oci");
    let py_dir = w.dir("par-py");
    let creds = format!("{LAB_USER}:{LAB_PASSWORD}");
    let capture = w.captured("parallel-clients", true, |w| {
        let outputs: Vec<CommandOutput> = std::thread::scope(|s| {
            let mut running = Vec::new();
            for repository in pushes {
                let image = reference(repository);
                running.push(s.spawn(move || w.lab.docker(&["push", &image])));
            }
            running.push(s.spawn(|| {
                w.lab.skopeo(&[
                    "copy",
                    "--src-creds",
                    &creds,
                    &format!("docker://{}", reference("par-skopeo")),
                    &format!("oci:{}:v1", oci.display()),
                ])
            }));
            running.push(s.spawn(|| w.ctr_pull("parallel", &reference("par-ctr"))));
            running.push(s.spawn(|| {
                w.python(
                    "requests_pull.py",
                    &[&host, "lab/par-py", "v1", path_str(&py_dir)],
                )
            }));
            running
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| panic!("a client thread panicked"))
                })
                .collect()
        });
        for output in &outputs {
            output.assert_success();
        }
        for _ in 0..2 {
            w.ctr_pull("parallel", &reference("par-ctr"))
                .assert_success();
        }
    });
    common(&w.lab, &capture);
    let mut expected: Vec<Expected> = pushes
        .iter()
        .map(|r| Expected::push(&host, &format!("lab/{r}"), DOCKERD))
        .collect();
    expected.push(Expected::pull(&host, "lab/par-skopeo", SKOPEO));
    expected.push(Expected::pull(&host, "lab/par-py", PYTHON));
    for _ in 0..3 {
        expected.push(Expected::pull(&host, "lab/par-ctr", CONTAINERD));
    }
    decoded_as(&capture, &expected, false);
    // The two ctr pulls after the others come last, in order.
    let decoded = decode(&capture);
    let last: Vec<String> = decoded
        .operations
        .iter()
        .rev()
        .take(2)
        .map(expect::describe)
        .collect();
    assert!(
        last.iter()
            .all(|l| l.starts_with(&format!("pull {host}/lab/par-ctr by {CONTAINERD}"))),
        "the last two operations are not the sequential ctr pulls: {last:?}"
    );
}
