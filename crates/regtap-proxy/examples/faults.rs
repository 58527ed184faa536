//! Load and fault figures for a `regtap proxy` process (release build), each
//! scenario against a fresh proxy on loopback: parallel large uploads plus many
//! small requests (peak RSS, CPU, exchanges recorded vs made), idle clients
//! shed by the head timeout, a file-descriptor limit, a file-size limit on the
//! capture, and `kill -9` with uploads in flight. Prints one block per
//! scenario. Run it with `bench/proxy-faults.sh`.
//!
//! Usage: faults REGTAP_BINARY [UPLOADS UPLOAD_MIB SMALL_REQUESTS IDLE_CLIENTS]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{MIB, random_mib, start_upstream, upstream_pki};
use regtap_capture::{Capture, ErrorStage, TruncationReason};

type Error = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage: faults REGTAP_BINARY [UPLOADS UPLOAD_MIB SMALL_REQUESTS IDLE_CLIENTS]";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let regtap = PathBuf::from(args.next().ok_or(USAGE)?);
    let mut number = |default: usize| -> Result<usize, Error> {
        Ok(args.next().map_or(Ok(default), |n| n.parse())?)
    };
    let uploads = number(50)?;
    let upload_mib = number(64)?;
    let small = number(10_000)?;
    let idle = number(1000)?;

    let dir = tempfile::tempdir()?;
    let pki = upstream_pki(dir.path());
    let bench = Bench {
        regtap,
        dir: dir.path().to_owned(),
        upstream_ca: pki.ca_pem.clone(),
    };
    let upstream = start_upstream(Some(Arc::clone(&pki.server_config))).await;
    let base = format!("https://localhost:{}", upstream.addr.port());

    load(&bench, &base, uploads, upload_mib, small).await?;
    inline_budget(&bench, &base, None).await?;
    inline_budget(&bench, &base, Some(64 * MIB)).await?;
    idle_clients(&bench, idle).await?;
    fd_limit(&bench, &base).await?;
    file_size_limit(&bench, &base, &upstream.received).await?;
    kill_9(&bench, &base, &upstream.received).await?;
    Ok(())
}

struct Bench {
    regtap: PathBuf,
    dir: PathBuf,
    upstream_ca: PathBuf,
}

