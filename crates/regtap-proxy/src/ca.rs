//! regtap's certificate authority: a CA certificate and key kept in a data
//! directory, and the leaf certificates the proxy presents to clients.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, SanType,
};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::Digest as _;
use time::{Duration, OffsetDateTime};

/// File name of the CA certificate (PEM) in the data directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key (PEM, PKCS#8, mode 0600) in the data directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";

const CA_COMMON_NAME: &str = "regtap local CA";
/// Default validity of a CA; `--validity-days` shortens it.
pub const CA_VALIDITY_DAYS: u32 = 3650;
/// Leaves stay under the 398 days some TLS clients accept at most.
const LEAF_VALIDITY: Duration = Duration::days(397);
/// Tolerates clocks of clients that run a little behind.
const BACKDATE: Duration = Duration::hours(1);

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} already exists; pass --force to replace the CA (clients that trust the old one must then trust the new one)"
    )]
    Exists { path: PathBuf },
    #[error("no CA in {dir}; create one with `regtap ca init`")]
    Missing { dir: PathBuf },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("invalid name constraint {domain:?}: expected a DNS domain such as registry.example")]
    BadNameConstraint { domain: String },
    #[error("cannot create the CA certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error("neither REGTAP_HOME, XDG_DATA_HOME nor HOME is set; set REGTAP_HOME")]
    NoDataDir,
    #[error(
        "{path} is open to other users (mode {mode:03o}): the CA key must be private; \
         run `chmod {fix} {path}` (and check nobody copied the key), or create a new CA"
    )]
    Exposed {
        path: PathBuf,
        mode: u32,
        fix: &'static str,
    },
    #[error("invalid validity of {0} days: expected 1 to {CA_VALIDITY_DAYS}")]
    BadValidity(u32),
}

/// regtap's data directory: `$REGTAP_HOME`, else `$XDG_DATA_HOME/regtap`,
/// else `~/.local/share/regtap`.
pub fn data_dir_from_env() -> Result<PathBuf, CaError> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(home) = non_empty("REGTAP_HOME") {
        return Ok(PathBuf::from(home));
    }
    if let Some(xdg) = non_empty("XDG_DATA_HOME") {
        return Ok(PathBuf::from(xdg).join("regtap"));
    }
    non_empty("HOME")
        .map(|home| PathBuf::from(home).join(".local/share/regtap"))
        .ok_or(CaError::NoDataDir)
}

/// How to create a CA.
#[derive(Debug, Clone, Default)]
pub struct CaOptions {
    /// DNS domains the CA may issue for (the domain and its subdomains). Empty:
    /// unconstrained.
    pub name_constraints: Vec<String>,
    /// Replace an existing CA.
    pub force: bool,
    /// Days the CA is valid; `None`: [`CA_VALIDITY_DAYS`].
    pub validity_days: Option<u32>,
}

/// A CA certificate and its key, loaded from (or just written to) a data directory.
pub struct Ca {
    dir: PathBuf,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: String,
}

/// What `regtap ca show` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaInfo {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub subject: String,
    /// SHA-256 of the DER certificate, uppercase hex pairs joined by `:`.
    pub sha256_fingerprint: String,
    /// RFC 3339.
    pub not_before: String,
    pub not_after: String,
    /// Permitted DNS subtrees; empty when the CA is unconstrained.
    pub name_constraints: Vec<String>,
}

impl Ca {
    pub fn cert_path_in(dir: &Path) -> PathBuf {
        dir.join(CA_CERT_FILE)
    }

    pub fn key_path_in(dir: &Path) -> PathBuf {
        dir.join(CA_KEY_FILE)
    }

    /// Creates a CA in `dir` (created 0700 if missing, made 0700 if not). The key is written
    /// with mode 0600. Refuses to replace an existing CA unless `options.force`.
    pub fn init(dir: &Path, options: &CaOptions) -> Result<Ca, CaError> {
        let cert_path = Self::cert_path_in(dir);
        let key_path = Self::key_path_in(dir);
        if !options.force {
            for path in [&cert_path, &key_path] {
                if path.exists() {
                    return Err(CaError::Exists { path: path.clone() });
                }
            }
        }
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, CA_COMMON_NAME);
        name.push(DnType::OrganizationName, "regtap");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        let days = options.validity_days.unwrap_or(CA_VALIDITY_DAYS);
        if days == 0 || days > CA_VALIDITY_DAYS {
            return Err(CaError::BadValidity(days));
        }
        params.not_after = now + Duration::days(i64::from(days));
        if !options.name_constraints.is_empty() {
            let permitted = options
                .name_constraints
                .iter()
                .map(|domain| validate_domain(domain).map(GeneralSubtree::DnsName))
                .collect::<Result<Vec<_>, _>>()?;
            params.name_constraints = Some(NameConstraints {
                permitted_subtrees: permitted,
                excluded_subtrees: Vec::new(),
            });
        }
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;

