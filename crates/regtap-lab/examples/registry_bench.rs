//! The registry benchmark behind `bench/registry-throughput.sh`: the same
//! transfers direct, through `regtap proxy` and through mitmproxy, interleaved
//! per repetition, against the lab's distribution over TLS.
//!
//! - raw: one monolithic blob upload (`PUT …?digest=`) and one blob download
//!   with curl, over HTTP/1.1 and HTTP/2 (client side; the proxies speak
//!   HTTP/1.1 upstream). Direct means curl to the registry itself.
//! - dockerd push and pull of an image of pseudo-random layers, and skopeo
//!   copy of it from the registry (pull) and back (push). dockerd cannot
//!   resolve the lab's names, so its direct route is a blind CONNECT tunnel on
//!   the proxy port (bytes copied, nothing decrypted).
//!
//! Every push starts from an empty registry storage, so every blob really
//! travels. Proxy CPU time is read from /proc/PID/stat around each transfer;
//! peak RSS is the proxy's VmHWM after all its transfers of one repetition.
//!
//! Usage: registry_bench REGTAP_BINARY MIB REPS [MITMDUMP_BINARY]
//! (`REGTAP_BENCH_ONLY=raw` or `=clients` runs only those transfers.)

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use regtap_lab::image::{TestImage, pseudo_random};
use regtap_lab::process::{ChildGuard, CommandOutput, port_open};
use regtap_lab::{LAB_PASSWORD, LAB_USER, Lab, Via};

type Error = Box<dyn std::error::Error>;

const USAGE: &str = "usage: registry_bench REGTAP_BINARY MIB REPS [MITMDUMP_BINARY]";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Route {
    Direct,
    Regtap,
    Mitmproxy,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Route::Direct => "direct",
            Route::Regtap => "regtap",
            Route::Mitmproxy => "mitmproxy",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Transfer {
    RawUpload(Http),
    RawDownload(Http),
    DockerPush,
    DockerPull,
    SkopeoPull,
    SkopeoPush,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Http {
    H1,
    H2,
}

impl Transfer {
    const ALL: [Transfer; 8] = [
        Transfer::RawUpload(Http::H1),
        Transfer::RawUpload(Http::H2),
        Transfer::RawDownload(Http::H1),
        Transfer::RawDownload(Http::H2),
        Transfer::DockerPush,
        Transfer::DockerPull,
        Transfer::SkopeoPull,
        Transfer::SkopeoPush,
    ];

    fn is_raw(self) -> bool {
        matches!(self, Transfer::RawUpload(_) | Transfer::RawDownload(_))
    }
}

impl fmt::Display for Transfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let http = |h: &Http| match h {
            Http::H1 => "HTTP/1.1",
            Http::H2 => "HTTP/2",
        };
        match self {
            Transfer::RawUpload(h) => write!(f, "raw upload {}", http(h)),
            Transfer::RawDownload(h) => write!(f, "raw download {}", http(h)),
            Transfer::DockerPush => f.write_str("dockerd push"),
            Transfer::DockerPull => f.write_str("dockerd pull"),
            Transfer::SkopeoPull => f.write_str("skopeo copy registry→dir"),
            Transfer::SkopeoPush => f.write_str("skopeo copy dir→registry"),
        }
    }
}

/// One transfer's wall time, and the CPU seconds the proxy and the whole
/// machine (client, registry, proxy, kernel) spent during it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    seconds: f64,
    proxy_cpu: Option<f64>,
    machine_cpu: f64,
}

/// One route's transfers, and the proxy's peak RSS in KiB after them.
type RouteRun = (Vec<(Transfer, Sample)>, Option<u64>);

struct Bench {
    lab: Lab,
    mib: usize,
    scratch: PathBuf,
    blob: PathBuf,
    blob_digest: String,
    image_ref: String,
    mitmdump: Option<PathBuf>,
    mitm_confdir: PathBuf,
    mitm_addon: PathBuf,
    /// `REGTAP_BENCH_ONLY=raw` or `clients` runs only those transfers.
    transfers: Vec<Transfer>,
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let regtap = PathBuf::from(args.next().ok_or(USAGE)?);
    let mib: usize = args.next().ok_or(USAGE)?.parse()?;
    let reps: usize = args.next().ok_or(USAGE)?.parse()?;
    let mitmdump = args.next().map(PathBuf::from);
    if reps == 0 || mib < 2 {
        return Err(USAGE.into());
    }
    let missing = regtap_lab::missing_prerequisites();
    if !missing.is_empty() {
        return Err(format!("the lab needs: {}", missing.join(", ")).into());
    }

