//! Child processes that are stopped by pid when their guard is dropped, also
//! while a test is unwinding from a panic.

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::LabError;

pub struct ChildGuard {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    /// How long to wait after SIGTERM before SIGKILL.
    grace: Duration,
}

impl ChildGuard {
    /// Starts `command` with stdout and stderr appended to `log`, in its own
    /// process group. The child gets SIGTERM if the thread that started it
    /// dies without dropping the guard.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self, LabError> {
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| LabError::io(log, e))?;
        let log_err = log_file.try_clone().map_err(|e| LabError::io(log, e))?;
        command
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        // Its own process group, so a Ctrl-C at the terminal reaches only us
        // (we stop children in order); SIGTERM if we die without stopping it.
        // SAFETY: setpgid and prctl are async-signal-safe and touch no memory
        // of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::setpgid(0, 0) != 0
                    || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| LabError::Setup(format!("cannot start {name}: {e}")))?;
        Ok(ChildGuard {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
            grace: Duration::from_secs(10),
        })
    }

    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The process id, while the process has not been stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last `max` bytes of the log, for error messages.
    pub fn log_tail(&self, max: usize) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(max);
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    /// Fails when the process has already exited.
    pub fn check_running(&mut self) -> Result<(), LabError> {
        let Some(child) = self.child.as_mut() else {
            return Err(LabError::Setup(format!("{} was stopped", self.name)));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(LabError::Setup(format!(
                "{} exited ({status}); log {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail(3000)
            ))),
            Err(e) => Err(LabError::Setup(format!("{}: {e}", self.name))),
        }
    }

    /// Polls `ready` every 50 ms until it is true, the process exits or `timeout` passes.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(());
            }
            self.check_running()?;
            if Instant::now() > deadline {
                return Err(LabError::Setup(format!(
                    "{}: {what} not ready after {timeout:?}; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(3000)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then SIGKILL after the grace period; reaps the process.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: plain syscall on the pid of our own unreaped child.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("regtap-lab: {} ignored SIGTERM, killing it", self.name);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16, LabError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| LabError::Setup(format!("no free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| LabError::Setup(format!("no free port: {e}")))
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Runs a command to completion, capturing its output.
pub fn run_output(mut command: Command) -> Result<CommandOutput, LabError> {
    let shown = format!("{command:?}");
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Setup(format!("cannot run {shown}: {e}")))?;
    Ok(CommandOutput {
        command: shown,
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Runs a command to completion like [`run_output`], but kills it (and
/// reports a failure saying so) when it runs longer than `timeout`.
pub fn run_output_within(
    mut command: Command,
    timeout: Duration,
) -> Result<CommandOutput, LabError> {
    use std::io::Read as _;
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::Setup(format!("cannot run {shown}: {e}")))?;
    // Drained on threads, so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let mut stderr = stderr.join().unwrap_or_default();
    if status.is_none() {
        stderr.push_str(&format!("\n(killed after {timeout:?})"));
    }
    Ok(CommandOutput {
        command: shown,
        success: status.is_some_and(|s| s.success()),
        stdout,
        stderr,
    })
}

#[derive(Debug, Clone)]
pub struct CommandOutput {
    pub command: String,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    /// Runs `command` to completion; a command that cannot start is a failed output.
    pub fn of(command: Command) -> Self {
        let shown = format!("{command:?}");
        run_output(command).unwrap_or_else(|e| Self::not_started(shown, &e))
    }

    /// Runs `command`, killing it after `timeout`; a command that cannot
    /// start or is killed is a failed output.
    pub fn within(command: Command, timeout: Duration) -> Self {
        let shown = format!("{command:?}");
        run_output_within(command, timeout).unwrap_or_else(|e| Self::not_started(shown, &e))
    }

    fn not_started(command: String, error: &LabError) -> Self {
        CommandOutput {
            command,
            success: false,
            stdout: String::new(),
            stderr: error.to_string(),
        }
    }

    /// Panics with the command and its output unless it succeeded.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.success,
            "{} failed:\nstdout: {}\nstderr: {}",
            self.command, self.stdout, self.stderr
        );
        self
    }

    /// Panics unless the command failed.
    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        assert!(
            !self.success,
            "{} unexpectedly succeeded:\nstdout: {}\nstderr: {}",
            self.command, self.stdout, self.stderr
        );
        self
    }

    pub fn combined(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_within_its_time_gives_its_output() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo out; echo err >&2"]);
        let out = CommandOutput::within(command, Duration::from_secs(20));
        assert!(out.success, "{out:?}");
        assert_eq!(
            (out.stdout.as_str(), out.stderr.as_str()),
            ("out\n", "err\n")
        );
    }

    #[test]
    fn a_command_past_its_time_is_killed_and_fails() {
        let started = Instant::now();
        let mut command = Command::new("sleep");
        command.arg("30");
        let out = CommandOutput::within(command, Duration::from_millis(200));
        assert!(!out.success);
        assert!(out.stderr.contains("killed after 200ms"), "{}", out.stderr);
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
