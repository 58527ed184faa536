//! Throughput benchmark: 1 GiB upload and 1 GiB download against a local TLS
//! upstream, direct, through a `regtap proxy` process and (when given a
//! `mitmdump`) through mitmproxy, in one run. Prints MB/s for each, the
//! proxied/direct ratio, and each proxy's peak RSS (`VmHWM`) and CPU time.
//! Run it with `bench/proxy-throughput.sh`.
//!
//! Usage: throughput REGTAP_BINARY [MIB] [MITMDUMP_BINARY MITM_DEFAULT_MIB]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{MIB, random_mib, repeated_sha256, start_upstream, upstream_pki};

type Error = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage: throughput REGTAP_BINARY [MIB] [MITMDUMP_BINARY MITM_DEFAULT_MIB]";

/// One row of the result table.
struct Measured {
    route: String,
    mib: usize,
    upload: Duration,
    download: Duration,
    /// Peak RSS (KiB) and CPU seconds of the proxy process, if any.
    proxy: Option<(u64, f64)>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let regtap = args.next().ok_or(USAGE)?;
    let mib: usize = args.next().map_or(Ok(1024), |m| m.parse())?;
    let mitmdump = match (args.next(), args.next()) {
        (Some(binary), Some(default_mib)) => Some((binary, default_mib.parse::<usize>()?)),
        (None, None) => None,
        _ => return Err(USAGE.into()),
    };

    let dir = tempfile::tempdir()?;
    let pki = upstream_pki(dir.path());
    let upstream = start_upstream(Some(Arc::clone(&pki.server_config))).await;
    let base = format!("https://localhost:{}", upstream.addr.port());
    let capture = dir.path().join("bench.jsonl");
    let (proxy, proxy_addr) = spawn_proxy(&regtap, dir.path(), &pki.ca_pem, &capture)?;
    let mut proxy = KillOnDrop(proxy);
    let pid = proxy.0.id();

    let chunk = random_mib();
    let direct = client(&pki.ca_pem, None)?;
    let proxied = client(&dir.path().join("home/ca.pem"), Some(&proxy_addr))?;

    println!(
        "{mib} MiB each way, TLS upstream on {}, regtap proxy pid {pid}",
        upstream.addr
    );
    let mut rows = Vec::new();
    rows.push(measure("direct", &direct, &base, &chunk, mib, None).await?);
    rows.push(measure("regtap proxy", &proxied, &base, &chunk, mib, Some(pid)).await?);
    stop(&mut proxy.0)?;

    if let Some((mitmdump, default_mib)) = mitmdump {
        let confdir = dir.path().join("mitmproxy");
        let modes: [(&str, &[&str], usize); 2] = [
            (
                "mitmdump stream_large_bodies=1m",
                &["--set", "stream_large_bodies=1m"],
                mib,
            ),
            ("mitmdump default (buffers bodies)", &[], default_mib),
        ];
        for (route, options, route_mib) in modes {
            if route_mib != mib
                && !rows
                    .iter()
                    .any(|r| r.route == "direct" && r.mib == route_mib)
            {
                rows.push(measure("direct", &direct, &base, &chunk, route_mib, None).await?);
            }
            let (mut child, addr) = spawn_mitmdump(&mitmdump, &confdir, &pki.ca_pem, options)?;
            let client = client(&confdir.join("mitmproxy-ca-cert.pem"), Some(&addr))?;
            let pid = child.0.id();
            rows.push(measure(route, &client, &base, &chunk, route_mib, Some(pid)).await?);
            // Close the pooled connection first: mitmdump prints a traceback for
            // each connection still open when it is told to stop.
            drop(client);
            tokio::time::sleep(Duration::from_millis(300)).await;
            stop(&mut child.0)?;
        }
    }
    print_table(&rows);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{cores} cores shared by client, upstream and proxy; ratio = proxied / direct at the same size"
    );

    let expected = repeated_sha256(&chunk, mib);
    let flows = regtap_capture::Capture::read(&capture)?.flows;
    let recorded: Vec<_> = flows
        .iter()
        .map(|f| match &f.response {
            Some(r) if f.request.method == "GET" => r.body.sha256.clone(),
            _ => f.request.body.sha256.clone(),
        })
        .collect();
    if recorded != [Some(expected.clone()), Some(expected)] {
        return Err(format!("the capture does not hold the expected hashes: {recorded:?}").into());
    }
    println!("regtap capture: 2 flows, SHA-256 of both bodies as sent");
    Ok(())
}

/// Uploads then downloads `mib` MiB through `client`; reads the proxy's peak
/// RSS and CPU time right after.
async fn measure(
    route: &str,
    client: &reqwest::Client,
    base: &str,
    chunk: &Bytes,
    mib: usize,
    proxy_pid: Option<u32>,
) -> Result<Measured, Error> {
    let upload = upload(client, base, chunk, mib)
        .await
        .map_err(|e| format!("{route}: upload: {e}"))?;
    let download = download(client, base, mib)
        .await
        .map_err(|e| format!("{route}: download: {e}"))?;
    let proxy = match proxy_pid {
        Some(pid) => Some((vm_hwm(pid)?, cpu_seconds(pid)?)),
        None => None,
    };
    Ok(Measured {
        route: route.to_owned(),
        mib,
        upload,
        download,
        proxy,
    })
}