    // mitmproxy's CA must exist before dockerd starts: dockerd reads the
    // certificates it trusts once.
    let mitm_confdir = tempfile::Builder::new()
        .prefix("regtap-bench-mitmproxy-")
        .tempdir()?;
    let mut also_trusted = Vec::new();
    if let Some(mitmdump) = &mitmdump {
        also_trusted.push(mitmproxy_ca(mitmdump, mitm_confdir.path())?);
    }
    let lab = Lab::start(Via::Compared {
        bin: regtap,
        also_trusted,
    })?;
    let scratch = lab.dir().join("bench");
    std::fs::create_dir_all(&scratch)?;
    let mut bench = Bench::prepare(lab, scratch, mib, mitmdump, mitm_confdir.path())?;

    let mut routes = vec![Route::Direct, Route::Regtap];
    if bench.mitmdump.is_some() {
        routes.push(Route::Mitmproxy);
    }
    let mut samples: BTreeMap<(Transfer, Route), Vec<Sample>> = BTreeMap::new();
    let mut peak_rss: BTreeMap<Route, Vec<u64>> = BTreeMap::new();
    for rep in 1..=reps {
        for &route in &routes {
            eprintln!("repetition {rep}/{reps}: {route}");
            let (measured, rss) = bench.run_route(route, rep == 1 && route == routes[0])?;
            for (transfer, sample) in measured {
                samples.entry((transfer, route)).or_default().push(sample);
            }
            if let Some(kib) = rss {
                peak_rss.entry(route).or_default().push(kib);
            }
        }
    }
    report(&samples, &peak_rss, &routes, mib, reps);
    Ok(())
}

impl Bench {
    /// The raw blob, the image (loaded into dockerd) and mitmproxy's files.
    fn prepare(
        lab: Lab,
        scratch: PathBuf,
        mib: usize,
        mitmdump: Option<PathBuf>,
        mitm_confdir: &Path,
    ) -> Result<Self, Error> {
        let only = std::env::var("REGTAP_BENCH_ONLY").unwrap_or_default();
        let transfers: Vec<Transfer> = Transfer::ALL
            .into_iter()
            .filter(|t| match only.as_str() {
                "raw" => t.is_raw(),
                "clients" => !t.is_raw(),
                _ => true,
            })
            .collect();
        let blob_bytes = pseudo_random(0x5eed, mib << 20);
        let blob_digest = regtap_lab::verify::sha256_hex(&blob_bytes);
        let blob = scratch.join("blob");
        std::fs::write(&blob, &blob_bytes)?;
        drop(blob_bytes);

        // Two layers: dockerd compresses layers in parallel on push, and its
        // vfs storage copies every lower layer again for each layer it adds.
        let image_ref = format!("{}/bench/app:latest", lab.registry_host());
        if transfers.iter().any(|t| !t.is_raw()) {
            let image = TestImage::new(0xbe7c4, &[mib << 19, mib << 19])?;
            let archive = scratch.join("image.tar");
            image.write_docker_archive(&archive, &[&image_ref])?;
            drop(image);
            check(lab.docker(&["load", "-i", &archive.display().to_string()]))?;
            std::fs::remove_file(&archive)?;
        }

        // mitmproxy sends the lab's names to 127.0.0.1, as regtap's --resolve does.
        let mitm_addon = scratch.join("lab_names.py");
        std::fs::write(
            &mitm_addon,
            format!(
                "# The lab's names resolve to 127.0.0.1 (regtap gets --resolve).\n\
                 def server_connect(data):\n    \
                     host, port = data.server.address\n    \
                     if host in ({:?}, {:?}):\n        \
                         data.server.address = (\"127.0.0.1\", port)\n",
                lab.hosts.registry(),
                lab.hosts.auth()
            ),
        )?;
        Ok(Bench {
            transfers,
            lab,
            mib,
            scratch,
            blob,
            blob_digest,
            image_ref,
            mitmdump,
            mitm_confdir: mitm_confdir.to_owned(),
            mitm_addon,
        })
    }

