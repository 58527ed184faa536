//! Behind a corporate proxy: skopeo → `regtap proxy` → a real `tinyproxy`
//! (Basic auth) → distribution. Pushes an image through the chain and checks
//! the capture (statuses, the chain in the header and on every flow, no byte
//! of the proxy's password anywhere), then a wrong password: the chained
//! proxy's refusal is recorded as such.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use regtap_capture::{Capture, ErrorStage};
use regtap_lab::image::TestImage;
use regtap_lab::pki::{LabHosts, Pki};
use regtap_lab::process::{ChildGuard, CommandOutput, free_port, port_open};
use regtap_lab::proxy::{Regtap, RegtapProxy};
use regtap_lab::registry::{Registry, RegistryAuth};
use regtap_lab::{LAB_PASSWORD, LAB_USER, SYSTEM_CA_BUNDLE, on_path, skip_when_missing};

const PROXY_USER: &str = "corp-user";
/// Base64 of `corp-user:` + this is checked too: no encoding of it may leak.
const PROXY_PASSWORD: &str = "Tiny-Proxy-Secret-4711";

fn missing() -> Vec<String> {
    ["docker-registry", "skopeo", "tinyproxy"]
        .into_iter()
        .filter(|p| !on_path(p))
        .map(|p| format!("the `{p}` program"))
        .chain((!Path::new(SYSTEM_CA_BUNDLE).exists()).then(|| SYSTEM_CA_BUNDLE.to_owned()))
        .collect()
}

/// tinyproxy in the foreground on a free loopback port, with Basic auth or
/// without, allowing CONNECT to any port (the lab registry is not on 443).
fn start_tinyproxy(dir: &Path, basic_auth: bool) -> (ChildGuard, u16) {
    let port = free_port().unwrap();
    let name = if basic_auth {
        "tinyproxy-auth"
    } else {
        "tinyproxy-open"
    };
    let config = dir.join(format!("{name}.conf"));
    let auth = if basic_auth {
        format!("BasicAuth {PROXY_USER} {PROXY_PASSWORD}\n")
    } else {
        String::new()
    };
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 50\nAllow 127.0.0.1\n\
             {auth}LogLevel Connect\n"
        ),
    )
    .unwrap();
    let mut command = Command::new("tinyproxy");
    command.arg("-d").arg("-c").arg(&config);
    let mut process = ChildGuard::spawn(name, command, &dir.join(format!("{name}.log"))).unwrap();
    process
        .wait_until("its port", Duration::from_secs(10), || port_open(port))
        .unwrap();
    (process, port)
}

struct Chain {
    dir: tempfile::TempDir,
    regtap: Regtap,
    registry: Registry,
    registry_host: String,
    ca_bundle: PathBuf,
    upstream_ca: PathBuf,
}

impl Chain {
    /// Runs `regtap proxy` chained to the tinyproxy on `tinyproxy_port`,
    /// with the credentials in `auth_line` if any, runs `action` with
    /// regtap's URL, and reads the capture back.
    fn capture(
        &self,
        name: &str,
        tinyproxy_port: u16,
        auth_line: Option<&str>,
        action: impl FnOnce(&str),
    ) -> (Capture, String) {
        // The lab's proxy ignores the environment's proxy (--no-env-proxy).
        let mut args = vec![
            "--upstream-proxy".to_owned(),
            format!("http://127.0.0.1:{tinyproxy_port}"),
            "--store-bodies".to_owned(),
            self.dir.path().join("bodies").display().to_string(),
        ];
        if let Some(auth_line) = auth_line {
            let auth_file = self.dir.path().join(format!("{name}.auth"));
            std::fs::write(&auth_file, format!("{auth_line}\n")).unwrap();
            args.push("--upstream-proxy-auth-file".to_owned());
            args.push(auth_file.display().to_string());
        }
        let capture = self.dir.path().join(format!("{name}.jsonl"));
        let log = self.dir.path().join(format!("{name}.log"));
        let port = free_port().unwrap();
        let proxy = RegtapProxy::start(
            &self.regtap,
            port,
            &capture,
            &[format!("{}=127.0.0.1", self.registry_host)],
            &self.upstream_ca,
            &args,
            &log,
        )
        .unwrap();
        action(&format!("http://127.0.0.1:{port}"));
        proxy.stop();
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        (Capture::read(&capture).unwrap(), log)
    }