fn print_table(rows: &[Measured]) {
    println!(
        "{:<34} {:>5} {:>10} {:>6} {:>10} {:>6} {:>10} {:>7}",
        "route", "MiB", "up MB/s", "ratio", "down MB/s", "ratio", "peak RSS", "CPU s"
    );
    let rate = |mib: usize, d: Duration| (mib * MIB) as f64 / 1e6 / d.as_secs_f64();
    for row in rows {
        let direct = rows
            .iter()
            .find(|r| r.route == "direct" && r.mib == row.mib);
        let ratio = |pick: fn(&Measured) -> Duration| match direct {
            Some(d) if row.proxy.is_some() => {
                format!("{:.2}", pick(d).as_secs_f64() / pick(row).as_secs_f64())
            }
            _ => "-".to_owned(),
        };
        let (rss, cpu) = match row.proxy {
            Some((kib, cpu)) => (
                format!("{:.1} MiB", kib as f64 / 1024.0),
                format!("{cpu:.1}"),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "{:<34} {:>5} {:>10.0} {:>6} {:>10.0} {:>6} {:>10} {:>7}",
            row.route,
            row.mib,
            rate(row.mib, row.upload),
            ratio(|m| m.upload),
            rate(row.mib, row.download),
            ratio(|m| m.download),
            rss,
            cpu
        );
    }
}

/// A child process killed when the benchmark ends early on an error.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn_proxy(
    regtap: &str,
    dir: &Path,
    upstream_ca: &Path,
    capture: &Path,
) -> Result<(Child, String), Error> {
    let mut child = Command::new(regtap)
        .args(["proxy", "--listen", "127.0.0.1:0", "-q", "--capture"])
        .arg(capture)
        .arg("--upstream-ca")
        .arg(upstream_ca)
        .env("REGTAP_HOME", dir.join("home"))
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().ok_or("the proxy exited before listening")??;
        if let Some(addr) = line.split("listening on ").nth(1) {
            break addr.trim().to_owned();
        }
    };
    // Keep draining stderr so the proxy never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok((child, addr))
}

/// Starts `mitmdump` on a free loopback port, with its CA in `confdir` and
/// trusting the upstream's CA; returns once it listens.
fn spawn_mitmdump(
    mitmdump: &str,
    confdir: &Path,
    upstream_ca: &Path,
    options: &[&str],
) -> Result<(KillOnDrop, String), Error> {
    let mut child = KillOnDrop(
        Command::new(mitmdump)
            .args(["--listen-host", "127.0.0.1", "--listen-port", "0"])
            .args(["--set", "flow_detail=0"])
            .arg("--set")
            .arg(format!("confdir={}", confdir.display()))
            .arg("--set")
            .arg(format!(
                "ssl_verify_upstream_trusted_ca={}",
                upstream_ca.display()
            ))
            .args(options)
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().ok_or("mitmdump exited before listening")??;
        if let Some(addr) = line.split("listening at ").nth(1) {
            break addr.trim().trim_end_matches('.').to_owned();
        }
    };
    // Pass on what it logs (warnings, errors) and never let it block on a full pipe.
    std::thread::spawn(move || {
        lines
            .map_while(Result::ok)
            .for_each(|l| eprintln!("mitmdump: {l}"))
    });
    Ok((child, addr))
}

fn stop(proxy: &mut Child) -> Result<(), Error> {
    Command::new("kill")
        .args(["-INT", &proxy.id().to_string()])
        .status()?;
    proxy.wait()?;
    Ok(())
}

fn client(trusted_ca: &Path, proxy: Option<&str>) -> Result<reqwest::Client, Error> {
    use rustls::pki_types::pem::PemObject as _;
    let pem = std::fs::read(trusted_ca)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert?)?;
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(regtap_proxy::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // REGTAP_BENCH_HTTP=2: the client speaks HTTP/2 (to the upstream when
    // direct, to the proxy when proxied), as Go clients such as crane do.
    if std::env::var("REGTAP_BENCH_HTTP").is_ok_and(|v| v == "2") {
        tls.alpn_protocols = vec![b"h2".to_vec()];
    }
    let mut builder = reqwest::Client::builder().use_preconfigured_tls(tls);
    builder = match proxy {
        Some(addr) => builder.proxy(reqwest::Proxy::all(format!("http://{addr}"))?),
        None => builder.no_proxy(),
    };
    Ok(builder.build()?)
}

async fn upload(
    client: &reqwest::Client,
    base: &str,
    chunk: &Bytes,
    mib: usize,
) -> Result<Duration, Error> {
    let chunks = std::iter::repeat_n(chunk.clone(), mib).map(Ok::<Bytes, std::io::Error>);
    let start = Instant::now();
    let response = client
        .put(format!("{base}/upload"))
        .header("content-length", (mib * MIB).to_string())
        .body(reqwest::Body::wrap_stream(
            hudsucker::futures::stream::iter(chunks),
        ))
        .send()
        .await?;
    let status = response.status();
    response.bytes().await?;
    if status != 200 {
        return Err(format!("upload answered {status}").into());
    }
    Ok(start.elapsed())
}

async fn download(client: &reqwest::Client, base: &str, mib: usize) -> Result<Duration, Error> {
    let start = Instant::now();
    let mut response = client.get(format!("{base}/download/{mib}")).send().await?;
    let mut received = 0usize;
    while let Some(part) = response.chunk().await? {
        received += part.len();
    }
    if received != mib * MIB {
        return Err(format!("downloaded {received} bytes, expected {}", mib * MIB).into());
    }
    Ok(start.elapsed())
}

/// Peak resident set size of `pid`, in KiB.
fn vm_hwm(pid: u32) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM in /proc/PID/status")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("malformed VmHWM")?
        .parse()?)
}

/// User plus system CPU time of `pid` so far, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after_name = stat.rsplit_once(')').ok_or("malformed /proc/PID/stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64, Error> {
        Ok(fields.get(i).ok_or("short /proc/PID/stat")?.parse()?)
    };
    // Fields here start at the 3rd (state), so utime is at index 11.
    let ticks_per_second = 100.0; // USER_HZ on Linux
    Ok((ticks(11)? + ticks(12)?) as f64 / ticks_per_second)
}
