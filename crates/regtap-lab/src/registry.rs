//! distribution (`docker-registry serve`) with TLS, either with token auth
//! pointing at the lab token server or with htpasswd Basic auth.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::LabError;
use crate::pki::PkiFiles;
use crate::process::{ChildGuard, port_open};

/// The registry's `http.secret`: it keys the HMAC of the `_state` upload parameter.
pub const HTTP_SECRET: &str = "regtap-lab-http-secret";
pub const BASIC_REALM: &str = "regtap-lab-basic";

pub enum RegistryAuth {
    Token {
        realm: String,
        service: String,
        issuer: String,
    },
    /// user, password
    Basic { users: Vec<(String, String)> },
}

pub struct Registry {
    pub port: u16,
    process: ChildGuard,
}

impl Registry {
    pub fn start(
        dir: &Path,
        port: u16,
        pki: &PkiFiles,
        auth: &RegistryAuth,
    ) -> Result<Self, LabError> {
        let storage = dir.join("storage");
        std::fs::create_dir_all(&storage).map_err(|e| LabError::io(&storage, e))?;
        let auth_yaml = match auth {
            RegistryAuth::Token {
                realm,
                service,
                issuer,
            } => format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                pki.signing_cert.display()
            ),
            RegistryAuth::Basic { users } => {
                let htpasswd = dir.join("htpasswd");
                let mut lines = String::new();
                for (user, password) in users {
                    // The lowest cost: distribution checks the hash on every request.
                    let hash = bcrypt::hash(password, 4)
                        .map_err(|e| LabError::Setup(format!("bcrypt: {e}")))?;
                    lines.push_str(&format!("{user}:{hash}\n"));
                }
                crate::write_file(&htpasswd, lines.as_bytes())?;
                format!(
                    "auth:\n  htpasswd:\n    realm: {BASIC_REALM}\n    path: {}\n",
                    htpasswd.display()
                )
            }
        };
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: {HTTP_SECRET}\n  tls:\n    certificate: {cert}\n    key: {key}\n\
             {auth_yaml}",
            storage = storage.display(),
            cert = pki.server_cert.display(),
            key = pki.server_key.display(),
        );
        let config_path = dir.join("config.yml");
        crate::write_file(&config_path, config.as_bytes())?;
        let mut command = Command::new("docker-registry");
        command.arg("serve").arg(&config_path);
        let mut process = ChildGuard::spawn("docker-registry", command, &dir.join("registry.log"))?
            .grace(Duration::from_secs(5));
        process.wait_until("its port", Duration::from_secs(20), || port_open(port))?;
        Ok(Registry { port, process })
    }

    pub fn log_tail(&self, max: usize) -> String {
        self.process.log_tail(max)
    }
}
