//! The NSS key log (`SSLKEYLOGFILE` format) of both TLS legs, so that
//! Wireshark or tshark can decrypt a packet capture of the same traffic.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::ProxyError;

/// Appends `LABEL <client random hex> <secret hex>` lines to a file created
/// 0600 (never through a symlink): the secrets decrypt the traffic.
#[derive(Debug)]
pub struct KeyLogFile {
    path: PathBuf,
    file: Mutex<File>,
    /// A write failed once: said on stderr once, not for every handshake.
    failed: AtomicBool,
}

impl KeyLogFile {
    pub fn open(path: &Path) -> Result<Self, ProxyError> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        }
        let file = options.open(path).map_err(|source| ProxyError::KeyLog {
            path: path.to_owned(),
            source,
        })?;
        Ok(KeyLogFile {
            path: path.to_owned(),
            file: Mutex::new(file),
            failed: AtomicBool::new(false),
        })
    }
}

impl rustls::KeyLog for KeyLogFile {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let line = format!(
            "{label} {} {}\n",
            hex::encode(client_random),
            hex::encode(secret)
        );
        let written = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("key log lock poisoned"))
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(e) = written
            && !self.failed.swap(true, Ordering::Relaxed)
        {
            tracing::warn!("cannot write the TLS key log {}: {e}", self.path.display());
        }
    }

    fn will_log(&self, _label: &str) -> bool {
        true
    }
}