    /// Every transfer once through `route`; the proxy's peak RSS in KiB after.
    fn run_route(&mut self, route: Route, first: bool) -> Result<RouteRun, Error> {
        let mut tunnel = None;
        let mut mitm = None;
        let pid = match route {
            Route::Direct => {
                tunnel = Some(self.lab.tunnel_on_proxy_port()?);
                None
            }
            Route::Regtap => {
                self.lab.start_capture("bench")?;
                self.lab.proxy_pid()
            }
            Route::Mitmproxy => {
                self.lab.release_proxy_port();
                let guard = self.start_mitmdump()?;
                let pid = guard.pid();
                mitm = Some(guard);
                pid
            }
        };
        if first {
            check(self.lab.docker(&[
                "login",
                &self.lab.registry_host(),
                "-u",
                LAB_USER,
                "-p",
                LAB_PASSWORD,
            ]))?;
        }
        let mut measured = Vec::new();
        for transfer in self.transfers.clone() {
            let cpu_before = pid.map(cpu_seconds).transpose()?;
            let machine_before = machine_busy_seconds()?;
            let seconds = self
                .transfer(transfer, route)
                .map_err(|e| format!("{transfer} via {route}: {e}"))?;
            let machine_cpu = machine_busy_seconds()? - machine_before;
            let proxy_cpu = match (pid, cpu_before) {
                (Some(pid), Some(before)) => Some(cpu_seconds(pid)? - before),
                _ => None,
            };
            measured.push((
                transfer,
                Sample {
                    seconds,
                    proxy_cpu,
                    machine_cpu,
                },
            ));
        }
        let rss = pid.map(vm_hwm_kib).transpose()?;
        drop(tunnel);
        drop(mitm);
        if route == Route::Regtap {
            self.check_capture()?;
        }
        self.lab.release_proxy_port();
        Ok((measured, rss))
    }

    /// regtap's capture holds the raw blob's SHA-256, uploaded and downloaded
    /// over both protocols: the proxy recorded what it was timed passing on.
    fn check_capture(&mut self) -> Result<(), Error> {
        let capture = self.lab.finish_capture()?;
        let raw = self.transfers.iter().filter(|t| t.is_raw()).count();
        let with_blob = capture
            .flows
            .iter()
            .filter(|flow| {
                let blob = Some(self.blob_digest.as_str());
                let response = flow
                    .response
                    .as_ref()
                    .and_then(|r| r.body.sha256.as_deref());
                flow.request.body.sha256.as_deref() == blob
                    || (flow.request.method == "GET" && response == blob)
            })
            .count();
        if with_blob != raw {
            return Err(format!(
                "regtap's capture has {with_blob} flows carrying the raw blob, expected {raw}"
            )
            .into());
        }
        Ok(())
    }

    fn start_mitmdump(&self) -> Result<ChildGuard, Error> {
        let mitmdump = self.mitmdump.as_ref().ok_or("no mitmdump")?;
        let port = self.lab.proxy_port();
        let mut command = Command::new(mitmdump);
        command
            .args(["--listen-host", "127.0.0.1", "--listen-port"])
            .arg(port.to_string())
            .args(["--set", "stream_large_bodies=1m", "--set", "flow_detail=0"])
            .arg("--set")
            .arg(format!("confdir={}", self.mitm_confdir.display()))
            .arg("--set")
            .arg(format!(
                "ssl_verify_upstream_trusted_ca={}",
                self.lab.pki_files.ca.display()
            ))
            .arg("-s")
            .arg(&self.mitm_addon);
        let mut guard = ChildGuard::spawn("mitmdump", command, &self.scratch.join("mitmdump.log"))?
            .grace(Duration::from_secs(5));
        guard.wait_until("its listening port", Duration::from_secs(30), || {
            port_open(port)
        })?;
        Ok(guard)
    }

    /// Runs one transfer; its wall time in seconds.
    fn transfer(&self, transfer: Transfer, route: Route) -> Result<f64, Error> {
        match transfer {
            Transfer::RawUpload(http) => self.raw_upload(http, route),
            Transfer::RawDownload(http) => self.raw_download(http, route),
            Transfer::DockerPush => {
                self.empty_registry()?;
                timed(|| check(self.lab.docker(&["push", &self.image_ref])))
            }
            Transfer::DockerPull => {
                check(self.lab.docker(&["rmi", &self.image_ref]))?;
                timed(|| check(self.lab.docker(&["pull", &self.image_ref])))
            }
            Transfer::SkopeoPull => {
                let dir = self.scratch.join("skopeo-dir");
                let _ = std::fs::remove_dir_all(&dir);
                let source = format!("docker://{}", self.image_ref);
                let target = format!("dir:{}", dir.display());
                timed(|| self.skopeo(&["--src-creds", &creds(), &source, &target]))
            }
            Transfer::SkopeoPush => {
                self.empty_registry()?;
                let dir = self.scratch.join("skopeo-dir");
                let source = format!("dir:{}", dir.display());
                let target = format!("docker://{}", self.image_ref);
                timed(|| self.skopeo(&["--dest-creds", &creds(), &source, &target]))
            }
        }
    }