/// A `regtap proxy` child process.
struct Proxy {
    child: Child,
    addr: String,
    capture: PathBuf,
    /// Bytes it wrote to stderr so far.
    stderr_bytes: Arc<AtomicU64>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Limits applied to the proxy process before it starts.
#[derive(Default, Clone, Copy)]
struct Limits {
    nofile: Option<u64>,
    fsize: Option<u64>,
}

impl Bench {
    fn proxy(&self, name: &str, args: &[&str], limits: Limits) -> Result<Proxy, Error> {
        let capture = self.dir.join(format!("{name}.jsonl"));
        let mut command = Command::new(&self.regtap);
        command
            .args(["proxy", "--listen", "127.0.0.1:0", "--capture"])
            .arg(&capture)
            .arg("--upstream-ca")
            .arg(&self.upstream_ca)
            .args(args)
            .env("REGTAP_HOME", self.dir.join("home"))
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: only setrlimit between fork and exec.
        unsafe {
            command.pre_exec(move || {
                for (resource, value) in [
                    (libc::RLIMIT_NOFILE, limits.nofile),
                    (libc::RLIMIT_FSIZE, limits.fsize),
                ] {
                    if let Some(value) = value {
                        let limit = libc::rlimit {
                            rlim_cur: value,
                            rlim_max: value,
                        };
                        if libc::setrlimit(resource, &limit) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                }
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        let mut stderr = BufReader::new(child.stderr.take().ok_or("no stderr")?);
        let mut line = String::new();
        let addr = loop {
            line.clear();
            if stderr.read_line(&mut line)? == 0 {
                return Err("the proxy exited before listening".into());
            }
            if let Some(addr) = line.split("listening on ").nth(1) {
                break addr.trim().to_owned();
            }
        };
        let stderr_bytes = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&stderr_bytes);
        std::thread::spawn(move || {
            let mut buf = [0u8; 64 * 1024];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
        });
        Ok(Proxy {
            child,
            addr,
            capture,
            stderr_bytes,
        })
    }

    fn client(&self, proxy: &Proxy) -> Result<reqwest::Client, Error> {
        use rustls::pki_types::pem::PemObject as _;
        let pem = std::fs::read(self.dir.join("home/ca.pem"))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert?)?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(regtap_proxy::crypto_provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .proxy(reqwest::Proxy::all(format!("http://{}", proxy.addr))?)
            .timeout(Duration::from_secs(600))
            .build()?)
    }
}

impl Proxy {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT, then waits; the exit status.
    fn stop(&mut self) -> Result<std::process::ExitStatus, Error> {
        Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()?;
        Ok(self.child.wait()?)
    }
}

fn vm_hwm_mib(pid: u32) -> Result<f64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .ok_or("no VmHWM")?
        .parse()?;
    Ok(kib / 1024.0)
}

fn cpu_seconds(pid: u32) -> Result<f64, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or("malformed stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / per_second)
}

fn count_stage(capture: &Capture, stage: ErrorStage) -> usize {
    capture
        .flows
        .iter()
        .filter(|f| f.error.as_ref().is_some_and(|e| e.stage == stage))
        .count()
}

async fn load(
    bench: &Bench,
    base: &str,
    uploads: usize,
    upload_mib: usize,
    small: usize,
) -> Result<(), Error> {
    println!("== load: {uploads} parallel {upload_mib} MiB uploads + {small} small requests");
    let mut proxy = bench.proxy("load", &[], Limits::default())?;
    let client = bench.client(&proxy)?;
    let chunk = random_mib();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..uploads {
        let chunks =
            std::iter::repeat_n(chunk.clone(), upload_mib).map(Ok::<Bytes, std::io::Error>);
        let request = client
            .put(format!("{base}/upload"))
            .header("content-length", (upload_mib * MIB).to_string())
            .body(reqwest::Body::wrap_stream(
                hudsucker::futures::stream::iter(chunks),
            ));
        tasks.push(tokio::spawn(async move {
            let response = request.send().await?;
            let ok = response.status().is_success();
            response.bytes().await?;
            Ok::<bool, reqwest::Error>(ok)
        }));
    }
    let turns = Arc::new(tokio::sync::Semaphore::new(64));
    for i in 0..small {
        let client = client.clone();
        let url = format!("{base}/json?n={i}");
        let turns = Arc::clone(&turns);
        tasks.push(tokio::spawn(async move {
            let _turn = turns.acquire().await;
            let response = client.get(url).send().await?;
            let ok = response.status().is_success();
            response.bytes().await?;
            Ok(ok)
        }));
    }
    let made = tasks.len();
    let mut succeeded = 0;
    for task in tasks {
        if matches!(task.await, Ok(Ok(true))) {
            succeeded += 1;
        }
    }
    let elapsed = started.elapsed();
    let rss = vm_hwm_mib(proxy.pid())?;
    let cpu = cpu_seconds(proxy.pid())?;
    proxy.stop()?;
    let capture = Capture::read(&proxy.capture)?;
    let clean = capture.flows.iter().filter(|f| f.error.is_none()).count();
    println!("exchanges made: {made}, succeeded: {succeeded}");
    println!(
        "recorded: {} flows ({clean} without error), bad lines: {}, cut off: {}",
        capture.flows.len(),
        capture.bad_lines.len(),
        capture.cut_off
    );
    println!(
        "wall: {:.1} s, proxy peak RSS: {rss:.1} MiB, proxy CPU: {cpu:.1} s",
        elapsed.as_secs_f64()
    );
    Ok(())
}

async fn inline_budget(bench: &Bench, base: &str, budget: Option<usize>) -> Result<(), Error> {
    const UPLOADS: usize = 300;
    let (name, args) = match budget {
        Some(bytes) => (
            format!("inline-budget-{bytes}"),
            vec!["--inline-budget".to_owned(), bytes.to_string()],
        ),
        None => ("inline-budget-default".to_owned(), Vec::new()),
    };
    println!(
        "== inline budget: {UPLOADS} parallel 1 MiB JSON uploads, --inline-budget {}",
        budget.map_or("default (256 MiB)".to_owned(), |b| format!(
            "{} MiB",
            b / MIB
        ))
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut proxy = bench.proxy(&name, &args, Limits::default())?;
    let client = bench.client(&proxy)?;
    // Just under 1 MiB, so that --max-inline alone would keep it whole.
    let body = Bytes::from(format!("[{}]", "1,".repeat(MIB / 2 - 2) + "1"));
    let mut tasks = Vec::new();
    for _ in 0..UPLOADS {
        let request = client
            .post(format!("{base}/upload"))
            .header("content-type", "application/json")
            .body(body.clone());
        tasks.push(tokio::spawn(async move {
            let response = request.send().await?;
            response.bytes().await
        }));
    }
    for task in tasks {
        task.await??;
    }
    let rss = vm_hwm_mib(proxy.pid())?;
    proxy.stop()?;
    let capture = Capture::read(&proxy.capture)?;
    let budgeted = capture
        .flows
        .iter()
        .filter(|f| {
            matches!(
                f.request.body.truncation(),
                Some(TruncationReason::InlineBudget { .. })
            )
        })
        .count();
    let whole = capture
        .flows
        .iter()
        .filter(|f| f.request.body.full_bytes().is_some())
        .count();
    println!(
        "recorded: {}, kept whole: {whole}, cut to a prefix by the budget (with the reason): {budgeted}",
        capture.flows.len()
    );
    println!("proxy peak RSS: {rss:.1} MiB");
    Ok(())
}

async fn idle_clients(bench: &Bench, count: usize) -> Result<(), Error> {
    println!("== idle: {count} clients that never send a request (--request-head-timeout 5)");
    let mut proxy = bench.proxy(
        "idle",
        &["--request-head-timeout", "5", "--max-connections", "4096"],
        Limits::default(),
    )?;
    let started = Instant::now();
    let mut streams = Vec::new();
    for _ in 0..count {
        streams.push(tokio::net::TcpStream::connect(&proxy.addr).await?);
    }
    let mut closed = 0;
    let mut last_close = Duration::ZERO;
    for mut stream in streams {
        let mut sink = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut sink).await
        })
        .await;
        if read.is_ok() {
            closed += 1;
            last_close = started.elapsed();
        }
    }
    let rss = vm_hwm_mib(proxy.pid())?;
    let cpu = cpu_seconds(proxy.pid())?;
    proxy.stop()?;
    let capture = Capture::read(&proxy.capture)?;
    println!(
        "closed by the proxy: {closed}/{count}, the last after {:.1} s",
        last_close.as_secs_f64()
    );
    println!(
        "recorded request_head_timeout flows: {}",
        count_stage(&capture, ErrorStage::RequestHeadTimeout)
    );
    println!("proxy peak RSS: {rss:.1} MiB, proxy CPU: {cpu:.2} s");
    Ok(())
}

