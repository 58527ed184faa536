//! `regtap proxy`: run the recording proxy until Ctrl-C (or SIGTERM).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use regtap_proxy::{
    Ca, ChainOptions, ClientNet, ExistingCapture, LiveEvent, ProxyConfig, ProxyCredentials,
    ProxyEndpoint, ProxyHandle, ProxyOrigin, ResolveRule, ReverseConfig, ReverseRoute, ReverseTls,
    Timeouts, UpstreamProxies, data_dir_from_env, summary_line,
};
use tokio::sync::broadcast::error::RecvError;

#[derive(Args)]
pub struct ProxyArgs {
    /// Address to listen on (port 0: any free port; the chosen one is printed)
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Allow --listen on an address other machines can reach: whoever connects
    /// can use the proxy and read what it decrypts
    #[arg(long)]
    allow_remote: bool,
    /// Serve only clients from this network (CIDR, e.g. 10.0.0.0/8, or one
    /// address; repeatable); others get a 403, recorded
    #[arg(long = "allow-client", value_name = "CIDR")]
    allow_client: Vec<ClientNet>,
    /// Reverse mode: listen as the registry itself, serving NAME (default:
    /// the URL's host) from the upstream URL; clients address regtap by
    /// NAME, routed by Host/SNI (repeatable, one upstream per name)
    #[arg(long = "reverse", value_name = "[NAME=]URL")]
    reverse: Vec<ReverseRoute>,
    /// Reverse mode: serve this PEM certificate chain (for every name)
    /// instead of certificates from regtap's CA
    #[arg(long, value_name = "PEM", requires = "key", requires = "reverse")]
    cert: Option<PathBuf>,
    /// Reverse mode: the PEM private key of --cert
    #[arg(long, value_name = "PEM", requires = "cert")]
    key: Option<PathBuf>,
    /// Reverse mode: clients speak plain HTTP to regtap (no TLS)
    #[arg(long, requires = "reverse", conflicts_with = "cert")]
    reverse_plain_http: bool,
    /// Reverse mode: rewrite absolute Location URLs and Bearer realms that
    /// name an upstream to the name regtap serves it under (each rewrite is
    /// recorded with both values)
    #[arg(long, requires = "reverse")]
    rewrite_urls: bool,
    /// Capture file to write (default: ./regtap-<UTC time>.jsonl); an
    /// existing file is refused unless --append or --force, a symlink always
    #[arg(long, value_name = "FILE")]
    capture: Option<PathBuf>,
    /// Add this session to an existing capture (ids continue after its last)
    #[arg(long, conflicts_with = "force")]
    append: bool,
    /// Replace an existing capture file
    #[arg(long)]
    force: bool,
    /// fdatasync the capture after every record (survives a machine crash)
    #[arg(long)]
    fsync: bool,
    /// When the capture cannot be written, keep forwarding (naming every
    /// unrecorded exchange on stderr) instead of refusing traffic and exiting
    #[arg(long)]
    keep_forwarding_unrecorded: bool,
    /// PEM file of CA certificates to trust for upstream servers, besides the
    /// public web roots (repeatable)
    #[arg(long = "upstream-ca", value_name = "PEM")]
    upstream_ca: Vec<PathBuf>,
    /// Accept any upstream certificate (recorded in the capture)
    #[arg(long)]
    upstream_insecure: bool,
    /// Connect to ADDR for HOST:PORT, keeping HOST for TLS and Host, as curl's
    /// --resolve (repeatable); ADDR is an IP or IP:PORT
    #[arg(long = "resolve", value_name = "HOST:PORT=ADDR")]
    resolve: Vec<ResolveRule>,
    /// The corporate proxy regtap itself goes through (boxed: it would make
    /// every `regtap` command's arguments as large as these)
    #[command(flatten)]
    upstream: Box<UpstreamProxyArgs>,
    /// Bodies up to this many bytes are kept whole in the capture (at most 64 MiB)
    #[arg(long, value_name = "BYTES", default_value_t = regtap_proxy::DEFAULT_MAX_INLINE,
          value_parser = parse_max_inline)]
    max_inline: usize,
    /// Memory all inline bodies in flight may hold together; beyond it a body
    /// keeps its size, hash and first bytes, and the capture says why
    #[arg(long, value_name = "BYTES", default_value_t = regtap_proxy::DEFAULT_INLINE_BUDGET)]
    inline_budget: usize,
    /// Open client connections beyond this many are answered 503 (and recorded)
    #[arg(long, value_name = "N", default_value = "512",
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Seconds a client may take to send a request head
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_seconds)]
    request_head_timeout: Duration,
    /// Seconds a kept-alive client connection may stay idle
    #[arg(long, value_name = "SECS", default_value = "120", value_parser = parse_seconds)]
    idle_timeout: Duration,
    /// Seconds to connect to an upstream server (TCP and TLS)
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_seconds)]
    connect_timeout: Duration,
    /// Seconds an upstream server may take to answer once the request is sent
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = parse_seconds)]
    response_timeout: Duration,
    /// Seconds a body (either way) may stall without a byte
    #[arg(long, value_name = "SECS", default_value = "120", value_parser = parse_seconds)]
    body_timeout: Duration,
    /// Also write every complete body to DIR/sha256/<hex> as it streams
    #[arg(long, value_name = "DIR")]
    store_bodies: Option<PathBuf>,
    /// Append the TLS secrets of both legs (client–regtap, regtap–registry)
    /// to FILE in the NSS key log format, for Wireshark and tshark
    #[arg(long, value_name = "FILE", env = "SSLKEYLOGFILE")]
    keylog: Option<PathBuf>,
    /// Do not print a line per exchange
    #[arg(short, long)]
    quiet: bool,
    /// Watch the traffic live in the terminal UI; quitting it stops the proxy
    #[arg(long)]
    tui: bool,
    /// The registry's `http.secret`, for the live view to verify `_state` HMACs
    #[arg(
        long,
        env = "REGTAP_REGISTRY_SECRET",
        hide_env_values = true,
        requires = "tui"
    )]
    registry_secret: Option<String>,
}