    fn skopeo(&self, proxy_url: &str, args: &[&str]) -> CommandOutput {
        let home = self.dir.path().join("skopeo-home");
        std::fs::create_dir_all(&home).unwrap();
        let mut command = Command::new("skopeo");
        command
            .arg("--insecure-policy")
            .args(args)
            .env("HTTPS_PROXY", proxy_url)
            .env("NO_PROXY", "")
            .env("SSL_CERT_FILE", &self.ca_bundle)
            .env("HOME", &home)
            .env("TMPDIR", &home)
            .env("XDG_RUNTIME_DIR", &home);
        CommandOutput::within(command, Duration::from_secs(120))
    }
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn skopeo_pushes_through_regtap_chained_to_tinyproxy() {
    if skip_when_missing(
        "skopeo_pushes_through_regtap_chained_to_tinyproxy",
        &missing(),
    ) {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("regtap-chain-")
        .tempdir()
        .unwrap();
    let hosts = LabHosts::unique().unwrap();
    let pki = Pki::generate(&hosts).unwrap();
    let pki_files = pki.write_to(dir.path()).unwrap();
    let registry_dir = dir.path().join("registry");
    std::fs::create_dir_all(&registry_dir).unwrap();
    let registry = Registry::start(
        &registry_dir,
        free_port().unwrap(),
        &pki_files,
        &RegistryAuth::Basic {
            users: vec![(LAB_USER.to_owned(), LAB_PASSWORD.to_owned())],
        },
    )
    .unwrap();
    let regtap = Regtap {
        bin: PathBuf::from(env!("CARGO_BIN_EXE_regtap")),
        home: dir.path().join("regtap-home"),
    };
    let regtap_ca = dir.path().join("regtap-ca.pem");
    regtap.init_ca(&regtap_ca).unwrap();
    let ca_bundle = dir.path().join("ca-bundle.pem");
    let mut bundle = std::fs::read(SYSTEM_CA_BUNDLE).unwrap();
    bundle.push(b'\n');
    bundle.extend(std::fs::read(&regtap_ca).unwrap());
    std::fs::write(&ca_bundle, bundle).unwrap();
    let (tinyproxy, tinyproxy_port) = start_tinyproxy(dir.path(), true);
    let (_open_tinyproxy, open_port) = start_tinyproxy(dir.path(), false);
    let chain = Chain {
        registry_host: format!("{}:{}", hosts.registry(), registry.port),
        registry,
        regtap,
        ca_bundle,
        upstream_ca: pki_files.ca.clone(),
        dir,
    };
    let tinyproxy_url = format!("http://127.0.0.1:{tinyproxy_port}");

    // A push through the whole chain.
    let image = TestImage::new(4711, &[3000, 70_000]).unwrap();
    let target = format!("{}/chain/app:v1", chain.registry_host);
    let archive = chain.dir.path().join("image.tar");
    image.write_docker_archive(&archive, &[&target]).unwrap();
    let creds = format!("{LAB_USER}:{LAB_PASSWORD}");
    let (capture, log) = chain.capture(
        "push",
        tinyproxy_port,
        Some(&format!("{PROXY_USER}:{PROXY_PASSWORD}")),
        |proxy| {
            chain
                .skopeo(
                    proxy,
                    &[
                        "copy",
                        "--dest-creds",
                        &creds,
                        &format!("docker-archive:{}", archive.display()),
                        &format!("docker://{target}"),
                    ],
                )
                .assert_success();
        },
    );
    let listing: Vec<String> = capture
        .flows
        .iter()
        .map(|f| {
            format!(
                "{} {} {:?} {:?}",
                f.request.method,
                f.request.url,
                f.status(),
                f.error
            )
        })
        .collect();
    let listing = listing.join("\n");
    assert!(
        log.contains(&format!(
            "regtap: upstream proxy for https targets: {tinyproxy_url} (--upstream-proxy, Basic auth)"
        )),
        "{log}"
    );
    let setting = &serde_json::to_value(&capture.header.settings).unwrap()["upstream_proxy"];
    assert_eq!(setting["https"]["url"], tinyproxy_url.as_str());
    assert_eq!(setting["https"]["basic_auth"], true);
    for flow in &capture.flows {
        assert_eq!(flow.error, None, "{listing}");
        assert_eq!(
            flow.upstream_proxy.as_deref(),
            Some(tinyproxy_url.as_str()),
            "{listing}"
        );
    }
    let manifest_put = capture
        .flows
        .iter()
        .find(|f| {
            f.request.method == "PUT" && f.request.url.ends_with("/v2/chain/app/manifests/v1")
        })
        .unwrap_or_else(|| panic!("no manifest PUT:\n{listing}"));
    assert_eq!(manifest_put.status(), Some(201), "{listing}");
    let blob_puts = capture
        .flows
        .iter()
        .filter(|f| f.request.method == "PUT" && f.request.url.contains("/blobs/uploads/"))
        .filter(|f| f.status() == Some(201))
        .count();
    assert_eq!(blob_puts, 3, "2 layers and the config:\n{listing}");
    // `regtap inspect` says the flows left through the upstream proxy.
    let inspect = Command::new(env!("CARGO_BIN_EXE_regtap"))
        .arg("inspect")
        .arg(chain.dir.path().join("push.jsonl"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    let n = capture.flows.len();
    assert!(
        text.contains(&format!(
            "{n} flows through upstream proxy {tinyproxy_url}\n"
        )),
        "{text}"
    );
    // tinyproxy saw the tunnels regtap asked for, to the --resolve address.
    let tinyproxy_log = tinyproxy.log_tail(20_000);
    assert!(
        tinyproxy_log.contains(&format!("CONNECT 127.0.0.1:{}", chain.registry.port)),
        "{tinyproxy_log}"
    );

    // A proxy without authentication: the image reads back through it.
    let open_url = format!("http://127.0.0.1:{open_port}");
    let (open, _) = chain.capture("open", open_port, None, |proxy| {
        chain
            .skopeo(
                proxy,
                &["inspect", "--creds", &creds, &format!("docker://{target}")],
            )
            .assert_success();
    });
    assert_eq!(
        serde_json::to_value(&open.header.settings).unwrap()["upstream_proxy"]["https"]["basic_auth"],
        false
    );
    let manifest_get = open
        .flows
        .iter()
        .find(|f| {
            f.request.method == "GET" && f.request.url.ends_with("/v2/chain/app/manifests/v1")
        })
        .unwrap_or_else(|| panic!("no manifest GET in {:?}", open.flows));
    assert_eq!(manifest_get.status(), Some(200));
    for flow in &open.flows {
        assert_eq!(flow.error, None);
        assert_eq!(flow.upstream_proxy.as_deref(), Some(open_url.as_str()));
    }

    // A wrong password: tinyproxy's refusal (1.11 answers 401, not 407, with
    // a Server header, no Proxy-Agent) is the flow's error, naming it.
    let (refused, _) = chain.capture(
        "refused",
        tinyproxy_port,
        Some(&format!("{PROXY_USER}:wrong-password")),
        |proxy| {
            let out = chain.skopeo(
                proxy,
                &["inspect", "--creds", &creds, &format!("docker://{target}")],
            );
            assert!(!out.success, "skopeo got through a proxy that refused it");
        },
    );
    let failed: Vec<_> = refused
        .flows
        .iter()
        .filter_map(|f| f.error.as_ref())
        .collect();
    assert!(!failed.is_empty(), "no failure recorded");
    for error in failed {
        assert_eq!(error.stage, ErrorStage::UpstreamProxy, "{error:?}");
        assert!(
            error.message.contains(&format!(
                "the upstream proxy {tinyproxy_url} (--upstream-proxy, Basic auth) refused CONNECT 127.0.0.1:{}: 401 Unauthorized (Server: tinyproxy/",
                chain.registry.port
            )),
            "{error:?}"
        );
        assert!(
            error.message.contains("regtap sent Basic credentials"),
            "{error:?}"
        );
    }

    // Not a byte of the proxy's password in any capture, body or log regtap wrote.
    let encoded = base64_of(&format!("{PROXY_USER}:{PROXY_PASSWORD}"));
    let mut checked = 0;
    for file in files_under(chain.dir.path()) {
        let name = file.display().to_string();
        // The secret's own files, and tinyproxy's.
        if name.ends_with(".auth") || name.contains("/tinyproxy-") {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        for secret in [PROXY_PASSWORD, encoded.as_str()] {
            assert!(!text.contains(secret), "{secret} in {name}");
        }
        checked += 1;
    }
    assert!(checked > 10, "only {checked} files checked");
}

/// Standard base64, as a `Proxy-Authorization: Basic` value holds it.
fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