async fn fd_limit(bench: &Bench, base: &str) -> Result<(), Error> {
    println!("== fd limit: RLIMIT_NOFILE 256, 400 idle clients held for 8 s");
    let mut proxy = bench.proxy(
        "fd-limit",
        &[],
        Limits {
            nofile: Some(256),
            ..Limits::default()
        },
    )?;
    // Connections the proxy cannot accept wait in its backlog (or their
    // connect times out): either way they are held open by this side.
    let connecting: Vec<_> = (0..400)
        .map(|_| {
            let addr = proxy.addr.clone();
            tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
                    .await
            })
        })
        .collect();
    let mut held = Vec::new();
    for task in connecting {
        if let Ok(Ok(Ok(stream))) = task.await {
            held.push(stream);
        }
    }
    let cpu_before = cpu_seconds(proxy.pid())?;
    let stderr_before = proxy.stderr_bytes.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let cpu = cpu_seconds(proxy.pid())? - cpu_before;
    let stderr = proxy.stderr_bytes.load(Ordering::Relaxed) - stderr_before;
    println!("client connections established: {}/400", held.len());
    drop(held);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let client = bench.client(&proxy)?;
    let after = client.get(format!("{base}/json")).send().await?.status();
    proxy.stop()?;
    println!("proxy CPU during the 8 s: {cpu:.2} s, stderr: {stderr} bytes");
    println!("a request after the clients left: {after}");
    Ok(())
}

