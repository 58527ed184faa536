//! `regtap setup docker`: how to point dockerd (and other container tools) at
//! the proxy, and make them trust regtap's CA.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use regtap_proxy::{Ca, data_dir_from_env};

/// Where systemd looks for dockerd's drop-ins.
const DOCKER_DROP_IN: &str = "/etc/systemd/system/docker.service.d/http-proxy.conf";

/// The system trust stores Go programs (dockerd) read, Debian's first.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
];

#[derive(Args)]
pub struct SetupArgs {
    #[command(subcommand)]
    command: SetupCommand,
}

#[derive(Subcommand)]
enum SetupCommand {
    /// Print (with --write: install) the systemd drop-in that makes dockerd use
    /// the proxy, and how to make it trust regtap's CA
    Docker {
        /// Install the drop-in (needs root); dockerd still has to be restarted
        #[arg(long)]
        write: bool,
        /// The proxy's URL, as dockerd reaches it
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
        proxy: String,
    },
}

pub fn run(args: SetupArgs) -> anyhow::Result<ExitCode> {
    let SetupCommand::Docker { write, proxy } = args.command;
    let drop_in = drop_in(&proxy);
    let ca_path = data_dir_from_env()
        .map(|dir| Ca::cert_path_in(&dir).display().to_string())
        .unwrap_or_else(|_| "$REGTAP_HOME/ca.pem".to_owned());

    if write {
        let path = Path::new(DOCKER_DROP_IN);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {} (run as root?)", dir.display()))?;
        }
        std::fs::write(path, &drop_in)
            .with_context(|| format!("cannot write {DOCKER_DROP_IN} (run as root?)"))?;
        println!("Wrote {DOCKER_DROP_IN}:\n\n{drop_in}");
    } else {
        println!("# {DOCKER_DROP_IN} (install it with `regtap setup docker --write`)\n{drop_in}");
    }
    print!("{}", instructions(&proxy, &ca_path));
    if let Some(ca) = data_dir_from_env().ok().and_then(|dir| Ca::load(&dir).ok()) {
        let unconstrained = ca.info().is_ok_and(|info| info.name_constraints.is_empty());
        let bundles: Vec<&Path> = SYSTEM_BUNDLES.iter().map(Path::new).collect();
        if unconstrained && trusted_by_any(ca.cert_pem(), &bundles) {
            eprintln!("{UNCONSTRAINED_WARNING}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

const UNCONSTRAINED_WARNING: &str = "\
regtap: WARNING: regtap's CA has no name constraints and is trusted system-wide:
  whoever reads its key can impersonate every site to this machine. Prefer a CA
  limited to your registries (`regtap ca init --force --name-constraint
  registry.example --validity-days 30`, then trust it again), or trust it per
  registry in /etc/docker/certs.d/<registry-host>/ca.crt, and remove it from
  the system store when you are done.";

/// Whether the certificate of `cert_pem` is in one of the PEM `bundles`.
fn trusted_by_any(cert_pem: &str, bundles: &[&Path]) -> bool {
    let compact = |text: &str| -> String { text.split_whitespace().collect() };
    let body = compact(
        &cert_pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect::<Vec<_>>()
            .join(""),
    );
    !body.is_empty()
        && bundles.iter().any(|bundle| {
            std::fs::read_to_string(bundle).is_ok_and(|text| compact(&text).contains(&body))
        })
}

fn drop_in(proxy: &str) -> String {
    format!(
        "[Service]\n\
         Environment=\"HTTP_PROXY={proxy}\"\n\
         Environment=\"HTTPS_PROXY={proxy}\"\n\
         Environment=\"NO_PROXY=localhost,127.0.0.0/8,::1\"\n"
    )
}

fn instructions(proxy: &str, ca_path: &str) -> String {
    format!(
        r#"
Then reload systemd and restart dockerd (this stops running containers):
  sudo systemctl daemon-reload && sudo systemctl restart docker
  docker info | grep -i proxy        # shows the proxy in use

Trust regtap's CA (created by `regtap ca init` or the first `regtap proxy`: {ca_path}).
Whoever holds its key can impersonate any site the CA is trusted for: before
trusting it system-wide, limit it to your registries and shorten its life:
  regtap ca init --force --name-constraint <registry-host> --validity-days 30
  System store (needed when blob downloads redirect to a storage host, which
  dockerd checks against the system store, not certs.d), Debian/Ubuntu:
    regtap ca export --format pem -o /usr/local/share/ca-certificates/regtap.crt
    sudo update-ca-certificates && sudo systemctl restart docker
  Or per registry, for dockerd only:
    sudo mkdir -p /etc/docker/certs.d/<registry-host>
    regtap ca export --format pem -o /etc/docker/certs.d/<registry-host>/ca.crt

Go clients (dockerd, containerd, skopeo, podman) never send requests for
localhost or loopback IPs through a proxy, whatever NO_PROXY says: a registry
on 127.0.0.1 is not captured. Give it a name instead, e.g. `registry.test` in
/etc/hosts pointing at a non-loopback address, or run the proxy with
`--resolve registry.test:443=127.0.0.1` and use registry.test in image names.

skopeo and podman read the proxy from the environment:
  export HTTPS_PROXY={proxy} HTTP_PROXY={proxy} NO_PROXY=localhost,127.0.0.0/8,::1
  and trust the CA through the system store or
  /etc/containers/certs.d/<registry-host>/ca.crt (skopeo also: --cert-dir DIR).

containerd: the same drop-in as above, as
  /etc/systemd/system/containerd.service.d/http-proxy.conf, then
  sudo systemctl daemon-reload && sudo systemctl restart containerd;
  it trusts the system store, or /etc/containerd/certs.d/<registry-host>/ca.crt.
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_in_sets_both_proxies_and_keeps_loopback_direct() {
        let text = drop_in("http://10.0.0.5:8080");
        assert!(text.starts_with("[Service]\n"));
        assert!(text.contains("Environment=\"HTTP_PROXY=http://10.0.0.5:8080\"\n"));
        assert!(text.contains("Environment=\"HTTPS_PROXY=http://10.0.0.5:8080\"\n"));
        assert!(text.contains("Environment=\"NO_PROXY=localhost,127.0.0.0/8,::1\"\n"));
    }

    #[test]
    fn instructions_cover_trust_loopback_and_other_tools() {
        let text = instructions(
            "http://127.0.0.1:8080",
            "/home/u/.local/share/regtap/ca.pem",
        );
        for needle in [
            "update-ca-certificates",
            "/etc/docker/certs.d/<registry-host>/ca.crt",
            "redirect to a storage host",
            "never send requests for\nlocalhost or loopback IPs",
            "export HTTPS_PROXY=http://127.0.0.1:8080",
            "containerd.service.d",
            "/home/u/.local/share/regtap/ca.pem",
            "--name-constraint <registry-host> --validity-days 30",
        ] {
            assert!(text.contains(needle), "missing {needle:?}");
        }
    }

    #[test]
    fn a_ca_in_a_system_bundle_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::init(
            &dir.path().join("home"),
            &regtap_proxy::CaOptions::default(),
        )
        .unwrap();
        let other = Ca::init(
            &dir.path().join("other"),
            &regtap_proxy::CaOptions::default(),
        )
        .unwrap();
        let bundle = dir.path().join("ca-certificates.crt");
        // update-ca-certificates concatenates PEM files.
        std::fs::write(&bundle, format!("{}\n{}", other.cert_pem(), ca.cert_pem())).unwrap();
        assert!(trusted_by_any(
            ca.cert_pem(),
            &[Path::new("/nonexistent"), &bundle]
        ));
        std::fs::write(&bundle, other.cert_pem()).unwrap();
        assert!(!trusted_by_any(ca.cert_pem(), &[&bundle]));
    }
}
