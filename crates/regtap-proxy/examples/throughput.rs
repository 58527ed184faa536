//! Throughput benchmark: 1 GiB upload and 1 GiB download against a local TLS
//! upstream, direct and through a `regtap proxy` process, in one run. Prints
//! MB/s for each, the proxied/direct ratio, and the proxy's peak RSS
//! (`VmHWM`). Run it with `bench/proxy-throughput.sh`.
//!
//! Usage: throughput REGTAP_BINARY [MIB]

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

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let regtap = args.next().ok_or("usage: throughput REGTAP_BINARY [MIB]")?;
    let mib: usize = args.next().map_or(Ok(1024), |m| m.parse())?;

    let dir = tempfile::tempdir()?;
    let pki = upstream_pki(dir.path());
    let upstream = start_upstream(Some(Arc::clone(&pki.server_config))).await;
    let base = format!("https://localhost:{}", upstream.addr.port());
    let capture = dir.path().join("bench.jsonl");
    let (mut proxy, proxy_addr) = spawn_proxy(&regtap, dir.path(), &pki.ca_pem, &capture)?;
    let pid = proxy.id();

    let chunk = random_mib();
    let expected = repeated_sha256(&chunk, mib);
    let direct = client(&pki.ca_pem, None)?;
    let proxied = client(&dir.path().join("home/ca.pem"), Some(&proxy_addr))?;

    println!(
        "{mib} MiB each way, TLS upstream on {}, proxy pid {pid}",
        upstream.addr
    );
    let direct_up = upload(&direct, &base, &chunk, mib).await?;
    let proxied_up = upload(&proxied, &base, &chunk, mib).await?;
    let direct_down = download(&direct, &base, mib).await?;
    let proxied_down = download(&proxied, &base, mib).await?;
    let peak = vm_hwm(pid)?;
    let proxy_cpu = cpu_seconds(pid)?;

    let rate = |d: Duration| (mib * MIB) as f64 / 1e6 / d.as_secs_f64();
    println!(
        "upload:   direct {:7.0} MB/s   proxied {:7.0} MB/s   ratio {:.2}",
        rate(direct_up),
        rate(proxied_up),
        direct_up.as_secs_f64() / proxied_up.as_secs_f64()
    );
    println!(
        "download: direct {:7.0} MB/s   proxied {:7.0} MB/s   ratio {:.2}",
        rate(direct_down),
        rate(proxied_down),
        direct_down.as_secs_f64() / proxied_down.as_secs_f64()
    );
    println!("proxy peak RSS (VmHWM): {:.1} MiB", peak as f64 / 1024.0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "proxy CPU time: {proxy_cpu:.1} s for {} MiB proxied ({cores} cores shared by client, upstream and proxy)",
        2 * mib
    );

    stop(&mut proxy)?;
    let flows = regtap_capture::Capture::read(&capture)?.flows;
    let recorded: Vec<_> = flows
        .iter()
        .map(|f| match &f.response {
            Some(r) if f.request.method == "GET" => r.body.sha256.clone(),
            _ => f.request.body.sha256.clone(),
        })
        .collect();
    if recorded != [expected.clone(), expected] {
        return Err(format!("the capture does not hold the expected hashes: {recorded:?}").into());
    }
    println!("capture: 2 flows, SHA-256 of both bodies as sent");
    Ok(())
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
    let tls = rustls::ClientConfig::builder_with_provider(regtap_proxy::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
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