async fn file_size_limit(bench: &Bench, base: &str, received: &AtomicU64) -> Result<(), Error> {
    const REQUESTS: usize = 30;
    const SIZE: usize = 1000;
    println!("== capture file-size limit: RLIMIT_FSIZE 32 KiB, {REQUESTS} uploads of {SIZE} B");
    let mut proxy = bench.proxy(
        "fsize",
        &[],
        Limits {
            fsize: Some(32 * 1024),
            ..Limits::default()
        },
    )?;
    let client = bench.client(&proxy)?;
    let before = received.load(Ordering::SeqCst);
    let mut ok = 0;
    let mut refused = 0;
    let mut failed = 0;
    for _ in 0..REQUESTS {
        match client
            .post(format!("{base}/upload"))
            .body(vec![b'x'; SIZE])
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => ok += 1,
            Ok(_) => refused += 1,
            Err(_) => failed += 1,
        }
    }
    let status = proxy.child.wait()?;
    let forwarded = (received.load(Ordering::SeqCst) - before) as usize / SIZE;
    let bytes = std::fs::read(&proxy.capture)?;
    let capture = Capture::read(&proxy.capture)?;
    println!("2xx: {ok}, refused by regtap: {refused}, no answer (proxy gone): {failed}");
    println!(
        "forwarded upstream: {forwarded}, in the capture: {} ({} cut off), bad lines: {}, ends on a newline: {}",
        capture
            .flows
            .iter()
            .filter(|f| f.request.method == "POST")
            .count(),
        capture.cut_off,
        capture.bad_lines.len(),
        bytes.last() == Some(&b'\n')
    );
    println!("proxy exit status: {status}");
    Ok(())
}

async fn kill_9(bench: &Bench, base: &str, received: &AtomicU64) -> Result<(), Error> {
    const UPLOADS: usize = 4;
    println!("== kill -9 with {UPLOADS} uploads in flight");
    let mut proxy = bench.proxy("kill-9", &[], Limits::default())?;
    let client = bench.client(&proxy)?;
    let chunk = random_mib();
    let before = received.load(Ordering::SeqCst);
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..UPLOADS {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let stream = hudsucker::futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let request = client
            .patch(format!("{base}/upload"))
            .header("content-length", (64 * MIB).to_string())
            .body(reqwest::Body::wrap_stream(stream));
        tasks.push(tokio::spawn(request.send()));
        tx.send(Ok(chunk.clone())).await?;
        senders.push(tx);
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for tx in &senders {
        tx.send(Ok(chunk.clone())).await?;
    }
    while received.load(Ordering::SeqCst) - before < (UPLOADS * 2 * MIB) as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.child.kill()?;
    proxy.child.wait()?;
    drop(senders);
    let capture = Capture::read(&proxy.capture)?;
    let sizes: Vec<String> = capture
        .flows
        .iter()
        .map(|f| format!("{:.1} MiB", f.request.body.size as f64 / MIB as f64))
        .collect();
    println!(
        "in the capture: {} exchanges, {} cut off by the kill (request bytes known: {})",
        capture.flows.len(),
        capture.cut_off,
        sizes.join(", ")
    );
    Ok(())
}