    /// `skopeo copy ARGS…` with a fresh HOME, so that no blob-info cache
    /// makes it mount blobs instead of sending them.
    fn skopeo(&self, args: &[&str]) -> Result<(), Error> {
        let home = self.scratch.join("skopeo-home");
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home)?;
        let mut command = Command::new("skopeo");
        command.args(["--insecure-policy", "copy"]).args(args);
        self.lab.client_env(&mut command, &home);
        check(CommandOutput::of(command))
    }

    /// Deletes every repository and blob, so that the next push sends all.
    fn empty_registry(&self) -> Result<(), Error> {
        let storage = self.lab.dir().join("registry/storage/docker");
        match std::fs::remove_dir_all(&storage) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// curl to the Basic-auth registry, direct or through the proxy port.
    fn curl(&self, http: Http, route: Route) -> Command {
        let mut command = Command::new("curl");
        command
            .args(["--silent", "--show-error", "--fail", "--user"])
            .arg(creds())
            .arg(match http {
                Http::H1 => "--http1.1",
                Http::H2 => "--http2",
            })
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy");
        match route {
            Route::Direct => {
                let host = self.lab.basic_registry_host();
                command
                    .arg("--cacert")
                    .arg(&self.lab.pki_files.ca)
                    .arg("--resolve")
                    .arg(format!("{host}:127.0.0.1"))
                    .args(["--noproxy", "*"]);
            }
            Route::Regtap | Route::Mitmproxy => {
                command
                    .arg("--cacert")
                    .arg(&self.lab.ca_bundle)
                    .arg("--proxy")
                    .arg(self.lab.proxy_url());
            }
        }
        command
    }

    fn raw_upload(&self, http: Http, route: Route) -> Result<f64, Error> {
        let base = format!("https://{}/v2/bench/raw", self.lab.basic_registry_host());
        let mut start = self.curl(http, route);
        start
            .args([
                "--request",
                "POST",
                "--dump-header",
                "-",
                "--output",
                "/dev/null",
            ])
            .arg(format!("{base}/blobs/uploads/"));
        let head = check_stdout(CommandOutput::of(start))?;
        let location = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("location")
                    .then(|| value.trim().to_owned())
            })
            .ok_or_else(|| format!("no Location in the upload's answer:\n{head}"))?;
        let separator = if location.contains('?') { '&' } else { '?' };
        let mut put = self.curl(http, route);
        // No `Expect: 100-continue` wait: the body goes at once, as Go clients send it.
        put.args([
            "--header",
            "Expect:",
            "--output",
            "/dev/null",
            "--upload-file",
        ])
        .arg(&self.blob)
        .arg(format!(
            "{location}{separator}digest=sha256:{}",
            self.blob_digest
        ));
        timed(|| check(CommandOutput::of(put)))
    }

    fn raw_download(&self, http: Http, route: Route) -> Result<f64, Error> {
        let url = format!(
            "https://{}/v2/bench/raw/blobs/sha256:{}",
            self.lab.basic_registry_host(),
            self.blob_digest
        );
        let mut get = self.curl(http, route);
        get.args(["--write-out", "%{size_download}", "--output", "/dev/null"])
            .arg(url);
        let start = Instant::now();
        let out = check_stdout(CommandOutput::of(get))?;
        let seconds = start.elapsed().as_secs_f64();
        let expected = (self.mib << 20).to_string();
        if out.trim() != expected {
            return Err(format!("downloaded {} bytes, expected {expected}", out.trim()).into());
        }
        Ok(seconds)
    }
}

/// Has mitmdump create its CA in `confdir`; the certificate's path.
fn mitmproxy_ca(mitmdump: &Path, confdir: &Path) -> Result<PathBuf, Error> {
    let cert = confdir.join("mitmproxy-ca-cert.pem");
    let mut command = Command::new(mitmdump);
    command
        .args(["--listen-host", "127.0.0.1", "--listen-port", "0", "--set"])
        .arg(format!("confdir={}", confdir.display()));
    let mut guard = ChildGuard::spawn("mitmdump", command, &confdir.join("first-start.log"))?
        .grace(Duration::from_secs(5));
    guard.wait_until("its CA", Duration::from_secs(60), || cert.exists())?;
    guard.stop();
    Ok(cert)
}

fn creds() -> String {
    format!("{LAB_USER}:{LAB_PASSWORD}")
}