/// `--upstream-proxy` and its companions.
#[derive(Args)]
struct UpstreamProxyArgs {
    /// Go to registries and auth servers through this HTTP proxy (a corporate
    /// proxy): http://[user:password@]host:port; replaces HTTPS_PROXY and
    /// HTTP_PROXY of regtap's own environment
    ///
    /// https targets go through a CONNECT tunnel (TLS stays end to end, with
    /// the target's name), http targets as absolute URLs. Credentials in the
    /// URL are percent-decoded and sent as Basic auth; keep them off the
    /// command line with --upstream-proxy-auth-file. They are never written to
    /// the capture, which records the proxy as http://host:port. localhost,
    /// loopback IPs and NO_PROXY (or --upstream-no-proxy) targets stay direct.
    /// A --resolve rule still applies to an https target: the proxy is asked
    /// to CONNECT to the rule's address, while TLS and Host keep the name;
    /// http targets are named to the proxy, which resolves them itself.
    /// Only http:// proxies are supported (no TLS to the proxy, no SOCKS).
    #[arg(long, value_name = "URL")]
    upstream_proxy: Option<String>,
    /// File whose first line is user:password (as typed, not encoded) for the
    /// upstream proxy's Basic auth
    #[arg(long, value_name = "FILE")]
    upstream_proxy_auth_file: Option<PathBuf>,
    /// Targets reached directly rather than through the upstream proxy, in
    /// NO_PROXY's syntax (corp.example,.internal,10.0.0.0/8,host:5000,*);
    /// replaces NO_PROXY
    #[arg(long, value_name = "LIST")]
    upstream_no_proxy: Option<String>,
    /// Ignore HTTPS_PROXY, HTTP_PROXY and NO_PROXY (and their lower-case forms)
    /// in regtap's own environment, which are often set for the clients
    #[arg(long)]
    no_env_proxy: bool,
}

pub fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    // Log lines would be drawn over the TUI's screen.
    init_logging(args.quiet || args.tui);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))
}