        create_private_dir(dir)?;
        // Key first: a certificate without its key is useless, the reverse is repaired by --force.
        write_file_atomically(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_file_atomically(&cert_path, cert.pem().as_bytes(), 0o644)?;
        Ok(Ca {
            dir: dir.to_owned(),
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Loads the CA kept in `dir`.
    pub fn load(dir: &Path) -> Result<Ca, CaError> {
        let cert_path = Self::cert_path_in(dir);
        let key_path = Self::key_path_in(dir);
        if !cert_path.exists() && !key_path.exists() {
            return Err(CaError::Missing {
                dir: dir.to_owned(),
            });
        }
        let read = |path: &Path| {
            fs::read_to_string(path).map_err(|source| CaError::Io {
                path: path.to_owned(),
                source,
            })
        };
        let cert_pem = read(&cert_path)?;
        ensure_private(dir, &key_path)?;
        let key_pem = read(&key_path)?;
        let cert_der = pem_certificates(&cert_pem)
            .into_iter()
            .next()
            .ok_or_else(|| CaError::Invalid {
                path: cert_path.clone(),
                reason: "no PEM certificate in the file".to_owned(),
            })?;
        let ca = Ca {
            dir: dir.to_owned(),
            cert_pem,
            cert_der,
            key_pem,
        };
        // Fail now rather than at the first TLS handshake.
        ca.issuer()?;
        Ok(ca)
    }

    /// Loads the CA in `dir`, creating an unconstrained one if there is none.
    /// The flag tells whether it was created.
    pub fn load_or_init(dir: &Path) -> Result<(Ca, bool), CaError> {
        match Self::load(dir) {
            Ok(ca) => Ok((ca, false)),
            Err(CaError::Missing { .. }) => Ok((Self::init(dir, &CaOptions::default())?, true)),
            Err(e) => Err(e),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn cert_path(&self) -> PathBuf {
        Self::cert_path_in(&self.dir)
    }

    pub fn key_path(&self) -> PathBuf {
        Self::key_path_in(&self.dir)
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &[u8] {
        self.cert_der.as_ref()
    }

    /// Subject, fingerprint, validity and constraints of the CA certificate.
    pub fn info(&self) -> Result<CaInfo, CaError> {
        let invalid = |reason: String| CaError::Invalid {
            path: self.cert_path(),
            reason,
        };
        let (_, cert) = x509_parser::parse_x509_certificate(self.cert_der.as_ref())
            .map_err(|e| invalid(format!("not an X.509 certificate: {e}")))?;
        let validity = cert.validity();
        let rfc3339 = |t: x509_parser::time::ASN1Time| {
            t.to_datetime()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| t.to_string())
        };
        let name_constraints = match cert.name_constraints() {
            Ok(Some(ext)) => ext
                .value
                .permitted_subtrees
                .iter()
                .flatten()
                .map(|subtree| match &subtree.base {
                    x509_parser::extensions::GeneralName::DNSName(name) => (*name).to_owned(),
                    other => other.to_string(),
                })
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(invalid(format!("bad name constraints: {e}"))),
        };
        Ok(CaInfo {
            cert_path: self.cert_path(),
            key_path: self.key_path(),
            subject: cert.subject().to_string(),
            sha256_fingerprint: fingerprint(self.cert_der.as_ref()),
            not_before: rfc3339(validity.not_before),
            not_after: rfc3339(validity.not_after),
            name_constraints,
        })
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, CaError> {
        let key = KeyPair::from_pem(&self.key_pem).map_err(|e| CaError::Invalid {
            path: self.key_path(),
            reason: format!("not a usable private key: {e}"),
        })?;
        Issuer::from_ca_cert_der(&self.cert_der, key).map_err(|e| CaError::Invalid {
            path: self.cert_path(),
            reason: format!("not a usable CA certificate: {e}"),
        })
    }

    /// The authority that signs the proxy's per-host leaf certificates.
    pub fn leaf_authority(&self, provider: Arc<CryptoProvider>) -> Result<LeafAuthority, CaError> {
        Ok(LeafAuthority {
            issuer: self.issuer()?,
            provider,
            cache: Mutex::new(LeafCache::new(LEAF_CACHE_CAPACITY)),
            key_log: None,
        })
    }
}

/// SHA-256 of `der` as `AB:CD:…`, the form browsers and `openssl x509 -fingerprint` show.
pub fn fingerprint(der: &[u8]) -> String {
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Every certificate in a PEM text.
pub(crate) fn pem_certificates(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject as _;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

fn validate_domain(domain: &str) -> Result<String, CaError> {
    let domain = domain.trim().trim_start_matches('.').to_ascii_lowercase();
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if domain.is_empty() || domain.len() > 253 || !domain.split('.').all(valid_label) {
        return Err(CaError::BadNameConstraint { domain });
    }
    Ok(domain)
}

/// Refuses a key file that others may read or a directory others may list
/// or write (where the key could be read or swapped).
fn ensure_private(dir: &Path, key_path: &Path) -> Result<(), CaError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for (path, open_bits, fix) in [(key_path, 0o077, "600"), (dir, 0o066, "700")] {
            let mode = fs::metadata(path)
                .map_err(|source| CaError::Io {
                    path: path.to_owned(),
                    source,
                })?
                .permissions()
                .mode()
                & 0o777;
            if mode & open_bits != 0 {
                return Err(CaError::Exposed {
                    path: path.to_owned(),
                    mode,
                    fix,
                });
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (dir, key_path);
    Ok(())
}

/// Creates `dir` 0700, or makes an existing one 0700: it holds the CA key.
fn create_private_dir(dir: &Path) -> Result<(), CaError> {
    let io_err = |source| CaError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        builder.mode(0o700);
        builder.create(dir).map_err(io_err)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err)
    }
    #[cfg(not(unix))]
    builder.create(dir).map_err(io_err)
}

/// Writes `bytes` to a temporary file created with `mode`, then renames it
/// over `path`, so a reader never sees a half-written key.
fn write_file_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    let tmp = path.with_extension("tmp");
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| CaError::Io { path, source }
    };
    let _ = fs::remove_file(&tmp);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(io_err(&tmp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// How many hosts' certificates are kept (about 20 kB each); beyond that the
/// least recently used one is dropped (and made again if its host comes back).
pub const LEAF_CACHE_CAPACITY: usize = 1024;

/// Server configurations by host name, least recently used evicted first.
struct LeafCache {
    capacity: usize,
    /// Bumped on every use; an entry's tick says when it was last used.
    tick: u64,
    entries: HashMap<String, (Arc<ServerConfig>, u64)>,
}

impl LeafCache {
    fn new(capacity: usize) -> Self {
        LeafCache {
            capacity: capacity.max(1),
            tick: 0,
            entries: HashMap::new(),
        }
    }

    fn get(&mut self, host: &str) -> Option<Arc<ServerConfig>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(host).map(|(config, used)| {
            *used = tick;
            Arc::clone(config)
        })
    }

    fn insert(&mut self, host: String, config: Arc<ServerConfig>) {
        if !self.entries.contains_key(&host) && self.entries.len() >= self.capacity {
            // A linear scan: the cache is small and misses cost a key pair anyway.
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(host, _)| host.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.tick += 1;
        self.entries.insert(host, (config, self.tick));
    }
}

/// Issues the certificates the proxy shows to clients: one per host, kept in
/// a bounded LRU cache, each with its own key pair, signed by the CA.
pub struct LeafAuthority {
    issuer: Issuer<'static, KeyPair>,
    provider: Arc<CryptoProvider>,
    cache: Mutex<LeafCache>,
    /// Where the client-facing handshakes' secrets go (`--keylog`).
    key_log: Option<Arc<dyn rustls::KeyLog>>,
}

impl LeafAuthority {
    /// Logs the secrets of every client-facing handshake to `key_log`.
    pub fn with_key_log(mut self, key_log: Option<Arc<dyn rustls::KeyLog>>) -> Self {
        self.key_log = key_log;
        self
    }

    /// A DER leaf certificate for `host` (a DNS name or an IP literal) and its key.
    pub fn issue_leaf(
        &self,
        host: &str,
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), rcgen::Error> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, host);
        params.distinguished_name = name;
        params.subject_alt_names = vec![match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.try_into()?),
        }];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + LEAF_VALIDITY;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let key_der = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((cert.der().clone(), key_der))
    }

    /// How many hosts' certificates are cached now.
    pub fn cached_hosts(&self) -> usize {
        self.cache.lock().map_or(0, |c| c.entries.len())
    }

    /// The TLS configuration presenting regtap's certificate for `host`;
    /// the reason when no certificate can be made for it.
    pub(crate) fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, String> {
        let key = host.to_ascii_lowercase();
        if let Some(config) = self.cache.lock().ok().and_then(|mut c| c.get(&key)) {
            return Ok(config);
        }
        let config = Arc::new(self.build_server_config(&key)?);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, Arc::clone(&config));
        }
        Ok(config)
    }

    fn build_server_config(&self, host: &str) -> Result<ServerConfig, String> {
        let (cert, key) = self.issue_leaf(host).map_err(|e| e.to_string())?;
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        if let Some(key_log) = &self.key_log {
            config.key_log = Arc::clone(key_log);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_cache_keeps_at_most_its_capacity_and_evicts_the_least_recently_used() {
        let ca = Ca::init(tempfile::tempdir().unwrap().path(), &CaOptions::default()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let authority = ca.leaf_authority(provider).unwrap();
        if let Ok(mut cache) = authority.cache.lock() {
            *cache = LeafCache::new(3);
        }
        let config = |host: &str| authority.server_config(host).unwrap();
        let a = config("a.test");
        config("b.test");
        config("c.test");
        // a is used again, so b is now the least recently used.
        assert!(Arc::ptr_eq(&a, &config("A.test")));
        config("d.test");
        assert_eq!(authority.cached_hosts(), 3);
        let cache = authority.cache.lock().unwrap();
        let mut hosts: Vec<&str> = cache.entries.keys().map(String::as_str).collect();
        hosts.sort_unstable();
        assert_eq!(hosts, ["a.test", "c.test", "d.test"]);
    }
}