fn timed(run: impl FnOnce() -> Result<(), Error>) -> Result<f64, Error> {
    let start = Instant::now();
    run()?;
    Ok(start.elapsed().as_secs_f64())
}

fn check(out: CommandOutput) -> Result<(), Error> {
    check_stdout(out).map(drop)
}

fn check_stdout(out: CommandOutput) -> Result<String, Error> {
    if out.success {
        Ok(out.stdout)
    } else {
        Err(format!("{} failed:\n{}", out.command, out.combined()).into())
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn report(
    samples: &BTreeMap<(Transfer, Route), Vec<Sample>>,
    peak_rss: &BTreeMap<Route, Vec<u64>>,
    routes: &[Route],
    mib: usize,
    reps: usize,
) {
    let gib = mib as f64 / 1024.0;
    println!();
    println!(
        "{mib} MiB per transfer, {reps} repetitions (routes interleaved in each), {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "raw: speed × direct = direct time / route time (goal ≥ 0.95); \
         clients: time × direct = route time / direct time (goal ≤ 1.05, and no worse than mitmproxy)"
    );
    println!(
        "{:<26} {:<10} {:>9} {:>17} {:>10} {:>12} {:>14} {:>9}",
        "transfer",
        "route",
        "median s",
        "min–max s",
        "× direct",
        "CPU-s/GiB",
        "machine CPU-s",
        "cores"
    );
    for transfer in Transfer::ALL {
        let direct = samples
            .get(&(transfer, Route::Direct))
            .map(|s| median(&mut s.iter().map(|s| s.seconds).collect::<Vec<_>>()));
        for &route in routes {
            let Some(runs) = samples.get(&(transfer, route)) else {
                continue;
            };
            let mut seconds: Vec<f64> = runs.iter().map(|s| s.seconds).collect();
            let med = median(&mut seconds);
            let (min, max) = (seconds[0], seconds[seconds.len() - 1]);
            let ratio = match (route, direct) {
                (Route::Direct, _) | (_, None) => "-".to_owned(),
                (_, Some(direct)) if transfer.is_raw() => format!("{:.2}", direct / med),
                (_, Some(direct)) => format!("{:.2}", med / direct),
            };
            let mut cpu: Vec<f64> = runs.iter().filter_map(|s| s.proxy_cpu).collect();
            let cpu = if cpu.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.2}", median(&mut cpu) / gib)
            };
            let machine = median(&mut runs.iter().map(|s| s.machine_cpu).collect::<Vec<_>>());
            println!(
                "{:<26} {:<10} {:>9.2} {:>17} {:>10} {:>12} {:>14.2} {:>9.2}",
                transfer.to_string(),
                route.to_string(),
                med,
                format!("{min:.2}–{max:.2}"),
                ratio,
                cpu,
                machine,
                machine / med
            );
        }
    }
    for (route, kib) in peak_rss {
        let max = kib.iter().max().copied().unwrap_or(0);
        println!(
            "{route}: peak RSS {:.1} MiB (max over repetitions; goal for regtap ≤ 32 MiB)",
            max as f64 / 1024.0
        );
    }
    println!(
        "CPU-s/GiB: the proxy's user+system CPU during the transfer per GiB of payload \
         (image transfers count the image's {mib} MiB of layers)"
    );
    println!(
        "machine CPU-s: every core's busy time during the transfer (client, registry, proxy, \
         kernel; /proc/stat, 10 ms ticks), medians; cores: that over the median time, the \
         cores kept busy on average"
    );
}

/// Busy time of every core so far (all but idle and iowait), in seconds.
fn machine_busy_seconds() -> Result<f64, Error> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .ok_or("no cpu line in /proc/stat")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let busy: u64 = ticks.iter().take(8).sum::<u64>()
        - ticks.get(3).copied().unwrap_or(0)
        - ticks.get(4).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(busy as f64 / per_second)
}

/// Peak resident set size of `pid`, in KiB.
fn vm_hwm_kib(pid: u32) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .ok_or("no VmHWM in /proc/PID/status")?;
    Ok(kib.parse()?)
}

/// User plus system CPU time of `pid` so far, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // After the parenthesised name the fields start at the 3rd (state), so
    // utime (14th) and stime (15th) are at 11 and 12.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or("malformed /proc/PID/stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks = |i: usize| -> Result<u64, Error> {
        Ok(fields.get(i).ok_or("short /proc/PID/stat")?.parse()?)
    };
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((ticks(11)? + ticks(12)?) as f64 / per_second)
}