fn init_logging(quiet: bool) {
    let default = if quiet { "error" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn serve(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    check_listen(args.listen, args.allow_remote)?;
    // A capture that cannot be created fails before anything is set up (a
    // CA created for a run that never starts would only confuse).
    if let Some(parent) = args
        .capture
        .as_deref()
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        anyhow::bail!(
            "cannot write the capture in {}: no such directory",
            parent.display()
        );
    }
    let upstream_proxies = upstream_proxies(&args.upstream, |name| std::env::var(name).ok())?;
    let dir = data_dir_from_env()?;
    let (ca, created) = Ca::load_or_init(&dir)?;
    if created {
        eprintln!(
            "regtap: created a CA in {}; clients must trust {} (see `regtap setup docker`)",
            dir.display(),
            ca.cert_path().display()
        );
    }
    if args.upstream_insecure {
        eprintln!("regtap: --upstream-insecure: upstream certificates are NOT checked");
    }
    let capture = args
        .capture
        .unwrap_or_else(|| timestamped_capture_path("regtap"));
    let existing_capture = if args.append {
        ExistingCapture::Append
    } else if args.force {
        ExistingCapture::Overwrite
    } else {
        ExistingCapture::Refuse
    };
    let config = ProxyConfig {
        existing_capture,
        sync_each_record: args.fsync,
        keep_forwarding_unrecorded: args.keep_forwarding_unrecorded,
        upstream_ca: args.upstream_ca,
        upstream_insecure: args.upstream_insecure,
        resolve: args.resolve,
        upstream_proxies,
        max_inline: args.max_inline,
        inline_budget: args.inline_budget,
        store_bodies: args.store_bodies,
        timeouts: Timeouts {
            request_head: args.request_head_timeout,
            idle: args.idle_timeout,
            connect: args.connect_timeout,
            response: args.response_timeout,
            body: args.body_timeout,
        },
        max_connections: args.max_connections as usize,
        keylog: args.keylog.clone(),
        reverse: reverse_config(
            args.reverse,
            args.cert.zip(args.key),
            args.reverse_plain_http,
            args.rewrite_urls,
        ),
        allow_clients: args.allow_client,
        ..ProxyConfig::new(args.listen, capture)
    };
    if let Some(keylog) = &args.keylog {
        eprintln!(
            "regtap: writing the TLS secrets of every connection to {}: whoever reads it can decrypt the traffic",
            keylog.display()
        );
    }
    let reverse = config.reverse.clone();
    for line in upstream_proxy_lines(&config.upstream_proxies) {
        eprintln!("regtap: {line}");
    }
    let proxy = regtap_proxy::start(config, &ca).await?;
    if let Some(reverse) = &reverse {
        print_reverse_routes(reverse, proxy.local_addr());
    }
    let live = proxy.subscribe();
    eprintln!("regtap: capturing to {}", proxy.capture_path().display());
    // Scripts wait for this line; it comes last, once everything is ready.
    // SIGTERM is handled from here on (the TUI leaves it alone): a script that
    // stops the proxy once it saw the next line must not kill it mid-capture.
    let terminate = (!args.tui).then(terminate_signal).transpose()?;
    eprintln!("regtap: listening on {}", proxy.local_addr());

    let shown = if let Some(terminate) = terminate {
        print_until_stopped(live, &proxy, terminate, args.quiet).await?;
        eprintln!("regtap: stopping");
        None
    } else {
        let options = regtap_decode::Options {
            registry_secret: args.registry_secret.map(String::into_bytes),
        };
        // The TUI blocks on the terminal; quitting it stops the proxy.
        Some(tokio::task::spawn_blocking(move || regtap_tui::run_live(live, options)).await)
    };
    let summary = proxy.shutdown().await?;
    if let Some(shown) = shown {
        shown.context("the terminal UI stopped unexpectedly")??;
    }
    eprintln!(
        "regtap: {} flows written to {}",
        summary.flows_written,
        summary.capture_path.display()
    );
    if summary.refused_connections > 0 {
        eprintln!(
            "regtap: {} connections refused at --max-connections (each is in the capture)",
            summary.refused_connections
        );
    }
    if summary.accept_failures > 0 {
        eprintln!(
            "regtap: accepting connections failed {} times (out of file descriptors?)",
            summary.accept_failures
        );
    }
    if let Some(error) = summary.capture_error {
        eprintln!(
            "regtap: the capture is incomplete: {error}; {} finished exchanges are not in it",
            summary.flows_lost
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The upstream proxies from the flags and `env`. A bad URL is reported
/// without repeating it: it may hold a password.
fn upstream_proxies(
    args: &UpstreamProxyArgs,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<UpstreamProxies> {
    let proxy = args
        .upstream_proxy
        .as_deref()
        .map(|url| ProxyEndpoint::parse(url, ProxyOrigin::Flag))
        .transpose()?;
    let credentials = args
        .upstream_proxy_auth_file
        .as_deref()
        .map(ProxyCredentials::read_file)
        .transpose()?;
    let options = ChainOptions {
        proxy,
        credentials,
        no_proxy: args.upstream_no_proxy.clone(),
        ignore_env: args.no_env_proxy,
    };
    Ok(UpstreamProxies::choose(options, env)?)
}

/// What the start-up says about the upstream proxy: nothing when there is
/// none; otherwise the proxy per scheme (without credentials) and `NO_PROXY`.
fn upstream_proxy_lines(proxies: &UpstreamProxies) -> Vec<String> {
    if proxies.is_empty() {
        return Vec::new();
    }
    let describe = |proxy: &Option<regtap_proxy::ChainedProxy>| {
        proxy
            .as_ref()
            .map_or_else(|| "none, direct".to_owned(), |p| p.describe())
    };
    let mut lines = vec![
        format!(
            "upstream proxy for https targets: {}",
            describe(&proxies.https)
        ),
        format!(
            "upstream proxy for http targets: {}",
            describe(&proxies.http)
        ),
    ];
    let direct = proxies.no_proxy.entries();
    lines.push(if direct.is_empty() {
        "direct: localhost and loopback IPs".to_owned()
    } else {
        format!("direct: localhost, loopback IPs, {}", direct.join(","))
    });
    lines
}

fn parse_max_inline(value: &str) -> Result<usize, String> {
    let bytes: usize = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number of bytes"))?;
    if bytes > regtap_proxy::MAX_INLINE_LIMIT {
        return Err(format!(
            "{bytes} is more than {} (64 MiB); a capture keeps metadata, \
             use --store-bodies DIR to keep whole bodies",
            regtap_proxy::MAX_INLINE_LIMIT
        ));
    }
    Ok(bytes)
}

fn parse_seconds(value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{value:?} is not a positive number of seconds"))
}

/// Prints a line per finished (and recorded) exchange until Ctrl-C or
/// SIGTERM, or until the capture cannot be written (unless told to go on).
async fn print_until_stopped(
    mut live: tokio::sync::broadcast::Receiver<LiveEvent>,
    proxy: &ProxyHandle,
    mut terminate: tokio::signal::unix::Signal,
    quiet: bool,
) -> anyhow::Result<()> {
    let keep_forwarding = proxy.keeps_forwarding_unrecorded();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
            reason = proxy.capture_failed(), if !keep_forwarding => {
                eprintln!("regtap: stopping: the capture cannot be written ({reason})");
                return Ok(());
            }
            event = live.recv() => match event {
                Ok(LiveEvent::Finished(flow)) if !quiet => eprintln!("{}", masked_summary(&flow)),
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) if !quiet => {
                    eprintln!("regtap: ({missed} live events skipped; the capture has every flow)");
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Ok(()),
            },
        }
    }
}

fn reverse_config(
    routes: Vec<ReverseRoute>,
    cert_and_key: Option<(PathBuf, PathBuf)>,
    plain_http: bool,
    rewrite_urls: bool,
) -> Option<ReverseConfig> {
    if routes.is_empty() {
        return None;
    }
    let tls = match (cert_and_key, plain_http) {
        (Some((cert, key)), _) => ReverseTls::Provided { cert, key },
        (None, true) => ReverseTls::PlainHttp,
        (None, false) => ReverseTls::RegtapCa,
    };
    Some(ReverseConfig {
        routes,
        tls,
        rewrite_urls,
    })
}

/// What clients must address, and when the upstream's own URLs would send
/// them around regtap.
fn print_reverse_routes(reverse: &ReverseConfig, listen: SocketAddr) {
    let scheme = match reverse.tls {
        ReverseTls::PlainHttp => "http",
        _ => "https",
    };
    for route in &reverse.routes {
        let served = format!("{scheme}://{}:{}", route.name, listen.port());
        eprintln!(
            "regtap: reverse: {served} -> {}",
            route.upstream.to_string().trim_end_matches('/')
        );
        let same_origin = route.upstream.host() == Some(route.name.as_str())
            && route.upstream.scheme_str() == Some(scheme)
            && route
                .upstream
                .port_u16()
                .unwrap_or(if scheme == "https" { 443 } else { 80 })
                == listen.port();
        if !same_origin && !reverse.rewrite_urls {
            eprintln!(
                "regtap: reverse: {} is served under another origin than its own: absolute \
                 Location URLs and token realms naming it send clients around regtap \
                 (--rewrite-urls rewrites them, recorded)",
                route.upstream.to_string().trim_end_matches('/')
            );
        }
    }
    if matches!(reverse.tls, ReverseTls::RegtapCa) {
        eprintln!(
            "regtap: reverse: clients must trust regtap's CA for these names (`regtap ca export`)"
        );
    }
}

/// A proxy that decrypts TLS is for this machine only, unless asked.
fn check_listen(listen: SocketAddr, allow_remote: bool) -> anyhow::Result<()> {
    if listen.ip().is_loopback() {
        return Ok(());
    }
    anyhow::ensure!(
        allow_remote,
        "--listen {listen} is reachable from other machines, which could then use the proxy \
         and see the traffic it decrypts; pass --allow-remote to do so anyway"
    );
    eprintln!("regtap: --allow-remote: listening on {listen}, reachable from other machines");
    Ok(())
}

/// The line per exchange, with secret-shaped query values (`?access_token=`,
/// pre-signed URL signatures) and URL passwords shown as `***`: terminals
/// get logged and screen-shared.
fn masked_summary(flow: &regtap_capture::Flow) -> String {
    let line = summary_line(flow);
    let url = &flow.request.url;
    let masked = regtap_har::redact::url_masked(url);
    let line = if masked == *url {
        line
    } else {
        // The line shows `host path`: the URL's tail with a space before the path.
        let tail = |u: &str| u.split_once("://").map_or(u, |(_, rest)| rest).to_owned();
        let spaced = |u: String| match u.find('/') {
            Some(i) => format!("{} {}", &u[..i], &u[i..]),
            None => u,
        };
        line.replacen(&spaced(tail(url)), &spaced(tail(&masked)), 1)
    };
    crate::cmd_inspect::escape_controls(&line, false)
}

fn terminate_signal() -> anyhow::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")
}

/// `./<prefix>-20240722T170643Z.jsonl`
pub fn timestamped_capture_path(prefix: &str) -> PathBuf {
    let stamp: String = regtap_capture::rfc3339(regtap_capture::now_ns())
        .chars()
        .take(19)
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    PathBuf::from(format!("./{prefix}-{stamp}Z.jsonl"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        proxy: ProxyArgs,
    }

    fn parse(args: &[&str]) -> Result<ProxyArgs, clap::Error> {
        Command::try_parse_from(std::iter::once("proxy").chain(args.iter().copied()))
            .map(|c| c.proxy)
    }

    #[test]
    fn flag_defaults_are_the_library_defaults() {
        let args = parse(&[]).unwrap();
        let defaults = Timeouts::default();
        assert_eq!(args.request_head_timeout, defaults.request_head);
        assert_eq!(args.idle_timeout, defaults.idle);
        assert_eq!(args.connect_timeout, defaults.connect);
        assert_eq!(args.response_timeout, defaults.response);
        assert_eq!(args.body_timeout, defaults.body);
        assert_eq!(
            args.max_connections as usize,
            regtap_proxy::DEFAULT_MAX_CONNECTIONS
        );
    }

    #[test]
    fn bad_limits_are_refused_with_a_reason() {
        let err = parse(&["--max-inline", "67108865"])
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("64 MiB") && err.contains("--store-bodies"),
            "{err}"
        );
        assert!(parse(&["--max-inline", "67108864"]).is_ok());
        let err = parse(&["--body-timeout", "0"]).err().unwrap().to_string();
        assert!(err.contains("positive number of seconds"), "{err}");
        assert!(parse(&["--max-connections", "0"]).is_err());
        assert!(parse(&["--append", "--force"]).is_err());
        let args = parse(&["--idle-timeout", "1.5"]).unwrap();
        assert_eq!(args.idle_timeout, Duration::from_millis(1500));
    }

    #[test]
    fn upstream_proxy_settings_never_show_the_password() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let args = parse(&["--upstream-proxy", "https://u:s3cret@proxy.corp:3128"]).unwrap();
        let err = upstream_proxies(&args.upstream, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--upstream-proxy: https:// proxies"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");

        let from_env = env(&[
            ("https_proxy", "http://u:s3cret@proxy.corp:3128"),
            ("NO_PROXY", "internal.corp,.svc"),
        ]);
        let proxies = upstream_proxies(&parse(&[]).unwrap().upstream, from_env).unwrap();
        let lines = upstream_proxy_lines(&proxies).join("\n");
        assert_eq!(
            lines,
            "upstream proxy for https targets: http://proxy.corp:3128 (https_proxy, Basic auth)\n\
             upstream proxy for http targets: none, direct\n\
             direct: localhost, loopback IPs, internal.corp,.svc"
        );
        let ignored =
            upstream_proxies(&parse(&["--no-env-proxy"]).unwrap().upstream, from_env).unwrap();
        assert!(ignored.is_empty());
        assert!(upstream_proxy_lines(&ignored).is_empty());
    }

    #[test]
    fn non_loopback_listening_needs_allow_remote() {
        for loopback in ["127.0.0.1:8080", "127.0.0.2:0", "[::1]:8080"] {
            assert!(check_listen(loopback.parse().unwrap(), false).is_ok());
        }
        for remote in ["0.0.0.0:8080", "[::]:8080", "192.168.1.5:8080"] {
            let err = check_listen(remote.parse().unwrap(), false).unwrap_err();
            assert!(err.to_string().contains("--allow-remote"), "{err}");
            assert!(check_listen(remote.parse().unwrap(), true).is_ok());
        }
    }

    #[test]
    fn reverse_flags_build_the_reverse_configuration() {
        let args = parse(&[
            "--reverse",
            "https://registry.internal:5000",
            "--reverse",
            "auth.internal=https://10.0.0.5:5001",
            "--rewrite-urls",
            "--allow-client",
            "10.0.0.0/8",
        ])
        .unwrap();
        assert_eq!(args.allow_client, vec!["10.0.0.0/8".parse().unwrap()]);
        let reverse = reverse_config(args.reverse, None, false, args.rewrite_urls).unwrap();
        assert_eq!(reverse.tls, ReverseTls::RegtapCa);
        assert!(reverse.rewrite_urls);
        assert_eq!(reverse.routes[1].name, "auth.internal");
        assert!(reverse_config(Vec::new(), None, true, true).is_none());

        // Reverse-only flags need --reverse; --cert needs --key.
        for lonely in [
            &["--rewrite-urls"][..],
            &["--reverse-plain-http"],
            &["--cert", "c.pem", "--key", "k.pem"],
            &["--reverse", "https://r.test", "--cert", "c.pem"],
            &[
                "--reverse",
                "https://r.test",
                "--reverse-plain-http",
                "--cert",
                "c",
                "--key",
                "k",
            ],
        ] {
            assert!(parse(lonely).is_err(), "{lonely:?} was accepted");
        }
        let err = parse(&["--reverse", "registry.internal:5000"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("http:// or https://"), "{err}");
        let err = parse(&["--allow-client", "10.0.0.0/40"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("prefix length"), "{err}");
    }

    #[test]
    fn the_line_per_exchange_hides_secret_query_values() {
        let flow = regtap_capture::factory::FlowBuilder::new(
            1,
            "GET",
            "https://auth.test/token?service=r&access_token=s3cr3t-value&scope=x",
        )
        .status(200)
        .build();
        let line = masked_summary(&flow);
        assert!(
            line.starts_with("GET auth.test /token?service=r&access_token=***&scope=x 200"),
            "{line}"
        );
        let plain = regtap_capture::factory::FlowBuilder::new(2, "GET", "https://r.test/v2/")
            .status(401)
            .build();
        assert_eq!(masked_summary(&plain), summary_line(&plain));
    }

    #[test]
    fn default_capture_path_is_a_utc_timestamp_in_the_current_directory() {
        let path = timestamped_capture_path("regtap").display().to_string();
        let stamp = path
            .strip_prefix("./regtap-")
            .and_then(|rest| rest.strip_suffix("Z.jsonl"))
            .unwrap_or_else(|| panic!("unexpected default capture path {path}"));
        assert_eq!(stamp.len(), "20240722T170643".len(), "{path}");
        assert_eq!(stamp.as_bytes()[8], b'T', "{path}");
        assert!(
            stamp
                .chars()
                .filter(|c| *c != 'T')
                .all(|c| c.is_ascii_digit()),
            "{path}"
        );
    }
}
