//! The proxies dockerd and skopeo are pointed at: `regtap proxy` (the thing
//! under test), and a plain CONNECT tunnel that only maps the lab names to
//! 127.0.0.1, to tell lab problems from regtap problems.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::LabError;
use crate::process::{ChildGuard, run_output};
use crate::server::BackgroundServer;

/// `regtap` run with `REGTAP_HOME` set to the lab's own directory.
#[derive(Debug, Clone)]
pub struct Regtap {
    pub bin: PathBuf,
    pub home: PathBuf,
}

impl Regtap {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        command.env("REGTAP_HOME", &self.home);
        command
    }

    /// `regtap ca init` then `regtap ca export --format pem -o PEM`.
    pub fn init_ca(&self, pem: &Path) -> Result<(), LabError> {
        let mut init = self.command();
        init.args(["ca", "init"]);
        let out = run_output(init)?;
        if !out.success {
            return Err(LabError::Setup(format!(
                "regtap ca init failed: {}",
                out.combined()
            )));
        }
        let mut export = self.command();
        export
            .args(["ca", "export", "--format", "pem", "-o"])
            .arg(pem);
        let out = run_output(export)?;
        if !out.success || !pem.exists() {
            return Err(LabError::Setup(format!(
                "regtap ca export failed: {}",
                out.combined()
            )));
        }
        Ok(())
    }
}

pub struct RegtapProxy {
    pub capture: PathBuf,
    process: ChildGuard,
}

impl RegtapProxy {
    /// `regtap proxy --listen 127.0.0.1:PORT --capture FILE --resolve … --upstream-ca … --no-env-proxy -q EXTRA…`,
    /// waiting for its "listening on" line.
    pub fn start(
        regtap: &Regtap,
        port: u16,
        capture: &Path,
        resolve: &[String],
        upstream_ca: &Path,
        extra_args: &[String],
        log: &Path,
    ) -> Result<Self, LabError> {
        // A proxy just stopped on the same port may still hold it for a moment.
        let mut last_error = None;
        for _ in 0..20 {
            let mut command = regtap.command();
            command
                .arg("proxy")
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--capture")
                .arg(capture)
                // The lab owns its captures directory; a capture name used
                // again replaces the earlier one.
                .arg("--force")
                .arg("--upstream-ca")
                .arg(upstream_ca)
                // The lab is self-contained: a proxy in the environment of
                // whoever runs it (set for the clients) is not its upstream.
                .arg("--no-env-proxy")
                .arg("-q")
                .args(extra_args);
            for entry in resolve {
                command.arg("--resolve").arg(entry);
            }
            let _ = std::fs::remove_file(log);
            let mut process =
                ChildGuard::spawn("regtap proxy", command, log)?.grace(Duration::from_secs(5));
            let log_path = log.to_owned();
            match process.wait_until("its \"listening on\" line", Duration::from_secs(15), || {
                std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains("listening on"))
            }) {
                Ok(()) => {
                    return Ok(RegtapProxy {
                        capture: capture.to_owned(),
                        process,
                    });
                }
                Err(e) if process.log_tail(4000).contains("in use") => {
                    last_error = Some(e);
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| LabError::Setup("regtap proxy did not start".into())))
    }

    pub fn log_tail(&self, max: usize) -> String {
        self.process.log_tail(max)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// SIGTERM and wait: every finished flow is in the capture file after this.
    pub fn stop(mut self) {
        self.process.stop();
    }
}

/// A CONNECT-only proxy that resolves `host:port` through a fixed table and
/// copies bytes both ways, without looking at them.
pub struct Tunnel {
    addr: SocketAddr,
    _server: BackgroundServer,
}

impl Tunnel {
    /// `routes`: `host:port` → the 127.0.0.1 port to connect to.
    pub fn start(routes: Vec<(String, u16)>) -> Result<Self, LabError> {
        Self::start_on(0, routes)
    }

    /// [`Tunnel::start`] on 127.0.0.1:`port` (0: any free port).
    pub fn start_on(port: u16, routes: Vec<(String, u16)>) -> Result<Self, LabError> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| LabError::Setup(format!("tunnel: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| LabError::Setup(format!("tunnel: {e}")))?;
        let server = BackgroundServer::start("tunnel", listener, move |client| {
            tunnel_one(client, routes.clone())
        })?;
        Ok(Tunnel {
            addr,
            _server: server,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn tunnel_one(client: tokio::net::TcpStream, routes: Vec<(String, u16)>) {
    let mut client = BufReader::new(client);
    let mut request_line = String::new();
    if client.read_line(&mut request_line).await.is_err() {
        return;
    }
    // Skip the remaining request head.
    loop {
        let mut line = String::new();
        match client.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let mut parts = request_line.split_whitespace();
    let (Some("CONNECT"), Some(authority)) = (parts.next(), parts.next()) else {
        let _ = client
            .get_mut()
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    let Some(&(_, port)) = routes.iter().find(|(name, _)| name == authority) else {
        let _ = client
            .get_mut()
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    let Ok(mut upstream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        let _ = client
            .get_mut()
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    if client
        .get_mut()
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    // Buffers as large as a proxy's, so that the tunnel is no slower than one.
    let _ =
        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, 64 * 1024, 64 * 1024)
            .await;
}
